"""Performer recognition end to end, with the real face models, on the test Stash server: the
gallery is built from the performers' own images, tagging adds the right performers to the right
scenes (photos in the videos are never the gallery photos), an unknown person seen in several
scenes comes back as one stable suggested cluster with face crops, and accepting it creates the
performer in those scenes.

    scene   on screen (photo)                         performers in Stash (gallery photo)
    duo     p03 (1.jpg) 1-11 s, p05 (2.jpg) 6-14 s    Bob = p03/2.jpg, Anna = p05/1.jpg
    solo    p04 (1.jpg) 1-13 s, p01 (2.jpg) 2-12 s    Cora = p04/2.jpg, Dan = p06 (nowhere)
    crowd   p01 (1.jpg) 1-12 s                        Eve has no image
    alone   p01 (4.jpg) 2-13 s, smaller               p01 is nobody's: the unknown person
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from tagger.media.sample import make_sample_video
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TASK_FOR_MODE = {task["defaultArgs"]["mode"]: task["name"] for task in MANIFEST["tasks"]}
CONFIG = "analyzers: [faces]\n"
LIST_PEOPLE = {"action": "list", "scene_id": "*"}  # suggestions about the whole library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> dict[str, Path]:
    def photo(name: str, height: int = 260) -> Any:
        image = cv2.imread(str(shared_dir / "faces" / name))
        return cv2.resize(image, (image.shape[1] * height // image.shape[0], height))

    folder = tmp_path_factory.mktemp("performer-library")
    scenes = {
        "duo": [(photo("p03/1.jpg"), 1.0, 11.0, (0.3, 0.45)), (photo("p05/2.jpg"), 6.0, 14.0, (0.7, 0.45))],
        "solo": [(photo("p04/1.jpg"), 1.0, 13.0, (0.3, 0.45)), (photo("p01/2.jpg"), 2.0, 12.0, (0.72, 0.5))],
        "crowd": [(photo("p01/1.jpg"), 1.0, 12.0, (0.5, 0.45))],
        "alone": [(photo("p01/4.jpg", 220), 2.0, 13.0, (0.4, 0.5))],
    }
    return {name: make_sample_video(folder / f"{name}.mp4", duration_s=14, cut_times=(), black_spans=(),
                                    faces=faces).path for name, faces in scenes.items()}


@pytest.fixture(scope="module")
def images(shared_dir: Path) -> dict[str, Path]:
    return {"Bob": shared_dir / "faces/p03/2.jpg", "Anna": shared_dir / "faces/p05/1.jpg",
            "Cora": shared_dir / "faces/p04/2.jpg", "Dan": shared_dir / "faces/p06/1.jpg"}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("performer-config") / "config.yaml"
    path.write_text(CONFIG)
    return path


def seed(server: StashTestServer, library: dict[str, Path], images: dict[str, Path]) -> None:
    for name, image in images.items():
        server.state.add_performer(name, image=str(image))
    server.state.add_performer("Eve")
    for name, path in library.items():
        server.state.add_scene(name, path=str(path))


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path, library: dict[str, Path],
         images: dict[str, Path], config_file: Path) -> Path:
    """The analysis cache after one dry run (each test then decides from cached detections)."""
    data = tmp_path_factory.mktemp("performer-warm")
    with StashTestServer() as server:
        seed(server, library, images)
        run = run_mode(plugin_dir, server, "report", data, config_file, {"selection": "all"})
        assert run.error is None, run.stderr[-3000:]
    return data / "cache.sqlite"


@pytest.fixture
def data_dir(tmp_path: Path, warm: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(warm, data / "cache.sqlite")
    return data


@pytest.fixture
def server(library: dict[str, Path], images: dict[str, Path]) -> Iterator[StashTestServer]:
    with StashTestServer() as server:
        seed(server, library, images)
        yield server


def run_mode(plugin_dir: Path, server: StashTestServer, mode: str, data: Path, config: Path,
             args: dict[str, Any] | None = None) -> PluginRun:
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    base = task_args(MANIFEST, TASK_FOR_MODE[mode]) if mode in TASK_FOR_MODE else {"mode": mode}
    return run_plugin(plugin_dir, "ai_tagger", {**base, **(args or {})}, server, env=env)


def performers_by_scene(server: StashTestServer) -> dict[str, list[str]]:
    state = server.state.snapshot()
    return {scene["title"]: sorted(state["performers"][p]["name"] for p in scene["performer_ids"])
            for scene in state["scenes"].values()}


def errors_in(run: PluginRun) -> list[str]:
    return [text for level, text in run.log if level in "we"]


def test_the_gallery_is_built_from_performer_images(plugin_dir: Path, server: StashTestServer,
                                                    data_dir: Path, config_file: Path) -> None:
    run = run_mode(plugin_dir, server, "gallery", data_dir, config_file)
    assert run.error is None, errors_in(run)
    assert (run.output["performers"], run.output["updated"], run.output["without_image"]) == (5, 4, 1)
    assert run.output["embeddings"] == 4 and run.output["problems"] == []
    again = run_mode(plugin_dir, server, "gallery", data_dir, config_file)
    assert (again.output["updated"], again.output["unchanged"]) == (0, 5)  # nothing is fetched twice


def test_tagging_adds_the_right_performers_to_the_right_scenes(plugin_dir: Path, server: StashTestServer,
                                                               data_dir: Path, config_file: Path) -> None:
    run = run_mode(plugin_dir, server, "untagged", data_dir, config_file)
    assert run.error is None, errors_in(run)
    assert performers_by_scene(server) == {"duo": ["Anna", "Bob"], "solo": ["Cora"], "crowd": [], "alone": []}
    again = run_mode(plugin_dir, server, "all", data_dir, config_file)
    assert again.output["changed"] == 0


def test_a_performer_the_user_removed_is_not_added_back(plugin_dir: Path, server: StashTestServer,
                                                        data_dir: Path, config_file: Path) -> None:
    assert run_mode(plugin_dir, server, "untagged", data_dir, config_file).error is None
    bob = next(p["id"] for p in server.state.performers.values() if p["name"] == "Bob")
    server.state.scenes[1]["performer_ids"].remove(bob)
    assert run_mode(plugin_dir, server, "all", data_dir, config_file).error is None
    assert performers_by_scene(server)["duo"] == ["Anna"]


def test_an_unknown_person_in_three_scenes_becomes_one_suggested_cluster(
        plugin_dir: Path, server: StashTestServer, data_dir: Path, config_file: Path) -> None:
    assert run_mode(plugin_dir, server, "untagged", data_dir, config_file).error is None
    first = run_mode(plugin_dir, server, "gallery", data_dir, config_file)
    assert first.error is None and first.output["unknown_people"] == 1
    listed = run_mode(plugin_dir, server, "review", data_dir, config_file, LIST_PEOPLE)
    (cluster,) = listed.output["suggestions"]
    assert cluster["kind"] == "cluster" and sorted(cluster["payload"]["scenes"]) == ["2", "3", "4"]
    assert all(face["crop"] and Path(face["crop"]).is_file() for face in cluster["payload"]["faces"])
    # Clusters are stable: another run keeps the same id.
    assert run_mode(plugin_dir, server, "all", data_dir, config_file).error is None
    assert run_mode(plugin_dir, server, "gallery", data_dir, config_file).error is None
    again = run_mode(plugin_dir, server, "review", data_dir, config_file, LIST_PEOPLE)
    assert [s["title"] for s in again.output["suggestions"]] == [cluster["title"]]


def test_accepting_a_cluster_creates_the_performer_in_its_scenes(
        plugin_dir: Path, server: StashTestServer, data_dir: Path, config_file: Path) -> None:
    assert run_mode(plugin_dir, server, "untagged", data_dir, config_file).error is None
    assert run_mode(plugin_dir, server, "gallery", data_dir, config_file).error is None
    listed = run_mode(plugin_dir, server, "review", data_dir, config_file, LIST_PEOPLE)
    (cluster,) = listed.output["suggestions"]
    accepted = run_mode(plugin_dir, server, "review", data_dir, config_file,
                        {"action": "accept", "id": cluster["id"], "name": "Stranger"})
    assert accepted.error is None, errors_in(accepted)
    assert performers_by_scene(server) == {"duo": ["Anna", "Bob"], "solo": ["Cora", "Stranger"],
                                           "crowd": ["Stranger"], "alone": ["Stranger"]}
    stranger = next(p for p in server.state.performers.values() if p["name"] == "Stranger")
    assert stranger["image_data"].startswith("data:image/jpeg;base64,")
    # The new performer's faces are in the gallery, and undo keeps what the user accepted.
    assert run_mode(plugin_dir, server, "undo", data_dir, config_file).error is None
    assert performers_by_scene(server)["alone"] == ["Stranger"]
    assert accepted.output["performer_id"] == str(stranger["id"])
    assert sorted(accepted.output["scenes"]) == ["2", "3", "4"]
