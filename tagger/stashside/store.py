"""The tagger's own state, in SQLite in its data folder: the queue of scenes to tag, which scenes
were processed (and with which file), the runs, the journal of every change made to Stash
(``tagger.writeback.journal``), the review queue (``tagger.writeback.review``), the performer face
gallery and the unknown faces (``tagger.faces.gallery``).

SQLite's transactions make every write all-or-nothing, so a SIGKILL at any instant leaves the last
committed state; WAL mode lets the hook add to the queue while a task reads it. Standard library
only (the hook uses it).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tagger.redact import redact

SCHEMA_VERSION = 4
"""Bumped with every change of the tables below (older stores gain new tables on open)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    scene_id TEXT PRIMARY KEY,
    added_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed (
    scene_id TEXT PRIMARY KEY,
    fingerprint TEXT,
    run_id TEXT NOT NULL,
    finished_at REAL NOT NULL,
    status TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    scene_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    payload TEXT NOT NULL,
    before TEXT,
    reason TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    settled_at REAL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS journal_scene ON journal (scene_id, status);
CREATE INDEX IF NOT EXISTS journal_status ON journal (status);
CREATE TABLE IF NOT EXISTS suggestions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scene_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    score REAL NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT,
    created_at REAL NOT NULL,
    decided_at REAL,
    UNIQUE (scene_id, key)
);
CREATE INDEX IF NOT EXISTS suggestions_status ON suggestions (status, scene_id);
CREATE TABLE IF NOT EXISTS gallery (
    performer_id TEXT NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    quality REAL NOT NULL,
    embedding BLOB NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (performer_id, source, model)
);
CREATE TABLE IF NOT EXISTS gallery_performers (
    performer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    image_stamp TEXT,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS unknown_faces (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    quality REAL NOT NULL,
    embedding BLOB NOT NULL,
    best_time REAL NOT NULL,
    appearances INTEGER NOT NULL,
    cluster_id INTEGER,
    added_at REAL NOT NULL,
    PRIMARY KEY (key, model)
);
CREATE INDEX IF NOT EXISTS unknown_scene ON unknown_faces (scene_id);
CREATE TABLE IF NOT EXISTS failures (
    scene_id TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    count INTEGER NOT NULL,
    detail TEXT,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class QueuedScene:
    scene_id: str
    added_at: float
    reason: str


def use_wal(db: sqlite3.Connection, wait_s: float) -> None:
    """Switch ``db`` to WAL (readers never block the one writer), waiting for other processes.

    Turning a new file into WAL needs an exclusive lock, and SQLite does not wait for that one (the
    busy timeout does not apply): two processes opening a fresh file at once (two Ray workers and the
    analysis cache; the first hook and a task and the store) saw "database is locked" in about one
    start in three. Once the file is in WAL mode the pragma is a no-op.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """Open (and create or migrate) the store at ``path``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        use_wal(self._db, 30.0)
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self.transaction():
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)
            # Version 1 stores lacked the journal and suggestions: CREATE IF NOT EXISTS adds them.
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the modules that keep their tables here (journal, review)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Small settings and flags --------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def claim(self, key: str, now: float, stale_after_s: float) -> bool:
        """Test-and-set a flag in one transaction: True for the one caller that set it (it was
        unset, or set longer ago than ``stale_after_s``), False for everyone else."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row and row[0] and now - float(row[0]) < stale_after_s:
                return False
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, repr(now)))
            return True

    # The queue -------------------------------------------------------------------------------
    def enqueue(self, scene_ids: list[str], reason: str) -> int:
        """Add scenes to the queue (a scene already queued keeps its place); returns how many were new."""
        now = time.time()
        with self.transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO queue VALUES (?, ?, ?)",
                           [(str(scene_id), now, reason) for scene_id in scene_ids])
            return db.total_changes - before

    def queued(self) -> list[QueuedScene]:
        """The queue, oldest first."""
        rows = self._db.execute("SELECT scene_id, added_at, reason FROM queue "
                                "ORDER BY added_at, CAST(scene_id AS INTEGER)").fetchall()
        return [QueuedScene(*row) for row in rows]

    def dequeue(self, scene_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM queue WHERE scene_id = ?", (str(scene_id),))

    # What was processed ----------------------------------------------------------------------
    def mark_processed(self, scene_id: str, run_id: str, status: str, *, fingerprint: str | None = None,
                       detail: str | None = None) -> None:
        """Record the outcome for a scene and take it off the queue, in one transaction."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?, ?)",
                       (str(scene_id), fingerprint, run_id, time.time(), status,
                        redact(detail) if detail else detail))
            db.execute("DELETE FROM queue WHERE scene_id = ?", (str(scene_id),))

    def forget_processed(self, scene_ids: list[str]) -> None:
        """Scenes an undo restored count as never processed (``untagged`` tags them again)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM processed WHERE scene_id = ?", [(str(i),) for i in scene_ids])

    def processed_ids(self, status: str = "done") -> set[str]:
        rows = self._db.execute("SELECT scene_id FROM processed WHERE status = ?", (status,))
        return {row[0] for row in rows}

    # Scenes that keep failing ------------------------------------------------------------------
    def count_failure(self, scene_id: str, file: str, detail: str) -> int:
        """Count one more failure of a scene with ``file`` (its identity as Stash reports it; a
        different file starts again at 1) and return the count."""
        with self.transaction() as db:
            row = db.execute("SELECT file, count FROM failures WHERE scene_id = ?",
                             (str(scene_id),)).fetchone()
            count = row[1] + 1 if row and row[0] == file else 1
            db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                       (str(scene_id), file, count, redact(detail), time.time()))
            return count

    def failures(self, scene_id: str, file: str) -> tuple[int, str | None]:
        """How often the scene failed with this ``file`` in a row, and the last error."""
        row = self._db.execute("SELECT count, detail FROM failures WHERE scene_id = ? AND file = ?",
                               (str(scene_id), file)).fetchone()
        return (int(row[0]), row[1]) if row else (0, None)

    def clear_failures(self, scene_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM failures WHERE scene_id = ?", (str(scene_id),))

    # Runs --------------------------------------------------------------------------------------
    def start_run(self, mode: str) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self.transaction() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, NULL, 'running')", (run_id, mode, time.time()))
        return run_id

    @contextmanager
    def recorded_run(self, mode: str) -> Iterator[str]:
        """A run's record around its work: ``done`` when the block ends, ``failed`` when an error
        leaves it (a kill leaves ``running``: nothing can write then, and the next run goes on)."""
        run_id = self.start_run(mode)
        status = "failed"
        try:
            yield run_id
            status = "done"
        finally:
            self.finish_run(run_id, status)

    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                       (time.time(), status, run_id))
