"""The OpenGL viewport: orbit camera and depth-sort maths (pure), and the GL renderer under Xvfb.

The GL image of a scene is compared with the project's PyTorch reference rasteriser.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from persona_studio.render.camera import Camera, stack_cameras
from persona_studio.viewer.depth_sort import DepthSorter, front_to_back_order
from persona_studio.viewer.orbit import OrbitCamera
from persona_studio.viewer.scene import (
    gaussian_arrays,
    mesh_edges,
    replace_gaussian_arrays,
    skeleton_segments,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


# ------------------------------------------------------------------------------------------------
# Orbit camera (pure numpy)


def test_default_orbit_view_looks_at_the_front_with_y_up():
    orbit = OrbitCamera(target=(0.0, 1.0, 0.0), distance=3.0)
    cam = orbit.camera(640, 480)
    np.testing.assert_allclose(cam.position, [0.0, 1.0, 3.0], atol=1e-12)  # on +Z: the body's front
    centre, above, left_of_body = cam.project(np.array([[0.0, 1.0, 0.0], [0.0, 1.5, 0.0], [0.3, 1.0, 0.0]]))
    np.testing.assert_allclose(centre[:2], [320.0, 240.0], atol=1e-9)
    assert above[1] < 240.0  # world up is image up
    assert left_of_body[0] > 320.0  # +X (the body's left side) is on the viewer's right
    np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
    assert cam.fx == cam.fy == pytest.approx(0.5 * 480 / math.tan(math.radians(20.0)))


def test_orbit_turns_around_the_target_and_clamps_pitch():
    orbit = OrbitCamera(target=np.zeros(3), distance=2.0)
    orbit.orbit(math.pi / 2, 0.0)
    np.testing.assert_allclose(orbit.eye, [2.0, 0.0, 0.0], atol=1e-12)  # positive yaw moves the eye to +X
    orbit.orbit(0.0, 10.0)
    assert orbit.pitch == pytest.approx(orbit.max_pitch)
    assert orbit.eye[1] > 1.99  # looking down from above
    cam = orbit.camera(100, 100)
    assert np.isfinite(cam.R).all()
    np.testing.assert_allclose(cam.project(np.zeros((1, 3)))[0, :2], [50.0, 50.0], atol=1e-9)
    orbit.orbit(0.0, -20.0)
    assert orbit.pitch == pytest.approx(-orbit.max_pitch)


def test_zoom_is_clamped_and_pan_moves_the_scene_with_the_cursor():
    orbit = OrbitCamera(target=(0.1, 0.9, 0.0), distance=2.5, min_distance=0.2, max_distance=10.0)
    orbit.orbit(0.4, 0.3)
    orbit.zoom(1e-6)
    assert orbit.distance == 0.2
    orbit.zoom(1e9)
    assert orbit.distance == 10.0
    with pytest.raises(ValueError, match="positive"):
        orbit.zoom(0.0)
    orbit.zoom(0.3)
    old_target = orbit.target.copy()
    orbit.pan(12.0, -7.0, viewport_height=400)
    u, v, _ = orbit.camera(600, 400).project(old_target[None])[0]
    np.testing.assert_allclose([u, v], [300.0 + 12.0, 200.0 - 7.0], atol=1e-9)


def test_fit_frames_the_points_tightly_and_reset_returns_to_the_front_view():
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.4, 0.0, -0.2], [0.4, 1.7, 0.2], size=(500, 3))
    orbit = OrbitCamera(target=np.zeros(3))
    orbit.orbit(0.7, 0.2)
    orbit.fit(points, 320, 480, margin=1.25)
    assert orbit.yaw == 0.0 and orbit.pitch == 0.0
    cam = orbit.camera(320, 480)
    uv = cam.project(points)[:, :2]
    reach = np.max(np.maximum(np.abs(uv[:, 0] - 160.0) / 160.0, np.abs(uv[:, 1] - 240.0) / 240.0))
    assert reach == pytest.approx(1 / 1.25, rel=1e-9)  # inside the margin, touching it
    home = (orbit.target.copy(), orbit.distance)
    orbit.orbit(1.0, 0.5)
    orbit.pan(30, 20, 480)
    orbit.zoom(0.5)
    orbit.reset()
    np.testing.assert_allclose(orbit.target, home[0])
    assert (orbit.distance, orbit.yaw, orbit.pitch) == (home[1], 0.0, 0.0)


# ------------------------------------------------------------------------------------------------
# Depth sort and input validation (pure numpy)


def test_front_to_back_order_sorts_by_camera_depth():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(20_000, 3)).astype(np.float32)
    forward = np.array([0.3, -0.2, 0.9])
    forward /= np.linalg.norm(forward)
    order = front_to_back_order(means, forward)
    depth = means.astype(np.float64) @ forward
    assert order.dtype == np.uint32 and sorted(order.tolist()) == list(range(len(means)))
    assert np.diff(depth[order]).min() >= -1e-5  # non-decreasing up to float32 precision
    assert front_to_back_order(np.zeros((0, 3), np.float32), forward).shape == (0,)


def test_sort_is_skipped_for_pan_and_zoom_and_redone_for_orbit_or_new_means():
    means = np.random.default_rng(2).normal(size=(1000, 3)).astype(np.float32)
    sorter = DepthSorter()
    orbit = OrbitCamera(target=np.zeros(3), distance=4.0)
    order, fresh = sorter.order(means, 1, orbit.camera(64, 64).R[2])
    assert fresh and sorter.sort_count == 1
    orbit.pan(25, -10, 64)
    orbit.zoom(0.7)
    again, fresh = sorter.order(means, 1, orbit.camera(64, 64).R[2])
    assert not fresh and again is order and sorter.sort_count == 1
    orbit.orbit(0.05, 0.0)
    assert sorter.order(means, 1, orbit.camera(64, 64).R[2])[1]
    assert sorter.order(means, 2, orbit.camera(64, 64).R[2])[1]
    assert sorter.sort_count == 3


def test_gaussian_inputs_are_validated_with_actionable_messages():
    n = 4
    ok = dict(means=np.zeros((n, 3)), scales=np.full(n, 0.01), colors=np.ones((n, 3)), opacities=np.full(n, 0.5))
    g = gaussian_arrays(**ok)
    assert g.scales.shape == (n, 3) and g.quats.shape == (n, 4) and g.means.dtype == np.float32
    np.testing.assert_array_equal(g.quats, np.tile([1, 0, 0, 0], (n, 1)))
    with pytest.raises(ValueError, match=r"means must have shape \[N, 3\]"):
        gaussian_arrays(**{**ok, "means": np.zeros((n, 2))})
    with pytest.raises(ValueError, match="sigmoid"):
        gaussian_arrays(**{**ok, "opacities": np.full(n, 2.0)})
    with pytest.raises(ValueError, match="log scales"):
        gaussian_arrays(**{**ok, "scales": np.full(n, -4.0)})
    with pytest.raises(ValueError, match="NaN"):
        gaussian_arrays(**{**ok, "colors": np.full((n, 3), np.nan)})
    with pytest.raises(ValueError, match="zero quaternions"):
        gaussian_arrays(**{**ok, "scales": np.full((n, 3), 0.01), "quats": np.zeros((n, 4))})
    # torch tensors (even ones that need gradients) are accepted
    g = gaussian_arrays(**{**ok, "means": torch.zeros(n, 3, requires_grad=True)})
    assert isinstance(g.means, np.ndarray)
    moved = replace_gaussian_arrays(g, means=np.ones((n, 3)))
    assert moved.means[0, 0] == 1.0 and moved.colors is g.colors
    with pytest.raises(ValueError, match=r"\[4, 3\]"):
        replace_gaussian_arrays(g, means=np.ones((n + 1, 3)))
    with pytest.raises(ValueError, match="unknown"):
        replace_gaussian_arrays(g, position=np.ones((n, 3)))


def test_overlay_geometry():
    tetra = np.array([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    edges = mesh_edges(tetra, 4)
    assert edges.shape == (6, 2) and (edges[:, 0] < edges[:, 1]).all()
    with pytest.raises(ValueError, match="outside"):
        mesh_edges(tetra, 3)
    joints = np.arange(12, dtype=np.float32).reshape(4, 3)
    bones = skeleton_segments(joints, [-1, 0, 1, 1])
    np.testing.assert_array_equal(bones[:, 0], joints[[0, 1, 1]])
    np.testing.assert_array_equal(bones[:, 1], joints[[1, 2, 3]])
    with pytest.raises(ValueError, match="parent"):
        skeleton_segments(joints, [-1, 0, 7, 1])


# ------------------------------------------------------------------------------------------------
# GL renderer (needs an X display: Xvfb + Mesa here)


@pytest.fixture(scope="module")
def renderer(display):
    from persona_studio.viewer.renderer import SplatRenderer

    with SplatRenderer() as r:
        yield r


def random_scene(n: int, seed: int, anisotropic: bool) -> dict:
    rng = np.random.default_rng(seed)
    scene = {
        "means": (rng.normal(size=(n, 3)) * 0.2).astype(np.float32),
        "colors": rng.uniform(size=(n, 3)).astype(np.float32),
        "opacities": rng.uniform(0.05, 1.0, size=n).astype(np.float32),
    }
    if anisotropic:
        scene["scales"] = np.exp(rng.uniform(-5.5, -3.5, size=(n, 3))).astype(np.float32)
        quats = rng.normal(size=(n, 4))
        scene["quats"] = (quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32)
    else:
        scene["scales"] = np.exp(rng.uniform(-5.0, -3.5, size=n)).astype(np.float32)
    return scene


def reference_image(scene: dict, camera: Camera, background) -> tuple[np.ndarray, np.ndarray]:
    from persona_studio.render.rasterize import rasterize

    viewmats, Ks = stack_cameras([camera])
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)
    out = rasterize(t(scene["means"]), t(scene["scales"]), t(scene["opacities"]), t(scene["colors"]), viewmats, Ks,
                    camera.width, camera.height, quats=None if "quats" not in scene else t(scene["quats"]),
                    background=t(background), backend="torch")
    return out.features[0].numpy(), out.alpha[0, ..., 0].numpy()


@pytest.mark.parametrize("anisotropic", [False, True])
@pytest.mark.parametrize("view", ["overview", "close-up"])
def test_gl_image_matches_the_pytorch_reference(renderer, anisotropic, view):
    from persona_studio.viewer.renderer import RenderOptions

    scene = random_scene(400, seed=3, anisotropic=anisotropic)
    if view == "overview":  # off-centre principal point, Gaussians crossing the image border
        camera = Camera(np.eye(3), np.array([0.2, -0.05, 1.1]), 150.0, 140.0, 70.0, 55.0, 160, 120)
    else:  # close enough that some sprites could exceed the largest point size: the quad path
        camera = Camera.look_at((0.1, 0.1, 0.3), (0.0, 0.0, 0.0), width=128, height=96)
    background = (0.1, 0.2, 0.3)
    renderer.set_gaussians(**scene)
    image = renderer.render(camera, RenderOptions(background=(*background, 1.0)))
    assert renderer.timings.primitive == ("points" if view == "overview" else "quads")
    alpha = renderer.render(camera, RenderOptions(mode="alpha"))
    ref_rgb, ref_alpha = reference_image(scene, camera, background)
    assert image.shape == (camera.height, camera.width, 4) and image.dtype == np.float32
    assert psnr(image[..., :3], ref_rgb) >= 30.0
    assert psnr(alpha[..., 0], ref_alpha) >= 30.0
    np.testing.assert_allclose(image[..., 3], 1.0)  # opaque over an opaque background


def test_splats_centred_outside_the_image_still_reach_into_it(renderer):
    from persona_studio.viewer.renderer import RenderOptions

    camera = Camera(np.eye(3), np.zeros(3), 100.0, 100.0, 32.0, 24.0, 64, 48)
    # centres 4 px left of, and 5 px above, the image; sigma 4 px
    scene = dict(means=np.array([[-0.36, 0.0, 1.0], [0.0, -0.29, 1.0]]), scales=np.array([0.04, 0.04]),
                 colors=np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), opacities=np.array([0.9, 0.9]))
    renderer.set_gaussians(**scene)
    image = renderer.render(camera, RenderOptions())
    assert renderer.timings.primitive == "points"
    ref_rgb, _ = reference_image(scene, camera, (0.0, 0.0, 0.0))
    assert ref_rgb[24, 0, 0] > 0.3 and ref_rgb[0, 32, 0] > 0.3  # the reference shows both
    # equal up to the faint tail beyond 3 sigma (alpha <= 0.011 o) that the viewer leaves out
    np.testing.assert_allclose(image[..., :3], ref_rgb, atol=0.012)


def two_splats_scene():
    """A red splat at z = 0.5 in front of a blue one at z = -0.5 (seen from +Z)."""
    return dict(means=np.array([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]]), scales=np.array([0.15, 0.15]),
                colors=np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), opacities=np.array([0.999, 0.999]),
                normals=np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
                part_colors=np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]))


def test_near_splat_occludes_far_one_from_either_side(renderer):
    renderer.set_gaussians(**two_splats_scene())
    orbit = OrbitCamera(target=np.zeros(3), distance=3.0)
    front = renderer.render(orbit.camera(64, 64))
    assert front[32, 32, 0] > 0.9 and front[32, 32, 2] < 0.05  # red in front
    orbit.orbit(math.pi, 0.0)
    back = renderer.render(orbit.camera(64, 64))
    assert back[32, 32, 2] > 0.9 and back[32, 32, 0] < 0.05  # from behind, blue is in front


def test_render_modes(renderer):
    from persona_studio.viewer.renderer import RenderOptions

    renderer.set_gaussians(**two_splats_scene())
    camera = OrbitCamera(target=np.zeros(3), distance=3.0).camera(64, 48)
    grey = (0.5, 0.5, 0.5, 1.0)

    alpha = renderer.render(camera, RenderOptions(mode="alpha", background=grey))
    assert alpha[24, 32, 0] > 0.99 and alpha[0, 0, 0] == 0.0  # coverage, whatever the background
    np.testing.assert_array_equal(alpha[..., 0], alpha[..., 2])

    normals = renderer.render(camera, RenderOptions(mode="normals"))
    np.testing.assert_allclose(normals[24, 32, :3], [0.5, 0.5, 1.0], atol=0.02)  # facing the viewer: blue

    parts = renderer.render(camera, RenderOptions(mode="parts"))
    np.testing.assert_allclose(parts[24, 32, :3], [0.0, 1.0, 0.0], atol=0.02)

    depth = renderer.render(camera, RenderOptions(mode="depth", background=grey))
    np.testing.assert_allclose(depth[0, 0, :3], 0.5, atol=0.01)  # background where nothing is
    near_colour = depth[24, 32, :3]
    renderer.update_gaussians(means=np.array([[0.0, 0.0, -0.5], [0.0, 0.0, 0.5]]))  # swap near and far
    swapped = renderer.render(camera, RenderOptions(mode="depth", background=grey))
    np.testing.assert_allclose(swapped[24, 32, :3], near_colour, atol=0.02)  # nearest surface, same colour
    far_only = renderer.render(camera.resized(64, 48), RenderOptions(mode="depth"))
    assert far_only.shape == (48, 64, 4)

    rgb = renderer.render(camera, RenderOptions(background=grey))
    np.testing.assert_allclose(rgb[0, 0], grey, atol=0.01)

    renderer.set_gaussians(**{k: v for k, v in two_splats_scene().items() if k not in ("normals", "part_colors")})
    with pytest.raises(ValueError, match="normals="):
        renderer.render(camera, RenderOptions(mode="normals"))
    with pytest.raises(ValueError, match="part_colors="):
        renderer.render(camera, RenderOptions(mode="parts"))


def test_depth_colour_map_runs_from_near_to_far(renderer):
    from persona_studio.viewer.renderer import RenderOptions

    # three splats side by side at increasing depth
    means = np.array([[-0.6, 0.0, 0.5], [0.0, 0.0, 0.0], [0.6, 0.0, -0.5]])
    renderer.set_gaussians(means, np.full(3, 0.06), np.ones((3, 3)), np.full(3, 0.999))
    camera = OrbitCamera(target=np.zeros(3), distance=3.0).camera(96, 48)
    image = renderer.render(camera, RenderOptions(mode="depth"))
    columns = np.round(camera.project(means)[:, 0]).astype(int)
    colours = image[24, columns, :3]
    assert np.abs(np.diff(colours, axis=0)).sum(axis=1).min() > 0.2  # three clearly different colours
    assert colours[0].sum() > colours[2].sum()  # near is bright, far is dark


def test_skeleton_and_mesh_overlays_are_drawn_on_top(renderer):
    from persona_studio.viewer.renderer import RenderOptions

    renderer.set_gaussians(**two_splats_scene())
    camera = OrbitCamera(target=np.zeros(3), distance=3.0).camera(64, 64)
    yellow = (1.0, 1.0, 0.0, 1.0)
    renderer.set_skeleton(np.array([[0.0, -0.3, 0.0], [0.0, 0.3, 0.0]]), [-1, 0])  # a vertical bone
    image = renderer.render(camera, RenderOptions(skeleton_color=yellow))
    np.testing.assert_allclose(image[32, 32, :3], [1.0, 1.0, 0.0], atol=0.01)  # over the red splat
    np.testing.assert_allclose(image[32, 10, :3], [0.0, 0.0, 0.0], atol=0.01)
    hidden = renderer.render(camera, RenderOptions(show_skeleton=False))
    assert hidden[32, 32, 0] > 0.9 and hidden[32, 32, 1] < 0.05

    renderer.set_skeleton(None)
    # a square (two triangles) at z = 0.9 in front of everything: only its edges are drawn
    square = np.array([[-0.4, -0.4, 0.9], [0.4, -0.4, 0.9], [0.4, 0.4, 0.9], [-0.4, 0.4, 0.9]])
    renderer.set_mesh(square, np.array([[0, 1, 2], [0, 2, 3]]))
    cyan = (0.0, 1.0, 1.0, 1.0)
    image = renderer.render(camera, RenderOptions(mesh_color=cyan))
    left_edge_u = int(camera.project(square[:1])[0, 0])
    column = image[20:44, left_edge_u, :3]
    assert np.abs(column - [0.0, 1.0, 1.0]).max(axis=1).min() < 0.01  # the edge is cyan
    assert image[40, 40, 1] < 0.05  # inside the face, away from the edges: untouched splat/background
    renderer.set_mesh(square + [0.0, 0.0, -0.1])  # move the vertices, keep the faces
    assert renderer.render(camera, RenderOptions(mesh_color=cyan)).shape == (64, 64, 4)
    renderer.set_mesh(None)


def test_frames_follow_viewport_resizes(renderer):
    renderer.set_gaussians(**random_scene(200, seed=4, anisotropic=False))
    orbit = OrbitCamera(target=np.zeros(3), distance=1.5)
    for width, height in ((64, 48), (130, 70), (32, 96)):
        image = renderer.render(orbit.camera(width, height))
        assert image.shape == (height, width, 4)
        assert image[..., :3].max() > 0.2  # the scene is visible at every size
    small = renderer.render(orbit.camera(80, 60))
    large = renderer.render(orbit.camera(160, 120))
    downsampled = large.reshape(60, 2, 80, 2, 4).mean(axis=(1, 3))
    assert psnr(small, downsampled) > 22.0  # same picture, other resolution


def test_depth_sort_runs_only_when_the_view_direction_or_the_means_change(renderer):
    renderer.set_gaussians(**random_scene(300, seed=5, anisotropic=False))
    orbit = OrbitCamera(target=np.zeros(3), distance=2.0)
    renderer.render(orbit.camera(48, 48))
    sorts = renderer.sort_count
    renderer.render(orbit.camera(48, 48))
    orbit.pan(5, 5, 48)
    orbit.zoom(0.8)
    renderer.render(orbit.camera(64, 64))
    renderer.update_gaussians(colors=np.zeros((300, 3)))
    renderer.render(orbit.camera(64, 64))
    assert renderer.sort_count == sorts
    assert not renderer.timings.sorted_now
    orbit.orbit(0.1, 0.0)
    renderer.render(orbit.camera(64, 64))
    assert renderer.sort_count == sorts + 1 and renderer.timings.sorted_now
    renderer.update_gaussians(means=random_scene(300, seed=6, anisotropic=False)["means"])
    renderer.render(orbit.camera(64, 64))
    assert renderer.sort_count == sorts + 2


def test_empty_scene_shows_the_background(renderer):
    from persona_studio.viewer.renderer import RenderOptions

    renderer.set_gaussians(np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros(0))
    image = renderer.render(OrbitCamera(target=np.zeros(3)).camera(40, 30), RenderOptions(background=(0.2, 0.4, 0.6, 1.0)))
    np.testing.assert_allclose(image.reshape(-1, 4), np.tile([0.2, 0.4, 0.6, 1.0], (1200, 1)), atol=1 / 255)


def test_mailbox_keeps_only_the_newest_frame():
    from persona_studio.viewer.render_thread import FrameMailbox

    mailbox = FrameMailbox()
    assert mailbox.take() is None
    for index in (1, 2, 3):
        mailbox.put(index)
    assert mailbox.take() == 3 and mailbox.take() is None and mailbox.dropped == 2


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_render_thread_renders_the_latest_request_and_survives_bad_input(display):
    from persona_studio.viewer.render_thread import RenderThread
    from persona_studio.viewer.renderer import RenderMode, RenderOptions, SplatRenderer

    scene = two_splats_scene()
    orbit = OrbitCamera(target=np.zeros(3), distance=3.0)
    with RenderThread() as thread:
        assert thread.poll_frame() is None  # nothing rendered before a view is set
        thread.set_gaussians(**scene)
        thread.set_view(orbit.camera(64, 64))
        first = thread.wait_frame()
        assert first is not None and first.image.shape == (64, 64, 4)
        assert first.image[32, 32, 0] > 0.9  # red splat in front

        # a burst of requests (the GUI never waits): the last one is what ends up on screen
        for step in range(10):
            orbit.orbit(math.pi / 10, 0.0)
            thread.set_view(orbit.camera(64 + step, 48))
        thread.set_options(RenderOptions(mode="alpha"))
        frames = [first]

        def showing_the_last_request() -> bool:
            frame = thread.poll_frame()
            if frame is not None:
                frames.append(frame)
            return frames[-1].camera.width == 73 and frames[-1].options.mode is RenderMode.ALPHA

        assert wait_until(showing_the_last_request)
        last = frames[-1]
        assert last.image.shape == (48, 73, 4) and last.index > first.index and last.image is not first.image

        thread.update_gaussians(opacities=np.zeros(2))  # partial update, applied on the render thread
        thread.set_options(RenderOptions())
        blank = thread.wait_frame()
        assert blank.image[..., :3].max() == 0.0
        thread.update_gaussians(opacities=np.zeros(3))  # wrong count: reported, the thread lives on
        assert wait_until(lambda: thread.last_error is not None)
        assert "opacities" in thread.last_error and thread.alive
        thread.set_view(orbit.camera(32, 32))
        assert thread.wait_frame().image.shape == (32, 32, 4) and thread.last_error is None
    assert not thread.alive

    with SplatRenderer() as sync:  # the thread's image equals a synchronous render of the same request
        sync.set_gaussians(**scene)
        np.testing.assert_array_equal(sync.render(first.camera), first.image)


def test_broken_or_missing_shader_files_are_named_in_the_error(display, tmp_path):
    import shutil

    from persona_studio.viewer.glsl import SHADER_DIR, ShaderError
    from persona_studio.viewer.renderer import SplatRenderer

    shaders = tmp_path / "shaders"
    shutil.copytree(SHADER_DIR, shaders)
    (shaders / "splat.frag").write_text("#version 330 core\nvoid main() { undefined_call(); }\n")
    with pytest.raises(ShaderError, match=r"splat\.frag does not compile:\n.*undefined_call"):
        SplatRenderer(shader_dir=shaders)
    (shaders / "splat.frag").unlink()
    with pytest.raises(ShaderError, match="shader file not found: .*splat.frag"):
        SplatRenderer(shader_dir=shaders)


def test_context_failure_raises_a_clear_error(tmp_path):
    script = textwrap.dedent("""
        from persona_studio.viewer.gl_context import GLContextError
        from persona_studio.viewer.render_thread import RenderThread
        from persona_studio.viewer.renderer import SplatRenderer
        for make in (SplatRenderer, lambda: RenderThread().start()):
            try:
                make()
            except GLContextError as err:
                print("ERROR:", err)
            else:
                print("NO ERROR")
    """)
    env = {**os.environ, "DISPLAY": ":4711", "PYTHONPATH": ROOT}
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("ERROR", "NO ERROR"))]
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert line.startswith("ERROR: OpenGL 3.3+ context could not be created")
        assert "Xvfb" in line and "DISPLAY=':4711'" in line
