"""Opening a writing run: the run's record, its journal and applier, and the write lock.

Every change the tagger makes to Stash happens under the write lock (one writer across processes:
a tagging run, an undo, a review accepted from the UI), after ``Applier.reconcile`` has settled
what a killed run left unconfirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tagger.stashside.filelock import FileLock
from tagger.stashside.stash import StashClient
from tagger.stashside.store import Store
from tagger.writeback.apply import Applier
from tagger.writeback.journal import Journal

WRITE_LOCK_WAIT_S = 120.0
"""How long planning and applying one scene waits for another writer (a review accepted from the
UI holds the lock for a second or two)."""


def write_lock(data_dir: Path) -> FileLock:
    """The lock around every plan-and-apply: one writer to Stash at a time, across processes."""
    return FileLock(data_dir / "write.lock", wait_s=WRITE_LOCK_WAIT_S,
                    what="another change to Stash by the tagger")


@contextmanager
def writing_run(store: Store, client: StashClient, tag_parent: str, log: Callable[[str, str], None],
                data_dir: Path, mode: str, *, reconcile: bool = True) -> Iterator[tuple[str, Applier]]:
    """A run's id and applier; the record ends ``done`` or ``failed`` (``Store.recorded_run``).

    ``reconcile``: settle a killed run's unconfirmed changes first (under the write lock); a dry
    run, which changes nothing, does not.
    """
    with store.recorded_run(mode) as run_id:
        applier = Applier(client, Journal(store, run_id), tag_parent, log)
        if reconcile:
            with write_lock(data_dir):
                applier.reconcile()
        yield run_id, applier
