"""Contact sheets that show the frames behind each decision, for a person to check it.

``write_evidence`` writes one JPEG per scene tag, marker, face track, text span and the studio:
a title bar saying what it is ("tag Female Breast Exposed", "marker ... 1:02-1:30", "face #2",
"text 'BRANDX.COM'", "studio Brand X") above up to ``per_item`` thumbnails, the highest-scoring
frames of the item in time order. Each thumbnail has the item's detection boxes drawn with their
scores, and a band with the frame's time (m:ss.s) and score.

Which detections belong to which item:

    scene tag   detections of the tag's family (kind = its ``source``) with the tag's label
    marker      its family's detections of the marker's label(s) inside its span; a marker
                without any (a shot marker) shows sample frames spread over its span, no boxes
    face track  the track's ``members`` (indexes into ``EngineResult.detections``)
    text span   ``text`` detections reading the same text, inside the span, in the same place
    studio      ``text`` detections of the text spans behind its evidence (``StudioMatch.spans``)

Frames are decoded in one pass over the source in time order (``tagger.media.seek.decode_at``).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from tagger.decide.rules import readable_tag
from tagger.decide.studio import name_keys, text_keys
from tagger.decide.text import normalise_text, same_place, same_text
from tagger.detections import CONTENT_KIND, FACE_KIND, TEXT_KIND, Detection
from tagger.media.seek import decode_at, thumb_size
from tagger.media.video import probe

if TYPE_CHECKING:
    from tagger.decide.faces import FaceTrack
    from tagger.decide.studio import StudioMatch
    from tagger.decide.tags import MarkerDecision, RuleSet, SceneTag
    from tagger.decide.text import TextSpan
    from tagger.engine.cache import PassRecord
    from tagger.engine.engine import EngineResult

COLUMNS = 3
"""Thumbnails per row of a sheet (fewer when ``per_item`` is smaller)."""

GAP = 4
"""Pixels between thumbnails and around the grid."""

TITLE_H = 30
"""Height of the title bar (pixels)."""

LABEL_H = 18
"""Height of the dark band with time and score at the bottom of each thumbnail."""

BACKGROUND = (24, 24, 24)
TITLE_BACKGROUND = (48, 48, 48)
TEXT_COLOUR = (255, 255, 255)
BOX_COLOURS: dict[str, tuple[int, int, int]] = {
    FACE_KIND: (0, 255, 0), CONTENT_KIND: (0, 0, 255), TEXT_KIND: (0, 255, 255),
}
"""Box colours (BGR) by detection kind: faces green, content red, text yellow (others magenta)."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 85
MAX_SLUG_CHARS = 60
TIME_EPSILON_S = 0.05
"""Slack (seconds) when comparing detection times to span edges that were rounded."""


@dataclass(frozen=True)
class EvidenceFrame:
    """One thumbnail of a sheet: the frame at ``time``, its score (None if not scored) and the
    detections to draw on it."""

    time: float
    score: float | None
    boxes: tuple[Detection, ...] = ()


@dataclass(frozen=True)
class EvidenceItem:
    """One sheet: what it shows (``title``), its file name stem (``slug``) and its frames."""

    kind: str
    title: str
    slug: str
    frames: tuple[EvidenceFrame, ...]


# ---------------------------------------------------------------------------------------------
# Public entry


def write_evidence(result: EngineResult, out_dir: Path, *, http_headers: dict[str, str] | None = None,
                   per_item: int = 6, thumb_width: int = 320,
                   rules: Sequence[RuleSet] | None = None) -> list[Path]:
    """Write one contact sheet per decision of ``result`` into ``out_dir``.

    Arguments:
        result: the engine's result for one video (its ``file`` is the source read).
        out_dir: folder for the sheets (created if missing).
        http_headers: request headers when ``result.file`` is a URL (e.g. ``{"ApiKey": ...}``).
        per_item: most thumbnails per sheet (the highest-scoring frames).
        thumb_width: thumbnail width in pixels; the height keeps the video's aspect.
        rules: the tag rules per family, to find the detector label of custom-named markers
            (optional).

    Returns:
        The sheets written, in item order (tags, markers, faces, text, studio).

    Raises:
        MediaError: the source cannot be opened or read.
        ValueError: ``per_item`` or ``thumb_width`` out of range.
    """
    if per_item < 1:
        raise ValueError(f"per_item must be at least 1, got {per_item}")
    if thumb_width < 32:
        raise ValueError(f"thumb_width must be at least 32 pixels, got {thumb_width}")
    items = evidence_items(result, per_item=per_item, rules=rules)
    if not items:
        return []
    info = probe(result.file, http_headers=http_headers)
    size = thumb_size(info, thumb_width)
    times = [frame.time for item in items for frame in item.frames]
    images = decode_at(result.file, info, times, size, http_headers=http_headers)
    frame_size = result.record.frame_size or (info.width, info.height)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in items:
        sheet = render_sheet(item, images, size, frame_size, per_item)
        paths.append(write_jpeg(sheet, out_dir / f"{item.slug}.jpg"))
    return paths


def sheet_columns(per_item: int) -> int:
    """Thumbnails per row for ``per_item`` thumbnails at most."""
    return max(1, min(per_item, COLUMNS))


def sheet_width(per_item: int, thumb_width: int) -> int:
    """Width (pixels) of every sheet written with these settings."""
    columns = sheet_columns(per_item)
    return columns * thumb_width + (columns + 1) * GAP


def thumb_origin(index: int, per_item: int, size: tuple[int, int]) -> tuple[int, int]:
    """(x, y) of the top-left corner of thumbnail ``index`` in a sheet."""
    columns = sheet_columns(per_item)
    row, column = divmod(index, columns)
    return GAP + column * (size[0] + GAP), TITLE_H + GAP + row * (size[1] + GAP)


# ---------------------------------------------------------------------------------------------
# Items: which frames and boxes belong to which decision


def evidence_items(result: EngineResult, *, per_item: int = 6,
                   rules: Sequence[RuleSet] | None = None) -> list[EvidenceItem]:
    """Every sheet to write for ``result`` (pure: no decoding), with unique safe slugs."""
    decisions, detections = result.decisions, result.detections
    items = [tag_item(tag, detections, per_item) for tag in decisions.tags]
    items += [marker_item(marker, result, per_item, rules) for marker in decisions.markers]
    items += [face_item(track, detections, per_item) for track in decisions.faces]
    frame_size = result.record.frame_size
    items += [text_item(span, detections, per_item, frame_size) for span in decisions.text]
    if decisions.studio is not None:
        items.append(studio_item(decisions.studio, detections, per_item))
    return unique_slugs(items)


def tag_item(tag: SceneTag, detections: Sequence[Detection], per_item: int) -> EvidenceItem:
    """The sheet of a scene tag: its label's best frames of its family."""
    hits = [d for d in detections if d.kind == tag.source and d.label == tag.label]
    title = f"tag {tag.name}  ({tag.score:.2f}, {tag.seconds:.0f} s)"
    return EvidenceItem("tag", title, f"tag-{slugify(tag.name)}", top_frames(hits, per_item))


def marker_labels(marker: MarkerDecision, result: EngineResult,
                  rules: Sequence[RuleSet] | None) -> set[str]:
    """Detector labels whose tag is the marker's tag (its own, by its family's rules, scene tags
    or default names)."""
    labels = {marker.label} if marker.label else set()
    labels |= {rule.label for rule_set in rules or () if rule_set.source == marker.source
               for rule in rule_set.rules.values() if rule.tag == marker.tag}
    labels |= {tag.label for tag in result.decisions.tags
               if tag.name == marker.tag and tag.source == marker.source}
    labels |= {d.label for d in result.detections
               if d.kind == marker.source and marker.tag in (d.label, readable_tag(d.label))}
    return labels


def marker_item(marker: MarkerDecision, result: EngineResult, per_item: int,
                rules: Sequence[RuleSet] | None) -> EvidenceItem:
    """The sheet of a marker: its label's best frames inside its span, else frames spread over
    the span."""
    labels = marker_labels(marker, result, rules)
    hits = [d for d in result.detections if d.kind == marker.source and d.label in labels
            and marker.start - TIME_EPSILON_S <= d.time <= marker.end + TIME_EPSILON_S]
    frames = top_frames(hits, per_item) or spread_frames(result.record, marker.start, marker.end,
                                                         per_item)
    span = f"{clock(marker.start)}-{clock(marker.end)}"
    title = f"marker {marker.title} {span}  ({marker.score:.2f})"
    slug = f"marker-{slugify(marker.title)}-{clock_slug(marker.start)}-{clock_slug(marker.end)}"
    return EvidenceItem("marker", title, slug, frames)


def face_item(track: FaceTrack, detections: Sequence[Detection], per_item: int) -> EvidenceItem:
    """The sheet of a face track: its member faces (indexes into ``detections``)."""
    faces = [detections[i] for i in track.members
             if 0 <= i < len(detections) and detections[i].kind == FACE_KIND]
    title = (f"face #{track.track} {clock(track.start)}-{clock(track.end)}  "
             f"({track.detections} faces, {track.score:.2f})")
    return EvidenceItem("face", title, f"face-{track.track}", top_frames(faces, per_item))


def text_readings(detections: Iterable[Detection], text: str, start: float, end: float,
                  box: tuple[float, float, float, float] | None = None,
                  frame_size: tuple[int, int] | None = None) -> list[Detection]:
    """``text`` detections reading ``text`` between ``start`` and ``end`` (near ``box``)."""
    wanted = normalise_text(text)
    return [d for d in detections
            if d.kind == TEXT_KIND and start - TIME_EPSILON_S <= d.time <= end + TIME_EPSILON_S
            and same_text(normalise_text(d.label), wanted) and same_place(box, d.box, frame_size)]


def text_item(span: TextSpan, detections: Sequence[Detection], per_item: int,
              frame_size: tuple[int, int] | None) -> EvidenceItem:
    """The sheet of a text span: the readings it merges."""
    readings = text_readings(detections, span.text, span.start, span.end, span.box, frame_size)
    title = f"text {ascii_text(span.text)!r} {clock(span.start)}-{clock(span.end)}  ({span.score:.2f})"
    return EvidenceItem("text", title, f"text-{slugify(span.text)}", top_frames(readings, per_item))


def studio_readings(studio: StudioMatch, detections: Sequence[Detection]) -> list[Detection]:
    """The text detections behind a studio match: the readings of the spans behind its evidence,
    else every reading that names the studio."""
    found: dict[int, Detection] = {}
    for span in studio.spans:
        found.update((id(d), d) for d in text_readings(detections, span.text, span.start, span.end))
    if not found:
        keys = name_keys(studio.name)
        found = {id(d): d for d in detections if d.kind == TEXT_KIND and keys & text_keys(d.label)}
    return list(found.values())


def studio_item(studio: StudioMatch, detections: Sequence[Detection], per_item: int) -> EvidenceItem:
    """The sheet of the studio match."""
    readings = studio_readings(studio, detections)
    title = f"studio {studio.name}  ({studio.score:.2f})"
    return EvidenceItem("studio", title, f"studio-{slugify(studio.name)}", top_frames(readings, per_item))


def top_frames(detections: Iterable[Detection], per_item: int) -> tuple[EvidenceFrame, ...]:
    """The ``per_item`` frames with the best detection score, in time order, each with all of
    ``detections`` at its time."""
    by_time: dict[float, list[Detection]] = {}
    for detection in detections:
        by_time.setdefault(round(float(detection.time), 6), []).append(detection)
    ranked = sorted(by_time, key=lambda t: (-max(d.score for d in by_time[t]), t))[:per_item]
    return tuple(EvidenceFrame(t, max(d.score for d in by_time[t]), tuple(by_time[t]))
                 for t in sorted(ranked))


def spread_frames(record: PassRecord, start: float, end: float, per_item: int) -> tuple[EvidenceFrame, ...]:
    """Up to ``per_item`` analysed sample times spread evenly over [start, end), unscored;
    ``start`` itself when no sample falls inside."""
    inside = [t for t in record.sample_times if start - TIME_EPSILON_S <= t < end]
    if len(inside) > per_item:
        step = len(inside) / per_item
        inside = [inside[int(i * step)] for i in range(per_item)]
    return tuple(EvidenceFrame(float(t), None) for t in (inside or [start]))


# ---------------------------------------------------------------------------------------------
# Names


def slugify(text: str) -> str:
    """``text`` as a file-name part: ASCII letters and digits joined by ``-`` (never empty)."""
    folded = ascii_text(text).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:MAX_SLUG_CHARS].strip("-")
    return slug or "item"


def unique_slugs(items: Sequence[EvidenceItem]) -> list[EvidenceItem]:
    """``items`` with repeated slugs numbered (``-2``, ``-3``...), case-insensitively unique."""
    seen: set[str] = set()
    unique = []
    for item in items:
        slug, number = item.slug, 1
        while slug.lower() in seen:
            number += 1
            slug = f"{item.slug}-{number}"
        seen.add(slug.lower())
        unique.append(item if slug == item.slug else EvidenceItem(item.kind, item.title, slug, item.frames))
    return unique


def ascii_text(text: str) -> str:
    """``text`` in the ASCII OpenCV's fonts can draw (accents dropped, other letters as ``?``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return kept.encode("ascii", "replace").decode("ascii")


def clock(seconds: float) -> str:
    """``m:ss`` (whole seconds), for titles."""
    whole = int(max(0.0, seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def clock_tenths(seconds: float) -> str:
    """``m:ss.s``, for thumbnail labels."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, rest = divmod(tenths, 600)
    return f"{minutes}:{rest / 10:04.1f}"


def clock_slug(seconds: float) -> str:
    """``1m02s``: a time for file names."""
    whole = int(max(0.0, seconds))
    return f"{whole // 60}m{whole % 60:02d}s"


# ---------------------------------------------------------------------------------------------
# Drawing


def render_sheet(item: EvidenceItem, images: Mapping[float, np.ndarray], size: tuple[int, int],
                 frame_size: tuple[int, int], per_item: int) -> np.ndarray:
    """The contact sheet of ``item``: title bar over a grid of labelled thumbnails."""
    width, height = size
    rows = max(1, math.ceil(len(item.frames) / sheet_columns(per_item)))
    sheet = np.full((TITLE_H + GAP + rows * (height + GAP), sheet_width(per_item, width), 3),
                    BACKGROUND, dtype=np.uint8)
    draw_title(sheet, item.title)
    scale = (width / max(1, frame_size[0]), height / max(1, frame_size[1]))
    for index, frame in enumerate(item.frames):
        image = images.get(round(frame.time, 6))
        thumb = draw_thumb(image.copy(), frame, scale) if image is not None else missing_thumb(size)
        x, y = thumb_origin(index, per_item, size)
        sheet[y:y + height, x:x + width] = thumb
    if not item.frames:
        x, y = thumb_origin(0, per_item, size)
        put_label(sheet, "no frames found", (x + 6, y + height // 2), 0.5)
    return sheet


def draw_title(sheet: np.ndarray, title: str) -> None:
    """Fill the title bar and write ``title`` in it, cut with ``...`` to fit."""
    sheet[:TITLE_H] = TITLE_BACKGROUND
    text = fit_text(ascii_text(title), sheet.shape[1] - 12, 0.55)
    cv2.putText(sheet, text, (6, TITLE_H - 10), FONT, 0.55, TEXT_COLOUR, 1, cv2.LINE_AA)


def fit_text(text: str, max_width: int, scale: float) -> str:
    """``text`` shortened (ending in ``...``) until it is at most ``max_width`` pixels wide."""
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] <= max_width:
        return text
    while text and cv2.getTextSize(text + "...", FONT, scale, 1)[0][0] > max_width:
        text = text[:-1]
    return text + "..."


def draw_thumb(image: np.ndarray, frame: EvidenceFrame, scale: tuple[float, float]) -> np.ndarray:
    """``image`` with the frame's boxes and a time/score band drawn on it."""
    label = clock_tenths(frame.time) + (f"  {frame.score:.2f}" if frame.score is not None else "")
    height = image.shape[0]
    darken(image, 0, max(0, height - LABEL_H), image.shape[1], height)
    cv2.putText(image, label, (4, height - 5), FONT, 0.45, TEXT_COLOUR, 1, cv2.LINE_AA)
    for detection in frame.boxes:
        if detection.box is not None:
            draw_box(image, detection, scale)
    return image


def draw_box(image: np.ndarray, detection: Detection, scale: tuple[float, float]) -> None:
    """One detection's box (in the analysed frame's pixels) scaled onto ``image``, with its score."""
    assert detection.box is not None
    x, y, w, h = detection.box
    left, top = round(x * scale[0]), round(y * scale[1])
    right, bottom = round((x + w) * scale[0]), round((y + h) * scale[1])
    colour = BOX_COLOURS.get(detection.kind, (255, 0, 255))
    cv2.rectangle(image, (left, top), (right, bottom), colour, 2)
    text = f"{detection.score:.2f}"
    (text_w, text_h), _ = cv2.getTextSize(text, FONT, 0.4, 1)
    band_top = top - text_h - 6 if top - text_h - 6 >= 0 else bottom + 2
    darken(image, left, band_top, left + text_w + 4, band_top + text_h + 6)
    cv2.putText(image, text, (left + 2, band_top + text_h + 2), FONT, 0.4, colour, 1, cv2.LINE_AA)


def darken(image: np.ndarray, left: int, top: int, right: int, bottom: int) -> None:
    """Dim a rectangle of ``image`` (clipped to it) so light text on it stays readable."""
    height, width = image.shape[:2]
    left, right = max(0, left), min(width, right)
    top, bottom = max(0, top), min(height, bottom)
    if right > left and bottom > top:
        image[top:bottom, left:right] = (image[top:bottom, left:right] * 0.35).astype(np.uint8)


def put_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Light text at ``origin`` (baseline left)."""
    cv2.putText(image, text, origin, FONT, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def missing_thumb(size: tuple[int, int]) -> np.ndarray:
    """A grey placeholder for a frame that could not be decoded."""
    image = np.full((size[1], size[0], 3), 64, dtype=np.uint8)
    put_label(image, "not decoded", (6, size[1] // 2), 0.45)
    return image


def write_jpeg(image: np.ndarray, path: Path) -> Path:
    """Write ``image`` as JPEG to ``path`` atomically (temp file, then rename)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    handle, temp = tempfile.mkstemp(prefix=".evidence-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data.tobytes())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
