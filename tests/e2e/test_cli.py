"""The command line: the same engine as the plugin, for people and scripts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.stash_server import StashTestServer

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_KEYS = ["file", "duration", "fps", "frames_analysed", "shots", "technical", "tags", "markers",
                 "faces", "text", "studio", "timings"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "ai_tagger.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)


def test_analyze_json_prints_one_document_with_the_contract(library: Path) -> None:
    done = cli("analyze", str(library / "cuts.mp4"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [key for key in CONTRACT_KEYS if key not in result] == []
    assert [round(shot["start"]) for shot in result["shots"]] == [0, 6, 10, 13]
    assert result["technical"] == [{"kind": "black", "start": 9.0, "end": 10.0}]
    assert result["frames_analysed"] >= 10


def test_analyze_without_json_is_a_readable_summary(library: Path) -> None:
    done = cli("analyze", str(library / "cuts.mp4"))
    assert done.returncode == 0, done.stderr
    assert "shots: 4" in done.stdout and "black: 0:09.00 - 0:10.00" in done.stdout


def test_analyze_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    done = cli("analyze", str(tmp_path / "nope.mp4"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "nope.mp4" in done.stderr and "Traceback" not in done.stderr


def test_flags_are_checked_like_every_other_setting(library: Path) -> None:
    done = cli("analyze", str(library / "cuts.mp4"), "--interval", "0")
    assert done.returncode == 1
    assert "interval: 0.0 is out of range; allowed: 0.1..600" in done.stderr


def test_demo_makes_its_own_sample_and_analyses_it(_isolated_data_dir: Path) -> None:
    done = cli("demo", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["file"] == str(_isolated_data_dir / "demo" / "sample-v2.mp4")
    assert len(result["shots"]) >= 6 and result["technical"]
    assert [span["text"] for span in result["text"]] == ["BRANDX.COM"]
    assert result["studio"]["name"] == "Brand X"


def test_run_dry_run_reports_on_a_stash_scene(library: Path) -> None:
    with StashTestServer() as stash:
        stash.state.add_scene("cuts", path=str(library / "cuts.mp4"))
        before = stash.state.snapshot()
        done = cli("run", "--stash-url", stash.url, "--mode", "scene", "--scene-id", "1", "--dry-run")
        assert stash.state.snapshot() == before
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["dry_run"] and output["selection"] == "scene"
    assert len(output["scenes"][0]["shots"]) == 4


def test_run_without_a_stash_url_says_how_to_give_one() -> None:
    done = cli("run", "--mode", "report")
    assert done.returncode == 1 and "stash_url: not set; give --stash-url" in done.stderr


def test_doctor_checks_this_machine_and_stash(library: Path) -> None:
    with StashTestServer() as stash:
        stash.state.add_scene("cuts", path=str(library / "cuts.mp4"))
        done = cli("doctor", "--stash-url", stash.url)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("OK  ONNX Runtime") and "CPUExecutionProvider" in line for line in lines)
    assert "OK  Stash v0.30.1 answers at " + stash.url in lines
    assert any("scene 1: Stash's" in line and "is read here as" in line for line in lines)


def test_doctor_shows_how_each_library_folder_is_read_here(library: Path, tmp_path: Path) -> None:
    here = tmp_path / "media"
    here.mkdir()
    with StashTestServer() as stash:
        folders = [("/data/videos", False), (str(library), False), ("/mnt/elsewhere", False),
                   ("/data/pictures", True)]  # images only: not the tagger's business
        stash.state.general["stashes"] = [{"path": path, "excludeVideo": images_only, "excludeImage": False}
                                          for path, images_only in folders]
        done = cli("doctor", "--stash-url", stash.url, "--path-mapping", f"/data={here}")
    lines = done.stdout.splitlines()
    assert f"OK  library /data/videos: read here as {here}/videos (path mapping)" not in lines  # not made
    assert f"FIX library /data/videos: mapped to {here}/videos, which does not exist here; its videos " \
           "would be streamed from Stash (slower). Correct the mapping" in lines
    assert f"OK  library {library}: read here at the same path" in lines
    assert any(line.startswith(" -  library /mnt/elsewhere: not on this machine") for line in lines)
    assert not [line for line in lines if "/data/pictures" in line]
    assert done.returncode == 1  # the mapping to fix

    (here / "videos").mkdir()
    with StashTestServer() as stash:
        stash.state.general["stashes"] = [{"path": "/data/videos", "excludeVideo": False,
                                           "excludeImage": False}]
        done = cli("doctor", "--stash-url", stash.url, "--path-mapping", f"/data={here}")
    assert f"OK  library /data/videos: read here as {here}/videos (path mapping)" in done.stdout.splitlines()


def test_doctor_names_what_to_fix_when_stash_is_down() -> None:
    server = StashTestServer().start()
    server.stop()
    done = cli("doctor", "--stash-url", server.url)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("FIX Stash at") and "not reachable" in line for line in lines)


def test_package_builds_a_zip_stash_can_install_and_its_index_entry(tmp_path: Path) -> None:
    done = cli("package", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    archive = tmp_path / "ai_tagger.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "ai_tagger.yml" in names and "ai_tagger.py" in names and "tagger/apps/entry.py" in names
    manifest = yaml.safe_load((ROOT / "ai_tagger.yml").read_text())
    assert "models/models.yaml" in names and set(manifest["ui"]["javascript"]) <= set(names)
    assert "requirements.txt" in names and "requirements-ray.txt" in names  # serve, and Ray if wanted
    assert [n for n in names if n.endswith(".yml")] == ["ai_tagger.yml"]
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "data/")) or "__pycache__" in n]
    (entry,) = yaml.safe_load((tmp_path / "index.yaml").read_text())
    assert set(entry) == {"id", "name", "metadata", "version", "date", "path", "sha256", "requires"}
    assert entry["id"] == "ai_tagger" and entry["path"] == "ai_tagger.zip"
    assert entry["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_package_is_reproducible(tmp_path: Path) -> None:
    cli("package", "--out", str(tmp_path / "a"))
    cli("package", "--out", str(tmp_path / "b"))
    assert (tmp_path / "a" / "ai_tagger.zip").read_bytes() == (tmp_path / "b" / "ai_tagger.zip").read_bytes()


def test_analyze_writes_evidence_sheets_for_what_it_found(_isolated_data_dir: Path, tmp_path: Path) -> None:
    done = cli("demo", "--json", "--evidence", str(tmp_path / "evidence"))
    assert done.returncode == 0, done.stderr
    sheets = sorted(Path(p).name for p in json.loads(done.stdout)["evidence"])
    assert sheets == ["studio-brand-x.jpg", "text-brandx-com.jpg"]
    assert all((tmp_path / "evidence" / name).stat().st_size > 1000 for name in sheets)
