"""Build an executable graphql-core schema from Stash's real SDL.

The SDL (``types/*.graphql`` then ``schema.graphql``, gqlgen's load order) comes from the
shared dir: ``$AI_TAGGER_SHARED`` or ``<repo root>/../shared``. Root fields are bound to the
resolvers in ``queries.py``/``scene_mutations.py``; the rest answer an error naming the field.
Object fields read the stored dicts; fields the dicts lack get an empty value of their type
when non-null, so a query for e.g. ``Scene.urls`` works as on a real, sparse library.
URLs follow Stash's url builders: ``/scene/<id>/stream`` (with ``?apikey=`` when an API key
is configured), ``/scene/<id>/screenshot?t=...``, ``/performer/<id>/image?default=true`` when
the performer has no image.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    get_named_type,
)

from .queries import QUERY_RESOLVERS, ctx_state
from .scene_mutations import MUTATION_RESOLVERS
from .state import Record, RequestContext, StashError

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The project root (``tests/stash_server/`` is two levels below it)."""


def shared_dir() -> Path:
    """Return the shared dir holding ``stash-schema/``."""
    env = os.environ.get("AI_TAGGER_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def load_sdl(schema_dir: Path | None = None) -> str:
    """Concatenate Stash's SDL files in gqlgen's load order."""
    root = schema_dir or shared_dir() / "stash-schema"
    parts = [p.read_text() for p in sorted((root / "types").glob("*.graphql"))]
    parts.append((root / "schema.graphql").read_text())
    return "\n".join(parts)


@functools.lru_cache(maxsize=1)
def build_stash_schema() -> GraphQLSchema:
    """Return the executable schema (built once per process)."""
    schema = build_schema(load_sdl())
    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for name, field in type_.fields.items():
                field.resolve = _fallback_resolver(name, field)
    _bind(schema.query_type, QUERY_RESOLVERS, unimplemented=True)
    _bind(schema.mutation_type, MUTATION_RESOLVERS, unimplemented=True)
    for type_name, resolvers in OBJECT_RESOLVERS.items():
        _bind(schema.get_type(type_name), resolvers)
    return schema


def _bind(type_: Any, resolvers: dict[str, Callable[..., Any]], *, unimplemented: bool = False
          ) -> None:
    """Attach ``resolvers``; on root types other fields raise a clear error."""
    for name, field in type_.fields.items():
        if name in resolvers:
            field.resolve = resolvers[name]
        elif unimplemented:
            field.resolve = _not_implemented(name)


def _not_implemented(name: str) -> Callable[..., Any]:
    """A root resolver for operations this fake does not emulate."""
    def resolve(_root: Any, _info: GraphQLResolveInfo, **_args: Any) -> Any:
        raise StashError(f"{name} is not implemented by the test Stash server")
    return resolve


def _empty_value(field: GraphQLField) -> Any:
    """The value a non-null field gets when the stored dict has none."""
    if not isinstance(field.type, GraphQLNonNull):
        return None
    inner = field.type.of_type
    if isinstance(inner, GraphQLList):
        return []
    return {"Boolean": False, "Int": 0, "Float": 0.0, "String": "", "Int64": 0,
            "Map": {}}.get(get_named_type(inner).name)


def _fallback_resolver(name: str, field: GraphQLField) -> Callable[..., Any]:
    """Read ``name`` from a dict parent, else the field's empty value."""
    empty = _empty_value(field)
    def resolve(parent: Any, _info: GraphQLResolveInfo, **_args: Any) -> Any:
        value = parent.get(name) if isinstance(parent, dict) else getattr(parent, name, None)
        if value is None and empty is not None:
            return type(empty)() if isinstance(empty, (list, dict)) else empty
        return value
    return resolve


# ---- object field resolvers ----------------------------------------------------------

def _base(info: GraphQLResolveInfo) -> str:
    """This server's absolute base URL."""
    context: RequestContext = info.context
    return context.base_url


def _stamp(record: Record) -> str:
    """A cache-busting ``t`` value from the record's update time."""
    return quote(str(record.get("updated_at", "")), safe="")


def scene_paths(scene: Record, info: GraphQLResolveInfo) -> Record:
    """Resolve ``Scene.paths`` as absolute URLs on this server."""
    base = f"{_base(info)}/scene/{scene['id']}"
    api_key = ctx_state(info).general.get("apiKey")
    stream = f"{base}/stream" + (f"?apikey={quote(api_key)}" if api_key else "")
    return {"stream": stream, "screenshot": f"{base}/screenshot?t={_stamp(scene)}",
            "preview": f"{base}/preview", "webp": f"{base}/webp", "vtt": f"{base}/vtt/thumbs",
            "sprite": f"{base}/vtt/sprite", "funscript": f"{base}/funscript",
            "interactive_heatmap": f"{base}/interactive_heatmap", "caption": f"{base}/caption"}


def _records(table: str, key: str) -> Callable[..., list[Record]]:
    """Resolve a list of related ids stored under ``key`` into records of ``table``."""
    def resolve(parent: Record, info: GraphQLResolveInfo) -> list[Record]:
        rows = getattr(ctx_state(info), table)
        return [rows[i] for i in parent[key] if i in rows]
    return resolve


def _record(table: str, key: str) -> Callable[..., Record | None]:
    """Resolve one related id stored under ``key``."""
    def resolve(parent: Record, info: GraphQLResolveInfo) -> Record | None:
        value = parent.get(key)
        return None if value is None else getattr(ctx_state(info), table).get(value)
    return resolve


def tag_scene_count(tag: Record, info: GraphQLResolveInfo, depth: int | None = None) -> int:
    """Count scenes tagged with the tag (or its descendants down to ``depth``)."""
    state = ctx_state(info)
    ids = state.tag_descendants(tag["id"], depth)
    return sum(1 for s in state.scenes.values() if ids & set(s["tag_ids"]))


def tag_marker_count(tag: Record, info: GraphQLResolveInfo, depth: int | None = None) -> int:
    """Count markers whose primary tag or tags include the tag (or descendants)."""
    state = ctx_state(info)
    ids = state.tag_descendants(tag["id"], depth)
    return sum(1 for m in state.markers.values()
               if ids & {m["primary_tag_id"], *m["tag_ids"]})


def tag_children(tag: Record, info: GraphQLResolveInfo) -> list[Record]:
    """Resolve ``Tag.children``."""
    return [t for t in ctx_state(info).tags.values() if tag["id"] in t["parent_ids"]]


def studio_scene_count(studio: Record, info: GraphQLResolveInfo, depth: int | None = None
                       ) -> int:
    """Count scenes of the studio (or its child studios down to ``depth``)."""
    state = ctx_state(info)
    ids = state.studio_descendants(studio["id"], depth)
    return sum(1 for s in state.scenes.values() if s["studio_id"] in ids)


def performer_image_path(performer: Record, info: GraphQLResolveInfo) -> str:
    """Resolve ``Performer.image_path`` (``?default=true`` when there is no image)."""
    url = f"{_base(info)}/performer/{performer['id']}/image"
    has_image = performer.get("image") or performer.get("image_data")
    return f"{url}?t={_stamp(performer)}" if has_image else f"{url}?default=true"


def marker_url(suffix: str) -> Callable[..., str]:
    """Resolve a marker media URL (``/scene/<sid>/scene_marker/<mid>/<suffix>``)."""
    def resolve(marker: Record, info: GraphQLResolveInfo) -> str:
        return (f"{_base(info)}/scene/{marker['scene_id']}/scene_marker/"
                f"{marker['id']}/{suffix}")
    return resolve


def plugin_configs(_root: Record, info: GraphQLResolveInfo, include: list[str] | None = None
                   ) -> dict[str, Any]:
    """Resolve ``ConfigResult.plugins(include:)``: a map of plugin id to its settings."""
    configs = ctx_state(info).plugin_config
    ids = include if include is not None else list(configs)
    return {i: dict(configs[i]) for i in ids if i in configs}


def _file_folder(file: Record, _info: GraphQLResolveInfo) -> Record:
    """Resolve ``VideoFile.parent_folder`` from the file's path."""
    return {"id": str(abs(hash(os.path.dirname(file["path"]))) % 10**9),
            "path": os.path.dirname(file["path"]), "mod_time": file["mod_time"],
            "created_at": file["created_at"], "updated_at": file["updated_at"]}


OBJECT_RESOLVERS: dict[str, dict[str, Callable[..., Any]]] = {
    "Scene": {
        "paths": scene_paths, "tags": _records("tags", "tag_ids"),
        "performers": _records("performers", "performer_ids"),
        "studio": _record("studios", "studio_id"),
        "scene_markers": lambda s, i: [m for m in ctx_state(i).markers.values()
                                       if m["scene_id"] == s["id"]],
    },
    "VideoFile": {
        "fingerprint": lambda f, _i, type: f["fingerprints"].get(type),
        "fingerprints": lambda f, _i: [{"type": k, "value": v}
                                       for k, v in f["fingerprints"].items()],
        "parent_folder": _file_folder,
        "parent_folder_id": lambda f, i: _file_folder(f, i)["id"],
    },
    "Tag": {
        "parents": _records("tags", "parent_ids"), "children": tag_children,
        "parent_count": lambda t, _i: len(t["parent_ids"]),
        "child_count": lambda t, i: len(tag_children(t, i)),
        "scene_count": tag_scene_count, "scene_marker_count": tag_marker_count,
        "image_path": lambda t, i: f"{_base(i)}/tag/{t['id']}/image?default=true",
    },
    "Performer": {
        "image_path": performer_image_path,
        "scene_count": lambda p, i: sum(1 for s in ctx_state(i).scenes.values()
                                        if p["id"] in s["performer_ids"]),
    },
    "Studio": {
        "parent_studio": _record("studios", "parent_id"),
        "child_studios": lambda s, i: [c for c in ctx_state(i).studios.values()
                                       if c["parent_id"] == s["id"]],
        "scene_count": studio_scene_count,
    },
    "SceneMarker": {
        "scene": _record("scenes", "scene_id"), "primary_tag": _record("tags", "primary_tag_id"),
        "tags": _records("tags", "tag_ids"), "stream": marker_url("stream"),
        "preview": marker_url("preview"), "screenshot": marker_url("screenshot"),
    },
    "ConfigResult": {"plugins": plugin_configs},
}
"""Computed fields, by GraphQL type name."""
