"""Public-key sealing: encrypt a small secret to the holder of a signing key.

Theory of operation
-------------------
Some personal data must never be on the ledger in clear, yet one party — the
audit office — must be able to read it back (a payee's ID number, a bank
account). The sender *seals* the value to the recipient's public key, ECIES
style, with the network's own suite:

1. a fresh ephemeral key pair (``Suite.generate_ephemeral``: ECDH on the SM2
   curve for ``sm``, X25519 for ``intl``);
2. the shared secret with the recipient's agreement key
   (``Suite.agreement_public``: the SM2 point itself, or the X25519 form of an
   Ed25519 key);
3. an AEAD key from HKDF with the suite hash over that secret, bound to the
   ephemeral and the recipient's key, and to this module's tag;
4. the suite AEAD (SM4-GCM / AES-256-GCM) with a random nonce, the caller's
   ``context`` as associated data (so a box made for one purpose cannot be
   passed off as another).

The recipient runs the agreement from the other side with its private key
(``Suite.agree_static``) and opens the box. Anything wrong — another
recipient's key, a changed byte, a different context, a truncated box —
raises :class:`~ledger.errors.CryptoError`; nothing else is raised for bad
boxes.

Box layout (bytes): ``version (1) || ephemeral length (1) || ephemeral public
key || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import secrets

from ledger.crypto.base import AEAD_NONCE_SIZE, AEAD_TAG_SIZE, PrivateKey, Suite
from ledger.errors import CryptoError, KeyFileError

VERSION = 1
_INFO = b"govledger/seal/v1\x00"
PLAINTEXT_MAX = 16 * 1024


def _box_key(suite: Suite, shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    info = _INFO + bytes([len(ephemeral)]) + ephemeral + recipient
    return suite.kdf(shared, info, suite.aead_key_size)


def seal(suite: Suite, recipient_public: bytes, plaintext: bytes, context: bytes = b"") -> bytes:
    """A box that only the holder of ``recipient_public``'s private key can open.

    KeyFileError if ``recipient_public`` is not a valid public key of ``suite``.
    """
    if len(plaintext) > PLAINTEXT_MAX:
        raise ValueError(f"sealing is for small secrets (at most {PLAINTEXT_MAX} bytes)")
    recipient = suite.agreement_public(recipient_public)
    ephemeral, ephemeral_public = suite.generate_ephemeral()
    shared = suite.agree(ephemeral, recipient)
    key = _box_key(suite, shared, ephemeral_public, recipient)
    nonce = secrets.token_bytes(AEAD_NONCE_SIZE)
    sealed = suite.aead_seal(key, nonce, plaintext, context)
    return bytes([VERSION, len(ephemeral_public)]) + ephemeral_public + nonce + sealed


def open_sealed(key: PrivateKey, box: bytes, context: bytes = b"") -> bytes:
    """The plaintext of ``box`` sealed to ``key``'s public key; CryptoError if it is not
    a box for this key and context, or was altered."""
    suite = key.suite
    if not isinstance(box, bytes) or len(box) < 2:
        raise CryptoError("sealed box is too short")
    if box[0] != VERSION:
        raise CryptoError(f"unknown sealed box version {box[0]}")
    n = box[1]
    ephemeral = box[2:2 + n]
    rest = box[2 + n:]
    if len(ephemeral) != n or len(rest) < AEAD_NONCE_SIZE + AEAD_TAG_SIZE:
        raise CryptoError("sealed box is truncated")
    try:
        shared = suite.agree_static(key, ephemeral)
    except KeyFileError as exc:
        raise CryptoError(f"sealed box has a bad ephemeral key: {exc}") from None
    recipient = suite.agreement_public(key.public_key().raw)
    box_key = _box_key(suite, shared, ephemeral, recipient)
    nonce, sealed = rest[:AEAD_NONCE_SIZE], rest[AEAD_NONCE_SIZE:]
    return suite.aead_open(box_key, nonce, sealed, context)
