"""The ``sm`` suite: SM2 signatures, SM3 hash, HMAC-SM3, SM4-GCM, ECDH on the SM2 curve.

Key files have one code path for both SM2 backends, so a file written under
one loads under the other and in OpenSSL/Tongsuo: PKCS#8 with
``id-ecPublicKey`` + named curve ``1.2.156.10197.1.301`` whose privateKey is a
SEC1 ``ECPrivateKey {1, d (32 bytes), [1] public point}``; public keys are
SubjectPublicKeyInfo; both PEM. Encrypted keys use PBES2 with SM4-CBC
(:mod:`ledger.crypto.pkcs8`). A key's raw encoding (``PublicKey.raw``, the
transaction ``sender``) is the 65-byte uncompressed point ``0x04||X||Y``.

SM4-GCM uses ``cryptography``'s SM4 with GCM mode (16-byte key, 12-byte
nonce, 16-byte tag), checked against RFC 8998 in the tests.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ledger.crypto import der, pkcs8, sm2
from ledger.crypto.base import (
    AEAD_TAG_SIZE,
    EphemeralKey,
    PrivateKey,
    PublicKey,
    Suite,
    tagged,
)
from ledger.crypto.hashing import hmac_sm3, sm3
from ledger.errors import CryptoError, KeyFileError

_ALGORITHM_ID = pkcs8.algorithm_identifier(pkcs8.ID_EC_PUBLIC_KEY, pkcs8.SM2_CURVE)


class SM2PublicKey(PublicKey):
    __slots__ = ("_verifier",)

    def __init__(self, suite: SMSuite, raw: bytes, verifier: sm2.Verifier) -> None:
        self.suite, self.raw, self._verifier = suite, raw, verifier

    def verify(self, purpose: str, message: bytes, signature: bytes) -> bool:
        return self._verifier.verify(tagged(purpose, message), signature)

    def public_pem(self) -> bytes:
        return pkcs8.encode_public_pem(pkcs8.public_key_info(_ALGORITHM_ID, self.raw))


class SM2PrivateKey(PrivateKey):
    __slots__ = ("_d", "_public", "_signer")

    def __init__(self, suite: SMSuite, d: int, public: PublicKey) -> None:
        assert sm2.private_scalar_ok(d)
        self.suite, self._d, self._public = suite, d, public
        self._signer = suite.backend.signer(d, public.raw)

    def sign(self, purpose: str, message: bytes) -> bytes:
        return self._signer.sign(tagged(purpose, message))

    def public_key(self) -> PublicKey:
        return self._public

    def private_pem(self, passphrase: bytes | None = None) -> bytes:
        ec_private_key = der.sequence(
            der.integer(1),
            der.octets(self._d.to_bytes(32, "big")),
            der.tlv(der.CONTEXT_1, der.bit_string(self._public.raw)),
        )
        info = pkcs8.private_key_info(_ALGORITHM_ID, ec_private_key)
        return pkcs8.encode_private_pem(info, passphrase, "sm4-cbc")


class _SM2Ephemeral(EphemeralKey):
    __slots__ = ("d",)

    def __init__(self, d: int) -> None:
        self.d = d

    def __repr__(self) -> str:
        return "<SM2 ephemeral key>"


class SMSuite(Suite):
    """SM2 / SM3 / SM4-GCM. ``backend`` defaults to the process's selected SM2 backend."""

    name = "sm"
    hash_name = "sm3"
    aead_key_size = 16

    def __init__(self, backend: sm2.Backend | None = None) -> None:
        super().__init__()
        self.backend = backend or sm2.default_backend()

    def __repr__(self) -> str:
        return f"<SMSuite 'sm' backend={self.backend.name}>"

    # The hash function itself, not a method calling it: the state tree and the Merkle
    # trees call it ~20 times per transaction, and the second Python frame per call was
    # ~4 % of a state-tree update. (The same signature as Suite.hash, less ``self``.)
    hash = staticmethod(sm3)  # type: ignore[assignment]

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac_sm3(key, data)

    def _kdf_hash(self) -> hashes.HashAlgorithm:
        return hashes.SM3()

    def _seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        return ciphertext + encryptor.tag

    def _open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        tag = sealed[-AEAD_TAG_SIZE:]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        plaintext = decryptor.update(sealed[:-AEAD_TAG_SIZE])
        try:
            return plaintext + decryptor.finalize()
        except InvalidTag:
            raise CryptoError("SM4-GCM authentication failed: wrong key, or data altered") from None

    # -- keys --

    def _private_key(self, d: int) -> SM2PrivateKey:
        raw = self.backend.public_raw(d)
        return SM2PrivateKey(self, d, self.public_key(raw))

    def generate_key(self) -> PrivateKey:
        return self._private_key(secrets.randbelow(sm2.N - 2) + 1)

    def private_key_from_info(self, info: pkcs8.PrivateKeyInfo) -> SM2PrivateKey:
        if info.kind != "sm2":
            raise pkcs8.wrong_kind(info.kind, self.name, "sm2")
        outer = der.DerReader(info.private_key, "SM2 private key (SEC1)")
        reader = outer.sequence()
        outer.end()
        if reader.integer() != 1:
            raise KeyFileError("unsupported SEC1 ECPrivateKey version")
        secret = reader.octets()
        curve = reader.optional(der.CONTEXT_0)
        public = reader.optional(der.CONTEXT_1)
        reader.end()
        if curve is not None and _single(curve, "SEC1 curve").oid() != pkcs8.SM2_CURVE:
            raise KeyFileError("the SEC1 curve parameter is not the SM2 curve")
        d = int.from_bytes(secret, "big")
        if len(secret) > 32 or not sm2.private_scalar_ok(d):
            raise KeyFileError("SM2 private scalar is out of range [1, n-2]")
        key = self._private_key(d)
        stored = info.public_key
        if public is not None:
            stored = _single(public, "SEC1 public point").bit_string()
        if stored is not None and _uncompressed(stored) != key.public_key().raw:
            raise KeyFileError("the public key stored in the file does not match the private key")
        return key

    def load_public_pem(self, data: bytes) -> PublicKey:
        info = pkcs8.decode_public_pem(data)
        if info.kind != "sm2":
            raise pkcs8.wrong_kind(info.kind, self.name, "sm2")
        return self.public_key(_uncompressed(info.key))

    def _parse_public(self, raw: bytes) -> PublicKey | None:
        if sm2.point_problem(raw) is not None:
            return None
        try:
            return SM2PublicKey(self, raw, self.backend.verifier(raw))
        except ValueError:  # the backend disagrees that the point is valid: treat as invalid
            return None

    def _public_key_problem(self, raw: bytes) -> str:
        return sm2.point_problem(raw) or "invalid SM2 public key"

    # -- key agreement --

    def generate_ephemeral(self) -> tuple[EphemeralKey, bytes]:
        d = secrets.randbelow(sm2.N - 2) + 1
        return _SM2Ephemeral(d), self.backend.public_raw(d)

    def agree(self, private: EphemeralKey, peer_public_raw: bytes) -> bytes:
        if not isinstance(private, _SM2Ephemeral):
            raise TypeError("agree() needs an ephemeral key from this suite's generate_ephemeral()")
        problem = sm2.point_problem(peer_public_raw)
        if problem is not None:
            raise KeyFileError(f"peer's ephemeral key: {problem}")
        return sm2.ecdh_x(private.d, peer_public_raw)

    def agreement_public(self, public_raw: bytes) -> bytes:
        return self.public_key(public_raw).raw  # SM2 keys agree on the same curve they sign on

    def agree_static(self, key: PrivateKey, peer_public_raw: bytes) -> bytes:
        if not isinstance(key, SM2PrivateKey):
            raise TypeError("agree_static() needs an SM2 private key of this suite")
        problem = sm2.point_problem(peer_public_raw)
        if problem is not None:
            raise KeyFileError(f"peer's ephemeral key: {problem}")
        return sm2.ecdh_x(key._d, peer_public_raw)


def _uncompressed(point: bytes) -> bytes:
    """A point from a key file as 0x04||X||Y (files may hold the compressed form)."""
    if point[:1] in (b"\x02", b"\x03"):
        full = sm2.decompress_point(point)
        if full is None:
            raise KeyFileError("compressed SM2 public key is not a point on the curve")
        return full
    return point


def _single(contents: bytes, what: str) -> der.DerReader:
    """A reader over the contents of an EXPLICIT context tag, which hold exactly one element."""
    reader = der.DerReader(contents, what)
    element = der.DerReader(reader.read_element(), what)
    reader.end()
    return element
