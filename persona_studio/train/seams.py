"""Seam boundaries (PERSONA): where the rendered canonical-position map changes abruptly.

The canonical positions of the Gaussians, normalised to [0, 1]^3 and rendered as colours in the posed
view, vary smoothly across one body part and jump where unrelated regions meet (a hand in front of the
torso, the silhouette against the background). A Sobel filter, a threshold and a dilation turn those
jumps into a seam mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] -> [B, H, W] gradient magnitude (max over channels), replicate-padded."""
    x = image.permute(0, 3, 1, 2)
    c = x.shape[1]
    kx = SOBEL_X.to(x).expand(c, 1, 3, 3)
    ky = SOBEL_X.T.contiguous().to(x).expand(c, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx, groups=c), F.conv2d(padded, ky, groups=c)
    return torch.sqrt(gx**2 + gy**2).amax(1)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, H, W] bool -> dilated by a (2r+1)^2 square."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    return F.max_pool2d(mask.float()[:, None], k, stride=1, padding=radius)[:, 0] > 0


def seam_mask(position_map: torch.Tensor, alpha: torch.Tensor, threshold: float = 0.02, radius: int = 2,
              reference_size: int = 1024) -> torch.Tensor:
    """[B, H, W, 3] rendered canonical positions in [0, 1] (over black), [B, H, W] alpha -> [B, H, W] bool.

    ``threshold`` and ``radius`` hold for an image whose longer side is ``reference_size``; on a smaller
    image one pixel spans more of the body, so a smooth surface's per-pixel gradient grows and the same
    dilation in pixels would cover more of it: both are scaled to keep the seam band the same physical
    width (at 256 px the threshold is 0.08 and there is no dilation).
    """
    pixels_per_reference = max(position_map.shape[1:3]) / reference_size
    composite = torch.cat([position_map, alpha[..., None]], dim=-1)  # the silhouette is a seam too
    edges = sobel_magnitude(composite) > threshold / pixels_per_reference
    return dilate(edges, round(radius * pixels_per_reference))
