// The overview: totals, the GPU heat map (allocation, utilization or temperature), queues, firing alerts and
// the site's power against its budget.
import { api, el, every, latestBy, row } from "./common.js";

// A sequential scale that survives colour blindness and greyscale (viridis' stops); text flips to stay readable.
const VIRIDIS = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"];

function shade(fraction) {
  const f = Math.min(1, Math.max(0, fraction));
  const colour = VIRIDIS[Math.round(f * (VIRIDIS.length - 1))];
  return { background: colour, color: f > 0.55 ? "#1b1b1b" : "#ffffff" };
}

const MEASURES = {
  utilization: { metric: "DCGM_FI_DEV_GPU_UTIL", text: (v) => `${Math.round(v)}%`, scale: (v) => v / 100, label: "utilization" },
  temperature: { metric: "DCGM_FI_DEV_GPU_TEMP", text: (v) => `${Math.round(v)}°C`, scale: (v) => (v - 30) / 60, label: "temperature" },
  // dcgm-exporter's last XID (0: none in the last 5 minutes): a category, not a scale.
  health: { metric: "DCGM_FI_DEV_XID_ERRORS", text: (v) => (v > 0 ? `XID ${Math.round(v)}` : "ok"), label: "health",
            style: (v) => (v > 0 ? { background: "#D55E00", color: "#ffffff" } : { background: "#e3f1fa", color: "#1b1b1b" }) },
};

// GPU readings keyed "host/index" (dcgm-exporter's Hostname and gpu labels; aidc agents use the node's name).
const gpuReadings = (metric) => latestBy(metric, (l) => `${l.Hostname || l.node}/${l.gpu}`, "5m");

function heatmap(nodes, measure, readings) {
  const box = document.getElementById("heatmap");
  let missing = 0;
  box.replaceChildren(...nodes.map((n) => {
    const group = el("div", null, { class: "node", role: "group", "aria-label": `${n.name}: ${n.state}` });
    group.appendChild(el("span", `${n.name}${n.state === "UP" ? "" : ` (${n.state.toLowerCase()})`}`, { class: "node-name" }));
    if (!n.gpus.length) group.appendChild(el("span", "no GPUs", { class: "none" }));
    for (const g of n.gpus) {
      const held = g.allocated ? "allocated" : "free";
      if (n.state !== "UP") {
        const label = `${n.name} GPU ${g.index} (${g.model}): node ${n.state}`;
        group.appendChild(el("span", g.index, { class: "gpu down", title: label, "aria-label": label }));
        continue;
      }
      if (!measure) {
        const label = `${n.name} GPU ${g.index} (${g.model}): ${held}`;
        group.appendChild(el("span", g.index, { class: `gpu ${g.allocated ? "used" : "free"}`, title: label, "aria-label": label }));
        continue;
      }
      const value = readings.get(`${n.name}/${g.index}`);
      if (value === undefined) {
        missing += 1;
        const label = `${n.name} GPU ${g.index} (${g.model}): no ${measure.label} reported, ${held}`;
        group.appendChild(el("span", "n/a", { class: "gpu unknown", title: label, "aria-label": label }));
        continue;
      }
      const label = `${n.name} GPU ${g.index} (${g.model}): ${measure.label} ${measure.text(value)}, ${held}`;
      const cell = el("span", measure.text(value), { class: `gpu measured${g.allocated ? " held" : ""}`, title: label, "aria-label": label });
      const { background, color } = measure.style ? measure.style(value) : shade(measure.scale(value));
      cell.style.background = background;
      cell.style.color = color;
      group.appendChild(cell);
    }
    return group;
  }));
  const note = document.getElementById("heatmap-note");
  note.textContent = measure && missing ? `${missing} GPU(s) report no ${measure.label} (no NVML or dcgm-exporter data from their node).` : "";
}

async function power() {
  const [watts, budget] = await Promise.all([latestBy("aidc_site_power_watts"), latestBy("aidc_site_power_budget_watts")]);
  const w = watts.get("");
  const b = budget.get("");
  document.getElementById("power").textContent = w === undefined ? "-" : `${(w / 1000).toFixed(1)} kW`;
  document.getElementById("power-budget").textContent = b === undefined
    ? "no budget set" : `of ${(b / 1000).toFixed(1)} kW budget (${Math.round(100 * (w || 0) / b)}%)`;
}

async function overview() {
  const [nodes, queues, alerts] = await Promise.all([
    api("/v1/nodes"), api("/v1/queues"), api("/v1/alerts?firing=true"),
  ]);
  const up = nodes.body.filter((n) => n.state === "UP");
  const gpus = nodes.body.flatMap((n) => n.gpus);
  const held = gpus.filter((g) => g.allocated).length;
  document.getElementById("nodes-up").textContent = `${up.length} of ${nodes.body.length}`;
  document.getElementById("gpus-allocated").textContent = `${held} of ${gpus.length}`;
  document.getElementById("allocation-ratio").textContent = gpus.length ? `${Math.round((100 * held) / gpus.length)}% allocated` : "no GPUs";
  document.getElementById("jobs-running").textContent = queues.body.reduce((s, q) => s + q.running, 0);
  document.getElementById("jobs-pending").textContent = queues.body.reduce((s, q) => s + q.pending, 0);
  document.getElementById("alerts-firing").textContent = alerts.body.length;

  const measure = MEASURES[document.getElementById("colour-by").value];
  const [readings] = await Promise.all([measure ? gpuReadings(measure.metric) : new Map(), power()]);
  heatmap(nodes.body, measure, readings);
  document.getElementById("legend-allocation").hidden = Boolean(measure);
  document.getElementById("legend-scale").hidden = !measure || Boolean(measure.style);
  document.getElementById("legend-health").hidden = measure !== MEASURES.health;
  if (measure && !measure.style) document.getElementById("legend-scale-label").textContent = measure === MEASURES.utilization ? "0% to 100%" : "30°C to 90°C";

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

document.getElementById("colour-by").addEventListener("change", () => overview().catch(console.error));
every(overview);
