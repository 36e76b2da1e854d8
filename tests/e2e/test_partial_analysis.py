"""A partial analysis is never taken for a whole one.

A pass that ends early (a dropped stream, the time budget, a truncated file) says how far it got
and why. Only a whole pass, or the readable part of a local file that ends there, stands for the
video in the cache; anything else is analysed again next time. The planner takes back only what
the analysed part covers. The end-to-end tests run the plugin as Stash does, against the test
Stash (which can cut a scene's stream), with the real content model on small sample videos.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.request
from collections.abc import Iterator
from http.client import IncompleteRead
from pathlib import Path
from typing import Any

import cv2
import pytest

from tagger.engine.cache import AnalysisCache, PassRecord, oshash
from tagger.engine.engine import pass_stands, truncation_confirmed
from tagger.engine.one_pass import stop_cause
from tagger.media.frames import DecodeReport
from tagger.media.sample import make_sample_video, write_truncated_copy
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}

CONFIG = """\
analyzers: [shots, content]
shot_markers: true
tags:
  FACE_FEMALE: {enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true}
"""

STASH_MEDIA = "/stash-media"
"""Where Stash keeps the library: a path the plugin cannot read, so it reads the stream."""


# ---- why a pass stopped (pure) -------------------------------------------------------------


def report(*, last: float = 16.0, truncated: bool = False, budget: bool = False,
           error: str | None = None, read_failed: bool = False) -> DecodeReport:
    return DecodeReport(frames_decoded=100, samples=8, last_time=last, duration=16.0, error=error,
                        truncated=truncated, budget_exceeded=budget, elapsed_s=1.0,
                        budget_s=5.0 if budget else None, read_failed=read_failed)


class TestStopCause:
    def test_a_pass_that_read_to_the_end_did_not_stop(self) -> None:
        assert stop_cause(report(), local=True) is None

    def test_skipped_bad_packets_do_not_stop_a_pass(self) -> None:
        assert stop_cause(report(error="2 undecodable packet(s)"), local=True) is None

    def test_a_budget_cut_stops_for_the_budget(self) -> None:
        assert stop_cause(report(last=3.0, budget=True), local=True) == "budget"

    def test_a_local_file_whose_data_ends_early_is_truncated(self) -> None:
        assert stop_cause(report(last=6.0, truncated=True), local=True) == "truncated"

    def test_a_stream_that_ends_early_is_interrupted(self) -> None:
        read_error = report(last=6.0, truncated=True, error="read error: EIO", read_failed=True)
        assert stop_cause(read_error, local=False) == "interrupted"
        assert stop_cause(report(last=6.0, truncated=True), local=False) == "interrupted"

    def test_a_read_error_on_a_local_file_is_interrupted(self) -> None:
        failing_share = report(last=6.0, truncated=True, error="read error: EIO", read_failed=True)
        assert stop_cause(failing_share, local=True) == "interrupted"


# ---- which cached passes stand for the video (pure) ----------------------------------------


def record(stopped: Any = None, *, end: float | None = None, file_size: int | None = None) -> PassRecord:
    return PassRecord(duration=16.0, fps=30.0, frames_analysed=8, sample_times=[0.0, 2.0],
                      shots=[(0.0, 5.0)], technical=[], warnings=[], analysed_end=end,
                      stopped=stopped, file_size=file_size)


class TestPassStands:
    def test_a_whole_pass_stands(self) -> None:
        assert pass_stands(record(), file_size=1000)

    def test_a_pass_cut_by_its_budget_does_not_stand(self) -> None:
        assert not pass_stands(record("budget", end=3.0), file_size=1000)

    def test_an_interrupted_pass_does_not_stand(self) -> None:
        assert not pass_stands(record("interrupted", end=6.0), file_size=None)

    def test_a_truncated_files_readable_part_stands_while_the_file_is_the_same(self) -> None:
        assert pass_stands(record("truncated", end=6.0, file_size=1000), file_size=1000)

    def test_a_truncated_file_that_grew_is_analysed_again(self) -> None:
        assert not pass_stands(record("truncated", end=6.0, file_size=1000), file_size=5000)


class TestTruncationOverAStream:
    def test_a_stream_that_ends_where_the_last_read_ended_is_a_truncated_file(self) -> None:
        again = truncation_confirmed(record("interrupted", end=6.2), record("interrupted", end=6.0),
                                     read_failed=False)
        assert again.stopped == "truncated" and again.analysed_end == 6.2
        assert any("the file is truncated" in warning for warning in again.warnings)

    def test_the_first_early_end_of_a_stream_is_only_an_interruption(self) -> None:
        assert truncation_confirmed(record("interrupted", end=6.0), None, read_failed=False).stopped == \
            "interrupted"

    def test_a_stream_that_ends_elsewhere_this_time_was_dropped(self) -> None:
        assert truncation_confirmed(record("interrupted", end=9.0), record("interrupted", end=6.0),
                                    read_failed=False).stopped == "interrupted"

    def test_a_read_error_is_a_dropped_connection_wherever_it_happens(self) -> None:
        assert truncation_confirmed(record("interrupted", end=6.0), record("interrupted", end=6.0),
                                    read_failed=True).stopped == "interrupted"


class TestCachedPasses:
    def test_an_incomplete_pass_is_cached_as_incomplete(self, tmp_path: Path) -> None:
        partial = record("interrupted", end=6.0)
        AnalysisCache(tmp_path / "c.sqlite").put_pass("abc", "p", partial)
        back = AnalysisCache(tmp_path / "c.sqlite").get_pass("abc", "p")
        assert back == partial and not back.complete and back.end == 6.0

    @pytest.mark.parametrize(("warnings", "stopped"), [
        ([], None),
        (["decoding errors were skipped: 1 undecodable packet(s)"], None),
        (["stopped after 5 s budget at 3.0 s of 16.0 s"], "interrupted"),
        (["decoding stopped at 6.0 s of 16.0 s: the file is truncated or corrupt"], "interrupted"),
    ])
    def test_a_pass_cached_before_stops_were_recorded_is_incomplete_when_its_warnings_say_so(
            self, tmp_path: Path, warnings: list[str], stopped: str | None) -> None:
        AnalysisCache(tmp_path / "c.sqlite").close()
        legacy = {"duration": 16.0, "fps": 30.0, "frames_analysed": 8, "sample_times": [0.0],
                  "shots": [], "technical": [], "warnings": warnings, "frame_size": None}
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            db.execute("INSERT INTO passes VALUES ('abc', 'p', 0, ?)", (json.dumps(legacy),))
        back = AnalysisCache(tmp_path / "c.sqlite").get_pass("abc", "p")
        assert back is not None and back.stopped == stopped


# ---- the test Stash's dropped stream -------------------------------------------------------


def test_the_test_stash_drops_a_scenes_stream_at_the_offset_it_is_told(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(bytes(range(256)) * 40)
    with StashTestServer() as server:
        scene = server.state.add_scene("v", path=str(video))
        server.cut_stream_after = {scene: 1000}
        with urllib.request.urlopen(f"{server.url}/scene/{scene}/stream") as response:
            assert response.headers["Content-Length"] == "10240"
            with pytest.raises(IncompleteRead) as cut:
                response.read()
        assert len(cut.value.partial) == 1000
        ranged = urllib.request.Request(f"{server.url}/scene/{scene}/stream", headers={"Range": "bytes=600-"})
        with urllib.request.urlopen(ranged) as response, pytest.raises(IncompleteRead) as cut:
            response.read()
        assert len(cut.value.partial) == 400


# ---- through the plugin --------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> dict[str, Path]:
    """Two 16-s videos with cuts at 5 and 11 s: a woman's face late (9-16 s) or early (0.5-8 s);
    and the early one cut to its first part, as an interrupted download leaves it."""
    image = cv2.imread(str(shared_dir / "faces" / "p05" / "1.jpg"))
    face = cv2.resize(image, (image.shape[1] * 160 // image.shape[0], 160))
    folder = tmp_path_factory.mktemp("partial-library")
    common: dict[str, Any] = {"duration_s": 16, "size": (640, 360), "cut_times": (5.0, 11.0),
                              "black_spans": ()}
    late = make_sample_video(folder / "late.mp4", faces=[(face, 9.0, 16.0, (0.5, 0.45))], **common)
    early = make_sample_video(folder / "early.mp4", faces=[(face, 0.5, 8.0, (0.5, 0.45))], **common)
    cut = write_truncated_copy(early.path, folder / "early-cut.mp4", 0.6)
    return {"late": late.path, "early": early.path, "cut": cut}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("partial-config")
    paths = {"whole": folder / "whole.yaml", "budget": folder / "budget.yaml"}
    paths["whole"].write_text(CONFIG + "time_budget: 0\n")  # 0: no limit
    paths["budget"].write_text(CONFIG + "time_budget: 0.001\n")  # stops at the first frame
    return paths


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def streamed(videos: dict[str, Path]) -> Iterator[tuple[StashTestServer, int]]:
    """A test Stash whose one scene (the late face) the plugin can only read as a stream."""
    server = StashTestServer(media_paths={STASH_MEDIA: str(videos["late"].parent)})
    scene = server.state.add_scene("late", files=[{"path": f"{STASH_MEDIA}/late.mp4",
                                                   "oshash": oshash(videos["late"])}])
    with server:
        yield server, scene


def run_tag(server: StashTestServer, plugin_dir: Path, data: Path, config: Path, mode: str = "all",
            **args: Any) -> PluginRun:
    task = task_args(MANIFEST, TASK_FOR_MODE[mode])
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    run = run_plugin(plugin_dir, "ai_tagger", {**task, **args}, server, env=env)
    assert run.error is None, run.stderr[-3000:]
    return run


def scene_state(server: StashTestServer, scene: int) -> dict[str, Any]:
    """The scene's tags and markers by name, as a user sees them."""
    state = server.state.snapshot()
    tags = state["tags"]
    markers = sorted((m["title"], round(m["seconds"], 1), round(m["end_seconds"], 1))
                     for m in state["markers"].values() if m["scene_id"] == scene)
    return {"tags": sorted(tags[t]["name"] for t in state["scenes"][scene]["tag_ids"]), "markers": markers}


def processed(data: Path, scene: int) -> tuple[str, str | None]:
    """The store's record of how the scene was processed: (status, detail)."""
    with sqlite3.connect(data / "tagger.sqlite") as db:
        return db.execute("SELECT status, detail FROM processed WHERE scene_id = ?", (str(scene),)).fetchone()


def forget_analyses(data: Path) -> None:
    """Empty the analysis cache (the journal stays: the tagger still owns what it wrote)."""
    for suffix in ("", "-wal", "-shm"):
        (data / f"cache.sqlite{suffix}").unlink(missing_ok=True)


def cut_at(video: Path, fraction: float) -> int:
    return int(video.stat().st_size * fraction)


WHOLE_LATE = {
    "tags": ["Face Female"],
    "markers": [("Face Female", 10.0, 16.0), ("Shot 1", 0.0, 5.0), ("Shot 2", 5.0, 11.0),
                ("Shot 3", 11.0, 16.0)],
}
"""What a whole analysis of the late-face video writes."""


def test_a_dropped_stream_is_recorded_as_partial_and_the_next_run_analyses_the_whole(
        plugin_dir: Path, streamed: tuple[StashTestServer, int], videos: dict[str, Path],
        data: Path, configs: dict[str, Path]) -> None:
    server, scene = streamed
    server.cut_stream_after = {scene: cut_at(videos["late"], 0.4)}
    first = run_tag(server, plugin_dir, data, configs["whole"])
    (entry,) = first.output["scenes"]
    assert entry["source"] == "stream"
    assert entry["analysed"]["stopped"] == "interrupted" and entry["analysed"]["end"] < 9.0
    assert first.output["partial"] == 1
    assert processed(data, scene)[0] == "partial"
    assert scene_state(server, scene)["tags"] == []  # the face comes after the break

    server.cut_stream_after = {}
    second = run_tag(server, plugin_dir, data, configs["whole"], mode="untagged")
    (entry,) = second.output["scenes"]
    assert "analysed" not in entry and second.output["partial"] == 0
    assert scene_state(server, scene) == WHOLE_LATE
    assert processed(data, scene)[0] == "done"


def test_a_partial_run_keeps_what_it_did_not_see(
        plugin_dir: Path, streamed: tuple[StashTestServer, int], videos: dict[str, Path],
        data: Path, configs: dict[str, Path]) -> None:
    server, scene = streamed
    run_tag(server, plugin_dir, data, configs["whole"])
    assert scene_state(server, scene) == WHOLE_LATE
    forget_analyses(data)  # as after a model update: the video is read again, and the stream breaks
    server.cut_stream_after = {scene: cut_at(videos["late"], 0.4)}
    partial = run_tag(server, plugin_dir, data, configs["whole"])
    (entry,) = partial.output["scenes"]
    assert entry["analysed"]["stopped"] == "interrupted"
    # The face's tag and marker, the third shot and the second's end lie beyond the break.
    assert partial.output["changed"] == 0, entry["plan"]
    assert scene_state(server, scene) == WHOLE_LATE


def test_a_time_budget_cut_is_analysed_again_next_time(
        plugin_dir: Path, videos: dict[str, Path], data: Path, configs: dict[str, Path]) -> None:
    with StashTestServer() as server:
        scene = server.state.add_scene("late", path=str(videos["late"]))
        first = run_tag(server, plugin_dir, data, configs["budget"], mode="untagged")
        (entry,) = first.output["scenes"]
        assert entry["source"] == "path" and entry["analysed"]["stopped"] == "budget"
        assert processed(data, scene)[0] == "partial"
        assert any("budget" in text and "the rest is analysed next time" in text
                   for level, text in first.log if level == "w")

        second = run_tag(server, plugin_dir, data, configs["whole"], mode="untagged")
        (entry,) = second.output["scenes"]
        assert "analysed" not in entry
        assert scene_state(server, scene) == WHOLE_LATE


def test_a_truncated_file_is_reported_tagged_from_its_readable_part_and_not_read_again(
        plugin_dir: Path, videos: dict[str, Path], data: Path, configs: dict[str, Path]) -> None:
    with StashTestServer() as server:
        scene = server.state.add_scene("cut", path=str(videos["cut"]))
        first = run_tag(server, plugin_dir, data, configs["whole"], mode="untagged")
        (entry,) = first.output["scenes"]
        assert entry["analysed"]["stopped"] == "truncated"
        end = entry["analysed"]["end"]
        assert 5.0 < end < 12.0
        (logged,) = [text for level, text in first.log if level == "w" and "truncated" in text]
        where = re.fullmatch(rf"scene {scene}: decoding stopped at ([\d.]+) s of 16.0 s: "
                             r"the file is truncated or corrupt", logged)
        assert where is not None and float(where.group(1)) == pytest.approx(end, abs=0.1)
        assert processed(data, scene) == ("done", logged.removeprefix(f"scene {scene}: "))
        assert first.output["partial"] == 0
        assert "Face Female" in scene_state(server, scene)["tags"]

        again = run_tag(server, plugin_dir, data, configs["whole"], mode="report", scene_id=str(scene))
        (entry,) = again.output["scenes"]
        assert entry["cached"] == ["content"]  # the readable part's pass stands: no decoding
        assert entry["analysed"]["stopped"] == "truncated" and entry["plan"]["remove_tags"] == []
        assert run_tag(server, plugin_dir, data, configs["whole"], mode="untagged").output["scenes"] == []


def test_a_truncated_file_only_stash_can_read_is_known_as_truncated_by_its_second_read(
        plugin_dir: Path, videos: dict[str, Path], data: Path, configs: dict[str, Path]) -> None:
    cut = videos["cut"]
    server = StashTestServer(media_paths={STASH_MEDIA: str(cut.parent)})
    stash_file = {"path": f"{STASH_MEDIA}/{cut.name}", "oshash": oshash(cut)}
    scene = server.state.add_scene("cut", files=[stash_file])
    with server:
        first = run_tag(server, plugin_dir, data, configs["whole"], mode="untagged")
        assert first.output["scenes"][0]["analysed"]["stopped"] == "interrupted"
        assert processed(data, scene)[0] == "partial"
        second = run_tag(server, plugin_dir, data, configs["whole"], mode="untagged")
        (entry,) = second.output["scenes"]
        assert entry["analysed"]["stopped"] == "truncated" and second.output["partial"] == 0
        assert processed(data, scene)[0] == "done"
        assert "Face Female" in scene_state(server, scene)["tags"]
        third = run_tag(server, plugin_dir, data, configs["whole"], mode="report", scene_id=str(scene))
        assert third.output["scenes"][0]["cached"] == ["content"]  # not read a third time
