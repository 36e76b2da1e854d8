"""The analysis on a Ray cluster (``ray_address``): one Ray task per video, writes stay here.

    driver (this process)                         Ray worker processes (any node)
    scene -> media source -> VideoJob ──task──>   analyse_video: the process's Engine (built once
                                                  per configuration), engine.analyze -> outcome
    ray.wait: outcomes as they finish   <──────   EngineResult, or the scene's error, or
    (needs the stream: the same job again,        "cannot see this file, send the stream's
     now with the stream's headers)               headers"
    plan, apply, journal, learn (tagger.run.write_scene)

- ``ray_address``: ``local`` starts a private cluster on this machine for the run (``ray.init``
  with address ``local``); anything else (``auto``, ``host:6379``, ``ray://host:10001``) joins an
  existing cluster, which then gets this plugin's code as the job's working directory.
- A task that dies with its worker or node is run again elsewhere (``MAX_RETRIES``); an error of
  the analysis itself (an unreadable file) is that scene's outcome and is not retried.
- A video asks for ``ray_gpus`` GPUs only when the cluster has GPUs.
- At most ``IN_FLIGHT_PER_SLOT`` tasks per slot (a CPU, or a task's share of the GPUs) are
  submitted at a time, so a backlog of 100,000 scenes is read from Stash as the cluster works.
- The plugin's output stays one JSON object on stdout: Ray's own logging and what its driver
  prints (a worker died, a task is retried) become short log lines, worker output stays in Ray's
  log files (``log_to_driver=False``), and the local cluster ends with the run (``ray.shutdown``).
  When Stash kills the plugin (Stop), the local cluster's workers die with it; Ray's two node
  agents notice their raylet is gone and exit within about a minute and a half. None of them
  holds the plugin's stdout.
- What travels to the cluster: the configuration without credentials (``SECRET_OPTIONS``), the
  studios' names, and per video its path, oshash and Stash's stream URL without its ``apikey``.
  Stash's credentials (the ``ApiKey`` header or session cookie) travel only with a video that is
  really streamed: one the driver cannot read either, or one a node reports it cannot see (the
  task returns ``needs_stream`` and the driver sends that job again with the headers). A library
  the nodes read from disk sends no credential at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import pickle
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from tagger import families
from tagger.config import SECRET_OPTIONS, Config
from tagger.decide.studio import StudioName
from tagger.errors import (
    ClusterError,
    ConfigError,
    MediaError,
    StashError,
    TaggerError,
    traceback_lines,
    unexpected_message,
)
from tagger.media.video import is_url
from tagger.redact import url_without_secrets
from tagger.run.context import Analysis, RunContext
from tagger.stashside.stash import StashScene, media_source

MAX_RETRIES = 3
"""Times a video is run again after its worker process or node died (Ray's ``max_retries``)."""

IN_FLIGHT_PER_SLOT = 2
"""Tasks submitted per slot: one running, one waiting, so no worker idles while we write."""

CONNECT_TIMEOUT_S = 10.0
"""How long the cluster's address may take to answer before the run fails (``ray.init`` itself
would retry for minutes, printing to stderr)."""

LOCAL = "local"
"""The ``ray_address`` that starts a cluster on this machine for the run."""

ROOT = Path(__file__).resolve().parents[2]
"""The plugin folder: the code a remote cluster runs (``ai_tagger.py``, ``tagger/``, ``models/``)."""

SHIPPED_EXCLUDES = (".git", ".venv", "venv", "node_modules", "__pycache__", "*.pyc", "*.sqlite*", "*.zip",
                    "*.mp4", "*.mkv", "/data", "/tests", "/bench", "/docs", "/ui")
"""What stays behind when the plugin folder is shipped to a cluster (data, media, dev files)."""

NODE_DATA_DIR = "ai-tagger-ray"
"""Name of the node-local data folder (in the node's temp folder) where the driver's is absent."""


@dataclass(frozen=True)
class EngineSpec:
    """What a worker builds its Engine from; equal specs share one Engine per worker process."""

    config: Config
    data_dir: str
    studios: tuple[StudioName, ...]

    @property
    def key(self) -> str:
        return hashlib.sha256(pickle.dumps((self.config, self.data_dir, self.studios))).hexdigest()


@dataclass(frozen=True)
class VideoJob:
    """One video to analyse: where the driver reads it, and Stash's stream for nodes that cannot."""

    scene_id: str
    location: str
    """A path, or a stream URL (without credentials) when the driver cannot read the file either."""
    headers: dict[str, str] | None = None
    """The stream's credentials, for a ``location`` that is a stream URL."""
    fingerprint: str | None = None
    stream_url: str | None = None
    """Stash's stream URL (without credentials) for a node that cannot see ``location``."""
    stream_headers: dict[str, str] | None = None
    """The stream's credentials, sent only once a node asked for them (None: not sent)."""


@dataclass(frozen=True)
class VideoOutcome:
    """What a task sends back: the engine's result, or the error that stopped it."""

    result: Any = None
    error: str | None = None
    """The video could not be read (MediaError, StashError): the scene fails, the run goes on."""
    fatal: str | None = None
    """Any other TaggerError (a model missing on that node): the run stops with it."""
    needs_stream: bool = False
    """The node cannot see the file and the job came without the stream's credentials: send it
    again with ``stream_headers``."""
    via: str = "path"
    seconds: float = 0.0
    node: str = ""
    pid: int = 0
    log: tuple[tuple[str, str], ...] = field(default=())


# -- the worker side -------------------------------------------------------------------------------

_engine: tuple[str, Any] | None = None  # (spec key, Engine) of this worker process
_log: list[tuple[str, str]] = []  # the Engine's log lines, sent back with the next outcome


def analyse_video(spec: EngineSpec, job: VideoJob) -> VideoOutcome:
    """The Ray task: analyse one video in this worker process (its Engine built once per spec)."""
    started = time.monotonic()
    node, via = socket.gethostname(), "stream" if is_url(job.location) else "path"
    location, headers = job.location, job.headers
    if via == "path" and not Path(location).is_file() and job.stream_url:
        # This node does not see the driver's file (another machine): stream it from Stash, with
        # credentials the driver sends only now, for this video alone.
        if job.stream_headers is None:
            return _outcome(needs_stream=True, via="stream", started=started, node=node)
        location, headers, via = job.stream_url, job.stream_headers, "stream"
    try:
        engine = _engine_for(spec)
        result = engine.analyze(location, headers=headers, fingerprint=job.fingerprint)
    except (MediaError, StashError) as error:
        return _outcome(error=str(error), via=via, started=started, node=node)
    except TaggerError as error:
        return _outcome(fatal=str(error), via=via, started=started, node=node)
    except Exception as error:  # a bug, or a file nobody foresaw: this video fails, not the run
        _log.append(("error", f"scene {job.scene_id}: traceback of the unexpected error:"))
        _log.extend(("error", line) for line in traceback_lines(error))
        return _outcome(error=unexpected_message(location, error), via=via, started=started, node=node)
    return _outcome(result=result, via=via, started=started, node=node)


def _outcome(*, started: float, node: str, **fields: Any) -> VideoOutcome:
    lines = tuple(_log)
    _log.clear()
    return VideoOutcome(seconds=time.monotonic() - started, node=node, pid=os.getpid(), log=lines,
                        **fields)


def _engine_for(spec: EngineSpec) -> Any:
    """This process's Engine for ``spec``: built on the first video, reused for the next ones."""
    global _engine
    key = spec.key
    if _engine is not None and _engine[0] == key:
        return _engine[1]
    from tagger.engine.engine import Engine

    if _engine is not None:  # another configuration (a later run in a long-lived worker)
        _engine[1].close()
        _engine = None
    engine = Engine(spec.config, node_data_dir(Path(spec.data_dir)),
                    lambda level, message: _log.append((level, message)), studios=list(spec.studios))
    _engine = (key, engine)
    return engine


def without_secrets(config: Config) -> Config:
    """``config`` as workers get it: the analysis needs no credentials (a stream's headers travel
    with the one job that streams)."""
    secrets = {name: "" for name in SECRET_OPTIONS if getattr(config, name, "")}
    return replace(config, **secrets) if secrets else config


def node_data_dir(driver_dir: Path) -> Path:
    """The driver's data folder when this node has it (same machine, shared disk), else a
    node-local one: the cache and converted models are per node then."""
    if driver_dir.is_dir() and os.access(driver_dir, os.W_OK):
        return driver_dir
    return Path(tempfile.gettempdir()) / NODE_DATA_DIR


# -- the driver side -------------------------------------------------------------------------------


class RayAnalysis:
    """The analysis executor on a Ray cluster (see the module docstring).

    Entering connects (or starts the local cluster); leaving always calls ``ray.shutdown``.

    Raises (on entering):
        ConfigError: Ray is not installed, or the address needs Ray Client's extra packages.
        ClusterError: no Ray cluster answers at the address.
    """

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.address = context.config.ray_address
        self.window = 2
        self.options: dict[str, Any] = {}
        self._ray: Any = None
        self._bridge: _LogBridge | None = None
        self._stdout: Any = None

    def __enter__(self) -> RayAnalysis:
        ray = _import_ray(self.address)
        self._bridge = _bridge_ray_logging(self.context.log)
        self._stdout = sys.stdout
        sys.stdout = _LogStream(self.context.log, self._stdout)
        self._ray = ray  # from here on, leaving shuts Ray down (also a half-started local cluster)
        try:
            _connect(ray, self.address, self.context.data_dir)
            resources = ray.cluster_resources()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        gpu_share = self.context.config.ray_gpus
        self.options = {"num_cpus": 1}
        slots = cpus
        if gpus > 0 and gpu_share > 0:
            self.options["num_gpus"] = gpu_share
            slots = min(cpus, gpus / gpu_share)
        self.window = max(2, math.ceil(IN_FLIGHT_PER_SLOT * slots))
        self.context.log.info(
            f"Ray cluster at {self.address}: {cpus:g} CPU(s), {gpus:g} GPU(s); each video asks for "
            + (f"{gpu_share:g} GPU" if "num_gpus" in self.options else "1 CPU")
            + f", up to {self.window} at a time")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._ray is not None:
            self._ray.shutdown()  # the local cluster ends; a remote one drops our tasks
        self._ray = None
        if self._stdout is not None:
            sys.stdout = self._stdout
            self._stdout = None
        if self._bridge is not None:
            _unbridge_ray_logging(self._bridge)
            self._bridge = None

    def analyses(self, engine: Any, scenes: Iterable[StashScene], total: int) -> Iterator[Analysis]:
        """Submit up to ``window`` videos, then one more each time one finishes; yield outcomes in
        the order they finish."""
        ray = self._ray
        spec = ray.put(EngineSpec(without_secrets(engine.config), str(self.context.data_dir),
                                  tuple(engine.studios)))
        task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(analyse_video)
        task = task.options(**self.options)
        pending: dict[Any, tuple[int, StashScene, VideoJob]] = {}
        queued = enumerate(scenes)
        more = True
        while True:
            while more and len(pending) < self.window:
                item = next(queued, None)
                if item is None:
                    more = False
                    break
                index, scene = item
                try:
                    job = self._job(scene)
                except (MediaError, StashError) as error:  # nothing to send: no readable source
                    yield Analysis(index, scene, error=str(error))
                    continue
                pending[self._submit(task, spec, job)] = (index, scene, job)
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, scene, job = pending.pop(ref)
                outcome = self._collect(ref, index, scene)
                if isinstance(outcome, VideoOutcome):  # the node cannot see the file
                    self.context.log.debug(f"scene {scene.id}: node {outcome.node} cannot see "
                                           f"{job.location}; it streams the video from Stash")
                    job = replace(job, stream_headers=dict(self.context.client.auth_headers))
                    pending[self._submit(task, spec, job)] = (index, scene, job)
                    continue
                yield outcome

    def _submit(self, task: Any, spec: Any, job: VideoJob) -> Any:
        """Send one job to the cluster (everything a task gets passes here)."""
        return task.remote(spec, job)

    def _job(self, scene: StashScene) -> VideoJob:
        """The scene's job, with Stash's credentials only when the driver itself must stream."""
        client, file = self.context.client, scene.primary_file
        source = media_source(scene, self.context.config.map_path, client.auth_headers)
        fingerprint = file.oshash if file else None
        if source.via == "stream":  # no node is likelier to see the file than this machine
            return VideoJob(scene_id=scene.id, location=url_without_secrets(source.location),
                            headers=source.headers or None, fingerprint=fingerprint)
        # Without credentials there is nothing to hold back: a node that cannot see the file
        # streams it at once.
        return VideoJob(scene_id=scene.id, location=source.location, fingerprint=fingerprint,
                        stream_url=url_without_secrets(scene.stream_url) if scene.stream_url else None,
                        stream_headers=None if client.auth_headers else {})

    def _collect(self, ref: Any, index: int, scene: StashScene) -> Analysis | VideoOutcome:
        """The task's analysis, or its outcome when it needs the stream's credentials."""
        from ray.exceptions import RayError, RayTaskError

        log = self.context.log
        try:
            outcome: VideoOutcome = self._ray.get(ref)
        except RayTaskError:
            raise  # a bug in the task: its traceback is the report
        except RayError as error:  # the worker or node died on every try, or the result was lost
            return Analysis(index, scene, error=f"the Ray cluster lost the analysis (retried up to "
                                                f"{MAX_RETRIES} times): {_first_line(error)}")
        for level, message in outcome.log:
            level = level if level in ("warning", "error") else "debug"
            log.log(level, f"Ray node {outcome.node}: {message}")
        if outcome.fatal is not None:
            raise ClusterError(f"on Ray node {outcome.node}: {outcome.fatal}")
        if outcome.needs_stream:
            return outcome
        log.debug(f"scene {scene.id}: analysed on {outcome.node} (pid {outcome.pid}) "
                  f"in {outcome.seconds:.1f} s")
        # A streamed result's frames (evidence, face crops) are read here with the driver's headers.
        headers = dict(self.context.client.auth_headers) if outcome.via == "stream" else None
        return Analysis(index, scene, result=outcome.result, error=outcome.error, via=outcome.via,
                        headers=headers, seconds=outcome.seconds)


def _import_ray(address: str) -> Any:
    try:
        import ray
    except ImportError:
        requirements = ROOT / "requirements-ray.txt"
        raise ConfigError(f"ray_address: {address!r} asks for a Ray cluster, but Ray is not installed "
                          f"in this Python ({sys.executable}); install it with `pip install -r "
                          f"{requirements}` (on every node too), or clear ray_address") from None
    return ray


def _connect(ray: Any, address: str, data_dir: Path) -> None:
    """``ray.init`` for ``address``, failing fast and clearly when nothing answers there."""
    if address == LOCAL:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private cluster reports nowhere
        try:
            ray.init(address=LOCAL, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as error:
            raise ClusterError(f"ray_address 'local': the Ray cluster on this machine did not start: "
                               f"{_first_line(error)}") from None
        return
    _probe(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False,
                 runtime_env=_runtime_env(data_dir))
    except ValueError as error:
        if "ray[client]" in str(error):
            raise ConfigError(f"ray_address: {address!r} is a Ray Client address, which needs "
                              "`pip install \"ray[client]\"` on this machine") from None
        raise ClusterError(f"ray_address {address!r}: {_first_line(error)}") from None
    except (ConnectionError, RuntimeError, TimeoutError) as error:
        raise ClusterError(f"ray_address {address!r}: cannot join the Ray cluster: "
                           f"{_first_line(error)}") from None


def _runtime_env(data_dir: Path) -> dict[str, Any]:
    """What the cluster's workers run with: the plugin's code, and the families registered from
    outside the package (``AI_TAGGER_FAMILIES``), which their configuration names."""
    runtime_env: dict[str, Any] = {"working_dir": str(ROOT), "excludes": _excludes(data_dir)}
    if os.environ.get(families.ENV_VAR):
        runtime_env["env_vars"] = {families.ENV_VAR: os.environ[families.ENV_VAR]}
    return runtime_env


def _probe(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT_S`` when nothing listens at the cluster's address."""
    endpoint = address.split("://", 1)[1] if "://" in address else address
    if endpoint == "auto":
        try:  # 'auto' -> the host:port of the cluster `ray start` left on this machine (or RAY_ADDRESS)
            from ray._private.services import canonicalize_bootstrap_address

            endpoint = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # none (ray.init says so at once), or a Ray without this helper
            return
        if not endpoint:
            return
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray_address: {address!r} is not 'local', 'auto', host:port or "
                          "ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, socket.timeout) else (error.strerror or str(error))
        raise ClusterError(f"ray_address {address!r}: no Ray cluster answers at {host}:{port} "
                           f"({reason}); start one (`ray start --head`) or fix ray_address") from None


def _excludes(data_dir: Path) -> list[str]:
    """What not to ship: dev and data files, and the data folder when it is inside the plugin's."""
    excludes = list(SHIPPED_EXCLUDES)
    with contextlib.suppress(ValueError):  # ValueError: the data folder lives elsewhere
        excludes.append("/" + data_dir.resolve().relative_to(ROOT).as_posix())
    return excludes


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0][:300] if text else type(error).__name__)


class _LogStream(io.TextIOBase):
    """``sys.stdout`` while Ray is connected: Ray's driver prints cluster events there (a worker
    that died, a task retried), coloured and long; they become short warning lines instead."""

    def __init__(self, log: Any, previous: Any) -> None:
        super().__init__()
        self.log, self.previous = log, previous
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            line = _ANSI.sub("", line).strip()
            if line:
                self.log.warning(f"Ray: {line[:300]}")
        return len(text)

    def fileno(self) -> int:  # for code that asks; fd 1 is stderr under the plugin's stdout guard
        return int(self.previous.fileno())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _LogBridge(logging.Handler):
    """Ray's Python logging as the plugin's log lines (never raw text on stderr)."""

    def __init__(self, log: Any) -> None:
        super().__init__(logging.INFO)
        self.log = log
        self.previous: tuple[int, bool] = (logging.NOTSET, True)  # the "ray" logger's level, propagate

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().strip()
        except Exception:  # a malformed record must not break the run
            return
        if not text:
            return
        level = "warning" if record.levelno >= logging.WARNING else "debug"
        self.log.log(level, f"Ray: {text.splitlines()[0][:300]}")


def _bridge_ray_logging(log: Any) -> _LogBridge:
    bridge = _LogBridge(log)
    logger = logging.getLogger("ray")
    bridge.previous = (logger.level, logger.propagate)
    logger.addHandler(bridge)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # else Python's last-resort handler prints warnings raw
    return bridge


def _unbridge_ray_logging(bridge: _LogBridge) -> None:
    logger = logging.getLogger("ray")
    logger.removeHandler(bridge)
    logger.setLevel(bridge.previous[0])
    logger.propagate = bridge.previous[1]
