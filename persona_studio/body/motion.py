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
  ``expr``, ``trans``, optional ``betas``), plus an optional ``motion_meta.json`` (fps, up axis);
- Meshcapade ``.smpl`` files (:mod:`persona_studio.body.smpl_file`) and BVH files retargeted onto SMPL-X
  (:mod:`persona_studio.body.bvh`).

Files are untrusted input: a pickled array is refused, never unpickled, each array's header is checked
against the data it holds before anything is allocated, sizes are checked before reading, and every problem raises :class:`MotionError`
with a message that says what is wrong and what to do.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from persona_studio.body import skeleton
from persona_studio.fileio import atomic_folder, atomic_path
from persona_studio.paths import project_folder

from persona_studio.body.motion_core import (  # re-exported: the motion API is imported from here
    DEFAULT_FPS,
    FORMAT_VERSION,
    JSON_FORMAT_NAME,
    MAX_FPS,
    MAX_MOTION_BYTES,
    META_FILE_NAME,
    Motion,
    MotionError,
    NPZ_FORMAT_NAME,
    UP_AXES,
    _FRAME_RATE_KEYS,
    _NPZ_KNOWN_KEYS,
    _NPZ_LAYOUTS,
    _NpzReader,
    _checked_fps,
    _in_y_up,
    infer_up_axis,
    resample,
    slerp,
    split_pose,
    to_y_up,
)


__all__ = ["MAX_FPS", "infer_up_axis", "slerp", "to_y_up"]  # beside what this module uses itself


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
        from persona_studio.body.motion_json import read_json_folder

        return read_json_folder(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() == ".json":
        raise MotionError(f"{path}: a single JSON file; give the folder that holds the per-frame "
                          "JSON files instead")
    if path.suffix.lower() == ".bvh":
        from persona_studio.body.bvh import read_bvh_motion

        return read_bvh_motion(path, rig, max_bytes)
    if path.suffix.lower() == ".smpl":
        from persona_studio.body.smpl_file import read_smpl

        return read_smpl(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
        return _read_npz(path, up_axis, pelvis, max_bytes)
    if path.suffix.lower() in (".pkl", ".pickle", ".pt"):
        raise MotionError(f"{path}: pickle files are never opened (they can run code); save the arrays "
                          "as an .npz file with numpy.savez instead")
    raise MotionError(f"{path}: unsupported motion file; give an AMASS / SMPL-X .npz, a .smpl, a .bvh file "
                      "or a folder of per-frame .json files")



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
