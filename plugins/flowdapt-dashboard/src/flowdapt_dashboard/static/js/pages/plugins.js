// Installed plugins: distribution, version, the hooks each implements, load errors.

import { get } from "../api.js";
import { h, replace } from "../dom.js";
import { table } from "../widgets.js";

export async function pluginsPage(ctx) {
  ctx.setHeader("Plugins", { sub: h("p", { class: "muted" }, "Distributions with an entry point in the flowdapt.plugins group, and the built-ins") });
  const plugins = await get("/plugin/", null, ctx.signal);
  if (!ctx.alive()) return;
  const columns = [
    {
      label: "Plugin",
      cell: (p) => h("div", { class: "cell-stack" }, h("strong", { "data-plugin": p.name }, p.name), p.metadata.description ? h("div", { class: "muted small" }, p.metadata.description) : null),
    },
    { label: "Version", cell: (p) => p.metadata.version || "—" },
    { label: "Distribution", cell: (p) => p.distribution || h("span", { class: "muted" }, "—") },
    { label: "Module", cell: (p) => h("code", p.module) },
    {
      label: "Hooks",
      cell: (p) => h("div", { class: "chips" }, (p.hooks || []).map((hook) => h("span", { class: "chip", title: hook }, hook.replace(/^flowdapt_/, "")))),
    },
    {
      label: "Status",
      cell: (p) =>
        p.error
          ? h("span", { class: "badge state-failed", title: p.error }, "error")
          : p.enabled === false
            ? h("span", { class: "badge state-cancelled" }, "disabled")
            : h("span", { class: "badge state-finished" }, "loaded"),
    },
  ];
  const errors = plugins.filter((p) => p.error);
  replace(
    ctx.body,
    table(columns, plugins, { empty: "No plugins are installed." }),
    errors.length
      ? h("section", { class: "card error-card" }, h("h3", { class: "card-title" }, "Load errors"), h("ul", errors.map((p) => h("li", h("strong", p.name), ": ", p.error))))
      : null
  );
}
