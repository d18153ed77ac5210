"""The avatar's body as a triangle mesh: GLB or OBJ with per-vertex colours, through trimesh.

The mesh is the subdivided template's triangles with the Gaussians' means as vertices (one vertex per
Gaussian) and the Gaussians' colours as vertex colours, posed at a motion frame or in canonical
space. World frame as everywhere (metres, Y up, facing +Z), which is glTF's own convention. OBJ
vertex colours are the common ``v x y z r g b`` extension (Blender, MeshLab and trimesh read it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.motion import Motion
from persona_studio.export import ExportError, check_output_path
from persona_studio.export.ply import gaussians_at
from persona_studio.fileio import atomic_path

MESH_FORMATS = (".glb", ".obj")


def avatar_mesh(avatar: Avatar, motion: Motion | None = None, frame: int = 0) -> trimesh.Trimesh:
    """The body mesh at ``frame`` (0-based) of ``motion``, or canonical without one."""
    posed = gaussians_at(avatar, motion, frame)
    vertices = posed.means[0].detach().cpu().numpy()  # [N, 3]
    colors = posed.colors.detach().cpu().numpy()  # [N, 3] in [0, 1]
    if not (np.isfinite(vertices).all() and np.isfinite(colors).all()):
        raise ExportError("the avatar has NaN or infinite positions or colours: it is damaged; train it again "
                          "or resume from its last checkpoint")
    rgb = (colors * 255 + 0.5).astype(np.uint8)  # [N, 3]
    rgba = np.concatenate([rgb, np.full((rgb.shape[0], 1), 255, np.uint8)], axis=1)
    return trimesh.Trimesh(vertices=vertices, faces=avatar.faces.cpu().numpy(), vertex_colors=rgba, process=False)


def export_mesh(avatar: Avatar, target: str | os.PathLike, motion: Motion | None = None, frame: int = 0, *,
                overwrite: bool = False) -> Path:
    """Write the body mesh to ``target``; its extension (.glb or .obj) picks the format."""
    target = Path(target)
    if target.suffix.lower() not in MESH_FORMATS:
        raise ExportError(f"{target}: a mesh is written as {' or '.join(MESH_FORMATS)}; "
                          f"{target.suffix or 'no extension'} is not one of them")
    check_output_path(target, overwrite=overwrite)
    mesh = avatar_mesh(avatar, motion, frame)
    with atomic_path(target, suffix=target.suffix.lower()) as tmp:
        mesh.export(tmp)
    return target
