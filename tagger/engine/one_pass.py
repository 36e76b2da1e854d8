"""The analysis engine's entry: one video in, one ``AnalysisResult`` out.

One decode pass (``tagger.media.frames.iter_frames``) feeds two consumers: the shot detector sees
every frame at a small size (as the pass's observer) and the analyzers see the sample frames in
batches. The analyzers (model families) come in through ``analyzers=``; this pass only collects
their detections. Deciding what those detections mean is ``tagger.engine.engine``'s work, so
``AnalysisResult.to_dict`` leaves ``tags``, ``markers``, ``faces`` and ``text`` empty and ``studio``
None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from queue import Full, Queue
from typing import Any, Literal

import numpy as np

from tagger.detections import Analyzer, Detection
from tagger.media.frames import DecodeReport, Frame, SamplingPlan, iter_frames
from tagger.media.shots import MIN_BLACK_S, DetectorName, Shot, ShotDetector, TechnicalSpan
from tagger.media.video import VideoInfo, is_url, probe

Sampling = Literal["interval", "keyframes"]

StopCause = Literal["budget", "interrupted", "truncated"]
"""Why a pass ended before the end of the video: ``budget`` (the wall-clock budget ran out),
``interrupted`` (the source stopped delivering: a dropped stream or an I/O error; reading again may
get further) or ``truncated`` (a local file's data ends or turns undecodable there: reading the same
file again ends there again)."""

BATCH_SIZE = 8
"""Sample frames handed to each analyzer at once (bounded: at most this many frames are held)."""


def _require(condition: bool, name: str, rule: str, value: object) -> None:
    """Raise ``ValueError`` naming the argument and the rule when ``condition`` is false."""
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class AnalyzeOptions:
    """How to analyse a video.

    Attributes:
        interval_s: seconds between sample frames (``interval`` sampling).
        sampling: ``interval`` (exact frames every ``interval_s``) or ``keyframes`` (fast, only
            the stream's keyframes; no shot or black detection).
        max_side: long side in pixels of the frames the models see.
        shot_detection: find shots and black spans (decodes every frame).
        shot_threshold: detector threshold; None for the detector's default.
        shot_detector: ``content`` or ``adaptive`` (PySceneDetect detectors).
        min_black_s: shortest black span reported (seconds).
        time_budget_s: stop decoding after this many wall-clock seconds; None for no limit.
        http_headers: request headers for stream URLs (e.g. Stash's ``ApiKey``).
        batch_size: sample frames per analyzer call.
        every_frame: decode every frame, even those no other frame refers to (slower; samples and
            cuts on the exact first frame).
    """

    interval_s: float = 2.0
    sampling: Sampling = "interval"
    max_side: int = 640
    shot_detection: bool = True
    shot_threshold: float | None = None
    shot_detector: DetectorName = "content"
    min_black_s: float = MIN_BLACK_S
    time_budget_s: float | None = None
    http_headers: dict[str, str] | None = None
    batch_size: int = BATCH_SIZE
    every_frame: bool = False

    def __post_init__(self) -> None:
        _require(self.interval_s > 0, "interval_s", "> 0 seconds", self.interval_s)
        _require(self.sampling in ("interval", "keyframes"), "sampling",
                 "'interval' or 'keyframes'", self.sampling)
        _require(16 <= self.max_side <= 8192, "max_side", "between 16 and 8192 pixels",
                 self.max_side)
        _require(self.shot_threshold is None or self.shot_threshold > 0, "shot_threshold",
                 "None or > 0", self.shot_threshold)
        _require(self.shot_detector in ("content", "adaptive"), "shot_detector",
                 "'content' or 'adaptive'", self.shot_detector)
        _require(self.min_black_s >= 0, "min_black_s", ">= 0 seconds", self.min_black_s)
        _require(self.time_budget_s is None or self.time_budget_s > 0, "time_budget_s",
                 "None or > 0 seconds", self.time_budget_s)
        _require(self.http_headers is None or all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.http_headers.items()),
            "http_headers", "None or a dict of str to str", self.http_headers)
        _require(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)

    @property
    def plan(self) -> SamplingPlan:
        """The frame sampling plan these options describe."""
        return SamplingPlan(self.sampling, self.interval_s)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything found in one video; ``to_dict`` is the engine's output contract."""

    file: str
    info: VideoInfo
    frames_analysed: int
    shots: list[Shot]
    technical: list[TechnicalSpan]
    detections_by_analyzer: dict[str, list[Detection]]
    timings: dict[str, float]
    warnings: list[str]
    report: DecodeReport = field(repr=False)
    sample_times: list[float] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None
    end: float = 0.0
    stopped: StopCause | None = None
    """Why the pass ended before the end of the video; None when it read the whole video."""

    @property
    def detections(self) -> list[Detection]:
        """Every analyzer's detections together."""
        return [d for found in self.detections_by_analyzer.values() for d in found]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready result (times in seconds, rounded to milliseconds)."""
        return {
            "file": self.file,
            "duration": rounded(self.info.duration),
            "fps": rounded(self.info.fps),
            "frames_analysed": self.frames_analysed,
            "shots": [{"start": rounded(s.start), "end": rounded(s.end)} for s in self.shots],
            "technical": [{"kind": t.kind, "start": rounded(t.start), "end": rounded(t.end)}
                          for t in self.technical],
            "tags": [],
            "markers": [],
            "faces": [],
            "text": [],
            "studio": None,
            "timings": {stage: rounded(seconds) for stage, seconds in self.timings.items()},
            "warnings": list(self.warnings),
        }


def rounded(value: float) -> float:
    """A number as the JSON output gives it: seconds to the millisecond, scores to 0.001."""
    return round(float(value), 3)


class _Timings:
    """Wall-clock seconds per stage, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block and add it to ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def _timed_observer(detector: ShotDetector, timings: _Timings) -> Callable[[float, np.ndarray], bool]:
    """The detector's observer, with its time counted under ``shots``."""
    def observe(t: float, image: np.ndarray) -> bool:
        started = time.perf_counter()
        try:
            return detector.observe(t, image)
        finally:
            timings.add("shots", time.perf_counter() - started)
    return observe


def _run_analyzers(analyzers: Sequence[Analyzer], batch: list[Frame], timings: _Timings,
                   found: dict[str, list[Detection]]) -> None:
    """Every analyzer on one batch of sample frames; detections are added to ``found``."""
    for analyzer in analyzers:
        with timings.stage(f"analyze:{analyzer.name}"):
            found[analyzer.name].extend(analyzer.analyze(batch))


def _end_time(info: VideoInfo, report: DecodeReport) -> float:
    """Where the analysed part ends: the video's end, or just after the last good frame."""
    if report.complete or report.last_time is None:
        return info.duration
    frame_s = 1.0 / info.fps if info.fps > 0 else 0.0
    return min(info.duration, report.last_time + frame_s)


def stop_cause(report: DecodeReport, *, local: bool) -> StopCause | None:
    """Why a pass ended early (see ``StopCause``), or None when it read the whole video.

    Only a local file can be known to end: a stream that ends early is indistinguishable from a
    dropped connection, so it counts as interrupted and is read again next time.
    """
    if report.budget_exceeded:
        return "budget"
    if not report.truncated:
        return None
    return "truncated" if local and not report.read_failed else "interrupted"


def _pass_warnings(report: DecodeReport, stopped: StopCause | None) -> list[str]:
    """The report's warnings, saying of a pass that may get further that the rest comes next time."""
    later = "the rest is analysed next time"
    if stopped == "interrupted":
        cause = f" ({report.error})" if report.error else ""
        return [f"reading stopped at {report.last_time or 0.0:.1f} s of {report.duration:.1f} s{cause}: "
                f"{later}"]
    if stopped == "budget":
        return [f"{note}: {later}" for note in report.warnings()]
    return report.warnings()


def _make_detector(info: VideoInfo, options: AnalyzeOptions,
                   warnings: list[str]) -> ShotDetector | None:
    """The shot detector if wanted.

    With keyframes sampling it sees keyframes only: encoders put a keyframe at most cuts, so cuts
    are still found, but located to the keyframe and black spans only when they hold a keyframe.
    """
    if not options.shot_detection:
        return None
    if options.sampling == "keyframes":
        warnings.append("keyframes sampling: shots and black spans are located to keyframes")
    return ShotDetector(fps=info.fps or 25.0, detector=options.shot_detector,
                        threshold=options.shot_threshold, min_black_s=options.min_black_s)


def analyze_file(
    source: str,
    options: AnalyzeOptions,
    *,
    progress: Callable[[float], None] | None = None,
    analyzers: Sequence[Analyzer] = (),
) -> AnalysisResult:
    """Analyse one video in a single decode pass.

    Arguments:
        source: local path or http(s) stream URL.
        options: what to do.
        progress: called with the fraction done (0-1).
        analyzers: model families to run on the sample frames.

    Raises:
        MediaError: the video cannot be opened or not a single frame decodes. A video that
            breaks off later gives a result for the part read, with a warning.
    """
    timings, warnings = _Timings(), []
    with timings.stage("probe"):
        info = probe(source, http_headers=options.http_headers)
    detector = _make_detector(info, options, warnings)
    observe = _timed_observer(detector, timings) if detector else None
    found: dict[str, list[Detection]] = {analyzer.name: [] for analyzer in analyzers}
    sample_times: list[float] = []
    frame_size: tuple[int, int] | None = None
    started = time.perf_counter()
    stream = iter_frames(source, options.plan, max_side=options.max_side, observe=observe,
                         time_budget_s=options.time_budget_s, progress=progress,
                         http_headers=options.http_headers, info=info,
                         skip_nonref=not options.every_frame)
    for batch in batches_in_background(_timed_frames(stream, timings), options.batch_size):
        sample_times.extend(frame.time for frame in batch)
        frame_size = frame_size or (batch[0].image.shape[1], batch[0].image.shape[0])
        _run_analyzers(analyzers, batch, timings, found)
    timings.add("total", time.perf_counter() - started)
    # The observer (shot detection) ran inside the decoder's next(): count decoding alone.
    seconds = timings.seconds
    seconds["decode"] = max(0.0, seconds.get("decode", 0.0) - seconds.get("shots", 0.0))
    report = stream.report
    end = _end_time(info, report)
    shots = detector.finish(end) if detector else None
    stopped = stop_cause(report, local=not is_url(source))
    warnings.extend(_pass_warnings(report, stopped))
    if progress is not None:
        progress(1.0)
    return AnalysisResult(
        file=source, info=info, frames_analysed=report.samples,
        shots=shots.shots if shots else [], technical=shots.technical if shots else [],
        detections_by_analyzer=found, timings=timings.seconds, warnings=warnings, report=report,
        sample_times=sample_times, frame_size=frame_size, end=end, stopped=stopped,
    )


def _timed_frames(frames: Iterator[Frame], timings: _Timings) -> Iterator[Frame]:
    """``frames``, with the time spent producing them added to ``decode``."""
    while True:
        started = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            timings.add("decode", time.perf_counter() - started)
            return
        timings.add("decode", time.perf_counter() - started)
        yield frame


def batches_in_background(frames: Iterator[Frame], size: int, depth: int = 2) -> Iterator[list[Frame]]:
    """Batches of ``frames``, decoded by a background thread while the caller runs the models.

    Decoding (FFmpeg) and inference (ONNX Runtime) both release the GIL, so they overlap; the
    bounded queue (``depth`` batches) keeps memory flat when either side is the slower one. An
    exception in the decoder is re-raised here; when the consumer stops early, the decoder is told
    to stop and joined.
    """
    queue: Queue[list[Frame] | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: list[Frame] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def decode() -> None:
        batch: list[Frame] = []
        try:
            for frame in frames:
                batch.append(frame)
                if len(batch) >= size:
                    if not put(batch):
                        return
                    batch = []
            if batch and not put(batch):
                return
            put(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(error)

    worker = threading.Thread(target=decode, name="decode", daemon=True)
    worker.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
