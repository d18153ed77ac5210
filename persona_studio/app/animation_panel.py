"""Animation panel and timeline: SMPL-X motions (presets, npz files, JSON folders, drops), a timeline
to scrub, play/pause, loop, speed, frame counter, camera fixed / follow / orbit.

Playback follows the clock (:class:`PlaybackClock`): frames not posed yet are dropped, never waited
for. The motion is posed ahead of time by a :class:`PoseCache` worker (progressively, from the
playhead on; cached per poser and motion), so a played frame only uploads positions to the viewer.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from persona_studio.app.jobs import worker_threads
from persona_studio.app.playback import PlaybackClock, PoseCache, PoseCacheStore
from persona_studio.workspace.folders import exports_folder

WRAP = 410
CAMERA_MODES = ("fixed", "follow", "orbit")
CACHE_TEXT_REFRESH_S = 0.2


class AnimationPanel:
    """Animate tab and timeline: loads a motion, owns its playback clock and pose cache, moves the viewport's
    Gaussians and camera each GUI frame."""
    def __init__(self, app):
        self.app = app
        self.motion = None
        self.motion_key = ""
        self.clock: PlaybackClock | None = None
        self.cache: PoseCache | None = None
        self.store = PoseCacheStore()
        self.shown_frame = -1
        self.frames_shown = 0  # frames put on screen since the motion was loaded
        self.frames_dropped = 0  # frames that were due but not posed yet
        self._poser = None
        self._fit_pending = False
        self._last_due = -1
        self._text_time = 0.0

    # -- layout -----------------------------------------------------------------------------------
    def build(self) -> None:
        """Animate tab: preset list, file/folder buttons, cache progress, camera mode, speed and loop."""
        from persona_studio.body.motion import preset_motion_paths

        self.presets = preset_motion_paths()
        dpg.add_text("Preset motions (double-click or Load)", color=(200, 200, 255))
        dpg.add_listbox(list(self.presets), tag="anim_presets", num_items=8, width=-1)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Load preset", tag="anim_load_preset",
                           callback=lambda: self.load_motion(dpg.get_value("anim_presets")))
            dpg.add_button(label="Motion file...", callback=lambda: dpg.show_item("motion_dialog"))
            dpg.add_button(label="JSON folder...", callback=lambda: dpg.show_item("motion_folder_dialog"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Back to the photo pose", tag="anim_unload", callback=lambda: self.unload())
            dpg.add_button(label="Save as .npz", tag="anim_save", callback=lambda: self.save_motion())
        dpg.add_text("no motion loaded", tag="anim_info", wrap=WRAP)
        dpg.add_progress_bar(tag="anim_cache", width=-1, overlay="")
        dpg.add_text("", tag="anim_cache_text", wrap=WRAP, color=(170, 170, 180))
        dpg.add_separator()
        dpg.add_radio_button(CAMERA_MODES, tag="anim_camera", default_value="fixed", horizontal=True)
        dpg.add_slider_float(label="speed", tag="anim_speed", default_value=1.0, min_value=0.1, max_value=3.0,
                             width=220, callback=lambda s, v: self.set_speed(v))
        dpg.add_checkbox(label="loop", tag="anim_loop", default_value=True, callback=lambda s, v: self.set_loop(v))
        with dpg.item_handler_registry(tag="anim_presets_handlers"):
            dpg.add_item_double_clicked_handler(callback=lambda: self.load_motion(dpg.get_value("anim_presets")))
        dpg.bind_item_handler_registry("anim_presets", "anim_presets_handlers")

    def build_timeline(self) -> None:
        """Timeline row: home/step/play/end buttons, the frame slider and the frame counter."""
        with dpg.group(horizontal=True):
            dpg.add_button(label="|<", tag="tl_home", callback=lambda: self.seek(0))
            dpg.add_button(label="<", tag="tl_back", callback=lambda: self.step(-1))
            dpg.add_button(label="Play", tag="tl_play", width=50, callback=lambda: self.toggle_play())
            dpg.add_button(label=">", tag="tl_forward", callback=lambda: self.step(1))
            dpg.add_button(label=">|", tag="tl_end", callback=lambda: self.seek(-1))
            dpg.add_slider_int(tag="timeline", width=-230, min_value=0, max_value=0, enabled=False,
                               callback=lambda s, v: self.seek(v))
            dpg.add_text("no motion", tag="tl_counter")

    # -- loading ------------------------------------------------------------------------------------
    def load_motion(self, source) -> None:
        """A preset name, an .npz, .smpl or .bvh file or a folder of per-frame JSON; read on a worker thread."""
        from persona_studio.body.motion import read_motion

        if not source:
            self.app.show_error("Motion", "choose a preset in the list first")
            return
        path = self.presets.get(str(source), Path(source))
        key = str(Path(path).resolve())

        def done(motion) -> None:
            """Make the motion read on the worker the current one (paused at frame 0)."""
            self.set_motion(motion, key, Path(path).stem if Path(path).suffix else Path(path).name)

        self.app.status(f"reading the motion {path}")
        self.app.run_in_thread("Motion", lambda: read_motion(path), done,
                               lambda message: self.app.show_error("Motion", message))

    def set_motion(self, motion, key: str, name: str) -> None:
        """Make ``motion`` current (a new clock at frame 0) and start posing its frames under ``key`` (its
        cache key)."""
        self.motion, self.motion_key, self.motion_name = motion, key, name
        self.clock = PlaybackClock(motion.num_frames, motion.fps, speed=float(dpg.get_value("anim_speed")),
                                   loop=bool(dpg.get_value("anim_loop")))
        self.shown_frame, self.frames_shown, self.frames_dropped, self._last_due = -1, 0, 0, -1
        self._fit_pending = True
        dpg.configure_item("timeline", max_value=motion.num_frames - 1, enabled=True)
        dpg.set_value("timeline", 0)
        notes = "".join(f"\nnote: {n}" for n in motion.notes)
        dpg.set_value("anim_info", f"{name}: {motion.num_frames} frames at {motion.fps:g} fps "
                                   f"({motion.duration:.1f} s), from {motion.source_format}{notes}")
        self.app.status(f"motion {name} loaded: posing its frames in the background")
        self._start_cache()
        self._update_counter(0)

    def save_motion(self) -> None:
        """Write the current motion (a BVH or .smpl retargeted on reading, say) as our SMPL-X npz into the
        export folder (the folder the Export tab names, else the workspace's exports), under a name that
        replaces nothing; on a worker thread."""
        from persona_studio.body.motion import write_motion

        if self.motion is None:
            self.app.show_error("Motion", "load a motion first")
            return
        custom = dpg.get_value("export_folder").strip()
        if not custom and self.app.workspace is None:
            self.app.show_error("Save motion", "no folder to save into: open a workspace, or name a folder in the "
                                               "Export tab")
            return
        folder = Path(custom).expanduser() if custom else exports_folder(self.app.workspace)
        target = folder / f"{self.motion_name}.npz"
        count = 1
        while target.exists():
            count += 1
            target = folder / f"{self.motion_name}_{count}.npz"
        motion = self.motion

        def work() -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            return write_motion(motion, target)

        self.app.run_in_thread("Save motion", work, lambda path: self.app.status(f"motion saved to {path}"),
                               lambda message: self.app.show_error("Save motion", message))

    def unload(self) -> None:
        """Stop playing and show the still pose again (posed frames stay cached)."""
        if self.cache is not None:
            self.cache.stop()
        self.motion, self.clock, self.cache = None, None, None
        dpg.configure_item("timeline", max_value=0, enabled=False)
        dpg.set_value("tl_counter", "no motion")
        dpg.set_value("anim_info", "no motion loaded")
        dpg.configure_item("tl_play", label="Play")
        self.app.show_static()

    def poser_changed(self) -> None:
        """The viewport shows a new poser (fitted body, live or trained avatar): pose the motion again."""
        poser = self.app.poser
        if self._poser is not None and self._poser is not poser:
            self.store.drop_poser(self._poser)
        self._poser = poser
        if self.motion is not None:
            self.shown_frame = -1
            self._start_cache()

    def _start_cache(self) -> None:
        poser, motion = self.app.poser, self.motion
        if poser is None or motion is None:
            return
        cache = self.store.get(poser, self.motion_key)
        if cache is None:
            cache = PoseCache(poser, motion, motion.smplx_kwargs, threads=worker_threads())
            self.store.add(poser, self.motion_key, cache)
            cache.set_playhead(self.clock.frame(time.perf_counter()) if self.clock else 0)
            cache.start()
        self.cache = cache

    # -- controls -----------------------------------------------------------------------------------
    def _need_motion(self) -> bool:
        if self.clock is None:
            self.app.status("load a motion first (Animate tab, or drop an .npz, .smpl or .bvh file or a JSON folder)")
            return False
        return True

    def toggle_play(self) -> None:
        """Play/Pause button and key."""
        if self._need_motion():
            self.clock.toggle(time.perf_counter())
            dpg.configure_item("tl_play", label="Pause" if self.clock.playing else "Play")

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` frames (wrapping round the motion)."""
        if self._need_motion():
            now = time.perf_counter()
            self.clock.pause(now)
            self.clock.seek((self.clock.frame(now) + delta) % self.clock.num_frames, now)
            dpg.configure_item("tl_play", label="Play")

    def seek(self, frame: int) -> None:
        """Go to ``frame`` (-1: the last one); playing continues from there."""
        if self._need_motion():
            target = self.clock.num_frames - 1 if frame < 0 else int(frame)
            self.clock.seek(target, time.perf_counter())

    def set_speed(self, speed: float) -> None:
        """Speed slider callback."""
        if self.clock is not None:
            self.clock.set_speed(float(speed), time.perf_counter())

    def set_loop(self, loop: bool) -> None:
        """Loop checkbox callback."""
        if self.clock is not None:
            self.clock.loop = bool(loop)

    def shutdown(self) -> None:
        """Stop every pose-cache worker and wait for them."""
        self.store.stop_all()

    # -- per GUI frame ------------------------------------------------------------------------------
    def update(self) -> None:
        """Show the frame due on the clock if it is posed (and move the camera with it); a due frame not
        posed yet is skipped, counted as dropped while playing."""
        clock, cache = self.clock, self.cache
        if clock is None or cache is None:
            self.app.viewport.set_playing(False)
            return
        now = time.perf_counter()
        due = clock.frame(now)
        self.app.viewport.set_playing(clock.playing)
        if not clock.playing:
            dpg.configure_item("tl_play", label="Play")
        cache.set_playhead(due)
        self._update_cache_text(now)
        if due == self.shown_frame:
            return
        posed = cache.frame(due)
        if posed is None:
            if due != self._last_due and clock.playing:
                self.frames_dropped += 1
            self._last_due = due
            self._update_counter(due, waiting=True)
            return
        self._last_due = due
        means, normals, joints = posed
        self.app.viewport.move(means, normals, joints)
        self.shown_frame = due
        self.frames_shown += 1
        self._update_counter(due)
        self._move_camera(joints, due)

    def _move_camera(self, joints, frame: int) -> None:
        viewport = self.app.viewport
        if self._fit_pending:
            self._fit_pending = False
            self._orbit_yaw = viewport.camera.yaw
            viewport.fit_to_scene()
        mode = dpg.get_value("anim_camera")
        if mode == "follow":
            pelvis = joints[0]
            viewport.look_at((pelvis[0], viewport.camera.target[1], pelvis[2]))
        elif mode == "orbit":
            viewport.look_at(viewport.camera.target, yaw=self._orbit_yaw + 2 * math.pi * frame / self.clock.num_frames)

    def _update_counter(self, frame: int, waiting: bool = False) -> None:
        clock = self.clock
        dpg.set_value("timeline", frame)
        dpg.set_value("tl_counter", f"frame {frame + 1} / {clock.num_frames}  {frame / clock.fps:5.2f} s"
                                    + ("  (posing)" if waiting else ""))

    def _update_cache_text(self, now: float) -> None:
        if now - self._text_time < CACHE_TEXT_REFRESH_S:
            return
        self._text_time = now
        cache = self.cache
        done = cache.cached
        dpg.set_value("anim_cache", done / cache.num_frames)
        dpg.configure_item("anim_cache", overlay=f"posed {done} / {cache.num_frames}")
        rate = f"{cache.seconds_per_frame:.2f} s per frame" if cache.seconds_per_frame else "starting"
        text = (f"pose cache: {done} of {cache.num_frames} frames ({rate}; {cache.nbytes / 1e6:.0f} MB); "
                f"played {self.frames_shown}, dropped {self.frames_dropped} not yet posed")
        dpg.set_value("anim_cache_text", cache.error or text)
