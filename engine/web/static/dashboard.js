// streamlet dashboard: polls the REST API (Flink's routes, relative to this page, so the
// app can be mounted under any prefix) and redraws the job graph, the vertex table, the
// throughput and checkpoint charts, the checkpoint history and the exceptions.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NO_WATERMARK = -9223372036854775808;
const state = { jobId: null, refreshMs: 1000, tokenRequired: false, throughput: {}, names: {}, busy: false };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function td(text, cls) {
  const cell = document.createElement("td");
  cell.textContent = text;
  if (cls) cell.className = cls;
  return cell;
}

function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function bytes(n) {
  if (n < 0) return "—";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

function duration(ms) {
  if (ms < 1000) return ms + " ms";
  const s = Math.floor(ms / 1000);
  if (s < 60) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(s / 60) + " min " + (s % 60) + " s";
}

function watermark(value) {
  const n = Number(value);
  if (value === null || value === undefined || n <= NO_WATERMARK) return "no watermark";
  if (n >= 9223372036854775807) return "end of time";
  return String(value);
}

function message(text, isError) {
  const box = $("status-message");
  box.textContent = text;
  box.className = "status-message" + (isError ? " error" : "");
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

// --- the job graph ---

function layout(nodes) {
  // Column = longest path from a source; rows in plan order within a column.
  const depth = {};
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  function d(id) {
    if (depth[id] !== undefined) return depth[id];
    depth[id] = 0;
    const inputs = byId[id].inputs || [];
    depth[id] = inputs.length ? 1 + Math.max(...inputs.map((i) => d(i.id))) : 0;
    return depth[id];
  }
  nodes.forEach((n) => d(n.id));
  const columns = {};
  nodes.forEach((n) => { (columns[depth[n.id]] = columns[depth[n.id]] || []).push(n.id); });
  return { depth, columns };
}

function drawGraph(details, vertexStats) {
  const svg = $("job-graph");
  const nodes = details.plan.nodes;
  const { depth, columns } = layout(nodes);
  const W = 220, GAP_X = 80, GAP_Y = 26, LINE = 16;
  const heights = Object.fromEntries(nodes.map((n) => [n.id, 88 + LINE * (n["streamlet-operators"] || []).length]));
  const pos = {};
  let maxY = 0;
  for (const [col, ids] of Object.entries(columns)) {
    let y = 10;
    for (const id of ids) {
      pos[id] = { x: 10 + Number(col) * (W + GAP_X), y };
      y += heights[id] + GAP_Y;
    }
    maxY = Math.max(maxY, y);
  }
  const width = 20 + (Object.keys(columns).length) * (W + GAP_X) - GAP_X;
  svg.setAttribute("width", width);
  svg.setAttribute("height", maxY);
  svg.setAttribute("viewBox", `0 0 ${width} ${maxY}`);
  svg.replaceChildren();
  const defs = el("defs");
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#7b8494" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const node of nodes) {
    for (const input of node.inputs || []) {
      const a = pos[input.id], b = pos[node.id];
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + heights[input.id] / 2, x2 = b.x, y2 = b.y + heights[node.id] / 2;
      const g = el("g", { class: "edge", "data-from": input.id, "data-to": node.id });
      const mid = (x1 + x2) / 2;
      g.appendChild(el("path", { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 - 2} ${y2}` }));
      g.appendChild(el("text", { x: mid, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, input.ship_strategy));
      svg.appendChild(g);
    }
  }
  for (const node of nodes) {
    const p = pos[node.id];
    const stats = vertexStats[node.id] || {};
    const level = stats.level || "ok";
    const g = el("g", { class: "vertex bp-" + level, "data-id": node.id, "data-name": node.description, transform: `translate(${p.x},${p.y})` });
    const fill = { ok: "#e3f4ea", low: "#fcebd0", high: "#f8d6d6" }[level];
    g.appendChild(el("rect", { width: W, height: heights[node.id], fill }));
    g.appendChild(el("text", { x: 10, y: 18, class: "title" }, `Parallelism ${node.parallelism}`));
    let y = 36;
    for (const op of node["streamlet-operators"] || []) {
      g.appendChild(el("text", { x: 14, y, class: "operator", "data-uid": op.uid }, "▸ " + op.name));
      y += LINE;
    }
    g.appendChild(el("text", { x: 10, y: y + 4, class: "figure throughput" },
      `in ${fmt(stats.inRate)}/s · out ${fmt(stats.outRate)}/s`));
    g.appendChild(el("text", { x: 10, y: y + 20, class: "figure backpressure" },
      `backpressure ${Math.round((stats.ratio || 0) * 100)}% (${level})`));
    g.appendChild(el("text", { x: 10, y: y + 36, class: "figure watermark" },
      watermark(stats.watermark) === "no watermark" ? "no watermark" : `watermark ${watermark(stats.watermark)}`));
    svg.appendChild(g);
  }
}

// --- the vertex table and throughput chart ---

function vertexFigures(vertex, pressure) {
  const subtasks = vertex.subtasks || [];
  const sum = (key) => subtasks.reduce((a, s) => a + (s["streamlet-metrics"][key] || 0), 0);
  const marks = subtasks.map((s) => s["streamlet-metrics"].currentInputWatermark);
  const worst = Math.max(0, ...(pressure.subtasks || []).map((s) => s.ratio));
  return {
    recordsIn: sum("numRecordsIn"), recordsOut: sum("numRecordsOut"),
    inRate: sum("numRecordsInPerSecond"), outRate: sum("numRecordsOutPerSecond"),
    busy: subtasks.length ? sum("busyTimeMsPerSecond") / subtasks.length / 10 : 0,
    ratio: worst, level: pressure.backpressureLevel || "ok",
    watermark: marks.length ? Math.min(...marks) : null,
  };
}

function drawVertexTable(details, figures) {
  const body = $("vertex-table").querySelector("tbody");
  body.replaceChildren();
  for (const v of details.vertices) {
    const f = figures[v.id] || {};
    const row = document.createElement("tr");
    row.dataset.id = v.id;
    row.append(td(v.name), td(v.parallelism), td(fmt(f.recordsIn), "records-in"), td(fmt(f.recordsOut), "records-out"),
      td(fmt(f.inRate)), td(fmt(f.outRate), "out-rate"), td(Math.round(f.busy || 0) + "%"),
      td(Math.round((f.ratio || 0) * 100) + "%"));
    const level = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "level " + (f.level || "ok");
    badge.textContent = f.level || "ok";
    level.appendChild(badge);
    row.append(level, td(watermark(f.watermark)));
    body.appendChild(row);
  }
}

const COLOURS = ["#2f6fde", "#3fa46a", "#e69a28", "#d64545", "#8b5cf6", "#0ea5a4"];

function drawThroughput(details, figures) {
  const svg = $("throughput-chart");
  const now = Date.now();
  details.vertices.forEach((v) => {
    const series = (state.throughput[v.id] = state.throughput[v.id] || []);
    series.push([now, (figures[v.id] || {}).outRate || 0]);
    while (series.length > 120) series.shift();
    state.names[v.id] = v.name;
  });
  const all = Object.values(state.throughput).flat();
  const max = Math.max(1, ...all.map((p) => p[1]));
  const t0 = Math.min(now - 10 * state.refreshMs, ...all.map((p) => p[0]));
  svg.replaceChildren();
  const legend = $("throughput-legend");
  legend.replaceChildren();
  details.vertices.forEach((v, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = state.throughput[v.id].map(([t, y]) =>
      `${(480 * (t - t0)) / (now - t0)},${155 - (145 * y) / max}`).join(" ");
    svg.appendChild(el("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    const item = document.createElement("span");
    item.innerHTML = `<span class="swatch" style="background:${colour}"></span>`;
    item.appendChild(document.createTextNode(v.name));
    legend.appendChild(item);
  });
  svg.appendChild(el("text", { x: 4, y: 12, "font-size": 10, fill: "#6b7280" }, fmt(max) + "/s"));
}

// --- checkpoints ---

function drawCheckpoints(cps) {
  const c = cps.counts;
  $("checkpoint-counts").textContent =
    `${c.completed} completed · ${c.failed} failed · ${c.in_progress} in progress · ${c.restored} restored`;
  $("job-checkpoints").textContent = String(c.completed);
  const body = $("checkpoint-table").querySelector("tbody");
  body.replaceChildren();
  for (const h of cps.history.slice(0, 12)) {
    const row = document.createElement("tr");
    row.dataset.id = h.id;
    row.dataset.status = h.status;
    row.append(td(h.id), td(h.status, "status-" + h.status),
      td(h.is_savepoint ? "savepoint" : "checkpoint"),
      td(new Date(h.trigger_timestamp).toLocaleTimeString()),
      td(h.status === "IN_PROGRESS" ? "…" : duration(h.end_to_end_duration)),
      td(bytes(h.state_size)), td(`${h.num_acknowledged_subtasks}/${h.num_subtasks}`),
      td(h.external_path || h.failure_message || "", "path"));
    body.appendChild(row);
  }
  const done = cps.history.filter((h) => h.status === "COMPLETED").slice(0, 40).reverse();
  const svg = $("checkpoint-chart");
  svg.replaceChildren();
  if (!done.length) return;
  const maxD = Math.max(1, ...done.map((h) => h.end_to_end_duration));
  const maxS = Math.max(1, ...done.map((h) => h.state_size));
  const w = 480 / done.length;
  const sizes = [];
  done.forEach((h, i) => {
    const height = (140 * h.end_to_end_duration) / maxD;
    svg.appendChild(el("rect", { x: i * w + w * 0.15, y: 155 - height, width: w * 0.7, height, fill: "#2f6fde", "data-id": h.id }));
    sizes.push(`${i * w + w / 2},${155 - (140 * h.state_size) / maxS}`);
  });
  svg.appendChild(el("polyline", { points: sizes.join(" "), fill: "none", stroke: "#e69a28", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  svg.appendChild(el("text", { x: 4, y: 12, "font-size": 10, fill: "#6b7280" }, `${duration(maxD)} · ${bytes(maxS)}`));
}

function drawExceptions(exc) {
  const box = $("exceptions");
  const entries = exc.exceptionHistory.entries;
  box.replaceChildren();
  if (!entries.length) {
    box.innerHTML = '<p class="muted">none</p>';
    return;
  }
  for (const e of entries.slice(0, 8)) {
    const item = document.createElement("details");
    item.className = "exception";
    const summary = document.createElement("summary");
    summary.textContent = `${new Date(e.timestamp).toLocaleTimeString()} · ${e.exceptionName}` +
      (e.taskName ? ` in ${e.taskName}` : "");
    const pre = document.createElement("pre");
    pre.textContent = e.stacktrace;
    item.append(summary, pre);
    box.appendChild(item);
  }
}

// --- polling ---

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const overview = await getJSON("jobs/overview");
    if (!overview.jobs.length) { message("no job yet"); return; }
    const wanted = new URLSearchParams(location.search).get("job");
    const job = overview.jobs.find((j) => j.jid === wanted) ||
      overview.jobs.find((j) => j.state === "RUNNING") || overview.jobs[0];
    state.jobId = job.jid;
    const base = `jobs/${job.jid}`;
    const [details, cps, exc] = await Promise.all([
      getJSON(base), getJSON(base + "/checkpoints"), getJSON(base + "/exceptions"),
    ]);
    const figures = {};
    await Promise.all(details.vertices.map(async (v) => {
      const [vertex, pressure] = await Promise.all([
        getJSON(`${base}/vertices/${v.id}`), getJSON(`${base}/vertices/${v.id}/backpressure`),
      ]);
      figures[v.id] = vertexFigures(vertex, pressure);
    }));
    $("job-title").textContent = details.name;
    const stateBadge = $("job-state");
    stateBadge.textContent = details.state;
    stateBadge.className = "state " + details.state;
    $("job-uptime").textContent = duration(details.duration);
    $("job-restarts").textContent = String(details["streamlet-job-metrics"].numRestarts);
    const running = details.state === "RUNNING";
    for (const id of ["savepoint-button", "stop-button", "cancel-button"]) $(id).disabled = !running;
    drawGraph(details, figures);
    drawVertexTable(details, figures);
    drawThroughput(details, figures);
    drawCheckpoints(cps);
    drawExceptions(exc);
  } catch (error) {
    message("cannot reach the job: " + error.message, true);
  } finally {
    state.busy = false;
  }
}

async function act(method, path, body, what) {
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value;
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { method, headers, body: JSON.stringify(body || {}) });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((reply.errors || ["HTTP " + response.status]).join("; "));
  return reply;
}

async function savepointAction(path, what) {
  if (!state.jobId) return;
  message(what + " requested…");
  try {
    const { "request-id": requestId } = await act("POST", `jobs/${state.jobId}/${path}`, {}, what);
    for (;;) {
      const status = await getJSON(`jobs/${state.jobId}/savepoints/${requestId}`);
      if (status.status.id === "COMPLETED") {
        const op = status.operation;
        if (op.location) message(`${what} written: ${op.location}`);
        else message(`${what} failed: ${op["failure-cause"]["stack-trace"]}`, true);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch (error) {
    message(`${what} refused: ${error.message}`, true);
  }
  refresh();
}

async function cancelJob() {
  if (!state.jobId) return;
  try {
    await act("PATCH", `jobs/${state.jobId}?mode=cancel`, null, "cancel");
    message("cancel requested");
  } catch (error) {
    message("cancel refused: " + error.message, true);
  }
  refresh();
}

async function start() {
  try {
    const config = await getJSON("config");
    state.refreshMs = config["refresh-interval"] || 1000;
    state.tokenRequired = Boolean(config["streamlet-token-required"]);
    $("token").hidden = !state.tokenRequired;
  } catch (error) {
    message("cannot reach the job: " + error.message, true);
  }
  $("savepoint-button").addEventListener("click", () => savepointAction("savepoints", "savepoint"));
  $("stop-button").addEventListener("click", () => savepointAction("stop", "stop with savepoint"));
  $("cancel-button").addEventListener("click", cancelJob);
  await refresh();
  setInterval(refresh, state.refreshMs);
}

start();
