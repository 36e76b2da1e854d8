"""Shared fixtures: ../shared, an isolated data folder, the installed plugin, a small library."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AI_TAGGER_SHARED") or ROOT.parent / "shared")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "stash-schema").is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set AI_TAGGER_SHARED")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data folder: no test sees another's queue, lock or venv."""
    data = tmp_path / "tagger-data"
    monkeypatch.setenv("AI_TAGGER_DATA_DIR", str(data))
    return data


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin as a user installs it: the package zip unpacked into Stash's plugins folder."""
    from tagger.apps.package import build_zip

    root = tmp_path_factory.mktemp("stash-config")
    build_zip(ROOT, root / "ai_tagger.zip")
    target = root / "plugins" / "ai_tagger"
    with zipfile.ZipFile(root / "ai_tagger.zip") as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tagger.media.sample import make_sample_video

    folder = tmp_path_factory.mktemp("library")
    make_sample_video(folder / "cuts.mp4", duration_s=20, cut_times=(6.0, 13.0), black_spans=((9.0, 10.0),))
    return folder
