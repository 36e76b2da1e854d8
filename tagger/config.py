"""One typed configuration: defaults < config.yaml < Stash plugin settings < command-line flags.

Every option is declared once in ``OPTIONS`` (name, type, default, allowed values, help, and the
Stash plugin setting that may set it). The config file, Stash's settings and the CLI all go through
the same checks, and a wrong value stops the run before any work with one message naming the key,
the value, and what is allowed.

Standard library only, except that reading a config.yaml imports PyYAML (present in the runtime).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError
from tagger.families import DEFAULTS, ENV_VAR
from tagger.families import names as family_names
from tagger.redact import MASK, register_secret

ANALYZERS = DEFAULTS
"""The analyzer families that run by default (``tagger.families``: any registered one may be
switched on)."""

SAMPLING_MODES = ("interval", "keyframes")
"""How frames are chosen: one per interval (exact), or keyframes only (fast)."""

REMOTE_USES = ("themes", "genre", "description")
"""What a remote model may be asked for (``remote_models[].use``)."""

SECRET_OPTIONS = ("api_key", "worker_token")
"""Options that hold credentials: masked in ``repr``, known to the redaction, never sent to Ray."""


@dataclass(frozen=True)
class PathMapping:
    """A prefix of paths as Stash sees them, and the same folder as this machine sees it."""

    stash: str
    local: str

    def apply(self, path: str) -> str | None:
        """The local path for ``path``, or None when ``path`` is not under this mapping."""
        prefix = self.stash.rstrip("/\\")
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "\\"):
            rest = path[len(prefix):].lstrip("/\\").replace("\\", "/")
            return str(Path(self.local) / rest) if rest else self.local
        return None


@dataclass(frozen=True)
class RemoteModel:
    """One model behind an OpenAI-compatible chat API (``remote_models``). Holds where its key is,
    never the key: ``tagger.analyzers.chat_client`` reads it when it builds a client."""

    name: str
    base_url: str
    model: str
    api_key_env: str = ""
    api_key_file: str = ""
    images_per_request: int = 4
    requests_per_minute: int = 30
    timeout: float = 60.0
    max_requests_per_run: int = 500
    max_tokens_per_run: int = 500_000
    use: tuple[str, ...] = REMOTE_USES

    @property
    def host(self) -> str:
        """The server's host[:port], for messages."""
        return urllib.parse.urlsplit(self.base_url).netloc

    @property
    def key_source(self) -> str:
        """Where the key comes from, in words ("" when the server needs none)."""
        if self.api_key_env:
            return f"environment variable {self.api_key_env}"
        return f"file {self.api_key_file}" if self.api_key_file else ""


@dataclass(frozen=True)
class Config:
    """The validated configuration of one run."""

    stash_url: str = ""
    api_key: str = ""
    interval: float = 2.0
    sampling: str = "interval"
    max_side: int = 640
    confidence: float = 0.5
    analyzers: tuple[str, ...] = ANALYZERS
    shot_markers: bool = False
    tag_parent: str = "AI"
    queue_tag: str = "AI_TagMe"
    auto_tag_new: bool = False
    path_mappings: tuple[PathMapping, ...] = ()
    worker_url: str = ""
    worker_token: str = ""
    worker_host: str = "127.0.0.1"
    worker_port: int = 9977
    worker_jobs: int = 1
    worker_grace: float = 30.0
    worker_stash_url: str = ""
    worker_tls_cert: str = ""
    worker_tls_key: str = ""
    worker_tls_ca: str = ""
    ray_address: str = ""
    ray_gpus: float = 1.0
    time_budget: float = 1800.0
    page_size: int = 100
    threads: int = 0
    allow_download: bool = False
    models_dir: str = ""
    tags: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    studios: tuple[tuple[str, tuple[str, ...]], ...] = ()
    studio_min_score: float = 0.85
    tag_whitelist: tuple[str, ...] = ()
    studio_overwrite: bool = False
    status_tags: bool = False
    review_margin: float = 0.15
    remote_models: tuple[RemoteModel, ...] = ()

    def __repr__(self) -> str:
        def shown(name: str) -> str:
            value = getattr(self, name)
            return repr(MASK) if name in SECRET_OPTIONS and value else repr(value)

        return f"Config({', '.join(f'{f.name}={shown(f.name)}' for f in fields(self))})"

    def tag_overrides(self) -> dict[str, dict[str, Any]]:
        """Per-label tag rule overrides as ``{label: {field: value}}``."""
        return {label: dict(changes) for label, changes in self.tags}

    def map_path(self, stash_path: str) -> str | None:
        """Stash's path of a file, as this machine sees it (longest matching prefix wins)."""
        for mapping in sorted(self.path_mappings, key=lambda m: len(m.stash), reverse=True):
            mapped = mapping.apply(stash_path)
            if mapped is not None:
                return mapped
        return None


@dataclass(frozen=True)
class Option:
    """One configuration key: how to read it, check it, and where Stash's UI may set it."""

    name: str
    parse: Callable[[str, Any], Any]
    help: str
    setting: str | None = None  # key in the plugin manifest's settings, if users set it in Stash
    from_setting: Callable[[Any], Any] | None = None  # convert Stash's stored value first


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ConfigError(f"{key}: {value!r} is not true or false")


def _number(kind: type, low: float, high: float) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a number; allowed: {low}..{high}")
        try:
            number = kind(value)
            if kind is int and isinstance(value, float) and value != number:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: {value!r} is not {'a whole number' if kind is int else 'a number'}; "
                              f"allowed: {low}..{high}") from None
        if not low <= number <= high:
            raise ConfigError(f"{key}: {value!r} is out of range; allowed: {low}..{high}")
        return number

    return parse


def _text(key: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not text")
    return str(value).strip()


def _url(key: str, value: Any) -> str:
    text = _text(key, value).rstrip("/")
    if text and not text.startswith(("http://", "https://")):
        raise ConfigError(f"{key}: {value!r} is not a URL; write it as http://host:port")
    return text


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = _text(key, value).lower()
        if text not in choices:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {', '.join(choices)}")
        return text

    return parse


def _analyzers(key: str, value: Any) -> tuple[str, ...]:
    allowed = family_names()  # the registry, with families named in the environment
    items = [part.strip().lower() for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{key}: {value!r} is not a list; allowed items: {', '.join(allowed)}")
    chosen = [item for item in items if item]
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise ConfigError(f"{key}: unknown analyzer {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return tuple(dict.fromkeys(chosen))


def _tag_name(key: str, value: Any) -> str:
    text = _text(key, value)
    if not text:
        raise ConfigError(f"{key}: must not be empty; give a tag name such as 'AI'")
    return text


def _path_mappings(key: str, value: Any) -> tuple[PathMapping, ...]:
    """Mappings as a list of {stash, local} (YAML), or 'stash=local;stash2=local2' (settings, CLI)."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        pairs = []
        for part in value.split(";"):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"{key}: {part.strip()!r} is not STASH_PREFIX=LOCAL_PREFIX "
                                  "(separate several with ';')")
            stash, local = part.split("=", 1)
            pairs.append({"stash": stash.strip(), "local": local.strip()})
        value = pairs
    if not isinstance(value, list):
        raise ConfigError(f"{key}: {value!r} is not a list of {{stash: ..., local: ...}}")
    mappings = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"stash", "local"}:
            raise ConfigError(f"{key}: {item!r} must have exactly the keys 'stash' and 'local'")
        stash, local = _text(key, item["stash"]), _text(key, item["local"])
        if not stash or not local:
            raise ConfigError(f"{key}: {item!r} has an empty prefix")
        if not Path(local).is_dir():
            raise ConfigError(f"{key}: local folder {local!r} (for Stash's {stash!r}) does not exist "
                              "or is not a folder on this machine; fix the mapping or remove it")
        mappings.append(PathMapping(stash=stash, local=local))
    return tuple(mappings)


def _tag_rules(key: str, value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """Per-label overrides, as label -> {field: value}; the labels and fields are checked against
    the analyzers' real rules when the engine builds them (``tagger.engine.engine.rules_for``)."""
    if value in (None, {}):
        return ()
    if not isinstance(value, dict) or not all(isinstance(changes, dict) for changes in value.values()):
        raise ConfigError(f"{key}: must map detector labels to settings, e.g. "
                          "FEET_EXPOSED: {enabled: false}")
    return tuple((str(label), tuple(sorted(changes.items()))) for label, changes in value.items())


def _studios(key: str, value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Studio names (and aliases) to recognise on screen without Stash: names or {name, aliases}."""
    if value in (None, []):
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of names or {{name: ..., aliases: [...]}}")
    studios = []
    for item in value:
        if isinstance(item, str) and item.strip():
            studios.append((item.strip(), ()))
        elif (isinstance(item, dict) and isinstance(item.get("name"), str)
              and set(item) <= {"name", "aliases"}):
            aliases = item.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise ConfigError(f"{key}: aliases of {item['name']!r} must be a list of names")
            studios.append((item["name"].strip(), tuple(a.strip() for a in aliases)))
        else:
            raise ConfigError(f"{key}: {item!r} is not a name or {{name: ..., aliases: [...]}}")
    return tuple(studios)


def _names(key: str, value: Any) -> tuple[str, ...]:
    """A list of names: YAML list, or comma-separated text (settings, CLI)."""
    if value in (None, "", []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: {value!r} is not a list of names")
    return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))


_REMOTE_NAME = re.compile(r"^[a-z0-9_-]+$")
_REMOTE_LIMITS: dict[str, tuple[type, float, float]] = {
    "images_per_request": (int, 1, 16),
    "requests_per_minute": (int, 1, 10_000),
    "timeout": (float, 0.1, 3600),
    "max_requests_per_run": (int, 1, 10_000_000),
    "max_tokens_per_run": (int, 1, 10_000_000_000),
}
_REMOTE_KEYS = ("name", "base_url", "model", "api_key_env", "api_key_file", *_REMOTE_LIMITS, "use")


def _remote_uses(key: str, value: Any) -> tuple[str, ...]:
    uses = _names(key, value)
    wrong = [use for use in uses if use not in REMOTE_USES]
    if wrong or not uses:
        shown = repr(wrong[0]) + " is not allowed" if wrong else "must not be empty"
        raise ConfigError(f"{key}: {shown}; choose from: {', '.join(REMOTE_USES)}")
    return uses


def _remote_model(key: str, item: Any) -> RemoteModel:
    """One ``remote_models`` entry; ``key`` names it in messages (``remote_models[0]``)."""
    if not isinstance(item, dict):
        raise ConfigError(f"{key}: {item!r} is not a mapping of {', '.join(_REMOTE_KEYS)}")
    if "api_key" in item:
        register_secret(item["api_key"] if isinstance(item["api_key"], str) else None)
        raise ConfigError(f"{key}: do not write the API key into the configuration; name where it is "
                          "with api_key_env (an environment variable) or api_key_file (a file, first line)")
    unknown = sorted(str(k) for k in item if k not in _REMOTE_KEYS)
    if unknown:
        raise ConfigError(f"{key}: unknown key {unknown[0]!r}; allowed: {', '.join(_REMOTE_KEYS)}")
    missing = [k for k in ("name", "base_url", "model") if not _text(f"{key}.{k}", item.get(k))]
    if missing:
        raise ConfigError(f"{key}: {missing[0]!r} is required (name, base_url and model)")
    name = _text(f"{key}.name", item["name"])
    if not _REMOTE_NAME.match(name):
        raise ConfigError(f"{key}.name: {name!r} is not allowed; use a-z, 0-9, '_' and '-'")
    where = f"remote_models.{name}"
    values: dict[str, Any] = {k: _number(*_REMOTE_LIMITS[k])(f"{where}.{k}", item[k])
                              for k in _REMOTE_LIMITS if k in item}
    env, path = _text(f"{where}.api_key_env", item.get("api_key_env")), _text(f"{where}.api_key_file",
                                                                                 item.get("api_key_file"))
    if env and path:
        raise ConfigError(f"{where}: set api_key_env or api_key_file, not both")
    if "use" in item:
        values["use"] = _remote_uses(f"{where}.use", item["use"])
    base_url = _url(f"{where}.base_url", item["base_url"])
    return RemoteModel(name=name, base_url=base_url, model=_text(f"{where}.model", item["model"]),
                       api_key_env=env, api_key_file=path, **values)


def _remote_models(key: str, value: Any) -> tuple[RemoteModel, ...]:
    """Models behind OpenAI-compatible chat APIs: a YAML list, or JSON text (the environment)."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{key}: not a JSON list of {{name, base_url, model, ...}}") from None
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of {{name, base_url, model, ...}}")
    models = [_remote_model(f"{key}[{index}]", item) for index, item in enumerate(value)]
    names = [model.name for model in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{key}: the name {twice[0]!r} is used twice; each entry needs its own name")
    return tuple(models)


def _percent(value: Any) -> Any:
    # Stash stores NUMBER settings as integers, so the UI asks for a percentage.
    return value / 100 if isinstance(value, (int, float)) and not isinstance(value, bool) else value


OPTIONS: tuple[Option, ...] = (
    Option("stash_url", _url, "Stash's address for the command line, e.g. http://localhost:9999. "
           "The plugin takes it from Stash."),
    Option("api_key", _text, "Stash API key (Settings > Security). Needed when Stash has a password "
           "and the run is long or from the command line.", "apiKey"),
    Option("interval", _number(float, 0.1, 600), "Seconds between sampled frames.", "interval"),
    Option("sampling", _choice(SAMPLING_MODES), "interval: exact frames every `interval` s; "
           "keyframes: only keyframes (much faster, coarser)."),
    Option("max_side", _number(int, 160, 4096), "Frames are downscaled so their long side is at most "
           "this many pixels before analysis."),
    Option("confidence", _number(float, 0.0, 1.0), "Minimum score for a detection to count (0..1). "
           "In Stash's settings: a percentage.", "confidence", _percent),
    Option("analyzers", _analyzers, f"Which analyzer families run: {', '.join(ANALYZERS)}, or any other "
           f"registered family ({ENV_VAR}).", "analyzers"),
    Option("shot_markers", _bool, "Create a marker at every shot (chapters).", "shotMarkers"),
    Option("tag_parent", _tag_name, "Parent tag of every tag the tagger creates.", "tagParent"),
    Option("queue_tag", _tag_name, "Scenes with this tag are tagged by the 'queue' task.", "queueTag"),
    Option("auto_tag_new", _bool, "Queue newly imported scenes for tagging automatically.", "autoTagNew"),
    Option("path_mappings", _path_mappings, "Stash's path prefix -> this machine's path prefix; "
           "'STASH=LOCAL;STASH2=LOCAL2' in Stash's settings.", "pathMappings"),
    Option("worker_url", _url, "Run the analysis on a worker at this URL instead of in Stash's "
           "Python.", "workerUrl"),
    Option("worker_token", _text, "Shared secret between the plugin and the worker (both sides); "
           "the worker refuses requests without it.", "workerToken"),
    Option("worker_host", _text, "Address the worker listens on (127.0.0.1: this machine only; "
           "0.0.0.0: every interface, e.g. in a container)."),
    Option("worker_port", _number(int, 1, 65535), "Port the worker listens on."),
    Option("worker_jobs", _number(int, 1, 64), "Jobs the worker runs at once; more wait in its queue."),
    Option("worker_grace", _number(float, 0, 86400), "Seconds the worker keeps a job running after "
           "its plugin stopped listening (a network blip); then it cancels the job (Stash's Stop)."),
    Option("worker_stash_url", _url, "How the worker reaches Stash (e.g. http://stash:9999 in "
           "Docker); empty: the address Stash gives the plugin."),
    Option("worker_tls_cert", _text, "The worker serves HTTPS with this certificate (PEM file); "
           "set worker_tls_key too. Empty: plain HTTP."),
    Option("worker_tls_key", _text, "The private key (PEM file) of worker_tls_cert."),
    Option("worker_tls_ca", _text, "On Stash's side: the certificate (or its CA, PEM) the plugin "
           "trusts for an https worker_url, e.g. the worker's self-signed worker_tls_cert. Empty: "
           "the system's trusted CAs."),
    Option("ray_address", _text, "Run the analysis on a Ray cluster: 'auto', ray://host:10001, or "
           "'local' for a cluster on this machine; empty: no Ray."),
    Option("ray_gpus", _number(float, 0.0, 8.0), "GPUs each video's Ray task asks for when the "
           "cluster has GPUs (fractions share one)."),
    Option("time_budget", _number(float, 0, 86400), "Seconds one video may take before it is "
           "abandoned with an error (0 = no limit)."),
    Option("page_size", _number(int, 1, 1000), "Scenes fetched from Stash per request."),
    Option("threads", _number(int, 0, 256), "Threads for inference (0 = one per core)."),
    Option("allow_download", _bool, "Allow downloading models that are not installed "
           "(sha256-verified)."),
    Option("models_dir", _text, "Folder with the user's own model files (optional)."),
    Option("tags", _tag_rules, "Per-label tag rules: rename, threshold, marker, scene_tag, enabled, "
           "min_duration_s, max_gap_s, scene_min_share, scene_min_seconds."),
    Option("studios", _studios, "Studios to recognise from on-screen text when there is no Stash "
           "(the plugin uses Stash's studios and aliases)."),
    Option("studio_min_score", _number(float, 0.5, 1.0), "Minimum similarity of on-screen text to a "
           "studio name or alias."),
    Option("tag_whitelist", _names, "When set, only these tags (tag names or detector labels) are "
           "written; everything else is left out.", "tagWhitelist"),
    Option("studio_overwrite", _bool, "Replace a studio the scene already has (off: only scenes "
           "without a studio get one; other guesses wait for review).", "studioOverwrite"),
    Option("status_tags", _bool, "Tag processed scenes <tag_parent>_Tagged and failed ones "
           "<tag_parent>_Error (the tagger's own record is kept either way).", "statusTags"),
    Option("review_margin", _number(float, 0.0, 0.5), "Findings up to this much below a tag's "
           "threshold become suggestions for review (0 = no suggestions)."),
    Option("remote_models", _remote_models, "Models behind an OpenAI-compatible chat API (Ollama, "
           "vLLM, LM Studio, a gateway): name, base_url, model, api_key_env or api_key_file, limits, "
           "use. None by default: nothing is sent anywhere. config.yaml or AI_TAGGER_REMOTE_MODELS "
           "(JSON) only."),
)
"""Every configuration key, in the order config.example.yaml documents them."""

_BY_NAME = {option.name: option for option in OPTIONS}

SECRET_SETTINGS = frozenset(option.setting for option in OPTIONS
                            if option.name in SECRET_OPTIONS and option.setting)
"""The plugin settings in Stash that hold credentials (never written to a cache or a log)."""

_BY_SETTING = {option.setting: option for option in OPTIONS if option.setting}


def defaults() -> dict[str, Any]:
    """Every key's default, as config.yaml would write it."""
    base = Config()
    return {spec.name: getattr(base, spec.name) for spec in fields(Config)}


def _unknown_key(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def config_text(path: Path) -> str:
    """The text of config.yaml, which must be UTF-8.

    Raises:
        ConfigError: the file is not UTF-8 text (named, with the first bad byte).
        OSError: it cannot be read.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        # A bare UnicodeDecodeError names neither the file nor what to do about it.
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read config.yaml into raw values (checked later by ``build_config``)."""
    import yaml  # the runtime has it; the hook path never reads config.yaml

    try:
        data = yaml.safe_load(config_text(path))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold key: value lines, not {type(data).__name__}")
    for key in data:
        if key not in _BY_NAME:
            raise _unknown_key(str(key), list(_BY_NAME), str(path))
    return data


ENV_PREFIX = "AI_TAGGER_"
"""``AI_TAGGER_<KEY>`` sets a key from the environment (e.g. AI_TAGGER_WORKER_TOKEN in Docker)."""

_NOT_FROM_ENV = frozenset({"tags", "studios"})  # structured: config.yaml only


def env_to_raw(environ: Mapping[str, str]) -> dict[str, Any]:
    """The keys set in the environment as ``AI_TAGGER_<KEY>`` (text, parsed like Stash's settings)."""
    return {option.name: environ[ENV_PREFIX + option.name.upper()] for option in OPTIONS
            if option.name not in _NOT_FROM_ENV and ENV_PREFIX + option.name.upper() in environ}


def settings_to_raw(settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Stash plugin settings -> raw config values, plus warnings for settings we do not know.

    Stash only stores what the user touched, so absent keys keep the lower layers' values.
    Unknown keys are warned about, not fatal: they may be left over from an older version.
    """
    raw: dict[str, Any] = {}
    warnings = []
    for key, value in settings.items():
        option = _BY_SETTING.get(key)
        if option is None:
            warnings.append(f"plugin setting {key!r} is not used by this version; ignored")
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an emptied text box means "use the default"
        raw[option.name] = option.from_setting(value) if option.from_setting else value
    return raw, warnings


def build_config(*layers: Mapping[str, Any]) -> Config:
    """Merge raw layers (lowest first) over the defaults and check every value.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in _BY_NAME:
                raise _unknown_key(key, list(_BY_NAME), "configuration")
            merged[key] = value
    for key in SECRET_OPTIONS:  # before any check, whose message might quote the value
        if isinstance(merged.get(key), str):
            register_secret(merged[key])
    values = {key: _BY_NAME[key].parse(key, value) for key, value in merged.items()}
    return Config(**values)


def find_config_file(plugin_dir: Path, explicit: str | None = None) -> Path | None:
    """The config.yaml to read: ``--config``, else $AI_TAGGER_CONFIG, else one in the plugin folder."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config: {explicit!r} does not exist; give the path of a config.yaml")
        return path
    env = os.environ.get("AI_TAGGER_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"AI_TAGGER_CONFIG: {env!r} does not exist")
        return path
    path = plugin_dir / "config.yaml"
    return path if path.is_file() else None
