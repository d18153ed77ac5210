"""The Gaussian rasteriser: pixels, compositing rules, gradients, batching, validation, CUDA parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from persona_studio.render import Camera, RasterOutput, auto_backend, available_backends, rasterize, rasterize_cameras
from persona_studio.render.camera import stack_cameras
from persona_studio.render.torch_backend import project_gaussians

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These scenes are tiny: a second thread only adds synchronisation, which is slow on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def front_camera(width: int = 64, height: int = 48, distance: float = 3.0, fov: float = 40.0) -> Camera:
    """On the +Z axis looking at the origin: world +X is image right, +Y is image up."""
    return Camera.look_at((0.0, 0.0, distance), (0.0, 0.0, 0.0), fov_y_deg=fov, width=width, height=height)


def render(cameras: list[Camera], means, scales, opacities, features, **kwargs) -> RasterOutput:
    return rasterize_cameras(cameras, means, scales, opacities, features, **kwargs)


def random_scene(n: int, channels: int = 3, seed: int = 0, dtype=F64, anisotropic: bool = True):
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen, dtype=dtype) - 0.5) * torch.tensor([1.2, 1.0, 0.8], dtype=dtype)
    scales = 0.02 + 0.06 * torch.rand(n, 3 if anisotropic else 1, generator=gen, dtype=dtype)
    quats = torch.randn(n, 4, generator=gen, dtype=dtype) if anisotropic else None
    opacities = 0.3 + 0.7 * torch.rand(n, generator=gen, dtype=dtype)
    features = torch.rand(n, channels, generator=gen, dtype=dtype)
    return means, scales, quats, opacities, features


def sequential_reference(cameras, means, scales, quats, opacities, features):
    """gsplat's per-pixel loop, written out literally: every Gaussian, nearest first, for every pixel.

    Projection is the backend's; compositing, thresholds and termination are re-implemented here.
    Returns [B, H, W, C + 2] = (features, depth sum, alpha) without background.
    """
    B = len(cameras)
    width, height = cameras[0].width, cameras[0].height
    viewmats, Ks = stack_cameras(cameras, dtype=means.dtype)
    per_camera = [x.expand(B, *x.shape) for x in (means, scales, quats, opacities)]
    proj = project_gaussians(*per_camera, viewmats, Ks, width, height, 0.01, 100.0, False)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means.dtype) + 0.5,
                            torch.arange(width, dtype=means.dtype) + 0.5, indexing="ij")
    images = []
    for b in range(B):
        T = torch.ones(height * width, dtype=means.dtype)
        alive = torch.ones(height * width, dtype=torch.bool)
        out = torch.zeros(height * width, features.shape[-1] + 2, dtype=means.dtype)
        for g in torch.argsort(proj.depths[b], stable=True).tolist():
            if not (proj.radii[b, g] > 0).any():
                continue
            dx = proj.means2d[b, g, 0] - xs.reshape(-1)
            dy = proj.means2d[b, g, 1] - ys.reshape(-1)
            ca, cb, cc = proj.conics[b, g]
            sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
            alpha = (proj.opacities[b, g] * torch.exp(-sigma)).clamp(max=0.999)
            use = alive & (sigma >= 0) & (alpha >= 1 / 255)
            next_T = T * (1 - alpha)
            stop = use & (next_T <= 1e-4)
            alive &= ~stop
            use &= ~stop
            f = torch.cat([features[g], proj.depths[b, g, None], torch.ones(1, dtype=means.dtype)])
            out += torch.where(use, alpha * T, 0.0)[:, None] * f
            T = torch.where(use, next_T, T)
        images.append(out.reshape(height, width, -1))
    return torch.stack(images)


# ------------------------------------------------------------------------------------------------
# What lands where


def test_known_scene_lands_on_expected_pixels_with_expected_colours():
    cam = front_camera(width=96, height=64)
    centres = np.array([[-0.6, 0.0, 0.0], [0.6, 0.0, 0.0], [0.0, 0.35, 0.0]])  # red left, green right, blue up
    colours = torch.eye(3, dtype=F64)
    out = render([cam], torch.tensor(centres), torch.full((3,), 0.04, dtype=F64), torch.full((3,), 0.98, dtype=F64),
                 colours)
    image, alpha, depth = out.features[0], out.alpha[0, ..., 0], out.depth[0, ..., 0]
    assert image.shape == (64, 96, 3) and alpha.shape == (64, 96) and depth.shape == (64, 96)
    peaks = []
    for centre, colour in zip(centres, colours):
        u, v, z = cam.project(centre)
        row, col = int(v), int(u)  # the pixel whose square holds the projected centre
        assert torch.allclose(image[row, col], colour * alpha[row, col], atol=1e-12)  # only this Gaussian there
        assert alpha[row, col] > 0.8
        assert depth[row, col] == pytest.approx(z, abs=1e-12)
        channel = image[..., int(colour.argmax())]
        peak_row, peak_col = np.unravel_index(int(channel.argmax()), channel.shape)
        assert abs(peak_row + 0.5 - v) <= 1.0 and abs(peak_col + 0.5 - u) <= 1.0  # the blob is centred there
        peaks.append((peak_row, peak_col))
    (_, red_col), (_, green_col), (blue_row, _) = peaks
    assert red_col < 48 < green_col and blue_row < 32  # world +X is image right, +Y is image up
    assert alpha[0, 0] == 0 and depth[0, 0] == 0 and (image[0, 0] == 0).all()  # nothing reaches the corner


def test_nearer_gaussian_occludes_farther_whatever_the_input_order():
    cam = front_camera(65, 49)  # odd size: the optical axis hits the centre of pixel (24, 32)
    means = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]], dtype=F64)  # far (depth 4) first, then near (2)
    colours = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=F64)
    opacities = torch.tensor([0.9, 0.95], dtype=F64)
    scales = torch.full((2,), 0.05, dtype=F64)
    out = render([cam], means, scales, opacities, colours)
    # Front to back at the centre: near red with alpha 0.95, then far blue with what is left.
    red, blue = 0.95, (1 - 0.95) * 0.9
    assert out.features[0, 24, 32].tolist() == pytest.approx([red, 0.0, blue], abs=1e-12)
    assert float(out.alpha[0, 24, 32, 0]) == pytest.approx(red + blue, abs=1e-12)
    assert float(out.depth[0, 24, 32, 0]) == pytest.approx((2.0 * red + 4.0 * blue) / (red + blue), abs=1e-12)
    swapped = render([cam], means.flip(0), scales, opacities.flip(0), colours.flip(0))
    assert torch.allclose(swapped.features, out.features) and torch.allclose(swapped.depth, out.depth)


def test_matches_sequential_per_pixel_compositing():
    # Dense enough that tiles hold more than one compositing step (32) and pixels terminate.
    means, scales, quats, opacities, features = random_scene(300, channels=4, seed=1)
    opacities = 0.6 + 0.4 * opacities
    cameras = [front_camera(40, 30, fov=35.0), Camera.look_at((2.0, 1.0, 2.0), (0, 0, 0), fov_y_deg=35, width=40,
                                                               height=30)]
    out = render(cameras, means, scales, opacities, features, quats=quats, backend="torch")
    ref = sequential_reference(cameras, means, scales, quats, opacities, features)
    alpha = ref[..., -1:]
    assert (alpha > 1 - 1.1e-4).any(), "the scene should make some pixels terminate"
    assert torch.allclose(out.alpha, alpha, atol=1e-10)
    assert torch.allclose(out.features, ref[..., :4], atol=1e-10)
    assert torch.allclose(out.depth, ref[..., 4:5] / alpha.clamp_min(1e-10), atol=1e-9)


def test_float32_matches_float64():
    means, scales, quats, opacities, features = random_scene(200, seed=2)
    cam = front_camera(48, 40)
    hi = render([cam], means, scales, opacities, features, quats=quats)
    lo = render([cam], means.float(), scales.float(), opacities.float(), features.float(), quats=quats.float())
    assert lo.features.dtype == torch.float32
    assert (lo.features.double() - hi.features).abs().max() < 1e-4
    assert (lo.depth.double() - hi.depth).abs().max() < 1e-3


# ------------------------------------------------------------------------------------------------
# Background, batching, clipping, anti-aliasing


def test_background_is_blended_by_transmittance():
    means, scales, quats, opacities, features = random_scene(40, seed=3)
    cam = front_camera()
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    plain = render([cam], means, scales, opacities, features, quats=quats)
    blended = render([cam], means, scales, opacities, features, quats=quats, background=bg)
    assert torch.allclose(blended.features, plain.features + bg * (1 - plain.alpha))
    empty = plain.alpha[0, ..., 0] == 0
    assert empty.any() and torch.equal(blended.features[0][empty], bg.expand(int(empty.sum()), 3))
    assert torch.equal(blended.alpha, plain.alpha) and torch.equal(blended.depth, plain.depth)


def test_batched_cameras_match_single_renders():
    means, scales, quats, opacities, features = random_scene(60, seed=4)
    cams = [front_camera(), Camera.look_at((3.0, 0.5, 0.0), (0, 0, 0), width=64, height=48)]
    backgrounds = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    both = render(cams, means, scales, opacities, features, quats=quats, background=backgrounds)
    for b, cam in enumerate(cams):
        one = render([cam], means, scales, opacities, features, quats=quats, background=backgrounds[b])
        assert torch.allclose(both.features[b], one.features[0]) and torch.allclose(both.depth[b], one.depth[0])
    # [B, N, ...] inputs: each camera renders its own Gaussians (e.g. one posed avatar per frame).
    other = random_scene(60, seed=5)
    stacked = [torch.stack([x, y]) for x, y in zip((means, scales, quats, opacities, features), other)]
    per_cam = render(cams, stacked[0], stacked[1], stacked[3], stacked[4], quats=stacked[2])
    second = render([cams[1]], other[0], other[1], other[3], other[4], quats=other[2])
    first = render([cams[0]], means, scales, opacities, features, quats=quats)
    assert torch.allclose(per_cam.features[0], first.features[0])
    assert torch.allclose(per_cam.features[1], second.features[0])


def test_near_and_far_planes_drop_gaussians():
    cam = front_camera(65, 49)
    means = torch.tensor([[0.0, 0.0, 2.5], [0.0, 0.0, 0.0], [0.0, 0.0, 4.0]], dtype=F64)  # depth 0.5, 3, behind
    colours = torch.eye(3, dtype=F64)
    scales, opacities = torch.full((3,), 0.05, dtype=F64), torch.tensor([0.99, 0.9, 0.9], dtype=F64)
    all_in = render([cam], means, scales, opacities, colours)
    expected = (0.5 * 0.99 + 3.0 * 0.01 * 0.9) / (0.99 + 0.01 * 0.9)
    assert float(all_in.depth[0, 24, 32, 0]) == pytest.approx(expected, abs=1e-12)
    clipped = render([cam], means, scales, opacities, colours, near=1.0)
    assert float(clipped.depth[0, 24, 32, 0]) == pytest.approx(3.0, abs=1e-12)
    assert clipped.features[0, 24, 32].tolist() == pytest.approx([0.0, 0.9, 0.0], abs=1e-12)
    nothing = render([cam], means, scales, opacities, colours, near=1.0, far=2.9)
    assert nothing.alpha.abs().max() == 0
    # The Gaussian behind the camera never shows up and does not poison gradients.
    means = means.clone().requires_grad_()
    render([cam], means, scales, opacities, colours).features.sum().backward()
    assert torch.isfinite(means.grad).all() and (means.grad[2] == 0).all() and (means.grad[1] != 0).any()


def test_antialiased_mode_compensates_opacity_of_small_gaussians():
    cam = front_camera(65, 65)  # the optical axis hits the centre of pixel (32, 32)
    means, white, opacity = torch.zeros(1, 3, dtype=F64), torch.ones(1, 1, dtype=F64), torch.tensor([0.8], dtype=F64)
    pixels_per_metre = cam.fy / 3.0
    for scale_px in (0.2, 3.0):  # a fifth of a pixel, three pixels
        scales = torch.tensor([scale_px / pixels_per_metre], dtype=F64)
        classic = render([cam], means, scales, opacity, white)
        aa = render([cam], means, scales, opacity, white, antialiased=True)
        var = scale_px**2  # the screen-space variance on the axis; gsplat adds 0.3 to it
        assert float(classic.alpha[0, 32, 32, 0]) == pytest.approx(0.8, abs=1e-12)
        assert float(aa.alpha[0, 32, 32, 0]) == pytest.approx(0.8 * var / (var + 0.3), rel=1e-9)
        assert (aa.alpha <= classic.alpha + 1e-15).all()


def test_any_number_of_feature_channels():
    means, scales, quats, opacities, _ = random_scene(30, seed=6)
    features = torch.rand(30, 10, dtype=F64)
    out = render([front_camera()], means, scales, opacities, features, quats=quats)
    first3 = render([front_camera()], means, scales, opacities, features[:, :3], quats=quats)
    assert out.features.shape == (1, 48, 64, 10)
    assert torch.allclose(out.features[..., :3], first3.features)


def test_empty_and_fully_culled_scenes_render_background():
    cam = front_camera()
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    none = render([cam], torch.zeros(0, 3, dtype=F64), torch.zeros(0, dtype=F64), torch.zeros(0, dtype=F64),
                  torch.zeros(0, 3, dtype=F64), background=bg)
    assert torch.equal(none.features[0], bg.expand(48, 64, 3)) and none.alpha.abs().max() == 0
    means = torch.tensor([[0.0, 0.0, 5.0]], dtype=F64, requires_grad=True)  # behind the camera
    out = render([cam], means, torch.full((1,), 0.1, dtype=F64), torch.ones(1, dtype=F64), torch.ones(1, 3, dtype=F64))
    out.features.sum().backward()
    assert out.alpha.abs().max() == 0 and torch.equal(means.grad, torch.zeros_like(means))


# ------------------------------------------------------------------------------------------------
# Gradients


def _gradcheck_scene(anisotropic: bool, antialiased: bool):
    means, scales, quats, opacities, features = random_scene(7, seed=7, anisotropic=anisotropic)
    cams = [Camera.look_at((0.0, 0.0, 2.2), (0, 0, 0), fov_y_deg=35, width=21, height=17),
            Camera.look_at((1.5, 0.3, 1.5), (0, 0, 0), fov_y_deg=35, width=21, height=17)]
    # Gaussian 0: opacity 1 on the axis of camera 0, i.e. on a pixel centre, where alpha clamps to 0.999.
    means[0], opacities[0] = 0.0, 1.0
    viewmats, Ks = stack_cameras(cams, dtype=F64)
    gen = torch.Generator().manual_seed(8)
    weights = torch.rand(2, 17, 21, 5, generator=gen, dtype=F64)
    background = torch.rand(3, generator=gen, dtype=F64)
    inputs = [means, scales, opacities, features, background] + ([quats] if anisotropic else [])

    def loss(m, s, o, f, bg, *q):
        out = rasterize(m, s, o, f, viewmats, Ks, 21, 17, quats=q[0] if q else None, background=bg,
                        antialiased=antialiased, backend="torch")
        return (torch.cat([out.features, out.alpha, out.depth], -1) * weights).sum()

    return loss, [x.clone().requires_grad_() for x in inputs]


@pytest.mark.parametrize("anisotropic, antialiased", [(True, False), (True, True), (False, False)])
def test_gradients_match_finite_differences(anisotropic, antialiased):
    loss, inputs = _gradcheck_scene(anisotropic, antialiased)
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradients_match_autograd_through_sequential_reference():
    # Many Gaussians per tile (several compositing steps) and terminated pixels: the hand-written
    # backward must carry what lies behind across steps.
    scene = list(random_scene(300, channels=2, seed=11))
    scene[3] = 0.6 + 0.4 * scene[3]
    means, scales, quats, opacities, features = [x.requires_grad_() for x in scene]
    cameras = [front_camera(40, 30, fov=35.0)]
    weights = torch.rand(1, 30, 40, 4, generator=torch.Generator().manual_seed(12), dtype=F64)
    out = render(cameras, means, scales, opacities, features, quats=quats, backend="torch")
    ours = torch.autograd.grad((torch.cat([out.features, out.depth * out.alpha, out.alpha], -1) * weights).sum(),
                               (means, scales, quats, opacities, features))
    ref = sequential_reference(cameras, means, scales, quats, opacities, features)
    assert (ref[..., -1] > 1 - 1.1e-4).any(), "the scene should make some pixels terminate"
    theirs = torch.autograd.grad((ref * weights).sum(), (means, scales, quats, opacities, features))
    for name, a, b in zip(("means", "scales", "quats", "opacities", "features"), ours, theirs):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-9), f"{name}: max |diff| {float((a - b).abs().max()):.2e}"


def test_camera_gradients_match_finite_differences():
    means, scales, quats, opacities, features = random_scene(7, seed=13)
    viewmats, Ks = stack_cameras([Camera.look_at((0.3, 0.2, 2.2), (0, 0, 0), fov_y_deg=35, width=21, height=17)],
                                 dtype=F64)
    weights = torch.rand(1, 17, 21, 5, generator=torch.Generator().manual_seed(14), dtype=F64)

    def loss(viewmats, Ks):
        out = rasterize(means, scales, opacities, features, viewmats, Ks, 21, 17, quats=quats, backend="torch")
        return (torch.cat([out.features, out.alpha, out.depth], -1) * weights).sum()

    assert torch.autograd.gradcheck(loss, (viewmats.requires_grad_(), Ks.requires_grad_()), eps=1e-6, atol=1e-6,
                                    rtol=1e-5)


def test_every_input_gets_a_gradient():
    loss, inputs = _gradcheck_scene(True, False)
    loss(*inputs).backward()
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad != 0).all()


# ------------------------------------------------------------------------------------------------
# Backends and validation


def test_backend_choice_is_explained():
    backends = available_backends()
    assert backends["torch"] is None
    name, why = auto_backend("cpu")
    assert name == "torch" and why.startswith("gsplat: ") and "PyTorch reference" in why
    if backends["gsplat"] is not None:
        means, scales, _, opacities, features = random_scene(3, anisotropic=False)
        with pytest.raises(RuntimeError, match=r"gsplat.*(pip install \"persona-studio\[gpu\]\"|CUDA)"):
            render([front_camera()], means, scales, opacities, features, backend="gsplat")


def _valid_args():
    means, scales, _, opacities, features = random_scene(5, anisotropic=False)
    viewmats, Ks = stack_cameras([front_camera()], dtype=F64)
    return {"means": means, "scales": scales, "opacities": opacities, "features": features,
            "viewmats": viewmats, "Ks": Ks, "width": 64, "height": 48}


@pytest.mark.parametrize("change, message", [
    ({"width": 0}, "width must be a positive int"),
    ({"height": -3}, "height must be a positive int"),
    ({"width": 64.0}, "width must be a positive int"),
    ({"means": torch.zeros(5, 2, dtype=F64)}, r"means must be \[N, 3\]"),
    ({"features": torch.zeros(4, 3, dtype=F64)}, "features must have shape"),
    ({"opacities": torch.zeros(6, dtype=F64)}, "opacities must have shape"),
    ({"scales": torch.zeros(5, 2, dtype=F64)}, "scales must be"),
    ({"viewmats": torch.eye(4, dtype=F64)}, r"viewmats must be \[B, 4, 4\]"),
    ({"Ks": torch.eye(3, dtype=F64).expand(2, 3, 3)}, r"Ks must be \[B, 3, 3\]"),
    ({"quats": torch.zeros(5, 4, dtype=F64)}, "quats only apply to anisotropic"),
    ({"background": torch.zeros(4, dtype=F64)}, "background must be"),
    ({"backend": "cuda"}, "backend must be"),
    ({"near": 2.0, "far": 1.0}, "near < far"),
    ({"features": torch.zeros(5, 3, dtype=torch.int64)}, "floating-point"),
])
def test_bad_inputs_raise_clear_value_errors(change, message):
    args = _valid_args()
    args.update(change)
    names = ("means", "scales", "opacities", "features", "viewmats", "Ks", "width", "height")
    positional = [args.pop(name) for name in names]
    with pytest.raises(ValueError, match=message):
        rasterize(*positional, **args)


def test_rasterize_cameras_equals_rasterize():
    means, scales, quats, opacities, features = random_scene(20, seed=9)
    cams = [front_camera(), Camera.look_at((0.0, 2.0, 2.0), (0, 0, 0), width=64, height=48)]
    viewmats, Ks = stack_cameras(cams, dtype=F64)
    direct = rasterize(means, scales, opacities, features, viewmats, Ks, 64, 48, quats=quats)
    helper = rasterize_cameras(cams, means, scales, opacities, features, quats=quats)
    assert torch.equal(direct.features, helper.features)


GSPLAT_MISSING = available_backends()["gsplat"]


@pytest.mark.cuda
@pytest.mark.skipif(GSPLAT_MISSING is not None, reason=f"needs CUDA and gsplat: {GSPLAT_MISSING}")
@pytest.mark.parametrize("antialiased, channels", [(False, 3), (True, 3), (True, 13)])
def test_gsplat_and_torch_backends_agree(antialiased, channels):
    """13 channels: what the trainer renders (colour, seam colour, normal, part colour, hand)."""
    means, scales, quats, opacities, features = random_scene(2000, channels, seed=10, dtype=torch.float32)
    means = means * 1.5
    scales = scales * 0.5
    cams = [front_camera(160, 120), Camera.look_at((2.0, 1.0, 2.0), (0, 0, 0), width=160, height=120)]
    bg = torch.linspace(0.3, 0.9, channels)
    weights = torch.linspace(0.5, 1.5, channels)  # every channel's gradient differs
    outs = {}
    for backend, device in (("torch", "cpu"), ("gsplat", "cuda")):
        args = [x.detach().to(device).requires_grad_() for x in (means, scales, opacities, features, quats)]
        out = rasterize_cameras(cams, *args[:4], quats=args[4], background=bg.to(device), backend=backend,
                                antialiased=antialiased)
        ((out.features * weights.to(device)).square().sum() + out.depth.sum()).backward()
        outs[backend] = ([x.detach().cpu() for x in (out.features, out.alpha, out.depth)]
                         + [args[i].grad.cpu() for i in (0, 1, 3)])
    (img_t, alpha_t, depth_t, *grads_t), (img_g, alpha_g, depth_g, *grads_g) = outs["torch"], outs["gsplat"]
    mse = float((img_t - img_g).square().mean())
    psnr = 10 * math.log10(1.0 / max(mse, 1e-20))

    def diff(a, b):
        return float((a - b).abs().max())

    report = (f"features PSNR {psnr:.1f} dB, max |diff| {diff(img_t, img_g):.2e}; alpha max |diff| "
              f"{diff(alpha_t, alpha_g):.2e}; depth max |diff| where alpha > 0.5 "
              f"{diff(depth_t[alpha_t > 0.5], depth_g[alpha_t > 0.5]):.2e}")
    assert psnr > 50 and diff(img_t, img_g) < 1e-2 and diff(alpha_t, alpha_g) < 1e-2, report
    assert diff(depth_t[alpha_t > 0.5], depth_g[alpha_t > 0.5]) < 1e-2, report
    for name, grad_t, grad_g in zip(("means", "scales", "features"), grads_t, grads_g):
        cosine = torch.nn.functional.cosine_similarity(grad_t.flatten(), grad_g.flatten(), dim=0)
        assert cosine > 0.99, f"{name} gradients differ (cosine {float(cosine):.4f}); {report}"


def test_camera_with_longer_side_keeps_the_view():
    camera = Camera.look_at(np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0, 0.0]), fov_y_deg=40.0, width=614, height=922)
    small = camera.with_longer_side(256)
    assert (small.width, small.height) == (170, 256)
    point = np.array([0.2, 1.3, 0.1])
    u, v, _ = camera.project(point)
    su, sv, _ = small.project(point)
    assert su == pytest.approx(u * 170 / 614) and sv == pytest.approx(v * 256 / 922)
