"""Where the project keeps per-user files, and the environment variables that say so.

Environment variables (each overrides the saved setting of the same meaning):
- ``PERSONA_SMPLX_DIR``: folder (or file) with the official SMPL-X model (``SMPLX_NEUTRAL.npz`` ...).
- ``PERSONA_STUDIO_CACHE``: cache folder (the open body model built from anny lives here).
- ``PERSONA_STUDIO_CONFIG``: folder holding ``settings.json``.

Below every package (the body model finds its cache here); the user's saved choices are
:mod:`persona_studio.settings`, read only by the app and the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "persona-studio"
ENV_SMPLX = "PERSONA_SMPLX_DIR"
ENV_CACHE = "PERSONA_STUDIO_CACHE"
ENV_CONFIG = "PERSONA_STUDIO_CONFIG"


def cache_dir() -> Path:
    """The cache folder (made when missing)."""
    path = Path(os.environ.get(ENV_CACHE) or platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """The folder of ``settings.json``."""
    return Path(os.environ.get(ENV_CONFIG) or platformdirs.user_config_dir(APP_NAME))
