// A run's log panel: what its stages printed and logged (GET /runs/{id}/logs), filtered by stage
// and level, following a live run through the logs' server-sent event stream.

import { ApiError, get, streamEvents } from "../api.js";
import { enc, errorBox, h, parseTime, replace } from "../dom.js";

const LEVELS = ["", "DEBUG", "INFO", "WARNING", "ERROR"];
/** Lines kept on the page; older ones are dropped (the API still has them). */
export const MAX_LINES = 5000;
const PAGE = 1000;

function clock(value) {
  const d = typeof value === "number" ? new Date(value * 1000) : parseTime(value);
  if (!d || Number.isNaN(d.getTime())) return "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** One record as a line: time, stage[item], level, message. */
export function logLine(rec) {
  const where = rec.stage ? `${rec.stage}${rec.item !== null && rec.item !== undefined ? `[${rec.item}]` : ""}` : "run";
  const level = rec.level || (rec.stream === "stderr" ? "WARNING" : "INFO");
  return h(
    "div",
    { class: `log-line level-${level.toLowerCase()}`, "data-seq": rec.seq, "data-stage": rec.stage || "", "data-level": level },
    h("span", { class: "log-time", title: String(rec.time) }, clock(rec.time)),
    h("span", { class: "log-stage" }, where),
    h("span", { class: "log-level" }, rec.stream && rec.stream !== "log" ? rec.stream : level),
    h("span", { class: "log-msg" }, rec.logger && rec.stream === "log" ? [h("span", { class: "muted" }, `${rec.logger}: `), rec.message] : rec.message)
  );
}

/** The panel: {el, runEnded()}. `stages` are the workflow's stage names; `active` whether the run is live. */
export function logPanel(ctx, run, stages, active) {
  let stage = "";
  let level = "";
  let lastSeq = null;
  let stream = null;
  let count = 0;
  const lines = h("div", { class: "log-lines", "data-role": "log-lines", tabindex: "0" });
  const status = h("span", { class: "live-dot", "data-role": "log-status" }, active ? "connecting…" : "ended");
  const message = h("div");
  const counter = h("span", { class: "muted small", "data-role": "log-count" }, "");
  const follow = h("input", { type: "checkbox", checked: true, "data-role": "log-follow" });
  const stageSel = h(
    "select",
    { name: "log-stage", "aria-label": "stage", onChange: (e) => ((stage = e.target.value), restart()) },
    h("option", { value: "" }, "all stages"),
    stages.map((n) => h("option", { value: n }, n))
  );
  const levelSel = h(
    "select",
    { name: "log-level", "aria-label": "level", onChange: (e) => ((level = e.target.value), restart()) },
    LEVELS.map((l) => h("option", { value: l }, l ? `${l} and above` : "all levels"))
  );

  function showCount() {
    counter.textContent = `${count.toLocaleString("en-US")} line${count === 1 ? "" : "s"}`;
  }

  function add(records) {
    if (!records.length) return;
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 8;
    const frag = document.createDocumentFragment();
    for (const rec of records) {
      if (lastSeq !== null && rec.seq <= lastSeq) continue; // a resumed stream never repeats a line
      lastSeq = rec.seq;
      frag.appendChild(logLine(rec));
      count++;
    }
    lines.querySelector(".log-empty")?.remove();
    lines.appendChild(frag);
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    showCount();
    if (follow.checked && (atBottom || records.length)) lines.scrollTop = lines.scrollHeight;
  }

  function empty() {
    if (!count) replace(lines, h("p", { class: "muted log-empty" }, active ? "No output yet." : "This run logged nothing" + (stage || level ? " that matches." : ".")));
  }

  function setStatus(text, on) {
    status.textContent = text;
    status.classList.toggle("on", !!on);
  }

  async function loadAll() {
    // A run that has ended: its records page by page (after = the last seq seen).
    for (;;) {
      const page = await get(`/runs/${enc(run.uid)}/logs`, { stage, level, after: lastSeq, limit: PAGE }, ctx.signal);
      if (!ctx.alive()) return;
      add(page.items);
      if (page.items.length < PAGE || count >= MAX_LINES) break;
    }
    empty();
  }

  function followLive() {
    stream = streamEvents(`/runs/${enc(run.uid)}/logs`, () => ({ follow: true, stage, level, after: lastSeq }), {
      onStatus: (st) => setStatus(st === "live" ? "following" : "reconnecting…", st === "live"),
      onEvent: (type, data) => {
        if (!ctx.alive()) return;
        if (type === "log") add([data]);
        else if (type === "end") {
          stream.close();
          stream = null;
          active = false;
          setStatus("ended", false);
          empty();
        }
      },
    });
  }

  function restart() {
    if (stream) stream.close();
    stream = null;
    lastSeq = null;
    count = 0;
    replace(lines);
    replace(message);
    showCount();
    if (active) {
      followLive();
      empty();
    } else {
      loadAll().catch((err) => {
        if (err.name === "AbortError") return;
        replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
      });
    }
  }

  ctx.onLeave(() => stream && stream.close());
  restart();
  const el = h(
    "section",
    { class: "card", "data-role": "logs" },
    h(
      "div",
      { class: "card-head" },
      h("h3", { class: "card-title" }, "Logs"),
      h("div", { class: "toolbar tight" }, stageSel, levelSel, h("label", { class: "inline small" }, follow, " follow"), counter, status)
    ),
    message,
    lines
  );
  return {
    el,
    /** The run page saw the run end: a stream still open gets its `end` event from the server. */
    runEnded() {
      if (!stream) setStatus("ended", false);
    },
  };
}
