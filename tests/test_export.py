"""Exports: 3DGS PLY (read back with plyfile), posed sequences, GLB/OBJ meshes, workspace bundles, the CLI."""

from __future__ import annotations

import argparse
import copy
import json
import os
import zipfile

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from plyfile import PlyData

from persona_studio.avatar.bundle import load_avatar, save_avatar
from persona_studio.body.motion import Motion, preset_motion_paths, read_motion, write_motion
from persona_studio.workspace.subject import Subject
from persona_studio.export import ExportError
from persona_studio.cli.export import add_export_parser
from persona_studio.export.gltf import read_glb
from persona_studio.export.mesh import export_mesh
from persona_studio.export.ply import export_ply, export_ply_sequence
from persona_studio.export.workspace_bundle import (WorkspaceBundleError, export_workspace_bundle,
                                                    import_workspace_bundle)
from persona_studio.render.camera import Camera
from persona_studio.render.rasterize import rasterize

from conftest import needs_cuda

EXPECTED_PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                       "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
C0 = 0.28209479177387814


@pytest.fixture(scope="module")
def avatar(deforming_avatar):
    return deforming_avatar


@pytest.fixture(scope="module")
def motion():
    wave = read_motion(preset_motion_paths()["wave"])
    return Motion(poses=wave.poses[40:45], trans=wave.trans[40:45], fps=wave.fps)


def posed_means(avatar, motion, frames=slice(None)) -> np.ndarray:
    """[B, N, 3] through the avatar's own (slow, differentiable) path, independent of the export's."""
    with torch.no_grad():
        return avatar.pose(motion.pose_kwargs(frames)).means.numpy()


def read_gaussians(path) -> dict[str, np.ndarray]:
    ply = PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["vertex"]
    assert not ply.text and ply.byte_order == "<"
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == EXPECTED_PROPERTIES
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in EXPECTED_PROPERTIES)
    return {name: np.asarray(vertex[name]) for name in EXPECTED_PROPERTIES}


def xyz(g: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([g["x"], g["y"], g["z"]], axis=1)


def test_canonical_ply_is_standard_3dgs_with_the_activations_undone(avatar, tmp_path):
    path = export_ply(avatar, tmp_path / "canonical.ply")
    g = read_gaussians(path)
    n = avatar.num_gaussians
    assert g["x"].shape == (n,)
    np.testing.assert_allclose(xyz(g), avatar.canonical().detach().numpy(), atol=1e-6)
    scales = avatar.scales.detach().numpy()  # what the avatar renders (its learnt sizes, capped)
    for i in range(3):  # isotropic: the same log scale on each axis
        np.testing.assert_allclose(np.exp(g[f"scale_{i}"]), scales, rtol=1e-5)
    rgb = np.stack([g[f"f_dc_{i}"] for i in range(3)], axis=1) * C0 + 0.5
    np.testing.assert_allclose(rgb, avatar.colors.detach().numpy(), atol=1e-6)
    assert rgb.std() > 0.2  # the random colours came through, not a constant
    np.testing.assert_allclose(1 / (1 + np.exp(-g["opacity"])), 0.999, rtol=1e-6)
    quats = np.stack([g[f"rot_{i}"] for i in range(4)], axis=1)
    assert np.array_equal(quats, np.tile([1, 0, 0, 0], (n, 1)).astype(np.float32))
    assert not np.any([g["nx"], g["ny"], g["nz"]])


def test_posed_ply_matches_the_avatar_posed_at_that_frame(avatar, motion, tmp_path):
    g = read_gaussians(export_ply(avatar, tmp_path / "posed.ply", motion, 3))
    expected = posed_means(avatar, motion, slice(3, 4))[0]
    np.testing.assert_allclose(xyz(g), expected, atol=1e-5)
    assert np.abs(xyz(g) - avatar.canonical().detach().numpy()).max() > 0.05  # really posed
    with pytest.raises(ExportError, match="outside the motion"):
        export_ply(avatar, tmp_path / "late.ply", motion, motion.num_frames)


def test_sequence_writes_one_ply_per_frame(avatar, motion, tmp_path):
    reports = []
    folder = export_ply_sequence(avatar, motion, tmp_path / "seq", batch=2,
                                 progress=lambda f, m: reports.append((f, m)))
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame{i:04d}.ply" for i in range(1, motion.num_frames + 1)]
    expected = posed_means(avatar, motion)
    for i, name in enumerate(names):
        np.testing.assert_allclose(xyz(read_gaussians(folder / name)), expected[i], atol=1e-5)
    assert [f for f, _ in reports] == pytest.approx([(i + 1) / motion.num_frames for i in range(motion.num_frames)])


def test_cancelled_sequence_leaves_nothing(avatar, motion, tmp_path):
    calls = []

    def cancel_on_third_frame() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(InterruptedError):
        export_ply_sequence(avatar, motion, tmp_path / "seq", cancelled=cancel_on_third_frame)
    assert list(tmp_path.iterdir()) == []
    previous = export_ply_sequence(avatar, motion, tmp_path / "seq")
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    calls.clear()
    with pytest.raises(InterruptedError):  # a cancelled overwrite keeps the previous sequence intact
        export_ply_sequence(avatar, motion, tmp_path / "seq", overwrite=True, cancelled=cancel_on_third_frame)
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["seq"]


def test_output_paths_are_checked(avatar, motion, tmp_path):
    target = export_ply(avatar, tmp_path / "a.ply")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_ply(avatar, target)
    export_ply(avatar, target, motion, 1, overwrite=True)
    np.testing.assert_allclose(xyz(read_gaussians(target)), posed_means(avatar, motion, slice(1, 2))[0], atol=1e-5)
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_ply(avatar, target / "under_a_file.ply")
    with pytest.raises(ExportError, match="not a folder"):
        export_ply_sequence(avatar, motion, target, overwrite=True)
    (tmp_path / "dir.glb").mkdir()
    with pytest.raises(ExportError, match="not a file"):
        export_mesh(avatar, tmp_path / "dir.glb", overwrite=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="other than a PLY sequence"):
        export_ply_sequence(avatar, motion, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_read_only_folder_is_refused(avatar, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) can write into read-only folders")
        with pytest.raises(PermissionError, match="no permission"):
            export_ply(avatar, locked / "sub" / "a.ply")
    finally:
        locked.chmod(0o755)


def test_non_finite_gaussians_are_refused(avatar, tmp_path):
    damaged = copy.deepcopy(avatar)
    with torch.no_grad():
        damaged.colors[7, 1] = float("nan")
    with pytest.raises(ExportError, match="NaN"):
        export_ply(damaged, tmp_path / "bad.ply")
    with pytest.raises(ExportError, match="NaN"):
        export_mesh(damaged, tmp_path / "bad.glb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_mesh_has_the_posed_vertices_faces_and_colours(avatar, motion, tmp_path, suffix):
    path = export_mesh(avatar, tmp_path / f"body{suffix}", motion, 2)
    mesh = trimesh.load(path, force="mesh", process=False)
    assert mesh.vertices.shape == (avatar.num_gaussians, 3)
    assert np.array_equal(mesh.faces, avatar.faces.numpy())
    np.testing.assert_allclose(mesh.vertices, posed_means(avatar, motion, slice(2, 3))[0], atol=1e-5)
    colors = np.asarray(mesh.visual.vertex_colors)
    expected = np.round(avatar.colors.detach().numpy() * 255)
    assert np.abs(colors[:, :3].astype(int) - expected).max() <= 1 and (colors[:, 3] == 255).all()
    with pytest.raises(ExportError, match=".glb or .obj"):
        export_mesh(avatar, tmp_path / "body.stl")


def make_workspace(folder, avatar) -> Subject:
    """A workspace as the pipeline leaves it: a Subject (with a real photo file) and an avatar bundle."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (8, 5, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((40, 64), Image.BILINEAR))  # smooth: survives H.264 well
    photo = folder.parent / f"{folder.name}_photo.png"
    imageio.imwrite(photo, image)
    smplx = {k: rng.normal(0, 0.1, n).astype(np.float32) for k, n in (
        ("global_orient", 3), ("body_pose", 63), ("jaw_pose", 3), ("leye_pose", 3), ("reye_pose", 3),
        ("left_hand_pose", 45), ("right_hand_pose", 45), ("expression", 10), ("transl", 3), ("betas", 10))}
    subject = Subject(image=image, mask=(rng.uniform(size=(64, 40)) > 0.5).astype(np.float32),
                      keypoints={"body": rng.uniform(size=(33, 3)).astype(np.float32)}, smplx=smplx,
                      camera=Camera.look_at((0, 0, 3), (0, 0, 0), width=40, height=64),
                      body_model={"kind": "open"}, metrics={"fit_seconds": 1.0}, photo_name="person")
    subject.save(folder, [photo])
    save_avatar(avatar, folder / "avatar" / "bundle")
    return subject


def render_front(avatar, motion) -> torch.Tensor:
    cam = Camera.look_at((0, 0.3, 3.0), (0, 0.3, 0), width=48, height=64)
    with torch.no_grad():
        posed = avatar.pose(motion.pose_kwargs(slice(0, 1)), fast=True)
        return rasterize(posed.means[0], posed.scales, posed.opacities, posed.colors,
                         torch.tensor(cam.viewmat, dtype=torch.float32)[None],
                         torch.tensor(cam.K, dtype=torch.float32)[None], 48, 64).features[0]


def test_workspace_bundle_opens_elsewhere_identically(avatar, motion, tmp_path):
    subject = make_workspace(tmp_path / "here", avatar)
    reports = []
    bundle = export_workspace_bundle(tmp_path / "here", tmp_path / "moved.zip", progress=lambda f, m: reports.append(f))
    assert reports[-1] == 1.0
    with pytest.raises(FileExistsError):
        export_workspace_bundle(tmp_path / "here", bundle)
    workspace = import_workspace_bundle(bundle, tmp_path / "elsewhere" / "ws")
    loaded, _ = load_avatar(workspace / "avatar" / "bundle")
    with torch.no_grad():
        a = avatar.pose(motion.pose_kwargs(), fast=True)
        b = loaded.pose(motion.pose_kwargs(), fast=True)
    assert torch.equal(a.means, b.means) and torch.equal(a.colors, b.colors) and torch.equal(a.scales, b.scales)
    image = render_front(loaded, motion)
    assert image.std() > 0.05  # the body is in view
    assert torch.equal(image, render_front(avatar, motion))
    moved = Subject.load(workspace)
    assert np.array_equal(moved.image, subject.image) and moved.photo_name == "person"
    assert all(np.array_equal(moved.smplx[k], v) for k, v in subject.smplx.items())
    with pytest.raises(FileExistsError, match="new \\(or empty\\) workspace"):
        import_workspace_bundle(bundle, workspace)


def rewrite_bundle(src, dst, edit_manifest=None, drop=(), extra=None):
    """Copy the zip ``src`` to ``dst`` with its manifest edited, members dropped or added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "bundle.json" and edit_manifest is not None:
                manifest = json.loads(data)
                edit_manifest(manifest)
                data = json.dumps(manifest).encode()
            if info.filename not in drop:
                zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def test_bundle_import_validates(avatar, tmp_path):
    make_workspace(tmp_path / "ws", avatar)
    good = export_workspace_bundle(tmp_path / "ws", tmp_path / "good.zip")
    safetensors = "avatar/bundle/avatar.safetensors"

    def version(m):
        m["format_version"] = 99

    def outside(m):
        m["files"]["../evil.txt"] = {"bytes": 4, "sha256": "0"}

    def checksum(m):
        m["files"][safetensors]["sha256"] = "0" * 64

    def unlisted(m):
        del m["files"]["subject/subject.json"]

    (tmp_path / "photo.zip").write_bytes(b"not a zip at all")
    cases = {
        "not a zip file": tmp_path / "photo.zip",
        "no bundle.json": rewrite_bundle(good, tmp_path / "a.zip", drop=("bundle.json",)),
        "version 99": rewrite_bundle(good, tmp_path / "b.zip", version),
        "does not hold it": rewrite_bundle(good, tmp_path / "c.zip", drop=(safetensors,)),
        "refusing to unpack": rewrite_bundle(good, tmp_path / "d.zip", outside, extra={"../evil.txt": b"evil"}),
        "checksum": rewrite_bundle(good, tmp_path / "e.zip", checksum),
        "lacks subject/subject.json": rewrite_bundle(good, tmp_path / "f.zip", unlisted),
    }
    for message, bundle in cases.items():
        with pytest.raises(WorkspaceBundleError, match=message):
            import_workspace_bundle(bundle, tmp_path / "target")
        assert not (tmp_path / "target").exists() and not (tmp_path / "evil.txt").exists()
    save_avatar(avatar, tmp_path / "no_subject" / "avatar" / "bundle")
    with pytest.raises(ValueError, match="persona-studio fit"):  # a bundle needs the Subject too
        export_workspace_bundle(tmp_path / "no_subject", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def run_cli(*argv: str) -> None:
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *argv])
    assert args.run(args) == 0


def test_export_commands(avatar, tmp_path, capsys):
    ws = tmp_path / "ws"
    make_workspace(ws, avatar)
    short = tmp_path / "short.npz"
    wave = read_motion(preset_motion_paths()["wave"])
    write_motion(Motion(poses=wave.poses[:3], trans=wave.trans[:3], fps=wave.fps), short)

    run_cli("ply", "-w", str(ws))
    run_cli("ply", "-w", str(ws), "--motion", str(short), "--frame", "3")
    expected = posed_means(avatar, read_motion(short), slice(2, 3))[0]
    np.testing.assert_allclose(xyz(read_gaussians(ws / "exports" / "avatar_short_frame0003.ply")), expected, atol=1e-5)
    run_cli("sequence", "-w", str(ws), "--motion", str(short))
    assert len(list((ws / "exports" / "short_ply").glob("frame*.ply"))) == 3
    run_cli("mesh", "-w", str(ws), "-o", str(tmp_path / "body.obj"))
    with pytest.raises(ValueError, match="even width and height"):
        run_cli("video", "-w", str(ws), "--motion", str(short), "--size", "33", "48")
    run_cli("video", "-w", str(ws), "--motion", str(short), "--size", "32", "48", "--side-by-side")
    frames = imageio.mimread(ws / "exports" / "short_fixed.mp4")
    assert len(frames) == 3 and frames[0].shape == (48, 30 + 32, 3)  # the 40x64 photo at height 48, then the render
    photo = np.asarray(Image.fromarray(Subject.load(ws).image).resize((30, 48)), dtype=float)
    assert np.abs(frames[1][:, :30] - photo).mean() < 15 < np.abs(frames[1][:, :30] - photo[::-1]).mean()
    capsys.readouterr()
    run_cli("gltf", "-w", str(ws), "--motion", str(short), "wave")
    said = capsys.readouterr().out
    assert "2 animations" in said and "morph targets" in said and "p99" in said, said
    document, _ = read_glb((ws / "exports" / "avatar_rigged.glb").read_bytes())
    assert [a["name"] for a in document["animations"]] == ["short", "wave"]
    run_cli("web", "-w", str(ws), "--motion", str(short))
    assert "http.server" in capsys.readouterr().out
    assert {p.name for p in (ws / "exports" / "web_player").iterdir()} == {"index.html", "player.js", "avatar.glb"}
    run_cli("bundle", "-w", str(ws))
    run_cli("import-bundle", str(ws / "exports" / "ws.zip"), "-w", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "avatar" / "bundle" / "avatar.safetensors").is_file()
    assert "wrote" in capsys.readouterr().out

    with pytest.raises(FileExistsError):
        run_cli("ply", "-w", str(ws))
    with pytest.raises(ExportError, match="from 1 to 3"):
        run_cli("mesh", "-w", str(ws), "--motion", str(short), "--frame", "4")
    with pytest.raises(ExportError, match="needs --motion"):
        run_cli("mesh", "-w", str(ws), "--frame", "2")
    with pytest.raises(ExportError, match="presets: .*wave"):
        run_cli("ply", "-w", str(ws), "--motion", "no_such_motion")


def test_mp4_has_the_requested_frames_size_and_fps(avatar, tmp_path):
    from persona_studio.body.motion import resample
    from persona_studio.export.video import export_video

    wave = read_motion(preset_motion_paths()["wave"])
    motion = Motion(poses=wave.poses[:12], trans=wave.trans[:12], fps=wave.fps)  # 12 frames at 30 fps
    target = export_video(avatar, motion, tmp_path / "wave.mp4", size=(48, 64), fps=15, camera="follow")
    reader = imageio.get_reader(target)
    frames = [f for f in reader]
    assert len(frames) == resample(motion, 15).num_frames >= 6
    assert frames[0].shape == (64, 48, 3)
    assert abs(reader.get_meta_data()["fps"] - 15) < 1e-6
    cancelled = tmp_path / "cancelled.mp4"
    with pytest.raises(InterruptedError):
        export_video(avatar, motion, cancelled, size=(48, 64), cancelled=lambda: True)
    assert not cancelled.exists() and not list(tmp_path.glob(".cancelled*"))


@needs_cuda
def test_exports_of_an_avatar_on_cuda_match_the_cpus(avatar, motion, tmp_path):
    """The same files (posed PLY, mesh, rigged GLB) and video frames from the avatar on either device."""
    from persona_studio.export.gltf import export_gltf
    from persona_studio.export.video import render_motion

    out = {}
    for name, on in (("cpu", avatar), ("cuda", copy.deepcopy(avatar).cuda())):
        export_ply(on, tmp_path / f"{name}.ply", motion, 2)
        export_mesh(on, tmp_path / f"{name}.obj", motion, 1)
        _, figures = export_gltf(on, tmp_path / f"{name}.glb", {"wave": motion})
        out[name] = (read_gaussians(tmp_path / f"{name}.ply"), trimesh.load(tmp_path / f"{name}.obj", process=False),
                     figures, np.stack(list(render_motion(on, motion, size=(32, 48)))).astype(int))
    (ply_c, mesh_c, gltf_c, video_c), (ply_g, mesh_g, gltf_g, video_g) = out["cpu"], out["cuda"]
    for key in EXPECTED_PROPERTIES:
        np.testing.assert_allclose(ply_g[key], ply_c[key], atol=1e-4, err_msg=key)
    np.testing.assert_allclose(mesh_g.vertices, mesh_c.vertices, atol=1e-5)
    assert gltf_g.total_error.p99_mm == pytest.approx(gltf_c.total_error.p99_mm, abs=0.05)
    assert np.abs(video_g - video_c).mean() < 1.0 and np.abs(video_g - video_c).max() <= 12
