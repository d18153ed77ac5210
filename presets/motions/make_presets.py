"""Author the built-in SMPL-X motion presets (run: ``python presets/motions/make_presets.py [OUT_DIR]``).

Every clip is a list of keyframes (time in seconds, pose) turned into 30 fps frames by monotone cubic
interpolation, written in our npz format (Y up, facing +Z). Nothing here comes from third-party
motion data. Pose conventions (SMPL-X rest = T-pose, local rotations with world-aligned axes at rest,
the subject's left = +X): knee flexion = +X on the knee; hip flexion (leg forward) = -X on the hip;
leg out to the side = +Z on the left hip, -Z on the right; lowering the left arm = -Z on
left_shoulder (right: +Z); raising it forward = -Y (right: +Y); elbow flexion in T-pose: left -Y,
right +Y; bending the spine forward = +X; turning the body = +Y on the root.

The feet are kept on the floor with an approximate leg skeleton (LEG_REST below): each frame's root
height puts the lowest sole point at the rest-pose floor; the squat also keeps the feet in place.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.spatial.transform import Rotation

from persona_studio.body import skeleton
from persona_studio.body.motion import Motion, write_npz

FPS = 30
J = skeleton.JOINT_INDEX
PI = math.pi

# Rest positions (metres, Y up) of the leg joints, rounded from the open body model's rest pose (pelvis
# at skeleton.PELVIS_REST), and sole points (heel under the ankle, toe tip ahead of the ball) as
# offsets from their joint. Only used to keep the feet near the floor.
LEG_REST = {
    "pelvis": skeleton.PELVIS_REST,
    "left_hip": np.array([0.11, -0.437, 0.032]), "right_hip": np.array([-0.11, -0.437, 0.032]),
    "left_knee": np.array([0.171, -0.858, 0.021]), "right_knee": np.array([-0.162, -0.859, 0.012]),
    "left_ankle": np.array([0.125, -1.287, -0.013]), "right_ankle": np.array([-0.145, -1.291, -0.009]),
    "left_foot": np.array([0.176, -1.35, 0.116]), "right_foot": np.array([-0.188, -1.355, 0.122]),
}
SOLE_POINTS = (("left_ankle", (0.0, -0.075, -0.045)), ("right_ankle", (0.0, -0.075, -0.045)),
               ("left_foot", (0.0, -0.025, 0.06)), ("right_foot", (0.0, -0.025, 0.06)))


def rot(*ops) -> np.ndarray:
    """Axis-angle of elementary rotations applied in order: rot("z", -1.2, "x", -0.3)."""
    r = Rotation.identity()
    for axis, angle in zip(ops[::2], ops[1::2]):
        r = Rotation.from_euler(axis, angle) * r
    return r.as_rotvec()


def mirror(pose: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The left-right mirror image of a pose (X -> -X): swap sides, negate Y and Z rotations."""
    out = {}
    for name, r in pose.items():
        other = name.replace("left", "@").replace("right", "left").replace("@", "right")
        out[other] = np.array([r[0], -r[1], -r[2]])
    return out


def fingers(side: str, curl: tuple[float, float, float], thumb: float = 0.0) -> dict[str, np.ndarray]:
    """Curl the four fingers of one hand toward the palm (per phalanx angle) and the thumb inward."""
    sign = -1.0 if side == "left" else 1.0  # palm faces -Y in T-pose; left fingers point +X
    pose = {f"{side}_{finger}{k + 1}": rot("z", sign * curl[k])
            for finger in ("index", "middle", "ring", "pinky") for k in range(3)}
    pose.update({f"{side}_thumb{k}": rot("y", -sign * thumb) for k in (2, 3)})
    return pose


RELAXED_HANDS = {**fingers("left", (0.2, 0.25, 0.15), 0.2), **fingers("right", (0.2, 0.25, 0.15), 0.2)}
FISTS = {**fingers("left", (1.4, 1.6, 1.0), 0.8), **fingers("right", (1.4, 1.6, 1.0), 0.8)}
ARMS_DOWN = {"left_shoulder": rot("z", -1.2), "right_shoulder": rot("z", 1.2),
             "left_elbow": rot("y", -0.15), "right_elbow": rot("y", 0.15)}
STAND = {**ARMS_DOWN, **RELAXED_HANDS}
GUARD = {  # boxing guard: fists in front of the chin, knees soft
    **FISTS,
    "left_shoulder": rot("z", -1.25, "x", -0.5), "right_shoulder": rot("z", 1.25, "x", -0.5),
    "left_elbow": rot("y", -2.0), "right_elbow": rot("y", 2.0),
    "left_hip": rot("x", -0.15), "right_hip": rot("x", -0.15),
    "left_knee": rot("x", 0.3), "right_knee": rot("x", 0.3),
    "left_ankle": rot("x", -0.15), "right_ankle": rot("x", -0.15),
    "spine1": rot("x", 0.08), "neck": rot("x", 0.1),
}


def squat_legs(depth: float) -> dict[str, np.ndarray]:
    """Both legs and the trunk of a squat, depth in [0, 1]: feet flat, knees over the toes."""
    thigh, shin, pitch = 1.25 * depth, 0.55 * depth, 0.35 * depth  # world angles from vertical
    return {"pelvis": rot("x", pitch), "spine2": rot("x", 0.1 * depth),
            **{f"{s}_hip": rot("x", -thigh - pitch) for s in ("left", "right")},
            **{f"{s}_knee": rot("x", thigh + shin) for s in ("left", "right")},
            **{f"{s}_ankle": rot("x", -shin) for s in ("left", "right")}}


def turn_around():
    sway = {"left_shoulder": rot("z", -1.1), "right_shoulder": rot("z", 1.1)}
    keys = [(0.0, STAND), (0.6, STAND)]
    for step in range(1, 9):  # eight 45-degree steps with a small arm swing, facing +Z again at the end
        arms = sway if step % 2 else ARMS_DOWN
        keys.append((0.6 + 0.6 * step, {**STAND, **arms, "pelvis": np.array([0.0, step * PI / 4, 0.0])}))
    keys.append((6.0, {**STAND, "pelvis": np.array([0.0, 2 * PI, 0.0])}))
    return keys, 6.0, False


def arms_raise_lower():
    t_pose = {**RELAXED_HANDS}
    overhead = {**RELAXED_HANDS, "left_shoulder": rot("z", 1.3), "right_shoulder": rot("z", -1.3),
                "left_collar": rot("z", 0.25), "right_collar": rot("z", -0.25)}
    forward = {**RELAXED_HANDS, "left_shoulder": rot("z", -0.1, "y", -1.45),
               "right_shoulder": rot("z", 0.1, "y", 1.45)}
    keys = [(0.0, STAND), (0.4, STAND), (1.4, t_pose), (2.4, overhead), (2.8, overhead), (3.8, t_pose),
            (4.8, forward), (5.2, forward), (6.2, STAND), (6.6, STAND)]
    return keys, 6.6, False


def light_punches():
    def punch(side: str) -> dict[str, np.ndarray]:
        jab = {"left_shoulder": rot("z", -0.15, "y", -1.45), "left_elbow": rot("y", -0.1),
               "spine3": rot("y", -0.2), "spine2": rot("y", -0.15), "head": rot("y", 0.3)}
        return {**GUARD, **(jab if side == "left" else mirror(jab))}

    keys = [(0.0, STAND), (0.7, GUARD)]
    for t, side in ((1.2, "left"), (1.9, "right"), (2.6, "left"), (3.1, "left"), (3.8, "right"),
                    (4.4, "left"), (4.9, "right")):
        keys += [(t - 0.2, GUARD), (t, punch(side)), (t + 0.25, GUARD)]
    keys += [(5.9, GUARD), (6.6, STAND), (7.0, STAND)]
    return keys, 7.0, False


def kicks():
    def kick(side: str, phase: str) -> dict[str, np.ndarray]:
        leg = {"chamber": {"left_hip": rot("x", -1.3), "left_knee": rot("x", 2.0), "left_ankle": rot("x", 0.3)},
               "extend": {"left_hip": rot("x", -1.35), "left_knee": rot("x", 0.15), "left_ankle": rot("x", 0.5)}}
        pose = {**leg[phase], "spine1": rot("x", -0.15), "spine2": rot("x", -0.1),
                "right_hip": rot("z", -0.05), "right_knee": rot("x", 0.15), "right_ankle": rot("x", -0.1)}
        return {**GUARD, **(pose if side == "left" else mirror(pose))}

    keys = [(0.0, STAND), (0.6, GUARD)]
    for t, side in ((1.2, "right"), (2.8, "left"), (4.4, "right")):
        keys += [(t - 0.3, GUARD), (t, kick(side, "chamber")), (t + 0.25, kick(side, "extend")),
                 (t + 0.55, kick(side, "chamber")), (t + 0.9, GUARD)]
    keys += [(6.0, GUARD), (6.6, STAND), (7.0, STAND)]
    return keys, 7.0, False


def squat():
    arms_forward = {"left_shoulder": rot("z", -0.1, "y", -1.45), "right_shoulder": rot("z", 0.1, "y", 1.45)}
    up = {**STAND, **arms_forward}
    down = {**up, **squat_legs(1.0)}
    keys = [(0.0, STAND), (0.4, STAND), (1.2, up), (2.4, down), (2.7, down), (3.9, up), (5.1, down),
            (5.4, down), (6.6, up), (7.4, STAND), (7.8, STAND)]
    return keys, 7.8, True


def walk_in_place():
    def step(side: str, lift: float) -> dict[str, np.ndarray]:
        pose = {"left_hip": rot("x", -0.85 * lift), "left_knee": rot("x", 1.4 * lift),
                "left_ankle": rot("x", -0.15 * lift),
                # the opposite arm swings forward, the same-side arm back
                "right_shoulder": rot("z", 1.25, "x", -0.45 * lift), "right_elbow": rot("y", 0.15 + 0.35 * lift),
                "left_shoulder": rot("z", -1.25, "x", 0.3 * lift), "left_elbow": rot("y", -0.15),
                "spine2": rot("y", -0.06 * lift), "pelvis": rot("y", 0.05 * lift)}
        return {**RELAXED_HANDS, **(pose if side == "left" else mirror(pose))}

    keys, t, period = [(0.0, STAND), (0.5, step("left", 0.0))], 0.5, 1.2
    while t + period <= 6.5:
        keys += [(t + 0.3, step("left", 1.0)), (t + 0.6, step("left", 0.0)),
                 (t + 0.9, step("right", 1.0)), (t + 1.2, step("right", 0.0))]
        t += period
    keys.append((t + 0.4, STAND))
    return keys, t + 0.4, False


def wave():
    def raised(elbow: float, wrist: float) -> dict[str, np.ndarray]:
        # upper arm to the side a little above the shoulder, turned so that the elbow bends upward and
        # the palm faces forward; waving swings the forearm in the frontal plane
        return {**STAND, "right_shoulder": rot("x", -PI / 2, "z", -0.25), "right_elbow": rot("y", elbow),
                "right_wrist": rot("y", wrist), **fingers("right", (0.05, 0.05, 0.05)),
                "head": rot("z", -0.1, "y", -0.1), "spine3": rot("z", 0.05)}

    keys = [(0.0, STAND), (0.3, STAND), (1.1, raised(1.4, 0.0))]
    t = 1.1
    for k in range(8):
        t += 0.3
        keys.append((t, raised(1.05, -0.3) if k % 2 == 0 else raised(1.75, 0.3)))
    keys += [(t + 0.3, raised(1.4, 0.0)), (t + 1.1, STAND), (t + 1.4, STAND)]
    return keys, t + 1.4, False


def dance():
    arms_v = {"left_shoulder": rot("z", 0.8), "right_shoulder": rot("z", -0.8)}
    disco = {**STAND, "right_shoulder": rot("z", -1.0, "y", 0.3), "right_elbow": rot("y", 0.05),
             "left_shoulder": rot("z", -1.3, "x", 0.3), "left_elbow": rot("y", -1.2),
             "spine2": rot("y", -0.25), "spine3": rot("y", -0.15), "head": rot("z", -0.2, "y", 0.3),
             "right_hip": rot("z", -0.1), "left_hip": rot("z", 0.15, "x", -0.2),
             "left_knee": rot("x", 0.45), **fingers("right", (1.4, 1.6, 1.0))}
    wide_plie = {**RELAXED_HANDS, "left_hip": rot("z", 0.45, "x", -0.7), "right_hip": rot("z", -0.45, "x", -0.7),
                 "left_knee": rot("x", 1.0), "right_knee": rot("x", 1.0),
                 "left_ankle": rot("z", -0.45, "x", -0.3), "right_ankle": rot("z", 0.45, "x", -0.3),
                 "left_shoulder": rot("z", 0.2), "right_shoulder": rot("z", -0.2),
                 "left_elbow": rot("y", -0.4), "right_elbow": rot("y", 0.4)}
    knee_up = {**RELAXED_HANDS, "left_shoulder": rot("z", 1.35), "right_shoulder": rot("z", -1.35),
               "left_collar": rot("z", 0.2), "right_collar": rot("z", -0.2),
               "left_hip": rot("x", -1.4), "left_knee": rot("x", 1.7), "left_ankle": rot("x", 0.4),
               "spine1": rot("x", -0.1), "spine3": rot("x", -0.1), "head": rot("x", -0.2)}
    lunge = {**RELAXED_HANDS, "right_hip": rot("x", -0.5), "right_knee": rot("x", 0.7),
             "right_ankle": rot("x", -0.2), "left_hip": rot("x", 0.5), "left_knee": rot("x", 0.2),
             "left_ankle": rot("x", -0.3),
             "right_shoulder": rot("z", 0.3, "y", 1.2), "left_shoulder": rot("z", -0.9, "x", 0.7),
             "left_elbow": rot("y", -0.3), "spine2": rot("y", 0.3), "spine3": rot("y", 0.2)}
    side_bend = {**RELAXED_HANDS, "left_shoulder": rot("z", 1.4), "right_shoulder": rot("z", 0.4),
                 "right_elbow": rot("y", 1.2), "spine1": rot("z", 0.15), "spine2": rot("z", 0.2),
                 "spine3": rot("z", 0.2), "left_hip": rot("z", 0.15), "right_hip": rot("z", -0.15),
                 "head": rot("z", 0.15)}
    goalpost = {**FISTS, "left_shoulder": rot("x", -PI / 2), "right_shoulder": rot("x", -PI / 2),
                "left_elbow": rot("y", -PI / 2), "right_elbow": rot("y", PI / 2),
                "left_knee": rot("x", 0.5), "right_knee": rot("x", 0.5),
                "left_hip": rot("x", -0.3), "right_hip": rot("x", -0.3), "spine1": rot("x", 0.15),
                "left_ankle": rot("x", -0.2), "right_ankle": rot("x", -0.2)}
    star = {**RELAXED_HANDS, "left_shoulder": rot("z", 0.5), "right_shoulder": rot("z", -0.5),
            "left_hip": rot("z", 0.35), "right_hip": rot("z", -0.35),
            "left_ankle": rot("z", -0.35), "right_ankle": rot("z", 0.35), "head": rot("x", -0.25)}
    keys = [(0.0, STAND), (0.4, STAND), (1.0, {**STAND, **arms_v, "left_hip": rot("x", -0.25), "left_knee": rot("x", 0.5)}),
            (1.7, disco), (2.4, {**mirror(disco)}), (3.2, wide_plie), (4.0, knee_up),
            (4.8, lunge), (5.5, side_bend), (6.2, mirror(side_bend)), (6.9, goalpost), (7.5, star),
            (8.0, STAND)]
    return keys, 8.0, False


PRESETS = {
    "turn_around": turn_around, "arms_raise_lower": arms_raise_lower, "light_punches": light_punches,
    "kicks": kicks, "squat": squat, "walk_in_place": walk_in_place, "wave": wave, "dance": dance,
}


def sample_keyframes(keys, duration: float, fps: int = FPS) -> np.ndarray:
    """Keyframes [(time, {joint: axis-angle})] -> [N, 55, 3] poses.

    Monotone cubic (PCHIP) interpolation of the axis-angle components: smooth (C1), and never
    overshooting a key, so a joint never passes beyond its authored extremes (no knee hyperextension
    between a bent and a straight key, as a C2 spline would give).
    """
    times = np.array([t for t, _ in keys])
    key_poses = np.zeros((len(keys), skeleton.NUM_JOINTS, 3))
    for k, (_, pose) in enumerate(keys):
        for name, rotvec in pose.items():
            key_poses[k, J[name]] = rotvec
    frames = np.arange(int(round(duration * fps))) / fps
    return PchipInterpolator(times, key_poses, axis=0)(frames)


def leg_points(poses: np.ndarray) -> np.ndarray:
    """[N, 55, 3] poses -> [N, 4, 3] sole points (heels, toe tips) with zero root translation."""
    names = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
             "left_foot", "right_foot"]
    world_rot = {}
    world_pos = {}
    for name in names:
        j, parent = J[name], skeleton.PARENTS[J[name]]
        local = Rotation.from_rotvec(poses[:, j])
        if parent < 0:
            world_rot[name], world_pos[name] = local, np.broadcast_to(LEG_REST[name], (len(poses), 3))
            continue
        parent_name = skeleton.JOINT_NAMES[parent]
        offset = LEG_REST[name] - LEG_REST[parent_name]
        world_pos[name] = world_pos[parent_name] + world_rot[parent_name].apply(offset)
        world_rot[name] = world_rot[parent_name] * local
    return np.stack([world_pos[n] + world_rot[n].apply(np.array(o)) for n, o in SOLE_POINTS], 1)


def ground(poses: np.ndarray, keep_feet: bool) -> np.ndarray:
    """[N, 55, 3] -> [N, 3] root translation that keeps the lowest sole point on the rest floor (and,
    with ``keep_feet``, the feet at their rest place on the floor plane)."""
    rest = leg_points(np.zeros((1, skeleton.NUM_JOINTS, 3)))[0]
    points = leg_points(poses)
    trans = np.zeros((len(poses), 3))
    trans[:, 1] = rest[:, 1].min() - points[:, :, 1].min(1)
    if keep_feet:
        trans[:, [0, 2]] = rest[:, [0, 2]].mean(0) - points[:, :, [0, 2]].mean(1)
    return trans


def make_preset(name: str) -> Motion:
    keys, duration, keep_feet = PRESETS[name]()
    poses = sample_keyframes(keys, duration)
    return Motion(poses=poses, trans=ground(poses, keep_feet), fps=FPS, source_format="preset",
                  notes=(f"preset '{name}' authored by presets/motions/make_presets.py",))


def main(out_dir: Path) -> None:
    for name in PRESETS:
        path = write_npz(make_preset(name), out_dir / f"{name}.npz")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
