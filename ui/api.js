// stash-ai-tagger's UI runs inside Stash's page as plain scripts: no build step, no modules. The
// files are listed under ui.javascript in ai_tagger.yml, and Stash serves them joined, in that order,
// as one script (/plugin/ai_tagger/javascript). Each file is an IIFE that adds one part to the only
// global, window.AiTagger, which this first file creates:
//
//   api.js           this file: shared constants, Stash's GraphQL endpoint, tasks, jobs, page paths
//   toasts.js        toasts, and what a finished job on a scene tells the user
//   scene_button.js  the "AI tag" button in the scene toolbar
//   scene_list.js    "AI tag selected scenes" in the scene list
//   panel.js         the AI panel (React): what the tagger applied, its evidence, the review queue
//   scene_tab.js     the panel as a scene page tab, or under the details where tabs can't be patched
//   main.js          wiring: the patches, and following Stash from page to page
//
// Everything goes through Stash's GraphQL endpoint (<base href>graphql, so a base path works), with
// the browser's session cookie: runPluginTask (sent directly: StashService.mutateRunPluginTask drops
// args_map), findJob, and runPluginOperation with the plugin's review API (tagger/run/review_api.py).
// Names from the library are only ever rendered as text (React children, textContent).
(function () {
  "use strict";

  const AiTagger = (window.AiTagger = {
    /** The plugin's tasks the UI queues (names as in ai_tagger.yml). */
    TASKS: { tagScene: "Tag one scene", tagScenes: "Tag selected scenes", undo: "Undo" },
    /** A window event asking the scene's AI panel to reload: detail {sceneId, results?}. */
    REFRESH_EVENT: "ai-tagger:refresh",
    JOB_GONE: "The job left Stash's job list before it ended; see Stash's log.",
  });

  const PLUGIN_ID = "ai_tagger";
  const POLL_MS = 1000;
  /** findJob failures in a row before a job is given up on (Stash restarting, network gone). */
  const MAX_POLL_FAILURES = 10;
  const ENDED = ["FINISHED", "FAILED", "CANCELLED"];

  const RUN_TASK = `mutation RunPluginTask($plugin: ID!, $task: String!, $args: Map) {
    runPluginTask(plugin_id: $plugin, task_name: $task, args_map: $args)
  }`;
  const RUN_OPERATION = `mutation RunPluginOperation($plugin: ID!, $args: Map) {
    runPluginOperation(plugin_id: $plugin, args: $args)
  }`;
  const FIND_JOB = `query FindJob($id: ID!) { findJob(input: { id: $id }) { id status progress error } }`;
  const FIND_STUDIO = `query FindStudio($id: ID!) { findStudio(id: $id) { id name } }`;

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

  /** Queues one of the plugin's tasks; the job's id. */
  async function runTask(task, args) {
    const data = await graphql("RunPluginTask", RUN_TASK, { plugin: PLUGIN_ID, task, args });
    return data.runPluginTask;
  }

  /** The plugin's review API (runPluginOperation, mode "review"): its answer. */
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

  /** Polls a job every second until it ends; ``onUpdate(job)`` after each poll. A job that left
   * Stash's list comes back as status "GONE". */
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

  /** "AI tag: queued", "AI tag: 42%", ...: a job's state as a button shows it. */
  function jobLabel(prefix, job) {
    if (!job || job.status === "READY") return prefix + ": queued";
    if (job.status === "RUNNING" && typeof job.progress === "number" && job.progress >= 0) {
      return prefix + ": " + Math.round(job.progress * 100) + "%";
    }
    if (job.status === "STOPPING") return prefix + ": stopping";
    return prefix + ": running";
  }

  /** Queues a task and follows its job to the end, which it returns. ``show(label)`` gets the
   * job's state as it changes ("<prefix>: queueing", then jobLabel's), and null when it ended or
   * failed; ``onQueued()`` runs once Stash accepted the task. */
  async function followTask({ task, args, prefix, show, onQueued }) {
    show(prefix + ": queueing");
    try {
      const jobId = await runTask(task, args);
      if (onQueued) onQueued();
      show(jobLabel(prefix, null));
      return await watchJob(jobId, (job) => show(jobLabel(prefix, job)));
    } finally {
      show(null);
    }
  }

  /** The scene id in a path or link (/scenes/12, /stash/scenes/12?t=3), or null (/scenes/markers). */
  function sceneIdIn(path) {
    const match = (path || "").match(/\/scenes\/(\d+)(?:[/?#]|$)/);
    return match ? match[1] : null;
  }

  /** The id of the scene whose page is shown, or null on any other page. */
  function currentSceneId() {
    return sceneIdIn(window.location.pathname);
  }

  /** True on a scene list page (/scenes, under any base path), not on one scene or the markers. */
  function onSceneList() {
    return /\/scenes\/?$/.test(window.location.pathname);
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  AiTagger.api = {
    graphql,
    runTask,
    review,
    findStudioName,
    watchJob,
    jobLabel,
    followTask,
    sceneIdIn,
    currentSceneId,
    onSceneList,
    plural,
  };
})();
