"""Makes sure the analysis runtime is there, then runs the tagger inside it.

Standard library only: this is what Stash's own Python (maybe a bare Alpine one) executes first.

When the analysis packages cannot be imported, a plugin-local virtual environment is created in the
plugin's data folder (``<data>/venv``), ``requirements.txt`` is installed into it (progress in
Stash's log), and the entry re-executes itself with the venv's Python (same process id, so Stash's
Stop still kills the right process). A stamp with the requirements' hash marks a finished install:
a later start with the stamp in place costs no install time, and an install killed half-way is
simply finished by the next start (pip is idempotent). A file lock keeps two starts from installing
at once; the kernel releases it when a process dies, so it can never be left stuck.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tagger.errors import RuntimeSetupError
from tagger.stashside.filelock import FileLock

RUNTIME_MODULES = ("numpy", "yaml", "av", "cv2", "onnxruntime", "scenedetect")
"""Modules the analysis engine imports; if any is missing, the runtime is (re)installed."""

REQUIREMENT_FILES = ("requirements.txt", "requirements-nodeps.txt")
"""Installed in this order; the second with --no-deps (see its header)."""

BOOTSTRAPPED_ENV = "AI_TAGGER_BOOTSTRAPPED"
"""Set before re-executing in the venv, so a broken venv fails instead of looping."""

DATA_DIR_ENV = "AI_TAGGER_DATA_DIR"
"""Overrides where the tagger keeps its venv, cache, journal and queue."""

STAMP_NAME = ".ai_tagger_installed"

INSTALL_SHARE = 0.1
"""Share of the task's progress bar that a first-run install takes."""

Log = Callable[[str, str], None]  # (level, message)


def data_dir(plugin_dir: Path) -> Path:
    """The tagger's data folder: $AI_TAGGER_DATA_DIR, else ``<plugin>/data`` (shared by the plugin
    and the command line run from the same folder), else a per-user folder when the plugin folder
    is read-only."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    candidate = plugin_dir / "data"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return candidate
    except OSError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "stash-ai-tagger"


def missing_modules() -> list[str]:
    """Runtime modules this interpreter cannot import."""
    return [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_hash(plugin_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in REQUIREMENT_FILES:
        path = plugin_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def is_musl() -> bool:
    """True on musl libc (Alpine, as in Stash's official Docker image)."""
    if platform.system() != "Linux":
        return False
    libc, _ = platform.libc_ver()
    return libc != "glibc" and any(Path("/lib").glob("ld-musl-*"))


def ensure_runtime(plugin_dir: Path, data: Path, argv: list[str], log: Log,
                   progress: Callable[[float], None], *, install: bool = True,
                   before_exec: Callable[[], None] = lambda: None) -> None:
    """Return when this interpreter can run the engine; otherwise install and/or re-exec.

    Arguments:
        argv: the arguments to re-execute with (``sys.argv``).
        install: False on paths that must stay fast (hooks): never install, only re-exec.
        before_exec: called just before the process is replaced (restore stdout, set env).

    Raises:
        RuntimeSetupError: the runtime cannot be installed here (the message says what to do).
    """
    missing = missing_modules()
    if not missing:
        return
    venv = data / "venv"
    python = venv_python(venv)
    stamp = venv / STAMP_NAME
    wanted = requirements_hash(plugin_dir)
    if os.environ.get(BOOTSTRAPPED_ENV) == "1":
        raise RuntimeSetupError(
            f"the tagger's environment {venv} is incomplete (cannot import {', '.join(missing)}). "
            f"Delete the folder {venv} and run the task again to reinstall it."
        )
    if not (python.exists() and _read(stamp) == wanted):
        if not install:
            raise RuntimeSetupError("the analysis runtime is not installed yet; run any task from "
                                    "Stash's Tasks page once to install it")
        _check_can_install(missing)
        with FileLock(data / "bootstrap.lock", wait_s=3600):
            if not (python.exists() and _read(stamp) == wanted):  # another run may have finished it
                _install(plugin_dir, venv, wanted, log, progress)
    log("debug", f"running in the tagger's environment {venv}")
    os.environ[BOOTSTRAPPED_ENV] = "1"
    before_exec()
    sys.stderr.flush()
    os.execv(str(python), [str(python), *argv])


def _check_can_install(missing: list[str]) -> None:
    if is_musl():
        raise RuntimeSetupError(
            "this Python runs on musl libc (Alpine, e.g. Stash's official Docker image), where "
            f"the analysis packages ({', '.join(missing)}) have no wheels. Point Stash's Python "
            "path (Settings > System > Application Paths) at a glibc Python 3.9+, or run the "
            "analysis on another machine (worker_url)."
        )
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        raise RuntimeSetupError(
            f"{sys.executable} cannot create virtual environments (no venv/ensurepip module). "
            "Install it (Debian/Ubuntu: apt install python3-venv) or point Stash's Python path at "
            "a Python that has it."
        )


def _install(plugin_dir: Path, venv: Path, wanted: str, log: Log,
             progress: Callable[[float], None]) -> None:
    started = time.monotonic()
    log("info", f"installing the analysis runtime into {venv} (first run only; a few minutes)")
    progress(0.01)
    python = venv_python(venv)
    if venv.exists() and not python.exists():
        shutil.rmtree(venv, ignore_errors=True)  # a venv killed before its python existed
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "creating the virtual environment", log)
    (venv / STAMP_NAME).unlink(missing_ok=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off"]
    steps = [([*pip, "-r", str(plugin_dir / "requirements.txt")], "installing requirements.txt")]
    if (plugin_dir / "requirements-nodeps.txt").exists():
        steps.append(([*pip, "--no-deps", "-r", str(plugin_dir / "requirements-nodeps.txt")],
                      "installing requirements-nodeps.txt"))
    for index, (command, what) in enumerate(steps):
        _run(command, what, log)
        progress(0.01 + INSTALL_SHARE * (index + 1) / len(steps))
    tmp = venv / (STAMP_NAME + ".tmp")
    tmp.write_text(wanted)
    os.replace(tmp, venv / STAMP_NAME)
    log("info", f"analysis runtime installed in {time.monotonic() - started:.0f} s")


def _run(command: list[str], what: str, log: Log) -> None:
    """Run an install step; its output goes to the log, never to our stdout."""
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as error:
        raise RuntimeSetupError(f"{what} failed: cannot start {command[0]}: {error}") from error
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if line:
            tail = ([*tail, line])[-15:]
            if line.startswith(("Collecting", "Installing", "Successfully")):
                log("info", line[:300])
    if process.wait() != 0:
        details = "\n".join(tail)
        hint = _install_hint(details)
        raise RuntimeSetupError(f"{what} failed (exit {process.returncode}). {hint}\n{details}")


def _install_hint(output: str) -> str:
    lowered = output.lower()
    if "no space left" in lowered:
        return "The disk is full: free some space (or set AI_TAGGER_DATA_DIR to a larger disk)."
    if "no matching distribution" in lowered or "could not find a version" in lowered:
        return ("No wheels for this Python/platform: point Stash's Python path at a glibc "
                "Python 3.9-3.13, or run the analysis on another machine (worker_url).")
    if "network" in lowered or "connection" in lowered or "resolve" in lowered:
        return "PyPI could not be reached: check this machine's internet access and retry."
    return "See the lines below."


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
