"""The hook path: Stash runs it inside a scan or an edit, so it must answer in milliseconds.

Standard library only, no network: a new scene is put on the tagger's own queue (SQLite in the
data folder) and the work happens later in a task. The queue lives in the tagger's store rather
than as a tag on the scene because adding a tag is a ``sceneUpdate``, which would fire
``Scene.Update.Post`` and show up in the user's tag list; the queue tag remains available for
people who want to queue scenes by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagger.errors import ConfigError
from tagger.protocol import PluginInput, StashLog
from tagger.store import Store

QUEUE_ON = ("Scene.Create.Post",)
"""Hook types that put a scene on the queue."""


def handle_hook(plugin_input: PluginInput, data_dir: Path, log: StashLog) -> dict[str, Any]:
    """Queue the scene a hook is about; returns the plugin output."""
    context = plugin_input.hook_context
    if context is None:
        raise ConfigError("mode hook: Stash sent no hookContext; this mode is run by Stash's hooks, "
                          "not as a task")
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
    return {"hook": hook_type, "queued": str(scene_id)}
