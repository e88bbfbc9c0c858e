"""The ``intl`` suite: Ed25519 (pynacl), SHA-256, HMAC-SHA256, AES-256-GCM, X25519.

Signing and verification use libsodium through pynacl, the same library on
every node, so all nodes agree on edge cases (non-canonical S, small-order
keys). A key's raw encoding is its 32-byte Ed25519 public key; raw keys are
accepted only if libsodium says they are valid points of the prime-order
group (``crypto_core_ed25519_is_valid_point``), and ``verify`` applies the
same test, so "verifies" implies "is a valid public key".

Key files: PKCS#8 / SubjectPublicKeyInfo PEM written by ``cryptography``;
encrypted keys use PBES2 with AES-256-CBC via :mod:`ledger.crypto.pkcs8`
(stronger PBKDF2 than ``BestAvailableEncryption``), which also reads them.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium
from nacl import exceptions as nacl_exceptions
from nacl import signing

from ledger.crypto import der, pkcs8
from ledger.crypto.base import EphemeralKey, PrivateKey, PublicKey, Suite, tagged
from ledger.crypto.hashing import hmac_sha256, sha256
from ledger.errors import CryptoError, KeyFileError

ED25519_PUBLIC_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
X25519_PUBLIC_SIZE = 32


class Ed25519PublicKey(PublicKey):
    __slots__ = ("_verify_key",)

    def __init__(self, suite: IntlSuite, raw: bytes) -> None:
        self.suite, self.raw = suite, raw
        self._verify_key = signing.VerifyKey(raw)

    def verify(self, purpose: str, message: bytes, signature: bytes) -> bool:
        message = tagged(purpose, message)
        if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._verify_key.verify(message, signature)
        except (nacl_exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True

    def public_pem(self) -> bytes:
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class Ed25519PrivateKey(PrivateKey):
    __slots__ = ("_public", "_seed", "_signing_key")

    def __init__(self, suite: IntlSuite, seed: bytes) -> None:
        self.suite, self._seed = suite, seed
        self._signing_key = signing.SigningKey(seed)
        self._public = suite.public_key(self._signing_key.verify_key.encode())

    def sign(self, purpose: str, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(tagged(purpose, message)).signature)

    def public_key(self) -> PublicKey:
        return self._public

    def private_pem(self, passphrase: bytes | None = None) -> bytes:
        info = ed25519.Ed25519PrivateKey.from_private_bytes(self._seed).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pkcs8.encode_private_pem(info, passphrase, "aes-256-cbc")


class _X25519Ephemeral(EphemeralKey):
    __slots__ = ("key",)

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        self.key = key

    def __repr__(self) -> str:
        return "<X25519 ephemeral key>"


class IntlSuite(Suite):
    """Ed25519 / SHA-256 / AES-256-GCM."""

    name = "intl"
    hash_name = "sha256"
    aead_key_size = 32

    # The hash function itself, not a method calling it: the state tree and the Merkle
    # trees call it ~20 times per transaction, and the second Python frame per call was
    # ~4 % of a state-tree update. (The same signature as Suite.hash, less ``self``.)
    hash = staticmethod(sha256)  # type: ignore[assignment]

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac_sha256(key, data)

    def _kdf_hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()

    def _seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    def _open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(key).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise CryptoError("AES-GCM authentication failed: wrong key, or data altered") from None

    # -- keys --

    def generate_key(self) -> PrivateKey:
        return Ed25519PrivateKey(self, bytes(signing.SigningKey.generate().encode()))

    def private_key_from_info(self, info: pkcs8.PrivateKeyInfo) -> Ed25519PrivateKey:
        if info.kind != "ed25519":
            raise pkcs8.wrong_kind(info.kind, self.name, "ed25519")
        if info.parameters is not None:
            raise KeyFileError("an Ed25519 key has no algorithm parameters")
        reader = der.DerReader(info.private_key, "Ed25519 private key")
        seed = reader.octets()
        reader.end()
        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 private key is 32 bytes, not {len(seed)}")
        key = Ed25519PrivateKey(self, seed)
        if info.public_key is not None and info.public_key != key.public_key().raw:
            raise KeyFileError("the public key stored in the file does not match the private key")
        return key

    def load_public_pem(self, data: bytes) -> PublicKey:
        info = pkcs8.decode_public_pem(data)
        if info.kind != "ed25519":
            raise pkcs8.wrong_kind(info.kind, self.name, "ed25519")
        return self.public_key(info.key)

    def _parse_public(self, raw: bytes) -> PublicKey | None:
        if len(raw) != ED25519_PUBLIC_SIZE or not sodium.crypto_core_ed25519_is_valid_point(raw):
            return None
        return Ed25519PublicKey(self, raw)

    def _public_key_problem(self, raw: bytes) -> str:
        if len(raw) != ED25519_PUBLIC_SIZE:
            return f"an Ed25519 public key is {ED25519_PUBLIC_SIZE} bytes, not {len(raw)}"
        return "not a valid Ed25519 public key (not a point of the prime-order group)"

    # -- key agreement --

    def generate_ephemeral(self) -> tuple[EphemeralKey, bytes]:
        key = x25519.X25519PrivateKey.generate()
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return _X25519Ephemeral(key), raw

    def agree(self, private: EphemeralKey, peer_public_raw: bytes) -> bytes:
        if not isinstance(private, _X25519Ephemeral):
            raise TypeError("agree() needs an ephemeral key from this suite's generate_ephemeral()")
        if len(peer_public_raw) != X25519_PUBLIC_SIZE:
            raise KeyFileError(
                f"peer's X25519 key is {X25519_PUBLIC_SIZE} bytes, not {len(peer_public_raw)}"
            )
        try:
            peer = x25519.X25519PublicKey.from_public_bytes(bytes(peer_public_raw))
            return private.key.exchange(peer)
        except ValueError:  # a small-order point gives the all-zero secret
            raise KeyFileError("peer's X25519 key is a small-order point") from None

    def agreement_public(self, public_raw: bytes) -> bytes:
        """The X25519 (Montgomery) form of an Ed25519 public key (RFC 7748 birational map)."""
        self.public_key(public_raw)  # KeyFileError unless a valid Ed25519 key
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(bytes(public_raw)))

    def agree_static(self, key: PrivateKey, peer_public_raw: bytes) -> bytes:
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError("agree_static() needs an Ed25519 private key of this suite")
        _, secret = sodium.crypto_sign_seed_keypair(key._seed)
        scalar = bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(secret))
        return self.agree(_X25519Ephemeral(x25519.X25519PrivateKey.from_private_bytes(scalar)),
                          peer_public_raw)
