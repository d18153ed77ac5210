"""Validated numpy inputs for the GL viewer: Gaussians and overlay geometry.

Arrays may come as numpy arrays, sequences or (detached or not) torch tensors; they are copied to
contiguous float32 so the renderer can upload them as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def to_numpy(value, name: str) -> np.ndarray:
    """Any array-like (torch tensors included, without importing torch) -> float32 numpy copy."""
    if hasattr(value, "detach"):  # a torch tensor, possibly requiring grad or on another device
        value = value.detach().cpu().numpy()
    try:
        arr = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array: {err}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _shaped(value, name: str, n: int | None, width: int) -> np.ndarray:
    arr = to_numpy(value, name)
    if arr.ndim != 2 or arr.shape[1] != width or (n is not None and arr.shape[0] != n):
        want = f"[{'N' if n is None else n}, {width}]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class GaussianArrays:
    """Gaussians as float32 arrays, all of length N."""

    means: np.ndarray  # [N, 3] world positions
    scales: np.ndarray  # [N, 3] standard deviations along the local axes (metres)
    quats: np.ndarray  # [N, 4] unit rotations, wxyz
    colors: np.ndarray  # [N, 3] RGB
    opacities: np.ndarray  # [N] in [0, 1]
    normals: np.ndarray | None = None  # [N, 3] world normals, for the normals mode
    part_colors: np.ndarray | None = None  # [N, 3] RGB per body part, for the parts mode

    @property
    def count(self) -> int:
        """N."""
        return len(self.means)


def _scales(value, n: int) -> np.ndarray:
    scales = to_numpy(value, "scales")
    if scales.shape in ((n,), (n, 1)):
        scales = np.repeat(scales.reshape(n, 1), 3, axis=1)
    elif scales.shape != (n, 3):
        raise ValueError(f"scales must have shape [{n}] (isotropic) or [{n}, 3], got {tuple(scales.shape)}")
    if (scales < 0).any():
        raise ValueError("scales must be standard deviations >= 0 (pass exp(log_scales), not log scales)")
    return np.ascontiguousarray(scales)


def _quats(value, n: int) -> np.ndarray:
    if value is None:
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (n, 1))
    quats = _shaped(value, "quats", n, 4)
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    if (norm < 1e-12).any():
        raise ValueError("quats contains zero quaternions; use (1, 0, 0, 0) for no rotation")
    return np.ascontiguousarray(quats / norm, dtype=np.float32)


def _opacities(value, n: int) -> np.ndarray:
    opacities = to_numpy(value, "opacities")
    if opacities.shape not in ((n,), (n, 1)):
        raise ValueError(f"opacities must have shape [{n}], got {tuple(opacities.shape)}")
    if (opacities < 0).any() or (opacities > 1).any():
        raise ValueError("opacities must lie in [0, 1] (pass sigmoid(logits), not logits)")
    return np.ascontiguousarray(opacities.reshape(n))


def _optional_rgb(name: str):
    return lambda value, n: None if value is None else _shaped(value, name, n, 3)


_VALIDATORS = {
    "means": lambda value, n: _shaped(value, "means", n, 3),
    "scales": _scales,
    "quats": _quats,
    "colors": lambda value, n: _shaped(value, "colors", n, 3),
    "opacities": _opacities,
    "normals": _optional_rgb("normals"),
    "part_colors": _optional_rgb("part_colors"),
}


def gaussian_arrays(means, scales, colors, opacities, *, quats=None, normals=None,
                    part_colors=None) -> GaussianArrays:
    """Validate and convert Gaussians; ``scales`` [N] (isotropic) or [N, 3] with ``quats`` [N, 4]."""
    means = _shaped(means, "means", None, 3)
    n = len(means)
    given = {"scales": scales, "quats": quats, "colors": colors, "opacities": opacities,
             "normals": normals, "part_colors": part_colors}
    return GaussianArrays(means=means, **{name: _VALIDATORS[name](value, n) for name, value in given.items()})


def replace_gaussian_arrays(current: GaussianArrays, **arrays) -> GaussianArrays:
    """``current`` with some arrays replaced; only those are validated (same count N)."""
    unknown = set(arrays) - set(_VALIDATORS)
    if unknown:
        raise ValueError(f"unknown Gaussian arrays {sorted(unknown)}; expected some of {sorted(_VALIDATORS)}")
    n = current.count
    return dataclasses.replace(current, **{name: _VALIDATORS[name](value, n) for name, value in arrays.items()})


def skeleton_segments(joints, parents) -> np.ndarray:
    """[J, 3] joint positions + [J] parent indices (-1 for roots) -> [B, 2, 3] bone end points."""
    joints = _shaped(joints, "joints", None, 3)
    parents = np.asarray(parents).reshape(-1)
    if len(parents) != len(joints):
        raise ValueError(f"parents must have one entry per joint ({len(joints)}), got {len(parents)}")
    if not np.issubdtype(parents.dtype, np.integer) or (parents < -1).any() or (parents >= len(joints)).any():
        raise ValueError("parents must be integer joint indices, -1 for a root")
    child = np.flatnonzero(parents >= 0)
    return np.ascontiguousarray(np.stack([joints[parents[child]], joints[child]], axis=1))


def mesh_edges(faces, vertex_count: int) -> np.ndarray:
    """[F, 3] triangle indices -> [E, 2] unique undirected edges (uint32)."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer array [F, 3], got {faces.dtype} {tuple(faces.shape)}")
    if len(faces) and (faces.min() < 0 or faces.max() >= vertex_count):
        raise ValueError(f"faces index vertices outside 0..{vertex_count - 1}")
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # [3F, 2]
    return np.unique(np.sort(edges, axis=1), axis=0).astype(np.uint32)
