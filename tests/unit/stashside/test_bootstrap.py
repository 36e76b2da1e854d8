"""First run in a Python that has only the standard library: the plugin installs its own runtime
into its data folder, re-executes itself there, and a second start costs no install time."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.stashside.bootstrap import RUNTIME_MODULES
from tests.stash_server import StashTestServer, load_manifest, run_plugin, task_args

BASE_PYTHON = sys._base_executable  # the interpreter this venv was made from


def _base_lacks_runtime() -> bool:
    probe = f"import importlib.util as u, sys; sys.exit(all(u.find_spec(m) for m in {RUNTIME_MODULES!r}))"
    return subprocess.run([BASE_PYTHON, "-s", "-c", probe]).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _base_lacks_runtime(), reason="the base Python already has the runtime")
def test_first_task_installs_the_runtime_then_later_starts_are_free(
        plugin_dir: Path, library: Path, _isolated_data_dir: Path) -> None:
    manifest = load_manifest(plugin_dir / "ai_tagger.yml")
    args = {**task_args(manifest, "Report (dry run)"), "scene_id": "1"}
    env = {"PYTHONNOUSERSITE": "1"}
    with StashTestServer() as stash:
        stash.state.add_scene("cuts", path=str(library / "cuts.mp4"))
        first = run_plugin(plugin_dir, "ai_tagger", args, stash, python=BASE_PYTHON, env=env, timeout=900)
        second = run_plugin(plugin_dir, "ai_tagger", args, stash, python=BASE_PYTHON, env=env, timeout=300)
    assert first.error is None, first.stderr[-3000:]
    assert any("installing the analysis runtime" in text for _, text in first.log)
    assert first.progress == sorted(first.progress) and first.progress[-1] == 1.0
    assert len(first.output["scenes"][0]["shots"]) == 4
    assert (_isolated_data_dir / "venv").is_dir()

    assert second.error is None, second.stderr[-3000:]
    assert not [text for _, text in second.log if "installing" in text]
    assert second.output["scenes"][0]["shots"] == first.output["scenes"][0]["shots"]
    print(f"first run {first.wall:.1f} s (install), second run {second.wall:.1f} s")


def test_an_incomplete_environment_fails_with_what_to_do(plugin_dir: Path, _isolated_data_dir: Path) -> None:
    """A venv whose packages vanished must not loop re-executing itself."""
    if importlib.util.find_spec("av") is None:
        pytest.skip("needs the runtime in this interpreter")
    with StashTestServer() as stash:  # Stash answers: the plugin first asks it whether a worker is set
        run = run_plugin(plugin_dir, "ai_tagger", {"mode": "report"}, stash, python=BASE_PYTHON,
                         env={"PYTHONNOUSERSITE": "1", "AI_TAGGER_BOOTSTRAPPED": "1"})
    assert "is incomplete (cannot import" in run.error and "Delete the folder" in run.error
