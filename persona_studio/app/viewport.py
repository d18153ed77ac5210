"""The 3D viewport: the viewer's render thread shown through a DearPyGui raw texture.

The render thread (:class:`persona_studio.viewer.RenderThread`) owns the OpenGL context and renders
only when asked (new Gaussians, positions, camera, size or mode). Each finished frame is a fresh
float32 [H, W, 4] array that no thread writes to afterwards; the GUI thread swaps the texture over
to it with ``set_value``. So the buffers alternate (the one shown, the one being filled on the render
thread) and nothing is ever written in place. A new size gets a new texture (the old one is deleted
a frame later, once nothing draws it). DearPyGui uploads a raw texture on every GUI frame, changed or
not (about 6 ms for a 800x650 image under Mesa's software GL, a third of the frame); so a frame that
stays on screen for ``STILL_AFTER_S`` moves to a static texture, uploaded once, and the next new frame
brings a raw one back. While a motion plays, frames are rendered at half resolution
(``PLAYBACK_SCALE``; DearPyGui stretches the texture to the same on-screen size), the full resolution
returns on pause. Mouse: left drag orbits, right or middle drag pans, the wheel zooms, all over the
image only.
"""

from __future__ import annotations

import math
import time
from collections import deque

import dearpygui.dearpygui as dpg
import numpy as np

from persona_studio.body.skeleton import PARENTS
from persona_studio.viewer.orbit import OrbitCamera
from persona_studio.viewer.renderer import RenderMode, RenderOptions

MODES = {"RGB": "rgb", "normals": "normals", "depth": "depth", "parts": "parts", "alpha": "alpha"}
RESOLUTIONS = {"100%": 1.0, "75%": 0.75, "50%": 0.5}
PLAYBACK_SCALE = 0.5  # render scale while a motion plays (when "fast playback" is on): a quarter of the pixels
BACKGROUNDS = {"dark": (0.13, 0.14, 0.16, 1.0), "grey": (0.55, 0.56, 0.58, 1.0), "white": (1.0, 1.0, 1.0, 1.0)}
BACKGROUND = BACKGROUNDS["dark"]
ORBIT_RADIANS_PER_PIXEL = 0.008
ZOOM_PER_WHEEL_STEP = 0.88
TOOLBAR_HEIGHT = 30
FPS_TEXT_REFRESH_S = 0.5
STILL_AFTER_S = 0.25  # a frame shown this long without a newer one goes to a static texture


class Viewport:
    """Owns the texture, the image item, the orbit camera and the link to the render thread."""

    def __init__(self) -> None:
        self.camera = OrbitCamera(target=np.array([0.0, 0.0, 0.0]), distance=3.0)
        self.options = RenderOptions(mode=RenderMode.RGB, background=BACKGROUND, show_skeleton=False,
                                     show_mesh=False)
        self.render = None  # the RenderThread, once started
        self.error: str | None = None
        self.scale = 1.0
        self.playing = False  # a motion is playing: render at PLAYBACK_SCALE when fast_playback is on
        self.fast_playback = True
        self.display_size = (0, 0)  # the image item's size on screen
        self.render_size = (0, 0)  # the frames asked for
        self.gaussian_count = 0
        self.frames_shown = 0
        self.last_frame = None  # the viewer Frame on screen
        self._texture: int | str | None = None
        self._texture_size = (0, 0)
        self._texture_is_static = False
        self._retired: list = []  # textures to delete once no frame draws them
        self._bounds: np.ndarray | None = None  # [2, 3] box of the shown Gaussians
        self._drag: tuple[str, tuple[float, float]] | None = None
        self._wheel = 0.0
        self._frame_times: deque[float] = deque(maxlen=240)
        self._text_time = 0.0

    # -- building -----------------------------------------------------------------------------------
    def build(self, parent) -> None:
        """Toolbar + image inside ``parent`` (a child window that fills the viewport area)."""
        with dpg.group(horizontal=True, parent=parent):
            dpg.add_combo(list(MODES), default_value="RGB", width=90, tag="view_mode",
                          callback=lambda s, v: self.set_mode(v))
            dpg.add_checkbox(label="skeleton", tag="view_skeleton", callback=lambda s, v: self.set_skeleton(v))
            dpg.add_button(label="reset (R)", tag="view_reset", callback=lambda: self.reset_camera())
            dpg.add_button(label="fit", tag="view_fit", callback=lambda: self.fit_to_scene())
            dpg.add_combo(list(RESOLUTIONS), default_value="100%", width=70, tag="view_resolution",
                          callback=lambda s, v: self.set_scale(RESOLUTIONS[v]))
            dpg.add_checkbox(label="fast playback", tag="view_fast_playback", default_value=True,
                             callback=lambda s, v: self.set_fast_playback(v))
            with dpg.tooltip("view_fast_playback"):
                dpg.add_text("While a motion plays, render at half resolution (a quarter of the pixels);\n"
                             "the full resolution comes back as soon as playback pauses.")
            dpg.add_combo(list(BACKGROUNDS), default_value="dark", width=70, tag="view_background",
                          callback=lambda s, v: self._set_options(background=BACKGROUNDS[v]))
            dpg.add_text("", tag="view_fps")
        self._registry = dpg.add_texture_registry()
        self._texture = self._new_texture(np.zeros((2, 2, 4), np.float32))
        self._texture_size = (2, 2)
        dpg.add_image(self._texture, tag="view_image", parent=parent, width=2, height=2)
        dpg.add_text("", tag="view_message", parent=parent, wrap=600, show=False)
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=lambda s, delta: self._on_wheel(delta))

    def _new_texture(self, image: np.ndarray):
        h, w = image.shape[:2]
        return dpg.add_raw_texture(w, h, default_value=image, format=dpg.mvFormat_Float_rgba, parent=self._registry)

    def start(self) -> str | None:
        """Start the render thread; returns the reason when there is no OpenGL (the app runs on)."""
        from persona_studio.viewer.render_thread import RenderThread

        try:
            self.render = RenderThread().start()
        except Exception as exc:  # noqa: BLE001 - no GL: the rest of the app still works
            self.render = None
            self.error = f"3D view unavailable: {exc}"
            dpg.set_value("view_message", self.error)
            dpg.configure_item("view_message", show=True)
            return self.error
        self.render.set_options(self.options)
        return None

    def stop(self) -> None:
        """Stop the render thread, if it runs."""
        if self.render is not None:
            self.render.stop()
            self.render = None

    # -- scene ----------------------------------------------------------------------------------------
    def show(self, arrays: dict[str, np.ndarray], means: np.ndarray, normals: np.ndarray, joints: np.ndarray,
             fit: bool = False) -> None:
        """Replace the Gaussians (``arrays``: scales, colors, opacities, part_colors) at a pose."""
        self.gaussian_count = len(means)
        self._bounds = np.stack([means.min(0), means.max(0)])
        if self.render is not None:
            self.render.set_gaussians(means, arrays["scales"], arrays["colors"], arrays["opacities"],
                                      normals=normals, part_colors=arrays["part_colors"])
            self.render.set_skeleton(joints, PARENTS)
        if fit:
            self.fit_to_scene()

    def move(self, means: np.ndarray, normals: np.ndarray, joints: np.ndarray) -> None:
        """New positions for the same Gaussians (one animation frame)."""
        self._bounds = np.stack([means.min(0), means.max(0)])
        if self.render is not None:
            self.render.update_gaussians(means=means, normals=normals)
            self.render.set_skeleton(joints, PARENTS)

    # -- view controls ----------------------------------------------------------------------------
    def set_mode(self, label: str) -> None:
        """Render-mode combo callback (``label``: a key of MODES)."""
        self._set_options(mode=RenderMode(MODES[label]))

    def set_skeleton(self, visible: bool) -> None:
        """Skeleton checkbox callback."""
        self._set_options(show_skeleton=bool(visible))

    def set_scale(self, scale: float) -> None:
        """Resolution combo callback (``scale``: a value of RESOLUTIONS)."""
        self.scale = scale
        self._request_view()

    def set_playing(self, playing: bool) -> None:
        """Playback started or stopped: the render size follows at the next GUI frame."""
        self.playing = bool(playing)

    def set_fast_playback(self, enabled: bool) -> None:
        """Fast-playback checkbox: render at PLAYBACK_SCALE while a motion plays."""
        self.fast_playback = bool(enabled)

    @property
    def render_scale(self) -> float:
        """The resolution scale in effect: the user's, lowered to PLAYBACK_SCALE while playing."""
        return min(self.scale, PLAYBACK_SCALE) if self.playing and self.fast_playback else self.scale

    def reset_camera(self) -> None:
        """Back to the camera's home view."""
        self.camera.reset()
        self._request_view()

    def fit_to_scene(self) -> None:
        """Frame the shown Gaussians' bounding box (front view); nothing shown, nothing done."""
        if self._bounds is None:
            return
        w, h = self.render_size if min(self.render_size) > 0 else (4, 3)
        lo, hi = self._bounds
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        self.camera.fit(corners, w, h, margin=1.15)
        self._request_view()

    def orbit(self, dx: float, dy: float) -> None:
        """Turn the camera for a mouse drag of (``dx``, ``dy``) pixels."""
        self.camera.orbit(-dx * ORBIT_RADIANS_PER_PIXEL, dy * ORBIT_RADIANS_PER_PIXEL)
        self._request_view()

    def pan(self, dx: float, dy: float) -> None:
        """Slide the camera so the scene follows a drag of (``dx``, ``dy``) screen pixels."""
        scale = self.render_scale
        self.camera.pan(dx * scale, dy * scale, max(self.render_size[1], 1))
        self._request_view()

    def zoom(self, steps: float) -> None:
        """Zoom by ``steps`` mouse-wheel steps (positive: closer)."""
        self.camera.zoom(ZOOM_PER_WHEEL_STEP ** steps)
        self._request_view()

    def look_at(self, target: np.ndarray, yaw: float | None = None) -> None:
        """Move the orbit target (camera follow) and optionally set the yaw (camera orbit)."""
        self.camera.target = np.asarray(target, dtype=np.float64).copy()
        if yaw is not None:
            self.camera.yaw = math.remainder(yaw, 2 * math.pi)
        self._request_view()

    def _set_options(self, **changes) -> None:
        from dataclasses import replace

        self.options = replace(self.options, **changes)
        if self.render is not None:
            self.render.set_options(self.options)

    def _request_view(self) -> None:
        if self.render is not None and min(self.render_size) > 0:
            self.render.set_view(self.camera.camera(*self.render_size))

    # -- per GUI frame ------------------------------------------------------------------------------
    def update(self) -> None:
        """Follow the area's size, handle the mouse, show the newest rendered frame."""
        for texture in self._retired:
            dpg.delete_item(texture)
        self._retired.clear()
        self._follow_size()
        self._handle_mouse()
        if self.render is None:
            return
        frame = self.render.poll_frame()
        now = time.perf_counter()
        if frame is not None:
            self._show(frame)
        elif self._frame_times and now - self._frame_times[-1] >= STILL_AFTER_S and not self._texture_is_static:
            self._hold_still()
        if now - self._text_time >= FPS_TEXT_REFRESH_S and self.last_frame is not None:
            self._text_time = now
            fps = self.fps
            h, w = self.last_frame.image.shape[:2]
            message = self.render.last_error
            dpg.set_value("view_fps", f"{f'{fps:4.1f} fps' if fps else 'idle'}  {self.gaussian_count:,} Gaussians  "
                                      f"{w}x{h}  render {self.last_frame.timings.total_ms:.0f} ms"
                                      + (f"  ({message})" if message else ""))

    def _show(self, frame) -> None:
        """Put a rendered frame on screen (a new texture when its size changed)."""
        image = frame.image
        h, w = image.shape[:2]
        if (w, h) != self._texture_size or self._texture_is_static:
            self._swap_texture(self._new_texture(image), (w, h), static=False)
        else:
            dpg.set_value(self._texture, image)
        self.last_frame = frame
        self.frames_shown += 1
        self._frame_times.append(time.perf_counter())

    def _hold_still(self) -> None:
        """Move the frame on screen to a static texture: DearPyGui stops uploading it every GUI frame."""
        image = self.last_frame.image
        h, w = image.shape[:2]
        still = dpg.add_static_texture(w, h, default_value=image, parent=self._registry)
        self._swap_texture(still, (w, h), static=True)

    def _swap_texture(self, texture, size: tuple[int, int], static: bool) -> None:
        """Show ``texture`` from now on; the old one is deleted next frame, once nothing draws it."""
        dpg.configure_item("view_image", texture_tag=texture)
        self._retired.append(self._texture)
        self._texture, self._texture_size, self._texture_is_static = texture, size, static

    @property
    def fps(self) -> float:
        """Frames shown per second over the last second (0 when the view is idle)."""
        now = time.perf_counter()
        recent = [t for t in self._frame_times if now - t <= 1.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def _follow_size(self) -> None:
        parent = dpg.get_item_parent("view_image")
        width, height = dpg.get_item_rect_size(parent)
        display = (max(int(width) - 16, 16), max(int(height) - TOOLBAR_HEIGHT - 16, 16))
        scale = self.render_scale
        render = (max(int(display[0] * scale), 16), max(int(display[1] * scale), 16))
        if display != self.display_size:
            self.display_size = display
            dpg.configure_item("view_image", width=display[0], height=display[1])
        if render != self.render_size:
            first = self.render_size == (0, 0)
            self.render_size = render
            if first and self._bounds is not None:
                self.fit_to_scene()
            else:
                self._request_view()

    def _on_wheel(self, delta: float) -> None:
        if dpg.is_item_hovered("view_image"):
            self._wheel += delta

    def _handle_mouse(self) -> None:
        if self._wheel:
            self.zoom(self._wheel)
            self._wheel = 0.0
        x, y = dpg.get_mouse_pos(local=False)
        if self._drag is None:
            if dpg.is_item_hovered("view_image"):
                for button, kind in ((dpg.mvMouseButton_Left, "orbit"), (dpg.mvMouseButton_Right, "pan"),
                                     (dpg.mvMouseButton_Middle, "pan")):
                    if dpg.is_mouse_button_down(button):
                        self._drag = (kind, (x, y), button)
                        break
            return
        kind, (x0, y0), button = self._drag
        if not dpg.is_mouse_button_down(button):
            self._drag = None
            return
        dx, dy = x - x0, y - y0
        if dx or dy:
            (self.orbit if kind == "orbit" else self.pan)(dx, dy)
            self._drag = (kind, (x, y), button)
