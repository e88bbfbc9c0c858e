"""Red-flag rules: each one raised when it should and silent when it should not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fiscal import licences, queries, rules
from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX, DAY_MS, PAY_TX, RETURN_TX
from ledger.codec import Value, decode_value
from tests.fiscal_harness import (
    CITY,
    DISTRICT_A,
    DISTRICT_B,
    ENTERPRISE_1,
    ENTERPRISE_2,
    PROVINCE,
    FiscalChain,
    appropriation,
    decide,
    fixed_licences,
    payment,
    tree,
)


@pytest.fixture
def fc() -> Iterator[FiscalChain]:
    """A chain whose licence lookup says every enterprise's licence is VALID (tests that
    look at licences install their own table)."""
    saved = licences.CERTS_ADAPTER
    licences.CERTS_ADAPTER = fixed_licences({ENTERPRISE_1: "VALID", ENTERPRISE_2: "VALID"})
    try:
        yield FiscalChain()
    finally:
        licences.CERTS_ADAPTER = saved


def alerts(fc: FiscalChain, rule: str | None = None) -> list[dict[str, Any]]:
    found = queries.alerts(fc.store, rule)["alerts"]
    assert isinstance(found, list)
    return [a for a in found if isinstance(a, dict)]


def pay(fc: FiscalChain, who: str, tag: str, amount: int, **extra: Value) -> dict[str, Value]:
    return fc.ok(who, PAY_TX, payment(tag, amount, **extra))


# -- split payments ---------------------------------------------------------------------------


def test_split_payments_raise_an_alert_naming_every_flow(fc: FiscalChain) -> None:
    """Goal: payments from one payer to one payee, each below T, within N days, together
    ≥ T raise split_payment naming all of them. Method: ¥60,000 then ¥50,000 (T = ¥100,000)
    on value dates 10 days apart; the second payment's result lists the alert."""
    tags = tree(fc)
    first = pay(fc, "district_a", tags["district_a"], 6_000_000, value_date="2026-01-01")
    assert first["alerts"] == [] and alerts(fc, "split_payment") == []
    fc.advance_days(10)
    second = pay(fc, "district_a", tags["district_a"], 5_000_000, value_date="2026-01-11")
    assert second["rules"] == ["split_payment"]
    (alert,) = alerts(fc, "split_payment")
    assert alert["id"] == second["alerts"][0]  # type: ignore[index]
    assert alert["flows"] == [first["flow_id"], second["flow_id"]]
    assert alert["details"] == {"threshold_fen": 10_000_000, "window_days": 30,
                                "total_fen": 11_000_000, "count": 2}
    assert "2 payments from 福州市鼓楼区财政局" in alert["why"]
    assert "total 11000000 fen (¥110,000.00)" in alert["why"]
    assert set(alert["orgs"]) == {DISTRICT_A, ENTERPRISE_1}


@pytest.mark.parametrize("second, date", [
    (3_000_000, "2026-01-02"),   # together below T
    (10_000_000, "2026-01-02"),  # the second is not below T
    (5_000_000, "2026-02-20"),   # 50 days apart: outside the window
])
def test_split_rule_stays_silent(fc: FiscalChain, second: int, date: str) -> None:
    """Goal: no split alert when the sum is below T, a payment is not below T, or the
    value dates are N or more days apart. Method: two payments each time."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 6_000_000, value_date="2026-01-01")
    pay(fc, "district_a", tags["district_a"], second, value_date=date)
    assert alerts(fc, "split_payment") == []


def test_split_needs_the_same_payer_and_payee_and_follows_governance(fc: FiscalChain) -> None:
    """Goal: payments to different payees, or by different payers, are not a split; the
    threshold is on-chain config changed by the committee. Method: pay two payees and from
    two districts (no alert); then the committee lowers T to ¥50,000 (set_config) and two
    ¥30,000 payments alert."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 6_000_000)
    pay(fc, "district_a", tags["district_a"], 6_000_000, payee_uscc=ENTERPRISE_2)
    pay(fc, "district_b", tags["district_b"], 6_000_000)
    assert alerts(fc, "split_payment") == []
    decide(fc, "set_config", {"changes": {rules.SPLIT_THRESHOLD: 5_000_000}})
    assert rules.thresholds(fc.chain.state_get)[rules.SPLIT_THRESHOLD] == 5_000_000
    pay(fc, "district_b", tags["district_b"], 3_000_000, payee_uscc=ENTERPRISE_2)
    pay(fc, "district_b", tags["district_b"], 3_000_000, payee_uscc=ENTERPRISE_2)
    (alert,) = alerts(fc, "split_payment")
    assert alert["details"]["threshold_fen"] == 5_000_000


def test_thresholds_change_only_through_governance(fc: FiscalChain) -> None:
    """Goal: an unknown or non-positive setting is refused by the committee's set_config;
    nobody else can write sys/config. Method: propose bad changes; read the defaults."""
    assert rules.thresholds(fc.chain.state_get) == rules.CONFIG_DEFAULTS
    for changes in ({rules.SPLIT_THRESHOLD: 0}, {"fiscal_nonsense": 3}):
        result = fc.do("city_committee", "gov.propose", {"kind": "set_config",
                                                         "params": {"changes": changes}})
        assert not result.ok
    result = fc.do("province", "gov.propose", {"kind": "set_config", "params": {
        "changes": {rules.IDLE_DAYS: 1}}})
    assert not result.ok and "committee" in result.reason


# -- licences ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["REVOKED", "SUSPENDED", "EXPIRED", "MISSING"])
def test_licence_not_valid_on_the_value_date_raises_an_alert(fc: FiscalChain,
                                                             status: str) -> None:
    """Goal: paying an enterprise whose business licence is not valid on the value date
    raises licence, with the status. Method: a licence table answering ``status``."""
    licences.CERTS_ADAPTER = fixed_licences({ENTERPRISE_1: status})
    tags = tree(fc)
    data = pay(fc, "district_a", tags["district_a"], 100_000, value_date="2026-01-01")
    (alert,) = alerts(fc, "licence")
    assert data["rules"] == ["licence"]
    assert alert["details"] == {"status": status, "value_date": "2026-01-01"}
    assert f"business licence is {status} on the value date 2026-01-01" in alert["why"]
    assert alert["flows"] == [data["payment_id"]]


def test_licence_rule_is_silent_for_valid_licences_departments_and_unknown(
        fc: FiscalChain) -> None:
    """Goal: no licence alert for a VALID licence, for a payee that is a department (no
    business licence), or when the certificates app cannot tell. Method: three payments."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 100_000)
    licences.CERTS_ADAPTER = fixed_licences({})  # MISSING for everyone…
    pay(fc, "district_a", tags["district_a"], 100_000, payee_uscc=PROVINCE)  # …but a department
    licences.CERTS_ADAPTER = lambda state_get, uscc, on_date: None
    pay(fc, "district_a", tags["district_a"], 100_000)
    assert alerts(fc, "licence") == []


def test_licence_lookup_is_wired_to_the_certificates_app() -> None:
    """Goal: the rule asks the certificates app's read API when it is installed.
    Method: compare the adapter with certs.queries.business_licence_status."""
    certs_queries = pytest.importorskip("certs.queries")
    assert licences.certs_adapter() is certs_queries.business_licence_status


# -- circular flows ----------------------------------------------------------------------------


def test_flows_back_to_an_ancestor_organisation_raise_circular_flow(fc: FiscalChain) -> None:
    """Goal: an allocation or payment to an organisation that holds the fund or a fund
    above it raises circular_flow. Method: district A allocates to the city, and pays the
    province; an allocation down and a return up stay silent."""
    tags = tree(fc)
    fc.ok("district_a", RETURN_TX, {"from": tags["district_a"], "amount": 1_000})
    assert alerts(fc, "circular_flow") == []
    data = fc.ok("district_a", ALLOCATE_TX, {"from": tags["district_a"], "to_org": CITY,
                                             "region": "350100000", "amount": 1_000_000})
    paid = pay(fc, "district_a", tags["district_a"], 500_000, payee_uscc=PROVINCE)
    assert paid["rules"] == ["circular_flow"]
    second, first = alerts(fc, "circular_flow")
    assert first["flows"] == [data["flow_id"]]
    assert first["details"] == {"ancestor": tags["city"]}
    assert "to 福州市财政局 (" in first["why"] and "above it" in first["why"]
    assert second["details"] == {"ancestor": tags["province"]}
    assert second["funds"] == [tags["district_a"], tags["city"], tags["province"]]


# -- payment dates ------------------------------------------------------------------------------


@pytest.mark.parametrize("value_date, kind", [
    ("2027-01-05", "after_project_end"),
    ("2026-01-09", "future"),
    ("2025-12-20", "before_approval"),
])
def test_payment_dates_out_of_bounds_raise_payment_date(fc: FiscalChain, value_date: str,
                                                        kind: str) -> None:
    """Goal: a value date after the project end, after the block's date, or before the
    appropriation was approved raises payment_date naming which. Method: blocks on
    2026-01-01 (CST); the project ends 2026-12-31 (the 2027 date is also in the future)."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 100_000, value_date=value_date)
    found = alerts(fc, "payment_date")
    assert kind in {a["details"]["kind"] for a in found}
    assert all(a["details"]["value_date"] == value_date for a in found)


def test_payment_on_a_normal_date_raises_no_date_alert(fc: FiscalChain) -> None:
    """Goal: a value date between approval and both the block date and project end is
    fine. Method: pay on the block's own date."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 100_000, value_date="2026-01-01")
    assert alerts(fc, "payment_date") == []


# -- prohibited function codes ------------------------------------------------------------------


def test_direct_funds_under_prohibited_codes_raise_an_alert(fc: FiscalChain) -> None:
    """Goal: a direct fund (直达资金) paying under a prohibited function code raises
    prohibited_function; an allowed code, or a fund that is not direct, does not; the
    committee changes the patterns. Method: two trees, one direct; then
    set_fiscal_prohibited_codes."""
    direct = tree(fc, "ZD-1", direct=True)
    ordinary = tree(fc, "PT-1")
    pay(fc, "district_a", direct["district_a"], 100_000, function_code="2050202")
    pay(fc, "district_a", ordinary["district_a"], 100_000, function_code="2050101")
    assert alerts(fc, "prohibited_function") == []
    data = pay(fc, "district_a", direct["district_a"], 100_000, function_code="2050101")
    (alert,) = alerts(fc, "prohibited_function")
    assert alert["details"] == {"function_code": "2050101", "pattern": "2xx0101"}
    assert alert["flows"] == [data["payment_id"]]
    decide(fc, "set_fiscal_prohibited_codes", {"patterns": ["20502"]})
    assert rules.prohibited_patterns(fc.chain.state_get) == ["20502"]
    pay(fc, "district_a", direct["district_a"], 100_000, function_code="2050202")
    pay(fc, "district_a", direct["district_a"], 100_000, function_code="2050101")
    assert len(alerts(fc, "prohibited_function")) == 2
    result = fc.do("city_committee", "gov.propose", {
        "kind": "set_fiscal_prohibited_codes", "params": {"patterns": ["12x"]}})
    assert not result.ok and "starting with 2" in result.reason


def test_code_patterns() -> None:
    """Goal: patterns are digit-or-x prefixes. Method: a table of matches."""
    assert rules.code_matches("2050101", "2xx0101")
    assert rules.code_matches("2010301", "201xx01")
    assert rules.code_matches("2310101", "231")
    assert not rules.code_matches("2050201", "2xx0101")
    assert not rules.code_matches("205", "2xx0101")


# -- idle balances ------------------------------------------------------------------------------


def test_idle_balance_is_flagged_once_after_n_days(fc: FiscalChain) -> None:
    """Goal: a fund with a positive balance and no flow for fiscal_idle_days is flagged
    by the begin-block hook, once per idle period; a fund that moved, or is empty, is not.
    Method: a tree on day 0; district B spends everything and district A moves on day
    45; blocks on day 89, 90, 91 and 140; the threshold is 90 days."""
    tags = tree(fc)
    fc.ok("district_b", PAY_TX, payment(tags["district_b"], 20_000_000))
    fc.advance_days(45)
    fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_000, value_date="2026-02-15"))
    start = fc.time_ms - 45 * DAY_MS
    fc.block([], at_ms=start + 89 * DAY_MS)
    assert alerts(fc, "idle_balance") == []
    fc.block([], at_ms=start + 90 * DAY_MS)
    idle = {a["funds"][0] for a in alerts(fc, "idle_balance")}
    assert idle == {tags["province"], tags["city"]}  # district A moved; B is empty
    fc.block([], at_ms=start + 91 * DAY_MS)
    assert len(alerts(fc, "idle_balance")) == 2
    fc.block([], at_ms=start + 140 * DAY_MS)
    idle = {a["funds"][0] for a in alerts(fc, "idle_balance")}
    assert idle == {tags["province"], tags["city"], tags["district_a"]}
    (alert,) = [a for a in alerts(fc, "idle_balance") if a["funds"] == [tags["district_a"]]]
    assert alert["details"]["since"] == "2026-02-15" and alert["flows"] == []
    assert "without any flow since 2026-02-15" in alert["why"]
    # Processed days are deleted: the bookkeeping stays bounded.
    left = [k for k, _ in fc.store.iter_state(rules.IDLE_PREFIX) if k != rules.IDLE_DAYS_KEY]
    assert left in ([], [rules.IDLE_POS_KEY])


def test_idle_threshold_follows_governance(fc: FiscalChain) -> None:
    """Goal: the idle threshold is on-chain config. Method: the committee sets it to 10
    days; a block 10 days after the appropriation flags it."""
    fc.ok("province", APPROPRIATE_TX, appropriation())
    decide(fc, "set_config", {"changes": {rules.IDLE_DAYS: 10}})
    fc.advance_days(9)
    fc.block([])
    assert alerts(fc, "idle_balance") == []
    fc.advance_days(1)
    fc.block([])
    (alert,) = alerts(fc, "idle_balance")
    assert alert["details"]["threshold_days"] == 10


# -- alert storage and queries --------------------------------------------------------------------


def test_alerts_are_state_and_queryable_by_rule_and_organisation(fc: FiscalChain) -> None:
    """Goal: alerts live in the authenticated state with newest-first keys and can be
    listed by rule, by organisation, and paged. Method: raise three alerts of two rules."""
    tags = tree(fc)
    pay(fc, "district_a", tags["district_a"], 6_000_000)
    pay(fc, "district_a", tags["district_a"], 6_000_000)  # split
    pay(fc, "district_b", tags["district_b"], 100, function_code="2050101",
        value_date="2026-06-01")  # payment_date (future)
    everything = alerts(fc)
    assert [a["id"] for a in everything] == [2, 1]
    assert [a["rule"] for a in everything] == ["payment_date", "split_payment"]
    raw = fc.chain.state_get(rules.ALERT_PREFIX + rules.inv_bytes(1))
    assert raw is not None and decode_value(raw)["rule"] == "split_payment"  # type: ignore[index]
    only_b = queries.alerts(fc.store, org=DISTRICT_B)["alerts"]
    assert [a["id"] for a in only_b] == [2]  # type: ignore[index]
    paged = queries.alerts(fc.store, before=2)["alerts"]
    assert [a["id"] for a in paged] == [1]  # type: ignore[index]
    limited = queries.alerts(fc.store, limit=1)
    assert limited["count"] == 1 and limited["truncated"] is True
