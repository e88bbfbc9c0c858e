"""Error types, split by who is at fault (STYLE.md §5).

- :class:`InputError` and its subclasses: bad input from a peer or a client.
  The caller drops the message or answers 4xx with ``str(exc)``, which always
  says what is wrong. Nothing has been changed when one is raised.
- :class:`CorruptionError`: the node's own storage is damaged. The process
  must stop loudly and never serve from it.
- Our own misuse (a bug) is an ``AssertionError`` or a plain ``TypeError`` /
  ``ValueError`` from Python itself; it is never caught and turned into a
  client answer.
"""

from __future__ import annotations


class GovledgerError(Exception):
    """Base class of every error govledger raises on purpose."""


class InputError(GovledgerError):
    """Input from outside (a client, a peer, a file) is malformed or invalid."""


class DecodeError(InputError):
    """Bytes are not the canonical encoding of the expected object."""


class KeyFileError(InputError):
    """A key file or key encoding cannot be read (wrong format, passphrase, curve)."""


class CryptoError(InputError):
    """Authenticated decryption failed, or a ciphertext, nonce or key has the wrong size."""


class SignatureError(InputError):
    """A signature does not verify."""


class ProofError(InputError):
    """A Merkle or state proof is malformed or does not verify."""


class TxRejected(InputError):
    """A transaction fails a rule; ``str(exc)`` is the reason recorded in its result.

    ``code`` is the result's code: ``rejected``, or a more specific one a subclass names
    when clients act on it (e.g. ``voucher_recorded``: the flow is on the ledger already).
    """

    code: str = "rejected"


class CorruptionError(GovledgerError):
    """Stored data is inconsistent; the node must stop rather than serve it."""
