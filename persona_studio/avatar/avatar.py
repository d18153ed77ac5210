"""The avatar: PERSONA's canonical Gaussians on the subdivided template, skinned, pose-deformed.

One isotropic Gaussian per vertex of the subject's shaped template (subdivision level 0/1/2), opacity 1,
an RGB colour (no SH) and a separate seam colour; triangle connectivity kept for Laplacian
regularisers. Posing: canonical mean + learnt offset + pose-driven MLP offset (off on hands and face)
+ expression blend shapes, then linear blend skinning with the body model's joints (smoothed weights
on the body, the body model's own on hands and face).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from persona_studio.avatar.deform import PoseMLP, Triplane, rotation_6d
from persona_studio.body.model import BodyModel
from persona_studio.body.parts import PART_INDEX
from persona_studio.body.skeleton import JOINT_NAMES, body_pose_mask, forward_kinematics, full_pose
from persona_studio.render.body import splat_scales, vertex_normals

MAX_SCALE_GROWTH = 2.0  # a Gaussian's std stays within this factor of its initial one (half its longest edge)
NO_DEFORM_JOINTS = tuple(i for i, n in enumerate(JOINT_NAMES)
                         if n in ("head", "jaw", "left_eye", "right_eye") or "wrist" in n
                         or any(f in n for f in ("index", "middle", "ring", "pinky", "thumb")))


@dataclass
class AvatarConfig:
    """The avatar's settings, saved with it: template level, triplane and MLP sizes, pose-mask ring, offset
    scale, skinning-smoothing neighbours, pose deformation on/off."""
    level: int = 1
    triplane_channels: int = 32
    triplane_resolution: int = 128
    mlp_width: int = 128
    mlp_depth: int = 3
    pose_ring: int = 4
    offset_scale: float = 0.01  # the MLP's output / 100, as in the reference
    smooth_neighbours: int = 16
    pose_deformation: bool = True


@dataclass
class PosedGaussians:
    """The avatar posed for B frames (shapes beside each field); scales, colours and opacities are shared by
    the frames."""
    means: torch.Tensor  # [B, N, 3] world
    scales: torch.Tensor  # [N] isotropic std, metres
    colors: torch.Tensor  # [N, 3] in [0, 1]
    opacities: torch.Tensor  # [N]
    transforms: torch.Tensor  # [B, N, 3, 3] per-Gaussian skinning rotation (for normals)
    joints: torch.Tensor  # [B, 55, 3] the posed skeleton, world


def skin(points: torch.Tensor, transforms: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning: [B, N, 3] canonical points, [B, 55, 4, 4] joint transforms, [N, 55] weights
    -> ([B, N, 3] posed points, [B, N, 3, 3] each point's blended rotation, which turns its normal)."""
    blended = torch.einsum("nj,bjrc->bnrc", weights, transforms)  # [B, N, 4, 4]
    posed = (blended[..., :3, :3] @ points[..., None])[..., 0] + blended[..., :3, 3]
    return posed, blended[..., :3, :3]


def smoothed_weights(vertices: np.ndarray, weights: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """[N, 3], [N, 55], [N] bool -> [N, 55]: body weights averaged over the k nearest vertices (PERSONA),
    rows where ``keep`` is set (hands, face) unchanged."""
    _, nearest = cKDTree(vertices).query(vertices, k=k)
    smooth = weights[nearest].mean(1)
    return np.where(keep[:, None], weights, smooth).astype(np.float32)


class Avatar(nn.Module):
    """PERSONA's avatar: a Gaussian per template vertex (learnt offset, scale, colour, seam colour) with a
    triplane and pose MLP; :meth:`pose` poses it."""
    def __init__(self, template_vertices: np.ndarray, faces: np.ndarray, skinning: np.ndarray,
                 expr_dirs: np.ndarray, parts: np.ndarray, rest_joints: np.ndarray, colors: np.ndarray,
                 config: AvatarConfig, identity: dict):
        """Build from arrays (use :meth:`from_body_model`); shapes: [N, 3], [F, 3], [N, 55], [N, 3, E],
        [N], [55, 3], [N, 3]."""
        super().__init__()
        self.config = config
        self.identity = identity  # body model and subject the avatar was built for
        n = template_vertices.shape[0]
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("template", f32(template_vertices))
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.int64))
        self.register_buffer("skinning", f32(skinning))
        self.register_buffer("expr_dirs", f32(expr_dirs))
        self.register_buffer("parts", torch.as_tensor(np.asarray(parts), dtype=torch.int64))
        self.register_buffer("rest_joints", f32(rest_joints))
        dominant = self.skinning.argmax(1)
        self.register_buffer("dominant", dominant)
        masks = torch.as_tensor(body_pose_mask(dominant.numpy(), config.pose_ring))
        groups, group_of = torch.unique(masks, dim=0, return_inverse=True)
        self.register_buffer("pose_mask", masks)
        self.register_buffer("group_masks", groups.float())
        self.register_buffer("group_of", group_of)
        self.register_buffer("deformable", ~torch.isin(dominant, torch.tensor(NO_DEFORM_JOINTS)))
        self.register_buffer("deformable_index", self.deformable.nonzero()[:, 0], persistent=False)

        self.offsets = nn.Parameter(torch.zeros(n, 3))
        spacing = splat_scales(self.template, self.faces)
        self.log_scales = nn.Parameter(torch.log(spacing))
        # A Gaussian may at most double its size: opacity is fixed at 1, so an oversized one could never
        # fade and shows as a blob from the views that do not train it; nor shrink below half (holes).
        self.register_buffer("max_scales", MAX_SCALE_GROWTH * spacing, persistent=False)
        self.register_buffer("min_scales", spacing / MAX_SCALE_GROWTH, persistent=False)
        self.colors = nn.Parameter(f32(colors).clamp(0, 1).clone())
        self.seam_colors = nn.Parameter(f32(colors).clamp(0, 1).clone())
        centre = ((self.template.min(0).values + self.template.max(0).values) / 2).tolist()
        self.triplane = Triplane(config.triplane_channels, config.triplane_resolution, centre)
        self.mlp = PoseMLP(self.triplane.out_features, config.mlp_width, config.mlp_depth,
                           output_scale=config.offset_scale)
        self._fast_features: torch.Tensor | None = None

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_body_model(cls, model: BodyModel, betas: np.ndarray, colors_at_level, config: AvatarConfig,
                        identity: dict) -> "Avatar":
        """The subject's avatar: template shaped by ``betas`` at ``config.level``; ``colors_at_level`` is
        a function (interpolation matrix, dense vertices) -> [N, 3] initial colours."""
        template = model.template(config.level, torch.as_tensor(betas, dtype=torch.float32)[None])
        interp = template.interpolation
        layer = model.layer
        with torch.no_grad():
            shaped = model.forward(betas=torch.as_tensor(betas, dtype=torch.float32)[None]).vertices[0].numpy()
            rest_joints = layer.J_regressor.numpy() @ shaped
        expr = layer.expr_dirs.numpy()  # [V0, 3, E]
        expr_dense = (interp @ expr.reshape(expr.shape[0], -1)).reshape(-1, 3, expr.shape[2])
        keep = np.isin(template.skinning_weights.argmax(1), NO_DEFORM_JOINTS)
        weights = smoothed_weights(template.vertices, template.skinning_weights, keep, config.smooth_neighbours)
        colors = colors_at_level(interp, template.vertices)
        return cls(template.vertices, template.faces, weights, expr_dense, template.parts, rest_joints,
                   colors, config, identity)

    @property
    def num_gaussians(self) -> int:
        """N, one Gaussian per template vertex."""
        return self.template.shape[0]

    @property
    def scales(self) -> torch.Tensor:
        """[N] isotropic standard deviations, metres (the learnt ones, kept within MAX_SCALE_GROWTH times
        the initial either way)."""
        return torch.clamp(self.log_scales.exp(), self.min_scales, self.max_scales)

    @torch.no_grad()
    def start_on_surface(self, normal_shift: torch.Tensor) -> None:
        """Start from a clothed surface: [N] metres along the template's normals (the re-poser's fitted
        volume) become the offsets, and each Gaussian's scale becomes half the longest edge of that
        surface (within MAX_SCALE_GROWTH of the template's), as the re-poser's own splats are sized. Where
        the surface stands off the body (a hanging jacket, hair) its vertices spread apart; splats sized
        on the bare template would leave gaps there, through which the front of the body shows."""
        self.offsets.copy_(normal_shift[:, None] * vertex_normals(self.template, self.faces))
        spacing = splat_scales(self.template + self.offsets, self.faces)
        self.log_scales.copy_(torch.log(torch.clamp(spacing, self.min_scales, self.max_scales)))

    @property
    def hand_mask(self) -> torch.Tensor:
        """[N] bool: the Gaussians on the left or right hand."""
        return torch.isin(self.parts, torch.tensor([PART_INDEX["left_hand"], PART_INDEX["right_hand"]], device=self.parts.device))

    # --- posing -----------------------------------------------------------------------------------

    def canonical(self, expression: torch.Tensor | None = None) -> torch.Tensor:
        """[N, 3] (or [B, N, 3] with expression [B, E]) canonical means before pose offsets."""
        means = self.template + self.offsets
        if expression is not None:
            e = expression.shape[1]
            means = means[None] + torch.einsum("nde,be->bnd", self.expr_dirs[..., :e], expression)
        return means

    def pose_offsets(self, body_pose: torch.Tensor, fast: bool = False) -> torch.Tensor:
        """[B, 63] body pose -> [B, N, 3] MLP offsets in canonical space (0 where not deformable)."""
        if not self.config.pose_deformation:
            return self.template.new_zeros(body_pose.shape[0], self.num_gaussians, 3)
        pose6d = rotation_6d(body_pose.to(self.template.device).reshape(-1, 21, 3))
        # Only deformable Gaussians go through the network (exact: the others' offsets are zero).
        moving = self.deformable_index
        if fast:
            if self._fast_features is None:
                with torch.no_grad():
                    self._fast_features = self.mlp.first_feat(self.triplane(self.template[moving]))
            feature_term = self._fast_features
        else:
            feature_term = self.mlp.first_feat(self.triplane(self.template[moving]))
        offsets = self.mlp.forward_grouped(feature_term, pose6d, self.group_masks, self.group_of[moving])
        return offsets.new_zeros(offsets.shape[0], self.num_gaussians, 3).index_copy(1, moving, offsets)

    def pose_offsets_reference(self, body_pose: torch.Tensor) -> torch.Tensor:
        """The same offsets computed the plain way, the masked pose fed per Gaussian (for checking)."""
        pose6d = rotation_6d(body_pose.reshape(-1, 21, 3))
        offsets = self.mlp(self.triplane(self.template), pose6d, self.pose_mask)
        return offsets * self.deformable[None, :, None]

    def invalidate_cache(self) -> None:
        """Call after the triplane or MLP changed (training) so the fast path recomputes its features."""
        self._fast_features = None

    def pose(self, params: dict[str, torch.Tensor], fast: bool = False) -> PosedGaussians:
        """SMPL-X parameters (each [B, ...]: ``body_pose`` [B, 63] and optionally ``global_orient``,
        ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``left/right_hand_pose`` (axis-angle; see
        ``body.skeleton.POSE_KEYS``), ``expression`` [B, E], ``transl`` [B, 3]) -> posed Gaussians for
        B frames, with the posed skeleton.

        The steps of smplx's ``lbs``: blend shapes (:meth:`canonical`, expression), the pose-driven
        offsets (:meth:`pose_offsets`), forward kinematics, skinning, translation. ``fast`` is the
        playback path: triplane features cached, no gradients through the deformation network.
        The parameters may live on any device: the avatar poses on its own (a motion read on the CPU
        plays on a GPU avatar).
        """
        params = {k: v.to(self.template.device) for k, v in params.items()}
        body_pose = params["body_pose"].reshape(-1, 63)
        batch = body_pose.shape[0]
        expression = params.get("expression")
        canonical = self.canonical(expression) if expression is not None else self.canonical()[None]
        canonical = canonical.expand(batch, -1, -1)  # [B, N, 3]
        if fast:
            with torch.no_grad():
                canonical = canonical + self.pose_offsets(body_pose, fast=True)
        else:
            canonical = canonical + self.pose_offsets(body_pose)
        joints, transforms = forward_kinematics(full_pose({**params, "body_pose": body_pose}), self.rest_joints)
        means, rotations = skin(canonical, transforms, self.skinning)
        transl = params.get("transl")
        if transl is not None:
            means = means + transl.reshape(batch, 1, 3)
            joints = joints + transl.reshape(batch, 1, 3)
        return PosedGaussians(means=means, scales=self.scales, colors=self.colors.clamp(0, 1),
                              opacities=self.template.new_ones(self.num_gaussians), transforms=rotations, joints=joints)

    def settings_dict(self) -> dict:
        """The config as a JSON-ready dict (as bundles and checkpoints store it)."""
        return asdict(self.config)

