"""The engine's entry: options, the output contract, damaged files and the analyzer hook."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tagger.detections import Detection
from tagger.engine.one_pass import AnalysisResult, AnalyzeOptions, analyze_file
from tagger.errors import MediaError
from tagger.media.frames import Frame
from tagger.media.sample import SampleTruth, make_sample_video, write_truncated_copy

CONTRACT_KEYS = ["file", "duration", "fps", "frames_analysed", "shots", "technical", "tags",
                 "markers", "faces", "text", "studio", "timings", "warnings"]


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleTruth:
    """30 s, 960x540: cuts at 7, 15 and 23 s, black from 18 to 19.5 s, a watermark."""
    return make_sample_video(tmp_path_factory.mktemp("analysis") / "sample.mp4", duration_s=30,
                             size=(960, 540), cut_times=(7.0, 15.0, 23.0),
                             black_spans=((18.0, 19.5),), text=("STUDIO", 2.0, 12.0, "top-right"))


@pytest.fixture(scope="session")
def result(sample: SampleTruth) -> AnalysisResult:
    return analyze_file(str(sample.path), AnalyzeOptions())


class TestOptions:
    @pytest.mark.parametrize(("argument", "value", "rule"), [
        ("interval_s", 0.0, "> 0 seconds"),
        ("sampling", "scenes", "'interval' or 'keyframes'"),
        ("max_side", 8, "between 16 and 8192"),
        ("shot_threshold", 0.0, "None or > 0"),
        ("shot_detector", "magic", "'content' or 'adaptive'"),
        ("min_black_s", -1.0, ">= 0 seconds"),
        ("time_budget_s", 0.0, "None or > 0"),
        ("http_headers", {"ApiKey": 5}, "None or a dict of str to str"),
        ("batch_size", 0, ">= 1"),
    ])
    def test_bad_values_name_the_argument_and_the_rule(self, argument: str, value: Any,
                                                       rule: str) -> None:
        with pytest.raises(ValueError, match=f"{argument} must be {rule}"):
            AnalyzeOptions(**{argument: value})

    def test_defaults_are_valid(self) -> None:
        options = AnalyzeOptions()
        assert (options.interval_s, options.sampling, options.max_side) == (2.0, "interval", 640)


class TestContract:
    def test_to_dict_has_exactly_the_contract_keys(self, result: AnalysisResult) -> None:
        output = result.to_dict()
        assert list(output) == CONTRACT_KEYS
        assert (output["tags"], output["markers"], output["faces"], output["text"]) == ([], [], [],
                                                                                        [])
        assert output["studio"] is None and output["warnings"] == []
        assert set(output["timings"]) == {"probe", "decode", "shots", "total"}

    def test_reports_video_facts_and_sample_count(self, result: AnalysisResult,
                                                  sample: SampleTruth) -> None:
        output = result.to_dict()
        assert (output["file"], output["duration"], output["fps"]) == (str(sample.path), 30.0, 30.0)
        # 15 frames on the 2-s grid plus the first frames of the shots starting off the grid:
        # 7, 15, 19.5 (after black) and 23 s.
        assert output["frames_analysed"] == 15 + 4

    def test_shots_and_black_match_the_truth(self, result: AnalysisResult,
                                             sample: SampleTruth) -> None:
        output = result.to_dict()
        edges = [t for s in output["shots"] for t in (s["start"], s["end"])]
        assert edges == pytest.approx([t for shot in sample.expected_shots() for t in shot],
                                      abs=1 / 30)
        assert output["technical"] == [{"kind": "black", "start": 18.0, "end": 19.5}]


class TestModes:
    def test_keyframes_sampling_locates_shots_to_keyframes_with_a_warning(
        self, sample: SampleTruth,
    ) -> None:
        output = analyze_file(str(sample.path), AnalyzeOptions(sampling="keyframes")).to_dict()
        assert output["frames_analysed"] == len(sample.keyframe_times)
        # Every cut is reported at the first keyframe after it (this sample has no keyframes at cuts).
        starts = [shot["start"] for shot in output["shots"]]
        for cut in sample.cuts:
            after = min(t for t in sample.keyframe_times if t >= cut)
            assert any(abs(start - after) < 1e-6 for start in starts), (cut, starts)
        assert "located to keyframes" in output["warnings"][0]

    def test_without_shot_detection_only_interval_samples(self, sample: SampleTruth) -> None:
        output = analyze_file(str(sample.path), AnalyzeOptions(shot_detection=False,
                                                               interval_s=5.0)).to_dict()
        assert output["frames_analysed"] == 6 and output["shots"] == []
        assert "shots" not in output["timings"]

    def test_time_budget_stops_with_a_warning(self, sample: SampleTruth) -> None:
        output = analyze_file(str(sample.path), AnalyzeOptions(time_budget_s=0.01)).to_dict()
        assert output["warnings"][0].startswith("stopped after 0.01 s budget at ")
        assert all(shot["end"] < 30.0 for shot in output["shots"])


class TestDamagedFiles:
    def test_truncated_file_analyses_the_first_part_and_warns(self, sample: SampleTruth,
                                                              tmp_path: Path) -> None:
        cut = write_truncated_copy(sample.path, tmp_path / "cut.mp4", 0.4)
        result = analyze_file(str(cut), AnalyzeOptions())
        last = result.report.last_time
        assert last is not None and 5.0 < last < 25.0
        assert result.to_dict()["warnings"] == [
            f"decoding stopped at {last:.1f} s of 30.0 s: the file is truncated or corrupt"]
        assert result.shots[-1].end == pytest.approx(last + 1 / 30)

    def test_missing_file_is_a_media_error_naming_it(self, tmp_path: Path) -> None:
        with pytest.raises(MediaError, match=r"nothing\.mkv: file not found"):
            analyze_file(str(tmp_path / "nothing.mkv"), AnalyzeOptions())


class _Recorder:
    """A stand-in analyzer that records its batches and reports one detection per frame."""

    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[Frame]] = []

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        self.batches.append(list(batch))
        return [Detection(f.time, "test", "frame", 1.0) for f in batch]


def test_analyzers_get_the_samples_in_bounded_batches(sample: SampleTruth) -> None:
    recorder = _Recorder()
    result = analyze_file(str(sample.path), AnalyzeOptions(batch_size=4, shot_detection=False),
                          analyzers=[recorder])
    times = [f.time for batch in recorder.batches for f in batch]
    assert times == pytest.approx([2.0 * k for k in range(15)])
    assert max(len(b) for b in recorder.batches) == 4
    assert [d.time for d in result.detections] == times
    assert "analyze:recorder" in result.to_dict()["timings"]
