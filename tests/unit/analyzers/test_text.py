"""Watermark OCR (PP-OCRv4): real models on realistic frames with semi-transparent text."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tagger.analyzers.runtime import RuntimeOptions
from tagger.analyzers.text import (
    CORNERS,
    SCAN_KIND,
    OcrGate,
    TextAnalyzer,
    TextRead,
    corner_of,
    corner_regions,
)
from tagger.media.frames import Frame, SampleReason, SamplingPlan, iter_frames
from tagger.media.sample import make_sample_video

WATERMARK = "BRANDX.COM"
Box = tuple[float, float, float, float]


@pytest.fixture(scope="module")
def ocr() -> TextAnalyzer:
    return TextAnalyzer.from_manifest(RuntimeOptions(threads=2))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A decoded 640x360 frame of a synthetic video (textured scene, film grain, H.264)."""
    path = tmp_path_factory.mktemp("text") / "scene.mp4"
    make_sample_video(path, duration_s=1, size=(640, 360), fps=5, cut_times=(), black_spans=())
    return next(iter_frames(str(path), SamplingPlan(interval_s=1.0))).image


@pytest.fixture(scope="module")
def photo(shared_dir: Path) -> np.ndarray:
    """A real group photo (no text in it) at 640 px wide."""
    image = cv2.imread(str(shared_dir / "faces" / "groups" / "g05.jpg"))
    return cv2.resize(image, (640, 443), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def backgrounds(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, np.ndarray]:
    """Landscape frames at 640 px wide: every landscape face photo, and four synthetic scenes."""
    found = {}
    for path in sorted((shared_dir / "faces").glob("*/*.jpg")):
        image = cv2.imread(str(path))
        if image.shape[1] >= 1.2 * image.shape[0]:
            height = round(image.shape[0] * 640 / image.shape[1])
            found[path.parent.name + "/" + path.name] = cv2.resize(image, (640, height),
                                                                   interpolation=cv2.INTER_AREA)
    folder = tmp_path_factory.mktemp("scenes")
    for seed in range(1, 5):
        make_sample_video(folder / f"{seed}.mp4", duration_s=0.4, size=(640, 360), fps=5,
                          cut_times=(), black_spans=(), seed=seed)
        found[f"scene {seed}"] = next(iter_frames(str(folder / f"{seed}.mp4"),
                                                  SamplingPlan(interval_s=1.0))).image
    return found


def watermarked(image: np.ndarray, corner: str, *, text: str = WATERMARK, height: int = 16,
                opacity: float = 0.5, margin: int = 14) -> tuple[np.ndarray, Box]:
    """``image`` with white ``text`` blended in at ``opacity``, then JPEG q60; and its box."""
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, height, 2)
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    frame_h, frame_w = image.shape[:2]
    if corner == "centre":
        x, y = (frame_w - width) // 2, (frame_h + height) // 2
    else:
        x = margin if corner.endswith("left") else frame_w - width - margin
        y = margin + height if corner.startswith("top") else frame_h - margin
    layer = image.copy()
    cv2.putText(layer, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2,
                cv2.LINE_AA)
    blended = cv2.addWeighted(layer, opacity, image, 1 - opacity, 0)
    _, jpeg = cv2.imencode(".jpg", blended, [cv2.IMWRITE_JPEG_QUALITY, 60])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR), (x, y - height, width, height)


def frame(image: np.ndarray, time_s: float = 0.0, reason: SampleReason = "interval") -> Frame:
    return Frame(time=time_s, index=round(time_s * 30), image=image, reason=reason,
                 keyframe=False)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def median_ms(call: Callable[[], object], repeats: int = 5) -> float:
    call()  # warm-up: first runs allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def is_watermark(read: TextRead) -> bool:
    return edit_distance(read.text.upper(), WATERMARK) <= 1


class TestReading:
    @pytest.mark.parametrize("corner", ["bottom-right", "top-left"])
    @pytest.mark.parametrize("background", ["scene", "photo"])
    def test_a_half_transparent_corner_watermark_is_read_in_its_corner(
            self, ocr: TextAnalyzer, request: pytest.FixtureRequest, background: str,
            corner: str) -> None:
        image, truth = watermarked(request.getfixturevalue(background), corner)
        found = [d for d in TextAnalyzer(*ocr.sessions).analyze([frame(image, 4.0)]) if d.kind == "text"]
        assert len(found) == 1, [d.label for d in found]
        detection = found[0]
        assert edit_distance(detection.label.upper(), WATERMARK) <= 1, detection.label
        assert detection.kind == "text" and detection.time == 4.0
        assert detection.score >= 0.5
        assert detection.details == {"corner": CORNERS.index(corner)}
        assert detection.box is not None and iou(detection.box, truth) > 0.5
        region = corner_regions(image.shape[1], image.shape[0])[CORNERS.index(corner)]
        assert corner_of(detection.box, image.shape[1], image.shape[0]) == CORNERS.index(corner)
        assert region[0] <= detection.box[0] and region[1] <= detection.box[1]

    def test_most_watermarks_are_read_on_real_and_synthetic_backgrounds(
            self, ocr: TextAnalyzer, backgrounds: dict[str, np.ndarray]) -> None:
        # 13 backgrounds x 4 corners, 16 px at 50 %. Known misses, 4 of 52: white text over light
        # walls in g02 and g04, where the detector's map stays under its threshold.
        missed = []
        for name, background in backgrounds.items():
            for number, corner in enumerate(CORNERS):
                image, _ = watermarked(background, corner)
                reads = [r for r in ocr.read([image])[0] if is_watermark(r)]
                assert all(r.corner == number for r in reads), (name, corner, reads)
                if not reads:
                    missed.append((name, corner))
        assert len(missed) <= 0.1 * 4 * len(backgrounds), missed

    def test_the_sample_videos_watermark_is_read_after_decoding(
            self, ocr: TextAnalyzer, tmp_path: Path) -> None:
        # 1280x720 with the sample's own opaque text, decoded at 640: about 12 px high.
        path = tmp_path / "watermark.mp4"
        make_sample_video(path, duration_s=1, fps=5, cut_times=(), black_spans=(),
                          text=(WATERMARK, 0.0, 1.0, "top-right"))
        first = next(iter_frames(str(path), SamplingPlan(interval_s=1.0), max_side=640))
        reads = ocr.read([first.image])[0]
        assert [(r.text, r.corner) for r in reads] == [(WATERMARK, CORNERS.index("top-right"))]

    def test_text_outside_the_corners_is_read_only_in_full_frame_mode(
            self, ocr: TextAnalyzer, scene: np.ndarray) -> None:
        image, truth = watermarked(scene, "centre", height=20)
        assert ocr.read([image])[0] == []
        reads = ocr.read([image], full_frame=True)[0]
        assert len(reads) == 1 and is_watermark(reads[0])
        assert reads[0].corner == -1 and iou(reads[0].box, truth) > 0.5

    def test_frames_without_text_yield_nothing_and_cost_a_fraction_of_full_ocr(
            self, ocr: TextAnalyzer, scene: np.ndarray, photo: np.ndarray) -> None:
        assert ocr.read([scene, photo]) == [[], []]
        assert ocr.read([scene], full_frame=True) == [[]]
        corners_ms = median_ms(lambda: ocr.read([scene]))
        full_ms = median_ms(lambda: ocr.read([scene], full_frame=True))
        # Measured here: about 12 ms against 72 ms; the detector sees 1/4 of the pixels.
        assert corners_ms < 0.5 * full_ms, (corners_ms, full_ms)

    def test_single_characters_and_faint_reads_are_dropped(self, ocr: TextAnalyzer,
                                                           scene: np.ndarray) -> None:
        image, _ = watermarked(scene, "bottom-right", text="X", height=20)
        assert ocr.read([image])[0] == []


class TestGating:
    def test_only_the_first_and_every_nth_sample_are_read(self, ocr: TextAnalyzer,
                                                          scene: np.ndarray) -> None:
        # 30 interval samples 2 s apart, all watermarked, in the engine's batches of 8.
        image, _ = watermarked(scene, "bottom-right")
        analyzer = TextAnalyzer(*ocr.sessions, every_nth=15)
        samples = [frame(image, 2.0 * i) for i in range(30)]
        found = [d for start in range(0, 30, 8) for d in analyzer.analyze(samples[start:start + 8])]
        assert [d.time for d in found if d.kind == SCAN_KIND] == [0.0, 30.0]
        read = [d for d in found if d.kind == "text"]
        assert [d.time for d in read] == [0.0, 30.0]
        assert all(edit_distance(d.label.upper(), WATERMARK) <= 1 for d in read)

    def test_shot_starts_are_read_and_restart_the_count(self) -> None:
        gate = OcrGate(every_nth=5)
        reasons: list[SampleReason] = ["interval"] * 12
        reasons[3] = "shot"
        read = [i for i, reason in enumerate(reasons)
                if gate.wants(frame(np.zeros((1, 1, 3), np.uint8), float(i), reason))]
        assert read == [0, 3, 8]

    def test_a_new_video_starts_over_at_its_first_sample(self) -> None:
        gate = OcrGate(every_nth=15)
        image = np.zeros((1, 1, 3), np.uint8)
        assert [gate.wants(frame(image, t)) for t in (0.0, 2.0, 4.0)] == [True, False, False]
        assert gate.wants(frame(image, 0.0))  # time went back: another video

    def test_every_nth_zero_reads_first_samples_and_shots_only(self) -> None:
        gate = OcrGate(every_nth=0)
        image = np.zeros((1, 1, 3), np.uint8)
        reasons: list[SampleReason] = ["interval", "interval", "shot", "interval"]
        assert [gate.wants(frame(image, float(i), r)) for i, r in enumerate(reasons)] == [
            True, False, True, False]

    @pytest.mark.parametrize(("argument", "value"), [("every_nth", -1), ("min_score", 2.0),
                                                     ("min_length", 0), ("corner_size", (0.6, 0.2))])
    def test_bad_settings_are_refused_by_name(self, ocr: TextAnalyzer, argument: str,
                                              value: object) -> None:
        with pytest.raises(ValueError, match=argument):
            TextAnalyzer(*ocr.sessions, **{argument: value})  # type: ignore[arg-type]
