// Canonical msgpack (the subset govledger signs: nil, bool, integers, UTF-8 strings, bytes,
// arrays, maps with string keys sorted by their UTF-8 bytes, shortest forms) — the same
// rules as ledger/codec.py, so a transaction built here has the bytes the node verifies.
"use strict";
const GovMsgpack = (() => {
  const enc = new TextEncoder();
  function cmpBytes(a, b) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }
  function encode(value) {
    const out = [];
    const push = (...bytes) => { for (const b of bytes) out.push(b & 0xff); };
    const pushN = (n, width) => { for (let i = width - 1; i >= 0; i--) push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn)); };
    function int(v) {
      const n = BigInt(v);
      if (n >= 0n) {
        if (n < 128n) push(Number(n));
        else if (n < 256n) { push(0xcc); pushN(n, 1); }
        else if (n < 65536n) { push(0xcd); pushN(n, 2); }
        else if (n < 4294967296n) { push(0xce); pushN(n, 4); }
        else { push(0xcf); pushN(n, 8); }
      } else {
        if (n >= -32n) push(Number(n) & 0xff);
        else if (n >= -128n) { push(0xd0); pushN(n & 0xffn, 1); }
        else if (n >= -32768n) { push(0xd1); pushN(n & 0xffffn, 2); }
        else if (n >= -2147483648n) { push(0xd2); pushN(n & 0xffffffffn, 4); }
        else { push(0xd3); pushN(n & 0xffffffffffffffffn, 8); }
      }
    }
    function str(s) {
      const b = enc.encode(s);
      if (b.length < 32) push(0xa0 | b.length);
      else if (b.length < 256) push(0xd9, b.length);
      else if (b.length < 65536) { push(0xda); pushN(b.length, 2); }
      else { push(0xdb); pushN(b.length, 4); }
      for (const x of b) out.push(x);
    }
    function bin(b) {
      if (b.length < 256) push(0xc4, b.length);
      else if (b.length < 65536) { push(0xc5); pushN(b.length, 2); }
      else { push(0xc6); pushN(b.length, 4); }
      for (const x of b) out.push(x);
    }
    function walk(v) {
      if (v === null || v === undefined) push(0xc0);
      else if (v === true) push(0xc3);
      else if (v === false) push(0xc2);
      else if (typeof v === "bigint") int(v);
      else if (typeof v === "number") {
        if (!Number.isSafeInteger(v)) throw new Error("only integers can be encoded");
        int(v);
      } else if (typeof v === "string") str(v);
      else if (v instanceof Uint8Array) bin(v);
      else if (Array.isArray(v)) {
        if (v.length < 16) push(0x90 | v.length); else if (v.length < 65536) { push(0xdc); pushN(v.length, 2); }
        else { push(0xdd); pushN(v.length, 4); }
        v.forEach(walk);
      } else if (typeof v === "object") {
        const keys = Object.keys(v).map(k => [k, enc.encode(k)]).sort((a, b) => cmpBytes(a[1], b[1]));
        if (keys.length < 16) push(0x80 | keys.length); else if (keys.length < 65536) { push(0xde); pushN(keys.length, 2); }
        else { push(0xdf); pushN(keys.length, 4); }
        for (const [k] of keys) { str(k); walk(v[k]); }
      } else throw new Error("cannot encode " + typeof v);
    }
    walk(value);
    return new Uint8Array(out);
  }
  const hex = b => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
  const unhex = s => new Uint8Array((s.match(/../g) || []).map(h => parseInt(h, 16)));
  return { encode, hex, unhex };
})();
