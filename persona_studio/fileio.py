"""Atomic file writes: every file the project writes goes through here.

A writer produces a temporary file next to the target and renames it over the target only once the
write has finished and been checked, so a crash, a kill, a full disk or a cancelled export never leaves
a half-written file in place of a good one. Temporary names carry the writing process's id
(``.NAME.<pid>-<random>.part...``): what a killed process left behind is recognised and swept away
by the next run of the same stage (:func:`sweep_stale_temp`), while another live process's work in
progress is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

# .NAME.<pid>-<mkstemp's 8 characters>.part[.ext] (files and folders being written) or .old (a folder's
# previous version during the swap); before pids were in the names: .NAME.<8 characters>.part[.ext]
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{8}\.(?:part(?:\..*)?|old)$")
UNTAGGED_TEMP_AGE_S = 3600.0  # temp names without a pid (older releases) count as stale after an hour


class DiskSpaceError(OSError):
    """Not enough free space for what a stage is about to write; the message says how much is needed."""


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    The temporary name keeps the target's extension (or ``suffix``) so that writers which choose the
    format from the extension (imageio, trimesh, numpy) still do the right thing. On any exception
    the temporary file is removed and the target is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target.stem), suffix=f".part{ext}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files: give the result the target's mode, or an ordinary file's.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target``.

    An existing ``target`` is kept until the new folder is in place, and restored if the swap fails;
    on any exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name), suffix=".part", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if not target.exists():
            os.replace(tmp, target)
            return
        old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name), suffix=".old", dir=target.parent))
        os.replace(target, old / "previous")
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old / "previous", target)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` through :func:`atomic_path`; returns the target."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``target`` atomically."""
    return write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as indented JSON (with a final newline) to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(obj, indent=indent) + "\n")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file or folder of this module's naming whose writer is gone: its
    process has ended (or, for names without a pid, it is over an hour old)."""
    match = _TEMP_NAME.match(path.name)
    if match is None:
        return False
    if match["pid"] is not None:
        pid = int(match["pid"])
        return pid != os.getpid() and not _process_alive(pid)
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > UNTAGGED_TEMP_AGE_S


def sweep_stale_temp(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the stale temporary files and folders (:func:`is_stale_temp`) directly inside ``folders``;
    returns what was removed. Folders that do not exist are skipped."""
    removed = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not is_stale_temp(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed


def check_writable(folder: str | os.PathLike, need_bytes: int, what: str) -> Path:
    """Make sure ``folder`` (created if missing) can take ``need_bytes`` more: a file can be created and
    written in it and the disk has that much free. Raises an ``OSError`` whose message says what to do,
    before a stage spends minutes on work it could not save."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=_temp_prefix("write-check"), suffix=".part", dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {what} in {folder} ({exc.strerror}): choose a folder you can "
                                   "write to, or free space on its disk") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise DiskSpaceError(errno.ENOSPC, f"{folder} has {free / 1024**2:.0f} MB free, and {what} needs about "
                                 f"{need_bytes / 1024**2:.0f} MB: free space on its disk or choose another folder")
    return folder


class VideoWriteError(OSError):
    """A video that could not be written completely; the message has ffmpeg's reason."""


def _encode_h264(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int) -> int:
    """Pipe [H, W, 3] uint8 ``frames`` through ffmpeg into the H.264 MP4 ``path``; returns the frame count.
    ffmpeg's exit status is checked: a failed write (a full disk: "Error writing trailer") raises."""
    import imageio_ffmpeg

    process, size, count = None, None, 0
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame)
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"video frames must be [H, W, 3] uint8, got {frame.dtype} {frame.shape}")
                if process is None:
                    size = frame.shape[:2]
                    process = subprocess.Popen(
                        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
                         "-pix_fmt", "rgb24", "-s", f"{size[1]}x{size[0]}", "-r", f"{fps:g}", "-i", "-", "-an",
                         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-f", "mp4", str(path)],
                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                elif frame.shape[:2] != size:
                    raise ValueError(f"video frame {count + 1} is {frame.shape[1]}x{frame.shape[0]}, the first "
                                     f"was {size[1]}x{size[0]}")
                try:
                    process.stdin.write(frame.tobytes())
                except BrokenPipeError:  # ffmpeg has stopped: its log says why
                    break
                count += 1
            if process is None:
                raise ValueError("a video needs at least one frame")
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            status = process.wait()
        except BaseException:
            if process is not None:
                process.kill()
                process.wait()
            raise
        if status != 0:
            log.seek(0)
            lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {status}"
            raise VideoWriteError(f"could not write the video {path.name} (ffmpeg: {reason})")
    return count


def _count_frames(path: Path) -> int:
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    except (RuntimeError, OSError) as exc:
        raise VideoWriteError(f"the video written to {path.name} cannot be read back ({exc})") from None


def write_video_atomic(target: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, crf: int = 10) -> int:
    """Encode ``frames`` ([H, W, 3] uint8) as an H.264 MP4 at ``target``, atomically: the target is replaced
    only once ffmpeg has exited cleanly and the new file reads back with every frame. Returns the count."""
    target = Path(target)
    with atomic_path(target) as tmp:
        count = _encode_h264(tmp, frames, fps, crf)
        found = _count_frames(tmp)
        if found != count:
            raise VideoWriteError(f"the video written to {target} holds {found} of its {count} frames: "
                                  "the disk may be full; nothing was replaced")
    return count


class DamagedFileError(ValueError):
    """A file of ours that cannot be read as what it should be; the message names it and says what to do."""


def read_json_object(path: str | os.PathLike, remedy: str) -> dict:
    """The JSON object in ``path``; a DamagedFileError naming the file and ``remedy`` (what to do) when it is
    truncated, not JSON or not an object. A missing file raises FileNotFoundError as usual."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"{path} is damaged or truncated ({exc}): {remedy}") from None
    if not isinstance(value, dict):
        raise DamagedFileError(f"{path} is damaged (it holds a JSON {type(value).__name__}, not an object): {remedy}")
    return value


class NpzMemberError(ValueError):
    """An array in an .npz archive that is refused: pickled objects, or a header that does not match the
    data the member holds."""


def read_npz_member(archive: zipfile.ZipFile, key: str) -> np.ndarray:
    """The array ``key`` of an open .npz ``archive``, read without unpickling anything and only after its
    header's shape and dtype are checked against the member's real size: a header that claims more (say
    983 GiB in a 1 kB file) is refused before anything is allocated, not after numpy tries to."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(member)
        except ValueError as exc:
            raise NpzMemberError(f"'{key}' is not a numpy array ({exc})") from None
        if dtype.hasobject:
            raise NpzMemberError(f"'{key}' holds pickled Python objects, which are never loaded (they can run code)")
        expected = math.prod(shape) * dtype.itemsize
        held = info.file_size - member.tell()
        if held != expected:
            raise NpzMemberError(f"'{key}' claims {'x'.join(map(str, shape)) or 'one'} {dtype} values "
                                 f"({expected / 1024**2:.1f} MB) but holds {held / 1024**2:.1f} MB: the file is damaged")
        data = member.read(expected)
    if len(data) != expected:
        raise NpzMemberError(f"'{key}' is truncated: the file is damaged")
    array = np.frombuffer(data, dtype=dtype).copy()
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


def npz_keys(archive: zipfile.ZipFile) -> list[str]:
    """The array names of an open .npz archive (members ``NAME.npy``)."""
    return sorted(name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy"))


def os_error_line(exc: OSError) -> str:
    """One line for a failed read or write: what failed, on which file, and what to do."""
    if exc.filename is None:
        return exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free space on that disk or choose another folder",
            errno.EROFS: "the disk is read-only: choose a folder you can write to",
            errno.EACCES: "choose a folder you can write to, or change its permissions",
            errno.ENOTDIR: "a file is in the way of a folder there: choose another path"}.get(exc.errno, "check the path")
    return f"{exc.filename}: {exc.strerror}; {hint}"
