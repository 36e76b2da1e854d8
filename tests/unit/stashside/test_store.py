"""The tagger's own state: queue, processed scenes, runs, and the run lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tagger.errors import LockedError
from tagger.stashside.filelock import FileLock
from tagger.stashside.store import Store

ROOT = Path(__file__).resolve().parents[3]


def test_queue_is_oldest_first_and_a_scene_is_queued_once(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert store.enqueue(["3", "1"], "import") == 2
        time.sleep(0.01)
        assert store.enqueue(["2", "3"], "import") == 1
        assert [item.scene_id for item in store.queued()] == ["1", "3", "2"]


def test_marking_a_scene_processed_takes_it_off_the_queue(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.enqueue(["7"], "import")
        run_id = store.start_run("queue")
        store.mark_processed("7", run_id, "done", fingerprint="abc")
        assert store.queued() == [] and store.processed_ids() == {"7"}


def test_state_survives_reopening(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.enqueue(["5"], "import")
    with Store(tmp_path / "s.sqlite") as store:
        assert [item.scene_id for item in store.queued()] == ["5"]


def test_a_held_lock_stops_a_second_run_with_a_clear_message(tmp_path: Path) -> None:
    with FileLock(tmp_path / "run.lock"), pytest.raises(LockedError, match="in progress"):
        FileLock(tmp_path / "run.lock").acquire()


def test_a_killed_holder_never_leaves_the_lock_stuck(tmp_path: Path) -> None:
    lock_path = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tagger.stashside.filelock import FileLock
        lock = FileLock(Path({str(lock_path)!r}))
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(LockedError, match=f"pid {holder.pid}"):
        FileLock(lock_path).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with FileLock(lock_path):
        pass


def test_opening_a_new_store_waits_for_another_process_writing_it(tmp_path: Path) -> None:
    """Switching a new file to WAL needs a lock SQLite does not wait for by itself (``use_wal``, which
    the analysis cache shares): opening while another process writes must wait, not fail with
    "database is locked"."""
    path = tmp_path / "s.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    with Store(path) as store:
        assert time.monotonic() - started >= 0.4
        assert store.enqueue(["1"], "import") == 1


def test_a_runs_record_ends_done_or_failed_whatever_stops_it(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.recorded_run("undo") as finished:
            pass
        with pytest.raises(RuntimeError), store.recorded_run("gallery") as broken:
            raise RuntimeError("Stash went away")
        statuses = dict(store.db.execute("SELECT run_id, status FROM runs"))
    assert statuses == {finished: "done", broken: "failed"}
