"""DWPose/OpenPose-style skeleton frames from projected SMPL-X keypoints: what MimicMotion takes.

18 body points in OpenPose's COCO-18 order with the usual limb colours, 21 points per hand with
rainbow finger edges, and 68 face points; drawn on black.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from persona_studio.body.skeleton import JOINT_INDEX as J
from persona_studio.body.landmarks import EXTRA, FACE_START, hand_to_joint

# OpenPose COCO-18: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip,
# r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear. Neck = mid-shoulders.
BODY18_SOURCES: tuple[int | tuple[int, int], ...] = (
    EXTRA["nose"], (J["left_shoulder"], J["right_shoulder"]), J["right_shoulder"], J["right_elbow"],
    J["right_wrist"], J["left_shoulder"], J["left_elbow"], J["left_wrist"], J["right_hip"], J["right_knee"],
    J["right_ankle"], J["left_hip"], J["left_knee"], J["left_ankle"], EXTRA["reye"], EXTRA["leye"],
    EXTRA["rear"], EXTRA["lear"],
)
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
         (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
LIMB_COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
               (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
               (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
HAND_EDGES = tuple((0 if k % 4 == 0 else k, k + 1) for k in range(20))
FACE68 = tuple(range(FACE_START + 51, FACE_START + 68)) + tuple(range(FACE_START, FACE_START + 51))  # contour first


def openpose_points(joints_uv: np.ndarray) -> dict[str, np.ndarray]:
    """[J, 2] projected model keypoints -> body [18, 2], left/right hand [21, 2], face [68, 2] pixels."""
    body = np.stack([joints_uv[list(src)].mean(0) if isinstance(src, tuple) else joints_uv[src]
                     for src in BODY18_SOURCES])
    hands = {side: joints_uv[[hand_to_joint(side)[k] for k in range(21)]] for side in ("left", "right")}
    return {"body": body, "left_hand": hands["left"], "right_hand": hands["right"], "face": joints_uv[list(FACE68)]}


def draw_skeleton(points: dict[str, np.ndarray], width: int, height: int) -> np.ndarray:
    """OpenPose-style drawing on black -> [H, W, 3] uint8 RGB (limb width scales with the image)."""
    canvas = np.zeros((height, width, 3), np.uint8)
    stick = max(2, round(4 * height / 1024))
    body = points["body"]
    for (a, b), colour in zip(LIMBS, LIMB_COLORS):
        (xa, ya), (xb, yb) = body[a], body[b]
        length = float(np.hypot(xa - xb, ya - yb))
        angle = float(np.degrees(np.arctan2(ya - yb, xa - xb)))
        poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), stick), int(angle),
                                0, 360, 1)
        layer = canvas.copy()
        cv2.fillConvexPoly(layer, poly, tuple(int(c * 0.6) for c in colour))
        canvas = np.maximum(canvas, layer)
    for (x, y), colour in zip(body, LIMB_COLORS):
        cv2.circle(canvas, (int(x), int(y)), stick, colour, -1)
    for side in ("left_hand", "right_hand"):
        hand = points[side]
        for k, (a, b) in enumerate(HAND_EDGES):
            r, g, bl = colorsys.hsv_to_rgb(k / len(HAND_EDGES), 1.0, 1.0)
            cv2.line(canvas, tuple(int(v) for v in hand[a]), tuple(int(v) for v in hand[b]),
                     (int(r * 255), int(g * 255), int(bl * 255)), max(1, stick // 2))
        for x, y in hand:
            cv2.circle(canvas, (int(x), int(y)), max(1, stick // 2), (0, 0, 255), -1)
    for x, y in points["face"]:
        cv2.circle(canvas, (int(x), int(y)), max(1, stick // 3), (255, 255, 255), -1)
    return canvas
