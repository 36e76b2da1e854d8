"""Scene tags and markers from a tagging family's detections, per its tag rules.

Per enabled rule: the label's per-frame scores become segments (``segments.find_segments``);
segments become markers when the rule asks for them, and the scene gets the tag when the
segments cover enough of the analysed time (share or seconds, see ``TagRule``). Each family's
detections (``kind`` = its name) are decided with its own rules (``RuleSet``), and every decision
carries the family as its ``source``.

The analysed time is the video's duration less its technical (black) spans: nothing can be seen
in black, so it should not dilute the share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Union

from tagger.decide.rules import TagRule
from tagger.decide.segments import EPSILON_S, Segment, Span, find_segments, scores_by_frame
from tagger.detections import Detection
from tagger.families import CONTENT

TOP_K_FRAMES = 5
"""A scene tag's score is the mean of its best this-many hit frames. The maximum would let one
freak frame decide; the mean of all hits would punish a long, partly occluded segment. The top
five at 2-s sampling are ten seconds of the clearest view."""


class TimeSpan(Protocol):
    """Anything with a start and an end in seconds (``tagger.media.shots.TechnicalSpan``)."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


SpanLike = Union[Span, list[float], TimeSpan]
"""A technical span as given: a pair or a ``TechnicalSpan``-like object."""


@dataclass(frozen=True)
class SceneTag:
    """A tag for the whole scene.

    Attributes:
        name: the tag name to write.
        label: the detector's class.
        score: mean of the best ``TOP_K_FRAMES`` hit scores (0-1).
        seconds: total length of the label's segments.
        share: ``seconds`` over the analysed time (0-1).
        source: the family that found it (its detections of kind ``source`` are the evidence).
    """

    name: str
    label: str
    score: float
    seconds: float
    share: float
    source: str = CONTENT


@dataclass(frozen=True)
class MarkerDecision:
    """A marker to create: ``title`` with primary tag ``tag`` over [start, end), scored by the
    segment's mean hit score; ``source`` is the family it comes from (content, shots, ...) and
    ``label`` the detector class behind it (empty for shots)."""

    title: str
    tag: str
    start: float
    end: float
    score: float
    source: str = CONTENT
    label: str = ""


@dataclass(frozen=True)
class RuleSet:
    """One tagging family's rules by label; its detections are those of kind ``source``."""

    source: str
    rules: Mapping[str, TagRule]


class TagDecisions(NamedTuple):
    """What ``decide_tags`` decided: scene tags (best score first) and markers (by start)."""

    scene_tags: list[SceneTag]
    markers: list[MarkerDecision]


def as_spans(spans: Iterable[SpanLike]) -> list[Span]:
    """(start, end) tuples from pairs (tuples, or lists read from JSON) or objects with
    ``start``/``end``."""
    return [(float(s[0]), float(s[1])) if isinstance(s, (tuple, list))
            else (float(s.start), float(s.end)) for s in spans]


def analysed_seconds(duration: float, technical: Sequence[Span]) -> float:
    """The video's duration less the parts of technical spans inside it."""
    covered = sum(max(0.0, min(e, duration) - max(s, 0.0)) for s, e in _merged(technical))
    return max(0.0, duration - covered)


def _merged(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans merged (so they are not subtracted twice)."""
    merged: list[Span] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def top_k_mean(scores: Iterable[float], k: int = TOP_K_FRAMES) -> float:
    """The mean of the ``k`` highest scores (0 for none)."""
    best = sorted(scores, reverse=True)[:k]
    return sum(best) / len(best) if best else 0.0


def passes_scene_bar(rule: TagRule, seconds: float, share: float) -> bool:
    """Whether segments of ``seconds`` (``share`` of the analysed time) earn the scene tag: any
    bar the rule sets is enough."""
    if not rule.scene_tag or seconds <= 0:
        return False
    by_share = rule.scene_min_share is not None and share >= rule.scene_min_share - EPSILON_S
    by_seconds = rule.scene_min_seconds is not None and seconds >= rule.scene_min_seconds - EPSILON_S
    return by_share or by_seconds


def scene_tag_for(rule: TagRule, segments: Sequence[Segment], analysed_s: float,
                  source: str = CONTENT) -> SceneTag | None:
    """The scene tag ``segments`` earn under ``rule``, or None."""
    seconds = sum(s.duration for s in segments)
    share = min(1.0, seconds / analysed_s) if analysed_s > 0 else 0.0
    if not passes_scene_bar(rule, seconds, share):
        return None
    score = top_k_mean(score for s in segments for score in s.scores)
    return SceneTag(name=rule.tag, label=rule.label, score=score, seconds=seconds, share=share,
                    source=source)


def markers_for(rule: TagRule, segments: Sequence[Segment], source: str = CONTENT) -> list[MarkerDecision]:
    """One marker per segment when the rule asks for markers."""
    if not rule.marker:
        return []
    return [MarkerDecision(title=rule.tag, tag=rule.tag, start=s.start, end=s.end, label=rule.label,
                           score=s.mean_score, source=source) for s in segments]


def segments_for(rule: TagRule, detections: Sequence[Detection], sample_times: Sequence[float],
                 duration: float, technical: Sequence[Span]) -> list[Segment]:
    """The rule's label's segments, under the rule's threshold, gap and minimum length."""
    times, scores = scores_by_frame(detections, rule.label, sample_times)
    return find_segments(rule.label, times, scores, threshold=rule.threshold,
                         max_gap_s=rule.max_gap_s, min_duration_s=rule.min_duration_s,
                         end=duration, technical=technical)


def decide_tags(
    detections: Iterable[Detection], sample_times: Sequence[float], duration: float,
    rules: Mapping[str, TagRule], technical: Iterable[SpanLike] = (), *,
    source: str = CONTENT,
) -> TagDecisions:
    """Scene tags and markers for one video, from one family.

    Arguments:
        detections: all detections; only those of kind ``source`` with a label that has a rule
            count.
        sample_times: times of every analysed sample frame (where labels were looked for).
        duration: where the analysed part of the video ends (seconds).
        rules: the family's rules by label (``rules_from_config``); disabled rules are skipped.
        technical: black/technical spans, as (start, end) or objects with start/end.
        source: the tagging family: whose detections are read, and what the decisions carry.
    """
    spans = as_spans(technical)
    by_label: dict[str, list[Detection]] = {}
    for found in detections:
        if found.kind == source and found.label in rules:
            by_label.setdefault(found.label, []).append(found)
    analysed_s = analysed_seconds(duration, spans)
    scene_tags: list[SceneTag] = []
    markers: list[MarkerDecision] = []
    for label, rule in rules.items():
        if not rule.enabled or label not in by_label:
            continue
        segments = segments_for(rule, by_label[label], sample_times, duration, spans)
        tag = scene_tag_for(rule, segments, analysed_s, source)
        if tag is not None:
            scene_tags.append(tag)
        markers += markers_for(rule, segments, source)
    scene_tags.sort(key=lambda t: (-t.score, t.name))
    markers.sort(key=lambda m: (m.start, m.tag))
    return TagDecisions(scene_tags, markers)


def decide_families(detections: Sequence[Detection], sample_times: Sequence[float], duration: float,
                    rule_sets: Iterable[RuleSet], technical: Iterable[SpanLike] = ()) -> TagDecisions:
    """``decide_tags`` once per tagging family, each on its own detections with its own rules;
    scene tags best score first, markers by start."""
    spans = as_spans(technical)
    scene_tags: list[SceneTag] = []
    markers: list[MarkerDecision] = []
    for rule_set in rule_sets:
        found = decide_tags(detections, sample_times, duration, rule_set.rules, spans,
                            source=rule_set.source)
        scene_tags += found.scene_tags
        markers += found.markers
    scene_tags.sort(key=lambda t: (-t.score, t.name))
    markers.sort(key=lambda m: (m.start, m.tag))
    return TagDecisions(scene_tags, markers)
