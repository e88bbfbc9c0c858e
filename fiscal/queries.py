"""Read side: fund trails, balance sheets, payments to a payee, totals, alerts; DOT output.

Theory of operation
-------------------
Every query reads a :class:`Reader` — the node's store (state and index of
the last appended block) — and is built so that its cost grows with the size
of its answer, not of the ledger:

- a *forward trail* walks the tree below a fund tag breadth first, following
  each fund's ``fiscal/x/out/<tag>`` entries (its allocations, payments and
  returns, in ledger order). The funds below ``<tag>`` are exactly the tags
  ``<tag>.N…``, so the whole tree is read in three range scans over adjacent
  keys (its own outgoing flows, those under ``<tag>.``, and those funds'
  records) and walked in memory; a tree above the flow limit is read fund by
  fund, one prefix scan each, so that truncation keeps the upper levels;
- a *backward trail* walks from a payment up its fund's parent chain (at most
  ``DEPTH_MAX`` steps), reading each fund's ``in/`` prefix for the
  allocations that fed it, up to the appropriation;
- a *balance sheet* reads the fund records of a subtree (children are
  ``<tag>.1 … <tag>.<children>``, no scan);
- *payments to a payee* scan one ``payee/<key>`` prefix; *totals* scan the
  running totals under a function-code or region prefix (one row per code);
- *alerts* scan the newest-first alert keys of the state;
- *a voucher* is one state read (``fiscal/voucher/<org>\\0<voucher>``) and one
  index read (the flow it names).

Each answer is bounded (``limit``) and says ``truncated`` when it hit the
bound. Answers are plain values (bytes stay bytes; the API renders hex).
Nothing here holds personal data in clear, because the ledger does not:
payees who are persons appear with masked names and IDs; the boxes sealed
to the audit office are returned only by :func:`payment`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from fiscal import rules
from fiscal.model import (
    DEPTH_MAX,
    FUND_PREFIX,
    IX_FLOW,
    IX_OUT,
    IX_ROOT,
    IX_TOTAL_FN,
    IX_TOTAL_REGION,
    Fund,
    ancestors,
    child_tag,
    decode_fund,
    fund_key,
    fund_view,
    get_fund,
    in_prefix,
    out_prefix,
    payee_prefix,
    seq_bytes,
    voucher_key,
    yuan,
)
from ledger.codec import Value, decode_value
from ledger.errors import CorruptionError

FLOWS_MAX = 5000
FLOW_ID_BYTES = 32  # a transaction id (SM3 / SHA-256); an encoded flow record is longer
FUNDS_MAX = 2000
TOTAL_ROWS_MAX = 5000


class Reader(Protocol):
    """What queries need from a store (``ledger.store.Store`` provides it)."""

    def get_state(self, key: bytes) -> bytes | None: ...

    def get_index(self, key: bytes) -> bytes | None: ...

    def iter_index(self, prefix: bytes, start: bytes | None = None, reverse: bool = False
                   ) -> Iterator[tuple[bytes, bytes]]: ...

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]: ...


def _map(raw: bytes, what: str) -> dict[str, Value]:
    value = decode_value(raw)
    if not isinstance(value, dict):
        raise CorruptionError(f"{what} is unreadable")
    return value


def public_flow(flow: dict[str, Value]) -> dict[str, Value]:
    """A flow without the boxes sealed to the audit office."""
    return {k: v for k, v in flow.items() if k != "sealed"}


def flow(reader: Reader, flow_id: bytes) -> dict[str, Value] | None:
    """The full flow record (sealed boxes included), or None."""
    raw = reader.get_index(IX_FLOW + flow_id)
    return None if raw is None else _map(raw, f"flow {flow_id.hex()}")


def voucher(reader: Reader, org: str, number: str) -> dict[str, Value] | None:
    """Which flow recorded ``number``, a voucher of organisation ``org``, or None: the
    flow's id, kind, amount, funds and height — what a bulk import run again needs to
    report the row as recorded already, and no more than the flow's public payload."""
    flow_id = reader.get_state(voucher_key(org, number))
    if flow_id is None:
        return None
    record = flow(reader, flow_id)
    if record is None:
        raise CorruptionError(f"voucher {number} of {org} names flow {flow_id.hex()}, "
                              "which the index lacks")
    return {"org": org, "voucher": number, "flow_id": flow_id, "kind": record["kind"],
            "amount": record["amount"], "from": record["from"], "to": record["to"],
            "height": record["height"], "time": record["time"]}


def fund(reader: Reader, tag: str) -> Fund | None:
    return get_fund(reader.get_state, tag)


def path_holders(reader: Reader, tag: str) -> set[str]:
    """Organisations holding ``tag`` or a fund above it (whose officers may see its trail)."""
    found = fund(reader, tag)
    return {f.holder for f in ancestors(reader.get_state, found)} if found else set()


def root_funds(reader: Reader, limit: int = 100) -> list[dict[str, Value]]:
    """The most recent appropriations, newest first."""
    out: list[dict[str, Value]] = []
    for _, raw_tag in reader.iter_index(IX_ROOT, reverse=True):
        found = fund(reader, raw_tag.decode())
        if found is not None:
            out.append(fund_view(found))
        if len(out) >= limit:
            break
    return out


# -- trails ------------------------------------------------------------------------------------


def _payee_node(payee: dict[str, Value], key: str) -> dict[str, Value]:
    node: dict[str, Value] = {"key": key, "kind": payee.get("kind"), "name": payee.get("name")}
    if payee.get("kind") == "person":
        node["hash"] = payee.get("hash")
        node["id_masked"] = payee.get("id_masked")
    else:
        node["uscc"] = payee.get("uscc")
    return node


def _int(value: Value) -> int:
    if type(value) is not int:
        raise CorruptionError(f"expected an integer in a stored record, got {value!r}")
    return value


class _Graph:
    """Nodes and aggregated edges of a trail, with its individual flows."""

    def __init__(self) -> None:
        self.funds: dict[str, dict[str, Value]] = {}
        self.payees: dict[str, dict[str, Value]] = {}
        self.paid: dict[str, list[int]] = {}  # payee key -> [amount, count]
        self.edges: dict[tuple[str, str, str], list[Value]] = {}  # -> flow ids
        self.edge_sums: dict[tuple[str, str, str], int] = {}
        self.flows: list[dict[str, Value]] = []

    def add(self, flow_record: dict[str, Value]) -> None:
        record = public_flow(flow_record)
        self.flows.append(record)
        kind, amount = str(record["kind"]), _int(record["amount"])
        source = str(record["from"]) if record["from"] is not None else _budget(record)
        if kind == "PAYMENT":
            payee = record["payee"]
            target = str(record["payee_key"])
            assert isinstance(payee, dict)
            self.payees.setdefault(target, _payee_node(payee, target))
            sums = self.paid.setdefault(target, [0, 0])
            sums[0] += amount
            sums[1] += 1
        else:
            target = str(record["to"])
        edge = (source, target, kind)
        self.edges.setdefault(edge, []).append(record["flow_id"])
        self.edge_sums[edge] = self.edge_sums.get(edge, 0) + amount

    def paid_total(self) -> int:
        return sum(amount for amount, _ in self.paid.values())

    def value(self) -> dict[str, Value]:
        payees: list[Value] = [{**node, "amount": self.paid[key][0], "count": self.paid[key][1]}
                               for key, node in self.payees.items()]
        edges: list[Value] = [
            {"from": source, "to": target, "kind": kind, "amount": self.edge_sums[(source,
             target, kind)], "count": len(flows), "flows": flows}
            for (source, target, kind), flows in self.edges.items()]
        return {"funds": list[Value](self.funds.values()), "payees": payees, "edges": edges,
                "flows": list[Value](self.flows)}


def _budget(record: dict[str, Value]) -> str:
    doc_no = record.get("doc_no")
    return f"budget:{doc_no if isinstance(doc_no, str) else ''}"


def flows_into(reader: Reader, tag: str, kinds: tuple[str, ...]) -> Iterator[dict[str, Value]]:
    """The flows of ``kinds`` into fund ``tag``, in ledger order (public records: what a
    trail shows). The ``in/`` index holds each record itself, or — in a store written
    before it did — the flow's id, read from the flow index."""
    for _, value in reader.iter_index(in_prefix(tag)):
        if len(value) == FLOW_ID_BYTES:
            record = flow(reader, value)
            if record is None:
                raise CorruptionError(f"index names a missing flow {value.hex()}")
        else:
            record = _map(value, f"flow into {tag}")
        if record["kind"] in kinds:
            yield record


def forward_trail(reader: Reader, tag: str, limit: int = FLOWS_MAX) -> dict[str, Value] | None:
    """Where the money of ``tag`` went: every fund below it and every payee, with the
    amount on each edge (and every flow). None if there is no such fund."""
    top = fund(reader, tag)
    if top is None:
        return None
    graph = _Graph()
    for record in flows_into(reader, tag, ("APPROPRIATION", "ALLOCATION")):
        graph.add(record)
    subtree = _subtree(reader, tag, limit - len(graph.flows))
    outs, below = subtree if subtree is not None else ({}, {})
    queue: deque[Fund] = deque([top])
    seen = {tag}
    truncated = False
    while queue and not truncated:
        current = queue.popleft()
        graph.funds[current.tag] = fund_view(current)
        raws = (outs.get(current.tag, []) if subtree is not None
                else (raw for _, raw in reader.iter_index(out_prefix(current.tag))))
        for raw in raws:
            if len(graph.flows) >= limit:
                truncated = True
                break
            record = _map(raw, f"flow out of {current.tag}")
            graph.add(record)
            target = record.get("to")
            if record["kind"] == "ALLOCATION" and isinstance(target, str) and target not in seen:
                seen.add(target)
                child = below.get(target) or fund(reader, target)
                if child is None:
                    raise CorruptionError(f"flow names a missing fund {target}")
                queue.append(child)
    value = graph.value()
    paid = graph.paid_total()
    value.update({"tag": tag, "root": top.root, "fund": fund_view(top), "truncated": truncated,
                  "totals": {"received": top.received, "paid_to_payees": paid,
                             "payees": len(graph.payees), "funds": len(graph.funds),
                             "flows": len(graph.flows)}})
    return value


def _subtree(reader: Reader, tag: str, budget: int
             ) -> tuple[dict[str, list[bytes]], dict[str, Fund]] | None:
    """The flows out of ``tag`` and out of every fund below it (raw records, in index
    order, by fund), and the records of those funds; None if there are more than
    ``budget`` flows.

    Funds below ``tag`` are exactly the tags ``tag.N…`` (allocations name their children
    so, and an appropriation's tag has no dot), so three range scans over adjacent keys
    read the whole tree, where a walk fund by fund made two seeks per fund — seeks are
    what grows with the size of the ledger (LevelDB's levels), not the answer.
    """
    outs: dict[str, list[bytes]] = {}
    count = 0
    start = len(IX_OUT)
    for prefix in (out_prefix(tag), IX_OUT + f"{tag}.".encode()):
        for key, raw in reader.iter_index(prefix):
            count += 1
            if count > budget:
                return None
            owner = key[start:key.index(b"\0", start)].decode()
            outs.setdefault(owner, []).append(raw)
    below: dict[str, Fund] = {}
    for key, raw in reader.iter_state(fund_key(f"{tag}.")):
        child_tag = key[len(FUND_PREFIX):].decode()
        below[child_tag] = decode_fund(child_tag, raw)
    return outs, below


def backward_trail(reader: Reader, payment_id: bytes) -> dict[str, Value] | None:
    """Where the money of one payment came from: its fund and each fund above it, with
    the allocations that fed them, up to the appropriation. None if no such payment."""
    record = flow(reader, payment_id)
    if record is None or record["kind"] != "PAYMENT":
        return None
    source = fund(reader, str(record["from"]))
    if source is None:
        raise CorruptionError(f"payment names a missing fund {record['from']!r}")
    graph = _Graph()
    graph.add(record)
    path: list[Value] = []
    for step in ancestors(reader.get_state, source)[: DEPTH_MAX + 1]:
        graph.funds[step.tag] = fund_view(step)
        inflows = list(flows_into(reader, step.tag, ("APPROPRIATION", "ALLOCATION")))
        for inflow in inflows:
            graph.add(inflow)
        path.append({"fund": fund_view(step), "inflows": [public_flow(f) for f in inflows]})
    value = graph.value()
    value.update({"payment": public_flow(record), "path": path, "root": source.root,
                  "truncated": False})
    return value


# -- balance sheet -----------------------------------------------------------------------------


def balance_sheet(reader: Reader, tag: str, limit: int = FUNDS_MAX) -> dict[str, Value] | None:
    """Per node of the hierarchy below ``tag``: received, allocated down, spent, returned,
    unallocated (the balance) and progress — the share of what it received, net of
    returns, that was paid out by it or below it — in basis points (integers only)."""
    top = fund(reader, tag)
    if top is None:
        return None
    order: list[Fund] = []
    stack = [top]
    truncated = False
    while stack:
        current = stack.pop()
        order.append(current)
        if len(order) >= limit:
            truncated = bool(stack) or current.children > 0
            break
        for n in range(current.children, 0, -1):
            child = fund(reader, child_tag(current.tag, n))
            if child is None:
                raise CorruptionError(f"fund {current.tag} lists a missing child {n}")
            stack.append(child)
    below: dict[str, int] = {}
    for f in reversed(order):  # children come after their parent in pre-order
        below[f.tag] = below.get(f.tag, 0) + f.paid
        if f.parent is not None and f.tag != tag:
            below[f.parent] = below.get(f.parent, 0) + below[f.tag]
    rows: list[Value] = []
    for f in order:
        net = f.received - f.returned_out
        spent = below[f.tag]
        rows.append({
            "tag": f.tag, "parent": f.parent, "depth": f.depth - top.depth, "holder": f.holder,
            "holder_name": f.holder_name, "region": f.region, "received": f.received,
            "allocated": f.allocated, "paid": f.paid, "returned_in": f.returned_in,
            "returned_out": f.returned_out, "balance": f.balance, "paid_below": spent,
            "progress_bp": spent * 10_000 // net if net > 0 else 0,
        })
    return {"tag": tag, "fund": fund_view(top), "rows": rows, "truncated": truncated}


# -- payees, totals, alerts ----------------------------------------------------------------------


def payments_to(reader: Reader, payee: str, limit: int = 500, after: int | None = None
                ) -> dict[str, Value]:
    """Payments to one payee (``U<USCC>`` or ``H<hmac hex>``), across departments and
    years, oldest first, ``limit`` at a time, with the page's count and amount. ``next``
    (None on the last page) is the ``after`` of the next page: the payment sequence number
    of this page's last payment, so newer payments never move what a page holds."""
    payments: list[Value] = []
    total, more, last = 0, False, None
    prefix = payee_prefix(payee)
    start = None if after is None else prefix + seq_bytes(after + 1)
    for key, flow_id in reader.iter_index(prefix, start=start):
        if len(payments) >= limit:
            more = True
            break
        record = flow(reader, flow_id)
        if record is None:
            raise CorruptionError(f"index names a missing flow {flow_id.hex()}")
        amount = record["amount"]
        assert isinstance(amount, int)
        total += amount
        payments.append(public_flow(record))
        last = int.from_bytes(key[len(prefix):], "big")
    return {"payee": payee, "payments": payments, "count": len(payments), "amount": total,
            "truncated": more, "next": last if more else None}


def totals(reader: Reader, by: str, prefix: str = "") -> dict[str, Value]:
    """Payments summed by function code or fiscal region code, for codes under ``prefix``."""
    base = IX_TOTAL_FN if by == "function" else IX_TOTAL_REGION
    rows: list[Value] = []
    count = amount = 0
    truncated = False
    for key, raw in reader.iter_index(base + prefix.encode()):
        if len(rows) >= TOTAL_ROWS_MAX:
            truncated = True
            break
        row = _map(raw, "payment total")
        c, a = row["count"], row["amount"]
        assert isinstance(c, int) and isinstance(a, int)
        count, amount = count + c, amount + a
        rows.append({"code": key[len(base):].decode(), "count": c, "amount": a})
    return {"by": by, "prefix": prefix, "rows": rows, "count": count, "amount": amount,
            "truncated": truncated}


def alerts(reader: Reader, rule: str | None = None, org: str | None = None, limit: int = 100,
           before: int | None = None) -> dict[str, Value]:
    """Red-flag alerts, newest first: all, by rule, naming one organisation, or both.

    ``before`` (an alert id) pages backwards: only alerts with smaller ids, read from
    there (keys hold ``INV - id``, so older is further on), not past every newer one.
    """
    if rule is not None:
        prefix, by_id = rules.ALERT_RULE_PREFIX + rule.encode() + b"\0", True
    elif org is not None:
        prefix, by_id = rules.ALERT_ORG_PREFIX + org.encode() + b"\0", True
    else:
        prefix, by_id = rules.ALERT_PREFIX, False
    out: list[Value] = []
    truncated = False
    start = None if before is None else prefix + rules.inv_bytes(before - 1)
    for key, raw in reader.iter_state(prefix, start):
        alert_id = rules.INV - int.from_bytes(key[-8:], "big")
        if before is not None and alert_id >= before:
            continue
        if by_id:
            stored = reader.get_state(rules.ALERT_PREFIX + key[-8:])
            if stored is None:
                raise CorruptionError(f"alert {alert_id} is indexed but missing")
            raw = stored
        record = _map(raw, f"alert {alert_id}")
        orgs = record.get("orgs")
        if org is not None and not (isinstance(orgs, list) and org in orgs):
            continue
        if len(out) >= limit:
            truncated = True
            break
        out.append({**record, "severity": rules.SEVERITY.get(str(record.get("rule")), "medium")})
    return {"alerts": out, "count": len(out), "truncated": truncated,
            "rules": list[Value](rules.RULES)}


# -- Graphviz DOT --------------------------------------------------------------------------------


def percent(basis_points: int) -> str:
    """``4523`` → ``45.23%`` (integers only)."""
    return f"{basis_points // 100}.{basis_points % 100:02d}%"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_EDGE_STYLE = {"APPROPRIATION": "dotted", "ALLOCATION": "solid", "PAYMENT": "bold",
               "RETURN": "dashed"}


def to_dot(trail: dict[str, Any], title: str = "fund trail") -> str:
    """A trail (forward or backward) as a Graphviz digraph: funds are boxes, payees
    ellipses, the budget a note; each edge is labelled with its amount and flow count."""
    lines = [f"digraph {_q(title)} {{", "  rankdir=LR;",
             '  node [fontname="Noto Sans CJK SC", fontsize=10];',
             '  edge [fontname="Noto Sans CJK SC", fontsize=9];']
    for f in trail.get("funds", []):
        label = (f"{f['tag']}\n{f['holder_name']}\n{f['region']}\n"
                 f"received {yuan(f['received'])}\nbalance {yuan(f['balance'])}")
        lines.append(f"  {_q(f['tag'])} [shape=box, label={_q(label)}];")
    for p in trail.get("payees", []):
        who = p.get("uscc") or p.get("id_masked") or ""
        label = f"{p.get('name') or ''}\n{who}\n{yuan(p['amount'])} ({p['count']})"
        lines.append(f"  {_q(p['key'])} [shape=ellipse, label={_q(label)}];")
    sources = {e["from"] for e in trail.get("edges", [])}
    known = {f["tag"] for f in trail.get("funds", [])} | {p["key"] for p in
                                                          trail.get("payees", [])}
    for node in sorted(sources - known):
        label = node.removeprefix("budget:") if node.startswith("budget:") else node
        shape = "note" if node.startswith("budget:") else "box, style=dashed"
        lines.append(f"  {_q(node)} [shape={shape}, label={_q(label)}];")
    for e in trail.get("edges", []):
        label = f"{e['kind'].lower()} {yuan(e['amount'])}" + (
            f" ×{e['count']}" if e["count"] > 1 else "")
        lines.append(f"  {_q(e['from'])} -> {_q(e['to'])} "
                     f"[label={_q(label)}, style={_EDGE_STYLE.get(e['kind'], 'solid')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def balance_dot(sheet: dict[str, Any]) -> str:
    """A balance sheet as a Graphviz tree of its funds."""
    lines = ['digraph "balance sheet" {', "  rankdir=TB;",
             '  node [shape=record, fontname="Noto Sans CJK SC", fontsize=10];']
    for r in sheet.get("rows", []):
        label = (f"{{{r['tag']}|{r['holder_name']}|received {yuan(r['received'])}|"
                 f"allocated {yuan(r['allocated'])}|paid {yuan(r['paid'])}|"
                 f"balance {yuan(r['balance'])}|progress {percent(r['progress_bp'])}}}")
        lines.append(f"  {_q(r['tag'])} [label={_q(label)}];")
        if r["parent"] is not None and r["depth"] > 0:
            lines.append(f"  {_q(r['parent'])} -> {_q(r['tag'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"
