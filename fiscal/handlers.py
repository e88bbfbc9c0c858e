"""The four flow transactions: checks, conservation, state and index writes, rules.

Theory of operation
-------------------
Each handler validates its payload field by field, then checks who sends it:
only an unrevoked account with the ``finance`` role may move money, and only
out of a fund its own organisation holds (appropriations create a fund held
by the sender's organisation). Then conservation: an allocation or payment
never exceeds the fund's balance, a return never exceeds the balance nor
what the fund received from its parent. Any failure raises
:class:`~ledger.errors.TxRejected` whose reason states the balance and the
amount asked; execution discards every write of a rejected transaction, so
there are never partial writes. On success the handler updates the fund
records (state), files the movement for the idle rule, runs the flow rules
(:mod:`fiscal.rules`, whose alerts are state too), and writes the flow into
the index (:mod:`fiscal.model` lists the keys).

Admission runs :func:`precheck` first, against the latest committed state,
so an officer of the wrong organisation, a sender without the finance role,
or a payload with a clear personal identifier is refused with a 403 before
it reaches a block — important for the last, since every transaction in a
block stays in every node's store for good. Execution re-checks everything.

The flow id is the transaction id: ``GET /v1/tx/<flow id>`` gives its block
and inclusion proof. A payment's ``payment_id`` is its flow id.

Any flow may name the accounting voucher (``voucher``, 凭证号) the sending
organisation booked it under. A voucher is recorded once per organisation: a
second flow naming it is refused (code ``voucher_recorded``, the reason naming
the flow that holds it) before any balance is looked at, so re-sending the same
book — a bulk import run again after a lost connection — cannot move money
twice. Admission refuses it early too.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from fiscal import payloads, rules
from fiscal.model import (
    ALLOCATE_TX,
    APPROPRIATE_TX,
    DEPTH_MAX,
    IX_FLOW,
    IX_ROOT,
    IX_TOTAL_FN,
    IX_TOTAL_REGION,
    KINDS,
    PAY_TX,
    RETURN_TX,
    SEQ_KEY,
    Fund,
    amount_field,
    block_day,
    check_fields,
    child_key,
    child_tag,
    date_field,
    digest_field,
    encode_fund,
    function_code_field,
    fund_key,
    get_fund,
    in_prefix,
    money,
    out_prefix,
    payee_key_for_hash,
    payee_key_for_uscc,
    payee_prefix,
    region_field,
    seq_bytes,
    tag_field,
    text_field,
    uscc_field,
    voucher_field,
    voucher_key,
)
from fiscal.payee import (
    BOX_BYTES_MAX,
    MASKED_ID_RE,
    SEALED_MAX,
    identifier_problem,
    is_masked_name,
)
from ledger import acl, governance
from ledger.acl import AccountRecord
from ledger.codec import Value, decode_value, encode_value
from ledger.errors import TxRejected
from ledger.execution import ExecContext, Registry, StateGet
from ledger.tx import Transaction

EXEMPT_FROM_SCAN = frozenset({"payee_uscc", "to_org"})


def register(registry: Registry) -> None:
    handlers = {APPROPRIATE_TX: appropriate, ALLOCATE_TX: allocate, PAY_TX: pay,
                RETURN_TX: return_funds}
    for tx_type, handler in handlers.items():
        registry.register(tx_type, handler, precheck=precheck, private=True,
                          payload_check=functools.partial(payloads.payload_problem, tx_type))
    registry.on_begin_block(rules.idle_hook)
    registry.register_kind(rules.PROHIBITED_KIND)
    for name in rules.CONFIG_DEFAULTS:
        governance.register_config_key(name)


# -- admission ------------------------------------------------------------------------------


def precheck(state_get: StateGet, tx: Transaction) -> str | None:
    """Admission's early refusal (HTTP 403) of a fiscal transaction, or None."""
    problem = identifier_problem(tx.payload, exempt=EXEMPT_FROM_SCAN)
    if problem:
        return problem
    name = tx.payload.get("payee_name")
    if "payee_hash" in tx.payload and isinstance(name, str) and not is_masked_name(name):
        return "payload.payee_name of a person must be masked (e.g. 张**)"
    problem = acl.role_problem(state_get, tx.sender, "finance")
    if problem:
        return problem
    account = acl.active_account(state_get, tx.sender)
    assert account is not None
    if not account.org:
        return f"sender ({account.name}) belongs to no organisation"
    voucher = tx.payload.get("voucher")
    if isinstance(voucher, str) and (held := _voucher_held(state_get, account.org, voucher)):
        return held
    tag = tx.payload.get("from")
    if tx.type != APPROPRIATE_TX and isinstance(tag, str):
        fund = get_fund(state_get, tag)
        if fund is not None and fund.holder != account.org:
            return _not_holder(fund, account)
    return None


def _not_holder(fund: Fund, account: AccountRecord) -> str:
    return (f"fund {fund.tag} is held by {fund.holder_name or fund.holder} ({fund.holder}); "
            f"only its finance officers may move it, not {account.name} ({account.org})")


class VoucherRecorded(TxRejected):
    """The flow names a voucher its organisation has recorded already."""

    code = "voucher_recorded"


def _voucher_held(state_get: StateGet, org: str, voucher: str) -> str | None:
    """Why ``voucher`` of ``org`` cannot book another flow, or None if it is free."""
    flow_id = state_get(voucher_key(org, voucher))
    if flow_id is None:
        return None
    return f"voucher {voucher} of {org} is already recorded, by flow {flow_id.hex()}"


# -- shared steps ----------------------------------------------------------------------------


def _claim_voucher(ctx: ExecContext, account: AccountRecord) -> dict[str, Value]:
    """Record the flow's voucher for the sender's organisation ({} if it names none), or
    VoucherRecorded. Runs before the balance checks: a flow booked already is reported as
    such, not as short of money because its first recording spent it."""
    voucher = voucher_field(ctx.tx.payload)
    if voucher is None:
        return {}
    held = _voucher_held(ctx.state.get, account.org, voucher)
    if held:
        raise VoucherRecorded(held)
    ctx.state.put(voucher_key(account.org, voucher), ctx.tx_id)
    return {"voucher": voucher}


def _officer(ctx: ExecContext) -> AccountRecord:
    problem = identifier_problem(ctx.tx.payload, exempt=EXEMPT_FROM_SCAN)
    if problem:
        raise TxRejected(problem)
    problem = acl.role_problem(ctx.state.get, ctx.sender, "finance", ctx.height)
    if problem:
        raise TxRejected(problem)
    account = acl.active_account(ctx.state.get, ctx.sender, ctx.height)
    assert account is not None
    if not account.org:
        raise TxRejected(f"sender ({account.name}) belongs to no organisation")
    return account


def _movable(ctx: ExecContext, account: AccountRecord) -> Fund:
    tag = tag_field(ctx.tx.payload, "from")
    fund = get_fund(ctx.state.get, tag)
    if fund is None:
        raise TxRejected(f"no fund with tag {tag}")
    if fund.holder != account.org:
        raise TxRejected(_not_holder(fund, account))
    return fund


def _need_balance(fund: Fund, amount: int, what: str) -> None:
    if amount > fund.balance:
        raise TxRejected(f"insufficient balance: fund {fund.tag} has {money(fund.balance)} "
                         f"available; {what} of {money(amount)} asked")


def _next_seq(ctx: ExecContext) -> int:
    raw = ctx.state.get(SEQ_KEY)
    seq = decode_value(raw) if raw is not None else 1
    assert isinstance(seq, int)
    ctx.state.put(SEQ_KEY, encode_value(seq + 1))
    return seq


def _moved(ctx: ExecContext, fund: Fund) -> Fund:
    return rules.file_movement(ctx.state, fund, block_day(ctx.time_ms))


def _save(ctx: ExecContext, *funds: Fund) -> None:
    for fund in funds:
        ctx.state.put(fund_key(fund.tag), encode_fund(fund))


def _flow(ctx: ExecContext, seq: int, account: AccountRecord, amount: int,
          source: str | None, target: str | None, **extra: Value) -> dict[str, Value]:
    return {"flow_id": ctx.tx_id, "seq": seq, "kind": KINDS[ctx.tx.type], "amount": amount,
            "from": source, "to": target, "org": account.org, "officer": account.name,
            "sender": ctx.sender, "height": ctx.height, "time": ctx.time_ms,
            "memo": str(ctx.tx.payload.get("memo", "")), **extra}


def _index(ctx: ExecContext, flow: dict[str, Value], out_of: str | None, into: str | None,
           public: dict[str, Value] | None = None) -> None:
    """The flow under its id, and (``public``: without sealed data) under the funds'
    prefixes — the record itself, so that a trail reads a fund's flows in one range scan
    instead of a random read per flow. (Stores written before keep the flow's id under
    ``in/``; :func:`fiscal.queries.flows_into` reads both.)"""
    seq = flow["seq"]
    assert isinstance(seq, int)
    encoded = encode_value(flow)
    ctx.index.put(IX_FLOW + ctx.tx_id, encoded)
    listed = encoded if public is None else encode_value(public)
    if out_of is not None:
        ctx.index.put(out_prefix(out_of) + seq_bytes(seq), listed)
    if into is not None:
        ctx.index.put(in_prefix(into) + seq_bytes(seq), listed)


def _add_total(ctx: ExecContext, key: bytes, amount: int) -> None:
    raw = ctx.index.get(key)
    total = decode_value(raw) if raw is not None else {"count": 0, "amount": 0}
    assert isinstance(total, dict)
    count, value = total["count"], total["amount"]
    assert isinstance(count, int) and isinstance(value, int)
    ctx.index.put(key, encode_value({"count": count + 1, "amount": value + amount}))


def _raise(ctx: ExecContext, alerts: list[rules.Alert]) -> list[Value]:
    return [rules.raise_alert(ctx.state, ctx.height, ctx.time_ms, a) for a in alerts]


# -- APPROPRIATION --------------------------------------------------------------------------


def appropriate(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    check_fields(payload, {"tag", "amount", "year", "doc_no", "function_code", "project",
                           "project_end"}, {"direct", "region", "memo", "voucher"})
    account = _officer(ctx)
    booked = _claim_voucher(ctx, account)
    tag = tag_field(payload, "tag", root=True)
    amount = amount_field(payload)
    year = payload["year"]
    if type(year) is not int or not 2000 <= year <= 2100:
        raise TxRejected("payload.year must be a fiscal year between 2000 and 2100")
    doc_no = text_field(payload, "doc_no", 64)
    function_code = function_code_field(payload)
    project = text_field(payload, "project")
    project_end = date_field(payload, "project_end")
    direct = payload.get("direct", False)
    if not isinstance(direct, bool):
        raise TxRejected("payload.direct must be true or false")
    text_field(payload, "memo", required=False)
    org = acl.get_org(ctx.state.get, account.org)
    if "region" in payload:
        region = region_field(payload)
    elif org is not None:
        region = org.region + "000"
    else:
        raise TxRejected("payload.region is needed: the sender's organisation is not registered")
    existing = get_fund(ctx.state.get, tag)
    if existing is not None:
        raise TxRejected(f"fund tag {tag} already exists (created at height "
                         f"{existing.created_height})")
    today = block_day(ctx.time_ms)
    fund = Fund(tag=tag, root=tag, parent=None, depth=0, holder=account.org,
                holder_name=org.name if org else account.name, region=region, year=year,
                doc_no=doc_no, function_code=function_code, project=project,
                project_end=project_end, direct=direct, approved_day=today, received=amount,
                allocated=0, paid=0, returned_in=0, returned_out=0, children=0,
                created_height=ctx.height, created_time=ctx.time_ms, last_move_day=-1)
    fund = _moved(ctx, fund)
    _save(ctx, fund)
    seq = _next_seq(ctx)
    flow = _flow(ctx, seq, account, amount, None, tag, doc_no=doc_no, year=year,
                 function_code=function_code, project=project, region=region, **booked)
    _index(ctx, flow, None, tag)
    ctx.index.put(IX_ROOT + seq_bytes(seq), tag.encode())
    ctx.data = {"flow_id": ctx.tx_id, "tag": tag, "balance": fund.balance}


# -- ALLOCATION --------------------------------------------------------------------------------


def allocate(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    check_fields(payload, {"from", "to_org", "region", "amount"}, {"memo", "voucher"})
    account = _officer(ctx)
    booked = _claim_voucher(ctx, account)
    amount = amount_field(payload)
    to_org = uscc_field(payload, "to_org")
    region = region_field(payload)
    text_field(payload, "memo", required=False)
    source = _movable(ctx, account)
    target_org = acl.get_org(ctx.state.get, to_org)
    if target_org is None or target_org.kind != "department":
        raise TxRejected(f"{to_org} is not a department registered on the ledger; the "
                         "committee registers sub-units with register_org")
    if source.depth + 1 > DEPTH_MAX:
        raise TxRejected(f"fund {source.tag} is {source.depth} levels deep; at most "
                         f"{DEPTH_MAX} levels are allowed")
    _need_balance(source, amount, "allocation")
    raw_child = ctx.state.get(child_key(source.tag, to_org))
    if raw_child is not None:
        child = get_fund(ctx.state.get, raw_child.decode())
        assert child is not None
        if child.region != region:
            raise TxRejected(f"{to_org} already holds child fund {child.tag} of {source.tag} "
                             f"in region {child.region}, not {region}")
        child = replace(child, received=child.received + amount)
    else:
        n = source.children + 1
        tag = child_tag(source.tag, n)
        source = replace(source, children=n)
        ctx.state.put(child_key(source.tag, to_org), tag.encode())
        child = replace(source, tag=tag, parent=source.tag, depth=source.depth + 1,
                        holder=to_org, holder_name=target_org.name, region=region,
                        received=amount, allocated=0, paid=0, returned_in=0, returned_out=0,
                        children=0, created_height=ctx.height, created_time=ctx.time_ms,
                        last_move_day=-1)
    source = _moved(ctx, replace(source, allocated=source.allocated + amount))
    child = _moved(ctx, child)
    _save(ctx, source, child)
    seq = _next_seq(ctx)
    alerts = _raise(ctx, rules.circular_allocation(ctx.state.get, source, to_org, ctx.tx_id))
    flow = _flow(ctx, seq, account, amount, source.tag, child.tag, to_org=to_org,
                 to_name=target_org.name, region=region, alerts=alerts, **booked)
    _index(ctx, flow, source.tag, child.tag)
    ctx.data = {"flow_id": ctx.tx_id, "from": source.tag, "child_tag": child.tag,
                "balance": source.balance, "alerts": alerts}


# -- PAYMENT -----------------------------------------------------------------------------------


PAY_OPTIONAL = {"payee_uscc", "payee_hash", "payee_name", "payee_id_masked", "account_hash",
                "sealed", "contract_digest", "invoice_digest", "memo", "voucher"}


def _payee(ctx: ExecContext) -> tuple[dict[str, Value], str, str | None, str]:
    """(payee record, payee key, payee USCC or None, label for alert texts)."""
    payload = ctx.tx.payload
    if ("payee_uscc" in payload) == ("payee_hash" in payload):
        raise TxRejected("payload needs exactly one of payee_uscc (an organisation) and "
                         "payee_hash (a person: HMAC of the ID number)")
    if "payee_uscc" in payload:
        uscc = uscc_field(payload, "payee_uscc")
        for field in ("payee_id_masked", "account_hash", "sealed"):
            if field in payload:
                raise TxRejected(f"payload.{field} is only for payments to a person")
        given = text_field(payload, "payee_name", 100, required=False)
        org = acl.get_org(ctx.state.get, uscc)
        name = org.name if org else given
        label = f"{name} ({uscc})" if name else uscc
        return {"kind": "organisation", "uscc": uscc, "name": name}, payee_key_for_uscc(
            uscc), uscc, label
    holder = payload["payee_hash"]
    if not isinstance(holder, bytes) or len(holder) != 32:
        raise TxRejected("payload.payee_hash must be the 32-byte HMAC of the ID number")
    name = text_field(payload, "payee_name", 64)
    if not is_masked_name(name):
        raise TxRejected("payload.payee_name of a person must be masked (e.g. 张**); the "
                         "clear name goes only in the box sealed to the audit office")
    masked_id = payload.get("payee_id_masked")
    if masked_id is not None and (not isinstance(masked_id, str)
                                  or not MASKED_ID_RE.fullmatch(masked_id)):
        raise TxRejected("payload.payee_id_masked must look like 3501**********0012")
    record: dict[str, Value] = {"kind": "person", "hash": holder, "name": name,
                                "id_masked": masked_id}
    account_hash = payload.get("account_hash")
    if account_hash is not None:
        if not isinstance(account_hash, bytes) or len(account_hash) != 32:
            raise TxRejected("payload.account_hash must be the 32-byte HMAC of the account")
        record["account_hash"] = account_hash
    label = f"{name} ({masked_id})" if masked_id else name
    return record, payee_key_for_hash(holder), None, label


def _sealed(ctx: ExecContext) -> list[Value]:
    sealed = ctx.tx.payload.get("sealed", [])
    if not isinstance(sealed, list) or len(sealed) > SEALED_MAX:
        raise TxRejected(f"payload.sealed must be a list of at most {SEALED_MAX} boxes")
    out: list[Value] = []
    for i, entry in enumerate(sealed):
        if not isinstance(entry, dict) or set(entry) != {"to", "box"}:
            raise TxRejected(f"payload.sealed[{i}] must be {{to, box}}")
        to, box = entry["to"], entry["box"]
        if not isinstance(box, bytes) or not 0 < len(box) <= BOX_BYTES_MAX:
            raise TxRejected(f"payload.sealed[{i}].box must be 1..{BOX_BYTES_MAX} bytes")
        if not isinstance(to, bytes) or not acl.has_role(ctx.state.get, to, "auditor", ctx.height):
            raise TxRejected(f"payload.sealed[{i}].to must be the key of an auditor")
        out.append({"to": to, "box": box})
    return out


def pay(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    check_fields(payload, {"from", "amount", "purpose", "function_code", "value_date"},
                 PAY_OPTIONAL)
    account = _officer(ctx)
    booked = _claim_voucher(ctx, account)
    amount = amount_field(payload)
    purpose = text_field(payload, "purpose")
    function_code = function_code_field(payload)
    value_date = date_field(payload, "value_date")
    contract, invoice = digest_field(payload, "contract_digest"), digest_field(
        payload, "invoice_digest")
    text_field(payload, "memo", required=False)
    payee, payee_key, payee_uscc, label = _payee(ctx)
    sealed = _sealed(ctx)
    if sealed and payee_uscc is not None:
        raise TxRejected("payload.sealed is only for payments to a person")
    fund = _movable(ctx, account)
    _need_balance(fund, amount, "payment")
    fund = _moved(ctx, replace(fund, paid=fund.paid + amount))
    _save(ctx, fund)
    seq = _next_seq(ctx)
    facts = rules.PaymentFacts(
        flow_id=ctx.tx_id, fund=fund, payer=account.org, payee=payee_key,
        payee_uscc=payee_uscc, payee_label=label, amount=amount, value_date=value_date,
        function_code=function_code, block_time=ctx.time_ms)
    found = rules.check_payment(ctx.state, facts)
    alerts = _raise(ctx, found)
    public = _flow(ctx, seq, account, amount, fund.tag, None, payee=payee, payee_key=payee_key,
                   purpose=purpose, function_code=function_code, value_date=value_date,
                   region=fund.region, root=fund.root, contract_digest=contract,
                   invoice_digest=invoice, alerts=alerts, **booked)
    _index(ctx, {**public, "sealed": sealed}, fund.tag, None, public=public)
    ctx.index.put(payee_prefix(payee_key) + seq_bytes(seq), ctx.tx_id)
    _add_total(ctx, IX_TOTAL_FN + function_code.encode(), amount)
    _add_total(ctx, IX_TOTAL_REGION + fund.region.encode(), amount)
    ctx.data = {"flow_id": ctx.tx_id, "payment_id": ctx.tx_id, "from": fund.tag,
                "balance": fund.balance, "alerts": alerts,
                "rules": list[Value](sorted({a.rule for a in found}))}


# -- RETURN ------------------------------------------------------------------------------------


def return_funds(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    check_fields(payload, {"from", "amount"}, {"memo", "voucher"})
    account = _officer(ctx)
    booked = _claim_voucher(ctx, account)
    amount = amount_field(payload)
    text_field(payload, "memo", required=False)
    child = _movable(ctx, account)
    if child.parent is None:
        raise TxRejected(f"fund {child.tag} is an appropriation; it has no parent fund to "
                         "return money to")
    _need_balance(child, amount, "return")
    if child.returned_out + amount > child.received:
        raise TxRejected(
            f"return of {money(amount)} exceeds what fund {child.tag} received from its "
            f"parent: received {money(child.received)}, already returned "
            f"{money(child.returned_out)}")
    parent = get_fund(ctx.state.get, child.parent)
    assert parent is not None
    child = _moved(ctx, replace(child, returned_out=child.returned_out + amount))
    parent = _moved(ctx, replace(parent, returned_in=parent.returned_in + amount))
    _save(ctx, child, parent)
    seq = _next_seq(ctx)
    flow = _flow(ctx, seq, account, amount, child.tag, parent.tag, to_org=parent.holder,
                 to_name=parent.holder_name, **booked)
    _index(ctx, flow, child.tag, parent.tag)
    ctx.data = {"flow_id": ctx.tx_id, "from": child.tag, "to": parent.tag,
                "balance": child.balance}
