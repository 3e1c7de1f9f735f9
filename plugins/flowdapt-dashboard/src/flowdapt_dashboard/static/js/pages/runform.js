// "Start a run": a form built from the root stages' parameters (GET /workflows/{id}/parameters:
// names, defaults, types), with a raw JSON editor as the fallback, in a modal; the run page opens
// once the server accepted it. With `rerunOf` it is "Run again": the old run's input is filled in
// and the form POSTs /runs/{id}/rerun.

import { ApiError, get, post } from "../api.js";
import { enc, errorBox, h, replace } from "../dom.js";
import { codeEditor, modal } from "../widgets.js";

const NUMBER = /^(int|float|number|complex)$/i;
const BOOL = /^bool$/i;

/** The kind of field a parameter gets from its annotation: "bool", "int", "float" or "json". */
export function fieldKind(annotation) {
  const a = String(annotation || "").replace(/^(typing\.)?Optional\[(.*)\]$/, "$2").replace(/\s*\|\s*None$/, "").trim();
  if (BOOL.test(a)) return "bool";
  if (/^int$/i.test(a)) return "int";
  if (NUMBER.test(a)) return "float";
  if (/^str$/i.test(a)) return "str";
  return "json";
}

/** A field's text as a value: numbers for numeric types, a string for str, else JSON when it parses. */
export function parseField(kind, text) {
  if (kind === "str") return text;
  if (kind === "int" || kind === "float") {
    const n = Number(text);
    if (text.trim() === "" || Number.isNaN(n)) throw new Error(`is not a number: ${JSON.stringify(text)}`);
    if (kind === "int" && !Number.isInteger(n)) throw new Error(`is not a whole number: ${text}`);
    return n;
  }
  try {
    return JSON.parse(text);
  } catch {
    return text; // a bare word is a string
  }
}

function showValue(kind, value) {
  if (value === undefined) return "";
  if (kind === "str" && typeof value === "string") return value;
  return JSON.stringify(value);
}

/** Open the form; `workflow` is preselected. `rerunOf` (a run) with `input` makes it "Run again". */
export async function openRunForm(ctx, workflow = null, { rerunOf = null, input = null } = {}) {
  const list = rerunOf ? [] : await get("/workflows/");
  const names = list.map((w) => w.metadata.name).sort();
  if (workflow && !names.includes(workflow)) names.unshift(workflow);
  const select = h(
    "select",
    { id: "run-workflow", name: "workflow", disabled: !!rerunOf },
    names.map((n) => h("option", { value: n, selected: n === workflow }, n))
  );
  const namespace = h("input", { id: "run-namespace", name: "namespace", placeholder: "default", autocomplete: "off", value: rerunOf ? rerunOf.namespace || "" : null, disabled: !!rerunOf });
  const message = h("div", { class: "form-message", "data-role": "run-error" });
  const editor = codeEditor({ value: input && Object.keys(input).length ? JSON.stringify(input, null, 2) : "{\n  \n}", label: "run input (JSON)", rows: 10, onSave: () => start() });
  editor.area.id = "run-input";
  const fieldsEl = h("div", { class: "param-fields", "data-role": "param-fields" });
  const rawEl = h("div", { "data-role": "raw-input", hidden: true }, editor.el, h("p", { class: "muted small" }, "A JSON object; each key is passed to the root stages as a keyword argument."));
  let params = [];
  let fields = []; // [{param, kind, el, read(): [set, value]}]
  let mode = "raw";
  const modeButton = h("button", { type: "button", class: "link-button", "data-action": "toggle-raw", onClick: () => setMode(mode === "raw" ? "fields" : "raw") }, "");

  function buildFields(values) {
    fields = params.map((p) => {
      const kind = fieldKind(p.annotation);
      const hasDefault = Object.prototype.hasOwnProperty.call(p, "default");
      const defText = hasDefault ? (p.default && typeof p.default === "object" && "repr" in p.default && Object.keys(p.default).length === 1 ? p.default.repr : showValue(kind, p.default)) : "";
      const given = Object.prototype.hasOwnProperty.call(values, p.name);
      let el;
      if (kind === "bool") {
        el = h("select", { id: `param-${p.name}`, "data-param": p.name },
          h("option", { value: "" }, hasDefault ? `default (${defText})` : "—"),
          h("option", { value: "true", selected: given && values[p.name] === true }, "true"),
          h("option", { value: "false", selected: given && values[p.name] === false }, "false"));
      } else {
        el = h("input", {
          id: `param-${p.name}`,
          "data-param": p.name,
          type: kind === "int" || kind === "float" ? "number" : "text",
          step: kind === "float" ? "any" : null,
          placeholder: hasDefault ? `default: ${defText}` : p.required ? "required" : "",
          value: given ? showValue(kind, values[p.name]) : null,
          autocomplete: "off",
          required: p.required,
        });
      }
      const read = () => {
        if (el.value === "") return [false];
        if (kind === "bool") return [true, el.value === "true"];
        try {
          return [true, parseField(kind, el.value)];
        } catch (err) {
          throw new Error(`${p.name} ${err.message}`);
        }
      };
      return { param: p, kind, el, read };
    });
    // Keys of the given input that are no parameter (a map stage's list, a stage's **kwargs) stay.
    const extra = Object.keys(values).filter((k) => !params.some((p) => p.name === k));
    replace(
      fieldsEl,
      fields.map((f) =>
        h("div", { class: "param-field" },
          h("label", { for: f.el.id }, h("code", f.param.name), f.param.required ? h("span", { class: "text-failed" }, " *") : null),
          f.el,
          h("span", { class: "muted small" }, [f.param.annotation || "any", (f.param.stages || []).length ? ` · ${f.param.stages.join(", ")}` : ""].join("")))
      ),
      extra.length ? h("p", { class: "muted small", "data-role": "extra-keys" }, `Also given (kept): ${extra.join(", ")}; edit them as raw JSON.`) : null
    );
    fieldsEl.dataset.extra = JSON.stringify(Object.fromEntries(extra.map((k) => [k, values[k]])));
  }

  function readFields() {
    const out = JSON.parse(fieldsEl.dataset.extra || "{}");
    for (const f of fields) {
      const [set, value] = f.read();
      if (set) out[f.param.name] = value;
      else if (f.param.required) throw new Error(`${f.param.name} is required`);
    }
    return out;
  }

  function readRaw() {
    const text = editor.value.trim();
    let value;
    try {
      value = text ? JSON.parse(text) : {};
    } catch (err) {
      throw new Error(`the input is not valid JSON: ${err.message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error("the input must be a JSON object: its keys are the root stages' keyword arguments");
    }
    return value;
  }

  function setMode(next) {
    replace(message);
    try {
      if (next === "raw" && mode === "fields") editor.value = JSON.stringify(readFields(), null, 2);
      if (next === "fields" && mode === "raw") buildFields(readRaw());
    } catch (err) {
      replace(message, errorBox(err.message));
      return;
    }
    mode = next;
    fieldsEl.hidden = mode !== "fields";
    rawEl.hidden = mode !== "raw";
    modeButton.textContent = mode === "fields" ? "edit as raw JSON" : "edit as fields";
    modeButton.hidden = !params.length;
  }

  async function loadParameters(name) {
    try {
      params = (await get(`/workflows/${enc(name)}/parameters`)).parameters || [];
    } catch {
      params = []; // an older server, or a workflow that cannot be planned: the JSON box still works
    }
    const values = mode === "fields" ? (() => { try { return readFields(); } catch { return {}; } })() : (() => { try { return readRaw(); } catch { return {}; } })();
    buildFields(values);
    mode = "fields";
    setMode(params.length ? "fields" : "raw");
    if (!params.length) modeButton.hidden = true;
  }

  select.addEventListener("change", () => loadParameters(select.value));

  async function start() {
    replace(message);
    let value;
    try {
      value = mode === "fields" ? readFields() : readRaw();
    } catch (err) {
      replace(message, errorBox(err.message));
      return;
    }
    try {
      const run = rerunOf
        ? await post(`/runs/${enc(rerunOf.uid)}/rerun`, { input: value }, { wait: false })
        : await post(`/workflows/${enc(select.value)}/run`, value, { wait: false, namespace: namespace.value.trim() || null });
      m.close();
      ctx.navigate(`/runs/${run.uid}`);
    } catch (err) {
      replace(message, errorBox(err instanceof ApiError ? err.detail : err.message));
    }
  }

  const body = h(
    "div",
    { class: "form-grid" },
    h("label", { for: "run-workflow" }, "Workflow"),
    select,
    h("label", { for: "run-input" }, "Input"),
    h("div", fieldsEl, rawEl, modeButton, rerunOf ? h("p", { class: "muted small" }, "Keys you set replace the old run's; the rest of its input is kept.") : null),
    h("label", { for: "run-namespace" }, "Namespace"),
    namespace,
    h("div"),
    message
  );
  const startButton = h("button", { type: "button", "data-action": "start-run", onClick: start }, rerunOf ? "Run again" : "Start run");
  const m = modal(rerunOf ? `Run ${rerunOf.name} again` : "Start a run", body, [h("button", { type: "button", class: "secondary", onClick: () => m.close() }, "Cancel"), startButton], { wide: true });
  // Until the parameters are in, neither box shows: one appears, and the form says it is ready.
  if (select.value) await loadParameters(select.value);
  else setMode("raw");
  body.dataset.ready = "true";
  (mode === "fields" ? fieldsEl.querySelector("input, select") : editor.area)?.focus();
  return m;
}
