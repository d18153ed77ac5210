"""photo -> Subject on the real photos: the fit's figures, the workspace round trip, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from persona_studio.capture.detect import MediaPipeDetector
from persona_studio.capture.fit import CAMERA_R, joint_limit_penalty, project
from persona_studio.capture.pipeline import fit_photo
from persona_studio.workspace.subject import Subject, WorkspaceError

from conftest import shared_path

PHOTOS = ["lhm_000057.png", "lhm_video_image_326594731337_0.png", "mimicmotion_demo1.jpg",
          "moore_anyone-3.png", "pifu_ryota.png", "sith_002.png"]
CLOSE_FITTING = {"lhm_video_image_326594731337_0.png", "moore_anyone-3.png"}  # fitted sweater/trousers; shorts


@pytest.fixture(scope="module")
def detector():
    return MediaPipeDetector()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, open_body_model, detector):
    """Each real photo fitted once into its own workspace (shared by the tests below)."""
    cache = {}

    def get(name):
        if name not in cache:
            photo = shared_path("photos", name)
            workspace = tmp_path_factory.mktemp(name.split(".")[0])
            cache[name] = (*fit_photo(photo, workspace, model=open_body_model, detector=detector), workspace)
        return cache[name]
    return get


@pytest.mark.parametrize("name", PHOTOS)
def test_fit_figures_on_real_photo(fitted, name):
    subject, folder, _ = fitted(name)
    m = subject.metrics
    assert m["keypoints_scored"] >= 10
    assert m["keypoint_error_pct_height"] <= 3.0, m
    assert m["silhouette_inside_mask_pct"] >= 95.0, m
    if name in CLOSE_FITTING:
        assert m["mask_covered_pct"] >= 70.0, m
    for file in ("image.png", "mask.png", "keypoints.json", "smplx.json", "camera.json", "overlay.png"):
        assert (folder / file).is_file()


def test_workspace_gives_the_same_subject_back(fitted, open_body_model):
    subject, _, workspace = fitted("moore_anyone-3.png")
    loaded = Subject.load(workspace)
    for key, value in subject.smplx.items():
        np.testing.assert_array_equal(loaded.smplx[key], value.astype(np.float32), err_msg=key)
    np.testing.assert_array_equal(loaded.image, subject.image)
    np.testing.assert_array_equal(loaded.mask, subject.mask)
    for key, value in subject.keypoints.items():
        np.testing.assert_array_equal(loaded.keypoints[key], value.astype(np.float32))
    np.testing.assert_allclose(loaded.camera.viewmat, subject.camera.viewmat)
    assert loaded.camera.K.tolist() == subject.camera.K.tolist()
    assert loaded.metrics == subject.metrics and loaded.notes == subject.notes
    # The saved parameters reproduce the fit: the nose projects onto the detected nose.
    with torch.no_grad():
        out = open_body_model.forward(**{k: torch.as_tensor(v)[None] for k, v in loaded.smplx.items()})
    nose = loaded.camera.project(out.joints[0, 55].numpy())[:2]
    assert np.linalg.norm(nose - loaded.keypoints["body"][0, :2]) < 0.03 * subject.metrics["person_height_px"]


def test_loading_a_workspace_without_subject_says_what_to_do(tmp_path):
    with pytest.raises(WorkspaceError, match="persona-studio fit"):
        Subject.load(tmp_path)


def test_projection_matches_camera(fitted):
    subject, _, _ = fitted("sith_002.png")
    points = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    cam = subject.camera
    ours = project(torch.as_tensor(points), torch.as_tensor(cam.t, dtype=torch.float32), cam.fx,
                   torch.tensor([cam.cx, cam.cy]))
    np.testing.assert_allclose(ours.numpy(), cam.project(points)[:, :2], rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(cam.R, CAMERA_R)


def test_joint_limits_penalise_only_impossible_bends():
    body = torch.zeros(21, 3)
    hands = torch.zeros(15, 3)
    assert joint_limit_penalty(body, hands, hands) == 0
    body[3, 0] = 1.0  # left knee flexes forward-normal
    assert joint_limit_penalty(body, hands, hands) == 0
    body[3, 0] = -0.5  # hyper-extended knee
    assert joint_limit_penalty(body, hands, hands) > 0


def test_fit_cli(tmp_path):
    photo = shared_path("photos", "sith_002.png")
    result = subprocess.run([sys.executable, "-m", "persona_studio", "fit", str(photo), "-w", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "% of person height" in result.stdout and "inside the person mask" in result.stdout
    assert (tmp_path / "subject" / "smplx.json").is_file()


def test_fit_cli_refuses_a_bad_photo(tmp_path):
    bad = tmp_path / "not_a_photo.png"
    bad.write_text("hello")
    result = subprocess.run([sys.executable, "-m", "persona_studio", "fit", str(bad), "-w", str(tmp_path / "ws")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "ws" / "subject").exists()
