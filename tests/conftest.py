"""Shared fixtures: where ../shared is, and Stash's real schema."""

from __future__ import annotations

import os
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
