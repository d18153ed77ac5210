"""A built wheel, installed outside the checkout, carries everything the program reads at run time."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

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
    for folder, pattern in (("shaders", "*.*"), ("presets/training", "*.json"), ("presets/motions", "*.npz")):
        for source in (ROOT / folder).glob(pattern):
            assert f"persona_studio/data/{folder}/{source.name}" in names, source
    assert "persona_studio/data/resources/sample_person.png" in names
    assert not any(name.endswith("make_presets.py") or "benchmarks/" in name for name in names)


def test_the_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    import json

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # the heavy dependencies come from here
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300,
                   capture_output=True)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", PROBE], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    site = str(env_dir.resolve())
    assert found["package"].startswith(site), f"imported the checkout, not the wheel: {found['package']}"
    assert all(folder.startswith(site) for folder in found["folders"]), found["folders"]
    assert found["presets"] == sorted(p.stem for p in (ROOT / "presets" / "training").glob("*.json"))
    assert found["preview_steps"] > 0
    assert set(found["motions"]) >= {"wave", "dance"} and all(n > 0 for n in found["motions"].values())
    assert found["sample_photo"][0] > 0 and "splat_common.glsl" in found["shaders"]
    bench = subprocess.run([str(env_dir / "bin" / "persona-studio"), "bench", "novel_views"], cwd=away, env=env,
                           capture_output=True, text=True, timeout=300)
    assert bench.returncode == 1 and "Traceback" not in bench.stderr
    assert "come with a checkout" in bench.stderr, bench.stderr
