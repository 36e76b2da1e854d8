"""Write-back end to end: the plugin, run as Stash runs it, tags a small library on the test Stash
server with the real models, and every promise is checked on the server's full state: a second
run changes nothing, killed runs converge to an uninterrupted run's result, undo restores every
scene exactly, the user's own data is never touched, and the review queue works through
``runPluginOperation``.

The library: two videos made from real face photos (a man, then a woman; both on screen for a
while) with a corner watermark ``BRANDX.COM`` and known cuts. The content model's face classes
are turned on as tags and markers (the shipped rules keep them off), and shot markers are on, so
a run maps a label to the user's tag by its alias, creates a tag and the parent tag, content and
shot markers, and sets a studio. (NudeNet 320n reads both women as FACE_FEMALE; it does not see
the man as FACE_MALE.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from tagger.media.sample import make_sample_video
from tagger.stashside.stash import OPERATIONS
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}

CONFIG = """\
shot_markers: true
tags:
  FACE_FEMALE: {enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true}
  FACE_MALE: {enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true}
"""


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> dict[str, Path]:
    def photo(name: str) -> Any:
        image = cv2.imread(str(shared_dir / "faces" / name))
        return cv2.resize(image, (image.shape[1] * 260 // image.shape[0], 260))

    folder = tmp_path_factory.mktemp("writeback-library")
    one = make_sample_video(folder / "one.mp4", duration_s=24, cut_times=(8.0, 16.0), black_spans=(),
                            text=("BRANDX.COM", 2.0, 22.0, "bottom-right"),
                            faces=[(photo("p03/1.jpg"), 3.0, 13.0, (0.3, 0.45)),
                                   (photo("p05/2.jpg"), 9.0, 20.0, (0.7, 0.45))])
    two = make_sample_video(folder / "two.mp4", duration_s=16, cut_times=(7.0,), black_spans=(),
                            text=("BRANDX.COM", 0.0, 16.0, "top-left"),
                            faces=[(photo("p05/1.jpg"), 2.0, 14.0, (0.5, 0.45))])
    return {"one": one.path, "two": two.path}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("writeback-config") / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, videos: dict[str, Path],
               config_file: Path) -> Path:
    """The analysis cache after one real run, so each test's runs decide from cached detections."""
    data = tmp_path_factory.mktemp("writeback-warm")
    with seeded_server(videos) as server:
        run = run_tag(plugin_dir, server, "report", data, config_file, {"selection": "all"})
        assert run.error is None, run.stderr[-3000:]
    return data / "cache.sqlite"


@pytest.fixture
def data_dir(tmp_path: Path, warm_cache: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(warm_cache, data / "cache.sqlite")
    return data


class seeded_server:
    """A test Stash holding the library and the user's own data around it."""

    def __init__(self, videos: dict[str, Path]) -> None:
        self.server = StashTestServer()
        state = self.server.state
        favourite = state.add_tag("Favourite")
        state.add_tag("Woman", aliases=["Face Female"])  # the user's tag: found by its alias
        state.add_studio("Brand X", aliases=["BrandX"])
        other = state.add_studio("Other Studio")
        performer = state.add_performer("Jane Example")
        one = state.add_scene("one", path=str(videos["one"]), tag_ids=[favourite], performer_ids=[performer])
        state.add_marker(one, favourite, 1.0, title="my favourite bit", end_seconds=3.0)
        state.add_scene("two", path=str(videos["two"]), studio_id=other)

    def __enter__(self) -> StashTestServer:
        return self.server.start()

    def __exit__(self, *_exc: object) -> None:
        self.server.stop()


def run_tag(plugin_dir: Path, server: StashTestServer, mode: str, data: Path, config: Path,
            args: dict[str, Any] | None = None, **options: Any) -> PluginRun:
    task = task_args(MANIFEST, TASK_FOR_MODE[mode])
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    return run_plugin(plugin_dir, "ai_tagger", {**task, **(args or {})}, server, env=env, **options)


def run_operation(plugin_dir: Path, server: StashTestServer, data: Path, config: Path,
                  args: dict[str, Any]) -> PluginRun:
    """The review API as Stash's runPluginOperation runs it: the plugin with just these args."""
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    return run_plugin(plugin_dir, "ai_tagger", {"mode": "review", **args}, server, env=env)


def canonical(server: StashTestServer) -> dict[str, Any]:
    """Stash's state by names, not ids or timestamps: what a user sees."""
    state = server.state.snapshot()
    tags = state["tags"]

    def names(ids: list[int]) -> list[str]:
        return sorted(tags[i]["name"] for i in ids)

    scenes = {}
    for scene in state["scenes"].values():
        markers = sorted(
            (m["title"], round(m["seconds"], 3), m["end_seconds"] and round(m["end_seconds"], 3),
             tags[m["primary_tag_id"]]["name"], tuple(names(m["tag_ids"])))
            for m in state["markers"].values() if m["scene_id"] == scene["id"])
        scenes[scene["title"]] = {
            "tags": names(scene["tag_ids"]), "markers": markers,
            "performers": sorted(state["performers"][p]["name"] for p in scene["performer_ids"]),
            "studio": state["studios"][scene["studio_id"]]["name"] if scene["studio_id"] else None,
            "title": scene["title"], "details": scene["details"], "organized": scene["organized"],
            "files": [f["path"] for f in scene["files"]]}
    return {"scenes": scenes,
            "tags": sorted((t["name"], t["description"], tuple(names(t["parent_ids"])), tuple(t["aliases"]))
                           for t in tags.values()),
            "performers": sorted((p["name"], p["disambiguation"], tuple(p["alias_list"]))
                                 for p in state["performers"].values()),
            "studios": sorted((s["name"], tuple(s["aliases"]), s["parent_id"])
                              for s in state["studios"].values()),
            "plugin_config": state["plugin_config"]}


def without_updated_at(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A full snapshot less the scenes' ``updated_at`` (Stash bumps it on any update)."""
    for scene in snapshot["scenes"].values():
        scene.pop("updated_at")
    return snapshot


def errors_in(run: PluginRun) -> list[str]:
    return [text for level, text in run.log if level == "e"]


@pytest.fixture
def server(videos: dict[str, Path]) -> Iterator[StashTestServer]:
    with seeded_server(videos) as server:
        yield server


def test_tagging_writes_tags_markers_and_studio_and_keeps_every_user_object(
        plugin_dir: Path, server: StashTestServer, data_dir: Path, config_file: Path) -> None:
    before = server.state.snapshot()
    run = run_tag(plugin_dir, server, "untagged", data_dir, config_file)
    assert run.error is None, errors_in(run)
    after = canonical(server)
    one, two = after["scenes"]["one"], after["scenes"]["two"]
    # The woman's face class maps to the user's tag "Woman" (its alias is the label's tag name).
    assert one["tags"] == ["Favourite", "Woman"] and two["tags"] == ["Woman"]
    assert ("Shot", "Created by AI Tagger (stash-ai-tagger).", ("AI",), ()) in after["tags"]
    assert {m[3] for m in one["markers"]} == {"Favourite", "Woman", "Shot"}
    assert [m[0] for m in one["markers"] if m[3] == "Shot"] == ["Shot 1", "Shot 2", "Shot 3"]
    assert one["studio"] == "Brand X"
    # Scene two has the user's studio: the watermark's studio waits for review instead.
    assert two["studio"] == "Other Studio"
    listed = run_operation(plugin_dir, server, data_dir, config_file, {"action": "list", "scene_id": "2"})
    assert [(s["kind"], s["title"]) for s in listed.output["suggestions"]] == [("studio", "Brand X")]
    # Less what the journal says the tagger added, Stash's full state is what it was before.
    assert without_updated_at(minus_tagger_changes(server.state.snapshot(), data_dir)) == \
        without_updated_at(before)


def minus_tagger_changes(snapshot: dict[str, Any], data: Path) -> dict[str, Any]:
    """``snapshot`` without the tags, markers, scene tags and studios the journal records as added."""
    rows = sqlite3.connect(data / "tagger.sqlite").execute(
        "SELECT action, scene_id, target, before FROM journal WHERE status = 'done' ORDER BY id").fetchall()
    for action, scene_id, target, before in rows:
        scene = snapshot["scenes"].get(int(scene_id)) if scene_id else None
        if action == "create_tag":
            del snapshot["tags"][int(target)]
        elif action == "create_marker":
            del snapshot["markers"][int(target)]
        elif action == "add_tag":
            scene["tag_ids"].remove(int(target))
        elif action == "set_studio":
            previous = json.loads(before)["studio_id"]
            scene["studio_id"] = int(previous) if previous else None
    return snapshot


def test_a_second_run_changes_nothing(plugin_dir: Path, server: StashTestServer, data_dir: Path,
                                      config_file: Path) -> None:
    first = run_tag(plugin_dir, server, "all", data_dir, config_file)
    assert first.error is None, errors_in(first)
    state = without_updated_at(server.state.snapshot())
    mutations = len([r for r in server.requests if r[1].lstrip().startswith("mutation")])
    second = run_tag(plugin_dir, server, "all", data_dir, config_file)
    assert second.error is None, errors_in(second)
    plans = [scene["plan"] for scene in second.output["scenes"]]
    assert second.output["changed"] == 0 and second.output["analysed"] == 2, plans
    assert len([r for r in server.requests if r[1].lstrip().startswith("mutation")]) == mutations
    assert without_updated_at(server.state.snapshot()) == state


def test_undo_restores_every_scene_exactly(plugin_dir: Path, server: StashTestServer, data_dir: Path,
                                           config_file: Path) -> None:
    before = without_updated_at(server.state.snapshot())
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    undo = run_tag(plugin_dir, server, "undo", data_dir, config_file)
    assert undo.error is None, errors_in(undo)
    assert sorted(undo.output["deleted_tags"]) == ["AI", "Shot"]
    after = without_updated_at(server.state.snapshot())
    assert after == before
    # Undone scenes count as untagged again.
    again = run_tag(plugin_dir, server, "untagged", data_dir, config_file)
    assert again.output["analysed"] == 2


def test_undo_keeps_what_the_user_changed_since(plugin_dir: Path, server: StashTestServer, data_dir: Path,
                                                config_file: Path) -> None:
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    state = server.state
    ours = [m for m in state.markers.values() if m["title"] == "Shot 2"]
    ours[0]["title"] = "The good part"  # the user renamed one of the tagger's markers
    shot = next(t for t in state.tags.values() if t["name"] == "Shot")
    state.scenes[1]["tag_ids"].append(shot["id"])  # and put a tagger tag on a scene of theirs
    undo = run_tag(plugin_dir, server, "undo", data_dir, config_file)
    assert undo.error is None, errors_in(undo)
    after = canonical(server)
    assert ("The good part", 8.0) in [(m[0], round(m[1])) for m in after["scenes"]["one"]["markers"]]
    assert after["scenes"]["one"]["tags"] == ["Favourite", "Shot"]  # "Woman" taken off, theirs stays
    assert [m for m in after["scenes"]["one"]["markers"] if m[3] == "Shot"] != []
    assert undo.output["deleted_tags"] == []  # "Shot" is used, so its parent "AI" stays too
    assert any("The good part" in item for item in undo.output["kept"])


def test_a_tag_the_user_removed_is_not_added_again(plugin_dir: Path, server: StashTestServer, data_dir: Path,
                                                   config_file: Path) -> None:
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    woman = next(t["id"] for t in server.state.tags.values() if t["name"] == "Woman")
    server.state.scenes[1]["tag_ids"].remove(woman)
    again = run_tag(plugin_dir, server, "all", data_dir, config_file)
    assert again.error is None, errors_in(again)
    assert "Woman" not in canonical(server)["scenes"]["one"]["tags"]
    assert again.output["changed"] == 0


def test_ten_killed_runs_converge_to_the_uninterrupted_result(
        plugin_dir: Path, videos: dict[str, Path], data_dir: Path, config_file: Path, tmp_path: Path) -> None:
    with seeded_server(videos) as reference:
        assert run_tag(plugin_dir, reference, "untagged", data_dir, config_file).error is None
        expected = canonical(reference)
        total = len([r for r in reference.requests if r[1].lstrip().startswith("mutation")])
    assert total >= 10
    chooser = random.Random(20261201)
    for cycle in range(10):
        cycle_data = tmp_path / f"cycle-{cycle}"
        cycle_data.mkdir()
        shutil.copy(data_dir / "cache.sqlite", cycle_data / "cache.sqlite")
        with seeded_server(videos) as server:
            kills = []
            # Each cycle is killed once or twice at random mutations, before Stash applies one
            # or after it did (the answer lost), then re-run until a run completes.
            for attempt in range(1 + cycle % 2):
                point, after = chooser.randint(1, total), chooser.random() < 0.5
                kills.append((point, "after" if after else "before"))
                run = run_killed_at(plugin_dir, server, cycle_data, config_file, point, after)
                if attempt == 0:  # a fresh library: the run reaches its point-th mutation
                    assert run.returncode == -signal.SIGKILL, (kills, run.stderr[-2000:])
                else:  # a resumed run may have fewer mutations left than the point
                    assert run.returncode == -signal.SIGKILL or run.error is None, run.stderr[-2000:]
            final = run_tag(plugin_dir, server, "untagged", cycle_data, config_file)
            assert final.error is None, (kills, errors_in(final))
            assert canonical(server) == expected, kills
        check = sqlite3.connect(cycle_data / "tagger.sqlite")
        assert check.execute("SELECT COUNT(*) FROM journal WHERE status = 'intent'").fetchone() == (0,)


NEVER_SENT_TWICE = sorted(name for name, operation in OPERATIONS.items() if not operation.idempotent)
"""Creations, deletions and task requests: the client never sends these again once they may have
reached Stash."""


def test_lost_answers_to_creations_and_deletions_change_nothing_and_undo_is_exact(
        plugin_dir: Path, videos: dict[str, Path], data_dir: Path, config_file: Path, tmp_path: Path) -> None:
    with seeded_server(videos) as reference:
        assert run_tag(plugin_dir, reference, "untagged", data_dir, config_file).error is None
        expected, sent = canonical(reference), mutations_sent(reference)
    lossy_data = tmp_path / "lossy"
    lossy_data.mkdir()
    shutil.copy(data_dir / "cache.sqlite", lossy_data / "cache.sqlite")
    with seeded_server(videos) as server:
        before = without_updated_at(server.state.snapshot())
        for name in NEVER_SENT_TWICE:  # Stash applies each one, and its answer never arrives
            server.drop_reply_after(name, times=None)

        run = run_tag(plugin_dir, server, "untagged", lossy_data, config_file)

        assert run.error is None, errors_in(run)
        assert {"TagCreate", "MarkerCreate"} <= set(server.dropped_replies)
        assert canonical(server) == expected
        assert mutations_sent(server) == sent  # each one once, as in the reference run
        undo = run_tag(plugin_dir, server, "undo", lossy_data, config_file)
        assert undo.error is None, errors_in(undo)
        assert {"MarkersDestroy", "TagDestroy"} <= set(server.dropped_replies)
        assert without_updated_at(server.state.snapshot()) == before
    journal = sqlite3.connect(lossy_data / "tagger.sqlite")
    assert journal.execute("SELECT COUNT(*) FROM journal WHERE status = 'intent'").fetchone() == (0,)


def mutations_sent(server: StashTestServer) -> list[str]:
    """The names of the mutations the server received, sorted."""
    return sorted(r[0] or "" for r in server.requests if r[1].lstrip().startswith("mutation"))


def run_killed_at(plugin_dir: Path, server: StashTestServer, data: Path, config: Path, point: int,
                  after: bool) -> PluginRun:
    """A run SIGKILLed at its ``point``-th mutation, before it reaches Stash or after it applied."""
    pid: list[int] = []
    seen = [0]

    def kill(_name: str) -> bool:
        seen[0] += 1
        if seen[0] == point and pid:
            os.kill(pid[0], signal.SIGKILL)
            return True
        return False

    if after:
        server.after_mutation = kill
    else:
        server.before_mutation = kill
    try:
        return run_tag(plugin_dir, server, "untagged", data, config, on_start=pid.append)
    finally:
        server.before_mutation = server.after_mutation = None


class UiClient:
    """What the UI does: ``runPluginOperation`` on Stash's GraphQL endpoint; the test Stash runs the
    plugin for it exactly as Stash would, and answers with the plugin's output."""

    def __init__(self, server: StashTestServer, plugin_dir: Path, data: Path, config: Path) -> None:
        self.url = server.url

        def operation(args: dict[str, Any]) -> Any:
            args = {k: v for k, v in args.items() if k != "mode"}
            run = run_operation(plugin_dir, server, data, config, args)
            if run.error:
                raise RuntimeError(run.error)
            return run.output

        server.state.register_operation("ai_tagger", operation)

    def review(self, **args: Any) -> Any:
        query = ("mutation Review($args: Map) { runPluginOperation(plugin_id: \"ai_tagger\", args: $args) }")
        body = json.dumps({"operationName": "Review", "query": query,
                           "variables": {"args": {"mode": "review", **args}}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(answer["errors"][0]["message"])
        return answer["data"]["runPluginOperation"]


def test_a_suggestion_accepted_in_the_ui_is_applied_and_survives_undo(
        plugin_dir: Path, server: StashTestServer, data_dir: Path, config_file: Path) -> None:
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    ui = UiClient(server, plugin_dir, data_dir, config_file)
    (studio,) = ui.review(action="list", scene_id="2")["suggestions"]
    assert studio["kind"] == "studio" and studio["payload"]["evidence"]
    accepted = ui.review(action="accept", id=studio["id"])
    assert accepted["applied"]["studio"] == "Brand X"
    assert canonical(server)["scenes"]["two"]["studio"] == "Brand X"
    again = run_tag(plugin_dir, server, "all", data_dir, config_file)
    assert again.error is None and again.output["changed"] == 0
    assert ui.review(action="list", scene_id="2")["count"] == 0
    assert run_tag(plugin_dir, server, "undo", data_dir, config_file).error is None
    assert canonical(server)["scenes"]["two"]["studio"] == "Brand X"  # the user chose it


def test_a_rejected_suggestion_never_comes_back(plugin_dir: Path, server: StashTestServer, data_dir: Path,
                                               config_file: Path) -> None:
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    ui = UiClient(server, plugin_dir, data_dir, config_file)
    (studio,) = ui.review(action="list", scene_id="2")["suggestions"]
    assert ui.review(action="reject", id=studio["id"])["status"] == "rejected"
    assert run_tag(plugin_dir, server, "all", data_dir, config_file).error is None
    assert ui.review(action="list", scene_id="2")["count"] == 0
    assert [s["id"] for s in ui.review(action="list", status="rejected")["suggestions"]] == [studio["id"]]
    assert canonical(server)["scenes"]["two"]["studio"] == "Other Studio"
    with pytest.raises(RuntimeError, match="was already rejected"):
        ui.review(action="accept", id=studio["id"])


def test_queued_scenes_are_tagged_and_lose_the_queue_tag(plugin_dir: Path, server: StashTestServer,
                                                         data_dir: Path, config_file: Path) -> None:
    queue_tag = server.state.add_tag("AI_TagMe")
    server.state.scenes[2]["tag_ids"].append(queue_tag)
    untouched = server.state.snapshot()["scenes"][1]
    run = run_tag(plugin_dir, server, "queue", data_dir, config_file)
    assert run.error is None, errors_in(run)
    assert [scene["scene_id"] for scene in run.output["scenes"]] == ["2"]
    assert canonical(server)["scenes"]["two"]["tags"] == ["Woman"]
    assert server.state.snapshot()["scenes"][1] == untouched
    assert run_tag(plugin_dir, server, "queue", data_dir, config_file).output["scenes"] == []


def test_the_scene_tab_api_shows_what_was_applied_with_its_reasons_and_evidence(
        plugin_dir: Path, server: StashTestServer, data_dir: Path, config_file: Path) -> None:
    assert run_tag(plugin_dir, server, "untagged", data_dir, config_file).error is None
    results = run_operation(plugin_dir, server, data_dir, config_file, {"action": "scene", "scene_id": "1"})
    assert results.error is None, errors_in(results)
    (woman,) = results.output["tags"]
    assert woman["name"] == "Face Female" and woman["score"] >= 0.45 and woman["evidence"]
    assert woman["model"].startswith("nudenet")
    assert {m["tag"] for m in results.output["markers"]} == {"Face Female", "Shot"}
    assert results.output["studio"]["evidence"] and results.output["studio"]["score"] >= 0.85
    frames = run_operation(plugin_dir, server, data_dir, config_file,
                           {"action": "evidence", "scene_id": "1", "times": woman["evidence"][:3]})
    assert frames.error is None, errors_in(frames)
    assert [f["time"] for f in frames.output["frames"]] == woman["evidence"][:3]
    assert all(f["image"].startswith("data:image/jpeg;base64,") for f in frames.output["frames"])


def test_the_scene_list_operation_tags_the_selected_scenes(plugin_dir: Path, server: StashTestServer,
                                                          data_dir: Path, config_file: Path) -> None:
    run = run_tag(plugin_dir, server, "scene", data_dir, config_file, {"scene_ids": "2,1,2"})
    assert run.error is None, errors_in(run)
    assert [scene["scene_id"] for scene in run.output["scenes"]] == ["2", "1"]
    wrong = run_tag(plugin_dir, server, "scene", data_dir, config_file, {"scene_ids": "2;1"})
    assert wrong.error == "scene_ids: '2;1' is not a list of scene ids"
