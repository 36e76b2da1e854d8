"""Synthetic test videos with known ground truth, encoded with PyAV.

The videos look enough like footage for encoders and detectors to behave as on real files: each
shot is its own scene (a smooth colour field with texture, panned slowly, with moving shapes and
film grain), not a flat colour. Hard cuts, black spans, a corner watermark and pasted face images
are placed at known times and recorded in a ``SampleTruth``.

Also here: helpers that damage a copy of a file (truncated, corrupt middle) and write an
audio-only file, for the error paths of the readers. Rotation is written as a display matrix
(``VideoStream.set_display_rotation``, PyAV >= 16) and variable frame rate by giving each frame
its own pts; both are supported here.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]

VFR_PATTERN: tuple[float, ...] = (1.0, 1.0, 2.0, 1.0, 1.5, 0.5)
"""Frame durations, in nominal frame intervals, cycled through when ``vfr=True``."""

TIME_BASE = Fraction(1, 90000)
"""Stream time base of the samples (the MPEG clock, fine enough for any frame rate)."""

DEFAULT_CUTS: tuple[float, ...] = (8.0, 17.0, 29.0, 41.0, 50.0)
"""Cut times of the default 60-s sample: shots of 8 to 12 s."""

DEFAULT_BLACK: tuple[tuple[float, float], ...] = ((33.0, 35.0),)
"""Black spans of the default sample: one inside the shot from 29 to 41 s."""


@dataclass(frozen=True)
class FaceSpec:
    """A face image pasted into the video from ``start`` to ``end`` (seconds).

    ``position`` is the centre as fractions of the frame (x, y); the face drifts and breathes in
    size a little around it.
    """

    image: np.ndarray
    start: float
    end: float
    position: tuple[float, float] = (0.5, 0.5)


@dataclass(frozen=True)
class TextSpan:
    """Where and when watermark text was drawn."""

    text: str
    start: float
    end: float
    corner: Corner


@dataclass(frozen=True)
class FaceSpan:
    """Where and when a face was shown: ``box`` is (x, y, w, h) in pixels at nominal size."""

    start: float
    end: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class SampleTruth:
    """Everything known about a sample video, for comparing analysis results against."""

    path: Path
    duration: float
    fps: float
    size: tuple[int, int]
    codec: str
    pix_fmt: str
    cuts: tuple[float, ...]
    black_spans: tuple[tuple[float, float], ...]
    text_spans: tuple[TextSpan, ...]
    face_spans: tuple[FaceSpan, ...]
    keyframe_times: tuple[float, ...]
    frame_times: tuple[float, ...] = field(repr=False)
    rotation: int = 0
    has_audio: bool = False

    def expected_shots(self, min_len: float = 0.0) -> list[tuple[float, float]]:
        """Shots a perfect detector reports: spans between cuts, minus black spans."""
        edges = [0.0, *self.cuts, self.duration]
        pieces = [(a, b) for a, b in zip(edges, edges[1:])]
        for black_start, black_end in self.black_spans:
            pieces = [p for piece in pieces for p in _subtract(piece, black_start, black_end)]
        return [(a, b) for a, b in pieces if b - a > min_len]


def _subtract(piece: tuple[float, float], start: float, end: float) -> list[tuple[float, float]]:
    """``piece`` without the interval [start, end)."""
    a, b = piece
    if end <= a or start >= b:
        return [piece]
    return [p for p in ((a, start), (end, b)) if p[1] > p[0]]


@dataclass
class _Scene:
    """One shot's look: a large textured background and some moving shapes."""

    background: np.ndarray
    velocity: tuple[float, float]
    shapes: list[tuple[str, tuple[int, int, int], float, float, float]]


def _make_scene(seed: int, width: int, height: int) -> _Scene:
    """A textured, coloured scene that differs clearly from scenes with other seeds."""
    rng = np.random.default_rng(seed)
    pad_w, pad_h = width + width // 4, height + height // 4
    coarse = rng.integers(20, 235, size=(4, 6, 3), dtype=np.uint8)
    background = cv2.resize(coarse, (pad_w, pad_h), interpolation=cv2.INTER_CUBIC)
    texture = rng.normal(0.0, 28.0, size=(pad_h // 8, pad_w // 8)).astype(np.float32)
    texture = cv2.resize(cv2.GaussianBlur(texture, (0, 0), 1.2), (pad_w, pad_h))
    background = np.clip(background.astype(np.float32) + texture[..., None], 0, 255)
    velocity = (float(rng.uniform(-1.2, 1.2)), float(rng.uniform(-0.8, 0.8)))
    shapes = [
        (
            str(rng.choice(["circle", "rect"])),
            tuple(int(c) for c in rng.integers(0, 256, size=3)),
            float(rng.uniform(0.05, 0.12)),
            float(rng.uniform(0.2, 0.8)),
            float(rng.uniform(0, math.tau)),
        )
        for _ in range(4)
    ]
    return _Scene(background.astype(np.uint8), velocity, shapes)  # type: ignore[arg-type]


def _bounce(position: float, limit: int) -> int:
    """``position`` folded into [0, limit] like a camera panning back and forth (no jumps)."""
    if limit <= 0:
        return 0
    phase = position % (2 * limit)
    return int(phase if phase <= limit else 2 * limit - phase)


def _render_scene(scene: _Scene, t: float, width: int, height: int) -> np.ndarray:
    """The scene at time ``t`` (seconds into the video): panned background plus shapes."""
    max_x = scene.background.shape[1] - width
    max_y = scene.background.shape[0] - height
    x = _bounce(max_x / 2 + scene.velocity[0] * 20 * t, max_x)
    y = _bounce(max_y / 2 + scene.velocity[1] * 20 * t, max_y)
    image = scene.background[y : y + height, x : x + width].copy()
    for kind, colour, size, speed, phase in scene.shapes:
        cx = int(width * (0.5 + 0.35 * math.sin(speed * t + phase)))
        cy = int(height * (0.5 + 0.35 * math.cos(0.7 * speed * t + 2 * phase)))
        radius = int(size * height)
        if kind == "circle":
            cv2.circle(image, (cx, cy), radius, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (cx - radius, cy - radius // 2), (cx + radius, cy + radius // 2),
                          colour, -1)
    return image


def _draw_text(image: np.ndarray, text: str, corner: Corner) -> None:
    """Watermark ``text`` in ``corner``, white with a dark outline, about 3 % of the height."""
    height, width = image.shape[:2]
    scale = height / 720 * 1.1
    thickness = max(1, round(height / 360))
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = height // 30
    x = margin if corner.endswith("left") else width - text_w - margin
    y = margin + text_h if corner.startswith("top") else height - margin
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20),
                thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (245, 245, 245),
                thickness, cv2.LINE_AA)


def _face_box(face: FaceSpec, width: int, height: int, t: float) -> tuple[int, int, int, int]:
    """Box (x, y, w, h) of ``face`` at time ``t``: a slow drift and a 5 % size oscillation."""
    face_h, face_w = face.image.shape[:2]
    fit = min(1.0, 0.9 * width / face_w, 0.9 * height / face_h)  # a large photo is scaled to fit
    scale = fit * (1.0 + 0.05 * math.sin(2.0 * (t - face.start)))
    w, h = max(2, int(face_w * scale)), max(2, int(face_h * scale))
    cx = face.position[0] * width + 10 * math.sin(0.8 * (t - face.start))
    cy = face.position[1] * height + 6 * math.cos(0.6 * (t - face.start))
    x = int(min(max(cx - w / 2, 0), width - w))
    y = int(min(max(cy - h / 2, 0), height - h))
    return x, y, w, h


def _paste_face(image: np.ndarray, face: FaceSpec, t: float) -> None:
    """Paste the face image (BGR) into ``image`` at its box for time ``t``."""
    x, y, w, h = _face_box(face, image.shape[1], image.shape[0], t)
    image[y : y + h, x : x + w] = cv2.resize(face.image, (w, h), interpolation=cv2.INTER_AREA)


def _frame_times(duration_s: float, fps: float, vfr: bool) -> list[float]:
    """Presentation times of all frames: regular, or cycling through ``VFR_PATTERN``."""
    times: list[float] = []
    t, i = 0.0, 0
    while t < duration_s - 1e-9:
        times.append(round(t * 90000) / 90000)
        step = VFR_PATTERN[i % len(VFR_PATTERN)] if vfr else 1.0
        t += step / fps
        i += 1
    return times


def _in_any(t: float, spans: Sequence[tuple[float, float]]) -> bool:
    """Whether ``t`` lies in one of the half-open ``spans``."""
    return any(a <= t < b for a, b in spans)


def _iter_images(
    times: Sequence[float], size: tuple[int, int], cuts: Sequence[float],
    black_spans: Sequence[tuple[float, float]], text: TextSpan | None, faces: Sequence[FaceSpec],
    seed: int,
) -> Iterator[np.ndarray]:
    """The BGR image of each frame time: scene of its shot, grain, black, text and faces."""
    width, height = size
    grain = np.random.default_rng(seed).integers(0, 9, size=(height + 64, width + 64, 3),
                                                  dtype=np.uint8)
    rng = np.random.default_rng(seed + 1)
    scenes: dict[int, _Scene] = {}
    for t in times:
        if _in_any(t, black_spans):
            yield np.zeros((height, width, 3), np.uint8)
            continue
        shot = sum(1 for c in cuts if c <= t)
        if shot not in scenes:
            scenes.clear()  # one scene at a time keeps memory flat
            scenes[shot] = _make_scene(seed * 1000 + shot, width, height)
        image = _render_scene(scenes[shot], t, width, height)
        gx, gy = int(rng.integers(0, 64)), int(rng.integers(0, 64))
        cv2.add(image, grain[gy : gy + height, gx : gx + width], dst=image)
        for face in faces:
            if face.start <= t < face.end:
                _paste_face(image, face, t)
        if text is not None and text.start <= t < text.end:
            _draw_text(image, text.text, text.corner)
        yield image


def _add_video_stream(
    container: av.container.OutputContainer, codec: str, size: tuple[int, int], fps: float,
    gop_s: float, pix_fmt: str, rotation: int, encoder_options: dict[str, str] | None = None,
) -> av.video.stream.VideoStream:
    """A video stream with a fixed keyframe interval (no extra keyframes at cuts), unless
    ``encoder_options`` override the encoder's settings."""
    gop = max(1, round(gop_s * fps))
    options: dict[str, str] = {}
    if codec == "libx264":
        options = {"preset": "ultrafast", "crf": "26", "x264-params": f"scenecut=0:keyint={gop}"}
    elif codec == "libx265":
        options = {"preset": "ultrafast", "crf": "30",
                   "x265-params": f"scenecut=0:keyint={gop}:log-level=error"}
    elif codec == "libvpx-vp9":
        options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"}
    options.update(encoder_options or {})
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    stream.gop_size = gop
    stream.time_base = TIME_BASE
    stream.codec_context.time_base = TIME_BASE
    stream.thread_type = "AUTO"
    if rotation:
        stream.set_display_rotation(rotation)
    return stream


def _add_audio_stream(container: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    """A mono 48 kHz AAC stream."""
    stream = container.add_stream("aac", rate=48000)
    stream.layout = "mono"
    return stream


def _tone_frames(duration_s: float) -> Iterator[av.AudioFrame]:
    """A quiet 440 Hz mono tone of ``duration_s`` seconds, in 1024-sample frames."""
    rate, chunk = 48000, 1024
    for start in range(0, int(duration_s * rate), chunk):
        t = (np.arange(start, start + chunk) / rate).astype(np.float32)
        samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        yield frame


def _mux_audio_until(container: av.container.OutputContainer,
                     stream: av.audio.stream.AudioStream | None,
                     frames: Iterator[av.AudioFrame], until_s: float | None) -> None:
    """Encode and mux audio frames up to ``until_s`` (all remaining ones and flush if None)."""
    if stream is None:
        return
    for frame in frames:
        container.mux(stream.encode(frame))
        if until_s is not None and frame.time is not None and frame.time >= until_s:
            return
    container.mux(stream.encode(None))


_CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9"}


def make_sample_video(
    path: str | Path,
    *,
    duration_s: float = 60.0,
    size: tuple[int, int] = (1280, 720),
    fps: float = 30.0,
    gop_s: float = 4.0,
    cut_times: Sequence[float] = DEFAULT_CUTS,
    black_spans: Sequence[tuple[float, float]] = DEFAULT_BLACK,
    text: tuple[str, float, float, Corner] | None = None,
    faces: Sequence[FaceSpec | tuple[np.ndarray, float, float, tuple[float, float]]] = (),
    codec: Literal["h264", "hevc", "vp9"] = "h264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    vfr: bool = False,
    audio: bool = False,
    seed: int = 1,
    encoder_options: dict[str, str] | None = None,
) -> SampleTruth:
    """Encode a synthetic video with known cuts, black spans, text and faces.

    Arguments:
        path: output file; ``.mp4`` (written with the index at the front, so a truncated copy
            still opens) or ``.mkv`` / ``.webm``.
        duration_s, size, fps: length in seconds, (width, height), nominal frame rate.
        gop_s: keyframe interval in seconds; keyframes fall exactly on multiples of it.
        cut_times: times of hard cuts; each shot shows its own scene.
        black_spans: (start, end) spans of pure black frames.
        text: (text, start, end, corner) watermark.
        faces: face images (BGR) with (start, end, centre position as fractions).
        codec: ``h264`` (libx264), ``hevc`` (libx265) or ``vp9`` (libvpx-vp9).
        pix_fmt: e.g. ``yuv420p`` or ``yuv420p10le`` for 10-bit.
        rotation: display rotation in degrees (counter-clockwise), stored as a display matrix.
        vfr: give frames irregular durations (``VFR_PATTERN``) instead of 1/fps.
        audio: add a quiet AAC tone track.
        seed: varies scenes and grain.
        encoder_options: FFmpeg encoder options over the defaults (e.g. a slower x264 preset with
            B-frames and scene-cut keyframes, for decode costs like real footage); then
            ``keyframe_times`` of the truth no longer applies.

    Returns:
        The ground truth of the file written.
    """
    path = Path(path)
    face_specs = [f if isinstance(f, FaceSpec) else FaceSpec(*f) for f in faces]
    text_span = TextSpan(*text) if text else None
    times = _frame_times(duration_s, fps, vfr)
    options = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".mov") else {}
    with av.open(str(path), "w", options=options) as container:
        stream = _add_video_stream(container, _CODECS[codec], size, fps, gop_s, pix_fmt, rotation,
                                   encoder_options)
        audio_stream = _add_audio_stream(container) if audio else None
        tone = _tone_frames(duration_s)
        images = _iter_images(times, size, cut_times, black_spans, text_span, face_specs, seed)
        for t, image in zip(times, images):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(t / TIME_BASE), TIME_BASE
            container.mux(stream.encode(frame))
            _mux_audio_until(container, audio_stream, tone, t)
        container.mux(stream.encode(None))
        _mux_audio_until(container, audio_stream, tone, None)
    return SampleTruth(
        path=path, duration=float(duration_s), fps=float(fps), size=size, codec=codec,
        pix_fmt=pix_fmt, cuts=tuple(cut_times), black_spans=tuple(black_spans),
        text_spans=(text_span,) if text_span else (),
        face_spans=tuple(_face_span(f, size) for f in face_specs),
        keyframe_times=tuple(t for t in times if _is_gop_start(t, gop_s, fps)),
        frame_times=tuple(times), rotation=rotation, has_audio=audio,
    )


def _is_gop_start(t: float, gop_s: float, fps: float) -> bool:
    """Whether the frame at ``t`` starts a GOP (exact for constant frame rate)."""
    gop = max(1, round(gop_s * fps))
    return round(t * fps) % gop == 0


def _face_span(face: FaceSpec, size: tuple[int, int]) -> FaceSpan:
    """Ground truth of one face: its span and box at its first frame."""
    return FaceSpan(face.start, face.end, _face_box(face, size[0], size[1], face.start))


def make_audio_file(path: str | Path, duration_s: float = 3.0) -> Path:
    """Write an audio-only file (AAC in MP4/M4A) of ``duration_s`` seconds."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        _mux_audio_until(container, _add_audio_stream(container), _tone_frames(duration_s), None)
    return path


def write_truncated_copy(source: str | Path, target: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` (0-1) of ``source``'s bytes to ``target``, as a cut download."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)


def write_corrupt_copy(
    source: str | Path, target: str | Path, *, at: float = 0.5, length: int = 65536, seed: int = 7
) -> Path:
    """Copy ``source`` to ``target`` and overwrite ``length`` bytes at fraction ``at`` with noise."""
    shutil.copyfile(source, target)
    size = Path(target).stat().st_size
    offset = int(size * at)
    noise = np.random.default_rng(seed).integers(0, 256, size=min(length, size - offset),
                                                 dtype=np.uint8)
    with open(target, "r+b") as handle:
        handle.seek(offset)
        handle.write(noise.tobytes())
    return Path(target)
