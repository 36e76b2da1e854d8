"""Who is in a scene: face tracks matched against the performer gallery. Pure (numpy, no I/O).

A scene is judged by its tracks (one person's continuous presence, ``tagger.decide.faces``), not
by single frames. Per track, its best faces (by ``face_quality``) are compared with every gallery
embedding; a performer's score for the track is the mean over those faces of the best similarity
to any of the performer's embeddings. Then, per scene:

- Tracks that share a frame are different people: assignment is greedy by score, and a performer
  taken by a track is not given to another track it overlaps in time.
- One performer is one match per scene, however many tracks it has (their appearances add up).
- ``auto`` at or above ``AUTO_SIMILARITY`` with at least ``MIN_APPEARANCES`` faces; a suggestion
  from ``REVIEW_SIMILARITY``; below that, the track is unknown (clustered across the library).

Thresholds are measured (bench/bench_performers.py: 25 generated scenes, 29 appearances of 4
performers from photos other than their gallery photo, 22 tracks of non-performers): genuine
tracks scored 0.49-0.82 (median 0.70), non-performers at most 0.26. Every auto threshold from
0.35 to 0.45 with 2 faces gave per-scene precision 1.000 and recall 0.931 (the 2 misses were
faces never tracked). AUTO_SIMILARITY takes the top of that range, 0.45, because SFace pairs of
different people reach 0.43 on other photos (shared/MODELS.md: 539 pairs); REVIEW_SIMILARITY 0.35
sits above the 99th percentile of those pairs (0.33) and above every non-performer in the bench,
which made no wrong suggestion there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tagger.decide.faces import FaceTrack
from tagger.detections import Detection

AUTO_SIMILARITY = 0.45
"""Track-to-performer similarity for adding the performer without asking."""

REVIEW_SIMILARITY = 0.35
"""From here up to AUTO_SIMILARITY the match is a suggestion."""

MIN_APPEARANCES = 2
"""Faces a performer needs in the scene (over all its tracks) to be added without asking."""

BEST_FACES = 5
"""Faces per track compared with the gallery: its best by quality."""

MIN_FACE_PX = 40.0
"""Faces smaller than this (shorter box side, frame pixels) count little: they embed poorly."""


def face_quality(face: Detection) -> float:
    """0-1: detection score, scaled down for small, blurred and turned faces."""
    details = face.details or {}
    size = float(details.get("size", MIN_FACE_PX))
    yaw = abs(float(details.get("yaw", 0.0)))
    sharpness = float(details.get("sharpness", 100.0))
    size_factor = min(1.0, size / 112.0) if size >= MIN_FACE_PX else 0.1 * size / MIN_FACE_PX
    pose_factor = max(0.1, 1.0 - 2.0 * max(0.0, yaw - 0.15))
    blur_factor = min(1.0, max(0.1, sharpness / 50.0))
    return float(face.score) * size_factor * pose_factor * blur_factor


@dataclass(frozen=True)
class GalleryIndex:
    """The gallery as a matrix: row i is an embedding of performer ``performer_ids[i]`` (rows are
    kept grouped by performer, so a per-performer maximum is one ``reduceat``)."""

    performer_ids: tuple[str, ...]
    vectors: np.ndarray  # (N, D) float32, L2-normalised
    names: Mapping[str, str]

    def __post_init__(self) -> None:
        order = sorted(range(len(self.performer_ids)), key=lambda i: self.performer_ids[i])
        ids = tuple(self.performer_ids[i] for i in order)
        object.__setattr__(self, "performer_ids", ids)
        object.__setattr__(self, "vectors", np.asarray(self.vectors, np.float32)[order] if order
                           else np.asarray(self.vectors, np.float32))
        starts = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
        object.__setattr__(self, "_starts", np.asarray(starts, np.intp))
        object.__setattr__(self, "_performers", tuple(ids[i] for i in starts))

    @classmethod
    def empty(cls, dimensions: int = 128) -> GalleryIndex:
        return cls((), np.zeros((0, dimensions), np.float32), {})

    def __len__(self) -> int:
        return len(self.performer_ids)

    def performer_scores(self, faces: np.ndarray, top: int = 8) -> dict[str, float]:
        """The ``top`` performers for ``faces`` (K, D): per performer, the mean over the faces of
        the best similarity to any of its embeddings."""
        if not len(self) or not len(faces):
            return {}
        similarity = np.asarray(faces, np.float32) @ self.vectors.T  # (K, N)
        per_performer = np.maximum.reduceat(similarity, self._starts, axis=1).mean(axis=0)  # (P,)
        best = np.argsort(-per_performer, kind="stable")[:top]
        return {self._performers[i]: float(per_performer[i]) for i in best}


@dataclass(frozen=True)
class TrackIdentity:
    """A track's best performer, or None (unknown); ``score`` is its similarity."""

    track: FaceTrack
    performer_id: str | None
    score: float
    runner_up: float


@dataclass(frozen=True)
class ScenePerformer:
    """A performer found in a scene."""

    performer_id: str
    name: str
    score: float
    appearances: int
    seconds: float
    tracks: tuple[int, ...]
    auto: bool


def best_faces(track: FaceTrack, detections: Sequence[Detection], count: int = BEST_FACES) -> list[int]:
    """Indexes of a track's best faces with an embedding, best first."""
    members = [i for i in track.members if detections[i].embedding is not None]
    return sorted(members, key=lambda i: -face_quality(detections[i]))[:count]


def identify_tracks(
    tracks: Sequence[FaceTrack],
    detections: Sequence[Detection],
    gallery: GalleryIndex,
    *,
    review_similarity: float = REVIEW_SIMILARITY,
) -> list[TrackIdentity]:
    """Each track's performer (greedy, best score first; overlapping tracks never share one)."""
    candidates: list[tuple[float, int, str]] = []
    per_track: list[dict[str, float]] = []
    for number, track in enumerate(tracks):
        faces = [detections[i].embedding for i in best_faces(track, detections)]
        scores = gallery.performer_scores(np.stack(faces)) if faces else {}
        per_track.append(scores)
        candidates += [
            (score, number, performer) for performer, score in scores.items() if score >= review_similarity
        ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: dict[int, tuple[str, float]] = {}
    for score, number, performer in candidates:
        if number in chosen:
            continue
        if any(p == performer and _overlap(tracks[n], tracks[number]) for n, (p, _) in chosen.items()):
            continue
        chosen[number] = (performer, score)
    identities = []
    for number, track in enumerate(tracks):
        performer, score = chosen.get(number, (None, 0.0))
        others = sorted((s for p, s in per_track[number].items() if p != performer), reverse=True)
        best = score if performer else (max(per_track[number].values()) if per_track[number] else 0.0)
        identities.append(TrackIdentity(track, performer, best, others[0] if others else 0.0))
    return identities


def _overlap(a: FaceTrack, b: FaceTrack) -> bool:
    return a.start <= b.end and b.start <= a.end


def scene_performers(
    identities: Sequence[TrackIdentity],
    gallery: GalleryIndex,
    *,
    auto_similarity: float = AUTO_SIMILARITY,
    min_appearances: int = MIN_APPEARANCES,
) -> list[ScenePerformer]:
    """One entry per performer found, best score first."""
    by_performer: dict[str, list[TrackIdentity]] = {}
    for identity in identities:
        if identity.performer_id is not None:
            by_performer.setdefault(identity.performer_id, []).append(identity)
    found = []
    for performer, tracks in by_performer.items():
        score = max(t.score for t in tracks)
        appearances = sum(t.track.detections for t in tracks)
        found.append(
            ScenePerformer(
                performer_id=performer,
                name=gallery.names.get(performer, performer),
                score=score,
                appearances=appearances,
                seconds=sum(t.track.end - t.track.start for t in tracks),
                tracks=tuple(t.track.track for t in tracks),
                auto=score >= auto_similarity and appearances >= min_appearances,
            )
        )
    return sorted(found, key=lambda p: (-p.score, p.performer_id))
