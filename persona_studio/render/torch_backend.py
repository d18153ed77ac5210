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


# --------------------------------------------------------------------------------------------
# Pair enumeration (no gradients)


@dataclass
class RowSpans:
    """Every (Gaussian, image row) that Gaussian reaches, ordered by row then depth (front first).

    Along a span, step k = 0, 1, ... is the pixel ``pixel0 + k`` and its Mahalanobis term is
    ``sigma(k) = (q2 k + q1) k + q0`` (gsplat's ``0.5 d^T conic d`` with d = mean - pixel centre).
    """

    gaussian: Tensor  # [R] int64 flat Gaussian index in [0, B*N)
    row: Tensor  # [R] int64 flat row index camera * height + y
    pixel0: Tensor  # [R] int64 flat pixel index of the span's first pixel
    count: Tensor  # [R] int64 pixels in the span (>= 1)
    q0: Tensor  # [R] sigma at the first pixel
    q1: Tensor  # [R]
    q2: Tensor  # [R]
    opacity: Tensor  # [R]


def row_spans(proj: Projected, width: int, height: int) -> RowSpans:
    """Where each Gaussian's alpha can reach 1/255: per image row, the columns inside its ellipse.

    Solving the ellipse equation per row makes the enumeration tight (about pi/4 of the bounding
    box). The spans carry a 0.01 px margin; the exact alpha test in the compositor decides.
    """
    B, N = proj.depths.shape
    dtype = proj.means2d.dtype
    valid = (proj.radii > 0).any(-1).reshape(-1)
    order = torch.argsort(proj.depths.detach().reshape(-1), stable=True)  # nearest first
    g = order[valid[order]]  # [V] visible Gaussians, nearest first
    mx, my = proj.means2d.detach().reshape(-1, 2)[g].double().unbind(-1)
    ca, cb, cc = proj.conics.detach().reshape(-1, 3)[g].double().unbind(-1)
    cov_yy = proj.covars2d.detach().reshape(-1, 3)[g, 2].double()
    opac = proj.opacities.detach().reshape(-1)[g].double()
    # alpha = o exp(-sigma) >= 1/255  <=>  sigma <= log(255 o)
    sigma_max = torch.log(opac / ALPHA_MIN).clamp_min(0.0)
    half_h = torch.sqrt(2.0 * sigma_max * cov_yy)  # vertical half extent of that ellipse
    y0 = torch.ceil(my - half_h - 0.51).clamp(0, height).long()
    y1 = torch.floor(my + half_h - 0.49).clamp(-1, height - 1).long()
    n_rows = (y1 - y0 + 1).clamp_min(0)

    item = torch.repeat_interleave(n_rows)  # [R0] index into the visible list
    y = y0[item] + (torch.arange(item.numel()) - (torch.cumsum(n_rows, 0) - n_rows)[item])
    # Solve 0.5 a dx^2 + b dy dx + 0.5 c dy^2 <= sigma_max for dx = mean_x - pixel_x.
    dy = my[item] - (y + 0.5)
    a, b, c = ca[item], cb[item], cc[item]
    disc = (b * dy).square() - a * (c * dy.square() - 2.0 * sigma_max[item])
    root = torch.sqrt(disc.clamp_min(0.0))
    x_mean = mx[item]
    x0 = torch.ceil(x_mean - (-b * dy + root) / a - 0.51).clamp(0, width).long()
    x1 = torch.floor(x_mean - (-b * dy - root) / a - 0.49).clamp(-1, width - 1).long()
    count = torch.where(disc >= 0, x1 - x0 + 1, torch.zeros_like(x1)).clamp_min(0)
    keep = (count > 0).nonzero().squeeze(1)
    item, y, x0, count, dy, a, b, c = (v[keep] for v in (item, y, x0, count, dy, a, b, c))

    dx0 = mx[item] - (x0 + 0.5)  # step k has dx = dx0 - k
    row = torch.div(g[item], N, rounding_mode="floor") * height + y
    by_row = torch.argsort(row, stable=True)  # stable: nearest first within a row
    q0 = 0.5 * (a * dx0.square() + c * dy.square()) + b * dx0 * dy
    q1 = -(a * dx0 + b * dy)
    q2 = 0.5 * a
    fields = (g[item], row, row * width + x0, count, q0, q1, q2, opac[item])
    fields = [v[by_row] for v in fields]
    return RowSpans(*fields[:4], *(v.to(dtype) for v in fields[4:]))


def split_bands(spans: RowSpans, pairs_per_band: int) -> list[tuple[int, int]]:
    """Cut the row-ordered spans into [lo, hi) ranges of whole rows with about ``pairs_per_band`` pairs."""
    R = spans.count.numel()
    if R == 0:
        return []
    starts = torch.ones(R, dtype=torch.bool)
    starts[1:] = spans.row[1:] != spans.row[:-1]
    starts = starts.nonzero().squeeze(1)  # first span of each row
    pairs_before = (torch.cumsum(spans.count, 0) - spans.count)[starts]
    band = torch.div(pairs_before, pairs_per_band, rounding_mode="floor")
    new_band = torch.ones_like(band, dtype=torch.bool)
    new_band[1:] = band[1:] != band[:-1]
    cuts = starts[new_band].tolist() + [R]
    return list(zip(cuts[:-1], cuts[1:]))


# --------------------------------------------------------------------------------------------
# Compositing


def _segment_ends(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Pairs per pixel [P] -> (first pair, last pair) of each pair's pixel, both [M]."""
    ends = torch.cumsum(counts, 0)
    return torch.repeat_interleave(ends - counts, counts), torch.repeat_interleave(ends - 1, counts)


@dataclass
class Band:
    """The contributing pairs of one band (alpha >= 1/255, before termination), pixel-major, front to back."""

    pixel: Tensor  # [M] int64 flat pixel index
    gaussian: Tensor  # [M] int64 flat Gaussian index
    alpha: Tensor  # [M] clamped alpha
    transmittance: Tensor  # [M] transmittance in front of the pair
    counts: Tensor  # [P] pairs per pixel, in pixel order


def composite_band(spans: RowSpans, lo: int, hi: int, features_t: Tensor, out_t: Tensor) -> Band:
    """Enumerate, test, sort and composite the pairs of spans[lo:hi]; add the result to ``out_t``.

    features_t: [D, G] per-Gaussian channels (transposed); out_t: [D, B*H*W] accumulated features.
    """
    count = spans.count[lo:hi]
    item = torch.repeat_interleave(count)  # [M] span (relative to lo) of each candidate pair
    step = torch.arange(item.numel()) - (torch.cumsum(count, 0) - count).index_select(0, item)
    stepf = step.to(features_t.dtype)
    q0, q1, q2, opac = (v[lo:hi].index_select(0, item) for v in (spans.q0, spans.q1, spans.q2, spans.opacity))
    sigma = (q2 * stepf + q1) * stepf + q0
    alpha = (opac * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    hit = (sigma >= 0) & (alpha >= ALPHA_MIN)

    pixel_base = int(spans.pixel0[lo])
    pixel = spans.pixel0[lo:hi].index_select(0, item) + step - pixel_base  # band-local
    key = torch.where(hit, pixel.to(torch.int32), torch.iinfo(torch.int32).max)
    key, perm = torch.sort(key, stable=True)  # by pixel; stable keeps front-to-back order
    n_hit = int(hit.sum())
    perm, pixel = perm[:n_hit], key[:n_hit]
    alpha = alpha.index_select(0, perm)
    gaussian = spans.gaussian[lo:hi].index_select(0, item.index_select(0, perm))

    log_opaque = torch.log1p(-alpha)
    _, counts = torch.unique_consecutive(pixel, return_counts=True)
    first, _ = _segment_ends(counts)
    before = torch.cumsum(log_opaque, 0, dtype=torch.float64) - log_opaque
    transmittance = torch.exp(before - before.index_select(0, first)).to(alpha.dtype)
    live = (transmittance * (1.0 - alpha) > T_MIN).nonzero().squeeze(1)  # gsplat stops before T <= 1e-4
    pixel, gaussian, alpha, transmittance = (v.index_select(0, live) for v in (pixel, gaussian, alpha, transmittance))
    pixel = pixel.long() + pixel_base
    unique, counts = torch.unique_consecutive(pixel, return_counts=True)

    weighted = features_t.index_select(1, gaussian) * (alpha * transmittance)  # [D, M]
    out_t.index_copy_(1, unique, torch.segment_reduce(weighted, "sum", lengths=counts.expand(weighted.shape[0], -1), axis=1))
    return Band(pixel, gaussian, alpha, transmittance, counts)


def composite_band_backward(band: Band, width: int, height: int, grad_out_t: Tensor, features_t: Tensor,
                            table_t: Tensor, grad_table_t: Tensor, grad_features_t: Tensor | None) -> None:
    """Add one band's contribution to the gradients of the per-Gaussian table and features.

    grad_out_t: [D, B*H*W]; table_t: [6, G] (mean x, mean y, conic xx, xy, yy, opacity);
    grad_table_t: [6, G] and grad_features_t: [D, G] accumulate.
    """
    pixel, gaussian, alpha, T = band.pixel, band.gaussian, band.alpha, band.transmittance
    grad_pix = grad_out_t.index_select(1, pixel)  # [D, M]
    weight = alpha * T
    # L = sum_i w_i s_i per pixel with w_i = alpha_i prod_{j<i} (1 - alpha_j) and s_i = dL/dout . f_i
    s = (grad_pix * features_t.index_select(1, gaussian)).sum(0)
    ws = weight * s
    _, last = _segment_ends(band.counts)
    upto = torch.cumsum(ws, 0, dtype=torch.float64)
    behind = (upto.index_select(0, last) - upto).to(alpha.dtype)  # sum over the pairs behind
    grad_alpha = T * s - behind / (1.0 - alpha)
    grad_alpha = torch.where(alpha < ALPHA_MAX, grad_alpha, torch.zeros_like(grad_alpha))

    mx, my, ca, cb, cc, opac = table_t.index_select(1, gaussian)
    x = pixel % width
    y = torch.div(pixel, width, rounding_mode="floor") % height
    dx = mx - (x.to(mx.dtype) + 0.5)
    dy = my - (y.to(my.dtype) + 0.5)
    grad_sigma = -alpha * grad_alpha  # alpha = o exp(-sigma)
    grads = torch.stack([
        grad_sigma * (ca * dx + cb * dy), grad_sigma * (cb * dx + cc * dy),
        0.5 * grad_sigma * dx * dx, grad_sigma * dx * dy, 0.5 * grad_sigma * dy * dy,
        grad_alpha * alpha / opac,
    ])
    grad_table_t.index_add_(1, gaussian, grads)
    if grad_features_t is not None:
        grad_features_t.index_add_(1, gaussian, grad_pix * weight)


class _Composite(torch.autograd.Function):
    """Front-to-back alpha compositing of the projected Gaussians, with a hand-written backward."""

    @staticmethod
    def forward(ctx, spans: RowSpans, bands: list, shape: tuple, table_t: Tensor, features_t: Tensor) -> Tensor:
        B, H, W = shape
        out_t = features_t.new_zeros(features_t.shape[0], B * H * W)
        done = [composite_band(spans, lo, hi, features_t, out_t) for lo, hi in bands]
        ctx.done, ctx.shape = done, shape
        ctx.save_for_backward(table_t, features_t)
        return out_t

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out_t: Tensor):
        table_t, features_t = ctx.saved_tensors
        _, H, W = ctx.shape
        grad_out_t = grad_out_t.contiguous()
        grad_table_t = torch.zeros_like(table_t)
        grad_features_t = torch.zeros_like(features_t) if ctx.needs_input_grad[4] else None
        for band in ctx.done:
            composite_band_backward(band, W, H, grad_out_t, features_t, table_t, grad_table_t, grad_features_t)
        return None, None, None, grad_table_t, grad_features_t


def rasterize_torch(
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
) -> tuple[Tensor, Tensor, Tensor]:
    """-> features [B, H, W, C] (background blended), alpha [B, H, W, 1], expected depth [B, H, W, 1]."""
    B, N, C = features.shape
    proj = project_gaussians(means, scales, quats, opacities, viewmats, Ks, width, height, near, far, antialiased)
    with torch.no_grad():
        spans = row_spans(proj, width, height)
        bands = split_bands(spans, PAIRS_PER_BAND)
    # Per-Gaussian inputs of the compositor, channels first so that each is one contiguous row.
    table_t = torch.cat([proj.means2d.reshape(-1, 2).t(), proj.conics.reshape(-1, 3).t(),
                         proj.opacities.reshape(1, -1)])  # [6, G]
    ones = torch.ones_like(proj.depths).reshape(1, -1)
    features_t = torch.cat([features.reshape(-1, C).t(), proj.depths.reshape(1, -1), ones])  # [C + 2, G]
    out_t = _Composite.apply(spans, bands, (B, height, width), table_t, features_t)
    out = out_t.t().reshape(B, height, width, C + 2)
    image, depth_sum, alpha = out[..., :C], out[..., C:C + 1], out[..., C + 1:]
    depth = depth_sum / alpha.clamp_min(1e-10)  # gsplat "ED": alpha-normalised expected depth
    if background is not None:
        image = image + background[:, None, None, :] * (1.0 - alpha)
    return image, alpha, depth
