"""The figures a run ends with and the preview images it shows on the way."""

from __future__ import annotations

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar
from persona_studio.render.rasterize import RasterOutput
from persona_studio.train import losses
from persona_studio.train.frames import FrameData
from persona_studio.train.step import render_frame


def on_white(out: RasterOutput) -> torch.Tensor:
    """A 'train' render (batch of one) -> [H, W, 3] its colours composited on white, like the frames."""
    return out.features[0, ..., :3] + (1 - out.alpha[0])


def preview_image(out: RasterOutput) -> np.ndarray:
    """A 'train' render (batch of one) -> [H, W, 3] uint8 on white."""
    return (on_white(out).detach().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)


@torch.no_grad()
def evaluate(avatar: Avatar, frames: list[FrameData], held_out: list[int],
             photo_params: dict[int, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Masked PSNR on the photo's view (frame 0) and, with more photos, on the others' (their mean);
    each posed with ``photo_params[index]`` (its learnt correction included); mask IoU on the
    ``held_out`` generated frames, posed with their own SMPL-X (no correction learnt)."""
    psnr = {}
    for index, params in photo_params.items():
        rgb = on_white(render_frame(avatar, frames[index], params))
        psnr[index] = losses.masked_psnr(rgb[None], frames[index].rgb[None], frames[index].mask[None])
    result = {"photo_psnr": psnr[0]}
    if len(psnr) > 1:
        result["other_photos_psnr"] = float(np.mean([v for i, v in psnr.items() if i != 0]))
    ious = []
    for index in held_out:
        f = frames[index]
        alpha = render_frame(avatar, f, dict(f.smplx)).alpha[0, ..., 0]
        ious.append(losses.mask_iou(alpha, f.mask))
    if ious:
        result["held_out_mask_iou"] = float(np.mean(ious))
    return result
