"""In-memory data behind the test Stash server.

Records are plain dicts keyed by int ids (GraphQL ids are strings; the resolvers convert).
Every access from the HTTP server happens under ``State.lock`` (an ``RLock``), so the
seeding helpers below can be called from tests while the server is running.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

Record = dict[str, Any]
"""One stored object (scene, tag, performer, studio, marker, job)."""

OperationHandler = Callable[[dict[str, Any]], Any]
"""A test-provided callable answering ``runPluginOperation`` for one plugin id."""


def now_iso() -> str:
    """Return the current UTC time in the RFC 3339 form Stash sends."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class State:
    """Everything the fake Stash knows: library objects, configuration and jobs."""

    def __init__(self) -> None:
        """Create an empty library with no credentials and no plugin configuration."""
        self.lock = threading.RLock()
        self.scenes: dict[int, Record] = {}
        self.tags: dict[int, Record] = {}
        self.performers: dict[int, Record] = {}
        self.studios: dict[int, Record] = {}
        self.markers: dict[int, Record] = {}
        self.jobs: dict[int, Record] = {}
        self.plugin_config: dict[str, dict[str, Any]] = {}
        self.general: Record = {"apiKey": "", "stashes": []}
        self.operation_handlers: dict[str, OperationHandler] = {}
        self.operations: list[Record] = []
        self._next_id: dict[str, int] = {}

    def next_id(self, kind: str) -> int:
        """Return the next id for ``kind`` (ids start at 1, as SQLite rowids do)."""
        with self.lock:
            value = self._next_id.get(kind, 0) + 1
            self._next_id[kind] = value
            return value

    # ---- seeding helpers -------------------------------------------------------------

    def add_scene(
        self,
        title: str | None = None,
        *,
        path: str | None = None,
        files: list[Record] | None = None,
        tag_ids: list[int] | None = None,
        performer_ids: list[int] | None = None,
        studio_id: int | None = None,
        organized: bool = False,
        details: str | None = None,
    ) -> int:
        """Add a scene; ``path`` is shorthand for one file with default media fields.

        Returns:
            The new scene id.
        """
        raw_files = files if files is not None else ([{"path": path}] if path else [])
        with self.lock:
            sid = self.next_id("scene")
            stamp = now_iso()
            self.scenes[sid] = {
                "id": sid, "title": title, "details": details, "organized": organized,
                "files": [self._make_file(f) for f in raw_files],
                "tag_ids": list(tag_ids or []), "performer_ids": list(performer_ids or []),
                "studio_id": studio_id, "created_at": stamp, "updated_at": stamp,
            }
            return sid

    def _make_file(self, spec: Record) -> Record:
        """Fill a video file record from a partial spec (only ``path`` is required)."""
        path = str(spec["path"])
        size = spec.get("size")
        if size is None:
            size = os.path.getsize(path) if os.path.isfile(path) else 0
        return {
            "id": self.next_id("file"), "path": path, "basename": os.path.basename(path),
            "size": size, "duration": float(spec.get("duration", 60.0)),
            "frame_rate": float(spec.get("frame_rate", 30.0)),
            "width": int(spec.get("width", 1280)), "height": int(spec.get("height", 720)),
            "video_codec": spec.get("video_codec", "h264"),
            "audio_codec": spec.get("audio_codec", "aac"),
            "format": spec.get("format", "mp4"), "bit_rate": int(spec.get("bit_rate", 0)),
            "fingerprints": {k: v for k, v in (("oshash", spec.get("oshash")),
                                               ("phash", spec.get("phash")),
                                               ("md5", spec.get("md5"))) if v},
            "mod_time": now_iso(), "created_at": now_iso(), "updated_at": now_iso(),
        }

    def add_tag(
        self,
        name: str,
        *,
        aliases: list[str] | None = None,
        description: str | None = None,
        parent_ids: list[int] | None = None,
        ignore_auto_tag: bool = False,
    ) -> int:
        """Add a tag without the uniqueness checks of ``tagCreate`` (tests may seed anything)."""
        with self.lock:
            tid = self.next_id("tag")
            stamp = now_iso()
            self.tags[tid] = {
                "id": tid, "name": name, "aliases": list(aliases or []),
                "description": description, "parent_ids": list(parent_ids or []),
                "ignore_auto_tag": ignore_auto_tag, "favorite": False, "sort_name": None,
                "created_at": stamp, "updated_at": stamp,
            }
            return tid

    def add_performer(
        self,
        name: str,
        *,
        disambiguation: str | None = None,
        alias_list: list[str] | None = None,
        image: str | None = None,
    ) -> int:
        """Add a performer; ``image`` is a local image file path served by the server."""
        with self.lock:
            pid = self.next_id("performer")
            stamp = now_iso()
            self.performers[pid] = {
                "id": pid, "name": name, "disambiguation": disambiguation,
                "alias_list": list(alias_list or []), "image": image,
                "created_at": stamp, "updated_at": stamp,
            }
            return pid

    def add_studio(
        self, name: str, *, aliases: list[str] | None = None, parent_id: int | None = None
    ) -> int:
        """Add a studio, optionally under a parent studio."""
        with self.lock:
            sid = self.next_id("studio")
            stamp = now_iso()
            self.studios[sid] = {
                "id": sid, "name": name, "aliases": list(aliases or []),
                "parent_id": parent_id, "created_at": stamp, "updated_at": stamp,
            }
            return sid

    def add_marker(
        self,
        scene_id: int,
        primary_tag_id: int,
        seconds: float,
        *,
        title: str = "",
        end_seconds: float | None = None,
        tag_ids: list[int] | None = None,
    ) -> int:
        """Add a scene marker (the primary tag is dropped from ``tag_ids``, as in Stash)."""
        with self.lock:
            mid = self.next_id("marker")
            stamp = now_iso()
            self.markers[mid] = {
                "id": mid, "title": title, "seconds": float(seconds),
                "end_seconds": None if end_seconds is None else float(end_seconds),
                "scene_id": scene_id, "primary_tag_id": primary_tag_id,
                "tag_ids": [t for t in (tag_ids or []) if t != primary_tag_id],
                "created_at": stamp, "updated_at": stamp,
            }
            return mid

    def add_job(self, description: str, *, status: str = "READY", **extra: Any) -> int:
        """Record a job (as ``runPluginTask`` does) and return its id."""
        with self.lock:
            jid = self.next_id("job")
            self.jobs[jid] = {
                "id": jid, "status": status, "description": description, "progress": None,
                "error": None, "addTime": now_iso(), "startTime": None, "endTime": None,
                "subTasks": [], **extra,
            }
            return jid

    def set_job(self, job_id: int, **fields: Any) -> None:
        """Update a job's fields, e.g. ``set_job(1, status="FINISHED")``."""
        with self.lock:
            self.jobs[job_id].update(fields)

    def register_operation(self, plugin_id: str, handler: OperationHandler) -> None:
        """Answer ``runPluginOperation(plugin_id, args)`` with ``handler(args)``."""
        with self.lock:
            self.operation_handlers[plugin_id] = handler

    def snapshot(self) -> dict[str, Any]:
        """Return a deep copy of all stored data, for "user data untouched" assertions."""
        with self.lock:
            return copy.deepcopy({
                "scenes": self.scenes, "tags": self.tags, "performers": self.performers,
                "studios": self.studios, "markers": self.markers, "jobs": self.jobs,
                "plugin_config": self.plugin_config, "general": self.general,
            })

    # ---- hierarchy helpers -----------------------------------------------------------

    def tag_descendants(self, tag_id: int, depth: int | None) -> set[int]:
        """Return ``tag_id`` plus its children down to ``depth`` levels (-1 = all)."""
        return _descendants(tag_id, depth, lambda t: [
            c for c, rec in self.tags.items() if t in rec["parent_ids"]])

    def studio_descendants(self, studio_id: int, depth: int | None) -> set[int]:
        """Return ``studio_id`` plus its child studios down to ``depth`` levels (-1 = all)."""
        return _descendants(studio_id, depth, lambda s: [
            c for c, rec in self.studios.items() if rec["parent_id"] == s])


def _descendants(root: int, depth: int | None, children: Callable[[int], list[int]]) -> set[int]:
    """Breadth-first walk from ``root``; ``depth`` None or 0 means the root only."""
    found = {root}
    frontier = [root]
    level = 0
    while frontier and (depth is not None and (depth < 0 or level < depth)):
        frontier = [c for node in frontier for c in children(node) if c not in found]
        found.update(frontier)
        level += 1
    return found


class RequestContext:
    """What resolvers see as ``info.context``: the state and this server's base URL."""

    def __init__(self, state: State, base_url: str) -> None:
        """Bind the state and the absolute base URL used for media paths."""
        self.state = state
        self.base_url = base_url.rstrip("/")


class StashError(Exception):
    """An error a resolver reports the way Stash words it (becomes a GraphQL error)."""
