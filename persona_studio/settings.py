"""The user's saved settings (``settings.json``; the environment variables of :mod:`persona_studio.paths`
override them). Read by the app and the command line only: they pass what the stages need."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from persona_studio.device import DEVICE_CHOICES, DEVICE_PATTERN
from persona_studio.fileio import write_json_atomic
from persona_studio.paths import ENV_SMPLX, config_dir

log = logging.getLogger(__name__)


def settings_file() -> Path:
    """``settings.json`` in :func:`persona_studio.paths.config_dir`."""
    return config_dir() / "settings.json"


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
        """The saved settings (:meth:`read`), each problem with the file logged as a warning."""
        settings, problems = cls.read()
        for problem in problems:
            log.warning("%s", problem)
        return settings

    @classmethod
    def read(cls) -> tuple["Settings", list[str]]:
        """The saved settings, and what is wrong with the file: one line per problem (not JSON, not an
        object, a value of the wrong type), each naming the file and the key. Defaults stand in for what
        could not be used; a missing file is no problem."""
        path = settings_file()
        if not path.is_file():
            return cls(), []
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError) as exc:
            return cls(), [f"{path} cannot be read ({exc}): using the default settings; fix or delete the file, "
                           "or save the settings again from the app"]
        if not isinstance(raw, dict):
            return cls(), [f"{path} holds a JSON {type(raw).__name__}, not an object of settings: using the "
                           "default settings"]
        values, problems = {}, []
        for f in fields(cls):
            if f.name not in raw:
                continue
            problem = _setting_problem(f.name, raw[f.name])
            if problem:
                problems.append(f"{path}: {f.name} {problem}: using the default instead")
            else:
                values[f.name] = raw[f.name]
        return cls(**values), problems

    def save(self) -> Path:
        """Write the settings to ``settings.json`` atomically; returns its path."""
        return write_json_atomic(settings_file(), asdict(self))

    def model_files(self) -> dict[str, str]:
        """The optional generators' files, as ``generate.stage.ModelFiles`` takes them."""
        return {"mimicmotion": self.mimicmotion_path, "svd": self.svd_path, "sapiens": self.sapiens_path,
                "device": self.device}

    def official_smplx_path(self) -> str:
        """The official SMPL-X location: the environment variable wins over the saved setting."""
        return os.environ.get(ENV_SMPLX, "") or self.smplx_path


DEVICES = ("auto", "cpu", "cuda")  # cuda also as cuda:N


def _setting_problem(name: str, value) -> str | None:
    """Why ``value`` cannot be the setting ``name`` (None when it can)."""
    if name == "recent_workspaces":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"must be a list of folder paths, not {json.dumps(value)[:60]}"
        return None
    if not isinstance(value, str):
        return f"must be text, not {json.dumps(value)[:60]}"
    if name == "smplx_gender":
        from persona_studio.body.model import GENDERS

        if value not in GENDERS:
            return f"must be one of {', '.join(GENDERS)}, not {value!r}"
        return None
    if name == "device" and not re.fullmatch(DEVICE_PATTERN, value):
        return f"must be {DEVICE_CHOICES}, not {value!r}"
    return None
