"""Export figures for a level-1 avatar: canonical PLY, a 100-frame posed PLY sequence, GLB, OBJ, bundle."""

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.body.model import load_body_model
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion
from persona_studio.export.mesh import export_mesh
from persona_studio.export.ply import export_ply, export_ply_sequence

def mib(p: Path) -> float:
    return (sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size) / 1024**2

model = load_body_model("open", num_betas=10)
rng = np.random.default_rng(0)
avatar = Avatar.from_body_model(model, np.zeros(10, np.float32),
                                lambda i, v: rng.uniform(0, 1, (v.shape[0], 3)).astype(np.float32),
                                AvatarConfig(level=1), {})
dance = read_motion(preset_motion_paths()["dance"])
motion = Motion(poses=dance.poses[:100], trans=dance.trans[:100], fps=dance.fps)
print(f"level-1 avatar: {avatar.num_gaussians} Gaussians, {avatar.faces.shape[0]} triangles; torch threads {torch.get_num_threads()}")
out = Path(tempfile.mkdtemp())
t = time.perf_counter(); p = export_ply(avatar, out / "canonical.ply"); dt = time.perf_counter() - t
print(f"canonical PLY: {mib(p):.2f} MiB in {dt * 1000:.0f} ms")
t = time.perf_counter(); p = export_ply(avatar, out / "posed.ply", motion, 50); dt = time.perf_counter() - t
print(f"posed PLY (one frame): {mib(p):.2f} MiB in {dt * 1000:.0f} ms")
avatar.pose({"global_orient": torch.zeros(1, 3), "body_pose": torch.zeros(1, 63)}, fast=True)  # warm the fast path
t = time.perf_counter(); p = export_ply_sequence(avatar, motion, out / "seq"); dt = time.perf_counter() - t
print(f"100-frame PLY sequence: {mib(p):.0f} MiB in {dt:.2f} s ({dt / 100 * 1000:.0f} ms per frame)")
for ext in ("glb", "obj"):
    t = time.perf_counter(); p = export_mesh(avatar, out / f"body.{ext}", motion, 50); dt = time.perf_counter() - t
    print(f"{ext.upper()} posed mesh: {mib(p):.2f} MiB in {dt * 1000:.0f} ms")
