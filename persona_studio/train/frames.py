"""The training set's frames as tensors at the training resolution, and which of them are held out.

Frame 0 is the photo, frames 1..T the generated ones, T+1.. the subject's extra photos. Colours go on
white like the renders; depth, normals and part labels are resized nearest (no blended labels or depths
across an edge); each frame also carries the body mesh's hands rendered from its camera (the hand-mask
loss's target), and the blur its renders take (:func:`render_blur`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from persona_studio.body.model import BodyModel, smplx_tensors
from persona_studio.body.parts import PART_COLORS, PART_INDEX, vertex_parts
from persona_studio.render.camera import Camera
from persona_studio.render.image import photo_on_white, resize_image
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.render.torch_backend import EPS2D
from persona_studio.workspace.training_set import TrainingSet


@dataclass
class FrameData:
    """One training frame at the training resolution, as tensors (the photo is frame 0)."""

    rgb: torch.Tensor  # [H, W, 3] on white
    mask: torch.Tensor  # [H, W]
    depth: torch.Tensor  # [H, W] (0 = none)
    normal: torch.Tensor  # [H, W, 3]
    part_rgb: torch.Tensor  # [H, W, 3]
    hands: torch.Tensor  # [H, W] body mesh's hands
    camera: Camera
    smplx: dict[str, torch.Tensor]  # each [1, ...]
    is_photo: bool
    # False for the built-in re-poser's frames: renders of the surface the avatar starts from, so what
    # they show of its colours and rest shape is the start itself (they teach how the body moves).
    teaches_appearance: bool
    blur: float  # px^2 at the training resolution: the rasteriser's eps2d for this frame's renders


def render_blur(training_width: int, native_width: int) -> float:
    """The blur (px^2 of the training image) that a render compared with a frame downsampled from
    ``native_width`` to ``training_width`` pixels must take: the rasteriser's usual 0.3 px^2, but of the
    frame's own pixels. With 0.3 px^2 of the smaller image every outline the avatar renders lies about
    half a training pixel further out than the downsampled frame's (which was photographed, or rendered,
    with its own pixels' blur), and the mask and part terms pull the whole avatar in by that much: 3 mm
    at the preview's 256 px, which the full-size views then see as a thinner person."""
    return EPS2D * min(1.0, training_width / native_width) ** 2


def hand_faces(model: BodyModel) -> np.ndarray:
    """[F_hand, 3] the body mesh's faces whose vertices all belong to a hand."""
    parts = vertex_parts(model.skinning_weights.numpy())
    hand = np.isin(parts, [PART_INDEX["left_hand"], PART_INDEX["right_hand"]])
    return model.faces[hand[model.faces].all(1)]


def load_frames(ts: TrainingSet, model: BodyModel, resolution: int,
                device: torch.device | str = "cpu") -> list[FrameData]:
    """Every frame of the training set at the training resolution, as tensors on ``device``."""
    hands = hand_faces(model)
    out = []
    for index in range(len(ts)):
        f = ts.load(index)
        camera = f.camera.with_longer_side(resolution)
        size = (camera.width, camera.height)
        rgb, mask = photo_on_white(f.rgb, f.mask, size)  # on white, like the renders
        params = smplx_tensors(f.smplx)
        with torch.no_grad():
            verts = model.forward(**params).vertices[0].numpy()
        parts = resize_image(f.parts.astype(np.float32), size, nearest=True).astype(int)
        image = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        out.append(FrameData(
            rgb=image(rgb), mask=image(mask), depth=image(resize_image(f.depth, size, nearest=True)),
            normal=image(resize_image(f.normal, size, nearest=True)), part_rgb=image(PART_COLORS[parts]),
            hands=image(mesh_silhouette(verts, hands, camera)), camera=camera,
            smplx={k: v.to(device) for k, v in params.items()}, is_photo=f.is_photo,
            teaches_appearance=f.is_photo or not ts.renders_its_surface,
            blur=render_blur(camera.width, f.camera.width)))
    return out


def split_generated(generated: list[int], held_out_share: float) -> tuple[list[int], list[int]]:
    """The generated frames' indices -> (trained on, held out): every k-th generated frame is held out
    for the mask-IoU figure, none when there are too few (4 or fewer) to spare one."""
    n_held = int(round(len(generated) * held_out_share)) if len(generated) > 4 else 0
    held_out = generated[:: max(1, len(generated) // max(n_held, 1))][:n_held] if n_held else []
    return [i for i in generated if i not in held_out], held_out
