"""Face detections linked across sample frames into tracks (one person's continuous presence).

Frame by frame, each face joins the live track whose mean embedding it resembles most (cosine
similarity at least ``LINK_SIMILARITY``); box overlap with the track's last box adds a little
(``POSITION_WEIGHT``), enough to settle near ties. Assignment is greedy and one-to-one, so two
faces of one frame never share a track. Faces without an embedding link by box overlap alone,
after every embedding link of the frame. A track is live for ``max_gap_s`` after its last face.

Afterwards, tracks are re-linked across longer gaps when their mean embeddings are very similar
(``RELINK_SIMILARITY``) and they never overlap in time: the same person after a cutaway.

Thresholds come from SFace measurements (``shared/MODELS.md``): same person median 0.905, worst
augmented pair 0.35-0.60; different people median 0.11, max 0.43.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tagger.decide.boxes import Box, box_iou
from tagger.decide.segments import EPSILON_S
from tagger.detections import FACE_KIND, Detection

LINK_SIMILARITY = 0.5
"""Cosine similarity a face needs to a live track's mean embedding to join it: above every
different-person pair measured (max 0.43), below all but the worst same-person pairs."""

RELINK_SIMILARITY = 0.7
"""Mean-embedding similarity for joining two tracks across a gap: stricter than frame-to-frame
linking, since there is no position continuity to back it up; track means are less noisy than
single faces, so same-person pairs still clear it easily."""

POSITION_WEIGHT = 0.1
"""Weight of box IoU (0-1) added to the similarity when ranking links: it settles near ties
(twins, a mirror) but cannot outweigh a clear identity difference."""

BOX_ONLY_MIN_IOU = 0.5
"""Box overlap a face without an embedding (or a track without one) needs to link."""

MAX_GAP_S = 6.0
"""A track stays live this long after its last face: a head turned away or a short cutaway."""


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """One face followed over time.

    Attributes:
        track: number, 0.. in order of start.
        start: time of the first face.
        end: time of the last face.
        score: mean detection score.
        detections: how many faces it holds.
        best_index: index (in the input sequence) of its best face: highest score, then largest.
        best_time: that face's time.
        embedding: mean of its faces' embeddings, L2-normalised; None if none had one.
        members: indexes (in the input sequence) of its faces, in time order.
    """

    track: int
    start: float
    end: float
    score: float
    detections: int
    best_index: int
    best_time: float
    embedding: np.ndarray | None
    members: tuple[int, ...]


@dataclass(eq=False)
class _Track:
    """A track being built (private, mutable)."""

    members: list[int] = field(default_factory=list)
    total: np.ndarray | None = None
    last_time: float = 0.0
    last_box: Box | None = None
    start: float = 0.0

    @property
    def mean(self) -> np.ndarray | None:
        """The normalised mean embedding so far."""
        return None if self.total is None else _unit(self.total)

    def add(self, index: int, face: Detection) -> None:
        """Append a face."""
        if not self.members:
            self.start = face.time
        self.members.append(index)
        self.last_time, self.last_box = face.time, face.box
        if face.embedding is not None:
            vector = _unit(face.embedding)
            self.total = vector if self.total is None else self.total + vector

    def absorb(self, other: _Track) -> None:
        """Append a later track."""
        self.members += other.members
        self.last_time, self.last_box = other.last_time, other.last_box
        if other.total is not None:
            self.total = other.total if self.total is None else self.total + other.total


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` as float64 scaled to length 1 (unchanged if zero)."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(_unit(a) @ _unit(b))


def link_affinity(track: _Track, face: Detection, link_similarity: float) -> tuple[int, float] | None:
    """How well ``face`` continues ``track``: (1, similarity + position bonus) by embedding,
    (0, IoU) by box alone, or None when it may not link."""
    iou = box_iou(track.last_box, face.box) if track.last_box and face.box else 0.0
    mean = track.mean
    if mean is not None and face.embedding is not None:
        similarity = cosine(mean, face.embedding)
        return (1, similarity + POSITION_WEIGHT * iou) if similarity >= link_similarity else None
    return (0, iou) if iou >= BOX_ONLY_MIN_IOU else None


def _frames(faces: Sequence[tuple[int, Detection]]) -> list[list[tuple[int, Detection]]]:
    """Faces grouped by frame time, in time order."""
    by_time: dict[float, list[tuple[int, Detection]]] = {}
    for index, face in faces:
        by_time.setdefault(round(float(face.time), 6), []).append((index, face))
    return [by_time[t] for t in sorted(by_time)]


def _link_frame(frame: Sequence[tuple[int, Detection]], live: Sequence[_Track],
                link_similarity: float) -> list[_Track]:
    """Add one frame's faces to live tracks (greedy, one-to-one); return the new tracks."""
    pairs = []
    for t, track in enumerate(live):
        for f, (_, face) in enumerate(frame):
            affinity = link_affinity(track, face, link_similarity)
            if affinity is not None:
                pairs.append((affinity, t, f))
    pairs.sort(key=lambda p: p[0], reverse=True)
    used_tracks: set[int] = set()
    used_faces: set[int] = set()
    for _, t, f in pairs:
        if t not in used_tracks and f not in used_faces:
            live[t].add(*frame[f])
            used_tracks.add(t)
            used_faces.add(f)
    new: list[_Track] = []
    for f, entry in enumerate(frame):
        if f not in used_faces:
            new.append(_Track())
            new[-1].add(*entry)
    return new


def relink(tracks: Sequence[_Track], relink_similarity: float) -> list[_Track]:
    """Tracks joined across gaps: in order of start, each joins the most similar earlier group
    that ended before it started, if their mean embeddings reach ``relink_similarity``."""
    groups: list[_Track] = []
    for track in sorted(tracks, key=lambda t: t.start):
        mean = track.mean
        best, best_similarity = None, relink_similarity
        for group in groups:
            group_mean = group.mean
            if mean is None or group_mean is None or group.last_time >= track.start - EPSILON_S:
                continue
            similarity = cosine(group_mean, mean)
            if similarity >= best_similarity:
                best, best_similarity = group, similarity
        if best is None:
            groups.append(track)
        else:
            best.absorb(track)
    return groups


def _finish(number: int, track: _Track, faces: Sequence[Detection]) -> FaceTrack:
    """The ``FaceTrack`` of a built track."""
    members = sorted(track.members, key=lambda i: faces[i].time)

    def quality(i: int) -> tuple[float, float]:
        box = faces[i].box
        return faces[i].score, (box[2] * box[3] if box else 0.0)

    best = max(members, key=quality)
    return FaceTrack(track=number, start=faces[members[0]].time, end=faces[members[-1]].time,
                     score=sum(faces[i].score for i in members) / len(members),
                     detections=len(members), best_index=best, best_time=faces[best].time,
                     embedding=track.mean, members=tuple(members))


def track_faces(
    detections: Sequence[Detection], *, max_gap_s: float = MAX_GAP_S,
    link_similarity: float = LINK_SIMILARITY, relink_similarity: float = RELINK_SIMILARITY,
    min_detections: int = 1, kind: str = FACE_KIND,
) -> list[FaceTrack]:
    """Face tracks, by start time.

    Arguments:
        detections: all detections; only those of ``kind`` are used. Indexes in the result refer
            to this sequence.
        max_gap_s: a track takes no face more than this long after its last one (re-linking
            aside).
        link_similarity: least cosine similarity for frame-to-frame linking.
        relink_similarity: least similarity of track means for re-linking across a gap.
        min_detections: tracks with fewer faces are dropped (after re-linking).
        kind: the detection kind of faces.

    Raises:
        ValueError: ``min_detections`` below 1 or ``max_gap_s`` negative.
    """
    if min_detections < 1:
        raise ValueError(f"min_detections must be >= 1, got {min_detections}")
    if max_gap_s < 0:
        raise ValueError(f"max_gap_s must be >= 0 seconds, got {max_gap_s}")
    tracks: list[_Track] = []
    for frame in _frames([(i, d) for i, d in enumerate(detections) if d.kind == kind]):
        time = frame[0][1].time
        live = [t for t in tracks if time - t.last_time <= max_gap_s + EPSILON_S]
        tracks += _link_frame(frame, live, link_similarity)
    kept = [t for t in relink(tracks, relink_similarity) if len(t.members) >= min_detections]
    kept.sort(key=lambda t: t.start)
    return [_finish(n, t, detections) for n, t in enumerate(kept)]
