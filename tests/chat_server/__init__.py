"""A stand-in OpenAI-compatible chat completions server for the project's tests.

``ChatTestServer`` speaks the wire protocol of ``POST /v1/chat/completions`` and
``GET /v1/models`` as OpenAI's API does, and as the servers that copy it do (Ollama's ``/v1``,
vLLM, LM Studio, llama.cpp's ``llama-server`` and API gateways): bearer-token authentication,
request validation with 400/401/404 answers in OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``, ``response_format`` with ``json_object``
and ``json_schema`` (or, like servers without structured outputs, a 400 for ``json_schema``),
vision messages with base64 ``data:`` image URLs, and a ``usage`` block on every answer.

It does not generate anything: the answers are scripted by the test (``answer``,
``answer_with``), and faults (429 with ``Retry-After``, 5xx, slow answers) are injected with
``fail_next`` and ``delay_next``. It never fetches an ``http(s)`` image URL (it refuses them),
does not stream (``stream: true`` gets a 400), and has no tools or function calling.
"""

from .server import DEFAULT_ANSWER, ChatTestServer

__all__ = ["DEFAULT_ANSWER", "ChatTestServer"]
