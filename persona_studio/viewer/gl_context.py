"""An offscreen OpenGL 3.3+ core context: a hidden GLFW window whose default framebuffer is unused.

GLFW is initialised once per process and terminated when the last context is destroyed. The
context is current on the thread that created it; create, use and destroy it on one thread (the
render thread in the app, see :mod:`persona_studio.viewer.render_thread`).
"""

from __future__ import annotations

import os
import threading

import glfw

MIN_GL_VERSION = (3, 3)

_glfw_lock = threading.Lock()
_glfw_users = 0
_last_glfw_error: list[str] = []


class GLContextError(RuntimeError):
    """No usable OpenGL context (no display, no driver, GL too old)."""


def _record_glfw_error(code: int, description: bytes | str) -> None:
    text = description.decode("utf-8", "replace") if isinstance(description, bytes) else str(description)
    _last_glfw_error[:] = [f"GLFW error {code:#x}: {text}"]


def _failure(what: str) -> GLContextError:
    detail = _last_glfw_error[0] if _last_glfw_error else "no detail from GLFW"
    display = os.environ.get("DISPLAY")
    return GLContextError(
        f"OpenGL {MIN_GL_VERSION[0]}.{MIN_GL_VERSION[1]}+ context could not be created ({what}; {detail}; "
        f"DISPLAY={display!r}). No display? Run under Xvfb (`xvfb-run -a <command>`, needs "
        f"`apt-get install xvfb libgl1-mesa-dri`) or set DISPLAY to a running X server; on a desktop, "
        f"update the graphics driver.")


def _acquire_glfw() -> None:
    global _glfw_users
    with _glfw_lock:
        if _glfw_users == 0:
            _last_glfw_error.clear()
            glfw.set_error_callback(_record_glfw_error)
            if not glfw.init():
                raise _failure("glfwInit failed")
        _glfw_users += 1


def _release_glfw() -> None:
    global _glfw_users
    with _glfw_lock:
        _glfw_users -= 1
        if _glfw_users == 0:
            glfw.terminate()


class HiddenGLContext:
    """Owns a hidden GLFW window and its OpenGL core-profile context (made current on creation)."""

    def __init__(self, title: str = "persona-studio offscreen") -> None:
        _acquire_glfw()
        glfw.default_window_hints()
        glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, MIN_GL_VERSION[0])
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, MIN_GL_VERSION[1])
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, glfw.TRUE)  # required on macOS
        _last_glfw_error.clear()
        window = glfw.create_window(16, 16, title, None, None)
        if not window:
            _release_glfw()
            raise _failure("glfwCreateWindow failed")
        self._window = window
        self._thread = threading.get_ident()
        glfw.make_context_current(window)

    @property
    def alive(self) -> bool:
        """The context has not been destroyed."""
        return self._window is not None

    def make_current(self) -> None:
        """Make the context current; RuntimeError once destroyed or on another thread than its creator's."""
        if self._window is None:
            raise RuntimeError("the OpenGL context was destroyed")
        if threading.get_ident() != self._thread:
            raise RuntimeError("an OpenGL context is used on the thread that created it only")
        glfw.make_context_current(self._window)

    def destroy(self) -> None:
        """Destroy the window and its context (GLFW ends with its last user); again is a no-op."""
        if self._window is None:
            return
        glfw.make_context_current(None)
        glfw.destroy_window(self._window)
        self._window = None
        _release_glfw()
