"""The body model's posed mesh rendered as Gaussians: colour and the geometry targets PERSONA uses.

One small Gaussian per vertex of a subdivided template; features carry colour, camera-space normals
and part colours in one pass; the mask is the render's coverage (alpha). Also: colouring the template
from a photo of the fitted body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from persona_studio.body.model import BodyModel
from persona_studio.body.parts import PART_COLORS, PART_INDEX, vertex_parts
from persona_studio.body.subdivide import longest_incident_edge, subdivide
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import RasterOutput, rasterize


@dataclass
class BodyRender:
    """One camera's render of a posed body: colour and the geometry targets PERSONA supervises."""

    rgb: np.ndarray  # [H, W, 3] float32 in [0, 1], on white
    mask: np.ndarray  # [H, W] float32 in [0, 1]: the render's coverage (alpha)
    depth: np.ndarray  # [H, W] float32 camera z in metres (0 where empty)
    normal: np.ndarray  # [H, W, 3] float32 unit normals, camera (OpenCV) axes, 0 where empty
    parts: np.ndarray  # [H, W] int64 index into PART_NAMES (0 background)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[..., V, 3] vertices, [F, 3] faces -> [..., V, 3] area-weighted unit vertex normals."""
    tri = vertices[..., faces, :]  # [..., F, 3, 3]
    face_n = torch.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(-2, faces[:, corner], face_n)
    return torch.nn.functional.normalize(normals, dim=-1)


class BodyRenderer:
    """Renders a body model's posed mesh as one small Gaussian per vertex of a subdivided template."""

    def __init__(self, model: BodyModel, level: int = 1):
        self.model = model
        faces, self.interp = subdivide(model.faces, model.num_vertices, level)
        self.faces = torch.as_tensor(faces)
        self.parts = vertex_parts(self.interp @ model.skinning_weights.numpy())
        self.part_colors = torch.as_tensor(PART_COLORS[self.parts])
        coo = self.interp.tocoo()
        self._interp = torch.sparse_coo_tensor(np.stack([coo.row, coo.col]), coo.data.astype(np.float32),
                                               size=coo.shape, check_invariants=False).coalesce()

    def dense_vertices(self, base_vertices: torch.Tensor) -> torch.Tensor:
        """[V0, 3] model vertices -> [V, 3] vertices of the subdivided template (linear)."""
        return torch.sparse.mm(self._interp, base_vertices)

    def scales(self, vertices: torch.Tensor) -> torch.Tensor:
        """[V] Gaussian std per vertex: half its longest edge, so neighbouring splats close the surface."""
        return 0.5 * longest_incident_edge(vertices, self.faces)

    def surface(self, base_vertices: torch.Tensor, displacement: torch.Tensor | None = None) -> torch.Tensor:
        """[V0, 3] posed model vertices, optional [V] displacement along the posed normals (metres; the
        re-poser's clothed surface) -> [V, 3] dense surface points."""
        v = self.dense_vertices(base_vertices)
        if displacement is not None:
            v = v + displacement[:, None] * vertex_normals(v, self.faces)
        return v

    def splat(self, base_vertices: torch.Tensor, colors: torch.Tensor, camera: Camera,
              displacement: torch.Tensor | None = None) -> RasterOutput:
        """Differentiable render: features [colour (3), camera-space normal (3), part colour (3)]."""
        v = self.surface(base_vertices, displacement)
        R = torch.as_tensor(camera.R, dtype=torch.float32)
        normals_cam = vertex_normals(v, self.faces) @ R.T
        features = torch.cat([colors, normals_cam, self.part_colors], dim=1)  # [V, 9]
        viewmat = torch.as_tensor(camera.viewmat, dtype=torch.float32)[None]
        K = torch.as_tensor(camera.K, dtype=torch.float32)[None]
        return rasterize(v, self.scales(v), torch.ones(v.shape[0]), features, viewmat, K, camera.width,
                         camera.height, antialiased=True)

    def render(self, base_vertices: torch.Tensor, colors: torch.Tensor, camera: Camera,
               background: float = 1.0, displacement: torch.Tensor | None = None) -> BodyRender:
        """[V0, 3] posed model vertices, [V, 3] colours of the dense vertices -> BodyRender.

        The mask is the render's own coverage, so image and mask agree to the pixel (splats reach about
        one standard deviation past the mesh's edge); geometry targets are kept where it exceeds 0.5.
        """
        with torch.no_grad():
            out = self.splat(base_vertices, colors, camera, displacement)
        feat, alpha, depth = out.features[0], out.alpha[0, ..., 0].clamp(0, 1), out.depth[0, ..., 0]
        safe = alpha.clamp_min(1e-6)[..., None]
        rgb = feat[..., :3] + background * (1 - alpha[..., None])
        normal = torch.nn.functional.normalize(feat[..., 3:6] / safe, dim=-1)
        part_rgb = feat[..., 6:9] / safe
        palette = torch.as_tensor(PART_COLORS)
        parts = torch.cdist(part_rgb.reshape(-1, 3), palette[1:]).argmin(1).reshape(alpha.shape) + 1
        covered = alpha > 0.5
        parts = torch.where(covered, parts, torch.zeros_like(parts))
        return BodyRender(rgb.clamp(0, 1).numpy(), alpha.numpy(),
                          torch.where(covered, depth, torch.zeros_like(depth)).numpy(),
                          (normal * covered[..., None]).numpy(), parts.numpy())


def seen_in_photo(renderer: BodyRenderer, mask: np.ndarray, camera: Camera, smplx: dict[str, np.ndarray],
                  displacement: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([V] bool, [V, 3] projections (u, v, z)): the dense vertices the photo sees (inside the person
    mask, in front of the rendered depth, facing the camera), of the surface displaced along its
    normals by ``displacement`` [V] when given."""
    with torch.no_grad():
        posed = renderer.model.forward(**{k: torch.as_tensor(v)[None] for k, v in smplx.items()}).vertices[0]
        shift = None if displacement is None else torch.as_tensor(displacement, dtype=torch.float32)
        dense = renderer.surface(posed, shift)
        view = renderer.render(posed, torch.ones(dense.shape[0], 3), camera, displacement=shift)
        normals = (vertex_normals(dense, renderer.faces) @ torch.as_tensor(camera.R, dtype=torch.float32).T).numpy()
    uvz = camera.project(dense.numpy())
    h, w = view.depth.shape
    px = np.clip(uvz[:, 0].astype(int), 0, w - 1)
    py = np.clip(uvz[:, 1].astype(int), 0, h - 1)
    inside = (uvz[:, 0] >= 0) & (uvz[:, 0] < w) & (uvz[:, 1] >= 0) & (uvz[:, 1] < h)
    surface = view.depth[py, px]
    seen = inside & (uvz[:, 2] <= surface + 0.015) & (normals[:, 2] < -0.1) & (mask[py, px] > 0.5)
    return seen, uvz


def color_from_photo(renderer: BodyRenderer, image: np.ndarray, mask: np.ndarray, camera: Camera,
                     smplx: dict[str, np.ndarray], displacement: np.ndarray | None = None,
                     visibility: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """[V, 3] colours of the dense template vertices from the photo (of the surface displaced along its
    normals by ``displacement`` [V] when given).

    Vertices the photo sees (:func:`seen_in_photo`, or ``visibility`` when the caller has it already)
    take the photo's colour; the others take the colour of the seen vertex nearest to their mirror
    image through their body part's front/back plane (the back of a sleeve looks like its front),
    except on the head and neck, where they take the colour of the nearest seen vertex (the back of a
    head is hair or skin, not a second face).
    """
    seen, uvz = visibility or seen_in_photo(renderer, mask, camera, smplx, displacement)
    with torch.no_grad():
        rest = renderer.model.forward(betas=torch.as_tensor(smplx["betas"])[None]).vertices[0]
        dense_rest = renderer.dense_vertices(rest).numpy()
    image = image.astype(np.float32) / 255.0
    colors = np.zeros((len(seen), 3), np.float32)
    colors[seen] = _bilinear(image, uvz[seen, 0] - 0.5, uvz[seen, 1] - 0.5)
    if not seen.any():
        return np.full_like(colors, 0.5)
    unseen = ~seen
    centre_z = np.zeros(len(dense_rest))
    for part in np.unique(renderer.parts):
        members = renderer.parts == part
        centre_z[members] = dense_rest[members, 2].mean()
    mirrored = dense_rest.copy()
    mirrored[:, 2] = 2 * centre_z - dense_rest[:, 2]
    # A head has one face: its back takes the nearest seen colour (hair, ears), never a mirrored face.
    head = renderer.parts == PART_INDEX["face_neck"]
    mirrored[head] = dense_rest[head]
    tree = cKDTree(dense_rest[seen])
    _, nearest = tree.query(mirrored[unseen])
    colors[unseen] = colors[seen][nearest]
    return colors


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample [H, W, C] at continuous pixel-index coordinates (x, y)."""
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx = np.clip(x - x0, 0, 1)[:, None]
    fy = np.clip(y - y0, 0, 1)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
