"""The analyzer families the tagger knows, by name, read without importing any of them.

A family (faces, content, text, ...) is one class in one file (``tagger.analyzers.family.Family``).
This registry names where each lives, as ``"module:Class"``: ``tagger.config`` reads the names (the
``analyzers`` option's allowed values and defaults) without loading a model or a library, and the
engine imports only the classes a configuration asks for (``load``).

Families outside the package (a test's, a user's own) are named in the environment, which every
process of a run inherits (the plugin, the worker's jobs)::

    AI_TAGGER_FAMILIES="brightness=/path/to/brightness.py:Brightness,vlm=my_package.vlm:Vlm"

Each entry is ``name=target``; the target's module is a dotted module name on the path or the path
of a ``.py`` file. Such a family is off until ``analyzers`` names it.

Standard library only: the Stash side imports this through ``tagger.config``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError

FACES, CONTENT, TEXT, SHOTS = "faces", "content", "text", "shots"
"""The built-in families' names: what ``analyzers`` lists, and each decision's ``source``."""

BUILT_IN: dict[str, str] = {
    FACES: "tagger.analyzers.faces:FaceAnalyzer",
    CONTENT: "tagger.analyzers.content:ContentAnalyzer",
    TEXT: "tagger.analyzers.text:TextAnalyzer",
}
"""Every family shipped with the tagger: name -> ``"module:Class"``. Registry order is run order."""

IN_THE_PASS = (SHOTS,)
"""Families that are part of the decode pass itself (no class: shot and black detection)."""

DEFAULTS: tuple[str, ...] = (FACES, CONTENT, TEXT, SHOTS)
"""What runs when the configuration does not say; any other family is off until named."""

ENV_VAR = "AI_TAGGER_FAMILIES"
"""Extra families, ``name=module:Class`` separated by commas (see the module docstring)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""A family's name: it is a config value, a cache key and a journal entry's source."""


def extra(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The families named in ``AI_TAGGER_FAMILIES``.

    Raises:
        ConfigError: an entry that is not ``name=module:Class``, or that reuses a known name.
    """
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, target = (s.strip() for s in part.partition("="))
        module, _, attribute = target.rpartition(":")
        if not _NAME.match(name) or not module or not attribute.isidentifier():
            raise ConfigError(f"{ENV_VAR}: {part!r} is not name=module:Class (a lower-case name, "
                              "a module or .py file, a class)")
        if name in BUILT_IN or name in IN_THE_PASS or name in found:
            raise ConfigError(f"{ENV_VAR}: {name!r} is already a family's name")
        found[name] = target
    return found


def registry(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every family with a class: built-in ones, then extra ones, as name -> ``"module:Class"``."""
    return {**BUILT_IN, **extra(environ)}


def names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every name ``analyzers`` accepts, built-in first."""
    return (*BUILT_IN, *IN_THE_PASS, *extra(environ))


def load(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The class of the family ``name`` (its module imported now, once per process).

    Raises:
        ConfigError: an unknown name, or a target that cannot be imported (the error is named).
    """
    target = registry(environ).get(name)
    if target is None:
        known = ", ".join(registry(environ))
        raise ConfigError(f"analyzer family {name!r} is not registered; known: {known}")
    module_name, _, attribute = target.rpartition(":")
    try:
        module = _import(name, module_name)
        return getattr(module, attribute)
    except Exception as error:  # whatever the family's module raises, the message names it
        raise ConfigError(f"analyzer family {name!r} ({target}) cannot be loaded: "
                          f"{type(error).__name__}: {error}") from error


def _import(name: str, module_name: str) -> Any:
    """A dotted module, or a ``.py`` file loaded once under a name of its own."""
    if not module_name.endswith(".py"):
        return importlib.import_module(module_name)
    path = Path(module_name).expanduser().resolve()
    key = f"tagger_family_{name}"
    loaded = sys.modules.get(key)
    if loaded is not None and Path(getattr(loaded, "__file__", "")) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # before running it: dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(key, None)
        raise
    return module
