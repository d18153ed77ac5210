"""Front-to-back draw order for alpha-blended splats, recomputed only when it can change.

The order is by camera-space depth of the Gaussian centres (what gsplat sorts by). Depth is
``z = forward . mean + t_z``: the translation adds the same constant to every Gaussian, so the
order depends only on the camera's forward axis and on the means. Panning and zooming therefore
never re-sort; orbiting or moving the Gaussians does.
"""

from __future__ import annotations

import numpy as np

# Forward axes closer than this (per component) count as the same view direction.
FORWARD_TOLERANCE = 1e-7


def front_to_back_order(means: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """[N] uint32 indices of ``means`` [N, 3] sorted by increasing depth along ``forward`` [3].

    Depths are quantised to 31 bits over their range and sorted with two stable 16-bit radix
    passes (numpy uses a radix sort for uint16), about 3x faster than ``argsort`` on float keys
    (167K Gaussians: ~4 ms instead of ~11 ms on this machine).
    """
    f = np.asarray(forward, dtype=np.float32)
    depth = means[:, 0] * f[0] + means[:, 1] * f[1] + means[:, 2] * f[2]  # [N] float32
    if len(depth) == 0:
        return np.zeros(0, dtype=np.uint32)
    lo, hi = depth.min(), depth.max()
    scale = np.float32(2.0**31 / (hi - lo)) if hi > lo else np.float32(0.0)  # keys <= 2**31: no overflow
    key = ((depth - lo) * scale).astype(np.uint32)  # [N] 0 = nearest
    low_pass = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    high = (key >> 16).astype(np.uint16)
    return low_pass[np.argsort(high[low_pass], kind="stable")].astype(np.uint32)


class DepthSorter:
    """Caches the draw order; ``sort_count`` counts the sorts actually done."""

    def __init__(self) -> None:
        self.sort_count = 0
        self._order: np.ndarray | None = None
        self._forward: np.ndarray | None = None
        self._means_version: int | None = None

    def order(self, means: np.ndarray, means_version: int, forward: np.ndarray) -> tuple[np.ndarray, bool]:
        """(front-to-back order, sorted_now) for ``means`` [N, 3] seen along ``forward`` [3].

        ``means_version`` must change whenever the means change (the caller bumps it on upload).
        """
        forward = np.asarray(forward, dtype=np.float64).reshape(3)
        if (self._order is not None and self._means_version == means_version
                and self._forward is not None
                and np.abs(forward - self._forward).max() <= FORWARD_TOLERANCE):
            return self._order, False
        self._order = front_to_back_order(means, forward)
        self._forward = forward
        self._means_version = means_version
        self.sort_count += 1
        return self._order, True
