"""The avatar representation: posing, the masked-pose MLP and its fast path, bundles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from persona_studio.avatar.avatar import MAX_SCALE_GROWTH, Avatar, AvatarConfig, NO_DEFORM_JOINTS
from persona_studio.avatar.bundle import BundleError, load_avatar, save_avatar
from persona_studio.body.parts import PART_INDEX
from persona_studio.body.skeleton import JOINT_INDEX as J
from persona_studio.body.subdivide import longest_incident_edge
from persona_studio.render.body import vertex_normals

from conftest import needs_cuda


@pytest.fixture(scope="module")
def avatar(open_body_model):
    torch.manual_seed(0)
    grey = lambda interp, v: np.full((v.shape[0], 3), 0.5, np.float32)  # noqa: E731
    av = Avatar.from_body_model(open_body_model, np.zeros(10, np.float32), grey, AvatarConfig(level=0),
                                {"body_model": "open", "subject": "test"})
    torch.nn.init.normal_(av.mlp.out.weight, std=0.2)  # a non-trivial deformation network
    torch.nn.init.normal_(av.triplane.planes, std=0.5)
    av.invalidate_cache()
    return av


def frames(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"global_orient": torch.randn(batch, 3, generator=g) * 0.2,
            "body_pose": torch.randn(batch, 63, generator=g) * 0.3,
            "transl": torch.randn(batch, 3, generator=g) * 0.1}


def test_rest_pose_is_the_template_plus_learnt_offsets(avatar):
    zero = {"global_orient": torch.zeros(1, 3), "body_pose": torch.zeros(1, 63)}
    with torch.no_grad():
        posed = avatar.pose(zero).means[0]
        rest_offsets = avatar.pose_offsets(zero["body_pose"])[0]
    np.testing.assert_allclose(posed.numpy(), (avatar.template + avatar.offsets + rest_offsets).detach().numpy(), atol=1e-5)


def test_posed_gaussians_follow_the_body_model(avatar, open_body_model):
    p = frames(1)
    with torch.no_grad():
        avatar.mlp.out.weight.zero_()
        ours = avatar.pose(p).means[0]
        body = open_body_model.forward(**p).vertices[0]
        torch.nn.init.normal_(avatar.mlp.out.weight, std=0.2)
    dist = (ours - body).norm(dim=1)
    assert float(dist.median()) < 1e-4  # same skinning where the smoothed weights equal the model's
    assert float(dist.max()) < 0.05


def test_grouped_first_layer_is_exact(avatar):
    pose = frames(3, seed=2)["body_pose"]
    with torch.no_grad():
        torch.testing.assert_close(avatar.pose_offsets(pose), avatar.pose_offsets_reference(pose), atol=1e-6, rtol=0)


def test_fast_path_is_exact(avatar):
    p = frames(4, seed=1)
    avatar.invalidate_cache()
    with torch.no_grad():
        slow = avatar.pose(p).means
    fast = avatar.pose(p, fast=True).means
    assert (slow - avatar.pose({**p, "body_pose": torch.zeros_like(p["body_pose"])}).means).abs().max() > 1e-3
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_pose_input_is_masked_by_the_four_ring(avatar):
    """Moving a joint outside a Gaussian's 4-ring does not change its offset; inside it can."""
    knee = avatar.dominant == J["left_knee"]
    base = torch.zeros(1, 63)
    moved_far = base.clone()
    moved_far[0, (J["right_elbow"] - 1) * 3] = 1.0  # right elbow: 7+ bones from the left knee
    moved_near = base.clone()
    moved_near[0, (J["left_hip"] - 1) * 3] = 1.0
    with torch.no_grad():
        o0, o_far, o_near = (avatar.pose_offsets(b)[0, knee] for b in (base, moved_far, moved_near))
    assert torch.equal(o0, o_far)
    assert (o0 - o_near).abs().max() > 1e-5


def test_hands_and_face_are_not_deformed(avatar):
    with torch.no_grad():
        offsets = avatar.pose_offsets(frames(1)["body_pose"])[0]
    frozen = torch.isin(avatar.dominant, torch.tensor(NO_DEFORM_JOINTS))
    assert frozen.any() and offsets[frozen].abs().max() == 0
    assert offsets[~frozen].abs().max() > 0


def test_bundle_round_trip_is_bit_exact(avatar, tmp_path):
    with torch.no_grad():
        avatar.offsets.normal_(std=0.001)
        avatar.colors.uniform_(0, 1)
    folder = save_avatar(avatar, tmp_path / "bundle")
    loaded, meta = load_avatar(folder)
    assert meta["identity"] == avatar.identity and meta["config"]["level"] == 0
    for (name, a), (_, b) in zip(avatar.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    p = frames(2, seed=3)
    with torch.no_grad():
        assert torch.equal(avatar.pose(p).means, loaded.pose(p).means)
    with pytest.raises(BundleError, match="not an avatar bundle"):
        load_avatar(tmp_path)


@needs_cuda
def test_a_bundle_saved_on_one_device_loads_and_poses_identically_on_the_other(avatar, tmp_path):
    from persona_studio.avatar.bundle import load_checkpoint, save_checkpoint

    p = frames(2, seed=5)
    with torch.no_grad():
        on_cpu = avatar.pose(p).means
    gpu, _ = load_avatar(save_avatar(avatar, tmp_path / "from_cpu"), device="cuda")
    assert all(t.device.type == "cuda" for t in gpu.state_dict().values())
    with torch.no_grad():
        on_gpu = gpu.pose({k: v.cuda() for k, v in p.items()})
    np.testing.assert_allclose(on_gpu.means.cpu().numpy(), on_cpu.numpy(), atol=1e-5)
    assert on_gpu.opacities.device.type == "cuda"
    back, extra, _ = load_checkpoint(save_checkpoint(gpu, tmp_path / "gpu.ckpt", {"x": torch.ones(2, device="cuda")},
                                                     {"step": 1}), device="cpu")
    assert extra["x"].device.type == "cpu"
    for (name, a), (_, b) in zip(avatar.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_splats_started_on_a_clothed_surface_close_it(open_body_model):
    """A surface standing off the body (a jacket hanging from the shoulder blades: here the torso's back
    pushed out by up to 6 cm, more towards the waist) spreads its vertices apart. The avatar started on
    it sizes each splat to that surface, as the re-poser's splats are, so neighbours still overlap where
    the spread is within the growth bound; splats sized on the bare template would leave gaps there."""
    grey = lambda interp, v: np.full((v.shape[0], 3), 0.5, np.float32)  # noqa: E731
    avatar = Avatar.from_body_model(open_body_model, np.zeros(10, np.float32), grey, AvatarConfig(level=1),
                                    {"body_model": "open", "subject": "test"})
    t = avatar.template
    normals = vertex_normals(t, avatar.faces)
    back = (avatar.parts == PART_INDEX["torso"]) & (normals[:, 2] < -0.3)
    low = (t[:, 1].max() - t[:, 1]).clamp(0, 1)  # 0 at the top of the head, more further down
    shift = torch.where(back, 0.06 * (low / low[back].max()) * -normals[:, 2], torch.zeros(len(t)))
    bare = avatar.scales.detach().clone()
    avatar.start_on_surface(shift)
    torch.testing.assert_close(avatar.offsets, shift[:, None] * normals)
    edges = longest_incident_edge(t + avatar.offsets, avatar.faces)
    stretched = back & (edges > 1.2 * 2 * bare) & (edges < MAX_SCALE_GROWTH * 2 * bare)
    assert stretched.sum() > 50, int(stretched.sum())
    assert (edges[stretched] / (2 * bare[stretched])).min() > 1.2  # the bare template's splats leave gaps
    torch.testing.assert_close(2 * avatar.scales[stretched], edges[stretched])  # these close them
    flat = ~back & (shift == 0)
    assert torch.all(avatar.scales <= MAX_SCALE_GROWTH * bare * (1 + 1e-5))
    assert (avatar.scales[flat] / bare[flat] - 1).abs().median() < 1e-6  # unmoved surface: unchanged
