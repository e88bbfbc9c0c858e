"""Fund conservation under random flows, driven through the real handlers on a chain.

A hypothesis ``RuleBasedStateMachine`` sends random appropriations, allocations,
payments and returns — valid and invalid: amounts over the balance, the wrong
organisation's officer, returns from a root fund — one or several per block,
to an in-process chain (ledger.devnet, real execution and state). A deliberately
simple model of the books predicts which flows succeed. After every step it checks
that every fund's balance equals received − allocated − paid + returned (in − out)
and is never negative, that no fund returned more than it received, that the sum
over each tree of the balances plus what was paid out equals the appropriation, and
that the chain agrees with the model fund by fund.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fiscal.model import (
    ALLOCATE_TX,
    APPROPRIATE_TX,
    DEPTH_MAX,
    FUND_PREFIX,
    PAY_TX,
    RETURN_TX,
    get_fund,
)
from ledger.codec import Value
from ledger.tx import Transaction
from tests.fiscal_harness import (
    AUDIT,
    CITY,
    DISTRICT_A,
    DISTRICT_B,
    PROVINCE,
    FiscalChain,
    appropriation,
    payment,
)

OFFICERS = {"province": PROVINCE, "city": CITY, "district_a": DISTRICT_A,
            "district_b": DISTRICT_B}
DEPARTMENTS = {PROVINCE: "350000000", CITY: "350100000", DISTRICT_A: "350102000",
               DISTRICT_B: "350104000", AUDIT: "350100000"}


@dataclass
class Book:
    """The model's view of one fund."""

    holder: str
    parent: str | None
    depth: int
    root: str
    received: int = 0
    allocated: int = 0
    paid: int = 0
    returned_in: int = 0
    returned_out: int = 0
    children: dict[str, str] = field(default_factory=dict)  # holder USCC -> child tag

    @property
    def balance(self) -> int:
        return (self.received + self.returned_in - self.allocated - self.paid
                - self.returned_out)


class Conservation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fc = FiscalChain("intl")
        self.books: dict[str, Book] = {}
        self.appropriated: dict[str, int] = {}
        self.batch: list[tuple[Transaction, bool]] = []
        self.roots = 0

    # -- the model -------------------------------------------------------------------------

    def _appropriate(self, who: str, tag: str, amount: int) -> bool:
        if tag in self.books:
            return False
        self.books[tag] = Book(OFFICERS[who], None, 0, tag, received=amount)
        self.appropriated[tag] = amount
        return True

    def _allocate(self, who: str, tag: str, org: str, amount: int) -> bool:
        book = self.books[tag]
        if book.holder != OFFICERS[who] or amount > book.balance or book.depth + 1 > DEPTH_MAX:
            return False
        book.allocated += amount
        child = book.children.get(org)
        if child is None:
            child = f"{tag}.{len(book.children) + 1}"
            book.children[org] = child
            self.books[child] = Book(org, tag, book.depth + 1, book.root)
        self.books[child].received += amount
        return True

    def _pay(self, who: str, tag: str, amount: int) -> bool:
        book = self.books[tag]
        if book.holder != OFFICERS[who] or amount > book.balance:
            return False
        book.paid += amount
        return True

    def _return(self, who: str, tag: str, amount: int) -> bool:
        book = self.books[tag]
        if (book.holder != OFFICERS[who] or book.parent is None or amount > book.balance
                or book.returned_out + amount > book.received):
            return False
        book.returned_out += amount
        self.books[book.parent].returned_in += amount
        return True

    # -- rules: each queues one flow; ``commit`` (or a full queue) makes a block ---------------

    def _queue(self, who: str, tx_type: str, payload: dict[str, Value], expected: bool) -> None:
        self.batch.append((self.fc.tx(who, tx_type, payload), expected))
        if len(self.batch) >= 4:
            self.commit()

    def _sender(self, data: st.DataObject, tag: str) -> str:
        """Mostly the holder's own officer (so flows get deep), sometimes anyone."""
        holder = [who for who, org in OFFICERS.items() if org == self.books[tag].holder]
        return data.draw(st.one_of(st.sampled_from(holder or sorted(OFFICERS)),
                                   st.sampled_from(sorted(OFFICERS))), label="sender")

    def _tag(self, data: st.DataObject) -> str:
        children = sorted(t for t in self.books if "." in t)
        return data.draw(st.one_of(st.sampled_from(children or sorted(self.books)),
                                   st.sampled_from(sorted(self.books))), label="from")

    def _amount(self, data: st.DataObject, balance: int) -> int:
        return data.draw(st.one_of(
            st.integers(1, max(1, balance)),
            st.integers(balance + 1, balance + 10**6),
            st.sampled_from([1, max(1, balance)])), label="amount")

    @rule(who=st.sampled_from(sorted(OFFICERS)), amount=st.integers(1, 10**12),
          reuse=st.booleans())
    def appropriate(self, who: str, amount: int, reuse: bool) -> None:
        if reuse and self.roots:
            tag = "T1"
        else:
            self.roots += 1
            tag = f"T{self.roots}"
        ok = self._appropriate(who, tag, amount)
        self._queue(who, APPROPRIATE_TX, appropriation(tag, amount), ok)

    @precondition(lambda self: bool(self.books))
    @rule(data=st.data())
    def allocate(self, data: st.DataObject) -> None:
        tag = self._tag(data)
        book = self.books[tag]
        who = self._sender(data, tag)
        org = data.draw(st.sampled_from(sorted(DEPARTMENTS)), label="to")
        amount = self._amount(data, book.balance)
        ok = self._allocate(who, tag, org, amount)
        self._queue(who, ALLOCATE_TX, {"from": tag, "to_org": org,
                                       "region": DEPARTMENTS[org], "amount": amount}, ok)

    @precondition(lambda self: bool(self.books))
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        tag = self._tag(data)
        who = self._sender(data, tag)
        amount = self._amount(data, self.books[tag].balance)
        ok = self._pay(who, tag, amount)
        self._queue(who, PAY_TX, payment(tag, amount), ok)

    @precondition(lambda self: bool(self.books))
    @rule(data=st.data())
    def return_money(self, data: st.DataObject) -> None:
        tag = self._tag(data)
        who = self._sender(data, tag)
        amount = self._amount(data, self.books[tag].balance)
        ok = self._return(who, tag, amount)
        self._queue(who, RETURN_TX, {"from": tag, "amount": amount}, ok)

    @rule()
    def commit(self) -> None:
        if not self.batch:
            return
        txs, expected = zip(*self.batch, strict=True)
        self.batch = []
        results = self.fc.block(list(txs))
        for result, ok in zip(results, expected, strict=True):
            assert result.ok == ok, (result.ok, ok, result.reason)
            if not ok:
                assert result.code == "rejected" and result.reason

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        totals: dict[str, int] = {}
        stored = 0
        for key, _ in self.fc.store.iter_state(FUND_PREFIX):
            stored += 1
            fund = get_fund(self.fc.chain.state_get, key[len(FUND_PREFIX):].decode())
            assert fund is not None
            balance = (fund.received - fund.allocated - fund.paid + fund.returned_in
                       - fund.returned_out)
            assert fund.balance == balance >= 0, fund
            assert fund.returned_out <= fund.received, fund
            totals[fund.root] = totals.get(fund.root, 0) + balance + fund.paid
            committed = self.books.get(fund.tag)
            if committed is not None and not self.batch:
                assert (committed.received, committed.allocated, committed.paid,
                        committed.returned_in, committed.returned_out, committed.holder) == (
                    fund.received, fund.allocated, fund.paid, fund.returned_in,
                    fund.returned_out, fund.holder), fund.tag
        for root, total in totals.items():
            assert total == self.appropriated[root], root
        if not self.batch:
            assert stored == len(self.books)


Conservation.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestFundConservation = Conservation.TestCase
TestFundConservation.__doc__ = (
    "Goal: conservation holds under any sequence of valid and invalid flows, and the "
    "handlers accept exactly the flows the model accepts. Method: hypothesis stateful "
    "testing against an in-process chain; invariants checked after every step.")
