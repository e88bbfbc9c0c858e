"""The ``govledger`` command-line tool (also ``python -m client``).

Verbs: ``status``, ``keys``, ``gov``, ``org``, ``audit``, and — from their
applications — ``cert`` and ``fund``. Every command takes ``--json`` for
scripts; human output is aligned tables, coloured where the terminal
supports it.

Exit codes: 0 success / VALID, 1 INVALID or rejected, 2 usage or connection
error.

Each verb lives in its own module (``client/cmd_*.py``) exposing
``add_parser(subparsers)``; a command handler receives the parsed arguments
and a :class:`Context`, and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from client.sdk import Client, NodeError, Unreachable
from ledger.codec import to_json_value
from ledger.crypto import PrivateKey, load_private_key_file
from ledger.errors import GovledgerError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
VERB_MODULES = ["status", "keys", "gov", "org", "audit", "cert", "fund"]

Handler = Callable[[argparse.Namespace, "Context"], int]


class Context:
    """What a command needs: the nodes, an optional key, and output helpers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(args.json)
        self.console = Console(highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, highlight=False)
        self._client: Client | None = None

    @property
    def urls(self) -> list[str]:
        raw = self.args.node or os.environ.get("GOVLEDGER_NODE") or "http://127.0.0.1:7700"
        return [u.strip() for u in raw.split(",") if u.strip()]

    def key(self, required: bool = True) -> PrivateKey | None:
        path = getattr(self.args, "key", None)
        if not path:
            if required:
                raise UsageError("this command needs --key PATH (a PEM private key)")
            return None
        return load_private_key_file(path)

    def client(self, need_key: bool = False) -> Client:
        if self._client is None:
            self._client = Client(self.urls, key=self.key(required=need_key))
        return self._client

    # -- output -----------------------------------------------------------------------------

    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """JSON with --json (bytes as hex), else the human rendering (or pretty JSON)."""
        if self.json or human is None:
            print(json.dumps(to_json_value(data), ensure_ascii=False, indent=None if self.json
                             else 2))
        else:
            human()

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]
              ) -> None:
        t = Table(title=title, show_lines=False, header_style="bold")
        for c in columns:
            t.add_column(c, overflow="fold")
        for row in rows:
            t.add_row(*["" if v is None else str(v) for v in row])
        self.console.print(t)

    def fields(self, title: str | None, items: Sequence[tuple[str, Any]]) -> None:
        self.table(title, ["field", "value"], list(items))

    def ok(self, text: str) -> None:
        self.console.print(f"[green]✔[/green] {text}")

    def fail(self, text: str) -> None:
        self.console.print(f"[red]✘[/red] {text}")


class UsageError(Exception):
    """Bad arguments (exit 2)."""


def tx_outcome(ctx: Context, reply: dict[str, Any], what: str,
               extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> int:
    """Report a submitted transaction; exit 0 if committed and ok, 1 otherwise."""
    result = reply.get("result") or {}
    ok = reply.get("status") == "committed" and bool(result.get("ok"))
    data = {"tx_id": reply.get("tx_id"), "status": reply.get("status"),
            "height": reply.get("height"), "ok": ok, "code": result.get("code"),
            "reason": result.get("reason"), "data": result.get("data")}
    if extra is not None and ok:
        data.update(extra(result.get("data") or {}))

    def human() -> None:
        if ok:
            ctx.ok(f"{what}: committed at height {data['height']} (tx {str(data['tx_id'])[:16]}…)")
            for k, v in data.items():
                if k not in ("tx_id", "status", "height", "ok", "code", "reason", "data"):
                    ctx.console.print(f"  {k}: {v}")
        elif reply.get("status") != "committed":
            ctx.fail(f"{what}: not committed yet ({reply.get('detail', 'pending')})")
        else:
            ctx.fail(f"{what}: rejected — {result.get('reason')}")

    ctx.emit(data, human)
    return EXIT_OK if ok else EXIT_REJECTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govledger",
        description="Client for a govledger network: certificates, fund flows, audit, governance.",
        epilog="Example: govledger --node http://127.0.0.1:7700 status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--node", help="node URL(s), comma-separated for failover "
                                       "(default $GOVLEDGER_NODE or http://127.0.0.1:7700)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"client.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"client.cmd_{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None or not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    ctx = Context(args)
    try:
        code: int = args.handler(args, ctx)
        return code
    except UsageError as exc:
        ctx.err.print(f"[red]usage error:[/red] {exc}")
        return EXIT_USAGE
    except Unreachable as exc:
        ctx.err.print(f"[red]connection error:[/red] {exc}")
        return EXIT_USAGE
    except NodeError as exc:
        if ctx.json:
            print(json.dumps({"error": exc.code, "detail": exc.detail, "status": exc.status},
                             ensure_ascii=False))
        else:
            ctx.err.print(f"[red]refused ({exc.status} {exc.code}):[/red] {exc.detail}")
        return EXIT_USAGE if exc.status in (400, 404, 405, 413) else EXIT_REJECTED
    except GovledgerError as exc:
        ctx.err.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
