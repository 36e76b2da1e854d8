"""The hook path: Stash runs it inside a scan or an edit, so it must answer in milliseconds.

Standard library only: a new scene is put on the tagger's own queue (SQLite in the data folder)
and the work happens later in a task. The queue lives in the tagger's store rather than as a tag
on the scene because adding a tag is a ``sceneUpdate``, which would fire ``Scene.Update.Post``
and show up in the user's tag list; the queue tag remains available for people who want to queue
scenes by hand.

With *Tag new imports automatically* on, the hook also asks Stash to run **Tag queued scenes** —
once per burst: a scan that imports a thousand files queues one task, not a thousand (Stash runs
jobs one at a time; the task takes every queued scene). The request is claimed in the store in one
transaction (``Store.claim``), and the queue task releases the claim when it starts, so imports
that arrive while it runs get a task of their own after it. The setting is read from Stash at most
once a minute (cached in the store), so a scan costs at most a few requests. The tagger never
creates scenes, so its own writes cannot trigger this hook (``Scene.Create.Post`` only): no loop.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError
from tagger.stashside.protocol import PLUGIN_ID, PluginInput, StashLog
from tagger.stashside.store import Store

QUEUE_ON = ("Scene.Create.Post",)
"""Hook types that put a scene on the queue."""

QUEUE_TASK = "Tag queued scenes"
"""The manifest's task for ``mode: queue``."""

TASK_CLAIM = "queue_task_requested_at"
"""Store flag: when a hook last asked Stash for the queue task (released when the task starts)."""

CLAIM_STALE_S = 6 * 3600.0
"""A claim older than this is stale (the task was removed from Stash's queue before it ran)."""

SETTING_CACHE = "plugin_settings"
SETTING_CACHE_S = 60.0
"""The plugin's settings are read from Stash at most this often on the hook path."""


def handle_hook(plugin_input: PluginInput, data_dir: Path, log: StashLog) -> dict[str, Any]:
    """Queue the scene a hook is about; returns the plugin output."""
    context = plugin_input.hook_context
    if context is None:
        raise ConfigError(
            "mode hook: Stash sent no hookContext; this mode is run by Stash's hooks, not as a task"
        )
    hook_type = str(context.get("type") or "")
    scene_id = context.get("id")
    if hook_type not in QUEUE_ON:
        log.debug(f"hook {hook_type or '?'} for {scene_id}: nothing to do")
        return {"hook": hook_type, "queued": None}
    if scene_id in (None, ""):
        raise ConfigError(f"hook {hook_type}: hookContext has no scene id")
    with Store(data_dir / "tagger.sqlite") as store:
        added = store.enqueue([str(scene_id)], reason="import")
        log.debug(f"scene {scene_id} queued for tagging" if added else f"scene {scene_id} already queued")
        job = _request_queue_task(plugin_input, store, log)
    output: dict[str, Any] = {"hook": hook_type, "queued": str(scene_id)}
    if job:
        output["task"] = job
    return output


def _request_queue_task(plugin_input: PluginInput, store: Store, log: StashLog) -> str | None:
    """Ask Stash for one queue task per burst of imports, when auto-tagging is on."""
    from tagger.errors import StashError

    client = hook_client(plugin_input)
    now = time.time()
    try:
        if not _auto_tag_new(store, client, now):
            return None
        if not store.claim(TASK_CLAIM, now, CLAIM_STALE_S):
            return None  # already requested in this burst
        try:
            job = client.run_plugin_task(PLUGIN_ID, QUEUE_TASK, {"mode": "queue"})
        except StashError:
            store.set_meta(TASK_CLAIM, "")  # not requested after all: the next import tries again
            raise
    except StashError as error:  # the scene is queued anyway; tagging waits for the next task
        log.warning(f"could not start '{QUEUE_TASK}' for new imports: {error}")
        return None
    log.info(f"new imports: '{QUEUE_TASK}' queued as job {job}")
    return job



def cached_settings(store: Store, client: Any, now: float) -> dict[str, Any]:
    """The plugin's settings in Stash, read at most once a minute (cached in the store).

    The cache holds no secret setting: an answer from the cache lacks them (``fresh_settings``
    asks Stash when one is needed).

    Raises:
        StashError: Stash did not answer (remembered as "no settings" for a minute).
    """
    cached = store.get_meta(SETTING_CACHE)
    if cached:
        with contextlib.suppress(ValueError, TypeError):
            stamp, values = json.loads(cached)
            if now - float(stamp) < SETTING_CACHE_S and isinstance(values, dict):
                return values
    from tagger.errors import StashError

    try:
        values = client.plugin_settings(PLUGIN_ID)
    except StashError:
        store.set_meta(SETTING_CACHE, json.dumps([now, {}]))  # not answering: ask again in a minute
        raise
    from tagger.config import SECRET_SETTINGS  # stdlib; the relay has loaded it on this path already

    kept = {name: value for name, value in values.items() if name not in SECRET_SETTINGS}
    store.set_meta(SETTING_CACHE, json.dumps([now, kept]))
    return values


def hook_client(plugin_input: PluginInput) -> Any:
    """A client that gives up fast: a hook runs inside Stash's scan."""
    from tagger.stashside.stash import StashClient

    return StashClient(url=plugin_input.server.url, session_cookie=plugin_input.server.session_cookie,
                       attempts=2, backoff=0.1, timeout=5.0)


def _auto_tag_new(store: Store, client: Any, now: float) -> bool:
    """The *Tag new imports automatically* setting (cached_settings)."""
    setting = cached_settings(store, client, now).get("autoTagNew")
    return setting is True or (isinstance(setting, str) and setting.strip().lower() in ("true", "1", "yes"))


def release_queue_task_claim(store: Store) -> None:
    """Called when the queue task starts: imports from now on ask for a task of their own."""
    store.set_meta(TASK_CLAIM, "")
