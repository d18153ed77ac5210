"""The motion core: :class:`Motion` (SMPL-X poses in our world frame: metres, Y up, the body facing +Z in
the rest pose), its checks, up-axis changes, resampling and checked npz access, shared by every motion
reader. :mod:`persona_studio.body.motion` re-exports it and lists the formats read.

Files are untrusted input: ``_NpzReader`` refuses pickled arrays, checks each array's header against the
data it holds before anything is allocated and sizes before reading; every problem raises
:class:`MotionError` with what is wrong and what to do.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body import skeleton
from persona_studio.fileio import NpzMemberError, npz_keys, read_npz_member

FORMAT_VERSION = 1
NPZ_FORMAT_NAME = "PERSONA Studio npz"
JSON_FORMAT_NAME = "per-frame JSON folder"
META_FILE_NAME = "motion_meta.json"  # no digits: frame files are ordered by the number in their name
MAX_MOTION_BYTES = 512 * 1024**2  # larger files are refused before reading
DEFAULT_FPS = 30.0
MAX_FPS = 1000.0
UP_AXES = ("y", "z", "-y")

# Rotation G (axis-angle) taking a motion's world frame to ours (Y up, facing +Z):
# "z": AMASS and most mocap (Z up); "-y": OpenCV camera space of photo fits (y down, facing -z).
_TO_Y_UP = {
    "y": np.zeros(3),
    "z": np.array([-math.pi / 2, 0.0, 0.0]),
    "-y": np.array([math.pi, 0.0, 0.0]),
}
_UP_DIRECTION = {"y": np.array([0.0, 1.0, 0.0]), "z": np.array([0.0, 0.0, 1.0]),
                 "-y": np.array([0.0, -1.0, 0.0])}

# Pose widths of the AMASS layouts: number of joints -> body model (SMPL-H and SMPL share the first
# 22 joints with SMPL-X; SMPL-H adds the same 2 x 15 finger joints, SMPL two "hand" joints instead).
_NPZ_LAYOUTS = {55: "SMPL-X", 52: "SMPL-H", 24: "SMPL"}
_FRAME_RATE_KEYS = ("mocap_frame_rate", "mocap_framerate")
_NPZ_KNOWN_KEYS = {
    "poses", "root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye", "trans", "betas",
    "num_betas", "expression", "gender", "surface_model_type", "mocap_time_length", "up_axis",
    "format_version", "notes", *_FRAME_RATE_KEYS,
}
_NUMERIC_KINDS = "fiu"


class MotionError(ValueError):
    """A motion file or motion array that cannot be used; the message says why and what to do."""


@dataclass
class Motion:
    """SMPL-X motion in our world frame (Y up, facing +Z, metres); validated on construction."""

    poses: np.ndarray  # [N, 55, 3] float32 axis-angle, SMPL-X joint order (skeleton.JOINT_NAMES)
    trans: np.ndarray  # [N, 3] float32 root translation (smplx `transl`)
    fps: float
    betas: np.ndarray | None = None  # [B] float32 shape coefficients, or None (model's mean shape)
    expression: np.ndarray | None = None  # [N, E] float32, E may be 0; None becomes [N, 0]
    source_format: str = NPZ_FORMAT_NAME
    source_up_axis: str = "y"  # the up axis of the file it was read from (it is now Y-up)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.poses = _numeric("poses", self.poses)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (skeleton.NUM_JOINTS, 3):
            raise MotionError(f"poses must have shape (frames, 55, 3), got {self.poses.shape}")
        n = self.poses.shape[0]
        if n == 0:
            raise MotionError("the motion has zero frames: it needs at least one pose")
        self.trans = _numeric("trans", self.trans)
        if self.trans.shape != (n, 3):
            raise MotionError(f"trans must have shape ({n}, 3) to match {n} pose frames, "
                              f"got {self.trans.shape}")
        if self.expression is None:
            self.expression = np.zeros((n, 0), np.float32)
        self.expression = _numeric("expression", self.expression)
        if self.expression.ndim != 2 or self.expression.shape[0] != n:
            raise MotionError(f"expression must have shape ({n}, E) to match {n} pose frames, "
                              f"got {self.expression.shape}")
        if self.betas is not None:
            self.betas = _numeric("betas", self.betas)
            if self.betas.ndim != 1:
                raise MotionError(f"betas must be one vector (B,), got shape {self.betas.shape}")
        self.fps = _checked_fps(self.fps)
        if self.source_up_axis not in UP_AXES:
            raise MotionError(f"source_up_axis must be one of {UP_AXES}, got {self.source_up_axis!r}")
        self.notes = tuple(str(note) for note in self.notes)
        for name in ("poses", "trans", "expression", "betas"):
            _check_finite(name, getattr(self, name))

    @property
    def num_frames(self) -> int:
        """N, the number of frames."""
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        """Playing time in seconds (frames / fps)."""
        return self.num_frames / self.fps

    def smplx_kwargs(self, frames: slice | np.ndarray = slice(None), *, num_betas: int = 10,
                     num_expression_coeffs: int = 10,
                     device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Keyword arguments for an ``smplx.SMPLX`` forward of the frames selected by ``frames``
        (a slice or an index array). Hand poses are full axis-angle relative to a flat hand (the AMASS
        convention: ``use_pca=False, flat_hand_mean=True``).

        Every tensor has the batch size of the selected frames; betas and expression are zero-padded
        or cut to the model's ``num_betas`` / ``num_expression_coeffs`` (smplx does not broadcast
        them).
        """
        parts = split_pose(self.poses[frames])
        n = parts["global_orient"].shape[0]
        betas = np.zeros((n, num_betas), np.float32)
        if self.betas is not None:
            k = min(num_betas, self.betas.shape[0])
            betas[:, :k] = self.betas[:k]
        expression = np.zeros((n, num_expression_coeffs), np.float32)
        k = min(num_expression_coeffs, self.expression.shape[1])
        expression[:, :k] = self.expression[frames][:, :k]
        arrays = {**parts, "transl": self.trans[frames], "betas": betas, "expression": expression}
        return {name: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)
                for name, a in arrays.items()}

    def pose_kwargs(self, frames: slice | np.ndarray = slice(None)) -> dict[str, torch.Tensor]:
        """:meth:`smplx_kwargs` without ``betas``: what poses an avatar, which keeps its own shape."""
        kwargs = self.smplx_kwargs(frames)
        kwargs.pop("betas")
        return kwargs


def split_pose(poses: np.ndarray) -> dict[str, np.ndarray]:
    """[N, 55, 3] full pose -> the smplx keyword arrays, each [N, joints * 3]."""
    n = poses.shape[0]
    return {
        "global_orient": poses[:, skeleton.ROOT].reshape(n, -1),
        "body_pose": poses[:, skeleton.BODY].reshape(n, -1),
        "jaw_pose": poses[:, skeleton.JAW].reshape(n, -1),
        "leye_pose": poses[:, skeleton.LEFT_EYE].reshape(n, -1),
        "reye_pose": poses[:, skeleton.RIGHT_EYE].reshape(n, -1),
        "left_hand_pose": poses[:, skeleton.LEFT_HAND].reshape(n, -1),
        "right_hand_pose": poses[:, skeleton.RIGHT_HAND].reshape(n, -1),
    }


# ----------------------------------------------------------------------------------------------
# Validation helpers


def _numeric(name: str, value) -> np.ndarray:
    """``value`` as a float32 array, refusing strings, booleans, objects and ragged lists."""
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise MotionError(f"{name} is not a regular array of numbers ({err})") from None
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise MotionError(f"{name} must hold numbers, but its values are of type {array.dtype} "
                          f"(e.g. {array.ravel()[:1].tolist()}); re-export it as float arrays")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_finite(name: str, array: np.ndarray | None) -> None:
    if array is None or array.size == 0:
        return
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        frames = f"; {int(bad.reshape(bad.shape[0], -1).any(1).sum())} frame(s) affected" \
            if array.ndim > 1 else ""
        raise MotionError(f"{name} contains NaN or infinite values (first at index {index}{frames}); "
                          "repair or cut those frames before using the motion")


def _checked_fps(fps) -> float:
    if isinstance(fps, (str, bytes, bool)):
        raise MotionError(f"the frame rate must be a number, got {fps!r}")
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise MotionError(f"the frame rate must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_FPS:
        raise MotionError(f"frame rate {fps!r} fps is not plausible: it must be above 0 and at most "
                          f"{MAX_FPS:g} fps; fix the frame-rate value in the file")
    return value


def _check_size(path: Path, size: int, max_bytes: int, what: str = "") -> None:
    if size > max_bytes:
        raise MotionError(f"{path}: {what}{size / 1024**2:.1f} MB is over the {max_bytes / 1024**2:.1f} MB "
                          "limit for motion files; cut the clip into shorter files")


# ----------------------------------------------------------------------------------------------
# Up axis and rotations


def infer_up_axis(global_orient: np.ndarray) -> tuple[str, float]:
    """Guess a motion's up axis from its root orientation: [N, 3] -> (axis, mean agreement).

    The rest body's up direction (0, 1, 0) carried by the root rotation points (on average over the
    clip) along the world's up axis for any standing, walking or dancing motion.
    """
    body_up = Rotation.from_rotvec(global_orient.astype(np.float64)).apply([0.0, 1.0, 0.0])  # [N, 3]
    scores = {axis: float((body_up @ direction).mean()) for axis, direction in _UP_DIRECTION.items()}
    axis = max(scores, key=scores.get)
    return axis, scores[axis]


def to_y_up(poses: np.ndarray, trans: np.ndarray, up_axis: str,
            pelvis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Express a motion given in the ``up_axis`` world frame in ours (Y up, facing +Z), exactly.

    SMPL-X rotates the root about the rest pelvis joint p, so a posed point is
    ``R (x - p) + p + trans``. Changing the world by a rotation G gives ``root' = G R`` and
    ``trans' = G (trans + p) - p``. ``pelvis`` is p (default ``skeleton.PELVIS_REST``); with another
    body shape the true p differs by centimetres, which shifts the result by as much.
    poses [N, 55, 3], trans [N, 3] -> the same shapes.
    """
    if up_axis not in _TO_Y_UP:
        raise MotionError(f"unknown up axis {up_axis!r}: use one of {UP_AXES}")
    if up_axis == "y":
        return poses, trans
    p = np.asarray(skeleton.PELVIS_REST if pelvis is None else pelvis, dtype=np.float64).reshape(3)
    world = Rotation.from_rotvec(_TO_Y_UP[up_axis])
    poses = poses.astype(np.float64, copy=True)
    poses[:, 0] = (world * Rotation.from_rotvec(poses[:, 0])).as_rotvec()
    trans = world.apply(trans.astype(np.float64) + p) - p
    return poses.astype(np.float32), trans.astype(np.float32)


def slerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of axis-angle rotations along the shortest arc.

    start, end [..., 3]; weight [...] in [0, 1] -> [..., 3]: ``start * exp(weight * log(start^-1 end))``.
    """
    shape = np.broadcast_shapes(start.shape, end.shape)
    a = Rotation.from_rotvec(np.broadcast_to(start, shape).reshape(-1, 3).astype(np.float64))
    b = Rotation.from_rotvec(np.broadcast_to(end, shape).reshape(-1, 3).astype(np.float64))
    step = (a.inv() * b).as_rotvec() * np.broadcast_to(weight, shape[:-1]).reshape(-1, 1)
    return (a * Rotation.from_rotvec(step)).as_rotvec().reshape(shape)


def resample(motion: Motion, fps: float) -> Motion:
    """The motion at another frame rate: slerp per joint for rotations, linear for the rest.

    The first and last frames are kept exactly; the ``M = round((N - 1) * fps / motion.fps) + 1``
    new frames are spread evenly over the clip, so the frame rate is ``fps`` up to the rounding of
    the last frame (under half a frame over the whole clip).
    """
    fps = _checked_fps(fps)
    n = motion.num_frames
    count = int(round((n - 1) * fps / motion.fps)) + 1
    where = np.linspace(0.0, n - 1, count)  # [M] positions in source frames
    first = np.minimum(np.floor(where).astype(np.int64), n - 1)
    second = np.minimum(first + 1, n - 1)
    weight = (where - first).astype(np.float64)  # [M]
    exact = weight == 0.0

    poses = slerp(motion.poses[first], motion.poses[second], weight[:, None])  # [M, 55, 3]
    poses = np.where(exact[:, None, None], motion.poses[first], poses)

    def lerp(a: np.ndarray) -> np.ndarray:
        """[N, ...] per-frame values -> [M, ...] linearly interpolated (source frames hit exactly are
        copied)."""
        w = weight.reshape(-1, *([1] * (a.ndim - 1)))
        return np.where(exact.reshape(w.shape), a[first], a[first] * (1 - w) + a[second] * w)

    return replace(motion, poses=poses, trans=lerp(motion.trans), expression=lerp(motion.expression),
                   fps=fps, notes=motion.notes + (f"resampled from {motion.fps:g} to {fps:g} fps",))


# ----------------------------------------------------------------------------------------------
# Reading


class _NpzReader:
    """Checked access to the arrays of an .npz archive, never unpickling anything
    (:func:`persona_studio.fileio.read_npz_member`)."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        _check_size(path, path.stat().st_size, max_bytes)
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise MotionError(f"{path}: not a readable .npz archive ({err}); save motions with "
                              "numpy.savez") from None
        unpacked = sum(info.file_size for info in self.archive.infolist())
        try:
            _check_size(path, unpacked, max_bytes, "unpacked to ")
        except MotionError:
            self.archive.close()
            raise
        self.keys = npz_keys(self.archive)

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def raw(self, key: str) -> np.ndarray:
        """The array ``key`` as stored; pickled objects and damaged members are refused with a MotionError
        saying what to do."""
        try:
            return read_npz_member(self.archive, key)
        except NpzMemberError as err:
            raise MotionError(f"{self.path}: {err}; re-save it as a plain numeric array with numpy.savez") from None
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise MotionError(f"{self.path}: '{key}' cannot be read ({err}): the file is damaged") from None

    def numeric(self, key: str) -> np.ndarray:
        """The array ``key`` as float64, checked numeric and finite (MotionError otherwise)."""
        raw = self.raw(key)
        try:
            array = _numeric(f"'{key}'", raw)
            _check_finite(f"'{key}'", array)
            return array.astype(np.float64)
        except MotionError as err:
            raise MotionError(f"{self.path}: {err}") from None

    def text(self, key: str) -> str | None:
        """The string stored under ``key`` (one str or bytes item), else None."""
        if key not in self:
            return None
        value = self.raw(key)
        if value.dtype.kind not in "US" or value.size != 1:
            return None
        item = value.reshape(()).item()
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)

    def close(self) -> None:
        """Close the archive."""
        self.archive.close()


def _in_y_up(poses: np.ndarray, trans: np.ndarray, flag: str | None, override: str | None, pelvis,
             where: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Check a file's ``up_axis`` flag, choose the source up axis (override > flag > inferred), note
    the choice when it was not a stored Y-up flag, and convert to our Y-up world.
    Returns (poses, trans, source up axis)."""
    if flag is not None and flag not in UP_AXES:
        raise MotionError(f"{where}: 'up_axis' is {flag!r}; it must be one of {UP_AXES}")
    source_up, up_note = _choose_up_axis(override, flag, poses[:, 0])
    if flag is None or source_up != "y":
        notes.append(up_note)
    poses, trans = to_y_up(poses, trans, source_up, pelvis)
    return poses, trans, source_up


def _choose_up_axis(override: str | None, flag: str | None, global_orient: np.ndarray) -> tuple[str, str]:
    """The up axis of a file and the note that says how it was decided."""
    if override is not None:
        axis, how = override, "as requested"
    elif flag is not None:
        axis, how = flag, "from the file's up_axis flag"
    else:
        axis, agreement = infer_up_axis(global_orient)
        how = (f"no up-axis flag; inferred from the root orientation: body up . world "
               f"{axis.upper()} = {agreement:.2f} on average")
    converted = "" if axis == "y" else ", converted to Y-up"
    return axis, f"up axis {axis.upper()}{converted} ({how})"
