"""SMPL-X's own rest skeleton: the joints of the official neutral model at zero pose and zero shape.

``SMPLX_REST_JOINTS`` is ``J_regressor @ v_template`` of ``SMPLX_NEUTRAL`` (metres; Y up, facing +Z,
the body's left at +X), in SMPL-X joint order. The numbers are facts read from public material, not
derived here (the official files need a registration): all 55 joints are published as a hard-coded
rest skeleton in huggingface/lerobot (``src/lerobot/teleoperators/pico_headset/smpl_fk.py``, commit
fc7a0bc), and the 22 body joints agree to 0.1 mm with a second table labelled "SMPL-X rest world
joint positions (from J_regressor @ v_template)" in polats/kimodo-motion-api (``web/src/rigs.js``),
whose neutral pelvis also matches a test in chu62928-cloud/vimogen_m that computes it from
``SMPLX_NEUTRAL.npz``. SMPL-X's body is not mirror-symmetric (left and right joints differ by up to
3 cm, e.g. the elbows); the hands are.

The open model bakes its template so that its limbs point the way these bones do (see
``open_model.rest_pose_rotations``): then the same SMPL-X rotations give the same limb directions.
"""

from __future__ import annotations

import numpy as np

SMPLX_REST_JOINTS = np.array([
    ( 0.0031, -0.3514,  0.0120),  # pelvis
    ( 0.0613, -0.4442, -0.0140),  # left_hip
    (-0.0601, -0.4553, -0.0092),  # right_hip
    ( 0.0004, -0.2415, -0.0156),  # spine1
    ( 0.1160, -0.8229, -0.0234),  # left_knee
    (-0.1044, -0.8177, -0.0260),  # right_knee
    ( 0.0098, -0.1097, -0.0215),  # spine2
    ( 0.0726, -1.2260, -0.0552),  # left_ankle
    (-0.0889, -1.2284, -0.0462),  # right_ankle
    (-0.0015, -0.0574,  0.0069),  # spine3
    ( 0.1198, -1.2840,  0.0630),  # left_foot
    (-0.1278, -1.2868,  0.0728),  # right_foot
    (-0.0137,  0.1077, -0.0247),  # neck
    ( 0.0448,  0.0275, -0.0003),  # left_collar
    (-0.0492,  0.0269, -0.0065),  # right_collar
    ( 0.0111,  0.2682, -0.0040),  # head
    ( 0.1641,  0.0852, -0.0158),  # left_shoulder
    (-0.1518,  0.0804, -0.0191),  # right_shoulder
    ( 0.4182,  0.0131, -0.0582),  # left_elbow
    (-0.4229,  0.0439, -0.0456),  # right_elbow
    ( 0.6702,  0.0363, -0.0607),  # left_wrist
    (-0.6722,  0.0394, -0.0609),  # right_wrist
    (-0.0047,  0.2677, -0.0096),  # jaw
    ( 0.0316,  0.3108,  0.0622),  # left_eye
    (-0.0316,  0.3108,  0.0622),  # right_eye
    ( 0.7721,  0.0276, -0.0413),  # left_index1
    ( 0.8040,  0.0298, -0.0383),  # left_index2
    ( 0.8266,  0.0275, -0.0383),  # left_index3
    ( 0.7796,  0.0300, -0.0647),  # left_middle1
    ( 0.8102,  0.0308, -0.0687),  # left_middle2
    ( 0.8337,  0.0288, -0.0728),  # left_middle3
    ( 0.7542,  0.0218, -0.1044),  # left_pinky1
    ( 0.7697,  0.0206, -0.1164),  # left_pinky2
    ( 0.7852,  0.0190, -0.1277),  # left_pinky3
    ( 0.7676,  0.0270, -0.0880),  # left_ring1
    ( 0.7957,  0.0285, -0.0933),  # left_ring2
    ( 0.8185,  0.0271, -0.1004),  # left_ring3
    ( 0.7108,  0.0183, -0.0351),  # left_thumb1
    ( 0.7278,  0.0193, -0.0101),  # left_thumb2
    ( 0.7484,  0.0142,  0.0054),  # left_thumb3
    (-0.7721,  0.0276, -0.0413),  # right_index1
    (-0.8040,  0.0298, -0.0383),  # right_index2
    (-0.8266,  0.0275, -0.0383),  # right_index3
    (-0.7796,  0.0300, -0.0647),  # right_middle1
    (-0.8102,  0.0308, -0.0687),  # right_middle2
    (-0.8337,  0.0288, -0.0728),  # right_middle3
    (-0.7542,  0.0218, -0.1044),  # right_pinky1
    (-0.7697,  0.0206, -0.1164),  # right_pinky2
    (-0.7852,  0.0190, -0.1277),  # right_pinky3
    (-0.7676,  0.0270, -0.0880),  # right_ring1
    (-0.7957,  0.0285, -0.0933),  # right_ring2
    (-0.8185,  0.0271, -0.1004),  # right_ring3
    (-0.7108,  0.0183, -0.0351),  # right_thumb1
    (-0.7278,  0.0193, -0.0101),  # right_thumb2
    (-0.7484,  0.0142,  0.0054),  # right_thumb3
])
