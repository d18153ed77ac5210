"""The avatar as one rigged glTF 2.0 binary (GLB) that other tools animate: Gaussian splats in the
``KHR_gaussian_splatting`` extension, a skin over the 55 SMPL-X joints, the pose-driven deformation as
morph targets, and one animation per motion.

What the file holds (Y up, metres, the body facing +Z, as everywhere in the program):

- One mesh with one primitive of mode POINTS, a point per Gaussian: ``POSITION`` (the canonical means
  plus the mean pose-driven offset), ``COLOR_0`` (linear RGB and opacity, the fallback a viewer without
  the extension draws), and the extension's ``ROTATION`` (identity: our Gaussians are isotropic),
  ``SCALE`` (linear standard deviations), ``OPACITY`` (post-sigmoid) and ``SH_DEGREE_0_COEF_0``
  ((rgb - 0.5) / SH_C0, sRGB display-referred, as trained on photos). The extension is listed in
  ``extensionsUsed`` only, so a viewer without it still shows a skinned point cloud.
- A skin whose joints are a node per SMPL-X joint (named as SMPL-X names them), parented as SMPL-X's
  kinematic tree; the rest pose is the avatar's canonical pose (node translations = bone offsets, no
  rotation), so each inverse bind matrix is a translation by minus the rest joint. ``JOINTS_0`` /
  ``WEIGHTS_0`` are each Gaussian's four largest skinning weights, renormalised.
- Morph targets: the pose MLP's offsets (canonical space, before skinning, which is where glTF applies
  morph targets too) over the motions' poses, reduced by PCA to the K components that keep
  ``VARIANCE_KEPT`` of their variance; each component is scaled so that its weights stay within
  [-1, 1] (weights of order one, where morph-target sliders expect them). Facial expressions, when a motion has them, follow as the body
  model's expression directions.
- Per motion an animation: every joint's rotation, the pelvis's translation, and the mesh's morph
  weights, one key per motion frame (LINEAR).

Skinning plus morphs reproduce :meth:`Avatar.pose` up to the top-4 and PCA truncations;
:func:`export_gltf` measures both (``GltfFigures``) by evaluating the written document the way a glTF
client does (:func:`gltf_points`).
"""

from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from persona_studio import __version__
from persona_studio.avatar.avatar import Avatar, skin
from persona_studio.body import skeleton
from persona_studio.body.motion import Motion
from persona_studio.export import ExportError, check_output_path
from persona_studio.export.ply import SH_C0
from persona_studio.fileio import atomic_path

EXTENSION = "KHR_gaussian_splatting"
VARIANCE_KEPT = 0.95
MAX_PCA_SAMPLES = 300  # poses the components are fitted on (spread over all the motions' frames)
SKIN_INFLUENCES = 4
MAX_CHECKED_FRAMES = 240  # frames the export checks the file at (spread over all the animations)

# glTF enumerations
FLOAT, UNSIGNED_BYTE = 5126, 5121
ARRAY_BUFFER = 34962
POINTS = 0
GLB_MAGIC, GLB_JSON, GLB_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942
COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
DTYPES = {FLOAT: np.float32, UNSIGNED_BYTE: np.uint8}

Progress = Callable[[float, str], None]


@dataclass
class ReproductionError:
    """Position error of the exported points against :meth:`Avatar.pose`, millimetres."""
    mean_mm: float
    p99_mm: float
    max_mm: float


@dataclass
class GltfFigures:
    """What an export made and how exactly the file reproduces the avatar."""
    gaussians: int
    joints: int
    pose_targets: int  # K, the PCA morph targets
    expression_targets: int
    variance_kept: float  # share of the pose offsets' variance the K targets keep
    frames: dict[str, int]  # frames per animation
    top4_error: ReproductionError  # skinning truncation alone (exact offsets), over the fitted poses
    total_error: ReproductionError  # the file (top-4 skin + K targets) over the checked frames
    checked_frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    per_frame_p99_mm: list[float] = field(default_factory=list)


# -- the pieces ----------------------------------------------------------------------------------

def top_weights(weights: np.ndarray, k: int = SKIN_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """[N, J] skinning weights -> ([N, k] uint8 joint indices, [N, k] float32 weights summing to 1): the
    k largest per row, renormalised; a slot of weight 0 names joint 0 (glTF's convention for unused
    slots; the indices of non-zero weights are distinct)."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :k]  # [N, k]
    picked = np.take_along_axis(weights, order, axis=1).astype(np.float64)
    picked /= picked.sum(1, keepdims=True)
    picked = picked.astype(np.float32)
    picked[:, 0] += 1.0 - picked.sum(1)  # the float32 sum is 1 within its rounding (the validator checks it)
    order[picked == 0] = 0
    return order.astype(np.uint8), picked


def quaternions_xyzw(axis_angle: np.ndarray) -> np.ndarray:
    """[..., 3] axis-angle -> [..., 4] unit quaternions (x, y, z, w), glTF's order."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)  # [..., 1]
    half = 0.5 * angle
    # sin(half) / angle, with its limit 1/2 near 0
    scale = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-12), 0.5)
    quat = np.concatenate([axis_angle * scale, np.cos(half)], axis=-1)
    return (quat / np.linalg.norm(quat, axis=-1, keepdims=True)).astype(np.float32)


def continuous_quaternions(quats: np.ndarray) -> np.ndarray:
    """[F, J, 4] -> the same rotations with signs chosen so that each key is on the near side of the one
    before it (linear keys then interpolate the short way)."""
    out = quats.copy()
    for f in range(1, out.shape[0]):
        flip = (out[f] * out[f - 1]).sum(-1) < 0  # [J]
        out[f, flip] *= -1
    return out


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (COLOR_0 is linear in glTF)."""
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def bone_offsets(rest_joints: np.ndarray) -> np.ndarray:
    """[55, 3] rest joints -> [55, 3] each joint's translation from its parent (the root's from the origin)."""
    parents = np.array(skeleton.PARENTS)
    offsets = rest_joints.copy()
    offsets[1:] -= rest_joints[parents[1:]]
    return offsets.astype(np.float32)


def inverse_bind_matrices(rest_joints: np.ndarray) -> np.ndarray:
    """[55, 3] -> [55, 16] column-major 4x4 matrices: a translation by minus each rest joint."""
    matrices = np.tile(np.eye(4, dtype=np.float32), (rest_joints.shape[0], 1, 1))
    matrices[:, :3, 3] = -rest_joints
    return matrices.transpose(0, 2, 1).reshape(-1, 16)  # glTF stores matrices column by column


@dataclass
class PoseComponents:
    """PCA of pose-driven offsets over the deformable Gaussians."""
    mean: np.ndarray  # [N, 3] mean offset (folded into POSITION)
    components: np.ndarray  # [K, N, 3] the morph targets, each scaled so that |weight| <= 1
    variance_kept: float


def pose_offsets_of(avatar: Avatar, poses: np.ndarray, batch: int = 16) -> np.ndarray:
    """[F, 55, 3] full poses -> [F, N, 3] the avatar's pose-driven offsets (float32)."""
    out = np.empty((poses.shape[0], avatar.num_gaussians, 3), np.float32)
    with torch.no_grad():
        for start in range(0, poses.shape[0], batch):
            body = torch.as_tensor(poses[start:start + batch, skeleton.BODY].reshape(-1, 63))
            out[start:start + batch] = avatar.pose_offsets(body, fast=True).cpu().numpy()
    return out


def fit_pose_components(samples: np.ndarray, keep: float = VARIANCE_KEPT, chunk: int = 65536) -> PoseComponents:
    """[F, N, 3] offsets -> the mean and the fewest principal components keeping ``keep`` of the variance
    (unscaled; :func:`scale_to_unit_weights` bounds their weights once every frame is projected).

    Through the [F, F] Gram matrix, accumulated in float64 over column chunks: memory stays at the
    samples' own size however many Gaussians there are (3N columns, F rows)."""
    f, n, _ = samples.shape
    mean = samples.mean(0, dtype=np.float64).astype(np.float32)  # [N, 3]
    centred = (samples - mean).reshape(f, -1)  # [F, 3N] float32
    gram = np.zeros((f, f))
    for start in range(0, centred.shape[1], chunk):
        block = centred[:, start:start + chunk].astype(np.float64)
        gram += block @ block.T
    energy, vectors = np.linalg.eigh(gram)  # ascending
    energy, vectors = np.clip(energy[::-1], 0, None), vectors[:, ::-1]
    total = float(energy.sum())
    if total <= 0:  # no pose deformation (an avatar trained without it): no targets
        return PoseComponents(mean, np.zeros((0, n, 3), np.float32), 1.0)
    kept = np.cumsum(energy) / total
    k = min(int(np.searchsorted(kept, keep)) + 1, int((energy > 0).sum()))
    # principal directions: u_k^T X / sqrt(energy_k), unit length in the 3N-dimensional offset space
    weights = vectors[:, :k] / np.sqrt(energy[:k])  # [F, K]
    components = np.empty((k, centred.shape[1]), np.float32)
    for start in range(0, centred.shape[1], chunk):
        components[:, start:start + chunk] = weights.T @ centred[:, start:start + chunk].astype(np.float64)
    return PoseComponents(mean, components.reshape(k, n, 3), float(kept[k - 1]))


def project(offsets: np.ndarray, pca: PoseComponents) -> np.ndarray:
    """[F, N, 3] offsets -> [F, K] their morph weights on ``pca``'s components (least squares)."""
    k = pca.components.shape[0]
    if k == 0:
        return np.zeros((offsets.shape[0], 0), np.float32)
    basis = pca.components.reshape(k, -1)  # [K, 3N]
    gram = (basis @ basis.T).astype(np.float64)
    rhs = ((offsets - pca.mean).reshape(offsets.shape[0], -1) @ basis.T).astype(np.float64)  # [F, K]
    return np.linalg.solve(gram, rhs.T).T.astype(np.float32)


def scale_to_unit_weights(pca: PoseComponents, weights: list[np.ndarray]) -> tuple[PoseComponents, list[np.ndarray]]:
    """Scale each component by its largest |weight| over ``weights`` (a [F, K] array per motion) so that
    every weight lies in [-1, 1]; the product, and so the deformation, is unchanged."""
    k = pca.components.shape[0]
    if k == 0:
        return pca, weights
    peak = np.max(np.abs(np.concatenate(weights)), axis=0)  # [K]
    peak = np.where(peak > 1e-12, peak, 1.0).astype(np.float32)
    scaled = PoseComponents(pca.mean, pca.components * peak[:, None, None], pca.variance_kept)
    return scaled, [w / peak for w in weights]


def posed_expression(motion: Motion) -> np.ndarray:
    """[F, E] the expression coefficients :meth:`Avatar.pose` receives for ``motion`` (its keywords' width)."""
    return motion.pose_kwargs()["expression"].numpy()


# -- writing -------------------------------------------------------------------------------------

class _Binary:
    """The GLB's binary chunk with its bufferViews and accessors, built up as arrays are added."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, *, target: int | None = None, bounds: bool = False) -> int:
        """Append ``array`` ([count, components] or [count]) as a new bufferView and accessor; returns the
        accessor's index. ``bounds`` writes min/max (POSITION accessors and animation inputs need them)."""
        component = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UNSIGNED_BYTE}[array.dtype]
        data = np.ascontiguousarray(array).tobytes()
        padding = (-self.length) % 4
        self.parts.append(b"\0" * padding)
        self.length += padding
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.parts.append(data)
        self.length += len(data)
        self.views.append(view)
        count = array.shape[0]
        accessor = {"bufferView": len(self.views) - 1, "componentType": component, "count": count, "type": kind}
        if bounds:
            rows = array.reshape(count, -1)
            accessor["min"] = [float(v) for v in rows.min(0)]
            accessor["max"] = [float(v) for v in rows.max(0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def bytes(self) -> bytes:
        data = b"".join(self.parts)
        return data + b"\0" * ((-len(data)) % 4)


def glb_bytes(document: dict, binary: bytes) -> bytes:
    """A GLB container: the 12-byte header, the JSON chunk (space-padded), the BIN chunk (zero-padded)."""
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 4)
    binary += b"\0" * ((-len(binary)) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<III", GLB_MAGIC, 2, total) + struct.pack("<II", len(text), GLB_JSON) + text
            + struct.pack("<II", len(binary), GLB_BIN) + binary)


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """GLB bytes -> (the JSON document, the BIN chunk); raises ExportError on anything else."""
    if len(data) < 20:
        raise ExportError("not a GLB file: too short")
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or total != len(data):
        raise ExportError("not a glTF 2.0 binary (GLB) file, or a truncated one")
    length, kind = struct.unpack_from("<II", data, 12)
    if kind != GLB_JSON:
        raise ExportError("the GLB's first chunk is not JSON")
    document = json.loads(data[20:20 + length])
    offset = 20 + length
    binary = b""
    if offset + 8 <= len(data):
        blength, bkind = struct.unpack_from("<II", data, offset)
        if bkind == GLB_BIN:
            binary = data[offset + 8:offset + 8 + blength]
    return document, binary


def accessor_array(document: dict, binary: bytes, index: int) -> np.ndarray:
    """The accessor's values as [count, components] (or [count] for SCALAR), from a tightly packed
    bufferView (as :func:`avatar_gltf` writes them)."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    width = COMPONENTS[accessor["type"]]
    dtype = DTYPES[accessor["componentType"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    values = np.frombuffer(binary, dtype, accessor["count"] * width, start)
    return values.reshape(accessor["count"], width) if width > 1 else values


def avatar_gltf(avatar: Avatar, motions: dict[str, Motion], progress: Progress | None = None
                ) -> tuple[dict, bytes, dict]:
    """Build the glTF document and its binary for ``avatar`` with one animation per motion (name ->
    Motion); returns (document, binary, facts for the figures: pca, sampled poses, top-4 skin)."""
    report = progress or (lambda fraction, message: None)
    if not motions:
        raise ExportError("a glTF export needs at least one motion to animate")
    n = avatar.num_gaussians
    rest_joints = avatar.rest_joints.cpu().numpy().astype(np.float32)
    with torch.no_grad():
        canonical = avatar.canonical().cpu().numpy().astype(np.float32)
        scales = avatar.scales.cpu().numpy().astype(np.float32)
        colors = avatar.colors.clamp(0, 1).cpu().numpy().astype(np.float32)
    opacities = np.ones(n, np.float32)

    # The pose offsets: PCA fitted on every step-th frame of all the motions; those frames' weights come
    # from the offsets the fit used, the other frames' offsets are computed a batch at a time, projected
    # and dropped.
    all_poses = np.concatenate([m.poses for m in motions.values()])  # [F, 55, 3]
    total = all_poses.shape[0]
    step = max(1, int(np.ceil(total / MAX_PCA_SAMPLES)))
    sample_poses = all_poses[::step]
    report(0.05, f"pose offsets at {sample_poses.shape[0]} poses")
    sample_offsets = pose_offsets_of(avatar, sample_poses)
    pca = fit_pose_components(sample_offsets)
    report(0.35, f"{pca.components.shape[0]} morph targets keep {pca.variance_kept:.1%} of the pose offsets")
    weights = np.empty((total, pca.components.shape[0]), np.float32)  # [F, K]
    weights[::step] = project(sample_offsets, pca)
    others = np.flatnonzero(np.arange(total) % step)
    for start in range(0, len(others), 16):
        chunk = others[start:start + 16]
        weights[chunk] = project(pose_offsets_of(avatar, all_poses[chunk]), pca)
        report(0.35 + 0.3 * (start + len(chunk)) / len(others), f"morph weights of {start + len(chunk)} more frames")
    split = np.cumsum([m.num_frames for m in motions.values()])[:-1]
    pca, pose_weights = scale_to_unit_weights(pca, np.split(weights, split))
    expression_count = max((posed_expression(m).shape[1] for m in motions.values() if np.any(m.expression)),
                           default=0)
    expression_count = min(expression_count, avatar.expr_dirs.shape[2])
    joints4, weights4 = top_weights(avatar.skinning.cpu().numpy())

    binary = _Binary()
    base = canonical + pca.mean
    attributes = {
        "POSITION": binary.add(base, "VEC3", target=ARRAY_BUFFER, bounds=True),
        "COLOR_0": binary.add(np.concatenate([srgb_to_linear(colors), opacities[:, None]], 1), "VEC4",
                              target=ARRAY_BUFFER),
        "JOINTS_0": binary.add(joints4, "VEC4", target=ARRAY_BUFFER),
        "WEIGHTS_0": binary.add(weights4, "VEC4", target=ARRAY_BUFFER),
        f"{EXTENSION}:ROTATION": binary.add(np.tile(np.array([0, 0, 0, 1], np.float32), (n, 1)), "VEC4",
                                            target=ARRAY_BUFFER),
        f"{EXTENSION}:SCALE": binary.add(np.repeat(scales[:, None], 3, 1), "VEC3", target=ARRAY_BUFFER),
        f"{EXTENSION}:OPACITY": binary.add(opacities, "SCALAR", target=ARRAY_BUFFER),
        f"{EXTENSION}:SH_DEGREE_0_COEF_0": binary.add(((colors - 0.5) / SH_C0).astype(np.float32), "VEC3",
                                                      target=ARRAY_BUFFER),
    }
    expression_dirs = avatar.expr_dirs.cpu().numpy()[..., :expression_count].transpose(2, 0, 1)  # [E, N, 3]
    targets, target_names = [], []
    for k, direction in enumerate([*pca.components, *expression_dirs]):
        targets.append({"POSITION": binary.add(np.ascontiguousarray(direction, np.float32), "VEC3",
                                               target=ARRAY_BUFFER, bounds=True)})
        target_names.append(f"pose_pc{k:02d}" if k < pca.components.shape[0]
                            else f"expression{k - pca.components.shape[0]:02d}")
    primitive = {"attributes": attributes, "mode": POINTS,
                 "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                                            "projection": "perspective", "sortingMethod": "cameraDistance"}}}
    mesh = {"name": "avatar", "primitives": [primitive]}
    if targets:
        primitive["targets"] = targets
        mesh["weights"] = [0.0] * len(targets)
        mesh["extras"] = {"targetNames": target_names}

    # Nodes: 0 = the skinned mesh (a root, as glTF asks of skinned meshes), 1.. = the joints.
    joint_node = [1 + j for j in range(skeleton.NUM_JOINTS)]
    offsets = bone_offsets(rest_joints)
    nodes = [{"name": "avatar", "mesh": 0, "skin": 0}]
    for j, name in enumerate(skeleton.JOINT_NAMES):
        node = {"name": name, "translation": [float(v) for v in offsets[j]]}
        children = [joint_node[c] for c, p in enumerate(skeleton.PARENTS) if p == j]
        if children:
            node["children"] = children
        nodes.append(node)
    skin_entry = {"name": "smplx", "joints": joint_node, "skeleton": joint_node[0],
                  "inverseBindMatrices": binary.add(inverse_bind_matrices(rest_joints), "MAT4")}

    animations = []
    for (name, motion), morph in zip(motions.items(), pose_weights):
        times = binary.add(np.arange(motion.num_frames, dtype=np.float32) / np.float32(motion.fps), "SCALAR",
                           bounds=True)
        samplers, channels = [], []

        def channel(node: int, path: str, values: np.ndarray, kind: str) -> None:
            samplers.append({"input": times, "output": binary.add(values, kind), "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})

        rotations = continuous_quaternions(quaternions_xyzw(motion.poses))  # [F, 55, 4]
        for j in range(skeleton.NUM_JOINTS):
            channel(joint_node[j], "rotation", np.ascontiguousarray(rotations[:, j]), "VEC4")
        channel(joint_node[0], "translation", (motion.trans + offsets[0]).astype(np.float32), "VEC3")
        if targets:
            expression = np.zeros((motion.num_frames, expression_count), np.float32)
            posed = posed_expression(motion)
            width = min(expression_count, posed.shape[1])
            expression[:, :width] = posed[:, :width]
            channel(0, "weights", np.concatenate([morph, expression], 1).reshape(-1), "SCALAR")
        animations.append({"name": name, "samplers": samplers, "channels": channels,
                           "extras": {"fps": motion.fps, "frames": motion.num_frames}})

    document = {
        "asset": {"version": "2.0", "generator": f"PERSONA Studio {__version__}"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"name": "avatar", "nodes": [0, joint_node[0]]}],
        "nodes": nodes,
        "meshes": [mesh],
        "skins": [skin_entry],
        "animations": animations,
        "accessors": binary.accessors,
        "bufferViews": binary.views,
        "buffers": [{"byteLength": binary.length + (-binary.length) % 4}],
        "extras": {"persona_studio": {"identity": avatar.identity, "pose_targets": int(pca.components.shape[0]),
                                      "expression_targets": int(expression_count),
                                      "variance_kept": pca.variance_kept}},
    }
    facts = {"pca": pca, "sample_poses": sample_poses, "sample_offsets": sample_offsets, "joints4": joints4,
             "weights4": weights4,
             "expression_targets": expression_count}
    return document, binary.bytes(), facts


# -- evaluating a document as a client does ----------------------------------------------------------

def _rotation_matrices(quats: np.ndarray) -> np.ndarray:
    """[J, 4] (x, y, z, w) -> [J, 3, 3]."""
    x, y, z, w = quats.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def gltf_points(document: dict, binary: bytes, animation: int, key: int) -> np.ndarray:
    """[N, 3] world positions of the skinned, morphed POINTS primitive of mesh 0 at key ``key`` of
    animation ``animation``, computed from the document alone as the glTF spec defines it: node-local
    T * R * S, parents first; joint matrix = global(joint) * inverse bind; morphs, then skinning."""
    nodes = document["nodes"]
    locals_ = [{"translation": np.array(n.get("translation", [0, 0, 0]), np.float64),
                "rotation": np.array(n.get("rotation", [0, 0, 0, 1]), np.float64),
                "scale": np.array(n.get("scale", [1, 1, 1]), np.float64)} for n in nodes]
    mesh = document["meshes"][0]
    weights = np.array(mesh.get("weights", []), np.float64)
    anim = document["animations"][animation]
    for ch in anim["channels"]:
        sampler = anim["samplers"][ch["sampler"]]
        values = accessor_array(document, binary, sampler["output"])
        node, path = ch["target"]["node"], ch["target"]["path"]
        if path == "weights":
            per_key = values.reshape(-1, weights.shape[0])
            weights = per_key[key].astype(np.float64)
        else:
            locals_[node][path] = values[key].astype(np.float64)
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    world: dict[int, np.ndarray] = {}

    def global_of(i: int) -> np.ndarray:
        if i not in world:
            local = np.eye(4)
            local[:3, :3] = _rotation_matrices(locals_[i]["rotation"][None])[0] * locals_[i]["scale"]
            local[:3, 3] = locals_[i]["translation"]
            world[i] = global_of(parent[i]) @ local if i in parent else local
        return world[i]

    skin_entry = document["skins"][0]
    ibm = accessor_array(document, binary, skin_entry["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    joint_matrices = np.stack([global_of(j) for j in skin_entry["joints"]]) @ ibm  # [J, 4, 4]
    primitive = mesh["primitives"][0]
    points = accessor_array(document, binary, primitive["attributes"]["POSITION"]).astype(np.float64)
    for w, target in zip(weights, primitive.get("targets", [])):
        if w != 0:
            points = points + w * accessor_array(document, binary, target["POSITION"])
    joints = accessor_array(document, binary, primitive["attributes"]["JOINTS_0"]).astype(np.int64)
    influence = accessor_array(document, binary, primitive["attributes"]["WEIGHTS_0"]).astype(np.float64)
    blended = np.einsum("nk,nkrc->nrc", influence, joint_matrices[:, :3][joints])  # [N, 3, 4] (last row 0 0 0 1)
    return np.einsum("nrc,nc->nr", blended[..., :3], points) + blended[..., 3]


class ErrorTally:
    """Mean, p99 and max of distances seen batch by batch, without keeping them: a histogram of 0.01 mm
    bins up to 2 m (the p99 is exact to a bin; farther distances count in the last bin, the max is exact)."""
    BIN_MM, TOP_MM = 0.01, 2000.0

    def __init__(self) -> None:
        self.counts = np.zeros(int(self.TOP_MM / self.BIN_MM) + 1, np.int64)
        self.total, self.count, self.largest = 0.0, 0, 0.0

    def add(self, difference: np.ndarray) -> float:
        """Add [..., 3] differences in metres; returns this batch's p99 in mm."""
        distance = np.linalg.norm(difference.reshape(-1, 3), axis=1) * 1000.0
        bins = np.minimum((distance / self.BIN_MM).astype(np.int64), self.counts.shape[0] - 1)
        self.counts += np.bincount(bins, minlength=self.counts.shape[0])
        self.total += float(distance.sum())
        self.count += distance.shape[0]
        self.largest = max(self.largest, float(distance.max()))
        return round(float(np.percentile(distance, 99)), 3)

    def result(self) -> ReproductionError:
        if self.count == 0:
            return ReproductionError(0.0, 0.0, 0.0)
        p99_bin = int(np.searchsorted(np.cumsum(self.counts), 0.99 * self.count))
        return ReproductionError(round(self.total / self.count, 3), round((p99_bin + 0.5) * self.BIN_MM, 3),
                                 round(self.largest, 3))


def top4_error(avatar: Avatar, poses: np.ndarray, offsets: np.ndarray, joints4: np.ndarray, weights4: np.ndarray,
               batch: int = 16) -> ReproductionError:
    """The skinning truncation alone: [F, 55, 3] ``poses`` with their exact [F, N, 3] pose ``offsets``
    skinned with all weights vs the top four."""
    device = avatar.skinning.device
    truncated = torch.zeros_like(avatar.skinning)
    truncated.scatter_add_(1, torch.as_tensor(joints4.astype(np.int64), device=device),
                           torch.as_tensor(weights4, device=device))  # unused slots add 0
    tally = ErrorTally()
    with torch.no_grad():
        for start in range(0, poses.shape[0], batch):
            pose = torch.as_tensor(poses[start:start + batch].reshape(-1, 165), device=device)
            points = avatar.canonical()[None] + torch.as_tensor(offsets[start:start + batch], device=device)
            _, transforms = skeleton.forward_kinematics(pose, avatar.rest_joints)
            exact, _ = skin(points, transforms, avatar.skinning)
            approx, _ = skin(points, transforms, truncated)
            tally.add((exact - approx).cpu().numpy())
    return tally.result()


def measure_file(avatar: Avatar, document: dict, binary: bytes, motions: dict[str, Motion],
                 progress: Progress | None = None, max_frames: int | None = MAX_CHECKED_FRAMES
                 ) -> tuple[ReproductionError, list[float]]:
    """The written file against :meth:`Avatar.pose` at the animations' frames (every one, or an even spread
    of at most ``max_frames`` over all of them): (their error, each checked frame's p99 in mm)."""
    total = sum(m.num_frames for m in motions.values())
    step = 1 if max_frames is None else max(1, -(-total // max_frames))
    checked = {name: np.arange(0, m.num_frames, step) for name, m in motions.items()}
    count = sum(len(keys) for keys in checked.values())
    tally, per_frame = ErrorTally(), []
    for a, (name, motion) in enumerate(motions.items()):
        for start in range(0, len(checked[name]), 16):
            keys = checked[name][start:start + 16]
            with torch.no_grad():
                reference = avatar.pose(motion.pose_kwargs(keys), fast=True).means.cpu().numpy()
            for i, key in enumerate(keys):
                per_frame.append(tally.add(gltf_points(document, binary, a, int(key)) - reference[i]))
            if progress is not None:
                progress(len(per_frame) / count, f"checked {len(per_frame)}/{count} frames")
    return tally.result(), per_frame


def export_gltf(avatar: Avatar, target: str | os.PathLike, motions: dict[str, Motion], *, overwrite: bool = False,
                progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                measure: bool = True, checked_frames: int | None = MAX_CHECKED_FRAMES) -> tuple[Path, GltfFigures]:
    """Write ``avatar`` with an animation per motion (name -> Motion) as a GLB at ``target`` (atomic);
    returns the path and the figures (the reproduction errors measured on the document written, unless
    ``measure`` is False, when they are left at zero; ``checked_frames`` bounds the frames the file is checked
    at, None checks all). ``cancelled()`` returning True at a progress step
    raises InterruptedError; nothing is written then."""
    target = check_output_path(target, overwrite=overwrite)
    if target.suffix.lower() != ".glb":
        raise ExportError(f"{target.name}: a glTF export is written as a binary .glb file; give a name ending "
                          "in .glb")

    def report(fraction: float, message: str) -> None:
        if cancelled is not None and cancelled():
            raise InterruptedError("glTF export cancelled")
        if progress is not None:
            progress(fraction, message)
    started = time.monotonic()
    document, binary, facts = avatar_gltf(avatar, motions, lambda f, m: report(0.6 * f, m))
    data = glb_bytes(document, binary)
    seconds = time.monotonic() - started
    zero = ReproductionError(0.0, 0.0, 0.0)
    top4, total, per_frame = zero, zero, []
    if measure:
        report(0.6, "measuring the skinning truncation")
        top4 = top4_error(avatar, facts["sample_poses"], facts["sample_offsets"], facts["joints4"],
                          facts["weights4"])
        total, per_frame = measure_file(avatar, *read_glb(data), motions, lambda f, m: report(0.6 + 0.4 * f, m),
                                        checked_frames)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    if progress is not None:
        progress(1.0, f"wrote {target.name}")
    figures = GltfFigures(
        gaussians=avatar.num_gaussians, joints=skeleton.NUM_JOINTS,
        pose_targets=int(facts["pca"].components.shape[0]), expression_targets=int(facts["expression_targets"]),
        variance_kept=round(facts["pca"].variance_kept, 4), frames={k: m.num_frames for k, m in motions.items()},
        top4_error=top4, total_error=total, checked_frames=len(per_frame), bytes=len(data), seconds=round(seconds, 2), per_frame_p99_mm=per_frame)
    return target, figures
