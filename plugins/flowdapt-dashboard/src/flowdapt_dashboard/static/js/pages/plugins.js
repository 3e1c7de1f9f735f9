// Installed plugins: distribution, version, the hooks each implements, load errors.

import { get } from "../api.js";
import { dotted, h, replace } from "../dom.js";
import { table } from "../widgets.js";

export async function pluginsPage(ctx) {
  const plugins = await get("/plugin/", null, ctx.signal);
  if (!ctx.alive()) return;
  const external = plugins.filter((p) => p.distribution !== "flowdapt").length;
  ctx.setHeader("Plugins", {
    sub: h("p", { class: "muted" }, `${plugins.length} loaded: ${external} from installed distributions (entry point group flowdapt.plugins), ${plugins.length - external} built into flowdapt`),
  });
  const columns = [
    {
      label: "Plugin",
      cell: (p) =>
        h(
          "div",
          h("strong", { "data-plugin": p.name }, p.name),
          p.distribution === "flowdapt"
            ? h("span", { class: "chip" }, "built-in")
            : p.metadata.description
              ? h("div", { class: "muted small" }, p.metadata.description)
              : null
        ),
    },
    { label: "Version", cell: (p) => p.metadata.version || "—" },
    { label: "Distribution", cls: "nowrap", cell: (p) => p.distribution || h("span", { class: "muted" }, "—") },
    { label: "Module", cell: (p) => dotted(p.module) },
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
