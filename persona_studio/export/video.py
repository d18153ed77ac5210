"""Render a motion with a trained avatar into an MP4 (H.264 through imageio-ffmpeg).

Cameras: ``fixed`` frames the whole motion from the front; ``follow`` keeps the body's root centred;
``orbit`` circles the body once over the clip. Frames stream through ffmpeg to a temporary file that
replaces the target only when ffmpeg has finished cleanly and the file reads back with every frame, so a
cancelled export or a full disk leaves nothing behind and never replaces a good video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.motion import Motion, resample
from persona_studio.export import check_output_path
from persona_studio.fileio import write_video_atomic
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import rasterize_cameras

CAMERA_MODES = ("fixed", "follow", "orbit")


def _camera_for(centre: np.ndarray, radius: float, yaw: float, size: tuple[int, int], fov_deg: float = 35.0) -> Camera:
    distance = radius / np.tan(np.radians(fov_deg) / 2) * 1.15
    eye = centre + distance * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    return Camera.look_at(eye, centre, fov_y_deg=fov_deg, width=size[0], height=size[1])


def render_motion(avatar: Avatar, motion: Motion, *, size: tuple[int, int] = (512, 512), fps: float | None = None,
                  camera: str = "fixed", background: float = 1.0, batch: int = 8,
                  progress: Callable[[float, str], None] | None = None,
                  cancelled: Callable[[], bool] | None = None):
    """Yield [H, W, 3] uint8 frames of ``avatar`` performing ``motion``."""
    if camera not in CAMERA_MODES:
        raise ValueError(f"camera must be one of {', '.join(CAMERA_MODES)}, got {camera!r}")
    if fps is not None and abs(fps - motion.fps) > 1e-6:
        motion = resample(motion, fps)
    n = motion.num_frames
    with torch.no_grad():
        roots = avatar.pose(motion.pose_kwargs(), fast=True).means.mean(1).cpu().numpy()
    extent = float((avatar.template - avatar.template.mean(0)).abs().max()) + float(np.ptp(roots, axis=0).max()) / 2
    bg = torch.full((3,), background, device=avatar.template.device)
    for start in range(0, n, batch):
        if cancelled is not None and cancelled():
            raise InterruptedError("rendering cancelled")
        params = motion.pose_kwargs(slice(start, start + batch))
        with torch.no_grad():
            posed = avatar.pose(params, fast=True)
        for j in range(posed.means.shape[0]):
            i = start + j
            if camera == "fixed":
                cam = _camera_for(roots.mean(0), extent, 0.0, size)
            elif camera == "follow":
                cam = _camera_for(roots[i], extent, 0.0, size)
            else:
                cam = _camera_for(roots.mean(0), extent, 2 * np.pi * i / n, size)
            with torch.no_grad():
                out = rasterize_cameras([cam], posed.means[j], posed.scales, posed.opacities, posed.colors,
                                        background=bg, antialiased=True)
            yield (out.features[0].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            if progress is not None:
                progress((i + 1) / n, f"frame {i + 1}/{n}")


def beside(photo: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """[h, w, 3] photo scaled to the height of the [H, W, 3] frame (even width, for H.264), put on its left."""
    height = frame.shape[0]
    width = max(2, 2 * round(photo.shape[1] * height / photo.shape[0] / 2))
    scaled = np.asarray(Image.fromarray(photo).resize((width, height), Image.LANCZOS))
    return np.concatenate([scaled, frame], axis=1)


def export_video(avatar: Avatar, motion: Motion, target: str | Path, *, overwrite: bool = False,
                 photo: np.ndarray | None = None, **options) -> Path:
    """Write the motion as an H.264 MP4 at ``target`` (atomic; refuses to overwrite unless asked); with a
    ``photo`` ([h, w, 3] uint8), each frame shows it on the left of the render."""
    target = check_output_path(target, overwrite=overwrite)
    size = options.get("size")
    if size is not None and any(side <= 0 or side % 2 for side in size):
        raise ValueError(f"video size {size[0]}x{size[1]}: H.264 needs an even width and height, "
                         f"e.g. {size[0] + size[0] % 2}x{size[1] + size[1] % 2}")
    fps = options.get("fps") or motion.fps
    frames = render_motion(avatar, motion, **options)
    write_video_atomic(target, frames if photo is None else (beside(photo, frame) for frame in frames), fps)
    return target
