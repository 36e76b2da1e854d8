"""Keeping ``cache.sqlite`` bounded: what no current setting, model or file can use is removed.

Every writing run ends with ``prune_after_run`` (cheap, index lookups only): entries sampled with
other settings, detections of older (or newer) model versions, and of analyzers the code no longer
has. The ``maintenance`` mode does the same, then removes the entries of files that are no longer
in Stash's library, and VACUUMs the file so the space goes back to the disk.

Detections of an analyzer that is only switched off stay (so do entries made with shot detection
on while it is off, and the other way round, as it is part of the sampling key): switching it back
on would otherwise cost a new decode of every video. They cannot grow without bound: there is at
most one row per file and analyzer (the version is not part of the key, a new one replaces the
old), and they go with their file or with a change of sampling settings like everything else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagger.config import Config
from tagger.engine.cache import AnalysisCache, Freed, oshash
from tagger.stashside.protocol import StashLog
from tagger.stashside.stash import StashClient

if TYPE_CHECKING:
    from tagger.engine.engine import Engine
    from tagger.run.context import RunContext

CACHE_NAME = "cache.sqlite"


def current_keys(config: Config, engine: Engine | None = None) -> tuple[tuple[str, ...], dict[str, str]]:
    """The pass parameters and analyzer versions cached entries are read with now, or would be
    with an analyzer switched back on.

    Every analyzer the code has counts, configured or not, and shot detection on or off (see the
    module's note); ``engine``'s own analyzers, when given, name their versions as they really are.
    """
    from tagger.analyzers import analyzer_versions
    from tagger.engine.engine import analyze_options, analyzer_version, pass_params

    versions = analyzer_versions()
    if engine is not None:
        versions.update({a.name: analyzer_version(a) for a in engine.analyzers})
    options = analyze_options(config)
    toggled = replace(options, shot_detection=not options.shot_detection)
    return (pass_params(options), pass_params(toggled)), versions


def prune_after_run(cache: AnalysisCache, params: Collection[str], versions: Mapping[str, str],
                    log: StashLog) -> Freed:
    """The end of a writing run: remove stale settings and model versions, say what went.

    A failure here (another process holding the file past the wait) is a warning: the run's
    work is done and the next run prunes the same entries.
    """
    try:
        freed = cache.prune_stale(params, versions)
    except sqlite3.Error as error:
        log.warning(f"cache: old entries not pruned this time ({error})")
        return Freed()
    if freed.rows:
        log.info(f"cache: {_rows(freed)} from other sampling settings or model versions removed; "
                 f"{_size(freed.bytes)} reused by new entries")
    return freed


@dataclass(frozen=True)
class Library:
    """The files of Stash's library, by the fingerprint the cache keys them with."""

    scenes: int
    fingerprints: frozenset[str]
    problem: str | None = None
    """Why the cache must not be pruned by this library (it may be incomplete)."""


def library_fingerprints(client: StashClient, config: Config, log: StashLog) -> Library:
    """Every scene file's oshash (computed here for a readable file Stash has none for).

    Raises:
        StashError: Stash could not be read (then nothing is pruned).
    """
    keys: set[str] = set()
    seen: set[str] = set()
    counts: set[int] = set()
    unknown = 0
    for scene, count in client.iter_scenes(page_size=config.page_size):
        seen.add(scene.id)
        counts.add(count)
        for file in scene.files:
            key = file.oshash or _local_oshash(config, file.path)
            if key:
                keys.add(key)
            else:
                unknown += 1
        log.progress(0.8 * len(seen) / max(count, 1))
    problem = None
    if len(counts) > 1 or (counts and len(seen) < max(counts)):
        # Paging by id can skip a scene when one is deleted meanwhile: its entries would go.
        problem = "the library changed while it was read; run maintenance again"
    elif unknown:
        problem = (f"{unknown} file(s) have no oshash in Stash and cannot be read here, so their "
                   "entries cannot be told from those of deleted files")
    return Library(scenes=len(seen), fingerprints=frozenset(keys), problem=problem)


def _local_oshash(config: Config, stash_path: str) -> str | None:
    for candidate in (config.map_path(stash_path), stash_path):
        if candidate and Path(candidate).is_file():
            try:
                return oshash(Path(candidate))
            except OSError:
                continue
    return None


def maintenance(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Prune the cache to what the current settings, models and Stash's library can use, then
    VACUUM it (no ``args``)."""
    log = context.log
    context.client.use_api_key_if_set()
    # Stash is read first: if it fails, the task fails before anything is removed.
    library = library_fingerprints(context.client, context.config, log)
    cache = AnalysisCache(context.data_dir / CACHE_NAME)
    try:
        size_before = cache.disk_bytes()
        params, versions = current_keys(context.config)
        stale = cache.prune_stale(params, versions)
        held = cache.fingerprints()
        refused = library.problem
        if not refused and library.scenes == 0 and held:
            # A wrong Stash URL or an empty database must never wipe the cache.
            refused = (f"Stash returned no scenes but the cache holds {len(held)} file(s); "
                       "check that this is the right Stash")
        gone_files = 0
        deleted = Freed()
        if refused:
            log.warning(f"maintenance: entries of deleted files not pruned: {refused}")
        else:
            gone_files = len(held - library.fingerprints)
            deleted = cache.prune_files(library.fingerprints)
        log.progress(0.9)
        cache.vacuum()
        size_after = cache.disk_bytes()
    finally:
        cache.close()
    log.progress(1.0)
    removed = stale + deleted
    freed_bytes = max(0, size_before - size_after)
    log.info(f"maintenance: removed {_rows(deleted)} of {gone_files} file(s) no longer in Stash and "
             f"{_rows(stale)} of old settings or models; {_size(freed_bytes)} freed, the cache is now "
             f"{_size(size_after)}")
    return {
        "mode": "maintenance",
        "rows_removed": removed.rows,
        "bytes_freed": freed_bytes,
        "cache_bytes": size_after,
        "stale": {"passes": stale.passes, "detections": stale.detections},
        "deleted_files": {"files": gone_files, "passes": deleted.passes, "detections": deleted.detections},
        "library": {"scenes": library.scenes, "files": len(library.fingerprints),
                    "pruned": refused is None, **({"refused": refused} if refused else {})},
    }


def _rows(freed: Freed) -> str:
    return f"{freed.rows} entr{'y' if freed.rows == 1 else 'ies'}"


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.0f} kB"
