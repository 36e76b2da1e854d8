"""Stash's raw plugin protocol: JSON on stdin, one JSON object on stdout, log lines on stderr.

Standard library only: this module runs on the hook path and in Stash's own Python.

- stdin: one JSON object ``{"server_connection": {...}, "args": {...}}`` (see ``PluginInput``).
- stdout: exactly one JSON object ``{"output": any, "error": str | None}``, written once at exit.
  Anything else a library prints to stdout would corrupt it, so ``guard_stdout`` moves file
  descriptor 1 onto stderr for the whole run and keeps a private, non-inheritable copy of the real
  stdout for the final object (child processes never get it either).
- stderr: one message per line, ``\\x01`` + level + ``\\x02`` + text, level in ``t d i w e``;
  ``p`` + a number in 0..1 is progress. Stash reads lines of at most 64 KiB; ours stay far below.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from tagger.redact import redact, register_secret

LEVELS = {"trace": "t", "debug": "d", "info": "i", "warning": "w", "error": "e"}
"""Stash's log level letters, by name."""

MAX_LOG_LINE = 2000
"""Characters per stderr line. Stash breaks at 64 KiB; short lines keep its log readable."""

PLUGIN_ID = "ai_tagger"
"""Stash's id for the plugin: the manifest's file name without .yml (settings, tasks, the zip)."""

PLUGIN_INPUT_ENV = "AI_TAGGER_PLUGIN_INPUT"
"""Environment variable that carries the stdin JSON across a re-exec into the plugin's venv."""

PROGRESS_BASE_ENV = "AI_TAGGER_PROGRESS_BASE"
"""Progress already reported before a re-exec; the new process continues from there."""


@dataclass(frozen=True)
class ServerConnection:
    """How to reach the Stash that started us, as Stash describes it on stdin."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 9999
    session_cookie: tuple[str, str] | None = None
    config_dir: str | None = None
    plugin_dir: str | None = None

    @property
    def url(self) -> str:
        """Base URL of Stash (no trailing slash)."""
        host = self.host
        # Stash listens on 0.0.0.0 (all interfaces) and says so; we connect on loopback.
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class PluginInput:
    """The object Stash writes to a raw plugin's stdin."""

    server: ServerConnection
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return str(self.args.get("mode") or "")

    @property
    def hook_context(self) -> dict[str, Any] | None:
        context = self.args.get("hookContext")
        return context if isinstance(context, dict) else None


def parse_plugin_input(text: str) -> PluginInput:
    """Parse Stash's stdin JSON.

    Raises:
        ValueError: the text is not the object Stash sends (the message says what is missing).
    """
    if not text.strip():
        raise ValueError(
            "no input on stdin: Stash sends a JSON object; to run by hand use a command "
            "such as `python ai_tagger.py analyze VIDEO` (see --help)"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"stdin is not JSON ({error}); Stash sends a JSON object") from error
    if not isinstance(data, dict):
        raise ValueError("stdin JSON is not an object; Stash sends {server_connection, args}")
    connection = data.get("server_connection") or {}
    if not isinstance(connection, dict):
        raise ValueError("server_connection in stdin JSON is not an object")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise ValueError("args in stdin JSON is not an object")
    return PluginInput(server=_parse_connection(connection), args=args)


def _parse_connection(connection: dict[str, Any]) -> ServerConnection:
    cookie = connection.get("SessionCookie")
    session_cookie = None
    if isinstance(cookie, dict) and cookie.get("Value"):
        session_cookie = (str(cookie.get("Name") or "session"), str(cookie["Value"]))
        register_secret(session_cookie[1])
    register_secret(str(connection.get("ApiKey") or ""))
    try:
        port = int(connection.get("Port") or 9999)
    except (TypeError, ValueError) as error:
        raise ValueError(f"server_connection.Port is not a number: {connection.get('Port')!r}") from error
    return ServerConnection(
        scheme=str(connection.get("Scheme") or "http"),
        host=str(connection.get("Host") or "127.0.0.1"),
        port=port,
        session_cookie=session_cookie,
        config_dir=connection.get("Dir") or None,
        plugin_dir=connection.get("PluginDir") or None,
    )


def read_log_line(line: str) -> tuple[str, str | float]:
    """One stderr line of the log protocol, as ``(level name, text)`` or ``("progress", value)``;
    an unprefixed line is an error, as Stash logs it.

    Raises:
        ValueError: a progress line whose value is not a number.
    """
    if len(line) >= 3 and line[0] == "\x01" and line[2] == "\x02":
        letter, text = line[1], line[3:]
        if letter == "p":
            return "progress", min(1.0, max(0.0, float(text)))
        return _LEVEL_NAMES.get(letter, "info"), text
    return "error", line


_LEVEL_NAMES = {letter: name for name, letter in LEVELS.items()}


class StashLog:
    """Writes Stash's log protocol to a stream (stderr), thread-safe, one short line per record.

    Progress is kept monotonic over the whole task: Stash shows a bar that should never go back.
    A task that re-executed itself (after installing its runtime) carries the progress reached in
    ``PROGRESS_BASE_ENV``: the new process's 0..1 then maps onto what is left of the bar.
    """

    def __init__(self, stream: TextIO | None = None, *, plain: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._plain = plain  # people at a terminal read "level: text" instead of control bytes
        self._lock = threading.Lock()
        try:
            self._base = min(1.0, max(0.0, float(os.environ.pop(PROGRESS_BASE_ENV, "0"))))
        except ValueError:
            self._base = 0.0
        self._progress = self._base

    def log(self, level: str, message: str) -> None:
        letter = LEVELS.get(level, "i")
        for line in redact(str(message)).splitlines() or [""]:
            if len(line) > MAX_LOG_LINE:
                line = line[: MAX_LOG_LINE - 1] + "…"
            self._write(f"{level}: {line}" if self._plain else f"\x01{letter}\x02{line}")

    def trace(self, message: str) -> None:
        self.log("trace", message)

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def progress(self, fraction: float) -> None:
        """Report progress in 0..1; values below the last one reported are raised to it."""
        scaled = self._base + (1.0 - self._base) * float(fraction)
        value = min(1.0, max(self._progress, scaled))
        if value <= self._progress and self._progress > 0.0:
            return
        self._progress = value
        if not self._plain:
            self._write(f"\x01p\x02{value:.4f}")

    @property
    def last_progress(self) -> float:
        return self._progress

    def _write(self, line: str) -> None:
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # stderr gone (Stash killed us): nothing left to tell


class StdoutGuard:
    """Keeps stdout for the one final JSON object.

    ``guard_stdout()`` duplicates fd 1 to a private descriptor (not inherited by children), then
    points fd 1 and ``sys.stdout`` at stderr, so prints from any library, C extension or child
    process land in the log, never in the output Stash decodes.
    """

    def __init__(self) -> None:
        sys.stdout.flush()
        self._fd = os.dup(1)  # os.dup makes a non-inheritable descriptor
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._written = False

    def write_result(self, output: Any = None, error: str | None = None) -> None:
        """Write ``{"output": ..., "error": ...}`` once (Stash's plugin result)."""
        self.write_text(json.dumps({"output": output, "error": error}, default=str) + "\n")

    def write_text(self, text: str) -> None:
        """Write the run's one result to the real stdout; later calls are ignored."""
        if self._written:
            return
        self._written = True
        view = memoryview(redact(text).encode("utf-8"))  # masks keep JSON valid: no quotes
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.close(self._fd)

    def restore(self) -> None:
        """Put the real stdout back on fd 1 (before ``exec``, which would lose the private copy)."""
        if not self._written and self._fd != 1:
            sys.stderr.flush()
            os.dup2(self._fd, 1)
            os.close(self._fd)
            self._fd = 1  # should exec fail, the result still goes to the real stdout
            sys.stdout = sys.__stdout__


def guard_stdout() -> StdoutGuard:
    """Start guarding stdout (see ``StdoutGuard``)."""
    return StdoutGuard()
