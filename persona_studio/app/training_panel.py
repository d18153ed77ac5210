"""Training panel: preset, Start / Pause / Resume / Stop, live loss weights, photo share and
learning-rate scale, a live loss plot (log scale), step and ETA, the trainer's preview image, and the
live avatar in the viewport.

The trainer runs on its own thread with fewer torch threads than cores (``threads``), so the GUI and
the viewer keep a core; the GUI never waits on it. A poller thread takes the trainer's latest avatar
snapshot every few seconds (``Trainer.snapshot``: whole steps only, the live avatar never touched) and
poses it for the viewport. Only the GUI thread calls DearPyGui: the threads hand their results over
through ``app.post`` and read no widget (the refresh interval reaches the poller as a plain attribute).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import dearpygui.dearpygui as dpg
import numpy as np

from persona_studio.app.jobs import as_background, format_eta, user_message, worker_threads

WRAP = 410
LOSS_TERMS = ("total", "image", "mask", "depth", "normal", "parts", "seam", "hand_mask", "laplacian", "colour_prior")
WEIGHT_SLIDERS = (("image", "image loss", 3.0), ("mask", "mask", 5.0), ("depth", "depth", 5.0),
                  ("normal", "normals", 5.0), ("parts", "parts", 5.0), ("colour_prior", "colour prior", 10.0))
OVERRIDES = (("iterations", "iterations", 1), ("resolution", "resolution (px)", 16),
             ("template_level", "template level", 0), ("mlp_width", "MLP width", 8),
             ("triplane_resolution", "triplane resolution", 4),
             ("checkpoint_every", "checkpoint every (steps; 0: at the end)", 0))
PLOT_REFRESH_S = 0.25
VIEW_REFRESH_S = 2.0  # the live avatar's default refresh interval


def preset_names() -> list[str]:
    """The training presets shipped in ``presets/training/`` (file stems)."""
    from persona_studio.train.settings import PRESETS_DIR

    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def preset_description(name: str) -> str:
    """A preset's one-line description for the panel."""
    import json

    from persona_studio.train.settings import PRESETS_DIR

    return json.loads((PRESETS_DIR / f"{name}.json").read_text()).get("description", "")


class TrainingPanel:
    """The Train tab: preset and overrides, live loss weights and sampling ratio, start/pause/stop, the
    loss plot, previews and the live avatar in the viewport."""
    def __init__(self, app):
        self.app = app
        self.trainer = None
        self._thread: threading.Thread | None = None
        self._poller: threading.Thread | None = None
        self._poll_stop = threading.Event()
        self._view_refresh_s = VIEW_REFRESH_S  # set on the GUI thread, read by the poller
        self.history: dict[str, list[float]] = {term: [] for term in LOSS_TERMS}
        self.steps: list[float] = []
        self._plot_dirty = False
        self._plot_time = 0.0
        self._preview_texture = None
        self._preview_size = (1, 1)
        self._preview_image: np.ndarray | None = None
        self.last_event: dict | None = None
        self.finished_figures: dict | None = None

    @property
    def active(self) -> bool:
        """Whether a training run is going on."""
        return self._thread is not None and self._thread.is_alive()

    # -- layout -----------------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab's widgets (GUI thread)."""
        from persona_studio.train.settings import LossWeights, default_preset

        names = preset_names()
        wanted = default_preset(self.app.compute_device())  # standard on a GPU, preview on the CPU
        default = wanted if wanted in names else names[0]
        with dpg.group(horizontal=True):
            dpg.add_combo(names, default_value=default, tag="train_preset", width=110,
                          callback=lambda s, v: self.load_preset(v))
            dpg.add_text("", tag="train_preset_text", wrap=290)
        with dpg.collapsing_header(label="settings (taken at Start)", default_open=False):
            for key, label, minimum in OVERRIDES:
                dpg.add_input_int(label=label, tag=f"train_{key}", width=120, min_value=minimum, min_clamped=True)
            dpg.add_input_int(label="preview every (steps)", tag="train_preview_every", width=120, default_value=50,
                              min_value=0, min_clamped=True, callback=lambda s, v: self._set_preview_every(v))
            dpg.add_input_int(label="torch threads", tag="train_threads", width=120, default_value=worker_threads(),
                              min_value=1, min_clamped=True)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Start", tag="train_start_button", callback=lambda: self.start())
            dpg.add_button(label="Pause", tag="train_pause", callback=lambda: self.pause())
            dpg.add_button(label="Resume", tag="train_resume", callback=lambda: self.resume())
            dpg.add_button(label="Stop", tag="train_stop", callback=lambda: self.stop())
        dpg.add_progress_bar(tag="train_bar", width=-1, overlay="")
        dpg.add_text("not training", tag="train_state", wrap=WRAP)
        defaults = LossWeights()
        dpg.add_text("live loss weights", color=(200, 200, 255))
        for key, label, maximum in WEIGHT_SLIDERS:
            dpg.add_slider_float(label=label, tag=f"train_w_{key}", default_value=getattr(defaults, key),
                                 min_value=0.0, max_value=maximum, width=220, callback=self._weights_changed)
        dpg.add_slider_float(label="photo : generated", tag="train_photo_share", default_value=0.5, min_value=0.0,
                             max_value=1.0, width=220, callback=lambda s, v: self._live("set_photo_share", v))
        dpg.add_slider_float(label="learning-rate scale", tag="train_lr_scale", default_value=1.0, min_value=0.05,
                             max_value=4.0, width=220, callback=lambda s, v: self._live("set_lr_scale", v))
        dpg.add_slider_float(label="3D view refresh (s)", tag="train_view_refresh", default_value=VIEW_REFRESH_S,
                             min_value=0.5, max_value=30.0, width=220,
                             callback=lambda s, v: setattr(self, "_view_refresh_s", float(v)))
        with dpg.plot(label="losses", height=230, width=-1, tag="loss_plot"):
            dpg.add_plot_legend()
            dpg.add_plot_axis(dpg.mvXAxis, label="step", tag="loss_x", auto_fit=True)
            with dpg.plot_axis(dpg.mvYAxis, label="loss", tag="loss_y", scale=dpg.mvPlotScale_Log10, auto_fit=True):
                for term in LOSS_TERMS:
                    dpg.add_line_series([], [], label=term, tag=f"loss_{term}", skip_nan=True)
        dpg.add_text("preview (a training view)")
        self._registry = dpg.add_texture_registry()
        self._preview_texture = dpg.add_raw_texture(1, 1, default_value=np.zeros((1, 1, 4), np.float32),
                                                    format=dpg.mvFormat_Float_rgba, parent=self._registry)
        dpg.add_image(self._preview_texture, tag="train_preview", width=1, height=1)
        self.load_preset(default)

    def load_preset(self, name: str) -> None:
        """Show preset ``name``'s step count, resolution and loss weights in the widgets."""
        from persona_studio.train.settings import TrainSettings

        settings = TrainSettings.from_preset(name)
        for key, _, _ in OVERRIDES:
            dpg.set_value(f"train_{key}", getattr(settings, key))
        dpg.set_value("train_preview_every", settings.preview_every)
        dpg.set_value("train_preset_text", preset_description(name))
        if dpg.does_item_exist("gen_level"):  # the re-poser renders at the level of the avatar it teaches
            dpg.set_value("gen_level", str(settings.template_level))

    # -- control ----------------------------------------------------------------------------------
    def settings(self):
        """TrainSettings from the preset, the overrides and the sliders (read at Start)."""
        from persona_studio.train.settings import TrainSettings

        overrides = {key: int(dpg.get_value(f"train_{key}")) for key, _, _ in OVERRIDES}
        settings = TrainSettings.from_preset(dpg.get_value("train_preset"), **overrides)
        settings.preview_every = int(dpg.get_value("train_preview_every"))
        settings.photo_share = float(dpg.get_value("train_photo_share"))
        settings.lr_scale = float(dpg.get_value("train_lr_scale"))
        settings.weights = replace(settings.weights, **self._slider_weights())
        return settings

    def _slider_weights(self) -> dict[str, float]:
        return {key: float(dpg.get_value(f"train_w_{key}")) for key, _, _ in WEIGHT_SLIDERS}

    def start(self) -> None:
        """Start (or resume from the checkpoint) training the workspace's avatar on its own thread; where
        that would replace earlier training it cannot resume, ask first (a fresh start keeps it aside)."""
        from persona_studio.app import workspace as ws
        from persona_studio.train.trainer import earlier_training
        from persona_studio.workspace.folders import earlier_training_folder

        app = self.app
        if self.active:
            app.show_error("Train", "training is already running: pause or stop it first")
            return
        if app.workspace is None or not ws.WorkspaceStages.of(app.workspace).generated:
            app.show_error("Train", "the workspace has no training set yet: run Fit and Generate first")
            return
        if app.model is None:
            app.show_error("Train", "the body model is still loading: try again in a moment")
            return
        if app.pipeline.busy():
            app.show_error("Train", "another stage is running: wait for it or cancel it first")
            return
        try:
            settings = self.settings()
        except ValueError as exc:
            app.show_error("Train", str(exc))
            return
        try:
            conflict = earlier_training(app.workspace, settings)
        except ValueError as exc:  # a damaged checkpoint: a fresh start sets it aside too
            conflict = str(exc)
        if conflict is not None:
            app.ask("Train", f"This workspace: {conflict}. Training now would replace it. Start afresh? The "
                             f"earlier training is kept in {earlier_training_folder(app.workspace)}/.",
                    "Start afresh", lambda: self._launch(settings, restart=True))
            return
        self._launch(settings, restart=False)

    def _launch(self, settings, restart: bool) -> None:
        """Start the training thread and the live view's poller (GUI thread)."""
        from persona_studio.device import DeviceError
        from persona_studio.train.trainer import Trainer

        app = self.app
        if self.active or app.pipeline.busy():  # something started while the question was open
            app.show_error("Train", "another run or stage started meanwhile: wait for it or cancel it first")
            return
        self.reset_history()
        self.finished_figures = None
        try:
            trainer = Trainer(app.workspace, settings, on_event=lambda event: app.post(lambda: self.on_event(event)),
                              model=app.model, restart=restart, device=app.settings.device)
        except DeviceError as exc:
            app.show_error("Train", f"{exc} (Settings > device)")
            return
        self.trainer = trainer
        threads = int(dpg.get_value("train_threads"))

        def run() -> None:
            """The training thread: trains, and posts a failure back to the GUI thread instead of raising."""
            as_background(threads)  # the GUI and the viewer keep a core
            try:
                trainer.run()
            except Exception as exc:  # noqa: BLE001 - shown, never raised into the GUI
                trainer.error = exc
                message = user_message(exc)
                app.post(lambda: self.on_event({"type": "error", "message": message}))

        self._thread = threading.Thread(target=run, name="trainer", daemon=True)
        self._thread.start()
        self._start_poller(trainer)
        dpg.configure_item("train_cancel", enabled=True)
        dpg.set_value("train_state", f"preparing ({settings.preset}, {settings.iterations} steps, "
                                     f"{threads} torch thread{'s' if threads > 1 else ''})")
        app.status("training started")

    def pause(self) -> None:
        """Pause the run after the current step."""
        if self.trainer is not None and self.active:
            self.trainer.pause()

    def resume(self) -> None:
        """Continue a paused run."""
        if self.trainer is not None and self.active:
            self.trainer.resume()

    def stop(self) -> None:
        """Stop after the current step (the trainer saves its checkpoint and bundle)."""
        if self.trainer is not None and self.active:
            self.trainer.stop()
            dpg.set_value("train_state", "stopping after the current step")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the training thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def shutdown(self) -> None:
        """Stop the live view and the run, waiting for the checkpoint (the app is closing)."""
        self._poll_stop.set()
        if self.trainer is not None and self.active:
            self.trainer.stop()
            self.join(30)

    def reset_history(self) -> None:
        """Forget the plotted losses (a new run)."""
        self.history = {term: [] for term in LOSS_TERMS}
        self.steps = []
        self._plot_dirty = True

    def _weights_changed(self) -> None:
        if self.trainer is not None and self.active:
            self.trainer.set_weights(**self._slider_weights())

    def _live(self, method: str, value: float) -> None:
        if self.trainer is not None and self.active:
            try:
                getattr(self.trainer, method)(float(value))
            except ValueError as exc:
                self.app.status(str(exc))

    def _set_preview_every(self, value: int) -> None:
        if self.trainer is not None:
            self.trainer.settings.preview_every = int(value)  # the loop reads it every step

    # -- live avatar --------------------------------------------------------------------------------
    def _start_poller(self, trainer) -> None:
        """Every few seconds, pose the trainer's latest snapshot for the viewport (off the GUI thread)."""
        from persona_studio.app.posers import AvatarPoser
        from persona_studio.body.model import smplx_tensors
        from persona_studio.train.snapshot import avatar_from_snapshot

        self._poll_stop.set()
        self._poll_stop = stop = threading.Event()
        self._view_refresh_s = float(dpg.get_value("train_view_refresh"))
        app = self.app
        params = smplx_tensors(app.subject.smplx)
        training = self._thread
        device = app.compute_device()

        def poll() -> None:
            """Pose each new snapshot into the poller's own avatar; end with the training thread."""
            as_background(1)
            avatar, shown_step = None, -1
            while not stop.is_set():
                snapshot = trainer.snapshot()
                if snapshot is not None and snapshot.step != shown_step:
                    avatar = avatar_from_snapshot(snapshot, into=avatar)
                    poser = AvatarPoser(avatar, device)  # its own copy: the next snapshot loads into ``avatar``
                    posed = poser.pose(params)
                    shown_step = snapshot.step
                    app.post(lambda poser=poser, posed=posed: self._show_live(trainer, stop, poser, params, posed))
                if not training.is_alive():
                    return
                stop.wait(self._view_refresh_s)

        def run() -> None:
            """The poller; a failure ends the live view with a status line."""
            try:
                poll()
            except Exception as exc:  # noqa: BLE001 - shown, never raised into the GUI
                message = user_message(exc)
                app.post(lambda: app.status(f"live view stopped: {message}"))

        self._poller = threading.Thread(target=run, name="live-avatar", daemon=True)
        self._poller.start()

    def _show_live(self, trainer, stop: threading.Event, poser, params, posed) -> None:
        """Show a posed snapshot unless its run is no longer the panel's or has ended (its bundle shows then)."""
        if trainer is self.trainer and not stop.is_set():
            self.app.set_poser(poser, params, posed)

    # -- trainer events (GUI thread) ----------------------------------------------------------------
    def on_event(self, event: dict) -> None:
        """A trainer event (progress, evaluation, preview, resumed, info, done), shown on the GUI thread."""
        kind = event["type"]
        self.last_event = event
        if kind == "progress":
            losses = event["losses"]
            self.steps.append(float(event["step"]))
            for term in LOSS_TERMS:
                value = float(losses.get(term, 0.0))
                self.history[term].append(value if value > 0 else float("nan"))  # a log axis skips it
            self._plot_dirty = True
            fraction = event["step"] / max(event["iterations"], 1)
            dpg.set_value("train_bar", fraction)
            dpg.configure_item("train_bar", overlay=f"step {event['step']} / {event['iterations']}")
            dpg.set_value("train_progress", fraction)
            dpg.configure_item("train_progress", overlay=f"{fraction * 100:.0f}%")
            eta = format_eta(event["eta_seconds"])
            dpg.set_value("train_state", f"step {event['step']} / {event['iterations']}  loss {losses['total']:.4f}  {eta}"
                                         + ("  (paused)" if self.trainer is not None and self.trainer.paused else ""))
            dpg.set_value("train_eta", f"step {event['step']}  {eta}")
        elif kind == "preview":
            self._show_preview(event["image"])
        elif kind == "checkpoint":
            self.app.status(f"checkpoint at step {event['step']}: {event['path']}")
        elif kind == "paused":
            dpg.set_value("train_state", f"paused at step {event['step']}")
        elif kind == "resumed":
            dpg.set_value("train_state", f"running from step {event['step']}")
        elif kind == "info":
            self.app.status(event["message"])
        elif kind in ("finished", "stopped"):
            self._ended()
            figures = {k: v for k, v in event.items() if k != "type"}
            self.finished_figures = figures if kind == "finished" else None
            psnr = figures.get("photo_psnr")
            text = f"{kind} at step {figures.get('step')}" + (f": photo PSNR {psnr:.2f} dB" if psnr is not None else "")
            dpg.set_value("train_state", text)
            dpg.set_value("train_eta", text)
            self.app.status(f"training {text}")
            if kind == "finished":
                self.app.refresh_scene()  # the saved bundle
        elif kind == "error":
            self._ended()
            dpg.set_value("train_state", f"failed: {event['message']}")
            self.app.show_error("Training", event["message"])
        self.app.pipeline.refresh()

    def _ended(self) -> None:
        self._poll_stop.set()
        dpg.configure_item("train_cancel", enabled=False)

    def _show_preview(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        scale = min(400 / w, 300 / h)
        rgba = np.ones((h, w, 4), np.float32)
        rgba[..., :3] = image[..., :3] / 255.0
        if (w, h) == self._preview_size:
            dpg.set_value(self._preview_texture, rgba)
        else:
            old = self._preview_texture
            self._preview_texture = dpg.add_raw_texture(w, h, default_value=rgba, format=dpg.mvFormat_Float_rgba,
                                                        parent=self._registry)
            dpg.configure_item("train_preview", texture_tag=self._preview_texture, width=int(w * scale),
                               height=int(h * scale))
            self.app.post(lambda: dpg.delete_item(old))
        self._preview_image, self._preview_size = rgba, (w, h)  # kept alive while shown

    def update(self) -> None:
        """Per frame: redraw the loss plot at most every PLOT_REFRESH_S."""
        now = time.perf_counter()
        if not self._plot_dirty or now - self._plot_time < PLOT_REFRESH_S:
            return
        self._plot_dirty, self._plot_time = False, now
        for term in LOSS_TERMS:
            dpg.set_value(f"loss_{term}", [self.steps, self.history[term]])

