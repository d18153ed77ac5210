"""The `preview` training preset end to end on a real photo, on this machine, with the re-poser.

Prints the time and the figures (masked PSNR on the photo's view, mask IoU on held-out generated
frames) for the full method and for each ablation switch (balanced sampling off, geometry weighting
off, pose-driven deformation off). Goal on a 2-core CPU: <= 15 min, PSNR >= 30 dB, IoU >= 0.9.

    python benchmarks/train_preview.py [--photo ../shared/data/photos/moore_anyone-3.png] [--no-ablations]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from persona_studio.body.model import load_body_model
from persona_studio.capture.pipeline import fit_photo
from persona_studio.generate.stage import GenerateOptions, generate_training_set
from persona_studio.train.trainer import Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT.parent / "shared" / "data" / "photos" / "moore_anyone-3.png"
ABLATIONS = {
    "full method": {},
    "balanced sampling off": {"balanced_sampling": False},
    "geometry weighting off": {"geometry_weighting": False},
    "pose-driven deformation off": {"pose_deformation": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=60, help="re-poser frames to generate")
    parser.add_argument("--iterations", type=int, help="override the preset's step count")
    parser.add_argument("--no-ablations", action="store_true")
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
    runs = {"full method": {}} if args.no_ablations else ABLATIONS
    print(f"{'run':30s} {'minutes':>8s} {'photo PSNR dB':>14s} {'held-out IoU':>13s}")
    for name, switches in runs.items():
        settings = TrainSettings.from_preset("preview", iterations=args.iterations, checkpoint_every=0, preview_every=0)
        for key, value in switches.items():
            setattr(settings, key, value)
        (workspace / "avatar" / "checkpoint.safetensors").unlink(missing_ok=True)
        trainer = Trainer(workspace, settings, model=model)
        t0 = time.time()
        figures = trainer.run()
        minutes = (time.time() - t0) / 60
        print(f"{name:30s} {minutes:8.1f} {figures['photo_psnr']:14.2f} {figures.get('held_out_mask_iou', float('nan')):13.3f}",
              flush=True)


if __name__ == "__main__":
    main()
