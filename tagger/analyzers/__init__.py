"""Model families that look at sample frames: faces, content, on-screen text.

``build_analyzers`` makes the ones a configuration asks for, each with its models resolved through
``models/models.yaml`` and its ONNX Runtime sessions created once for the run. Every analyzer gets
a cache ``version`` naming its models and the settings that change what it reports, so cached
detections are reused exactly when they would come out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tagger.analyzers.runtime import RuntimeOptions
from tagger.config import Config
from tagger.detections import Analyzer, Detection

if TYPE_CHECKING:
    from tagger.media.frames import Frame

CODE_VERSION = {"faces": "1", "content": "1", "text": "1"}
"""Bumped when an analyzer's pre- or post-processing changes its output for the same models."""

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


def _version(analyzer: str, *model_ids: str) -> str:
    """``<model>@<version>+...:c<code version>``."""
    from tagger.analyzers.models import load_manifest

    manifest = load_manifest()
    models = "+".join(f"{model_id}@{manifest[model_id].version}" for model_id in model_ids)
    return f"{models}:c{CODE_VERSION[analyzer]}"


MODELS = {"faces": ("yunet", "sface"), "content": ("nudenet_320n",), "text": ("ppocr_v4",)}
"""The models behind each analyzer: with ``CODE_VERSION``, what its cache version names."""


def faces_version() -> str:
    """The cache and gallery version of the faces analyzer (its models and code)."""
    return _version("faces", *MODELS["faces"])


def analyzer_versions() -> dict[str, str]:
    """Every analyzer's current cache version, configured or not, without loading any model (what
    cache pruning compares stored detections with)."""
    return {name: _version(name, *models) for name, models in MODELS.items()}


def build_analyzers(config: Config, data_dir: Path, log: Log) -> list[VersionedAnalyzer]:
    """The analyzers ``config.analyzers`` names (``shots`` is part of the decode pass itself).

    Raises:
        ModelError: a model file is missing or corrupt (the message says how to get it).
    """
    options = RuntimeOptions(threads=config.threads)
    user_dirs = [Path(config.models_dir)] if config.models_dir else []
    user_dirs.append(data_dir / "models")
    download_dir = data_dir / "models" / "downloads"
    built: list[VersionedAnalyzer] = []
    if "faces" in config.analyzers:
        from tagger.analyzers.faces import FaceAnalyzer

        faces = FaceAnalyzer.from_manifest(data_dir, options, log, user_dirs=user_dirs,
                                           allow_download=config.allow_download)
        built.append(VersionedAnalyzer(faces, faces_version()))
    if "content" in config.analyzers:
        from tagger.analyzers.content import ContentAnalyzer

        content = ContentAnalyzer.from_manifest(options, log, user_dirs=user_dirs, download_dir=download_dir,
                                                allow_download=config.allow_download)
        built.append(VersionedAnalyzer(content, _version("content", *MODELS["content"])))
    if "text" in config.analyzers:
        from tagger.analyzers.text import TextAnalyzer

        text = TextAnalyzer.from_manifest(options, log, user_dirs=user_dirs, download_dir=download_dir,
                                          allow_download=config.allow_download)
        built.append(VersionedAnalyzer(text, _version("text", *MODELS["text"])))
    return built
