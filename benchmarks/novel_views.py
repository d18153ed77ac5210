"""Novel views against real views of the same person: what the avatar looks like from the side and back.

On a multi-view set (default ``../shared/data/multiview/rp_dennis_posed_004``: 36 views 10 degrees
apart around a scanned person, with masks and cameras), view 0 is the photo. The pipeline runs as a
user runs it (fit, generate with the defaults, train with the ``preview`` preset), then the avatar in
the photo's pose is turned about the subject's vertical axis by each view's yaw and rendered, on black
like the ground truth, by the photo's camera moved back along its axis to the ground truth's distance
(10 m) and zoomed to keep the subject's size: the truth's near-orthographic projection.

Alignment (the same for every model): one 2D similarity (scale, rotation, shift) fitted on view 0 by
maximising the overlap of the rendered and the true mask, shared by all views, then a per-view integer
shift only (the turning axis of the fit and of the scan need not coincide). No view is dropped.

Per view and per group (front: within 30 degrees of the photo, view 0 itself excluded; back: 180 +- 30;
sides: the rest) it prints PSNR over the intersection of the masks, masked PSNR over their union
(outside its own mask each image is black), SSIM over the union, and mask IoU, for each row:
- ``re-poser surface``: the generate stage's surface fitted to the photo (what the training frames show);
- ``untrained avatar``: the avatar before its first step (fitted body + colours from the photo);
- ``trained avatar``: after the preset's steps, in the photo's fitted pose: the pose the other two rows
  and the app's live view use, so the rows differ only by what training changed in the avatar;
- ``trained + photo corr.``: the same avatar in the photo's pose plus the correction training learnt for
  the photo (its training view; the correction is the photo's alone: no export or motion applies it).

    python benchmarks/novel_views.py [--views DIR] [--workspace WS] [--reuse] [--out DIR] [--photos 0 180]
                                     [--fov-prior]

The fit knows the photos' camera, as it knows a phone photo's from its EXIF: the set's renders have
no EXIF, so the benchmark passes the field of view of cameras.json (``fit --fov``; 5.9 deg, near
orthographic). ``--fov-prior`` fits them as photos without a focal length, with the fit's prior (55
deg, a phone's view): the fit then explains a near-orthographic picture through a close camera's
perspective, which bends the body in depth (one photo, the re-poser's surface: sides IoU 0.838 against
0.849 with the known camera).

``--photos`` names the views (by yaw) given to the fit as photos of the subject: the first is the photo
the views are turned from, the others are its extra photos (``persona-studio fit --extra``); views
that are photos, or named by ``--not-scored``, are left out of the scores (give a one-photo run the
same ``--not-scored`` to compare it with a run on more photos).

``--reuse`` keeps the fit and the training set already in WS (re-trains only); the contact sheet
(ground truth over each model, every 30 degrees) and a JSON of every figure go to ``--out``.

The trained rows are not bit-reproducible on a CPU: the training loop changes its torch thread count
with the machine's load (``cpu_share``), and threaded float sums then round differently. Two ``--reuse``
runs of the same code on a quiet machine differed by up to 0.1 dB and 0.003 IoU per group (one photo,
`preview`); read smaller differences between trained rows, or between a trained and an untrained row,
as noise. The surface and untrained rows are deterministic.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from persona_studio.avatar.avatar import Avatar
from persona_studio.body.model import load_body_model, smplx_tensors
from persona_studio.capture.intake import fov_deg
from persona_studio.capture.pipeline import fit_photo
from persona_studio.workspace.subject import Subject
from persona_studio.generate.stage import GenerateOptions, generate_training_set
from persona_studio.workspace.training_set import TRAINING_DIR, PhotoSurface, TrainingSet
from persona_studio.render.body import BodyRenderer
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import rasterize_cameras
from persona_studio.train import losses
from persona_studio.train.trainer import Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIEWS = ROOT.parent / "shared" / "data" / "multiview" / "rp_dennis_posed_004"
GROUPS = ("front", "sides", "back")
GROUND_TRUTH_DISTANCE = 10.0  # metres from the subject to the ground truth's cameras
SHEET_EVERY = 30  # degrees between contact-sheet columns
SHEET_SIZE = 192  # pixels of a contact-sheet cell


def view_group(yaw: float) -> str:
    d = abs((yaw + 180) % 360 - 180)  # angular distance from the photo, 0..180
    return "front" if d <= 30 else "back" if d >= 150 else "sides"


def turn(points: torch.Tensor, camera: Camera, yaw_deg: float) -> torch.Tensor:
    """[N, 3] world points turned so that ``camera`` sees them as a camera moved by ``yaw_deg`` about the
    subject's vertical axis would (the scene turns by -yaw about the camera's up axis, through the
    points' centre)."""
    up = torch.as_tensor(camera.R.T @ np.array([0.0, -1.0, 0.0]), dtype=points.dtype)  # image up, in world
    a = math.radians(-yaw_deg)
    k = torch.tensor([[0.0, -up[2], up[1]], [up[2], 0.0, -up[0]], [-up[1], up[0], 0.0]], dtype=points.dtype)
    rot = torch.eye(3, dtype=points.dtype) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)
    centre = (points.min(0).values + points.max(0).values) / 2
    return (points - centre) @ rot.T + centre


def far_camera(photo: Camera, centre: np.ndarray, distance: float = GROUND_TRUTH_DISTANCE) -> Camera:
    """The photo's camera moved back along its axis to ``distance`` metres from ``centre`` [3] and zoomed
    to keep the subject's size: the ground truth's near-orthographic projection (f = 5000 px at 10 m),
    so that a turned view differs from the truth by what the avatar is, not by perspective."""
    forward = photo.R[2]  # the camera's viewing axis, in world
    depth = float((photo.R @ centre + photo.t)[2])
    position = centre - distance * forward
    scale = distance / depth
    return Camera(photo.R, -photo.R @ position, photo.fx * scale, photo.fy * scale, photo.cx, photo.cy,
                  photo.width, photo.height)


class Gaussians(NamedTuple):
    """A model in the photo's pose: [N, 3] means, [N] or [N, 3] scales, [N] opacities, [N, 3] colours."""
    means: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor


def turned_render(gaussians: Gaussians, camera: Camera, yaw: float, colors: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """([H, W, 3] on black, [H, W] alpha) of ``gaussians`` turned by ``yaw``, seen by ``camera``
    (differentiable; ``colors`` in place of theirs when given)."""
    g = gaussians
    out = rasterize_cameras([camera], turn(g.means, camera, yaw), g.scales, g.opacities,
                            g.colors if colors is None else colors, antialiased=True)
    return out.features[0].clamp(0, 1), out.alpha[0, ..., 0].clamp(0, 1)


class Model:
    """Something to render in the photo's pose from any yaw: (rgb on black, alpha)."""

    def __init__(self, name: str, render):
        self.name, self.render = name, render


def gaussians_camera(gaussians: Gaussians, photo: Camera) -> Camera:
    """The far camera (:func:`far_camera`) on the centre of the Gaussians' bounding box."""
    means = gaussians.means
    return far_camera(photo, ((means.min(0).values + means.max(0).values) / 2).numpy())


def gaussians_model(name: str, gaussians: Gaussians, photo: Camera) -> Model:
    camera = gaussians_camera(gaussians, photo)

    def render(yaw: float):
        with torch.no_grad():
            rgb, alpha = turned_render(gaussians, camera, yaw)
        return rgb.numpy(), alpha.numpy()

    return Model(name, render)


def avatar_gaussians(avatar: Avatar, params: dict) -> Gaussians:
    with torch.no_grad():
        posed = avatar.pose(params, fast=True)
    return Gaussians(posed.means[0], posed.scales, posed.opacities, posed.colors)


def surface_gaussians(subject: Subject, model, level: int, surface: PhotoSurface) -> Gaussians:
    """The re-poser's surface (the fit's body, its clothed displacement and colours) as opaque Gaussians."""
    renderer = BodyRenderer(model, level)
    with torch.no_grad():
        posed = model.forward(**smplx_tensors(subject.smplx)).vertices[0]
        points = renderer.surface(posed, torch.as_tensor(surface.displacement))
        scales = renderer.scales(points)
    return Gaussians(points, scales, torch.ones(len(points)), torch.as_tensor(surface.colors))


def avatar_model(name: str, avatar: Avatar, params: dict, camera: Camera) -> Model:
    return gaussians_model(name, avatar_gaussians(avatar, params), camera)


def surface_model(subject: Subject, model, level: int, surface: PhotoSurface, camera: Camera) -> Model:
    return gaussians_model("re-poser surface", surface_gaussians(subject, model, level, surface), camera)


# --- alignment ------------------------------------------------------------------------------------


def _warp(image: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """[C, H, W] image moved by a similarity (log scale, angle, dx, dy in pixels) about its centre."""
    _, h, w = image.shape
    s, a = params[0].exp(), params[1]
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # output -> input in normalised coordinates (x right, y down), shift given in output pixels
    tx, ty = -2 * params[2] / w, -2 * params[3] / h
    theta = torch.stack([torch.stack([cos, sin * h / w, cos * tx + sin * ty * h / w]),
                         torch.stack([-sin * w / h, cos, -sin * tx * w / h + cos * ty])])
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
    return F.grid_sample(image[None], grid, align_corners=False)[0]


def fit_similarity(alpha: np.ndarray, truth: np.ndarray, steps: int = 300) -> torch.Tensor:
    """The similarity (log scale, angle, dx, dy) that best lays the rendered ``alpha`` onto ``truth``
    (soft IoU), started from the masks' areas and centroids."""
    a, t = torch.as_tensor(alpha, dtype=torch.float32)[None], torch.as_tensor(truth, dtype=torch.float32)[None]
    h, w = alpha.shape
    ys, xs = np.mgrid[0:h, 0:w]
    centroid = lambda m: np.array([(xs * m).sum(), (ys * m).sum()]) / max(m.sum(), 1e-6)  # noqa: E731
    scale = math.sqrt(truth.sum() / max(alpha.sum(), 1e-6))
    ca, ct = centroid(alpha), centroid(truth)
    shift = ct - (np.array([w, h]) / 2 + scale * (ca - np.array([w, h]) / 2))
    unit = torch.tensor([1.0, 1.0, 100.0, 100.0])  # optimised in log units, radians and 100 px
    x = (torch.tensor([math.log(scale), 0.0, float(shift[0]), float(shift[1])]) / unit).requires_grad_()
    optimiser = torch.optim.Adam([x], lr=0.01)
    for _ in range(steps):
        moved = _warp(a, x * unit)
        inter = (moved * t).sum()
        loss = 1 - inter / (moved.sum() + t.sum() - inter)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    params = (x * unit).detach()
    return params


def best_shift(alpha: np.ndarray, truth: np.ndarray, radius: int = 40) -> tuple[int, int]:
    """Integer (dx, dy) within ``radius`` maximising the overlap of ``alpha`` moved by it with ``truth``."""
    fa, ft = np.fft.rfft2(alpha > 0.5), np.fft.rfft2(truth > 0.5)
    corr = np.fft.irfft2(ft * np.conj(fa), s=alpha.shape)
    h, w = alpha.shape
    best, arg = -1.0, (0, 0)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if corr[dy % h, dx % w] > best:
                best, arg = corr[dy % h, dx % w], (dx, dy)
    return arg


def moved(image: torch.Tensor, similarity: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """[H, W, C] image moved by ``similarity`` and then ``shift`` pixels (differentiable)."""
    params = similarity.clone()
    params[2] += shift[0]
    params[3] += shift[1]
    return _warp(image.permute(2, 0, 1), params).permute(1, 2, 0)


def aligned(rgb: np.ndarray, alpha: np.ndarray, similarity: torch.Tensor, shift: tuple[int, int] = (0, 0)):
    stacked = torch.as_tensor(np.concatenate([rgb, alpha[..., None]], -1), dtype=torch.float32)
    out = moved(stacked, similarity, shift).numpy()
    return out[..., :3], out[..., 3]


# --- scores ---------------------------------------------------------------------------------------


def scores(rgb: np.ndarray, alpha: np.ndarray, truth_rgb: np.ndarray, truth_mask: np.ndarray) -> dict[str, float]:
    ours, theirs = alpha > 0.5, truth_mask > 0.5
    inter, union = ours & theirs, ours | theirs
    err = ((rgb - truth_rgb) ** 2).mean(-1)
    psnr = lambda sel: float(-10 * np.log10(max(err[sel].mean(), 1e-10))) if sel.any() else float("nan")  # noqa: E731
    ssim = losses.ssim_map(torch.as_tensor(rgb)[None], torch.as_tensor(truth_rgb)[None])[0].numpy()
    return {"psnr_inter": psnr(inter), "psnr_union": psnr(union), "ssim_union": float(ssim[union].mean()),
            "iou": float(inter.sum() / max(union.sum(), 1))}


def load_views(folder: Path) -> list[dict]:
    meta = json.loads((folder / "cameras.json").read_text())
    views = []
    for v in meta["views"]:
        rgb = np.asarray(Image.open(folder / v["image"]).convert("RGB"), np.float32) / 255
        mask = np.asarray(Image.open(folder / v["mask"]).convert("L"), np.float32) / 255
        views.append({"yaw": float(v["yaw_degrees"]), "rgb": rgb * (mask[..., None] > 0.5), "mask": mask,
                      "image": folder / v["image"], "fov": fov_deg(v["fx"], v["width"], v["height"])})
    return views


def evaluate(model: Model, views: list[dict], not_scored: set[float] = frozenset()) -> tuple[list[dict], list[np.ndarray]]:
    """Per-view scores (view 0 is the alignment's, not scored, nor those whose yaw is in ``not_scored``)
    and the aligned renders."""
    rgb0, alpha0 = model.render(0.0)
    similarity = fit_similarity(alpha0, views[0]["mask"])
    rows, images = [], []
    for view in views:
        raw = (rgb0, alpha0) if view["yaw"] == 0 else model.render(view["yaw"])
        shift = (0, 0) if view["yaw"] == 0 else best_shift(aligned(*raw, similarity)[1], view["mask"])
        rgb, alpha = aligned(*raw, similarity, shift)
        rgb = rgb * (alpha[..., None] > 0.5)
        images.append(rgb)
        if view["yaw"] == 0 or view["yaw"] in not_scored:
            continue
        rows.append({"yaw": view["yaw"], "group": view_group(view["yaw"]), "shift": list(shift),
                     **scores(rgb, alpha, view["rgb"], view["mask"])})
    return rows, images


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    keys = ("psnr_inter", "psnr_union", "ssim_union", "iou")
    out = {g: {k: float(np.mean([r[k] for r in rows if r["group"] == g])) for k in keys} for g in GROUPS}
    out["all"] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return out


def contact_sheet(views: list[dict], renders: dict[str, list[np.ndarray]], path: Path) -> None:
    """Ground truth over each model's aligned render, every SHEET_EVERY degrees, cropped to the person."""
    columns = [i for i, v in enumerate(views) if v["yaw"] % SHEET_EVERY == 0]
    ys, xs = np.nonzero(np.max([v["mask"] for v in views], 0) > 0.5)
    half = int(max(ys.max() - ys.min(), xs.max() - xs.min()) * 0.55)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    h, w = views[0]["mask"].shape
    box = (max(cx - half, 0), max(cy - half, 0), min(cx + half, w), min(cy + half, h))

    def cell(image: np.ndarray) -> np.ndarray:
        picture = Image.fromarray((image * 255 + 0.5).astype(np.uint8)).crop(box)
        return np.asarray(picture.resize((SHEET_SIZE, SHEET_SIZE), Image.BILINEAR))

    rows = [[views[i]["rgb"] for i in columns]] + [[imgs[i] for i in columns] for imgs in renders.values()]
    sheet = np.concatenate([np.concatenate([cell(im) for im in row], 1) for row in rows], 0)
    Image.fromarray(sheet).save(path)


def print_table(results: dict[str, list[dict]]) -> None:
    names = list(results)
    print("\nper view: PSNR over the mask intersection (dB) / IoU, " + " | ".join(names))
    for i, row in enumerate(results[names[0]]):
        cells = "  |  ".join(f"{results[n][i]['psnr_inter']:6.2f} / {results[n][i]['iou']:.3f}" for n in names)
        print(f"  yaw {row['yaw']:5.0f} ({row['group']:5s})  {cells}")
    print(f"\n{'model':21s} {'group':6s} {'PSNR inter':>10s} {'PSNR union':>10s} {'SSIM union':>10s} {'IoU':>6s}")
    for n in names:
        for g, s in summary(results[n]).items():
            print(f"{n:21s} {g:6s} {s['psnr_inter']:10.2f} {s['psnr_union']:10.2f} {s['ssim_union']:10.3f} {s['iou']:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=Path, default=DEFAULT_VIEWS)
    parser.add_argument("--workspace", type=Path, help="workspace to use (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="keep the workspace's fit and training set")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--iterations", type=int, help="override the preset's step count")
    parser.add_argument("--out", type=Path, default=Path("novel_views_out"))
    parser.add_argument("--photos", type=float, nargs="+", default=[0.0], metavar="YAW",
                        help="the views fitted as photos of the subject (default: 0, the front alone)")
    parser.add_argument("--not-scored", type=float, nargs="*", default=[], metavar="YAW",
                        help="views left out of the scores besides the photos")
    parser.add_argument("--fov-prior", action="store_true",
                        help="fit the photo as one without its camera's focal length (the fit's prior) instead of "
                             "with the set's (what a camera's EXIF tells the fit)")
    args = parser.parse_args()
    if not (args.views / "cameras.json").is_file():
        raise SystemExit(f"multi-view set not found: {args.views} (the shared data folder sits beside the checkout)")
    if args.photos[0] != 0:
        raise SystemExit("the first of --photos must be 0: the views are turned from it")
    print(f"torch threads: {torch.get_num_threads()}")
    t_start = time.time()
    views = load_views(args.views)
    by_yaw = {v["yaw"]: v for v in views}
    missing = [yaw for yaw in args.photos if yaw not in by_yaw]
    if missing:
        raise SystemExit(f"no view at yaw {missing[0]:g} in {args.views}")
    not_scored = set(args.photos) | set(args.not_scored)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="persona-novel-"))
    model = load_body_model("open")
    if not (args.reuse and (workspace / TRAINING_DIR / "manifest.json").is_file()):
        t0 = time.time()
        fov = None if args.fov_prior else views[0]["fov"]
        fit_photo(views[0]["image"], workspace, extra_photos=[by_yaw[yaw]["image"] for yaw in args.photos[1:]],
                  model=model, fov=fov)
        print(f"fit: {time.time() - t0:.1f} s; the photo's camera: " + (
            "the fit's field-of-view prior (--fov-prior)" if fov is None else
            f"{fov:.2f} deg across the longer side, from the set's cameras.json (as a camera's EXIF gives it)"))
        t0 = time.time()
        generate_training_set(workspace, GenerateOptions(), model=model)
        print(f"generate (defaults): {time.time() - t0:.1f} s")
    subject = Subject.load(workspace)
    manifest = json.loads((workspace / TRAINING_DIR / "manifest.json").read_text())
    surface = TrainingSet(workspace).photo_surface()
    camera = subject.camera
    photo_params = smplx_tensors(subject.smplx)

    settings = TrainSettings.from_preset(args.preset, iterations=args.iterations, checkpoint_every=0, preview_every=0)
    trainer = Trainer(workspace, settings, model=model, restart=True)  # an earlier run goes to avatar/earlier/
    trainer.prepare()
    models = [surface_model(subject, model, manifest["template_level"], surface, camera),
              avatar_model("untrained avatar", trainer.avatar, photo_params, camera)]
    results, renders = {}, {}
    for m in models:  # rendered before training changes the avatar
        results[m.name], renders[m.name] = evaluate(m, views, not_scored)
    t0 = time.time()
    figures = trainer.run()
    print(f"train ({args.preset}, {figures['step']} steps): {time.time() - t0:.1f} s; "
          f"training-view fit PSNR {figures['photo_psnr']:.2f} dB")
    for trained in (avatar_model("trained avatar", trainer.avatar, photo_params, camera),
                    avatar_model("trained + photo corr.", trainer.avatar, trainer.frame_params(0), camera)):
        results[trained.name], renders[trained.name] = evaluate(trained, views, not_scored)

    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    contact_sheet(views, renders, args.out / "contact_sheet.png")
    report = {"views": str(args.views), "preset": args.preset, "steps": figures["step"], "photos": args.photos,
              "not_scored": sorted(not_scored),
              "seconds": round(time.time() - t_start, 1),
              "models": {n: {"per_view": rows, "groups": summary(rows)} for n, rows in results.items()}}
    (args.out / "novel_views.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\ncontact sheet (ground truth, then {', '.join(results)}; every {SHEET_EVERY} deg) and figures in "
          f"{args.out}; total {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
