// Signed reads in the browser (ledger/reads.py): an access.read transaction naming the
// request, signed with SM2 (SM3, Z_A with ID 1234567812345678, DER) by sm-crypto. The key
// is read from a PEM file chosen by the user and kept in this page's memory only; a
// passphrase-protected one (PKCS#8 PBES2: PBKDF2-HMAC-SHA1/SHA-2 with SM4-CBC or AES-CBC,
// what govledger, Tongsuo and OpenSSL write) is opened here with the passphrase typed.
"use strict";
const GovSign = (() => {
  let KEY = null;  // {priv: hex, pub: Uint8Array(65), name}

  function pemToDer(pem) {
    const m = pem.match(/-----BEGIN ([A-Z ]+)-----([\s\S]+?)-----END \1-----/);
    if (!m) throw new Error("not a PEM file");
    if (m[1] !== "PRIVATE KEY" && m[1] !== "ENCRYPTED PRIVATE KEY") throw new Error(`expected a PRIVATE KEY, found ${m[1]}`);
    return {encrypted: m[1] === "ENCRYPTED PRIVATE KEY", der: Uint8Array.from(atob(m[2].replace(/\s+/g, "")), c => c.charCodeAt(0))};
  }

  // DER, just enough for EncryptedPrivateKeyInfo: {tag, body, end} of the element at i.
  function tlv(der, i) {
    if (i + 2 > der.length) throw new Error("the key file is cut short");
    const tag = der[i];
    let len = der[i + 1], p = i + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n < 1 || n > 3 || p + n > der.length) throw new Error("the key file is malformed");
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + der[p++];
    }
    if (p + len > der.length) throw new Error("the key file is cut short");
    return {tag, body: der.subarray(p, p + len), end: p + len};
  }
  function children(el) {
    const out = [];
    for (let i = 0; i < el.body.length;) { const c = tlv(el.body, i); out.push(c); i = c.end; }
    return out;
  }
  function oid(el) {
    const b = el.body, parts = [Math.floor(b[0] / 40), b[0] % 40];
    for (let i = 1, v = 0; i < b.length; i++) { v = v * 128 + (b[i] & 0x7f); if (!(b[i] & 0x80)) { parts.push(v); v = 0; } }
    return parts.join(".");
  }
  const PRF = {"1.2.840.113549.2.7": "SHA-1", "1.2.840.113549.2.9": "SHA-256",
               "1.2.840.113549.2.10": "SHA-384", "1.2.840.113549.2.11": "SHA-512"};
  const CIPHERS = {"1.2.156.10197.1.104.2": ["SM4", 16], "2.16.840.1.101.3.4.1.2": ["AES-CBC", 16],
                   "2.16.840.1.101.3.4.1.22": ["AES-CBC", 24], "2.16.840.1.101.3.4.1.42": ["AES-CBC", 32]};

  // PKCS#8 PBES2 (RFC 8018) -> the plain PKCS#8 DER inside.
  async function decryptPkcs8(der, passphrase) {
    const [alg, data] = children(tlv(der, 0));
    const [schemeOid, params] = children(alg);
    if (oid(schemeOid) !== "1.2.840.113549.1.5.13") throw new Error("the key is encrypted with a scheme other than PBES2");
    const [kdf, enc] = children(params);
    const [kdfOid, kdfParams] = children(kdf);
    if (oid(kdfOid) !== "1.2.840.113549.1.5.12") throw new Error("the key's passphrase scheme is not PBKDF2");
    const [salt, iterEl, ...rest] = children(kdfParams);
    const iterations = iterEl.body.reduce((a, b) => a * 256 + b, 0);
    const prfEl = rest.find(e => e.tag === 0x30);
    const hash = prfEl ? PRF[oid(children(prfEl)[0])] : "SHA-1";
    const [encOid, ivEl] = children(enc);
    const cipher = CIPHERS[oid(encOid)];
    if (!hash || !cipher) throw new Error("the key is encrypted with a hash or cipher this page does not know");
    const base = await crypto.subtle.importKey("raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveBits"]);
    const key = new Uint8Array(await crypto.subtle.deriveBits(
      {name: "PBKDF2", salt: salt.body, iterations, hash}, base, cipher[1] * 8));
    const wrong = () => new Error("wrong passphrase (the key does not decrypt)");
    try {
      if (cipher[0] === "SM4") {
        return Uint8Array.from(sm4.decrypt(Array.from(data.body), Array.from(key),
                                           {mode: "cbc", iv: Array.from(ivEl.body), output: "array"}));
      }
      const aes = await crypto.subtle.importKey("raw", key, "AES-CBC", false, ["decrypt"]);
      return new Uint8Array(await crypto.subtle.decrypt({name: "AES-CBC", iv: ivEl.body}, aes, data.body));
    } catch { throw wrong(); }
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

  // The key in ``file`` (a PEM), opened with ``passphrase`` if it is protected by one.
  async function loadKeyFile(file, passphrase) {
    const pem = pemToDer(await file.text());
    let der = pem.der;
    if (pem.encrypted) {
      if (!passphrase) throw new Error("this key is passphrase-protected: type its passphrase, then choose the file again");
      der = await decryptPkcs8(der, passphrase);
    }
    try {
      KEY = parseSm2(der);
    } catch (e) {  // garbage from a wrong passphrase that happened to unpad
      if (pem.encrypted && !e.message.startsWith("not an SM2")) throw new Error("wrong passphrase (the key does not decrypt)");
      throw e;
    }
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
