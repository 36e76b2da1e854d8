"""The ``undo`` mode: take back what the tagger added, everything, one scene or one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagger.run.context import RunContext
from tagger.writeback.apply import Applier
from tagger.writeback.session import write_lock, writing_run

MAX_SCENES_IN_OUTPUT = 200
"""Per-scene entries in the output; the totals always cover every scene."""


def undo(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Take back what the tagger added: everything, one ``scene_id``, or one ``run_id``."""
    scene_id = str(args.get("scene_id") or "") or None
    only_run = str(args.get("run_id") or "") or None
    what = f"scene {scene_id}" if scene_id else (f"run {only_run}" if only_run else "everything")
    context.client.use_api_key_if_set()
    with writing_run(context.store, context.client, context.config.tag_parent, context.log.log,
                     context.data_dir, "undo") as (run_id, applier):
        scenes = [scene_id] if scene_id else applier.journal.scenes(run_id=only_run)
        context.log.info(f"undo {what}: {len(scenes)} scene(s)")
        outcome = _undo_scenes(context, applier, scenes, only_run)
        context.store.forget_processed(outcome.restored)
        with write_lock(context.data_dir):
            deleted = applier.delete_unused_tags()
    context.log.progress(1.0)
    for item in outcome.kept:
        context.log.info(f"kept {item}")
    context.log.info(
        f"undo {what}: {outcome.totals['tags_removed']} tag(s) and {outcome.totals['markers_removed']} "
        f"marker(s) removed, {len(deleted)} tag(s) deleted, {len(outcome.kept)} item(s) kept"
    )
    return {"mode": "undo", "run_id": run_id, "scope": what, "scenes": len(scenes), **outcome.totals,
            "deleted_tags": deleted, "kept": outcome.kept, "details": outcome.details}


@dataclass
class UndoOutcome:
    """What undoing a set of scenes did."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("tags_removed", "markers_removed", "performers_removed", "studios_restored"), 0))
    kept: list[str] = field(default_factory=list)
    """What stays, and why (the user edited, renamed or accepted it)."""
    restored: list[str] = field(default_factory=list)
    """Scenes with nothing of the tagger's left: they count as never tagged."""
    details: list[dict[str, Any]] = field(default_factory=list)


def _undo_scenes(context: RunContext, applier: Applier, scenes: list[str],
                 only_run: str | None) -> UndoOutcome:
    """Each scene undone under the write lock (a review accepted meanwhile waits for it)."""
    outcome = UndoOutcome()
    for index, scene_id in enumerate(scenes):
        with write_lock(context.data_dir):
            done = applier.undo_scene(scene_id, only_run)
            remaining = applier.owned(scene_id)
        outcome.totals["tags_removed"] += len(done.tags_removed)
        outcome.totals["markers_removed"] += done.markers_removed
        outcome.totals["performers_removed"] += len(done.performers_removed)
        outcome.totals["studios_restored"] += done.studio_restored
        outcome.kept += [f"scene {scene_id}: {item}" for item in done.kept]
        if not (remaining.tags or remaining.markers or remaining.performers or remaining.studio):
            outcome.restored.append(scene_id)
        if len(outcome.details) < MAX_SCENES_IN_OUTPUT:
            outcome.details.append(done.to_dict())
        context.log.progress((index + 1) / max(len(scenes), 1) * 0.95)
    return outcome
