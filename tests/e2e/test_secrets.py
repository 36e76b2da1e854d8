"""No secret is ever written: Stash's API key, its session cookie and the worker token never reach
a log line, the task's output, a stored row or any file in the data folder.

The library run is a real plugin run against the test Stash with credentials on: Stash then puts
``?apikey=KEY`` into every stream URL, as real Stash does, and every media error about a streamed
scene used to quote that URL. Every byte the tagger wrote is searched for each secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tagger.config import build_config
from tagger.media.sample import make_sample_video
from tagger.redact import MASK, redact, register_secret, url_without_secrets
from tagger.stashside.stash import StashClient, StashScene
from tests.stash_server import StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
TAG_ALL = next(task["name"] for task in MANIFEST["tasks"] if task["defaultArgs"]["mode"] == "all")

API_KEY = "eyJhbGciOiJIUzI1NiJ9.secret-api-key-4711"
COOKIE = "MTY5secret-session-cookie-0815"
WORKER_TOKEN = "secret-worker-token-2342"
SECRETS = (API_KEY, COOKIE, WORKER_TOKEN)


def leaks(data: bytes) -> list[str]:
    """The secrets (or their URL-encoded forms) found in ``data``."""
    return [secret for secret in SECRETS
            for form in {secret, quote(secret, safe="")} if form.encode() in data]


def written_files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


# ---- the one place that masks ---------------------------------------------------------------

def test_a_registered_secret_is_masked_wherever_it_appears() -> None:
    register_secret("s3cr3t-value-xyz")
    assert redact("failed with s3cr3t-value-xyz in it") == f"failed with {MASK} in it"
    assert redact(f"quoted {quote('s3cr3t-value-xyz')}") == f"quoted {MASK}"


def test_secret_shapes_are_masked_without_being_registered() -> None:
    text = ("http://stash:9999/scene/1/stream?apikey=unregistered1&x=1 | ApiKey: abcdefghijklmnop | "
            "Cookie: session=abc123; theme=dark | Authorization: Bearer tok.en-123")
    masked = redact(text)
    for value in ("unregistered1", "abcdefghijklmnop", "abc123", "tok.en-123"):
        assert value not in masked
    assert "x=1" in masked and "/scene/1/stream" in masked


def test_ordinary_messages_that_name_a_secret_setting_are_left_readable() -> None:
    message = "worker_token: missing; set it in config.yaml"
    assert redact(message) == message


def test_credentials_leave_a_url_and_everything_else_stays() -> None:
    assert url_without_secrets("http://h:9999/scene/7/stream?apikey=K&t=3") == \
        "http://h:9999/scene/7/stream?t=3"
    assert url_without_secrets("http://h:9999/scene/7/stream") == "http://h:9999/scene/7/stream"


def test_the_stash_client_and_the_config_print_redacted() -> None:
    client = StashClient("http://stash:9999", api_key="client-key-123456",
                         session_cookie=("session", "client-cookie-123456"))
    config = build_config({"api_key": "config-key-123456", "worker_token": "config-token-123456"})
    for shown in (repr(client), str(client), repr(config)):
        assert "123456" not in shown and MASK in shown


def test_a_scene_keeps_its_stream_url_without_the_api_key() -> None:
    scene = StashScene.from_graphql({"id": "3", "files": [], "paths": {
        "stream": "http://stash:9999/scene/3/stream?apikey=key-in-url-1"}})
    assert scene.stream_url == "http://stash:9999/scene/3/stream"


def test_the_api_key_can_come_from_a_file_or_the_environment_not_only_the_command_line(
        tmp_path: Path) -> None:
    help_text = subprocess.run([sys.executable, str(ROOT / "ai_tagger.py"), "run", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--api-key-file" in help_text and "AI_TAGGER_API_KEY" in help_text
    from tagger.apps.cli import build_parser, config_flags

    key_file = tmp_path / "stash.key"
    key_file.write_text("key-from-file-123\n")
    args = build_parser().parse_args(["run", "--mode", "all", "--api-key-file", str(key_file)])
    assert config_flags(args)["api_key"] == "key-from-file-123"


# ---- a whole library run ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One video the tagger reads from disk, one only Stash sees (streamed), one broken (streamed)."""
    local = tmp_path_factory.mktemp("secrets-local")
    remote = tmp_path_factory.mktemp("secrets-stash-only")
    make_sample_video(local / "here.mp4", duration_s=6, size=(320, 180), cut_times=(3.0,), black_spans=())
    make_sample_video(remote / "streamed.mp4", duration_s=6, size=(320, 180), cut_times=(2.0,),
                      black_spans=())
    (remote / "broken.mp4").write_bytes(b"not a video at all" * 100)
    return {"local": local, "remote": remote}


@pytest.mark.parametrize("where", ["here", "worker", "ray"])
def test_a_library_run_with_credentials_writes_no_secret_anywhere(
        plugin_dir: Path, media: dict[str, Path], tmp_path: Path, where: str) -> None:
    """The same library tagged in the plugin's process, through the worker service, and on Ray."""
    from tests.worker_process import Worker

    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(f"worker_token: {WORKER_TOKEN}\nanalyzers: [shots, content, text]\n"
                      + ("ray_address: local\nray_gpus: 0\n" if where == "ray" else ""))
    # Stash sees its library under /stash-library; this machine has no such folder and no mapping,
    # so two scenes can only be streamed, and a third file is missing everywhere.
    server = StashTestServer(api_key=API_KEY, session_cookie=COOKIE,
                             media_paths={"/stash-library": str(media["remote"])})
    state = server.state
    state.add_scene("here", path=str(media["local"] / "here.mp4"))
    state.add_scene("streamed", path="/stash-library/streamed.mp4")
    state.add_scene("broken", path="/stash-library/broken.mp4")
    state.add_scene("gone", path="/stash-library/gone.mp4")
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    worker = Worker(plugin_dir, data, config, token=WORKER_TOKEN) if where == "worker" else None
    if worker is not None:  # the plugin's side has a data folder of its own
        env = {"AI_TAGGER_DATA_DIR": str(tmp_path / "stash-side"), "AI_TAGGER_WORKER_URL": worker.url,
               "AI_TAGGER_WORKER_TOKEN": WORKER_TOKEN}
    answers: list[bytes] = []
    try:
        with server:
            run = run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, TAG_ALL), server, env=env,
                             timeout=300)
            wanted = {"mode": "review", "action": "evidence", "scene_id": "4", "times": [1.0]}
            evidence = run_plugin(plugin_dir, "ai_tagger", wanted, server, env=env)
        if worker is not None:
            jobs = worker.call("GET", "/jobs", token=WORKER_TOKEN)[1]["jobs"]
            answers = [json.dumps(jobs).encode()] + [
                json.dumps(worker.call("GET", f"/jobs/{job['id']}", token=WORKER_TOKEN)[1]).encode()
                for job in jobs]
    finally:
        if worker is not None:
            worker.stop()
            answers.append(worker.log().encode())
    assert run.error is None, run.stderr[-3000:]
    failed = {entry["scene_id"]: entry["error"] for entry in run.output["scenes"] if "error" in entry}
    assert set(failed) == {"3", "4"}, run.output  # the broken and the missing file: errors named
    assert all("/scene/" in text for text in failed.values())  # the stream URL is still quoted
    assert run.output["analysed"] == 2
    assert evidence.error is not None  # the missing file's evidence fails, naming its stream
    written = {"stdout": run.stdout.encode(), "stderr": run.stderr.encode(),
               "evidence stdout": evidence.stdout.encode(), "evidence stderr": evidence.stderr.encode(),
               **{f"worker answer {i}": body for i, body in enumerate(answers)},
               **{str(path): body for folder in (data, tmp_path / "stash-side") if folder.is_dir()
                  for path, body in written_files(folder).items()}}
    for name, body in written.items():
        assert not leaks(body), f"{name} holds {leaks(body)}"


def test_the_secrets_test_would_see_a_leak(tmp_path: Path) -> None:
    """The search above finds a secret in a SQLite file and in URL-encoded form."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "probe.sqlite")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (f"http://x/stream?apikey={quote(API_KEY, safe='')}",))
    db.commit()
    db.close()
    assert leaks(b"".join(written_files(tmp_path).values())) == [API_KEY]


def test_the_hook_caches_the_plugin_settings_without_their_secrets(plugin_dir: Path, tmp_path: Path) -> None:
    from tests.stash_server import hook_args

    data = tmp_path / "data"
    server = StashTestServer(api_key=API_KEY, session_cookie=COOKIE)
    server.state.plugin_config["ai_tagger"] = {"autoTagNew": True, "apiKey": API_KEY,
                                               "workerToken": WORKER_TOKEN}
    context = {"id": 1, "type": "Scene.Create.Post", "input": None, "inputFields": None}
    with server:
        run = run_plugin(plugin_dir, "ai_tagger", hook_args(MANIFEST, "Queue new scenes", context), server,
                         env={"AI_TAGGER_DATA_DIR": str(data)})
    assert run.error is None, run.stderr[-2000:]
    assert [job["task_name"] for job in server.state.jobs.values()] == ["Tag queued scenes"]
    for path, body in written_files(data).items():
        assert not leaks(body), f"{path} holds {leaks(body)}"
