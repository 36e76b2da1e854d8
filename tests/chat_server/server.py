"""ChatTestServer: a local HTTP stand-in for an OpenAI-compatible chat completions server.

Routes, as OpenAI's API and its imitators (Ollama ``/v1``, vLLM, LM Studio, llama.cpp) serve
them under the base URL ``http://HOST:PORT/v1``:

- ``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model", "owned_by"}]}``.
- ``POST /v1/chat/completions``: validated by ``validation.validate_request``; answered with a
  ``chat.completion`` object whose one choice holds the scripted text, and ``usage``.
- Anything else: 404 ``Invalid URL (METHOD /path)`` in OpenAI's error shape.

With ``api_key`` set every route needs ``Authorization: Bearer <key>``: a missing header gets
401 with code None, a wrong key 401 with code ``invalid_api_key`` (OpenAI's two answers).
The order of checks for a chat request: authentication, injected failure (``fail_next``), JSON
decoding, validation, model existence. An injected delay (``delay_next``) comes before all of
them, so it slows whatever the answer turns out to be.

Scripted answers: ``answer(text, times)`` queues texts, used one per successful request in
order; when the queue runs dry the last text used keeps being answered (``DEFAULT_ANSWER``
before any). ``answer_with(fn)`` computes each answer from the decoded request instead, taking
precedence over the queue until ``answer_with(None)``; an exception in ``fn`` is answered 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer

from .validation import RequestError, validate_request

DEFAULT_ANSWER = '{"labels": [], "description": ""}'
"""The answer text before any is scripted."""

_FAILURE_TYPES = {429: ("requests", "rate_limit_exceeded"), 500: ("server_error", None),
                  502: ("server_error", None), 503: ("server_error", None)}
_FAILURE_MESSAGES = {
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class _Failure:
    """One injected failure answer."""

    def __init__(self, status: int, retry_after: float | None, message: str | None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.message = message or _FAILURE_MESSAGES.get(status, "Simulated failure.")


class _CountingHTTPServer(ThreadingHTTPServer):
    """Counts accepted TCP connections (one per connection, however many requests it carries)."""

    daemon_threads = True
    owner: ChatTestServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner.connections += 1
        super().process_request(request, client_address)


class ChatTestServer(LoopbackServer):
    """A fake OpenAI-compatible server on 127.0.0.1 with an ephemeral port; a context manager."""

    def __init__(self, api_key: str | None = None, models: tuple[str, ...] = ("llava:7b",),
                 json_schema: bool = True) -> None:
        """``api_key``: the bearer token required (None: no authentication); ``models``: the
        models served; ``json_schema``: whether ``response_format`` ``json_schema`` is supported
        (False answers it 400, as servers without structured outputs do)."""
        self.api_key = api_key
        self.models = tuple(models)
        self.json_schema = json_schema
        self.requests: list[dict[str, Any]] = []  # decoded chat request bodies, in order
        self.headers: list[dict[str, str]] = []  # lower-cased headers of those same requests
        self.connections = 0
        self._lock = threading.Lock()
        self._answers: deque[str] = deque()
        self._last_answer = DEFAULT_ANSWER
        self._answer_fn: Callable[[dict[str, Any]], str] | None = None
        self._failures: deque[_Failure] = deque()
        self._delays: deque[float] = deque()
        self._completions = 0
        self._stopping = threading.Event()
        super().__init__()

    # ---- lifecycle (tests.loopback) ---------------------------------------------------

    def request_handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def server_class(self) -> type[ThreadingHTTPServer]:
        return type("Server", (_CountingHTTPServer,), {"owner": self})

    def start(self) -> ChatTestServer:
        self._stopping.clear()
        return super().start()

    def stop(self) -> None:
        """Stop serving; delayed answers still waiting are cut short."""
        self._stopping.set()
        super().stop()

    @property
    def url(self) -> str:
        """The base URL a user configures, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    # ---- script and faults -----------------------------------------------------------

    def answer(self, text: str, times: int = 1) -> None:
        """Queue ``text`` as the next ``times`` answers; the last one used repeats once the queue
        runs dry. Malformed answers are just texts: ``answer("not json")``."""
        with self._lock:
            self._answers.extend([text] * times)

    def answer_with(self, fn: Callable[[dict[str, Any]], str] | None) -> None:
        """Compute each answer from the decoded request body (None: back to the queue)."""
        with self._lock:
            self._answer_fn = fn

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None,
                  message: str | None = None) -> None:
        """Answer the next ``times`` chat requests (after authentication) with ``status`` in
        OpenAI's error shape; ``retry_after`` (seconds) adds ``Retry-After`` (written as a
        decimal number when not whole, as OpenAI's own clients accept) and ``retry-after-ms``."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, message) for _ in range(times))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` chat answers back ``seconds`` before answering."""
        with self._lock:
            self._delays.extend([seconds] * times)

    # ---- used by the handler -----------------------------------------------------------

    def _take(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    def _next_answer(self, request: dict[str, Any]) -> str:
        with self._lock:
            fn = self._answer_fn
            if fn is None:
                if self._answers:
                    self._last_answer = self._answers.popleft()
                return self._last_answer
        return fn(request)

    def _completion_id(self) -> str:
        with self._lock:
            self._completions += 1
            return f"chatcmpl-{self._completions}"

    def _auth_error(self, header: str | None) -> RequestError | None:
        if not self.api_key:
            return None
        if not header or not header.startswith("Bearer "):
            return RequestError(401, "You didn't provide an API key. You need to provide your API "
                                     "key in an Authorization header using Bearer auth (i.e. "
                                     "Authorization: Bearer YOUR_KEY).")
        given = header[len("Bearer "):].strip()
        if given != self.api_key:
            shown = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if len(given) > 7 else "***"
            return RequestError(401, f"Incorrect API key provided: {shown}.", None, "invalid_api_key")
        return None


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request; ``server_ref`` is set on a per-server subclass."""

    server_ref: ChatTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def handle(self) -> None:
        """Serve the connection; a client that went away (timed out, was killed) is no error."""
        try:
            super().handle()
        except ConnectionError:
            self.close_connection = True

    def do_GET(self) -> None:
        """Handle ``GET /v1/models``."""
        srv = self.server_ref
        path = urlsplit(self.path).path.rstrip("/")
        if path != "/v1/models":
            self._not_found()
            return
        error = srv._auth_error(self.headers.get("Authorization"))
        if error is not None:
            self._error(error)
            return
        self._json(200, {"object": "list", "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "stand-in"}
            for model in srv.models]})

    def do_POST(self) -> None:
        """Handle ``POST /v1/chat/completions``."""
        srv = self.server_ref
        raw = self._read_body()
        if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            self._not_found()
            return
        try:
            body: Any = json.loads(raw)
            decoded = True
        except ValueError:
            body, decoded = None, False
        with srv._lock:
            if decoded:
                srv.requests.append(body)
                srv.headers.append({k.lower(): v for k, v in self.headers.items()})
        delay = srv._take(srv._delays)
        if delay and srv._stopping.wait(delay):
            self.close_connection = True  # stopped while waiting: no answer
            return
        error = srv._auth_error(self.headers.get("Authorization"))
        if error is not None:
            self._error(error)
            return
        failure = srv._take(srv._failures)
        if failure is not None:
            self._failure(failure)
            return
        if not decoded:
            self._error(RequestError(400, "We could not parse the JSON body of your request. (HINT: "
                                          "This likely means you aren't using your HTTP library "
                                          "correctly. The OpenAI API expects a JSON payload, but "
                                          "what was sent was not valid JSON.)"))
            return
        try:
            prompt_tokens = validate_request(body, srv.models, srv.json_schema)
        except RequestError as err:
            self._error(err)
            return
        try:
            text = srv._next_answer(body)
        except Exception as err:  # a test's answer function failed: a server error
            self._error(RequestError(500, f"answer function failed: {err!r}", type_="server_error"))
            return
        completion_tokens = len(text.split())
        self._json(200, {
            "id": srv._completion_id(), "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    # ---- helpers -----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _not_found(self) -> None:
        path = urlsplit(self.path).path
        self._error(RequestError(404, f"Invalid URL ({self.command} {path})"))

    def _failure(self, failure: _Failure) -> None:
        kind, code = _FAILURE_TYPES.get(failure.status, ("server_error", None))
        headers = {}
        if failure.retry_after is not None:
            seconds = failure.retry_after
            headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            headers["retry-after-ms"] = str(round(seconds * 1000))
        error = RequestError(failure.status, failure.message, None, code, kind)
        self._json(failure.status, error.body(), headers)

    def _error(self, error: RequestError) -> None:
        self._json(error.status, error.body())

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
