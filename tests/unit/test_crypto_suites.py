"""Behaviour both suites share: AEAD errors, verify never raising, key caching, ECDH, KDF."""

from __future__ import annotations

import logging

import pytest

from ledger.crypto import PrivateKey, get_suite, sm2_backend_name
from ledger.errors import CryptoError, KeyFileError

pytestmark = pytest.mark.crypto

SUITES = ["sm", "intl"]


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    """One key per suite for the module (SM2 key generation can be slow under gmssl)."""
    return {name: get_suite(name).generate_key() for name in SUITES}


@pytest.mark.parametrize("name", SUITES)
def test_aead_round_trip_and_failures(name: str) -> None:
    """Goal: AEAD opens what it sealed and refuses anything altered or mis-sized with
    CryptoError. Method: seal, open; then wrong key, nonce, aad, truncated and short
    inputs; sealing with a wrong-size key or nonce is our bug (ValueError)."""
    suite = get_suite(name)
    key, nonce = bytes(range(suite.aead_key_size)), b"n" * 12
    sealed = suite.aead_seal(key, nonce, b"secret", b"header")
    assert len(sealed) == len(b"secret") + 16
    assert suite.aead_open(key, nonce, sealed, b"header") == b"secret"
    assert suite.aead_open(key, nonce, suite.aead_seal(key, nonce, b"")) == b""
    other_key = bytes(suite.aead_key_size)
    for args, message in [
        ((other_key, nonce, sealed, b"header"), "authentication failed"),
        ((key, b"m" * 12, sealed, b"header"), "authentication failed"),
        ((key, nonce, sealed, b"headers"), "authentication failed"),
        ((key, nonce, sealed[1:], b"header"), "authentication failed"),
        ((key, nonce, sealed[:15], b"header"), "shorter than its tag"),
        ((key, b"n" * 16, sealed, b"header"), "nonce must be 12 bytes"),
        ((key[:-1], nonce, sealed, b"header"), f"key must be {suite.aead_key_size} bytes"),
    ]:
        with pytest.raises(CryptoError, match=message):
            suite.aead_open(*args)
    with pytest.raises(ValueError, match="byte key"):
        suite.aead_seal(key + b"x", nonce, b"secret")
    with pytest.raises(ValueError, match="byte nonce"):
        suite.aead_seal(key, nonce[:8], b"secret")


@pytest.mark.parametrize("name", SUITES)
def test_verify_never_raises_on_garbage(name: str, keys: dict[str, PrivateKey]) -> None:
    """Goal: verification sees untrusted input and answers False instead of raising.
    Method: garbage public keys and signatures of assorted types and lengths, via
    Suite.verify and PublicKey.verify; a bad purpose is still our bug (ValueError)."""
    suite, key = get_suite(name), keys[name]
    raw = key.public_key().raw
    signature = key.sign("tx", b"m")
    bad_keys: list[object] = [b"", b"\x04", raw[:-1], raw + b"\x00", bytearray(raw[:-1]), "str"]
    bad_signatures: list[object] = [b"", b"\x30", signature[:-1], signature + b"\x00", None, 7]
    for bad_key in bad_keys:
        assert suite.verify(bad_key, "tx", b"m", signature) is False  # type: ignore[arg-type]
    for bad_signature in bad_signatures:
        assert suite.verify(raw, "tx", b"m", bad_signature) is False  # type: ignore[arg-type]
        assert key.public_key().verify("tx", b"m", bad_signature) is False  # type: ignore[arg-type]
    assert suite.verify(bytearray(raw), "tx", b"m", signature) is True  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="purpose"):
        suite.verify(raw, "TX", b"m", signature)


@pytest.mark.parametrize("name", SUITES)
def test_parsed_public_keys_are_cached(name: str, keys: dict[str, PrivateKey]) -> None:
    """Goal: verification parses each public key once (bounded LRU). Method: two lookups
    of the same raw key return the same object; the cache reports hits and its bound."""
    suite = get_suite(name)
    raw = keys[name].public_key().raw
    assert suite.public_key(raw) is suite.public_key(bytes(bytearray(raw)))
    info = suite._cached_public.cache_info()
    assert info.hits >= 1 and info.maxsize == 4096


@pytest.mark.parametrize("name", SUITES)
def test_signatures_are_suite_specific_sizes(name: str, keys: dict[str, PrivateKey]) -> None:
    """Goal: raw keys and signatures have the documented encodings. Method: check sizes and
    that SM2 signatures are DER SEQUENCEs."""
    raw, signature = keys[name].public_key().raw, keys[name].sign("tx", b"m")
    if name == "sm":
        assert len(raw) == 65 and raw[0] == 4 and signature[0] == 0x30 and len(signature) <= 72
    else:
        assert len(raw) == 32 and len(signature) == 64


def test_intl_key_agreement() -> None:
    """Goal: suite "intl" key agreement is X25519 and rejects bad peer keys. Method: two
    pairs agree; a wrong length and the all-zero (small-order) point are KeyFileErrors; the
    KDF stretches the secret to the length asked."""
    suite = get_suite("intl")
    mine, my_public = suite.generate_ephemeral()
    theirs, their_public = suite.generate_ephemeral()
    secret = suite.agree(mine, their_public)
    assert secret == suite.agree(theirs, my_public) and len(secret) == 32
    with pytest.raises(KeyFileError, match="32 bytes, not 31"):
        suite.agree(mine, their_public[:31])
    with pytest.raises(KeyFileError, match="small-order"):
        suite.agree(mine, bytes(32))
    assert len(suite.kdf(secret, b"transport", 64)) == 64
    assert suite.kdf(secret, b"a", 32) != suite.kdf(secret, b"b", 32)


def test_backend_choice_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: the node log says which SM2 backend is in use, once. Method: the name is one
    of the two; asking again logs nothing more (the choice is cached). The first-time
    message itself is checked in a fresh interpreter in test_crypto_sm2.py."""
    first = sm2_backend_name()
    with caplog.at_level(logging.INFO, logger="govledger.crypto"):
        assert sm2_backend_name() == first and first in ("tongsuopy", "gmssl")
        assert sm2_backend_name() == get_suite("sm").backend.name  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "SM2 backend" in r.getMessage()]
