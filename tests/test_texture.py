"""Colours and volume for the side the photo does not see (render.texture), on the fitted body of a
real photo: painted test photos make the right answer known."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

from persona_studio.body.parts import PART_INDEX
from persona_studio.body.skeleton import JOINT_INDEX
from persona_studio.capture.pipeline import fit_photo
from persona_studio.render.body import BodyRenderer, vertex_normals
from persona_studio.render.camera import Camera
from persona_studio.render.texture import (CHIN_BELOW_EYES, DRAPE_MAX, bilinear, color_from_photo, color_from_photos,
                                           depth_pinned, drape_torso_back, extend_displacement, harmonic_fill,
                                           photo_hair_colour, photo_visibility, rest_surface)

from conftest import shared_path


@pytest.fixture(scope="module")
def scene(tmp_path_factory, open_body_model):
    """(subject, renderer at level 1, posed base vertices, rest dense vertices, rest normals)."""
    ws = tmp_path_factory.mktemp("texture")
    subject, _ = fit_photo(shared_path("photos", "moore_anyone-3.png"), ws, model=open_body_model)
    renderer = BodyRenderer(open_body_model, 1)
    with torch.no_grad():
        rest = renderer.dense_vertices(open_body_model.forward(betas=torch.as_tensor(subject.smplx["betas"])[None]).vertices[0])
        posed = open_body_model.forward(**{k: torch.as_tensor(v)[None] for k, v in subject.smplx.items()}).vertices[0]
    return subject, renderer, posed, rest.numpy(), vertex_normals(rest, renderer.faces).numpy()


def _photo_of(scene, paint: np.ndarray, blur: int = 1):
    """A photo of the fitted body painted with ``paint`` [V, 3]: (uint8 image on white, its mask); with
    ``blur`` > 1 the image is box-blurred over that many pixels, like a real photo's soft outline."""
    subject, renderer, posed, _, _ = scene
    photo = renderer.render(posed, torch.as_tensor(paint, dtype=torch.float32), subject.camera)
    rgb = uniform_filter(photo.rgb, size=(blur, blur, 1)) if blur > 1 else photo.rgb
    return (rgb * 255 + 0.5).astype(np.uint8), photo.mask


def test_an_open_jackets_back_is_the_jacket_not_the_shirt(scene):
    subject, renderer, _, rest, normals = scene
    torso = renderer.parts == PART_INDEX["torso"]
    front = normals[:, 2] > 0.3
    shirt = torso & front & (np.abs(rest[:, 0]) < 0.07)  # a white band down the middle of the front
    paint = np.tile([0.15, 0.15, 0.35], (len(rest), 1))  # a dark blue jacket, trousers, sleeves
    paint[shirt] = (0.95, 0.95, 0.95)
    image, mask = _photo_of(scene, paint)
    colors = color_from_photo(renderer, image, mask, subject.camera, subject.smplx)
    back = torso & (normals[:, 2] < -0.5) & (np.abs(rest[:, 0]) < 0.1)
    assert colors[shirt].mean() > 0.8  # the shirt the photo sees stays
    assert np.abs(colors[back] - (0.15, 0.15, 0.35)).max(1).mean() < 0.1, colors[back].mean(0)


def test_a_top_over_a_skirt_over_bare_legs_goes_round_the_back_garment_by_garment(scene):
    """A black top down to the waist, a denim skirt from there to mid-thigh, bare legs below: the back
    the photo cannot see wears each where the front does (the top's back ends at the waist, the skirt's
    back goes round the hips and the thighs), and no stretch of it is a blend of two that neither is."""
    subject, renderer, _, rest, normals = scene
    _, _, joints = rest_surface(renderer, subject.smplx["betas"])
    waist = float(joints[JOINT_INDEX["spine1"], 1])
    hem = float(joints[[JOINT_INDEX["left_hip"], JOINT_INDEX["left_knee"]], 1].mean())
    top, denim, skin = np.array([0.08, 0.08, 0.1]), np.array([0.3, 0.42, 0.62]), np.array([0.88, 0.66, 0.56])
    paint = np.tile(skin, (len(rest), 1))
    torso = renderer.parts == PART_INDEX["torso"]
    arms = np.isin(renderer.parts, [PART_INDEX[f"{s}_{l}"] for s in ("left", "right") for l in ("upper_arm", "lower_arm")])
    paint[(torso & (rest[:, 1] >= waist)) | arms] = top
    paint[(rest[:, 1] < waist) & (rest[:, 1] >= hem)] = denim
    image, mask = _photo_of(scene, paint)
    colors = color_from_photo(renderer, image, mask, subject.camera, subject.smplx)
    back = normals[:, 2] < -0.6
    thighs = np.isin(renderer.parts, [PART_INDEX["left_upper_leg"], PART_INDEX["right_upper_leg"]])
    off = lambda where, colour: np.abs(colors[where] - colour).max(1)  # noqa: E731
    top_back = back & torso & (rest[:, 1] > waist + 0.06)
    skirt_back = back & (torso | thighs) & (rest[:, 1] < waist - 0.06) & (rest[:, 1] > hem + 0.07)
    legs_back = back & thighs & (rest[:, 1] < hem - 0.07)
    for where, colour in ((top_back, top), (skirt_back, denim), (legs_back, skin)):
        assert where.sum() > 50 and np.median(off(where, colour)) < 0.08, (colour, colors[where].mean(0))
    thigh_back = back & thighs
    neither = np.minimum(off(thigh_back, denim), off(thigh_back, skin)) > 0.15
    assert neither.mean() < 0.1, neither.mean()  # only a narrow hem line between the two


def test_the_back_of_the_head_is_the_hair_the_photo_shows_above_the_face(scene):
    """The real photo with its person above the detected face dyed green: that is the hair colour, and
    the back of the head takes it (not the body model's crown, nor the face's skin)."""
    subject, renderer, _, rest, normals = scene
    face = subject.keypoints["face"]
    green = np.array([0.2, 0.7, 0.3])
    image = subject.image.copy()
    above = (np.arange(image.shape[0])[:, None] < face[:, 1].min()) & (subject.mask > 0.5)
    image[above] = (green * 255).round().astype(np.uint8)
    hair = photo_hair_colour(image, subject.mask, face)
    assert hair is not None and np.abs(hair - green).max() < 2 / 255, hair
    visibility = photo_visibility(renderer, subject.mask, subject.camera, subject.smplx)
    colors = color_from_photos(renderer, [image], [visibility], subject.smplx["betas"], hair=hair)
    head = renderer.parts == PART_INDEX["face_neck"]
    eyes = rest[head, 1].max() - 0.12  # about eye level of the rest head (the crown is ~12 cm above)
    back_of_head = head & (normals[:, 2] < -0.5) & (rest[:, 1] > eyes)
    assert np.abs(colors[back_of_head] - green).max(1).mean() < 0.1, colors[back_of_head].mean(0)
    cut = subject.mask * ~above  # a photo cut off at the forehead shows no hair: none is made up
    assert photo_hair_colour(image, cut, face) is None
    assert photo_hair_colour(image, subject.mask, face * [1, 1, 0]) is None  # no confident face


def test_the_back_of_the_neck_is_skin_above_the_collar_not_the_shirt_the_front_shows(scene):
    """A dark jacket, a light shirt collar filling the front of the neck, skin on the face: the back of the
    neck the photo cannot see is the jacket's collar low down and skin above it, never the shirt."""
    subject, renderer, _, rest, normals = scene
    _, _, joints = rest_surface(renderer, subject.smplx["betas"])
    chin = float(joints[JOINT_INDEX["left_eye"], 1]) - CHIN_BELOW_EYES
    head = renderer.parts == PART_INDEX["face_neck"]
    jacket, shirt, skin = np.array([0.15, 0.15, 0.3]), np.array([0.75, 0.8, 0.95]), np.array([0.85, 0.6, 0.5])
    paint = np.tile(jacket, (len(rest), 1))
    paint[head] = skin
    paint[head & (rest[:, 1] < chin) & (normals[:, 2] > 0)] = shirt
    image, mask = _photo_of(scene, paint)
    colors = color_from_photo(renderer, image, mask, subject.camera, subject.smplx)
    back = head & (normals[:, 2] < -0.5)
    collar, nape = back & (rest[:, 1] < chin - 0.03), back & (np.abs(rest[:, 1] - chin) < 0.005)
    assert collar.sum() > 5 and nape.sum() > 5
    assert np.abs(colors[collar] - jacket).max(1).mean() < 0.1, colors[collar].mean(0)
    assert np.abs(colors[nape] - skin).max(1).mean() < 0.1, colors[nape].mean(0)
    neck_back = back & (rest[:, 1] < chin)
    assert np.abs(colors[neck_back] - shirt).max(1).min() > 0.2  # no vertex of it is the shirt


def test_grazing_colours_are_not_taken_from_the_blended_outline(scene):
    """The photo's person is uniformly red on white, its outline blending the two: no vertex of the body
    takes a whitened colour (the light streaks down the sides of the limbs)."""
    subject, renderer, _, rest, _ = scene
    image, mask = _photo_of(scene, np.tile([0.8, 0.1, 0.1], (len(rest), 1)), blur=9)
    colors = color_from_photo(renderer, image, mask, subject.camera, subject.smplx)
    whiteness = colors[:, 1:].max(1)  # red has no green or blue; white-blended colours do
    assert np.quantile(whiteness, 0.99) < 0.2, np.quantile(whiteness, [0.5, 0.9, 0.99])
    seen = photo_visibility(renderer, mask, subject.camera, subject.smplx)
    edge = seen.seen & (seen.facing < 0.3)
    raw = bilinear(image.astype(np.float32) / 255, seen.uvz[edge, 0] - 0.5, seen.uvz[edge, 1] - 0.5)
    assert np.quantile(raw[:, 1:].max(1), 0.99) > 0.25  # the photo itself is whitened there


def test_the_volume_the_photo_shows_goes_round_the_back(scene):
    subject, renderer, _, rest, normals = scene
    _, mask = _photo_of(scene, np.full((len(rest), 3), 0.5))
    visibility = photo_visibility(renderer, mask, subject.camera, subject.smplx)
    head = renderer.parts == PART_INDEX["face_neck"]
    # Hair the photo shows: the seen head and its silhouette pushed out by 4 cm, nothing else.
    constrained = visibility.seen | ((np.abs(visibility.facing) < 0.1) & (visibility.edge_px > 0))
    displacement = np.where(head & constrained, 0.04, 0.0).astype(np.float32)
    extended = extend_displacement(renderer, displacement, [visibility])
    back_of_head = head & ~visibility.seen & (rest[:, 1] > rest[head, 1].max() - 0.15) & (normals[:, 2] < -0.3)
    assert back_of_head.sum() > 50
    assert extended[back_of_head].mean() > 0.03, extended[back_of_head].mean()
    np.testing.assert_array_equal(extended[constrained], displacement[constrained])


def test_what_only_a_back_photo_sees_face_on_takes_the_volume_carried_round_not_the_fit(scene):
    """A back photo shows the back's colours, not how far out it lies: where only it sees the surface,
    the displacement is the first photo's volume carried round, whatever the fit left there; the first
    photo's side and every photo's outline keep theirs."""
    subject, renderer, posed, rest, _ = scene
    paint = torch.full((len(rest), 3), 0.5)
    front = photo_visibility(renderer, renderer.render(posed, paint, subject.camera).mask, subject.camera, subject.smplx)
    back_camera = _back_camera(scene)
    back = photo_visibility(renderer, renderer.render(posed, paint, back_camera).mask, back_camera, subject.smplx)
    kept = front.seen | depth_pinned([front, back])
    only_back = back.seen & ~kept
    assert only_back.sum() > 0.1 * len(rest), only_back.sum()
    fit = np.random.default_rng(0).uniform(-0.03, 0.03, len(rest))  # what texture and smoothing left there
    displacement = np.where(kept, 0.02, fit).astype(np.float32)
    extended = extend_displacement(renderer, displacement, [front, back])
    np.testing.assert_array_equal(extended[kept], displacement[kept])
    np.testing.assert_allclose(extended[only_back], 0.02, atol=1e-4)


def _back_camera(scene) -> Camera:
    """The photo's camera turned half round the fitted body (about its vertical axis through the body's
    centre): a back photo taken from the same distance."""
    subject, _, posed, _, _ = scene
    cam = subject.camera
    centre = posed.numpy().mean(0)
    half_turn = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about the world's vertical (y) axis
    R = cam.R @ half_turn
    return dataclasses.replace(cam, R=R, t=cam.R @ centre + cam.t - R @ centre)


def _hollow_filled(scene, pinned: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drape a bare body with ``pinned`` vertices: (displacement, the share of the lower back's hollow
    the drape fills per vertex down the spine, the spine's vertices)."""
    subject, renderer, _, rest, normals = scene
    draped = drape_torso_back(renderer, np.zeros(len(rest), np.float32), pinned, subject.smplx["betas"])
    torso = renderer.parts == PART_INDEX["torso"]
    spine = torso & ~pinned & (np.abs(rest[:, 0]) < 0.02) & (normals[:, 2] < -0.8)
    order = np.argsort(-rest[spine, 1])
    before = -rest[spine, 2][order]  # how far back the body lies, from the top of the back down
    after = before + draped[spine][order] * -normals[spine, 2][order]
    hollow = np.maximum.accumulate(before) - before
    assert hollow.max() > 0.015, hollow.max()  # the body does have a hollow here, which the test needs
    deepest = hollow > 0.5 * hollow.max()
    return draped, (after - before)[deepest] / hollow[deepest], spine  # 1: hangs straight down from above


def test_the_back_of_a_garment_hangs_from_the_shoulder_blades(scene):
    """Down the middle of the back the clothed surface no longer follows the hollow of the lower back: it
    stands off at least as far as the shoulder blades above it (within the smoothing); nothing on the
    photo's outline, nothing facing the photo, nothing off the torso moves."""
    subject, renderer, _, rest, normals = scene
    _, mask = _photo_of(scene, np.full((len(rest), 3), 0.5))
    pinned = depth_pinned([photo_visibility(renderer, mask, subject.camera, subject.smplx)])
    draped, filled, _ = _hollow_filled(scene, pinned)
    assert np.median(filled) > 0.8 and filled.mean() > 0.6, np.quantile(filled, [0.1, 0.5])
    torso = renderer.parts == PART_INDEX["torso"]
    assert np.all(draped[pinned | ~torso | (normals[:, 2] > -0.2)] == 0)
    assert draped.min() >= 0 and draped.max() <= DRAPE_MAX


def test_a_back_photo_shows_the_back_face_on_and_the_garment_still_hangs(scene):
    """A back photo sees the back squarely (its colours), not how far the cloth stands off it: the
    drape over the lower back is the same with it as with the front photo alone."""
    subject, renderer, posed, rest, _ = scene
    paint = np.full((len(rest), 3), 0.5)
    front = photo_visibility(renderer, _photo_of(scene, paint)[1], subject.camera, subject.smplx)
    back_camera = _back_camera(scene)
    back_mask = renderer.render(posed, torch.as_tensor(paint, dtype=torch.float32), back_camera).mask
    back = photo_visibility(renderer, back_mask, back_camera, subject.smplx)
    draped_front, _, spine = _hollow_filled(scene, depth_pinned([front]))
    # The back photo does see the middle of the back (its top, rounding towards the neck, faces up and
    # is seen edge-on from the photo's height).
    below_top = spine & (rest[:, 1] < np.quantile(rest[spine, 1], 0.8))
    assert back.seen[below_top].mean() > 0.9
    draped_both, filled, _ = _hollow_filled(scene, depth_pinned([front, back]))
    assert np.median(filled) > 0.8, np.quantile(filled, [0.1, 0.5])
    np.testing.assert_allclose(draped_both[spine], draped_front[spine], atol=0.005)


def test_harmonic_fill_keeps_fixed_values_and_solves_for_the_rest():
    # A long strip of triangles (1000 vertices, 500 edges end to end): the ends fixed at 0 and 1, the
    # middle settles on the straight line between them, as far from either end as it is. A second strip
    # with nothing fixed keeps its values.
    def strip(n, first):
        top, bottom = np.arange(first, first + n, 2), np.arange(first + 1, first + n, 2)
        upper, lower = np.stack([top[:-1], bottom[:-1], top[1:]], 1), np.stack([bottom[:-1], bottom[1:], top[1:]], 1)
        return np.concatenate([upper, lower])
    n = 1000
    faces = np.concatenate([strip(n, 0), strip(10, n)])
    values = np.zeros((n + 10, 2))
    values[n - 2:n] = 1.0
    values[n:] = 0.3
    fixed = np.zeros(n + 10, bool)
    fixed[:2] = fixed[n - 2:n] = True
    out = harmonic_fill(values, fixed, faces)
    np.testing.assert_array_equal(out[fixed], values[fixed])
    line = out[:n:2, 0]
    assert np.all(np.diff(line) > 0)
    np.testing.assert_allclose(line, np.linspace(0, 1, len(line)), atol=0.01)
    np.testing.assert_array_equal(out[n:], values[n:])
