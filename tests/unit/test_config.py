"""One configuration: defaults < config.yaml < Stash settings < flags, with errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tagger.config import OPTIONS, Config, build_config, defaults, read_config_file, settings_to_raw
from tagger.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_later_layers_win(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text("interval: 5\nqueue_tag: FromFile\ntag_parent: FileParent\n")
    settings, _ = settings_to_raw({"interval": 3, "queueTag": "FromStash"})
    config = build_config(read_config_file(config_file), settings, {"interval": 1.5})
    assert (config.interval, config.queue_tag, config.tag_parent) == (1.5, "FromStash", "FileParent")


def test_defaults_apply_where_nothing_is_set() -> None:
    assert build_config() == Config()


def test_confidence_from_stash_is_a_percentage() -> None:
    settings, _ = settings_to_raw({"confidence": 75})
    assert build_config(settings).confidence == 0.75


def test_empty_text_setting_in_stash_means_default() -> None:
    settings, _ = settings_to_raw({"tagParent": "  "})
    assert build_config(settings).tag_parent == "AI"


def test_unknown_stash_setting_is_a_warning_not_an_error() -> None:
    settings, warnings = settings_to_raw({"oldSetting": True})
    assert settings == {} and "oldSetting" in warnings[0]


@pytest.mark.parametrize("layer, fragment", [
    ({"interval": "fast"}, "interval: 'fast' is not a number; allowed: 0.1..600"),
    ({"interval": 0}, "interval: 0 is out of range"),
    ({"sampling": "every"}, "sampling: 'every' is not allowed; choose one of: interval, keyframes"),
    ({"analyzers": "faces,colour"}, "analyzers: unknown analyzer 'colour'"),
    ({"shot_markers": "maybe"}, "shot_markers: 'maybe' is not true or false"),
    ({"stash_url": "localhost:9999"}, "stash_url: 'localhost:9999' is not a URL"),
    ({"max_side": 12.5}, "max_side: 12.5 is not a whole number"),
    ({"tag_parent": ""}, "tag_parent: must not be empty"),
    ({"intervall": 2}, "unknown key 'intervall'; did you mean 'interval'?"),
])
def test_wrong_values_name_the_key_the_value_and_what_is_allowed(layer: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(layer)
    assert fragment in str(raised.value)


def test_unknown_key_in_config_file_names_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text("treshold: 0.3\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: unknown key 'treshold'"):
        read_config_file(config_file)


def test_path_mapping_to_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"local folder '/nowhere/videos'.*does not exist"):
        build_config({"path_mappings": "/data=/nowhere/videos"})


def test_path_mappings_map_the_longest_prefix(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = build_config({"path_mappings": [{"stash": "/data", "local": str(tmp_path / "a")},
                                             {"stash": "/data/b", "local": str(tmp_path / "b")}]})
    assert config.map_path("/data/b/x.mp4") == str(tmp_path / "b" / "x.mp4")
    assert config.map_path("/data/c/y.mp4") == str(tmp_path / "a" / "c" / "y.mp4")
    assert config.map_path("/database/z.mp4") is None


def test_example_config_documents_every_key_with_its_default() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    assert list(example) == [option.name for option in OPTIONS]
    assert build_config(example) == Config()
    assert set(defaults()) == set(example)


def test_manifest_settings_are_exactly_the_options_stash_may_set() -> None:
    manifest = yaml.safe_load((ROOT / "ai_tagger.yml").read_text())
    assert set(manifest["settings"]) == {option.setting for option in OPTIONS if option.setting}


def test_a_tag_rule_for_a_label_no_analyzer_has_is_refused_naming_it() -> None:
    from tagger.engine.engine import rules_for

    config = build_config({"tags": {"NOT_A_LABEL": {"enabled": False}}})
    with pytest.raises(ConfigError, match="tags: tag rules: unknown label 'NOT_A_LABEL'"):
        rules_for(config)
    with pytest.raises(ConfigError, match="tags: must map detector labels to settings"):
        build_config({"tags": {"FEET_EXPOSED": "off"}})


REMOTE = {"name": "local", "base_url": "http://127.0.0.1:11434/v1/", "model": "llava:7b"}


def test_remote_models_are_none_by_default_and_parse_into_entries_with_defaults() -> None:
    assert Config().remote_models == ()
    (model,) = build_config({"remote_models": [{**REMOTE, "api_key_env": "LLM_KEY"}]}).remote_models
    assert (model.name, model.base_url) == ("local", "http://127.0.0.1:11434/v1")
    assert model.host == "127.0.0.1:11434"
    assert (model.images_per_request, model.requests_per_minute, model.timeout) == (4, 30, 60.0)
    assert (model.max_requests_per_run, model.max_tokens_per_run) == (500, 500_000)
    assert model.use == ("themes", "genre", "description")
    assert model.key_source == "environment variable LLM_KEY"


def test_remote_models_come_from_the_environment_as_json() -> None:
    from tagger.config import env_to_raw

    raw = env_to_raw({"AI_TAGGER_REMOTE_MODELS": json.dumps([{**REMOTE, "use": ["genre"]}])})
    assert build_config(raw).remote_models[0].use == ("genre",)


def test_a_literal_api_key_in_remote_models_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"remote_models": [{**REMOTE, "api_key": "sk-literal-secret-123"}]})
    assert "api_key_env" in str(raised.value) and "api_key_file" in str(raised.value)
    assert "sk-literal-secret-123" not in str(raised.value)


@pytest.mark.parametrize("item, fragment", [
    ({**REMOTE, "name": "My Model"}, "remote_models[0].name: 'My Model' is not allowed"),
    ({**REMOTE, "base_url": "127.0.0.1:1"}, "remote_models.local.base_url: '127.0.0.1:1' is not a URL"),
    ({"name": "local", "base_url": "http://h/v1"}, "remote_models[0]: 'model' is required"),
    ({**REMOTE, "images_per_request": 17}, "remote_models.local.images_per_request: 17 is out of range"),
    ({**REMOTE, "timeout": 0}, "remote_models.local.timeout: 0 is out of range"),
    ({**REMOTE, "use": ["themes", "faces"]}, "remote_models.local.use: 'faces' is not allowed"),
    ({**REMOTE, "use": []}, "remote_models.local.use: must not be empty"),
    ({**REMOTE, "api_key_env": "K", "api_key_file": "/k"}, "set api_key_env or api_key_file, not both"),
    ({**REMOTE, "base": "x"}, "remote_models[0]: unknown key 'base'"),
    ("local", "remote_models[0]: 'local' is not a mapping"),
])
def test_wrong_remote_models_name_the_entry_and_the_key(item: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"remote_models": [item]})
    assert fragment in str(raised.value)


def test_remote_model_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="the name 'local' is used twice"):
        build_config({"remote_models": [REMOTE, REMOTE]})
