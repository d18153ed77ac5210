"""Sapiens geometry targets through the real loading code, with tiny TorchScript models.

The tiny models are saved under the release's file names and their outputs are known functions of
what they receive, so every step is checked: discovery, loading, preprocessing (the seg model keeps
the tensor it was given), resizing back, the normal convention and the class -> part mapping.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from persona_studio.body.parts import PART_INDEX, PART_NAMES
from persona_studio.generate.sapiens import (
    GOLIATH_CLASSES, SapiensError, SapiensGeometry, check_sapiens, find_sapiens_models, goliath_to_parts,
)

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

# Facts of the Sapiens-Lite release (lite/demo/*.py, lite/docs/SEG_README.md), written out here so
# that the module is checked against them rather than against itself.
RELEASE_MEAN = np.array([123.5, 116.5, 103.5])
RELEASE_STD = np.array([58.5, 57.0, 57.5])
RELEASE_HEIGHT, RELEASE_WIDTH = 1024, 768
RELEASE_SEG_CLASSES = (
    "Background", "Apparel", "Face_Neck", "Hair", "Left_Foot", "Left_Hand", "Left_Lower_Arm", "Left_Lower_Leg",
    "Left_Shoe", "Left_Sock", "Left_Upper_Arm", "Left_Upper_Leg", "Lower_Clothing", "Right_Foot", "Right_Hand",
    "Right_Lower_Arm", "Right_Lower_Leg", "Right_Shoe", "Right_Sock", "Right_Upper_Arm", "Right_Upper_Leg",
    "Torso", "Upper_Clothing", "Lower_Lip", "Upper_Lip", "Lower_Teeth", "Upper_Teeth", "Tongue",
)
DEPTH_FILE = "sapiens_0.3b_render_people_epoch_100_torchscript.pt2"
NORMAL_FILE = "sapiens_1b_normal_render_people_epoch_115_torchscript.pt2"
SEG_FILE = "sapiens_1b_goliath_best_goliath_mIoU_7994_epoch_151_torchscript.pt2"
GARMENTS = {"Apparel", "Upper_Clothing", "Lower_Clothing"}
# The part each non-garment Goliath class must become ("Left" is the subject's left in both).
EXPECTED_PART = {
    "Background": "background", "Face_Neck": "face_neck", "Hair": "face_neck", "Torso": "torso",
    "Lower_Lip": "face_neck", "Upper_Lip": "face_neck", "Lower_Teeth": "face_neck", "Upper_Teeth": "face_neck",
    "Tongue": "face_neck",
    "Left_Foot": "left_foot", "Left_Shoe": "left_foot", "Left_Sock": "left_foot", "Left_Hand": "left_hand",
    "Left_Lower_Arm": "left_lower_arm", "Left_Upper_Arm": "left_upper_arm", "Left_Lower_Leg": "left_lower_leg",
    "Left_Upper_Leg": "left_upper_leg",
    "Right_Foot": "right_foot", "Right_Shoe": "right_foot", "Right_Sock": "right_foot", "Right_Hand": "right_hand",
    "Right_Lower_Arm": "right_lower_arm", "Right_Upper_Arm": "right_upper_arm",
    "Right_Lower_Leg": "right_lower_leg", "Right_Upper_Leg": "right_upper_leg",
}
# [28, 3] uint8: one distinct colour per Goliath class; the tiny seg model labels a pixel with the
# class of the nearest colour, so a picture painted in these colours is a known segmentation.
LEVELS = (20, 90, 160, 230)
CLASS_COLOURS = np.array([(r, g, b) for r in LEVELS for g in LEVELS for b in LEVELS][:28], dtype=np.uint8)


def normalised(rgb) -> np.ndarray:
    """RGB in 0-255 -> the release's normalised values."""
    return (np.asarray(rgb, dtype=np.float64) - RELEASE_MEAN) / RELEASE_STD


class ColourDepth(nn.Module):
    """depth = channel mean of the input, pooled 4x (256 x 192), plus the output column index."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = F.avg_pool2d(x.mean(1, keepdim=True), 4)
        return depth + torch.arange(depth.shape[-1], dtype=depth.dtype, device=depth.device)


class ColourSeg(nn.Module):
    """Logits of the nearest class colour (-|x - p_k|^2 up to a per-pixel constant), pooled 2x.

    Keeps the last input in ``seen`` so that tests can look at what the model was given.
    """

    def __init__(self, colours: np.ndarray):
        super().__init__()
        p = torch.tensor(normalised(colours), dtype=torch.float32)  # [28, 3]
        self.register_buffer("weight", (2 * p)[:, :, None, None])
        self.register_buffer("bias", -(p * p).sum(1))
        self.seen = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return F.avg_pool2d(F.conv2d(x, self.weight, self.bias), 2)


def identity_normal_model() -> torch.jit.ScriptModule:
    """Traced (not scripted): Sapiens normal = the normalised input colour, pooled 2x."""
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3)[:, :, None, None])
    return torch.jit.trace(nn.Sequential(conv, nn.AvgPool2d(2)).eval(), torch.zeros(1, 3, 64, 48))


def save(module: torch.jit.ScriptModule, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.save(str(path))
    return path


@pytest.fixture(scope="module")
def sapiens_folder(tmp_path_factory) -> Path:
    """The release's folder layout with the three tiny models in it."""
    root = tmp_path_factory.mktemp("sapiens_lite_host")
    save(torch.jit.script(ColourDepth()), root / "torchscript/depth/checkpoints/sapiens_0.3b" / DEPTH_FILE)
    save(identity_normal_model(), root / "torchscript/normal/checkpoints/sapiens_1b" / NORMAL_FILE)
    save(torch.jit.script(ColourSeg(CLASS_COLOURS)), root / "torchscript/seg/checkpoints/sapiens_1b" / SEG_FILE)
    return root


@pytest.fixture(scope="module")
def geometry(sapiens_folder) -> SapiensGeometry:
    return SapiensGeometry(sapiens_folder, device="cpu")


def paint(classes: np.ndarray) -> np.ndarray:
    """[H, W] Goliath class indices -> [H, W, 3] uint8 image in the tiny seg model's colours."""
    return CLASS_COLOURS[classes]


def cls(name: str) -> int:
    return RELEASE_SEG_CLASSES.index(name)


# ---------------------------------------------------------------------------------------- files

def test_classes_are_the_release_order_and_map_onto_our_parts():
    from persona_studio.generate.sapiens import GOLIATH_TO_PART, UNRESOLVED

    assert GOLIATH_CLASSES == RELEASE_SEG_CLASSES
    for index, name in enumerate(RELEASE_SEG_CLASSES):
        if name in GARMENTS:
            assert GOLIATH_TO_PART[index] == UNRESOLVED, name
        else:
            assert PART_NAMES[GOLIATH_TO_PART[index]] == EXPECTED_PART[name], name


def test_models_are_found_by_release_names(tmp_path):
    files = {
        "torchscript/depth/checkpoints/sapiens_0.3b/sapiens_0.3b_render_people_epoch_100_torchscript.pt2": "",
        "torchscript/depth/checkpoints/sapiens_2b/sapiens_2b_render_people_epoch_25_torchscript.pt2": "depth",
        "torchscript/normal/checkpoints/sapiens_0.6b/sapiens_0.6b_normal_render_people_epoch_200_torchscript.pt2":
            "normal",
        "torchscript/seg/sapiens_0.3b/sapiens_0.3b_goliath_best_goliath_mIoU_7673_epoch_194_torchscript.pt2":
            "seg",
        # not geometry models, or not TorchScript: ignored
        "sapiens_1b_goliath_best_goliath_AP_639_torchscript.pt2": "",  # pose
        "sapiens_1b_seg_foreground_epoch_8_torchscript.pt2": "",  # foreground only
        "sapiens_1b_render_people_epoch_88_bfloat16.pt2": "",
        "sapiens_1b_normal_render_people_epoch_115.pth": "",
        "notes.txt": "",
    }
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_sapiens_models(tmp_path)
    assert {task: path.relative_to(tmp_path).as_posix() for task, path in found.items()} == {
        task: name for name, task in files.items() if task}
    assert list(found) == ["depth", "normal", "seg"]
    assert find_sapiens_models(tmp_path / "missing") == {}


def test_check_says_what_is_missing_and_where(tmp_path, sapiens_folder):
    assert check_sapiens(sapiens_folder) is None
    for folder in (None, tmp_path / "nowhere", tmp_path):
        message = check_sapiens(folder)
        assert message and "\n" not in message
        assert "sapiens_1b_render_people_epoch_88_torchscript.pt2" in message
    assert str(tmp_path / "nowhere") in check_sapiens(tmp_path / "nowhere")
    (tmp_path / "sapiens_1b_render_people_epoch_88_bfloat16.pt2").write_bytes(b"")
    assert "bfloat16" in check_sapiens(tmp_path)


def test_corrupt_or_wrong_files_raise_with_their_path(tmp_path):
    good = torch.jit.script(ColourDepth())
    bad = {
        "random bytes": np.random.default_rng(0).bytes(4096),
        "cut short": None,
        "torch.export program": None,
    }
    save(good, tmp_path / "whole.pt2")
    bad["cut short"] = (tmp_path / "whole.pt2").read_bytes()[:600]
    exported = torch.export.export(nn.Conv2d(3, 1, 1), (torch.zeros(1, 3, 8, 8),))
    torch.export.save(exported, str(tmp_path / "exported.pt2"))
    bad["torch.export program"] = (tmp_path / "exported.pt2").read_bytes()
    for what, content in bad.items():
        folder = tmp_path / what.replace(" ", "_")
        folder.mkdir()
        path = folder / DEPTH_FILE
        path.write_bytes(content)
        with pytest.raises(SapiensError, match=re.escape(str(path))):
            SapiensGeometry(folder, device="cpu")
        assert str(path) in check_sapiens(folder), what
        save(good, folder / NORMAL_FILE)  # a good model beside it does not hide it
        assert str(path) in check_sapiens(folder), what
        path.unlink()  # one good model is enough
        assert check_sapiens(folder) is None


def test_a_model_with_the_wrong_output_is_named(tmp_path):
    path = save(torch.jit.script(ColourDepth()), tmp_path / SEG_FILE)  # 1 channel where 28 are due
    geometry = SapiensGeometry(tmp_path, device="cpu")
    with pytest.raises(SapiensError, match=re.escape(str(path))):
        geometry.predict(np.zeros((32, 24, 3), np.uint8))


def test_missing_tasks_are_left_out(tmp_path):
    save(torch.jit.script(ColourDepth()), tmp_path / DEPTH_FILE)
    geometry = SapiensGeometry(tmp_path, device="auto")
    assert geometry.tasks == ("depth",)
    assert geometry.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert set(geometry.predict(np.zeros((40, 30, 3), np.uint8))) == {"depth"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(SapiensError, match="no model files"):
        SapiensGeometry(tmp_path / "empty", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is absent")
def test_cuda_without_cuda_is_refused(sapiens_folder):
    with pytest.raises(SapiensError, match="CUDA is not available"):
        SapiensGeometry(sapiens_folder, device="cuda")


# ------------------------------------------------------------------------------- preprocessing

def test_model_receives_the_release_normalisation(geometry):
    colour = np.array([200, 30, 120], np.uint8)
    geometry.predict(np.broadcast_to(colour, (50, 70, 3)).copy())
    seen = geometry.models["seg"].seen
    assert seen.shape == (1, 3, RELEASE_HEIGHT, RELEASE_WIDTH) and seen.dtype == torch.float32
    expected = torch.tensor(normalised(colour), dtype=torch.float32).view(1, 3, 1, 1).expand_as(seen)
    torch.testing.assert_close(seen, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(75, 110), (1300, 900)])
def test_model_receives_the_bilinearly_resized_image(geometry, size):
    image = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    geometry.predict(image)
    seen = geometry.models["seg"].seen[0]
    # Half-pixel-centred bilinear without antialiasing (what OpenCV's INTER_LINEAR does), computed
    # by torch in float; OpenCV resizes the uint8 pixels, so values may differ by one grey level.
    reference = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].double(),
                              size=(RELEASE_HEIGHT, RELEASE_WIDTH), mode="bilinear", align_corners=False)[0]
    reference = (reference - torch.tensor(RELEASE_MEAN).view(3, 1, 1)) / torch.tensor(RELEASE_STD).view(3, 1, 1)
    error = (seen.double() - reference).abs()
    assert error.max() <= 1.01 / RELEASE_STD.min()
    assert error.mean() < 0.3 / RELEASE_STD.min()


# ------------------------------------------------------------------------------------ outputs

def test_depth_is_resized_back_and_masked(geometry):
    height, width = 100, 160
    left, right = np.array([210, 40, 90], np.uint8), np.array([15, 180, 240], np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2], image[:, width // 2:] = left, right
    mask = np.zeros((height, width), np.float32)
    mask[10:90, 5:155] = 1.0
    depth = geometry.predict(image, mask)["depth"]
    assert depth.shape == (height, width) and depth.dtype == np.float32
    assert np.isnan(depth[mask == 0]).all() and np.isfinite(depth[mask == 1]).all()
    # Output column of image column j with half-pixel centres: (j + 0.5) * 192 / W - 0.5.
    columns = np.arange(width)
    ramp = (columns + 0.5) * 192 / width - 0.5
    colour_term = np.where(columns < width // 2, normalised(left).mean(), normalised(right).mean())
    inside = (np.abs(columns - width // 2) > 6) & (columns >= 5) & (columns < 155)
    np.testing.assert_allclose(depth[50, inside], (colour_term + ramp)[inside], atol=1e-4)
    np.testing.assert_allclose(depth[10:90, inside], np.broadcast_to(depth[50, inside], (80, inside.sum())))


def test_normals_come_in_opencv_axes(geometry):
    height, width = 64, 48
    facing, upward = np.array([123, 116, 200], np.uint8), np.array([123, 230, 103], np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2], image[height // 2:] = facing, upward
    mask = np.ones((height, width), np.float32)
    mask[:, :4] = 0.0
    normal = geometry.predict(image, mask)["normal"]
    assert normal.shape == (height, width, 3) and normal.dtype == np.float32
    assert np.isnan(normal[:, :4]).all()
    np.testing.assert_allclose(np.linalg.norm(normal[:, 4:], axis=-1), 1.0, atol=1e-5)
    # The tiny model's Sapiens normal is the normalised colour; ours flips y and z.
    for rows, colour in ((slice(4, 28), facing), (slice(36, 60), upward)):
        sapiens = normalised(colour)
        expected = sapiens * [1, -1, -1] / np.linalg.norm(sapiens)
        np.testing.assert_allclose(normal[rows, 4:], np.broadcast_to(expected, normal[rows, 4:].shape), atol=1e-5)
    assert normal[16, 24, 2] < -0.99  # facing the camera in Sapiens (z to the viewer): z < 0 in ours
    assert normal[48, 24, 1] < -0.99  # pointing up in Sapiens (y up): -y in ours (y down)


def test_every_class_becomes_its_part_left_stays_left(geometry):
    cell = 24
    classes = np.arange(28).reshape(4, 7).repeat(cell, 0).repeat(cell, 1)  # [96, 168]
    parts = geometry.predict(paint(classes))["parts"]
    assert parts.shape == classes.shape and parts.dtype == np.int64
    for index, name in enumerate(RELEASE_SEG_CLASSES):
        row, col = divmod(index, 7)
        block = parts[row * cell + 4:(row + 1) * cell - 4, col * cell + 4:(col + 1) * cell - 4]
        if name in GARMENTS:
            assert (block > 0).all(), name  # taken from a neighbouring body part
        else:
            assert (block == PART_INDEX[EXPECTED_PART[name]]).all(), name


def test_garments_take_the_nearest_body_part_without_a_body():
    """A shirt between a left forearm and the torso: each side goes to what it is nearest to."""
    classes = np.full((60, 100), cls("Background"))
    classes[10:50, 5:20] = cls("Left_Lower_Arm")
    classes[10:50, 20:70] = cls("Upper_Clothing")
    classes[10:50, 70:95] = cls("Torso")
    person = classes != cls("Background")
    classes[25:35, 80:90] = cls("Background")  # Sapiens misses a patch inside the person mask
    classes[52:58, 30:60] = cls("Left_Hand")  # and sees a hand outside it
    parts = goliath_to_parts(classes, person)
    assert (parts[~person] == 0).all()
    assert (parts[10:50, 5:45] == PART_INDEX["left_lower_arm"]).all()
    assert (parts[10:50, 46:95] == PART_INDEX["torso"]).all()


def test_garments_take_the_fitted_body_part_underneath():
    """Trousers over both legs: the fitted body's render decides the side, shoes keep Sapiens' label."""
    classes = np.full((80, 60), cls("Background"))
    classes[10:70, 10:50] = cls("Lower_Clothing")
    classes[60:70, 10:20] = cls("Left_Shoe")
    body = np.zeros((80, 60), np.int64)
    body[10:65, 12:30] = PART_INDEX["right_upper_leg"]  # the subject's right leg is on the image's left
    body[10:65, 30:48] = PART_INDEX["left_upper_leg"]
    person = classes != cls("Background")
    parts = goliath_to_parts(classes, person, body)
    assert (parts[10:60, 10:30] == PART_INDEX["right_upper_leg"]).all()  # columns 10-11: loose cloth
    assert (parts[10:60, 30:50] == PART_INDEX["left_upper_leg"]).all()
    assert (parts[60:70, 10:20] == PART_INDEX["left_foot"]).all()  # Sapiens' own label wins where it has one
    assert (parts[~person] == 0).all()


def test_predict_resolves_garments_with_the_mask_and_the_fitted_body(geometry):
    height, width = 40, 60
    image = paint(np.full((height, width), cls("Upper_Clothing")))
    mask = np.zeros((height, width), np.float32)
    mask[5:35, 10:50] = 1.0
    body = np.zeros((height, width), np.int64)
    body[5:30, 10:25] = PART_INDEX["right_upper_arm"]
    body[5:30, 25:50] = PART_INDEX["torso"]
    parts = geometry.predict(image, mask, body_parts=body)["parts"]
    assert (parts[mask == 0] == 0).all()
    assert (parts[5:35, 10:25] == PART_INDEX["right_upper_arm"]).all()
    assert (parts[5:35, 25:50] == PART_INDEX["torso"]).all()
    without_body = geometry.predict(image, mask)["parts"]
    assert (without_body[mask == 1] == PART_INDEX["torso"]).all()  # nothing to take a part from


def test_goliath_to_parts_without_mask_keeps_sapiens_background():
    classes = np.zeros((10, 10), np.int64)
    classes[2:8, 2:5] = cls("Right_Hand")
    classes[2:8, 5:8] = cls("Apparel")
    parts = goliath_to_parts(classes)
    assert (parts[classes == 0] == 0).all()
    assert (parts[2:8, 2:8] == PART_INDEX["right_hand"]).all()
    assert (goliath_to_parts(np.full((4, 4), cls("Apparel"))) == PART_INDEX["torso"]).all()


def test_other_dtype_gives_the_same_targets(sapiens_folder, geometry):
    image = np.random.default_rng(2).integers(0, 256, (48, 36, 3), dtype=np.uint8)
    double = SapiensGeometry(sapiens_folder, device="cpu", dtype=torch.float64)
    got, reference = double.predict(image), geometry.predict(image)
    assert double.models["seg"].seen.dtype == torch.float64
    for key in ("depth", "normal"):
        assert got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], reference[key], atol=1e-4)


def test_inputs_are_validated(geometry):
    with pytest.raises(ValueError, match="uint8"):
        geometry.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="mask"):
        geometry.predict(np.zeros((10, 10, 3), np.uint8), np.ones((10, 9)))


def test_release_files_are_zip_archives_like_ours(sapiens_folder):
    """What the archive check relies on: torch.jit.save writes <name>/data.pkl and constants.pkl."""
    names = zipfile.ZipFile(next(sapiens_folder.rglob(SEG_FILE))).namelist()
    assert {n.split("/", 1)[1] for n in names} >= {"data.pkl", "constants.pkl"}
