"""Workspace bundles: a trained avatar and its Subject in one zip file, to open on another machine.

A bundle is a zip (any name; ``.zip`` is customary) holding

- ``bundle.json``: ``format`` = "persona-studio workspace bundle", ``format_version``, and every
  other file's size in bytes and SHA-256;
- ``avatar/bundle/``: the avatar bundle (``avatar.json`` + ``avatar.safetensors``), self-contained:
  posing it needs no body model files;
- ``subject/``: the Subject (photo, mask, keypoints, SMPL-X fit, camera).

Paths inside are the workspace's own, so importing unpacks them into a new workspace folder that
the app and the CLI open as any other. The training set and training checkpoints stay behind (they
are large and only needed to train again; ``persona-studio generate`` remakes the training set).
Import trusts nothing: names are checked against the manifest, sizes and checksums verified, and the
avatar and Subject loaded before the workspace appears (atomically, all or nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from persona_studio.avatar.bundle import BUNDLE_FILES, load_avatar
from persona_studio.workspace.folders import BUNDLE_DIR
from persona_studio.workspace.subject import SUBJECT_DIR, Subject, is_subject_file
from persona_studio.export import ExportError, check_output_path
from persona_studio.fileio import atomic_folder, atomic_path

BUNDLE_FORMAT = "persona-studio workspace bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "bundle.json"
BUNDLED_FOLDERS = (BUNDLE_DIR, SUBJECT_DIR)
REQUIRED_FILES = (f"{BUNDLE_DIR}/avatar.json", f"{BUNDLE_DIR}/avatar.safetensors",
                  f"{SUBJECT_DIR}/subject.json")
MAX_BUNDLE_BYTES = 512 * 1024**2  # unpacked; a level-2 avatar and its Subject take tens of MB
MAX_COMPRESSION_RATIO = 50  # tensors and images barely compress, JSON about 5x: far more is a zip bomb
RATIO_CHECKED_BYTES = 1024**2  # members smaller than this cannot hurt, whatever their ratio
_COMPRESSED_SUFFIXES = (".json", ".txt")  # images and tensors barely compress: stored as they are
_CHUNK = 1 << 20


class WorkspaceBundleError(ExportError):
    """A workspace bundle that cannot be made or opened; the message says why and what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_files(workspace: Path) -> list[str]:
    """The workspace files a bundle carries, as sorted relative POSIX paths."""
    return sorted(p.relative_to(workspace).as_posix() for folder in BUNDLED_FOLDERS
                  for p in (workspace / folder).rglob("*") if p.is_file())


def export_workspace_bundle(workspace: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = False,
                            progress: Callable[[float, str], None] | None = None) -> Path:
    """Write ``workspace``'s avatar bundle and Subject into the zip ``target`` (atomic)."""
    workspace = Path(workspace)
    load_avatar(workspace / BUNDLE_DIR)  # both raise with what to do when missing or unreadable
    Subject.load(workspace)
    target = check_output_path(target, overwrite=overwrite)
    files = bundled_files(workspace)
    listing = {}
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for i, name in enumerate(files):
                path = workspace / name
                listing[name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                compression = zipfile.ZIP_DEFLATED if path.suffix in _COMPRESSED_SUFFIXES else zipfile.ZIP_STORED
                archive.write(path, name, compress_type=compression)
                if progress is not None:
                    progress((i + 1) / (len(files) + 1), name)
            manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION, "files": listing}
            archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n", zipfile.ZIP_DEFLATED)
        try:  # complete before it replaces anything
            with zipfile.ZipFile(tmp) as written:
                whole = written.testzip() is None and len(written.namelist()) == len(files) + 1
        except (zipfile.BadZipFile, EOFError):
            whole = False
        if not whole:
            raise OSError(f"the bundle written to {target} does not read back whole: the disk may be full; "
                          "nothing was replaced")
    if progress is not None:
        progress(1.0, "done")
    return target


def _read_manifest(archive: zipfile.ZipFile, source: Path) -> dict[str, dict]:
    """The manifest's file listing, after checking the format, version, names and sizes."""
    try:
        manifest = json.loads(archive.read(MANIFEST_NAME))
    except KeyError:
        raise WorkspaceBundleError(f"{source} is a zip but not a workspace bundle (no {MANIFEST_NAME}): "
                                   "make one with `persona-studio export bundle`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkspaceBundleError(f"{source}: {MANIFEST_NAME} is not valid JSON ({exc}): the bundle is damaged; "
                                   "export it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise WorkspaceBundleError(f"{source} is not a workspace bundle ({MANIFEST_NAME} does not name the "
                                   f"format {BUNDLE_FORMAT!r})")
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise WorkspaceBundleError(f"{source}: bundle format version {version!r}, but this PERSONA Studio reads "
                                   f"version {BUNDLE_FORMAT_VERSION}; export it with a matching version")
    listing = manifest.get("files")
    if not isinstance(listing, dict):
        raise WorkspaceBundleError(f"{source}: {MANIFEST_NAME} has no file listing: the bundle is damaged; "
                                   "export it again")
    for name in REQUIRED_FILES:
        if name not in listing:
            raise WorkspaceBundleError(f"{source} lacks {name}: export the bundle again from a workspace with a "
                                       "trained avatar and a fitted subject")
    present = {info.filename: info for info in archive.infolist()}
    total = 0
    for name, entry in listing.items():
        if not _bundle_may_hold(name):
            raise WorkspaceBundleError(f"{source} lists {name!r}, which is no file of an avatar bundle or a Subject: "
                                       "refusing to unpack it")
        if name not in present:
            raise WorkspaceBundleError(f"{source} lists {name} but does not hold it: the bundle is damaged or "
                                       "incomplete; export it again")
        if not isinstance(entry, dict) or present[name].file_size != entry.get("bytes"):
            raise WorkspaceBundleError(f"{source}: {name} does not have the size its manifest says: the bundle is "
                                       "damaged; export it again")
        member = present[name]
        if member.file_size > RATIO_CHECKED_BYTES and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            raise WorkspaceBundleError(f"{source}: {name} would unpack {member.compress_size:,} bytes into "
                                       f"{member.file_size:,}, which no real bundle does (a zip bomb?): refusing it")
        total += member.file_size
    if total > MAX_BUNDLE_BYTES:
        raise WorkspaceBundleError(f"{source} would unpack to {total / 1024**2:,.0f} MB, more than a workspace "
                                   f"bundle holds (at most {MAX_BUNDLE_BYTES / 1024**2:.0f} MB): refusing it")
    return listing


def _bundle_may_hold(name: str) -> bool:
    """Whether ``name`` is a file a workspace bundle carries: the avatar bundle's, or the Subject's (its
    extra photos' included)."""
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or len(path.parts) < 2 or str(path) != name:
        return False
    folder, file = str(path.parent), path.name
    if path.parts[0] == SUBJECT_DIR:  # the Subject's files, its extra photos' included
        return is_subject_file(PurePosixPath(*path.parts[1:]).as_posix())
    return folder == BUNDLE_DIR and file in BUNDLE_FILES


def _read_member(src, name: str, source: Path) -> bytes:
    """The next chunk of a member being unpacked; a damaged member blames the bundle."""
    try:
        return src.read(_CHUNK)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise WorkspaceBundleError(f"{source}: cannot read {name} ({exc}): the bundle is damaged; "
                                   "export it again") from None


def _unpack(archive: zipfile.ZipFile, name: str, expected_sha256: str, folder: Path, source: Path) -> None:
    """Extract ``name`` under ``folder``, checking its SHA-256 as it streams. A member that cannot be read
    blames the bundle; a write that fails (a full disk) is an OSError about the destination."""
    out = folder / name
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    limit = archive.getinfo(name).file_size
    try:
        with archive.open(name) as src, open(out, "wb") as dst:
            written = 0
            while chunk := _read_member(src, name, source):
                written += len(chunk)
                if written > limit:
                    raise WorkspaceBundleError(f"{source}: {name} holds more than its stated size: refusing it")
                digest.update(chunk)
                dst.write(chunk)
    except OSError as exc:  # the destination: creating, writing or closing the file
        raise OSError(exc.errno, f"cannot unpack {name} into {folder.parent} ({exc.strerror}): free space "
                                 "on that disk or import into another folder") from None
    if digest.hexdigest() != expected_sha256:
        raise WorkspaceBundleError(f"{source}: {name} does not match its checksum: the bundle is damaged; "
                                   "export it again")


def import_workspace_bundle(source: str | os.PathLike, workspace: str | os.PathLike, *,
                            progress: Callable[[float, str], None] | None = None) -> Path:
    """Unpack the bundle ``source`` into ``workspace``, a folder that must be new or empty.

    Everything is checked, and the avatar and Subject are loaded, before the workspace appears; on
    any problem nothing is written.
    """
    source, workspace = Path(source), Path(workspace)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such bundle file")
    if not zipfile.is_zipfile(source):
        raise WorkspaceBundleError(f"{source} is not a workspace bundle (not a zip file): make one with "
                                   "`persona-studio export bundle`")
    if workspace.is_dir() and any(workspace.iterdir()):
        raise FileExistsError(f"{workspace} already holds files: import into a new (or empty) workspace folder")
    check_output_path(workspace, overwrite=True, folder=True)
    with zipfile.ZipFile(source) as archive:
        listing = _read_manifest(archive, source)
        with atomic_folder(workspace) as tmp:
            for i, (name, entry) in enumerate(sorted(listing.items())):
                _unpack(archive, name, str(entry.get("sha256")), tmp, source)
                if progress is not None:
                    progress((i + 1) / (len(listing) + 1), name)
            try:
                load_avatar(tmp / BUNDLE_DIR)
                Subject.load(tmp)
            except Exception as exc:  # untrusted input: any failure to load means the bundle cannot be used
                raise WorkspaceBundleError(f"{source}: the bundled avatar or subject cannot be opened ({exc}); "
                                           "export the bundle again") from None
    if progress is not None:
        progress(1.0, "done")
    return workspace
