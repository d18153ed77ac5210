"""The most any colouring of an avatar's Gaussians can score on the multi-view set: a ceiling for
benchmarks/novel_views.py.

PERSONA's Gaussians carry one RGB colour each, the same from every side. The multi-view set's renders
are lit differently from view to view (its README says so; the person's median linear blue is 1.7
times view 180's at 170 and 3.0 times at 150, where the suit looks navy against brown at 180), so no
such colouring can match every view. This script measures how much that costs: for each group of
views (front, sides, back, as novel_views.py forms them), it keeps the geometry of the models below (means, sizes, opacities, the alignment
novel_views.py gives them) and fits the colours to the group's own scored views, the very views they
are then scored on. No avatar with that geometry can score much higher there (Adam stops after
``--steps``), whatever it learns from photos; a goal above the ceiling asks for a better shape, or for
view-dependent colour.

Beside it, what the same geometry scores with its colours as they are (the baseline: novel_views.py's
figure), with each view's own best colour gain (least squares over the intersection: what the views'
lighting alone costs), and at the photos' own views (view 0 and ``--not-scored``: how much of the
photo the render keeps through the benchmark's alignment). Geometries:
- ``re-poser surface``: the workspace's photo surface (the fit's body, its clothed displacement);
- ``trained avatar``: the workspace's trained avatar (its checkpoint), in the photo's pose, when there is one.

    python benchmarks/colour_ceiling.py --workspace WS [--views DIR] [--not-scored YAW ...] [--steps N]
                                        [--groups back ...]

WS is a workspace benchmarks/novel_views.py has run in (``--workspace``): fitted, generated and
trained on the set's views. Give ``--not-scored`` the views that run left out (its photos, say 180):
they are photos the avatar learnt from, not views it has to guess. Colours are fitted by Adam on the
mean squared error over the masks' intersection, the error behind novel_views.py's PSNR; the PSNR is
then measured exactly as there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import novel_views as nv
from persona_studio.avatar.bundle import load_checkpoint
from persona_studio.body.model import load_body_model, smplx_tensors
from persona_studio.render.camera import Camera
from persona_studio.workspace.folders import checkpoint_file
from persona_studio.workspace.subject import Subject
from persona_studio.workspace.training_set import TrainingSet

COLOUR_LR = 0.02


class Geometry(NamedTuple):
    """A model's Gaussians in the photo's pose and the far camera novel_views.py renders them by."""
    name: str
    gaussians: nv.Gaussians
    camera: Camera

    @property
    def colors(self) -> torch.Tensor:
        return self.gaussians.colors

    def render(self, yaw: float, colors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return nv.turned_render(self.gaussians, self.camera, yaw, colors)


def seen_from_afar(name: str, gaussians: nv.Gaussians, photo: Camera) -> Geometry:
    return Geometry(name, gaussians, nv.gaussians_camera(gaussians, photo))


def trained_geometry(workspace: Path, subject: Subject) -> Geometry | None:
    path = checkpoint_file(workspace)
    if not path.is_file():
        return None
    avatar, _, saved = load_checkpoint(path)
    gaussians = nv.avatar_gaussians(avatar, smplx_tensors(subject.smplx))
    return seen_from_afar(f"trained avatar ({saved['step']} steps)", gaussians, subject.camera)


def placements(geometry: Geometry, views: list[dict]) -> tuple[torch.Tensor, dict[float, tuple[int, int]]]:
    """novel_views.evaluate's alignment of ``geometry``: the similarity fitted on view 0, each view's shift
    (they depend on the outline only, which the colours do not change)."""
    with torch.no_grad():
        _, alpha0 = geometry.render(0.0, geometry.colors)
    similarity = nv.fit_similarity(alpha0.numpy(), views[0]["mask"])
    shifts = {}
    with torch.no_grad():
        for view in views:
            _, alpha = geometry.render(view["yaw"], geometry.colors)
            moved = nv.moved(alpha[..., None], similarity)[..., 0].numpy()
            shifts[view["yaw"]] = nv.best_shift(moved, view["mask"])
    return similarity, shifts


def aligned_render(geometry: Geometry, colors: torch.Tensor, view: dict, similarity, shifts
                   ) -> tuple[np.ndarray, np.ndarray]:
    """([H, W, 3] on black, [H, W] alpha) as novel_views.evaluate lays a render on ``view``."""
    with torch.no_grad():
        rgb, alpha = geometry.render(view["yaw"], colors)
        moved = nv.moved(torch.cat([rgb, alpha[..., None]], -1), similarity, shifts[view["yaw"]]).numpy()
    return moved[..., :3] * (moved[..., 3:] > 0.5), moved[..., 3]


def view_psnr(rgb: np.ndarray, alpha: np.ndarray, view: dict) -> float:
    return nv.scores(rgb, alpha, view["rgb"], view["mask"])["psnr_inter"]


def best_gain(rgb: np.ndarray, alpha: np.ndarray, view: dict) -> np.ndarray:
    """[3] per-channel gain that brings ``rgb`` closest to the view over the masks' intersection (least
    squares): the view's own exposure and white balance, which no one colouring can follow."""
    inside = (alpha > 0.5) & (view["mask"] > 0.5)
    ours, truth = rgb[inside], view["rgb"][inside]
    return (ours * truth).sum(0) / np.maximum((ours * ours).sum(0), 1e-9)


def fitted_colours(geometry: Geometry, views: list[dict], similarity, shifts, steps: int) -> torch.Tensor:
    """[N, 3] colours fitted by Adam to ``views`` (mean squared error over each view's masks' intersection)."""
    targets = []
    with torch.no_grad():
        for view in views:
            _, alpha = geometry.render(view["yaw"], geometry.colors)
            ours = nv.moved(alpha[..., None], similarity, shifts[view["yaw"]])[..., 0] > 0.5
            inside = ours & torch.as_tensor(view["mask"] > 0.5)
            targets.append((torch.as_tensor(view["rgb"]), inside))
    colors = geometry.colors.detach().clone().requires_grad_()
    optimiser = torch.optim.Adam([colors], lr=COLOUR_LR)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        for view, (truth, inside) in zip(views, targets):
            rgb, _ = geometry.render(view["yaw"], colors.clamp(0, 1))
            rgb = nv.moved(rgb, similarity, shifts[view["yaw"]])
            loss = ((rgb - truth) ** 2).mean(-1)[inside].mean() / len(views)
            loss.backward()
        optimiser.step()
    return colors.detach().clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a workspace novel_views.py has run in")
    parser.add_argument("--views", type=Path, default=nv.DEFAULT_VIEWS)
    parser.add_argument("--not-scored", type=float, nargs="*", default=[], metavar="YAW",
                        help="views left out (the extra photos of a --photos run)")
    parser.add_argument("--groups", nargs="+", choices=nv.GROUPS, default=list(nv.GROUPS))
    parser.add_argument("--steps", type=int, default=20, help="Adam steps on each group's colours")
    args = parser.parse_args()
    if not (args.views / "cameras.json").is_file():
        raise SystemExit(f"multi-view set not found: {args.views} (the shared data folder sits beside the checkout)")
    t_start = time.time()
    views = nv.load_views(args.views)
    model = load_body_model("open")
    subject = Subject.load(args.workspace)
    training_set = TrainingSet(args.workspace)
    surface = nv.surface_gaussians(subject, model, training_set.manifest["template_level"], training_set.photo_surface())
    geometries = [seen_from_afar("re-poser surface", surface, subject.camera), trained_geometry(args.workspace, subject)]
    left_out = {0.0, *args.not_scored}
    print(f"{'geometry':30s} {'group':6s} {'views':>5s} {'as they are':>12s} {'each view its gain':>19s} "
          f"{'fitted to the views':>20s}  (per view; mean change of the fitted colours, RGB /255)")
    for geometry in filter(None, geometries):
        similarity, shifts = placements(geometry, views)
        photos = [v for v in views if v["yaw"] in left_out]
        print(f"{geometry.name:30s} the photos' own views, colours as they are: " + " ".join(
            f"{v['yaw']:.0f}:{view_psnr(*aligned_render(geometry, geometry.colors, v, similarity, shifts), v):.2f}"
            for v in photos))
        for group in args.groups:
            scored = [v for v in views if nv.view_group(v["yaw"]) == group and v["yaw"] not in left_out]
            renders = [aligned_render(geometry, geometry.colors, v, similarity, shifts) for v in scored]
            before = [view_psnr(rgb, alpha, v) for (rgb, alpha), v in zip(renders, scored)]
            lit = [view_psnr(np.clip(rgb * best_gain(rgb, alpha, v), 0, 1), alpha, v)
                   for (rgb, alpha), v in zip(renders, scored)]
            colors = fitted_colours(geometry, scored, similarity, shifts, args.steps)
            after = [view_psnr(*aligned_render(geometry, colors, v, similarity, shifts), v) for v in scored]
            moved = (colors - geometry.colors).abs().sum(1) > 1e-4  # the Gaussians the group's views see
            change = (colors - geometry.colors)[moved].mean(0) * 255
            print(f"{geometry.name:30s} {group:6s} {len(scored):5d} {np.mean(before):12.2f} {np.mean(lit):19.2f} "
                  f"{np.mean(after):20.2f}  "
                  + " ".join(f"{v['yaw']:.0f}:{a:.2f}" for v, a in zip(scored, after))
                  + "   mean change " + "/".join(f"{c:+.1f}" for c in change.tolist()), flush=True)
    print(f"\nPSNR over the masks' intersection (dB), mean over the group's views; {args.steps} Adam steps per "
          f"group; {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
