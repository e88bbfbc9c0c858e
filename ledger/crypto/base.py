"""The suite interface shared by ``sm`` and ``intl``, domain-separation tags, key file writing.

What is signed: never the caller's bytes alone, but
``tagged(purpose, message) = b"govledger/" + purpose + b"/v1" + b"\\x00" + message``.
The purpose names what the signature is for (``tx``, ``commit``, ``view-change``
...), so a signature made for one purpose can never be replayed as another.
The NUL ends the tag; purposes cannot contain it, so no two (purpose, message)
pairs give the same bytes.

Verification is the node's hot path and sees untrusted bytes: ``Suite.verify``
and ``PublicKey.verify`` return ``False`` for every malformed key or signature
and never raise on them. Parsed public keys sit in a bounded LRU cache per
suite so a validator set's keys are parsed once.
"""

from __future__ import annotations

import abc
import functools
import os
import re
import secrets
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.crypto import pkcs8
from ledger.errors import CryptoError, KeyFileError

_PURPOSE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
AEAD_NONCE_SIZE = 12
AEAD_TAG_SIZE = 16
PUBLIC_KEY_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=256)
def _tag_prefix(purpose: str) -> bytes:
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"bad signature purpose {purpose!r}: must match {_PURPOSE.pattern}")
    return b"govledger/" + purpose.encode("ascii") + b"/v1\x00"


def tagged(purpose: str, message: bytes) -> bytes:
    """The bytes actually signed for ``message`` under ``purpose`` (see the module docstring)."""
    return _tag_prefix(purpose) + message


class PublicKey(abc.ABC):
    """A verified-valid public key of one suite. ``raw`` is its transaction encoding."""

    __slots__ = ("raw", "suite")
    suite: Suite
    raw: bytes

    @abc.abstractmethod
    def verify(self, purpose: str, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's signature of ``tagged(purpose, message)``."""

    @abc.abstractmethod
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes :meth:`public_pem` to ``path`` atomically (mode 0644)."""
        write_file_atomic(path, self.public_pem(), 0o644)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.suite.name == other.suite.name and self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.suite.name, self.raw))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.suite.name} {self.raw.hex()[:16]}…>"


class PrivateKey(abc.ABC):
    """A signing key of one suite. Its repr never shows secret material."""

    __slots__ = ("suite",)
    suite: Suite

    @abc.abstractmethod
    def sign(self, purpose: str, message: bytes) -> bytes:
        """Signs ``tagged(purpose, message)``."""

    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @abc.abstractmethod
    def private_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM: ``PRIVATE KEY``, or ``ENCRYPTED PRIVATE KEY`` when a passphrase is given."""

    def save(self, path: str | os.PathLike[str], passphrase: bytes | None = None) -> None:
        """Writes :meth:`private_pem` to ``path`` atomically; the file is never other than 0600."""
        write_file_atomic(path, self.private_pem(passphrase), 0o600)

    def __repr__(self) -> str:
        public = self.public_key().raw.hex()[:16]
        return f"<{type(self).__name__} {self.suite.name} public={public}…>"


class EphemeralKey:
    """The private half of a one-time key agreement pair; opaque outside its suite."""

    __slots__ = ()


class Suite(abc.ABC):
    """A named set of algorithms: signature, hash, HMAC, AEAD, key agreement, KDF.

    Instances are cheap singletons obtained with :func:`ledger.crypto.get_suite`.
    """

    name: ClassVar[str]
    hash_name: ClassVar[str]
    aead_key_size: ClassVar[int]

    def __init__(self) -> None:
        self._cached_public = functools.lru_cache(maxsize=PUBLIC_KEY_CACHE_SIZE)(self._parse_public)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- hashing --

    @abc.abstractmethod
    def hash(self, data: bytes) -> bytes:
        """The suite hash (32 bytes)."""

    @abc.abstractmethod
    def hmac(self, key: bytes, data: bytes) -> bytes:
        """HMAC with the suite hash (32 bytes)."""

    @abc.abstractmethod
    def _kdf_hash(self) -> hashes.HashAlgorithm: ...

    def kdf(self, secret: bytes, info: bytes, length: int) -> bytes:
        """HKDF (RFC 5869) with the suite hash and no salt."""
        return HKDF(self._kdf_hash(), length, None, info).derive(secret)

    # -- AEAD --

    @abc.abstractmethod
    def _seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    @abc.abstractmethod
    def _open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes: ...

    def aead_seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypts and authenticates; returns ciphertext || 16-byte tag. Never reuse a nonce."""
        if len(key) != self.aead_key_size or len(nonce) != AEAD_NONCE_SIZE:
            raise ValueError(
                f"{self.name} AEAD needs a {self.aead_key_size}-byte key and a"
                f" {AEAD_NONCE_SIZE}-byte nonce, got {len(key)} and {len(nonce)}"
            )
        return self._seal(key, nonce, plaintext, aad)

    def aead_open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
        """Checks and decrypts what :meth:`aead_seal` returned; CryptoError if anything is off."""
        if len(key) != self.aead_key_size:
            raise CryptoError(f"{self.name} AEAD key must be {self.aead_key_size} bytes")
        if len(nonce) != AEAD_NONCE_SIZE:
            raise CryptoError(f"AEAD nonce must be {AEAD_NONCE_SIZE} bytes, got {len(nonce)}")
        if len(sealed) < AEAD_TAG_SIZE:
            raise CryptoError(f"sealed message of {len(sealed)} bytes is shorter than its tag")
        return self._open(key, nonce, sealed, aad)

    # -- keys and signatures --

    @abc.abstractmethod
    def generate_key(self) -> PrivateKey: ...

    def load_private_pem(self, data: bytes, passphrase: bytes | None = None) -> PrivateKey:
        """KeyFileError saying what is wrong if ``data`` is not a usable private key PEM."""
        return self.private_key_from_info(pkcs8.decode_private_pem(data, passphrase))

    @abc.abstractmethod
    def private_key_from_info(self, info: pkcs8.PrivateKeyInfo) -> PrivateKey:
        """The key in a decoded key file; KeyFileError if it is not this suite's kind."""

    @abc.abstractmethod
    def load_public_pem(self, data: bytes) -> PublicKey: ...

    @abc.abstractmethod
    def _parse_public(self, raw: bytes) -> PublicKey | None:
        """The key for a raw encoding, or None if it is not a valid public key of this suite."""

    @abc.abstractmethod
    def _public_key_problem(self, raw: bytes) -> str:
        """Why ``raw`` is not a valid public key (only called when it is not)."""

    def public_key(self, raw: bytes) -> PublicKey:
        """The public key with raw encoding ``raw``; KeyFileError if it is not valid."""
        key = self._cached_public(bytes(raw))
        if key is None:
            raise KeyFileError(self._public_key_problem(bytes(raw)))
        return key

    def verify(self, public_raw: bytes, purpose: str, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` by ``public_raw`` covers ``tagged(purpose, message)``.

        Malformed keys and signatures give False, never an exception.
        """
        if type(public_raw) is not bytes:  # the cache needs a hashable key
            try:
                public_raw = bytes(public_raw)
            except TypeError:
                return False
        key = self._cached_public(public_raw)
        return key is not None and key.verify(purpose, message, signature)

    # -- key agreement --

    @abc.abstractmethod
    def generate_ephemeral(self) -> tuple[EphemeralKey, bytes]:
        """A fresh key agreement pair: (private half for :meth:`agree`, raw public key to send)."""

    @abc.abstractmethod
    def agree(self, private: EphemeralKey, peer_public_raw: bytes) -> bytes:
        """The shared secret with a peer; KeyFileError if the peer's public key is invalid.

        Feed the result through :meth:`kdf`; never use it as a key directly.
        """

    # Sealing to a key holder (ledger.crypto.sealing): the recipient's long-term signing key
    # takes part in the agreement. Suites that cannot do this (test suites) leave these out.

    def agreement_public(self, public_raw: bytes) -> bytes:
        """The key-agreement public key that belongs to the signing key ``public_raw``.

        KeyFileError if ``public_raw`` is not a valid public key of this suite.
        """
        raise NotImplementedError(f"suite {self.name!r} cannot seal to a signing key")

    def agree_static(self, key: PrivateKey, peer_public_raw: bytes) -> bytes:
        """The shared secret of the long-term ``key`` with a peer's ephemeral public key:
        the same value as ``agree(ephemeral, agreement_public(key's public key))`` on the
        peer's side. KeyFileError if the peer's key is invalid. Feed it through :meth:`kdf`.
        """
        raise NotImplementedError(f"suite {self.name!r} cannot seal to a signing key")


def write_file_atomic(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Replaces ``path`` with ``data``: a temporary file in the same folder, created with
    ``mode`` (so a private key is never readable by others, even briefly), fsynced, then
    renamed over ``path``, then the folder fsynced so the rename survives a crash.
    """
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # in case the umask removed bits we want; never adds others'
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
