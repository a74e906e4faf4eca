// The dashboard's one script: fills the page from the /v1 API (the sign-in cookie goes along) and keeps it
// current by polling. Text goes in with textContent only, never as HTML.
"use strict";

const POLL_MS = 2000;

async function api(path, options = {}) {
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

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

function stateBadge(state) {
  return el("span", state, { class: `state state-${state.toLowerCase()}` });
}

function stamp() {
  const updated = document.getElementById("updated");
  if (updated) updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function every(fn) {
  const tick = async () => {
    try {
      await fn();
      stamp();
    } catch (err) {
      if (err.message !== "signed out") console.error(err);
    }
    setTimeout(tick, POLL_MS);
  };
  tick();
}

// ------------------------------------------------------------------------------------------- overview
async function overview() {
  const [nodes, queues, alerts] = await Promise.all([
    api("/v1/nodes"), api("/v1/queues"), api("/v1/alerts?firing=true"),
  ]);
  const up = nodes.body.filter((n) => n.state === "UP");
  const gpus = nodes.body.flatMap((n) => n.gpus);
  document.getElementById("nodes-up").textContent = `${up.length} of ${nodes.body.length}`;
  document.getElementById("gpus-allocated").textContent = `${gpus.filter((g) => g.allocated).length} of ${gpus.length}`;
  document.getElementById("jobs-running").textContent = queues.body.reduce((s, q) => s + q.running, 0);
  document.getElementById("jobs-pending").textContent = queues.body.reduce((s, q) => s + q.pending, 0);
  document.getElementById("alerts-firing").textContent = alerts.body.length;
  await power();

  const heatmap = document.getElementById("heatmap");
  heatmap.replaceChildren(...nodes.body.map((n) => {
    const box = el("div", null, { class: "node", role: "group", "aria-label": `${n.name}: ${n.state}` });
    box.appendChild(el("span", n.name, { class: "node-name" }));
    if (!n.gpus.length) box.appendChild(el("span", "no GPUs", { class: "none" }));
    for (const g of n.gpus) {
      const kind = n.state !== "UP" ? "down" : g.allocated ? "used" : "free";
      const label = `${n.name} GPU ${g.index} (${g.model}): ${kind === "down" ? n.state : kind}`;
      box.appendChild(el("span", g.index, { class: `gpu ${kind}`, title: label, "aria-label": label }));
    }
    return box;
  }));

  const tbody = document.querySelector("#queues tbody");
  tbody.replaceChildren(...queues.body.map((q) => row([q.name, q.team, q.running, q.pending, q.in_use.gpus])));

  const list = document.getElementById("alerts");
  list.replaceChildren(...(alerts.body.length ? alerts.body.map((a) => {
    const item = el("li", null, { class: `alert severity-${a.severity}` });
    item.appendChild(el("strong", a.name));
    item.appendChild(el("span", ` ${a.severity} · ${a.annotations.summary || ""}`));
    return item;
  }) : [el("li", "Nothing is firing.", { class: "none" })]));
}

async function latest(name) {
  const found = await api(`/v1/metrics/query?name=${name}&since=10m&step=1m`);
  const points = found.body.series.flatMap((s) => s.points);
  return points.length ? points[points.length - 1][1] : null;
}

async function power() {
  const [watts, budget] = await Promise.all([latest("aidc_site_power_watts"), latest("aidc_site_power_budget_watts")]);
  document.getElementById("power").textContent = watts === null ? "-" : `${(watts / 1000).toFixed(1)} kW`;
  document.getElementById("power-budget").textContent = budget === null
    ? "no budget set" : `of ${(budget / 1000).toFixed(1)} kW budget (${Math.round(100 * (watts || 0) / budget)}%)`;
}

// ------------------------------------------------------------------------------------------------ jobs
let jobRows = [];

function drawJobs() {
  const wanted = (document.getElementById("filter").value || "").toLowerCase();
  const tbody = document.querySelector("#jobs tbody");
  const shown = jobRows.filter((j) => !wanted
    || [j.name, j.user, j.queue, j.state, String(j.id)].some((v) => v.toLowerCase().includes(wanted)));
  tbody.replaceChildren(...shown.map((j) => {
    const link = el("a", j.id, { href: `/jobs/${j.id}` });
    return row([link, j.name, stateBadge(j.state), j.queue, j.user, j.resources.gpus, when(j.submitted_at)]);
  }));
}

async function jobs() {
  const found = await api("/v1/jobs?limit=1000");
  jobRows = found.body.slice().reverse(); // newest first
  drawJobs();
}

function submitYaml() {
  const form = document.getElementById("submit-yaml");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("yaml-error");
    error.textContent = "";
    try {
      const made = await api("/jobs/yaml", { method: "POST", body: document.getElementById("f-yaml").value,
                                             headers: { "Content-Type": "application/yaml" } });
      window.location.assign(`/jobs/${made.body.id}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });
}

function submitForm() {
  submitYaml();
  const form = document.getElementById("submit");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const spec = {
      name: data.get("name"),
      queue: data.get("queue") || "default",
      run: data.get("run"),
      resources: { gpus: Number(data.get("gpus") || 0), cpus: Number(data.get("cpus") || 1), memory: data.get("memory") || "1GB" },
    };
    const error = document.getElementById("submit-error");
    error.textContent = "";
    try {
      const made = await api("/v1/jobs", { method: "POST", body: JSON.stringify(spec) });
      window.location.assign(`/jobs/${made.body.id}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });
}

// ------------------------------------------------------------------------------------------ one job
let logOffset = 0;

async function job(id) {
  const found = await api(`/v1/jobs/${id}`);
  const j = found.body;
  document.getElementById("job-name").textContent = j.name;
  const state = document.getElementById("job-state");
  state.replaceChildren(stateBadge(j.state));
  const facts = [
    ["Queue", j.queue], ["User", j.user], ["Kind", j.kind], ["GPUs", j.resources.gpus],
    ["Submitted", when(j.submitted_at)], ["Started", when(j.started_at)], ["Ended", when(j.ended_at)],
    ["Attempts", `${j.attempts_made} of at most ${j.max_retries + 1}`],
  ];
  if (j.pending_reason) facts.push(["Why it waits", j.pending_reason]);
  if (j.state_reason) facts.push(["Reason", j.state_reason]);
  const dl = document.getElementById("job-facts");
  dl.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const cancel = document.getElementById("cancel");
  if (cancel) cancel.hidden = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(j.state);
  document.querySelector("#attempts tbody").replaceChildren(...j.attempts.map((a) => row([
    a.number, a.nodes.join(", "), a.gpus.map((g) => g.join(",") || "-").join("; "), when(a.started_at),
    when(a.ended_at), a.reason || (a.ended_at ? "" : "running"),
  ])));
  if (j.attempts.length) {
    const chunk = await api(`/v1/jobs/${id}/logs?offset=${logOffset}`);
    if (chunk.body) document.getElementById("log").textContent += chunk.body;
    logOffset = Number(chunk.headers.get("X-Aidc-Next-Offset") || logOffset);
  }
}

function cancelButton(id) {
  const button = document.getElementById("cancel");
  if (!button) return;
  button.addEventListener("click", async () => {
    if (!window.confirm(`Cancel job ${id}?`)) return;
    try {
      await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
      await job(id);
    } catch (err) {
      document.getElementById("job-error").textContent = err.message;
    }
  });
}

// ------------------------------------------------------------------------------- read-only pages
const num = (v, digits = 1) => (v === null || v === undefined ? "-" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));
const labels = (l) => Object.entries(l).filter(([k]) => k !== "alertname" && k !== "severity").map(([k, v]) => `${k}=${v}`).join(" ");

async function queuesPage() {
  const queues = await api("/v1/queues");
  document.querySelector("#queue-table tbody").replaceChildren(...queues.body.map((q) => row([
    q.name, q.team, q.cohort, q.quota && q.quota.gpus !== null && q.quota.gpus !== undefined ? q.quota.gpus : "no limit",
    num(q.in_use.gpus, 2), num(q.borrowed.gpus, 2), num(q.lent.gpus, 2), q.running, q.pending, num(q.share, 3),
  ])));
}

async function alertsPage() {
  const [now, history] = await Promise.all([api("/v1/alerts"), api("/v1/alerts/history?since=7d&limit=500")]);
  document.querySelector("#alerts-now tbody").replaceChildren(...now.body.map((a) => row([
    a.name, a.state, a.severity, labels(a.labels), a.annotations.summary || "", when(a.active_at),
  ])));
  document.querySelector("#alerts-history tbody").replaceChildren(...history.body.map((e) => row([
    when(e.at), e.name, e.state, e.severity, labels(e.labels),
  ])));
}

async function modelsPage() {
  const [deployments, usage] = await Promise.all([api("/v1/deployments"), api("/v1/usage?by=team&since=30d")]);
  document.querySelector("#deployments tbody").replaceChildren(...deployments.body.map((d) => row([
    d.name, d.models.join(", "), d.team, d.version, `${d.ready_replicas} of ${d.replicas}`, d.policy,
    d.rollout ? `${d.rollout.state || ""} v${d.rollout.version || ""}` : "-",
  ])));
  document.querySelector("#usage tbody").replaceChildren(...usage.body.map((u) => row([
    u.key || "(none)", u.requests, u.prompt_tokens, u.completion_tokens,
  ])));
}

async function energyPage() {
  const report = await api("/v1/energy?by=team&since=30d");
  const r = report.body;
  const note = [`PUE ${r.pue}`];
  if (!r.priced) note.push("no price configured");
  if (!r.carbon) note.push("no grid intensity configured");
  document.getElementById("energy-note").textContent = note.join(" · ");
  const money = (v) => (v === null ? "-" : `${v >= 0.01 || v === 0 ? num(v, 2) : v.toPrecision(2)} ${r.currency}`);
  const energy = (kwh) => (kwh >= 1000 ? `${num(kwh / 1000, 2)} MWh` : kwh >= 1 ? `${num(kwh, 2)} kWh` : `${Number((kwh * 1000).toPrecision(3))} Wh`);
  const source = (x) => (!x.estimate ? "measured" : x.estimated_kwh >= 0.995 * x.it_kwh ? "estimate" : `${Math.round(100 * x.estimated_kwh / x.it_kwh)}% estimate`);
  document.querySelector("#energy tbody").replaceChildren(...[...r.rows, r.total].map((x) => row([
    x.key === null ? "(unallocated)" : x.key, num(x.gpu_hours), energy(x.it_kwh), energy(x.facility_kwh),
    money(x.cost), x.carbon_kg === null ? "-" : num(x.carbon_kg, 3), source(x),
  ])));
}

const PAGES = { queues: queuesPage, alerts: alertsPage, models: modelsPage, energy: energyPage };

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "overview") every(overview);
  if (PAGES[page]) every(PAGES[page]);
  const card = document.getElementById("job");
  if (card) {
    const id = card.dataset.jobId;
    cancelButton(id);
    every(() => job(id));
  } else if (page === "jobs") {
    submitForm();
    document.getElementById("filter").addEventListener("input", drawJobs);
    every(jobs);
  }
});
