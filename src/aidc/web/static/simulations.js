// The simulations page: the form (for those who may submit), the runs with their state (polled), and for the
// run picked its table (one row per policy), its PNG plots and its report text. Text only, via textContent.
import { api, el, every, num, row, stateBadge, when } from "./common.js";

const SYNTHETIC = "synthetic";
const PLOT_ALT = {
  "allocation.png": "GPU allocation over time, one line per policy",
  "jct_cdf.png": "Distribution (CDF) of job completion times, one line per policy",
};
let shown = null; // the id of the run whose details are on the page
let shownState = null;

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 120) return `${num(seconds, 0)} s`;
  if (seconds < 7200) return `${num(seconds / 60, 1)} min`;
  return `${num(seconds / 3600, 1)} h`;
}

const percent = (share) => `${num(share * 100, 1)}%`;

async function fillForm() {
  const form = document.getElementById("sim-form");
  if (!form) return;
  const found = (await api("/v1/traces")).body;
  const select = document.getElementById("s-trace");
  select.replaceChildren(
    el("option", "synthetic (the workload below)", { value: SYNTHETIC }),
    ...found.traces.map((t) => el("option", `${t.name} (${num(t.jobs, 0)} jobs)`, { value: t.name })),
  );
  document.getElementById("s-clusters").replaceChildren(...found.clusters.map((c) => el("option", null, { value: c })));
  document.getElementById("s-max-jobs").textContent = `${num(found.max_jobs, 0)}`;
  document.getElementById("s-jobs").setAttribute("max", String(found.max_jobs));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const trace = data.get("trace") === SYNTHETIC ? String(data.get("synthetic")).trim() : data.get("trace");
    const body = {
      trace,
      cluster: String(data.get("cluster") || "").trim() || null,
      policies: data.getAll("policy"),
      placement: data.get("placement"),
      backfill: data.get("backfill") !== null,
      preemption: data.get("preemption") !== null,
      jobs: data.get("jobs") ? Number(data.get("jobs")) : null,
    };
    const error = document.getElementById("sim-error");
    error.textContent = "";
    if (!body.policies.length) {
      error.textContent = "policies: pick at least one";
      return;
    }
    try {
      const made = await api("/v1/simulations", { method: "POST", body: JSON.stringify(body) });
      await showRun(made.body.id);
      await runs();
    } catch (err) {
      error.textContent = err.message;
    }
  });
}

async function runs() {
  const found = (await api("/v1/simulations")).body;
  const tbody = document.querySelector("#runs tbody");
  tbody.replaceChildren(...found.map((r) => {
    const link = el("a", when(r.created_at), { href: `#${r.id}`, "data-id": r.id });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showRun(r.id);
    });
    const progress = r.state === "running" ? percent(r.progress) : r.state === "succeeded" ? "100%" : "-";
    return row([link, r.request.trace, r.request.cluster || "its own", r.request.policies.join(", "),
                num(r.request.jobs, 0), r.submitted_by, stateBadge(r.state), progress]);
  }));
  const current = shown && found.find((r) => r.id === shown);
  if (current && current.state !== shownState) await showRun(shown); // it finished: its results are in
}

async function showRun(id) {
  const run = (await api(`/v1/simulations/${encodeURIComponent(id)}`)).body;
  shown = id;
  shownState = run.state;
  document.getElementById("run").hidden = false;
  document.getElementById("run-title").replaceChildren(
    el("span", `Run ${run.id}: ${run.request.trace} on ${run.request.cluster || "its own nodes"} `), stateBadge(run.state));
  document.getElementById("run-error").textContent = run.error || "";
  const tbody = document.querySelector("#rows tbody");
  tbody.replaceChildren(...(run.rows || []).map((r) => row([
    r.policy, duration(r.mean_jct_s), duration(r.p95_jct_s), duration(r.mean_queue_s), duration(r.p95_queue_s),
    duration(r.makespan_s), percent(r.gpu_allocation_ratio), percent(r.stranded_gpu_share), num(r.energy_kwh, 1),
  ])));
  const plots = document.getElementById("plots");
  plots.replaceChildren(...run.plots.map((name) => {
    const figure = el("figure", null, { class: "chart-box" });
    const alt = PLOT_ALT[name] || `plot ${name}`;
    figure.appendChild(el("figcaption", alt));
    figure.appendChild(el("img", null, { src: `/v1/simulations/${encodeURIComponent(run.id)}/plots/${encodeURIComponent(name)}`,
                                         alt, width: "640" }));
    return figure;
  }));
  const report = document.getElementById("report");
  report.textContent = run.state === "succeeded"
    ? (await api(`/v1/simulations/${encodeURIComponent(run.id)}/report`)).body
    : `No report yet: the run is ${run.state}.`;
}

fillForm().catch((err) => {
  const error = document.getElementById("sim-error");
  if (error) error.textContent = err.message;
});
if (window.location.hash.length > 1) showRun(window.location.hash.slice(1)).catch(() => {});
every(runs);
