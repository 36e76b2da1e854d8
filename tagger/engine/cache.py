"""The analysis cache: what a decode pass and each analyzer found, per file and model version.

Decisions (thresholds, tag rules, studio matching) are re-run from cached detections, so changing a
setting never re-decodes a video; a changed model re-runs only that analyzer. Entries are keyed by
the file's fingerprint (Stash's oshash when known, else the same oshash computed here: file size
plus the 64-bit sums of its first and last 64 KiB) and by the sampling parameters that decide
which frames were seen. SQLite, one transaction per write: a kill leaves the last whole entry.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagger.detections import Detection
from tagger.stashside.store import use_wal

if TYPE_CHECKING:
    from tagger.engine.one_pass import StopCause

OSHASH_CHUNK = 64 * 1024
"""Bytes hashed at each end of the file (the OpenSubtitles hash Stash calls oshash)."""

LOCK_WAIT_S = 30.0
"""How long a cache write waits for another process's (several Ray workers on one machine share
the file; each write is one short transaction)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS passes (
        fingerprint TEXT NOT NULL, params TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (fingerprint, params))""",
    """CREATE TABLE IF NOT EXISTS detections (
        fingerprint TEXT NOT NULL, params TEXT NOT NULL, analyzer TEXT NOT NULL,
        version TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL, embeddings BLOB,
        PRIMARY KEY (fingerprint, params, analyzer))""",
    # Pruning finds stale settings and model versions in these, not by reading every entry.
    "CREATE INDEX IF NOT EXISTS passes_by_params ON passes (params)",
    "CREATE INDEX IF NOT EXISTS detections_by_params ON detections (params, analyzer, version)",
)


def oshash(path: Path) -> str:
    """Stash's oshash of a local file (16 hex digits)."""
    size = path.stat().st_size
    total = size
    with path.open("rb") as handle:
        head = handle.read(OSHASH_CHUNK)
        handle.seek(max(0, size - OSHASH_CHUNK))
        tail = handle.read(OSHASH_CHUNK)
    for chunk in (head, tail):
        usable = len(chunk) - len(chunk) % 8
        for (value,) in struct.iter_unpack("<Q", chunk[:usable]):
            total = (total + value) & 0xFFFFFFFFFFFFFFFF
    return f"{total:016x}"


@dataclass(frozen=True)
class Freed:
    """What a prune took out of the cache."""

    passes: int = 0
    detections: int = 0
    bytes: int = 0
    """Space freed: pages SQLite reuses for later entries or, after ``vacuum``, the file's shrink."""

    @property
    def rows(self) -> int:
        return self.passes + self.detections

    def __add__(self, other: Freed) -> Freed:
        return Freed(self.passes + other.passes, self.detections + other.detections, self.bytes + other.bytes)

    def to_dict(self) -> dict[str, int]:
        return {"passes": self.passes, "detections": self.detections, "bytes": self.bytes}


@dataclass(frozen=True)
class PassRecord:
    """What one decode pass established, independent of the analyzers.

    ``duration`` is the video's, as probed; the pass saw it up to ``end``. A pass that ``stopped``
    early (``tagger.engine.one_pass.StopCause``) is cached as such: see ``tagger.engine.engine.pass_stands``.
    """

    duration: float
    fps: float
    frames_analysed: int
    sample_times: list[float]
    shots: list[tuple[float, float]]
    technical: list[tuple[str, float, float]]
    warnings: list[str]
    frame_size: tuple[int, int] | None = None
    analysed_end: float | None = None
    """Where the analysed part ends (seconds); None: at ``duration``."""
    stopped: StopCause | None = None
    """Why the pass ended before the end of the video; None: it read the whole video."""
    file_size: int | None = None
    """A truncated local file's size in bytes: the same file ends at the same point again."""

    @property
    def complete(self) -> bool:
        """Whether the pass read the whole video."""
        return self.stopped is None

    @property
    def end(self) -> float:
        """Where the analysed part ends (seconds)."""
        return self.duration if self.analysed_end is None else self.analysed_end


LEGACY_STOP_WARNINGS = ("stopped after ", "decoding stopped at ")
"""How ``DecodeReport.warnings`` began for a pass cut by its budget or a break, in rows cached
before ``PassRecord.stopped`` existed."""


def _legacy_stopped(warnings: list[str]) -> StopCause | None:
    """A row cached without ``stopped``: an early end shows in its warnings (then it is analysed
    again, as the cause is not known); otherwise the pass was whole."""
    return "interrupted" if any(w.startswith(LEGACY_STOP_WARNINGS) for w in warnings) else None


class AnalysisCache:
    """Cached passes and detections in ``<data>/cache.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
        use_wal(self._db, LOCK_WAIT_S)
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def get_pass(self, fingerprint: str, params: str) -> PassRecord | None:
        row = self._db.execute("SELECT body FROM passes WHERE fingerprint = ? AND params = ?",
                               (fingerprint, params)).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        body["shots"] = [tuple(s) for s in body["shots"]]
        body["technical"] = [tuple(t) for t in body["technical"]]
        body["frame_size"] = tuple(body["frame_size"]) if body.get("frame_size") else None
        if "stopped" not in body:
            body["stopped"] = _legacy_stopped(body["warnings"])
        return PassRecord(**body)

    def put_pass(self, fingerprint: str, params: str, record: PassRecord) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO passes VALUES (?, ?, ?, ?)",
                             (fingerprint, params, time.time(), json.dumps(asdict(record))))

    def get_detections(self, fingerprint: str, params: str, analyzer: str,
                       version: str) -> list[Detection] | None:
        """Cached detections of ``analyzer`` at ``version``, or None (never run, or other version)."""
        row = self._db.execute(
            "SELECT body, embeddings FROM detections WHERE fingerprint = ? AND params = ? "
            "AND analyzer = ? AND version = ?", (fingerprint, params, analyzer, version)).fetchone()
        return None if row is None else _decode(row[0], row[1])

    def put_detections(self, fingerprint: str, params: str, analyzer: str, version: str,
                       detections: Iterable[Detection]) -> None:
        body, blob = _encode(list(detections))
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO detections VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (fingerprint, params, analyzer, version, time.time(), body, blob))

    def prune_stale(self, params: Collection[str], versions: Mapping[str, str]) -> Freed:
        """Remove what no lookup with these settings can read: passes and detections sampled with
        parameters not in ``params``, detections made by another version of an analyzer than
        ``versions`` names, and detections of analyzers it does not name at all.

        Cheap: the indexes find the stale keys; only stale rows are read.
        """
        keep = {params} if isinstance(params, str) else set(params)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            free_before = self._free_bytes()
            passes = detections = 0
            for (stale,) in self._db.execute("SELECT DISTINCT params FROM passes").fetchall():
                if stale not in keep:
                    passes += self._db.execute("DELETE FROM passes WHERE params = ?", (stale,)).rowcount
            for (stale,) in self._db.execute("SELECT DISTINCT params FROM detections").fetchall():
                if stale not in keep:
                    detections += self._db.execute("DELETE FROM detections WHERE params = ?",
                                                   (stale,)).rowcount
            names = ", ".join("?" * len(versions))
            for kept in keep:
                for analyzer, version in versions.items():
                    # "<> ?" would read every row of the analyzer; two ranges stay in the index.
                    detections += self._db.execute(
                        "DELETE FROM detections WHERE params = ? AND analyzer = ? "
                        "AND (version < ? OR version > ?)", (kept, analyzer, version, version)).rowcount
                detections += self._db.execute(
                    f"DELETE FROM detections WHERE params = ? AND analyzer NOT IN ({names})",
                    (kept, *versions)).rowcount
            return Freed(passes, detections, self._free_bytes() - free_before)

    def fingerprints(self) -> set[str]:
        """The files (fingerprints) the cache holds anything for."""
        rows = self._db.execute("SELECT fingerprint FROM passes UNION SELECT fingerprint FROM detections")
        return {row[0] for row in rows}

    def prune_files(self, keep: Collection[str]) -> Freed:
        """Remove every entry of the files whose fingerprint is not in ``keep``."""
        gone = [(key,) for key in sorted(self.fingerprints() - set(keep))]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            free_before = self._free_bytes()
            passes = self._db.executemany("DELETE FROM passes WHERE fingerprint = ?", gone).rowcount
            detections = self._db.executemany("DELETE FROM detections WHERE fingerprint = ?", gone).rowcount
            return Freed(passes, detections, self._free_bytes() - free_before)

    def vacuum(self) -> int:
        """Rewrite the file without its free pages; returns the bytes given back to the disk."""
        before = self.disk_bytes()
        self._db.execute("VACUUM")
        # VACUUM goes through the write-ahead log: only a checkpoint shrinks the file and the log.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return max(0, before - self.disk_bytes())

    def disk_bytes(self) -> int:
        """The cache's size on disk: the database file and its write-ahead log."""
        path = Path(self._db.execute("PRAGMA database_list").fetchone()[2])
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def _free_bytes(self) -> int:
        pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages) * int(self._db.execute("PRAGMA page_size").fetchone()[0])


def _encode(detections: list[Detection]) -> tuple[str, bytes | None]:
    rows: list[dict[str, Any]] = []
    vectors = []
    for detection in detections:
        row: dict[str, Any] = {"t": detection.time, "k": detection.kind, "l": detection.label,
                               "s": detection.score, "b": detection.box,
                               "d": dict(detection.details) if detection.details else None}
        if detection.embedding is not None:
            row["e"] = len(vectors)
            vectors.append(np.asarray(detection.embedding, dtype=np.float32))
        rows.append(row)
    blob = np.stack(vectors).tobytes() if vectors else None
    width = int(vectors[0].shape[0]) if vectors else 0
    return json.dumps({"width": width, "rows": rows}), blob


def _decode(body: str, blob: bytes | None) -> list[Detection]:
    data = json.loads(body)
    vectors = (np.frombuffer(blob, dtype=np.float32).reshape(-1, data["width"])
               if blob else np.zeros((0, 0), dtype=np.float32))
    return [
        Detection(time=row["t"], kind=row["k"], label=row["l"], score=row["s"],
                  box=tuple(row["b"]) if row["b"] is not None else None,
                  embedding=vectors[row["e"]].copy() if "e" in row else None, details=row["d"])
        for row in data["rows"]
    ]
