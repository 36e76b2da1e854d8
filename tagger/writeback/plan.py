"""The plan for one scene: what the engine found, diffed against what the scene has in Stash and
against what the journal says the tagger owns there. Pure: no Stash, no files, no models.

The rules, each a promise to the user:

- Only what the scene lacks is added; nothing the user made is touched.
- What the tagger added and the user since removed is not added again (a *decline* is recorded).
- A re-run that finds the same tag over the same span keeps (or moves) the tagger's marker; it
  never adds a second one, and never duplicates a marker the user made for the same thing.
- What the tagger added earlier and a re-run no longer finds is taken back, but only when it is
  still as the tagger left it, and only when the analyzer that found it ran this time.
- Only what the analysis saw is taken back or moved: a tagger marker reaching past the analysed
  part is kept as it is, and scene tags are taken back only when all of the video that can be read
  was analysed (a pass cut by its budget or a dropped stream takes back nothing of them).
- The studio is set only where the scene has none (or has the one the tagger set), unless
  ``studio_overwrite``; otherwise the guess waits for review.
- Findings below the auto-apply bar become suggestions; a rejected suggestion never comes back.

``owned_on_scene`` folds the journal's confirmed entries into what the tagger owns on a scene; it
lives here, beside its only consumer, so that ownership rules and planning rules read together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagger import families
from tagger.detections import PerformerMatch
from tagger.writeback.journal import Action, JournalEntry

if TYPE_CHECKING:
    from tagger.decide.studio import StudioMatch
    from tagger.decide.tags import MarkerDecision, SceneTag

SECONDS_TOLERANCE = 0.002
"""Marker times closer than this are the same time (we send them rounded to milliseconds)."""

SAME_SPAN_TOLERANCE_S = 0.5
"""A re-run's marker whose ends are both within this of the tagger's marker keeps that marker
as it is: sampling the same video again lands on the same frames, so real moves are larger."""

USER_MARKER_IOU = 0.5
"""A marker the user made with the same primary tag, overlapping a finding at least this much
(intersection over union), already says what the finding says: the tagger adds none."""

SHOT_SOURCE, STUDIO_SOURCE, PERFORMER_SOURCE = families.SHOTS, families.TEXT, families.FACES
STATUS_SOURCE = "status"
"""Which family a change comes from (the config's analyzer names; ``status`` for status tags).
Scene tags and markers carry their family in their decision's ``source``. A change is only taken
back when its source ran again and no longer finds it."""


def tag_key(name: str) -> str:
    """The case-insensitive key of a tag name (Stash compares tag names and aliases so)."""
    return " ".join(name.split()).casefold()


# ---- what Stash has ------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkerState:
    """The fields of a marker the tagger compares: what it sent, or what Stash has now."""

    title: str
    seconds: float
    end_seconds: float | None
    primary_tag_id: str
    tag_ids: tuple[str, ...] = ()

    def same_as(self, other: MarkerState) -> bool:
        """Whether ``other`` is this marker unchanged (times within the rounding we send)."""

        def close(a: float | None, b: float | None) -> bool:
            if a is None or b is None:
                return a is b
            return abs(a - b) <= SECONDS_TOLERANCE

        return (
            self.title == other.title
            and close(self.seconds, other.seconds)
            and close(self.end_seconds, other.end_seconds)
            and self.primary_tag_id == other.primary_tag_id
            and sorted(self.tag_ids) == sorted(other.tag_ids)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": self.seconds,
            "end_seconds": self.end_seconds,
            "primary_tag_id": self.primary_tag_id,
            "tag_ids": list(self.tag_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkerState:
        return cls(
            title=str(data["title"]),
            seconds=float(data["seconds"]),
            end_seconds=None if data.get("end_seconds") is None else float(data["end_seconds"]),
            primary_tag_id=str(data["primary_tag_id"]),
            tag_ids=tuple(str(t) for t in data.get("tag_ids") or ()),
        )


@dataclass(frozen=True)
class SceneState:
    """What a scene has in Stash right now (read just before planning)."""

    id: str
    tag_ids: frozenset[str] = frozenset()
    performer_ids: frozenset[str] = frozenset()
    studio_id: str | None = None
    markers: Mapping[str, MarkerState] = field(default_factory=dict)


# ---- what the tagger owns (from the journal) -----------------------------------------------


@dataclass(frozen=True)
class OwnedTag:
    tag_id: str
    name: str
    source: str
    confirmed: bool = False  # added because the user accepted a suggestion
    run_id: str = ""


@dataclass(frozen=True)
class OwnedMarker:
    marker_id: str
    state: MarkerState
    tag_name: str
    source: str
    run_id: str = ""


@dataclass(frozen=True)
class OwnedStudio:
    studio_id: str
    before: str | None  # the studio the scene had before the tagger first set one
    confirmed: bool = False
    run_id: str = ""
    previous: str | None = None  # the studio right before this change (an earlier run's, maybe)


@dataclass(frozen=True)
class DeclinedSpan:
    """A marker of the tagger's that the user deleted: no marker for that tag there again."""

    tag: str  # tag_key of the primary tag's name
    start: float
    end: float


@dataclass
class Owned:
    """What the tagger added to one scene and has not taken back, and what the user declined."""

    tags: dict[str, OwnedTag] = field(default_factory=dict)
    performers: dict[str, OwnedTag] = field(default_factory=dict)
    markers: dict[str, OwnedMarker] = field(default_factory=dict)
    studio: OwnedStudio | None = None
    declined: set[str] = field(default_factory=set)
    declined_spans: list[DeclinedSpan] = field(default_factory=list)
    studio_history: list[OwnedStudio] = field(default_factory=list)  # earlier changes, oldest first


def owned_on_scene(entries: Iterable[JournalEntry]) -> Owned:
    """Fold a scene's confirmed journal entries (oldest first) into what the tagger owns there."""
    owned = Owned()
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.status != "done":
            continue
        payload, target = entry.payload, entry.target or ""
        action = entry.action
        confirmed = bool(payload.get("confirmed"))
        if action == Action.ADD_TAG:
            owned.tags[target] = OwnedTag(
                target, str(payload.get("name", "")), str(payload.get("source", "")), confirmed, entry.run_id
            )
        elif action == Action.REMOVE_TAG:
            owned.tags.pop(target, None)
        elif action == Action.ADD_PERFORMER:
            owned.performers[target] = OwnedTag(
                target, str(payload.get("name", "")), str(payload.get("source", "")), confirmed, entry.run_id
            )
        elif action == Action.REMOVE_PERFORMER:
            owned.performers.pop(target, None)
        elif action == Action.CREATE_MARKER:
            owned.markers[target] = OwnedMarker(
                target,
                MarkerState.from_dict(payload["state"]),
                str(payload.get("tag_name", "")),
                str(payload.get("source", "")),
                entry.run_id,
            )
        elif action == Action.UPDATE_MARKER and target in owned.markers:
            previous = owned.markers[target]
            owned.markers[target] = OwnedMarker(
                target,
                MarkerState.from_dict(payload["state"]),
                previous.tag_name,
                previous.source,
                previous.run_id,
            )
        elif action == Action.DESTROY_MARKER:
            owned.markers.pop(target, None)
        elif action == Action.SET_STUDIO:
            # A second change keeps the first one's "before": undo goes back to the user's studio;
            # "previous" lets undoing only the later run go back to the earlier run's studio.
            recorded = entry.before or {}
            before = owned.studio.before if owned.studio else recorded.get("studio_id")
            previous = recorded.get("previous", recorded.get("studio_id"))
            if owned.studio is not None:
                owned.studio_history.append(owned.studio)
            owned.studio = OwnedStudio(target, before, confirmed, entry.run_id, previous)
        elif action == Action.RESTORE_STUDIO:
            restored = payload.get("studio_id")
            earlier = owned.studio_history[-1] if owned.studio_history else None
            if earlier is not None and earlier.studio_id == restored:
                owned.studio = owned.studio_history.pop()  # back to the earlier run's change
            else:
                owned.studio, owned.studio_history = None, []
        elif action == Action.DECLINE:
            key = str(payload["key"])
            owned.declined.add(key)
            _end_ownership(owned, key)  # what the user removed is no longer the tagger's
            span = payload.get("span")
            if span:
                owned.declined_spans.append(DeclinedSpan(str(span[0]), float(span[1]), float(span[2])))
    return owned


def _end_ownership(owned: Owned, key: str) -> None:
    """Forget the object a decline ``key`` is about: if the user brings it back, it is theirs."""
    kind, _, ident = key.partition(":")
    if kind == "tag":
        for tag_id in [i for i, t in owned.tags.items() if tag_key(t.name) == ident]:
            del owned.tags[tag_id]
    elif kind == "performer":
        owned.performers.pop(ident, None)
    elif kind == "marker":
        owned.markers.pop(ident, None)
    elif kind == "studio" and owned.studio is not None and owned.studio.studio_id == ident:
        owned.studio, owned.studio_history = None, []


# ---- what the engine found -----------------------------------------------------------------


@dataclass(frozen=True)
class Findings:
    """The engine's decisions about one scene, as the planner needs them.

    Attributes:
        tags: scene tags above the auto-apply bar.
        markers: markers to have (content segments, shots).
        studio: the studio read on screen, if decided.
        review_tags: scene tags found only in the review band (below the bar): suggestions.
        performers: recognised performers.
        sources: analyzers that ran for these findings (what they do not report is gone).
        evidence: for a tag (by ``tag_key``), the times of the frames that show it best.
        models: model id and version per source, recorded as the reason of each change.
        analysed_end: where the analysed part of the video ends (seconds); None: at its end. A
            marker of the tagger's reaching past it was not seen: it is neither moved nor removed.
        whole: whether all of the video that can be read was analysed (a truncated file's readable
            part is all of it); scene tags are taken back only then.
    """

    tags: Sequence[SceneTag] = ()
    markers: Sequence[MarkerDecision] = ()
    studio: StudioMatch | None = None
    review_tags: Sequence[SceneTag] = ()
    performers: Sequence[PerformerMatch] = ()
    sources: frozenset[str] = frozenset()
    evidence: Mapping[str, Sequence[float]] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    analysed_end: float | None = None
    whole: bool = True

    def saw(self, state: MarkerState) -> bool:
        """Whether the analysis covered all of a marker's span."""
        end = _span(state)[1]
        return self.analysed_end is None or end <= self.analysed_end + SECONDS_TOLERANCE


@dataclass(frozen=True)
class PlanOptions:
    """Planning settings from the configuration.

    Attributes:
        whitelist: when not empty, only tags whose name or detector label is listed (as
            ``tag_key``) are written.
        studio_overwrite: replace a studio the user set (the old one is journaled for undo).
        status_tag: name of a tag every processed scene gets (None: no status tags).
        rejected: suggestion keys the user rejected on this scene.
    """

    whitelist: frozenset[str] = frozenset()
    studio_overwrite: bool = False
    status_tag: str | None = None
    rejected: frozenset[str] = frozenset()


# ---- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagChange:
    """A tag to add to (or take back from) the scene. ``tag_id`` None: the tag is created."""

    name: str
    tag_id: str | None
    source: str
    reason: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PerformerChange:
    performer_id: str
    name: str
    source: str
    reason: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkerCreate:
    """A marker to create; its primary tag is ``tag`` (``tag_id`` None: created first)."""

    title: str
    tag: str
    tag_id: str | None
    seconds: float
    end_seconds: float
    source: str
    reason: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkerUpdate:
    """One of the tagger's markers, still as it left it, moved to a re-run's span."""

    marker_id: str
    before: MarkerState
    after: MarkerState
    reason: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkerRemove:
    """One of the tagger's markers, still as it left it, that a re-run no longer finds."""

    marker_id: str
    state: MarkerState
    tag_name: str


@dataclass(frozen=True)
class StudioChange:
    """A studio to set. ``before``: the user's studio the tagger first replaced (what undo of
    everything restores); ``previous``: the scene's studio right now (what undo of this run
    restores)."""

    studio_id: str
    name: str
    before: str | None
    reason: Mapping[str, Any] = field(default_factory=dict)
    previous: str | None = None


@dataclass(frozen=True)
class Decline:
    """Something the tagger added that the user removed: remembered, never added again."""

    key: str
    what: str
    span: tuple[str, float, float] | None = None


@dataclass(frozen=True)
class Suggestion:
    """A finding below the auto-apply bar, waiting for the user.

    ``key`` identifies it per scene across runs (``tag:<name>``, ``studio:<id>``,
    ``performer:<id>``): a rejected key is never suggested again for that scene.
    """

    key: str
    kind: str  # tag | studio | performer
    title: str
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScenePlan:
    """Every change for one scene, and what waits for review."""

    scene_id: str
    add_tags: tuple[TagChange, ...] = ()
    remove_tags: tuple[TagChange, ...] = ()
    add_performers: tuple[PerformerChange, ...] = ()
    create_markers: tuple[MarkerCreate, ...] = ()
    update_markers: tuple[MarkerUpdate, ...] = ()
    remove_markers: tuple[MarkerRemove, ...] = ()
    set_studio: StudioChange | None = None
    declines: tuple[Decline, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    unchanged: int = 0  # findings the scene already shows as decided

    @property
    def changes(self) -> int:
        """How many mutations of Stash data the plan holds."""
        return (
            len(self.add_tags)
            + len(self.remove_tags)
            + len(self.add_performers)
            + len(self.create_markers)
            + len(self.update_markers)
            + len(self.remove_markers)
            + (self.set_studio is not None)
        )

    def tags_to_create(self) -> list[str]:
        """Names of tags that do not exist yet (for scene tags and marker primary tags)."""
        names = [t.name for t in self.add_tags if t.tag_id is None]
        names += [m.tag for m in self.create_markers if m.tag_id is None]
        return list({tag_key(n): n for n in names}.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for reports and the plugin's output."""
        return {
            "add_tags": [{"name": t.name, "new": t.tag_id is None, **dict(t.reason)} for t in self.add_tags],
            "remove_tags": [t.name for t in self.remove_tags],
            "add_performers": [
                {"id": p.performer_id, "name": p.name, **dict(p.reason)} for p in self.add_performers
            ],
            "create_markers": [
                {
                    "title": m.title,
                    "tag": m.tag,
                    "seconds": m.seconds,
                    "end_seconds": m.end_seconds,
                    **dict(m.reason),
                }
                for m in self.create_markers
            ],
            "update_markers": [
                {"id": m.marker_id, "seconds": m.after.seconds, "end_seconds": m.after.end_seconds}
                for m in self.update_markers
            ],
            "remove_markers": [{"id": m.marker_id, "title": m.state.title} for m in self.remove_markers],
            "set_studio": (
                {
                    "id": self.set_studio.studio_id,
                    "name": self.set_studio.name,
                    **dict(self.set_studio.reason),
                }
                if self.set_studio
                else None
            ),
            "declines": [d.key for d in self.declines],
            "suggestions": [
                {"key": s.key, "kind": s.kind, "title": s.title, "score": s.score} for s in self.suggestions
            ],
            "unchanged": self.unchanged,
        }


def plan_scene(
    scene: SceneState,
    findings: Findings,
    *,
    tag_ids: Mapping[str, str],
    owned: Owned,
    options: PlanOptions = PlanOptions(),
) -> ScenePlan:
    """The changes that bring ``scene`` to what ``findings`` say, under the rules above.

    Arguments:
        scene: the scene as Stash has it now.
        findings: what the engine decided.
        tag_ids: existing Stash tags by ``tag_key`` of every name and alias (case-insensitive,
            as Stash matches them); a name missing here is created under the parent tag.
        owned: what the tagger owns on the scene (``owned_on_scene``).
        options: planning settings.
    """
    declines = _declines(scene, owned)
    gone = {d.key for d in declines}
    declined = owned.declined | gone
    declined_spans = [*owned.declined_spans, *(DeclinedSpan(*d.span) for d in declines if d.span is not None)]

    add_tags, wanted_tag_keys, tags_unchanged = _plan_tags(scene, findings, tag_ids, declined, options)
    remove_tags = _plan_tags_taken_back(scene, findings, owned, gone, wanted_tag_keys, options)
    create, update, remove, markers_kept = _plan_markers(
        scene, findings, tag_ids, owned, declined_spans, gone, options
    )
    add_performers, performer_suggestions, performers_unchanged = _plan_performers(
        scene, findings, declined, options
    )
    studio, studio_suggestion, studio_unchanged = _plan_studio(scene, findings, owned, declined, options)
    tag_suggestions = _suggest_review_tags(scene, findings, tag_ids, declined, wanted_tag_keys, options)
    studio_suggestions = [studio_suggestion] if studio_suggestion is not None else []
    suggestions = [*performer_suggestions, *studio_suggestions, *tag_suggestions]
    return ScenePlan(
        scene_id=scene.id,
        add_tags=tuple(add_tags),
        remove_tags=tuple(remove_tags),
        add_performers=tuple(add_performers),
        create_markers=tuple(create),
        update_markers=tuple(update),
        remove_markers=tuple(remove),
        set_studio=studio,
        declines=tuple(declines),
        suggestions=tuple(suggestions),
        unchanged=tags_unchanged + markers_kept + performers_unchanged + studio_unchanged,
    )


def _plan_tags(
    scene: SceneState,
    findings: Findings,
    tag_ids: Mapping[str, str],
    declined: set[str],
    options: PlanOptions,
) -> tuple[list[TagChange], set[str], int]:
    """Scene tags to add: the allowed findings and the status tag, unless the scene has them or
    the user removed them. Returns (the additions, ``tag_key`` of every tag wanted, how many the
    scene already has)."""
    add_tags: list[TagChange] = []
    wanted_tag_keys: set[str] = set()
    unchanged = 0
    for tag in findings.tags:
        if not _allowed(options, tag.name, tag.label):
            continue
        key = tag_key(tag.name)
        wanted_tag_keys.add(key)
        tag_id = tag_ids.get(key)
        if tag_id is not None and tag_id in scene.tag_ids:
            unchanged += 1
        elif f"tag:{key}" not in declined:
            add_tags.append(
                TagChange(
                    tag.name,
                    tag_id,
                    tag.source,
                    {
                        "label": tag.label,
                        "score": round(tag.score, 3),
                        "seconds": round(tag.seconds, 1),
                        "share": round(tag.share, 3),
                        "model": findings.models.get(tag.source, ""),
                        "evidence": [round(t, 2) for t in findings.evidence.get(key, ())],
                    },
                )
            )
    if options.status_tag:
        key = tag_key(options.status_tag)
        wanted_tag_keys.add(key)
        tag_id = tag_ids.get(key)
        if (tag_id is None or tag_id not in scene.tag_ids) and f"tag:{key}" not in declined:
            add_tags.append(TagChange(options.status_tag, tag_id, STATUS_SOURCE, {}))
    return add_tags, wanted_tag_keys, unchanged


def _plan_tags_taken_back(
    scene: SceneState,
    findings: Findings,
    owned: Owned,
    gone: set[str],
    wanted_tag_keys: set[str],
    options: PlanOptions,
) -> list[TagChange]:
    """The tagger's scene tags, still on the scene, that a whole analysis by their source no
    longer finds (never one the user accepted)."""
    live_tags = [
        t for i, t in owned.tags.items() if f"tag:{tag_key(t.name)}" not in gone and i in scene.tag_ids
    ]
    sources = findings.sources | ({STATUS_SOURCE} if options.status_tag else set())
    return [
        TagChange(t.name, t.tag_id, t.source)
        for t in live_tags
        if findings.whole
        and t.source in sources
        and not t.confirmed
        and tag_key(t.name) not in wanted_tag_keys
    ]


def _plan_performers(
    scene: SceneState, findings: Findings, declined: set[str], options: PlanOptions
) -> tuple[list[PerformerChange], list[Suggestion], int]:
    """Recognised performers: added above the auto bar, suggested below it, unless the scene has
    them or the user removed or rejected them. Returns (additions, suggestions, how many the
    scene already has)."""
    add_performers: list[PerformerChange] = []
    suggestions: list[Suggestion] = []
    unchanged = 0
    for match in findings.performers:
        key = f"performer:{match.performer_id}"
        if match.performer_id in scene.performer_ids:
            unchanged += 1
        elif key in declined or key in options.rejected:
            continue
        elif match.auto:
            add_performers.append(
                PerformerChange(
                    match.performer_id,
                    match.name,
                    PERFORMER_SOURCE,
                    {"score": round(match.score, 3), "model": findings.models.get(PERFORMER_SOURCE, "")},
                )
            )
        else:
            suggestions.append(
                Suggestion(
                    key,
                    "performer",
                    match.name,
                    round(match.score, 3),
                    {"performer_id": match.performer_id, "name": match.name},
                )
            )
    return add_performers, suggestions, unchanged


def _suggest_review_tags(
    scene: SceneState,
    findings: Findings,
    tag_ids: Mapping[str, str],
    declined: set[str],
    wanted_tag_keys: set[str],
    options: PlanOptions,
) -> list[Suggestion]:
    """Scene tags found only in the review band, as suggestions: not one that is added anyway,
    the scene has, or the user removed or rejected."""
    suggestions: list[Suggestion] = []
    for tag in findings.review_tags:
        key = tag_key(tag.name)
        tag_id = tag_ids.get(key)
        if (
            not _allowed(options, tag.name, tag.label)
            or key in wanted_tag_keys
            or (tag_id is not None and tag_id in scene.tag_ids)
            or f"tag:{key}" in declined
            or f"tag:{key}" in options.rejected
        ):
            continue
        suggestions.append(
            Suggestion(
                f"tag:{key}",
                "tag",
                tag.name,
                round(tag.score, 3),
                {
                    "name": tag.name,
                    "label": tag.label,
                    "source": tag.source,
                    "seconds": round(tag.seconds, 1),
                    "evidence": [round(t, 2) for t in findings.evidence.get(key, ())],
                },
            )
        )
    return suggestions


def _allowed(options: PlanOptions, name: str, label: str | None = None) -> bool:
    if not options.whitelist:
        return True
    return tag_key(name) in options.whitelist or (label is not None and tag_key(label) in options.whitelist)


def _declines(scene: SceneState, owned: Owned) -> list[Decline]:
    """What the tagger added that is gone from the scene: the user removed it."""
    found: list[Decline] = []
    for tag in owned.tags.values():
        if tag.tag_id not in scene.tag_ids:
            found.append(Decline(f"tag:{tag_key(tag.name)}", f"tag {tag.name!r}"))
    for performer in owned.performers.values():
        if performer.tag_id not in scene.performer_ids:
            found.append(Decline(f"performer:{performer.tag_id}", f"performer {performer.name!r}"))
    for marker in owned.markers.values():
        if marker.marker_id not in scene.markers:
            state = marker.state
            found.append(
                Decline(
                    f"marker:{marker.marker_id}",
                    f"marker {state.title!r}",
                    (
                        tag_key(marker.tag_name),
                        state.seconds,
                        state.end_seconds if state.end_seconds is not None else state.seconds,
                    ),
                )
            )
    if owned.studio is not None and scene.studio_id != owned.studio.studio_id:
        found.append(Decline(f"studio:{owned.studio.studio_id}", "studio"))
    return found


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time spans (0 when disjoint)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 1.0


def _span(state: MarkerState) -> tuple[float, float]:
    return (state.seconds, state.end_seconds if state.end_seconds is not None else state.seconds)


def _plan_markers(
    scene: SceneState,
    findings: Findings,
    tag_ids: Mapping[str, str],
    owned: Owned,
    declined_spans: Sequence[DeclinedSpan],
    gone: set[str],
    options: PlanOptions,
) -> tuple[list[MarkerCreate], list[MarkerUpdate], list[MarkerRemove], int]:
    """Markers: keep or move the tagger's own, never duplicate the user's, create the rest."""
    intact = {
        mid: m
        for mid, m in owned.markers.items()
        if f"marker:{mid}" not in gone and scene.markers[mid].same_as(m.state)
    }
    others = {mid: state for mid, state in scene.markers.items() if mid not in intact}
    matched: set[str] = set()
    create: list[MarkerCreate] = []
    update: list[MarkerUpdate] = []
    kept = 0
    for found in findings.markers:
        source = found.source
        if source != SHOT_SOURCE and not _allowed(options, found.tag, found.label or None):
            continue
        key = tag_key(found.tag)
        span = (round(found.start, 3), round(max(found.end, found.start), 3))
        reason = {"score": round(found.score, 3), "model": findings.models.get(source, "")}
        if any(d.tag == key and _overlap((d.start, d.end), span) > 0 for d in declined_spans):
            continue
        tag_id = tag_ids.get(key)
        best, best_overlap = None, 0.0
        for mid, mine in intact.items():
            if mid in matched or mine.state.primary_tag_id != tag_id:
                continue
            overlap = _overlap(_span(mine.state), span)
            if overlap > best_overlap:
                best, best_overlap = mid, overlap
        if best is not None:
            matched.add(best)
            state = intact[best].state
            if not findings.saw(state):
                kept += 1  # part of it was not analysed: the run cannot say where it ends
                continue
            if (
                state.title == found.title
                and abs(state.seconds - span[0]) <= SAME_SPAN_TOLERANCE_S
                and abs((state.end_seconds or state.seconds) - span[1]) <= SAME_SPAN_TOLERANCE_S
            ):
                kept += 1
            else:
                after = MarkerState(found.title, span[0], span[1], state.primary_tag_id, state.tag_ids)
                update.append(MarkerUpdate(best, state, after, reason))
            continue
        if tag_id is not None and any(
            state.primary_tag_id == tag_id and _overlap(_span(state), span) >= USER_MARKER_IOU
            for state in others.values()
        ):
            kept += 1
            continue
        create.append(MarkerCreate(found.title, found.tag, tag_id, span[0], span[1], source, reason))
    remove = [
        MarkerRemove(mid, m.state, m.tag_name)
        for mid, m in intact.items()
        if mid not in matched and m.source in findings.sources and findings.saw(m.state)
    ]
    return create, update, remove, kept


def _plan_studio(
    scene: SceneState, findings: Findings, owned: Owned, declined: set[str], options: PlanOptions
) -> tuple[StudioChange | None, Suggestion | None, int]:
    match = findings.studio
    if match is None or match.id is None:
        return None, None, 0
    studio_id = str(match.id)
    if scene.studio_id == studio_id:
        return None, None, 1
    key = f"studio:{studio_id}"
    if key in declined:
        return None, None, 0
    reason = {
        "score": round(match.score, 3),
        "evidence": list(match.evidence),
        "model": findings.models.get(STUDIO_SOURCE, ""),
    }
    ours = owned.studio is not None and owned.studio.studio_id == scene.studio_id
    if scene.studio_id is None or ours or options.studio_overwrite:
        before = owned.studio.before if ours and owned.studio else scene.studio_id
        return StudioChange(studio_id, match.name, before, reason, previous=scene.studio_id), None, 0
    if key in options.rejected:
        return None, None, 0
    return (
        None,
        Suggestion(
            key,
            "studio",
            match.name,
            round(match.score, 3),
            {"studio_id": studio_id, "name": match.name, **reason},
        ),
        0,
    )


REVIEW_SOURCE = "review"
"""Source of changes the user accepted from the review queue (never taken back by a re-run)."""


def plan_from_suggestion(
    scene: SceneState, kind: str, payload: Mapping[str, Any], tag_ids: Mapping[str, str]
) -> ScenePlan:
    """The change an accepted suggestion makes (nothing when the scene already has it)."""
    reason = {"score": payload.get("score"), "accepted": True}
    if kind == "tag":
        name = str(payload["name"])
        tag_id = tag_ids.get(tag_key(name))
        if tag_id is not None and tag_id in scene.tag_ids:
            return ScenePlan(scene.id, unchanged=1)
        return ScenePlan(scene.id, add_tags=(TagChange(name, tag_id, REVIEW_SOURCE, reason),))
    if kind == "studio":
        studio_id = str(payload["studio_id"])
        if scene.studio_id == studio_id:
            return ScenePlan(scene.id, unchanged=1)
        return ScenePlan(
            scene.id,
            set_studio=StudioChange(studio_id, str(payload.get("name", "")), scene.studio_id, reason,
                                    previous=scene.studio_id),
        )
    if kind == "performer":
        performer_id = str(payload["performer_id"])
        if performer_id in scene.performer_ids:
            return ScenePlan(scene.id, unchanged=1)
        return ScenePlan(
            scene.id,
            add_performers=(
                PerformerChange(performer_id, str(payload.get("name", "")), REVIEW_SOURCE, reason),
            ),
        )
    raise ValueError(f"suggestion kind {kind!r} is not tag, studio or performer")
