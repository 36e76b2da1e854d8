"""Evidence contact sheets: built from a real sample video and a hand-made engine result."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from tagger.decide.faces import FaceTrack
from tagger.decide.studio import StudioMatch
from tagger.decide.tags import MarkerDecision, SceneTag
from tagger.decide.text import TextSpan
from tagger.detections import Detection
from tagger.engine.cache import PassRecord
from tagger.engine.engine import Decisions, EngineResult
from tagger.engine.evidence import (
    BOX_COLOURS,
    GAP,
    LABEL_H,
    TITLE_H,
    evidence_items,
    sheet_width,
    slugify,
    thumb_origin,
    write_evidence,
)
from tagger.errors import MediaError
from tagger.media.sample import SampleTruth, make_sample_video
from tagger.media.seek import decode_at
from tagger.media.video import probe

SIZE = (640, 360)
THUMB = (320, 180)
LABEL = "FEMALE_BREAST_EXPOSED"
TAG = "Female Breast Exposed"
BLACK = (5.0, 6.5)
CONTENT_TIMES = {2.0: 0.9, 4.0: 0.8, 5.5: 0.7, 10.0: 0.6, 11.0: 0.3}
TEXT_BOX = (480.0, 320.0, 140.0, 24.0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> SampleTruth:
    face = cv2.imread(str(shared_dir / "faces" / "p01" / "1.jpg"))
    assert face is not None
    return make_sample_video(tmp_path_factory.mktemp("evidence") / "sample.mp4", duration_s=12, size=SIZE,
                             cut_times=(8.0,), black_spans=(BLACK,),
                             text=("BRANDX.COM", 2.0, 10.0, "bottom-right"),
                             faces=[(face, 3.0, 9.0, (0.4, 0.5))])


def detections_for(sample: SampleTruth) -> list[Detection]:
    """Content hits, faces on the pasted face, watermark readings (and a scan to ignore)."""
    x, y, w, h = sample.face_spans[0].box
    box = (float(x), float(y), float(w), float(h))
    found = [Detection(t, "content", LABEL, s, (100.0, 80.0, 120.0, 100.0)) for t, s in CONTENT_TIMES.items()]
    found += [Detection(t, "face", "face", s, box) for t, s in ((3.5, 0.95), (4.5, 0.9), (7.0, 0.85))]
    found += [Detection(t, "text", "BRANDX.COM", 0.95, TEXT_BOX) for t in (2.0, 4.0, 8.0)]
    found += [Detection(6.0, "text", "brandx.com", 0.9, TEXT_BOX), Detection(4.0, "text-scan", "", 1.0)]
    return found


def result_for(sample: SampleTruth, *, tags: list[SceneTag] | None = None,
               markers: list[MarkerDecision] | None = None, source: str | None = None) -> EngineResult:
    detections = detections_for(sample)
    faces = [i for i, d in enumerate(detections) if d.kind == "face"]
    watermark = TextSpan("BRANDX.COM", 2.0, 10.0, 0.94, TEXT_BOX, readings=4)
    record = PassRecord(duration=12.0, fps=30.0, frames_analysed=6,
                        sample_times=[0.0, 2.0, 4.0, 6.0, 8.0, 10.0],
                        shots=[(0.0, 8.0), (8.0, 12.0)], technical=[("black", *BLACK)], warnings=[],
                        frame_size=SIZE)
    decisions = Decisions(
        tags=tags if tags is not None else [SceneTag(TAG, LABEL, 0.8, 8.0, 0.66)],
        markers=markers if markers is not None else [MarkerDecision(TAG, TAG, 2.0, 6.0, 0.8)],
        faces=[FaceTrack(track=0, start=3.5, end=7.0, score=0.9, detections=3, best_index=faces[0],
                         best_time=3.5, embedding=None, members=tuple(faces))],
        text=[watermark],
        studio=StudioMatch("Brand X", "7", 0.95, ("'BRANDX.COM' on screen 2.0-10.0 s (similarity 0.95)",),
                           (watermark,)),
    )
    return EngineResult(file=source or str(sample.path), record=record, detections=detections,
                        decisions=decisions)


def frame_at(path: Path, t: float) -> np.ndarray:
    """The first frame at or after ``t``, at thumbnail size (an independent decode)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if float(frame.pts * frame.time_base) >= t - 1e-3:
                return frame.reformat(*THUMB, "bgr24", interpolation="AREA").to_ndarray()
    raise AssertionError(f"no frame at {t}")


def thumb(sheet: np.ndarray, index: int) -> np.ndarray:
    x, y = thumb_origin(index, 6, THUMB)
    return sheet[y:y + THUMB[1], x:x + THUMB[0]]


@pytest.fixture(scope="module")
def sheets(sample: SampleTruth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sheets")
    return {p.name: p for p in write_evidence(result_for(sample), out)}


def test_one_sheet_per_item_named_by_what_it_shows(sheets: dict[str, Path]) -> None:
    assert sorted(sheets) == sorted(["tag-female-breast-exposed.jpg",
                                     "marker-female-breast-exposed-0m02s-0m06s.jpg", "face-0.jpg",
                                     "text-brandx-com.jpg", "studio-brand-x.jpg"])
    assert not [p for p in next(iter(sheets.values())).parent.iterdir() if p.suffix != ".jpg"]


def test_sheets_are_jpegs_of_the_grid_width(sheets: dict[str, Path]) -> None:
    assert sheet_width(6, 320) == 3 * 320 + 4 * 4
    for path in sheets.values():
        image = cv2.imread(str(path))
        assert image is not None, path
        assert image.shape[1] == sheet_width(6, 320)


def test_thumbnails_are_the_frames_at_the_detection_times(sample: SampleTruth,
                                                          sheets: dict[str, Path]) -> None:
    sheet = cv2.imread(str(sheets["tag-female-breast-exposed.jpg"])).astype(np.int16)
    # the tag's five frames in time order: 2.0, 4.0, 5.5 (black), 10.0, 11.0
    region = np.s_[:THUMB[1] - LABEL_H - 2, 120:]  # away from the drawn box and the label band
    for index, t in enumerate(CONTENT_TIMES):
        own = frame_at(sample.path, t).astype(np.int16)
        assert np.abs(thumb(sheet, index)[region] - own[region]).mean() < 10, t
    assert thumb(sheet, 2)[region].mean() < 15  # inside the black span
    assert thumb(sheet, 0)[region].mean() > 40
    after_cut = frame_at(sample.path, 10.0).astype(np.int16)
    assert np.abs(thumb(sheet, 0)[region] - after_cut[region]).mean() > 20


def test_the_marker_shows_only_frames_inside_its_span(sample: SampleTruth, sheets: dict[str, Path]) -> None:
    sheet = cv2.imread(str(sheets["marker-female-breast-exposed-0m02s-0m06s.jpg"]))
    assert sheet.shape[0] == TITLE_H + GAP + THUMB[1] + GAP  # one row: 2.0, 4.0, 5.5 (not 10.0)
    assert thumb(sheet, 2)[:THUMB[1] - LABEL_H - 2, 120:].mean() < 15  # 5.5 s is black


def test_the_face_box_is_drawn_where_the_face_is(sample: SampleTruth, sheets: dict[str, Path]) -> None:
    sheet = cv2.imread(str(sheets["face-0.jpg"])).astype(np.int16)
    x, y, w, _ = (v / 2 for v in sample.face_spans[0].box)  # 640x360 analysed -> 320x180 thumbs
    edge = thumb(sheet, 0)[round(y), round(x) + 4:round(x + w) - 4]
    blue, green, red = edge[:, 0], edge[:, 1], edge[:, 2]
    assert BOX_COLOURS["face"] == (0, 255, 0)
    assert ((green > 180) & (red < 100) & (blue < 100)).mean() > 0.8


def test_items_pick_the_best_frames_in_time_order(sample: SampleTruth) -> None:
    items = {item.kind: item for item in evidence_items(result_for(sample), per_item=2)}
    assert [f.time for f in items["tag"].frames] == [2.0, 4.0]
    assert [f.time for f in items["marker"].frames] == [2.0, 4.0]
    assert [f.time for f in items["face"].frames] == [3.5, 4.5]
    full = {item.kind: item for item in evidence_items(result_for(sample))}
    assert [f.time for f in full["text"].frames] == [2.0, 4.0, 6.0, 8.0]
    assert [f.time for f in full["studio"].frames] == [2.0, 4.0, 6.0, 8.0]
    assert all(d.kind == "text" for f in full["studio"].frames for d in f.boxes)
    assert full["marker"].title.startswith(f"marker {TAG} 0:02-0:06")
    assert full["face"].title.startswith("face #0")
    assert full["text"].title.startswith("text 'BRANDX.COM'")
    assert full["studio"].title.startswith("studio Brand X")


def test_a_marker_without_detections_shows_its_sample_frames(sample: SampleTruth) -> None:
    result = result_for(sample, markers=[MarkerDecision("Shot 2", "Shot", 8.0, 12.0, 1.0)])
    marker = next(item for item in evidence_items(result) if item.kind == "marker")
    assert [(f.time, f.score, f.boxes) for f in marker.frames] == [(8.0, None, ()), (10.0, None, ())]


def test_hostile_names_make_safe_unique_files(sample: SampleTruth, tmp_path: Path) -> None:
    tags = [SceneTag("../../x", LABEL, 0.8, 8.0, 0.6), SceneTag("a/b", LABEL, 0.8, 8.0, 0.6),
            SceneTag("A/B", LABEL, 0.8, 8.0, 0.6), SceneTag("\\..\x00:*?", LABEL, 0.5, 1.0, 0.1)]
    out = tmp_path / "out"
    paths = write_evidence(result_for(sample, tags=tags, markers=[]), out, per_item=2, thumb_width=160)
    names = [p.name for p in paths]
    assert names[:4] == ["tag-x.jpg", "tag-a-b.jpg", "tag-a-b-2.jpg", "tag-item.jpg"]
    assert len(set(names)) == len(names)
    assert all(p.parent == out and p.is_file() for p in paths)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert cv2.imread(str(paths[0])).shape[1] == sheet_width(2, 160) == 2 * 160 + 3 * 4
    assert slugify("Ünïcödé  Studio!") == "unicode-studio"


def test_a_missing_source_raises_media_error_naming_it(sample: SampleTruth, tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    with pytest.raises(MediaError, match=r"gone\.mp4"):
        write_evidence(result_for(sample, source=str(missing)), tmp_path / "out")
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"\x00\x01 not a video at all " * 50)
    with pytest.raises(MediaError, match=r"notes\.mp4"):
        write_evidence(result_for(sample, source=str(not_video)), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.fixture
def served(sample: SampleTruth) -> Iterator[tuple[str, list[str]]]:
    """The sample over http; the ApiKey headers received are recorded."""
    keys: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.append(self.headers.get("ApiKey", ""))
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(sample.path.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{sample.path.name}", keys
    finally:
        server.shutdown()
        server.server_close()


def test_a_stream_url_with_headers_works(sample: SampleTruth, served: tuple[str, list[str]],
                                         tmp_path: Path) -> None:
    url, keys = served
    paths = write_evidence(result_for(sample, source=url), tmp_path, http_headers={"ApiKey": "secret"},
                           per_item=3)
    assert len(paths) == 5 and all(cv2.imread(str(p)) is not None for p in paths)
    assert keys and set(keys) == {"secret"}


def test_decoding_seeks_over_long_gaps_and_finds_the_same_frames(sample: SampleTruth) -> None:
    info = probe(str(sample.path))
    times = [0.5, 11.5, 5.6, 11.6, 30.0]  # unordered, a gap > 10 s (seek), one past the end
    images = decode_at(str(sample.path), info, times, THUMB)
    assert sorted(images) == [0.5, 5.6, 11.5, 11.6]
    for t, image in images.items():
        assert image.shape == (THUMB[1], THUMB[0], 3)
        assert np.abs(image.astype(np.int16) - frame_at(sample.path, t)).mean() < 3, t
    assert images[5.6].mean() < 10
