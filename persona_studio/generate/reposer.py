"""The built-in re-poser: the fitted body, dressed to the photo's silhouette, re-posed, rendered.

Honest about what it is: a textured body surface, so it teaches the avatar the subject's colours and a
plausible geometry in new poses, but no cloth dynamics (that is what a video generator such as
MimicMotion adds). Before re-posing, the body's surface is pushed along its normals until its render
matches the photo's person (:func:`fit_surface_to_photo`): hair and loose clothes the naked body lacks
then appear in every generated frame, so those frames and the photo agree on the person's outline
instead of pulling the avatar two ways.

By default it renders at the template level of the avatar it teaches (level 1: the `preview` and
`standard` presets; generate at level 2 for `quality`). Frames from finer splats than the avatar's are
outlines its larger splats overshoot and details it cannot hold: trained on level-2 frames, the preview
avatar thinned below its own start on novel views (benchmarks/novel_views.py, sides IoU 0.837 against
0.843 untrained; from level-1 frames 0.839-0.841 in two runs against 0.843). An avatar finer than the
surface starts from it subdivided (``train.trainer``).

It exists so the whole pipeline runs anywhere, with no weights and no GPU. The rendering itself is
``render.body.BodyRenderer``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body.model import smplx_tensors
from persona_studio.body.subdivide import mesh_neighbours, uniform_laplacian
from persona_studio.cpu_share import CpuShare
from persona_studio.workspace.subject import Subject
from persona_studio.workspace.training_set import PhotoSurface
from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera
from persona_studio.render.image import photo_on_white
from persona_studio.render.rasterize import gradient_scaled
from persona_studio.render.texture import (PhotoVisibility, combine_visibility, depth_pinned, drape_torso_back,
                                          extend_displacement, hair_colour, infer_colors, photo_visibility,
                                          seen_colors)

FIT_SIZE = 256  # longer side of the photo while fitting the surface
FIT_STEPS = 100
POSE_LR = 1e-1  # Adam's first step for an extra photo's pose correction (radians; see pose_step)
POSE_PRIOR = 0.01  # per squared radian of the correction
# Degrees off one axis of the body within which a photo's outline counts as the first photo's (a back
# photo's fit may be this far off straight behind), and from which it counts as its own: see outline_share.
SAME_AXIS_DEGREES, OWN_OUTLINE_DEGREES = 40.0, 70.0


def photo_targets(subject: Subject, size: int) -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """The photo at ``size`` (longer side): camera, [H, W, 3] person on white, [H, W] mask."""
    camera = subject.camera.with_longer_side(size)
    on_white, mask = photo_on_white(subject.balanced_image / np.float32(255), subject.mask, (camera.width, camera.height))
    return camera, torch.as_tensor(on_white), torch.as_tensor(mask)


class SurfaceFit(NamedTuple):
    """What :func:`fit_surface_to_photo` returns: the clothed surface and each photo's pose (SMPL-X
    parameters as the Subject holds them; an extra photo's refined against its silhouette)."""
    surface: PhotoSurface
    poses: list[dict[str, np.ndarray]]


def refined_pose(smplx: dict[str, np.ndarray], correction: torch.Tensor) -> dict[str, torch.Tensor]:
    """One photo's SMPL-X tensors with ``correction`` [66] (root orientation, then the 21 body joints' axis
    angles) added to its root and body rotations."""
    params = smplx_tensors(smplx)
    params["global_orient"] = params["global_orient"] + correction[None, :3]
    params["body_pose"] = params["body_pose"] + correction[None, 3:]
    return params


def pose_step(step: int, steps: int) -> float:
    """Adam's step for the extra photos' pose corrections at ``step`` of ``steps``: ``POSE_LR`` falling
    to a tenth of it, so that the corrections travel far early and settle by the end (at a constant
    hundredth of a radian they had not reached the outline in the fit's 100 steps; at a constant tenth
    they ended wherever the last steps' noise left them)."""
    return POSE_LR * 0.1 ** (step / max(steps - 1, 1))


def viewing_axis(view: Subject) -> np.ndarray:
    """[3] the photo's viewing direction in the frame of its fitted body (the body's root rotation undone)."""
    return Rotation.from_rotvec(view.smplx["global_orient"]).inv().apply(view.camera.R[2])


def outline_share(first: Subject, other: Subject) -> float:
    """How much of photo ``other``'s outline is its own rather than ``first``'s: 0 where the two photos look
    along one axis of the body (from the same side or from opposite sides: a back photo's outline is the
    front photo's contour seen from behind, and fitted to both the one displacement only takes up the two
    fits' pose differences), 1 for a photo from the side; in between, a ramp in sin^2 of the angle between
    their viewing axes in the body's frame, from SAME_AXIS_DEGREES to OWN_OUTLINE_DEGREES off that axis.
    A back photo's fit is the less sure: the multi-view set's view 180 came out 26 degrees off straight
    behind with its known camera, 31 with the fit's field-of-view prior."""
    sin2 = 1.0 - float(np.dot(viewing_axis(first), viewing_axis(other))) ** 2
    low, high = (math.sin(math.radians(d)) ** 2 for d in (SAME_AXIS_DEGREES, OWN_OUTLINE_DEGREES))
    return float(np.clip((sin2 - low) / (high - low), 0.0, 1.0))


def fit_surface_to_photo(renderer: BodyRenderer, subject: Subject, steps: int = FIT_STEPS, size: int = FIT_SIZE,
                         progress: Callable[[float, str], None] | None = None,
                         cancelled: Callable[[], bool] | None = None) -> SurfaceFit:
    """Displacements along the normals (smooth: a Laplacian keeps neighbours together) fitted so that the
    posed body's render matches every photo of the subject (L1 on the image on white and on the mask,
    each photo in its own pose and camera); then the volume is carried round what no photo pins down
    (``render.texture``). Each vertex takes its colour from the photo that sees it best, inferred where
    none sees it squarely.

    Corrections to the squarely seen colours are fitted alongside the displacement, so that the
    displacement answers the photo's outline rather than colours a pixel off, but they are not kept:
    fitting per-splat colours to a photo deconvolves it through the overlapping splats, the colours
    overshooting until their blend matches each pixel from that one viewpoint. That matches the photo
    and every other view worse (benchmarks/novel_views.py, the surface alone: front views 0.5 dB, and
    with a back photo back views 2 dB, below the photos' own samples). The avatar learns the photo's
    pixels from the photo itself. Colours the photo does not see squarely get no correction at all: at
    grazing angles the photo blends into its background, and unseen ones get gradients thousands of
    times smaller through the last bit of transmittance, which Adam would blow up into noise.

    An extra photo's pose is refined alongside (a small correction of its root and body rotations, held
    near the fit's by a prior), and its colours are taken in that pose: the first photo's pose is the
    avatar's and stays; a back photo's fit is the less sure (a detector trained on people facing it), and
    the one displacement would otherwise carve away in one photo's pose what the other photo's shows
    (photos 0 and 180 of benchmarks/novel_views.py, the surface: IoU front 0.892 -> 0.900, sides 0.832
    -> 0.838, back 0.891 -> 0.898; with its steps falling from a tenth of a radian, :func:`pose_step`:
    0.905, 0.842, 0.902). An extra photo moves the displacement only as far as its outline is its own
    (:func:`outline_share`): a back photo's outline is the front's contour again, and the fight between
    the two fits' poses over it cost the surface IoU (photos 0 and 180, the surface: 0.903 / 0.847 /
    0.901 -> 0.911 / 0.847 / 0.909); it still refines its own pose and gives the colours it sees best.
    """
    views = subject.views
    targets = [photo_targets(view, size) for view in views]
    with torch.no_grad():
        first = renderer.model.forward(**smplx_tensors(views[0].smplx)).vertices[0]
    corrections = torch.zeros(len(views) - 1, 66, requires_grad=True)  # the extra photos' pose corrections
    colors, visibility, visibilities = surface_colours(renderer, views, [view.smplx for view in views])
    corrected = torch.as_tensor(visibility.reliable)[:, None]
    n = renderer.interp.shape[0]
    displacement = torch.zeros(n, requires_grad=True)
    color_change = torch.zeros(n, 3, requires_grad=True)
    neighbours, counts = mesh_neighbours(renderer.faces, n)
    outline_shares = [1.0] + [outline_share(views[0], view) for view in views[1:]]
    pose_group = {"params": [corrections], "lr": POSE_LR}
    optimiser = torch.optim.Adam([{"params": [displacement], "lr": 1e-3}, {"params": [color_change], "lr": 1e-2},
                                  pose_group])
    with CpuShare() as share:
        for step in range(steps):
            share.update()
            if cancelled is not None and cancelled():
                raise InterruptedError("generation cancelled")
            pose_group["lr"] = pose_step(step, steps)
            fitted_colors = (colors + color_change * corrected).clamp(0, 1)
            loss = 1e4 * uniform_laplacian(displacement[:, None], neighbours, counts)
            loss = loss + POSE_PRIOR * corrections.pow(2).sum()
            posed = [first] + [renderer.model.forward(**refined_pose(view.smplx, c)).vertices[0]
                               for view, c in zip(views[1:], corrections)]
            for vertices, (camera, target, mask), own in zip(posed, targets, outline_shares):
                out = renderer.splat(vertices, fitted_colors, camera, gradient_scaled(displacement, own))
                alpha = out.alpha[0, ..., 0]
                image = out.features[0, ..., :3] + (1 - alpha[..., None])
                loss = loss + (image - target).abs().mean() + (alpha - mask).abs().mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if progress is not None:
                photos = "the photo" if len(views) == 1 else f"{len(views)} photos"
                progress((step + 1) / steps, f"re-poser: fitting the surface to {photos} {step + 1}/{steps}")
    poses = [views[0].smplx] + [{k: v[0].detach().numpy().copy() for k, v in refined_pose(view.smplx, c).items()}
                                for view, c in zip(views[1:], corrections)]
    if len(views) > 1:  # the extra photos' colours and outlines in their refined poses
        colors, visibility, visibilities = surface_colours(renderer, views, poses)
    shift = extend_displacement(renderer, displacement.detach().numpy(), visibilities)
    shift = drape_torso_back(renderer, shift, depth_pinned(visibilities), subject.smplx["betas"])
    return SurfaceFit(PhotoSurface(shift.astype(np.float32), colors.numpy()), poses)


def surface_colours(renderer: BodyRenderer, views: list[Subject], poses: list[dict[str, np.ndarray]]
                    ) -> tuple[torch.Tensor, PhotoVisibility, list[PhotoVisibility]]:
    """[V, 3] colours of the body's dense vertices from the photos ``views`` (each in its pose in
    ``poses``: the photo that sees a vertex best gives it, the unseen ones inferred); the photos' combined
    visibility and each one's."""
    visibilities = [photo_visibility(renderer, view.mask, view.camera, pose) for view, pose in zip(views, poses)]
    visibility, best = combine_visibility(visibilities)
    seen = seen_colors([view.balanced_image for view in views], visibility, best)
    colors = infer_colors(renderer, visibility, seen, views[0].smplx["betas"], hair=hair_colour(views))
    return torch.as_tensor(colors), visibility, visibilities


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
