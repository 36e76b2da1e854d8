"""Scene, marker and plugin mutations (see ``mutations.py`` for what was checked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfo

from .mutations import (
    fk_check,
    int_ids,
    performer_create,
    studio_create,
    tag_create,
    tag_destroy,
    tag_update,
    tags_destroy,
)
from .queries import ctx_state
from .state import Record, StashError, State, now_iso

SCALAR_SCENE_FIELDS = ("title", "details", "organized", "code", "director", "date")
"""Plain scene fields copied as given by sceneUpdate/bulkSceneUpdate."""


def _scene(state: State, scene_id: int) -> Record:
    """Return a stored scene or raise Stash's not-found error."""
    if scene_id not in state.scenes:
        raise StashError(f"scene with id {scene_id} not found")
    return state.scenes[scene_id]


def _check_studio(state: State, studio_id: str | None) -> int | None:
    """Convert and check a ``studio_id`` input (null clears the studio)."""
    if studio_id is None:
        return None
    sid = int(studio_id)
    if sid not in state.studios:
        raise StashError("error executing `UPDATE scenes SET studio_id = ?`: "
                         "FOREIGN KEY constraint failed")
    return sid


def _apply_ids(current: list[int], new: list[int], mode: str) -> list[int]:
    """Apply a BulkUpdateIds mode (SET, ADD, REMOVE) to a list of ids."""
    if mode == "SET":
        return list(new)
    if mode == "ADD":
        return current + [i for i in new if i not in current]
    return [i for i in current if i not in new]


def _update_scene(state: State, scene: Record, data: Record, lists: dict[str, tuple]) -> None:
    """Copy scalar fields and apply (ids, mode) list updates to a scene copy."""
    for key in SCALAR_SCENE_FIELDS:
        if key in data:
            scene[key] = data[key]
    if "studio_id" in data:
        scene["studio_id"] = _check_studio(state, data["studio_id"])
    for key, (ids, mode) in lists.items():
        table = {"tag_ids": (state.tags, "scenes_tags", "tag_id"),
                 "performer_ids": (state.performers, "performers_scenes", "performer_id")}[key]
        if mode != "REMOVE":
            fk_check(table[0], ids, table[1], table[2])
        scene[key] = _apply_ids(scene[key], ids, mode)
    scene["updated_at"] = now_iso()


def scene_update(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``sceneUpdate``: each list given replaces the stored one; absent fields stay."""
    state = ctx_state(info)
    scene_id = int(input["id"])
    updated = _copy_scene(_scene(state, scene_id))
    lists = {k: (int_ids(input[k]), "SET") for k in ("tag_ids", "performer_ids") if k in input}
    _update_scene(state, updated, input, lists)
    state.scenes[scene_id] = updated
    return updated


def bulk_scene_update(_root: None, info: GraphQLResolveInfo, input: Record) -> list[Record]:
    """Resolve ``bulkSceneUpdate`` (all scenes or none are changed)."""
    state = ctx_state(info)
    lists = {k: (int_ids(v.get("ids")), v["mode"]) for k, v in input.items()
             if k in ("tag_ids", "performer_ids") and v is not None}
    updated = [_copy_scene(_scene(state, i)) for i in int_ids(input.get("ids"))]
    for scene in updated:
        _update_scene(state, scene, input, lists)
    for scene in updated:
        state.scenes[scene["id"]] = scene
    return updated


def _copy_scene(scene: Record) -> Record:
    """Copy a scene so a failed update leaves the stored one untouched."""
    return dict(scene, tag_ids=list(scene["tag_ids"]), performer_ids=list(scene["performer_ids"]))


# ---- markers -------------------------------------------------------------------------

def _check_end(seconds: float, end_seconds: float | None) -> None:
    """Stash's ``validateSceneMarkerEndSeconds`` (Go ``%f`` formatting)."""
    if end_seconds is not None and end_seconds < seconds:
        raise StashError(f"end_seconds ({end_seconds:f}) must be greater than or equal to "
                         f"seconds ({seconds:f})")


def _check_marker_refs(state: State, marker: Record) -> None:
    """Fail like the marker insert would for a missing scene or tag."""
    _scene(state, marker["scene_id"])
    for tag_id in (marker["primary_tag_id"], *marker["tag_ids"]):
        if tag_id not in state.tags:
            raise StashError("FOREIGN KEY constraint failed")


def scene_marker_create(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``sceneMarkerCreate``."""
    state = ctx_state(info)
    _check_end(input["seconds"], input.get("end_seconds"))
    primary = int(input["primary_tag_id"])
    marker = {"id": 0, "title": input["title"].strip(), "seconds": input["seconds"],
              "end_seconds": input.get("end_seconds"), "scene_id": int(input["scene_id"]),
              "primary_tag_id": primary,
              "tag_ids": [t for t in int_ids(input.get("tag_ids")) if t != primary],
              "created_at": now_iso(), "updated_at": now_iso()}
    _check_marker_refs(state, marker)
    marker["id"] = state.next_id("marker")
    state.markers[marker["id"]] = marker
    return marker


def scene_marker_update(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``sceneMarkerUpdate`` (partial; tag_ids given replace)."""
    state = ctx_state(info)
    marker_id = int(input["id"])
    if marker_id not in state.markers:
        raise StashError(f"scene marker with id {marker_id} not found")
    marker = dict(state.markers[marker_id])
    for key in ("title", "seconds", "end_seconds"):
        if key in input:
            marker[key] = input[key]
    for key in ("scene_id", "primary_tag_id"):
        if input.get(key) is not None:
            marker[key] = int(input[key])
    if "seconds" in input or "end_seconds" in input:
        _check_end(marker["seconds"], marker["end_seconds"])
    tag_ids = int_ids(input["tag_ids"]) if "tag_ids" in input else marker["tag_ids"]
    marker["tag_ids"] = [t for t in tag_ids if t != marker["primary_tag_id"]]
    _check_marker_refs(state, marker)
    marker["updated_at"] = now_iso()
    state.markers[marker_id] = marker
    return marker


def scene_markers_destroy(_root: None, info: GraphQLResolveInfo, ids: list[str]) -> bool:
    """Resolve ``sceneMarkersDestroy`` (all or nothing)."""
    state = ctx_state(info)
    marker_ids = int_ids(ids)
    for marker_id in marker_ids:
        if marker_id not in state.markers:
            raise StashError(f"scene marker with id {marker_id} not found")
    for marker_id in marker_ids:
        del state.markers[marker_id]
    return True


# ---- plugins -------------------------------------------------------------------------

def configure_plugin(
    _root: None, info: GraphQLResolveInfo, plugin_id: str, input: dict[str, Any]
) -> dict[str, Any]:
    """Resolve ``configurePlugin``: the whole map is replaced."""
    ctx_state(info).plugin_config[plugin_id] = dict(input)
    return dict(input)


def run_plugin_task(
    _root: None, info: GraphQLResolveInfo, plugin_id: str, task_name: str | None = None,
    description: str | None = None, args: list[Record] | None = None,
    args_map: dict[str, Any] | None = None,
) -> str:
    """Resolve ``runPluginTask``: record a READY job and return its id."""
    label = description or f"Running plugin task: {task_name or plugin_id}"
    job_id = ctx_state(info).add_job(
        label, plugin_id=plugin_id, task_name=task_name, args_map=dict(args_map or {}),
        args=args)
    return str(job_id)


def run_plugin_operation(
    _root: None, info: GraphQLResolveInfo, plugin_id: str, args: dict[str, Any] | None = None
) -> Any:
    """Resolve ``runPluginOperation`` with a test-registered handler (else null)."""
    state = ctx_state(info)
    state.operations.append({"plugin_id": plugin_id, "args": dict(args or {})})
    handler = state.operation_handlers.get(plugin_id)
    if handler is None:
        return None
    # Stash runs the plugin while the request waits, and the plugin calls back into Stash: the
    # state lock this request holds is let go meanwhile, or the plugin's own requests would wait
    # for it forever.
    state.lock.release()
    try:
        return handler(dict(args or {}))
    finally:
        state.lock.acquire()


MUTATION_RESOLVERS: dict[str, Callable[..., Any]] = {
    "tagCreate": tag_create, "tagUpdate": tag_update, "tagDestroy": tag_destroy,
    "tagsDestroy": tags_destroy, "performerCreate": performer_create,
    "studioCreate": studio_create, "sceneUpdate": scene_update,
    "bulkSceneUpdate": bulk_scene_update, "sceneMarkerCreate": scene_marker_create,
    "sceneMarkerUpdate": scene_marker_update,
    "sceneMarkerDestroy": lambda r, i, id: scene_markers_destroy(r, i, [id]),
    "sceneMarkersDestroy": scene_markers_destroy, "configurePlugin": configure_plugin,
    "runPluginTask": run_plugin_task, "runPluginOperation": run_plugin_operation,
}
"""Mutation fields this server implements; any other Mutation field answers an error."""
