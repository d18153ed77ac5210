"""The built-in re-poser: the photo projected onto the fitted body, re-posed, rendered.

Honest about what it is: a textured body, so it teaches the avatar the subject's colours and exact
geometry in new poses, but no cloth deformation (that is what a video generator such as MimicMotion
adds). It exists so the whole pipeline runs anywhere, with no weights and no GPU. The rendering itself
is ``render.body.BodyRenderer``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera


def render_sequence(renderer: BodyRenderer, colors: np.ndarray, vertices: np.ndarray, camera: Camera,
                    progress: Callable[[float, str], None] | None = None,
                    cancelled: Callable[[], bool] | None = None):
    """Yield a BodyRender for each frame's [V0, 3] posed vertices (a generator: frames stream to disk)."""
    colors_t = torch.as_tensor(colors)
    for i, frame in enumerate(vertices):
        if cancelled is not None and cancelled():
            raise InterruptedError("generation cancelled")
        with torch.no_grad():
            yield renderer.render(torch.as_tensor(frame), colors_t, camera)
        if progress is not None:
            progress((i + 1) / len(vertices), f"re-poser: frame {i + 1}/{len(vertices)}")
