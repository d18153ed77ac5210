"""Driving motions for the subject: its own body (betas) re-posed along motions, seen by a fixed camera.

Like PERSONA: hands flat, face neutral, the root's travel kept in frame, a portrait camera (576x1024 by
default) with a fixed focal length that looks from the photo's viewpoint, so frame 0 shows the body as
the photo does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body.model import BodyModel, smplx_tensors
from persona_studio.body.motion import Motion, split_pose
from persona_studio.workspace.subject import Subject
from persona_studio.render.camera import Camera

DEFAULT_SIZE = (576, 1024)  # width, height (MimicMotion's portrait)
MAX_ROOT_TRAVEL = 0.25  # metres the root may wander sideways from its mean position
FILL = 0.82  # share of the image height the standing body takes at frame 0


@dataclass
class DrivingSequence:
    """Per-frame SMPL-X parameters (subject's betas) and one fixed camera."""

    params: dict[str, np.ndarray]  # smplx keywords, each [T, ...] float32
    camera: Camera
    motion_names: list[str]  # per frame: the motion it came from
    fps: float

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return len(self.motion_names)

    def frame_params(self, index: int) -> dict[str, np.ndarray]:
        """The SMPL-X parameters of frame ``index`` (no batch axis)."""
        return {k: v[index] for k, v in self.params.items()}

    def torch_params(self, frames: slice | np.ndarray = slice(None)) -> dict[str, torch.Tensor]:
        """The parameters of ``frames`` as tensors, each [T', ...]."""
        return {k: torch.as_tensor(v[frames]) for k, v in self.params.items()}


def _repose_motion(motion: Motion, subject: Subject, frames: np.ndarray) -> dict[str, np.ndarray]:
    """One motion's frames as the subject: root turned so frame 0 faces like the photo."""
    parts = split_pose(motion.poses)
    root = Rotation.from_rotvec(parts["global_orient"][frames])
    to_photo = Rotation.from_rotvec(subject.smplx["global_orient"]) * root[0].inv()
    trans = motion.trans[frames] - motion.trans[frames[0]]
    trans = to_photo.apply(trans)
    trans[:, [0, 2]] -= trans[:, [0, 2]].mean(0)
    trans[:, [0, 2]] = np.clip(trans[:, [0, 2]], -MAX_ROOT_TRAVEL, MAX_ROOT_TRAVEL)
    n = len(frames)
    zeros = lambda k: np.zeros((n, k), np.float32)  # noqa: E731
    return {
        "global_orient": (to_photo * root).as_rotvec().astype(np.float32),
        "body_pose": parts["body_pose"][frames].astype(np.float32),
        "left_hand_pose": zeros(45), "right_hand_pose": zeros(45),  # flat hands
        "jaw_pose": zeros(3), "leye_pose": zeros(3), "reye_pose": zeros(3),  # neutral face
        "expression": zeros(len(subject.smplx["expression"])),
        "betas": np.repeat(subject.smplx["betas"][None], n, 0).astype(np.float32),
        "transl": trans.astype(np.float32),
    }


def portrait_camera(model: BodyModel, subject: Subject, size: tuple[int, int] = DEFAULT_SIZE) -> Camera:
    """The photo's camera re-framed as a fixed portrait camera around the subject's fitted body."""
    params = smplx_tensors(subject.smplx)
    with torch.no_grad():
        vertices = model.forward(**params).vertices[0].numpy()
    photo = subject.camera
    cam = vertices @ photo.R.T + photo.t
    depth = float(np.median(cam[:, 2]))
    height_m = float(cam[:, 1].max() - cam[:, 1].min())
    width, height = size
    focal = FILL * height * depth / max(height_m, 1e-3)
    centre = cam.mean(0)
    # Principal point placing the body's centre at the image centre (the camera keeps R and t).
    cx = width / 2 - focal * centre[0] / centre[2]
    cy = height / 2 - focal * centre[1] / centre[2]
    return Camera(photo.R, photo.t, focal, focal, cx, cy, width, height)


def driving_sequence(model: BodyModel, subject: Subject, motions: dict[str, Motion], *, fps: float = 30.0,
                     max_frames: int | None = None, size: tuple[int, int] = DEFAULT_SIZE) -> DrivingSequence:
    """Concatenate ``motions`` (name -> Motion, resampled to ``fps``), optionally thinned evenly to
    ``max_frames`` in total, re-posed as the subject."""
    from persona_studio.body.motion import resample

    chunks, names = [], []
    resampled = {name: (m if abs(m.fps - fps) < 1e-6 else resample(m, fps)) for name, m in motions.items()}
    total = sum(m.num_frames for m in resampled.values())
    keep = 1.0 if max_frames is None or max_frames >= total else max_frames / total
    for name, motion in resampled.items():
        count = max(1, round(motion.num_frames * keep))
        frames = np.unique(np.linspace(0, motion.num_frames - 1, count).round().astype(int))
        chunks.append(_repose_motion(motion, subject, frames))
        names += [name] * len(frames)
    params = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return DrivingSequence(params, portrait_camera(model, subject, size), names, fps)


def posed_joints(model: BodyModel, sequence: DrivingSequence, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """[T, V, 3] vertices and [T, J, 3] joints (skeleton, extras, 68 face points) of every frame."""
    vertices, joints = [], []
    with torch.no_grad():
        for start in range(0, sequence.num_frames, batch):
            out = model.forward(**sequence.torch_params(slice(start, start + batch)))
            vertices.append(out.vertices.numpy())
            joints.append(out.joints.numpy())
    return np.concatenate(vertices), np.concatenate(joints)

