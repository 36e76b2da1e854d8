"""The plugin, installed from its own package zip, run exactly as Stash runs it, against the test
server: stdin JSON, another working directory, PYTHONPATH = the plugins root, stderr parsed by
Stash's rules, stdout decoded as Stash decodes it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stash_server import PluginRun, StashTestServer, hook_args, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}


@pytest.fixture
def stash(library: Path) -> StashTestServer:
    with StashTestServer() as server:
        server.state.add_tag("Favourite")
        server.state.add_scene("cuts", path=str(library / "cuts.mp4"), tag_ids=[1])
        yield server


def run_task(plugin_dir: Path, stash: StashTestServer | None, mode: str, args: dict | None = None,
             **options: object) -> PluginRun:
    """Run the task whose defaultArgs name ``mode``, with ``args`` as the caller's args_map."""
    task = task_args(MANIFEST, TASK_FOR_MODE[mode])
    return run_plugin(plugin_dir, "ai_tagger", {**task, **(args or {})}, stash, **options)


def errors_in(run: PluginRun) -> list[str]:
    return [text for level, text in run.log if level == "e"]


def test_manifest_passes_stash_strict_parser_and_every_task_names_its_mode() -> None:
    assert sorted(TASK_FOR_MODE) == sorted(("untagged", "queue", "scene", "all", "gallery", "undo", "report",
                                            "maintenance"))
    assert [hook["triggeredBy"] for hook in MANIFEST["hooks"]] == [["Scene.Create.Post"]]
    for path in MANIFEST["ui"]["javascript"] + MANIFEST["ui"]["css"]:
        assert (ROOT / path).is_file(), path


def test_no_other_yml_file_would_be_loaded_by_stash_as_a_plugin() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.yml"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.split() == ["ai_tagger.yml"]


def test_hook_queues_a_new_scene_without_the_analysis_runtime(plugin_dir: Path, stash: StashTestServer,
                                                               _isolated_data_dir: Path) -> None:
    context = {"id": 45, "type": "Scene.Create.Post", "input": None, "inputFields": None}
    # Stash's own Python may have nothing but the standard library: the hook must not need more.
    run = run_plugin(plugin_dir, "ai_tagger", hook_args(MANIFEST, "Queue new scenes", context), stash,
                     python=sys._base_executable, env={"PYTHONNOUSERSITE": "1"})
    assert (run.error, run.output) == (None, {"hook": "Scene.Create.Post", "queued": "45"})
    assert run.wall < 1.0, f"hook took {run.wall:.2f} s"
    print(f"hook: {run.wall * 1000:.0f} ms from stdin to exit")
    queued = sqlite3.connect(_isolated_data_dir / "tagger.sqlite").execute("SELECT scene_id FROM queue")
    assert [row[0] for row in queued] == ["45"]
    # Inside Stash's scan: one read of the plugin's settings (cached for a minute), nothing else.
    assert [name for name, _, _ in stash.requests] == ["PluginSettings"]


def test_hook_imports_nothing_heavy(plugin_dir: Path, stash: StashTestServer) -> None:
    context = {"id": 7, "type": "Scene.Create.Post", "input": None, "inputFields": None}
    run = run_plugin(plugin_dir, "ai_tagger", hook_args(MANIFEST, "Queue new scenes", context), stash,
                     env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.split("|")[-1].strip().split(".")[0] for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "tagger" in imported
    assert not imported & {"numpy", "av", "cv2", "onnxruntime", "yaml", "scenedetect"}


def test_report_analyses_a_scene_and_changes_nothing(plugin_dir: Path, stash: StashTestServer) -> None:
    before = stash.state.snapshot()
    run = run_task(plugin_dir, stash, "report", {"scene_id": "1"})
    assert run.error is None, errors_in(run)
    (scene,) = run.output["scenes"]
    assert scene["scene_id"] == "1" and scene["source"] == "path"
    cuts = [shot["start"] for shot in scene["shots"][1:]]
    assert [round(cut) for cut in cuts] == [6, 10, 13]  # the cut at 6 s, out of black at 10 s, 13 s
    assert [(round(s["start"]), round(s["end"])) for s in scene["technical"]] == [(9, 10)]
    assert run.progress == sorted(run.progress) and run.progress[-1] == 1.0
    assert stash.state.snapshot() == before


def test_unknown_mode_is_named(plugin_dir: Path, stash: StashTestServer) -> None:
    run = run_plugin(plugin_dir, "ai_tagger", {"mode": "tagall"}, stash)
    assert "mode: 'tagall' is not a mode; choose one of: untagged" in run.error


def test_dead_stash_is_reported_with_its_address(plugin_dir: Path) -> None:
    server = StashTestServer().start()
    server.stop()
    run = run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, "Report (dry run)"), server)
    assert run.error.startswith(f"Stash at {server.url} is not reachable: connection refused")
    assert "Traceback" not in run.stderr


def test_wrong_setting_in_stash_stops_before_any_work(plugin_dir: Path, stash: StashTestServer) -> None:
    stash.state.plugin_config["ai_tagger"] = {"interval": 0}
    run = run_task(plugin_dir, stash, "report", {"scene_id": "1"})
    assert run.error == "interval: 0 is out of range; allowed: 0.1..600"
    assert [name for name, _, _ in stash.requests if name == "FindScene"] == []


def test_a_killed_task_leaves_nothing_that_blocks_the_next_run(plugin_dir: Path, stash: StashTestServer,
                                                               _isolated_data_dir: Path) -> None:
    killed = run_task(plugin_dir, stash, "report", {"scene_id": "1"}, kill_after=1.0)
    assert killed.error == "signal: killed" or killed.returncode == -9
    again = run_task(plugin_dir, stash, "report", {"scene_id": "1"})
    assert again.error is None, errors_in(again)
    assert len(again.output["scenes"][0]["shots"]) == 4
    check = sqlite3.connect(_isolated_data_dir / "tagger.sqlite").execute("PRAGMA integrity_check")
    assert check.fetchone() == ("ok",)


def test_a_file_not_visible_here_is_streamed_from_stash(plugin_dir: Path, library: Path) -> None:
    # Stash (say in Docker) sees the library under /media; this machine cannot read that path.
    with StashTestServer(media_paths={"/media": str(library)}) as server:
        server.state.add_scene("cuts", path="/media/cuts.mp4")
        run = run_task(plugin_dir, server, "report", {"scene_id": "1"})
    assert run.error is None, errors_in(run)
    (scene,) = run.output["scenes"]
    assert scene["source"] == "stream" and len(scene["shots"]) == 4


def test_a_path_mapping_reads_the_file_locally(plugin_dir: Path, library: Path) -> None:
    with StashTestServer(media_paths={"/media": str(library)}) as server:
        server.state.add_scene("cuts", path="/media/cuts.mp4")
        server.state.plugin_config["ai_tagger"] = {"pathMappings": f"/media={library}"}
        run = run_task(plugin_dir, server, "report", {"scene_id": "1"})
    assert run.error is None, errors_in(run)
    assert run.output["scenes"][0]["source"] == "path"


def test_a_long_task_switches_from_the_session_cookie_to_the_api_key(plugin_dir: Path, library: Path) -> None:
    with StashTestServer(api_key="secret-key", session_cookie="cookie-value") as server:
        server.state.add_scene("cuts", path=str(library / "cuts.mp4"))
        run = run_task(plugin_dir, server, "report", {"scene_id": "1"}, cookie="cookie-value")
    assert run.error is None, errors_in(run)
    names = [name for name, _, _ in server.requests]
    switch = names.index("ApiKey")
    assert all("cookie-value" in headers.get("cookie", "") for headers in server.request_headers[:switch + 1])
    assert all(headers.get("apikey") == "secret-key" for headers in server.request_headers[switch + 1:])


def test_stash_without_our_credentials_is_an_auth_error_not_a_crash(plugin_dir: Path, library: Path) -> None:
    with StashTestServer(api_key="secret-key") as server:
        run = run_task(plugin_dir, server, "report", {"scene_id": "1"})
    assert "refused PluginSettings (HTTP 401)" in run.error and "api_key" in run.error


def test_a_briefly_unavailable_stash_is_retried(plugin_dir: Path, stash: StashTestServer) -> None:
    stash.fail_next(2, status=503)
    run = run_task(plugin_dir, stash, "report", {"scene_id": "1"})
    assert run.error is None, errors_in(run)
