"""Folders of per-frame JSON motions (PERSONA/ExAvatar style: one file per frame, ordered by the number
in its name), read into a :class:`persona_studio.body.motion.Motion`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from persona_studio.body import skeleton
from persona_studio.body.motion_core import (DEFAULT_FPS, FORMAT_VERSION, JSON_FORMAT_NAME, META_FILE_NAME, Motion,
                                         MotionError, _check_finite, _check_size, _checked_fps, _in_y_up, _numeric)

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


def read_json_folder(folder: Path, up_axis: str | None, pelvis, max_bytes: int) -> Motion:
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
