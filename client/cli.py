"""The ``govledger`` command-line tool (also ``python -m client``).

Verbs: ``status``, ``keys``, ``gov``, ``org``, ``audit``; from the applications,
``cert`` and ``fund``; and ``import``, which loads either in bulk from CSV.
Every command takes ``--json`` for scripts; human output is aligned tables,
coloured where the terminal supports it.

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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from client.sdk import Client, NodeError, Unreachable
from ledger import software_version
from ledger.codec import to_json_value
from ledger.crypto import PrivateKey, load_private_key_file
from ledger.errors import GovledgerError
from ledger.privacy import CONSORTIUM_KEY_FILE, load_consortium_key

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
VERB_MODULES = ["status", "keys", "gov", "org", "audit", "cert", "fund", "import"]

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
        return self.urls_of(self.args.node)

    @staticmethod
    def urls_of(node: str | None) -> list[str]:
        """The node URLs from ``--node``, else $GOVLEDGER_NODE, else the local default."""
        raw = node or os.environ.get("GOVLEDGER_NODE") or "http://127.0.0.1:7700"
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


def add_common(parser: argparse.ArgumentParser, key: bool = False) -> None:
    """``--json`` (and ``--key``) after the command too; they never override the global ones
    when absent."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    if key:
        parser.add_argument("--key", default=argparse.SUPPRESS,
                            help="PEM private key that signs (e.g. a committee member's)")


def consortium_key(path: str | None, key_path: str | None, why: str) -> bytes:
    """The consortium key (HMACs of personal identifiers): ``path``, else
    ``consortium.key`` beside the signing key; UsageError saying ``why`` it is needed."""
    if path:
        chosen = Path(path)
    elif key_path:
        chosen = Path(key_path).parent / CONSORTIUM_KEY_FILE
    else:
        raise UsageError(f"{why}; give --consortium-key")
    if not chosen.exists():
        raise UsageError(f"{why}; {chosen} does not exist (give --consortium-key)")
    return load_consortium_key(chosen)


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


# The --node given on this command line, for help texts that ask the network (a command's
# own parser only sees its own arguments).
NODE_HINT: dict[str, str | None] = {"node": None}


class _RememberNode(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        NODE_HINT["node"] = str(values)


def build_parser() -> argparse.ArgumentParser:
    NODE_HINT["node"] = None
    parser = argparse.ArgumentParser(
        prog="govledger",
        description="Client for a govledger network: certificates, fund flows, audit, governance.",
        epilog="Example: govledger --node http://127.0.0.1:7700 status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--node", action=_RememberNode,
                        help="node URL(s), comma-separated for failover "
                             "(default $GOVLEDGER_NODE or http://127.0.0.1:7700)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--version", action="version", version=f"govledger {software_version()}")
    parser.add_argument("--key", help="PEM private key that signs (also accepted after the "
                                      "command)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"client.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"client.cmd_{name}":
                raise
            continue
        module.add_parser(sub)
    _raw_help(parser)
    return parser


def _raw_help(parser: argparse.ArgumentParser) -> None:
    """Every command's description and examples are printed as written (line breaks kept)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _raw_help(child)


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
