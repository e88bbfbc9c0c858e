"""Red-flag rules: evaluated during block execution, alerts stored in the authenticated state.

Theory of operation
-------------------
Rules run inside execution, so every node raises exactly the same alerts at
the same height and an alert is as provable as a balance. Flow rules run in
the handler of the flow they look at, after the flow has been applied; the
idle-balance rule runs in a begin-block hook. Each rule reads only the state
(never the index, which a node that caught up by state transfer may lack) and
its thresholds from ``sys/config``, which only a committee decision changes
(``set_config``; the names are registered with governance here), plus the
list of prohibited function codes, changed by the committee with the
``set_fiscal_prohibited_codes`` proposal kind.

Rules (``rule`` names as stored and as filtered by ``audit alerts --rule``):

``split_payment``
    the same payer organisation pays the same payee several amounts, each below
    ``fiscal_split_threshold_fen`` (T), whose value dates lie less than
    ``fiscal_split_window_days`` (N) apart from the newest and which together
    reach T. Each further small payment in such a window raises another alert.
``licence``
    the payee enterprise's business licence (营业执照) is REVOKED, SUSPENDED,
    EXPIRED or MISSING on the value date (:mod:`fiscal.licences`). Only USCCs
    of registration authority 9 (market regulation: enterprises) are checked;
    departments and institutions hold no business licence.
``circular_flow``
    an allocation or a payment goes to an organisation that holds the paying
    fund or one of its ancestors: money flowing back up outside a RETURN.
``idle_balance``
    a fund holds a positive balance and has seen no flow for
    ``fiscal_idle_days`` days (by block dates). Raised once per idle period: the
    next flow of the fund starts a new one.
``payment_date``
    the value date is after the project end date, after the block's date
    (dated in the future), or before the appropriation was approved.
``prohibited_function``
    a direct fund (直达资金) pays under a function code matching one of the
    prohibited patterns (digits, ``x`` for any digit, prefix match).

Alert state (``<inv>`` = ``2**64 - 1 - id``, 8 bytes big-endian, so a forward
scan returns the newest first):

- ``fiscal/alert/<inv>``  ``{"id", "rule", "height", "time", "why", "flows",
  "funds", "orgs", "payee", "details"}``
- ``fiscal/alert-rule/<rule>\\0<inv>`` and ``fiscal/alert-org/<USCC>\\0<inv>``: the id
- ``fiscal/alert-next``: the next id

Idle bookkeeping, bounded by design: every flow files the funds it touches
under the CST day of its block (``fiscal/idle/<day>`` count and
``fiscal/idle/<day>/<chunk>`` lists of at most 64 tags, a fund filed once a
day); ``fiscal/idle/days`` lists the filed days not yet checked. The hook
checks the oldest day once it is ``fiscal_idle_days`` old — a fund still
last moved that day with a positive balance is idle — and deletes the
day's lists, at most :data:`IDLE_CHECKS_PER_BLOCK` funds per block.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field, replace

from fiscal import licences
from fiscal.model import (
    Fund,
    ancestors,
    block_day,
    date_of_day,
    day_of,
    get_fund,
    money,
    pair_key,
)
from ledger.codec import Value, decode_value, encode_value
from ledger.errors import CorruptionError, TxRejected
from ledger.execution import ExecContext, ProposalKind, StateGet, StateView
from ledger.governance import CONFIG_KEY

SPLIT_THRESHOLD = "fiscal_split_threshold_fen"
SPLIT_WINDOW = "fiscal_split_window_days"
IDLE_DAYS = "fiscal_idle_days"
CONFIG_DEFAULTS: dict[str, int] = {
    SPLIT_THRESHOLD: 10_000_000,  # ¥100,000
    SPLIT_WINDOW: 30,
    IDLE_DAYS: 90,
}
# Default prohibited uses of direct funds: administrative running costs (行政运行) of general
# public services and of every 管理事务 款, and debt principal and interest (231, 232).
DEFAULT_PROHIBITED = ["201xx01", "2xx0101", "231", "232"]
PROHIBITED_KEY = b"fiscal/prohibited"
PROHIBITED_MAX = 64

RULES = ("split_payment", "licence", "circular_flow", "idle_balance", "payment_date",
         "prohibited_function")
# How urgently an auditor should look: money to an unlicensed payee, money going round in a
# circle and direct funds under a prohibited code are "high"; split payments and dates that
# do not fit the project are "medium"; money lying idle is "low".
SEVERITY = {"licence": "high", "circular_flow": "high", "prohibited_function": "high",
            "split_payment": "medium", "payment_date": "medium", "idle_balance": "low"}
ALERT_PREFIX = b"fiscal/alert/"
ALERT_RULE_PREFIX = b"fiscal/alert-rule/"
ALERT_ORG_PREFIX = b"fiscal/alert-org/"
ALERT_NEXT_KEY = b"fiscal/alert-next"
IDLE_DAYS_KEY = b"fiscal/idle/days"
IDLE_POS_KEY = b"fiscal/idle/pos"
IDLE_PREFIX = b"fiscal/idle/"
IDLE_CHUNK = 64
IDLE_CHECKS_PER_BLOCK = 512
PAIR_ENTRIES_MAX = 64
INV = 2**64 - 1


@dataclass(frozen=True)
class Alert:
    rule: str
    why: str
    flows: list[bytes]
    funds: list[str]
    orgs: list[str]
    payee: str | None = None
    details: dict[str, Value] = field(default_factory=dict)


# -- configuration ----------------------------------------------------------------------------


def thresholds(state_get: StateGet) -> dict[str, int]:
    """The rules' thresholds: on-chain ``sys/config`` over :data:`CONFIG_DEFAULTS`."""
    raw = state_get(CONFIG_KEY)
    config = decode_value(raw) if raw is not None else {}
    out = dict(CONFIG_DEFAULTS)
    if isinstance(config, dict):
        for name in CONFIG_DEFAULTS:
            value = config.get(name)
            if type(value) is int and value > 0:
                out[name] = value
    return out


def prohibited_patterns(state_get: StateGet) -> list[str]:
    raw = state_get(PROHIBITED_KEY)
    if raw is None:
        return list(DEFAULT_PROHIBITED)
    value = decode_value(raw)
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise CorruptionError("fiscal/prohibited is unreadable")
    return [p for p in value if isinstance(p, str)]


def code_matches(code: str, pattern: str) -> bool:
    return len(code) >= len(pattern) and all(p in ("x", c) for p, c in zip(pattern, code,
                                                                           strict=False))


def _check_prohibited(state_get: StateGet, params: dict[str, Value]) -> dict[str, Value]:
    patterns = params.get("patterns")
    if not isinstance(patterns, list) or len(patterns) > PROHIBITED_MAX:
        raise TxRejected(f"params.patterns must be a list of at most {PROHIBITED_MAX} patterns")
    out: list[str] = []
    for p in patterns:
        if (not isinstance(p, str) or not 1 <= len(p) <= 7 or p[0] != "2"
                or any(c not in "0123456789x" for c in p)):
            raise TxRejected(f"pattern {p!r} must be 1-7 characters of digits or 'x', "
                             "starting with 2 (e.g. 2xx0101)")
        out.append(p)
    return {"patterns": sorted(set(out))}  # type: ignore[dict-item]


def _apply_prohibited(ctx: ExecContext, params: dict[str, Value]) -> None:
    ctx.state.put(PROHIBITED_KEY, encode_value(params["patterns"]))


PROHIBITED_KIND = ProposalKind(
    "set_fiscal_prohibited_codes",
    "function-code patterns direct funds may not be paid under (patterns: ['2xx0101', …])",
    _check_prohibited, _apply_prohibited)


# -- alerts ------------------------------------------------------------------------------------


def inv_bytes(alert_id: int) -> bytes:
    return struct.pack(">Q", INV - alert_id)


def raise_alert(state: StateView, height: int, time_ms: int, alert: Alert) -> int:
    """Store ``alert``; returns its id."""
    assert alert.rule in RULES
    raw = state.get(ALERT_NEXT_KEY)
    alert_id = decode_value(raw) if raw is not None else 1
    assert isinstance(alert_id, int)
    state.put(ALERT_NEXT_KEY, encode_value(alert_id + 1))
    record: dict[str, Value] = {
        "id": alert_id, "rule": alert.rule, "height": height, "time": time_ms,
        "why": alert.why, "flows": list[Value](alert.flows),
        "funds": list[Value](alert.funds), "orgs": list[Value](sorted(set(alert.orgs))),
        "payee": alert.payee, "details": alert.details,
    }
    inv = inv_bytes(alert_id)
    state.put(ALERT_PREFIX + inv, encode_value(record))
    state.put(ALERT_RULE_PREFIX + alert.rule.encode() + b"\0" + inv, encode_value(alert_id))
    for org in sorted(set(alert.orgs)):
        state.put(ALERT_ORG_PREFIX + org.encode() + b"\0" + inv, encode_value(alert_id))
    return alert_id


# -- flow rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFacts:
    """What the payment rules look at (the payment is already applied to ``fund``)."""

    flow_id: bytes
    fund: Fund
    payer: str  # USCC of the paying organisation
    payee: str  # payee key (U<USCC> or H<hmac hex>)
    payee_uscc: str | None
    payee_label: str
    amount: int
    value_date: str
    function_code: str
    block_time: int


def check_payment(state: StateView, facts: PaymentFacts,
                  lookup: licences.LicenceLookup | None = None) -> list[Alert]:
    """Every flow rule for one payment; also updates the split-payment window."""
    alerts: list[Alert] = []
    alerts += _split(state, facts)
    alerts += _licence(state.get, facts, lookup)
    alerts += _circular_payment(state.get, facts)
    alerts += _payment_date(facts)
    alerts += _prohibited(state.get, facts)
    return alerts


def _pair_entries(state_get: StateGet, key: bytes) -> list[tuple[int, int, bytes]]:
    raw = state_get(key)
    value = decode_value(raw) if raw is not None else []
    out: list[tuple[int, int, bytes]] = []
    for entry in value if isinstance(value, list) else []:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise CorruptionError(f"{key!r} is unreadable")
        day, amount, flow = entry
        if not (isinstance(day, int) and isinstance(amount, int) and isinstance(flow, bytes)):
            raise CorruptionError(f"{key!r} is unreadable")
        out.append((day, amount, flow))
    return out


def _split(state: StateView, f: PaymentFacts) -> list[Alert]:
    limits = thresholds(state.get)
    threshold, window = limits[SPLIT_THRESHOLD], limits[SPLIT_WINDOW]
    if f.amount >= threshold:
        return []
    key = pair_key(f.payer, f.payee)
    day = day_of(f.value_date)
    entries = [*_pair_entries(state.get, key), (day, f.amount, f.flow_id)]
    newest = max(e[0] for e in entries)
    kept = [e for e in entries if e[0] > newest - 2 * window][-PAIR_ENTRIES_MAX:]
    state.put(key, encode_value([[d, a, x] for d, a, x in kept]))
    near = [e for e in kept if abs(e[0] - day) < window]
    total = sum(e[1] for e in near)
    if len(near) < 2 or total < threshold:
        return []
    return [Alert(
        "split_payment",
        f"{len(near)} payments from {f.fund.holder_name} ({f.payer}) to {f.payee_label}, "
        f"each below the threshold "
        f"{money(threshold)}, with value dates within {window} days, total {money(total)}",
        flows=[e[2] for e in near], funds=[f.fund.tag],
        orgs=[f.payer] + ([f.payee_uscc] if f.payee_uscc else []), payee=f.payee,
        details={"threshold_fen": threshold, "window_days": window, "total_fen": total,
                 "count": len(near)})]


def _licence(state_get: StateGet, f: PaymentFacts,
             lookup: licences.LicenceLookup | None) -> list[Alert]:
    if f.payee_uscc is None or not f.payee_uscc.startswith("9"):
        return []
    status = licences.licence_status(state_get, f.payee_uscc, f.value_date, lookup)
    if status is None or status == licences.VALID:
        return []
    return [Alert(
        "licence",
        f"payee {f.payee_label}'s business licence is {status} on the value date "
        f"{f.value_date}",
        flows=[f.flow_id], funds=[f.fund.tag], orgs=[f.payer, f.payee_uscc], payee=f.payee,
        details={"status": status, "value_date": f.value_date})]


def _circular_payment(state_get: StateGet, f: PaymentFacts) -> list[Alert]:
    if f.payee_uscc is None:
        return []
    path = ancestors(state_get, f.fund)
    hit = next((a for a in path if a.holder == f.payee_uscc), None)
    if hit is None:
        return []
    return [Alert(
        "circular_flow",
        f"payment from fund {f.fund.tag} to {f.payee_label}, which holds fund {hit.tag} "
        f"{'(the paying fund itself)' if hit is f.fund else 'above it'}: money flowing back "
        "up outside a return",
        flows=[f.flow_id], funds=[a.tag for a in path], orgs=[f.payer, f.payee_uscc],
        payee=f.payee, details={"ancestor": hit.tag})]


def circular_allocation(state_get: StateGet, source: Fund, to_org: str, flow_id: bytes
                        ) -> list[Alert]:
    path = ancestors(state_get, source)
    hit = next((a for a in path if a.holder == to_org), None)
    if hit is None:
        return []
    return [Alert(
        "circular_flow",
        f"allocation from fund {source.tag} to {hit.holder_name} ({to_org}), which holds "
        f"fund {hit.tag} "
        f"{'(the allocating fund itself)' if hit is source else 'above it'}: money flowing "
        "back up outside a return",
        flows=[flow_id], funds=[a.tag for a in path], orgs=[source.holder, to_org],
        details={"ancestor": hit.tag})]


def _payment_date(f: PaymentFacts) -> list[Alert]:
    day, today = day_of(f.value_date), block_day(f.block_time)
    problems: list[tuple[str, str]] = []
    if day > day_of(f.fund.project_end):
        problems.append(("after_project_end",
                         f"value date {f.value_date} is after the project end date "
                         f"{f.fund.project_end}"))
    if day > today:
        problems.append(("future", f"value date {f.value_date} is after the block's date "
                                   f"{date_of_day(today)} (dated in the future)"))
    if day < f.fund.approved_day:
        problems.append(("before_approval",
                         f"value date {f.value_date} is before the appropriation was approved "
                         f"on {date_of_day(f.fund.approved_day)}"))
    return [Alert("payment_date", f"payment of {money(f.amount)} from fund {f.fund.tag}: {why}",
                  flows=[f.flow_id], funds=[f.fund.tag], orgs=[f.payer], payee=f.payee,
                  details={"kind": kind, "value_date": f.value_date,
                           "project_end": f.fund.project_end})
            for kind, why in problems]


def _prohibited(state_get: StateGet, f: PaymentFacts) -> list[Alert]:
    if not f.fund.direct:
        return []
    pattern = next((p for p in prohibited_patterns(state_get)
                    if code_matches(f.function_code, p)), None)
    if pattern is None:
        return []
    return [Alert(
        "prohibited_function",
        f"direct fund {f.fund.tag} paid {money(f.amount)} under function code "
        f"{f.function_code}, which matches the prohibited pattern {pattern}",
        flows=[f.flow_id], funds=[f.fund.tag], orgs=[f.payer], payee=f.payee,
        details={"function_code": f.function_code, "pattern": pattern})]


# -- idle balances -------------------------------------------------------------------------


def _day_key(day: int) -> bytes:
    return IDLE_PREFIX + struct.pack(">I", day)


def _chunk_key(day: int, chunk: int) -> bytes:
    return _day_key(day) + b"/" + struct.pack(">I", chunk)


def _int_list(state_get: StateGet, key: bytes) -> list[int]:
    raw = state_get(key)
    value = decode_value(raw) if raw is not None else []
    if not isinstance(value, list):
        raise CorruptionError(f"{key!r} is unreadable")
    return [v for v in value if isinstance(v, int)]


def file_movement(state: StateView, fund: Fund, day: int) -> Fund:
    """Record that ``fund`` moved on ``day`` (for the idle rule); returns the updated fund.

    The caller writes the returned fund.
    """
    if fund.last_move_day == day:
        return fund
    raw = state.get(_day_key(day))
    count = decode_value(raw) if raw is not None else 0
    assert isinstance(count, int)
    if count == 0:
        days = _int_list(state.get, IDLE_DAYS_KEY)
        if day not in days:
            bisect.insort(days, day)
            state.put(IDLE_DAYS_KEY, encode_value(days))  # type: ignore[arg-type]
    chunk_key = _chunk_key(day, count // IDLE_CHUNK)
    raw_chunk = state.get(chunk_key)
    tags = decode_value(raw_chunk) if raw_chunk is not None else []
    assert isinstance(tags, list)
    tags.append(fund.tag)
    state.put(chunk_key, encode_value(tags))
    state.put(_day_key(day), encode_value(count + 1))
    return replace(fund, last_move_day=day)


def idle_hook(state: StateView, height: int, time_ms: int) -> None:
    """Begin-block hook: raise ``idle_balance`` alerts for days now old enough."""
    days = _int_list(state.get, IDLE_DAYS_KEY)
    if not days:
        return
    idle_days = thresholds(state.get)[IDLE_DAYS]
    today = block_day(time_ms)
    budget = IDLE_CHECKS_PER_BLOCK
    raw_pos = state.get(IDLE_POS_KEY)
    pos = decode_value(raw_pos) if raw_pos is not None else 0
    assert isinstance(pos, int)
    start_pos, changed = pos, False
    while days and days[0] + idle_days <= today and budget > 0:
        day = days[0]
        raw = state.get(_day_key(day))
        count = decode_value(raw) if raw is not None else 0
        assert isinstance(count, int)
        while pos < count and budget > 0:
            chunk = pos // IDLE_CHUNK
            tags = decode_value(state.get(_chunk_key(day, chunk)) or encode_value([]))
            assert isinstance(tags, list)
            tag = tags[pos % IDLE_CHUNK]
            assert isinstance(tag, str)
            _check_idle(state, height, time_ms, tag, day, idle_days)
            pos += 1
            budget -= 1
        if pos < count:
            break
        for chunk in range((count + IDLE_CHUNK - 1) // IDLE_CHUNK):
            state.delete(_chunk_key(day, chunk))
        state.delete(_day_key(day))
        days.pop(0)
        pos = 0
        changed = True
    if pos != start_pos:
        state.put(IDLE_POS_KEY, encode_value(pos))
    if changed:
        state.put(IDLE_DAYS_KEY, encode_value(days))  # type: ignore[arg-type]


def _check_idle(state: StateView, height: int, time_ms: int, tag: str, day: int,
                idle_days: int) -> None:
    fund = get_fund(state.get, tag)
    if fund is None or fund.last_move_day != day or fund.balance <= 0:
        return
    idle_for = block_day(time_ms) - day
    raise_alert(state, height, time_ms, Alert(
        "idle_balance",
        f"fund {tag} held by {fund.holder_name or fund.holder} has kept {money(fund.balance)} "
        f"without any flow since {date_of_day(day)} ({idle_for} days; threshold "
        f"{idle_days} days)",
        flows=[], funds=[tag], orgs=[fund.holder],
        details={"since": date_of_day(day), "idle_days": idle_for, "balance_fen": fund.balance,
                 "threshold_days": idle_days}))
