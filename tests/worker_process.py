"""``ai_tagger.py serve`` as a process for tests and benches: start, ask, stop, crash."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.polling import wait_until

TOKEN = "worker-test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Worker:
    """``ai_tagger.py serve`` in its own process group, on a free loopback port; with ``tls``
    (certificate, key) it serves HTTPS and this client trusts that certificate alone."""

    def __init__(self, plugin_dir: Path, data: Path, config: Path, *, grace: float = 30.0, jobs: int = 1,
                 token: str = TOKEN, env: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = data.parent / f"worker-{self.port}.log"
        self._tls = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        tls_env = ({"AI_TAGGER_WORKER_TLS_CERT": str(tls[0]), "AI_TAGGER_WORKER_TLS_KEY": str(tls[1])}
                   if tls else {})
        env = {**os.environ, "AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config),
               "AI_TAGGER_WORKER_TOKEN": token, "AI_TAGGER_WORKER_GRACE": str(grace),
               "AI_TAGGER_WORKER_JOBS": str(jobs), **tls_env, **(env or {})}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(plugin_dir / "ai_tagger.py"), "serve", "--port", str(self.port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(self._healthy, 60, f"the worker at {self.url} to answer /health")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited: {self.log_path.read_text()[-2000:]}")
        try:
            return self.call("GET", "/health", token=None)[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._tls) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def jobs(self) -> list[dict[str, Any]]:
        return self.call("GET", "/jobs")[1]["jobs"]

    def events(self, job_id: str, after: int = 0, stop: Callable[[dict[str, Any]], bool] | None = None
               ) -> list[dict[str, Any]]:
        """Events of a job from ``after``, until its end (or until ``stop(event)``), then hang up."""
        request = urllib.request.Request(f"{self.url}/jobs/{job_id}/events?after={after}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        seen = []
        with urllib.request.urlopen(request, timeout=30, context=self._tls) as stream:
            for line in stream:
                event = json.loads(line)
                if event["type"] == "ping":
                    continue
                seen.append(event)
                if event["type"] == "end" or (stop and stop(event)):
                    break
        return seen

    def log(self) -> str:
        """What the worker wrote to its terminal so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker alone (a crash): its jobs must go with it."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
