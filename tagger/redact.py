"""The one place that knows what a secret looks like, and takes it out of text before it leaves.

Secrets (Stash's API key, its session cookie, the worker token) must never reach a log line, the
task's output, a stored row or a worker's answer. Two nets, applied at every exit:

- values the process was given are *registered* (``register_secret``) when they arrive, and any
  occurrence of them is replaced, whatever the text around them;
- the shapes secrets travel in (``apikey=`` in a URL, an ``ApiKey:`` or ``Cookie:`` header, a
  ``session=`` cookie, ``Authorization: Bearer``, ``token=``) are replaced even when the value was
  never registered (a URL Stash built for another key, a header quoted by a library).

Standard library only: the Stash-side entry, the hook and the relay use it.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from typing import Any

MASK = "***"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: masking every "a" or "1" would garble every message."""

SECRET_QUERY_PARAMS = frozenset({"apikey", "api_key", "token", "access_token", "session"})
"""URL query parameters whose value is a credential (Stash puts ``apikey`` in its stream URLs)."""

_PATTERNS = (
    # apikey=KEY (a URL, a form), also percent-encoded or in JSON-escaped text
    re.compile(r"(?i)((?:api_?key|access_token|token)=)[^&\s\"'#<>\\]+"),
    # headers: "ApiKey: KEY", "ApiKey": "KEY", 'ApiKey': 'KEY', Authorization: Bearer KEY
    re.compile(r"(?i)(\bapi_?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(\b(?:worker_)?token[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{12,}"),
    # cookies: "Cookie: session=VALUE; other=VALUE", session=VALUE anywhere
    re.compile(r"(?i)(\bcookie[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n}]+"),
    re.compile(r"(?i)(\bsession=)[^;&\s\"'\\]+"),
)

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret this process holds, so that ``redact`` masks it wherever it appears."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    with _lock:
        _known.update(forms)


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped value masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)  # longest first: a value inside another
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def redact_data(value: Any) -> Any:
    """A JSON-like value with every string redacted (dict keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value


def url_without_secrets(url: str) -> str:
    """``url`` without credential query parameters (``apikey``...): send those as headers instead."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in SECRET_QUERY_PARAMS]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))
