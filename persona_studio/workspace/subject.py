"""The Subject: one photo fitted with SMPL-X, stored in a workspace's ``subject/`` folder.

``subject/`` holds the original photo (as given), the working image, the person mask, the detected
keypoints (JSON), the SMPL-X parameters in the PERSONA/ExAvatar JSON convention (``root_pose``,
``body_pose`` 21x3, ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``lhand_pose``/``rhand_pose`` 15x3,
``expr``, ``trans``, ``betas``), the camera (``R``, ``t``, ``focal``, ``princpt``, size), the fit's
figures and the body model it was fitted with, and an overlay of the fitted mesh on the photo.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from persona_studio.body.model import BodyModel, load_body_model
from persona_studio.fileio import atomic_folder
from persona_studio.render.camera import Camera

FORMAT_VERSION = 1
SUBJECT_DIR = "subject"


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
        p = self.smplx
        return {
            "root_pose": p["global_orient"].tolist(), "body_pose": p["body_pose"].reshape(21, 3).tolist(),
            "jaw_pose": p["jaw_pose"].tolist(),
            "leye_pose": p.get("leye_pose", np.zeros(3)).tolist(),
            "reye_pose": p.get("reye_pose", np.zeros(3)).tolist(),
            "lhand_pose": p["left_hand_pose"].reshape(15, 3).tolist(),
            "rhand_pose": p["right_hand_pose"].reshape(15, 3).tolist(),
            "expr": p["expression"].tolist(), "trans": p.get("transl", np.zeros(3)).tolist(),
            "betas": p["betas"].tolist(),
        }

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
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise WorkspaceError(f"{meta_path}: subject format {meta.get('format_version')} is not "
                                 f"{FORMAT_VERSION}; fit the photo again")
        j = json.loads((folder / "smplx.json").read_text())
        smplx = {
            "global_orient": np.array(j["root_pose"], np.float32),
            "body_pose": np.array(j["body_pose"], np.float32).reshape(-1),
            "jaw_pose": np.array(j["jaw_pose"], np.float32),
            "leye_pose": np.array(j["leye_pose"], np.float32), "reye_pose": np.array(j["reye_pose"], np.float32),
            "left_hand_pose": np.array(j["lhand_pose"], np.float32).reshape(-1),
            "right_hand_pose": np.array(j["rhand_pose"], np.float32).reshape(-1),
            "expression": np.array(j["expr"], np.float32), "transl": np.array(j["trans"], np.float32),
            "betas": np.array(j["betas"], np.float32),
        }
        keypoints = {k: np.array(v, np.float32) for k, v in json.loads((folder / "keypoints.json").read_text()).items()}
        return cls(
            image=np.asarray(Image.open(folder / "image.png").convert("RGB")),
            mask=np.asarray(Image.open(folder / "mask.png"), dtype=np.float32) / 255.0,
            keypoints=keypoints, smplx=smplx,
            camera=Camera.from_json(json.loads((folder / "camera.json").read_text())),
            body_model=meta["body_model"], metrics=meta["metrics"], photo_name=meta["photo_name"],
            notes=meta["notes"])
