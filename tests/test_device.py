"""Choosing the compute device once (persona_studio.device): what each setting gives on this machine, and
one line saying what to do for a choice it cannot honour."""

from __future__ import annotations

import pytest
import torch

from persona_studio.device import DeviceError, resolve_device

from conftest import needs_cuda


def test_auto_is_cuda_when_torch_has_it_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:x", ""])
def test_an_unknown_device_names_the_choices(name):
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_to_use_the_cpu():
    with pytest.raises(DeviceError, match="--device cpu"):
        resolve_device("cuda")


@needs_cuda
def test_cuda_names_a_device_that_exists():
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
