"""Segments: per-frame scores of one label to time spans (threshold, gaps, length, black)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tagger.decide.segments import Segment, find_segments, sample_ends, scores_by_frame
from tagger.detections import Detection

EVERY_2S = [0.0, 2.0, 4.0, 6.0, 8.0]
"""Five samples at the default 2-s interval; the video ends at 10 s unless a case says so."""


@dataclass(frozen=True)
class Case:
    id: str
    scores: list[float]
    expected: list[tuple[float, float]]
    times: list[float] = field(default_factory=lambda: list(EVERY_2S))
    threshold: float = 0.5
    max_gap_s: float = 2.0
    min_duration_s: float = 0.0
    end: float = 10.0
    technical: list[tuple[float, float]] = field(default_factory=list)


CASES = [
    Case("a lone hit stands until the next sample", [0, 0.9, 0, 0, 0], [(2.0, 4.0)]),
    Case("consecutive hits join", [0.9, 0.8, 0.7, 0, 0], [(0.0, 6.0)]),
    Case("a score equal to the threshold is a hit", [0, 0.5, 0, 0, 0], [(2.0, 4.0)]),
    Case("nothing above the threshold, no segment", [0.4, 0.49, 0, 0, 0], []),
    # One missed sample: the hit at 0 stands until 2, the next hit is at 4, so the gap is 2 s.
    Case("a gap of max_gap joins", [0.9, 0, 0.9, 0, 0], [(0.0, 6.0)]),
    Case("a gap shorter than max_gap joins", [0.9, 0, 0.9, 0, 0], [(0.0, 6.0)], max_gap_s=3.0),
    Case("a gap longer than max_gap splits", [0.9, 0, 0, 0.9, 0], [(0.0, 2.0), (6.0, 8.0)]),
    Case("max_gap 0 still joins consecutive samples", [0.9, 0.9, 0, 0, 0], [(0.0, 4.0)],
         max_gap_s=0.0),
    Case("segments shorter than min_duration are dropped", [0.9, 0, 0, 0.9, 0.9], [(6.0, 10.0)],
         min_duration_s=3.0),
    Case("a segment exactly min_duration long is kept", [0, 0.9, 0.9, 0, 0], [(2.0, 6.0)],
         min_duration_s=4.0),
    Case("the last hit is clipped to the video end", [0, 0, 0, 0, 0.9], [(8.0, 9.0)], end=9.0),
    Case("the last sample stands one typical interval", [0, 0, 0, 0, 0.9], [(8.0, 10.0)],
         end=100.0),
    # Samples at 4 and 6 are black: their hits do not count; the hit at 2 stops where black starts.
    Case("hits inside black spans are ignored", [0, 0.9, 0.9, 0.9, 0], [(2.0, 4.0)],
         technical=[(4.0, 7.0)]),
    # Without the black span at 4-5.5 the gap (6 - 4 = 2 s) would join the two halves.
    Case("a segment never crosses a black span", [0.9, 0.9, 0, 0.9, 0.9], [(0.0, 4.0), (6.0, 10.0)],
         technical=[(4.0, 5.5)], max_gap_s=4.0),
    # A shot-start sample at 3.1 between the interval samples 2 and 4.
    Case("a shot-start hit stands until the next interval sample", [0, 0, 0.9, 0, 0, 0],
         [(3.1, 4.0)], times=[0.0, 2.0, 3.1, 4.0, 6.0, 8.0]),
    Case("an interval hit stands until the shot-start sample", [0, 0.9, 0, 0, 0, 0],
         [(2.0, 3.1)], times=[0.0, 2.0, 3.1, 4.0, 6.0, 8.0]),
    # Hits at 2 and 4 with a miss at 3.1: the hit at 2 stands until 3.1, so the gap is 0.9 s.
    Case("the gap is measured from the next sample, irregular samples",
         [0, 0.9, 0, 0.9, 0, 0], [(2.0, 3.1), (4.0, 6.0)], times=[0.0, 2.0, 3.1, 4.0, 6.0, 8.0],
         max_gap_s=0.5),
    Case("a gap just within max_gap joins, irregular samples", [0, 0.9, 0, 0.9, 0, 0],
         [(2.0, 6.0)], times=[0.0, 2.0, 3.1, 4.0, 6.0, 8.0], max_gap_s=1.0),
    Case("no samples, no segments", [], [], times=[]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_find_segments(case: Case) -> None:
    found = find_segments("LABEL", case.times, case.scores, threshold=case.threshold,
                          max_gap_s=case.max_gap_s, min_duration_s=case.min_duration_s,
                          end=case.end, technical=case.technical)
    assert [(round(s.start, 6), round(s.end, 6)) for s in found] == case.expected


class TestSegmentScores:
    def test_a_segment_reports_peak_mean_and_hit_frames(self) -> None:
        # The miss at 4 s lies inside the segment but is not one of its frames.
        (segment,) = find_segments("FEET_EXPOSED", EVERY_2S, [0.6, 0.9, 0.1, 0.6, 0], threshold=0.5,
                                   max_gap_s=2.0, min_duration_s=0.0, end=10.0)
        assert segment == Segment("FEET_EXPOSED", 0.0, 8.0, peak_score=0.9, mean_score=pytest.approx(0.7),
                                  frames=3)
        assert segment.scores == (0.6, 0.9, 0.6)
        assert segment.duration == 8.0


class TestFindSegmentsRejects:
    def test_times_and_scores_of_different_length(self) -> None:
        with pytest.raises(ValueError, match="same length"):
            find_segments("X", [0.0, 2.0], [0.9], threshold=0.5, max_gap_s=2, min_duration_s=0, end=4)

    def test_times_that_do_not_increase(self) -> None:
        with pytest.raises(ValueError, match="strictly increasing"):
            find_segments("X", [0.0, 2.0, 2.0], [0.9, 0.9, 0.9], threshold=0.5, max_gap_s=2,
                          min_duration_s=0, end=4)


class TestSampleEnds:
    def test_each_sample_stands_until_the_next_at_most_one_interval(self) -> None:
        # The 4 -> 10 hole (a decode gap) is bounded by the 2-s typical interval.
        assert sample_ends([0.0, 2.0, 4.0, 10.0, 12.0], end=13.0) == [2.0, 4.0, 6.0, 12.0, 13.0]

    def test_a_sample_stops_where_a_technical_span_starts(self) -> None:
        assert sample_ends([0.0, 2.0], end=4.0, technical=[(1.0, 2.0)]) == [1.0, 4.0]

    def test_a_single_sample_stands_until_the_end(self) -> None:
        assert sample_ends([3.0], end=5.0) == [5.0]


class TestScoresByFrame:
    def test_best_score_per_frame_and_zero_where_absent(self) -> None:
        found = [Detection(2.0, "content", "FEET_EXPOSED", 0.4),
                 Detection(2.0, "content", "FEET_EXPOSED", 0.7),  # a second pair of feet
                 Detection(4.0, "content", "BELLY_EXPOSED", 0.9)]  # another label
        assert scores_by_frame(found, "FEET_EXPOSED", [0.0, 2.0, 4.0]) == ([0.0, 2.0, 4.0],
                                                                            [0.0, 0.7, 0.0])

    def test_a_detection_between_the_given_samples_adds_its_frame(self) -> None:
        found = [Detection(3.1, "content", "FEET_EXPOSED", 0.8)]
        assert scores_by_frame(found, "FEET_EXPOSED", [2.0, 4.0]) == ([2.0, 3.1, 4.0], [0.0, 0.8, 0.0])
