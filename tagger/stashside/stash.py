"""Everything the tagger says to Stash: every GraphQL operation, the client, and path mapping.

Standard library only (``urllib``): this module runs on the hook path and in the Stash-side entry,
where the analysis runtime may not be installed (Stash's Docker image is Alpine). stashapp-tools is
not used: its constructor sends a full schema introspection (too slow for a hook), it needs
``requests``, and its defaults fetch whole objects.

Every operation is an ``Operation`` constant in this module; creating one registers it in
``OPERATIONS``, and the test suite validates every registered document against Stash's real
schema. The client only sends registered operations.

Errors (see ``tagger.errors``): no answer after retries -> ``StashUnreachableError`` ("Stash at
URL is not reachable: ..."); a non-idempotent mutation sent but not answered ->
``StashReplyLostError`` (never sent twice); 401/403 -> ``StashAuthError``; GraphQL errors ->
``GraphQLError`` naming the operation.
"""

from __future__ import annotations

import http.client
import json
import socket
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import (
    GraphQLError,
    StashAuthError,
    StashError,
    StashReplyLostError,
    StashUnreachableError,
)
from tagger.redact import MASK, register_secret, url_without_secrets

OPERATIONS: dict[str, Operation] = {}
"""Every operation the project sends, by name (filled as the constants below are created)."""


@dataclass(frozen=True)
class Operation:
    """One named GraphQL document.

    ``idempotent`` operations are sent again after any failure. The others (creations, deletions,
    queueing a task) are sent again only when the request certainly did not reach Stash; after
    it may have, the client raises ``StashReplyLostError`` and the caller looks in Stash.
    """

    name: str
    document: str
    idempotent: bool = True

    def __post_init__(self) -> None:
        if self.name in OPERATIONS:
            raise ValueError(f"operation {self.name!r} is defined twice")
        OPERATIONS[self.name] = self


SCENE_FIELDS = """
fragment SceneForTagging on Scene {
  id
  title
  organized
  files {
    id path basename size duration frame_rate width height video_codec mod_time
    oshash: fingerprint(type: "oshash")
  }
  paths { stream screenshot }
  tags { id name }
  performers { id name }
  studio { id name }
  scene_markers { id title seconds end_seconds primary_tag { id name } tags { id } }
}
"""

VERSION = Operation("Version", "query Version { version { version hash build_time } }")
API_KEY = Operation("ApiKey", "query ApiKey { configuration { general { apiKey } } }")
LIBRARY_FOLDERS = Operation(
    "LibraryFolders", "query LibraryFolders { configuration { general { stashes { path excludeVideo } } } }")
PLUGIN_SETTINGS = Operation(
    "PluginSettings",
    "query PluginSettings($ids: [ID!]) { configuration { plugins(include: $ids) } }",
)
FIND_SCENES = Operation(
    "FindScenes",
    """query FindScenes($filter: FindFilterType, $scene_filter: SceneFilterType) {
  findScenes(filter: $filter, scene_filter: $scene_filter) { count scenes { ...SceneForTagging } }
}""" + SCENE_FIELDS,
)
FIND_SCENE = Operation(
    "FindScene",
    "query FindScene($id: ID!) { findScene(id: $id) { ...SceneForTagging } }" + SCENE_FIELDS,
)
FIND_TAG_BY_NAME = Operation(
    "FindTagByName",
    """query FindTagByName($name: String!) {
  findTags(tag_filter: {name: {value: $name, modifier: EQUALS}}, filter: {per_page: 5}) {
    tags { id name aliases }
  }
}""",
)

FIND_TAG_BY_NAME_OR_ALIAS = Operation(
    "FindTagByNameOrAlias",
    """query FindTagByNameOrAlias($name: String!) {
  findTags(
    tag_filter: {name: {value: $name, modifier: EQUALS}, OR: {aliases: {value: $name, modifier: EQUALS}}}
    filter: {per_page: 20}
  ) { tags { id name aliases description } }
}""",
)
TAG_USAGE = Operation(
    "TagUsage",
    """query TagUsage($id: ID!) {
  findTag(id: $id) {
    id name description
    scene_count scene_marker_count image_count gallery_count performer_count studio_count group_count
    children { id }
  }
}""",
)
TAG_CREATE = Operation(
    "TagCreate",
    """mutation TagCreate($input: TagCreateInput!) { tagCreate(input: $input) { id name } }""",
    idempotent=False,
)
TAG_DESTROY = Operation(
    "TagDestroy",
    "mutation TagDestroy($id: ID!) { tagDestroy(input: {id: $id}) }",
    idempotent=False,
)
BULK_SCENE_TAGS = Operation(  # ADD/REMOVE leave every other tag alone: safe beside user edits
    "BulkSceneTags",
    """mutation BulkSceneTags($ids: [ID!], $tag_ids: BulkUpdateIds) {
  bulkSceneUpdate(input: {ids: $ids, tag_ids: $tag_ids}) { id }
}""",
)
BULK_SCENE_PERFORMERS = Operation(
    "BulkScenePerformers",
    """mutation BulkScenePerformers($ids: [ID!], $performer_ids: BulkUpdateIds) {
  bulkSceneUpdate(input: {ids: $ids, performer_ids: $performer_ids}) { id }
}""",
)
SCENE_SET_STUDIO = Operation(  # only studio_id is given, so no list of the scene is replaced
    "SceneSetStudio",
    """mutation SceneSetStudio($id: ID!, $studio_id: ID) {
  sceneUpdate(input: {id: $id, studio_id: $studio_id}) { id studio { id } }
}""",
)
MARKER_CREATE = Operation(
    "MarkerCreate",
    """mutation MarkerCreate($input: SceneMarkerCreateInput!) { sceneMarkerCreate(input: $input) { id } }""",
    idempotent=False,
)
MARKER_UPDATE = Operation(
    "MarkerUpdate",
    """mutation MarkerUpdate($input: SceneMarkerUpdateInput!) { sceneMarkerUpdate(input: $input) { id } }""",
)
MARKERS_DESTROY = Operation(
    "MarkersDestroy",
    "mutation MarkersDestroy($ids: [ID!]!) { sceneMarkersDestroy(ids: $ids) }",
    idempotent=False,
)

FIND_PERFORMERS = Operation(
    "FindPerformers",
    """query FindPerformers($filter: FindFilterType) {
  findPerformers(filter: $filter) { count performers { id name disambiguation alias_list image_path } }
}""",
)
PERFORMER_CREATE = Operation(
    "PerformerCreate",
    """mutation PerformerCreate($input: PerformerCreateInput!) {
  performerCreate(input: $input) { id name }
}""",
    idempotent=False,
)

RUN_PLUGIN_TASK = Operation(  # args_map, not the deprecated args (stashapi's trap, see STASH.md)
    "RunPluginTask",
    """mutation RunPluginTask($plugin: ID!, $task: String!, $args: Map) {
  runPluginTask(plugin_id: $plugin, task_name: $task, args_map: $args)
}""",
    idempotent=False,
)

ALL_STUDIOS = Operation(
    "AllStudios",
    "query AllStudios { findStudios(filter: {per_page: -1}) { studios { id name aliases } } }",
)

Transport = Callable[[urllib.request.Request, float], tuple[int, bytes]]
"""Sends one HTTP request and returns (status, body). Raises ``urllib.error.URLError`` when the
request was not sent whole (refused, unknown host, failed while sending: Stash cannot have acted
on it), and any other OSError when it was sent but no whole answer came back."""


def urllib_transport(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    """The default transport: urllib, with HTTP errors returned as statuses, not raised.

    urllib wraps only errors of connecting and sending in ``URLError``; those of the answer
    (reset, closed, timed out) come raw, or as ``http.client.HTTPException`` (cut short), which
    is turned into a ``ConnectionError`` here.
    """
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        raise  # RemoteDisconnected is an OSError as well as an HTTPException: kept as it is
    except http.client.HTTPException as error:
        raise ConnectionError(f"the answer was cut short ({type(error).__name__})") from error


@dataclass
class StashClient:
    """A GraphQL client for one Stash server.

    Arguments:
        url: Stash's base URL, e.g. ``http://127.0.0.1:9999``.
        api_key: sent as the ``ApiKey`` header when set.
        session_cookie: (name, value) of the session cookie Stash gave the plugin.
        transport: replaces urllib (tests).
        attempts: tries per request when Stash does not answer or answers 502/503/504.
        backoff: seconds before the second try; doubled for each further one.
    """

    url: str
    api_key: str | None = None
    session_cookie: tuple[str, str] | None = None
    transport: Transport = urllib_transport
    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    def __setattr__(self, name: str, value: Any) -> None:
        # Every credential the client is given is known to the redaction from that moment on.
        if name == "api_key" and value:
            register_secret(str(value))
        elif name == "session_cookie" and value:
            register_secret(str(value[1]))
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return (f"StashClient(url={self.url!r}, api_key={MASK if self.api_key else None!r}, "
                f"session_cookie={MASK if self.session_cookie else None!r})")

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request to Stash (GraphQL, stream, images)."""
        if self.api_key:
            return {"ApiKey": self.api_key}
        if self.session_cookie:
            return {"Cookie": f"{self.session_cookie[0]}={self.session_cookie[1]}"}
        return {}

    def execute(self, operation: Operation, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a registered operation and return its ``data``.

        Raises:
            StashUnreachableError, StashAuthError, GraphQLError.
        """
        if OPERATIONS.get(operation.name) is not operation:
            raise ValueError(f"operation {operation.name!r} is not registered in tagger.stashside.stash")
        body = json.dumps({"operationName": operation.name, "query": operation.document,
                           "variables": variables or {}}).encode("utf-8")
        status, payload = self._send(body, operation)
        return self._decode(operation, status, payload)

    def _send(self, body: bytes, operation: Operation) -> tuple[int, bytes]:
        last_problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(
                f"{self.url}/graphql", data=body, method="POST",
                headers={"Content-Type": "application/json", "Accept": "application/json",
                         **self.auth_headers},
            )
            try:
                status, payload = self.transport(request, self.timeout)
            except urllib.error.URLError as error:  # not sent whole: safe to send again
                last_problem = describe_os_error(error)
                continue
            except (TimeoutError, socket.timeout) as error:
                last_problem = f"no answer within {self.timeout:g} s ({error})"
                if not operation.idempotent:
                    raise self._reply_lost(operation, last_problem, in_flight=True) from error
                continue
            except OSError as error:
                last_problem = describe_os_error(error)
                if not operation.idempotent:
                    raise self._reply_lost(operation, last_problem, in_flight=False) from error
                continue
            if status in (502, 503, 504):
                last_problem = f"HTTP {status}"
                # A proxy's 502/503/504 may come after it passed the request on; after a 504
                # (it stopped waiting) Stash may even be applying it still.
                if not operation.idempotent:
                    raise self._reply_lost(operation, last_problem, in_flight=status == 504)
                continue
            return status, payload
        raise StashUnreachableError(
            f"Stash at {self.url} is not reachable: {last_problem} (after {self.attempts} tries). "
            "Check that Stash is running and that the URL is right."
        )

    def _reply_lost(self, operation: Operation, problem: str, *, in_flight: bool) -> StashReplyLostError:
        return StashReplyLostError(
            f"Stash at {self.url} may have applied {operation.name}, but its answer was lost "
            f"({problem}); it was not sent again, so that it cannot happen twice.",
            operation=operation.name, in_flight=in_flight,
        )

    def _decode(self, operation: Operation, status: int, payload: bytes) -> dict[str, Any]:
        if status in (401, 403):
            raise StashAuthError(
                f"Stash at {self.url} refused {operation.name} (HTTP {status}): it needs credentials. "
                "Set api_key (Stash: Settings > Security > API Key) in the plugin settings or with "
                "--api-key."
            )
        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = payload[:200].decode("utf-8", "replace")
            raise StashError(f"Stash at {self.url} answered {operation.name} with HTTP {status} and "
                             f"no JSON: {snippet!r}") from None
        errors = document.get("errors") if isinstance(document, dict) else None
        if errors:
            raise GraphQLError(operation.name, [_error_text(error) for error in errors])
        if status != 200 or not isinstance(document.get("data"), dict):
            raise StashError(f"Stash at {self.url} answered {operation.name} with HTTP {status}")
        return document["data"]

    def use_api_key_if_set(self) -> bool:
        """Switch from the session cookie to Stash's API key, when Stash has one.

        The cookie Stash hands a plugin expires (max_session_age, default an hour); a long task
        keeps working with the key. Returns True when the key is now in use.
        """
        if self.api_key:
            return True
        key = self.execute(API_KEY)["configuration"]["general"]["apiKey"]
        if key:
            self.api_key = key
            return True
        return False

    def version(self) -> str:
        """Stash's version string, e.g. ``v0.30.1``."""
        version = self.execute(VERSION)["version"]
        return str(version.get("version") or version.get("hash") or "unknown")

    def library_folders(self) -> list[str]:
        """Stash's library folders that hold videos, as paths on Stash's machine."""
        stashes = self.execute(LIBRARY_FOLDERS)["configuration"]["general"]["stashes"] or []
        return [str(entry["path"]) for entry in stashes if not entry.get("excludeVideo")]

    def plugin_settings(self, plugin_id: str) -> dict[str, Any]:
        """The settings the user saved for this plugin in Stash (absent keys were never touched)."""
        plugins = self.execute(PLUGIN_SETTINGS, {"ids": [plugin_id]})["configuration"]["plugins"]
        settings = (plugins or {}).get(plugin_id) or {}
        return settings if isinstance(settings, dict) else {}

    def run_plugin_task(self, plugin_id: str, task_name: str, args: dict[str, Any]) -> str:
        """Queue one of a plugin's tasks in Stash's job queue; returns the job id."""
        return str(self.execute(RUN_PLUGIN_TASK, {"plugin": plugin_id, "task": task_name, "args": args})[
            "runPluginTask"])

    def find_scene(self, scene_id: str) -> StashScene | None:
        scene = self.execute(FIND_SCENE, {"id": str(scene_id)})["findScene"]
        return StashScene.from_graphql(scene) if scene else None

    def iter_scenes(self, scene_filter: dict[str, Any] | None = None, *, page_size: int = 100,
                    sort: str = "id") -> Iterator[tuple[StashScene, int]]:
        """Every scene matching ``scene_filter``, page by page, with the total count.

        Sorted by id ascending so that paging is stable while the library changes.
        """
        page = 1
        while True:
            result = self.execute(FIND_SCENES, {
                "filter": {"page": page, "per_page": page_size, "sort": sort, "direction": "ASC"},
                "scene_filter": scene_filter or {},
            })["findScenes"]
            for scene in result["scenes"]:
                yield StashScene.from_graphql(scene), int(result["count"])
            if len(result["scenes"]) < page_size or page * page_size >= int(result["count"]):
                return
            page += 1

    def studios(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """Every studio as (id, name, aliases): what on-screen text is matched against."""
        studios = self.execute(ALL_STUDIOS)["findStudios"]["studios"]
        return [(str(s["id"]), s["name"], tuple(s.get("aliases") or ())) for s in studios]

    def find_tags_named(self, name: str) -> list[StashTag]:
        """Tags whose name or an alias is ``name`` (case-insensitive, as Stash compares them)."""
        tags = self.execute(FIND_TAG_BY_NAME_OR_ALIAS, {"name": name})["findTags"]["tags"]
        wanted = name.casefold()
        return [StashTag(id=str(t["id"]), name=t["name"], aliases=tuple(t.get("aliases") or ()),
                         description=t.get("description") or "")
                for t in tags
                if wanted in (t["name"].casefold(), *(a.casefold() for a in t.get("aliases") or ()))]

    def tag_usage(self, tag_id: str) -> TagUsage | None:
        """How much a tag is used (None: it no longer exists)."""
        tag = self.execute(TAG_USAGE, {"id": str(tag_id)})["findTag"]
        if tag is None:
            return None
        uses = sum(int(tag.get(key) or 0) for key in (
            "scene_count", "scene_marker_count", "image_count", "gallery_count", "performer_count",
            "studio_count", "group_count"))
        return TagUsage(id=str(tag["id"]), name=tag["name"], description=tag.get("description") or "",
                        uses=uses, children=len(tag.get("children") or ()))

    def create_tag(self, name: str, description: str, parent_ids: list[str]) -> str:
        """Create a tag; returns its id."""
        data = {"name": name, "description": description, "parent_ids": parent_ids}
        return str(self.execute(TAG_CREATE, {"input": data})["tagCreate"]["id"])

    def destroy_tag(self, tag_id: str) -> None:
        self.execute(TAG_DESTROY, {"id": str(tag_id)})

    def change_scene_tags(self, scene_id: str, tag_ids: list[str], mode: str) -> None:
        """Add (``ADD``) or take off (``REMOVE``) tags, leaving the scene's other tags alone."""
        self.execute(BULK_SCENE_TAGS, {"ids": [str(scene_id)], "tag_ids": {"ids": tag_ids, "mode": mode}})

    def change_scene_performers(self, scene_id: str, performer_ids: list[str], mode: str) -> None:
        self.execute(BULK_SCENE_PERFORMERS, {"ids": [str(scene_id)],
                                             "performer_ids": {"ids": performer_ids, "mode": mode}})

    def set_scene_studio(self, scene_id: str, studio_id: str | None) -> None:
        self.execute(SCENE_SET_STUDIO, {"id": str(scene_id), "studio_id": studio_id})

    def create_marker(self, scene_id: str, title: str, seconds: float, end_seconds: float | None,
                      primary_tag_id: str, tag_ids: list[str]) -> str:
        data = {"scene_id": str(scene_id), "title": title, "seconds": seconds,
                "end_seconds": end_seconds, "primary_tag_id": primary_tag_id, "tag_ids": tag_ids}
        return str(self.execute(MARKER_CREATE, {"input": data})["sceneMarkerCreate"]["id"])

    def update_marker(self, marker_id: str, title: str, seconds: float, end_seconds: float | None) -> None:
        data = {"id": str(marker_id), "title": title, "seconds": seconds, "end_seconds": end_seconds}
        self.execute(MARKER_UPDATE, {"input": data})

    def destroy_markers(self, marker_ids: list[str]) -> None:
        self.execute(MARKERS_DESTROY, {"ids": [str(i) for i in marker_ids]})

    def iter_performers(self, *, page_size: int = 200) -> Iterator[StashPerformer]:
        """Every performer, by id."""
        page = 1
        while True:
            result = self.execute(FIND_PERFORMERS, {
                "filter": {"page": page, "per_page": page_size, "sort": "id", "direction": "ASC"}})
            found = result["findPerformers"]
            for p in found["performers"]:
                yield StashPerformer(id=str(p["id"]), name=p["name"],
                                     disambiguation=p.get("disambiguation") or "",
                                     aliases=tuple(p.get("alias_list") or ()),
                                     image_path=p.get("image_path") or "")
            if len(found["performers"]) < page_size or page * page_size >= int(found["count"]):
                return
            page += 1

    def find_performers_named(self, name: str) -> list[StashPerformer]:
        """Performers called ``name`` (case-insensitive, as Stash keeps names unique)."""
        found = self.execute(FIND_PERFORMERS, {"filter": {"q": name, "per_page": 50}})["findPerformers"]
        return [StashPerformer(id=str(p["id"]), name=p["name"], disambiguation=p.get("disambiguation") or "",
                               aliases=tuple(p.get("alias_list") or ()), image_path=p.get("image_path") or "")
                for p in found["performers"] if p["name"].casefold() == name.casefold()]

    def create_performer(self, name: str, image: str | None = None) -> str:
        """Create a performer (``image``: a data URL or an http URL Stash fetches); returns its id."""
        data: dict[str, Any] = {"name": name}
        if image:
            data["image"] = image
        return str(self.execute(PERFORMER_CREATE, {"input": data})["performerCreate"]["id"])

    def fetch(self, url: str, *, limit: int = 32 * 1024 * 1024) -> bytes:
        """GET one of Stash's media URLs (a performer image) with our credentials.

        Raises:
            StashError: not found, refused or unreachable (the message names the URL).
        """
        request = urllib.request.Request(url, headers=self.auth_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(limit)
        except urllib.error.HTTPError as error:
            raise StashError(f"Stash answered HTTP {error.code} for {url}") from None
        except OSError as error:
            raise StashError(f"{url} cannot be read: {describe_os_error(error)}") from None

    def find_tag_id(self, name: str) -> str | None:
        """The id of the tag called ``name`` (case-insensitive), or None."""
        for tag in self.execute(FIND_TAG_BY_NAME, {"name": name})["findTags"]["tags"]:
            if tag["name"].lower() == name.lower():
                return str(tag["id"])
        return None


@dataclass(frozen=True)
class StashFile:
    """One video file of a scene, as Stash describes it (``path`` is on Stash's machine)."""

    id: str
    path: str
    size: int | None = None
    duration: float | None = None
    oshash: str | None = None
    mod_time: str | None = None

    @property
    def identity(self) -> str:
        """The file as Stash last saw it: this changes when the file is replaced, edited or moved."""
        return f"{self.path}|{self.size}|{self.mod_time}|{self.oshash}"


@dataclass(frozen=True)
class StashPerformer:
    """A performer; ``image_path`` ends in ``default=true`` when the performer has no image."""

    id: str
    name: str
    disambiguation: str = ""
    aliases: tuple[str, ...] = ()
    image_path: str = ""

    @property
    def has_image(self) -> bool:
        return bool(self.image_path) and "default=true" not in self.image_path


@dataclass(frozen=True)
class StashTag:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class TagUsage:
    """A tag's name and description now, and how many objects use it (``children``: tags under it)."""

    id: str
    name: str
    description: str
    uses: int
    children: int


@dataclass(frozen=True)
class StashMarker:
    """A scene marker as Stash has it."""

    id: str
    title: str
    seconds: float
    end_seconds: float | None
    primary_tag_id: str
    primary_tag_name: str
    tag_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StashScene:
    """The fields of a scene the tagger needs."""

    id: str
    title: str
    files: tuple[StashFile, ...]
    stream_url: str | None
    tag_ids: frozenset[str] = frozenset()
    performer_ids: frozenset[str] = frozenset()
    studio_id: str | None = None
    markers: tuple[StashMarker, ...] = ()

    @property
    def primary_file(self) -> StashFile | None:
        return self.files[0] if self.files else None

    @classmethod
    def from_graphql(cls, scene: dict[str, Any]) -> StashScene:
        files = tuple(
            StashFile(id=str(f["id"]), path=f["path"], size=_int_or_none(f.get("size")),
                      duration=f.get("duration"), oshash=f.get("oshash") or None,
                      mod_time=f.get("mod_time"))
            for f in scene.get("files") or []
        )
        return cls(
            id=str(scene["id"]),
            title=scene.get("title") or (Path(files[0].path).name if files else f"scene {scene['id']}"),
            files=files,
            # Stash builds the stream URL with ``?apikey=KEY``: the key would travel in every error
            # that quotes the URL. The tagger sends it as the ApiKey header instead.
            stream_url=url_without_secrets((scene.get("paths") or {}).get("stream") or "") or None,
            tag_ids=frozenset(str(t["id"]) for t in scene.get("tags") or []),
            performer_ids=frozenset(str(p["id"]) for p in scene.get("performers") or []),
            studio_id=str(scene["studio"]["id"]) if scene.get("studio") else None,
            markers=tuple(
                StashMarker(id=str(m["id"]), title=m.get("title") or "", seconds=float(m["seconds"]),
                            end_seconds=None if m.get("end_seconds") is None else float(m["end_seconds"]),
                            primary_tag_id=str(m["primary_tag"]["id"]),
                            primary_tag_name=m["primary_tag"].get("name") or "",
                            tag_ids=tuple(str(t["id"]) for t in m.get("tags") or ()))
                for m in scene.get("scene_markers") or ()),
        )


@dataclass(frozen=True)
class MediaSource:
    """Where to read a scene's video: a local path, or Stash's stream URL with auth headers."""

    location: str
    via: str  # "path" or "stream"
    headers: dict[str, str] = field(default_factory=dict)
    unreadable: str | None = None
    """Why the file is not read from this machine's disk (with ``via`` stream)."""

    def read_failed(self, error: BaseException) -> str:
        """What a failed read of this source says: when the stream was only the fallback, why the
        file was not read here comes first (the cause, then its consequence)."""
        if self.unreadable is None:
            return str(error)
        return f"{self.unreadable}; streaming it from Stash failed too: {error}"


def media_source(scene: StashScene, map_path: Callable[[str], str | None],
                 auth_headers: dict[str, str]) -> MediaSource:
    """Choose how to read a scene: the mapped (or unmapped) local path when readable, else stream.

    Raises:
        StashError: the scene has no file, or neither a readable path nor a stream URL.
    """
    file = scene.primary_file
    if file is None:
        raise StashError(f"scene {scene.id} has no video file in Stash")
    mapped = map_path(file.path)
    problems = []
    for candidate in dict.fromkeys(p for p in (mapped, file.path) if p):
        problem = _local_file_problem(Path(candidate))
        if problem is None:
            return MediaSource(location=candidate, via="path")
        problems.append(f"{candidate}: {problem}")
    mapping = (f"path mapping tried: {file.path} -> {mapped}" if mapped
               else f"no path mapping matches {file.path}")
    unreadable = f"the file Stash names is not readable on this machine ({mapping}): {'; '.join(problems)}"
    if scene.stream_url:
        return MediaSource(location=scene.stream_url, via="stream", headers=dict(auth_headers),
                           unreadable=unreadable)
    raise StashError(f"scene {scene.id}: {unreadable}, and Stash gave no stream URL; "
                     "add a path mapping (Stash's prefix=this machine's prefix)")


def _local_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a video file here, or None when it can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "not found"
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        return f"cannot be looked at ({getattr(error, 'strerror', None) or error})"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):  # opening a FIFO would block until someone writes to it
        return "not a regular file (a pipe, socket or device)"
    try:
        with path.open("rb"):
            return None
    except OSError as error:
        return f"cannot be opened ({error.strerror})"


def client_for(url: str, api_key: str | None = None,
               session_cookie: tuple[str, str] | None = None) -> StashClient:
    """A client with the project's retry defaults."""
    return StashClient(url=url, api_key=api_key or None, session_cookie=session_cookie)


def describe_os_error(error: BaseException) -> str:
    """A network error in a few words: "connection refused", "unknown host (...)", or its reason."""
    reason = getattr(error, "reason", None) or error
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason})"
    return str(reason) or type(reason).__name__


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = str(error.get("message", error))
        path = error.get("path")
        return f"{message} (at {'.'.join(str(p) for p in path)})" if path else message
    return str(error)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
