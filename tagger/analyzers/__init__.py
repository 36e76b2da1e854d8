"""Model families that look at sample frames: faces, content, on-screen text, and any other
family registered in ``tagger.families``.

``build_analyzers`` makes the ones a configuration asks for (``Family.build``), each with its
models resolved through ``models/models.yaml`` and its ONNX Runtime sessions created once for the
run. Every analyzer gets a cache ``version`` naming its models and its code version, so cached
detections are reused exactly when they would come out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tagger import families
from tagger.analyzers.family import FEEDS, BuildContext, Family
from tagger.analyzers.runtime import RuntimeOptions
from tagger.config import Config
from tagger.detections import Analyzer, Detection
from tagger.errors import ConfigError

if TYPE_CHECKING:
    from tagger.media.frames import Frame

Log = Callable[[str, str], None]


@dataclass(frozen=True)
class VersionedAnalyzer:
    """An analyzer with the version its cached detections are stored under."""

    inner: Analyzer
    version: str

    @property
    def name(self) -> str:
        return self.inner.name

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        return self.inner.analyze(batch)


def family_class(name: str) -> type[Family]:
    """The registered family ``name`` (``tagger.families``), imported.

    Raises:
        ConfigError: it is not registered, cannot be imported, or is not a ``Family``.
    """
    found = families.load(name)
    if not (isinstance(found, type) and issubclass(found, Family)) or getattr(found, "name", None) != name:
        raise ConfigError(f"analyzer family {name!r}: {families.registry()[name]} is not a Family "
                          f"subclass named {name!r} (see tagger/analyzers/family.py)")
    return found


def family_version(family: type[Family]) -> str:
    """``<model>@<version>+...:c<code version>`` (``none`` for a family without models)."""
    from tagger.analyzers.models import load_manifest

    manifest = load_manifest() if family.models else {}
    models = "+".join(f"{model_id}@{manifest[model_id].version}" for model_id in family.models)
    return f"{models or 'none'}:c{family.code_version}"


def faces_version() -> str:
    """The cache and gallery version of the faces analyzer (its models and code)."""
    return family_version(family_class(families.FACES))


def analyzer_versions() -> dict[str, str]:
    """Every registered family's current cache version, configured or not, without loading any
    model (what cache pruning compares stored detections with)."""
    return {name: family_version(family_class(name)) for name in families.registry()}


def build_analyzers(config: Config, data_dir: Path, log: Log) -> list[VersionedAnalyzer]:
    """The families ``config.analyzers`` names, in registry order (``shots`` is part of the decode
    pass itself).

    Raises:
        ModelError: a model file is missing or corrupt (the message says how to get it).
        ConfigError: a family cannot be loaded, or consumes what the pass does not feed.
    """
    user_dirs = [Path(config.models_dir)] if config.models_dir else []
    user_dirs.append(data_dir / "models")
    context = BuildContext(data_dir=data_dir, runtime=RuntimeOptions(threads=config.threads), log=log,
                           user_dirs=tuple(user_dirs), allow_download=config.allow_download)
    built: list[VersionedAnalyzer] = []
    for name in families.registry():
        if name not in config.analyzers:
            continue
        family = family_class(name)
        if family.consumes not in FEEDS:
            raise ConfigError(f"analyzer family {name!r} consumes {family.consumes!r}; the decode pass "
                              f"feeds only {', '.join(FEEDS)}")
        built.append(VersionedAnalyzer(family.build(context), family_version(family)))
    return built
