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

The two phases are apart: an analysis executor turns scenes into ``Analysis`` outcomes (a result,
or the error that stopped it), and this process writes each one as it comes. ``LocalAnalysis``
analyses here, one scene at a time, reporting progress per frame; ``tagger.run.distributed.
RayAnalysis`` (``ray_address``) runs one Ray task per video across a cluster and hands back results
as they finish. Whatever runs the analysis, only this process plans, applies and journals.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tagger.config import Config
from tagger.errors import (
    ConfigError,
    GraphQLError,
    LockedError,
    MediaError,
    StashAuthError,
    StashError,
    StashUnreachableError,
)
from tagger.stashside.filelock import FileLock
from tagger.stashside.protocol import StashLog
from tagger.stashside.stash import StashClient, StashScene, media_source
from tagger.stashside.store import Store
from tagger.writeback.journal import Action, Intent, Journal

MODES = ("untagged", "queue", "scene", "all", "gallery", "undo", "report", "review", "maintenance")
"""Modes a task can run (the hook has its own fast path, ``tagger.stashside.hook``)."""

SELECTIONS = ("untagged", "queue", "scene", "all")
"""Modes that choose scenes; ``report`` (and ``--dry-run``) runs any of them without writing."""

MAX_SCENES_IN_OUTPUT = 200
"""Per-scene entries in a writing run's output; the totals always cover every scene."""

PARTIAL_STOPS = ("budget", "interrupted")
"""Why a pass may end early and get further next time (``tagger.engine.one_pass.StopCause``); a truncated
file's readable part is all of it there is."""

MAX_FAILURES = 3
"""Runs in a row in which a scene may fail with the same file; after that the selections skip it
until Stash reports its file changed (tagging the scene on its own still tries it)."""

TRACEBACK_LINE = 160
"""Characters per traceback line in the log: long source lines would bury the message."""

WRITE_LOCK_WAIT_S = 120.0
"""How long planning and applying one scene waits for another writer (a review accepted from the
UI holds the lock for a second or two)."""


@dataclass
class RunContext:
    """What one run works with."""

    config: Config
    client: StashClient
    store: Store
    log: StashLog
    data_dir: Path


def write_lock(context: RunContext) -> FileLock:
    """The lock around every plan-and-apply: one writer to Stash at a time, across processes."""
    return FileLock(
        context.data_dir / "write.lock",
        wait_s=WRITE_LOCK_WAIT_S,
        what="another change to Stash by the tagger",
    )


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
    if mode == "undo":
        return undo(context, args)
    if mode == "review":
        from tagger.run.review_api import review

        return review(context, args)
    if mode == "maintenance":
        from tagger.run.maintenance import maintenance

        return maintenance(context, args)
    return gallery(context, args)


def tag_scenes(context: RunContext, selection: str, args: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """Analyse the selected scenes, plan each against Stash and apply the plan (unless ``dry_run``)."""
    if selection not in SELECTIONS:
        raise ConfigError(f"selection: {selection!r} is not one of {', '.join(SELECTIONS)}")
    limit = _optional_int(args, "limit")
    context.client.use_api_key_if_set()  # an hour-long run must outlive the session cookie
    if selection == "queue" and not dry_run:
        from tagger.stashside.hook import release_queue_task_claim

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


class AnalysisExecutor(Protocol):
    """Turns scenes into analyses; a context manager around the run (connects, then cleans up)."""

    def __enter__(self) -> AnalysisExecutor: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None: ...

    def analyses(self, engine: Any, scenes: Iterable[StashScene], total: int) -> Iterator[Analysis]:
        """Each scene's analysis, as soon as it is there; the caller writes it before asking for the
        next one (so the local executor does not analyse ahead)."""
        ...


@dataclass(frozen=True)
class Analysis:
    """The analysis phase's outcome for one scene: an engine result, or why there is none."""

    index: int
    """The scene's place in the selection (outcomes may arrive in another order)."""
    scene: StashScene
    result: Any = None
    error: str | None = None
    via: str | None = None
    """How the video was read (``path`` or ``stream``); None when no source was found."""
    headers: dict[str, str] | None = None
    """The HTTP headers that go with ``result.file`` (a stream needs Stash's credentials)."""
    seconds: float = 0.0


def analysis_executor(context: RunContext, *, wanted: bool = True) -> AnalysisExecutor:
    """Ray when ``ray_address`` is set (and there is work), else this process."""
    if context.config.ray_address and wanted:
        from tagger.run.distributed import RayAnalysis

        return RayAnalysis(context)
    return LocalAnalysis(context)


class LocalAnalysis:
    """Analyses in this process, in order, with progress reported per frame."""

    def __init__(self, context: RunContext) -> None:
        self.context = context

    def __enter__(self) -> LocalAnalysis:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        return None

    def analyses(self, engine: Any, scenes: Iterable[StashScene], total: int) -> Iterator[Analysis]:
        log = self.context.log
        for index, scene in enumerate(scenes):
            base = index / max(total, 1)
            progress = lambda f, b=base: log.progress(b + f / max(total, 1))  # noqa: E731
            yield analyse_scene(self.context, engine, index, scene, progress)


def analyse_scene(context: RunContext, engine: Any, index: int, scene: StashScene,
                  progress: Callable[[float], None] | None = None) -> Analysis:
    """One scene's analysis in this process: its media source, then the engine."""
    started = time.monotonic()
    file = scene.primary_file
    via = None
    source = None
    try:
        source = media_source(scene, context.config.map_path, context.client.auth_headers)
        via = source.via
        result = engine.analyze(
            source.location,
            headers=source.headers,
            progress=progress,
            fingerprint=file.oshash if file else None,
        )
    except (MediaError, StashError) as error:
        message = str(error)
        if isinstance(error, MediaError) and source is not None and source.unreadable:
            # The stream is only the fallback: why the file was not read here comes first.
            message = f"{source.unreadable}; streaming it from Stash failed too: {message}"
        return Analysis(index, scene, error=message, via=via, seconds=time.monotonic() - started)
    except Exception as error:  # a bug, or a file nobody foresaw: this scene fails, not the run
        message = unexpected_error(context.log, scene, error)
        return Analysis(index, scene, error=message, via=via, seconds=time.monotonic() - started)
    return Analysis(index, scene, result=result, via=via, headers=source.headers,
                    seconds=time.monotonic() - started)


def unexpected_error(log: StashLog, scene: StashScene, error: Exception) -> str:
    """Log the traceback of an error nothing expected, and return the scene's error message (its
    file, the error's type and message)."""
    log.error(f"scene {scene.id}: traceback of the unexpected error:")
    for line in traceback_lines(error):
        log.error(line)
    file = scene.primary_file.path if scene.primary_file else "(no file)"
    return unexpected_message(file, error)


def unexpected_message(file: str, error: Exception) -> str:
    return f"{file}: unexpected {type(error).__name__}: {error}; the traceback is in the log"


def traceback_lines(error: BaseException) -> list[str]:
    """``error``'s traceback as log lines of at most ``TRACEBACK_LINE`` characters."""
    lines = "".join(traceback.format_exception(error)).splitlines()
    return [line if len(line) <= TRACEBACK_LINE else line[: TRACEBACK_LINE - 1] + "…" for line in lines]


def _tag_selected(context: RunContext, executor: AnalysisExecutor, selection: str,
                  scenes: Iterable[StashScene], total: int, *, dry_run: bool) -> dict[str, Any]:
    """The run over the selected scenes; its record ends ``done``, or ``failed`` when an error
    stops it (Stash gone), never left ``running``."""
    with context.store.recorded_run("report" if dry_run else selection) as run_id:
        return _tag_run(context, executor, selection, scenes, total, run_id, dry_run=dry_run)


def _tag_run(context: RunContext, executor: AnalysisExecutor, selection: str, scenes: Iterable[StashScene],
             total: int, run_id: str, *, dry_run: bool) -> dict[str, Any]:
    """Set up, then write each analysis as the executor hands it."""
    from tagger.decide.studio import StudioName
    from tagger.engine.engine import Engine
    from tagger.writeback.apply import Applier
    from tagger.writeback.review import ReviewQueue

    mode = "report" if dry_run else selection
    journal = Journal(context.store, run_id)
    applier = Applier(context.client, journal, context.config.tag_parent, context.log.log)
    queue = ReviewQueue(context.store)
    verb = "report on" if dry_run else "tag"
    context.log.info(
        f"{verb} {total} scene(s) ({selection})" + ("; nothing will be changed in Stash" if dry_run else "")
    )
    if not dry_run:
        with write_lock(context):
            applier.reconcile()
    queue_tag_id = context.client.find_tag_id(context.config.queue_tag) if selection == "queue" else None
    studios = [StudioName(id=i, name=n, aliases=a) for i, n, a in context.client.studios()]
    # Built here even when Ray analyses: the gallery, the findings and the crops need it.
    engine = Engine(context.config, context.data_dir, context.log.log, studios=studios)
    from tagger.faces.recognition import PerformerRecognition, faces_analyzer

    recognition = PerformerRecognition(context.store, context.client, faces_analyzer(engine), context.log.log)
    recognition.refresh()  # only performers whose image changed are fetched
    results: list[tuple[int, dict[str, Any]]] = []
    totals = {
        "analysed": 0,
        "failed": 0,
        "changed": 0,
        "tags_added": 0,
        "markers_created": 0,
        "markers_updated": 0,
        "taken_back": 0,
        "studios_set": 0,
        "performers_added": 0,
        "suggestions": 0,
        "tags_created": 0,
        "partial": 0,
        "skipped": 0,
    }
    if selection != "scene":  # a scene asked for by its id is always tried
        scenes = _skip_failing(context, scenes, totals)
    for finished, analysis in enumerate(executor.analyses(engine, scenes, total), start=1):
        entry = _write_scene(
            context,
            engine,
            recognition,
            applier,
            queue,
            analysis,
            dry_run=dry_run,
            queue_tag_id=queue_tag_id,
        )
        _count(totals, entry)
        if dry_run or len(results) < MAX_SCENES_IN_OUTPUT:
            results.append((analysis.index, entry))
        context.log.progress(finished / max(total, 1))  # finished videos, wherever they ran
    if not dry_run:  # a dry run changes nothing, the cache included
        from tagger.run.maintenance import current_keys, prune_after_run

        prune_after_run(engine.cache, *current_keys(context.config, engine), context.log)
    context.log.progress(1.0)
    output: dict[str, Any] = {
        "mode": mode,
        "selection": selection,
        "run_id": run_id,
        "dry_run": dry_run,
        **totals,
        "review_pending": queue.pending_count(),
        "scenes": [entry for _, entry in sorted(results, key=lambda item: item[0])],
    }
    if len(results) < totals["analysed"] + totals["failed"]:
        output["scenes_not_listed"] = totals["analysed"] + totals["failed"] - len(results)
    if not dry_run:
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


def _write_scene(
    context: RunContext,
    engine: Any,
    recognition: Any,
    applier: Any,
    queue: Any,
    analysis: Analysis,
    *,
    dry_run: bool,
    queue_tag_id: str | None,
) -> dict[str, Any]:
    """One analysed scene written (see ``_write_analysed``); an unexpected error fails the scene
    and the run goes on."""
    try:
        return _write_analysed(context, engine, recognition, applier, queue, analysis, dry_run=dry_run,
                               queue_tag_id=queue_tag_id)
    except (StashUnreachableError, StashAuthError, LockedError):
        raise  # Stash is gone or refuses us, or a writer holds on: every next scene would fail alike
    except Exception as error:
        scene = analysis.scene
        message = unexpected_error(context.log, scene, error)
        context.log.error(f"scene {scene.id}: {message}")
        if not dry_run:
            _scene_failed(context, applier, scene, message)
        return {"scene_id": scene.id, "title": scene.title, "error": message}


def _write_analysed(
    context: RunContext,
    engine: Any,
    recognition: Any,
    applier: Any,
    queue: Any,
    analysis: Analysis,
    *,
    dry_run: bool,
    queue_tag_id: str | None,
) -> dict[str, Any]:
    """One analysed scene: (under the write lock) plan against Stash's current state and apply."""
    scene = analysis.scene
    entry: dict[str, Any] = {"scene_id": scene.id, "title": scene.title}
    started = time.monotonic() - analysis.seconds  # the scene's time counts its analysis
    file = scene.primary_file
    if analysis.via is not None:
        entry["source"] = analysis.via
    if analysis.error is not None:
        context.log.error(f"scene {scene.id}: {analysis.error}")
        entry["error"] = analysis.error
        if not dry_run:
            _record_failure(context, applier, scene, analysis.error)
        return entry
    result = analysis.result
    found = result.to_dict()
    for warning in found.get("warnings", []):
        context.log.warning(f"scene {scene.id}: {warning}")
    record = result.record
    if not record.complete:
        entry["analysed"] = {"stopped": record.stopped, "end": round(record.end, 3),
                             "duration": round(record.duration, 3)}
    partial = record.stopped in PARTIAL_STOPS
    if dry_run:
        entry.update(
            {
                key: found[key]
                for key in (
                    "duration",
                    "frames_analysed",
                    "shots",
                    "technical",
                    "tags",
                    "markers",
                    "faces",
                    "text",
                    "studio",
                    "review_tags",
                    "warnings",
                    "cached",
                )
            }
        )
    from tagger.faces.recognition import identities_to_dict

    identities, performers = recognition.identify(result)
    if dry_run:
        entry["identities"] = identities_to_dict(identities)
        entry["performers"] = [
            {
                "id": p.performer_id,
                "name": p.name,
                "score": round(p.score, 3),
                "appearances": p.appearances,
                "auto": p.auto,
            }
            for p in performers
        ]
    findings = findings_of(result, engine, recognition.matches(performers))
    try:
        with write_lock(context) if not dry_run else nullcontext():
            planned = plan_for(context, applier, queue, scene.id, findings)
            if planned is None:
                entry["error"] = f"scene {scene.id} no longer exists in Stash"
                return entry
            plan, current = planned
            entry["plan"] = plan.to_dict()
            entry["suggestions"] = len(plan.suggestions)
            entry["changes"] = plan.changes
            if not dry_run:
                applied = applier.apply(plan)
                entry["applied"] = applied.to_dict()
                queue.offer(scene.id, plan.suggestions, applier.journal.run_id)
                if queue_tag_id and queue_tag_id in scene.tag_ids and not partial:
                    _remove_queue_tag(context, applier.journal, scene.id, queue_tag_id)
                context.store.mark_processed(
                    scene.id, applier.journal.run_id, "partial" if partial else "done",
                    fingerprint=file.oshash if file else None,
                    detail="; ".join(record.warnings) if not record.complete else None,
                )
                if partial:  # not done: ``untagged`` and the queue come back to it
                    context.store.enqueue([scene.id], "partial analysis")
                context.store.clear_failures(scene.id)
        if not dry_run:
            # The gallery learns only from performers the user put on the scene (or confirmed).
            owned = applier.owned(scene.id).performers
            theirs = sorted(p for p in current.performer_ids if p not in owned or owned[p].confirmed)
            recognition.learn(scene.id, theirs, identities, result)
            recognition.remember_unknown(scene.id, identities, result, headers=analysis.headers or None)
    except GraphQLError as error:  # Stash refused one change: this scene fails, the run goes on
        context.log.error(f"scene {scene.id}: {error}")
        entry["error"] = str(error)
        if not dry_run:
            _scene_failed(context, applier, scene, str(error))
        return entry
    entry["seconds"] = round(time.monotonic() - started, 2)
    summary = entry.get("applied") if not dry_run else entry["plan"]
    context.log.info(f"scene {scene.id}: {_describe(summary or {})} in {entry['seconds']} s")
    return entry


def plan_for(context: RunContext, applier: Any, queue: Any, scene_id: str, findings: Any) -> Any:
    """The plan for a scene as Stash has it now, and the scene (None when the scene is gone)."""
    from tagger.writeback.apply import scene_state
    from tagger.writeback.plan import PlanOptions, plan_scene, tag_key

    current = context.client.find_scene(scene_id)
    if current is None:
        return None
    config = context.config
    status_tag = f"{config.tag_parent}_Tagged" if config.status_tags else None
    names = [t.name for t in findings.tags] + [m.tag for m in findings.markers]
    names += [t.name for t in findings.review_tags] + ([status_tag] if status_tag else [])
    options = PlanOptions(
        whitelist=frozenset(tag_key(n) for n in config.tag_whitelist),
        studio_overwrite=config.studio_overwrite,
        status_tag=status_tag,
        rejected=queue.decided_keys(scene_id),
    )
    plan = plan_scene(
        scene_state(current),
        findings,
        tag_ids=applier.resolve_tags(names),
        owned=applier.owned(scene_id),
        options=options,
    )
    return plan, current


def findings_of(result: Any, engine: Any, performers: Any = ()) -> Any:
    """The planner's view of an engine result: decisions, which analyzers ran, why."""
    from tagger.engine.engine import analyzer_version
    from tagger.writeback.plan import Findings, tag_key

    decisions = result.decisions
    sources = {a.name for a in engine.analyzers}
    if "shots" in engine.config.analyzers:
        sources.add("shots")
    evidence: dict[str, list[float]] = {}
    for tag in [*decisions.tags, *decisions.review_tags]:
        hits = sorted(
            (d for d in result.detections if d.kind == "content" and d.label == tag.label),
            key=lambda d: -d.score,
        )
        evidence[tag_key(tag.name)] = sorted(d.time for d in hits[:5])
    return Findings(
        tags=decisions.tags,
        markers=decisions.markers,
        studio=decisions.studio,
        review_tags=decisions.review_tags,
        performers=tuple(performers),
        sources=frozenset(sources),
        evidence=evidence,
        models={a.name: analyzer_version(a) for a in engine.analyzers},
        analysed_end=None if result.record.complete else result.record.end,
        whole=result.record.stopped not in PARTIAL_STOPS,
    )


def _scene_failed(context: RunContext, applier: Any, scene: StashScene, detail: str) -> None:
    """The store records the failure, and counts it against the file (see ``MAX_FAILURES``)."""
    context.store.mark_processed(scene.id, applier.journal.run_id, "error", detail=detail)
    if scene.primary_file is not None:
        count = context.store.count_failure(scene.id, scene.primary_file.identity, detail)
        if count >= MAX_FAILURES:
            context.log.warning(f"scene {scene.id}: failed {count} times with this file; "
                                "skipped from now on until the file changes")


def _record_failure(context: RunContext, applier: Any, scene: StashScene, detail: str) -> None:
    """A scene that could not be analysed: the store knows, and (optionally) so does a status tag."""
    _scene_failed(context, applier, scene, detail)
    if not context.config.status_tags:
        return
    from tagger.writeback.plan import STATUS_SOURCE, ScenePlan, TagChange, tag_key

    name = f"{context.config.tag_parent}_Error"
    try:
        with write_lock(context):
            tag_id = applier.resolve_tags([name]).get(tag_key(name))
            if tag_id not in scene.tag_ids:
                applier.apply(ScenePlan(scene.id, add_tags=(TagChange(name, tag_id, STATUS_SOURCE),)))
    except GraphQLError as error:
        context.log.warning(f"scene {scene.id}: the {name} tag could not be added: {error}")


def _remove_queue_tag(context: RunContext, journal: Journal, scene_id: str, tag_id: str) -> None:
    """Take the queue tag off a scene that is done (the queue tag means "tag me", not a finding)."""
    context.client.change_scene_tags(scene_id, [tag_id], "REMOVE")
    journal.record(Intent(Action.REMOVE_QUEUE_TAG, scene_id, tag_id, {"name": context.config.queue_tag}))


def _describe(summary: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (("tags_added", "tag(s)"), ("add_tags", "tag(s)"), ("create_markers", "marker(s)")):
        if summary.get(key):
            parts.append(f"{len(summary[key])} {label}")
    if summary.get("markers_created"):
        parts.append(f"{summary['markers_created']} marker(s)")
    if summary.get("studio") or summary.get("set_studio"):
        parts.append("studio")
    return ", ".join(parts) or "no changes"


def gallery(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Build or refresh the performer face gallery from Stash's performer images, then group the
    unknown faces of tagged scenes into suggested performers."""
    from dataclasses import replace

    from tagger.analyzers import build_analyzers
    from tagger.faces.recognition import PerformerRecognition

    if "faces" not in context.config.analyzers:
        raise ConfigError(
            "analyzers: 'faces' is off, so there is no face gallery; add faces to the analyzers"
        )
    context.client.use_api_key_if_set()
    (faces,) = build_analyzers(
        replace(context.config, analyzers=("faces",)), context.data_dir, context.log.log
    )
    recognition = PerformerRecognition(context.store, context.client, faces, context.log.log)
    with context.store.recorded_run("gallery") as run_id:
        report = recognition.refresh(lambda f: context.log.progress(0.9 * f))
        assert report is not None
        clusters = recognition.cluster_unknown(run_id)
    context.log.progress(1.0)
    embeddings = len(recognition.index())
    context.log.info(
        f"face gallery: {report.performers} performer(s), {embeddings} face(s); "
        f"{len(report.updated)} updated, {len(report.problems)} problem(s); "
        f"{clusters} unknown person(s) suggested"
    )
    return {
        "mode": "gallery",
        "run_id": run_id,
        **report.to_dict(),
        "embeddings": embeddings,
        "unknown_people": clusters,
    }


def undo(context: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    """Take back what the tagger added: everything, one ``scene_id``, or one ``run_id``."""
    from tagger.writeback.apply import Applier

    scene_id = str(args.get("scene_id") or "") or None
    only_run = str(args.get("run_id") or "") or None
    context.client.use_api_key_if_set()
    with context.store.recorded_run("undo") as run_id:
        journal = Journal(context.store, run_id)
        applier = Applier(context.client, journal, context.config.tag_parent, context.log.log)
        with write_lock(context):
            applier.reconcile()
        scenes = [scene_id] if scene_id else journal.scenes(run_id=only_run)
        what = f"scene {scene_id}" if scene_id else (f"run {only_run}" if only_run else "everything")
        context.log.info(f"undo {what}: {len(scenes)} scene(s)")
        results, kept, restored = [], [], []
        totals = {"tags_removed": 0, "markers_removed": 0, "performers_removed": 0, "studios_restored": 0}
        for index, sid in enumerate(scenes):
            with write_lock(context):
                done = applier.undo_scene(sid, only_run)
                remaining = applier.owned(sid)
            totals["tags_removed"] += len(done.tags_removed)
            totals["markers_removed"] += done.markers_removed
            totals["performers_removed"] += len(done.performers_removed)
            totals["studios_restored"] += done.studio_restored
            kept += [f"scene {sid}: {item}" for item in done.kept]
            if not (remaining.tags or remaining.markers or remaining.performers or remaining.studio):
                restored.append(sid)
            if len(results) < MAX_SCENES_IN_OUTPUT:
                results.append(done.to_dict())
            context.log.progress((index + 1) / max(len(scenes), 1) * 0.95)
        context.store.forget_processed(restored)
        with write_lock(context):
            deleted = applier.delete_unused_tags()
    context.log.progress(1.0)
    for item in kept:
        context.log.info(f"kept {item}")
    context.log.info(
        f"undo {what}: {totals['tags_removed']} tag(s) and {totals['markers_removed']} "
        f"marker(s) removed, {len(deleted)} tag(s) deleted, {len(kept)} item(s) kept"
    )
    return {
        "mode": "undo",
        "run_id": run_id,
        "scope": what,
        "scenes": len(scenes),
        **totals,
        "deleted_tags": deleted,
        "kept": kept,
        "details": results,
    }


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
