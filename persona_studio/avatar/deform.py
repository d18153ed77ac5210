"""PERSONA's pose-driven deformation: a triplane and an MLP predicting per-Gaussian mean offsets.

Each Gaussian reads (a) triplane features at its canonical position (3 planes x C channels, a 2 m cube
around the body) and (b) the 21 body-joint rotations as 6D vectors, zeroed outside the k-ring
kinematic neighbourhood of its dominant joint, so an arm motion cannot move a leg. The MLP
(GroupNorm + ReLU) outputs an offset of the canonical mean, scaled small. Offsets only: no scale or
colour offsets (they blur or copy generated artefacts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from persona_studio.body.skeleton import NUM_BODY_JOINTS

POSE_FEATURES = NUM_BODY_JOINTS * 6


def rotation_6d(rotvec: torch.Tensor) -> torch.Tensor:
    """[..., 3] axis-angle -> [..., 6] first two columns of the rotation matrix (Zhou et al.), minus
    the identity's, so that a joint at rest and a joint masked out both read as zeros."""
    from smplx.lbs import batch_rodrigues

    mats = batch_rodrigues(rotvec.reshape(-1, 3)).reshape(*rotvec.shape[:-1], 3, 3)
    six = mats[..., :2].transpose(-1, -2).reshape(*rotvec.shape[:-1], 6)
    return six - torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=six.dtype, device=six.device)


class Triplane(nn.Module):
    """Three axis-aligned feature planes over a cube; features of a point are the planes' concatenation."""

    def __init__(self, channels: int = 32, resolution: int = 128, centre=(0.0, 0.0, 0.0), size: float = 2.0):
        super().__init__()
        self.planes = nn.Parameter(torch.zeros(3, channels, resolution, resolution))
        nn.init.normal_(self.planes, std=0.01)
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))
        self.half = size / 2

    @property
    def out_features(self) -> int:
        """3C, the length of a point's feature vector."""
        return 3 * self.planes.shape[1]

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """[N, 3] canonical points -> [N, 3C] features (bilinear, border-clamped)."""
        p = ((points - self.centre) / self.half).clamp(-1, 1)
        coords = torch.stack([p[:, [0, 1]], p[:, [0, 2]], p[:, [1, 2]]])[:, None]  # [3, 1, N, 2]
        feats = F.grid_sample(self.planes, coords, mode="bilinear", align_corners=True)  # [3, C, 1, N]
        return feats[:, :, 0].permute(2, 0, 1).reshape(points.shape[0], -1)


class GroupNorm1d(nn.Module):
    """``nn.GroupNorm`` for [N, C] inputs, the same maths and parameters, computed as a layer norm over
    [N, G, C/G]: PyTorch's GroupNorm kernels are made for images and run about 2x slower on CPU when
    each sample is one feature vector (the case for per-Gaussian MLPs)."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C] -> [N, C] normalised per group of C/G channels, then scaled and shifted per channel."""
        n, c = x.shape
        normed = F.layer_norm(x.reshape(n, self.groups, c // self.groups), (c // self.groups,), eps=self.eps)
        return normed.reshape(n, c) * self.weight + self.bias


class PoseMLP(nn.Module):
    """(triplane features + masked pose) -> 3D offset; GroupNorm + ReLU hidden layers."""

    def __init__(self, in_features: int, width: int = 128, depth: int = 3, groups: int = 8,
                 output_scale: float = 0.01):
        super().__init__()
        self.first_feat = nn.Linear(in_features, width)
        self.first_pose = nn.Linear(POSE_FEATURES, width, bias=False)
        layers: list[nn.Module] = [GroupNorm1d(groups, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), GroupNorm1d(groups, width), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.output_scale = output_scale

    def forward(self, features: torch.Tensor, pose6d: torch.Tensor, pose_mask: torch.Tensor) -> torch.Tensor:
        """[N, F] features, [B, 21, 6] pose, [N, 21] bool mask -> [B, N, 3] offsets (the reference path)."""
        masked = pose6d[:, None] * pose_mask[None, :, :, None]  # [B, N, 21, 6]
        h = self.first_feat(features)[None] + self.first_pose(masked.flatten(2))  # [B, N, W]
        return self._tail(h)

    def forward_grouped(self, feature_term: torch.Tensor, pose6d: torch.Tensor, group_masks: torch.Tensor,
                        group_of: torch.Tensor) -> torch.Tensor:
        """The same result, fast: the pose half of the first layer is computed once per mask group.

        ``feature_term`` [N, W] = first_feat(features) (constant per avatar), ``group_masks`` [G, 21] the
        distinct pose masks, ``group_of`` [N] each Gaussian's group -> [B, N, 3].
        """
        masked = pose6d[:, None] * group_masks[None, :, :, None]  # [B, G, 21, 6]
        pose_term = self.first_pose(masked.flatten(2))  # [B, G, W]
        return self._tail(feature_term[None] + pose_term[:, group_of])

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        batch, n, width = h.shape
        h = self.hidden(h.reshape(batch * n, width))
        return self.out(h).reshape(batch, n, 3) * self.output_scale
