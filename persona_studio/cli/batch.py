"""``persona-studio batch``: one workspace per photo under OUT_DIR, the chosen stages for each, on a local
process pool or a Ray cluster; a live line per photo, then ``report.json``, a table and a contact sheet."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from persona_studio.batch.jobs import STAGES, BatchOptions, collect_photos, plan_jobs


def _cmd_batch(args: argparse.Namespace) -> int:
    from persona_studio.batch.local import default_workers, run_local
    from persona_studio.batch.report import REPORT_FILE, SHEET_FILE, LiveDisplay, table, write_report

    photos = collect_photos(args.photos, args.from_dir)
    workers = args.workers or default_workers()
    if workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    threads = max(1, (os.cpu_count() or 1) // workers) if args.ray is None else args.threads_per_task
    options = BatchOptions(stages=tuple(s.strip() for s in args.stages.split(",")), preset=args.preset,
                           iterations=args.iterations, resolution=args.resolution,
                           checkpoint_every=args.checkpoint_every, frames=args.frames,
                           size=tuple(args.size), level=args.level, export=args.export, threads=threads)
    args.output.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(photos, args.output)
    where = f"Ray ({args.ray})" if args.ray is not None else f"{workers} local worker(s), {threads} thread(s) each"
    print(f"batch: {len(jobs)} photo(s) -> {args.output}; stages {','.join(options.stages)}; {where}", file=sys.stderr)
    display = LiveDisplay(jobs)
    t0 = time.time()
    if args.ray is not None:
        from persona_studio.batch.cluster import run_ray

        results = run_ray(jobs, options, None if args.ray == "local" else args.ray, display)
    else:
        results = run_local(jobs, options, workers, display, args.output / ".batch")
    wall = time.time() - t0
    write_report(args.output, results, wall, {**asdict(options), "workers": workers, "ray": args.ray})
    print(table(results))
    failed = sum(r.status == "failed" for r in results)
    print(f"{len(results) - failed} done, {failed} failed in {wall / 60:.1f} min; "
          f"{args.output / REPORT_FILE}, {args.output / SHEET_FILE}")
    return 1 if failed else 0


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    batch = subparsers.add_parser(
        "batch", help="make many avatars: one workspace per photo, on a local pool or a Ray cluster",
        description="Run the stages for every photo, one workspace each under OUTPUT. Stages already done are "
                    "skipped (run it again after a crash or Ctrl-C to resume); a photo that fails does not stop "
                    "the others. Exit status 1 when any photo failed.")
    batch.add_argument("photos", nargs="*", type=Path, help="photos of one person each")
    batch.add_argument("--from-dir", type=Path, help="also every photo in this folder")
    batch.add_argument("-o", "--output", type=Path, required=True, help="the folder the workspaces go in")
    batch.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {','.join(STAGES)}")
    batch.add_argument("--preset", default="preview", help="training preset (presets/training/)")
    batch.add_argument("--iterations", type=int, help="override the preset's step count")
    batch.add_argument("--resolution", type=int, help="override the preset's training resolution")
    batch.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                       help="training steps between resumable checkpoints (default: the preset's)")
    batch.add_argument("--frames", type=int, help="generated frames per photo (default: the generator's)")
    batch.add_argument("--size", type=int, nargs=2, default=(576, 1024), metavar=("W", "H"))
    batch.add_argument("--level", type=int, choices=(0, 1, 2),
                       help="the re-poser's template level (default: the preset's avatar's)")
    batch.add_argument("--export", choices=("gltf", "ply"), default="gltf",
                       help="gltf: the rigged, animated GLB (every motion preset); ply: the canonical 3DGS PLY")
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: from the cores and memory)")
    where.add_argument("--ray", metavar="ADDRESS",
                       help="run on Ray: auto (the running cluster), a cluster's address, or local (start one here)")
    batch.add_argument("--threads-per-task", type=int, default=2, help="with --ray: CPUs (torch threads) per "
                       "generate or train task")
    batch.set_defaults(run=_cmd_batch)
    return batch
