"""Fast one-shot SM3 / SHA-256 and their HMACs, picked once at import.

Hashing is on the hot path (Merkle trees, the state tree), so each function
is the fastest implementation that passes a known-answer test here. Measured
on x86-64 (CPython 3.11, OpenSSL 3.0) for a 64-byte input:

- ``hashlib`` object made once, ``.copy()`` + update: ~1.6 µs SM3, ~0.5 µs SHA-256
- ``hashlib.new("sm3", data)``: ~3.0 µs
- ``cryptography`` ``hashes.Hash(SM3())``: ~3.4 µs
- ``tongsuopy`` ``hashes.Hash(SM3())``: ~9.4 µs

Copying a pre-made object skips the name lookup and EVP fetch on every call.
``hashlib`` only has SM3 when the OpenSSL it links was built with it, so
``cryptography`` (whose wheels always include SM3) is the fallback.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

SM3_ABC = bytes.fromhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
SHA256_ABC = bytes.fromhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

Hasher = Callable[[bytes], bytes]
KeyedHasher = Callable[[bytes, bytes], bytes]


def _hashlib_copier(name: str) -> Hasher | None:
    try:
        base = hashlib.new(name)
    except ValueError:
        return None

    def digest(data: bytes) -> bytes:
        h = base.copy()
        h.update(data)
        return h.digest()

    return digest


def _cryptography_hasher(algorithm: Callable[[], hashes.HashAlgorithm]) -> Hasher:
    def digest(data: bytes) -> bytes:
        h = hashes.Hash(algorithm())
        h.update(data)
        return h.finalize()

    return digest


def _pick(name: str, candidates: list[Hasher | None], abc_digest: bytes) -> tuple[Hasher, str]:
    for index, candidate in enumerate(candidates):
        try:
            if candidate is not None and candidate(b"abc") == abc_digest:
                return candidate, ("hashlib", "cryptography")[index]
        except Exception:  # an OpenSSL without the algorithm; try the next one
            continue
    raise ImportError(f"no working {name} implementation (hashlib and cryptography both failed)")


sm3, SM3_IMPLEMENTATION = _pick(
    "SM3", [_hashlib_copier("sm3"), _cryptography_hasher(hashes.SM3)], SM3_ABC
)
sha256, SHA256_IMPLEMENTATION = _pick(
    "SHA-256", [_hashlib_copier("sha256"), _cryptography_hasher(hashes.SHA256)], SHA256_ABC
)


def _hmac_function(name: str, algorithm: Callable[[], hashes.HashAlgorithm]) -> KeyedHasher:
    def via_hashlib(key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, name)

    def via_cryptography(key: bytes, data: bytes) -> bytes:
        mac = crypto_hmac.HMAC(key, algorithm())
        mac.update(data)
        return mac.finalize()

    try:
        if via_hashlib(b"key", b"abc") == via_cryptography(b"key", b"abc"):
            return via_hashlib
    except ValueError:  # hashlib's OpenSSL lacks the digest
        pass
    return via_cryptography


hmac_sm3 = _hmac_function("sm3", hashes.SM3)
hmac_sha256 = _hmac_function("sha256", hashes.SHA256)
