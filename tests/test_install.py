"""A built wheel, installed outside the checkout, carries everything the program reads at run time and runs
every stage from a fresh start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run in the installed program, from a folder outside the checkout: every run-time file it needs.
PROBE = r"""
import json, sys
import persona_studio
from persona_studio.paths import project_folder
from persona_studio.train.settings import PRESETS_DIR, TrainSettings
from persona_studio.body.motion import preset_motion_paths, read_motion
from persona_studio.app.workspace import SAMPLE_PHOTO
from PIL import Image
shaders = project_folder("shaders")
print(json.dumps({
    "package": persona_studio.__file__,
    "folders": [str(project_folder(n)) for n in ("shaders", "presets", "resources")],
    "preview_steps": TrainSettings.from_preset("preview").iterations,
    "presets": sorted(p.stem for p in PRESETS_DIR.glob("*.json")),
    "motions": {name: read_motion(p).num_frames for name, p in preset_motion_paths().items()},
    "sample_photo": list(Image.open(SAMPLE_PHOTO).size),
    "shaders": sorted(p.name for p in shaders.iterdir()),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")  # built with this environment's setuptools (the test extra's)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, timeout=300, capture_output=True)
    (built,) = out.glob("persona_studio-*.whl")
    return built


def test_the_wheel_holds_the_shaders_presets_and_sample_photo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("shaders", "*.*"), ("presets/training", "*.json"), ("presets/motions", "*.npz"),
                            ("presets/bvh", "*.json")):
        for source in (ROOT / folder).glob(pattern):
            assert f"persona_studio/data/{folder}/{source.name}" in names, source
    assert "persona_studio/data/resources/sample_person.png" in names
    assert "persona_studio/data/resources/body/open_smplx_v3.npz" in names  # the open body model, ready at first start
    assert {"persona_studio/data/resources/web_player/index.html", "persona_studio/data/resources/web_player/player.js"} <= names
    assert not any(name.endswith("make_presets.py") or "benchmarks/" in name for name in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """The wheel installed into a fresh venv (the heavy dependencies seen from this environment, so pip
    checks the wheel's requirements without downloading them), with an empty cache and config, run from a
    folder outside the checkout."""
    root = tmp_path_factory.mktemp("installed")
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=600)
    assert pip.returncode == 0, pip.stderr
    away = root / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PERSONA_STUDIO_CACHE=str(root / "cache"), PERSONA_STUDIO_CONFIG=str(root / "config"))
    return {"venv": env_dir, "python": python, "bin": env_dir / "bin", "cwd": away, "env": env}


def run_installed(installed: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["bin"] / "persona-studio"), *args], cwd=installed["cwd"],
                          env=installed["env"], capture_output=True, text=True, timeout=timeout)


def test_the_installed_wheel_runs_outside_the_checkout(installed):
    import json

    probe = subprocess.run([str(installed["python"]), "-c", PROBE], cwd=installed["cwd"], env=installed["env"],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    site = str(installed["venv"].resolve())
    assert found["package"].startswith(site), f"imported the checkout, not the wheel: {found['package']}"
    assert all(folder.startswith(site) for folder in found["folders"]), found["folders"]
    assert found["presets"] == sorted(p.stem for p in (ROOT / "presets" / "training").glob("*.json"))
    assert found["preview_steps"] > 0
    assert set(found["motions"]) >= {"wave", "dance"} and all(n > 0 for n in found["motions"].values())
    assert found["sample_photo"][0] > 0 and "splat_common.glsl" in found["shaders"]
    bench = run_installed(installed, "bench", "novel_views", timeout=300)
    assert bench.returncode == 1 and "Traceback" not in bench.stderr
    assert "come with a checkout" in bench.stderr, bench.stderr


def test_the_installed_program_goes_from_the_sample_photo_to_an_export_and_opens_its_window(installed, display):
    """What CI asks of a wheel: first-start body model (empty cache), fit, a 20-step train at the smallest
    settings, a PLY export, and the app under X drawing the avatar in its viewport (and still running 2 s later)."""
    from plyfile import PlyData

    from persona_studio.app.window import SIDE_WIDTH, STATUS_HEIGHT, TIMELINE_HEIGHT

    started = time.monotonic()
    info = run_installed(installed, "body", "info")
    print(f"first body info on an empty cache: {time.monotonic() - started:.1f} s")
    assert info.returncode == 0, info.stderr
    assert "shipped with the program" in info.stdout and "site-packages" in info.stdout, info.stdout
    sample = subprocess.run([str(installed["python"]), "-c", "from persona_studio.app.workspace import SAMPLE_PHOTO; "
                             "print(SAMPLE_PHOTO)"], cwd=installed["cwd"], env=installed["env"], capture_output=True,
                            text=True, timeout=120).stdout.strip()
    ws = installed["cwd"] / "ws"
    for args in (("fit", sample, "-w", str(ws)),
                 ("generate", "-w", str(ws), "--motions", "wave", "--frames", "4", "--size", "72", "128", "--level", "0"),
                 ("train", "-w", str(ws), "--iterations", "20", "--resolution", "96", "--checkpoint-every", "0"),
                 ("export", "ply", "-w", str(ws), "-o", str(installed["cwd"] / "avatar.ply"))):
        done = run_installed(installed, *args)
        assert done.returncode == 0, f"{args[0]}: {done.stderr[-2000:]}"
    assert len(PlyData.read(str(installed["cwd"] / "avatar.ply"))["vertex"]) > 10_000

    log = installed["cwd"] / "app.log"  # a file, not a pipe: a pipe nobody reads would block the app once full
    with log.open("w") as out:
        app = subprocess.Popen([str(installed["bin"] / "persona-studio-app"), str(ws)], cwd=installed["cwd"],
                               env={**installed["env"], "DISPLAY": display}, stdout=out, stderr=subprocess.STDOUT)
    opened, drawn_share = time.monotonic(), 0.0
    try:
        # The window shows the avatar once the body model and the workspace are loaded: seconds here, more on
        # a slower machine. Look once a second and stop at the first frame with an avatar on it.
        while time.monotonic() - opened < 120:
            time.sleep(1)
            assert app.poll() is None, f"the app exited: {log.read_text()[-2000:]}"
            try:
                view = viewport_pixels(app.pid, SIDE_WIDTH, STATUS_HEIGHT + TIMELINE_HEIGHT)
            except LookupError:
                continue  # the window is not mapped yet
            background = np.median(view.reshape(-1, 3), axis=0)
            drawn = np.abs(view.astype(float) - background).max(axis=-1) > 24  # [H, W] pixels unlike the backdrop
            drawn_share = float(drawn.mean())
            if drawn_share > 0.01:
                break
        print(f"the installed app showed the avatar {time.monotonic() - opened:.1f} s after it started")
        time.sleep(2)
        assert app.poll() is None, f"the app exited after drawing: {log.read_text()[-2000:]}"
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert drawn_share > 0.01, f"the viewport stayed empty for 120 s ({drawn_share:.4f} of it drawn); " \
                               f"the app said: {log.read_text()[-2000:]}"
    assert len(np.unique(view[drawn].reshape(-1, 3), axis=0)) > 200  # an avatar's shades, not a frame line


def viewport_pixels(pid: int, side_width: int, bottom: int) -> np.ndarray:
    """[H, W, 3] uint8 of the viewport area (right of the side panel, above the timeline and status bar)
    of process ``pid``'s PERSONA Studio window, read from the X server as the screen shows it."""
    from Xlib import X, display

    d = display.Display()
    try:
        owner = d.intern_atom("_NET_WM_PID")

        def find(window):
            name, owned = window.get_wm_name(), window.get_full_property(owner, X.AnyPropertyType)
            if name and str(name).startswith("PERSONA Studio") and owned and int(owned.value[0]) == pid:
                return window
            return next(filter(None, (find(child) for child in window.query_tree().children)), None)

        window = find(d.screen().root)
        if window is None:
            raise LookupError(f"no PERSONA Studio window of process {pid} on the display")
        geometry = window.get_geometry()
        x0, y0, w, h = side_width + 24, 48, geometry.width - side_width - 48, geometry.height - bottom - 96
        raw = window.get_image(x0, y0, w, h, X.ZPixmap, 0xFFFFFFFF)
        pixels = np.frombuffer(raw.data, dtype=np.uint8).reshape(h, w, 4)
        return pixels[..., 2::-1].copy()  # BGRX -> RGB
    finally:
        d.close()
