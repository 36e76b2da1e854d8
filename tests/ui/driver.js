// A small browser driver for tests/test_ui.py: headless Chromium through playwright-core, one JSON
// command per stdin line, one JSON answer per stdout line ({ok, result} or {ok: false, error}).
//
//   node driver.js CHROMIUM_PATH
//   {"op": "open", "url": "http://127.0.0.1:PORT/stash/scenes/1"}   a fresh browser context and page
//   {"op": "click", "selector": "text=AI tag"}                       playwright selectors; exactly one match
//   {"op": "wait", "selector": "...", "state": "visible"}            visible | attached | hidden | detached
//   {"op": "waitFor", "expression": "document.title === 'x'"}        until the expression is truthy
//   {"op": "text", "selector": "..."}      textContent of the one match
//   {"op": "texts", "selector": "..."}     textContent of every match
//   {"op": "attrs", "selector": "...", "name": "src"}   an attribute of every match
//   {"op": "count", "selector": "..."}
//   {"op": "eval", "expression": "..."}    the expression's value in the page (JSON)
//   {"op": "screenshot", "path": "...", "selector": "..."}   PNG of the page, or of one element
//   {"op": "events"}                       dialogs opened, console errors and page errors so far
//
// Dialogs (alert, confirm) are recorded and dismissed, so a test can assert that none opened.
"use strict";

const readline = require("readline");
const { chromium } = require("playwright-core");

const TIMEOUT_MS = 15000;

let browser = null;
let context = null;
let page = null;
let events = { dialogs: [], consoleErrors: [], pageErrors: [] };

async function open({ url }) {
  if (context) await context.close();
  events = { dialogs: [], consoleErrors: [], pageErrors: [] };
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  page = await context.newPage();
  page.on("dialog", (dialog) => {
    events.dialogs.push({ type: dialog.type(), message: dialog.message() });
    dialog.dismiss().catch(() => {});
  });
  page.on("console", (message) => {
    if (message.type() === "error") events.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => events.pageErrors.push(String(error && error.stack ? error.stack : error)));
  await page.goto(url, { waitUntil: "load" });
  return page.url();
}

const OPS = {
  open,
  click: ({ selector }) => page.locator(selector).click(),
  wait: ({ selector, state, timeout }) =>
    page.locator(selector).first().waitFor({ state: state || "visible", timeout: timeout || TIMEOUT_MS }),
  waitFor: ({ expression, timeout }) =>
    page.waitForFunction(expression, null, { timeout: timeout || TIMEOUT_MS, polling: 100 }).then(() => true),
  text: ({ selector }) => page.locator(selector).textContent(),
  texts: ({ selector }) => page.locator(selector).allTextContents(),
  attrs: ({ selector, name }) =>
    page.locator(selector).evaluateAll((nodes, attr) => nodes.map((n) => n.getAttribute(attr)), name),
  count: ({ selector }) => page.locator(selector).count(),
  eval: ({ expression }) => page.evaluate(expression),
  screenshot: async ({ path, selector }) => {
    const target = selector ? page.locator(selector) : page;
    await target.screenshot({ path, animations: "disabled" });
    return path;
  },
  events: async () => events,
};

async function handle(line) {
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    return { ok: false, error: "not JSON: " + line };
  }
  const op = OPS[command.op];
  if (!op) return { ok: false, error: "unknown op " + JSON.stringify(command.op) };
  if (command.op !== "open" && !page) return { ok: false, error: "no page: send open first" };
  try {
    const result = await op(command);
    return { ok: true, result: result === undefined ? null : result };
  } catch (error) {
    return { ok: false, error: String(error && error.message ? error.message : error) };
  }
}

async function main() {
  const executablePath = process.argv[2];
  browser = await chromium.launch({ executablePath, headless: true });
  process.stdout.write(JSON.stringify({ ok: true, result: browser.version() }) + "\n");
  const lines = readline.createInterface({ input: process.stdin });
  // One command at a time, in order: the test waits for each answer before sending the next.
  for await (const line of lines) {
    if (!line.trim()) continue;
    process.stdout.write(JSON.stringify(await handle(line)) + "\n");
  }
  await browser.close();
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error && error.stack ? error.stack : error) }) + "\n");
  process.exit(1);
});
