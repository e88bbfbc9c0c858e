"""``govledger audit``: red-flag alerts, the access log, payee data, whole-chain integrity.

Verbs:

- ``alerts [--rule RULE]`` — red-flag alerts, newest first (signed read: an auditor sees
  all, a finance officer those naming its organisation);
- ``access-log [--before CURSOR|HEIGHT]`` — who read what and when: every signed read,
  from the ledger, newest first, a page at a time (auditor);
- ``reveal PAYMENT_ID`` — open the payee data of a payment to a person, sealed to the
  audit office's key; decrypted here, with the auditor's private key (the read is logged);
- ``verify-chain --data DIR --genesis G`` — re-check every block of a node's data folder
  from the genesis file: links, Merkle roots, commit certificates, and the state by
  replaying every transaction; reports the first broken height. Needs no network; stop
  the node first (LevelDB allows one process) or work on a copy of its folder.
- ``verify-chain --genesis G --key K`` (no ``--data``) — the same checks over the blocks a
  node serves (``--node``), fetched 100 at a time: an auditor who runs no node verifies
  the whole ledger trusting the genesis file alone, not the node that served it. Blocks
  with fund flows or signed reads come in full only to an auditor's signed read.

Exit codes: 0 success (verify-chain: intact), 1 refused or broken, 2 usage or connection.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from client.cli import EXIT_OK, EXIT_REJECTED, Context, UsageError
from client.sdk import Client
from fiscal.model import check_flow_id
from fiscal.payee import open_payee
from fiscal.rules import RULES
from ledger.codec import Value
from ledger.errors import CorruptionError, CryptoError, DecodeError, InputError


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable output")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="alerts, access log, payee data, chain integrity",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Examples:\n  govledger audit alerts --key keys/sjj.pem\n"
                              "  govledger audit verify-chain --data govledger-demo/node0 "
                              "--genesis govledger-demo/genesis.json")
    aus = p.add_subparsers(dest="audit_cmd", metavar="COMMAND", required=True)

    q = aus.add_parser("alerts", help="red-flag alerts (signed read)",
                       epilog="Example: govledger audit alerts --rule split_payment "
                              "--key keys/sjj.pem")
    q.add_argument("--rule", choices=RULES)
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--before", type=int, help="only alerts with a smaller id (paging)")
    q.add_argument("--key", required=True, help="auditor (or finance officer) key")
    _json_flag(q)
    q.set_defaults(handler=run_alerts)

    q = aus.add_parser("access-log", help="the signed reads served (auditor; signed read)",
                       epilog="Example: govledger audit access-log --key keys/sjj.pem\n"
                              "         govledger audit access-log --before 1200 --key ...")
    q.add_argument("--limit", type=int, default=50, help="entries per page (at most 500)")
    q.add_argument("--before", help="older entries: the cursor the previous page printed, "
                                    "or a block height")
    q.add_argument("--key", required=True)
    _json_flag(q)
    q.set_defaults(handler=run_access_log)

    q = aus.add_parser("reveal", help="decrypt a payee's data sealed to your auditor key",
                       epilog="Example: govledger audit reveal PAYMENT_ID --key keys/sjj.pem")
    q.add_argument("payment_id", metavar="PAYMENT_ID")
    q.add_argument("--key", required=True, help="auditor key the data was sealed to")
    _json_flag(q)
    q.set_defaults(handler=run_reveal)

    q = aus.add_parser("verify-chain", help="re-verify the whole chain from genesis: a "
                                            "node's data folder, or what a node serves",
                       epilog="Examples: govledger audit verify-chain --data "
                              "govledger-demo/node0/data --genesis govledger-demo/genesis.json\n"
                              "  govledger --node http://127.0.0.1:7701 audit verify-chain "
                              "--genesis govledger-demo/genesis.json --key keys/sjj.pem",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--data", metavar="DIR",
                   help="the node's folder, its data folder, or the LevelDB folder; without "
                        "it every block is fetched from --node and verified here")
    q.add_argument("--genesis", required=True, metavar="FILE")
    q.add_argument("--key", default=argparse.SUPPRESS,
                   help="without --data: an auditor's key, for blocks that hold private "
                        "transactions (fund flows, signed reads), which nodes serve in full "
                        "only to an auditor's signed read (one per 100 blocks, logged)")
    _json_flag(q)
    q.set_defaults(handler=run_verify_chain)


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).astimezone(
        datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")


def run_alerts(args: argparse.Namespace, ctx: Context) -> int:
    query = {"limit": str(args.limit)}
    if args.rule:
        query["rule"] = args.rule
    if args.before:
        query["before"] = str(args.before)
    data = ctx.client(need_key=True).get("/v1/alerts", query, signed=True)
    ctx.emit(data, lambda: ctx.table(
        "red-flag alerts" + (f" ({args.rule})" if args.rule else ""),
        ["id", "rule", "height", "time (CST)", "why"],
        [(a["id"], a["rule"], a["height"], _when(a["time"]), a["why"])
         for a in data["alerts"]]))
    return EXIT_OK


def run_access_log(args: argparse.Namespace, ctx: Context) -> int:
    query = {"limit": str(args.limit)}
    if args.before:
        query["before"] = args.before
    data = ctx.client(need_key=True).get("/v1/access-log", query, signed=True)

    def human() -> None:
        ctx.table(
            "access log (newest first)", ["time (CST)", "height", "reader", "org", "request"],
            [(_when(e["time"]), e["height"], e["name"], e["org"],
              f"{e['method']} {e['path']}" + ("?" + "&".join(f"{k}={v}" for k, v in
                                                              sorted(e["query"].items()))
                                              if e["query"] else ""))
             for e in data["entries"]])
        if data.get("next"):
            ctx.console.print(f"older entries: --before {data['next']}")

    ctx.emit(data, human)
    return EXIT_OK


def run_reveal(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client(need_key=True)
    record = client.get(f"/v1/payments/{check_flow_id(args.payment_id)}", signed=True)
    key = client.key
    assert key is not None
    sealed: list[dict[str, Value]] = [
        {"to": bytes.fromhex(s["to"]), "box": bytes.fromhex(s["box"])}
        for s in record.get("sealed") or []]
    if not sealed:
        raise UsageError("this payment carries no sealed payee data (it is not to a person)")
    try:
        clear = open_payee(key, sealed)
    except CryptoError as exc:
        ctx.fail(f"cannot open the payee data: {exc}")
        return EXIT_REJECTED
    data = {"payment_id": args.payment_id, "amount": record["amount"], "from": record["from"],
            "payee": clear}
    ctx.emit(data, lambda: ctx.fields("payee (clear; do not copy further)",
                                      [(k, v) for k, v in clear.items()]))
    return EXIT_OK


class NodeBlocks:
    """The chain as a node serves it (``GET /v1/blocks?from=H&count=N`` in canonical
    msgpack, a range at a time), a :class:`ledger.chain.BlockSource` for
    :func:`ledger.chain.verify_blocks`. Nothing in it is trusted: every block is checked
    against the replay from the genesis file. Blocks with private transactions (fund
    flows, signed reads) come in full only to an auditor's signed read — one per range,
    so one access-log entry per RANGE blocks."""

    RANGE = 100

    def __init__(self, client: Client, signed: bool = False) -> None:
        self.client = client
        self.signed = signed
        self.parts: dict[int, tuple[Any, Any, Any]] = {}
        self.end = 0  # the heights in ``parts`` are [end - RANGE, end)

    def head_height(self) -> int:
        return int(self.client.status()["height"])

    def _fetch(self, height: int) -> tuple[Any, Any, Any] | None:
        from ledger.codec import decode_value

        if height in self.parts:
            return self.parts[height]
        if self.end - self.RANGE <= height < self.end:
            return None  # past the head when the range was read
        raw = self.client.get_bytes("/v1/blocks", {"from": str(height),
                                                   "count": str(self.RANGE)},
                                    signed=self.signed)
        value = decode_value(raw)
        listed = value.get("blocks") if isinstance(value, dict) else None
        if not isinstance(listed, list):
            raise DecodeError(f"from height {height}: the node's answer is not a list of "
                              "blocks")
        self.parts, self.end = {}, height + self.RANGE
        for i, block in enumerate(listed):
            self.parts[height + i] = self._parse(height + i, block)
        return self.parts.get(height)

    def _parse(self, height: int, value: object) -> tuple[Any, Any, Any]:
        from ledger.block import Block, BlockHeader, CommitCertificate, TxResult
        from ledger.codec import from_value
        from ledger.tx import Transaction

        listed = value.get("txs") if isinstance(value, dict) else None
        if not isinstance(value, dict) or not isinstance(listed, list):
            raise DecodeError(f"height {height}: the node's answer is not a block")
        if value.get("height") != height:
            raise DecodeError(f"the node answered block {value.get('height')!r} for {height}")
        if any(isinstance(t, dict) and t.get("redacted") for t in listed):
            raise UsageError(f"block {height} holds private transactions (fund flows, signed "
                             "reads) that nodes show only to an auditor: verify with an "
                             "auditor's key, --key PATH")
        header = from_value(BlockHeader, value.get("header"), f"block {height}.header")
        txs = [from_value(Transaction, {k: v for k, v in t.items() if k != "tx_id"}
                          if isinstance(t, dict) else t, f"block {height}.txs")
               for t in listed]
        results = from_value(list[TxResult], value.get("results"), f"block {height}.results")
        cert = value.get("certificate")
        certificate = None if cert is None else from_value(
            CommitCertificate, cert, f"block {height}.certificate")
        return Block(header, txs), certificate, results

    def get_block(self, height: int) -> Any:
        parts = self._fetch(height)
        return parts and parts[0]

    def get_header(self, height: int) -> Any:
        parts = self._fetch(height)
        return parts and parts[0].header

    def get_certificate(self, height: int) -> Any:
        parts = self._fetch(height)
        return parts and parts[1]

    def get_results(self, height: int) -> Any:
        parts = self._fetch(height)
        return parts and parts[2]


def run_verify_chain(args: argparse.Namespace, ctx: Context) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ledger.chain import ChainReport, verify_blocks, verify_chain
    from ledger.genesis import load_genesis
    from ledger.store import LevelDBStore
    from node import build_registry

    genesis = load_genesis(args.genesis)
    progress = Progress(TextColumn("verifying blocks"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                        console=ctx.err, disable=ctx.json, transient=True)

    def run(check: Any, head: int) -> ChainReport:
        with progress:
            task = progress.add_task("verify", total=max(head, 1))

            def step(height: int, head: int) -> None:
                progress.update(task, completed=height, total=head)

            report: ChainReport = check(step)
            return report

    if args.data is None:
        client = ctx.client()
        source = NodeBlocks(client, signed=client.key is not None)
        head = source.head_height()
        report = run(lambda step: verify_blocks(source, genesis, build_registry, step,
                                                head)[0], head)
        where = f"replayed state; blocks as {source.client.urls[0]} serves them"
    else:
        given = Path(args.data)
        if not given.is_dir():
            raise UsageError(f"no such folder: {given}")
        # The node's folder, its data folder, or the LevelDB folder itself.
        candidates = [given, given / "ledger", given / "data" / "ledger"]
        data_dir = next((d for d in candidates if (d / "CURRENT").exists()), None)
        if data_dir is None:
            raise UsageError(f"{given} is not a node's data folder (no LevelDB found in it, "
                             "its ledger/ or its data/ledger/)")
        try:
            store = LevelDBStore(str(data_dir), genesis.crypto, check=False)
        except InputError as exc:  # the node is running: LevelDB allows one process
            raise UsageError(f"{exc}; stop the node or copy its folder, or verify the blocks "
                             "it serves: leave out --data and give --node URL") from None
        except CorruptionError as exc:
            raise UsageError(f"{exc} (is the node still running? stop it, or copy the "
                             "folder)") from None
        try:
            head = store.head_height()
            report = run(lambda step: verify_chain(store, genesis, build_registry,
                                                   progress=step), head)
        finally:
            store.close()
        where = "replayed state, compared with the stored one"
    data = {"ok": report.ok, "head": head, "checked_height": report.checked_height,
            "broken_height": report.broken_height, "reason": report.reason}

    def human() -> None:
        if report.ok:
            ctx.ok(f"chain intact: {head} blocks re-verified from genesis "
                   f"(links, Merkle roots, commit certificates, {where})")
        else:
            ctx.fail(f"first broken height {report.broken_height}: {report.reason}")

    ctx.emit(data, human)
    return EXIT_OK if report.ok else EXIT_REJECTED
