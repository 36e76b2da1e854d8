"""The plugin's modes: which scenes a run works on, and what it does with each.

``run_mode`` is shared by the Stash plugin and ``ai_tagger.py run``. Modes that write to Stash
(scene, untagged, queue, all, gallery, undo) arrive with the write-back and performer engines; until
then they stop before any work with a ``NotAvailableError`` that points at ``report``, which runs
the same selection and analysis and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.config import Config
from tagger.errors import ConfigError, MediaError, NotAvailableError, StashError
from tagger.protocol import StashLog
from tagger.stash import StashClient, StashScene, media_source
from tagger.store import Store

MODES = ("untagged", "queue", "scene", "all", "gallery", "undo", "report")
"""Modes a task can run (the hook has its own fast path, ``tagger.hook``)."""

SELECTIONS = ("untagged", "queue", "scene", "all")
"""Modes that choose scenes; ``report`` (and ``--dry-run``) runs any of them without writing."""

_COMING = {
    "untagged": "write-back (tags, markers, studio with a journal and undo)",
    "queue": "write-back (tags, markers, studio with a journal and undo)",
    "scene": "write-back (tags, markers, studio with a journal and undo)",
    "all": "write-back (tags, markers, studio with a journal and undo)",
    "gallery": "the performer face gallery",
    "undo": "the write-back journal",
}


@dataclass
class RunContext:
    """What one run works with."""

    config: Config
    client: StashClient
    store: Store
    log: StashLog
    data_dir: Path


def run_mode(context: RunContext, mode: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``mode`` with the task's ``args`` and return the plugin's output object.

    Raises:
        ConfigError: unknown mode or bad arguments. NotAvailableError: mode not built yet.
    """
    if mode not in MODES:
        raise ConfigError(f"mode: {mode!r} is not a mode; choose one of: {', '.join(MODES)}")
    if mode == "report":
        selection = str(args.get("selection") or ("scene" if args.get("scene_id") else "untagged"))
        return report(context, selection, args)
    raise NotAvailableError(
        f"mode {mode!r} is not available yet: it needs {_COMING[mode]}, which this version does not "
        "have. Run 'Report (dry run)' (mode report) to see what the tagger finds."
    )


def report(context: RunContext, selection: str, args: dict[str, Any]) -> dict[str, Any]:
    """Dry run: analyse the selected scenes and list what was found; nothing is written to Stash."""
    if selection not in SELECTIONS:
        raise ConfigError(f"selection: {selection!r} is not one of {', '.join(SELECTIONS)}")
    limit = _optional_int(args, "limit")
    context.client.use_api_key_if_set()  # an hour-long report must outlive the session cookie
    scenes, total = _select(context, selection, args)
    if limit is not None:
        total = min(total, limit)
    run_id = context.store.start_run("report")
    context.log.info(f"report on {total} scene(s) ({selection}); nothing will be changed in Stash")
    from tagger.decide.studio import StudioName
    from tagger.engine import Engine

    studios = [StudioName(id=i, name=n, aliases=a) for i, n, a in context.client.studios()]
    engine = Engine(context.config, context.data_dir, context.log.log, studios=studios)
    results: list[dict[str, Any]] = []
    failed = 0
    for index, scene in enumerate(scenes):
        if limit is not None and index >= limit:
            break
        base = index / max(total, 1)
        entry = _report_scene(context, engine, scene,
                              lambda f, b=base: context.log.progress(b + f / max(total, 1)))
        failed += "error" in entry
        results.append(entry)
        context.log.progress((index + 1) / max(total, 1))
    context.store.finish_run(run_id, "done")
    context.log.progress(1.0)
    return {"mode": "report", "selection": selection, "run_id": run_id, "dry_run": True,
            "scenes": results, "analysed": len(results) - failed, "failed": failed}


def _report_scene(context: RunContext, engine: Any, scene: StashScene, progress: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"scene_id": scene.id, "title": scene.title}
    started = time.monotonic()
    try:
        source = media_source(scene, context.config.map_path, context.client.auth_headers)
        entry["source"] = source.via
        file = scene.primary_file
        result = engine.analyze(source.location, headers=source.headers, progress=progress,
                                fingerprint=file.oshash if file else None)
    except (MediaError, StashError) as error:
        context.log.error(f"scene {scene.id}: {error}")
        entry["error"] = str(error)
        return entry
    analysis = result.to_dict()
    for warning in analysis.get("warnings", []):
        context.log.warning(f"scene {scene.id}: {warning}")
    entry.update({key: analysis[key] for key in ("duration", "frames_analysed", "shots", "technical",
                                                  "tags", "markers", "faces", "text", "studio",
                                                  "warnings", "cached")})
    entry["seconds"] = round(time.monotonic() - started, 2)
    context.log.info(f"scene {scene.id}: {len(analysis['shots'])} shots, {len(analysis['tags'])} tags "
                     f"in {entry['seconds']} s")
    return entry


def _select(context: RunContext, selection: str, args: dict[str, Any]) -> tuple[Iterator[StashScene], int]:
    """The scenes a selection covers, lazily, with their count."""
    client, page_size = context.client, context.config.page_size
    if selection == "scene":
        scene_id = args.get("scene_id")
        if scene_id in (None, ""):
            raise ConfigError("scene_id: missing; give the id of the scene to tag")
        scene = client.find_scene(str(scene_id))
        if scene is None:
            raise StashError(f"scene {scene_id} does not exist in Stash")
        return iter([scene]), 1
    if selection == "queue":
        return _queued_scenes(context)
    done = context.store.processed_ids() if selection == "untagged" else set()
    first = next(client.iter_scenes(page_size=1), None)
    total = max(0, (first[1] if first else 0) - len(done))
    scenes = (scene for scene, _ in client.iter_scenes(page_size=page_size) if scene.id not in done)
    return scenes, total


def _queued_scenes(context: RunContext) -> tuple[Iterator[StashScene], int]:
    """The tagger's queue (oldest first), then scenes carrying the queue tag."""
    queued = [item.scene_id for item in context.store.queued()]
    tag_id = context.client.find_tag_id(context.config.queue_tag)
    if tag_id:
        scene_filter = {"tags": {"value": [tag_id], "modifier": "INCLUDES"}}
        for scene, _ in context.client.iter_scenes(scene_filter, page_size=context.config.page_size):
            if scene.id not in queued:
                queued.append(scene.id)

    def scenes() -> Iterator[StashScene]:
        for scene_id in queued:
            scene = context.client.find_scene(scene_id)
            if scene is None:
                context.log.warning(f"queued scene {scene_id} no longer exists in Stash; dropped")
                context.store.dequeue(scene_id)
                continue
            yield scene

    return scenes(), len(queued)


def _optional_int(args: dict[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a whole number") from None
    if number < 0:
        raise ConfigError(f"{key}: {value!r} must be 0 or more")
    return number


