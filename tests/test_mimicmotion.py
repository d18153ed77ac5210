"""MimicMotion backend, on CPU, with tiny random weights saved in the real files' layout.

The test builds a tiny SVD-xt-1-1 folder (unet/config.json only, vae/ as the fp16 variant,
image_encoder/, scheduler/, feature_extractor/) and a ``MimicMotion_1-1.pth`` holding ``unet.*`` and
``pose_net.*`` weights, then loads them through the backend's own loading code.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from persona_studio.generate.mimicmotion import (CUDA_MESSAGE, MimicMotionError, MimicMotionGenerator, PoseNet,
                                                 blend_windows, check_mimicmotion, letterbox, unletterbox,
                                                 window_plan)

from conftest import needs_cuda

HAVE_DIFFUSERS = all(importlib.util.find_spec(name) for name in ("diffusers", "transformers"))
needs_diffusers = pytest.mark.skipif(not HAVE_DIFFUSERS, reason='diffusers/transformers not installed '
                                     '(pip install "persona-studio[gpu]")')
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")

UNET_WIDTH = 32  # the tiny UNet's first block width = the pose guider's output channels
# MimicMotion's release (mimicmotion/modules/pose_net.py): state-dict name -> shape.
POSE_NET_LAYOUT = {
    "conv_layers.0.weight": (3, 3, 3, 3), "conv_layers.0.bias": (3,),
    "conv_layers.2.weight": (16, 3, 4, 4), "conv_layers.2.bias": (16,),
    "conv_layers.4.weight": (16, 16, 3, 3), "conv_layers.4.bias": (16,),
    "conv_layers.6.weight": (32, 16, 4, 4), "conv_layers.6.bias": (32,),
    "conv_layers.8.weight": (32, 32, 3, 3), "conv_layers.8.bias": (32,),
    "conv_layers.10.weight": (64, 32, 4, 4), "conv_layers.10.bias": (64,),
    "conv_layers.12.weight": (64, 64, 3, 3), "conv_layers.12.bias": (64,),
    "conv_layers.14.weight": (128, 64, 3, 3), "conv_layers.14.bias": (128,),
    "final_proj.weight": (UNET_WIDTH, 128, 1, 1), "final_proj.bias": (UNET_WIDTH,),
    "scale": (1,),
}
# SVD-xt-1-1's scheduler/scheduler_config.json values.
SVD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                     steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
HEIGHT, WIDTH = 64, 32
FAST = dict(steps=2, window=4, overlap=2)


def random_pose_net_weights(seed: int) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in POSE_NET_LAYOUT.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        weights[name] = torch.randn(shape, generator=rng) * (2 / fan_in) ** 0.5
    weights["scale"] = torch.full((1,), 2.0)
    return weights


def build_tiny_model(root, *, with_pose_net: bool = True):
    """A tiny MimicMotion_1-1.pth and SVD-xt-1-1 folder under ``root``; returns (checkpoint, svd, state)."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, block_out_channels=(UNET_WIDTH, 64),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, layers_per_block=1,
        cross_attention_dim=16, num_attention_heads=(2, 4), num_frames=4)
    vae = AutoencoderKLTemporalDecoder(down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32,) * 4,
                                       layers_per_block=1, latent_channels=4)  # 4 blocks: 8x, like SVD's
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=224,
        patch_size=32, projection_dim=16))
    svd = root / "stable-video-diffusion-img2vid-xt-1-1"
    unet.save_config(svd / "unet")  # config only: MimicMotion_1-1.pth carries the UNet's weights
    vae.half().save_pretrained(svd / "vae", variant="fp16")
    clip.save_pretrained(svd / "image_encoder")
    EulerDiscreteScheduler(**SVD_SCHEDULER).save_pretrained(svd / "scheduler")
    CLIPImageProcessor().save_pretrained(svd / "feature_extractor")
    state = {f"unet.{k}": v.half() for k, v in unet.state_dict().items()}
    if with_pose_net:
        state |= {f"pose_net.{k}": v.half() for k, v in random_pose_net_weights(1).items()}
    checkpoint = root / "MimicMotion_1-1.pth"
    torch.save(state, checkpoint)
    return checkpoint, svd, state


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    if not HAVE_DIFFUSERS:
        pytest.skip('diffusers/transformers not installed (pip install "persona-studio[gpu]")')
    return build_tiny_model(tmp_path_factory.mktemp("mimicmotion"))


@pytest.fixture(scope="module")
def generator(tiny_model):
    checkpoint, svd, _ = tiny_model
    return MimicMotionGenerator(checkpoint.parent, svd, device="cpu", dtype=torch.float32, allow_cpu=True,
                                size=(WIDTH, HEIGHT))


def person_and_skeletons(count: int, height: int = HEIGHT, width: int = WIDTH, seed: int = 0):
    """A blob 'person' on white and skeleton frames: a coloured bar moving across black."""
    rng = np.random.default_rng(seed)
    reference = np.full((height, width, 3), 255, np.uint8)
    reference[height // 4:3 * height // 4, width // 4:3 * width // 4] = rng.integers(0, 255, 3, dtype=np.uint8)
    skeletons = np.zeros((count, height, width, 3), np.uint8)
    for t in range(count):
        row = (t * 5) % (height - 4)
        skeletons[t, row:row + 4, 2:width - 2] = (255, 85 * (t % 3), 0)
    return reference, skeletons


# --- pure parts ------------------------------------------------------------------------------------------

def test_window_plan_follows_the_release_tiling():
    # Hand-derived from the release's rule: windows of [0] + (window - 1) consecutive frames, starts
    # (window - overlap) apart, plus one aligned to the end when the stride misses it.
    assert window_plan(9, 4, 2) == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7], [0, 6, 7, 8]]
    assert window_plan(8, 4, 2) == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7]]
    assert window_plan(3, 4, 2) == [[0, 1, 2]]
    assert window_plan(4, 4, 2) == [[0, 1, 2, 3]]
    plan = window_plan(151, 72, 6)  # 150 driving frames at PERSONA's settings
    assert [w[1] for w in plan] == [1, 67, 80] and all(w[0] == 0 and len(w) == 72 for w in plan)
    for frames, window, overlap in [(2, 72, 6), (73, 72, 6), (200, 72, 6), (30, 5, 1), (30, 5, 4)]:
        plan = window_plan(frames, window, overlap)
        assert sorted({i for w in plan for i in w}) == list(range(frames))
        assert all(w[0] == 0 and len(w) == min(window, frames) for w in plan)
        assert all(w[1:] == list(range(w[1], w[-1] + 1)) for w in plan)
        assert plan[-1][-1] == frames - 1


def test_overlapping_windows_cross_fade_linearly():
    windows = window_plan(16, 8, 4)  # driving frames 1-7, 5-11, 9-15
    assert windows == [[0, *range(1, 8)], [0, *range(5, 12)], [0, *range(9, 16)]]
    values = {tuple(w): float(k) for k, w in enumerate(windows)}
    blended = blend_windows(windows, lambda idx: torch.full((1, len(idx), 1), values[tuple(idx)]), 16)[0, :, 0]
    assert torch.allclose(blended[1:5], torch.zeros(4)) and blended[8] == 1 and blended[12:].eq(2).all()
    # Shared frames: tent weights (k + 0.5) / 4 rising in the next window, falling in this one, summing to 1.
    assert torch.allclose(blended[5:8], torch.tensor([0.375, 0.625, 0.875]))
    assert torch.allclose(blended[9:12], torch.tensor([1.375, 1.625, 1.875]))
    assert 0 < blended[0] < 2  # frame 0 (the reference) is averaged over all windows


def test_pose_net_has_the_release_layout():
    net = PoseNet(UNET_WIDTH)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == POSE_NET_LAYOUT
    assert net(torch.zeros(2, 3, HEIGHT, WIDTH)).shape == (2, UNET_WIDTH, HEIGHT // 8, WIDTH // 8)


def test_letterbox_keeps_everything_and_inverts():
    image = torch.linspace(0, 1, 40 * 30 * 3).reshape(1, 3, 40, 30)
    boxed = letterbox(image, (64, 32), fill=1.0)
    assert boxed.shape == (1, 3, 64, 32)
    assert boxed[..., :5, :].eq(1).all() and boxed[..., -5:, :].eq(1).all()  # white bars above and below
    assert (unletterbox(boxed, (40, 30)) - image).abs().max() < 0.02


@no_cuda
def test_without_cuda_the_backend_says_so():
    assert check_mimicmotion(None, None) == CUDA_MESSAGE
    with pytest.raises(MimicMotionError, match="needs CUDA"):
        MimicMotionGenerator("MimicMotion_1-1.pth", "svd", device="cpu")


def test_missing_packages_are_named(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "diffusers" else real_find_spec(name, *args))
    with pytest.raises(MimicMotionError, match=r'diffusers is not installed \(pip install "persona-studio\[gpu\]"\)'):
        MimicMotionGenerator("MimicMotion_1-1.pth", "svd", device="cpu", allow_cpu=True)


@needs_diffusers
def test_missing_files_are_named(tmp_path):
    def problem(checkpoint, svd):
        with pytest.raises(MimicMotionError) as info:
            MimicMotionGenerator(checkpoint, svd, device="cpu", allow_cpu=True)
        return str(info.value)

    assert "no checkpoint set" in problem(None, tmp_path)
    assert problem(tmp_path, tmp_path) == (f"MimicMotion: no weights at {tmp_path} (put MimicMotion_1-1.pth "
                                           "there, from the MimicMotion release)")
    (tmp_path / "MimicMotion_1-1.pth").write_bytes(b"")
    svd = tmp_path / "svd"
    assert "no SVD-xt-1-1 folder at" in problem(tmp_path, svd)
    svd.mkdir()
    for relative in ("unet/config.json", "vae/config.json", "image_encoder/config.json",
                     "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json"):
        assert problem(tmp_path, svd) == f"MimicMotion: the SVD-xt-1-1 folder {svd} lacks {relative}"
        (svd / relative).parent.mkdir(exist_ok=True)
        (svd / relative).write_text("{}")
    assert "lacks vae/diffusion_pytorch_model.safetensors" in problem(tmp_path, svd)
    (svd / "vae" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    assert "lacks image_encoder/model.safetensors" in problem(tmp_path, svd)
    (svd / "image_encoder" / "model.safetensors").write_bytes(b"")
    assert "cannot read" in problem(tmp_path, svd)  # all there, but the checkpoint is empty


# --- loading -------------------------------------------------------------------------------------------

def test_weights_come_from_the_checkpoint(generator, tiny_model):
    _, _, state = tiny_model
    for prefix, module in (("unet.", generator.unet), ("pose_net.", generator.pose_net)):
        loaded = module.state_dict()
        assert len(loaded) == sum(k.startswith(prefix) for k in state)
        for name, value in loaded.items():
            assert torch.equal(value, state[prefix + name].float()), name


@needs_diffusers
def test_a_checkpoint_without_the_pose_guider_is_refused(tmp_path):
    checkpoint, svd, _ = build_tiny_model(tmp_path, with_pose_net=False)
    with pytest.raises(MimicMotionError, match=r"not a MimicMotion checkpoint: 19 pose_net\.\* weights missing"):
        MimicMotionGenerator(checkpoint, svd, device="cpu", dtype=torch.float32, allow_cpu=True, size=(WIDTH, HEIGHT))


# --- sampling --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [3, 4, 8])  # shorter than a window, one window, windows + an end-aligned one
def test_one_frame_out_per_skeleton_frame(generator, count):
    reference, skeletons = person_and_skeletons(count)
    reports = []
    frames = generator.generate(reference, skeletons, decode_chunk=3, progress=lambda f, m: reports.append(f),
                                **FAST)
    assert frames.shape == (count, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    windows = window_plan(count + 1, FAST["window"], FAST["overlap"])
    assert len(reports) == 1 + FAST["steps"] * len(windows) + -(-(count + 1) // 3)  # every window, every chunk
    assert reports == sorted(reports) and reports[-1] == 1.0


def test_seed_decides_the_frames(generator):
    reference, skeletons = person_and_skeletons(5)
    first = generator.generate(reference, skeletons, seed=3, **FAST)
    assert np.array_equal(first, generator.generate(reference, skeletons, seed=3, **FAST))
    assert not np.array_equal(first, generator.generate(reference, skeletons, seed=4, **FAST))


def test_pose_and_reference_steer_the_frames(generator):
    reference, skeletons = person_and_skeletons(5)
    base = generator.generate(reference, skeletons, **FAST)
    moved = skeletons.copy()
    moved[2] = np.roll(moved[2], 20, axis=0)
    assert not np.array_equal(base, generator.generate(reference, moved, **FAST))
    other_reference, _ = person_and_skeletons(5, seed=1)
    assert not np.array_equal(base, generator.generate(other_reference, skeletons, **FAST))
    own_pose = np.roll(skeletons[0], 10, axis=1)
    assert not np.array_equal(base, generator.generate(reference, skeletons, reference_skeleton=own_pose, **FAST))


def test_half_precision_matches_full(generator, tiny_model):
    checkpoint, svd, _ = tiny_model
    half = MimicMotionGenerator(checkpoint, svd, device="cpu", dtype=torch.float16, allow_cpu=True,
                                size=(WIDTH, HEIGHT))
    assert half.vae.quant_conv.weight.dtype == torch.float32  # the reference is encoded in fp32, as released
    reference, skeletons = person_and_skeletons(5)
    difference = np.abs(half.generate(reference, skeletons, **FAST).astype(int)
                        - generator.generate(reference, skeletons, **FAST))
    assert difference.max() <= 3 and difference.mean() < 0.5


def test_other_sizes_are_letterboxed_and_come_back(generator):
    reference, skeletons = person_and_skeletons(3, height=40, width=30)
    assert generator.generate(reference, skeletons, **FAST).shape == (3, 40, 30, 3)
    landscape, landscape_skeletons = person_and_skeletons(3, height=32, width=64)
    assert generator.generate(landscape, landscape_skeletons, **FAST).shape == (3, 32, 64, 3)


def test_cancel_stops_before_the_next_unet_pass(generator):
    reference, skeletons = person_and_skeletons(8)
    polls, reports = [], []

    def cancelled():
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(InterruptedError):
        generator.generate(reference, skeletons, cancelled=cancelled, progress=lambda f, m: reports.append(f), **FAST)
    assert len(polls) == 3 and len(reports) == 1 + 2  # the start, then two UNet passes, then the stop


@needs_diffusers
def test_bad_inputs_are_explained(generator):
    reference, skeletons = person_and_skeletons(3)
    with pytest.raises(ValueError, match="draw them at the reference's size"):
        generator.generate(reference, skeletons[:, :32], **FAST)
    with pytest.raises(ValueError, match="uint8"):
        generator.generate(reference.astype(np.float32), skeletons, **FAST)
    with pytest.raises(ValueError, match="overlap < window"):
        generator.generate(reference, skeletons, steps=2, window=4, overlap=4)


@needs_cuda
def test_fp16_on_cuda_matches_fp32_on_the_cpu(generator, tiny_model):
    """The real path (CUDA, half precision, the release's fp32 reference encoding) against the CPU's
    full precision: the seed decides the same frames on both devices."""
    checkpoint, svd, _ = tiny_model
    cuda = MimicMotionGenerator(checkpoint, svd, size=(WIDTH, HEIGHT))
    assert cuda.device.type == "cuda" and cuda.unet.dtype == torch.float16
    reference, skeletons = person_and_skeletons(5)
    difference = np.abs(cuda.generate(reference, skeletons, seed=2, **FAST).astype(int)
                        - generator.generate(reference, skeletons, seed=2, **FAST))
    assert difference.max() <= 3 and difference.mean() < 0.5
