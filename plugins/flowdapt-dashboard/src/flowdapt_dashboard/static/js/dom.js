// Small DOM helpers: element builders (text always goes through textContent, never innerHTML),
// time and duration formatting, state badges.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** h("div", {class: "x", onClick: fn}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs && (attrs instanceof Node || Array.isArray(attrs) || typeof attrs !== "object")) {
    children.unshift(attrs);
    attrs = null;
  }
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** The API's timestamps are naive UTC ("2026-01-02T03:04:05.123456"): read them as UTC. */
export function parseTime(value) {
  if (!value) return null;
  if (value instanceof Date) return value;
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : value + "Z";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(value) {
  const d = parseTime(value);
  if (!d) return "—";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtAgo(value, now = Date.now()) {
  const d = parseTime(value);
  if (!d) return "—";
  const sec = Math.round((now - d.getTime()) / 1000);
  const future = sec < 0;
  const a = Math.abs(sec);
  let text;
  if (a < 5) return future ? "in a moment" : "just now";
  if (a < 60) text = `${a}s`;
  else if (a < 3600) text = `${Math.floor(a / 60)}m`;
  else if (a < 86400) text = `${Math.floor(a / 3600)}h ${Math.floor((a % 3600) / 60)}m`;
  else text = `${Math.floor(a / 86400)}d ${Math.floor((a % 86400) / 3600)}h`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A time cell: relative text, absolute time in the tooltip. */
export function timeCell(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: value, title: fmtTime(value) + " (local)" }, fmtAgo(value));
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 0) seconds = 0;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(seconds % 60))}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${pad(m % 60)}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** Seconds between two API timestamps; an open end counts up to now. */
export function durationOf(start, end, now = Date.now()) {
  const a = parseTime(start);
  if (!a) return null;
  const b = parseTime(end);
  return ((b ? b.getTime() : now) - a.getTime()) / 1000;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtNumber(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

export const RUN_STATES = ["pending", "running", "finished", "failed", "cancelled"];

export function badge(state) {
  return h("span", { class: `badge state-${state || "unknown"}`, "data-state": state || "" }, state || "unknown");
}

/** "queued · #2" for a run waiting (pending) for a slot under the server's run limits, else "". */
export function queueText(run) {
  const position = run && run.state === "pending" ? run.queue_position : null;
  return Number.isInteger(position) && position > 0 ? `queued · #${position}` : "";
}

/** A run's state badge, followed by its place in the queue while it waits for a slot. */
export function runBadge(run) {
  const queued = queueText(run);
  if (!queued) return badge(run.state);
  return h(
    "span",
    { class: "run-state" },
    badge(run.state),
    " ",
    h("span", { class: "chip queued", "data-role": "queue-position", "data-position": String(run.queue_position), title: "waits for a free slot (executor.max_concurrent_runs or the workflow's spec.max_active_runs); 1 starts next" }, queued)
  );
}

export function errorBox(message, extra) {
  return h("div", { class: "alert error", role: "alert" }, h("strong", "Error: "), message, extra || null);
}

export function emptyState(text, action) {
  return h("div", { class: "empty" }, h("p", text), action || null);
}

/** "abc" → link to the hash route. */
export function link(route, text, attrs = {}) {
  return h("a", { href: "#" + route, ...attrs }, text);
}

export function enc(value) {
  return encodeURIComponent(value);
}

/** A button that shows a busy state while its async handler runs. */
export function actionButton(label, handler, attrs = {}) {
  const btn = h("button", { type: "button", ...attrs }, label);
  btn.addEventListener("click", async (event) => {
    if (btn.disabled) return;
    btn.disabled = true;
    btn.classList.add("busy");
    try {
      await handler(event);
    } finally {
      btn.disabled = false;
      btn.classList.remove("busy");
    }
  });
  return btn;
}

/** A dotted name in <code>, breakable after each dot (no breaks inside words). */
export function dotted(text, attrs = {}) {
  const parts = String(text ?? "").split(/(?<=[.:])/);
  const el = h("code", { title: text, ...attrs });
  parts.forEach((part, i) => {
    if (i) el.appendChild(document.createElement("wbr"));
    el.appendChild(document.createTextNode(part));
  });
  return el;
}

export function shortTarget(target) {
  if (!target) return "";
  const parts = String(target).split(/[.:]/);
  return parts.slice(-2).join(".");
}

export function debounce(fn, wait) {
  let timer = null;
  let last = 0;
  return (...args) => {
    if (timer) return;
    const delay = Math.max(0, wait - (Date.now() - last));
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn(...args);
    }, delay);
  };
}
