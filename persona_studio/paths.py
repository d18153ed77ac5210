"""Where the project keeps per-user files, where its own run-time files are, and the environment
variables that say so.

Environment variables (each overrides the saved setting of the same meaning):
- ``PERSONA_SMPLX_DIR``: folder (or file) with the official SMPL-X model (``SMPLX_NEUTRAL.npz`` ...).
- ``PERSONA_STUDIO_CACHE``: cache folder (the open body model built from anny lives here).
- ``PERSONA_STUDIO_CONFIG``: folder holding ``settings.json``.

Below every package (the body model finds its cache here); the user's saved choices are
:mod:`persona_studio.settings`, read only by the app and the command line.
"""

from __future__ import annotations

import os
from importlib import resources
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


PACKAGE_DATA = "data"  # inside the installed package: the checkout's top-level folders (setup.py's build_py)
PACKAGED_FOLDERS = ("shaders", "presets", "resources")


def project_folder(name: str) -> Path:
    """A folder of files the program reads at run time (``shaders``, ``presets``, ``resources``).

    An installed wheel carries it inside the package (``persona_studio/data/<name>``, found through
    :mod:`importlib.resources`); a checkout (``python main.py``, an editable install) keeps it at the top,
    beside the package."""
    if name not in PACKAGED_FOLDERS:
        raise ValueError(f"{name!r} is not one of the packaged folders {PACKAGED_FOLDERS}")
    installed = resources.files(__package__).joinpath(PACKAGE_DATA, name)
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[1] / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"the program's {name}/ folder is missing (looked in {installed} and {checkout}): "
                            "reinstall persona-studio (pip install .) or run from a complete checkout")
