"""Motion playback: a clock that drops frames rather than slowing down, and a cache of posed frames
filled by a worker thread. No GUI code here.

Posing one frame of a level-1 avatar on a CPU takes 0.1-0.5 s (the pose MLP), far too slow for
30 fps playback, so :class:`PoseCache` poses the loaded motion ahead of time on its own thread,
frame by frame, starting at the playhead; playback then only uploads positions. A frame that is not
posed yet is skipped (the viewport keeps the last posed one) and the clock runs on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from persona_studio.app.jobs import as_background
from persona_studio.body.motion import Motion

CACHE_BUDGET_BYTES = 3 << 30  # all caches together; beyond it the oldest motions' caches are dropped


@dataclass
class PlaybackClock:
    """Which frame of a ``num_frames`` clip at ``fps`` is due at a given time (seconds, monotonic).

    The frame follows the clock: when the viewer is slow, frames are skipped, never played late.
    """

    num_frames: int
    fps: float
    speed: float = 1.0
    loop: bool = True
    playing: bool = False
    _origin_frame: float = 0.0
    _origin_time: float = 0.0

    def position(self, now: float) -> float:
        """The (fractional) frame due at ``now``."""
        if not self.playing:
            return self._origin_frame
        frame = self._origin_frame + (now - self._origin_time) * self.fps * self.speed
        if self.loop:
            return frame % self.num_frames
        return min(max(frame, 0.0), self.num_frames - 1.0)

    def frame(self, now: float) -> int:
        """The frame index due at ``now``; a clip that does not loop stops on its last (or first) frame."""
        position = self.position(now)
        if self.playing and not self.loop and position >= self.num_frames - 1:
            self.pause(now)
        return min(int(position), self.num_frames - 1)

    def play(self, now: float) -> None:
        """Start the clock at ``now``; a clip that does not loop and sits on its last frame starts over."""
        if self.playing:
            return
        if not self.loop and self._origin_frame >= self.num_frames - 1:
            self._origin_frame = 0.0  # play from the start again
        self._origin_time, self.playing = now, True

    def pause(self, now: float) -> None:
        """Stop on the whole frame due at ``now``."""
        self._origin_frame, self.playing = float(int(self.position(now))), False

    def toggle(self, now: float) -> None:
        """Pause if playing, else play."""
        self.pause(now) if self.playing else self.play(now)

    def seek(self, frame: float, now: float) -> None:
        """Jump to ``frame`` (clamped); playing continues from there."""
        self._origin_frame = float(min(max(frame, 0), self.num_frames - 1))
        self._origin_time = now

    def set_speed(self, speed: float, now: float) -> None:
        """Change the playback rate at ``now`` without a jump in position; raises ValueError unless
        positive."""
        if speed <= 0:
            raise ValueError(f"playback speed must be positive, got {speed}")
        self.seek(self.position(now), now)
        self.speed = speed


class PoseCache:
    """Posed Gaussians of every frame of one motion, filled by a worker thread.

    ``poser`` is an app poser (``pose(params) -> PosedFrames``); ``params_of(frames)`` gives the
    SMPL-X parameters of a slice of frames. The worker poses ``batch`` frames at a time, always the
    first missing ones at or after the playhead (then wrapping round), so scrubbing or playing from
    anywhere fills what is needed next. Normals are kept as float16 to halve the memory.
    """

    def __init__(self, poser, motion: Motion, params_of: Callable[[slice], dict[str, torch.Tensor]],
                 batch: int = 4, threads: int = 1, on_progress: Callable[[int, int], None] | None = None):
        self.poser = poser
        self.motion = motion
        self.num_frames = motion.num_frames
        self._params_of = params_of
        self._batch = batch
        self._threads = threads
        self._on_progress = on_progress or (lambda done, total: None)
        n = poser.count
        self.means = np.zeros((self.num_frames, n, 3), np.float32)
        self.normals = np.zeros((self.num_frames, n, 3), np.float16)
        self.joints = np.zeros((self.num_frames, 55, 3), np.float32)
        self.ready = np.zeros(self.num_frames, bool)
        self._playhead = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.error: str | None = None
        self.seconds_per_frame = 0.0
        self._thread = threading.Thread(target=self._run, name="pose-cache", daemon=True)

    @property
    def nbytes(self) -> int:
        """Bytes held by the posed means, normals and joints."""
        return self.means.nbytes + self.normals.nbytes + self.joints.nbytes

    @property
    def cached(self) -> int:
        """Number of frames posed so far."""
        return int(self.ready.sum())

    @property
    def complete(self) -> bool:
        """Every frame is posed."""
        return bool(self.ready.all())

    def start(self) -> PoseCache:
        """Start the worker thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the worker to stop after its current batch; waits up to ``timeout`` when given."""
        self._stop.set()
        self._wake.set()
        if timeout is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the worker to end."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def set_playhead(self, frame: int) -> None:
        """Pose from ``frame`` on next (the worker finishes its current batch first)."""
        self._playhead = int(frame) % self.num_frames

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(means [N, 3], normals [N, 3] float16, joints [55, 3]) of a posed frame, or None if not posed yet."""
        if not self.ready[index]:
            return None
        return self.means[index], self.normals[index], self.joints[index]

    def nearest_ready(self, index: int) -> int | None:
        """The posed frame closest before ``index`` (wrapping), for scrubbing into unposed frames."""
        ready = np.flatnonzero(self.ready)
        if len(ready) == 0:
            return None
        before = ready[ready <= index]
        return int(before[-1] if len(before) else ready[-1])

    def next_batch(self) -> np.ndarray:
        """[<= batch] indices of the next frames to pose: the first missing ones from the playhead on."""
        order = np.roll(np.arange(self.num_frames), -self._playhead)
        missing = order[~self.ready[order]]
        if len(missing) == 0:
            return missing
        first = missing[0]
        run = [first]
        for index in missing[1:self._batch]:
            if index != run[-1] + 1:
                break
            run.append(index)
        return np.array(run)

    def _run(self) -> None:
        as_background(self._threads)  # the GUI keeps its core
        started = time.perf_counter()
        try:
            while not self._stop.is_set():
                frames = self.next_batch()
                if len(frames) == 0:
                    return
                posed = self.poser.pose(self._params_of(slice(int(frames[0]), int(frames[-1]) + 1)))
                self.means[frames] = posed.means
                self.normals[frames] = posed.normals
                self.joints[frames] = posed.joints
                self.ready[frames] = True
                done = self.cached
                self.seconds_per_frame = (time.perf_counter() - started) / done
                self._on_progress(done, self.num_frames)
        except Exception as exc:  # noqa: BLE001 - shown in the animation panel; the app keeps running
            self.error = f"posing the motion failed: {type(exc).__name__}: {exc}"
            self._on_progress(self.cached, self.num_frames)


class PoseCacheStore:
    """Pose caches per (poser, motion) within CACHE_BUDGET_BYTES together; the least recently used go first."""

    def __init__(self, budget_bytes: int = CACHE_BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self._caches: dict[tuple[object, str], PoseCache] = {}  # keyed by the poser object itself

    def get(self, poser, motion_key: str) -> PoseCache | None:
        """The cache of ``poser`` and ``motion_key`` (marked most recently used), or None."""
        cache = self._caches.pop((poser, motion_key), None)
        if cache is not None:
            self._caches[(poser, motion_key)] = cache  # most recent last
        return cache

    def add(self, poser, motion_key: str, cache: PoseCache) -> None:
        """Keep ``cache``; the least recently used caches are stopped and dropped while all together exceed
        the budget (the newest always stays)."""
        self._caches[(poser, motion_key)] = cache
        while sum(c.nbytes for c in self._caches.values()) > self.budget_bytes and len(self._caches) > 1:
            oldest = next(iter(self._caches))
            self._caches.pop(oldest).stop()

    def drop_poser(self, poser) -> None:
        """Forget (and stop) every cache made with ``poser`` (e.g. the avatar changed)."""
        for key in [k for k in self._caches if k[0] is poser]:
            self._caches.pop(key).stop()

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every cache's worker and wait for it (the current batch finishes first)."""
        for cache in self._caches.values():
            cache.stop()
        for cache in self._caches.values():
            cache.join(timeout)
        self._caches.clear()
