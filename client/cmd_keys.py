"""``govledger keys``: create and inspect key files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from client.cli import EXIT_OK, EXIT_USAGE, Context, UsageError, add_common
from ledger.crypto import SUITE_NAMES, get_suite, load_private_key_file


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="create and inspect key files",
                       epilog="Examples:\n  govledger keys new 审计局-张三 --dir ./keys\n"
                              "  govledger keys show ./keys/审计局-张三.pem",
                       description="Key files are PKCS#8 PEM; set GOVLEDGER_KEY_PASSPHRASE to "
                                   "encrypt new keys and read encrypted ones.")
    ks = p.add_subparsers(dest="keys_cmd", metavar="COMMAND", required=True)
    new = ks.add_parser("new", help="create a key pair",
                        epilog="Example: govledger keys new 审计局-张三 --dir ./keys")
    new.add_argument("name", help="file name stem for NAME.pem and NAME.pub.pem")
    new.add_argument("--dir", default=".", help="folder to write into")
    new.add_argument("--suite", choices=SUITE_NAMES, default="sm")
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    add_common(new)
    new.set_defaults(handler=run_new)
    show = ks.add_parser("show", help="show a key's public key (raw hex) and suite",
                         epilog="Example: govledger keys show ./keys/scjgj.pem")
    show.add_argument("path")
    add_common(show)
    show.set_defaults(handler=run_show)


def run_new(args: argparse.Namespace, ctx: Context) -> int:
    if not args.name or "/" in args.name or "\\" in args.name or args.name.startswith("."):
        raise UsageError(f"NAME {args.name!r} must be a plain file name stem (no folders)")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{args.name}.pem", folder / f"{args.name}.pub.pem"
    if not args.force and (private.exists() or public.exists()):
        raise UsageError(f"{private} or {public} exists; use --force to overwrite")
    key = get_suite(args.suite).generate_key()
    passphrase = os.environ.get("GOVLEDGER_KEY_PASSPHRASE")
    key.save(private, passphrase.encode() if passphrase else None)
    key.public_key().save(public)
    data = {"private_key": str(private), "public_key_file": str(public), "suite": args.suite,
            "public_key": key.public_key().raw, "encrypted": bool(passphrase)}
    ctx.emit(data, lambda: ctx.fields("new key", list(data.items())))
    return EXIT_OK


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    if not Path(args.path).exists():
        raise UsageError(f"no such file: {args.path}")
    key = load_private_key_file(args.path)
    data = {"path": args.path, "suite": key.suite.name, "public_key": key.public_key().raw}
    ctx.emit(data, lambda: ctx.fields("key", list(data.items())))
    return EXIT_OK if data else EXIT_USAGE
