// Runs across workflows: filters in the URL (state, workflow, since on the server; run name and
// source in the browser), server-side pages, refreshed when the event stream says a run started or ended.

import { get, subscribe } from "../api.js";
import { RUN_STATES, debounce, durationOf, enc, fmtDuration, h, link, replace, runBadge, timeCell } from "../dom.js";
import { pager, table } from "../widgets.js";
import { openRunForm } from "./runform.js";

const LIMIT = 50;
/** While the page shows a run waiting for a slot, it reloads this often: the run's place moves
 * when a run of any workflow starts or ends, which a workflow-filtered stream does not show. */
const QUEUE_REFRESH_MS = 3000;
/** GET /runs filters by state, workflow and time only: name search and source are applied here,
 * to the newest SCAN runs that match the server's filters. */
export const SCAN = 1000;
const SOURCES = ["api", "trigger", "schedule", "condition", "rerun", "cli"];
/** The search box redraws the page through the URL: it keeps the focus across that redraw. */
let searching = false;
const SINCE = [
  ["", "any time"],
  ["1h", "last hour"],
  ["24h", "last 24 hours"],
  ["7d", "last 7 days"],
  ["30d", "last 30 days"],
];

/** "24h" → an ISO time (UTC, naive as the API expects); an ISO value passes through. */
export function sinceParam(value, now = Date.now()) {
  if (!value) return null;
  const m = /^(\d+)([hdm])$/.exec(value);
  if (!m) return value;
  const ms = Number(m[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
  return new Date(now - ms).toISOString().replace("Z", "");
}

function stageProgress(run) {
  const stages = Object.values(run.stages || {});
  if (!stages.length) return h("span", { class: "muted" }, "—");
  // Skipped stages did not run: counted as skipped, never as done.
  const done = stages.filter((s) => ["finished", "failed", "cancelled"].includes(s.state)).length;
  const failed = stages.filter((s) => s.state === "failed").length;
  const skipped = stages.filter((s) => s.state === "skipped").length;
  return h(
    "span",
    { class: "small", "data-role": "stage-progress" },
    `${done}/${stages.length} stages`,
    skipped ? h("span", { class: "muted" }, ` · ${skipped} skipped`) : null,
    failed ? h("span", { class: "text-failed" }, ` · ${failed} failed`) : null
  );
}

/** Where a run came from, as the source filter reads it: the trigger's type for a trigger's run. */
export function runSource(run) {
  const by = run.triggered_by || {};
  if (run.rerun_of || run.source === "rerun") return "rerun";
  if (run.source === "trigger" && by.type) return by.type;
  return run.source || "";
}

export function matchesSource(run, source) {
  if (!source) return true;
  const s = runSource(run);
  return s === source || run.source === source;
}

export function matchesName(run, text) {
  if (!text) return true;
  const needle = text.toLowerCase();
  return String(run.name || "").toLowerCase().includes(needle) || String(run.uid || "").startsWith(needle);
}

export async function runsPage(ctx) {
  const q = ctx.query;
  const offset = Math.max(0, Number(q.offset) || 0);
  ctx.setHeader("Runs", {
    actions: [h("button", { type: "button", "data-action": "start-run", onClick: () => openRunForm(ctx, q.workflow || null) }, "Start run")],
  });
  const workflows = await get("/workflows/", null, ctx.signal).catch(() => []);
  if (!ctx.alive()) return;
  const names = workflows.map((w) => w.metadata.name).sort();

  function setQuery(changes) {
    const next = { ...q, ...changes };
    if (!("offset" in changes)) next.offset = 0;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v !== null && v !== undefined && v !== "" && !(k === "offset" && !Number(v))) params.set(k, v);
    const search = params.toString();
    ctx.navigate("/runs" + (search ? "?" + search : ""));
  }

  const stateSel = h(
    "select",
    { name: "state", "aria-label": "state", onChange: (e) => setQuery({ state: e.target.value }) },
    h("option", { value: "" }, "all states"),
    RUN_STATES.map((st) => h("option", { value: st, selected: q.state === st }, st))
  );
  const wfSel = h(
    "select",
    { name: "workflow", "aria-label": "workflow", onChange: (e) => setQuery({ workflow: e.target.value }) },
    h("option", { value: "" }, "all workflows"),
    names.map((n) => h("option", { value: n, selected: q.workflow === n }, n)),
    q.workflow && !names.includes(q.workflow) ? h("option", { value: q.workflow, selected: true }, `${q.workflow} (deleted)`) : null
  );
  const known = SINCE.some(([v]) => v === (q.since || ""));
  const sinceSel = h(
    "select",
    { name: "since", "aria-label": "started since", onChange: (e) => setQuery({ since: e.target.value }) },
    SINCE.map(([v, label]) => h("option", { value: v, selected: (q.since || "") === v }, label)),
    known ? null : h("option", { value: q.since, selected: true }, `since ${q.since}`)
  );
  const search = h("input", {
    type: "search",
    name: "name",
    "aria-label": "search run names",
    placeholder: "search run name…",
    value: q.name || null,
    autocomplete: "off",
    onInput: debounce((e) => {
      searching = document.activeElement === e.target;
      setQuery({ name: e.target.value.trim() });
    }, 400),
  });
  const sourceSel = h(
    "select",
    { name: "source", "aria-label": "source", onChange: (e) => setQuery({ source: e.target.value }) },
    h("option", { value: "" }, "all sources"),
    SOURCES.map((v) => h("option", { value: v, selected: q.source === v }, v)),
    q.source && !SOURCES.includes(q.source) ? h("option", { value: q.source, selected: true }, q.source) : null
  );
  const live = h("span", { class: "live-dot", title: "live updates" }, "connecting…");
  const holder = h("div", { class: "runs-table" });
  replace(
    ctx.body,
    h(
      "div",
      { class: "toolbar" },
      h("label", { class: "inline" }, "State ", stateSel),
      h("label", { class: "inline" }, "Workflow ", wfSel),
      h("label", { class: "inline" }, "Started ", sinceSel),
      h("label", { class: "inline" }, "Source ", sourceSel),
      search,
      Object.keys(q).some((k) => ["state", "workflow", "since", "name", "source"].includes(k) && q[k]) ? h("button", { type: "button", class: "link-button", onClick: () => ctx.navigate("/runs") }, "clear filters") : null,
      h("span", { class: "spacer" }),
      live
    ),
    holder
  );
  if (searching) {
    searching = false;
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }

  const local = !!(q.name || q.source);

  async function fetchPage() {
    const server = { state: q.state, workflow: q.workflow, since: sinceParam(q.since), include_result: false };
    if (!local) return get("/runs", { ...server, limit: LIMIT, offset }, ctx.signal);
    const scanned = await get("/runs", { ...server, limit: SCAN, offset: 0 }, ctx.signal);
    const matching = scanned.items.filter((r) => matchesName(r, q.name) && matchesSource(r, q.source));
    return { items: matching.slice(offset, offset + LIMIT), total: matching.length, scanned: scanned.items.length, stored: scanned.total };
  }

  async function load() {
    const page = await fetchPage();
    if (!ctx.alive()) return;
    const columns = [
      { label: "Run", cell: (r) => link(`/runs/${r.uid}`, r.name, { class: "strong", "data-run": r.name }) },
      { label: "Workflow", cell: (r) => link(`/workflows/${enc(r.workflow)}`, r.workflow) },
      { label: "State", cell: (r) => runBadge(r) },
      { label: "Progress", cell: stageProgress },
      { label: "Source", cell: (r) => h("span", { "data-source": runSource(r) }, r.triggered_by && r.triggered_by.rule ? `trigger ${r.triggered_by.rule}` : runSource(r)) },
      { label: "Started", cell: (r) => timeCell(r.started_at) },
      { label: "Duration", cls: "num", cell: (r) => fmtDuration(durationOf(r.started_at, r.finished_at)) },
    ];
    replace(
      holder,
      table(columns, page.items, { empty: page.total ? "No runs on this page." : "No runs match these filters." }),
      local
        ? h("p", { class: "muted small", "data-role": "local-filter" }, `Name and source are matched in the browser, among the newest ${page.scanned.toLocaleString("en-US")} of ${page.stored.toLocaleString("en-US")} runs that match the other filters.`)
        : null,
      page.total > LIMIT || offset ? pager({ offset, limit: LIMIT, total: page.total, onPage: (o) => setQuery({ offset: Math.max(0, o) }) }) : h("p", { class: "muted small" }, `${page.total.toLocaleString("en-US")} run${page.total === 1 ? "" : "s"}`)
    );
    clearTimeout(queueTimer);
    if (page.items.some((r) => r.state === "pending" && r.queue_position)) {
      queueTimer = setTimeout(() => ctx.alive() && load().catch(() => {}), QUEUE_REFRESH_MS);
    }
  }

  let queueTimer = null;
  ctx.onLeave(() => clearTimeout(queueTimer));
  await load();
  const refresh = debounce(() => load().catch(() => {}), 1500);
  const stream = subscribe(
    { workflow: q.workflow || null, types: "run_created,run_started,run_finished" },
    {
      onEvent: () => refresh(),
      // After a reconnect (or a hidden tab shown again) events may have been missed: reload.
      onOpen: (() => {
        let first = true;
        return () => (first ? (first = false) : refresh());
      })(),
      onStatus: (st) => {
        live.textContent = st === "live" ? "live" : "reconnecting…";
        live.classList.toggle("on", st === "live");
      },
    }
  );
  ctx.onLeave(() => stream.close());
}
