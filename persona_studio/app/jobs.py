"""Stage runs on worker threads. Workers never touch the GUI: they post callables that the GUI thread
runs between frames (``post``). No GUI code here."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable

Post = Callable[[Callable[[], None]], None]
BACKGROUND_NICENESS = 10


def worker_threads() -> int:
    """Torch threads for one background worker: leave a core to the GUI and the viewer."""
    return max(1, (os.cpu_count() or 2) - 1)


def limit_torch_threads(threads: int | None) -> None:
    """At most ``threads`` torch threads for the calling thread (others keep theirs); None leaves them."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def as_background(threads: int | None) -> None:
    """Set up the calling worker thread so the GUI thread keeps the CPU it needs: at most ``threads``
    torch threads (per thread: others keep theirs) and, on Linux, the SCHED_IDLE policy (no
    privileges needed; threads the worker starts inherit it).

    Why SCHED_IDLE and not only a nice value: a niced worker still holds a core for its time slice
    when the GUI thread wakes, so under software OpenGL a frame waits ~30 ms now and then. A task of
    the normal policy always preempts a SCHED_IDLE one at wake-up, so the GUI never waits on a
    worker; the worker still gets every cycle the GUI leaves (the GUI loop sleeps out its frame
    period). Where the policy is refused, a nice value is the fallback."""
    limit_torch_threads(threads)
    if sys.platform.startswith("linux"):
        thread_id = threading.get_native_id()
        try:
            os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            try:
                os.setpriority(os.PRIO_PROCESS, thread_id, BACKGROUND_NICENESS)
            except OSError:
                pass


def user_message(exc: BaseException) -> str:
    """The text to show for a failure: the project's own errors and refusals (bad input, missing or
    existing files) already say what to do; anything else is shown with its type."""
    if isinstance(exc, (ValueError, OSError)) or type(exc).__module__.startswith("persona_studio"):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def eta_seconds(fraction: float, elapsed: float) -> float | None:
    """Remaining seconds at a constant rate, or None before there is enough progress to tell."""
    if fraction < 0.02 or elapsed <= 0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def format_eta(seconds: float | None) -> str:
    """Remaining ``seconds`` as ``ETA 42 s``, ``ETA 3:05`` (from a minute on), or ``ETA --`` when unknown."""
    if seconds is None:
        return "ETA --"
    seconds = round(seconds)
    return f"ETA {seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"ETA {seconds} s"


class StageJob:
    """Runs ``work(progress, cancelled)`` on a thread; reports to the GUI thread through ``post``.

    ``on_progress(fraction, message, eta)`` / ``on_done(result)`` / ``on_error(message, cancelled)``
    run on the GUI thread. Progress reports are coalesced: at most one is waiting at any time, so a
    fast stage cannot flood the GUI.
    """

    def __init__(self, name: str, work: Callable[[Callable[[float, str], None], Callable[[], bool]], Any],
                 post: Post, *, on_progress: Callable[[float, str, float | None], None],
                 on_done: Callable[[Any], None], on_error: Callable[[str, bool], None],
                 threads: int | None = None):
        self.name = name
        self._work = work
        self._post = post
        self._on_progress, self._on_done, self._on_error = on_progress, on_done, on_error
        self._threads = threads
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[float, str, float | None] | None = None
        self._started = 0.0
        self._thread = threading.Thread(target=self._run, name=f"stage-{name}", daemon=True)

    @property
    def running(self) -> bool:
        """The worker thread is still alive."""
        return self._thread.is_alive()

    def start(self) -> StageJob:
        """Start the worker thread (the ETA clock starts now); returns self."""
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop: its ``cancelled()`` returns True from now on."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the worker thread to end."""
        self._thread.join(timeout)

    def _progress(self, fraction: float, message: str) -> None:
        report = (float(fraction), str(message), eta_seconds(fraction, time.perf_counter() - self._started))
        with self._lock:
            waiting = self._latest is not None
            self._latest = report
        if not waiting:
            self._post(self._deliver_progress)

    def _deliver_progress(self) -> None:
        with self._lock:
            report, self._latest = self._latest, None
        if report is not None:
            self._on_progress(*report)

    def _run(self) -> None:
        as_background(self._threads)
        try:
            result = self._work(self._progress, self._cancel.is_set)
        except InterruptedError:
            self._post(lambda: self._on_error(f"{self.name} cancelled", True))
        except Exception as exc:  # noqa: BLE001 - every failure is shown, none kills the window
            message = user_message(exc)
            self._post(lambda: self._on_error(message, False))
        else:
            self._post(lambda: self._on_done(result))
