"""Faces: YuNet finds them, SFace turns each into a 128-d identity vector.

Both models are OpenCV Zoo's int8 block-quantized files, converted once to float32
(``onnx_convert.fold_dequantize``) and run in onnxruntime. The pipeline per batch of frames:

1. Detection: each frame (downscaled so its long side is at most ``detect_side``) is padded
   bottom/right to a multiple of 32 and fed to YuNet as BGR float 0-255, NCHW. The three strides'
   outputs are decoded as OpenCV's ``FaceDetectorYN`` does, then NMS. Frames go one at a time:
   stacking same-size frames measured slower per frame on CPU (4.5 vs 3.8 ms at 640x360). Boxes
   of faces cut off by the frame edge may extend past it.
2. Alignment: YuNet's five landmarks are mapped onto the ArcFace 5-point template with a
   similarity transform; the 112x112 crop equals OpenCV's ``FaceRecognizerSF.alignCrop`` (within 1
   grey level).
3. Embedding: all crops of the batch go through SFace at once, as RGB 0-255 (the model normalises
   internally); vectors are L2-normalised, so a dot product is the cosine similarity.

Nothing is filtered for quality except faces smaller than ``min_face_px``; the measurements go
into each detection's ``details`` for later decisions:

- ``size``: the box's shorter side, pixels of the frame image.
- ``sharpness``: variance of the Laplacian of the aligned grey crop (blur gives low values).
- ``roll``: degrees the eye line is tilted (positive: clockwise in the image).
- ``yaw``: nose offset from the eyes' midpoint along the eye line, in eye distances
  (0 frontal, about +-0.5 in profile; the sign says which way).
- ``lm0_x``, ``lm0_y`` ... ``lm4_x``, ``lm4_y``: landmarks in frame-image pixels: the eye, eye,
  nose tip, mouth corner, mouth corner, image-left one first for each pair.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import cv2
import numpy as np

from tagger import families
from tagger.analyzers.family import BuildContext, Family
from tagger.analyzers.onnx_convert import converted_model
from tagger.analyzers.runtime import Log, RuntimeOptions, create_session
from tagger.detections import FACE_KIND, Detection

if TYPE_CHECKING:
    from tagger.media.frames import Frame

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
"""Where the eyes, nose tip and mouth corners land in the 112x112 crop SFace was trained on."""

CROP_SIZE = 112
"""Side of the aligned crop, pixels."""

STRIDES = (8, 16, 32)
"""YuNet's output strides; inputs are padded to a multiple of the largest."""

YUNET_DYNAMIC = {"input": (0, 2, 3)}
"""YuNet accepts any batch and any (padded) height and width once converted."""

SFACE_DYNAMIC = {"data": (0,)}
"""SFace accepts any batch of 112x112 crops once converted."""

DEFAULT_OPTIONS = RuntimeOptions()
"""Sessions on the best provider, threads chosen by the runtime module."""


@dataclass(frozen=True)
class DetectedFace:
    """One detected face before embedding: box (x, y, w, h), score and 5 landmarks, in pixels."""

    frame: int
    box: np.ndarray
    score: float
    landmarks: np.ndarray


class FaceAnalyzer(Family):
    """Detects, aligns and embeds faces (see the module docstring for the ``details`` keys).

    Arguments:
        detector: the converted (float32) YuNet model file.
        embedder: the converted (float32) SFace model file.
        options, log: how sessions are made and where their choices are logged.
        score_threshold: minimum detection score, 0-1.
        nms_threshold: boxes overlapping a better one by more IoU than this are dropped.
        min_face_px: faces whose box's shorter side is smaller (frame pixels) are dropped.
        detect_side: frames with a longer side are downscaled for detection; 0 = never.
        embed_batch: most crops per SFace run.

    Raises:
        ValueError: an argument is out of range (the message names it).
    """

    name: ClassVar[str] = families.FACES
    models: ClassVar[tuple[str, ...]] = ("yunet", "sface")
    code_version: ClassVar[str] = "1"
    SCORE_THRESHOLD: ClassVar[float] = 0.6
    """Default minimum score; OpenCV's default is 0.9, which misses small and turned faces."""
    NMS_THRESHOLD: ClassVar[float] = 0.3
    """Default NMS IoU, as OpenCV's ``FaceDetectorYN``."""
    MIN_FACE_PX: ClassVar[int] = 24
    """Default minimum face size; smaller faces embed poorly."""
    DETECT_SIDE: ClassVar[int] = 640
    """Default detection resolution (long side); cost grows with the pixel count."""
    EMBED_BATCH: ClassVar[int] = 32
    """Default SFace batch; batching saves little on CPU but bounds memory."""

    def __init__(self, detector: Path, embedder: Path, options: RuntimeOptions = DEFAULT_OPTIONS,
                 log: Log = lambda *_: None, *, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD, min_face_px: int = MIN_FACE_PX,
                 detect_side: int = DETECT_SIDE, embed_batch: int = EMBED_BATCH) -> None:
        _check_range("score_threshold", score_threshold, 0.0, 1.0)
        _check_range("nms_threshold", nms_threshold, 0.0, 1.0)
        _check_range("min_face_px", min_face_px, 0, 10_000)
        if detect_side and detect_side < 32:
            raise ValueError(f"detect_side must be 0 (no limit) or at least 32 pixels, got {detect_side}")
        _check_range("embed_batch", embed_batch, 1, 4096)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.min_face_px = min_face_px
        self.detect_side = detect_side
        self.embed_batch = embed_batch
        self._detector = create_session(detector, "yunet", options, log)
        self._embedder = create_session(embedder, "sface", options, log)
        self._detector_outputs = [output.name for output in self._detector.get_outputs()]

    @classmethod
    def from_manifest(cls, data_dir: Path, options: RuntimeOptions = DEFAULT_OPTIONS,
                      log: Log = lambda *_: None, user_dirs: Sequence[Path] = (),
                      allow_download: bool = False, **settings: Any) -> FaceAnalyzer:
        """Resolve ``yunet`` and ``sface`` through the manifest, convert them, and build.

        Converted files are cached in ``<data_dir>/models/converted``. ``settings`` are the
        keyword arguments of the constructor (thresholds, sizes).

        Raises:
            ModelError: a model file is missing or has the wrong hash.
        """
        from tagger.analyzers.models import load_manifest, resolve_file

        manifest = load_manifest()
        paths = []
        for model_id, dynamic in (("yunet", YUNET_DYNAMIC), ("sface", SFACE_DYNAMIC)):
            spec = manifest[model_id]
            found = resolve_file(spec.files[0], user_dirs=user_dirs, download_dir=data_dir / "models",
                                 allow_download=allow_download, log=log)
            log("debug", f"{model_id}: {found.path} ({found.origin}, {found.sha256[:12]})")
            paths.append(converted_model(found.path, data_dir / "models" / "converted",
                                         spec.convert, dynamic) if spec.convert else found.path)
        return cls(paths[0], paths[1], options, log, **settings)

    @classmethod
    def build(cls, context: BuildContext) -> FaceAnalyzer:
        return cls.from_manifest(context.data_dir, context.runtime, context.log, user_dirs=context.user_dirs,
                                 allow_download=context.allow_download)

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        """Faces in ``batch``: kind and label ``face``, with embedding and ``details``."""
        faces = [face for index, frame in enumerate(batch) for face in self.detect(frame.image, index)]
        if not faces:
            return []
        crops = np.stack([align_face(batch[face.frame].image, face.landmarks) for face in faces])
        embeddings = self.embed(crops)
        return [Detection(time=batch[face.frame].time, kind=FACE_KIND, label="face", score=face.score,
                          box=tuple(float(v) for v in face.box),  # type: ignore[arg-type]
                          embedding=embedding, details=face_details(face.box, face.landmarks, crop))
                for face, crop, embedding in zip(faces, crops, embeddings)]

    def detect(self, image: np.ndarray, frame: int = 0) -> list[DetectedFace]:
        """Faces in one BGR image, best first, in that image's pixels."""
        scale = _detect_scale(image.shape[1], image.shape[0], self.detect_side)
        small = image if scale == 1.0 else cv2.resize(
            image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
            interpolation=cv2.INTER_AREA)
        values = self._detector.run(self._detector_outputs, {"input": _detector_input(small)})
        outputs = dict(zip(self._detector_outputs, values))
        rows = decode_yunet(outputs, small.shape[1], self.score_threshold)
        keep = _nms(rows, self.score_threshold, self.nms_threshold)
        faces = []
        for row in rows[keep]:
            box, landmarks = row[:4] / scale, row[4:14].reshape(5, 2) / scale
            if min(box[2], box[3]) >= self.min_face_px:
                faces.append(DetectedFace(frame, box, float(row[14]), landmarks))
        return faces

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised float32 embeddings (N, 128) of aligned BGR 112x112 crops (N, 112, 112, 3)."""
        parts = [self._embed_chunk(chunk) for chunk in _chunks(crops, self.embed_batch)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def _embed_chunk(self, crops: np.ndarray) -> np.ndarray:
        """Raw SFace output for one chunk: RGB, 0-255, NCHW float32."""
        data = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        return self._embedder.run(None, {"data": data})[0]


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _detect_scale(width: int, height: int, detect_side: int) -> float:
    """Factor that brings the long side down to ``detect_side`` (1.0: no change)."""
    if not detect_side or max(width, height) <= detect_side:
        return 1.0
    return detect_side / max(width, height)


def _detector_input(image: np.ndarray) -> np.ndarray:
    """(1, 3, H', W') float32: BGR 0-255, padded with zeros bottom/right to a multiple of 32."""
    height, width = image.shape[:2]
    padded_h, padded_w = -(-height // STRIDES[-1]) * STRIDES[-1], -(-width // STRIDES[-1]) * STRIDES[-1]
    data = np.zeros((1, 3, padded_h, padded_w), np.float32)
    data[0, :, :height, :width] = image.transpose(2, 0, 1)
    return data


def decode_yunet(outputs: Mapping[str, np.ndarray], width: int, score_threshold: float) -> np.ndarray:
    """YuNet's raw outputs (first image of the batch) as rows of 15 floats, above the threshold.

    Arguments:
        outputs: ``cls_<stride>``, ``obj_<stride>``, ``bbox_<stride>``, ``kps_<stride>`` by name.
        width: the unpadded input's width (the padded width sets the grid's columns).
        score_threshold: rows scoring at most this are left out.

    Returns:
        (N, 15): x, y, w, h, five landmarks (x, y), score; in pixels of the input. Per stride s,
        score = sqrt(cls * obj), centre = (cell + offset) * s, size = exp(value) * s, landmarks =
        (cell + offset) * s, as OpenCV's ``FaceDetectorYN`` decodes them.
    """
    padded_w = -(-width // STRIDES[-1]) * STRIDES[-1]
    rows = []
    for stride in STRIDES:
        cls, obj, bbox, kps = (outputs[f"{part}_{stride}"][0] for part in ("cls", "obj", "bbox", "kps"))
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        chosen = np.nonzero(score > score_threshold)[0]
        cols = padded_w // stride
        cells = np.stack([chosen % cols, chosen // cols], axis=1).astype(np.float32)
        centre = (cells + bbox[chosen, :2]) * stride
        size = np.exp(bbox[chosen, 2:4]) * stride
        marks = (np.tile(cells, 5) + kps[chosen]) * stride
        rows.append(np.concatenate([centre - size / 2, size, marks, score[chosen, None]], axis=1))
    return np.concatenate(rows).astype(np.float32)


def _nms(rows: np.ndarray, score_threshold: float, nms_threshold: float) -> np.ndarray:
    """Indices of the rows kept by OpenCV's NMS, best first."""
    if not len(rows):
        return np.zeros(0, np.int64)
    keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), score_threshold, nms_threshold)
    return np.asarray(keep, np.int64).reshape(-1)


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 BGR crop with ``landmarks`` (5, 2) moved onto the ArcFace template."""
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    return cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) from source to target.

    Umeyama's closed form, as OpenCV's ``alignCrop`` and insightface's ``norm_crop`` compute it.
    ``cv2.estimateAffinePartial2D`` is not used: its robust fits (RANSAC, LMEDS) drop landmarks
    as outliers on turned faces and gave crops up to 240 grey levels off ``alignCrop``'s.
    """
    source, target = source.astype(np.float64), target.astype(np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1
    rotation = u @ reflection @ vt
    variance = centred_source.var(axis=0).sum()
    scale = float(np.trace(np.diag(singular) @ reflection) / variance) if variance > 0 else 1.0
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


def face_details(box: np.ndarray, landmarks: np.ndarray, crop: np.ndarray) -> dict[str, float]:
    """The quality measurements of one face (keys in the module docstring)."""
    eye_a, eye_b, nose = landmarks[0], landmarks[1], landmarks[2]
    eye_vector = eye_b - eye_a
    eye_distance = float(np.hypot(*eye_vector)) or 1.0
    along = float(np.dot(nose - (eye_a + eye_b) / 2, eye_vector)) / eye_distance**2
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    details = {
        "size": float(min(box[2], box[3])),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "roll": float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0]))),
        "yaw": along,
    }
    for index, (x, y) in enumerate(landmarks):
        details[f"lm{index}_x"], details[f"lm{index}_y"] = float(x), float(y)
    return details


def _chunks(items: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
