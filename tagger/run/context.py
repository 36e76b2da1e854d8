"""What one run works with, and the executor seam between the analysis and the write phases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from tagger.config import Config
from tagger.engine.engine import Engine, EngineResult
from tagger.stashside.protocol import StashLog
from tagger.stashside.stash import StashClient, StashScene
from tagger.stashside.store import Store


@dataclass
class RunContext:
    """What one run works with."""

    config: Config
    client: StashClient
    store: Store
    log: StashLog
    data_dir: Path


@dataclass(frozen=True)
class Analysis:
    """The analysis phase's outcome for one scene: an engine result, or why there is none."""

    index: int
    """The scene's place in the selection (outcomes may arrive in another order)."""
    scene: StashScene
    result: EngineResult | None = None
    error: str | None = None
    via: str | None = None
    """How the video was read (``path`` or ``stream``); None when no source was found."""
    headers: dict[str, str] | None = None
    """The HTTP headers that go with ``result.file`` (a stream needs Stash's credentials)."""
    seconds: float = 0.0


class AnalysisExecutor(Protocol):
    """Turns scenes into analyses; a context manager around the run (connects, then cleans up)."""

    def __enter__(self) -> AnalysisExecutor: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None: ...

    def analyses(self, engine: Engine, scenes: Iterable[StashScene], total: int) -> Iterator[Analysis]:
        """Each scene's analysis, as soon as it is there; the caller writes it before asking for the
        next one (so the local executor does not analyse ahead)."""
        ...
