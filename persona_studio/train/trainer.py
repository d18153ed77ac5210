"""The trainer: PERSONA's optimisation of the avatar on the photo + generated frames.

Runs in a background thread (start, pause, resume, stop); loss weights, the photo share and the
learning-rate scale change while it runs (applied at the next step); progress and preview events go to a
callback; checkpoints are written atomically every N steps and a killed run resumes from the last one;
other threads watch the avatar through snapshots (``snapshot()``), never the live one.

What a step computes is in :mod:`persona_studio.train.step`, the frames it learns from in
:mod:`persona_studio.train.frames`, the figures it ends with in :mod:`persona_studio.train.evaluation`.
The avatar starts from the re-poser's surface (its colours and its clothed volume as offsets) when
the training set has one at least as fine as the avatar.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.avatar.bundle import load_checkpoint, read_checkpoint_meta, save_avatar, save_checkpoint
from persona_studio.cpu_share import CpuShare
from persona_studio.device import resolve_device
from persona_studio.body.model import BodyModel
from persona_studio.body.subdivide import mesh_neighbours, refine_values
from persona_studio.render.body import BodyRenderer, splat_scales, vertex_normals
from persona_studio.render.texture import color_from_views
from persona_studio.train.evaluation import evaluate, preview_image
from persona_studio.train.frames import load_frames, split_generated
from persona_studio.train.sampler import BalancedSampler
from persona_studio.train.settings import TrainSettings
from persona_studio.train.snapshot import AvatarSnapshot, SnapshotPublisher
from persona_studio.train.step import (ANCHOR_REACH, CORRECTED_KEYS, anchored_offsets, colour_gradient_scale, colour_weight,
                                       data_losses, frame_seams, optimiser_groups, pose_deltas, regularisers, render_frame)
from persona_studio.workspace.folders import (avatar_folder, bundle_folder, checkpoint_file, earlier_training_folder,
                                              prepare_stage, set_training_aside)
from persona_studio.workspace.subject import Subject
from persona_studio.workspace.training_set import PhotoSurface, TrainingSet


SHAPE_KEYS = ("template_level", "mlp_width", "triplane_resolution", "pose_deformation")  # what a resumed run keeps


class TrainingConflict(ValueError):
    """Earlier training in the workspace that a run with these settings would replace; the message says how
    to keep it or start afresh."""


def earlier_training(workspace: Path, settings: TrainSettings) -> str | None:
    """Why training ``workspace`` with ``settings`` would replace earlier work instead of resuming it: a
    checkpoint made with other avatar settings or another training set, or a trained avatar with no
    checkpoint (an imported bundle). None when there is nothing, or a checkpoint this run resumes.
    Reads only the checkpoint's header and the training set's manifest: cheap enough for the GUI thread."""
    checkpoint = checkpoint_file(workspace)
    ts = TrainingSet(workspace)
    if checkpoint.is_file():
        saved = read_checkpoint_meta(checkpoint)
        before = saved.get("settings", {})
        changed = [f"{key.replace('_', ' ')} {before.get(key)!r} (now {getattr(settings, key)!r})"
                   for key in SHAPE_KEYS if before.get(key) != getattr(settings, key)]
        if saved.get("training_set", ts.identity) != ts.identity or saved.get("frames") != len(ts):
            changed.append("another training set (it has been generated again since)")
        if not changed:
            return None
        return f"its training checkpoint (step {saved.get('step')}) was made with " + ", ".join(changed)
    if (bundle_folder(workspace) / "avatar.json").is_file():
        return "it holds a trained avatar with no checkpoint to resume (an imported or finished avatar)"
    return None


class Trainer:
    """Trains one workspace's avatar; drive it from any thread.

    Earlier work is never replaced silently: a checkpoint this run cannot resume, or a trained avatar
    without one, stops :meth:`prepare` with a :class:`TrainingConflict` unless ``restart``; a restart
    moves them into ``avatar/earlier/<date-time>/`` first."""

    def __init__(self, workspace: str | Path, settings: TrainSettings | None = None,
                 on_event: Callable[[dict], None] | None = None, model: BodyModel | None = None,
                 restart: bool = False, device: str = "cpu"):
        self.workspace = Path(workspace)
        self.device = resolve_device(device)  # frames, avatar, corrections and optimiser all live here
        self.restart = restart
        self.settings = settings or TrainSettings.from_preset("preview")
        self.on_event = on_event or (lambda event: None)
        self._model = model
        self._weights = replace(self.settings.weights)
        self._step_weights = self._weights
        self._photo_share = self.settings.photo_share
        self._lr_scale = self.settings.lr_scale
        self._lock = threading.Lock()
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.step = 0
        self.error: BaseException | None = None
        self.avatar: Avatar | None = None
        self.history: list[dict] = []
        self._snapshots = SnapshotPublisher()

    # --- control (any thread) -------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """Run :meth:`run` on a new daemon thread (the app's and the tests' path); returns the thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("training is already running")
        self._stop.clear()
        self._run.set()
        self._thread = threading.Thread(target=self._thread_main, name="trainer", daemon=True)
        self._thread.start()
        return self._thread

    def pause(self) -> None:
        """Hold before the next step (the step in flight finishes)."""
        self._run.clear()

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        self._run.set()

    def stop(self) -> None:
        """End the run after the step in flight (a paused run too): checkpoint, figures, a 'stopped' event."""
        self._stop.set()
        self._run.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread :meth:`start` made, if any."""
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread :meth:`start` made is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` holds the run."""
        return not self._run.is_set()

    def set_weights(self, **values: float) -> None:
        """Change loss weights; applied at the next step."""
        with self._lock:
            self._weights = replace(self._weights, **values)

    def set_photo_share(self, share: float) -> None:
        """Change how often the photo is drawn (0..1); applied at the next step."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"photo share must be within 0..1, got {share}")
        with self._lock:
            self._photo_share = share

    def set_lr_scale(self, scale: float) -> None:
        """Scale every learning rate (> 0); applied at the next step."""
        if scale <= 0:
            raise ValueError(f"learning-rate scale must be positive, got {scale}")
        with self._lock:
            self._lr_scale = scale

    def snapshot(self) -> AvatarSnapshot | None:
        """The avatar's latest published snapshot (None before the first) and a request for a newer one:
        the training thread publishes at its next step boundary, and when it pauses or ends."""
        self._snapshots.request()
        return self._snapshots.latest()

    # --- setup ----------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        """The workspace's avatar folder."""
        return avatar_folder(self.workspace)

    @property
    def checkpoint_path(self) -> Path:
        """The resumable checkpoint's file."""
        return checkpoint_file(self.workspace)

    def prepare(self) -> None:
        """Load the training set and build (or resume) the avatar and optimiser."""
        s = self.settings
        torch.manual_seed(s.seed)
        self.subject = Subject.load(self.workspace)
        prepare_stage(self.workspace, "train")
        if self.restart:
            aside = set_training_aside(self.workspace)
            if aside is not None:
                self.on_event({"type": "info", "message": f"starting afresh; the earlier training is kept in {aside}"})
        else:
            conflict = earlier_training(self.workspace, s)
            if conflict is not None:
                raise TrainingConflict(
                    f"{self.workspace}: {conflict}, and training now would replace it. Start afresh with "
                    f"--restart (it is kept in {earlier_training_folder(self.workspace)}/), or train with "
                    "the settings it was made with")
        self.model = self._model or self.subject.load_body_model()
        ts = TrainingSet(self.workspace)
        self.training_set_identity = ts.identity
        self.frames = load_frames(ts, self.model, s.resolution, self.device)
        train_frames, self.held_out = split_generated(ts.generated_indices, s.held_out_share)
        self.photo_indices = ts.photo_indices
        share = s.photo_share if s.balanced_sampling else len(self.photo_indices) / (len(train_frames) + len(self.photo_indices))
        self._photo_share = share
        self.sampler = BalancedSampler(train_frames, share, s.seed, photos=self.photo_indices)
        if self.checkpoint_path.is_file():
            self.avatar, extra, saved = load_checkpoint(self.checkpoint_path, self.device)
            self.step = int(saved["step"])
            self.prior_colors = extra.get("prior_colors", self.avatar.colors.detach()).clone()
            self.prior_offsets = extra.get("prior_offsets", torch.zeros_like(self.avatar.offsets)).clone()
            self._build_optimiser()
            self._restore(extra, saved)
            self.on_event({"type": "resumed", "step": self.step})
            return
        config = AvatarConfig(level=s.template_level, mlp_width=s.mlp_width, triplane_resolution=s.triplane_resolution,
                              pose_deformation=s.pose_deformation)
        sub = self.subject
        surface = ts.photo_surface()
        surface_level = ts.manifest.get("template_level", -1)
        if surface is not None and surface_level < s.template_level:
            surface = self._refined(surface, surface_level, s.template_level)
        if surface is None:
            renderer = BodyRenderer(self.model, s.template_level)
            colors = lambda interp, v: color_from_views(renderer, sub.views)  # noqa: E731
        else:  # finer levels keep the coarser levels' vertices first (midpoint subdivision)
            colors = lambda interp, v: surface.colors[: interp.shape[0]]  # noqa: E731
        identity = {"body_model": sub.body_model, "photo": sub.photo_name}
        self.avatar = Avatar.from_body_model(self.model, sub.smplx["betas"], colors, config, identity).to(self.device)
        if surface is not None:  # the clothed volume the re-poser fitted to the photos
            shift = surface.displacement[: self.avatar.num_gaussians]
            self.avatar.start_on_surface(torch.as_tensor(shift, dtype=torch.float32, device=self.device))
        self.step = 0
        self.prior_colors = self.avatar.colors.detach().clone()
        self.prior_offsets = self.avatar.offsets.detach().clone()
        self._build_optimiser()

    def _refined(self, surface: PhotoSurface, level: int, avatar_level: int) -> PhotoSurface | None:
        """A surface fitted at a coarser template level than the avatar's, subdivided to the avatar's level
        (the re-poser renders at the level of the avatar it teaches, so a `quality` run after a preview
        generation starts from a coarser one); None when the set does not say its level."""
        if level < 0:
            return None
        faces, levels = self.model.subdivision(level)[0], avatar_level - level
        return PhotoSurface(*(refine_values(values, faces, levels) for values in (surface.displacement, surface.colors)))

    def _build_optimiser(self) -> None:
        """Fresh per-frame pose corrections, Adam over them and the avatar, empty per-frame caches."""
        a = self.avatar
        self.deltas = pose_deltas(self.frames)
        self.neighbours, self.counts = mesh_neighbours(a.faces, a.num_gaussians)
        with torch.no_grad():  # each Gaussian may slide along the body by its starting size
            self.anchor_normals = vertex_normals(a.template, a.faces)
            self.anchor_reach = ANCHOR_REACH * splat_scales(a.template + self.prior_offsets, a.faces)
        self.optimiser = torch.optim.Adam(optimiser_groups(a, self.deltas))
        self._seams: dict[int, torch.Tensor] = {}
        self._colour_weights: dict[int, torch.Tensor] = {}

    def _restore(self, extra: dict[str, torch.Tensor], saved: dict) -> None:
        """Load a checkpoint's pose corrections, Adam moments and sampler state into the fresh optimiser."""
        with torch.no_grad():
            for k in CORRECTED_KEYS:
                for delta, saved_row in zip(self.deltas[k], extra[f"delta.{k}"]):
                    delta.copy_(saved_row[None])
        state = self.optimiser.state_dict()
        for pid in range(sum(len(g["params"]) for g in state["param_groups"])):
            if f"adam.{pid}.exp_avg" in extra:
                state["state"][pid] = {"step": extra[f"adam.{pid}.step"], "exp_avg": extra[f"adam.{pid}.exp_avg"],
                                       "exp_avg_sq": extra[f"adam.{pid}.exp_avg_sq"]}
        self.optimiser.load_state_dict(state)
        self.sampler.restore(saved["sampler"])

    def save_checkpoint(self) -> Path:
        """Write everything a resumed run needs (avatar, corrections, Adam, sampler, step), atomically."""
        extra = {f"delta.{k}": torch.cat(v).detach() for k, v in self.deltas.items()}
        extra["prior_colors"] = self.prior_colors
        extra["prior_offsets"] = self.prior_offsets
        for pid, st in self.optimiser.state_dict()["state"].items():
            extra.update({f"adam.{pid}.step": torch.as_tensor(st["step"]).reshape(1) if not torch.is_tensor(st["step"]) else st["step"],
                          f"adam.{pid}.exp_avg": st["exp_avg"], f"adam.{pid}.exp_avg_sq": st["exp_avg_sq"]})
        meta = {"step": self.step, "settings": asdict(self.settings), "frames": len(self.frames),
                "training_set": self.training_set_identity, "sampler": self.sampler.state()}
        return save_checkpoint(self.avatar, self.checkpoint_path, extra, meta)

    # --- one step -------------------------------------------------------------------------------

    def frame_params(self, index: int) -> dict[str, torch.Tensor]:
        """Frame ``index``'s SMPL-X (each [1, ...]) with its learnt correction added."""
        f = self.frames[index]
        params = dict(f.smplx)
        for k in CORRECTED_KEYS:
            params[k] = f.smplx[k] + self.deltas[k][index]
        return params

    def render(self, index: int, features: str = "train", params: dict | None = None):
        """Render frame ``index``'s view: 'train' features (13 channels) or 'positions' (canonical)."""
        f = self.frames[index]
        scale = colour_gradient_scale(f, self._step_weights, self.settings.geometry_weighting)
        return render_frame(self.avatar, f, params or self.frame_params(index), features, scale)

    def seams(self, index: int) -> torch.Tensor:
        """[H, W] seam mask of a frame (cached; refreshed every few hundred steps)."""
        cached = self._seams.get(index)
        if cached is None:
            cached = self._seams[index] = frame_seams(self.avatar, self.frames[index], self.frame_params(index))
        return cached

    def colour_weights(self, index: int) -> torch.Tensor:
        """[H, W] where frame ``index``'s colours teach the avatar's colours (cached)."""
        cached = self._colour_weights.get(index)
        if cached is None:
            cached = self._colour_weights[index] = colour_weight(self.frames[index].mask)
        return cached

    def losses_for(self, index: int, background: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss terms of frame ``index`` with the render and the frame's person composited over a plain
        ``background`` colour [3] (default white)."""
        w = self._step_weights
        out = self.render(index)
        background = torch.ones(3, device=self.device) if background is None else background
        terms = data_losses(out, self.frames[index], w, self.seams(index), self.colour_weights(index), background,
                            self.settings.geometry_weighting)
        terms.update(regularisers(self.avatar, w, self.neighbours, self.counts, self.prior_colors, self.prior_offsets))
        total = sum(terms.values())
        # One read-back for all the figures: on a GPU each float() would wait for the device on its own.
        values = torch.stack([v.detach().reshape(()) for v in (*terms.values(), total)]).tolist()
        return total, dict(zip((*terms, "total"), values))

    def train_step(self) -> dict[str, float]:
        """One optimisation step on one drawn frame; returns its loss terms, the total and the frame."""
        s = self.settings
        with self._lock:
            self._step_weights = replace(self._weights)
            self.sampler.photo_share = self._photo_share
            lr_scale = self._lr_scale
        decay = 0.1 if self.step >= 0.75 * s.iterations else 1.0
        for group in self.optimiser.param_groups:
            group["lr"] = group["base_lr"] * lr_scale * decay
        index = self.sampler.next()
        if self.step % 300 == 0:
            self._seams.clear()
        self.optimiser.zero_grad(set_to_none=True)
        # A random plain background per step, the same on a resumed run: the silhouette is learnt by
        # opacity, never by blending edge colours towards one background (a light rim on a dark viewport).
        background = torch.rand(3, generator=torch.Generator().manual_seed(s.seed * 1_000_003 + self.step)).to(self.device)
        loss, terms = self.losses_for(index, background)  # terms["total"]: the loss's value
        loss.backward()
        if not self.frames[index].teaches_appearance:
            # A render of the avatar's own start says nothing new of its rest shape (as of its colours,
            # step.colour_gradient_scale): the offsets skip the step (without a gradient Adam leaves a
            # parameter as it is, where a zero one would still move it on momentum).
            self.avatar.offsets.grad = None
        self.optimiser.step()
        with torch.no_grad():  # colours stay colours: a channel past 0 or 1 would freeze behind the clamp
            self.avatar.colors.clamp_(0, 1)
            self.avatar.seam_colors.clamp_(0, 1)
            self.avatar.offsets.copy_(anchored_offsets(self.avatar.offsets, self.prior_offsets, self.anchor_normals,
                                                       self.anchor_reach))
        self.avatar.invalidate_cache()
        self.step += 1
        self._snapshots.publish_if_wanted(self.avatar, self.step)
        terms["frame"] = index
        return terms

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Masked PSNR on the photos' views; mask IoU on the held-out generated frames."""
        return evaluate(self.avatar, self.frames, self.held_out, {i: self.frame_params(i) for i in self.photo_indices})

    def preview(self, index: int = 0) -> np.ndarray:
        """[H, W, 3] uint8 render of a training view (for the app's preview)."""
        with torch.no_grad():
            return preview_image(self.render(index))

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to ``settings.iterations`` in this thread (the CLI's path); returns the final figures."""
        if self.avatar is None:
            self.prepare()
        s = self.settings
        t0, step0 = time.time(), self.step
        with CpuShare() as share:
            while self.step < s.iterations and not self._stop.is_set():
                share.update()
                if not self._run.is_set():
                    self._snapshots.publish(self.avatar, self.step)
                    self.on_event({"type": "paused", "step": self.step})
                    self._run.wait()
                    if self._stop.is_set():
                        break
                    self.on_event({"type": "resumed", "step": self.step})
                terms = self.train_step()
                rate = (self.step - step0) / max(time.time() - t0, 1e-6)
                event = {"type": "progress", "step": self.step, "iterations": s.iterations, "losses": terms,
                         "eta_seconds": (s.iterations - self.step) / max(rate, 1e-6)}
                self.history.append({"step": self.step, **terms})
                self.on_event(event)
                if s.preview_every and self.step % s.preview_every == 0:
                    self.on_event({"type": "preview", "step": self.step, "image": self.preview()})
                if s.checkpoint_every and self.step % s.checkpoint_every == 0:
                    self.save_checkpoint()
                    self.on_event({"type": "checkpoint", "step": self.step, "path": str(self.checkpoint_path)})
        self._snapshots.publish(self.avatar, self.step)
        self.save_checkpoint()
        figures = self.evaluate()
        figures.update(step=self.step, seconds=round(time.time() - t0, 1))
        if self.step >= s.iterations:
            save_avatar(self.avatar, bundle_folder(self.workspace), extra={"figures": figures, "settings": asdict(s)})
            self.on_event({"type": "finished", **figures})
        else:
            self.on_event({"type": "stopped", **figures})
        return figures

    def _thread_main(self) -> None:
        """:meth:`run`, its failure reported as an 'error' event."""
        try:
            self.run()
        except BaseException as exc:  # reported to the app, never raised into a GUI
            self.error = exc
            self.on_event({"type": "error", "message": f"{type(exc).__name__}: {exc}"})

