"""Geometry targets from Meta's Sapiens models: relative depth, surface normals, body parts.

The user brings the TorchScript files of the Sapiens-Lite release (facebookresearch/sapiens,
``lite/``), e.g. ``sapiens_1b_render_people_epoch_88_torchscript.pt2`` (depth),
``sapiens_1b_normal_render_people_epoch_115_torchscript.pt2`` (normals) and
``sapiens_1b_goliath_best_goliath_mIoU_7994_epoch_151_torchscript.pt2`` (28-class part
segmentation); the 0.3b / 0.6b / 2b variants are named the same way. Inference follows the release's
demo scripts (``lite/demo/vis_{depth,normal,seg}.py``):

- the whole image is resized (no crop, no padding) to 1024 x 768 with OpenCV's bilinear filter on the
  uint8 pixels, then normalised per RGB channel in 0-255 units with mean (123.5, 116.5, 103.5) and
  std (58.5, 57.0, 57.5); TorchScript models run in float32;
- each model returns ``[B, C, h, w]``; the demo resizes it to the input image size with bilinear
  interpolation (``align_corners=False``) before anything else: argmax over the 28 logits for
  segmentation, division by the length for normals, nothing for depth.

Conventions of the outputs and what we do with them:

- **depth**: one channel, larger = farther (the demo paints ``1 - normalised depth`` so that near is
  bright, and PERSONA compares it with rendered camera-space z through a scale-invariant loss). It
  has no metric scale for a single photo. We return it unchanged: relative depth, larger = farther.
- **normals**: camera-space normals with x right, y up and z towards the viewer (PERSONA's training
  code flips y and z of its OpenCV-camera normals before comparing them with Sapiens'; the
  horizontal-flip augmentation of Sapiens negates x only). Ours are OpenCV (x right, y down, z
  forward, a surface facing the camera has z < 0), so we return ``(x, -y, -z)``.
- **parts**: Goliath classes; ``Left_*`` is the subject's own left, like SMPL-X's ``left_*`` joints,
  so left maps to left. See :data:`GOLIATH_PARTS` for the mapping onto
  :data:`persona_studio.body.parts.PART_NAMES` and :func:`goliath_to_parts` for clothing.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from persona_studio.body.parts import PART_INDEX

TASKS: tuple[str, ...] = ("depth", "normal", "seg")
INPUT_SIZE = (1024, 768)  # (height, width) the Sapiens-Lite models were traced at
PIXEL_MEAN = (123.5, 116.5, 103.5)  # RGB, 0-255 units, as in lite/demo
PIXEL_STD = (58.5, 57.0, 57.5)
OUTPUT_CHANNELS = {"depth": 1, "normal": 3, "seg": 28}

# File names of the release, ``<mode>`` being "torchscript" (loads anywhere) or "bfloat16"
# (torch.export programs meant for torch.compile on a recent GPU).
_SIZE = r"sapiens_(?P<size>\d+(?:\.\d+)?)b_"
_MODE = r"_(?P<mode>[a-z0-9]+)\.pt2"
FILE_PATTERNS = {
    "depth": re.compile(_SIZE + r"render_people_epoch_\d+" + _MODE),
    "normal": re.compile(_SIZE + r"normal_render_people_epoch_\d+" + _MODE),
    "seg": re.compile(_SIZE + r"goliath_best_goliath_mIoU_\d+_epoch_\d+" + _MODE),
}
EXAMPLE_FILES = {
    "depth": "sapiens_1b_render_people_epoch_88_torchscript.pt2",
    "normal": "sapiens_1b_normal_render_people_epoch_115_torchscript.pt2",
    "seg": "sapiens_1b_goliath_best_goliath_mIoU_7994_epoch_151_torchscript.pt2",
}
SEARCH_DEPTH = 5  # the release nests files as <root>/torchscript/<task>/checkpoints/sapiens_1b/<file>

# The 28 part-segmentation classes in the order of the model's output channels
# (lite/demo/classes_and_palettes.py: the 34 Goliath classes minus 6 removed ones).
GOLIATH_CLASSES: tuple[str, ...] = (
    "Background", "Apparel", "Face_Neck", "Hair", "Left_Foot", "Left_Hand", "Left_Lower_Arm",
    "Left_Lower_Leg", "Left_Shoe", "Left_Sock", "Left_Upper_Arm", "Left_Upper_Leg", "Lower_Clothing",
    "Right_Foot", "Right_Hand", "Right_Lower_Arm", "Right_Lower_Leg", "Right_Shoe", "Right_Sock",
    "Right_Upper_Arm", "Right_Upper_Leg", "Torso", "Upper_Clothing", "Lower_Lip", "Upper_Lip",
    "Lower_Teeth", "Upper_Teeth", "Tongue",
)
# Goliath class -> our part, or None for garments, which say nothing about the body part beneath.
# Hair, lips, teeth and tongue belong to the head; shoes and socks to the foot of the same side.
GOLIATH_PARTS: dict[str, str | None] = {
    "Background": "background", "Apparel": None, "Upper_Clothing": None, "Lower_Clothing": None,
    "Face_Neck": "face_neck", "Hair": "face_neck", "Lower_Lip": "face_neck", "Upper_Lip": "face_neck",
    "Lower_Teeth": "face_neck", "Upper_Teeth": "face_neck", "Tongue": "face_neck", "Torso": "torso",
    **{f"{side.title()}_{limb}": f"{side}_{part}"
       for side in ("left", "right")
       for limb, part in (("Upper_Arm", "upper_arm"), ("Lower_Arm", "lower_arm"), ("Hand", "hand"),
                          ("Upper_Leg", "upper_leg"), ("Lower_Leg", "lower_leg"), ("Foot", "foot"),
                          ("Shoe", "foot"), ("Sock", "foot"))},
}
UNRESOLVED = -1
# [28] Goliath class index -> part index, UNRESOLVED for garments.
GOLIATH_TO_PART = np.array([UNRESOLVED if GOLIATH_PARTS[name] is None else PART_INDEX[GOLIATH_PARTS[name]]
                            for name in GOLIATH_CLASSES], dtype=np.int64)


class SapiensError(RuntimeError):
    """A Sapiens model file is missing, unreadable or not the model its name says."""


def _model_files(folder: Path) -> list[tuple[str, Path, str, float]]:
    """Every file under ``folder`` (SEARCH_DEPTH levels at most) named like a release model.

    -> [(task, path, mode, size in billions of parameters)], sorted by path.
    """
    found = []
    root_depth = len(folder.parts)
    for dirpath, dirnames, filenames in os.walk(folder):
        if len(Path(dirpath).parts) - root_depth >= SEARCH_DEPTH:
            dirnames.clear()
        for name in filenames:
            for task, pattern in FILE_PATTERNS.items():
                match = pattern.fullmatch(name)
                if match:
                    found.append((task, Path(dirpath) / name, match["mode"], float(match["size"])))
    return sorted(found, key=lambda item: str(item[1]))


def find_sapiens_models(folder: Path) -> dict[str, Path]:
    """Task ("depth" | "normal" | "seg") -> TorchScript file in ``folder`` or its subfolders.

    Files are recognised by the release's names; when a task has several sizes the largest model
    wins. A missing folder gives an empty dict (:func:`check_sapiens` says why).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    best: dict[str, tuple[float, Path]] = {}
    for task, path, mode, size in _model_files(folder):
        if mode == "torchscript" and (task not in best or size > best[task][0]):
            best[task] = (size, path)
    return {task: best[task][1] for task in TASKS if task in best}


def torchscript_archive_problem(path: Path) -> str | None:
    """None when ``path`` is a complete TorchScript archive, else what is wrong with it.

    Reads only the zip directory, so it is cheap even for the 2B models; a file cut short by an
    interrupted download has no directory. The weights themselves are read by ``torch.jit.load``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        return f"{path} is not a complete TorchScript archive ({exc}): download it again"
    entries = {name.split("/", 1)[-1] for name in names}
    if not {"data.pkl", "constants.pkl"} <= entries:
        return (f"{path} is an archive but not a TorchScript model (no data.pkl/constants.pkl): "
                "take the *_torchscript.pt2 file of the Sapiens-Lite release")
    return None


def check_sapiens(folder: Path | None) -> str | None:
    """None when ``folder`` holds at least one Sapiens model and every model found there is a whole
    TorchScript archive; else one line saying what is wrong and what to do.

    Cheap (nothing is loaded), so the app can call it whenever the folder changes; a file that passes
    but still fails to load is reported by :class:`SapiensGeometry`.
    """
    wanted = ", ".join(f"{name} ({task})" for task, name in EXAMPLE_FILES.items())
    where = ("from huggingface.co/facebook/sapiens-{depth,normal,seg}-1b-torchscript "
             "(0.3b/0.6b/2b work too)")
    if folder is None or str(folder) == "":
        return f"Sapiens: no model folder set; put {wanted} {where} in a folder and choose it as the Sapiens folder"
    folder = Path(folder)
    if not folder.is_dir():
        return f"Sapiens: the folder {folder} does not exist; put {wanted} {where} there"
    models = find_sapiens_models(folder)
    if not models:
        other_modes = sorted({mode for _, _, mode, _ in _model_files(folder)} - {"torchscript"})
        note = (f" (found only {'/'.join(other_modes)} files, which need torch.compile on a GPU; "
                "use the _torchscript.pt2 ones)") if other_modes else ""
        return f"Sapiens: no model files in {folder}{note}; put {wanted} {where} there"
    problems = [problem for problem in map(torchscript_archive_problem, models.values()) if problem]
    return f"Sapiens: {problems[0]}" if problems else None


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SapiensError(f"device {device!r} was asked for but CUDA is not available: use 'cpu' or 'auto'")
    return resolved


def load_sapiens_model(path: Path, device: torch.device, dtype: torch.dtype) -> torch.jit.ScriptModule:
    """A release TorchScript file -> the model in eval mode on ``device`` in ``dtype``."""
    problem = torchscript_archive_problem(path)
    if problem:
        raise SapiensError(problem)
    try:
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; the release ships nothing else
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch reports unreadable archives with several exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SapiensError(f"{path} could not be loaded as a TorchScript model ({first_line}): "
                           "download it again") from exc
    return model.eval().to(dtype)


def sapiens_input(images: np.ndarray) -> torch.Tensor:
    """[B, H, W, 3] uint8 RGB -> [B, 3, 1024, 768] float32 normalised model input.

    Like the release: OpenCV bilinear resize of the uint8 pixels (the aspect ratio is not kept),
    then per-channel (x - mean) / std in 0-255 units.
    """
    height, width = INPUT_SIZE
    resized = np.stack([cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for image in images])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float()  # [B, 3, 1024, 768]
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def resize_output(output: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, C, h, w] model output -> [B, C, H, W] float32, bilinear as the demo resizes it."""
    return F.interpolate(output.float(), size=(height, width), mode="bilinear", align_corners=False)


def sapiens_to_opencv_normals(normals: torch.Tensor) -> torch.Tensor:
    """[..., 3] Sapiens normals (x right, y up, z to the viewer) -> [..., 3] unit OpenCV normals."""
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=normals.dtype, device=normals.device)
    return F.normalize(normals, dim=-1) * flip


def nearest_label(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """[H, W] labels, [H, W] bool -> [H, W] labels: every pixel takes the label of its nearest source.

    ``sources`` must hold at least one True pixel.
    """
    rows, cols = ndimage.distance_transform_edt(~sources, return_distances=False, return_indices=True)
    return labels[rows, cols]


def goliath_to_parts(classes: np.ndarray, person: np.ndarray | None = None,
                     body_parts: np.ndarray | None = None) -> np.ndarray:
    """[H, W] Goliath class indices -> [H, W] int64 part indices (PART_NAMES).

    ``person`` ([H, W] bool) is the person mask: outside it every pixel is background, inside it
    pixels Sapiens calls background are resolved like garments. Garment pixels (Apparel,
    Upper_Clothing, Lower_Clothing) cover a body part the image does not show, so:

    - with ``body_parts`` ([H, W] int part indices rendered from the fitted body, 0 off the body),
      they take the fitted body's part at that pixel, or that of the nearest body pixel for loose
      clothing beyond the body's outline (a sleeve becomes arm, a trouser leg the leg of its side);
    - without it, they take the part of the nearest pixel (in the person) Sapiens labelled with a
      body part. This keeps sleeves on the arms they end in, but a shirt or trousers that hide the
      whole torso or legs are split between the visible neck, hands and feet; pass ``body_parts``.

    With nothing to take a part from, garments become torso.
    """
    parts = GOLIATH_TO_PART[classes]
    unresolved = parts == UNRESOLVED
    if person is not None:
        parts[~person] = PART_INDEX["background"]
        unresolved = person & (unresolved | (parts == PART_INDEX["background"]))
    if unresolved.any():
        if body_parts is not None and (body_parts > 0).any():
            fill = nearest_label(body_parts.astype(np.int64), body_parts > 0)
        elif (parts > 0).any():
            fill = nearest_label(parts, parts > 0)
        else:
            fill = np.full_like(parts, PART_INDEX["torso"])
        parts[unresolved] = fill[unresolved]
    return parts


class SapiensGeometry:
    """Depth, normal and part maps of one image from whichever Sapiens models ``folder`` holds."""

    def __init__(self, folder: Path, device: str = "auto", dtype: torch.dtype | None = None):
        self.device = resolve_device(device)
        self.dtype = dtype or torch.float32  # the release runs its TorchScript models in float32
        self.paths = find_sapiens_models(Path(folder))
        if not self.paths:
            raise SapiensError(check_sapiens(Path(folder)) or f"Sapiens: no models in {folder}")
        self.models = {task: load_sapiens_model(path, self.device, self.dtype) for task, path in self.paths.items()}
        self.tasks: tuple[str, ...] = tuple(self.models)

    def _run(self, task: str, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """[1, 3, 1024, 768] input -> [C, H, W] float32 output of ``task`` at the image size, on the device."""
        output = self.models[task](x)
        expected = OUTPUT_CHANNELS[task]
        if not isinstance(output, torch.Tensor) or output.dim() != 4 or output.shape[1] != expected:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise SapiensError(f"{self.paths[task]} returned {got}, not [B, {expected}, h, w] as a Sapiens "
                               f"{task} model does: is it the right file?")
        return resize_output(output, height, width)[0]

    def predict(self, image: np.ndarray, mask: np.ndarray | None = None,
                body_parts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Geometry targets of one image; only the tasks whose model was found are in the result.

        image: [H, W, 3] uint8 RGB. mask: [H, W] person mask in [0, 1] (> 0.5 is the person);
        outside it depth and normals are NaN and parts background. body_parts: optional [H, W]
        part indices rendered from the fitted body, used for garments (see :func:`goliath_to_parts`).
        -> "depth" [H, W] float32 relative depth, larger = farther; "normal" [H, W, 3] float32 unit
        normals, OpenCV camera axes; "parts" [H, W] int64 indices into PART_NAMES.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] uint8 RGB image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        person = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (height, width):
                raise ValueError(f"the mask is {mask.shape}, the image {height}x{width}: they must match")
            person = mask > 0.5
        if body_parts is not None and np.shape(body_parts) != (height, width):
            raise ValueError(f"body_parts is {np.shape(body_parts)}, the image {height}x{width}: they must match")

        x = sapiens_input(image[None]).to(self.device, self.dtype)
        result: dict[str, np.ndarray] = {}
        with torch.no_grad():
            if "depth" in self.models:
                depth = self._run("depth", x, height, width)[0].cpu().numpy()  # [H, W]
                if person is not None:
                    depth[~person] = np.nan
                result["depth"] = depth.astype(np.float32)
            if "normal" in self.models:
                sapiens_normal = self._run("normal", x, height, width).permute(1, 2, 0)  # [H, W, 3]
                normal = sapiens_to_opencv_normals(sapiens_normal).cpu().numpy()
                if person is not None:
                    normal[~person] = np.nan
                result["normal"] = normal.astype(np.float32)  # [H, W, 3]
            if "seg" in self.models:
                classes = self._run("seg", x, height, width).argmax(0).cpu().numpy()  # [H, W] Goliath indices
                result["parts"] = goliath_to_parts(classes, person,
                                                   None if body_parts is None else np.asarray(body_parts))
        return result
