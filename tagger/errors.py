"""Errors the tagger reports to people.

Every error a user can meet is a ``TaggerError``: its message says what failed, which thing it was
about, and what to do. The entry point turns it into the ``error`` of the plugin's output (or one
line and exit code 1 on the command line); anything else is a bug and is reported with its
traceback in the log.

    TaggerError
    ├── ConfigError          a setting has a wrong value; names the key, the value, what is allowed
    ├── RuntimeSetupError    the analysis runtime cannot be installed or started here
    ├── StashError           talking to Stash failed
    │   ├── StashUnreachableError   no answer (after retries)
    │   │   └── StashReplyLostError a mutation was sent, its answer lost: Stash may have applied it
    │   ├── StashAuthError          Stash refused our credentials
    │   └── GraphQLError            Stash answered with errors for an operation
    ├── MediaError           a video cannot be read (missing, corrupt, no video stream, too slow)
    ├── ModelError           a model file is missing, corrupt or cannot be fetched
    │                        (``tagger.analyzers.models``)
    ├── WorkerError          the worker cannot be reached, refused us, or went away during a job
    │                        (``tagger.stashside.relay``)
    ├── ClusterError         the Ray cluster (ray_address) cannot be reached or failed the run
    ├── RemoteModelError     a remote model (remote_models) refused, failed, answered nonsense, or its
    │                        run's budget or circuit breaker stops further calls
    └── LockedError          another run of the tagger holds the lock

The two defined elsewhere live beside the one module that raises them.

``report_unexpected`` is the other half: an error nothing foresaw, in one scene, becomes that
scene's error (its file, the error's type and message) with the traceback in the log.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

TRACEBACK_LINE = 160
"""Characters per traceback line in the log: long source lines would bury the message."""


class TaggerError(Exception):
    """Base of every error that is reported to the user as a message, not a traceback."""


class ConfigError(TaggerError):
    """A configuration value is wrong."""


class RuntimeSetupError(TaggerError):
    """The analysis runtime (virtual environment, packages) cannot be set up."""


class StashError(TaggerError):
    """Talking to Stash failed."""


class StashUnreachableError(StashError):
    """Stash did not answer, after retries."""


class StashReplyLostError(StashUnreachableError):
    """A mutation that must not be sent twice reached Stash (or may have), but no answer came back.

    Stash may have applied it, so the client does not send it again; the caller looks in Stash
    for its effect. ``in_flight``: we stopped waiting (a timeout, HTTP 504), so Stash may still be
    applying it and "not there yet" does not mean "never".
    """

    def __init__(self, message: str, *, operation: str, in_flight: bool) -> None:
        self.operation = operation
        self.in_flight = in_flight
        super().__init__(message)


class StashAuthError(StashError):
    """Stash refused the credentials (or none were given)."""


class GraphQLError(StashError):
    """Stash answered an operation with GraphQL errors."""

    def __init__(self, operation: str, messages: list[str]) -> None:
        self.operation = operation
        self.messages = messages
        super().__init__(f"Stash rejected {operation}: " + "; ".join(messages))


class MediaError(TaggerError):
    """A video cannot be read."""


class ClusterError(TaggerError):
    """The Ray cluster of ``ray_address`` cannot be reached, or failed in a way no retry mends."""


class RemoteModelError(TaggerError):
    """A model behind an OpenAI-compatible API (``remote_models``) cannot give a usable answer.

    The message names the entry and its host (``tagger.analyzers.chat_client``), never its key.
    """


class LockedError(TaggerError):
    """Another run of the tagger is in progress."""


def traceback_lines(error: BaseException) -> list[str]:
    """``error``'s traceback as log lines of at most ``TRACEBACK_LINE`` characters."""
    lines = "".join(traceback.format_exception(error)).splitlines()
    return [line if len(line) <= TRACEBACK_LINE else line[: TRACEBACK_LINE - 1] + "…" for line in lines]


def unexpected_message(file: str, error: BaseException) -> str:
    """What a scene's entry says of an error nothing foresaw."""
    return f"{file}: unexpected {type(error).__name__}: {error}; the traceback is in the log"


def report_unexpected(log: Callable[[str, str], None], what: str, file: str, error: BaseException) -> str:
    """Log the traceback of an unforeseen error in ``what`` (e.g. "scene 12"); return its message."""
    log("error", f"{what}: traceback of the unexpected error:")
    for line in traceback_lines(error):
        log("error", line)
    return unexpected_message(file, error)
