"""Single-image SMPL-X fit, SMPLify-X style, against whole-body 2D keypoints and the person mask.

The camera is a pinhole looking along the world's -Z (so a body with identity orientation faces it),
with the photo's focal length where it is known (the camera's EXIF, or the user's) and a field-of-view
prior otherwise: a wrong focal length bends the body in depth to explain the photo through the wrong
perspective, which only other views show. The fit optimises the camera translation, the global
orientation, body, hand and jaw poses, expression and shape (betas) in stages, from the torso out.
Keypoints count through a robust (Geman-McClure) error, confidence-weighted. The mask enters through a
silhouette rendered with ``render.rasterize``: a strong term keeps the body inside the mask, a weak one
pulls it towards covering it, so that loose clothes, hair or a carried bag do not inflate the body.
What one view leaves open, each limb's slope towards or away from the camera (lean, stride, arms
forward), comes from the detector's own metric depth estimate of its landmarks when it gives one.
Priors keep poses human (joint limits: knees and elbows do not bend backwards, fingers not past flat)
and the shape near the mean, since no learnt pose prior can be downloaded here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from persona_studio.body.model import BodyModel
from persona_studio.body.skeleton import JOINT_INDEX as J
from persona_studio.body import landmarks
from persona_studio.capture.intake import focal_from_fov
from persona_studio.cpu_share import CpuShare
from persona_studio.render.camera import Camera
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.render.rasterize import rasterize

FOV_PRIOR_DEG = 55.0  # field of view across the image's longer side
CAMERA_R = np.diag([1.0, -1.0, -1.0])  # world (Y up, body facing +Z) -> OpenCV camera in front of it
SILHOUETTE_SIDE = 224  # pixels of the longer side the silhouette is rendered at
HEEL_BEHIND_ANKLE = 0.05  # metres from the ankle joint back to the heel's edge
# What the fit optimises per photo (besides its camera translation); the shape is shared.
FITTED_POSE_KEYS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "expression")


@dataclass
class FitSettings:
    """Settings of :func:`fit_smplx`: iterations per stage, shape coefficients, term weights, seed."""
    iterations: tuple[int, int, int] = (40, 120, 60)  # torso/camera, body, everything + silhouette
    num_betas: int = 10
    silhouette_outside_weight: float = 2.0  # per unit share of the body outside the mask
    silhouette_cover_weight: float = 0.3  # per unit share of the mask the body leaves uncovered
    shape_prior_weight: float = 0.02
    anchor_shape_weight: float = 0.1  # per unit squared distance of the betas from ``shape_anchor``'s
    depth_weight: float = 10.0  # per unit squared error of a segment's depth slope (sine of its tilt)
    balance_weight: float = 1.0  # per (10 cm)^2 of the centre of mass off the feet in depth, standing
    seed: int = 0


@dataclass
class FitResult:
    """What :func:`fit_smplx` returns: SMPL-X parameters, the camera, fit metrics, seconds per stage."""
    params: dict[str, np.ndarray]  # smplx keywords (no batch): betas, global_orient, body_pose [63], ...
    camera: Camera
    metrics: dict[str, float]
    stages_seconds: list[float] = field(default_factory=list)


def geman_mcclure(residual_sq: torch.Tensor, sigma_sq: float) -> torch.Tensor:
    """Robust error of squared residuals: ~ r^2 for small r, saturating at 1 for outliers."""
    return residual_sq / (residual_sq + sigma_sq)


def project(points: torch.Tensor, cam_t: torch.Tensor, focal: float, centre: torch.Tensor) -> torch.Tensor:
    """[..., 3] world points -> [..., 2] pixels for the fit camera (R = CAMERA_R, t = cam_t)."""
    R = torch.as_tensor(CAMERA_R, dtype=points.dtype)
    cam = points @ R.T + cam_t
    return cam[..., :2] / cam[..., 2:3].clamp_min(1e-3) * focal + centre


def depth_slopes(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Sine of each segment's tilt towards depth: ``points`` [..., P, 3] in camera axes, ``start``/``end``
    [S, P] averaging matrices -> [..., S] in [-1, 1] (positive: the end lies farther from the camera)."""
    segment = end @ points - start @ points  # [..., S, 3]
    return segment[..., 2] / segment.norm(dim=-1).clamp_min(1e-6)


def joint_limit_penalty(body_pose: torch.Tensor, left_hand: torch.Tensor, right_hand: torch.Tensor) -> torch.Tensor:
    """Hinge penalties on anatomically impossible bends ([21, 3], [15, 3], [15, 3] axis-angle)."""
    relu = torch.relu
    knees = body_pose[[J["left_knee"] - 1, J["right_knee"] - 1]]
    elbow_l, elbow_r = body_pose[J["left_elbow"] - 1], body_pose[J["right_elbow"] - 1]
    penalty = relu(-knees[:, 0]).pow(2).sum() + knees[:, 1:].pow(2).sum()  # knees flex about +X only
    penalty = penalty + relu(elbow_l[1]).pow(2) + relu(-elbow_r[1]).pow(2)  # elbows flex about -Y / +Y
    penalty = penalty + 0.5 * (elbow_l[[0, 2]].pow(2).sum() + elbow_r[[0, 2]].pow(2).sum())
    spine = body_pose[[J["spine1"] - 1, J["spine2"] - 1, J["spine3"] - 1]]
    penalty = penalty + 0.5 * relu(spine.abs() - 0.4).pow(2).sum()
    fingers = slice(0, 12)  # index, middle, pinky, ring: no bending backwards past flat
    penalty = penalty + relu(left_hand[fingers, 2]).pow(2).sum() + relu(-right_hand[fingers, 2]).pow(2).sum()
    return penalty


@dataclass
class FitView:
    """One photo's detections, as :func:`fit_smplx_views` takes them (see :func:`fit_smplx` for each field)."""
    image_size: tuple[int, int]  # (width, height) of the working image the landmarks are in
    body: np.ndarray  # [33, 3] (x, y, confidence)
    left_hand: np.ndarray  # [21, 3]
    right_hand: np.ndarray  # [21, 3]
    face: np.ndarray  # [478, 3]
    mask: np.ndarray  # [H, W] in [0, 1]
    person_px: float  # the person's height in pixels
    body_depth: np.ndarray | None = None  # [33, 3] metres in camera axes, or None/zeros
    focal: float | None = None  # the camera's focal length in pixels when known; None: FOV_PRIOR_DEG


def fit_smplx(image_size: tuple[int, int], body: np.ndarray, left_hand: np.ndarray, right_hand: np.ndarray,
              face: np.ndarray, mask: np.ndarray, person_px: float, model: BodyModel,
              settings: FitSettings | None = None, body_depth: np.ndarray | None = None,
              progress: Callable[[float, str], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> FitResult:
    """Fit ``model`` to one photo's detections.

    ``image_size`` is (width, height) of the working image the landmarks are in (pixels); ``body`` [33, 3],
    hands [21, 3], ``face`` [478, 3] are (x, y, confidence); ``mask`` [H, W] in [0, 1]; ``person_px`` the
    person's height in pixels (the scale of the keypoint error); ``body_depth`` [33, 3] the body
    landmarks in metres in camera axes (the detector's depth estimate), or ``None``/zeros when unknown.
    """
    view = FitView(image_size, body, left_hand, right_hand, face, mask, person_px, body_depth)
    return fit_smplx_views([view], model, settings, progress, cancelled)[0]


class _ViewTerms:
    """What one photo adds to the fit: its camera's focal length and centre, keypoint targets, silhouette,
    depth-slope and balance terms."""

    def __init__(self, view: FitView, model: BodyModel):
        width, height = view.image_size
        self.view = view
        self.focal = view.focal or focal_from_fov(width, height, FOV_PRIOR_DEG)
        self.centre = torch.tensor([width / 2, height / 2], dtype=torch.float32)
        self.ids, self.xy, self.weights = landmarks.targets(view.body, view.left_hand, view.right_hand, view.face)
        self.ids_t, self.xy_t, self.w_t = (torch.as_tensor(a) for a in (self.ids, self.xy, self.weights))
        self.sigma_sq = (0.04 * view.person_px) ** 2
        self.silhouette = _SilhouetteTerm(view.mask, self.focal, width, height, model)
        torso = [J["left_shoulder"], J["right_shoulder"], J["left_hip"], J["right_hip"]]
        self.torso = torch.isin(self.ids_t, torch.tensor(torso))
        body_ids = torch.tensor([joint for joint, _ in landmarks.POSE_TO_JOINT.values()])
        self.is_body = torch.isin(self.ids_t, body_ids)
        self.depth = _depth_term(view.body, view.body_depth)
        self.balance = balance_term(model, view.body, view.person_px)

    def keypoints(self, joints: torch.Tensor, cam_t: torch.Tensor, stage: int) -> torch.Tensor:
        """[J, 3] world joints -> the confidence-weighted robust keypoint error of ``stage``'s keypoints."""
        pred = project(joints[self.ids_t], cam_t, self.focal, self.centre)
        err = geman_mcclure((pred - self.xy_t).pow(2).sum(-1), self.sigma_sq)
        use = self.torso if stage == 0 else self.is_body if stage == 1 else torch.ones_like(self.is_body)
        return (self.w_t * err * use).sum() / (self.w_t * use).sum().clamp_min(1e-6)


def fit_smplx_views(views: list[FitView], model: BodyModel, settings: FitSettings | None = None,
                    progress: Callable[[float, str], None] | None = None,
                    cancelled: Callable[[], bool] | None = None,
                    shape_anchor: np.ndarray | None = None,
                    start: list[FitResult] | None = None) -> list[FitResult]:
    """Fit ``model`` to photos of one person: each photo its own pose and camera, ONE body shape (betas)
    for all of them, fitted jointly (the terms of every photo summed); one :class:`FitResult` per view.

    ``shape_anchor`` [num_betas]: betas the shape starts from and is held near (``anchor_shape_weight``):
    the first photo's own, when the others are a back or side shot. Fitted freely, the shape answers a
    back view's detections as much as the front's, and a detector trained on people facing it is least
    sure from behind (it puts the face's points on the back of the head). On the multi-view set's front
    and back views the free joint shape made the re-poser's surface 0.6 dB worse on the front views than
    the anchored one (19.67 against 20.31), and no better anywhere else.

    ``start``: each view's own fit (one :class:`FitResult` per view), which the joint fit starts from
    (poses, expression, camera) and then runs its last stage only. The only thing the photos share is
    the shape, so each one's pose needs no more than the last stage's adjustment to it; started from
    scratch instead, the joint fit walked the first photo's pose to another of the single view's many
    near-equal solutions (its right arm 0.3 rad and its left foot 0.35 rad from the first photo's own
    fit), which the other views then saw as a thinner, differently posed person."""
    settings = settings or FitSettings()
    torch.manual_seed(settings.seed)
    n = len(views)
    if start is not None and len(start) != n:
        raise ValueError(f"the joint fit starts from one fit per photo: {len(start)} fits for {n} photos")
    terms_of = [_ViewTerms(view, model) for view in views]
    n_expr = model.layer.num_expression_coeffs
    anchor = None if shape_anchor is None else torch.as_tensor(shape_anchor, dtype=torch.float32)[None]
    betas = torch.zeros(1, settings.num_betas) if anchor is None else anchor.clone()
    if start is not None:  # each view from its own fit
        p = {key: torch.stack([torch.as_tensor(own.params[key], dtype=torch.float32).reshape(-1) for own in start])
             for key in FITTED_POSE_KEYS}  # per view, one row each
        cam_t = torch.stack([torch.as_tensor(own.camera.t, dtype=torch.float32) for own in start])  # [n, 3]
    else:
        sizes = {"global_orient": 3, "body_pose": 63, "left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3,
                 "expression": n_expr}
        p = {key: torch.zeros(n, sizes[key]) for key in FITTED_POSE_KEYS}  # per view, one row each
        # Arms start relaxed down, the way people stand in photos, rather than in the T-pose.
        p["body_pose"].view(n, 21, 3)[:, J["left_shoulder"] - 1, 2] = -1.1
        p["body_pose"].view(n, 21, 3)[:, J["right_shoulder"] - 1, 2] = 1.1
        for i, view in enumerate(views):
            if view.body[11, 0] < view.body[12, 0]:  # subject's left shoulder on the image left: we see the back
                p["global_orient"][i, 1] = math.pi
        cam_t = torch.stack([_initial_translation(model, v.body, t.focal, t.centre, v.person_px)
                             for v, t in zip(views, terms_of)])  # [n, 3]
    for tensor in (betas, *p.values(), cam_t):
        tensor.requires_grad_(True)

    def loss_fn(stage: int) -> torch.Tensor:
        """Total loss for ``stage`` 0 (torso and camera), 1 (body) or 2 (all keypoints + silhouette)."""
        out = model.forward(betas=betas.expand(n, -1), **p)
        total = 0.02 * settings.shape_prior_weight * betas.pow(2).sum()
        if anchor is not None:
            total = total + settings.anchor_shape_weight * (betas - anchor).pow(2).sum()
        for i, t in enumerate(terms_of):
            bp = p["body_pose"][i].view(21, 3)
            lh, rh = p["left_hand_pose"][i].view(15, 3), p["right_hand_pose"][i].view(15, 3)
            prior = ((0.02 if stage < 2 else 0.008) * bp.pow(2).sum()
                     + 1.0 * joint_limit_penalty(bp, lh, rh)
                     + 0.01 * (lh.pow(2).sum() + rh.pow(2).sum())
                     + 0.01 * p["expression"][i].pow(2).sum() + 0.05 * p["jaw_pose"][i].pow(2).sum())
            total = total + t.keypoints(out.joints[i], cam_t[i], stage) + 0.02 * prior
            if t.depth is not None and stage > 0:
                total = total + settings.depth_weight * t.depth(out.joints[i])
            if t.balance is not None and stage > 0:
                total = total + settings.balance_weight * t.balance(out.vertices[i], out.joints[i])
            if stage == 2:
                outside, uncovered = t.silhouette(out.vertices[i], cam_t[i])
                total = (total + settings.silhouette_outside_weight * outside
                         + settings.silhouette_cover_weight * uncovered)
        return total

    stage_params = [
        [cam_t, p["global_orient"]],
        [cam_t, p["global_orient"], p["body_pose"], betas],
        [betas, *p.values(), cam_t],
    ]
    lrs = [0.03, 0.02, 0.01]
    stages = [2] if start is not None else [0, 1, 2]
    stage_times = []
    total_iters = sum(settings.iterations[stage] for stage in stages)
    done = 0
    with CpuShare() as share:
        for stage in stages:
            params, iters = stage_params[stage], settings.iterations[stage]
            t0 = time.time()
            opt = torch.optim.Adam(params, lr=lrs[stage])
            for i in range(iters):
                share.update()
                if cancelled is not None and cancelled():
                    raise InterruptedError("fit cancelled")
                opt.zero_grad()
                loss_fn(stage).backward()
                cam_t.grad[:, 2] *= 10.0  # depth moves the image slowly: speed it up
                opt.step()
                done += 1
                if progress is not None and i % 10 == 0:
                    progress(done / total_iters, f"fitting: stage {stage + 1}/3")
            stage_times.append(time.time() - t0)

    results = []
    with torch.no_grad():
        out = model.forward(betas=betas.expand(n, -1), **p)
    for i, (view, t) in enumerate(zip(views, terms_of)):
        params = {"betas": betas.detach()[0].numpy().copy(),
                  **{k: v.detach()[i].numpy().copy() for k, v in p.items()}}
        params.update(leye_pose=np.zeros(3, np.float32), reye_pose=np.zeros(3, np.float32),
                      transl=np.zeros(3, np.float32))  # eyes look ahead; the camera carries the translation
        width, height = view.image_size
        camera = Camera(CAMERA_R, cam_t.detach()[i].numpy().astype(np.float64), t.focal, t.focal,
                        width / 2, height / 2, width, height)
        with torch.no_grad():
            single = model.forward(**{k: torch.as_tensor(v)[None] for k, v in params.items()})
            metrics = fit_metrics(single, t.ids, t.xy, t.weights, view.body, view.mask, camera, model, view.person_px)
            if t.depth is not None:  # how far each segment's tilt in depth ends from the detector's
                metrics["depth_slope_rms"] = round(float(t.depth(out.joints[i]).sqrt()), 4)
        results.append(FitResult(params=params, camera=camera, metrics=metrics, stages_seconds=stage_times))
    return results


def _depth_term(body: np.ndarray, body_depth: np.ndarray | None
                ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """joints [J, 3] (world) -> weighted mean squared error of the segments' depth slopes against the
    detector's; ``None`` when it gave no depth."""
    if body_depth is None or not np.any(body_depth):
        return None
    start, end, weights = (torch.as_tensor(a) for a in landmarks.depth_segments(body))
    if float(weights.sum()) <= 0:
        return None
    target = depth_slopes(torch.as_tensor(body_depth, dtype=torch.float32), start, end)  # [S]
    observed = torch.as_tensor(landmarks.pose_landmark_joints())  # [33]
    axes = torch.tensor(CAMERA_R.diagonal(), dtype=torch.float32)

    def term(joints: torch.Tensor) -> torch.Tensor:
        """[J, 3] joints -> scalar weighted mean squared error of the depth slopes."""
        points = joints[observed.clamp_min(0)] * axes  # [33, 3] camera axes; unobserved rows unused
        error = (depth_slopes(points, start, end) - target).pow(2)
        return (weights * error).sum() / weights.sum()
    return term


def standing_on_both_feet(body: np.ndarray, person_px: float) -> bool:
    """Whether the photo's [33, 3] body landmarks show a person standing: both legs confidently seen,
    hips above knees above ankles, the legs at least a third of the person's height and the thighs upright
    (not foreshortened to under half the shin's height, as a seated person's are)."""
    legs = body[[23, 25, 27, 24, 26, 28]]
    if legs[:, 2].min() < 0.5:
        return False
    hip, knee, ankle = legs[:, 1].reshape(2, 3).T  # [2] image heights (y down), left and right
    thigh, shin = knee - hip, ankle - knee
    return bool(np.all(shin > 0) and np.all(thigh > 0.5 * shin) and np.all(ankle - hip > person_px / 3))


def balance_term(model: BodyModel, body: np.ndarray, person_px: float
                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """(vertices [V, 3], joints [J, 3], world) -> squared distance in depth (units of 10 cm) of the body's
    centre of mass beyond the middle half of its feet's support; ``None`` unless the photo shows the person
    standing.

    One view leaves the lean towards or away from the camera open, and a detector's depth estimate can
    leave a standing body tipping over; a person standing still keeps the centre of mass above the feet.
    The mass is spread over the template's surface by area; the support runs in depth from behind the
    ankles (the heels) to the balls of the feet, joints rather than the lowest vertices so that the fit
    cannot stretch it by pointing the toes.
    """
    if not standing_on_both_feet(body, person_px):
        return None
    faces = torch.as_tensor(model.faces)
    rest = model.v_template
    area = torch.linalg.cross(rest[faces[:, 1]] - rest[faces[:, 0]], rest[faces[:, 2]] - rest[faces[:, 0]]).norm(dim=1)
    mass = torch.zeros(rest.shape[0]).index_add_(0, faces.reshape(-1), area.repeat_interleave(3))
    mass = mass / mass.sum()  # [V]
    ankles = torch.tensor([J["left_ankle"], J["right_ankle"]])
    balls = torch.tensor([J["left_foot"], J["right_foot"]])

    def term(vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """[V, 3], [J, 3] -> scalar."""
        centre = (mass[:, None] * vertices).sum(0)  # [3]
        back = joints[ankles, 2].min() - HEEL_BEHIND_ANKLE
        front = joints[balls, 2].max()
        margin = 0.25 * (front - back).clamp_min(0)
        beyond = torch.relu(centre[2] - (front - margin)) + torch.relu((back + margin) - centre[2])
        return (beyond / 0.1).pow(2)
    return term


def _initial_translation(model: BodyModel, body: np.ndarray, focal: float, centre: torch.Tensor,
                         person_px: float) -> torch.Tensor:
    """Depth from the torso's pixel length against the model's, x/y from the torso centre."""
    with torch.no_grad():
        rest = model.forward()
    joints, vertices = rest.joints[0], rest.vertices[0]
    shoulders = (joints[J["left_shoulder"]] + joints[J["right_shoulder"]]) / 2
    hips = (joints[J["left_hip"]] + joints[J["right_hip"]]) / 2
    torso_m = float((shoulders - hips).norm())
    s2d = (body[11, :2] + body[12, :2]) / 2
    h2d = (body[23, :2] + body[24, :2]) / 2
    torso_px = float(np.linalg.norm(s2d - h2d))
    height_m = float(vertices[:, 1].max() - vertices[:, 1].min())
    depth = focal * torso_m / torso_px if torso_px > 10 else focal * height_m / person_px
    mid = torch.as_tensor((s2d + h2d) / 2, dtype=torch.float32)
    torso_centre = ((shoulders + hips) / 2) * torch.tensor([1.0, -1.0, -1.0])  # in camera axes
    xy = (mid - centre) / focal * depth - torso_centre[:2]
    return torch.tensor([float(xy[0]), float(xy[1]), depth - float(torso_centre[2])])


class _SilhouetteTerm:
    """Differentiable silhouette of the body (its vertices as small Gaussians) against the mask."""

    def __init__(self, mask: np.ndarray, focal: float, width: int, height: int, model: BodyModel):
        self.scale = SILHOUETTE_SIDE / max(width, height)
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        from PIL import Image

        small = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8)).resize(self.size, Image.BILINEAR)
        self.mask = torch.as_tensor(np.asarray(small, dtype=np.float32) / 255.0)  # [h, w]
        f = focal * self.scale
        self.K = torch.tensor([[f, 0, self.size[0] / 2], [0, f, self.size[1] / 2], [0, 0, 1.0]])[None]
        edges = model.faces[:, :2]
        with torch.no_grad():
            v = model.v_template
            spacing = (v[edges[:, 0]] - v[edges[:, 1]]).norm(dim=1).median()
        self.radius = float(spacing) * 0.8

    def render(self, vertices: torch.Tensor, cam_t: torch.Tensor) -> torch.Tensor:
        """[V, 3] vertices -> [h, w] alpha."""
        top = torch.cat([torch.as_tensor(CAMERA_R, dtype=torch.float32), cam_t[:, None]], 1)
        view = torch.cat([top, torch.tensor([[0.0, 0.0, 0.0, 1.0]])], 0)[None]  # [1, 4, 4]
        n = vertices.shape[0]
        out = rasterize(vertices, torch.full((n,), self.radius), torch.ones(n), torch.ones(n, 1), view, self.K,
                        self.size[0], self.size[1], backend="torch")
        return out.alpha[0, ..., 0]

    def __call__(self, vertices: torch.Tensor, cam_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.render(vertices, cam_t)
        outside = (alpha * (1 - self.mask)).sum() / alpha.sum().clamp_min(1.0)
        uncovered = (self.mask * (1 - alpha)).sum() / self.mask.sum().clamp_min(1.0)
        return outside, uncovered


def fit_metrics(out, ids, xy, weights, body, mask, camera: Camera, model: BodyModel, person_px: float) -> dict:
    """The figures a person judges a fit by (percentages of the person's height / of areas)."""
    joints = out.joints[0].numpy()
    uv = camera.project(joints)[:, :2]
    scored = [landmarks.POSE_TO_JOINT[k][0] for k in landmarks.SCORED_POSE_LANDMARKS]
    conf = np.array([body[k, 2] for k in landmarks.SCORED_POSE_LANDMARKS])
    target = np.array([body[k, :2] for k in landmarks.SCORED_POSE_LANDMARKS])
    use = conf > 0.5
    err = np.linalg.norm(uv[scored] - target, axis=1)[use] / person_px * 100
    silhouette = mesh_silhouette(out.vertices[0].numpy(), model.faces, camera)
    person = mask > 0.5
    return {
        "keypoint_error_pct_height": float(err.mean()) if len(err) else float("nan"),
        "keypoint_error_max_pct_height": float(err.max()) if len(err) else float("nan"),
        "keypoints_scored": int(use.sum()),
        "silhouette_inside_mask_pct": float((silhouette & person).sum() / max(silhouette.sum(), 1) * 100),
        "mask_covered_pct": float((silhouette & person).sum() / max(person.sum(), 1) * 100),
        "person_height_px": float(person_px),
    }
