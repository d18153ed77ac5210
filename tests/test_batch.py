"""``persona-studio batch`` on real photos at the smallest settings: a local pool (the command itself)
and a local Ray instance with a worker killed mid-training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from persona_studio.batch.jobs import BatchOptions, pending_stages, plan_jobs, read_status
from persona_studio.batch.local import default_workers
from persona_studio.batch.report import LiveDisplay
from persona_studio.workspace.folders import avatar_folder, bundle_folder, checkpoint_file

from conftest import shared_path

PHOTOS = ("pifu_ryota.png", "moore_anyone-3.png")
SMALL = ["--frames", "2", "--size", "144", "256", "--level", "0", "--resolution", "96", "--export", "ply"]


def _photos(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(shared_path("photos", name), folder / name)
    (folder / "broken.png").write_bytes(b"this is not a picture")
    return sorted(folder.iterdir())


def _batch(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    run = subprocess.run([sys.executable, "-m", "persona_studio", "batch", *args], capture_output=True, text=True,
                         timeout=1800)
    out = Path(args[args.index("-o") + 1])
    return run, json.loads((out / "report.json").read_text())


def _by_name(report: dict) -> dict[str, dict]:
    return {Path(p["workspace"]).name: p for p in report["photos"]}


def _statuses(photo: dict) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in photo["stages"]}


def test_a_batch_runs_each_photo_alone_and_resumes_without_redoing_work(tmp_path):
    photos = _photos(tmp_path)
    out = tmp_path / "out"
    args = ["--from-dir", str(photos[0].parent), "-o", str(out), "--iterations", "8", "--workers", "2", *SMALL]
    run, report = _batch(*args)
    assert run.returncode == 1, run.stderr  # one photo failed
    photos_by_name = _by_name(report)
    assert report["done"] == 2 and report["failed"] == 1, run.stdout
    broken = photos_by_name["broken"]
    assert broken["status"] == "failed" and "not an image" in broken["error"], broken
    for name in ("pifu_ryota", "moore_anyone-3"):
        assert _statuses(photos_by_name[name]) == dict.fromkeys(("fit", "generate", "train", "export"), "done")
        assert (out / name / "exports" / "avatar_canonical.ply").is_file()
    assert "broken" in run.stdout and "failed" in run.stdout  # the table
    sheet = (out / "contact_sheet.html").read_text()
    assert "pifu_ryota/subject/overlay.png" in sheet and "moore_anyone-3/exports/batch_preview.png" in sheet
    bundle_time = (bundle_folder(out / "pifu_ryota") / "avatar.json").stat().st_mtime

    # Again: nothing to do for the two that are done.
    run, report = _batch(*args)
    for name in ("pifu_ryota", "moore_anyone-3"):
        assert set(_statuses(_by_name(report)[name]).values()) == {"skipped"}, report
    assert (bundle_folder(out / "pifu_ryota") / "avatar.json").stat().st_mtime == bundle_time

    # One avatar deleted: only that photo trains (and exports) again.
    shutil.rmtree(avatar_folder(out / "moore_anyone-3"))
    run, report = _batch(*args)
    again = _by_name(report)
    assert _statuses(again["moore_anyone-3"]) == {"fit": "skipped", "generate": "skipped", "train": "done",
                                                  "export": "done"}
    assert set(_statuses(again["pifu_ryota"]).values()) == {"skipped"}


def test_pending_stages_follow_what_each_stage_used(tmp_path):
    job = plan_jobs([tmp_path / "a.png"], tmp_path / "out")[0]
    options = BatchOptions(export="ply")
    assert pending_stages(job, options) == ["fit", "generate", "train", "export"]
    with pytest.raises(ValueError, match="add fit to --stages"):
        pending_stages(job, BatchOptions(stages=("train",)))
    with pytest.raises(ValueError, match="--stages"):
        BatchOptions(stages=("fit", "paint"))
    assert [j.name for j in plan_jobs([Path("x/a.png"), Path("y/a.jpg")], tmp_path)] == ["a", "a_2"]


def test_default_workers_share_cores_and_memory():
    assert default_workers(cores=2, memory=24 * 2**30) == 1
    assert default_workers(cores=16, memory=24 * 2**30) == 6  # memory-bound: 4 GiB each
    assert default_workers(cores=16, memory=128 * 2**30) == 8
    assert default_workers(cores=1, memory=2**30) == 1


def test_a_ray_batch_survives_a_killed_worker_and_resumes_training(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'persona-studio[cluster]')")
    from persona_studio.batch.cluster import run_ray

    photos = [p for p in _photos(tmp_path) if p.stem != "broken"]
    out = tmp_path / "ray"
    jobs = plan_jobs(photos, out)
    options = BatchOptions(preset="preview", iterations=60, checkpoint_every=10, frames=2, size=(144, 256),
                           level=0, resolution=96, export="ply", threads=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results: list = []
        driver = threading.Thread(target=lambda: results.extend(run_ray(jobs, options, None, LiveDisplay(jobs))))
        driver.start()
        victim = jobs[0]
        killed = None
        deadline = time.time() + 900
        while killed is None and driver.is_alive() and time.time() < deadline:
            status = read_status(victim)
            if (status and status["stage"] == "train" and status["fraction"] >= 0.5
                    and checkpoint_file(victim.workspace).is_file()):
                os.kill(status["pid"], signal.SIGKILL)
                killed = status
            time.sleep(0.2)
        driver.join(timeout=900)
    finally:
        ray.shutdown()
    assert killed is not None, "training never reached the point to kill it"
    assert [r.status for r in results] == ["done", "done"], [(r.job.name, r.message) for r in results]
    train = next(s for s in results[0].stages if s.stage == "train")
    assert train.figures["steps"] == 60
    assert train.figures.get("resumed_from_step", 0) >= 10, train  # resumed from a checkpoint, not from scratch
    assert (bundle_folder(victim.workspace) / "avatar.json").is_file()
