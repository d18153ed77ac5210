"""The `generate` stage: Subject -> generation kit -> generated frames -> geometry targets -> TrainingSet.

Generators (one interface: frames for the kit's skeleton sequence, with progress and cancel):
- ``reposer`` (default; CPU, no weights): the fitted body, its surface pushed out to the photo's
  silhouette (hair, loose clothes) and coloured from the photo, re-posed, rendered; its geometry
  targets are those of that surface. The surface is kept in ``training_set/reposer_surface.npz``.
- ``mimicmotion`` (CUDA + the user's MimicMotion and SVD-xt-1-1 files): frames from the kit's reference
  photo and skeleton video.
- ``import``: frames made elsewhere from the kit (a folder of images or a video), matched back to the
  kit's per-frame SMPL-X and camera.
For generated (non-re-poser) frames the mask comes from MediaPipe segmentation and depth, normals and
parts from the known per-frame body (a body prior), or from Sapiens when the user has its files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image

from persona_studio.body.model import BodyModel, smplx_tensors
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion
from persona_studio.workspace.folders import prepare_stage
from persona_studio.workspace.subject import Subject
from persona_studio.fileio import atomic_folder, write_video_atomic
from persona_studio.generate.drive import DEFAULT_SIZE, DrivingSequence, driving_sequence, posed_joints
from persona_studio.generate.reposer import fit_surface_to_photo, render_sequence
from persona_studio.render.body import BodyRender, BodyRenderer
from persona_studio.generate.skeleton_video import draw_skeleton, openpose_points
from persona_studio.workspace.training_set import (FORMAT_VERSION, SURFACE_FILE, TRAINING_DIR, PhotoSurface, frame_name,
                                                  photo_folder, smplx_to_json, write_frame)

Progress = Callable[[float, str], None]
GENERATORS = ("reposer", "mimicmotion", "import")
DEFAULT_FRAMES = {"reposer": 120, "mimicmotion": 1000, "import": None}
KIT_README = """# PERSONA Studio generation kit

Inputs for a human-animation model such as MimicMotion, made from the subject's photo and motions:

- `reference.png`: the photo's person, masked, on white, scaled and placed to match the skeleton, and
  `reference_skeleton.png`: the photo's own fitted skeleton placed the same way;
- `skeleton.mp4` (and `skeleton/*.png`): DWPose/OpenPose-style pose frames ({frames} frames, {width}x{height}, {fps} fps);
- `smplx/*.json`: the SMPL-X parameters of every frame (PERSONA keys), `camera.json`: the fixed camera.

Run MimicMotion (or ComfyUI) on `reference.png` + `skeleton.mp4` at {width}x{height}, keep every frame, and
import the result (a video or a folder of frames, {frames} of them, {width}x{height}):

    persona-studio generate -w WORKSPACE --generator import --frames-from RESULT
"""


class GenerateError(ValueError):
    """The generate stage cannot run as asked; the message says why and what to do."""


@dataclass
class GenerateOptions:
    """How to run the generate stage: generator, motions, frame count, image size, kit only, imported frames,
    re-poser level, seed."""
    generator: str = "reposer"
    motions: list[str] = field(default_factory=list)  # preset names or motion files; empty = all presets
    frames: int | None = None  # generated frames in total (default per generator)
    size: tuple[int, int] = DEFAULT_SIZE
    kit_only: bool = False
    frames_from: Path | None = None  # for the import generator
    level: int = 1  # template level the re-poser renders: the avatar's it teaches (see reposer)
    seed: int = 0


def load_motions(names: list[str]) -> dict[str, Motion]:
    """Preset names or motion files (empty: every preset) -> {name: Motion}; GenerateError for a name that is
    neither."""
    presets = preset_motion_paths()
    chosen = names or list(presets)
    motions = {}
    for name in chosen:
        path = presets.get(name, Path(name))
        if not path.exists():
            raise GenerateError(f"motion {name!r} is neither a preset ({', '.join(presets)}) nor a file")
        motions[Path(name).stem] = read_motion(path)
    return motions


def reference_alignment(subject: Subject, body_box: tuple[float, float, float, float]) -> tuple[float, np.ndarray]:
    """(scale, shift) mapping photo pixels onto the kit frame (``out = photo * scale + shift``) so that
    the photo's person box matches the frame-0 body's box ``body_box`` (x0, y0, x1, y1) in height and centre."""
    ys, xs = np.nonzero(subject.mask > 0.5)
    px0, py0, px1, py1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    bx0, by0, bx1, by1 = body_box
    scale = (by1 - by0) / max(py1 - py0, 1)
    shift = np.array([(bx0 + bx1) / 2 - scale * (px0 + px1) / 2, (by0 + by1) / 2 - scale * (py0 + py1) / 2])
    return float(scale), shift


def reference_image(subject: Subject, scale: float, shift: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo's person, masked, on white, mapped into the kit frame by ``reference_alignment``."""
    coeffs = (1 / scale, 0, -shift[0] / scale, 0, 1 / scale, -shift[1] / scale)  # output -> photo
    rgba = np.dstack([subject.image, (subject.mask * 255).astype(np.uint8)])
    warped = np.asarray(Image.fromarray(rgba).transform(size, Image.AFFINE, coeffs, Image.BILINEAR), np.float32)
    alpha = warped[..., 3:] / 255.0
    return (warped[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


def write_kit(folder: Path, subject: Subject, model: BodyModel, sequence: DrivingSequence, vertices: np.ndarray,
              joints: np.ndarray, progress: Progress) -> np.ndarray:
    """Write the generation kit into ``folder``; returns the skeleton frames [T, H, W, 3]."""
    camera = sequence.camera
    (folder / "skeleton").mkdir(parents=True)
    (folder / "smplx").mkdir()
    skeletons = []
    for i in range(sequence.num_frames):
        uv = camera.project(joints[i])[:, :2]
        frame = draw_skeleton(openpose_points(uv), camera.width, camera.height)
        Image.fromarray(frame).save(folder / "skeleton" / frame_name(i + 1, "png"))
        (folder / "smplx" / frame_name(i + 1, "json")).write_text(json.dumps(smplx_to_json(sequence.frame_params(i))) + "\n")
        skeletons.append(frame)
        progress((i + 1) / sequence.num_frames, f"skeleton frame {i + 1}/{sequence.num_frames}")
    skeletons = np.stack(skeletons)
    write_video_atomic(folder / "skeleton.mp4", skeletons, sequence.fps)
    uv0 = camera.project(vertices[0])
    scale, shift = reference_alignment(subject, (uv0[:, 0].min(), uv0[:, 1].min(), uv0[:, 0].max(), uv0[:, 1].max()))
    size = (camera.width, camera.height)
    Image.fromarray(reference_image(subject, scale, shift, size)).save(folder / "reference.png")
    # The photo's own fitted skeleton, placed like the reference (MimicMotion's frame 0 of each window).
    with torch.no_grad():
        photo_joints = model.forward(**smplx_tensors(subject.smplx)).joints[0]
    photo_uv = subject.camera.project(photo_joints.numpy())[:, :2] * scale + shift
    Image.fromarray(draw_skeleton(openpose_points(photo_uv), *size)).save(folder / "reference_skeleton.png")
    (folder / "camera.json").write_text(json.dumps(camera.to_json(), indent=1) + "\n")
    (folder / "README.md").write_text(KIT_README.format(frames=sequence.num_frames, width=camera.width,
                                                        height=camera.height, fps=sequence.fps))
    return skeletons


def read_imported_frames(source: Path, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Frames made elsewhere from the kit (a folder of images or a video), checked against the kit: the frame
    count at once (before the stage's minutes of work), each frame's size as it is read."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        found = len(files)
        reader = (np.asarray(Image.open(p).convert("RGB")) for p in files)
    elif source.is_file():
        try:
            found = imageio.get_reader(source).count_frames()
        except Exception as exc:
            raise GenerateError(f"{source}: not a readable video ({exc})") from exc
        reader = (np.asarray(f)[..., :3] for f in imageio.get_reader(source))
    else:
        raise GenerateError(f"{source}: no such folder or video")
    if found != count:
        raise GenerateError(f"{source} has {found} frames but the kit has {count}: import the whole result of "
                            "the kit's skeleton video, one frame per skeleton frame")

    def checked() -> Iterator[np.ndarray]:
        for i, frame in enumerate(reader):
            if (frame.shape[1], frame.shape[0]) != size:
                raise GenerateError(f"{source}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, the kit's frames "
                                    f"are {size[0]}x{size[1]}: generate at the kit's size")
            yield frame
    return checked()


Segmenter = Callable[[np.ndarray], np.ndarray]
"""[H, W, 3] uint8 frame -> [H, W] float person mask in [0, 1] (the app and CLI pass MediaPipe's)."""


@dataclass
class ModelFiles:
    """Where the user keeps the optional heavy models (from their settings; empty: not installed)."""

    mimicmotion: str = ""
    svd: str = ""
    sapiens: str = ""
    device: str = "auto"


def generate_training_set(workspace: str | Path, options: GenerateOptions | None = None, *,
                          model: BodyModel | None = None, files: ModelFiles | None = None,
                          segment: Segmenter | None = None,
                          progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Path:
    """Run the generate stage over ``workspace``; returns the training-set folder.

    ``model`` defaults to the one the subject was fitted with; ``files`` says where MimicMotion and
    Sapiens are; ``segment`` masks frames that come without one (MimicMotion's, imported ones).
    """
    options = options or GenerateOptions()
    report = progress or (lambda f, m: None)
    if options.generator not in GENERATORS:
        raise GenerateError(f"unknown generator {options.generator!r}: use one of {', '.join(GENERATORS)}")
    if options.generator == "import" and options.frames_from is None and not options.kit_only:
        raise GenerateError("the import generator needs --frames-from FOLDER_OR_VIDEO (made from the kit)")
    t0 = time.time()
    subject = Subject.load(workspace)
    prepare_stage(Path(workspace), "generate")
    model = model or subject.load_body_model()
    files = files or ModelFiles()
    if options.generator != "reposer" and not options.kit_only and segment is None:
        raise GenerateError(f"the {options.generator} generator's frames need a person segmenter to mask them")
    notes: list[str] = []
    generator_backend = None
    if options.generator == "mimicmotion" and not options.kit_only:
        from persona_studio.generate.mimicmotion import MimicMotionGenerator, check_mimicmotion

        ckpt = Path(files.mimicmotion) if files.mimicmotion else None
        svd = Path(files.svd) if files.svd else None
        problem = check_mimicmotion(ckpt, svd)
        if problem:
            raise GenerateError(f"{problem}; use --generator reposer (built in) or write a kit with --kit-only")
        generator_backend = MimicMotionGenerator(ckpt, svd, device=files.device)
    geometry = None
    if files.sapiens and options.generator != "reposer" and not options.kit_only:
        from persona_studio.generate.sapiens import SapiensGeometry, check_sapiens

        problem = check_sapiens(Path(files.sapiens))
        if problem:
            notes.append(f"{problem}; geometry targets come from the posed body instead")
        else:
            geometry = SapiensGeometry(Path(files.sapiens), device=files.device)
    motions = load_motions(options.motions)
    frames = options.frames or DEFAULT_FRAMES[options.generator]
    sequence = driving_sequence(model, subject, motions, max_frames=frames, size=options.size)
    report(0.02, f"posing {sequence.num_frames} frames")
    imported = None
    if options.generator == "import" and not options.kit_only:
        imported = read_imported_frames(options.frames_from, sequence.num_frames, options.size)
    vertices, joints = posed_joints(model, sequence)
    target = Path(workspace) / TRAINING_DIR
    with atomic_folder(target) as folder:
        skeletons = write_kit(folder / "kit", subject, model, sequence, vertices, joints,
                              lambda f, m: report(0.02 + 0.08 * f, m))
        renderer = BodyRenderer(model, options.level)
        surface, poses = None, [view.smplx for view in subject.views]
        if not options.kit_only:
            surface, poses = fit_surface_to_photo(renderer, subject, progress=lambda f, m: report(0.1 + 0.1 * f, m),
                                                  cancelled=cancelled)
            surface.save(folder / SURFACE_FILE)
        _write_photo_frames(folder, subject, poses, model, renderer, surface)
        if not options.kit_only:
            body_frames = render_sequence(renderer, surface, vertices, sequence.camera,
                                          lambda f, m: report(0.2 + 0.78 * f, m), cancelled)
            if options.generator == "reposer":
                images = None
            elif options.generator == "import":
                images = imported
            else:
                reference = np.asarray(Image.open(folder / "kit" / "reference.png"))
                reference_skeleton = np.asarray(Image.open(folder / "kit" / "reference_skeleton.png"))
                images = iter(generator_backend.generate(reference, skeletons, seed=options.seed,
                                                         reference_skeleton=reference_skeleton,
                                                         progress=lambda f, m: report(0.1 + 0.4 * f, m),
                                                         cancelled=cancelled))
            for i, body in enumerate(body_frames):
                if images is None:
                    rgb, mask = body.rgb, body.mask
                else:
                    rgb = next(images)
                    mask = segment(rgb)
                    if geometry is not None:
                        body = _sapiens_targets(geometry, rgb, mask, body)
                write_frame(folder, i + 1, rgb, mask, body.depth, body.normal, body.parts, sequence.frame_params(i))
            if options.generator != "reposer":
                notes.append("depth, normals and parts of generated frames come from "
                             + ("Sapiens" if geometry is not None else "the posed body (a prior)"))
        (folder / "camera.json").write_text(json.dumps(sequence.camera.to_json(), indent=1) + "\n")
        manifest = {
            "format_version": FORMAT_VERSION, "generator": options.generator,
            "motions": {name: int(sum(1 for n in sequence.motion_names if n == name)) for name in motions},
            "generated_frames": 0 if options.kit_only else sequence.num_frames, "photos": len(subject.views),
            "kit_frames": sequence.num_frames, "size": list(options.size), "fps": sequence.fps,
            "template_level": options.level, "kit_only": options.kit_only,
            "body_model": subject.body_model, "seconds": round(time.time() - t0, 1), "notes": notes,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    report(1.0, "training set written")
    return target


def _sapiens_targets(geometry, rgb: np.ndarray, mask: np.ndarray, body: BodyRender) -> BodyRender:
    """Replace the body prior's targets with Sapiens' where it has them. Sapiens' depth is relative:
    it is mapped onto the body's depth range (median and mean deviation) for storage; the trainer's
    depth loss is scale-invariant anyway."""
    predicted = geometry.predict(rgb, mask, body_parts=body.parts)
    inside = mask > 0.5
    depth, normal, parts = body.depth, body.normal, body.parts
    if "depth" in predicted and inside.any() and (body.depth > 0).any():
        d = predicted["depth"]
        ours = body.depth[body.depth > 0]
        d_in = d[inside]
        scaled = (d - np.median(d_in)) / max(np.abs(d_in - np.median(d_in)).mean(), 1e-6)
        scaled = scaled * np.abs(ours - np.median(ours)).mean() + np.median(ours)
        depth = np.where(inside, np.nan_to_num(scaled), 0.0).astype(np.float32)
    if "normal" in predicted:
        normal = np.where(inside[..., None], np.nan_to_num(predicted["normal"]), 0.0).astype(np.float32)
    if "parts" in predicted:
        parts = predicted["parts"]
    return BodyRender(rgb=body.rgb, mask=mask, depth=depth, normal=normal, parts=parts)


def _write_photo_frames(folder: Path, subject: Subject, poses: list[dict[str, np.ndarray]], model: BodyModel,
                        renderer: BodyRenderer, surface: PhotoSurface | None) -> None:
    """The subject's photos (frame 0 and the extra photos), their detected masks, each photo's pose in
    ``poses`` (an extra photo's as the re-poser refined it) and the posed body's depth/normals/parts as
    their targets (of the surface fitted to the photos when there is one)."""
    displacement = None if surface is None else torch.as_tensor(surface.displacement)
    for photo, (view, pose) in enumerate(zip(subject.views, poses)):
        with torch.no_grad():
            posed = model.forward(**smplx_tensors(pose)).vertices[0]
            body = renderer.render(posed, torch.ones(renderer.interp.shape[0], 3), view.camera,
                                   displacement=displacement)
        write_frame(folder, 0, view.balanced_image, view.mask, body.depth, body.normal, body.parts, pose,
                    photo=photo)
        (photo_folder(folder, photo) / "camera.json").write_text(json.dumps(view.camera.to_json(), indent=1) + "\n")
