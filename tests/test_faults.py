"""Nothing lost, nothing silent: full and read-only disks, killed runs, damaged and hostile files.

Full disks are real: a small tmpfs where the test may mount one, else a file-size limit
(RLIMIT_FSIZE, with SIGXFSZ ignored so that writes fail with EFBIG, in this process and in the
ffmpeg it starts). Read-only folders are real too: a read-only bind mount for root, a 0555 folder for
anyone else. Every refusal reaches the command line as one line without a traceback, exit status 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from persona_studio.avatar.avatar import Avatar, AvatarConfig
from persona_studio.avatar.bundle import BundleError, load_avatar, load_checkpoint, save_avatar
from persona_studio.body.motion import Motion, MotionError, preset_motion_paths, read_motion, write_motion
from persona_studio.cli import main
from persona_studio.export.video import export_video
from persona_studio.export.workspace_bundle import (WorkspaceBundleError, export_workspace_bundle,
                                                    import_workspace_bundle)
from persona_studio.fileio import VideoWriteError, atomic_folder, is_stale_temp, sweep_stale_temp
from persona_studio.settings import Settings
from persona_studio.workspace.folders import prepare_stage
from persona_studio.workspace.subject import Subject, WorkspaceError

from test_export import make_workspace


# --- real faults ----------------------------------------------------------------------------------

def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


class CrampedDisk:
    """A folder whose disk can be made full for the length of a ``with full():`` block."""

    def __init__(self, folder: Path, mounted: bool):
        self.folder, self.mounted = folder, mounted

    @contextlib.contextmanager
    def full(self, room: int = 64 * 1024):
        """Writes past ``room`` more bytes fail (ENOSPC on the tmpfs, else EFBIG from the size limit)."""
        if self.mounted:
            filler = self.folder / "filler"
            free = shutil.disk_usage(self.folder).free
            with open(filler, "wb") as f:
                f.truncate(0)
                f.write(b"\0" * max(free - room, 0))
            try:
                yield
            finally:
                filler.unlink()
        else:
            previous = resource.getrlimit(resource.RLIMIT_FSIZE)
            handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited by ffmpeg across exec
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, previous[1]))
            try:
                yield
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, previous)
                signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def cramped(tmp_path):
    folder = tmp_path / "small_disk"
    folder.mkdir()
    if _can_mount() and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                                       capture_output=True).returncode == 0:
        try:
            yield CrampedDisk(folder, mounted=True)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        yield CrampedDisk(folder, mounted=False)


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody (root included) can write into."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _can_mount() or subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("root without mount: no way to make a folder read-only here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode:
            pytest.skip("this kernel refuses a read-only bind mount")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


PROGRESS_LINE = re.compile(r"^\w+: +\d+\.\d%  ")  # a stage's status line, redrawn with \r


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """Run the CLI in this process -> (exit status, the lines other than status lines it wrote to stderr)."""
    capsys.readouterr()
    status = main(list(argv))
    err = capsys.readouterr().err
    return status, [line for line in re.split(r"[\r\n]", err) if line.strip() and not PROGRESS_LINE.match(line)]


def assert_one_line_refusal(status: int, lines: list[str], *phrases: str) -> None:
    assert status == 1, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def tree_digest(*folders: Path) -> dict[str, str]:
    """Every file under ``folders``: path -> SHA-256 (what a refused command must leave unchanged)."""
    out = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def avatar(open_body_model):
    rng = np.random.default_rng(3)
    colors = lambda interp, v: rng.uniform(0, 1, (v.shape[0], 3)).astype(np.float32)  # noqa: E731
    return Avatar.from_body_model(open_body_model, np.zeros(10, np.float32), colors, AvatarConfig(level=0),
                                  {"body_model": {"kind": "open"}, "photo": "faults"})


@pytest.fixture(scope="module")
def short_motion():
    wave = read_motion(preset_motion_paths()["wave"])
    return Motion(poses=wave.poses[:4], trans=wave.trans[:4], fps=wave.fps)


@pytest.fixture
def workspace(tmp_path, avatar):
    ws = tmp_path / "ws"
    make_workspace(ws, avatar)
    return ws


# --- data loss ------------------------------------------------------------------------------------

def test_a_video_onto_a_full_disk_fails_and_keeps_the_good_one(avatar, short_motion, cramped, capsys):
    target = cramped.folder / "wave.mp4"
    export_video(avatar, short_motion, target, size=(64, 96))
    good = target.read_bytes()
    with cramped.full(room=8 * 1024):
        with pytest.raises(VideoWriteError, match="ffmpeg"):
            export_video(avatar, short_motion, target, overwrite=True, size=(256, 384))
    assert target.read_bytes() == good
    assert sorted(p.name for p in cramped.folder.iterdir()) == ["wave.mp4"]  # no temp file left either


def test_the_generate_kit_video_is_checked_too(tmp_path):
    from persona_studio.fileio import write_video_atomic

    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(5)]
    assert write_video_atomic(tmp_path / "ok.mp4", frames, 10) == 5
    with pytest.raises(ValueError, match="first was 32x32"):
        write_video_atomic(tmp_path / "mixed.mp4", [*frames, np.zeros((16, 16, 3), np.uint8)], 10)
    with pytest.raises(VideoWriteError, match="ffmpeg"):  # odd sizes cannot be yuv420p H.264
        write_video_atomic(tmp_path / "odd.mp4", [np.zeros((31, 31, 3), np.uint8)], 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


@pytest.fixture(scope="module")
def train_workspace(tmp_path_factory, open_body_model):
    from persona_studio.capture.pipeline import fit_photo
    from persona_studio.generate.stage import GenerateOptions, generate_training_set

    from conftest import shared_path

    ws = tmp_path_factory.mktemp("faults_train")
    fit_photo(shared_path("photos", "sith_002.png"), ws, model=open_body_model)
    generate_training_set(ws, GenerateOptions(motions=["wave"], frames=5, size=(72, 128), level=0),
                          model=open_body_model)
    return ws


def tiny_settings(**overrides):
    from persona_studio.train.trainer import TrainSettings

    values = dict(iterations=2, resolution=64, template_level=0, mlp_width=16, triplane_resolution=8,
                  checkpoint_every=0, preview_every=0)
    return TrainSettings.from_preset("preview", **{**values, **overrides})


def test_training_never_replaces_earlier_work_it_cannot_resume(train_workspace, open_body_model, tmp_path):
    from persona_studio.train.trainer import Trainer, TrainingConflict

    ws = tmp_path / "ws"
    shutil.copytree(train_workspace, ws)
    Trainer(ws, tiny_settings(), model=open_body_model).run()
    avatar_dir = ws / "avatar"
    before = tree_digest(avatar_dir)

    other = tiny_settings(mlp_width=24)
    with pytest.raises(TrainingConflict, match=r"mlp width 16 \(now 24\).*--restart"):
        Trainer(ws, other, model=open_body_model).prepare()
    assert tree_digest(avatar_dir) == before

    events = []
    Trainer(ws, other, model=open_body_model, restart=True, on_event=events.append).run()
    kept = [e["message"] for e in events if e["type"] == "info"]
    assert len(kept) == 1 and "kept in" in kept[0]
    earlier = list((avatar_dir / "earlier").iterdir())
    assert len(earlier) == 1 and str(earlier[0]) in kept[0]
    moved = {str(Path(k).relative_to(earlier[0])): v for k, v in tree_digest(earlier[0]).items()}
    assert moved == {str(Path(k).relative_to(avatar_dir)): v for k, v in before.items()}
    assert load_avatar(avatar_dir / "bundle")[1]["config"]["mlp_width"] == 24

    # a trained avatar with no checkpoint (as a workspace bundle brings it) is not trained over either
    (avatar_dir / "checkpoint.safetensors").unlink()
    with pytest.raises(TrainingConflict, match="no checkpoint to resume"):
        Trainer(ws, other, model=open_body_model).prepare()


def test_train_cli_restart_and_checkpoint_interval(train_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(train_workspace, ws)
    run = lambda *a: subprocess.run([sys.executable, "-m", "persona_studio", "train", "-w", str(ws),  # noqa: E731
                                     "--resolution", "64", *a], capture_output=True, text=True, timeout=900)
    first = run("--iterations", "4", "--checkpoint-every", "2")
    assert first.returncode == 0, first.stderr
    from persona_studio.avatar.bundle import read_checkpoint_meta

    assert read_checkpoint_meta(ws / "avatar" / "checkpoint.safetensors")["settings"]["checkpoint_every"] == 2
    refused = run("--iterations", "4", "--resolution", "64", "--preset", "standard")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "--restart" in refused.stderr.strip().splitlines()[-1]
    restarted = run("--iterations", "2", "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "earlier training is kept in" in restarted.stderr
    assert len(list((ws / "avatar" / "earlier").iterdir())) == 1


def test_what_a_killed_run_leaves_is_swept_by_the_next_run(workspace, tmp_path):
    # A real process killed with -9 in the middle of writing the bundle and a file beside it.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from persona_studio.fileio import atomic_folder, atomic_path\n"
        "ws = Path(sys.argv[1])\n"
        "with atomic_folder(ws / 'avatar' / 'bundle') as tmp, atomic_path(ws / 'avatar' / 'checkpoint.safetensors') as f:\n"
        "    (tmp / 'avatar.safetensors').write_bytes(b'0' * 1000000)\n"
        "    f.write_bytes(b'1' * 1000000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(workspace)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    left = sorted(p.name for p in (workspace / "avatar").iterdir() if p.name.startswith("."))
    assert len(left) == 2 and not any(is_stale_temp(workspace / "avatar" / name) for name in left)  # alive: kept
    child.kill()
    child.wait()
    assert all(is_stale_temp(workspace / "avatar" / name) for name in left)
    # a live process's work in progress (this one's) is never touched
    with atomic_folder(workspace / "exports" / "mine"):
        prepare_stage(workspace, "train")
        assert len([p for p in (workspace / "exports").iterdir() if p.name.startswith(".")]) == 1
    assert not [p for p in (workspace / "avatar").iterdir() if p.name.startswith(".")]
    assert load_avatar(workspace / "avatar" / "bundle")  # the real bundle was never touched


def test_untagged_temp_names_of_older_releases_are_swept_once_old(tmp_path):
    old = tmp_path / ".checkpoint.ab12cd_9.part.safetensors"
    new = tmp_path / ".bundle.zz34yy00.part"
    foreign = tmp_path / ".hidden_notes.txt"
    for path in (old, foreign):
        path.write_text("x")
    new.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sweep_stale_temp([tmp_path]) == [old]
    assert new.exists() and foreign.exists()


def test_checkpoints_and_bundles_leave_no_temp_files(avatar, tmp_path):
    from persona_studio.avatar.bundle import save_checkpoint

    save_checkpoint(avatar, tmp_path / "checkpoint.safetensors", {"x": torch.zeros(3)}, {"step": 1})
    save_avatar(avatar, tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "checkpoint.safetensors"]
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")[2] == {"step": 1}


# --- errors that used to be tracebacks ------------------------------------------------------------

def test_a_read_only_workspace_is_refused_before_the_fit_runs(read_only, capsys):
    from conftest import shared_path

    start = time.time()
    status, lines = run_cli(capsys, "fit", str(shared_path("photos", "sith_002.png")), "-w", str(read_only / "ws"))
    assert_one_line_refusal(status, lines, "cannot write the fit stage's output")
    assert time.time() - start < 20  # refused at the start, not after the fit


def test_a_full_workspace_disk_is_refused_before_the_stage_runs(cramped, workspace):
    ws = cramped.folder / "ws"
    shutil.copytree(workspace, ws)
    if cramped.mounted:
        with cramped.full(room=1024**2), pytest.raises(OSError, match="MB free"):
            prepare_stage(ws, "fit")
    with cramped.full(room=1024):  # a file of 4 kB cannot be written
        with pytest.raises(OSError, match="cannot write the train stage's output"):
            prepare_stage(ws, "train")


def test_damaged_checkpoint_bundle_and_workspace_files_name_the_file(workspace, tmp_path, capsys, avatar):
    from persona_studio.avatar.bundle import save_checkpoint

    bundle = workspace / "avatar" / "bundle"
    tensors = bundle / "avatar.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    status, lines = run_cli(capsys, "export", "ply", "-w", str(workspace))
    assert_one_line_refusal(status, lines, "avatar.safetensors", "damaged", "train the avatar again")
    tensors.write_bytes(data)

    checkpoint = tmp_path / "checkpoint.safetensors"
    save_checkpoint(avatar, checkpoint, {}, {"step": 3})
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(BundleError, match="checkpoint.*damaged.*--restart"):
        load_checkpoint(checkpoint)

    smplx = workspace / "subject" / "smplx.json"
    good = json.loads(smplx.read_text())
    smplx.write_text(json.dumps({k: v for k, v in good.items() if k != "body_pose"}))
    with pytest.raises(WorkspaceError, match=r"smplx.json has no 'body_pose' entry.*fit the photo again"):
        Subject.load(workspace)
    smplx.write_text(json.dumps(good)[:100])
    status, lines = run_cli(capsys, "export", "video", "-w", str(workspace), "--motion", "wave", "--side-by-side")
    assert_one_line_refusal(status, lines, "smplx.json", "truncated")
    smplx.write_text(json.dumps(good))


def test_a_motion_header_claiming_983_gib_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (983 * 1024**3 // (8 * 165), 165)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("poses.npy", header.getvalue() + b"\0" * 1024)
        archive.writestr("mocap_frame_rate.npy", _npy(np.array(30.0)))
    with pytest.raises(MotionError, match=r"'poses' claims .* float64 values \(1006\d{3}\.\d MB\) but holds 0\.0 MB"):
        read_motion(path)


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_settings_of_the_wrong_types_are_reported_not_silently_dropped(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("PERSONA_STUDIO_CONFIG", str(tmp_path))
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"smplx_path": 123, "device": "cuda:1", "recent_workspaces": "x", "svd_path": "/s"}))
    settings, problems = Settings.read()
    assert settings.smplx_path == "" and settings.device == "cuda:1" and settings.svd_path == "/s"
    assert len(problems) == 2 and "smplx_path must be text" in problems[0] and "recent_workspaces" in problems[1]
    path.write_text('{"device": "cpu",')
    with caplog.at_level("WARNING"):
        assert Settings.load() == Settings()
    assert "cannot be read" in caplog.text and str(path) in caplog.text
    path.write_text("[1, 2]")
    status, lines = run_cli(capsys, "settings")
    assert_one_line_refusal(status, lines, "holds a JSON list")


def test_a_video_whose_folder_is_a_file_and_an_import_onto_a_full_disk(workspace, tmp_path, capsys, cramped):
    (tmp_path / "afile").write_text("x")
    status, lines = run_cli(capsys, "export", "video", "-w", str(workspace), "--motion", "wave",
                            "-o", str(tmp_path / "afile" / "out.mp4"))
    assert_one_line_refusal(status, lines, "is a file, not a folder")

    bundle = export_workspace_bundle(workspace, tmp_path / "ws.zip")
    with cramped.full(room=16 * 1024):
        status, lines = run_cli(capsys, "export", "import-bundle", str(bundle), "-w", str(cramped.folder / "new"))
    assert_one_line_refusal(status, lines, "cannot unpack", "free space")
    assert "damaged" not in lines[0]
    assert not (cramped.folder / "new").exists() and not [p for p in cramped.folder.iterdir() if p.name != "filler"]


# --- hostile files --------------------------------------------------------------------------------

def _bundle_with(tmp_path: Path, workspace: Path, name: str, extra: dict[str, bytes], compress=zipfile.ZIP_DEFLATED):
    """A honest bundle of ``workspace`` plus ``extra`` members, listed in its manifest with true sizes."""
    good = export_workspace_bundle(workspace, tmp_path / f"{name}_base.zip")
    path = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        manifest = json.loads(src.read("bundle.json"))
        for info in src.infolist():
            if info.filename != "bundle.json":
                dst.writestr(info, src.read(info))
        for member, data in extra.items():
            dst.writestr(member, data, compress_type=compress)
            manifest["files"][member] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        dst.writestr("bundle.json", json.dumps(manifest))
    return path


def test_zip_bombs_and_foreign_names_in_a_bundle_are_refused(workspace, tmp_path, monkeypatch):
    from persona_studio.export import workspace_bundle

    zeros = b"\0" * (16 * 1024**2)  # 16 MB that deflate to 16 kB: as a photo it would be kept
    bomb = _bundle_with(tmp_path, workspace, "bomb", {"subject/overlay.png": zeros})
    with pytest.raises(WorkspaceBundleError, match="zip bomb"):
        import_workspace_bundle(bomb, tmp_path / "a")
    foreign = _bundle_with(tmp_path, workspace, "foreign", {"subject/notes.exe": b"MZ"})
    with pytest.raises(WorkspaceBundleError, match="no file of an avatar bundle"):
        import_workspace_bundle(foreign, tmp_path / "b")
    assert workspace_bundle.MAX_BUNDLE_BYTES <= 1024**3  # a bundle is tens of MB: the cap is of that order
    size = sum(p.stat().st_size for p in workspace.rglob("*") if p.is_file())
    monkeypatch.setattr(workspace_bundle, "MAX_BUNDLE_BYTES", size + 1024**2)  # the cap, scaled to this test
    big = _bundle_with(tmp_path, workspace, "big", {"subject/original.tif": os.urandom(2 * 1024**2)},
                       compress=zipfile.ZIP_STORED)
    with pytest.raises(WorkspaceBundleError, match="more than a workspace bundle holds"):
        import_workspace_bundle(big, tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


class _Payload:
    """Unpickling this makes the folder ``marker``: the proof that a loader ran code from a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_an_smplx_npz_with_a_pickled_payload_runs_no_code(tmp_path, monkeypatch):
    import smplx

    from persona_studio.body.model import load_body_model, open_model_path

    marker = tmp_path / "code_ran"
    with np.load(open_model_path(), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["joint2num"] = np.array([_Payload(marker)], dtype=object)  # releases carry such object arrays
    folder = tmp_path / "smplx"
    folder.mkdir()
    np.savez(folder / "SMPLX_NEUTRAL.npz", **arrays)

    model = load_body_model("official", official_path=folder)
    assert not marker.exists() and model.info.kind == "official" and model.info.num_vertices == len(arrays["v_template"])
    # what smplx itself does with the same file: the reason for the copy
    smplx.SMPLX(model_path=str(folder / "SMPLX_NEUTRAL.npz"), ext="npz", use_pca=False, flat_hand_mean=True)
    assert marker.exists()


def test_smplx_pickles_are_used_only_when_named_as_the_file(tmp_path):
    from persona_studio.body.model import BodyModelError, find_official_smplx

    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BodyModelError, match="a pickle .*set the path to that file itself"):
        find_official_smplx(tmp_path)
    assert find_official_smplx(tmp_path / "SMPLX_NEUTRAL.pkl") == tmp_path / "SMPLX_NEUTRAL.pkl"


# --- the fault corpus -----------------------------------------------------------------------------

def _corpus(root: Path, workspace: Path) -> list[tuple[str, list[str]]]:
    """Bad photos, motions, bundles and settings, each with the command that reads it."""
    cases: list[tuple[str, list[str]]] = []
    photos = root / "photos"
    photos.mkdir()
    good_png = io.BytesIO()
    Image.fromarray(np.zeros((600, 300, 3), np.uint8)).save(good_png, "PNG")
    bad_photos = {
        "empty.png": b"", "text.png": b"this is not an image", "truncated.png": good_png.getvalue()[:400],
        "tiny.png": _png((4, 4)), "no_person.png": _png((600, 300)), "animated.gif": _gif(),
        "photo.pdf": b"%PDF-1.4\n", "bomb.png": _png_header(100000, 100000),
    }
    for name, data in bad_photos.items():
        (photos / name).write_bytes(data)
        cases.append((f"photo {name}", ["fit", str(photos / name), "-w", str(root / "new_ws")]))
    (photos / "a_folder.png").mkdir()
    cases.append(("photo that is a folder", ["fit", str(photos / "a_folder.png"), "-w", str(root / "new_ws")]))

    motions = root / "motions"
    motions.mkdir()
    wave = read_motion(preset_motion_paths()["wave"])
    write_motion(Motion(poses=wave.poses[:3], trans=wave.trans[:3], fps=wave.fps), motions / "good.npz")
    good_npz = (motions / "good.npz").read_bytes()
    nan = wave.poses[:3].reshape(3, -1).copy()
    nan[1, 4] = np.nan
    bad_motions = {
        "truncated.npz": good_npz[: len(good_npz) // 2], "text.npz": b"not a zip",
        "pickled.npz": _npz(poses=np.array([{"a": 1}], dtype=object), mocap_frame_rate=np.array(30.0)),
        "nan.npz": _npz(poses=nan, trans=np.zeros((3, 3)), mocap_frame_rate=np.array(30.0)),
        "wrong_shape.npz": _npz(poses=np.zeros((3, 7)), mocap_frame_rate=np.array(30.0)),
        "zero_fps.npz": _npz(poses=np.zeros((3, 165)), mocap_frame_rate=np.array(0.0)),
        "mismatched_trans.npz": _npz(poses=np.zeros((3, 165)), trans=np.zeros((2, 3))),
        "empty.npz": _npz(), "huge_header.npz": _lying_npz(), "motion.pkl": b"\x80\x04N.",
    }
    for name, data in bad_motions.items():
        (motions / name).write_bytes(data)
        cases.append((f"motion {name}", ["motion", "info", str(motions / name)]))
    cases.append(("motion in an export", ["export", "ply", "-w", str(workspace), "--motion", str(motions / "nan.npz")]))
    json_folder = motions / "frames"
    json_folder.mkdir()
    (json_folder / "000001.json").write_text('{"root_pose": [0, 0')
    cases.append(("motion folder with broken JSON", ["motion", "info", str(json_folder)]))

    bundles = root / "bundles"
    bundles.mkdir()
    good_bundle = export_workspace_bundle(workspace, bundles / "good.zip")
    data = good_bundle.read_bytes()
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("../../evil.txt", "x")
        archive.writestr("bundle.json", json.dumps({"format": "persona-studio workspace bundle", "format_version": 1,
                                                    "files": {"../../evil.txt": {"bytes": 1, "sha256": "0"}}}))
    flipped = bytearray(data)
    offset = data.find(b"safetensors") + 4096
    flipped[offset] ^= 0xFF
    bad_bundles = {"text.zip": b"nope", "truncated.zip": data[: len(data) // 3], "slip.zip": slip.getvalue(),
                   "flipped.zip": bytes(flipped), "no_manifest.zip": _zip({"subject/subject.json": b"{}"})}
    for name, blob in bad_bundles.items():
        (bundles / name).write_bytes(blob)
    good_bundle.unlink()
    for name in bad_bundles:
        cases.append((f"bundle {name}", ["export", "import-bundle", str(bundles / name), "-w", str(root / "imported")]))
    for src, name in ((_bundle_with(root, workspace, "bomb", {"subject/overlay.png": b"\0" * (32 * 1024**2)}), "bomb"),
                      (_bundle_with(root, workspace, "foreign", {"avatar/bundle/run.sh": b"rm -rf"}), "foreign")):
        moved = bundles / f"{name}.zip"
        src.rename(moved)
        (root / f"{name}_base.zip").unlink()
        cases.append((f"bundle {name}", ["export", "import-bundle", str(moved), "-w", str(root / "imported")]))
    return cases


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((size[0], size[1], 3), 200, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def _gif() -> bytes:
    out = io.BytesIO()
    frames = [Image.new("RGB", (40, 80), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def _npz(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _lying_npz() -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 165)})
    return _zip({"poses.npy": header.getvalue() + b"\0" * 800})


def test_fault_corpus_gets_one_line_each_and_changes_nothing(workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "corpus"
    root.mkdir()
    cases = _corpus(root, workspace)
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("PERSONA_STUDIO_CONFIG", str(config))
    for name, text in (("invalid JSON", '{"smplx_path": '), ("a list", "[]"), ("wrong type", '{"device": 5}'),
                       ("unknown device", '{"device": "tpu"}'), ("wrong gender", '{"smplx_gender": "x"}')):
        cases.append((f"settings: {name}", ["settings"]))
    settings_texts = iter(['{"smplx_path": ', "[]", '{"device": 5}', '{"device": "tpu"}', '{"smplx_gender": "x"}'])
    before = tree_digest(root, workspace)
    assert len(cases) >= 30
    for name, argv in cases:
        if argv == ["settings"]:
            (config / "settings.json").write_text(next(settings_texts))
        status, lines = run_cli(capsys, *argv)
        assert status == 1, (name, status, lines)
        assert len(lines) == 1 and "Traceback" not in lines[0], (name, lines)
        assert not (root / "new_ws").exists() and not (root / "imported").exists(), name
    assert tree_digest(root, workspace) == before
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
