"""Pinhole cameras in the PERSONA/ExAvatar convention.

World -> camera is ``x_cam = R @ x_world + t`` with OpenCV axes (x right, y down, z forward).
Pixel intrinsics ``fx, fy, cx, cy``; a point projects to ``u = fx * x / z + cx``, ``v = fy * y / z + cy``
in continuous pixel coordinates where pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)`` and has
its centre at ``(j + 0.5, i + 0.5)`` (the gsplat convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world -> camera ``R``, ``t`` (OpenCV axes), intrinsics in pixels, image size; see the
    module docstring."""
    R: np.ndarray  # [3, 3] world -> camera rotation
    t: np.ndarray  # [3] world -> camera translation
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.t, dtype=np.float64).reshape(3)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")

    @property
    def K(self) -> np.ndarray:
        """[3, 3] intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def viewmat(self) -> np.ndarray:
        """[4, 4] world -> camera matrix."""
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    @property
    def position(self) -> np.ndarray:
        """[3] camera centre in world coordinates."""
        return -self.R.T @ self.t

    def resized(self, width: int, height: int) -> "Camera":
        """The same view at another image size (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        return Camera(self.R, self.t, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    def with_longer_side(self, size: int) -> "Camera":
        """The same view with the image scaled so that its longer side is ``size`` pixels."""
        scale = size / max(self.width, self.height)
        return self.resized(max(1, round(self.width * scale)), max(1, round(self.height * scale)))

    def project(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] world points -> [..., 3] (u, v, depth)."""
        cam = points @ self.R.T + self.t
        z = cam[..., 2:3]
        uv = cam[..., :2] / z * np.array([self.fx, self.fy]) + np.array([self.cx, self.cy])
        return np.concatenate([uv, z], axis=-1)

    def to_json(self) -> dict:
        """The ``camera.json`` form (PERSONA keys: R, t, focal, princpt, width, height)."""
        return {
            "R": self.R.tolist(), "t": self.t.tolist(), "focal": [self.fx, self.fy],
            "princpt": [self.cx, self.cy], "width": self.width, "height": self.height,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Camera":
        """The camera saved by :meth:`to_json`."""
        return cls(np.array(d["R"]), np.array(d["t"]), float(d["focal"][0]), float(d["focal"][1]),
                   float(d["princpt"][0]), float(d["princpt"][1]), int(d["width"]), int(d["height"]))

    @classmethod
    def look_at(cls, eye, target, up=(0.0, 1.0, 0.0), *, fov_y_deg: float = 40.0,
                width: int = 512, height: int = 512) -> "Camera":
        """A camera at ``eye`` looking at ``target`` with world ``up`` pointing up on screen."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:  # looking along up: pick any perpendicular
            right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        return cls(R, -R @ eye, f, f, width / 2, height / 2, width, height)


def stack_cameras(cameras: list[Camera], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras of one size -> ([C, 4, 4] viewmats, [C, 3, 3] Ks) tensors."""
    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("cameras rendered together must share one image size")
    viewmats = torch.tensor(np.stack([c.viewmat for c in cameras]), dtype=dtype, device=device)
    Ks = torch.tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    return viewmats, Ks
