"""Load a plugin ``.yml`` as strictly as Stash does (pkg/plugin/config.go, yaml KnownFields).

An unknown key at any level, a duplicate key, a ``default:`` in a setting, a bad
``interface``/``errLog``/setting ``type`` or a non-list ``exec`` make Stash refuse the plugin;
here they raise :class:`ManifestError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TOP_LEVEL_KEYS = {"name", "description", "url", "version", "exec", "interface", "errLog",
                  "tasks", "hooks", "settings", "ui"}
"""Keys Stash's plugin Config struct knows."""

TASK_KEYS = {"name", "description", "defaultArgs", "execArgs"}
"""Keys of one ``tasks`` entry."""

HOOK_KEYS = TASK_KEYS | {"triggeredBy"}
"""Keys of one ``hooks`` entry."""

SETTING_KEYS = {"displayName", "description", "type"}
"""Keys of one ``settings`` entry (there is no ``default``)."""

UI_KEYS = {"javascript", "css", "requires", "assets", "csp"}
"""Keys of the ``ui`` block."""

SETTING_TYPES = {"STRING", "NUMBER", "BOOLEAN"}
"""Allowed setting types."""

ERR_LOG_LEVELS = {"trace": "t", "debug": "d", "info": "i", "warning": "w", "error": "e"}
"""``errLog`` values and the log level letter each maps to."""


class ManifestError(ValueError):
    """The plugin manifest would be refused by Stash."""


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys, as yaml.v3 does."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False
                       ) -> dict[Any, Any]:
    """Build a mapping, refusing a key defined twice."""
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ManifestError(f"line {key_node.start_mark.line + 1}: mapping key "
                                f"\"{key}\" already defined")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_keys(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    """Return ``data`` as a dict after refusing keys outside ``allowed``."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ManifestError(f"{where}: field {unknown[0]} not found in type")
    return data


def _check_entries(where: str, entries: Any, allowed: set[str]) -> None:
    """Check a ``tasks``/``hooks`` list."""
    if entries is None:
        return
    if not isinstance(entries, list):
        raise ManifestError(f"{where}: expected a list")
    for i, entry in enumerate(entries):
        entry = _check_keys(f"{where}[{i}]", entry, allowed)
        args = entry.get("defaultArgs")
        if args is not None and not isinstance(args, dict):
            raise ManifestError(f"{where}[{i}].defaultArgs: expected a mapping")


def _check_settings(settings: Any) -> None:
    """Check ``settings``: known keys only, no default, a valid type."""
    if settings is not None and not isinstance(settings, dict):
        raise ManifestError("settings: expected a mapping")
    for key, spec in (settings or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            raise ManifestError(f"settings.{key}: field default not found in type "
                                "plugin.SettingConfig (settings have no default in Stash)")
        spec = _check_keys(f"settings.{key}", spec, SETTING_KEYS)
        if spec.get("type") not in SETTING_TYPES:
            raise ManifestError(f"settings.{key}.type: {spec.get('type')!r} is not one of "
                                f"{sorted(SETTING_TYPES)}")


def validate_manifest(data: Any) -> dict[str, Any]:
    """Check a parsed manifest as Stash would; return it unchanged."""
    manifest = _check_keys("plugin", data, TOP_LEVEL_KEYS)
    if not manifest.get("name"):
        raise ManifestError("plugin: name is required")
    exec_ = manifest.get("exec")
    if exec_ is not None and (not isinstance(exec_, list)
                              or not all(isinstance(x, str) for x in exec_)):
        raise ManifestError("exec: expected a list of strings")
    if manifest.get("interface", "raw") not in ("raw", "rpc", "js"):
        raise ManifestError(f"interface: {manifest['interface']!r} is not raw, rpc or js")
    if manifest.get("errLog", "error") not in ERR_LOG_LEVELS:
        raise ManifestError(f"errLog: {manifest['errLog']!r} is not a log level")
    _check_entries("tasks", manifest.get("tasks"), TASK_KEYS)
    _check_entries("hooks", manifest.get("hooks"), HOOK_KEYS)
    _check_settings(manifest.get("settings"))
    _check_keys("ui", manifest.get("ui"), UI_KEYS)
    return manifest


def load_manifest(path: Path | str) -> dict[str, Any]:
    """Parse and strictly validate a plugin ``.yml``.

    Raises:
        ManifestError: the file would make Stash refuse the plugin.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: {err}") from err
    return validate_manifest(data)


def _entry(manifest: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """Find a task or hook by name."""
    for entry in manifest.get(kind) or []:
        if entry.get("name") == name:
            return entry
    raise KeyError(f"no {kind[:-1]} named {name!r} in plugin {manifest.get('name')!r}")


def task_args(manifest: dict[str, Any], task_name: str) -> dict[str, Any]:
    """Return a copy of the task's ``defaultArgs`` (what Stash sends before args_map)."""
    return dict(_entry(manifest, "tasks", task_name).get("defaultArgs") or {})


def hook_args(manifest: dict[str, Any], hook_name: str, hook_context: dict[str, Any]
              ) -> dict[str, Any]:
    """Return a hook's ``defaultArgs`` plus ``hookContext``, as Stash sends them."""
    args = dict(_entry(manifest, "hooks", hook_name).get("defaultArgs") or {})
    args["hookContext"] = hook_context
    return args


def exec_args(manifest: dict[str, Any], kind: str, name: str) -> list[str]:
    """Return the ``execArgs`` of a task (kind "tasks") or hook (kind "hooks")."""
    return list(_entry(manifest, kind, name).get("execArgs") or [])
