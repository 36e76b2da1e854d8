"""OCR readings across frames merged into on-screen text spans.

A watermark or a title is read once per sample frame, each time a little differently
("BRANDX.COM", "BRANDX.C0M", "brandx com"). Readings join a span when the text is the same after
normalisation (case-fold, whitespace collapsed) up to a couple of character edits, the box is in
roughly the same place, and the time since the span's last reading is within ``max_gap_s``
(measured like segment gaps: from the end of the last reading's sample stretch). A span's text is
its most frequent reading, its score the mean reading score, its box the median box.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from rapidfuzz.distance import Levenshtein

from tagger.decide.boxes import Box, box_iou, centre_distance
from tagger.decide.segments import EPSILON_S, sample_ends
from tagger.detections import TEXT_KIND, Detection

MIN_TEXT_CHARS = 2
"""Readings with fewer non-space characters are ignored: single characters are OCR noise."""

MIN_TEXT_SCORE = 0.5
"""Readings scored below this are ignored (PP-OCR scores clean text at 0.8-1.0)."""

MAX_EDITS = 2
"""At most this many character edits between two readings of the same text..."""

MAX_EDIT_SHARE = 0.25
"""...and at most this share of the shorter reading's length, so that "ABC" and "ABD" differ
while "BRANDX.COM" and "BRANDX.C0M" are one text."""

MIN_BOX_IOU = 0.3
"""Two boxes are in the same place when they overlap by this IoU..."""

MAX_CENTRE_SHIFT = 0.05
"""...or their centres are within this share of the frame diagonal (or, without a frame size,
within the taller box's height): a reading one character longer shifts its box's centre."""

MAX_GAP_S = 6.0
"""Longest time without a reading that still continues a span: OCR misses a watermark on busy
frames, a few samples in a row at 2-s sampling."""


@dataclass(frozen=True)
class TextSpan:
    """One piece of on-screen text over time.

    Attributes:
        text: the most frequent reading (as read).
        start: time of the first reading.
        end: end of the last reading's sample stretch.
        score: mean reading score.
        box: median (x, y, w, h), or None when readings had no box.
        readings: how many readings (sample frames) it merges.
    """

    text: str
    start: float
    end: float
    score: float
    box: Box | None
    readings: int = 1

    @property
    def seconds(self) -> float:
        """How long it is on screen."""
        return self.end - self.start


def normalise_text(text: str) -> str:
    """Case-folded, whitespace collapsed, stripped."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def same_text(a: str, b: str) -> bool:
    """Whether two normalised readings are the same text, up to a few OCR edits."""
    if a == b:
        return True
    limit = min(MAX_EDITS, int(MAX_EDIT_SHARE * min(len(a), len(b))))
    return Levenshtein.distance(a, b, score_cutoff=limit) <= limit


def same_place(a: Box | None, b: Box | None, frame_size: tuple[int, int] | None = None) -> bool:
    """Whether two boxes are in roughly the same place (always, when one is unknown)."""
    if a is None or b is None:
        return True
    if box_iou(a, b) >= MIN_BOX_IOU:
        return True
    if frame_size is not None:
        reach = MAX_CENTRE_SHIFT * (frame_size[0] ** 2 + frame_size[1] ** 2) ** 0.5
    else:
        reach = max(a[3], b[3])
    return centre_distance(a, b) <= reach


@dataclass
class _Open:
    """A span being built (private, mutable while merging)."""

    readings: list[Detection] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)
    until: float = 0.0


def usable(reading: Detection, min_score: float = MIN_TEXT_SCORE) -> bool:
    """Whether an OCR reading is worth merging: long enough and confident enough."""
    chars = len(normalise_text(reading.label).replace(" ", ""))
    return chars >= MIN_TEXT_CHARS and reading.score >= min_score


def _median_box(boxes: Sequence[Box]) -> Box | None:
    """Coordinate-wise median of boxes (None for none)."""
    if not boxes:
        return None
    x, y, w, h = (median(b[i] for b in boxes) for i in range(4))
    return (x, y, w, h)


def _finish(span: _Open) -> TextSpan:
    """The ``TextSpan`` of an open span; ties in reading frequency go to the earliest."""
    counts = Counter(r.label.strip() for r in span.readings)
    text = max(counts, key=lambda t: counts[t])
    boxes = [r.box for r in span.readings if r.box is not None]
    return TextSpan(text=text, start=span.readings[0].time, end=span.until,
                    score=sum(r.score for r in span.readings) / len(span.readings),
                    box=_median_box(boxes), readings=len(span.readings))


def _matches(span: _Open, reading: Detection, text: str, max_gap_s: float,
             frame_size: tuple[int, int] | None) -> bool:
    """Whether ``reading`` continues ``span``."""
    last = span.readings[-1]
    fresh = reading.time > last.time + EPSILON_S and reading.time - span.until <= max_gap_s + EPSILON_S
    return (fresh and any(same_text(text, t) for t in span.texts)
            and same_place(last.box, reading.box, frame_size))


def merge_text(
    detections: Iterable[Detection], sample_times: Sequence[float], duration: float, *,
    frame_size: tuple[int, int] | None = None, max_gap_s: float = MAX_GAP_S,
    min_score: float = MIN_TEXT_SCORE, kind: str = TEXT_KIND,
) -> list[TextSpan]:
    """On-screen text spans from OCR readings, by start time.

    Arguments:
        detections: all detections; only usable ones of ``kind`` count.
        sample_times: times of every analysed sample frame (a reading stands until the next).
        duration: where the analysed part of the video ends.
        frame_size: (width, height) of the frames the boxes are in, or None.
        max_gap_s: longest time without a reading inside one span.
        min_score: readings scored lower are ignored.
        kind: the detection kind of OCR readings.
    """
    readings = sorted((d for d in detections if d.kind == kind and usable(d, min_score)),
                      key=lambda d: d.time)
    times = sorted({round(float(t), 6) for t in sample_times} | {round(d.time, 6) for d in readings})
    ends = dict(zip(times, sample_ends(times, duration)))
    open_spans: list[_Open] = []
    for reading in readings:
        text = normalise_text(reading.label)
        span = next((s for s in open_spans
                     if _matches(s, reading, text, max_gap_s, frame_size)), None)
        if span is None:
            span = _Open()
            open_spans.append(span)
        span.readings.append(reading)
        span.texts.add(text)
        span.until = ends[round(reading.time, 6)]
    return sorted((_finish(s) for s in open_spans), key=lambda s: (s.start, s.text))
