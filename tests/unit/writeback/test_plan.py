"""The write-back planner: what one scene gets, given what the engine found, what Stash has and
what the journal says the tagger owns there (``tagger.writeback.plan``)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

import pytest

from tagger.decide.studio import StudioMatch
from tagger.decide.tags import MarkerDecision, SceneTag
from tagger.writeback.journal import Action, JournalEntry
from tagger.writeback.plan import (
    Findings,
    MarkerState,
    MarkerUpdate,
    Owned,
    PerformerMatch,
    PlanOptions,
    ScenePlan,
    SceneState,
    Suggestion,
    TagChange,
    owned_on_scene,
    plan_from_suggestion,
    plan_scene,
)

SCENE = "7"

TAG_IDS: dict[str, str] = {
    "feet": "10",
    "barefoot": "10",  # an alias of "Feet"
    "breasts": "11",
    "shot": "12",
    "ai_tagged": "90",
}
"""Stash's tags by ``tag_key`` of every name and alias, as the caller resolves them."""

CONTENT = frozenset({"content"})

_row_ids = itertools.count(1)


# ---- building inputs -----------------------------------------------------------------------


def row(
    action: str,
    target: str | None,
    payload: Mapping[str, Any] | None = None,
    *,
    before: Mapping[str, Any] | None = None,
    status: str = "done",
) -> JournalEntry:
    """A journal row about the scene, newer than every row built before it."""
    return JournalEntry(
        next(_row_ids), "run-1", SCENE, action, target, payload or {}, before, None, status, 0.0
    )


def added_tag(tag_id: str, name: str, source: str = "content", *, confirmed: bool = False) -> JournalEntry:
    payload: dict[str, Any] = {"name": name, "source": source}
    if confirmed:
        payload["confirmed"] = True
    return row(Action.ADD_TAG, tag_id, payload)


def created_marker(
    marker_id: str, state: MarkerState, tag_name: str, source: str = "content"
) -> JournalEntry:
    return row(
        Action.CREATE_MARKER, marker_id, {"state": state.to_dict(), "tag_name": tag_name, "source": source}
    )


def set_studio(studio_id: str, before: str | None) -> JournalEntry:
    return row(Action.SET_STUDIO, studio_id, {"name": f"Studio {studio_id}"}, before={"studio_id": before})


def declined(key: str, span: list[Any] | None = None) -> JournalEntry:
    return row(Action.DECLINE, None, {"key": key, "what": key, "span": span})


def tag(name: str, label: str = "FEET_EXPOSED", score: float = 0.8) -> SceneTag:
    return SceneTag(name=name, label=label, score=score, seconds=30.0, share=0.3)


def marker(
    tag_name: str, start: float, end: float, source: str = "content", title: str | None = None,
    label: str = "",
) -> MarkerDecision:
    return MarkerDecision(
        title=title or tag_name, tag=tag_name, start=start, end=end, score=0.7, source=source, label=label
    )


def feet_marker(start: float, end: float, title: str = "Feet") -> MarkerState:
    """A marker as Stash has it: primary tag "Feet"."""
    return MarkerState(title, start, end, TAG_IDS["feet"])


def studio(studio_id: str | None, name: str = "BrandX") -> StudioMatch:
    return StudioMatch(name=name, id=studio_id, score=0.93, evidence=("'BRANDX.COM' on screen 1.0-9.0 s",))


def scene(
    tag_ids: frozenset[str] = frozenset(),
    *,
    performers: frozenset[str] = frozenset(),
    studio_id: str | None = None,
    markers: Mapping[str, MarkerState] | None = None,
) -> SceneState:
    return SceneState(SCENE, tag_ids, performers, studio_id, dict(markers or {}))


def plan(
    state: SceneState,
    findings: Findings,
    *,
    entries: tuple[JournalEntry, ...] = (),
    options: PlanOptions | None = None,
) -> ScenePlan:
    return plan_scene(
        state, findings, tag_ids=TAG_IDS, owned=owned_on_scene(entries), options=options or PlanOptions()
    )


def added_names(result: ScenePlan) -> list[str]:
    return [t.name for t in result.add_tags]


# ---- scene tags ----------------------------------------------------------------------------


class TestTags:
    def test_a_found_tag_the_scene_lacks_is_added_with_its_existing_id(self) -> None:
        result = plan(scene(), Findings(tags=[tag("Feet")], sources=CONTENT))
        assert [(t.name, t.tag_id, t.source) for t in result.add_tags] == [("Feet", "10", "content")]

    def test_a_tag_name_matches_an_existing_tag_whatever_its_case_and_spacing(self) -> None:
        result = plan(scene(), Findings(tags=[tag("  FEET ")], sources=CONTENT))
        assert [t.tag_id for t in result.add_tags] == ["10"]

    def test_a_label_maps_to_an_existing_tag_by_alias(self) -> None:
        result = plan(scene(), Findings(tags=[tag("Barefoot")], sources=CONTENT))
        assert [(t.name, t.tag_id) for t in result.add_tags] == [("Barefoot", "10")]
        assert result.tags_to_create() == []

    def test_a_tag_stash_does_not_have_is_planned_for_creation(self) -> None:
        result = plan(scene(), Findings(tags=[tag("Armpits", "ARMPITS_EXPOSED")], sources=CONTENT))
        assert [(t.name, t.tag_id) for t in result.add_tags] == [("Armpits", None)]
        assert result.tags_to_create() == ["Armpits"]

    def test_a_tag_the_scene_already_has_is_not_added_and_counts_as_unchanged(self) -> None:
        result = plan(scene(frozenset({"10"})), Findings(tags=[tag("Feet")], sources=CONTENT))
        assert result.add_tags == ()
        assert result.unchanged == 1
        assert result.changes == 0

    def test_the_scene_has_a_tag_when_it_has_it_under_an_alias(self) -> None:
        result = plan(scene(frozenset({"10"})), Findings(tags=[tag("Barefoot")], sources=CONTENT))
        assert result.add_tags == ()
        assert result.unchanged == 1

    def test_an_added_tag_says_why(self) -> None:
        findings = Findings(
            tags=[SceneTag("Feet", "FEET_EXPOSED", 0.81234, 31.26, 0.31256)],
            sources=CONTENT,
            evidence={"feet": [12.0, 14.004]},
            models={"content": "nudenet 3.4"},
        )
        (change,) = plan(scene(), findings).add_tags
        assert dict(change.reason) == {
            "label": "FEET_EXPOSED",
            "score": 0.812,
            "seconds": 31.3,
            "share": 0.313,
            "model": "nudenet 3.4",
            "evidence": [12.0, 14.0],
        }

    def test_a_tag_to_create_is_named_once_even_when_a_marker_needs_it_too(self) -> None:
        findings = Findings(tags=[tag("Armpits")], markers=[marker("armpits", 10, 20)], sources=CONTENT)
        assert plan(scene(), findings).tags_to_create() == ["armpits"]


class TestWhitelist:
    def test_a_tag_not_on_the_whitelist_is_left_out(self) -> None:
        findings = Findings(tags=[tag("Feet"), tag("Breasts", "FEMALE_BREAST_EXPOSED")], sources=CONTENT)
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"breasts"})))
        assert added_names(result) == ["Breasts"]

    def test_a_tag_whose_detector_label_is_on_the_whitelist_is_added(self) -> None:
        findings = Findings(tags=[tag("Feet", "FEET_EXPOSED")], sources=CONTENT)
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"feet_exposed"})))
        assert added_names(result) == ["Feet"]

    def test_a_marker_of_a_tag_not_on_the_whitelist_is_left_out(self) -> None:
        findings = Findings(markers=[marker("Feet", 10, 20), marker("Breasts", 30, 40)], sources=CONTENT)
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"breasts"})))
        assert [m.tag for m in result.create_markers] == ["Breasts"]

    def test_a_marker_of_a_tag_whose_detector_label_is_on_the_whitelist_is_created(self) -> None:
        findings = Findings(
            tags=[tag("Feet", "FEET_EXPOSED")], markers=[marker("Feet", 10, 20, label="FEET_EXPOSED")],
            sources=CONTENT
        )
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"feet_exposed"})))
        assert added_names(result) == ["Feet"]
        assert [m.tag for m in result.create_markers] == ["Feet"]

    def test_shot_markers_are_exempt_from_the_whitelist(self) -> None:
        findings = Findings(markers=[marker("Shot", 0, 12, source="shots")], sources=frozenset({"shots"}))
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"breasts"})))
        assert [(m.tag, m.source) for m in result.create_markers] == [("Shot", "shots")]

    def test_a_review_tag_not_on_the_whitelist_is_not_suggested(self) -> None:
        findings = Findings(review_tags=[tag("Feet")], sources=CONTENT)
        result = plan(scene(), findings, options=PlanOptions(whitelist=frozenset({"breasts"})))
        assert result.suggestions == ()


# ---- what the user removed -----------------------------------------------------------------


class TestDeclines:
    def test_a_tag_the_user_removed_is_declined_and_not_added_again(self) -> None:
        result = plan(
            scene(), Findings(tags=[tag("Feet")], sources=CONTENT), entries=(added_tag("10", "Feet"),)
        )
        assert [d.key for d in result.declines] == ["tag:feet"]
        assert result.add_tags == ()
        assert result.remove_tags == ()

    def test_a_tag_declined_earlier_is_not_added_again(self) -> None:
        entries = (declined("tag:feet"),)
        result = plan(scene(), Findings(tags=[tag("Feet")], sources=CONTENT), entries=entries)
        assert result.add_tags == ()
        assert result.declines == ()

    def test_a_declined_tag_is_not_suggested_either(self) -> None:
        result = plan(scene(), Findings(review_tags=[tag("Feet")]), entries=(declined("tag:feet"),))
        assert result.suggestions == ()

    def test_a_marker_the_user_deleted_is_declined_with_its_span(self) -> None:
        entries = (created_marker("m1", feet_marker(10.0, 20.0), "Feet"),)
        result = plan(scene(), Findings(sources=CONTENT), entries=entries)
        assert [(d.key, d.span) for d in result.declines] == [("marker:m1", ("feet", 10.0, 20.0))]
        assert result.remove_markers == ()

    def test_no_new_marker_of_a_deleted_markers_tag_over_its_span(self) -> None:
        entries = (created_marker("m1", feet_marker(10.0, 20.0), "Feet"),)
        findings = Findings(markers=[marker("Feet", 12.0, 22.0)], sources=CONTENT)
        assert plan(scene(), findings, entries=entries).create_markers == ()

    def test_a_deleted_marker_does_not_keep_other_tags_or_other_times_out(self) -> None:
        entries = (created_marker("m1", feet_marker(10.0, 20.0), "Feet"),)
        findings = Findings(
            markers=[marker("Breasts", 10.0, 20.0), marker("Feet", 40.0, 50.0)], sources=CONTENT
        )
        result = plan(scene(), findings, entries=entries)
        assert [(m.tag, m.seconds) for m in result.create_markers] == [("Breasts", 10.0), ("Feet", 40.0)]

    def test_a_span_declined_earlier_keeps_new_markers_of_that_tag_out(self) -> None:
        entries = (declined("marker:m1", ["feet", 10.0, 20.0]),)
        findings = Findings(markers=[marker("Feet", 15.0, 25.0)], sources=CONTENT)
        assert plan(scene(), findings, entries=entries).create_markers == ()

    def test_a_studio_the_user_changed_is_declined_and_not_set_again(self) -> None:
        entries = (set_studio("s1", None),)
        findings = Findings(studio=studio("s1"), sources=frozenset({"text"}))
        result = plan(scene(studio_id="s2"), findings, entries=entries)
        assert [d.key for d in result.declines] == ["studio:s1"]
        assert result.set_studio is None
        assert result.suggestions == ()

    def test_a_performer_the_user_removed_is_declined_and_not_added_again(self) -> None:
        entries = (row(Action.ADD_PERFORMER, "p1", {"name": "Ann", "source": "faces"}),)
        findings = Findings(performers=[PerformerMatch("p1", "Ann", 0.9, auto=True)])
        result = plan(scene(), findings, entries=entries)
        assert [d.key for d in result.declines] == ["performer:p1"]
        assert result.add_performers == ()

    def test_a_removal_already_declined_is_not_declined_again(self) -> None:
        entries = (added_tag("10", "Feet"), declined("tag:feet"))
        result = plan(scene(), Findings(tags=[tag("Feet")], sources=CONTENT), entries=entries)
        assert result.declines == ()

    def test_a_declined_tag_the_user_added_back_is_the_users(self) -> None:
        entries = (added_tag("10", "Feet"), declined("tag:feet"))
        result = plan(scene(frozenset({"10"})), Findings(sources=CONTENT), entries=entries)
        assert result.remove_tags == ()


# ---- markers -------------------------------------------------------------------------------


class TestMarkers:
    def test_a_found_marker_is_created_with_its_primary_tags_id(self) -> None:
        (create,) = plan(
            scene(), Findings(markers=[marker("Feet", 10.0, 20.0)], sources=CONTENT)
        ).create_markers
        assert (create.title, create.tag, create.tag_id, create.seconds, create.end_seconds) == (
            "Feet",
            "Feet",
            "10",
            10.0,
            20.0,
        )

    def test_a_rerun_over_the_same_span_keeps_the_taggers_marker(self) -> None:
        state = feet_marker(10.0, 20.0)
        entries = (created_marker("m1", state, "Feet"),)
        findings = Findings(markers=[marker("Feet", 10.0, 20.0)], sources=CONTENT)
        result = plan(scene(markers={"m1": state}), findings, entries=entries)
        assert (result.create_markers, result.update_markers, result.remove_markers) == ((), (), ())
        assert result.unchanged == 1

    def test_a_rerun_over_nearly_the_same_span_keeps_the_taggers_marker(self) -> None:
        state = feet_marker(10.0, 20.0)
        entries = (created_marker("m1", state, "Feet"),)
        findings = Findings(markers=[marker("Feet", 10.3, 19.6)], sources=CONTENT)
        result = plan(scene(markers={"m1": state}), findings, entries=entries)
        assert result.changes == 0
        assert result.unchanged == 1

    def test_a_rerun_over_a_moved_span_moves_the_taggers_marker(self) -> None:
        state = feet_marker(10.0, 20.0)
        entries = (created_marker("m1", state, "Feet"),)
        findings = Findings(markers=[marker("Feet", 14.0, 26.0)], sources=CONTENT)
        result = plan(scene(markers={"m1": state}), findings, entries=entries)
        assert result.update_markers == (
            MarkerUpdate("m1", state, feet_marker(14.0, 26.0), {"score": 0.7, "model": ""}),
        )
        assert result.create_markers == ()
        assert result.remove_markers == ()

    def test_a_marker_the_user_made_for_the_same_thing_is_not_duplicated(self) -> None:
        users = feet_marker(10.0, 20.0, title="my feet")
        findings = Findings(markers=[marker("Feet", 12.0, 22.0)], sources=CONTENT)  # IoU 8/12
        result = plan(scene(markers={"u1": users}), findings)
        assert result.create_markers == ()
        assert result.unchanged == 1

    def test_a_user_marker_overlapping_less_than_half_does_not_prevent_a_create(self) -> None:
        users = feet_marker(10.0, 20.0)
        findings = Findings(markers=[marker("Feet", 16.0, 26.0)], sources=CONTENT)  # IoU 4/16
        assert len(plan(scene(markers={"u1": users}), findings).create_markers) == 1

    def test_a_user_marker_with_another_primary_tag_does_not_prevent_a_create(self) -> None:
        users = MarkerState("Breasts", 10.0, 20.0, TAG_IDS["breasts"])
        findings = Findings(markers=[marker("Feet", 10.0, 20.0)], sources=CONTENT)
        assert [m.tag for m in plan(scene(markers={"u1": users}), findings).create_markers] == ["Feet"]

    def test_a_taggers_marker_the_user_edited_is_the_users(self) -> None:
        left = feet_marker(10.0, 20.0)
        edited = feet_marker(10.0, 20.0, title="Feet, close-up")
        entries = (created_marker("m1", left, "Feet"),)
        findings = Findings(markers=[marker("Feet", 14.0, 26.0)], sources=CONTENT)  # moved: IoU 6/16
        result = plan(scene(markers={"m1": edited}), findings, entries=entries)
        assert result.update_markers == ()
        assert result.remove_markers == ()
        assert result.declines == ()

    def test_an_edited_marker_no_longer_found_is_left_alone(self) -> None:
        left = feet_marker(10.0, 20.0)
        edited = feet_marker(11.0, 20.0)
        entries = (created_marker("m1", left, "Feet"),)
        result = plan(scene(markers={"m1": edited}), Findings(sources=CONTENT), entries=entries)
        assert result.changes == 0

    def test_an_edited_marker_still_covers_what_it_says(self) -> None:
        left = feet_marker(10.0, 20.0)
        edited = feet_marker(10.0, 20.0, title="Feet, close-up")
        entries = (created_marker("m1", left, "Feet"),)
        findings = Findings(markers=[marker("Feet", 10.0, 20.0)], sources=CONTENT)
        result = plan(scene(markers={"m1": edited}), findings, entries=entries)
        assert result.create_markers == ()
        assert result.unchanged == 1

    def test_a_marker_update_in_stash_journaled_by_the_tagger_is_still_the_taggers(self) -> None:
        first, moved = feet_marker(10.0, 20.0), feet_marker(14.0, 26.0)
        entries = (
            created_marker("m1", first, "Feet"),
            row(Action.UPDATE_MARKER, "m1", {"state": moved.to_dict()}, before={"state": first.to_dict()}),
        )
        result = plan(scene(markers={"m1": moved}), Findings(sources=CONTENT), entries=entries)
        assert [m.marker_id for m in result.remove_markers] == ["m1"]


# ---- taking back ---------------------------------------------------------------------------


class TestTakingBack:
    def test_a_taggers_tag_no_longer_found_is_taken_back(self) -> None:
        entries = (added_tag("10", "Feet"),)
        result = plan(scene(frozenset({"10"})), Findings(sources=CONTENT), entries=entries)
        assert result.remove_tags == (TagChange("Feet", "10", "content"),)

    def test_a_taggers_tag_is_kept_when_its_analyzer_did_not_run(self) -> None:
        entries = (added_tag("10", "Feet"),)
        result = plan(scene(frozenset({"10"})), Findings(sources=frozenset({"text"})), entries=entries)
        assert result.remove_tags == ()

    def test_a_taggers_tag_still_found_is_kept(self) -> None:
        entries = (added_tag("10", "Feet"),)
        result = plan(
            scene(frozenset({"10"})), Findings(tags=[tag("Feet")], sources=CONTENT), entries=entries
        )
        assert result.remove_tags == ()
        assert result.unchanged == 1

    def test_a_tag_from_an_accepted_suggestion_is_never_taken_back(self) -> None:
        entries = (added_tag("10", "Feet", "review", confirmed=True),)
        result = plan(
            scene(frozenset({"10"})), Findings(sources=frozenset({"content", "review"})), entries=entries
        )
        assert result.remove_tags == ()

    def test_a_confirmed_content_tag_is_never_taken_back(self) -> None:
        entries = (added_tag("10", "Feet", "content", confirmed=True),)
        result = plan(scene(frozenset({"10"})), Findings(sources=CONTENT), entries=entries)
        assert result.remove_tags == ()

    def test_a_taggers_marker_no_longer_found_is_taken_back(self) -> None:
        state = feet_marker(10.0, 20.0)
        entries = (created_marker("m1", state, "Feet"),)
        result = plan(scene(markers={"m1": state}), Findings(sources=CONTENT), entries=entries)
        assert [(m.marker_id, m.state, m.tag_name) for m in result.remove_markers] == [("m1", state, "Feet")]

    def test_a_taggers_marker_is_kept_when_its_analyzer_did_not_run(self) -> None:
        state = MarkerState("Shot", 0.0, 12.0, TAG_IDS["shot"])
        entries = (created_marker("m1", state, "Shot", source="shots"),)
        result = plan(scene(markers={"m1": state}), Findings(sources=CONTENT), entries=entries)
        assert result.remove_markers == ()

    def test_a_marker_found_elsewhere_replaces_one_no_longer_found(self) -> None:
        state = feet_marker(10.0, 20.0)
        entries = (created_marker("m1", state, "Feet"),)
        findings = Findings(markers=[marker("Feet", 50.0, 60.0)], sources=CONTENT)
        result = plan(scene(markers={"m1": state}), findings, entries=entries)
        assert [m.seconds for m in result.create_markers] == [50.0]
        assert [m.marker_id for m in result.remove_markers] == ["m1"]

    def test_a_user_tag_no_longer_found_is_not_touched(self) -> None:
        result = plan(scene(frozenset({"10"})), Findings(sources=CONTENT))
        assert result.remove_tags == ()

    def test_a_user_marker_no_longer_found_is_not_touched(self) -> None:
        result = plan(scene(markers={"u1": feet_marker(10.0, 20.0)}), Findings(sources=CONTENT))
        assert result.remove_markers == ()


# ---- a partial analysis --------------------------------------------------------------------


def seen_up_to(end: float, *, whole: bool = False, **found: Any) -> Findings:
    """Findings of an analysis that saw the video up to ``end`` seconds (``whole``: all it has)."""
    return Findings(sources=CONTENT, analysed_end=end, whole=whole, **found)


class TestPartialAnalysis:
    def test_a_taggers_marker_beyond_the_analysed_part_is_kept(self) -> None:
        state = feet_marker(30.0, 40.0)
        entries = (created_marker("m1", state, "Feet"),)
        result = plan(scene(markers={"m1": state}), seen_up_to(20.0), entries=entries)
        assert result.changes == 0

    def test_a_taggers_marker_inside_the_analysed_part_no_longer_found_is_taken_back(self) -> None:
        state = feet_marker(5.0, 15.0)
        entries = (created_marker("m1", state, "Feet"),)
        result = plan(scene(markers={"m1": state}), seen_up_to(20.0), entries=entries)
        assert [m.marker_id for m in result.remove_markers] == ["m1"]

    def test_a_taggers_marker_reaching_past_the_analysed_part_is_not_cut_to_it(self) -> None:
        state = feet_marker(10.0, 30.0)
        entries = (created_marker("m1", state, "Feet"),)
        findings = seen_up_to(20.0, markers=[marker("Feet", 10.0, 20.0)])  # the segment ends with the pass
        result = plan(scene(markers={"m1": state}), findings, entries=entries)
        assert result.changes == 0
        assert result.unchanged == 1

    def test_a_taggers_marker_beyond_a_truncated_files_end_is_kept(self) -> None:
        state = feet_marker(30.0, 40.0)
        entries = (created_marker("m1", state, "Feet"),)
        result = plan(scene(markers={"m1": state}), seen_up_to(20.0, whole=True), entries=entries)
        assert result.remove_markers == ()

    def test_a_taggers_tag_is_not_taken_back_when_part_of_the_video_was_not_analysed(self) -> None:
        entries = (added_tag("10", "Feet"),)
        result = plan(scene(frozenset({"10"})), seen_up_to(20.0), entries=entries)
        assert result.remove_tags == ()

    def test_a_taggers_tag_is_taken_back_when_all_of_a_truncated_file_was_analysed(self) -> None:
        entries = (added_tag("10", "Feet"),)
        result = plan(scene(frozenset({"10"})), seen_up_to(20.0, whole=True), entries=entries)
        assert result.remove_tags == (TagChange("Feet", "10", "content"),)

    def test_what_a_partial_analysis_finds_is_added(self) -> None:
        findings = seen_up_to(20.0, tags=[tag("Feet")], markers=[marker("Feet", 10.0, 20.0)])
        result = plan(scene(), findings)
        assert added_names(result) == ["Feet"]
        assert [(m.seconds, m.end_seconds) for m in result.create_markers] == [(10.0, 20.0)]


# ---- studio --------------------------------------------------------------------------------


TEXT = frozenset({"text"})


class TestStudio:
    def test_a_studio_is_set_where_the_scene_has_none(self) -> None:
        result = plan(scene(), Findings(studio=studio("s1"), sources=TEXT))
        assert result.set_studio is not None
        assert (result.set_studio.studio_id, result.set_studio.name, result.set_studio.before) == (
            "s1",
            "BrandX",
            None,
        )

    def test_the_studio_the_scene_has_counts_as_unchanged(self) -> None:
        result = plan(scene(studio_id="s1"), Findings(studio=studio("s1"), sources=TEXT))
        assert result.set_studio is None
        assert result.unchanged == 1

    def test_a_studio_not_in_stash_is_not_set(self) -> None:
        result = plan(scene(), Findings(studio=studio(None), sources=TEXT))
        assert result.set_studio is None
        assert result.suggestions == ()

    def test_a_studio_the_user_set_is_kept_and_the_guess_is_suggested(self) -> None:
        result = plan(scene(studio_id="s2"), Findings(studio=studio("s1"), sources=TEXT))
        assert result.set_studio is None
        assert [(s.key, s.kind, s.title) for s in result.suggestions] == [("studio:s1", "studio", "BrandX")]
        assert result.suggestions[0].payload["studio_id"] == "s1"

    def test_with_studio_overwrite_the_users_studio_is_replaced_and_remembered(self) -> None:
        findings = Findings(studio=studio("s1"), sources=TEXT)
        result = plan(scene(studio_id="s2"), findings, options=PlanOptions(studio_overwrite=True))
        assert result.set_studio is not None
        assert (result.set_studio.studio_id, result.set_studio.before) == ("s1", "s2")
        assert result.suggestions == ()

    def test_a_studio_the_tagger_set_is_replaced_keeping_the_users_original(self) -> None:
        entries = (set_studio("s1", "s0"),)
        result = plan(
            scene(studio_id="s1"), Findings(studio=studio("s3", "BrandY"), sources=TEXT), entries=entries
        )
        assert result.set_studio is not None
        assert (result.set_studio.studio_id, result.set_studio.before) == ("s3", "s0")

    def test_a_rejected_studio_is_not_suggested_again(self) -> None:
        findings = Findings(studio=studio("s1"), sources=TEXT)
        result = plan(scene(studio_id="s2"), findings, options=PlanOptions(rejected=frozenset({"studio:s1"})))
        assert result.set_studio is None
        assert result.suggestions == ()


# ---- review --------------------------------------------------------------------------------


class TestReview:
    def test_a_review_tag_becomes_a_suggestion(self) -> None:
        findings = Findings(review_tags=[tag("Feet", score=0.41234)], evidence={"feet": [3.0, 5.0]})
        (suggestion,) = plan(scene(), findings).suggestions
        assert (suggestion.key, suggestion.kind, suggestion.title, suggestion.score) == (
            "tag:feet",
            "tag",
            "Feet",
            0.412,
        )
        assert suggestion.payload["evidence"] == [3.0, 5.0]

    def test_a_review_tag_the_scene_has_is_not_suggested(self) -> None:
        assert plan(scene(frozenset({"10"})), Findings(review_tags=[tag("Feet")])).suggestions == ()

    def test_a_review_tag_also_found_above_the_bar_is_not_suggested(self) -> None:
        result = plan(scene(), Findings(tags=[tag("Feet")], review_tags=[tag("feet")], sources=CONTENT))
        assert added_names(result) == ["Feet"]
        assert result.suggestions == ()

    def test_a_rejected_review_tag_is_not_suggested_again(self) -> None:
        options = PlanOptions(rejected=frozenset({"tag:feet"}))
        assert plan(scene(), Findings(review_tags=[tag("Feet")]), options=options).suggestions == ()

    def test_a_performer_below_the_bar_is_suggested(self) -> None:
        findings = Findings(performers=[PerformerMatch("p1", "Ann", 0.6, auto=False)])
        result = plan(scene(), findings)
        assert result.add_performers == ()
        assert result.suggestions == (
            Suggestion("performer:p1", "performer", "Ann", 0.6, {"performer_id": "p1", "name": "Ann"}),
        )

    def test_a_performer_at_the_bar_is_added(self) -> None:
        findings = Findings(performers=[PerformerMatch("p1", "Ann", 0.9, auto=True)])
        result = plan(scene(), findings)
        assert [(p.performer_id, p.name, p.source) for p in result.add_performers] == [("p1", "Ann", "faces")]
        assert result.suggestions == ()

    def test_a_performer_the_scene_has_counts_as_unchanged(self) -> None:
        findings = Findings(performers=[PerformerMatch("p1", "Ann", 0.9, auto=True)])
        result = plan(scene(performers=frozenset({"p1"})), findings)
        assert result.add_performers == ()
        assert result.unchanged == 1

    def test_a_rejected_performer_is_not_suggested_again(self) -> None:
        findings = Findings(performers=[PerformerMatch("p1", "Ann", 0.6, auto=False)])
        options = PlanOptions(rejected=frozenset({"performer:p1"}))
        assert plan(scene(), findings, options=options).suggestions == ()


# ---- status tag ----------------------------------------------------------------------------


class TestStatusTag:
    def test_the_status_tag_is_added_when_missing(self) -> None:
        result = plan(scene(), Findings(sources=CONTENT), options=PlanOptions(status_tag="AI_Tagged"))
        assert [(t.name, t.tag_id, t.source) for t in result.add_tags] == [("AI_Tagged", "90", "status")]

    def test_the_status_tag_is_not_added_again(self) -> None:
        result = plan(
            scene(frozenset({"90"})), Findings(sources=CONTENT), options=PlanOptions(status_tag="AI_Tagged")
        )
        assert result.add_tags == ()

    def test_the_status_tag_is_written_whatever_the_whitelist(self) -> None:
        options = PlanOptions(status_tag="AI_Tagged", whitelist=frozenset({"breasts"}))
        assert added_names(plan(scene(), Findings(sources=CONTENT), options=options)) == ["AI_Tagged"]

    def test_the_status_tag_the_tagger_added_is_kept(self) -> None:
        entries = (added_tag("90", "AI_Tagged", "status"),)
        options = PlanOptions(status_tag="AI_Tagged")
        result = plan(scene(frozenset({"90"})), Findings(sources=CONTENT), entries=entries, options=options)
        assert result.changes == 0

    def test_a_status_tag_the_user_removed_is_not_added_again(self) -> None:
        entries = (added_tag("90", "AI_Tagged", "status"),)
        options = PlanOptions(status_tag="AI_Tagged")
        result = plan(scene(), Findings(sources=CONTENT), entries=entries, options=options)
        assert [d.key for d in result.declines] == ["tag:ai_tagged"]
        assert result.add_tags == ()


# ---- what the tagger owns ------------------------------------------------------------------


class TestOwnedOnScene:
    def test_nothing_is_owned_without_entries(self) -> None:
        assert owned_on_scene([]) == Owned()

    def test_an_added_tag_is_owned(self) -> None:
        owned = owned_on_scene([added_tag("10", "Feet")])
        assert list(owned.tags) == ["10"]
        assert (owned.tags["10"].name, owned.tags["10"].source, owned.tags["10"].confirmed) == (
            "Feet",
            "content",
            False,
        )

    def test_a_tag_added_then_removed_is_not_owned(self) -> None:
        owned = owned_on_scene([added_tag("10", "Feet"), row(Action.REMOVE_TAG, "10", {"name": "Feet"})])
        assert owned.tags == {}

    def test_entries_fold_in_journal_order_whatever_order_they_come_in(self) -> None:
        add = added_tag("10", "Feet")
        remove = row(Action.REMOVE_TAG, "10", {"name": "Feet"})
        assert owned_on_scene([remove, add]).tags == {}

    def test_an_accepted_suggestion_is_owned_as_confirmed(self) -> None:
        owned = owned_on_scene([added_tag("10", "Feet", "review", confirmed=True)])
        assert owned.tags["10"].confirmed is True

    def test_a_created_then_updated_marker_is_owned_as_updated(self) -> None:
        first, moved = feet_marker(10.0, 20.0), feet_marker(14.0, 26.0)
        owned = owned_on_scene(
            [
                created_marker("m1", first, "Feet"),
                row(
                    Action.UPDATE_MARKER, "m1", {"state": moved.to_dict()}, before={"state": first.to_dict()}
                ),
            ]
        )
        assert owned.markers["m1"].state == moved
        assert (owned.markers["m1"].tag_name, owned.markers["m1"].source) == ("Feet", "content")

    def test_an_update_of_a_marker_the_tagger_did_not_create_owns_nothing(self) -> None:
        owned = owned_on_scene([row(Action.UPDATE_MARKER, "u1", {"state": feet_marker(1.0, 2.0).to_dict()})])
        assert owned.markers == {}

    def test_a_destroyed_marker_is_not_owned(self) -> None:
        state = feet_marker(10.0, 20.0)
        owned = owned_on_scene(
            [
                created_marker("m1", state, "Feet"),
                row(Action.DESTROY_MARKER, "m1", {"state": state.to_dict()}),
            ]
        )
        assert owned.markers == {}

    def test_a_studio_set_twice_keeps_the_first_before(self) -> None:
        owned = owned_on_scene([set_studio("s1", "s0"), set_studio("s2", "s1")])
        assert owned.studio is not None
        assert (owned.studio.studio_id, owned.studio.before) == ("s2", "s0")

    def test_a_restored_studio_is_not_owned(self) -> None:
        owned = owned_on_scene([set_studio("s1", None), row(Action.RESTORE_STUDIO, "s1")])
        assert owned.studio is None

    def test_a_decline_is_remembered_with_its_span(self) -> None:
        owned = owned_on_scene([declined("marker:m1", ["feet", 10, 20]), declined("tag:feet")])
        assert owned.declined == {"marker:m1", "tag:feet"}
        assert [(d.tag, d.start, d.end) for d in owned.declined_spans] == [("feet", 10.0, 20.0)]

    @pytest.mark.parametrize("status", ["intent", "failed"])
    def test_rows_not_done_are_ignored(self, status: str) -> None:
        entries = [
            row(Action.ADD_TAG, "10", {"name": "Feet", "source": "content"}, status=status),
            row(
                Action.CREATE_MARKER,
                "m1",
                {"state": feet_marker(1.0, 2.0).to_dict(), "tag_name": "Feet"},
                status=status,
            ),
            row(Action.SET_STUDIO, "s1", before={"studio_id": None}, status=status),
            row(Action.DECLINE, None, {"key": "tag:breasts"}, status=status),
        ]
        assert owned_on_scene(entries) == Owned()

    def test_a_failed_removal_leaves_the_tag_owned(self) -> None:
        owned = owned_on_scene([added_tag("10", "Feet"), row(Action.REMOVE_TAG, "10", status="failed")])
        assert list(owned.tags) == ["10"]


# ---- accepted suggestions ------------------------------------------------------------------


class TestPlanFromSuggestion:
    def test_an_accepted_tag_is_added(self) -> None:
        result = plan_from_suggestion(scene(), "tag", {"name": "Feet", "score": 0.4}, TAG_IDS)
        assert result.add_tags == (TagChange("Feet", "10", "review", {"score": 0.4, "accepted": True}),)
        assert result.changes == 1

    def test_an_accepted_tag_stash_does_not_have_is_created(self) -> None:
        result = plan_from_suggestion(scene(), "tag", {"name": "Armpits"}, TAG_IDS)
        assert result.tags_to_create() == ["Armpits"]

    def test_an_accepted_tag_the_scene_has_changes_nothing(self) -> None:
        result = plan_from_suggestion(scene(frozenset({"10"})), "tag", {"name": "feet"}, TAG_IDS)
        assert (result.changes, result.unchanged) == (0, 1)

    def test_an_accepted_studio_is_set_remembering_the_users(self) -> None:
        result = plan_from_suggestion(
            scene(studio_id="s2"), "studio", {"studio_id": "s1", "name": "BrandX"}, TAG_IDS
        )
        assert result.set_studio is not None
        assert (result.set_studio.studio_id, result.set_studio.name, result.set_studio.before) == (
            "s1",
            "BrandX",
            "s2",
        )
        assert result.changes == 1

    def test_an_accepted_studio_the_scene_has_changes_nothing(self) -> None:
        result = plan_from_suggestion(scene(studio_id="s1"), "studio", {"studio_id": "s1"}, TAG_IDS)
        assert (result.changes, result.unchanged) == (0, 1)

    def test_an_accepted_performer_is_added(self) -> None:
        result = plan_from_suggestion(scene(), "performer", {"performer_id": "p1", "name": "Ann"}, TAG_IDS)
        assert [(p.performer_id, p.name, p.source) for p in result.add_performers] == [
            ("p1", "Ann", "review")
        ]

    def test_an_accepted_performer_the_scene_has_changes_nothing(self) -> None:
        result = plan_from_suggestion(
            scene(performers=frozenset({"p1"})), "performer", {"performer_id": "p1"}, TAG_IDS
        )
        assert (result.changes, result.unchanged) == (0, 1)

    def test_an_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="marker"):
            plan_from_suggestion(scene(), "marker", {"name": "Feet"}, TAG_IDS)


# ---- the plan as a whole -------------------------------------------------------------------


def busy_plan() -> ScenePlan:
    """A plan with one of everything: add, take back, move, create, remove, studio, suggestion."""
    kept, moved, gone = feet_marker(10.0, 20.0), feet_marker(30.0, 40.0), feet_marker(60.0, 70.0)
    entries = (
        added_tag("11", "Breasts"),
        created_marker("m1", kept, "Feet"),
        created_marker("m2", moved, "Feet"),
        created_marker("m3", gone, "Feet"),
    )
    findings = Findings(
        tags=[tag("Feet"), tag("Armpits", "ARMPITS_EXPOSED")],
        markers=[marker("Feet", 10.0, 20.0), marker("Feet", 33.0, 45.0), marker("Feet", 80.0, 90.0)],
        studio=studio("s1"),
        review_tags=[tag("Toes", score=0.4)],
        performers=[PerformerMatch("p1", "Ann", 0.9, auto=True)],
        sources=frozenset({"content", "text", "faces"}),
    )
    state = scene(frozenset({"11"}), markers={"m1": kept, "m2": moved, "m3": gone})
    return plan(state, findings, entries=entries)


class TestScenePlan:
    def test_changes_count_every_mutation(self) -> None:
        result = busy_plan()
        # add Feet, Armpits; remove Breasts; one performer; create 80-90; move m2; remove m3; studio.
        assert (len(result.add_tags), len(result.remove_tags), len(result.add_performers)) == (2, 1, 1)
        assert (len(result.create_markers), len(result.update_markers), len(result.remove_markers)) == (
            1,
            1,
            1,
        )
        assert result.set_studio is not None
        assert result.changes == 8

    def test_suggestions_and_declines_are_not_changes(self) -> None:
        entries = (added_tag("11", "Breasts"),)
        result = plan(scene(), Findings(review_tags=[tag("Feet")], sources=CONTENT), entries=entries)
        assert (len(result.declines), len(result.suggestions)) == (1, 1)
        assert result.changes == 0

    def test_an_empty_plan_changes_nothing(self) -> None:
        assert ScenePlan(SCENE).changes == 0

    def test_the_plan_is_plain_data(self) -> None:
        data = json.loads(json.dumps(busy_plan().to_dict()))
        assert [t["name"] for t in data["add_tags"]] == ["Feet", "Armpits"]
        assert [t["new"] for t in data["add_tags"]] == [False, True]
        assert data["remove_tags"] == ["Breasts"]
        assert data["update_markers"] == [{"id": "m2", "seconds": 33.0, "end_seconds": 45.0}]
        assert data["remove_markers"] == [{"id": "m3", "title": "Feet"}]
        assert data["set_studio"]["id"] == "s1"
        assert [s["key"] for s in data["suggestions"]] == ["tag:toes"]
        assert data["unchanged"] == 1

    def test_an_empty_plan_is_plain_data_too(self) -> None:
        data = json.loads(json.dumps(ScenePlan(SCENE).to_dict()))
        assert data["set_studio"] is None
        assert data["unchanged"] == 0
