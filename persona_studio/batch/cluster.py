"""A batch on a Ray cluster: each stage of each photo is one Ray task.

Ray is an optional dependency (``pip install 'persona-studio[cluster]'``), imported only here and only
when ``--ray`` is given. The workspaces must sit on a folder every node sees at the same path (an NFS
mount, say): a task reads what the stage before it wrote, and the driver reads each workspace's status
file for its display. A task whose worker dies is retried by Ray (``max_retries``); training then
resumes from its last checkpoint instead of starting over.
"""

from __future__ import annotations

import json

from persona_studio.batch.jobs import BatchOptions, PhotoJob, StageRecord, run_stage
from persona_studio.batch.report import LiveDisplay, PhotoResult, finish_line, start_results

TASK_RETRIES = 3
WAIT_S = 1.0


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'persona-studio[cluster]' (or run without --ray for a "
                         "local pool)") from None
    return ray


def preset_wants_gpu(preset: str) -> bool:
    """Whether a training preset is meant for a GPU (its description says so: standard, quality)."""
    from persona_studio.train.settings import PRESETS_DIR

    return json.loads((PRESETS_DIR / f"{preset}.json").read_text()).get("description", "").startswith("GPU")


def stage_resources(stage: str, options: BatchOptions, cluster_has_gpus: bool) -> dict:
    """Ray resources of one stage's task: the worker's threads as CPUs; a GPU for generate and train when
    the preset wants one and the cluster has one; one CPU for fit and export."""
    cpus = options.threads or 1
    if stage in ("generate", "train"):
        return {"num_cpus": cpus, "num_gpus": 1 if cluster_has_gpus and preset_wants_gpu(options.preset) else 0}
    return {"num_cpus": 1, "num_gpus": 0}


def run_ray(jobs: list[PhotoJob], options: BatchOptions, address: str | None, display: LiveDisplay) -> list[PhotoResult]:
    """Run every job's pending stages as Ray tasks (connecting to ``address`` unless Ray is already up:
    'auto' finds a running cluster)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address)
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    task = ray.remote(max_retries=TASK_RETRIES)(run_stage)
    running = {}

    def submit(job: PhotoJob, stages: list[str]) -> None:
        ref = task.options(**stage_resources(stages[0], options, has_gpus)).remote(job, stages[0], options)
        running[ref] = (job, stages)

    results, work = start_results(jobs, options, display)
    for job, stages in work:
        submit(job, stages)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            display.update()
            for ref in ready:
                job, stages = running.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker died more than TASK_RETRIES times
                    record = StageRecord(stages[0], "failed", error=f"lost on the cluster after {TASK_RETRIES} "
                                         f"retries ({type(exc).__name__}); run the batch again to resume it")
                results[job.name].stages.append(record)
                if record.status == "done" and len(stages) > 1:
                    submit(job, stages[1:])
                else:
                    display.finish(job, finish_line(results[job.name]))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    return [results[job.name] for job in jobs]
