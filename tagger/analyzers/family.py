"""What an analyzer family is: one class that says what it needs, builds itself, and analyzes.

A family declares, as class attributes, its ``name`` (the ``analyzers`` option's value, the cache
key, every decision's ``source``), its ``models`` (ids in ``models/models.yaml``), its
``code_version`` (bumped when its pre- or post-processing changes what it reports: with the
models' versions, what its cached detections are stored under), what it ``consumes`` (video frames
today), and its ``default_rules`` when it tags scenes. ``build`` makes an instance for a run from a
``BuildContext`` (the model resolver and the runtime), and ``analyze`` is the ``Analyzer`` protocol
of ``tagger.detections``: sample frames in, detections out.

A tagging family (one with default rules) reports detections of ``kind`` = its ``name``; the engine
decides scene tags and markers from them with its rules, and the planner, findings and evidence
follow each decision's ``source`` back to it. ``tagger.families`` registers the class by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tagger.analyzers.runtime import RuntimeOptions
from tagger.decide.rules import TagRule
from tagger.detections import Detection

if TYPE_CHECKING:
    from tagger.analyzers.models import ResolvedFile
    from tagger.media.frames import Frame

Log = Callable[[str, str], None]

FEEDS: tuple[str, ...] = ("frames",)
"""What the decode pass feeds families (``Family.consumes``): sample frames. An ``audio`` family
would add its feed to the pass (``tagger.engine.one_pass``); until then ``build_analyzers``
refuses a family that consumes anything else, rather than run it on nothing."""


@dataclass(frozen=True)
class BuildContext:
    """What a family builds itself from, for one run.

    Attributes:
        data_dir: the tagger's data folder (converted models live under ``models/``).
        runtime: how ONNX Runtime sessions are made (``create_session``).
        log: (level, message).
        user_dirs: the user's model folders, searched first.
        allow_download: whether a missing model file may be downloaded (sha256-verified).
    """

    data_dir: Path
    runtime: RuntimeOptions
    log: Log
    user_dirs: tuple[Path, ...] = ()
    allow_download: bool = False

    @property
    def download_dir(self) -> Path:
        """Where downloaded model files are kept."""
        return self.data_dir / "models" / "downloads"

    def resolve(self, model_id: str, file_name: str | None = None, *,
                download_dir: Path | None = None) -> ResolvedFile:
        """A file of the manifest's ``model_id`` on disk: its first file, or ``file_name``.

        Raises:
            ModelError: the file cannot be found or is corrupt (the message says how to get it).
            ConfigError: the manifest has no such model or file.
        """
        from tagger.analyzers.models import load_manifest, resolve_file
        from tagger.errors import ConfigError

        spec = load_manifest().get(model_id)
        files = [f for f in spec.files if file_name in (None, f.name)] if spec else []
        if not files:
            raise ConfigError(f"models.yaml has no model {model_id!r}"
                              + (f" with a file {file_name!r}" if file_name and spec else ""))
        return resolve_file(files[0], user_dirs=self.user_dirs, allow_download=self.allow_download,
                            download_dir=download_dir or self.download_dir, log=self.log)


class Family:
    """The base of an analyzer family (see the module docstring); subclasses set ``name``."""

    name: ClassVar[str]
    models: ClassVar[tuple[str, ...]] = ()
    code_version: ClassVar[str] = "1"
    consumes: ClassVar[str] = "frames"

    @classmethod
    def default_rules(cls) -> dict[str, TagRule]:
        """The shipped tag rule per detector label; empty for a family that does not tag scenes."""
        return {}

    @classmethod
    def build(cls, context: BuildContext) -> Family:
        """An instance for one run, its models resolved and sessions made.

        Raises:
            ModelError: a model file is missing or corrupt.
        """
        raise NotImplementedError(f"{cls.__name__}.build")

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        """Detections found in ``batch`` (any number, in any order)."""
        raise NotImplementedError(f"{type(self).__name__}.analyze")
