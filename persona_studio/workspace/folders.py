"""Where a workspace keeps the trained avatar and the exports (the stages' shared layout)."""

from __future__ import annotations

from pathlib import Path

AVATAR_DIR = "avatar"
EXPORTS_DIR = "exports"
BUNDLE_DIR = f"{AVATAR_DIR}/bundle"  # workspace-relative, as it also sits inside a workspace bundle zip


def avatar_folder(workspace: Path) -> Path:
    """``workspace/avatar/``: the training checkpoint and the finished bundle."""
    return Path(workspace) / AVATAR_DIR


def checkpoint_file(workspace: Path) -> Path:
    """The resumable training state (safetensors)."""
    return avatar_folder(workspace) / "checkpoint.safetensors"


def bundle_folder(workspace: Path) -> Path:
    """The trained avatar as a bundle (``avatar.safetensors`` + ``avatar.json``)."""
    return Path(workspace) / BUNDLE_DIR


def exports_folder(workspace: Path) -> Path:
    """The default target of every export."""
    return Path(workspace) / EXPORTS_DIR
