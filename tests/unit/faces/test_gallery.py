"""The performer face gallery (``tagger.faces.gallery``) and recognition in a run
(``tagger.faces.recognition.PerformerRecognition``), on a real store, the real faces analyzer and the real
photos of ../shared/faces.

The only stand-in is the I/O edge to Stash: performers are ``StashPerformer`` objects whose
``image_path`` is a URL chosen here, and ``fetch`` serves each URL from a shared photo (or from the
bytes a case needs). Scenes are either face detections of photos placed one second apart (their
variants as successive frames), or small real videos made with ``make_sample_video`` with heads cut
from the photos pasted in, analysed frame by frame, so that face crops can be cut from the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tagger.analyzers.faces import FaceAnalyzer
from tagger.decide.faces import FaceTrack, track_faces
from tagger.detections import Detection
from tagger.errors import StashError
from tagger.faces.gallery import SCENE_FACES, Gallery, GalleryReport
from tagger.faces.match import AUTO_SIMILARITY, TrackIdentity, best_faces, face_quality, identify_tracks
from tagger.faces.recognition import MIN_UNKNOWN_APPEARANCES, PerformerRecognition
from tagger.media.frames import SamplingPlan, iter_frames
from tagger.media.sample import FaceSpec, make_sample_video
from tagger.stashside.stash import StashPerformer
from tagger.stashside.store import Store
from tagger.writeback.review import LIBRARY, ReviewQueue
from tests.face_samples import VARIANTS as ALL_VARIANTS
from tests.face_samples import largest_face

MODEL = "sface-test-1"
"""The face model version the gallery is kept for."""

URL = "http://stash.test:9999/performer/{id}/image?t={stamp}"
"""How Stash spells a performer's image (``t=`` busts caches: our change stamp)."""

DEFAULT_IMAGE = "http://stash.test:9999/performer/{id}/image?default=true"

Faces = dict[str, dict[str, Detection]]
"""Per photo ('p01/1'), per variant: its largest face."""


VARIANTS = {name: augment for name, augment in ALL_VARIANTS.items() if name != "jpeg30"}
"""Mild augmentations only (no JPEG re-encoding)."""

PHOTOS = ("p01/1", "p01/2", "p01/3", "p01/4", "p02/1", "p02/2", "p03/1", "p03/2", "p03/3", "p06/1", "p07/1")


@dataclasses.dataclass(frozen=True)
class _Record:
    frame_size: tuple[int, int] | None


@dataclasses.dataclass(frozen=True)
class _Result:
    """What recognition reads of an analysis: the file, the detections, the analysed frame size."""

    file: str
    detections: list[Detection]
    record: _Record = _Record(None)


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return FaceAnalyzer.from_manifest(tmp_path_factory.mktemp("gallery-face-data"))


@pytest.fixture(scope="module")
def photo_files(shared_dir: Path) -> dict[str, Path]:
    return {photo: shared_dir / "faces" / f"{photo}.jpg" for photo in PHOTOS}


@pytest.fixture(scope="module")
def images(photo_files: dict[str, Path]) -> dict[str, np.ndarray]:
    found = {}
    for photo, path in photo_files.items():
        image = cv2.imread(str(path))
        assert image is not None, path
        found[photo] = image
    return found


@pytest.fixture(scope="module")
def faces(analyzer: FaceAnalyzer, images: dict[str, np.ndarray]) -> Faces:
    """Per photo, per variant: the largest face."""
    return {photo: {name: largest_face(analyzer, augment(image)) for name, augment in VARIANTS.items()}
            for photo, image in images.items()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state" / "tagger.sqlite") as opened:
        yield opened


class _Stash:
    """The images Stash serves, by URL; counts what is fetched."""

    def __init__(self, photo_files: dict[str, Path]) -> None:
        self.photo_files = photo_files
        self.served: dict[str, str | bytes] = {}
        self.fetched: list[str] = []

    def performer(self, pid: str, name: str, image: str | bytes | None, stamp: int = 1) -> StashPerformer:
        """A performer whose image is a photo ('p01/1'), raw bytes, or Stash's default (None)."""
        if image is None:
            return StashPerformer(pid, name, image_path=DEFAULT_IMAGE.format(id=pid))
        url = URL.format(id=pid, stamp=stamp)
        self.served[url] = image
        return StashPerformer(pid, name, image_path=url)

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.served:
            raise StashError(f"Stash answered HTTP 404 for {url}")
        image = self.served[url]
        return image if isinstance(image, bytes) else self.photo_files[image].read_bytes()


@pytest.fixture
def stash(photo_files: dict[str, Path]) -> _Stash:
    return _Stash(photo_files)


def _grey_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((300, 240, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def _stored(store: Store, performer_id: str, source: str, model: str = MODEL) -> np.ndarray:
    (blob,) = store.db.execute("SELECT embedding FROM gallery WHERE performer_id = ? AND source = ? "
                               "AND model = ?", (performer_id, source, model)).fetchone()
    return np.frombuffer(blob, np.float32)


def _status(store: Store, performer_id: str) -> str:
    (status,) = store.db.execute("SELECT status FROM gallery_performers WHERE performer_id = ?",
                                 (performer_id,)).fetchone()
    return str(status)


def _shown(faces: Faces, photos: Sequence[str], start: float,
           count: int = len(VARIANTS)) -> list[Detection]:
    """``count`` faces of ``photos`` (their variants in turn), one per second from ``start``."""
    pool = [faces[photo][variant] for variant in VARIANTS for photo in photos]
    return [dataclasses.replace(face, time=start + n) for n, face in enumerate(pool[:count])]


# --- refresh ----------------------------------------------------------------------------------

class TestRefresh:
    def test_each_performers_image_gives_one_image_row_of_its_face(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces) -> None:
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1")]
        report = Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer)
        assert (report.performers, report.updated, report.problems) == (2, ["One", "Two"], [])
        gallery = Gallery(store, MODEL)
        assert gallery.sources("1") == ["image"] and gallery.sources("2") == ["image"]
        assert float(_stored(store, "1", "image") @ faces["p01/1"]["orig"].embedding) > 0.99
        assert sorted(stash.fetched) == sorted(p.image_path for p in performers)
        index = gallery.index()
        assert index.performer_ids == ("1", "2") and dict(index.names) == {"1": "One", "2": "Two"}

    def test_the_gallery_recognises_a_performers_other_photo(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces) -> None:
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1"),
                      stash.performer("3", "Three", "p03/2")]
        Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer)
        index = Gallery(store, MODEL).index()
        for photo, performer in (("p01/3", "1"), ("p02/2", "2"), ("p03/1", "3")):
            scores = index.performer_scores(faces[photo]["orig"].embedding[None])  # type: ignore[index]
            assert max(scores, key=scores.__getitem__) == performer
            assert scores[performer] >= AUTO_SIMILARITY

    def test_a_default_image_is_not_fetched_and_gives_no_row(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("5", "Faceless", None)]
        report = Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer)
        assert (report.without_image, report.updated, report.problems) == (1, ["One"], [])
        assert stash.fetched == [performers[0].image_path]
        assert Gallery(store, MODEL).sources("5") == []
        assert _status(store, "5") == "no-image"
        assert Gallery(store, MODEL).index().performer_ids == ("1",)

    def test_broken_faceless_and_missing_images_are_problems_naming_the_performer_and_the_rest_go_on(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        performers = [stash.performer("7", "Broken Image", b"<html>not an image</html>"),
                      stash.performer("8", "Grey Square", _grey_jpeg()),
                      StashPerformer("9", "Gone Missing", image_path=URL.format(id="9", stamp=1)),  # 404
                      stash.performer("1", "One", "p01/1")]
        warnings: list[tuple[str, str]] = []
        report = Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer,
                                               lambda level, text: warnings.append((level, text)))
        assert report.updated == ["One"]
        assert len(report.problems) == 3
        for problem, (pid, name) in zip(report.problems, [("7", "Broken Image"), ("8", "Grey Square"),
                                                          ("9", "Gone Missing")]):
            assert repr(name) in problem and f"({pid})" in problem
        assert "decoded" in report.problems[0] and "no clear face" in report.problems[1]
        assert "404" in report.problems[2]
        assert warnings == [("warning", problem) for problem in report.problems]
        assert [_status(store, pid) for pid in ("7", "8", "9", "1")] == ["broken", "no-face", "broken", "ok"]
        assert Gallery(store, MODEL).index().performer_ids == ("1",)

    def test_a_second_refresh_of_unchanged_images_fetches_nothing(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1"),
                      stash.performer("5", "Faceless", None),
                      stash.performer("8", "Grey Square", _grey_jpeg())]
        Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer)
        before = _stored(store, "1", "image").copy()
        stash.fetched.clear()
        report = Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer)
        assert stash.fetched == []
        assert (report.unchanged, report.updated, report.problems, report.removed) == (4, [], [], 0)
        np.testing.assert_array_equal(_stored(store, "1", "image"), before)

    def test_a_changed_image_path_is_embedded_again(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces) -> None:
        first = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1")]
        Gallery(store, MODEL).refresh(first, stash.fetch, analyzer)
        stash.fetched.clear()
        changed = [stash.performer("1", "One", "p01/4", stamp=2), stash.performer("2", "Two", "p02/1")]
        report = Gallery(store, MODEL).refresh(changed, stash.fetch, analyzer)
        assert stash.fetched == [changed[0].image_path]
        assert (report.updated, report.unchanged) == (["One"], 1)
        assert Gallery(store, MODEL).sources("1") == ["image"]
        assert float(_stored(store, "1", "image") @ faces["p01/4"]["orig"].embedding) > 0.99

    def test_an_image_replaced_by_the_default_loses_its_row(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        Gallery(store, MODEL).refresh([stash.performer("1", "One", "p01/1")], stash.fetch, analyzer)
        report = Gallery(store, MODEL).refresh([stash.performer("1", "One", None)], stash.fetch, analyzer)
        assert report.without_image == 1
        assert Gallery(store, MODEL).sources("1") == []
        assert len(Gallery(store, MODEL).index()) == 0

    def test_a_performer_gone_from_stash_is_dropped_with_all_its_faces(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces) -> None:
        one, two = stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1")
        gallery = Gallery(store, MODEL)
        gallery.refresh([one, two], stash.fetch, analyzer)
        gallery.set_scene_faces("2", "40", [faces["p02/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        report = gallery.refresh([one], stash.fetch, analyzer)
        assert (report.removed, report.unchanged) == (1, 1)
        assert gallery.sources("2") == []
        assert gallery.index().performer_ids == ("1",)
        assert store.db.execute("SELECT performer_id FROM gallery_performers").fetchall() == [("1",)]

    def test_rows_of_another_model_are_ignored_then_dropped_by_the_next_refresh(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces) -> None:
        performers = [stash.performer("1", "One", "p01/1")]
        old = Gallery(store, "sface-old")
        old.refresh(performers, stash.fetch, analyzer)
        old.set_scene_faces("1", "40", [faces["p01/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        assert len(old.index()) == 2
        current = Gallery(store, MODEL)
        assert len(current.index()) == 0 and current.sources("1") == []
        stash.fetched.clear()
        report = current.refresh(performers, stash.fetch, analyzer)
        assert stash.fetched == [performers[0].image_path]  # the new model embeds the image again
        assert report.updated == ["One"]
        assert store.db.execute("SELECT COUNT(*) FROM gallery WHERE model != ?", (MODEL,)).fetchone() == (0,)
        assert current.sources("1") == ["image"] and len(current.index()) == 1

    def test_progress_reaches_one_and_the_report_counts_everything(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("5", "Faceless", None),
                      stash.performer("8", "Grey Square", _grey_jpeg())]
        seen: list[float] = []
        report = Gallery(store, MODEL).refresh(performers, stash.fetch, analyzer, progress=seen.append)
        assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
        assert isinstance(report, GalleryReport)
        assert report.to_dict() == {"performers": 3, "updated": 1, "unchanged": 0, "without_image": 1,
                                    "problems": report.problems, "removed": 0}
        assert len(report.problems) == 1

    def test_an_image_that_could_not_be_fetched_is_tried_again_at_the_next_refresh(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> None:
        performer = stash.performer("1", "One", "p01/1")

        def timing_out(url: str) -> bytes:
            stash.fetched.append(url)
            raise StashError(f"{url} cannot be read: timed out")

        first = Gallery(store, MODEL).refresh([performer], timing_out, analyzer)
        assert len(first.problems) == 1 and "timed out" in first.problems[0]
        stash.fetched.clear()
        second = Gallery(store, MODEL).refresh([performer], stash.fetch, analyzer)  # Stash answers again
        assert stash.fetched == [performer.image_path]
        assert second.updated == ["One"]


# --- faces from scenes and clusters -------------------------------------------------------------

class TestSetFaces:
    @pytest.fixture
    def gallery(self, store: Store, stash: _Stash, analyzer: FaceAnalyzer) -> Gallery:
        gallery = Gallery(store, MODEL)
        gallery.refresh([stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1")],
                        stash.fetch, analyzer)
        return gallery

    def test_scene_faces_join_the_performers_image_in_the_index(
            self, gallery: Gallery, faces: Faces) -> None:
        vectors = [faces["p01/2"][v].embedding for v in ("orig", "dark")]
        gallery.set_scene_faces("1", "40", vectors, [0.9, 0.8])  # type: ignore[arg-type]
        assert gallery.sources("1") == ["image", "scene:40/0", "scene:40/1"]
        index = gallery.index()
        assert index.performer_ids == ("1", "1", "1", "2")
        np.testing.assert_array_equal(_stored(gallery.store, "1", "scene:40/1"), vectors[1])

    def test_a_scenes_faces_replace_its_earlier_ones(
            self, gallery: Gallery, faces: Faces) -> None:
        gallery.set_scene_faces("1", "40", [faces["p01/2"][v].embedding for v in ("orig", "dark", "small")],  # type: ignore[misc]
                                [0.9, 0.8, 0.7])
        gallery.set_scene_faces("1", "400", [faces["p01/4"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        again = faces["p01/3"]["orig"].embedding
        gallery.set_scene_faces("1", "40", [again], [0.95])  # type: ignore[list-item]
        assert gallery.sources("1") == ["image", "scene:40/0", "scene:400/0"]
        np.testing.assert_array_equal(_stored(gallery.store, "1", "scene:40/0"), again)

    def test_a_scene_confirming_another_performer_takes_back_what_it_gave_the_first(
            self, gallery: Gallery, faces: Faces) -> None:
        gallery.set_scene_faces("1", "40", [faces["p02/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        gallery.set_scene_faces("2", "40", [faces["p02/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        assert gallery.sources("1") == ["image"]
        assert gallery.sources("2") == ["image", "scene:40/0"]

    def test_forgetting_a_scene_removes_only_its_faces(
            self, gallery: Gallery, faces: Faces) -> None:
        gallery.set_scene_faces("1", "40", [faces["p01/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        gallery.set_scene_faces("1", "400", [faces["p01/4"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        gallery.set_scene_faces("2", "41", [faces["p02/2"]["orig"].embedding], [0.9])  # type: ignore[list-item]
        gallery.forget_scene("40")
        assert gallery.sources("1") == ["image", "scene:400/0"]
        assert gallery.sources("2") == ["image", "scene:41/0"]
        gallery.forget_scene("40")  # nothing left to forget
        assert len(gallery.index()) == 4

    def test_faces_with_a_name_register_a_performer_the_gallery_did_not_know(
            self, gallery: Gallery, faces: Faces) -> None:
        vectors = [faces["p06/1"][v].embedding for v in ("orig", "rot+8", "dark")]
        gallery.set_faces("77", "cluster:3", vectors, [0.9, 0.8, 0.7], name="Unknown person #3")  # type: ignore[arg-type]
        index = gallery.index()
        assert index.performer_ids.count("77") == 3
        assert index.names["77"] == "Unknown person #3"
        assert gallery.sources("77") == ["cluster:3/0", "cluster:3/1", "cluster:3/2"]
        scores = index.performer_scores(faces["p06/1"]["small"].embedding[None])  # type: ignore[index]
        assert max(scores, key=scores.__getitem__) == "77"

    def test_a_registered_performer_keeps_its_faces_while_stash_lists_it_without_an_image(
            self, gallery: Gallery, stash: _Stash, analyzer: FaceAnalyzer,
            faces: Faces) -> None:
        gallery.set_faces("77", "cluster:3", [faces["p06/1"]["orig"].embedding], [0.9], name="Newcomer")  # type: ignore[list-item]
        performers = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1"),
                      stash.performer("77", "Newcomer", None)]
        stash.fetched.clear()
        report = gallery.refresh(performers, stash.fetch, analyzer)
        assert (report.unchanged, report.removed, stash.fetched) == (3, 0, [])
        assert gallery.sources("77") == ["cluster:3/0"]


# --- recognition in a run -----------------------------------------------------------------------

SCENE_VIDEOS: dict[str, list[tuple[str, str, tuple[float, float]]]] = {
    "11": [("p06/1", "orig", (0.25, 0.5)), ("p01/1", "orig", (0.75, 0.5))],
    "12": [("p06/1", "dark", (0.6, 0.45))],
    "13": [("p06/1", "rot+8", (0.35, 0.55)), ("p07/1", "orig", (0.8, 0.5))],
    "14": [("p07/1", "dark", (0.3, 0.5))],
    "15": [("p07/1", "rot+8", (0.55, 0.5))],
}
"""Scene id: the heads shown from 0 to 5 s (photo, variant, centre as fractions of the frame)."""

FRAME_SIZE = (640, 360)


def _head(analyzer: FaceAnalyzer, image: np.ndarray, width: int = 150) -> np.ndarray:
    """The head and some of the background around the largest face, ``width`` pixels wide."""
    x, y, w, h = (float(v) for v in max(analyzer.detect(image), key=lambda f: float(f.box[2] * f.box[3])).box)
    left, top = int(max(0, x - w / 2)), int(max(0, y - h / 2))
    right, bottom = int(min(image.shape[1], x + 1.5 * w)), int(min(image.shape[0], y + 1.5 * h))
    head = image[top:bottom, left:right]
    size = (width, round(width * head.shape[0] / head.shape[1]))
    return cv2.resize(head, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def videos(analyzer: FaceAnalyzer, images: dict[str, np.ndarray],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, _Result]:
    """Per scene of ``SCENE_VIDEOS``: a 5 s video and its faces, sampled once a second."""
    folder = tmp_path_factory.mktemp("gallery-videos")
    found = {}
    for seed, (scene, shown) in enumerate(SCENE_VIDEOS.items(), start=1):
        heads = [FaceSpec(_head(analyzer, VARIANTS[variant](images[photo])), 0.0, 5.0, position)
                 for photo, variant, position in shown]
        truth = make_sample_video(folder / f"scene-{scene}.mp4", duration_s=5.0, size=FRAME_SIZE,
                                  cut_times=(), black_spans=(), faces=heads, seed=seed)
        frames = list(iter_frames(str(truth.path), SamplingPlan("interval", 1.0), max_side=640))
        assert frames[0].image.shape[:2] == (FRAME_SIZE[1], FRAME_SIZE[0])
        detections = analyzer.analyze(frames)
        assert len(detections) == 5 * len(shown), scene
        found[scene] = _Result(str(truth.path), detections, _Record(FRAME_SIZE))
    return found


@pytest.fixture
def recognition(store: Store, stash: _Stash, analyzer: FaceAnalyzer, tmp_path: Path) -> PerformerRecognition:
    """Recognition with a gallery of performers 1 (p01), 2 (p02) and 3 (p03), refreshed."""
    recognition = PerformerRecognition(store, None, None, model=MODEL, crops_dir=tmp_path / "crops")
    assert recognition.gallery is not None
    performers = [stash.performer("1", "One", "p01/1"), stash.performer("2", "Two", "p02/1"),
                  stash.performer("3", "Three", "p03/2")]
    assert recognition.gallery.refresh(performers, stash.fetch, analyzer).updated == ["One", "Two", "Three"]
    return recognition


def _identify(recognition: PerformerRecognition, detections: Sequence[Detection]) -> list[TrackIdentity]:
    return identify_tracks(track_faces(detections), detections, recognition.index())


def _photo_scene(detections: list[Detection], tmp_path: Path) -> _Result:
    """A scene of photo faces: its video is not there, so no crop can be cut."""
    return _Result(str(tmp_path / "not-a-video.mp4"), detections, _Record(FRAME_SIZE))


def _remember(recognition: PerformerRecognition, scene_id: str, result: _Result) -> int:
    """Identify the scene's tracks, and keep the unknown ones."""
    return recognition.remember_unknown(scene_id, _identify(recognition, result.detections), result)


def _unknown_rows(store: Store, scene_id: str | None = None) -> dict[str, tuple[int, int | None]]:
    """key: (appearances, cluster id) of the stored unknown faces (of one scene)."""
    rows = store.db.execute("SELECT key, scene_id, appearances, cluster_id FROM unknown_faces "
                            "WHERE model = ?", (MODEL,)).fetchall()
    return {key: (appearances, cluster) for key, scene, appearances, cluster in rows
            if scene_id is None or scene == scene_id}


def _track_of(identities: Sequence[TrackIdentity], performer: str | None) -> FaceTrack:
    (track,) = [i.track for i in identities if i.performer_id == performer]
    return track


class TestLearn:
    def test_a_scene_with_its_one_performer_in_one_matching_track_teaches_its_best_faces(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        scene = videos["11"]  # p01 (performer 1) beside an unknown person
        identities = _identify(recognition, scene.detections)
        assert sorted(str(i.performer_id) for i in identities) == ["1", "None"]
        before = len(recognition.index())
        assert recognition.learn("11", ["1"], identities, scene)
        gallery = recognition.gallery
        assert gallery is not None
        assert gallery.sources("1") == ["image", *(f"scene:11/{n}" for n in range(SCENE_FACES))]
        chosen = best_faces(_track_of(identities, "1"), scene.detections, SCENE_FACES)
        for n, index in enumerate(chosen):
            np.testing.assert_array_equal(_stored(recognition.store, "1", f"scene:11/{n}"),
                                          scene.detections[index].embedding)
        assert len(recognition.index()) == before + SCENE_FACES  # the next scene is matched with them

    def test_the_faces_learned_are_the_tracks_best_by_quality(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        detections = _shown(faces, ["p01/2", "p01/3", "p01/4"], 0.0, count=9)
        identities = _identify(recognition, detections)
        assert recognition.learn("20", ["1"], identities, _photo_scene(detections, tmp_path))
        qualities = sorted((face_quality(d) for d in detections), reverse=True)[:SCENE_FACES]
        stored = [q for (q,) in recognition.store.db.execute(
            "SELECT quality FROM gallery WHERE source LIKE 'scene:20/%' ORDER BY source")]
        assert stored == pytest.approx(qualities)

    def test_learning_a_scene_again_replaces_what_it_taught(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        first = _shown(faces, ["p01/2"], 0.0)
        assert recognition.learn("20", ["1"], _identify(recognition, first), _photo_scene(first, tmp_path))
        second = _shown(faces, ["p01/4"], 0.0, count=2)
        assert recognition.learn("20", ["1"], _identify(recognition, second), _photo_scene(second, tmp_path))
        assert recognition.gallery is not None
        assert recognition.gallery.sources("1") == ["image", "scene:20/0", "scene:20/1"]
        learned = {_stored(recognition.store, "1", f"scene:20/{n}").tobytes() for n in range(2)}
        assert learned == {d.embedding.tobytes() for d in second}  # type: ignore[union-attr]

    @pytest.mark.parametrize("performers", [["1", "2"], []], ids=["two performers", "no performer"])
    def test_a_scene_without_exactly_one_performer_teaches_nothing_and_forgets_what_it_taught(
            self, performers: list[str], recognition: PerformerRecognition,
            videos: dict[str, _Result]) -> None:
        scene = videos["11"]
        identities = _identify(recognition, scene.detections)
        assert recognition.learn("11", ["1"], identities, scene)
        assert not recognition.learn("11", performers, identities, scene)
        assert recognition.gallery is not None
        assert recognition.gallery.sources("1") == ["image"]

    def test_a_track_of_another_performer_in_the_scene_stops_learning(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        together = _shown(faces, ["p01/2"], 0.0) + _shown(faces, ["p02/2"], 0.0)
        detections = sorted(together, key=lambda d: d.time)
        identities = _identify(recognition, detections)
        assert sorted(str(i.performer_id) for i in identities) == ["1", "2"]
        assert not recognition.learn("20", ["1"], identities, _photo_scene(detections, tmp_path))
        assert recognition.gallery is not None
        assert recognition.gallery.sources("1") == ["image"] and recognition.gallery.sources("2") == ["image"]

    def test_a_scene_whose_performer_is_not_found_teaches_nothing(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        scene = videos["11"]  # shows performer 1, tagged with performer 2
        assert not recognition.learn("11", ["2"], _identify(recognition, scene.detections), scene)
        assert recognition.gallery is not None
        assert recognition.gallery.sources("1") == ["image"] and recognition.gallery.sources("2") == ["image"]

    def test_two_tracks_matching_the_performer_teach_nothing(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        # p03 twice, 40 s apart; the photos differ too much for the tracker to join the tracks.
        detections = _shown(faces, ["p03/1"], 0.0, count=4) + _shown(faces, ["p03/3"], 40.0, count=4)
        identities = _identify(recognition, detections)
        assert [i.performer_id for i in identities] == ["3", "3"]
        assert all(i.score >= AUTO_SIMILARITY for i in identities)
        assert not recognition.learn("20", ["3"], identities, _photo_scene(detections, tmp_path))
        assert recognition.gallery is not None
        assert recognition.gallery.sources("3") == ["image"]

    def test_a_match_below_the_auto_bar_teaches_nothing(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        detections = _shown(faces, ["p01/2"], 0.0)
        (track,) = track_faces(detections)
        weak = TrackIdentity(track, "1", AUTO_SIMILARITY - 0.01, 0.1)
        assert not recognition.learn("20", ["1"], [weak], _photo_scene(detections, tmp_path))
        assert recognition.learn("20", ["1"], [dataclasses.replace(weak, score=AUTO_SIMILARITY)],
                                 _photo_scene(detections, tmp_path))


class TestRememberUnknown:
    def test_an_unmatched_track_is_kept_with_a_crop_of_its_face(
            self, recognition: PerformerRecognition, videos: dict[str, _Result], analyzer: FaceAnalyzer,
            faces: Faces) -> None:
        scene = videos["11"]  # an unknown person (p06) beside performer 1
        identities = _identify(recognition, scene.detections)
        unknown = _track_of(identities, None)
        assert recognition.remember_unknown("11", identities, scene) == 1
        key = f"scene:11/track:{unknown.track}"
        assert _unknown_rows(recognition.store) == {key: (5, None)}
        crop = cv2.imread(str(recognition.crop_path(key)))
        assert crop is not None and crop.shape[0] < FRAME_SIZE[1] and crop.shape[1] < FRAME_SIZE[0]
        face = largest_face(analyzer, cv2.copyMakeBorder(crop, 60, 60, 60, 60, cv2.BORDER_REPLICATE))
        assert float(face.embedding @ faces["p06/1"]["orig"].embedding) > 0.6  # type: ignore[operator]
        assert float(face.embedding @ faces["p01/1"]["orig"].embedding) < 0.4  # type: ignore[operator]

    def test_the_row_is_the_mean_of_the_tracks_best_faces_at_its_best_face(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        detections = _shown(faces, ["p06/1"], 10.0)
        identities = _identify(recognition, detections)
        assert recognition.remember_unknown("20", identities, _photo_scene(detections, tmp_path)) == 1
        chosen = best_faces(identities[0].track, detections)
        mean = np.mean([detections[i].embedding for i in chosen], axis=0)
        (blob, best_time, quality, appearances) = recognition.store.db.execute(
            "SELECT embedding, best_time, quality, appearances FROM unknown_faces").fetchone()
        np.testing.assert_allclose(np.frombuffer(blob, np.float32), mean / np.linalg.norm(mean), atol=1e-6)
        assert best_time == detections[chosen[0]].time
        assert quality == pytest.approx(max(face_quality(detections[i]) for i in chosen))
        assert appearances == len(detections)

    def test_a_track_with_too_few_faces_is_not_kept(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        detections = (_shown(faces, ["p06/1"], 0.0, count=MIN_UNKNOWN_APPEARANCES)
                      + _shown(faces, ["p07/1"], 30.0, count=MIN_UNKNOWN_APPEARANCES - 1))
        identities = _identify(recognition, detections)
        assert [i.performer_id for i in identities] == [None, None]
        assert recognition.remember_unknown("20", identities, _photo_scene(detections, tmp_path)) == 1
        assert _unknown_rows(recognition.store) == {"scene:20/track:0": (MIN_UNKNOWN_APPEARANCES, None)}

    def test_a_video_that_cannot_be_read_costs_only_the_crops(
            self, store: Store, stash: _Stash, analyzer: FaceAnalyzer, faces: Faces,
            tmp_path: Path) -> None:
        logged: list[tuple[str, str]] = []
        recognition = PerformerRecognition(store, None, None, lambda *message: logged.append(message),
                                           model=MODEL, crops_dir=tmp_path / "crops")
        detections = _shown(faces, ["p06/1"], 0.0)
        scene = _photo_scene(detections, tmp_path)
        assert recognition.remember_unknown("20", _identify(recognition, detections), scene) == 1
        assert list(_unknown_rows(store)) == ["scene:20/track:0"]
        assert [level for level, _ in logged] == ["warning"] and scene.file in logged[0][1]
        assert not recognition.crop_path("scene:20/track:0").exists()

    def test_remembering_a_scene_again_replaces_its_earlier_rows(
            self, recognition: PerformerRecognition, faces: Faces, tmp_path: Path) -> None:
        both = _shown(faces, ["p06/1"], 0.0) + _shown(faces, ["p07/1"], 30.0)
        assert _remember(recognition, "20", _photo_scene(both, tmp_path)) == 2
        other = _shown(faces, ["p07/1"], 0.0)
        assert _remember(recognition, "21", _photo_scene(other, tmp_path)) == 1
        later = _shown(faces, ["p07/1"], 5.0, count=3)
        assert _remember(recognition, "20", _photo_scene(later, tmp_path)) == 1
        assert _unknown_rows(recognition.store) == {"scene:20/track:0": (3, None),
                                                    "scene:21/track:0": (len(VARIANTS), None)}
        known = _shown(faces, ["p01/2"], 0.0)  # the scene now shows only a performer
        assert _remember(recognition, "20", _photo_scene(known, tmp_path)) == 0
        assert list(_unknown_rows(recognition.store)) == ["scene:21/track:0"]

    def test_a_track_seen_again_keeps_its_cluster(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        for scene in ("11", "12", "13"):
            _remember(recognition, scene, videos[scene])
        assert recognition.cluster_unknown("run-1") == 1
        clustered = {k: c for k, (_, c) in _unknown_rows(recognition.store, "12").items()}
        assert list(clustered.values()) == [1]
        _remember(recognition, "12", videos["12"])
        assert {k: c for k, (_, c) in _unknown_rows(recognition.store, "12").items()} == clustered


class TestClusterUnknown:
    def _remember(self, recognition: PerformerRecognition, videos: dict[str, _Result],
                  scenes: Sequence[str]) -> None:
        for scene in scenes:
            _remember(recognition, scene, videos[scene])

    def _offered(self, recognition: PerformerRecognition) -> list[dict[str, Any]]:
        count, suggestions = ReviewQueue(recognition.store).list(scene_id=LIBRARY)
        assert count == len(suggestions)
        return [{"key": s.key, "kind": s.kind, "title": s.title, **s.payload} for s in suggestions]

    def _keys_of(self, recognition: PerformerRecognition, faces: Faces, photo: str) -> set[str]:
        """The stored unknown tracks that show ``photo``'s person."""
        rows = recognition.store.db.execute("SELECT key, embedding FROM unknown_faces").fetchall()
        reference = faces[photo]["orig"].embedding
        return {key for key, blob in rows if float(np.frombuffer(blob, np.float32) @ reference) > 0.6}

    def test_an_unknown_person_in_three_scenes_is_offered_once_for_the_library(
            self, recognition: PerformerRecognition, videos: dict[str, _Result], faces: Faces) -> None:
        self._remember(recognition, videos, ["11", "12", "13", "14"])  # p06 in 11-13, p07 in 13-14
        assert recognition.cluster_unknown("run-1") == 1
        (offered,) = self._offered(recognition)
        assert (offered["key"], offered["kind"]) == ("cluster:1", "cluster")
        assert (offered["title"], offered["cluster_id"]) == ("Unknown person #1", 1)
        assert sorted(offered["scenes"]) == ["11", "12", "13"]
        assert offered["appearances"] == 15
        p06 = self._keys_of(recognition, faces, "p06/1")
        assert len(p06) == 3 and {face["key"] for face in offered["faces"]} == p06
        for face in offered["faces"]:
            assert face["crop"] is not None and Path(face["crop"]).is_file()
            assert 0.0 <= face["time"] <= 4.0
        assert ReviewQueue(recognition.store).list(scene_id="11")[0] == 0  # nothing offered per scene

    def test_fewer_than_three_tracks_of_a_person_make_no_suggestion(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        self._remember(recognition, videos, ["11", "12", "14"])  # p06 twice, p07 once
        assert recognition.cluster_unknown("run-1") == 0
        assert self._offered(recognition) == []
        assert all(cluster is None for _, cluster in _unknown_rows(recognition.store).values())

    def test_each_unknown_person_is_one_suggestion(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        self._remember(recognition, videos, list(SCENE_VIDEOS))  # p06 in 11-13, p07 in 13-15
        assert recognition.cluster_unknown("run-1") == 2
        offered = self._offered(recognition)
        assert sorted(sorted(o["scenes"]) for o in offered) == [["11", "12", "13"], ["13", "14", "15"]]
        assert {o["kind"] for o in offered} == {"cluster"}
        assert sorted(o["key"] for o in offered) == ["cluster:1", "cluster:2"]

    def test_clustering_again_keeps_the_ids_and_offers_no_duplicates(
            self, recognition: PerformerRecognition, videos: dict[str, _Result]) -> None:
        self._remember(recognition, videos, ["11", "12", "13"])
        assert recognition.cluster_unknown("run-1") == 1
        first = _unknown_rows(recognition.store)
        self._remember(recognition, videos, ["14", "15"])  # p07 reaches three scenes
        assert recognition.cluster_unknown("run-2") == 2
        again = _unknown_rows(recognition.store)
        assert {key: again[key] for key in first if first[key][1] is not None} == {
            key: row for key, row in first.items() if row[1] is not None}
        offered = self._offered(recognition)
        assert sorted(o["key"] for o in offered) == ["cluster:1", "cluster:2"]
        p07 = next(o for o in offered if o["key"] == "cluster:2")
        assert sorted(p07["scenes"]) == ["13", "14", "15"]
