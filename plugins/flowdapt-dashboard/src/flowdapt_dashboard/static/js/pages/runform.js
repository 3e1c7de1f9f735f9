// "Start a run": a JSON input form in a modal; the run page opens once the server accepted it.

import { ApiError, get, post } from "../api.js";
import { enc, errorBox, h, replace } from "../dom.js";
import { codeEditor, modal } from "../widgets.js";

/** Open the form; `workflow` is preselected. */
export async function openRunForm(ctx, workflow = null) {
  const list = await get("/workflows/");
  const names = list.map((w) => w.metadata.name).sort();
  if (workflow && !names.includes(workflow)) names.unshift(workflow);
  const select = h(
    "select",
    { id: "run-workflow", name: "workflow" },
    names.map((n) => h("option", { value: n, selected: n === workflow }, n))
  );
  const namespace = h("input", { id: "run-namespace", name: "namespace", placeholder: "default", autocomplete: "off" });
  const message = h("div", { class: "form-message", "data-role": "run-error" });
  const editor = codeEditor({ value: "{\n  \n}", label: "run input (JSON)", rows: 10, onSave: () => start() });
  editor.area.id = "run-input";

  async function start() {
    replace(message);
    let input;
    const text = editor.value.trim();
    try {
      input = text ? JSON.parse(text) : {};
    } catch (err) {
      replace(message, errorBox(`the input is not valid JSON: ${err.message}`));
      return;
    }
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      replace(message, errorBox("the input must be a JSON object: its keys are the root stages' keyword arguments"));
      return;
    }
    try {
      const run = await post(`/workflows/${enc(select.value)}/run`, input, { wait: false, namespace: namespace.value.trim() || null });
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
    h("div", editor.el, h("p", { class: "muted small" }, "A JSON object; each key is passed to the root stages as a keyword argument.")),
    h("label", { for: "run-namespace" }, "Namespace"),
    namespace,
    h("div"),
    message
  );
  const startButton = h("button", { type: "button", "data-action": "start-run", onClick: start }, "Start run");
  const m = modal("Start a run", body, [h("button", { type: "button", class: "secondary", onClick: () => m.close() }, "Cancel"), startButton], { wide: true });
  editor.area.focus();
  editor.area.setSelectionRange(4, 4);
  return m;
}
