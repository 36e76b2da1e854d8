"""Per-frame scores of one label to time segments: threshold, gap joining, minimum length.

Sample frames are not evenly spaced (shot-start samples fall between interval samples), so each
sample stands for the time from itself to the next sample, at most one typical interval, never
past the end of the video or into a technical (black) span. A segment spans from its first hit to
the end of its last hit's stretch. The *gap* between two hits is the time between the end of the
first one's stretch and the second one, so hits on consecutive samples always have gap 0.

Technical spans take part in two ways: a hit inside one does not count, and a segment never
crosses one (black usually separates scenes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from tagger.detections import Detection

Span = tuple[float, float]
"""A (start, end) time span in seconds, end exclusive."""

EPSILON_S = 1e-6
"""Tolerance for comparing times: sample times are float sums and must not flip a decision."""


@dataclass(frozen=True)
class Segment:
    """A stretch of the video where one label was seen.

    Attributes:
        label: the detector's class.
        start: time of the first hit (seconds).
        end: end of the last hit's stretch (seconds, exclusive).
        peak_score: the highest frame score.
        mean_score: the mean of the hit frames' scores.
        frames: how many sample frames were hits.
        scores: the hit frames' scores in time order (for aggregates; not compared).
    """

    label: str
    start: float
    end: float
    peak_score: float
    mean_score: float
    frames: int
    scores: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def typical_interval(times: Sequence[float]) -> float:
    """The median spacing of sample times (0 with fewer than two samples)."""
    steps = [b - a for a, b in zip(times, times[1:]) if b - a > EPSILON_S]
    return median(steps) if steps else 0.0


def inside(t: float, spans: Iterable[Span]) -> bool:
    """Whether ``t`` falls in one of ``spans`` (start inclusive, end exclusive)."""
    return any(a - EPSILON_S <= t < b - EPSILON_S for a, b in spans)


def _crosses(a: float, b: float, spans: Iterable[Span]) -> bool:
    """Whether a span lies (partly) between times ``a`` and ``b``."""
    return any(s < b and e > a for s, e in spans)


def _next_span_start(t: float, spans: Iterable[Span]) -> float:
    """Where the first span starting after ``t`` starts (infinity if none)."""
    return min((s for s, _ in spans if s > t + EPSILON_S), default=float("inf"))


def sample_ends(times: Sequence[float], end: float, interval_s: float | None = None,
                technical: Sequence[Span] = ()) -> list[float]:
    """Until when each sample stands: the next sample, at most one interval after it, never past
    ``end`` or into a technical span.

    Arguments:
        times: sample times, increasing.
        end: where the analysed video ends.
        interval_s: the nominal sample spacing; the median spacing when None.
        technical: spans nothing is seen in.
    """
    step = interval_s if interval_s is not None else typical_interval(times)
    ends: list[float] = []
    for i, t in enumerate(times):
        limit = times[i + 1] if i + 1 < len(times) else float("inf")
        if step > 0:
            limit = min(limit, t + step)
        limit = min(limit, end, _next_span_start(t, technical))
        ends.append(max(t, limit))
    return ends


def scores_by_frame(detections: Iterable[Detection], label: str,
                    sample_times: Iterable[float]) -> tuple[list[float], list[float]]:
    """Time-ordered sample times and the best score of ``label`` in each (0 when absent).

    A detection at a time missing from ``sample_times`` adds that time: it proves the frame was
    looked at.
    """
    best: dict[float, float] = {round(float(t), 6): 0.0 for t in sample_times}
    for found in detections:
        if found.label == label:
            key = round(float(found.time), 6)
            best[key] = max(best.get(key, 0.0), float(found.score))
    times = sorted(best)
    return times, [best[t] for t in times]


def _make_segment(label: str, times: Sequence[float], scores: Sequence[float],
                  ends: Sequence[float], group: Sequence[int]) -> Segment:
    """The segment over the hit indexes ``group``."""
    hit_scores = tuple(scores[i] for i in group)
    return Segment(label=label, start=times[group[0]], end=ends[group[-1]],
                   peak_score=max(hit_scores), mean_score=sum(hit_scores) / len(hit_scores),
                   frames=len(group), scores=hit_scores)


def _group_hits(hits: Sequence[int], times: Sequence[float], ends: Sequence[float],
                max_gap_s: float, technical: Sequence[Span]) -> list[list[int]]:
    """Hit indexes grouped: a hit joins the previous one when the gap is at most ``max_gap_s``
    and no technical span lies between them."""
    groups: list[list[int]] = []
    for i in hits:
        if groups:
            last = groups[-1][-1]
            gap = times[i] - ends[last]
            if gap <= max_gap_s + EPSILON_S and not _crosses(times[last], times[i], technical):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def find_segments(
    label: str, times: Sequence[float], scores: Sequence[float], *, threshold: float,
    max_gap_s: float, min_duration_s: float, end: float, technical: Sequence[Span] = (),
    interval_s: float | None = None,
) -> list[Segment]:
    """Segments where ``label`` scores at least ``threshold``.

    Arguments:
        label: the class the scores are for.
        times: sample times, strictly increasing (every frame the label was looked for).
        scores: the label's best score in each sample frame, 0 when absent.
        threshold: a frame is a hit when its score is at least this.
        max_gap_s: hits separated by at most this much time without a hit are joined.
        min_duration_s: shorter segments are dropped.
        end: where the analysed video ends (segments are clipped to it).
        technical: (start, end) spans where hits do not count and segments never cross.
        interval_s: the nominal sample spacing; the median spacing when None.

    Raises:
        ValueError: ``times`` and ``scores`` differ in length, or times do not increase.
    """
    if len(times) != len(scores):
        raise ValueError(f"times and scores must have the same length, got {len(times)} and "
                         f"{len(scores)}")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("times must be strictly increasing")
    ends = sample_ends(times, end, interval_s, technical)
    hits = [i for i, (t, s) in enumerate(zip(times, scores))
            if s >= threshold and not inside(t, technical)]
    groups = _group_hits(hits, times, ends, max_gap_s, technical)
    segments = [_make_segment(label, times, scores, ends, g) for g in groups]
    return [s for s in segments if s.duration >= min_duration_s - EPSILON_S]
