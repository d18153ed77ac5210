"""Pure-PyTorch Gaussian rasteriser: the CPU reference, differentiable, same maths as gsplat 1.5.

Two stages:

1. ``project_gaussians`` (plain autograd, O(N)): world -> camera, EWA splatting through the Jacobian
   of the perspective projection, 0.3 px dilation of the 2D covariance (optionally compensating the
   opacity as in Mip-Splatting), an opacity-aware screen-space bounding box, near/far culling.
2. ``_Composite`` (a custom autograd Function): like gsplat, the image is cut into tiles (of
   TILE x TILE pixels); each tile gets the list of Gaussians whose alpha >= 1/255 ellipse touches
   it, nearest first; the lists are walked in steps of CHUNK Gaussians for all tiles at once, as
   dense [tiles, CHUNK, pixels] arrays: log alpha from each Gaussian's quadratic form in
   tile-local coordinates (one small matrix product, accurate in float32), transmittance by a
   cumulative product, features by a batched matrix product. Tiles whose pixels are all done
   (transmittance would fall to 1e-4) drop out, gsplat's early exit. The backward pass is written
   by hand and walks the same steps in reverse: autograd over the per-pixel arrays would keep far
   more memory and time than the maths needs. It keeps about 9 bytes per (pixel, Gaussian) pair
   visited, e.g. ~100 MB for a 55K-Gaussian body at 512^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# gsplat 1.5 constants (rendering.py defaults and cuda/include/Common.h).
EPS2D = 0.3  # px^2 added to the 2D covariance diagonal
ALPHA_MIN = 1.0 / 255.0  # pairs fainter than this are skipped
ALPHA_MAX = 0.999  # per-pair alpha is clamped to this
T_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
EXTEND_MAX = 3.33  # bounding box half-size in standard deviations, at most

TILE = 4  # tile side in pixels: small tiles waste little on pixels a Gaussian misses
CHUNK = 32  # Gaussians per tile composited per step


@dataclass
class Projected:
    """Screen-space Gaussians of B cameras (culled ones have ``radii == 0``)."""

    means2d: Tensor  # [B, N, 2] pixel coordinates of the centres
    conics: Tensor  # [B, N, 3] (xx, xy, yy) of the inverse of the dilated 2D covariance
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
    eps2d: float = EPS2D,
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
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    opacities = opacities.expand(z.shape)
    if antialiased:  # Mip-Splatting: keep the integral of the dilated Gaussian unchanged
        opacities = opacities * torch.sqrt((det_orig / det).clamp_min(0.0))
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)  # [B, N, 2]
    conics = torch.stack([c / det, -b / det, a / det], -1)  # [B, N, 3]

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
    return Projected(means2d, conics, means_c[..., 2], opacities, radii)


# --------------------------------------------------------------------------------------------
# Tile lists (no gradients)


@dataclass
class TileLists:
    """For every tile of TILE x TILE pixels of every camera, the Gaussians that may reach it, nearest first."""

    gaussian: Tensor  # [I] flat Gaussian index of each (tile, Gaussian) intersection, tile-major
    start: Tensor  # [T] first intersection of each tile (T = B * tiles_y * tiles_x)
    count: Tensor  # [T] intersections of each tile
    tiles_x: int
    tiles_y: int


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Counts [K] -> (owner [M], rank within owner [M]) for M = sum(counts) enumerated items."""
    owner = torch.repeat_interleave(counts)
    rank = torch.arange(owner.numel(), device=counts.device) - (torch.cumsum(counts, 0) - counts).index_select(0, owner)
    return owner, rank


def tile_lists(proj: Projected, width: int, height: int) -> TileLists:
    """Bin the visible Gaussians into the tiles their ellipse alpha >= 1/255 touches, nearest first.

    Rows of pixels come from the opacity-aware box of gsplat 1.5 (half height sqrt(2 log(255 o) var_y));
    then, per band of TILE rows, the ellipse's exact horizontal extent over those rows picks the tiles,
    which skips the box's empty corners. Bounds carry a 0.01 px margin: the per-pixel alpha test
    while compositing is what decides.
    """
    B, N = proj.depths.shape
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    valid = (proj.radii > 0).any(-1).reshape(-1)
    order = torch.argsort(proj.depths.detach().reshape(-1), stable=True)  # nearest first
    g = order[valid[order]]
    mx, my = proj.means2d.detach().reshape(-1, 2).index_select(0, g).double().unbind(-1)
    a, b, c = proj.conics.detach().reshape(-1, 3).index_select(0, g).double().unbind(-1)
    sigma_max = torch.log(proj.opacities.detach().reshape(-1).index_select(0, g).double() / ALPHA_MIN).clamp_min(0.0)
    det = (a * c - b * b).clamp_min(1e-30)
    # The ellipse sigma <= sigma_max, with d = mean - pixel centre: d_x = (-b d_y +- sqrt(r2 - det d_y^2)) / a.
    r2 = 2.0 * a * sigma_max
    half_h = torch.sqrt(r2 / det)  # vertical half extent
    dy_star = b * torch.sqrt(2.0 * sigma_max / (det * c))  # where the ellipse reaches furthest right (left: -)
    y0 = torch.ceil(my - half_h - 0.51).clamp_min(0)
    y1 = torch.floor(my + half_h - 0.49).clamp_max(height - 1)
    ty0 = torch.div(y0, TILE, rounding_mode="floor")
    n_bands = ((torch.div(y1, TILE, rounding_mode="floor") - ty0 + 1) * (y1 >= y0)).long()

    # Per (Gaussian, band of TILE pixel rows): the ellipse's extent in x over the band's pixel centres.
    item, k = _expand(n_bands)
    per_gaussian = torch.stack([mx, my, a, b, det, r2, half_h, dy_star, y0, y1, ty0], 1).index_select(0, item)
    mx, my, a, b, det, r2, half_h, dy_star, y0, y1, ty0 = per_gaussian.unbind(1)
    ty = ty0 + k
    dy_lo = (my - (torch.minimum(ty * TILE + TILE - 1, y1) + 0.5)).clamp_min(-half_h)
    dy_hi = (my - (torch.maximum(ty * TILE, y0) + 0.5)).clamp_max(half_h)
    dy_right = torch.minimum(torch.maximum(dy_star, dy_lo), dy_hi)
    dy_left = torch.minimum(torch.maximum(-dy_star, dy_lo), dy_hi)
    x_right = mx + (b * dy_right + torch.sqrt((r2 - det * dy_right**2).clamp_min(0.0))) / a
    x_left = mx + (b * dy_left - torch.sqrt((r2 - det * dy_left**2).clamp_min(0.0))) / a
    x0 = torch.ceil(x_left - 0.51).clamp_min(0)  # first and last pixel column reached
    x1 = torch.floor(x_right - 0.49).clamp_max(width - 1)
    tx0 = torch.div(x0, TILE, rounding_mode="floor")
    n_tiles = ((torch.div(x1, TILE, rounding_mode="floor") - tx0 + 1) * ((x1 >= x0) & (dy_lo <= dy_hi))).long()

    band, k = _expand(n_tiles)
    gaussian = g.index_select(0, item).index_select(0, band)
    camera = torch.div(gaussian, N, rounding_mode="floor")
    first_tile = (ty * tiles_x + tx0).long().index_select(0, band)
    tile = (camera * (tiles_x * tiles_y) + first_tile + k).to(torch.int32)
    tile, by_tile = torch.sort(tile, stable=True)  # stable: nearest first per tile
    count = torch.bincount(tile, minlength=B * tiles_x * tiles_y)
    return TileLists(gaussian.index_select(0, by_tile), torch.cumsum(count, 0) - count, count, tiles_x, tiles_y)


# --------------------------------------------------------------------------------------------
# Compositing


def _pixel_basis(like: Tensor) -> Tensor:
    """[6, TILE*TILE] monomials (1, u, v, u^2, uv, v^2) of the pixel centres, tile-local coordinates."""
    i = torch.arange(TILE * TILE, dtype=like.dtype, device=like.device)
    u, v = i % TILE + 0.5, torch.div(i, TILE, rounding_mode="floor") + 0.5
    return torch.stack([torch.ones_like(u), u, v, u * u, u * v, v * v])


def _gaussian_rows(table: Tensor) -> Tensor:
    """[G, 6] (mean x, mean y, conic xx, xy, yy, opacity) -> [7, G + 1] rows
    (mean x, mean y, conic xx, xy, yy, log opacity, opacity); column G is an empty slot (opacity 0)."""
    rows = torch.cat([table.t(), table.new_zeros(6, 1)], 1)
    return torch.cat([rows[:5], torch.log(rows[5:]), rows[5:]])


def _slot_gaussians(rows: Tensor, idx: Tensor, origin: Tensor) -> tuple[Tensor, ...]:
    """Gaussians idx [A, L] in tiles with corners origin [A, 2] -> their mean relative to the corner,
    conic, log opacity and opacity, each [A, L]."""
    mx, my, a, b, c, log_o, o = rows.index_select(1, idx.reshape(-1)).view(7, *idx.shape)
    return mx - origin[:, :1], my - origin[:, 1:], a, b, c, log_o, o


def _log_alpha_coefficients(mx: Tensor, my: Tensor, a: Tensor, b: Tensor, c: Tensor, log_o: Tensor) -> Tensor:
    """[6, A, L] coefficients Q with Q . (1, u, v, u^2, uv, v^2) = log(o) - sigma(u, v).

    sigma = 0.5 a dx^2 + b dx dy + 0.5 c dy^2 with (dx, dy) = mean - pixel centre (gsplat).
    """
    qu = a * mx + b * my
    qv = b * mx + c * my
    const = log_o - 0.5 * (mx * qu + my * qv)
    return torch.stack([const, qu, qv, -0.5 * a, -b, -0.5 * c])


@dataclass
class Step:
    """One compositing step, kept for the backward pass."""

    tiles: Tensor  # [A] tiles composited in this step
    idx: Tensor  # [A, L] Gaussian in each slot (G = an empty slot)
    gaussians: tuple[Tensor, ...]  # their mean relative to the tile corner, conic and opacity, each [A, L]
    weight: Tensor  # [A, L, P] alpha * transmittance in front, where composited; else 0
    odds: Tensor  # [A, L, P] alpha / (1 - alpha)
    clamped: Tensor | None  # [A, L, P] bool, alpha clamped to ALPHA_MAX (no gradient); None: nowhere


def _tile_origins(tiles: Tensor, lists: TileLists, dtype: torch.dtype) -> Tensor:
    """[A] tile indices -> [A, 2] pixel coordinates (x, y) of their top-left corners."""
    local = tiles % (lists.tiles_x * lists.tiles_y)
    x = local % lists.tiles_x
    y = torch.div(local, lists.tiles_x, rounding_mode="floor")
    return torch.stack([x, y], -1).to(dtype) * TILE


def _to_image(tiled: Tensor, lists: TileLists, B: int, H: int, W: int) -> Tensor:
    """[T, P, D] per-tile pixels -> [B, H, W, D]."""
    D = tiled.shape[-1]
    x = tiled.view(B, lists.tiles_y, lists.tiles_x, TILE, TILE, D).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, lists.tiles_y * TILE, lists.tiles_x * TILE, D)[:, :H, :W]


def _to_tiles(image: Tensor, lists: TileLists) -> Tensor:
    """[B, H, W, D] -> [T, P, D] per-tile pixels (zeros beyond the image)."""
    B, H, W, D = image.shape
    padded = image.new_zeros(B, lists.tiles_y * TILE, lists.tiles_x * TILE, D)
    padded[:, :H, :W] = image
    x = padded.view(B, lists.tiles_y, TILE, lists.tiles_x, TILE, D).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, TILE * TILE, D)


class _Composite(torch.autograd.Function):
    """Front-to-back alpha compositing of projected Gaussians over tiles, with a hand-written backward."""

    @staticmethod
    def forward(ctx, lists: TileLists, shape: tuple, table: Tensor, features: Tensor) -> Tensor:
        """table: [G, 6] (mean x, mean y, conic xx, xy, yy, opacity); features: [G, D] -> [B, H, W, D]."""
        B, H, W = shape
        G, D = features.shape
        rows = _gaussian_rows(table)
        features = torch.cat([features, features.new_zeros(1, D)])  # row G: the empty slot
        basis = _pixel_basis(table)
        T_run = _to_tiles(table.new_ones(B, H, W, 1), lists).squeeze(-1)  # [T, P] transmittance; 0 off-image
        out = table.new_zeros(T_run.shape[0], TILE * TILE, D)
        slots = torch.arange(CHUNK, device=table.device)
        intersections = torch.cat([lists.gaussian, lists.gaussian.new_tensor([G])])
        end = lists.start + lists.count
        need_grad = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        steps = []
        active = (lists.count > 0).nonzero().squeeze(1)
        offset = 0
        while active.numel():
            pos = lists.start[active, None] + offset + slots  # [A, L]
            pos = torch.where(pos < end[active, None], pos, intersections.numel() - 1)
            idx = intersections.index_select(0, pos.reshape(-1)).view(pos.shape)
            mx, my, a, b, c, log_o, o = _slot_gaussians(rows, idx, _tile_origins(active, lists, table.dtype))
            Q = _log_alpha_coefficients(mx, my, a, b, c, log_o)
            alpha = (Q.view(6, -1).t() @ basis).view(*idx.shape, -1).exp_().clamp_max_(ALPHA_MAX)  # [A, L, P]
            alpha = torch.nn.functional.threshold_(alpha, ALPHA_MIN, 0.0)  # gsplat skips alpha < 1/255
            one_minus = 1.0 - alpha
            T_before = T_run.index_select(0, active)
            T_after = torch.cumprod(one_minus, 1).mul_(T_before[:, None])
            # gsplat stops a pixel before its transmittance reaches 1e-4: zeroing T there also zeroes
            # the weights alpha * T_before = odds * T_after of that pair and all behind it.
            T_after = torch.nn.functional.threshold_(T_after, T_MIN, 0.0)
            odds = torch.div(alpha, one_minus, out=one_minus)
            weight = odds * T_after
            F = features.index_select(0, idx.reshape(-1)).view(*idx.shape, D)
            out.index_add_(0, active, torch.bmm(weight.transpose(1, 2), F))
            T_run.index_copy_(0, active, T_after[:, -1])
            if need_grad:
                clamped = alpha == ALPHA_MAX if bool((o >= ALPHA_MAX).any()) else None
                steps.append(Step(active, idx, (mx, my, a, b, c, o), weight, odds, clamped))
            offset += CHUNK
            going = (lists.count[active] > offset) & (T_after[:, -1] > 0).any(1)
            active = active[going]
        ctx.steps, ctx.lists = steps, lists
        ctx.save_for_backward(features)
        return _to_image(out, lists, B, H, W)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_image: Tensor):
        """[B, H, W, D] image gradient -> gradients of ``table`` [G, 6] and ``features`` [G, D], replaying the
        forward's steps back to front."""
        (features,) = ctx.saved_tensors
        lists = ctx.lists
        D = features.shape[1]
        basis = _pixel_basis(features)  # [6, P]
        grad_tiles = _to_tiles(grad_image.contiguous(), lists)  # [T, P, D]
        behind_run = grad_image.new_zeros(grad_tiles.shape[:2])  # [T, P] sum of w s over later steps
        grad_table_t = features.new_zeros(6, features.shape[0])
        grad_features_t = features.new_zeros(D, features.shape[0])
        for step in reversed(ctx.steps):
            A, L = step.idx.shape
            flat_idx = step.idx.reshape(-1)
            g = grad_tiles.index_select(0, step.tiles)  # [A, P, D]
            # Per pixel, loss = sum_i w_i s_i with w_i = alpha_i prod_{j<i} (1 - alpha_j), s_i = dloss/dout . f_i:
            # dloss/dalpha_i = w_i s_i / alpha_i - (sum_{j>i} w_j s_j) / (1 - alpha_i). As alpha = exp(log o - sigma),
            # dloss/dlog_alpha_i = w_i s_i - odds_i * behind_i, which is 0 wherever nothing was composited.
            s = torch.bmm(features.index_select(0, flat_idx).view(A, L, D), g.transpose(1, 2))  # [A, L, P]
            ws = step.weight * s
            upto = torch.cumsum(ws, 1)
            later = behind_run.index_select(0, step.tiles) + upto[:, -1]
            behind_run.index_copy_(0, step.tiles, later)
            grad_log_alpha = torch.addcmul(ws, step.odds, later[:, None] - upto, value=-1.0)
            if step.clamped is not None:
                grad_log_alpha.masked_fill_(step.clamped, 0.0)
            m = (basis @ grad_log_alpha.view(-1, TILE * TILE).t()).view(6, A, L)
            s0, su, sv, suu, suv, svv = m
            mx, my, a, b, c, o = step.gaussians
            # sums of grad_log_alpha * (dx, dy, dx^2, dx dy, dy^2) with dx = mx - u, dy = my - v
            sx, sy = mx * s0 - su, my * s0 - sv
            sxx = mx * mx * s0 - 2.0 * mx * su + suu
            sxy = mx * my * s0 - mx * sv - my * su + suv
            syy = my * my * s0 - 2.0 * my * sv + svv
            grads = torch.stack([-(a * sx + b * sy), -(b * sx + c * sy), -0.5 * sxx, -sxy, -0.5 * syy,
                                 s0 / o.clamp_min(ALPHA_MIN)])
            grad_table_t.index_add_(1, flat_idx, grads.view(6, -1))
            if ctx.needs_input_grad[3]:
                grad_f = torch.bmm(g.transpose(1, 2), step.weight.transpose(1, 2))  # [A, D, L]
                grad_features_t.index_add_(1, flat_idx, grad_f.permute(1, 0, 2).reshape(D, -1))
        grad_table = grad_table_t[:, :-1].t() if ctx.needs_input_grad[2] else None
        grad_features = grad_features_t[:, :-1].t() if ctx.needs_input_grad[3] else None
        return None, None, grad_table, grad_features


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
    eps2d: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """-> features [B, H, W, C] (background blended), alpha [B, H, W, 1], expected depth [B, H, W, 1]."""
    B, N, C = features.shape
    proj = project_gaussians(means, scales, quats, opacities, viewmats, Ks, width, height, near, far, antialiased,
                             eps2d)
    with torch.no_grad():
        lists = tile_lists(proj, width, height)
    table = torch.cat([proj.means2d, proj.conics, proj.opacities[..., None]], -1).reshape(B * N, 6)
    # Depth and a constant 1 ride along as feature channels: their composites are the depth sum and alpha.
    channels = torch.cat([features, proj.depths[..., None], torch.ones_like(proj.depths)[..., None]], -1)
    out = _Composite.apply(lists, (B, height, width), table, channels.reshape(B * N, C + 2))
    image, depth_sum, alpha = out[..., :C], out[..., C:C + 1], out[..., C + 1:]
    depth = depth_sum / alpha.clamp_min(1e-10)  # gsplat "ED": alpha-normalised expected depth
    if background is not None:
        image = image + background[:, None, None, :] * (1.0 - alpha)
    return image, alpha, depth
