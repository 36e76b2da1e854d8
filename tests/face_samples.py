"""Real face samples for the face tests: the largest face of a shared photo, after a mild OpenCV
augmentation (rotation, scale, brightness, JPEG re-encoding), as one person looks in successive
frames of a video."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from tagger.analyzers.faces import FaceAnalyzer, align_face, face_details
from tagger.detections import Detection

Augment = Callable[[np.ndarray], np.ndarray]


def rotate(degrees: float, scale: float = 1.0) -> Augment:
    def apply(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
        return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return apply


def jpeg(quality: int) -> Augment:
    def apply(image: np.ndarray) -> np.ndarray:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    return apply


VARIANTS: dict[str, Augment] = {
    "orig": lambda image: image,
    "rot+8": rotate(8),
    "small": lambda image: cv2.resize(image, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
    "rot-8": rotate(-8, 1.1),
    "dark": lambda image: cv2.convertScaleAbs(image, alpha=0.7, beta=-10),
    "jpeg30": jpeg(30),
}
"""The augmentations, in order."""


def largest_face(analyzer: FaceAnalyzer, image: np.ndarray) -> Detection:
    """The largest face of ``image`` as the faces analyzer reports it (time 0)."""
    faces = analyzer.detect(image)
    assert faces, "no face found"
    face = max(faces, key=lambda f: float(f.box[2] * f.box[3]))
    crop = align_face(image, face.landmarks)
    measured = face_details(face.box, face.landmarks, crop)
    return Detection(time=0.0, kind="face", label="face", score=float(face.score),
                     box=tuple(float(v) for v in face.box),  # type: ignore[arg-type]
                     embedding=analyzer.embed(crop[None])[0],
                     details={key: measured[key] for key in ("size", "sharpness", "yaw")})
