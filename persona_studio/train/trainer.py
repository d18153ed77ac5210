"""The trainer: PERSONA's optimisation of the avatar on the photo + generated frames.

Runs in a background thread (start, pause, resume, stop); loss weights, the photo share and the
learning-rate scale change while it runs (applied at the next step); progress and preview events go to a
callback; checkpoints are written atomically every N steps and a killed run resumes from the last one.

Per step one frame is drawn (balanced sampling), the avatar is posed with the frame's SMPL-X (plus a
learnt per-frame correction) and rendered once with features [colour, seam colour, normal, part colour,
hand]; render and frame are composited over a random plain colour, and the losses are:
- photo: image loss (0.8 L1 + 0.2 D-SSIM), down-weighted inside seams (weight ``seam``), where the
  colour is pulled towards the seam colour instead (weight 1 - ``seam``; presets may set ``seam``: the
  CPU ``preview`` keeps the photo at full weight); mask; depth/normal/part losses at the photo
  geometry weight (0.1);
- generated frames: image loss on colour and on seam colour; mask, depth (scale-invariant), normals,
  parts at weight 1; the image loss reaches the deformation (means, MLP, triplane) at the generated
  image weight (0.1: geometry-weighted optimisation) while colours get it in full;
- hand mask (rendered hand Gaussians vs the body mesh's hands); Laplacian regularisers on offsets,
  scales and colours; a prior pulling colours towards the starting ones.
Image losses count only inside each frame's person (a pixel in from its edge): outside it the mask
loss teaches "no avatar here", and a colour loss there would paint Gaussians in the random background.
The avatar starts from the re-poser's surface (its colours and its clothed volume as offsets) when
the training set has one at least as fine as the avatar.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.avatar.bundle import load_checkpoint, save_avatar, save_checkpoint
from persona_studio.body.model import BodyModel, load_body_model
from persona_studio.body.parts import PART_COLORS, PART_INDEX, vertex_parts
from persona_studio.body.subdivide import mesh_neighbours, uniform_laplacian
from persona_studio.workspace.subject import Subject
from persona_studio.generate.training_set import TrainingSet
from persona_studio.render.body import BodyRenderer, vertex_normals
from persona_studio.render.camera import Camera
from persona_studio.render.mesh import mesh_silhouette
from persona_studio.render.rasterize import rasterize
from persona_studio.render.texture import color_from_photo
from persona_studio.train import losses
from persona_studio.train.sampler import BalancedSampler
from persona_studio.train.seams import seam_mask

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets" / "training"
AVATAR_DIR = "avatar"
COLOUR_ADAM_EPS = 1e-5  # about a well-seen Gaussian's colour gradient at the preview's size
POSE_KEYS = ("global_orient", "body_pose", "jaw_pose", "left_hand_pose", "right_hand_pose", "transl")


@dataclass
class LossWeights:
    """Live-adjustable weights (the app's sliders)."""

    image: float = 1.0  # photo image loss
    generated_image: float = 0.1  # image loss of generated frames, as seen by the deformation
    mask: float = 1.0
    depth: float = 1.0
    normal: float = 1.0
    parts: float = 1.0
    photo_geometry: float = 0.1  # depth/normal/part weight on the photo
    seam: float = 0.1  # photo image weight inside seams (the seam colour gets 1 - seam there)
    hand_mask: float = 1.0
    laplacian_offsets: float = 1e4
    laplacian_scales: float = 0.1
    laplacian_colors: float = 0.1
    colour_prior: float = 4.0  # pull towards the starting colours (what the photo shows, the re-poser inferred)


@dataclass
class TrainSettings:
    preset: str = "preview"
    iterations: int = 2000
    resolution: int = 256  # longer side of the training renders
    template_level: int = 1
    mlp_width: int = 128
    triplane_resolution: int = 128
    checkpoint_every: int = 250
    preview_every: int = 50
    photo_share: float = 0.5
    lr_scale: float = 1.0
    balanced_sampling: bool = True  # ablation switches
    geometry_weighting: bool = True
    pose_deformation: bool = True
    held_out_share: float = 0.1
    seed: int = 0
    weights: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TrainSettings":
        path = PRESETS_DIR / f"{name}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.json")))
            raise ValueError(f"unknown training preset {name!r}: use one of {known}")
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)} - {"weights"}
        values = {k: v for k, v in raw.items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        weight_names = {f.name for f in fields(LossWeights)}
        unknown = set(raw.get("weights", {})) - weight_names
        if unknown:
            raise ValueError(f"preset {name!r} sets unknown loss weights {sorted(unknown)}: use {sorted(weight_names)}")
        values.setdefault("weights", LossWeights(**raw.get("weights", {})))
        return cls(preset=name, **values)


@dataclass
class FrameData:
    rgb: torch.Tensor  # [H, W, 3] on white
    mask: torch.Tensor  # [H, W]
    depth: torch.Tensor  # [H, W] (0 = none)
    normal: torch.Tensor  # [H, W, 3]
    part_rgb: torch.Tensor  # [H, W, 3]
    hands: torch.Tensor  # [H, W] body mesh's hands
    camera: Camera
    smplx: dict[str, torch.Tensor]  # each [1, ...]
    is_photo: bool


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """[H, W] or [H, W, C] float image -> resized to ``size`` (W, H), a writable array."""
    mode = Image.NEAREST if nearest else Image.BILINEAR
    if array.ndim == 2:
        return np.array(Image.fromarray(array.astype(np.float32), mode="F").resize(size, mode))
    return np.stack([_resize(array[..., c], size, nearest) for c in range(array.shape[-1])], -1)


def load_frames(ts: TrainingSet, model: BodyModel, resolution: int) -> list[FrameData]:
    """Every frame of the training set at the training resolution, as tensors."""
    hand_faces = None
    out = []
    for index in range(len(ts)):
        f = ts.load(index)
        camera = f.camera.with_longer_side(resolution)
        size = (camera.width, camera.height)
        mask = _resize(f.mask, size)
        rgb = _resize(f.rgb, size)
        rgb = rgb * mask[..., None] + (1 - mask[..., None])  # on white, like the renders
        params = {k: torch.as_tensor(v)[None] for k, v in f.smplx.items()}
        with torch.no_grad():
            verts = model.forward(**params).vertices[0].numpy()
        if hand_faces is None:
            parts = vertex_parts(model.skinning_weights.numpy())
            hand = np.isin(parts, [PART_INDEX["left_hand"], PART_INDEX["right_hand"]])
            hand_faces = model.faces[hand[model.faces].all(1)]
        out.append(FrameData(
            rgb=torch.as_tensor(rgb, dtype=torch.float32), mask=torch.as_tensor(mask, dtype=torch.float32),
            depth=torch.as_tensor(_resize(f.depth, size, nearest=True), dtype=torch.float32),
            normal=torch.as_tensor(_resize(f.normal, size, nearest=True), dtype=torch.float32),
            part_rgb=torch.as_tensor(PART_COLORS[_resize(f.parts.astype(np.float32), size, nearest=True).astype(int)]),
            hands=torch.as_tensor(mesh_silhouette(verts, hand_faces, camera), dtype=torch.float32),
            camera=camera, smplx=params, is_photo=f.is_photo))
    return out


def _gradient_scaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Same value as ``x``; gradients through it are multiplied by ``scale``."""
    return x.detach() + scale * (x - x.detach())


class Trainer:
    """Trains one workspace's avatar; drive it from any thread."""

    def __init__(self, workspace: str | Path, settings: TrainSettings | None = None,
                 on_event: Callable[[dict], None] | None = None, model: BodyModel | None = None):
        self.workspace = Path(workspace)
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

    # --- control (any thread) -------------------------------------------------------------------

    def start(self) -> threading.Thread:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("training is already running")
        self._stop.clear()
        self._run.set()
        self._thread = threading.Thread(target=self._thread_main, name="trainer", daemon=True)
        self._thread.start()
        return self._thread

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._run.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def set_weights(self, **values: float) -> None:
        """Change loss weights; applied at the next step."""
        with self._lock:
            self._weights = replace(self._weights, **values)

    def set_photo_share(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"photo share must be within 0..1, got {share}")
        with self._lock:
            self._photo_share = share

    def set_lr_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"learning-rate scale must be positive, got {scale}")
        with self._lock:
            self._lr_scale = scale

    # --- setup ----------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.workspace / AVATAR_DIR

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.safetensors"

    def prepare(self) -> None:
        """Load the training set and build (or resume) the avatar and optimiser."""
        s = self.settings
        torch.manual_seed(s.seed)
        self.subject = Subject.load(self.workspace)
        self.model = self._model or load_body_model(self.subject.body_model["kind"])
        ts = TrainingSet(self.workspace)
        self.frames = load_frames(ts, self.model, s.resolution)
        generated = list(range(1, len(self.frames)))
        n_held = int(round(len(generated) * s.held_out_share)) if len(generated) > 4 else 0
        self.held_out = generated[:: max(1, len(generated) // max(n_held, 1))][:n_held] if n_held else []
        train_frames = [i for i in generated if i not in self.held_out]
        share = s.photo_share if s.balanced_sampling else 1.0 / (len(train_frames) + 1)
        self._photo_share = share
        self.sampler = BalancedSampler(train_frames, share, s.seed)
        if self.checkpoint_path.is_file():
            avatar, extra, saved = load_checkpoint(self.checkpoint_path)
            shape_keys = ("template_level", "mlp_width", "triplane_resolution", "pose_deformation")
            same = all(saved.get("settings", {}).get(k) == getattr(s, k) for k in shape_keys)
            if not same or saved.get("frames") != len(self.frames):
                self.on_event({"type": "info", "message": "the checkpoint was made with other settings or "
                                                          "another training set: starting afresh"})
            else:
                self.avatar, self.step = avatar, int(saved["step"])
                self.prior_colors = extra.get("prior_colors", avatar.colors.detach()).clone()
                self._build_optimiser()
                self._restore(extra, saved)
                self.on_event({"type": "resumed", "step": self.step})
                return
        config = AvatarConfig(level=s.template_level, mlp_width=s.mlp_width, triplane_resolution=s.triplane_resolution,
                              pose_deformation=s.pose_deformation)
        sub = self.subject
        surface = ts.photo_surface()
        if surface is not None and ts.manifest.get("template_level", -1) < s.template_level:
            surface = None  # a coarser surface than the avatar: colour it from the photo instead
        if surface is None:
            renderer = BodyRenderer(self.model, s.template_level)
            colors = lambda interp, v: color_from_photo(renderer, sub.image, sub.mask, sub.camera, sub.smplx)  # noqa: E731
        else:  # finer levels keep the coarser levels' vertices first (midpoint subdivision)
            colors = lambda interp, v: surface.colors[: interp.shape[0]]  # noqa: E731
        identity = {"body_model": sub.body_model, "photo": sub.photo_name}
        self.avatar = Avatar.from_body_model(self.model, sub.smplx["betas"], colors, config, identity)
        if surface is not None:
            # The clothed volume the re-poser fitted to the photo, as canonical offsets along the normals.
            a = self.avatar
            with torch.no_grad():
                shift = torch.as_tensor(surface.displacement[: a.num_gaussians], dtype=torch.float32)
                a.offsets.copy_(shift[:, None] * vertex_normals(a.template, a.faces))
        self.step = 0
        self.prior_colors = self.avatar.colors.detach().clone()
        self._build_optimiser()

    def _build_optimiser(self) -> None:
        a, n = self.avatar, len(self.frames)
        # One tensor per frame and key: Adam skips tensors without a gradient, so frames not drawn this
        # step keep still (one shared [n, D] tensor would keep drifting them on stale momentum).
        self.deltas = {k: [torch.zeros(1, self.frames[0].smplx[k].shape[1], requires_grad=True) for _ in range(n)]
                       for k in POSE_KEYS}
        self.neighbours, self.counts = mesh_neighbours(a.faces, a.num_gaussians)
        groups = [
            {"params": [a.offsets], "lr": 1e-3}, {"params": list(a.triplane.parameters()) + list(a.mlp.parameters()), "lr": 1e-3},
            {"params": [a.log_scales], "lr": 1e-2},
            # Adam's steps do not shrink with the gradient while it is far above eps: a Gaussian the frames
            # barely show (a back Gaussian behind the photo's front surface gets a thousandth of a seen
            # one's gradient through the last transmittance) would take full steps on noise, a random walk
            # per channel (chroma speckle, saturated blobs on the unseen side). eps at a well-seen colour's
            # gradient keeps such steps in proportion to the evidence.
            {"params": [a.colors, a.seam_colors], "lr": 1e-2, "eps": COLOUR_ADAM_EPS},
            {"params": [d for k in POSE_KEYS if "hand" not in k for d in self.deltas[k]], "lr": 1e-3},
            {"params": [d for k in POSE_KEYS if "hand" in k for d in self.deltas[k]], "lr": 1e-4},
        ]
        for g in groups:
            g["base_lr"] = g["lr"]
        self.optimiser = torch.optim.Adam(groups)
        self._seams: dict[int, torch.Tensor] = {}
        self._colour_weights: dict[int, torch.Tensor] = {}

    def _restore(self, extra: dict[str, torch.Tensor], saved: dict) -> None:
        with torch.no_grad():
            for k in POSE_KEYS:
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
        extra = {f"delta.{k}": torch.cat(v).detach() for k, v in self.deltas.items()}
        extra["prior_colors"] = self.prior_colors
        for pid, st in self.optimiser.state_dict()["state"].items():
            extra.update({f"adam.{pid}.step": torch.as_tensor(st["step"]).reshape(1) if not torch.is_tensor(st["step"]) else st["step"],
                          f"adam.{pid}.exp_avg": st["exp_avg"], f"adam.{pid}.exp_avg_sq": st["exp_avg_sq"]})
        meta = {"step": self.step, "settings": asdict(self.settings), "frames": len(self.frames),
                "sampler": self.sampler.state()}
        return save_checkpoint(self.avatar, self.checkpoint_path, extra, meta)

    # --- one step -------------------------------------------------------------------------------

    def frame_params(self, index: int) -> dict[str, torch.Tensor]:
        f = self.frames[index]
        params = dict(f.smplx)
        for k in POSE_KEYS:
            params[k] = f.smplx[k] + self.deltas[k][index]
        return params

    def render(self, index: int, features: str = "train", params: dict | None = None):
        """Render frame ``index``'s view: 'train' features (13 channels) or 'positions' (canonical)."""
        f = self.frames[index]
        a = self.avatar
        posed = a.pose(params or self.frame_params(index))
        means = posed.means[0]
        R = torch.as_tensor(f.camera.R, dtype=torch.float32)
        if features == "positions":
            lo, hi = a.template.min(0).values, a.template.max(0).values
            feats = (a.template - lo) / (hi - lo)
        else:
            scale = 1.0
            if not f.is_photo and self.settings.geometry_weighting:
                scale = 1.0 / max(self._step_weights.generated_image, 1e-6)
            colors = _gradient_scaled(posed.colors, scale)
            seam_colors = _gradient_scaled(a.seam_colors.clamp(0, 1), scale)
            normals = vertex_normals(means, a.faces) @ R.T
            part_rgb = torch.as_tensor(PART_COLORS)[a.parts]
            feats = torch.cat([colors, seam_colors, normals, part_rgb, a.hand_mask[:, None].float()], 1)
        viewmat = torch.as_tensor(f.camera.viewmat, dtype=torch.float32)[None]
        K = torch.as_tensor(f.camera.K, dtype=torch.float32)[None]
        return rasterize(means, posed.scales, posed.opacities, feats, viewmat, K, f.camera.width, f.camera.height,
                         antialiased=True)

    def seams(self, index: int) -> torch.Tensor:
        """[H, W] seam mask of a frame (cached; refreshed every few hundred steps)."""
        cached = self._seams.get(index)
        if cached is None:
            with torch.no_grad():
                out = self.render(index, "positions")
                cached = seam_mask(out.features, out.alpha[..., 0])[0]
            self._seams[index] = cached
        return cached

    def colour_weights(self, index: int) -> torch.Tensor:
        """[H, W] where frame ``index``'s colours teach the avatar's colours: inside its person mask, one
        pixel in from the edge. Outside it the only right answer is "no avatar here", which the mask loss
        teaches; a colour loss there would paint the Gaussians in the (random) background colour, and
        the edge pixels blend the person into the photo's own background (a light rim)."""
        cached = self._colour_weights.get(index)
        if cached is None:
            person = (self.frames[index].mask > 0.5).float()[None, None]
            cached = -torch.nn.functional.max_pool2d(-person, 3, stride=1, padding=1)[0, 0]
            self._colour_weights[index] = cached
        return cached

    def losses_for(self, index: int, background: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss terms of frame ``index`` with the render and the frame's person composited over a plain
        ``background`` colour [3] (default white)."""
        w = self._step_weights
        f = self.frames[index]
        out = self.render(index)
        feat, alpha = out.features[0], out.alpha[0, ..., 0]
        safe = alpha.clamp_min(1e-4)[..., None]
        background = torch.ones(3) if background is None else background
        behind = (1 - alpha[..., None]) * background
        rgb, seam_rgb = feat[..., 0:3] + behind, feat[..., 3:6] + behind
        target = f.rgb + (1 - f.mask[..., None]) * (background - 1)  # the frame's person over it
        normal, part_rgb, hands = feat[..., 6:9] / safe, feat[..., 9:12] / safe, feat[..., 12]
        seams = self.seams(index)
        colour_weight = self.colour_weights(index)
        inside = (f.mask > 0.5) & (alpha > 0.5)
        terms: dict[str, torch.Tensor] = {"mask": w.mask * (alpha - f.mask).abs().mean()}
        geometry = w.photo_geometry if f.is_photo else 1.0
        valid_depth = inside & (f.depth > 0)
        terms["depth"] = geometry * w.depth * losses.scale_invariant_depth(out.depth[0, ..., 0][None], f.depth[None], valid_depth[None])
        terms["normal"] = geometry * w.normal * losses.normal_loss(normal[None], f.normal[None], inside[None])
        union = (f.mask > 0.5) | (alpha > 0.5)
        terms["parts"] = geometry * w.parts * ((part_rgb - f.part_rgb).abs().sum(-1) * union).sum() / union.sum().clamp_min(1)
        if f.is_photo:
            # Inside seams the photo keeps weight ``seam`` and the seam colour the rest, both per pixel
            # on the same footing as the image loss (normalised by the same total weight).
            weight = torch.where(seams, torch.full_like(f.mask, w.seam), torch.ones_like(f.mask)) * colour_weight
            terms["image"] = w.image * losses.image_loss(rgb[None], target[None], weight[None])
            seam_pull = (rgb - seam_rgb.detach()).abs().mean(-1) * seams * (1 - w.seam) * colour_weight
            terms["seam"] = w.image * seam_pull.sum() / weight.sum().clamp_min(1.0)
        else:
            image_weight = w.generated_image if self.settings.geometry_weighting else 1.0
            terms["image"] = image_weight * losses.image_loss(rgb[None], target[None], colour_weight[None])
            terms["seam"] = image_weight * losses.image_loss(seam_rgb[None], target[None], colour_weight[None])
        terms["hand_mask"] = w.hand_mask * ((hands - f.hands).abs() * torch.maximum(f.hands, hands.detach().clamp(0, 1))).mean()
        a = self.avatar
        terms["laplacian"] = (w.laplacian_offsets * uniform_laplacian(a.offsets, self.neighbours, self.counts)
                              + w.laplacian_scales * uniform_laplacian(a.log_scales[:, None], self.neighbours, self.counts)
                              + w.laplacian_colors * uniform_laplacian(a.colors, self.neighbours, self.counts))
        # The frames may move a colour only as far as their evidence agrees: a Gaussian few frames show
        # gets weak, inconsistent pulls that would otherwise add up to speckle on the unseen side.
        terms["colour_prior"] = w.colour_prior * (a.colors - self.prior_colors).pow(2).sum(-1).mean()
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def train_step(self) -> dict[str, float]:
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
        background = torch.rand(3, generator=torch.Generator().manual_seed(s.seed * 1_000_003 + self.step))
        loss, terms = self.losses_for(index, background)
        loss.backward()
        self.optimiser.step()
        with torch.no_grad():  # colours stay colours: a channel past 0 or 1 would freeze behind the clamp
            self.avatar.colors.clamp_(0, 1)
            self.avatar.seam_colors.clamp_(0, 1)
        self.avatar.invalidate_cache()
        self.step += 1
        terms["total"] = float(loss.detach())
        terms["frame"] = index
        return terms

    # --- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Masked PSNR on the photo's view; mask IoU on the held-out generated frames."""
        photo = self.frames[0]
        out = self.render(0)
        rgb = out.features[0, ..., :3] + (1 - out.alpha[0])
        result = {"photo_psnr": losses.masked_psnr(rgb[None], photo.rgb[None], photo.mask[None])}
        ious = []
        for index in self.held_out:
            f = self.frames[index]
            alpha = self.render(index, params=dict(f.smplx)).alpha[0, ..., 0]
            ious.append(losses.mask_iou(alpha, f.mask))
        if ious:
            result["held_out_mask_iou"] = float(np.mean(ious))
        return result

    def preview(self, index: int = 0) -> np.ndarray:
        """[H, W, 3] uint8 render of a training view (for the app's preview)."""
        with torch.no_grad():
            out = self.render(index)
            rgb = out.features[0, ..., :3] + (1 - out.alpha[0])
        return (rgb.clamp(0, 1).numpy() * 255).astype(np.uint8)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to ``settings.iterations`` in this thread (the CLI's path); returns the final figures."""
        if self.avatar is None:
            self.prepare()
        s = self.settings
        t0, step0 = time.time(), self.step
        while self.step < s.iterations and not self._stop.is_set():
            if not self._run.is_set():
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
        self.save_checkpoint()
        figures = self.evaluate()
        figures.update(step=self.step, seconds=round(time.time() - t0, 1))
        if self.step >= s.iterations:
            save_avatar(self.avatar, self.folder / "bundle", extra={"figures": figures, "settings": asdict(s)})
            self.on_event({"type": "finished", **figures})
        else:
            self.on_event({"type": "stopped", **figures})
        return figures

    def _thread_main(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported to the app, never raised into a GUI
            self.error = exc
            self.on_event({"type": "error", "message": f"{type(exc).__name__}: {exc}"})

