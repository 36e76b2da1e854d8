"""Per-label tagging rules: thresholds, durations, scene-tag bars, markers, names, blacklist.

A ``TagRule`` says what to do with one detector class (a NudeNet label, ...): at which score a
frame counts, how segments are smoothed, whether the scene gets a tag and whether segments become
markers. Each tagging family ships its own rules (``Family.default_rules``: NudeNet 320n's are in
``tagger.analyzers.content``); ``rules_from_config`` applies the user's per-label overrides on top
and rejects anything it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

# TagRule's defaults: the content family's bar for explicit classes, a fair start for any family.

EXPLICIT_THRESHOLD = 0.5
"""Frame score for explicit classes. NudeNet's own cut-off is 0.2, which is meant for recall when
censoring; for tags written to a library, 0.5 keeps the 320n model's confident detections."""

MIN_DURATION_S = 3.0
"""Shortest segment kept. At the default 2-s sampling one lone frame spans 2 s and is dropped,
two consecutive frames (4 s) are kept: a single-frame hit is the commonest false positive."""

MAX_GAP_S = 4.0
"""Longest stretch without a hit that still joins two hits into one segment: up to two missed
samples at 2-s sampling. Detections flicker with pose and occlusion; a marker should not."""

EXPLICIT_MIN_SHARE = 0.02
"""Explicit classes tag the scene at 2 % of the analysed time (72 s of an hour)..."""

EXPLICIT_MIN_SECONDS = 20.0
"""...or at 20 s in all, whichever comes first: a long film with one explicit minute is still
tagged, and a short clip needs more than a flicker."""


def readable_tag(label: str) -> str:
    """The default tag name for a detector label: ``FEMALE_BREAST_EXPOSED`` -> ``Female Breast
    Exposed``. Stable: it depends on the label alone."""
    return " ".join(word.capitalize() for word in label.split("_") if word)


def _check(condition: bool, label: str, name: str, rule: str, value: object) -> None:
    """Raise ``ValueError`` naming the rule's label, the field and the rule."""
    if not condition:
        raise ValueError(f"tag rule {label!r}: {name} must be {rule}, got {value!r}")


def _is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TagRule:
    """What to do with one detector class.

    Attributes:
        label: the detector's class name.
        tag: the tag name written to Stash; empty means ``readable_tag(label)``.
        threshold: a frame counts when its score is at least this (0-1).
        min_duration_s: shorter segments are dropped.
        max_gap_s: stretches without a hit up to this long join two hits into one segment.
        scene_tag: whether the scene may get the tag.
        scene_min_share: the scene gets the tag when segments cover at least this share (0-1)
            of the analysed time...
        scene_min_seconds: ...or at least this many seconds. None disables a bar; a scene tag
            needs at least one of them.
        marker: whether segments become markers.
        enabled: False blacklists the label: it yields neither tags nor markers.
    """

    label: str
    tag: str = ""
    threshold: float = EXPLICIT_THRESHOLD
    min_duration_s: float = MIN_DURATION_S
    max_gap_s: float = MAX_GAP_S
    scene_tag: bool = True
    scene_min_share: float | None = EXPLICIT_MIN_SHARE
    scene_min_seconds: float | None = EXPLICIT_MIN_SECONDS
    marker: bool = True
    enabled: bool = True

    def __post_init__(self) -> None:
        label = self.label
        _check(isinstance(label, str) and bool(label.strip()), label, "label", "a non-empty string",
               label)
        _check(isinstance(self.tag, str), label, "tag", "a string", self.tag)
        if not self.tag.strip():
            object.__setattr__(self, "tag", readable_tag(label))
        _check(_is_number(self.threshold) and 0 <= self.threshold <= 1, label, "threshold",
               "a number from 0 to 1", self.threshold)
        for name in ("min_duration_s", "max_gap_s"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, label, name, ">= 0 seconds", value)
        share, seconds = self.scene_min_share, self.scene_min_seconds
        _check(share is None or (_is_number(share) and 0 <= share <= 1), label, "scene_min_share",
               "None or a number from 0 to 1", share)
        _check(seconds is None or (_is_number(seconds) and seconds >= 0), label,
               "scene_min_seconds", "None or >= 0 seconds", seconds)
        for name in ("scene_tag", "marker", "enabled"):
            _check(isinstance(getattr(self, name), bool), label, name, "true or false",
                   getattr(self, name))
        _check(not self.scene_tag or share is not None or seconds is not None, label,
               "scene_min_share", "set (or scene_min_seconds set) when scene_tag is on", share)


_OVERRIDABLE: frozenset[str] = frozenset(f.name for f in fields(TagRule)) - {"label"}
"""Keys a per-label override may set: every rule field but the label itself."""


def rules_from_config(overrides: Mapping[str, Mapping[str, Any]] | None,
                      base: Mapping[str, TagRule]) -> dict[str, TagRule]:
    """``base`` (a family's default rules) with the user's per-label overrides applied.

    Arguments:
        overrides: ``{label: {field: value}}``, e.g. ``{"FEET_EXPOSED": {"enabled": False},
            "FEMALE_BREAST_EXPOSED": {"tag": "Topless", "threshold": 0.6}}``.
        base: rules to start from, by label.

    Raises:
        ValueError: an unknown label or key (named), or a value a rule rejects.
    """
    rules = dict(base)
    for label, changes in (overrides or {}).items():
        if label not in rules:
            raise ValueError(f"tag rules: unknown label {label!r}; known: {', '.join(sorted(rules))}")
        if not isinstance(changes, Mapping):
            raise ValueError(f"tag rule {label!r}: overrides must be a mapping, got {changes!r}")
        unknown = sorted(set(changes) - _OVERRIDABLE)
        if unknown:
            raise ValueError(f"tag rule {label!r}: unknown key {unknown[0]!r}; known: "
                             f"{', '.join(sorted(_OVERRIDABLE))}")
        rules[label] = replace(rules[label], **changes)
    return rules
