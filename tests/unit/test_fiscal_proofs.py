"""A fund tree's balance sheet checked from the genesis file alone (fiscal.proofs)."""

from __future__ import annotations

import dataclasses

import pytest

from fiscal import queries
from fiscal.model import ALLOCATE_TX, PAY_TX, RETURN_TX, fund_key
from fiscal.proofs import balance_bundle, verified_balance_sheet
from ledger.codec import decode_value, encode, encode_value
from ledger.devnet import make_devnet
from ledger.errors import ProofError
from ledger.proofs import StateBundle
from tests.fiscal_harness import DISTRICT_A, FiscalChain, payment, tree


@pytest.fixture(scope="module")
def books() -> tuple[FiscalChain, dict[str, str]]:
    fc = FiscalChain()
    tags = tree(fc)
    fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_500_000))
    fc.ok("city", ALLOCATE_TX, {"from": tags["city"], "to_org": DISTRICT_A,
                                "region": "350102000", "amount": 300_000})
    fc.ok("district_b", RETURN_TX, {"from": tags["district_b"], "amount": 50_000})
    return fc, tags


def test_the_sheet_from_the_bundle_is_the_nodes_sheet(books: tuple[FiscalChain, dict[str, str]]
                                                      ) -> None:
    """Goal: from the bundle and the genesis file alone a client computes exactly the sheet
    the node serves, at the head block, for a whole tree and for a subtree. Method: build
    the bundle on the chain, round-trip it through canonical msgpack, verify, compare."""
    fc, tags = books
    for tag in (tags["province"], tags["city"], tags["district_a"]):
        bundle = balance_bundle(fc.chain, tag)
        assert bundle is not None
        sheet, height = verified_balance_sheet(fc.net.genesis, encode(bundle), tag)
        assert sheet == queries.balance_sheet(fc.store, tag)
        assert height == fc.store.head_height()
    assert balance_bundle(fc.chain, "NO-SUCH-FUND") is None


def _altered(bundle: StateBundle, i: int, value: bytes | None) -> bytes:
    entries = list(bundle.entries)
    entries[i] = dataclasses.replace(entries[i], value=value)
    return encode(dataclasses.replace(bundle, entries=entries))


def test_an_altered_missing_or_foreign_bundle_is_refused(
        books: tuple[FiscalChain, dict[str, str]]) -> None:
    """Goal: a node cannot pass off other figures: a fund record changed by one fen, a
    child left out, garbage bytes, or a bundle checked against another network's genesis
    each fail with a ProofError saying what. Method: alter the bundle of the whole tree."""
    fc, tags = books
    top = tags["province"]
    bundle = balance_bundle(fc.chain, top)
    assert bundle is not None
    record = decode_value(bundle.entries[1].value or b"")
    assert isinstance(record, dict) and isinstance(record["paid"], int)
    forged = encode_value({**record, "paid": record["paid"] + 1})
    with pytest.raises(ProofError):
        verified_balance_sheet(fc.net.genesis, _altered(bundle, 1, forged), top)
    short = dataclasses.replace(bundle, entries=bundle.entries[:-1])
    with pytest.raises(ProofError, match="does not prove state key"):
        verified_balance_sheet(fc.net.genesis, encode(short), top)
    with pytest.raises(ProofError, match="does not decode"):
        verified_balance_sheet(fc.net.genesis, b"\x93\x01\x02", top)
    other = make_devnet("sm", 4, time_ms=0).genesis
    with pytest.raises(ProofError, match="commit certificate"):
        verified_balance_sheet(other, encode(bundle), top)
    assert bundle.entries[0].key == fund_key(top)
