"""The built-in re-poser: the fitted body, dressed to the photo's silhouette, re-posed, rendered.

Honest about what it is: a textured body surface, so it teaches the avatar the subject's colours and a
plausible geometry in new poses, but no cloth dynamics (that is what a video generator such as
MimicMotion adds). Before re-posing, the body's surface is pushed along its normals and the colours the
photo sees refined until its render matches the photo's person (:func:`fit_surface_to_photo`): hair and loose
clothes the naked body lacks then appear in every generated frame, so those frames and the photo agree
on the person's outline instead of pulling the avatar two ways.

By default it renders one template level above the CPU preview avatar (level 2: four times the
splats). Its surface then reproduces the photo at about 34 dB instead of 29 dB (256 px, 100 fit
steps). That matters because the avatar's colours settle between the photo and these frames: level-1
frames cost the preview avatar about 1.5 dB on the photo's own view.

It exists so the whole pipeline runs anywhere, with no weights and no GPU. The rendering itself is
``render.body.BodyRenderer``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from persona_studio.body.model import smplx_tensors
from persona_studio.body.subdivide import mesh_neighbours, uniform_laplacian
from persona_studio.cpu_share import CpuShare
from persona_studio.workspace.subject import Subject
from persona_studio.workspace.training_set import PhotoSurface
from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera
from persona_studio.render.image import photo_on_white
from persona_studio.render.texture import (combine_visibility, drape_torso_back, extend_displacement, hair_colour,
                                          infer_colors, photo_visibility, seen_colors)

FIT_SIZE = 256  # longer side of the photo while fitting the surface
FIT_STEPS = 100


def photo_targets(subject: Subject, size: int) -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """The photo at ``size`` (longer side): camera, [H, W, 3] person on white, [H, W] mask."""
    camera = subject.camera.with_longer_side(size)
    on_white, mask = photo_on_white(subject.balanced_image / np.float32(255), subject.mask, (camera.width, camera.height))
    return camera, torch.as_tensor(on_white), torch.as_tensor(mask)


def fit_surface_to_photo(renderer: BodyRenderer, subject: Subject, steps: int = FIT_STEPS, size: int = FIT_SIZE,
                         progress: Callable[[float, str], None] | None = None,
                         cancelled: Callable[[], bool] | None = None) -> PhotoSurface:
    """Displacements along the normals (smooth: a Laplacian keeps neighbours together) and colours of
    the vertices the photos see squarely, fitted so that the posed body's render matches every photo of
    the subject (L1 on the image on white and on the mask, each photo in its own pose and camera); then
    the volume and the colours are carried round what no photo sees (``render.texture``). Each vertex's
    colour starts from the photo that sees it best.

    Only squarely seen colours are refined: at grazing angles the photo blends into its background (a
    colour refined there becomes a light streak), and colours the photo does not see get gradients
    thousands of times smaller than seen ones through the last bit of transmittance, which Adam would
    blow up into full-size noisy steps (a speckled back).
    """
    views = subject.views
    targets = [photo_targets(view, size) for view in views]
    with torch.no_grad():
        posed = [renderer.model.forward(**smplx_tensors(view.smplx)).vertices[0] for view in views]
    visibility, best = combine_visibility(
        [photo_visibility(renderer, view.mask, view.camera, view.smplx) for view in views])
    trusted = visibility.reliable
    base = torch.as_tensor(infer_colors(renderer, visibility, seen_colors([v.balanced_image for v in views], visibility, best),
                                        subject.smplx["betas"], hair=hair_colour(views)))
    refined = torch.as_tensor(trusted)[:, None]
    n = renderer.interp.shape[0]
    displacement = torch.zeros(n, requires_grad=True)
    color_change = torch.zeros(n, 3, requires_grad=True)
    neighbours, counts = mesh_neighbours(renderer.faces, n)
    optimiser = torch.optim.Adam([{"params": [displacement], "lr": 1e-3}, {"params": [color_change], "lr": 1e-2}])
    with CpuShare() as share:
        for step in range(steps):
            share.update()
            if cancelled is not None and cancelled():
                raise InterruptedError("generation cancelled")
            colors = (base + color_change * refined).clamp(0, 1)
            loss = 1e4 * uniform_laplacian(displacement[:, None], neighbours, counts)
            for vertices, (camera, target, mask) in zip(posed, targets):
                out = renderer.splat(vertices, colors, camera, displacement)
                alpha = out.alpha[0, ..., 0]
                image = out.features[0, ..., :3] + (1 - alpha[..., None])
                loss = loss + (image - target).abs().mean() + (alpha - mask).abs().mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if progress is not None:
                photos = "the photo" if len(views) == 1 else f"{len(views)} photos"
                progress((step + 1) / steps, f"re-poser: fitting the surface to {photos} {step + 1}/{steps}")
    refined_colors = (base + color_change * refined).clamp(0, 1).detach().numpy()
    colors = infer_colors(renderer, visibility, refined_colors, subject.smplx["betas"], trusted)
    shift = extend_displacement(renderer, displacement.detach().numpy(), visibility)
    shift = drape_torso_back(renderer, shift, visibility.seen, subject.smplx["betas"])
    return PhotoSurface(shift.astype(np.float32), colors)


def render_sequence(renderer: BodyRenderer, surface: PhotoSurface, vertices: np.ndarray, camera: Camera,
                    progress: Callable[[float, str], None] | None = None,
                    cancelled: Callable[[], bool] | None = None):
    """Yield a BodyRender for each frame's [V0, 3] posed vertices (a generator: frames stream to disk)."""
    colors = torch.as_tensor(surface.colors)
    displacement = torch.as_tensor(surface.displacement)
    for i, frame in enumerate(vertices):
        if cancelled is not None and cancelled():
            raise InterruptedError("generation cancelled")
        yield renderer.render(torch.as_tensor(frame), colors, camera, displacement=displacement)
        if progress is not None:
            progress((i + 1) / len(vertices), f"re-poser: frame {i + 1}/{len(vertices)}")
