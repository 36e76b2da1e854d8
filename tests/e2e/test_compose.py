"""docker-compose.example.yaml and the Dockerfile are documentation that must match the code.

Docker cannot run here, so these tests read both files and check them against what the worker and
the plugin really read: the environment becomes the configuration through the same code
(``env_to_raw`` + ``build_config``), the plugin's worker URL points at the worker's service and
port, the worker reaches Stash by its service name and port, the media is the same folder (read-only
on the worker) and the path mapping turns Stash's paths into the worker's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tagger.config import Config, PathMapping, build_config, env_to_raw
from tagger.stashside.relay import ENV_KEYS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.example.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = ("ai-tagger-worker", "ai-tagger-worker-gpu")
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def environment(service: str) -> dict[str, str]:
    """A service's environment with ``${VAR:?...}`` as the value a user's .env would give."""
    env = SERVICES[service]["environment"]
    pairs = env.items() if isinstance(env, dict) else (item.split("=", 1) for item in env)
    return {key: re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", r"<\1>", str(value)) for key, value in pairs}


def volumes(service: str) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) for a service's bind mounts."""
    mounts = {}
    for entry in SERVICES[service]["volumes"]:
        source, target, *options = entry.split(":")
        mounts[target] = (source, "ro" in options)
    return mounts


def dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?<!\\)$", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert block
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


def worker_config(service: str) -> Config:
    """What ``ai_tagger.py serve`` in that container reads: the image's ENV, then the service's."""
    return build_config(env_to_raw({**dockerfile_env(), **environment(service)}))


def container_port(service: str) -> int:
    ports = SERVICES[service].get("expose") or [p.split(":")[-1] for p in SERVICES[service].get("ports", [])]
    assert len(ports) == 1
    return int(str(ports[0]))


@pytest.mark.parametrize("service", WORKERS)
def test_the_worker_listens_on_every_interface_of_its_container_on_the_port_it_exposes(service: str) -> None:
    config = worker_config(service)
    assert config.worker_host == "0.0.0.0"  # loopback would be unreachable from Stash's container
    assert config.worker_port == container_port(service)
    assert f"EXPOSE {config.worker_port}" in DOCKERFILE
    assert f"127.0.0.1:{config.worker_port}/health" in DOCKERFILE  # the health check asks the same port


@pytest.mark.parametrize("service", WORKERS)
def test_the_plugin_in_stash_forwards_to_the_worker_with_the_same_token(service: str) -> None:
    stash_env = environment("stash")
    assert set(ENV_KEYS) <= set(stash_env)  # what tagger.stashside.relay reads in the plugin's process
    url = urlsplit(stash_env["AI_TAGGER_WORKER_URL"])
    names = {service, *SERVICES[service].get("networks", {}).get("default", {}).get("aliases", [])}
    assert url.hostname in names
    assert url.port == worker_config(service).worker_port
    assert stash_env["AI_TAGGER_WORKER_TOKEN"] == environment(service)["AI_TAGGER_WORKER_TOKEN"] \
        == "<AI_TAGGER_WORKER_TOKEN>"
    assert worker_config(service).worker_token  # serve refuses to start without one


@pytest.mark.parametrize("service", WORKERS)
def test_the_worker_reaches_stash_by_its_service_name_and_port(service: str) -> None:
    url = urlsplit(worker_config(service).worker_stash_url)
    assert url.hostname == "stash"
    assert url.port == int(environment("stash")["STASH_PORT"]) == container_port("stash")


@pytest.mark.parametrize("service", WORKERS)
def test_the_worker_reads_stashs_media_read_only_through_its_path_mapping(service: str) -> None:
    stash_mounts = {source: target for target, (source, _) in volumes("stash").items()}
    worker_mounts = volumes(service)
    library = environment("stash")["STASH_STASH"].rstrip("/")
    host_media = next(source for source, target in stash_mounts.items() if target == library)
    (worker_media,) = [target for target, (source, _) in worker_mounts.items() if source == host_media]
    assert worker_mounts[worker_media][1], "the worker must mount the media read-only"
    raw = env_to_raw(environment(service))
    mappings = [PathMapping(stash, local) for stash, local in
                (pair.split("=", 1) for pair in raw["path_mappings"].split(";"))]
    config = Config(path_mappings=tuple(mappings))
    assert config.map_path(f"{library}/studio/scene.mp4") == f"{worker_media}/studio/scene.mp4"


@pytest.mark.parametrize("service", WORKERS)
def test_the_workers_data_folder_is_a_volume(service: str) -> None:
    data = environment(service).get("AI_TAGGER_DATA_DIR") or dockerfile_env()["AI_TAGGER_DATA_DIR"]
    assert data == dockerfile_env()["AI_TAGGER_DATA_DIR"]
    assert data in volumes(service) and not volumes(service)[data][1]  # the store is written
    assert f"VOLUME {data}" in DOCKERFILE


def test_the_gpu_worker_asks_for_an_nvidia_gpu_and_builds_the_gpu_runtime() -> None:
    gpu = SERVICES["ai-tagger-worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["GPU"] == "1"
    assert 'if [ "$GPU" = "1" ]' in DOCKERFILE and "onnxruntime-gpu" in DOCKERFILE
    assert set(gpu["profiles"]).isdisjoint(SERVICES["ai-tagger-worker"]["profiles"])  # one or the other


def test_the_image_runs_serve_from_files_that_exist() -> None:
    assert 'CMD ["python", "ai_tagger.py", "serve"]' in DOCKERFILE
    copied = [name for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.MULTILINE)
              for name in line.split()[:-1]]
    assert copied and [name for name in copied if not (ROOT / name).exists()] == []
    assert "requirements.txt" in copied
    assert "stashapp/stash" in SERVICES["stash"]["image"]
