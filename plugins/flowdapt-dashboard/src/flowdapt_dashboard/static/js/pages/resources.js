// Configs and trigger rules (list, view, delete), and the YAML editor for every resource kind.

import { dump, load } from "../../vendor/js-yaml.mjs";
import { ApiError, fillPath, findPath, get, post, put, subscribe } from "../api.js";
import { renderDag } from "../dag.js";
import { debounce, emptyState, enc, errorBox, fmtTime, h, link, replace, timeCell } from "../dom.js";
import { card, codeEditor, jsonTree, keyValues, table } from "../widgets.js";
import { deleteResource } from "./workflows.js";

export const KINDS = {
  workflow: { path: "/workflows", route: "/workflows", label: "workflow", title: "Workflows" },
  config: { path: "/configs", route: "/configs", label: "config", title: "Configs" },
  trigger_rule: { path: "/triggers", route: "/triggers", label: "trigger rule", title: "Trigger rules" },
};

const TEMPLATES = {
  workflow: `kind: workflow
metadata:
  name: my-workflow
  annotations:
    group: examples
spec:
  stages:
    - name: make_items
      target: mypackage.stages.make_items
    - name: process
      target: mypackage.stages.process
      type: parameterized      # a map stage: one call per item of make_items' list
      depends_on: [make_items]
    - name: summarize
      target: mypackage.stages.summarize
      depends_on: [process]
`,
  config: `kind: config
metadata:
  name: my-config
spec:
  selector:
    type: name          # or: annotation (value is then a mapping)
    value: my-workflow
  data:
    learning_rate: 0.01
`,
  trigger_rule: `kind: trigger_rule
metadata:
  name: nightly
spec:
  type: schedule        # or: condition (rule is then a condition on an event)
  rule:
    - "0 3 * * *"
  action:
    target: run_workflow
    parameters:
      workflow: my-workflow
`,
};

const EMPTY = (v) => v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length) || (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length);

/** What a person edits: kind, name, annotations and spec; no server-owned fields or empty defaults. */
export function editableDocument(resource) {
  const meta = { name: resource.metadata.name };
  const ann = Object.fromEntries(Object.entries(resource.metadata.annotations || {}).filter(([k]) => !k.startsWith("flowdapt.ai/")));
  if (Object.keys(ann).length) meta.annotations = ann;
  const spec = JSON.parse(JSON.stringify(resource.spec || {}));
  if (resource.kind === "workflow" && Array.isArray(spec.stages)) {
    spec.stages = spec.stages.map((st) => {
      const out = {};
      for (const [k, v] of Object.entries(st)) if (["name", "target"].includes(k) || (!EMPTY(v) && !(k === "type" && v === "simple"))) out[k] = v;
      return out;
    });
  }
  if (resource.kind === "trigger_rule" && spec.action && EMPTY(spec.action.parameters)) delete spec.action.parameters;
  return { kind: resource.kind, metadata: meta, spec };
}

export function toYaml(resource) {
  return dump(editableDocument(resource), { lineWidth: 110, noRefs: true });
}

function selectorText(sel) {
  if (!sel) return h("span", { class: "muted" }, "none (applies to no workflow)");
  const value = typeof sel.value === "object" && sel.value !== null ? Object.entries(sel.value).map(([k, v]) => `${k}=${v}`).join(", ") : String(sel.value ?? "");
  return h("span", h("span", { class: "chip" }, sel.type || "name"), " ", value, sel.kind ? h("span", { class: "muted" }, ` (kind ${sel.kind})`) : null);
}

const INFIX = { eq: "==", ne: "!=", gt: ">", lt: "<", ge: ">=", le: "<=" };

/** A condition rule as an expression: {and: [{eq: [{var: a}, 1]}, ...]} → a == 1 and ... */
export function conditionText(node, top = true) {
  if (node === null || typeof node !== "object" || Array.isArray(node)) return JSON.stringify(node);
  const [op, raw] = Object.entries(node)[0] || [];
  const args = Array.isArray(raw) ? raw : [raw];
  if (op === "var") return String(args[0]);
  if (INFIX[op] && args.length === 2) return `${conditionText(args[0], false)} ${INFIX[op]} ${conditionText(args[1], false)}`;
  if (op === "and" || op === "or") {
    const text = args.map((a) => conditionText(a, false)).join(` ${op} `);
    return top ? text : `(${text})`;
  }
  if (op === "not") return `not ${conditionText(args[0], false)}`;
  return `${op}(${args.map((a) => conditionText(a, false)).join(", ")})`;
}

function ruleText(spec) {
  if (Array.isArray(spec.rule)) return h("span", spec.rule.map((r) => h("code", { class: "cron" }, r)));
  if (typeof spec.rule === "string") return h("code", { class: "cron" }, spec.rule);
  const text = conditionText(spec.rule);
  return h("code", { title: JSON.stringify(spec.rule, null, 1) }, text.length > 110 ? text.slice(0, 109) + "…" : text);
}

function actionText(spec) {
  const action = spec.action || {};
  const params = action.parameters || action.params || {};
  return h("span", h("code", action.target || "?"), params.workflow ? [" → ", link(`/workflows/${enc(params.workflow)}`, params.workflow)] : null);
}

const FIRE_FIELDS = {
  next: ["next_fire", "next_fire_at", "next_fire_time", "next_run", "next_run_at", "next"],
  last: ["last_fire", "last_fired_at", "last_fire_at", "last_fire_time", "last_run", "last_run_at", "last"],
};

/** Next/last fire times wherever the server puts them: top level, `status`, `state` or `schedule`. */
export function fireTimes(rule) {
  const places = [rule, rule.status, rule.state, rule.schedule, rule.fires, (rule.metadata || {}).annotations].filter((p) => p && typeof p === "object");
  const pick = (names) => {
    for (const place of places) for (const n of names) if (place[n] && typeof place[n] !== "object") return place[n];
    for (const place of places) for (const n of names) if (place[n] && typeof place[n] === "object" && place[n].time) return place[n].time;
    return null;
  };
  return { next: pick(FIRE_FIELDS.next), last: pick(FIRE_FIELDS.last) };
}

/** A fire's outcome as a badge: green "fired", red "failed". */
export function outcomeBadge(outcome) {
  const o = outcome || "unknown";
  return h("span", { class: `badge outcome-${o}`, "data-outcome": o }, o);
}

function lastOutcome(rule) {
  const last = (rule.status || {}).last_outcome;
  if (!last) return h("span", { class: "muted" }, "—");
  return h("span", { "data-field": "last-outcome", title: last.error ? [].concat(last.error).join(": ") : "" }, outcomeBadge(last.outcome), last.manual ? h("span", { class: "muted small" }, " by hand") : null);
}

/** The rule's fires, newest first (GET /triggers/{id}/history), a failed one in red. */
async function historyCard(ctx, name, holder) {
  let page;
  try {
    page = await get(`/triggers/${enc(name)}/history`, { limit: 50 }, ctx.signal);
  } catch (err) {
    if (err.name === "AbortError") return;
    replace(holder, card("History", h("p", { class: "muted" }, err instanceof ApiError && err.status === 404 ? "This server keeps no fire history." : err.message)));
    return;
  }
  if (!ctx.alive()) return;
  const what = (f) => {
    if (f.outcome === "failed") return h("code", { class: "text-failed", "data-role": "fire-error" }, [].concat(f.error || "failed").join(": "));
    if (f.run) return ["started ", link(`/runs/${enc(f.run)}`, f.run.slice(0, 8), { "data-role": "fire-run" })];
    if (f.result !== undefined && f.result !== null) return h("code", typeof f.result === "string" ? f.result : JSON.stringify(f.result).slice(0, 120));
    return "";
  };
  replace(
    holder,
    card(
      "History",
      table(
        [
          { label: "Time", cls: "nowrap", cell: (f) => h("span", { title: fmtTime(f.time) }, timeCell(f.time)) },
          { label: "Outcome", cell: (f) => outcomeBadge(f.outcome) },
          { label: "How", cell: (f) => (f.manual ? "by hand" : f.due ? "on schedule" : f.event ? "on event" : "") },
          { label: "Run / error", cell: what },
        ],
        page.items || [],
        { empty: "This rule has not fired yet.", rowAttrs: (f) => ({ "data-fire": f.id || "", "data-outcome": f.outcome, class: f.outcome === "failed" ? "row-failed" : null }) }
      )
    )
  );
}

async function fireEndpoint() {
  return findPath(["/triggers/{}/fire", "/triggers/{}/run", "/triggers/{}/trigger"], "post");
}

function fireButton(ctx, name, template, message, after) {
  if (!template) return null;
  return h(
    "button",
    {
      type: "button",
      class: "small",
      "data-action": "fire",
      onClick: async (e) => {
        const btn = e.currentTarget;
        btn.disabled = true;
        try {
          const out = await post(fillPath(template, name), {});
          if (out && out.fired === false) {
            const why = Array.isArray(out.error) ? out.error.join(": ") : out.error || (out.matched === false ? "the condition did not match" : "the action did not run");
            replace(message, h("div", { "data-role": "fire-failed" }, errorBox(`${name} did not fire: ${why}`)));
            after && after();
            return;
          }
          const result = (out && out.result) || {};
          const started = result.uid
            ? [" Started run ", link(`/runs/${result.uid}`, result.name || result.uid), "."]
            : result.workflow
              ? [" A run of ", link(`/runs?workflow=${enc(result.workflow)}`, result.workflow), " was requested."]
              : null;
          replace(message, h("div", { class: "alert ok", "data-role": "fired" }, `Fired ${name}.`, started));
          after && after();
        } catch (err) {
          replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
        } finally {
          btn.disabled = false;
        }
      },
    },
    "Fire now"
  );
}

export async function resourceListPage(ctx, kind) {
  const info = KINDS[kind];
  ctx.setHeader(info.title, { actions: [h("a", { class: "button", href: `#${info.route}/new`, "data-action": "new" }, `New ${info.label}`)] });
  const message = h("div", { class: "page-message" });
  const holder = h("div");
  replace(ctx.body, message, holder);
  const fire = kind === "trigger_rule" ? await fireEndpoint() : null;

  async function load() {
    const items = await get(`${info.path}/`, null, ctx.signal);
    if (!ctx.alive()) return;
    items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const name = (r) => link(`${info.route}/${enc(r.metadata.name)}`, r.metadata.name, { class: "strong", "data-resource": r.metadata.name });
    const actions = (r) => [
      kind === "trigger_rule" ? fireButton(ctx, r.metadata.name, fire, message, load) : null,
      h("a", { class: "button small secondary", href: `#${info.route}/${enc(r.metadata.name)}/edit`, "data-action": "edit" }, "Edit"),
      h("button", { type: "button", class: "small danger-outline", "data-action": "delete", onClick: () => deleteResource(ctx, info.label, info.path, r.metadata.name, load) }, "Delete"),
    ];
    const columns =
      kind === "config"
        ? [
            { label: "Name", cls: "nowrap", cell: name },
            { label: "Selector", cell: (r) => selectorText(r.spec.selector) },
            { label: "Data", cell: (r) => h("code", Object.keys(r.spec.data || {}).join(", ") || "{}") },
            { label: "Updated", cell: (r) => timeCell(r.metadata.updated_at) },
            { label: "", cls: "actions", cell: actions },
          ]
        : [
            { label: "Name", cls: "nowrap", cell: name },
            { label: "Type", cell: (r) => h("span", { class: "chip" }, r.spec.type || "condition") },
            { label: "Rule", cell: (r) => ruleText(r.spec) },
            { label: "Action", cell: (r) => actionText(r.spec) },
            { label: "Next fire", cell: (r) => timeCell(fireTimes(r).next) },
            { label: "Last fire", cell: (r) => timeCell(fireTimes(r).last) },
            { label: "Last outcome", cell: lastOutcome },
            { label: "", cls: "actions", cell: actions },
          ];
    replace(
      holder,
      items.length
        ? table(columns, items)
        : emptyState(`No ${info.label}s yet.`, h("a", { class: "button", href: `#${info.route}/new` }, `New ${info.label}`))
    );
  }
  await load();
  // Another client's change, or a trigger firing (its last fire time), shows up without a reload.
  const reload = debounce(() => load().catch(() => {}), 1000);
  const types = ["resource_created", "resource_updated", "resource_deleted", ...(kind === "trigger_rule" ? ["trigger_fired"] : [])];
  const stream = subscribe(
    { types: types.join(",") },
    {
      onEvent: (type, data) => (type === "trigger_fired" || data.kind === kind) && reload(),
      onOpen: (() => {
        let first = true;
        return () => (first ? (first = false) : reload());
      })(),
    }
  );
  ctx.onLeave(() => stream.close());
}

export async function resourceDetailPage(ctx, kind, name) {
  const info = KINDS[kind];
  const resource = await get(`${info.path}/${enc(name)}`, null, ctx.signal);
  if (!ctx.alive()) return;
  const message = h("div", { class: "page-message" });
  const fire = kind === "trigger_rule" ? await fireEndpoint() : null;
  ctx.setHeader(name, {
    crumbs: [[info.title, info.route]],
    actions: [
      kind === "trigger_rule" ? fireButton(ctx, name, fire, message, () => historyCard(ctx, name, historyEl)) : null,
      h("a", { class: "button secondary", href: `#${info.route}/${enc(name)}/edit`, "data-action": "edit" }, "Edit YAML"),
      h("button", { type: "button", class: "danger-outline", "data-action": "delete", onClick: () => deleteResource(ctx, info.label, info.path, name, () => ctx.navigate(info.route)) }, "Delete"),
    ],
  });
  const spec = resource.spec || {};
  const meta = resource.metadata;
  const historyEl = h("div", { "data-role": "history" });
  let details;
  if (kind === "config") {
    details = [
      card("Selector", keyValues([["Applies to", selectorText(spec.selector)]])),
      card("Data", jsonTree(spec.data || {}, { openDepth: 2 })),
    ];
  } else {
    const times = fireTimes(resource);
    const params = (spec.action || {}).parameters || {};
    details = [
      card(
        "Rule",
        keyValues([
          ["Type", spec.type || "condition"],
          ["Rule", ruleText(spec)],
          spec.timezone ? ["Time zone", spec.timezone] : null,
          spec.misfire ? ["After downtime", spec.misfire] : null,
          ["Action", actionText(spec)],
          resource.status ? ["Status", resource.status.error ? h("span", { class: "text-failed" }, resource.status.error) : resource.status.active === false ? "inactive" : "active"] : null,
          resource.status && resource.status.fires !== undefined ? ["Fires", `${resource.status.fires} (this server process)`] : null,
          resource.status && resource.status.last_error ? ["Last error", h("code", { class: "text-failed" }, [].concat(resource.status.last_error).join(": "))] : null,
          resource.status && resource.status.last_outcome ? ["Last outcome", lastOutcome(resource)] : null,
          ["Next fire", times.next ? h("span", { "data-field": "next-fire" }, fmtTime(times.next), " (", timeCell(times.next), ")") : "—"],
          ["Last fire", times.last ? h("span", { "data-field": "last-fire" }, fmtTime(times.last), " (", timeCell(times.last), ")") : "—"],
        ])
      ),
      Object.keys(params).length ? card("Action parameters", jsonTree(params, { openDepth: 2 })) : null,
      historyEl,
    ];
    historyCard(ctx, name, historyEl);
  }
  replace(
    ctx.body,
    message,
    h(
      "div",
      { class: "grid grid-2-1" },
      h("div", details),
      card(
        "Metadata",
        keyValues([
          ["uid", h("code", meta.uid)],
          ["Created", timeCell(meta.created_at)],
          ["Updated", timeCell(meta.updated_at)],
          ...Object.entries(meta.annotations || {}).map(([k, v]) => [k, v]),
        ])
      )
    ),
    card("YAML", h("pre", { class: "yaml-view" }, toYaml(resource)))
  );
}

/** The field path a server message names ("spec.stages[2].target"), as keys and indices. */
export function fieldPath(detail) {
  const m = /\b(kind|metadata|spec)((?:\.[\w-]+|\[\d+\])*)/.exec(detail || "");
  if (!m) return null;
  const path = [m[1]];
  for (const part of m[2].matchAll(/\.([\w-]+)|\[(\d+)\]/g)) path.push(part[1] !== undefined ? part[1] : Number(part[2]));
  return path;
}

/**
 * The 1-based line of a block-style YAML text where `path` leads (the deepest part found), so a
 * server message about spec.stages[2].target can point at its line. Flow style is not followed.
 */
export function lineOfPath(text, path) {
  const rows = text.split("\n").map((raw, i) => ({ i, ind: raw.length - raw.trimStart().length, body: raw.trim() }));
  let from = 0;
  let parentInd = -1;
  let best = null;
  for (const key of path) {
    let childInd = null;
    let count = -1;
    let hit = -1;
    for (let r = from; r < rows.length; r++) {
      const { ind, body } = rows[r];
      if (!body || body.startsWith("#")) continue;
      const isItem = body === "-" || body.startsWith("- ");
      if (ind < parentInd || (ind === parentInd && !(typeof key === "number" && isItem))) break;
      if (childInd === null) childInd = ind;
      if (ind !== childInd) continue;
      if (typeof key === "number") {
        if (isItem && ++count === key) {
          hit = r;
          break;
        }
      } else if ([`${key}:`, `"${key}":`, `'${key}':`].some((k) => body.startsWith(k))) {
        hit = r;
        break;
      }
    }
    if (hit < 0) break;
    best = rows[hit].i + 1;
    if (typeof key === "number") {
      // The item's first key sits on its "- " line, further in.
      const rest = rows[hit].body.replace(/^-\s*/, "");
      const ind = rows[hit].ind + (rows[hit].body.length - rest.length);
      rows[hit] = { ...rows[hit], ind, body: rest };
      from = hit;
      parentInd = ind - 1;
    } else {
      from = hit + 1;
      parentInd = rows[hit].ind;
    }
  }
  return best;
}

/** A YAML parse error as {message, line} (1-based), or null. */
function parseYaml(text) {
  try {
    return { doc: load(text) };
  } catch (err) {
    const line = err.mark && typeof err.mark.line === "number" ? err.mark.line + 1 : null;
    return { error: err.reason ? `${err.reason}${line ? ` (line ${line}, column ${err.mark.column + 1})` : ""}` : err.message, line };
  }
}

export async function resourceEditPage(ctx, kind, name) {
  const info = KINDS[kind];
  const creating = name === null;
  let text = TEMPLATES[kind];
  if (!creating) {
    const resource = await get(`${info.path}/${enc(name)}`, null, ctx.signal);
    if (!ctx.alive()) return;
    text = toYaml(resource);
  }
  const title = creating ? `New ${info.label}` : `Edit ${name}`;
  const message = h("div", { class: "form-message", "data-role": "editor-message", "aria-live": "polite" });
  const preview = h("div", { class: "editor-preview" });
  const editor = codeEditor({ value: text, label: `${info.label} YAML`, rows: 28, onSave: () => save(false), onChange: () => schedulePreview() });
  editor.area.id = "resource-yaml";

  function readDocument() {
    const parsed = parseYaml(editor.value);
    if (parsed.error) {
      editor.markLine(parsed.line);
      replace(message, errorBox(`YAML: ${parsed.error}`));
      return null;
    }
    editor.markLine(null);
    const doc = parsed.doc;
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
      replace(message, errorBox(`the YAML must be one ${info.label} (a mapping with kind, metadata and spec)`));
      return null;
    }
    if (doc.kind && doc.kind !== kind && !(kind === "trigger_rule" && doc.kind === "trigger")) {
      replace(message, errorBox(`this editor makes a ${info.label}, but the YAML says kind: ${doc.kind}`));
      return null;
    }
    delete doc.version; // flowctl files may carry a top-level version: v1alpha1
    doc.kind = kind;
    return doc;
  }

  async function save(dryRun) {
    replace(message);
    editor.markLine(null);
    const doc = readDocument();
    if (!doc) return;
    const query = dryRun ? { dry_run: true } : null;
    try {
      const saved = creating ? await post(`${info.path}/`, doc, query) : await put(`${info.path}/${enc(name)}`, doc, query);
      if (dryRun) {
        replace(message, h("div", { class: "alert ok", "data-role": "valid" }, `Valid: the server accepts this ${info.label}.`));
        return;
      }
      const newName = (saved && saved.metadata && saved.metadata.name) || doc.metadata?.name || name;
      ctx.navigate(`${info.route}/${enc(newName)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        const path = fieldPath(err.detail);
        const line = path ? lineOfPath(editor.value, path) : null;
        editor.markLine(line, { scroll: true });
        replace(
          message,
          h(
            "div",
            { class: "alert error", role: "alert", "data-role": "server-error", "data-line": line || "" },
            h("strong", `The server refused this ${info.label} (${err.status}): `),
            h("span", { class: "detail" }, err.detail),
            line ? h("span", { class: "muted" }, ` (line ${line})`) : null
          )
        );
      } else {
        replace(message, errorBox(err.message));
      }
    }
  }

  let previewTimer = null;
  function schedulePreview() {
    if (kind !== "workflow") return;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(drawPreview, 300);
  }
  function drawPreview() {
    const parsed = parseYaml(editor.value);
    const stages = parsed.doc && parsed.doc.spec && parsed.doc.spec.stages;
    if (parsed.error) return replace(preview, h("p", { class: "muted small" }, `Preview paused: ${parsed.error}`));
    if (!Array.isArray(stages) || !stages.length || stages.some((st) => !st || typeof st !== "object" || !st.name)) {
      return replace(preview, h("p", { class: "muted small" }, "The preview draws spec.stages once each stage has a name."));
    }
    const norm = stages.map((st) => ({ ...st, depends_on: st.depends_on === undefined || st.depends_on === null ? [] : [].concat(st.depends_on) }));
    replace(preview, renderDag(norm, { fit: true }).el);
  }
  ctx.onLeave(() => clearTimeout(previewTimer));

  ctx.setHeader(title, {
    crumbs: [[info.title, info.route], ...(creating ? [] : [[name, `${info.route}/${enc(name)}`]])],
    actions: [
      h("a", { class: "button secondary", href: creating ? `#${info.route}` : `#${info.route}/${enc(name)}` }, "Cancel"),
      h("button", { type: "button", class: "secondary", "data-action": "validate", onClick: () => save(true) }, "Validate"),
      h("button", { type: "button", "data-action": "save", onClick: () => save(false) }, creating ? "Create" : "Save"),
    ],
  });
  const help = h(
    "p",
    { class: "muted small" },
    "Edit the YAML and press Save (Ctrl+S). Validate asks the server to check it without saving. ",
    creating ? "The same file applies with " : null,
    creating ? h("code", "flowdapt apply FILE") : null
  );
  replace(
    ctx.body,
    message,
    kind === "workflow"
      ? h("div", { class: "grid editor-grid" }, h("div", editor.el, help), card("Graph preview", preview))
      : h("div", editor.el, help)
  );
  drawPreview();
  editor.area.focus();
}
