"""A virtual X display for headless runs (tests, benchmarks): the existing $DISPLAY, or an Xvfb."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator


class DisplayError(RuntimeError):
    """No display could be had; the message says what to install."""


@contextlib.contextmanager
def virtual_display() -> Iterator[str]:
    """Yield a usable display name: $DISPLAY when set, else an Xvfb started here and stopped after."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise DisplayError("no DISPLAY and no Xvfb: install it (`apt-get install -y xvfb libgl1-mesa-dri`) "
                           "or run under `xvfb-run -a`")
    number = next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise DisplayError(f"Xvfb did not start on :{number}")
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        os.environ.pop("DISPLAY", None)
        proc.terminate()
        proc.wait(timeout=10)
