"""An HTTP stand-in's life: served on 127.0.0.1 from a background thread, on a free port that every
restart reuses (a client keeps its URL across a simulated outage), as a context manager. The Stash
and chat-model stand-ins differ only in their handlers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

Server = TypeVar("Server", bound="LoopbackServer")


class LoopbackServer:
    """Subclasses name their ``request_handler``; it reaches the stand-in as ``server_ref``."""

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    def request_handler(self) -> type[BaseHTTPRequestHandler]:
        """The handler class of every request."""
        raise NotImplementedError

    def server_class(self) -> type[ThreadingHTTPServer]:
        """The socket server to run (a subclass may count connections)."""
        return ThreadingHTTPServer

    def start(self: Server) -> Server:
        """Start serving in a background thread (restarts reuse the same port)."""
        handler = type("Handler", (self.request_handler(),), {"server_ref": self})
        self._httpd = self.server_class()(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (connections are then refused)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self: Server) -> Server:
        """Start the server."""
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port (0 before the first start)."""
        return self._port
