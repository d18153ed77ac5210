"""What a training run is asked to do: the presets (``presets/training/*.json``), the run's settings and
the live-adjustable loss weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from persona_studio.paths import project_folder

PRESETS_DIR = project_folder("presets") / "training"


def default_preset(device: str) -> str:
    """The preset a run gets unless it names one: ``standard`` on a GPU (``device`` of type cuda),
    ``preview`` (the CPU-friendly one) elsewhere."""
    return "standard" if str(device).startswith("cuda") else "preview"


@dataclass
class LossWeights:
    """Live-adjustable weights (the app's sliders)."""

    image: float = 1.0  # photo image loss
    generated_image: float = 0.1  # image loss of generated frames, as seen by the deformation
    mask: float = 1.0
    depth: float = 1.0
    normal: float = 1.0
    parts: float = 1.0
    photo_geometry: float = 0.1  # depth/normal/part weight on the photo
    seam: float = 0.1  # photo image weight inside seams (the seam colour gets 1 - seam there)
    hand_mask: float = 1.0
    laplacian_offsets: float = 1e4
    laplacian_scales: float = 0.1
    laplacian_colors: float = 0.1
    colour_prior: float = 4.0  # pull towards the starting colours (what the photo shows, the re-poser inferred)


@dataclass
class TrainSettings:
    """One training run: the preset it starts from, sizes, the ablation switches, live weights and
    schedules."""
    preset: str = "preview"
    iterations: int = 2000
    resolution: int = 256  # longer side of the training renders
    template_level: int = 1
    mlp_width: int = 128
    triplane_resolution: int = 128
    checkpoint_every: int = 250
    preview_every: int = 50
    photo_share: float = 0.5
    lr_scale: float = 1.0
    balanced_sampling: bool = True  # ablation switches
    geometry_weighting: bool = True
    pose_deformation: bool = True
    held_out_share: float = 0.1
    seed: int = 0
    weights: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TrainSettings":
        """The settings of preset ``name`` (``presets/training/NAME.json``) with ``overrides`` (``None``
        values ignored)."""
        path = PRESETS_DIR / f"{name}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.json")))
            raise ValueError(f"unknown training preset {name!r}: use one of {known}")
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)} - {"weights"}
        values = {k: v for k, v in raw.items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        weight_names = {f.name for f in fields(LossWeights)}
        unknown = set(raw.get("weights", {})) - weight_names
        if unknown:
            raise ValueError(f"preset {name!r} sets unknown loss weights {sorted(unknown)}: use {sorted(weight_names)}")
        values.setdefault("weights", LossWeights(**raw.get("weights", {})))
        return cls(preset=name, **values)
