"""Exact silhouettes of triangle meshes (fit figures, overlays, re-poser masks)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from persona_studio.render.camera import Camera


def mesh_silhouette(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """[V, 3] world vertices, [F, 3] faces -> [H, W] bool: the pixels the mesh covers.

    Triangles behind the camera are skipped; pixels whose centre a triangle covers are set.
    """
    uvz = camera.project(vertices)
    img = Image.new("L", (camera.width, camera.height), 0)
    draw = ImageDraw.Draw(img)
    in_front = (uvz[faces, 2] > 0).all(axis=1)
    for tri in uvz[faces[in_front], :2] - 0.5:  # PIL fills pixel (i, j) by its corner; ours is its centre
        draw.polygon([(float(u), float(v)) for u, v in tri], fill=255)
    return np.asarray(img) > 0
