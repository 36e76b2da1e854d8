"""The engine on a video with known ground truth, with the real models: cuts, a corner watermark
over a known span, two known faces, a studio from the watermark, and the analysis cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import pytest

from tagger.config import build_config
from tagger.engine.engine import Engine, EngineResult
from tagger.media.sample import SampleTruth, make_sample_video

CUTS = (8.0, 16.0)
WATERMARK = ("BRANDX.COM", 2.0, 22.0, "bottom-right")
FACE_A = (3.0, 13.0)  # p03 (a man), left of centre
FACE_B = (9.0, 20.0)  # p05 (a woman), right of centre: both on screen from 9 to 13 s


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> SampleTruth:
    def photo(name: str) -> object:  # about a third of the frame's height, as in a medium shot
        image = cv2.imread(str(shared_dir / "faces" / name))
        return cv2.resize(image, (image.shape[1] * 260 // image.shape[0], 260))

    faces = [(photo("p03/1.jpg"), *FACE_A, (0.3, 0.45)), (photo("p05/2.jpg"), *FACE_B, (0.7, 0.45))]
    return make_sample_video(tmp_path_factory.mktemp("engine") / "truth.mp4", duration_s=24,
                             cut_times=CUTS, black_spans=(), text=WATERMARK, faces=faces)


@pytest.fixture(scope="module")
def engine_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-data")


def make_engine(data: Path, **settings: object) -> Engine:
    config = build_config({"studios": ["Brand X", "Other Studio"], **settings})
    return Engine(config, data, lambda *_: None)


@pytest.fixture(scope="module")
def result(truth: SampleTruth, engine_data: Path) -> EngineResult:
    return make_engine(engine_data).analyze(str(truth.path))


def test_shots_start_at_the_cuts(result: EngineResult) -> None:
    assert [round(start) for start, _ in result.record.shots] == [0, 8, 16]


def test_the_watermark_is_read_in_its_corner_over_its_span(result: EngineResult) -> None:
    (span,) = result.decisions.text
    assert span.text == "BRANDX.COM"
    # OCR looks at shot starts (0, 8, 16 s) and every 30 s: the span is known to that precision.
    assert WATERMARK[1] <= span.start <= CUTS[0] and CUTS[1] <= span.end <= WATERMARK[2] + 2.0
    x, y, _, _ = span.box
    width, height = result.record.frame_size
    assert x > width / 2 and y > height * 0.75  # bottom-right


def test_the_studio_comes_from_the_watermark(result: EngineResult) -> None:
    studio = result.decisions.studio
    assert studio is not None and studio.name == "Brand X" and studio.score >= 0.85


def test_two_people_are_two_face_tracks_at_their_times(result: EngineResult) -> None:
    tracks = sorted(result.decisions.faces, key=lambda track: track.start)
    assert len(tracks) == 2
    for track, (start, end) in zip(tracks, (FACE_A, FACE_B)):
        assert start - 0.1 <= track.start <= start + 2.1  # the first sample at or after it
        assert end - 2.1 <= track.end <= end + 2.1


def test_faces_in_one_frame_are_never_one_track(result: EngineResult) -> None:
    faces = [d for d in result.detections if d.kind == "face"]
    together = [d.time for d in faces if FACE_B[0] <= d.time < FACE_A[1]]
    assert together and all(together.count(t) == 2 for t in together)
    for track in result.decisions.faces:
        times = [faces[i].time for i in track.members]
        assert len(times) == len(set(times))


def test_a_second_run_comes_from_the_cache_without_decoding(truth: SampleTruth, engine_data: Path,
                                                             result: EngineResult) -> None:
    again = make_engine(engine_data).analyze(str(truth.path))
    assert set(again.cached) == {"faces", "content", "text"}
    assert again.timings == {}
    assert again.to_dict()["text"] == result.to_dict()["text"]
    assert again.to_dict()["faces"] == result.to_dict()["faces"]


def test_new_tag_rules_rerun_only_the_decisions(truth: SampleTruth, engine_data: Path) -> None:
    # The content model's face classes are off as tags by default; turning one on (for the woman
    # on screen from 9 to 20 s) needs no new analysis.
    rule = {"enabled": True, "threshold": 0.45, "scene_min_seconds": 4.0}
    default = make_engine(engine_data).analyze(str(truth.path))
    again = make_engine(engine_data, tags={"FACE_FEMALE": rule}).analyze(str(truth.path))
    assert again.timings == {}
    assert "Face Female" not in [tag.name for tag in default.decisions.tags]
    (tag,) = [tag for tag in again.decisions.tags if tag.name == "Face Female"]
    assert tag.seconds >= 4.0


def test_a_changed_model_reruns_only_that_analyzer(truth: SampleTruth, engine_data: Path,
                                                   result: EngineResult) -> None:
    engine = make_engine(engine_data)
    engine.analyzers = [replace(a, version=a.version + "-new") if a.name == "content" else a
                        for a in engine.analyzers]
    again = engine.analyze(str(truth.path))
    assert set(again.cached) == {"faces", "text"}
    assert "analyze:content" in again.timings and "analyze:faces" not in again.timings
    assert again.to_dict()["tags"] == result.to_dict()["tags"]
