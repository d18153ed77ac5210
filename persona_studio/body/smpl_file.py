"""Meshcapade ``.smpl`` motion files (smplcodec's layout: an npz of camelCase keys, numbers only), read
into a :class:`persona_studio.body.motion.Motion` without unpickling anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persona_studio.body import skeleton
from persona_studio.body.motion_core import DEFAULT_FPS, Motion, MotionError, _in_y_up, _NpzReader

# Meshcapade's smplcodec (.smpl: an npz of camelCase keys): smplVersion -> (name, body joints, what it holds)
_SMPL_VERSIONS = {0: ("SMPL", 24), 1: ("SMPL-H", 22), 2: ("SMPL-X", 22)}


def read_smpl(path: Path, up_axis: str | None, pelvis, max_bytes: int) -> Motion:
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
