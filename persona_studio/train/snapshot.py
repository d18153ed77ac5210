"""Snapshots: immutable copies of a training avatar's tensors, for the threads that watch it train.

Adam updates the avatar's parameters in place, one tensor after another, inside a step: a reader on
another thread copying them meanwhile (the app's live view) could get half of one step and half of
the next. So the training thread copies them itself between steps: after a step when someone asked
since the last snapshot, and when the run pauses or ends (a clone of a level-1 avatar's parameters
takes milliseconds, a step hundreds). It publishes the copy by swapping one reference under a lock:
readers only ever see whole snapshots, each of one step, and never touch the live avatar.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

import torch

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.avatar.bundle import avatar_from_state


@dataclass(frozen=True)
class AvatarSnapshot:
    """The avatar after ``step`` steps. Nothing writes its tensors: detached clones of the parameters
    made for this snapshot, and of the buffers (constant while training) made once and shared by the
    run's snapshots."""

    step: int
    state: Mapping[str, torch.Tensor]  # the avatar's state_dict, read-only
    config: AvatarConfig
    identity: Mapping[str, object]


class SnapshotPublisher:
    """One slot with the latest snapshot of a training avatar. ``publish`` runs on the training thread
    between steps; ``latest`` and ``request`` on any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: AvatarSnapshot | None = None
        self._wanted = threading.Event()
        self._base: tuple[Avatar, dict[str, torch.Tensor], AvatarConfig, Mapping] | None = None

    def request(self) -> None:
        """Ask for a snapshot at the next step boundary."""
        self._wanted.set()

    def latest(self) -> AvatarSnapshot | None:
        """The last snapshot published, None before the first."""
        with self._lock:
            return self._latest

    def publish_if_wanted(self, avatar: Avatar, step: int) -> None:
        """:meth:`publish` when a snapshot was asked for since the last one (training thread only)."""
        if self._wanted.is_set():
            self.publish(avatar, step)

    def publish(self, avatar: Avatar, step: int) -> AvatarSnapshot:
        """Snapshot ``avatar`` (training thread only: it must not be mid-step) and make it the latest."""
        self._wanted.clear()  # before copying: a request arriving meanwhile gets the next step's
        if self._base is None or self._base[0] is not avatar:
            trained = {name for name, _ in avatar.named_parameters()}
            constants = {k: v.detach().clone() for k, v in avatar.state_dict().items() if k not in trained}
            self._base = (avatar, constants, replace(avatar.config), MappingProxyType(copy.deepcopy(avatar.identity)))
        _, constants, config, identity = self._base
        state = dict(constants)
        state.update({k: p.detach().clone() for k, p in avatar.named_parameters()})
        snapshot = AvatarSnapshot(step, MappingProxyType(state), config, identity)
        with self._lock:
            self._latest = snapshot
        return snapshot


def avatar_from_snapshot(snapshot: AvatarSnapshot, into: Avatar | None = None) -> Avatar:
    """An avatar with the snapshot's tensors, the caller's to pose: ``into`` (one the caller made from an
    earlier snapshot of the same run and nobody else uses) loaded in place, else a new one that shares
    no memory with the snapshot."""
    if into is None:
        state = {k: v.clone() for k, v in snapshot.state.items()}
        return avatar_from_state(state, replace(snapshot.config), copy.deepcopy(dict(snapshot.identity)))
    into.load_state_dict(snapshot.state)
    into.invalidate_cache()  # the fast path's triplane features belong to the previous state
    return into
