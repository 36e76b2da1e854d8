// stash-ai-tagger UI: the AI panel (React, through PluginApi.React): what the tagger applied to the
// scene (tags, markers, performers, studio, each with score and model), the frames behind each
// finding, the suggestions waiting for review (Accept / Reject), and "Undo for this scene".
// Adds AiTagger.panel = {AiPanel}, or null in a Stash whose PluginApi has no React.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const PluginApi = window.PluginApi;
  const React = PluginApi && PluginApi.React;
  AiTagger.panel = null;
  if (!React) return;

  const { review, findStudioName, followTask } = AiTagger.api;
  const { showToast, reportSceneJob, refreshStashScene } = AiTagger.toasts;
  const h = React.createElement;
  const { useState, useEffect, useCallback, useRef } = React;

  const MAX_EVIDENCE_FRAMES = 8;
  /** How long "Click again to undo" waits for the second click. */
  const UNDO_CONFIRM_MS = 5000;
  const UNDO_DONE = "Undo finished: what the tagger added to this scene is removed.";

  // ---- plain helpers ------------------------------------------------------------------------

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

  function isEmpty(data) {
    return !data.tags.length && !data.markers.length && !data.performers.length && !data.studio && !data.suggestions.length;
  }

  function markerRange(marker) {
    const end = typeof marker.end_seconds === "number" ? "\u2013" + formatTime(marker.end_seconds) : "";
    return formatTime(marker.seconds) + end;
  }

  /** A marker's title, with its tag when the title does not already say it. */
  function markerDetail(marker) {
    const tagSaid = !marker.tag || String(marker.title).includes(marker.tag);
    return marker.title + (tagSaid ? "" : " (" + marker.tag + ")");
  }

  // ---- hooks --------------------------------------------------------------------------------

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

  /** useState whose setter does nothing once the component is gone. */
  function useLiveState(initial) {
    const [value, setValue] = useState(initial);
    const alive = useAlive();
    const setLive = useCallback((next) => alive.current && setValue(next), [alive]);
    return [value, setLive];
  }

  /** ``load(results?)`` on the window's refresh event for this scene (a job on it ended). */
  function useRefreshEvent(sceneId, load) {
    useEffect(() => {
      const onRefresh = (event) => {
        if (event.detail && String(event.detail.sceneId) === String(sceneId)) load(event.detail.results);
      };
      window.addEventListener(AiTagger.REFRESH_EVENT, onRefresh);
      return () => window.removeEventListener(AiTagger.REFRESH_EVENT, onRefresh);
    }, [sceneId, load]);
  }

  /** The review API's results for the scene: loaded on mount, on ``load()``, and on the refresh
   * event (which may carry the results). Only the latest request's answer is shown. */
  function useSceneResults(sceneId) {
    const [state, setState] = useLiveState({ loading: true, data: null, error: null });
    const request = useRef(0);

    const load = useCallback(
      (given) => {
        const mine = ++request.current;
        if (given) {
          setState({ loading: false, data: given, error: null });
          return Promise.resolve();
        }
        setState((s) => ({ loading: true, data: s.data, error: null }));
        const latest = () => mine === request.current;
        return review({ action: "scene", scene_id: String(sceneId) }).then(
          (data) => latest() && setState({ loading: false, data, error: null }),
          (error) => latest() && setState({ loading: false, data: null, error: String(error.message || error) })
        );
      },
      [sceneId, setState]
    );

    useEffect(() => {
      load();
    }, [load]);
    useRefreshEvent(sceneId, load);
    return [state, load];
  }

  /** Accept or reject a suggestion: ``busy`` is its id meanwhile; the results reload after. */
  function useDecide(reload) {
    const [busy, setBusy] = useLiveState(null);
    const decide = async (item, action) => {
      setBusy(item.id);
      try {
        await review({ action, id: item.id });
        showToast((action === "accept" ? "Accepted: " : "Rejected: ") + item.title, "success");
      } catch (error) {
        showToast("Could not " + action + " " + item.title + ": " + (error.message || error), "error");
      }
      setBusy(null);
      reload();
      if (action === "accept") refreshStashScene();
    };
    return [busy, decide];
  }

  // ---- a finding's parts --------------------------------------------------------------------

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

  function FrameList({ frames, seek }) {
    if (!frames.length) return h("span", { className: "text-muted" }, "No frames could be read.");
    return frames.map((frame) =>
      h(
        "figure",
        { key: frame.time, className: "ai-tagger-frame", onClick: () => seek(frame.time), title: "Play from here" },
        h("img", { src: frame.image, alt: "frame at " + formatTime(frame.time) }),
        h("figcaption", null, formatTime(frame.time))
      )
    );
  }

  /** The evidence frames, read from the video only when asked for (they cost a decode each). */
  function Frames({ sceneId, times, seek }) {
    const [state, setState] = useLiveState({ status: "idle", frames: [], error: null });
    if (!times.length) return null;
    const load = () => {
      setState({ status: "loading", frames: [], error: null });
      review({ action: "evidence", scene_id: String(sceneId), times }).then(
        (answer) => setState({ status: "done", frames: answer.frames || [], error: null }),
        (error) => setState({ status: "error", frames: [], error: String(error.message || error) })
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
    return h("div", { className: "ai-tagger-frames" }, h(FrameList, { frames: state.frames, seek }));
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

  // ---- one row per kind of finding ----------------------------------------------------------

  /** A tag or a performer: its name, score, model and evidence. */
  function NamedRow({ className, item, sceneId, seek }) {
    return h(Row, { className, name: item.name }, h(Meta, { item }), h(Evidence, { sceneId, item, seek }));
  }

  function MarkerRow({ item, sceneId, seek }) {
    const seekButton = h(
      "button",
      {
        type: "button",
        className: "btn btn-link btn-sm ai-tagger-seek",
        title: "Play from " + formatTime(item.seconds),
        onClick: () => seek(item.seconds),
      },
      markerRange(item)
    );
    return h(
      Row,
      { className: "ai-tagger-marker", name: seekButton, detail: markerDetail(item) },
      h(Meta, { item }),
      h(Evidence, { sceneId, item, isMarker: true, seek })
    );
  }

  /** The studio's name is looked up in Stash: the review API knows only its id. */
  function StudioRow({ item, sceneId, seek }) {
    const [name, setName] = useState(null);
    useEffect(() => {
      let live = true;
      findStudioName(item.id).then(
        (found) => live && setName(found),
        () => live && setName(null)
      );
      return () => {
        live = false;
      };
    }, [item.id]);
    return h(
      Row,
      { className: "ai-tagger-studio", name: name || "Studio " + item.id },
      h(Meta, { item }),
      h(Evidence, { sceneId, item, seek })
    );
  }

  function DecideButtons({ item, busy, onDecide }) {
    const cluster = item.kind === "cluster";
    return h(
      "div",
      { className: "ai-tagger-actions" },
      h(
        "button",
        {
          type: "button",
          className: "btn btn-sm btn-success ai-tagger-accept",
          disabled: busy || cluster,
          title: cluster ? "Name this person in the review list first" : "Apply it to the scene",
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
    );
  }

  function SuggestionRow({ item, busy, onDecide, sceneId, seek }) {
    const payload = item.payload || {};
    return h(
      Row,
      { className: "ai-tagger-suggestion", name: item.title, detail: item.kind },
      h(Meta, { item: { score: item.score, model: payload.model } }),
      h(Evidence, { sceneId, item: { evidence: payload.evidence || [] }, seek }),
      h(DecideButtons, { item, busy, onDecide })
    );
  }

  // ---- the panel ----------------------------------------------------------------------------

  /** Queues the task "Undo" for the scene and reports its end; ``show(label)`` as in followTask. */
  async function undoScene(sceneId, show) {
    try {
      const job = await followTask({
        task: AiTagger.TASKS.undo,
        args: { mode: "undo", scene_id: String(sceneId) },
        prefix: "Undo",
        show,
      });
      await reportSceneJob(sceneId, job, UNDO_DONE);
    } catch (error) {
      showToast("Could not undo: " + (error.message || error), "error");
    }
  }

  /** "Undo for this scene": a first click arms it, a second within 5 s queues the task "Undo". */
  function UndoButton({ sceneId }) {
    const [state, setState] = useLiveState({ label: null, confirming: false });
    const timer = useRef(null);
    useEffect(() => () => clearTimeout(timer.current), []);
    const arm = () => {
      setState({ label: null, confirming: true });
      clearTimeout(timer.current);
      timer.current = setTimeout(() => setState((s) => (s.label ? s : { label: null, confirming: false })), UNDO_CONFIRM_MS);
    };
    const onClick = () => {
      if (state.label) return;
      if (!state.confirming) return arm();
      clearTimeout(timer.current);
      undoScene(sceneId, (label) => setState({ label, confirming: false }));
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

  function PanelHeader({ sceneId, loading, onRefresh }) {
    return h(
      "div",
      { className: "ai-tagger-header" },
      h("h5", null, "AI Tagger"),
      h(
        "div",
        { className: "ai-tagger-header-actions" },
        h(
          "button",
          { type: "button", className: "btn btn-sm btn-secondary ai-tagger-refresh", disabled: loading, onClick: onRefresh },
          loading ? "Loading..." : "Refresh"
        ),
        h(UndoButton, { sceneId })
      )
    );
  }

  /** The results, a section per kind, suggestions first: they wait for the user. */
  function Results({ data, sceneId, seek, busy, onDecide }) {
    const shared = { sceneId, seek };
    const row = (Component, extra) => (item) => h(Component, Object.assign({ key: item.id, item }, shared, extra));
    return h(
      React.Fragment,
      null,
      h(Section, {
        title: "Suggestions to review",
        className: "ai-tagger-suggestions",
        items: data.suggestions,
        render: row(SuggestionRow, { busy: busy !== null, onDecide }),
      }),
      h(Section, { title: "Tags", className: "ai-tagger-tags", items: data.tags, render: row(NamedRow, { className: "ai-tagger-tag" }) }),
      h(Section, { title: "Markers", className: "ai-tagger-markers", items: data.markers, render: row(MarkerRow) }),
      h(Section, {
        title: "Performers",
        className: "ai-tagger-performers",
        items: data.performers,
        render: row(NamedRow, { className: "ai-tagger-performer" }),
      }),
      h(Section, {
        title: "Studio",
        className: "ai-tagger-studios",
        items: data.studio ? [data.studio] : [],
        render: row(StudioRow),
      })
    );
  }

  function PanelBody({ state, sceneId, seek, busy, onDecide }) {
    const { data, error } = state;
    if (error) {
      return h("div", { className: "alert alert-danger ai-tagger-error" }, "Could not load the AI tagger's results: " + error);
    }
    if (!data) return h("div", { className: "ai-tagger-loading text-muted" }, "Loading...");
    if (isEmpty(data)) {
      return h(
        "div",
        { className: "ai-tagger-empty text-muted" },
        "The AI tagger has not added anything to this scene. Use the AI tag button to analyse it."
      );
    }
    return h(Results, { data, sceneId, seek, busy, onDecide });
  }

  /** The AI panel for one scene; ``setTimestamp`` is the scene page's (seeks the player). */
  function AiPanel({ sceneId, setTimestamp }) {
    const [state, load] = useSceneResults(sceneId);
    const [busy, decide] = useDecide(load);
    const seek = seeker(setTimestamp);
    return h(
      "div",
      { className: "ai-tagger-panel", "data-scene-id": String(sceneId) },
      h(PanelHeader, { sceneId, loading: state.loading, onRefresh: () => load() }),
      h(PanelBody, { state, sceneId, seek, busy, onDecide: decide })
    );
  }

  AiTagger.panel = { AiPanel };
})();
