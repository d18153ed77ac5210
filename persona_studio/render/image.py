"""Image resizing for every stage (one library: PIL's float mode, so no 8-bit rounding on the way) and
the photo-on-white convention the renders are compared in."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_image(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """[H, W] or [H, W, C] image (any numeric type) -> float32 resized to ``size`` (W, H), writable.

    Bilinear (PIL's, which widens its filter when shrinking, so it does not alias) or nearest, for
    labels and geometry that must not be blended.
    """
    mode = Image.NEAREST if nearest else Image.BILINEAR
    if array.ndim == 2:
        return np.array(Image.fromarray(np.asarray(array, np.float32), mode="F").resize(size, mode))
    return np.stack([resize_image(array[..., c], size, nearest) for c in range(array.shape[-1])], -1)


def photo_on_white(rgb: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """[H, W, 3] colours in [0, 1], [H, W] person mask -> ([h, w, 3] the person on white, [h, w] mask) at
    ``size`` (w, h): what a render on a white background is compared with."""
    mask = np.clip(resize_image(mask, size), 0.0, 1.0)
    rgb = resize_image(rgb, size)
    return rgb * mask[..., None] + (1.0 - mask[..., None]), mask
