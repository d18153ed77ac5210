"""The Subject: one photo fitted with SMPL-X, stored in a workspace's ``subject/`` folder.

``subject/`` holds the original photo (as given), the working image, the person mask, the detected
keypoints (JSON), the SMPL-X parameters in the PERSONA/ExAvatar JSON convention (``root_pose``,
``body_pose`` 21x3, ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``lhand_pose``/``rhand_pose`` 15x3,
``expr``, ``trans``, ``betas``), the camera (``R``, ``t``, ``focal``, ``princpt``, size), the fit's
figures and the body model it was fitted with, and an overlay of the fitted mesh on the photo.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from persona_studio.body.model import BodyModel, load_body_model
from persona_studio.fileio import DamagedFileError, atomic_folder, read_json_object
from persona_studio.render.camera import Camera
from persona_studio.workspace.training_set import smplx_from_json, smplx_to_json

FORMAT_VERSION = 1
SUBJECT_DIR = "subject"
SUBJECT_FILES = ("subject.json", "smplx.json", "camera.json", "keypoints.json", "image.png", "mask.png", "overlay.png")
_ORIGINAL_PHOTO = re.compile(r"original(\.[a-z0-9]{1,5})?")  # the photo as given, under its own extension


def is_subject_file(name: str) -> bool:
    """Whether ``name`` is a file that ``subject/`` holds (:meth:`Subject.save` writes no others)."""
    return name in SUBJECT_FILES or _ORIGINAL_PHOTO.fullmatch(name) is not None


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

    def smplx_json(self) -> dict:
        """The parameters in the PERSONA/ExAvatar per-frame JSON convention (trans is the body's)."""
        unposed = {key: np.zeros(3, np.float32) for key in ("leye_pose", "reye_pose", "transl")}
        return smplx_to_json({**unposed, **self.smplx})

    def load_body_model(self) -> BodyModel:
        """The body model the subject was fitted with: its kind, and for official SMPL-X the file the
        fit recorded (the betas only mean something on that model)."""
        kind = self.body_model["kind"]
        return load_body_model(kind, official_path=self.body_model.get("path") if kind == "official" else None)

    def save(self, workspace: str | Path, original_photo: str | Path, overlay: np.ndarray | None = None) -> Path:
        """Write ``workspace/subject/`` as a whole (atomic: the folder appears complete or not at all)."""
        target = Path(workspace) / SUBJECT_DIR
        original_photo = Path(original_photo)
        with atomic_folder(target) as tmp:
            shutil.copyfile(original_photo, tmp / f"original{original_photo.suffix.lower()}")
            Image.fromarray(self.image).save(tmp / "image.png")
            Image.fromarray((np.clip(self.mask, 0, 1) * 255).astype(np.uint8)).save(tmp / "mask.png")
            (tmp / "keypoints.json").write_text(json.dumps(
                {k: np.asarray(v, np.float32).tolist() for k, v in self.keypoints.items()}) + "\n")
            (tmp / "smplx.json").write_text(json.dumps(self.smplx_json(), indent=1) + "\n")
            (tmp / "camera.json").write_text(json.dumps(self.camera.to_json(), indent=1) + "\n")
            meta = {"format_version": FORMAT_VERSION, "photo_name": self.photo_name,
                    "original": f"original{original_photo.suffix.lower()}", "body_model": self.body_model,
                    "metrics": self.metrics, "notes": self.notes}
            (tmp / "subject.json").write_text(json.dumps(meta, indent=1) + "\n")
            if overlay is not None:
                Image.fromarray(overlay).save(tmp / "overlay.png")
        return target

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
        path = folder / "smplx.json"
        try:
            smplx = smplx_from_json(_read(path, refit))
            path = folder / "keypoints.json"
            keypoints = {k: np.array(v, np.float32) for k, v in _read(path, refit).items()}
            path = folder / "camera.json"
            camera = Camera.from_json(_read(path, refit))
            path = meta_path
            body_model, metrics = dict(meta["body_model"]), dict(meta["metrics"])
            photo_name, notes = str(meta["photo_name"]), list(meta["notes"])
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
        return cls(image=image, mask=mask, keypoints=keypoints, smplx=smplx, camera=camera, body_model=body_model,
                   metrics=metrics, photo_name=photo_name, notes=notes)


def _read(path: Path, remedy: str) -> dict:
    try:
        return read_json_object(path, remedy)
    except DamagedFileError as exc:
        raise WorkspaceError(str(exc)) from None
