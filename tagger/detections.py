"""What analyzers report about frames, and the one interface every analyzer implements.

An analyzer (faces, content, OCR, ...) is shaped like a PySceneDetect detector: one required
method, ``analyze(batch) -> detections``, taking a batch of sample frames (``tagger.media.frames
.Frame``: time, image BGR uint8, ...) and returning what it found in them. Decisions (segments,
tags, identities) are made later from the detections, never inside an analyzer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from tagger.media.frames import Frame


@dataclass(frozen=True, eq=False)
class Detection:
    """One thing found in one frame.

    Attributes:
        time: the frame's time in seconds.
        kind: the analyzer family: ``face``, ``content``, ``text``, ...
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
