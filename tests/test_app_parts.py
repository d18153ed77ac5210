"""The app's non-GUI parts: playback clock, pose cache, posers, workspace rules, stage jobs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from persona_studio.app import workspace as ws
from persona_studio.app.jobs import StageJob, eta_seconds
from persona_studio.app.playback import PlaybackClock, PoseCache
from persona_studio.app.posers import AvatarPoser, BodyPoser, rest_pose
from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion

from conftest import needs_cuda


def test_the_clock_drops_frames_instead_of_slowing_down():
    clock = PlaybackClock(num_frames=100, fps=30.0)
    clock.play(now=10.0)
    assert clock.frame(10.0) == 0
    assert clock.frame(10.5) == 15  # half a second later, whatever was shown in between
    assert clock.frame(13.4) == 2  # 102 frames: looped
    clock.set_speed(2.0, now=13.4)
    assert clock.frame(13.9) == 32  # from frame 2.0 at double speed


def test_the_clock_stops_at_the_end_without_loop_and_seeks():
    clock = PlaybackClock(num_frames=10, fps=10.0, loop=False)
    clock.play(now=0.0)
    assert clock.frame(5.0) == 9 and not clock.playing
    clock.play(now=6.0)  # from the start again
    assert clock.frame(6.25) == 2
    clock.pause(now=6.25)
    clock.seek(7, now=100.0)
    assert clock.frame(200.0) == 7
    with pytest.raises(ValueError):
        clock.set_speed(0.0, now=0.0)


def test_workspace_of_a_photo_is_stable_and_named_after_it(tmp_path):
    photo = tmp_path / "My Photo (1).png"
    photo.write_bytes(b"pixels")
    first = ws.workspace_for_photo(photo, tmp_path / "root")
    assert first == ws.workspace_for_photo(photo, tmp_path / "root")
    assert first.parent == tmp_path / "root" and first.name.startswith("My_Photo_1-")
    other = tmp_path / "b" / "My Photo (1).png"
    other.parent.mkdir()
    other.write_bytes(b"other pixels")
    assert ws.workspace_for_photo(other, tmp_path / "root") != first


def test_dropped_paths_are_classified(tmp_path):
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "m.npz").write_bytes(b"")
    (tmp_path / "x.txt").write_text("")
    (tmp_path / "b.zip").write_bytes(b"")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0001.json").write_text("{}")
    (tmp_path / "ws" / "subject").mkdir(parents=True)
    (tmp_path / "ws" / "subject" / "subject.json").write_text("{}")
    names = ("a.JPG", "m.npz", "x.txt", "b.zip", "frames", "ws")
    kinds = {name: ws.classify_drop(tmp_path / name) for name in names}
    assert kinds == {"a.JPG": "photo", "m.npz": "motion", "x.txt": "unknown", "b.zip": "bundle", "frames": "motion",
                     "ws": "workspace"}
    assert ws.new_workspace_for_bundle(tmp_path / "ws.zip", tmp_path) == tmp_path / "ws-2"


def test_recent_workspaces_keep_the_newest_first_without_duplicates(tmp_path):
    recent: list[str] = []
    for name in ["a", "b", "a"] + [f"f{i}" for i in range(12)]:
        recent = ws.remember(recent, tmp_path / name)
    assert len(recent) == ws.MAX_RECENT and recent[0].endswith("f11")
    assert len(set(recent)) == len(recent)


def test_stage_job_reports_progress_result_and_cancel():
    posted: list = []
    results: dict = {}

    def work(progress, cancelled):
        for i in range(1, 4):
            progress(i / 3, f"step {i}")
            time.sleep(0.02)
        return "done"

    job = StageJob("demo", work, posted.append, on_progress=lambda f, m, e: results.setdefault("progress", []).append(f),
                   on_done=lambda r: results.update(result=r), on_error=lambda m, c: results.update(error=(m, c)))
    job.start().join(10)
    for callback in posted:
        callback()
    assert results["result"] == "done" and results["progress"][-1] == pytest.approx(1.0)

    gate = threading.Event()

    def cancellable(progress, cancelled):
        gate.wait(5)
        if cancelled():
            raise InterruptedError("stopped")
        return "not cancelled"

    posted.clear()
    job = StageJob("demo", cancellable, posted.append, on_progress=lambda *a: None,
                   on_done=lambda r: results.update(late=r), on_error=lambda m, c: results.update(error=(m, c)))
    job.start()
    job.cancel()
    gate.set()
    job.join(10)
    for callback in posted:
        callback()
    assert results["error"] == ("demo cancelled", True) and "late" not in results


def test_eta():
    assert eta_seconds(0.0, 10.0) is None
    assert eta_seconds(0.25, 10.0) == pytest.approx(30.0)


def test_the_avatar_poser_shows_the_body_model_skeleton(open_body_model):
    """The skeleton the viewport draws is the one the avatar posed with (one forward kinematics), and it
    is the body model's own."""
    motion = read_motion(preset_motion_paths()["wave"])
    params = motion.smplx_kwargs(slice(0, 3))
    avatar = Avatar.from_body_model(open_body_model, np.zeros(10, np.float32),
                                    lambda interp, vertices: np.full((len(vertices), 3), 0.5, np.float32),
                                    AvatarConfig(level=0, triplane_resolution=8, mlp_width=8), {})
    with torch.no_grad():
        expected = open_body_model.joints(open_body_model.forward(**params)).numpy()
    got = AvatarPoser(avatar).pose({k: v for k, v in params.items() if k != "betas"}).joints
    assert got.shape == (3, 55, 3) and np.abs(got - expected).max() < 1e-4


@needs_cuda
def test_the_avatar_poser_poses_on_the_gpu_as_on_the_cpu(deforming_avatar):
    """The player's posing on the Settings' device: the same frames as the CPU's, as numpy for the viewer."""
    params = read_motion(preset_motion_paths()["wave"]).pose_kwargs(slice(0, 4))
    cpu, gpu = AvatarPoser(deforming_avatar), AvatarPoser(deforming_avatar, "cuda")
    assert gpu.avatar.template.is_cuda and not deforming_avatar.template.is_cuda  # the caller's stays put
    a, b = cpu.pose(params), gpu.pose(params)
    for name in ("means", "normals", "joints"):
        assert np.abs(getattr(a, name) - getattr(b, name)).max() < 1e-4, name
    for name, value in cpu.arrays().items():
        np.testing.assert_allclose(gpu.arrays()[name], value, atol=1e-6, err_msg=name)


def test_pose_cache_fills_from_the_playhead_and_matches_direct_posing(open_body_model):
    poser = BodyPoser(open_body_model, level=0)
    motion = read_motion(preset_motion_paths()["wave"])
    short = Motion(motion.poses[:12], motion.trans[:12], motion.fps)
    cache = PoseCache(poser, short, short.smplx_kwargs, batch=4)
    cache.set_playhead(6)
    assert list(cache.next_batch()) == [6, 7, 8, 9]
    progress = []
    cache._on_progress = lambda done, total: progress.append(done)
    cache.start()
    cache.join(120)
    assert cache.complete and cache.error is None
    assert progress[0] == 4 and progress[-1] == 12
    direct = poser.pose(short.smplx_kwargs(slice(10, 11)))
    means, normals, joints = cache.frame(10)
    np.testing.assert_allclose(means, direct.means[0], atol=1e-5)
    np.testing.assert_allclose(joints, direct.joints[0], atol=1e-5)
    assert np.abs(normals.astype(np.float32) - direct.normals[0]).max() < 2e-3  # float16 storage
    assert cache.nearest_ready(11) == 11


def test_rest_body_poser_is_shaded_grey_and_part_coloured(open_body_model):
    poser = BodyPoser(open_body_model, level=0)
    arrays = poser.arrays()
    posed = poser.pose(rest_pose())
    assert posed.means.shape == (1, poser.count, 3) and posed.joints.shape == (1, 55, 3)
    assert arrays["colors"].std() > 0.02  # light baked in, not one flat grey
    assert len(np.unique(arrays["part_colors"], axis=0)) >= 10
