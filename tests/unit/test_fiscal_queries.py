"""Fiscal queries: trails both ways, balance sheets, payments to a payee, totals, DOT; and
that a query's cost follows its answer, not the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fiscal import queries
from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX, PAY_TX, RETURN_TX
from ledger.codec import decode_value
from ledger.store import MemoryStore
from tests.fiscal_harness import (
    CITY,
    DISTRICT_A,
    ENTERPRISE_1,
    ENTERPRISE_2,
    FiscalChain,
    appropriation,
    payment,
    tree,
)


@pytest.fixture(scope="module")
def books() -> tuple[FiscalChain, dict[str, Any]]:
    """One tree with payments, a top-up, a return, and a second, unrelated appropriation."""
    fc = FiscalChain()
    tags = tree(fc)
    ids: dict[str, Any] = {"tags": tags}
    ids["p1"] = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 12_000_000))["flow_id"]
    ids["p2"] = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 3_000_000,
                                                    payee_uscc=ENTERPRISE_2))["flow_id"]
    ids["p3"] = fc.ok("district_b", PAY_TX, payment(tags["district_b"], 5_000_000,
                                                    function_code="2050101"))["flow_id"]
    ids["topup"] = fc.ok("city", ALLOCATE_TX, {"from": tags["city"], "to_org": DISTRICT_A,
                                               "region": "350102000",
                                               "amount": 2_000_000})["flow_id"]
    ids["ret"] = fc.ok("district_b", RETURN_TX, {"from": tags["district_b"],
                                                 "amount": 1_000_000})["flow_id"]
    fc.ok("city", APPROPRIATE_TX, appropriation("FZ2025-01", 7_000_000, year=2025,
                                                function_code="2120501"))
    ids["p4"] = fc.ok("city", PAY_TX, payment("FZ2025-01", 700_000,
                                              function_code="2120501"))["flow_id"]
    return fc, ids


def edge_amounts(trail: dict[str, Any]) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {(e["from"], e["to"], e["kind"]): (e["amount"], e["count"]) for e in trail["edges"]}


def test_forward_trail_is_complete_and_exact(books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: the forward trail of the appropriation lists every fund, payee and edge below
    it with exact amounts (top-ups summed per edge, returns as edges up). Method: compare
    with the flows made."""
    fc, ids = books
    t = ids["tags"]
    trail = queries.forward_trail(fc.store, t["province"])
    assert trail is not None
    assert edge_amounts(trail) == {
        ("budget:闽财预〔2026〕15号", t["province"], "APPROPRIATION"): (100_000_000, 1),
        (t["province"], t["city"], "ALLOCATION"): (60_000_000, 1),
        (t["city"], t["district_a"], "ALLOCATION"): (32_000_000, 2),
        (t["city"], t["district_b"], "ALLOCATION"): (20_000_000, 1),
        (t["district_a"], "U" + ENTERPRISE_1, "PAYMENT"): (12_000_000, 1),
        (t["district_a"], "U" + ENTERPRISE_2, "PAYMENT"): (3_000_000, 1),
        (t["district_b"], "U" + ENTERPRISE_1, "PAYMENT"): (5_000_000, 1),
        (t["district_b"], t["city"], "RETURN"): (1_000_000, 1),
    }
    assert [f["tag"] for f in trail["funds"]] == [t["province"], t["city"], t["district_a"],
                                                  t["district_b"]]
    payees = {p["key"]: (p["amount"], p["count"]) for p in trail["payees"]}
    assert payees == {"U" + ENTERPRISE_1: (17_000_000, 2), "U" + ENTERPRISE_2: (3_000_000, 1)}
    assert trail["totals"]["paid_to_payees"] == 20_000_000
    assert len(trail["flows"]) == 9 and not trail["truncated"]
    assert all("sealed" not in f for f in trail["flows"])
    below = queries.forward_trail(fc.store, t["district_b"])
    assert below is not None
    assert {(e["from"], e["to"]) for e in below["edges"]} == {
        (t["city"], t["district_b"]), (t["district_b"], "U" + ENTERPRISE_1),
        (t["district_b"], t["city"])}
    assert queries.forward_trail(fc.store, "NOPE") is None
    short = queries.forward_trail(fc.store, t["province"], limit=3)
    assert short is not None and short["truncated"] is True


def test_backward_trail_reaches_the_appropriation(
        books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: from one payment, the funds above it with the allocations that fed each, up
    to the appropriation. Method: the payment from district A (fed twice by the city)."""
    fc, ids = books
    t = ids["tags"]
    trail = queries.backward_trail(fc.store, ids["p1"])
    assert trail is not None
    assert trail["payment"]["flow_id"] == ids["p1"] and trail["payment"]["amount"] == 12_000_000
    path = [(step["fund"]["tag"], [(f["kind"], f["amount"]) for f in step["inflows"]])
            for step in trail["path"]]
    assert path == [
        (t["district_a"], [("ALLOCATION", 30_000_000), ("ALLOCATION", 2_000_000)]),
        (t["city"], [("ALLOCATION", 60_000_000)]),
        (t["province"], [("APPROPRIATION", 100_000_000)]),
    ]
    assert (t["district_a"], "U" + ENTERPRISE_1, "PAYMENT") in edge_amounts(trail)
    assert queries.backward_trail(fc.store, ids["topup"]) is None  # not a payment
    assert queries.backward_trail(fc.store, b"\0" * 32) is None


def test_balance_sheet_per_node(books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: per node: received, allocated, spent, returned, unallocated and progress in
    basis points of what it received net of returns, counting spending below it.
    Method: check every row of the tree."""
    fc, ids = books
    t = ids["tags"]
    sheet = queries.balance_sheet(fc.store, t["province"])
    assert sheet is not None
    rows = {r["tag"]: r for r in sheet["rows"]}
    assert [r["tag"] for r in sheet["rows"]] == [t["province"], t["city"], t["district_a"],
                                                 t["district_b"]]
    a, b, city = rows[t["district_a"]], rows[t["district_b"]], rows[t["city"]]
    assert (a["received"], a["paid"], a["balance"], a["progress_bp"]) == (
        32_000_000, 15_000_000, 17_000_000, 4687)
    assert (b["received"], b["returned_out"], b["balance"], b["progress_bp"]) == (
        20_000_000, 1_000_000, 14_000_000, 2631)
    assert (city["allocated"], city["returned_in"], city["balance"], city["paid_below"],
            city["progress_bp"]) == (52_000_000, 1_000_000, 9_000_000, 20_000_000, 3333)
    assert rows[t["province"]]["progress_bp"] == 2000
    assert rows[t["district_a"]]["depth"] == 2 and rows[t["district_a"]]["holder"] == DISTRICT_A
    sub = queries.balance_sheet(fc.store, t["city"])
    assert sub is not None and [r["depth"] for r in sub["rows"]] == [0, 1, 1]


def test_payments_to_one_payee_across_departments_and_years(
        books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: every payment to one payee, whichever fund, organisation or year paid it.
    Method: enterprise 1 was paid by district A and B (2026) and the city (2025 fund)."""
    fc, ids = books
    found = queries.payments_to(fc.store, "U" + ENTERPRISE_1)
    assert [p["flow_id"] for p in found["payments"]] == [ids["p1"], ids["p3"], ids["p4"]]
    assert found["amount"] == 17_700_000 and found["count"] == 3
    assert {p["org"] for p in found["payments"]} == {DISTRICT_A, "11350104MB2F000400", CITY}
    assert queries.payments_to(fc.store, "U" + ENTERPRISE_2)["amount"] == 3_000_000
    assert queries.payments_to(fc.store, "H" + "00" * 32)["payments"] == []
    pages, after = [], None
    while True:  # a page at a time: the same payments, each once, and the amounts add up
        page = queries.payments_to(fc.store, "U" + ENTERPRISE_1, limit=2, after=after)
        pages.append(page)
        if page["next"] is None:
            break
        after = page["next"]
    assert [[p["flow_id"] for p in page["payments"]] for page in pages] == [  # type: ignore
        [ids["p1"], ids["p3"]], [ids["p4"]]]
    assert [page["truncated"] for page in pages] == [True, False]
    assert sum(page["amount"] for page in pages) == 17_700_000  # type: ignore[misc]


def test_totals_by_function_code_and_region_prefix(
        books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: payments summed per function code and per fiscal region, under a prefix.
    Method: compare with the four payments made."""
    fc, _ = books
    by_fn = queries.totals(fc.store, "function")
    assert [(r["code"], r["count"], r["amount"]) for r in by_fn["rows"]] == [
        ("2050101", 1, 5_000_000), ("2050202", 2, 15_000_000), ("2120501", 1, 700_000)]
    assert queries.totals(fc.store, "function", "205")["amount"] == 20_000_000
    by_region = queries.totals(fc.store, "region", "3501")
    assert [(r["code"], r["amount"]) for r in by_region["rows"]] == [
        ("350100000", 700_000), ("350102000", 15_000_000), ("350104000", 5_000_000)]
    assert queries.totals(fc.store, "region", "350102")["count"] == 2
    assert queries.totals(fc.store, "region", "36")["rows"] == []


def test_dot_output(books: tuple[FiscalChain, dict[str, Any]]) -> None:
    """Goal: trails and balance sheets render as Graphviz digraphs with one node per fund
    and payee and one labelled edge per aggregated edge. Method: count lines; quoting."""
    fc, ids = books
    trail = queries.forward_trail(fc.store, ids["tags"]["province"])
    assert trail is not None
    dot = queries.to_dot(trail, 'trail "x"')
    assert dot.startswith('digraph "trail \\"x\\"" {') and dot.rstrip().endswith("}")
    assert dot.count("->") == len(trail["edges"])
    assert dot.count("shape=box,") == 4 and dot.count("shape=ellipse") == 2
    assert "label=\"allocation ¥320,000.00 ×2\"" in dot
    assert 'shape=note, label="闽财预〔2026〕15号"' in dot
    sheet = queries.balance_sheet(fc.store, ids["tags"]["province"])
    assert sheet is not None
    tree_dot = queries.balance_dot(sheet)
    assert tree_dot.count("->") == 3 and "progress 46.87%" in tree_dot
    back = queries.backward_trail(fc.store, ids["p1"])
    assert back is not None and queries.to_dot(back).count("->") == 4  # top-ups: one edge


class CountingReader:
    """A Reader that counts what a query touches."""

    def __init__(self, store: MemoryStore) -> None:
        self.store, self.gets, self.scanned = store, 0, 0

    def get_state(self, key: bytes) -> bytes | None:
        self.gets += 1
        return self.store.get_state(key)

    def get_index(self, key: bytes) -> bytes | None:
        self.gets += 1
        return self.store.get_index(key)

    def iter_index(self, prefix: bytes, start: bytes | None = None, reverse: bool = False
                   ) -> Iterator[tuple[bytes, bytes]]:
        for item in self.store.iter_index(prefix, start, reverse):
            self.scanned += 1
            yield item

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]:
        for item in self.store.iter_state(prefix, start):
            self.scanned += 1
            yield item


def test_query_cost_follows_the_answer_not_the_ledger() -> None:
    """Goal: trails, balance sheets and payee lookups touch as many keys for one small tree
    whether the ledger holds little or much else. Method: measure the queries of tree A,
    then add a large unrelated tree B (100 payments) and measure again: same counts."""
    fc = FiscalChain()
    tags = tree(fc, "SMALL-A")
    pay_id = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_000))["flow_id"]
    assert isinstance(pay_id, bytes)
    assert isinstance(fc.store, MemoryStore)

    def cost() -> list[tuple[int, int]]:
        out = []
        for run in (lambda r: queries.forward_trail(r, "SMALL-A"),
                    lambda r: queries.backward_trail(r, pay_id),
                    lambda r: queries.balance_sheet(r, "SMALL-A"),
                    lambda r: queries.payments_to(r, "U" + ENTERPRISE_2)):
            reader = CountingReader(fc.store)  # type: ignore[arg-type]
            run(reader)
            out.append((reader.gets, reader.scanned))
        return out

    before = cost()
    big = tree(fc, "BIG-B")
    fc.block([fc.tx("district_a", PAY_TX, payment(big["district_a"], 1_000 + i))
              for i in range(100)])
    assert cost() == before


def test_a_page_of_older_alerts_costs_the_page_not_the_newer_alerts() -> None:
    """Goal: paging back through alerts (``before``) reads from that alert on, so the
    cost of a page does not grow with the alerts raised since; pages put together are the
    whole list. Method: payments dated in the future raise payment_date alerts; read the
    two oldest a page at a time, by rule and in all, with 3 and then 40 alerts newer than
    them, counting the keys scanned."""
    fc = FiscalChain()
    tags = tree(fc, "ALERTS")

    def pay_future(n: int) -> None:
        fc.block([fc.tx("district_a", PAY_TX, payment(tags["district_a"], 100 + i,
                                                      value_date="2026-01-09"))
                  for i in range(n)])

    pay_future(5)
    ids = [a["id"] for a in queries.alerts(fc.store, "payment_date")["alerts"]]  # type: ignore
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)

    def page_cost() -> list[tuple[int, list[Any]]]:
        out = []
        for rule in ("payment_date", None):
            reader = CountingReader(fc.store)  # type: ignore[arg-type]
            page = queries.alerts(reader, rule, limit=1, before=ids[3])["alerts"]
            out.append((reader.scanned, [a["id"] for a in page]))  # type: ignore
        return out

    few = page_cost()
    every_id = [a["id"] for a in queries.alerts(fc.store)["alerts"]]  # type: ignore
    assert [p for _, p in few] == [[ids[4]], [max(i for i in every_id if i < ids[3])]]
    pay_future(40)
    assert page_cost() == few
    everything = queries.alerts(fc.store, "payment_date", limit=1000)["alerts"]
    paged: list[Any] = []
    before = None
    while True:
        page = queries.alerts(fc.store, "payment_date", limit=7, before=before)
        paged += page["alerts"]  # type: ignore[arg-type]
        if not page["truncated"]:
            break
        before = paged[-1]["id"]
    assert paged == everything and len(paged) == 45


def test_the_tree_read_in_range_scans_is_the_tree_walked_fund_by_fund(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: the forward trail that reads a whole tree in three range scans answers exactly
    what the walk fund by fund answers — funds, flows, edges, payees, totals, in the same
    order, truncated at the same flow — also beside funds whose tags share its prefix
    (T1-X, T10, T1_Y sort between T1's own keys and its children's). Method: four such
    trees with payments, a top-up and a return; every fund's trail at every limit, with
    the range scans, then with them turned off."""
    fc = FiscalChain()
    tags: list[str] = []
    for root in ("T1", "T1-X", "T10", "T1_Y"):
        t = tree(fc, root)
        tags += list(t.values())
        fc.ok("district_a", PAY_TX, payment(t["district_a"], 1_000))
        fc.ok("district_b", PAY_TX, payment(t["district_b"], 2_000, payee_uscc=ENTERPRISE_2))
        fc.ok("city", ALLOCATE_TX, {"from": t["city"], "to_org": DISTRICT_A,
                                    "region": "350102000", "amount": 3_000})
        fc.ok("district_b", RETURN_TX, {"from": t["district_b"], "amount": 500})
        fc.ok("city", PAY_TX, payment(t["city"], 700))

    def answers() -> list[Any]:
        return [queries.forward_trail(fc.store, tag, limit=limit)
                for tag in tags for limit in (1, 2, 3, 5, 8, 13, queries.FLOWS_MAX)]

    scanned = answers()
    whole = queries.forward_trail(fc.store, "T1")
    assert whole is not None and {f["tag"] for f in whole["funds"]} == {
        "T1", "T1.1", "T1.1.1", "T1.1.2"}
    monkeypatch.setattr(queries, "_subtree", lambda *_: None)
    assert answers() == scanned


def test_trails_read_a_store_whose_in_index_holds_flow_ids() -> None:
    """Goal: a node upgraded over a store written before the ``in/`` index held each flow's
    record (it held the flow's id, to be read from the flow index) answers the same trails.
    Method: one tree with payments, a top-up and a return; every ``in/`` value replaced by
    its flow's id; both trails of every fund and payment compared."""
    fc = FiscalChain()
    tags = tree(fc, "OLD-1")
    pays = [fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_000))["flow_id"],
            fc.ok("district_b", PAY_TX, payment(tags["district_b"], 2_000))["flow_id"]]
    fc.ok("city", ALLOCATE_TX, {"from": tags["city"], "to_org": DISTRICT_A,
                                "region": "350102000", "amount": 3_000})
    fc.ok("district_b", RETURN_TX, {"from": tags["district_b"], "amount": 500})
    store = fc.store
    assert isinstance(store, MemoryStore)

    def trails() -> list[Any]:
        return ([queries.forward_trail(store, tag) for tag in tags.values()]
                + [queries.backward_trail(store, flow_id) for flow_id in pays])

    now = trails()
    legacy = 0
    for key, value in list(store.index.items()):
        if key.startswith(b"fiscal/x/in/"):
            record = decode_value(value)
            assert isinstance(record, dict) and isinstance(record["flow_id"], bytes)
            store.index[key] = record["flow_id"]
            legacy += 1
    assert legacy == 6  # the appropriation, four allocations (one a top-up), the return
    assert trails() == now
