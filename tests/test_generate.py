"""The generate stage on a real photo: kit, skeleton frames on the projected joints, the re-poser's
surface fitted to the photo, re-poser frames whose masks and part maps agree with that posed surface,
imported frames checked against the kit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from persona_studio.body.parts import PART_NAMES
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.capture.detect import segment_person
from persona_studio.capture.pipeline import fit_photo
from persona_studio.render.body import BodyRenderer
from persona_studio.render.texture import color_from_photo, photo_visibility, seen_colors
from persona_studio.generate.skeleton_video import openpose_points
from persona_studio.workspace.subject import Subject
from persona_studio.generate.reposer import FIT_SIZE, photo_targets
from persona_studio.generate.stage import GenerateError, GenerateOptions, generate_training_set
from persona_studio.workspace.training_set import SURFACE_FILE, PhotoSurface, TrainingSet

from conftest import shared_path

SIZE = (144, 256)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, open_body_model):
    ws = tmp_path_factory.mktemp("generate")
    fit_photo(shared_path("photos", "moore_anyone-3.png"), ws, model=open_body_model)
    generate_training_set(ws, GenerateOptions(motions=["wave", "kicks"], frames=8, size=SIZE), model=open_body_model)
    return ws


def test_training_set_layout(workspace):
    ts = TrainingSet(workspace)
    manifest = ts.manifest
    assert manifest["generator"] == "reposer" and manifest["generated_frames"] == len(ts) - 1 >= 6
    assert set(manifest["motions"]) == {"wave", "kicks"}
    photo = ts.load(0)
    assert photo.is_photo and photo.rgb.shape[:2] == photo.mask.shape
    frame = ts.load(len(ts) - 1)
    assert frame.rgb.shape == (SIZE[1], SIZE[0], 3) and not frame.is_photo
    assert (frame.camera.width, frame.camera.height) == SIZE
    kit = workspace / "training_set" / "kit"
    for name in ("skeleton.mp4", "reference.png", "camera.json", "README.md"):
        assert (kit / name).is_file()
    assert len(list((kit / "smplx").glob("*.json"))) == len(list((kit / "skeleton").glob("*.png"))) == len(ts) - 1


def test_skeleton_frames_land_on_projected_joints(workspace, open_body_model):
    """Each drawn keypoint sits on its projected joint: the pixel there carries the drawing (0 px by
    construction; the check allows the 1-px rounding of the drawing's integer centres)."""
    ts = TrainingSet(workspace)
    kit = workspace / "training_set" / "kit"
    for index in (1, len(ts) - 1):
        frame = ts.load(index)
        with torch.no_grad():
            out = open_body_model.forward(**{k: torch.as_tensor(v)[None] for k, v in frame.smplx.items()})
        points = openpose_points(ts.camera.project(out.joints[0].numpy())[:, :2])
        skeleton = np.asarray(Image.open(kit / "skeleton" / f"{index:06d}.png"))
        for x, y in points["body"]:
            patch = skeleton[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2]
            assert patch.max() > 100, f"no drawing at the projected joint ({x:.0f}, {y:.0f}) of frame {index}"
        drawn = skeleton.max(-1) > 0
        box = points["body"]
        assert drawn[int(box[:, 1].min()):int(box[:, 1].max()) + 1, int(box[:, 0].min()):int(box[:, 0].max()) + 1].mean() > 0.02


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_reposer_surface_is_fitted_to_the_photo(workspace, open_body_model):
    # Rendered at the fit's size, the surface pushed along its normals covers the photo's person (hair,
    # clothes) better than the bare fitted body, and stays a shell (no vertex flies off).
    subject = Subject.load(workspace)
    surface = PhotoSurface.load(workspace / "training_set" / SURFACE_FILE)
    renderer = BodyRenderer(open_body_model, TrainingSet(workspace).manifest["template_level"])
    assert surface.displacement.shape == (renderer.interp.shape[0],) and surface.colors.shape == (renderer.interp.shape[0], 3)
    assert np.abs(surface.displacement).max() < 0.15
    camera, _, mask = photo_targets(subject, FIT_SIZE)
    with torch.no_grad():
        posed = open_body_model.forward(**{k: torch.as_tensor(v)[None] for k, v in subject.smplx.items()}).vertices[0]
    colors = torch.as_tensor(surface.colors)
    bare = renderer.render(posed, colors, camera).mask > 0.5
    dressed = renderer.render(posed, colors, camera, displacement=torch.as_tensor(surface.displacement)).mask > 0.5
    photo = mask.numpy() > 0.5
    assert _iou(dressed, photo) > max(_iou(bare, photo) + 0.02, 0.85), (_iou(dressed, photo), _iou(bare, photo))


def test_reposer_colours_are_the_photos_own_samples_where_it_sees_squarely(workspace, open_body_model):
    # The colours the surface fit adjusts while it fits the outline are not kept: where the photo sees the
    # body squarely the surface carries the photo's pixel at each vertex, not colours overshooting so that
    # their blend matches the photo from its one viewpoint (which every other view shows as noise).
    subject = Subject.load(workspace)
    surface = PhotoSurface.load(workspace / "training_set" / SURFACE_FILE)
    renderer = BodyRenderer(open_body_model, TrainingSet(workspace).manifest["template_level"])
    visibility = photo_visibility(renderer, subject.mask, subject.camera, subject.smplx)
    square = visibility.reliable
    samples = seen_colors([subject.balanced_image], visibility, np.zeros(len(square), np.int64))
    assert square.sum() > 1000
    np.testing.assert_allclose(surface.colors[square], samples[square], atol=1e-5)


def test_the_back_of_the_head_is_not_a_mirrored_face(workspace, open_body_model):
    # A photo of the fitted body whose face (the front of the head, below the hairline) is red and all
    # else green: the unseen back of the head takes the hair's colour (green), not the mirrored face.
    subject = Subject.load(workspace)
    renderer = BodyRenderer(open_body_model, 1)
    with torch.no_grad():
        rest = renderer.dense_vertices(open_body_model.forward(betas=torch.as_tensor(subject.smplx["betas"])[None]).vertices[0]).numpy()
        posed = open_body_model.forward(**{k: torch.as_tensor(v)[None] for k, v in subject.smplx.items()}).vertices[0]
    head = (renderer.parts == PART_NAMES.index("face_neck")) & (rest[:, 1] > rest[:, 1].max() - 0.2)
    centre_z = rest[head, 2].mean()
    eyes_y = open_body_model.forward(betas=torch.as_tensor(subject.smplx["betas"])[None]).joints[0, 23, 1].item()
    face = head & (rest[:, 2] > centre_z + 0.02) & (rest[:, 1] < eyes_y + 0.05)
    paint = torch.tensor([0.0, 0.8, 0.0]).repeat(len(rest), 1)
    paint[torch.as_tensor(face)] = torch.tensor([0.9, 0.0, 0.0])
    photo = renderer.render(posed, paint, subject.camera)
    colors = color_from_photo(renderer, (photo.rgb * 255).astype(np.uint8), photo.mask, subject.camera, subject.smplx)
    back = head & (rest[:, 2] < centre_z - 0.04)
    assert colors[face, 0].mean() > 0.5  # most of the face is seen squarely, and red (its rim is inferred)
    assert colors[back, 0].mean() < 0.2, colors[back].mean(0)  # the back of the head is not


def test_reposer_masks_and_parts_agree_with_the_posed_surface(workspace, open_body_model):
    ts = TrainingSet(workspace)
    renderer = BodyRenderer(open_body_model, TrainingSet(workspace).manifest["template_level"])
    displacement = torch.as_tensor(PhotoSurface.load(workspace / "training_set" / SURFACE_FILE).displacement)
    for index in range(1, len(ts), 3):
        frame = ts.load(index)
        with torch.no_grad():
            v = open_body_model.forward(**{k: torch.as_tensor(val)[None] for k, val in frame.smplx.items()}).vertices[0]
            dense = renderer.surface(v, displacement)
            spread = renderer.scales(dense).numpy()  # [V] each splat's std, metres
        dense = dense.numpy()
        exact = mesh_silhouette(dense, renderer.faces.numpy(), ts.camera)
        rendered = frame.mask > 0.5
        # The mask is the splats' coverage: all of the silhouette plus a rim of about two splat stds (in
        # pixels; a level's splats are twice the next level's) and a pixel of rasterisation.
        spread_px = np.percentile(spread * ts.camera.fx / ts.camera.project(dense)[:, 2], 90)
        grown = binary_dilation(exact, iterations=1 + int(np.ceil(2 * spread_px)))
        assert (exact & rendered).sum() / exact.sum() > 0.97, f"frame {index}: silhouette not covered"
        assert (rendered & ~grown).sum() / rendered.sum() < 0.03, f"frame {index}: mask spills past the surface"
        uv = ts.camera.project(dense)[:, :2]
        for part in ("left_hand", "right_foot", "face_neck", "torso"):
            label = PART_NAMES.index(part)
            pixels = np.argwhere(frame.parts == label)[:, ::-1] + 0.5
            if len(pixels) < 5:
                continue
            expected = uv[renderer.parts == label].mean(0)
            assert np.linalg.norm(pixels.mean(0) - expected) < 0.05 * SIZE[1], f"{part} misplaced in frame {index}"
        assert frame.depth[rendered].min() > 0 and (frame.depth[~rendered] == 0).mean() > 0.95
        normals = frame.normal[frame.mask > 0.9]
        assert np.abs(np.linalg.norm(normals, axis=1) - 1).max() < 0.05
        assert np.median(normals[:, 2]) < 0  # surfaces face the camera


def test_import_rejects_a_mismatched_frame_count(workspace, tmp_path):
    frames = tmp_path / "made_elsewhere"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", SIZE).save(frames / f"{i:04d}.png")
    before = json.loads((workspace / "training_set" / "manifest.json").read_text())
    with pytest.raises(GenerateError, match="has 3 frames but the kit has"):
        generate_training_set(workspace, GenerateOptions(generator="import", frames_from=frames,
                                                         motions=["wave", "kicks"], frames=8, size=SIZE),
                              segment=segment_person)
    after = json.loads((workspace / "training_set" / "manifest.json").read_text())
    assert before == after  # the failed import left the training set as it was


def test_import_reads_frames_made_from_the_kit(workspace, tmp_path):
    ts = TrainingSet(workspace)
    made = tmp_path / "made"
    made.mkdir()
    for i in range(1, len(ts)):  # stand-in for a generator's output: the re-poser frames, re-encoded
        Image.fromarray((ts.load(i).rgb * 255).astype(np.uint8)).save(made / f"{i:04d}.jpg")
    other = tmp_path / "other_ws"
    import shutil

    shutil.copytree(workspace / "subject", other / "subject")
    generate_training_set(other, GenerateOptions(generator="import", frames_from=made, motions=["wave", "kicks"],
                                                 frames=8, size=SIZE), segment=segment_person)
    imported = TrainingSet(other)
    assert imported.manifest["generator"] == "import" and len(imported) == len(ts)
    assert imported.load(2).mask.max() > 0.5  # segmented from the imported frame


def test_generate_cli_kit_only(workspace, tmp_path):
    import shutil

    ws = tmp_path / "kit_ws"
    shutil.copytree(workspace / "subject", ws / "subject")
    result = subprocess.run([sys.executable, "-m", "persona_studio", "generate", "-w", str(ws), "--kit-only",
                             "--motions", "wave", "--frames", "4", "--size", "144", "256"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (ws / "training_set" / "kit" / "skeleton.mp4").is_file()
    bad = subprocess.run([sys.executable, "-m", "persona_studio", "generate", "-w", str(ws), "--motions", "nope"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "neither a preset" in bad.stderr
