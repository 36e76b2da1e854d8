"""Whatever a library or a child process prints, Stash reads exactly one JSON object on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_prints_and_child_processes_land_on_stderr_not_in_the_result() -> None:
    script = textwrap.dedent(f"""
        import os, subprocess, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tagger.stashside.protocol import guard_stdout
        guard = guard_stdout()
        print("a library that prints")
        os.write(1, b"C code writing to fd 1\\n")
        subprocess.run([sys.executable, "-c", "print('a child process')"])
        guard.write_result({{"ok": True}}, None)
        print("after the result")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == {"output": {"ok": True}, "error": None}
    assert done.stdout.count("\n") == 1
    for text in ("a library that prints", "C code writing to fd 1", "a child process", "after the result"):
        assert text in done.stderr


def test_the_real_stdout_is_not_inherited_by_children() -> None:
    """A grandchild that outlives us must not hold the pipe Stash waits on."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tagger.stashside.protocol import guard_stdout
        guard = guard_stdout()
        inheritable = []
        for name in os.listdir("/proc/self/fd"):
            try:
                if int(name) > 2 and os.get_inheritable(int(name)):
                    inheritable.append(int(name))
            except OSError:
                pass  # the descriptor listdir itself used
        guard.write_result(inheritable, None)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == {"output": [], "error": None}, done.stderr
