"""Export figures: PLY, PLY sequence, meshes, and the rigged glTF (size per template level, morph targets
K, how exactly the file reproduces the avatar, export time).

Rows on avatars built from the open body model with no training (sizes and times: an untrained pose MLP
deforms little, so its K and errors say nothing) and, with ``--workspace``, on that workspace's trained
avatar, the row whose K and reproduction errors are the real ones.

    python benchmarks/export.py [--workspace WS] [--levels 0 1 2] [--motions wave dance]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.body.model import load_body_model
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion
from persona_studio.export.gltf import export_gltf
from persona_studio.export.mesh import export_mesh
from persona_studio.export.ply import export_ply, export_ply_sequence


def mib(p: Path) -> float:
    return (sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size) / 1024**2


def untrained_avatar(model, level: int) -> Avatar:
    rng = np.random.default_rng(0)
    return Avatar.from_body_model(model, np.zeros(10, np.float32),
                                  lambda i, v: rng.uniform(0, 1, (v.shape[0], 3)).astype(np.float32),
                                  AvatarConfig(level=level), {})


def ply_and_mesh_rows(avatar: Avatar, out: Path) -> None:
    dance = read_motion(preset_motion_paths()["dance"])
    motion = Motion(poses=dance.poses[:100], trans=dance.trans[:100], fps=dance.fps)
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


def gltf_row(name: str, avatar: Avatar, motions: dict[str, Motion], out: Path) -> None:
    started = time.perf_counter()
    path, f = export_gltf(avatar, out / f"{name.replace(' ', '_')}.glb", motions, checked_frames=None)
    total = time.perf_counter() - started
    frames = sum(f.frames.values())
    print(f"{name:34s} {avatar.num_gaussians:9d} {len(motions):4d} {frames:6d} {mib(path):8.1f} {f.pose_targets:3d} "
          f"{f.variance_kept:7.1%} {f.top4_error.mean_mm:6.2f}/{f.top4_error.p99_mm:<6.2f} "
          f"{f.total_error.mean_mm:6.2f}/{f.total_error.p99_mm:<6.2f} {f.seconds:7.1f} {total:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace with a trained avatar (the real K and errors)")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--motions", nargs="+", default=["wave", "dance"], help="presets animated in the level rows")
    args = parser.parse_args()
    model = load_body_model("open", num_betas=10)
    presets = preset_motion_paths()
    out = Path(tempfile.mkdtemp(prefix="persona_export_bench_"))
    print(f"torch threads {torch.get_num_threads()}; files in {out}")

    level1 = untrained_avatar(model, 1)
    print(f"\nlevel-1 avatar (untrained): {level1.num_gaussians} Gaussians, {level1.faces.shape[0]} triangles")
    ply_and_mesh_rows(level1, out)

    print("\nrigged glTF (top-4 = skinning truncation alone, file = the GLB evaluated as a glTF client does "
          "at every frame, both against Avatar.pose; mean/p99 mm; build s = building the document, total s = with the check)")
    print(f"{'row':34s} {'Gaussians':>9s} {'anim':>4s} {'frames':>6s} {'MiB':>8s} {'K':>3s} {'kept':>7s} "
          f"{'top-4 mm':>13s} {'file mm':>13s} {'build s':>7s} {'total s':>7s}")
    chosen = {name: read_motion(presets[name]) for name in args.motions}
    for level in args.levels:
        gltf_row(f"level {level}, untrained", untrained_avatar(model, level), chosen, out)
    if args.workspace is not None:
        from persona_studio.avatar.bundle import load_avatar
        from persona_studio.workspace.folders import bundle_folder

        trained, _ = load_avatar(bundle_folder(args.workspace))
        level = trained.config.level
        gltf_row(f"trained (level {level}), {'+'.join(args.motions)}", trained, chosen, out)
        gltf_row(f"trained (level {level}), every preset", trained,
                 {name: read_motion(path) for name, path in presets.items()}, out)


if __name__ == "__main__":
    main()
