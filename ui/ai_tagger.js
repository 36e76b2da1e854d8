// stash-ai-tagger's scene page UI (plain JS, no build step; runs inside Stash's page).
//
// - An "AI tag" button in the scene toolbar (.scene-toolbar-group, added from the DOM): queues the
//   task "Tag one scene" for this scene, shows the job's progress in the button, and a toast with
//   the result or the error when the job ends.
// - An "AI" tab (PluginApi.patch.instead on "ScenePage.Tabs" / "ScenePage.TabContent"): what the
//   tagger applied to the scene (tags, markers, performers, studio, each with score and model), the
//   frames behind each finding, the suggestions waiting for review (Accept / Reject), and "Undo for
//   this scene". A Stash without those components gets the same panel under the scene details.
// - "AI tag selected scenes" in the scene list's operations menu (PluginApi.patch.before on
//   "SceneListOperations", Stash v0.30+): queues the task "Tag selected scenes" for the selected
//   scenes, or for the scenes on the current page when nothing is selected. The component's props
//   carry no ids, so they are read from the page (the checked cards' and rows' scene links). A
//   Stash without that component gets the same action as a button in the list's toolbar.
//
// Everything goes through Stash's GraphQL endpoint (<base href>graphql, so a base path works), with
// the browser's session cookie: runPluginTask (sent directly: StashService.mutateRunPluginTask drops
// args_map), findJob, and runPluginOperation with the plugin's review API (tagger/review_api.py).
// Names from the library are only ever rendered as text (React children, textContent).
(function () {
  "use strict";

  const PLUGIN_ID = "ai_tagger";
  const TASK_TAG_SCENE = "Tag one scene";
  const TASK_TAG_SCENES = "Tag selected scenes";
  const TASK_UNDO = "Undo";
  const LIST_BUTTON_CLASS = "ai-tagger-list-button";
  const BUTTON_CLASS = "ai-tagger-button";
  const TAB_KEY = "ai-tagger-panel";
  const FALLBACK_CLASS = "ai-tagger-fallback";
  /** A window event asking the scene's AI panel to reload: detail {sceneId, results?}. */
  const REFRESH_EVENT = "ai-tagger:refresh";
  const POLL_MS = 1000;
  /** findJob failures in a row before a job is given up on (Stash restarting, network gone). */
  const MAX_POLL_FAILURES = 10;
  const ENDED = ["FINISHED", "FAILED", "CANCELLED"];
  /** How long the page may take to render the patched tab before the panel goes into the DOM. */
  const FALLBACK_DELAY_MS = 1000;
  const MAX_EVIDENCE_FRAMES = 8;
  const JOB_GONE = "The job left Stash's job list before it ended; see Stash's log.";

  const RUN_TASK = `mutation RunPluginTask($plugin: ID!, $task: String!, $args: Map) {
    runPluginTask(plugin_id: $plugin, task_name: $task, args_map: $args)
  }`;
  const RUN_OPERATION = `mutation RunPluginOperation($plugin: ID!, $args: Map) {
    runPluginOperation(plugin_id: $plugin, args: $args)
  }`;
  const FIND_JOB = `query FindJob($id: ID!) { findJob(input: { id: $id }) { id status progress error } }`;
  const FIND_STUDIO = `query FindStudio($id: ID!) { findStudio(id: $id) { id name } }`;

  // ---- Stash's API ----------------------------------------------------------------------------

  async function graphql(operationName, query, variables) {
    const response = await fetch(new URL("graphql", document.baseURI).toString(), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ operationName, query, variables }),
    });
    if (response.status === 401) throw new Error("Stash answered 401: log in again");
    let body;
    try {
      body = await response.json();
    } catch (error) {
      throw new Error("Stash answered " + response.status + " " + response.statusText);
    }
    if (body.errors && body.errors.length) {
      throw new Error(body.errors.map((e) => e.message).join("; "));
    }
    return body.data;
  }

  async function runTask(task, args) {
    const data = await graphql("RunPluginTask", RUN_TASK, { plugin: PLUGIN_ID, task, args });
    return data.runPluginTask;
  }

  async function review(args) {
    const data = await graphql("RunPluginOperation", RUN_OPERATION, {
      plugin: PLUGIN_ID,
      args: Object.assign({ mode: "review" }, args),
    });
    const output = data.runPluginOperation;
    if (output === null || output === undefined) throw new Error("the plugin answered nothing");
    return output;
  }

  async function findStudioName(id) {
    const data = await graphql("FindStudio", FIND_STUDIO, { id: String(id) });
    return data.findStudio ? data.findStudio.name : null;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Polls a job every second until it ends; ``onUpdate(job)`` after each poll. */
  async function watchJob(jobId, onUpdate) {
    let failures = 0;
    for (;;) {
      await sleep(POLL_MS);
      let job;
      try {
        job = (await graphql("FindJob", FIND_JOB, { id: String(jobId) })).findJob;
        failures = 0;
      } catch (error) {
        if (++failures >= MAX_POLL_FAILURES) throw error;
        continue;
      }
      if (!job) return { id: jobId, status: "GONE", progress: null, error: null };
      onUpdate(job);
      if (ENDED.includes(job.status)) return job;
    }
  }

  function jobLabel(prefix, job) {
    if (!job || job.status === "READY") return prefix + ": queued";
    if (job.status === "RUNNING" && typeof job.progress === "number" && job.progress >= 0) {
      return prefix + ": " + Math.round(job.progress * 100) + "%";
    }
    if (job.status === "STOPPING") return prefix + ": stopping";
    return prefix + ": running";
  }

  // ---- toasts (PluginApi.hooks.useToast needs React; these work anywhere) ----------------------

  function toastArea() {
    let area = document.querySelector(".ai-tagger-toasts");
    if (!area) {
      area = document.createElement("div");
      area.className = "ai-tagger-toasts";
      area.setAttribute("aria-live", "polite");
      document.body.appendChild(area);
    }
    return area;
  }

  function showToast(message, variant) {
    const failed = variant === "error";
    const toast = document.createElement("div");
    toast.className = "toast show ai-tagger-toast " + (failed ? "ai-tagger-toast-error" : "ai-tagger-toast-success");
    toast.setAttribute("role", failed ? "alert" : "status");
    const header = document.createElement("div");
    header.className = "toast-header";
    const title = document.createElement("strong");
    title.className = "mr-auto";
    title.textContent = failed ? "AI Tagger: failed" : "AI Tagger";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ml-2 mb-1 close";
    close.setAttribute("aria-label", "Close");
    close.textContent = "\u00d7";
    close.addEventListener("click", () => toast.remove());
    header.append(title, close);
    const body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = message;
    toast.append(header, body);
    toastArea().appendChild(toast);
    setTimeout(() => toast.remove(), failed ? 30000 : 10000);
    return toast;
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function summary(results) {
    const parts = [
      plural(results.tags.length, "tag"),
      plural(results.markers.length, "marker"),
      plural(results.performers.length, "performer"),
    ];
    if (results.studio) parts.push("a studio");
    let text = "Tagging finished: " + parts.join(", ") + ".";
    if (results.suggestions.length) text += " " + plural(results.suggestions.length, "suggestion") + " to review.";
    return text;
  }

  function refreshPanel(sceneId, results) {
    window.dispatchEvent(new CustomEvent(REFRESH_EVENT, { detail: { sceneId: String(sceneId), results } }));
    refreshStashScene();
  }

  /** Stash's own scene data (details, tags, studio) after the tagger changed the scene. */
  function refreshStashScene() {
    const service = window.PluginApi && window.PluginApi.utils && window.PluginApi.utils.StashService;
    if (!service || typeof service.getClient !== "function") return;
    try {
      const refetched = service.getClient().refetchQueries({ include: ["FindScene"] });
      if (refetched && typeof refetched.catch === "function") refetched.catch(() => {});
    } catch (error) {
      // An older Apollo client: the page shows the change on its next load.
    }
  }

  /** After a task on the scene: a toast with the result or the error, and the AI tab reloaded. */
  async function reportJob(sceneId, job, doneText) {
    if (job.status === "GONE") {
      showToast(JOB_GONE, "error");
      refreshPanel(sceneId);
      return;
    }
    if (job.status === "FAILED" || job.status === "CANCELLED") {
      const reason = job.error || (job.status === "CANCELLED" ? "the job was cancelled" : "the job failed");
      showToast(reason, "error");
      refreshPanel(sceneId);
      return;
    }
    if (doneText) {
      showToast(doneText, "success");
      refreshPanel(sceneId);
      return;
    }
    let results = null;
    try {
      results = await review({ action: "scene", scene_id: String(sceneId) });
    } catch (error) {
      // The tagging worked; only the summary is missing.
    }
    showToast(results ? summary(results) : "Tagging finished.", "success");
    refreshPanel(sceneId, results || undefined);
  }

  // ---- the toolbar button -------------------------------------------------------------------

  /** Per scene id: the label of its running tagging job, so a re-rendered toolbar keeps it. */
  const running = {};

  /** The scene id in a path or link (/scenes/12, /stash/scenes/12?t=3), or null (/scenes/markers). */
  function sceneIdIn(path) {
    const match = (path || "").match(/\/scenes\/(\d+)(?:[/?#]|$)/);
    return match ? match[1] : null;
  }

  function sceneIdFromLocation() {
    return sceneIdIn(window.location.pathname);
  }

  function showButtonState(button, sceneId) {
    const label = running[sceneId];
    button.dataset.sceneId = sceneId;
    button.textContent = label || "AI tag";
    button.disabled = Boolean(label);
    button.classList.toggle("busy", Boolean(label));
  }

  async function tagScene(sceneId) {
    const update = (label) => {
      running[sceneId] = label;
      const button = document.querySelector("." + BUTTON_CLASS);
      if (button && button.dataset.sceneId === sceneId) showButtonState(button, sceneId);
    };
    update("AI tag: queueing");
    try {
      const jobId = await runTask(TASK_TAG_SCENE, { mode: "scene", scene_id: sceneId });
      update(jobLabel("AI tag", null));
      const job = await watchJob(jobId, (current) => update(jobLabel("AI tag", current)));
      update(null);
      await reportJob(sceneId, job);
    } catch (error) {
      update(null);
      showToast("Could not tag the scene: " + (error.message || error), "error");
    }
  }

  function addButton() {
    const sceneId = sceneIdFromLocation();
    const toolbar = document.querySelector(".scene-toolbar-group");
    if (!sceneId || !toolbar) return;
    let button = toolbar.querySelector("." + BUTTON_CLASS);
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-secondary minimal " + BUTTON_CLASS;
      button.title = "Tag this scene with the AI tagger";
      button.addEventListener("click", () => {
        const id = sceneIdFromLocation();
        if (id && !running[id]) tagScene(id);
      });
      toolbar.appendChild(button);
      showButtonState(button, sceneId);
    } else if (button.dataset.sceneId !== sceneId) {
      showButtonState(button, sceneId); // Stash reused the toolbar for another scene
    }
  }

  // ---- the scene list's operation -------------------------------------------------------------

  /** True on a scene list page (/scenes, under any base path), not on one scene or the markers. */
  function onSceneList() {
    return /\/scenes\/?$/.test(window.location.pathname);
  }

  /** Scene ids in page order: of the selected (checked) cards and table rows, or of every scene
   * shown when nothing is selected. Stash's SceneListOperations props carry no ids. */
  function listedSceneIds(selectedOnly) {
    const items = document.querySelectorAll(".scene-card, .scene-list-table tbody tr, .wall-item");
    const ids = [];
    for (const item of items) {
      if (selectedOnly && !item.querySelector('input[type="checkbox"]:checked')) continue;
      for (const link of item.querySelectorAll("a[href]")) {
        const id = sceneIdIn(link.getAttribute("href"));
        if (id) {
          if (!ids.includes(id)) ids.push(id);
          break;
        }
      }
    }
    return ids;
  }

  let listRunning = false;

  async function tagListedScenes(selectedOnly) {
    if (listRunning) {
      showToast("AI tagging of a scene list is already running; wait for its toast.", "error");
      return;
    }
    const ids = listedSceneIds(selectedOnly);
    if (!ids.length) {
      showToast(selectedOnly ? "No selected scene found on this page." : "No scenes on this page.", "error");
      return;
    }
    const what = plural(ids.length, "scene");
    listRunning = true;
    /** The fallback toolbar button, when there is one, shows the job's state. */
    const show = (label) => {
      const button = document.querySelector("." + LIST_BUTTON_CLASS);
      if (button) {
        button.textContent = label || "AI tag";
        button.disabled = Boolean(label);
      }
    };
    try {
      const jobId = await runTask(TASK_TAG_SCENES, { mode: "scene", scene_ids: ids.join(",") });
      showToast("AI tagging of " + what + " queued.", "success");
      show(jobLabel("AI tag", null));
      const job = await watchJob(jobId, (current) => show(jobLabel("AI tag", current)));
      if (job.status === "FINISHED") showToast("AI tagging of " + what + " finished.", "success");
      else if (job.status === "GONE") showToast(JOB_GONE, "error");
      else showToast(job.error || "AI tagging of " + what + " " + job.status.toLowerCase() + ".", "error");
    } catch (error) {
      showToast("Could not tag the scenes: " + (error.message || error), "error");
    } finally {
      listRunning = false;
      show(null);
    }
  }

  /** The operation Stash's menu shows; its text says which scenes it covers. */
  function listOperation(hasSelection) {
    return {
      text: hasSelection ? "AI tag selected scenes" : "AI tag scenes on this page",
      onClick: () => tagListedScenes(Boolean(hasSelection)),
      className: "ai-tagger-list-operation",
    };
  }

  function patchSceneList() {
    PluginApi.patch.before("SceneListOperations", function (props) {
      const operations = (props && props.operations) || [];
      return [Object.assign({}, props, { operations: operations.concat([listOperation(props && props.hasSelection)]) })];
    });
  }

  /** Without the patchable component (Stash before v0.30): a button in the list's toolbar. */
  function addListButton() {
    if (!onSceneList()) return;
    const toolbar = document.querySelector(".filtered-list-toolbar");
    if (!toolbar || toolbar.querySelector("." + LIST_BUTTON_CLASS)) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary " + LIST_BUTTON_CLASS;
    button.title = "Tag the selected scenes (or, with none selected, this page's scenes) with the AI tagger";
    button.textContent = "AI tag";
    button.addEventListener("click", () => tagListedScenes(listedSceneIds(true).length > 0));
    toolbar.appendChild(button);
  }

  // ---- the AI panel (React) -----------------------------------------------------------------

  const PluginApi = window.PluginApi;
  const React = PluginApi && PluginApi.React;

  function formatTime(seconds) {
    const total = Math.max(0, Math.round(Number(seconds) || 0));
    const s = total % 60;
    const m = Math.floor(total / 60) % 60;
    const hours = Math.floor(total / 3600);
    const mm = hours ? String(m).padStart(2, "0") : String(m);
    return (hours ? hours + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function formatScore(score) {
    return typeof score === "number" ? Math.round(score * 100) + "%" : null;
  }

  /** The seconds behind a finding: its evidence times, or a marker's start and middle. */
  function evidenceTimes(item, isMarker) {
    const times = (item.evidence || []).filter((t) => typeof t === "number");
    if (!times.length && isMarker && typeof item.seconds === "number") {
      times.push(item.seconds);
      if (typeof item.end_seconds === "number" && item.end_seconds > item.seconds) {
        times.push(Math.round(((item.seconds + item.end_seconds) / 2) * 1000) / 1000);
      }
    }
    return times.slice(0, MAX_EVIDENCE_FRAMES);
  }

  function evidenceTexts(item) {
    return (item.evidence || []).filter((t) => typeof t === "string");
  }

  /** Seeks Stash's player: the scene page's setTimestamp (what Stash's own marker list calls) when
   * the page gives it, else the player's <video> element (not a card's preview video). */
  function seeker(setTimestamp) {
    return function (seconds) {
      if (typeof setTimestamp === "function") {
        setTimestamp(seconds);
        return;
      }
      const video = document.querySelector(".scene-player-container video") || document.querySelector("video");
      if (video) video.currentTime = seconds;
    };
  }

  function definePanel() {
    const h = React.createElement;
    const { useState, useEffect, useCallback, useRef } = React;

    /** A ref that turns false on unmount: no state updates after a slow request ends. */
    function useAlive() {
      const alive = useRef(true);
      useEffect(() => {
        alive.current = true;
        return () => {
          alive.current = false;
        };
      }, []);
      return alive;
    }

    function Meta({ item }) {
      const score = formatScore(item.score);
      return h(
        "span",
        { className: "ai-tagger-meta" },
        score && h("span", { className: "badge badge-info ai-tagger-score", title: "score" }, score),
        item.model ? h("span", { className: "ai-tagger-model text-muted", title: "model" }, item.model) : null,
        item.confirmed || item.accepted
          ? h("span", { className: "badge badge-success", title: "accepted by you: undo keeps it" }, "confirmed")
          : null
      );
    }

    function Frames({ sceneId, times, seek }) {
      const [state, setState] = useState({ status: "idle", frames: [], error: null });
      const alive = useAlive();
      if (!times.length) return null;
      const load = () => {
        setState({ status: "loading", frames: [], error: null });
        review({ action: "evidence", scene_id: String(sceneId), times }).then(
          (answer) => alive.current && setState({ status: "done", frames: answer.frames || [], error: null }),
          (error) => alive.current && setState({ status: "error", frames: [], error: String(error.message || error) })
        );
      };
      if (state.status === "idle") {
        return h(
          "button",
          { type: "button", className: "btn btn-link btn-sm ai-tagger-show-frames", onClick: load },
          "Frames (" + times.length + ")"
        );
      }
      if (state.status === "loading") return h("span", { className: "ai-tagger-loading text-muted" }, "Loading frames...");
      if (state.status === "error") return h("span", { className: "text-danger ai-tagger-error" }, state.error);
      return h(
        "div",
        { className: "ai-tagger-frames" },
        state.frames.length
          ? state.frames.map((frame) =>
              h(
                "figure",
                { key: frame.time, className: "ai-tagger-frame", onClick: () => seek(frame.time), title: "Play from here" },
                h("img", { src: frame.image, alt: "frame at " + formatTime(frame.time) }),
                h("figcaption", null, formatTime(frame.time))
              )
            )
          : h("span", { className: "text-muted" }, "No frames could be read.")
      );
    }

    function Evidence({ sceneId, item, isMarker, seek }) {
      const texts = evidenceTexts(item);
      return h(
        React.Fragment,
        null,
        texts.length
          ? h("ul", { className: "ai-tagger-evidence-text" }, texts.map((text, i) => h("li", { key: i }, text)))
          : null,
        h(Frames, { sceneId, times: evidenceTimes(item, isMarker), seek })
      );
    }

    function Row({ className, name, detail, children }) {
      return h(
        "li",
        { className: "list-group-item ai-tagger-item " + (className || "") },
        h(
          "div",
          { className: "ai-tagger-item-head" },
          h("span", { className: "ai-tagger-name" }, name),
          detail ? h("span", { className: "ai-tagger-detail text-muted" }, detail) : null
        ),
        children
      );
    }

    function Section({ title, className, items, render }) {
      if (!items.length) return null;
      return h(
        "section",
        { className: "ai-tagger-section " + className },
        h("h6", null, title),
        h("ul", { className: "list-group" }, items.map(render))
      );
    }

    function StudioRow({ sceneId, studio, seek }) {
      const [name, setName] = useState(null);
      useEffect(() => {
        let live = true;
        findStudioName(studio.id).then(
          (found) => live && setName(found),
          () => live && setName(null)
        );
        return () => {
          live = false;
        };
      }, [studio.id]);
      return h(
        Row,
        { className: "ai-tagger-studio", name: name || "Studio " + studio.id },
        h(Meta, { item: studio }),
        h(Evidence, { sceneId, item: studio, seek })
      );
    }

    function Suggestion({ sceneId, item, busy, onDecide, seek }) {
      const payload = item.payload || {};
      const evidenceItem = { evidence: payload.evidence || [] };
      return h(
        Row,
        {
          className: "ai-tagger-suggestion",
          name: item.title,
          detail: item.kind,
        },
        h(Meta, { item: { score: item.score, model: payload.model } }),
        h(Evidence, { sceneId, item: evidenceItem, seek }),
        h(
          "div",
          { className: "ai-tagger-actions" },
          h(
            "button",
            {
              type: "button",
              className: "btn btn-sm btn-success ai-tagger-accept",
              disabled: busy || item.kind === "cluster",
              title: item.kind === "cluster" ? "Name this person in the review list first" : "Apply it to the scene",
              onClick: () => onDecide(item, "accept"),
            },
            "Accept"
          ),
          h(
            "button",
            {
              type: "button",
              className: "btn btn-sm btn-outline-danger ai-tagger-reject",
              disabled: busy,
              title: "Never suggest it again for this scene",
              onClick: () => onDecide(item, "reject"),
            },
            "Reject"
          )
        )
      );
    }

    function UndoButton({ sceneId }) {
      const [state, setLiveState] = useState({ label: null, confirming: false });
      const alive = useAlive();
      const setState = (next) => alive.current && setLiveState(next);
      const timer = useRef(null);
      useEffect(() => () => clearTimeout(timer.current), []);
      const start = async () => {
        setState({ label: "Undo: queueing", confirming: false });
        try {
          const jobId = await runTask(TASK_UNDO, { mode: "undo", scene_id: String(sceneId) });
          setState({ label: jobLabel("Undo", null), confirming: false });
          const job = await watchJob(jobId, (current) => setState({ label: jobLabel("Undo", current), confirming: false }));
          setState({ label: null, confirming: false });
          await reportJob(sceneId, job, "Undo finished: what the tagger added to this scene is removed.");
        } catch (error) {
          setState({ label: null, confirming: false });
          showToast("Could not undo: " + (error.message || error), "error");
        }
      };
      const onClick = () => {
        if (state.label) return;
        if (!state.confirming) {
          setState({ label: null, confirming: true });
          clearTimeout(timer.current);
          timer.current = setTimeout(() => setState((s) => (s.label ? s : { label: null, confirming: false })), 5000);
          return;
        }
        clearTimeout(timer.current);
        start();
      };
      return h(
        "button",
        {
          type: "button",
          className: "btn btn-sm ai-tagger-undo " + (state.confirming ? "btn-danger" : "btn-outline-warning"),
          disabled: Boolean(state.label),
          title: "Remove what the tagger added to this scene; your own edits and accepted suggestions stay",
          onClick,
        },
        state.label || (state.confirming ? "Click again to undo" : "Undo for this scene")
      );
    }

    function isEmpty(data) {
      return !data.tags.length && !data.markers.length && !data.performers.length && !data.studio && !data.suggestions.length;
    }

    function AiPanel({ sceneId, setTimestamp }) {
      const [state, setState] = useState({ loading: true, data: null, error: null });
      const [busy, setLiveBusy] = useState(null);
      const alive = useAlive();
      const setBusy = (value) => alive.current && setLiveBusy(value);
      const request = useRef(0);
      const seek = seeker(setTimestamp);

      const load = useCallback(
        (given) => {
          const mine = ++request.current;
          if (given) {
            setState({ loading: false, data: given, error: null });
            return Promise.resolve();
          }
          setState((s) => ({ loading: true, data: s.data, error: null }));
          return review({ action: "scene", scene_id: String(sceneId) }).then(
            (data) => alive.current && mine === request.current && setState({ loading: false, data, error: null }),
            (error) =>
              alive.current &&
              mine === request.current &&
              setState({ loading: false, data: null, error: String(error.message || error) })
          );
        },
        [sceneId]
      );

      useEffect(() => {
        load();
        const onRefresh = (event) => {
          if (event.detail && String(event.detail.sceneId) === String(sceneId)) load(event.detail.results);
        };
        window.addEventListener(REFRESH_EVENT, onRefresh);
        return () => window.removeEventListener(REFRESH_EVENT, onRefresh);
      }, [sceneId, load]);

      const decide = async (item, action) => {
        setBusy(item.id);
        try {
          await review({ action, id: item.id });
          showToast((action === "accept" ? "Accepted: " : "Rejected: ") + item.title, "success");
        } catch (error) {
          showToast("Could not " + action + " " + item.title + ": " + (error.message || error), "error");
        }
        setBusy(null);
        load();
        if (action === "accept") refreshStashScene();
      };

      const { data, error, loading } = state;
      const header = h(
        "div",
        { className: "ai-tagger-header" },
        h("h5", null, "AI Tagger"),
        h(
          "div",
          { className: "ai-tagger-header-actions" },
          h(
            "button",
            { type: "button", className: "btn btn-sm btn-secondary ai-tagger-refresh", disabled: loading, onClick: () => load() },
            loading ? "Loading..." : "Refresh"
          ),
          h(UndoButton, { sceneId })
        )
      );
      let body;
      if (error) {
        body = h("div", { className: "alert alert-danger ai-tagger-error" }, "Could not load the AI tagger's results: " + error);
      } else if (!data) {
        body = h("div", { className: "ai-tagger-loading text-muted" }, "Loading...");
      } else if (isEmpty(data)) {
        body = h(
          "div",
          { className: "ai-tagger-empty text-muted" },
          "The AI tagger has not added anything to this scene. Use the AI tag button to analyse it."
        );
      } else {
        const props = { sceneId, seek };
        body = h(
          React.Fragment,
          null,
          h(Section, {
            title: "Suggestions to review",
            className: "ai-tagger-suggestions",
            items: data.suggestions,
            render: (item) => h(Suggestion, Object.assign({ key: item.id, item, busy: busy !== null, onDecide: decide }, props)),
          }),
          h(Section, {
            title: "Tags",
            className: "ai-tagger-tags",
            items: data.tags,
            render: (item) =>
              h(Row, { key: item.id, className: "ai-tagger-tag", name: item.name }, h(Meta, { item }), h(Evidence, Object.assign({ item }, props))),
          }),
          h(Section, {
            title: "Markers",
            className: "ai-tagger-markers",
            items: data.markers,
            render: (item) =>
              h(
                Row,
                {
                  key: item.id,
                  className: "ai-tagger-marker",
                  name: h(
                    "button",
                    {
                      type: "button",
                      className: "btn btn-link btn-sm ai-tagger-seek",
                      title: "Play from " + formatTime(item.seconds),
                      onClick: () => seek(item.seconds),
                    },
                    formatTime(item.seconds) + (typeof item.end_seconds === "number" ? "\u2013" + formatTime(item.end_seconds) : "")
                  ),
                  detail: item.title + (item.tag && !String(item.title).includes(item.tag) ? " (" + item.tag + ")" : ""),
                },
                h(Meta, { item }),
                h(Evidence, Object.assign({ item, isMarker: true }, props))
              ),
          }),
          h(Section, {
            title: "Performers",
            className: "ai-tagger-performers",
            items: data.performers,
            render: (item) =>
              h(Row, { key: item.id, className: "ai-tagger-performer", name: item.name }, h(Meta, { item }), h(Evidence, Object.assign({ item }, props))),
          }),
          h(Section, {
            title: "Studio",
            className: "ai-tagger-studios",
            items: data.studio ? [data.studio] : [],
            render: (item) => h(StudioRow, Object.assign({ key: item.id, studio: item }, props)),
          })
        );
      }
      return h("div", { className: "ai-tagger-panel", "data-scene-id": String(sceneId) }, header, body);
    }

    return AiPanel;
  }

  // ---- wiring into the scene page -----------------------------------------------------------

  const Bootstrap = PluginApi && PluginApi.libraries && PluginApi.libraries.Bootstrap;
  const AiPanel = React ? definePanel() : null;

  function patchScenePage() {
    const { Nav, Tab } = Bootstrap;
    const h = React.createElement;
    PluginApi.patch.instead("ScenePage.Tabs", function (props, context, Original) {
      return h(
        React.Fragment,
        null,
        Original(props, context),
        h(Nav.Item, { className: "ai-tagger-nav" }, h(Nav.Link, { eventKey: TAB_KEY }, "AI"))
      );
    });
    PluginApi.patch.instead("ScenePage.TabContent", function (props, context, Original) {
      const original = Original(props, context);
      if (!props || !props.scene || !props.scene.id) return original;
      return h(
        React.Fragment,
        null,
        original,
        h(
          Tab.Pane,
          { eventKey: TAB_KEY, mountOnEnter: true, className: "ai-tagger-pane" },
          h(AiPanel, { key: props.scene.id, sceneId: props.scene.id, setTimestamp: props.setTimestamp })
        )
      );
    });
  }

  // Fallback: a Stash whose scene page has no patchable tabs gets the panel under the details.
  let fallback = null; // {element, sceneId, root}
  let fallbackTimer = null;

  function unmountFallback() {
    if (!fallback) return;
    if (fallback.root) fallback.root.unmount();
    else PluginApi.ReactDOM.unmountComponentAtNode(fallback.element);
    fallback.element.remove();
    fallback = null;
  }

  function mountFallback(sceneId) {
    const anchor = document.querySelector(".scene-tabs") || (document.querySelector(".scene-toolbar") || {}).parentElement;
    if (!anchor) return;
    unmountFallback();
    const element = document.createElement("div");
    element.className = FALLBACK_CLASS;
    anchor.appendChild(element);
    const panel = React.createElement(AiPanel, { key: sceneId, sceneId });
    const ReactDOM = PluginApi.ReactDOM;
    // Stash's ReactDOM is React 17's (render); createRoot where a newer one has it.
    const root = typeof ReactDOM.createRoot === "function" ? ReactDOM.createRoot(element) : null;
    if (root) root.render(panel);
    else ReactDOM.render(panel, element);
    fallback = { element, sceneId, root };
  }

  function checkFallback() {
    const sceneId = sceneIdFromLocation();
    const onScenePage = sceneId && document.querySelector(".scene-toolbar-group");
    if (!onScenePage || document.querySelector(".ai-tagger-nav")) {
      clearTimeout(fallbackTimer);
      fallbackTimer = null;
      unmountFallback();
      return;
    }
    if (fallback && fallback.sceneId === sceneId && document.body.contains(fallback.element)) return;
    if (fallbackTimer) return;
    fallbackTimer = setTimeout(() => {
      fallbackTimer = null;
      const now = sceneIdFromLocation();
      if (now && document.querySelector(".scene-toolbar-group") && !document.querySelector(".ai-tagger-nav")) {
        mountFallback(now);
      }
    }, FALLBACK_DELAY_MS);
  }

  if (PluginApi && PluginApi.patch) patchSceneList();

  /** Stash registers a patchable component in PluginApi.components when its (lazily loaded)
   * module loads, so on a rendered scene list this tells whether the menu item is there. */
  function listPatchable() {
    return Boolean(PluginApi && PluginApi.patch && PluginApi.components && PluginApi.components.SceneListOperations);
  }

  const canRender = Boolean(AiPanel && PluginApi.ReactDOM);
  if (AiPanel && PluginApi.patch && Bootstrap && Bootstrap.Nav && Bootstrap.Tab) {
    patchScenePage();
  } else if (!canRender) {
    console.warn("AI Tagger: this Stash has no PluginApi with React; only the AI tag button is available");
  }

  function onPageChange() {
    addButton();
    if (!listPatchable()) addListButton();
    if (canRender) checkFallback();
  }

  const observer = new MutationObserver(onPageChange);
  observer.observe(document.body, { childList: true, subtree: true });
  onPageChange();
})();
