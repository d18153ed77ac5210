"""Pipeline panel: Fit -> Generate -> Train, each a button with a progress bar, ETA and cancel, and
the backend each stage uses (with the reason a better one is unavailable)."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from persona_studio.app import workspace as ws
from persona_studio.app.jobs import StageJob, format_eta, worker_threads

WRAP = 410
QUICK_FIT_ITERATIONS = (10, 30, 15)  # a rough fit in a few seconds (the default is (40, 120, 60))
GENERATOR_CHOICES = ("auto", "reposer", "mimicmotion", "import")


def generator_backend(choice: str, settings) -> tuple[str, str]:
    """(generator to run, one line saying which and why) for the generator combo's ``choice``."""
    from persona_studio.generate.mimicmotion import check_mimicmotion

    if choice == "reposer":
        return "reposer", "generator: built-in re-poser (the photo on the fitted body, re-posed; CPU)"
    if choice == "import":
        return "import", "generator: frames made elsewhere from the kit (set the folder or video below)"
    ckpt = Path(settings.mimicmotion_path) if settings.mimicmotion_path else None
    svd = Path(settings.svd_path) if settings.svd_path else None
    problem = check_mimicmotion(ckpt, svd, settings.device)
    if problem is None:
        return "mimicmotion", f"generator: MimicMotion ({ckpt})"
    if choice == "mimicmotion":
        return "mimicmotion", f"{problem} (it will refuse to run: choose auto or reposer)"
    return "reposer", f"{problem}; using the built-in re-poser"


def geometry_backend(generator: str, settings) -> str:
    """One line saying where the ``generator``'s depth/normal targets come from (Sapiens, or why not)."""
    from persona_studio.generate.sapiens import check_sapiens

    if generator == "reposer":
        return "geometry targets: exact, from the re-posed body"
    problem = check_sapiens(Path(settings.sapiens_path) if settings.sapiens_path else None)
    if problem is None:
        return f"geometry targets: Sapiens ({settings.sapiens_path})"
    return f"{problem}; geometry targets come from the posed body"


def rasterizer_backend(device: str) -> str:
    """One line saying where training and playback run for the Settings' ``device`` and which rasterizer
    that device gets (what ``rasterize(backend="auto")`` picks for tensors there), and why."""
    from persona_studio.device import DeviceError, resolve_device
    from persona_studio.render.rasterize import auto_backend

    try:
        resolved = resolve_device(device)
    except DeviceError as exc:
        return f"device: {exc} (Settings > device)"
    _, reason = auto_backend(resolved)
    return f"on {resolved}; rasterizer: {reason}"


class PipelinePanel:
    """Pipeline tab: Fit, Generate and Train rows (progress, ETA, cancel, backend), and Run all."""
    def __init__(self, app):
        self.app = app
        self.jobs: dict[str, StageJob] = {}
        self.run_all = False

    @property
    def fit_on_open(self) -> bool:
        """The "fit as soon as a photo opens" checkbox is ticked."""
        return bool(dpg.get_value("fit_on_open"))

    # -- layout -----------------------------------------------------------------------------------
    def _stage_row(self, stage: str, label: str, start, cancel_label: str = "Cancel") -> None:
        with dpg.group(horizontal=True):
            dpg.add_button(label=label, tag=f"{stage}_start", width=80, callback=start)
            dpg.add_progress_bar(tag=f"{stage}_progress", width=200, overlay="")
            dpg.add_button(label=cancel_label, tag=f"{stage}_cancel", callback=lambda: self.cancel(stage),
                           enabled=False)
        dpg.add_text("", tag=f"{stage}_eta", color=(170, 170, 180))
        dpg.add_text("", tag=f"{stage}_backend", wrap=WRAP, color=(150, 200, 150))

    def build(self) -> None:
        """Pipeline tab: a row per stage with its settings (fit quality; generator, frames, size, level (set
        by the Train tab's preset, the level of the avatar the frames teach), motions) and Run all."""
        from persona_studio.body.motion import preset_motion_paths

        dpg.add_text("1. Fit the body model to the photo", color=(200, 200, 255))
        self._stage_row("fit", "Fit", lambda: self.start_fit())
        with dpg.group(horizontal=True):
            dpg.add_combo(("full", "quick"), default_value="full", tag="fit_quality", width=70, label="fit")
            dpg.add_input_float(label="field of view, deg (0: EXIF or 55)", tag="fit_fov",
                                default_value=0.0, min_value=0.0, max_value=150.0, min_clamped=True,
                                max_clamped=True, step=0, width=60, format="%.1f")
            dpg.add_checkbox(label="fit as soon as a photo opens", tag="fit_on_open", default_value=True)
        dpg.add_separator()
        dpg.add_text("2. Generate the training set", color=(200, 200, 255))
        self._stage_row("generate", "Generate", self.start_generate)
        with dpg.group(horizontal=True):
            dpg.add_combo(GENERATOR_CHOICES, default_value="auto", tag="gen_generator", width=110,
                          callback=lambda: self.refresh())
            dpg.add_input_int(label="frames", tag="gen_frames", default_value=120, min_value=1, min_clamped=True,
                              width=90)
        with dpg.group(horizontal=True):
            dpg.add_input_intx(label="size (W, H)", tag="gen_size", size=2, default_value=(576, 1024, 0, 0), width=140)
            dpg.add_combo(("0", "1", "2"), label="level", default_value="1", tag="gen_level", width=45)
        dpg.add_input_text(label="frames to import", tag="gen_import", width=260, show=False)
        dpg.add_text("motions:")
        with dpg.table(header_row=False, tag="gen_motions"):
            dpg.add_table_column()
            dpg.add_table_column()
            names = list(preset_motion_paths())
            for row in range(0, len(names), 2):
                with dpg.table_row():
                    for name in names[row:row + 2]:
                        dpg.add_checkbox(label=name, tag=f"gen_motion_{name}", default_value=True)
        self.motion_names = names
        dpg.add_separator()
        dpg.add_text("3. Train the avatar (settings in the Train tab)", color=(200, 200, 255))
        self._stage_row("train", "Train", lambda: self.app.training.start(), cancel_label="Stop")
        dpg.add_separator()
        dpg.add_button(label="Run all stages that are not done", tag="run_all", callback=self.start_all)
        dpg.add_text("", tag="stages_done", wrap=WRAP)
        self.refresh()

    # -- state --------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Backend lines and which stages the workspace has done."""
        settings = self.app.settings
        choice = dpg.get_value("gen_generator")
        generator, line = generator_backend(choice, settings)
        dpg.set_value("generate_backend", f"{line}\n{geometry_backend(generator, settings)}")
        dpg.configure_item("gen_import", show=choice == "import")
        model = self.app.model
        body = f"{model.info.kind} body model" if model is not None else "body model loading"
        dpg.set_value("fit_backend", f"detection: MediaPipe Holistic + selfie segmentation; fit: SMPL-X ({body})")
        dpg.set_value("train_backend", rasterizer_backend(settings.device))
        folder = self.app.workspace
        if folder is None:
            dpg.set_value("stages_done", "no workspace yet: open a photo")
            return
        stages = ws.WorkspaceStages.of(folder)
        marks = [("fitted", stages.fitted), ("training set", stages.generated),
                 ("checkpoint", stages.checkpoint), ("trained avatar", stages.trained)]
        dpg.set_value("stages_done", "  ".join(f"[{'x' if done else ' '}] {name}" for name, done in marks))

    def busy(self) -> bool:
        """A fit or generate job is running."""
        return any(job.running for job in self.jobs.values())

    def cancel(self, stage: str) -> None:
        """Cancel ``stage``'s job (train: stop the trainer) and end a Run all."""
        if stage == "train":
            self.app.training.stop()
            return
        job = self.jobs.get(stage)
        if job is not None:
            job.cancel()
            self.run_all = False

    def shutdown(self) -> None:
        """Cancel every stage job."""
        for job in self.jobs.values():
            job.cancel()

    def _run(self, stage: str, work, on_done) -> None:
        if self.busy():
            self.app.show_error(stage.capitalize(), "another stage is running: wait for it or cancel it first")
            return

        def progress(fraction: float, message: str, eta) -> None:
            """Show the stage's fraction done, message and ETA."""
            dpg.set_value(f"{stage}_progress", fraction)
            dpg.configure_item(f"{stage}_progress", overlay=f"{fraction * 100:.0f}%")
            dpg.set_value(f"{stage}_eta", f"{message}  {format_eta(eta)}")

        def done(result) -> None:
            """Finish the stage's row, then hand the result on."""
            self._finished(stage)
            progress(1.0, "done", 0.0)
            on_done(result)
            self.refresh()

        def error(message: str, cancelled: bool) -> None:
            """Show the failure (a cancel only in the status line) and end a Run all."""
            self._finished(stage)
            self.run_all = False
            dpg.set_value(f"{stage}_eta", message)
            if cancelled:
                self.app.status(message)
            else:
                self.app.show_error(stage.capitalize(), message)
            self.refresh()

        dpg.configure_item(f"{stage}_cancel", enabled=True)
        dpg.set_value(f"{stage}_progress", 0.0)
        self.jobs[stage] = StageJob(stage, work, self.app.post, on_progress=progress, on_done=done,
                                    on_error=error, threads=worker_threads()).start()

    def _finished(self, stage: str) -> None:
        dpg.configure_item(f"{stage}_cancel", enabled=False)

    # -- stages -------------------------------------------------------------------------------------
    def start_fit(self, extra_photos: list[Path] = ()) -> None:
        """Fit the body model to the workspace's photos on a worker (quick or full); Run all continues with
        Generate. ``extra_photos`` join the subject's photos (all fitted again, one shape); a photo of
        someone else is refused and the subject stays as it was."""
        from persona_studio.capture.fit import FitSettings
        from persona_studio.capture.pipeline import fit_photo

        app = self.app
        if app.model is None:
            app.show_error("Fit", "the body model is still loading: try again in a moment")
            return
        # A newly opened photo is fitted alone; a fitted subject is fitted again with all its photos.
        photos = [app.photo_path] if app.photo_path is not None and not extra_photos else self._original_photos()
        if extra_photos:
            if not photos:
                app.show_error("Add photo", "fit a first photo of the person before adding more")
                return
            photos = [*photos, *extra_photos]
        if not photos or app.workspace is None:
            app.show_error("Fit", "open a photo first (File > Open photo, drop one, or Sample photo)")
            return
        folder, model = app.workspace, app.model
        settings = FitSettings(iterations=QUICK_FIT_ITERATIONS) if dpg.get_value("fit_quality") == "quick" else None
        fov = dpg.get_value("fit_fov") or None

        def work(progress, cancelled):
            """Fit and save the Subject; returns it with its overlay images."""
            from persona_studio.app.photo_panel import subject_images

            subject, _ = fit_photo(photos[0], folder, extra_photos=photos[1:], model=model, settings=settings,
                                   progress=progress, cancelled=cancelled, fov=fov)
            return subject, subject_images(subject, folder)

        def done(result) -> None:
            """Show the fit, unless another photo was opened meanwhile; warns that an existing training set is
            stale."""
            subject, images = result
            names = " + ".join(Path(p).name for p in photos)
            if app.workspace != folder:  # another photo was opened meanwhile: its workspace stays
                app.status(f"fitted {names} (workspace {folder})")
                return
            self._show_refitted(subject, images, f"fitted {names}")
            if self.run_all:
                self.start_generate()

        self._run("fit", work, done)

    def remove_photo(self, index: int) -> None:
        """Remove extra photo ``index`` (1 = the second photo) from the subject, on a worker."""
        from persona_studio.workspace.subject import Subject

        app = self.app
        folder = app.workspace
        if folder is None or self.busy():
            app.show_error("Remove photo", "another stage is running: wait for it or cancel it first")
            return

        def work():
            """Save the subject without the photo; returns it with its overlay images."""
            from persona_studio.app.photo_panel import subject_images

            subject = Subject.load(folder)
            name = subject.views[index].photo_name
            subject = subject.without_extra(folder, index)
            return subject, subject_images(subject, folder), name

        def done(result) -> None:
            subject, images, name = result
            if app.workspace == folder:
                self._show_refitted(subject, images, f"removed {name} from the subject's photos")

        app.run_in_thread("Remove photo", work, done, lambda message: app.show_error("Remove photo", message))

    def _show_refitted(self, subject, images, message: str) -> None:
        """Show a subject whose photos or fit changed; says when the training set was made from another."""
        app = self.app
        stale = ws.WorkspaceStages.of(app.workspace).generated
        app._set_workspace(app.workspace, subject)
        app.photo.show_subject(subject, app.workspace, images)
        app.refresh_scene()
        app.status(message + ("; the training set was made from the previous fit: generate and train again"
                              if stale else ""))

    def _original_photos(self) -> list[Path]:
        from persona_studio.workspace.subject import WorkspaceError, original_photos

        if self.app.workspace is None:
            return []
        try:
            return original_photos(self.app.workspace)
        except WorkspaceError:
            return []

    def generate_options(self):
        """The Generate row's settings as ``GenerateOptions`` (the generator resolved from the combo)."""
        from persona_studio.generate.stage import GenerateOptions

        generator, _ = generator_backend(dpg.get_value("gen_generator"), self.app.settings)
        width, height = dpg.get_value("gen_size")[:2]
        motions = [name for name in self.motion_names if dpg.get_value(f"gen_motion_{name}")]
        frames_from = dpg.get_value("gen_import").strip()
        return GenerateOptions(generator=generator, motions=motions, frames=int(dpg.get_value("gen_frames")),
                               size=(int(width), int(height)), level=int(dpg.get_value("gen_level")),
                               frames_from=Path(frames_from) if frames_from else None)

    def start_generate(self) -> None:
        """Write the training set on a worker from the fitted Subject; Run all continues with Train."""
        from persona_studio.generate.stage import ModelFiles, generate_training_set

        app = self.app
        if app.subject is None:
            app.show_error("Generate", "fit a photo first (the Fit button above)")
            return
        if not any(dpg.get_value(f"gen_motion_{name}") for name in self.motion_names):
            app.show_error("Generate", "tick at least one motion to generate frames from")
            return
        options = self.generate_options()
        folder, model, files = app.workspace, app.model, ModelFiles(**app.settings.model_files())

        def work(progress, cancelled):
            """Generate the training set; returns its folder."""
            from persona_studio.capture.detect import segment_person

            return generate_training_set(folder, options, model=model, files=files, segment=segment_person,
                                         progress=progress, cancelled=cancelled)

        def done(target) -> None:
            """Report the training set; Run all starts training if the workspace is unchanged."""
            app.status(f"training set written: {target}")
            if self.run_all and app.workspace == folder:
                self.run_all = False
                app.training.start()

        self._run("generate", work, done)

    def start_all(self) -> None:
        """Run the stages the workspace has not done yet, one after the other."""
        app = self.app
        if app.workspace is None:
            app.show_error("Run all", "open a photo first (File > Open photo, drop one, or Sample photo)")
            return
        stages = ws.WorkspaceStages.of(app.workspace)
        self.run_all = True
        if not stages.fitted:
            self.start_fit()
        elif not stages.generated:
            self.start_generate()
        else:
            self.run_all = False
            app.training.start()
