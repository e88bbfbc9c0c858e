// Fund trail (interactive tree from appropriation to payees, amounts on edges, alerts
// highlighted, balance sheet, any payment traced back up to its budget) and the alerts page. Both are signed reads by an auditor:
// the key is chosen here and used by GovSign in this page only.
"use strict";
(() => {
  const RULES = {
    zh: {split_payment: "拆分支付", licence: "收款方营业执照异常", circular_flow: "资金回流", idle_balance: "资金闲置",
         payment_date: "支付日期异常", prohibited_function: "直达资金违规科目"},
    en: {split_payment: "Split payments", licence: "Payee licence problem", circular_flow: "Circular flow",
         idle_balance: "Idle balance", payment_date: "Payment date", prohibited_function: "Prohibited function code"},
  };
  const SEV = {zh: {high: "高", medium: "中", low: "低"}, en: {high: "high", medium: "medium", low: "low"}};
  const ruleName = r => ((RULES[LANG] || RULES.zh)[r] || r);

  function keyPanel(onLoaded) {
    const wrap = document.createElement("div");
    wrap.className = "row";
    wrap.innerHTML = `<label for="auditor-key">${esc(t("funds.key"))}</label>
      <input type="password" id="key-pass" autocomplete="off" placeholder="${esc(t("funds.pass"))}">
      <input type="file" id="auditor-key" accept=".pem">
      <span id="key-state" class="muted">${esc(GovSign.keyName() || "")}</span>`;
    $("#auditor-key", wrap).onchange = async e => {
      try {
        const pub = await GovSign.loadKeyFile(e.target.files[0], $("#key-pass", wrap).value);
        $("#key-pass", wrap).value = "";
        let who = pub.slice(0, 16) + "…";
        try { const a = await api(`/v1/accounts/${pub}`); who = `${a.name} (${a.roles.join(", ")})`; } catch { /* unknown key */ }
        $("#key-state", wrap).textContent = who;
        onLoaded && onLoaded();
      } catch (err) { $("#key-state", wrap).innerHTML = `<span class="error">${esc(err.message)}</span>`; }
    };
    return wrap;
  }

  // -- fund trail ---------------------------------------------------------------------------

  window.pageFunds = async function (main, arg) {
    main.innerHTML = `<h1>${esc(t("funds.title"))}</h1><div class="panel" id="fund-form">
        <div class="row"><label for="fund-tag">${esc(t("funds.tag"))}</label>
          <select id="fund-tag"></select><input type="text" id="fund-tag-text" placeholder="FJ2026-…" value="${esc(arg || "")}">
          <button class="primary" id="fund-go">${esc(t("funds.go"))}</button></div></div>
      <div id="fund-out"></div>`;
    $("#fund-form", main).appendChild(keyPanel(() => run(main)));
    try {
      const roots = await api("/v1/funds?limit=50");
      const sel = $("#fund-tag", main);
      sel.innerHTML = `<option value="">—</option>` + (roots.funds || []).map(f =>
        `<option value="${esc(f.tag)}">${esc(f.tag)} · ${esc(f.project || f.holder_name || "")}</option>`).join("");
      sel.onchange = () => { $("#fund-tag-text", main).value = sel.value; };
    } catch { /* no fiscal app on this node */ }
    $("#fund-go", main).onclick = () => run(main);
    if (arg && GovSign.hasKey()) run(main);
  };

  function tree(trail, alertedFlows) {
    const funds = Object.fromEntries(trail.funds.map(f => [f.tag, f]));
    const payees = Object.fromEntries(trail.payees.map(p => [p.key, p]));
    const children = {};
    for (const e of trail.edges) (children[e.from] = children[e.from] || []).push(e);
    const seen = new Set();
    const label = (name, amount) => `${name}\n¥${yuan(amount)}`;
    function node(id, amount, edge) {
      const alerted = edge && edge.flows.some(f => alertedFlows.has(f));
      const style = alerted ? {itemStyle: {color: "#b3261e", borderColor: "#b3261e"}, label: {color: "#b3261e", fontWeight: "bold"}} : {};
      if (payees[id]) {
        const p = payees[id];
        return {name: label(p.name || p.id_masked || p.uscc || id, amount), value: amount, payee: true, ...style};
      }
      const f = funds[id];
      const kids = seen.has(id) ? [] : (children[id] || []).filter(e => e.kind !== "RETURN").map(e => node(e.to, e.amount, e));
      seen.add(id);
      return {name: label(f ? `${f.holder_name} ${id}` : id, amount), value: amount, children: kids, ...style};
    }
    return node(trail.tag, trail.fund.received, null);
  }

  async function run(main) {
    const out = $("#fund-out", main);
    const tag = ($("#fund-tag-text", main).value || "").trim();
    if (!tag) return;
    if (!GovSign.hasKey()) { out.innerHTML = `<p class="error">${esc(t("funds.need_key"))}</p>`; return; }
    out.innerHTML = `<p class="muted">${esc(t("loading"))}</p>`;
    try {
      const trail = await GovSign.signedGet(`/v1/funds/${encodeURIComponent(tag)}/trail`);
      let alerts = {alerts: []};
      try { alerts = await GovSign.signedGet("/v1/alerts", {limit: "500"}); } catch { /* finance officer without alerts */ }
      const flowsInTrail = new Set(trail.flows.map(f => f.flow_id));
      const mine = alerts.alerts.filter(a => a.flows.some(f => flowsInTrail.has(f)));
      const alerted = new Set(mine.flatMap(a => a.flows));
      const balance = await api(`/v1/funds/${encodeURIComponent(tag)}/balance`);
      out.innerHTML = `<p>${esc(trail.fund.project || "")} · ${esc(trail.fund.doc_no || "")} ·
          ¥${esc(yuan(trail.fund.received))} · ${trail.totals.funds} / ${trail.totals.payees} / ${trail.totals.flows}</p>
        <div id="trail-chart" class="panel"></div>
        <ul id="payees" class="muted">${trail.payees.map(p => `<li data-payee="${esc(p.name || p.uscc || p.key)}">${esc(p.name || p.id_masked || p.uscc)} ·
          ¥${esc(yuan(p.amount))}${p.uscc ? ` · ${esc(p.uscc)}` : ""}${p.id_masked ? ` · ${esc(p.id_masked)}` : ""}</li>`).join("")}</ul>
        ${mine.length ? `<h2>${esc(t("nav.alerts"))}</h2><ul>${mine.map(a => `<li><span class="tag bad">${esc(ruleName(a.rule))}</span> ${esc(a.why)}</li>`).join("")}</ul>` : ""}
        <h2>${esc(t("funds.balance"))}</h2>
        <table id="balance"><thead><tr><th>${esc(t("funds.tag"))}</th><th>单位 / unit</th><th>收到 received</th>
          <th>下拨 allocated</th><th>支出 paid</th><th>退回 returned</th><th>余额 balance</th><th>执行进度 progress</th></tr></thead>
          <tbody>${balance.rows.map(r => `<tr><td style="padding-left:${0.6 + r.depth * 1.2}rem"><code>${esc(r.tag)}</code></td>
            <td>${esc(r.holder_name)}</td><td>${yuan(r.received)}</td><td>${yuan(r.allocated)}</td><td>${yuan(r.paid)}</td>
            <td>${yuan(r.returned_out)}</td><td>${yuan(r.balance)}</td><td>${(r.progress_bp / 100).toFixed(2)}%</td></tr>`).join("")}</tbody></table>
        ${backPanel(trail)}`;
      const go = $("#back-go", out);
      if (go) go.onclick = () => traceBack(out, tag);
      const chart = echarts.init($("#trail-chart", out));
      chart.setOption({
        tooltip: {trigger: "item", formatter: p => esc(p.name).replace("\n", "<br>")},
        series: [{type: "tree", data: [tree(trail, alerted)], orient: "LR", top: "4%", bottom: "4%", left: "20%", right: "22%",
                  symbolSize: 9, initialTreeDepth: -1, expandAndCollapse: true, animationDuration: 300,
                  label: {position: "left", verticalAlign: "middle", align: "right", fontSize: 12},
                  leaves: {label: {position: "right", align: "left"}}}],
      });
      window.addEventListener("resize", () => chart.resize(), {once: true});
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }

  // -- a payment traced back up to its appropriation (signed read, as the trail) ---------------

  function payeeName(p) { return (p && (p.name || p.id_masked || p.uscc)) || ""; }
  const KINDS = {zh: {APPROPRIATION: "预算下达", ALLOCATION: "下拨", RETURN: "退回"}, en: {}};
  const kindName = k => ((KINDS[LANG] || {})[k] || k);

  function backPanel(trail) {
    const payments = trail.flows.filter(f => f.kind === "PAYMENT");
    if (!payments.length) return "";
    return `<h2>${esc(t("funds.back"))}</h2><div class="panel"><div class="row">
        <select id="back-payment">${payments.map(f => `<option value="${esc(f.flow_id)}">${esc(f.from)} →
          ${esc(payeeName(f.payee))} · ¥${esc(yuan(f.amount))} · ${esc(f.purpose || "")}</option>`).join("")}</select>
        <button id="back-go">${esc(t("funds.back_go"))}</button></div><ol id="back-path"></ol></div>`;
  }

  async function traceBack(out, tag) {
    const list = $("#back-path", out);
    list.innerHTML = `<li class="muted">${esc(t("loading"))}</li>`;
    try {
      const back = await GovSign.signedGet(`/v1/funds/${encodeURIComponent(tag)}/trail`,
                                           {backward: $("#back-payment", out).value});
      const pay = back.payment;
      const steps = [`<li data-kind="PAYMENT">${esc(t("funds.payment"))} ¥${esc(yuan(pay.amount))} →
        ${esc(payeeName(pay.payee))} · ${esc(pay.purpose || "")} · <code>${esc(pay.from)}</code></li>`];
      for (const step of back.path) {
        const f = step.fund;
        const inflows = step.inflows.map(i => `${esc(kindName(i.kind))} ¥${esc(yuan(i.amount))}` +
          (i.from ? ` ${esc(t("funds.from"))} <code>${esc(i.from)}</code>` : "") +
          (i.doc_no ? ` · ${esc(i.doc_no)}` : "")).join("; ");
        steps.push(`<li data-kind="${esc(step.inflows.map(i => i.kind).join(" "))}"><code>${esc(f.tag)}</code>
          ${esc(f.holder_name)} ← ${inflows}</li>`);
      }
      list.innerHTML = steps.join("");
    } catch (e) {
      list.innerHTML = `<li class="error">${esc(e.message)}</li>`;
    }
  }

  // -- alerts -------------------------------------------------------------------------------

  window.pageAlerts = async function (main) {
    main.innerHTML = `<h1>${esc(t("alerts.title"))}</h1><div class="panel" id="alert-form">
        <div class="row"><label for="alert-rule">${esc(t("alerts.rule"))}</label><select id="alert-rule">
          <option value="">${esc(t("alerts.all"))}</option>${Object.keys(RULES.zh).map(r => `<option value="${r}">${esc(ruleName(r))}</option>`).join("")}
        </select></div></div><div id="alert-out"></div>`;
    $("#alert-form", main).appendChild(keyPanel(() => show(main)));
    $("#alert-rule", main).onchange = () => show(main);
    if (GovSign.hasKey()) show(main);
    else $("#alert-out", main).innerHTML = `<p class="muted">${esc(t("funds.need_key"))}</p>`;
  };

  async function show(main) {
    const out = $("#alert-out", main);
    const rule = $("#alert-rule", main).value;
    out.innerHTML = `<p class="muted">${esc(t("loading"))}</p>`;
    try {
      const data = await GovSign.signedGet("/v1/alerts", rule ? {rule, limit: "200"} : {limit: "200"});
      if (!data.alerts.length) { out.innerHTML = `<p>${esc(t("alerts.none"))}</p>`; return; }
      const sev = SEV[LANG] || SEV.zh;
      out.innerHTML = `<table id="alerts"><thead><tr><th>#</th><th>${esc(t("alerts.severity"))}</th><th>${esc(t("alerts.rule"))}</th>
          <th>${esc(t("alerts.why"))}</th><th>${esc(t("alerts.flows"))}</th><th>${esc(t("time"))}</th></tr></thead><tbody>
        ${data.alerts.map(a => `<tr data-rule="${esc(a.rule)}"><td>${a.id}</td>
          <td><span class="tag ${a.severity === "high" ? "bad" : a.severity === "medium" ? "warn" : ""}">${esc(sev[a.severity] || a.severity)}</span></td>
          <td>${esc(ruleName(a.rule))}</td><td>${esc(a.why)}</td>
          <td>${(a.funds || []).map(f => `<a href="#/funds/${encodeURIComponent(f.split(".")[0])}">${esc(f)}</a>`).join(" ")}</td>
          <td class="muted">${esc(fmtTime(a.time))} · #${a.height}</td></tr>`).join("")}</tbody></table>`;
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }
})();
