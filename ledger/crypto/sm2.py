"""SM2 signatures (GB/T 32918) with two interchangeable backends.

Theory of operation
-------------------
An SM2 signature over message ``M`` by key ``d`` with public point ``P`` signs
``e = SM3(Z_A || M)``, where ``Z_A = SM3(ENTL || ID || a || b || xG || yG ||
xP || yP)`` binds the signer's identity; govledger always uses the standard
default ID ``1234567812345678``, like OpenSSL's ``-sigopt distid:...`` and
Tongsuo. Signatures travel as DER ``SEQUENCE { r INTEGER, s INTEGER }``.

Two backends compute the same function:

- ``tongsuopy`` (Tongsuo, C): ~1,400 sign/s and ~1,600 verify/s per core here.
  No wheels for Linux aarch64, so it is imported only if present.
- ``gmssl`` (pure Python): ~100-140 sign/s, ~55-75 verify/s. We hash
  ``Z_A || M`` with the fast SM3 from :mod:`ledger.crypto.hashing` and use
  gmssl's scalar multiplication, but the verification equation is ours:
  gmssl's ``verify`` raises TypeError when ``sG + tP`` is the point at
  infinity (anyone can craft such a signature for their own key) and reads a
  Jacobian X as affine when ``sG == tP``. We also never pass public keys to
  gmssl's constructor, whose ``lstrip("04")`` eats leading 0/4 hex digits of X.

Consensus needs every node to reach the same verdict on every signature
whichever backend it runs, so the acceptance rules that libraries differ on
are enforced here, before either backend sees the input: the public key is
an uncompressed point on the curve (cofactor 1, so also in the group); the
signature is canonical DER (re-encoding gives the same bytes); ``1 <= r, s <
n``; and private keys satisfy ``1 <= d <= n - 2`` (tongsuopy accepts
``d >= n``). The selected backend verifies the GB/T 32918.5 example
signature when first chosen.

Backend choice: tongsuopy if importable, else gmssl;
``GOVLEDGER_SM2_BACKEND=gmssl`` (or ``=tongsuopy``) forces one. The choice
is logged once at INFO on logger ``govledger.crypto``.
"""

from __future__ import annotations

import abc
import functools
import logging
import os
import secrets
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger.crypto.hashing import sm3
from ledger.errors import InputError

log = logging.getLogger("govledger.crypto")

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
DEFAULT_ID = b"1234567812345678"
PUBLIC_RAW_SIZE = 65
SIGNATURE_DER_MAX = 72  # 2 + 2 * (2 + 33)
_G_HEX = f"{GX:064x}{GY:064x}"
_Z_PREFIX = (
    (8 * len(DEFAULT_ID)).to_bytes(2, "big")
    + DEFAULT_ID
    + b"".join(value.to_bytes(32, "big") for value in (A, B, GX, GY))
)

ENV_BACKEND = "GOVLEDGER_SM2_BACKEND"
BACKEND_NAMES = ("tongsuopy", "gmssl")

# GB/T 32918.5-2017 Appendix A example (ID 1234567812345678).
_KAT_PUBLIC = bytes.fromhex(
    "0409f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
    "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13"
)
_KAT_SIGNATURE = encode_dss_signature(
    0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3,
    0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA,
)


def z_a(public_raw: bytes) -> bytes:
    """``Z_A`` for the default ID and an uncompressed public point."""
    return sm3(_Z_PREFIX + public_raw[1:])


def point_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not an uncompressed SM2 public point, or None if it is one."""
    if len(raw) != PUBLIC_RAW_SIZE:
        return f"an SM2 public key is {PUBLIC_RAW_SIZE} bytes (0x04||X||Y), not {len(raw)}"
    if raw[0] != 0x04:
        return "an SM2 public key must be an uncompressed point (first byte 0x04)"
    x, y = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
    if x >= P or y >= P:
        return "SM2 public key coordinate is not below the field prime"
    if (y * y - (x * x * x + A * x + B)) % P:
        return "SM2 public key is not a point on the SM2 curve"
    return None


def decompress_point(raw: bytes) -> bytes | None:
    """The uncompressed form of a compressed point (0x02/0x03 || X), or None if invalid."""
    if len(raw) != 33 or raw[0] not in (2, 3):
        return None
    x = int.from_bytes(raw[1:], "big")
    if x >= P:
        return None
    alpha = (x * x * x + A * x + B) % P
    y = pow(alpha, (P + 1) // 4, P)  # P = 3 (mod 4)
    if y * y % P != alpha:
        return None
    if y & 1 != raw[0] & 1:
        y = P - y
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def private_scalar_ok(d: int) -> bool:
    """SM2 private keys are in [1, n-2] (signing inverts 1 + d)."""
    return 1 <= d <= N - 2


def parse_signature(signature: bytes) -> tuple[int, int] | None:
    """(r, s) of a canonical DER SM2 signature with both in [1, n-1], else None."""
    if not isinstance(signature, bytes) or len(signature) > SIGNATURE_DER_MAX:
        return None
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return None
    if not (0 < r < N and 0 < s < N) or encode_dss_signature(r, s) != signature:
        return None
    return r, s


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes:
        """DER SM2 signature of ``message`` (Z_A is prepended inside)."""
        ...


class Verifier(Protocol):
    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is valid for ``message``; never raises on bad signatures."""
        ...


class Backend(abc.ABC):
    """One SM2 implementation. Inputs are already validated (see the module docstring)."""

    name: str

    @abc.abstractmethod
    def signer(self, d: int, public_raw: bytes) -> Signer:
        """Signs with private scalar ``d``, whose public point is ``public_raw``."""

    @abc.abstractmethod
    def verifier(self, public_raw: bytes) -> Verifier: ...

    @abc.abstractmethod
    def public_raw(self, d: int) -> bytes:
        """The uncompressed public point d·G."""

    def self_test(self) -> bool:
        """Whether this backend accepts the GB/T 32918.5 example and rejects a altered one."""
        verifier = self.verifier(_KAT_PUBLIC)
        return verifier.verify(b"message digest", _KAT_SIGNATURE) and not verifier.verify(
            b"message digesT", _KAT_SIGNATURE
        )

    def __repr__(self) -> str:
        return f"<SM2 backend {self.name}>"


# -- tongsuopy ---------------------------------------------------------------


class _TongsuoSigner:
    __slots__ = ("_algorithm", "_key")

    def __init__(self, key: Any, algorithm: Any) -> None:
        self._key, self._algorithm = key, algorithm

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message, self._algorithm))


class _TongsuoVerifier:
    __slots__ = ("_algorithm", "_errors", "_key")

    def __init__(self, key: Any, algorithm: Any, errors: tuple[type[Exception], ...]) -> None:
        self._key, self._algorithm, self._errors = key, algorithm, errors

    def verify(self, message: bytes, signature: bytes) -> bool:
        if parse_signature(signature) is None:
            return False
        try:
            self._key.verify(signature, message, self._algorithm)
        except self._errors:
            return False
        return True


class TongsuoBackend(Backend):
    """Tongsuo through tongsuopy. Raises ImportError if tongsuopy is not installed."""

    name = "tongsuopy"

    def __init__(self) -> None:
        from tongsuopy.crypto import hashes, serialization
        from tongsuopy.crypto.asymciphers import ec
        from tongsuopy.crypto.exceptions import InternalError, InvalidSignature

        self._ec = ec
        self._serialization = serialization
        self._algorithm = ec.ECDSA(hashes.SM3())
        self._errors: tuple[type[Exception], ...] = (InvalidSignature, InternalError, ValueError)

    def signer(self, d: int, public_raw: bytes) -> Signer:
        assert private_scalar_ok(d)
        return _TongsuoSigner(self._ec.derive_private_key(d, self._ec.SM2()), self._algorithm)

    def verifier(self, public_raw: bytes) -> Verifier:
        key = self._ec.EllipticCurvePublicKey.from_encoded_point(self._ec.SM2(), public_raw)
        return _TongsuoVerifier(key, self._algorithm, self._errors)

    def public_raw(self, d: int) -> bytes:
        assert private_scalar_ok(d)
        public = self._ec.derive_private_key(d, self._ec.SM2()).public_key()
        encoding = self._serialization.Encoding.X962
        point_format = self._serialization.PublicFormat.UncompressedPoint
        return bytes(public.public_bytes(encoding, point_format))


# -- gmssl -------------------------------------------------------------------


def _multiply(k: int, point_hex: str) -> tuple[int, int]:
    """k·point with gmssl's Jacobian ladder; k in [1, n-1] and the point valid."""
    result = _gmssl_curve()._kg(k, point_hex)
    assert result is not None, "k·P is the point at infinity for a valid k and P"
    return int(result[:64], 16), int(result[64:], 16)


def _add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int] | None:
    """Affine point addition, including doubling; None for the point at infinity."""
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


@functools.cache
def _gmssl_curve() -> Any:
    from gmssl import sm2 as gmssl_sm2

    return gmssl_sm2.CryptSM2(private_key="", public_key="")


class _GmsslSigner:
    __slots__ = ("_crypt", "_z")

    def __init__(self, d: int, public_raw: bytes) -> None:
        from gmssl import sm2 as gmssl_sm2

        self._crypt = gmssl_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")
        self._crypt.public_key = public_raw[1:].hex()  # not via __init__: see module docstring
        self._z = z_a(public_raw)

    def sign(self, message: bytes) -> bytes:
        e = sm3(self._z + message)
        for _ in range(64):  # gmssl returns None when r = 0, r + k = n or s = 0: retry
            signature = self._crypt.sign(e, f"{secrets.randbelow(N - 1) + 1:064x}")
            if signature is not None:
                return encode_dss_signature(int(signature[:64], 16), int(signature[64:], 16))
        raise AssertionError("SM2 signing failed 64 times in a row")


class _GmsslVerifier:
    __slots__ = ("_public_hex", "_z")

    def __init__(self, public_raw: bytes) -> None:
        self._public_hex = public_raw[1:].hex()
        self._z = z_a(public_raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        parsed = parse_signature(signature)
        if parsed is None:
            return False
        r, s = parsed
        t = (r + s) % N
        if t == 0:
            return False
        point = _add(_multiply(s, _G_HEX), _multiply(t, self._public_hex))
        if point is None:
            return False
        e = int.from_bytes(sm3(self._z + message), "big")
        return (e + point[0]) % N == r


class GmsslBackend(Backend):
    """Pure-Python gmssl; always installed."""

    name = "gmssl"

    def __init__(self) -> None:
        _gmssl_curve()

    def signer(self, d: int, public_raw: bytes) -> Signer:
        assert private_scalar_ok(d)
        return _GmsslSigner(d, public_raw)

    def verifier(self, public_raw: bytes) -> Verifier:
        return _GmsslVerifier(public_raw)

    def public_raw(self, d: int) -> bytes:
        x, y = _multiply(d, _G_HEX)
        return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def ecdh_x(d: int, peer_raw: bytes) -> bytes:
    """The X coordinate of d·peer (32 bytes): plain ECDH on the SM2 curve.

    tongsuopy's ``exchange(ECDH())`` refuses SM2 keys ("operation not supported
    for this keytype"), so this is pure Python for both backends (~8 ms).
    """
    x, _ = _multiply(d, peer_raw[1:].hex())
    return x.to_bytes(32, "big")


# -- selection ---------------------------------------------------------------


def make_backend(name: str) -> Backend:
    """A backend by name; InputError if unknown or not installed."""
    if name == "gmssl":
        return GmsslBackend()
    if name == "tongsuopy":
        try:
            return TongsuoBackend()
        except (ImportError, OSError) as exc:
            raise InputError(f"SM2 backend 'tongsuopy' is not available here: {exc}") from exc
    raise InputError(f"unknown SM2 backend {name!r}; valid: {', '.join(BACKEND_NAMES)}")


@functools.cache
def default_backend() -> Backend:
    """The process's SM2 backend, chosen once (see the module docstring)."""
    forced = os.environ.get(ENV_BACKEND, "").strip().lower()
    if forced:
        backend, reason = make_backend(forced), f"forced by {ENV_BACKEND}"
    else:
        try:
            backend, reason = TongsuoBackend(), "tongsuopy is installed"
        except (ImportError, OSError):
            backend, reason = GmsslBackend(), "tongsuopy is not installed"
    if not backend.self_test():
        if forced or isinstance(backend, GmsslBackend):
            raise InputError(f"SM2 backend {backend.name} fails the GB/T 32918.5 example")
        log.warning("tongsuopy fails the GB/T 32918.5 SM2 example; falling back to gmssl")
        backend, reason = GmsslBackend(), "tongsuopy failed its self-test"
        assert backend.self_test()
    log.info("SM2 backend: %s (%s)", backend.name, reason)
    return backend
