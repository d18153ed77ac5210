"""Differentiable Gaussian rasterisation: one entry point, two backends with the same maths.

``rasterize`` splats 3D Gaussians (isotropic or anisotropic) into B pinhole cameras and returns
composited features of any width (RGB, normals, part colours, ...), alpha and expected depth. The
``gsplat`` backend runs gsplat's CUDA kernels; the ``torch`` backend is a pure-PyTorch reference
that runs anywhere (CPU included) with gradients, following gsplat 1.5's conventions: EWA
projection, 0.3 px dilation, opacity-aware bounding boxes, alpha = min(0.999, o exp(-sigma)),
pairs below alpha 1/255 skipped, compositing stopped before transmittance reaches 1e-4, pixel
centres at +0.5. The camera convention is ``persona_studio.render.camera``'s.
"""

from __future__ import annotations

import importlib.util
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from persona_studio.render.camera import Camera, stack_cameras
from persona_studio.render.torch_backend import EPS2D, rasterize_torch

BACKENDS = ("torch", "gsplat")
GPU_INSTALL_HINT = 'pip install "persona-studio[gpu]"'


def gradient_scaled(x: Tensor, scale: float | Tensor) -> Tensor:
    """Same value as ``x``; gradients through it are multiplied by ``scale``, a number or a tensor that
    broadcasts to ``x`` (how much of a render's loss reaches a parameter: the trainer's geometry
    weighting, a photo's share of each Gaussian's colour, an extra photo's share of the surface fit)."""
    return x.detach() + scale * (x - x.detach())


@dataclass
class RasterOutput:
    """What :func:`rasterize` returns for B cameras (shapes beside each field)."""
    features: Tensor  # [B, H, W, C] composited features, background blended in as bg * (1 - alpha)
    alpha: Tensor  # [B, H, W, 1]
    depth: Tensor  # [B, H, W, 1] expected camera-space z, alpha-normalised (0 where alpha ~ 0), like gsplat "ED"


def _gsplat_problem(device: torch.device | None) -> str | None:
    """Why gsplat cannot render on ``device`` (None: any CUDA device), or None when it can."""
    if importlib.util.find_spec("gsplat") is None:
        return f"the gsplat package is not installed ({GPU_INSTALL_HINT})"
    if not torch.cuda.is_available():
        return f"CUDA is not available to PyTorch {torch.__version__} (gsplat needs an NVIDIA GPU and a CUDA build)"
    if device is not None and device.type != "cuda":
        return f"the tensors are on {device}; move the Gaussians and cameras to a CUDA device"
    return None


def available_backends() -> dict[str, str | None]:
    """Each backend -> None when it can run here, else the reason it cannot."""
    return {"torch": None, "gsplat": _gsplat_problem(None)}


def auto_backend(device: torch.device | str = "cpu") -> tuple[str, str]:
    """The backend ``backend="auto"`` picks for tensors on ``device``, and a sentence saying why."""
    device = torch.device(device)
    problem = _gsplat_problem(device)
    if problem is None:
        return "gsplat", f"gsplat: CUDA kernels on {device}"
    return "torch", f"gsplat: {problem}; using the PyTorch reference"


def _batched(name: str, x: Tensor, per_gaussian: tuple[int, ...], B: int, N: int) -> Tensor:
    """[N, *per_gaussian] or [B, N, *per_gaussian] -> [B, N, *per_gaussian] (a broadcast view)."""
    shape = tuple(x.shape)
    if shape == (N, *per_gaussian):
        return x.expand(B, *shape)
    if shape == (B, N, *per_gaussian):
        return x
    dims = ", ".join(str(d) for d in per_gaussian)
    sep = ", " if per_gaussian else ""
    raise ValueError(f"{name} must have shape [N{sep}{dims}] or [B, N{sep}{dims}] with N={N} Gaussians and "
                     f"B={B} cameras, got {list(shape)}")


def _check_inputs(means, scales, opacities, features, viewmats, Ks, width, height, quats, background,
                  near, far, backend):
    """Validate and broadcast the inputs to [B, N, ...]; raise ValueError saying what to fix."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'torch' or 'gsplat', got {backend!r}")
    if not 0.0 <= near < far:
        raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
    tensors = {"means": means, "scales": scales, "opacities": opacities, "features": features,
               "viewmats": viewmats, "Ks": Ks, "quats": quats, "background": background}
    for name, x in tensors.items():
        if x is not None and not (isinstance(x, Tensor) and x.is_floating_point()):
            raise ValueError(f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}"
                             + (f" of {x.dtype}" if isinstance(x, Tensor) else ""))
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats must be [B, 4, 4] world -> camera matrices, got {list(viewmats.shape)}")
    B = viewmats.shape[0]
    if B == 0:
        raise ValueError("viewmats holds no camera: pass at least one [4, 4] matrix as [1, 4, 4]")
    if tuple(Ks.shape) != (B, 3, 3):
        raise ValueError(f"Ks must be [B, 3, 3] intrinsics with B={B} like viewmats, got {list(Ks.shape)}")
    if means.ndim not in (2, 3) or means.shape[-1] != 3:
        raise ValueError(f"means must be [N, 3] or [B, N, 3] world positions, got {list(means.shape)}")
    N = means.shape[-2]
    means = _batched("means", means, (3,), B, N)
    if features.ndim not in (2, 3) or features.shape[-1] == 0:
        raise ValueError(f"features must be [N, C] or [B, N, C] with C >= 1, got {list(features.shape)}")
    C = features.shape[-1]
    features = _batched("features", features, (C,), B, N)
    opacities = _batched("opacities", opacities, (), B, N)
    if tuple(scales.shape) == (N,) or (tuple(scales.shape) == (B, N) and scales.shape[-1] not in (1, 3)):
        scales = scales[..., None]  # isotropic; [N, 3] wins the tie when B == N == 3
    if scales.shape[-1:] not in ((1,), (3,)):
        raise ValueError(f"scales must be [N], [N, 1] (isotropic) or [N, 3] (anisotropic) standard "
                         f"deviations in metres, optionally with a leading B, got {list(scales.shape)}")
    scales = _batched("scales", scales, (scales.shape[-1],), B, N)
    if quats is not None:
        if scales.shape[-1] != 3:
            raise ValueError("quats only apply to anisotropic [N, 3] scales; pass quats=None with isotropic scales")
        quats = _batched("quats", quats, (4,), B, N)
    if background is not None:
        if tuple(background.shape) == (C,):
            background = background.expand(B, C)
        elif tuple(background.shape) != (B, C):
            raise ValueError(f"background must be [C] or [B, C] with C={C} feature channels and B={B} "
                             f"cameras, got {list(background.shape)}")
    devices = {x.device for x in (means, scales, opacities, features, viewmats, Ks, quats, background)
               if x is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(str(d) for d in devices)}")
    return tuple(None if x is None else x.to(means.dtype)
                 for x in (means, scales, opacities, features, viewmats, Ks, quats, background))


def rasterize(
    means: Tensor,  # [N, 3] or [B, N, 3] world positions (B = number of cameras)
    scales: Tensor,  # [N], [N, 1] isotropic or [N, 3] anisotropic std devs in metres (NOT log); leading B optional
    opacities: Tensor,  # [N] in [0, 1]; leading B optional
    features: Tensor,  # [N, C] or [B, N, C], any C (RGB, normals, part colours, canonical-position colours, masks ...)
    viewmats: Tensor,  # [B, 4, 4] world -> camera
    Ks: Tensor,  # [B, 3, 3]
    width: int, height: int,
    *,
    quats: Tensor | None = None,  # [N, 4] wxyz (leading B optional); only for anisotropic scales; None = identity
    background: Tensor | None = None,  # [C] or [B, C]; None = zeros
    near: float = 0.01, far: float = 100.0,
    antialiased: bool = False,  # Mip-Splatting style opacity compensation (gsplat rasterize_mode="antialiased")
    eps2d: float = EPS2D,  # px^2 of blur added to every projected Gaussian (gsplat's eps2d)
    backend: str = "auto",  # "auto" | "torch" | "gsplat"
) -> RasterOutput:
    """Render Gaussians into B cameras; differentiable w.r.t. every tensor (the cameras' included).

    Gaussians whose camera-space z lies outside [near, far] are dropped. With ``antialiased`` the
    opacity is multiplied by sqrt(det(cov2d) / det(cov2d + eps2d I)) so that a Gaussian smaller than
    a pixel fades instead of growing (Mip-Splatting). ``eps2d`` is the blur in pixels of this image; an
    image that stands for a larger one downsampled passes the larger one's (see ``train.frames``).
    ``backend="auto"`` uses gsplat for CUDA tensors when it is installed, else the PyTorch reference;
    ``auto_backend`` says which and why.
    Scales of shape [3, 3] with three cameras read as [N, 3] (three anisotropic Gaussians).
    """
    means, scales, opacities, features, viewmats, Ks, quats, background = _check_inputs(
        means, scales, opacities, features, viewmats, Ks, width, height, quats, background, near, far, backend)
    if not 0.0 <= eps2d <= 100.0:
        raise ValueError(f"eps2d must be a blur of 0 to 100 px^2, got {eps2d}")
    if backend == "auto":
        backend, _ = auto_backend(means.device)
    if backend == "gsplat":
        problem = _gsplat_problem(means.device)
        if problem is not None:
            raise RuntimeError(f'backend="gsplat" cannot run: {problem}. backend="torch" runs anywhere.')
        from persona_studio.render.gsplat_backend import rasterize_gsplat as render
    else:
        render = rasterize_torch
    image, alpha, depth = render(means, scales, opacities, features, viewmats, Ks, int(width), int(height), quats,
                                 background, near, far, antialiased, eps2d)
    return RasterOutput(image, alpha, depth)


def rasterize_cameras(
    cameras: list[Camera],
    means: Tensor,  # [N, 3] or [B, N, 3], B = len(cameras)
    scales: Tensor,
    opacities: Tensor,
    features: Tensor,
    **kwargs,
) -> RasterOutput:
    """``rasterize`` with a list of ``Camera``s of one image size (keyword arguments pass through)."""
    if not cameras:
        raise ValueError("rasterize_cameras needs at least one Camera")
    viewmats, Ks = stack_cameras(list(cameras), device=means.device, dtype=means.dtype)
    return rasterize(means, scales, opacities, features, viewmats, Ks, cameras[0].width, cameras[0].height,
                     **kwargs)
