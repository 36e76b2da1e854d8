// stash-ai-tagger UI: "AI tag selected scenes" in the scene list's operations menu
// (PluginApi.patch.before on "SceneListOperations", Stash v0.30+). It queues the task "Tag selected
// scenes" for the selected scenes, or for the scenes on the current page when nothing is selected.
// The component's props carry no ids, so they are read from the page (the checked cards' and rows'
// scene links). A Stash without that component gets the same action as a button in the list's
// toolbar. Adds AiTagger.sceneList: patchMenu() once, syncButton() whenever the page may have changed.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const { followTask, sceneIdIn, onSceneList, plural } = AiTagger.api;
  const { showToast } = AiTagger.toasts;

  const LIST_BUTTON_CLASS = "ai-tagger-list-button";

  /** Scene ids in page order: of the selected (checked) cards and table rows, or of every scene
   * shown when nothing is selected. */
  function listedSceneIds(selectedOnly) {
    const items = document.querySelectorAll(".scene-card, .scene-list-table tbody tr, .wall-item");
    const ids = [];
    for (const item of items) {
      if (selectedOnly && !item.querySelector('input[type="checkbox"]:checked')) continue;
      const id = firstSceneLinkId(item);
      if (id && !ids.includes(id)) ids.push(id);
    }
    return ids;
  }

  /** The scene an item of the list stands for: its first link to a scene page. */
  function firstSceneLinkId(item) {
    for (const link of item.querySelectorAll("a[href]")) {
      const id = sceneIdIn(link.getAttribute("href"));
      if (id) return id;
    }
    return null;
  }

  /** The fallback toolbar button, when there is one, shows the job's state. */
  function showListLabel(label) {
    const button = document.querySelector("." + LIST_BUTTON_CLASS);
    if (button) {
      button.textContent = label || "AI tag";
      button.disabled = Boolean(label);
    }
  }

  function listJobEnded(job, what) {
    if (job.status === "FINISHED") showToast("AI tagging of " + what + " finished.", "success");
    else if (job.status === "GONE") showToast(AiTagger.JOB_GONE, "error");
    else showToast(job.error || "AI tagging of " + what + " " + job.status.toLowerCase() + ".", "error");
  }

  /** One list job at a time: its toasts name "these scenes", which two jobs would confuse. */
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
    try {
      const job = await followTask({
        task: AiTagger.TASKS.tagScenes,
        args: { mode: "scene", scene_ids: ids.join(",") },
        prefix: "AI tag",
        show: showListLabel,
        onQueued: () => showToast("AI tagging of " + what + " queued.", "success"),
      });
      listJobEnded(job, what);
    } catch (error) {
      showToast("Could not tag the scenes: " + (error.message || error), "error");
    } finally {
      listRunning = false;
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

  function patchMenu() {
    window.PluginApi.patch.before("SceneListOperations", function (props) {
      const operations = (props && props.operations) || [];
      return [Object.assign({}, props, { operations: operations.concat([listOperation(props && props.hasSelection)]) })];
    });
  }

  /** Stash registers a patchable component in PluginApi.components when its (lazily loaded)
   * module loads, so on a rendered scene list this tells whether the menu item is there. */
  function menuPatchable() {
    const PluginApi = window.PluginApi;
    return Boolean(PluginApi && PluginApi.patch && PluginApi.components && PluginApi.components.SceneListOperations);
  }

  /** Without the patchable menu (Stash before v0.30): a button in the list's toolbar. */
  function syncButton() {
    if (!onSceneList() || menuPatchable()) return;
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

  AiTagger.sceneList = { patchMenu, syncButton };
})();
