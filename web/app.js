// govledger dashboard: a small hash-routed page served by every node (no build step).
// Pages: #/explorer (blocks, status), #/block/H, #/verify, #/funds, #/alerts.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const short = (h, n = 12) => (h && h.length > n ? h.slice(0, n) + "…" : h || "");
// Ledger times are shown in China Standard Time, as the nodes and the CLI report them.
const fmtTime = ms => new Date(ms).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false, timeZone: "Asia/Shanghai"}) + " CST";
const yuan = fen => (Number(fen) / 100).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {minimumFractionDigits: 2, maximumFractionDigits: 2});

async function api(path, options = {}) {
  const resp = await fetch(path, options);
  const text = await resp.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch { body = {error: "bad_response", detail: text.slice(0, 200)}; }
  if (!resp.ok) {
    const err = new Error(`${resp.status} ${body && body.error}: ${body && body.detail}`);
    err.status = resp.status; err.body = body; throw err;
  }
  return body;
}

let STATUS = null;
let NAMES = {};  // validator key hex -> name
let refreshTimer = null;

async function loadStatus() {
  STATUS = await api("/v1/status");
  NAMES = {};
  for (const [name, key] of Object.entries(STATUS.validator_keys || {})) NAMES[key] = name;
  $("#node-name").textContent = `${STATUS.node} · ${STATUS.chain_id}`;
  return STATUS;
}

function card(labelKey, value) {
  return `<div class="card"><div class="k">${esc(t(labelKey))}</div><div class="v">${esc(value)}</div></div>`;
}

// -- explorer ---------------------------------------------------------------------------------

async function pageExplorer(main) {
  const st = await loadStatus();
  const lat = st.commit_latency_ms ? `${st.commit_latency_ms.p50} ms` : "–";
  main.innerHTML = `
    <div class="cards" id="status-cards">
      ${card("height", st.height)}${card("view", st.view)}${card("primary", st.primary)}
      ${card("peers", `${st.peers} / ${st.validators.length - 1}`)}${card("mempool", st.mempool)}
      ${card("latency", lat)}${card("stable", st.stable_checkpoint)}
    </div>
    <h2>${esc(t("latest_blocks"))}</h2>
    <table id="blocks"><thead><tr><th>${esc(t("height"))}</th><th>${esc(t("time"))}</th>
      <th>${esc(t("proposer"))}</th><th>${esc(t("txs"))}</th><th>${esc(t("signers"))}</th>
      <th>${esc(t("hash"))}</th></tr></thead><tbody></tbody></table>
    <p class="muted">${esc(t("validators"))}: ${esc(st.validators.join(", "))}</p>`;
  const body = $("#blocks tbody", main);
  const heights = [];
  for (let h = st.height; h > Math.max(0, st.height - 15); h--) heights.push(h);
  const blocks = await Promise.all(heights.map(h => api(`/v1/blocks/${h}`).catch(() => null)));
  for (const b of blocks.filter(Boolean)) {
    const signers = (b.certificate ? b.certificate.signatures : []).map(s => NAMES[s.validator] || short(s.validator, 8));
    const tr = document.createElement("tr");
    tr.className = "click";
    tr.dataset.height = b.height;
    tr.innerHTML = `<td>${b.height}</td><td>${esc(fmtTime(b.header.time))}</td>
      <td>${esc(NAMES[b.header.proposer] || short(b.header.proposer))}</td><td>${b.txs.length}</td>
      <td>${esc(signers.join(", "))}</td><td><code>${esc(short(b.block_hash, 16))}</code></td>`;
    tr.onclick = () => { location.hash = `#/block/${b.height}`; };
    body.appendChild(tr);
  }
  refreshTimer = setTimeout(() => route(), 5000);
}

async function pageBlock(main, height) {
  await loadStatus();
  const b = await api(`/v1/blocks/${encodeURIComponent(height)}`);
  const results = b.results || [];
  const signers = (b.certificate ? b.certificate.signatures : []).map(s => NAMES[s.validator] || short(s.validator, 8));

  const h = b.header;
  const senders = [...new Set(b.txs.map(tx => tx.sender))];
  const who = {};
  await Promise.all(senders.map(async k => {
    try { const a = await api(`/v1/accounts/${k}`); who[k] = a.name; } catch { who[k] = null; }
  }));
  const rows = b.txs.map((tx, i) => {
    const r = results[i] || {};
    const res = r.ok ? `<span class="tag ok">ok</span>` : `<span class="tag bad">${esc(r.code)}</span> ${esc(r.reason)}`;
    const hidden = tx.redacted ? ` <span class="tag" title="${esc(t("restricted.why"))}">${esc(t("restricted"))}</span>` : "";
    return `<tr data-type="${esc(tx.type)}"><td>${i}</td><td><code>${esc(short(tx.tx_id, 16))}</code></td><td>${esc(tx.type)}${hidden}</td>
      <td>${who[tx.sender] ? esc(who[tx.sender]) : `<code>${esc(short(tx.sender, 16))}</code>`}</td><td>${res}</td></tr>`;
  }).join("");
  main.innerHTML = `<p><a href="#/explorer">← ${esc(t("back"))}</a></p>
    <h1>${esc(t("block"))} ${b.height}</h1>
    <table><tbody>
      <tr><th>${esc(t("hash"))}</th><td><code>${esc(b.block_hash)}</code></td></tr>
      <tr><th>${esc(t("time"))}</th><td>${esc(fmtTime(h.time))}</td></tr>
      <tr><th>${esc(t("proposer"))}</th><td>${esc(NAMES[h.proposer] || h.proposer)} · ${esc(t("view"))} ${h.view}</td></tr>
      <tr><th>prev_hash</th><td><code>${esc(h.prev_hash)}</code></td></tr>
      <tr><th>tx_root</th><td><code>${esc(h.tx_root)}</code></td></tr>
      <tr><th>result_root</th><td><code>${esc(h.result_root)}</code></td></tr>
      <tr><th>state_root</th><td><code>${esc(h.state_root)}</code></td></tr>
      <tr><th>${esc(t("signers"))}</th><td>${esc(signers.join(", ") || "—")}</td></tr>
    </tbody></table>
    <h2>${esc(t("transactions"))}</h2>
    ${b.txs.length ? `<table><thead><tr><th>#</th><th>tx</th><th>${esc(t("type"))}</th><th>${esc(t("sender"))}</th>
      <th>${esc(t("result"))}</th></tr></thead><tbody>${rows}</tbody></table>` : `<p class="muted">${esc(t("no_txs"))}</p>`}`;
}

// -- routing ----------------------------------------------------------------------------------

const PAGES = {
  explorer: pageExplorer,
  block: pageBlock,
  verify: (main, arg) => (window.pageVerify ? window.pageVerify(main, arg) : pageExplorer(main)),
  funds: (main, arg) => (window.pageFunds ? window.pageFunds(main, arg) : pageExplorer(main)),
  alerts: (main, arg) => (window.pageAlerts ? window.pageAlerts(main, arg) : pageExplorer(main)),
};

async function route() {
  clearTimeout(refreshTimer);
  const [, name = "explorer", ...rest] = (location.hash || "#/explorer").split("/");
  const page = PAGES[name] ? name : "explorer";
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === (page === "block" ? "explorer" : page)));
  const main = $("#main");
  if (!main.dataset.page || main.dataset.page !== page) main.innerHTML = `<p class="muted">${esc(t("loading"))}</p>`;
  main.dataset.page = page;
  try {
    if (!STATUS) await loadStatus();
    await PAGES[page](main, rest.map(decodeURIComponent).join("/"));
  } catch (e) {
    main.innerHTML = `<p class="error">${esc(t("error"))}: ${esc(e.message)}</p>`;
  }
  applyI18n();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  $("#lang").onclick = () => { toggleLang(); applyI18n(); route(); };
  applyI18n();
  route();
});
