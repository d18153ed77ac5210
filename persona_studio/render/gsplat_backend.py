"""The CUDA backend: gsplat's ``rasterization`` (imported lazily; it is in the ``[gpu]`` extra)."""

from __future__ import annotations

import torch
from torch import Tensor


def rasterize_gsplat(
    means: Tensor,  # [B, N, 3]
    scales: Tensor,  # [B, N, 1] or [B, N, 3]
    opacities: Tensor,  # [B, N]
    features: Tensor,  # [B, N, C]
    viewmats: Tensor,  # [B, 4, 4]
    Ks: Tensor,  # [B, 3, 3]
    width: int,
    height: int,
    quats: Tensor | None,  # [B, N, 4]
    background: Tensor | None,  # [B, C]
    near: float,
    far: float,
    antialiased: bool,
    eps2d: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """-> features [B, H, W, C] (background blended), alpha [B, H, W, 1], expected depth [B, H, W, 1]."""
    from gsplat import rasterization

    B, N, C = features.shape
    scales = scales.expand(B, N, 3)
    if quats is None:
        quats = means.new_tensor([1.0, 0.0, 0.0, 0.0]).expand(B, N, 4)
    # Gaussians shared by all cameras go in one call; per-camera Gaussians one camera at a time
    # (gsplat < 1.5.2 takes no batch dimension on the Gaussians).
    shared = all(x.stride(0) == 0 for x in (means, scales, opacities, features, quats))
    groups = [slice(0, B)] if shared else [slice(b, b + 1) for b in range(B)]
    images, alphas = [], []
    for cams in groups:
        i = cams.start
        render, alpha, _ = rasterization(
            means[i], quats[i], scales[i], opacities[i], features[i],
            viewmats[cams], Ks[cams], width, height, near_plane=near, far_plane=far, eps2d=eps2d,
            render_mode="RGB+ED", rasterize_mode="antialiased" if antialiased else "classic")
        images.append(render)
        alphas.append(alpha)
    render, alpha = torch.cat(images), torch.cat(alphas)  # [B, H, W, C + 1], [B, H, W, 1]
    features = render[..., :C]
    if background is not None:
        # Blended here, as gsplat would (bg * final transmittance): gsplat 1.5.3's packed path (its
        # default) asserts per-image backgrounds against an empty batch shape and refuses any.
        features = features + background[:, None, None, :] * (1 - alpha)
    return features, alpha, render[..., C:]
