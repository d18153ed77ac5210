"""More than one photo of the person: one shape fitted jointly, another person refused, colours and
volume from every photo, training over every photo, and one-photo workspaces as before.

The photos are views of the multi-view set (a scanned man: the front, view 0, and the back, view 180,
are two shots of one person in the same clothes) and, as another person, a photo from photos/.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from persona_studio.capture.fit import FITTED_POSE_KEYS, FitResult, FitSettings, FitView, fit_smplx_views
from persona_studio.capture.identity import seen_from_behind
from persona_studio.capture.pipeline import SamePersonError, fit_photo
from persona_studio.generate.stage import GenerateOptions, generate_training_set
from persona_studio.train.sampler import BalancedSampler
from persona_studio.train.trainer import Trainer, TrainSettings
from persona_studio.workspace.subject import Subject, is_subject_file, original_photos
from persona_studio.workspace.training_set import SURFACE_FILE, PhotoSurface, TrainingSet

from conftest import shared_path

TINY = GenerateOptions(motions=["wave"], frames=4, size=(72, 128), level=0)


def view(yaw: int):
    return shared_path("multiview", "rp_dennis_posed_004", "images", f"{yaw:04d}.jpg")


@pytest.fixture(scope="module")
def front_and_back(tmp_path_factory, open_body_model):
    ws = tmp_path_factory.mktemp("two_photos")
    subject, _ = fit_photo(view(0), ws, extra_photos=[view(180)], model=open_body_model)
    return ws, subject


def test_a_joint_fit_of_two_views_gives_one_shape_and_each_its_own_pose(front_and_back):
    ws, subject = front_and_back
    assert [v.photo_name for v in subject.views] == ["0000.jpg", "0180.jpg"]
    back = subject.extras[0]
    np.testing.assert_array_equal(back.smplx["betas"], subject.smplx["betas"])
    for v in subject.views:
        assert v.metrics["keypoint_error_pct_height"] < 2.0, v.metrics
        assert v.metrics["silhouette_inside_mask_pct"] > 95, v.metrics
    # The back view's body is turned round: its root rotation differs from the front's by about 180 degrees.
    from scipy.spatial.transform import Rotation

    turn = Rotation.from_rotvec(back.smplx["global_orient"]) * Rotation.from_rotvec(subject.smplx["global_orient"]).inv()
    assert np.degrees(turn.magnitude()) > 150
    assert not seen_from_behind(subject) and seen_from_behind(back)
    loaded = Subject.load(ws)
    assert len(loaded.views) == 2 and loaded.extras[0].photo_name == "0180.jpg"
    np.testing.assert_array_equal(loaded.extras[0].smplx["betas"], loaded.smplx["betas"])
    np.testing.assert_allclose(loaded.extras[0].camera.t, back.camera.t, atol=1e-6)
    files = [p.relative_to(ws / "subject").as_posix() for p in (ws / "subject").rglob("*") if p.is_file()]
    assert "extra/01/original.jpg" in files and all(is_subject_file(f) for f in files), files
    assert [p.name for p in original_photos(ws)] == ["original.jpg", "original.jpg"]


def test_a_back_photo_keeps_the_shape_the_first_photo_gives(front_and_back, open_body_model, tmp_path):
    """The shared shape stays the first photo's own (within 3 mm anywhere on the rest body): the back
    view's detections are the less sure (fitted freely, they moved the body 8 mm on average, 18 at most,
    and the front views lost 0.6 dB)."""
    _, subject = front_and_back
    alone, _ = fit_photo(view(0), tmp_path, model=open_body_model)

    def rest_body(betas: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return open_body_model.forward(betas=torch.as_tensor(betas, dtype=torch.float32)[None]).vertices[0].numpy()

    moved = np.linalg.norm(rest_body(subject.smplx["betas"]) - rest_body(alone.smplx["betas"]), axis=1)
    assert moved.max() < 0.003, (moved.mean(), moved.max())


def test_the_joint_fit_starts_from_each_photos_own_fit(front_and_back, open_body_model):
    """Given each photo's own fit, the joint fit starts from it (pose, expression, camera) and runs only
    its last stage: with none of that stage's steps it gives back the fits it started from. Started
    afresh, it had walked the first photo's pose to another that photo fits as well (its right arm 0.3
    rad away), and the avatar with it."""
    _, subject = front_and_back
    views = [FitView((v.image.shape[1], v.image.shape[0]), v.keypoints["body"], v.keypoints["left_hand"],
                     v.keypoints["right_hand"], v.keypoints["face"], v.mask, float(np.ptp(np.nonzero(v.mask.any(1))[0])),
                     v.keypoints["body_depth"], v.camera.fx) for v in subject.views]
    own = [FitResult(params=v.smplx, camera=v.camera, metrics={}) for v in subject.views]
    results = fit_smplx_views(views, open_body_model, FitSettings(iterations=(40, 120, 0)),
                              shape_anchor=subject.smplx["betas"], start=own)
    for result, v in zip(results, subject.views):
        for key in FITTED_POSE_KEYS:
            np.testing.assert_allclose(result.params[key], v.smplx[key], atol=1e-6, err_msg=key)
        np.testing.assert_allclose(result.camera.t, v.camera.t, atol=1e-5)


def test_an_extra_photo_is_matched_to_the_first_photos_colours(front_and_back, open_body_model):
    """The set's back view is lit warmer than its front; its garments, balanced by the fit's colour
    gain, come closer to the front's."""
    from persona_studio.capture.identity import garment_differences, part_colours
    from persona_studio.render.body import BodyRenderer

    ws, subject = front_and_back
    back = subject.extras[0]
    gain = np.array(back.colour_gain)
    assert gain[2] > gain[0] * 1.1, gain  # warmer: blue raised against red
    assert Subject.load(ws).extras[0].colour_gain == back.colour_gain
    renderer = BodyRenderer(open_body_model, 1)
    front = part_colours(renderer, subject.image, subject.mask, subject.camera, subject.smplx)
    raw = part_colours(renderer, back.image, back.mask, back.camera, back.smplx)
    balanced = part_colours(renderer, back.balanced_image, back.mask, back.camera, back.smplx)
    before, after = garment_differences(front, raw), garment_differences(front, balanced)
    assert max(after.values()) < max(before.values()) and sum(after.values()) < 0.8 * sum(before.values()), (before, after)
    assert subject.balanced_image is subject.image  # the first photo is the reference


def test_front_and_back_photos_with_their_known_camera_are_one_person(open_body_model, tmp_path):
    """The set's own near-orthographic camera (f = 5000 px on 512) makes the back view's fitted shoulders
    2.9 points of the height wider than the front's (a detector trained on people facing it): shoulders are
    not compared between a front and a back view, and the photos are taken as one person."""
    fov = math.degrees(2 * math.atan(256 / 5000))
    subject, _ = fit_photo(view(0), tmp_path, extra_photos=[view(180)], model=open_body_model, fov=fov)
    assert len(subject.views) == 2 and subject.extras[0].camera.fx == pytest.approx(5000, rel=1e-6)


def test_a_photo_of_another_person_is_refused_and_the_subject_kept(front_and_back, open_body_model):
    ws, subject = front_and_back
    before = (ws / "subject" / "smplx.json").read_bytes()
    with pytest.raises(SamePersonError, match=r"pifu_ryota\.png: the sleeves differ in colour from those in 0000\.jpg"):
        fit_photo(view(0), ws, extra_photos=[shared_path("photos", "pifu_ryota.png")], model=open_body_model)
    # The command line: exit 1 and the reason on one line.
    result = subprocess.run([sys.executable, "-m", "persona_studio", "fit", str(view(0)), "-w", str(ws), "--extra",
                             str(shared_path("photos", "sith_002.png"))], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "sith_002.png" in line]
    assert len(lines) == 1 and "the body's leg length is" in lines[0] and "another person" in lines[0], result.stderr
    assert (ws / "subject" / "smplx.json").read_bytes() == before
    assert len(Subject.load(ws).views) == 2


def test_the_reposer_colours_the_back_from_the_back_photo_and_training_draws_both(front_and_back, open_body_model,
                                                                                 tmp_path):
    from persona_studio.render.body import BodyRenderer
    from persona_studio.render.texture import photo_visibility

    ws, subject = front_and_back
    generate_training_set(ws, TINY, model=open_body_model)
    ts = TrainingSet(ws)
    assert ts.manifest["photos"] == 2 and ts.num_photos == 2
    assert ts.photo_indices == [0, len(ts) - 1] and ts.generated_indices == list(range(1, len(ts) - 1))
    back = ts.load(len(ts) - 1)
    assert back.is_photo and np.allclose(back.camera.t, subject.extras[0].camera.t)
    assert back.rgb.shape[:2] == subject.extras[0].image.shape[:2]

    # Where the back photo alone sees the body squarely, the surface reproduces the back photo's colours
    # as closely as it reproduces the front photo's where only the front sees it (the front photo alone
    # would have to infer them).
    from persona_studio.render.texture import bilinear

    surface = PhotoSurface.load(ws / "training_set" / SURFACE_FILE)
    renderer = BodyRenderer(open_body_model, TINY.level)
    errors = {}
    views = {"front": subject, "back": subject.extras[0]}
    poses = {"front": ts.load(0).smplx, "back": back.smplx}  # the back photo's as the re-poser refined it
    for key, value in subject.smplx.items():
        np.testing.assert_allclose(poses["front"][key], value, atol=1e-6)
    seen = {name: photo_visibility(renderer, v.mask, v.camera, poses[name]) for name, v in views.items()}
    for name, other in (("front", "back"), ("back", "front")):
        only = seen[name].reliable & ~seen[other].seen
        assert only.sum() > 0.05 * len(only), name  # about a tenth of the vertices at level 0
        uvz = seen[name].uvz
        photo = bilinear(views[name].balanced_image / 255.0, uvz[:, 0] - 0.5, uvz[:, 1] - 0.5)
        errors[name] = np.abs(surface.colors[only] - photo[only]).mean()
    assert errors["back"] < 1.3 * errors["front"], errors

    settings = TrainSettings.from_preset("preview", iterations=4, resolution=64, template_level=0, mlp_width=32,
                                         triplane_resolution=16, checkpoint_every=0, preview_every=0)
    trainer = Trainer(ws, settings, model=open_body_model, restart=True)
    trainer.prepare()
    assert trainer.frames[-1].is_photo and trainer.sampler.photos == ts.photo_indices
    drawn = [trainer.sampler.next() for _ in range(400)]
    counts = {i: drawn.count(i) for i in ts.photo_indices}
    assert sum(counts.values()) == pytest.approx(200, abs=40) and abs(counts[0] - counts[len(ts) - 1]) <= 2, counts
    # One step on the back photo: its photo losses (image, seam) are there and finite.
    terms = trainer.losses_for(len(ts) - 1)[1]
    assert all(np.isfinite(v) for v in terms.values()) and terms["image"] > 0
    figures = trainer.run()
    assert figures["step"] == 4 and np.isfinite(figures["photo_psnr"])


def test_the_reposer_refines_an_extra_photos_pose_against_its_silhouette(front_and_back, open_body_model):
    """The back photo's fitted pose is the less sure; the surface fit corrects it (a little, held by a
    prior) so that the one clothed surface in that pose covers the back photo's person better, instead of
    carving the surface to the pose's errors (here IoU 0.944 -> 0.968, joints turned 0.06 rad at most).
    The first photo's pose is the avatar's and stays."""
    from persona_studio.generate.reposer import FIT_SIZE, fit_surface_to_photo, photo_targets, refined_pose
    from persona_studio.render.body import BodyRenderer

    _, subject = front_and_back
    renderer = BodyRenderer(open_body_model, 0)
    surface, poses = fit_surface_to_photo(renderer, subject)
    assert poses[0] is subject.smplx
    back = subject.extras[0]
    turned = {k: float(np.abs(poses[1][k] - back.smplx[k]).max()) for k in ("global_orient", "body_pose")}
    assert 0.005 < max(turned.values()) < 0.3, turned  # radians
    for key in ("betas", "left_hand_pose", "right_hand_pose", "expression"):
        np.testing.assert_array_equal(poses[1][key], back.smplx[key])

    camera, _, mask = photo_targets(back, FIT_SIZE)
    person = mask.numpy() > 0.5

    def coverage(pose: dict) -> float:
        """IoU of the clothed surface in ``pose`` with the back photo's person"""
        with torch.no_grad():
            posed = open_body_model.forward(**refined_pose(pose, torch.zeros(66))).vertices[0]
            alpha = renderer.render(posed, torch.as_tensor(surface.colors), camera,
                                    displacement=torch.as_tensor(surface.displacement)).mask > 0.5
        return float((alpha & person).sum() / (alpha | person).sum())

    assert coverage(poses[1]) > coverage(back.smplx) + 0.005, (coverage(poses[1]), coverage(back.smplx))


def test_a_back_photos_outline_leaves_the_volume_to_the_first_photo_a_side_photos_shapes_it(front_and_back):
    """A back photo's outline is the front photo's contour seen from behind: fitted to both, the one
    displacement only takes up the two fits' pose differences. An extra photo moves the surface as far as
    its outline is its own: the set's back view (fitted some 30 degrees off straight behind) and a second
    front photo not at all, a photo from the side fully, one from 45 or 60 degrees in part."""
    from persona_studio.generate.reposer import outline_share

    _, subject = front_and_back
    front, back = subject.views

    def turned(degrees: float):
        """The front photo's fit with its body turned about the vertical by ``degrees``."""
        rotation = Rotation.from_euler("y", degrees, degrees=True) * Rotation.from_rotvec(front.smplx["global_orient"])
        return replace(front, smplx={**front.smplx, "global_orient": rotation.as_rotvec()})

    assert outline_share(front, back) == 0.0
    assert outline_share(front, front) == 0.0
    assert outline_share(front, turned(90)) == pytest.approx(1.0)
    assert outline_share(front, turned(-90)) == pytest.approx(1.0)
    assert outline_share(front, turned(20)) == outline_share(front, turned(160)) == 0.0
    assert 0.0 < outline_share(front, turned(45)) < outline_share(front, turned(-60)) < 1.0


def test_a_workspace_bundle_carries_the_extra_photos(front_and_back, tmp_path):
    from persona_studio.export.workspace_bundle import export_workspace_bundle, import_workspace_bundle

    ws, subject = front_and_back
    if not (ws / "avatar" / "bundle" / "avatar.json").is_file():
        pytest.skip("needs the avatar trained by the test before")
    bundle = export_workspace_bundle(ws, tmp_path / "two.zip")
    opened = import_workspace_bundle(bundle, tmp_path / "opened")
    loaded = Subject.load(opened)
    assert [v.photo_name for v in loaded.views] == ["0000.jpg", "0180.jpg"]
    np.testing.assert_array_equal(loaded.extras[0].image, subject.extras[0].image)


def test_removing_a_photo_keeps_the_subject_whole(front_and_back, tmp_path):
    import shutil

    ws, _ = front_and_back
    copy = tmp_path / "copy"
    shutil.copytree(ws / "subject", copy / "subject")
    subject = Subject.load(copy).without_extra(copy, 1)
    assert subject.extras == [] and not (copy / "subject" / "extra").exists()
    reloaded = Subject.load(copy)
    assert reloaded.photo_name == "0000.jpg" and reloaded.views == [reloaded]
    assert (copy / "subject" / "original.jpg").is_file() and (copy / "subject" / "overlay.png").is_file()
    with pytest.raises(ValueError, match="no extra photo 1"):
        reloaded.without_extra(copy, 1)


def test_balanced_sampling_shares_the_photo_draws_between_the_photos_and_resumes():
    sampler = BalancedSampler(list(range(1, 41)), photo_share=0.5, seed=3, photos=[0, 41, 42])
    first = [sampler.next() for _ in range(30)]
    state = json.loads(json.dumps(sampler.state()))
    rest = [sampler.next() for _ in range(60)]
    resumed = BalancedSampler(list(range(1, 41)), photo_share=0.5, seed=99, photos=[0, 41, 42])
    resumed.restore(state)
    assert [resumed.next() for _ in range(60)] == rest
    drawn = first + rest
    photo_draws = [i for i in drawn if i in (0, 41, 42)]
    assert 30 <= len(photo_draws) <= 60
    counts = [photo_draws.count(i) for i in (0, 41, 42)]
    assert max(counts) - min(counts) <= 1, counts  # an epoch of the photos: each once before any twice


def test_a_training_set_of_the_previous_release_opens_as_one_photo(front_and_back, open_body_model, tmp_path):
    """A one-photo set written before extra photos existed has no "photos" in its manifest."""
    ws = tmp_path / "one"
    fit_photo(view(0), ws, model=open_body_model)
    generate_training_set(ws, TINY, model=open_body_model)
    manifest_path = ws / "training_set" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["photos"] == 1
    del manifest["photos"]
    manifest_path.write_text(json.dumps(manifest))
    ts = TrainingSet(ws)
    assert ts.num_photos == 1 and ts.photo_indices == [0] and len(ts) == 1 + ts.num_generated
    assert not (ws / "subject" / "extra").exists() and Subject.load(ws).extras == []
    settings = TrainSettings.from_preset("preview", iterations=2, resolution=64, template_level=0, mlp_width=32,
                                         triplane_resolution=16, checkpoint_every=0, preview_every=0)
    trainer = Trainer(ws, settings, model=open_body_model)
    assert trainer.run()["step"] == 2
    assert torch.isfinite(trainer.avatar.colors).all()
