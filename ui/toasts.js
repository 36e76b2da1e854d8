// stash-ai-tagger UI: toasts, and what a finished job on a scene tells the user (a toast, the AI
// panel reloaded, Stash's own scene data refetched). Adds AiTagger.toasts.
(function () {
  "use strict";

  const AiTagger = window.AiTagger;
  const { review, plural } = AiTagger.api;

  const SHOW_MS = { success: 10000, error: 30000 };

  // PluginApi.hooks.useToast needs a React component to call it from; these work from anywhere
  // (a job that ends after its page was left), with Stash's Bootstrap toast look.

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

  function toastHeader(failed, onClose) {
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
    close.addEventListener("click", onClose);
    header.append(title, close);
    return header;
  }

  /** A toast with ``message`` as text; variant "success" or "error" (which stays longer). */
  function showToast(message, variant) {
    const failed = variant === "error";
    const toast = document.createElement("div");
    toast.className = "toast show ai-tagger-toast " + (failed ? "ai-tagger-toast-error" : "ai-tagger-toast-success");
    toast.setAttribute("role", failed ? "alert" : "status");
    const body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = message;
    toast.append(toastHeader(failed, () => toast.remove()), body);
    toastArea().appendChild(toast);
    setTimeout(() => toast.remove(), failed ? SHOW_MS.error : SHOW_MS.success);
    return toast;
  }

  /** "Tagging finished: 1 tag, 3 markers, ..." from the review API's scene results. */
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

  /** The scene's AI panel reloads (with ``results`` when they are at hand), and so does Stash's. */
  function refreshScene(sceneId, results) {
    const detail = { sceneId: String(sceneId), results };
    window.dispatchEvent(new CustomEvent(AiTagger.REFRESH_EVENT, { detail }));
    refreshStashScene();
  }

  function failureText(job) {
    if (job.status === "GONE") return AiTagger.JOB_GONE;
    if (job.status === "FAILED" || job.status === "CANCELLED") {
      return job.error || (job.status === "CANCELLED" ? "the job was cancelled" : "the job failed");
    }
    return null;
  }

  /** After a task on the scene: a toast with the error, ``doneText``, or (a tagging run) what the
   * tagger applied; then the AI panel reloads. */
  async function reportSceneJob(sceneId, job, doneText) {
    const failure = failureText(job);
    if (failure || doneText) {
      showToast(failure || doneText, failure ? "error" : "success");
      refreshScene(sceneId);
      return;
    }
    let results = null;
    try {
      results = await review({ action: "scene", scene_id: String(sceneId) });
    } catch (error) {
      // The tagging worked; only the summary is missing.
    }
    showToast(results ? summary(results) : "Tagging finished.", "success");
    refreshScene(sceneId, results || undefined);
  }

  AiTagger.toasts = { showToast, reportSceneJob, refreshStashScene };
})();
