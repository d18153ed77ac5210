"""The body model's posed mesh rendered as Gaussians: colour and the geometry targets PERSONA uses.

One small Gaussian per vertex of a subdivided template; features carry colour, camera-space normals
and part colours in one pass; the mask is the render's coverage (alpha). Colouring the template from a
photo is ``render.texture``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from persona_studio.body.model import BodyModel
from persona_studio.body.parts import PART_COLORS
from persona_studio.body.subdivide import longest_incident_edge
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import RasterOutput, rasterize_cameras


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


def facing_cosines(points: torch.Tensor, normals: torch.Tensor, position) -> torch.Tensor:
    """[..., N] cosine between each surface normal ``normals`` [..., N, 3] at ``points`` [..., N, 3] and
    the direction to a camera at ``position`` [3]: 1 face-on, 0 edge-on, below 0 turned away."""
    position = torch.as_tensor(position, dtype=points.dtype, device=points.device)
    return (normals * torch.nn.functional.normalize(position - points, dim=-1)).sum(-1)


def splat_scales(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[V, 3] surface points, [F, 3] faces -> [V] Gaussian std per point: half its longest edge, so
    neighbouring splats close the surface (the re-poser's splats and the avatar's start alike)."""
    return 0.5 * longest_incident_edge(vertices, faces)


class BodyRenderer:
    """Renders a body model's posed mesh as one small Gaussian per vertex of a subdivided template."""

    def __init__(self, model: BodyModel, level: int = 1):
        self.model = model
        faces, self.interp, _, self.parts = model.subdivision(level)
        self.faces = torch.as_tensor(faces)
        self.part_colors = torch.as_tensor(PART_COLORS[self.parts])
        coo = self.interp.tocoo()
        self._interp = torch.sparse_coo_tensor(np.stack([coo.row, coo.col]), coo.data.astype(np.float32),
                                               size=coo.shape, check_invariants=False).coalesce()

    def dense_vertices(self, base_vertices: torch.Tensor) -> torch.Tensor:
        """[V0, 3] model vertices -> [V, 3] vertices of the subdivided template (linear)."""
        return torch.sparse.mm(self._interp, base_vertices)

    def scales(self, vertices: torch.Tensor) -> torch.Tensor:
        """[V] Gaussian std per vertex (:func:`splat_scales`)."""
        return splat_scales(vertices, self.faces)

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
        return rasterize_cameras([camera], v, self.scales(v), torch.ones(v.shape[0]), features, antialiased=True)

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
