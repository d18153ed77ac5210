"""Pure-PyTorch Gaussian rasteriser: the CPU reference, differentiable, same maths as gsplat 1.5.

Two stages:

1. ``project_gaussians`` (plain autograd, O(N)): world -> camera, EWA splatting through the Jacobian
   of the perspective projection, 0.3 px dilation of the 2D covariance (optionally compensating the
   opacity as in Mip-Splatting), an opacity-aware screen-space bounding box, near/far culling.
2. ``composite`` (a custom autograd Function over the per-(pixel, Gaussian) pairs): enumerate every
   pixel each Gaussian reaches with alpha >= 1/255 (row by row, solving the ellipse equation for the
   span of each row), sort the pairs by pixel then depth, alpha-composite front to back with a
   segmented cumulative sum of log(1 - alpha), stop where transmittance would fall to 1e-4, and
   reduce per pixel. The backward pass is written by hand: autograd over millions of pairs would
   build a graph far larger and slower than the maths needs.

The image is processed in bands of rows holding about ``PAIRS_PER_BAND`` pairs each, so the
per-pair arrays of one band stay in the CPU cache; only that loop is in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# gsplat 1.5 constants (rendering.py defaults and cuda/include/Common.h).
EPS2D = 0.3  # px^2 added to the 2D covariance diagonal
ALPHA_MIN = 1.0 / 255.0  # pairs fainter than this are skipped
ALPHA_MAX = 0.999  # per-pair alpha is clamped to this
T_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
EXTEND_MAX = 3.33  # bounding box half-size in standard deviations, at most

PAIRS_PER_BAND = 1 << 19  # keeps a band's per-pair arrays (~10 of them) within a few MB of cache


@dataclass
class Projected:
    """Screen-space Gaussians of B cameras (culled ones have ``radii == 0``)."""

    means2d: Tensor  # [B, N, 2] pixel coordinates of the centres
    conics: Tensor  # [B, N, 3] (xx, xy, yy) of the inverse dilated 2D covariance
    covars2d: Tensor  # [B, N, 3] (xx, xy, yy) of the dilated 2D covariance
    depths: Tensor  # [B, N] camera-space z
    opacities: Tensor  # [B, N] opacity, times the anti-aliasing compensation when asked
    radii: Tensor  # [B, N, 2] int32 bounding-box half sizes (x, y) in pixels; 0 = culled


def quats_to_rotmats(quats: Tensor) -> Tensor:
    """[..., 4] quaternions (w, x, y, z), any norm -> [..., 3, 3] rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def camera_covariances(scales: Tensor, quats: Tensor | None, rotations: Tensor) -> Tensor:
    """3D covariances in camera space.

    scales: [B, N, 1] isotropic or [B, N, 3] standard deviations; quats: [B, N, 4] or None;
    rotations: [B, 3, 3] world -> camera. Returns [B, N, 3, 3].
    """
    if scales.shape[-1] == 1:  # isotropic: s^2 I is the same in every frame
        eye = torch.eye(3, dtype=scales.dtype, device=scales.device)
        return scales[..., None].square() * eye
    R = rotations[:, None]  # [B, 1, 3, 3]
    if quats is not None:
        R = R @ quats_to_rotmats(quats)  # [B, N, 3, 3]
    M = R * scales[..., None, :]  # columns scaled: R S
    return M @ M.transpose(-1, -2)


def project_gaussians(
    means: Tensor,  # [B, N, 3]
    scales: Tensor,  # [B, N, 1] or [B, N, 3]
    quats: Tensor | None,  # [B, N, 4]
    opacities: Tensor,  # [B, N]
    viewmats: Tensor,  # [B, 4, 4]
    Ks: Tensor,  # [B, 3, 3]
    width: int,
    height: int,
    near: float,
    far: float,
    antialiased: bool,
) -> Projected:
    """EWA projection of 3D Gaussians to the image planes of B pinhole cameras (gsplat's maths)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("bij,bnj->bni", R, means) + t[:, None]  # [B, N, 3]
    x, y, z = means_c.unbind(-1)  # [B, N] each
    in_depth = (z >= near) & (z <= far)
    z = torch.where(in_depth, z, torch.ones_like(z))  # culled ones must not make NaN gradients

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [B, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # The Jacobian is evaluated with the direction clamped to 1.3x the field of view, as gsplat does,
    # so that Gaussians far outside the image do not explode into huge footprints.
    lim_x = (0.5 * width / fx) * 0.3
    lim_y = (0.5 * height / fy) * 0.3
    tx = z * torch.minimum(torch.maximum(x / z, -(cx / fx + lim_x)), (width - cx) / fx + lim_x)
    ty = z * torch.minimum(torch.maximum(y / z, -(cy / fy + lim_y)), (height - cy) / fy + lim_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], -1)
    J = J.reshape(z.shape + (2, 3))  # [B, N, 2, 3]
    cov = J @ camera_covariances(scales, quats, R) @ J.transpose(-1, -2)  # [B, N, 2, 2]
    a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + EPS2D, c + EPS2D
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    opacities = opacities.expand(z.shape)
    if antialiased:  # Mip-Splatting: keep the integral of the dilated Gaussian unchanged
        opacities = opacities * torch.sqrt((det_orig / det).clamp_min(0.0))
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)  # [B, N, 2]
    conics = torch.stack([c / det, -b / det, a / det], -1)  # [B, N, 3]
    covars2d = torch.stack([a, b, c], -1)

    with torch.no_grad():  # opacity-aware bounding box (gsplat 1.5, arXiv:2402.00525 B.2)
        opac = opacities.detach()
        valid = valid & (opac >= ALPHA_MIN)
        extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_MIN) / ALPHA_MIN)).clamp(max=EXTEND_MAX)
        radii = torch.stack([torch.ceil(extend * a.detach().sqrt()), torch.ceil(extend * c.detach().sqrt())], -1)
        m2d = means2d.detach()
        valid = valid & (radii > 0).any(-1)
        valid = valid & (m2d[..., 0] + radii[..., 0] > 0) & (m2d[..., 0] - radii[..., 0] < width)
        valid = valid & (m2d[..., 1] + radii[..., 1] > 0) & (m2d[..., 1] - radii[..., 1] < height)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return Projected(means2d, conics, covars2d, means_c[..., 2], opacities, radii)


