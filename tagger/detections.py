"""What analyzers report about frames, and the one interface every analyzer implements.

An analyzer (faces, content, OCR, ...) is shaped like a PySceneDetect detector: one required
method, ``analyze(batch) -> detections``, taking a batch of sample frames (``Frame``, made by
``tagger.media.frames``: time, image BGR uint8, ...) and returning what it found in them. Decisions (segments,
tags, identities) are made later from the detections, never inside an analyzer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from tagger.families import CONTENT

FACE_KIND = "face"
"""A face found by the faces family (box, embedding, quality ``details``)."""

CONTENT_KIND = CONTENT
"""A NudeNet class found by the content family. A tagging family's detections have its name as
their kind: a decision's ``source`` finds the detections behind it."""

TEXT_KIND, TEXT_SCAN_KIND = "text", "text-scan"
"""Text read by the text family, and a frame it examined (label empty): merging text over time
tells "looked and saw nothing" from "did not look"."""

SampleReason = Literal["interval", "keyframe", "shot"]
"""Why a frame is a sample: its interval came, it is a keyframe, or a shot starts there."""


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame handed to the models.

    Attributes:
        time: presentation time in seconds from the start of the video (pts x time_base).
        index: ordinal of this frame among the frames decoded in this pass (the frame number
            when every frame is decoded from the start).
        image: BGR uint8, rotation applied, long side <= the requested ``max_side``.
        reason: why it is a sample: ``interval``, ``keyframe`` or ``shot`` (observer asked).
        keyframe: whether the frame is a keyframe of the stream.
    """

    time: float
    index: int
    image: np.ndarray
    reason: SampleReason
    keyframe: bool


@dataclass(frozen=True, eq=False)
class Detection:
    """One thing found in one frame.

    Attributes:
        time: the frame's time in seconds.
        kind: what sort of thing it is (the ``*_KIND`` constants above; a tagging family's own
            name).
        label: what was found (a class name, the text read, ...).
        score: confidence, 0-1.
        box: (x, y, w, h) in pixels of the frame image as analysed, or None for whole-frame
            results.
        embedding: a feature vector (face identity, ...) or None.
        details: measurements an analyzer records for later decisions (a face's size, sharpness
            and pose, landmarks flattened, ...); keys are documented by each analyzer.
    """

    time: float
    kind: str
    label: str
    score: float
    box: tuple[float, float, float, float] | None = None
    embedding: np.ndarray | None = None
    details: Mapping[str, float] | None = None


class Analyzer(Protocol):
    """A model family that looks at sample frames.

    ``name`` identifies it in timings and caches; ``analyze`` gets frames in time order, in
    batches of at most the engine's batch size.
    """

    name: str

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        """Detections found in ``batch`` (any number, in any order)."""
        ...


@dataclass(frozen=True)
class PerformerMatch:
    """A performer recognised in a scene (from the performer gallery), as the planner takes it."""

    performer_id: str
    name: str
    score: float
    auto: bool  # at or above the auto-apply bar with enough evidence; else a suggestion
