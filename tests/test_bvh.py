"""BVH motions (CMU, Mixamo-named rigs) retargeted onto SMPL-X, and Meshcapade .smpl files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body import bvh, skeleton
from persona_studio.body.motion import MotionError, preset_motion_paths, read_motion
from persona_studio.body.smplx_rest import SMPLX_REST_JOINTS

from tests.conftest import shared_path
from tests.test_presets import assert_skins_without_blow_up

J = skeleton.JOINT_INDEX
CMU_WALK = ("motions", "cmu_131_01_start_walk_stop.bvh")


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[..., 3] vectors -> [...] angles between them in degrees."""
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def posed_joints(poses: np.ndarray, trans: np.ndarray, rest: np.ndarray = SMPLX_REST_JOINTS) -> np.ndarray:
    """[F, 55, 3] SMPL-X joints of ``poses`` on the ``rest`` skeleton, translated."""
    with torch.no_grad():
        joints, _ = skeleton.forward_kinematics(torch.as_tensor(poses.reshape(len(poses), -1), dtype=torch.float64),
                                                torch.as_tensor(rest, dtype=torch.float64))
    return joints.numpy() + trans[:, None]


@pytest.fixture(scope="module")
def cmu_walk():
    path = shared_path(*CMU_WALK)
    parsed = bvh.parse_bvh(path.read_text(), str(path))
    return path, parsed, read_motion(path)


def test_the_cmu_walk_keeps_every_bone_direction_of_the_file(cmu_walk):
    path, parsed, motion = cmu_walk
    assert motion.num_frames == 994 and motion.fps == pytest.approx(120, rel=1e-3)
    assert motion.duration == pytest.approx(994 * 0.0083333, rel=1e-4)
    assert motion.source_format == "BVH (cmu rig)"
    assert any("CMU units" in note for note in motion.notes) and any("jaw and eyes stay at rest" in n for n in motion.notes)
    _, mapped = bvh.match_rig(parsed.names, bvh.load_rigs())
    assert len(mapped) == 19  # the toes left out (see presets/bvh/rigs.json)
    axes = bvh.snapped_frame(bvh.rest_positions(parsed), mapped)
    theirs = bvh.bvh_world(parsed)[1] @ axes.T  # [F, Jb, 3] the file's joints in our axes
    ours = posed_joints(motion.poses, motion.trans)
    for joint, target in bvh.aim_targets(mapped).items():
        if target is None or joint == J["pelvis"]:
            continue
        error = angle_deg(ours[:, target] - ours[:, joint], theirs[:, mapped[target]] - theirs[:, mapped[joint]])
        assert error.max() < 5, f"{skeleton.JOINT_NAMES[joint]}: {error.max():.1f} degrees off the file's bone"
    # The pelvis keeps the hips' line (its bone to the spine bends with the rig's lower back instead).
    hips = angle_deg(ours[:, J["left_hip"]] - ours[:, J["right_hip"]],
                     theirs[:, mapped[J["left_hip"]]] - theirs[:, mapped[J["right_hip"]]])
    assert hips.max() < 5
    assert np.all(motion.poses[:, 22:] == 0)  # jaw, eyes and fingers: not in the rig, at rest


def test_the_cmu_walk_goes_forward_with_its_feet_on_the_floor(cmu_walk):
    _, _, motion = cmu_walk
    travel = motion.trans[-1] - motion.trans[0]
    assert travel[2] > 1.5 and abs(travel[0]) < 0.5 * travel[2]  # walks forward (+Z, the way the body faces)
    feet = [J[name] for name in bvh.FOOT_JOINTS]
    lowest = posed_joints(motion.poses, motion.trans)[:, feet, 1].min(1) - SMPLX_REST_JOINTS[feet, 1].min()
    assert (np.abs(lowest) < 0.03).mean() > 0.6, f"feet on the floor in {(np.abs(lowest) < 0.03).mean():.0%} of frames"


def test_the_cmu_walk_plays_on_the_real_body_model_without_blow_up(cmu_walk, open_body_model):
    assert_skins_without_blow_up(open_body_model, cmu_walk[2], "cmu walk", every=10)


# --- a Mixamo-named BVH written here from a known SMPL-X motion -----------------------------------------

ORDERS = ("ZXY", "XYZ", "YZX", "ZYX", "XZY", "YXZ")


def write_mixamo_bvh(path, poses: np.ndarray, trans: np.ndarray, arms_down_deg: float = 0.0) -> None:
    """A BVH of ``poses`` [F, 55, 3] on SMPL-X's rest skeleton (centimetres) with Mixamo's joint names,
    Euler orders varying by joint, position channels on every other joint, and optionally a rest pose
    with the arms lowered by ``arms_down_deg`` (an A-pose: each channel value then makes the same
    world pose)."""
    mapping = bvh.load_rigs()["mixamo"]
    joints = [j for j in range(skeleton.NUM_JOINTS) if skeleton.JOINT_NAMES[j] in mapping]
    rest = SMPLX_REST_JOINTS * 100.0
    down = {"left": Rotation.from_euler("z", -arms_down_deg, degrees=True),
            "right": Rotation.from_euler("z", arms_down_deg, degrees=True)}

    def arm_side(j: int) -> str | None:  # "left"/"right" for a shoulder and the joints below it
        while j >= 0:
            for side in ("left", "right"):
                if j == J[f"{side}_shoulder"]:
                    return side
            j = skeleton.PARENTS[j]
        return None

    def bvh_rest_offset(j: int, vector: np.ndarray) -> np.ndarray:  # a bone below a shoulder turns down
        side = arm_side(j)
        return down[side].apply(vector) if side and j != J[f"{side}_shoulder"] else vector

    world = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), 55, 3, 3)
    for j in range(1, 55):
        world[:, j] = world[:, skeleton.PARENTS[j]] @ world[:, j]
    bvh_world = world.copy()  # W_j = G_j A_j^-1 for the joints whose rest bone is lowered
    for j in joints:
        side = arm_side(j)
        if side:
            bvh_world[:, j] = world[:, j] @ down[side].inv().as_matrix()
    lines, columns = ["HIERARCHY"], []

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        parent = skeleton.PARENTS[j]
        offset = np.zeros(3) if parent < 0 else bvh_rest_offset(j, rest[j] - rest[parent])
        order = ORDERS[j % len(ORDERS)]
        positions = parent < 0 or j % 2 == 0
        channels = (["Xposition", "Yposition", "Zposition"] if positions else []) + [f"{a}rotation" for a in order]
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} mixamorig:{mapping[skeleton.JOINT_NAMES[j]]}")
        lines.extend([f"{pad}{{", f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}",
                      f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}"])
        columns.append((j, offset, positions, order))
        children = [c for c in joints if skeleton.PARENTS[c] == j]
        for child in children:
            emit(child, depth + 1)
        if not children:
            name = skeleton.JOINT_NAMES[j]
            tip = np.array(bvh.LEAF_DIRECTION.get(name, (rest[j] - rest[parent]) / np.linalg.norm(rest[j] - rest[parent])))
            tip = bvh_rest_offset(j, tip * 3.0)
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {len(poses)}", "Frame Time: 0.0333333"]
    for f in range(len(poses)):
        values = []
        for j, offset, positions, order in columns:
            parent = skeleton.PARENTS[j]
            local = bvh_world[f, j] if parent < 0 else bvh_world[f, parent].T @ bvh_world[f, j]
            if positions:
                values += list((trans[f] * 100 + rest[0]) if parent < 0 else offset)
            values += list(Rotation.from_matrix(local).as_euler(order, degrees=True))
        lines.append(" ".join(f"{v:.6f}" for v in values))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("arms_down_deg", [0.0, 45.0], ids=["t-pose rest", "a-pose rest"])
def test_a_mixamo_bvh_round_trip_gives_back_the_joint_rotations(tmp_path, arms_down_deg):
    source = read_motion(preset_motion_paths()["dance"])
    poses, trans = source.poses[::3].astype(np.float64), source.trans[::3].astype(np.float64)
    path = tmp_path / "dance.bvh"
    write_mixamo_bvh(path, poses, trans, arms_down_deg)
    motion = read_motion(path)
    assert motion.source_format == "BVH (mixamo rig)" and motion.num_frames == len(poses)
    assert motion.fps == pytest.approx(30, rel=1e-4)
    mapped = [j for j in range(55) if skeleton.JOINT_NAMES[j] in bvh.load_rigs()["mixamo"]]
    assert len(mapped) == 52  # the body and the fingers; jaw and eyes stay at rest
    true = Rotation.from_rotvec(poses[:, mapped].reshape(-1, 3))
    read = Rotation.from_rotvec(motion.poses[:, mapped].astype(np.float64).reshape(-1, 3))
    error = np.degrees((true.inv() * read).magnitude()).reshape(len(poses), len(mapped))
    worst = int(np.argmax(error.max(0)))
    assert error.max() < 2, f"{skeleton.JOINT_NAMES[mapped[worst]]}: {error.max():.2f} degrees"


def test_a_user_rig_file_maps_a_rig_of_other_names(tmp_path):
    source = read_motion(preset_motion_paths()["wave"])
    path = tmp_path / "wave.bvh"
    write_mixamo_bvh(path, source.poses[:20].astype(np.float64), source.trans[:20].astype(np.float64))
    renamed = path.read_text().replace("mixamorig:", "Bip01_")
    other = tmp_path / "other.bvh"
    other.write_text(renamed.replace("Bip01_Hips", "Bip01_Pelvis"))
    with pytest.raises(MotionError, match="--rig"):  # Hips renamed: no known rig has its pelvis
        read_motion(other)
    rig = {joint: f"Bip01_{name}" for joint, name in bvh.load_rigs()["mixamo"].items()} | {"pelvis": "Bip01_Pelvis"}
    (tmp_path / "bip.json").write_text(json.dumps(rig))
    motion = read_motion(other, rig=tmp_path / "bip.json")
    assert motion.source_format == "BVH (bip rig)"
    np.testing.assert_allclose(motion.poses[:, :22], read_motion(path).poses[:, :22], atol=1e-4)


@pytest.mark.parametrize("text, message", [
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 6 Xposition", "ends inside the hierarchy"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Xrotation Yrotation Wrotation } MOTION", "unknown channels"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Xrotation Yrotation Zrotation } MOTION Frames: 2 "
     "Frame Time: 0.03 1 2 3", "truncated"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Xrotation Yrotation Zrotation } MOTION Frames: 1 "
     "Frame Time: 0 1 2 3", "frame time"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Xrotation Yrotation Zrotation } MOTION Frames: 1 "
     "Frame Time: 0.03 1 nan 3", "NaN"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Xrotation Yrotation Zrotation } MOTION Frames: 1 "
     "Frame Time: 0.03 1 2 3", "no known rig"),
])
def test_malformed_bvh_files_are_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    with pytest.raises(MotionError, match=message) as caught:
        read_motion(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_motion_convert_writes_the_retargeted_walk_and_says_what_it_mapped(tmp_path):
    out = tmp_path / "walk.npz"
    done = subprocess.run([sys.executable, "-m", "persona_studio", "motion", "convert", str(shared_path(*CMU_WALK)),
                           str(out), "--fps", "30"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LeftKnee->left_knee" in done.stdout and "fingers, jaw and eyes stay at rest" in done.stdout
    motion = read_motion(out)
    assert motion.fps == 30 and motion.num_frames == pytest.approx(994 / 4, abs=2)


# --- Meshcapade .smpl -------------------------------------------------------------------------------------

def write_smpl(path, arrays: dict) -> None:
    """A .smpl file as smplcodec writes one: an npz of camelCase keys, int32/float32 only."""
    with open(path, "wb") as out:
        np.savez_compressed(out, **arrays)


def smpl_arrays(n: int = 12) -> dict:
    source = read_motion(preset_motion_paths()["wave"])
    poses = source.poses[:n]
    return {"codecVersion": np.int32(2), "smplVersion": np.int32(2), "gender": np.int32(0),
            "shapeParameters": np.linspace(-1, 1, 10).astype(np.float32), "frameCount": np.int32(n),
            "frameRate": np.float32(25.0), "bodyTranslation": source.trans[:n].astype(np.float32),
            "bodyPose": poses[:, :22].astype(np.float32), "headPose": poses[:, 22:25].astype(np.float32),
            "leftHandPose": poses[:, 25:40].astype(np.float32), "rightHandPose": poses[:, 40:55].astype(np.float32),
            "expressionParameters": np.zeros((n, 10), np.float32)}


def test_a_smpl_file_reads_back_to_the_same_motion(tmp_path):
    arrays = smpl_arrays()
    write_smpl(tmp_path / "wave.smpl", arrays)
    motion = read_motion(tmp_path / "wave.smpl")
    assert motion.source_format == "Meshcapade .smpl (SMPL-X)" and motion.fps == 25.0 and motion.num_frames == 12
    np.testing.assert_allclose(motion.poses[:, :22], arrays["bodyPose"], atol=1e-6)
    np.testing.assert_allclose(motion.poses[:, 22:25], arrays["headPose"], atol=1e-6)
    np.testing.assert_allclose(motion.poses[:, 40:], arrays["rightHandPose"], atol=1e-6)
    np.testing.assert_allclose(motion.trans, arrays["bodyTranslation"], atol=1e-6)
    np.testing.assert_allclose(motion.betas, arrays["shapeParameters"])
    assert motion.source_up_axis == "y"
    smplh = {k: v for k, v in arrays.items() if k != "headPose"} | {"smplVersion": np.int32(1)}
    write_smpl(tmp_path / "wave_h.smpl", smplh)
    assert read_motion(tmp_path / "wave_h.smpl").source_format == "Meshcapade .smpl (SMPL-H)"


@pytest.mark.parametrize("change, message", [
    ({"bodyPose": np.zeros((12, 21, 3), np.float32)}, "expected \\(12, 22, 3\\)"),
    ({"smplVersion": np.int32(5)}, "another body model"),
    ({"frameCount": None}, "no motion"),
    ({"bodyTranslation": np.zeros((3, 3), np.float32)}, "bodyTranslation"),
    ({"bodyPose": np.full((12, 22, 3), np.nan, np.float32)}, "NaN|finite"),
])
def test_malformed_smpl_files_are_refused_with_one_line(tmp_path, change, message):
    arrays = {k: v for k, v in (smpl_arrays() | change).items() if v is not None}
    write_smpl(tmp_path / "bad.smpl", arrays)
    with pytest.raises(MotionError, match=message) as caught:
        read_motion(tmp_path / "bad.smpl")
    assert "\n" not in str(caught.value)
    (tmp_path / "text.smpl").write_text("not a zip")
    with pytest.raises(MotionError, match="not a readable"):
        read_motion(tmp_path / "text.smpl")
