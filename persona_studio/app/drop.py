"""Files dropped onto the window, through the GLFW that DearPyGui bundles.

DearPyGui has no file-drop API, but its extension module exports the GLFW functions it is linked
with. On Linux (X11, XDND) ``glfwSetDropCallback`` on DearPyGui's own window works through ctypes.
The callback runs inside ``render_dearpygui_frame`` on the GUI thread; it only queues the paths.
Where the symbols are missing (other platforms, other builds) :func:`install_drop_handler` returns
the reason, which the app shows once.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Callable

log = logging.getLogger(__name__)
DropCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p))


class DropHandler:
    """Keeps the ctypes callback alive (GLFW holds only a raw pointer to it)."""

    def __init__(self, on_paths: Callable[[list[str]], None]):
        self._on_paths = on_paths
        self.callback = DropCallback(self._dropped)

    def _dropped(self, window, count: int, paths) -> None:
        try:
            self._on_paths([paths[i].decode("utf-8", "surrogateescape") for i in range(count)])
        except Exception:  # an exception must not cross back into C
            log.exception("a file drop could not be handled")


def install_drop_handler(on_paths: Callable[[list[str]], None]) -> tuple[DropHandler | None, str | None]:
    """Register ``on_paths`` for drops on DearPyGui's window (call after ``show_viewport``, on the GUI
    thread, where DearPyGui's GL context is current). Returns (handler, None) or (None, reason)."""
    if not sys.platform.startswith("linux"):
        return None, f"dropping files is not wired up on {sys.platform}: use File > Open"
    try:
        import dearpygui._dearpygui as core

        library = ctypes.CDLL(core.__file__)
        get_context = library.glfwGetCurrentContext
        set_drop = library.glfwSetDropCallback
    except (OSError, AttributeError, ImportError) as exc:
        return None, f"dropping files is unavailable (DearPyGui's GLFW is not reachable: {exc}); use File > Open"
    get_context.restype = ctypes.c_void_p
    get_context.argtypes = []
    set_drop.restype = ctypes.c_void_p
    set_drop.argtypes = [ctypes.c_void_p, DropCallback]
    window = get_context()
    if not window:
        return None, "dropping files is unavailable (no DearPyGui window is current); use File > Open"
    handler = DropHandler(on_paths)
    set_drop(window, handler.callback)
    return handler, None
