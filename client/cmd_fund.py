"""``govledger fund``: record budget flows and follow the money.

Verbs: ``appropriate``, ``allocate``, ``pay``, ``return`` (signed transactions
by a finance officer of the holding organisation), ``trail`` (a signed read:
auditor, or the holding organisation's officers), ``balance``, ``show``,
``list`` and ``totals`` (public), ``payments`` (all payments to one payee;
auditor). Amounts are integer fen (¥1.00 = 100).

A payment to a person (``--payee-id`` and ``--payee-name``) never sends the
ID number, name or bank account in clear: the ID number is HMACed under the
consortium key (default: ``consortium.key`` beside ``--key``), the name is
masked, and the clear values are sealed (SM4-GCM) to the audit office's keys.

Exit codes: 0 success, 1 rejected, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from client.cli import EXIT_OK, EXIT_REJECTED, Context, UsageError, consortium_key, tx_outcome
from client.sdk import Client
from fiscal import payloads, proofs, queries
from fiscal.model import (
    ALLOCATE_TX,
    APPROPRIATE_TX,
    PAY_TX,
    RETURN_TX,
    check_flow_id,
    check_tag,
    payee_key_for_hash,
    yuan,
)
from fiscal.payee import person_payee
from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.errors import InputError, ProofError
from ledger.genesis import load_genesis
from ledger.ids import IdentifierError, validate_citizen_id, validate_uscc
from ledger.privacy import CONSORTIUM_KEY_FILE, holder_hash

_T = TypeVar("_T")
PAYMENTS_PAGE = 5000  # the node's largest page of one payee's payments


def _json_flag(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the verb it sets --json; absent, it leaves the global flag alone.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable output")


def _booking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memo", default="")
    p.add_argument("--voucher", default="", metavar="NO",
                   help="the organisation's accounting voucher number (凭证号); the ledger "
                        "records each voucher once, so a retried flow cannot move money twice")


def _arg_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse ``type=`` from a parser of :mod:`fiscal.payloads` or a check of
    :mod:`fiscal.model` (ValueError or InputError → usage)."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except (ValueError, InputError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


_fen = _arg_type(payloads.parse_fen)
_date = _arg_type(payloads.parse_date)
_hex_digest = _arg_type(payloads.parse_digest)
_tag = _arg_type(check_tag)
_payment_id = _arg_type(check_flow_id)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fund", help="fiscal fund flows: appropriate, allocate, pay, return, "
                                    "trail, balance", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Examples:\n  govledger fund list\n  govledger fund balance "
                              "FJ2026-ZD-0001 --format dot | dot -Tsvg > balance.svg")
    fs = p.add_subparsers(dest="fund_cmd", metavar="COMMAND", required=True)

    q = fs.add_parser("appropriate", help="create a fund from a budget appropriation",
                      epilog="Example: govledger fund appropriate --tag FJ2026-ZD-0001 --amount "
                             "100000000 --year 2026 --doc-no 闽财预〔2026〕15号 --function-code "
                             "2050202 --project 义务教育薄弱环节改善 --project-end 2026-12-31 "
                             "--direct --key keys/czj.pem")
    q.add_argument("--tag", required=True, help="fund tag (资金标识): letters, digits, - and _")
    q.add_argument("--amount", type=_fen, required=True, metavar="FEN")
    q.add_argument("--year", type=int, required=True, help="fiscal year")
    q.add_argument("--doc-no", required=True, help="budget document number (预算文号)")
    q.add_argument("--function-code", required=True, help="functional classification, e.g. "
                                                          "2050202")
    q.add_argument("--project", required=True)
    q.add_argument("--project-end", type=_date, required=True, metavar="DATE")
    q.add_argument("--direct", action="store_true", help="direct funds (直达资金)")
    q.add_argument("--region", help="fiscal region code (default: the organisation's)")
    _booking_args(q)
    q.add_argument("--key", required=True, help="finance officer key (PEM)")
    _json_flag(q)
    q.set_defaults(handler=run_appropriate)

    q = fs.add_parser("allocate", help="allocate from a fund to a sub-unit's child fund",
                      epilog="Example: govledger fund allocate --from FJ2026-ZD-0001 --to-org "
                             "11350102MB2F000328 --region 350102 --amount 30000000 "
                             "--key keys/czj.pem")
    q.add_argument("--from", dest="source", type=_tag, required=True, metavar="TAG")
    q.add_argument("--to-org", required=True, metavar="USCC")
    q.add_argument("--region", required=True, metavar="CODE",
                   help="9-digit fiscal region code (a 6-digit division code gets 000)")
    q.add_argument("--amount", type=_fen, required=True, metavar="FEN")
    _booking_args(q)
    q.add_argument("--key", required=True)
    _json_flag(q)
    q.set_defaults(handler=run_allocate)

    q = fs.add_parser("pay", help="pay an enterprise (USCC) or a person (ID number) from a fund",
                      epilog="Example: govledger fund pay --from FJ2026-ZD-0001.1 --payee-uscc "
                             "91350100MA2Y00014X --amount 1200000 --purpose 校舍改造工程款 "
                             "--function-code 2050202 --value-date 2026-03-02 --key keys/gl.pem")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--payee-uscc", metavar="USCC")
    who.add_argument("--payee-id", metavar="ID_NUMBER", help="a person's citizen ID number "
                     "(sent only as HMAC, and sealed to the audit office)")
    q.add_argument("--payee-name", help="the person's name (masked on the ledger), or the "
                                        "enterprise's name if it is not registered")
    q.add_argument("--payee-account", help="a person's bank account (HMAC and sealed only)")
    q.add_argument("--from", dest="source", type=_tag, required=True, metavar="TAG")
    q.add_argument("--amount", type=_fen, required=True, metavar="FEN")
    q.add_argument("--purpose", required=True)
    q.add_argument("--function-code", required=True)
    q.add_argument("--value-date", type=_date, required=True, metavar="DATE")
    q.add_argument("--contract-digest", type=_hex_digest, metavar="HEX")
    q.add_argument("--invoice-digest", type=_hex_digest, metavar="HEX")
    _booking_args(q)
    q.add_argument("--consortium-key", help=f"for --payee-id (default: {CONSORTIUM_KEY_FILE} "
                                            "beside --key)")
    q.add_argument("--key", required=True)
    _json_flag(q)
    q.set_defaults(handler=run_pay)

    q = fs.add_parser("return", help="return money from a child fund to its parent",
                      epilog="Example: govledger fund return --from FJ2026-ZD-0001.1 --amount "
                             "500000 --key keys/gl.pem")
    q.add_argument("--from", dest="source", type=_tag, required=True, metavar="TAG")
    q.add_argument("--amount", type=_fen, required=True, metavar="FEN")
    _booking_args(q)
    q.add_argument("--key", required=True)
    _json_flag(q)
    q.set_defaults(handler=run_return)

    q = fs.add_parser("trail", help="follow the money: forward from a fund, or backward from "
                                    "a payment (signed read, logged)",
                      epilog="Example: govledger fund trail FJ2026-ZD-0001 --format dot --key "
                             "keys/sjj.pem | dot -Tsvg > trail.svg")
    q.add_argument("tag", type=_tag, metavar="TAG")
    q.add_argument("--backward", type=_payment_id, metavar="PAYMENT_ID",
                   help="trail of one payment up to its appropriation")
    q.add_argument("--format", choices=("table", "json", "dot"), default="table")
    q.add_argument("--key", required=True, help="auditor key, or the holder's finance officer")
    _json_flag(q)
    q.set_defaults(handler=run_trail)

    q = fs.add_parser("balance", help="balance sheet of a fund and everything below it",
                      epilog="Example: govledger fund balance FJ2026-ZD-0001\n"
                             "Checked here, trusting no node: govledger fund balance "
                             "FJ2026-ZD-0001 --genesis genesis.json")
    q.add_argument("tag", type=_tag, metavar="TAG")
    q.add_argument("--format", choices=("table", "json", "dot"), default="table")
    q.add_argument("--genesis", help="the network's genesis.json: fetch the fund records "
                                     "with their proofs and compute the sheet here")
    _json_flag(q)
    q.set_defaults(handler=run_balance)

    q = fs.add_parser("show", help="one fund's record",
                      epilog="Example: govledger fund show FJ2026-ZD-0001.1")
    q.add_argument("tag", type=_tag, metavar="TAG")
    _json_flag(q)
    q.set_defaults(handler=run_show)

    q = fs.add_parser("list", help="the most recent appropriations",
                      epilog="Example: govledger fund list --limit 10")
    q.add_argument("--limit", type=int, default=50)
    _json_flag(q)
    q.set_defaults(handler=run_list)

    q = fs.add_parser("totals", help="payments summed by function code or fiscal region",
                      epilog="Example: govledger fund totals --by region --prefix 3501")
    q.add_argument("--by", choices=("function", "region"), default="function")
    q.add_argument("--prefix", default="")
    _json_flag(q)
    q.set_defaults(handler=run_totals)

    q = fs.add_parser("payments", help="every payment to one payee (auditor; signed read)",
                      epilog="Examples: govledger fund payments --payee-uscc 91350100MA2Y00044Y "
                             "--key keys/sjj.pem\n  govledger fund payments --payee-id "
                             "350104201209010368 --key keys/sjj.pem")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--payee-uscc", metavar="USCC")
    who.add_argument("--payee-id", metavar="ID_NUMBER",
                     help="looked up by its HMAC; the number itself is never sent")
    q.add_argument("--consortium-key")
    q.add_argument("--key", required=True)
    _json_flag(q)
    q.set_defaults(handler=run_payments)


# -- helpers ------------------------------------------------------------------------------------


def _consortium_key(args: argparse.Namespace) -> bytes:
    return consortium_key(args.consortium_key, args.key, "a person's ID number is recorded "
                                                         "as its HMAC under the consortium key")


def seal_keys(client: Client) -> list[bytes]:
    """The audit office's keys that a person's payee data is sealed to."""
    return [bytes.fromhex(a["public_key"]) for a in client.get("/v1/fiscal/seal-keys")["keys"]]


def person_fields(key: PrivateKey, consortium: bytes, auditors: list[bytes], id_number: str,
                  name: str, account: str | None) -> dict[str, Value]:
    """The payment fields for a person (HMACs, masked name, boxes sealed to ``auditors``);
    UsageError if the ID number is not valid."""
    try:
        return person_payee(key.suite, consortium, id_number, name, auditors, account or None)
    except IdentifierError as exc:
        raise UsageError(str(exc)) from None


def _submit(ctx: Context, tx_type: str, payload: dict[str, Value]) -> dict[str, Any]:
    reply: dict[str, Any] = ctx.client(need_key=True).submit(tx_type, payload)
    return reply


# -- transactions -------------------------------------------------------------------------------


def run_appropriate(args: argparse.Namespace, ctx: Context) -> int:
    payload = payloads.appropriation(
        tag=args.tag, amount=args.amount, year=args.year, doc_no=args.doc_no,
        function_code=args.function_code, project=args.project, project_end=args.project_end,
        direct=bool(args.direct), region=args.region, memo=args.memo, voucher=args.voucher)
    reply = _submit(ctx, APPROPRIATE_TX, payload)
    return tx_outcome(ctx, reply, f"appropriation {args.tag} of {yuan(args.amount)}",
                      extra=lambda d: {"tag": d.get("tag"), "balance": d.get("balance")})


def run_allocate(args: argparse.Namespace, ctx: Context) -> int:
    payload = payloads.allocation(source=args.source, to_org=args.to_org, region=args.region,
                                  amount=args.amount, memo=args.memo, voucher=args.voucher)
    reply = _submit(ctx, ALLOCATE_TX, payload)
    return tx_outcome(ctx, reply, f"allocation of {yuan(args.amount)} from {args.source}",
                      extra=lambda d: {"child_tag": d.get("child_tag"),
                                       "balance": d.get("balance"), "alerts": d.get("alerts")})


def run_pay(args: argparse.Namespace, ctx: Context) -> int:
    if args.payee_uscc and args.payee_account:
        raise UsageError("--payee-account is for payments to a person")
    if args.payee_id and not args.payee_name:
        raise UsageError("a payment to a person needs --payee-name (masked on the ledger)")
    payload = payloads.payment(
        source=args.source, amount=args.amount, purpose=args.purpose,
        function_code=args.function_code, value_date=args.value_date,
        payee_uscc=args.payee_uscc, payee_name=args.payee_name,
        contract_digest=args.contract_digest, invoice_digest=args.invoice_digest,
        memo=args.memo, voucher=args.voucher)
    if args.payee_id:
        client = ctx.client(need_key=True)
        assert client.key is not None
        payload.update(person_fields(client.key, _consortium_key(args), seal_keys(client),
                                     args.payee_id, args.payee_name, args.payee_account))
    reply = _submit(ctx, PAY_TX, payload)
    return tx_outcome(ctx, reply, f"payment of {yuan(args.amount)} from {args.source}",
                      extra=lambda d: {"payment_id": d.get("payment_id"),
                                       "balance": d.get("balance"), "alerts": d.get("alerts"),
                                       "rules": d.get("rules")})


def run_return(args: argparse.Namespace, ctx: Context) -> int:
    reply = _submit(ctx, RETURN_TX, payloads.return_flow(source=args.source, amount=args.amount,
                                                         memo=args.memo,
                                                         voucher=args.voucher))
    return tx_outcome(ctx, reply, f"return of {yuan(args.amount)} from {args.source}",
                      extra=lambda d: {"to": d.get("to"), "balance": d.get("balance")})


# -- queries ------------------------------------------------------------------------------------


def _wants_json(ctx: Context, args: argparse.Namespace) -> bool:
    return ctx.json or args.format == "json"


def run_trail(args: argparse.Namespace, ctx: Context) -> int:
    query = {"backward": args.backward} if args.backward else {}
    trail = ctx.client(need_key=True).get(f"/v1/funds/{args.tag}/trail", query, signed=True)
    if args.format == "dot" and not ctx.json:
        title = f"{args.tag} backward" if args.backward else f"{args.tag} forward"
        print(queries.to_dot(trail, title), end="")
        return EXIT_OK
    ctx.json = _wants_json(ctx, args)
    ctx.emit(trail, lambda: _trail_tables(ctx, trail, bool(args.backward)))
    return EXIT_OK


def _trail_tables(ctx: Context, trail: dict[str, Any], backward: bool) -> None:
    if backward:
        payment = trail["payment"]
        booked = [("voucher", payment["voucher"])] if payment.get("voucher") else []
        ctx.fields("payment", [("payment_id", payment["flow_id"]), ("from", payment["from"]),
                               ("payee", _payee_label(payment["payee"])),
                               ("amount", yuan(payment["amount"])),
                               ("value_date", payment["value_date"]),
                               ("purpose", payment["purpose"]), *booked])
        rows = []
        for step in trail["path"]:
            f = step["fund"]
            for inflow in step["inflows"]:
                source = inflow["from"] or f"budget {inflow.get('doc_no', '')}"
                rows.append((f["tag"], f["holder_name"], inflow["kind"].lower(), source,
                             yuan(inflow["amount"]), inflow["height"]))
        ctx.table("up to the appropriation", ["fund", "holder", "flow", "from", "amount",
                                              "height"], rows)
        return
    ctx.table(f"trail of {trail['tag']}", ["kind", "from", "to", "amount", "flows"],
              [(e["kind"].lower(), e["from"], _node_label(trail, e["to"]), yuan(e["amount"]),
                e["count"]) for e in trail["edges"]])
    totals = trail["totals"]
    ctx.console.print(f"{totals['funds']} funds, {totals['payees']} payees, "
                      f"{yuan(totals['paid_to_payees'])} paid to payees"
                      + (" (truncated)" if trail.get("truncated") else ""))


def _payee_label(payee: dict[str, Any]) -> str:
    if payee.get("kind") == "person":
        return f"{payee.get('name')} {payee.get('id_masked') or ''}".strip()
    return f"{payee.get('name') or ''} {payee.get('uscc')}".strip()


def _node_label(trail: dict[str, Any], node: str) -> str:
    for p in trail.get("payees", []):
        if p["key"] == node:
            return _payee_label(p)
    return node


def run_balance(args: argparse.Namespace, ctx: Context) -> int:
    title = f"balance sheet of {args.tag}"
    sheet: dict[str, Any]
    if args.genesis:
        genesis = load_genesis(args.genesis)
        raw = ctx.client().get_bytes(f"/v1/funds/{args.tag}/proof")
        try:
            proven, height = proofs.verified_balance_sheet(genesis, raw, args.tag)
        except ProofError as exc:
            ctx.err.print(f"[red]INVALID:[/red] the node's balance proof does not verify: {exc}")
            return EXIT_REJECTED
        sheet = {**proven, "verified_height": height}
        title += f" (verified at block {height} against {args.genesis})"
    else:
        sheet = ctx.client().get(f"/v1/funds/{args.tag}/balance")
    if args.format == "dot" and not ctx.json:
        print(queries.balance_dot(sheet), end="")
        return EXIT_OK
    ctx.json = _wants_json(ctx, args)
    rows = [("  " * r["depth"] + r["tag"], r["holder_name"], r["region"], yuan(r["received"]),
             yuan(r["allocated"]), yuan(r["paid"]), yuan(r["returned_out"]),
             yuan(r["balance"]), queries.percent(r["progress_bp"])) for r in sheet["rows"]]
    ctx.emit(sheet, lambda: ctx.table(
        title, ["fund", "holder", "region", "received", "allocated", "spent", "returned",
                "unallocated", "progress"], rows))
    return EXIT_OK


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    fund = ctx.client().get(f"/v1/funds/{args.tag}")
    ctx.emit(fund, lambda: ctx.fields(f"fund {args.tag}", [
        (k, yuan(v) if k in ("received", "allocated", "paid", "returned_in", "returned_out",
                             "balance") else v) for k, v in fund.items()]))
    return EXIT_OK


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    funds = ctx.client().get("/v1/funds", {"limit": str(args.limit)})["funds"]
    ctx.emit({"funds": funds}, lambda: ctx.table("appropriations", [
        "tag", "holder", "year", "doc no", "project", "received", "balance"],
        [(f["tag"], f["holder_name"], f["year"], f["doc_no"], f["project"],
          yuan(f["received"]), yuan(f["balance"])) for f in funds]))
    return EXIT_OK


def run_totals(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client().get("/v1/fiscal/totals", {"by": args.by, "prefix": args.prefix})
    ctx.emit(data, lambda: ctx.table(
        f"payments by {args.by}" + (f" under {args.prefix}" if args.prefix else ""),
        ["code", "payments", "amount"],
        [(r["code"], r["count"], yuan(r["amount"])) for r in data["rows"]]
        + [("total", data["count"], yuan(data["amount"]))]))
    return EXIT_OK


def _all_payments(client: Client, payee: str) -> dict[str, Any]:
    """Every payment to ``payee``, page after page (each a signed read, logged), so that
    the total is the payee's whole total, not the first page's."""
    query = {"limit": str(PAYMENTS_PAGE)}
    data: dict[str, Any] | None = None
    while True:
        try:
            page = client.get(f"/v1/payees/{payee}/payments", query, signed=True)
        except InputError as exc:
            raise UsageError(str(exc)) from None
        if data is None:
            data = page
        else:
            data["payments"] += page["payments"]
            data["count"] += page["count"]
            data["amount"] += page["amount"]
        if page.get("next") is None:
            data["truncated"], data["next"] = False, None
            return data
        query["after"] = str(page["next"])


def run_payments(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client(need_key=True)
    if args.payee_uscc:
        try:
            payee = validate_uscc(args.payee_uscc)
        except IdentifierError as exc:
            raise UsageError(str(exc)) from None
    else:
        try:
            number = validate_citizen_id(args.payee_id)
        except IdentifierError as exc:
            raise UsageError(str(exc)) from None
        assert client.key is not None
        digest = holder_hash(client.key.suite, _consortium_key(args), number)
        payee = payee_key_for_hash(digest)[1:]
    data = _all_payments(client, payee)
    ctx.emit(data, lambda: ctx.table(
        "payments", ["payment", "from", "org", "amount", "value date", "purpose"],
        [(p["flow_id"][:16] + "…", p["from"], p["org"], yuan(p["amount"]), p["value_date"],
          p["purpose"]) for p in data["payments"]]
        + [("total", "", "", yuan(data["amount"]), "", f"{data['count']} payments")]))
    return EXIT_OK
