"""A fund tree's balance sheet checked from the genesis file alone.

Theory of operation
-------------------
Every figure of a balance sheet (:func:`fiscal.queries.balance_sheet`) comes from
fund records, which live in the authenticated state: each fund's received,
allocated, paid and returned sums and its number of children. The node runs the
query once with a reader that notes every state key it reads, and answers those
keys' values at its head block, each with a state proof, beside the head's
certified header (:class:`ledger.proofs.StateBundle`, ``GET /v1/funds/{tag}/proof``).

A client verifies the header against the genesis validators and every value
against the header's state root, then runs the *same* query over the proven
values only; a key the query reads that the bundle does not prove is an error,
not an absent fund. So the sheet it prints is what the ledger holds at that
block, whichever node served it. (Trails come from indexes outside the state
root and are not covered.) Pure: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

from fiscal import queries
from ledger.chain import Chain
from ledger.codec import Value, decode
from ledger.errors import DecodeError, ProofError
from ledger.genesis import Genesis
from ledger.proofs import StateBundle, build_state_bundle, verify_state_bundle


class _Recording:
    """A store reader that notes the state keys a query reads (and refuses any other read,
    which a bundle of state proofs could not cover)."""

    def __init__(self, reader: queries.Reader) -> None:
        self.reader, self.keys = reader, list[bytes]()

    def get_state(self, key: bytes) -> bytes | None:
        self.keys.append(key)
        return self.reader.get_state(key)

    def get_index(self, key: bytes) -> NoReturn:
        raise AssertionError("a proven query reads the state only")

    def iter_index(self, prefix: bytes, start: bytes | None = None, reverse: bool = False
                   ) -> NoReturn:
        raise AssertionError("a proven query reads the state only")

    def iter_state(self, prefix: bytes, start: bytes | None = None) -> NoReturn:
        raise AssertionError("a proven query reads keys it names, not ranges")


class _Proven:
    """The proven values of a bundle, read as a store; anything else is a ProofError."""

    def __init__(self, values: dict[bytes, bytes | None]) -> None:
        self.values = values

    def get_state(self, key: bytes) -> bytes | None:
        if key not in self.values:
            raise ProofError(f"the bundle does not prove state key {key.decode(errors='replace')}"
                             f" that the balance sheet reads")
        return self.values[key]

    def get_index(self, key: bytes) -> NoReturn:
        raise ProofError("a balance sheet reads no index")

    def iter_index(self, prefix: bytes, start: bytes | None = None, reverse: bool = False
                   ) -> Iterator[tuple[bytes, bytes]]:
        raise ProofError("a balance sheet reads no index")

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]:
        raise ProofError("a balance sheet reads no range of the state")


def balance_bundle(chain: Chain, tag: str) -> StateBundle | None:
    """The fund records ``tag``'s balance sheet reads, proven at the head (None: no fund)."""
    recording = _Recording(chain.store)
    if queries.balance_sheet(recording, tag) is None:
        return None
    return build_state_bundle(chain, recording.keys)


def verified_balance_sheet(genesis: Genesis, raw: bytes, tag: str
                           ) -> tuple[dict[str, Value], int]:
    """``tag``'s balance sheet from a bundle (canonical msgpack) and the block height it
    is proven at; ProofError if the bundle is malformed, does not verify from ``genesis``
    or does not prove everything the sheet needs."""
    try:
        bundle = decode(raw, StateBundle)
    except DecodeError as exc:
        raise ProofError(f"the balance bundle does not decode: {exc}") from None
    values = verify_state_bundle(genesis, bundle)
    sheet = queries.balance_sheet(_Proven(values), tag)
    if sheet is None:
        raise ProofError(f"the bundle proves that there is no fund {tag}")
    return sheet, bundle.header.header.height
