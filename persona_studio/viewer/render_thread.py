"""The viewport's render thread: owns the GL context, renders on demand, hands frames to the GUI.

DearPyGui keeps its own OpenGL context current on the GUI thread and never restores it, so our
context must never be made current there. :class:`RenderThread` creates the hidden window and
context on its own thread and keeps them there. The GUI thread only calls the non-blocking methods
below: requests are coalesced (the latest scene, view and options win) and each finished frame
replaces the previous unread one in a one-slot :class:`FrameMailbox`, which the GUI polls once per
UI frame. Every frame is a fresh array, so the GUI may keep it while the next one is rendered.

GLFW documents window creation as main-thread only. X11 (Linux, Xvfb) accepts it on this worker
thread; macOS will not: there the fallback is a renderer on the GUI thread that restores
DearPyGui's context (its exported ``glfwMakeContextCurrent``) after every frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from persona_studio.render.camera import Camera
from persona_studio.viewer.renderer import FrameTimings, RenderOptions, SplatRenderer
from persona_studio.viewer.scene import gaussian_arrays, to_numpy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A rendered frame with what it was rendered with (camera, options) and how long it took."""
    image: np.ndarray  # [H, W, 4] float32 RGBA in [0, 1], top row first
    camera: Camera
    options: RenderOptions
    index: int  # 1, 2, ... in rendering order
    timings: FrameTimings


class FrameMailbox:
    """One slot: ``put`` replaces an unread frame, ``take`` empties the slot (None when empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self.dropped = 0  # frames replaced before anyone took them

    def put(self, frame: Frame) -> None:
        """Leave ``frame``, replacing (and counting as dropped) one not taken yet."""
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame

    def take(self) -> Frame | None:
        """The waiting frame, emptying the slot; None when empty."""
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


class RenderThread:
    """Renders the viewport on a dedicated thread that owns the OpenGL context.

    ``start()`` raises :class:`~persona_studio.viewer.gl_context.GLContextError` (or any other
    set-up error) in the caller when the context cannot be created. Use as a context manager or
    call ``stop()``.
    """

    def __init__(self) -> None:
        self.mailbox = FrameMailbox()
        self._wake = threading.Condition()
        self._pending: dict = {}  # latest request of each kind, applied in _apply
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._frame_index = 0
        self.last_error: str | None = None  # the last render failure (the thread keeps running)

    # -- lifetime ---------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> RenderThread:
        """Start the thread and wait up to ``timeout`` s for its GL context; returns self, raises the set-up
        error."""
        if self._thread is not None:
            raise RuntimeError("the render thread is already started")
        self._thread = threading.Thread(target=self._run, name="viewer-render", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the render thread did not create its OpenGL context within {timeout:.0f} s")
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end and wait up to ``timeout`` s for it."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> RenderThread:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        """The render thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- requests from the GUI thread (never block on rendering) ----------------------------------
    def set_gaussians(self, means, scales, colors, opacities, *, quats=None, normals=None,
                      part_colors=None) -> None:
        """Replace the Gaussians (validated and copied here, on the caller's thread)."""
        arrays = gaussian_arrays(means, scales, colors, opacities, quats=quats, normals=normals,
                                 part_colors=part_colors)
        self._request(gaussians=arrays, update=None)

    def update_gaussians(self, **arrays) -> None:
        """Replace some arrays of the current Gaussians (e.g. ``means`` of a new animation frame)."""
        copies = {name: to_numpy(value, name) for name, value in arrays.items()}
        with self._wake:
            merged = dict(self._pending.get("update") or {})
            merged.update(copies)
            self._pending["update"] = merged
            self._wake.notify()

    def set_view(self, camera: Camera) -> None:
        """The camera (and so the frame size) of the next frame."""
        self._request(camera=camera)

    def set_options(self, options: RenderOptions) -> None:
        """The render options (mode, background, overlays) of the next frame."""
        self._request(options=options)

    def set_skeleton(self, joints, parents=None) -> None:
        """Skeleton overlay: [J, 3] ``joints`` and their [J] ``parents`` (-1 for roots); None clears."""
        self._request(skeleton=(None if joints is None else to_numpy(joints, "joints"), parents))

    def set_mesh(self, vertices, faces=None) -> None:
        """Wireframe overlay: [V, 3] ``vertices``, [F, 3] ``faces`` (omitted: move the current mesh's
        vertices); None clears."""
        self._request(mesh=(None if vertices is None else to_numpy(vertices, "mesh vertices"),
                            None if faces is None else np.array(faces)))

    def poll_frame(self) -> Frame | None:
        """The newest finished frame not taken yet, or None; never blocks."""
        return self.mailbox.take()

    def wait_frame(self, timeout: float = 10.0) -> Frame | None:
        """Block until a frame is available (tests and scripts; the GUI polls instead)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.mailbox.take()
            if frame is not None:
                return frame
            if not self.alive:
                return None
            time.sleep(0.002)
        return None

    def _request(self, **items) -> None:
        with self._wake:
            for key, value in items.items():
                if key == "update" and value is None:
                    self._pending.pop("update", None)  # superseded by the new Gaussians
                else:
                    self._pending[key] = value
            self._wake.notify()

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            renderer = SplatRenderer()
        except BaseException as err:  # reported to start()'s caller
            self._start_error = err
            self._started.set()
            return
        self._started.set()
        camera: Camera | None = None
        options = RenderOptions()
        try:
            while True:
                with self._wake:
                    while not self._pending and not self._stopping:
                        self._wake.wait()
                    if self._stopping:
                        return
                    pending, self._pending = self._pending, {}
                camera = pending.get("camera", camera)
                options = pending.get("options", options)
                try:
                    self._apply(renderer, pending)
                    if camera is None:
                        continue  # nothing to show before the first view
                    image = renderer.render(camera, options)
                except Exception as err:  # keep the viewport alive; the GUI shows last_error
                    self.last_error = f"{type(err).__name__}: {err}"
                    log.warning("viewer render failed: %s", self.last_error)
                    continue
                self.last_error = None
                self._frame_index += 1
                self.mailbox.put(Frame(image, camera, options, self._frame_index, renderer.timings))
        finally:
            renderer.close()

    @staticmethod
    def _apply(renderer: SplatRenderer, pending: dict) -> None:
        if "gaussians" in pending:
            renderer.set_gaussian_arrays(pending["gaussians"])
        if pending.get("update"):
            renderer.update_gaussians(**pending["update"])
        if "skeleton" in pending:
            renderer.set_skeleton(*pending["skeleton"])
        if "mesh" in pending:
            renderer.set_mesh(*pending["mesh"])
