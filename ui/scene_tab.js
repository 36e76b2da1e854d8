// stash-ai-tagger UI: the AI panel on the scene page. Where Stash has the patchable "ScenePage.Tabs"
// and "ScenePage.TabContent" (PluginApi.patch.instead; props.scene.id), it is an "AI" tab; a Stash
// without them gets the same panel under the scene details, mounted from the DOM.
// Adds AiTagger.sceneTab: install() once, syncFallback() whenever the page may have changed.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const PluginApi = window.PluginApi;
  const { currentSceneId } = AiTagger.api;
  const panel = AiTagger.panel;
  const React = PluginApi && PluginApi.React;
  const Bootstrap = PluginApi && PluginApi.libraries && PluginApi.libraries.Bootstrap;

  const TAB_KEY = "ai-tagger-panel";
  const FALLBACK_CLASS = "ai-tagger-fallback";
  /** How long the page may take to render the patched tab before the panel goes into the DOM. */
  const FALLBACK_DELAY_MS = 1000;

  const canRender = Boolean(panel && PluginApi.ReactDOM);

  function canPatchTabs() {
    return Boolean(panel && PluginApi.patch && Bootstrap && Bootstrap.Nav && Bootstrap.Tab);
  }

  // ---- the tab ------------------------------------------------------------------------------

  function patchTabs() {
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
      // Keyed by scene: moving to another scene mounts a fresh panel that loads that scene.
      const pane = h(
        Tab.Pane,
        { eventKey: TAB_KEY, mountOnEnter: true, className: "ai-tagger-pane" },
        h(panel.AiPanel, { key: props.scene.id, sceneId: props.scene.id, setTimestamp: props.setTimestamp })
      );
      return h(React.Fragment, null, original, pane);
    });
  }

  // ---- the fallback under the scene details -------------------------------------------------

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
    const content = React.createElement(panel.AiPanel, { key: sceneId, sceneId });
    const ReactDOM = PluginApi.ReactDOM;
    // Stash's ReactDOM is React 17's (render); createRoot where a newer one has it.
    const root = typeof ReactDOM.createRoot === "function" ? ReactDOM.createRoot(element) : null;
    if (root) root.render(content);
    else ReactDOM.render(content, element);
    fallback = { element, sceneId, root };
  }

  /** A scene page whose patched tab did not render (yet). */
  function tablessScenePage() {
    return Boolean(currentSceneId() && document.querySelector(".scene-toolbar-group") && !document.querySelector(".ai-tagger-nav"));
  }

  function cancelFallback() {
    clearTimeout(fallbackTimer);
    fallbackTimer = null;
    unmountFallback();
  }

  /** The fallback panel where the page has no AI tab, for the scene shown; none elsewhere. The
   * page gets FALLBACK_DELAY_MS to render the patched tab first. */
  function syncFallback() {
    if (!canRender) return;
    if (!tablessScenePage()) {
      cancelFallback();
      return;
    }
    const sceneId = currentSceneId();
    if (fallback && fallback.sceneId === sceneId && document.body.contains(fallback.element)) return;
    if (fallbackTimer) return;
    fallbackTimer = setTimeout(() => {
      fallbackTimer = null;
      if (tablessScenePage()) mountFallback(currentSceneId());
    }, FALLBACK_DELAY_MS);
  }

  /** The tab where the page can be patched; a warning where not even the fallback can render. */
  function install() {
    if (canPatchTabs()) patchTabs();
    else if (!canRender) console.warn("AI Tagger: this Stash has no PluginApi with React; only the AI tag button is available");
  }

  AiTagger.sceneTab = { install, syncFallback };
})();
