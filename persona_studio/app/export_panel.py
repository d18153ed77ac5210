"""Export panel: the trained avatar as MP4 video (of the loaded motion), 3DGS PLY (canonical or the
shown frame; or one per motion frame), a rigged glTF (GLB: splats, skin, pose correctives, an animation
per motion) alone or with a web page that plays it, a posed mesh (GLB/OBJ) and a workspace bundle (zip). Files go
to the workspace's ``exports/`` folder unless another folder is given; every export runs on a worker
thread with progress and cancel where the exporter supports it."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from persona_studio.app.jobs import StageJob, format_eta, worker_threads
from persona_studio.workspace.folders import bundle_folder, exports_folder

WRAP = 410


class ExportPanel:
    """Export tab: video, PLY, PLY sequence, mesh and workspace-bundle exports of the trained avatar, one job
    at a time."""
    def __init__(self, app):
        self.app = app
        self.job: StageJob | None = None

    def build(self) -> None:
        """Export tab: target folder, pose choice, video settings, export buttons, progress and cancel."""
        from persona_studio.export.video import CAMERA_MODES

        dpg.add_text("", tag="export_source", wrap=WRAP)
        dpg.add_input_text(label="folder", tag="export_folder", width=300, hint="<workspace>/exports")
        dpg.add_checkbox(label="overwrite existing files", tag="export_overwrite")
        dpg.add_radio_button(("canonical pose", "shown motion frame"), tag="export_pose", default_value="canonical pose",
                             horizontal=True)
        dpg.add_separator()
        dpg.add_text("Video (MP4) of the loaded motion", color=(200, 200, 255))
        with dpg.group(horizontal=True):
            dpg.add_input_intx(label="size", tag="export_size", size=2, default_value=(512, 512, 0, 0), width=120)
            dpg.add_input_float(label="fps (0: the motion's)", tag="export_fps", default_value=0.0, width=70,
                                step=0)
        with dpg.group(horizontal=True):
            dpg.add_combo(CAMERA_MODES, tag="export_camera", default_value="fixed", width=90, label="camera")
            dpg.add_checkbox(label="photo beside", tag="export_beside")
        dpg.add_button(label="Export video", tag="export_video", callback=self.export_video)
        dpg.add_separator()
        dpg.add_text("Gaussians (3DGS PLY), mesh, bundle", color=(200, 200, 255))
        with dpg.group(horizontal=True):
            dpg.add_button(label="PLY", tag="export_ply", callback=self.export_ply)
            dpg.add_button(label="PLY per motion frame", tag="export_ply_sequence", callback=self.export_ply_sequence)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Mesh", tag="export_mesh", callback=self.export_mesh)
            dpg.add_combo((".glb", ".obj"), tag="export_mesh_format", default_value=".glb", width=60)
        dpg.add_button(label="Workspace bundle (.zip)", tag="export_bundle", callback=self.export_bundle)
        dpg.add_separator()
        dpg.add_text("Rigged avatar for other tools (glTF: Blender, engines, web viewers)", color=(200, 200, 255))
        with dpg.group(horizontal=True):
            dpg.add_button(label="glTF (.glb)", tag="export_gltf", callback=self.export_gltf)
            dpg.add_button(label="Web player", tag="export_web", callback=self.export_web)
            dpg.add_checkbox(label="with every preset motion", tag="export_gltf_presets", default_value=True)
        dpg.add_separator()
        with dpg.group(horizontal=True):
            dpg.add_progress_bar(tag="export_progress", width=300, overlay="")
            dpg.add_button(label="Cancel", tag="export_cancel", enabled=False, callback=lambda: self.cancel())
        dpg.add_text("", tag="export_result", wrap=WRAP)
        self.refresh()

    def refresh(self) -> None:
        """Say which trained avatar the exports use, or why there is none."""
        from persona_studio.app import workspace as ws

        folder = self.app.workspace
        if folder is None:
            text = "no workspace: open a photo and train an avatar first"
        elif not ws.WorkspaceStages.of(folder).trained:
            text = f"{folder.name}: no trained avatar yet (train it in the Train tab; exports need it)"
        else:
            text = f"avatar: {folder / 'avatar' / 'bundle'}"
        dpg.set_value("export_source", text)

    # -- helpers ------------------------------------------------------------------------------------
    def _folder(self) -> Path:
        custom = dpg.get_value("export_folder").strip()
        return Path(custom).expanduser() if custom else exports_folder(self.app.workspace)

    def _pose(self):
        """(motion, frame) for the chosen pose: the animation panel's shown frame, or canonical (None, 0)."""
        animation = self.app.animation
        if dpg.get_value("export_pose") == "shown motion frame" and animation.motion is not None:
            return animation.motion, max(animation.shown_frame, 0)
        return None, 0

    def _name(self, suffix: str) -> str:
        motion, frame = self._pose()
        if motion is None:
            return f"avatar{suffix}"
        return f"{self.app.animation.motion_name}_frame{frame + 1:04d}{suffix}"

    def _start(self, what: str, work, describe=None) -> None:
        """Run ``work(avatar, progress, cancelled) -> path`` with the workspace's trained avatar;
        ``describe()``, when given, adds a line to the result once done."""
        from persona_studio.app import workspace as ws

        app = self.app
        if app.workspace is None or not ws.WorkspaceStages.of(app.workspace).trained:
            app.show_error("Export", "no trained avatar in this workspace: train it first (Train tab)")
            return
        if self.job is not None and self.job.running:
            app.show_error("Export", "an export is running: wait for it or cancel it")
            return
        bundle = bundle_folder(app.workspace)
        device = app.compute_device()

        def run(progress, cancelled):
            """Load the trained avatar on the worker (onto the Settings' device) and run the export with it."""
            from persona_studio.avatar.bundle import load_avatar

            avatar, _ = load_avatar(bundle, device)
            return work(avatar, progress, cancelled)

        def progress(fraction: float, message: str, eta) -> None:
            """Show the export's progress and ETA."""
            dpg.set_value("export_progress", fraction)
            dpg.configure_item("export_progress", overlay=f"{what}: {message}  {format_eta(eta)}")

        def done(path) -> None:
            """Show the written path and its size (a folder's summed)."""
            dpg.configure_item("export_cancel", enabled=False)
            dpg.set_value("export_progress", 1.0)
            dpg.configure_item("export_progress", overlay=f"{what}: done")
            size = sum(p.stat().st_size for p in Path(path).rglob("*")) if Path(path).is_dir() else Path(path).stat().st_size
            dpg.set_value("export_result", f"wrote {path} ({size / 1e6:.1f} MB)" + (f"\n{describe()}" if describe else ""))
            app.status(f"exported {path}")

        def error(message: str, cancelled: bool) -> None:
            """Show a failure (or a cancel, quietly in the status line)."""
            dpg.configure_item("export_cancel", enabled=False)
            dpg.configure_item("export_progress", overlay=f"{what}: {'cancelled' if cancelled else 'failed'}")
            dpg.set_value("export_result", message)
            (app.status if cancelled else lambda m: app.show_error("Export", m))(message)

        dpg.configure_item("export_cancel", enabled=True)
        dpg.set_value("export_progress", 0.0)
        self.job = StageJob(f"export {what}", run, app.post, on_progress=progress, on_done=done, on_error=error,
                            threads=worker_threads()).start()

    def cancel(self) -> None:
        """Cancel the running export, if any."""
        if self.job is not None:
            self.job.cancel()

    def shutdown(self) -> None:
        """Cancel the running export."""
        self.cancel()

    # -- exports ------------------------------------------------------------------------------------
    def export_video(self) -> None:
        """MP4 of the avatar performing the loaded motion, with the chosen size, fps and camera."""
        from persona_studio.export.video import export_video

        motion = self.app.animation.motion
        if motion is None:
            self.app.show_error("Export", "load a motion first (Animate tab): the video shows the avatar performing it")
            return
        target = self._folder() / f"{self.app.animation.motion_name}.mp4"
        width, height = (int(v) for v in dpg.get_value("export_size")[:2])
        fps = float(dpg.get_value("export_fps")) or None
        camera, overwrite = dpg.get_value("export_camera"), bool(dpg.get_value("export_overwrite"))
        photo = self.app.subject.image if dpg.get_value("export_beside") and self.app.subject is not None else None

        def work(avatar, progress, cancelled):
            """Write the video (its folder made first)."""
            target.parent.mkdir(parents=True, exist_ok=True)
            return export_video(avatar, motion, target, overwrite=overwrite, photo=photo, size=(width, height),
                                fps=fps, camera=camera, progress=progress, cancelled=cancelled)

        self._start("video", work)

    def export_ply(self) -> None:
        """3DGS PLY of the avatar in the chosen pose (canonical or the shown frame)."""
        from persona_studio.export.ply import export_ply

        motion, frame = self._pose()
        target, overwrite = self._folder() / self._name(".ply"), bool(dpg.get_value("export_overwrite"))
        self._start("PLY", lambda avatar, progress, cancelled: export_ply(avatar, target, motion, frame,
                                                                         overwrite=overwrite))

    def export_ply_sequence(self) -> None:
        """A folder with one 3DGS PLY per frame of the loaded motion."""
        from persona_studio.export.ply import export_ply_sequence

        motion = self.app.animation.motion
        if motion is None:
            self.app.show_error("Export", "load a motion first (Animate tab): one PLY is written per frame")
            return
        target = self._folder() / f"{self.app.animation.motion_name}_ply"
        overwrite = bool(dpg.get_value("export_overwrite"))
        self._start("PLY sequence", lambda avatar, progress, cancelled: export_ply_sequence(
            avatar, motion, target, overwrite=overwrite, progress=progress, cancelled=cancelled))

    def export_mesh(self) -> None:
        """Posed mesh (GLB or OBJ) in the chosen pose."""
        from persona_studio.export.mesh import export_mesh

        motion, frame = self._pose()
        target = self._folder() / self._name(dpg.get_value("export_mesh_format"))
        overwrite = bool(dpg.get_value("export_overwrite"))
        self._start("mesh", lambda avatar, progress, cancelled: export_mesh(avatar, target, motion, frame,
                                                                           overwrite=overwrite))

    def export_gltf(self) -> None:
        """One GLB with the avatar rigged and an animation per motion."""
        from persona_studio.export.gltf import export_gltf

        self._rigged("glTF", self._folder() / "avatar_rigged.glb", export_gltf)

    def export_web(self) -> None:
        """A folder with a web page that plays the rigged avatar (the GLB beside it)."""
        from persona_studio.export.web import export_web

        self._rigged("web player", self._folder() / "web_player", export_web)

    def _rigged(self, what: str, target: Path, exporter) -> None:
        """Run ``exporter(avatar, target, motions, ...) -> (path, GltfFigures)`` with the loaded motion and,
        when ticked, the presets; the result line gives the figures."""
        from persona_studio.body.motion import preset_motion_paths, read_motion

        animation = self.app.animation
        loaded = {} if animation.motion is None else {animation.motion_name: animation.motion}
        presets = dict(preset_motion_paths()) if dpg.get_value("export_gltf_presets") else {}
        if not loaded and not presets:
            self.app.show_error("Export", "load a motion (Animate tab) or tick 'with every preset motion': "
                                f"the {what} needs at least one animation")
            return
        overwrite = bool(dpg.get_value("export_overwrite"))
        figures = []

        def work(avatar, progress, cancelled):
            """Read the presets, export (the folder made first), keep the figures."""
            motions = dict(loaded)
            for name, path in presets.items():
                motions.setdefault(name, read_motion(path))
            target.parent.mkdir(parents=True, exist_ok=True)
            written, result = exporter(avatar, target, motions, overwrite=overwrite, progress=progress,
                                       cancelled=cancelled)
            figures.append(result)
            return written

        def describe() -> str:
            f = figures[-1]
            count = len(f.frames)
            return (f"{count} animation{'s' if count != 1 else ''}, {f.pose_targets} pose morph targets "
                    f"({f.variance_kept:.1%} of the deformation); against the avatar: mean "
                    f"{f.total_error.mean_mm:.2f} mm, p99 {f.total_error.p99_mm:.2f} mm")

        self._start(what, work, describe)

    def export_bundle(self) -> None:
        """Zip of the workspace's avatar bundle and Subject."""
        from persona_studio.export.workspace_bundle import export_workspace_bundle

        folder = self.app.workspace
        target, overwrite = self._folder() / f"{folder.name if folder else 'workspace'}.zip", bool(
            dpg.get_value("export_overwrite"))
        self._start("bundle", lambda avatar, progress, cancelled: export_workspace_bundle(
            folder, target, overwrite=overwrite, progress=progress))
