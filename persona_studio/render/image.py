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


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear intensities."""
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear intensities in [0, 1] -> sRGB values."""
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.maximum(linear, 0) ** (1 / 2.4) - 0.055)


def with_colour_gain(image: np.ndarray, gain) -> np.ndarray:
    """[H, W, 3] uint8 sRGB with each channel's linear intensity multiplied by ``gain`` [3] (an exposure
    and white-balance change), as uint8."""
    linear = srgb_to_linear(image.astype(np.float32) / 255.0) * np.asarray(gain, np.float32)
    return (linear_to_srgb(np.clip(linear, 0.0, 1.0)) * 255 + 0.5).astype(np.uint8)
