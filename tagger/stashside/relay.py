"""Stash's side of the worker: forward the task, relay its log and progress, print its result.

Standard library only: this runs in Stash's own Python (the official image is Alpine, where the
analysis stack does not install). When a worker URL is configured the plugin posts the JSON Stash
gave it on stdin to the worker (``tagger.apps.worker``), reads the job's event stream and writes each
log line and progress value to Stash in the log protocol, and returns the job's output as its own.

Where the worker URL and token come from, lowest first: ``worker_url`` / ``worker_token`` in the
plugin folder's config.yaml, ``AI_TAGGER_WORKER_URL`` / ``AI_TAGGER_WORKER_TOKEN``, then the
plugin's settings in Stash (Worker URL, Worker token) — the order the engine reads its config in.
An https worker's certificate is checked against the system's CAs, or against ``worker_tls_ca`` /
``AI_TAGGER_WORKER_TLS_CA`` (a PEM file; a relative path is in the plugin folder), which may be the
worker's own self-signed certificate.

A dropped stream is re-read from the last event seen (the job goes on on the worker meanwhile); if
the worker stays away, the task fails naming the URL, and running it again resumes where it stopped
(the write-back journal makes that safe). Stash's Stop is a SIGKILL, which cannot tell the worker:
the worker cancels a job nobody has listened to for ``worker_grace`` seconds. A SIGTERM or Ctrl-C
does tell it first.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tagger.errors import TaggerError
from tagger.stashside.protocol import PLUGIN_ID, PluginInput, StashLog

ON_WORKER_ENV = "AI_TAGGER_ON_WORKER"
"""Set on the worker for its jobs: they run there and are never forwarded again."""

PING_S = 5.0
"""The worker sends a keep-alive line this often on an idle stream; silence for 3x this is a dead
stream (tagger.apps.worker uses this constant too)."""

RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before each attempt to re-read a dropped stream (about 15 s in all, inside the grace)."""

SETTING_KEYS = {"workerUrl": "url", "workerToken": "token"}
FILE_KEYS = {"worker_url": "url", "worker_token": "token", "worker_tls_ca": "ca"}
ENV_KEYS = {"AI_TAGGER_WORKER_URL": "url", "AI_TAGGER_WORKER_TOKEN": "token"}
OPTIONAL_ENV_KEYS = {"AI_TAGGER_WORKER_TLS_CA": "ca"}
"""Only for an https worker whose certificate the system does not trust."""


class WorkerError(TaggerError):
    """The worker could not be reached, refused us, or went away during a job."""


@dataclass(frozen=True)
class WorkerTarget:
    url: str
    token: str = field(repr=False)
    ca: str = ""
    """A PEM file of certificates to trust for an https URL; empty: the system's CAs."""


def worker_target(plugin_input: PluginInput, plugin_dir: Path, data_dir: Path) -> WorkerTarget | None:
    """The worker this task goes to, or None to run it here."""
    if os.environ.get(ON_WORKER_ENV) == "1":
        return None
    found: dict[str, str] = {}
    found.update(_from_config_file(plugin_dir))
    found.update({key: os.environ[name] for name, key in {**ENV_KEYS, **OPTIONAL_ENV_KEYS}.items()
                  if os.environ.get(name)})
    found.update(_from_stash_settings(plugin_input, data_dir))
    url = found.get("url", "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise WorkerError(f"worker_url: {url!r} is not a URL; write it as http://host:port")
    ca = found.get("ca", "").strip()
    if ca and not Path(ca).is_absolute():
        ca = str(plugin_dir / ca)  # Stash starts the plugin in its own working folder, not ours
    return WorkerTarget(url=url, token=found.get("token", "").strip(), ca=ca)


def _from_config_file(plugin_dir: Path) -> dict[str, str]:
    """worker_url / worker_token from config.yaml: top-level scalars, read without PyYAML here."""
    from tagger.config import config_text  # stdlib only, like this module

    path = Path(os.environ.get("AI_TAGGER_CONFIG") or plugin_dir / "config.yaml")
    try:
        text = config_text(path)
    except OSError:
        return {}
    found = {}
    for name, key in FILE_KEYS.items():
        match = re.search(rf"^{name}:[ \t]*(.*?)[ \t]*(?:#.*)?$", text, re.MULTILINE)
        if match:
            found[key] = match.group(1).strip().strip("'\"")
    return found


def _from_stash_settings(plugin_input: PluginInput, data_dir: Path) -> dict[str, str]:
    if plugin_input.mode == "hook":
        # A scan fires the hook once per new file: the settings cache the hook itself uses.
        from tagger.errors import StashError
        from tagger.stashside.hook import cached_settings, hook_client
        from tagger.stashside.store import Store

        with Store(data_dir / "tagger.sqlite") as store:
            try:
                settings = cached_settings(store, hook_client(plugin_input), time.time())
                if settings.get("workerUrl") and "workerToken" not in settings:
                    # The cache keeps no secret: a worker configured in Stash needs its token asked.
                    settings = hook_client(plugin_input).plugin_settings(PLUGIN_ID)
            except StashError:
                settings = {}  # the hook runs here, keeps the scene queued and says Stash is away
    else:
        from tagger.stashside.stash import StashClient

        client = StashClient(url=plugin_input.server.url, session_cookie=plugin_input.server.session_cookie)
        settings = client.plugin_settings(PLUGIN_ID)
    return {
        key: str(settings[name])
        for name, key in SETTING_KEYS.items()
        if isinstance(settings.get(name), str) and settings[name].strip()
    }


class Relay:
    """One task forwarded to one worker."""

    def __init__(self, target: WorkerTarget, log: StashLog) -> None:
        self.target = target
        self.log = log
        self.job_id: str | None = None
        self._tls: ssl.SSLContext | None = None

    def run(self, stdin_object: dict[str, Any]) -> Any:
        """Post the task, relay it to the end, and return its output (its error is raised)."""
        job = self.request("POST", "/jobs", {"input": stdin_object, "detach": False})
        self.job_id = str(job["id"])
        self.log.info(f"AI Tagger: running on the worker at {self.target.url} (job {self.job_id})")
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, self._cancel_and_exit)
        try:
            end = self._follow()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if end.get("error"):
            raise WorkerError(str(end["error"]))
        return end.get("output")

    def cancel(self) -> None:
        if self.job_id:
            self.request("POST", f"/jobs/{self.job_id}/cancel", {}, timeout=3.0)

    def _cancel_and_exit(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(WorkerError):  # else the worker's grace period cancels it
            self.cancel()
        raise WorkerError(f"stopped by signal {signum}; job {self.job_id} on {self.target.url} cancelled")

    def _follow(self) -> dict[str, Any]:
        """Read the job's events from the last one seen until its end, re-connecting when dropped."""
        after = 0
        failures = 0
        while True:
            try:
                with self._open(f"/jobs/{self.job_id}/events?after={after}", timeout=3 * PING_S) as stream:
                    failures = 0
                    for raw in stream:
                        event = json.loads(raw)
                        after = int(event.get("seq") or after)
                        if event.get("type") == "log":
                            self.log.log(str(event.get("level") or "info"), str(event.get("message") or ""))
                        elif event.get("type") == "progress":
                            self.log.progress(float(event.get("value") or 0.0))
                        elif event.get("type") == "end":
                            return event
                reason = "the worker closed the stream before the job ended"
            except WorkerError:
                raise
            except (OSError, http.client.HTTPException, ValueError) as error:
                reason = _describe(error)
            if failures >= len(RECONNECT_DELAYS_S):
                raise WorkerError(
                    f"the worker at {self.target.url} stopped answering during job {self.job_id} "
                    f"({reason}); run the task again: it resumes where it stopped"
                )
            time.sleep(RECONNECT_DELAYS_S[failures])
            failures += 1

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        with self._open(path, method=method, body=body, timeout=timeout) as response:
            return json.loads(response.read())

    def _open(
        self, path: str, *, method: str = "GET", body: dict[str, Any] | None = None, timeout: float
    ) -> Any:
        request = urllib.request.Request(
            self.target.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.target.token}", "Content-Type": "application/json"},
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout, context=self._tls_context())
        except urllib.error.HTTPError as error:
            detail = _error_text(error)
            if error.code == 401:
                raise WorkerError(
                    f"the worker at {self.target.url} refused the token ({detail}); set the "
                    "plugin's 'Worker token' to the worker's worker_token"
                ) from None
            if error.code == 404 and self.job_id:
                raise WorkerError(
                    f"the worker at {self.target.url} no longer knows job {self.job_id} "
                    "(it restarted?); run the task again: it resumes where it stopped"
                ) from None
            raise WorkerError(
                f"the worker at {self.target.url} answered {error.code} to {method} {path}: {detail}"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise WorkerError(
                    f"the worker at {self.target.url} presented a certificate this machine does not "
                    f"trust ({reason.verify_message}); give its certificate (the worker's "
                    "worker_tls_cert) or its CA as worker_tls_ca in config.yaml or "
                    "AI_TAGGER_WORKER_TLS_CA"
                ) from None
            if self.job_id is not None and path.startswith(f"/jobs/{self.job_id}/events"):
                raise  # _follow re-connects
            raise WorkerError(
                f"the worker at {self.target.url} is not reachable ({_describe(error)}); start "
                "it (python ai_tagger.py serve) or clear the plugin's 'Worker URL'"
            ) from None


    def _tls_context(self) -> ssl.SSLContext | None:
        """For an https worker: the system's CAs, or only ``worker_tls_ca``'s certificates."""
        if not self.target.url.startswith("https://"):
            return None
        if self._tls is None:
            try:
                self._tls = ssl.create_default_context(cafile=self.target.ca or None)
            except OSError as error:  # ssl.SSLError too: not PEM
                raise WorkerError(
                    f"worker_tls_ca: {self.target.ca!r} cannot be read as PEM certificates "
                    f"({error.strerror or error}); give the worker's certificate (its worker_tls_cert) "
                    "or its CA"
                ) from None
        return self._tls


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("error") or error.reason)
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def _describe(error: BaseException) -> str:
    from tagger.stashside.stash import describe_os_error

    reason = getattr(error, "reason", None) or error
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"no answer for {3 * PING_S:g} s"
    return describe_os_error(error)


def forward(target: WorkerTarget, stdin_text: str, log: StashLog) -> Any:
    """Run the task Stash gave us (its stdin text) on the worker; return the worker's output."""
    return Relay(target, log).run(json.loads(stdin_text))
