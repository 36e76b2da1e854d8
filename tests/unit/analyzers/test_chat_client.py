"""The client of a remote model (``remote_models``) against the stand-in OpenAI-compatible server."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagger.analyzers.chat_client import BREAKER_LIMIT, MAX_ATTEMPTS, ChatClient, schema_problem
from tagger.config import RemoteModel, build_config
from tagger.errors import RemoteModelError
from tests.chat_server import ChatTestServer

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-test-7f3a9c1e5b2d8f4a"
KEY_ENV = "AI_TAGGER_TEST_CHAT_KEY"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "themes": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "genre": {"type": "string", "enum": ["drama", "comedy", "documentary"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["themes", "genre", "confidence"],
    "additionalProperties": False,
}
GOOD = json.dumps({"themes": ["beach", "summer"], "genre": "comedy", "confidence": 0.8})
MESSAGES = [{"role": "user", "content": "What is this scene about?"}]


class Recorder:
    """Log lines and sleeps of one client."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.sleeps: list[float] = []

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatTestServer]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with ChatTestServer(api_key=KEY, models=("llava:7b",)) as running:
        yield running


def entry(server: ChatTestServer, **changes: Any) -> RemoteModel:
    item = {"name": "local", "base_url": server.url, "model": "llava:7b", "api_key_env": KEY_ENV, **changes}
    return build_config({"remote_models": [item]}).remote_models[0]


def client(server: ChatTestServer, recorder: Recorder, **changes: Any) -> ChatClient:
    return ChatClient(entry(server, **changes), log=recorder.log, sleep=recorder.sleep)


def test_a_valid_answer_is_parsed_and_checked_with_its_tokens_and_latency(server: ChatTestServer) -> None:
    server.answer(GOOD)
    with client(server, Recorder()) as chat:
        answer = chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert answer.data == json.loads(GOOD)
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert answer.latency > 0 and answer.attempts == 1
    sent = server.requests[0]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "scene_themes", "strict": True, "schema": SCHEMA}}
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("text, problem", [
    ("the scene is a comedy", "is not JSON"),
    (json.dumps({"themes": "beach", "genre": "comedy", "confidence": 0.8}), "$.themes: expected array"),
    (json.dumps({"themes": [], "genre": "comedy", "confidence": 0.8, "mood": "x"}), "'mood' is not allowed"),
    (json.dumps({"themes": [], "genre": "horror", "confidence": 0.8}), "'horror' is not one of"),
    (json.dumps({"themes": [], "genre": "comedy"}), "'confidence' is missing"),
])
def test_a_malformed_answer_is_an_error_naming_the_entry(
        server: ChatTestServer, text: str, problem: str) -> None:
    server.answer(text)
    with client(server, Recorder()) as chat, pytest.raises(RemoteModelError) as raised:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert f"remote model 'local' (127.0.0.1:{server.port})" in str(raised.value)
    assert problem in str(raised.value)


def test_429_waits_as_long_as_retry_after_asks_then_succeeds(server: ChatTestServer) -> None:
    server.fail_next(429, retry_after=7)
    server.answer(GOOD)
    recorder = Recorder()
    with client(server, recorder) as chat:
        answer = chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert recorder.sleeps == [7] and answer.attempts == 2 and len(server.requests) == 2


def test_a_server_error_is_retried_with_backoff_then_succeeds(server: ChatTestServer) -> None:
    server.fail_next(500, times=2)
    server.answer(GOOD)
    recorder = Recorder()
    with client(server, recorder) as chat:
        assert chat.complete(MESSAGES, SCHEMA, "scene_themes").attempts == 3
    assert recorder.sleeps == [1.0, 2.0]


def test_server_errors_on_every_try_give_up_naming_the_last(server: ChatTestServer) -> None:
    server.fail_next(503, times=MAX_ATTEMPTS)
    with client(server, Recorder()) as chat, pytest.raises(RemoteModelError, match="HTTP 503: The engine"):
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(server.requests) == MAX_ATTEMPTS


def test_a_bad_request_is_not_retried_and_quotes_the_server(server: ChatTestServer) -> None:
    server.fail_next(400, message="Invalid value for 'messages'.")
    recorder = Recorder()
    with client(server, recorder) as chat, pytest.raises(RemoteModelError) as raised:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert "HTTP 400: Invalid value for 'messages'." in str(raised.value)
    assert len(server.requests) == 1 and recorder.sleeps == []


def test_a_refused_key_names_where_the_key_comes_from_never_the_key(
        server: ChatTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-0123456789abcdef"
    monkeypatch.setenv(KEY_ENV, wrong)
    recorder = Recorder()
    with client(server, recorder) as chat, pytest.raises(RemoteModelError) as raised:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
    message = str(raised.value)
    assert "HTTP 401" in message and f"environment variable {KEY_ENV}" in message
    assert wrong not in message and len(server.requests) == 1


def test_a_slow_answer_times_out_and_is_tried_again(server: ChatTestServer) -> None:
    server.delay_next(3.0)
    server.answer(GOOD)
    recorder = Recorder()
    with client(server, recorder, timeout=0.3) as chat:
        answer = chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert answer.attempts == 2 and recorder.sleeps == [1.0]
    assert "timeout" in recorder.lines[0][1]


def test_a_server_without_json_schema_is_asked_for_a_json_object_from_then_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with ChatTestServer(api_key=KEY, json_schema=False) as server:
        server.answer(GOOD, times=2)
        recorder = Recorder()
        with client(server, recorder) as chat:
            assert chat.complete(MESSAGES, SCHEMA, "scene_themes").data["genre"] == "comedy"
            assert chat.complete(MESSAGES, SCHEMA, "scene_themes").attempts == 1
        kinds = [request["response_format"]["type"] for request in server.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert [level for level, _ in recorder.lines] == ["warning"]


def test_the_run_budget_of_requests_stops_further_calls(server: ChatTestServer) -> None:
    server.answer(GOOD)
    with client(server, Recorder(), max_requests_per_run=2) as chat:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
        with pytest.raises(RemoteModelError, match=r"budget of 2 requests \(max_requests_per_run\) is spent"):
            chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(server.requests) == 2


def test_the_run_budget_of_tokens_stops_further_calls(server: ChatTestServer) -> None:
    server.answer(GOOD)
    with client(server, Recorder(), max_tokens_per_run=5) as chat:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
        with pytest.raises(RemoteModelError, match="budget of 5 tokens"):
            chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(server.requests) == 1


def test_the_circuit_breaker_fails_fast_after_repeated_failures(server: ChatTestServer) -> None:
    server.fail_next(400, times=BREAKER_LIMIT, message="model is loading")
    server.answer(GOOD)
    with client(server, Recorder()) as chat:
        for _ in range(BREAKER_LIMIT):
            with pytest.raises(RemoteModelError, match="model is loading"):
                chat.complete(MESSAGES, SCHEMA, "scene_themes")
        with pytest.raises(RemoteModelError, match=f"{BREAKER_LIMIT} calls in a row failed"):
            chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(server.requests) == BREAKER_LIMIT


def test_requests_per_minute_is_kept(server: ChatTestServer) -> None:
    server.answer(GOOD)
    recorder = Recorder()
    with client(server, recorder, requests_per_minute=2) as chat:
        for _ in range(3):
            chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(recorder.sleeps) == 1 and 55 < recorder.sleeps[0] <= 60


def test_the_key_appears_in_no_log_line_or_error(server: ChatTestServer) -> None:
    server.fail_next(500)
    server.fail_next(429, retry_after=1)
    server.answer(GOOD)
    recorder = Recorder()
    with client(server, recorder) as chat:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
        server.fail_next(400, message=f"bad request from key {KEY}")
        with pytest.raises(RemoteModelError) as raised:
            chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert len(recorder.lines) == 2
    assert all(KEY not in message for _, message in recorder.lines)
    assert KEY not in str(raised.value) and "***" in str(raised.value)


def test_a_missing_key_is_named_before_anything_is_sent(
        server: ChatTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(RemoteModelError, match=f"environment variable {KEY_ENV} is not set"):
        client(server, Recorder())
    assert server.connections == 0


def test_a_key_file_gives_its_first_line(server: ChatTestServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\nnotes\n")
    server.answer(GOOD)
    with ChatClient(entry(server, api_key_env="", api_key_file=str(key_file)), log=Recorder().log) as chat:
        chat.complete(MESSAGES, SCHEMA, "scene_themes")
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"


def test_without_remote_models_nothing_builds_a_client_or_connects(server: ChatTestServer) -> None:
    assert build_config().remote_models == ()
    users = []
    for path in (ROOT / "tagger").rglob("*.py"):
        if path.name == "chat_client.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "chat_client" in node.module:
                users.append(str(path))
            if isinstance(node, ast.Name) and node.id == "ChatClient":
                users.append(str(path))
    # Today nothing in the package calls a remote model; the family that will builds its client
    # only from a configured entry.
    assert users == [] and server.connections == 0 and server.requests == []


def test_the_schema_subset_checks_types_bounds_and_nested_items() -> None:
    schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
    assert schema_problem([1, 2], schema) is None
    assert schema_problem([], schema) == "$: 0 items, fewer than 1"
    assert schema_problem([1, -1], schema) == "$[1]: -1 is below 0"
    assert schema_problem([True], schema) == "$[0]: expected integer, got bool"
    assert schema_problem(None, {"type": ["string", "null"]}) is None
