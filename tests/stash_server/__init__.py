"""A stand-in Stash server and plugin runner for the project's tests.

Stash cannot run here, so ``StashTestServer`` serves Stash's real GraphQL schema (from the
shared dir) over HTTP with in-memory data, and ``run_plugin`` runs a plugin exactly as Stash's
raw plugin runner does. See each module's docstring for which Stash behaviours were checked.
"""

from .manifest import ManifestError, hook_args, load_manifest, task_args
from .plugin_runner import PluginRun, run_plugin
from .server import StashTestServer
from .state import State

__all__ = [
    "ManifestError",
    "PluginRun",
    "StashTestServer",
    "State",
    "hook_args",
    "load_manifest",
    "run_plugin",
    "task_args",
]
