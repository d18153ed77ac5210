"""Photo intake: formats, conversions, orientation, downscaling and every refusal, on files made here
and on the real photos in ../shared/data/photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from persona_studio.capture.intake import MIN_PERSON_HEIGHT_PX, PhotoError, load_photo

REAL_PHOTOS = ["lhm_000057.png", "lhm_video_image_326594731337_0.png", "mimicmotion_demo1.jpg",
               "moore_anyone-3.png", "pifu_ryota.png", "sith_002.png"]


def _noise(height: int, width: int, channels: int = 3, block: int = 8) -> np.ndarray:
    """Random colours in square blocks, so lossy codecs and resampling keep them close."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (height // block + 1, width // block + 1, channels), dtype=np.uint8)
    return np.ascontiguousarray(blocks.repeat(block, 0).repeat(block, 1)[:height, :width])


def _save(tmp_path, name: str, pixels: np.ndarray, **kwargs) -> str:
    path = tmp_path / name
    Image.fromarray(pixels).save(path, **kwargs)
    return str(path)


@pytest.mark.parametrize("name", REAL_PHOTOS)
def test_real_photos_load(name):
    path = shared_path("photos", name)
    photo = load_photo(path)
    with Image.open(path) as original:
        assert photo.original_size == original.size
        expected = np.asarray(original.convert("RGB"))
    assert photo.image.dtype == np.uint8 and photo.image.shape == expected.shape
    np.testing.assert_array_equal(photo.image, expected)
    assert photo.scale == 1.0 and photo.source == path
    if name == "sith_002.png":  # a real cut-out: its alpha is the mask
        with Image.open(path) as original:
            alpha = np.asarray(original)[..., 3]
        assert photo.alpha is not None and photo.alpha.dtype == np.float32
        np.testing.assert_allclose(photo.alpha, alpha / 255.0, atol=1e-6)
    else:
        assert photo.alpha is None
    if name == "moore_anyone-3.png":  # RGBA, every pixel opaque
        assert any("fully opaque" in note for note in photo.notes)
    if name == "pifu_ryota.png":  # RGBA with 45 stray transparent pixels: not a cut-out
        assert any("almost fully opaque (45 transparent pixels)" in note for note in photo.notes)


@pytest.mark.parametrize("fmt,suffix,lossless", [
    ("PNG", ".png", True), ("JPEG", ".jpg", False), ("WEBP", ".webp", True), ("BMP", ".bmp", True),
    ("TIFF", ".tif", True)])
def test_formats_read_back(tmp_path, fmt, suffix, lossless):
    pixels = _noise(320, 240)
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    photo = load_photo(_save(tmp_path, "photo" + suffix, pixels, format=fmt, **options))
    assert photo.image.shape == (320, 240, 3) and photo.original_size == (240, 320)
    error = np.abs(photo.image.astype(int) - pixels).mean()
    assert error == 0 if lossless else error < 2
    assert photo.alpha is None and photo.notes == []


def test_rgba_cutout_alpha_is_the_mask(tmp_path):
    rgba = _noise(300, 200, 4)
    rgba[..., 3] = 0
    rgba[40:260, 60:140, 3] = 255
    rgba[40:260, 59, 3] = 128  # a soft edge stays soft
    photo = load_photo(_save(tmp_path, "cutout.png", rgba))
    assert photo.alpha is not None and photo.alpha.shape == (300, 200)
    np.testing.assert_allclose(photo.alpha, rgba[..., 3] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(photo.image, rgba[..., :3])


def test_opaque_alpha_is_ignored_with_a_note(tmp_path):
    rgba = _noise(300, 200, 4)
    rgba[..., 3] = 255
    photo = load_photo(_save(tmp_path, "opaque.png", rgba))
    assert photo.alpha is None
    assert any("alpha channel is fully opaque: ignored" in note for note in photo.notes)


def test_grayscale_becomes_rgb(tmp_path):
    gray = _noise(300, 200, 1)[..., 0]
    photo = load_photo(_save(tmp_path, "gray.png", gray))
    assert photo.image.shape == (300, 200, 3)
    for channel in range(3):
        np.testing.assert_array_equal(photo.image[..., channel], gray)
    assert any("grayscale" in note for note in photo.notes)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    gray16 = (_noise(300, 200, 1)[..., 0].astype(np.uint16) * 257 + 100).clip(0, 65535).astype(np.uint16)
    photo = load_photo(_save(tmp_path, "gray16.png", gray16))
    with Image.open(tmp_path / "gray16.png") as stored:
        assert stored.mode.startswith("I;16")  # really a 16-bit file
    expected = np.rint(gray16 / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(photo.image[..., 0], expected)
    assert photo.image.max() > 200  # clipping to 255 or truncation to the low byte would fail this
    assert any("16-bit" in note for note in photo.notes)


def test_16_bit_rgb_becomes_8_bit(tmp_path):
    cv2 = pytest.importorskip("cv2")  # Pillow cannot write 16-bit RGB; OpenCV comes with MediaPipe
    rgb16 = (_noise(300, 200).astype(np.uint16) * 257)
    rgb16[..., 0] += 200  # low byte set too: the result must follow the high byte
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[..., ::-1])
    photo = load_photo(path)
    assert photo.image.dtype == np.uint8
    assert np.abs(photo.image.astype(int) - np.rint(rgb16 / 257.0)).max() <= 1


def test_palette_image_becomes_rgb_and_its_transparency_the_alpha(tmp_path):
    rgb = _noise(300, 200)
    palette_image = Image.fromarray(rgb).quantize(colors=16)
    palette_image.save(tmp_path / "palette.png")
    photo = load_photo(tmp_path / "palette.png")
    np.testing.assert_array_equal(photo.image, np.asarray(palette_image.convert("RGB")))
    assert photo.alpha is None and any("palette" in note for note in photo.notes)

    index = np.asarray(palette_image)
    palette_image.save(tmp_path / "palette_transparent.png", transparency=int(index[0, 0]))
    photo = load_photo(tmp_path / "palette_transparent.png")
    assert photo.alpha is not None
    np.testing.assert_array_equal(photo.alpha == 0, index == index[0, 0])


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.full((300, 400, 3), 255, np.uint8)  # stored landscape, 400 wide
    pixels[:100, :100] = (255, 0, 0)  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 deg clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    photo = load_photo(path)
    assert photo.image.shape == (400, 300, 3)  # shown portrait
    assert photo.original_size == (300, 400)
    # Rotating clockwise carries the stored top-left corner to the top-right.
    top_right, top_left = photo.image[:80, -80:].mean(axis=(0, 1)), photo.image[:80, :80].mean(axis=(0, 1))
    assert top_right[0] > 200 and top_right[1] < 60
    assert top_left.min() > 200
    assert any("EXIF orientation 6" in note for note in photo.notes)


def _camera_exif(focal_35mm: float, saved_size: tuple[int, int] | None) -> Image.Exif:
    exif = Image.Exif()
    tags = exif.get_ifd(0x8769)  # the Exif IFD, where cameras write these
    tags[0xA405] = focal_35mm  # FocalLengthIn35mmFilm
    if saved_size is not None:
        tags[0xA002], tags[0xA003] = saved_size  # PixelXDimension, PixelYDimension
    return exif


@pytest.mark.parametrize("saved_size,expected_diagonal_px", [
    (None, 500.0),  # this very file: 300 x 400
    ((3000, 4000), 500.0),  # the camera's 3000 x 4000, resized since: the diagonal shrinks with it
    ((4000, 4000), 4000 * 2 ** 0.5),  # another aspect: a crop, whose pixels are the camera's
])
def test_the_focal_length_comes_from_exif(tmp_path, saved_size, expected_diagonal_px):
    """A 26 mm-equivalent lens spans, across the image's diagonal, what 26 mm spans across the 43.27 mm
    diagonal of the 35 mm frame: f_px = 26 / 43.27 * diagonal_px (a phone's main camera, 67 deg across
    the longer side of a 3:4 photo)."""
    path = tmp_path / "phone.jpg"
    Image.fromarray(_noise(400, 300)).save(path, quality=95, exif=_camera_exif(26, saved_size))
    photo = load_photo(path)
    assert photo.focal_px == pytest.approx(26 / 43.27 * expected_diagonal_px, rel=1e-6)
    if saved_size != (4000, 4000):
        assert any("camera focal length from EXIF: 67.3 deg" in note for note in photo.notes)


def test_an_exif_focal_length_follows_the_downscale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_noise(1200, 900, block=32)).save(path, quality=95, exif=_camera_exif(26, None))
    photo = load_photo(path, max_side=600)
    assert photo.scale == pytest.approx(0.5)
    assert photo.focal_px == pytest.approx(26 / 43.27 * 1500 * 0.5, rel=1e-6)


@pytest.mark.parametrize("focal_35mm", [0, 0.1])  # unknown (0, as cameras write it), or absurd (179 deg)
def test_no_usable_exif_focal_length_leaves_it_unknown(tmp_path, focal_35mm):
    path = tmp_path / "odd.jpg"
    Image.fromarray(_noise(400, 300)).save(path, quality=95, exif=_camera_exif(focal_35mm, None))
    assert load_photo(path).focal_px is None
    assert load_photo(_save(tmp_path, "plain.jpg", _noise(400, 300))).focal_px is None


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_huge_image_is_downscaled_for_work(tmp_path, fmt, suffix):
    pixels = _noise(2600, 4400, block=64)  # a JPEG over twice max_side also takes the reduced-decode path
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    path = _save(tmp_path, "huge" + suffix, pixels, format=fmt, **options)
    photo = load_photo(path, max_side=2048 if fmt == "JPEG" else 1024)
    max_side = max(photo.image.shape[:2])
    assert max_side == (2048 if fmt == "JPEG" else 1024)
    assert photo.original_size == (4400, 2600) and photo.source.name == "huge" + suffix
    assert photo.scale == pytest.approx(max_side / 4400)
    assert photo.image.shape[0] == round(2600 * photo.scale)
    reference = np.asarray(Image.fromarray(pixels).resize(photo.image.shape[1::-1], Image.Resampling.BOX))
    assert np.abs(photo.image.astype(int) - reference).mean() < 3  # the content, not just the size
    assert any("downscaled from 4400x2600" in note for note in photo.notes)


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file_is_refused(tmp_path, fmt, suffix):
    buffer = io.BytesIO()
    Image.fromarray(_noise(400, 300)).save(buffer, format=fmt)
    path = tmp_path / ("cut" + suffix)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(PhotoError, match="damaged or incomplete.*truncated.*get the photo again"):
        load_photo(path)


def test_corrupt_png_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_noise(400, 300)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(PhotoError, match="damaged or incomplete"):
        load_photo(path)


def test_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is a text file with an image's name\n")
    with pytest.raises(PhotoError, match="not an image.*PNG, JPEG, WebP, BMP or TIFF"):
        load_photo(path)


def test_unsupported_format_is_refused(tmp_path):
    path = _save(tmp_path, "anim.gif", _noise(300, 200))
    with pytest.raises(PhotoError, match="GIF image.*reads PNG, JPEG, WebP, BMP and TIFF"):
        load_photo(path)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(PhotoError, match="no file at .*missing.jpg: check the path"):
        load_photo(tmp_path / "missing.jpg")
    with pytest.raises(PhotoError, match="is a folder, not a photo"):
        load_photo(tmp_path)


def test_image_too_short_for_any_person_is_refused(tmp_path):
    path = _save(tmp_path, "tiny.png", _noise(MIN_PERSON_HEIGHT_PX - 56, 600))
    with pytest.raises(PhotoError, match=f"only 200 px tall.*at least {MIN_PERSON_HEIGHT_PX} px"):
        load_photo(path)
    # Exactly the minimum height is accepted: the person check comes after detection.
    assert load_photo(_save(tmp_path, "ok.png", _noise(MIN_PERSON_HEIGHT_PX, 100))).image.shape[0] == 256
