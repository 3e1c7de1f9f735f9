// Small SVG charts: stacked bars over time, a scatter of durations, utilisation lines, a state bar.

import { fmtDuration, h, parseTime, s } from "./dom.js";

const W = 380;
const H = 190;
const M = { top: 10, right: 10, bottom: 24, left: 50 };

function niceMax(value) {
  if (value <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= value) return step * exp;
  return 10 * exp;
}

function frame(yMax, yFormat, ticks = 4) {
  const g = s("g", { class: "chart-axis" });
  const plotH = H - M.top - M.bottom;
  for (let i = 0; i <= ticks; i++) {
    const v = (yMax * i) / ticks;
    const y = M.top + plotH - (plotH * i) / ticks;
    g.appendChild(s("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: i === 0 ? "chart-baseline" : "chart-grid" }));
    g.appendChild(s("text", { x: M.left - 6, y: y + 4, "text-anchor": "end", class: "chart-label" }, yFormat(v)));
  }
  return g;
}

function svgRoot(label) {
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
}

function hourLabel(date) {
  return `${String(date.getHours()).padStart(2, "0")}:00`;
}

/** Stacked bars: buckets [{start, ...values}], series [{key, label, cls}]. */
export function stackedBars(buckets, series, { label = "chart", valueName = "runs" } = {}) {
  const svg = svgRoot(label);
  const totals = buckets.map((b) => series.reduce((a, sr) => a + (b[sr.key] || 0), 0));
  const yMax = niceMax(Math.max(4, ...totals)); // counts: at least 4 so every tick is a whole number
  svg.appendChild(frame(yMax, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1))));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const step = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, step * 0.72);
  buckets.forEach((b, i) => {
    let y = M.top + plotH;
    const x = M.left + i * step + (step - barW) / 2;
    const start = parseTime(b.start);
    const parts = [];
    for (const sr of series) {
      const v = b[sr.key] || 0;
      if (!v) continue;
      const hgt = (plotH * v) / yMax;
      y -= hgt;
      parts.push(`${sr.label}: ${v}`);
      svg.appendChild(s("rect", { x, y, width: barW, height: hgt, class: `chart-bar ${sr.cls}` }));
    }
    const hover = s("rect", { x: M.left + i * step, y: M.top, width: step, height: plotH, class: "chart-hover" });
    hover.appendChild(s("title", {}, `${start ? hourLabel(start) : ""} — ${totals[i]} ${valueName}${parts.length ? "\n" + parts.join("\n") : ""}`));
    svg.appendChild(hover);
    if (start && (buckets.length <= 12 || i % Math.ceil(buckets.length / 8) === 0)) {
      svg.appendChild(s("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle", class: "chart-label" }, hourLabel(start)));
    }
  });
  return wrapChart(svg, series);
}

/** Durations of recent runs, oldest left: points [{started_at, duration, state, name}]. */
export function durationScatter(points, { label = "run durations", onClick } = {}) {
  const svg = svgRoot(label);
  const yMax = niceMax(Math.max(0, ...points.map((p) => p.duration || 0)));
  svg.appendChild(frame(yMax, (v) => fmtDuration(v).replace(".00", "")));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const times = points.map((p) => parseTime(p.started_at)?.getTime() || 0);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = Math.max(1, t1 - t0);
  points.forEach((p, i) => {
    const x = M.left + (points.length === 1 ? plotW / 2 : (plotW * (times[i] - t0)) / span);
    const y = M.top + plotH - (plotH * (p.duration || 0)) / yMax;
    const dot = s("circle", { cx: x, cy: y, r: 3.5, class: `chart-dot state-${p.state}` });
    dot.appendChild(s("title", {}, `${p.name} (${p.workflow})\n${p.state}, ${fmtDuration(p.duration)}`));
    if (onClick) dot.addEventListener("click", () => onClick(p));
    svg.appendChild(dot);
  });
  if (points.length) {
    const fmt = (t) => {
      const d = new Date(t);
      return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    };
    svg.appendChild(s("text", { x: M.left, y: H - 8, class: "chart-label" }, fmt(t0)));
    svg.appendChild(s("text", { x: W - M.right, y: H - 8, "text-anchor": "end", class: "chart-label" }, fmt(t1)));
  }
  return wrapChart(svg, [
    { label: "finished", cls: "state-finished" },
    { label: "failed", cls: "state-failed" },
    { label: "cancelled", cls: "state-cancelled" },
  ]);
}

/** Lines of fractions (0..1) over time: series [{label, cls, points: [[t_ms, v]]}]. */
export function utilisationLines(series, { label = "utilisation" } = {}) {
  const svg = svgRoot(label);
  svg.appendChild(frame(100, (v) => `${Math.round(v)}%`));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const all = series.flatMap((sr) => sr.points.map((p) => p[0]));
  if (!all.length) return wrapChart(svg, series);
  const t0 = Math.min(...all);
  const span = Math.max(1, Math.max(...all) - t0);
  for (const sr of series) {
    if (!sr.points.length) continue;
    const d = sr.points
      .map(([t, v], i) => `${i ? "L" : "M"} ${(M.left + (plotW * (t - t0)) / span).toFixed(1)} ${(M.top + plotH - plotH * Math.min(1, Math.max(0, v))).toFixed(1)}`)
      .join(" ");
    const path = s("path", { d, class: `chart-line ${sr.cls}` });
    const lastV = sr.points[sr.points.length - 1][1];
    path.appendChild(s("title", {}, `${sr.label}: ${(lastV * 100).toFixed(1)}% now`));
    svg.appendChild(path);
  }
  const fmt = (t) => {
    const d = new Date(t);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  };
  svg.appendChild(s("text", { x: M.left, y: H - 8, class: "chart-label" }, fmt(t0)));
  svg.appendChild(s("text", { x: W - M.right, y: H - 8, "text-anchor": "end", class: "chart-label" }, fmt(t0 + span)));
  return wrapChart(svg, series);
}

function wrapChart(svg, series) {
  const legend = h(
    "div",
    { class: "chart-legend" },
    series.map((sr) => h("span", { class: "legend-item" }, h("i", { class: `swatch ${sr.cls}` }), sr.label))
  );
  return h("div", { class: "chart-wrap" }, svg, legend);
}

/** One horizontal bar split by state, with the counts as a legend. */
export function stateBar(counts, states, { onClick } = {}) {
  const total = states.reduce((a, st) => a + (counts[st] || 0), 0);
  const bar = h("div", { class: "state-bar", role: "img", "aria-label": "runs by state" });
  for (const st of states) {
    const v = counts[st] || 0;
    if (!v) continue;
    const seg = h("div", { class: `state-bar-seg state-${st}`, style: `flex-grow:${v}`, title: `${st}: ${v}` });
    bar.appendChild(seg);
  }
  if (!total) bar.appendChild(h("div", { class: "state-bar-seg empty-seg", style: "flex-grow:1" }));
  const legend = h(
    "div",
    { class: "state-legend" },
    states.map((st) =>
      h(
        onClick ? "button" : "span",
        { class: "state-legend-item", type: onClick ? "button" : null, onClick: onClick ? () => onClick(st) : null, "data-state": st },
        h("i", { class: `swatch state-${st}` }),
        h("span", { class: "state-legend-name" }, st),
        h("strong", { class: "state-count" }, String(counts[st] || 0))
      )
    )
  );
  return h("div", { class: "state-bar-wrap" }, bar, legend);
}

/** A progress bar: done/total with a failed part. */
export function progressBar(done, total, failed = 0) {
  const pct = total ? Math.min(100, (100 * done) / total) : 0;
  const okPct = total ? (100 * (done - failed)) / total : 0;
  const badPct = total ? (100 * failed) / total : 0;
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total || 0, "aria-valuenow": done, title: `${done}/${total} items, ${failed} failed` },
    h("div", { class: "progress-ok", style: `width:${okPct.toFixed(2)}%` }),
    h("div", { class: "progress-bad", style: `width:${badPct.toFixed(2)}%` }),
    h("span", { class: "progress-text" }, `${done}/${total}${failed ? ` · ${failed} failed` : ""} · ${Math.floor(pct)}%`)
  );
}

/**
 * A Gantt of a run's stages: rows [{name, state, started_at, finished_at}] in workflow order, each
 * a bar from its start to its end (or `now` while it runs). Stages that never started get no bar.
 */
export function stageTimeline(rows, { now = Date.now(), runStart = null, runEnd = null } = {}) {
  const rowH = 22;
  const left = 130;
  const right = 16;
  const width = 760;
  const top = 6;
  const height = top + rows.length * rowH + 22;
  const spans = rows.map((r) => {
    const a = parseTime(r.started_at)?.getTime();
    const b = parseTime(r.finished_at)?.getTime();
    return a ? [a, b || (r.state === "running" ? now : a)] : null;
  });
  const known = spans.filter(Boolean);
  const t0 = Math.min(parseTime(runStart)?.getTime() ?? Infinity, ...known.map((x) => x[0]));
  const t1 = Math.max(parseTime(runEnd)?.getTime() ?? -Infinity, ...known.map((x) => x[1]), Number.isFinite(t0) ? t0 + 1 : 1);
  const span = Math.max(1, t1 - t0);
  const plotW = width - left - right;
  const x = (t) => left + (plotW * (t - t0)) / span;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart timeline", role: "img", "aria-label": "stage timeline", "data-role": "timeline" });
  for (let i = 0; i <= 4; i++) {
    const gx = left + (plotW * i) / 4;
    svg.appendChild(s("line", { x1: gx, x2: gx, y1: top, y2: height - 18, class: "chart-grid" }));
    if (Number.isFinite(t0)) svg.appendChild(s("text", { x: gx, y: height - 5, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "chart-label" }, `+${fmtDuration((span * i) / 4000)}`));
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const g = s("g", { class: "timeline-row", "data-stage": r.name, "data-state": r.state || "pending" });
    g.appendChild(s("text", { x: left - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "chart-label timeline-name" }, r.name.length > 18 ? r.name.slice(0, 17) + "…" : r.name));
    const sp = spans[i];
    if (sp && Number.isFinite(t0)) {
      const bx = x(sp[0]);
      const bw = Math.max(2, x(sp[1]) - bx);
      const bar = s("rect", { x: bx, y: y + 4, width: bw, height: rowH - 8, rx: 3, class: `timeline-bar state-${r.state || "pending"}` });
      bar.appendChild(s("title", {}, `${r.name}: ${r.state}, ${fmtDuration((sp[1] - sp[0]) / 1000)} (from +${fmtDuration((sp[0] - t0) / 1000)})`));
      g.appendChild(bar);
    } else {
      g.appendChild(s("text", { x: left + 4, y: y + rowH / 2 + 4, class: "chart-label" }, r.state === "skipped" ? "skipped" : "not started"));
    }
    svg.appendChild(g);
  });
  return h("div", { class: "chart-wrap timeline-wrap" }, svg);
}

/** Success rate per bucket (a day): buckets [{start, finished, failed, cancelled}], a line of % with the run count as bars. */
export function successRate(buckets, { label = "success rate" } = {}) {
  const svg = svgRoot(label);
  svg.appendChild(frame(100, (v) => `${Math.round(v)}%`));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const step = plotW / Math.max(1, buckets.length);
  const counts = buckets.map((b) => (b.finished || 0) + (b.failed || 0) + (b.cancelled || 0));
  const most = Math.max(1, ...counts);
  const points = [];
  buckets.forEach((b, i) => {
    const cx = M.left + i * step + step / 2;
    const n = counts[i];
    const barH = (plotH * 0.35 * n) / most;
    svg.appendChild(s("rect", { x: cx - step * 0.3, y: M.top + plotH - barH, width: step * 0.6, height: barH, class: "chart-bar volume" }));
    const start = parseTime(b.start);
    const day = start ? `${start.getMonth() + 1}/${start.getDate()}` : "";
    if (n) {
      const rate = (b.finished || 0) / n;
      const cy = M.top + plotH - plotH * rate;
      points.push([cx, cy]);
      const dot = s("circle", { cx, cy, r: 3.5, class: `chart-dot ${rate >= 0.999 ? "state-finished" : "state-failed"}`, "data-rate": rate.toFixed(3) });
      dot.appendChild(s("title", {}, `${day}: ${Math.round(rate * 100)}% of ${n} run${n === 1 ? "" : "s"} finished`));
      svg.appendChild(dot);
    }
    if (start && (buckets.length <= 10 || i % Math.ceil(buckets.length / 7) === 0)) {
      svg.appendChild(s("text", { x: cx, y: H - 8, "text-anchor": "middle", class: "chart-label" }, day));
    }
  });
  if (points.length > 1) svg.insertBefore(s("path", { d: points.map(([px, py], i) => `${i ? "L" : "M"} ${px.toFixed(1)} ${py.toFixed(1)}`).join(" "), class: "chart-line rate-line" }), svg.querySelector("circle"));
  return wrapChart(svg, [
    { label: "finished / ended runs", cls: "state-finished" },
    { label: "runs per day", cls: "volume" },
  ]);
}
