"""What only a GPU can show, in one run: gsplat against the PyTorch reference, and the trainer's and the
player's speed on the chosen device.

Prints, on a CUDA machine (each figure beside its goal or its CPU baseline):
- parity of gsplat and the reference on a body-sized scene with the trainer's 13 channels: image PSNR
  (goal >= 40 dB) and the cosine of the gradients for means, scales and features (goal >= 0.99);
- one training step's time (median of ``--steps``) for the ``standard`` preset (level 1, 512 px) and the
  ``quality`` preset (level 2, 1024 px) on a copy of a prepared workspace (fit and training set made on
  the CPU: ``persona-studio fit`` and ``generate``), and the wall time the preset's whole run would take at
  that speed (goal for ``quality`` <= 5 min);
- one training step on the chosen device against the CPU on the same workspace (``standard``: gsplat
  against the reference), each loss term's relative difference (goal <= 1 %);
- posing one frame at level 2 (pose MLP + skinning, the player's path) in milliseconds;
- MimicMotion in fp16 on CUDA with tiny random weights in the release's layout (the tests' builder):
  frames per second of one 72-frame window at the model's 576x1024 (needs diffusers and transformers).
With ``--full`` it also trains the ``quality`` preset to the end, or for ``--full-minutes`` when that
comes first (then the steps done and the projected whole run), and prints its figures.
Each part reports its own failure and the rest still runs.

On a CPU the parity part says it is skipped and the rest runs on the CPU (a check of the script itself,
with ``--steps 2``):

    python benchmarks/gpu_check.py --workspace WS [--device auto|cpu|cuda[:N]] [--steps 20] [--full]

``benchmarks/gpu_check.sh`` is the one command for a bare CUDA machine (it installs the wheels it is
given and compiles gsplat first).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raster import body_scene, front_camera  # noqa: E402  (a sibling benchmark's scene)

from persona_studio.device import resolve_device  # noqa: E402
from persona_studio.render.camera import stack_cameras  # noqa: E402
from persona_studio.render.rasterize import auto_backend, rasterize  # noqa: E402
from persona_studio.train.trainer import Trainer, TrainSettings  # noqa: E402

FULL_RUN_MARGIN_S = 120  # the quality preset's step times, its run's preparation and its evaluation
TRAIN_CHANNELS = 13  # colour, seam colour, normal, part colour, hand: what the trainer renders


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render_with_grads(scene: dict[str, torch.Tensor], backend: str, size: int):
    """(image [H, W, C], gradients of a fixed loss per input) for one backend."""
    camera = front_camera(size)
    viewmats, Ks = stack_cameras([camera], device=scene["means"].device)
    params = {k: v.clone().requires_grad_() for k, v in scene.items()}
    out = rasterize(params["means"], params["scales"], params["opacities"], params["features"], viewmats, Ks,
                    size, size, antialiased=True, backend=backend)
    weights = torch.linspace(0.5, 1.5, out.features.shape[-1], device=out.features.device)
    (out.features * weights).square().sum().add(out.alpha.sum()).backward()
    return out.features[0].detach(), {k: p.grad for k, p in params.items()}


def parity(device: torch.device) -> None:
    if device.type != "cuda":
        print("gsplat parity: skipped (needs CUDA; gsplat cannot rasterise on the CPU)")
        return
    scene = {k: v.to(device) for k, v in body_scene(55_000, TRAIN_CHANNELS).items()}
    ref_image, ref_grads = render_with_grads(scene, "torch", 512)
    image, grads = render_with_grads(scene, "gsplat", 512)
    mse = (image - ref_image).square().mean().clamp_min(1e-12)
    print(f"gsplat vs reference, 55K Gaussians @ 512^2, C={TRAIN_CHANNELS}: image PSNR "
          f"{float(-10 * torch.log10(mse)):.1f} dB (goal >= 40)")
    for name in ("means", "scales", "features"):
        cos = torch.nn.functional.cosine_similarity(grads[name].flatten(), ref_grads[name].flatten(), dim=0)
        print(f"  gradient cosine, {name}: {float(cos):.4f} (goal >= 0.99)")


def step_times(workspace: Path, preset: str, device: torch.device, steps: int, full_minutes: float) -> None:
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        copy = Path(tmp) / "ws"
        shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns("avatar"))
        settings = TrainSettings.from_preset(preset)
        trainer = Trainer(copy, settings, restart=True, device=str(device))
        start = time.perf_counter()
        trainer.prepare()
        prepare_s = time.perf_counter() - start
        times = []
        for _ in range(steps + 1):  # the first step warms up (kernel compilation, caches)
            synchronize(device)
            t0 = time.perf_counter()
            trainer.train_step()
            synchronize(device)
            times.append(time.perf_counter() - t0)
        step_s = statistics.median(times[1:])
        print(f"{preset}: level {settings.template_level}, {settings.resolution} px, "
              f"{trainer.avatar.num_gaussians} Gaussians, {auto_backend(device)[0]} rasterizer on {device}: "
              f"{step_s * 1e3:.0f} ms/step (median of {steps}; first {times[0]:.1f} s), prepare {prepare_s:.1f} s; "
              f"{settings.iterations} steps ~ {settings.iterations * step_s / 60:.1f} min")
        if preset == "quality":
            avatar = trainer.avatar
            params = {k: v.detach() for k, v in trainer.frame_params(0).items()}
            pose_times = []
            for _ in range(21):
                synchronize(device)
                t0 = time.perf_counter()
                avatar.pose(params, fast=True)
                synchronize(device)
                pose_times.append(time.perf_counter() - t0)
            print(f"posing one frame at level 2 (MLP + skinning, the player's path): "
                  f"{statistics.median(pose_times[1:]) * 1e3:.1f} ms")
        if full_minutes:
            full_run(copy, settings, device, full_minutes)


def full_run(workspace: Path, settings: TrainSettings, device: torch.device, minutes: float) -> None:
    """Train the preset from the start to its end, or for ``minutes`` when that comes first."""
    trainer = Trainer(workspace, settings, restart=True, device=str(device))
    start = time.perf_counter()
    trainer.prepare()
    untrained = trainer.evaluate()
    prepared = time.perf_counter() - start
    timer = threading.Timer(max(minutes * 60 - prepared, 1.0), trainer.stop)
    timer.start()
    try:
        figures = trainer.run()  # figures["seconds"]: the steps, checkpoints and the final evaluation
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    done = figures["step"]
    ended = "to the end" if done >= settings.iterations else (
        f"stopped after {minutes:.1f} min at step {done}/{settings.iterations}; the whole run would take "
        f"~{(prepared + figures['seconds'] / max(done, 1) * settings.iterations) / 60:.1f} min")
    print(f"{settings.preset} run {ended}: {wall / 60:.1f} min from the prepared workspace (goal <= 5 for quality); "
          f"photo-view masked PSNR {figures['photo_psnr']:.2f} dB (step 0: {untrained['photo_psnr']:.2f}), "
          f"held-out mask IoU {figures.get('held_out_mask_iou', float('nan')):.3f} "
          f"(step 0: {untrained.get('held_out_mask_iou', float('nan')):.3f})")


def step_parity(workspace: Path, device: torch.device, preset: str = "standard") -> None:
    """The first two steps' loss terms on ``device`` against the CPU's (the second sees one Adam update)."""
    if device.type != "cuda":
        print("training step, CUDA vs CPU: skipped (needs CUDA)")
        return
    runs = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name in ("cpu", str(device)):
            copy = Path(tmp) / name.replace(":", "_")
            shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns("avatar"))
            trainer = Trainer(copy, TrainSettings.from_preset(preset, checkpoint_every=0), restart=True, device=name)
            trainer.prepare()
            runs[name] = [trainer.train_step() for _ in range(2)]
    worst = {}
    for cpu, other in zip(runs["cpu"], runs[str(device)]):
        for term, value in cpu.items():
            if term != "frame":
                worst[term] = max(worst.get(term, 0.0), abs(other[term] - value) / max(abs(value), 1e-12))
    listed = ", ".join(f"{term} {100 * d:.3f} %" for term, d in sorted(worst.items(), key=lambda kv: -kv[1]))
    print(f"training step ({preset}), {device} vs CPU, largest relative difference per loss term over 2 steps "
          f"(goal <= 1 %): {listed}")


def mimicmotion_speed(device: torch.device, frames: int = 72, steps: int = 4) -> None:
    """fp16 MimicMotion with the tests' tiny random weights: one window of ``frames`` at 576x1024."""
    if device.type != "cuda":
        print("MimicMotion fp16: skipped (needs CUDA)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_mimicmotion import build_tiny_model, person_and_skeletons

    from persona_studio.generate.mimicmotion import MODEL_SIZE, MimicMotionGenerator

    with tempfile.TemporaryDirectory(prefix="gpu_check_mm_") as tmp:
        checkpoint, svd, _ = build_tiny_model(Path(tmp))
        generator = MimicMotionGenerator(checkpoint, svd, device=str(device))
        width, height = MODEL_SIZE
        reference, skeletons = person_and_skeletons(frames - 1, height=height, width=width)  # + the reference
        generator.generate(reference, skeletons[:3], steps=1, window=4, overlap=2)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        generator.generate(reference, skeletons, steps=steps, window=frames, overlap=6)
        synchronize(device)
        seconds = time.perf_counter() - start
    print(f"MimicMotion fp16 on {device}, tiny random weights (UNet width 32), one {frames}-frame window at "
          f"{width}x{height}, {steps} denoising steps: {seconds:.2f} s, {(frames - 1) / seconds:.1f} frames/s "
          f"(the real UNet is ~1.5 B parameters: this times the pipeline around it, not the model)")


def part(name: str, run, *args) -> None:
    """Run one part; a failure is printed with its traceback and the next part still runs."""
    start = time.perf_counter()
    try:
        run(*args)
    except Exception:  # noqa: BLE001 (every failure is printed; one broken part must not hide the others)
        print(f"{name}: FAILED after {time.perf_counter() - start:.1f} s")
        traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True, help="a fitted workspace with its training set")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--presets", nargs="+", default=["standard", "quality"])
    parser.add_argument("--full", action="store_true", help="also train the quality preset to the end")
    parser.add_argument("--full-minutes", type=float, default=60.0, help="stop the --full run after this long")
    parser.add_argument("--deadline", type=float, default=None,
                        help="Unix time by which the script must end: the --full run stops in time for it")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), device {device} ({name}); {auto_backend(device)[1]}")
    part("gsplat parity", parity, device)
    part("training step parity", step_parity, args.workspace, device)
    part("MimicMotion", mimicmotion_speed, device)
    for preset in args.presets:  # the quality preset's --full run last: it takes what time is left
        full_minutes = args.full_minutes if args.full and preset == "quality" else 0.0
        if full_minutes and args.deadline is not None:  # what is left after this preset's step times
            full_minutes = min(full_minutes, (args.deadline - time.time() - FULL_RUN_MARGIN_S) / 60)
        part(f"{preset} step time", step_times, args.workspace, preset, device, args.steps, full_minutes)


if __name__ == "__main__":
    main()
