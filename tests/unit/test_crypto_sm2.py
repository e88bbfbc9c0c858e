"""SM2 interoperability: our two backends, pure gmssl as an outside reference, OpenSSL 3 CLI.

gmssl is pure Python (~70 verifies/s), so each test does only a few SM2 operations.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from gmssl import sm2 as gmssl_sm2

from ledger.crypto import SMSuite, get_suite, load_private_key_file, sm2, tagged
from ledger.errors import InputError, KeyFileError

pytestmark = pytest.mark.crypto

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [b"", b"transfer 100 fen", bytes(range(256)) * 5]


def _available_backends() -> list[str]:
    names = ["gmssl"]
    try:
        sm2.TongsuoBackend()
        names.insert(0, "tongsuopy")
    except ImportError:
        pass
    return names


BACKENDS = _available_backends()
HAVE_TONGSUOPY = "tongsuopy" in BACKENDS
needs_tongsuopy = pytest.mark.skipif(not HAVE_TONGSUOPY, reason="tongsuopy is not installed")


def _openssl3() -> str | None:
    path = shutil.which("openssl")
    if path is None:
        return None
    version = subprocess.run([path, "version"], capture_output=True, text=True).stdout
    match = re.match(r"OpenSSL (\d+)\.", version)
    return path if match and int(match.group(1)) >= 3 else None


OPENSSL = _openssl3()
needs_openssl3 = pytest.mark.skipif(OPENSSL is None, reason="no OpenSSL >= 3 command found")


@pytest.fixture(params=["tongsuopy", "gmssl"])
def suite(request: pytest.FixtureRequest) -> SMSuite:
    """An "sm" suite on one explicitly chosen backend."""
    if request.param not in BACKENDS:
        pytest.skip(f"{request.param} is not installed")
    return SMSuite(sm2.make_backend(request.param))


def _reference(public_raw: bytes, d: int | None = None) -> gmssl_sm2.CryptSM2:
    """gmssl used directly. The public key is set after construction because gmssl's
    constructor runs ``lstrip("04")``, which corrupts keys whose X starts with 0 or 4."""
    crypt = gmssl_sm2.CryptSM2(private_key=f"{d or 1:064x}", public_key="")
    crypt.public_key = public_raw[1:].hex()
    return crypt


def _openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_gmssl_reference_verifies_our_signatures(suite: SMSuite) -> None:
    """Goal: our signatures are standard SM2 (with Z_A, default ID). Method: sign tagged
    messages with each backend and verify them with gmssl's own verify_with_sm3."""
    key = suite.generate_key()
    reference = _reference(key.public_key().raw)
    for message in MESSAGES:
        r, s = decode_dss_signature(key.sign("tx", message))
        assert reference.verify_with_sm3(f"{r:064x}{s:064x}", tagged("tx", message))


def test_we_verify_gmssl_reference_signatures(suite: SMSuite) -> None:
    """Goal: we accept standard SM2 signatures made elsewhere. Method: gmssl's
    sign_with_sm3 (random k from secrets) signs tagged messages; each backend verifies,
    and rejects them under a different purpose."""
    d = secrets.randbelow(sm2.N - 2) + 1
    raw = suite.backend.public_raw(d)
    reference = _reference(raw, d)
    for message in MESSAGES[:2]:
        k = f"{secrets.randbelow(sm2.N - 1) + 1:064x}"
        signature_hex = reference.sign_with_sm3(tagged("tx", message), k)
        der = encode_dss_signature(int(signature_hex[:64], 16), int(signature_hex[64:], 16))
        assert suite.verify(raw, "tx", message, der)
        assert not suite.verify(raw, "commit", message, der)


@needs_tongsuopy
def test_backends_verify_each_others_signatures() -> None:
    """Goal: tongsuopy and gmssl backends compute the same function, so nodes on either
    agree. Method: load one key file into both backends; each signs, the other verifies;
    altered messages fail in both; both write byte-identical key files."""
    fast = SMSuite(sm2.make_backend("tongsuopy"))
    slow = SMSuite(sm2.make_backend("gmssl"))
    pem = fast.generate_key().private_pem()
    key_fast, key_slow = fast.load_private_pem(pem), slow.load_private_pem(pem)
    raw = key_fast.public_key().raw
    assert key_slow.public_key().raw == raw
    assert key_slow.private_pem() == key_fast.private_pem() == pem
    for signer, verifier in ((key_fast, slow), (key_slow, fast)):
        signature = signer.sign("commit", b"block 7")
        assert verifier.verify(raw, "commit", b"block 7", signature)
        assert not verifier.verify(raw, "commit", b"block 8", signature)


def _integer(body: bytes) -> bytes:
    return b"\x02" + bytes([len(body)]) + body


def _sequence(*elements: bytes) -> bytes:
    content = b"".join(elements)
    return b"\x30" + bytes([len(content)]) + content


def _minimal(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _malformed_signatures(good: bytes) -> dict[str, bytes]:
    r, s = decode_dss_signature(good)
    body = good[2:]
    return {
        "empty": b"",
        "trailing byte": good + b"\x00",
        "truncated": good[:-1],
        "long-form length (BER)": b"\x30\x81" + bytes([len(body)]) + body,
        "r padded with 0x00": _sequence(_integer(b"\x00" + _minimal(r)), _integer(_minimal(s))),
        "negative r": _sequence(
            _integer((-r).to_bytes(33, "big", signed=True)), _integer(_minimal(s))
        ),
        "r = 0": encode_dss_signature(0, s),
        "s = 0": encode_dss_signature(r, 0),
        "r = n": encode_dss_signature(sm2.N, s),
        "s = n + s": encode_dss_signature(r, sm2.N + s),
        "r + s = n": encode_dss_signature(r, sm2.N - r),
        "swapped": encode_dss_signature(s, r),
        "raw r||s": r.to_bytes(32, "big") + s.to_bytes(32, "big"),
    }


def test_backends_reject_the_same_malformed_signatures(suite: SMSuite) -> None:
    """Goal: every backend returns False (never raises) for non-canonical or out-of-range
    signatures, so nodes on different backends cannot disagree. Method: derive malformed
    variants from a valid signature; then check the backend still works (tongsuopy keeps
    an OpenSSL error queue that must not be left dirty)."""
    key = suite.generate_key()
    raw = key.public_key().raw
    good = key.sign("tx", b"m")
    for name, bad in _malformed_signatures(good).items():
        assert not suite.verify(raw, "tx", b"m", bad), name
    assert suite.verify(raw, "tx", b"m", key.sign("tx", b"m"))


def test_crafted_signatures_hitting_point_edge_cases_are_false(suite: SMSuite) -> None:
    """Goal: signatures crafted (with the signer's own d) so that verification meets the
    point at infinity (sG = -tP) or a doubling (sG = tP) give False in every backend, where
    gmssl's own verify raises or takes a wrong branch. Method: solve for s given r and d."""
    d = 0x1234567890ABCDEF
    raw = suite.backend.public_raw(d)
    r = 0xC0FFEE
    infinity_s = -r * d * pow(1 + d, -1, sm2.N) % sm2.N  # s(1 + d) = -r d
    doubling_s = r * d * pow(1 - d, -1, sm2.N) % sm2.N  # s(1 - d) = r d
    for s in (infinity_s, doubling_s):
        assert not suite.verify(raw, "tx", b"m", encode_dss_signature(r, s))
    with pytest.raises(TypeError):
        _reference(raw).verify(f"{r:064x}{infinity_s:064x}", bytes(32))
    point = (sm2.GX, sm2.GY)
    doubled = sm2._add(point, point)
    assert doubled is not None and doubled == sm2._multiply(2, sm2._G_HEX)
    assert sm2._add(point, (sm2.GX, sm2.P - sm2.GY)) is None


def test_keys_whose_x_starts_with_04_work_in_gmssl_backend() -> None:
    """Goal: the gmssl backend is immune to gmssl's ``lstrip("04")`` public-key bug.
    Method: a fixed key whose X starts with byte 0x04 signs with the gmssl backend; the
    signature verifies through gmssl's reference code given the correct point, and through
    tongsuopy or OpenSSL when present; gmssl's constructor is shown to corrupt the key."""
    d = 0xA1F86D57C696FF38CD9502FEE57EF4275B68B9D118E561B7D070B89FD01D09EB
    suite = SMSuite(sm2.make_backend("gmssl"))
    key = suite._private_key(d)
    raw = key.public_key().raw
    assert raw[:2] == b"\x04\x04"
    broken = gmssl_sm2.CryptSM2(private_key=f"{d:064x}", public_key=raw.hex())
    assert broken.public_key != raw[1:].hex()
    signature = key.sign("tx", b"m")
    r, s = decode_dss_signature(signature)
    assert _reference(raw).verify_with_sm3(f"{r:064x}{s:064x}", tagged("tx", b"m"))
    if HAVE_TONGSUOPY:
        assert SMSuite(sm2.make_backend("tongsuopy")).verify(raw, "tx", b"m", signature)


@needs_openssl3
def test_openssl_cli_verifies_our_signatures(suite: SMSuite, tmp_path: Path) -> None:
    """Goal: the SPEC's interoperability promise: our SM2 signatures verify with stock
    OpenSSL 3. Method: `openssl dgst -sm3 -verify pub.pem -sigopt distid:1234567812345678
    -signature sig.der msg` with msg = the tagged bytes; a wrong purpose fails."""
    key = suite.generate_key()
    key.public_key().save(tmp_path / "pub.pem")
    (tmp_path / "msg").write_bytes(tagged("tx", b"pay 100"))
    (tmp_path / "other").write_bytes(tagged("commit", b"pay 100"))
    (tmp_path / "sig.der").write_bytes(key.sign("tx", b"pay 100"))
    verify = ["dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:1234567812345678"]
    result = _openssl(*verify, "-signature", "sig.der", "msg", cwd=tmp_path)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr
    result = _openssl(*verify, "-signature", "sig.der", "other", cwd=tmp_path)
    assert result.returncode != 0


@needs_openssl3
def test_we_verify_openssl_cli_signatures(suite: SMSuite, tmp_path: Path) -> None:
    """Goal: OpenSSL-made SM2 keys and signatures work in govledger. Method: `openssl
    genpkey -algorithm SM2`, `openssl dgst -sm3 -sign key.pem -sigopt distid:...` over the
    tagged bytes; load the key file and verify with each backend."""
    assert _openssl("genpkey", "-algorithm", "SM2", "-out", "key.pem", cwd=tmp_path).returncode == 0
    (tmp_path / "msg").write_bytes(tagged("tx", b"pay 100"))
    sign = ["dgst", "-sm3", "-sign", "key.pem", "-sigopt", "distid:1234567812345678"]
    assert _openssl(*sign, "-out", "sig.der", "msg", cwd=tmp_path).returncode == 0
    key = suite.load_private_pem((tmp_path / "key.pem").read_bytes())
    signature = (tmp_path / "sig.der").read_bytes()
    assert suite.verify(key.public_key().raw, "tx", b"pay 100", signature)
    assert not suite.verify(key.public_key().raw, "tx", b"pay 101", signature)


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != sm2.ENV_BACKEND}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


_PRINT_BACKEND = (
    "import logging; logging.basicConfig(level=logging.INFO);"
    "from ledger.crypto import sm2_backend_name; print(sm2_backend_name())"
)


def test_env_var_forces_gmssl_backend() -> None:
    """Goal: GOVLEDGER_SM2_BACKEND=gmssl really selects gmssl (CI relies on it) and the
    choice is logged once at INFO. Method: a fresh interpreter prints sm2_backend_name()."""
    result = _run_python(_PRINT_BACKEND, GOVLEDGER_SM2_BACKEND="gmssl")
    assert result.stdout.strip() == "gmssl", result.stderr
    assert result.stderr.count("SM2 backend: gmssl (forced by GOVLEDGER_SM2_BACKEND)") == 1


def test_default_backend_is_tongsuopy_when_installed() -> None:
    """Goal: without the env var the fast backend is used when present. Method: a fresh
    interpreter without GOVLEDGER_SM2_BACKEND prints the backend name."""
    result = _run_python(_PRINT_BACKEND)
    assert result.stdout.strip() == BACKENDS[0], result.stderr


def test_env_var_with_unknown_or_missing_backend_errors_clearly() -> None:
    """Goal: a typo in GOVLEDGER_SM2_BACKEND (or forcing an absent tongsuopy) fails loudly,
    naming the problem. Method: make_backend with bad names; a fresh interpreter with a bad
    value fails with the message."""
    with pytest.raises(InputError, match="unknown SM2 backend 'openssl'; valid: tongsuopy"):
        sm2.make_backend("openssl")
    result = _run_python(_PRINT_BACKEND, GOVLEDGER_SM2_BACKEND="gmsl")
    assert result.returncode != 0 and "unknown SM2 backend 'gmsl'" in result.stderr
    if not HAVE_TONGSUOPY:
        with pytest.raises(InputError, match="'tongsuopy' is not available"):
            sm2.make_backend("tongsuopy")


def test_sm2_ecdh_matches_textbook_point_multiplication() -> None:
    """Goal: suite "sm" key agreement is ECDH on the SM2 curve and both sides agree.
    Method: two ephemeral pairs agree on the same secret, equal to X of d·Q computed here
    by plain affine double-and-add (independent of gmssl's Jacobian code)."""
    suite = get_suite("sm")
    mine, my_public = suite.generate_ephemeral()
    theirs, their_public = suite.generate_ephemeral()
    secret = suite.agree(mine, their_public)
    assert secret == suite.agree(theirs, my_public) and len(secret) == 32
    x, y = int.from_bytes(their_public[1:33], "big"), int.from_bytes(their_public[33:], "big")
    result: tuple[int, int] | None = None
    addend: tuple[int, int] | None = (x, y)
    d = mine.d  # type: ignore[attr-defined]
    while d:
        if d & 1:
            result = addend if result is None else sm2._add(result, addend)  # type: ignore[arg-type]
        addend = sm2._add(addend, addend)  # type: ignore[arg-type]
        d >>= 1
    assert result is not None and secret == result[0].to_bytes(32, "big")


def test_sm2_ecdh_rejects_invalid_peer_points() -> None:
    """Goal: a peer cannot feed us an invalid point. Method: wrong length, compressed,
    off-curve and out-of-range points each raise KeyFileError naming the problem."""
    suite = get_suite("sm")
    mine, public = suite.generate_ephemeral()
    off_curve = public[:-1] + bytes([public[-1] ^ 1])
    too_big = b"\x04" + b"\xff" * 64
    for bad, problem in [
        (public[:33], "65 bytes"),
        (b"\x02" + public[1:33] + bytes(32), "uncompressed"),
        (off_curve, "not a point on the SM2 curve"),
        (too_big, "not below the field prime"),
    ]:
        with pytest.raises(KeyFileError, match=problem):
            suite.agree(mine, bad)
    with pytest.raises(TypeError):
        suite.agree(get_suite("intl").generate_ephemeral()[0], public)


def test_domain_separation(suite: SMSuite) -> None:
    """Goal: a signature for one purpose never verifies for another. Method: sign under
    "tx"; verify under "tx" (True), "commit" and "tx2" (False)."""
    key = suite.generate_key()
    signature = key.sign("tx", b"payload")
    raw = key.public_key().raw
    assert suite.verify(raw, "tx", b"payload", signature)
    assert not suite.verify(raw, "commit", b"payload", signature)
    assert not suite.verify(raw, "tx2", b"payload", signature)


def test_load_private_key_file_uses_the_env_selected_backend(tmp_path: Path) -> None:
    """Goal: load_private_key_file gives a key on the process's default backend, which
    signs standard SM2. Method: save, load, sign, verify with gmssl's reference code."""
    key = get_suite("sm").generate_key()
    key.save(tmp_path / "k.pem")
    loaded = load_private_key_file(tmp_path / "k.pem")
    assert loaded.suite is get_suite("sm")
    r, s = decode_dss_signature(loaded.sign("tx", b"x"))
    assert _reference(key.public_key().raw).verify_with_sm3(f"{r:064x}{s:064x}", tagged("tx", b"x"))
