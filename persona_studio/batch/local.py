"""A batch on this machine: a pool of worker processes, one photo at a time each.

Each photo runs its stages in a fresh (spawned) process with its share of the cores as torch threads,
so that workers never oversubscribe the machine. A worker that dies (killed, out of memory) is started
once more for what is left; the stage it died in resumes from its checkpoint (training) or starts over
(the shorter stages). Anything else that goes wrong stays with its photo.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import asdict
from pathlib import Path

from persona_studio.batch.jobs import BatchOptions, PhotoJob, StageRecord, run_stage
from persona_studio.batch.report import LiveDisplay, PhotoResult, finish_line, start_results
from persona_studio.fileio import read_json_object, write_json_atomic

WORKER_MEMORY_BYTES = 4 * 2**30  # what a preview-preset worker needs at its peak, with room to spare
RESTARTS = 1  # times a dead worker is started again for the photo's remaining stages
POLL_S = 0.5


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def default_workers(cores: int | None = None, memory: int | None = None) -> int:
    """Workers for this machine: two cores and WORKER_MEMORY_BYTES each, at least one."""
    cores = cores or os.cpu_count() or 1
    memory = memory if memory is not None else available_memory_bytes()
    by_memory = memory // WORKER_MEMORY_BYTES if memory else cores
    return max(1, min(cores // 2, by_memory))


def _photo_worker(job: PhotoJob, options: BatchOptions, stages: list[str], record_file: str) -> None:
    """In the worker process: run ``stages`` in order, each record written as soon as it exists."""
    records = []
    for stage in stages:
        record = run_stage(job, stage, options)
        records.append(asdict(record))
        write_json_atomic(Path(record_file), {"stages": records})
        if record.status == "failed":
            return


def _records(path: Path) -> list[StageRecord]:
    if not path.is_file():
        return []
    return [StageRecord(**r) for r in read_json_object(path, "").get("stages", [])]


def run_local(jobs: list[PhotoJob], options: BatchOptions, workers: int, display: LiveDisplay,
              scratch: Path) -> list[PhotoResult]:
    """Run every job's pending stages on ``workers`` processes; per-photo records go through ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    results, work = start_results(jobs, options, display)
    waiting = [(job, stages, 0) for job, stages in work]  # (job, stages left, restarts so far)
    running: dict[str, tuple] = {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                job, stages, restarts = waiting.pop(0)
                record_file = scratch / f"{job.name}.json"
                record_file.unlink(missing_ok=True)
                process = context.Process(target=_photo_worker, args=(job, options, stages, str(record_file)),
                                          name=f"persona-batch-{job.name}")
                process.start()
                running[job.name] = (process, job, stages, restarts, record_file)
            time.sleep(POLL_S)
            display.update()
            for name, (process, job, stages, restarts, record_file) in list(running.items()):
                if process.is_alive():
                    continue
                process.join()
                del running[name]
                records = _records(record_file)
                results[name].stages += records
                left = stages[len(records):]
                if process.exitcode != 0 and left and restarts < RESTARTS:
                    waiting.append((job, left, restarts + 1))
                    continue
                if process.exitcode != 0 and left:
                    results[name].error = (f"the worker died in the {left[0]} stage (exit code {process.exitcode}) "
                                           f"{restarts + 1} times; run the batch again to resume it")
                display.finish(job, finish_line(results[name]))
    finally:
        for process, *_ in running.values():
            process.terminate()
            process.join()
    return [results[job.name] for job in jobs]
