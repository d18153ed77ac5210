"""The real desktop app under Xvfb, driven through its own widget callbacks (no mocks).

One app for the module: the sample photo is fitted, a tiny training set generated and a tiny avatar
trained; screenshots of the window (``output_frame_buffer``) check that the viewport shows something
and that it changes with the render mode and the timeline; the GUI loop's frame times are measured
while training runs; a bad photo and a bad motion file each show their message and the app runs on.
"""

from __future__ import annotations

import ctypes
import inspect
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

dpg = pytest.importorskip("dearpygui.dearpygui")

FRAME_BUDGET_MS = 50.0
TINY_GENERATE = {"gen_frames": 4, "gen_size": [72, 128, 0, 0], "gen_level": "0"}
TINY_TRAIN = {"train_iterations": 3, "train_resolution": 64, "train_template_level": 0, "train_mlp_width": 32,
              "train_triplane_resolution": 16, "train_preview_every": 1}


# -- driving the app ------------------------------------------------------------------------------

def run_until(app, condition, timeout: float, what: str) -> None:
    """Run the GUI loop (paced as the app paces it) until ``condition()`` holds; fail with the status
    line after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; status: {dpg.get_value('status')!r}")
        app.paced_frame()


def invoke(tag, app_data=None) -> None:
    """Call a widget's own callback as DearPyGui would (sender, app_data, user_data)."""
    callback = dpg.get_item_callback(tag)
    assert callback is not None, f"{tag} has no callback"
    args = (tag, app_data, dpg.get_item_user_data(tag))
    accepted = len(inspect.signature(callback).parameters)
    callback(*args[:accepted])


def choose(tag, value) -> None:
    """Set a widget's value and run its callback, like a person picking it."""
    dpg.set_value(tag, value)
    if dpg.get_item_callback(tag) is not None:
        invoke(tag, value)


def press(key: int) -> None:
    invoke(f"key_{key}")


def viewport_pixels(app, path: Path) -> np.ndarray:
    """[H, W, 3] the viewport image's part of a window screenshot."""
    app.screenshot(path)
    shot = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    x0, y0 = (int(v) for v in dpg.get_item_rect_min("view_image"))
    w, h = (int(v) for v in dpg.get_item_rect_size("view_image"))
    return shot[y0:y0 + h, x0:x0 + w]


def covered_share(pixels: np.ndarray) -> float:
    """Share of viewport pixels that differ from the empty background."""
    from persona_studio.app.viewport import BACKGROUND

    background = np.round(np.array(BACKGROUND[:3]) * 255)
    return float((np.abs(pixels - background).max(-1) > 24).mean())


def settle_view(app, after: int, quiet_s: float = 0.6, timeout: float = 30.0) -> None:
    """Wait until the viewport showed a frame newer than ``after`` and then none for ``quiet_s``: the
    render thread is idle, so everything asked for so far is on screen."""
    deadline = time.monotonic() + timeout
    last, since = app.viewport.frames_shown, time.monotonic()
    while app.viewport.frames_shown <= after or time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            pytest.fail(f"the viewport did not settle; status: {dpg.get_value('status')!r}")
        app.paced_frame()
        if app.viewport.frames_shown != last:
            last, since = app.viewport.frames_shown, time.monotonic()


def new_view_frame(app, after: int, timeout: float = 30.0, **expect) -> None:
    """Wait for a viewport frame newer than ``after`` (matching ``expect`` on its render options)."""
    def arrived() -> bool:
        frame = app.viewport.last_frame
        return (app.viewport.frames_shown > after and frame is not None
                and all(getattr(frame.options, k) == v for k, v in expect.items()))

    run_until(app, arrived, timeout, f"a new viewport frame with {expect}")


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(display, tmp_path_factory):
    from persona_studio.app.window import App

    config = tmp_path_factory.mktemp("app_config")
    saved = os.environ.get("PERSONA_STUDIO_CONFIG")
    os.environ["PERSONA_STUDIO_CONFIG"] = str(config)  # never the user's settings
    app = App(workspaces_root=tmp_path_factory.mktemp("workspaces"))
    app.build(1280, 800)
    try:
        app.start()
        run_until(app, lambda: app.poser is not None and app.scene_ready and app.viewport.frames_shown > 0,
                  120, "the body model and the first 3D frame")
        yield app
    finally:
        app.close()
        if saved is None:
            os.environ.pop("PERSONA_STUDIO_CONFIG", None)
        else:
            os.environ["PERSONA_STUDIO_CONFIG"] = saved


@pytest.fixture(scope="module")
def fitted(app):
    choose("fit_quality", "quick")
    dpg.set_value("fit_fov", 50.0)  # the field of view the user knows (0: the photo's EXIF, else the prior)
    invoke("photo_sample")
    run_until(app, lambda: app.subject is not None, 180, "the fit of the sample photo")
    run_until(app, lambda: app.scene_ready and app.poser.kind == "body", 60, "the fitted body in the viewport")
    return app.workspace


@pytest.fixture(scope="module")
def trained(app, fitted):
    """Generate and train at tiny settings through the Pipeline and Train tabs; returns the GUI frame
    statistics measured while the trainer thread ran."""
    for tag, value in TINY_GENERATE.items():
        dpg.set_value(tag, value)
    for name in app.pipeline.motion_names:
        dpg.set_value(f"gen_motion_{name}", name == "wave")
    invoke("generate_start")
    run_until(app, lambda: not app.pipeline.busy() and (fitted / "training_set" / "manifest.json").is_file(),
              180, "the generate stage")
    for tag, value in TINY_TRAIN.items():
        dpg.set_value(tag, value)
    first = app.frame_count
    invoke("train_start")
    assert app.training.active
    run_until(app, lambda: not app.training.active, 300, "the tiny training run")
    stats = app.frame_stats(first)
    run_until(app, lambda: app.scene_ready and app.poser.kind == "avatar"
              and app.training.finished_figures is not None, 60, "the trained avatar in the viewport")
    return stats


# -- tests ----------------------------------------------------------------------------------------

def test_the_window_shows_the_body_model_and_hooks_file_drops(app):
    assert "vertices:" in dpg.get_value("body_info")
    assert app.poser.kind == "body"
    assert app._drop_handler is not None, app.drop_note
    assert app.viewport.gaussian_count > 10_000


def test_the_fit_row_gives_the_fit_its_field_of_view(app, fitted):
    from persona_studio.capture.intake import fov_deg

    camera = app.subject.camera
    assert fov_deg(camera.fx, camera.width, camera.height) == pytest.approx(50.0)
    assert any("50 deg across the longer side, as given" in note for note in app.subject.notes)


def test_a_dropped_file_goes_through_the_glfw_callback(app, tmp_path):
    """The very function pointer registered with GLFW, called as GLFW calls it on an XDND drop."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a photo")
    paths = (ctypes.c_char_p * 1)(str(bad).encode())
    app._drop_handler.callback(None, 1, paths)
    run_until(app, lambda: dpg.is_item_shown("error_modal"), 10, "the drop's error message")
    assert "notes.txt is not a photo" in dpg.get_value("error_text")
    dpg.configure_item("error_modal", show=False)


def xdnd_drop(title: str, path: Path, report: list) -> None:
    """A minimal XDND drag source (its own X connection): drops ``path`` as a file URI onto the window
    whose name starts with ``title``, answering the target's selection request; ``report`` gets the
    steps seen."""
    from Xlib import X, display
    from Xlib.protocol import event

    d = display.Display()
    root = d.screen().root
    atom = d.intern_atom

    def find(window):
        name = window.get_wm_name()
        if name and str(name).startswith(title):
            return window
        return next(filter(None, (find(child) for child in window.query_tree().children)), None)

    target = find(root)
    source = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
    source.set_selection_owner(atom("XdndSelection"), X.CurrentTime)

    def send(kind: str, data: list[int]) -> None:
        target.send_event(event.ClientMessage(window=target, client_type=atom(kind), data=(32, data)), event_mask=0)
        d.flush()

    send("XdndEnter", [source.id, 5 << 24, atom("text/uri-list"), 0, 0])
    corner = target.translate_coords(root, 0, 0)
    x, y = 200 - corner.x, 200 - corner.y
    send("XdndPosition", [source.id, 0, (x << 16) | y, X.CurrentTime, atom("XdndActionCopy")])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "finished" not in report:
        if not d.pending_events():
            time.sleep(0.01)
            continue
        ev = d.next_event()
        if ev.type == X.ClientMessage and ev.client_type == atom("XdndStatus") and "status" not in report:
            report.append("status")
            send("XdndDrop", [source.id, 0, X.CurrentTime, 0, 0])
        elif ev.type == X.SelectionRequest:
            ev.requestor.change_property(ev.property, ev.target, 8, f"file://{path}\r\n".encode())
            ev.requestor.send_event(event.SelectionNotify(time=ev.time, requestor=ev.requestor, selection=ev.selection,
                                                          target=ev.target, property=ev.property))
            d.flush()
            report.append("sent")
        elif ev.type == X.ClientMessage and ev.client_type == atom("XdndFinished"):
            report.append("finished")
    d.close()


def test_a_real_xdnd_drop_opens_a_motion(app):
    """A drag-and-drop as a file manager does it (XDND over X11), not a call into our code."""
    pytest.importorskip("Xlib", reason="python-xlib plays the file manager in this test")
    import threading

    from persona_studio.app.window import TITLE
    from persona_studio.body.motion import preset_motion_paths

    report: list[str] = []
    motion = preset_motion_paths()["squat"]
    source = threading.Thread(target=xdnd_drop, args=(TITLE, motion, report), daemon=True)
    source.start()
    run_until(app, lambda: not source.is_alive(), 30, "the drag source to finish")
    assert report == ["status", "sent", "finished"], report
    run_until(app, lambda: app.animation.motion is not None and app.animation.motion_name == "squat", 30,
              "the dropped motion to load")
    app.animation.unload()


def test_a_bad_photo_shows_its_message_and_the_app_runs_on(app, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    before = app.workspace
    app.on_drop([str(broken)])
    run_until(app, lambda: dpg.is_item_shown("error_modal"), 30, "the photo's error message")
    message = dpg.get_value("error_text")
    assert "broken.png" in message and dpg.get_value("error_title") == "Photo"
    assert message in dpg.get_value("status")
    assert app.workspace == before
    for _ in range(5):
        app.frame()
    dpg.configure_item("error_modal", show=False)


def test_a_bad_motion_file_shows_its_message_and_the_app_runs_on(app, tmp_path):
    bad = tmp_path / "dance.npz"
    np.savez(bad, poses=np.zeros((10, 7)), trans=np.zeros((10, 3)))  # 7 pose values: no SMPL-X layout
    motion_before = app.animation.motion
    app.on_drop([str(bad)])
    run_until(app, lambda: dpg.is_item_shown("error_modal"), 30, "the motion's error message")
    assert dpg.get_value("error_title") == "Motion"
    assert "dance.npz" in dpg.get_value("error_text")
    assert app.animation.motion is motion_before
    dpg.configure_item("error_modal", show=False)
    app.frame()


def test_the_sample_photo_fits_and_the_viewport_shows_the_body(app, fitted, tmp_path):
    from persona_studio.viewer.renderer import RenderMode

    assert (fitted / "subject" / "subject.json").is_file()
    assert "keypoint error" in dpg.get_value("fit_figures")
    assert str(fitted) in app.settings.recent_workspaces[0]
    settle_view(app, 0)
    rgb = viewport_pixels(app, tmp_path / "rgb.png")
    assert covered_share(rgb) > 0.03
    shown = app.viewport.frames_shown
    choose("view_mode", "parts")
    new_view_frame(app, shown, mode=RenderMode.PARTS)
    parts = viewport_pixels(app, tmp_path / "parts.png")
    assert covered_share(parts) > 0.03
    assert np.abs(parts - rgb).mean() > 3.0, "the render mode did not change the picture"
    choose("view_mode", "RGB")


def test_training_leaves_the_window_responsive(trained):
    print(f"GUI frames while training: {trained}")
    assert trained["frames"] >= 10
    assert trained["interval_median_ms"] < FRAME_BUDGET_MS
    assert trained["interval_p95_ms"] < FRAME_BUDGET_MS, trained


def test_training_reports_progress_and_a_loss_plot(app, trained):
    assert app.training.steps == [1.0, 2.0, 3.0]
    x, y = dpg.get_value("loss_total")[:2]
    assert list(x) == [1.0, 2.0, 3.0] and all(v > 0 for v in y)
    assert "finished at step 3" in dpg.get_value("train_state")
    assert app.training.finished_figures["photo_psnr"] > 5


def test_a_bvh_opens_retargeted_and_saves_as_npz(app, trained):
    from persona_studio.body.motion import read_motion
    from persona_studio.workspace.folders import exports_folder

    from tests.conftest import shared_path

    app.animation.load_motion(shared_path("motions", "cmu_131_01_start_walk_stop.bvh"))
    run_until(app, lambda: app.animation.motion is not None and app.animation.motion_name.startswith("cmu_131"), 60,
              "the BVH retargeted")
    assert "BVH (cmu rig)" in dpg.get_value("anim_info") and "LeftKnee->left_knee" in dpg.get_value("anim_info")
    dpg.set_value("export_folder", "")
    target = exports_folder(app.workspace) / "cmu_131_01_start_walk_stop.npz"
    target.unlink(missing_ok=True)
    invoke("anim_save")
    run_until(app, target.is_file, 60, "the saved motion")
    saved = read_motion(target)
    assert saved.num_frames == app.animation.motion.num_frames == 994
    np.testing.assert_allclose(saved.poses, app.animation.motion.poses, atol=1e-6)
    invoke("anim_save")  # a second save replaces nothing
    run_until(app, (target.parent / "cmu_131_01_start_walk_stop_2.npz").is_file, 60, "the second save")
    app.animation.unload()


def test_a_preset_plays_and_the_timeline_moves_the_avatar(app, trained, tmp_path):
    dpg.set_value("anim_presets", "wave")
    invoke("anim_load_preset")
    shown = app.viewport.frames_shown
    run_until(app, lambda: app.animation.cache is not None and app.animation.shown_frame == 0, 60,
              "frame 0 of the preset")
    settle_view(app, shown)
    start = viewport_pixels(app, tmp_path / "frame0.png")
    shown = app.viewport.frames_shown
    choose("timeline", 60)
    run_until(app, lambda: app.animation.shown_frame == 60, 60, "frame 60 after moving the timeline")
    settle_view(app, shown)
    later = viewport_pixels(app, tmp_path / "frame60.png")
    assert covered_share(later) > 0.02
    assert np.abs(later - start).mean() > 1.0, "moving the timeline did not move the avatar"
    assert dpg.get_value("tl_counter").startswith("frame 61 /")

    press(dpg.mvKey_Right)  # one frame on
    run_until(app, lambda: app.animation.shown_frame == 61, 30, "frame 61 after the Right key")
    press(dpg.mvKey_Spacebar)  # play: the shown frame follows the clock
    assert app.animation.clock.playing
    seen, widths = set(), set()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.5:
        app.frame()
        seen.add(app.animation.shown_frame)
        widths.add(app.viewport.last_frame.image.shape[1])
    elapsed = time.perf_counter() - t0
    assert len(seen) >= 3, seen
    due = app.animation.clock.frame(time.perf_counter())
    assert abs(due - (61 + 30 * elapsed)) % app.animation.clock.num_frames < 8  # 30 fps from frame 61
    full_width = app.viewport.display_size[0]
    assert app.viewport.render_size[0] == full_width // 2 and full_width // 2 in widths  # fast playback
    press(dpg.mvKey_Spacebar)
    assert not app.animation.clock.playing
    run_until(app, lambda: app.viewport.last_frame.image.shape[1] == full_width, 30,
              "a full-resolution frame after pausing")
    press(dpg.mvKey_Home)
    run_until(app, lambda: app.animation.shown_frame == 0, 30, "frame 0 after Home")


def test_the_viewport_follows_the_window_size_and_the_camera_keys(app):
    width = app.viewport.render_size[0]
    shown = app.viewport.frames_shown
    dpg.set_viewport_width(1100)
    try:
        run_until(app, lambda: app.viewport.render_size[0] < width, 10, "the viewport to shrink with the window")
        run_until(app, lambda: app.viewport.frames_shown > shown
                  and app.viewport.last_frame.image.shape[1] == app.viewport.render_size[0], 30,
                  "a frame at the new size")
    finally:
        dpg.set_viewport_width(1280)
    app.viewport.orbit(120, -40)
    app.viewport.zoom(2)
    assert app.viewport.camera.yaw != 0
    press(dpg.mvKey_R)
    assert app.viewport.camera.yaw == 0 and app.viewport.camera.pitch == 0
    home = app.viewport.camera.distance
    app.viewport.zoom(3)
    invoke("view_fit")
    assert app.viewport.camera.distance == pytest.approx(home, rel=0.2)


def test_each_stage_names_its_backend_and_settings_report_missing_files(app, tmp_path):
    assert "MediaPipe" in dpg.get_value("fit_backend")
    generator = dpg.get_value("generate_backend")
    assert "MimicMotion" in generator and ("re-poser" in generator or "MimicMotion (" in generator)
    import torch

    where = "cuda:0" if torch.cuda.is_available() else "cpu"  # the settings' default device is auto
    assert dpg.get_value("train_backend").startswith(f"on {where}; rasterizer: gsplat: ")
    missing = tmp_path / "no_sapiens_here"
    dpg.set_value("settings_sapiens_path", str(missing))
    invoke("settings_save")
    assert f"Sapiens: the folder {missing} does not exist" in dpg.get_value("settings_report")
    from persona_studio.settings import Settings

    assert Settings.load().sapiens_path == str(missing)  # saved for this user (the test's config folder)
    dpg.set_value("settings_sapiens_path", "")
    invoke("settings_save")


def test_exports_of_the_trained_avatar(app, trained, tmp_path):
    from plyfile import PlyData

    dpg.set_value("export_folder", str(tmp_path))
    dpg.set_value("export_pose", "canonical pose")
    for button in ("export_ply", "export_mesh", "export_bundle"):
        invoke(button)
        run_until(app, lambda: not app.export.job.running, 60, f"the {button} export")
        app.frame()
        assert dpg.get_value("export_result").startswith("wrote "), dpg.get_value("export_result")
    ply = PlyData.read(str(tmp_path / "avatar.ply"))
    assert ply["vertex"].count == app.poser.count
    assert (tmp_path / "avatar.glb").stat().st_size > 1000
    assert (tmp_path / f"{app.workspace.name}.zip").is_file()
    if app.animation.motion is None:
        dpg.set_value("anim_presets", "wave")
        invoke("anim_load_preset")
        run_until(app, lambda: app.animation.motion is not None, 30, "a motion for the video")
    dpg.set_value("export_size", [48, 48, 0, 0])
    dpg.set_value("export_fps", 5.0)  # the motion resampled: few frames
    invoke("export_video")
    run_until(app, lambda: not app.export.job.running, 120, "the video export")
    app.frame()
    assert (tmp_path / f"{app.animation.motion_name}.mp4").stat().st_size > 1000

    from persona_studio.export.gltf import read_glb

    dpg.set_value("export_gltf_presets", False)  # the loaded motion only
    invoke("export_gltf")
    run_until(app, lambda: not app.export.job.running, 180, "the glTF export")
    app.frame()
    result = dpg.get_value("export_result")
    assert result.startswith("wrote ") and "1 animation," in result and "p99" in result, result
    document, _ = read_glb((tmp_path / "avatar_rigged.glb").read_bytes())
    assert [a["name"] for a in document["animations"]] == [app.animation.motion_name]
    invoke("export_web")
    run_until(app, lambda: not app.export.job.running, 180, "the web player export")
    app.frame()
    assert dpg.get_value("export_result").startswith("wrote "), dpg.get_value("export_result")
    assert {p.name for p in (tmp_path / "web_player").iterdir()} == {"index.html", "player.js", "avatar.glb"}


def test_training_pauses_resumes_stops_and_takes_live_weights(app, trained):
    dpg.set_value("train_iterations", 10_000)
    dpg.set_value("train_preview_every", 0)
    invoke("train_start")
    trainer = app.training.trainer
    run_until(app, lambda: trainer.step >= 1, 120, "the first training step")
    choose("train_w_mask", 3.5)
    choose("train_photo_share", 0.9)
    invoke("train_pause")
    run_until(app, lambda: dpg.get_value("train_state").startswith("paused at step"), 60, "the pause")
    paused_at = trainer.step
    for _ in range(20):
        app.frame()  # the window runs on while training waits
    assert trainer.step == paused_at
    invoke("train_resume")
    run_until(app, lambda: trainer.step > paused_at, 60, "a step after resuming")
    assert trainer._step_weights.mask == 3.5 and trainer.sampler.photo_share == 0.9
    invoke("train_stop")
    run_until(app, lambda: not app.training.active, 60, "the stop")
    run_until(app, lambda: dpg.get_value("train_state").startswith("stopped at step"), 10, "the stopped state")


def test_training_that_would_replace_earlier_work_asks_first(app, trained):
    avatar = app.workspace / "avatar"
    checkpoint = (avatar / "checkpoint.safetensors").read_bytes()
    dpg.set_value("train_iterations", 2)
    dpg.set_value("train_mlp_width", 16)  # not what the checkpoint was made with
    invoke("train_start")
    assert dpg.is_item_shown("ask_modal") and not app.training.active
    assert "mlp width 32 (now 16)" in dpg.get_value("ask_text") and "earlier" in dpg.get_value("ask_text")
    invoke("ask_cancel")
    assert not dpg.is_item_shown("ask_modal") and not app.training.active
    assert (avatar / "checkpoint.safetensors").read_bytes() == checkpoint and not (avatar / "earlier").exists()
    invoke("train_start")
    invoke("ask_confirm")
    assert app.training.active
    run_until(app, lambda: not app.training.active, 300, "the fresh run")
    (kept,) = (avatar / "earlier").iterdir()
    assert (kept / "checkpoint.safetensors").read_bytes() == checkpoint and (kept / "bundle" / "avatar.json").is_file()
    dpg.set_value("train_mlp_width", TINY_TRAIN["train_mlp_width"])


def test_a_dropped_workspace_bundle_opens_as_a_new_workspace(app, trained, tmp_path):
    from persona_studio.export.workspace_bundle import export_workspace_bundle

    bundle = export_workspace_bundle(app.workspace, tmp_path / "friend.zip")
    before = app.workspace
    app.on_drop([str(bundle)])
    run_until(app, lambda: app.workspace is not None and app.workspace.name == "friend", 60, "the imported workspace")
    assert app.workspace != before and app.workspace.parent == before.parent
    run_until(app, lambda: app.scene_ready and app.poser.kind == "avatar", 60, "the imported avatar in the viewport")


def test_photos_of_one_person_join_as_a_strip_and_another_person_is_refused(app, tmp_path):
    """Open the front view of the multi-view set, drop its back view with "dropped photos join" ticked,
    then a photo of someone else; remove the back photo from the strip."""
    from conftest import shared_path

    images = shared_path("multiview", "rp_dennis_posed_004", "images")
    front = tmp_path / "dennis.jpg"
    front.write_bytes((images / "0000.jpg").read_bytes())
    choose("fit_quality", "quick")
    app.open_path(front)
    run_until(app, lambda: app.subject is not None and app.subject.photo_name == "dennis.jpg"
              and not app.pipeline.busy(), 180, "the fit of the front photo")
    folder = app.workspace
    run_until(app, lambda: app.scene_ready and app.poser.kind == "body", 60, "the fitted body in the viewport")
    assert dpg.get_item_children("photo_strip", 1) and dpg.get_item_configuration("photo_add")["enabled"]
    assert len(dpg.get_item_children("photo_strip", 1)) == 1

    dpg.set_value("drop_joins", True)
    try:
        app.on_drop([str(images / "0180.jpg")])
        run_until(app, lambda: len(app.subject.views) == 2 and not app.pipeline.busy(), 180,
                  "the joint fit of the front and back photos")
        run_until(app, lambda: app.scene_ready and app.poser.kind == "body", 60, "the fitted body in the viewport")
        assert app.workspace == folder and len(dpg.get_item_children("photo_strip", 1)) == 2
        assert dpg.does_item_exist("photo_remove_1") and "photo 2, 0180.jpg" in dpg.get_value("fit_figures")

        app.on_drop([str(shared_path("photos", "pifu_ryota.png"))])
        run_until(app, lambda: dpg.is_item_shown("error_modal"), 180, "the refusal of another person's photo")
        assert "pifu_ryota.png" in dpg.get_value("error_text") and "same person" in dpg.get_value("error_text")
        dpg.configure_item("error_modal", show=False)
        assert app.workspace == folder and len(app.subject.views) == 2
    finally:
        dpg.set_value("drop_joins", False)

    invoke("photo_remove_1")
    run_until(app, lambda: len(app.subject.views) == 1, 60, "the back photo's removal")
    assert len(dpg.get_item_children("photo_strip", 1)) == 1 and not (folder / "subject" / "extra").exists()
    assert "removed 0180.jpg" in dpg.get_value("status")
    run_until(app, lambda: app.scene_ready and app.poser.kind == "body", 60, "the fitted body in the viewport")


def test_the_generate_level_follows_the_training_preset(app):
    """The re-poser renders at the template level of the avatar it teaches: picking a preset on the Train
    tab sets the Generate row's level to that preset's (the user can still change it after)."""
    from persona_studio.app.training_panel import OVERRIDES
    from persona_studio.train.settings import TrainSettings

    kept = {tag: dpg.get_value(tag) for tag in ["train_preset", "train_preset_text", "gen_level", "train_preview_every",
                                                *(f"train_{key}" for key, _, _ in OVERRIDES)]}
    try:
        for preset in ("quality", "preview", "standard"):
            choose("train_preset", preset)
            assert dpg.get_value("gen_level") == str(TrainSettings.from_preset(preset).template_level)
        assert TrainSettings.from_preset("quality").template_level == 2
        assert dpg.get_value("gen_level") == "1"
    finally:
        for tag, value in kept.items():
            dpg.set_value(tag, value)
