// Queues and teams: quota, usage, borrowing and fair-share standing now.
import { api, every, lineChart, num, row } from "./common.js";

async function queuesPage() {
  const queues = await api("/v1/queues");
  document.querySelector("#queue-table tbody").replaceChildren(...queues.body.map((q) => row([
    q.name, q.team, q.cohort, q.quota && q.quota.gpus !== null && q.quota.gpus !== undefined ? q.quota.gpus : "no limit",
    num(q.in_use.gpus, 2), num(q.borrowed.gpus, 2), num(q.lent.gpus, 2), q.running, q.pending, num(q.share, 3),
  ])));
}

every(queuesPage);

// Fair share and GPUs in use over time, one line per queue (the control plane samples them every metrics interval).
const span = document.getElementById("span");

async function history() {
  const since = span.value;
  const [share, gpus] = await Promise.all([
    api(`/v1/metrics/query?name=aidc_queue_fair_share&since=${since}`),
    api(`/v1/metrics/query?name=aidc_queue_gpus_in_use&since=${since}`),
  ]);
  const lines = (found) => found.body.series.map((s) => ({ name: s.labels.queue, points: s.points }));
  lineChart(document.getElementById("share-chart"), lines(share), { title: "Fair-share standing", yMin: 0 });
  lineChart(document.getElementById("gpus-chart"), lines(gpus), { title: "GPUs in use", yMin: 0 });
}

span.addEventListener("change", () => history().catch(console.error));
every(history, 15000);
