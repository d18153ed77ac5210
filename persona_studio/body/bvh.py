"""BVH motions retargeted onto the SMPL-X skeleton.

A BVH file holds a skeleton of its own (joint names, rest offsets, Euler channels) and per-frame channel
values. Retargeting here works on directions, so neither the rig's proportions nor its units matter:

1. Forward kinematics of the BVH gives every joint's world rotation and position per frame.
2. Each SMPL-X joint the rig names (``presets/bvh/rigs.json``, or the user's own mapping file) gets a
   world rotation that turns its SMPL-X rest bone (towards its next mapped joint) onto the BVH bone
   between the same two joints, keeping the BVH joint's twist: the BVH joint's world rotation times the
   rest alignment (its parent's, then the turn from SMPL-X's rest bone onto the BVH's, about the body's
   forward axis first: an A- against a T-pose is one turn for the whole arm), then the least correction
   onto the frame's BVH bone. The pelvis takes its whole
   frame from the hips' left-right line and the spine. Joints the rig lacks turn with their parent
   (spine, collars) or stay at rest (fingers, jaw, eyes).
3. Local rotations follow from the world ones down the SMPL-X tree.
4. The root path is scaled by the ratio of SMPL-X's leg length to the rig's, and lifted so that the
   lowest foot joint stands where it stands in SMPL-X's rest pose in most frames (feet on the floor).

The file's up and forward axes are read from its rest pose (head above hips, left hip at the body's
left) and snapped to the nearest axes; its unit is named from the leg length (centimetres, inches, metres
or the CMU database's own unit).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body import skeleton
from persona_studio.body.motion_core import UP_AXES, Motion, MotionError, _check_size
from persona_studio.body.smplx_rest import SMPLX_REST_JOINTS
from persona_studio.paths import project_folder

RIGS_FILE_NAME = "rigs.json"
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")
FLOOR_PERCENTILE = 20  # the lowest foot joint is on the floor in most frames of a walk, a dance or a jump
UNITS = {"metres": 1.0, "centimetres": 0.01, "inches": 0.0254, "CMU units": 0.0254 / 0.45}
MAX_BVH_BYTES = 256 * 1024**2
# Rest directions of SMPL-X joints with no child bone to aim (in SMPL-X's rest frame): the head up, the
# toes forward; other leaves point at their own SMPL-X child, or continue their parent's bone.
LEAF_DIRECTION = {"head": (0.0, 1.0, 0.0), "left_foot": (0.0, 0.0, 1.0), "right_foot": (0.0, 0.0, 1.0)}


class BvhError(ValueError):
    """A BVH file that cannot be read or retargeted; the message says why and what to do."""


@dataclass
class BvhSkeleton:
    """The hierarchy and motion of a BVH file."""

    names: list[str]  # [J]
    parents: list[int]  # [J], -1 for the root
    offsets: np.ndarray  # [J, 3] rest offset from the parent, file units
    channels: list[list[str]]  # [J] channel names in file order, e.g. ["Zrotation", "Xrotation", "Yrotation"]
    tips: dict[int, np.ndarray]  # joint -> End Site offset [3]
    frames: np.ndarray  # [F, C] channel values, degrees and file units
    frame_time: float  # seconds


def parse_bvh(text: str, where: str = "BVH") -> BvhSkeleton:
    """The hierarchy and motion of a BVH file's text; BvhError (one line) when malformed."""
    tokens = text.split()
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BvhError(f"{where}: ends inside the hierarchy" + (f" (expected {expected!r})" if expected else ""))
        token = tokens[pos]
        pos += 1
        if expected is not None and token.upper() != expected.upper():
            raise BvhError(f"{where}: expected {expected!r} but found {token!r} (token {pos})")
        return token

    def number() -> float:
        token = take()
        try:
            return float(token)
        except ValueError:
            raise BvhError(f"{where}: expected a number but found {token!r} (token {pos})") from None

    names, parents, offsets, channels, tips = [], [], [], [], {}

    def joint(parent: int) -> None:
        index = len(names)
        names.append(take())
        parents.append(parent)
        take("{")
        take("OFFSET")
        offsets.append([number(), number(), number()])
        take("CHANNELS")
        count = take()
        if not count.isdigit() or int(count) > 6:
            raise BvhError(f"{where}: joint {names[index]!r} has a bad channel count {count!r}")
        own = [take() for _ in range(int(count))]
        unknown = [c for c in own if c.lower() not in {f"{a}{k}" for a in "xyz" for k in ("rotation", "position")}]
        if unknown:
            raise BvhError(f"{where}: joint {names[index]!r} has unknown channels {unknown}")
        channels.append(own)
        while True:
            token = take()
            if token.upper() == "JOINT":
                joint(index)
            elif token.upper() == "END":
                take("Site")
                take("{")
                take("OFFSET")
                tips[index] = np.array([number(), number(), number()])
                take("}")
            elif token == "}":
                return
            else:
                raise BvhError(f"{where}: unexpected {token!r} in joint {names[index]!r}")

    take("HIERARCHY")
    take("ROOT")
    joint(-1)
    take("MOTION")
    take("Frames:")
    count = take()
    if not count.isdigit() or int(count) == 0:
        raise BvhError(f"{where}: 'Frames:' must be a positive whole number, got {count!r}")
    take("Frame")
    take("Time:")
    frame_time = number()
    if not 0 < frame_time <= 1:
        raise BvhError(f"{where}: frame time {frame_time} s is not a frame rate between 1 and any fps")
    width = sum(len(c) for c in channels)
    values = tokens[pos:]
    if len(values) < int(count) * width:
        raise BvhError(f"{where}: {int(count)} frames of {width} channels need {int(count) * width} values, the "
                       f"file holds {len(values)}: it is truncated")
    try:
        frames = np.array(values[: int(count) * width], dtype=np.float64).reshape(int(count), width)
    except ValueError:
        raise BvhError(f"{where}: the motion data holds text where numbers belong") from None
    if not np.isfinite(frames).all():
        raise BvhError(f"{where}: the motion data holds NaN or infinite values")
    return BvhSkeleton(names, parents, np.array(offsets, dtype=np.float64), channels, tips, frames, frame_time)


def bvh_world(bvh: BvhSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """BVH forward kinematics -> ([F, J, 3, 3] world rotations, [F, J, 3] world positions), file axes/units.

    Rotation channels compose in the order listed (``Zrotation Xrotation Yrotation`` is Rz @ Rx @ Ry,
    degrees); position channels replace the joint's offset."""
    num_frames, num_joints = bvh.frames.shape[0], len(bvh.names)
    rotations = np.zeros((num_frames, num_joints, 3, 3))
    positions = np.zeros((num_frames, num_joints, 3))
    column = 0
    for j, names in enumerate(bvh.channels):
        values = bvh.frames[:, column: column + len(names)]
        column += len(names)
        local = np.broadcast_to(bvh.offsets[j], (num_frames, 3)).copy()
        order = "".join(n[0].upper() for n in names if n.lower().endswith("rotation"))
        angles = np.stack([values[:, k] for k, n in enumerate(names) if n.lower().endswith("rotation")], axis=1) \
            if order else np.zeros((num_frames, 0))
        for k, n in enumerate(names):
            if n.lower().endswith("position"):
                local[:, "xyz".index(n[0].lower())] = values[:, k]
        turn = Rotation.from_euler(order, angles, degrees=True).as_matrix() if order else np.eye(3)[None]
        parent = bvh.parents[j]
        if parent < 0:
            rotations[:, j], positions[:, j] = turn, local
        else:
            rotations[:, j] = rotations[:, parent] @ turn
            positions[:, j] = positions[:, parent] + np.einsum("fij,fj->fi", rotations[:, parent], local)
    return rotations, positions


def rest_positions(bvh: BvhSkeleton) -> np.ndarray:
    """[J, 3] joint positions of the BVH's rest pose (all channels zero, offsets only)."""
    out = np.zeros((len(bvh.names), 3))
    for j, parent in enumerate(bvh.parents):
        out[j] = bvh.offsets[j] + (out[parent] if parent >= 0 else 0.0)
    return out


def normalised(name: str) -> str:
    """A joint name compared across rigs: no namespace, no DEF-/ORG- prefix, no separators, lower case."""
    name = re.split(r"[:|]", name)[-1]
    name = re.sub(r"^(def|org|mch)[-_.]", "", name, flags=re.IGNORECASE)
    return re.sub(r"[\s_.\-]", "", name).lower()


def load_rigs(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Rig name -> {SMPL-X joint: BVH joint}: the shipped table, or a user's file (a ``{"rigs": {...}}``
    table like it, or one flat mapping)."""
    path = path or project_folder("presets") / "bvh" / RIGS_FILE_NAME
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BvhError(f"{path}: cannot read the rig mapping ({exc})") from None
    rigs = data.get("rigs", {Path(path).stem: data}) if isinstance(data, dict) else None
    if not isinstance(rigs, dict) or not all(isinstance(r, dict) for r in rigs.values()):
        raise BvhError(f"{path}: a rig mapping is a JSON object of SMPL-X joint -> BVH joint name")
    for rig, mapping in rigs.items():
        unknown = [k for k in mapping if k not in skeleton.JOINT_INDEX]
        if unknown:
            raise BvhError(f"{path}: rig {rig!r} names joints SMPL-X does not have: {', '.join(unknown[:5])} "
                           f"(use SMPL-X names such as left_knee)")
    return rigs


def match_rig(bvh_names: list[str], rigs: dict[str, dict[str, str]]) -> tuple[str, dict[int, int]]:
    """The rig whose names the file matches best -> (its name, {SMPL-X joint: BVH joint index})."""
    index = {normalised(n): i for i, n in enumerate(bvh_names)}
    best, best_map = "", {}
    for rig, mapping in rigs.items():
        found = {skeleton.JOINT_INDEX[s]: index[normalised(b)] for s, b in mapping.items() if normalised(b) in index}
        if len(found) > len(best_map):
            best, best_map = rig, found
    missing = [name for name in REQUIRED if skeleton.JOINT_INDEX[name] not in best_map]
    if missing:
        raise BvhError(f"no known rig names this file's joints (closest: {best or 'none'}, lacking "
                       f"{', '.join(missing)}); its joints are {', '.join(bvh_names[:12])}...: write a mapping "
                       "(see presets/bvh/rigs.json) and pass it with --rig")
    return best, best_map


def snapped_frame(rest: np.ndarray, mapped: dict[int, int]) -> np.ndarray:
    """[3, 3] rotation taking the file's axes to ours (left +X, up +Y, forward +Z), from its rest pose:
    up = hips -> head, left = right hip -> left hip, each snapped to the nearest axis."""
    J = skeleton.JOINT_INDEX

    def axis(v: np.ndarray) -> np.ndarray:
        out = np.zeros(3)
        k = int(np.argmax(np.abs(v)))
        out[k] = np.sign(v[k])
        return out

    up = axis(rest[mapped[J["head"]]] - rest[mapped[J["pelvis"]]])
    side = rest[mapped[J["left_hip"]]] - rest[mapped[J["right_hip"]]]
    left = axis(side - up * (side @ up))
    if abs(left @ up) > 0.5:
        raise BvhError("the rest pose's hips do not lie across its up axis: is the left/right mapping right?")
    return np.stack([left, up, np.cross(left, up)])


def minimal_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[..., 3] unit vectors a, b -> [..., 3, 3] the smallest rotations taking a onto b."""
    a, b = np.broadcast_arrays(a, b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True)
    # opposite vectors: any axis across a
    across = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where(sin > 1e-9, axis / np.maximum(sin, 1e-12), across / np.linalg.norm(across, axis=-1, keepdims=True))
    angle = np.arctan2(sin, cos)
    return Rotation.from_rotvec((axis * angle).reshape(-1, 3)).as_matrix().reshape(a.shape[:-1] + (3, 3))


def rest_turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[3, 3] a rotation taking unit vector a onto b, turning first about the body's forward axis (+Z).

    Rigs' rest poses differ mostly by limbs raised or lowered sideways (A- against T-pose, legs apart),
    which are turns about the forward axis; the least rotation between two bones tilted off that
    plane would add a twist about the bone instead."""
    flat_a, flat_b = np.array([a[0], a[1], 0.0]), np.array([b[0], b[1], 0.0])
    if min(np.linalg.norm(flat_a), np.linalg.norm(flat_b)) < 0.3:
        return minimal_rotation(a, b)
    angle = np.arctan2(np.cross(flat_a, flat_b)[2], flat_a @ flat_b)
    about_forward = Rotation.from_rotvec([0.0, 0.0, angle]).as_matrix()
    return minimal_rotation(about_forward @ a, b) @ about_forward


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _triad(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[..., 3] left-right and up vectors -> [..., 3, 3] orthonormal frame (columns: left, up, forward)."""
    x = _unit(left)
    z = _unit(np.cross(x, up))
    return np.stack([x, np.cross(z, x), z], axis=-1)


MAIN_CHILD = {"pelvis": "spine1", "spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1"}


def main_child(joint: int) -> int | None:
    """The SMPL-X joint a joint's bone points at (its only child, or the one along the body), or None."""
    name = skeleton.JOINT_NAMES[joint]
    if name in MAIN_CHILD:
        return skeleton.JOINT_INDEX[MAIN_CHILD[name]]
    return next((c for c in range(skeleton.NUM_JOINTS) if skeleton.PARENTS[c] == joint), None)


def aim_targets(mapped: dict[int, int]) -> dict[int, int | None]:
    """SMPL-X joint -> the next mapped joint down its main chain that its bone aims at (None: a leaf)."""
    targets = {}
    for j in mapped:
        chain = main_child(j)
        while chain is not None and chain not in mapped:
            below = [c for c in range(skeleton.NUM_JOINTS) if skeleton.PARENTS[c] == chain]
            chain = below[0] if below else None
        targets[j] = chain
    return targets


def retarget(bvh: BvhSkeleton, mapped: dict[int, int], rest_joints: np.ndarray = SMPLX_REST_JOINTS
             ) -> tuple[np.ndarray, np.ndarray, dict]:
    """BVH motion -> ([F, 55, 3] SMPL-X axis-angle poses, [F, 3] root translation in metres, figures).

    ``mapped``: SMPL-X joint -> BVH joint index (:func:`match_rig`); ``rest_joints`` [55, 3] the SMPL-X
    rest skeleton the rotations are solved on (SMPL-X's own by default)."""
    J = skeleton.JOINT_INDEX
    frame_axes = snapped_frame(rest_positions(bvh), mapped)  # [3, 3] file -> ours
    world_rot, world_pos = bvh_world(bvh)  # [F, Jb, 3, 3], [F, Jb, 3]
    world_rot = frame_axes @ world_rot @ frame_axes.T
    world_pos = world_pos @ frame_axes.T
    rest_bvh = rest_positions(bvh) @ frame_axes.T
    rest = np.asarray(rest_joints, dtype=np.float64)
    num_frames = world_rot.shape[0]
    targets = aim_targets(mapped)

    smplx_world = np.broadcast_to(np.eye(3), (num_frames, skeleton.NUM_JOINTS, 3, 3)).copy()
    pelvis = J["pelvis"]
    spine = targets[pelvis]

    def bvh_vec(a: int, b: int, positions: np.ndarray) -> np.ndarray:
        return positions[..., mapped[b], :] - positions[..., mapped[a], :]

    rest_align = {}  # SMPL-X joint -> [3, 3] its rest frame in the rig's rest pose
    ours_frame = _triad(rest[J["left_hip"]] - rest[J["right_hip"]], rest[spine] - rest[pelvis])
    # The pelvis: the hips' line exactly, up as close to the spine's first bone as that allows (a rig's
    # lower back joint at the root, as CMU's has, bends that bone, which SMPL-X's pelvis cannot follow
    # without tilting the hips).
    theirs = _triad(bvh_vec(J["right_hip"], J["left_hip"], world_pos), bvh_vec(pelvis, spine, world_pos))
    for j in range(skeleton.NUM_JOINTS):  # parents come before children in SMPL-X order
        parent = skeleton.PARENTS[j]
        if j == pelvis:
            smplx_world[:, j] = theirs @ ours_frame.T
            rest_align[j] = _triad(bvh_vec(J["right_hip"], J["left_hip"], rest_bvh),
                                   bvh_vec(pelvis, spine, rest_bvh)) @ ours_frame.T
            continue
        if j not in mapped:
            smplx_world[:, j] = smplx_world[:, parent]  # turns with its parent: at rest (fingers, jaw, eyes)
            continue
        target = targets[j]
        if target is not None:
            ours_dir = _unit(rest[target] - rest[j])
            rest_dir = _unit(bvh_vec(j, target, rest_bvh))
            now_dir = _unit(bvh_vec(j, target, world_pos))  # [F, 3]
        else:  # a leaf: aim along the BVH joint's End Site or first child, if it has one
            name = skeleton.JOINT_NAMES[j]
            child = main_child(j)
            ours_dir = np.array(LEAF_DIRECTION[name]) if name in LEAF_DIRECTION else \
                _unit(rest[child] - rest[j]) if child is not None else _unit(rest[j] - rest[parent])
            tip = _bvh_tip(bvh, mapped[j])
            if tip is None:  # nothing to aim at: the BVH joint's turn relative to its parent's, on ours
                above = world_rot[:, mapped[parent]] if parent in mapped else np.eye(3)
                smplx_world[:, j] = world_rot[:, mapped[j]] @ np.swapaxes(above, -1, -2) @ smplx_world[:, parent]
                continue
            rest_dir = _unit(frame_axes @ tip)
            now_dir = _unit(np.einsum("fij,j->fi", world_rot[:, mapped[j]], frame_axes @ tip))
        # Rest alignment: the parent's, then the least turn onto this rest bone (an arm lowered into an
        # A-pose is then one rotation for the whole arm, with no twist between its bones).
        above = rest_align[_mapped_ancestor(j, mapped)]
        rest_align[j] = rest_turn(above @ ours_dir, rest_dir) @ above
        aligned = world_rot[:, mapped[j]] @ rest_align[j]  # [F, 3, 3]
        swung = aligned @ ours_dir
        smplx_world[:, j] = minimal_rotation(_unit(swung), now_dir) @ aligned
    local = smplx_world.copy()
    parents = np.array(skeleton.PARENTS[1:])
    local[:, 1:] = np.swapaxes(smplx_world[:, parents], -1, -2) @ smplx_world[:, 1:]
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(num_frames, skeleton.NUM_JOINTS, 3)

    leg = lambda positions, s: (np.linalg.norm(positions[J[f"{s}_knee"]] - positions[J[f"{s}_hip"]])  # noqa: E731
                                + np.linalg.norm(positions[J[f"{s}_ankle"]] - positions[J[f"{s}_knee"]]))
    rest_mapped = np.stack([rest_bvh[mapped[j]] if j in mapped else np.zeros(3) for j in range(skeleton.NUM_JOINTS)])
    scale = (leg(rest, "left") + leg(rest, "right")) / (leg(rest_mapped, "left") + leg(rest_mapped, "right"))
    root = world_pos[:, mapped[pelvis]] * scale  # [F, 3] metres in our axes
    trans = root - rest[pelvis]
    trans[:, [0, 2]] -= trans[0, [0, 2]]  # start above the origin
    trans[:, 1] += _floor_lift(poses, trans, rest)
    unit, per_unit = _unit_name(leg(rest_mapped, "left") + leg(rest_mapped, "right"))
    up = int(np.argmax(np.abs(frame_axes[1])))
    figures = {"scale": float(scale), "unit": unit, "metres_per_unit": per_unit,
               "up_axis": ("" if frame_axes[1, up] > 0 else "-") + "xyz"[up]}
    return poses.astype(np.float32), trans.astype(np.float32), figures


def _mapped_ancestor(joint: int, mapped: dict[int, int]) -> int:
    """The nearest mapped SMPL-X joint above ``joint`` (the pelvis at worst: it is always mapped)."""
    joint = skeleton.PARENTS[joint]
    while joint not in mapped:
        joint = skeleton.PARENTS[joint]
    return joint


def _bvh_tip(bvh: BvhSkeleton, joint: int) -> np.ndarray | None:
    """[3] offset (file axes) from ``joint`` to its End Site or first child with a length, or None."""
    if joint in bvh.tips and np.linalg.norm(bvh.tips[joint]) > 1e-9:
        return bvh.tips[joint]
    for child, parent in enumerate(bvh.parents):
        if parent == joint and np.linalg.norm(bvh.offsets[child]) > 1e-9:
            return bvh.offsets[child]
    return None


def _floor_lift(poses: np.ndarray, trans: np.ndarray, rest: np.ndarray) -> float:
    """The vertical shift that puts the lowest foot joint where SMPL-X's rest pose has it, in most frames."""
    feet = [skeleton.JOINT_INDEX[n] for n in FOOT_JOINTS]
    rest_t = torch.as_tensor(rest)
    with torch.no_grad():
        posed, _ = skeleton.forward_kinematics(torch.as_tensor(poses.reshape(len(poses), -1)), rest_t)
    heights = posed[:, feet, 1].numpy() + trans[:, 1:2]  # [F, 4]
    lowest = heights.min(axis=1)
    return float(rest[feet, 1].min() - np.percentile(lowest, FLOOR_PERCENTILE))


def _unit_name(leg_length: float) -> tuple[str, float]:
    """The file's unit from its two legs' length (hip-knee-ankle, both sides; about 1.6 m on an adult)."""
    per_unit = 1.6 / leg_length
    name = min(UNITS, key=lambda u: abs(np.log(UNITS[u] / per_unit)))
    return (name if abs(np.log(UNITS[name] / per_unit)) < np.log(1.35) else "unknown"), per_unit


def read_bvh_motion(path: Path, rig: str | os.PathLike | None, max_bytes: int) -> Motion:
    """A BVH file retargeted onto the SMPL-X skeleton; the notes say which rig matched, what was mapped,
    the unit and the up axis found."""
    _check_size(path, path.stat().st_size, max_bytes)
    try:
        text = path.read_text("utf-8", errors="replace")
        parsed = parse_bvh(text, str(path))
        rig_name, mapped = match_rig(parsed.names, load_rigs(Path(rig) if rig else None))
        poses, trans, figures = retarget(parsed, mapped)
    except BvhError as err:
        message = str(err)
        raise MotionError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    at_rest = [n for j, n in enumerate(skeleton.JOINT_NAMES[:22]) if j not in mapped]
    notes = [f"BVH retargeted onto SMPL-X with the {rig_name!r} rig: {len(mapped)} joints mapped "
             f"({', '.join(parsed.names[b] + '->' + skeleton.JOINT_NAMES[s] for s, b in sorted(mapped.items()))})",
             "not in the rig: " + (", ".join(at_rest) + " (turning with the joint above); " if at_rest else "")
             + ("fingers, " if not any(j in mapped for j in range(25, 55)) else "") + "jaw and eyes stay at rest",
             f"unit: {figures['unit']} (about {figures['metres_per_unit']:.4f} m per unit, from the leg length); "
             f"root path scaled by {figures['scale']:.4f} to SMPL-X's legs; feet put on the floor",
             f"up axis {figures['up_axis'].upper()} (from the rest pose)"]
    up = figures["up_axis"] if figures["up_axis"] in UP_AXES else "y"
    return Motion(poses=poses, trans=trans, fps=1.0 / parsed.frame_time, source_format=f"BVH ({rig_name} rig)",
                  source_up_axis=up, notes=tuple(notes))
