"""PERSONA's losses over batched images ([B, H, W, C] unless said) and mesh regularisers."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=4)
def _gauss_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, size, size]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] images in [0, 1] -> [B, H, W] SSIM (11x11 Gaussian window, channel mean)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    c = x.shape[1]
    w = _gauss_window().to(x).expand(c, 1, -1, -1)
    pad = w.shape[-1] // 2
    blur = lambda t: F.conv2d(F.pad(t, (pad,) * 4, mode="replicate"), w, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean(1)


def image_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """0.8 L1 + 0.2 (1 - SSIM), per-pixel ``weight`` [B, H, W] (defaults to 1)."""
    l1 = (pred - target).abs().mean(-1)
    dssim = 1 - ssim_map(pred, target)
    per_pixel = 0.8 * l1 + 0.2 * dssim
    if weight is None:
        return per_pixel.mean()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB over the pixels where ``mask`` [B, H, W] > 0.5."""
    m = mask > 0.5
    mse = ((pred - target) ** 2).mean(-1)[m].mean()
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """IoU of two [H, W] masks thresholded at 0.5."""
    a, b = pred > 0.5, target > 0.5
    return float((a & b).sum() / (a | b).sum().clamp_min(1))


def scale_invariant_depth(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 between depths normalised per image by median and mean absolute deviation ([B, H, W])."""
    losses = []
    for p, t, v in zip(pred, target, valid):
        if v.sum() < 16:
            continue
        pv, tv = p[v], t[v]
        norm = lambda d: (d - d.median()) / (d - d.median()).abs().mean().clamp_min(1e-6)  # noqa: E731
        losses.append((norm(pv) - norm(tv)).abs().mean())
    return torch.stack(losses).mean() if losses else pred.sum() * 0


def normal_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 + (1 - cos) between [B, H, W, 3] normals where ``valid``."""
    if valid.sum() == 0:
        return pred.sum() * 0
    p = F.normalize(pred[valid], dim=-1)
    t = target[valid]
    return (p - t).abs().sum(-1).mean() + (1 - (p * t).sum(-1)).mean()
