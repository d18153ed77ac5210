"""What the viewport shows, as posable Gaussians: the fitted body before training, the avatar after.

A poser turns a batch of SMPL-X parameters into posed Gaussian positions, normals and skeleton joints
(:class:`PosedFrames`), and knows the Gaussians' other arrays (scales, colours, part colours). Posing
is numerical work: call it on worker threads only. No GUI code here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.model import BodyModel
from persona_studio.body.parts import PART_COLORS
from persona_studio.body.skeleton import POSE_KEYS, POSE_WIDTHS
from persona_studio.render.body import BodyRenderer, vertex_normals

NEUTRAL_GREY = (0.72, 0.72, 0.75)


@dataclass
class PosedFrames:
    """A batch of posed frames, as the viewer takes them."""
    means: np.ndarray  # [B, N, 3] float32 world positions
    normals: np.ndarray  # [B, N, 3] float32 unit normals
    joints: np.ndarray  # [B, 55, 3] float32 skeleton joints


def rest_pose() -> dict[str, torch.Tensor]:
    """The body model's rest pose (T-pose, mean shape, at the origin)."""
    return {k: torch.zeros(1, n) for k, n in zip(POSE_KEYS, POSE_WIDTHS)}


def mannequin_colors(normals: np.ndarray) -> np.ndarray:
    """[N, 3] rest-pose normals -> [N, 3] grey with light from the upper front baked in (a plain grey
    body would read as a flat silhouette)."""
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.45 + 0.55 * np.clip(normals @ light, 0.0, 1.0)
    return (np.float32(NEUTRAL_GREY) * shade[:, None]).astype(np.float32)


class BodyPoser:
    """The body model as Gaussians: one per vertex of the subdivided template, coloured from the photo
    (or grey), sized to close the surface (half the longest incident edge, as the trainer starts)."""

    kind = "body"

    def __init__(self, model: BodyModel, level: int = 1, betas: np.ndarray | None = None,
                 colors: np.ndarray | None = None):
        self.model = model
        self.renderer = BodyRenderer(model, level)
        self.betas = (torch.zeros(1, model.layer.num_betas) if betas is None
                      else torch.as_tensor(np.asarray(betas, np.float32))[None, :model.layer.num_betas])
        self.part_colors = PART_COLORS[self.renderer.parts]
        self.faces = self.renderer.faces
        with torch.no_grad():
            rest = self.renderer.dense_vertices(model.forward(betas=self.betas).vertices[0])
            self.scales = self.renderer.scales(rest).numpy()  # [N] constant under posing
            rest_normals = vertex_normals(rest, self.faces).numpy()
        self.colors = mannequin_colors(rest_normals) if colors is None else np.asarray(colors, np.float32)

    @property
    def count(self) -> int:
        """Number of Gaussians."""
        return len(self.colors)

    @torch.no_grad()
    def pose(self, params: dict[str, torch.Tensor]) -> PosedFrames:
        """SMPL-X parameters [B, ...] -> the posed Gaussians, their normals and the skeleton (worker threads only)."""
        params = {k: v for k, v in params.items() if k != "betas"}
        out = self.model.forward(betas=self.betas, **params)
        dense = torch.stack([self.renderer.dense_vertices(v) for v in out.vertices])  # [B, N, 3]
        return PosedFrames(dense.numpy(), vertex_normals(dense, self.faces).numpy(),
                           self.model.joints(out).numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that do not change with the pose (for ``RenderThread.set_gaussians``)."""
        n = self.count
        return {"scales": self.scales, "colors": self.colors, "opacities": np.ones(n, np.float32),
                "part_colors": self.part_colors}


class AvatarPoser:
    """A trained (or training) avatar. Poses a private copy, taken when the poser is made, so the
    original's owner may change it afterwards (the live view loads the next training snapshot into it).
    Never make one from an avatar another thread is changing (a trainer's): copy a snapshot of it.
    The copy lives on ``device`` (default: the avatar's own), where the player's posing runs."""

    kind = "avatar"

    def __init__(self, avatar: Avatar, device: torch.device | str | None = None):
        self.avatar = copy.deepcopy(avatar).to(device or avatar.template.device).eval()
        for parameter in self.avatar.parameters():
            parameter.requires_grad_(False)
            parameter.grad = None
        self.avatar.invalidate_cache()
        self.faces = self.avatar.faces
        self.part_colors = PART_COLORS[self.avatar.parts.cpu().numpy()]

    @property
    def count(self) -> int:
        """Number of Gaussians."""
        return self.avatar.num_gaussians

    @torch.no_grad()
    def pose(self, params: dict[str, torch.Tensor]) -> PosedFrames:
        """SMPL-X parameters [B, ...] -> the posed Gaussians, their normals and the skeleton (worker threads only)."""
        posed = self.avatar.pose(params, fast=True)
        return PosedFrames(posed.means.cpu().numpy(), vertex_normals(posed.means, self.faces).cpu().numpy(),
                           posed.joints.cpu().numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that do not change with the pose (for ``RenderThread.set_gaussians``)."""
        a = self.avatar
        with torch.no_grad():
            return {"scales": a.scales.cpu().numpy(), "colors": a.colors.clamp(0, 1).cpu().numpy(),
                    "opacities": np.ones(a.num_gaussians, np.float32), "part_colors": self.part_colors}
