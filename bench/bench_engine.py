"""Engine benchmark: real-time factor, per-stage seconds, frames analysed and peak RSS, for the
engine and, in the same run, for a naive baseline (OpenCV reads every frame; the same models run
on the same sample times, one frame at a time, no overlap).

    .venv/bin/python bench/bench_engine.py [--minutes 10] [--height 1080] [--analyzers faces,content,text]

The input is generated once into bench/.data/: an H.264 video with a realistic encoder (x264
veryfast, B-frames, keyframes every 2-10 s and at scene cuts), a cut every 30 s, faces from
../shared/faces in several shots, a black span and a corner watermark. Each variant runs in its
own process so that peak RSS is its own. Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / ".data"
SHARED = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared")


def make_input(minutes: float, height: int) -> Path:
    """The benchmark video (made once, then reused)."""
    import cv2

    from tagger.media.sample import FaceSpec, make_sample_video

    width = height * 16 // 9
    path = DATA / f"bench_{minutes:g}min_{height}p.mp4"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    duration = minutes * 60
    cuts = [float(t) for t in range(30, int(duration), 30)]
    photos = [SHARED / "faces" / name for name in ("p01/1.jpg", "p02/1.jpg", "p04/1.jpg", "p05/1.jpg")]
    faces = []
    for index, start in enumerate(range(0, int(duration), 60)):  # a face in every other shot
        image = cv2.imread(str(photos[index % len(photos)]))
        faces.append(FaceSpec(image, float(start), float(start + 30), (0.3 + 0.1 * (index % 4), 0.45)))
    tmp = path.with_suffix(".tmp.mp4")
    started = time.time()
    make_sample_video(
        tmp, duration_s=duration, size=(width, height), fps=30.0, cut_times=cuts,
        black_spans=((duration / 2, duration / 2 + 2),),
        text=("BRANDX.COM", 60.0, duration - 60, "bottom-right"), faces=faces,
        encoder_options={"preset": "veryfast", "crf": "23",
                         "x264-params": "keyint=300:min-keyint=60:scenecut=40"},
    )
    tmp.replace(path)
    print(f"made {path.name} in {time.time() - started:.0f} s", file=sys.stderr)
    return path


def run_engine(video: Path, analyzers: list[str], sampling: str = "interval",
               threads: int = 0) -> dict[str, object]:
    from tagger.analyzers import build_analyzers
    from tagger.config import build_config
    from tagger.engine.one_pass import AnalyzeOptions, analyze_file

    config = build_config({"analyzers": [*analyzers, "shots"], "threads": threads})
    models = build_analyzers(config, DATA / "data", lambda *_: None)
    started = time.perf_counter()
    options = AnalyzeOptions(interval_s=config.interval, sampling=sampling)
    result = analyze_file(str(video), options, analyzers=models)
    wall = time.perf_counter() - started
    return {"wall": wall, "frames": result.frames_analysed, "timings": result.timings,
            "detections": len(result.detections), "shots": len(result.shots)}


def run_baseline(video: Path, analyzers: list[str]) -> dict[str, object]:
    """OpenCV reads every frame; each sample (every 2 s) goes through the same models alone."""
    import cv2

    from tagger.analyzers import build_analyzers
    from tagger.config import build_config
    from tagger.media.frames import Frame, target_size

    config = build_config({"analyzers": analyzers})
    models = build_analyzers(config, DATA / "data", lambda *_: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(video))
    next_sample, samples, index = 0.0, 0, 0
    while True:
        tick = time.perf_counter()
        ok, image = capture.read()
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - tick
        if not ok:
            break
        t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if t + 1e-6 >= next_sample:
            small = cv2.resize(image, target_size(image.shape[1], image.shape[0], config.max_side),
                               interpolation=cv2.INTER_AREA)
            frame = Frame(time=t, index=index, image=small, reason="interval", keyframe=False)
            for model in models:
                tick = time.perf_counter()
                model.analyze([frame])
                key = f"analyze:{model.name}"
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - tick
            samples += 1
            next_sample += config.interval
        index += 1
    return {"wall": time.perf_counter() - started, "frames": samples, "timings": timings}


VARIANTS = {
    "engine": {},
    "engine-1-thread-models": {"threads": 1},
    "engine-keyframes": {"sampling": "keyframes"},
}
"""Engine variants measured against the baseline."""


def _child(kind: str, video: Path, analyzers: list[str]) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", kind, "--video", str(video),
               "--analyzers", ",".join(analyzers)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--analyzers", default="faces,content,text")
    parser.add_argument("--child", choices=(*VARIANTS, "baseline"))
    parser.add_argument("--video")
    args = parser.parse_args()
    analyzers = [a for a in args.analyzers.split(",") if a]
    if args.child:
        if args.child == "baseline":
            result = run_baseline(Path(args.video), analyzers)
        else:
            result = run_engine(Path(args.video), analyzers, **VARIANTS[args.child])
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    video = make_input(args.minutes, args.height)
    duration = args.minutes * 60
    results = {name: _child(name, video, analyzers) for name in (*VARIANTS, "baseline")}
    print(f"input: {video.name}, {duration:.0f} s, analyzers {','.join(analyzers)}, "
          f"{os.cpu_count()} cores")
    baseline = results["baseline"]["wall"]
    for name, result in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["timings"].items()))
        print(f"{name:23s} wall {result['wall']:6.1f} s  real-time x{duration / result['wall']:6.1f}  "
              f"vs baseline x{baseline / result['wall']:5.2f}  frames {result['frames']:4d}  "
              f"peak RSS {result['peak_rss_mb']:5.0f} MB  [{stages}]")


if __name__ == "__main__":
    main()
