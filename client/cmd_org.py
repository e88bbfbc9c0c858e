"""``govledger org``: the organisations registry (departments and enterprises)."""

from __future__ import annotations

import argparse
from typing import Any

from client.cli import EXIT_OK, Context, add_common
from ledger.ids import validate_uscc


def add_parser(sub: Any) -> None:
    p = sub.add_parser("org", help="registered organisations",
                       epilog="Examples:\n  govledger org list\n  govledger org show "
                              "11350100MB1F000149",
                       description="Organisations of the consortium: name, USCC, kind, region "
                                   "and their keys with roles.")
    os_ = p.add_subparsers(dest="org_cmd", metavar="COMMAND", required=True)
    lst = os_.add_parser("list", help="every registered organisation",
                         epilog="Example: govledger org list")
    add_common(lst)
    lst.set_defaults(handler=run_list)
    show = os_.add_parser("show", help="one organisation with its keys and roles",
                          epilog="Example: govledger org show 11350100MB1F000149")
    show.add_argument("uscc", metavar="USCC")
    add_common(show)
    show.set_defaults(handler=run_show)


def _roles(org: dict[str, Any]) -> str:
    roles = sorted({r for a in org["accounts"] if a["revoked_at"] is None for r in a["roles"]})
    return ", ".join(roles)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    orgs = ctx.client().get("/v1/orgs")
    rows = [(o["name"], o["uscc"], o["kind"], o["region"], len(o["accounts"]), _roles(o))
            for o in orgs["orgs"]]
    ctx.emit(orgs, lambda: ctx.table(f"organisations ({len(rows)})",
                                     ["name", "USCC", "kind", "region", "keys", "roles"], rows))
    return EXIT_OK


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    org = ctx.client().get(f"/v1/orgs/{validate_uscc(args.uscc.strip().upper())}")

    def human() -> None:
        ctx.fields(org["name"], [("USCC", org["uscc"]), ("kind", org["kind"]),
                                 ("region", org["region"])])
        rows = []
        for a in org["accounts"]:
            state = (f"revoked at height {a['revoked_at']}" if a["revoked_at"] is not None
                     else f"valid from height {a['valid_from']}" if a.get("valid_from")
                     else "valid")
            rows.append((a["name"], a["public_key"], ", ".join(a["roles"]), state))
        ctx.table("keys", ["name", "public key", "roles", "state"], rows)

    ctx.emit(org, human)
    return EXIT_OK
