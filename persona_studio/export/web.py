"""The avatar as a web page that plays it: a folder with ``index.html``, ``player.js`` and the rigged GLB
(:mod:`persona_studio.export.gltf`), no network needed.

The player (``resources/web_player/``) is plain WebGL2 with no library: it reads the GLB, morphs and skins
the Gaussians on the GPU (transform feedback), sorts them back to front and splats them with the same
projection and falloff as the program's own viewer. A library was not worth its weight here: three.js and
PlayCanvas each bring their own splat path (PlayCanvas reads KHR_gaussian_splatting, three.js does not),
neither skins and morphs splats, and the page stays a few kilobytes beside the GLB.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.motion import Motion
from persona_studio.export import ExportError, check_output_path
from persona_studio.export.gltf import GltfFigures, export_gltf
from persona_studio.fileio import atomic_folder
from persona_studio.paths import project_folder

PLAYER_FILES = ("index.html", "player.js")
GLB_NAME = "avatar.glb"


def player_folder() -> Path:
    """Where the player's page and script ship (the ``resources`` folder of a checkout or a wheel)."""
    return project_folder("resources") / "web_player"


def _is_player_folder(folder: Path) -> bool:
    return {p.name for p in folder.iterdir()} <= {*PLAYER_FILES, GLB_NAME}


def export_web(avatar: Avatar, folder: str | os.PathLike, motions: dict[str, Motion], *, overwrite: bool = False,
               progress: Callable[[float, str], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> tuple[Path, GltfFigures]:
    """Write the player folder (complete or not at all); returns it and the GLB's figures. An existing
    folder is replaced only with ``overwrite`` and only if it holds nothing but a player's files."""
    folder = check_output_path(folder, overwrite=overwrite, folder=True)
    if folder.exists() and not _is_player_folder(folder):
        raise ExportError(f"{folder} holds files other than a web player's: choose a new or empty folder")
    source = player_folder()
    missing = [name for name in PLAYER_FILES if not (source / name).is_file()]
    if missing:
        raise ExportError(f"the web player's {', '.join(missing)} is missing from {source}: reinstall the program")
    with atomic_folder(folder) as tmp:
        for name in PLAYER_FILES:
            shutil.copyfile(source / name, tmp / name)
        _, figures = export_gltf(avatar, tmp / GLB_NAME, motions, progress=progress, cancelled=cancelled)
    return folder, figures
