"""Write-back against the test Stash server: the applier (``tagger.writeback.apply``), its journal
(``tagger.writeback.journal``) in the store (``tagger.stashside.store``), and the review queue
(``tagger.writeback.review``).

Every test talks to Stash through the real client over HTTP; the server executes Stash's real
schema against in-memory data, so refusals come from Stash's own validation. Where the point is
"nothing else changed", the server's whole state is compared.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tagger.decide.studio import StudioMatch
from tagger.decide.tags import MarkerDecision, SceneTag
from tagger.errors import ConfigError, GraphQLError, StashReplyLostError, StashUnreachableError
from tagger.stashside.stash import StashClient
from tagger.stashside.store import Store
from tagger.writeback import apply
from tagger.writeback.apply import Applier, scene_state
from tagger.writeback.journal import Action, Intent, Journal
from tagger.writeback.plan import (
    Findings,
    MarkerCreate,
    MarkerState,
    PerformerChange,
    PerformerMatch,
    PlanOptions,
    ScenePlan,
    StudioChange,
    Suggestion,
    TagChange,
    plan_scene,
)
from tagger.writeback.review import ReviewQueue
from tests.polling import wait_until
from tests.stash_server import StashTestServer

PARENT = "AI"
"""The parent tag of every tag the tagger creates, in these tests."""


# ---- fixtures and helpers ----------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    """What the user has in Stash before the tagger runs (ids as the server stores them)."""

    scene: int  # "Beach day": tag Favourite, performer Jane Doe, no studio
    other_scene: int  # "Garden": nothing
    favourite: int  # the user's tag on the scene
    outdoor: int  # the user's tag, alias "Outside"
    brandx: int  # a studio
    my_studio: int  # another studio (the user's choice where one is set)
    jane: int  # performer on the scene
    john: int  # performer not on the scene


@dataclass(frozen=True)
class Row:
    """One journal row, as read back from the store."""

    id: int
    run_id: str
    action: str
    target: str | None
    status: str
    payload: dict[str, Any]
    note: str | None


@pytest.fixture
def server() -> Iterator[StashTestServer]:
    with StashTestServer() as running:
        yield running


@pytest.fixture
def library(server: StashTestServer) -> Library:
    state = server.state
    favourite = state.add_tag("Favourite")
    outdoor = state.add_tag("Outdoor", aliases=["Outside"])
    jane = state.add_performer("Jane Doe")
    return Library(
        scene=state.add_scene(
            "Beach day", path="/library/beach.mp4", tag_ids=[favourite], performer_ids=[jane]
        ),
        other_scene=state.add_scene("Garden", path="/library/garden.mp4"),
        favourite=favourite,
        outdoor=outdoor,
        brandx=state.add_studio("BrandX", aliases=["brandx.com"]),
        my_studio=state.add_studio("My Studio"),
        jane=jane,
        john=state.add_performer("John Roe"),
    )


@pytest.fixture
def client(server: StashTestServer) -> StashClient:
    return StashClient(url=server.url, attempts=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.sqlite") as opened:
        yield opened


@pytest.fixture
def applier(client: StashClient, store: Store) -> Applier:
    return new_run(client, store)


def new_run(client: StashClient, store: Store, mode: str = "test") -> Applier:
    """An applier for a new run on the same store (as the next invocation of the tagger)."""
    return Applier(client, Journal(store, store.start_run(mode)), PARENT)


def rows(store: Store) -> list[Row]:
    """Every journal row, oldest first, whatever its status."""
    found = store.db.execute(
        "SELECT id, run_id, action, target, status, payload, note FROM journal ORDER BY id"
    )
    return [Row(r[0], r[1], r[2], r[3], r[4], _json(r[5]), r[6]) for r in found]


def row(store: Store, row_id: int) -> Row:
    (found,) = [r for r in rows(store) if r.id == row_id]
    return found


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def tag_found(name: str, score: float = 0.9) -> SceneTag:
    """A scene tag the content analyzer found (label: the name in capitals)."""
    return SceneTag(name, name.upper(), score, 12.0, 0.4)


def marker_found(tag: str, start: float, end: float) -> MarkerDecision:
    return MarkerDecision(tag, tag, start, end, 0.8, source="content")


def plan_for(
    applier: Applier, scene_id: int, findings: Findings, options: PlanOptions | None = None
) -> ScenePlan:
    """Plan ``findings`` against the scene as Stash has it now and the journal's ownership."""
    scene = applier.client.find_scene(str(scene_id))
    assert scene is not None
    names = [t.name for t in (*findings.tags, *findings.review_tags)] + [m.tag for m in findings.markers]
    return plan_scene(
        scene_state(scene),
        findings,
        tag_ids=applier.resolve_tags(names),
        owned=applier.owned(str(scene_id)),
        options=options or PlanOptions(),
    )


def scene_record(server: StashTestServer, scene_id: int) -> dict[str, Any]:
    return server.state.snapshot()["scenes"][scene_id]


def tag_named(server: StashTestServer, name: str) -> dict[str, Any]:
    (tag,) = [t for t in server.state.snapshot()["tags"].values() if t["name"] == name]
    return tag


def markers_of(server: StashTestServer, scene_id: int) -> list[dict[str, Any]]:
    return [m for m in server.state.snapshot()["markers"].values() if m["scene_id"] == scene_id]


def sent(server: StashTestServer, operation: str) -> list[dict[str, Any]]:
    """The variables of every request of ``operation`` the server received, in order."""
    return [variables for name, _query, variables in server.requests if name == operation]


def without_scene_stamps(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without each scene's ``updated_at`` (every scene mutation sets it)."""
    copied = copy.deepcopy(snapshot)
    for scene in copied["scenes"].values():
        scene.pop("updated_at")
    return copied


def full_findings(library: Library) -> Findings:
    """Findings with one of everything: an existing and a new tag, a marker for each, the
    studio on screen and a performer recognised."""
    return Findings(
        tags=(tag_found("Outdoor"), tag_found("Kissing")),
        markers=(marker_found("Kissing", 12.0, 18.5), marker_found("Outdoor", 30.0, 41.25)),
        studio=StudioMatch("BrandX", str(library.brandx), 0.93, ("BRANDX.COM at 2-22 s",)),
        performers=(PerformerMatch(str(library.john), "John Roe", 0.88, auto=True),),
        sources=frozenset({"content", "text", "faces"}),
    )


# ---- apply ---------------------------------------------------------------------------------


class TestApply:
    def test_found_tags_are_added_with_bulk_add_and_the_scenes_own_tags_stay(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        plan = plan_for(applier, library.scene, Findings(tags=(tag_found("Outdoor"),)))
        applier.apply(plan)

        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, library.outdoor]
        assert sent(server, "BulkSceneTags") == [
            {"ids": [str(library.scene)], "tag_ids": {"ids": [str(library.outdoor)], "mode": "ADD"}}
        ]

    def test_a_tag_the_user_adds_between_planning_and_applying_stays(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        plan = plan_for(applier, library.scene, Findings(tags=(tag_found("Outdoor"),)))
        sunset = server.state.add_tag("Sunset")
        with server.state.lock:
            server.state.scenes[library.scene]["tag_ids"].append(sunset)

        applier.apply(plan)

        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, sunset, library.outdoor]

    def test_a_missing_tag_is_created_under_the_parent_tag_which_is_created_first(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        done = applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),))))

        parent, kissing = tag_named(server, PARENT), tag_named(server, "Kissing")
        assert (parent["description"], parent["parent_ids"]) == (apply.PARENT_DESCRIPTION, [])
        assert (kissing["description"], kissing["parent_ids"]) == (apply.TAG_DESCRIPTION, [parent["id"]])
        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, kissing["id"]]
        assert done.tags_created == [PARENT, "Kissing"]
        assert done.tags_added == ["Kissing"]

    def test_journal_rows_of_created_tags_are_done_with_the_ids_stash_returned(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),))))

        parent, kissing = str(tag_named(server, PARENT)["id"]), str(tag_named(server, "Kissing")["id"])
        assert [(r.action, r.target, r.status, r.payload.get("name")) for r in rows(store)] == [
            (Action.CREATE_TAG, parent, "done", PARENT),
            (Action.CREATE_TAG, kissing, "done", "Kissing"),
            (Action.ADD_TAG, kissing, "done", "Kissing"),
        ]
        assert set(applier.journal.created_tags()) == {parent, kissing}

    def test_an_existing_parent_tag_is_used_not_created_again(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        parent = server.state.add_tag(PARENT, description="My own AI folder")

        done = applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),))))

        assert done.tags_created == ["Kissing"]
        assert tag_named(server, "Kissing")["parent_ids"] == [parent]
        assert tag_named(server, PARENT)["description"] == "My own AI folder"

    def test_markers_are_created_with_the_resolved_primary_tag(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        findings = Findings(
            markers=(marker_found("Kissing", 12.0, 18.5), marker_found("Outside", 30.0, 41.25))
        )

        done = applier.apply(plan_for(applier, library.scene, findings))

        kissing = tag_named(server, "Kissing")["id"]
        created = sorted(markers_of(server, library.scene), key=lambda m: m["seconds"])
        assert [
            (m["title"], m["seconds"], m["end_seconds"], m["primary_tag_id"], m["tag_ids"]) for m in created
        ] == [
            ("Kissing", 12.0, 18.5, kissing, []),
            ("Outside", 30.0, 41.25, library.outdoor, []),  # the alias resolves to the user's tag
        ]
        assert done.markers_created == 2
        marker_rows = [r for r in rows(store) if r.action == Action.CREATE_MARKER]
        assert [(r.target, r.status, r.payload["state"]["primary_tag_id"]) for r in marker_rows] == [
            (str(created[0]["id"]), "done", str(kissing)),
            (str(created[1]["id"]), "done", str(library.outdoor)),
        ]

    def test_the_studio_is_set_with_nothing_but_the_studio(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        before = scene_record(server, library.scene)
        findings = Findings(studio=StudioMatch("BrandX", str(library.brandx), 0.93, ("BRANDX.COM",)))

        done = applier.apply(plan_for(applier, library.scene, findings))

        after = scene_record(server, library.scene)
        assert after["studio_id"] == library.brandx and done.studio == "BrandX"
        assert {k: v for k, v in after.items() if k not in ("studio_id", "updated_at")} == {
            k: v for k, v in before.items() if k not in ("studio_id", "updated_at")
        }
        assert sent(server, "SceneSetStudio") == [
            {"id": str(library.scene), "studio_id": str(library.brandx)}
        ]

    def test_recognised_performers_are_added_beside_the_scenes_performers(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        findings = Findings(performers=(PerformerMatch(str(library.john), "John Roe", 0.91, auto=True),))

        done = applier.apply(plan_for(applier, library.scene, findings))

        assert scene_record(server, library.scene)["performer_ids"] == [library.jane, library.john]
        assert done.performers_added == ["John Roe"]
        assert sent(server, "BulkScenePerformers") == [
            {"ids": [str(library.scene)], "performer_ids": {"ids": [str(library.john)], "mode": "ADD"}}
        ]

    def test_applying_the_same_findings_again_changes_nothing(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        findings = full_findings(library)
        applier.apply(plan_for(applier, library.scene, findings))
        after_first, journal_after_first = server.state.snapshot(), rows(store)

        second = new_run(applier.client, store)
        again = plan_for(second, library.scene, findings)
        second.apply(again)

        assert again.changes == 0 and again.unchanged == 6
        assert server.state.snapshot() == after_first and rows(store) == journal_after_first

    def test_a_tag_someone_creates_meanwhile_is_used_and_is_not_the_taggers(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        plan = plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),)))
        theirs: list[int] = []

        def user_creates_it_first(operation: str) -> bool:
            with server.state.lock:
                parent_made = any(t["name"] == PARENT for t in server.state.tags.values())
            if operation == "TagCreate" and parent_made:
                theirs.append(server.state.add_tag("Kissing", description="made by the user"))
                server.before_mutation = None
            return False

        server.before_mutation = user_creates_it_first
        done = applier.apply(plan)

        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, theirs[0]]
        assert done.tags_created == [PARENT]
        assert [(r.action, r.target, r.status) for r in rows(store)][1:] == [
            (Action.CREATE_TAG, None, "failed"),
            (Action.ADD_TAG, str(theirs[0]), "done"),
        ]
        assert str(theirs[0]) not in applier.journal.created_tags()


class TestReRun:
    def test_a_tag_a_re_run_no_longer_finds_is_taken_back_with_bulk_remove(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        first = new_run(client, store)
        first.apply(plan_for(first, library.scene, Findings(tags=(tag_found("Outdoor"),))))
        second = new_run(client, store)

        done = second.apply(plan_for(second, library.scene, Findings(sources=frozenset({"content"}))))

        assert done.tags_removed == ["Outdoor"]
        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite]
        assert sent(server, "BulkSceneTags")[-1] == {
            "ids": [str(library.scene)],
            "tag_ids": {"ids": [str(library.outdoor)], "mode": "REMOVE"},
        }

    def test_a_marker_a_re_run_finds_elsewhere_is_moved_and_undo_still_removes_it(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        first = new_run(client, store)
        first.apply(plan_for(first, library.scene, Findings(markers=(marker_found("Outdoor", 30.0, 41.25),))))
        (made,) = markers_of(server, library.scene)
        second = new_run(client, store)

        done = second.apply(
            plan_for(second, library.scene, Findings(markers=(marker_found("Outdoor", 28.0, 44.0),)))
        )

        (moved,) = markers_of(server, library.scene)
        assert (moved["id"], moved["seconds"], moved["end_seconds"]) == (made["id"], 28.0, 44.0)
        assert done.markers_updated == 1
        assert new_run(client, store, "undo").undo_scene(str(library.scene)).markers_removed == 1
        assert markers_of(server, library.scene) == []

    def test_a_marker_a_re_run_no_longer_finds_is_destroyed(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        first = new_run(client, store)
        first.apply(plan_for(first, library.scene, Findings(markers=(marker_found("Outdoor", 30.0, 41.25),))))
        second = new_run(client, store)

        done = second.apply(plan_for(second, library.scene, Findings(sources=frozenset({"content"}))))

        assert done.markers_removed == 1 and markers_of(server, library.scene) == []


class TestJournalIntents:
    def test_each_steps_rows_are_written_as_intents_before_its_mutation_is_sent(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def look_at_the_store(operation: str) -> bool:
            with closing(sqlite3.connect(store.path)) as db:
                seen.append(
                    (operation, db.execute("SELECT action, status FROM journal ORDER BY id").fetchall())
                )
            return False

        server.before_mutation = look_at_the_store
        findings = Findings(tags=(tag_found("Kissing"), tag_found("Outdoor")))
        applier.apply(plan_for(applier, library.scene, findings))

        assert seen == [
            ("TagCreate", [("create_tag", "intent")]),
            ("TagCreate", [("create_tag", "done"), ("create_tag", "intent")]),
            (
                "BulkSceneTags",
                [
                    ("create_tag", "done"),
                    ("create_tag", "done"),
                    ("add_tag", "intent"),
                    ("add_tag", "intent"),
                ],
            ),
        ]
        assert [r.status for r in rows(store)] == ["done"] * 4


# ---- Stash refusing a change ---------------------------------------------------------------


class TestRefusals:
    def test_a_marker_ending_before_it_starts_is_refused_and_its_row_failed(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        before = server.state.snapshot()
        plan = ScenePlan(
            str(library.scene),
            create_markers=(MarkerCreate("Outdoor", "Outdoor", str(library.outdoor), 20.0, 10.0, "content"),),
        )

        with pytest.raises(
            GraphQLError, match=r"end_seconds \(10\.0+\) must be greater than or equal to seconds \(20\.0+\)"
        ):
            applier.apply(plan)

        assert server.state.snapshot() == before
        assert [(r.action, r.target, r.status) for r in rows(store)] == [
            (Action.CREATE_MARKER, None, "failed")
        ]
        assert "MarkerCreate" in str(rows(store)[0].note)

    def test_a_tag_id_stash_does_not_have_fails_the_whole_bulk_add(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        before = server.state.snapshot()
        plan = ScenePlan(
            str(library.scene),
            add_tags=(
                TagChange("Outdoor", str(library.outdoor), "content"),
                TagChange("Ghost", "999", "content"),
            ),
        )

        with pytest.raises(GraphQLError, match="FOREIGN KEY constraint failed"):
            applier.apply(plan)

        assert server.state.snapshot() == before
        assert [(r.action, r.target, r.status) for r in rows(store)] == [
            (Action.ADD_TAG, str(library.outdoor), "failed"),
            (Action.ADD_TAG, "999", "failed"),
        ]

    def test_a_refused_step_leaves_the_earlier_steps_done_and_sends_no_later_one(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        plan = ScenePlan(
            str(library.scene),
            add_tags=(TagChange("Outdoor", str(library.outdoor), "content"),),
            create_markers=(MarkerCreate("Outdoor", "Outdoor", str(library.outdoor), 20.0, 10.0, "content"),),
            set_studio=StudioChange(str(library.brandx), "BrandX", None),
        )

        with pytest.raises(GraphQLError):
            applier.apply(plan)

        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, library.outdoor]
        assert scene_record(server, library.scene)["studio_id"] is None
        assert sent(server, "SceneSetStudio") == []
        assert [(r.action, r.status) for r in rows(store)] == [
            (Action.ADD_TAG, "done"),
            (Action.CREATE_MARKER, "failed"),
        ]


# ---- reconcile: settling a killed run's intents --------------------------------------------


def intend(store: Store, intent: Intent) -> int:
    """Write one intent as a run does just before its mutation, in a run that is then killed."""
    (row_id,) = Journal(store, store.start_run("killed")).intend([intent])
    return row_id


def kissing_state(tag_id: int) -> MarkerState:
    return MarkerState("Kissing", 12.0, 18.5, str(tag_id))


class TestReconcile:
    def test_nothing_pending_settles_nothing(self, applier: Applier, store: Store) -> None:
        assert applier.reconcile() == 0
        assert rows(store) == []

    def test_a_created_tag_found_with_our_description_is_adopted_as_the_rows_target(
        self, server: StashTestServer, client: StashClient, store: Store
    ) -> None:
        payload = {"name": "Kissing", "description": apply.TAG_DESCRIPTION}
        row_id = intend(store, Intent(Action.CREATE_TAG, payload=payload))
        kissing = server.state.add_tag("Kissing", description=apply.TAG_DESCRIPTION)

        assert new_run(client, store).reconcile() == 1

        settled = row(store, row_id)
        assert (settled.status, settled.target) == ("done", str(kissing))
        assert Journal(store, "any").created_tags().keys() == {str(kissing)}

    def test_a_created_tag_absent_from_stash_is_failed(self, client: StashClient, store: Store) -> None:
        row_id = intend(
            store,
            Intent(Action.CREATE_TAG, payload={"name": "Kissing", "description": apply.TAG_DESCRIPTION}),
        )

        new_run(client, store).reconcile()

        assert (row(store, row_id).status, row(store, row_id).target) == ("failed", None)

    def test_a_users_tag_of_the_same_name_is_not_adopted(
        self, server: StashTestServer, client: StashClient, store: Store
    ) -> None:
        server.state.add_tag("Kissing", description="mine")
        row_id = intend(
            store,
            Intent(Action.CREATE_TAG, payload={"name": "Kissing", "description": apply.TAG_DESCRIPTION}),
        )

        new_run(client, store).reconcile()

        assert row(store, row_id).status == "failed"
        assert Journal(store, "any").created_tags() == {}

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_an_added_tag_is_done_when_the_scene_has_it_else_failed(
        self,
        server: StashTestServer,
        library: Library,
        client: StashClient,
        store: Store,
        applied: bool,
        status: str,
    ) -> None:
        row_id = intend(
            store, Intent(Action.ADD_TAG, str(library.scene), str(library.outdoor), {"name": "Outdoor"})
        )
        if applied:
            with server.state.lock:
                server.state.scenes[library.scene]["tag_ids"].append(library.outdoor)

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status

    def test_an_identical_marker_no_other_row_owns_is_adopted(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        state = kissing_state(library.favourite)
        row_id = intend(
            store, Intent(Action.CREATE_MARKER, str(library.scene), payload={"state": state.to_dict()})
        )
        marker = server.state.add_marker(
            library.scene, library.favourite, 12.0, title="Kissing", end_seconds=18.5
        )

        new_run(client, store).reconcile()

        assert (row(store, row_id).status, row(store, row_id).target) == ("done", str(marker))

    def test_an_identical_marker_another_row_owns_is_not_adopted(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        state = kissing_state(library.favourite)
        owner = server.state.add_marker(
            library.scene, library.favourite, 12.0, title="Kissing", end_seconds=18.5
        )
        Journal(store, store.start_run("earlier")).record(
            Intent(Action.CREATE_MARKER, str(library.scene), str(owner), {"state": state.to_dict()})
        )
        row_id = intend(
            store, Intent(Action.CREATE_MARKER, str(library.scene), payload={"state": state.to_dict()})
        )

        new_run(client, store).reconcile()

        assert (row(store, row_id).status, row(store, row_id).target) == ("failed", None)

    def test_a_moved_marker_is_not_taken_for_the_one_intended(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        state = kissing_state(library.favourite)
        row_id = intend(
            store, Intent(Action.CREATE_MARKER, str(library.scene), payload={"state": state.to_dict()})
        )
        server.state.add_marker(library.scene, library.favourite, 13.0, title="Kissing", end_seconds=18.5)

        new_run(client, store).reconcile()

        assert row(store, row_id).status == "failed"

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_a_set_studio_is_done_when_the_scene_has_that_studio_else_failed(
        self,
        server: StashTestServer,
        library: Library,
        client: StashClient,
        store: Store,
        applied: bool,
        status: str,
    ) -> None:
        row_id = intend(
            store,
            Intent(
                Action.SET_STUDIO,
                str(library.scene),
                str(library.brandx),
                {"name": "BrandX"},
                before={"studio_id": None},
            ),
        )
        if applied:
            with server.state.lock:
                server.state.scenes[library.scene]["studio_id"] = library.brandx

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_a_destroyed_marker_is_done_when_it_is_gone_else_failed(
        self,
        server: StashTestServer,
        library: Library,
        client: StashClient,
        store: Store,
        applied: bool,
        status: str,
    ) -> None:
        marker = server.state.add_marker(
            library.scene, library.favourite, 12.0, title="Kissing", end_seconds=18.5
        )
        state = kissing_state(library.favourite)
        row_id = intend(
            store, Intent(Action.DESTROY_MARKER, str(library.scene), str(marker), {"state": state.to_dict()})
        )
        if applied:
            with server.state.lock:
                del server.state.markers[marker]

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status

    def test_every_intent_is_settled_and_counted(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        killed = Journal(store, store.start_run("killed"))
        killed.intend(
            [
                Intent(Action.ADD_TAG, str(library.scene), str(library.outdoor), {"name": "Outdoor"}),
                Intent(Action.ADD_PERFORMER, str(library.scene), str(library.john), {"name": "John Roe"}),
            ]
        )
        with server.state.lock:
            server.state.scenes[library.scene]["performer_ids"].append(library.john)

        assert new_run(client, store).reconcile() == 2

        assert [(r.action, r.status) for r in rows(store)] == [
            (Action.ADD_TAG, "failed"),
            (Action.ADD_PERFORMER, "done"),
        ]
        assert killed.pending() == []

    def test_a_mutation_that_never_reached_stash_is_failed_and_the_next_run_applies_it(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        findings = Findings(tags=(tag_found("Outdoor"),))
        first = new_run(client, store)
        server.before_mutation = lambda operation: operation == "BulkSceneTags"  # killed while sending
        with pytest.raises(StashUnreachableError):
            first.apply(plan_for(first, library.scene, findings))
        assert [(r.action, r.status) for r in rows(store)] == [(Action.ADD_TAG, "intent")]

        server.before_mutation = None
        second = new_run(client, store)
        assert second.reconcile() == 1
        second.apply(plan_for(second, library.scene, findings))

        assert [(r.action, r.status) for r in rows(store)] == [
            (Action.ADD_TAG, "failed"),
            (Action.ADD_TAG, "done"),
        ]
        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, library.outdoor]

    def test_a_marker_created_by_a_run_killed_before_the_answer_is_adopted_not_made_twice(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        findings = Findings(markers=(marker_found("Outdoor", 30.0, 41.25),), sources=frozenset({"content"}))

        def apply_then_lose_the_answer(operation: str) -> bool:
            if operation != "MarkerCreate":
                return False
            server.state.add_marker(library.scene, library.outdoor, 30.0, title="Outdoor", end_seconds=41.25)
            server.fail_next(1)  # the run is gone before it can look at Stash
            return True

        first = new_run(client, store)
        server.before_mutation = apply_then_lose_the_answer
        with pytest.raises(StashUnreachableError):
            first.apply(plan_for(first, library.scene, findings))

        server.before_mutation = None
        second = new_run(client, store)
        second.reconcile()
        again = plan_for(second, library.scene, findings)

        (marker,) = markers_of(server, library.scene)
        assert [(r.action, r.target, r.status) for r in rows(store)] == [
            (Action.CREATE_MARKER, str(marker["id"]), "done")
        ]
        assert again.changes == 0 and again.unchanged == 1

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_a_deleted_tag_is_done_when_stash_no_longer_has_it_else_failed(
        self, server: StashTestServer, client: StashClient, store: Store, applied: bool, status: str
    ) -> None:
        kissing = server.state.add_tag("Kissing", description=apply.TAG_DESCRIPTION)
        row_id = intend(store, Intent(Action.DELETE_TAG, target=str(kissing), payload={"name": "Kissing"}))
        if applied:
            with server.state.lock:
                del server.state.tags[kissing]

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status

    def test_a_tag_created_by_a_run_killed_before_the_answer_is_adopted_so_undo_still_deletes_it(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        before = server.state.snapshot()
        findings = Findings(tags=(tag_found("Kissing"),))

        def create_then_lose_the_answer(operation: str) -> bool:
            with server.state.lock:
                parents = [t["id"] for t in server.state.tags.values() if t["name"] == PARENT]
            if operation != "TagCreate" or not parents:
                return False
            server.state.add_tag("Kissing", description=apply.TAG_DESCRIPTION, parent_ids=parents)
            server.fail_next(1)  # the run is gone before it can look at Stash
            return True

        first = new_run(client, store)
        server.before_mutation = create_then_lose_the_answer
        with pytest.raises(StashUnreachableError):
            first.apply(plan_for(first, library.scene, findings))

        server.before_mutation = None
        second = new_run(client, store)
        second.reconcile()
        second.apply(plan_for(second, library.scene, findings))
        (kissing,) = [t for t in server.state.snapshot()["tags"].values() if t["name"] == "Kissing"]
        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, kissing["id"]]

        third = new_run(client, store, "undo")
        third.undo_scene(str(library.scene))
        assert third.delete_unused_tags() == ["Kissing", PARENT]
        assert without_scene_stamps(server.state.snapshot()) == without_scene_stamps(before)

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_a_moved_marker_is_done_when_stash_has_it_at_the_new_span_else_failed(
        self,
        server: StashTestServer,
        library: Library,
        client: StashClient,
        store: Store,
        applied: bool,
        status: str,
    ) -> None:
        marker = server.state.add_marker(
            library.scene, library.favourite, 12.0, title="Kissing", end_seconds=18.5
        )
        moved = MarkerState("Kissing", 10.0, 20.0, str(library.favourite))
        row_id = intend(
            store,
            Intent(
                Action.UPDATE_MARKER,
                str(library.scene),
                str(marker),
                {"state": moved.to_dict()},
                before={"state": kissing_state(library.favourite).to_dict()},
            ),
        )
        if applied:
            with server.state.lock:
                server.state.markers[marker].update(seconds=10.0, end_seconds=20.0)

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status

    @pytest.mark.parametrize(("applied", "status"), [(True, "done"), (False, "failed")])
    def test_a_restored_studio_is_done_when_the_scene_has_its_old_studio_again_else_failed(
        self,
        server: StashTestServer,
        library: Library,
        client: StashClient,
        store: Store,
        applied: bool,
        status: str,
    ) -> None:
        with server.state.lock:
            server.state.scenes[library.scene]["studio_id"] = library.brandx
        row_id = intend(
            store,
            Intent(
                Action.RESTORE_STUDIO,
                str(library.scene),
                str(library.brandx),
                {"studio_id": str(library.my_studio)},
            ),
        )
        if applied:
            with server.state.lock:
                server.state.scenes[library.scene]["studio_id"] = library.my_studio

        new_run(client, store).reconcile()

        assert row(store, row_id).status == status


# ---- lost answers --------------------------------------------------------------------------


class TestLostAnswers:
    """A creation or deletion whose answer never comes back (``drop_reply_after``: Stash applied
    it) is settled at once by looking at Stash, and is never made twice."""

    @pytest.fixture
    def client(self, server: StashTestServer) -> StashClient:
        """A client that retries as the plugin's does (``client_for``)."""
        return StashClient(url=server.url, sleep=lambda _seconds: None)

    def test_tags_created_without_an_answer_are_adopted_and_confirmed(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        server.drop_reply_after("TagCreate", times=None)

        done = applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),))))

        parent, kissing = tag_named(server, PARENT), tag_named(server, "Kissing")
        assert server.dropped_replies == ["TagCreate", "TagCreate"] and len(sent(server, "TagCreate")) == 2
        assert done.tags_created == [PARENT, "Kissing"]
        assert [(r.action, r.target, r.status) for r in rows(store)] == [
            (Action.CREATE_TAG, str(parent["id"]), "done"),
            (Action.CREATE_TAG, str(kissing["id"]), "done"),
            (Action.ADD_TAG, str(kissing["id"]), "done"),
        ]
        assert scene_record(server, library.scene)["tag_ids"] == [library.favourite, kissing["id"]]

    def test_a_marker_created_without_an_answer_is_made_once_and_undo_removes_it_and_its_tag(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        before = server.state.snapshot()
        findings = Findings(markers=(marker_found("Kissing", 12.0, 18.5),), sources=frozenset({"content"}))
        first = new_run(client, store)
        server.drop_reply_after("MarkerCreate")

        first.apply(plan_for(first, library.scene, findings))

        (marker,) = markers_of(server, library.scene)
        assert server.dropped_replies == ["MarkerCreate"] and len(sent(server, "MarkerCreate")) == 1
        assert (Action.CREATE_MARKER, str(marker["id"]), "done") in [
            (r.action, r.target, r.status) for r in rows(store)
        ]
        undo = new_run(client, store, "undo")
        assert undo.undo_scene(str(library.scene)).markers_removed == 1
        assert undo.delete_unused_tags() == ["Kissing", PARENT]
        assert without_scene_stamps(server.state.snapshot()) == without_scene_stamps(before)

    def test_a_marker_create_that_was_not_applied_is_sent_once_more_and_made_once(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        lost = ["MarkerCreate"]

        def drop_unapplied_once(operation: str) -> bool:  # the connection breaks before Stash acts
            if operation in lost:
                lost.remove(operation)
                return True
            return False

        server.before_mutation = drop_unapplied_once
        findings = Findings(markers=(marker_found("Outdoor", 30.0, 41.25),), sources=frozenset({"content"}))

        applier.apply(plan_for(applier, library.scene, findings))

        (marker,) = markers_of(server, library.scene)
        assert len(sent(server, "MarkerCreate")) == 2
        assert [(r.action, r.target, r.status) for r in rows(store)] == [
            (Action.CREATE_MARKER, str(marker["id"]), "done")
        ]

    def test_a_marker_create_stash_may_still_be_applying_is_not_sent_again_but_left_to_reconcile(
        self, server: StashTestServer, library: Library, store: Store
    ) -> None:
        release = threading.Event()

        def slow_stash(operation: str) -> bool:  # Stash is busy: it applies after the client gave up
            if operation == "MarkerCreate":
                release.wait(10)
            return False

        server.before_mutation = slow_stash
        impatient = new_run(StashClient(url=server.url, timeout=0.3, sleep=lambda _seconds: None), store)
        findings = Findings(markers=(marker_found("Outdoor", 30.0, 41.25),), sources=frozenset({"content"}))
        try:
            with pytest.raises(StashReplyLostError) as raised:
                impatient.apply(plan_for(impatient, library.scene, findings))
        finally:
            release.set()
        wait_until(lambda: markers_of(server, library.scene), what="Stash applies the late marker")

        assert raised.value.in_flight and len(sent(server, "MarkerCreate")) == 1
        assert [(r.action, r.status) for r in rows(store)] == [(Action.CREATE_MARKER, "intent")]
        assert new_run(StashClient(url=server.url, attempts=1), store).reconcile() == 1
        (marker,) = markers_of(server, library.scene)
        assert [(r.target, r.status) for r in rows(store)] == [(str(marker["id"]), "done")]

    def test_markers_destroyed_without_an_answer_are_confirmed_not_destroyed_again(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        findings = Findings(markers=(marker_found("Outdoor", 30.0, 41.25),), sources=frozenset({"content"}))
        first = new_run(client, store)
        first.apply(plan_for(first, library.scene, findings))
        (marker,) = markers_of(server, library.scene)
        server.drop_reply_after("MarkersDestroy")

        done = new_run(client, store, "undo").undo_scene(str(library.scene))

        assert done.markers_removed == 1 and markers_of(server, library.scene) == []
        assert server.dropped_replies == ["MarkersDestroy"] and len(sent(server, "MarkersDestroy")) == 1
        assert (Action.DESTROY_MARKER, str(marker["id"]), "done") in [
            (r.action, r.target, r.status) for r in rows(store)
        ]

    def test_tags_deleted_without_an_answer_are_confirmed_not_deleted_again(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        user_tags = set(server.state.snapshot()["tags"])
        create_and_undo(applier, library.scene, Findings(tags=(tag_found("Kissing"),)))
        server.drop_reply_after("TagDestroy", times=None)

        assert applier.delete_unused_tags() == ["Kissing", PARENT]

        assert set(server.state.snapshot()["tags"]) == user_tags
        assert server.dropped_replies == ["TagDestroy", "TagDestroy"] and len(sent(server, "TagDestroy")) == 2
        assert [r.status for r in rows(store) if r.action == Action.DELETE_TAG] == ["done", "done"]
        assert applier.journal.created_tags() == {}

    def test_a_performer_created_without_an_answer_is_adopted_not_made_twice(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        server.drop_reply_after("PerformerCreate")

        performer_id = applier.create_performer("Ann Example")

        named = [p for p in server.state.snapshot()["performers"].values() if p["name"] == "Ann Example"]
        assert [str(p["id"]) for p in named] == [performer_id]
        assert server.dropped_replies == ["PerformerCreate"] and len(sent(server, "PerformerCreate")) == 1


# ---- undo ----------------------------------------------------------------------------------


class TestUndo:
    def test_undo_takes_back_the_tags_markers_performers_and_studio_the_tagger_added(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        before = scene_record(server, library.scene)
        applier.apply(plan_for(applier, library.scene, full_findings(library)))

        done = new_run(applier.client, applier.journal.store).undo_scene(str(library.scene))

        after = scene_record(server, library.scene)
        assert {k: after[k] for k in ("tag_ids", "performer_ids", "studio_id")} == {
            k: before[k] for k in ("tag_ids", "performer_ids", "studio_id")
        }
        assert markers_of(server, library.scene) == []
        assert sorted(done.tags_removed) == ["Kissing", "Outdoor"]
        assert (done.performers_removed, done.markers_removed, done.studio_restored) == (
            ["John Roe"],
            2,
            True,
        )
        assert done.kept == []

    def test_undo_puts_back_the_studio_the_user_had_before(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        with server.state.lock:
            server.state.scenes[library.scene]["studio_id"] = library.my_studio
        plan = ScenePlan(
            str(library.scene),
            set_studio=StudioChange(str(library.brandx), "BrandX", before=str(library.my_studio)),
        )
        applier.apply(plan)
        assert scene_record(server, library.scene)["studio_id"] == library.brandx

        applier.undo_scene(str(library.scene))

        assert scene_record(server, library.scene)["studio_id"] == library.my_studio

    def test_undo_leaves_a_marker_the_user_edited_and_says_so(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        applier.apply(
            plan_for(applier, library.scene, Findings(markers=(marker_found("Outdoor", 30.0, 41.25),)))
        )
        (marker,) = markers_of(server, library.scene)
        with server.state.lock:
            server.state.markers[marker["id"]]["title"] = "Walk on the beach"

        done = applier.undo_scene(str(library.scene))

        assert [m["id"] for m in markers_of(server, library.scene)] == [marker["id"]]
        assert done.markers_removed == 0
        assert done.kept == [
            "marker 'Walk on the beach' at 30 s (edited by you since the tagger made it as 'Outdoor')"
        ]

    def test_undo_leaves_a_studio_the_user_changed_since(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        applier.apply(
            plan_for(
                applier, library.scene, Findings(studio=StudioMatch("BrandX", str(library.brandx), 0.9, ()))
            )
        )
        with server.state.lock:
            server.state.scenes[library.scene]["studio_id"] = library.my_studio

        done = applier.undo_scene(str(library.scene))

        assert scene_record(server, library.scene)["studio_id"] == library.my_studio
        assert done.kept == ["studio (changed by you)"] and not done.studio_restored

    def test_undo_leaves_what_the_user_accepted(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        plan = ScenePlan(
            str(library.scene),
            add_tags=(TagChange("Outdoor", str(library.outdoor), "review"),),
            add_performers=(PerformerChange(str(library.john), "John Roe", "review"),),
            set_studio=StudioChange(str(library.brandx), "BrandX", None),
        )
        applier.apply(plan, reason={"confirmed": True})
        accepted = server.state.snapshot()

        done = new_run(applier.client, applier.journal.store).undo_scene(str(library.scene))

        assert server.state.snapshot() == accepted
        assert sorted(done.kept) == [
            "performer 'John Roe' (confirmed by you)",
            "studio (accepted by you)",
            "tag 'Outdoor' (accepted by you)",
        ]

    def test_undo_of_one_run_leaves_another_runs_changes(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        run_a = new_run(client, store)
        run_a.apply(
            plan_for(
                run_a,
                library.scene,
                Findings(tags=(tag_found("Outdoor"),), markers=(marker_found("Outdoor", 30.0, 41.25),)),
            )
        )
        after_a = scene_record(server, library.scene)
        markers_after_a = markers_of(server, library.scene)
        run_b = new_run(client, store)
        run_b.apply(
            plan_for(
                run_b,
                library.scene,
                Findings(
                    tags=(tag_found("Outdoor"), tag_found("Kissing")),
                    markers=(marker_found("Outdoor", 30.0, 41.25),),
                    performers=(PerformerMatch(str(library.john), "John Roe", 0.9, auto=True),),
                ),
            )
        )

        done = new_run(client, store, "undo").undo_scene(str(library.scene), run_id=run_b.journal.run_id)

        after_undo = scene_record(server, library.scene)
        assert (after_undo["tag_ids"], after_undo["performer_ids"]) == (
            after_a["tag_ids"],
            after_a["performer_ids"],
        )
        assert markers_of(server, library.scene) == markers_after_a
        assert (done.tags_removed, done.performers_removed, done.markers_removed) == (
            ["Kissing"],
            ["John Roe"],
            0,
        )

    def test_undo_of_the_later_run_puts_back_the_studio_the_earlier_run_set(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        run_a = new_run(client, store)
        run_a.apply(
            plan_for(
                run_a, library.scene, Findings(studio=StudioMatch("BrandX", str(library.brandx), 0.9, ()))
            )
        )
        run_b = new_run(client, store)
        run_b.apply(
            plan_for(
                run_b,
                library.scene,
                Findings(studio=StudioMatch("My Studio", str(library.my_studio), 0.9, ())),
            )
        )
        assert scene_record(server, library.scene)["studio_id"] == library.my_studio

        new_run(client, store, "undo").undo_scene(str(library.scene), run_id=run_b.journal.run_id)

        assert scene_record(server, library.scene)["studio_id"] == library.brandx

    def test_undoing_a_scene_twice_changes_nothing_the_second_time(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        applier.apply(plan_for(applier, library.scene, full_findings(library)))
        applier.undo_scene(str(library.scene))
        undone, journal_after_undo = server.state.snapshot(), rows(store)

        done = applier.undo_scene(str(library.scene))

        assert done.to_dict() == {"scene_id": str(library.scene)}
        assert server.state.snapshot() == undone and rows(store) == journal_after_undo

    def test_undo_of_a_scene_stash_no_longer_has_does_nothing(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Outdoor"),))))
        with server.state.lock:
            del server.state.scenes[library.scene]
        journal_before = rows(store)

        done = applier.undo_scene(str(library.scene))

        assert done.to_dict() == {"scene_id": str(library.scene)}
        assert rows(store) == journal_before


# ---- deleting the tags the tagger created --------------------------------------------------


def create_and_undo(applier: Applier, scene_id: int, findings: Findings) -> None:
    """Apply ``findings`` to a scene (creating their tags), then undo the scene."""
    applier.apply(plan_for(applier, scene_id, findings))
    applier.undo_scene(str(scene_id))


TWO_NEW_TAGS = Findings(tags=(tag_found("Kissing"), tag_found("Hugging")))


class TestDeleteUnusedTags:
    def test_created_tags_nothing_uses_are_deleted_children_before_the_parent(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        user_tags = set(server.state.snapshot()["tags"])
        create_and_undo(applier, library.scene, TWO_NEW_TAGS)
        ids = {name: str(tag_named(server, name)["id"]) for name in (PARENT, "Kissing", "Hugging")}

        deleted = applier.delete_unused_tags()

        assert deleted == ["Hugging", "Kissing", PARENT]
        assert [v["id"] for v in sent(server, "TagDestroy")] == [ids["Hugging"], ids["Kissing"], ids[PARENT]]
        assert set(server.state.snapshot()["tags"]) == user_tags
        assert applier.journal.created_tags() == {}

    def test_a_created_tag_the_user_renamed_is_kept_and_so_is_its_parent(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        create_and_undo(applier, library.scene, TWO_NEW_TAGS)
        with server.state.lock:
            server.state.tags[tag_named(server, "Kissing")["id"]]["name"] = "Kiss"

        assert applier.delete_unused_tags() == ["Hugging"]
        assert {t["name"] for t in server.state.snapshot()["tags"].values()} >= {"Kiss", PARENT}

    def test_a_created_tag_used_on_another_scene_is_kept(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        applier.apply(plan_for(applier, library.scene, TWO_NEW_TAGS))
        kissing = tag_named(server, "Kissing")["id"]
        with server.state.lock:
            server.state.scenes[library.other_scene]["tag_ids"].append(kissing)
        applier.undo_scene(str(library.scene))

        assert applier.delete_unused_tags() == ["Hugging"]
        assert scene_record(server, library.other_scene)["tag_ids"] == [kissing]

    def test_a_created_tag_used_as_a_markers_primary_tag_is_kept(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        create_and_undo(applier, library.scene, TWO_NEW_TAGS)
        kissing = tag_named(server, "Kissing")["id"]
        users_marker = server.state.add_marker(library.other_scene, kissing, 5.0, title="First kiss")

        assert applier.delete_unused_tags() == ["Hugging"]
        assert server.state.snapshot()["markers"][users_marker]["primary_tag_id"] == kissing

    def test_a_created_tag_the_user_re_described_is_kept(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        create_and_undo(applier, library.scene, TWO_NEW_TAGS)
        with server.state.lock:
            server.state.tags[tag_named(server, "Hugging")["id"]]["description"] = "Keep this one"

        assert applier.delete_unused_tags() == ["Kissing"]

    def test_a_parent_tag_the_user_made_is_never_deleted(
        self, server: StashTestServer, library: Library, applier: Applier
    ) -> None:
        parent = server.state.add_tag(PARENT)
        create_and_undo(applier, library.scene, TWO_NEW_TAGS)

        assert applier.delete_unused_tags() == ["Hugging", "Kissing"]
        assert server.state.snapshot()["tags"][parent]["name"] == PARENT

    def test_a_created_tag_already_deleted_in_stash_is_journaled_as_deleted(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        create_and_undo(applier, library.scene, Findings(tags=(tag_found("Kissing"),)))
        kissing = str(tag_named(server, "Kissing")["id"])
        with server.state.lock:
            del server.state.tags[int(kissing)]

        assert applier.delete_unused_tags() == [PARENT]

        (gone,) = [r for r in rows(store) if r.action == Action.DELETE_TAG and r.target == kissing]
        assert (gone.status, gone.note) == ("done", "already deleted in Stash")
        assert kissing not in [v["id"] for v in sent(server, "TagDestroy")]
        assert applier.delete_unused_tags() == []


# ---- resolving tag names -------------------------------------------------------------------


class TestResolveTags:
    def test_a_tag_is_found_by_its_name_ignoring_case(self, library: Library, applier: Applier) -> None:
        assert applier.resolve_tags(["OUTDOOR"]) == {"outdoor": str(library.outdoor)}

    def test_a_tag_is_found_by_an_alias_ignoring_case(self, library: Library, applier: Applier) -> None:
        assert applier.resolve_tags(["outSIDE"]) == {"outside": str(library.outdoor)}

    def test_a_name_stash_does_not_have_is_left_out(self, library: Library, applier: Applier) -> None:
        assert applier.resolve_tags(["Kissing"]) == {}

    def test_a_created_tag_the_user_renamed_is_found_by_the_name_it_was_created_under(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        applier.apply(plan_for(applier, library.scene, Findings(tags=(tag_found("Kissing"),))))
        kissing = tag_named(server, "Kissing")["id"]
        with server.state.lock:
            server.state.tags[kissing]["name"] = "Smooch"

        assert new_run(applier.client, store).resolve_tags(["Kissing"]) == {"kissing": str(kissing)}

    def test_a_created_tag_the_user_deleted_is_not_found(
        self, server: StashTestServer, library: Library, applier: Applier, store: Store
    ) -> None:
        create_and_undo(applier, library.scene, Findings(tags=(tag_found("Kissing"),)))
        with server.state.lock:
            del server.state.tags[tag_named(server, "Kissing")["id"]]

        assert new_run(applier.client, store).resolve_tags(["Kissing"]) == {}


# ---- the review queue ----------------------------------------------------------------------


def suggestion(name: str, score: float = 0.5) -> Suggestion:
    return Suggestion(f"tag:{name.casefold()}", "tag", name, score, {"name": name, "label": name.upper()})


class TestReviewQueue:
    def test_offering_a_pending_suggestion_again_refreshes_it(self, store: Store) -> None:
        queue = ReviewQueue(store)
        queue.offer("1", [suggestion("Kissing", 0.5)], "run-1")

        assert queue.offer("1", [suggestion("Kissing", 0.6)], "run-2") == 1

        count, (only,) = queue.list()
        assert (count, only.key, only.score, only.status) == (1, "tag:kissing", 0.6, "pending")

    def test_a_pending_suggestion_not_offered_again_is_dropped(self, store: Store) -> None:
        queue = ReviewQueue(store)
        queue.offer("1", [suggestion("Kissing"), suggestion("Hugging")], "run-1")

        assert queue.offer("1", [suggestion("Hugging")], "run-2") == 1

        assert [s.key for s in queue.list()[1]] == ["tag:hugging"]

    def test_offering_nothing_drops_only_that_scenes_pending_suggestions(self, store: Store) -> None:
        queue = ReviewQueue(store)
        queue.offer("1", [suggestion("Kissing")], "run-1")
        queue.offer("2", [suggestion("Kissing")], "run-1")

        assert queue.offer("1", [], "run-2") == 0

        assert [(s.scene_id, s.key) for s in queue.list()[1]] == [("2", "tag:kissing")]

    def test_a_rejected_suggestion_stays_rejected_when_offered_again(self, store: Store) -> None:
        queue = ReviewQueue(store)
        queue.offer("1", [suggestion("Kissing", 0.5), suggestion("Hugging")], "run-1")
        (kissing,) = [s for s in queue.list()[1] if s.key == "tag:kissing"]
        queue.decide(kissing.id, "rejected")

        assert queue.offer("1", [suggestion("Kissing", 0.7), suggestion("Hugging")], "run-2") == 1
        queue.offer("1", [], "run-3")

        assert queue.list(status="rejected")[1] == [replace(kissing, status="rejected")]
        assert queue.decided_keys("1") == frozenset({"tag:kissing"})
        assert queue.pending_count() == 0

    def test_a_rejected_tag_is_not_suggested_by_the_next_plan(
        self, library: Library, applier: Applier, store: Store
    ) -> None:
        queue = ReviewQueue(store)
        scene = str(library.scene)
        findings = Findings(review_tags=(tag_found("Kissing", 0.4),))
        first = plan_for(applier, library.scene, findings, PlanOptions(rejected=queue.decided_keys(scene)))
        queue.offer(scene, first.suggestions, applier.journal.run_id)
        queue.decide(queue.list(scene_id=scene)[1][0].id, "rejected")

        again = plan_for(applier, library.scene, findings, PlanOptions(rejected=queue.decided_keys(scene)))

        assert [s.key for s in first.suggestions] == ["tag:kissing"]
        assert again.suggestions == ()

    def test_list_pages_by_scene_then_best_score_with_the_total_count(self, store: Store) -> None:
        queue = ReviewQueue(store)
        queue.offer("10", [suggestion("Kissing", 0.4), suggestion("Hugging", 0.7)], "run")
        queue.offer(
            "2", [suggestion("Dancing", 0.3), suggestion("Running", 0.6), suggestion("Diving", 0.5)], "run"
        )

        pages = [queue.list(page=page, per_page=2) for page in (1, 2, 3, 4)]

        assert [count for count, _ in pages] == [5, 5, 5, 5]
        assert [[(s.scene_id, s.title) for s in page] for _, page in pages] == [
            [("2", "Running"), ("2", "Diving")],
            [("2", "Dancing"), ("10", "Hugging")],
            [("10", "Kissing")],
            [],
        ]
        assert queue.list(scene_id="10")[0] == 2

    def test_an_unknown_status_is_a_config_error_naming_the_allowed_ones(self, store: Store) -> None:
        with pytest.raises(ConfigError, match="'maybe' is not one of pending, accepted, rejected"):
            ReviewQueue(store).list(status="maybe")


# ---- the whole round trip ------------------------------------------------------------------


class TestRoundTrip:
    def test_apply_undo_and_deleting_unused_tags_leave_stash_as_it_was(
        self, server: StashTestServer, library: Library, client: StashClient, store: Store
    ) -> None:
        users_marker = server.state.add_marker(
            library.scene, library.favourite, 3.0, title="Mine", end_seconds=4.0
        )
        before = server.state.snapshot()
        tagging = new_run(client, store, "tag")
        done = tagging.apply(plan_for(tagging, library.scene, full_findings(library)))
        assert done.to_dict() == {
            "scene_id": str(library.scene),
            "tags_added": ["Outdoor", "Kissing"],
            "performers_added": ["John Roe"],
            "markers_created": 2,
            "studio": "BrandX",
            "tags_created": [PARENT, "Kissing"],
        }
        assert server.state.snapshot() != before

        undoing = new_run(client, store, "undo")
        undoing.undo_scene(str(library.scene))
        deleted = undoing.delete_unused_tags()

        assert deleted == ["Kissing", PARENT]
        assert without_scene_stamps(server.state.snapshot()) == without_scene_stamps(before)
        assert users_marker in server.state.snapshot()["markers"]
        assert Journal(store, "any").pending() == []
