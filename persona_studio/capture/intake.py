"""Photo intake: read one photo of a person into a working-resolution RGB array, or refuse it clearly.

``load_photo`` accepts PNG, JPEG, WebP, BMP and TIFF; applies the EXIF orientation; turns grayscale,
16-bit, palette and CMYK images into 8-bit RGB; keeps an alpha channel as the person mask when the file
is a cut-out; reads the camera's focal length from EXIF when the camera wrote it; and downscales huge
photos to a working size while remembering the original's path, size and the scale between the two.
Every refusal is a :class:`PhotoError` whose message says what is wrong and what to do about it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_PERSON_HEIGHT_PX = 256
"""A person shorter than this (in the original photo's pixels) carries too little detail for an avatar."""

SUPPORTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "BMP": "BMP",
                     "TIFF": "TIFF"}
"""Pillow format name -> the name a person knows (MPO is the multi-picture JPEG some cameras write)."""

CUTOUT_MIN_TRANSPARENT = 0.01
"""An alpha channel is taken as the person mask only when at least this fraction of its pixels is
transparent (alpha < 0.5). Photos exported with an alpha channel that is opaque except for a few stray
pixels (pifu_ryota.png has 45 of 262,144) are not cut-outs, and their alpha would be a useless mask."""

_ORIENTATION_NAMES = {2: "mirrored", 3: "rotated 180 deg", 4: "flipped upside down",
                      5: "mirrored and rotated", 6: "rotated 90 deg", 7: "mirrored and rotated",
                      8: "rotated 270 deg"}
_EXIF_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
_EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm: mm, 0 when unknown
_EXIF_PIXEL_SIZE = (0xA002, 0xA003)  # PixelXDimension, PixelYDimension: the image as the camera saved it
FULL_FRAME_DIAGONAL_MM = 43.27
"""The 35 mm film frame's diagonal (36 x 24 mm): a 35 mm-equivalent focal length gives the same angle of
view across the image's diagonal as that focal length gives across this one (CIPA DC-008)."""
PLAUSIBLE_FOV_DEG = (1.0, 150.0)
"""Fields of view (across the longer side) an EXIF focal length may give; outside it the tag is wrong."""


class PhotoError(ValueError):
    """A photo that cannot be used; the message says what is wrong and what to do."""


@dataclass
class Photo:
    """One photo at working resolution.

    Pixel (row i, column j) of ``image`` covers [j, j+1] x [i, i+1] in continuous coordinates, the
    project's camera convention; ``original = working / scale``.
    """

    image: np.ndarray  # [H, W, 3] uint8 RGB at working resolution, EXIF-oriented
    alpha: np.ndarray | None  # [H, W] float32 in [0, 1], only from an RGBA cut-out
    source: Path  # the original file
    original_size: tuple[int, int]  # (width, height) of the original after EXIF orientation
    scale: float  # working size / original size (<= 1)
    notes: list[str] = field(default_factory=list)
    focal_px: float | None = None  # the camera's focal length in working pixels, from EXIF; None when unknown


def load_photo(path: str | Path, max_side: int = 2048) -> Photo:
    """Read ``path`` into a :class:`Photo` whose longer side is at most ``max_side`` pixels.

    Raises :class:`PhotoError` for a missing or unreadable file, a file that is not an image or not
    in a supported format, a truncated or corrupt image, and an image under
    ``MIN_PERSON_HEIGHT_PX`` pixels tall (no person in it can be tall enough). Whether the photo holds
    a person, and whether that person is tall enough, is decided after detection
    (:mod:`persona_studio.capture.detect`).
    """
    if max_side < MIN_PERSON_HEIGHT_PX:
        raise ValueError(f"max_side must be at least {MIN_PERSON_HEIGHT_PX}, got {max_side}")
    source = Path(path).expanduser()
    notes: list[str] = []
    with _open_image(source) as opened:
        stored_size = opened.size
        _draft_jpeg(opened, stored_size, max_side)
        image, orientation = _decode(opened, source)
        focal_stored = _exif_focal_px(opened.getexif(), stored_size)
        if getattr(opened, "n_frames", 1) > 1:
            notes.append(f"{source.name} holds {opened.n_frames} frames: using the first")
        if orientation in _ORIENTATION_NAMES:
            image = ImageOps.exif_transpose(image)
            notes.append(f"EXIF orientation {orientation} applied ({_ORIENTATION_NAMES[orientation]})")
        swapped = orientation in (5, 6, 7, 8)
        original_size = (stored_size[1], stored_size[0]) if swapped else stored_size
        if original_size[1] < MIN_PERSON_HEIGHT_PX:
            raise PhotoError(
                f"{source.name} is only {original_size[1]} px tall; a person needs at least "
                f"{MIN_PERSON_HEIGHT_PX} px of height: use a larger photo (the person at least "
                f"{MIN_PERSON_HEIGHT_PX} px from head to feet)")

        image = _to_rgb_or_rgba(image, notes)
        scale = min(1.0, max_side / max(original_size))
        if scale < 1.0:
            working = (max(1, round(original_size[0] * scale)), max(1, round(original_size[1] * scale)))
            image = image.resize(working, Image.Resampling.LANCZOS, reducing_gap=3.0)
            notes.append(f"downscaled from {original_size[0]}x{original_size[1]} to "
                         f"{working[0]}x{working[1]} for work (scale {scale:.4f})")
        pixels = np.array(image)  # a copy: the file closes when this block ends
    focal_px = None if focal_stored is None else focal_stored * scale
    if focal_px is not None:
        notes.append(f"camera focal length from EXIF: {fov_deg(focal_px, pixels.shape[1], pixels.shape[0]):.1f} deg "
                     f"across the longer side")
    alpha = None
    if pixels.shape[-1] == 4:
        alpha = _cutout_alpha(pixels[..., 3], notes)
        pixels = pixels[..., :3]
    return Photo(image=np.ascontiguousarray(pixels, dtype=np.uint8), alpha=alpha, source=source,
                 original_size=original_size, scale=scale, notes=notes, focal_px=focal_px)


def focal_from_fov(width: int, height: int, fov: float) -> float:
    """Focal length in pixels giving the image's longer side a field of view of ``fov`` degrees."""
    return 0.5 * max(width, height) / math.tan(math.radians(fov) / 2)


def fov_deg(focal_px: float, width: int, height: int) -> float:
    """The field of view across the image's longer side, in degrees, of a ``focal_px`` focal length."""
    return math.degrees(2 * math.atan(0.5 * max(width, height) / focal_px))


def _exif_focal_px(exif: Image.Exif, stored_size: tuple[int, int]) -> float | None:
    """The focal length in the stored image's pixels from the 35 mm-equivalent EXIF tag, or ``None``.

    The equivalent focal length keeps the angle of view across the diagonal of the image the camera
    saved (its EXIF pixel size). A copy resized since (same aspect) scales with it; a cropped copy (other
    aspect) keeps the camera's pixels. A focal length without its 35 mm equivalent needs the sensor's
    size, which EXIF rarely holds: ignored, like a value that gives an implausible field of view.
    """
    tags = exif.get_ifd(_EXIF_IFD)
    try:
        focal_35mm = float(tags.get(_EXIF_FOCAL_35MM, 0))
        saved = tuple(int(tags.get(tag, 0)) for tag in _EXIF_PIXEL_SIZE)
    except (TypeError, ValueError):
        return None
    if focal_35mm <= 0:
        return None
    width, height = stored_size
    if min(saved) > 0 and abs(saved[0] / saved[1] - width / height) > 0.01 * width / height:
        scale = 1.0  # cropped: the pixels are the camera's
    else:
        saved = saved if min(saved) > 0 else stored_size
        scale = width / saved[0]
    focal = focal_35mm / FULL_FRAME_DIAGONAL_MM * math.hypot(*saved) * scale
    low, high = PLAUSIBLE_FOV_DEG
    return focal if low <= fov_deg(focal, width, height) <= high else None


def _open_image(source: Path) -> Image.Image:
    """Open ``source`` lazily (header only), refusing what is not a supported image."""
    if not source.exists():
        raise PhotoError(f"no file at {source}: check the path (or drop the photo again)")
    if source.is_dir():
        raise PhotoError(f"{source} is a folder, not a photo: choose an image file inside it")
    try:
        with warnings.catch_warnings():
            # Big camera photos (100 MP) pass with a warning; only Pillow's hard limit refuses.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(source)
    except UnidentifiedImageError:
        raise PhotoError(
            f"{source.name} is not an image this app can read: use a PNG, JPEG, WebP, BMP or TIFF "
            f"photo") from None
    except Image.DecompressionBombError:
        raise PhotoError(
            f"{source.name} is too large to open safely (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels): "
            f"scale it down below 10,000 px on its longer side first") from None
    except OSError as error:
        raise PhotoError(f"cannot read {source}: {error.strerror or error}; check that the file "
                         f"exists and that you may read it") from None
    if opened.format not in SUPPORTED_FORMATS:
        kind = opened.format or "unknown"
        opened.close()
        raise PhotoError(f"{source.name} is a {kind} image; this app reads PNG, JPEG, WebP, BMP and "
                         f"TIFF: save the photo in one of those formats")
    return opened


def _draft_jpeg(opened: Image.Image, stored_size: tuple[int, int], max_side: int) -> None:
    """Let libjpeg decode a huge JPEG at 1/2, 1/4 or 1/8 size, never below ``max_side``."""
    if opened.format in ("JPEG", "MPO") and max(stored_size) > 2 * max_side:
        shrink = max(stored_size) / max_side
        opened.draft(opened.mode, (int(stored_size[0] / shrink), int(stored_size[1] / shrink)))


def _decode(opened: Image.Image, source: Path) -> tuple[Image.Image, int]:
    """Decode the pixels and read the EXIF orientation (1 when absent).

    A truncated or corrupt file becomes a :class:`PhotoError`. (A PNG's EXIF may follow its pixels,
    so reading it decodes them too.)
    """
    try:
        opened.load()
        orientation = opened.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise PhotoError(
            f"{source.name} is damaged or incomplete ({error}): the file may be truncated by an "
            f"interrupted download or copy; get the photo again or re-save it") from None
    return opened, orientation


def _to_rgb_or_rgba(image: Image.Image, notes: list[str]) -> Image.Image:
    """8-bit RGB, or RGBA when the file carries transparency (alpha band or palette transparency)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        levels = np.asarray(image).astype(np.float64)  # [H, W]
        full_scale = _full_scale(image.mode, float(levels.max(initial=0.0)))
        gray = np.clip(np.rint(levels / full_scale * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{'32-bit float' if image.mode == 'F' else '16-bit'} grayscale converted to "
                     f"8-bit RGB")
        return Image.fromarray(gray, "L").convert("RGB")
    if image.has_transparency_data:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode != "RGB":
        notes.append(f"{_MODE_NAMES.get(image.mode, image.mode)} image converted to RGB")
        return image.convert("RGB")
    return image


_MODE_NAMES = {"1": "black-and-white", "L": "grayscale", "P": "palette", "CMYK": "CMYK",
               "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


def _full_scale(mode: str, peak: float) -> float:
    """The value that stands for white in a high-bit-depth single-channel image.

    16-bit modes use 65535. Pillow's 32-bit integer mode holds 16-bit files too (so a peak above 255
    means 16-bit); a float image is taken as [0, 1] when it stays within it.
    """
    if mode.startswith("I;16") or peak > 255.0:
        return 65535.0
    if mode == "F" and peak <= 1.0:
        return 1.0
    return 255.0


def _cutout_alpha(alpha8: np.ndarray, notes: list[str]) -> np.ndarray | None:
    """The alpha band as a [0, 1] mask when the file is a cut-out; ``None`` (with a note) otherwise."""
    transparent = int(np.count_nonzero(alpha8 < 128))
    if transparent >= CUTOUT_MIN_TRANSPARENT * alpha8.size:
        return alpha8.astype(np.float32) / 255.0
    if transparent == 0 and int(alpha8.min()) == 255:
        notes.append("alpha channel is fully opaque: ignored (the person mask comes from detection)")
    else:
        notes.append(f"alpha channel is almost fully opaque ({transparent} transparent pixels): "
                     f"ignored (the person mask comes from detection)")
    return None
