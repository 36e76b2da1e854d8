// stash-ai-tagger: an "AI tag" button in the scene page's toolbar that queues the tagger for that
// scene. The mutation is sent directly: StashService.mutateRunPluginTask drops args_map.
(function () {
  "use strict";

  const PLUGIN_ID = "ai_tagger";
  const BUTTON_CLASS = "ai-tagger-button";
  const RUN_TASK = `mutation RunPluginTask($plugin: ID!, $task: String!, $args: Map) {
    runPluginTask(plugin_id: $plugin, task_name: $task, args_map: $args)
  }`;

  function graphqlUrl() {
    // Stash may be served under a base path: <base href> knows it.
    return new URL("graphql", document.baseURI).toString();
  }

  async function queueScene(sceneId) {
    const response = await fetch(graphqlUrl(), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        operationName: "RunPluginTask",
        query: RUN_TASK,
        variables: { plugin: PLUGIN_ID, task: "Tag one scene", args: { mode: "scene", scene_id: sceneId } },
      }),
    });
    const body = await response.json();
    if (body.errors && body.errors.length) {
      throw new Error(body.errors.map((e) => e.message).join("; "));
    }
    return body.data.runPluginTask;
  }

  function sceneIdFromLocation() {
    const match = window.location.pathname.match(/\/scenes\/(\d+)(?:\/|$)/);
    return match ? match[1] : null;
  }

  function addButton() {
    const sceneId = sceneIdFromLocation();
    const toolbar = document.querySelector(".scene-toolbar-group");
    if (!sceneId || !toolbar || toolbar.querySelector("." + BUTTON_CLASS)) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary minimal " + BUTTON_CLASS;
    button.title = "Tag this scene with the AI tagger";
    button.textContent = "AI tag";
    button.addEventListener("click", async () => {
      button.classList.add("busy");
      try {
        const jobId = await queueScene(sceneId);
        button.textContent = "AI tag: queued (job " + jobId + ")";
      } catch (error) {
        button.textContent = "AI tag: failed";
        button.title = String(error.message || error);
      } finally {
        button.classList.remove("busy");
      }
    });
    toolbar.appendChild(button);
  }

  const observer = new MutationObserver(addButton);
  observer.observe(document.body, { childList: true, subtree: true });
  addButton();
})();
