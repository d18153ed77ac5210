"""The trainer on a real (tiny) training set: steps reduce the losses, live controls, snapshots a
watcher can pose while it runs, resume, seams."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from persona_studio.capture.pipeline import fit_photo
from persona_studio.generate.stage import GenerateOptions, generate_training_set
from persona_studio.render import Camera, rasterize_cameras
from persona_studio.render.image import resize_image
from persona_studio.train.frames import render_blur
from persona_studio.train.sampler import BalancedSampler
from persona_studio.train.seams import seam_mask
from persona_studio.train.step import anchored_offsets, taught_means
from persona_studio.train.trainer import Trainer, TrainSettings

from conftest import needs_cuda, shared_path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, open_body_model):
    ws = tmp_path_factory.mktemp("train")
    fit_photo(shared_path("photos", "sith_002.png"), ws, model=open_body_model)
    generate_training_set(ws, GenerateOptions(motions=["wave"], frames=5, size=(72, 128), level=0), model=open_body_model)
    return ws


def tiny(**overrides) -> TrainSettings:
    values = dict(iterations=6, resolution=96, template_level=0, mlp_width=32, triplane_resolution=16,
                  checkpoint_every=0, preview_every=0)
    values.update(overrides)
    return TrainSettings.from_preset("preview", **values)


def test_one_step_reduces_each_loss_on_a_fixed_frame(workspace, open_body_model):
    from dataclasses import replace

    trainer = Trainer(workspace, tiny(), model=open_body_model)
    (trainer.checkpoint_path).unlink(missing_ok=True)
    trainer.prepare()
    # The data terms alone: the avatar starts from the re-poser's fitted surface, whose volume the
    # offset Laplacian would first smooth at the data terms' expense.
    trainer._step_weights = replace(trainer._weights, laplacian_offsets=0.0)
    for index in (0, 2):  # the photo and a generated frame
        before = {k: v for k, v in trainer.losses_for(index)[1].items()}
        for _ in range(3):
            trainer.optimiser.zero_grad()
            loss, _ = trainer.losses_for(index)
            loss.backward()
            trainer.optimiser.step()
            trainer.avatar.invalidate_cache()
        after = trainer.losses_for(index)[1]
        assert sum(after.values()) < sum(before.values())
        # A re-poser frame is a render of the surface the avatar starts from: its image loss starts
        # near zero (0.3 % here) and reaches only the deformation (never the colours): like the mask,
        # it may give a sliver (0.1 % of a pixel's colour) to the geometry terms.
        image_slack = 1e-6 if index == 0 else 1e-3
        assert after["image"] <= before["image"] + image_slack, (index, before["image"], after["image"])
        if index == 0:
            # The photo's geometry terms count at a tenth (``photo_geometry``) and start near their
            # optimum (its normals within 0.02 here): they may give a little to the image, each less than
            # a tenth of what the image gains (5 % for the normals here, 2 % for depth; 3 steps of Adam
            # move them by 9-10 % of their own small value, which is how a bound on that ratio failed).
            image_gain = before["image"] - after["image"]
            for term in ("normal", "depth"):
                assert after[term] - before[term] <= 0.1 * image_gain, (term, before, after)
        else:
            # A generated frame's normals, at full weight, must improve.
            assert after["normal"] <= before["normal"], (index, before["normal"], after["normal"])
        # Starting from the re-poser's surface, fitted to these very silhouettes, the mask is at its
        # optimum already (about 1 % of the 72x128 frame): it may give a little to the other terms, a
        # sliver of outline (up to 0.3 % of the frame, 28 pixels, or a tenth of its value), never much.
        assert after["mask"] <= max(1.1 * before["mask"], before["mask"] + 0.003), (index, before["mask"], after["mask"])


def test_frames_and_renders_share_the_training_background(workspace, open_body_model):
    # A frame that is exactly the avatar's own render on white matches it over any plain background:
    # both are re-composited, so at the outline only opacity can match the frame, never edge colours.
    from dataclasses import replace

    trainer = Trainer(workspace, tiny(), model=open_body_model)
    trainer.prepare()
    for index in (0, 2):  # the photo and a generated frame
        with torch.no_grad():
            out = trainer.render(index)
            alpha = out.alpha[0, ..., 0]
            own = out.features[0, ..., :3] + (1 - alpha[..., None])
        trainer.frames[index] = replace(trainer.frames[index], rgb=own, mask=alpha)
        for background in (torch.ones(3), torch.tensor([0.1, 0.7, 0.3])):
            assert trainer.losses_for(index, background)[1]["image"] < 1e-5


def test_pause_resume_stop_and_live_weights(workspace, open_body_model):
    events = []
    trainer = Trainer(workspace, tiny(iterations=10_000), on_event=events.append, model=open_body_model)
    trainer.start()
    deadline = time.time() + 120
    while trainer.step < 2 and time.time() < deadline:
        time.sleep(0.05)
    trainer.pause()
    time.sleep(0.5)
    paused_at = trainer.step
    time.sleep(1.0)
    assert trainer.step <= paused_at + 1 and trainer.paused  # at most the step in flight finishes
    trainer.set_weights(mask=7.0)
    trainer.set_photo_share(1.0)
    trainer.resume()
    while trainer.step < paused_at + 3 and time.time() < deadline:
        time.sleep(0.05)
    trainer.stop()
    trainer.join(60)
    assert not trainer.running and trainer.error is None
    late = [e for e in events if e["type"] == "progress" and e["step"] > paused_at + 1]
    assert late and all(e["losses"]["frame"] == 0 for e in late)  # photo share 1: only the photo
    assert trainer._step_weights.mask == 7.0
    kinds = {e["type"] for e in events}
    assert {"progress", "paused", "resumed", "stopped"} <= kinds


def parameter_digest(tensors: dict[str, torch.Tensor], names: list[str]) -> str:
    """SHA-1 of the named tensors' bytes, in the order of ``names``."""
    import hashlib

    digest = hashlib.sha1()
    for name in names:
        digest.update(tensors[name].detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_a_watcher_sees_whole_steps_of_a_running_trainer(workspace, open_body_model):
    """The live view's path while the trainer runs on its thread: a poller keeps taking snapshots and
    posing them. Each must be the avatar of exactly one step (its parameters' bytes those the training
    thread had after that step, never a mix of two) and pose to finite Gaussians."""
    import threading

    from persona_studio.app.posers import AvatarPoser
    from persona_studio.body.model import smplx_tensors
    from persona_studio.train.snapshot import avatar_from_snapshot
    from persona_studio.workspace.subject import Subject

    steps = 36
    after_step: dict[int, str] = {}  # step -> digest of the live avatar, taken on the training thread

    def on_event(event: dict) -> None:
        if event["type"] == "progress":  # between steps, on the training thread: nothing mid-update
            after_step[event["step"]] = parameter_digest(dict(trainer.avatar.named_parameters()), names)

    trainer = Trainer(workspace, tiny(iterations=steps), on_event=on_event, model=open_body_model)
    trainer.checkpoint_path.unlink(missing_ok=True)
    trainer.prepare()
    # A slow update, as a big avatar's on a CPU: Adam has moved the parameters, the colours are not
    # clamped yet and the step not counted. A watcher copying the live avatar would see this state.
    trainer.optimiser.register_step_post_hook(lambda optimiser, args, kwargs: time.sleep(0.03))
    names = sorted(name for name, _ in trainer.avatar.named_parameters())
    params = smplx_tensors(Subject.load(workspace).smplx)
    taken: list[tuple[int, str, str]] = []  # (step, snapshot digest, posed avatar digest)
    failures: list[BaseException] = []

    def watch() -> None:
        avatar, previous = None, None
        try:
            while True:
                running = trainer.running  # once it has ended, one last look: the final snapshot
                snapshot = trainer.snapshot()
                if snapshot is not None and snapshot is not previous:  # every one handed out, not one a step
                    avatar = avatar_from_snapshot(snapshot, into=avatar)
                    poser = AvatarPoser(avatar)
                    posed = poser.pose(params)
                    arrays = poser.arrays()
                    assert np.isfinite(posed.means).all() and np.isfinite(posed.normals).all()
                    assert all(np.isfinite(v).all() for v in arrays.values())
                    taken.append((snapshot.step, parameter_digest(snapshot.state, names),
                                  parameter_digest(dict(poser.avatar.named_parameters()), names)))
                    previous = snapshot
                if not running:
                    return
                time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - failed in the main thread below
            failures.append(exc)

    trainer.start()
    watcher = threading.Thread(target=watch, name="watcher")
    watcher.start()
    trainer.join(300)
    watcher.join(60)
    assert not trainer.running and trainer.error is None and not failures, failures
    assert trainer.step == steps and sorted(after_step) == list(range(1, steps + 1))
    seen = [step for step, _, _ in taken]
    assert seen == sorted(seen) and len(set(seen)) >= 10, seen  # in order, of many steps
    for step, snapshot_digest, posed_digest in taken:
        assert snapshot_digest == after_step[step] == posed_digest, step
    last = trainer.snapshot()
    assert last.step == steps and parameter_digest(last.state, names) == after_step[steps]  # where it ended


def test_gaussians_slide_along_the_body_at_most_their_own_size(workspace, open_body_model):
    """However hard the frames pull (steps thirty times the preset's), no Gaussian slides along the body
    further than its starting size from where it started, so neighbours never part and open the clothes;
    in and out along the normals (the clothed volume) they move freely."""
    normals = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    prior, change, reach = torch.randn(50, 3) * 0.01, torch.randn(50, 3) * 0.02, torch.rand(50) * 0.01
    anchored = anchored_offsets(prior + change, prior, normals, reach)
    along = lambda x: (x * normals).sum(-1)  # noqa: E731
    torch.testing.assert_close(along(anchored - prior), along(change))
    slide = (change - along(change)[:, None] * normals).norm(dim=-1)
    moved = (anchored - prior - along(change)[:, None] * normals).norm(dim=-1)
    torch.testing.assert_close(moved, torch.minimum(slide, reach))

    trainer = Trainer(workspace, tiny(lr_scale=30.0), model=open_body_model, restart=True)
    trainer.prepare()
    for _ in range(6):
        trainer.train_step()
    change = trainer.avatar.offsets.detach() - trainer.prior_offsets
    outward = (change * trainer.anchor_normals).sum(-1)
    slide = (change - outward[:, None] * trainer.anchor_normals).norm(dim=-1)
    assert torch.all(slide <= trainer.anchor_reach + 1e-6), (slide - trainer.anchor_reach).max()
    assert (outward.abs() > trainer.anchor_reach).sum() > 10  # the volume is still learnt


def test_an_avatar_finer_than_the_surface_starts_from_it_subdivided(workspace, open_body_model):
    """A level-1 avatar from a level-0 training set (a `quality` run after a preview generation) starts
    from the re-poser's surface subdivided: its offsets are the surface's volume along the normals and
    its colours the surface's, new vertices the mean of their edge's ends; not the bare body."""
    from persona_studio.body.subdivide import refine_values
    from persona_studio.render.body import vertex_normals
    from persona_studio.workspace.training_set import TrainingSet

    ts = TrainingSet(workspace)
    assert ts.manifest["template_level"] == 0
    surface = ts.photo_surface()
    assert np.abs(surface.displacement).max() > 0.01  # the photo's clothes stand off the body
    trainer = Trainer(workspace, tiny(template_level=1), model=open_body_model, restart=True)
    trainer.prepare()
    avatar = trainer.avatar
    faces = open_body_model.subdivision(0)[0]
    displacement = refine_values(surface.displacement, faces, 1)
    assert avatar.num_gaussians == len(displacement) > len(surface.displacement)
    along = (avatar.offsets * vertex_normals(avatar.template, avatar.faces)).sum(-1).detach().numpy()
    np.testing.assert_allclose(along, displacement, atol=1e-5)
    np.testing.assert_allclose(avatar.colors.detach().numpy(), refine_values(surface.colors, faces, 1), atol=1e-5)


def test_a_killed_run_resumes_from_its_last_checkpoint(workspace, open_body_model):
    import shutil

    shutil.rmtree(workspace / "avatar", ignore_errors=True)
    settings = tiny(iterations=4, checkpoint_every=2)
    first = Trainer(workspace, settings, model=open_body_model)
    first.prepare()
    for _ in range(2):
        first.train_step()
    first.save_checkpoint()
    state = {k: v.clone() for k, v in first.avatar.state_dict().items()}
    # "kill": drop the trainer; a new one on the same workspace continues from step 2
    second = Trainer(workspace, settings, model=open_body_model)
    second.prepare()
    assert second.step == 2
    for k, v in second.avatar.state_dict().items():
        assert torch.equal(v, state[k]), k
    figures = second.run()
    assert figures["step"] == 4 and (workspace / "avatar" / "bundle" / "avatar.json").is_file()
    assert "photo_psnr" in figures


def test_a_render_at_the_training_size_keeps_the_outline_of_its_downsampled_frame(workspace, open_body_model):
    """A frame made at 4x the training size and downsampled, and the same Gaussians rendered at the
    training size with the frame's blur, have the same outline; with the usual 0.3 px^2 of the small
    image the render is fatter (which training would answer by thinning the avatar)."""
    gen = torch.Generator().manual_seed(0)
    # a dense sheet of splats a few millimetres across, like a body's surface seen from the front
    means = torch.cat([torch.rand(20000, 2, generator=gen) * 0.8 - 0.4, torch.zeros(20000, 1)], 1)
    means = means[means[:, :2].norm(dim=1) < 0.35]
    scales = torch.full((len(means),), 0.004)
    ones = torch.ones(len(means))

    def mask(size: int, eps2d: float) -> np.ndarray:
        camera = Camera.look_at((0.0, 0.0, 2.0), (0.0, 0.0, 0.0), fov_y_deg=30.0, width=size, height=size)
        out = rasterize_cameras([camera], means, scales, ones, ones[:, None], antialiased=True, eps2d=eps2d)
        return out.alpha[0, ..., 0].numpy()

    frame = np.clip(resize_image(mask(256, 0.3), (64, 64)), 0, 1) > 0.5
    matched, usual = mask(64, render_blur(64, 256)) > 0.5, mask(64, 0.3) > 0.5
    assert render_blur(64, 256) == pytest.approx(0.3 / 16) and render_blur(512, 256) == 0.3
    assert abs(int(matched.sum()) - int(frame.sum())) <= 0.01 * frame.sum()
    assert usual.sum() > frame.sum() + 0.02 * frame.sum()
    # the trainer's frames carry their own blur: the photo and the generated frames are larger than 96 px
    trainer = Trainer(workspace, tiny(), model=open_body_model)
    trainer.prepare()
    assert all(0 < f.blur < 0.3 for f in trainer.frames)


def test_seams_on_constructed_cases():
    # Two flat regions with different canonical positions side by side: a seam along their border only.
    pos = torch.zeros(1, 20, 20, 3)
    pos[:, :, :10] = torch.tensor([0.2, 0.5, 0.5])
    pos[:, :, 10:] = torch.tensor([0.8, 0.5, 0.5])
    alpha = torch.ones(1, 20, 20)
    seams = seam_mask(pos, alpha, radius=1, reference_size=20)[0]
    assert seams[:, 8:12].all() and not seams[:, :7].any() and not seams[:, 13:].any()
    # A smooth ramp (one body part) is not a seam; its silhouette against the background is.
    ramp = torch.linspace(0, 0.1, 20)[None, None, :, None].expand(1, 20, 20, 3).clone()
    alpha = torch.zeros(1, 20, 20)
    alpha[:, 5:15, 5:15] = 1
    seams = seam_mask(ramp * alpha[..., None], alpha, radius=0, reference_size=20)[0]
    assert seams[5, 5:15].all() and not seams[8:12, 8:12].any()


def test_seam_band_keeps_its_physical_width_across_resolutions():
    # One surface spanning the canonical range across the image, split by a jump in the middle: the
    # smooth part must never read as a seam, and the band round the jump keeps the same share of the
    # image at 1024 px (dilated by 2) and at 256 px (not dilated), up to the edge pixels themselves.
    shares = {}
    for size in (256, 1024):
        ramp = torch.linspace(0, 0.5, size)[None, None, :, None].expand(1, 8, size, 3).clone()
        ramp[:, :, size // 2:] += 0.4
        seams = seam_mask(ramp, torch.ones(1, 8, size))[0]
        assert not seams[:, : size // 2 - 4].any() and not seams[:, size // 2 + 4:].any()
        assert seams[:, size // 2].all()
        shares[size] = seams[0].float().mean().item()
    assert max(shares.values()) / min(shares.values()) < 1.5  # 6 px of 1024 vs 2 px of 256 (unscaled: 4x)


def test_balanced_sampler_share():
    sampler = BalancedSampler(list(range(1, 101)), photo_share=0.5, seed=1)
    draws = np.array([sampler.next() for _ in range(4000)])
    assert abs((draws == 0).mean() - 0.5) < 0.03
    assert set(draws[draws > 0]) == set(range(1, 101))  # every generated frame is seen
    sampler.photo_share = 0.0
    assert all(sampler.next() > 0 for _ in range(100))
    with pytest.raises(ValueError):
        BalancedSampler([1], photo_share=1.5)


def test_train_and_animate_cli(workspace, tmp_path):
    import shutil
    import subprocess
    import sys

    import imageio.v2 as imageio

    ws = tmp_path / "cli"
    shutil.copytree(workspace / "subject", ws / "subject")
    shutil.copytree(workspace / "training_set", ws / "training_set")
    run = lambda *a: subprocess.run([sys.executable, "-m", "persona_studio", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=900)
    trained = run("train", "-w", str(ws), "--iterations", "2", "--resolution", "64")
    assert trained.returncode == 0, trained.stderr
    assert "masked PSNR" in trained.stdout and (ws / "avatar" / "bundle" / "avatar.safetensors").is_file()
    video = tmp_path / "wave.mp4"
    animated = run("animate", "-w", str(ws), "--motion", "wave", "-o", str(video), "--size", "64", "96",
                   "--fps", "10", "--camera", "orbit")
    assert animated.returncode == 0, animated.stderr
    reader = imageio.get_reader(video)
    frames = [f for f in reader]
    assert frames[0].shape == (96, 64, 3) and len(frames) >= 10
    assert frames[len(frames) // 2].min() < 200  # the avatar is in view
    again = run("animate", "-w", str(ws), "--motion", "wave", "-o", str(video))
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_presets_set_loss_weights_and_refuse_unknown_ones(tmp_path, monkeypatch):
    import json

    from persona_studio.train import settings as settings_module

    assert TrainSettings.from_preset("preview").weights.seam == 1.0  # the photo keeps its weight in seams
    assert TrainSettings.from_preset("quality").weights.seam == 0.1  # the paper's
    (tmp_path / "odd.json").write_text(json.dumps({"iterations": 5, "weights": {"sean": 0.5}}))
    monkeypatch.setattr(settings_module, "PRESETS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"unknown loss weights \['sean'\]"):
        TrainSettings.from_preset("odd")


def test_a_frames_background_never_reaches_the_colours(workspace, open_body_model):
    """Outside a frame's person the right answer is "no avatar here" (the mask loss); the image loss
    there must not paint Gaussians in the random background's colour (saturated blobs, a light rim)."""
    from dataclasses import replace

    trainer = Trainer(workspace, tiny(), model=open_body_model)
    trainer.prepare()
    index = 2
    trainer._step_weights = replace(trainer._weights, mask=0.0, depth=0.0, normal=0.0, parts=0.0, hand_mask=0.0,
                                    laplacian_offsets=0.0, laplacian_scales=0.0, laplacian_colors=0.0,
                                    colour_prior=0.0)
    trainer.frames[index].mask.zero_()  # the whole frame is background
    trainer._colour_weights.clear()
    loss, _ = trainer.losses_for(index, torch.tensor([0.9, 0.9, 0.1]))
    loss.backward()
    grad = trainer.avatar.colors.grad
    assert grad is None or float(grad.abs().max()) == 0.0
    weights = trainer.colour_weights(0)
    photo_mask = trainer.frames[0].mask > 0.5
    assert weights[~photo_mask].max() == 0 and 0 < weights.sum() < photo_mask.sum()  # inside, one pixel in


def test_the_photo_teaches_colours_and_means_but_not_the_gaussians_sizes(workspace, open_body_model):
    """A round Gaussian's size is also its thickness, which the photo cannot see: the photo's losses
    reach colours and means, and only the generated frames (seen from all round) size the Gaussians."""
    from dataclasses import replace

    trainer = Trainer(workspace, tiny(), model=open_body_model)
    trainer.prepare()
    # The data terms alone: the scales' Laplacian would give them a gradient of its own.
    trainer._step_weights = replace(trainer._weights, laplacian_offsets=0.0, laplacian_scales=0.0,
                                    laplacian_colors=0.0, colour_prior=0.0)
    a = trainer.avatar
    for index, sizes_taught in ((0, False), (2, True)):  # the photo, a generated frame
        trainer.optimiser.zero_grad(set_to_none=True)
        loss, _ = trainer.losses_for(index)
        loss.backward()
        assert float(a.offsets.grad.abs().max()) > 0, index
        # (a re-poser frame does not teach colours: test_the_reposers_frames_teach_motion_but_not_appearance)
        assert (float(a.colors.grad.abs().max()) > 0) == (index == 0), index
        scale_grad = 0.0 if a.log_scales.grad is None else float(a.log_scales.grad.abs().max())
        assert (scale_grad > 0) == sizes_taught, (index, scale_grad)


def test_the_photo_moves_the_gaussians_across_its_rays_never_along_them(workspace, open_body_model):
    """A photo cannot tell how far along its ray a point lies: a photo's render passes its means'
    gradients on without their part along each Gaussian's ray from the photo's camera; a generated
    frame's render passes them on whole."""
    trainer = Trainer(workspace, tiny(), model=open_body_model, restart=True)
    trainer.prepare()
    with torch.no_grad():
        means = trainer.avatar.pose(trainer.frame_params(0)).means[0]
    pull = torch.randn_like(means)  # any gradient the losses could send
    for index in (0, 2):  # the photo, a generated frame
        frame = trainer.frames[index]
        points = means.clone().requires_grad_()
        (taught_means(points, frame) * pull).sum().backward()
        if not frame.is_photo:
            assert torch.equal(points.grad, pull)
            continue
        rays = torch.nn.functional.normalize(means - torch.as_tensor(frame.camera.position, dtype=torch.float32), dim=-1)
        along = (points.grad * rays).sum(-1)
        assert float(along.abs().max()) < 1e-5
        across = pull - (pull * rays).sum(-1, keepdim=True) * rays
        torch.testing.assert_close(points.grad, across)


def test_the_photo_colours_only_the_surface_it_sees_squarely(workspace, open_body_model, monkeypatch):
    """Seen edge-on, a photo's pixel spans a strip of the surface and blends the person with the photo's
    background: its colour loss reaches a Gaussian's colour in full where the surface faces the photo
    squarely, not at all where the photo sees it edge-on or from behind (the re-poser infers those)."""
    from dataclasses import replace

    import persona_studio.train.step as step
    from persona_studio.render.body import vertex_normals
    from persona_studio.render.texture import GRAZING_COS, SQUARE_COS

    trainer = Trainer(workspace, tiny(), model=open_body_model, restart=True)
    trainer.prepare()
    trainer._step_weights = replace(trainer._weights, laplacian_offsets=0.0, laplacian_scales=0.0,
                                    laplacian_colors=0.0, colour_prior=0.0)  # the photo's terms alone
    a = trainer.avatar

    def colour_gradient() -> torch.Tensor:
        trainer.optimiser.zero_grad(set_to_none=True)
        trainer.losses_for(0)[0].backward()
        return a.colors.grad.abs().sum(-1)

    shared = colour_gradient()
    monkeypatch.setattr(step, "photo_colour_share", lambda means, normals, position: 1.0)
    whole = colour_gradient()
    with torch.no_grad():
        means = a.pose(trainer.frame_params(0)).means[0]
        to_camera = torch.as_tensor(trainer.frames[0].camera.position, dtype=torch.float32) - means
        facing = (vertex_normals(means, a.faces) * torch.nn.functional.normalize(to_camera, dim=-1)).sum(-1)
    edge_on, square = facing <= GRAZING_COS, facing >= SQUARE_COS
    assert int((whole[edge_on] > 0).sum()) > 100  # without the share the photo reached them
    assert float(shared[edge_on].max()) == 0.0
    assert int((shared[square] > 0).sum()) > 1000
    torch.testing.assert_close(shared[square], whole[square])
    ramp = ~edge_on & ~square & (whole > 0)
    assert bool(((shared[ramp] > 0) & (shared[ramp] < whole[ramp])).all())


def test_the_reposers_frames_teach_motion_but_not_appearance(workspace, open_body_model, tmp_path):
    """The built-in re-poser's frames are renders of the surface the avatar starts from: steps on them
    move the deformation and the sizes but leave the colours (their regularisers off) and the rest
    shape's offsets exactly as they are. The same frames from another generator (here: imported) teach
    those too."""
    import json
    import shutil

    imported = tmp_path / "imported"
    shutil.copytree(workspace, imported, ignore=shutil.ignore_patterns("avatar"))
    manifest = imported / "training_set" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "generator": "import"}))
    for folder, appearance_taught in ((workspace, False), (imported, True)):
        trainer = Trainer(folder, tiny(), model=open_body_model, restart=True)
        trainer.prepare()
        trainer.set_photo_share(0.0)  # generated frames only
        trainer.set_weights(laplacian_colors=0.0, colour_prior=0.0)
        a = trainer.avatar
        start = {name: p.detach().clone() for name, p in a.named_parameters()}
        drawn = [trainer.train_step()["frame"] for _ in range(3)]
        assert not set(drawn) & set(trainer.photo_indices)
        moved = {name for name, p in a.named_parameters() if not torch.equal(p.detach(), start[name])}
        assert {"log_scales", "triplane.planes"} <= moved, (folder, moved)
        assert ({"colors", "offsets"} <= moved) == appearance_taught, (folder, moved)
        assert ({"colors", "offsets"} & moved) == ({"colors", "offsets"} if appearance_taught else set())


@needs_cuda
def test_a_training_step_on_cuda_matches_the_cpu(workspace, open_body_model):
    """The same run on both devices (gsplat on CUDA, the reference on the CPU): the first two steps'
    loss terms agree within 1 % (the second sees the first's Adam update)."""
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(workspace, tiny(checkpoint_every=0), model=open_body_model, restart=True, device=device)
        trainer.prepare()
        runs[device] = [trainer.train_step() for _ in range(2)]
    for cpu, cuda in zip(runs["cpu"], runs["cuda"]):
        assert cpu["frame"] == cuda["frame"]
        for term, value in cpu.items():
            assert cuda[term] == pytest.approx(value, rel=0.01, abs=1e-7), (term, value, cuda[term])


def test_the_gpu_check_runs_on_the_cpu_to_its_last_line(workspace):
    """benchmarks/gpu_check.py is run on a lent GPU machine with minutes to spare, so a break in it must show
    here first: on the CPU it says which parts need CUDA and times the standard preset's steps, and no
    part fails (each part catches its own failure, so the exit status alone would not tell)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    files = {path: path.stat().st_mtime_ns for path in workspace.rglob("*")}
    result = subprocess.run([sys.executable, str(script), "--workspace", str(workspace), "--device", "cpu",
                             "--steps", "2", "--presets", "standard"], capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "FAILED" not in output and "Traceback" not in output, output
    for says in ("device cpu (CPU)", "gsplat parity: skipped (needs CUDA", "training step, CUDA vs CPU: skipped",
                 "MimicMotion fp16: skipped", "standard: level 1, 512 px"):
        assert says in output, (says, output)
    assert "ms/step (median of 2" in output, output
    assert {path: path.stat().st_mtime_ns for path in workspace.rglob("*")} == files  # it trains a copy
