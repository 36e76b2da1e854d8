"""Who is in a scene (``tagger.faces.match``), on real SFace embeddings of ../shared/faces.

Every photo gives one face detection per variant: its largest face, after a mild OpenCV
augmentation (rotation, scale, brightness, JPEG re-encoding), as one person looks in successive
frames. A detection keeps the real box, score and measurements (size, sharpness, yaw) of its face.
Tracks come from ``track_faces`` on detections placed one second apart.

The gallery is one photo per performer (p01/1, p02/1, p03/2, p04/1, p05/1); p06 and p07 are people
the gallery does not know. Observed: a performer's other photos score 0.6-0.8 against the gallery,
other people 0.3 at most.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from tagger.analyzers.faces import FaceAnalyzer
from tagger.decide.faces import FaceTrack, track_faces
from tagger.detections import Detection
from tagger.faces.match import (
    AUTO_SIMILARITY,
    BEST_FACES,
    MIN_APPEARANCES,
    REVIEW_SIMILARITY,
    GalleryIndex,
    TrackIdentity,
    best_faces,
    face_quality,
    identify_tracks,
    scene_performers,
)
from tests.face_samples import VARIANTS, largest_face

PHOTOS = ("p01/1", "p01/2", "p01/3", "p01/4", "p02/1", "p02/2", "p03/1", "p03/2", "p03/3", "p04/1",
          "p05/1", "p06/1", "p07/1")

GALLERY_PHOTOS = {"p01": "p01/1", "p02": "p02/1", "p03": "p03/2", "p04": "p04/1", "p05": "p05/1"}
"""The one photo each performer has in the gallery."""

NAMES = {"p01": "Performer One", "p02": "Performer Two", "p03": "Performer Three", "p04": "Performer Four",
         "p05": "Performer Five"}


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return FaceAnalyzer.from_manifest(tmp_path_factory.mktemp("match-face-data"))


@pytest.fixture(scope="module")
def images(shared_dir: Path) -> dict[str, np.ndarray]:
    found = {}
    for photo in PHOTOS:
        image = cv2.imread(str(shared_dir / "faces" / f"{photo}.jpg"))
        assert image is not None, photo
        found[photo] = image
    return found


@pytest.fixture(scope="module")
def faces(analyzer: FaceAnalyzer, images: dict[str, np.ndarray]) -> dict[str, dict[str, Detection]]:
    """Per photo, per variant: the largest face."""
    return {photo: {name: largest_face(analyzer, augment(image)) for name, augment in VARIANTS.items()}
            for photo, image in images.items()}


@pytest.fixture(scope="module")
def gallery(faces: dict[str, dict[str, Detection]]) -> GalleryIndex:
    ids = tuple(GALLERY_PHOTOS)
    vectors = np.stack([faces[GALLERY_PHOTOS[p]]["orig"].embedding for p in ids])  # type: ignore[misc]
    return GalleryIndex(ids, vectors, NAMES)


def _shown(faces: dict[str, dict[str, Detection]], photos: Sequence[str], start: float,
           count: int = len(VARIANTS), step: float = 1.0) -> list[Detection]:
    """``count`` faces of ``photos`` (their variants in turn), one per frame from ``start``."""
    pool = [faces[photo][variant] for variant in VARIANTS for photo in photos]
    return [dataclasses.replace(face, time=start + step * n) for n, face in enumerate(pool[:count])]


def _who(faces: dict[str, dict[str, Detection]], track: FaceTrack, detections: Sequence[Detection]) -> str:
    """The photo all of a track's faces come from (fails if they are mixed)."""
    photo_of = {face.embedding.tobytes(): photo  # type: ignore[union-attr]
                for photo, variants in faces.items() for face in variants.values()}
    (photo,) = {photo_of[detections[i].embedding.tobytes()] for i in track.members}  # type: ignore[union-attr]
    return photo


def _embeddings(detections: Sequence[Detection]) -> np.ndarray:
    return np.stack([d.embedding for d in detections])  # type: ignore[misc]


def _brute_force(ids: Sequence[str], vectors: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Per performer: the mean over queries of the best similarity to its rows, by plain loops."""
    scores = {}
    for performer in sorted(set(ids)):
        rows = [vectors[i] for i in range(len(ids)) if ids[i] == performer]
        scores[performer] = float(np.mean([max(float(q @ r) for r in rows) for q in queries]))
    return scores


# --- GalleryIndex -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rows(faces: dict[str, dict[str, Detection]]) -> tuple[tuple[str, ...], np.ndarray]:
    """Eleven real embeddings of four performers, interleaved (no performer's rows adjacent)."""
    order = [("p01", "p01/1", "orig"), ("p03", "p03/2", "orig"), ("p02", "p02/1", "orig"),
             ("p01", "p01/1", "dark"), ("p04", "p04/1", "orig"), ("p03", "p03/2", "rot+8"),
             ("p02", "p02/1", "small"), ("p01", "p01/1", "jpeg30"), ("p04", "p04/1", "rot-8"),
             ("p03", "p03/2", "jpeg30"), ("p01", "p01/1", "rot+8")]
    ids = tuple(performer for performer, _, _ in order)
    vectors = np.stack([faces[photo][variant].embedding for _, photo, variant in order])  # type: ignore[misc]
    return ids, vectors


class TestGalleryIndex:
    def test_rows_come_out_grouped_by_performer_each_with_its_own_vector(
            self, rows: tuple[tuple[str, ...], np.ndarray]) -> None:
        ids, vectors = rows
        index = GalleryIndex(ids, vectors, {})
        assert index.performer_ids == tuple(sorted(ids))
        assert len(index) == len(ids)
        given = sorted((p, v.tobytes()) for p, v in zip(ids, vectors.astype(np.float32)))
        kept = sorted((p, v.tobytes()) for p, v in zip(index.performer_ids, index.vectors))
        assert kept == given

    def test_scores_are_the_mean_over_faces_of_each_performers_best_embedding(
            self, rows: tuple[tuple[str, ...], np.ndarray], faces: dict[str, dict[str, Detection]]) -> None:
        ids, vectors = rows
        queries = _embeddings(_shown(faces, ["p01/2", "p03/1", "p02/2", "p06/1"], 0.0, count=8))
        expected = _brute_force(ids, vectors, queries)
        scores = GalleryIndex(ids, vectors, {}).performer_scores(queries)
        assert scores.keys() == expected.keys()
        for performer, score in expected.items():
            assert scores[performer] == pytest.approx(score, abs=1e-5)

    def test_scores_do_not_depend_on_the_order_of_the_rows(
            self, rows: tuple[tuple[str, ...], np.ndarray], faces: dict[str, dict[str, Detection]]) -> None:
        ids, vectors = rows
        queries = _embeddings(_shown(faces, ["p01/3", "p04/1"], 0.0, count=4))
        reference = GalleryIndex(ids, vectors, {}).performer_scores(queries)
        for seed in range(3):
            order = np.random.default_rng(seed).permutation(len(ids))
            shuffled = GalleryIndex(tuple(ids[i] for i in order), vectors[order], {})
            assert shuffled.performer_scores(queries) == pytest.approx(reference, abs=1e-6)

    def test_only_the_top_performers_are_returned_best_first(
            self, rows: tuple[tuple[str, ...], np.ndarray], faces: dict[str, dict[str, Detection]]) -> None:
        ids, vectors = rows
        queries = _embeddings(_shown(faces, ["p01/2"], 0.0, count=3))
        ranked = sorted(_brute_force(ids, vectors, queries).items(), key=lambda item: -item[1])
        index = GalleryIndex(ids, vectors, {})
        for top in (1, 2, 4, 10):
            scores = index.performer_scores(queries, top=top)
            assert list(scores) == [performer for performer, _ in ranked[:top]]
        assert next(iter(index.performer_scores(queries, top=1))) == "p01"

    def test_an_empty_gallery_or_no_faces_give_no_scores(
            self, rows: tuple[tuple[str, ...], np.ndarray]) -> None:
        ids, vectors = rows
        assert GalleryIndex.empty().performer_scores(vectors[:2]) == {}
        assert len(GalleryIndex.empty()) == 0
        assert GalleryIndex(ids, vectors, {}).performer_scores(np.zeros((0, 128), np.float32)) == {}


# --- identifying tracks -----------------------------------------------------------------------

class TestIdentifyTracks:
    def test_a_track_of_a_performers_other_photos_is_that_performer(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p01/2", "p01/3", "p01/4"], 10.0)
        tracks = track_faces(detections)
        assert len(tracks) == 1
        (identity,) = identify_tracks(tracks, detections, gallery)
        assert identity.performer_id == "p01"
        assert identity.score >= AUTO_SIMILARITY
        assert identity.runner_up < REVIEW_SIMILARITY
        assert identity.track is tracks[0]

    @pytest.mark.parametrize("photo", ["p06/1", "p07/1"])
    def test_a_person_not_in_the_gallery_stays_unknown(
            self, photo: str, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, [photo], 0.0)
        tracks = track_faces(detections)
        assert len(tracks) == 1
        (identity,) = identify_tracks(tracks, detections, gallery)
        assert identity.performer_id is None
        assert 0.0 < identity.score < REVIEW_SIMILARITY  # the best score, for information

    def test_each_performer_is_identified_in_a_scene_of_several_people(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        # p02 and p04 on screen together, p06 later.
        detections = sorted(_shown(faces, ["p02/2"], 0.0) + _shown(faces, ["p04/1"], 0.0)
                            + _shown(faces, ["p06/1"], 30.0), key=lambda d: d.time)
        tracks = track_faces(detections)
        assert len(tracks) == 3
        identities = identify_tracks(tracks, detections, gallery)
        found = {_who(faces, i.track, detections): i.performer_id for i in identities}
        assert found == {"p02/2": "p02", "p04/1": "p04", "p06/1": None}

    def test_two_tracks_at_the_same_time_never_get_the_same_performer(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        # Two faces in every frame, both p01 (say a look-alike): the tracks overlap in time.
        detections = sorted(_shown(faces, ["p01/2"], 0.0) + _shown(faces, ["p01/3"], 0.0),
                            key=lambda d: d.time)
        tracks = track_faces(detections)
        assert len(tracks) == 2 and tracks[0].start <= tracks[1].end and tracks[1].start <= tracks[0].end
        for track in tracks:  # both resemble p01 best, well above the bar
            scores = gallery.performer_scores(
                _embeddings([detections[i] for i in best_faces(track, detections)]))
            assert max(scores, key=scores.__getitem__) == "p01" and scores["p01"] >= AUTO_SIMILARITY
        identities = identify_tracks(tracks, detections, gallery)
        assert sorted(str(i.performer_id) for i in identities) == ["None", "p01"]
        found = scene_performers(identities, gallery)
        assert [p.performer_id for p in found] == ["p01"]
        assert found[0].appearances == len(VARIANTS)

    def test_the_better_matching_of_two_overlapping_tracks_gets_the_performer(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        # p01/4 resembles the gallery's p01/1 more (0.83) than p01/2 does (0.74).
        detections = sorted(_shown(faces, ["p01/2"], 0.0) + _shown(faces, ["p01/4"], 0.0),
                            key=lambda d: d.time)
        tracks = track_faces(detections)
        identities = identify_tracks(tracks, detections, gallery)
        scores = {}
        for track in tracks:
            members = best_faces(track, detections)
            scores[track.track] = gallery.performer_scores(
                _embeddings([detections[i] for i in members]))["p01"]
        winner = max(scores, key=scores.__getitem__)
        assert {i.track.track: i.performer_id for i in identities} == {
            t: ("p01" if t == winner else None) for t in scores}
        assert next(i for i in identities if i.performer_id).score == pytest.approx(scores[winner], abs=1e-6)

    def test_two_tracks_of_one_person_at_different_times_both_get_the_performer(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        # p03/1 and p03/3 differ too much (0.56) for the tracker to join them across the gap.
        detections = _shown(faces, ["p03/1"], 0.0, count=4) + _shown(faces, ["p03/3"], 40.0, count=5)
        tracks = track_faces(detections)
        assert [(t.start, t.end, t.detections) for t in tracks] == [(0.0, 3.0, 4), (40.0, 44.0, 5)]
        identities = identify_tracks(tracks, detections, gallery)
        assert [i.performer_id for i in identities] == ["p03", "p03"]
        (found,) = scene_performers(identities, gallery)
        assert found.performer_id == "p03"
        assert found.name == "Performer Three"
        assert found.appearances == 9
        assert found.tracks == (0, 1)
        assert found.seconds == pytest.approx(3.0 + 4.0)
        assert found.score == pytest.approx(max(i.score for i in identities))

    def test_a_track_whose_faces_have_no_embedding_is_unknown(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = [dataclasses.replace(d, embedding=None) for d in _shown(faces, ["p01/1"], 0.0, count=3)]
        detections = [dataclasses.replace(d, box=detections[0].box) for d in detections]  # linked by box
        tracks = track_faces(detections)
        assert len(tracks) == 1
        (identity,) = identify_tracks(tracks, detections, gallery)
        assert (identity.performer_id, identity.score) == (None, 0.0)

    def test_an_empty_gallery_leaves_every_track_unknown(
            self, faces: dict[str, dict[str, Detection]]) -> None:
        detections = _shown(faces, ["p01/2"], 0.0)
        (identity,) = identify_tracks(track_faces(detections), detections, GalleryIndex.empty())
        assert (identity.performer_id, identity.score, identity.runner_up) == (None, 0.0, 0.0)

    def test_a_lower_review_bar_names_a_weaker_match(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p06/1"], 0.0)
        tracks = track_faces(detections)
        (unknown,) = identify_tracks(tracks, detections, gallery)
        (named,) = identify_tracks(tracks, detections, gallery, review_similarity=unknown.score)
        assert unknown.performer_id is None and named.performer_id is not None
        assert named.score == pytest.approx(unknown.score)


# --- scene performers -------------------------------------------------------------------------

class TestScenePerformers:
    def test_a_clear_match_with_enough_faces_is_added_without_asking(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p01/2", "p01/4"], 0.0, count=MIN_APPEARANCES)
        identities = identify_tracks(track_faces(detections), detections, gallery)
        (found,) = scene_performers(identities, gallery)
        assert (found.performer_id, found.appearances) == ("p01", MIN_APPEARANCES)
        assert found.score >= AUTO_SIMILARITY
        assert found.auto

    def test_a_clear_match_with_too_few_faces_is_only_suggested(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p01/2", "p01/4"], 0.0, count=MIN_APPEARANCES - 1)
        identities = identify_tracks(track_faces(detections), detections, gallery)
        (found,) = scene_performers(identities, gallery)
        assert found.performer_id == "p01" and found.score >= AUTO_SIMILARITY
        assert not found.auto

    def test_faces_of_several_tracks_add_up_to_enough_appearances(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p03/1"], 0.0, count=2) + _shown(faces, ["p03/3"], 40.0, count=2)
        tracks = track_faces(detections)
        assert [t.detections for t in tracks] == [2, 2]
        identities = identify_tracks(tracks, detections, gallery)
        assert max(i.score for i in identities) >= AUTO_SIMILARITY
        (found,) = scene_performers(identities, gallery)
        assert found.appearances == 4 >= MIN_APPEARANCES
        assert found.auto

    @pytest.mark.parametrize(("score", "appearances", "auto"), [
        (AUTO_SIMILARITY, MIN_APPEARANCES, True),
        (AUTO_SIMILARITY - 1e-6, MIN_APPEARANCES, False),
        (AUTO_SIMILARITY, MIN_APPEARANCES - 1, False),
        ((AUTO_SIMILARITY + REVIEW_SIMILARITY) / 2, 12, False),
    ])
    def test_auto_needs_both_the_auto_similarity_and_the_minimum_appearances(
            self, score: float, appearances: int, auto: bool, faces: dict[str, dict[str, Detection]],
            gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p01/2", "p01/3", "p01/4"], 0.0, count=appearances, step=0.5)
        (track,) = track_faces(detections)
        identity = TrackIdentity(track, "p01", score, 0.1)
        (found,) = scene_performers([identity], gallery)
        assert found.auto is auto

    def test_thresholds_can_be_set(self, faces: dict[str, dict[str, Detection]],
                                   gallery: GalleryIndex) -> None:
        detections = _shown(faces, ["p01/2"], 0.0, count=2)
        identities = identify_tracks(track_faces(detections), detections, gallery)
        (score,) = [i.score for i in identities]
        assert scene_performers(identities, gallery, auto_similarity=score, min_appearances=2)[0].auto
        stricter = scene_performers(identities, gallery, auto_similarity=score + 1e-4, min_appearances=2)
        assert not stricter[0].auto

    def test_performers_are_listed_best_score_first_and_unknowns_are_left_out(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        detections = (_shown(faces, ["p02/2"], 0.0) + _shown(faces, ["p06/1"], 20.0)
                      + _shown(faces, ["p01/4"], 40.0) + _shown(faces, ["p05/1"], 60.0))
        identities = identify_tracks(track_faces(detections), detections, gallery)
        assert sum(i.performer_id is None for i in identities) == 1
        found = scene_performers(identities, gallery)
        assert sorted(p.performer_id for p in found) == ["p01", "p02", "p05"]
        assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
        assert {p.performer_id: p.name for p in found} == {p: NAMES[p] for p in ("p01", "p02", "p05")}

    def test_a_performer_missing_from_the_names_is_named_by_its_id(
            self, faces: dict[str, dict[str, Detection]], gallery: GalleryIndex) -> None:
        nameless = GalleryIndex(gallery.performer_ids, gallery.vectors, {})
        detections = _shown(faces, ["p01/2"], 0.0)
        (found,) = scene_performers(identify_tracks(track_faces(detections), detections, nameless), nameless)
        assert found.name == "p01"

    def test_no_tracks_give_no_performers(self, gallery: GalleryIndex) -> None:
        assert identify_tracks([], [], gallery) == []
        assert scene_performers([], gallery) == []


# --- face quality -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frontal(faces: dict[str, dict[str, Detection]]) -> Detection:
    face = faces["p01/1"]["orig"]
    assert face.details is not None
    assert face.details["size"] > 112 and face.details["sharpness"] > 50
    assert abs(face.details["yaw"]) < 0.15
    return face


class TestFaceQuality:
    def test_a_large_sharp_frontal_face_scores_its_detection_score(self, frontal: Detection) -> None:
        assert face_quality(frontal) == pytest.approx(frontal.score)

    def test_a_small_face_ranks_below_the_same_face_large(
            self, analyzer: FaceAnalyzer, images: dict[str, np.ndarray], frontal: Detection) -> None:
        small = largest_face(analyzer, cv2.resize(images["p01/1"], None, fx=0.16, fy=0.16,
                                                   interpolation=cv2.INTER_AREA))
        assert small.details is not None and small.details["size"] < 40
        assert face_quality(small) < 0.2 * face_quality(frontal)

    def test_a_blurred_face_ranks_below_the_same_face_sharp(
            self, analyzer: FaceAnalyzer, images: dict[str, np.ndarray], frontal: Detection) -> None:
        blurred = largest_face(analyzer, cv2.GaussianBlur(images["p01/1"], (0, 0), 5))
        assert blurred.details is not None and blurred.details["sharpness"] < 50
        assert face_quality(blurred) < 0.6 * face_quality(frontal)

    def test_a_turned_face_ranks_below_a_frontal_one(self, faces: dict[str, dict[str, Detection]],
                                                     frontal: Detection) -> None:
        turned = faces["p01/4"]["orig"]  # the same person, head turned (yaw about 0.24)
        assert turned.details is not None and abs(turned.details["yaw"]) > 0.2
        assert turned.score >= frontal.score - 0.01  # as clearly detected
        assert face_quality(turned) < 0.9 * face_quality(frontal)

    @pytest.mark.parametrize("change", [{"size": 20.0}, {"sharpness": 5.0}, {"yaw": 0.6}, {"yaw": -0.6}])
    def test_each_defect_alone_lowers_the_quality(self, change: dict[str, float], frontal: Detection) -> None:
        worse = dataclasses.replace(frontal, details={**(frontal.details or {}), **change})
        assert face_quality(worse) < 0.5 * face_quality(frontal)

    def test_quality_stays_between_zero_and_the_detection_score(
            self, faces: dict[str, dict[str, Detection]]) -> None:
        every_face = list(itertools.chain.from_iterable(variants.values() for variants in faces.values()))
        assert every_face, "the photos have faces (else this checks nothing)"
        for face in every_face:
            assert 0.0 < face_quality(face) <= face.score


# --- best faces ---------------------------------------------------------------------------------

class TestBestFaces:
    def test_faces_without_an_embedding_are_skipped_even_when_best(
            self, faces: dict[str, dict[str, Detection]]) -> None:
        shown = _shown(faces, ["p01/1"], 0.0, count=4)
        box = shown[0].box
        # The sharpest, largest face of the track has no embedding; it joins the track by its box.
        detections = [dataclasses.replace(d, box=box) for d in shown]
        detections.insert(2, dataclasses.replace(faces["p01/1"]["orig"], time=1.5, box=box, embedding=None))
        (track,) = track_faces(detections)
        assert 2 in track.members and track.detections == 5
        assert face_quality(detections[2]) >= max(face_quality(d) for d in detections)
        chosen = best_faces(track, detections)
        assert 2 not in chosen
        assert sorted(chosen) == [0, 1, 3, 4]

    def test_best_faces_come_best_first_and_at_most_count(
            self, faces: dict[str, dict[str, Detection]]) -> None:
        detections = _shown(faces, ["p01/2", "p01/3", "p01/4"], 0.0, count=12, step=0.5)
        (track,) = track_faces(detections)
        chosen = best_faces(track, detections)
        assert len(chosen) == BEST_FACES
        qualities = [face_quality(detections[i]) for i in chosen]
        assert qualities == sorted(qualities, reverse=True)
        assert min(qualities) >= max(face_quality(detections[i]) for i in track.members if i not in chosen)
        assert best_faces(track, detections, count=2) == chosen[:2]

    def test_a_track_of_faces_without_embeddings_has_no_best_faces(
            self, faces: dict[str, dict[str, Detection]]) -> None:
        face = faces["p01/1"]["orig"]
        detections = [dataclasses.replace(face, time=float(t), embedding=None) for t in range(3)]
        (track,) = track_faces(detections)
        assert isinstance(track, FaceTrack) and track.embedding is None
        assert best_faces(track, detections) == []
