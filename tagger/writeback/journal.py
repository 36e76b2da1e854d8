"""The journal: every change the tagger makes to Stash, recorded before and after it is sent.

Each change is one row that moves through

    intent  ->  done     the mutation succeeded; ``target`` holds the id Stash returned
            ->  failed   it was not applied (Stash refused it, or reconciliation found it absent)

The intents of one step are written in one transaction before the mutation is sent, and
confirmed in one transaction after the answer. A SIGKILL can therefore leave at most one step's
intents unsettled, and ``tagger.writeback.apply.Applier.reconcile`` settles them by looking at Stash
before anything else is planned. What the tagger owns on a scene is a fold over its ``done``
rows (``tagger.writeback.plan.owned_on_scene``): the journal is the only record of ownership.

Standard library only; the rows live in the tagger's store (``tagger.stashside.store``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagger.redact import redact
from tagger.stashside.store import Store


class Action:
    """What a journal row did (or means to do)."""

    CREATE_TAG = "create_tag"  # target: the new tag's id; payload: name, description
    DELETE_TAG = "delete_tag"  # a tag the tagger created, deleted by undo
    ADD_TAG = "add_tag"  # scene + target tag id
    REMOVE_TAG = "remove_tag"  # taken back (re-run no longer finds it, or undo)
    ADD_PERFORMER = "add_performer"
    REMOVE_PERFORMER = "remove_performer"
    CREATE_MARKER = "create_marker"  # payload: state (MarkerState), tag_name, source
    UPDATE_MARKER = "update_marker"  # payload: state after; before: state before
    DESTROY_MARKER = "destroy_marker"
    SET_STUDIO = "set_studio"  # before: {"studio_id": the scene's studio before}
    RESTORE_STUDIO = "restore_studio"  # undo: back to ``before``
    DECLINE = "decline"  # the user removed what the tagger added: never again
    REMOVE_QUEUE_TAG = "remove_queue_tag"  # the queue tag taken off a tagged scene (not undone)


@dataclass(frozen=True)
class JournalEntry:
    """One row of the journal."""

    id: int
    run_id: str
    scene_id: str | None
    action: str
    target: str | None
    payload: Mapping[str, Any]
    before: Mapping[str, Any] | None
    reason: Mapping[str, Any] | None
    status: str
    created_at: float


@dataclass(frozen=True)
class Intent:
    """A change about to be sent (``target`` is known for all but creations)."""

    action: str
    scene_id: str | None = None
    target: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] | None = None
    reason: Mapping[str, Any] | None = None


_COLUMNS = "id, run_id, scene_id, action, target, payload, before, reason, status, created_at"


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        id=row[0],
        run_id=row[1],
        scene_id=row[2],
        action=row[3],
        target=row[4],
        payload=json.loads(row[5]),
        before=json.loads(row[6]) if row[6] else None,
        reason=json.loads(row[7]) if row[7] else None,
        status=row[8],
        created_at=row[9],
    )


def _dump(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), sort_keys=True, default=str)


class Journal:
    """The journal of one store, written by one run (``run_id``)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def intend(self, intents: Iterable[Intent]) -> list[int]:
        """Record changes about to be sent, all in one transaction; returns their row ids."""
        now = time.time()
        ids = []
        with self.store.transaction() as db:
            for intent in intents:
                ids.append(self._insert(db, intent, "intent", now))
        return ids

    def confirm(self, targets: Mapping[int, str | None], note: str | None = None) -> None:
        """Mark rows done, with the ids Stash returned (None keeps the intended target)."""
        self._settle({row: (target, "done") for row, target in targets.items()}, note)

    def fail(self, rows: Iterable[int], note: str) -> None:
        """Mark rows failed: not applied."""
        self._settle({row: (None, "failed") for row in rows}, note)

    def _settle(self, rows: Mapping[int, tuple[str | None, str]], note: str | None) -> None:
        now = time.time()
        with self.store.transaction() as db:
            for row, (target, status) in rows.items():
                db.execute(
                    "UPDATE journal SET status = ?, target = COALESCE(?, target), settled_at = ?, "
                    "note = COALESCE(?, note) WHERE id = ?",
                    (status, target, now, redact(note) if note else note, row),
                )

    def record(self, intent: Intent, note: str | None = None) -> int:
        """A row that needs no mutation (a decline), or one already applied: written done at once."""
        with self.store.transaction() as db:
            return self._insert(db, intent, "done", time.time(), note)

    def _insert(self, db: Any, intent: Intent, status: str, now: float, note: str | None = None) -> int:
        settled = now if status != "intent" else None
        cursor = db.execute(
            "INSERT INTO journal (run_id, scene_id, action, target, payload, before, reason, status, "
            "created_at, settled_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, intent.scene_id, intent.action, intent.target, _dump(intent.payload) or "{}",
             _dump(intent.before), _dump(intent.reason), status, now, settled,
             redact(note) if note else note),
        )
        return int(cursor.lastrowid or 0)

    def pending(self) -> list[JournalEntry]:
        """Rows still at ``intent`` (a killed run's last step), oldest first."""
        rows = self.store.db.execute(f"SELECT {_COLUMNS} FROM journal WHERE status = 'intent' ORDER BY id")
        return [_entry(row) for row in rows]

    def done(
        self, *, scene_id: str | None = None, run_id: str | None = None, actions: Iterable[str] | None = None
    ) -> list[JournalEntry]:
        """Confirmed rows, oldest first, optionally of one scene, run or set of actions."""
        where, params = ["status = 'done'"], []
        if scene_id is not None:
            where.append("scene_id = ?")
            params.append(str(scene_id))
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if actions is not None:
            chosen = list(actions)
            where.append(f"action IN ({', '.join('?' * len(chosen))})")
            params.extend(chosen)
        rows = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE {' AND '.join(where)} ORDER BY id", params
        )
        return [_entry(row) for row in rows]

    def scenes(self, run_id: str | None = None) -> list[str]:
        """Scenes with confirmed changes (of one run), in order of their first change."""
        query = "SELECT scene_id, MIN(id) FROM journal WHERE status = 'done' AND scene_id IS NOT NULL"
        params: list[str] = []
        if run_id is not None:
            query += " AND run_id = ?"
            params.append(run_id)
        rows = self.store.db.execute(query + " GROUP BY scene_id ORDER BY MIN(id)", params)
        return [row[0] for row in rows]

    def created_tags(self) -> dict[str, JournalEntry]:
        """Tags the tagger created and has not deleted, by tag id."""
        created: dict[str, JournalEntry] = {}
        for entry in self.done(actions=(Action.CREATE_TAG, Action.DELETE_TAG)):
            if entry.action == Action.CREATE_TAG and entry.target:
                created[entry.target] = entry
            elif entry.target:
                created.pop(entry.target, None)
        return created
