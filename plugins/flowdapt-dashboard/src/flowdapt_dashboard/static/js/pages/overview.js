// Overview: server, executor and cluster, services' health, counts, runs by state, charts.

import { get } from "../api.js";
import { durationScatter, stackedBars, stateBar, utilisationLines } from "../charts.js";
import { RUN_STATES, errorBox, fmtBytes, fmtNumber, h, replace } from "../dom.js";
import { card, keyValues } from "../widgets.js";

const REFRESH_MS = 10000;

function shortClass(path) {
  return path ? String(path).split(".").pop() : "—";
}

function services(status) {
  const list = Object.entries(status.services || {});
  return h(
    "ul",
    { class: "health-list" },
    list.map(([name, info]) => {
      const ok = info && info.status === "OK";
      return h(
        "li",
        { class: ok ? "ok" : "bad", "data-service": name },
        h("i", { class: "dot" }),
        h("span", { class: "health-name" }, name.replace(/Service$/, "")),
        h("span", { class: "health-state" }, info && info.status ? info.status : "unknown")
      );
    })
  );
}

/** Memory of the cluster, when the executor reports it (Ray, Dask); else this machine's. */
function memoryUsage(env, metrics) {
  const total = env.memory_total ?? env.memory ?? null;
  const used = env.memory_used ?? null;
  if (typeof total === "number" && typeof used === "number" && total > 0) {
    return { label: "cluster memory", used, total, fraction: used / total };
  }
  const latest = series(metrics, "system.memory.utilization", memoryUsed).pop();
  if (latest) return { label: "memory (this machine)", fraction: latest[1] };
  return null;
}

function gauge(label, fraction, detail) {
  const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  return h(
    "div",
    { class: "gauge", "data-gauge": label },
    h("div", { class: "gauge-head" }, h("span", label), h("strong", `${pct}%`)),
    h("div", { class: `gauge-track${pct > 85 ? " hot" : ""}` }, h("div", { class: "gauge-fill", style: `width:${pct}%` })),
    detail ? h("div", { class: "muted small" }, detail) : null
  );
}

/** [[ms, value]] oldest first: the points of one sample (one per attribute set, e.g. per CPU
 * and state, as the original's OpenTelemetry names them) reduced to one value by `reduce`. */
function series(metrics, name, reduce) {
  const byTime = new Map();
  for (const p of (metrics && metrics[name]) || []) {
    if (typeof p.value !== "number") continue;
    const list = byTime.get(p.time_unix_nano);
    if (list) list.push(p);
    else byTime.set(p.time_unix_nano, [p]);
  }
  const out = [];
  for (const [time, points] of byTime) {
    const value = reduce(points);
    if (typeof value === "number" && !Number.isNaN(value)) out.push([time / 1e6, value]);
  }
  return out.reverse(); // the server answers newest first
}

const withState = (points, state) => points.filter((p) => p.attributes && p.attributes.state === state);

/** Busy share of the machine: 1 - the mean idle share over CPUs. */
function cpuBusy(points) {
  const idle = withState(points, "idle");
  return idle.length ? 1 - idle.reduce((sum, p) => sum + p.value, 0) / idle.length : null;
}

function memoryUsed(points) {
  const used = withState(points, "used");
  return used.length ? used[0].value : null;
}

export async function overviewPage(ctx) {
  ctx.setHeader("Overview", { sub: h("p", { class: "muted" }, "Server health and the last 24 hours of runs") });
  const view = h("div", { class: "overview" });
  replace(ctx.body, view);

  async function load() {
    // Only the two series drawn, over the last 30 minutes (the server keeps hours: too much to
    // poll). A sample has a point per CPU and state, and one per memory state.
    const since = new Date(Date.now() - 30 * 60 * 1000).toISOString();
    const metric = (name) => get("/metrics", { name, start_time: since }, ctx.signal).catch(() => ({}));
    const [status, stats, cpuPoints, memPoints] = await Promise.all([
      get("/status", null, ctx.signal),
      get("/ui/api/overview", null, ctx.signal),
      metric("system.cpu.utilization"),
      metric("system.memory.utilization"),
    ]);
    const metrics = { ...cpuPoints, ...memPoints };
    if (!ctx.alive()) return;
    const compute = (status.services || {}).ComputeService || {};
    const env = compute.environment || {};
    const mem = memoryUsage(env, metrics);
    const runs24 = RUN_STATES.reduce((a, st) => a + (stats.runs_by_state[st] || 0), 0);
    const active = (stats.runs_by_state.pending || 0) + (stats.runs_by_state.running || 0);

    const counters = h(
      "div",
      { class: "stat-row" },
      [
        ["Workflows", stats.workflows, "#/workflows"],
        ["Runs (24 h)", runs24, "#/runs?since=24h"],
        ["Active runs", compute.active_runs ?? active, "#/runs?state=running"],
        ["Failed (24 h)", stats.runs_by_state.failed || 0, "#/runs?state=failed&since=24h"],
        ["Runs stored", stats.runs_total, "#/runs"],
      ].map(([label, value, href]) => h("a", { class: "stat", href, "data-stat": label }, h("span", { class: "stat-value" }, fmtNumber(value)), h("span", { class: "stat-label" }, label)))
    );

    const server = card(
      "Server",
      keyValues([
        ["Name", status.name],
        ["Version", status.version],
        ["Host", status.hostname],
        ["Python", status.python],
        ["Database", shortClass(status.database)],
        ["Process memory", fmtBytes(status.system && status.system.memory)],
        status.draining ? ["Draining", h("span", { class: "badge state-cancelled" }, "not accepting runs")] : null,
      ])
    );
    const dash = env.dashboard_url
      ? h("a", { href: env.dashboard_url, target: "_blank", rel: "noopener" }, env.dashboard_url)
      : null;
    const cluster = card(
      "Executor & cluster",
      keyValues([
        ["Executor", compute.executor ? shortClass(compute.executor) : "none (no compute service)"],
        env.mode ? ["Mode", env.mode] : null,
        ["Nodes", Array.isArray(env.nodes) ? env.nodes.length : env.nodes ?? "—"],
        ["CPUs", env.cpus ?? "—"],
        ["Workers", env.workers ?? "—"],
        dash ? ["Cluster dashboard", dash] : null,
      ]),
      mem ? gauge(mem.label, mem.fraction, mem.total ? `${fmtBytes(mem.used)} of ${fmtBytes(mem.total)}` : null) : null,
      status.system ? gauge("CPU (this machine)", (status.system.cpu_pct || 0) / 100) : null
    );
    const health = card("Services", services(status));

    const stateCard = card(
      "Runs by state, last 24 h",
      stateBar(stats.runs_by_state, RUN_STATES, { onClick: (st) => ctx.navigate(`/runs?state=${st}&since=24h`) })
    );
    const throughput = card(
      "Throughput: runs started per hour",
      stackedBars(
        stats.throughput.map((b) => ({ start: b.start, ok: b.started - b.failed, failed: b.failed })),
        [
          { key: "ok", label: "not failed", cls: "state-finished" },
          { key: "failed", label: "failed", cls: "state-failed" },
        ],
        { label: "runs started per hour" }
      )
    );
    const durations = card(
      `Durations of the last ${stats.durations.length} finished runs`,
      stats.durations.length
        ? durationScatter(stats.durations, { onClick: (p) => ctx.navigate(`/runs/${p.uid}`) })
        : h("p", { class: "muted" }, "No finished runs yet.")
    );
    const cpu = series(metrics, "system.cpu.utilization", cpuBusy);
    const memSeries = series(metrics, "system.memory.utilization", memoryUsed);
    const system = card(
      "Machine utilisation (last 30 min)",
      cpu.length || memSeries.length
        ? utilisationLines(
            [
              { label: "CPU", cls: "line-cpu", points: cpu },
              { label: "memory", cls: "line-mem", points: memSeries },
            ],
            { label: "cpu and memory utilisation" }
          )
        : h("p", { class: "muted" }, "No samples yet (the server samples every 5 s).")
    );
    replace(
      view,
      counters,
      h("div", { class: "grid grid-3" }, server, cluster, health),
      stateCard,
      h("div", { class: "grid grid-3" }, throughput, durations, system)
    );
  }

  try {
    await load();
  } catch (err) {
    if (err.name === "AbortError") return;
    if (err.status === 401) throw err;
    replace(view, errorBox(err.message));
  }
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") load().catch(() => {});
  }, REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
