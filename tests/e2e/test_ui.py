"""The plugin's UI (``ui/*.js``, as ai_tagger.yml lists them) in a real headless Chromium, backed by
real plugin runs.

The browser loads a stand-in for Stash's scene page (``tests/ui/scene.html``: React 17,
react-bootstrap 1.6 and Bootstrap 4 as Stash ships them, a ``window.PluginApi`` with Stash's patch
semantics and its ``stash:location`` event, a router that moves between pages without loading one,
the patchable ``ScenePage.Tabs`` / ``ScenePage.TabContent`` containers, a toolbar and a
``<video>``), then the plugin's javascript and css as Stash serves them: the manifest's files of each
kind, in its order, joined into one response. A small front server puts
it all on one origin under the base path ``/stash/`` and forwards ``/stash/graphql`` and the scene
streams to the test Stash server, which requires a session cookie (the page sets one, as a login
does). ``runPluginOperation`` runs the real plugin; ``runPluginTask`` records a job the test then
moves through its states.

A second stand-in, ``tests/ui/scenes.html``, is Stash's scene list with the patchable
``SceneListOperations`` (its operations in a dropdown) and a card per scene.

The library: one short video (a woman's face from ../shared, the watermark ``BRANDX.COM``, one cut)
in four scenes, tagged once by the plugin: "view" has no studio (Brand X is set), "accept",
"reject" and "refresh" have the user's studio (Brand X waits for review). The content model's
FACE_FEMALE label is written as a tag named ``<img src=x onerror=alert(1)>``, so every test also
checks that names render as text: any dialog, console error or page error fails the test.

Needs Chromium (``apt-get install -y chromium``, or ``AI_TAGGER_CHROMIUM=/path``), Node.js and the
npm packages in ``tests/ui`` (``npm ci --prefix tests/ui``). Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import pytest

from tagger.media.sample import make_sample_video
from tests.polling import wait_until
from tests.stash_server import PluginRun, StashTestServer, load_manifest, run_plugin, task_args

ROOT = Path(__file__).resolve().parents[2]
UI_DIR = ROOT / "tests" / "ui"
ARTIFACTS = ROOT / "artifacts" / "ui"
MANIFEST = load_manifest(ROOT / "ai_tagger.yml")
BASE = "/stash/"
"""Stash's base path in the browser: every URL the UI uses must be relative to <base href>."""
SESSION = "ui-test-session"
XSS = "<img src=x onerror=alert(1)>"
CONFIG = f"""\
shot_markers: true
tags:
  FACE_FEMALE: {{enabled: true, threshold: 0.45, scene_min_seconds: 4.0, marker: true, tag: "{XSS}"}}
"""
NPM_FILES = ("playwright-core/package.json", "react/umd/react.development.js",
             "react-dom/umd/react-dom.development.js", "react-bootstrap/dist/react-bootstrap.js",
             "bootstrap/dist/css/bootstrap.min.css")
INSTALL_CHROMIUM = "apt-get install -y chromium (or set AI_TAGGER_CHROMIUM to a Chromium binary)"
INSTALL_NODE = "apt-get install -y nodejs npm"
INSTALL_NPM = "npm ci --prefix tests/ui"


# ---- what the test needs on the machine ----------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's binary; the test fails (never skips) naming the install step that is missing."""
    path = os.environ.get("AI_TAGGER_CHROMIUM") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"Chromium is missing{f' at {path}' if path else ''}; the UI test needs it: "
                    f"{INSTALL_CHROMIUM}", pytrace=False)
    if not shutil.which("node"):
        pytest.fail(f"Node.js is missing; the UI test drives Chromium with it: {INSTALL_NODE}", pytrace=False)
    missing = [name for name in NPM_FILES if not (UI_DIR / "node_modules" / name).is_file()]
    if missing:
        pytest.fail(f"npm packages of the UI test are missing ({', '.join(missing)}): {INSTALL_NPM}",
                    pytrace=False)
    return path


# ---- the library, tagged once by the real plugin -------------------------------------------------


@dataclass
class Library:
    server: StashTestServer
    plugin_dir: Path
    env: dict[str, str]
    scenes: dict[str, int]
    studios: dict[str, int]

    def review(self, **args: Any) -> Any:
        """The review API as the UI reaches it (runPluginOperation), from the test's side."""
        run = run_plugin(self.plugin_dir, "ai_tagger", {"mode": "review", **args}, self.server, env=self.env)
        assert run.error is None, run.stderr[-2000:]
        return run.output


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path,
            plugin_dir: Path) -> Iterator[Library]:
    folder = tmp_path_factory.mktemp("ui-library")
    face = cv2.imread(str(shared_dir / "faces" / "p05" / "2.jpg"))
    face = cv2.resize(face, (face.shape[1] * 260 // face.shape[0], 260))
    video = make_sample_video(folder / "scene.mp4", duration_s=12, cut_times=(6.0,), black_spans=(),
                              text=("BRANDX.COM", 0.0, 12.0, "top-left"),
                              faces=[(face, 1.5, 11.0, (0.5, 0.45))]).path
    (folder / "config.yaml").write_text(CONFIG)
    server = StashTestServer(session_cookie=SESSION)
    state = server.state
    studios = {"Brand X": state.add_studio("Brand X", aliases=["BrandX"]),
               "Other Studio": state.add_studio("Other Studio")}
    state.add_performer("Anna", image=str(shared_dir / "faces" / "p05" / "1.jpg"))
    scenes = {"view": state.add_scene("view", path=str(video)),
              "accept": state.add_scene("accept", path=str(video), studio_id=studios["Other Studio"]),
              "reject": state.add_scene("reject", path=str(video), studio_id=studios["Other Studio"]),
              "refresh": state.add_scene("refresh", path=str(video), studio_id=studios["Other Studio"])}
    env = {"AI_TAGGER_DATA_DIR": str(folder / "data"), "AI_TAGGER_CONFIG": str(folder / "config.yaml")}
    with server:
        run = run_plugin(plugin_dir, "ai_tagger", task_args(MANIFEST, "Tag untagged scenes"), server, env=env)
        assert run.error is None, run.stderr[-3000:]
        assert state.scenes[scenes["view"]]["studio_id"] == studios["Brand X"]

        def operation(args: dict[str, Any]) -> Any:  # Stash runs the plugin with the args as given
            answer: PluginRun = run_plugin(plugin_dir, "ai_tagger", args, server, env=env)
            if answer.error:
                raise RuntimeError(answer.error)
            return answer.output

        state.register_operation("ai_tagger", operation)
        yield Library(server, plugin_dir, env, scenes, studios)


# ---- one origin: the page, the plugin's UI files and Stash behind /stash/ -------------------------


def stash_serves(names: list[str]) -> bytes:
    """Stash's /plugin/<id>/javascript and /css (internal/api serveFiles): each file the manifest
    lists, in its order, followed by a newline, as one response."""
    return b"".join((ROOT / name).read_bytes() + b"\n" for name in names)


class FrontServer:
    """Serves the test page under ``/stash/`` and forwards GraphQL and streams to the test Stash."""

    def __init__(self, stash: StashTestServer) -> None:
        self.stash = stash
        self.requests: list[tuple[str, str]] = []
        handler = type("Handler", (_FrontHandler,), {"front": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def list_url(self, query: str = "") -> str:
        return f"{self.url}{BASE}scenes" + (f"?{query}" if query else "")

    def other_url(self, query: str = "") -> str:
        """A page of Stash the plugin adds nothing to (the stand-in router's placeholder)."""
        return f"{self.url}{BASE}performers" + (f"?{query}" if query else "")

    def scene_url(self, scene_id: int, query: str = "") -> str:
        return f"{self.url}{BASE}scenes/{scene_id}" + (f"?{query}" if query else "")

    def plugin_file(self, kind: str) -> bytes:
        """The plugin's ui files of one kind, as Stash serves /plugin/<id>/javascript|css."""
        return stash_serves(MANIFEST["ui"][kind])


class _FrontHandler(BaseHTTPRequestHandler):
    front: FrontServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.front.requests.append(("GET", self.path))
        path = self.path.split("?")[0]
        if re.fullmatch(rf"{BASE}(scenes(/\d+)?|performers)", path):
            # A logged-in user's page: the session cookie the UI must send with its requests.
            cookie = f"session={SESSION}; Path={BASE}; HttpOnly; SameSite=Lax"
            html = "scenes.html" if path.endswith("/scenes") else "scene.html"
            self._send(200, (UI_DIR / html).read_bytes(), "text/html; charset=utf-8",
                       {"Set-Cookie": cookie})
        elif path in (f"{BASE}plugin/ai_tagger/javascript", f"{BASE}plugin/ai_tagger/css"):
            kind = "javascript" if path.endswith("javascript") else "css"
            self._send(200, self.front.plugin_file(kind),
                       "text/javascript" if kind == "javascript" else "text/css")
        elif path.startswith(f"{BASE}ui-test/"):
            self._static(path[len(f"{BASE}ui-test/"):])
        elif re.fullmatch(rf"{BASE}scene/\d+/stream", path):
            self._forward("GET", path[len(BASE) - 1:], None)
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        self.front.requests.append(("POST", self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] == f"{BASE}graphql":
            self._forward("POST", "/graphql", body)
        else:
            self._send(404, b"not found", "text/plain")

    def _static(self, relative: str) -> None:
        target = (UI_DIR / relative).resolve()
        if UI_DIR.resolve() not in target.parents or not target.is_file():
            self._send(404, b"not found", "text/plain")
            return
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), ctype)

    def _forward(self, method: str, path: str, body: bytes | None) -> None:
        sent = ("Content-Type", "Cookie", "Range")
        headers = {name: self.headers[name] for name in sent if self.headers[name]}
        request = urllib.request.Request(self.front.stash.url + path, data=body, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, answer, reply_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, answer, reply_headers = error.code, error.read(), error.headers
        kept = ("Content-Range", "Accept-Ranges")
        passed = {name: reply_headers[name] for name in kept if reply_headers[name]}
        self._send(status, answer, reply_headers.get("Content-Type"), passed)

    def _send(self, status: int, body: bytes, ctype: str | None,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site(library: Library) -> Iterator[FrontServer]:
    front = FrontServer(library.server)
    front.thread.start()
    yield front
    front.httpd.shutdown()
    front.httpd.server_close()


# ---- the browser ---------------------------------------------------------------------------------


class BrowserError(AssertionError):
    """A browser command failed (a selector that never matched, a timeout, a script error)."""


class Browser:
    """Headless Chromium through tests/ui/driver.js (playwright-core): one JSON command per line."""

    def __init__(self, chromium: str) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the driver's stderr, closed in close()
        self.process = subprocess.Popen(["node", str(UI_DIR / "driver.js"), chromium], cwd=UI_DIR,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True)
        self.version = self._answer("start")

    def call(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        return self._answer(op)

    def _answer(self, op: str) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise BrowserError(f"the browser driver ended during {op!r}: {self.log.read().decode()[-3000:]}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(f"{op}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    driver = Browser(chromium)
    yield driver
    driver.close()


class Page:
    """The scene page in the browser: a fresh browser context per test."""

    def __init__(self, browser: Browser, site: FrontServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.browser, self.site, self.capsys = browser, site, capsys

    def open(self, scene_id: int, query: str = "") -> None:
        self.browser.call("open", url=self.site.scene_url(scene_id, query))
        self.wait(".scene-toolbar-group .ai-tagger-button")

    def open_list(self, query: str = "") -> None:
        self.browser.call("open", url=self.site.list_url(query))
        self.wait(".scene-card")

    def open_other(self, query: str = "") -> None:
        self.browser.call("open", url=self.site.other_url(query))
        self.wait(".other-page")

    def open_tab(self, scene_id: int) -> None:
        self.open(scene_id)
        self.click(".ai-tagger-nav .nav-link")
        self.wait(".ai-tagger-pane .ai-tagger-panel .ai-tagger-section")

    def navigate(self, path: str) -> None:
        """Move as Stash's links do (its router: the address changes, no page loads)."""
        self.eval(f"window.TestStash.navigate({json.dumps(path)})")

    def click(self, selector: str) -> None:
        self.browser.call("click", selector=selector)

    def wait(self, selector: str, state: str = "visible") -> None:
        self.browser.call("wait", selector=selector, state=state)

    def wait_for(self, expression: str) -> None:
        self.browser.call("waitFor", expression=expression)

    def wait_text(self, selector: str, text: str) -> None:
        """Until the one element matching ``selector`` contains ``text``."""
        self.wait_for(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent"
                      f"?.includes({json.dumps(text)})")

    def text(self, selector: str) -> str:
        return self.browser.call("text", selector=selector)

    def texts(self, selector: str) -> list[str]:
        return self.browser.call("texts", selector=selector)

    def count(self, selector: str) -> int:
        return self.browser.call("count", selector=selector)

    def attrs(self, selector: str, name: str) -> list[str | None]:
        return self.browser.call("attrs", selector=selector, name=name)

    def eval(self, expression: str) -> Any:
        return self.browser.call("eval", expression=expression)

    def screenshot(self, name: str, selector: str | None = None) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.browser.call("screenshot", path=str(path), **({"selector": selector} if selector else {}))
        with self.capsys.disabled():
            print(f"\nscreenshot: {path}")
        return path

    def events(self) -> dict[str, list[Any]]:
        return self.browser.call("events")


@pytest.fixture
def page(browser: Browser, site: FrontServer, capsys: pytest.CaptureFixture[str]) -> Iterator[Page]:
    opened = Page(browser, site, capsys)
    yield opened
    events = opened.events()
    # Names render as text: no alert(), and React/the page logged no error (a broken <img> would).
    assert events == {"dialogs": [], "consoleErrors": [], "pageErrors": []}


def new_job(server: StashTestServer, after: int) -> dict[str, Any]:
    """The one job queued since job id ``after``."""
    jobs = wait_until(lambda: [job for job_id, job in server.state.snapshot()["jobs"].items()
                               if job_id > after])
    assert len(jobs) == 1, jobs
    return jobs[0]


def last_job_id(server: StashTestServer) -> int:
    return max(server.state.jobs, default=0)


# ---- the toolbar button --------------------------------------------------------------------------


def test_the_button_queues_tag_one_scene_with_this_scenes_id(page: Page, library: Library) -> None:
    scene = library.scenes["view"]
    page.open(scene)
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    job = new_job(library.server, before)
    assert (job["plugin_id"], job["task_name"], job["args_map"]) == \
        ("ai_tagger", "Tag one scene", {"mode": "scene", "scene_id": str(scene)})
    page.wait_text(".ai-tagger-button", "AI tag: queued")


def test_requests_go_to_graphql_under_the_base_path_with_the_session_cookie(
        page: Page, library: Library, site: FrontServer) -> None:
    page.open(library.scenes["view"])
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    new_job(library.server, before)
    assert ("POST", f"{BASE}graphql") in site.requests
    # The test Stash answers 401 without the session cookie: the job exists, so it was sent.
    sent = [headers for (name, _, _), headers in zip(library.server.requests, library.server.request_headers)
            if name == "RunPluginTask"]
    assert f"session={SESSION}" in sent[-1].get("cookie", "")


def test_the_button_shows_the_jobs_progress_then_a_toast_with_the_result(page: Page,
                                                                         library: Library) -> None:
    page.open(library.scenes["view"])
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    job = new_job(library.server, before)
    library.server.state.set_job(job["id"], status="RUNNING", progress=0.42)
    page.wait_text(".ai-tagger-button", "AI tag: 42%")
    library.server.state.set_job(job["id"], status="FINISHED", progress=1.0)
    page.wait(".ai-tagger-toast-success")
    assert page.text(".ai-tagger-toast-success .toast-body") == \
        "Tagging finished: 1 tag, 3 markers, 1 performer, a studio."
    assert page.text(".ai-tagger-button") == "AI tag"  # ready for the next run
    page.screenshot("toast.png")


def test_a_failed_job_shows_its_error_in_a_toast(page: Page, library: Library) -> None:
    page.open(library.scenes["view"])
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    job = new_job(library.server, before)
    error = "scene 1: the file /media/x.mp4 is unreadable"
    library.server.state.set_job(job["id"], status="FAILED", error=error)
    page.wait(".ai-tagger-toast-error")
    assert page.text(".ai-tagger-toast-error .toast-body") == error
    assert page.text(".ai-tagger-button") == "AI tag"


def test_when_the_job_ends_the_open_tab_shows_the_new_results(page: Page, library: Library) -> None:
    scene = library.scenes["refresh"]
    page.open_tab(scene)
    page.wait(".ai-tagger-suggestion")
    # Meanwhile the scene's results change (here: its suggestion is rejected elsewhere).
    (suggestion,) = library.review(action="list", scene_id=str(scene))["suggestions"]
    library.review(action="reject", id=suggestion["id"])
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    job = new_job(library.server, before)
    library.server.state.set_job(job["id"], status="FINISHED", progress=1.0)
    page.wait(".ai-tagger-suggestion", "detached")
    assert page.count(".ai-tagger-tag") == 1


# ---- moving between pages (Stash's router, no page load) -----------------------------------------


def test_moving_to_another_scene_shows_that_scenes_button_and_tab(page: Page, library: Library) -> None:
    first, second = library.scenes["view"], library.scenes["refresh"]
    page.open_tab(first)
    page.wait(".ai-tagger-studio")  # "view" has the studio the tagger set; "refresh" has the user's
    page.navigate(f"/scenes/{second}")
    page.wait_text(".scene-header", "refresh")
    page.wait(f".scene-toolbar-group .ai-tagger-button[data-scene-id='{second}']")
    page.wait(f".ai-tagger-pane .ai-tagger-panel[data-scene-id='{second}'] .ai-tagger-section")
    assert page.count(".ai-tagger-button") == 1 and page.count(".ai-tagger-panel") == 1
    assert page.count(".ai-tagger-studio") == 0
    before = last_job_id(library.server)
    page.click(".ai-tagger-button")
    job = new_job(library.server, before)
    assert job["args_map"] == {"mode": "scene", "scene_id": str(second)}


@pytest.mark.parametrize("query", ["", "noevents=1"], ids=["stash-location-event", "stash-without-events"])
def test_a_scene_reached_from_another_page_gets_its_button_and_tab(page: Page, library: Library,
                                                                   query: str) -> None:
    """On a page it adds nothing to, the plugin watches nothing: Stash's stash:location event (or,
    in a Stash without PluginApi.Event, a look at the address) tells it a scene page came."""
    scene = library.scenes["accept"]
    page.open_other(query)
    page.navigate(f"/scenes/{scene}")
    page.wait(f".scene-toolbar-group .ai-tagger-button[data-scene-id='{scene}']")
    page.click(".ai-tagger-nav .nav-link")
    page.wait(f".ai-tagger-pane .ai-tagger-panel[data-scene-id='{scene}'] .ai-tagger-section")
    page.navigate("/performers")
    page.wait(".ai-tagger-button", "detached")
    page.navigate(f"/scenes/{library.scenes['view']}")
    page.wait(f".scene-toolbar-group .ai-tagger-button[data-scene-id='{library.scenes['view']}']")


# ---- the AI tab ----------------------------------------------------------------------------------


def percent(score: float) -> str:
    """A score as the page shows it (Math.round, not Python's round half to even)."""
    return f"{math.floor(score * 100 + 0.5)}%"


def clock(seconds: float) -> str:
    """m:ss, rounded as the page's Math.round does."""
    whole = math.floor(seconds + 0.5)
    return f"{whole // 60}:{whole % 60:02d}"


def test_the_tab_shows_applied_tags_markers_performers_and_studio_with_score_and_model(
        page: Page, library: Library) -> None:
    scene = library.scenes["view"]
    results = library.review(action="scene", scene_id=str(scene))
    page.open_tab(scene)
    (tag,) = results["tags"]
    assert page.texts(".ai-tagger-tag .ai-tagger-name") == [XSS] == [tag["name"]]
    assert page.texts(".ai-tagger-tag .ai-tagger-score") == [percent(tag["score"])]
    assert page.texts(".ai-tagger-tag .ai-tagger-model") == [tag["model"]]
    assert tag["model"].startswith("nudenet")
    markers = results["markers"]
    assert [m["title"] for m in markers] == ["Shot 1", XSS, "Shot 2"]
    assert page.texts(".ai-tagger-marker .ai-tagger-seek") == \
        [f"{clock(m['seconds'])}–{clock(m['end_seconds'])}" for m in markers]
    assert page.texts(".ai-tagger-marker .ai-tagger-detail") == ["Shot 1", XSS, "Shot 2"]
    scores = [percent(marker["score"]) for marker in results["markers"]]
    assert page.texts(".ai-tagger-marker .ai-tagger-score") == scores
    (performer,) = results["performers"]
    assert page.texts(".ai-tagger-performer .ai-tagger-name") == ["Anna"]
    assert page.texts(".ai-tagger-performer .ai-tagger-score") == [percent(performer["score"])]
    assert page.texts(".ai-tagger-performer .ai-tagger-model") == [performer["model"]]
    page.wait_text(".ai-tagger-studio .ai-tagger-name", "Brand X")  # the name is looked up in Stash
    assert page.texts(".ai-tagger-studio .ai-tagger-model") == [results["studio"]["model"]]
    assert page.texts(".ai-tagger-studio .ai-tagger-evidence-text li") == results["studio"]["evidence"]
    assert page.count(".ai-tagger-suggestion") == 0


def test_evidence_frames_show_as_thumbnails(page: Page, library: Library) -> None:
    scene = library.scenes["view"]
    (tag,) = library.review(action="scene", scene_id=str(scene))["tags"]
    page.open_tab(scene)
    page.click(".ai-tagger-tag .ai-tagger-show-frames")
    page.wait(".ai-tagger-tag .ai-tagger-frame img")
    sources = page.attrs(".ai-tagger-tag .ai-tagger-frame img", "src")
    assert len(sources) == len(tag["evidence"][:8]) > 0
    assert all(src and src.startswith("data:image/jpeg;base64,") for src in sources)
    assert page.eval("[...document.querySelectorAll('.ai-tagger-frame img')].every(i => i.naturalWidth > 0)")
    assert page.texts(".ai-tagger-tag .ai-tagger-frame figcaption") == [clock(t) for t in tag["evidence"][:8]]
    page.screenshot("scene-tab.png", ".scene-tabs")


def test_clicking_a_marker_seeks_the_player(page: Page, library: Library) -> None:
    page.open_tab(library.scenes["view"])
    page.click(".ai-tagger-marker:has-text('Shot 2') .ai-tagger-seek")
    assert page.eval("document.querySelector('video').currentTime") == 6.0


def test_accepting_a_suggestion_sets_the_studio_and_reloads_the_tab(page: Page, library: Library) -> None:
    scene = library.scenes["accept"]
    page.open_tab(scene)
    assert page.texts(".ai-tagger-suggestion .ai-tagger-name") == ["Brand X"]
    assert page.text(".ai-tagger-suggestion .ai-tagger-evidence-text").startswith("'BRANDX.COM' on screen")
    page.screenshot("suggestions.png", ".scene-tabs")
    page.eval("window.notReloaded = true")
    page.click(".ai-tagger-suggestion .ai-tagger-accept")
    page.wait(".ai-tagger-suggestion", "detached")
    assert library.server.state.scenes[scene]["studio_id"] == library.studios["Brand X"]
    page.wait_text(".ai-tagger-studio .ai-tagger-name", "Brand X")
    assert page.text(".ai-tagger-studio .badge-success") == "confirmed"
    assert page.eval("window.notReloaded") is True


def test_rejecting_a_suggestion_keeps_the_studio_and_drops_it_from_the_tab(page: Page,
                                                                           library: Library) -> None:
    scene = library.scenes["reject"]
    page.open_tab(scene)
    (suggestion,) = library.review(action="list", scene_id=str(scene))["suggestions"]
    page.eval("window.notReloaded = true")
    page.click(".ai-tagger-suggestion .ai-tagger-reject")
    page.wait(".ai-tagger-suggestion", "detached")
    rejected = library.review(action="list", scene_id=str(scene), status="rejected")["suggestions"]
    assert [item["id"] for item in rejected] == [suggestion["id"]]
    assert library.server.state.scenes[scene]["studio_id"] == library.studios["Other Studio"]
    assert page.count(".ai-tagger-studio") == 0
    assert page.eval("window.notReloaded") is True


def test_undo_queues_the_undo_task_for_this_scene_after_a_second_click(page: Page, library: Library) -> None:
    scene = library.scenes["view"]
    page.open_tab(scene)
    before = last_job_id(library.server)
    page.click(".ai-tagger-undo")
    page.wait_text(".ai-tagger-undo", "Click again to undo")
    assert last_job_id(library.server) == before
    page.click(".ai-tagger-undo")
    job = new_job(library.server, before)
    assert (job["task_name"], job["args_map"]) == ("Undo", {"mode": "undo", "scene_id": str(scene)})
    library.server.state.set_job(job["id"], status="FINISHED", progress=1.0)
    page.wait(".ai-tagger-toast-success")
    assert page.text(".ai-tagger-toast-success .toast-body").startswith("Undo finished")


def test_names_render_as_text_never_as_html(page: Page, library: Library) -> None:
    page.open_tab(library.scenes["view"])
    assert page.text(".ai-tagger-tag .ai-tagger-name") == XSS
    assert page.count("img[src='x']") == 0
    assert page.count(".ai-tagger-panel img") == 0  # no frames were asked for: no image at all
    assert XSS in page.texts(".ai-tagger-marker .ai-tagger-detail")
    assert page.events()["dialogs"] == []
    # The page fixture then checks that no dialog opened and nothing failed to load or threw.


def test_without_the_patchable_tabs_the_panel_goes_under_the_scene_details(page: Page,
                                                                            library: Library) -> None:
    page.open(library.scenes["view"], "plain=1")
    page.wait(".ai-tagger-fallback .ai-tagger-tag")
    assert page.count(".ai-tagger-nav") == 0
    assert page.texts(".ai-tagger-fallback .ai-tagger-tag .ai-tagger-name") == [XSS]
    page.click(".ai-tagger-fallback .ai-tagger-marker:has-text('Shot 2') .ai-tagger-seek")
    assert page.eval("document.querySelector('video').currentTime") == 6.0
    page.screenshot("fallback.png", ".scene-tabs")


# ---- the scene list's operation ------------------------------------------------------------------


def card(scene_id: int) -> str:
    return f".scene-card:has(a[href='{BASE}scenes/{scene_id}'])"


def page_order(page: Page) -> list[str]:
    """Scene ids in the order the list shows them (Stash's sort, not ids)."""
    return [str(href).rsplit("/", 1)[1] for href in page.attrs(".scene-card a", "href")]


def test_the_list_operation_queues_tag_selected_scenes_for_the_selected_scenes(page: Page,
                                                                               library: Library) -> None:
    page.open_list()
    chosen = [library.scenes["reject"], library.scenes["accept"]]
    for scene_id in chosen:
        page.click(f"{card(scene_id)} .card-check")
    page.click(".list-operations-toggle")
    before = last_job_id(library.server)
    page.click(".ai-tagger-list-operation")
    job = new_job(library.server, before)
    in_page_order = [i for i in page_order(page) if int(i) in chosen]
    assert (job["task_name"], job["args_map"]) == \
        ("Tag selected scenes", {"mode": "scene", "scene_ids": ",".join(in_page_order)})
    page.wait_text(".ai-tagger-toast-success .toast-body", "AI tagging of 2 scenes queued.")


def test_without_a_selection_the_list_operation_tags_the_scenes_on_the_page(page: Page,
                                                                             library: Library) -> None:
    page.open_list()
    page.click(".list-operations-toggle")
    assert page.text(".ai-tagger-list-operation") == "AI tag scenes on this page"
    before = last_job_id(library.server)
    page.click(".ai-tagger-list-operation")
    job = new_job(library.server, before)
    shown = page_order(page)
    assert sorted(shown) == sorted(str(i) for i in library.scenes.values())
    assert job["args_map"]["scene_ids"] == ",".join(shown)
    library.server.state.set_job(job["id"], status="FINISHED", progress=1.0)
    page.wait_text(".ai-tagger-toasts", "AI tagging of 4 scenes finished.")


def test_a_failed_list_job_shows_its_error(page: Page, library: Library) -> None:
    page.open_list()
    page.click(f"{card(library.scenes['view'])} .card-check")
    page.click(".list-operations-toggle")
    assert page.text(".ai-tagger-list-operation") == "AI tag selected scenes"
    before = last_job_id(library.server)
    page.click(".ai-tagger-list-operation")
    job = new_job(library.server, before)
    library.server.state.set_job(job["id"], status="FAILED", error="Stash is not reachable")
    page.wait(".ai-tagger-toast-error")
    assert page.text(".ai-tagger-toast-error .toast-body") == "Stash is not reachable"


def test_without_the_patchable_operations_a_toolbar_button_tags_the_selection(page: Page,
                                                                              library: Library) -> None:
    page.open_list("plain=1")
    page.wait(".filtered-list-toolbar .ai-tagger-list-button")
    page.click(f"{card(library.scenes['refresh'])} .card-check")
    before = last_job_id(library.server)
    page.click(".ai-tagger-list-button")
    job = new_job(library.server, before)
    assert job["args_map"] == {"mode": "scene", "scene_ids": str(library.scenes["refresh"])}
    page.wait_text(".ai-tagger-list-button", "AI tag: queued")
    library.server.state.set_job(job["id"], status="FINISHED", progress=1.0)
    page.wait_text(".ai-tagger-toasts", "AI tagging of 1 scene finished.")
    assert page.text(".ai-tagger-list-button") == "AI tag"
    page.screenshot("scene-list.png")


def test_with_the_patchable_operations_there_is_no_extra_toolbar_button(page: Page, library: Library) -> None:
    page.open_list()
    page.click(".list-operations-toggle")
    page.wait(".ai-tagger-list-operation")
    assert page.count(".ai-tagger-list-button") == 0
    page.screenshot("scene-list-menu.png")


# ---- the plugin's UI files -----------------------------------------------------------------------


def test_the_pages_load_the_manifests_ui_files_in_order_as_stash_serves_them(page: Page,
                                                                             library: Library) -> None:
    listed = MANIFEST["ui"]["javascript"]
    assert sorted(listed) == sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "ui").glob("*.js"))
    assert (listed[0], listed[-1]) == ("ui/api.js", "ui/main.js")  # the namespace first, the wiring last
    for html in ("scene.html", "scenes.html"):
        sources = re.findall(r'<script src="([^"]+)"', (UI_DIR / html).read_text())
        assert [src for src in sources if src.startswith("plugin/")] == ["plugin/ai_tagger/javascript"], html
    page.open(library.scenes["view"])
    served = page.eval("fetch('plugin/ai_tagger/javascript').then((answer) => answer.text())")
    assert served == stash_serves(listed).decode()


def test_the_plugin_zip_ships_every_file_the_manifest_lists(plugin_dir: Path) -> None:
    scripts = [arg.replace("{pluginDir}/", "") for arg in MANIFEST["exec"] if "{pluginDir}" in arg]
    for name in scripts + MANIFEST["ui"]["javascript"] + MANIFEST["ui"]["css"]:
        assert (plugin_dir / name).is_file(), f"{name} is not in the plugin zip"
        assert (plugin_dir / name).read_bytes() == (ROOT / name).read_bytes(), name
