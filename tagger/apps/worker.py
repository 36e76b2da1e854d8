"""The worker service (``ai_tagger.py serve``): the plugin's tasks run here, where the GPU is.

Stash's side of the plugin (``tagger.stashside.relay``, standard library only) posts the task: the very JSON
Stash gave it on stdin. The worker queues it, runs at most ``worker_jobs`` at once, and runs each
the way Stash runs a raw plugin: ``ai_tagger.py`` in a child process, the JSON on its stdin, Stash's
log protocol read from its stderr, one JSON object read from its stdout. So a task gives the same
output here as in Stash's own Python, and a cancel is what a Stop in Stash is (a kill, which the
write-back journal makes safe); a crash in a job cannot take the service down.

HTTP API (Starlette on uvicorn; every route but /health needs ``Authorization: Bearer <token>``):

    POST /jobs                 {"input": <Stash's stdin object>, "detach": false} -> 202 {"id", ...}
    GET  /jobs                 the jobs the worker remembers, newest first
    GET  /jobs/{id}            status, progress, output, error
    GET  /jobs/{id}/events     NDJSON: {"seq", "type": "log"|"progress"|"end", ...}, from ?after=SEQ;
                               a {"type": "ping"} line every PING_S while nothing happens
    POST /jobs/{id}/cancel     stops a queued or running job
    GET  /health               {"status": "ok"} (no token: for container health checks)

A request body is at most ``MAX_BODY`` bytes (413 beyond) and a JSON object nested at most
``MAX_DEPTH`` deep (400 otherwise). Every answer passes through ``tagger.redact``: no API key,
cookie or token reaches a client, even one a job's process printed.

The worker talks to one Stash only: ``worker_stash_url`` when set (each job's connection is
rewritten to it), else the first address a job names, pinned until the worker restarts. A job for
any other address is refused (403), so a token holder cannot send the worker, and its API key, to a
host of their choosing. With ``worker_tls_cert`` and ``worker_tls_key`` it serves HTTPS.

A client that goes away does not stop a job: it may reconnect with ``?after=`` and read on. But a
job posted without ``detach`` belongs to the plugin process that relays it; when nobody has been
listening for ``worker_grace`` seconds (Stash's Stop kills the relay with SIGKILL, which cannot
say goodbye), the worker cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagger.errors import ConfigError
from tagger.redact import redact_data, register_secret
from tagger.stashside.protocol import PLUGIN_INPUT_ENV, parse_plugin_input, read_log_line
from tagger.stashside.relay import ON_WORKER_ENV, PING_S  # one definition for both ends of the stream

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

KILL_WAIT_S = 5.0
"""After SIGTERM, seconds a cancelled job's processes get before SIGKILL."""

MAX_EVENTS = 20_000
"""Events kept per job; older log lines are dropped first (a reconnect past them sees a gap)."""

KEPT_JOBS = 200
"""Ended jobs remembered for /jobs and late readers; the oldest are forgotten first."""

ENDED = ("finished", "failed", "cancelled")

MAX_BODY = 1 << 20
"""Bytes a request body may have (a task's JSON is a few KiB)."""

MAX_DEPTH = 64
"""How deeply a request's JSON may nest (Stash's task objects nest 4 deep)."""


class Refused(Exception):
    """A request the worker will not take: ``status`` and a message saying what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One task on the worker, from queued to ended, with everything it said."""

    id: str
    input: dict[str, Any]
    detach: bool
    created: float = field(default_factory=time.time)
    status: str = "queued"  # queued | running | finished | failed | cancelled
    progress: float = 0.0
    output: Any = None
    error: str | None = None
    started: float | None = None
    ended: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 1
    listeners: int = 0
    unattended_since: float = field(default_factory=time.monotonic)
    cancel_requested: str | None = None
    process: asyncio.subprocess.Process | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mode(self) -> str:
        args = self.input.get("args")
        return str(args.get("mode") or "") if isinstance(args, dict) else ""

    def add_event(self, kind: str, **data: Any) -> None:
        self.events.append({"seq": self.next_seq, "type": kind, **data})
        self.next_seq += 1
        if len(self.events) > MAX_EVENTS:
            drop = next((i for i, event in enumerate(self.events) if event["type"] == "log"), 0)
            del self.events[drop]
        self.notify()

    def notify(self) -> None:
        """Wake everyone waiting on this job, and arm a fresh event for the next change."""
        self.changed.set()
        self.changed = asyncio.Event()

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "status": self.status,
            "progress": round(self.progress, 4),
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "detach": self.detach,
            "listeners": self.listeners,
            "error": self.error,
        }

    def result(self) -> dict[str, Any]:
        return {**self.summary(), "output": self.output}


class JobQueue:
    """Jobs in arrival order; at most ``slots`` run at once; unattended ones are cancelled."""

    def __init__(
        self,
        plugin_dir: Path,
        *,
        slots: int,
        grace_s: float,
        stash_url: str = "",
        log: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.plugin_dir = plugin_dir
        self.grace_s = grace_s
        self.stash_url = stash_url
        self.pinned_stash_url = ""
        """Without ``stash_url``: the first Stash a job named, the only one served from then on."""
        self.log = log
        self.jobs: dict[str, Job] = {}
        self._slots = asyncio.Semaphore(slots)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, stdin_object: dict[str, Any], *, detach: bool) -> Job:
        """Queue a task.

        Raises:
            Refused: the task's connection is malformed (400) or names a Stash this worker does
                not serve (403).
        """
        job = Job(id=uuid.uuid4().hex[:12], input=self._for_this_machine(stdin_object), detach=detach)
        self.jobs[job.id] = job
        self._forget_old()
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def cancel(self, job: Job, reason: str) -> None:
        if job.status in ENDED or job.cancel_requested:
            return
        job.cancel_requested = reason
        job.notify()
        if job.process is not None:
            _signal_group(job.process, signal.SIGTERM)

    def watch_unattended(self) -> None:
        """Cancel the relayed jobs nobody has listened to for ``grace_s`` (their plugin is gone)."""
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if (
                job.status not in ENDED
                and not job.detach
                and job.listeners == 0
                and now - job.unattended_since > self.grace_s
            ):
                self.cancel(job, f"nobody listened for {self.grace_s:g} s (the plugin was stopped)")

    async def shutdown(self) -> None:
        for job in self.jobs.values():
            self.cancel(job, "the worker is shutting down")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=KILL_WAIT_S + 5)

    def _for_this_machine(self, stdin_object: dict[str, Any]) -> dict[str, Any]:
        """Stash's connection as this machine reaches it (``worker_stash_url``), the rest as sent;
        without ``worker_stash_url``, only the Stash pinned by the first job.

        Raises:
            Refused: see ``submit``.
        """
        try:
            # Also registers the job's session cookie with the redaction.
            asked = parse_plugin_input(json.dumps(stdin_object)).server.url
        except ValueError as error:
            raise Refused(400, str(error)) from None
        if not self.stash_url:
            if not self.pinned_stash_url:
                self.pinned_stash_url = asked
                self.log(f"worker: serving the Stash at {asked} (the first job's address) until it "
                         "restarts; jobs for any other address are refused. Set worker_stash_url to "
                         "choose the address yourself")
            elif asked != self.pinned_stash_url:
                raise Refused(
                    403,
                    f"this worker serves the Stash at {self.pinned_stash_url} (the first address it "
                    f"was sent) and refuses a job for {asked}, so that its credentials go to no other "
                    "host; to serve another Stash, set worker_stash_url (AI_TAGGER_WORKER_STASH_URL) "
                    "on the worker and restart it",
                )
            return stdin_object
        from urllib.parse import urlsplit

        parts = urlsplit(self.stash_url)
        connection = dict(stdin_object.get("server_connection") or {})
        connection.update(
            {
                "Scheme": parts.scheme,
                "Host": parts.hostname or "127.0.0.1",
                "Port": parts.port or (443 if parts.scheme == "https" else 80),
            }
        )
        return {**stdin_object, "server_connection": connection}

    def _forget_old(self) -> None:
        ended = [job for job in self.jobs.values() if job.status in ENDED]
        for job in sorted(ended, key=lambda j: j.ended or 0)[: max(0, len(ended) - KEPT_JOBS)]:
            del self.jobs[job.id]

    async def _run(self, job: Job) -> None:
        async with self._slots:
            if job.cancel_requested:
                self._end(job, "cancelled", None, f"cancelled before it started: {job.cancel_requested}")
                return
            job.status, job.started = "running", time.time()
            job.add_event("status", status="running")
            try:
                if job.mode == "hook":
                    await self._run_hook(job)
                else:
                    await self._run_process(job)
            except Exception as error:  # a bug or a dead child: the job fails, the worker goes on
                self._end(job, "failed", None, f"the worker could not run the job: {error}")

    async def _run_process(self, job: Job) -> None:
        env = dict(os.environ)
        env[ON_WORKER_ENV] = "1"
        env.pop(PLUGIN_INPUT_ENV, None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(self.plugin_dir / "ai_tagger.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(self.plugin_dir),
            start_new_session=True,  # its own process group: a cancel reaches ffmpeg and the rest
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )
        job.process = process
        if job.cancel_requested:  # cancelled while the process started
            _signal_group(process, signal.SIGTERM)
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        process.stdin.write(json.dumps(job.input).encode())
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
        stdout_task = asyncio.create_task(process.stdout.read())
        killer = asyncio.create_task(self._kill_when_cancelled(job, process))
        try:
            async for raw in process.stderr:
                self._stderr_line(job, raw.decode("utf-8", "replace").rstrip("\r\n"))
            stdout = await stdout_task
            code = await process.wait()
        finally:
            killer.cancel()
            job.process = None
            if process.returncode is None:  # this reader failed, not the task: leave no orphan behind
                _signal_group(process, signal.SIGKILL)
                stdout_task.cancel()
        if job.cancel_requested:
            self._end(job, "cancelled", None, f"cancelled: {job.cancel_requested}")
            return
        try:
            answer = json.loads(stdout.decode("utf-8", "replace"))
            if not isinstance(answer, dict):
                raise ValueError("not an object")
        except ValueError:
            text = stdout.decode("utf-8", "replace").strip()
            self._end(
                job,
                "failed",
                None,
                f"the task ended with exit status {code} and no result" + (f": {text[:500]}" if text else ""),
            )
            return
        error = answer.get("error")
        self._end(job, "failed" if error else "finished", answer.get("output"), error)

    async def _run_hook(self, job: Job) -> None:
        """The hook in this process: it only queues the scene (standard library, milliseconds), and
        a scan fires it once per new file, so a process per hook would be most of its cost."""
        import io

        from tagger.errors import TaggerError
        from tagger.stashside.bootstrap import data_dir
        from tagger.stashside.hook import handle_hook
        from tagger.stashside.protocol import StashLog, parse_plugin_input

        lines = io.StringIO()

        def run() -> tuple[Any, str | None]:
            try:
                plugin_input = parse_plugin_input(json.dumps(job.input))
                return handle_hook(plugin_input, data_dir(self.plugin_dir), StashLog(lines)), None
            except (TaggerError, ValueError) as error:
                return None, str(error)

        output, error = await asyncio.to_thread(run)
        for line in lines.getvalue().splitlines():  # events are made on the loop's thread only
            self._stderr_line(job, line)
        self._end(job, "failed" if error else "finished", output, error)

    async def _kill_when_cancelled(self, job: Job, process: asyncio.subprocess.Process) -> None:
        while not job.cancel_requested:
            await job.changed.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), KILL_WAIT_S)
            return
        _signal_group(process, signal.SIGKILL)

    def _stderr_line(self, job: Job, line: str) -> None:
        if not line:
            return
        with contextlib.suppress(ValueError):  # a garbled progress value is dropped, as Stash does
            level, value = read_log_line(line)
            if level == "progress":
                job.progress = float(value)
                job.add_event("progress", value=job.progress)
            else:
                job.add_event("log", level=level, message=value)

    def _end(self, job: Job, status: str, output: Any, error: str | None) -> None:
        job.status, job.output, job.error, job.ended = status, output, error, time.time()
        if status == "finished":
            job.progress = 1.0
        job.add_event("end", status=status, output=output, error=error)


def _die_with_parent() -> None:
    """In a job's process before exec: a worker that dies (even SIGKILL) takes its jobs along, so
    no orphan keeps writing to Stash while the re-run that resumes it starts on a new worker."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


# ---- HTTP ------------------------------------------------------------------------------------------
# Starlette is imported where it is used: this module loads for ``serve`` before it can say, in
# words, that Starlette and uvicorn are missing.

TOO_LARGE = f"the body is larger than {MAX_BODY} bytes; a task's JSON is a few KiB"

NO_TASK = 'give {"input": <the JSON Stash gives a raw plugin>}'


def create_app(queue: JobQueue, token: str) -> Any:
    """The Starlette application over ``queue``, refusing requests without ``token``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    return Starlette(
        routes=Endpoints(queue).routes(),
        lifespan=_lifespan(queue),
        middleware=[Middleware(Guard, token=token)],
        exception_handlers={Exception: _internal_error},
    )


def _answer(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Every JSON answer of the worker: secrets masked, whoever put them there."""
    from starlette.responses import JSONResponse

    return JSONResponse(redact_data(data), status_code=status_code, headers=headers)


class Guard:
    """Before any route: the token (401; /health needs none), then the declared body size
    (413). ASGI middleware: it leaves the event streams' disconnects alone."""

    def __init__(self, app: Any, *, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Any) -> Response | None:
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        if scope["path"] != "/health" and not hmac.compare_digest(
            headers.get("authorization", "").encode(), self.expected
        ):
            return _answer(
                {"error": "missing or wrong token: send Authorization: Bearer <worker_token>"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
        if _declared_length(headers.get("content-length")) > MAX_BODY:
            return _answer({"error": TOO_LARGE}, 413)
        return None


class Endpoints:
    """The routes over one job queue."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [
            Route("/health", self.health),
            Route("/jobs", self.submit, methods=["POST"]),
            Route("/jobs", self.list_jobs, methods=["GET"]),
            Route("/jobs/{job_id}", self._of_job(self.show)),
            Route("/jobs/{job_id}/events", self._of_job(self.events)),
            Route("/jobs/{job_id}/cancel", self._of_job(self.cancel), methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        return _answer({"status": "ok"})

    async def submit(self, request: Request) -> Response:
        try:
            stdin_object, detach = _task_of(await _json_object(request))
            job = self.queue.submit(stdin_object, detach=detach)
        except Refused as refusal:
            return _answer({"error": str(refusal)}, refusal.status)
        return _answer(job.summary(), 202)

    async def list_jobs(self, request: Request) -> Response:
        jobs = sorted(self.queue.jobs.values(), key=lambda j: j.created, reverse=True)
        return _answer({"jobs": [job.summary() for job in jobs]})

    async def show(self, request: Request, job: Job) -> Response:
        return _answer(job.result())

    async def cancel(self, request: Request, job: Job) -> Response:
        self.queue.cancel(job, "on request")
        return _answer(job.summary())

    async def events(self, request: Request, job: Job) -> Response:
        from starlette.responses import StreamingResponse

        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return _answer({"error": "after: give the last seq you read"}, 400)
        return StreamingResponse(
            _event_lines(job, after),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _of_job(
        self, handler: Callable[[Request, Job], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A route on /jobs/{job_id}...: 404 for a job the worker does not know."""

        async def endpoint(request: Request) -> Response:
            job_id = request.path_params["job_id"]
            job = self.queue.jobs.get(job_id)
            if job is None:
                return _answer({"error": f"no job {job_id} on this worker (it may have restarted)"}, 404)
            return await handler(request, job)

        return endpoint


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, never more than ``MAX_BODY`` bytes of it read (a chunked
    body declares no length).

    Raises:
        Refused: 413 for a larger body, 400 for one that is not a JSON object or nests too deep.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, TOO_LARGE)
    try:
        data = json.loads(body)
    except RecursionError:  # the parser's own limit, far beyond MAX_DEPTH
        raise Refused(400, f"the body's JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise Refused(400, f"the body is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise Refused(400, f"the body is a JSON {type(data).__name__}, not an object; {NO_TASK}")
    if _nesting(data) > MAX_DEPTH:
        raise Refused(400, f"the body's JSON nests deeper than {MAX_DEPTH} levels")
    return data


def _task_of(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(Stash's stdin object, detach) from a POST /jobs body.

    Raises:
        Refused: 400 when either is missing or malformed.
    """
    stdin_object = body.get("input")
    if not isinstance(stdin_object, dict) or not isinstance(stdin_object.get("args"), dict):
        raise Refused(400, f"{NO_TASK}, with args")
    detach = body.get("detach", False)
    if not isinstance(detach, bool):
        raise Refused(400, f"detach: {detach!r} is not true or false")
    return stdin_object, detach


async def _event_lines(job: Job, after: int) -> AsyncIterator[bytes]:
    """The job's events after seq ``after`` as NDJSON, until its end; a ping line while it is
    quiet. While this runs, somebody is listening to the job (see ``JobQueue.watch_unattended``)."""
    job.listeners += 1
    try:
        while True:
            changed = job.changed
            fresh = [event for event in job.events if event["seq"] > after]
            for event in fresh:
                yield (json.dumps(redact_data(event)) + "\n").encode()
                after = event["seq"]
                if event["type"] == "end":
                    return
            try:
                await asyncio.wait_for(changed.wait(), PING_S)
            except asyncio.TimeoutError:
                yield b'{"type": "ping"}\n'
    finally:
        job.listeners -= 1
        job.unattended_since = time.monotonic()


async def _internal_error(request: Request, error: Exception) -> Response:
    # uvicorn logs the traceback on the worker; the client gets one line without it.
    return _answer({"error": f"internal error in the worker ({type(error).__name__}); "
                             "its log has the details"}, 500)


def _lifespan(queue: JobQueue) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """While the app serves: unattended jobs are cancelled each second; at its end, every job."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_cancel_unattended_jobs(queue))
        try:
            yield
        finally:
            watcher.cancel()
            await queue.shutdown()

    return lifespan


async def _cancel_unattended_jobs(queue: JobQueue) -> None:
    while True:
        await asyncio.sleep(1.0)
        queue.watch_unattended()


def _declared_length(value: str | None) -> int:
    """A request's Content-Length, 0 when absent (uvicorn refuses a malformed one itself)."""
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _nesting(value: Any) -> int:
    """How deeply a parsed JSON value nests (an object or list is one level), without recursion;
    stops counting past ``MAX_DEPTH``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


def tls_files(config: Any) -> tuple[str, str] | None:
    """(certificate, private key) for HTTPS, or None for plain HTTP.

    Raises:
        ConfigError: only one of the two is set, a file is missing, or they do not load.
    """
    cert, key = config.worker_tls_cert, config.worker_tls_key
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "worker_tls_key" if cert else "worker_tls_cert"
        raise ConfigError(f"{missing}: not set; HTTPS needs both worker_tls_cert (the certificate, "
                          "PEM) and worker_tls_key (its private key, PEM)")
    for name, path in (("worker_tls_cert", cert), ("worker_tls_key", key)):
        if not Path(path).is_file():
            raise ConfigError(f"{name}: {path!r} is not a file on this machine; give the PEM file's path")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"worker_tls_cert/worker_tls_key: {cert!r} and {key!r} do not load as a "
                          f"certificate and its private key ({error})") from None
    return cert, key


def serve(plugin_dir: Path, config: Any, log: Any) -> None:
    """Run the worker until interrupted (uvicorn handles SIGINT/SIGTERM and drains)."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the worker needs Starlette and uvicorn: pip install -r requirements.txt") from None
    if not config.worker_token:
        raise ConfigError(
            "worker_token: not set; the worker refuses to run without a shared secret. Set "
            "worker_token in config.yaml or AI_TAGGER_WORKER_TOKEN, and the same as the "
            "plugin's 'Worker token' setting in Stash"
        )
    # Masked in every answer from the start, whatever a job's process prints.
    register_secret(config.worker_token)
    register_secret(config.api_key)
    tls = tls_files(config)

    async def main() -> None:
        queue = JobQueue(
            plugin_dir,
            slots=config.worker_jobs,
            grace_s=config.worker_grace,
            stash_url=config.worker_stash_url,
            log=log.info,
        )
        app = create_app(queue, config.worker_token)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.worker_host,
                port=config.worker_port,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=KILL_WAIT_S + 5,
                ssl_certfile=tls[0] if tls else None,
                ssl_keyfile=tls[1] if tls else None,
            )
        )
        scheme = "https" if tls else "http"
        log.info(
            f"worker: listening on {scheme}://{config.worker_host}:{config.worker_port} "
            f"({config.worker_jobs} job(s) at once)"
        )
        if not tls and config.worker_host not in ("127.0.0.1", "localhost", "::1"):
            log.info("worker: plain HTTP: the token and each task (with Stash's session cookie) cross "
                     "the network unencrypted; set worker_tls_cert and worker_tls_key for HTTPS")
        if config.worker_stash_url:
            log.info(f"worker: serving the Stash at {config.worker_stash_url} (worker_stash_url)")
        await server.serve()

    asyncio.run(main())
