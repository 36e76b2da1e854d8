"""Validation of a chat completions request body, as OpenAI-compatible servers do it.

Every check raises ``RequestError`` with the HTTP status and the fields of OpenAI's error
object. Messages follow OpenAI's wording where it has one ("you must provide a model
parameter", "Invalid type for 'messages[0].content'..."), so a client that shows the server's
message shows something realistic.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

ROLES = ("system", "user", "assistant")
IMAGE_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
TOKENS_PER_IMAGE = 85
"""Prompt tokens counted per image (OpenAI's cost of a low-detail image)."""

_DATA_URL = re.compile(r"data:image/(jpeg|png);base64,(.*)", re.DOTALL)
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RequestError(Exception):
    """A request the server refuses: ``status`` and OpenAI's ``error`` object fields."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def _bad(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, message, param, code)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_request(body: Any, models: tuple[str, ...], json_schema: bool) -> int:
    """Check a decoded request body; return its prompt token count (raises ``RequestError``)."""
    if not isinstance(body, dict):
        raise _bad("Invalid type for request body: expected an object.")
    model = body.get("model")
    if model is None:
        raise _bad("you must provide a model parameter", "model")
    if not isinstance(model, str):
        raise _bad(f"Invalid type for 'model': expected a string, but got {type(model).__name__}.",
                   "model", "invalid_type")
    messages = body.get("messages")
    if messages is None:
        raise _bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise _bad("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise _bad("Invalid 'messages': empty array. Expected an array with minimum length 1.",
                   "messages", "empty_array")
    words = images = 0
    for index, message in enumerate(messages):
        counted = _check_message(message, f"messages[{index}]")
        words += counted[0]
        images += counted[1]
    _check_options(body, json_schema)
    if model not in models:
        raise RequestError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           None, "model_not_found")
    return words + TOKENS_PER_IMAGE * images


def _check_message(message: Any, where: str) -> tuple[int, int]:
    """Check one message; return (text words, images) in it."""
    if not isinstance(message, dict):
        raise _bad(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
    role = message.get("role")
    if role is None:
        raise _bad(f"Missing required parameter: '{where}.role'.", f"{where}.role",
                   "missing_required_parameter")
    if role not in ROLES:
        raise _bad(f"Invalid value: '{role}'. Supported values are: 'system', 'user' and 'assistant'.",
                   f"{where}.role", "invalid_value")
    if "content" not in message or message["content"] is None:
        raise _bad(f"Missing required parameter: '{where}.content'.", f"{where}.content",
                   "missing_required_parameter")
    content = message["content"]
    if isinstance(content, str):
        return len(content.split()), 0
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{where}.content': expected one of a string or array of "
                   f"objects.", f"{where}.content", "invalid_type")
    if not content:
        raise _bad(f"Invalid '{where}.content': empty array. Expected an array with minimum length 1.",
                   f"{where}.content", "empty_array")
    words = images = 0
    for index, part in enumerate(content):
        kind = _check_part(part, f"{where}.content[{index}]", role)
        if kind == "image_url":
            images += 1
        else:
            words += len(part["text"].split())
    return words, images


def _check_part(part: Any, where: str, role: str) -> str:
    """Check one content part; return its type."""
    if not isinstance(part, dict):
        raise _bad(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _bad(f"Invalid type for '{where}.text': expected a string.", f"{where}.text",
                       "invalid_type")
        return kind
    if kind != "image_url":
        raise _bad(f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.",
                   f"{where}.type", "invalid_value")
    if role != "user":
        raise _bad(f"Image URLs are only allowed for messages with role 'user', but this message "
                   f"with role '{role}' contains an image URL.", where, "invalid_value")
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise _bad(f"Missing required parameter: '{where}.image_url.url'.", f"{where}.image_url.url",
                   "missing_required_parameter")
    detail = image.get("detail", "auto")
    if detail not in ("auto", "low", "high"):
        raise _bad(f"Invalid value: '{detail}'. Supported values are: 'auto', 'low' and 'high'.",
                   f"{where}.image_url.detail", "invalid_value")
    _check_image_url(url, f"{where}.image_url.url")
    return kind


def _check_image_url(url: str, where: str) -> None:
    """Accept only a base64 JPEG/PNG ``data:`` URL whose bytes are what it says."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        # A real server would fetch an http(s) URL; the stand-in refuses, as the tagger must never
        # make a model server fetch anything.
        raise _bad("Invalid image URL: expected a base64-encoded data URL with an image MIME type "
                   "(image/jpeg or image/png).", where, "invalid_image_url")
    kind, payload = match.groups()
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Invalid image URL: the data URL is not valid base64.", where,
                   "invalid_image_url") from None
    if not data.startswith(IMAGE_MAGIC[kind]):
        raise _bad(f"You uploaded an unsupported image. The data is not a valid image/{kind} file.",
                   where, "invalid_image_format")


def _check_options(body: dict[str, Any], json_schema: bool) -> None:
    """Check the sampling and output options the tagger may send."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _bad(f"Invalid '{name}': expected an integer greater than or equal to 1, "
                       f"but got {value!r}.", name, "invalid_value")
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        raise _bad(f"Invalid 'temperature': expected a number between 0 and 2, but got {temperature!r}.",
                   "temperature", "invalid_value")
    if body.get("stream"):
        raise _bad("Streaming is not supported by the stand-in server.", "stream", "unsupported_value")
    if "response_format" in body and body["response_format"] is not None:
        _check_response_format(body["response_format"], json_schema)


def _check_response_format(value: Any, json_schema: bool) -> None:
    """``text``, ``json_object`` or ``json_schema`` (when the server supports it)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise _bad(f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and "
                   f"'json_schema'.", "response_format.type", "invalid_value")
    if not json_schema:
        # As servers without structured outputs answer (e.g. older llama.cpp, LM Studio, gateways).
        raise _bad("response_format type 'json_schema' is not supported by this server; "
                   "supported types are 'text' and 'json_object'.", "response_format.type",
                   "unsupported_value")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise _bad("Missing required parameter: 'response_format.json_schema'.",
                   "response_format.json_schema", "missing_required_parameter")
    name = spec.get("name")
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise _bad(f"Invalid 'response_format.json_schema.name': {name!r} does not match "
                   f"'^[a-zA-Z0-9_-]{{1,64}}$'.", "response_format.json_schema.name", "invalid_value")
    if not isinstance(spec.get("schema"), dict):
        raise _bad("Invalid type for 'response_format.json_schema.schema': expected an object.",
                   "response_format.json_schema.schema", "invalid_type")
    if "strict" in spec and spec["strict"] is not None and not isinstance(spec["strict"], bool):
        raise _bad("Invalid type for 'response_format.json_schema.strict': expected a boolean.",
                   "response_format.json_schema.strict", "invalid_type")
