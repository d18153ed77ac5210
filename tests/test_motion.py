"""Motion files: reading every supported layout, validation messages, up-axis conversion, resampling,
writing (npz and JSON folder) and the motion presets."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body import skeleton
from persona_studio.body.motion import (
    META_FILE_NAME, Motion, MotionError, convert_motion, describe_motion, preset_motion_paths,
    read_motion, resample, to_y_up, write_json_folder, write_motion, write_npz,
)
from tests.conftest import ROOT, shared_path

Z_UP_TO_Y_UP = Rotation.from_rotvec([-math.pi / 2, 0.0, 0.0])


def make_motion(n: int = 12, expression: int = 10, betas: int | None = 10, seed: int = 0) -> Motion:
    """A standing body (root roughly upright) with random small joint rotations."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0.0, 0.3, (n, 55, 3))
    poses[:, 0] = rng.normal(0.0, 0.1, (n, 3))
    return Motion(poses=poses, trans=rng.normal(0.0, 0.5, (n, 3)), fps=30.0,
                  betas=None if betas is None else rng.normal(0.0, 1.0, betas),
                  expression=rng.normal(0.0, 1.0, (n, expression)), notes=("made in a test",))


def assert_same_motion(a: Motion, b: Motion) -> None:
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.trans, b.trans)
    np.testing.assert_array_equal(a.expression, b.expression)
    if a.betas is None:
        assert b.betas is None
    else:
        np.testing.assert_array_equal(a.betas, b.betas)
    assert a.fps == b.fps


def body_up(global_orient: np.ndarray) -> np.ndarray:
    """[N, 3] root orientations -> [N, 3] where the rest body's up direction points."""
    return Rotation.from_rotvec(global_orient.astype(np.float64)).apply([0.0, 1.0, 0.0])


def smplx_point(root: np.ndarray, trans: np.ndarray, x: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """Where SMPL-X puts a rest point x of a rigid body posed only by its root: R (x - p) + p + trans."""
    return Rotation.from_rotvec(root).apply(x - pelvis) + pelvis + trans


# ----------------------------------------------------------------------------------------------
# Round trips


def test_npz_round_trip_keeps_arrays_and_writes_the_amass_layout(tmp_path):
    motion = make_motion()
    path = write_npz(motion, tmp_path / "clip.npz")
    back = read_motion(path)
    assert_same_motion(motion, back)
    assert back.notes == motion.notes
    assert back.source_format == "PERSONA Studio npz v1" and back.source_up_axis == "y"

    with np.load(path, allow_pickle=False) as raw:
        assert raw["poses"].shape == (12, 165)
        np.testing.assert_array_equal(raw["root_orient"], raw["poses"][:, :3])
        np.testing.assert_array_equal(raw["pose_body"], raw["poses"][:, 3:66])
        np.testing.assert_array_equal(raw["pose_jaw"], raw["poses"][:, 66:69])
        np.testing.assert_array_equal(raw["pose_eye"], raw["poses"][:, 69:75])
        np.testing.assert_array_equal(raw["pose_hand"], raw["poses"][:, 75:165])
        assert str(raw["up_axis"]) == "y" and int(raw["format_version"]) == 1
        assert float(raw["mocap_frame_rate"]) == 30.0
    assert [p.name for p in tmp_path.iterdir()] == ["clip.npz"]  # no temporary file left behind


def test_json_folder_round_trip_and_layout(tmp_path):
    motion = make_motion(n=7, expression=0, betas=16)
    folder = write_json_folder(motion, tmp_path / "clip")
    back = read_motion(folder)
    assert_same_motion(motion, back)
    assert back.source_format == "per-frame JSON folder" and back.notes == motion.notes

    frame = json.loads((folder / "000003.json").read_text())
    assert np.array(frame["body_pose"]).shape == (21, 3)
    assert np.array(frame["lhand_pose"]).shape == (15, 3)
    assert len(frame["root_pose"]) == len(frame["trans"]) == 3 and len(frame["betas"]) == 16
    meta = json.loads((folder / META_FILE_NAME).read_text())
    assert meta["fps"] == 30.0 and meta["up_axis"] == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_json_folder_replaces_our_folder_but_never_a_foreign_one(tmp_path):
    write_json_folder(make_motion(n=9), tmp_path / "clip")
    write_json_folder(make_motion(n=4, seed=1), tmp_path / "clip")
    assert read_motion(tmp_path / "clip").num_frames == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "me.jpg").write_bytes(b"not a motion")
    with pytest.raises(MotionError, match="not a motion folder"):
        write_json_folder(make_motion(), foreign)
    assert (foreign / "me.jpg").read_bytes() == b"not a motion"


def test_json_frames_are_ordered_by_the_number_in_their_names(tmp_path):
    motion = make_motion(n=12)
    folder = write_json_folder(motion, tmp_path / "clip")
    for i in range(12):  # rename to unpadded names so that text order (0, 1, 10, 11, 2, ...) is wrong
        (folder / f"{i:06d}.json").rename(folder / f"frame_{i}.json")
    np.testing.assert_array_equal(read_motion(folder).poses, motion.poses)


def test_write_motion_picks_the_format_from_the_destination(tmp_path):
    motion = make_motion()
    assert write_motion(motion, tmp_path / "a.npz").is_file()
    assert (write_motion(motion, tmp_path / "a_frames") / "000000.json").is_file()
    with pytest.raises(MotionError, match="ending in .npz"):
        write_motion(motion, tmp_path / "a.json")


# ----------------------------------------------------------------------------------------------
# Bad inputs


def poses_arrays(n: int = 10) -> dict[str, np.ndarray]:
    return {"poses": np.zeros((n, 165)), "trans": np.zeros((n, 3)), "mocap_frame_rate": np.array(30.0)}


class Touch:
    """Unpickling this creates ``marker``: proof that a reader unpickled the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


BAD_NPZ = {
    "unknown layout": ({"foo": np.zeros(3), "bar": np.zeros(3)}, "Keys found: bar, foo"),
    "wrong width": ({**poses_arrays(), "poses": np.zeros((10, 100))}, r"\(10, 100\).*\(frames, 165\)"),
    "wrong split width": ({"root_orient": np.zeros((5, 3)), "pose_body": np.zeros((5, 60))},
                          r"'pose_body' must have shape \(frames, 63\)"),
    "wrong trans width": ({**poses_arrays(), "trans": np.zeros((10, 2))}, r"'trans' must have shape"),
    "nan": ({**poses_arrays(), "poses": np.full((10, 165), np.nan)}, "NaN or infinite"),
    "inf trans": ({**poses_arrays(), "trans": np.full((10, 3), np.inf)}, "'trans' contains NaN or inf"),
    "zero frames": (poses_arrays(0), "zero frames"),
    "zero fps": ({**poses_arrays(), "mocap_frame_rate": np.array(0.0)}, "not plausible"),
    "negative fps": ({**poses_arrays(), "mocap_framerate": np.array(-30)}, "not plausible"),
    "absurd fps": ({**poses_arrays(), "mocap_frame_rate": np.array(5000.0)}, "not plausible"),
    "nan fps": ({**poses_arrays(), "mocap_frame_rate": np.array(np.nan)}, "NaN or infinite"),
    "mismatched frames": ({**poses_arrays(), "trans": np.zeros((9, 3))},
                          "'trans' has 9 frames but the poses have 10"),
    "mismatched split frames": ({"root_orient": np.zeros((5, 3)), "pose_body": np.zeros((6, 63))},
                                "'pose_body' has 6 frames but 'root_orient' has 5"),
    "text poses": ({**poses_arrays(), "poses": np.full((10, 165), "0.1")}, "must hold numbers"),
    "bool poses": ({**poses_arrays(), "poses": np.zeros((10, 165), bool)}, "must hold numbers"),
    "newer version": ({**poses_arrays(), "format_version": np.array(99)}, "newer PERSONA Studio"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_files_are_refused_with_a_reason(tmp_path, case):
    arrays, message = BAD_NPZ[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(MotionError, match=message):
        read_motion(path)


def test_pickled_arrays_are_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = Touch(marker)
    np.savez(path, poses=payload, trans=np.zeros((1, 3)))
    with pytest.raises(MotionError, match="'poses' holds pickled Python objects"):
        read_motion(path)
    assert not marker.exists()

    raw_pickle = tmp_path / "evil2.npz"  # a bare pickle wearing an .npz name
    raw_pickle.write_bytes(pickle.dumps(Touch(marker)))
    with pytest.raises(MotionError, match="not a readable .npz archive"):
        read_motion(raw_pickle)
    with pytest.raises(MotionError, match="pickle files are never opened"):
        read_motion(raw_pickle.rename(tmp_path / "evil.pkl"))
    assert not marker.exists()


def test_too_large_files_are_refused_before_reading(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, **poses_arrays(1000))
    with pytest.raises(MotionError, match="over the .* limit"):
        read_motion(path, max_bytes=100_000)
    zipped = tmp_path / "bomb.npz"  # small on disk, huge once unpacked
    np.savez_compressed(zipped, **poses_arrays(20_000))
    assert zipped.stat().st_size < 100_000
    with pytest.raises(MotionError, match="unpacked to .* over the .* limit"):
        read_motion(zipped, max_bytes=1_000_000)
    folder = write_json_folder(make_motion(n=30), tmp_path / "frames")
    with pytest.raises(MotionError, match="over the .* limit"):
        read_motion(folder, max_bytes=10_000)


def frame(**override) -> dict:
    base = {"root_pose": [0.0] * 3, "body_pose": [[0.0] * 3] * 21, "trans": [0.0] * 3, "expr": [0.0] * 10}
    return {**base, **override}


BAD_FOLDERS = {
    "empty folder": ({}, "zero frames"),
    "missing body pose": ({"0.json": {"root_pose": [0, 0, 0]}}, "no 'body_pose' key. Keys found: root_pose"),
    "key in some frames only": ({"0.json": frame(), "1.json": frame(jaw_pose=[0, 0, 0])},
                                "0.json: no 'jaw_pose' key, which other frames have"),
    "wrong width": ({"0.json": frame(body_pose=[0.0] * 60)}, "'body_pose' must hold 21 x 3 numbers"),
    "nan": ({"0.json": frame(trans=[float("nan"), 0, 0])}, "'trans' contains NaN"),
    "text": ({"0.json": frame(root_pose=["0", "0", "0"])}, "'root_pose' must hold numbers"),
    "null": ({"0.json": frame(root_pose=[None, 0, 0])}, "'root_pose' must hold numbers"),
    "ragged": ({"0.json": frame(body_pose=[[0, 0, 0]] * 20 + [[0, 0]])}, "not a regular array"),
    "varying sizes": ({"0.json": frame(), "1.json": frame(expr=[0.0] * 5)},
                      "'expr' has 5 numbers but 0.json has 10"),
    "unnumbered name": ({"0.json": frame(), "last.json": frame()}, "frame number in the name"),
    "duplicate number": ({"1.json": frame(), "001.json": frame()}, "both claim frame 1"),
    "absurd fps": ({"0.json": frame(), META_FILE_NAME: {"fps": 5000}}, "not plausible"),
    "text fps": ({"0.json": frame(), META_FILE_NAME: {"fps": "30"}}, "must be a number"),
    "bad up axis": ({"0.json": frame(), META_FILE_NAME: {"up_axis": "x"}}, "'up_axis' is 'x'"),
    "not json": ({"0.json": "{root_pose: [0, 0, 0]"}, "not valid JSON"),
    "not an object": ({"0.json": [1, 2, 3]}, "expected a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_json_folders_are_refused_with_a_reason(tmp_path, case):
    files, message = BAD_FOLDERS[case]
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name).write_text(text)
    with pytest.raises(MotionError, match=message):
        read_motion(folder)


def test_unsupported_paths_say_what_to_give(tmp_path):
    with pytest.raises(MotionError, match="no such file"):
        read_motion(tmp_path / "missing.npz")
    (tmp_path / "clip.fbx").write_text("Kaydara FBX Binary")
    with pytest.raises(MotionError, match="unsupported motion file"):
        read_motion(tmp_path / "clip.fbx")
    (tmp_path / "0001.json").write_text(json.dumps(frame()))
    with pytest.raises(MotionError, match="give the folder"):
        read_motion(tmp_path / "0001.json")


def test_motion_constructor_validates():
    with pytest.raises(MotionError, match=r"shape \(frames, 55, 3\)"):
        Motion(poses=np.zeros((4, 52, 3)), trans=np.zeros((4, 3)), fps=30)
    with pytest.raises(MotionError, match=r"trans must have shape \(4, 3\)"):
        Motion(poses=np.zeros((4, 55, 3)), trans=np.zeros((5, 3)), fps=30)
    with pytest.raises(MotionError, match="not plausible"):
        Motion(poses=np.zeros((4, 55, 3)), trans=np.zeros((4, 3)), fps=1001)
    motion = Motion(poses=np.zeros((4, 55, 3), np.float64), trans=np.zeros((4, 3)), fps=30)
    assert motion.poses.dtype == np.float32 and motion.expression.shape == (4, 0)


# ----------------------------------------------------------------------------------------------
# Other layouts and the up axis


def test_split_keys_smplh_and_smpl_layouts(tmp_path):
    rng = np.random.default_rng(3)
    full = rng.normal(0, 0.3, (6, 165))
    np.savez(tmp_path / "split.npz", root_orient=full[:, :3], pose_body=full[:, 3:66],
             pose_jaw=full[:, 66:69], pose_eye=full[:, 69:75], pose_hand=full[:, 75:],
             trans=np.zeros((6, 3)), mocap_framerate=np.array(60.0))
    split = read_motion(tmp_path / "split.npz", up_axis="y")
    np.testing.assert_allclose(split.poses.reshape(6, -1), full, atol=1e-6)
    assert split.fps == 60.0 and split.source_format == "SMPL-X npz (AMASS layout)"

    np.savez(tmp_path / "no_hands.npz", root_orient=full[:, :3], pose_body=full[:, 3:66])
    no_hands = read_motion(tmp_path / "no_hands.npz", up_axis="y")
    assert not no_hands.poses[:, 22:].any()
    assert any("'pose_hand'" in note for note in no_hands.notes)
    assert any("no 'trans'" in note for note in no_hands.notes)

    smpl = rng.normal(0, 0.3, (6, 72))
    np.savez(tmp_path / "smpl.npz", poses=smpl, trans=np.zeros((6, 3)), betas=np.ones(10),
             mocap_frame_rate=np.array(30.0))
    motion = read_motion(tmp_path / "smpl.npz", up_axis="y")
    np.testing.assert_allclose(motion.poses[:, :22].reshape(6, -1), smpl[:, :66], atol=1e-6)
    assert not motion.poses[:, 22:].any() and motion.betas is None
    assert motion.source_format == "SMPL npz (AMASS layout)"
    assert any("hands flat" in note for note in motion.notes)


def test_to_y_up_moves_every_point_by_the_change_of_frame():
    rng = np.random.default_rng(5)
    poses = rng.normal(0, 1, (20, 55, 3))
    trans = rng.normal(0, 1, (20, 3))
    pelvis = np.array([0.01, -0.3, 0.02])
    new_poses, new_trans = to_y_up(poses, trans, "z", pelvis)
    for point in rng.normal(0, 0.5, (5, 3)):
        before = Z_UP_TO_Y_UP.apply(smplx_point(poses[:, 0], trans, point, pelvis))
        after = smplx_point(new_poses[:, 0].astype(np.float64), new_trans, point, pelvis)
        np.testing.assert_allclose(after, before, atol=1e-5)
    np.testing.assert_array_equal(new_poses[:, 1:], poses[:, 1:].astype(np.float32))


@pytest.mark.parametrize("up_axis", ["z", "-y"])
def test_up_axis_is_inferred_and_converted_back(tmp_path, up_axis):
    motion = make_motion(n=10, betas=None)
    to_file = {"z": Z_UP_TO_Y_UP.inv(), "-y": Rotation.from_rotvec([math.pi, 0.0, 0.0])}[up_axis]
    p = skeleton.PELVIS_REST
    root = (to_file * Rotation.from_rotvec(motion.poses[:, 0].astype(np.float64))).as_rotvec()
    trans = to_file.apply(motion.trans.astype(np.float64) + p) - p
    poses = motion.poses.astype(np.float64).copy()
    poses[:, 0] = root
    if up_axis == "z":  # AMASS: an npz with no up-axis flag
        path = tmp_path / "amass.npz"
        np.savez(path, poses=poses.reshape(10, -1), trans=trans, mocap_frame_rate=np.array(30.0))
    else:  # a photo fit in camera space: per-frame JSON with no meta file
        path = tmp_path / "fit"
        path.mkdir()
        for i in range(10):
            (path / f"{i}.json").write_text(json.dumps(frame(
                root_pose=root[i].tolist(), body_pose=poses[i, 1:22].tolist(), trans=trans[i].tolist(),
                expr=[])))
    back = read_motion(path)
    assert back.source_up_axis == up_axis
    assert any(f"up axis {up_axis.upper()}, converted to Y-up (no up-axis flag" in n for n in back.notes)
    np.testing.assert_allclose(body_up(back.poses[:, 0]), body_up(motion.poses[:, 0]), atol=1e-5)
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-5)
    # an explicit up axis wins over the inference
    assert read_motion(path, up_axis="y").source_up_axis == "y"


# ----------------------------------------------------------------------------------------------
# Real files (../shared/data/motions)


def test_real_amass_smplx_file_is_z_up_and_stands_upright_after_conversion():
    path = shared_path("motions", "humangaussian_amass_test_17.npz")
    motion = read_motion(path)
    assert motion.num_frames == 136 and motion.fps == 30.0
    assert motion.source_format == "SMPL-X npz (AMASS layout)" and motion.source_up_axis == "z"
    assert motion.betas.shape == (10,) and motion.expression.shape == (136, 0)
    assert (body_up(motion.poses[:, 0])[:, 1] > 0.95).all()
    assert np.ptp(motion.trans[:, 1]) < 0.05  # the clip stays in place: no vertical drift
    with np.load(path) as raw:
        file_poses, file_trans = raw["poses"], raw["trans"]
    np.testing.assert_allclose(motion.poses[:, 1:], file_poses[:, 1:], atol=1e-6)  # only the root turns
    expected = Z_UP_TO_Y_UP.apply(file_trans + skeleton.PELVIS_REST) - skeleton.PELVIS_REST
    np.testing.assert_allclose(motion.trans, expected, atol=1e-5)


def test_real_smplcodec_file_is_y_up_with_no_frame_rate():
    path = shared_path("motions", "smplcodec_apose_to_handsFront_smplx.npz")
    motion = read_motion(path)
    assert motion.num_frames == 34 and motion.fps == 30.0
    assert motion.source_up_axis == "y" and motion.source_format == "SMPL-X npz (AMASS layout)"
    assert any("no frame-rate key" in note and "assumed 30 fps" in note for note in motion.notes)
    assert (body_up(motion.poses[:, 0])[:, 1] > 0.95).all()
    with np.load(path) as raw:
        np.testing.assert_allclose(motion.poses.reshape(34, -1), raw["poses"], atol=1e-6)
        np.testing.assert_allclose(motion.trans, raw["trans"], atol=1e-6)


def test_real_smplh_file_keeps_hands_and_a_neutral_face():
    path = shared_path("motions", "smplx_repo_amass_sample_SMPLH.npz")
    motion = read_motion(path)
    assert motion.num_frames == 601 and motion.fps == 120.0
    assert motion.source_format == "SMPL-H npz (AMASS layout)" and motion.source_up_axis == "z"
    assert motion.betas is None  # SMPL-H shape space, not SMPL-X's
    notes = " | ".join(motion.notes)
    assert "hands kept, face neutral" in notes and "betas dropped" in notes and "dmpls" in notes
    with np.load(path) as raw:
        file_poses = raw["poses"]
    np.testing.assert_allclose(motion.poses[:, skeleton.LEFT_HAND].reshape(601, -1), file_poses[:, 66:111],
                               atol=1e-6)
    np.testing.assert_allclose(motion.poses[:, skeleton.RIGHT_HAND].reshape(601, -1), file_poses[:, 111:],
                               atol=1e-6)
    assert np.abs(file_poses[:, 66:]).max() > 0.1  # the hands really move
    assert not motion.poses[:, 22:25].any()
    assert (body_up(motion.poses[:, 0])[:, 1] > 0.85).all()
    assert np.ptp(motion.trans[:, 1]) < 0.05


def test_describe_and_convert_a_real_file(tmp_path):
    path = shared_path("motions", "smplx_repo_amass_sample_SMPLH.npz")
    text = describe_motion(path)
    for line in ("format: SMPL-H npz (AMASS layout)", "frames: 601", "fps: 120", "duration: 5.01 s",
                 "up axis: Z (converted to Y-up on reading)", "hands kept"):
        assert line in text
    out = convert_motion(path, tmp_path / "walk.npz", fps=30)
    converted = read_motion(out)
    assert converted.num_frames == 151 and converted.fps == 30.0
    assert any("resampled from 120 to 30 fps" in note for note in converted.notes)
    frames = convert_motion(out, tmp_path / "walk_frames")
    np.testing.assert_array_equal(read_motion(frames).poses, converted.poses)
    with pytest.raises(MotionError, match="already exists"):
        convert_motion(path, out)
    assert read_motion(convert_motion(path, out, overwrite=True)).num_frames == 601


# ----------------------------------------------------------------------------------------------
# Resampling and smplx arguments


def test_resample_counts_frames_and_keeps_the_endpoints():
    motion = dataclasses.replace(make_motion(n=601), fps=120.0)
    down = resample(motion, 30)
    assert down.num_frames == 151 and down.fps == 30.0
    np.testing.assert_array_equal(down.poses[[0, -1]], motion.poses[[0, -1]])
    np.testing.assert_array_equal(down.trans[[0, -1]], motion.trans[[0, -1]])
    np.testing.assert_array_equal(down.poses[1], motion.poses[4])  # 120 -> 30 fps keeps every 4th frame
    assert resample(motion, 50).num_frames == 251
    same = resample(motion, 120)
    np.testing.assert_array_equal(same.poses, motion.poses)


def test_resample_slerps_rotations_and_lerps_the_rest():
    rng = np.random.default_rng(11)
    poses = rng.normal(0, 1.0, (2, 55, 3))
    motion = Motion(poses=poses, trans=np.array([[0.0, 0.0, 0.0], [1.0, 2.0, -4.0]]), fps=10,
                    expression=np.array([[0.0, 1.0], [2.0, 3.0]]))
    double = resample(motion, 20)
    assert double.num_frames == 3
    np.testing.assert_allclose(double.trans[1], [0.5, 1.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(double.expression[1], [1.0, 2.0], atol=1e-6)
    start = Rotation.from_rotvec(double.poses[0].astype(np.float64))
    middle = Rotation.from_rotvec(double.poses[1].astype(np.float64))
    end = Rotation.from_rotvec(double.poses[2].astype(np.float64))
    whole = (start.inv() * end).magnitude()
    np.testing.assert_allclose((start.inv() * middle).magnitude(), whole / 2, atol=1e-5)
    np.testing.assert_allclose((middle.inv() * end).magnitude(), whole / 2, atol=1e-5)

    turn = Motion(poses=np.zeros((2, 55, 3)), trans=np.zeros((2, 3)), fps=1)
    turn.poses[1, 0] = [0.0, 0.0, 3.0]  # 3 rad about Z: halfway is 1.5 rad about Z
    np.testing.assert_allclose(resample(turn, 2).poses[1, 0], [0.0, 0.0, 1.5], atol=1e-6)


def test_smplx_kwargs_split_the_pose_and_fit_the_model_sizes():
    motion = make_motion(n=5, expression=4, betas=16)
    kwargs = motion.smplx_kwargs(slice(1, 4), num_betas=10, num_expression_coeffs=10)
    shapes = {name: tuple(t.shape) for name, t in kwargs.items()}
    assert shapes == {"global_orient": (3, 3), "body_pose": (3, 63), "jaw_pose": (3, 3), "leye_pose": (3, 3),
                      "reye_pose": (3, 3), "left_hand_pose": (3, 45), "right_hand_pose": (3, 45),
                      "transl": (3, 3), "betas": (3, 10), "expression": (3, 10)}
    np.testing.assert_array_equal(kwargs["body_pose"].numpy(), motion.poses[1:4, 1:22].reshape(3, 63))
    np.testing.assert_array_equal(kwargs["right_hand_pose"].numpy(), motion.poses[1:4, 40:].reshape(3, 45))
    np.testing.assert_array_equal(kwargs["betas"].numpy()[0], motion.betas[:10])
    np.testing.assert_array_equal(kwargs["expression"].numpy()[:, :4], motion.expression[1:4])
    assert not kwargs["expression"][:, 4:].any()


# ----------------------------------------------------------------------------------------------
# Presets

PRESET_NAMES = {"turn_around", "arms_raise_lower", "light_punches", "kicks", "squat", "walk_in_place",
                "wave", "dance"}


def test_every_preset_loads_and_is_a_short_clip():
    presets = preset_motion_paths()
    assert PRESET_NAMES <= set(presets)
    for name, path in presets.items():
        motion = read_motion(path)
        assert motion.source_format == "PERSONA Studio npz v1" and motion.source_up_axis == "y", name
        assert 25 <= motion.fps <= 30 and 2 <= motion.duration <= 8, name
        assert motion.betas is None, name
        assert (body_up(motion.poses[:, 0])[:, 1] > 0.9).all(), name  # the body stays upright
        assert np.abs(motion.trans).max() < 0.5, name  # in place, feet near the floor
        speed = np.linalg.norm(np.diff(motion.poses, axis=0), axis=-1).max() * motion.fps
        assert speed < 15, f"{name}: a joint turns at {speed:.1f} rad/s"  # smooth, no jumps


def test_turn_around_turns_a_full_circle_and_squat_lowers_the_body():
    turn = read_motion(preset_motion_paths()["turn_around"])
    yaw = turn.poses[:, 0, 1]
    assert yaw[0] == 0 and abs(yaw[-1] - 2 * math.pi) < 1e-3 and (np.diff(yaw) >= 0).all()
    squat = read_motion(preset_motion_paths()["squat"])
    assert squat.trans[:, 1].min() < -0.25
    knee = squat.poses[:, skeleton.JOINT_INDEX["left_knee"], 0]
    assert knee.max() > 1.5  # knees bend (flexion is +X)


def test_preset_generator_reproduces_the_committed_files(tmp_path):
    script = ROOT / "presets" / "motions" / "make_presets.py"
    spec = importlib.util.spec_from_file_location("make_presets", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name, path in preset_motion_paths().items():
        fresh, committed = read_motion(tmp_path / f"{name}.npz"), read_motion(path)
        np.testing.assert_allclose(fresh.poses, committed.poses, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(fresh.trans, committed.trans, atol=1e-5, err_msg=name)
        assert fresh.fps == committed.fps


@pytest.fixture(scope="module")
def open_body():
    from persona_studio.body.model import load_body_model

    return load_body_model("open")


def test_pose_conventions_and_preset_feet_on_the_real_body_model(open_body):
    J = skeleton.JOINT_INDEX

    def joints(**rotations) -> np.ndarray:
        poses = np.zeros((1, 55, 3))
        for name, rotvec in rotations.items():
            poses[0, J[name]] = rotvec
        motion = Motion(poses=poses, trans=np.zeros((1, 3)), fps=30)
        with torch.no_grad():
            return open_body.joints(open_body(**motion.smplx_kwargs()))[0].numpy()

    rest = joints()
    assert (joints(left_knee=[1.0, 0, 0]) - rest)[J["left_ankle"], 2] < -0.2  # knee bend: foot goes back
    assert (joints(left_hip=[-1.0, 0, 0]) - rest)[J["left_ankle"], 2] > 0.4  # hip flexion: leg forward
    assert (joints(left_shoulder=[0, 0, -1.2]) - rest)[J["left_wrist"], 1] < -0.3  # left arm down
    assert (joints(right_shoulder=[0, 0, 1.2]) - rest)[J["right_wrist"], 1] < -0.3  # right arm down
    assert (joints(left_shoulder=[0, -1.2, 0]) - rest)[J["left_wrist"], 2] > 0.3  # left arm forward
    assert (joints(right_elbow=[0, 1.2, 0]) - rest)[J["right_wrist"], 2] > 0.1  # right elbow flexes forward

    weights = open_body.skinning_weights.numpy()
    feet = np.flatnonzero(weights[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]]
                          .sum(1) > 0.5)
    floor = float(open_body.v_template[:, 1].min())
    for name, path in preset_motion_paths().items():
        motion = read_motion(path)
        with torch.no_grad():
            vertices = open_body(**motion.smplx_kwargs()).vertices.numpy()
        lowest = vertices[:, feet, 1].min(1) - floor
        assert np.abs(lowest).max() < 0.015, f"{name}: the feet leave the floor by {np.abs(lowest).max():.3f} m"
