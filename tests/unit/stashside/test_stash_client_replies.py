"""The Stash client when an answer does not come back (``tagger.stashside.stash.StashClient``), against the
test Stash server: a query is simply asked again; a creation or deletion is sent again only when
it certainly never reached Stash, and otherwise reported as ``StashReplyLostError`` so that the
caller can look in Stash instead of making it twice."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tagger.errors import StashReplyLostError
from tagger.stashside.stash import StashClient
from tests.stash_server import StashTestServer


@pytest.fixture
def server() -> Iterator[StashTestServer]:
    with StashTestServer() as running:
        yield running


def client_of(server: StashTestServer, attempts: int = 3) -> StashClient:
    return StashClient(url=server.url, attempts=attempts, sleep=lambda _seconds: None)


def tags_named(server: StashTestServer, name: str) -> list[int]:
    return [t["id"] for t in server.state.snapshot()["tags"].values() if t["name"] == name]


def requests_of(server: StashTestServer, operation: str) -> int:
    return len([r for r in server.requests if r[0] == operation])


def test_a_query_whose_answer_is_lost_is_asked_again(server: StashTestServer) -> None:
    scene = server.state.add_scene("Beach day", path="/library/beach.mp4")
    server.drop_reply_after("FindScene")

    found = client_of(server).find_scene(str(scene))

    assert found is not None and found.title == "Beach day"
    assert server.dropped_replies == ["FindScene"] and requests_of(server, "FindScene") == 2


def test_a_creation_whose_answer_is_lost_is_reported_lost_and_not_sent_again(server: StashTestServer) -> None:
    server.drop_reply_after("TagCreate")

    with pytest.raises(StashReplyLostError, match="TagCreate, but its answer was lost") as raised:
        client_of(server).create_tag("Kissing", "", [])

    assert (raised.value.operation, raised.value.in_flight) == ("TagCreate", False)
    assert requests_of(server, "TagCreate") == 1 and len(tags_named(server, "Kissing")) == 1


def test_a_creation_is_sent_again_when_stash_refused_the_connection(server: StashTestServer) -> None:
    server.stop()  # connection refused: nothing reached Stash
    client = StashClient(url=server.url, attempts=2, sleep=lambda _seconds: server.start())

    tag_id = client.create_tag("Kissing", "", [])

    assert tags_named(server, "Kissing") == [int(tag_id)] and requests_of(server, "TagCreate") == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_creation_a_proxy_answers_with_a_gateway_error_is_reported_lost_not_sent_again(
    server: StashTestServer, status: int
) -> None:
    server.fail_next(1, status=status)  # a proxy may answer so after it passed the request on

    with pytest.raises(StashReplyLostError) as raised:
        client_of(server).create_tag("Kissing", "", [])

    assert raised.value.in_flight == (status == 504)  # 504: the proxy stopped waiting, Stash may not have
    assert tags_named(server, "Kissing") == []  # a second try would have made it


def test_a_creation_without_an_answer_in_time_is_reported_lost_and_maybe_still_applying(
    server: StashTestServer,
) -> None:
    release = threading.Event()
    server.before_mutation = lambda _operation: not release.wait(10)  # Stash is busy
    client = StashClient(url=server.url, attempts=3, timeout=0.3, sleep=lambda _seconds: None)
    try:
        with pytest.raises(StashReplyLostError) as raised:
            client.create_tag("Kissing", "", [])
    finally:
        release.set()

    assert raised.value.in_flight and requests_of(server, "TagCreate") == 1


def test_an_answer_cut_short_is_a_lost_answer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_half(connection: socket.socket) -> None:
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                head, body = request.split(b"\r\n\r\n", 1)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:  # read it all, or closing would reset the connection
                    body += connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: 100\r\n\r\n{\"data\": {")

        def serve() -> None:
            connection, _ = listener.accept()
            answer_half(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = StashClient(url=f"http://127.0.0.1:{listener.getsockname()[1]}", attempts=3,
                             sleep=lambda _seconds: None)

        with pytest.raises(StashReplyLostError, match="cut short"):
            client.create_tag("Kissing", "", [])
        thread.join(5)
