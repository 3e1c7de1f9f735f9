// Draw a workflow's stage graph as SVG: a layered (Sugiyama-style) layout, left to right.
// Layers are longest-path depths; a few barycenter sweeps order each layer to cut crossings.

import { h, s, shortTarget } from "./dom.js";

const NODE_W = 176;
const NODE_H = 58;
const GAP_X = 56;
const GAP_Y = 22;
const PAD = 16;

export function isMapStage(stage) {
  return stage.type === "parameterized" || Boolean(stage.options && stage.options.map_on);
}

/** Layers of stage names, or throws Error naming a cycle or an unknown dependency. */
export function layers(stages) {
  const byName = new Map(stages.map((st) => [st.name, st]));
  for (const st of stages) {
    for (const dep of st.depends_on || []) {
      if (!byName.has(dep)) throw new Error(`stage ${st.name} depends on ${dep}, which is not a stage`);
    }
  }
  const depth = new Map();
  const visiting = new Set();
  function visit(name, path) {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) throw new Error(`dependency cycle: ${[...path, name].join(" → ")}`);
    visiting.add(name);
    let d = 0;
    for (const dep of byName.get(name).depends_on || []) d = Math.max(d, visit(dep, [...path, name]) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  }
  for (const st of stages) visit(st.name, []);
  const out = [];
  for (const st of stages) {
    const d = depth.get(st.name);
    (out[d] = out[d] || []).push(st.name);
  }
  return out.map((layer) => layer || []);
}

function orderLayers(layerList, stages) {
  const deps = new Map(stages.map((st) => [st.name, st.depends_on || []]));
  const children = new Map(stages.map((st) => [st.name, []]));
  for (const st of stages) for (const d of st.depends_on || []) children.get(d).push(st.name);
  const pos = new Map();
  const index = () => layerList.forEach((layer) => layer.forEach((n, i) => pos.set(n, i)));
  index();
  const bary = (names) => (names.length ? names.reduce((a, n) => a + pos.get(n), 0) / names.length : null);
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? [...layerList.keys()].slice(1) : [...layerList.keys()].reverse().slice(1);
    for (const i of range) {
      const layer = layerList[i];
      const key = new Map(layer.map((n) => [n, bary(down ? deps.get(n) : children.get(n))]));
      layer.sort((a, b) => (key.get(a) ?? pos.get(a)) - (key.get(b) ?? pos.get(b)));
      layer.forEach((n, j) => pos.set(n, j));
    }
  }
  return layerList;
}

/** {nodes: Map(name → {x, y, stage}), width, height, edges: [[from, to]]} */
export function layout(stages) {
  const layerList = orderLayers(layers(stages), stages);
  const tallest = Math.max(...layerList.map((l) => l.length));
  const height = tallest * NODE_H + (tallest - 1) * GAP_Y + PAD * 2;
  const width = layerList.length * NODE_W + (layerList.length - 1) * GAP_X + PAD * 2;
  const byName = new Map(stages.map((st) => [st.name, st]));
  const nodes = new Map();
  layerList.forEach((layer, li) => {
    const used = layer.length * NODE_H + (layer.length - 1) * GAP_Y;
    const top = PAD + (height - PAD * 2 - used) / 2;
    layer.forEach((name, i) => {
      nodes.set(name, { x: PAD + li * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y), stage: byName.get(name) });
    });
  });
  const edges = [];
  for (const st of stages) for (const d of st.depends_on || []) edges.push([d, st.name]);
  return { nodes, edges, width, height };
}

function clip(text, max) {
  text = String(text || "");
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/**
 * Render the DAG. Returns {el, update(stageRecords)}: update colours each stage by state and
 * fills map stages' progress bars from the run's stage records.
 */
export function renderDag(stages, { onSelect, fit = false } = {}) {
  let graph;
  try {
    graph = layout(stages);
  } catch (err) {
    return { el: h("div", { class: "alert error" }, err.message), update() {}, error: err.message };
  }
  const svg = s("svg", {
    class: "dag",
    viewBox: `0 0 ${graph.width} ${graph.height}`,
    width: graph.width,
    height: graph.height,
    // Shrinks to fit its panel, down to 60 %; a wider graph scrolls instead of turning unreadable.
    style: `min-width:${Math.round(graph.width * 0.6)}px`,
    role: "img",
    "aria-label": `workflow graph with ${stages.length} stages`,
  });
  const defs = s(
    "defs",
    {},
    s(
      "marker",
      { id: "dag-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "dag-arrowhead" })
    )
  );
  svg.appendChild(defs);
  const edgeLayer = s("g", { class: "dag-edges" });
  svg.appendChild(edgeLayer);
  for (const [from, to] of graph.edges) {
    const a = graph.nodes.get(from);
    const b = graph.nodes.get(to);
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    edgeLayer.appendChild(
      s("path", { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, class: "dag-edge", "marker-end": "url(#dag-arrow)", "data-from": from, "data-to": to })
    );
  }
  const nodeEls = new Map();
  for (const [name, node] of graph.nodes) {
    const st = node.stage;
    const map = isMapStage(st);
    const title = s("title", {}, `${name}\n${st.target || ""}${map ? "\nmap stage (parameterized)" : ""}`);
    const rect = s("rect", { x: node.x, y: node.y, width: NODE_W, height: NODE_H, rx: 8, class: "dag-node-box" });
    const label = s("text", { x: node.x + 12, y: node.y + 22, class: "dag-node-name" }, clip(name, map ? 16 : 21));
    const sub = s("text", { x: node.x + 12, y: node.y + 40, class: "dag-node-sub" }, clip(shortTarget(st.target), 24));
    const g = s("g", { class: "dag-node state-pending" + (map ? " map" : ""), "data-stage": name, tabindex: 0 }, title, rect, label, sub);
    if (map) {
      g.appendChild(s("rect", { x: node.x + NODE_W - 44, y: node.y + 9, width: 34, height: 17, rx: 4, class: "dag-map-tag" }));
      g.appendChild(s("text", { x: node.x + NODE_W - 27, y: node.y + 21, class: "dag-map-tag-text", "text-anchor": "middle" }, "map"));
      g.appendChild(s("rect", { x: node.x + 12, y: node.y + NODE_H - 11, width: NODE_W - 24, height: 5, rx: 2, class: "dag-progress-track" }));
      g.appendChild(s("rect", { x: node.x + 12, y: node.y + NODE_H - 11, width: 0, height: 5, rx: 2, class: "dag-progress-done" }));
      g.appendChild(s("rect", { x: node.x + 12, y: node.y + NODE_H - 11, width: 0, height: 5, rx: 2, class: "dag-progress-failed" }));
    }
    if (onSelect) {
      g.addEventListener("click", () => onSelect(name));
      g.addEventListener("keydown", (e) => e.key === "Enter" && onSelect(name));
    }
    nodeEls.set(name, { g, node, sub, map });
  }
  const nodeLayer = s("g", { class: "dag-nodes" }, [...nodeEls.values()].map((n) => n.g));
  svg.appendChild(nodeLayer);

  function update(records) {
    for (const [name, { g, node, sub, map }] of nodeEls) {
      const rec = records && records[name];
      const state = (rec && rec.state) || "pending";
      g.setAttribute("class", `dag-node state-${state}${map ? " map" : ""}`);
      g.setAttribute("data-state", state);
      if (!rec) continue;
      if (map) {
        const total = rec.items_total || 0;
        const done = rec.items_done || 0;
        const failed = rec.items_failed || 0;
        const full = NODE_W - 24;
        const ok = total ? (full * (done - failed)) / total : 0;
        const bad = total ? (full * failed) / total : 0;
        g.querySelector(".dag-progress-done").setAttribute("width", Math.max(0, ok));
        const failedBar = g.querySelector(".dag-progress-failed");
        failedBar.setAttribute("x", node.x + 12 + Math.max(0, ok));
        failedBar.setAttribute("width", Math.max(0, bad));
        sub.textContent = total ? `${done}/${total} items${failed ? ` · ${failed} failed` : ""}` : clip(shortTarget(node.stage.target), 24);
      }
    }
  }

  const wrap = h("div", { class: fit ? "dag-wrap fit" : "dag-wrap" }, svg);
  return { el: wrap, update, svg };
}
