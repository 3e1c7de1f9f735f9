// The app shell: navigation, hash routing (#/runs/abc), page lifecycle, login redirect.

import { ApiError, get, getToken, setToken } from "./api.js";
import { errorBox, h, replace, s } from "./dom.js";
import { loginPage } from "./pages/login.js";
import { overviewPage } from "./pages/overview.js";
import { pluginsPage } from "./pages/plugins.js";
import { resourceDetailPage, resourceEditPage, resourceListPage } from "./pages/resources.js";
import { runPage } from "./pages/run.js";
import { runsPage } from "./pages/runs.js";
import { workflowPage, workflowsPage } from "./pages/workflows.js";

// Icons as SVG paths (24×24, stroked): no icon font, nothing fetched.
const NAV = [
  ["/", "Overview", "M3 12h4l3-7 4 14 3-7h4"],
  ["/workflows", "Workflows", "M4 5h6v5H4z M14 14h6v5h-6z M10 7.5h2.5a2 2 0 0 1 2 2V14"],
  ["/runs", "Runs", "M8 5l11 7-11 7z"],
  ["/configs", "Configs", "M4 7h9 M17 7h3 M15 5v4 M4 17h3 M11 17h9 M9 15v4"],
  ["/triggers", "Triggers", "M12 4a8 8 0 1 0 0.01 0z M12 8v4l3 2"],
  ["/plugins", "Plugins", "M4 4h7v7H4z M13 4h7v7h-7z M4 13h7v7H4z M13 13h7v7h-7z"],
];

function icon(path) {
  return s("svg", { viewBox: "0 0 24 24", width: 18, height: 18, class: "nav-icon", "aria-hidden": "true" }, s("path", { d: path }));
}

const ROUTES = [
  [/^\/$/, overviewPage],
  [/^\/workflows$/, workflowsPage],
  [/^\/workflows\/new$/, (ctx) => resourceEditPage(ctx, "workflow", null)],
  [/^\/workflows\/([^/]+)\/edit$/, (ctx, name) => resourceEditPage(ctx, "workflow", name)],
  [/^\/workflows\/([^/]+)$/, workflowPage],
  [/^\/runs$/, runsPage],
  [/^\/runs\/([^/]+)$/, runPage],
  [/^\/configs$/, (ctx) => resourceListPage(ctx, "config")],
  [/^\/configs\/new$/, (ctx) => resourceEditPage(ctx, "config", null)],
  [/^\/configs\/([^/]+)\/edit$/, (ctx, name) => resourceEditPage(ctx, "config", name)],
  [/^\/configs\/([^/]+)$/, (ctx, name) => resourceDetailPage(ctx, "config", name)],
  [/^\/triggers$/, (ctx) => resourceListPage(ctx, "trigger_rule")],
  [/^\/triggers\/new$/, (ctx) => resourceEditPage(ctx, "trigger_rule", null)],
  [/^\/triggers\/([^/]+)\/edit$/, (ctx, name) => resourceEditPage(ctx, "trigger_rule", name)],
  [/^\/triggers\/([^/]+)$/, (ctx, name) => resourceDetailPage(ctx, "trigger_rule", name)],
  [/^\/plugins$/, pluginsPage],
  [/^\/login$/, loginPage],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let current = null; // {controller, cleanups}
let serverInfo = null;

export function navigate(route, { replace: replaceEntry = false } = {}) {
  const target = "#" + route;
  if (window.location.hash === target) return render();
  if (replaceEntry) window.location.replace(target);
  else window.location.hash = target;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path: path || "/", query: Object.fromEntries(new URLSearchParams(search)), raw };
}

function renderNav(path) {
  const section = "/" + (path.split("/")[1] || "");
  const token = getToken();
  replace(
    nav,
    h("a", { class: "brand", href: "#/" }, h("span", { class: "brand-mark" }, "◆"), h("span", "Flowdapt")),
    h(
      "ul",
      { class: "nav-list" },
      NAV.map(([route, label, iconPath]) =>
        h("li", h("a", { href: "#" + route, class: section === route ? "active" : null, "data-nav": label.toLowerCase() }, icon(iconPath), label))
      )
    ),
    h(
      "div",
      { class: "nav-foot" },
      serverInfo ? h("div", { class: "nav-server", title: serverInfo.hostname || "" }, h("strong", serverInfo.name || "flowdapt"), h("span", `v${serverInfo.version}`)) : null,
      token
        ? h("button", { type: "button", class: "link-button", onClick: logout, "data-action": "logout" }, "Sign out")
        : null,
      h("a", { class: "muted small", href: "/docs", target: "_blank", rel: "noopener" }, "API docs")
    )
  );
}

function logout() {
  setToken("");
  serverInfo = null;
  navigate("/login");
}

function leave() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
  current = null;
  document.querySelectorAll("dialog.modal").forEach((d) => d.remove());
}

async function render() {
  leave();
  const { path, query, raw } = parseHash();
  renderNav(path);
  if (!serverInfo && path !== "/login") refreshServerInfo();
  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  const mine = current;
  const header = h("header", { class: "page-head" });
  const body = h("div", { class: "page-body" });
  replace(main, header, body);
  const ctx = {
    path,
    query,
    raw,
    signal: controller.signal,
    body,
    onLeave: (fn) => cleanups.push(fn),
    alive: () => current === mine && !controller.signal.aborted,
    navigate,
    setHeader(title, { crumbs = [], actions = [], sub = null } = {}) {
      document.title = `${title} · Flowdapt`;
      replace(
        header,
        h(
          "div",
          { class: "page-title" },
          crumbs.length ? h("nav", { class: "crumbs" }, crumbs.map(([label, route]) => [h("a", { href: "#" + route }, label), h("span", { class: "crumb-sep" }, "/")])) : null,
          h("h1", title),
          sub
        ),
        h("div", { class: "page-actions" }, actions)
      );
    },
  };
  const match = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  if (!match) {
    ctx.setHeader("Not found");
    replace(body, errorBox(`no page at #${path}`), h("p", h("a", { href: "#/" }, "Go to the overview")));
    return;
  }
  const [m, page] = match;
  try {
    await page(ctx, ...m.slice(1).map(decodeURIComponent));
  } catch (err) {
    if (err && err.name === "AbortError") return;
    if (!ctx.alive()) return;
    if (err instanceof ApiError && err.status === 401) return; // the unauthorized handler redirects
    console.error(err);
    replace(body, errorBox(err instanceof ApiError ? err.detail : String(err && err.message ? err.message : err)));
  }
}

window.addEventListener("flowdapt:unauthorized", () => {
  const { path, raw } = parseHash();
  if (path !== "/login") navigate(`/login?next=${encodeURIComponent(raw)}`, { replace: true });
});

window.addEventListener("hashchange", render);

async function refreshServerInfo() {
  try {
    serverInfo = await get("/status");
    renderNav(parseHash().path);
  } catch {
    // shown by the pages themselves
  }
  return serverInfo;
}

render();
