// Chinese-first labels with an English toggle (stored in localStorage).
"use strict";
const I18N = {
  zh: {
    "brand": "govledger 政务联盟链", "nav.explorer": "区块浏览", "nav.verify": "证照核验",
    "nav.funds": "资金追踪", "nav.alerts": "预警",
    "footer": "数据由本节点提供；证照核验结果可离线复核（govledger cert verify --offline）。",
    "height": "区块高度", "view": "视图", "primary": "主节点", "peers": "在线对等节点",
    "mempool": "待处理交易", "latency": "提交至确认 p50", "chain": "链标识", "stable": "稳定检查点",
    "latest_blocks": "最新区块", "time": "时间", "proposer": "提议节点", "txs": "交易数", "transactions": "交易",
    "signers": "提交证书签名", "hash": "区块哈希", "block": "区块", "type": "类型", "sender": "发送方",
    "result": "结果", "back": "返回", "header": "区块头", "no_txs": "本区块没有交易",
    "validators": "验证节点", "loading": "加载中…", "error": "出错了",
    "restricted": "内容受限", "restricted.why": "资金流与签名查询的内容只向审计人员的签名查询显示；此处为其默克尔叶哈希",
    "verify.title": "电子证照核验", "verify.id": "证照标识", "verify.doc": "或上传证照文件 (JSON)",
    "verify.bundle": "证明包（可选，离线核验）", "verify.agency": "核验机构统一社会信用代码（可选）",
    "verify.at": "核验日期（可选）", "verify.go": "核验", "verify.valid": "有效 VALID",
    "verify.invalid": "无效 INVALID", "verify.checks": "核验项", "verify.history": "状态历史",
    "verify.status": "状态：", "verify.download": "下载证明包",
    "verify.offline": "只凭创世文件离线复核，不依赖任何节点：",
    "funds.title": "资金追踪", "funds.tag": "资金标识", "funds.key": "审计人员密钥 (PEM，仅在本浏览器内签名)",
    "funds.go": "追踪", "funds.balance": "资金余额表", "funds.need_key": "资金追踪需要审计局签名查询：请先选择密钥文件。",
    "funds.pass": "密钥口令（如有）", "funds.back": "支付反向追溯", "funds.back_go": "追溯至预算来源", "funds.payment": "支付",
    "funds.paid_by": "由", "funds.from": "来自",
    "alerts.title": "预警", "alerts.rule": "规则", "alerts.severity": "级别", "alerts.flows": "相关资金流",
    "alerts.why": "原因", "alerts.none": "暂无预警", "alerts.all": "全部规则",
  },
  en: {
    "brand": "govledger consortium ledger", "nav.explorer": "Explorer", "nav.verify": "Verify certificate",
    "nav.funds": "Fund trail", "nav.alerts": "Alerts",
    "footer": "Served by this node; certificate verdicts can be re-checked offline (govledger cert verify --offline).",
    "height": "Height", "view": "View", "primary": "Primary", "peers": "Peers connected",
    "mempool": "Pending transactions", "latency": "Submit→commit p50", "chain": "Chain id",
    "stable": "Stable checkpoint", "latest_blocks": "Latest blocks", "time": "Time", "proposer": "Proposer",
    "txs": "Transactions", "transactions": "Transactions", "signers": "Commit certificate signers", "hash": "Block hash", "block": "Block",
    "type": "Type", "sender": "Sender", "result": "Result", "back": "Back", "header": "Header",
    "no_txs": "No transactions in this block", "validators": "Validators", "loading": "Loading…", "error": "Error",
    "restricted": "restricted", "restricted.why": "Fund flows and signed reads are shown whole only to an auditor's signed read; here, their Merkle leaf hash",
    "verify.title": "Verify an e-certificate", "verify.id": "Certificate identifier",
    "verify.doc": "or upload the certificate document (JSON)", "verify.bundle": "Proof bundle (optional, offline check)",
    "verify.agency": "Verifying agency USCC (optional)", "verify.at": "As of date (optional)", "verify.go": "Verify",
    "verify.valid": "VALID", "verify.invalid": "INVALID", "verify.checks": "Checks", "verify.history": "Status history",
    "verify.status": "Status:", "verify.download": "Download the proof bundle",
    "verify.offline": "Re-check it offline from the genesis file alone, trusting no node:",
    "funds.title": "Fund trail", "funds.tag": "Fund tag", "funds.key": "Auditor key (PEM; signs in this browser only)",
    "funds.go": "Trace", "funds.balance": "Balance sheet", "funds.need_key": "Fund trails need a signed read by an auditor: choose a key file first.",
    "funds.pass": "Key passphrase (if any)", "funds.back": "Trace a payment back", "funds.back_go": "Back to its budget", "funds.payment": "Payment",
    "funds.paid_by": "paid by", "funds.from": "from",
    "alerts.title": "Alerts", "alerts.rule": "Rule", "alerts.severity": "Severity", "alerts.flows": "Flows",
    "alerts.why": "Why", "alerts.none": "No alerts", "alerts.all": "All rules",
  },
};
let LANG = localStorage.getItem("govledger.lang") || "zh";
function t(key) { return (I18N[LANG] && I18N[LANG][key]) || I18N.zh[key] || key; }
function applyI18n(root = document) {
  root.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  const btn = document.getElementById("lang");
  if (btn) btn.textContent = LANG === "zh" ? "EN" : "中文";
}
function toggleLang() { LANG = LANG === "zh" ? "en" : "zh"; localStorage.setItem("govledger.lang", LANG); }
