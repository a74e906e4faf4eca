// What every page's script shares: the API call (the sign-in cookie goes along), small DOM builders that
// write text with textContent only (never HTML), polling, and an SVG line chart.

export const POLL_MS = 2000;

export async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (init.method && init.method !== "GET") {
    init.headers["X-Aidc-Dashboard"] = "1"; // writes by cookie must say they come from the dashboard
    if (init.body !== undefined && !init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("signed out");
  }
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = body && body.errors && body.errors.length
      ? body.errors.map((e) => `${e.field}: ${e.problem}`).join("; ")
      : (body && body.detail) || response.statusText;
    throw new Error(detail);
  }
  return { body, headers: response.headers };
}

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

export function stateBadge(state) {
  return el("span", state, { class: `state state-${state.toLowerCase()}` });
}

export const num = (v, digits = 1) => (v === null || v === undefined ? "-" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));

// An amount of money in the site's currency, with the digits that matter for small energy bills.
export function money(value, currency) {
  if (value === null) return "-";
  return `${value >= 0.01 || value === 0 ? num(value, 2) : value.toPrecision(2)} ${currency}`;
}

export function energy(kwh) {
  if (kwh >= 1000) return `${num(kwh / 1000, 2)} MWh`;
  if (kwh >= 1) return `${num(kwh, 2)} kWh`;
  return `${Number((kwh * 1000).toPrecision(3))} Wh`;
}

function stamp() {
  const updated = document.getElementById("updated");
  if (updated) updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// What the API said when a page could not load (a job the user may not see: "job 7 not found"), shown until
// the next load works.
function problem(message) {
  const banner = document.getElementById("page-error");
  if (!banner) return;
  banner.hidden = message === null;
  banner.textContent = message === null ? "" : `Could not load this page: ${message}`;
}

// Runs fn now and again `ms` after each run ends (never two runs at once).
export function every(fn, ms = POLL_MS) {
  const tick = async () => {
    try {
      await fn();
      stamp();
      problem(null);
    } catch (err) {
      if (err.message !== "signed out") problem(err.message);
    }
    setTimeout(tick, ms);
  };
  tick();
}

// The latest value of each series of a metric (from the embedded TSDB and its history), keyed by
// `keyOf(labels)` ("" for all: a metric with one series).
export async function latestBy(name, keyOf = () => "", since = "10m") {
  const found = await api(`/v1/metrics/query?name=${encodeURIComponent(name)}&since=${since}&step=30s`);
  const out = new Map();
  for (const s of found.body.series) {
    const points = s.points.filter(([, v]) => v !== null && Number.isFinite(v));
    if (points.length) out.set(keyOf(s.labels), points[points.length - 1][1]);
  }
  return out;
}

// Okabe-Ito colours, each series also gets its own dash pattern: a chart must not rely on colour alone.
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4", "3 1"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function tickLabel(v) {
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return abs >= 10 || v === 0 ? String(Math.round(v)) : String(Number(v.toPrecision(2)));
}

function timeLabel(t, span) {
  const at = new Date(t * 1000);
  if (span > 2 * 86400) return at.toLocaleDateString();
  return at.toLocaleTimeString([], span < 600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
}

const finite = (v) => v !== null && Number.isFinite(v);

// series: [{name, points: [[unixSeconds, value], ...]}]; options: {title, unit, height, yMin, empty}.
// Draws into `container` (replacing what was there) an SVG as wide as the container, with axes, one line per
// series (its own colour and dash), a marker on each point when there are few (so a lone point shows) and a
// legend; the SVG's <title> and aria-label say what it shows. Without data it says so in words.
export function lineChart(container, series, options = {}) {
  const width = Math.max(320, Math.round(container.clientWidth || 640) - 16);
  const height = options.height || 200, left = 52, right = 16, top = 10, bottom = 24;
  const drawn = series.filter((s) => s.points.some(([, v]) => finite(v)));
  if (!drawn.length) {
    container.replaceChildren(el("p", options.empty || "No data yet.", { class: "none" }));
    return;
  }
  const xs = drawn.flatMap((s) => s.points.filter(([, v]) => finite(v)).map(([t]) => t));
  const ys = drawn.flatMap((s) => s.points.map(([, v]) => v).filter(finite));
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 - x0 < 1) { x0 -= 30; x1 += 30; } // one moment: centre it
  const y0 = options.yMin !== undefined ? Math.min(options.yMin, ...ys) : Math.min(...ys);
  let y1 = Math.max(...ys);
  if (y1 <= y0) y1 = y0 + (Math.abs(y0) || 1);
  const px = (t) => left + ((t - x0) / (x1 - x0)) * (width - left - right);
  const py = (v) => top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom);
  const label = `${options.title || "chart"}${options.unit ? ` (${options.unit})` : ""}: ${drawn.map((s) => s.name).join(", ")}`;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label, class: "chart" });
  root.appendChild(svg("title", {}, label));
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    root.appendChild(svg("line", { x1: left, x2: width - right, y1: py(v), y2: py(v), class: "grid" }));
    root.appendChild(svg("text", { x: left - 4, y: py(v) + 4, "text-anchor": "end", class: "tick" }, tickLabel(v)));
  }
  [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]].forEach(([t, anchor]) => {
    root.appendChild(svg("text", { x: px(t), y: height - 6, "text-anchor": anchor, class: "tick" }, timeLabel(t, x1 - x0)));
  });
  drawn.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.filter(([, v]) => finite(v));
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (!finite(v)) { pen = false; continue; } // a gap stays a gap
      d += `${pen ? "L" : "M"}${px(t).toFixed(1)},${py(v).toFixed(1)}`;
      pen = true;
    }
    root.appendChild(svg("path", { d, fill: "none", stroke: colour, "stroke-width": 2, "stroke-dasharray": DASHES[i % DASHES.length] }));
    const marked = points.length <= 48 ? points : [points[points.length - 1]];
    for (const [t, v] of marked) root.appendChild(svg("circle", { cx: px(t), cy: py(v), r: 3, fill: colour }));
  });
  const legend = el("ul", null, { class: "legend-list" });
  drawn.forEach((s, i) => {
    const item = el("li");
    const key = svg("svg", { width: 28, height: 10, "aria-hidden": "true" });
    key.appendChild(svg("line", { x1: 0, x2: 28, y1: 5, y2: 5, stroke: COLOURS[i % COLOURS.length], "stroke-width": 3,
                                  "stroke-dasharray": DASHES[i % DASHES.length] }));
    item.appendChild(key);
    item.appendChild(el("span", ` ${s.name}`));
    legend.appendChild(item);
  });
  container.replaceChildren(root, legend);
}

// Turns a counter's points into a per-second rate between neighbours (a drop is a reset: that step is skipped).
export function rate(points) {
  const out = [];
  for (let i = 1; i < points.length; i += 1) {
    const [t0, v0] = points[i - 1], [t1, v1] = points[i];
    if (v0 === null || v1 === null || t1 <= t0) continue;
    out.push([t1, v1 >= v0 ? (v1 - v0) / (t1 - t0) : null]);
  }
  return out;
}
