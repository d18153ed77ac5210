"""One training step's pieces: a frame's render, its seam and colour weights, the loss terms, and the
optimiser's parameter groups.

Per step one frame is drawn (balanced sampling), the avatar is posed with the frame's SMPL-X (plus a
learnt per-frame correction) and rendered once with features [colour, seam colour, normal, part colour,
hand]; render and frame are composited over a random plain colour, and the losses are:
- photo: image loss (0.8 L1 + 0.2 D-SSIM), down-weighted inside seams (weight ``seam``), where the
  colour is pulled towards the seam colour instead (weight 1 - ``seam``; presets may set ``seam``: the
  CPU ``preview`` keeps the photo at full weight); mask; depth/normal/part losses at the photo
  geometry weight (0.1); none of it reaches the Gaussians' sizes (:func:`taught_scales`), and its
  colour loss reaches a Gaussian's colour only as far as the surface faces the photo
  (:func:`photo_colour_share`);
- generated frames: image loss on colour and on seam colour; mask, depth (scale-invariant), normals,
  parts at weight 1; the image loss reaches the deformation (means, MLP, triplane) at the generated
  image weight (0.1: geometry-weighted optimisation) while colours get it in full; the built-in
  re-poser's frames teach neither colours nor the rest shape's offsets (:func:`colour_gradient_scale`);
- hand mask (rendered hand Gaussians vs the body mesh's hands); Laplacian regularisers on offsets,
  scales and colours; a prior pulling colours towards the starting ones.
Image losses count only inside each frame's person (a pixel in from its edge): outside it the mask
loss teaches "no avatar here", and a colour loss there would paint Gaussians in the random background.
"""

from __future__ import annotations

import torch

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.parts import PART_COLORS
from persona_studio.body.subdivide import uniform_laplacian
from persona_studio.render.body import facing_cosines, vertex_normals
from persona_studio.render.rasterize import RasterOutput, gradient_scaled, rasterize_cameras
from persona_studio.render.texture import GRAZING_COS, SQUARE_COS
from persona_studio.train import losses
from persona_studio.train.frames import FrameData
from persona_studio.train.seams import seam_mask
from persona_studio.train.settings import LossWeights

ANCHOR_REACH = 1.0  # how far a Gaussian may slide along the body from its start, in its starting sizes
COLOUR_ADAM_EPS = 1e-5  # about a well-seen Gaussian's colour gradient at the preview's size
# The SMPL-X keys each frame learns a correction of (its fit or generator may be a little off).
CORRECTED_KEYS = ("global_orient", "body_pose", "jaw_pose", "left_hand_pose", "right_hand_pose", "transl")


def colour_gradient_scale(frame: FrameData, weights: LossWeights, geometry_weighting: bool) -> float:
    """How much more of a frame's image loss the colours get than the deformation: a generated frame's
    image loss is weighted ``generated_image`` (it reaches means, MLP and triplane at that weight) and
    the colours' gradients are scaled back up by its inverse, so they learn from it in full.

    None of it reaches them from a frame that does not teach appearance (the built-in re-poser's, a
    render of the surface the avatar starts from; ``FrameData.teaches_appearance``): taught by those,
    the colours could only drift from the start, and every view the photo does not see paid for it
    (benchmarks/novel_views.py, one photo, three seeds: the back 0.05-0.10 dB below the untrained
    avatar; with neither the colours nor the offsets taught by them (see ``Trainer.train_step``),
    +0.02 to +0.05 dB). The colours' regularisers still act at every step."""
    if not frame.teaches_appearance:
        return 0.0
    if frame.is_photo or not geometry_weighting:
        return 1.0
    return 1.0 / max(weights.generated_image, 1e-6)


def render_frame(avatar: Avatar, frame: FrameData, params: dict[str, torch.Tensor], features: str = "train",
                 colour_scale: float = 1.0) -> RasterOutput:
    """Render ``avatar`` posed with ``params`` (each [1, ...]) from ``frame``'s camera: 'train' features
    (13 channels: colour, seam colour, camera-space normal, part colour, hand) or 'positions' (the
    canonical positions in [0, 1]^3, for seams). ``colour_scale``: see :func:`colour_gradient_scale`."""
    posed = avatar.pose(params)
    means = posed.means[0]
    camera = frame.camera
    if features == "positions":
        lo, hi = avatar.template.min(0).values, avatar.template.max(0).values
        feats = (avatar.template - lo) / (hi - lo)
    else:
        R = torch.as_tensor(camera.R, dtype=torch.float32, device=means.device)
        world_normals = vertex_normals(means, avatar.faces)
        if frame.is_photo:
            colour_scale = colour_scale * photo_colour_share(means.detach(), world_normals.detach(), camera.position)
        colors = gradient_scaled(posed.colors, colour_scale)
        seam_colors = gradient_scaled(avatar.seam_colors.clamp(0, 1), colour_scale)
        normals = world_normals @ R.T
        part_rgb = torch.as_tensor(PART_COLORS, device=means.device)[avatar.parts]
        feats = torch.cat([colors, seam_colors, normals, part_rgb, avatar.hand_mask[:, None].float()], 1)
    return rasterize_cameras([camera], taught_means(means, frame), taught_scales(posed.scales, frame),
                             posed.opacities, feats, antialiased=True, eps2d=frame.blur)


def photo_colour_share(means: torch.Tensor, normals: torch.Tensor, camera_position) -> torch.Tensor:
    """[N, 1] how much of a photo's colour loss reaches each Gaussian's colour, from its position
    ``means`` [N, 3] and surface normal ``normals`` [N, 3]: all of it where the surface faces the photo
    squarely, as the re-poser trusts the photo's colours (``SQUARE_COS``), none where the photo sees it
    edge-on (``GRAZING_COS``), a ramp between.

    At grazing angles a pixel spans a long strip of the surface and, next to the silhouette, blends the
    person with the photo's background: the colours the re-poser infers there (from what the photo sees
    squarely) were trained towards those pixels into light blotches down the sides of the legs, which a
    side view sees face-on (lhm_000057, a light background, preview preset: of the leg Gaussians facing
    the photo at cosines 0.1-0.4, 10 % changed by over 0.05 in brightness, 4 % with the share; mean
    change 0.019 -> 0.010). The multi-view set (dark background) scores the same within its run-to-run
    spread (one photo, trained: front/sides/back 21.20/18.77/20.40 dB -> 21.04/18.73/20.40, IoU equal)."""
    facing = facing_cosines(means, normals, camera_position)[:, None]
    return ((facing - GRAZING_COS) / (SQUARE_COS - GRAZING_COS)).clamp(0, 1)


class _AcrossRays(torch.autograd.Function):
    """Identity on points [N, 3]; their gradient loses its part along each point's unit ray [N, 3]."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rays)
        return points.view_as(points)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rays,) = ctx.saved_tensors
        return grad - (grad * rays).sum(-1, keepdim=True) * rays, None


def taught_means(means: torch.Tensor, frame: FrameData) -> torch.Tensor:
    """The posed means [N, 3] as a frame's render takes them: a photo's render moves a Gaussian across
    the photo's rays, never along its own ray (towards or away from the camera).

    A photo cannot tell how far along its ray a point lies, and its depth target is relative: what
    pushed the Gaussians along the rays was the image loss squaring the outline and texture with the
    fit by perspective, the front Gaussians 3 mm into the body on average, which thinned the body
    from the side (benchmarks/novel_views.py, one photo, two seeds: sides IoU 0.847/0.851 -> 0.854/0.856
    with that part dropped, every group's IoU up, sides and back PSNR up to +0.07 dB, the front 0.2 dB down, still
    0.7 above the untrained avatar). The depth is the start's (the re-poser's surface) or what frames
    that see the body from other sides teach."""
    if not frame.is_photo:
        return means
    position = torch.as_tensor(frame.camera.position, dtype=means.dtype, device=means.device)
    rays = torch.nn.functional.normalize(means.detach() - position, dim=-1)
    return _AcrossRays.apply(means, rays)


def taught_scales(scales: torch.Tensor, frame: FrameData) -> torch.Tensor:
    """The Gaussians' sizes [N] as a frame's render takes them: a photo's render does not teach them.

    The Gaussians are round, so the size that sharpens a photo's texture is also each one's thickness,
    which the photo cannot see: trained on the photo, the front and back Gaussians shrank to its detail
    and thinned the body's outline from the side (benchmarks/novel_views.py, one photo: sides PSNR
    18.49-18.56 dB in three runs, 18.66 when only the generated frames, which see the body from all
    round, size the Gaussians). The photo's detail is learnt by the colours, its outline by the means."""
    return scales.detach() if frame.is_photo else scales


@torch.no_grad()
def frame_seams(avatar: Avatar, frame: FrameData, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """[H, W] bool seam mask of a frame's view: where the rendered canonical positions jump."""
    out = render_frame(avatar, frame, params, "positions")
    return seam_mask(out.features, out.alpha[..., 0])[0]


def colour_weight(mask: torch.Tensor) -> torch.Tensor:
    """[H, W] person mask -> [H, W] where the frame's colours teach the avatar's colours: inside the
    person, one pixel in from the edge. Outside it the only right answer is "no avatar here", which the
    mask loss teaches; a colour loss there would paint the Gaussians in the (random) background colour,
    and the edge pixels blend the person into the photo's own background (a light rim)."""
    person = (mask > 0.5).float()[None, None]
    return -torch.nn.functional.max_pool2d(-person, 3, stride=1, padding=1)[0, 0]


def data_losses(out: RasterOutput, frame: FrameData, weights: LossWeights, seams: torch.Tensor,
                colour_weights: torch.Tensor, background: torch.Tensor,
                geometry_weighting: bool) -> dict[str, torch.Tensor]:
    """The terms comparing a 'train' render (batch of one) with its frame, both composited over the
    plain ``background`` colour [3]; ``seams`` and ``colour_weights`` are the frame's [H, W] masks."""
    w, f = weights, frame
    feat, alpha = out.features[0], out.alpha[0, ..., 0]
    safe = alpha.clamp_min(1e-4)[..., None]
    behind = (1 - alpha[..., None]) * background
    rgb, seam_rgb = feat[..., 0:3] + behind, feat[..., 3:6] + behind
    target = f.rgb + (1 - f.mask[..., None]) * (background - 1)  # the frame's person over it
    normal, part_rgb, hands = feat[..., 6:9] / safe, feat[..., 9:12] / safe, feat[..., 12]
    inside = (f.mask > 0.5) & (alpha > 0.5)
    terms: dict[str, torch.Tensor] = {"mask": w.mask * (alpha - f.mask).abs().mean()}
    geometry = w.photo_geometry if f.is_photo else 1.0
    valid_depth = inside & (f.depth > 0)
    terms["depth"] = geometry * w.depth * losses.scale_invariant_depth(out.depth[0, ..., 0][None], f.depth[None], valid_depth[None])
    terms["normal"] = geometry * w.normal * losses.normal_loss(normal[None], f.normal[None], inside[None])
    union = (f.mask > 0.5) | (alpha > 0.5)
    terms["parts"] = geometry * w.parts * ((part_rgb - f.part_rgb).abs().sum(-1) * union).sum() / union.sum().clamp_min(1)
    if f.is_photo:
        # Inside seams the photo keeps weight ``seam`` and the seam colour the rest, both per pixel
        # on the same footing as the image loss (normalised by the same total weight).
        weight = torch.where(seams, torch.full_like(f.mask, w.seam), torch.ones_like(f.mask)) * colour_weights
        terms["image"] = w.image * losses.image_loss(rgb[None], target[None], weight[None])
        seam_pull = (rgb - seam_rgb.detach()).abs().mean(-1) * seams * (1 - w.seam) * colour_weights
        terms["seam"] = w.image * seam_pull.sum() / weight.sum().clamp_min(1.0)
    else:
        image_weight = w.generated_image if geometry_weighting else 1.0
        terms["image"] = image_weight * losses.image_loss(rgb[None], target[None], colour_weights[None])
        terms["seam"] = image_weight * losses.image_loss(seam_rgb[None], target[None], colour_weights[None])
    terms["hand_mask"] = w.hand_mask * ((hands - f.hands).abs() * torch.maximum(f.hands, hands.detach().clamp(0, 1))).mean()
    return terms


def regularisers(avatar: Avatar, weights: LossWeights, neighbours: torch.Tensor, counts: torch.Tensor,
                 prior_colors: torch.Tensor, prior_offsets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The terms on the avatar alone: Laplacians over the mesh (``neighbours``, ``counts`` from
    ``mesh_neighbours``) and the pull towards the starting colours ``prior_colors`` [N, 3].

    The offsets' Laplacian smooths what training changes, ``offsets - prior_offsets`` (the start is the
    re-poser's clothed volume): smoothing the offsets themselves would flatten that volume wherever the
    frames say little (the sides and the back), the hem of a jacket and the hair first."""
    w, a = weights, avatar
    laplacian = (w.laplacian_offsets * uniform_laplacian(a.offsets - prior_offsets, neighbours, counts)
                 + w.laplacian_scales * uniform_laplacian(a.log_scales[:, None], neighbours, counts)
                 + w.laplacian_colors * uniform_laplacian(a.colors, neighbours, counts))
    # The frames may move a colour only as far as their evidence agrees: a Gaussian few frames show
    # gets weak, inconsistent pulls that would otherwise add up to speckle on the unseen side.
    return {"laplacian": laplacian, "colour_prior": w.colour_prior * (a.colors - prior_colors).pow(2).sum(-1).mean()}


def anchored_offsets(offsets: torch.Tensor, prior_offsets: torch.Tensor, normals: torch.Tensor,
                     reach: torch.Tensor) -> torch.Tensor:
    """[N, 3] ``offsets`` with their slide along the surface since the start (``prior_offsets`` [N, 3];
    the part of the change perpendicular to the template's ``normals`` [N, 3]) held within ``reach`` [N]
    metres; the part along the normals, in and out of the body, is kept.

    Training moves a Gaussian wherever one frame's pixels pull it, and nothing else holds it to its
    vertex: Gaussians slid several of their own sizes along the body (a tenth of them over six), and
    where neighbours part the clothes open (the shirt's front showed through the back of a jacket).
    Along the normal a Gaussian may go anywhere (the clothed volume is learnt)."""
    change = offsets - prior_offsets
    along = (change * normals).sum(-1, keepdim=True) * normals  # [N, 3]
    slide = change - along
    length = slide.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return prior_offsets + along + slide * torch.clamp(reach[:, None] / length, max=1.0)


def pose_deltas(frames: list[FrameData]) -> dict[str, list[torch.Tensor]]:
    """The learnt per-frame SMPL-X corrections, zero to start: per key one [1, D] tensor per frame.
    Adam skips tensors without a gradient, so frames not drawn this step keep still (one shared [n, D]
    tensor would keep drifting them on stale momentum)."""
    return {k: [frames[0].smplx[k].new_zeros(1, frames[0].smplx[k].shape[1]).requires_grad_() for _ in frames]
            for k in CORRECTED_KEYS}


def optimiser_groups(avatar: Avatar, deltas: dict[str, list[torch.Tensor]]) -> list[dict]:
    """Adam's parameter groups, each with its ``base_lr`` (the learning rate before the live scale and
    the late decay)."""
    a = avatar
    groups = [
        {"params": [a.offsets], "lr": 1e-3}, {"params": list(a.triplane.parameters()) + list(a.mlp.parameters()), "lr": 1e-3},
        {"params": [a.log_scales], "lr": 1e-2},
        # Adam's steps do not shrink with the gradient while it is far above eps: a Gaussian the frames
        # barely show (a back Gaussian behind the photo's front surface gets a thousandth of a seen
        # one's gradient through the last transmittance) would take full steps on noise, a random walk
        # per channel (chroma speckle, saturated blobs on the unseen side). eps at a well-seen colour's
        # gradient keeps such steps in proportion to the evidence.
        {"params": [a.colors, a.seam_colors], "lr": 1e-2, "eps": COLOUR_ADAM_EPS},
        {"params": [d for k in CORRECTED_KEYS if "hand" not in k for d in deltas[k]], "lr": 1e-3},
        {"params": [d for k in CORRECTED_KEYS if "hand" in k for d in deltas[k]], "lr": 1e-4},
    ]
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups
