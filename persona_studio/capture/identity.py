"""Whether more photos show the person of the first photo: body proportions and clothing colours.

Each extra photo is fitted jointly with the first, with ONE body shape. A photo of someone else (or of
the same person in other clothes) would drag that shape and the avatar's colours two ways, so it is
refused with a message a person can act on:

- proportions: each photo fitted alone, its body's leg length and shoulder width against its height
  must be close to the first's (over views of one scanned person from the front, side and back they
  stayed within 0.5 and 1.4 points of the height; other people's legs were 1.4 to 2.1 points off).
  Shoulders are compared only between photos seen from the same side: a detector trained on people
  facing it places a back view's shoulders less surely, and fitted with the set's own near-orthographic
  camera the scanned man's back view gave shoulders 2.9 points wider than his front view;
- clothes: the garments that look much the same from every side (sleeves: upper and lower arms;
  trouser legs: upper and lower legs; shoes) must have about the same colour in both photos, in
  CIELAB (one person's front and back: at most 11 apart; other people: 19 to 55 in some garment).

Neither can tell twins in the same clothes apart; together they refuse the photos that would spoil
an avatar.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from persona_studio.body.model import BodyModel, smplx_tensors
from persona_studio.body.parts import PART_INDEX
from persona_studio.body.skeleton import JOINT_INDEX as J
from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera
from persona_studio.render.image import linear_to_lab, resize_image, srgb_to_linear

GARMENTS = {"sleeves": ("upper_arm", "lower_arm"), "trouser legs": ("upper_leg", "lower_leg"), "shoes": ("foot",)}
GARMENT_PARTS = {name: tuple(PART_INDEX[f"{side}_{limb}"] for side in ("left", "right") for limb in limbs)
                 for name, limbs in GARMENTS.items()}
COMPARED_PARTS = tuple(part for parts in GARMENT_PARTS.values() for part in parts)
COLOUR_SIDE = 192  # pixels of the longer side the parts are rendered at for the comparison
MIN_PART_PIXELS = 30  # a part this small in either photo is not compared
MAX_GARMENT_DELTA_E = 15.0  # CIE76 difference of a garment's colour (the median over its parts)
MAX_PROPORTION_POINTS = 1.5  # leg length or shoulder width, percentage points of the height


def part_colours(renderer: BodyRenderer, image: np.ndarray, mask: np.ndarray, camera: Camera,
                 smplx: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """{part: median linear RGB [3]} of the photo's person pixels that the fitted body's parts in
    :data:`COMPARED_PARTS` cover (``image`` [H, W, 3] uint8, ``mask`` [H, W])."""
    small = camera.with_longer_side(COLOUR_SIDE)
    size = (small.width, small.height)
    with torch.no_grad():
        posed = renderer.model.forward(**smplx_tensors(smplx)).vertices[0]
        parts = renderer.render(posed, torch.ones(renderer.interp.shape[0], 3), small).parts
    linear = srgb_to_linear(np.clip(resize_image(image.astype(np.float32) / 255, size), 0, 1))
    person = resize_image(mask.astype(np.float32), size) > 0.5
    out = {}
    for part in COMPARED_PARTS:
        pixels = (parts == part) & person
        if pixels.sum() >= MIN_PART_PIXELS:
            out[part] = np.median(linear[pixels], 0)
    return out


def colour_gain(first: dict[int, np.ndarray], other: dict[int, np.ndarray]) -> np.ndarray:
    """[3] per-channel gain (linear RGB) that brings ``other``'s garment colours to ``first``'s: the
    median over the parts both show of their ratio, within 0.5..2 (1 when fewer than two are shared).
    Photos taken apart differ in exposure and white balance (the multi-view set's back view is warmer
    than its front by about a fifth in red against blue); without it the avatar's back would wear
    another colour than its front."""
    shared = sorted(set(first) & set(other))
    if len(shared) < 2:
        return np.ones(3)
    ratios = np.stack([first[p] / np.maximum(other[p], 1e-4) for p in shared])
    return np.clip(np.median(ratios, 0), 0.5, 2.0)


def garment_differences(first: dict[int, np.ndarray], other: dict[int, np.ndarray]) -> dict[str, float]:
    """{garment: median CIE76 difference over its parts both photos show} of two :func:`part_colours`
    (garments not shown by both are left out)."""
    out = {}
    for name, parts in GARMENT_PARTS.items():
        shared = [p for p in parts if p in first and p in other]
        if shared:
            out[name] = float(np.median([np.linalg.norm(linear_to_lab(first[p]) - linear_to_lab(other[p]))
                                         for p in shared]))
    return out


def body_proportions(model: BodyModel, betas: np.ndarray) -> dict[str, float]:
    """{leg length, shoulder width}: percent of the body's height, of shape ``betas`` in the rest pose."""
    with torch.no_grad():
        out = model.forward(betas=torch.as_tensor(betas, dtype=torch.float32)[None])
    joints, vertices = out.joints[0].numpy(), out.vertices[0].numpy()
    height = float(vertices[:, 1].max() - vertices[:, 1].min())
    length = lambda a, b: float(np.linalg.norm(joints[J[a]] - joints[J[b]]))  # noqa: E731
    legs = sum(length(a, b) + length(b, c) for a, b, c in
               (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))) / 2
    return {"leg length": 100 * legs / height,
            "shoulder width": 100 * length("left_shoulder", "right_shoulder") / height}


def seen_from_behind(view) -> bool:
    """Whether the fitted body of ``view`` (a Subject view) turns its back to the camera."""
    forward = Rotation.from_rotvec(view.smplx["global_orient"]).apply([0.0, 0.0, 1.0])  # the body's front, world
    return float((view.camera.R @ forward)[2]) > 0  # pointing away from the camera


def compare_photos(model: BodyModel, first, other, first_alone: np.ndarray, other_alone: np.ndarray
                   ) -> tuple[str | None, np.ndarray]:
    """(why photo ``other`` (a Subject view, fitted jointly with ``first``) cannot be another photo of
    ``first``'s person, or None when it can; the :func:`colour_gain` that matches its colours to
    ``first``'s). ``first_alone``/``other_alone`` are the betas each photo gives fitted on its own."""
    renderer = BodyRenderer(model, 1)
    colours = [part_colours(renderer, v.image, v.mask, v.camera, v.smplx) for v in (first, other)]
    gain = colour_gain(*colours)
    a, b = body_proportions(model, first_alone), body_proportions(model, other_alone)
    if seen_from_behind(first) != seen_from_behind(other):
        del a["shoulder width"]
    for name in a:
        if abs(a[name] - b[name]) > MAX_PROPORTION_POINTS:
            return (f"{other.photo_name}: the body's {name} is {b[name]:.1f} % of its height, against "
                    f"{a[name]:.1f} % in {first.photo_name}: is it another person? Use photos of one person only"), gain
    for name, difference in garment_differences(*colours).items():
        if difference > MAX_GARMENT_DELTA_E:
            return (f"{other.photo_name}: the {name} differ in colour from those in {first.photo_name} (CIELAB "
                    f"difference {difference:.0f}, more than {MAX_GARMENT_DELTA_E:.0f}): use photos of the same "
                    "person in the same clothes"), gain
    return None, gain
