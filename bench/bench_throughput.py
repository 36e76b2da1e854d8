"""Throughput benchmark: a batch of videos tagged by the real plugin against the test Stash server,
in one process, through the worker service (``ai_tagger.py serve`` on this machine; the plugin
only relays) and on Ray (a local cluster of two worker processes), in the same run.

    .venv/bin/python bench/bench_throughput.py [--videos 8] [--seconds 60] [--height 720]

Each column tags the same N videos (made once into bench/.data/throughput/: H.264 with cuts, a
watermark and faces from ../shared/faces; each its own seed, so no video is a cache hit for
another) on a fresh test Stash with a fresh data folder (a cold analysis cache), through the plugin
protocol exactly as Stash runs it, and prints videos per minute, the real-time factor (seconds of
video per second of wall time) and the ratio against in-process. The worker column's service and
the Ray column's cluster are started once before the column (their start-up is printed apart);
``ray_address: local`` would add the cluster's start-up to every run. A column is one function
``(plugin_dir, server, data, config) -> PluginRun`` in ``COLUMNS``. Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / ".data" / "throughput"
SHARED = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared")

from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args  # noqa: E402

MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK = "Tag untagged scenes"
RAY_WORKERS = 2


def make_inputs(count: int, seconds: float, height: int) -> list[Path]:
    """``count`` videos of ``seconds`` each, alike but not the same file (made once, then reused)."""
    import cv2

    from tagger.media.sample import FaceSpec, make_sample_video

    folder = DATA / f"{seconds:g}s_{height}p"
    folder.mkdir(parents=True, exist_ok=True)
    photos = [SHARED / "faces" / name for name in ("p01/1.jpg", "p03/1.jpg", "p04/1.jpg", "p05/2.jpg")]
    face_height = height // 3
    videos = []
    for index in range(count):
        path = folder / f"video_{index:03d}.mp4"
        videos.append(path)
        if path.exists():
            continue
        image = cv2.imread(str(photos[index % len(photos)]))
        image = cv2.resize(image, (image.shape[1] * face_height // image.shape[0], face_height))
        cuts = [float(t) for t in range(15, int(seconds), 15)]
        faces = [FaceSpec(image, 2.0, seconds * 0.6, (0.35, 0.45))]
        tmp = path.with_suffix(".tmp.mp4")
        make_sample_video(tmp, duration_s=seconds, size=(height * 16 // 9 // 2 * 2, height), cut_times=cuts,
                          black_spans=(), text=("BRANDX.COM", 0.0, seconds, "bottom-right"), faces=faces,
                          seed=index + 1)
        tmp.replace(path)
    return videos


def tag_in_process(plugin_dir: Path, server: StashTestServer, data: Path, config: Path) -> PluginRun:
    """The plugin as it runs today: every video analysed in the plugin's own process."""
    return _run(plugin_dir, server, data, config, ray_address="")


def tag_on_ray(plugin_dir: Path, server: StashTestServer, data: Path, config: Path) -> PluginRun:
    """The plugin with ``ray_address`` set to the local two-worker cluster: one Ray task per video."""
    return _run(plugin_dir, server, data, config, ray_address=_cluster_address())


def tag_on_worker(plugin_dir: Path, server: StashTestServer, data: Path, config: Path) -> PluginRun:
    """The plugin forwarding to a worker on this machine, which runs the task in its own process."""
    config.write_text("")
    env = {"AI_TAGGER_DATA_DIR": str(data.with_name(data.name + "-stash-side")),
           "AI_TAGGER_WORKER_URL": _worker_url(), "AI_TAGGER_WORKER_TOKEN": WORKER_TOKEN}
    return run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, TASK), server, env=env, timeout=3600)


COLUMNS: dict[str, Callable[[Path, StashTestServer, Path, Path], PluginRun]] = {
    "in-process": tag_in_process,
    "worker": tag_on_worker,
    "ray": tag_on_ray,
}
"""What is measured, in order; the first is the reference for the ratio."""


def _run(plugin_dir: Path, server: StashTestServer, data: Path, config: Path, *,
         ray_address: str) -> PluginRun:
    config.write_text(f"ray_address: {ray_address!r}\n" if ray_address else "")
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    return run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, TASK), server, env=env, timeout=3600)


_cluster: list[str] = []
_worker: list[str] = []
WORKER_TOKEN = "bench-token"


def _worker_url() -> str:
    if not _worker:
        raise RuntimeError("the worker column needs worker_service() around it")
    return _worker[0]


@contextmanager
def worker_service(data: Path, config: Path) -> Iterator[float]:
    """``ai_tagger.py serve`` on a free loopback port, its jobs using ``data`` and ``config``; yields
    its start-up time."""
    from tests.worker_process import Worker

    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("")  # the column's own settings are written before its run
    started = time.perf_counter()
    worker = Worker(ROOT, data, config, token=WORKER_TOKEN)
    _worker.append(worker.url)
    try:
        yield time.perf_counter() - started
    finally:
        _worker.clear()
        worker.stop()


def _cluster_address() -> str:
    if not _cluster:
        raise RuntimeError("the Ray column needs ray_cluster() around it")
    return _cluster[0]


@contextmanager
def ray_cluster(workers: int) -> Iterator[float]:
    """A Ray head node on this machine with ``workers`` CPUs (so as many worker processes); yields
    its start-up time."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": workers, "include_dashboard": False})
    _cluster.append(head.address)
    try:
        yield time.perf_counter() - started
    finally:
        _cluster.clear()
        head.shutdown()


def measure(name: str, videos: list[Path]) -> tuple[float, PluginRun]:
    """Tag ``videos`` on a fresh Stash with a fresh data folder; the wall time of the plugin run."""
    data, config = DATA / f"{name}-data", DATA / f"{name}-config.yaml"
    shutil.rmtree(data, ignore_errors=True)
    with StashTestServer() as server:
        for path in videos:
            server.state.add_scene(path.stem, path=str(path))
        started = time.perf_counter()
        run = COLUMNS[name](ROOT, server, data, config)
        wall = time.perf_counter() - started
    if run.error is not None or run.output["analysed"] != len(videos):
        errors = [text for level, text in run.log if level == "e"] or [run.stderr[-2000:]]
        raise SystemExit(f"{name}: the run failed: {run.error}; {errors[:5]}")
    return wall, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each video")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--columns", default=",".join(COLUMNS), help="which columns, comma-separated")
    args = parser.parse_args()
    columns = [c for c in args.columns.split(",") if c]
    videos = make_inputs(args.videos, args.seconds, args.height)
    footage = args.videos * args.seconds
    walls: dict[str, float] = {}
    startups: dict[str, float] = {}
    for name in columns:
        if name == "ray":
            with ray_cluster(RAY_WORKERS) as startups[name]:
                walls[name], _ = measure(name, videos)
        elif name == "worker":
            with worker_service(DATA / f"{name}-data", DATA / f"{name}-config.yaml") as startups[name]:
                walls[name], _ = measure(name, videos)
        else:
            walls[name], _ = measure(name, videos)
    started = "; ".join(f"{name} start-up {seconds:.1f} s" for name, seconds in startups.items())
    print(f"input: {args.videos} videos x {args.seconds:g} s at {args.height}p ({footage:g} s of video), "
          f"{os.cpu_count()} cores" + (f"; {started} (not counted)" if started else ""))
    reference = walls[columns[0]]
    for name, wall in walls.items():
        print(f"{name:12s} wall {wall:7.1f} s  {args.videos / wall * 60:6.1f} videos/min  "
              f"real-time x{footage / wall:6.1f}  vs {columns[0]} x{reference / wall:5.2f}")


if __name__ == "__main__":
    main()
