// Models: deployments and their replicas, serving figures per model (GET /v1/serving/stats, with a per-minute
// requests/s history for the charts), and tokens by team.
import { api, el, every, lineChart, num, row } from "./common.js";

// Seconds as "12 ms" or "1.3 s"; "-" when there is nothing to measure.
function seconds(v) {
  if (v === null || v === undefined) return "-";
  return v < 1 ? `${num(v * 1000, 0)} ms` : `${num(v, 2)} s`;
}

function errorText(s) {
  if (s.error_ratio === null) return "-";
  return `${num(s.error_ratio * 100, 1)} % (${num(s.errors, 0)})`;
}

function chartBox(s) {
  const id = `chart-${s.deployment}-${s.model}`;
  let box = document.getElementById(id);
  if (!box) {
    box = el("div", null, { id, class: "chart-box" });
    box.appendChild(el("h3", s.model));
    box.appendChild(el("div", null, { class: "chart-area" }));
  }
  lineChart(box.querySelector(".chart-area"), [{ name: `${s.model} requests/s`, points: s.history }], {
    title: `${s.model}: requests per second, last hour`, unit: "/s", yMin: 0, height: 160,
    empty: "No requests through the gateway in the last hour.",
  });
  return box;
}

async function modelsPage() {
  const [deployments, stats, usage] = await Promise.all([
    api("/v1/deployments"), api("/v1/serving/stats?window=5m&history=1h"), api("/v1/usage?by=team&since=30d"),
  ]);
  document.querySelector("#deployments tbody").replaceChildren(...deployments.body.map((d) => row([
    d.name, d.models.join(", "), d.team, d.version, `${d.ready_replicas} of ${d.replicas}`, d.policy,
    d.rollout ? `${d.rollout.state || ""} v${d.rollout.version || ""}` : "-",
  ])));
  document.querySelector("#serving-stats tbody").replaceChildren(...stats.body.map((s) => row([
    s.model, s.deployment, `${s.ready_replicas} of ${s.replicas}`, num(s.requests_per_second, 2), errorText(s),
    seconds(s.latency_p50_seconds), seconds(s.latency_p95_seconds), seconds(s.ttft_p50_seconds),
    seconds(s.ttft_p95_seconds), `${num(s.prompt_tokens_per_second, 1)} / ${num(s.completion_tokens_per_second, 1)}`,
    num(s.in_flight, 0),
  ])));
  const charts = document.getElementById("serving-charts");
  if (stats.body.length) charts.replaceChildren(...stats.body.map(chartBox));
  else charts.replaceChildren(el("p", "No served models yet.", { class: "none" }));
  document.querySelector("#usage tbody").replaceChildren(...usage.body.map((u) => row([
    u.key || "(none)", u.requests, u.prompt_tokens, u.completion_tokens,
  ])));
}

every(modelsPage);
