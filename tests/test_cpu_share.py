"""Torch threads follow the machine's load: one core fewer beside a busy process, all of them again after."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from persona_studio.cpu_share import CpuShare

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end:\n    pass\n"


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not os.path.exists("/proc/stat"), reason="needs 2+ cores and Linux")
def test_threads_make_room_for_a_busy_process_and_come_back():
    cores = os.cpu_count()
    before = torch.get_num_threads()
    torch.set_num_threads(cores)

    def beside_a_busy_process() -> int:
        competitor = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(1.5)
            return share.update()
        finally:
            competitor.kill()
            competitor.wait()

    try:
        with CpuShare(every_s=0.5) as share:
            assert share.threads == cores  # a quiet machine: every core
            assert beside_a_busy_process() == cores - 1 == torch.get_num_threads()
            time.sleep(1.0)
            assert share.update() == cores == torch.get_num_threads()  # the competitor gone: every core again
            assert beside_a_busy_process() == cores - 1
        assert torch.get_num_threads() == cores  # leaving the block puts the count back
    finally:
        torch.set_num_threads(before)
