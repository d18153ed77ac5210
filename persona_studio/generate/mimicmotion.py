"""MimicMotion backend: training frames from the reference photo and a skeleton video (CUDA + your weights).

PERSONA makes its pose-rich training frames with MimicMotion (Zhang et al., ICML 2025), a pose-guided
Stable Video Diffusion (SVD-xt-1.1) model. Nothing of it ships with PERSONA Studio; to use it, provide:

1. **A CUDA GPU** and the optional packages: ``pip install "persona-studio[gpu]"`` (diffusers, transformers).
2. **``MimicMotion_1-1.pth``** (3.05 GB) from the MimicMotion release (Hugging Face ``tencent/MimicMotion``).
   Set ``mimicmotion_path`` in Settings to the file or to the folder holding it. It carries the whole
   video UNet (keys ``unet.*``) and the pose guider (keys ``pose_net.*``), in fp16.
3. **The ``stable-video-diffusion-img2vid-xt-1-1`` folder** (Hugging Face
   ``stabilityai/stable-video-diffusion-img2vid-xt-1-1``; accept its licence there), in the diffusers
   layout. Set ``svd_path`` in Settings to it. Read from it:
   ``unet/config.json`` (only the config: the UNet's weights come from ``MimicMotion_1-1.pth``),
   ``vae/`` and ``image_encoder/`` (``config.json`` + ``*.safetensors``, full or ``.fp16`` variant),
   ``scheduler/scheduler_config.json`` and ``feature_extractor/preprocessor_config.json``.

How frames are made (as in MimicMotion's release and PERSONA's use of it): the reference (masked person
on white) and the skeletons are letterboxed into 576x1024 (portrait; 1024x576 for landscape input).
The reference conditions the UNet three ways: its CLIP image embedding, its VAE latent concatenated to
every frame's noisy latent, and, as frame 0 of the sequence, its own skeleton. The pose guider turns
each skeleton into features added to the output of the UNet's first convolution. The sequence is
denoised in windows of 72 frames that all include frame 0 and overlap by 6 frames; per-window
predictions are blended with tent weights (a linear cross-fade across each overlap); classifier-free
guidance 2.0 against a branch with zeroed image, latent and pose conditions; 25 Euler steps; the latents
are decoded 8 frames at a time, frame 0 is dropped and the rest are mapped back to the input size.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_NAME = "MimicMotion_1-1.pth"
MODEL_SIZE = (576, 1024)  # (width, height): MimicMotion's portrait frames; landscape input uses it turned
MOTION_BUCKET_ID = 127  # SVD's motion micro-condition; MimicMotion keeps the pipeline default
CUDA_MESSAGE = "MimicMotion: needs CUDA (none here)"
SVD_CONFIGS = ("unet/config.json", "vae/config.json", "image_encoder/config.json",
               "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json")
SVD_WEIGHTS = {"vae": "diffusion_pytorch_model", "image_encoder": "model"}  # sub-folder: safetensors stem
SVD_SOURCE = "stabilityai/stable-video-diffusion-img2vid-xt-1-1 on Hugging Face"


class MimicMotionError(RuntimeError):
    """The MimicMotion backend cannot run; the one-line message says what is missing and where it goes."""


# --- what the backend needs -------------------------------------------------------------------------

def _checkpoint_file(checkpoint: Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint / CHECKPOINT_NAME if checkpoint.is_dir() else checkpoint


def _cuda_problem(device: str) -> str | None:
    if not torch.cuda.is_available():
        return CUDA_MESSAGE
    if device != "auto" and torch.device(device).type != "cuda":
        return f"MimicMotion: needs CUDA (device {device!r} was asked for)"
    return None


def _package_problem() -> str | None:
    for name in ("diffusers", "transformers"):
        if importlib.util.find_spec(name) is None:
            return f'MimicMotion: {name} is not installed (pip install "persona-studio[gpu]")'
    return None


def _file_problem(checkpoint: Path | None, svd_folder: Path | None) -> str | None:
    if checkpoint is None:
        return (f"MimicMotion: no checkpoint set (get {CHECKPOINT_NAME} from the MimicMotion release, "
                "tencent/MimicMotion on Hugging Face, and set mimicmotion_path in Settings)")
    if not _checkpoint_file(checkpoint).is_file():
        return f"MimicMotion: no weights at {checkpoint} (put {CHECKPOINT_NAME} there, from the MimicMotion release)"
    if svd_folder is None:
        return f"MimicMotion: no SVD-xt-1-1 folder set (get {SVD_SOURCE} and set svd_path in Settings)"
    svd_folder = Path(svd_folder)
    if not svd_folder.is_dir():
        return f"MimicMotion: no SVD-xt-1-1 folder at {svd_folder} (put {SVD_SOURCE} there)"
    for relative in SVD_CONFIGS:
        if not (svd_folder / relative).is_file():
            return f"MimicMotion: the SVD-xt-1-1 folder {svd_folder} lacks {relative}"
    for sub, stem in SVD_WEIGHTS.items():
        if not any((svd_folder / sub / f"{stem}{tag}.safetensors").is_file() for tag in ("", ".fp16")):
            return (f"MimicMotion: the SVD-xt-1-1 folder {svd_folder} lacks {sub}/{stem}.safetensors "
                    f"(or {stem}.fp16.safetensors)")
    return None


def check_mimicmotion(checkpoint: Path | None, svd_folder: Path | None, device: str = "auto") -> str | None:
    """None when the backend can run, else the reason in one line (CUDA first, then packages, then files)."""
    return _cuda_problem(device) or _package_problem() or _file_problem(checkpoint, svd_folder)


def _variant(folder: Path, stem: str) -> str | None:
    """The full-precision weights when present, else the fp16 variant (the folder was checked)."""
    return None if (folder / f"{stem}.safetensors").is_file() else "fp16"


# --- the pose guider ----------------------------------------------------------------------------------

class PoseNet(nn.Module):
    """MimicMotion's pose guider: skeleton frames -> features added after the UNet's first convolution.

    Eight 3x3/4x4 convolutions each followed by SiLU (three of them stride 2: 1/8 resolution, the VAE's
    latent grid), a 1x1 projection to the UNet's first block width, times a learnt scalar. Parameter
    names match the release's checkpoint: ``conv_layers.{0,2,...,14}``, ``final_proj``, ``scale``.
    """

    LAYERS = ((3, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2),
              (32, 32, 3, 1), (32, 64, 4, 2), (64, 64, 3, 1), (64, 128, 3, 1))  # (in, out, kernel, stride)

    def __init__(self, out_channels: int = 320):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, kernel, stride in self.LAYERS:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(self.LAYERS[-1][1], out_channels, kernel_size=1)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, skeletons: torch.Tensor) -> torch.Tensor:
        """skeletons [N, 3, H, W] in [-1, 1] -> [N, out_channels, H/8, W/8]."""
        return self.final_proj(self.conv_layers(skeletons)) * self.scale


# --- windows and blending -----------------------------------------------------------------------------

def window_plan(num_frames: int, window: int, overlap: int) -> list[list[int]]:
    """Latent-frame indices of each denoising window over ``num_frames`` frames (frame 0 = the reference).

    Every window holds frame 0 and ``window - 1`` consecutive frames; windows start ``window - overlap``
    frames apart (so consecutive ones share frame 0 and ``overlap - 1`` driving frames) and, when that
    stride does not land on the end, a last window is aligned to the end. A sequence no longer than a
    window is one window.
    """
    if num_frames <= window:
        return [list(range(num_frames))]
    starts = range(0, num_frames - window + 1, window - overlap)
    windows = [[0, *range(start + 1, start + window)] for start in starts]
    if windows[-1][-1] < num_frames - 1:
        windows.append([0, *range(num_frames - window + 1, num_frames)])
    return windows


def window_weights(length: int) -> torch.Tensor:
    """Tent weights over a window's positions, [length]: ``(k + 0.5) * 2 / length`` up to the middle, then down.

    Where two windows overlap, one is on its falling side and the other on its rising side and the
    two weights sum to a constant, so after normalisation the blend is a linear cross-fade.
    """
    ramp = (torch.arange(length, dtype=torch.float32) + 0.5) * 2 / length
    return torch.minimum(ramp, 2 - ramp)


def blend_windows(windows: list[list[int]], predict: Callable[[list[int]], torch.Tensor],
                  num_frames: int) -> torch.Tensor:
    """Tent-weighted mean of the per-window predictions: predict(idx) [B, len(idx), ...] -> [B, num_frames, ...]."""
    total = weight_sum = None
    for idx in windows:
        prediction = predict(idx).float()
        weights = window_weights(len(idx)).to(prediction.device)
        if total is None:
            total = prediction.new_zeros((prediction.shape[0], num_frames, *prediction.shape[2:]))
            weight_sum = prediction.new_zeros(num_frames)
        total[:, idx] += prediction * weights.view(1, -1, *[1] * (prediction.ndim - 2))
        weight_sum[idx] += weights
    return total / weight_sum.view(1, -1, *[1] * (total.ndim - 2))


# --- letterboxing ---------------------------------------------------------------------------------------

def fit_box(size: tuple[int, int], canvas: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a ``size`` (height, width) image scaled to fit, centred, in ``canvas``."""
    scale = min(canvas[0] / size[0], canvas[1] / size[1])
    height, width = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    return (canvas[0] - height) // 2, (canvas[1] - width) // 2, height, width


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def letterbox(images: torch.Tensor, canvas: tuple[int, int], fill: float) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, *canvas]: scaled to fit without cropping, centred, the rest ``fill``."""
    top, left, height, width = fit_box(tuple(images.shape[-2:]), canvas)
    if (height, width) == tuple(canvas):
        return _resize(images, canvas)
    out = images.new_full((*images.shape[:2], *canvas), fill)
    out[..., top:top + height, left:left + width] = _resize(images, (height, width))
    return out


def unletterbox(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`letterbox`: [N, C, *canvas] -> [N, C, *size]."""
    top, left, height, width = fit_box(size, tuple(images.shape[-2:]))
    return _resize(images[..., top:top + height, left:left + width], size)


def _unit_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255


def _check_frames(reference: np.ndarray, skeletons: np.ndarray, reference_skeleton: np.ndarray | None) -> None:
    if not (isinstance(reference, np.ndarray) and reference.dtype == np.uint8 and reference.ndim == 3
            and reference.shape[2] == 3):
        raise ValueError("reference must be a uint8 RGB image [H, W, 3]")
    if not (isinstance(skeletons, np.ndarray) and skeletons.dtype == np.uint8 and skeletons.ndim == 4
            and skeletons.shape[3] == 3 and len(skeletons) > 0):
        raise ValueError("skeletons must be uint8 RGB frames [T, H, W, 3] with T >= 1")
    if skeletons.shape[1:3] != reference.shape[:2]:
        raise ValueError(f"skeleton frames are {skeletons.shape[2]}x{skeletons.shape[1]} but the reference is "
                         f"{reference.shape[1]}x{reference.shape[0]}: draw them at the reference's size")
    if reference_skeleton is not None and reference_skeleton.shape != reference.shape:
        raise ValueError("reference_skeleton must be a uint8 RGB image of the reference's size")


# --- the generator --------------------------------------------------------------------------------------

class MimicMotionGenerator:
    """MimicMotion loaded from the user's files (see the module docstring); :meth:`generate` makes frames.

    ``size`` is the (width, height) the model runs at, portrait (turned for landscape input); the
    default is MimicMotion's 576x1024. ``allow_cpu`` exists for tests with tiny weights only.
    """

    def __init__(self, checkpoint: Path, svd_folder: Path, device: str = "cuda",
                 dtype: torch.dtype = torch.float16, allow_cpu: bool = False,
                 size: tuple[int, int] = MODEL_SIZE):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        if not (allow_cpu and resolved.type == "cpu"):
            problem = _cuda_problem(device)
            if problem:
                raise MimicMotionError(problem)
        problem = _package_problem() or _file_problem(checkpoint, svd_folder)
        if problem:
            raise MimicMotionError(problem)
        self.device, self.dtype = resolved, dtype
        self._load(_checkpoint_file(checkpoint), Path(svd_folder))
        # The latent grid (1/8 for SVD's VAE) must survive every UNet downsampling.
        multiple = 2 ** (len(self.vae.config.block_out_channels) - 1 + len(self.unet.config.block_out_channels) - 1)
        if size[0] % multiple or size[1] % multiple:
            raise ValueError(f"size {size[0]}x{size[1]}: both sides must be multiples of {multiple} for this model")
        self.size = size

    def _load(self, checkpoint: Path, svd: Path) -> None:
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionModelWithProjection

        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated download, a pickle, not a torch file at all
            raise MimicMotionError(f"MimicMotion: cannot read {checkpoint} ({type(exc).__name__}): "
                                   f"download {CHECKPOINT_NAME} again from the MimicMotion release") from exc
        # The release builds the UNet from SVD's config and takes all its weights from the checkpoint,
        # so nothing is initialised here (meta device) and SVD's own UNet weights are never read.
        with torch.device("meta"):
            unet = UNetSpatioTemporalConditionModel.from_config(
                UNetSpatioTemporalConditionModel.load_config(svd / "unet"))
            pose_net = PoseNet(unet.config.block_out_channels[0])
        for prefix, module in (("unet.", unet), ("pose_net.", pose_net)):
            _assign_weights(module, state, prefix, checkpoint, self.dtype)
        del state
        self.unet = unet.to(self.device).eval()
        self.pose_net = pose_net.to(self.device).eval()
        self.vae = AutoencoderKLTemporalDecoder.from_pretrained(
            svd / "vae", variant=_variant(svd / "vae", SVD_WEIGHTS["vae"]), torch_dtype=self.dtype,
        ).to(self.device).eval()
        if self.dtype == torch.float16 and self.vae.config.force_upcast:
            # As released: the reference is encoded with the VAE upcast to fp32 (its config's force_upcast).
            self.vae.encoder.float()
            self.vae.quant_conv.float()
        self.image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            svd / "image_encoder", variant=_variant(svd / "image_encoder", SVD_WEIGHTS["image_encoder"]),
        ).to(self.device, self.dtype).eval()
        self.scheduler = EulerDiscreteScheduler.from_pretrained(svd / "scheduler")
        clip = json.loads((svd / "feature_extractor" / "preprocessor_config.json").read_text("utf-8"))
        self.clip_mean = torch.tensor(clip["image_mean"], device=self.device).view(1, 3, 1, 1)
        self.clip_std = torch.tensor(clip["image_std"], device=self.device).view(1, 3, 1, 1)
        expected = self.unet.add_embedding.linear_1.in_features
        if self.unet.config.addition_time_embed_dim * 3 != expected:
            raise MimicMotionError(f"MimicMotion: {svd / 'unet/config.json'} is not SVD's: its added-time "
                                   f"embedding takes {expected} values, not 3 x addition_time_embed_dim")

    def _canvas(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the model runs at for an input of that shape: portrait if taller than wide (as released)."""
        long, short = max(self.size), min(self.size)
        return (long, short) if height > width else (short, long)

    @torch.inference_mode()
    def generate(self, reference: np.ndarray, skeletons: np.ndarray, *, seed: int = 0, steps: int = 25,
                 guidance: float = 2.0, window: int = 72, overlap: int = 6, noise_aug_strength: float = 0.0,
                 fps: int = 7, decode_chunk: int = 8, reference_skeleton: np.ndarray | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Frames [T, H, W, 3] uint8 for ``skeletons`` [T, H, W, 3] driving ``reference`` [H, W, 3].

        ``reference_skeleton`` is the reference photo's own skeleton (frame 0 of every window, as in
        MimicMotion); without it the first driving skeleton stands in. ``fps`` is the frame-rate
        micro-condition: the release always passes 7 (its config's 15 is only the saved video's rate).
        Raises ``InterruptedError`` when ``cancelled()`` turns true (checked before every UNet pass).
        """
        _check_frames(reference, skeletons, reference_skeleton)
        if steps < 1 or window < 2 or not 0 <= overlap < window or decode_chunk < 1:
            raise ValueError("need steps >= 1, window >= 2, 0 <= overlap < window and decode_chunk >= 1")
        report = progress or (lambda fraction, message: None)
        stop = cancelled or (lambda: False)
        height, width = reference.shape[:2]
        canvas = self._canvas(height, width)
        pose_zero = skeletons[0] if reference_skeleton is None else reference_skeleton
        num_frames = len(skeletons) + 1  # frame 0 is the reference
        # Noise is drawn on the CPU and moved: the seed decides the same frames on every device.
        generator = torch.Generator().manual_seed(seed)
        report(0.0, "MimicMotion: encoding the reference")

        reference_px = letterbox(_unit_images(reference[None], self.device), canvas, fill=1.0)  # [1, 3, Hc, Wc]
        embeddings = self._clip_embeddings(reference_px)                                   # [2, 1, D]
        image_latents = self._image_latents(reference_px, noise_aug_strength, generator)   # [2, C, h, w]
        time_ids = torch.tensor([[fps - 1, MOTION_BUCKET_ID, noise_aug_strength]] * 2,
                                device=self.device, dtype=self.dtype)
        self.scheduler.set_timesteps(steps, device=self.device)
        # One window of noise, repeated along the sequence (as the release does).
        tile = min(window, num_frames)
        noise = torch.randn((1, tile, *image_latents.shape[1:]), generator=generator).to(self.device, self.dtype)
        latents = noise.repeat(1, -(-num_frames // tile), 1, 1, 1)[:, :num_frames] * self.scheduler.init_noise_sigma

        windows = window_plan(num_frames, window, overlap)
        chunks = range(0, num_frames, decode_chunk)
        total, done = steps * len(windows) + len(chunks), 0
        for step, timestep in enumerate(self.scheduler.timesteps):
            scaled = self.scheduler.scale_model_input(torch.cat([latents, latents]), timestep)

            def predict(idx: list[int]) -> torch.Tensor:
                """UNet predictions (unconditional, conditional) [2, n, C, h, w] for the window of frames
                ``idx``; raises InterruptedError when cancelled."""
                nonlocal done
                if stop():
                    raise InterruptedError("MimicMotion generation cancelled")
                poses = self._pose_pixels(pose_zero, skeletons, idx, canvas)
                prediction = self._denoise(scaled[:, idx], image_latents, poses, embeddings, time_ids, timestep)
                done += 1
                report(done / total, f"MimicMotion: step {step + 1}/{steps}, frames {idx[1]}-{idx[-1]}")
                return prediction

            unconditional, conditional = blend_windows(windows, predict, num_frames).chunk(2)
            guided = unconditional + guidance * (conditional - unconditional)
            latents = self.scheduler.step(guided.to(latents.dtype), timestep, latents, generator=generator,
                                          return_dict=False)[0]

        frames = np.empty((len(skeletons), height, width, 3), np.uint8)
        for start in chunks:
            if stop():
                raise InterruptedError("MimicMotion generation cancelled")
            decoded = unletterbox(self._decode(latents[0, start:start + decode_chunk]), (height, width))
            decoded = (decoded * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            first = max(start, 1)  # frame 0 (the reference) is dropped
            frames[first - 1:start + len(decoded) - 1] = decoded[first - start:]
            done += 1
            report(done / total, f"MimicMotion: decoded {min(start + decode_chunk, num_frames) - 1} frames")
        return frames

    def _clip_embeddings(self, reference_px: torch.Tensor) -> torch.Tensor:
        """[1, 3, Hc, Wc] in [0, 1] -> [2, 1, D]: zeros (unconditional) and the CLIP image embedding."""
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing)

        side = self.image_encoder.config.image_size
        # SVD's recipe: squash (no crop) to the CLIP size with an anti-aliasing blur, in [-1, 1].
        pixels = (_resize_with_antialiasing(reference_px * 2 - 1, (side, side)) + 1) / 2
        pixels = (pixels - self.clip_mean) / self.clip_std
        embedding = self.image_encoder(pixels.to(self.dtype)).image_embeds[:, None]
        return torch.cat([torch.zeros_like(embedding), embedding])

    def _image_latents(self, reference_px: torch.Tensor, noise_aug_strength: float,
                       generator: torch.Generator) -> torch.Tensor:
        """[1, 3, Hc, Wc] in [0, 1] -> [2, C, h, w]: zeros and the VAE latent's mode (unscaled, as SVD)."""
        pixels = reference_px * 2 - 1
        pixels = pixels + noise_aug_strength * torch.randn(pixels.shape, generator=generator).to(pixels.device)
        encoder_dtype = self.vae.quant_conv.weight.dtype
        latent = self.vae.encode(pixels.to(encoder_dtype)).latent_dist.mode().to(self.dtype)
        return torch.cat([torch.zeros_like(latent), latent])

    def _pose_pixels(self, pose_zero: np.ndarray, skeletons: np.ndarray, idx: list[int],
                     canvas: tuple[int, int]) -> torch.Tensor:
        """The skeleton frames of a window, [n, 3, Hc, Wc] in [-1, 1] (frame 0: the reference's skeleton)."""
        frames = np.stack([pose_zero if i == 0 else skeletons[i - 1] for i in idx])
        return (letterbox(_unit_images(frames, self.device), canvas, fill=0.0) * 2 - 1).to(self.dtype)

    def _denoise(self, noisy: torch.Tensor, image_latents: torch.Tensor, poses: torch.Tensor,
                 embeddings: torch.Tensor, time_ids: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """One UNet pass over a window. noisy [2, n, C, h, w] (unconditional, conditional) -> [2, n, C, h, w]."""
        n = noisy.shape[1]
        model_input = torch.cat([noisy, image_latents[:, None].expand(-1, n, -1, -1, -1)], dim=2)
        features = self.pose_net(poses)                                   # [n, C0, h, w]
        features = torch.cat([torch.zeros_like(features), features])     # the unconditional half has no pose
        # MimicMotion adds the pose features to the output of the UNet's first convolution.
        hook = self.unet.conv_in.register_forward_hook(lambda _module, _inputs, output: output + features)
        try:
            return self.unet(model_input, timestep, encoder_hidden_states=embeddings, added_time_ids=time_ids,
                             return_dict=False)[0]
        finally:
            hook.remove()

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[n, C, h, w] latents -> [n, 3, Hc, Wc] in [0, 1], decoded together (the decoder is temporal)."""
        frames = self.vae.decode(latents / self.vae.config.scaling_factor, num_frames=len(latents)).sample
        return (frames.float() / 2 + 0.5).clamp(0, 1)


def _assign_weights(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, source: Path,
                    dtype: torch.dtype) -> None:
    """Give the (meta-device) ``module`` the checkpoint's ``prefix`` weights as ``dtype``; all must be there."""
    weights = {key[len(prefix):]: value.to(dtype) for key, value in state.items() if key.startswith(prefix)}
    try:
        result = module.load_state_dict(weights, strict=False, assign=True)
    except RuntimeError as exc:  # shapes that do not fit: another model's checkpoint or config
        detail = str(exc).strip().splitlines()[-1].strip()
        raise MimicMotionError(f"MimicMotion: {source} does not fit the SVD-xt-1-1 UNet config ({detail})") from exc
    if result.missing_keys:
        raise MimicMotionError(f"MimicMotion: {source} is not a MimicMotion checkpoint: {len(result.missing_keys)} "
                               f"{prefix}* weights missing (e.g. {prefix}{result.missing_keys[0]})")
