"""Plans applied to Stash, journaled; the journal's unsettled rows reconciled; undo.

Every mutation goes through ``_step``: its journal rows are written as intents, the mutation is
sent, and the rows are confirmed with the ids Stash returned. A mutation Stash refuses marks its
rows failed; one whose outcome is unknown (no answer) leaves them as intents, and ``reconcile``
settles them on the next run by looking at Stash. So a SIGKILL between any two steps, followed
by a re-run, converges to the state of an uninterrupted run. A creation or deletion whose answer
was lost (``StashReplyLostError``: the client never sends those twice) is settled at once the
same way: found applied, it is adopted; not found, it is sent once more.

Only ADD and REMOVE bulk updates touch a scene's tags and performers (a ``sceneUpdate`` with a
full list would clobber an edit the user makes meanwhile); the studio is set with a
``sceneUpdate`` that carries nothing but the studio.

Undo removes what the journal says the tagger added and still is as the tagger left it; tags the
tagger created are deleted once nothing uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tagger.errors import GraphQLError, StashError, StashReplyLostError
from tagger.stashside.stash import StashClient, StashScene
from tagger.writeback.journal import Action, Intent, Journal, JournalEntry
from tagger.writeback.plan import (
    MarkerState,
    Owned,
    ScenePlan,
    SceneState,
    owned_on_scene,
    tag_key,
)

TAG_DESCRIPTION = "Created by AI Tagger (stash-ai-tagger)."
"""The description of every tag the tagger creates: how it recognises its own tags."""

PARENT_DESCRIPTION = "Created by AI Tagger (stash-ai-tagger): the tags it creates are under this one."


def scene_state(scene: StashScene) -> SceneState:
    """What the planner compares against: the scene's tags, performers, studio and markers."""
    return SceneState(
        id=scene.id,
        tag_ids=scene.tag_ids,
        performer_ids=scene.performer_ids,
        studio_id=scene.studio_id,
        markers={
            m.id: MarkerState(m.title, m.seconds, m.end_seconds, m.primary_tag_id, m.tag_ids)
            for m in scene.markers
        },
    )


@dataclass
class Applied:
    """What applying one plan (or undoing one scene) did."""

    scene_id: str
    tags_added: list[str] = field(default_factory=list)
    tags_removed: list[str] = field(default_factory=list)
    performers_added: list[str] = field(default_factory=list)
    performers_removed: list[str] = field(default_factory=list)
    markers_created: int = 0
    markers_updated: int = 0
    markers_removed: int = 0
    studio: str | None = None
    studio_restored: bool = False
    tags_created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # undo: left alone because the user changed it

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value not in ([], 0, None, False)}


class Applier:
    """Applies plans and undoes them, for one run.

    Arguments:
        client: the Stash client.
        journal: the run's journal.
        tag_parent: name of the parent tag of every tag the tagger creates.
        log: (level, message).
    """

    def __init__(
        self,
        client: StashClient,
        journal: Journal,
        tag_parent: str,
        log: Callable[[str, str], None] = lambda *_: None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.tag_parent = tag_parent
        self.log = log
        self._tag_ids: dict[str, str | None] = {}
        self.created: list[str] = []  # names of the tags this applier created

    # ---- shared ----------------------------------------------------------------------------

    def _step(
        self, intents: Sequence[Intent], send: Callable[[], Sequence[str | None] | None]
    ) -> list[str | None]:
        """Journal ``intents``, run ``send`` (the mutation), confirm with the ids it returns.

        ``send`` returns one target per intent (None keeps the intended one) or None for all.
        Stash refusing the mutation marks the rows failed and re-raises; an unknown outcome
        (no answer) leaves them as intents for ``reconcile``. A lost answer is settled here by
        looking at Stash: applied -> confirmed with what Stash has (a created object adopted);
        not applied -> sent once more, unless Stash may still be applying it (a timeout), when
        sending again could make it twice: then the rows stay intents for ``reconcile``.
        """
        rows = self.journal.intend(intents)
        sent_again = False
        while True:
            try:
                targets = send()
            except GraphQLError as error:
                self.journal.fail(rows, str(error))
                raise
            except StashReplyLostError as lost:
                found = self._effect_in_stash(rows)
                if found is not None:
                    self.journal.confirm(found, note="answer lost; found applied in Stash")
                    self.log("debug", f"{lost.operation}: answer lost, found applied in Stash")
                    return [found[r] if found[r] is not None else i.target for r, i in zip(rows, intents)]
                if sent_again or lost.in_flight:
                    raise
                sent_again = True
                self.log("warning", f"{lost.operation}: answer lost and not applied; sending it once more")
                continue
            targets = list(targets) if targets is not None else [None] * len(rows)
            self.journal.confirm(dict(zip(rows, targets)))
            return [t if t is not None else i.target for t, i in zip(targets, intents)]

    def _effect_in_stash(self, rows: Sequence[int]) -> dict[int, str | None] | None:
        """After a lost answer: each row's target when Stash shows the whole step applied, else None.

        One step is one mutation, which Stash applies in one transaction: all of it or nothing.
        """
        wanted = set(rows)
        entries = [e for e in self.journal.pending() if e.id in wanted]
        current = self.client.find_scene(entries[0].scene_id) if entries[0].scene_id else None
        owned_markers, created = self._owned_objects()
        found: dict[int, str | None] = {}
        for entry in entries:
            applied, target = self._was_applied(entry, current, owned_markers, created)
            if not applied:
                return None
            found[entry.id] = target
        return found

    def _owned_objects(self) -> tuple[set[str], set[str]]:
        """Ids of the markers and tags confirmed as the tagger's creations (never adopted twice)."""
        markers = {e.target for e in self.journal.done(actions=(Action.CREATE_MARKER,)) if e.target}
        return markers, set(self.journal.created_tags())

    def _destroy_markers(self, scene_id: str, markers: Sequence[tuple[str, MarkerState]], why: str) -> None:
        """Destroy the tagger's markers (as they are now: ``state``), journaled, in one mutation."""
        intents = [Intent(Action.DESTROY_MARKER, scene_id, marker_id, {"state": state.to_dict()},
                          reason={"why": why}) for marker_id, state in markers]
        self._step(intents, lambda: self.client.destroy_markers([marker_id for marker_id, _ in markers]))

    def owned(self, scene_id: str) -> Owned:
        """What the tagger owns on a scene, per the journal."""
        return owned_on_scene(self.journal.done(scene_id=scene_id))

    # ---- tags ----------------------------------------------------------------------------

    def resolve_tags(self, names: Iterable[str]) -> dict[str, str]:
        """Existing tags for ``names`` by ``tag_key``: by name or alias (case-insensitive), else a
        tag the tagger created under that name and the user has renamed since."""
        created = {
            tag_key(str(e.payload.get("name", ""))): tid for tid, e in self.journal.created_tags().items()
        }
        for name in names:
            key = tag_key(name)
            if key in self._tag_ids:
                continue
            found = self.client.find_tags_named(name)
            exact = [t for t in found if tag_key(t.name) == key]
            if exact or found:
                self._tag_ids[key] = (exact or found)[0].id
            elif key in created and self.client.tag_usage(created[key]) is not None:
                self._tag_ids[key] = created[key]
            else:
                self._tag_ids[key] = None
        return {key: tid for key, tid in self._tag_ids.items() if tid is not None}

    def ensure_tags(self, names: Sequence[str]) -> dict[str, str]:
        """Ids for ``names``, creating the missing ones under the parent tag (created if needed)."""
        known = self.resolve_tags([*names, self.tag_parent])
        missing = [n for n in names if tag_key(n) not in known]
        if not missing:
            return known
        parent = known.get(tag_key(self.tag_parent))
        if parent is None and tag_key(self.tag_parent) not in {tag_key(n) for n in missing}:
            parent = self._create_tag(self.tag_parent, PARENT_DESCRIPTION, [])
            known[tag_key(self.tag_parent)] = parent
        for name in missing:
            if tag_key(name) not in known:
                known[tag_key(name)] = self._create_tag(name, TAG_DESCRIPTION, [parent] if parent else [])
        return known

    def _create_tag(self, name: str, description: str, parent_ids: list[str]) -> str:
        intent = Intent(Action.CREATE_TAG, payload={"name": name, "description": description})
        try:
            (tag_id,) = self._step([intent], lambda: [self.client.create_tag(name, description, parent_ids)])
        except GraphQLError:
            # Someone made it between our look-up and now: use theirs (it is not ours to delete).
            found = self.client.find_tags_named(name)
            if not found:
                raise
            tag_id = found[0].id
        else:
            self.created.append(name)
        assert tag_id is not None
        self._tag_ids[tag_key(name)] = tag_id
        self.log("debug", f"created tag {name!r} ({tag_id})")
        return tag_id

    def remove_queue_tag(self, scene_id: str, tag_id: str, name: str) -> None:
        """Take the queue tag off a scene that is done (it means "tag me", not a finding); journaled
        like every change, and never undone."""
        self._step([Intent(Action.REMOVE_QUEUE_TAG, scene_id, tag_id, {"name": name})],
                   lambda: self.client.change_scene_tags(scene_id, [tag_id], "REMOVE"))

    # ---- performers ------------------------------------------------------------------------

    def create_performer(self, name: str, image: str | None = None) -> str:
        """Create the performer the user named (kept by undo, so not journaled); returns its id.

        A lost answer is settled by name, which Stash keeps unique: found, it is adopted; not
        found, it is sent once more (unless Stash may still be applying it).
        """
        try:
            return self.client.create_performer(name, image)
        except StashReplyLostError as lost:
            found = self.client.find_performers_named(name)
            if found:
                self.log("debug", f"PerformerCreate: answer lost, {name!r} found in Stash ({found[0].id})")
                return found[0].id
            if lost.in_flight:
                raise
            self.log("warning", "PerformerCreate: answer lost and not applied; sending it once more")
            return self.client.create_performer(name, image)

    # ---- apply -----------------------------------------------------------------------------

    def apply(self, plan: ScenePlan, reason: dict[str, Any] | None = None) -> Applied:
        """Send every change of ``plan``, journaled. ``reason`` is added to each row's reason
        (e.g. that the user accepted a suggestion)."""
        extra = reason or {}
        done = Applied(plan.scene_id)
        created_before = len(self.created)
        ids = self.ensure_tags(plan.tags_to_create()) if plan.tags_to_create() else {}
        done.tags_created = self.created[created_before:]
        self._record_declines(plan)
        done.tags_added = self._add_tags(plan, ids, extra)
        done.tags_removed = self._remove_tags(plan)
        done.performers_added = self._add_performers(plan, extra)
        done.markers_created = self._create_markers(plan, ids, extra)
        done.markers_updated = self._update_markers(plan)
        done.markers_removed = self._remove_markers(plan)
        done.studio = self._set_studio(plan, extra)
        return done

    def _tag_id(self, name: str, known: str | None, ids: dict[str, str]) -> str:
        """The id of a planned tag: the plan's, else the one resolved or created for this plan."""
        tag_id = known or ids.get(tag_key(name)) or self._tag_ids.get(tag_key(name))
        if tag_id is None:
            raise StashError(f"tag {name!r} could not be found or created in Stash")
        return tag_id

    def _record_declines(self, plan: ScenePlan) -> None:
        """Journal what the user removed, so that it is never added again."""
        for decline in plan.declines:
            self.journal.record(
                Intent(
                    Action.DECLINE,
                    plan.scene_id,
                    payload={
                        "key": decline.key,
                        "what": decline.what,
                        "span": list(decline.span) if decline.span else None,
                    },
                )
            )
            self.log("info", f"scene {plan.scene_id}: the user removed {decline.what}; "
                             "it will not be added again")

    def _add_tags(self, plan: ScenePlan, ids: dict[str, str], extra: dict[str, Any]) -> list[str]:
        """Add the plan's tags in one mutation (each tag once); returns their names."""
        scene_id = plan.scene_id
        adds = [(change, self._tag_id(change.name, change.tag_id, ids)) for change in plan.add_tags]
        adds = list({tid: (c, tid) for c, tid in adds}.values())
        if not adds:
            return []
        intents = [
            Intent(
                Action.ADD_TAG,
                scene_id,
                tid,
                {"name": c.name, "source": c.source, **_flags(extra)},
                reason={**c.reason, **extra},
            )
            for c, tid in adds
        ]
        self._step(intents, lambda: self.client.change_scene_tags(scene_id, [t for _, t in adds], "ADD"))
        return [c.name for c, _ in adds]

    def _remove_tags(self, plan: ScenePlan) -> list[str]:
        """Take back the tagger's tags no longer found, in one mutation; returns their names."""
        scene_id = plan.scene_id
        removes = [(c, c.tag_id) for c in plan.remove_tags if c.tag_id]
        if not removes:
            return []
        intents = [
            Intent(Action.REMOVE_TAG, scene_id, tid, {"name": c.name}, reason={"why": "no longer found"})
            for c, tid in removes
        ]
        self._step(
            intents,
            lambda: self.client.change_scene_tags(scene_id, [str(t) for _, t in removes], "REMOVE"),
        )
        return [c.name for c, _ in removes]

    def _add_performers(self, plan: ScenePlan, extra: dict[str, Any]) -> list[str]:
        """Add the plan's performers in one mutation; returns their names."""
        scene_id = plan.scene_id
        people = plan.add_performers
        if not people:
            return []
        intents = [
            Intent(
                Action.ADD_PERFORMER,
                scene_id,
                p.performer_id,
                {"name": p.name, "source": p.source, **_flags(extra)},
                reason={**p.reason, **extra},
            )
            for p in people
        ]
        self._step(
            intents,
            lambda: self.client.change_scene_performers(scene_id, [p.performer_id for p in people], "ADD"),
        )
        return [p.name for p in people]

    def _create_markers(self, plan: ScenePlan, ids: dict[str, str], extra: dict[str, Any]) -> int:
        """Create the plan's markers, one mutation each (Stash has no bulk create); returns how many."""
        scene_id = plan.scene_id
        for marker in plan.create_markers:
            state = MarkerState(
                marker.title, marker.seconds, marker.end_seconds, self._tag_id(marker.tag, marker.tag_id, ids)
            )
            intent = Intent(
                Action.CREATE_MARKER,
                scene_id,
                payload={"state": state.to_dict(), "tag_name": marker.tag, "source": marker.source},
                reason={**marker.reason, **extra},
            )
            self._step(
                [intent],
                lambda s=state: [
                    self.client.create_marker(
                        scene_id, s.title, s.seconds, s.end_seconds, s.primary_tag_id, list(s.tag_ids)
                    )
                ],
            )
        return len(plan.create_markers)

    def _update_markers(self, plan: ScenePlan) -> int:
        """Move the tagger's markers whose span changed, one mutation each; returns how many."""
        for update in plan.update_markers:
            after = update.after
            intent = Intent(
                Action.UPDATE_MARKER,
                plan.scene_id,
                update.marker_id,
                {"state": after.to_dict()},
                before={"state": update.before.to_dict()},
                reason=dict(update.reason),
            )
            self._step(
                [intent],
                lambda m=update.marker_id, a=after: self.client.update_marker(
                    m, a.title, a.seconds, a.end_seconds
                ),
            )
        return len(plan.update_markers)

    def _remove_markers(self, plan: ScenePlan) -> int:
        """Destroy the tagger's markers no longer found, in one mutation; returns how many."""
        if plan.remove_markers:
            self._destroy_markers(plan.scene_id, [(m.marker_id, m.state) for m in plan.remove_markers],
                                  "no longer found")
        return len(plan.remove_markers)

    def _set_studio(self, plan: ScenePlan, extra: dict[str, Any]) -> str | None:
        """Set the plan's studio, if it has one; returns its name."""
        studio = plan.set_studio
        if studio is None:
            return None
        intent = Intent(
            Action.SET_STUDIO,
            plan.scene_id,
            studio.studio_id,
            {"name": studio.name, **_flags(extra)},
            before={"studio_id": studio.before, "previous": studio.previous},
            reason={**studio.reason, **extra},
        )
        self._step([intent], lambda: self.client.set_scene_studio(plan.scene_id, studio.studio_id))
        return studio.name

    # ---- crash recovery --------------------------------------------------------------------

    def reconcile(self) -> int:
        """Settle every intent left by a killed run, by looking at Stash. Returns how many.

        Call it holding the write lock: then no living process has intents in flight.
        """
        pending = self.journal.pending()
        if not pending:
            return 0
        scenes: dict[str, StashScene | None] = {}

        def scene(scene_id: str | None) -> StashScene | None:
            if scene_id is None:
                return None
            if scene_id not in scenes:
                scenes[scene_id] = self.client.find_scene(scene_id)
            return scenes[scene_id]

        owned_markers, created = self._owned_objects()
        for entry in pending:
            applied, target = self._was_applied(entry, scene(entry.scene_id), owned_markers, created)
            if applied:
                self.journal.confirm({entry.id: target}, note="settled after an interrupted run")
                if entry.action == Action.CREATE_MARKER and target:
                    owned_markers.add(target)
                if entry.action == Action.CREATE_TAG and target:
                    created.add(target)
            else:
                self.journal.fail([entry.id], "not applied (the run was interrupted before it was sent)")
        self.log("info", f"settled {len(pending)} change(s) left unconfirmed by an interrupted run")
        return len(pending)

    def _was_applied(
        self, entry: JournalEntry, current: StashScene | None, owned_markers: set[str], created: set[str]
    ) -> tuple[bool, str | None]:
        action, target, payload = entry.action, entry.target, entry.payload
        if action == Action.CREATE_TAG:
            for tag in self.client.find_tags_named(str(payload["name"])):
                if (
                    tag.name == payload["name"]
                    and tag.description == payload.get("description")
                    and tag.id not in created
                ):
                    return True, tag.id
            return False, None
        if action == Action.DELETE_TAG:
            return self.client.tag_usage(str(target)) is None, None
        if current is None:  # the scene is gone: nothing of it can be checked or undone
            return False, None
        if action == Action.ADD_TAG:
            return target in current.tag_ids, None
        if action in (Action.REMOVE_TAG, Action.REMOVE_QUEUE_TAG):
            return target not in current.tag_ids, None
        if action == Action.ADD_PERFORMER:
            return target in current.performer_ids, None
        if action == Action.REMOVE_PERFORMER:
            return target not in current.performer_ids, None
        markers = scene_state(current).markers
        if action == Action.CREATE_MARKER:
            wanted = MarkerState.from_dict(payload["state"])
            for marker_id, state in markers.items():
                if marker_id not in owned_markers and state.same_as(wanted):
                    return True, marker_id
            return False, None
        if action == Action.UPDATE_MARKER:
            state = markers.get(str(target))
            return state is not None and state.same_as(MarkerState.from_dict(payload["state"])), None
        if action == Action.DESTROY_MARKER:
            return str(target) not in markers, None
        if action == Action.SET_STUDIO:
            return current.studio_id == target, None
        if action == Action.RESTORE_STUDIO:
            return current.studio_id == payload.get("studio_id"), None
        return False, None

    # ---- undo ------------------------------------------------------------------------------

    def undo_scene(self, scene_id: str, run_id: str | None = None) -> Applied:
        """Take back what the tagger added to one scene (of one run, or all), where it is still as
        the tagger left it; what the user changed since stays, and is listed in ``kept``."""
        done = Applied(scene_id)
        current = self.client.find_scene(scene_id)
        if current is None:
            return done
        state = scene_state(current)
        owned = self.owned(scene_id)

        def in_scope(item_run: str) -> bool:
            return run_id is None or item_run == run_id

        markers = [m for m in owned.markers.values() if in_scope(m.run_id)]
        doomed = [
            m for m in markers if m.marker_id in state.markers and state.markers[m.marker_id].same_as(m.state)
        ]
        done.kept += [
            f"marker {state.markers[m.marker_id].title!r} at {state.markers[m.marker_id].seconds:g} s "
            f"(edited by you since the tagger made it as {m.state.title!r})"
            for m in markers
            if m.marker_id in state.markers and m not in doomed
        ]
        if doomed:
            self._destroy_markers(scene_id, [(m.marker_id, m.state) for m in doomed], "undo")
            done.markers_removed = len(doomed)
        tags = [t for t in owned.tags.values() if in_scope(t.run_id) and t.tag_id in state.tag_ids]
        done.kept += [f"tag {t.name!r} (accepted by you)" for t in tags if t.confirmed]
        tags = [t for t in tags if not t.confirmed]
        if tags:
            intents = [
                Intent(Action.REMOVE_TAG, scene_id, t.tag_id, {"name": t.name}, reason={"why": "undo"})
                for t in tags
            ]
            self._step(
                intents, lambda: self.client.change_scene_tags(scene_id, [t.tag_id for t in tags], "REMOVE")
            )
            done.tags_removed = [t.name for t in tags]
        people = [
            p for p in owned.performers.values() if in_scope(p.run_id) and p.tag_id in state.performer_ids
        ]
        done.kept += [f"performer {p.name!r} (confirmed by you)" for p in people if p.confirmed]
        people = [p for p in people if not p.confirmed]
        if people:
            intents = [
                Intent(Action.REMOVE_PERFORMER, scene_id, p.tag_id, {"name": p.name}, reason={"why": "undo"})
                for p in people
            ]
            self._step(
                intents,
                lambda: self.client.change_scene_performers(scene_id, [p.tag_id for p in people], "REMOVE"),
            )
            done.performers_removed = [p.name for p in people]
        studio = owned.studio
        if studio is not None and in_scope(studio.run_id):
            if state.studio_id != studio.studio_id:
                done.kept.append("studio (changed by you)")
            elif studio.confirmed:
                done.kept.append("studio (accepted by you)")
            else:
                # Undoing one run goes back to the studio just before its change (an earlier
                # run's, maybe); undoing everything goes back to the user's.
                target = studio.previous if run_id is not None else studio.before
                intent = Intent(
                    Action.RESTORE_STUDIO, scene_id, studio.studio_id, {"studio_id": target},
                    reason={"why": "undo"},
                )
                self._step([intent], lambda: self.client.set_scene_studio(scene_id, target))
                done.studio_restored = True
        return done

    def delete_unused_tags(self) -> list[str]:
        """Delete the tags the tagger created that nothing uses any more and the user has not
        renamed or re-described; tags under others first, so the parent tag can go last."""
        deleted: list[str] = []
        created = self.journal.created_tags()
        # Children before parents: the parent tag was created first, so newest first works.
        for tag_id, entry in sorted(created.items(), key=lambda item: -item[1].id):
            usage = self.client.tag_usage(tag_id)
            name = str(entry.payload.get("name", ""))
            if usage is None:
                self.journal.record(
                    Intent(Action.DELETE_TAG, target=tag_id, payload={"name": name}),
                    note="already deleted in Stash",
                )
                continue
            if usage.name != name or usage.description != entry.payload.get("description"):
                continue  # renamed or re-described: the user has made it theirs
            if usage.uses or usage.children:
                continue
            intent = Intent(Action.DELETE_TAG, target=tag_id, payload={"name": name})
            self._step([intent], lambda t=tag_id: self.client.destroy_tag(t))
            self._tag_ids.pop(tag_key(name), None)
            deleted.append(name)
        return deleted


def _flags(extra: dict[str, Any]) -> dict[str, Any]:
    """Ownership flags kept in a row's payload (the fold reads them): ``confirmed``."""
    return {"confirmed": True} if extra.get("confirmed") else {}
