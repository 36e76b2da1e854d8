"""Shot boundaries and black spans: pure span logic, then the detectors on a real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.media.frames import SamplingPlan, iter_frames
from tagger.media.sample import SampleTruth, make_sample_video
from tagger.media.shots import (
    Shot,
    ShotAnalysis,
    ShotDetector,
    TechnicalSpan,
    is_black,
    shots_from_cuts,
    spans_from_flags,
)

FRAME_S = 1 / 30


class TestSpansFromFlags:
    def test_a_run_spans_from_its_first_frame_to_the_next_unflagged_one(self) -> None:
        times = [0.0, 0.5, 1.0, 1.5, 2.0]
        assert spans_from_flags(times, [False, True, True, False, False], 2.5, 0.5) == [(0.5, 1.5)]

    def test_a_run_open_at_the_end_closes_at_the_end_time(self) -> None:
        assert spans_from_flags([0.0, 1.0, 2.0], [False, True, True], 3.0, 0.5) == [(1.0, 3.0)]

    def test_short_runs_are_dropped(self) -> None:
        # One flagged frame lasts 0.1 s here: below the 0.5-s minimum.
        times = [i / 10 for i in range(10)]
        flags = [i == 3 for i in range(10)]
        assert spans_from_flags(times, flags, 1.0, 0.5) == []

    def test_no_frames_no_spans(self) -> None:
        assert spans_from_flags([], [], 0.0, 0.0) == []


class TestShotsFromCuts:
    def test_no_cuts_is_one_shot(self) -> None:
        assert shots_from_cuts([], [], 0.0, 10.0) == [Shot(0.0, 10.0)]

    def test_black_is_cut_out_and_never_a_shot(self) -> None:
        # The detector sees cuts into (4) and out of (6) the black span.
        assert shots_from_cuts([4.0, 6.0], [(4.0, 6.0)], 0.0, 10.0) == [Shot(0.0, 4.0),
                                                                         Shot(6.0, 10.0)]

    def test_black_inside_a_shot_splits_it_at_the_black_edges(self) -> None:
        assert shots_from_cuts([], [(4.0, 6.0)], 0.0, 10.0) == [Shot(0.0, 4.0), Shot(6.0, 10.0)]

    def test_slivers_next_to_black_are_dropped(self) -> None:
        # A cut reported one frame after the black ends would leave a one-frame "shot".
        shots = shots_from_cuts([6.0 + FRAME_S], [(4.0, 6.0)], 0.0, 10.0, min_len=0.1)
        assert shots == [Shot(0.0, 4.0), Shot(6.0 + FRAME_S, 10.0)]

    def test_cuts_outside_the_range_are_ignored(self) -> None:
        assert shots_from_cuts([0.0, 12.0], [], 0.0, 10.0) == [Shot(0.0, 10.0)]


class TestIsBlack:
    def test_black_frame(self) -> None:
        assert is_black(np.full((36, 64, 3), 3, np.uint8))

    def test_dark_frame_with_detail_is_not_black(self) -> None:
        # A night scene: dark on average (mean luma about 16) but with a lit window.
        image = np.full((36, 64, 3), 8, np.uint8)
        image[10:22, 20:40] = 90
        assert not is_black(image)

    def test_grey_frame_is_not_black(self) -> None:
        assert not is_black(np.full((36, 64, 3), 90, np.uint8))


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleTruth:
    """The default 60-s 720p sample: cuts at 8, 17, 29, 41, 50 s, black 33-35 s."""
    return make_sample_video(tmp_path_factory.mktemp("shots") / "sample.mp4")


def _detect(sample: SampleTruth, detector: str) -> tuple[ShotAnalysis, list[tuple[float, str]]]:
    shots = ShotDetector(fps=sample.fps, detector=detector)  # type: ignore[arg-type]
    frames = iter_frames(str(sample.path), SamplingPlan("interval", 2.0), max_side=320,
                         observe=shots.observe)
    samples = [(f.time, f.reason) for f in frames]
    return shots.finish(sample.duration), samples


@pytest.fixture(scope="session")
def content(sample: SampleTruth) -> tuple[ShotAnalysis, list[tuple[float, str]]]:
    return _detect(sample, "content")


class TestContentDetectorOnSample:
    def test_finds_every_shot_within_one_frame_and_no_false_cuts(
        self, sample: SampleTruth, content: tuple[ShotAnalysis, list[tuple[float, str]]],
    ) -> None:
        found = [(s.start, s.end) for s in content[0].shots]
        expected = sample.expected_shots()
        assert len(found) == len(expected)
        assert np.abs(np.array(found) - np.array(expected)).max() <= FRAME_S + 1e-6

    def test_finds_the_black_span(
        self, sample: SampleTruth, content: tuple[ShotAnalysis, list[tuple[float, str]]],
    ) -> None:
        (black,) = content[0].technical
        assert black.kind == "black"
        assert (black.start, black.end) == pytest.approx(sample.black_spans[0], abs=FRAME_S)

    def test_first_frames_of_shots_become_samples_marked_as_shot_starts(
        self, sample: SampleTruth, content: tuple[ShotAnalysis, list[tuple[float, str]]],
    ) -> None:
        # Off the 2-s grid (17, 29, 35, 41 s) or on it (0, 8, 50 s): every shot's first frame is a
        # sample, and says it starts a shot even when it is also an interval sample.
        starts = [round(t, 3) for t, reason in content[1] if reason == "shot"]
        assert starts == [start for start, _ in sample.expected_shots()]


def test_adaptive_detector_finds_the_same_shots(sample: SampleTruth) -> None:
    analysis, _ = _detect(sample, "adaptive")
    expected = sample.expected_shots()
    found = [(s.start, s.end) for s in analysis.shots]
    assert np.abs(np.array(found) - np.array(expected)).max() <= FRAME_S + 1e-6
    assert analysis.technical == [TechnicalSpan("black", 33.0, 35.0)]


@pytest.mark.parametrize(("argument", "value"), [("fps", 0.0), ("threshold", -1.0),
                                                 ("min_black_s", -0.5)])
def test_bad_detector_arguments_are_named(argument: str, value: float) -> None:
    kwargs = {"fps": 30.0, argument: value}
    with pytest.raises(ValueError, match=argument):
        ShotDetector(**kwargs)  # type: ignore[arg-type]


def test_unknown_detector_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="detector must be 'content' or 'adaptive'"):
        ShotDetector(fps=30.0, detector="magic")  # type: ignore[arg-type]
