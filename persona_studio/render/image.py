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


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """[..., 3] linear RGB -> [..., 3] CIELAB (D65)."""
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[...] CIE76 difference of sRGB colours ``a`` and ``b`` [..., 3] in [0, 1] (broadcast)."""
    lab = lambda c: linear_to_lab(srgb_to_linear(np.clip(c, 0, 1)))  # noqa: E731
    return np.linalg.norm(lab(a) - lab(b), axis=-1)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear intensities in [0, 1] -> sRGB values."""
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.maximum(linear, 0) ** (1 / 2.4) - 0.055)


def with_colour_gain(image: np.ndarray, gain) -> np.ndarray:
    """[H, W, 3] uint8 sRGB with each channel's linear intensity multiplied by ``gain`` [3] (an exposure
    and white-balance change), as uint8."""
    linear = srgb_to_linear(image.astype(np.float32) / 255.0) * np.asarray(gain, np.float32)
    return (linear_to_srgb(np.clip(linear, 0.0, 1.0)) * 255 + 0.5).astype(np.uint8)
