"""On-screen text (studio watermarks) read with PP-OCRv4, gated because OCR is expensive.

Studio watermarks are small, often semi-transparent, sit in a corner and stay for long spans, so
reading a few frames is enough, and only their corners:

1. **Which frames** (``OcrGate``): the first sample, every sample that starts a shot, and
   otherwise one sample in ``every_nth`` (counted from the last frame read, so a shot does not
   cause two reads in a row). The default, 15, is one read per 30 s at 2-s sampling.
2. **Where**: the four corner regions (``corner_size``, default 35 % of the width x 20 % of the
   height), enlarged ``corner_upscale`` times, all corners of all chosen frames of a batch in one
   run of the text *detector*. The recogniser runs only on the boxes the detector found, so a
   frame without text costs one small detector run. With ``full_frame=True`` the detector looks
   at whole frames (not enlarged) instead.
3. **What is kept**: texts of at least ``min_length`` characters read with confidence at least
   ``min_score``.

Engine: the PP-OCRv4 det/rec ONNX files shipped in ``rapidocr_onnxruntime`` (manifest entry
``ppocr_v4``), run through our own ``create_session``, with RapidOCR's pre/post-processing
(``DetPreProcess``, ``DBPostProcess``, ``CTCLabelDecode``). The ``RapidOCR`` class itself is not
used: it builds its own ``InferenceSession`` (CPU, or CUDA/DirectML by flag) from a path and cannot
take a session, so it would bypass provider choice and thread settings; it also scores one image
per detector run, where the corners here go in one batch. Its settings that matter are kept:
``limit_type='max'`` (its default ``'min'`` blows small crops up to ~736x2600), no angle
classifier (watermarks are upright), DB thresholds 0.3/0.5, unclip 1.6, dilation on.

Detections: ``Detection(kind="text", label=<text read>, score=<recognition confidence>, box=(x, y,
w, h) in frame pixels, details={"corner": 0-3 or -1})``; corners are numbered as ``CORNERS``, and
-1 means the box is not inside one corner region (full-frame mode only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from tagger import families
from tagger.analyzers.family import BuildContext, Family
from tagger.analyzers.models import load_manifest, resolve_file
from tagger.analyzers.runtime import Log, RuntimeOptions, create_session
from tagger.detections import TEXT_KIND, TEXT_SCAN_KIND, Detection
from tagger.media.frames import Frame

MODEL_ID = "ppocr_v4"
"""The manifest entry of the OCR models (det, rec and the unused angle classifier)."""

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
"""Corner numbers used in ``details["corner"]``: the index into this tuple."""

CORNER_SIZE = (0.35, 0.20)
"""Corner region as fractions of the frame's (width, height)."""

EVERY_NTH = 15
"""Read one sample in this many (besides shot starts): about every 30 s at 2-s sampling."""

MIN_SCORE = 0.5
"""Lowest recognition confidence kept."""

MIN_LENGTH = 2
"""Fewest characters (spaces not counted) a kept text has."""

DET_LIMIT_SIDE = 960
"""The detector input's long side is cut to this ('max' mode); frames at 640 keep their size."""

DET_SETTINGS: dict[str, Any] = {"thresh": 0.3, "box_thresh": 0.5, "max_candidates": 1000,
                                "unclip_ratio": 1.6, "use_dilation": True, "score_mode": "fast"}
"""RapidOCR 1.4.4's DB post-processing defaults (config.yaml)."""

CORNER_UPSCALE = 1.5
"""Corner crops are enlarged this much for the detector. 50 %-opaque white text 15-18 px high on
13 real and synthetic backgrounds x 4 corners: found and read 83 % of the time at 1x, 93 % at
1.5x, 94 % at 2x; detector time per corner 1x : 1.6x : 2.9x."""

REC_HEIGHT = 48
"""Height of recogniser input lines (PP-OCRv4 rec)."""

REC_MIN_WIDTH = 320
"""Narrowest recogniser input; shorter lines are padded (RapidOCR's ``rec_img_shape``)."""

REC_BATCH = 8
"""Text lines per recogniser run (sorted by width first, so padding stays small)."""


MODEL_FILES = ("ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx")
"""The files of ``ppocr_v4`` that are used: detector and recogniser (no angle classifier)."""

SCAN_KIND = TEXT_SCAN_KIND
"""Detection kind marking a frame the OCR examined (label empty): the times text could be seen."""


@dataclass(frozen=True)
class TextRead:
    """One line of text read in an image: ``box`` is (x, y, w, h) in the image's pixels."""

    text: str
    score: float
    box: tuple[float, float, float, float]
    corner: int


class OcrGate:
    """Chooses the samples worth reading (see the module docstring, step 1).

    The gate keeps state across batches. A frame earlier than the previous one means a new
    video, and the gate starts over; ``reset`` does the same explicitly.
    """

    def __init__(self, every_nth: int = EVERY_NTH) -> None:
        """``every_nth``: read one sample in this many; 0 reads only first samples and shots.

        Raises:
            ValueError: ``every_nth`` is negative.
        """
        if every_nth < 0:
            raise ValueError(f"every_nth must be >= 0 (0: shot starts only), got {every_nth}")
        self.every_nth = every_nth
        self._since: int | None = None
        self._last_time = -math.inf

    def reset(self) -> None:
        """Start over: the next frame is a first sample."""
        self._since = None
        self._last_time = -math.inf

    def wants(self, frame: Frame) -> bool:
        """Whether ``frame`` should be read; call once per sample, in time order."""
        if frame.time < self._last_time:
            self.reset()
        self._last_time = frame.time
        if self._since is not None:
            self._since += 1
        due = self.every_nth > 0 and self._since is not None and self._since >= self.every_nth
        if self._since is None or frame.reason == "shot" or due:
            self._since = 0
            return True
        return False


def corner_regions(width: int, height: int, size: tuple[float, float] = CORNER_SIZE
                   ) -> list[tuple[int, int, int, int]]:
    """The four corner regions (x, y, w, h) of a ``width`` x ``height`` frame, as ``CORNERS``."""
    region_w = max(1, round(width * size[0]))
    region_h = max(1, round(height * size[1]))
    right, bottom = width - region_w, height - region_h
    return [(0, 0, region_w, region_h), (right, 0, region_w, region_h),
            (0, bottom, region_w, region_h), (right, bottom, region_w, region_h)]


def corner_of(box: tuple[float, float, float, float], width: int, height: int,
              size: tuple[float, float] = CORNER_SIZE) -> int:
    """The number of the corner region that holds all of ``box``, or -1."""
    x, y, w, h = box
    for number, (rx, ry, rw, rh) in enumerate(corner_regions(width, height, size)):
        if rx - 1 <= x and ry - 1 <= y and x + w <= rx + rw + 1 and y + h <= ry + rh + 1:
            return number
    return -1


class TextAnalyzer(Family):
    """Gated OCR of corner watermarks (and, if configured, whole frames)."""

    name: ClassVar[str] = families.TEXT
    models: ClassVar[tuple[str, ...]] = (MODEL_ID,)
    code_version: ClassVar[str] = "1"

    def __init__(self, det_session: Any, rec_session: Any, *, every_nth: int = EVERY_NTH,
                 corner_size: tuple[float, float] = CORNER_SIZE,
                 corner_upscale: float = CORNER_UPSCALE, full_frame: bool = False,
                 min_score: float = MIN_SCORE, min_length: int = MIN_LENGTH) -> None:
        """Wrap ONNX Runtime sessions of the PP-OCRv4 detector and recogniser.

        Arguments:
            det_session, rec_session: sessions of ``ch_PP-OCRv4_det_infer.onnx`` and
                ``ch_PP-OCRv4_rec_infer.onnx`` (the recogniser carries its character list).
            every_nth: see ``OcrGate``.
            corner_size: corner region as fractions of (width, height), each in (0, 0.5].
            corner_upscale: enlargement of corner crops for the detector, 1-4.
            full_frame: look at whole frames instead of corners.
            min_score, min_length: what is kept.

        Raises:
            ValueError: a setting is out of range, or the recogniser has no character list.
        """
        if not all(0.0 < part <= 0.5 for part in corner_size):
            raise ValueError(f"corner_size must be two fractions in (0, 0.5], got {corner_size}")
        if not 1.0 <= corner_upscale <= 4.0:
            raise ValueError(f"corner_upscale must be between 1 and 4, got {corner_upscale}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
        if min_length < 1:
            raise ValueError(f"min_length must be at least 1, got {min_length}")
        self.gate = OcrGate(every_nth)
        self.corner_size = corner_size
        self.corner_upscale = corner_upscale
        self.full_frame = full_frame
        self.min_score = min_score
        self.min_length = min_length
        self._sessions = (det_session, rec_session)
        self._engine = _OcrEngine(det_session, rec_session)

    @classmethod
    def from_manifest(cls, options: RuntimeOptions | None = None, log: Log = lambda *_: None,
                      user_dirs: Sequence[Path] = (), download_dir: Path | None = None,
                      allow_download: bool = False, **settings: Any) -> TextAnalyzer:
        """The analyzer with the model files resolved through the manifest (``ppocr_v4``).

        Arguments:
            options, log: for ``create_session``.
            user_dirs, download_dir, allow_download: where files may come from (see
                ``tagger.analyzers.models.resolve_file``).
            settings: keyword settings of the constructor (``every_nth``, ``full_frame``, ...).

        Raises:
            ModelError: a model file cannot be found or is corrupt.
        """
        files = {file.name: file for file in load_manifest()[MODEL_ID].files}
        sessions = []
        for name in MODEL_FILES:
            resolved = resolve_file(files[name], user_dirs=user_dirs, download_dir=download_dir,
                                    allow_download=allow_download, log=log)
            sessions.append(create_session(resolved.path, f"{MODEL_ID}:{name.split('_')[2]}",
                                           options or RuntimeOptions(), log))
        return cls(sessions[0], sessions[1], **settings)

    @classmethod
    def build(cls, context: BuildContext) -> TextAnalyzer:
        sessions = [create_session(context.resolve(MODEL_ID, name).path, f"{MODEL_ID}:{name.split('_')[2]}",
                                   context.runtime, context.log) for name in MODEL_FILES]
        return cls(sessions[0], sessions[1])

    @property
    def sessions(self) -> tuple[Any, Any]:
        """The (detector, recogniser) sessions; analyzers with other settings may share them."""
        return self._sessions

    def reset(self) -> None:
        """Forget the previous samples (a new video starts)."""
        self.gate.reset()

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        """Text read in the frames of ``batch`` that the gate lets through."""
        chosen = [frame for frame in batch if self.gate.wants(frame)]
        reads = self.read([frame.image for frame in chosen])
        # Each frame OCR looked at is recorded, text or not: merging text over time must tell
        # "looked and saw nothing" from "did not look" (most samples are gated out).
        scans = [Detection(time=frame.time, kind=SCAN_KIND, label="", score=1.0) for frame in chosen]
        return scans + [Detection(time=frame.time, kind=TEXT_KIND, label=item.text, score=item.score,
                                  box=item.box, details={"corner": item.corner})
                        for frame, items in zip(chosen, reads) for item in items]

    def read(self, images: Sequence[np.ndarray], full_frame: bool | None = None
             ) -> list[list[TextRead]]:
        """Text in each image, ungated: its corners, or all of it with ``full_frame``."""
        whole = self.full_frame if full_frame is None else full_frame
        scale = 1.0 if whole else self.corner_upscale
        regions = [self._regions(image, whole) for image in images]
        crops = [(index, offset, _crop(image, offset, scale))
                 for index, (image, offsets) in enumerate(zip(images, regions))
                 for offset in offsets]
        quads = self._engine.detect([crop for _, _, crop in crops])
        lines: list[tuple[int, np.ndarray]] = []
        for (index, offset, _), found in zip(crops, quads):
            lines.extend((index, quad / np.float32(scale) + np.float32(offset[:2]))
                         for quad in found)
        texts = self._engine.recognize([_line_image(images[index], quad) for index, quad in lines])
        reads: list[list[TextRead]] = [[] for _ in images]
        for (index, quad), (text, score) in zip(lines, texts):
            if score >= self.min_score and len(text.replace(" ", "")) >= self.min_length:
                reads[index].append(self._text_read(images[index], quad, text, score))
        return reads

    def _regions(self, image: np.ndarray, whole: bool) -> list[tuple[int, int, int, int]]:
        """The regions of ``image`` the detector looks at."""
        height, width = image.shape[:2]
        if whole:
            return [(0, 0, width, height)]
        return corner_regions(width, height, self.corner_size)

    def _text_read(self, image: np.ndarray, quad: np.ndarray, text: str, score: float) -> TextRead:
        """A ``TextRead`` for a line at ``quad`` (frame pixels)."""
        x0, y0 = quad.min(axis=0)
        x1, y1 = quad.max(axis=0)
        box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        height, width = image.shape[:2]
        return TextRead(text.strip(), float(score), box,
                        corner_of(box, width, height, self.corner_size))


def _crop(image: np.ndarray, region: tuple[int, int, int, int], scale: float = 1.0) -> np.ndarray:
    """The pixels of ``region`` (x, y, w, h) of ``image``, enlarged ``scale`` times (bicubic)."""
    x, y, w, h = region
    crop = image[y : y + h, x : x + w]
    if scale == 1.0:
        return crop
    return cv2.resize(crop, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)


def _line_image(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line inside ``quad`` (tl, tr, br, bl) warped upright, as RapidOCR crops it."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    line = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if height >= 1.5 * width:
        line = np.rot90(line)  # a vertical line: read it turned, as RapidOCR does
    return line


class _OcrEngine:
    """PP-OCRv4 detection and recognition on our sessions, with RapidOCR's processing."""

    def __init__(self, det_session: Any, rec_session: Any) -> None:
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess, DetPreProcess
        from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

        characters = rec_session.get_modelmeta().custom_metadata_map.get("character")
        if not characters:
            raise ValueError("the recogniser model has no 'character' metadata: not PP-OCR rec")
        self._det, self._rec = det_session, rec_session
        self._det_input = det_session.get_inputs()[0].name
        self._rec_input = rec_session.get_inputs()[0].name
        self._prepare = DetPreProcess(DET_LIMIT_SIDE, "max")
        self._boxes = DBPostProcess(**DET_SETTINGS)
        self._decode = CTCLabelDecode(character=characters.splitlines())

    def detect(self, crops: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Text quads (4x2 float32, tl/tr/br/bl, crop pixels) in each crop.

        Crops of one size (the corners of same-sized frames) share one detector run.
        """
        found: list[list[np.ndarray]] = [[] for _ in crops]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, crop in enumerate(crops):
            groups.setdefault(crop.shape, []).append(index)
        for shape, indices in groups.items():
            inputs = [self._prepare(crops[index]) for index in indices]
            if any(item is None for item in inputs):
                continue  # too small to resize to a multiple of 32: no text fits
            maps = self._det.run(None, {self._det_input: np.concatenate(inputs)})[0]
            for index, probability in zip(indices, maps):
                found[index] = self._quads(probability[None], shape[:2])
        return found

    def _quads(self, probability: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Quads from one probability map ``[1, 1, H, W]`` of a crop of ``shape`` (h, w)."""
        quads, _ = self._boxes(probability, shape)
        kept = []
        for quad in quads:
            quad = quad.astype(np.float32)
            if np.linalg.norm(quad[0] - quad[1]) > 3 and np.linalg.norm(quad[0] - quad[3]) > 3:
                kept.append(quad)
        return kept

    def recognize(self, lines: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """(text, confidence) of each line image, in the given order."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1] / lines[i].shape[0])
        for start in range(0, len(order), REC_BATCH):
            chunk = order[start : start + REC_BATCH]
            inputs = _rec_inputs([lines[i] for i in chunk])
            output = self._rec.run(None, {self._rec_input: inputs})[0]
            for index, (text, score) in zip(chunk, self._decode(output)):
                results[index] = (text, float(score))
        return results


def _rec_inputs(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Lines resized to ``REC_HEIGHT``, scaled to -1..1 and right-padded to one width."""
    ratios = [line.shape[1] / line.shape[0] for line in lines]
    width = int(REC_HEIGHT * max(REC_MIN_WIDTH / REC_HEIGHT, *ratios))
    batch = np.zeros((len(lines), 3, REC_HEIGHT, width), np.float32)
    for slot, (line, ratio) in enumerate(zip(lines, ratios)):
        line_width = min(width, math.ceil(REC_HEIGHT * ratio))
        resized = cv2.resize(line, (line_width, REC_HEIGHT)).astype(np.float32)
        batch[slot, :, :, :line_width] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return batch


__all__ = ["CORNERS", "MODEL_ID", "OcrGate", "TextAnalyzer", "TextRead", "corner_of",
           "corner_regions"]
