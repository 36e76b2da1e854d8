"""The stand-in chat server behaves like an OpenAI-compatible one, errors included (real HTTP)."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chat_server import DEFAULT_ANSWER, ChatTestServer
from tests.stash_server.server import DEFAULT_IMAGE

PNG_URL = "data:image/png;base64," + base64.b64encode(DEFAULT_IMAGE).decode()
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
SCHEMA = {"type": "object", "properties": {"labels": {"type": "array", "items": {"type": "string"}}}}


def call(server: ChatTestServer, body: Any, headers: dict[str, str] | None = None,
         path: str = "/chat/completions", timeout: float = 10,
         raw: bytes | None = None) -> tuple[int, dict[str, Any], Any]:
    """POST a body (JSON-encoded unless ``raw``); return (status, decoded body, headers)."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers


def chat(content: Any = "Describe.", **extra: Any) -> dict[str, Any]:
    """A valid chat request for the default model, with ``extra`` top-level fields."""
    return {"model": "llava:7b", "messages": [{"role": "user", "content": content}], **extra}


def assert_error(status: int, body: dict[str, Any], expected: int, param: str | None = None,
                 code: str | None = None) -> None:
    """The answer is ``expected`` with OpenAI's error object."""
    assert status == expected
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code


@pytest.fixture
def server() -> Iterator[ChatTestServer]:
    with ChatTestServer() as srv:
        yield srv


def test_image_request_gets_scripted_answer_and_usage(server: ChatTestServer) -> None:
    server.answer('{"labels": ["beach", "sunset"], "description": "A beach at dusk"}')
    body = chat([{"type": "text", "text": "Tag this frame please"},
                 {"type": "image_url", "image_url": {"url": PNG_URL}},
                 {"type": "image_url", "image_url": {"url": JPEG_URL, "detail": "low"}}],
                max_tokens=200, temperature=0,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "tags", "schema": SCHEMA, "strict": True}})
    body["messages"].insert(0, {"role": "system", "content": "You tag videos."})
    status, answer, _ = call(server, body)
    assert status == 200
    assert answer["id"] == "chatcmpl-1" and answer["object"] == "chat.completion"
    assert isinstance(answer["created"], int) and answer["model"] == "llava:7b"
    assert answer["choices"] == [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": '{"labels": ["beach", "sunset"], "description": "A beach at dusk"}'}}]
    assert answer["usage"] == {"prompt_tokens": 3 + 4 + 2 * 85, "completion_tokens": 8,
                               "total_tokens": 3 + 4 + 170 + 8}
    assert server.requests == [body]


def test_default_answer_and_last_answer_repeats(server: ChatTestServer) -> None:
    assert call(server, chat())[1]["choices"][0]["message"]["content"] == DEFAULT_ANSWER
    server.answer("first", times=2)
    server.answer("not json")
    texts = [call(server, chat())[1]["choices"][0]["message"]["content"] for _ in range(5)]
    assert texts == ["first", "first", "not json", "not json", "not json"]
    assert [call(server, chat())[1]["id"] for _ in range(2)] == ["chatcmpl-7", "chatcmpl-8"]


def test_answer_with_computes_from_request(server: ChatTestServer) -> None:
    server.answer("queued")
    server.answer_with(lambda request: f"{len(request['messages'])} messages")
    assert call(server, chat())[1]["choices"][0]["message"]["content"] == "1 messages"
    server.answer_with(None)
    assert call(server, chat())[1]["choices"][0]["message"]["content"] == "queued"


def test_answer_function_failure_is_500(server: ChatTestServer) -> None:
    server.answer_with(lambda request: 1 / 0)  # type: ignore[arg-type, return-value]
    status, body, _ = call(server, chat())
    assert_error(status, body, 500)
    assert body["error"]["type"] == "server_error"


def test_models_list(server: ChatTestServer) -> None:
    with ChatTestServer(models=("llava:7b", "qwen2.5vl")) as srv, \
            urllib.request.urlopen(srv.url + "/models", timeout=10) as response:
        listing = json.loads(response.read())
    assert listing == {"object": "list", "data": [
        {"id": "llava:7b", "object": "model", "created": 0, "owned_by": "stand-in"},
        {"id": "qwen2.5vl", "object": "model", "created": 0, "owned_by": "stand-in"}]}


def test_unknown_path_is_404(server: ChatTestServer) -> None:
    status, body, _ = call(server, chat(), path="/completions")
    assert_error(status, body, 404)
    assert body["error"]["message"] == "Invalid URL (POST /v1/completions)"


def test_unknown_model_is_404(server: ChatTestServer) -> None:
    status, body, _ = call(server, {**chat(), "model": "gpt-4o"})
    assert_error(status, body, 404, code="model_not_found")


def test_body_not_json_is_400(server: ChatTestServer) -> None:
    status, body, _ = call(server, None, raw=b"{not json")
    assert_error(status, body, 400)
    assert server.requests == []


def test_body_not_object_is_400(server: ChatTestServer) -> None:
    status, body, _ = call(server, ["model", "llava:7b"])
    assert_error(status, body, 400)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": 7, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "llava:7b"}, "messages"),
    ({"model": "llava:7b", "messages": []}, "messages"),
    ({"model": "llava:7b", "messages": "hi"}, "messages"),
])
def test_model_and_messages_are_required(server: ChatTestServer, body: dict[str, Any], param: str) -> None:
    status, answer, _ = call(server, body)
    assert_error(status, answer, 400, param=param)


@pytest.mark.parametrize(("message", "param"), [
    ({"content": "hi"}, "messages[0].role"),
    ({"role": "tool", "content": "hi"}, "messages[0].role"),
    ({"role": "user"}, "messages[0].content"),
    ({"role": "user", "content": None}, "messages[0].content"),
    ({"role": "user", "content": 5}, "messages[0].content"),
    ({"role": "user", "content": []}, "messages[0].content"),
    ("hello", "messages[0]"),
])
def test_message_needs_role_and_content(server: ChatTestServer, message: Any, param: str) -> None:
    status, body, _ = call(server, {"model": "llava:7b", "messages": [message]})
    assert_error(status, body, 400, param=param)


@pytest.mark.parametrize(("part", "param", "code"), [
    ({"type": "input_audio", "input_audio": {}}, "messages[0].content[0].type", "invalid_value"),
    ({"type": "text", "text": 3}, "messages[0].content[0].text", "invalid_type"),
    ({"type": "image_url", "image_url": "x"}, "messages[0].content[0].image_url.url",
     "missing_required_parameter"),
    ({"type": "image_url", "image_url": {"url": "http://example.com/a.jpg"}},
     "messages[0].content[0].image_url.url", "invalid_image_url"),
    ({"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}},
     "messages[0].content[0].image_url.url", "invalid_image_url"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
     "messages[0].content[0].image_url.url", "invalid_image_url"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                + base64.b64encode(b"plain text").decode()}},
     "messages[0].content[0].image_url.url", "invalid_image_format"),
    ({"type": "image_url", "image_url": {"url": JPEG_URL.replace("jpeg", "png", 1)}},
     "messages[0].content[0].image_url.url", "invalid_image_format"),
    ({"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}},
     "messages[0].content[0].image_url.detail", "invalid_value"),
])
def test_bad_content_parts(server: ChatTestServer, part: Any, param: str, code: str) -> None:
    status, body, _ = call(server, chat([part]))
    assert_error(status, body, 400, param=param, code=code)


def test_image_only_in_user_messages(server: ChatTestServer) -> None:
    image = {"type": "image_url", "image_url": {"url": PNG_URL}}
    status, body, _ = call(server, {"model": "llava:7b", "messages": [
        {"role": "system", "content": [image]}, {"role": "user", "content": "hi"}]})
    assert_error(status, body, 400, param="messages[0].content[0]")


@pytest.mark.parametrize("value", [0, -5, 1.5, "100", True])
def test_max_tokens_must_be_positive_int(server: ChatTestServer, value: Any) -> None:
    status, body, _ = call(server, chat(max_tokens=value))
    assert_error(status, body, 400, param="max_tokens")


@pytest.mark.parametrize("value", [-0.1, 2.5, "0.2", False])
def test_temperature_must_be_in_range(server: ChatTestServer, value: Any) -> None:
    status, body, _ = call(server, chat(temperature=value))
    assert_error(status, body, 400, param="temperature")


@pytest.mark.parametrize("value", [0, 0.7, 2])
def test_temperature_in_range_is_accepted(server: ChatTestServer, value: float) -> None:
    assert call(server, chat(temperature=value))[0] == 200


@pytest.mark.parametrize("value", [{"type": "text"}, {"type": "json_object"}, None])
def test_plain_response_formats_are_accepted(server: ChatTestServer, value: Any) -> None:
    assert call(server, chat(response_format=value))[0] == 200


@pytest.mark.parametrize(("value", "param"), [
    ("json", "response_format.type"),
    ({"type": "yaml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a b", "schema": SCHEMA}},
     "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "tags", "schema": "{}"}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "tags", "schema": SCHEMA, "strict": "yes"}},
     "response_format.json_schema.strict"),
])
def test_bad_response_format(server: ChatTestServer, value: Any, param: str) -> None:
    status, body, _ = call(server, chat(response_format=value))
    assert_error(status, body, 400, param=param)


def test_json_schema_refused_when_unsupported() -> None:
    schema_format = {"type": "json_schema", "json_schema": {"name": "tags", "schema": SCHEMA}}
    with ChatTestServer(json_schema=False) as srv:
        status, body, _ = call(srv, chat(response_format=schema_format))
        assert_error(status, body, 400, param="response_format.type", code="unsupported_value")
        assert call(srv, chat(response_format={"type": "json_object"}))[0] == 200


def test_stream_is_refused(server: ChatTestServer) -> None:
    status, body, _ = call(server, chat(stream=True))
    assert_error(status, body, 400, param="stream")


def test_missing_api_key_is_401() -> None:
    with ChatTestServer(api_key="sk-secret-key") as srv:
        status, body, _ = call(srv, chat())
        assert_error(status, body, 401)
        assert body["error"]["code"] is None
        status, body, _ = call(srv, chat(), headers={"Authorization": "Basic c2stc2VjcmV0"})
        assert_error(status, body, 401)


def test_wrong_api_key_is_401() -> None:
    with ChatTestServer(api_key="sk-secret-key") as srv:
        status, body, _ = call(srv, chat(), headers={"Authorization": "Bearer sk-wrong-key-123"})
        assert_error(status, body, 401, code="invalid_api_key")
        assert "sk-wrong-key-123" not in body["error"]["message"]


def test_right_api_key_is_accepted_and_recorded() -> None:
    with ChatTestServer(api_key="sk-secret-key") as srv:
        status, _, _ = call(srv, chat(), headers={"Authorization": "Bearer sk-secret-key"})
        assert status == 200
        assert srv.headers[0]["authorization"] == "Bearer sk-secret-key"
        assert srv.headers[0]["content-type"] == "application/json"


def test_models_list_needs_api_key() -> None:
    with ChatTestServer(api_key="sk-secret-key") as srv:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(srv.url + "/models", timeout=10)
        assert caught.value.code == 401
        request = urllib.request.Request(srv.url + "/models",
                                         headers={"Authorization": "Bearer sk-secret-key"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def test_rate_limit_with_retry_after(server: ChatTestServer) -> None:
    server.fail_next(429, times=2, retry_after=0.5)
    for _ in range(2):
        status, body, headers = call(server, chat())
        assert_error(status, body, 429, code="rate_limit_exceeded")
        assert headers["Retry-After"] == "0.5" and headers["retry-after-ms"] == "500"
    assert call(server, chat())[0] == 200
    assert len(server.requests) == 3


def test_whole_retry_after_is_integer(server: ChatTestServer) -> None:
    server.fail_next(429, retry_after=2)
    assert call(server, chat())[2]["Retry-After"] == "2"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_in_openai_shape(server: ChatTestServer, status: int) -> None:
    server.fail_next(status, message="boom")
    code, body, headers = call(server, chat())
    assert_error(code, body, status)
    assert body["error"]["message"] == "boom" and body["error"]["type"] == "server_error"
    assert headers["Retry-After"] is None
    assert call(server, chat())[0] == 200


def test_failure_comes_after_authentication() -> None:
    with ChatTestServer(api_key="k") as srv:
        srv.fail_next(503)
        assert call(srv, chat())[0] == 401
        assert call(srv, chat(), headers={"Authorization": "Bearer k"})[0] == 503


def test_delay_makes_client_time_out(server: ChatTestServer) -> None:
    server.delay_next(1.0)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(server, chat(), timeout=0.2)
    started = time.monotonic()
    assert call(server, chat(), timeout=5)[0] == 200  # only the next answer was slow
    assert time.monotonic() - started < 0.5


def test_delayed_answer_arrives(server: ChatTestServer) -> None:
    server.delay_next(0.3)
    started = time.monotonic()
    assert call(server, chat())[0] == 200
    assert time.monotonic() - started >= 0.3


def test_connections_are_counted() -> None:
    with ChatTestServer() as srv:
        assert srv.connections == 0
        time.sleep(0.1)
        assert srv.connections == 0 and srv.requests == []
        call(srv, chat())
        call(srv, chat())
        assert srv.connections == 2  # urllib opens one connection per request


def test_stop_refuses_connections() -> None:
    srv = ChatTestServer().start()
    url = srv.url
    srv.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/models", timeout=2)
