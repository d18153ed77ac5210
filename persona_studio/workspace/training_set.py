"""The TrainingSet on disk (``workspace/training_set/``) and the generation kit.

Layout::

    training_set/
      manifest.json            generator, motions, counts, sizes, settings, notes
      camera.json              the fixed camera of the generated frames
      photo/                   frame 0: the photo, its mask, depth/normal/part targets, SMPL-X, camera
      extra_photos/01/ ...     the subject's further photos, the same files (frames 1+T.., after the generated)
      frames/000001.png ...    generated RGB frames (index 0 is the photo)
      masks/ depth/ normals/ parts/   per-frame targets (PNG: 8-bit mask, 16-bit depth in mm,
                               8-bit normals as (n + 1) / 2, 8-bit part index)
      smplx/000001.json ...    per-frame SMPL-X (PERSONA JSON keys)
      reposer_surface.npz      the body's surface fitted to the photo (displacement + colours per
                               vertex of the re-poser's template level): the avatar starts from it
      kit/                     the generation kit (skeleton.mp4, skeleton/, reference.png, smplx/,
                               camera.json, README.md): what MimicMotion takes, to run elsewhere
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from persona_studio.body.skeleton import POSE_KEYS, POSE_WIDTHS
from persona_studio.fileio import DamagedFileError, atomic_path, read_json_object
from persona_studio.render.camera import Camera

FORMAT_VERSION = 1
TRAINING_DIR = "training_set"
REGENERATE = "make the training set again (`persona-studio generate -w WORKSPACE`)"
SURFACE_FILE = "reposer_surface.npz"


def frame_name(index: int, ext: str) -> str:
    """``000042.png``: the file name of frame ``index`` with extension ``ext``."""
    return f"{index:06d}.{ext}"


def smplx_to_json(params: dict[str, np.ndarray]) -> dict:
    """smplx keywords of one frame -> the PERSONA/ExAvatar JSON keys."""
    return {
        "root_pose": params["global_orient"].tolist(), "body_pose": params["body_pose"].reshape(21, 3).tolist(),
        "jaw_pose": params["jaw_pose"].tolist(), "leye_pose": params["leye_pose"].tolist(),
        "reye_pose": params["reye_pose"].tolist(),
        "lhand_pose": params["left_hand_pose"].reshape(15, 3).tolist(),
        "rhand_pose": params["right_hand_pose"].reshape(15, 3).tolist(),
        "expr": params["expression"].tolist(), "trans": params["transl"].tolist(), "betas": params["betas"].tolist(),
    }


def smplx_from_json(frame: dict) -> dict[str, np.ndarray]:
    """The PERSONA/ExAvatar JSON keys of one frame -> smplx keywords (flat float32 arrays). A missing key
    raises KeyError; a pose of the wrong size, ValueError naming it."""
    f32 = lambda v: np.asarray(v, np.float32).reshape(-1)  # noqa: E731
    params = {
        "global_orient": f32(frame["root_pose"]), "body_pose": f32(frame["body_pose"]),
        "jaw_pose": f32(frame["jaw_pose"]), "leye_pose": f32(frame["leye_pose"]),
        "reye_pose": f32(frame["reye_pose"]), "left_hand_pose": f32(frame["lhand_pose"]),
        "right_hand_pose": f32(frame["rhand_pose"]), "expression": f32(frame["expr"]),
        "transl": f32(frame["trans"]), "betas": f32(frame["betas"]),
    }
    for key, width in (*zip(POSE_KEYS, POSE_WIDTHS), ("transl", 3)):
        if params[key].size != width:
            raise ValueError(f"{key} has {params[key].size} values, not {width}")
    return params


IMAGE_KINDS = ("frames", "masks", "depth", "normals", "parts")


def photo_folder(folder: Path, photo: int) -> Path:
    """Where the subject's photo ``photo`` (0: the first) and its targets live."""
    return folder / "photo" if photo == 0 else folder / "extra_photos" / f"{photo:02d}"


def frame_paths(folder: Path, index: int, photo: int | None = None) -> dict[str, Path]:
    """Where generated frame ``index``'s image and targets live, or with ``photo`` the subject's photo
    of that number (frame 0, the first photo, sits in ``photo/``)."""
    if index == 0 or photo is not None:
        home = photo_folder(folder, photo or 0)
        return {kind: home / f"{kind}.png" for kind in IMAGE_KINDS} | {"smplx": home / "smplx.json"}
    return {kind: folder / kind / frame_name(index, "png") for kind in IMAGE_KINDS} | {
        "smplx": folder / "smplx" / frame_name(index, "json")}


def write_frame(folder: Path, index: int, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray,
                normal: np.ndarray, parts: np.ndarray, smplx: dict[str, np.ndarray], photo: int | None = None) -> None:
    """One frame's image, targets and SMPL-X ([H, W, 3] float [0, 1] or uint8; mask/depth [H, W] (depth in
    metres, 0 = none); normal [H, W, 3] camera axes; parts [H, W] part indices); with ``photo``, the
    subject's photo of that number instead of generated frame ``index``."""
    paths = frame_paths(folder, index, photo)
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(rgb).save(paths["frames"])
    Image.fromarray((np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)).save(paths["masks"])
    Image.fromarray(np.clip(depth * 1000 + 0.5, 0, 65535).astype(np.uint16)).save(paths["depth"])
    Image.fromarray(((np.clip(normal, -1, 1) + 1) * 127.5 + 0.5).astype(np.uint8)).save(paths["normals"])
    Image.fromarray(parts.astype(np.uint8)).save(paths["parts"])
    paths["smplx"].write_text(json.dumps(smplx_to_json(smplx)) + "\n")


@dataclass
class PhotoSurface:
    """The subject's clothed surface: per dense vertex a displacement along the posed normal and a colour."""

    displacement: np.ndarray  # [V] metres (+ outwards)
    colors: np.ndarray  # [V, 3] in [0, 1]

    def save(self, path: Path) -> None:
        """Write the surface to ``path`` as an npz, atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, displacement=self.displacement, colors=self.colors)

    @classmethod
    def load(cls, path: Path) -> "PhotoSurface":
        """The surface saved by :meth:`save` (a DamagedFileError when the file is not one)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["displacement"], data["colors"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise DamagedFileError(f"{path} is damaged ({exc}): {REGENERATE}") from None


@dataclass
class Frame:
    """One training frame loaded from disk."""

    rgb: np.ndarray  # [H, W, 3] float32 [0, 1]
    mask: np.ndarray  # [H, W] float32
    depth: np.ndarray  # [H, W] float32 metres, 0 = no target
    normal: np.ndarray  # [H, W, 3] float32 camera axes
    parts: np.ndarray  # [H, W] int64
    smplx: dict[str, np.ndarray]
    camera: Camera
    is_photo: bool


class TrainingSet:
    """Read access to ``workspace/training_set``."""

    def __init__(self, workspace: str | Path):
        self.folder = Path(workspace) / TRAINING_DIR
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{Path(workspace)} has no training set: run "
                                    "`persona-studio generate -w WORKSPACE` first")
        path = manifest
        try:
            self.manifest = read_json_object(path, REGENERATE)
            self.identity = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
            self.num_generated = int(self.manifest["generated_frames"])
            self.num_photos = int(self.manifest.get("photos", 1))
            path = self.folder / "camera.json"
            self.camera = Camera.from_json(read_json_object(path, REGENERATE))
            self.photo_cameras = []
            for photo in range(self.num_photos):
                path = photo_folder(self.folder, photo) / "camera.json"
                self.photo_cameras.append(Camera.from_json(read_json_object(path, REGENERATE)))
        except FileNotFoundError:
            raise DamagedFileError(f"{self.folder} lacks {path.relative_to(self.folder)}: {REGENERATE}") from None
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DamagedFileError):
                raise
            raise DamagedFileError(f"{path} is damaged (a missing or wrong {exc} entry): {REGENERATE}") from None

    def __len__(self) -> int:
        return self.num_photos + self.num_generated

    @property
    def photo_indices(self) -> list[int]:
        """The frames that are the subject's photos: 0, then the extra photos after the generated frames."""
        return [0, *range(1 + self.num_generated, len(self))]

    @property
    def generated_indices(self) -> list[int]:
        """The generated frames: 1..T."""
        return list(range(1, 1 + self.num_generated))

    @property
    def renders_its_surface(self) -> bool:
        """Whether the generated frames are renders of the set's own photo surface (the built-in
        re-poser's), not new pictures of the person (a video generator's, or imported ones)."""
        return self.manifest.get("generator") == "reposer"

    def photo_surface(self) -> PhotoSurface | None:
        """The surface fitted to the photo at ``manifest["template_level"]``, when the set has one."""
        path = self.folder / SURFACE_FILE
        return PhotoSurface.load(path) if path.is_file() else None

    def load(self, index: int) -> Frame:
        """Frame ``index``: 0 is the photo, 1..T the generated frames, T+1.. the extra photos."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is not in this training set (0..{len(self) - 1})")
        photos = self.photo_indices
        photo = photos.index(index) if index in photos else None
        paths = frame_paths(self.folder, index, photo)
        kind = "smplx"
        try:
            smplx = smplx_from_json(read_json_object(paths["smplx"], REGENERATE))
            images = {}
            for kind in IMAGE_KINDS:
                images[kind] = np.asarray(Image.open(paths[kind]))
        except FileNotFoundError:
            raise DamagedFileError(f"{self.folder} lacks {paths[kind].relative_to(self.folder)}: {REGENERATE}") from None
        except (KeyError, TypeError, ValueError, OSError) as exc:
            if isinstance(exc, DamagedFileError):
                raise
            raise DamagedFileError(f"{paths[kind]} is damaged ({exc}): {REGENERATE}") from None
        return Frame(
            rgb=images["frames"][..., :3].astype(np.float32) / 255.0,
            mask=images["masks"].astype(np.float32) / 255.0,
            depth=images["depth"].astype(np.float32) / 1000.0,
            normal=images["normals"].astype(np.float32) / 127.5 - 1.0,
            parts=images["parts"].astype(np.int64),
            smplx=smplx,
            camera=self.camera if photo is None else self.photo_cameras[photo],
            is_photo=photo is not None,
        )
