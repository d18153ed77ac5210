"""End-to-end frame rate of the OpenGL splat viewer (persona_studio.viewer.SplatRenderer).

Each frame does what an animated viewport does: upload new Gaussian positions, re-sort (the
camera also orbits a little every frame, so the sort is never skipped), draw, read back the
float32 RGBA image. The scene is a body-like cloud: isotropic Gaussians (sigma 5-8 mm) on the
surface of capsules forming a 1.7 m person in an A-pose, framed so it covers ~40 % of the image.

    python benchmarks/viewer.py            # starts its own Xvfb when DISPLAY is not set
    python benchmarks/viewer.py --seconds 5

Goal on the 2-core CPU machine (Mesa llvmpipe): >= 30 FPS at 512^2 with 42K Gaussians.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from persona_studio.viewer.orbit import OrbitCamera  # noqa: E402
from persona_studio.viewer.renderer import RenderOptions, SplatRenderer  # noqa: E402

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
    on_cylinder = (t >= 0) & (t <= 1)
    direction[on_cylinder] -= (direction[on_cylinder] * axis[on_cylinder]).sum(1, keepdims=True) * axis[on_cylinder]
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
        "normals": direction.astype(np.float32),
    }


@contextlib.contextmanager
def virtual_display():
    """Use $DISPLAY, or run an Xvfb for the duration (like tests/conftest.py)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("no DISPLAY and no Xvfb: `apt-get install xvfb libgl1-mesa-dri`, or run under `xvfb-run -a`")
    number = next(n for n in range(99, 160) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            sys.exit(f"Xvfb did not start on :{number}")
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        os.environ.pop("DISPLAY", None)
        proc.terminate()
        proc.wait(timeout=10)


def framed_orbit(means: np.ndarray, size: int, coverage_target: float, renderer: SplatRenderer) -> OrbitCamera:
    """Front view of the cloud, zoomed in until about ``coverage_target`` of the pixels are covered."""
    orbit = OrbitCamera(target=np.zeros(3))
    orbit.fit(means, size, size, margin=1.02)
    for _ in range(12):  # coverage grows as the camera moves in; a few multiplicative steps suffice
        alpha = renderer.render(orbit.camera(size, size), RenderOptions(mode="alpha"))[..., 0]
        coverage = float((alpha > 0.5).mean())
        if coverage >= coverage_target * 0.95:
            break
        orbit.zoom(math.sqrt(coverage / coverage_target) if coverage > 0 else 0.5)
    return orbit


def run_case(count: int, size: int, seconds: float, coverage_target: float) -> dict:
    cloud = body_cloud(count)
    with SplatRenderer() as renderer:
        renderer.set_gaussians(cloud["means"], cloud["scales"], cloud["colors"], cloud["opacities"])
        orbit = framed_orbit(cloud["means"], size, coverage_target, renderer)
        alpha = renderer.render(orbit.camera(size, size), RenderOptions(mode="alpha"))[..., 0]
        coverage = float((alpha > 0.5).mean())
        sway = np.zeros_like(cloud["means"])
        sway_axis = cloud["means"][:, 1:2] - 0.9  # upper body sways more, like a breathing idle
        stages = []
        frames, start = 0, time.perf_counter()
        while True:
            sway[:, 0] = 0.01 * math.sin(frames * 0.2) * sway_axis[:, 0]
            renderer.update_gaussians(means=cloud["means"] + sway)  # new positions: upload + re-sort
            orbit.orbit(0.01, 0.0)  # the view turns as well
            image = renderer.render(orbit.camera(size, size))
            timing = renderer.timings
            stages.append((timing.upload_ms, timing.sort_ms, timing.draw_ms, timing.readback_ms))
            frames += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and frames >= 10:
                break
        assert image.shape == (size, size, 4)
        medians = np.median(np.array(stages), axis=0)
        return {"count": count, "size": size, "fps": frames / elapsed, "coverage": coverage,
                "sorts": renderer.sort_count, "frames": frames, "stages_ms": medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per case")
    parser.add_argument("--coverage", type=float, default=0.40, help="fraction of the image the body covers")
    args = parser.parse_args()
    with virtual_display():
        from OpenGL import GL  # noqa: F401  (import after DISPLAY is set)

        cases = [(42_000, 512), (167_000, 512), (167_000, 1024)]
        print(f"viewer benchmark: upload positions + sort + draw + readback per frame, "
              f"{args.seconds:.0f} s per case, {os.cpu_count()} CPU cores")
        for count, size in cases:
            r = run_case(count, size, args.seconds, args.coverage)
            up, so, dr, rb = r["stages_ms"]
            print(f"{count // 1000:>4}K Gaussians @ {size}^2: {r['fps']:6.1f} FPS  "
                  f"(coverage {r['coverage']:.0%}; median ms: upload {up:.1f}, sort {so:.1f}, "
                  f"draw {dr:.1f}, readback {rb:.1f}; {r['frames']} frames)")


if __name__ == "__main__":
    main()
