"""On-screen text: OCR readings across frames merged into spans."""

from __future__ import annotations

import pytest

from tagger.decide.text import TextSpan, merge_text, normalise_text, same_place, same_text
from tagger.detections import Detection

SAMPLES = [float(t) for t in range(0, 60, 2)]
"""A 60-s video sampled every 2 s."""

DURATION = 60.0
FRAME = (1280, 720)
CORNER = (1100.0, 680.0, 150.0, 24.0)
"""A watermark's box in the bottom-right corner."""


def read(t: float, text: str, score: float = 0.9,
         box: tuple[float, float, float, float] | None = CORNER) -> Detection:
    """One OCR reading."""
    return Detection(t, "text", text, score, box)


def merge(readings: list[Detection], **options: object) -> list[TextSpan]:
    return merge_text(readings, SAMPLES, DURATION, frame_size=FRAME, **options)


class TestMergeText:
    def test_readings_that_differ_by_ocr_slips_are_one_span(self) -> None:
        readings = [read(10, "BRANDX.COM", 0.9), read(12, "BRANDX.C0M", 0.7),
                    read(14, "brandx com", 0.8), read(16, "BRANDX.COM", 1.0)]
        assert merge(readings) == [TextSpan("BRANDX.COM", 10.0, 18.0, pytest.approx(0.85), CORNER, 4)]

    def test_the_box_is_the_median_box(self) -> None:
        # One reading's box is a little off; the median ignores it.
        boxes = [(100.0, 50.0, 80.0, 20.0), (102.0, 51.0, 84.0, 20.0), (101.0, 60.0, 82.0, 22.0)]
        spans = merge([read(t, "Brand X", box=b) for t, b in zip([0, 2, 4], boxes)])
        assert [s.box for s in spans] == [(101.0, 51.0, 82.0, 20.0)]

    def test_the_same_text_elsewhere_is_another_span(self) -> None:
        top_left = (20.0, 20.0, 150.0, 24.0)
        spans = merge([read(10, "BRANDX.COM"), read(10, "BRANDX.COM", box=top_left),
                       read(12, "BRANDX.COM"), read(12, "BRANDX.COM", box=top_left)])
        assert sorted(s.box for s in spans) == [top_left, CORNER]

    def test_a_gap_longer_than_max_gap_splits(self) -> None:
        # The reading at 10 stands until 12; the next one at 20 is 8 s later.
        spans = merge([read(10, "BRANDX.COM"), read(20, "BRANDX.COM")], max_gap_s=6.0)
        assert [(s.start, s.end) for s in spans] == [(10.0, 12.0), (20.0, 22.0)]

    def test_a_gap_within_max_gap_joins(self) -> None:
        spans = merge([read(10, "BRANDX.COM"), read(18, "BRANDX.COM")], max_gap_s=6.0)
        assert [(s.start, s.end, s.readings) for s in spans] == [(10.0, 20.0, 2)]

    def test_different_words_at_one_place_are_different_spans(self) -> None:
        spans = merge([read(10, "SALE"), read(12, "SOLD")])
        assert [s.text for s in spans] == ["SALE", "SOLD"]

    def test_single_characters_and_weak_readings_are_ignored(self) -> None:
        assert merge([read(10, "X"), read(12, " 7 "), read(14, "BRANDX.COM", score=0.3)]) == []

    def test_readings_of_other_kinds_are_ignored(self) -> None:
        assert merge([Detection(10, "content", "BRANDX.COM", 0.9)]) == []

    def test_the_most_frequent_reading_names_the_span(self) -> None:
        readings = [read(0, "brandx com"), read(2, "BRANDX.COM"), read(4, "BRANDX.COM")]
        assert [s.text for s in merge(readings)] == ["BRANDX.COM"]

    def test_a_span_reaching_the_end_is_clipped_to_it(self) -> None:
        assert [s.end for s in merge([read(58, "BRANDX.COM")])] == [60.0]


class TestSameText:
    @pytest.mark.parametrize(("a", "b", "same"), [
        ("brandx.com", "brandx.c0m", True),  # one substitution in ten characters
        ("brandx.com", "brandx com", True),
        ("brandx.com", "brandxcom", True),  # the dot not read
        ("hello world", "he11o world", True),  # two substitutions in eleven
        ("abc", "abd", False),  # one edit is a third of a three-letter word
        ("sale", "sold", False),
        ("brandx.com", "brandy.net", False),
    ])
    def test_up_to_two_edits_within_a_quarter_of_the_length(self, a: str, b: str, same: bool) -> None:
        assert same_text(a, b) is same

    def test_normalising_folds_case_and_collapses_whitespace(self) -> None:
        assert normalise_text("  Brand\tX \n TV ") == "brand x tv"


class TestSamePlace:
    def test_overlapping_boxes_are_in_one_place(self) -> None:
        assert same_place((100, 100, 100, 20), (105, 100, 100, 20))

    def test_nearby_centres_count_relative_to_the_frame(self) -> None:
        # Boxes 20 px apart overlap little (IoU 0.2); 20 px is under 5 % of a 720p diagonal.
        a, b = (100.0, 100.0, 30.0, 15.0), (120.0, 100.0, 30.0, 15.0)
        assert same_place(a, b, frame_size=(1280, 720))
        # Without a frame size the reach is the box height (15 px).
        assert not same_place(a, b)

    def test_an_unknown_box_does_not_separate(self) -> None:
        assert same_place(None, (1, 2, 3, 4))
