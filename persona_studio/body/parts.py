"""Body-part labels for part-segmentation colours (PERSONA supervises rendered part maps).

Each vertex takes the part of the joint that dominates its skinning; the palette is ours, and
backends with other label sets (e.g. Sapiens) map their classes onto these names.
"""

from __future__ import annotations

import numpy as np

from persona_studio.body.skeleton import JOINT_NAMES

PART_NAMES: tuple[str, ...] = (
    "background", "face_neck", "torso",
    "left_upper_arm", "left_lower_arm", "left_hand",
    "right_upper_arm", "right_lower_arm", "right_hand",
    "left_upper_leg", "left_lower_leg", "left_foot",
    "right_upper_leg", "right_lower_leg", "right_foot",
)
PART_INDEX = {name: i for i, name in enumerate(PART_NAMES)}

# [P, 3] float RGB in [0, 1]: well-separated hues, left and right of a limb clearly different.
PART_COLORS = np.array([
    (0.0, 0.0, 0.0), (0.98, 0.80, 0.55), (0.55, 0.27, 0.75),
    (0.95, 0.30, 0.30), (0.98, 0.60, 0.15), (0.95, 0.95, 0.25),
    (0.20, 0.55, 0.95), (0.25, 0.85, 0.95), (0.45, 0.95, 0.55),
    (0.85, 0.25, 0.55), (0.60, 0.10, 0.25), (0.95, 0.55, 0.75),
    (0.15, 0.35, 0.55), (0.10, 0.60, 0.45), (0.55, 0.75, 0.95),
], dtype=np.float32)


def joint_part(joint_name: str) -> str:
    """The body part a joint's skinned vertices belong to."""
    side = "left" if joint_name.startswith("left_") else "right" if joint_name.startswith("right_") else ""
    bare = joint_name.split("_", 1)[1] if side else joint_name
    if bare in ("neck", "head", "jaw", "eye"):
        return "face_neck"
    if side == "" or bare == "collar":
        return "torso"
    limb = {"shoulder": "upper_arm", "elbow": "lower_arm", "wrist": "hand", "hip": "upper_leg",
            "knee": "lower_leg", "ankle": "foot", "foot": "foot"}.get(bare, "hand")  # fingers: hand
    return f"{side}_{limb}"


JOINT_PART = np.array([PART_INDEX[joint_part(name)] for name in JOINT_NAMES], dtype=np.int64)


def vertex_parts(skinning_weights: np.ndarray) -> np.ndarray:
    """[V, 55] skinning weights -> [V] part index (into PART_NAMES) of each vertex."""
    return JOINT_PART[np.asarray(skinning_weights).argmax(axis=1)]
