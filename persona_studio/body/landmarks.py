"""Which body-model point each MediaPipe landmark observes.

SMPL-X's output ``joints`` are the 55 skeleton joints, then smplx's 21 extra vertex keypoints (nose,
eyes, ears, toes, heels, fingertips), then the 51 inner face landmarks (iBUG-68 points 17..67).
"""

from __future__ import annotations

import numpy as np

from persona_studio.body.skeleton import JOINT_INDEX, NUM_JOINTS

EXTRA_NAMES = ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
               "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex",
               "rmiddle", "rring", "rpinky")
EXTRA = {name: NUM_JOINTS + i for i, name in enumerate(EXTRA_NAMES)}
FACE_START = NUM_JOINTS + len(EXTRA_NAMES)  # iBUG landmark k (17..67) is output joint FACE_START + k - 17

# MediaPipe Pose landmark -> (output joint, weight). Pose hips sit on the outside of the pelvis, higher
# and wider than the hip joints, so they count less.
POSE_TO_JOINT: dict[int, tuple[int, float]] = {
    0: (EXTRA["nose"], 1.0), 2: (EXTRA["leye"], 1.0), 5: (EXTRA["reye"], 1.0),
    7: (EXTRA["lear"], 0.5), 8: (EXTRA["rear"], 0.5),
    11: (JOINT_INDEX["left_shoulder"], 1.0), 12: (JOINT_INDEX["right_shoulder"], 1.0),
    13: (JOINT_INDEX["left_elbow"], 1.0), 14: (JOINT_INDEX["right_elbow"], 1.0),
    15: (JOINT_INDEX["left_wrist"], 1.0), 16: (JOINT_INDEX["right_wrist"], 1.0),
    23: (JOINT_INDEX["left_hip"], 0.5), 24: (JOINT_INDEX["right_hip"], 0.5),
    25: (JOINT_INDEX["left_knee"], 1.0), 26: (JOINT_INDEX["right_knee"], 1.0),
    27: (JOINT_INDEX["left_ankle"], 1.0), 28: (JOINT_INDEX["right_ankle"], 1.0),
    29: (EXTRA["LHeel"], 0.7), 30: (EXTRA["RHeel"], 0.7),
    31: (EXTRA["LBigToe"], 0.7), 32: (EXTRA["RBigToe"], 0.7),
}

# The body keypoints the fit's quality figures are measured on (the confident skeleton points).
SCORED_POSE_LANDMARKS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def hand_to_joint(side: str) -> dict[int, int]:
    """MediaPipe hand landmark (0..20) -> output joint, for ``side`` "left" or "right"."""
    tip = "l" if side == "left" else "r"
    out = {0: JOINT_INDEX[f"{side}_wrist"]}
    for k, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        base = 1 + 4 * k
        for seg in range(3):
            out[base + seg] = JOINT_INDEX[f"{side}_{finger}{seg + 1}"]
        out[base + 3] = EXTRA[f"{tip}{finger}"]
    return out


# iBUG-68 points 17..67 -> MediaPipe Face Mesh vertex (the widely used correspondence).
IBUG_FROM_MEDIAPIPE = np.array([
    46, 53, 52, 65, 55,  # right brow 17-21
    285, 295, 282, 283, 276,  # left brow 22-26
    168, 197, 5, 4,  # nose bridge 27-30
    75, 97, 2, 326, 305,  # nose base 31-35
    33, 160, 158, 133, 153, 144,  # right eye 36-41
    362, 385, 387, 263, 373, 380,  # left eye 42-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips 48-59
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips 60-67
])


def targets(body: np.ndarray, left_hand: np.ndarray, right_hand: np.ndarray, face: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detected landmarks -> (output joint ids [K], 2D targets [K, 2], weights [K] = confidence x weight)."""
    ids, xy, w = [], [], []
    for landmark, (joint, weight) in POSE_TO_JOINT.items():
        ids.append(joint); xy.append(body[landmark, :2]); w.append(body[landmark, 2] * weight)
    for side, hand in (("left", left_hand), ("right", right_hand)):
        for landmark, joint in hand_to_joint(side).items():
            if landmark == 0:
                continue  # the wrist is the body's
            ids.append(joint); xy.append(hand[landmark, :2]); w.append(hand[landmark, 2])
    for k, mp in enumerate(IBUG_FROM_MEDIAPIPE):
        ids.append(FACE_START + k); xy.append(face[mp, :2]); w.append(face[mp, 2] * 0.5)
    return np.array(ids), np.array(xy, dtype=np.float32), np.array(w, dtype=np.float32)


# Body segments whose slope towards or away from the camera the fit takes from the detector's own depth
# estimate: (MediaPipe landmarks averaged for the start, for the end, weight). A single photo fixes each
# segment's direction across the image; only the slope in depth (lean, stride, arms forward or back) is
# left open, and this is what these segments settle.
DEPTH_SEGMENTS: tuple[tuple[tuple[int, ...], tuple[int, ...], float], ...] = (
    ((23, 24), (11, 12), 1.0),  # hips -> shoulders: the lean
    ((11,), (13,), 1.0), ((13,), (15,), 1.0), ((12,), (14,), 1.0), ((14,), (16,), 1.0),  # arms
    ((23,), (25,), 1.0), ((25,), (27,), 1.0), ((24,), (26,), 1.0), ((26,), (28,), 1.0),  # legs: the stride
    ((23,), (24,), 0.5), ((11,), (12,), 0.5),  # the turn of the hips and of the shoulders
    ((27,), (31,), 0.5), ((28,), (32,), 0.5),  # feet
    ((11, 12), (0,), 0.5),  # the head forward or back
    # The neck's lean: the ears lie near the head's centre, so their depth against the shoulders is the
    # head carried forward or back, which the nose (in front of that centre, and moved by a nod) blurs.
    ((11, 12), (7, 8), 0.5),
)


def depth_segments(body: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start [S, 33], end [S, 33]) averaging matrices over MediaPipe Pose landmarks and weights [S] =
    weight x the least visibility among the segment's landmarks (``body`` [33, 3], last column visibility)."""
    start = np.zeros((len(DEPTH_SEGMENTS), 33), np.float32)
    end = np.zeros_like(start)
    weights = np.zeros(len(DEPTH_SEGMENTS), np.float32)
    for s, (a, b, weight) in enumerate(DEPTH_SEGMENTS):
        start[s, list(a)] = 1.0 / len(a)
        end[s, list(b)] = 1.0 / len(b)
        weights[s] = weight * float(body[list(a + b), 2].min())
    return start, end, weights


def pose_landmark_joints() -> np.ndarray:
    """[33] the output joint each MediaPipe Pose landmark observes (-1 where none)."""
    joints = np.full(33, -1, np.int64)
    for landmark, (joint, _) in POSE_TO_JOINT.items():
        joints[landmark] = joint
    return joints
