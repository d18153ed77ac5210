"""The headless command line: real subprocesses over real files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from persona_studio.body.motion import preset_motion_paths, read_motion

from conftest import shared_path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "persona_studio", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("command", ["body", "motion", "fit", "generate", "train", "animate", "export", "bench"])
def test_every_command_has_help(command):
    result = cli(command, "--help")
    assert result.returncode == 0 and "usage: persona-studio" in result.stdout


def test_body_info(open_body_model):
    result = cli("body", "info", "--kind", "open")
    assert result.returncode == 0, result.stderr
    assert "vertices: 13492" in result.stdout and "joints: 55" in result.stdout and "anny" in result.stdout


def test_motion_info_and_convert_real_file(tmp_path):
    src = shared_path("motions", "humangaussian_amass_test_17.npz")
    info = cli("motion", "info", str(src))
    assert info.returncode == 0, info.stderr
    assert "136" in info.stdout and "30" in info.stdout
    out = tmp_path / "converted.npz"
    conv = cli("motion", "convert", str(src), str(out), "--fps", "25")
    assert conv.returncode == 0, conv.stderr
    motion = read_motion(out)
    assert motion.fps == 25 and motion.num_frames == round(136 * 25 / 30)
    again = cli("motion", "convert", str(src), str(out))
    assert again.returncode == 1 and "--overwrite" in again.stderr  # no silent overwrite


def test_motion_convert_to_json_folder_round_trips(tmp_path):
    src = preset_motion_paths()["wave"]
    folder = tmp_path / "wave_json"
    assert cli("motion", "convert", str(src), str(folder)).returncode == 0
    a, b = read_motion(src), read_motion(folder)
    np.testing.assert_allclose(a.poses, b.poses, atol=1e-6)
    np.testing.assert_allclose(a.trans, b.trans, atol=1e-6)


def test_bad_motion_file_gives_one_clear_line(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    result = cli("motion", "info", str(bad))
    assert result.returncode == 1
    assert "something" in result.stderr and "Traceback" not in result.stderr


def test_bench_finds_the_benchmarks_beside_the_package():
    result = cli("bench", "no_such_benchmark")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "novel_views" in result.stderr and "train_preview" in result.stderr, result.stderr


def test_bench_runs_a_benchmark_that_imports_its_neighbour(tmp_path):
    """colour_ceiling.py builds on novel_views.py, as `python benchmarks/colour_ceiling.py` finds it."""
    result = cli("bench", "colour_ceiling", "--workspace", str(tmp_path), "--views", str(tmp_path / "no_set"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "multi-view set not found" in result.stderr, result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_one_line_before_any_work(tmp_path):
    commands = (["train", "-w", str(tmp_path)], ["animate", "-w", str(tmp_path), "--motion", "wave", "-o", "x.mp4"],
                ["export", "ply", "-w", str(tmp_path)], ["export", "video", "-w", str(tmp_path), "--motion", "wave"])
    for command in commands:
        for device, says in (("cuda", "--device cpu"), ("gpu", "auto, cpu, cuda or cuda:N")):
            result = cli(*command, "--device", device)
            assert result.returncode == 1 and says in result.stderr, (command, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
