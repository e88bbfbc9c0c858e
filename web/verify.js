// Certificate verification page: identifier or document (+ optional bundle) -> verdict.
"use strict";
(() => {
  const CHECK_NAMES = {
    zh: {document: "文件格式", signature: "签发机关签名", anchored: "上链存证（摘要一致）", status: "证照状态",
         validity: "有效期", issuer_authorised: "签发机关授权", recognised: "互认协议", proofs: "链上证明"},
    en: {document: "Document", signature: "Issuer signature", anchored: "Anchored (digest matches)", status: "Status",
         validity: "Validity window", issuer_authorised: "Issuer authorised", recognised: "Mutual recognition", proofs: "Proofs"},
  };
  const EVENTS = {zh: {issue: "签发", suspend: "中止", reinstate: "恢复", revoke: "吊销", renew: "换发", supersede: "被换发"},
                  en: {}};
  const readFile = (file, asBytes) => new Promise((ok, fail) => {
    const r = new FileReader();
    r.onload = () => ok(r.result); r.onerror = () => fail(r.error);
    asBytes ? r.readAsArrayBuffer(file) : r.readAsText(file);
  });

  window.pageVerify = async function (main, arg) {
    main.innerHTML = `<h1>${esc(t("verify.title"))}</h1>
      <div class="panel">
        <div class="row"><label for="cert-id">${esc(t("verify.id"))}</label>
          <input type="text" id="cert-id" placeholder="1.2.156.3005.2.…" value="${esc(arg || "")}"></div>
        <div class="row"><label for="cert-doc">${esc(t("verify.doc"))}</label><input type="file" id="cert-doc" accept=".json,application/json"></div>
        <div class="row"><label for="cert-bundle">${esc(t("verify.bundle"))}</label><input type="file" id="cert-bundle"></div>
        <div class="row"><label for="cert-agency">${esc(t("verify.agency"))}</label><input type="text" id="cert-agency" placeholder="11350100MB1F00049U"></div>
        <div class="row"><label for="cert-at">${esc(t("verify.at"))}</label><input type="date" id="cert-at">
          <button class="primary" id="verify-go">${esc(t("verify.go"))}</button></div>
      </div>
      <div id="verdict"></div><div id="history"></div>`;
    $("#verify-go", main).onclick = () => run(main);
    $("#cert-id", main).onkeydown = e => { if (e.key === "Enter") run(main); };
    if (arg) run(main);
  };

  // The proof bundle of what was just verified, for a verdict that trusts no node: saved
  // here, it is checked with the genesis file alone (govledger cert verify --offline).
  function offerBundle(out, certId, agency) {
    const name = `${certId}.bundle`;
    out.insertAdjacentHTML("beforeend", `<div class="row" id="bundle-row">
        <button id="bundle-download">${esc(t("verify.download"))}</button>
        <span class="muted">${esc(t("verify.offline"))}
          <code>govledger cert verify ${esc(certId)} --offline --bundle ${esc(name)} --genesis genesis.json${
            agency ? ` --as-agency ${esc(agency)}` : ""}</code></span>
        <span class="error" id="bundle-error"></span></div>`);
    $("#bundle-download", out).onclick = async () => {
      $("#bundle-error", out).textContent = "";
      try {
        const query = agency ? `?agency=${encodeURIComponent(agency)}` : "";
        const resp = await fetch(`/v1/certs/${encodeURIComponent(certId)}/proof${query}`,
                                 {headers: {Accept: "application/msgpack"}});
        if (!resp.ok) {
          let detail = resp.statusText;
          try { detail = (await resp.json()).detail || detail; } catch { /* not JSON */ }
          throw new Error(`${resp.status}: ${detail}`);
        }
        const url = URL.createObjectURL(new Blob([await resp.arrayBuffer()], {type: "application/msgpack"}));
        const a = document.createElement("a");
        a.href = url; a.download = name;
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (e) {
        $("#bundle-error", out).textContent = `${t("error")}: ${e.message}`;
      }
    };
  }

  async function run(main) {
    const out = $("#verdict", main), hist = $("#history", main);
    out.innerHTML = `<p class="muted">${esc(t("loading"))}</p>`; hist.innerHTML = "";
    const body = {};
    try {
      const id = $("#cert-id", main).value.trim();
      const docFile = $("#cert-doc", main).files[0], bundleFile = $("#cert-bundle", main).files[0];
      if (docFile) body.document = JSON.parse(await readFile(docFile, false));
      else if (id) body.id = id;
      else { out.innerHTML = `<p class="error">${esc(t("verify.id"))}?</p>`; return; }
      if (bundleFile) body.bundle = GovMsgpack.hex(new Uint8Array(await readFile(bundleFile, true)));
      const agency = $("#cert-agency", main).value.trim();
      if (agency) body.agency = agency;
      const at = $("#cert-at", main).value;
      if (at) body.at = at;
      const v = await api("/v1/certs/verify", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      const names = CHECK_NAMES[LANG] || CHECK_NAMES.zh;
      const ok = v.verdict === "VALID";
      out.innerHTML = `<div class="verdict ${ok ? "valid" : "invalid"}" id="verdict-panel" data-verdict="${esc(v.verdict)}">
          <div class="big">${esc(ok ? t("verify.valid") : t("verify.invalid"))}</div>
          <div class="mono">${esc(v.cert_id || "")}</div>
          <div>${esc(t("verify.status") || "")} ${esc(v.status || "")}${v.agreement ? " · " + esc(v.agreement) : ""}</div></div>
        <h2>${esc(t("verify.checks"))}</h2>
        <table id="checks"><tbody>${v.checks.map(c => `<tr><td class="check ${c.ok ? "ok" : "bad"}">${esc(names[c.name] || c.name)}</td>
          <td>${esc(c.detail)}</td></tr>`).join("")}</tbody></table>`;
      const certId = v.cert_id || body.id;
      if (certId && v.status) offerBundle(out, certId, body.agency);
      if (certId) {
        try {
          const rec = await api(`/v1/certs/${encodeURIComponent(certId)}`);
          const ev = EVENTS[LANG] || {};
          hist.innerHTML = `<h2>${esc(t("verify.history"))}</h2><p>${esc(rec.type_name)} · ${esc(rec.issuer_name)} ·
              ${esc(rec.valid_from)} — ${esc(rec.valid_until || "长期")}</p>
            <ul class="timeline">${rec.history.map(e => `<li><b>${esc(ev[e.event] || e.event)}</b> → ${esc(e.status)}
              <span class="muted">${esc(fmtTime(e.time))} · #${e.height}</span>${e.reason ? `<div>${esc(e.reason)}</div>` : ""}</li>`).join("")}</ul>`;
        } catch { /* not on this ledger: the verdict already says so */ }
      }
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }
})();
