"""Mutation resolvers, with Stash's validation and error wording.

Checked against stashapp/stash: ``pkg/tag/update.go`` + ``validate.go`` (name/alias
uniqueness, case-insensitive: "tag with name '%s' already exists", "name '%s' is used as alias
for '%s'", "tag name must not be blank"); ``pkg/performer/validate.go`` ("performer with name
'%s' already exists"); ``internal/api/resolver_mutation_scene.go`` ("scene with id %d not
found", sceneUpdate sets each given list, bulkSceneUpdate applies ADD/REMOVE/SET, marker
``end_seconds (%f) must be greater than or equal to seconds (%f)``, primary tag excluded from
marker tags); a user report of ``bulkSceneUpdate`` with a deleted tag id (SQLite "FOREIGN KEY
constraint failed" on the join-table insert). Not verified (wording guessed in the same
style): studio name clash, deleting a tag still used as a marker's primary tag.
"""

from __future__ import annotations

from graphql import GraphQLResolveInfo

from .queries import ctx_state
from .state import Record, StashError, State, now_iso


def fk_check(records: dict[int, Record], ids: list[int], table: str, column: str) -> None:
    """Fail like SQLite does when a join-table insert references a missing row."""
    for i in ids:
        if i not in records:
            raise StashError(
                f"error executing `INSERT INTO {table} (scene_id, {column}) VALUES (?, ?) "
                f"ON CONFLICT (scene_id, {column}) DO NOTHING` [[? {i}]]: "
                "FOREIGN KEY constraint failed")


def int_ids(ids: list[str] | None) -> list[int]:
    """Convert GraphQL ids to ints, de-duplicated in order."""
    return list(dict.fromkeys(int(i) for i in ids or []))


# ---- tags ----------------------------------------------------------------------------

def _ensure_tag_name_unique(state: State, tag_id: int, name: str) -> None:
    """Raise as Stash does when ``name`` is another tag's name or alias."""
    low = name.lower()
    for tag in state.tags.values():
        if tag["id"] != tag_id and tag["name"].lower() == low:
            raise StashError(f"tag with name '{name}' already exists")
    for tag in state.tags.values():
        if tag["id"] != tag_id and low in (a.lower() for a in tag["aliases"]):
            raise StashError(f"name '{name}' is used as alias for '{tag['name']}'")


def _clean_aliases(aliases: list[str], name: str) -> list[str]:
    """Trim, drop blanks and the tag's own name, de-duplicate case-insensitively."""
    seen = {name.lower()}
    out: list[str] = []
    for alias in (a.strip() for a in aliases):
        if alias and alias.lower() not in seen:
            seen.add(alias.lower())
            out.append(alias)
    return out


def _apply_tag_fields(state: State, tag: Record, data: Record) -> None:
    """Validate and copy TagCreate/UpdateInput fields onto ``tag``."""
    if "name" in data and data["name"] is not None:
        name = data["name"].strip()
        if not name:
            raise StashError("tag name must not be blank")
        _ensure_tag_name_unique(state, tag["id"], name)
        tag["name"] = name
    if data.get("aliases") is not None:
        aliases = _clean_aliases(data["aliases"], tag["name"])
        for alias in aliases:
            _ensure_tag_name_unique(state, tag["id"], alias)
        tag["aliases"] = aliases
    for key in ("description", "sort_name", "ignore_auto_tag", "favorite"):
        if key in data:
            tag[key] = data[key]
    if data.get("parent_ids") is not None:
        tag["parent_ids"] = _existing_tag_ids(state, int_ids(data["parent_ids"]))
    if data.get("child_ids") is not None:
        for child in _existing_tag_ids(state, int_ids(data["child_ids"])):
            parents = state.tags[child]["parent_ids"]
            if tag["id"] not in parents:
                parents.append(tag["id"])


def _existing_tag_ids(state: State, ids: list[int]) -> list[int]:
    """Return ``ids`` after checking each names an existing tag."""
    for i in ids:
        if i not in state.tags:
            raise StashError(f"tag with id {i} not found")
    return ids


def tag_create(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``tagCreate``."""
    state = ctx_state(info)
    name = input["name"].strip()
    if not name:
        raise StashError("tag name must not be blank")
    _ensure_tag_name_unique(state, 0, name)
    tag_id = state.next_id("tag")
    tag = {"id": tag_id, "name": name, "aliases": [], "description": None, "parent_ids": [],
           "ignore_auto_tag": False, "favorite": False, "sort_name": None,
           "created_at": now_iso(), "updated_at": now_iso()}
    _apply_tag_fields(state, tag, {k: v for k, v in input.items() if k != "name"})
    state.tags[tag_id] = tag
    return tag


def tag_update(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``tagUpdate`` (a partial update; lists given replace)."""
    state = ctx_state(info)
    tag_id = int(input["id"])
    if tag_id not in state.tags:
        raise StashError(f"tag with id {tag_id} not found")
    updated = dict(state.tags[tag_id], parent_ids=list(state.tags[tag_id]["parent_ids"]))
    _apply_tag_fields(state, updated, input)
    updated["updated_at"] = now_iso()
    state.tags[tag_id] = updated
    return updated


def _destroy_tag(state: State, tag_id: int) -> None:
    """Delete a tag and unlink it from scenes, markers and other tags."""
    if tag_id not in state.tags:
        raise StashError(f"tag with id {tag_id} not found")
    if any(m["primary_tag_id"] == tag_id for m in state.markers.values()):
        raise StashError("cannot delete tag used as a primary tag in scene markers")
    del state.tags[tag_id]
    for rec in (*state.scenes.values(), *state.markers.values()):
        if tag_id in rec["tag_ids"]:
            rec["tag_ids"].remove(tag_id)
    for tag in state.tags.values():
        if tag_id in tag["parent_ids"]:
            tag["parent_ids"].remove(tag_id)


def tag_destroy(_root: None, info: GraphQLResolveInfo, input: Record) -> bool:
    """Resolve ``tagDestroy``."""
    _destroy_tag(ctx_state(info), int(input["id"]))
    return True


def tags_destroy(_root: None, info: GraphQLResolveInfo, ids: list[str]) -> bool:
    """Resolve ``tagsDestroy``."""
    for tag_id in int_ids(ids):
        _destroy_tag(ctx_state(info), tag_id)
    return True


# ---- performers and studios ----------------------------------------------------------

def performer_create(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``performerCreate`` (name + disambiguation unique, aliases distinct)."""
    state = ctx_state(info)
    name, disambig = input["name"].strip(), (input.get("disambiguation") or "").strip()
    if not name:
        raise StashError("performer name must not be blank")
    for p in state.performers.values():
        if p["name"].lower() == name.lower() and (p["disambiguation"] or "") == disambig:
            detail = f" and disambiguation '{disambig}'" if disambig else ""
            raise StashError(f"performer with name '{name}'{detail} already exists")
    seen = {name.lower()}
    for alias in input.get("alias_list") or []:
        if alias.lower() in seen:
            raise StashError(f"performer contains duplicate alias '{alias}'")
        seen.add(alias.lower())
    pid = state.add_performer(name, disambiguation=disambig or None,
                              alias_list=input.get("alias_list"))
    state.performers[pid]["image_data"] = input.get("image")
    return state.performers[pid]


def studio_create(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Resolve ``studioCreate``."""
    state = ctx_state(info)
    name = input["name"].strip()
    if not name:
        raise StashError("studio name must not be blank")
    if any(s["name"].lower() == name.lower() for s in state.studios.values()):
        raise StashError(f"studio with name '{name}' already exists")
    parent = int(input["parent_id"]) if input.get("parent_id") else None
    if parent is not None and parent not in state.studios:
        raise StashError(f"studio with id {parent} not found")
    return state.studios[state.add_studio(name, aliases=input.get("aliases"), parent_id=parent)]
