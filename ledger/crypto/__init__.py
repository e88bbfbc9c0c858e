"""govledger's crypto suites behind one small interface.

Theory of operation
-------------------
A network picks one suite in its genesis file and every node uses it for
everything: ``get_suite("sm")`` (default: SM2 / SM3 / HMAC-SM3 / SM4-GCM, the
Chinese national standards) or ``get_suite("intl")`` (Ed25519 / SHA-256 /
HMAC-SHA256 / AES-256-GCM). Code above this package never names an algorithm;
it calls ``suite.hash``, ``key.sign(purpose, message)``, ``suite.verify(...)``.

- What is signed: ``tagged(purpose, message)``, i.e. ``b"govledger/<purpose>/v1\\0"``
  followed by the message, so a signature for one purpose ("tx") can never
  be replayed as another ("commit").
- Public keys travel raw (``PublicKey.raw``): SM2 as the 65-byte point
  ``0x04||X||Y``, Ed25519 as 32 bytes. SM2 signatures are DER, Ed25519's 64 bytes.
- Verification sees untrusted input and never raises on it: malformed keys
  or signatures give False. Parsed keys are cached (bounded LRU).
- SM2 has two backends computing the same function: tongsuopy (C) when
  installed, else pure-Python gmssl (Linux aarch64 has no tongsuopy wheel);
  ``GOVLEDGER_SM2_BACKEND`` forces one (see :mod:`ledger.crypto.sm2`).
- Key files are PEM (PKCS#8 / SubjectPublicKeyInfo), optionally
  passphrase-encrypted, written atomically with mode 0600 and readable by
  OpenSSL 3 / Tongsuo (see :mod:`ledger.crypto.pkcs8`).
- Ephemeral key agreement (ECDH on the SM2 curve / X25519) and HKDF with the
  suite hash are for the node-to-node transport; with the static side
  (``Suite.agreement_public`` / ``Suite.agree_static``) they also seal small
  secrets to the holder of a signing key (:mod:`ledger.crypto.sealing`, e.g.
  payee data for the audit office).

Errors: bad keys or key files raise :class:`~ledger.errors.KeyFileError`,
failed AEAD opening :class:`~ledger.errors.CryptoError`, an unknown suite
:class:`~ledger.errors.InputError`; a bad ``purpose`` is our bug (ValueError).
"""

from ledger.crypto.base import EphemeralKey, PrivateKey, PublicKey, Suite, tagged
from ledger.crypto.intl import IntlSuite
from ledger.crypto.registry import (
    ENV_PASSPHRASE,
    SUITE_NAMES,
    get_suite,
    load_private_key_file,
    sm2_backend_name,
)
from ledger.crypto.sm import SMSuite

__all__ = [
    "ENV_PASSPHRASE",
    "SUITE_NAMES",
    "EphemeralKey",
    "IntlSuite",
    "PrivateKey",
    "PublicKey",
    "SMSuite",
    "Suite",
    "get_suite",
    "load_private_key_file",
    "sm2_backend_name",
    "tagged",
]
