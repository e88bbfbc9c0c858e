"""``govledger status``: a node's view of the network."""

from __future__ import annotations

import argparse
from typing import Any

from client.cli import EXIT_OK, Context, add_common


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="node and network status",
                       description="Show a node's height, view, primary, peers and mempool.",
                       epilog="Example: govledger --node http://127.0.0.1:7701 status")
    add_common(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    st = ctx.client().status()
    rows = [(k, st.get(k)) for k in ("node", "chain_id", "suite", "height", "head_hash", "view",
                                     "primary", "in_view_change", "validators", "peers",
                                     "mempool", "stable_checkpoint", "view_changes",
                                     "version")]
    ctx.emit(st, lambda: ctx.fields(f"govledger node {st.get('node')}", rows))
    return EXIT_OK
