"""Dispatch between the Stash plugin protocol (no arguments) and the command line.

Standard library only at import time; the analysis stack is imported only after the runtime
bootstrap has made sure it exists (and re-executed us inside it when needed).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from tagger.errors import TaggerError
from tagger.stashside.bootstrap import data_dir, ensure_runtime
from tagger.stashside.protocol import (
    PLUGIN_INPUT_ENV,
    PROGRESS_BASE_ENV,
    PluginInput,
    StashLog,
    guard_stdout,
    parse_plugin_input,
)


def main(argv: list[str], plugin_dir: Path) -> int:
    """Run as Stash's plugin when there are no arguments, else as the command line."""
    if argv:
        from tagger.apps.cli import main as cli_main

        return cli_main(argv, plugin_dir)
    carried = os.environ.pop(PLUGIN_INPUT_ENV, None)
    if carried is None and sys.stdin.isatty():
        from tagger.apps.cli import main as cli_main

        return cli_main(["--help"], plugin_dir)
    return plugin_main(carried if carried is not None else sys.stdin.read(), plugin_dir)


def plugin_main(stdin_text: str, plugin_dir: Path) -> int:
    """Stash's raw interface: whatever happens, exactly one JSON object on stdout."""
    guard = guard_stdout()
    log = StashLog()
    try:
        plugin_input = parse_plugin_input(stdin_text)
    except ValueError as error:  # malformed stdin; a ValueError from the run itself is a bug
        log.error(str(error))
        guard.write_result(None, str(error))
        return 1
    try:
        output = _run_plugin(plugin_input, stdin_text, plugin_dir, log, guard.restore)
    except TaggerError as error:
        log.error(str(error))
        guard.write_result(None, str(error))
        return 1
    except Exception as error:  # a bug: the message for Stash, the traceback for the log
        for line in traceback.format_exc().splitlines():
            log.error(line)
        guard.write_result(None, f"internal error ({type(error).__name__}: {error}); "
                                 "the traceback is in Stash's log")
        return 1
    guard.write_result(output, None)
    return 0


def _run_plugin(plugin_input: PluginInput, stdin_text: str, plugin_dir: Path, log: StashLog,
                restore_stdout: Any) -> Any:
    data = data_dir(plugin_dir)
    from tagger.stashside.relay import forward, worker_target

    target = worker_target(plugin_input, plugin_dir, data)
    if target is not None:  # the analysis runs on the worker; this process only relays
        return forward(target, stdin_text, log)
    if plugin_input.mode == "hook":
        from tagger.stashside.hook import handle_hook

        return handle_hook(plugin_input, data, log)

    def before_exec() -> None:
        os.environ[PLUGIN_INPUT_ENV] = stdin_text
        os.environ[PROGRESS_BASE_ENV] = f"{log.last_progress:.4f}"
        restore_stdout()

    script = str(plugin_dir / "ai_tagger.py")
    ensure_runtime(plugin_dir, data, [script], log.log, log.progress, before_exec=before_exec)
    from tagger.run.runner import run_plugin_task

    return run_plugin_task(plugin_input, plugin_dir, data, log)
