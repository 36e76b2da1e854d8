"""A new analyzer family is one class and one registry entry (plus a model-manifest entry when it
has models): ``Brightness`` below is defined in this file alone, registered through the
environment (``AI_TAGGER_FAMILIES``), and goes through the engine, the cache, the planner, the
journal and the review API into Stash like the built-in families, without a line of the tagger
knowing its name.

The plugin's own process loads this file by its path to find the family, with the plugin's folder
on its import path and not the tests': so this module imports only the tagger, numpy and pytest
at the top, and the Stash test server inside the test that needs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tagger.analyzers import build_analyzers, family_class, family_version
from tagger.analyzers.family import BuildContext, Family
from tagger.config import build_config
from tagger.decide.rules import TagRule
from tagger.decide.tags import MarkerDecision, RuleSet, SceneTag, decide_families
from tagger.detections import Detection, Frame
from tagger.engine.engine import Engine
from tagger.errors import ConfigError
from tagger.families import ENV_VAR
from tagger.media.sample import make_sample_video

DARK_BELOW = 32.0
"""A frame whose mean pixel value (0-255) is under this is DARK; any other is BRIGHT."""


class Brightness(Family):
    """A family without models: each sample frame is DARK or BRIGHT by its mean pixel value,
    scored by how far it is from the other end (black: DARK at 1.0)."""

    name: ClassVar[str] = "brightness"
    code_version: ClassVar[str] = "1"

    @classmethod
    def default_rules(cls) -> dict[str, TagRule]:
        # Dark stretches are markers and tag a scene at a fifth of it; a bright scene is tagged
        # when it is bright half the time.
        return {"DARK": TagRule("DARK", tag="Dark", scene_min_share=0.2, scene_min_seconds=None),
                "BRIGHT": TagRule("BRIGHT", tag="Bright", threshold=0.3, scene_min_share=0.5,
                                  scene_min_seconds=None, marker=False)}

    @classmethod
    def build(cls, context: BuildContext) -> Brightness:
        return cls()

    def analyze(self, batch: Sequence[Frame]) -> list[Detection]:
        found = []
        for frame in batch:
            mean = float(frame.image.mean())
            dark = mean < DARK_BELOW
            found.append(Detection(frame.time, self.name, "DARK" if dark else "BRIGHT",
                                   1.0 - mean / 255.0 if dark else mean / 255.0))
        return found


class Hum(Brightness):
    """A family that would listen to the sound track, which the decode pass does not feed yet."""

    name: ClassVar[str] = "hum"
    consumes: ClassVar[str] = "audio"


class NotAFamily:
    name = "stranger"


THIS_FILE = Path(__file__).resolve()
BLACK = (6.0, 12.0)
"""The sample's black span: samples at 6, 8 and 10 s are DARK, the other seven of 20 s BRIGHT."""


def cached_versions(cache: Path) -> list[tuple[str, str]]:
    """(analyzer, version) of every cached detections entry."""
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT analyzer, version FROM detections").fetchall()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("brightness")
    sample = make_sample_video(folder / "night.mp4", duration_s=20, cut_times=(14.0,), black_spans=(BLACK,))
    return sample.path


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The families of this file, registered by module name (as a package's would be)."""
    monkeypatch.setenv(ENV_VAR, f"brightness={__name__}:Brightness, hum={__name__}:Hum")


class TestRegistry:
    def test_a_registered_family_is_an_analyzer_the_configuration_accepts(self, registered: None) -> None:
        assert build_config({"analyzers": "brightness,shots"}).analyzers == ("brightness", "shots")
        assert family_class("brightness") is Brightness

    def test_a_family_is_off_until_the_configuration_names_it(self, registered: None) -> None:
        assert "brightness" not in build_config().analyzers

    def test_an_unregistered_family_is_refused_naming_what_is_allowed(self) -> None:
        allowed = "faces, content, text, shots"
        with pytest.raises(ConfigError, match=rf"unknown analyzer 'brightness'; allowed: {allowed}$"):
            build_config({"analyzers": ["brightness"]})

    @pytest.mark.parametrize(("entry", "message"), [
        ("Bright Ness=x:Y", "is not name=module:Class"),
        ("brightness=tests.e2e.test_families", "is not name=module:Class"),
        ("content=tests.e2e.test_families:Brightness", "'content' is already a family's name"),
    ])
    def test_a_malformed_entry_is_refused(self, monkeypatch: pytest.MonkeyPatch, entry: str,
                                          message: str) -> None:
        monkeypatch.setenv(ENV_VAR, entry)
        with pytest.raises(ConfigError, match=f"{ENV_VAR}: .*{message}"):
            build_config({"analyzers": ["faces"]})

    def test_a_target_that_is_not_a_family_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_VAR, f"stranger={__name__}:NotAFamily, ghost=no_such_module:Ghost")
        with pytest.raises(ConfigError, match=r"'stranger'.* is not a Family subclass"):
            family_class("stranger")
        with pytest.raises(ConfigError, match=r"'ghost'.*cannot be loaded: ModuleNotFoundError"):
            family_class("ghost")

    def test_a_family_that_consumes_what_the_pass_does_not_feed_is_refused(
            self, registered: None, tmp_path: Path) -> None:
        config = build_config({"analyzers": ["hum"]})
        with pytest.raises(ConfigError, match="'hum' consumes 'audio'; the decode pass feeds only frames"):
            build_analyzers(config, tmp_path, lambda *_: None)

    def test_the_version_names_the_models_and_the_code(self) -> None:
        assert family_version(Brightness) == "none:c1"
        assert family_version(family_class("content")) == "nudenet_320n@3.4-320n:c1"


def test_each_family_is_decided_with_its_own_rules_on_its_own_detections() -> None:
    # Both families call a label X; each reads only detections of its own kind.
    samples = [float(t) for t in range(0, 20, 2)]
    found = [Detection(t, "brightness", "X", 0.9) for t in samples if t < 10]
    found += [Detection(t, "other", "X", 0.9) for t in samples if t >= 10]
    rule_sets = [RuleSet("brightness", {"X": TagRule("X", tag="Early", scene_min_share=0.4)}),
                 RuleSet("other", {"X": TagRule("X", tag="Late", scene_min_share=0.4, marker=False)})]
    tags, markers = decide_families(found, samples, 20.0, rule_sets)
    assert [(t.name, t.source, t.seconds) for t in tags] == [("Early", "brightness", 10.0),
                                                          ("Late", "other", 10.0)]
    assert markers == [MarkerDecision("Early", "Early", 0.0, 10.0, pytest.approx(0.9), "brightness", "X")]


def test_the_engine_runs_the_family_decides_with_its_rules_and_caches_under_its_version(
        registered: None, video: Path, tmp_path: Path) -> None:
    config = build_config({"analyzers": ["brightness"]})
    engine = Engine(config, tmp_path, lambda *_: None)
    try:
        first = engine.analyze(str(video))
        again = engine.analyze(str(video))
    finally:
        engine.close()
    assert [d.time for d in first.detections if d.label == "DARK"] == [6.0, 8.0, 10.0]
    assert first.decisions.tags == [
        SceneTag("Dark", "DARK", pytest.approx(1.0, abs=0.01), 6.0, 0.3, source="brightness"),
        SceneTag("Bright", "BRIGHT", pytest.approx(0.5, abs=0.05), 14.0, 0.7, source="brightness")]
    assert first.decisions.markers == [
        MarkerDecision("Dark", "Dark", *BLACK, pytest.approx(1.0, abs=0.01), "brightness", "DARK")]
    assert [t["source"] for t in first.to_dict()["tags"]] == ["brightness", "brightness"]
    # The second analysis decodes nothing: the detections come from the cache, under its version.
    assert first.cached == () and again.cached == ("brightness",)
    assert again.decisions == first.decisions
    assert cached_versions(tmp_path / "cache.sqlite") == [("brightness", "none:c1")]


CONFIG = """\
analyzers: [brightness]
tags:
  DARK: {tag: Night}
"""
"""The plugin runs the family alone; the user's rename of its DARK label reaches its rules."""


def test_the_plugin_writes_the_family_s_tag_and_marker_to_stash_with_its_source(
        plugin_dir: Path, video: Path, tmp_path: Path) -> None:
    from tests.stash_server import StashTestServer, load_manifest, run_plugin, task_args

    data, config = tmp_path / "data", tmp_path / "config.yaml"
    config.write_text(CONFIG)
    # The plugin's process finds the family by this file's path.
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config),
           ENV_VAR: f"brightness={THIS_FILE}:Brightness"}
    manifest = load_manifest(plugin_dir / "ai_tagger.yml")
    tag_all = next(task["name"] for task in manifest["tasks"] if task["defaultArgs"]["mode"] == "all")
    server = StashTestServer()
    scene = server.state.add_scene("night", path=str(video))
    with server:
        run = run_plugin(plugin_dir, "ai_tagger", task_args(manifest, tag_all), server, env=env)
        assert run.error is None, run.stderr[-3000:]
        applied = run_plugin(plugin_dir, "ai_tagger", {"mode": "review", "action": "scene",
                                                       "scene_id": str(scene)}, server, env=env)
        assert applied.error is None, applied.stderr[-3000:]
    state = server.state.snapshot()
    tags: dict[int, Any] = state["tags"]
    assert sorted(tags[t]["name"] for t in state["scenes"][scene]["tag_ids"]) == ["Bright", "Night"]
    assert [(m["title"], m["seconds"], m["end_seconds"], tags[m["primary_tag_id"]]["name"])
            for m in state["markers"].values()] == [("Night", *BLACK, "Night")]
    # The journal records the family as each change's source, its version as the model, and the
    # times of its DARK detections as the evidence.
    night = next(t for t in applied.output["tags"] if t["name"] == "Night")
    assert (night["source"], night["model"], night["evidence"]) == ("brightness", "none:c1", [6.0, 8.0, 10.0])
    assert [(m["title"], m["source"]) for m in applied.output["markers"]] == [("Night", "brightness")]
    assert cached_versions(data / "cache.sqlite") == [("brightness", "none:c1")]
