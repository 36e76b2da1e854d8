"""Run a raw-interface plugin the way Stash does (pkg/plugin/raw.go, common/msg.go,
pkg/logger/plugin.go, as summarised in the shared STASH.md).

- The command is the manifest's ``exec`` (+ the task's ``execArgs``) with ``{pluginDir}``
  substituted; ``python``/``python3`` as ``exec[0]`` becomes the configured interpreter.
- The working directory is not the plugin's (a fresh temp dir); ``PYTHONPATH`` is the plugin
  dir's parent. One JSON object goes to stdin, then stdin is closed.
- stdout is read to EOF (so a grandchild holding it keeps the run hanging), then decoded like
  Go's ``json.Unmarshal`` into ``{Output, Error}`` (keys matched case-insensitively); if that
  fails the whole text is the output. A failed exit without ``error`` reads ``exit status N``
  (``signal: killed`` after SIGKILL).
- stderr lines: ``\\x01`` + level + ``\\x02`` + text (t d i w e; ``p`` = progress); other lines
  at the ``errLog`` level. A line over 64 KiB stops the reader, as bufio.Scanner does.
- ``kill_after`` sends SIGKILL to the direct child only, like Stop in Stash's job list.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .manifest import ERR_LOG_LEVELS, load_manifest
from .server import StashTestServer

MAX_LINE = 64 * 1024
"""bufio.Scanner's default maximum token size in Stash's stderr reader."""


@dataclass
class PluginRun:
    """The outcome of one plugin run, as Stash would see it."""

    returncode: int | None
    output: Any
    error: str | None
    log: list[tuple[str, str]] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    wall: float = 0.0
    timed_out: bool = False
    stderr_reader_broken: bool = False


def build_command(manifest: dict[str, Any], plugin_dir: Path, python: str,
                  extra_args: list[str] | None = None) -> list[str]:
    """Build the argv Stash would exec for this manifest."""
    command = [a.replace("{pluginDir}", str(plugin_dir))
               for a in [*(manifest.get("exec") or []), *(extra_args or [])]]
    if command and command[0] in ("python", "python3"):
        command[0] = python
    return command


def server_connection(server: StashTestServer | None, cookie: str | None, config_dir: Path,
                      plugin_dir: Path) -> dict[str, Any]:
    """The ``server_connection`` object Stash writes (no ApiKey; Host 0.0.0.0)."""
    conn: dict[str, Any] = {"Scheme": "http", "Host": "0.0.0.0",
                            "Port": server.port if server else 9999,
                            "Dir": str(config_dir), "PluginDir": str(plugin_dir)}
    value = cookie if cookie is not None else (server.session_cookie if server else None)
    if value:
        conn["SessionCookie"] = {
            "Name": "session", "Value": value, "Path": "", "Domain": "",
            "Expires": "0001-01-01T00:00:00Z", "RawExpires": "", "MaxAge": 0, "Secure": False,
            "HttpOnly": False, "SameSite": 0, "Raw": "", "Unparsed": None}
    return conn


def decode_output(stdout: str) -> tuple[Any, str | None]:
    """Decode stdout like Go's json.Unmarshal into ``common.PluginOutput``."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return stdout, None
    if data is None:
        return None, None
    if not isinstance(data, dict):
        return stdout, None
    output = _go_field(data, "output")
    error = _go_field(data, "error")
    if error is not None and not isinstance(error, str):
        return stdout, None
    return output, error


def _go_field(data: dict[str, Any], name: str) -> Any:
    """Go matches JSON keys to struct fields exactly first, then case-insensitively."""
    if name in data:
        return data[name]
    for key, value in data.items():
        if key.lower() == name:
            return value
    return None


def parse_log_line(line: str, default_level: str) -> tuple[str, str]:
    """Split one stderr line into (level letter, text) by Stash's rules."""
    if len(line) >= 3 and line[0] == "\x01" and line[2] == "\x02":
        return line[1], line[3:]
    return default_level, line


class _StderrReader(threading.Thread):
    """Reads stderr line by line, as Stash's plugin logger does, while the child runs."""

    def __init__(self, stream: IO[bytes], default_level: str) -> None:
        """Start reading ``stream``; unprefixed lines go to ``default_level``."""
        super().__init__(daemon=True)
        self.stream, self.default_level = stream, default_level
        self.raw = bytearray()
        self.log: list[tuple[str, str]] = []
        self.progress: list[float] = []
        self.broken = False
        self.start()

    def run(self) -> None:
        """Consume lines until EOF or until a line is too long (then stop reading)."""
        while True:
            line = self.stream.readline(MAX_LINE + 1)
            if not line:
                return
            self.raw.extend(line)
            if len(line.rstrip(b"\r\n")) > MAX_LINE:
                self.broken = True
                self.log.append(("e", "error reading plugin output: "
                                      "bufio.Scanner: token too long"))
                return
            self._handle(line.decode("utf-8", "replace").rstrip("\r\n"))

    def _handle(self, text: str) -> None:
        """Record one log line or progress value."""
        if not text:
            return
        level, message = parse_log_line(text, self.default_level)
        if level == "p":
            with contextlib.suppress(ValueError):
                self.progress.append(float(message))
            return
        self.log.append((level, message))


def _read_all(stream: IO[bytes], sink: bytearray) -> None:
    """Read a stream to EOF into ``sink``."""
    for chunk in iter(lambda: stream.read(65536), b""):
        sink.extend(chunk)


def _exit_error(returncode: int | None) -> str:
    """Go's ``exec.ExitError`` text for a finished process."""
    if returncode is not None and returncode < 0:
        name = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated"}.get(
            signal.Signals(-returncode), signal.Signals(-returncode).name.lower())
        return f"signal: {name}"
    return f"exit status {returncode}"


def run_plugin(
    plugin_dir: Path, manifest_name: str, args: dict[str, Any],
    server: StashTestServer | None, *, cookie: str | None = None,
    env: dict[str, str] | None = None, timeout: float = 120, kill_after: float | None = None,
    python: str = sys.executable, exec_args: list[str] | None = None,
    config_dir: Path | None = None, on_start: Callable[[int], None] | None = None,
) -> PluginRun:
    """Run ``<plugin_dir>/<manifest_name>`` with ``args`` as Stash would.

    Arguments:
        manifest_name: the ``.yml`` file name (with or without the extension).
        args: the ``args`` object (use ``task_args``/``hook_args`` for Stash's defaults).
        server: the fake Stash the plugin should talk to (None: port 9999, nothing there).
        cookie: session cookie value to send (default: the server's, if configured).
        env: extra environment variables.
        timeout: overall limit; the child's process group is killed after it.
        kill_after: SIGKILL the direct child after this many seconds (Stash's Stop).
        exec_args: the task's/hook's ``execArgs`` to append.
        config_dir: Stash's config dir to report (default: a fresh temp dir).
        on_start: called with the child's pid once it runs (e.g. to kill it from the server).
    """
    plugin_dir = Path(plugin_dir).resolve()
    name = manifest_name if manifest_name.endswith(".yml") else manifest_name + ".yml"
    manifest = load_manifest(plugin_dir / name)
    default_level = ERR_LOG_LEVELS[manifest.get("errLog", "error")]
    command = build_command(manifest, plugin_dir, python, exec_args)
    with tempfile.TemporaryDirectory(prefix="stash-cwd-") as cwd:
        conf = Path(config_dir) if config_dir else Path(cwd) / "stash-config"
        conf.mkdir(parents=True, exist_ok=True)
        stdin = {"server_connection": server_connection(server, cookie, conf, plugin_dir),
                 "args": args}
        child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(plugin_dir.parent)}
        return _execute(command, json.dumps(stdin).encode(), Path(cwd) / "work", child_env,
                        default_level, timeout, kill_after, on_start)


def _execute(command: list[str], stdin: bytes, cwd: Path, env: dict[str, str],
             default_level: str, timeout: float, kill_after: float | None,
             on_start: Callable[[int], None] | None = None) -> PluginRun:
    """Start the child, feed stdin, collect stdout/stderr, apply kill_after and timeout."""
    cwd.mkdir()
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True)
    if on_start is not None:
        on_start(proc.pid)
    err_reader = _StderrReader(proc.stderr, default_level)  # type: ignore[arg-type]
    out = bytearray()
    out_reader = threading.Thread(target=_read_all, args=(proc.stdout, out), daemon=True)
    out_reader.start()
    _feed_stdin(proc, stdin)
    killer = _schedule_kill(proc, kill_after)
    out_reader.join(timeout)
    timed_out = out_reader.is_alive()
    if timed_out:
        _kill_group(proc)
        out_reader.join(5)
    returncode = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
    if killer:
        killer.cancel()
    err_reader.join(1 if err_reader.broken else 5)
    stdout = out.decode("utf-8", "replace")
    output, error = decode_output(stdout)
    if returncode != 0 and error is None:
        error = _exit_error(returncode)
    return PluginRun(returncode=returncode, output=output, error=error, log=err_reader.log,
                     progress=err_reader.progress, stdout=stdout,
                     stderr=err_reader.raw.decode("utf-8", "replace"),
                     wall=time.monotonic() - start, timed_out=timed_out,
                     stderr_reader_broken=err_reader.broken)


def _feed_stdin(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write the input JSON and close stdin (a child that exits early is fine)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _schedule_kill(proc: subprocess.Popen[bytes], delay: float | None) -> threading.Timer | None:
    """SIGKILL the direct child (not its children) after ``delay`` seconds."""
    if delay is None:
        return None
    def kill() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    timer = threading.Timer(delay, kill)
    timer.daemon = True
    timer.start()
    return timer


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Test hygiene after a timeout: kill the child's whole session group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
