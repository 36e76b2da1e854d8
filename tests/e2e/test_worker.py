"""The worker service and the plugin that forwards to it, end to end.

The worker is the real ``ai_tagger.py serve`` (Starlette on uvicorn) in its own process; the
plugin is run as Stash runs it, from a plugin folder whose Python may import nothing but the
standard library (a ``sitecustomize`` there refuses every other import and records the attempt),
as in Stash's Alpine image. Both talk to the project's Stash test server.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagger.apps.worker import MAX_BODY, MAX_DEPTH
from tests.e2e.test_writeback_plugin import CONFIG, canonical, seeded_server, videos  # noqa: F401 - fixture
from tests.polling import wait_until
from tests.stash_server import PluginRun, StashTestServer, hook_args, load_manifest, run_plugin, task_args
from tests.worker_process import TOKEN, Worker, free_port

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
ENDED = ("finished", "failed", "cancelled")
VARYING = ("run_id", "seconds", "created_at")
"""Output keys that differ between any two runs of the same task."""

STDLIB_GUARD = '''\
"""The plugin's side must run on the standard library alone: refuse (and record) anything else."""
import os
import sys


class _StandardLibraryOnly:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        # "org": the standard library's own probe for Jython (copy.py), answered ImportError anyway.
        if top in sys.stdlib_module_names or top in ("tagger", "sitecustomize", "__main__", "org"):
            return None
        with open(os.environ["STDLIB_GUARD_LOG"], "a") as log:
            log.write(name + "\\n")
        raise ImportError(f"{name} is not in the standard library (the Stash side must not need it)")


sys.meta_path.insert(0, _StandardLibraryOnly())
'''


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worker-config") / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def stash_side(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path) -> Path:
    """The plugin installed in a Stash whose Python has only the standard library."""
    plugins = tmp_path_factory.mktemp("stash-side") / "plugins"
    shutil.copytree(plugin_dir, plugins / "ai_tagger", ignore=shutil.ignore_patterns("data"))
    (plugins / "sitecustomize.py").write_text(STDLIB_GUARD)  # Stash puts this folder on PYTHONPATH
    return plugins / "ai_tagger"


@pytest.fixture
def guard_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "non-stdlib-imports.txt"
    yield path
    attempted = path.read_text().split() if path.exists() else []
    assert attempted == [], f"the Stash side imported outside the standard library: {attempted}"


@pytest.fixture
def worker(plugin_dir: Path, tmp_path: Path, config_file: Path) -> Iterator[Worker]:
    started = Worker(plugin_dir, tmp_path / "worker-data", config_file, grace=2.0)
    yield started
    started.stop()


def relayed(stash_side: Path, server: StashTestServer | None, task: str, worker_url: str, guard_log: Path,
            token: str = TOKEN, extra: dict[str, Any] | None = None, ca: Path | None = None,
            **options: Any) -> PluginRun:
    """A task as Stash runs it, on the standard-library-only side, with the worker configured (and
    ``ca``: the certificate it trusts for an https worker)."""
    env = {"AI_TAGGER_WORKER_URL": worker_url, "AI_TAGGER_WORKER_TOKEN": token,
           "STDLIB_GUARD_LOG": str(guard_log), **({"AI_TAGGER_WORKER_TLS_CA": str(ca)} if ca else {})}
    return run_plugin(stash_side, "ai_tagger", {**task_args(MANIFEST, task), **(extra or {})}, server,
                      env=env, **options)


def in_process(plugin_dir: Path, server: StashTestServer, task: str, data: Path, config: Path) -> PluginRun:
    env = {"AI_TAGGER_DATA_DIR": str(data), "AI_TAGGER_CONFIG": str(config)}
    return run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, task), server, env=env)


def comparable(output: Any) -> Any:
    """A run's output less what differs between any two runs: ids of runs, times, at any depth."""
    if isinstance(output, dict):
        return {key: comparable(value) for key, value in output.items() if key not in VARYING}
    if isinstance(output, list):
        return [comparable(value) for value in output]
    return output


# ---- the same engine, the same result --------------------------------------------------------------


def test_a_task_relayed_to_the_worker_gives_the_in_process_result(
        plugin_dir: Path, stash_side: Path, worker: Worker, videos: dict[str, Path],  # noqa: F811
        config_file: Path, tmp_path: Path, guard_log: Path) -> None:
    scene_results = {"mode": "review", "action": "scene", "scene_id": "1"}  # what the AI tab asks
    with seeded_server(videos) as local_server:
        local = in_process(plugin_dir, local_server, "Tag untagged scenes", tmp_path / "local", config_file)
        expected = canonical(local_server)
        env = {"AI_TAGGER_DATA_DIR": str(tmp_path / "local"), "AI_TAGGER_CONFIG": str(config_file)}
        local_results = run_plugin(plugin_dir, "ai_tagger", scene_results, local_server, env=env)
    with seeded_server(videos) as server:
        run = relayed(stash_side, server, "Tag untagged scenes", worker.url, guard_log)
        assert run.error is None, run.stderr[-3000:]
        assert canonical(server) == expected
        env = {"AI_TAGGER_WORKER_URL": worker.url, "AI_TAGGER_WORKER_TOKEN": TOKEN,
               "STDLIB_GUARD_LOG": str(guard_log)}
        results = run_plugin(stash_side, "ai_tagger", scene_results, server, env=env)
    assert local.error is None
    assert comparable(run.output) == comparable(local.output)
    assert run.output["tags_added"] > 0 and run.output["markers_created"] > 0
    assert results.error is None and local_results.error is None
    assert comparable(results.output) == comparable(local_results.output)
    assert results.output["markers"]


def test_the_workers_log_and_progress_reach_stash(stash_side: Path, worker: Worker,
                                                  videos: dict[str, Path], guard_log: Path) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        run = relayed(stash_side, server, "Report (dry run)", worker.url, guard_log)
    assert run.error is None, run.stderr[-3000:]
    texts = [text for _, text in run.log]
    assert any(text.startswith(f"AI Tagger: running on the worker at {worker.url} (job ") for text in texts)
    assert any(text.startswith("report on 2 scene(s)") for text in texts)  # the engine's own line
    assert len(run.progress) > 5 and run.progress == sorted(run.progress) and run.progress[-1] == 1.0
    assert not run.stderr_reader_broken


def test_the_hook_goes_through_the_worker_quickly(stash_side: Path, worker: Worker, tmp_path: Path,
                                                  guard_log: Path) -> None:
    with StashTestServer() as server:
        scene = server.state.add_scene("new import", path=str(tmp_path / "new.mp4"))
        context = {"id": scene, "type": "Scene.Create.Post", "input": None, "inputFields": []}
        env = {"AI_TAGGER_WORKER_URL": worker.url, "AI_TAGGER_WORKER_TOKEN": TOKEN,
               "STDLIB_GUARD_LOG": str(guard_log)}
        runs = [run_plugin(stash_side, "ai_tagger", hook_args(MANIFEST, "Queue new scenes", context), server,
                           env=env) for _ in range(3)]
    assert [run.error for run in runs] == [None, None, None], runs[0].stderr[-2000:]
    assert runs[0].output == {"hook": "Scene.Create.Post", "queued": str(scene)}
    walls = sorted(run.wall for run in runs)
    print(f"\nhook through the worker, stdin to exit: {walls[1] * 1000:.0f} ms (median of 3)")
    assert walls[1] < 1.0


def test_the_worker_reads_stashs_paths_through_its_mapping_and_streams_the_rest(
        plugin_dir: Path, stash_side: Path, videos: dict[str, Path], config_file: Path,  # noqa: F811
        tmp_path: Path, guard_log: Path) -> None:
    library = videos["two"].parent
    mapped = Worker(plugin_dir, tmp_path / "mapped", config_file,
                    env={"AI_TAGGER_PATH_MAPPINGS": f"/data={library}"})
    try:
        # Stash (in Docker) has the files under /data and /elsewhere; the worker sees only /data's.
        with StashTestServer(media_paths={"/data": str(library), "/elsewhere": str(library)}) as server:
            server.state.add_scene("here", path="/data/two.mp4")
            server.state.add_scene("not here", path="/elsewhere/two.mp4")
            run = relayed(stash_side, server, "Report (dry run)", mapped.url, guard_log,
                          extra={"selection": "all"})
    finally:
        mapped.stop()
    assert run.error is None, run.stderr[-3000:]
    sources = {scene["title"]: scene["source"] for scene in run.output["scenes"]}
    assert sources == {"here": "path", "not here": "stream"}
    shots = [scene["shots"] for scene in run.output["scenes"]]
    assert shots[0] == shots[1]  # the same video either way


def test_a_failing_task_fails_with_the_same_error_and_the_worker_goes_on(
        plugin_dir: Path, stash_side: Path, worker: Worker, guard_log: Path) -> None:
    env = {"AI_TAGGER_WORKER_URL": worker.url, "AI_TAGGER_WORKER_TOKEN": TOKEN,
           "STDLIB_GUARD_LOG": str(guard_log)}
    with StashTestServer() as server:
        here = run_plugin(plugin_dir, "ai_tagger", {"mode": "bogus"}, server)
        there = run_plugin(stash_side, "ai_tagger", {"mode": "bogus"}, server, env=env)
        after = relayed(stash_side, server, "Report (dry run)", worker.url, guard_log)
    assert here.error is not None and there.error == here.error
    assert after.error is None and after.output["scenes"] == []


# ---- authentication ---------------------------------------------------------------------------------


def test_the_worker_refuses_requests_without_its_token(worker: Worker) -> None:
    task = {"input": {"server_connection": {}, "args": {"mode": "report"}}}
    assert worker.call("POST", "/jobs", task, token=None)[0] == 401
    assert worker.call("POST", "/jobs", task, token="guess")[0] == 401
    assert worker.call("GET", "/jobs", token="guess")[0] == 401
    assert worker.jobs() == []  # nothing was queued


def test_a_plugin_with_the_wrong_token_fails_saying_so(stash_side: Path, worker: Worker,
                                                       guard_log: Path) -> None:
    with StashTestServer() as server:
        run = relayed(stash_side, server, "Report (dry run)", worker.url, guard_log, token="old-token")
    assert run.error is not None and f"the worker at {worker.url} refused the token" in run.error


def test_the_worker_will_not_start_without_a_token(plugin_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "AI_TAGGER_WORKER_TOKEN": "", "AI_TAGGER_DATA_DIR": str(tmp_path)}
    command = [sys.executable, str(plugin_dir / "ai_tagger.py"), "serve", "--port", str(free_port())]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "worker_token: not set" in done.stderr


def test_doctor_checks_that_the_worker_answers_and_takes_the_token(plugin_dir: Path, worker: Worker) -> None:
    def doctor(token: str) -> list[str]:
        env = {**os.environ, "AI_TAGGER_WORKER_URL": worker.url, "AI_TAGGER_WORKER_TOKEN": token}
        done = subprocess.run([sys.executable, str(plugin_dir / "ai_tagger.py"), "doctor"], env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return done.stdout.splitlines()

    assert f"OK  worker at {worker.url} answers and takes the token (0 job(s) running)" in doctor(TOKEN)
    assert any(line.startswith(f"FIX the worker at {worker.url} refused the token") for line in doctor("x"))


# ---- one Stash only ---------------------------------------------------------------------------------

WORKER_API_KEY = "worker-own-stash-api-key-0123"
"""The API key in the worker's own configuration (AI_TAGGER_API_KEY), meant for its Stash alone."""


def hook_job(server: StashTestServer, scene: int) -> dict[str, Any]:
    """The body that relays Stash's hook for a new ``scene`` on ``server`` (the cheapest job)."""
    from tests.stash_server.plugin_runner import server_connection

    context = {"id": scene, "type": "Scene.Create.Post", "input": None, "inputFields": []}
    return {"input": {"server_connection": server_connection(server, None, Path("/tmp"), ROOT),
                      "args": hook_args(MANIFEST, "Queue new scenes", context)}}


def test_without_worker_stash_url_the_worker_serves_only_the_first_stash_it_is_sent(
        plugin_dir: Path, tmp_path: Path, config_file: Path) -> None:
    worker = Worker(plugin_dir, tmp_path / "data", config_file, env={"AI_TAGGER_API_KEY": WORKER_API_KEY})
    try:
        with StashTestServer() as first, StashTestServer() as other:
            status, job = worker.call("POST", "/jobs", hook_job(first, first.state.add_scene("new")))
            assert status == 202 and worker.events(job["id"])[-1]["status"] == "finished"
            status, refusal = worker.call("POST", "/jobs", hook_job(other, other.state.add_scene("new")))
            assert status == 403
            assert refusal["error"] == (
                f"this worker serves the Stash at {first.url} (the first address it was sent) and "
                f"refuses a job for {other.url}, so that its credentials go to no other host; to serve "
                "another Stash, set worker_stash_url (AI_TAGGER_WORKER_STASH_URL) on the worker and "
                "restart it")
            assert first.requests and other.requests == []  # nothing, the key least of all, went there
            assert [j["id"] for j in worker.jobs()] == [job["id"]]
    finally:
        worker.stop()
    assert f"worker: serving the Stash at {first.url} (the first job's address) until it restarts" \
        in worker.log()


def test_with_worker_stash_url_every_job_goes_to_that_stash_whatever_it_names(
        plugin_dir: Path, tmp_path: Path, config_file: Path) -> None:
    with StashTestServer() as configured, StashTestServer() as named:
        env = {"AI_TAGGER_API_KEY": WORKER_API_KEY, "AI_TAGGER_WORKER_STASH_URL": configured.url}
        worker = Worker(plugin_dir, tmp_path / "data", config_file, env=env)
        try:
            status, job = worker.call("POST", "/jobs", hook_job(named, configured.state.add_scene("new")))
            assert status == 202 and worker.events(job["id"])[-1]["status"] == "finished"
        finally:
            worker.stop()
        assert configured.requests and named.requests == []


# ---- what the worker accepts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idle_worker(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                config_file: Path) -> Iterator[Worker]:
    """One worker for the requests it refuses (no job ever starts on it)."""
    started = Worker(plugin_dir, tmp_path_factory.mktemp("idle-worker") / "data", config_file)
    yield started
    started.stop()


def post_raw(worker: Worker, body: bytes | Iterator[bytes] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST /jobs with ``body`` as given (bytes, or chunks sent chunked), or only ``headers``."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=30)
    try:
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
        if body is None:  # the headers alone: the answer must come without the body
            connection.putrequest("POST", "/jobs")
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.endheaders()
        else:
            connection.request("POST", "/jobs", body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_body_declared_larger_than_1_mib_is_refused_before_it_is_sent(idle_worker: Worker) -> None:
    status, text = post_raw(idle_worker, headers={"Content-Length": str(MAX_BODY + 1)})
    assert (status, json.loads(text)) == (413, {"error": f"the body is larger than {MAX_BODY} bytes; a "
                                                         "task's JSON is a few KiB"})


def test_a_streamed_body_larger_than_1_mib_is_refused_once_past_it(idle_worker: Worker) -> None:
    chunk = b" " * 65536  # JSON whitespace: only the size is wrong
    chunks = iter([b"{", *[chunk] * (MAX_BODY // len(chunk)), b"}"])  # 1 MiB + 2 bytes, no length declared
    status, text = post_raw(idle_worker, chunks)
    assert status == 413 and json.loads(text)["error"].startswith(f"the body is larger than {MAX_BODY} bytes")
    assert idle_worker.jobs() == []


TOO_DEEP = f"the body's JSON nests deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize(("body", "says"), [
    (b'{"input": {"args": ', "the body is not JSON (Expecting value: line 1 column 20 (char 19))"),
    (b"\xff\xfe{}", "the body is not JSON ("),
    (b"[1, 2]", 'the body is a JSON list, not an object; give {"input": <the JSON Stash gives a raw '
                'plugin>}'),
    (b'{"input": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", TOO_DEEP),
    (b"[" * 200_000 + b"]" * 200_000, TOO_DEEP),  # past the parser's own recursion limit
    (b'{"input": {"args": {}}, "detach": "yes"}', "detach: 'yes' is not true or false"),
    (b'{"input": {"args": {}, "server_connection": {"Port": "x"}}}',
     "server_connection.Port is not a number: 'x'"),
], ids=["truncated", "not-utf8", "a-list", "65-levels", "200000-levels", "detach-not-bool", "bad-port"])
def test_a_body_that_is_not_a_sound_json_object_is_a_400_saying_why(idle_worker: Worker, body: bytes,
                                                                    says: str) -> None:
    status, text = post_raw(idle_worker, body)
    assert status == 400 and json.loads(text)["error"].startswith(says), text
    assert "Traceback" not in text and idle_worker.jobs() == []


# ---- no secret in an answer -------------------------------------------------------------------------

CHATTY_LIBRARY = '''\
"""A library that prints credentials to stderr when imported (into every process of the worker)."""
import sys

sys.stderr.write("a chatty library connects with {key} and {token}\\\\n")
'''


def test_no_answer_of_the_worker_holds_a_secret_even_one_a_jobs_process_printed(
        plugin_dir: Path, tmp_path: Path, config_file: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CHATTY_LIBRARY.format(key=WORKER_API_KEY, token=TOKEN))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    worker = Worker(plugin_dir, tmp_path / "data", config_file,
                    env={"AI_TAGGER_API_KEY": WORKER_API_KEY, "PYTHONPATH": path})
    try:
        with StashTestServer() as server:
            task = {"server_connection": stdin_for(server, "Report (dry run)")["server_connection"],
                    "args": {"mode": f"report {WORKER_API_KEY}"}}  # echoed in the job's mode and error
            status, job = worker.call("POST", "/jobs", {"input": task})
            answers = [job, worker.events(job["id"]), worker.call("GET", f"/jobs/{job['id']}")[1],
                       worker.call("GET", "/jobs")[1], worker.call("GET", f"/jobs/{WORKER_API_KEY}")[1]]
    finally:
        worker.stop()
    everything = json.dumps(answers)
    assert status == 202 and answers[1][-1]["status"] == "failed"
    assert WORKER_API_KEY not in everything and TOKEN not in everything
    assert "a chatty library connects with *** and ***" in everything  # the line came, masked
    assert answers[2]["mode"] == "report ***" and answers[4] == {"error": "no job *** on this worker "
                                                                          "(it may have restarted)"}


# ---- HTTPS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (certificate, key), as a user makes one."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "worker.crt", folder / "worker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def https_worker(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory, config_file: Path,
                 self_signed: tuple[Path, Path]) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("https-worker")
    started = Worker(plugin_dir, folder / "data", config_file, tls=self_signed)
    yield started
    started.stop()


def test_a_task_runs_on_an_https_worker_whose_self_signed_certificate_stash_is_given(
        https_worker: Worker, stash_side: Path, self_signed: tuple[Path, Path], guard_log: Path) -> None:
    with StashTestServer() as server:
        run = relayed(stash_side, server, "Report (dry run)", https_worker.url, guard_log, ca=self_signed[0])
    assert https_worker.url.startswith("https://")
    assert run.error is None, run.stderr[-3000:]
    assert run.output["scenes"] == []
    assert any(text.startswith(f"AI Tagger: running on the worker at {https_worker.url} (job ")
               for _, text in run.log)


def test_an_https_worker_with_an_unknown_certificate_fails_the_task_saying_what_to_set(
        https_worker: Worker, stash_side: Path, guard_log: Path) -> None:
    jobs_before = https_worker.jobs()
    with StashTestServer() as server:
        run = relayed(stash_side, server, "Report (dry run)", https_worker.url, guard_log)
    assert run.error is not None and run.error.startswith(
        f"the worker at {https_worker.url} presented a certificate this machine does not trust (")
    assert run.error.endswith("give its certificate (the worker's worker_tls_cert) or its CA as "
                              "worker_tls_ca in config.yaml or AI_TAGGER_WORKER_TLS_CA")
    assert https_worker.jobs() == jobs_before  # nothing was sent


def test_the_worker_will_not_start_with_a_certificate_but_no_key(plugin_dir: Path, tmp_path: Path,
                                                                 self_signed: tuple[Path, Path]) -> None:
    env = {**os.environ, "AI_TAGGER_WORKER_TOKEN": TOKEN, "AI_TAGGER_DATA_DIR": str(tmp_path),
           "AI_TAGGER_WORKER_TLS_CERT": str(self_signed[0])}
    command = [sys.executable, str(plugin_dir / "ai_tagger.py"), "serve", "--port", str(free_port())]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert ("worker_tls_key: not set; HTTPS needs both worker_tls_cert (the certificate, PEM) and "
            "worker_tls_key (its private key, PEM)") in done.stderr


# ---- failures and cancels ---------------------------------------------------------------------------


def test_a_worker_that_is_not_there_fails_the_task_naming_its_url(stash_side: Path, guard_log: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with StashTestServer() as server:
        run = relayed(stash_side, server, "Report (dry run)", url, guard_log)
    assert run.error == (f"the worker at {url} is not reachable (connection refused); start it "
                         "(python ai_tagger.py serve) or clear the plugin's 'Worker URL'")


def test_a_worker_that_dies_mid_job_fails_the_task_and_a_rerun_resumes(
        plugin_dir: Path, stash_side: Path, videos: dict[str, Path], config_file: Path,  # noqa: F811
        tmp_path: Path, guard_log: Path) -> None:
    data = tmp_path / "worker-data"
    first = Worker(plugin_dir, data, config_file)
    with seeded_server(videos) as server:
        def kill_after_the_first_scene(_pid: int) -> None:
            def watch() -> None:
                wait_until(lambda: any(m["title"] for m in server.state.snapshot()["markers"].values()
                                       if m["scene_id"] == 1 and m["title"] != "my favourite bit"), 120)
                first.kill()
            threading.Thread(target=watch, daemon=True).start()

        broken = relayed(stash_side, server, "Tag untagged scenes", first.url, guard_log,
                         on_start=kill_after_the_first_scene)
        assert broken.error is not None and broken.error.startswith(
            f"the worker at {first.url} stopped answering during job ")
        assert broken.error.endswith("run the task again: it resumes where it stopped")

        second = Worker(plugin_dir, data, config_file)
        try:
            resumed = relayed(stash_side, server, "Tag untagged scenes", second.url, guard_log)
        finally:
            second.stop()
        assert resumed.error is None, resumed.stderr[-3000:]
        state = canonical(server)
    with seeded_server(videos) as clean_server:
        clean = in_process(plugin_dir, clean_server, "Tag untagged scenes", tmp_path / "clean", config_file)
        assert clean.error is None
        assert state == canonical(clean_server)  # nothing doubled, nothing missing


def test_stashs_stop_of_the_plugin_cancels_the_job_on_the_worker(
        stash_side: Path, worker: Worker, videos: dict[str, Path], guard_log: Path) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        def stop_once_it_runs(pid: int) -> None:  # Stash's Stop: SIGKILL to the plugin, nothing else
            def watch() -> None:
                wait_until(lambda: [j for j in worker.jobs() if j["status"] == "running"], 30, "a job")
                os.kill(pid, signal.SIGKILL)
            threading.Thread(target=watch, daemon=True).start()

        run = relayed(stash_side, server, "Re-tag everything", worker.url, guard_log,
                      on_start=stop_once_it_runs)
        assert run.returncode == -signal.SIGKILL
        job = wait_until(lambda: [j for j in worker.jobs() if j["status"] in ENDED], 20, "the job to end")[0]
        assert job["status"] == "cancelled"
        assert job["error"] == "cancelled: nobody listened for 2 s (the plugin was stopped)"
        after_cancel = server.state.snapshot()
        time.sleep(2.0)
        assert server.state.snapshot() == after_cancel  # the job's process is gone: no more writes


def test_a_cancel_request_stops_a_running_job(worker: Worker, videos: dict[str, Path]) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        job = submit(worker, server, "Re-tag everything", detach=True)
        wait_until(lambda: worker.call("GET", f"/jobs/{job['id']}")[1]["status"] == "running", 30)
        worker.call("POST", f"/jobs/{job['id']}/cancel", {})
        started = time.monotonic()
        end = worker.events(job["id"])[-1]
        assert end["type"] == "end" and end["status"] == "cancelled"
        assert time.monotonic() - started < 10
        assert end["error"] == "cancelled: on request"


def test_a_client_that_goes_away_does_not_stop_the_job(worker: Worker, videos: dict[str, Path]) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        job = submit(worker, server, "Report (dry run)")
        first = worker.events(job["id"], stop=lambda event: event["type"] == "progress")
        time.sleep(1.0)  # gone for a moment (within the worker's 2-s grace)
        rest = worker.events(job["id"], after=first[-1]["seq"])
    assert rest[0]["seq"] == first[-1]["seq"] + 1  # read on from where it left, nothing lost
    assert rest[-1]["type"] == "end" and rest[-1]["status"] == "finished"
    assert len(rest[-1]["output"]["scenes"]) == 2


def test_a_detached_job_runs_to_the_end_with_nobody_listening(worker: Worker,
                                                               videos: dict[str, Path]) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        job = submit(worker, server, "Report (dry run)", detach=True)
        wait_until(lambda: worker.call("GET", f"/jobs/{job['id']}")[1]["status"] in ENDED, 120)
        result = worker.call("GET", f"/jobs/{job['id']}")[1]
    assert result["status"] == "finished" and len(result["output"]["scenes"]) == 2


def test_jobs_beyond_worker_jobs_wait_their_turn(worker: Worker, videos: dict[str, Path]) -> None:  # noqa: F811
    with seeded_server(videos) as server:
        ids = [submit(worker, server, "Report (dry run)", detach=True)["id"] for _ in range(2)]
        wait_until(lambda: worker.call("GET", f"/jobs/{ids[0]}")[1]["status"] == "running", 30)
        assert worker.call("GET", f"/jobs/{ids[1]}")[1]["status"] == "queued"
        ends = [worker.events(job_id)[-1] for job_id in ids]
    assert [end["status"] for end in ends] == ["finished", "finished"]


def stdin_for(server: StashTestServer, task: str) -> dict[str, Any]:
    """What Stash would write to the plugin's stdin for ``task``."""
    from tests.stash_server.plugin_runner import server_connection

    return {"server_connection": server_connection(server, None, Path("/tmp"), ROOT),
            "args": task_args(MANIFEST, task)}


def submit(worker: Worker, server: StashTestServer, task: str, *, detach: bool = False) -> dict[str, Any]:
    status, job = worker.call("POST", "/jobs", {"input": stdin_for(server, task), "detach": detach})
    assert status == 202, job
    return job
