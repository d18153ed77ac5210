"""photo -> Subject on the real photos: the fit's figures, the workspace round trip, the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from persona_studio.capture.detect import MediaPipeDetector
from persona_studio.body import landmarks
from persona_studio.body.skeleton import JOINT_INDEX as J
from persona_studio.body.model import smplx_tensors
from persona_studio.capture.fit import (CAMERA_R, FOV_PRIOR_DEG, FitSettings, balance_term, depth_slopes, fit_smplx,
                                        joint_limit_penalty, project, standing_on_both_feet)
from persona_studio.capture.intake import focal_from_fov
from persona_studio.capture.pipeline import fit_photo
from persona_studio.render.camera import Camera
from persona_studio.render.mesh import mesh_silhouette
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


def test_depth_slopes_measure_tilt_towards_the_camera():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    start = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    end = torch.tensor([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(depth_slopes(points, start, end).numpy(), [1.0, 0.0, -math.sqrt(0.5)], atol=1e-6)


def test_detector_depth_settles_a_stride_one_view_leaves_open(open_body_model):
    """A striding body seen from afar (no perspective): its 2D keypoints cannot tell which leg is
    forward; the detector's depth estimate of the same landmarks can, and the fit follows it."""
    model = open_body_model
    pose = torch.zeros(1, 63)
    pose.view(21, 3)[J["left_hip"] - 1, 0] = -0.5  # left thigh forward, towards the camera
    pose.view(21, 3)[J["right_hip"] - 1, 0] = 0.3  # right thigh back
    pose.view(21, 3)[J["left_shoulder"] - 1, 2] = -1.2
    pose.view(21, 3)[J["right_shoulder"] - 1, 2] = 1.2
    with torch.no_grad():
        out = model.forward(body_pose=pose)
    joints, vertices = out.joints[0].numpy(), out.vertices[0].numpy()
    width = height = 384
    focal = focal_from_fov(width, height, FOV_PRIOR_DEG) * 10
    camera = Camera(CAMERA_R, np.array([0.0, 0.3, 32.0]), focal, focal, width / 2, height / 2, width, height)
    body = np.zeros((33, 3), np.float32)
    depth = np.zeros((33, 3), np.float32)
    for landmark, (joint, _) in landmarks.POSE_TO_JOINT.items():
        body[landmark] = (*camera.project(joints[joint])[:2], 1.0)
        depth[landmark] = joints[joint] * CAMERA_R.diagonal()  # metres, camera axes
    mask = mesh_silhouette(vertices, model.faces, camera).astype(np.float32)
    ys = np.nonzero(mask.any(1))[0]
    hands, face = np.zeros((21, 3), np.float32), np.zeros((478, 3), np.float32)
    settings = FitSettings()

    def leg_slopes(body_depth):
        result = fit_smplx((width, height), body, hands, hands, face, mask, float(ys[-1] - ys[0]), model,
                           settings, body_depth=body_depth)
        fitted = model.forward(**{k: torch.as_tensor(v)[None] for k, v in result.params.items()}).joints[0]
        points = fitted[torch.as_tensor(landmarks.pose_landmark_joints()).clamp_min(0)] * torch.tensor([1.0, -1.0, -1.0])
        start, end, _ = (torch.as_tensor(a) for a in landmarks.depth_segments(body))
        legs = [5, 7]  # left hip -> knee, right hip -> knee
        return depth_slopes(points.detach(), start, end)[legs]

    truth = depth_slopes(torch.as_tensor(depth), *(torch.as_tensor(a) for a in landmarks.depth_segments(body)[:2]))[[5, 7]]
    assert truth[0] < -0.4 and truth[1] > 0.25  # the scene really strides
    with_depth = leg_slopes(depth)
    without = leg_slopes(None)
    assert (with_depth - truth).abs().max() < 0.15, (with_depth, truth)
    assert (without - truth).abs().max() > 0.25, (without, truth)


def test_the_fitted_head_is_carried_as_far_forward_as_the_detector_sees_it(open_body_model, detector, tmp_path):
    """The scanned man of the multi-view set carries his head forward (his side views show it): the
    detector puts his ears 7.5 cm ahead of his shoulders. The fitted ears follow within 2 cm (without
    the shoulders -> ears depth segment they stopped 3.7 cm short, at 3.8 cm)."""
    photo = shared_path("multiview", "rp_dennis_posed_004", "images", "0000.jpg")
    subject, _ = fit_photo(photo, tmp_path, model=open_body_model, detector=detector)
    with torch.no_grad():
        joints = open_body_model.forward(**smplx_tensors(subject.smplx)).joints[0].numpy()
    in_camera = joints[landmarks.pose_landmark_joints().clip(0)] @ subject.camera.R.T  # [33, 3]
    detected = np.asarray(subject.keypoints["body_depth"])

    def ears_ahead(points: np.ndarray) -> float:
        """metres the ears lie nearer the camera than the shoulders"""
        return float(points[[11, 12], 2].mean() - points[[7, 8], 2].mean())

    assert ears_ahead(detected) > 0.05
    assert abs(ears_ahead(in_camera) - ears_ahead(detected)) < 0.02, (ears_ahead(in_camera), ears_ahead(detected))


def test_the_fit_takes_the_field_of_view_it_is_given(open_body_model, detector, tmp_path):
    """The multi-view set's renders carry no EXIF; their camera is known (f = 5000 px on 512: 5.86 deg).
    Given it, the fit's camera has that focal length and the subject says where it came from; without
    it, the prior's, and the subject says that instead. An angle no camera has is refused before
    anything is written."""
    photo = shared_path("multiview", "rp_dennis_posed_004", "images", "0000.jpg")
    fov = math.degrees(2 * math.atan(256 / 5000))
    subject, _ = fit_photo(photo, tmp_path / "known", model=open_body_model, detector=detector, fov=fov,
                           settings=FitSettings(iterations=(10, 10, 5)))
    assert subject.camera.fx == pytest.approx(5000, rel=1e-6) and subject.camera.fy == subject.camera.fx
    assert Subject.load(tmp_path / "known").camera.fx == pytest.approx(5000, rel=1e-6)
    assert any("5.86" in note and "as given" in note for note in subject.notes), subject.notes
    prior, _ = fit_photo(photo, tmp_path / "prior", model=open_body_model, detector=detector,
                         settings=FitSettings(iterations=(10, 10, 5)))
    assert prior.camera.fx == pytest.approx(focal_from_fov(512, 512, FOV_PRIOR_DEG))
    assert any("no focal length in the photo's EXIF" in note for note in prior.notes), prior.notes
    with pytest.raises(ValueError, match="not a camera's"):
        fit_photo(photo, tmp_path / "absurd", model=open_body_model, detector=detector, fov=0.2)
    assert not (tmp_path / "absurd").exists()


def test_standing_is_told_from_the_legs():
    body = np.zeros((33, 3), np.float32)
    body[:, 2] = 1.0
    for hip, knee, ankle, x in ((23, 25, 27, 110.0), (24, 26, 28, 90.0)):
        body[hip, :2], body[knee, :2], body[ankle, :2] = (x, 200), (x, 300), (x, 400)
    assert standing_on_both_feet(body, person_px=400)
    sitting = body.copy()
    sitting[[25, 26], 1] = 205  # knees at the hips' height: thighs towards the camera
    assert not standing_on_both_feet(sitting, person_px=400)
    hidden = body.copy()
    hidden[27, 2] = 0.2  # one ankle not seen: no claim about the feet
    assert not standing_on_both_feet(hidden, person_px=400)


def test_a_standing_fit_keeps_its_centre_of_mass_over_its_feet(open_body_model, detector, tmp_path):
    """The scanned person of the multi-view set (view 0 as the photo): the detector's depth estimate
    alone leaves the fitted body tipping forward off its feet; the balance term stands it over them."""
    photo = shared_path("multiview", "rp_dennis_posed_004", "images", "0000.jpg")

    def off_balance(settings):
        subject, _ = fit_photo(photo, tmp_path / str(settings.balance_weight), model=open_body_model,
                               detector=detector, settings=settings)
        term = balance_term(open_body_model, subject.keypoints["body"], subject.metrics["person_height_px"])
        assert term is not None  # the photo shows him standing
        with torch.no_grad():
            out = open_body_model.forward(**smplx_tensors(subject.smplx))
        return float(term(out.vertices[0], out.joints[0]).sqrt()) * 0.1  # metres beyond the support

    assert off_balance(FitSettings(balance_weight=0.0)) > 0.04
    assert off_balance(FitSettings()) < 0.01
