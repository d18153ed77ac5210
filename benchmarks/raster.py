"""Speed of the differentiable rasteriser: forward + backward milliseconds on a body-sized scene.

The scene stands in for an avatar: isotropic Gaussians spread over the surface of a standing person
made of capsules (1.78 m tall, arms out), as many as a body mesh has vertices (14K, the template;
55K, once subdivided), each with a scale close to the vertex spacing (about 9 mm and 5 mm),
opacity 0.6-1 and random features. The camera frames head to thighs so that the body covers about
40% of the image (a whole standing body covers only ~20% of a square image). The loss touches
features, alpha and depth so every backward path runs. Goals on a 2-core CPU with 2 torch threads:
14K @ 256^2 <= 60 ms and 55K @ 512^2 <= 500 ms (C = 3); C = 13 adds 10 geometry channels.
Timings are the best of ``--repeats`` runs: other work on the machine only ever adds time.

    python benchmarks/raster.py [--backend torch|gsplat|auto] [--repeats 5] [--threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from persona_studio.render.camera import Camera, stack_cameras
from persona_studio.render.rasterize import auto_backend, rasterize

# (start, end, radius) in metres; Y up, the body faces +Z.
CAPSULES = (
    ((0.0, 0.98, 0.0), (0.0, 1.40, 0.0), 0.14),  # torso
    ((0.0, 1.63, 0.01), (0.0, 1.68, 0.01), 0.095),  # head
    ((0.0, 1.42, 0.0), (0.0, 1.53, 0.0), 0.05),  # neck
    ((0.18, 1.40, 0.0), (0.72, 1.30, 0.0), 0.042),  # arms
    ((-0.18, 1.40, 0.0), (-0.72, 1.30, 0.0), 0.042),
    ((0.09, 0.92, 0.0), (0.11, 0.08, 0.0), 0.065),  # legs
    ((-0.09, 0.92, 0.0), (-0.11, 0.08, 0.0), 0.065),
)
SCALE_PER_SPACING = 0.8  # Gaussian std dev / vertex spacing


def body_scene(n: int, channels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n isotropic Gaussians spread uniformly over the capsule body's surface."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.tensor([c[0] for c in CAPSULES])
    end = torch.tensor([c[1] for c in CAPSULES])
    radius = torch.tensor([c[2] for c in CAPSULES])
    length = (end - start).norm(dim=1)
    area = 2 * math.pi * radius * length + 4 * math.pi * radius**2
    which = torch.multinomial(area / area.sum(), n, replacement=True, generator=gen)
    a, r, l = start[which], radius[which], length[which]
    axis = (end[which] - a) / l[:, None]
    # Height along the axis, uniform in area: the cylinder, then the two hemispherical caps
    # (a sphere's area is uniform in height, Archimedes).
    h = torch.rand(n, generator=gen) * (l + 2 * r) - r
    ring = torch.where((h >= 0) & (h <= l), r, torch.sqrt((r**2 - torch.where(h < 0, h, h - l) ** 2).clamp_min(0)))
    d = torch.randn(n, 3, generator=gen)
    d = d - (d * axis).sum(1, keepdim=True) * axis
    means = a + axis * h[:, None] + d / d.norm(dim=1, keepdim=True) * ring[:, None]
    spacing = math.sqrt(float(area.sum()) / n)
    scales = SCALE_PER_SPACING * spacing * (0.75 + 0.5 * torch.rand(n, generator=gen))
    return {
        "means": means,
        "scales": scales,
        "opacities": 0.6 + 0.4 * torch.rand(n, generator=gen),
        "features": torch.rand(n, channels, generator=gen),
    }


def front_camera(size: int) -> Camera:
    """Looks at the body from the front, from head to thighs: it covers about 40% of the image."""
    return Camera.look_at((0.0, 1.15, 1.0), (0.0, 1.15, 0.0), fov_y_deg=55.0, width=size, height=size)


def time_fwd_bwd(scene: dict[str, torch.Tensor], camera: Camera, backend: str, repeats: int) -> tuple[float, float]:
    """Best forward+backward milliseconds over ``repeats`` runs, and the alpha > 0.5 coverage."""
    viewmats, Ks = stack_cameras([camera], device=scene["means"].device)
    params = {k: v.clone().requires_grad_() for k, v in scene.items()}
    best, coverage = math.inf, 0.0
    for _ in range(repeats + 1):  # first run warms up
        for p in params.values():
            p.grad = None
        if params["means"].is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = rasterize(params["means"], params["scales"], params["opacities"], params["features"], viewmats, Ks,
                        camera.width, camera.height, backend=backend)
        loss = out.features.square().sum() + out.alpha.sum() + out.depth.sum()
        loss.backward()
        if params["means"].is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        coverage = float((out.alpha > 0.5).float().mean())
    return best * 1e3, coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch", choices=["auto", "torch", "gsplat"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print the torch profiler's top operators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if args.backend != "torch" and torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, {args.threads} threads; auto backend here: {auto_backend(device)[1]}")
    for n, size, goal in ((14_000, 256, 60), (55_000, 512, 500)):
        for channels in (3, 13):
            scene = {k: v.to(device) for k, v in body_scene(n, channels).items()}
            ms, coverage = time_fwd_bwd(scene, front_camera(size), args.backend, args.repeats)
            on_goal = channels == 3 and device == "cpu"  # the goals are for the CPU reference
            verdict = f"goal {goal} ms: {'met' if ms <= goal else 'MISSED'}" if on_goal else ""
            print(f"{n // 1000:>3}K Gaussians @ {size}^2, C={channels:<2}: fwd+bwd {ms:7.1f} ms  "
                  f"(coverage {coverage:.0%}) {verdict}")
            if args.profile:
                with torch.profiler.profile() as prof:
                    time_fwd_bwd(scene, front_camera(size), args.backend, 1)
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
