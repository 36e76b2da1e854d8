"""Probing and frame sampling on real videos made by ``tagger.media.sample``."""

from __future__ import annotations

import bisect
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tagger.errors import MediaError
from tagger.media.frames import DecodeReport, SamplingPlan, iter_frames, target_size
from tagger.media.sample import (
    SampleTruth,
    make_audio_file,
    make_sample_video,
    write_corrupt_copy,
    write_truncated_copy,
)
from tagger.media.video import normalize_rotation, probe


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def small(media_dir: Path) -> SampleTruth:
    """20 s, 640x360, keyframe every 2 s, cuts at 6 and 13 s, black 9-10.5 s, with audio."""
    return make_sample_video(media_dir / "small.mp4", duration_s=20, size=(640, 360), gop_s=2,
                             cut_times=(6.0, 13.0), black_spans=((9.0, 10.5),), audio=True)


@pytest.fixture(scope="session")
def vfr(media_dir: Path) -> SampleTruth:
    return make_sample_video(media_dir / "vfr.mp4", duration_s=6, size=(320, 180), vfr=True,
                             cut_times=(), black_spans=())


def _collect(source: str | Path, plan: SamplingPlan, **kwargs: object) -> tuple[list, DecodeReport]:
    stream = iter_frames(str(source), plan, **kwargs)  # type: ignore[arg-type]
    frames = list(stream)
    return frames, stream.report


def _first_at_or_after(times: tuple[float, ...], target: float) -> float:
    return times[bisect.bisect_left(times, target - 1e-6)]


class TestProbe:
    def test_describes_the_sample(self, small: SampleTruth) -> None:
        info = probe(str(small.path))
        assert info.duration == pytest.approx(20.0, abs=0.05)
        assert info.fps == pytest.approx(30.0)
        assert (info.width, info.height) == (640, 360)
        assert (info.codec, info.bit_depth, info.rotation) == ("h264", 8, 0)
        assert info.has_audio

    def test_missing_file_names_the_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "gone.mp4"
        with pytest.raises(MediaError, match=r"gone\.mp4: file not found"):
            probe(str(missing))

    def test_text_file_is_not_a_media_file(self, tmp_path: Path) -> None:
        text = tmp_path / "notes.mp4"
        text.write_text("these are not the frames you are looking for\n" * 50)
        with pytest.raises(MediaError, match=r"notes\.mp4: not a media file"):
            probe(str(text))

    def test_audio_only_file_has_no_video_stream(self, tmp_path: Path) -> None:
        audio = make_audio_file(tmp_path / "song.m4a", duration_s=1.0)
        with pytest.raises(MediaError, match=r"song\.m4a: no video stream"):
            probe(str(audio))

    def test_unreachable_url_says_so(self) -> None:
        url = "http://127.0.0.1:9/scene/1/stream"
        with pytest.raises(MediaError, match=r"127\.0\.0\.1:9/scene/1/stream: cannot be reached"):
            probe(url, http_headers={"ApiKey": "secret"}, timeout_s=5)

    def test_corrupt_header_is_a_clear_error(self, small: SampleTruth, tmp_path: Path) -> None:
        broken = write_corrupt_copy(small.path, tmp_path / "head.mp4", at=0.0, length=4096)
        with pytest.raises(MediaError, match=r"head\.mp4"):
            probe(str(broken))

    @pytest.mark.parametrize(("degrees", "expected"), [(0, 0), (90, 90), (-90, 270),
                                                       (180.4, 180), (-180, 180), (270, 270)])
    def test_rotation_is_normalised(self, degrees: float, expected: int) -> None:
        assert normalize_rotation(degrees) == expected


class TestIntervalSampling:
    def test_samples_are_the_first_frames_at_or_after_each_target(self, small: SampleTruth) -> None:
        frames, report = _collect(small.path, SamplingPlan("interval", 1.5), max_side=320)
        assert [f.time for f in frames] == pytest.approx(
            [_first_at_or_after(small.frame_times, 1.5 * k) for k in range(14)], abs=1e-6)
        assert report.complete and report.frames_decoded == len(small.frame_times)
        assert all(f.reason == "interval" for f in frames)

    def test_images_are_bgr_and_fit_max_side(self, small: SampleTruth) -> None:
        frames, _ = _collect(small.path, SamplingPlan("interval", 5.0), max_side=320)
        assert {f.image.shape for f in frames} == {(180, 320, 3)}
        assert frames[0].image.dtype == np.uint8

    def test_small_videos_are_not_upscaled(self, small: SampleTruth) -> None:
        frames, _ = _collect(small.path, SamplingPlan("interval", 10.0), max_side=4000)
        assert frames[0].image.shape == (360, 640, 3)

    def test_variable_frame_rate_uses_timestamps(self, vfr: SampleTruth) -> None:
        frames, _ = _collect(vfr.path, SamplingPlan("interval", 0.5), max_side=160)
        expected = [_first_at_or_after(vfr.frame_times, 0.5 * k) for k in range(12)]
        assert [f.time for f in frames] == pytest.approx(expected, abs=1e-6)

    def test_long_gaps_are_seeked_over_with_exact_times(self, small: SampleTruth) -> None:
        frames, report = _collect(small.path, SamplingPlan("interval", 15.0), max_side=160)
        assert [f.time for f in frames] == pytest.approx([0.0, 15.0], abs=1e-6)
        assert report.frames_decoded < len(small.frame_times) / 2  # skipped most of 0-14 s

    def test_observer_sees_every_frame_and_can_add_samples(self, small: SampleTruth) -> None:
        seen: list[tuple[float, tuple[int, ...]]] = []

        def observe(t: float, image: np.ndarray) -> bool:
            seen.append((t, image.shape))
            return abs(t - 6.0) < 1e-6

        frames, _ = _collect(small.path, SamplingPlan("interval", 5.0), max_side=320,
                             observe=observe, analysis_side=128)
        # Every frame, at most 128 px on its long side (subsampled planes: 640/6 = 107 px).
        assert len(seen) == len(small.frame_times)
        assert seen[0][1][2] == 3 and 64 <= max(seen[0][1][:2]) <= 128
        assert [(round(f.time, 3), f.reason) for f in frames] == [
            (0.0, "interval"), (5.0, "interval"), (6.0, "shot"), (10.0, "interval"),
            (15.0, "interval")]

    def test_progress_rises_to_the_end(self, small: SampleTruth) -> None:
        fractions: list[float] = []
        _collect(small.path, SamplingPlan("interval", 5.0), max_side=160,
                 progress=fractions.append)
        assert fractions == sorted(fractions) and fractions[-1] > 0.98


class TestKeyframeSampling:
    def test_yields_exactly_the_keyframes(self, small: SampleTruth) -> None:
        frames, report = _collect(small.path, SamplingPlan("keyframes"), max_side=160)
        assert [f.time for f in frames] == pytest.approx(small.keyframe_times, abs=1e-6)
        assert all(f.keyframe and f.reason == "keyframe" for f in frames)
        assert report.frames_decoded == len(small.keyframe_times) and report.complete


class TestFormats:
    def test_rotation_is_applied(self, media_dir: Path) -> None:
        kwargs = {"duration_s": 1.0, "size": (320, 180), "cut_times": (), "black_spans": ()}
        plain = make_sample_video(media_dir / "plain.mp4", **kwargs)  # type: ignore[arg-type]
        turned = make_sample_video(media_dir / "turned.mp4", rotation=90, **kwargs)  # type: ignore[arg-type]
        info = probe(str(turned.path))
        assert (info.rotation, info.width, info.height) == (90, 180, 320)
        upright = _collect(plain.path, SamplingPlan("interval", 5.0), max_side=320)[0][0].image
        rotated = _collect(turned.path, SamplingPlan("interval", 5.0), max_side=320)[0][0].image
        expected = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
        assert rotated.shape == expected.shape == (320, 180, 3)
        assert np.abs(rotated.astype(int) - expected).mean() < 3

    @pytest.mark.skipif("libx265" not in av.codecs_available, reason="no libx265 in this PyAV")
    def test_ten_bit_hevc_decodes_to_8_bit_bgr(self, media_dir: Path) -> None:
        truth = make_sample_video(media_dir / "ten.mkv", duration_s=2.0, size=(322, 182),
                                  codec="hevc", pix_fmt="yuv420p10le", cut_times=(),
                                  black_spans=())
        info = probe(str(truth.path))
        assert (info.codec, info.bit_depth, info.pix_fmt) == ("hevc", 10, "yuv420p10le")
        frames, report = _collect(truth.path, SamplingPlan("interval", 0.5), max_side=161,
                                  skip_nonref=False)
        assert [f.time for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=1e-6)
        assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (91, 161, 3)
        assert report.complete

    def test_skipping_unreferenced_frames_moves_samples_by_a_few_frames_at_most(
            self, media_dir: Path) -> None:
        # x265 puts B-frames no other frame refers to between its references: they are skipped.
        truth = make_sample_video(media_dir / "bframes.mkv", duration_s=3.0, size=(320, 180),
                                  codec="hevc", cut_times=(), black_spans=())
        every, _ = _collect(truth.path, SamplingPlan("interval", 0.5), skip_nonref=False)
        skipped, report = _collect(truth.path, SamplingPlan("interval", 0.5))
        assert report.frames_decoded < len(truth.frame_times)
        assert len(skipped) == len(every)
        for fast, exact in zip(skipped, every):
            assert 0 <= fast.time - exact.time <= 3 / truth.fps + 1e-6
            assert min(abs(fast.time - t) for t in truth.frame_times) < 1e-3  # a real frame's time

    def test_target_size_keeps_aspect_for_odd_sizes(self) -> None:
        assert target_size(1279, 719, 640) == (640, 360)
        assert target_size(100, 51, 640) == (100, 51)


class TestDamagedFiles:
    def test_truncated_file_yields_its_first_part_and_reports(self, small: SampleTruth,
                                                             tmp_path: Path) -> None:
        cut = write_truncated_copy(small.path, tmp_path / "cut.mp4", 0.5)
        frames, report = _collect(cut, SamplingPlan("interval", 1.0), max_side=160)
        assert report.truncated and not report.complete
        assert 4.0 < report.last_time < 16.0  # type: ignore[operator]
        assert frames[-1].time <= report.last_time  # type: ignore[operator]
        assert f"at {report.last_time:.1f} s of 20.0 s" in report.warnings()[0]

    def test_corrupt_middle_still_decodes_or_reports(self, small: SampleTruth,
                                                     tmp_path: Path) -> None:
        broken = write_corrupt_copy(small.path, tmp_path / "mid.mp4", at=0.5, length=20000)
        frames, report = _collect(broken, SamplingPlan("interval", 1.0), max_side=160)
        assert len(frames) >= 5 and report.frames_decoded > 100
        assert report.complete or report.warnings()

    def test_time_budget_stops_decoding(self, small: SampleTruth) -> None:
        _frames, report = _collect(small.path, SamplingPlan("interval", 1.0), max_side=160,
                                  observe=lambda t, image: False, time_budget_s=1e-4)
        assert report.budget_exceeded and report.frames_decoded < len(small.frame_times)
        assert report.warnings()[0].startswith("stopped after 0.0001 s budget at ")
