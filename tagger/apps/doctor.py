"""``ai_tagger.py doctor``: one line per check, each OK or what to fix.

Checks Python, the runtime packages, ONNX Runtime's providers (GPU or not), the model manifest, the
data folder, the configuration, and, when a Stash URL is known, that Stash answers (with its
version), how each of Stash's library folders is read here (through a path mapping, at Stash's own
path, or streamed from Stash), and how a sample scene's file would be read.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagger.errors import TaggerError
from tagger.stashside.bootstrap import RUNTIME_MODULES, data_dir

OK, FIX, INFO = "OK ", "FIX", " - "


def run_doctor(plugin_dir: Path, args: argparse.Namespace, flags: dict[str, Any]) -> tuple[list[str], bool]:
    """All checks; returns the lines and whether nothing needs fixing."""
    results: list[tuple[str, str]] = []
    checks: list[Callable[[], list[tuple[str, str]]]] = [
        _python, _packages, _providers, lambda: _models(plugin_dir), lambda: _data(plugin_dir),
    ]
    for check in checks:
        results.extend(check())
    config, config_lines = _config(plugin_dir, args, flags)
    results.extend(config_lines)
    if config is not None:
        results.extend(_stash(config))
        results.extend(_worker(config))
    lines = [f"{status} {text}" for status, text in results]
    return lines, all(status != FIX for status, _ in results)


def _python() -> list[tuple[str, str]]:
    version = platform.python_version()
    status = OK if sys.version_info >= (3, 9) else FIX
    return [(status, f"Python {version} at {sys.executable}" +
             ("" if status == OK else ": the tagger needs 3.9 or newer"))]


def _packages() -> list[tuple[str, str]]:
    lines = []
    for name in RUNTIME_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as error:  # a broken wheel raises more than ImportError
            lines.append((FIX, f"package {name} cannot be imported ({error}); run any task once from "
                               "Stash to install the runtime, or pip install -r requirements.txt"))
            continue
        lines.append((OK, f"package {name} {getattr(module, '__version__', '')}".rstrip()))
    return lines


def _providers() -> list[tuple[str, str]]:
    try:
        import onnxruntime
    except Exception:
        return []  # already reported by _packages
    providers = onnxruntime.get_available_providers()
    gpu = [p for p in providers if p not in ("CPUExecutionProvider", "AzureExecutionProvider")]
    text = f"ONNX Runtime {onnxruntime.__version__} providers: {', '.join(providers)}"
    if not gpu:
        text += " (CPU only; for an NVIDIA GPU install onnxruntime-gpu in the tagger's environment)"
    return [(OK, text)]


def _models(plugin_dir: Path) -> list[tuple[str, str]]:
    manifest = plugin_dir / "models" / "models.yaml"
    if not manifest.exists():
        return [(INFO, "models: no model manifest in this version; analysis finds shots and "
                       "technical cues only")]
    return [(OK, f"models: manifest {manifest}")]


def _data(plugin_dir: Path) -> list[tuple[str, str]]:
    folder = data_dir(plugin_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        return [(FIX, f"data folder {folder} is not writable ({error.strerror}); set AI_TAGGER_DATA_DIR")]
    free_gb = shutil.disk_usage(folder).free / 1e9
    status = OK if free_gb >= 2 else FIX
    return [(status, f"data folder {folder} ({free_gb:.1f} GB free" +
             (")" if status == OK else "; the runtime and cache need about 2 GB)"))]


def _config(plugin_dir: Path, args: argparse.Namespace,
            flags: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    from tagger.run.runner import load_config
    from tagger.stashside.protocol import StashLog

    try:
        config = load_config(plugin_dir, None, StashLog(sys.stderr, plain=True),
                             config_path=getattr(args, "config", None), flags=flags)
    except TaggerError as error:
        return None, [(FIX, f"configuration: {error}")]
    return config, [(OK, "configuration is valid")]


def _stash(config: Any) -> list[tuple[str, str]]:
    from tagger.stashside.stash import StashClient, media_source

    if not config.stash_url:
        return [(INFO, "Stash: no URL given (--stash-url or stash_url in config.yaml); not checked")]
    client = StashClient(url=config.stash_url, api_key=config.api_key or None, attempts=2)
    try:
        version = client.version()
        lines = [(OK, f"Stash {version} answers at {config.stash_url}")]
        lines += library_lines(client.library_folders(), config)
        first = next(client.iter_scenes(page_size=1), None)
        if first is None:
            return [*lines, (INFO, "Stash has no scenes yet; path mapping not checked")]
        scene = first[0]
        source = media_source(scene, config.map_path, client.auth_headers)
    except TaggerError as error:
        return [(FIX, str(error))]
    file_path = scene.primary_file.path if scene.primary_file else "?"
    if source.via == "path":
        return [*lines, (OK, f"scene {scene.id}: Stash's {file_path} is read here as {source.location}")]
    return [*lines, (INFO, f"scene {scene.id}: {file_path} is not readable here; it will be "
                           "streamed from Stash (slower). Add a path mapping if the files are on "
                           "this machine.")]


def library_lines(folders: list[str], config: Any) -> list[tuple[str, str]]:
    """How each library folder of Stash is read on this machine (a mapping's own folder is checked
    with the configuration)."""
    lines: list[tuple[str, str]] = []
    for folder in folders:
        mapped = config.map_path(folder)
        if mapped is not None and Path(mapped).is_dir():
            lines.append((OK, f"library {folder}: read here as {mapped} (path mapping)"))
        elif mapped is not None:
            lines.append((FIX, f"library {folder}: mapped to {mapped}, which does not exist here; its videos "
                               "would be streamed from Stash (slower). Correct the mapping"))
        elif Path(folder).is_dir():
            lines.append((OK, f"library {folder}: read here at the same path"))
        else:
            lines.append((INFO, f"library {folder}: not on this machine; its videos are streamed from "
                                f"Stash (slower). Add a path mapping {folder}=<this machine's folder> if it "
                                "is here"))
    return lines


def _worker(config: Any) -> list[tuple[str, str]]:
    """With a worker configured: that it answers and takes the token."""
    if not config.worker_url:
        return []
    from tagger.stashside.protocol import StashLog
    from tagger.stashside.relay import Relay, WorkerError, WorkerTarget

    target = WorkerTarget(config.worker_url, config.worker_token, ca=config.worker_tls_ca)
    relay = Relay(target, StashLog(sys.stderr, plain=True))
    try:
        jobs = relay.request("GET", "/jobs")["jobs"]
    except WorkerError as error:
        return [(FIX, str(error))]
    running = sum(job["status"] == "running" for job in jobs)
    return [(OK, f"worker at {config.worker_url} answers and takes the token ({running} job(s) running)")]
