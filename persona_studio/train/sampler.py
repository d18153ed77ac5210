"""Balanced sampling (PERSONA): the photo is drawn as often as all generated frames together.

Each draw picks a photo with probability ``photo_share`` (0.5 = the paper's 1:1), else the next
generated frame of a shuffled epoch. With more than one photo of the subject, the photos share that
probability: the next of a shuffled epoch of the photos. The share can change while training runs.
"""

from __future__ import annotations

import numpy as np


class BalancedSampler:
    """PERSONA's balanced sampling: a photo with probability ``photo_share``, else the next generated
    frame of a shuffled epoch (each seen once per epoch); its state resumes with a checkpoint."""
    def __init__(self, generated: list[int], photo_share: float = 0.5, seed: int = 0, photos: list[int] = (0,)):
        if not 0.0 <= photo_share <= 1.0:
            raise ValueError(f"photo share must be within 0..1, got {photo_share}")
        self.generated = list(generated)
        self.photos = list(photos)
        self.photo_share = photo_share
        self.rng = np.random.default_rng(seed)
        self._epoch: list[int] = []
        self._photo_epoch: list[int] = []

    def next(self) -> int:
        """The index of a photo (0 with one photo) or of a generated frame."""
        if not self.generated or self.rng.random() < self.photo_share:
            if len(self.photos) == 1:
                return self.photos[0]
            if not self._photo_epoch:
                self._photo_epoch = list(self.rng.permutation(self.photos))
            return int(self._photo_epoch.pop())
        if not self._epoch:
            self._epoch = list(self.rng.permutation(self.generated))
        return int(self._epoch.pop())

    def state(self) -> dict:
        """The random state and the rest of the epochs, for the checkpoint."""
        return {"rng": self.rng.bit_generator.state, "epoch": [int(i) for i in self._epoch],
                "photo_epoch": [int(i) for i in self._photo_epoch]}

    def restore(self, state: dict) -> None:
        """Continue from a state taken by :meth:`state`."""
        self.rng.bit_generator.state = state["rng"]
        self._epoch = list(state["epoch"])
        self._photo_epoch = list(state.get("photo_epoch", []))
