"""The engine: one video in, detections and decisions out, with the analysis cache in between.

    cache hit for every analyzer  ->  no decoding at all, decisions from cached detections
    otherwise                     ->  one decode pass running only the analyzers that missed
    a cached pass that ended early (budget, dropped stream) is no hit: every analyzer runs again

``EngineResult.to_dict`` is the command line's JSON contract and what the plugin reports and
plans from. Decisions are pure (``tagger.decide``) and always re-run, so changed thresholds or tag
rules apply without touching the video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tagger import families
from tagger.config import Config
from tagger.decide.faces import FaceTrack, track_faces
from tagger.decide.rules import rules_from_config
from tagger.decide.studio import StudioMatch, StudioName, match_studio
from tagger.decide.tags import MarkerDecision, RuleSet, SceneTag, decide_families
from tagger.decide.text import TextSpan, merge_text
from tagger.detections import TEXT_SCAN_KIND, Analyzer, Detection
from tagger.engine.cache import AnalysisCache, PassRecord, oshash
from tagger.engine.one_pass import AnalysisResult, AnalyzeOptions, analyze_file, rounded
from tagger.errors import ConfigError
from tagger.media.video import is_url

ENGINE_VERSION = "1"
"""Part of every cache key: bump when the decode pass or sampling changes what frames are seen."""

TEXT_MAX_GAP_S = 6.0
"""Text readings further apart join only when the OCR did not look in between (it looks at shot
starts and every ~30 s): the gap allowed grows with the time between its looks."""

MIN_FACE_DETECTIONS = 2
"""A face seen in a single sample is not reported as a track (too often a false detection)."""


@dataclass(frozen=True)
class Decisions:
    """What the engine concludes about one video."""

    tags: list[SceneTag]
    markers: list[MarkerDecision]
    faces: list[FaceTrack]
    text: list[TextSpan]
    studio: StudioMatch | None
    review_tags: list[SceneTag] = field(default_factory=list)
    """Scene tags found only with the review band's lower thresholds: suggestions, not changes."""


@dataclass(frozen=True)
class EngineResult:
    """A video's pass, detections and decisions."""

    file: str
    record: PassRecord
    detections: list[Detection]
    decisions: Decisions
    timings: dict[str, float] = field(default_factory=dict)
    cached: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``ai_tagger.py analyze --json``."""
        record, decisions = self.record, self.decisions
        return {
            "file": self.file,
            "duration": rounded(record.duration),
            "analysed_end": rounded(record.end),
            "complete": record.complete,
            "stopped": record.stopped,
            "fps": rounded(record.fps),
            "frames_analysed": record.frames_analysed,
            "shots": [{"start": rounded(a), "end": rounded(b)} for a, b in record.shots],
            "technical": [{"kind": kind, "start": rounded(a), "end": rounded(b)}
                          for kind, a, b in record.technical],
            "tags": [{"name": t.name, "label": t.label, "score": rounded(t.score),
                      "seconds": rounded(t.seconds), "source": t.source} for t in decisions.tags],
            "markers": [{"title": m.title, "tag": m.tag, "start": rounded(m.start), "end": rounded(m.end),
                         "score": rounded(m.score), "source": m.source} for m in decisions.markers],
            "faces": [{"track": f.track, "start": rounded(f.start), "end": rounded(f.end),
                       "score": rounded(f.score), "appearances": f.detections, "identity": None}
                      for f in decisions.faces],
            "text": [{"text": t.text, "start": rounded(t.start), "end": rounded(t.end),
                      "score": rounded(t.score), "box": [round(v) for v in t.box] if t.box else None}
                     for t in decisions.text],
            "studio": ({"name": decisions.studio.name, "score": rounded(decisions.studio.score),
                        "evidence": list(decisions.studio.evidence)} if decisions.studio else None),
            "review_tags": [{"name": t.name, "label": t.label, "score": rounded(t.score),
                             "seconds": rounded(t.seconds), "source": t.source}
                            for t in decisions.review_tags],
            "timings": {stage: rounded(seconds) for stage, seconds in self.timings.items()},
            "warnings": list(record.warnings),
            "cached": list(self.cached),
        }


def pass_params(options: AnalyzeOptions) -> str:
    """The cache key part that decides which frames a pass sees."""
    return (f"v{ENGINE_VERSION}:{options.sampling}:{options.interval_s:g}:{options.max_side}:"
            f"shots={int(options.shot_detection)}:{options.shot_detector}:{options.shot_threshold}")


def analyze_options(config: Config, headers: dict[str, str] | None = None) -> AnalyzeOptions:
    """The decode pass's options from a configuration (``pass_params`` of them keys the cache)."""
    return AnalyzeOptions(interval_s=config.interval, sampling=config.sampling,
                          max_side=config.max_side, shot_detection=families.SHOTS in config.analyzers,
                          time_budget_s=config.time_budget or None, http_headers=headers or None)


def fingerprint_of(source: str, known: str | None = None) -> str | None:
    """Stash's oshash when known, else computed for a local file; None for a URL without one."""
    if known:
        return known
    if is_url(source):
        return None
    path = Path(source)
    return oshash(path) if path.is_file() else None


def local_size(source: str) -> int | None:
    """The size in bytes of a local file; None for a URL or a file that cannot be read."""
    if is_url(source):
        return None
    try:
        return Path(source).stat().st_size
    except OSError:
        return None


def pass_stands(record: PassRecord, file_size: int | None) -> bool:
    """Whether a cached pass stands for the video (pure).

    A whole pass does. A pass cut by its budget or an interrupted read never does: the video is
    analysed again. A truncated file's readable part does while the file is the one that ended there
    (same size; ``file_size`` None when read by URL, where the fingerprint vouches for it).
    """
    if record.stopped == "truncated":
        return file_size is None or record.file_size is None or file_size == record.file_size
    return record.complete


def analyzer_version(analyzer: Analyzer) -> str:
    """An analyzer's cache version (its ``version`` attribute, else its name)."""
    return str(getattr(analyzer, "version", analyzer.name))


def run_engine(source: str, options: AnalyzeOptions, analyzers: Sequence[Analyzer], *,
               rules: Sequence[RuleSet], studios: Sequence[StudioName] = (),
               studio_min_score: float = 0.85, shot_markers: bool = False,
               review_rules: Sequence[RuleSet] | None = None,
               cache: AnalysisCache | None = None, fingerprint: str | None = None,
               progress: Callable[[float], None] | None = None) -> EngineResult:
    """Analyse ``source`` (or take it from the cache) and decide.

    Raises:
        MediaError: the video cannot be read.
    """
    key = fingerprint_of(source, fingerprint) if cache is not None else None
    params = pass_params(options)
    before = record = cache.get_pass(key, params) if cache is not None and key else None
    if record is not None and not pass_stands(record, local_size(source)):
        record = None  # its detections cover only part of the video: every analyzer runs again
    found: dict[str, list[Detection]] = {}
    if cache is not None and key and record is not None:
        for analyzer in analyzers:
            hit = cache.get_detections(key, params, analyzer.name, analyzer_version(analyzer))
            if hit is not None:
                found[analyzer.name] = hit
    missing = [a for a in analyzers if a.name not in found]
    timings: dict[str, float] = {}
    if record is None or missing:
        result = analyze_file(source, options, analyzers=missing, progress=progress)
        record, timings = _record_of(result, source), dict(result.timings)
        record = truncation_confirmed(record, before, read_failed=result.report.read_failed)
        found.update(result.detections_by_analyzer)
        if cache is not None and key:
            cache.put_pass(key, params, record)
            for analyzer in missing:
                cache.put_detections(key, params, analyzer.name, analyzer_version(analyzer),
                                     result.detections_by_analyzer[analyzer.name])
    elif progress is not None:
        progress(1.0)
    detections = [d for a in analyzers for d in found[a.name]]
    decisions = decide(record, detections, rules=rules, studios=studios,
                       studio_min_score=studio_min_score, shot_markers=shot_markers,
                       review_rules=review_rules)
    cached = tuple(a.name for a in analyzers if a not in missing)
    return EngineResult(file=source, record=record, detections=detections, decisions=decisions,
                        timings=timings, cached=cached)


SAME_END_S = 0.5
"""Two reads that ended this close together ended at the same place."""


def truncation_confirmed(record: PassRecord, before: PassRecord | None, *, read_failed: bool) -> PassRecord:
    """A stream that ended early, without a read error, where the last read of the same file (same
    fingerprint) ended too: the file itself is cut short, not the connection (pure).

    A stream cannot tell a truncated file from a dropped connection the first time; the second
    read ending at the same place can, and from then on the readable part stands as a local
    truncated file's does (``pass_stands``), instead of the video being read again on every run.
    """
    if (record.stopped != "interrupted" or read_failed or before is None or before.stopped != "interrupted"
            or record.analysed_end is None or before.analysed_end is None
            or abs(record.analysed_end - before.analysed_end) > SAME_END_S):
        return record
    warnings = [w for w in record.warnings if not w.startswith("reading stopped at")]
    warnings.append(f"decoding stopped at {record.analysed_end:.1f} s of {record.duration:.1f} s: the file "
                    "is truncated or corrupt (two reads through Stash's stream ended there)")
    return replace(record, stopped="truncated", warnings=warnings)


def _record_of(result: AnalysisResult, source: str) -> PassRecord:
    return PassRecord(
        duration=result.info.duration,
        fps=result.info.fps, frames_analysed=result.frames_analysed,
        sample_times=list(result.sample_times),
        shots=[(s.start, s.end) for s in result.shots],
        technical=[(t.kind, t.start, t.end) for t in result.technical],
        warnings=list(result.warnings), frame_size=result.frame_size,
        analysed_end=None if result.stopped is None else result.end, stopped=result.stopped,
        file_size=local_size(source) if result.stopped == "truncated" else None,
    )


def decide(record: PassRecord, detections: Sequence[Detection], *, rules: Sequence[RuleSet],
           studios: Sequence[StudioName] = (), studio_min_score: float = 0.85,
           shot_markers: bool = False, review_rules: Sequence[RuleSet] | None = None) -> Decisions:
    """Every decision about one video, from its pass and detections (pure).

    ``rules`` hold each tagging family's rules, run on that family's detections. ``review_rules``
    (the same with lower thresholds) find the scene tags that are worth a suggestion: those they
    find and ``rules`` do not.
    """
    technical = [(start, end) for _, start, end in record.technical]
    tags, markers = decide_families(detections, record.sample_times, record.end, rules, technical)
    review_tags: list[SceneTag] = []
    if review_rules:
        found = {t.name for t in tags}
        review_tags = [t for t in decide_families(detections, record.sample_times, record.end,
                                                  review_rules, technical).scene_tags if t.name not in found]
    if shot_markers:
        markers = [*markers, *shot_marker_decisions(record.shots)]
    scanned = sorted({d.time for d in detections if d.kind == TEXT_SCAN_KIND}) or record.sample_times
    text = merge_text(detections, scanned, record.end, frame_size=record.frame_size,
                      max_gap_s=max(TEXT_MAX_GAP_S, 2.5 * _typical_gap(scanned)))
    faces = track_faces(detections, min_detections=MIN_FACE_DETECTIONS)
    studio = match_studio(text, studios, min_score=studio_min_score) if studios else None
    return Decisions(tags=tags, markers=sorted(markers, key=lambda m: (m.start, m.tag)), faces=faces,
                     text=text, studio=studio, review_tags=review_tags)


def _typical_gap(times: Sequence[float]) -> float:
    """The median time between consecutive ``times`` (0 for fewer than two)."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2] if gaps else 0.0


SHOT_TAG = "Shot"
"""The primary tag of shot markers (chapters)."""


def shot_marker_decisions(shots: Sequence[tuple[float, float]]) -> list[MarkerDecision]:
    """One marker per shot, titled by its number."""
    return [MarkerDecision(title=f"Shot {number}", tag=SHOT_TAG, start=start, end=end, score=1.0,
                           source=families.SHOTS)
            for number, (start, end) in enumerate(shots, start=1)]


class Engine:
    """The engine for one run: analyzers (ONNX sessions) built once, the cache open, settings fixed.

    Arguments:
        config: the run's configuration.
        data_dir: the tagger's data folder (cache, converted models).
        log: (level, message).
        studios: studio names to recognise; defaults to ``config.studios``.
    """

    def __init__(self, config: Config, data_dir: Path, log: Callable[[str, str], None],
                 studios: Sequence[StudioName] | None = None) -> None:
        from tagger.analyzers import build_analyzers

        self.config = config
        self.analyzers = build_analyzers(config, data_dir, log)
        self.cache = AnalysisCache(data_dir / "cache.sqlite")
        self.rules = rules_for(config)
        self.review_rules = review_rules_for(self.rules, config.review_margin)
        self.studios = list(studios) if studios is not None else studios_for(config)

    def options(self, headers: dict[str, str] | None = None) -> AnalyzeOptions:
        """The decode pass's options from the configuration."""
        return analyze_options(self.config, headers)

    def analyze(self, source: str, *, headers: dict[str, str] | None = None, fingerprint: str | None = None,
                progress: Callable[[float], None] | None = None) -> EngineResult:
        return run_engine(source, self.options(headers), self.analyzers, rules=self.rules,
                          studios=self.studios, studio_min_score=self.config.studio_min_score,
                          shot_markers=self.config.shot_markers, review_rules=self.review_rules,
                          cache=self.cache,
                          fingerprint=fingerprint, progress=progress)

    def close(self) -> None:
        self.cache.close()


def rules_for(config: Config) -> list[RuleSet]:
    """The tag rules of a configuration, per tagging family: each registered family's defaults
    shifted by ``confidence``, then the per-label overrides of ``tags``.

    ``confidence`` moves every default threshold by the same amount (0.5 is the shipped level),
    so lowering it finds more everywhere while keeping the rules' relative strictness; a
    threshold set for a label in ``tags`` is taken as it is. Every registered family counts,
    configured or not, so switching one off leaves its overrides valid.

    Raises:
        ConfigError: ``tags`` names a label no family has, or a field a rule does not know; a
            family cannot be loaded.
    """
    from tagger.analyzers import family_class

    shift = config.confidence - 0.5
    overrides = config.tag_overrides()
    rule_sets: list[RuleSet] = []
    for name in families.registry():
        defaults = family_class(name).default_rules()
        if not defaults:
            continue
        shifted = {label: replace(rule, threshold=min(0.99, max(0.01, rule.threshold + shift)))
                   for label, rule in defaults.items()}
        mine = {label: changes for label, changes in overrides.items() if label in shifted}
        try:
            rule_sets.append(RuleSet(name, rules_from_config(mine, base=shifted)))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"tags: {error}") from None
    known = sorted({label for rule_set in rule_sets for label in rule_set.rules})
    unknown = [label for label in overrides if label not in known]
    if unknown:  # the message rules_from_config gives, over every family's labels
        raise ConfigError(f"tags: tag rules: unknown label {unknown[0]!r}; known: {', '.join(known)}")
    return rule_sets


def review_rules_for(rule_sets: Sequence[RuleSet], margin: float) -> list[RuleSet] | None:
    """The review band: every rule's threshold lowered by ``margin`` (None when 0: no band)."""
    if margin <= 0:
        return None
    return [RuleSet(s.source, {label: replace(rule, threshold=max(0.01, rule.threshold - margin))
                               for label, rule in s.rules.items()}) for s in rule_sets]


def studios_for(config: Config) -> list[StudioName]:
    """The configured studio names (for runs without Stash)."""
    return [StudioName(id=None, name=name, aliases=aliases) for name, aliases in config.studios]
