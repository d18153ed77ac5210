"""Progress on a terminal: the one status line every command-line stage redraws."""

from __future__ import annotations

import sys
from typing import Callable


def progress_printer(label: str) -> Callable[[float, str], None]:
    """A ``(fraction, message)`` progress callback that redraws one status line on stderr."""
    def report(fraction: float, message: str) -> None:
        """Redraw the status line; a newline once ``fraction`` reaches 1."""
        sys.stderr.write(f"\r{label}: {fraction * 100:5.1f}%  {message:<50}")
        sys.stderr.flush()
        if fraction >= 1.0:
            sys.stderr.write("\n")
    return report
