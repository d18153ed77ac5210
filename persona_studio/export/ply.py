"""The avatar's Gaussians as standard 3DGS PLY files (the layout of the 3DGS reference code).

One ``vertex`` element, binary little-endian, every property float32, in this order::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  opacity  scale_0 scale_1 scale_2  rot_0 rot_1 rot_2 rot_3

with the reference activations undone, as viewers expect:

- ``scale_*`` = log(std in metres); our Gaussians are isotropic, so the three are equal;
- ``opacity`` = logit(opacity); our opacity is 1 (logit infinite), so it is clamped to
  [``MIN_OPACITY``, ``MAX_OPACITY``] first; 0.999 is the alpha cap of the 3DGS/gsplat rasterisers, so
  renders do not change;
- ``rot_*`` = a unit quaternion w, x, y, z: identity (1, 0, 0, 0), since isotropic Gaussians have no
  orientation;
- ``f_dc_*`` = (rgb - 0.5) / SH_C0, the degree-0 spherical-harmonic coefficient of the colour (no
  higher-degree ``f_rest_*``: the avatar's colours do not depend on the view);
- ``nx ny nz`` = 0, the convention of 3DGS files (the reference writes zeros too).

Positions are in our world frame (metres, Y up, the body faces +Z). Rows with NaN or Inf are refused:
such an avatar is damaged and no viewer would draw it correctly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar, PosedGaussians
from persona_studio.body.motion import Motion, resample
from persona_studio.export import ExportError, check_output_path
from persona_studio.fileio import atomic_folder, atomic_path

PLY_PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
PLY_DTYPE = np.dtype([(name, "<f4") for name in PLY_PROPERTIES])
SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))
MAX_OPACITY = 0.999
MIN_OPACITY = 1e-6


def canonical_gaussians(avatar: Avatar) -> PosedGaussians:
    """The avatar in canonical space (template + learnt offsets) as one frame, B = 1."""
    with torch.no_grad():
        means = avatar.canonical()[None]
        return PosedGaussians(means=means, scales=avatar.scales, colors=avatar.colors.clamp(0, 1),
                              opacities=means.new_ones(avatar.num_gaussians),
                              transforms=torch.eye(3, device=means.device).expand(1, avatar.num_gaussians, 3, 3),
                              joints=avatar.rest_joints[None])


def check_frame(motion: Motion, frame: int) -> None:
    """Raise an ExportError unless ``frame`` (0-based) is one of the motion's frames."""
    if not 0 <= frame < motion.num_frames:
        raise ExportError(f"frame index {frame} is outside the motion, which has {motion.num_frames} frames "
                          f"(indices 0 to {motion.num_frames - 1})")


def posed_batches(avatar: Avatar, motion: Motion, batch: int = 8,
                  frames: range | None = None) -> Iterator[tuple[int, PosedGaussians]]:
    """(first frame index, posed Gaussians of up to ``batch`` frames) over ``frames`` of ``motion``."""
    frames = range(motion.num_frames) if frames is None else frames
    for start in range(frames.start, frames.stop, batch):
        params = motion.pose_kwargs(slice(start, min(start + batch, frames.stop)))
        with torch.no_grad():
            yield start, avatar.pose(params, fast=True)


def gaussians_at(avatar: Avatar, motion: Motion | None = None, frame: int = 0) -> PosedGaussians:
    """The avatar at ``frame`` (0-based) of ``motion``, or in canonical space without a motion; B = 1."""
    if motion is None:
        return canonical_gaussians(avatar)
    check_frame(motion, frame)
    return next(posed_batches(avatar, motion, 1, range(frame, frame + 1)))[1]


def gaussian_records(means: np.ndarray, scales: np.ndarray, colors: np.ndarray, opacities: np.ndarray) -> np.ndarray:
    """[N, 3] means, [N] isotropic std, [N, 3] rgb in [0, 1], [N] opacity -> [N] PLY_DTYPE records."""
    n = means.shape[0]
    records = np.zeros(n, PLY_DTYPE)  # normals stay 0, rot_1..3 stay 0
    for i, axis in enumerate("xyz"):
        records[axis] = means[:, i]
    sh = (colors - 0.5) / SH_C0
    for i in range(3):
        records[f"f_dc_{i}"] = sh[:, i]
        records[f"scale_{i}"] = np.log(scales)
    alpha = np.clip(opacities, MIN_OPACITY, MAX_OPACITY)
    records["opacity"] = np.log(alpha / (1 - alpha))
    records["rot_0"] = 1.0
    return records


def ply_bytes(records: np.ndarray) -> bytes:
    """The PLY file of ``records`` (PLY_DTYPE): ASCII header, then the binary little-endian rows."""
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {records.shape[0]}",
              *(f"property float {name}" for name in PLY_PROPERTIES), "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + records.astype(PLY_DTYPE, copy=False).tobytes()


def _frame_records(posed: PosedGaussians, index: int) -> np.ndarray:
    """Records of frame ``index`` of ``posed``; refuses NaN/Inf."""
    records = gaussian_records(*(x.detach().cpu().numpy() for x in (posed.means[index], posed.scales, posed.colors,
                                                               posed.opacities)))
    bad = ~np.all(np.isfinite(records.view(np.float32).reshape(-1, len(PLY_PROPERTIES))), axis=1)
    if bad.any():
        raise ExportError(f"{int(bad.sum())} of {bad.size} Gaussians have NaN or infinite values (the first is "
                          f"number {int(np.argmax(bad))}): the avatar is damaged; train it again or resume "
                          "from its last checkpoint")
    return records


def export_ply(avatar: Avatar, target: str | os.PathLike, motion: Motion | None = None, frame: int = 0, *,
               overwrite: bool = False) -> Path:
    """Write the avatar at ``frame`` (0-based) of ``motion`` (canonical without one) as a 3DGS PLY."""
    target = check_output_path(target, overwrite=overwrite)
    records = _frame_records(gaussians_at(avatar, motion, frame), 0)
    with atomic_path(target) as tmp:
        tmp.write_bytes(ply_bytes(records))
    return target


def sequence_file_name(index: int, num_frames: int) -> str:
    """``frame0001.ply`` for index 0: numbered from 1, at least 4 digits, all names of one width."""
    return f"frame{index + 1:0{max(4, len(str(num_frames)))}d}.ply"


def _is_sequence_folder(folder: Path) -> bool:
    """Only an empty folder or one holding nothing but ``frame*.ply`` files may be replaced."""
    return all(p.is_file() and p.name.startswith("frame") and p.suffix == ".ply" for p in folder.iterdir())


def export_ply_sequence(avatar: Avatar, motion: Motion, folder: str | os.PathLike, *, fps: float | None = None,
                        overwrite: bool = False, batch: int = 8,
                        progress: Callable[[float, str], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> Path:
    """Write one posed PLY per frame of ``motion`` (resampled to ``fps`` when given) into ``folder``.

    The folder appears complete or not at all: a failure or a cancel (``cancelled()`` returning True,
    checked before every frame, raises InterruptedError) leaves no partial folder. An existing
    folder is replaced only with ``overwrite`` and only if it holds nothing but ``frame*.ply`` files.
    """
    folder = check_output_path(folder, overwrite=overwrite, folder=True)
    if folder.exists() and not _is_sequence_folder(folder):
        raise ExportError(f"{folder} holds files other than a PLY sequence: choose a new or empty folder")
    if fps is not None and abs(fps - motion.fps) > 1e-6:
        motion = resample(motion, fps)
    n = motion.num_frames
    with atomic_folder(folder) as tmp:
        for start, posed in posed_batches(avatar, motion, batch):
            for j in range(posed.means.shape[0]):
                if cancelled is not None and cancelled():
                    raise InterruptedError("PLY sequence export cancelled")
                (tmp / sequence_file_name(start + j, n)).write_bytes(ply_bytes(_frame_records(posed, j)))
                if progress is not None:
                    progress((start + j + 1) / n, f"frame {start + j + 1}/{n}")
    return folder
