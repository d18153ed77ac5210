"""The `preview` training preset end to end on a real photo, on this machine, with the re-poser.

Prints the time and two figures of how well the avatar fits its own training data, each at step 0 and
after training: the masked PSNR on the training view itself (the photo, after the per-frame pose
correction learnt on it) and the mask IoU on held-out generated frames. Neither sees a wrong side or
back: ``benchmarks/novel_views.py`` scores those against real views. Rows: the preset as shipped, each
ablation switch (balanced sampling off, geometry weighting off, pose-driven deformation off), and the
paper's seam weight (0.1; the preset uses 1).
Goal on a 2-core CPU: <= 15 min, training-view PSNR >= 30 dB, held-out IoU >= 0.9.

    python benchmarks/train_preview.py [--photo ../shared/data/photos/moore_anyone-3.png] [--no-ablations]
                                       [--renders DIR]

With ``--renders`` the preset's avatar is also rendered to DIR: the photo's view beside the photo,
side and back views in the photo's pose, and a novel pose (a frame of the "dance" preset).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from persona_studio.body.model import load_body_model
from persona_studio.body.motion import preset_motion_paths, read_motion
from persona_studio.capture.pipeline import fit_photo
from persona_studio.generate.stage import GenerateOptions, generate_training_set
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import rasterize_cameras
from persona_studio.train.trainer import Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT.parent / "shared" / "data" / "photos" / "moore_anyone-3.png"
ABLATIONS = {
    "preview preset": {},
    "balanced sampling off": {"balanced_sampling": False},
    "geometry weighting off": {"geometry_weighting": False},
    "pose-driven deformation off": {"pose_deformation": False},
    "seam weight 0.1 (the paper's)": {"weights": {"seam": 0.1}},
}


def _view(trainer: Trainer, params: dict, yaw_deg: float, size: int = 512) -> np.ndarray:
    """[size, size, 3] uint8: the avatar in ``params`` seen from ``yaw_deg`` around its vertical axis."""
    with torch.no_grad():
        posed = trainer.avatar.pose(params, fast=True)
        means = posed.means[0]
        centre = ((means.min(0).values + means.max(0).values) / 2).numpy()
        extent = float((means.max(0).values - means.min(0).values).max())
        yaw = np.radians(yaw_deg)
        eye = centre + 2.6 * extent * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
        cam = Camera.look_at(eye, centre, fov_y_deg=25.0, width=size, height=size)
        out = rasterize_cameras([cam], means, posed.scales, posed.opacities, posed.colors,
                                background=torch.ones(3), antialiased=True)
    return (out.features[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def save_renders(trainer: Trainer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = trainer.frames[0]
    Image.fromarray(np.concatenate([trainer.preview(0), (photo.rgb.numpy() * 255).astype(np.uint8)], 1)).save(
        folder / "photo_view.png")
    params = trainer.frame_params(0)
    for name, yaw in (("front", 0.0), ("side", 90.0), ("back", 180.0)):
        Image.fromarray(_view(trainer, params, yaw)).save(folder / f"{name}.png")
    dance = read_motion(preset_motion_paths()["dance"])
    novel = dance.pose_kwargs(slice(dance.num_frames // 3, dance.num_frames // 3 + 1))
    novel["transl"] = torch.zeros_like(novel["transl"])
    Image.fromarray(np.concatenate([_view(trainer, novel, yaw) for yaw in (0.0, 45.0)], 1)).save(folder / "novel_pose.png")
    print(f"renders written to {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=60, help="re-poser frames to generate")
    parser.add_argument("--iterations", type=int, help="override the preset's step count")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--renders", type=Path, help="write the preset's renders (photo view, side, back, novel pose) here")
    args = parser.parse_args()
    if not args.photo.is_file():
        raise SystemExit(f"photo not found: {args.photo} (the shared data folder sits beside the checkout)")
    print(f"torch threads: {torch.get_num_threads()}")
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="persona-bench-"))
    model = load_body_model("open")
    t0 = time.time()
    subject, _ = fit_photo(args.photo, workspace, model=model)
    print(f"fit: {time.time() - t0:.1f} s, keypoint error {subject.metrics['keypoint_error_pct_height']:.2f} % of height")
    t0 = time.time()
    generate_training_set(workspace, GenerateOptions(frames=args.frames, size=(288, 512)), model=model)
    print(f"generate: {args.frames} re-poser frames at 288x512 in {time.time() - t0:.1f} s")
    runs = {"preview preset": {}} if args.no_ablations else ABLATIONS
    print(f"{'run':30s} {'minutes':>8s} {'s/step':>7s} {'training-view PSNR dB':>22s} {'held-out mask IoU':>18s}"
          "   (step 0 -> trained)")
    for name, switches in runs.items():
        settings = TrainSettings.from_preset("preview", iterations=args.iterations, checkpoint_every=0, preview_every=0)
        for key, value in switches.items():
            setattr(settings, key, replace(settings.weights, **value) if key == "weights" else value)
        (workspace / "avatar" / "checkpoint.safetensors").unlink(missing_ok=True)
        trainer = Trainer(workspace, settings, model=model)
        trainer.prepare()
        start = trainer.evaluate()
        t0 = time.time()
        figures = trainer.run()
        minutes = (time.time() - t0) / 60
        iou = lambda f: f.get("held_out_mask_iou", float("nan"))  # noqa: E731
        print(f"{name:30s} {minutes:8.1f} {60 * minutes / max(figures['step'], 1):7.2f} "
              f"{start['photo_psnr']:9.2f} -> {figures['photo_psnr']:6.2f}   {iou(start):7.3f} -> {iou(figures):6.3f}",
              flush=True)
        if args.renders and not switches:
            save_renders(trainer, args.renders)


if __name__ == "__main__":
    main()
