// Workflows: the list (last run from one aggregate request) and a workflow's page (DAG, runs,
// duration and success-rate charts of its recent runs).

import { del, get } from "../api.js";
import { durationScatter, successRate } from "../charts.js";
import { renderDag, isMapStage } from "../dag.js";
import { badge, dotted, durationOf, emptyState, enc, errorBox, fmtDuration, h, link, parseTime, replace, runBadge, timeCell } from "../dom.js";
import { card, confirmDialog, keyValues, table } from "../widgets.js";
import { openRunForm } from "./runform.js";

const PAGE = 50;
/** The charts look at the workflow's runs of the last CHART_DAYS days, at most CHART_RUNS of them. */
const CHART_DAYS = 14;
const CHART_RUNS = 1000;
const ENDED = ["finished", "failed", "cancelled"];

/** Ended runs per local day, oldest first: [{start, finished, failed, cancelled}] for `days` days up to `now`. */
export function dailyOutcomes(runs, days = CHART_DAYS, now = Date.now()) {
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  const buckets = [];
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(today);
    d.setDate(d.getDate() - i);
    buckets.push({ start: d.toISOString().replace("Z", ""), t: d.getTime(), finished: 0, failed: 0, cancelled: 0 });
  }
  for (const r of runs) {
    if (!ENDED.includes(r.state)) continue;
    const t = parseTime(r.started_at)?.getTime();
    if (!t) continue;
    for (let i = buckets.length - 1; i >= 0; i--) {
      if (t >= buckets[i].t) {
        buckets[i][r.state]++;
        break;
      }
    }
  }
  return buckets;
}

function runCharts(ctx, runs) {
  const ended = runs.filter((r) => ENDED.includes(r.state) && r.started_at && r.finished_at);
  if (!ended.length) return card("Run durations and success rate", h("p", { class: "muted" }, `No run of this workflow ended in the last ${CHART_DAYS} days.`));
  const points = ended
    .map((r) => ({ ...r, duration: durationOf(r.started_at, r.finished_at) }))
    .sort((a, b) => (parseTime(a.started_at)?.getTime() || 0) - (parseTime(b.started_at)?.getTime() || 0));
  const finished = ended.filter((r) => r.state === "finished").length;
  const rate = Math.round((100 * finished) / ended.length);
  return h(
    "div",
    { class: "grid grid-2", "data-role": "workflow-charts" },
    card(
      "Run durations",
      h("div", { "data-chart": "durations" }, durationScatter(points, { label: "run durations", onClick: (p) => ctx.navigate(`/runs/${p.uid}`) })),
      h("p", { class: "muted small" }, `${ended.length} ended run${ended.length === 1 ? "" : "s"} in the last ${CHART_DAYS} days · click a dot to open its run`)
    ),
    card(
      "Success rate",
      h("div", { "data-chart": "success-rate" }, successRate(dailyOutcomes(ended))),
      h("p", { class: "muted small", "data-field": "success-rate" }, `${rate}% finished (${finished} of ${ended.length}; failed and cancelled runs count against it)`)
    )
  );
}

export async function deleteResource(ctx, kind, path, name, after) {
  const ok = await confirmDialog(`Delete ${kind} ${name}?`, `The ${kind} ${name} will be removed from the server. This cannot be undone.`);
  if (!ok) return false;
  try {
    await del(`${path}/${enc(name)}`);
  } catch (err) {
    replace(ctx.body.querySelector(".page-message") || ctx.body, errorBox(err.detail || err.message));
    return false;
  }
  after && after();
  return true;
}

export async function workflowsPage(ctx) {
  ctx.setHeader("Workflows", {
    actions: [
      h("button", { type: "button", class: "secondary", onClick: () => openRunForm(ctx) }, "Start run"),
      h("a", { class: "button", href: "#/workflows/new", "data-action": "new-workflow" }, "New workflow"),
    ],
  });
  const filter = h("input", { type: "search", placeholder: "Filter by name or group", class: "filter-input", "aria-label": "filter workflows", value: ctx.query.q || "" });
  const message = h("div", { class: "page-message" });
  const holder = h("div");
  replace(ctx.body, h("div", { class: "toolbar" }, filter), message, holder);
  let all = [];
  let offset = 0;

  function draw() {
    const q = filter.value.trim().toLowerCase();
    const rows = all.filter((w) => !q || w.name.toLowerCase().includes(q) || Object.values(w.annotations || {}).some((v) => String(v).toLowerCase().includes(q)));
    const page = rows.slice(offset, offset + PAGE);
    const columns = [
      { label: "Name", cell: (w) => link(`/workflows/${enc(w.name)}`, w.name, { class: "strong", "data-workflow": w.name }) },
      { label: "Stages", cell: (w) => h("span", { class: "cell-stack" }, `${w.stages}`, w.map_stages.length ? h("span", { class: "chip map", title: w.map_stages.join(", ") }, `${w.map_stages.length} map`) : null) },
      { label: "Group", cell: (w) => (w.annotations && w.annotations.group) || h("span", { class: "muted" }, "—") },
      { label: "Last run", cell: (w) => (w.last_run ? h("span", { class: "cell-stack" }, badge(w.last_run.state), " ", link(`/runs/${w.last_run.uid}`, w.last_run.name, { class: "small" })) : h("span", { class: "muted" }, "never run")) },
      { label: "Started", cell: (w) => (w.last_run ? timeCell(w.last_run.started_at) : "—") },
      { label: "Duration", cls: "num", cell: (w) => (w.last_run ? fmtDuration(w.last_run.duration) : "—") },
      { label: "Runs 24 h", cls: "num", cell: (w) => (w.runs_24h ? link(`/runs?workflow=${enc(w.name)}&since=24h`, String(w.runs_24h)) : "0") },
      {
        label: "",
        cls: "actions",
        cell: (w) => [
          h("button", { type: "button", class: "small secondary", onClick: () => openRunForm(ctx, w.name), "data-action": "run" }, "Run"),
          h("a", { class: "button small secondary", href: `#/workflows/${enc(w.name)}/edit` }, "Edit"),
          h("button", { type: "button", class: "small danger-outline", "data-action": "delete", onClick: () => deleteResource(ctx, "workflow", "/workflows", w.name, load) }, "Delete"),
        ],
      },
    ];
    const pageNav =
      rows.length > PAGE
        ? h(
            "div",
            { class: "pager" },
            h("button", { type: "button", class: "secondary", disabled: offset === 0, onClick: () => ((offset -= PAGE), draw()) }, "‹ Prev"),
            h("span", { class: "pager-info" }, `${offset + 1}–${Math.min(offset + PAGE, rows.length)} of ${rows.length}`),
            h("button", { type: "button", class: "secondary", disabled: offset + PAGE >= rows.length, onClick: () => ((offset += PAGE), draw()) }, "Next ›")
          )
        : null;
    replace(
      holder,
      all.length
        ? [table(columns, page, { empty: "No workflow matches the filter." }), pageNav]
        : emptyState("No workflows yet. Create one from YAML.", h("a", { class: "button", href: "#/workflows/new" }, "New workflow"))
    );
  }

  async function load() {
    all = await get("/ui/api/workflows", null, ctx.signal);
    if (!ctx.alive()) return;
    all.sort((a, b) => a.name.localeCompare(b.name));
    draw();
  }
  filter.addEventListener("input", () => {
    offset = 0;
    draw();
  });
  await load();
}

export async function workflowPage(ctx, name) {
  const since = new Date(Date.now() - CHART_DAYS * 86400e3).toISOString().replace("Z", "");
  const [workflow, runs, recent] = await Promise.all([
    get(`/workflows/${enc(name)}`, null, ctx.signal),
    get("/runs", { workflow: name, limit: 15, include_result: false }, ctx.signal),
    get("/runs", { workflow: name, since, limit: CHART_RUNS, include_result: false }, ctx.signal).catch(() => ({ items: [] })),
  ]);
  if (!ctx.alive()) return;
  const stages = workflow.spec.stages;
  const ann = workflow.metadata.annotations || {};
  ctx.setHeader(name, {
    crumbs: [["Workflows", "/workflows"]],
    sub: workflow.metadata.annotations && ann.group ? h("span", { class: "chip" }, `group: ${ann.group}`) : null,
    actions: [
      h("button", { type: "button", "data-action": "run", onClick: () => openRunForm(ctx, name) }, "Run"),
      h("a", { class: "button secondary", href: `#/workflows/${enc(name)}/edit`, "data-action": "edit" }, "Edit YAML"),
      h("button", { type: "button", class: "danger-outline", "data-action": "delete", onClick: () => deleteResource(ctx, "workflow", "/workflows", name, () => ctx.navigate("/workflows")) }, "Delete"),
    ],
  });
  const dag = renderDag(stages, {
    onSelect: (stage) => {
      const row = ctx.body.querySelector(`tr[data-stage="${CSS.escape(stage)}"]`);
      if (row) {
        row.scrollIntoView({ block: "center", behavior: "smooth" });
        row.classList.add("flash");
        setTimeout(() => row.classList.remove("flash"), 1200);
      }
    },
  });
  const lastRun = runs.items[0];
  if (lastRun) dag.update(lastRun.stages);
  const stageTable = table(
    [
      { label: "Stage", cell: (st) => h("strong", st.name) },
      { label: "Type", cell: (st) => (isMapStage(st) ? h("span", { class: "chip map" }, "map") : st.type || "simple") },
      { label: "Target", cell: (st) => dotted(st.target) },
      { label: "Depends on", cell: (st) => (st.depends_on || []).join(", ") || h("span", { class: "muted" }, "— (root)") },
      stages.some((st) => Object.keys(st.options || {}).length)
        ? { label: "Options", cell: (st) => (Object.keys(st.options || {}).length ? h("code", JSON.stringify(st.options)) : "") }
        : null,
      stages.some((st) => Object.keys(st.resources || {}).length)
        ? { label: "Resources", cell: (st) => (Object.keys(st.resources || {}).length ? h("code", JSON.stringify(st.resources)) : "") }
        : null,
    ].filter(Boolean),
    stages,
    { rowAttrs: (st) => ({ "data-stage": st.name }) }
  );
  const runTable = table(
    [
      { label: "Run", cell: (r) => link(`/runs/${r.uid}`, r.name) },
      { label: "State", cell: (r) => runBadge(r) },
      { label: "Source", cell: (r) => r.source || "" },
      { label: "Started", cell: (r) => timeCell(r.started_at) },
      { label: "Duration", cls: "num", cell: (r) => fmtDuration(r.finished_at ? durationOf(r.started_at, r.finished_at) : null) },
    ],
    runs.items,
    { empty: "This workflow has not run yet." }
  );
  replace(
    ctx.body,
    h("div", { class: "page-message" }),
    card(
      "Graph",
      dag.el,
      h(
        "p",
        { class: "muted small" },
        `${stages.length} stages · ${stages.filter(isMapStage).length} map stages · `,
        lastRun ? ["colours show the last run, ", link(`/runs/${lastRun.uid}`, lastRun.name), " · "] : null,
        "click a stage to find it below"
      )
    ),
    h(
      "div",
      { class: "grid grid-2-1" },
      card("Stages", stageTable),
      card(
        "Details",
        keyValues([
          ["uid", h("code", workflow.metadata.uid)],
          ["Created", timeCell(workflow.metadata.created_at)],
          ["Updated", timeCell(workflow.metadata.updated_at)],
          ...Object.entries(ann).map(([k, v]) => [k, v]),
        ])
      )
    ),
    runCharts(ctx, recent.items),
    card(
      "Recent runs",
      runTable,
      runs.total > runs.items.length ? h("p", link(`/runs?workflow=${enc(name)}`, `All ${runs.total.toLocaleString("en-US")} runs →`)) : null
    )
  );
}
