"""Template subdivision: PERSONA puts one Gaussian on each vertex of the twice-subdivided template.

Midpoint subdivision splits every triangle into four; each new vertex sits halfway along an edge. The
whole operation is linear, so it is returned as a sparse [V_level, V_0] matrix that carries any
per-vertex quantity (positions, skinning weights, shape and expression directions, colours) from the
base mesh to the subdivided one. Also the mesh helpers the Gaussians on it use: edge lengths, vertex
neighbourhoods, the uniform Laplacian regulariser.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

MAX_LEVEL = 2


def subdivide_once(faces: np.ndarray, num_vertices: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """[F, 3] faces over V vertices -> ([4F, 3] faces, [V + E, V] interpolation matrix)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # [3F, 2]
    edges.sort(axis=1)
    unique, edge_of = np.unique(edges, axis=0, return_inverse=True)
    edge_of = edge_of.reshape(3, -1).T + num_vertices  # [F, 3] new vertex on edges 01, 12, 20
    a, b, c = faces.T
    ab, bc, ca = edge_of.T
    new_faces = np.concatenate([
        np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1),
        np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)])
    n_edges = len(unique)
    rows = np.concatenate([np.arange(num_vertices), np.repeat(np.arange(n_edges) + num_vertices, 2)])
    cols = np.concatenate([np.arange(num_vertices), unique.reshape(-1)])
    vals = np.concatenate([np.ones(num_vertices), np.full(2 * n_edges, 0.5)])
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(num_vertices + n_edges, num_vertices))
    return new_faces, matrix


def subdivide(faces: np.ndarray, num_vertices: int, level: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """Subdivide ``level`` times (0, 1 or 2) -> (faces, [V_level, V_0] interpolation matrix)."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"template level must be 0..{MAX_LEVEL}, got {level}")
    matrix = sp.identity(num_vertices, format="csr")
    faces = np.asarray(faces, dtype=np.int64)
    for _ in range(level):
        faces, step = subdivide_once(faces, matrix.shape[0])
        matrix = (step @ matrix).tocsr()
    return faces, matrix


def refine_values(values: np.ndarray, faces: np.ndarray, levels: int) -> np.ndarray:
    """[V_L, ...] per-vertex values of the level-L mesh ``faces`` -> the same at level L + ``levels``: each
    new vertex the mean of its edge's ends, in :func:`subdivide`'s vertex order."""
    _, matrix = subdivide(faces, len(values), levels)
    refined = matrix @ values.reshape(len(values), -1)
    return refined.reshape((matrix.shape[0],) + values.shape[1:]).astype(values.dtype)


def longest_incident_edge(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[N, 3] vertices, [F, 3] faces -> [N] length of each vertex's longest edge (the local spacing a
    splat on that vertex must bridge to close the surface)."""
    longest = torch.zeros(vertices.shape[0], dtype=vertices.dtype)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        length = (vertices[faces[:, a]] - vertices[faces[:, b]]).norm(dim=-1)
        longest = longest.scatter_reduce(0, faces[:, a], length, "amax")
        longest = longest.scatter_reduce(0, faces[:, b], length, "amax")
    return longest


def uniform_laplacian(values: torch.Tensor, neighbours: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of each vertex's value from its neighbours' mean.

    ``values`` [N, C]; ``neighbours`` [2, E] directed edges (i <- j); ``counts`` [N] neighbours of i.
    """
    summed = torch.zeros_like(values).index_add_(0, neighbours[0], values[neighbours[1]])
    mean = summed / counts.clamp_min(1)[:, None]
    return (values - mean).pow(2).sum(-1).mean()


def mesh_neighbours(faces: torch.Tensor, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[F, 3] faces -> ([2, E] directed unique edges, [N] neighbour counts)."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.cat([e, e.flip(1)]).unique(dim=0)
    counts = torch.bincount(e[:, 0], minlength=num_vertices)
    return e.T.contiguous(), counts
