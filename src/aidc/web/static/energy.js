// Energy, cost and carbon by team (or queue, user, node) over a period, and facility energy hour by hour.
import { api, energy, every, lineChart, money, num, row } from "./common.js";

const byField = document.getElementById("by");
const sinceField = document.getElementById("since");

async function energyPage() {
  const by = byField.value;
  const since = sinceField.value;
  const report = await api(`/v1/energy?by=${by}&since=${since}`);
  const r = report.body;
  const note = [`PUE ${r.pue}`];
  if (!r.priced) note.push("no price configured");
  if (!r.carbon) note.push("no grid intensity configured");
  document.getElementById("energy-note").textContent = note.join(" · ");
  document.getElementById("group-h").textContent = by[0].toUpperCase() + by.slice(1);
  const source = (x) => (!x.estimate ? "measured" : x.estimated_kwh >= 0.995 * x.it_kwh ? "estimate" : `${Math.round(100 * x.estimated_kwh / x.it_kwh)}% estimate`);
  document.querySelector("#energy tbody").replaceChildren(...[...r.rows, r.total].map((x, i) => row([
    i === r.rows.length ? "Total" : x.key === null ? "(unallocated)" : x.key, num(x.gpu_hours), energy(x.it_kwh),
    energy(x.facility_kwh), money(x.cost, r.currency), x.carbon_kg === null ? "-" : num(x.carbon_kg, 3), source(x),
  ])));
  // Hour by hour, one line per group (the report keeps the 8 largest and "(other)"); hours without energy are 0.
  const hours = [...new Set(r.hourly.map((h) => Date.parse(h.hour) / 1000))].sort((a, b) => a - b);
  const groups = new Map();
  for (const h of r.hourly) {
    const key = h.key === null ? "(unallocated)" : h.key;
    if (!groups.has(key)) groups.set(key, new Map());
    groups.get(key).set(Date.parse(h.hour) / 1000, h.facility_kwh);
  }
  const series = [...groups.entries()].map(([name, values]) => ({ name, points: hours.map((t) => [t, values.get(t) || 0]) }));
  lineChart(document.getElementById("energy-chart"), series, { title: "Facility energy per hour", unit: "kWh", yMin: 0,
    empty: "No energy accounted in this period yet." });
}

byField.addEventListener("change", () => energyPage().catch(console.error));
sinceField.addEventListener("change", () => energyPage().catch(console.error));
every(energyPage, 10000);
