"""The desktop window (DearPyGui): layout, the per-frame loop, workspaces, the viewport's scene.

Threads: the GUI thread only draws and reacts. Stages (fit, generate, export), training, posing and
loading run on worker threads that hand results back by posting callables (``App.post``); the GUI
thread runs them between frames, within a time budget per frame. The 3D view renders on the viewer's
own render thread (see :mod:`persona_studio.app.viewport`).

Panels (left, in tabs): Photo, Pipeline, Train, Animate, Export, Settings; the viewport (right) with
its toolbar and the timeline under it; a status line at the bottom. Keys: Space play/pause,
Left/Right one frame, Home/End first/last frame, R reset the camera.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import dearpygui.dearpygui as dpg
import numpy as np

from persona_studio import __version__
from persona_studio.app import workspace as ws
from persona_studio.app.jobs import limit_torch_threads, user_message, worker_threads
from persona_studio.app.pipeline_panel import rasterizer_backend
from persona_studio.app.viewport import Viewport
from persona_studio.settings import Settings
from persona_studio.workspace.folders import bundle_folder

TITLE = f"PERSONA Studio {__version__}"
SIDE_WIDTH = 440
STATUS_HEIGHT = 26
TIMELINE_HEIGHT = 34
TARGET_FPS = 60.0
EVENT_BUDGET_S = 0.012  # GUI-thread time per frame for worker results; the rest waits a frame
BODY_LEVEL = 1  # template level of the fitted body shown before training


class App:
    """Owns the DearPyGui context; worker threads talk to it only through :meth:`post`."""

    def __init__(self, initial_path: Path | None = None, workspaces_root: Path | None = None,
                 settings: Settings | None = None):
        from persona_studio.app.animation_panel import AnimationPanel
        from persona_studio.app.export_panel import ExportPanel
        from persona_studio.app.photo_panel import PhotoPanel
        from persona_studio.app.pipeline_panel import PipelinePanel
        from persona_studio.app.settings_panel import SettingsPanel
        from persona_studio.app.training_panel import TrainingPanel

        self.initial_path = initial_path
        self.workspaces_root = Path(workspaces_root) if workspaces_root else ws.default_workspaces_root()
        self.settings, self.settings_problems = (settings, []) if settings else Settings.read()
        self.events: queue.Queue[Callable[[], None]] = queue.Queue()
        self.model = None  # the BodyModel, once loaded
        self.body_info = ""
        self.workspace: Path | None = None
        self.subject = None  # the workspace's Subject, once fitted
        self.photo_path: Path | None = None  # a photo waiting for its fit
        self.poser = None  # what the viewport shows (posers.BodyPoser / AvatarPoser)
        self.static_params = None  # the pose shown when no motion plays (the photo's, or the rest pose)
        self.drop_note = ""
        self._drop_handler = None
        self._on_confirm: Callable[[], None] | None = None  # what the open question's confirm button does
        self._scene_generation = 0
        self.scene_shown = 0  # the generation of the last scene put on screen (tests wait for it)
        self._model_waiters: list[Callable[[], None]] = []
        self.frame_durations: deque[float] = deque(maxlen=2000)  # seconds of GUI work per frame
        self.frame_intervals: deque[float] = deque(maxlen=2000)  # seconds between frame starts
        self._last_frame_start: float | None = None
        self.frame_count = 0
        self.viewport = Viewport()
        self.photo = PhotoPanel(self)
        self.pipeline = PipelinePanel(self)
        self.training = TrainingPanel(self)
        self.animation = AnimationPanel(self)
        self.export = ExportPanel(self)
        self.settings_panel = SettingsPanel(self)

    # -- threads -> GUI ---------------------------------------------------------------------------
    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the GUI thread at the next frame (callable from any thread)."""
        self.events.put(callback)

    def pump_events(self, budget_s: float = EVENT_BUDGET_S) -> None:
        """Run what workers posted, within ``budget_s`` of GUI time (the rest waits a frame)."""
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline:
            try:
                callback = self.events.get_nowait()
            except queue.Empty:
                return
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - a bug in one handler must not kill the window
                self.show_error("Something went wrong", f"{type(exc).__name__}: {exc}")

    def run_in_thread(self, name: str, work: Callable[[], object], on_done: Callable[[object], None],
                      on_error: Callable[[str], None] | None = None) -> threading.Thread:
        """Run ``work()`` on a worker thread; ``on_done(result)`` / ``on_error(message)`` on the GUI thread.

        These are the short jobs the user waits on (the body model, a workspace, a motion, the 3D view),
        so they keep the normal scheduling policy: under SCHED_IDLE, beside the GUI loop's software
        OpenGL, opening a workspace took 9 s instead of 6 until its avatar showed. The long stages
        (fit, generate, train, export, motion caching) run under ``as_background``."""
        def run() -> None:
            """Run the work beside the GUI and post its result or failure to the GUI thread."""
            limit_torch_threads(worker_threads())
            try:
                result = work()
            except Exception as exc:  # noqa: BLE001 - shown, never raised into the GUI
                message = user_message(exc)
                self.post(lambda: (on_error or (lambda m: self.show_error(name, m)))(message))
                return
            self.post(lambda: on_done(result))

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def compute_device(self):
        """The torch device the Settings ask for, where the 3D view's and the timeline's posing and the
        exports run; the CPU, said in the status bar, when that device is not here."""
        from persona_studio.device import DeviceError, resolve_device

        try:
            return resolve_device(self.settings.device)
        except DeviceError as exc:
            message = f"posing on the CPU: {exc} (Settings > device)"
            self.post(lambda: self.status(message))
            return resolve_device("cpu")

    # -- messages ---------------------------------------------------------------------------------
    def status(self, text: str) -> None:
        """Show ``text`` in the status bar."""
        dpg.set_value("status", text)

    def show_error(self, title: str, message: str) -> None:
        """A modal with the message (what is wrong, what to do) and the same line in the status bar."""
        self.status(f"{title}: {message}")
        dpg.set_value("error_title", title)
        dpg.set_value("error_text", message)
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        dpg.configure_item("error_modal", show=True, pos=(max(width // 2 - 260, 0), max(height // 2 - 90, 0)))

    def ask(self, title: str, message: str, confirm: str, on_confirm: Callable[[], None]) -> None:
        """A modal with the question, a ``confirm`` button that runs ``on_confirm`` and Cancel (nothing)."""
        dpg.set_value("ask_title", title)
        dpg.set_value("ask_text", message)
        dpg.configure_item("ask_confirm", label=confirm)
        self._on_confirm = on_confirm
        width, height = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        dpg.configure_item("ask_modal", show=True, pos=(max(width // 2 - 260, 0), max(height // 2 - 90, 0)))

    def _answer(self, confirmed: bool) -> None:
        dpg.configure_item("ask_modal", show=False)
        action, self._on_confirm = self._on_confirm, None
        if confirmed and action is not None:
            action()

    # -- building ---------------------------------------------------------------------------------
    def build(self, width: int = 1440, height: int = 900) -> None:
        """Create the context, the viewport window, the layout (side tabs, 3D view, timeline, status), dialogs
        and key handlers."""
        dpg.create_context()
        dpg.create_viewport(title=TITLE, width=width, height=height, vsync=True)
        with dpg.window(tag="main", no_title_bar=True, no_move=True, no_resize=True, no_scrollbar=True):
            self._build_menu()
            with dpg.group(horizontal=True):
                with dpg.child_window(tag="side", width=SIDE_WIDTH, height=-STATUS_HEIGHT, border=True), \
                        dpg.tab_bar(tag="tabs"):
                    for label, panel in (("Photo", self.photo), ("Pipeline", self.pipeline),
                                         ("Train", self.training), ("Animate", self.animation),
                                         ("Export", self.export), ("Settings", self.settings_panel)):
                        with dpg.tab(label=label, tag=f"tab_{label.lower()}"):
                            panel.build()
                with dpg.group(tag="right"):
                    with dpg.child_window(tag="view_area", border=True, no_scrollbar=True,
                                          height=-(STATUS_HEIGHT + TIMELINE_HEIGHT)):
                        pass
                    with dpg.child_window(tag="timeline_area", height=TIMELINE_HEIGHT, border=False,
                                          no_scrollbar=True):
                        self.animation.build_timeline()
            dpg.add_text("starting", tag="status", wrap=0)
        self.viewport.build("view_area")
        with dpg.window(tag="error_modal", modal=True, show=False, no_title_bar=True, width=520, autosize=True):
            dpg.add_text("", tag="error_title", color=(255, 140, 120))
            dpg.add_text("", tag="error_text", wrap=500)
            dpg.add_button(label="OK", width=80, callback=lambda: dpg.configure_item("error_modal", show=False))
        with dpg.window(tag="ask_modal", modal=True, show=False, no_title_bar=True, width=520, autosize=True):
            dpg.add_text("", tag="ask_title", color=(255, 200, 120))
            dpg.add_text("", tag="ask_text", wrap=500)
            with dpg.group(horizontal=True):
                dpg.add_button(label="OK", tag="ask_confirm", callback=lambda: self._answer(True))
                dpg.add_button(label="Cancel", tag="ask_cancel", width=80, callback=lambda: self._answer(False))
        self._build_dialogs()
        with dpg.handler_registry():
            for key in (dpg.mvKey_Spacebar, dpg.mvKey_Left, dpg.mvKey_Right, dpg.mvKey_Home, dpg.mvKey_End, dpg.mvKey_R):
                dpg.add_key_press_handler(key, callback=self.on_key, user_data=key, tag=f"key_{key}")
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()

    def _build_menu(self) -> None:
        with dpg.menu_bar():
            with dpg.menu(label="File"):
                dpg.add_menu_item(label="Open photo...", callback=lambda: dpg.show_item("photo_dialog"))
                dpg.add_menu_item(label="Open workspace...", callback=lambda: dpg.show_item("workspace_dialog"))
                dpg.add_menu_item(label="Open motion...", callback=lambda: dpg.show_item("motion_dialog"))
                dpg.add_menu_item(label="Import workspace bundle...", callback=lambda: dpg.show_item("bundle_dialog"))
                dpg.add_menu_item(label="Sample photo", callback=lambda: self.open_path(ws.SAMPLE_PHOTO))
                dpg.add_separator()
                dpg.add_menu_item(label="Quit", callback=lambda: dpg.stop_dearpygui())
            with dpg.menu(label="View"):
                dpg.add_menu_item(label="Reset camera (R)", callback=lambda: self.viewport.reset_camera())
                dpg.add_menu_item(label="Fit to avatar", callback=lambda: self.viewport.fit_to_scene())
            with dpg.menu(label="Help"):
                dpg.add_text("Drop a photo, a motion (.npz, .smpl, .bvh or JSON folder), a workspace or a bundle onto the window.\n"
                             "Viewport: left drag orbits, right/middle drag pans, wheel zooms.\n"
                             "Keys: Space play/pause, Left/Right one frame, Home/End, R reset camera.")

    def _build_dialogs(self) -> None:
        def chosen(kind: str):
            """A file-dialog callback: the chosen path loads as a motion for ``kind`` "motion", else goes
            to ``open_path``."""
            def callback(sender, app_data) -> None:
                """Open the chosen path, if any."""
                path = app_data.get("file_path_name") if app_data else None
                if path:
                    (self.animation.load_motion if kind == "motion" else self.open_path)(Path(path))
            return callback

        with dpg.file_dialog(tag="photo_dialog", show=False, callback=chosen("photo"), width=700, height=450,
                             modal=True):
            dpg.add_file_extension("Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff){.png,.jpg,.jpeg,.webp,.bmp,.tif,.tiff}")
            dpg.add_file_extension(".*")
        with dpg.file_dialog(tag="extra_photo_dialog", show=False, width=700, height=450, modal=True,
                             callback=lambda s, a: a and a.get("file_path_name") and self.add_photos([Path(a["file_path_name"])])):
            dpg.add_file_extension("Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff){.png,.jpg,.jpeg,.webp,.bmp,.tif,.tiff}")
            dpg.add_file_extension(".*")
        dpg.add_file_dialog(tag="workspace_dialog", show=False, directory_selector=True, callback=chosen("workspace"),
                            width=700, height=450, modal=True)
        with dpg.file_dialog(tag="motion_dialog", show=False, callback=chosen("motion"), width=700, height=450,
                             modal=True):
            dpg.add_file_extension("Motions (*.npz *.smpl *.bvh){.npz,.smpl,.bvh}")
            dpg.add_file_extension(".*")
        with dpg.file_dialog(tag="bundle_dialog", show=False, callback=chosen("bundle"), width=700, height=450,
                             modal=True):
            dpg.add_file_extension("Workspace bundles (*.zip){.zip}")
            dpg.add_file_extension(".*")
        dpg.add_file_dialog(tag="motion_folder_dialog", show=False, directory_selector=True,
                            callback=chosen("motion"), width=700, height=450, modal=True)

    # -- lifetime ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Show the window, hook file drops, start the viewer and load the body model."""
        dpg.show_viewport()
        dpg.render_dearpygui_frame()  # creates DearPyGui's GLFW window
        self._drop_handler, reason = self._install_drop()
        self.drop_note = reason or ("Drop a photo, a motion (.npz, .smpl, .bvh or JSON folder), a workspace folder or a "
                                    "workspace bundle (.zip) onto the window.")
        dpg.set_value("drop_note", self.drop_note)
        if reason:
            self.status(reason)
        error = self.viewport.start()
        if error:
            self.status(error)
        self.load_body_model()
        if self.settings_problems:
            self.show_error("Settings", " ".join(self.settings_problems) + " (Settings tab: Save writes a valid file)")
        if self.initial_path is not None:
            self.open_path(self.initial_path)

    def _install_drop(self):
        from persona_studio.app.drop import install_drop_handler

        return install_drop_handler(lambda paths: self.post(lambda: self.on_drop(paths)))

    def frame(self) -> None:
        """One GUI frame: worker results, viewport, playback, draw."""
        start = time.perf_counter()
        if self._last_frame_start is not None:
            self.frame_intervals.append(start - self._last_frame_start)
        self._last_frame_start = start
        self.pump_events()
        self.viewport.update()
        self.animation.update()
        self.training.update()
        dpg.render_dearpygui_frame()
        self.frame_durations.append(time.perf_counter() - start)
        self.frame_count += 1

    def run(self, max_frames: int | None = None) -> None:
        """The GUI loop, at most TARGET_FPS (Xvfb and some drivers do not block on vsync)."""
        frames = 0
        while dpg.is_dearpygui_running() and (max_frames is None or frames < max_frames):
            self.paced_frame()
            frames += 1

    def paced_frame(self) -> None:
        """One frame, then sleep out the rest of its 1/TARGET_FPS period: the GUI loop's step. The idle
        time goes to the workers (under software OpenGL an unpaced loop would take every core)."""
        start = time.perf_counter()
        self.frame()
        spare = 1.0 / TARGET_FPS - (time.perf_counter() - start)
        if spare > 0:
            time.sleep(spare)

    def close(self) -> None:
        """Stop every worker, the viewer's render thread, and destroy the DearPyGui context."""
        self.training.shutdown()
        self.animation.shutdown()
        self.export.shutdown()
        self.pipeline.shutdown()
        self.viewport.stop()
        dpg.destroy_context()

    # -- body model ---------------------------------------------------------------------------------
    def load_body_model(self) -> None:
        """Load the body model on a worker (official SMPL-X when set, else the open one); runs the waiters
        when ready."""
        def work():
            """Load the body model."""
            from persona_studio.body.model import load_body_model

            return load_body_model(official_path=self.settings.official_smplx_path())

        def done(model) -> None:
            """Keep the model, show its info and the rest body (no workspace yet), run the waiters."""
            self.model = model
            self.body_info = model.info.describe()
            dpg.set_value("body_info", self.body_info)
            self.status(f"body model ready ({model.info.kind}); {rasterizer_backend(self.settings.device)}")
            if self.workspace is None:
                self.show_rest_body()
            waiters, self._model_waiters = self._model_waiters, []
            for waiter in waiters:
                waiter()

        def failed(message: str) -> None:
            """Show why there is no body model."""
            self.body_info = f"unavailable: {message}"
            dpg.set_value("body_info", self.body_info)
            self.show_error("Body model", message)

        self.status("loading the body model")
        self.run_in_thread("body model", work, done, failed)

    def when_model_ready(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the GUI thread once the body model is loaded (now, if it is)."""
        if self.model is not None:
            callback()
        else:
            self._model_waiters.append(callback)

    # -- opening things -------------------------------------------------------------------------------
    def on_drop(self, paths: list[str]) -> None:
        """Open each dropped path; with "dropped photos join" ticked, dropped photos join the fitted subject's."""
        joining = dpg.get_value("drop_joins") and self.subject is not None
        joined = [Path(p) for p in paths if joining and ws.classify_drop(p) == "photo"]
        for path in paths:
            if Path(path) not in joined:
                self.open_path(Path(path))
        if joined:
            self.add_photos(joined)

    def add_photos(self, paths: list[Path]) -> None:
        """More photos of the fitted person: fit every photo again with them (one shape)."""
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            self.show_error("Add photo", f"{missing[0]} does not exist: check the path")
            return
        self.pipeline.start_fit(extra_photos=[Path(p) for p in paths])

    def open_path(self, path: Path) -> None:
        """A photo, a workspace folder or a motion (from a drop, the dialogs, the command line)."""
        path = Path(path).expanduser()
        if not path.exists():
            self.show_error("Open", f"{path} does not exist: check the path")
            return
        kind = ws.classify_drop(path)
        if kind == "photo":
            self.open_photo(path)
        elif kind == "workspace":
            self.open_workspace(path)
        elif kind == "motion":
            self.animation.load_motion(path)
        elif kind == "bundle":
            self.import_bundle(path)
        else:
            self.show_error("Open", f"{path.name} is not a photo (PNG, JPEG, WebP, BMP, TIFF), a motion "
                                    "(.npz, .smpl, .bvh or a folder of per-frame JSON), a workspace folder or a workspace "
                                    "bundle (.zip)")

    def import_bundle(self, bundle: Path) -> None:
        """Unpack a workspace bundle (made by Export) into a new workspace and open it."""
        def work():
            """Unpack the bundle into a new workspace folder; returns that folder."""
            from persona_studio.export.workspace_bundle import import_workspace_bundle

            return import_workspace_bundle(bundle, ws.new_workspace_for_bundle(bundle, self.workspaces_root))

        self.status(f"importing {bundle.name}")
        self.run_in_thread("Import", work, self.open_workspace, lambda message: self.show_error("Import", message))

    def open_photo(self, path: Path) -> None:
        """Check the photo, then open its workspace (an existing fit is reused) or start the fit."""
        def work():
            """(photo, its display image, its workspace folder)."""
            from persona_studio.app.photo_panel import rgba_float
            from persona_studio.capture.intake import load_photo

            photo = load_photo(path)
            return photo, rgba_float(photo.image), ws.workspace_for_photo(path, self.workspaces_root)

        def done(result) -> None:
            """Open the existing workspace of a photo fitted before, else show the photo and fit it if asked
            to."""
            photo, display, folder = result
            if ws.is_workspace(folder):
                self.status(f"{path.name} was fitted before: opening its workspace {folder}")
                self.open_workspace(folder)
                return
            self._set_workspace(folder, subject=None)
            self.photo_path = path
            self.photo.show_photo(display, notes=photo.notes)
            self.status(f"opened {path.name}; its workspace will be {folder}")
            if self.pipeline.fit_on_open:
                self.when_model_ready(self.pipeline.start_fit)

        self.status(f"reading {path.name}")
        self.run_in_thread("Photo", work, done, lambda message: self.show_error("Photo", message))

    def open_workspace(self, folder: Path) -> None:
        """Load the workspace's Subject on a worker, then show it and its scene."""
        def work():
            """(Subject, its overlay images)."""
            from persona_studio.app.photo_panel import subject_images
            from persona_studio.workspace.subject import Subject

            subject = Subject.load(folder)
            return subject, subject_images(subject, Path(folder))

        def done(result) -> None:
            """Make the workspace current and show its photo, fit and scene."""
            subject, images = result
            self._set_workspace(Path(folder), subject)
            self.photo.show_subject(subject, Path(folder), images)
            self.status(f"opened workspace {folder}")
            self.when_model_ready(self.refresh_scene)

        self.run_in_thread("Workspace", work, done, lambda message: self.show_error("Workspace", message))

    def _set_workspace(self, folder: Path, subject) -> None:
        if self.training.active:
            self.training.stop()
        self.workspace, self.subject, self.photo_path = folder, subject, None
        self.training.reset_history()
        if subject is not None:
            self.settings.recent_workspaces = ws.remember(self.settings.recent_workspaces, folder)
            try:
                self.settings.save()
            except OSError as exc:
                self.status(f"could not save the recent workspaces ({exc})")
            self.photo.refresh_recent()
        self.pipeline.refresh()
        self.export.refresh()

    # -- the scene ----------------------------------------------------------------------------------
    def show_rest_body(self) -> None:
        """Before any photo: the body model's mean shape in its rest pose, grey."""
        from persona_studio.app.posers import BodyPoser, rest_pose

        model = self.model
        self._build_poser(lambda: BodyPoser(model, BODY_LEVEL), rest_pose())

    def refresh_scene(self) -> None:
        """Show what the workspace has: the trained avatar, else the fitted body coloured by the photo."""
        from persona_studio.app.posers import AvatarPoser, BodyPoser
        from persona_studio.body.model import smplx_tensors

        if self.subject is None or self.model is None:
            return
        folder, subject, model = self.workspace, self.subject, self.model
        stages = ws.WorkspaceStages.of(folder)
        device = self.compute_device()

        def make():
            """An AvatarPoser of the trained avatar, else a BodyPoser of the fitted body coloured from the
            photos."""
            if stages.trained:
                from persona_studio.avatar.bundle import load_avatar

                avatar, _ = load_avatar(bundle_folder(folder), device)
                return AvatarPoser(avatar)
            from persona_studio.render.body import BodyRenderer
            from persona_studio.render.texture import color_from_views

            renderer = BodyRenderer(model, BODY_LEVEL)
            colors = color_from_views(renderer, subject.views)
            return BodyPoser(model, BODY_LEVEL, subject.smplx["betas"], colors)

        self._build_poser(make, smplx_tensors(subject.smplx))

    def _build_poser(self, make: Callable[[], object], static_params) -> None:
        self._scene_generation += 1
        generation = self._scene_generation

        def work():
            """Build the poser and pose it once: (poser, posed)."""
            poser = make()
            return poser, poser.pose(static_params)

        def done(result) -> None:
            """Show the poser unless a newer scene was asked for meanwhile."""
            if generation == self._scene_generation:
                poser, posed = result
                self.set_poser(poser, static_params, posed)
                self.scene_shown = generation

        self.run_in_thread("3D view", work, done)

    @property
    def scene_ready(self) -> bool:
        """True once the last scene asked for (the rest body, the fitted body, the avatar) is on screen."""
        return self.scene_shown == self._scene_generation

    def set_poser(self, poser, static_params, static_posed, fit: bool | None = None) -> None:
        """Show ``poser``'s Gaussians (at the current motion frame when a motion is loaded)."""
        first = self.poser is None or fit
        kind_changed = self.poser is None or self.poser.kind != poser.kind
        self.poser, self.static_params = poser, static_params
        arrays = poser.arrays()
        self.viewport.show(arrays, static_posed.means[0], static_posed.normals[0], static_posed.joints[0],
                           fit=bool(first or kind_changed))
        self.animation.poser_changed()

    def show_static(self) -> None:
        """Back to the still pose (the photo's) after a motion."""
        if self.poser is None:
            return
        poser, params = self.poser, self.static_params

        def done(posed) -> None:
            """Move to the still pose unless the poser changed meanwhile."""
            if poser is self.poser:
                self.viewport.move(posed.means[0], posed.normals[0], posed.joints[0])

        self.run_in_thread("3D view", lambda: poser.pose(params), done)

    # -- keys ---------------------------------------------------------------------------------------
    def on_key(self, sender, app_data, key) -> None:
        """Viewport and timeline keys (R, Space, Left/Right, Home/End), unless a text field has the
        keyboard."""
        if self._typing():
            return
        if key == dpg.mvKey_R:
            self.viewport.reset_camera()
        elif key == dpg.mvKey_Spacebar:
            self.animation.toggle_play()
        elif key == dpg.mvKey_Left:
            self.animation.step(-1)
        elif key == dpg.mvKey_Right:
            self.animation.step(1)
        elif key == dpg.mvKey_Home:
            self.animation.seek(0)
        elif key == dpg.mvKey_End:
            self.animation.seek(-1)

    @staticmethod
    def _typing() -> bool:
        """True while a text or number field has the keyboard (keys then belong to it)."""
        item = dpg.get_focused_item()
        if not item or not dpg.does_item_exist(item):
            return False
        kind = dpg.get_item_type(item)
        return "Input" in kind and dpg.is_item_active(item)

    # -- measurements ---------------------------------------------------------------------------------
    def frame_stats(self, since: int = 0) -> dict[str, float]:
        """Frame intervals (start to start) and GUI work per frame, in ms, from frame number ``since``
        (a past ``frame_count``) on, as far as the kept history reaches."""
        skip = max(since - (self.frame_count - len(self.frame_durations)), 0)
        intervals = np.array(list(self.frame_intervals)[skip:]) * 1e3
        work = np.array(list(self.frame_durations)[skip:]) * 1e3
        if len(intervals) == 0:
            return {}
        return {"frames": len(intervals), "interval_median_ms": float(np.median(intervals)),
                "interval_p95_ms": float(np.percentile(intervals, 95)), "interval_max_ms": float(intervals.max()),
                "work_median_ms": float(np.median(work)), "work_max_ms": float(work.max())}

    def screenshot(self, path: Path, settle_frames: int = 3) -> Path:
        """Write the window to ``path`` (PNG): a few frames to show what is pending, then the capture."""
        for _ in range(settle_frames):
            self.frame()
        path = Path(path)
        if path.exists():
            path.unlink()
        dpg.output_frame_buffer(file=str(path))
        for _ in range(10):
            self.frame()
            if path.exists() and path.stat().st_size > 0:
                break
        return path


def main(argv: list[str] | None = None) -> int:
    """Run the desktop app (optionally opening ``path``); returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(prog="persona-studio-app", description="PERSONA Studio desktop app")
    parser.add_argument("path", nargs="?", type=Path, help="a photo, a workspace folder or a motion to open")
    parser.add_argument("--workspaces", type=Path, default=None,
                        help=f"where photos get their workspaces (default: {ws.default_workspaces_root()})")
    args = parser.parse_args(argv)
    app = App(args.path, workspaces_root=args.workspaces)
    app.build()
    try:
        app.start()
        app.run()
    finally:
        app.close()
    return 0
