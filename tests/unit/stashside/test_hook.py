"""The hook on new imports: every new scene is queued; with auto-tagging on, a scan's burst of
imports asks Stash for exactly one queue task; the queue task starting lets later imports ask
again; nothing the hook does can fail a scan."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from tagger.stashside.hook import handle_hook
from tagger.stashside.protocol import PluginInput, ServerConnection, StashLog
from tagger.stashside.store import Store
from tests.stash_server import StashTestServer, hook_args, load_manifest, run_plugin

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")


def new_scene(server: StashTestServer, scene_id: int) -> PluginInput:
    """What Stash sends the hook for a scene a scan created."""
    context = {"id": scene_id, "type": "Scene.Create.Post", "input": None, "inputFields": None}
    return PluginInput(server=ServerConnection(host="0.0.0.0", port=server.port),
                       args={"mode": "hook", "hookContext": context})


def queue_tasks(server: StashTestServer) -> list[dict]:
    return [job for job in server.state.jobs.values() if job.get("task_name") == "Tag queued scenes"]


def test_a_scan_of_a_thousand_new_scenes_queues_all_of_them_and_one_task(tmp_path: Path) -> None:
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = {"autoTagNew": True}
        log = StashLog(io.StringIO())
        outputs = [handle_hook(new_scene(server, i), tmp_path, log) for i in range(1, 1001)]
        (job,) = queue_tasks(server)
        assert job["args_map"] == {"mode": "queue"}
        assert [o["task"] for o in outputs if "task" in o] == [str(job["id"])]
        # The setting was read once, not once per scene.
        assert [name for name, _, _ in server.requests] == ["PluginSettings", "RunPluginTask"]
    with Store(tmp_path / "tagger.sqlite") as store:
        assert len(store.queued()) == 1000


def test_without_auto_tagging_new_scenes_are_only_queued(tmp_path: Path) -> None:
    with StashTestServer() as server:
        log = StashLog(io.StringIO())
        for i in range(1, 51):
            handle_hook(new_scene(server, i), tmp_path, log)
        assert queue_tasks(server) == []
        assert [name for name, _, _ in server.requests] == ["PluginSettings"]


def test_imports_after_the_queue_task_started_ask_for_another(tmp_path: Path) -> None:
    from tagger.stashside.hook import release_queue_task_claim

    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = {"autoTagNew": True}
        log = StashLog(io.StringIO())
        handle_hook(new_scene(server, 1), tmp_path, log)
        handle_hook(new_scene(server, 2), tmp_path, log)
        with Store(tmp_path / "tagger.sqlite") as store:
            release_queue_task_claim(store)  # what the queue task does when it starts
        handle_hook(new_scene(server, 3), tmp_path, log)
        assert len(queue_tasks(server)) == 2


def test_a_stash_that_refuses_the_task_does_not_fail_the_scan(tmp_path: Path) -> None:
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = {"autoTagNew": True}
        stream = io.StringIO()
        server.fail_next(4, status=503)  # Stash busy: neither the settings nor the task get through
        output = handle_hook(new_scene(server, 1), tmp_path, StashLog(stream))
        assert output == {"hook": "Scene.Create.Post", "queued": "1"}
        assert "could not start 'Tag queued scenes'" in stream.getvalue()
    with Store(tmp_path / "tagger.sqlite") as store:
        assert [item.scene_id for item in store.queued()] == ["1"]


def test_the_hook_run_as_stash_runs_it_queues_one_task_for_many_imports(
        plugin_dir: Path, _isolated_data_dir: Path) -> None:
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = {"autoTagNew": True}
        walls = []
        for scene_id in range(1, 11):
            context = {"id": scene_id, "type": "Scene.Create.Post", "input": None, "inputFields": None}
            args = hook_args(MANIFEST, "Queue new scenes", context)
            run = run_plugin(plugin_dir, "ai_tagger", args, server, python=sys._base_executable,
                             env={"PYTHONNOUSERSITE": "1"})
            assert run.error is None, run.stderr
            walls.append(run.wall)
        assert len(queue_tasks(server)) == 1
    walls.sort()
    median, worst = walls[len(walls) // 2] * 1000, walls[-1] * 1000
    print(f"hook, stdin to exit: median {median:.0f} ms, max {worst:.0f} ms")
    assert walls[-1] < 1.0
