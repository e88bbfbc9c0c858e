"""``govledger gov``: committee proposals and votes.

- ``gov propose KIND [name=value | name:=json ...] [--params-json JSON] --key K`` — a
  proposal; ``name=value`` gives a string (keys as hex), ``name:=json`` a JSON value
  (numbers, lists, maps), and a dotted name nests (``changes.batch_tx_max=500``);
- ``gov vote PROPOSAL_ID approve|reject --key K``;
- ``gov show [PROPOSAL_ID]`` — one proposal with its votes, or the recent ones;
- ``gov kinds`` — the proposal kinds the network knows (also in ``gov propose --help``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from client.cli import EXIT_OK, NODE_HINT, Context, UsageError, add_common, tx_outcome
from client.sdk import Client, NodeError, Unreachable
from ledger.codec import Value

PROPOSE_TX, VOTE_TX = "gov.propose", "gov.vote"
DAY_MS = 24 * 3600 * 1000

PROPOSE_EXAMPLES = """\
examples:
  govledger gov propose add_validator name=node4 public_key=04ab… address=10.0.0.5:7700 --key k.pem
  govledger gov propose remove_validator name=node3 --key k.pem
  govledger gov propose grant_role public_key=04cd… role=auditor name=审计局-张三 \\
      org=11350100MB1F00030Y --key k.pem
  govledger gov propose set_config changes.batch_tx_max=500 --key k.pem
  govledger gov propose register_org uscc=… name=… kind=department region=350102 \\
      keys:='["04ef…"]' --key k.pem
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gov", help="committee proposals and votes",
                       epilog="Examples:\n  govledger gov show\n  govledger gov vote 12 "
                              "approve --key keys/czj.pem",
                       description="Committee governance: a proposal passes in the block where "
                                   "two thirds of the committee approve it.")
    gs = p.add_subparsers(dest="gov_cmd", metavar="COMMAND", required=True)

    propose = gs.add_parser("propose", help="make a proposal (you approve it)", add_help=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Make a committee proposal; your approval is its first "
                                        "vote.", epilog=PROPOSE_EXAMPLES)
    propose.add_argument("-h", "--help", action=_HelpWithKinds,
                         help="show this help and the kinds the network knows")
    propose.add_argument("kind", metavar="KIND", help="proposal kind (see below)")
    propose.add_argument("params", nargs="*", metavar="name=value",
                         help="parameters: name=value (string, keys as hex), name:=json; a "
                              "dotted name nests")
    propose.add_argument("--params-json", help="all parameters as one JSON object")
    propose.add_argument("--ttl-days", type=float, default=7.0,
                         help="days the committee has to decide (default 7, at most 90)")
    add_common(propose, key=True)
    propose.set_defaults(handler=run_propose)

    vote = gs.add_parser("vote", help="approve or reject a proposal",
                         epilog="Example: govledger gov vote 12 approve --key k.pem")
    vote.add_argument("proposal_id", type=int, metavar="PROPOSAL_ID")
    vote.add_argument("choice", choices=("approve", "reject"))
    add_common(vote, key=True)
    vote.set_defaults(handler=run_vote)

    show = gs.add_parser("show", help="a proposal with its votes, or the recent ones",
                         epilog="Example: govledger gov show 12")
    show.add_argument("proposal_id", type=int, nargs="?", metavar="PROPOSAL_ID")
    show.add_argument("--limit", type=int, default=20, help="how many recent proposals")
    add_common(show)
    show.set_defaults(handler=run_show)

    kinds = gs.add_parser("kinds", help="the proposal kinds the network knows",
                          epilog="Example: govledger gov kinds")
    add_common(kinds)
    kinds.set_defaults(handler=run_kinds)


class _HelpWithKinds(argparse.Action):
    """``--help`` for ``gov propose``: the epilog lists the kinds from ``GET /v1/gov/kinds``."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        urls = Context.urls_of(NODE_HINT["node"])
        parser.epilog = f"{kinds_text(urls)}\n\n{PROPOSE_EXAMPLES}"
        parser.print_help()
        parser.exit()


def kinds_text(urls: list[str]) -> str:
    try:
        kinds = Client(urls, timeout=3, retries=1).get("/v1/gov/kinds")["kinds"]
    except (Unreachable, NodeError, KeyError, TypeError) as exc:
        return f"proposal kinds: (could not ask {', '.join(urls)}: {exc})"
    width = max((len(k["name"]) for k in kinds), default=0)
    lines = [f"  {k['name']:<{width}}  {k['summary']}" for k in kinds]
    return "proposal kinds (from " + urls[0] + "):\n" + "\n".join(lines)


# -- parameters -------------------------------------------------------------------------------


def parse_params(pairs: list[str], params_json: str | None = None) -> dict[str, Value]:
    """``name=value`` (string) and ``name:=json`` pairs over ``--params-json``; dotted names
    nest. UsageError says which argument is wrong."""
    params: dict[str, Value] = {}
    if params_json:
        loaded = _json(params_json, "--params-json")
        if not isinstance(loaded, dict):
            raise UsageError("--params-json must be a JSON object")
        params.update(loaded)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.rstrip(":"):
            raise UsageError(f"parameter {pair!r} is not name=value (or name:=json)")
        value: Value = text
        if name.endswith(":"):
            name = name[:-1]
            value = _json(text, name)
        path = name.split(".")
        if any(not part for part in path):
            raise UsageError(f"parameter name {name!r} has an empty part")
        target = params
        for part in path[:-1]:
            inner = target.setdefault(part, {})
            if not isinstance(inner, dict):
                raise UsageError(f"parameter {name!r} nests under {part!r}, which is a value")
            target = inner
        if path[-1] in target:
            raise UsageError(f"parameter {name!r} is given twice")
        target[path[-1]] = value
    return params


def _json(text: str, what: str) -> Value:
    def no_float(number: str) -> Value:
        raise UsageError(f"{what}: {number} is not an integer (amounts and settings are "
                         "integers)")

    try:
        value: Value = json.loads(text, parse_float=no_float)
    except ValueError as exc:
        raise UsageError(f"{what}: not valid JSON: {exc}") from None
    return value


# -- commands ---------------------------------------------------------------------------------


# Kinds that name a validator by its key, and the parameter that holds it: the CLI also
# takes name=<its node name> and looks the key up in the node's status.
VALIDATOR_KEY_PARAM = {"remove_validator": "public_key", "rotate_validator_key": "old_key"}


def _validator_by_name(client: Client, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    key_param = VALIDATOR_KEY_PARAM[kind]
    if "name" not in params or key_param in params:
        return params
    keys: dict[str, str] = client.status().get("validator_keys", {})
    name = params["name"]
    if name not in keys:
        raise UsageError(f"{kind}: no validator named {name!r}; the validators are "
                         f"{', '.join(sorted(keys)) or 'unknown to this node'}")
    rest = {k: v for k, v in params.items() if k != "name"}
    return {**rest, key_param: keys[name]}


def run_propose(args: argparse.Namespace, ctx: Context) -> int:
    params = parse_params(args.params, args.params_json)
    if not 0 < args.ttl_days <= 90:
        raise UsageError("--ttl-days must be more than 0 and at most 90")
    ttl_ms = max(60_000, int(args.ttl_days * DAY_MS))
    client = ctx.client(need_key=True)
    if args.kind in VALIDATOR_KEY_PARAM:
        params = _validator_by_name(client, args.kind, params)
    reply = client.submit(PROPOSE_TX, {"kind": args.kind, "params": params, "ttl_ms": ttl_ms})
    code = tx_outcome(ctx, reply, f"proposal ({args.kind})", extra=lambda d: {
        "proposal_id": d.get("proposal_id"), "proposal_status": d.get("status"),
        "expires": _time(d.get("expires_at")), "outcome": d.get("outcome") or None})
    if code == EXIT_OK and not ctx.json:
        ctx.console.print(f"  committee members vote with: govledger gov vote "
                          f"{reply['result']['data']['proposal_id']} approve --key …")
    return code


def run_vote(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client(need_key=True)
    reply = client.submit(VOTE_TX, {"proposal_id": args.proposal_id,
                                    "approve": args.choice == "approve"})
    return tx_outcome(ctx, reply, f"vote ({args.choice}) on proposal {args.proposal_id}",
                      extra=lambda d: {
                          "proposal_status": d.get("status"),
                          "approvals": f"{d.get('approvals')} of {d.get('needed')} needed",
                          "outcome": d.get("outcome") or None})


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    if args.proposal_id is None:
        if not 1 <= args.limit <= 500:
            raise UsageError("--limit must be from 1 to 500")
        listing = client.get("/v1/gov/proposals", {"limit": str(args.limit)})
        ctx.emit(listing, lambda: _show_list(ctx, listing))
        return EXIT_OK
    proposal = client.get(f"/v1/gov/proposals/{args.proposal_id}")
    ctx.emit(proposal, lambda: _show_one(ctx, client, proposal))
    return EXIT_OK


def run_kinds(args: argparse.Namespace, ctx: Context) -> int:
    kinds = ctx.client().get("/v1/gov/kinds")
    ctx.emit(kinds, lambda: ctx.table("proposal kinds", ["kind", "parameters and meaning"],
                                      [(k["name"], k["summary"]) for k in kinds["kinds"]]))
    return EXIT_OK


# -- rendering ----------------------------------------------------------------------------------


def _time(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(key: object) -> str:
    return f"{key[:12]}…{key[-6:]}" if isinstance(key, str) and len(key) > 20 else str(key)


def _compact(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else str(value)


def _show_list(ctx: Context, listing: dict[str, Any]) -> None:
    rows = [(p["id"], p["kind"], p["status"], f"{p['approvals']}/{p['needed']}",
             _time(p["expires_at"]), _compact(p["params"]))
            for p in listing["proposals"]]
    ctx.table(f"proposals (committee of {len(listing['committee'])}, "
              f"{listing['needed']} approvals pass)",
              ["id", "kind", "status", "approvals", "expires", "params"], rows)


def _show_one(ctx: Context, client: Client, p: dict[str, Any]) -> None:
    ctx.fields(f"proposal {p['id']}", [
        ("kind", p["kind"]), ("status", p["status"]),
        ("approvals", f"{p['approvals']} of {p['needed']} needed "
                      f"(committee of {p['committee_size']}), {p['rejections']} rejections"),
        ("params", _compact(p["params"])), ("proposer", _short(p["proposer"])),
        ("created at height", p["created_height"]), ("expires", _time(p["expires_at"])),
        ("closed at height", p["closed_height"]), ("reason", p["reason"]),
        ("outcome", _compact(p.get("outcome")))])
    rows = []
    for key, approve in sorted(p["votes"].items()):
        try:
            name = client.get(f"/v1/accounts/{key}")["name"]
        except NodeError:
            name = ""
        rows.append((name, _short(key), "approve" if approve else "reject"))
    ctx.table("votes", ["member", "key", "vote"], rows)
