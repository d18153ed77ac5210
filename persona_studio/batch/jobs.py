"""One photo's work in a batch: its workspace, the stages it still needs, and running one of them.

A stage counts as done when its output exists and is at least as new as the output of the stage before
it (fit -> generate -> train -> export): a batch run again does no work, and deleting one workspace's
avatar re-trains that avatar and re-exports it, nothing else. Each stage writes its progress to the
workspace's ``batch_status.json`` (atomically, about once a second): the driver's live display reads it,
whether the stage runs in a local process or on another node that shares the folder.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from persona_studio.fileio import os_error_line, read_json_object, write_json_atomic
from persona_studio.workspace.folders import bundle_folder, exports_folder
from persona_studio.workspace.training_set import TRAINING_DIR

STAGES = ("fit", "generate", "train", "export")
EXPORT_KINDS = {"gltf": "avatar_rigged.glb", "ply": "avatar_canonical.ply"}
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
STATUS_FILE = "batch_status.json"
PREVIEW_FILE = "batch_preview.png"  # in the workspace's exports/: the avatar in the photo's view
PREVIEW_SIDE = 256
STATUS_EVERY_S = 1.0


@dataclass(frozen=True)
class BatchOptions:
    """What every photo of a batch runs: the stages, their settings, the torch threads of each worker."""
    stages: tuple[str, ...] = STAGES
    preset: str = "preview"
    iterations: int | None = None  # overrides the preset's
    resolution: int | None = None  # overrides the preset's
    checkpoint_every: int | None = None  # training steps between checkpoints (default: the preset's)
    frames: int | None = None  # generated frames (default: the generator's)
    size: tuple[int, int] = (576, 1024)  # generated frames' width, height
    level: int | None = None  # the re-poser's template level (default: the preset's avatar's)
    export: str = "gltf"  # gltf (rigged, animated GLB) or ply (canonical 3DGS PLY)
    threads: int | None = None  # torch threads per worker (default: torch's)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"--stages {','.join(self.stages)}: choose from {','.join(STAGES)}")
        object.__setattr__(self, "stages", tuple(s for s in STAGES if s in self.stages))
        if self.export not in EXPORT_KINDS:
            raise ValueError(f"--export {self.export}: choose {' or '.join(EXPORT_KINDS)}")
        from persona_studio.train.settings import TrainSettings

        TrainSettings.from_preset(self.preset)  # an unknown preset is refused before any work starts


@dataclass(frozen=True)
class PhotoJob:
    """One photo and the workspace the batch makes from it."""
    photo: Path
    workspace: Path

    @property
    def name(self) -> str:
        return self.workspace.name


@dataclass
class StageRecord:
    """How one stage of one photo went."""
    stage: str
    status: str  # done, skipped (already done), failed
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    error: str = ""


def collect_photos(photos: list[Path], from_dir: Path | None) -> list[Path]:
    """The photos named, then those in ``from_dir`` (by suffix, sorted); refuses an empty batch."""
    found = list(photos)
    if from_dir is not None:
        if not from_dir.is_dir():
            raise ValueError(f"--from-dir {from_dir}: not a folder")
        found += sorted(p for p in from_dir.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not found:
        raise ValueError("no photos: name them, or give --from-dir a folder of PNG/JPEG/WebP/BMP/TIFF files")
    return found


def plan_jobs(photos: list[Path], out_dir: Path) -> list[PhotoJob]:
    """One workspace per photo under ``out_dir``, named by the photo's stem (made unique)."""
    jobs, used = [], set()
    for photo in photos:
        name, n = photo.stem, 2
        while name in used:
            name, n = f"{photo.stem}_{n}", n + 1
        used.add(name)
        jobs.append(PhotoJob(photo.resolve(), (out_dir / name).resolve()))
    return jobs


def stage_output(workspace: Path, stage: str, options: BatchOptions) -> Path:
    """The file whose presence (and age) says that ``stage`` has run in ``workspace``."""
    return {"fit": workspace / "subject" / "subject.json",
            "generate": workspace / TRAINING_DIR / "manifest.json",
            "train": bundle_folder(workspace) / "avatar.json",
            "export": exports_folder(workspace) / EXPORT_KINDS[options.export]}[stage]


def pending_stages(job: PhotoJob, options: BatchOptions) -> list[str]:
    """The chosen stages this photo still needs, in order; ValueError when one needs a stage that has not
    run and is not chosen."""
    pending, previous, stale = [], None, False
    for i, stage in enumerate(STAGES):
        output = stage_output(job.workspace, stage, options)
        made = output.stat().st_mtime if output.is_file() else None
        stale = stale or made is None or (previous is not None and made < previous)
        if stale and stage in options.stages:
            pending.append(stage)
        elif stale and any(later in options.stages for later in STAGES[i + 1:]):
            raise ValueError(f"{job.name}: the {stage} stage has not run (or is older than what it uses): "
                             f"add {stage} to --stages")
        previous = made
    return pending


class StatusWriter:
    """Writes a stage's progress to the workspace's status file, at most about once a second."""

    def __init__(self, job: PhotoJob, stage: str):
        self.path = job.workspace / STATUS_FILE
        self.base = {"photo": str(job.photo), "stage": stage, "pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.time()}
        self.last = 0.0

    def __call__(self, fraction: float, message: str, force: bool = False) -> None:
        now = time.time()
        if force or now - self.last >= STATUS_EVERY_S:
            self.last = now
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, {**self.base, "fraction": float(fraction), "message": message,
                                          "updated": now})


def read_status(job: PhotoJob) -> dict | None:
    """The workspace's last status, or None (not started, or being replaced this instant)."""
    try:
        return read_json_object(job.workspace / STATUS_FILE, "")
    except (OSError, ValueError):
        return None


def error_line(exc: BaseException) -> str:
    """One line a person can act on, as the CLI prints it."""
    from persona_studio.body.model import BodyModelError

    if isinstance(exc, (BodyModelError, ValueError, FileExistsError)):
        return str(exc)
    if isinstance(exc, OSError):
        return os_error_line(exc)
    return f"internal error ({type(exc).__name__}: {exc})"


@functools.lru_cache(maxsize=1)
def _body_model():
    from persona_studio.body.model import load_body_model
    from persona_studio.settings import Settings

    return load_body_model(official_path=Settings.load().official_smplx_path())


def run_stage(job: PhotoJob, stage: str, options: BatchOptions) -> StageRecord:
    """Run one stage of one photo in this process; a failure is returned as a record, never raised."""
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    status = StatusWriter(job, stage)
    status(0.0, "starting", force=True)
    t0 = time.time()
    try:
        figures = _STAGE_RUNNERS[stage](job, options, status)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one photo's failure is its own: reported, never raised into the batch
        status(0.0, f"failed: {error_line(exc)}", force=True)
        return StageRecord(stage, "failed", round(time.time() - t0, 1), error=error_line(exc))
    status(1.0, "done", force=True)
    return StageRecord(stage, "done", round(time.time() - t0, 1), figures)


def _fit(job: PhotoJob, options: BatchOptions, status: Callable) -> dict:
    from persona_studio.capture.pipeline import fit_photo

    job.workspace.parent.mkdir(parents=True, exist_ok=True)
    subject, _ = fit_photo(job.photo, job.workspace, model=_body_model(), progress=status)
    m = subject.metrics
    return {"keypoint_error_pct_height": round(m["keypoint_error_pct_height"], 2),
            "mask_covered_pct": round(m["mask_covered_pct"], 1)}


def _generate(job: PhotoJob, options: BatchOptions, status: Callable) -> dict:
    from persona_studio.capture.detect import segment_person
    from persona_studio.generate.stage import GenerateOptions, ModelFiles, generate_training_set
    from persona_studio.settings import Settings
    from persona_studio.train.settings import TrainSettings
    from persona_studio.workspace.training_set import TrainingSet

    level = options.level if options.level is not None else TrainSettings.from_preset(options.preset).template_level
    generate_training_set(job.workspace, GenerateOptions(frames=options.frames, size=options.size, level=level),
                          files=ModelFiles(**Settings.load().model_files()), segment=segment_person,
                          model=_body_model(), progress=status)
    return {"generated_frames": TrainingSet(job.workspace).num_generated}


def _train(job: PhotoJob, options: BatchOptions, status: Callable) -> dict:
    from persona_studio.train.trainer import Trainer, TrainSettings, earlier_training

    settings = TrainSettings.from_preset(options.preset, iterations=options.iterations, resolution=options.resolution,
                                         checkpoint_every=options.checkpoint_every, preview_every=0)
    resumed = {}

    def on_event(event: dict) -> None:
        if event["type"] == "progress":
            status(event["step"] / event["iterations"], f"step {event['step']}/{event['iterations']}")
        elif event["type"] == "resumed":
            resumed.setdefault("resumed_from_step", event["step"])

    # Earlier work this run cannot resume (a training set generated again) is set aside, never lost.
    restart = earlier_training(job.workspace, settings) is not None
    figures = Trainer(job.workspace, settings, model=_body_model(), on_event=on_event, restart=restart).run()
    out = {"steps": figures["step"], "photo_psnr": round(figures["photo_psnr"], 2), **resumed}
    if "held_out_mask_iou" in figures:
        out["held_out_mask_iou"] = round(figures["held_out_mask_iou"], 3)
    return out


def _export(job: PhotoJob, options: BatchOptions, status: Callable) -> dict:
    from persona_studio.avatar.bundle import load_avatar

    avatar, _ = load_avatar(bundle_folder(job.workspace))
    target = stage_output(job.workspace, "export", options)
    if options.export == "gltf":
        from persona_studio.body.motion import preset_motion_paths, read_motion
        from persona_studio.export.gltf import export_gltf

        motions = {name: read_motion(path) for name, path in preset_motion_paths().items()}
        _, gltf = export_gltf(avatar, target, motions, overwrite=True, progress=status)
        figures = {"pose_targets": gltf.pose_targets, "error_p99_mm": round(gltf.total_error.p99_mm, 2)}
    else:
        from persona_studio.export.ply import export_ply

        export_ply(avatar, target, overwrite=True)
        figures = {}
    _write_preview(job, avatar)
    return {**figures, "file": str(target.relative_to(job.workspace)), "mib": round(target.stat().st_size / 2**20, 1)}


def _write_preview(job: PhotoJob, avatar) -> None:
    """The avatar in the photo's pose from the photo's camera, for the batch's contact sheet."""
    import numpy as np
    import torch
    from PIL import Image

    from persona_studio.body.model import smplx_tensors
    from persona_studio.fileio import atomic_path
    from persona_studio.render.rasterize import rasterize_cameras
    from persona_studio.workspace.subject import Subject

    subject = Subject.load(job.workspace)
    camera = subject.camera.with_longer_side(PREVIEW_SIDE)
    with torch.no_grad():
        posed = avatar.pose(smplx_tensors(subject.smplx), fast=True)
        out = rasterize_cameras([camera], posed.means[0], posed.scales, posed.opacities, posed.colors,
                                background=torch.ones(3), antialiased=True)
    image = (out.features[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_path(exports_folder(job.workspace) / PREVIEW_FILE) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


_STAGE_RUNNERS: dict[str, Callable[[PhotoJob, BatchOptions, Callable], dict]] = {
    "fit": _fit, "generate": _generate, "train": _train, "export": _export}
