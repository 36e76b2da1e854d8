"""Milliseconds per frame of the content (NudeNet) and text (PP-OCRv4) analyzers.

Frames are 640 px wide, as the frame reader hands them over: real face photos from ../shared for
NudeNet, and a synthetic scene with and without a 50 %-opaque watermark for OCR. Prints numbers
only (medians of ``--repeat`` runs). Compare ratios from one run: this machine varies ±20-30 %.

    .venv/bin/python bench/bench_content_text.py [--threads 2] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.analyzers.content import ContentAnalyzer  # noqa: E402
from tagger.analyzers.runtime import RuntimeOptions  # noqa: E402
from tagger.analyzers.text import TextAnalyzer  # noqa: E402
from tagger.media.frames import Frame, SamplingPlan, iter_frames  # noqa: E402
from tagger.media.sample import make_sample_video  # noqa: E402

SHARED = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared")


def median_ms(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``call`` in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def photo_frames(count: int) -> list[Frame]:
    """``count`` face photos from ../shared scaled to 640 px wide, as frames."""
    paths = sorted((SHARED / "faces").glob("*/*.jpg"))[:count]
    frames = []
    for index, path in enumerate(paths):
        image = cv2.imread(str(path))
        scale = 640 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frames.append(Frame(float(index), index, image, "interval", False))
    return frames


def scene_frame() -> np.ndarray:
    """A decoded 640x360 frame of a synthetic textured video."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.mp4"
        make_sample_video(path, duration_s=0.4, size=(640, 360), fps=5, cut_times=(),
                          black_spans=())
        return next(iter_frames(str(path), SamplingPlan(interval_s=1.0))).image


def with_watermark(image: np.ndarray, text: str = "BRANDX.COM") -> np.ndarray:
    """``image`` with 16-px white ``text`` at 50 % opacity in the bottom-right corner."""
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, 16, 2)
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    layer = image.copy()
    origin = (image.shape[1] - width - 14, image.shape[0] - 14)
    cv2.putText(layer, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2,
                cv2.LINE_AA)
    return cv2.addWeighted(layer, 0.5, image, 0.5, 0)


def bench_content(options: RuntimeOptions, repeat: int) -> None:
    """NudeNet: one batch of 8 against 8 single-frame runs."""
    analyzer = ContentAnalyzer.from_manifest(options)
    frames = photo_frames(8)
    batched = median_ms(lambda: analyzer.analyze(frames), repeat) / len(frames)
    single = median_ms(lambda: [analyzer.analyze([f]) for f in frames], repeat) / len(frames)
    print(f"content nudenet batch of 8     ms/frame {batched:7.1f}")
    print(f"content nudenet single         ms/frame {single:7.1f}")


def bench_text(options: RuntimeOptions, repeat: int) -> None:
    """OCR: corner-gated with and without text against a full-frame pass."""
    ocr = TextAnalyzer.from_manifest(options)
    plain = scene_frame()
    marked = with_watermark(plain)
    rows = [
        ("text corners, no text       ", lambda: ocr.read([plain])),
        ("text corners, watermark     ", lambda: ocr.read([marked])),
        ("text full frame, no text    ", lambda: ocr.read([plain], full_frame=True)),
        ("text full frame, watermark  ", lambda: ocr.read([marked], full_frame=True)),
    ]
    for label, call in rows:
        print(f"{label}   ms/frame {median_ms(call, repeat):7.1f}")
    print(f"text watermark read as            {[r.text for r in ocr.read([marked])[0]]}")


def main() -> None:
    """Run both benchmarks with the given threads and repeats."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # onnxruntime's duplicate-provider notice
    options = RuntimeOptions(threads=args.threads, providers=("CPUExecutionProvider",))
    print(f"threads {args.threads}, repeat {args.repeat}")
    bench_content(options, args.repeat)
    bench_text(options, args.repeat)


if __name__ == "__main__":
    main()
