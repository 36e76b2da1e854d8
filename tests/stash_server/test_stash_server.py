"""The stand-in Stash server behaves like Stash, errors included (real schema, no mocks)."""

from __future__ import annotations

import json
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stash_server import (
    ManifestError,
    StashTestServer,
    hook_args,
    load_manifest,
    run_plugin,
    task_args,
)


def post(server: StashTestServer, query: str, variables: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST a GraphQL request; return (status, decoded body or {})."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{server.url}/graphql", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {}


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    """GET a URL without following redirects; return (status, body, headers)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


@pytest.fixture
def server() -> Iterator[StashTestServer]:
    with StashTestServer() as srv:
        yield srv


class TestGraphQLRequests:
    def test_unknown_field_is_rejected_with_422_naming_it(self, server: StashTestServer) -> None:
        status, body = post(server, "{ findScenes { count bogus_field } }")
        assert status == 422
        assert body["data"] is None
        error = body["errors"][0]
        assert "bogus_field" in error["message"] and "FindScenesResultType" in error["message"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    def test_syntax_error_is_a_422_parse_failure(self, server: StashTestServer) -> None:
        status, body = post(server, "{ findScenes { count ")
        assert status == 422
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"

    def test_wrong_variable_type_is_a_422(self, server: StashTestServer) -> None:
        status, body = post(server, "query($id: ID) { findScene(id: $id) { id } }",
                            {"id": {"not": "an id"}})
        assert status == 422
        assert "$id" in body["errors"][0]["message"]

    def test_requests_are_logged(self, server: StashTestServer) -> None:
        post(server, "query Ver { version { version } }")
        assert server.requests[-1][1] == "query Ver { version { version } }"

    def test_unsupported_filter_key_is_an_error_not_ignored(self, server: StashTestServer) -> None:
        status, body = post(server, '{ findScenes(scene_filter: {rating100: {value: 1, modifier: '
                                    'EQUALS}}) { count } }')
        assert status == 200
        assert "rating100" in body["errors"][0]["message"]

    def test_unknown_scene_id_answers_null_without_error(self, server: StashTestServer) -> None:
        status, body = post(server, '{ findScene(id: "99") { id } }')
        assert (status, body) == (200, {"data": {"findScene": None}})


class TestTags:
    CREATE = "mutation($i: TagCreateInput!) { tagCreate(input: $i) { id name aliases } }"

    def test_name_used_as_alias_is_rejected_case_insensitively(self, server: StashTestServer) -> None:
        server.state.add_tag("Outdoor", aliases=["Outside"])
        status, body = post(server, self.CREATE, {"i": {"name": "OUTSIDE"}})
        assert status == 200
        assert body["data"]["tagCreate"] is None
        assert body["errors"][0]["message"] == "name 'OUTSIDE' is used as alias for 'Outdoor'"
        assert body["errors"][0]["path"] == ["tagCreate"]

    def test_duplicate_name_is_rejected(self, server: StashTestServer) -> None:
        server.state.add_tag("Beach")
        _, body = post(server, self.CREATE, {"i": {"name": "beach"}})
        assert body["errors"][0]["message"] == "tag with name 'beach' already exists"

    def test_find_tags_by_name_equals_ignores_case(self, server: StashTestServer) -> None:
        tid = server.state.add_tag("Beach")
        _, body = post(server, '{ findTags(tag_filter: {name: {value: "BEACH", modifier: EQUALS}})'
                               ' { count tags { id } } }')
        assert body["data"]["findTags"] == {"count": 1, "tags": [{"id": str(tid)}]}


class TestScenes:
    def test_scene_update_replaces_lists_and_keeps_absent_fields(self, server: StashTestServer) -> None:
        a, b, c = (server.state.add_tag(n) for n in "abc")
        sid = server.state.add_scene("Keep me", tag_ids=[a, b])
        _, body = post(server, "mutation($i: SceneUpdateInput!) { sceneUpdate(input: $i) "
                               "{ title tags { id } } }", {"i": {"id": str(sid), "tag_ids": [str(c)]}})
        assert body["data"]["sceneUpdate"] == {"title": "Keep me", "tags": [{"id": str(c)}]}

    def test_bulk_add_keeps_existing_tags(self, server: StashTestServer) -> None:
        a, b = server.state.add_tag("a"), server.state.add_tag("b")
        sid = server.state.add_scene("s", tag_ids=[a])
        post(server, "mutation($i: BulkSceneUpdateInput!) { bulkSceneUpdate(input: $i) { id } }",
             {"i": {"ids": [str(sid)], "tag_ids": {"ids": [str(b)], "mode": "ADD"}}})
        assert server.state.scenes[sid]["tag_ids"] == [a, b]

    def test_update_with_missing_tag_fails_and_changes_nothing(self, server: StashTestServer) -> None:
        sid = server.state.add_scene("s")
        before = server.state.snapshot()
        _, body = post(server, "mutation($i: SceneUpdateInput!) { sceneUpdate(input: $i) { id } }",
                       {"i": {"id": str(sid), "tag_ids": ["77"]}})
        assert "FOREIGN KEY constraint failed" in body["errors"][0]["message"]
        assert server.state.snapshot()["scenes"] == before["scenes"]

    def test_paging_and_tag_filter_with_depth(self, server: StashTestServer) -> None:
        parent = server.state.add_tag("Parent")
        child = server.state.add_tag("Child", parent_ids=[parent])
        grandchild = server.state.add_tag("Grandchild", parent_ids=[child])
        ids = [server.state.add_scene(f"s{i}", tag_ids=[grandchild]) for i in range(3)]
        server.state.add_scene("untagged")
        query = ("query($t: [ID!], $d: Int, $p: Int) { findScenes("
                 "filter: {per_page: 2, page: $p, sort: \"id\"},"
                 " scene_filter: {tags: {value: $t, modifier: INCLUDES, depth: $d}})"
                 " { count scenes { id } } }")
        _, direct = post(server, query, {"t": [str(parent)], "d": 0, "p": 1})
        _, page2 = post(server, query, {"t": [str(parent)], "d": -1, "p": 2})
        assert direct["data"]["findScenes"] == {"count": 0, "scenes": []}
        assert page2["data"]["findScenes"] == {"count": 3, "scenes": [{"id": str(ids[2])}]}

    def test_marker_ending_before_start_is_rejected(self, server: StashTestServer) -> None:
        sid, tid = server.state.add_scene("s"), server.state.add_tag("t")
        _, body = post(server, "mutation($i: SceneMarkerCreateInput!) { sceneMarkerCreate(input: $i)"
                               " { id } }", {"i": {"title": "x", "seconds": 10.0, "end_seconds": 5.0,
                                                   "scene_id": str(sid), "primary_tag_id": str(tid)}})
        assert body["errors"][0]["message"] == (
            "end_seconds (5.000000) must be greater than or equal to seconds (10.000000)")
        assert server.state.markers == {}


class TestAuthAndMedia:
    def test_graphql_without_credentials_is_401(self) -> None:
        with StashTestServer(api_key="secret") as srv:
            status, body = post(srv, "{ version { version } }")
            ok, _ = post(srv, "{ version { version } }", headers={"ApiKey": "secret"})
        assert (status, body, ok) == (401, {}, 200)

    def test_stream_without_credentials_redirects_to_login(self) -> None:
        with StashTestServer(session_cookie="abc") as srv:
            sid = srv.state.add_scene("s", path=__file__)
            status, _, headers = get(f"{srv.url}/scene/{sid}/stream")
            ok, _, _ = get(f"{srv.url}/scene/{sid}/stream", {"Cookie": "session=abc"})
        assert status == 302 and headers["Location"].startswith("/login?returnURL=")
        assert ok == 200

    def test_range_request_returns_206_with_the_right_bytes(self, server: StashTestServer,
                                                            tmp_path: Path) -> None:
        video = tmp_path / "v.mp4"
        video.write_bytes(bytes(range(256)) * 4)
        sid = server.state.add_scene("s", path=str(video))
        status, body, headers = get(f"{server.url}/scene/{sid}/stream", {"Range": "bytes=10-19"})
        assert (status, body, headers["Content-Range"]) == (206, bytes(range(10, 20)), "bytes 10-19/1024")
        bad, _, bad_headers = get(f"{server.url}/scene/{sid}/stream", {"Range": "bytes=5000-"})
        assert (bad, bad_headers["Content-Range"]) == (416, "bytes */1024")

    def test_performer_without_image_gets_default_path(self, server: StashTestServer) -> None:
        server.state.add_performer("Ann")
        _, body = post(server, "{ findPerformers(filter: {q: \"ann\"}) { performers { image_path } } }")
        path = body["data"]["findPerformers"]["performers"][0]["image_path"]
        assert path.endswith("?default=true")
        assert get(path)[0] == 200

    def test_failures_can_be_injected_and_server_stopped(self, server: StashTestServer) -> None:
        server.fail_next(1, status=503)
        assert post(server, "{ version { version } }")[0] == 503
        assert post(server, "{ version { version } }")[0] == 200
        server.stop()
        with pytest.raises(urllib.error.URLError):
            post(server, "{ version { version } }")


PLUGIN_YML = """\
name: Echo
exec: [python, "{pluginDir}/echo.py"]
interface: raw
tasks:
  - name: Run
    description: echo
    defaultArgs: {mode: run}
hooks:
  - name: OnUpdate
    triggeredBy: [Scene.Update.Post]
    defaultArgs: {mode: hook}
settings:
  level: {displayName: Level, type: NUMBER}
"""

PLUGIN_PY = """\
import json, os, sys
data = json.loads(sys.stdin.read())
sys.stderr.write("\\x01i\\x02hello\\n")
sys.stderr.write("\\x01p\\x020.5\\n")
sys.stderr.write("plain line\\n")
conn = data["server_connection"]
print(json.dumps({"output": {"args": data["args"], "cwd": os.getcwd(),
                             "cookie": conn.get("SessionCookie", {}).get("Value"),
                             "path": os.environ["PYTHONPATH"]}, "error": None}))
sys.exit(int(data["args"].get("exit", 0)))
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins" / "echo"
    folder.mkdir(parents=True)
    (folder / "echo.yml").write_text(PLUGIN_YML)
    (folder / "echo.py").write_text(PLUGIN_PY)
    return folder


class TestPluginRunner:
    def test_runs_like_stash(self, plugin_dir: Path) -> None:
        with StashTestServer(session_cookie="c00kie") as srv:
            args = task_args(load_manifest(plugin_dir / "echo.yml"), "Run")
            run = run_plugin(plugin_dir, "echo", args, srv, python=sys.executable)
        assert run.error is None and run.returncode == 0
        assert run.output["args"] == {"mode": "run"} and run.output["cookie"] == "c00kie"
        assert run.output["cwd"] != str(plugin_dir)
        assert run.output["path"] == str(plugin_dir.parent)
        assert run.log == [("i", "hello"), ("e", "plain line")] and run.progress == [0.5]

    def test_nonzero_exit_without_error_reads_exit_status(self, plugin_dir: Path) -> None:
        run = run_plugin(plugin_dir, "echo.yml", {"exit": 3}, None)
        assert run.error == "exit status 3"

    def test_hook_args_carry_the_context(self, plugin_dir: Path) -> None:
        manifest = load_manifest(plugin_dir / "echo.yml")
        args = hook_args(manifest, "OnUpdate", {"id": 4, "type": "Scene.Update.Post"})
        assert args == {"mode": "hook", "hookContext": {"id": 4, "type": "Scene.Update.Post"}}

    @pytest.mark.parametrize("bad", [
        "name: X\nunknown: 1\n",
        "name: X\nsettings:\n  a: {displayName: A, type: STRING, default: x}\n",
        "name: X\ntasks:\n  - name: T\n    args: {}\n",
    ], ids=["unknown top-level key", "setting default", "unknown task key"])
    def test_manifest_is_parsed_strictly(self, tmp_path: Path, bad: str) -> None:
        path = tmp_path / "bad.yml"
        path.write_text(textwrap.dedent(bad))
        with pytest.raises(ManifestError):
            load_manifest(path)

    def test_stop_kills_only_the_child_and_a_grandchild_holding_stdout_keeps_it_hanging(
            self, tmp_path: Path) -> None:
        folder = tmp_path / "hang"
        folder.mkdir()
        (folder / "hang.yml").write_text('name: Hang\nexec: [python, "{pluginDir}/hang.py"]\n')
        (folder / "hang.py").write_text(
            "import subprocess, sys, time\nsys.stdin.read()\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5)'])\n"
            "time.sleep(30)\n")
        run = run_plugin(folder, "hang", {}, None, kill_after=0.3, timeout=20)
        assert run.error == "signal: killed" and not run.timed_out
        assert run.wall >= 1.2
