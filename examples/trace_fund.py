"""Trace a fund with the SDK: its balance sheet, and where its money went.

Run against the demo network (``python node.py demo``)::

    python examples/trace_fund.py --node http://127.0.0.1:7700 --dir govledger-demo \\
        --tag FJ2026-ZD-0001

The balance sheet is public; the trail is a signed read, so it needs a key
with the auditor role (default: the audit office's key from
``DIR/keys/orgs.json``) and is written to the ledger's access log. Without
``--tag`` the oldest appropriation the node lists is traced. Amounts are
kept in fen (分) by the ledger and shown in yuan. Exit code 0 on success,
2 on a usage or connection error or a refusal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client import Client, NodeError, Unreachable
from ledger.crypto import load_private_key_file
from ledger.errors import GovledgerError
from ledger.genesis import load_genesis
from ledger.network import load_orgs


def yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="http://127.0.0.1:7700",
                        help="node URL(s), comma-separated for failover")
    parser.add_argument("--dir", default="govledger-demo", help="the network folder")
    parser.add_argument("--tag", help="fund tag (default: the oldest appropriation listed)")
    parser.add_argument("--key", help="PEM key of an auditor (default: from orgs.json)")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    try:
        suite = load_genesis(directory / "genesis.json").suite
        path = Path(args.key) if args.key else directory / next(
            o["key"] for o in load_orgs(directory) if "auditor" in o["roles"])
        key = load_private_key_file(path, suite)
    except (GovledgerError, StopIteration) as exc:
        print(f"error: {exc or 'no auditor in orgs.json'}", file=sys.stderr)
        return 2
    client = Client(args.node.split(","), key=key)
    try:
        tag = args.tag
        if tag is None:
            funds = client.funds(limit=100)
            if not funds:
                print("error: the ledger has no funds yet", file=sys.stderr)
                return 2
            tag = funds[-1].tag
        sheet = client.fund_balance(tag)
        trail = client.fund_trail(tag)
    except (NodeError, Unreachable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top = sheet.fund
    print(f"fund {top.tag}: {top.project} ({top.doc_no}, {top.year}"
          f"{', 直达资金' if top.direct else ''})")
    print(f"  held by {top.holder_name}, received {yuan(top.received)}, balance "
          f"{yuan(top.balance)}")
    print("\nbalance sheet")
    width = max(2 * row.depth + len(row.tag) for row in sheet.rows)
    for row in sheet.rows:
        print(f"  {'  ' * row.depth}{row.tag:<{width - 2 * row.depth}}  {row.holder_name}: "
              f"received {yuan(row.received)}, balance {yuan(row.balance)}, "
              f"spent {row.progress}")
    print("\nwhere the money went")
    for edge in trail.edges:
        if edge.kind != "PAYMENT":
            print(f"  {edge.kind.lower():<13} {edge.source} → {edge.target}: "
                  f"{yuan(edge.amount)}")
    for payee in trail.payees:
        who = payee.name or ""
        ident = payee.uscc or payee.id_masked or ""
        print(f"  paid          {who} {ident}: {yuan(payee.amount)} in {payee.count} "
              f"payment(s)")
    if trail.totals is not None:
        t = trail.totals
        print(f"\n{t.funds} fund(s), {t.flows} flow(s); {yuan(t.paid_to_payees)} paid to "
              f"{t.payees} payee(s){' (truncated)' if trail.truncated else ''}")
    print("(the trail was a signed read by the auditor: it is in the access log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
