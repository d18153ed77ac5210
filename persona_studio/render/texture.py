"""The body's colours (and clothed volume) from one photo: what the photo sees, and what it must infer.

The photo is trusted only where it sees the surface squarely: at grazing angles and next to the
silhouette its pixels blend the person with the background (light streaks down the sides of the limbs
when they are taken as colours). Those vertices and everything the photo does not see are inferred:

- the back of a limb is its front seen through the limb's front/back plane, the garments where they
  are (a skirt's hem or a rolled sleeve goes round the limb) with part of their detail (a sleeve or a
  trouser leg looks much the same all round);
- the back of the torso takes, at each height, the colour that wraps round its sides there (an open
  jacket's back is the jacket, not the shirt the front shows between its lapels; a top's back ends
  where its sides end, over a skirt's or trousers' back);
- the back and sides of the head take the colour of the hair: the person's pixels above the outline
  of the face the detector found (:func:`hair_colour`: hair, a bald crown's skin or a hat), else what
  the photo sees on the body's crown; the back of the neck is the face's skin above a collar of the
  torso's garment (the front of the neck shows a shirt's collar or a tie, which the back does not);
- between what is seen and what is inferred, the colours are diffused over the mesh (a harmonic fill),
  so the sides blend from the seen front to the inferred back without seams.

The clothed volume the re-poser fits along the normals is constrained by the photo's silhouette only on
the seen side; :func:`extend_displacement` carries it round the back the same way (hair and a loose
jacket keep their volume from the side and the back), and :func:`drape_torso_back` hangs the back of the
torso from the shoulder blades, as cloth falls over the hollow of the lower back, wherever no photo's
outline pins its depth (:func:`depth_pinned`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import factorized
from scipy.spatial import cKDTree

from persona_studio.body.model import smplx_tensors
from persona_studio.body.parts import PART_INDEX
from persona_studio.body.skeleton import JOINT_INDEX
from persona_studio.render.body import BodyRenderer, facing_cosines, vertex_normals
from persona_studio.render.camera import Camera
from persona_studio.render.image import colour_difference

GRAZING_COS = 0.1  # a surface turned further from the photo than this (~84 degrees) is not seen by it
SQUARE_COS = 0.4  # the photo's colour is trusted where the surface faces it within ~66 degrees
EDGE_SHARE = 0.006  # ... and at least this share of the person's height inside the mask's edge
FACING_AWAY_COS = 0.2  # vertices turned further away than this take the inferred back colour
MIRROR_NEIGHBOURS = 16  # trusted vertices averaged round a limb vertex's mirror image (2-3 cm at level 1)
REGION_NEIGHBOURS = 64  # ... and round it for the garment there (4-6 cm)
MIRROR_DETAIL = 0.5  # share of the mirrored detail (relative to the garment) kept
# CIE76 differences from a part's dominant colour over which a region's colour turns from light and shade
# on one garment (a dark suit's lit and shaded sides: 5-7) to another garment (a black top over a grey
# denim skirt: 30; a skirt over bare legs: 40-50). Colour alone cannot tell a deep shadow from a garment
# (under a top's ruffle: 24): such a band goes round the back too.
GARMENT_CHANGE = (10.0, 20.0)
TORSO_BAND = 0.04  # metres of rest height over which the torso's sides give the colour of its back
MIN_SIDE_SAMPLES = 8  # side vertices a torso band needs for a colour of its own
CHIN_BELOW_EYES = 0.12  # metres from the eyes down to the chin, where the neck begins
CROWN_ABOVE_EYES = 0.07  # metres above the eyes where a head is hair (or bald skin), not forehead
COLLAR_BELOW_CHIN = 0.015  # metres: the back of a collar rises to this far below the chin's level
COLLAR_BLEND = 0.02  # metres over which the back of the neck turns from the collar's garment to skin
# MediaPipe's face-mesh outline (FACEMESH_FACE_OVAL), from the top of the forehead round by the right.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
HAIR_BAND = 0.6  # the hair is looked for up to this share of the face's height above the face's top
HAIR_MIN_PIXELS = 30  # fewer person pixels there (a photo cut off at the forehead): no hair colour
DRAPE_STRIP = 0.02  # metres: width of the vertical strips of the rest body a garment's back hangs in
DRAPE_MAX = 0.12  # metres: the furthest a hanging garment stands off the body
DRAPE_SMOOTHING = 10  # neighbour-averaging passes that blend the hung strips into each other
LIMB_PARTS = tuple(PART_INDEX[f"{side}_{limb}"] for side in ("left", "right")
                   for limb in ("upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot"))
# The limbs garments cover in parts (sleeves, skirts, shorts, trouser legs); a hand or a foot is one
# thing all round (skin, a glove, a shoe) whose mirrored front is a palm in a pocket or a shoe's laces.
GARMENT_LIMBS = tuple(PART_INDEX[f"{side}_{limb}"] for side in ("left", "right")
                      for limb in ("upper_arm", "lower_arm", "upper_leg", "lower_leg"))


@dataclass
class PhotoVisibility:
    """How the photo sees each dense vertex of a posed body."""

    seen: np.ndarray  # [V] bool: in front of the rendered depth, facing the camera, inside the person mask
    facing: np.ndarray  # [V] cosine between the vertex normal and the direction to the camera (< 0: away)
    edge_px: np.ndarray  # [V] distance in pixels from the projection to the mask's edge (0 outside)
    uvz: np.ndarray  # [V, 3] projection (u, v, depth)
    person_px: float | np.ndarray  # the person's height in the photo, pixels (per vertex: its photo's)

    @property
    def reliable(self) -> np.ndarray:
        """[V] bool: seen squarely and away from the silhouette, where a photo colour is trustworthy."""
        return self.seen & (self.facing >= SQUARE_COS) & (self.edge_px >= np.maximum(1.5, EDGE_SHARE * self.person_px))


def photo_visibility(renderer: BodyRenderer, mask: np.ndarray, camera: Camera, smplx: dict[str, np.ndarray],
                     displacement: np.ndarray | None = None) -> PhotoVisibility:
    """How the photo (person ``mask`` [H, W], ``camera``) sees the dense vertices of the body in pose
    ``smplx``, displaced along its normals by ``displacement`` [V] when given."""
    with torch.no_grad():
        posed = renderer.model.forward(**smplx_tensors(smplx)).vertices[0]
        shift = None if displacement is None else torch.as_tensor(displacement, dtype=torch.float32)
        dense = renderer.surface(posed, shift)
        view = renderer.render(posed, torch.ones(dense.shape[0], 3), camera, displacement=shift)
        facing = facing_cosines(dense, vertex_normals(dense, renderer.faces), camera.position).numpy()
    uvz = camera.project(dense.numpy())
    h, w = view.depth.shape
    px = np.clip(uvz[:, 0].astype(int), 0, w - 1)
    py = np.clip(uvz[:, 1].astype(int), 0, h - 1)
    inside = (uvz[:, 0] >= 0) & (uvz[:, 0] < w) & (uvz[:, 1] >= 0) & (uvz[:, 1] < h)
    person = mask > 0.5
    seen = inside & (uvz[:, 2] <= view.depth[py, px] + 0.015) & (facing > GRAZING_COS) & person[py, px]
    edge_px = np.where(inside, distance_transform_edt(person)[py, px], 0.0)
    rows = np.flatnonzero(person.any(1))
    person_px = float(rows[-1] - rows[0] + 1) if len(rows) else float(h)
    return PhotoVisibility(seen, facing, edge_px, uvz, person_px)


def combine_visibility(visibilities: list[PhotoVisibility]) -> tuple[PhotoVisibility, np.ndarray]:
    """Several photos' visibilities of the same dense vertices as one: each vertex as the photo that sees
    it best (squarely and away from its silhouette first, then seen at all, then turned most towards
    it). Returns that visibility (seen: by any photo) and [V] the index of each vertex's photo."""
    if len(visibilities) == 1:
        return visibilities[0], np.zeros(len(visibilities[0].seen), np.int64)
    facing = np.stack([v.facing for v in visibilities])  # [P, V]
    seen = np.stack([v.seen for v in visibilities])
    reliable = np.stack([v.reliable for v in visibilities])
    best = (facing + 2.0 * seen + 4.0 * reliable).argmax(0)  # [V]
    rows = np.arange(len(best))
    edge_px = np.stack([v.edge_px for v in visibilities])[best, rows]
    uvz = np.stack([v.uvz for v in visibilities])[best, rows]
    person_px = np.array([v.person_px for v in visibilities], np.float64)[best]
    return PhotoVisibility(seen.any(0), facing[best, rows], edge_px, uvz, person_px), best


def mesh_adjacency(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """[V, V] sparse symmetric 0/1 matrix of the mesh's edges (an edge shared by two faces counted once)."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    directed = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices, num_vertices))
    adjacency = (directed + directed.T).tocsr()
    adjacency.data[:] = 1.0
    return adjacency


def mesh_mean_operator(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """[V, V] sparse matrix averaging each vertex's mesh neighbours."""
    adjacency = mesh_adjacency(faces, num_vertices)
    degree = np.asarray(adjacency.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(degree, 1)) @ adjacency


def harmonic_fill(values: np.ndarray, fixed: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, C] values kept where ``fixed`` [V], every other vertex the mean of its mesh neighbours: the
    Dirichlet problem of the graph Laplacian, solved exactly (a sparse factorisation; a dense body's 200k
    vertices take 0.3 s). Iterating the neighbour mean instead spreads a value only about the
    square root of the iteration count in edges, so the middle of a large unseen region would keep
    whatever it started with. Mesh components with no fixed vertex (the eyes) keep their values."""
    out = values.astype(np.float64).copy()
    adjacency = mesh_adjacency(faces, len(values))
    _, component = connected_components(adjacency, directed=False)
    anchored = np.bincount(component[fixed], minlength=component.max() + 1) > 0
    free, held = np.flatnonzero(~fixed & anchored[component]), np.flatnonzero(fixed)
    if len(free) == 0 or len(held) == 0:
        return out.astype(values.dtype)
    laplacian = (sp.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency).tocsr()
    rows = laplacian[free]
    solve = factorized(rows[:, free].tocsc())
    rhs = -(rows[:, held] @ out[held])  # [F, C]
    out[free] = np.stack([solve(rhs[:, c]) for c in range(out.shape[1])], 1)
    return out.astype(values.dtype)


def relax(values: np.ndarray, fixed: np.ndarray, mean: sp.csr_matrix, iterations: int) -> np.ndarray:
    """[V, C] values kept where ``fixed`` [V], the rest moved ``iterations`` times to their neighbours'
    mean (``mean``: :func:`mesh_mean_operator`): a local smoothing that blends over a few edges."""
    out = values.astype(np.float64).copy()
    free = ~fixed
    for _ in range(iterations):
        out[free] = (mean @ out)[free]
    return out.astype(values.dtype)


def _part_planes_mirror(rest: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """[V, 3] rest vertices mirrored through their body part's front/back plane (z = the part's mean)."""
    mirrored = rest.copy()
    for part in np.unique(parts):
        members = parts == part
        mirrored[members, 2] = 2 * rest[members, 2].mean() - rest[members, 2]
    return mirrored


def _median(colors: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.median(colors, 0) if len(colors) else fallback


def photo_hair_colour(image: np.ndarray, mask: np.ndarray, face: np.ndarray | None) -> np.ndarray | None:
    """[3] in [0, 1]: the median colour of the person above the outline of the face (``face`` [478, 3]:
    MediaPipe's face landmarks in pixels and their confidence), over the width of the head, two pixels in
    from the mask's edge; None without a confident face or with too little above it.

    The body model's crown does not follow the person's hairline (nor a lowered head), so the colour of
    the head's unseen back is taken from the photo's hair itself."""
    if face is None or len(face) <= max(FACE_OVAL) or float(np.min(face[list(FACE_OVAL), 2])) < 0.5:
        return None
    oval = face[list(FACE_OVAL), :2]
    top, height = float(oval[:, 1].min()), float(np.ptp(oval[:, 1]))
    half_width = float(np.ptp(oval[:, 0])) / 2 + 0.25 * height  # the face is narrower than the head
    centre = float(oval[:, 0].mean())
    rows = slice(max(int(top - HAIR_BAND * height), 0), max(int(top), 0))
    cols = slice(max(int(centre - half_width), 0), max(int(centre + half_width) + 1, 0))
    person = binary_erosion(mask > 0.5, iterations=2)[rows, cols]
    if person.sum() < HAIR_MIN_PIXELS:
        return None
    return np.median(image[rows, cols][person].astype(np.float32) / 255.0, axis=0)


def hair_colour(views) -> np.ndarray | None:
    """The hair colour (:func:`photo_hair_colour`) of the first of ``views`` (objects with
    ``balanced_image``, ``mask`` and ``keypoints["face"]``: a Subject's views) that shows it."""
    for view in views:
        colour = photo_hair_colour(view.balanced_image, view.mask, view.keypoints.get("face"))
        if colour is not None:
            return colour
    return None


def garment_colour(regional: np.ndarray, dominant: np.ndarray) -> np.ndarray:
    """[K, 3] a region's garment colour: ``regional`` [K, 3] where it differs from the part's ``dominant``
    [3] as another garment does, ``dominant`` where it differs only as shading does, a blend between
    (:data:`GARMENT_CHANGE`)."""
    low, high = GARMENT_CHANGE
    other = np.clip((colour_difference(regional, dominant) - low) / (high - low), 0, 1)[:, None]
    return dominant + other * (regional - dominant)


def torso_side_profile(colors: np.ndarray, seen_torso: np.ndarray, rest: np.ndarray, rest_normals: np.ndarray,
                       fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colour that wraps round the torso's sides, by rest height: ([B] heights, [B, 3] colours), each
    the median over the ``seen_torso`` [V] vertices turned most sideways (the 15 % with the largest
    |normal x|) within ``TORSO_BAND`` of its height, where it is another garment than all the sides'
    median (:func:`garment_colour`); bands with too few of them are left out (at least one entry: all
    the sides' median, or ``fallback`` [3] when no side is seen). Read it with :func:`profile_at`.

    One colour for the whole back would put a top's colour over a skirt's back (or trousers' over a long
    coat's); by height the back changes garment where the sides do."""
    if not seen_torso.any():
        return np.zeros(1), fallback[None]
    side_score = np.abs(rest_normals[:, 0])
    side = seen_torso & (side_score >= np.quantile(side_score[seen_torso], 0.85))
    y, side_colours = rest[side, 1], colors[side]
    centres = np.arange(y.min(), y.max() + TORSO_BAND / 2, TORSO_BAND / 2)
    bands = [np.abs(y - c) <= TORSO_BAND / 2 for c in centres]
    known = [(c, np.median(side_colours[b], 0)) for c, b in zip(centres, bands) if b.sum() >= MIN_SIDE_SAMPLES]
    dominant = _median(side_colours, fallback)
    if not known:
        return np.zeros(1), dominant[None]
    return np.array([c for c, _ in known]), garment_colour(np.stack([v for _, v in known]), dominant)


def profile_at(profile: tuple[np.ndarray, np.ndarray], heights: np.ndarray) -> np.ndarray:
    """[K] heights -> [K, 3] colours of a :func:`torso_side_profile`, linear between its bands and held
    beyond its ends."""
    at, values = profile
    return np.stack([np.interp(heights, at, values[:, c]) for c in range(values.shape[1])], -1)


def inferred_back_colors(colors: np.ndarray, trusted: np.ndarray, rest: np.ndarray, rest_normals: np.ndarray,
                         parts: np.ndarray, head_levels: tuple[float, float],
                         crown_seen: np.ndarray | None = None, hair: np.ndarray | None = None) -> np.ndarray:
    """[V, 3] the colour each vertex would have on the side the photo does not see, from the ``trusted``
    [V] vertices' ``colors`` [V, 3] (see the module docstring). ``rest``/``rest_normals`` [V, 3] are the
    template's; ``head_levels`` (chin, eyes) are the rest heights separating neck, face and crown;
    ``crown_seen`` [V] the vertices whose colour may sample the hair (a frontal photo sees the top of the
    head only obliquely; default ``trusted``), unless the photo's ``hair`` colour [3] is given."""
    overall = _median(colors[trusted], np.full(3, 0.5))
    out = np.empty_like(colors)
    # Limbs: the mirror image through the part's front/back plane: the part's dominant colour, or the
    # garment round the mirror image where that is another one (:func:`garment_colour`), carrying half
    # of the detail (averaged over its neighbourhood: no copied highlight or cuff). The dominant colour
    # alone would blend the garments of a limb two cover (a skirt over bare thighs) into neither's.
    limb = np.isin(parts, LIMB_PARTS)
    mirrored = _part_planes_mirror(rest, parts)
    for part in LIMB_PARTS:
        members, sources = parts == part, (parts == part) & trusted
        if sources.sum() < MIRROR_NEIGHBOURS:
            sources = limb & trusted if (limb & trusted).sum() >= MIRROR_NEIGHBOURS else trusted
        if sources.sum() < MIRROR_NEIGHBOURS:
            out[members] = overall
            continue
        k = min(REGION_NEIGHBOURS, int(sources.sum()))
        _, nearest = cKDTree(rest[sources]).query(mirrored[members], k=k)  # nearest first
        around = colors[sources][nearest]  # [M, k, 3]
        dominant = np.median(colors[sources], 0)
        garment = garment_colour(around.mean(1), dominant) if part in GARMENT_LIMBS else dominant
        out[members] = garment + MIRROR_DETAIL * (around[:, :MIRROR_NEIGHBOURS].mean(1) - garment)
    torso = parts == PART_INDEX["torso"]
    sides = torso_side_profile(colors, trusted & torso, rest, rest_normals, overall)
    out[torso] = profile_at(sides, rest[torso, 1])
    # Head: crown and back from the hair the photo sees above the forehead (skin when bald); the nape
    # is the face's skin above the collar, the torso's garment below; blends between them.
    head = parts == PART_INDEX["face_neck"]
    chin_y, eye_y = head_levels
    crown = head & (rest[:, 1] > eye_y + CROWN_ABOVE_EYES) & (trusted if crown_seen is None else crown_seen)
    crown_colour = hair if hair is not None else _median(colors[crown], _median(colors[head & trusted], overall))
    neck = head & (rest[:, 1] < chin_y)
    face = head & trusted & (rest[:, 1] > chin_y) & (rest[:, 1] < eye_y)
    skin = _median(colors[face], _median(colors[neck & trusted], crown_colour))
    nape = np.clip((rest[:, 1] - (chin_y - COLLAR_BELOW_CHIN)) / COLLAR_BLEND + 0.5, 0, 1)[:, None]  # garment -> skin
    neck_colour = nape * skin + (1 - nape) * profile_at(sides, np.array([chin_y]))  # the collar: the torso's top
    blend = np.clip((rest[:, 1] - chin_y) / 0.06, 0, 1)[:, None]  # nape -> crown over 6 cm
    out[head] = (blend * crown_colour + (1 - blend) * neck_colour)[head]
    return out


def rest_surface(renderer: BodyRenderer, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body of shape ``betas`` in its rest pose (facing +z, y up): [V, 3] dense vertices, [V, 3] their
    normals and [J, 3] joints."""
    with torch.no_grad():
        out = renderer.model.forward(betas=torch.as_tensor(betas, dtype=torch.float32)[None])
        rest = renderer.dense_vertices(out.vertices[0])
        return rest.numpy(), vertex_normals(rest, renderer.faces).numpy(), out.joints[0].numpy()


def infer_colors(renderer: BodyRenderer, visibility: PhotoVisibility, photo_colors: np.ndarray,
                 betas: np.ndarray, trusted: np.ndarray | None = None, hair: np.ndarray | None = None) -> np.ndarray:
    """[V, 3] colours: ``photo_colors`` [V, 3] where the photo is trusted (default: seen squarely), the
    inferred back where the body faces away from the photo (its head from ``hair`` [3] when given),
    harmonic blends in between."""
    trusted = visibility.reliable if trusted is None else trusted
    if not trusted.any():
        return np.full_like(photo_colors, 0.5)
    rest, rest_normals, joints = rest_surface(renderer, betas)
    eye_y = float(joints[JOINT_INDEX["left_eye"], 1])
    levels = (eye_y - CHIN_BELOW_EYES, eye_y)
    inside = visibility.seen & (visibility.edge_px >= np.maximum(1.5, EDGE_SHARE * visibility.person_px))
    back = inferred_back_colors(photo_colors, trusted, rest, rest_normals, renderer.parts, levels,
                                crown_seen=inside, hair=hair)
    # A head's sides are hair or ears, never the face stretched round: there the inferred colour holds
    # wherever the photo is not trusted; elsewhere from where the body turns away.
    head = renderer.parts == PART_INDEX["face_neck"]
    away = np.where(head, ~trusted, ~visibility.seen & (visibility.facing < -FACING_AWAY_COS))
    values = np.where(trusted[:, None], photo_colors, back)
    fixed = trusted | away
    return np.clip(harmonic_fill(values, fixed, renderer.faces.numpy()), 0, 1).astype(np.float32)


def color_from_photo(renderer: BodyRenderer, image: np.ndarray, mask: np.ndarray, camera: Camera,
                     smplx: dict[str, np.ndarray], displacement: np.ndarray | None = None,
                     visibility: PhotoVisibility | None = None) -> np.ndarray:
    """[V, 3] colours of the dense template vertices from the photo ``image`` [H, W, 3] uint8: taken
    where the photo sees the surface squarely, inferred elsewhere (:func:`infer_colors`)."""
    visibility = visibility or photo_visibility(renderer, mask, camera, smplx, displacement)
    return color_from_photos(renderer, [image], [visibility], smplx["betas"])


def seen_colors(images: list[np.ndarray], visibility: PhotoVisibility, best: np.ndarray) -> np.ndarray:
    """[V, 3] each vertex's colour in its photo (``images`` [H, W, 3] uint8; ``visibility`` and ``best``
    from :func:`combine_visibility`)."""
    out = np.zeros((len(best), 3), np.float32)
    for i, image in enumerate(images):
        rows = best == i
        out[rows] = bilinear(image.astype(np.float32) / 255.0, visibility.uvz[rows, 0] - 0.5, visibility.uvz[rows, 1] - 0.5)
    return out


def color_from_photos(renderer: BodyRenderer, images: list[np.ndarray], visibilities: list[PhotoVisibility],
                      betas: np.ndarray, hair: np.ndarray | None = None) -> np.ndarray:
    """[V, 3] colours from photos of one person (``images`` [H, W, 3] uint8 and how each sees the body):
    each vertex from the photo that sees it best, inferred where none sees it squarely."""
    visibility, best = combine_visibility(visibilities)
    return infer_colors(renderer, visibility, seen_colors(images, visibility, best), betas, hair=hair)


def color_from_views(renderer: BodyRenderer, views) -> np.ndarray:
    """[V, 3] colours from photos of one person, each given as an object with ``balanced_image`` [H, W, 3]
    uint8 (its colours matched to the first's), ``mask``, ``camera`` and ``smplx`` (a Subject's
    ``views``): :func:`color_from_photos`."""
    visibilities = [photo_visibility(renderer, view.mask, view.camera, view.smplx) for view in views]
    return color_from_photos(renderer, [view.balanced_image for view in views], visibilities, views[0].smplx["betas"],
                             hair=hair_colour(views))


def depth_pinned(visibilities: list[PhotoVisibility]) -> np.ndarray:
    """[V] bool: the vertices whose depth some photo pins down, those on its person's outline (at a grazing
    angle to it, inside its mask). A photo that sees a surface face-on gives its colour, not how far out
    it lies: a back photo sees the back of a jacket squarely and says nothing of how far it hangs."""
    pinned = np.zeros(len(visibilities[0].facing), bool)
    for v in visibilities:
        pinned |= (np.abs(v.facing) < GRAZING_COS) & (v.edge_px > 0)
    return pinned


def extend_displacement(renderer: BodyRenderer, displacement: np.ndarray, visibilities: list[PhotoVisibility]
                        ) -> np.ndarray:
    """[V] displacement kept where the photos constrain it (the first photo's seen side, every photo's
    outline: :func:`depth_pinned`) and carried round the rest by a harmonic fill, so hair and loose clothes
    keep their volume all round. What only an extra photo sees face-on (a back photo's back) is filled too:
    a photo shows such a surface's colour, not how far out it lies, and the fit there moved it along the
    normals only as far as texture and smoothing pulled it (photos 0 and 180 of benchmarks/novel_views.py:
    the back of the thighs stood 6 mm further out, and the calves' 2-3 mm further in, than the first
    photo's volume carried round; filled instead, the surface's IoU went from 0.901 / 0.838 / 0.899 to
    0.903 / 0.847 / 0.901, front / sides / back)."""
    fixed = visibilities[0].seen | depth_pinned(visibilities)
    return harmonic_fill(displacement[:, None], fixed, renderer.faces.numpy())[:, 0]


def drape_torso_back(renderer: BodyRenderer, displacement: np.ndarray, pinned: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """[V] displacement with the back of the torso whose depth no photo pins (``pinned`` [V]:
    :func:`depth_pinned`) hung like cloth: in each vertical strip of the rest body the clothed back goes
    no further in than the furthest-back point above it. A jacket or a shirt falls from the shoulder
    blades over the hollow of the lower back instead of following it, which neither the silhouette of a
    front photo (it sees the body's sides only) nor a back photo (it sees the back face-on) can show."""
    rest, rest_normals, _ = rest_surface(renderer, betas)
    away = np.clip((-rest_normals[:, 2] - 0.2) / 0.4, 0, 1)  # 0 at the sides, 1 facing straight back
    hung = (renderer.parts == PART_INDEX["torso"]) & ~pinned & (away > 0)
    depth = -(rest[:, 2] + displacement * rest_normals[:, 2])  # how far back the clothed surface lies
    strip = np.floor(rest[:, 0] / DRAPE_STRIP).astype(np.int64)
    hanging = depth.copy()
    for s in np.unique(strip[hung]):
        members = np.flatnonzero(hung & (strip == s))
        top_down = members[np.argsort(-rest[members, 1])]
        hanging[top_down] = np.maximum.accumulate(depth[top_down])
    extra = np.clip((hanging - depth) / np.maximum(-rest_normals[:, 2], 0.2), 0, DRAPE_MAX) * away * hung
    mean = mesh_mean_operator(renderer.faces.numpy(), len(displacement))
    smoothed = relax(extra[:, None], ~hung, mean, DRAPE_SMOOTHING)[:, 0]
    return (displacement + smoothed).astype(displacement.dtype)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample [H, W, C] at continuous pixel-index coordinates (x, y)."""
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx = np.clip(x - x0, 0, 1)[:, None]
    fy = np.clip(y - y0, 0, 1)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
