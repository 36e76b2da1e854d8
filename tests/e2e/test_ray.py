"""The analysis on a Ray cluster, end to end: the plugin, run as Stash runs it with ``ray_address``
set, tags a small library on the test Stash server with the real models, one Ray task per video,
and Stash ends up exactly as after a single-process run of an identical fresh library; a worker
killed mid-video gets its video run again elsewhere; a cluster that is not there fails the run at
once, naming the address; progress counts finished videos; ``local`` starts a cluster for the run
and leaves nothing behind.

The cluster is real: a Ray head node on this machine with two CPUs, so two worker processes
analyse at once (``ray.cluster_utils.Cluster``, started once for the module and joined by address,
which also ships the plugin's code as the job's working directory, as for a remote cluster).

    scene   on screen                                          Stash has
    long    p03 (1.jpg) 2-16 s, p05 (2.jpg) 8-20 s, BRANDX.COM    Bob = p03/2.jpg, Anna = p05/1.jpg
            24 s, cuts every 8 s
    solo    p04 (1.jpg) 1-9 s, BRANDX.COM top left                Cora = p04/2.jpg, studio Brand X
    crowd   p01 (1.jpg) 1-9 s (nobody's)                          tag Woman (alias Face Female)
    empty   two cuts, nothing else
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tagger.media.sample import make_sample_video
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}
SIZE = (854, 480)  # analysed at this size anyway (max_side 640 keeps 640x360): cheaper to decode
FACE_HEIGHT = 172  # about a third of the frame, as in a medium shot

CONFIG = """\
shot_markers: true
tags:
  FACE_FEMALE: {enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true}
  FACE_MALE: {enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true}
"""

TASK_TITLE = "ray::analyse_video"
"""The process title of a Ray worker while it runs our task (Ray names it after the function)."""


def photo(shared_dir: Path, name: str) -> Any:
    image = cv2.imread(str(shared_dir / "faces" / name))
    return cv2.resize(image, (image.shape[1] * FACE_HEIGHT // image.shape[0], FACE_HEIGHT))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ray-library")
    made = {
        "long": make_sample_video(folder / "long.mp4", size=SIZE, duration_s=24, cut_times=(8.0, 16.0),
                                  black_spans=(), text=("BRANDX.COM", 0.0, 24.0, "bottom-right"),
                                  faces=[(photo(shared_dir, "p03/1.jpg"), 2.0, 16.0, (0.3, 0.45)),
                                         (photo(shared_dir, "p05/2.jpg"), 8.0, 20.0, (0.7, 0.45))]),
        "solo": make_sample_video(folder / "solo.mp4", size=SIZE, duration_s=10, cut_times=(5.0,),
                                  black_spans=(), text=("BRANDX.COM", 0.0, 10.0, "top-left"),
                                  faces=[(photo(shared_dir, "p04/1.jpg"), 1.0, 9.0, (0.5, 0.45))]),
        "crowd": make_sample_video(folder / "crowd.mp4", size=SIZE, duration_s=10, cut_times=(4.0,),
                                   black_spans=(),
                                   faces=[(photo(shared_dir, "p01/1.jpg"), 1.0, 9.0, (0.5, 0.45))]),
        "empty": make_sample_video(folder / "empty.mp4", size=SIZE, duration_s=8, cut_times=(3.0, 6.0),
                                   black_spans=()),
    }
    return {name: truth.path for name, truth in made.items()}


class seeded_server:
    """A fresh test Stash holding the library, the performers' images, a studio and a user tag."""

    def __init__(self, library: dict[str, Path], shared_dir: Path) -> None:
        self.server = StashTestServer()
        state = self.server.state
        for name, image in (("Bob", "p03/2.jpg"), ("Anna", "p05/1.jpg"), ("Cora", "p04/2.jpg")):
            state.add_performer(name, image=str(shared_dir / "faces" / image))
        state.add_tag("Woman", aliases=["Face Female"])
        state.add_studio("Brand X", aliases=["BrandX"])
        for name, path in library.items():
            state.add_scene(name, path=str(path))

    def __enter__(self) -> StashTestServer:
        return self.server.start()

    def __exit__(self, *_exc: object) -> None:
        self.server.stop()


def stash_state(server: StashTestServer) -> dict[str, Any]:
    """What a user sees, by names: each scene's tags, markers, studio and performers, and the tags."""
    state = server.state.snapshot()
    tags = state["tags"]
    scenes = {}
    for scene in state["scenes"].values():
        markers = sorted((m["title"], round(m["seconds"], 3), m["end_seconds"] and round(m["end_seconds"], 3),
                          tags[m["primary_tag_id"]]["name"])
                         for m in state["markers"].values() if m["scene_id"] == scene["id"])
        scenes[scene["title"]] = {
            "tags": sorted(tags[t]["name"] for t in scene["tag_ids"]),
            "markers": markers,
            "studio": state["studios"][scene["studio_id"]]["name"] if scene["studio_id"] else None,
            "performers": sorted(state["performers"][p]["name"] for p in scene["performer_ids"]),
        }
    return {"scenes": scenes, "tags": sorted((t["name"], t["description"]) for t in tags.values())}


def config_file(folder: Path, ray_address: str = "") -> Path:
    path = folder / "config.yaml"
    path.write_text(CONFIG + (f"ray_address: {ray_address!r}\n" if ray_address else ""))
    return path


def run_tag(plugin_dir: Path, server: StashTestServer, data: Path, config: Path, mode: str = "untagged",
            **options: Any) -> PluginRun:
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config), **options.pop("env", {})}
    return run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, TASK_FOR_MODE[mode]), server, env=env,
                      timeout=240, **options)


def errors_in(run: PluginRun) -> list[str]:
    return [text for level, text in run.log if level == "e"] or [run.stderr[-3000:]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A Ray cluster on this machine with two CPUs: two worker processes analyse at once."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        yield head.address
    finally:
        head.shutdown()


@pytest.fixture(scope="module")
def single_process(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, library: dict[str, Path],
                   shared_dir: Path) -> dict[str, Any]:
    """Stash's state after tagging a fresh library in one process (no Ray): the reference."""
    folder = tmp_path_factory.mktemp("ray-reference")
    with seeded_server(library, shared_dir) as server:
        run = run_tag(plugin_dir, server, folder / "data", config_file(folder))
        assert run.error is None, errors_in(run)
        return stash_state(server)


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, library: dict[str, Path],
           shared_dir: Path, cluster: str) -> tuple[PluginRun, dict[str, Any], Path]:
    """A fresh library tagged with ``ray_address`` set to the two-worker cluster: the run, Stash's
    state after it, and its data folder."""
    folder = tmp_path_factory.mktemp("ray-run")
    with seeded_server(library, shared_dir) as server:
        run = run_tag(plugin_dir, server, folder / "data", config_file(folder, cluster))
        return run, stash_state(server), folder / "data"


def test_the_library_is_sane_on_its_own(single_process: dict[str, Any]) -> None:
    """The reference run finds what the library holds (else comparing with it would prove little)."""
    scenes = single_process["scenes"]
    assert scenes["long"]["performers"] == ["Anna", "Bob"] and scenes["solo"]["performers"] == ["Cora"]
    assert scenes["long"]["studio"] == "Brand X" and "Woman" in scenes["long"]["tags"]
    assert [m[0] for m in scenes["empty"]["markers"]] == ["Shot 1", "Shot 2", "Shot 3"]
    assert scenes["crowd"]["performers"] == []


def test_tagging_on_ray_gives_the_same_stash_state_as_one_process(
        on_ray: tuple[PluginRun, dict[str, Any], Path], single_process: dict[str, Any]) -> None:
    run, state, _ = on_ray
    assert run.error is None, errors_in(run)
    assert (run.output["analysed"], run.output["failed"]) == (4, 0)
    assert state == single_process


def test_every_video_ran_as_a_ray_task_on_the_cluster(on_ray: tuple[PluginRun, dict[str, Any], Path]) -> None:
    run, _, _ = on_ray
    assert "Ray cluster at" in " ".join(text for _, text in run.log)
    pids = worker_pids(run)
    assert len(pids) == 4 and len(set(pids)) >= 2  # both workers took videos


def worker_pids(run: PluginRun) -> list[str]:
    """The worker pid of each video, from the driver's "scene N: analysed on HOST (pid P)" lines."""
    return [text.split("(pid ")[1].split(")")[0] for level, text in run.log
            if level == "d" and " analysed on " in text]


def test_a_worker_process_builds_its_engine_once_for_all_its_videos(
        on_ray: tuple[PluginRun, dict[str, Any], Path]) -> None:
    run, _, _ = on_ray
    builds = [text for _, text in run.log if text.startswith("Ray node") and "yunet: running on" in text]
    assert len(builds) == len(set(worker_pids(run))) < 4  # four videos


def test_progress_counts_finished_videos(on_ray: tuple[PluginRun, dict[str, Any], Path]) -> None:
    run, _, _ = on_ray
    assert run.progress == [0.25, 0.5, 0.75, 1.0]


def test_ray_writes_nothing_raw_to_the_plugin_protocol(
        on_ray: tuple[PluginRun, dict[str, Any], Path]) -> None:
    run, _, _ = on_ray
    assert run.stdout.count("\n") == 1 and run.stdout.startswith('{"output": ')
    assert raw_lines(run) == []
    assert max(len(line) for line in run.stderr.splitlines()) < 1000


def raw_lines(run: PluginRun) -> list[str]:
    """stderr lines that are not Stash's log protocol (Stash would log them as they are)."""
    return [line for line in run.stderr.splitlines() if not line.startswith("\x01")]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, library: dict[str, Path],
               shared_dir: Path, cluster: str) -> tuple[PluginRun, dict[str, Any], tuple[int, str]]:
    """A run on the cluster during which the first worker seen reading a video is SIGKILLed: the
    run, Stash's state after it, and (pid, video) of the worker killed."""
    folder = tmp_path_factory.mktemp("ray-killed")
    killed: list[tuple[int, str]] = []
    stop = threading.Event()

    def kill_the_first_worker_reading_a_video() -> None:
        videos = {str(path): name for name, path in library.items()}
        while not stop.is_set() and not killed:
            for pid in task_workers():
                reading = [videos[f] for f in open_files(pid) if f in videos]
                if reading:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, reading[0]))
                    break
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_first_worker_reading_a_video, daemon=True)
    with seeded_server(library, shared_dir) as server:
        watcher.start()
        try:
            run = run_tag(plugin_dir, server, folder / "data", config_file(folder, cluster))
        finally:
            stop.set()
            watcher.join()
        assert len(killed) == 1, "no worker was seen reading a video"
        return run, stash_state(server), killed[0]


def test_a_worker_killed_mid_video_gets_that_video_run_again(
        killed_run: tuple[PluginRun, dict[str, Any], tuple[int, str]],
        single_process: dict[str, Any]) -> None:
    run, state, (pid, video) = killed_run
    assert run.error is None, errors_in(run)
    assert not Path(f"/proc/{pid}").exists()
    entry = next(scene for scene in run.output["scenes"] if scene["title"] == video)
    assert "error" not in entry and entry["applied"]["markers_created"] > 0
    assert (run.output["analysed"], run.output["failed"]) == (4, 0)
    assert state == single_process


def test_a_dead_worker_is_reported_in_log_lines_not_raw_text(
        killed_run: tuple[PluginRun, dict[str, Any], tuple[int, str]]) -> None:
    run, _, _ = killed_run
    warnings = [text for level, text in run.log if level == "w"]
    assert any("A worker died" in text for text in warnings), warnings
    assert any("will be retried" in text for text in warnings), warnings
    assert raw_lines(run) == []


def task_workers() -> list[int]:
    """Pids of the Ray worker processes running our task right now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(TASK_TITLE):
                pids.append(int(entry.name))
    return pids


def open_files(pid: int) -> list[str]:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    found = []
    for fd in fds:
        try:
            found.append(os.readlink(fd))
        except OSError:
            continue
    return found


def test_an_unreachable_cluster_fails_the_run_at_once_naming_its_address(
        tmp_path: Path, plugin_dir: Path, library: dict[str, Path], shared_dir: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with seeded_server(library, shared_dir) as server:
        run = run_tag(plugin_dir, server, tmp_path / "data", config_file(tmp_path, address))
        assert run.error is not None and f"ray_address {address!r}: no Ray cluster answers" in run.error
        assert run.wall < 30
        assert [r for r in server.requests if r[1].lstrip().startswith("mutation")] == []


def test_local_starts_a_cluster_for_the_run_and_leaves_no_process_behind(
        tmp_path: Path, plugin_dir: Path, library: dict[str, Path], shared_dir: Path,
        on_ray: tuple[PluginRun, dict[str, Any], Path], single_process: dict[str, Any]) -> None:
    # The analysis cache of the run on the cluster: the local cluster's workers find every video there.
    data = tmp_path / "data"
    data.mkdir()
    (data / "cache.sqlite").write_bytes((on_ray[2] / "cache.sqlite").read_bytes())
    mark = f"ray-local-{os.getpid()}-{time.monotonic_ns()}"
    with seeded_server(library, shared_dir) as server:
        run = run_tag(plugin_dir, server, data, config_file(tmp_path, "local"),
                      env={"AI_TAGGER_TEST_RUN": mark})
        assert run.error is None, errors_in(run)
        assert not run.timed_out
        assert "Ray cluster at local" in " ".join(text for _, text in run.log)
        assert stash_state(server) == single_process
    time.sleep(1.0)  # ray.shutdown has returned; give the kernel a moment to reap
    assert processes_with(mark) == []


def processes_with(mark: str) -> list[str]:
    """Processes whose environment carries ``mark`` (the plugin's children inherit it)."""
    found = []
    needle = f"AI_TAGGER_TEST_RUN={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            continue
    return found


def test_without_ray_installed_the_error_says_what_to_install(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from tagger.config import build_config
    from tagger.errors import ConfigError
    from tagger.run.context import RunContext
    from tagger.run.executor import analysis_executor
    from tagger.stashside.protocol import StashLog

    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does when a package is absent
    context = RunContext(config=build_config({"ray_address": "auto"}), client=None,  # type: ignore[arg-type]
                         store=None, log=StashLog(io.StringIO()), data_dir=tmp_path)  # type: ignore[arg-type]
    says = r"pip install -r .*requirements-ray\.txt"
    with pytest.raises(ConfigError, match=says), analysis_executor(context):
        pass


def test_an_engine_result_survives_pickling(tmp_path: Path, library: dict[str, Path]) -> None:
    """Ray sends results back pickled: what arrives is what was found."""
    from tagger.config import build_config
    from tagger.engine.engine import Engine

    engine = Engine(build_config({}), tmp_path, lambda *_: None)
    result = engine.analyze(str(library["solo"]))
    back = pickle.loads(pickle.dumps(result))
    assert back.to_dict() == result.to_dict()
    faces = [(d, e) for d, e in zip(result.detections, back.detections) if d.embedding is not None]
    assert faces and all(np.array_equal(d.embedding, e.embedding) for d, e in faces)


def test_an_analysis_result_survives_pickling(library: dict[str, Path]) -> None:
    from tagger.engine.one_pass import AnalyzeOptions, analyze_file

    result = analyze_file(str(library["empty"]), AnalyzeOptions(), analyzers=[])
    back = pickle.loads(pickle.dumps(result))
    assert back.to_dict() == result.to_dict() and back.sample_times == result.sample_times


def test_a_backlog_is_submitted_a_window_at_a_time(tmp_path: Path, library: dict[str, Path],
                                                   cluster: str) -> None:
    """However long the selection, only ``window`` videos are in flight; the rest are read from the
    selection as videos finish (a 100,000-scene backlog is never submitted at once)."""
    from tagger.config import build_config
    from tagger.engine.engine import Engine
    from tagger.run.context import RunContext
    from tagger.run.executor import analysis_executor
    from tagger.stashside.protocol import StashLog
    from tagger.stashside.stash import StashClient, StashFile, StashScene

    config = build_config({"ray_address": cluster, "analyzers": ["shots"]})
    context = RunContext(config=config, client=StashClient(url="http://127.0.0.1:9"), store=None,  # type: ignore[arg-type]
                         log=StashLog(io.StringIO()), data_dir=tmp_path)
    read: list[int] = []

    def selection() -> Iterator[StashScene]:
        for number in range(1, 13):
            read.append(number)
            yield StashScene(id=str(number), title=f"scene {number}", stream_url=None,
                             files=(StashFile(id=str(number), path=str(library["empty"])),))

    engine = Engine(config, tmp_path, lambda *_: None)
    read_at_each_outcome = []
    with analysis_executor(context) as executor:
        window = executor.window  # type: ignore[attr-defined]
        for analysis in executor.analyses(engine, selection(), 12):
            assert analysis.error is None, analysis.error
            read_at_each_outcome.append(len(read))
    assert window < 12
    assert read_at_each_outcome[0] == window
    assert all(count <= window + done for done, count in enumerate(read_at_each_outcome))
    assert len(read_at_each_outcome) == 12


def test_workers_get_the_configuration_without_credentials() -> None:
    from tagger.config import build_config
    from tagger.run.distributed import without_secrets

    config = build_config({"api_key": "secret-key", "interval": 3.0})
    shipped = without_secrets(config)
    assert shipped.api_key == "" and shipped.interval == 3.0


def test_a_node_without_the_drivers_data_folder_uses_a_node_local_one(tmp_path: Path) -> None:
    import tempfile

    from tagger.run.distributed import node_data_dir

    assert node_data_dir(tmp_path) == tmp_path  # same machine (or a shared disk)
    assert node_data_dir(tmp_path / "elsewhere") == Path(tempfile.gettempdir()) / "ai-tagger-ray"


# ---- what travels to the cluster ---------------------------------------------------------------------

API_KEY = "ray-test-api-key-0123456789"


@pytest.fixture(scope="module")
def credential_run(tmp_path_factory: pytest.TempPathFactory, library: dict[str, Path],
                   cluster: str) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """Two videos of a Stash with an API key analysed on the cluster: "seen" at a path the Ray
    workers read, "unseen" at one they cannot (a relative path: the driver runs in the test's
    folder, the workers in the shipped code's, as a node on another machine would not see it).
    Returns each task submitted as (scene id, its arguments pickled as Ray sends them), and each
    scene's analysis by title."""
    import ray
    from ray import cloudpickle

    from tagger.config import build_config
    from tagger.engine.engine import Engine
    from tagger.run.context import RunContext
    from tagger.run.distributed import RayAnalysis
    from tagger.run.executor import analysis_executor
    from tagger.stashside.protocol import StashLog
    from tagger.stashside.stash import StashClient

    folder = tmp_path_factory.mktemp("ray-credentials")
    shutil.copy(library["crowd"], folder / "unseen.mp4")
    (folder / "data").mkdir()
    sent: list[tuple[str, bytes]] = []
    submit = RayAnalysis._submit

    def recording(self: RayAnalysis, task: Any, spec: Any, job: Any) -> Any:
        sent.append((job.scene_id, cloudpickle.dumps((ray.get(spec), job))))
        return submit(self, task, spec, job)

    with StashTestServer(api_key=API_KEY) as server, pytest.MonkeyPatch.context() as patch:
        patch.setattr(RayAnalysis, "_submit", recording)
        patch.chdir(folder)
        seen = server.state.add_scene("seen", path=str(library["empty"]))
        unseen = server.state.add_scene("unseen", path="unseen.mp4")
        config = build_config({"ray_address": cluster, "analyzers": ["shots"], "api_key": API_KEY})
        client = StashClient(url=server.url, api_key=API_KEY)
        scenes = [client.find_scene(str(seen)), client.find_scene(str(unseen))]
        context = RunContext(config=config, client=client, store=None,  # type: ignore[arg-type]
                             log=StashLog(io.StringIO()), data_dir=folder / "data")
        engine = Engine(config, folder / "data", lambda *_: None)
        with analysis_executor(context) as executor:
            analyses = {a.scene.title: a for a in executor.analyses(engine, scenes, len(scenes))}
    return sent, analyses


def test_videos_the_nodes_read_from_disk_send_no_credential_to_the_cluster(
        credential_run: tuple[list[tuple[str, bytes]], dict[str, Any]]) -> None:
    sent, analyses = credential_run
    seen = analyses["seen"]
    assert seen.error is None and seen.via == "path"
    tasks = [arguments for scene_id, arguments in sent if scene_id == seen.scene.id]
    assert len(tasks) == 1 and API_KEY.encode() not in tasks[0]


def test_a_node_that_cannot_see_a_file_streams_it_with_credentials_sent_for_that_video_alone(
        credential_run: tuple[list[tuple[str, bytes]], dict[str, Any]]) -> None:
    from tagger.redact import url_without_secrets

    sent, analyses = credential_run
    unseen = analyses["unseen"]
    assert unseen.error is None and unseen.via == "stream"
    found = unseen.result.to_dict()
    assert found["file"] == url_without_secrets(unseen.scene.stream_url) and "apikey" not in found["file"]
    assert len(found["shots"]) == 2  # the crowd video, decoded from Stash's stream: one cut
    carries_the_key = [API_KEY.encode() in arguments for scene_id, arguments in sent
                       if scene_id == unseen.scene.id]
    assert carries_the_key == [False, True]  # asked without, sent once more with the headers


def test_a_family_registered_from_outside_the_package_runs_on_the_cluster(
        tmp_path: Path, library: dict[str, Path], cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster's workers were started before the family was registered here: the variable
    travels with the run (its runtime environment), not with the workers' own environment."""
    from tagger.config import build_config
    from tagger.engine.engine import Engine
    from tagger.run.context import RunContext
    from tagger.run.executor import analysis_executor
    from tagger.stashside.protocol import StashLog
    from tagger.stashside.stash import StashClient
    from tests.e2e import test_families

    monkeypatch.setenv("AI_TAGGER_FAMILIES", f"brightness={Path(test_families.__file__)}:Brightness")
    (tmp_path / "data").mkdir()
    with StashTestServer() as server:
        scene_id = server.state.add_scene("dark", path=str(library["empty"]))
        config = build_config({"ray_address": cluster, "analyzers": ["brightness"]})
        client = StashClient(url=server.url)
        context = RunContext(config=config, client=client, store=None,  # type: ignore[arg-type]
                             log=StashLog(io.StringIO()), data_dir=tmp_path / "data")
        engine = Engine(config, tmp_path / "data", lambda *_: None)
        scenes = [client.find_scene(str(scene_id))]
        with analysis_executor(context) as executor:
            (analysis,) = list(executor.analyses(engine, scenes, 1))
    assert analysis.error is None, analysis.error
    labels = {d.label for d in analysis.result.detections}
    assert labels and labels <= {"DARK", "BRIGHT"}
