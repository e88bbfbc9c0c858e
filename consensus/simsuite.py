"""A fast, deterministic crypto suite for the simulator.

Real SM2 costs about half a millisecond per signature; the simulator signs
and verifies hundreds of thousands of messages. This suite keeps the one
property the protocol relies on — nobody can sign for a key whose secret
they do not hold — with keyed BLAKE2b "signatures": each key's secret is
known only to the suite's table and to the holder of that key object.
Byzantine code in the simulator only ever holds its own key objects.

It is registered under a ``sim-…`` name that no genesis file can use.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.crypto import EphemeralKey, PrivateKey, PublicKey, Suite, tagged
from ledger.crypto.pkcs8 import PrivateKeyInfo
from ledger.crypto.registry import register_test_suite
from ledger.errors import CryptoError, KeyFileError


class SimPublicKey(PublicKey):
    def __init__(self, suite: SimSuite, raw: bytes) -> None:
        self.suite = suite
        self.sim = suite
        self.raw = raw

    def verify(self, purpose: str, message: bytes, signature: bytes) -> bool:
        return self.sim.verify(self.raw, purpose, message, signature)

    def public_pem(self) -> bytes:
        raise KeyFileError("simulator keys have no PEM form")


class SimPrivateKey(PrivateKey):
    def __init__(self, suite: SimSuite, secret: bytes, raw: bytes) -> None:
        self.suite = suite
        self._secret = secret
        self._public = SimPublicKey(suite, raw)

    def sign(self, purpose: str, message: bytes) -> bytes:
        return _mac(self._secret, tagged(purpose, message))

    def public_key(self) -> PublicKey:
        return self._public

    def private_pem(self, passphrase: bytes | None = None) -> bytes:
        raise KeyFileError("simulator keys have no PEM form")


def _mac(secret: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, key=secret, digest_size=32).digest()


class SimSuite(Suite):
    name = "sim"
    hash_name = "sha256"
    aead_key_size = 32

    def __init__(self, rng: random.Random, name: str = "sim") -> None:
        super().__init__()
        self.rng = rng
        self.secrets: dict[bytes, bytes] = {}
        self.name = name  # type: ignore[misc]
        register_test_suite(name, self)

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    def _kdf_hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()

    def _seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    def _open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(key).decrypt(nonce, sealed, aad)
        except Exception:
            raise CryptoError("sealed message does not authenticate") from None

    def generate_key(self) -> PrivateKey:
        raw = self.rng.randbytes(32)
        secret = self.rng.randbytes(32)
        self.secrets[raw] = secret
        return SimPrivateKey(self, secret, raw)

    def private_key_from_info(self, info: PrivateKeyInfo) -> PrivateKey:
        raise KeyFileError("simulator keys have no key files")

    def load_public_pem(self, data: bytes) -> PublicKey:
        raise KeyFileError("simulator keys have no PEM form")

    def _parse_public(self, raw: bytes) -> PublicKey | None:
        return SimPublicKey(self, raw) if raw in self.secrets else None

    def _public_key_problem(self, raw: bytes) -> str:
        return "not a simulator key"

    def verify(self, public_raw: bytes, purpose: str, message: bytes, signature: bytes) -> bool:
        secret = self.secrets.get(public_raw)
        if secret is None:
            return False
        return hmac.compare_digest(_mac(secret, tagged(purpose, message)), signature)

    def generate_ephemeral(self) -> tuple[EphemeralKey, bytes]:
        raise NotImplementedError("the simulator has no transport")

    def agree(self, private: EphemeralKey, peer_public_raw: bytes) -> bytes:
        raise NotImplementedError("the simulator has no transport")
