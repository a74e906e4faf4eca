// One job: its facts (why it waits), spec, attempts, GPU and CPU utilization, energy, and the live log tail.
import { api, el, energy, every, lineChart, money, num, row, stateBadge, when } from "./common.js";

const FINAL = ["SUCCEEDED", "FAILED", "CANCELLED"];
const card = document.getElementById("job");
const id = card.dataset.jobId;
let logOffset = 0;
let lastDetail = null;

async function series(name, since) {
  const found = await api(`/v1/metrics/query?name=${name}&labels=${encodeURIComponent(`job_id="${id}"`)}&since=${since}`);
  return found.body.series.map((s) => ({ name: `attempt ${s.labels.attempt} on ${s.labels.node}`, points: s.points }));
}

// Utilization since the job started (at most a day back), scaled the way each metric reads: % and cores.
async function utilization(j) {
  if (!j.started_at) return;
  const started = Math.floor(new Date(j.started_at).getTime() / 1000);
  const since = String(Math.max(started - 60, Math.floor(Date.now() / 1000) - 86400));
  const [gpu, cpu] = await Promise.all([series("aidc_job_gpu_utilization_percent", since), series("aidc_job_cpu_utilization_ratio", since)]);
  lineChart(document.getElementById("gpu-chart"), gpu, { title: "GPU utilization", unit: "%", yMin: 0,
    empty: j.resources.gpus ? "No GPU utilization reported yet." : "This job holds no GPUs." });
  lineChart(document.getElementById("cpu-chart"), cpu, { title: "CPU cores busy", yMin: 0, empty: "No CPU samples yet." });
}

async function energyRows() {
  const found = await api(`/v1/jobs/${id}/energy`);
  const r = found.body;
  document.querySelector("#energy tbody").replaceChildren(...(r.attempts.length ? r.attempts.map((a) => row([
    a.key, num(a.gpu_hours, 2), energy(a.it_kwh), energy(a.facility_kwh), money(a.cost, r.currency),
    a.carbon_kg === null ? "-" : num(a.carbon_kg, 4), a.estimate ? "estimate" : "measured",
  ])) : [row(["No energy accounted yet (the meter runs once a minute).", "", "", "", "", "", ""])]));
}

async function job() {
  const found = await api(`/v1/jobs/${id}`);
  const j = found.body;
  document.getElementById("job-name").textContent = j.name;
  document.getElementById("job-state").replaceChildren(stateBadge(j.state));
  const facts = [
    ["Queue", j.queue], ["User", j.user], ["Kind", j.kind], ["GPUs", j.resources.gpus],
    ["Submitted", when(j.submitted_at)], ["Started", when(j.started_at)], ["Ended", when(j.ended_at)],
    ["Attempts", `${j.attempts_made} of at most ${j.max_retries + 1}`],
  ];
  if (j.pending_reason) facts.push(["Why it waits", j.pending_reason]);
  if (j.state_reason) facts.push(["Reason", j.state_reason]);
  document.getElementById("job-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  document.getElementById("spec").textContent = JSON.stringify(j.spec, null, 2);
  const cancel = document.getElementById("cancel");
  if (cancel) cancel.hidden = FINAL.includes(j.state);
  document.querySelector("#attempts tbody").replaceChildren(...j.attempts.map((a) => row([
    a.number, a.nodes.join(", "), a.gpus.map((g) => g.join(",") || "-").join("; "), when(a.started_at),
    when(a.ended_at), a.reason || (a.ended_at ? "" : "running"),
  ])));
  if (j.attempts.length) {
    const chunk = await api(`/v1/jobs/${id}/logs?offset=${logOffset}`);
    if (chunk.body) document.getElementById("log").textContent += chunk.body;
    logOffset = Number(chunk.headers.get("X-Aidc-Next-Offset") || logOffset);
  }
  lastDetail = j;
}

// Charts and energy change slowly: every 10 s, and once more after the job ends.
async function slow() {
  if (!lastDetail) return;
  await Promise.all([utilization(lastDetail), energyRows()]);
}

const button = document.getElementById("cancel");
if (button) {
  button.addEventListener("click", async () => {
    if (!window.confirm(`Cancel job ${id}?`)) return;
    try {
      await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
      await job();
    } catch (err) {
      document.getElementById("job-error").textContent = err.message;
    }
  });
}

every(job);
every(slow, 10000);
