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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.detections import Detection
from tagger.store import use_wal

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
class PassRecord:
    """What one decode pass established, independent of the analyzers."""

    duration: float
    fps: float
    frames_analysed: int
    sample_times: list[float]
    shots: list[tuple[float, float]]
    technical: list[tuple[str, float, float]]
    warnings: list[str]
    frame_size: tuple[int, int] | None = None


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
