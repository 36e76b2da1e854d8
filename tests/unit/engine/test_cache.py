"""The analysis cache: decode passes and detections per file fingerprint and model version."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np

from tagger.detections import Detection
from tagger.engine.cache import AnalysisCache, PassRecord, oshash


def test_oshash_is_size_plus_the_sums_of_the_first_and_last_64k(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    path = tmp_path / "video.bin"
    path.write_bytes(data)
    words = lambda chunk: np.frombuffer(chunk[: len(chunk) // 8 * 8], dtype="<u8")  # noqa: E731
    expected = (len(data) + int(words(data[:65536]).sum(dtype=np.uint64))
                + int(words(data[-65536:]).sum(dtype=np.uint64))) % 2**64
    assert oshash(path) == f"{expected:016x}"


def test_detections_come_back_as_they_went_in_embeddings_included(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    embedding = np.linspace(-1, 1, 128, dtype=np.float32)
    stored = [Detection(1.0, "face", "face", 0.9, (1, 2, 3, 4), embedding, {"size": 40.0}),
              Detection(2.0, "text", "BRANDX.COM", 0.8, (5, 6, 7, 8), None, {"corner": 3})]
    cache.put_detections("abc", "interval=2", "faces", "yunet+sface", stored)
    back = cache.get_detections("abc", "interval=2", "faces", "yunet+sface")
    assert back is not None and len(back) == 2
    assert np.array_equal(back[0].embedding, embedding) and back[0].box == (1, 2, 3, 4)
    assert (back[1].label, back[1].details, back[1].embedding) == ("BRANDX.COM", {"corner": 3}, None)


def test_another_model_version_is_a_miss(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    cache.put_detections("abc", "p", "content", "v1", [])
    assert cache.get_detections("abc", "p", "content", "v1") == []
    assert cache.get_detections("abc", "p", "content", "v2") is None
    assert cache.get_detections("abc", "other-sampling", "content", "v1") is None


def test_a_pass_survives_reopening(tmp_path: Path) -> None:
    record = PassRecord(duration=20.0, fps=30.0, frames_analysed=11, sample_times=[0.0, 2.0],
                        shots=[(0.0, 6.0), (6.0, 20.0)], technical=[("black", 9.0, 10.0)], warnings=[])
    AnalysisCache(tmp_path / "c.sqlite").put_pass("abc", "p", record)
    assert AnalysisCache(tmp_path / "c.sqlite").get_pass("abc", "p") == record


def _write_entries(path: str, who: int, start: Any, count: int) -> None:
    start.wait()
    cache = AnalysisCache(Path(path))
    for number in range(count):
        key = f"{who}-{number}"
        cache.put_pass(key, "p", PassRecord(1.0, 30.0, 1, [0.0], [], [], []))
        cache.put_detections(key, "p", "faces", "v1", [Detection(0.0, "face", "face", 0.9, (1, 2, 3, 4),
                                                                 np.ones(128, np.float32))])
    cache.close()


def test_two_processes_write_one_new_cache_at_the_same_time(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_write_entries, args=(str(path), who, start, 40)) for who in (1, 2)]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    cache = AnalysisCache(path)
    for who in (1, 2):
        for number in range(40):
            assert cache.get_pass(f"{who}-{number}", "p") is not None
            (face,) = cache.get_detections(f"{who}-{number}", "p", "faces", "v1") or [None]
            assert face is not None and face.embedding is not None


def _pass() -> PassRecord:
    return PassRecord(duration=600.0, fps=30.0, frames_analysed=300,
                      sample_times=[i * 2.0 for i in range(300)], shots=[(0.0, 600.0)], technical=[],
                      warnings=[])


def _faces(count: int = 40) -> list[Detection]:
    """Face detections with embeddings: several pages of the file, like a real video's."""
    return [Detection(float(i), "face", "face", 0.9, (1, 2, 3, 4), np.full(128, i, np.float32))
            for i in range(count)]


CURRENT = {"faces": "sface@2", "content": "nudenet@1"}
"""The analyzer versions the prune tests call current."""


def test_prune_removes_passes_and_detections_of_other_sampling_settings(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    for params in ("interval=2", "interval=5"):
        cache.put_pass("abc", params, _pass())
        cache.put_detections("abc", params, "faces", "sface@2", _faces())
    freed = cache.prune_stale("interval=2", CURRENT)
    assert (freed.passes, freed.detections) == (1, 1)
    assert cache.get_pass("abc", "interval=5") is None
    assert cache.get_detections("abc", "interval=5", "faces", "sface@2") is None
    assert cache.get_pass("abc", "interval=2") is not None
    assert cache.get_detections("abc", "interval=2", "faces", "sface@2") is not None


def test_prune_keeps_every_sampling_setting_it_is_given(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    for params in ("shots=1", "shots=0", "old"):
        cache.put_pass("abc", params, _pass())
        cache.put_detections("abc", params, "faces", "sface@1", _faces())
    freed = cache.prune_stale(("shots=1", "shots=0"), {"faces": "sface@1"})
    assert (freed.passes, freed.detections) == (1, 1)
    assert cache.get_pass("abc", "shots=0") is not None and cache.get_pass("abc", "shots=1") is not None


def test_prune_removes_detections_of_an_old_model_version_and_keeps_the_current(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    cache.put_detections("old", "p", "faces", "sface@1", _faces())
    cache.put_detections("new", "p", "faces", "sface@2", _faces())
    cache.put_detections("new", "p", "content", "nudenet@1", [])
    freed = cache.prune_stale("p", CURRENT)
    assert (freed.passes, freed.detections) == (0, 1)
    assert cache.fingerprints() == {"new"}
    assert cache.get_detections("new", "p", "faces", "sface@2") is not None
    assert cache.get_detections("new", "p", "content", "nudenet@1") == []


def test_prune_removes_detections_of_an_analyzer_that_no_longer_exists(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    cache.put_detections("abc", "p", "retired", "v1", _faces())
    cache.put_detections("abc", "p", "content", "nudenet@1", [])
    assert cache.prune_stale("p", CURRENT).detections == 1
    assert cache.get_detections("abc", "p", "retired", "v1") is None
    assert cache.get_detections("abc", "p", "content", "nudenet@1") == []


def test_prune_reports_the_space_it_freed_for_reuse(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    cache.put_detections("abc", "p", "faces", "sface@1", _faces(400))
    freed = cache.prune_stale("p", CURRENT)
    assert freed.rows == 1
    assert freed.bytes >= 400 * 128 * 4  # the embeddings' pages, free for the next entries


def test_a_prune_with_nothing_stale_removes_nothing(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    cache.put_pass("abc", "p", _pass())
    cache.put_detections("abc", "p", "faces", "sface@2", _faces())
    assert cache.prune_stale("p", CURRENT).rows == 0
    assert cache.get_pass("abc", "p") == _pass()


def test_prune_files_removes_every_entry_of_the_files_not_kept(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    for key in ("kept", "deleted"):
        cache.put_pass(key, "p", _pass())
        cache.put_detections(key, "p", "faces", "sface@2", _faces())
        cache.put_detections(key, "p", "content", "nudenet@1", [])
    freed = cache.prune_files({"kept", "not-in-the-cache"})
    assert (freed.passes, freed.detections) == (1, 2)
    assert cache.fingerprints() == {"kept"}


def test_vacuum_gives_the_freed_space_back_to_the_disk(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache.sqlite")
    for key in ("kept", "deleted"):
        cache.put_detections(key, "p", "faces", "sface@2", _faces(400))
    cache.vacuum()
    full = cache.disk_bytes()
    cache.prune_files({"kept"})
    assert cache.vacuum() > 0
    after = cache.disk_bytes()
    assert after == (tmp_path / "cache.sqlite").stat().st_size  # the write-ahead log is emptied
    assert full - after >= 400 * 128 * 4
    assert cache.get_detections("kept", "p", "faces", "sface@2") is not None
