"""Bounded growth of ``cache.sqlite``: a writing run drops what its settings and models can no
longer read, and the maintenance task (plugin or command line) also drops the entries of files
deleted from Stash, then compacts the file, but never on the word of a Stash without scenes.

The runs are real plugin runs against the test Stash, with only the decode pass (``shots``) on
small 10-fps videos so they take seconds; sampling every 0.1 s for 90 s makes each file's entry
larger than a page of the file, as a real video's is.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tagger.config import ANALYZERS, Config
from tagger.engine.cache import oshash
from tagger.run.maintenance import current_keys
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}
SETTINGS = {"AI_TAGGER_ANALYZERS": "shots", "AI_TAGGER_INTERVAL": "0.1"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tagger.media.sample import make_sample_video

    folder = tmp_path_factory.mktemp("maintenance-library")
    return {name: make_sample_video(folder / f"{name}.mp4", duration_s=90, size=(160, 96), fps=10,
                                    cut_times=cuts, black_spans=()).path
            for name, cuts in (("kept", (50.0,)), ("deleted", (40.0, 80.0)))}


def seeded(videos: dict[str, Path]) -> StashTestServer:
    """A test Stash with one scene per video; its files carry their oshash, as Stash's do."""
    server = StashTestServer()
    for name, path in videos.items():
        server.state.add_scene(name, files=[{"path": str(path), "oshash": oshash(path)}])
    return server


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, videos: dict[str, Path]) -> Path:
    """The cache after one real tagging run over both scenes."""
    data = tmp_path_factory.mktemp("maintenance-warm")
    with seeded(videos) as server:
        run = run_task(plugin_dir, server, "untagged", data)
        assert run.error is None, run.stderr[-3000:]
    return data / "cache.sqlite"


@pytest.fixture
def data_dir(tmp_path: Path, warm_cache: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(warm_cache, data / "cache.sqlite")
    return data


def run_task(plugin_dir: Path, server: StashTestServer, mode: str, data: Path,
             args: dict[str, Any] | None = None, settings: dict[str, str] | None = None) -> PluginRun:
    """Run the task whose defaultArgs name ``mode``, with ``args`` and settings over ``SETTINGS``."""
    task = {**task_args(MANIFEST, TASK_FOR_MODE[mode]), **(args or {})}
    env = {"AI_TAGGER_DATA_DIR": str(data), **SETTINGS, **(settings or {})}
    return run_plugin(plugin_dir, "ai_tagger", task, server, env=env)


def entries(data: Path) -> dict[str, list[str]]:
    """The cache's rows by file: the sampling parameters of each pass."""
    found: dict[str, list[str]] = {}
    with closing(sqlite3.connect(data / "cache.sqlite")) as db:
        for fingerprint, params in db.execute("SELECT fingerprint, params FROM passes"):
            found.setdefault(fingerprint, []).append(params)
    return found


def cache_bytes(data: Path) -> int:
    """The cache's size on disk: the file and its write-ahead log."""
    return sum(p.stat().st_size for p in (data / "cache.sqlite", data / "cache.sqlite-wal") if p.exists())


def test_the_maintenance_task_removes_a_deleted_scenes_entries_and_shrinks_the_file(
        plugin_dir: Path, videos: dict[str, Path], data_dir: Path) -> None:
    kept, deleted = oshash(videos["kept"]), oshash(videos["deleted"])
    assert set(entries(data_dir)) == {kept, deleted}
    with seeded(videos) as server:
        first = run_task(plugin_dir, server, "maintenance", data_dir)
        assert first.error is None, first.stderr[-3000:]
        assert first.output["rows_removed"] == 0  # every file is still in Stash
        size = cache_bytes(data_dir)
        with server.state.lock:  # the user deletes the scene in Stash
            del server.state.scenes[2]
        second = run_task(plugin_dir, server, "maintenance", data_dir)
    assert second.error is None, second.stderr[-3000:]
    assert set(entries(data_dir)) == {kept}
    assert second.output["deleted_files"] == {"files": 1, "passes": 1, "detections": 0}
    assert second.output["library"] == {"scenes": 1, "files": 1, "pruned": True}
    assert cache_bytes(data_dir) < size
    assert second.output["bytes_freed"] == size - cache_bytes(data_dir) > 0
    assert second.output["cache_bytes"] == cache_bytes(data_dir)
    said = [text for level, text in second.log if level == "i" and text.startswith("maintenance:")]
    assert said and "removed 1 entry of 1 file(s) no longer in Stash" in said[0]


def test_the_maintenance_task_keeps_the_cache_when_stash_returns_no_scenes(
        plugin_dir: Path, data_dir: Path) -> None:
    before = entries(data_dir)
    with StashTestServer() as empty:
        run = run_task(plugin_dir, empty, "maintenance", data_dir)
    assert run.error is None, run.stderr[-3000:]
    assert entries(data_dir) == before
    assert run.output["library"]["pruned"] is False
    refused = run.output["library"]["refused"]
    assert refused.startswith("Stash returned no scenes but the cache holds 2 file(s)")
    assert [text for level, text in run.log if level == "w" and "not pruned" in text]


def test_a_tagging_run_removes_the_entries_of_its_old_sampling_settings(
        plugin_dir: Path, videos: dict[str, Path], data_dir: Path) -> None:
    (old,) = {p for params in entries(data_dir).values() for p in params}
    with seeded(videos) as server:
        run = run_task(plugin_dir, server, "scene", data_dir, {"scene_id": "1"}, {"AI_TAGGER_INTERVAL": "3"})
    assert run.error is None, run.stderr[-3000:]
    # Scene 2 was not in this run: its entry, unreadable with these settings, goes too.
    after = entries(data_dir)
    assert list(after) == [oshash(videos["kept"])] and after[oshash(videos["kept"])] != [old]
    assert any(text.startswith("cache: 2 entries from other sampling settings") for _, text in run.log)


def test_a_dry_run_prunes_nothing(plugin_dir: Path, videos: dict[str, Path], data_dir: Path) -> None:
    (old,) = {p for params in entries(data_dir).values() for p in params}
    with seeded(videos) as server:
        run = run_task(plugin_dir, server, "report", data_dir, {"scene_id": "1"}, {"AI_TAGGER_INTERVAL": "3"})
    assert run.error is None, run.stderr[-3000:]
    assert {key: old in params for key, params in entries(data_dir).items()} == \
        {oshash(videos["kept"]): True, oshash(videos["deleted"]): True}


def test_switched_off_analyzers_keep_their_detections() -> None:
    # Switching one back on must not cost a new decode of every video.
    _, versions = current_keys(Config(analyzers=("shots",)))
    assert set(versions) == set(ANALYZERS) - {"shots"}


def test_switching_shot_detection_off_keeps_the_entries_made_with_it_on() -> None:
    without_shots, _ = current_keys(Config(analyzers=("faces", "content", "text")))
    with_shots, _ = current_keys(Config())
    assert set(without_shots) == set(with_shots) and len(with_shots) == 2


def test_maintenance_runs_from_the_command_line(videos: dict[str, Path], data_dir: Path) -> None:
    env = {**os.environ, "AI_TAGGER_DATA_DIR": str(data_dir), **SETTINGS}
    with seeded(videos) as server:
        done = subprocess.run([sys.executable, str(ROOT / "ai_tagger.py"), "run", "--stash-url", server.url,
                               "--mode", "maintenance"], capture_output=True, text=True, timeout=120,
                              env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout)
    assert output["mode"] == "maintenance" and output["library"] == {"scenes": 2, "files": 2, "pruned": True}
    assert "maintenance: removed 0 entries" in done.stderr
