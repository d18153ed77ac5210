"""The one compute device a run uses, chosen once from the user's setting (``auto``, ``cpu``, ``cuda`` or
``cuda:N``) and checked before any work starts, so that a wrong choice is one line saying what to do.

``auto`` is the first CUDA device when torch can use one, else the CPU.
"""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE_HELP = "where the work runs: auto (CUDA when torch has it, else the CPU), cpu, cuda or cuda:N"
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"


class DeviceError(ValueError):
    """A device setting this machine cannot honour; the message says what to choose instead."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> the torch device to put every tensor on."""
    if not re.fullmatch(DEVICE_PATTERN, name or ""):
        raise DeviceError(f"unknown device {name!r}: choose {DEVICE_CHOICES}")
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch has no CUDA support (a CPU build)" if torch.version.cuda is None \
                else "torch finds no CUDA device (check the NVIDIA driver with nvidia-smi)"
            raise DeviceError(f"device {name} was asked for, but {build}: use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise DeviceError(f"device {name} was asked for, but this machine has {count} CUDA device(s): "
                              f"cuda:0..cuda:{count - 1}")
        device = torch.device("cuda", device.index or 0)
    return device
