"""A plugin task from start to end: configuration, connection, lock, store, mode.

Runs inside the analysis runtime (after the bootstrap), so it may import PyYAML.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tagger.config import (
    Config,
    build_config,
    env_to_raw,
    find_config_file,
    read_config_file,
    settings_to_raw,
)
from tagger.run.context import RunContext
from tagger.run.modes import run_mode
from tagger.stashside.filelock import FileLock
from tagger.stashside.protocol import PLUGIN_ID, PluginInput, StashLog
from tagger.stashside.stash import StashClient
from tagger.stashside.store import Store


def load_config(plugin_dir: Path, client: StashClient | None, log: StashLog, *,
                config_path: str | None = None, flags: dict[str, Any] | None = None) -> Config:
    """defaults < config.yaml < AI_TAGGER_<KEY> variables < Stash's plugin settings < command-line
    flags, all checked."""
    file_path = find_config_file(plugin_dir, config_path)
    file_layer = read_config_file(file_path) if file_path else {}
    env_layer = env_to_raw(os.environ)
    settings_layer: dict[str, Any] = {}
    if client is not None:
        settings_layer, warnings = settings_to_raw(client.plugin_settings(PLUGIN_ID))
        for warning in warnings:
            log.warning(warning)
    return build_config(file_layer, env_layer, settings_layer, flags or {})


def open_run(config: Config, client: StashClient, data_dir: Path, log: StashLog,
             mode: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``mode`` holding the run lock, with the store open."""
    if config.api_key:
        client.api_key = config.api_key
    # One run at a time: two would analyse the same scenes. The review API answers the UI while a
    # run goes on; its changes are serialised with the run's by the write lock (tagger.writeback.session).
    lock = FileLock(data_dir / "run.lock") if mode != "review" else nullcontext()
    with lock, Store(data_dir / "tagger.sqlite") as store:
        context = RunContext(config=config, client=client, store=store, log=log, data_dir=data_dir)
        return run_mode(context, mode, args)


def run_plugin_task(plugin_input: PluginInput, plugin_dir: Path, data_dir: Path,
                    log: StashLog) -> dict[str, Any]:
    """The plugin's task: Stash's connection and settings, then the mode in ``args``."""
    server = plugin_input.server
    client = StashClient(url=server.url, session_cookie=server.session_cookie)
    config = load_config(plugin_dir, client, log)
    log.info(f"AI Tagger: {plugin_input.mode or '(no mode)'}")
    return open_run(config, client, data_dir, log, plugin_input.mode, plugin_input.args)
