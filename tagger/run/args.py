"""Checks of a task's arguments (Stash's ``args``, or the command line's): each refusal names the
argument and says what to give, the way the configuration's checks do.
"""

from __future__ import annotations

from typing import Any

from tagger.errors import ConfigError


def optional_whole(args: dict[str, Any], key: str, *, low: int = 0, high: int | None = None) -> int | None:
    """``args[key]`` as a whole number from ``low`` (to ``high``, when given); None when absent.

    Raises:
        ConfigError: not a whole number, or out of range.
    """
    value = args.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a whole number") from None
    if high is None and number < low:
        raise ConfigError(f"{key}: {value!r} must be {low} or more")
    if high is not None and not low <= number <= high:
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {low}..{high}")
    return number


def whole(args: dict[str, Any], key: str, *, default: int, low: int, high: int) -> int:
    """``args[key]`` as a whole number in ``low..high``; ``default`` when absent.

    Raises:
        ConfigError: see ``optional_whole``.
    """
    number = optional_whole(args, key, low=low, high=high)
    return default if number is None else number


def required_whole(args: dict[str, Any], key: str, *, low: int, high: int, hint: str) -> int:
    """``args[key]`` as a whole number in ``low..high``; ``hint`` says what to give when absent.

    Raises:
        ConfigError: absent, or see ``optional_whole``.
    """
    number = optional_whole(args, key, low=low, high=high)
    if number is None:
        raise ConfigError(f"{key}: missing; {hint}")
    return number


def required_text(args: dict[str, Any], key: str, *, hint: str) -> str:
    """``args[key]`` as text without surrounding spaces; ``hint`` says what to give when absent.

    Raises:
        ConfigError: absent or blank.
    """
    text = str(args.get(key) or "").strip()
    if not text:
        raise ConfigError(f"{key}: missing; {hint}")
    return text
