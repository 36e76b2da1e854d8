"""The model manifest (``models/models.yaml``) and where each model file comes from.

Resolution order for every file: the user's models folders, then the installed package that ships
it, then a download (only when the configuration allows it). Shipped and downloaded files must
match the manifest's sha256; a file in the user's own folder is used as it is and its hash becomes
part of the model's version, so cached results from another file are never mixed with its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError, TaggerError

MANIFEST = Path(__file__).resolve().parents[2] / "models" / "models.yaml"
"""The manifest shipped with the plugin."""

DOWNLOAD_TIMEOUT_S = 60
"""Seconds without data before a download is abandoned."""


class ModelError(TaggerError):
    """A model file is missing, corrupt, or cannot be fetched."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, and the places it may come from."""

    name: str
    sha256: str
    package: str | None = None
    path: str | None = None  # inside the package's folder
    url: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One model of the manifest."""

    id: str
    task: str
    version: str
    licence: str
    files: tuple[ModelFile, ...]
    convert: str | None = None
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedFile:
    """A model file on disk, and how it was found (``user``, ``package`` or ``download``)."""

    path: Path
    origin: str
    sha256: str


def load_manifest(path: Path = MANIFEST) -> dict[str, ModelSpec]:
    """Read and check the model manifest."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    models = {}
    for model_id, entry in (data.get("models") or {}).items():
        try:
            files = tuple(ModelFile(**item) for item in entry["files"])
            models[model_id] = ModelSpec(
                id=model_id, task=entry["task"], version=str(entry["version"]),
                licence=entry["licence"], files=files, convert=entry.get("convert"),
                input=dict(entry.get("input") or {}),
            )
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{path}: model {model_id!r} is malformed ({error})") from error
    return models


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_file(file: ModelFile) -> Path | None:
    """The file inside its installed package, or None when the package is not installed."""
    if not file.package or not file.path:
        return None
    spec = importlib.util.find_spec(file.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / file.path
    return candidate if candidate.is_file() else None


def resolve_file(file: ModelFile, *, user_dirs: Sequence[Path] = (), download_dir: Path | None = None,
                 allow_download: bool = False, log: Callable[[str, str], None] = lambda *_: None
                 ) -> ResolvedFile:
    """Find ``file`` (see the module docstring for the order).

    Raises:
        ModelError: not found anywhere allowed, or a shipped/downloaded file has the wrong hash.
    """
    for folder in user_dirs:
        candidate = folder / file.name
        if candidate.is_file():
            digest = sha256_of(candidate)
            if digest != file.sha256:
                log("info", f"model file {candidate} is the user's own version ({digest[:12]})")
            return ResolvedFile(candidate, "user", digest)
    shipped = package_file(file)
    if shipped is not None:
        digest = sha256_of(shipped)
        if digest != file.sha256:
            raise ModelError(f"{shipped} (from package {file.package}) has sha256 {digest[:12]}…, "
                             f"expected {file.sha256[:12]}…: reinstall that package")
        return ResolvedFile(shipped, "package", digest)
    if download_dir is not None:
        cached = download_dir / file.name
        if cached.is_file() and sha256_of(cached) == file.sha256:
            return ResolvedFile(cached, "download", file.sha256)
        if allow_download and file.url:
            return ResolvedFile(download(file.url, cached, file.sha256, log=log), "download", file.sha256)
    where = f"install the package {file.package!r}, " if file.package else ""
    raise ModelError(f"model file {file.name} not found: {where}put it in the models folder"
                     + (", or set allow_download: true" if file.url else ""))


def download(url: str, target: Path, sha256: str, *, log: Callable[[str, str], None] = lambda *_: None,
             opener: Callable[..., Any] = urllib.request.urlopen) -> Path:
    """Stream ``url`` to ``target``: a temporary file, verified, then renamed into place.

    A killed download leaves only the temporary file, which the next attempt overwrites.

    Raises:
        ModelError: the download failed or its sha256 differs (the partial file is removed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    log("info", f"downloading {url}")
    try:
        with opener(url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ModelError(f"download of {url} failed: {error}") from error
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(f"download of {url} has sha256 {digest.hexdigest()[:12]}…, expected "
                         f"{sha256[:12]}…; nothing was kept")
    os.replace(partial, target)
    return target
