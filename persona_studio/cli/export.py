"""``persona-studio export ACTION``: the export stage's command-line handlers.

Outputs default to the workspace's ``exports/`` folder; every action refuses to replace an existing
output unless given ``--overwrite``. Motion frames are numbered from 1 here, as in the file names of a
PLY sequence (``frame0001.ply`` is the motion's first frame).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from persona_studio.device import DEVICE_HELP
from persona_studio.export import ExportError
from persona_studio.progress import progress_printer
from persona_studio.workspace.folders import bundle_folder, exports_folder


def _avatar(args: argparse.Namespace):
    """The workspace's trained avatar on ``--device`` (checked before the bundle is read)."""
    from persona_studio.avatar.bundle import load_avatar
    from persona_studio.device import resolve_device

    device = resolve_device(args.device)
    avatar, _ = load_avatar(bundle_folder(args.workspace), device)
    return avatar


def _motion(name_or_path: str):
    """A preset's name or a motion file/folder -> (Motion, short name for output files)."""
    from persona_studio.body.motion import preset_motion_paths, read_motion

    presets = preset_motion_paths()
    path = presets.get(name_or_path, Path(name_or_path))
    if not path.exists():
        raise ExportError(f"{name_or_path} is neither a motion file nor a preset (presets: {', '.join(presets)})")
    return read_motion(path), path.stem


def _frame_index(motion, frame: int) -> int:
    """The 0-based index of motion frame number ``frame`` (from 1)."""
    if not 1 <= frame <= motion.num_frames:
        raise ExportError(f"--frame {frame} is outside the motion: give a frame from 1 to {motion.num_frames}")
    return frame - 1


def _posed(args: argparse.Namespace):
    """(avatar, motion or None, 0-based frame, output name stem) for the ply and mesh actions."""
    avatar = _avatar(args)
    if args.motion is None:
        if args.frame is not None:
            raise ExportError("--frame needs --motion (the motion to pose the avatar with)")
        return avatar, None, 0, "avatar_canonical"
    motion, name = _motion(args.motion)
    number = 1 if args.frame is None else args.frame
    return avatar, motion, _frame_index(motion, number), f"avatar_{name}_frame{number:04d}"


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
    return f"{total / 1024**2:.1f} MiB"


def _cmd_ply(args: argparse.Namespace) -> int:
    from persona_studio.export.ply import export_ply

    avatar, motion, frame, stem = _posed(args)
    target = args.output or exports_folder(args.workspace) / f"{stem}.ply"
    written = export_ply(avatar, target, motion, frame, overwrite=args.overwrite)
    print(f"wrote {written} ({avatar.num_gaussians} Gaussians, {_size(written)})")
    return 0


def _cmd_sequence(args: argparse.Namespace) -> int:
    from persona_studio.export.ply import export_ply_sequence

    avatar = _avatar(args)
    motion, name = _motion(args.motion)
    target = args.output or exports_folder(args.workspace) / f"{name}_ply"
    written = export_ply_sequence(avatar, motion, target, fps=args.fps, overwrite=args.overwrite,
                                  progress=progress_printer("sequence"))
    print(f"wrote {written} ({len(list(written.glob('frame*.ply')))} frames, {_size(written)})")
    return 0


def _cmd_mesh(args: argparse.Namespace) -> int:
    from persona_studio.export.mesh import export_mesh

    avatar, motion, frame, stem = _posed(args)
    target = args.output or exports_folder(args.workspace) / f"{stem}.glb"
    written = export_mesh(avatar, target, motion, frame, overwrite=args.overwrite)
    print(f"wrote {written} ({avatar.num_gaussians} vertices, {avatar.faces.shape[0]} triangles, {_size(written)})")
    return 0


def _animations(args: argparse.Namespace) -> dict:
    """--motion's motions (every preset without it), by unique name."""
    from persona_studio.body.motion import preset_motion_paths

    motions = {}
    for name_or_path in args.motion or list(preset_motion_paths()):
        motion, name = _motion(name_or_path)
        motions[name if name not in motions else f"{name}_{len(motions)}"] = motion
    return motions


def _print_gltf_figures(written: Path, figures) -> None:
    count = len(figures.frames)
    print(f"wrote {written} ({figures.gaussians} Gaussians, {count} animation{'s' if count != 1 else ''}, "
          f"{_size(written)}, {figures.seconds:.1f} s)")
    print(f"  morph targets: {figures.pose_targets} pose components keep {figures.variance_kept:.1%} of the "
          f"pose-driven offsets" + (f", {figures.expression_targets} expressions" if figures.expression_targets
                                     else ""))
    print(f"  top-4 skinning: mean {figures.top4_error.mean_mm:.2f} mm, p99 {figures.top4_error.p99_mm:.2f} mm; "
          f"the file against the avatar at {figures.checked_frames} of its {sum(figures.frames.values())} frames: mean "
          f"{figures.total_error.mean_mm:.2f} mm, p99 {figures.total_error.p99_mm:.2f} mm")


def _cmd_gltf(args: argparse.Namespace) -> int:
    from persona_studio.export.gltf import export_gltf

    avatar, motions = _avatar(args), _animations(args)
    target = args.output or exports_folder(args.workspace) / "avatar_rigged.glb"
    written, figures = export_gltf(avatar, target, motions, overwrite=args.overwrite,
                                   progress=progress_printer("gltf"))
    _print_gltf_figures(written, figures)
    return 0


def _cmd_web(args: argparse.Namespace) -> int:
    from persona_studio.export.web import export_web

    avatar, motions = _avatar(args), _animations(args)
    target = args.output or exports_folder(args.workspace) / "web_player"
    written, figures = export_web(avatar, target, motions, overwrite=args.overwrite, progress=progress_printer("web"))
    _print_gltf_figures(written, figures)
    print(f"to play it: python -m http.server 8000 --directory {written}, then open http://localhost:8000/")
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    from persona_studio.workspace.subject import Subject
    from persona_studio.export.video import export_video

    avatar = _avatar(args)
    motion, name = _motion(args.motion)
    photo = Subject.load(args.workspace).image if args.side_by_side else None
    target = args.output or exports_folder(args.workspace) / f"{name}_{args.camera}.mp4"
    written = export_video(avatar, motion, target, overwrite=args.overwrite, photo=photo, size=tuple(args.size),
                           fps=args.fps, camera=args.camera, progress=progress_printer("video"))
    print(f"wrote {written} ({_size(written)})")
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    from persona_studio.export.workspace_bundle import export_workspace_bundle

    target = args.output or exports_folder(args.workspace) / f"{args.workspace.resolve().name}.zip"
    written = export_workspace_bundle(args.workspace, target, overwrite=args.overwrite)
    print(f"wrote {written} ({_size(written)}); open it elsewhere with "
          f"`persona-studio export import-bundle {written.name} -w NEW_WORKSPACE`")
    return 0


def _cmd_import_bundle(args: argparse.Namespace) -> int:
    from persona_studio.export.workspace_bundle import import_workspace_bundle

    written = import_workspace_bundle(args.bundle, args.workspace)
    print(f"unpacked {args.bundle} into the workspace {written}")
    return 0


def _common(parser: argparse.ArgumentParser, output_help: str, posing: bool = True) -> None:
    """-w, -o and --overwrite; --device for the actions that pose the avatar (all but the bundle's)."""
    parser.add_argument("-w", "--workspace", type=Path, required=True, help="the avatar's workspace folder")
    parser.add_argument("-o", "--output", type=Path, help=output_help)
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    if posing:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP + " (posing and rendering)")


def _pose_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--motion", help="a motion file or a preset name; without it: the canonical avatar")
    parser.add_argument("--frame", type=int, help="the motion frame, numbered from 1 (default 1)")


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` and its actions to the CLI's sub-command parsers."""
    text = "export the avatar (3DGS PLY, rigged glTF, web player, mesh, video) or its workspace (bundle)"
    export = subparsers.add_parser("export", help=text, description=f"{text}. Outputs go to WORKSPACE/exports/ "
                                   "unless -o says otherwise; existing outputs are kept unless --overwrite.")
    actions = export.add_subparsers(dest="export_command", metavar="ACTION", required=True)

    ply = actions.add_parser("ply", help="the avatar as a standard 3DGS PLY, canonical or posed at a motion frame")
    _common(ply, "the .ply file (default: WORKSPACE/exports/avatar_canonical.ply or avatar_MOTION_frameNNNN.ply)")
    _pose_options(ply)
    ply.set_defaults(run=_cmd_ply)

    seq = actions.add_parser("sequence", help="one posed 3DGS PLY per motion frame (frame0001.ply, ...) in a folder")
    _common(seq, "the folder (default: WORKSPACE/exports/MOTION_ply)")
    seq.add_argument("--motion", required=True, help="a motion file or a preset name")
    seq.add_argument("--fps", type=float, help="resample the motion to this frame rate first")
    seq.set_defaults(run=_cmd_sequence)

    mesh = actions.add_parser("mesh", help="the body mesh with vertex colours (GLB or OBJ by the extension)")
    _common(mesh, "a .glb or .obj file (default: WORKSPACE/exports/avatar_canonical.glb or "
                  "avatar_MOTION_frameNNNN.glb)")
    _pose_options(mesh)
    mesh.set_defaults(run=_cmd_mesh)

    gltf = actions.add_parser("gltf", help="the rigged, animated avatar as one GLB (KHR_gaussian_splatting splats, "
                              "an SMPL-X skin, pose correctives as morph targets, an animation per motion)")
    _common(gltf, "the .glb file (default: WORKSPACE/exports/avatar_rigged.glb)")
    gltf.add_argument("--motion", nargs="+", metavar="MOTION",
                      help="motion files or preset names, one animation each (default: every preset)")
    gltf.set_defaults(run=_cmd_gltf)

    web = actions.add_parser("web", help="a folder with a web page that plays the rigged avatar (WebGL2, offline)")
    _common(web, "the folder (default: WORKSPACE/exports/web_player)")
    web.add_argument("--motion", nargs="+", metavar="MOTION",
                     help="motion files or preset names, one animation each (default: every preset)")
    web.set_defaults(run=_cmd_web)

    video = actions.add_parser("video", help="render a motion with the avatar into an MP4")
    _common(video, "the .mp4 file (default: WORKSPACE/exports/MOTION_CAMERA.mp4)")
    video.add_argument("--motion", required=True, help="a motion file or a preset name")
    video.add_argument("--camera", choices=("fixed", "follow", "orbit"), default="fixed")
    video.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    video.add_argument("--fps", type=float, help="resample the motion to this frame rate")
    video.add_argument("--side-by-side", action="store_true", help="show the subject's photo beside the render")
    video.set_defaults(run=_cmd_video)

    bundle = actions.add_parser("bundle", help="the trained avatar and its subject in one zip, to open elsewhere")
    _common(bundle, "the .zip file (default: WORKSPACE/exports/WORKSPACE_NAME.zip)", posing=False)
    bundle.set_defaults(run=_cmd_bundle)

    unpack = actions.add_parser("import-bundle", help="unpack a workspace bundle into a new workspace folder")
    unpack.add_argument("bundle", type=Path, help="a .zip made by `persona-studio export bundle`")
    unpack.add_argument("-w", "--workspace", type=Path, required=True, help="a new (or empty) workspace folder")
    unpack.set_defaults(run=_cmd_import_bundle)
    return export
