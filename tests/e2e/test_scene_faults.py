"""One bad scene never stops a run, and the errors people meet name what is wrong.

Every run here is the plugin run as Stash runs it, against the test Stash server, with only the
shot analyzer (shot markers on, so a tagged scene shows in Stash) to keep the runs short.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tagger.config import read_config_file
from tagger.errors import ConfigError
from tagger.media.sample import make_sample_video
from tagger.run.write_scene import MAX_FAILURES
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}
SHOTS_ONLY = {"analyzers": "shots", "shotMarkers": True}


def make_one_frame_a_day_video(path: Path) -> Path:
    """Two frames 100,000 s apart: an average frame rate of 2e-5 frames per second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for index, seconds in enumerate((0, 100_000)):
            image = np.full((64, 64, 3), 60 + 120 * index, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = seconds * 1000, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd-library")
    good = make_sample_video(folder / "good.mp4", duration_s=6, size=(320, 180), cut_times=(3.0,),
                             black_spans=()).path
    (folder / "notes.mp4").write_text("shopping list\n")  # named like a video, but text
    (folder / "a-folder.mp4").mkdir()
    os.mkfifo(folder / "a-pipe.mp4")
    return {"good": good, "slow": make_one_frame_a_day_video(folder / "slow.mp4"),
            "text": folder / "notes.mp4", "folder": folder / "a-folder.mp4", "fifo": folder / "a-pipe.mp4"}


def run_task(plugin_dir: Path, server: StashTestServer, mode: str, data: Path,
             args: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> PluginRun:
    task = task_args(MANIFEST, TASK_FOR_MODE[mode])
    return run_plugin(plugin_dir, "ai_tagger", {**task, **(args or {})}, server,
                      env={"AI_TAGGER_DATA_DIR": str(data), **(env or {})})


def shot_markers(server: StashTestServer, scene_id: int) -> int:
    return sum(m["scene_id"] == scene_id for m in server.state.snapshot()["markers"].values())


def run_statuses(data: Path) -> list[str]:
    return [row[0] for row in sqlite3.connect(data / "tagger.sqlite").execute("SELECT status FROM runs")]


def errors_in(run: PluginRun) -> list[str]:
    return [text for level, text in run.log if level == "e"]


def scene_entry(run: PluginRun, scene_id: int) -> dict[str, Any]:
    (entry,) = [e for e in run.output["scenes"] if e["scene_id"] == str(scene_id)]
    return entry


# One bad scene ----------------------------------------------------------------------------------

def test_a_video_of_one_frame_a_day_is_analysed(plugin_dir: Path, videos: dict[str, Path],
                                                tmp_path: Path) -> None:
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = SHOTS_ONLY
        server.state.add_scene("slow", path=str(videos["slow"]))
        run = run_task(plugin_dir, server, "report", tmp_path, {"scene_id": "1"})
    assert run.error is None, errors_in(run)
    (scene,) = run.output["scenes"]
    assert "error" not in scene and scene["duration"] == 100_001.0 and scene["frames_analysed"] == 2


@pytest.fixture(scope="module")
def corrupt_cache_run(plugin_dir: Path, videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[tuple[PluginRun, StashTestServer, Path]]:
    """A run over two scenes where the first one's cached analysis is damaged on disk (a fault no
    code path expects: it raises a JSONDecodeError deep in the engine)."""
    data = tmp_path_factory.mktemp("corrupt-cache-data")
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = SHOTS_ONLY
        server.state.add_scene("damaged", path=str(videos["slow"]))
        server.state.add_scene("good", path=str(videos["good"]))
        cached = run_task(plugin_dir, server, "report", data, {"scene_id": "1"})
        assert cached.error is None, errors_in(cached)
        with sqlite3.connect(data / "cache.sqlite") as cache:
            assert cache.execute("UPDATE passes SET body = '{not json'").rowcount == 1
        yield run_task(plugin_dir, server, "untagged", data), server, data


def test_an_unexpected_error_in_a_scene_names_the_scene_its_file_and_the_error(
        corrupt_cache_run: tuple[PluginRun, StashTestServer, Path], videos: dict[str, Path]) -> None:
    run, _, _ = corrupt_cache_run
    message = scene_entry(run, 1)["error"]
    assert message.startswith(f"{videos['slow']}: unexpected JSONDecodeError: Expecting property name")
    assert f"scene 1: {message}" in errors_in(run)


def test_an_unexpected_error_leaves_its_traceback_in_the_log_in_short_lines(
        corrupt_cache_run: tuple[PluginRun, StashTestServer, Path]) -> None:
    run, _, _ = corrupt_cache_run
    errors = errors_in(run)
    start = errors.index("scene 1: traceback of the unexpected error:")
    trace = errors[start + 1:errors.index(f"scene 1: {scene_entry(run, 1)['error']}")]
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1].startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert any('tagger/engine/cache.py", line' in line for line in trace)
    assert max(len(line) for line in trace) <= 160


def test_the_scenes_after_a_failing_one_are_tagged_and_the_run_ends_done(
        corrupt_cache_run: tuple[PluginRun, StashTestServer, Path]) -> None:
    run, server, data = corrupt_cache_run
    assert run.error is None
    assert (run.output["analysed"], run.output["failed"]) == (1, 1)
    assert shot_markers(server, 2) == 2 and shot_markers(server, 1) == 0
    assert run_statuses(data) == ["done", "done"]


def test_a_run_that_stashs_going_away_stops_is_recorded_as_failed(plugin_dir: Path, videos: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = SHOTS_ONLY
        server.state.add_scene("good", path=str(videos["good"]))
        server.state.add_scene("again", path=str(videos["good"]))
        server.after_mutation = lambda _name: server.fail_next(1000, status=503)  # down after one write
        run = run_task(plugin_dir, server, "untagged", tmp_path)
    assert run.error.startswith(f"Stash at {server.url} is not reachable")
    assert run_statuses(tmp_path) == ["failed"]


@pytest.fixture
def failed_three_times(plugin_dir: Path, videos: dict[str, Path],
                       tmp_path: Path) -> Iterator[StashTestServer]:
    """A scene whose file is no video, after MAX_FAILURES runs that each failed on it."""
    with StashTestServer() as server:
        server.state.plugin_config["ai_tagger"] = SHOTS_ONLY
        server.state.add_scene("notes", path=str(videos["text"]))
        for _ in range(MAX_FAILURES):
            assert run_task(plugin_dir, server, "untagged", tmp_path).output["failed"] == 1
        yield server


def test_a_scene_that_failed_three_runs_is_skipped_until_its_file_changes(
        plugin_dir: Path, failed_three_times: StashTestServer, videos: dict[str, Path],
        tmp_path: Path) -> None:
    server = failed_three_times
    skipped = run_task(plugin_dir, server, "untagged", tmp_path)
    assert (skipped.output["failed"], skipped.output["skipped"]) == (0, 1)
    assert (f"scene 1 ({videos['text']}): skipped, it failed 3 times with this file; it is tried again "
            "when the file changes, or when tagged on its own") in [text for _, text in skipped.log]
    server.state.scenes[1]["files"][0]["mod_time"] = "2031-01-01T00:00:00Z"  # a rescan saw a new file
    changed = run_task(plugin_dir, server, "untagged", tmp_path)
    assert (changed.output["failed"], changed.output["skipped"]) == (1, 0)


def test_a_scene_that_keeps_failing_is_still_tried_when_tagged_on_its_own(
        plugin_dir: Path, failed_three_times: StashTestServer, tmp_path: Path) -> None:
    run = run_task(plugin_dir, failed_three_times, "scene", tmp_path, {"scene_id": "1"})
    assert (run.output["failed"], run.output["skipped"]) == (1, 0)


# A file that is not here ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unreadable_run(plugin_dir: Path, videos: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> PluginRun:
    """One report over scenes whose files this machine cannot read, and Stash cannot stream."""
    with StashTestServer() as server:
        library = videos["good"].parent
        server.state.plugin_config["ai_tagger"] = {**SHOTS_ONLY, "pathMappings": f"/media={library}"}
        for path in ("/nowhere/gone.mp4", videos["folder"], videos["fifo"], "/media/gone.mp4"):
            server.state.add_scene(path=str(path))
        return run_task(plugin_dir, server, "report", tmp_path_factory.mktemp("unreadable-data"),
                        {"selection": "all"})


def test_a_missing_file_is_named_as_not_on_this_machine_before_the_stream_failure(
        unreadable_run: PluginRun) -> None:
    message = scene_entry(unreadable_run, 1)["error"]
    assert message.startswith("the file Stash names is not readable on this machine "
                              "(no path mapping matches /nowhere/gone.mp4): /nowhere/gone.mp4: not found; "
                              "streaming it from Stash failed too: ")
    assert message.endswith("/scene/1/stream: the server has no such file (Server returned 404 Not Found)")
    assert "check that Stash is running" not in message


def test_a_folder_at_the_scenes_path_is_named_as_a_folder(unreadable_run: PluginRun,
                                                        videos: dict[str, Path]) -> None:
    assert f"{videos['folder']}: a folder, not a file; streaming" in scene_entry(unreadable_run, 2)["error"]


def test_a_pipe_at_the_scenes_path_is_not_opened(unreadable_run: PluginRun, videos: dict[str, Path]) -> None:
    message = scene_entry(unreadable_run, 3)["error"]
    assert f"{videos['fifo']}: not a regular file (a pipe, socket or device); streaming" in message


def test_a_mapped_path_that_is_missing_names_the_mapping_tried(unreadable_run: PluginRun,
                                                               videos: dict[str, Path]) -> None:
    mapped = videos["good"].parent / "gone.mp4"
    assert scene_entry(unreadable_run, 4)["error"].startswith(
        f"the file Stash names is not readable on this machine (path mapping tried: /media/gone.mp4 -> "
        f"{mapped}): {mapped}: not found; /media/gone.mp4: not found; streaming")


# The review API's evidence frames -----------------------------------------------------------------

@pytest.mark.parametrize(("times", "problem"), [
    ([1e19], "times: 1e+19 is past the end of the scene (6.0 s)"),
    ([2.0, -1], "times: -1 is before the start of the scene"),
    ([float("inf")], "times: inf is not a finite number of seconds"),
    ([1.0] * 9, "times: 9 times given; at most 8 at once"),
    ([True], "times: give a list of seconds, e.g. [3.5, 10]"),
])
def test_evidence_at_impossible_times_is_refused_naming_the_value(
        plugin_dir: Path, videos: dict[str, Path], tmp_path: Path, times: list[Any], problem: str) -> None:
    with StashTestServer() as server:
        server.state.add_scene("good", path=str(videos["good"]))
        args = {"mode": "review", "action": "evidence", "scene_id": "1", "times": times}
        run = run_plugin(plugin_dir, "ai_tagger", args, server, env={"AI_TAGGER_DATA_DIR": str(tmp_path)})
    assert run.error == problem


def test_evidence_of_a_file_that_is_not_here_names_that_before_the_stream_failure(
        plugin_dir: Path, tmp_path: Path) -> None:
    with StashTestServer() as server:
        server.state.add_scene("gone", path="/nowhere/gone.mp4")
        args = {"mode": "review", "action": "evidence", "scene_id": "1", "times": [1.0]}
        run = run_plugin(plugin_dir, "ai_tagger", args, server, env={"AI_TAGGER_DATA_DIR": str(tmp_path)})
    assert run.error is not None and run.error.startswith(
        "the file Stash names is not readable on this machine (no path mapping matches /nowhere/gone.mp4): "
        "/nowhere/gone.mp4: not found; streaming it from Stash failed too: ")


# config.yaml -------------------------------------------------------------------------------------

def latin1_config(folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_bytes("tag_parent: Vidéo\n".encode("latin-1"))
    return path


def test_a_config_file_that_is_not_utf8_is_named_by_the_plugin(plugin_dir: Path, tmp_path: Path) -> None:
    config = latin1_config(tmp_path)
    with StashTestServer() as server:
        run = run_task(plugin_dir, server, "report", tmp_path / "data", env={"AI_TAGGER_CONFIG": str(config)})
    assert run.error == f"{config}: not UTF-8 text (byte 0xe9 at offset 15); save the file as UTF-8"


def test_a_config_file_that_is_not_utf8_is_named_on_the_command_line(tmp_path: Path) -> None:
    config = latin1_config(tmp_path)
    with pytest.raises(ConfigError, match=r"config\.yaml: not UTF-8 text \(byte 0xe9 at offset 15\); save"):
        read_config_file(config)


def test_on_ray_an_unexpected_error_fails_that_video_only(videos: dict[str, Path], tmp_path: Path) -> None:
    from tagger.config import build_config
    from tagger.run.distributed import EngineSpec, VideoJob, analyse_video

    # The Ray task's own function, called here as a Ray worker process calls it.
    spec = EngineSpec(build_config({"analyzers": ["shots"]}), str(tmp_path), ())
    job = VideoJob(scene_id="7", location=str(videos["slow"]))
    assert analyse_video(spec, job).error is None  # cached now
    with sqlite3.connect(tmp_path / "cache.sqlite") as cache:
        cache.execute("UPDATE passes SET body = '{not json'")
    outcome = analyse_video(spec, job)
    assert outcome.fatal is None
    assert outcome.error.startswith(f"{videos['slow']}: unexpected JSONDecodeError: Expecting property name")
    assert ("error", "scene 7: traceback of the unexpected error:") in outcome.log
