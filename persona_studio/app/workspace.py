"""Where the app keeps workspaces, and what a workspace folder holds so far. No GUI code here.

A photo opened in the app gets its workspace under the user's data folder (not beside the photo: the
photo's folder may be read-only, shared, or a download folder the user does not want filled):
``<user data>/persona-studio/workspaces/<photo stem>-<8 hex digits of the photo's SHA-1>/``
(``platformdirs.user_data_dir``; e.g. ``~/.local/share/persona-studio/workspaces`` on Linux). The
same photo therefore always reopens the same workspace, with whatever stages it already ran; another
photo with the same name gets its own. ``main.py --workspaces DIR`` moves the root. A folder that
already is a workspace (it has ``subject/``) opens in place, wherever it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from persona_studio.paths import APP_NAME, project_folder
from persona_studio.workspace.folders import bundle_folder, checkpoint_file

SAMPLE_PHOTO = project_folder("resources") / "sample_person.png"

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MOTION_SUFFIXES = (".npz", ".smpl", ".bvh")
BUNDLE_SUFFIXES = (".zip",)
MAX_RECENT = 10


def default_workspaces_root() -> Path:
    """``<user data>/persona-studio/workspaces``: where photos get their workspaces unless ``--workspaces``
    says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "workspaces"


def photo_digest(photo: Path) -> str:
    """8 hex digits of the SHA-1 of the photo's bytes."""
    digest = hashlib.sha1()
    with open(photo, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:8]


def workspace_for_photo(photo: str | Path, root: str | Path) -> Path:
    """The workspace folder of ``photo`` under ``root`` (see the module docstring); not created here."""
    photo = Path(photo)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", photo.stem).strip("._") or "photo"
    return Path(root) / f"{stem[:40]}-{photo_digest(photo)}"


def is_workspace(folder: str | Path) -> bool:
    """``folder`` holds a fitted Subject (``subject/subject.json``)."""
    return (Path(folder) / "subject" / "subject.json").is_file()


@dataclass(frozen=True)
class WorkspaceStages:
    """Which stages a workspace has finished (read from its folders)."""

    fitted: bool
    generated: bool
    checkpoint: bool
    trained: bool

    @classmethod
    def of(cls, folder: str | Path) -> WorkspaceStages:
        """The stages ``folder`` has done, from the files each one writes."""
        folder = Path(folder)
        return cls(fitted=is_workspace(folder),
                   generated=(folder / "training_set" / "manifest.json").is_file(),
                   checkpoint=checkpoint_file(folder).is_file(),
                   trained=(bundle_folder(folder) / "avatar.json").is_file())


def classify_drop(path: str | Path) -> str:
    """What a dropped or opened path is: "photo", "motion", "workspace", "bundle" (a workspace bundle
    zip), or "unknown"."""
    path = Path(path)
    if path.is_dir():
        if is_workspace(path):
            return "workspace"
        if any(p.suffix.lower() == ".json" for p in path.iterdir()):
            return "motion"  # a folder of per-frame SMPL-X JSON
        return "unknown"
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    if suffix in MOTION_SUFFIXES:
        return "motion"
    if suffix in BUNDLE_SUFFIXES:
        return "bundle"
    return "unknown"


def new_workspace_for_bundle(bundle: str | Path, root: str | Path) -> Path:
    """A folder under ``root`` that does not exist yet, named after the bundle file."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(bundle).stem).strip("._") or "workspace"
    candidate = Path(root) / stem[:40]
    number = 1
    while candidate.exists():
        number += 1
        candidate = Path(root) / f"{stem[:40]}-{number}"
    return candidate


def remember(recent: list[str], folder: str | Path) -> list[str]:
    """``recent`` with ``folder`` moved to the front, without duplicates, at most MAX_RECENT long."""
    folder = str(Path(folder).resolve())
    return [folder] + [f for f in recent if f != folder][:MAX_RECENT - 1]
