"""Open a video (local file or Stash stream URL) with PyAV and describe it.

``open_container`` is the one place that turns PyAV's open errors into ``MediaError`` messages
that name the file and say what to do; ``probe`` reads a ``VideoInfo`` from the container and its
first decoded frame (which also proves that the video stream decodes, and carries the rotation).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from tagger.errors import MediaError

DEFAULT_TIMEOUT_S = 30.0
"""Seconds to wait when opening or reading a network source before giving up."""

TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
"""FFmpeg demuxers that accept any text file as ANSI art: such a "video" is not a media file."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: its size as displayed, timing and format.

    ``width``/``height`` are the display size: rotation applied (a 90-degree phone video of
    1920x1080 coded pixels is 1080x1920) and non-square pixels stretched out. ``rotation`` is in
    degrees counter-clockwise (0, 90, 180 or 270), the turn needed to display the coded picture
    upright. ``start_time`` is the container's start (seconds), which frame times are relative to.
    """

    source: str
    duration: float
    fps: float
    width: int
    height: int
    coded_width: int
    coded_height: int
    codec: str
    pix_fmt: str
    bit_depth: int
    rotation: int
    has_audio: bool
    start_time: float = 0.0
    frame_count: int | None = None

    @property
    def is_url(self) -> bool:
        """Whether the source is a network URL rather than a local file."""
        return is_url(self.source)


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL (anything else is a local path)."""
    return source.lower().startswith(("http://", "https://"))


def _open_options(source: str, http_headers: dict[str, str] | None,
                  timeout_s: float) -> dict[str, str]:
    """FFmpeg protocol options: headers and a read/write timeout for URLs, none for files."""
    if not is_url(source):
        return {}
    options = {"rw_timeout": str(int(timeout_s * 1_000_000))}
    if http_headers:
        options["headers"] = "".join(f"{key}: {value}\r\n" for key, value in http_headers.items())
    return options


def _check_local(source: str) -> None:
    """Raise a clear MediaError when a local path cannot be a video file."""
    path = Path(source)
    if not path.exists():
        raise MediaError(f"{source}: file not found; check the path (and the Stash path mapping)")
    if path.is_dir():
        raise MediaError(f"{source}: is a folder, not a video file")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{source}: cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise MediaError(f"{source}: file is empty (0 bytes)")


def open_container(
    source: str, *, http_headers: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> av.container.InputContainer:
    """Open ``source`` for reading, translating PyAV errors into ``MediaError``.

    Raises:
        MediaError: the file is missing or unreadable, is not a media file, or the URL is
            unreachable, refused or too slow.
    """
    if not is_url(source):
        _check_local(source)
    try:
        return av.open(source, "r", options=_open_options(source, http_headers, timeout_s),
                       timeout=(timeout_s, timeout_s))
    except av.error.InvalidDataError as error:
        raise MediaError(f"{source}: not a media file FFmpeg can read ({error.strerror})") from error
    except av.error.HTTPUnauthorizedError as error:
        raise MediaError(f"{source}: the server refused access (401); check the Stash API key") \
            from error
    except av.error.HTTPNotFoundError as error:  # it answered, so it is running: it lacks the file
        raise MediaError(f"{source}: the server has no such file ({error.strerror})") from error
    except (av.error.HTTPError, av.error.HTTPClientError) as error:
        raise MediaError(f"{source}: the server answered with an error ({error.strerror})") \
            from error
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(_unreachable_message(source, error)) from error


def _unreachable_message(source: str, error: Exception) -> str:
    """Message for an open failure that is about reaching the source, not its contents."""
    reason = getattr(error, "strerror", None) or str(error)
    if is_url(source):
        return (f"{source}: cannot be reached ({reason}); check that Stash is running and the URL "
                "is reachable from this machine")
    return f"{source}: cannot be opened ({reason})"


def _check_format(container: av.container.InputContainer, source: str) -> None:
    """Refuse what FFmpeg opens but is no video: text read as ANSI art, still images."""
    names = set(container.format.name.split(","))
    if names & TEXT_FORMATS:
        raise MediaError(f"{source}: not a media file (looks like text)")
    if "image2" in names or any(name.endswith("_pipe") for name in names):
        raise MediaError(f"{source}: is a still image, not a video")


def _video_stream(container: av.container.InputContainer, source: str) -> av.video.VideoStream:
    """The main video stream, skipping cover-art pictures; MediaError if there is none."""
    _check_format(container, source)
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({s.type for s in container.streams}) or ["none"]
    raise MediaError(f"{source}: no video stream (streams: {', '.join(kinds)}); "
                     "only videos can be analysed")


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    """Duration in seconds: the stream's own if known, else the container's, else 0."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _fps(stream: av.video.VideoStream) -> float:
    """Average frame rate (frames per second), falling back to the guessed rate."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return 0.0


def normalize_rotation(degrees: float) -> int:
    """Nearest of 0/90/180/270 to ``degrees`` counter-clockwise."""
    return round(degrees / 90.0) % 4 * 90


def _rotation(stream: av.video.VideoStream, first: av.VideoFrame) -> int:
    """Display rotation (counter-clockwise): the frame's display matrix, else the old tag.

    The ``rotate`` tag of older files is clockwise, hence the sign change.
    """
    if first.rotation:
        return normalize_rotation(first.rotation)
    tag = stream.metadata.get("rotate")
    if tag and tag.lstrip("-").isdigit():
        return normalize_rotation(-int(tag))
    return 0


def display_size(width: int, height: int, aspect: Fraction | None, rotation: int) -> tuple[int, int]:
    """(width, height) as shown: non-square pixels stretched, then turned by ``rotation``."""
    if aspect and aspect > 0 and aspect != 1:
        width = max(1, round(width * float(aspect)))
    return (height, width) if rotation in (90, 270) else (width, height)


def _first_frame(container: av.container.InputContainer, stream: av.video.VideoStream,
                 source: str) -> av.VideoFrame:
    """The first decodable frame; MediaError if the stream holds none."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as error:
        raise MediaError(f"{source}: the video stream cannot be decoded ({error.strerror}); "
                         "the file may be corrupt") from error
    raise MediaError(f"{source}: the video stream has no frames; the file may be empty or cut off")


def _bit_depth(frame: av.VideoFrame) -> int:
    """Bits per sample of the luma (first) component: 8, 10, 12..."""
    components = frame.format.components
    return components[0].bits if components else 8


def probe(
    source: str, *, http_headers: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> VideoInfo:
    """Describe the video at ``source`` (a local path or an http(s) URL).

    Arguments:
        source: file path or stream URL.
        http_headers: extra request headers for URLs, e.g. ``{"ApiKey": "..."}``.
        timeout_s: network open/read timeout in seconds.

    Raises:
        MediaError: missing or unreadable file, not a media file, no video stream, no frames or
            zero duration, unreachable URL.
    """
    with open_container(source, http_headers=http_headers, timeout_s=timeout_s) as container:
        stream = _video_stream(container, source)
        first = _first_frame(container, stream, source)
        return _info(source, container, stream, first)


def _info(source: str, container: av.container.InputContainer, stream: av.video.VideoStream,
          first: av.VideoFrame) -> VideoInfo:
    """Build the ``VideoInfo`` from an opened container and its first frame."""
    duration = _duration(container, stream)
    if not duration > 0 or not math.isfinite(duration):
        raise MediaError(f"{source}: the video has no duration (0 s); it may be a still image "
                         "or a broken file")
    rotation = _rotation(stream, first)
    width, height = display_size(first.width, first.height, stream.sample_aspect_ratio, rotation)
    return VideoInfo(
        source=source, duration=duration, fps=_fps(stream), width=width, height=height,
        coded_width=first.width, coded_height=first.height, codec=stream.codec_context.name,
        pix_fmt=first.format.name, bit_depth=_bit_depth(first), rotation=rotation,
        has_audio=bool(container.streams.audio),
        start_time=(container.start_time or 0) / 1_000_000,
        frame_count=stream.frames or None,
    )
