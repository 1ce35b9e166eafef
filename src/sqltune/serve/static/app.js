// sqltune's page: ask, see the SQL and the rows, edit and rerun, give feedback.
// Every value from the database is put into the page as text (textContent), never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
let current = null; // the last answer: {id, db}

async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({error: "the server's answer is not JSON"}));
  if (!r.ok) throw new Error(data.error || data.detail || ("HTTP " + r.status));
  return data;
}

function text(el, value) { el.textContent = value === null || value === undefined ? "NULL" : String(value); return el; }

function table(columns, rows) {
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  columns.forEach((c) => text(head.appendChild(document.createElement("th")), c));
  const body = t.createTBody();
  rows.forEach((row) => { const tr = body.insertRow(); row.forEach((v) => text(tr.insertCell(), v)); });
  return t;
}

function chart(columns, rows) {
  // a bar chart when the result is one label column and numeric columns
  const canvas = $("chart");
  canvas.hidden = true;
  if (columns.length < 2 || rows.length < 2 || rows.length > 40) return;
  const numeric = (i) => rows.every((r) => typeof r[i] === "number");
  if (numeric(0) || !columns.slice(1).every((_, k) => numeric(k + 1))) return;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const values = rows.map((r) => r[1]);
  const max = Math.max(...values.map(Math.abs), 1e-9);
  const bw = (w - 2 * pad) / rows.length;
  ctx.font = "11px sans-serif";
  rows.forEach((r, i) => {
    const bh = (Math.abs(r[1]) / max) * (h - 2 * pad);
    ctx.fillStyle = "#4c72b0";
    ctx.fillRect(pad + i * bw + 2, h - pad - bh, bw - 4, bh);
    ctx.fillStyle = "#1d2330";
    ctx.fillText(String(r[0]).slice(0, 10), pad + i * bw + 2, h - pad + 12);
  });
  ctx.fillText(columns[1] + " by " + columns[0], pad, 14);
  canvas.hidden = false;
}

function show(res) {
  const box = $("result");
  box.replaceChildren();
  if (res.ok === false || (res.error && !res.columns?.length)) {
    box.appendChild(text(document.createElement("p"), res.error_type + ": " + res.error)).className = "error";
    $("chart").hidden = true;
    return;
  }
  box.appendChild(table(res.columns, res.rows));
  chart(res.columns, res.rows);
  $("meta").textContent = res.rows.length + " row(s)" + (res.truncated ? ", cut at the server's limit" : "");
}

async function loadDatabases() {
  const h = await api("/health");
  $("model").textContent = "model: " + h.model;
  const dbs = await api("/v1/databases");
  dbs.databases.forEach((d) => { const o = document.createElement("option"); o.value = d.name; o.textContent = d.name; $("db").appendChild(o); });
}

async function ask(question) {
  $("status").textContent = "thinking...";
  $("abstain").hidden = true;
  $("feedback-status").textContent = "";
  try {
    const a = await api("/v1/ask", {question, db: $("db").value});
    current = {id: a.id, db: a.db};
    $("sql").value = a.sql;
    $("right-button").disabled = $("wrong-button").disabled = false;
    $("status").textContent = (a.answered ? "answered" : "I don't know") + " in " + a.timings.total_s + " s, " + a.attempts.length + " attempt(s), vote share " + Math.round(100 * a.vote_share) + "%";
    if (!a.answered) { $("abstain").hidden = false; $("abstain").textContent = "I don't know: " + a.abstain_reason; }
    show({columns: a.columns, rows: a.rows, truncated: a.truncated, ok: a.answered || a.columns.length > 0});
    const li = document.createElement("li");
    li.textContent = question + (a.answered ? "" : " (I don't know)");
    li.onclick = () => { $("question").value = question; $("sql").value = a.sql; };
    $("history").prepend(li);
  } catch (e) { $("status").textContent = e.message; $("status").className = "error"; }
}

$("ask-form").addEventListener("submit", (ev) => { ev.preventDefault(); ask($("question").value); });
$("run-button").addEventListener("click", async () => {
  try { show(await api("/v1/sql", {sql: $("sql").value, db: $("db").value})); }
  catch (e) { $("status").textContent = e.message; }
});
async function feedback(verdict) {
  if (!current) return;
  const body = {id: current.id, verdict};
  if (verdict === "wrong") body.corrected_sql = $("sql").value;
  const r = await api("/v1/feedback", body);
  $("feedback-status").textContent = r.pair ? "thanks: saved as a training pair" : "thanks: noted";
}
$("right-button").addEventListener("click", () => feedback("right"));
$("wrong-button").addEventListener("click", () => feedback("wrong"));
loadDatabases().catch((e) => { $("status").textContent = e.message; });
