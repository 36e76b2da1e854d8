"""Stash's raw plugin protocol: what we read from stdin and write to stderr."""

from __future__ import annotations

import io
import json

import pytest

from tagger.stashside.protocol import MAX_LOG_LINE, StashLog, parse_plugin_input

STASH_INPUT = {
    "server_connection": {
        "Scheme": "http", "Host": "0.0.0.0", "Port": 9999,
        "SessionCookie": {"Name": "session", "Value": "abc", "Path": "", "Domain": "",
                          "Expires": "0001-01-01T00:00:00Z", "MaxAge": 0, "Secure": False,
                          "HttpOnly": False, "SameSite": 0, "Raw": "", "Unparsed": None},
        "Dir": "/root/.stash", "PluginDir": "/root/.stash/plugins/ai_tagger",
    },
    "args": {"mode": "hook", "hookContext": {"id": 45, "type": "Scene.Create.Post", "input": None,
                                             "inputFields": None}},
}


def test_reads_stash_input_and_connects_on_loopback_when_stash_says_all_interfaces() -> None:
    plugin_input = parse_plugin_input(json.dumps(STASH_INPUT))
    assert plugin_input.server.url == "http://127.0.0.1:9999"
    assert plugin_input.server.session_cookie == ("session", "abc")
    assert plugin_input.mode == "hook"
    assert plugin_input.hook_context == STASH_INPUT["args"]["hookContext"]


def test_no_session_cookie_when_stash_has_no_credentials() -> None:
    connection = dict(STASH_INPUT["server_connection"])
    del connection["SessionCookie"]
    plugin_input = parse_plugin_input(json.dumps({"server_connection": connection, "args": {}}))
    assert plugin_input.server.session_cookie is None


@pytest.mark.parametrize("text, fragment", [
    ("", "no input on stdin"),
    ("{not json", "not JSON"),
    ("[1, 2]", "not an object"),
    ('{"server_connection": {"Port": "x"}}', "Port"),
])
def test_malformed_input_is_explained(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_plugin_input(text)


def test_log_lines_use_stash_level_prefixes_one_per_line() -> None:
    stream = io.StringIO()
    log = StashLog(stream)
    log.warning("first\nsecond")
    log.error("bad")
    assert stream.getvalue().splitlines() == ["\x01w\x02first", "\x01w\x02second", "\x01e\x02bad"]


def test_long_log_lines_are_cut_far_below_stash_64k_limit() -> None:
    stream = io.StringIO()
    StashLog(stream).info("x" * 100_000)
    (line,) = stream.getvalue().splitlines()
    assert len(line) == MAX_LOG_LINE + 3  # the 3-character level prefix, then the cut text


def test_progress_never_goes_back() -> None:
    stream = io.StringIO()
    log = StashLog(stream)
    for value in (0.1, 0.5, 0.3, 0.7, 1.5):
        log.progress(value)
    values = [float(line[3:]) for line in stream.getvalue().splitlines()]
    assert values == [0.1, 0.5, 0.7, 1.0]
