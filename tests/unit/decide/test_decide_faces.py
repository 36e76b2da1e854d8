"""Face tracks: face detections linked across frames by embedding, position and time."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.decide.faces import cosine, track_faces
from tagger.detections import Detection

LEFT = (100.0, 100.0, 80.0, 80.0)
RIGHT = (400.0, 100.0, 80.0, 80.0)


def identity(seed: int) -> np.ndarray:
    """A person: a random unit vector in 128-d (two of them have cosine near 0)."""
    vector = np.random.default_rng(seed).normal(size=128)
    return vector / np.linalg.norm(vector)


def look(person: np.ndarray, seed: int, noise: float = 0.3) -> np.ndarray:
    """One face of ``person``: its vector plus noise of length ``noise`` (cosine about 0.96)."""
    jitter = np.random.default_rng(1000 + seed).normal(size=128)
    vector = person + noise * jitter / np.linalg.norm(jitter)
    return vector / np.linalg.norm(vector)


ANN, BOB = identity(1), identity(2)


def face(t: float, person: np.ndarray | None, box: tuple[float, float, float, float] = LEFT,
         score: float = 0.9) -> Detection:
    """A face of ``person`` (None: no embedding) at ``t``."""
    embedding = None if person is None else look(person, int(t * 10) + int(box[0]))
    return Detection(t, "face", "face", score, box, embedding)


def tracks_of(detections: list[Detection], **options: object) -> list[list[int]]:
    """Each track's member indexes."""
    return [list(t.members) for t in track_faces(detections, **options)]


class TestLinking:
    def test_one_person_in_consecutive_frames_is_one_track(self) -> None:
        (track,) = track_faces([face(t, ANN) for t in (0, 2, 4, 6)])
        assert (track.start, track.end, track.detections) == (0, 6, 4)

    def test_two_people_alternating_frames_stay_two_tracks(self) -> None:
        # One face per frame, Ann at even seconds and Bob at odd ones, in the same place.
        faces = [face(t, ANN if t % 2 == 0 else BOB) for t in range(8)]
        assert tracks_of(faces) == [[0, 2, 4, 6], [1, 3, 5, 7]]

    def test_two_faces_in_one_frame_are_never_one_track(self) -> None:
        # The same person twice (a mirror): position keeps each track on its side.
        faces = [f for t in (0, 2, 4) for f in (face(t, ANN, LEFT), face(t, ANN, RIGHT))]
        tracks = track_faces(faces)
        assert [[faces[i].box for i in t.members] for t in tracks] == [[LEFT] * 3, [RIGHT] * 3]

    def test_two_people_swapping_sides_are_followed_by_identity(self) -> None:
        faces = [face(0, ANN, LEFT), face(0, BOB, RIGHT), face(2, ANN, RIGHT), face(2, BOB, LEFT)]
        assert tracks_of(faces) == [[0, 2], [1, 3]]

    def test_faces_without_embeddings_link_by_position(self) -> None:
        faces = [face(0, None), face(2, None), face(4, None, RIGHT)]
        assert tracks_of(faces) == [[0, 1], [2]]

    def test_other_kinds_are_ignored_and_indexes_refer_to_the_input(self) -> None:
        faces = [Detection(0, "content", "FACE_FEMALE", 0.9), face(0, ANN), face(2, ANN)]
        assert tracks_of(faces) == [[1, 2]]


class TestGapsAndRelinking:
    def test_the_same_person_after_a_long_gap_is_relinked(self) -> None:
        # 26 s without Ann, far beyond max_gap; her track means match (cosine ~0.99).
        (track,) = track_faces([face(t, ANN) for t in (0, 2, 4, 30, 32)], max_gap_s=6.0)
        assert (track.start, track.end, track.detections) == (0, 32, 5)

    def test_a_different_person_after_a_gap_is_a_new_track(self) -> None:
        faces = [face(t, ANN) for t in (0, 2, 4)] + [face(t, BOB) for t in (30, 32)]
        assert tracks_of(faces) == [[0, 1, 2], [3, 4]]

    @pytest.mark.parametrize(("later", "expected"), [
        (6.0, [[0, 1, 2, 3]]),  # 2 s after the last face: linked at 0.6 >= 0.5
        (40.0, [[0, 1], [2, 3]]),  # 36 s later: not relinked at 0.6 < 0.7
    ], ids=["within max_gap", "across a long gap"])
    def test_relinking_needs_more_similarity_than_linking(self, later: float,
                                                          expected: list[list[int]]) -> None:
        # Later faces at exactly cosine 0.6 to the earlier ones (Ann turned and lit differently).
        aside = BOB - (BOB @ ANN) * ANN
        turned = 0.6 * ANN + 0.8 * aside / np.linalg.norm(aside)
        faces = [Detection(t, "face", "face", 0.9, LEFT, ANN) for t in (0.0, 2.0)]
        faces += [Detection(t, "face", "face", 0.9, LEFT, turned) for t in (later, later + 2)]
        assert tracks_of(faces, max_gap_s=6.0) == expected

    def test_overlapping_tracks_are_never_relinked(self) -> None:
        # The mirror again: identical means, but both are on screen at once.
        faces = [f for t in (0, 2) for f in (face(t, ANN, LEFT), face(t, ANN, RIGHT))]
        assert len(track_faces(faces)) == 2


class TestTrackSummary:
    def test_best_face_mean_score_and_unit_embedding(self) -> None:
        faces = [face(0, ANN, score=0.7), face(2, ANN, score=0.95), face(4, ANN, score=0.8)]
        (track,) = track_faces(faces)
        assert (track.best_index, track.best_time) == (1, 2)
        assert track.score == pytest.approx(0.8167, abs=1e-4)
        assert np.linalg.norm(track.embedding) == pytest.approx(1.0)
        assert cosine(track.embedding, ANN) > 0.95

    def test_tracks_without_embeddings_have_none(self) -> None:
        (track,) = track_faces([face(0, None), face(2, None)])
        assert track.embedding is None

    def test_short_tracks_can_be_dropped(self) -> None:
        faces = [face(t, ANN) for t in (0, 2, 4)] + [face(10, BOB, RIGHT)]
        assert [t.detections for t in track_faces(faces, min_detections=2)] == [3]

    def test_tracks_are_numbered_by_start(self) -> None:
        faces = [face(4, BOB, RIGHT), face(0, ANN), face(2, ANN)]
        assert [(t.track, t.start) for t in track_faces(faces)] == [(0, 0), (1, 4)]

    def test_no_faces_no_tracks(self) -> None:
        assert track_faces([]) == []

    @pytest.mark.parametrize(("option", "value"), [("min_detections", 0), ("max_gap_s", -1.0)])
    def test_bad_options_are_named(self, option: str, value: float) -> None:
        with pytest.raises(ValueError, match=option):
            track_faces([], **{option: value})
