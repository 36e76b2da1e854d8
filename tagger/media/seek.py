"""Frames at chosen times, for pictures of what the analysis found (evidence sheets, face crops,
the review's thumbnails): one pass over the source in time order, only the wanted frames decoded.

The reader seeks to the keyframe before a wanted time when it is more than ``SEEK_GAP_S`` ahead,
else decodes on, and takes the first frame at or after each wanted time (within half a frame),
scaled by swscale straight to the wanted size. Frame times are pts x time_base minus the container
start, as in the analysis pass (``tagger.media.frames``), so detection times find their own frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import av.error
import cv2
import numpy as np

from tagger.errors import MediaError
from tagger.media.frames import SEEK_GAP_S, frame_time
from tagger.media.video import VideoInfo, open_container

_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def thumb_size(info: VideoInfo, thumb_width: int) -> tuple[int, int]:
    """(width, height) of the thumbnails: ``thumb_width`` wide, the video's display aspect."""
    height = max(1, round(thumb_width * info.height / max(1, info.width)))
    return thumb_width, height


def decode_at(source: str, info: VideoInfo, times: Iterable[float], size: tuple[int, int], *,
              http_headers: dict[str, str] | None = None) -> dict[float, np.ndarray]:
    """BGR images of ``size`` for each wanted time (keyed by ``round(t, 6)``), in one pass.

    Times past the end, or after a read error, are missing from the result.

    Raises:
        MediaError: the source cannot be opened.
    """
    wanted = sorted({round(float(t), 6) for t in times})
    if not wanted:
        return {}
    tolerance = 0.5 / info.fps if info.fps > 0 else 0.02
    images: dict[float, np.ndarray] = {}
    with open_container(source, http_headers=http_headers) as container:
        stream = next((s for s in container.streams.video
                       if not s.disposition & av.stream.Disposition.attached_pic), None)
        if stream is None:
            raise MediaError(f"{source}: no video stream")
        stream.thread_type = "AUTO"
        for t, frame in _frames_at(container, stream, info, wanted, tolerance):
            images[t] = to_thumb(frame, info, size)
    return images


def _frames_at(container: av.container.InputContainer, stream: av.video.VideoStream, info: VideoInfo,
               wanted: list[float], tolerance: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """(wanted time, frame) for each wanted time: the first frame at or after it."""
    pending = list(wanted)
    position, last_seek = 0.0, -1.0
    while pending:
        if pending[0] - position > SEEK_GAP_S and pending[0] > last_seek:
            last_seek = pending[0]
            _seek(container, stream, last_seek, info)
        reached_end = True
        for frame in _decoded(container, stream):
            position = frame_time(frame, info)
            while pending and position >= pending[0] - tolerance:
                yield pending.pop(0), frame
            if not pending or (pending[0] - position > SEEK_GAP_S and pending[0] > last_seek):
                reached_end = False
                break
        if reached_end:
            return


def _decoded(container: av.container.InputContainer,
             stream: av.video.VideoStream) -> Iterator[av.VideoFrame]:
    """Frames from the current position on; bad packets skipped, a read error ends it."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            yield from frames
    except av.error.FFmpegError:
        return


def _seek(container: av.container.InputContainer, stream: av.video.VideoStream, t: float,
          info: VideoInfo) -> None:
    """Seek to the keyframe at or before ``t`` (seconds from the video start)."""
    assert stream.time_base is not None
    container.seek(int((t + info.start_time) / stream.time_base), stream=stream, backward=True)


def to_thumb(frame: av.VideoFrame, info: VideoInfo, size: tuple[int, int]) -> np.ndarray:
    """``frame`` as BGR at display ``size``, scaled by swscale and turned upright."""
    width, height = size
    coded = (height, width) if info.rotation in (90, 270) else (width, height)
    image = frame.reformat(coded[0], coded[1], "bgr24", interpolation="AREA").to_ndarray()
    if info.rotation in _ROTATE:
        image = cv2.rotate(image, _ROTATE[info.rotation])
    return image
