// Reusable pieces: a code editor on a textarea, a JSON tree, modal dialogs, tables, pagination.

import { h, replace } from "./dom.js";

/** A textarea with line numbers, Tab indenting and Ctrl/Cmd+S to save. */
export function codeEditor({ value = "", onSave, onChange, label = "editor", rows = 24 } = {}) {
  const gutter = h("div", { class: "editor-gutter", "aria-hidden": "true" });
  const area = h("textarea", {
    class: "editor-text",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    wrap: "off",
    rows,
    "aria-label": label,
  });
  area.value = value;
  let errorLine = null;
  function renderGutter() {
    const lines = area.value.split("\n").length;
    const frag = document.createDocumentFragment();
    for (let i = 1; i <= lines; i++) frag.appendChild(h("div", { class: i === errorLine ? "err" : null }, String(i)));
    replace(gutter, frag);
    gutter.scrollTop = area.scrollTop;
  }
  area.addEventListener("input", () => {
    renderGutter();
    onChange && onChange(area.value);
  });
  area.addEventListener("scroll", () => (gutter.scrollTop = area.scrollTop));
  area.addEventListener("keydown", (e) => {
    if (e.key === "Tab" && !e.shiftKey) {
      e.preventDefault();
      const { selectionStart: a, selectionEnd: b } = area;
      area.setRangeText("  ", a, b, "end");
      area.dispatchEvent(new Event("input"));
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
      e.preventDefault();
      onSave && onSave();
    }
  });
  renderGutter();
  const el = h("div", { class: "editor" }, gutter, area);
  return {
    el,
    area,
    get value() {
      return area.value;
    },
    set value(v) {
      area.value = v;
      renderGutter();
    },
    markLine(line, { scroll = false } = {}) {
      errorLine = line;
      renderGutter();
      if (scroll && line) {
        const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
        area.scrollTop = Math.max(0, (line - 4) * lineHeight);
      }
    },
  };
}

function preview(value) {
  if (Array.isArray(value)) return `[${value.length} item${value.length === 1 ? "" : "s"}]`;
  const keys = Object.keys(value);
  return `{${keys.length} key${keys.length === 1 ? "" : "s"}${keys.length ? ": " + keys.slice(0, 4).join(", ") + (keys.length > 4 ? ", …" : "") : ""}}`;
}

function scalar(value) {
  if (value === null) return h("span", { class: "json-null" }, "null");
  if (typeof value === "string") return h("span", { class: "json-string" }, JSON.stringify(value));
  if (typeof value === "number") return h("span", { class: "json-number" }, String(value));
  if (typeof value === "boolean") return h("span", { class: "json-bool" }, String(value));
  return h("span", String(value));
}

const PAGE = 100;

/** A collapsible JSON tree; arrays and objects open to `openDepth`; long arrays page by 100. */
export function jsonTree(value, { openDepth = 1, name = null } = {}) {
  function node(key, v, depth) {
    const keyEl = key === null ? null : h("span", { class: "json-key" }, `${key}: `);
    if (v === null || typeof v !== "object") return h("div", { class: "json-row" }, keyEl, scalar(v));
    const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    const details = h("details", { class: "json-node", open: depth < openDepth });
    details.appendChild(h("summary", keyEl, h("span", { class: "json-preview" }, preview(v))));
    const body = h("div", { class: "json-children" });
    let shown = 0;
    function more() {
      const next = entries.slice(shown, shown + PAGE);
      for (const [k, x] of next) body.appendChild(node(k, x, depth + 1));
      shown += next.length;
      if (shown < entries.length) {
        const btn = h("button", { type: "button", class: "link-button" }, `show ${Math.min(PAGE, entries.length - shown)} more of ${entries.length - shown}`);
        btn.addEventListener("click", () => {
          btn.remove();
          more();
        });
        body.appendChild(btn);
      }
    }
    // Render children only when opened: a result with 100k items stays cheap until looked at.
    let rendered = false;
    const render = () => {
      if (!rendered && details.open) {
        rendered = true;
        more();
      }
    };
    details.addEventListener("toggle", render);
    details.appendChild(body);
    render();
    return details;
  }
  return h("div", { class: "json-tree" }, node(name, value, 0));
}

/** A modal dialog. Returns {el, close}; the element is appended to the body and opened. */
export function modal(title, body, actions = [], { wide = false } = {}) {
  const dialog = h("dialog", { class: `modal${wide ? " wide" : ""}` });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.appendChild(
    h(
      "form",
      { method: "dialog", class: "modal-form", onSubmit: (e) => e.preventDefault() },
      h("header", { class: "modal-head" }, h("h2", title), h("button", { type: "button", class: "icon-button", "aria-label": "close", onClick: close }, "×")),
      h("div", { class: "modal-body" }, body),
      h("footer", { class: "modal-actions" }, actions)
    )
  );
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return { el: dialog, close };
}

/** Ask before a destructive action; resolves true when confirmed. */
export function confirmDialog(title, message, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v) => {
      if (settled) return;
      settled = true;
      m.close();
      resolve(v);
    };
    const m = modal(title, h("p", message), [
      h("button", { type: "button", class: "secondary", onClick: () => done(false) }, "Cancel"),
      h("button", { type: "button", class: "danger", "data-confirm": "yes", onClick: () => done(true) }, confirmLabel),
    ]);
    m.el.addEventListener("close", () => done(false));
  });
}

/** A table: columns [{label, cell(row) → node|string, cls}] */
export function table(columns, rows, { empty = "Nothing here yet.", rowAttrs } = {}) {
  const thead = h("thead", h("tr", columns.map((c) => h("th", { class: c.cls || null }, c.label))));
  const tbody = h("tbody");
  if (!rows.length) {
    tbody.appendChild(h("tr", h("td", { colspan: columns.length, class: "empty-cell" }, empty)));
  }
  for (const row of rows) {
    tbody.appendChild(h("tr", rowAttrs ? rowAttrs(row) : null, columns.map((c) => h("td", { class: c.cls || null }, c.cell(row)))));
  }
  return h("div", { class: "table-wrap" }, h("table", { class: "table" }, thead, tbody));
}

/** "1–50 of 10,000" with previous/next. */
export function pager({ offset, limit, total, onPage }) {
  const from = total ? offset + 1 : 0;
  const to = Math.min(offset + limit, total);
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;
  return h(
    "nav",
    { class: "pager", "aria-label": "pages" },
    h("span", { class: "pager-info" }, `${from.toLocaleString("en-US")}–${to.toLocaleString("en-US")} of ${total.toLocaleString("en-US")}`),
    h("button", { type: "button", class: "secondary", disabled: page <= 1, onClick: () => onPage(0) }, "« First"),
    h("button", { type: "button", class: "secondary", disabled: page <= 1, onClick: () => onPage(offset - limit), "data-page": "prev" }, "‹ Prev"),
    h("span", { class: "pager-page" }, `page ${page} of ${pages.toLocaleString("en-US")}`),
    h("button", { type: "button", class: "secondary", disabled: page >= pages, onClick: () => onPage(offset + limit), "data-page": "next" }, "Next ›"),
    h("button", { type: "button", class: "secondary", disabled: page >= pages, onClick: () => onPage((pages - 1) * limit) }, "Last »")
  );
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h3", { class: "card-title" }, title) : null, body);
}

export function keyValues(pairs) {
  return h(
    "dl",
    { class: "kv" },
    pairs.filter(Boolean).flatMap(([k, v]) => [h("dt", k), h("dd", v === null || v === undefined || v === "" ? "—" : v)])
  );
}
