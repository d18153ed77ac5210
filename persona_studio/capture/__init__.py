"""capture stage: photo intake, person detection (mask + whole-body landmarks), SMPL-X fit."""

from persona_studio.capture.detect import Detection, MediaPipeDetector, PersonDetector, PersonLandmarks
from persona_studio.capture.intake import MIN_PERSON_HEIGHT_PX, Photo, PhotoError, load_photo

__all__ = ["MIN_PERSON_HEIGHT_PX", "Detection", "MediaPipeDetector", "PersonDetector", "PersonLandmarks",
           "Photo", "PhotoError", "load_photo"]
