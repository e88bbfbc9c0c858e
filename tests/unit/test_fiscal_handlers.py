"""Fiscal flow transactions: conservation, who may move a fund, validation, no partial writes."""

from __future__ import annotations

import pytest

from fiscal import handlers, model, queries
from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX, PAY_TX, RETURN_TX, get_fund
from ledger.codec import decode_value
from tests.fiscal_harness import (
    CITY,
    DISTRICT_A,
    DISTRICT_B,
    ENTERPRISE_1,
    FiscalChain,
    appropriation,
    payment,
    tree,
)


@pytest.fixture
def fc() -> FiscalChain:
    return FiscalChain()


def snapshot(fc: FiscalChain) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """Everything fiscal in state and index, to compare before and after a failed flow."""
    state = dict(fc.store.iter_state(b"fiscal/"))
    index = dict(fc.store.iter_index(b"fiscal/"))
    return state, index


def test_flows_move_money_and_keep_the_books(fc: FiscalChain) -> None:
    """Goal: appropriate → allocate (new child, then top-up) → pay → return leave exact sums.
    Method: run each flow in its own block and read the fund records back."""
    tags = tree(fc)
    assert tags["city"] == "FJ2026-ZD-0001.1" and tags["district_a"] == "FJ2026-ZD-0001.1.1"
    again = fc.ok("city", ALLOCATE_TX, {"from": tags["city"], "to_org": DISTRICT_A,
                                        "region": "350102000", "amount": 1_000_000})
    assert again["child_tag"] == tags["district_a"]  # a top-up, not a second child
    paid = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 5_000_000))
    assert paid["payment_id"] == paid["flow_id"] and paid["balance"] == 26_000_000
    back = fc.ok("district_a", RETURN_TX, {"from": tags["district_a"], "amount": 1_000_000})
    assert back["to"] == tags["city"]
    get = fc.chain.state_get
    province, city = get_fund(get, tags["province"]), get_fund(get, tags["city"])
    district = get_fund(get, tags["district_a"])
    assert province is not None and city is not None and district is not None
    assert (province.received, province.allocated, province.balance) == (
        100_000_000, 60_000_000, 40_000_000)
    assert (city.received, city.allocated, city.returned_in, city.balance) == (
        60_000_000, 51_000_000, 1_000_000, 10_000_000)
    assert (district.received, district.paid, district.returned_out, district.balance) == (
        31_000_000, 5_000_000, 1_000_000, 25_000_000)
    assert city.children == 2 and district.parent == city.tag and district.depth == 2
    assert district.root == province.tag and district.holder == DISTRICT_A
    assert district.region == "350102000" and district.project == province.project


@pytest.mark.parametrize("tx_type, sender, payload, expected", [
    (ALLOCATE_TX, "city", {"from": "FJ2026-ZD-0001.1", "to_org": DISTRICT_A,
                           "region": "350102000", "amount": 10_000_001},
     "fund FJ2026-ZD-0001.1 has 10000000 fen (¥100,000.00) available; allocation of 10000001 "
     "fen (¥100,000.01) asked"),
    (PAY_TX, "district_a", payment("FJ2026-ZD-0001.1.1", 30_000_001),
     "fund FJ2026-ZD-0001.1.1 has 30000000 fen (¥300,000.00) available; payment of 30000001 "
     "fen (¥300,000.01) asked"),
    (RETURN_TX, "district_b", {"from": "FJ2026-ZD-0001.1.2", "amount": 20_000_001},
     "fund FJ2026-ZD-0001.1.2 has 20000000 fen (¥200,000.00) available; return of 20000001 "
     "fen (¥200,000.01) asked"),
])
def test_conservation_violations_fail_with_balance_and_amount(
        fc: FiscalChain, tx_type: str, sender: str, payload: dict[str, object],
        expected: str) -> None:
    """Goal: allocating, paying or returning one fen more than the balance fails, the reason
    states the balance and the amount asked, and nothing is written. Method: build the tree,
    snapshot the fiscal state and index, run the violating flow, compare."""
    tree(fc)
    before = snapshot(fc)
    result = fc.do(sender, tx_type, payload)  # type: ignore[arg-type]
    assert not result.ok and result.code == "rejected"
    assert result.reason == f"insufficient balance: {expected}"
    assert snapshot(fc) == before


def test_appropriation_cannot_be_returned_and_tags_are_unique(fc: FiscalChain) -> None:
    """Goal: a root fund has no parent to return to; a tag is created once. Method: try both."""
    tags = tree(fc)
    result = fc.do("province", RETURN_TX, {"from": tags["province"], "amount": 1})
    assert not result.ok and "no parent fund" in result.reason
    result = fc.do("province", APPROPRIATE_TX, appropriation())
    assert not result.ok and "already exists (created at height 1)" in result.reason


def test_only_the_holding_organisations_finance_officers_move_a_fund(fc: FiscalChain) -> None:
    """Goal: a fund moves only by a finance officer of the organisation holding it.
    Method: another organisation's officer, the auditor, an enterprise account and an
    unregistered key each try to pay out of the city's fund; admission's precheck gives the
    same refusals early."""
    tags = tree(fc)
    before = snapshot(fc)
    cases = {
        "district_a": "held by 福州市财政局 (11350100MB2F00024G); only its finance officers may "
                      "move it, not district_a",
        "auditor": "does not have the finance role",
        "enterprise": "does not have the finance role",
        "stranger": "not a registered account",
    }
    for who, reason in cases.items():
        tx = fc.tx(who, PAY_TX, payment(tags["city"], 100))
        assert reason in (handlers.precheck(fc.chain.state_get, tx) or ""), who
        (result,) = fc.block([tx])
        assert not result.ok and reason in result.reason, (who, result.reason)
    assert snapshot(fc) == before
    result = fc.do("auditor", APPROPRIATE_TX, appropriation("AUDIT-1"))
    assert not result.ok and "finance role" in result.reason


@pytest.mark.parametrize("change, reason", [
    ({"tag": "bad tag"}, "payload.tag must be a fund tag"),
    ({"tag": "A.1"}, "payload.tag must be a fund tag"),
    ({"amount": 0}, "payload.amount must be an integer number of fen"),
    ({"amount": True}, "payload.amount must be an integer number of fen"),
    ({"amount": "100"}, "payload.amount must be an integer number of fen"),
    ({"amount": model.AMOUNT_MAX + 1}, "payload.amount must be an integer number of fen"),
    ({"year": 1999}, "payload.year must be a fiscal year"),
    ({"function_code": "1050202"}, "functional classification code"),
    ({"function_code": "205020"}, "functional classification code"),
    ({"project_end": "2026-02-30"}, "is not a calendar date"),
    ({"project_end": "20261231"}, "must be a date YYYY-MM-DD"),
    ({"region": "35010"}, "9-digit fiscal region code"),
    ({"direct": 1}, "payload.direct must be true or false"),
    ({"extra": 1}, "unknown payload field(s): extra"),
    ({"project": ""}, "payload.project must be a non-empty string"),
    ({"doc_no": "x\x00"}, "control characters"),
])
def test_appropriation_payload_is_validated(fc: FiscalChain, change: dict[str, object],
                                            reason: str) -> None:
    """Goal: each malformed field is refused with a reason naming it. Method: a valid
    appropriation with one field changed."""
    payload = appropriation()
    payload.update(change)  # type: ignore[arg-type]
    result = fc.do("province", APPROPRIATE_TX, payload)
    assert not result.ok and reason in result.reason, result.reason


def test_allocation_and_payment_targets_are_checked(fc: FiscalChain) -> None:
    """Goal: allocations go to registered departments only, in one region per child fund;
    payments name exactly one payee with a valid USCC. Method: one bad flow each."""
    tags = tree(fc)
    source = tags["city"]
    cases = [
        (ALLOCATE_TX, {"from": source, "to_org": ENTERPRISE_1, "region": "350100000",
                       "amount": 1}, "is not a department registered"),
        (ALLOCATE_TX, {"from": source, "to_org": "91350100MA2Y0101XX", "region": "350100000",
                       "amount": 1}, "payload.to_org: USCC"),
        (ALLOCATE_TX, {"from": source, "to_org": DISTRICT_A, "region": "350103000",
                       "amount": 1}, "already holds child fund FJ2026-ZD-0001.1.1"),
        (ALLOCATE_TX, {"from": "NOPE", "to_org": DISTRICT_A, "region": "350102000",
                       "amount": 1}, "no fund with tag NOPE"),
        (PAY_TX, {**payment(source, 1), "payee_hash": b"\x01" * 32},
         "exactly one of payee_uscc"),
        (PAY_TX, {k: v for k, v in payment(source, 1).items() if k != "payee_uscc"},
         "exactly one of payee_uscc"),
        (PAY_TX, payment(source, 1, value_date="2026-13-01"), "payload.value_date"),
        (PAY_TX, payment(source, 1, contract_digest=b"short"), "16..64-byte digest"),
        (PAY_TX, payment(source, 1, sealed=[]), "only for payments to a person"),
    ]
    for tx_type, payload, reason in cases:
        result = fc.do("city", tx_type, payload)  # type: ignore[arg-type]
        assert not result.ok and reason in result.reason, (payload, result.reason)


def test_flows_are_indexed_for_the_trail(fc: FiscalChain) -> None:
    """Goal: every flow is in the index under its id, out of its source, into its target;
    payments also under their payee and in the totals. Method: read the index keys."""
    tags = tree(fc)
    data = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_234_567))
    flow_id = data["payment_id"]
    assert isinstance(flow_id, bytes)
    out = list(fc.store.iter_index(model.out_prefix(tags["district_a"])))
    assert len(out) == 1
    record = decode_value(out[0][1])
    assert isinstance(record, dict) and record["flow_id"] == flow_id
    assert record["kind"] == "PAYMENT" and record["amount"] == 1_234_567
    assert record["payee"] == {"kind": "organisation", "uscc": ENTERPRISE_1,
                               "name": "福州示例科技有限公司"}
    into_city = [v for _, v in fc.store.iter_index(model.in_prefix(tags["city"]))]
    assert len(into_city) == 1
    payee = [v for _, v in fc.store.iter_index(model.payee_prefix("U" + ENTERPRISE_1))]
    assert payee == [flow_id]
    total = decode_value(fc.store.get_index(model.IX_TOTAL_FN + b"2050202") or b"")
    assert total == {"count": 1, "amount": 1_234_567}
    roots = [v for _, v in fc.store.iter_index(model.IX_ROOT)]
    assert roots == [tags["province"].encode()]
    district = get_fund(fc.chain.state_get, tags["district_a"])
    assert district is not None
    assert [f.holder for f in model.ancestors(fc.chain.state_get, district)][1] == CITY


def test_a_voucher_books_one_flow_per_organisation(fc: FiscalChain) -> None:
    """Goal: the same accounting voucher cannot move money twice — the repeat is refused as
    recorded (naming the first flow), before the balance is looked at, by admission too,
    and writes nothing — while another organisation may use the same number, and the
    voucher is part of the flow record and of the lookup. Method: pay with a voucher, then
    repeat the payment, once with the whole balance left and once above it."""
    tags = tree(fc)
    first = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_000_000,
                                                voucher="记-2026-0012"))
    flow_id = first["flow_id"]
    assert isinstance(flow_id, bytes)
    before = snapshot(fc)
    for amount in (1_000_000, 30_000_000):  # enough balance left, and more than it
        tx = fc.tx("district_a", PAY_TX, payment(tags["district_a"], amount,
                                                  voucher="记-2026-0012"))
        expected = (f"voucher 记-2026-0012 of {DISTRICT_A} is already recorded, by flow "
                    f"{flow_id.hex()}")
        assert handlers.precheck(fc.chain.state_get, tx) == expected
        (result,) = fc.block([tx])
        assert not result.ok and result.code == "voucher_recorded"
        assert result.reason == expected
    assert snapshot(fc) == before
    # Another organisation's books have their own numbering; any kind of flow takes one.
    other = fc.ok("district_b", RETURN_TX, {"from": tags["district_b"], "amount": 100,
                                            "voucher": "记-2026-0012"})
    found = queries.voucher(fc.store, DISTRICT_A, "记-2026-0012")
    assert found is not None and found["flow_id"] == flow_id
    assert (found["kind"], found["amount"], found["from"]) == (
        "PAYMENT", 1_000_000, tags["district_a"])
    theirs = queries.voucher(fc.store, DISTRICT_B, "记-2026-0012")
    assert theirs is not None and theirs["flow_id"] == other["flow_id"]
    assert queries.voucher(fc.store, CITY, "记-2026-0012") is None
    record = queries.flow(fc.store, flow_id)
    assert record is not None and record["voucher"] == "记-2026-0012"
    # A flow without a voucher is unaffected and records none.
    plain = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 100))
    plain_id = plain["flow_id"]
    assert isinstance(plain_id, bytes)
    assert "voucher" not in (queries.flow(fc.store, plain_id) or {})


@pytest.mark.parametrize("voucher", ["", " 记-1", "记-1 ", "-1", "记-", "记 1", "记－1",
                                     "x" * 65, 12, "记\n1"])
def test_a_voucher_has_one_spelling(fc: FiscalChain, voucher: object) -> None:
    """Goal: a voucher that could be written another way (spaces, full-width forms), or is
    not text, is refused with the rule, so no number is recorded twice under two spellings.
    Method: an appropriation carrying each malformed voucher."""
    result = fc.do("province", APPROPRIATE_TX,
                   appropriation(voucher=voucher))  # type: ignore[arg-type]
    assert not result.ok and result.code == "rejected"
    assert result.reason.startswith("payload.voucher must be an accounting voucher number")
