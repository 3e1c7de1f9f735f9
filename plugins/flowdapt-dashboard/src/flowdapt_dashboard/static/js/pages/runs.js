// Runs across workflows: filters in the URL (state, workflow, since), server-side pages,
// refreshed when the event stream says a run started or ended.

import { get, subscribe } from "../api.js";
import { RUN_STATES, badge, debounce, durationOf, enc, fmtDuration, h, link, replace, timeCell } from "../dom.js";
import { pager, table } from "../widgets.js";
import { openRunForm } from "./runform.js";

const LIMIT = 50;
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
  const done = stages.filter((s) => ["finished", "failed", "skipped", "cancelled"].includes(s.state)).length;
  const failed = stages.filter((s) => s.state === "failed").length;
  return h("span", { class: "small" }, `${done}/${stages.length} stages`, failed ? h("span", { class: "text-failed" }, ` · ${failed} failed`) : null);
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
      Object.keys(q).some((k) => ["state", "workflow", "since"].includes(k) && q[k]) ? h("button", { type: "button", class: "link-button", onClick: () => ctx.navigate("/runs") }, "clear filters") : null,
      h("span", { class: "spacer" }),
      live
    ),
    holder
  );

  async function load() {
    const page = await get(
      "/runs",
      { state: q.state, workflow: q.workflow, since: sinceParam(q.since), limit: LIMIT, offset, include_result: false },
      ctx.signal
    );
    if (!ctx.alive()) return;
    const columns = [
      { label: "Run", cell: (r) => link(`/runs/${r.uid}`, r.name, { class: "strong", "data-run": r.name }) },
      { label: "Workflow", cell: (r) => link(`/workflows/${enc(r.workflow)}`, r.workflow) },
      { label: "State", cell: (r) => badge(r.state) },
      { label: "Progress", cell: stageProgress },
      { label: "Source", cell: (r) => (r.triggered_by && r.triggered_by.rule ? `trigger ${r.triggered_by.rule}` : r.source || "") },
      { label: "Started", cell: (r) => timeCell(r.started_at) },
      { label: "Duration", cls: "num", cell: (r) => fmtDuration(durationOf(r.started_at, r.finished_at)) },
    ];
    replace(
      holder,
      table(columns, page.items, { empty: page.total ? "No runs on this page." : "No runs match these filters." }),
      page.total > LIMIT || offset ? pager({ offset, limit: LIMIT, total: page.total, onPage: (o) => setQuery({ offset: Math.max(0, o) }) }) : h("p", { class: "muted small" }, `${page.total.toLocaleString("en-US")} run${page.total === 1 ? "" : "s"}`)
    );
  }

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
