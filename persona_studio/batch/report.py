"""What a batch shows while it runs (a line per photo: stage, progress, ETA) and what it leaves behind
(``report.json``, a readable table, ``contact_sheet.html``: photo, fitted overlay, avatar render)."""

from __future__ import annotations

import html
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from persona_studio.batch.jobs import PREVIEW_FILE, BatchOptions, PhotoJob, StageRecord, pending_stages, read_status
from persona_studio.fileio import write_json_atomic, write_text_atomic
from persona_studio.workspace.folders import exports_folder

REPORT_FILE = "report.json"
SHEET_FILE = "contact_sheet.html"


@dataclass
class PhotoResult:
    """One photo's outcome: done (every chosen stage ran or was already done) or failed, with its stages."""
    job: PhotoJob
    stages: list[StageRecord] = field(default_factory=list)
    error: str = ""

    @property
    def status(self) -> str:
        return "failed" if self.error or any(s.status == "failed" for s in self.stages) else "done"

    @property
    def message(self) -> str:
        return self.error or next((s.error for s in self.stages if s.status == "failed"), "")

    def as_json(self) -> dict:
        return {"photo": str(self.job.photo), "workspace": str(self.job.workspace), "status": self.status,
                "error": self.message, "stages": [asdict(s) for s in self.stages]}


def start_results(jobs: list[PhotoJob], options: BatchOptions, display: "LiveDisplay"
                  ) -> tuple[dict[str, PhotoResult], list[tuple[PhotoJob, list[str]]]]:
    """Each photo's result with its already-done stages recorded as skipped, and the (job, pending stages)
    left to run; a photo that cannot run (a stage it needs is not chosen) fails here with its reason."""
    results, work = {job.name: PhotoResult(job) for job in jobs}, []
    for job in jobs:
        try:
            stages = pending_stages(job, options)
        except ValueError as exc:
            results[job.name].error = str(exc)
            display.finish(job, f"failed: {exc}")
            continue
        results[job.name].stages = [StageRecord(s, "skipped") for s in options.stages if s not in stages]
        if stages:
            work.append((job, stages))
        else:
            display.finish(job, "done (nothing to do)")
    return results, work


def finish_line(result: PhotoResult) -> str:
    """A finished photo's line in the live display."""
    return result.status + (f": {result.message}" if result.message else "")


class LiveDisplay:
    """A line per photo, redrawn in place on a terminal (printed when a photo's stage changes otherwise)."""

    def __init__(self, jobs: list[PhotoJob], stream: TextIO | None = None):
        self.jobs, self.stream = jobs, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.shown: dict[str, str] = {}
        self.final: dict[str, str] = {}

    def finish(self, job: PhotoJob, text: str) -> None:
        """Fix a photo's line (done, failed) so that later status files do not change it."""
        self.final[job.name] = text
        self.update()

    def _line(self, job: PhotoJob) -> str:
        if job.name in self.final:
            return f"{job.name:24.24s} {self.final[job.name]}"
        status = read_status(job)
        if status is None:
            return f"{job.name:24.24s} waiting"
        fraction, elapsed = status.get("fraction", 0.0), time.time() - status.get("started", time.time())
        eta = f"eta {elapsed * (1 - fraction) / fraction / 60:4.1f} min" if 0.02 < fraction < 1 else ""
        return f"{job.name:24.24s} {status['stage']:8s} {fraction * 100:5.1f} %  {eta:13s} {status.get('message', '')[:60]}"

    def update(self) -> None:
        lines = [self._line(job) for job in self.jobs]
        if self.tty:
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F")
            self.stream.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self.drawn = len(lines)
        else:
            for job, line in zip(self.jobs, lines):
                key = line.split()[1] if len(line.split()) > 1 else ""
                if self.shown.get(job.name) != key:
                    self.shown[job.name] = key
                    self.stream.write(line + "\n")
        self.stream.flush()


def table(results: list[PhotoResult]) -> str:
    """The report as text: photo, status, seconds per stage, figures, error."""
    rows = [("photo", "status", "stage seconds", "figures", "error")]
    for r in results:
        seconds = " ".join(f"{s.stage} {'-' if s.status == 'skipped' else s.seconds}" for s in r.stages)
        figures = "; ".join(f"{k} {v}" for s in r.stages for k, v in s.figures.items() if k != "file")
        rows.append((r.job.name, r.status, seconds, figures, r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + ("  " + row[4] if row[4] else "")
                     for row in rows)


def write_report(out_dir: Path, results: list[PhotoResult], wall_seconds: float, options: dict) -> Path:
    """``report.json`` and ``contact_sheet.html`` in ``out_dir`` (both atomic); returns the JSON's path."""
    report = {"wall_seconds": round(wall_seconds, 1), "options": options,
              "done": sum(r.status == "done" for r in results), "failed": sum(r.status == "failed" for r in results),
              "photos": [r.as_json() for r in results]}
    path = write_json_atomic(out_dir / REPORT_FILE, report)
    write_text_atomic(out_dir / SHEET_FILE, contact_sheet(out_dir, results))
    return path


def contact_sheet(out_dir: Path, results: list[PhotoResult]) -> str:
    """A page to review a batch at a glance: each photo, its fitted overlay and its avatar, figures."""
    def image(path: Path) -> str:
        if not path.is_file():
            return "<td class=none>-</td>"
        return f'<td><img src="{html.escape(os.path.relpath(path, out_dir))}"></td>'

    rows = []
    for r in results:
        ws = r.job.workspace
        figures = "<br>".join(html.escape(f"{k}: {v}") for s in r.stages for k, v in s.figures.items())
        rows.append(f"<tr class={r.status}><th>{html.escape(r.job.name)}<br><small>{r.status}</small></th>"
                    f"{image(ws / 'subject' / 'image.png')}{image(ws / 'subject' / 'overlay.png')}"
                    f"{image(exports_folder(ws) / PREVIEW_FILE)}<td>{figures}"
                    f"<div class=error>{html.escape(r.message)}</div></td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>PERSONA Studio batch</title><style>"
            "body{font:14px sans-serif;background:#222;color:#ddd}img{height:256px}td,th{padding:4px;vertical-align:top}"
            ".failed th{color:#f77}.error{color:#f77;max-width:30em}.none{color:#777}</style>"
            "<table><tr><th></th><th>photo</th><th>fit</th><th>avatar</th><th>figures</th></tr>"
            + "".join(rows) + "</table>\n")
