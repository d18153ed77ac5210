"""The Subject: one photo fitted with SMPL-X, stored in a workspace's ``subject/`` folder.

``subject/`` holds the original photo (as given), the working image, the person mask, the detected
keypoints (JSON), the SMPL-X parameters in the PERSONA/ExAvatar JSON convention (``root_pose``,
``body_pose`` 21x3, ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``lhand_pose``/``rhand_pose`` 15x3,
``expr``, ``trans``, ``betas``), the camera (``R``, ``t``, ``focal``, ``princpt``, size), the fit's
figures and the body model it was fitted with, and an overlay of the fitted mesh on the photo.

More photos of the same person (a back or a side shot) sit in ``subject/extra/01/``, ``02/``... with the
same files (``view.json`` holding the photo's name, figures, notes and the colour gain that matches its
exposure and white balance to the first's): each its own pose and camera, the
betas the same as the first's (one shape fitted jointly). A workspace without ``extra/`` has one photo.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from persona_studio.body.model import BodyModel, load_body_model
from persona_studio.fileio import DamagedFileError, atomic_folder, read_json_object
from persona_studio.render.camera import Camera
from persona_studio.render.image import with_colour_gain
from persona_studio.workspace.training_set import smplx_from_json, smplx_to_json

FORMAT_VERSION = 1
SUBJECT_DIR = "subject"
EXTRA_DIR = "extra"
VIEW_FILES = ("smplx.json", "camera.json", "keypoints.json", "image.png", "mask.png", "overlay.png")
SUBJECT_FILES = ("subject.json", *VIEW_FILES)
_ORIGINAL_PHOTO = re.compile(r"original(\.[a-z0-9]{1,5})?")  # the photo as given, under its own extension
_EXTRA_VIEW = re.compile(rf"{EXTRA_DIR}/\d\d")
MAX_PHOTOS = 16


def is_subject_file(name: str) -> bool:
    """Whether ``name`` (a POSIX path inside ``subject/``) is a file that :meth:`Subject.save` writes."""
    folder, _, file = name.rpartition("/")
    if folder == "":
        return file in SUBJECT_FILES or _ORIGINAL_PHOTO.fullmatch(file) is not None
    return (_EXTRA_VIEW.fullmatch(folder) is not None
            and (file in VIEW_FILES or file == "view.json" or _ORIGINAL_PHOTO.fullmatch(file) is not None))


class WorkspaceError(ValueError):
    """A workspace folder that cannot be used; the message says why and what to do."""


@dataclass
class Subject:
    """The fitted photo: working image, person mask, keypoints, SMPL-X parameters, camera, the body model they
    belong to, fit metrics, notes."""
    image: np.ndarray  # [H, W, 3] uint8 working image
    mask: np.ndarray  # [H, W] float32 in [0, 1]
    keypoints: dict[str, np.ndarray]  # body [33, 3], left_hand/right_hand [21, 3], face [478, 3]
    smplx: dict[str, np.ndarray]  # smplx keywords without batch (betas, global_orient, body_pose [63], ...)
    camera: Camera
    body_model: dict  # kind, path, details the betas belong to
    metrics: dict[str, float] = field(default_factory=dict)
    photo_name: str = "photo"
    notes: list[str] = field(default_factory=list)
    extras: list["Subject"] = field(default_factory=list)  # more photos: own pose and camera, the same betas
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # an extra photo's colours -> the first's (linear RGB)

    @property
    def balanced_image(self) -> np.ndarray:
        """The photo with its colours matched to the first photo's (exposure and white balance): what the
        avatar's colours are taken from. The first photo's is its image."""
        if all(g == 1.0 for g in self.colour_gain):
            return self.image
        return with_colour_gain(self.image, self.colour_gain)

    @property
    def views(self) -> list["Subject"]:
        """Every photo of the person, the first (this one) first."""
        return [self, *self.extras]

    def smplx_json(self) -> dict:
        """The parameters in the PERSONA/ExAvatar per-frame JSON convention (trans is the body's)."""
        unposed = {key: np.zeros(3, np.float32) for key in ("leye_pose", "reye_pose", "transl")}
        return smplx_to_json({**unposed, **self.smplx})

    def load_body_model(self) -> BodyModel:
        """The body model the subject was fitted with: its kind, and for official SMPL-X the file the
        fit recorded (the betas only mean something on that model)."""
        kind = self.body_model["kind"]
        return load_body_model(kind, official_path=self.body_model.get("path") if kind == "official" else None)

    def save(self, workspace: str | Path, original_photos: list[str | Path],
             overlays: list[np.ndarray | None] | None = None) -> Path:
        """Write ``workspace/subject/`` as a whole (atomic: the folder appears complete or not at all):
        ``original_photos`` and ``overlays`` one per view (:attr:`views`), the photos as given (they may
        lie in the folder being replaced)."""
        target = Path(workspace) / SUBJECT_DIR
        views = self.views
        overlays = overlays or [None] * len(views)
        if not len(original_photos) == len(overlays) == len(views):
            raise ValueError(f"{len(views)} views need as many original photos and overlays")
        with atomic_folder(target) as tmp:
            for i, (view, original, overlay) in enumerate(zip(views, original_photos, overlays)):
                folder = tmp if i == 0 else tmp / EXTRA_DIR / f"{i:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                view._write_view(folder, Path(original), overlay, extra=i > 0)
            meta = {"format_version": FORMAT_VERSION, "photo_name": self.photo_name,
                    "original": f"original{Path(original_photos[0]).suffix.lower()}", "body_model": self.body_model,
                    "metrics": self.metrics, "notes": self.notes}
            (tmp / "subject.json").write_text(json.dumps(meta, indent=1) + "\n")
        return target

    def _write_view(self, folder: Path, original_photo: Path, overlay: np.ndarray | None, extra: bool) -> None:
        """One photo's files (the first's figures go to ``subject.json``, an extra's to ``view.json``)."""
        shutil.copyfile(original_photo, folder / f"original{original_photo.suffix.lower()}")
        Image.fromarray(self.image).save(folder / "image.png")
        Image.fromarray((np.clip(self.mask, 0, 1) * 255).astype(np.uint8)).save(folder / "mask.png")
        (folder / "keypoints.json").write_text(json.dumps(
            {k: np.asarray(v, np.float32).tolist() for k, v in self.keypoints.items()}) + "\n")
        (folder / "smplx.json").write_text(json.dumps(self.smplx_json(), indent=1) + "\n")
        (folder / "camera.json").write_text(json.dumps(self.camera.to_json(), indent=1) + "\n")
        if extra:
            meta = {"photo_name": self.photo_name, "metrics": self.metrics, "notes": self.notes,
                    "colour_gain": [float(g) for g in self.colour_gain]}
            (folder / "view.json").write_text(json.dumps(meta, indent=1) + "\n")
        if overlay is not None:
            Image.fromarray(overlay).save(folder / "overlay.png")

    def without_extra(self, workspace: str | Path, index: int) -> "Subject":
        """Remove extra photo ``index`` (1 = the first extra) from the subject saved in ``workspace`` and
        save the rest; returns the new Subject. The shape stays the one fitted with every photo."""
        if not 1 <= index <= len(self.extras):
            raise WorkspaceError(f"the subject has no extra photo {index} (it has {len(self.extras)})")
        keep = [i for i in range(len(self.views)) if i != index]
        folders = [view_folder(workspace, i) for i in keep]
        originals = [original_photos(workspace)[i] for i in keep]
        overlays = [np.asarray(Image.open(f / "overlay.png").convert("RGB")) if (f / "overlay.png").is_file() else None
                    for f in folders]
        views = [self.views[i] for i in keep]
        subject = replace(views[0], extras=views[1:])
        subject.save(workspace, originals, overlays)
        return subject

    @classmethod
    def load(cls, workspace: str | Path) -> "Subject":
        """The Subject saved in ``workspace/subject/``; WorkspaceError when there is none or its format is
        another."""
        folder = Path(workspace) / SUBJECT_DIR
        meta_path = folder / "subject.json"
        if not meta_path.is_file():
            raise WorkspaceError(f"{workspace} has no fitted subject (no {SUBJECT_DIR}/subject.json): "
                                 "run `persona-studio fit PHOTO -w WORKSPACE` first")
        refit = "fit the photo again (`persona-studio fit PHOTO -w WORKSPACE`)"
        meta = _read(meta_path, refit)
        if meta.get("format_version") != FORMAT_VERSION:
            raise WorkspaceError(f"{meta_path}: subject format {meta.get('format_version')} is not "
                                 f"{FORMAT_VERSION}; {refit}")
        try:
            body_model = dict(meta["body_model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkspaceError(f"{meta_path} has no usable body_model entry ({exc}): {refit}") from None
        first = _load_view(folder, meta_path, body_model, refit)
        extras = [_load_view(f, f / "view.json", body_model, refit)
                  for f in sorted((folder / EXTRA_DIR).glob("[0-9][0-9]")) if f.is_dir()]
        return replace(first, extras=extras)


def view_folder(workspace: str | Path, index: int) -> Path:
    """Where photo ``index`` of the subject (0: the first) keeps its files."""
    folder = Path(workspace) / SUBJECT_DIR
    return folder if index == 0 else folder / EXTRA_DIR / f"{index:02d}"


def original_photos(workspace: str | Path) -> list[Path]:
    """The subject's photos as given, the first first (a WorkspaceError when one is missing)."""
    folder = Path(workspace) / SUBJECT_DIR
    folders = [folder, *sorted(f for f in (folder / EXTRA_DIR).glob("[0-9][0-9]") if f.is_dir())]
    originals = [next(f.glob("original.*"), None) for f in folders]
    if None in originals:
        raise WorkspaceError(f"{folders[originals.index(None)]} lacks its original photo: fit the photos again")
    return originals


def _load_view(folder: Path, meta_path: Path, body_model: dict, refit: str) -> Subject:
    """One photo's files in ``folder`` (its name, figures and notes in ``meta_path``)."""
    path = meta_path
    try:
        meta = _read(path, refit)
        path = folder / "smplx.json"
        smplx = smplx_from_json(_read(path, refit))
        path = folder / "keypoints.json"
        keypoints = {k: np.array(v, np.float32) for k, v in _read(path, refit).items()}
        path = folder / "camera.json"
        camera = Camera.from_json(_read(path, refit))
        path = meta_path
        metrics, photo_name, notes = dict(meta["metrics"]), str(meta["photo_name"]), list(meta["notes"])
        gain = tuple(float(g) for g in meta.get("colour_gain", (1.0, 1.0, 1.0)))
        if len(gain) != 3 or not all(0.1 <= g <= 10 for g in gain):
            raise ValueError(f"colour_gain {gain} is not three gains within 0.1..10")
        path = folder / "image.png"
        image = np.asarray(Image.open(path).convert("RGB"))
        path = folder / "mask.png"
        mask = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise WorkspaceError(f"{folder} lacks {path.name}: {refit}") from None
    except KeyError as exc:
        raise WorkspaceError(f"{path} has no {exc} entry: {refit}") from None
    except (TypeError, ValueError, OSError) as exc:  # wrong shapes or types, unreadable images
        raise WorkspaceError(f"{path} is damaged ({exc}): {refit}") from None
    if mask.shape != image.shape[:2]:
        raise WorkspaceError(f"{folder / 'mask.png'} is {mask.shape[1]}x{mask.shape[0]}, not the image's "
                             f"{image.shape[1]}x{image.shape[0]}: {refit}")
    return Subject(image=image, mask=mask, keypoints=keypoints, smplx=smplx, camera=camera, body_model=body_model,
                   metrics=metrics, photo_name=photo_name, notes=notes, colour_gain=gain)


def _read(path: Path, remedy: str) -> dict:
    try:
        return read_json_object(path, remedy)
    except DamagedFileError as exc:
        raise WorkspaceError(str(exc)) from None
