"""SMPL-X motions: read, validate, convert, resample and write motion files.

A :class:`Motion` is a sequence of SMPL-X poses in our world frame (metres, Y up, the body faces +Z
in the rest pose). Readers accept

- AMASS-style ``.npz`` files: SMPL-X (``poses`` N x 165 or (N, 55, 3), or the split keys
  ``root_orient`` / ``pose_body`` / ``pose_hand`` / ``pose_jaw`` / ``pose_eye``), SMPL-H (N x 156:
  hands kept, face neutral) and SMPL (N x 72: hands flat, face neutral), with ``trans``, ``betas``
  and ``mocap_frame_rate`` (or ``mocap_framerate``);
- our own ``.npz`` (the AMASS SMPL-X layout plus ``up_axis`` = "y" and ``format_version``);
- folders of per-frame JSON files with the PERSONA / ExAvatar / LHM keys (``root_pose``,
  ``body_pose``, ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``lhand_pose``, ``rhand_pose``,
  ``expr``, ``trans``, optional ``betas``), plus an optional ``motion_meta.json`` (fps, up axis).

Files are untrusted input: a pickled array is refused, never unpickled, each array's header is checked
against the data it holds before anything is allocated, sizes are checked before reading, and every problem raises :class:`MotionError`
with a message that says what is wrong and what to do.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body import skeleton
from persona_studio.fileio import NpzMemberError, atomic_folder, atomic_path, npz_keys, read_npz_member
from persona_studio.paths import project_folder

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


def read_motion(path: str | os.PathLike, *, up_axis: str | None = None, pelvis: np.ndarray | None = None,
                max_bytes: int = MAX_MOTION_BYTES, rig: str | os.PathLike | None = None) -> Motion:
    """Read a motion file (``.npz``, Meshcapade ``.smpl``, ``.bvh``) or folder (per-frame JSON) into a
    Y-up :class:`Motion`.

    ``up_axis`` overrides the file's up axis ("y", "z" or "-y"); without it the file's own flag
    is used (our files say "y"), or the axis is inferred from the root orientation (AMASS: "z"),
    and the notes say which. ``pelvis`` is the rest pelvis position used for that change of frame.
    A BVH is retargeted onto SMPL-X (:mod:`persona_studio.body.bvh`) with the shipped rig tables, or
    with the mapping file ``rig``.
    """
    path = Path(path)
    if up_axis is not None and up_axis not in UP_AXES:
        raise MotionError(f"unknown up axis {up_axis!r}: use one of {UP_AXES}")
    if not path.exists():
        raise MotionError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_json_folder(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() == ".json":
        raise MotionError(f"{path}: a single JSON file; give the folder that holds the per-frame "
                          "JSON files instead")
    if path.suffix.lower() == ".bvh":
        return _read_bvh(path, rig, max_bytes)
    if path.suffix.lower() == ".smpl":
        return _read_smpl(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
        return _read_npz(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() in (".pkl", ".pickle", ".pt"):
        raise MotionError(f"{path}: pickle files are never opened (they can run code); save the arrays "
                          "as an .npz file with numpy.savez instead")
    raise MotionError(f"{path}: unsupported motion file; give an AMASS / SMPL-X .npz, a .smpl, a .bvh file "
                      "or a folder of per-frame .json files")


def _read_bvh(path: Path, rig: str | os.PathLike | None, max_bytes: int) -> Motion:
    """A BVH file retargeted onto the SMPL-X skeleton; the notes say which rig matched, what was mapped,
    the unit and the up axis found."""
    from persona_studio.body import bvh

    _check_size(path, path.stat().st_size, max_bytes)
    try:
        text = path.read_text("utf-8", errors="replace")
        parsed = bvh.parse_bvh(text, str(path))
        rig_name, mapped = bvh.match_rig(parsed.names, bvh.load_rigs(Path(rig) if rig else None))
        poses, trans, figures = bvh.retarget(parsed, mapped)
    except bvh.BvhError as err:
        message = str(err)
        raise MotionError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    at_rest = [n for j, n in enumerate(skeleton.JOINT_NAMES[:22]) if j not in mapped]
    notes = [f"BVH retargeted onto SMPL-X with the {rig_name!r} rig: {len(mapped)} joints mapped "
             f"({', '.join(parsed.names[b] + '->' + skeleton.JOINT_NAMES[s] for s, b in sorted(mapped.items()))})",
             "not in the rig: " + (", ".join(at_rest) + " (turning with the joint above); " if at_rest else "")
             + ("fingers, " if not any(j in mapped for j in range(25, 55)) else "") + "jaw and eyes stay at rest",
             f"unit: {figures['unit']} (about {figures['metres_per_unit']:.4f} m per unit, from the leg length); "
             f"root path scaled by {figures['scale']:.4f} to SMPL-X's legs; feet put on the floor",
             f"up axis {figures['up_axis'].upper()} (from the rest pose)"]
    up = figures["up_axis"] if figures["up_axis"] in UP_AXES else "y"
    return Motion(poses=poses, trans=trans, fps=1.0 / parsed.frame_time, source_format=f"BVH ({rig_name} rig)",
                  source_up_axis=up, notes=tuple(notes))


# Meshcapade's smplcodec (.smpl: an npz of camelCase keys): smplVersion -> (name, body joints, what it holds)
_SMPL_VERSIONS = {0: ("SMPL", 24), 1: ("SMPL-H", 22), 2: ("SMPL-X", 22)}


def _read_smpl(path: Path, up_axis: str | None, pelvis, max_bytes: int) -> Motion:
    """A Meshcapade ``.smpl`` file (smplcodec's layout: ``bodyPose`` [N, 22, 3] pelvis..right_wrist,
    ``headPose`` [N, 3, 3] jaw and eyes, ``left/rightHandPose`` [N, 15, 3], ``bodyTranslation`` [N, 3],
    ``frameCount``, ``frameRate``, ``shapeParameters``, ``expressionParameters``)."""
    reader = _NpzReader(path, max_bytes)
    try:
        notes = []
        version = int(reader.numeric("smplVersion").reshape(-1)[0]) if "smplVersion" in reader else 2
        if "smplVersion" not in reader:
            notes.append("no smplVersion: read as SMPL-X (smplcodec's default)")
        if version not in _SMPL_VERSIONS:
            raise MotionError(f"{path}: a .smpl file of another body model (smplVersion {version}); only SMPL, "
                              "SMPL-H and SMPL-X motions can drive the avatar")
        name, body_joints = _SMPL_VERSIONS[version]
        if "bodyPose" not in reader or "frameCount" not in reader:
            raise MotionError(f"{path}: a .smpl file with no motion (no bodyPose/frameCount): it holds a body "
                              "shape only")
        count = int(reader.numeric("frameCount").reshape(-1)[0])

        def part(key: str, joints: int, required: bool = False) -> np.ndarray:
            if key not in reader:
                if required:
                    raise MotionError(f"{path}: '{key}' is missing")
                return np.zeros((count, joints, 3))
            array = reader.numeric(key)
            if array.shape != (count, joints, 3):
                raise MotionError(f"{path}: '{key}' has shape {array.shape}, expected ({count}, {joints}, 3) "
                                  f"for {count} frames of {name}")
            return array

        poses = np.zeros((count, skeleton.NUM_JOINTS, 3))
        poses[:, :22] = part("bodyPose", body_joints, required=True)[:, :22]
        if version == 0:
            notes.append("SMPL .smpl file: hands flat, face neutral (SMPL's two hand joints dropped)")
        else:
            poses[:, skeleton.LEFT_HAND] = part("leftHandPose", 15)
            poses[:, skeleton.RIGHT_HAND] = part("rightHandPose", 15)
        if version == 2:
            poses[:, 22:25] = part("headPose", 3)
        trans = reader.numeric("bodyTranslation") if "bodyTranslation" in reader else np.zeros((count, 3))
        if trans.shape != (count, 3):
            raise MotionError(f"{path}: 'bodyTranslation' has shape {trans.shape}, expected ({count}, 3)")
        if "frameRate" in reader:
            fps = float(reader.numeric("frameRate").reshape(-1)[0])
        else:
            fps = DEFAULT_FPS
            notes.append(f"no frameRate: played at {DEFAULT_FPS:g} fps")
        betas = reader.numeric("shapeParameters").reshape(-1) if "shapeParameters" in reader else None
        expression = None
        if "expressionParameters" in reader:
            expression = reader.numeric("expressionParameters")
            expression = np.repeat(expression.reshape(1, -1), count, 0) if expression.ndim == 1 else expression
            if expression.shape[0] != count:
                raise MotionError(f"{path}: 'expressionParameters' has {expression.shape[0]} rows for {count} frames")
    finally:
        reader.close()
    poses, trans, source_up = _in_y_up(poses, trans, None, up_axis, pelvis, path, notes)
    return Motion(poses=poses, trans=trans, fps=fps, betas=betas, expression=expression,
                  source_format=f"Meshcapade .smpl ({name})", source_up_axis=source_up, notes=tuple(notes))


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


def _read_npz(path: Path, up_axis: str | None, pelvis, max_bytes: int) -> Motion:
    reader = _NpzReader(path, max_bytes)
    try:
        return _motion_from_npz(reader, up_axis, pelvis)
    finally:
        reader.close()


def _motion_from_npz(reader: _NpzReader, up_axis: str | None, pelvis) -> Motion:
    path, notes = reader.path, []
    version = reader.raw("format_version") if "format_version" in reader else None
    ours = version is not None
    if ours and (version.dtype.kind not in "iu" or version.size != 1):
        raise MotionError(f"{path}: 'format_version' must be one integer")
    if ours and int(version.reshape(())) > FORMAT_VERSION:
        raise MotionError(f"{path}: written by a newer PERSONA Studio (format {int(version.reshape(()))},"
                          f" this one reads up to {FORMAT_VERSION}); update PERSONA Studio")

    poses, model = _npz_poses(reader, notes)
    n = poses.shape[0]
    if n == 0:
        raise MotionError(f"{path}: the motion has zero frames; export at least one frame")

    def frames_of(key: str, width: int | None) -> np.ndarray:
        """The per-frame array ``key`` (float64), checked [N, ``width``] (any width when None) with N the
        poses' frame count."""
        array = reader.numeric(key)
        if array.ndim != 2 or (width is not None and array.shape[1] != width):
            want = f"(frames, {width})" if width is not None else "(frames, coefficients)"
            raise MotionError(f"{path}: '{key}' must have shape {want}, got {array.shape}")
        if array.shape[0] != n:
            raise MotionError(f"{path}: '{key}' has {array.shape[0]} frames but the poses have {n}; "
                              "all per-frame arrays must have the same number of frames")
        return array

    if "trans" in reader:
        trans = frames_of("trans", 3)
    else:
        trans = np.zeros((n, 3))
        notes.append("no 'trans' key: the root stays at the origin")
    expression = frames_of("expression", None) if "expression" in reader else None

    betas = None
    if "betas" in reader:
        betas = reader.numeric("betas")
        if betas.ndim == 2 and betas.shape[0] >= 1:
            if not np.allclose(betas, betas[:1]):
                notes.append("'betas' change over the frames: the first frame's are used")
            betas = betas[0]
        if betas.ndim != 1:
            raise MotionError(f"{path}: 'betas' must be one vector (B,), got shape {betas.shape}")
        if model != "SMPL-X":
            notes.append(f"{model} betas dropped: they live in another shape space than SMPL-X's")
            betas = None
    gender = reader.text("gender")
    if betas is not None and gender and gender.lower() not in ("neutral", "none"):
        notes.append(f"betas were fitted for the {gender} model; other body models show a "
                     "slightly different shape")

    rates = {}
    for key in _FRAME_RATE_KEYS:
        if key not in reader:
            continue
        rate = reader.numeric(key)
        if rate.size != 1:
            raise MotionError(f"{path}: '{key}' must be one number, got shape {rate.shape}")
        try:
            rates[key] = _checked_fps(rate.reshape(()))
        except MotionError as err:
            raise MotionError(f"{path}: '{key}': {err}") from None
    if len(set(rates.values())) > 1:
        raise MotionError(f"{path}: the frame-rate keys disagree ({rates}); keep one of them")
    fps = next(iter(rates.values()), DEFAULT_FPS)
    if not rates:
        notes.append(f"no frame-rate key ({' / '.join(_FRAME_RATE_KEYS)}): assumed {DEFAULT_FPS:g} fps")
    ignored = [key for key in reader.keys if key not in _NPZ_KNOWN_KEYS]
    if ignored:
        notes.append(f"ignored keys (not part of an SMPL-X motion): {', '.join(ignored)}")

    poses, trans, source_up = _in_y_up(poses, trans, reader.text("up_axis"), up_axis, pelvis, path, notes)

    if ours:
        stored = reader.raw("notes") if "notes" in reader else np.zeros(0, "U1")
        notes = [str(note) for note in stored.reshape(-1) if stored.dtype.kind == "U"] + notes
        source_format = f"{NPZ_FORMAT_NAME} v{int(version.reshape(()))}"
    else:
        source_format = f"{model} npz (AMASS layout)"
    try:
        return Motion(poses=poses, trans=trans, fps=fps, betas=betas, expression=expression,
                      source_format=source_format, source_up_axis=source_up, notes=tuple(notes))
    except MotionError as err:
        raise MotionError(f"{path}: {err}") from None


def _npz_poses(reader: _NpzReader, notes: list[str]) -> tuple[np.ndarray, str]:
    """The [N, 55, 3] SMPL-X pose of an AMASS-style archive, and the body model it was made for."""
    path = reader.path
    if "poses" in reader:
        poses = reader.numeric("poses")
        if poses.ndim == 3 and poses.shape[2] == 3:
            poses = poses.reshape(poses.shape[0], -1)
        joints = poses.shape[1] // 3 if poses.ndim == 2 and poses.shape[1] % 3 == 0 else None
        if joints not in _NPZ_LAYOUTS:
            raise MotionError(
                f"{path}: 'poses' has shape {poses.shape}; expected (frames, 165) for SMPL-X, "
                "(frames, 156) for SMPL-H or (frames, 72) for SMPL (or (frames, joints, 3))")
        poses = poses.reshape(poses.shape[0], joints, 3)
        return _as_smplx(poses, notes), _NPZ_LAYOUTS[joints]
    if "root_orient" in reader and "pose_body" in reader:
        parts = {"root_orient": 3, "pose_body": 63, "pose_jaw": 3, "pose_eye": 6, "pose_hand": 90}
        arrays = {}
        for key, width in parts.items():
            if key not in reader:
                continue
            array = reader.numeric(key)
            if array.ndim != 2 or array.shape[1] != width:
                raise MotionError(f"{path}: '{key}' must have shape (frames, {width}), got {array.shape}")
            arrays[key] = array
        n = arrays["root_orient"].shape[0]
        for key, array in arrays.items():
            if array.shape[0] != n:
                raise MotionError(f"{path}: '{key}' has {array.shape[0]} frames but 'root_orient' has "
                                  f"{n}; all per-frame arrays must have the same number of frames")
        missing = [key for key in parts if key not in arrays]
        if missing:
            notes.append(f"no {', '.join(repr(k) for k in missing)}: those joints stay at rest")
        flat = np.concatenate([arrays.get(key, np.zeros((n, width))) for key, width in parts.items()], 1)
        return flat.reshape(n, skeleton.NUM_JOINTS, 3), "SMPL-X"
    raise MotionError(
        f"{path}: not a motion layout we know. Keys found: {', '.join(reader.keys) or 'none'}. "
        "Expected 'poses' (frames x 165 SMPL-X, x 156 SMPL-H or x 72 SMPL) or the split keys "
        "'root_orient' + 'pose_body' (+ 'pose_hand', 'pose_jaw', 'pose_eye'), with 'trans' and "
        "'mocap_frame_rate'")


def _as_smplx(poses: np.ndarray, notes: list[str]) -> np.ndarray:
    """[N, J, 3] SMPL-X / SMPL-H / SMPL pose -> [N, 55, 3] SMPL-X pose."""
    n, joints = poses.shape[:2]
    if joints == 55:
        return poses
    full = np.zeros((n, skeleton.NUM_JOINTS, 3))
    full[:, :22] = poses[:, :22]  # root + 21 body joints: the same in all three models
    if joints == 52:
        full[:, skeleton.LEFT_HAND] = poses[:, 22:37]
        full[:, skeleton.RIGHT_HAND] = poses[:, 37:52]
        notes.append("SMPL-H file: hands kept, face neutral (jaw and eyes at rest)")
    else:
        notes.append("SMPL file: hands flat, face neutral (SMPL's two hand joints dropped)")
    return full


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


_JSON_SHAPES = {  # key -> (joints, required)
    "root_pose": (1, True), "body_pose": (21, True), "jaw_pose": (1, False), "leye_pose": (1, False),
    "reye_pose": (1, False), "lhand_pose": (15, False), "rhand_pose": (15, False),
}
_JSON_SLICES = {
    "root_pose": skeleton.ROOT, "body_pose": skeleton.BODY, "jaw_pose": skeleton.JAW,
    "leye_pose": skeleton.LEFT_EYE, "reye_pose": skeleton.RIGHT_EYE,
    "lhand_pose": skeleton.LEFT_HAND, "rhand_pose": skeleton.RIGHT_HAND,
}


def _frame_files(folder: Path) -> list[Path]:
    """The per-frame JSON files of a folder, ordered by the (last) number in their names."""
    numbered: dict[int, Path] = {}
    for file in folder.glob("*.json"):
        if file.name == META_FILE_NAME or file.name.startswith("."):
            continue
        digits = re.findall(r"\d+", file.stem)
        if not digits:
            raise MotionError(f"{file}: frame files must carry their frame number in the name "
                              f"(e.g. 000012.json); rename or remove this file")
        number = int(digits[-1])
        if number in numbered:
            raise MotionError(f"{folder}: {numbered[number].name} and {file.name} both claim frame "
                              f"{number}; keep one of them")
        numbered[number] = file
    return [numbered[k] for k in sorted(numbered)]


def _read_json_folder(folder: Path, up_axis: str | None, pelvis, max_bytes: int) -> Motion:
    files = _frame_files(folder)
    if not files:
        raise MotionError(f"{folder}: the motion has zero frames (no per-frame .json files in the "
                          "folder); point at the folder that holds them")
    meta_path = folder / META_FILE_NAME
    _check_size(folder, sum(f.stat().st_size for f in files)
                + (meta_path.stat().st_size if meta_path.is_file() else 0), max_bytes)
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise MotionError(f"{meta_path}: 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise MotionError(f"{meta_path}: written by a newer PERSONA Studio (format "
                          f"{meta['format_version']}); update PERSONA Studio")

    frames = [_read_json(file) for file in files]
    n = len(frames)
    notes: list[str] = list(meta.get("notes", [])) if isinstance(meta.get("notes"), list) else []
    poses = np.zeros((n, skeleton.NUM_JOINTS, 3))
    for key, (joints, required) in _JSON_SHAPES.items():
        values = _json_key(files, frames, key, required)
        if values is None:
            if not required:
                notes.append(f"no '{key}' in the frames: those joints stay at rest")
            continue
        if values.shape[1] != joints * 3:
            raise MotionError(f"{folder}: '{key}' must hold {joints} x 3 numbers per frame, "
                              f"got {values.shape[1]}")
        poses[:, _JSON_SLICES[key]] = values.reshape(n, joints, 3)
    trans = _json_key(files, frames, "trans", False)
    if trans is None:
        trans = np.zeros((n, 3))
        notes.append("no 'trans' in the frames: the root stays at the origin")
    elif trans.shape[1] != 3:
        raise MotionError(f"{folder}: 'trans' must hold 3 numbers per frame, got {trans.shape[1]}")
    expression = _json_key(files, frames, "expr", False)
    betas = _json_key(files, frames, "betas", False)
    if betas is not None:
        if not np.allclose(betas, betas[:1]):
            notes.append("'betas' change over the frames: the first frame's are used")
        betas = betas[0]

    if "fps" in meta:
        try:
            fps = _checked_fps(meta["fps"])
        except MotionError as err:
            raise MotionError(f"{meta_path}: 'fps': {err}") from None
    else:
        fps = DEFAULT_FPS
        notes.append(f"no frame rate ('fps' in {META_FILE_NAME}): assumed {DEFAULT_FPS:g} fps")
    poses, trans, source_up = _in_y_up(poses, trans, meta.get("up_axis"), up_axis, pelvis, meta_path, notes)
    try:
        return Motion(poses=poses, trans=trans, fps=fps, betas=betas, expression=expression,
                      source_format=JSON_FORMAT_NAME, source_up_axis=source_up, notes=tuple(notes))
    except MotionError as err:
        raise MotionError(f"{folder}: {err}") from None


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text("utf-8"))
    except UnicodeDecodeError:
        raise MotionError(f"{file}: not a UTF-8 text file; frame files must be JSON") from None
    except json.JSONDecodeError as err:
        raise MotionError(f"{file}: not valid JSON ({err}); fix or remove the file") from None
    if not isinstance(value, dict):
        raise MotionError(f"{file}: expected a JSON object with pose keys, got {type(value).__name__}")
    return value


def _json_key(files: list[Path], frames: list[dict], key: str, required: bool) -> np.ndarray | None:
    """[N, width] float64 values of ``key`` over all frames, or None when no frame has it."""
    present = [key in frame for frame in frames]
    if not any(present):
        if required:
            raise MotionError(f"{files[0]}: no '{key}' key. Keys found: {', '.join(sorted(frames[0]))}. "
                              f"Each frame needs {', '.join(k for k, (_, r) in _JSON_SHAPES.items() if r)}"
                              f" (optional: {', '.join(k for k, (_, r) in _JSON_SHAPES.items() if not r)},"
                              " expr, trans, betas)")
        return None
    if not all(present):
        missing = files[present.index(False)]
        raise MotionError(f"{missing}: no '{key}' key, which other frames have; every frame needs the "
                          "same keys")
    rows = []
    for file, frame in zip(files, frames):
        try:
            row = _numeric(f"'{key}'", frame[key]).astype(np.float64).reshape(-1)
            _check_finite(f"'{key}'", row)
        except MotionError as err:
            raise MotionError(f"{file}: {err}") from None
        if rows and row.shape != rows[0].shape:
            raise MotionError(f"{file}: '{key}' has {row.size} numbers but {files[0].name} has "
                              f"{rows[0].size}; every frame needs the same sizes")
        rows.append(row)
    return np.stack(rows)


# ----------------------------------------------------------------------------------------------
# Writing


def write_motion(motion: Motion, dst: str | os.PathLike) -> Path:
    """Write ``motion`` as our ``.npz`` (a path ending in .npz) or as a per-frame JSON folder."""
    dst = Path(dst)
    if dst.suffix.lower() == ".npz":
        return write_npz(motion, dst)
    if dst.suffix:
        raise MotionError(f"{dst}: give a path ending in .npz, or a folder name without an extension "
                          "for per-frame JSON")
    return write_json_folder(motion, dst)


def write_npz(motion: Motion, dst: str | os.PathLike) -> Path:
    """Our SMPL-X npz: the AMASS SMPL-X layout (readable by AMASS tools) plus up axis and version."""
    parts = {key: np.ascontiguousarray(a) for key, a in split_pose(motion.poses).items()}
    n = motion.num_frames
    arrays = {
        "poses": motion.poses.reshape(n, -1),
        "root_orient": parts["global_orient"],
        "pose_body": parts["body_pose"],
        "pose_jaw": parts["jaw_pose"],
        "pose_eye": np.concatenate([parts["leye_pose"], parts["reye_pose"]], 1),
        "pose_hand": np.concatenate([parts["left_hand_pose"], parts["right_hand_pose"]], 1),
        "trans": motion.trans,
        "expression": motion.expression,
        "mocap_frame_rate": np.array(motion.fps),
        "surface_model_type": np.array("smplx"),
        "gender": np.array("neutral"),
        "up_axis": np.array("y"),
        "format_version": np.array(FORMAT_VERSION),
        "notes": np.array(motion.notes, dtype=str).reshape(-1),
    }
    if motion.betas is not None:
        arrays["betas"] = motion.betas
    with atomic_path(dst) as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(dst)


def write_json_folder(motion: Motion, dst: str | os.PathLike) -> Path:
    """Per-frame JSON files (PERSONA keys) plus ``motion_meta.json``, written into a temporary folder
    that replaces ``dst`` only once complete. An existing ``dst`` must be empty or one of our motion
    folders (so that a mistyped path never wipes unrelated files)."""
    dst = Path(dst)
    if dst.exists() and not (dst.is_dir() and (not any(dst.iterdir()) or (dst / META_FILE_NAME).is_file())):
        raise MotionError(f"{dst}: exists and is not a motion folder written by PERSONA Studio; "
                          "choose a new folder name")
    with atomic_folder(dst) as tmp:
        parts = split_pose(motion.poses)
        for i in range(motion.num_frames):
            frame = {
                "root_pose": parts["global_orient"][i].tolist(),
                "body_pose": parts["body_pose"][i].reshape(-1, 3).tolist(),
                "jaw_pose": parts["jaw_pose"][i].tolist(),
                "leye_pose": parts["leye_pose"][i].tolist(),
                "reye_pose": parts["reye_pose"][i].tolist(),
                "lhand_pose": parts["left_hand_pose"][i].reshape(-1, 3).tolist(),
                "rhand_pose": parts["right_hand_pose"][i].reshape(-1, 3).tolist(),
                "expr": motion.expression[i].tolist(),
                "trans": motion.trans[i].tolist(),
            }
            if motion.betas is not None:
                frame["betas"] = motion.betas.tolist()
            (tmp / f"{i:06d}.json").write_text(json.dumps(frame) + "\n", "utf-8")
        meta = {"format": JSON_FORMAT_NAME, "format_version": FORMAT_VERSION, "fps": motion.fps,
                "up_axis": "y", "notes": list(motion.notes)}
        (tmp / META_FILE_NAME).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return dst


# ----------------------------------------------------------------------------------------------
# Entry points for the CLI and the app


def describe_motion(path: str | os.PathLike, rig: str | os.PathLike | None = None) -> str:
    """A short human-readable summary of a motion file (``persona-studio motion info FILE``)."""
    motion = read_motion(path, rig=rig)
    lines = [
        f"file: {path}",
        f"format: {motion.source_format}",
        f"frames: {motion.num_frames}",
        f"fps: {motion.fps:g}",
        f"duration: {motion.duration:.2f} s",
        f"up axis: {motion.source_up_axis.upper()}"
        + ("" if motion.source_up_axis == "y" else " (converted to Y-up on reading)"),
        f"betas: {'none' if motion.betas is None else len(motion.betas)}",
        f"expression coefficients: {motion.expression.shape[1]}",
    ]
    lines += ["notes:"] + [f"  - {note}" for note in motion.notes] if motion.notes else ["notes: none"]
    return "\n".join(lines)


def convert_motion(src: str | os.PathLike, dst: str | os.PathLike, fps: float | None = None,
                   overwrite: bool = False, rig: str | os.PathLike | None = None) -> Path:
    """Read ``src``, resample to ``fps`` when given, write ``dst`` (``.npz`` or a JSON folder).

    An existing ``dst`` is replaced only with ``overwrite`` (and a folder only if it is one of ours).
    """
    if Path(dst).exists() and not overwrite:
        raise MotionError(f"{dst}: already exists; choose another name or allow overwriting it "
                          "(--overwrite)")
    motion = read_motion(src, rig=rig)
    if fps is not None and float(fps) != motion.fps:
        motion = resample(motion, fps)
    return write_motion(motion, dst)


def preset_motion_paths() -> dict[str, Path]:
    """The motion presets shipped in ``presets/motions`` of the source tree: name -> path."""
    folder = project_folder("presets") / "motions"
    return {path.stem: path for path in sorted(folder.glob("*.npz"))}
