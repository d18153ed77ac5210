"""Every motion preset plays through the real body model with no skinning blow-up.

Bounds, from the per-edge stretch (posed length / rest length) over every frame of every preset:
linear blend skinning folds the inside of a bent joint (edges shrink towards zero) and stretches the
outside; the worst case is the crotch when a thigh flexes past 90 degrees, where 5 mm edges reach
about 3 cm (ratio ~6), and raising the arms overhead lengthens the long flank edges by ~3.5 cm. A
blow-up (a wrong weight, a NaN rotation, a joint flipped by a bad up-axis conversion) grows edges by
decimetres and sends many edges past 2x, so the test bounds: no edge grows by more than 5 cm or
stretches more than 8x; at most 0.1 % of edges over 2x; the body stays in a 2.5 m box around its pelvis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from persona_studio.body.motion import preset_motion_paths, read_motion

PRESETS = preset_motion_paths()


def test_there_are_enough_presets():
    assert len(PRESETS) >= 8
    for needed in ("turn", "arms", "punch", "kick", "squat", "walk", "wave", "dance"):
        assert any(needed in name for name in PRESETS), f"no preset for {needed}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_skins_without_blow_up(body_model, name):
    motion = read_motion(PRESETS[name])
    assert 25 <= motion.fps <= 30 and 2 <= motion.duration <= 8
    assert_skins_without_blow_up(body_model, motion, name)


def assert_skins_without_blow_up(body_model, motion, name: str, every: int = 1) -> None:
    """The bounds above over every ``every``-th frame of ``motion``."""
    faces = body_model.faces
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
    with torch.no_grad():
        rest = body_model.forward().vertices[0].numpy()
        kwargs = motion.smplx_kwargs(np.arange(0, motion.num_frames, every), num_betas=body_model.layer.num_betas,
                                     num_expression_coeffs=body_model.layer.num_expression_coeffs)
        out = body_model.forward(**kwargs)
    posed = out.vertices.numpy()
    assert np.isfinite(posed).all()
    rest_len = np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1)
    length = np.linalg.norm(posed[:, edges[:, 0]] - posed[:, edges[:, 1]], axis=2)  # [T, E]
    ratio = length / rest_len
    share_over_2 = (ratio > 2).mean()
    growth = (length - rest_len).max()
    assert growth < 0.05, f"{name}: an edge grew by {growth * 100:.1f} cm"
    assert ratio.max() < 8, f"{name}: stretch {ratio.max():.1f}x"
    assert share_over_2 < 1e-3, f"{name}: {share_over_2:.2%} of edges stretched past 2x"
    pelvis = out.joints[:, :1].numpy()
    assert np.abs(posed - pelvis).max() < 1.25, f"{name}: a vertex left the body's box"
