"""One scene's write phase: from its analysis to Stash, in one place.

    Analysis (an engine result, or why there is none)
      -> performers identified -> findings (what was found, which analyzers ran, what was seen)
      -> under the write lock: the scene as Stash has it now -> plan (pure) -> apply (journaled)
      -> suggestions offered -> the scene marked processed -> the queue tag taken off
      -> the gallery learns; unknown faces kept

A scene that fails (analysis error, Stash refusing a change, anything unexpected) is that scene's
error: the store counts it against the file, and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger import families
from tagger.config import Config
from tagger.engine.engine import Engine, EngineResult, analyzer_version
from tagger.errors import GraphQLError, LockedError, StashAuthError, StashUnreachableError, report_unexpected
from tagger.faces.recognition import PerformerRecognition, identities_to_dict
from tagger.run.context import Analysis
from tagger.stashside.protocol import StashLog
from tagger.stashside.stash import StashClient, StashScene
from tagger.stashside.store import Store
from tagger.writeback.apply import Applier, scene_state
from tagger.writeback.plan import (
    STATUS_SOURCE,
    Findings,
    PerformerMatch,
    PlanOptions,
    ScenePlan,
    TagChange,
    plan_scene,
    tag_key,
)
from tagger.writeback.review import ReviewQueue
from tagger.writeback.session import write_lock

PARTIAL_STOPS = ("budget", "interrupted")
"""Why a pass may end early and get further next time (``tagger.engine.one_pass.StopCause``); a
truncated file's readable part is all of it there is."""

MAX_FAILURES = 3
"""Runs in a row in which a scene may fail with the same file; after that the selections skip it
until Stash reports its file changed (tagging the scene on its own still tries it)."""

REPORTED_FINDINGS = ("duration", "frames_analysed", "shots", "technical", "tags", "markers", "faces",
                     "text", "studio", "review_tags", "warnings", "cached")
"""What a dry run reports of each scene's analysis."""


@dataclass
class SceneWriter:
    """Writes each analysed scene of one run (``dry_run``: plans and reports, changes nothing)."""

    config: Config
    client: StashClient
    store: Store
    log: StashLog
    data_dir: Path
    engine: Engine
    recognition: PerformerRecognition
    applier: Applier
    queue: ReviewQueue
    dry_run: bool = False
    queue_tag_id: str | None = None
    """The queue tag's id in a queue run: taken off each scene that is done."""

    @property
    def run_id(self) -> str:
        return self.applier.journal.run_id

    def write(self, analysis: Analysis) -> dict[str, Any]:
        """The scene's entry in the run's output; an unexpected error fails the scene, not the run."""
        try:
            return self._write(analysis)
        except (StashUnreachableError, StashAuthError, LockedError):
            raise  # Stash is gone or refuses us, or a writer holds on: every next scene would fail alike
        except Exception as error:
            scene = analysis.scene
            message = unexpected_error(self.log, scene, error)
            self.log.error(f"scene {scene.id}: {message}")
            if not self.dry_run:
                self._failed(scene, message)
            return {"scene_id": scene.id, "title": scene.title, "error": message}

    def _write(self, analysis: Analysis) -> dict[str, Any]:
        scene, result = analysis.scene, analysis.result
        entry: dict[str, Any] = {"scene_id": scene.id, "title": scene.title}
        started = time.monotonic() - analysis.seconds  # the scene's time counts its analysis
        if analysis.via is not None:
            entry["source"] = analysis.via
        if analysis.error is not None or result is None:
            return self._not_analysed(scene, entry, analysis.error or "no analysis")
        self._report_analysis(scene, result, entry)
        identities, performers = self.recognition.identify(result)
        if self.dry_run:
            entry["identities"] = identities_to_dict(identities)
            entry["performers"] = [{"id": p.performer_id, "name": p.name, "score": round(p.score, 3),
                                    "appearances": p.appearances, "auto": p.auto} for p in performers]
        findings = findings_of(result, self.engine, self.recognition.matches(performers))
        try:
            current = self._plan_and_apply(scene, result, findings, entry)
            if current is None:
                entry["error"] = f"scene {scene.id} no longer exists in Stash"
                return entry
            if not self.dry_run:
                self._learn(scene, current, identities, analysis)
        except GraphQLError as error:  # Stash refused one change: this scene fails, the run goes on
            self.log.error(f"scene {scene.id}: {error}")
            entry["error"] = str(error)
            if not self.dry_run:
                self._failed(scene, str(error))
            return entry
        entry["seconds"] = round(time.monotonic() - started, 2)
        summary = entry.get("applied") if not self.dry_run else entry["plan"]
        self.log.info(f"scene {scene.id}: {describe(summary or {})} in {entry['seconds']} s")
        return entry

    def _not_analysed(self, scene: StashScene, entry: dict[str, Any], error: str) -> dict[str, Any]:
        self.log.error(f"scene {scene.id}: {error}")
        entry["error"] = error
        if not self.dry_run:
            self._failed(scene, error)
            self._add_error_tag(scene)
        return entry

    def _report_analysis(self, scene: StashScene, result: EngineResult, entry: dict[str, Any]) -> None:
        """Warnings to the log; how much was analysed (and, in a dry run, what was found) to ``entry``."""
        found = result.to_dict()
        for warning in found.get("warnings", []):
            self.log.warning(f"scene {scene.id}: {warning}")
        record = result.record
        if not record.complete:
            entry["analysed"] = {"stopped": record.stopped, "end": round(record.end, 3),
                                 "duration": round(record.duration, 3)}
        if self.dry_run:
            entry.update({key: found[key] for key in REPORTED_FINDINGS})

    def _plan_and_apply(self, scene: StashScene, result: EngineResult, findings: Findings,
                        entry: dict[str, Any]) -> StashScene | None:
        """Under the write lock: plan on the scene as Stash has it now, then apply (unless dry).
        Returns that scene (None: it is gone)."""
        with write_lock(self.data_dir) if not self.dry_run else nullcontext():
            current = self.client.find_scene(scene.id)
            if current is None:
                return None
            plan = self.plan(current, findings)
            entry["plan"] = plan.to_dict()
            entry["suggestions"] = len(plan.suggestions)
            entry["changes"] = plan.changes
            if not self.dry_run:
                entry["applied"] = self.applier.apply(plan).to_dict()
                self.queue.offer(scene.id, plan.suggestions, self.run_id)
                self._mark_done(scene, result)
        return current

    def plan(self, current: StashScene, findings: Findings) -> ScenePlan:
        """The plan for a scene as Stash has it now (pure, given the journal and the review queue)."""
        config = self.config
        status_tag = f"{config.tag_parent}_Tagged" if config.status_tags else None
        names = [t.name for t in findings.tags] + [m.tag for m in findings.markers]
        names += [t.name for t in findings.review_tags] + ([status_tag] if status_tag else [])
        options = PlanOptions(
            whitelist=frozenset(tag_key(n) for n in config.tag_whitelist),
            studio_overwrite=config.studio_overwrite,
            status_tag=status_tag,
            rejected=self.queue.decided_keys(current.id),
        )
        return plan_scene(scene_state(current), findings, tag_ids=self.applier.resolve_tags(names),
                          owned=self.applier.owned(current.id), options=options)

    def _mark_done(self, scene: StashScene, result: EngineResult) -> None:
        """The scene is processed (or, analysed in part, queued again), and off the queue tag."""
        record, file = result.record, scene.primary_file
        partial = record.stopped in PARTIAL_STOPS
        if self.queue_tag_id and self.queue_tag_id in scene.tag_ids and not partial:
            self.applier.remove_queue_tag(scene.id, self.queue_tag_id, self.config.queue_tag)
        self.store.mark_processed(
            scene.id, self.run_id, "partial" if partial else "done",
            fingerprint=file.oshash if file else None,
            detail="; ".join(record.warnings) if not record.complete else None,
        )
        if partial:  # not done: ``untagged`` and the queue come back to it
            self.store.enqueue([scene.id], "partial analysis")
        self.store.clear_failures(scene.id)

    def _learn(self, scene: StashScene, current: StashScene, identities: Any, analysis: Analysis) -> None:
        """The gallery learns only from performers the user put on the scene (or confirmed)."""
        owned = self.applier.owned(scene.id).performers
        theirs = sorted(p for p in current.performer_ids if p not in owned or owned[p].confirmed)
        self.recognition.learn(scene.id, theirs, identities, analysis.result)
        self.recognition.remember_unknown(scene.id, identities, analysis.result,
                                          headers=analysis.headers or None)

    def _failed(self, scene: StashScene, detail: str) -> None:
        """The store records the failure, and counts it against the file (see ``MAX_FAILURES``)."""
        self.store.mark_processed(scene.id, self.run_id, "error", detail=detail)
        if scene.primary_file is not None:
            count = self.store.count_failure(scene.id, scene.primary_file.identity, detail)
            if count >= MAX_FAILURES:
                self.log.warning(f"scene {scene.id}: failed {count} times with this file; "
                                 "skipped from now on until the file changes")

    def _add_error_tag(self, scene: StashScene) -> None:
        """With status tags on, a scene that could not be analysed gets ``<parent>_Error``."""
        if not self.config.status_tags:
            return
        name = f"{self.config.tag_parent}_Error"
        try:
            with write_lock(self.data_dir):
                tag_id = self.applier.resolve_tags([name]).get(tag_key(name))
                if tag_id not in scene.tag_ids:
                    change = TagChange(name, tag_id, STATUS_SOURCE)
                    self.applier.apply(ScenePlan(scene.id, add_tags=(change,)))
        except GraphQLError as error:
            self.log.warning(f"scene {scene.id}: the {name} tag could not be added: {error}")


def findings_of(result: EngineResult, engine: Engine, performers: tuple[PerformerMatch, ...] | list[
        PerformerMatch] = ()) -> Findings:
    """The planner's view of an engine result: decisions, which analyzers ran, what was seen, why."""
    decisions = result.decisions
    sources = {a.name for a in engine.analyzers}
    if families.SHOTS in engine.config.analyzers:
        sources.add(families.SHOTS)
    evidence: dict[str, list[float]] = {}
    for tag in [*decisions.tags, *decisions.review_tags]:
        hits = sorted(  # a tagging family's detections are of its own name
            (d for d in result.detections if d.kind == tag.source and d.label == tag.label),
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


def unexpected_error(log: StashLog, scene: StashScene, error: Exception) -> str:
    """Log the traceback of an error nothing expected; the scene's error message (its file, the
    error's type and message)."""
    file = scene.primary_file.path if scene.primary_file else "(no file)"
    return report_unexpected(log.log, f"scene {scene.id}", file, error)


def describe(summary: Mapping[str, Any]) -> str:
    """A plan's or an applied change's few words for the log."""
    parts = []
    for key, label in (("tags_added", "tag(s)"), ("add_tags", "tag(s)"), ("create_markers", "marker(s)")):
        if summary.get(key):
            parts.append(f"{len(summary[key])} {label}")
    if summary.get("markers_created"):
        parts.append(f"{summary['markers_created']} marker(s)")
    if summary.get("studio") or summary.get("set_studio"):
        parts.append("studio")
    return ", ".join(parts) or "no changes"
