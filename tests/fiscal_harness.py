"""An in-process chain with the fiscal app and a small budget hierarchy, for fiscal tests.

Organisations (all registered in genesis): a province finance department
(350000), a city one (350100), two districts (350102, 350104), an audit
office, and two enterprises. Each department has one finance officer key
(the audit office an auditor key); ``stranger`` is an unregistered key.
Blocks are proposed and certified in-process (ledger.devnet); block time
advances by ``step_ms`` per block unless given.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import date
from pathlib import Path

from fiscal import handlers, licences
from fiscal.model import DAY_MS
from ledger import evidence, governance, reads
from ledger.block import TxResult
from ledger.chain import Chain
from ledger.codec import Value
from ledger.devnet import Devnet, make_devnet
from ledger.execution import Registry
from ledger.genesis import Org
from ledger.ids import make_citizen_id, make_uscc
from ledger.store import LevelDBStore, MemoryStore, Store
from ledger.tx import Transaction, make_tx

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z = 2026-01-01 08:00 CST
PROVINCE = make_uscc("1", "1", "350000", "MB2F0001")
CITY = make_uscc("1", "1", "350100", "MB2F0002")
DISTRICT_A = make_uscc("1", "1", "350102", "MB2F0003")
DISTRICT_B = make_uscc("1", "1", "350104", "MB2F0004")
AUDIT = make_uscc("1", "1", "350100", "MB2F0005")
ENTERPRISE_1 = make_uscc("9", "1", "350100", "MA2Y0101")
ENTERPRISE_2 = make_uscc("9", "1", "350100", "MA2Y0102")
CITIZEN_ID = make_citizen_id("350102", date(1990, 3, 7), "001")
CONSORTIUM_KEY = bytes(range(32))

ORGS = [
    Org("福建省财政厅", PROVINCE, "department", "350000"),
    Org("福州市财政局", CITY, "department", "350100"),
    Org("福州市鼓楼区财政局", DISTRICT_A, "department", "350102"),
    Org("福州市仓山区财政局", DISTRICT_B, "department", "350104"),
    Org("福州市审计局", AUDIT, "department", "350100"),
    Org("福州示例科技有限公司", ENTERPRISE_1, "enterprise", "350100"),
    Org("福州闽江示例建设工程有限公司", ENTERPRISE_2, "enterprise", "350100"),
]
ACCOUNTS = [
    ("province", PROVINCE, ["finance"]),
    ("city", CITY, ["finance"]),
    ("district_a", DISTRICT_A, ["finance"]),
    ("district_b", DISTRICT_B, ["finance"]),
    ("auditor", AUDIT, ["auditor"]),
    ("enterprise", ENTERPRISE_1, ["enterprise"]),
    ("city_committee", CITY, ["committee"]),
]
_NETS: dict[str, Devnet] = {}


def fiscal_registry() -> Registry:
    registry = Registry()
    evidence.register(registry)
    governance.register(registry)
    reads.register(registry)
    handlers.register(registry)
    return registry


def devnet(suite: str = "sm") -> Devnet:
    """One genesis per suite for the session (key generation is the slow part)."""
    if suite not in _NETS:
        net = make_devnet(suite, 4, accounts=ACCOUNTS, time_ms=T0)
        genesis = dataclasses.replace(net.genesis, orgs=list(ORGS))
        genesis.validate()
        net = Devnet(genesis, net.validator_keys, net.account_keys)
        net.account_keys["stranger"] = genesis.crypto.generate_key()
        _NETS[suite] = net
    return _NETS[suite]


class FiscalChain:
    """A chain plus helpers to sign, execute and certify blocks of fiscal transactions."""

    def __init__(self, suite: str = "sm", store_dir: Path | None = None,
                 step_ms: int = 60_000) -> None:
        self.net = devnet(suite)
        self.suite = self.net.genesis.crypto
        store: Store = (LevelDBStore(str(store_dir), self.suite) if store_dir
                        else MemoryStore(self.suite))
        self.store = store
        self.chain: Chain = self.net.open_chain(fiscal_registry(), store)
        self.time_ms = T0
        self.step_ms = step_ms
        self._nonce = itertools.count(1)

    def close(self) -> None:
        self.store.close()

    def key(self, who: str) -> bytes:
        return self.net.account_keys[who].public_key().raw

    def tx(self, who: str, tx_type: str, payload: dict[str, Value]) -> Transaction:
        return make_tx(self.net.account_keys[who], self.net.genesis.chain_id, tx_type, payload,
                       next(self._nonce), self.time_ms + 30 * DAY_MS + 10**9)

    def block(self, txs: list[Transaction], at_ms: int | None = None) -> list[TxResult]:
        self.time_ms = at_ms if at_ms is not None else self.time_ms + self.step_ms
        pending = self.chain.propose(txs, self.time_ms, 0,
                                     self.net.validator_keys[0].public_key().raw)
        self.net.commit(self.chain, pending)
        return pending.execution.results

    def do(self, who: str, tx_type: str, payload: dict[str, Value],
           at_ms: int | None = None) -> TxResult:
        (result,) = self.block([self.tx(who, tx_type, payload)], at_ms)
        return result

    def ok(self, who: str, tx_type: str, payload: dict[str, Value],
           at_ms: int | None = None) -> dict[str, Value]:
        result = self.do(who, tx_type, payload, at_ms)
        assert result.ok, result.reason
        return result.data

    def advance_days(self, days: int) -> None:
        self.time_ms += days * DAY_MS


def appropriation(tag: str = "FJ2026-ZD-0001", amount: int = 100_000_000,
                  **extra: Value) -> dict[str, Value]:
    """A valid appropriation payload (¥1,000,000 by default)."""
    payload: dict[str, Value] = {
        "tag": tag, "amount": amount, "year": 2026, "doc_no": "闽财预〔2026〕15号",
        "function_code": "2050202", "project": "义务教育薄弱环节改善", "project_end": "2026-12-31"}
    payload.update(extra)
    return payload


def payment(tag: str, amount: int, payee_uscc: str = ENTERPRISE_1, **extra: Value
            ) -> dict[str, Value]:
    payload: dict[str, Value] = {
        "from": tag, "amount": amount, "purpose": "校舍改造工程款", "function_code": "2050202",
        "value_date": "2026-01-01", "payee_uscc": payee_uscc}
    payload.update(extra)
    return payload


def fixed_licences(table: dict[str, str]) -> licences.LicenceLookup:
    """A licence lookup answering from ``table`` (USCC → status), MISSING otherwise."""
    def lookup(state_get: Callable[[bytes], bytes | None], uscc: str, on_date: str) -> str:
        return table.get(uscc, licences.MISSING)
    return lookup


def decide(fc: FiscalChain, kind: str, params: dict[str, Value]) -> None:
    """A committee decision; the harness committee has one member, so proposing passes it."""
    data = fc.ok("city_committee", governance.PROPOSE_TX, {"kind": kind, "params": params})
    assert data["status"] == "passed", data


def tree(fc: FiscalChain, tag: str = "FJ2026-ZD-0001", **extra: Value) -> dict[str, str]:
    """Province appropriates ¥1,000,000; allocates ¥600,000 to the city; the city allocates
    ¥300,000 to district A and ¥200,000 to district B. Returns the tags by holder."""
    from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX

    fc.ok("province", APPROPRIATE_TX, appropriation(tag, **extra))
    city = str(fc.ok("province", ALLOCATE_TX, {"from": tag, "to_org": CITY,
                                               "region": "350100000",
                                               "amount": 60_000_000})["child_tag"])
    a = str(fc.ok("city", ALLOCATE_TX, {"from": city, "to_org": DISTRICT_A,
                                        "region": "350102000", "amount": 30_000_000})["child_tag"])
    b = str(fc.ok("city", ALLOCATE_TX, {"from": city, "to_org": DISTRICT_B,
                                        "region": "350104000", "amount": 20_000_000})["child_tag"])
    return {"province": tag, "city": city, "district_a": a, "district_b": b}
