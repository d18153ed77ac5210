"""Torch threads that follow how busy the machine is, for the long CPU loops (fit, surface fit, training).

torch's OpenMP threads spin while they wait for each other. On a quiet machine that is the fastest
setting; beside another CPU-bound process it collapses: one of our threads is descheduled and the other
spins out its time slice waiting for it (the re-poser's surface fit ran 17x slower beside one busy
process on 2 cores, where a fair share is 2x). Sleeping instead of spinning (``OMP_WAIT_POLICY=PASSIVE``)
survives the competition but costs 20-35 % on a quiet machine. So the loops keep the spinning threads and
change their number instead: about once a second :meth:`CpuShare.update` reads how many cores other
processes used (Linux ``/proc/stat`` minus this process's own CPU time) and runs on the cores left (at
least one, at most the number the loop started with).

Thread counts in torch belong to the calling thread, so a loop opens its own ``with CpuShare() as share``
and calls ``share.update()`` from the thread that does the work; leaving the block puts the count back.
Elsewhere than Linux it changes nothing.
"""

from __future__ import annotations

import os
import time

import torch

PROC_STAT = "/proc/stat"
CHECK_EVERY_S = 1.0
FIRST_LOOK_S = 0.1  # 20 clock ticks of 2 cores: enough to tell a busy core from an idle one


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (every field of /proc/stat's ``cpu`` line but
    idle and iowait), or None where there is no /proc/stat."""
    try:
        with open(PROC_STAT, encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """Keeps the calling thread's torch thread count at the cores other processes leave free."""

    def __init__(self, threads: int | None = None, every_s: float = CHECK_EVERY_S):
        self.start = self.threads = torch.get_num_threads()
        self.most = threads or self.start
        self.every_s = every_s
        self.cores = os.cpu_count() or 1
        self._last = (time.monotonic(), _busy_cpu_seconds(), time.process_time())
        if self.most > 1 and self._last[1] is not None:  # a first look before the loop's first step
            time.sleep(FIRST_LOOK_S)
            self._choose()

    def _choose(self) -> None:
        """Run on the cores the others left free since the last look (at least one, at most ``most``)."""
        others = self.others_cores()
        if others is None:
            return
        wanted = max(1, min(self.most, self.cores - int(others + 0.5)))
        if wanted != self.threads:
            torch.set_num_threads(wanted)
            self.threads = wanted

    def __enter__(self) -> "CpuShare":
        return self

    def __exit__(self, *exc) -> None:
        if self.threads != self.start:
            torch.set_num_threads(self.start)
            self.threads = self.start

    def others_cores(self) -> float | None:
        """Cores other processes used since the last look (None where that cannot be read)."""
        now, busy, own = time.monotonic(), _busy_cpu_seconds(), time.process_time()
        then, busy_then, own_then = self._last
        self._last = (now, busy, own)
        if busy is None or busy_then is None or now <= then:
            return None
        return max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)

    def update(self) -> int:
        """Look at the machine if a second has passed and set the thread count; returns it."""
        if self.most > 1 and time.monotonic() - self._last[0] >= self.every_s:
            self._choose()
        return self.threads
