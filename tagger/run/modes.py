"""The plugin's modes: which scenes a run works on, and what it does with each.

``run_mode`` is shared by the Stash plugin and ``ai_tagger.py run``.

    untagged | queue | scene | all   analyse, plan, apply (journaled); ``report`` = the same, dry
    undo                              take back what the tagger added (all, one scene, one run)
    review                            the review queue's API (list, accept, reject), for the UI
    gallery                           refresh the performer face gallery; cluster unknown faces
    maintenance                       prune the analysis cache (tagger.run.maintenance), VACUUM it

Per scene the analysis runs without any lock (it takes minutes); planning and applying run under
the write lock, on the scene as Stash has it at that moment, so a change the user made during
the analysis is seen, and a review accepted from the UI meanwhile cannot interleave.

The two phases are apart: an analysis executor (``tagger.run.executor``: here, or on Ray) turns
scenes into ``Analysis`` outcomes, and this process writes each one as it comes
(``tagger.run.write_scene.SceneWriter``). Whatever runs the analysis, only this process plans,
applies and journals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from tagger.decide.studio import StudioName
from tagger.engine.engine import Engine
from tagger.errors import ConfigError, StashError
from tagger.faces.recognition import PerformerRecognition, faces_analyzer
from tagger.run.args import optional_whole
from tagger.run.context import AnalysisExecutor, RunContext
from tagger.run.executor import analysis_executor
from tagger.run.gallery import gallery
from tagger.run.maintenance import current_keys, maintenance, prune_after_run
from tagger.run.review_api import review
from tagger.run.undo import undo
from tagger.run.write_scene import MAX_FAILURES, PARTIAL_STOPS, SceneWriter
from tagger.stashside.hook import release_queue_task_claim
from tagger.stashside.stash import StashScene
from tagger.writeback.review import ReviewQueue
from tagger.writeback.session import writing_run

MODES = ("untagged", "queue", "scene", "all", "gallery", "undo", "report", "review", "maintenance")
"""Modes a task can run (the hook has its own fast path, ``tagger.stashside.hook``)."""

SELECTIONS = ("untagged", "queue", "scene", "all")
"""Modes that choose scenes; ``report`` (and ``--dry-run``) runs any of them without writing."""

MAX_SCENES_IN_OUTPUT = 200
"""Per-scene entries in a writing run's output; the totals always cover every scene."""

TOTALS = ("analysed", "failed", "changed", "tags_added", "markers_created", "markers_updated",
          "taken_back", "studios_set", "performers_added", "suggestions", "tags_created", "partial",
          "skipped")
"""The counts every tagging run reports."""


def run_mode(context: RunContext, mode: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``mode`` with the task's ``args`` and return the plugin's output object.

    Raises:
        ConfigError: unknown mode or bad arguments.
    """
    if mode not in MODES:
        raise ConfigError(f"mode: {mode!r} is not a mode; choose one of: {', '.join(MODES)}")
    if mode == "report":
        chosen = args.get("scene_id") or args.get("scene_ids")
        selection = str(args.get("selection") or ("scene" if chosen else "untagged"))
        return tag_scenes(context, selection, args, dry_run=True)
    if mode in SELECTIONS:
        return tag_scenes(context, mode, args, dry_run=False)
    others = {"undo": undo, "review": review, "maintenance": maintenance, "gallery": gallery}
    return others[mode](context, args)


def tag_scenes(context: RunContext, selection: str, args: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """Analyse the selected scenes, plan each against Stash and apply the plan (unless ``dry_run``)."""
    if selection not in SELECTIONS:
        raise ConfigError(f"selection: {selection!r} is not one of {', '.join(SELECTIONS)}")
    limit = optional_whole(args, "limit")
    context.client.use_api_key_if_set()  # an hour-long run must outlive the session cookie
    if selection == "queue" and not dry_run:
        # Before the queue is read: an import from now on asks for a task of its own.
        release_queue_task_claim(context.store)
    scenes, total = _select(context, selection, args)
    if limit is not None:
        total = min(total, limit)
        scenes = islice(scenes, limit)
    # Connected before anything is recorded, so an unreachable cluster fails the run at once;
    # a run with nothing to do does not start one.
    with analysis_executor(context, wanted=total > 0) as executor:
        return _tag_selected(context, executor, selection, scenes, total, dry_run=dry_run)


def _tag_selected(context: RunContext, executor: AnalysisExecutor, selection: str,
                  scenes: Iterable[StashScene], total: int, *, dry_run: bool) -> dict[str, Any]:
    """The run over the selected scenes: set up, then write each analysis as the executor hands it.
    Its record ends ``done``, or ``failed`` when an error stops it (Stash gone)."""
    mode = "report" if dry_run else selection
    with writing_run(context.store, context.client, context.config.tag_parent, context.log.log,
                     context.data_dir, mode, reconcile=not dry_run) as (run_id, applier):
        verb = "report on" if dry_run else "tag"
        context.log.info(f"{verb} {total} scene(s) ({selection})"
                         + ("; nothing will be changed in Stash" if dry_run else ""))
        writer = _scene_writer(context, applier, selection, dry_run=dry_run)
        totals = dict.fromkeys(TOTALS, 0)
        if selection != "scene":  # a scene asked for by its id is always tried
            scenes = _skip_failing(context, scenes, totals)
        results: list[tuple[int, dict[str, Any]]] = []
        for finished, analysis in enumerate(executor.analyses(writer.engine, scenes, total), start=1):
            entry = writer.write(analysis)
            _count(totals, entry)
            if dry_run or len(results) < MAX_SCENES_IN_OUTPUT:
                results.append((analysis.index, entry))
            context.log.progress(finished / max(total, 1))  # finished videos, wherever they ran
        if not dry_run:  # a dry run changes nothing, the cache included
            prune_after_run(writer.engine.cache, *current_keys(context.config, writer.engine), context.log)
    context.log.progress(1.0)
    return _run_output(context, writer, mode, selection, run_id, totals, results)


def _scene_writer(context: RunContext, applier: Any, selection: str, *, dry_run: bool) -> SceneWriter:
    """The run's writer: the engine (built here even when Ray analyses: the gallery, the findings
    and the crops need it), the performer gallery refreshed, the review queue."""
    studios = [StudioName(id=i, name=n, aliases=a) for i, n, a in context.client.studios()]
    engine = Engine(context.config, context.data_dir, context.log.log, studios=studios)
    recognition = PerformerRecognition(context.store, context.client, faces_analyzer(engine), context.log.log)
    recognition.refresh()  # only performers whose image changed are fetched
    queue_tag_id = context.client.find_tag_id(context.config.queue_tag) if selection == "queue" else None
    return SceneWriter(config=context.config, client=context.client, store=context.store, log=context.log,
                       data_dir=context.data_dir, engine=engine, recognition=recognition, applier=applier,
                       queue=ReviewQueue(context.store), dry_run=dry_run, queue_tag_id=queue_tag_id)


def _run_output(context: RunContext, writer: SceneWriter, mode: str, selection: str, run_id: str,
                totals: dict[str, int], results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The run's output object (and its closing log line)."""
    output: dict[str, Any] = {
        "mode": mode,
        "selection": selection,
        "run_id": run_id,
        "dry_run": writer.dry_run,
        **totals,
        "review_pending": writer.queue.pending_count(),
        "scenes": [entry for _, entry in sorted(results, key=lambda item: item[0])],
    }
    if len(results) < totals["analysed"] + totals["failed"]:
        output["scenes_not_listed"] = totals["analysed"] + totals["failed"] - len(results)
    if not writer.dry_run:
        context.log.info(
            f"run {run_id}: {totals['changed']} scene(s) changed, {totals['tags_added']} tag(s), "
            f"{totals['markers_created']} marker(s), {totals['studios_set']} studio(s); "
            f"{output['review_pending']} suggestion(s) wait for review"
        )
    return output


def _count(totals: dict[str, int], entry: Mapping[str, Any]) -> None:
    if "error" in entry:
        totals["failed"] += 1
        return
    totals["analysed"] += 1
    totals["partial"] += (entry.get("analysed") or {}).get("stopped") in PARTIAL_STOPS
    applied = entry.get("applied") or {}
    totals["changed"] += bool(applied) and bool(entry.get("changes"))
    totals["tags_added"] += len(applied.get("tags_added", ()))
    totals["tags_created"] += len(applied.get("tags_created", ()))
    totals["markers_created"] += applied.get("markers_created", 0)
    totals["markers_updated"] += applied.get("markers_updated", 0)
    totals["taken_back"] += len(applied.get("tags_removed", ())) + applied.get("markers_removed", 0)
    totals["studios_set"] += bool(applied.get("studio"))
    totals["performers_added"] += len(applied.get("performers_added", ()))
    totals["suggestions"] += entry.get("suggestions", 0)


def _skip_failing(context: RunContext, scenes: Iterable[StashScene],
                  totals: dict[str, int]) -> Iterator[StashScene]:
    """``scenes`` less those that failed ``MAX_FAILURES`` runs in a row with the file they have now."""
    for scene in scenes:
        file = scene.primary_file
        failed, _ = context.store.failures(scene.id, file.identity) if file else (0, None)
        if failed < MAX_FAILURES:
            yield scene
            continue
        totals["skipped"] += 1
        context.log.warning(
            f"scene {scene.id} ({file.path if file else 'no file'}): skipped, it failed {failed} times "
            "with this file; it is tried again when the file changes, or when tagged on its own"
        )


def _select(context: RunContext, selection: str, args: dict[str, Any]) -> tuple[Iterator[StashScene], int]:
    """The scenes a selection covers, lazily, with their count."""
    client, page_size = context.client, context.config.page_size
    if selection == "scene":
        ids = _scene_ids(args)
        found = []
        for scene_id in ids:
            scene = client.find_scene(scene_id)
            if scene is None:
                if len(ids) == 1:
                    raise StashError(f"scene {scene_id} does not exist in Stash")
                context.log.warning(f"scene {scene_id} does not exist in Stash; skipped")
                continue
            found.append(scene)
        return iter(found), len(found)
    if selection == "queue":
        return _queued_scenes(context)
    done = context.store.processed_ids() if selection == "untagged" else set()
    first = next(client.iter_scenes(page_size=1), None)
    total = max(0, (first[1] if first else 0) - len(done))
    scenes = (scene for scene, _ in client.iter_scenes(page_size=page_size) if scene.id not in done)
    return scenes, total


def _scene_ids(args: dict[str, Any]) -> list[str]:
    """``scene_id`` (one), or ``scene_ids`` (a list, or comma-separated: the scene list's selection)."""
    many = args.get("scene_ids")
    if isinstance(many, str):
        many = [part for part in many.split(",") if part.strip()]
    if many:
        if not isinstance(many, list) or not all(str(i).strip().isdigit() for i in many):
            raise ConfigError(f"scene_ids: {args.get('scene_ids')!r} is not a list of scene ids")
        return list(dict.fromkeys(str(i).strip() for i in many))
    scene_id = args.get("scene_id")
    if scene_id in (None, ""):
        raise ConfigError("scene_id: missing; give the id of the scene to tag")
    return [str(scene_id)]


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
