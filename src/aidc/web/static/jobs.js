// The jobs page: the list (filtered as you type) and, for those who may submit, the form and the YAML box.
import { api, el, every, row, stateBadge, when } from "./common.js";

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

submitForm();
submitYaml();
document.getElementById("filter").addEventListener("input", drawJobs);
every(jobs);
