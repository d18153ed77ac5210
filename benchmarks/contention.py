"""CPU work beside a busy competitor: how much a fixed workload slows when another CPU-bound job shares the cores.

Two workloads, each run in a fresh process so that the thread settings under test apply from the start:
``surface_fit``, the re-poser's surface fit (the level-2 body splatted at 256 px, forward and backward,
Adam steps: the stage the issue saw collapse), and ``train``, the ``preview`` preset's training step
(256 px, template level 1) on a workspace made from the sample photo (8 re-posed frames of ``wave``;
made once under ``--workspace``, or in a temporary folder). The competitor is a second torch process doing matrix products with its default
threads, like a second job of ours (``--competitor python``: a one-thread pure-Python loop, like a busy
program of another kind). Each row runs the workload alone, then beside the competitor, and prints both
times and their ratio (a fair share of 2 cores with one competitor is 2x).

Rows: ``as shipped`` (the thread count follows the other processes' load: ``persona_studio.cpu_share``,
called each step as the fit, surface-fit and training loops call it), ``before`` (torch's own thread
count, fixed, libgomp's default wait policy), and fixed settings tried instead: ``OMP_WAIT_POLICY=PASSIVE``
(idle OpenMP threads sleep at once), ``OMP_WAIT_POLICY=ACTIVE`` (they spin), ``1 torch thread``, and
bounded spinning (``GOMP_SPINCOUNT``: spin that many times, then sleep). Timings on 2 cores swing with the
competitor's phase: use ``--repeats``.

    python benchmarks/contention.py [--workload surface_fit|train] [--workspace WS] [--steps 8] [--repeats 2]
                                    [--rows TEXT ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SURFACE_FIT = r"""
import sys, time
import persona_studio  # first, as the CLI and the app import it
import torch
from persona_studio.body.model import load_body_model
from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera
import numpy as np
from persona_studio.cpu_share import CpuShare
steps, adaptive = int(sys.argv[1]), sys.argv[2] == "adaptive"
model = load_body_model("open")
renderer = BodyRenderer(model, 2)
with torch.no_grad():
    posed = model.forward().vertices[0]
camera = Camera(np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.3, 2.5]), 300.0, 300.0, 128.0, 128.0, 256, 256)
n = renderer.interp.shape[0]
displacement = torch.zeros(n, requires_grad=True)
colors = torch.full((n, 3), 0.5, requires_grad=True)
optimiser = torch.optim.Adam([displacement, colors], lr=1e-3)
def work_step():
    out = renderer.splat(posed, colors, camera, displacement)
    loss = (out.features[0, ..., :3] - 0.3).abs().mean() + out.alpha.mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
"""

TRAIN = r"""
import sys, time
from pathlib import Path
import persona_studio
from persona_studio.cpu_share import CpuShare
from persona_studio.train.settings import TrainSettings
from persona_studio.train.trainer import Trainer
steps, adaptive, workspace = int(sys.argv[1]), sys.argv[2] == "adaptive", Path(sys.argv[3])
settings = TrainSettings.from_preset("preview", iterations=10_000, checkpoint_every=0, preview_every=0)
trainer = Trainer(workspace, settings)
trainer.prepare()
work_step = trainer.train_step
"""

# After either workload: its step timed, with the thread count following the load as the shipped loops
# (fit, surface fit, training) do each step, or fixed.
TIMED_LOOP = r"""
share = CpuShare()
def step():
    if adaptive:
        share.update()
    work_step()
step()  # warm-up
t = time.perf_counter()
for _ in range(steps):
    step()
print(f"{(time.perf_counter() - t) / steps:.4f}")
"""

WORKLOADS = {"surface_fit": ("re-poser surface fit step (level 2, 256 px)", SURFACE_FIT),
             "train": ("training step (preview preset: 256 px, level 1)", TRAIN)}

SPIN_COUNTS = (1000, 10000, 100000)  # libgomp spins this many times before sleeping (its default: 300000)

COMPETITORS = {
    "torch": "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a = torch.tanh(a @ a * 1e-3)\n",
    "python": "x = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003\n",
}


def run_workload(code: str, args: list[str], env: dict[str, str], steps: int) -> float:
    """Seconds per step of the workload ``code`` in a fresh process with ``env`` (the
    ``PERSONA_BENCH_THREADS`` entry: ``adaptive`` as shipped, else a fixed thread count)."""
    mode = env.get("PERSONA_BENCH_THREADS", "adaptive")
    out = subprocess.run([sys.executable, "-c", code + TIMED_LOOP, str(steps), mode, *args], env=env, capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(f"the workload failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def training_workspace(folder: Path) -> Path:
    """``folder`` as a workspace the training workload can train on: the sample photo fitted and 8 re-posed
    frames of the ``wave`` preset at 288x512 (kept when already there)."""
    from persona_studio.app.workspace import SAMPLE_PHOTO
    from persona_studio.capture.pipeline import fit_photo
    from persona_studio.generate.stage import GenerateOptions, generate_training_set

    if not (folder / "training_set" / "manifest.json").is_file():
        print(f"making the training workspace in {folder} (fit + 8 generated frames, a few minutes)", flush=True)
        fit_photo(SAMPLE_PHOTO, folder)
        generate_training_set(folder, GenerateOptions(motions=["wave"], frames=8, size=(288, 512), level=1))
    return folder


def measure(code: str, args: list[str], env: dict[str, str], steps: int, repeats: int,
            competitor_code: str) -> tuple[float, float]:
    """(best quiet, best busy) seconds per step over ``repeats`` runs each."""
    quiet = min(run_workload(code, args, env, steps) for _ in range(repeats))
    competitor = subprocess.Popen([sys.executable, "-c", competitor_code], env=os.environ.copy(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)  # the competitor at full speed first
        busy = min(run_workload(code, args, env, steps) for _ in range(repeats))
    finally:
        competitor.kill()
        competitor.wait()
    return quiet, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="surface_fit")
    parser.add_argument("--workspace", type=Path, help="for --workload train: where its workspace is made once "
                        "(default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--competitor", choices=sorted(COMPETITORS), default="torch")
    parser.add_argument("--rows", nargs="+", metavar="TEXT", help="only the rows whose names contain one of these")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    fixed = {**base, "PERSONA_BENCH_THREADS": "fixed"}
    rows = {"as shipped (threads follow the load: CpuShare)": base,
            "before: fixed threads, libgomp default": fixed,
            "fixed, OMP_WAIT_POLICY=PASSIVE": {**fixed, "OMP_WAIT_POLICY": "PASSIVE"},
            "fixed, OMP_WAIT_POLICY=ACTIVE": {**fixed, "OMP_WAIT_POLICY": "ACTIVE"},
            "fixed, 1 torch thread (OMP_NUM_THREADS=1)": {**fixed, "OMP_NUM_THREADS": "1"},
            **{f"fixed, GOMP_SPINCOUNT={count}": {**fixed, "GOMP_SPINCOUNT": str(count)} for count in SPIN_COUNTS}}
    if args.rows:
        rows = {name: env for name, env in rows.items() if any(part in name for part in args.rows)}
    title, code = WORKLOADS[args.workload]
    with tempfile.TemporaryDirectory(prefix="persona_contention_") as scratch:
        workload_args = []
        if args.workload == "train":
            workload_args = [str(training_workspace(args.workspace or Path(scratch) / "ws"))]
        print(f"{os.cpu_count()} cores; workload: {title}, {args.steps} steps, best of {args.repeats}; "
              f"competitor: {args.competitor} ({COMPETITORS[args.competitor]!r})")
        print(f"{'row':48s} {'quiet s/step':>12s} {'busy s/step':>12s} {'slowdown':>9s}")
        for name, env in rows.items():
            quiet, busy = measure(code, workload_args, env, args.steps, args.repeats, COMPETITORS[args.competitor])
            print(f"{name:48s} {quiet:12.3f} {busy:12.3f} {busy / quiet:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
