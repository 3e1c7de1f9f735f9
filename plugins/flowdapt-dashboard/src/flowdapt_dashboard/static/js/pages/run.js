// One run, live: stage states on the DAG, map progress, a timeline of its stages, its logs,
// durations, result, error, cancel, "Run again", and the artifact files (plots) its result links to.

import { ApiError, del, get, getBlob, post, subscribe } from "../api.js";
import { progressBar, stageTimeline } from "../charts.js";
import { renderDag, isMapStage } from "../dag.js";
import { badge, durationOf, enc, errorBox, fmtDuration, fmtTime, h, link, queueText, replace, runBadge, timeCell } from "../dom.js";
import { card, confirmDialog, jsonTree, keyValues, table } from "../widgets.js";
import { logPanel } from "./runlogs.js";
import { openRunForm } from "./runform.js";

const FINAL = ["finished", "failed", "cancelled"];
/** How often a pending run is read again: its place in the queue moves when other runs start or
 * end, and the events of this run's stream do not say so. */
export const QUEUE_POLL_MS = 2000;
const STAGE_RANK = { pending: 0, running: 1, finished: 2, failed: 2, skipped: 2, cancelled: 2 };

/** Events may arrive older than the snapshot they follow: never move a stage backwards. */
export function newerStage(old, rec) {
  if (!old) return true;
  const a = STAGE_RANK[old.state] ?? 0;
  const b = STAGE_RANK[rec.state] ?? 0;
  if (b !== a) return b > a;
  return (rec.items_done || 0) >= (old.items_done || 0);
}

/** An artifact file's API path, as the server writes it (``ArtifactFile.url_path``). */
const ARTIFACT_URL = /^\/artifacts\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/files\/[^/?#]+$/;
const IMAGE_FILE = /\.(png|jpe?g|gif|webp)$/i;
const MAX_ARTIFACT_LINKS = 24;

/** The artifact file paths found anywhere in a run's result: [{key, url}], in result order. */
export function artifactLinks(result) {
  const found = [];
  const seen = new Set();
  const walk = (value, key, depth) => {
    if (found.length >= MAX_ARTIFACT_LINKS || depth > 8 || value === null) return;
    if (typeof value === "string") {
      if (ARTIFACT_URL.test(value) && !seen.has(value)) {
        seen.add(value);
        found.push({ key: key || "result", url: value });
      }
    } else if (Array.isArray(value)) {
      value.slice(0, 200).forEach((v, i) => walk(v, `${key}[${i}]`, depth + 1));
    } else if (typeof value === "object") {
      for (const [k, v] of Object.entries(value).slice(0, 200)) walk(v, key ? `${key}.${k}` : k, depth + 1);
    }
  };
  walk(result, "", 0);
  return found;
}

function fileName(url) {
  return decodeURIComponent(url.slice(url.lastIndexOf("/") + 1));
}

export async function runPage(ctx, id) {
  let run = null;
  let workflow = null;
  let dag = null;
  const message = h("div", { class: "page-message" });
  const summaryEl = h("div");
  const stagesEl = h("div");
  const timelineEl = h("div");
  let logs = null;
  const errorEl = h("div", { class: "slot" });
  const resultEl = h("div", { class: "slot" });
  const artifactsEl = h("div", { class: "slot" });
  let artifactsShown = null;
  const objectUrls = [];
  ctx.onLeave(() => objectUrls.forEach((u) => URL.revokeObjectURL(u)));
  const live = h("span", { class: "live-dot" }, "connecting…");

  async function loadRun() {
    run = await get(`/workflows/run/${enc(id)}`, null, ctx.signal);
  }

  let headerState = null;
  function header(force = false) {
    // Re-rendered only when the state (or the place in the queue) changes, so a click on Cancel is
    // never swallowed by an update.
    const shown = `${run.state} ${queueText(run)}`;
    if (!force && headerState === shown) return;
    headerState = shown;
    const active = !FINAL.includes(run.state);
    const actions = [live];
    if (active) actions.push(h("button", { type: "button", class: "danger", "data-action": "cancel", onClick: cancel }, "Cancel run"));
    actions.push(h("button", { type: "button", class: "secondary", "data-action": "rerun", onClick: rerun }, "Run again"));
    actions.push(h("a", { class: "button secondary", href: `#/workflows/${enc(run.workflow)}`, "data-action": "workflow" }, "Workflow"));
    if (!active) actions.push(h("button", { type: "button", class: "danger-outline", "data-action": "delete", onClick: remove }, "Delete"));
    ctx.setHeader(run.name, {
      crumbs: [["Runs", "/runs"], [run.workflow, `/runs?workflow=${enc(run.workflow)}`]],
      sub: h("div", { class: "run-sub" }, runBadge(run), h("span", { class: "muted" }, ` ${run.uid}`)),
      actions,
    });
  }

  async function cancel() {
    const ok = await confirmDialog(`Cancel run ${run.name}?`, "Its running tasks are stopped; the run ends as cancelled.", "Cancel run");
    if (!ok) return;
    try {
      run = await post(`/runs/${enc(run.uid)}/cancel`);
      draw();
    } catch (err) {
      replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
    }
  }

  /** The start-run form with this run's input filled in; it POSTs /runs/{id}/rerun. */
  async function rerun() {
    let input = run.input || {};
    try {
      input = await get(`/runs/${enc(run.uid)}/input`, null, ctx.signal); // the whole input, even one stored by reference
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    try {
      await openRunForm(ctx, run.workflow, { rerunOf: run, input });
    } catch (err) {
      replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
    }
  }

  async function remove() {
    const ok = await confirmDialog(`Delete run ${run.name}?`, "The run record and its result are removed. This cannot be undone.");
    if (!ok) return;
    try {
      await del(`/workflows/run/${enc(run.uid)}`);
      ctx.navigate(`/runs?workflow=${enc(run.workflow)}`);
    } catch (err) {
      replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
    }
  }

  function drawSummary() {
    const stages = Object.values(run.stages || {});
    const finished = stages.filter((s) => s.state === "finished").length;
    replace(
      summaryEl,
      h(
        "div",
        { class: "stat-row compact" },
        [
          ["State", runBadge(run)],
          ["Duration", h("span", { "data-field": "duration" }, fmtDuration(durationOf(run.started_at, run.finished_at)))],
          ["Started", h("span", { title: fmtTime(run.started_at) }, timeCell(run.started_at))],
          ["Finished", run.finished_at ? timeCell(run.finished_at) : "—"],
          ["Stages done", `${finished}/${stages.length || (workflow ? workflow.spec.stages.length : 0)}`],
          ["Source", run.triggered_by && run.triggered_by.rule ? link(`/triggers/${enc(run.triggered_by.rule)}`, `trigger ${run.triggered_by.rule}`) : run.rerun_of ? h("span", { "data-field": "rerun-of" }, "re-run of ", link(`/runs/${enc(run.rerun_of)}`, run.rerun_of.slice(0, 8))) : run.source || "—"],
          ["Executor", run.executor || "—"],
          ["Namespace", run.namespace || "—"],
        ].map(([label, value]) => h("div", { class: "stat" }, h("span", { class: "stat-label" }, label), h("span", { class: "stat-value small-value" }, value)))
      )
    );
  }

  function stageRows() {
    const order = workflow ? workflow.spec.stages.map((s) => s.name) : Object.keys(run.stages || {});
    const defs = new Map((workflow ? workflow.spec.stages : []).map((s) => [s.name, s]));
    return order.map((name) => ({ name, def: defs.get(name) || {}, rec: (run.stages || {})[name] || { state: "pending" } }));
  }

  function drawTimeline(rows) {
    const anyStarted = rows.some((r) => r.rec.started_at);
    replace(
      timelineEl,
      anyStarted
        ? stageTimeline(
            rows.map((r) => ({ name: r.name, state: r.rec.state, started_at: r.rec.started_at, finished_at: r.rec.finished_at || (FINAL.includes(run.state) && r.rec.started_at ? run.finished_at : null) })),
            { runStart: run.started_at, runEnd: run.finished_at }
          )
        : h("p", { class: "muted" }, "No stage has started yet.")
    );
  }

  function drawStages() {
    if (dag) dag.update(run.stages || {});
    const rows = stageRows();
    drawTimeline(rows);
    const columns = [
      { label: "Stage", cell: (r) => h("strong", r.name) },
      { label: "State", cell: (r) => badge(r.rec.state) },
      {
        label: "Items",
        cls: "progress-cell",
        cell: (r) =>
          r.rec.items_total !== null && r.rec.items_total !== undefined
            ? progressBar(r.rec.items_done || 0, r.rec.items_total, r.rec.items_failed || 0)
            : isMapStage(r.def)
              ? h("span", { class: "muted" }, "waiting for its list")
              : h("span", { class: "muted" }, "—"),
      },
      { label: "Started", cls: "nowrap", cell: (r) => (r.rec.started_at ? fmtTime(r.rec.started_at) : "—") },
      { label: "Duration", cls: "num", cell: (r) => (r.rec.started_at ? fmtDuration(durationOf(r.rec.started_at, r.rec.finished_at || (FINAL.includes(run.state) ? run.finished_at : null))) : "—") },
      { label: "Attempts", cls: "num", cell: (r) => (r.rec.attempts ? String(r.rec.attempts) : "") },
      {
        label: "Error",
        cell: (r) => {
          const parts = [];
          if (r.rec.error) parts.push(h("code", { class: "text-failed" }, r.rec.error.join(": ")));
          if (r.rec.failures && r.rec.failures.length) {
            parts.push(
              h(
                "details",
                { class: "failures" },
                h("summary", `${r.rec.items_failed || r.rec.failures.length} failed item${(r.rec.items_failed || r.rec.failures.length) === 1 ? "" : "s"}`),
                h("ul", r.rec.failures.map((f) => h("li", h("code", `#${f.index}`), " ", f.error.join(": "))))
              )
            );
          }
          return parts.length ? parts : "";
        },
      },
    ];
    const open = new Set([...stagesEl.querySelectorAll("tr[data-stage] details[open]")].map((d) => d.closest("tr").dataset.stage));
    replace(stagesEl, table(columns, rows, { rowAttrs: (r) => ({ "data-stage": r.name, "data-state": r.rec.state }) }));
    for (const name of open) {
      const d = stagesEl.querySelector(`tr[data-stage="${CSS.escape(name)}"] details`);
      if (d) d.open = true;
    }
  }

  function drawError() {
    const err = run.error;
    if (!err && run.state !== "failed") return replace(errorEl);
    const type = err ? err.type : Array.isArray(run.result) ? run.result[0] : "Error";
    const msg = err ? err.message : Array.isArray(run.result) ? run.result[1] : "";
    replace(
      errorEl,
      h(
        "section",
        { class: `card error-card${run.state === "cancelled" ? " cancelled" : ""}`, "data-role": "run-error" },
        h("h3", { class: "card-title" }, `${type}${err && err.stage ? ` in stage ${err.stage}` : ""}`),
        h("p", { class: "error-message" }, msg),
        err && err.traceback ? h("details", { open: true, class: "traceback" }, h("summary", "Traceback"), h("pre", { "data-role": "traceback" }, err.traceback)) : null
      )
    );
  }

  function drawResult() {
    if (run.state !== "finished") return replace(resultEl);
    const raw = h("pre", { class: "json-raw", hidden: true }, JSON.stringify(run.result, null, 2));
    const tree = jsonTree(run.result, { openDepth: 1, name: null });
    const toggle = h("button", { type: "button", class: "link-button", onClick: () => {
      raw.hidden = !raw.hidden;
      tree.hidden = !raw.hidden;
      toggle.textContent = raw.hidden ? "raw JSON" : "tree";
    } }, "raw JSON");
    replace(resultEl, h("section", { class: "card", "data-role": "result" }, h("div", { class: "card-head" }, h("h3", { class: "card-title" }, "Result"), toggle), tree, raw));
  }

  /** Thumbnails of the result's artifact images (fetched with the token), links for other files. */
  function drawArtifacts() {
    const links = run.state === "finished" ? artifactLinks(run.result) : [];
    const key = links.map((l) => l.url).join("\n");
    if (key === artifactsShown) return;
    artifactsShown = key;
    if (!links.length) return replace(artifactsEl);
    const items = links.map(({ key: path, url }) => {
      const name = fileName(url);
      const status = h("span", { class: "muted" }, "loading…");
      const anchor = h("a", { class: "artifact-link", "data-role": "artifact-link", "data-url": url, title: url }, name);
      const figure = h("figure", { class: "artifact", "data-role": "artifact", "data-url": url }, IMAGE_FILE.test(name) ? status : null, h("figcaption", anchor, " ", h("code", { class: "muted" }, path)));
      getBlob(url, ctx.signal)
        .then((blob) => {
          if (!ctx.alive()) return;
          const objectUrl = URL.createObjectURL(blob);
          objectUrls.push(objectUrl);
          anchor.href = objectUrl;
          anchor.target = "_blank";
          anchor.rel = "noopener";
          if (IMAGE_FILE.test(name)) {
            const img = h("img", { src: objectUrl, alt: `${path}: ${name}`, "data-role": "artifact-image", loading: "lazy" });
            status.replaceWith(h("a", { href: objectUrl, target: "_blank", rel: "noopener" }, img));
          } else {
            anchor.download = name;
          }
        })
        .catch((err) => {
          if (err.name === "AbortError") return;
          status.replaceWith(h("span", { class: "text-failed", "data-role": "artifact-error" }, err instanceof ApiError ? err.detail : err.message));
        });
      return figure;
    });
    replace(artifactsEl, h("section", { class: "card", "data-role": "artifacts" }, h("h3", { class: "card-title" }, "Artifacts"), h("div", { class: "artifact-grid" }, items)));
  }

  function draw() {
    header(true);
    drawSummary();
    drawStages();
    drawError();
    drawArtifacts();
    drawResult();
  }

  await loadRun();
  if (!ctx.alive()) return;
  try {
    workflow = await get(`/workflows/${enc(run.workflow)}`, null, ctx.signal);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    workflow = null; // deleted since: the stage records still tell the story
  }
  if (!ctx.alive()) return;
  const dagStages = workflow ? workflow.spec.stages : Object.keys(run.stages || {}).map((name) => ({ name, depends_on: [] }));
  dag = renderDag(dagStages, {
    onSelect: (name) => {
      const row = stagesEl.querySelector(`tr[data-stage="${CSS.escape(name)}"]`);
      if (row) {
        row.scrollIntoView({ block: "center", behavior: "smooth" });
        row.classList.add("flash");
        setTimeout(() => row.classList.remove("flash"), 1200);
      }
    },
  });
  logs = logPanel(ctx, run, dagStages.map((st) => st.name), !FINAL.includes(run.state));
  replace(
    ctx.body,
    message,
    summaryEl,
    card(workflow ? "Graph" : "Stages (the workflow was deleted)", dag.el),
    errorEl,
    card("Stages", stagesEl),
    h("section", { class: "card", "data-role": "timeline-card" }, h("h3", { class: "card-title" }, "Timeline"), timelineEl),
    logs.el,
    artifactsEl,
    resultEl
  );
  draw();

  if (FINAL.includes(run.state)) {
    live.textContent = "ended";
    return;
  }

  // Live: the stream first, then a fresh snapshot on every (re)connect, then events on top.
  let ended = false;
  const ticker = setInterval(() => {
    const el = summaryEl.querySelector('[data-field="duration"]');
    if (el && !FINAL.includes(run.state)) el.textContent = fmtDuration(durationOf(run.started_at, null));
    if (!FINAL.includes(run.state)) drawTimeline(stageRows()); // a running stage's bar grows
  }, 1000);
  ctx.onLeave(() => clearInterval(ticker));

  // Map stages report progress many times a second: redraw at most every 200 ms.
  let drawTimer = null;
  function scheduleDraw() {
    if (drawTimer) return;
    drawTimer = setTimeout(() => {
      drawTimer = null;
      if (!ctx.alive() || ended) return;
      drawSummary();
      drawStages();
    }, 200);
  }
  ctx.onLeave(() => clearTimeout(drawTimer));

  async function finish() {
    if (ended) return;
    ended = true;
    stream.close();
    clearInterval(ticker);
    live.textContent = "ended";
    live.classList.remove("on");
    logs.runEnded();
    try {
      await loadRun(); // the final record carries the result, error and traceback
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    if (ctx.alive()) draw();
  }

  const stream = subscribe(
    { run: run.uid },
    {
      onOpen: async () => {
        try {
          await loadRun();
        } catch (err) {
          return;
        }
        if (!ctx.alive()) return;
        draw();
        if (FINAL.includes(run.state)) finish();
      },
      onStatus: (st) => {
        if (ended) return;
        live.textContent = st === "live" ? "live" : "reconnecting…";
        live.classList.toggle("on", st === "live");
      },
      onEvent: (type, data) => {
        if (!ctx.alive() || ended) return;
        if (type === "run_finished") return finish();
        if (data.state && (STAGE_RANK[data.state] ?? 0) >= 0) {
          if (!(run.state === "running" && data.state === "pending")) run.state = data.state;
          if (run.state !== "pending") run.queue_position = null; // it left the queue
        }
        if (data.stage && data.stage_record) {
          run.stages = run.stages || {};
          if (newerStage(run.stages[data.stage], data.stage_record)) run.stages[data.stage] = data.stage_record;
        }
        header();
        scheduleDraw();
      },
    }
  );
  ctx.onLeave(() => stream.close());

  // While the run waits, read it again now and then: its place in the queue moves as other runs
  // start or end. A snapshot that comes back after an event said the run started is dropped.
  const queuePoll = setInterval(async () => {
    if (ended || run.state !== "pending") return;
    let fresh;
    try {
      fresh = await get(`/workflows/run/${enc(id)}`, { include_result: false }, ctx.signal);
    } catch (err) {
      return; // the stream reports a lost server; the next tick tries again
    }
    if (!ctx.alive() || ended || run.state !== "pending") return;
    if (FINAL.includes(fresh.state)) return finish();
    if (fresh.state === "pending") {
      if (fresh.queue_position === run.queue_position) return;
      run.queue_position = fresh.queue_position;
    } else {
      run.state = fresh.state; // it started: the stage records come with the events
      run.queue_position = null;
    }
    header();
    scheduleDraw();
  }, QUEUE_POLL_MS);
  ctx.onLeave(() => clearInterval(queuePoll));
}
