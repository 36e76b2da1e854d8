"""Query resolvers: find*, configuration, findJob, version, systemStatus.

Stash behaviours kept: ``findScene``/``findTag``/... answer null (no error) for an unknown
id; default sorts are ``title`` for scenes and markers and ``name`` for tags, performers and
studios; ``q`` searches scene title/details/path/oshash, tag name/aliases, performer
name/disambiguation/aliases, studio name/aliases, marker title/primary tag name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfo

from . import filters as flt
from .state import Record, RequestContext, State

VERSION = {"version": "v0.30.1", "hash": "b23b0267", "build_time": "2025-12-18 00:00:00"}
"""What ``version`` reports: the last release whose schema matches the shared SDL."""


def ctx_state(info: GraphQLResolveInfo) -> State:
    """Return the State from a resolver's context."""
    context: RequestContext = info.context
    return context.state


def _int_ids(ids: list[str] | None) -> set[int] | None:
    """Convert an ``ids: [ID!]`` argument, keeping None as "no restriction"."""
    return None if ids is None else {int(i) for i in ids}


def _query(
    records: dict[int, Record], find_filter: dict[str, Any] | None, pred: flt.Predicate,
    texts: Callable[[Record], list[str | None]], sort_keys: dict[str, Callable[[Record], Any]],
    default_sort: str, ids: set[int] | None = None,
) -> tuple[int, list[Record]]:
    """Filter, search, sort and page ``records``; return (total count, page)."""
    q = (find_filter or {}).get("q")
    found = [r for r in records.values()
             if (ids is None or r["id"] in ids) and pred(r) and flt.matches_q(q, texts(r))]
    ordered = flt.sort_records(found, find_filter, sort_keys, default_sort)
    return len(ordered), flt.paginate(ordered, find_filter)


# ---- scenes --------------------------------------------------------------------------

def scene_filter_handlers(state: State) -> dict[str, flt.KeyHandler]:
    """The SceneFilterType keys this server evaluates."""
    return {
        "id": flt.int_criterion(lambda s: s["id"]),
        "title": flt.string_criterion(lambda s: [s["title"]]),
        "details": flt.string_criterion(lambda s: [s.get("details")]),
        "path": flt.string_criterion(lambda s: [f["path"] for f in s["files"]]),
        "oshash": flt.string_criterion(
            lambda s: [f["fingerprints"].get("oshash") for f in s["files"]]),
        "organized": flt.bool_criterion(lambda s: s["organized"]),
        "tags": flt.multi_criterion(lambda s: s["tag_ids"], state.tag_descendants),
        "performers": flt.multi_criterion(lambda s: s["performer_ids"]),
        "studios": flt.multi_criterion(
            lambda s: [s["studio_id"]] if s["studio_id"] else [], state.studio_descendants),
    }


def _scene_texts(scene: Record) -> list[str | None]:
    """Columns ``q`` searches for scenes."""
    files = scene["files"]
    return [scene["title"], scene.get("details"), *[f["path"] for f in files],
            *[f["fingerprints"].get("oshash") for f in files]]


def _scene_title_key(scene: Record) -> str:
    """Stash sorts by title, falling back to the primary file's basename."""
    basename = scene["files"][0]["basename"] if scene["files"] else ""
    return (scene["title"] or basename).lower()


SCENE_SORTS: dict[str, Callable[[Record], Any]] = {
    "id": lambda s: s["id"], "title": _scene_title_key,
    "path": lambda s: s["files"][0]["path"] if s["files"] else "",
    "created_at": lambda s: s["created_at"], "updated_at": lambda s: s["updated_at"],
    "duration": lambda s: s["files"][0]["duration"] if s["files"] else 0.0,
}
"""Sort keys accepted by ``findScenes``."""


def find_scenes(
    _root: None, info: GraphQLResolveInfo, scene_filter: dict[str, Any] | None = None,
    filter: dict[str, Any] | None = None, ids: list[str] | None = None,
    scene_ids: list[int] | None = None,
) -> Record:
    """Resolve ``findScenes``."""
    state = ctx_state(info)
    pred = flt.compile_filter(scene_filter, scene_filter_handlers(state), "scene_filter")
    wanted = _int_ids(ids) if ids is not None else (set(scene_ids) if scene_ids else None)
    count, page = _query(state.scenes, filter, pred, _scene_texts, SCENE_SORTS, "title", wanted)
    return {"count": count, "scenes": page,
            "duration": sum(s["files"][0]["duration"] for s in page if s["files"]),
            "filesize": float(sum(s["files"][0]["size"] for s in page if s["files"]))}


def find_scene(
    _root: None, info: GraphQLResolveInfo, id: str | None = None,
    checksum: str | None = None,
) -> Record | None:
    """Resolve ``findScene`` by id, or by an md5/oshash ``checksum``."""
    state = ctx_state(info)
    if id is not None:
        return state.scenes.get(int(id))
    for scene in state.scenes.values():
        if any(checksum in f["fingerprints"].values() for f in scene["files"]):
            return scene
    return None


# ---- tags, performers, studios, markers ----------------------------------------------

NAME_SORTS: dict[str, Callable[[Record], Any]] = {
    "id": lambda r: r["id"], "name": lambda r: r["name"].lower(),
    "created_at": lambda r: r["created_at"], "updated_at": lambda r: r["updated_at"],
}
"""Sort keys accepted by ``findTags``, ``findPerformers`` and ``findStudios``."""


def find_tags(
    _root: None, info: GraphQLResolveInfo, tag_filter: dict[str, Any] | None = None,
    filter: dict[str, Any] | None = None, ids: list[str] | None = None,
) -> Record:
    """Resolve ``findTags``."""
    state = ctx_state(info)
    handlers = {
        "id": flt.int_criterion(lambda t: t["id"]),
        "name": flt.string_criterion(lambda t: [t["name"]]),
        "aliases": flt.string_criterion(lambda t: t["aliases"]),
        "parents": flt.multi_criterion(lambda t: t["parent_ids"]),
    }
    pred = flt.compile_filter(tag_filter, handlers, "tag_filter")
    count, page = _query(state.tags, filter, pred, lambda t: [t["name"], *t["aliases"]],
                         NAME_SORTS, "name", _int_ids(ids))
    return {"count": count, "tags": page}


def find_performers(
    _root: None, info: GraphQLResolveInfo, performer_filter: dict[str, Any] | None = None,
    filter: dict[str, Any] | None = None, ids: list[str] | None = None,
    performer_ids: list[int] | None = None,
) -> Record:
    """Resolve ``findPerformers``."""
    state = ctx_state(info)
    handlers = {
        "id": flt.int_criterion(lambda p: p["id"]),
        "name": flt.string_criterion(lambda p: [p["name"]]),
        "disambiguation": flt.string_criterion(lambda p: [p["disambiguation"]]),
        "aliases": flt.string_criterion(lambda p: p["alias_list"]),
    }
    pred = flt.compile_filter(performer_filter, handlers, "performer_filter")
    wanted = _int_ids(ids) if ids is not None else (set(performer_ids) if performer_ids else None)
    count, page = _query(
        state.performers, filter, pred,
        lambda p: [p["name"], p["disambiguation"], *p["alias_list"]], NAME_SORTS, "name", wanted)
    return {"count": count, "performers": page}


def find_studios(
    _root: None, info: GraphQLResolveInfo, studio_filter: dict[str, Any] | None = None,
    filter: dict[str, Any] | None = None, ids: list[str] | None = None,
) -> Record:
    """Resolve ``findStudios``."""
    state = ctx_state(info)
    handlers = {
        "id": flt.int_criterion(lambda s: s["id"]),
        "name": flt.string_criterion(lambda s: [s["name"]]),
        "aliases": flt.string_criterion(lambda s: s["aliases"]),
        "parents": flt.multi_criterion(lambda s: [s["parent_id"]] if s["parent_id"] else []),
    }
    pred = flt.compile_filter(studio_filter, handlers, "studio_filter")
    count, page = _query(state.studios, filter, pred, lambda s: [s["name"], *s["aliases"]],
                         NAME_SORTS, "name", _int_ids(ids))
    return {"count": count, "studios": page}


def find_scene_markers(
    _root: None, info: GraphQLResolveInfo, scene_marker_filter: dict[str, Any] | None = None,
    filter: dict[str, Any] | None = None, ids: list[str] | None = None,
) -> Record:
    """Resolve ``findSceneMarkers``."""
    state = ctx_state(info)
    handlers = {
        "scenes": flt.multi_criterion(lambda m: [m["scene_id"]]),
        "tags": flt.multi_criterion(
            lambda m: [m["primary_tag_id"], *m["tag_ids"]], state.tag_descendants),
        "scene_tags": flt.multi_criterion(
            lambda m: state.scenes[m["scene_id"]]["tag_ids"], state.tag_descendants),
    }
    pred = flt.compile_filter(scene_marker_filter, handlers, "scene_marker_filter")
    sorts: dict[str, Callable[[Record], Any]] = {
        "id": lambda m: m["id"], "title": lambda m: m["title"].lower(),
        "seconds": lambda m: m["seconds"], "created_at": lambda m: m["created_at"],
        "updated_at": lambda m: m["updated_at"]}
    texts = lambda m: [m["title"], state.tags[m["primary_tag_id"]]["name"]]  # noqa: E731
    count, page = _query(state.markers, filter, pred, texts, sorts, "title", _int_ids(ids))
    return {"count": count, "scene_markers": page}


def find_by_id(table: str) -> Callable[..., Record | None]:
    """Build a ``find<Type>(id)`` resolver that answers null for an unknown id."""
    def resolve(_root: None, info: GraphQLResolveInfo, id: str) -> Record | None:
        return getattr(ctx_state(info), table).get(int(id))
    return resolve


# ---- system --------------------------------------------------------------------------

def configuration(_root: None, info: GraphQLResolveInfo) -> Record:
    """Resolve ``configuration``; ``plugins(include:)`` is resolved on ConfigResult."""
    state = ctx_state(info)
    return {"general": dict(state.general), "ui": {}, "interface": {}, "dlna": {},
            "scraping": {}, "defaults": {}}


def find_job(_root: None, info: GraphQLResolveInfo, input: Record) -> Record | None:
    """Resolve ``findJob(input: {id})``; unknown ids answer null."""
    return ctx_state(info).jobs.get(int(input["id"]))


def system_status(_root: None, info: GraphQLResolveInfo) -> Record:
    """Resolve ``systemStatus`` as a set-up, migrated Stash would."""
    return {"status": "OK", "appSchema": 75, "databaseSchema": 75, "os": "linux",
            "workingDir": "/", "homeDir": "/root", "configPath": "/root/.stash/config.yml",
            "databasePath": "/root/.stash/stash-go.sqlite"}


QUERY_RESOLVERS: dict[str, Callable[..., Any]] = {
    "version": lambda _r, _i: dict(VERSION),
    "systemStatus": system_status,
    "findScene": find_scene, "findScenes": find_scenes,
    "findTag": find_by_id("tags"), "findTags": find_tags,
    "findPerformer": find_by_id("performers"), "findPerformers": find_performers,
    "findStudio": find_by_id("studios"), "findStudios": find_studios,
    "findSceneMarkers": find_scene_markers,
    "configuration": configuration, "findJob": find_job,
}
"""Query fields this server implements; any other Query field answers an error."""
