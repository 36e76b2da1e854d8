"""A client of one model behind an OpenAI-compatible chat API (an entry of ``remote_models``).

``ChatClient.complete`` sends chat messages and returns the answer as a JSON object that has been
checked against the JSON schema the caller gave. Around that one call:

- the key is read once, from the environment variable or file the entry names (never from the
  configuration), registered with ``tagger.redact`` and sent as ``Authorization: Bearer``;
- ``response_format`` asks for the schema (``json_schema``, strict); a server that refuses that
  with a 400 about ``response_format`` is asked for ``json_object`` instead, from then on;
- 429 and 5xx answers, timeouts and connection errors are retried with exponential backoff
  (``Retry-After`` honoured, capped); other 4xx answers are not retried;
- ``requests_per_minute`` is kept (a sliding minute), and the run's budget of requests and tokens;
- a circuit breaker: after ``BREAKER_LIMIT`` failed calls in a row, every further call fails at
  once until the run (this client) ends.

Every failure is a ``RemoteModelError`` naming the entry and its host. Nothing builds a client
unless ``remote_models`` has an entry: with none, nothing is ever sent.

The answer is checked with ``schema_problem``, a validator of the small JSON-Schema subset the
tagger's prompts use (below), rather than the ``jsonschema`` package, which the runtime does not
otherwise need.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tagger.config import RemoteModel
from tagger.errors import RemoteModelError
from tagger.redact import redact, register_secret

Log = Callable[[str, str], None]
Messages = list[dict[str, Any]]
Schema = dict[str, Any]

MAX_ATTEMPTS = 4
"""Tries of one request (the first included) on 429, 5xx, timeouts and connection errors."""
BACKOFF_SECONDS = 1.0
"""Wait before the second try; doubled before each further one."""
MAX_WAIT_SECONDS = 60.0
"""The longest wait between tries, whatever ``Retry-After`` asks."""
BREAKER_LIMIT = 5
"""Failed calls in a row after which the client makes no further calls."""
MESSAGE_CHARS = 300
"""Characters of a server's error message quoted in ours."""


@dataclass(frozen=True)
class ChatAnswer:
    """A checked answer: the JSON object, the tokens it cost, how long it took, tries it needed."""

    data: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    latency: float
    attempts: int


def read_key(entry: RemoteModel) -> str:
    """The entry's API key from its environment variable or file ("" when it names neither)."""
    where = f"remote model {entry.name!r}"
    if entry.api_key_env:
        key = os.environ.get(entry.api_key_env, "").strip()
        if not key:
            raise RemoteModelError(f"{where}: environment variable {entry.api_key_env} is not set or "
                                   "empty; set it to the API key, or remove api_key_env")
    elif entry.api_key_file:
        try:
            lines = Path(entry.api_key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise RemoteModelError(f"{where}: cannot read api_key_file {entry.api_key_file}: "
                                   f"{getattr(error, 'strerror', None) or error}") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise RemoteModelError(f"{where}: the first line of {entry.api_key_file} is empty; "
                                   "write the API key there")
    else:
        return ""
    register_secret(key)
    return key


class ChatClient:
    """One entry's chat API for one run: retries, rate, budget and breaker live as long as it."""

    def __init__(self, entry: RemoteModel, *, log: Log, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.entry = entry
        self.where = f"remote model {entry.name!r} ({entry.host})"
        self._log, self._sleep, self._clock = log, sleep, clock
        key = read_key(entry)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=entry.base_url, headers=headers,
                                  timeout=httpx.Timeout(entry.timeout))
        self.json_schema = True  # False once the server refused a json_schema response_format
        self.requests = 0
        self.tokens = 0
        self._failures = 0
        self._last_failure = ""
        self._sent: deque[float] = deque()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def complete(self, messages: Messages, schema: Schema, schema_name: str) -> ChatAnswer:
        """The model's answer to ``messages``, a JSON object valid under ``schema``.

        Raises:
            RemoteModelError: no usable answer (naming the entry, its host, and why), or the run's
                budget is spent, or the circuit breaker is open.
        """
        if self._failures >= BREAKER_LIMIT:
            raise RemoteModelError(f"{self.where}: {self._failures} calls in a row failed (the last: "
                                   f"{self._last_failure}); no further calls to it in this run")
        self._check_budget()
        try:
            answer = self._complete(messages, schema, schema_name)
        except RemoteModelError as error:
            self._failures += 1
            self._last_failure = str(error).removeprefix(self.where + ": ")
            raise
        self._failures = 0
        return answer

    def _complete(self, messages: Messages, schema: Schema, schema_name: str) -> ChatAnswer:
        start = self._clock()
        response, attempts = self._send(self._body(messages, schema, schema_name))
        if self.json_schema and response.status_code == 400 and _about_response_format(response):
            self.json_schema = False
            self._log("warning", f"{self.where}: the server does not take a JSON schema "
                                 "(response_format json_schema); asking for a JSON object from now on")
            response, more = self._send(self._body(messages, schema, schema_name))
            attempts += more
        if response.status_code != 200:
            raise RemoteModelError(self._refusal(response))
        content, prompt_tokens, completion_tokens = self._read(response)
        self.tokens += prompt_tokens + completion_tokens
        data = self._parse(content, schema)
        return ChatAnswer(data, prompt_tokens, completion_tokens, self._clock() - start, attempts)

    def _body(self, messages: Messages, schema: Schema, schema_name: str) -> dict[str, Any]:
        if self.json_schema:
            response_format: dict[str, Any] = {
                "type": "json_schema", "json_schema": {"name": schema_name, "strict": True, "schema": schema}}
        else:
            response_format = {"type": "json_object"}
        return {"model": self.entry.model, "messages": messages, "response_format": response_format}

    def _check_budget(self) -> None:
        entry = self.entry
        if self.requests >= entry.max_requests_per_run:
            raise RemoteModelError(f"{self.where}: this run's budget of {entry.max_requests_per_run} "
                                   "requests (max_requests_per_run) is spent; no further calls")
        if self.tokens >= entry.max_tokens_per_run:
            raise RemoteModelError(f"{self.where}: this run's budget of {entry.max_tokens_per_run} tokens "
                                   f"(max_tokens_per_run) is spent ({self.tokens} used); no further calls")

    def _send(self, body: dict[str, Any]) -> tuple[httpx.Response, int]:
        """POST ``body``, retrying 429, 5xx, timeouts and lost connections; the last answer, tries."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._check_budget()
            self._keep_rate()
            self.requests += 1
            try:
                response = self._http.post("chat/completions", json=body)
            except httpx.TimeoutException:
                problem, wait = f"no answer within {self.entry.timeout:g} s (timeout)", None
            except httpx.TransportError as error:
                problem, wait = f"cannot connect: {redact(str(error)) or type(error).__name__}", None
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response, attempt
                problem, wait = f"HTTP {response.status_code}: {_message(response)}", _retry_after(response)
            if attempt == MAX_ATTEMPTS:
                raise RemoteModelError(f"{self.where}: no answer after {attempt} tries; the last: {problem}")
            wait = min(MAX_WAIT_SECONDS, wait if wait is not None else BACKOFF_SECONDS * 2 ** (attempt - 1))
            self._log("warning", f"{self.where}: {problem}; trying again in {wait:g} s "
                                 f"(try {attempt + 1} of {MAX_ATTEMPTS})")
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _keep_rate(self) -> None:
        """Wait until a request fits in ``requests_per_minute`` (a sliding minute)."""
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.entry.requests_per_minute:
            self._sleep(60.0 - (now - self._sent[0]))
            self._sent.popleft()
            now = self._clock()
        self._sent.append(now)

    def _refusal(self, response: httpx.Response) -> str:
        status, message = response.status_code, _message(response)
        if status in (401, 403):
            source = self.entry.key_source
            fix = (f"check the key in {source}" if source
                   else "it sends no key: set api_key_env or api_key_file")
            return f"{self.where}: the server refused the key (HTTP {status}: {message}); {fix}"
        return f"{self.where}: the server refused the request (HTTP {status}: {message})"

    def _read(self, response: httpx.Response) -> tuple[str, int, int]:
        """The answer's content and its prompt and completion tokens."""
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
            usage = body.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteModelError(f"{self.where}: the answer is not an OpenAI chat completion: "
                                   f"{redact(response.text[:MESSAGE_CHARS])!r}") from None
        if not isinstance(content, str):
            raise RemoteModelError(f"{self.where}: the answer has no text content")
        return content, *tokens

    def _parse(self, content: str, schema: dict[str, Any]) -> dict[str, Any]:
        text = _without_fence(content)
        try:
            data = json.loads(text)
        except ValueError:
            raise RemoteModelError(f"{self.where}: the answer is not JSON: "
                                   f"{redact(text[:MESSAGE_CHARS])!r}") from None
        problem = schema_problem(data, schema)
        if problem:
            raise RemoteModelError(f"{self.where}: the answer does not fit the schema: {problem}")
        return data


def _without_fence(content: str) -> str:
    """``content`` without a Markdown code fence around it (models in json_object mode add one)."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        text = text[4:] if text.startswith("json") else text
    return text.strip()


def _message(response: httpx.Response) -> str:
    """The server's error message (OpenAI's ``{"error": {"message"}}``, else its text), redacted."""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = message if isinstance(message, str) and message else response.text or response.reason_phrase
    return redact(text.strip()[:MESSAGE_CHARS])


def _about_response_format(response: httpx.Response) -> bool:
    message = _message(response).lower()
    return "response_format" in message or "json_schema" in message


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds (an HTTP date is not honoured)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_problem(value: Any, schema: dict[str, Any], where: str = "$") -> str | None:
    """The first way ``value`` breaks ``schema``, or None when it fits.

    The subset: ``type`` (a name or a list of names), ``enum``, ``minimum``/``maximum``,
    ``properties``/``required``/``additionalProperties: false``, ``items``, ``minItems``/``maxItems``.
    """
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_TYPES[kind](value) for kind in kinds):
        return f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: {value!r} is below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: {value!r} is above {schema['maximum']}"
    if isinstance(value, dict):
        return _object_problem(value, schema, where)
    if isinstance(value, list):
        return _array_problem(value, schema, where)
    return None


def _object_problem(value: dict[str, Any], schema: dict[str, Any], where: str) -> str | None:
    properties = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in value]
    if missing:
        return f"{where}: {missing[0]!r} is missing"
    if schema.get("additionalProperties") is False:
        extra = [name for name in value if name not in properties]
        if extra:
            return f"{where}: {extra[0]!r} is not allowed"
    for name, item in value.items():
        if name in properties:
            problem = schema_problem(item, properties[name], f"{where}.{name}")
            if problem:
                return problem
    return None


def _array_problem(value: list[Any], schema: dict[str, Any], where: str) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return f"{where}: {len(value)} items, fewer than {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{where}: {len(value)} items, more than {schema['maxItems']}"
    for index, item in enumerate(value):
        problem = schema_problem(item, schema.get("items", {}), f"{where}[{index}]")
        if problem:
            return problem
    return None
