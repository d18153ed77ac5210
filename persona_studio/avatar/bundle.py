"""Avatar bundles: tensors in safetensors + JSON metadata, loading back bit-exact.

``avatar.safetensors`` holds every parameter and buffer; ``avatar.json`` the format version, the
avatar's settings and its identity (body model kind and builder version, template level, subject).
Files hold CPU tensors whatever device the avatar trained on; loading puts them on the device asked for.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.fileio import DamagedFileError, atomic_folder, read_json_object, write_bytes_atomic

BUNDLE_VERSION = 1
BUNDLE_FILES = ("avatar.json", "avatar.safetensors")


class BundleError(ValueError):
    """An avatar bundle that cannot be read; the message says why."""


def save_avatar(avatar: Avatar, folder: str | Path, extra: dict | None = None) -> Path:
    """Write the bundle into ``folder`` (replaced as a whole, atomically)."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in avatar.state_dict().items()}
    meta = {"format": "persona-studio avatar", "format_version": BUNDLE_VERSION, "config": avatar.settings_dict(),
            "identity": avatar.identity, "num_gaussians": avatar.num_gaussians, **(extra or {})}
    with atomic_folder(folder) as tmp:  # serialised in memory: safetensors' own file writer leaves .tmp files when killed
        (tmp / "avatar.safetensors").write_bytes(save(state))
        (tmp / "avatar.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def save_checkpoint(avatar: Avatar, path: str | Path, extra_tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """One-file checkpoint (safetensors with JSON metadata) for resuming training."""
    state = {f"avatar.{k}": v.detach().cpu().contiguous().clone() for k, v in avatar.state_dict().items()}
    state.update({k: v.detach().cpu().contiguous().clone() for k, v in extra_tensors.items()})
    info = {"config": json.dumps(avatar.settings_dict()), "identity": json.dumps(avatar.identity),
            "meta": json.dumps(meta)}
    return write_bytes_atomic(path, save(state, metadata=info))


def avatar_from_state(state: dict[str, torch.Tensor], config: AvatarConfig, identity: dict,
                      device: torch.device | str = "cpu") -> Avatar:
    """An Avatar on ``device`` rebuilt from its saved CPU tensors (``state_dict`` keys), configuration and
    identity."""
    arrays = {k: state[k].detach().cpu().numpy() for k in ("template", "faces", "skinning", "expr_dirs", "parts",
                                                           "rest_joints", "colors")}
    avatar = Avatar(arrays["template"], arrays["faces"], arrays["skinning"], arrays["expr_dirs"], arrays["parts"],
                    arrays["rest_joints"], arrays["colors"], config, identity)
    avatar.load_state_dict(state)
    return avatar.to(device)


def _config(raw: dict) -> AvatarConfig:
    known = {f.name for f in fields(AvatarConfig)}
    return AvatarConfig(**{k: v for k, v in raw.items() if k in known})


def load_avatar(folder: str | Path, device: torch.device | str = "cpu") -> tuple[Avatar, dict]:
    """Read a bundle written by :func:`save_avatar` -> (Avatar on ``device``, its avatar.json metadata); raises BundleError
    when ``folder`` is no bundle of this format version, or a damaged one."""
    folder = Path(folder)
    meta_path = folder / "avatar.json"
    if not meta_path.is_file():
        raise BundleError(f"{folder} is not an avatar bundle (no avatar.json): train or export one first")
    again = "train the avatar again (`persona-studio train`) or import the workspace bundle again"
    try:
        meta = read_json_object(meta_path, again)
    except DamagedFileError as exc:
        raise BundleError(str(exc)) from None
    if meta.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"{folder}: bundle format {meta.get('format_version')} is not {BUNDLE_VERSION}")
    try:
        config, identity = _config(meta["config"]), dict(meta["identity"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path} is damaged (no valid {exc} entry): {again}") from None
    tensors = folder / "avatar.safetensors"
    try:
        return avatar_from_state(load_file(str(tensors)), config, identity, device), meta
    except FileNotFoundError:
        raise BundleError(f"{folder} has no avatar.safetensors: {again}") from None
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{tensors} is damaged or incomplete ({type(exc).__name__}: {exc}): {again}") from None


CHECKPOINT_DAMAGED = "delete it, or start afresh with `persona-studio train --restart` (the app: Train, then Start afresh)"


def read_checkpoint_meta(path: str | Path) -> dict:
    """The meta dict of a :func:`save_checkpoint` file, read from its header alone (no tensors)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["meta"])
    except (SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the training checkpoint {path} is damaged ({exc}): {CHECKPOINT_DAMAGED}") from None


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[Avatar, dict[str, torch.Tensor], dict]:
    """Read a :func:`save_checkpoint` file -> (Avatar, the other tensors saved with it, the meta dict), all on
    ``device``; a damaged file raises BundleError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            info = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        avatar_state = {k[len("avatar."):]: v for k, v in tensors.items() if k.startswith("avatar.")}
        rest = {k: v.to(device) for k, v in tensors.items() if not k.startswith("avatar.")}
        avatar = avatar_from_state(avatar_state, _config(json.loads(info["config"])), json.loads(info["identity"]), device)
        return avatar, rest, json.loads(info["meta"])
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleError(f"the training checkpoint {path} is damaged ({type(exc).__name__}: {exc}): "
                          f"{CHECKPOINT_DAMAGED}") from None
