"""Face pipeline timings: detection per 640x360 frame, embedding per face; 1 vs 2 threads.

Usage: ``python bench/bench_faces.py [faces_dir]`` (default: ``$AI_TAGGER_SHARED/faces`` or
``../shared/faces``). Prints numbers only; compare ratios within one run, not across runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagger.analyzers.faces import FaceAnalyzer, _detector_input, align_face
from tagger.analyzers.runtime import RuntimeOptions

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared") / "faces"


def best_ms(run: Callable[[], object], repeat: int = 30) -> float:
    """Fastest of ``repeat`` timed calls, in ms (after two warm-up calls)."""
    run()
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def frame_640x360(faces_dir: Path) -> np.ndarray:
    """A group photo scaled and cropped to 640x360, as a sampled video frame would be."""
    image = cv2.imread(str(faces_dir / "groups" / "g04.jpg"))
    scale = 640 / image.shape[1]
    image = cv2.resize(image, (640, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top = max(0, (image.shape[0] - 360) // 2)
    return np.ascontiguousarray(image[top:top + 360])


def bench(threads: int, data_dir: Path, frame: np.ndarray) -> None:
    """Print the timings for one thread count."""
    analyzer = FaceAnalyzer.from_manifest(data_dir, RuntimeOptions(threads=threads))
    detector = analyzer._detector
    single = _detector_input(frame)
    stacked = np.concatenate([single] * 4)
    faces = analyzer.detect(frame)
    crops = np.stack([align_face(frame, face.landmarks) for face in faces] * 3)
    print(f"threads={threads} faces_in_frame={len(faces)} crops={len(crops)}")
    print(f"  detect (decode+NMS) ms/frame      {best_ms(lambda: analyzer.detect(frame)):.2f}")
    print(f"  yunet run batch=1 ms/frame        {best_ms(lambda: detector.run(None, {'input': single})):.2f}")
    print(f"  yunet run batch=4 ms/frame        "
          f"{best_ms(lambda: detector.run(None, {'input': stacked}), 10) / 4:.2f}")
    print(f"  align ms/face                     {best_ms(lambda: align_face(frame, faces[0].landmarks)):.3f}")
    print(f"  embed batched ms/face             {best_ms(lambda: analyzer.embed(crops), 5) / len(crops):.2f}")
    print(f"  embed single ms/face              "
          f"{best_ms(lambda: [analyzer.embed(crop[None]) for crop in crops], 5) / len(crops):.2f}")


def main() -> None:
    """Run the benchmark with 2 threads and with 1."""
    faces_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else FACES
    frame = frame_640x360(faces_dir)
    with tempfile.TemporaryDirectory() as data_dir:
        for threads in (2, 1):
            bench(threads, Path(data_dir), frame)


if __name__ == "__main__":
    main()
