"""``ai_tagger.py package``: the plugin zip and the source index Stash installs it from.

Stash's Settings > Plugins > Available Plugins > Add Source takes the URL of an index file listing
``{id, name, metadata, version, date, path, sha256, requires}`` per plugin; it downloads ``path``
(relative to the index), checks the sha256, and unpacks the zip (plugin files at its root) into
``<plugins>/<source>/<id>/``. The index is written as ``index.yaml``: any name works for Stash, and
a ``.yml`` file would be loaded as a plugin if the output folder sits inside a plugins folder.

The zip is reproducible: sorted entries, fixed timestamps, only the files the plugin needs.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import zipfile
from pathlib import Path

from tagger import __version__
from tagger.stashside.protocol import PLUGIN_ID

INCLUDE = ("ai_tagger.yml", "ai_tagger.py", "requirements.txt", "requirements-nodeps.txt",
           "requirements-ray.txt", "config.example.yaml", "README.md", "LICENSE")
"""Single files at the plugin root that ship."""
INCLUDE_TREES = ("tagger", "models", "ui")
"""Folders that ship, without caches."""
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def plugin_files(plugin_dir: Path) -> list[Path]:
    """The files of the plugin, relative to its folder, sorted."""
    files = [Path(name) for name in INCLUDE if (plugin_dir / name).is_file()]
    for tree in INCLUDE_TREES:
        for path in (plugin_dir / tree).rglob("*"):
            relative = path.relative_to(plugin_dir)
            if path.is_file() and not _SKIP_PARTS & set(relative.parts) and path.suffix != ".pyc":
                files.append(relative)
    return sorted(files)


def build_zip(plugin_dir: Path, target: Path) -> str:
    """Write the plugin zip to ``target``; returns its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in plugin_files(plugin_dir):
            info = zipfile.ZipInfo(relative.as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (plugin_dir / relative).read_bytes())
    tmp.replace(target)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def index_entry(plugin_dir: Path, zip_name: str, sha256: str) -> str:
    """The source index entry (YAML) for this plugin."""
    description = _manifest_value(plugin_dir, "description")
    name = _manifest_value(plugin_dir, "name")
    version = f"{__version__}-{_git_short_hash(plugin_dir)}" if _git_short_hash(plugin_dir) else __version__
    date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return (
        f"- id: {PLUGIN_ID}\n"
        f"  name: {_quote(name)}\n"
        f"  metadata:\n    description: {_quote(description)}\n"
        f"  version: {_quote(version)}\n"
        f"  date: {_quote(date)}\n"
        f"  path: {zip_name}\n"
        f"  sha256: {sha256}\n"
        f"  requires: []\n"
    )


def build_package(plugin_dir: Path, out_dir: Path) -> list[str]:
    """Build ``<out>/ai_tagger.zip`` and ``<out>/index.yaml``; returns lines to show the user."""
    out_dir = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    zip_name = f"{PLUGIN_ID}.zip"
    sha256 = build_zip(plugin_dir, out_dir / zip_name)
    (out_dir / "index.yaml").write_text(index_entry(plugin_dir, zip_name, sha256), encoding="utf-8")
    return [f"wrote {out_dir / zip_name} (sha256 {sha256})", f"wrote {out_dir / 'index.yaml'}",
            "Publish both files in one folder and add the index.yaml URL in Stash: Settings > "
            "Plugins > Available Plugins > Add Source."]


def _manifest_value(plugin_dir: Path, key: str) -> str:
    for line in (plugin_dir / "ai_tagger.yml").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    return ""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _git_short_hash(plugin_dir: Path) -> str:
    try:
        result = subprocess.run(["git", "-C", str(plugin_dir), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
