"""photo -> Subject: intake, detection, SMPL-X fit, written into a workspace (the `fit` stage)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from persona_studio.body.model import BodyModel, load_body_model, smplx_tensors
from persona_studio.capture.detect import Detection, MediaPipeDetector, PersonDetector
from persona_studio.capture.fit import FitSettings, fit_smplx
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.capture.intake import load_photo
from persona_studio.workspace.subject import Subject
from persona_studio.workspace.folders import prepare_stage

Progress = Callable[[float, str], None]


def overlay(image: np.ndarray, detection: Detection, silhouette: np.ndarray, joints_uv: np.ndarray) -> np.ndarray:
    """The photo with the mask's outline, the fitted body (tinted) and detected (red) vs fitted (green) points."""
    out = image.astype(np.float32)
    out[silhouette] = 0.45 * out[silhouette] + 0.55 * np.array([40, 120, 255])
    person = detection.mask > 0.5
    edge = person ^ np.roll(person, 1, 0) | person ^ np.roll(person, 1, 1)
    out[edge] = (255, 220, 0)
    picture = Image.fromarray(out.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    r = max(2, round(max(image.shape[:2]) / 300))
    for x, y, c in detection.body:
        if c > 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 40, 40))
    for x, y in joints_uv[:22]:
        draw.ellipse([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=(40, 255, 80))
    return np.asarray(picture)


def fit_photo(photo_path: str | Path, workspace: str | Path, *, model: BodyModel | None = None,
              detector: PersonDetector | None = None, settings: FitSettings | None = None,
              progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
              ) -> tuple[Subject, Path]:
    """Run the whole fit stage and save ``workspace/subject/``; returns the Subject and that folder.

    ``model`` defaults to the open body model (the caller passes the official one when the user has it).
    """
    report = progress or (lambda fraction, message: None)
    t0 = time.time()
    report(0.0, "reading the photo")
    photo = load_photo(photo_path)
    report(0.03, "finding the person (mask and keypoints)")
    detection = (detector or MediaPipeDetector()).detect(photo)
    prepare_stage(Path(workspace), "fit")  # after the quick checks of the photo, before the minutes of fitting
    model = model or load_body_model("open")
    report(0.1, "fitting the body model")
    h, w = photo.image.shape[:2]
    mask = np.round(np.clip(detection.mask, 0, 1) * 255) / 255  # exactly what the PNG keeps
    result = fit_smplx((w, h), detection.body, detection.left_hand, detection.right_hand, detection.face,
                       mask, detection.person_height_px, model, settings, body_depth=detection.body_depth,
                       progress=lambda f, m: report(0.1 + 0.85 * f, m), cancelled=cancelled)
    params = smplx_tensors(result.params)
    with torch.no_grad():
        out = model.forward(**params)
    vertices, joints = out.vertices[0].numpy(), out.joints[0].numpy()
    silhouette = mesh_silhouette(vertices, model.faces, result.camera)
    picture = overlay(photo.image, detection, silhouette, result.camera.project(joints)[:, :2])
    metrics = {**result.metrics, "fit_seconds": round(time.time() - t0, 1)}
    subject = Subject(
        image=photo.image, mask=mask.astype(np.float32),
        keypoints={"body": detection.body, "body_depth": detection.body_depth, "left_hand": detection.left_hand,
                   "right_hand": detection.right_hand, "face": detection.face},
        smplx=result.params, camera=result.camera,
        body_model={"kind": model.info.kind, "path": str(model.info.path), "num_betas": model.info.num_betas,
                    **{k: str(v) for k, v in model.info.details.items() if k == "builder version"}},
        metrics=metrics, photo_name=Path(photo_path).name,
        notes=list(photo.notes) + list(detection.notes))
    folder = subject.save(workspace, photo.source, overlay=picture)
    report(1.0, "fitted")
    return subject, folder
