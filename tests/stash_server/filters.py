"""FindFilterType paging/sorting/search and the *FilterType criteria, evaluated in Python.

Checked against stashapp/stash: ``pkg/models/find_filter.go`` (page < 1 means 1, per_page
defaults to 25, -1 means all, no upper cap, default direction ASC) and the sqlite filter
validation ("AND and OR cannot be used together"). ``q`` is split into words that must each
match one of the searched columns, case-insensitively, as Stash's LIKE search does. Filter
keys this fake does not implement raise :class:`UnsupportedFilterError` instead of being
silently ignored.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any

from .state import Record

Predicate = Callable[[Record], bool]
"""Tests one record against one criterion."""

KeyHandler = Callable[[Any], Predicate]
"""Builds a predicate from one criterion input value."""

DEFAULT_PER_PAGE = 25
"""Stash's page size when ``per_page`` is absent."""


class UnsupportedFilterError(Exception):
    """A filter key or modifier the test server does not emulate."""


def search_words(q: str) -> list[str]:
    """Split a ``q`` search string into lower-cased words (quoted phrases stay whole)."""
    try:
        words = shlex.split(q)
    except ValueError:
        words = q.split()
    return [w.lower() for w in words if w]


def matches_q(q: str | None, texts: Iterable[str | None]) -> bool:
    """Return True when every word of ``q`` occurs in one of ``texts`` (case-insensitive)."""
    if not q:
        return True
    lowered = [t.lower() for t in texts if t]
    return all(any(w in t for t in lowered) for w in search_words(q))


def paginate(items: list[Record], find_filter: dict[str, Any] | None) -> list[Record]:
    """Return the page of ``items`` selected by ``find_filter`` (pages start at 1)."""
    ff = find_filter or {}
    per_page = ff.get("per_page")
    if per_page is not None and per_page < 0:
        return items
    size = DEFAULT_PER_PAGE if per_page is None else per_page
    page = ff.get("page") or 1
    page = max(page, 1)
    return items[(page - 1) * size: page * size]


def sort_records(
    items: list[Record], find_filter: dict[str, Any] | None,
    keys: dict[str, Callable[[Record], Any]], default: str,
) -> list[Record]:
    """Sort by ``find_filter.sort`` (one of ``keys``) and direction, ties broken by id."""
    ff = find_filter or {}
    sort = ff.get("sort") or default
    if sort not in keys:
        raise UnsupportedFilterError(f"invalid sort: {sort}")
    reverse = ff.get("direction") == "DESC"
    key = keys[sort]
    return sorted(items, key=lambda r: (_none_last(key(r)), r["id"]), reverse=reverse)


def _none_last(value: Any) -> tuple[int, Any]:
    """Make None sortable next to strings and numbers."""
    return (1, "") if value is None else (0, value)


# ---- criteria ------------------------------------------------------------------------

def multi_criterion(
    get_ids: Callable[[Record], list[int]],
    expand: Callable[[int, int | None], set[int]] | None = None,
) -> KeyHandler:
    """Handle (Hierarchical)MultiCriterionInput against the ids ``get_ids`` returns."""
    def build(crit: dict[str, Any]) -> Predicate:
        depth = crit.get("depth")
        def grow(raw: Iterable[str]) -> list[set[int]]:
            return [expand(int(v), depth) if expand else {int(v)} for v in raw]
        values = grow(crit.get("value") or [])
        excluded = set().union(*grow(crit.get("excludes") or []))
        test = _MULTI_MODIFIERS.get(crit["modifier"])
        if test is None:
            raise UnsupportedFilterError(f"modifier {crit['modifier']} on a multi criterion")
        return lambda r: test(set(get_ids(r)), values) and not (set(get_ids(r)) & excluded)
    return build


_MULTI_MODIFIERS: dict[str, Callable[[set[int], list[set[int]]], bool]] = {
    "INCLUDES": lambda ids, vals: any(ids & v for v in vals),
    "INCLUDES_ALL": lambda ids, vals: all(ids & v for v in vals),
    "EXCLUDES": lambda ids, vals: not any(ids & v for v in vals),
    "IS_NULL": lambda ids, vals: not ids,
    "NOT_NULL": lambda ids, vals: bool(ids),
}
"""How each modifier tests a record's id set against the (expanded) criterion values."""


def string_criterion(get_texts: Callable[[Record], list[str | None]]) -> KeyHandler:
    """Handle StringCriterionInput; a record matches when any of its texts does."""
    def build(crit: dict[str, Any]) -> Predicate:
        value, mod = crit["value"], crit["modifier"]
        tests: dict[str, Callable[[list[str]], bool]] = {
            "EQUALS": lambda ts: any(t.lower() == value.lower() for t in ts),
            "NOT_EQUALS": lambda ts: not any(t.lower() == value.lower() for t in ts),
            "INCLUDES": lambda ts: matches_q(value, ts),
            "EXCLUDES": lambda ts: not any(matches_q(value, [t]) for t in ts),
            "IS_NULL": lambda ts: not ts,
            "NOT_NULL": lambda ts: bool(ts),
            "MATCHES_REGEX": lambda ts: any(re.search(value, t) for t in ts),
            "NOT_MATCHES_REGEX": lambda ts: not any(re.search(value, t) for t in ts),
        }
        if mod not in tests:
            raise UnsupportedFilterError(f"modifier {mod} on a string criterion")
        return lambda r: tests[mod]([t for t in get_texts(r) if t])
    return build


def int_criterion(get_value: Callable[[Record], int]) -> KeyHandler:
    """Handle IntCriterionInput (EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN, BETWEEN)."""
    def build(crit: dict[str, Any]) -> Predicate:
        low, high, mod = crit["value"], crit.get("value2"), crit["modifier"]
        tests: dict[str, Callable[[int], bool]] = {
            "EQUALS": lambda v: v == low, "NOT_EQUALS": lambda v: v != low,
            "GREATER_THAN": lambda v: v > low, "LESS_THAN": lambda v: v < low,
            "BETWEEN": lambda v: high is not None and low <= v <= high,
            "NOT_BETWEEN": lambda v: high is not None and not low <= v <= high,
        }
        if mod not in tests:
            raise UnsupportedFilterError(f"modifier {mod} on an int criterion")
        return lambda r: tests[mod](get_value(r))
    return build


def bool_criterion(get_value: Callable[[Record], bool]) -> KeyHandler:
    """Handle a plain Boolean filter field such as ``organized``."""
    return lambda want: (lambda r: bool(get_value(r)) == want)


def compile_filter(
    filt: dict[str, Any] | None, handlers: dict[str, KeyHandler], name: str
) -> Predicate:
    """Compile a *FilterType input into one predicate, with Stash's AND/OR/NOT rules.

    Raises:
        UnsupportedFilterError: a key outside ``handlers``, or AND/OR/NOT combined.
    """
    if not filt:
        return lambda r: True
    subs = [k for k in ("AND", "OR", "NOT") if filt.get(k) is not None]
    if len(subs) > 1:
        raise UnsupportedFilterError(f"{subs[0]} and {subs[1]} cannot be used together")
    own = _own_criteria(filt, handlers, name)
    if not subs:
        return own
    sub = compile_filter(filt[subs[0]], handlers, name)
    combine: dict[str, Predicate] = {
        "AND": lambda r: own(r) and sub(r),
        "OR": lambda r: own(r) or sub(r),
        "NOT": lambda r: own(r) and not sub(r),
    }
    return combine[subs[0]]


def _own_criteria(filt: dict[str, Any], handlers: dict[str, KeyHandler], name: str) -> Predicate:
    """AND together the non-AND/OR/NOT criteria of one filter level."""
    preds: list[Predicate] = []
    for key, value in filt.items():
        if key in ("AND", "OR", "NOT") or value is None:
            continue
        if key not in handlers:
            raise UnsupportedFilterError(
                f"{name}.{key} is not supported by the test Stash server")
        preds.append(handlers[key](value))
    if not preds and filt.get("OR") is not None:
        # An OR level with no own criteria must not match everything on its own.
        return lambda r: False
    return lambda r: all(p(r) for p in preds)
