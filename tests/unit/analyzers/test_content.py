"""Content detection (NudeNet 320n): real model, real photos, checked against NudeNet itself."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tagger.analyzers.content import LABELS, ContentAnalyzer, letterbox
from tagger.analyzers.runtime import RuntimeOptions
from tagger.detections import Detection
from tagger.media.frames import Frame

PHOTOS = ("groups/g04.jpg", "groups/g05.jpg", "groups/g03.jpg", "p01/1.jpg", "p05/1.jpg",
          "p06/1.jpg", "p08/1.jpg")
"""Face photos of several sizes; p08 is a 160x160 crop whose face box touches the edges."""


@pytest.fixture(scope="module")
def analyzer() -> ContentAnalyzer:
    return ContentAnalyzer.from_manifest(RuntimeOptions(threads=2))


@pytest.fixture(scope="module")
def nudenet_detector() -> object:
    from nudenet import NudeDetector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NudeDetector()


def _faces(shared_dir: Path) -> Path:
    return shared_dir / "faces"


def _frame(image: np.ndarray, time: float = 0.0) -> Frame:
    return Frame(time=time, index=int(time), image=image, reason="interval", keyframe=False)


def _at_640(image: np.ndarray) -> np.ndarray:
    """The photo as the frame reader hands it over: long side 640."""
    scale = 640 / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _labelled_faces(shared_dir: Path, name: str) -> Iterator[tuple[float, float, float, float]]:
    with (_faces(shared_dir) / "group_faces.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["file"] == name:
                x0, y0, x1, y1 = (float(row[key]) for key in ("x0", "y0", "x1", "y1"))
                yield x0, y0, x1 - x0, y1 - y0


class TestPreprocessing:
    def test_the_input_equals_nudenets_own_blob_which_is_bgr(self, shared_dir: Path) -> None:
        from nudenet.nudenet import _read_image

        path = _faces(shared_dir) / "groups/g04.jpg"
        blob, scale = letterbox(cv2.imread(str(path)))
        reference = _read_image(str(path))[0][0]
        assert np.abs(blob - reference).max() < 1e-6
        assert scale == pytest.approx(1024 / 320)


class TestAgainstNudeNet:
    def test_one_batch_of_real_photos_equals_nudenets_detector(
            self, analyzer: ContentAnalyzer, nudenet_detector: object, shared_dir: Path) -> None:
        # Photos of different sizes go through one network run.
        paths = [_faces(shared_dir) / name for name in PHOTOS]
        ours = analyzer.detect([cv2.imread(str(path)) for path in paths])
        for path, found in zip(paths, ours):
            reference = nudenet_detector.detect(str(path))  # type: ignore[attr-defined]
            assert [label for label, _, _ in found] == [item["class"] for item in reference], path
            for (_, score, box), item in zip(found, reference):
                assert score == pytest.approx(item["score"], abs=0.02)
                # NudeNet truncates boxes to ints: up to 1 px apart.
                assert np.abs(np.array(box) - np.array(item["box"])).max() <= 1.5, path

    def test_per_class_nms_also_keeps_weaker_boxes_of_other_classes(
            self, analyzer: ContentAnalyzer, shared_dir: Path) -> None:
        # g02 holds two faces; the second also scores as FACE_MALE under its FACE_FEMALE box.
        image = cv2.imread(str(_faces(shared_dir) / "groups/g02.jpg"))
        per_class = ContentAnalyzer(analyzer.session, per_class_nms=True)
        agnostic = [label for label, _, _ in analyzer.detect([image])[0]]
        both = [label for label, _, _ in per_class.detect([image])[0]]
        assert agnostic == ["FACE_FEMALE", "FACE_FEMALE"]
        assert sorted(both) == ["FACE_FEMALE", "FACE_FEMALE", "FACE_MALE"]


class TestContentAnalyzer:
    def test_face_classes_fire_on_every_face_of_a_group_photo(
            self, analyzer: ContentAnalyzer, shared_dir: Path) -> None:
        image = cv2.imread(str(_faces(shared_dir) / "groups/g04.jpg"))
        found = analyzer.analyze([_frame(image, 3.0)])
        faces = [d for d in found if d.label in ("FACE_FEMALE", "FACE_MALE")]
        for truth in _labelled_faces(shared_dir, "groups/g04.jpg"):
            assert any(d.box is not None and _iou(d.box, truth) > 0.4 for d in faces), truth
        assert all(d.kind == "content" and d.time == 3.0 and d.label in LABELS for d in found)
        assert all(d.score >= analyzer.score_floor for d in found)

    def test_boxes_are_in_pixels_of_the_frame_image(self, analyzer: ContentAnalyzer,
                                                    shared_dir: Path) -> None:
        image = cv2.imread(str(_faces(shared_dir) / "p01/1.jpg"))
        full = analyzer.analyze([_frame(image)])[0]
        small = analyzer.analyze([_frame(_at_640(image))])[0]
        assert full.label == small.label == "FACE_FEMALE"
        assert full.box is not None and small.box is not None
        assert np.allclose(np.array(small.box) * 1024 / 640, full.box, atol=6)

    @pytest.mark.parametrize("value", [0, 128], ids=["black", "grey"])
    def test_a_flat_frame_yields_nothing(self, analyzer: ContentAnalyzer, value: int) -> None:
        assert analyzer.analyze([_frame(np.full((360, 640, 3), value, np.uint8))]) == []

    def test_an_empty_batch_yields_nothing(self, analyzer: ContentAnalyzer) -> None:
        assert analyzer.analyze([]) == []

    def test_a_batch_gives_what_single_frames_give(self, analyzer: ContentAnalyzer,
                                                   shared_dir: Path) -> None:
        frames = [_frame(_at_640(cv2.imread(str(_faces(shared_dir) / name))), float(i))
                  for i, name in enumerate(PHOTOS)]
        single = [d for frame in frames for d in analyzer.analyze([frame])]
        split = ContentAnalyzer(analyzer.session, max_batch=3).analyze(frames)
        for batched in (analyzer.analyze(frames), split):
            assert _same(batched, single)

    @pytest.mark.parametrize(("argument", "value"), [("score_floor", 1.5), ("nms_iou", -0.1),
                                                     ("max_batch", 0)])
    def test_bad_settings_are_refused_by_name(self, analyzer: ContentAnalyzer, argument: str,
                                              value: float) -> None:
        with pytest.raises(ValueError, match=argument):
            ContentAnalyzer(analyzer.session, **{argument: value})  # type: ignore[arg-type]


def _same(a: list[Detection], b: list[Detection]) -> bool:
    """Equal detections, up to float noise between batch sizes."""
    if len(a) != len(b):
        return False
    return all(x.time == y.time and x.label == y.label and abs(x.score - y.score) < 1e-4
               and np.allclose(x.box, y.box, atol=0.05) for x, y in zip(a, b))  # type: ignore[arg-type]
