// stash-ai-tagger UI: the "AI tag" button in the scene toolbar (.scene-toolbar-group, added from the
// DOM: Stash has no patchable toolbar). It queues the task "Tag one scene" for the scene, shows the
// job's progress in the button, and a toast with the result or the error when the job ends.
// Adds AiTagger.sceneButton.sync(), which main.js calls whenever the page may have changed.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const { followTask, currentSceneId } = AiTagger.api;
  const { showToast, reportSceneJob } = AiTagger.toasts;

  const BUTTON_CLASS = "ai-tagger-button";

  /** Per scene id: the label of its running tagging job, kept here rather than in the button so
   * that a toolbar Stash re-renders, or a return to the scene, shows it again. */
  const running = {};

  function showButtonState(button, sceneId) {
    const label = running[sceneId];
    button.dataset.sceneId = sceneId;
    button.textContent = label || "AI tag";
    button.disabled = Boolean(label);
    button.classList.toggle("busy", Boolean(label));
  }

  /** The job's state in ``running`` and, while its scene is shown, in the button. */
  function showLabel(sceneId, label) {
    running[sceneId] = label;
    const button = document.querySelector("." + BUTTON_CLASS);
    if (button && button.dataset.sceneId === sceneId) showButtonState(button, sceneId);
  }

  async function tagScene(sceneId) {
    try {
      const job = await followTask({
        task: AiTagger.TASKS.tagScene,
        args: { mode: "scene", scene_id: sceneId },
        prefix: "AI tag",
        show: (label) => showLabel(sceneId, label),
      });
      await reportSceneJob(sceneId, job);
    } catch (error) {
      showToast("Could not tag the scene: " + (error.message || error), "error");
    }
  }

  function createButton() {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary minimal " + BUTTON_CLASS;
    button.title = "Tag this scene with the AI tagger";
    button.addEventListener("click", () => {
      // The scene shown now: Stash reuses the toolbar when it moves to another scene.
      const id = currentSceneId();
      if (id && !running[id]) tagScene(id);
    });
    return button;
  }

  /** On a scene page: the button in the toolbar, showing this scene's state. */
  function sync() {
    const sceneId = currentSceneId();
    const toolbar = document.querySelector(".scene-toolbar-group");
    if (!sceneId || !toolbar) return;
    let button = toolbar.querySelector("." + BUTTON_CLASS);
    if (!button) {
      button = createButton();
      toolbar.appendChild(button);
      showButtonState(button, sceneId);
    } else if (button.dataset.sceneId !== sceneId) {
      showButtonState(button, sceneId);
    }
  }

  AiTagger.sceneButton = { sync };
})();
