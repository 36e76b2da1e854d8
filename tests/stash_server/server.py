"""StashTestServer: a local HTTP stand-in for Stash (GraphQL + scene/performer media).

Checked against stashapp/stash ``internal/api/authentication.go`` and ``pkg/session``: with
credentials configured, a request needs the ``ApiKey`` header, the ``apikey`` query
parameter or the ``session`` cookie. Without them ``/graphql`` (and any path with a
non-.html extension) answers 401 with ``WWW-Authenticate: FormBased`` and an empty body,
while other pages such as ``/scene/1/stream`` redirect (302) to ``/login?returnURL=...``.
A wrong API key is treated as missing. Media ranges follow Go's ``http.ServeContent``:
one range gives 206 + Content-Range, an unsatisfiable one 416 with ``bytes */size``;
multi-range requests (multipart in Go) are answered 200 with the whole file here.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import zlib
from collections.abc import Callable
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.loopback import LoopbackServer

from .graphql_http import run_graphql
from .schema import build_stash_schema
from .state import RequestContext, State


def _tiny_png() -> bytes:
    """A valid 1x1 grey PNG, served where Stash serves its default images."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


DEFAULT_IMAGE = _tiny_png()
"""Body of default screenshots and performer images."""

RequestRecord = tuple[str | None, str, dict[str, Any]]
"""(operationName, query, variables) of one GraphQL request."""


class StashTestServer(LoopbackServer):
    """A fake Stash on 127.0.0.1 with an ephemeral port; usable as a context manager."""

    def __init__(self, *, api_key: str | None = None, session_cookie: str | None = None,
                 state: State | None = None, media_paths: dict[str, str] | None = None) -> None:
        """Configure credentials; with neither set, no authentication is required.

        ``media_paths`` maps a prefix of the file paths Stash reports to where the files really
        are, as when Stash runs in Docker and sees the library at other paths than the plugin.
        """
        self.state = state or State()
        self.media_paths = dict(media_paths or {})
        self.api_key = api_key
        self.session_cookie = session_cookie
        if api_key:
            self.state.general["apiKey"] = api_key
        self.requests: list[RequestRecord] = []
        self.request_headers: list[dict[str, str]] = []  # lower-cased names, per GraphQL request
        self._failures: list[int] = []
        # Test controls called with the operation name of every mutation: ``before_mutation``
        # returning True drops the request unanswered and unapplied (its client was killed).
        self.before_mutation: Callable[[str], bool] | None = None
        self.after_mutation: Callable[[str], None] | None = None
        self._drop_replies: dict[str, int | None] = {}  # see drop_reply_after
        self.dropped_replies: list[str] = []  # operation names whose reply was dropped, in order
        # Fault control: a scene's stream never delivers a byte at or past this offset; each
        # response is cut there and its connection closed, as a dropped network stream is.
        self.cut_stream_after: dict[int, int] = {}
        super().__init__()

    def request_handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    # ---- test controls ---------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` requests (any path) with ``status`` and a plain body."""
        with self.state.lock:
            self._failures.extend([status] * n)

    def drop_reply_after(self, operation: str, times: int | None = 1) -> None:
        """Execute the next ``times`` requests of ``operation`` (every one: None), then close
        their connections unanswered: a reply lost on the way back, the change made in Stash."""
        with self.state.lock:
            self._drop_replies[operation] = times

    def take_drop(self, operation: str) -> bool:
        """Whether this request of ``operation`` loses its reply (counted when it does)."""
        with self.state.lock:
            if operation not in self._drop_replies:
                return False
            left = self._drop_replies[operation]
            if left is not None:
                if left <= 1:
                    del self._drop_replies[operation]
                else:
                    self._drop_replies[operation] = left - 1
            self.dropped_replies.append(operation)
            return True

    def take_failure(self) -> int | None:
        """Pop the next injected failure status, if any."""
        with self.state.lock:
            return self._failures.pop(0) if self._failures else None

    def local_path(self, stash_path: str) -> Path:
        """Where a file Stash reports at ``stash_path`` really is (see ``media_paths``)."""
        for prefix, local in self.media_paths.items():
            if stash_path.startswith(prefix.rstrip("/") + "/"):
                return Path(local) / stash_path[len(prefix.rstrip("/")) + 1:]
        return Path(stash_path)

    def is_authorised(self, headers: Any, query: dict[str, list[str]]) -> bool:
        """Check the ApiKey header, ``apikey`` parameter or session cookie."""
        if not self.api_key and not self.session_cookie:
            return True
        key = headers.get("ApiKey") or (query.get("apikey") or [""])[0]
        if self.api_key and key == self.api_key:
            return True
        cookie = SimpleCookie(headers.get("Cookie") or "")
        return bool(self.session_cookie) and "session" in cookie and \
            cookie["session"].value == self.session_cookie


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request; ``server_ref`` is set on a per-server subclass."""

    server_ref: StashTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def handle(self) -> None:
        """Serve the connection; a client that went away (gave up waiting, was killed) is no error."""
        try:
            super().handle()
        except ConnectionError:
            self.close_connection = True

    def do_POST(self) -> None:
        """Handle ``POST /graphql``."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._pre_checks():
            return
        if self.path.split("?")[0] != "/graphql":
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError as err:
            self._json(400, {"errors": [{"message": f"json request body could not be "
                                                    f"decoded: {err}"}], "data": None})
            return
        srv = self.server_ref
        with srv.state.lock:
            srv.requests.append((request.get("operationName"), request.get("query", ""),
                                 request.get("variables") or {}))
            srv.request_headers.append({k.lower(): v for k, v in self.headers.items()})
        context = RequestContext(srv.state, srv.url)
        name = request.get("operationName") or ""
        mutation = str(request.get("query", "")).lstrip().startswith("mutation")
        if mutation and srv.before_mutation is not None and srv.before_mutation(name):
            self.close_connection = True
            return
        status, payload = run_graphql(build_stash_schema(), request, context, srv.state.lock)
        if mutation and srv.after_mutation is not None:
            srv.after_mutation(name)  # e.g. kill the plugin: applied, but the answer is lost
        if srv.take_drop(name):
            self.close_connection = True  # the client sees the connection end with no answer
            return
        self._json(status, payload)

    def do_GET(self) -> None:
        """Handle media routes and the login page."""
        if self._pre_checks():
            return
        path = urlsplit(self.path).path
        routes = ((r"/scene/(\d+)/stream", self._stream),
                  (r"/scene/(\d+)/screenshot", self._screenshot),
                  (r"/performer/(\d+)/image", self._performer_image))
        for pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if match:
                route(int(match.group(1)))
                return
        if path == "/login":
            self._send(200, b"<html><body>Login</body></html>", "text/html; charset=utf-8")
            return
        self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    # ---- shared checks and senders ---------------------------------------------------

    def _pre_checks(self) -> bool:
        """Apply injected failures and authentication; True when already answered."""
        srv = self.server_ref
        failure = srv.take_failure()
        if failure is not None:
            self._send(failure, b"simulated failure\n", "text/plain; charset=utf-8")
            return True
        parts = urlsplit(self.path)
        if parts.path == "/login" or srv.is_authorised(self.headers, parse_qs(parts.query)):
            return False
        ext = Path(parts.path).suffix
        if parts.path == "/graphql" or (ext and ext != ".html"):
            self._send(401, b"", None, {"WWW-Authenticate": "FormBased"})
        else:
            location = "/login?returnURL=" + quote(self.path, safe="")
            self._send(302, b"", None, {"Location": location})
        return True

    def _send(self, status: int, body: bytes, ctype: str | None,
              headers: dict[str, str] | None = None, cut_at: int | None = None) -> None:
        """Write a complete response, or (``cut_at``) its first bytes and drop the connection."""
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut_at is not None and cut_at < len(body):
            # The headers promised the whole body: the client sees the connection end early.
            self.wfile.write(body[:max(0, cut_at)])
            self.close_connection = True
            return
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        """Write a JSON response."""
        self._send(status, json.dumps(payload).encode(), "application/json")

    # ---- media -----------------------------------------------------------------------

    def _stream(self, scene_id: int) -> None:
        """Serve the scene's primary file with Range support."""
        with self.server_ref.state.lock:
            scene = self.server_ref.state.scenes.get(scene_id)
            files = list(scene["files"]) if scene else []
        path = self.server_ref.local_path(files[0]["path"]) if files else None
        if path is None or not path.is_file():
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with self.server_ref.state.lock:
            cut_at = self.server_ref.cut_stream_after.get(scene_id)
        self._serve_bytes(path.read_bytes(), ctype, cut_at)

    def _screenshot(self, scene_id: int) -> None:
        """Serve a scene screenshot (a default image; no screenshots are generated)."""
        if scene_id not in self.server_ref.state.scenes:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        self._send(200, DEFAULT_IMAGE, "image/png")

    def _performer_image(self, performer_id: int) -> None:
        """Serve the performer's image file or data, else the default image."""
        performer = self.server_ref.state.performers.get(performer_id)
        if performer is None:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        if performer.get("image") and Path(performer["image"]).is_file():
            image = Path(performer["image"])
            ctype = mimetypes.guess_type(image.name)[0] or "image/jpeg"
            self._send(200, image.read_bytes(), ctype)
        elif performer.get("image_data"):
            self._send(200, _decode_data_url(performer["image_data"]), "image/jpeg")
        else:
            self._send(200, DEFAULT_IMAGE, "image/png")

    def _serve_bytes(self, data: bytes, ctype: str, cut_at: int | None = None) -> None:
        """Answer a GET with optional single ``Range: bytes=`` support; ``cut_at``: the file offset
        where the body breaks off."""
        size = len(data)
        header = self.headers.get("Range")
        accept = {"Accept-Ranges": "bytes"}
        if not header or "," in header:
            self._send(200, data, ctype, accept, cut_at)
            return
        span = _parse_range(header, size)
        if span is None:
            self._send(416, b"invalid range: failed to overlap\n", "text/plain; charset=utf-8",
                       {"Content-Range": f"bytes */{size}"})
            return
        start, end = span
        self._send(206, data[start:end + 1], ctype,
                   {**accept, "Content-Range": f"bytes {start}-{end}/{size}"},
                   None if cut_at is None else cut_at - start)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse one ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range; None if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if not first:
        length = min(int(last), size)
        return (size - length, size - 1) if length > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def _decode_data_url(value: str) -> bytes:
    """Decode a ``data:...;base64,`` image (or plain base64) as performerCreate accepts."""
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload)
    except ValueError:
        return DEFAULT_IMAGE
