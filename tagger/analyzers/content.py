"""Content detection with NudeNet 320n (a YOLOv8n with 18 body/exposure classes, faces included).

The model runs straight in ONNX Runtime (through ``create_session``, so on the best provider),
with every frame of a batch letterboxed to 320x320 and run as one input: the graph has a dynamic
batch dimension. NudeNet's own ``NudeDetector`` ignores its ``providers`` argument and decodes
anchors in a Python loop; here decoding is vectorised in numpy.

Preprocessing is NudeNet's, so results equal ``NudeDetector.detect`` (checked in
``tests/test_content.py``): pad bottom/right to a square with black, resize to 320 (bilinear),
scale to 0-1, **BGR** channel order. (NudeNet converts RGBA->BGR on a 3-channel image, which swaps
R and B, and then ``blobFromImage(swapRB=True)`` swaps them back: the network is fed BGR.)

Output ``[B, 22, N]`` per anchor: cx, cy, w, h in input pixels, then 18 class scores (no
objectness). Each anchor takes its best class; anchors under ``score_floor`` are dropped, then
non-maximum suppression. The floor is low on purpose: decisions apply the real thresholds later,
from the stored detections.

NMS is class-agnostic by default, as NudeNet's: on real face photos, per-class NMS
(``per_class_nms=True``, ``cv2.dnn.NMSBoxesBatched``) kept a second, weaker box of the other
gender on the same face (FACE_MALE 0.43 under FACE_FEMALE 0.64 on the same face, 3 of 25 photos),
which a later threshold would turn into a wrong tag. Body-part classes rarely overlap by more than
``NMS_IOU``, so little is lost.

Differences from ``NudeDetector.detect``: boxes stay floats (NudeNet truncates them to ints), and
are clipped on both edges (NudeNet moves a box crossing the left/top edge inside the image without
shortening it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from tagger import families
from tagger.analyzers.family import BuildContext, Family
from tagger.analyzers.models import load_manifest, resolve_file
from tagger.analyzers.runtime import Log, RuntimeOptions, create_session
from tagger.decide.rules import TagRule
from tagger.detections import CONTENT_KIND, Detection
from tagger.media.frames import Frame

MODEL_ID = "nudenet_320n"
"""The manifest entry of the model."""

LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""The 18 class names in the model's output order (``__labels`` in nudenet/nudenet.py, 3.4.2)."""

EXPLICIT_LABELS: frozenset[str] = frozenset({
    "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})
"""Exposed classes that are what users search for: scene tags and markers (``TagRule``'s
defaults: a frame counts at 0.5, the scene is tagged at 2 % or 20 s)."""

BODY_LABELS: frozenset[str] = frozenset({
    "MALE_BREAST_EXPOSED", "FEET_EXPOSED", "ARMPITS_EXPOSED", "BELLY_EXPOSED",
})
"""Exposed but everyday classes (a shirtless man, bare feet): a scene tag only when they are a
large part of the video, never markers (they would flood the marker list of most scenes)."""

BODY_THRESHOLD = 0.6
"""Frame score for everyday body classes: higher, since a false tag here is pure noise."""

BODY_MIN_SHARE = 0.25
"""Everyday body classes tag the scene only when they are seen in a quarter of it."""


def _explicit_rule(label: str) -> TagRule:
    """Scene tag and markers at the explicit bar."""
    return TagRule(label)


def _body_rule(label: str) -> TagRule:
    """Scene tag only, at a higher score and a large share of the video."""
    return TagRule(label, threshold=BODY_THRESHOLD, scene_min_share=BODY_MIN_SHARE,
                   scene_min_seconds=None, marker=False)


def _off_rule(label: str) -> TagRule:
    """Disabled: covered classes fire on any clothed person, and faces are the face pipeline's
    business. Kept with a readable name so a user can turn one on with a single override."""
    return TagRule(label, threshold=BODY_THRESHOLD, scene_min_share=BODY_MIN_SHARE,
                   scene_min_seconds=None, marker=False, enabled=False)


def default_rules() -> dict[str, TagRule]:
    """The shipped rule for every NudeNet 320n class, keyed by label.

    Explicit exposed classes: scene tag and markers. Everyday exposed classes (male breast,
    feet, armpits, belly): scene tag only, higher bar. Covered classes and faces: disabled.
    """
    rules: dict[str, TagRule] = {}
    for label in LABELS:
        if label in EXPLICIT_LABELS:
            rules[label] = _explicit_rule(label)
        elif label in BODY_LABELS:
            rules[label] = _body_rule(label)
        else:
            rules[label] = _off_rule(label)
    return rules

INPUT_SIZE = 320
"""Side of the square network input (the 320n model was trained at 320)."""

SCORE_FLOOR = 0.25
"""Lowest class score kept (NudeNet's own cut-off); real thresholds are applied by decisions."""

NMS_IOU = 0.45
"""IoU above which a lower-scoring box of the same class is suppressed (NudeNet's value)."""

MAX_BATCH = 32
"""Frames per network run; larger batches are split (memory: 1.2 MB of input per frame)."""


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """``image`` (BGR uint8) as NudeNet's network input, and the input-to-image scale.

    The image is padded bottom/right with black to a square, resized to ``size`` x ``size``
    (bilinear, as ``cv2.dnn.blobFromImage``) and scaled to 0-1, channels first, BGR.

    Returns:
        (float32 array [3, size, size], image pixels per input pixel).
    """
    height, width = image.shape[:2]
    side = max(height, width)
    square = cv2.copyMakeBorder(image, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT,
                                value=(0, 0, 0))
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
    blob = resized.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    return blob, side / size


def decode(output: np.ndarray, scale: float, width: int, height: int, *,
           score_floor: float = SCORE_FLOOR, nms_iou: float = NMS_IOU, per_class_nms: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores and class ids of one image from its ``[22, N]`` network output.

    Arguments:
        output: per anchor cx, cy, w, h (input pixels) and 18 class scores.
        scale: image pixels per input pixel (from ``letterbox``).
        width, height: the image's size, for clipping.
        score_floor: lowest best-class score kept.
        nms_iou: non-maximum suppression threshold.
        per_class_nms: suppress only boxes of the same class (default: any class, as NudeNet).

    Returns:
        (boxes [K, 4] as x, y, w, h in image pixels, scores [K], class ids [K]), best first.
    """
    class_scores = output[4:]
    class_ids = class_scores.argmax(axis=0)
    scores = class_scores[class_ids, np.arange(class_scores.shape[1])]
    keep = scores >= score_floor
    if not keep.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes = _centred_to_xywh(output[:4, keep].T * scale, width, height)
    scores, class_ids = scores[keep], class_ids[keep]
    if per_class_nms:
        picked = cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores.tolist(), class_ids.tolist(),
                                         score_floor, nms_iou)
    else:
        picked = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), score_floor, nms_iou)
    picked = np.asarray(picked, dtype=np.int64).reshape(-1)
    picked = picked[np.argsort(-scores[picked], kind="stable")]
    return boxes[picked], scores[picked], class_ids[picked]


def _centred_to_xywh(centred: np.ndarray, width: int, height: int) -> np.ndarray:
    """(cx, cy, w, h) rows to (x, y, w, h) rows clipped to a ``width`` x ``height`` image."""
    half = centred[:, 2:4] / 2
    x0 = np.clip(centred[:, 0] - half[:, 0], 0, width)
    y0 = np.clip(centred[:, 1] - half[:, 1], 0, height)
    x1 = np.clip(centred[:, 0] + half[:, 0], 0, width)
    y1 = np.clip(centred[:, 1] + half[:, 1], 0, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)


class ContentAnalyzer(Family):
    """NudeNet 320n on batches of frames: ``Detection(kind="content", label=<class name>)``.

    ``details`` is not set; ``box`` is (x, y, w, h) in pixels of the frame image. The content
    family: its detections become scene tags and markers under ``default_rules``.
    """

    name: ClassVar[str] = families.CONTENT
    models: ClassVar[tuple[str, ...]] = (MODEL_ID,)
    code_version: ClassVar[str] = "1"

    def __init__(self, session: object, *, score_floor: float = SCORE_FLOOR,
                 nms_iou: float = NMS_IOU, per_class_nms: bool = False,
                 max_batch: int = MAX_BATCH) -> None:
        """Wrap an ONNX Runtime session of the 320n model (see ``decode`` for the settings).

        Raises:
            ValueError: a threshold outside 0-1, or ``max_batch`` < 1.
        """
        for arg, value in (("score_floor", score_floor), ("nms_iou", nms_iou)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{arg} must be between 0 and 1, got {value}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._session = session
        self._input = session.get_inputs()[0].name  # type: ignore[attr-defined]
        self.score_floor = score_floor
        self.nms_iou = nms_iou
        self.per_class_nms = per_class_nms
        self.max_batch = max_batch

    @property
    def session(self) -> object:
        """The ONNX Runtime session; analyzers with other settings may share it."""
        return self._session

    @classmethod
    def default_rules(cls) -> dict[str, TagRule]:
        return default_rules()

    @classmethod
    def build(cls, context: BuildContext) -> ContentAnalyzer:
        resolved = context.resolve(MODEL_ID)
        return cls(create_session(resolved.path, MODEL_ID, context.runtime, context.log))

    @classmethod
    def from_manifest(cls, options: RuntimeOptions | None = None, log: Log = lambda *_: None,
                      user_dirs: Sequence[Path] = (), download_dir: Path | None = None,
                      allow_download: bool = False, **settings: float | bool) -> ContentAnalyzer:
        """The analyzer with the model file resolved through the manifest (``nudenet_320n``).

        Arguments:
            options, log: for ``create_session``.
            user_dirs, download_dir, allow_download: where the file may come from (see
                ``tagger.analyzers.models.resolve_file``).
            settings: ``score_floor``, ``nms_iou``, ``per_class_nms``, ``max_batch``.

        Raises:
            ModelError: the model file cannot be found or is corrupt.
        """
        spec = load_manifest()[MODEL_ID]
        resolved = resolve_file(spec.files[0], user_dirs=user_dirs, download_dir=download_dir,
                                allow_download=allow_download, log=log)
        session = create_session(resolved.path, MODEL_ID, options or RuntimeOptions(), log)
        return cls(session, **settings)  # type: ignore[arg-type]

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        """Content detections of every frame of ``batch``, in frame order, best first per frame."""
        found: list[Detection] = []
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start : start + self.max_batch]
            per_image = self.detect([frame.image for frame in chunk])
            for frame, results in zip(chunk, per_image):
                found.extend(_to_detection(frame.time, *result) for result in results)
        return found

    def detect(self, images: Sequence[np.ndarray]) -> list[list[tuple[str, float, tuple[float, ...]]]]:
        """(label, score, box) per image, in one network run; boxes are (x, y, w, h) pixels."""
        if not images:
            return []
        inputs = np.empty((len(images), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        scales = []
        for slot, image in enumerate(images):
            inputs[slot], scale = letterbox(image)
            scales.append(scale)
        outputs = self._session.run(None, {self._input: inputs})[0]  # type: ignore[attr-defined]
        return [self._results(output, scale, image.shape)
                for output, scale, image in zip(outputs, scales, images)]

    def _results(self, output: np.ndarray, scale: float, shape: tuple[int, ...]
                 ) -> list[tuple[str, float, tuple[float, ...]]]:
        """Decoded (label, score, box) of one image."""
        boxes, scores, ids = decode(output, scale, shape[1], shape[0],
                                    score_floor=self.score_floor, nms_iou=self.nms_iou,
                                    per_class_nms=self.per_class_nms)
        return [(LABELS[int(i)], float(s), tuple(float(v) for v in b))
                for b, s, i in zip(boxes, scores, ids)]


def _to_detection(time: float, label: str, score: float, box: tuple[float, ...]) -> Detection:
    """One content detection."""
    return Detection(time=time, kind=CONTENT_KIND, label=label, score=score,
                     box=(box[0], box[1], box[2], box[3]))


__all__ = ["BODY_LABELS", "EXPLICIT_LABELS", "LABELS", "MODEL_ID", "ContentAnalyzer", "decode",
           "default_rules", "letterbox"]
