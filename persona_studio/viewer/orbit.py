"""An orbit camera for the viewport: turntable yaw/pitch around a target, pan, zoom, fit, reset.

Pure numpy; produces :class:`persona_studio.render.camera.Camera` objects (OpenCV axes, pixel
intrinsics) for any viewport size. World is Y up and the body faces +Z, so the default view
(yaw = pitch = 0) sits on +Z and looks at the body's front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from persona_studio.render.camera import Camera

WORLD_UP = np.array([0.0, 1.0, 0.0])


@dataclass
class OrbitCamera:
    """Mutable viewport camera state; every method changes it in place.

    ``yaw`` turns around the world Y axis through ``target`` (positive moves the eye towards +X),
    ``pitch`` lifts the eye above the target (positive looks down), both in radians.
    """

    target: np.ndarray
    distance: float = 3.0
    yaw: float = 0.0
    pitch: float = 0.0
    fov_y_deg: float = 40.0
    min_distance: float = 0.05
    max_distance: float = 100.0
    max_pitch: float = math.radians(89.0)

    def __post_init__(self) -> None:
        self.target = np.asarray(self.target, dtype=np.float64).reshape(3).copy()
        if not 0.0 < self.fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {self.fov_y_deg}")
        if not 0.0 < self.min_distance <= self.max_distance:
            raise ValueError(f"need 0 < min_distance <= max_distance, got {self.min_distance}, {self.max_distance}")
        self.pitch = self._clamp_pitch(self.pitch)
        self.distance = self._clamp_distance(self.distance)
        self._home = (self.target.copy(), self.distance, self.yaw, self.pitch)

    # -- derived geometry -------------------------------------------------------------------------
    @property
    def view_direction(self) -> np.ndarray:
        """[3] unit vector from the eye towards the target."""
        cp = math.cos(self.pitch)
        return -np.array([cp * math.sin(self.yaw), math.sin(self.pitch), cp * math.cos(self.yaw)])

    @property
    def eye(self) -> np.ndarray:
        """[3] camera centre in world coordinates."""
        return self.target - self.distance * self.view_direction

    def rotation(self) -> np.ndarray:
        """[3, 3] world -> camera rotation (rows: camera x right, y down, z forward in world axes)."""
        forward = self.view_direction
        right = np.cross(forward, WORLD_UP)
        right /= np.linalg.norm(right)  # |pitch| < 90 deg keeps forward off the up axis
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def focal(self, height: int) -> float:
        """Focal length in pixels for an image ``height`` pixels tall at ``fov_y_deg``."""
        return 0.5 * height / math.tan(math.radians(self.fov_y_deg) / 2.0)

    def camera(self, width: int, height: int) -> Camera:
        """The pinhole camera for a ``width`` x ``height`` viewport (square pixels, centred)."""
        R = self.rotation()
        f = self.focal(height)
        return Camera(R, -R @ self.eye, f, f, width / 2.0, height / 2.0, int(width), int(height))

    # -- interaction ------------------------------------------------------------------------------
    def orbit(self, d_yaw: float, d_pitch: float) -> None:
        """Turn around the target by angles in radians (pitch stays within +-max_pitch)."""
        self.yaw = math.remainder(self.yaw + d_yaw, 2.0 * math.pi)
        self.pitch = self._clamp_pitch(self.pitch + d_pitch)

    def pan(self, dx_pixels: float, dy_pixels: float, viewport_height: int) -> None:
        """Slide eye and target in the view plane so the point under the cursor follows a drag.

        ``dx_pixels``/``dy_pixels`` are the cursor motion (x right, y down); the scene at the target's
        depth moves with the cursor, i.e. the camera moves the opposite way.
        """
        metres_per_pixel = self.distance / self.focal(viewport_height)
        R = self.rotation()
        self.target = self.target - metres_per_pixel * (dx_pixels * R[0] + dy_pixels * R[1])

    def zoom(self, factor: float) -> None:
        """Multiply the eye-target distance by ``factor`` (< 1 moves closer), clamped."""
        if factor <= 0.0:
            raise ValueError(f"zoom factor must be positive, got {factor}")
        self.distance = self._clamp_distance(self.distance * factor)

    def reset(self) -> None:
        """Back to the home view (the front view of the last fit, or the initial state)."""
        target, self.distance, self.yaw, self.pitch = self._home
        self.target = target.copy()

    def fit(self, points: np.ndarray, width: int, height: int, margin: float = 1.1,
            front_view: bool = True) -> None:
        """Frame ``points`` ([..., 3]: a point cloud or the 8 corners of a box) in the viewport.

        The target becomes the centre of their bounding box and the distance the smallest one at
        which every point projects inside the view shrunk by ``margin``. With ``front_view`` the
        orientation is reset to the default front view first. The result becomes the home view.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 0 or not np.isfinite(pts).all():
            raise ValueError("fit needs at least one finite 3D point")
        if front_view:
            self.yaw, self.pitch = 0.0, 0.0
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        self.target = (lo + hi) / 2.0
        self.distance = self._clamp_distance(
            fit_distance(pts - self.target, self.rotation(), self.fov_y_deg, width / height, margin))
        self._home = (self.target.copy(), self.distance, 0.0, 0.0) if front_view else \
            (self.target.copy(), self.distance, self.yaw, self.pitch)

    # -- helpers ----------------------------------------------------------------------------------
    def _clamp_pitch(self, pitch: float) -> float:
        return float(np.clip(pitch, -self.max_pitch, self.max_pitch))

    def _clamp_distance(self, distance: float) -> float:
        return float(np.clip(distance, self.min_distance, self.max_distance))


def fit_distance(offsets: np.ndarray, R: np.ndarray, fov_y_deg: float, aspect: float,
                 margin: float = 1.1) -> float:
    """Smallest eye-target distance at which points (``offsets`` [P, 3] from the target) all lie
    inside a symmetric frustum (vertical field of view ``fov_y_deg``, width/height ``aspect``)
    shrunk by ``margin``.

    A point at camera-frame offset (x, y, f) from the target sits at depth d + f, so it is inside
    when |x| <= tan_x (d + f) and |y| <= tan_y (d + f): d >= |x| / tan_x - f, likewise for y.
    """
    tan_y = math.tan(math.radians(fov_y_deg) / 2.0) / margin
    tan_x = tan_y * aspect
    local = offsets @ R.T  # [P, 3] (right, down, forward)
    need = np.maximum(np.abs(local[:, 0]) / tan_x, np.abs(local[:, 1]) / tan_y) - local[:, 2]
    return float(need.max())
