// Orderly live dashboard: polls /health (anyone) and the admin analytics
// summary once a second and draws with <canvas>; no libraries, no network
// beyond this origin.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120;
const colors = { ink: "#e6edf3", dim: "#8b98a5", accent: "#4cc38a", warn: "#f2b84b", bad: "#f0626a", grid: "#26313c" };
const statusColors = { pending: colors.warn, confirmed: colors.accent, rejected: colors.bad, cancelled: colors.dim };
const rates = [];
let lastTotal = null;
let lastAt = null;

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("orderly-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("orderly-token");
}

function el(id) { return document.getElementById(id); }

function canvas(id) {
  const c = el(id);
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.font = "12px system-ui, sans-serif";
  return { c, ctx };
}

function bars(id, entries, colorOf, overlay) {
  const { c, ctx } = canvas(id);
  const max = Math.max(1, ...entries.map(([, v]) => v), ...(overlay || []).map(([, v]) => v));
  const slot = c.width / Math.max(1, entries.length);
  entries.forEach(([label, value], i) => {
    const h = (value / max) * (c.height - 34);
    ctx.fillStyle = colorOf(label);
    ctx.fillRect(i * slot + slot * 0.15, c.height - 20 - h, slot * 0.7, h);
    ctx.fillStyle = colors.ink;
    ctx.textAlign = "center";
    ctx.fillText(String(value), i * slot + slot / 2, c.height - 24 - h);
    ctx.fillStyle = colors.dim;
    ctx.fillText(label, i * slot + slot / 2, c.height - 5);
    const extra = overlay && overlay[i] ? overlay[i][1] : 0;
    if (extra > 0) {
      const oh = (extra / max) * (c.height - 34);
      ctx.fillStyle = colors.bad;
      ctx.fillRect(i * slot + slot * 0.6, c.height - 20 - oh, slot * 0.2, oh);
    }
  });
  if (entries.length === 0) {
    ctx.fillStyle = colors.dim;
    ctx.fillText("nothing yet", 12, c.height / 2);
  }
}

function line(id, values) {
  const { c, ctx } = canvas(id);
  const max = Math.max(1, ...values);
  ctx.strokeStyle = colors.grid;
  ctx.beginPath();
  ctx.moveTo(0, c.height - 16.5);
  ctx.lineTo(c.width, c.height - 16.5);
  ctx.stroke();
  ctx.strokeStyle = colors.accent;
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (HISTORY - 1)) * c.width;
    const y = c.height - 16 - (v / max) * (c.height - 30);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = colors.dim;
  ctx.fillText(`max ${max.toFixed(1)}/s`, 8, 14);
}

function money(map) {
  const parts = Object.entries(map || {}).map(([cur, amount]) => `${amount} ${cur}`);
  return parts.length ? parts.join(" · ") : "0";
}

async function getJson(path, bearer) {
  const response = await fetch(path, { headers: bearer ? { Authorization: `Bearer ${bearer}` } : {} });
  if (response.status === 401 || response.status === 403) throw new Error("unauthorized");
  if (!response.ok && response.status !== 503) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function renderHealth(health) {
  const badge = el("status");
  badge.textContent = health.status;
  badge.className = `badge ${health.status}`;
  const breaker = health.notification_provider ? health.notification_provider.breaker : "?";
  el("breaker").textContent = breaker.replace("_", "-");
  el("breaker").style.color = breaker === "closed" ? colors.accent : breaker === "open" ? colors.bad : colors.warn;
  const queues = Object.entries(health.queues || {});
  const dead = queues.reduce((n, [, q]) => n + q.dead_letters, 0);
  el("dead-letters").textContent = String(dead);
  el("dead-letters").style.color = dead > 0 ? colors.bad : colors.ink;
  bars("queue-chart", queues.map(([name, q]) => [name, q.depth]), () => colors.accent, queues.map(([name, q]) => [name, q.dead_letters]));
  el("reasons").textContent = (health.reasons || []).join(" · ");
}

function renderSummary(summary) {
  const now = Date.now();
  const total = summary.orders_total;
  if (lastTotal !== null) {
    const seconds = Math.max(0.001, (now - lastAt) / 1000);
    rates.push(Math.max(0, (total - lastTotal) / seconds));
    while (rates.length > HISTORY) rates.shift();
  }
  lastTotal = total;
  lastAt = now;
  el("rate").textContent = rates.length ? rates[rates.length - 1].toFixed(1) : "0.0";
  el("orders-total").textContent = String(total);
  el("revenue").textContent = money(summary.revenue);
  line("rate-chart", Array(HISTORY - rates.length).fill(0).concat(rates));
  bars("status-chart", Object.entries(summary.orders_by_status), (s) => statusColors[s] || colors.ink);
  const units = Object.entries(summary.units_by_sku).sort((a, b) => b[1] - a[1]).slice(0, 12);
  bars("units-chart", units, () => colors.accent);
  const days = summary.daily.slice(-14).map((d) => [d.date.slice(5), Object.values(d.revenue).reduce((n, v) => n + Number(v), 0)]);
  bars("revenue-chart", days.map(([d, v]) => [d, Math.round(v * 100) / 100]), () => colors.warn);
}

async function tick() {
  const bearer = token();
  try {
    renderHealth(await getJson("/health"));
  } catch (error) {
    el("status").textContent = "unreachable";
    el("status").className = "badge down";
  }
  if (!bearer) {
    el("login").hidden = false;
    return;
  }
  try {
    renderSummary(await getJson("/api/v1/analytics/summary", bearer));
    el("board").hidden = false;
    el("login").hidden = true;
  } catch (error) {
    if (error.message === "unauthorized") {
      sessionStorage.removeItem("orderly-token");
      el("board").hidden = true;
      el("login").hidden = false;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  el("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("orderly-token", el("token").value.trim());
    tick();
  });
  tick();
  setInterval(tick, POLL_MS);
});
