"""End-to-end frame rate of the OpenGL splat viewer (persona_studio.viewer.SplatRenderer).

Each frame does what an animated viewport does: upload new Gaussian positions, re-sort (the
camera also orbits a little every frame, so the sort is never skipped), draw, read back the
float32 RGBA image. The scene is a body-like cloud: isotropic Gaussians (sigma 5-8 mm) on the
surface of capsules forming a 1.7 m person in an A-pose, seen from the front (1) close enough that
it covers ~40 % of the image (alpha > 0.5, as in benchmarks/raster.py: the torso fills the view)
and (2) in the viewer's fit-to-avatar view (whole body, bounding box ~45 % of the image,
silhouette ~18 %).

    python benchmarks/viewer.py            # starts its own Xvfb when DISPLAY is not set
    python benchmarks/viewer.py --seconds 5 --repeat 3   # best of 3 (timings are noisy on shared machines)

Goal on the 2-core CPU machine (Mesa llvmpipe): >= 30 FPS at 512^2 with 42K Gaussians. The
renderer is fill-rate bound there: see the per-stage times printed for each case.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.virtual_display import virtual_display
from persona_studio.viewer.orbit import OrbitCamera
from persona_studio.viewer.renderer import RenderOptions, SplatRenderer

# (start, end, radius) capsules of a 1.7 m body, metres, Y up, facing +Z.
BODY_CAPSULES = [
    ((0.0, 0.98, 0.0), (0.0, 1.40, 0.0), 0.15),  # torso
    ((-0.09, 0.95, 0.0), (0.09, 0.95, 0.0), 0.12),  # pelvis
    ((0.0, 1.40, 0.0), (0.0, 1.52, 0.0), 0.05),  # neck
    ((0.0, 1.60, 0.01), (0.0, 1.62, 0.01), 0.10),  # head
    *[((s * 0.17, 1.40, 0.0), (s * 0.32, 1.14, 0.0), 0.045) for s in (-1, 1)],  # upper arms
    *[((s * 0.32, 1.14, 0.0), (s * 0.44, 0.90, 0.03), 0.037) for s in (-1, 1)],  # forearms
    *[((s * 0.44, 0.90, 0.03), (s * 0.48, 0.80, 0.04), 0.03) for s in (-1, 1)],  # hands
    *[((s * 0.10, 0.92, 0.0), (s * 0.11, 0.50, 0.0), 0.075) for s in (-1, 1)],  # thighs
    *[((s * 0.11, 0.50, 0.0), (s * 0.11, 0.09, -0.01), 0.05) for s in (-1, 1)],  # shins
    *[((s * 0.11, 0.05, -0.02), (s * 0.12, 0.04, 0.14), 0.04) for s in (-1, 1)],  # feet
]


def body_cloud(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` isotropic Gaussians on the capsule surfaces, spread by surface area."""
    rng = np.random.default_rng(seed)
    starts, ends, radii = (np.array(v, dtype=np.float64) for v in zip(*BODY_CAPSULES))
    lengths = np.linalg.norm(ends - starts, axis=1)
    areas = 2 * np.pi * radii * lengths + 4 * np.pi * radii**2
    part = rng.choice(len(radii), size=count, p=areas / areas.sum())  # [N]
    a, b, r = starts[part], ends[part], radii[part, None]
    axis = (b - a) / np.maximum(lengths[part, None], 1e-9)
    t = rng.uniform(-r[:, 0] / lengths[part].clip(1e-9), 1 + r[:, 0] / lengths[part].clip(1e-9))  # caps too
    direction = rng.normal(size=(count, 3))
    along = (direction * axis).sum(1, keepdims=True)
    on_cylinder = (t >= 0) & (t <= 1)
    direction[on_cylinder] -= along[on_cylinder] * axis[on_cylinder]  # radial on the cylinder
    outward_cap = np.where(t < 0, -1.0, 1.0)[:, None]
    direction[~on_cylinder] *= np.sign(along[~on_cylinder] * outward_cap[~on_cylinder])  # caps face outwards
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centre = a + np.clip(t, 0, 1)[:, None] * (b - a)
    means = centre + r * direction
    palette = np.array([[0.85, 0.65, 0.55], [0.2, 0.3, 0.6], [0.8, 0.8, 0.75], [0.3, 0.25, 0.2]])
    colors = palette[part % len(palette)] * rng.uniform(0.85, 1.15, size=(count, 1))
    return {
        "means": means.astype(np.float32),
        "scales": rng.uniform(0.005, 0.008, size=count).astype(np.float32),
        "colors": colors.clip(0, 1).astype(np.float32),
        "opacities": rng.uniform(0.6, 1.0, size=count).astype(np.float32),
    }


def projected_box_fraction(means: np.ndarray, camera) -> float:
    """Fraction of the image covered by the screen-space bounding box of the cloud."""
    uv = camera.project(means)[:, :2]
    lo = np.clip(uv.min(axis=0), 0, [camera.width, camera.height])
    hi = np.clip(uv.max(axis=0), 0, [camera.width, camera.height])
    return float(np.prod(hi - lo) / (camera.width * camera.height))


def coverage(renderer: SplatRenderer, camera) -> float:
    """Fraction of pixels the Gaussians cover (accumulated alpha > 0.5)."""
    return float((renderer.render(camera, RenderOptions(mode="alpha"))[..., 0] > 0.5).mean())


def framed_orbit(means: np.ndarray, size: int, renderer: SplatRenderer, close_up: float | None) -> OrbitCamera:
    """The viewer's fit-to-avatar front view; with ``close_up``, zoomed in until about that fraction
    of the pixels is covered."""
    orbit = OrbitCamera(target=np.zeros(3))
    orbit.fit(means, size, size)
    for _ in range(12 if close_up else 0):  # coverage grows as the camera moves in
        covered = coverage(renderer, orbit.camera(size, size))
        if covered >= close_up * 0.95:
            break
        orbit.zoom(math.sqrt(covered / close_up) if covered > 0 else 0.5)
    return orbit


def run_case(count: int, size: int, seconds: float, close_up: float | None = None) -> dict:
    cloud = body_cloud(count)
    with SplatRenderer() as renderer:
        renderer.set_gaussians(cloud["means"], cloud["scales"], cloud["colors"], cloud["opacities"])
        orbit = framed_orbit(cloud["means"], size, renderer, close_up)
        camera = orbit.camera(size, size)
        covered, box = coverage(renderer, camera), projected_box_fraction(cloud["means"], camera)
        sway = np.zeros_like(cloud["means"])
        sway_axis = cloud["means"][:, 1] - 0.9  # the upper body sways more, like an idle animation
        stages = []
        frames, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            sway[:, 0] = 0.01 * math.sin(frames * 0.2) * sway_axis
            renderer.update_gaussians(means=cloud["means"] + sway)  # new positions: upload + re-sort
            orbit.orbit(0.01, 0.0)  # the view turns as well
            image = renderer.render(orbit.camera(size, size))
            timing = renderer.timings
            stages.append((timing.upload_ms, timing.sort_ms, timing.draw_ms, timing.readback_ms))
            frames += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and frames >= 10:
                break
        cpu_ms = (time.process_time() - cpu_start) / frames * 1e3  # all threads: Python and llvmpipe's
        assert image.shape == (size, size, 4) and renderer.sort_count >= frames
        return {"fps": frames / elapsed, "cpu_ms": cpu_ms, "coverage": covered, "box": box, "frames": frames,
                "stages_ms": np.median(np.array(stages), axis=0), "primitive": timing.primitive}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per case")
    parser.add_argument("--repeat", type=int, default=1, help="measure each case this many times, keep the best")
    args = parser.parse_args()
    with virtual_display():
        cases = [(count, size, close_up) for close_up in (0.40, None)
                 for count, size in ((42_000, 512), (167_000, 512), (167_000, 1024))]
        print(f"viewer benchmark: upload positions + sort + draw + readback every frame, {args.seconds:g} s per case, "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
        for count, size, close_up in cases:
            r = max((run_case(count, size, args.seconds, close_up) for _ in range(args.repeat)), key=lambda r: r["fps"])
            up, so, dr, rb = r["stages_ms"]
            view = "40% cover" if close_up else "full body"
            print(f"{count // 1000:>4}K Gaussians @ {size}^2, {view}: {r['fps']:5.1f} FPS, CPU {r['cpu_ms']:5.0f} ms/frame "
                  f"(box {r['box']:.0%} of the view, silhouette {r['coverage']:.0%}; median ms: upload {up:.1f}, "
                  f"sort {so:.1f}, draw {dr:.1f}, readback {rb:.1f}; {r['primitive']}; {r['frames']} frames)")


if __name__ == "__main__":
    main()
