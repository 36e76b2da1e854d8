"""The review queue: findings below the auto-apply bar, waiting for the user to accept or reject.

Each suggestion is keyed per scene (``tag:<name>``, ``studio:<id>``, ``performer:<id>``), so a
re-run refreshes a pending suggestion instead of adding a second one, and a rejected key is never
offered again for that scene. Accepting applies the suggestion through the same journaled path as
any change (``tagger.writeback.apply``), marked as confirmed by the user: undo leaves it in place.

The UI reaches this through ``runPluginOperation`` (synchronous): ``mode: review`` with
``action`` ``list`` (``scene_id``, ``status``, ``page``, ``per_page``), ``accept`` or ``reject``
(``id``). Standard library only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagger.errors import ConfigError
from tagger.stashside.store import Store
from tagger.writeback.plan import Suggestion

STATUSES = ("pending", "accepted", "rejected")

LIBRARY = "*"
"""The scene id of suggestions about the whole library (unknown people seen in several scenes)."""


@dataclass(frozen=True)
class StoredSuggestion:
    id: int
    scene_id: str
    key: str
    kind: str
    title: str
    score: float
    payload: dict[str, Any]
    status: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scene_id": self.scene_id,
            "key": self.key,
            "kind": self.kind,
            "title": self.title,
            "score": self.score,
            "payload": self.payload,
            "status": self.status,
            "created_at": round(self.created_at, 3),
        }


_COLUMNS = "id, scene_id, key, kind, title, score, payload, status, created_at"


def _row(row: tuple[Any, ...]) -> StoredSuggestion:
    return StoredSuggestion(
        id=row[0],
        scene_id=row[1],
        key=row[2],
        kind=row[3],
        title=row[4],
        score=row[5],
        payload=json.loads(row[6]),
        status=row[7],
        created_at=row[8],
    )


class ReviewQueue:
    """The suggestions in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def offer(self, scene_id: str, suggestions: Sequence[Suggestion], run_id: str) -> int:
        """A scene's suggestions from its latest plan: pending ones are refreshed or added,
        pending ones the plan no longer makes are dropped, decided ones stay as they are.
        Returns how many are pending for the scene."""
        now = time.time()
        keys = [s.key for s in suggestions]
        with self.store.transaction() as db:
            for suggestion in suggestions:
                db.execute(
                    "INSERT INTO suggestions (scene_id, key, kind, title, score, payload, status, run_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (scene_id, key) DO "
                    "UPDATE SET title = excluded.title, score = excluded.score, payload = excluded.payload, "
                    "run_id = excluded.run_id WHERE status = 'pending'",
                    (
                        str(scene_id),
                        suggestion.key,
                        suggestion.kind,
                        suggestion.title,
                        suggestion.score,
                        json.dumps(dict(suggestion.payload), sort_keys=True),
                        run_id,
                        now,
                    ),
                )
            placeholders = ", ".join("?" * len(keys))
            db.execute(
                f"DELETE FROM suggestions WHERE scene_id = ? AND status = 'pending'"
                f"{f' AND key NOT IN ({placeholders})' if keys else ''}",
                (str(scene_id), *keys),
            )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM suggestions WHERE scene_id = ? AND status = 'pending'", (str(scene_id),)
            ).fetchone()
        return int(count)

    def decided_keys(self, scene_id: str) -> frozenset[str]:
        """Keys the user accepted or rejected for the scene: never offered again."""
        rows = self.store.db.execute(
            "SELECT key FROM suggestions WHERE scene_id = ? AND status != 'pending'", (str(scene_id),)
        )
        return frozenset(row[0] for row in rows)

    def list(
        self, *, scene_id: str | None = None, status: str = "pending", page: int = 1, per_page: int = 25
    ) -> tuple[int, list[StoredSuggestion]]:
        """One page of suggestions (newest scene first is not meaningful: by scene, then score)."""
        if status not in STATUSES:
            raise ConfigError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        where, params = "status = ?", [status]
        if scene_id is not None:
            where += " AND scene_id = ?"
            params.append(str(scene_id))
        (count,) = self.store.db.execute(f"SELECT COUNT(*) FROM suggestions WHERE {where}", params).fetchone()
        rows = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM suggestions WHERE {where} "
            "ORDER BY CAST(scene_id AS INTEGER), score DESC, id LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        return int(count), [_row(row) for row in rows]

    def get(self, suggestion_id: int) -> StoredSuggestion | None:
        row = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM suggestions WHERE id = ?", (int(suggestion_id),)
        ).fetchone()
        return _row(row) if row else None

    def decide(self, suggestion_id: int, status: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE suggestions SET status = ?, decided_at = ? WHERE id = ?",
                (status, time.time(), int(suggestion_id)),
            )

    def pending_count(self) -> int:
        (count,) = self.store.db.execute(
            "SELECT COUNT(*) FROM suggestions WHERE status = 'pending'"
        ).fetchone()
        return int(count)
