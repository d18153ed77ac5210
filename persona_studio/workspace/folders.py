"""Where a workspace keeps the trained avatar and the exports (the stages' shared layout), and the checks
every stage makes on it before it starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from persona_studio.fileio import check_writable, sweep_stale_temp

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


def earlier_training_folder(workspace: Path) -> Path:
    """Where training set aside by a fresh start is kept: ``avatar/earlier/<date-time>/`` folders, each with
    the checkpoint and the bundle it replaced (deleting them is the user's choice)."""
    return avatar_folder(workspace) / "earlier"


def set_training_aside(workspace: Path) -> Path | None:
    """Move the workspace's checkpoint and trained bundle into a new :func:`earlier_training_folder`
    sub-folder named for the time; returns it, or None when there was nothing to move."""
    present = [p for p in (checkpoint_file(workspace), bundle_folder(workspace)) if p.exists()]
    if not present:
        return None
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    target = earlier_training_folder(workspace) / stamp
    serial = 1
    while target.exists():
        serial += 1
        target = earlier_training_folder(workspace) / f"{stamp}_{serial}"
    target.mkdir(parents=True)
    for path in present:
        os.replace(path, target / path.name)
    return target


def exports_folder(workspace: Path) -> Path:
    """The default target of every export."""
    return Path(workspace) / EXPORTS_DIR


# About the most each stage writes into a workspace (the new copy beside the old one during the swap),
# checked before it starts so that a full disk stops it at once instead of after minutes of work.
STAGE_WRITE_BYTES = {"fit": 64 * 1024**2, "generate": 256 * 1024**2, "train": 256 * 1024**2}


def prepare_stage(workspace: Path, stage: str) -> None:
    """Before ``stage`` runs over ``workspace``: remove what a killed earlier run left (stale temporary files
    and folders, :func:`persona_studio.fileio.sweep_stale_temp`) and check that the workspace is writable
    with room for the stage's output (an ``OSError`` saying what to do otherwise)."""
    workspace = Path(workspace)
    sweep_stale_temp([workspace, *(workspace / name for name in (AVATAR_DIR, EXPORTS_DIR))])
    check_writable(workspace, STAGE_WRITE_BYTES[stage], f"the {stage} stage's output")
