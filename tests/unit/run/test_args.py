"""Checks of a task's arguments: each refusal names the argument and says what to give."""

from __future__ import annotations

from typing import Any

import pytest

from tagger.errors import ConfigError
from tagger.run.args import optional_whole, required_text, required_whole, whole


@pytest.mark.parametrize("args", [{}, {"limit": None}, {"limit": ""}])
def test_an_absent_number_is_none_or_the_default(args: dict[str, Any]) -> None:
    assert optional_whole(args, "limit") is None
    assert whole(args, "limit", default=25, low=1, high=200) == 25


@pytest.mark.parametrize(("value", "expected"), [(0, 0), ("7", 7), (12, 12)])
def test_a_whole_number_or_its_text_is_taken(value: Any, expected: int) -> None:
    assert optional_whole({"limit": value}, "limit") == expected


@pytest.mark.parametrize(("args", "message"), [
    ({"limit": "many"}, "limit: 'many' is not a whole number"),
    ({"limit": [1]}, "limit: [1] is not a whole number"),
    ({"limit": -1}, "limit: -1 must be 0 or more"),
])
def test_an_open_ended_number_is_refused_in_words(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        optional_whole(args, "limit")
    assert str(refused.value) == message


def test_a_bounded_number_names_its_range() -> None:
    with pytest.raises(ConfigError) as refused:
        whole({"per_page": 500}, "per_page", default=25, low=1, high=200)
    assert str(refused.value) == "per_page: 500 is out of range; allowed: 1..200"


def test_a_required_number_says_what_to_give() -> None:
    assert required_whole({"id": "3"}, "id", low=1, high=10, hint="give the suggestion's id") == 3
    with pytest.raises(ConfigError) as refused:
        required_whole({}, "id", low=1, high=10, hint="give the suggestion's id")
    assert str(refused.value) == "id: missing; give the suggestion's id"


def test_required_text_is_stripped_and_blank_is_missing() -> None:
    assert required_text({"scene_id": " 12 "}, "scene_id", hint="give the id of the scene") == "12"
    with pytest.raises(ConfigError) as refused:
        required_text({"scene_id": "  "}, "scene_id", hint="give the id of the scene")
    assert str(refused.value) == "scene_id: missing; give the id of the scene"
