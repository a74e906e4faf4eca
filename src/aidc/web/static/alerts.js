// Alerts: what fires now (with its silences and acknowledgement), the silences, and what fired in the last 7 days.
// Operators (may_operate) silence an alert for 1h/4h/24h, acknowledge it, and expire silences; others only read.
import { api, el, every, row, stateBadge, when } from "./common.js";

const page = document.getElementById("alerts-page");
const mayOperate = page.dataset.mayOperate === "yes";
const message = document.getElementById("alerts-message");

const labels = (l) => Object.entries(l).filter(([k]) => k !== "alertname" && k !== "severity").map(([k, v]) => `${k}=${v}`).join(" ");
const matcherText = (m) => `${m.name}${m.is_regex ? (m.is_equal ? "=~" : "!~") : (m.is_equal ? "=" : "!=")}${m.value}`;

function say(text, isError = false) {
  message.textContent = text;
  message.className = isError ? "error" : "";
}

// Runs a write, reports its outcome on the page, then redraws (a failure never leaves the page stale).
async function act(what, fn) {
  try {
    await fn();
    say(what);
  } catch (err) {
    say(`${what} failed: ${err.message}`, true);
  }
  await alertsPage();
}

function silenceAlert(alert, duration) {
  const comment = window.prompt(`Silence ${alert.name} for ${duration}: why?`);
  if (comment === null) return; // cancelled
  if (!comment.trim()) { say("A silence needs a comment: nothing was silenced.", true); return; }
  // Every label of the alert, matched exactly: the silence mutes this alert (as Alertmanager's "Silence" button).
  const matchers = Object.entries(alert.labels).map(([name, value]) => ({ name, value, is_regex: false, is_equal: true }));
  act(`Silenced ${alert.name} for ${duration}`, () => api("/v1/silences", {
    method: "POST", body: JSON.stringify({ matchers, duration, comment }),
  }));
}

function acknowledge(alert) {
  const comment = window.prompt(`Acknowledge ${alert.name}: a note for the others on call (optional)`);
  if (comment === null) return;
  act(`Acknowledged ${alert.name}`, () => api(`/v1/alerts/${encodeURIComponent(alert.fingerprint)}/ack`, {
    method: "POST", body: JSON.stringify(comment.trim() ? { comment } : {}),
  }));
}

function button(text, label, onClick) {
  const b = el("button", text, { type: "button", "aria-label": label });
  b.addEventListener("click", onClick);
  return b;
}

function handled(alert) {
  const parts = [];
  if (alert.silenced_by.length) parts.push(el("span", "silenced", { class: "state state-cancelled", title: alert.silenced_by.join(", ") }));
  if (alert.acknowledged) {
    const ack = alert.acknowledged;
    const text = `acknowledged by ${ack.by} ${when(ack.at)}${ack.comment ? `: ${ack.comment}` : ""}`;
    parts.push(el("span", text, { class: "acked" }));
  }
  if (!parts.length) return "-";
  const box = el("span");
  parts.forEach((p, i) => { if (i) box.appendChild(document.createTextNode(" · ")); box.appendChild(p); });
  return box;
}

function alertActions(alert) {
  const box = el("span", null, { class: "actions" });
  if (alert.state !== "firing") return box;
  for (const d of ["1h", "4h", "24h"]) {
    box.appendChild(button(`Silence ${d}`, `Silence ${alert.name} for ${d}`, () => silenceAlert(alert, d)));
    box.appendChild(document.createTextNode(" "));
  }
  if (!alert.acknowledged) box.appendChild(button("Acknowledge", `Acknowledge ${alert.name}`, () => acknowledge(alert)));
  return box;
}

function silenceRow(s) {
  const cells = [stateBadge(s.state), s.matchers.map(matcherText).join(", "), when(s.starts_at), when(s.ends_at), s.created_by, s.comment];
  if (mayOperate) {
    const expire = () => { if (window.confirm(`Expire the silence ${s.id}?`)) act("Expired the silence", () => api(`/v1/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" })); };
    cells.push(button("Expire", `Expire the silence of ${s.matchers.map(matcherText).join(", ")}`, expire));
  }
  const tr = row(cells);
  tr.dataset.silence = s.id;
  return tr;
}

async function alertsPage() {
  const [now, silences, history] = await Promise.all([
    api("/v1/alerts"), api("/v1/silences"), api("/v1/alerts/history?since=7d&limit=500"),
  ]);
  document.querySelector("#alerts-now tbody").replaceChildren(...now.body.map((a) => {
    const cells = [a.name, stateBadge(a.state), handled(a), a.severity, labels(a.labels), a.annotations.summary || "", when(a.active_at)];
    if (mayOperate) cells.push(alertActions(a));
    const tr = row(cells);
    tr.dataset.fingerprint = a.fingerprint;
    return tr;
  }));
  const open = silences.body.filter((s) => s.state !== "expired");
  const tbody = document.querySelector("#silences tbody");
  if (open.length) tbody.replaceChildren(...open.map(silenceRow));
  else tbody.replaceChildren(row([el("span", "No active or pending silences.", { class: "none" })]));
  document.querySelector("#alerts-history tbody").replaceChildren(...history.body.map((e) => row([
    when(e.at), e.name, e.state, e.severity, labels(e.labels),
  ])));
}

every(alertsPage);
