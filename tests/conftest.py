"""Shared test fixtures: real data paths and a virtual display for GL / GUI tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def needs_cuda(test):
    """A CUDA-only test: marked ``cuda`` (``pytest -m cuda`` runs them all), skipped with the reason where
    torch finds no CUDA device."""
    import torch

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch finds none here)")
    return pytest.mark.cuda(skip(test))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not present: {path} (the shared data folder sits beside the checkout)")
    return path


@pytest.fixture(scope="session")
def display() -> str:
    """A usable X display: the existing $DISPLAY, or an Xvfb started for the test session."""
    from support.virtual_display import DisplayError, virtual_display

    try:
        with virtual_display() as name:
            yield name
    except DisplayError as exc:
        pytest.fail(str(exc))


def _official_smplx_location() -> str:
    from persona_studio.paths import ENV_SMPLX

    return os.environ.get(ENV_SMPLX, "")


BODY_KINDS = ["open", pytest.param("official", marks=pytest.mark.skipif(
    not _official_smplx_location(),
    reason="official SMPL-X not configured: set PERSONA_SMPLX_DIR to the folder with SMPLX_NEUTRAL.npz"))]


@pytest.fixture(scope="session", params=BODY_KINDS)
def body_model(request):
    """The real body model: the open one always, official SMPL-X too when PERSONA_SMPLX_DIR is set."""
    from persona_studio.body.model import load_body_model

    return load_body_model(request.param, num_betas=10, official_path=_official_smplx_location() or None)


@pytest.fixture(scope="session")
def open_body_model():
    from persona_studio.body.model import load_body_model

    return load_body_model("open", num_betas=10)


@pytest.fixture(scope="session")
def deforming_avatar(open_body_model):
    """A level-0 avatar of the open body model with random colours, offsets and sizes and a pose MLP
    whose deformation is far from zero (as exports must carry it)."""
    import numpy as np
    import torch

    from persona_studio.avatar.avatar import Avatar, AvatarConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    colors = lambda interp, v: rng.uniform(0, 1, (v.shape[0], 3)).astype(np.float32)  # noqa: E731
    av = Avatar.from_body_model(open_body_model, rng.normal(0, 1, 10).astype(np.float32), colors,
                                AvatarConfig(level=0), {"body_model": {"kind": "open"}, "photo": "test"})
    with torch.no_grad():
        av.offsets.normal_(std=0.003)
        av.log_scales.copy_(torch.empty(av.num_gaussians).uniform_(np.log(0.002), np.log(0.02)))
        torch.nn.init.normal_(av.mlp.out.weight, std=0.2)  # a non-trivial pose deformation
        torch.nn.init.normal_(av.triplane.planes, std=0.5)
    av.invalidate_cache()
    return av
