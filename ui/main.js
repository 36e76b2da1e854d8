// stash-ai-tagger UI, the last file: wiring. The patches go in once; then the plugin follows Stash
// from page to page. Stash says when its page changes (PluginApi.Event "stash:location", sent by its
// router after each move); a Stash without PluginApi.Event gets a poll of the address instead.
//
// A page's parts (the scene toolbar, the list's toolbar) render after their data loads, later than
// the location event, and Stash may re-render them. So on the two pages the plugin adds to, a scene
// and the scene list, a MutationObserver watches Stash's content container (.main: the routes; the
// navbar, dialogs and toasts are outside it) and puts the parts in place; on every other page
// nothing is observed.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const PluginApi = window.PluginApi;
  const { currentSceneId, onSceneList } = AiTagger.api;
  const { sceneButton, sceneList, sceneTab } = AiTagger;

  /** How often a Stash without PluginApi.Event has its address looked at. */
  const LOCATION_POLL_MS = 500;

  /** Everything the plugin adds from the DOM, put in place for the page shown (each is a no-op
   * where it is in place already, or on a page it does not belong to). */
  function syncPage() {
    sceneButton.sync();
    sceneList.syncButton();
    sceneTab.syncFallback();
  }

  function pageWeAddTo() {
    return Boolean(currentSceneId()) || onSceneList();
  }

  /** Stash's route container; before Stash rendered it, the React root. */
  function contentContainer() {
    return document.querySelector(".main") || document.getElementById("root") || document.body;
  }

  let observer = null;

  function observeContent(wanted) {
    if (wanted && !observer) {
      observer = new MutationObserver(syncPage);
      observer.observe(contentContainer(), { childList: true, subtree: true });
    } else if (!wanted && observer) {
      observer.disconnect();
      observer = null;
    }
  }

  function onLocation() {
    syncPage();
    // Attached afresh on every move: before Stash rendered .main, the container was the React root.
    observeContent(false);
    observeContent(pageWeAddTo());
  }

  function followLocation() {
    const events = PluginApi && PluginApi.Event;
    if (events && typeof events.addEventListener === "function") {
      events.addEventListener("stash:location", onLocation);
      return;
    }
    let shown = window.location.pathname;
    setInterval(() => {
      if (window.location.pathname === shown) return;
      shown = window.location.pathname;
      onLocation();
    }, LOCATION_POLL_MS);
  }

  if (PluginApi && PluginApi.patch) sceneList.patchMenu();
  sceneTab.install();
  followLocation();
  // Stash sent the first location event before it loaded the plugins: the page shown now.
  onLocation();
})();
