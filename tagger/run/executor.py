"""Where the analysis runs: in this process (``LocalAnalysis``), or on Ray (``tagger.run.distributed``).

Either way it hands back one ``Analysis`` per scene, and only this process writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from tagger.engine.engine import Engine
from tagger.errors import MediaError, StashError
from tagger.run.context import Analysis, AnalysisExecutor, RunContext
from tagger.run.write_scene import unexpected_error
from tagger.stashside.stash import StashScene, media_source


def analysis_executor(context: RunContext, *, wanted: bool = True) -> AnalysisExecutor:
    """Ray when ``ray_address`` is set (and there is work), else this process."""
    if context.config.ray_address and wanted:
        from tagger.run.distributed import RayAnalysis  # Ray is imported only when asked for

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

    def analyses(self, engine: Engine, scenes: Iterable[StashScene], total: int) -> Iterator[Analysis]:
        log = self.context.log
        for index, scene in enumerate(scenes):
            base = index / max(total, 1)
            progress = lambda f, b=base: log.progress(b + f / max(total, 1))  # noqa: E731
            yield analyse_scene(self.context, engine, index, scene, progress)


def analyse_scene(context: RunContext, engine: Engine, index: int, scene: StashScene,
                  progress: Callable[[float], None] | None = None) -> Analysis:
    """One scene's analysis in this process: its media source, then the engine."""
    started = time.monotonic()
    file = scene.primary_file
    via = None
    source = None
    try:
        source = media_source(scene, context.config.map_path, context.client.auth_headers)
        via = source.via
        result = engine.analyze(source.location, headers=source.headers, progress=progress,
                                fingerprint=file.oshash if file else None)
    except (MediaError, StashError) as error:
        message = source.read_failed(error) if isinstance(error, MediaError) and source else str(error)
        return Analysis(index, scene, error=message, via=via, seconds=time.monotonic() - started)
    except Exception as error:  # a bug, or a file nobody foresaw: this scene fails, not the run
        message = unexpected_error(context.log, scene, error)
        return Analysis(index, scene, error=message, via=via, seconds=time.monotonic() - started)
    return Analysis(index, scene, result=result, via=via, headers=source.headers,
                    seconds=time.monotonic() - started)
