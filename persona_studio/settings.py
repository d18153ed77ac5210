"""The user's saved settings (``settings.json``; the environment variables of :mod:`persona_studio.paths`
override them). Read by the app and the command line only: they pass what the stages need."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from persona_studio.fileio import write_json_atomic
from persona_studio.paths import ENV_SMPLX, config_dir


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
        """The saved settings; defaults when the file is missing or unreadable."""
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
        """Write the settings to ``settings.json`` atomically; returns its path."""
        return write_json_atomic(config_dir() / "settings.json", asdict(self))

    def model_files(self) -> dict[str, str]:
        """The optional generators' files, as ``generate.stage.ModelFiles`` takes them."""
        return {"mimicmotion": self.mimicmotion_path, "svd": self.svd_path, "sapiens": self.sapiens_path,
                "device": self.device}

    def official_smplx_path(self) -> str:
        """The official SMPL-X location: the environment variable wins over the saved setting."""
        return os.environ.get(ENV_SMPLX, "") or self.smplx_path
