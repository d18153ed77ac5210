"""Progress on a terminal: the one status line every command-line stage redraws."""

from __future__ import annotations

import sys
from typing import Callable

_line_open = False  # a status line is on screen without its newline


def progress_printer(label: str) -> Callable[[float, str], None]:
    """A ``(fraction, message)`` progress callback that redraws one status line on stderr."""
    def report(fraction: float, message: str) -> None:
        """Redraw the status line; a newline once ``fraction`` reaches 1."""
        global _line_open
        sys.stderr.write(f"\r{label}: {fraction * 100:5.1f}%  {message:<50}")
        _line_open = fraction < 1.0
        if not _line_open:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def end_progress_line() -> None:
    """End an unfinished status line, so that what is printed next (an error) starts a line of its own."""
    global _line_open
    if _line_open:
        sys.stderr.write("\n")
        _line_open = False
