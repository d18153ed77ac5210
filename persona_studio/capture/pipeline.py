"""photo(s) -> Subject: intake, detection, SMPL-X fit, written into a workspace (the `fit` stage)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from persona_studio.body.model import BodyModel, load_body_model, smplx_tensors
from persona_studio.capture.detect import Detection, MediaPipeDetector, PersonDetector
from persona_studio.capture.fit import FOV_PRIOR_DEG, FitSettings, FitView, fit_smplx_views
from persona_studio.capture.identity import compare_photos
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.capture.intake import PLAUSIBLE_FOV_DEG, Photo, focal_from_fov, load_photo
from persona_studio.workspace.subject import MAX_PHOTOS, Subject
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


class SamePersonError(ValueError):
    """An extra photo that does not show the first photo's person (in the same clothes)."""


def photo_focal(photo: Photo, fov: float | None) -> tuple[float | None, list[str]]:
    """The focal length the fit gives ``photo``'s camera (pixels; ``None``: the fit's prior) and a note on
    where it came from (none when it is the photo's EXIF: intake notes that)."""
    width, height = photo.image.shape[1], photo.image.shape[0]
    if fov is not None:
        return focal_from_fov(width, height, fov), [f"camera: {fov:g} deg across the longer side, as given"]
    if photo.focal_px is not None:
        return photo.focal_px, []
    return None, [f"camera: no focal length in the photo's EXIF, so the usual {FOV_PRIOR_DEG:g} deg across the longer "
                  f"side (give the real field of view to the fit when you know it: fit --fov, or the app's Fit row)"]


def fit_photo(photo_path: str | Path, workspace: str | Path, *, extra_photos: Sequence[str | Path] = (),
              model: BodyModel | None = None, detector: PersonDetector | None = None,
              settings: FitSettings | None = None, progress: Progress | None = None,
              cancelled: Callable[[], bool] | None = None, fov: float | None = None) -> tuple[Subject, Path]:
    """Run the whole fit stage and save ``workspace/subject/``; returns the Subject and that folder.

    ``extra_photos`` are more photos of the same person (a back or side shot): each gets its own
    detection, pose and camera, with one body shape fitted jointly over all of them; one that shows
    someone else, or other clothes, is refused (:class:`SamePersonError`) before anything is written.
    ``model`` defaults to the open body model (the caller passes the official one when the user has it).
    ``fov``: the camera's field of view across each photo's longer side in degrees, when the user knows
    it; otherwise a photo's camera focal length comes from its EXIF, else from the fit's prior.
    """
    report = progress or (lambda fraction, message: None)
    t0 = time.time()
    paths = [Path(photo_path), *map(Path, extra_photos)]
    low, high = PLAUSIBLE_FOV_DEG
    if fov is not None and not low <= fov <= high:
        raise ValueError(f"a field of view of {fov:g} deg is not a camera's: give the angle the photo spans across "
                         f"its longer side, between {low:g} and {high:g} deg (a phone's main camera: 60-70)")
    if len(paths) > MAX_PHOTOS:
        raise ValueError(f"{len(paths)} photos: a subject takes at most {MAX_PHOTOS}")
    detector = detector or MediaPipeDetector()
    photos, detections = [], []
    for i, path in enumerate(paths):
        which = "the photo" if len(paths) == 1 else f"photo {i + 1}/{len(paths)}"
        report(0.1 * i / len(paths), f"reading {which}")
        photos.append(load_photo(path))
        report(0.1 * (i + 0.3) / len(paths), f"finding the person in {which} (mask and keypoints)")
        detections.append(detector.detect(photos[-1]))
    prepare_stage(Path(workspace), "fit")  # after the quick checks of the photos, before the minutes of fitting
    model = model or load_body_model("open")
    report(0.1, "fitting the body model" + ("" if len(paths) == 1 else f" to {len(paths)} photos, one shape"))
    masks = [np.round(np.clip(d.mask, 0, 1) * 255) / 255 for d in detections]  # exactly what the PNG keeps
    focals = [photo_focal(photo, fov) for photo in photos]
    views = [FitView((p.image.shape[1], p.image.shape[0]), d.body, d.left_hand, d.right_hand, d.face, m,
                     d.person_height_px, d.body_depth, focal)
             for p, d, m, (focal, _) in zip(photos, detections, masks, focals)]
    # Several photos: each one on its own first. The joint fit starts from these fits, the first one's
    # shape anchoring it, and every one's shape tells whether the photos show one person (checked below,
    # with the joint fit's colours).
    alone = []  # each photo's own fit (several photos only)
    if len(views) > 1:
        for i, view in enumerate(views):
            report(0.1 + 0.6 * i / len(views), f"fitting photo {i + 1}/{len(views)} on its own")
            alone.append(fit_smplx_views([view], model, settings, cancelled=cancelled)[0])
    begin = 0.7 if alone else 0.1
    results = fit_smplx_views(views, model, settings, progress=lambda f, m: report(begin + (0.9 - begin) * f, m),
                              cancelled=cancelled, shape_anchor=alone[0].params["betas"] if alone else None,
                              start=alone or None)
    body_model = {"kind": model.info.kind, "path": str(model.info.path), "num_betas": model.info.num_betas,
                  **{k: str(v) for k, v in model.info.details.items() if k == "builder version"}}
    subjects, overlays = [], []
    for path, photo, detection, mask, result, (_, focal_note) in zip(paths, photos, detections, masks, results, focals):
        with torch.no_grad():
            out = model.forward(**smplx_tensors(result.params))
        vertices, joints = out.vertices[0].numpy(), out.joints[0].numpy()
        silhouette = mesh_silhouette(vertices, model.faces, result.camera)
        overlays.append(overlay(photo.image, detection, silhouette, result.camera.project(joints)[:, :2]))
        subjects.append(Subject(
            image=photo.image, mask=mask.astype(np.float32),
            keypoints={"body": detection.body, "body_depth": detection.body_depth,
                       "left_hand": detection.left_hand, "right_hand": detection.right_hand, "face": detection.face},
            smplx=result.params, camera=result.camera, body_model=body_model,
            metrics={**result.metrics, "fit_seconds": round(time.time() - t0, 1)}, photo_name=path.name,
            notes=list(photo.notes) + focal_note + list(detection.notes)))
    if len(views) > 1:
        report(0.96, "checking that the photos show one person")
        for i, own in enumerate(alone[1:], 1):
            problem, gain = compare_photos(model, subjects[0], subjects[i], alone[0].params["betas"], own.params["betas"])
            if problem:
                raise SamePersonError(problem)
            subjects[i] = replace(subjects[i], colour_gain=tuple(round(float(g), 4) for g in gain))
    first = subjects[0]
    subject = replace(first, extras=subjects[1:])
    folder = subject.save(workspace, [photo.source for photo in photos], overlays)
    report(1.0, "fitted")
    return subject, folder
