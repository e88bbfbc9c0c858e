// Signed reads in the browser (ledger/reads.py): an access.read transaction naming the
// request, signed with SM2 (SM3, Z_A with ID 1234567812345678, DER) by sm-crypto. The key
// is read from a PEM file chosen by the user and kept in this page's memory only.
"use strict";
const GovSign = (() => {
  let KEY = null;  // {priv: hex, pub: Uint8Array(65), name}

  function pemToDer(pem) {
    const m = pem.match(/-----BEGIN ([A-Z ]+)-----([\s\S]+?)-----END \1-----/);
    if (!m) throw new Error("not a PEM file");
    if (m[1] === "ENCRYPTED PRIVATE KEY") throw new Error("this key is passphrase-protected; the browser accepts only unencrypted PKCS#8 keys");
    if (m[1] !== "PRIVATE KEY") throw new Error(`expected a PRIVATE KEY, found ${m[1]}`);
    return Uint8Array.from(atob(m[2].replace(/\s+/g, "")), c => c.charCodeAt(0));
  }
  function find(der, pattern, from = 0) {
    outer: for (let i = from; i <= der.length - pattern.length; i++) {
      for (let j = 0; j < pattern.length; j++) if (der[i + j] !== pattern[j]) continue outer;
      return i;
    }
    return -1;
  }
  // PKCS#8 -> SEC1 ECPrivateKey: version 1, OCTET STRING(32) private scalar, [1] BIT STRING public point.
  function parseSm2(der) {
    const SM2_OID = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
    if (find(der, SM2_OID) < 0) throw new Error("not an SM2 key (the browser signs with SM2 only)");
    const p = find(der, [0x02, 0x01, 0x01, 0x04, 0x20]);
    if (p < 0) throw new Error("no private scalar in the key");
    const priv = der.slice(p + 5, p + 37);
    const q = find(der, [0x03, 0x42, 0x00, 0x04], p + 37);
    let pub;
    if (q >= 0) pub = der.slice(q + 3, q + 3 + 65);
    else pub = GovMsgpack.unhex("04" + sm2.getPublicKeyFromPrivateKey(GovMsgpack.hex(priv)).slice(2));
    return {priv: GovMsgpack.hex(priv), pub};
  }

  async function loadKeyFile(file) {
    const text = await file.text();
    KEY = parseSm2(pemToDer(text));
    KEY.file = file.name;
    return GovMsgpack.hex(KEY.pub);
  }

  const TAG = new TextEncoder().encode("govledger/tx/v1\u0000");

  function header(chainId, method, path, query) {
    if (!KEY) throw new Error("no key loaded");
    const nonce = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    const body = {chain_id: chainId, type: "access.read", nonce, sender: KEY.pub,
                  valid_until: Date.now() + 150000,
                  payload: {method, path, query: Object.fromEntries(Object.entries(query || {}).map(([k, v]) => [k, String(v)]))}};
    const bodyBytes = GovMsgpack.encode(body);
    const msg = new Uint8Array(TAG.length + bodyBytes.length);
    msg.set(TAG); msg.set(bodyBytes, TAG.length);
    const sigHex = sm2.doSignature(Array.from(msg), KEY.priv, {hash: true, der: true, publicKey: GovMsgpack.hex(KEY.pub)});
    const tx = {...body, sig: GovMsgpack.unhex(sigHex)};
    return GovMsgpack.hex(GovMsgpack.encode(tx));
  }

  async function signedGet(path, query = {}) {
    const st = STATUS || await loadStatus();
    const qs = new URLSearchParams(Object.entries(query).sort()).toString();
    return api(path + (qs ? "?" + qs : ""), {headers: {"X-Govledger-Read": header(st.chain_id, "GET", path, query)}});
  }

  return {loadKeyFile, signedGet, hasKey: () => KEY !== null, keyName: () => (KEY ? KEY.file : null)};
})();
