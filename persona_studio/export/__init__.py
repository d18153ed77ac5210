"""Export stage: the trained avatar as files other tools open, and workspaces that travel.

- ``ply``: standard 3DGS PLY (canonical, posed at one motion frame, or a posed sequence folder);
- ``mesh``: the posed body mesh with per-vertex colours (GLB or OBJ through trimesh);
- ``video``: a motion rendered into an MP4;
- ``workspace_bundle``: the avatar bundle and the Subject in one zip, to open on another machine;
- ``commands``: the ``persona-studio export`` sub-commands.

Every export checks its output path first (:func:`check_output_path`), writes atomically
(``persona_studio.fileio``) and leaves nothing behind when it fails or is cancelled.
"""

from __future__ import annotations

import os
from pathlib import Path

from persona_studio.fileio import sweep_stale_temp


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why and what to do."""


def check_output_path(target: str | os.PathLike, *, overwrite: bool, folder: bool = False) -> Path:
    """Refuse an output path that cannot or should not be written, with a message saying what to do.

    ``target`` is a file (or with ``folder`` a folder) to create. It must not exist unless
    ``overwrite``, and must then be of the same kind; its nearest existing ancestor must be a
    writable folder (missing folders in between are created by the writer). What a killed earlier
    export left there is swept away (:func:`persona_studio.fileio.sweep_stale_temp`).
    """
    target = Path(target)
    kind = "folder" if folder else "file"
    if target.exists():
        if target.is_dir() != folder:
            raise ExportError(f"{target} exists and is not a {kind}: choose another output path")
        if not overwrite:
            raise FileExistsError(f"{target} exists: choose another name or allow overwriting (--overwrite)")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ExportError(f"cannot write {target}: {ancestor} is a file, not a folder; choose another output path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {target}: no permission to write in {ancestor}; "
                              "choose an output folder you can write to")
    sweep_stale_temp([ancestor])
    return target
