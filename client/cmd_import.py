"""``govledger import``: load certificates or fund flows in bulk from a CSV file.

  govledger import certs FILE.csv --key ISSUER.pem [--out-dir DIR] [--dry-run]
  govledger import flows FILE.csv --key FINANCE_OFFICER.pem [--dry-run]

Every row is validated first, all of them, before anything is signed: the
columns, identifiers (USCC and citizen ID check characters), dates and
amounts (fen as a whole number, or yuan with at most 2 decimals), and for
certificates the type's schema and the issuer's authorisation as registered
on the ledger. Then the valid rows are signed with --key and submitted in
file order with up to --in-flight transactions awaiting their block at once,
so a thousand rows take a few blocks, not a thousand. Certificates are
independent of each other; a flow that moves money out of a fund waits for
the rows before it that create or fill that fund.

The report gives the number of rows submitted, committed and rejected, and
one line per rejected row with its line number and reason — whether it
failed validation here, was refused by the node, or failed on the ledger
(e.g. a payment above the fund's balance). --dry-run validates only (for
certificates it also says which rows name a certificate already on the ledger).

Importing a flows file again is safe for the rows that carry a voucher number
(凭证号): the ledger records each voucher of an organisation once, so a row
already recorded — by an earlier run cut short, or one that finished — is
refused by the node (or, if recorded meanwhile, by the ledger); the import then
looks the voucher up and reports the row as "already recorded" with its flow.
Rows without a voucher cannot be told apart from new flows.

Importing a certs file again is safe too. A row without a serial gets one
derived from its cells (``client.importing.default_serial``), so the same row
names the same certificate identifier in every run, and the ledger issues an
identifier once. Each signed document is written to ``--out-dir/pending/``
before its transaction is sent and moved to ``--out-dir/CERT_ID.json`` — the
file the holder needs for verification — once the certificate is committed.
A run cut short leaves the documents it may have sent in ``pending/``; the next
run sends those same documents again (not newly signed ones), so whichever
transaction commits, the document on disk is the one the ledger anchors, and a
certificate found on the ledger already is reported as "already issued" with
its document.

Exit codes: 0 every row committed or already recorded (--dry-run: every row
valid), 1 a row was rejected, 2 usage or connection error (the report says what
was sent).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from certs.document import Document, DocumentError, parse_document
from certs.handlers import ISSUE_TX
from certs.ids import IdentifierError
from certs.issuing import Issuer, cert_type_from_view, issue_payload, new_document
from certs.records import NATURAL_PERSON, cst_date
from client.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, Context, UsageError, consortium_key
from client.cmd_cert import issuer_for
from client.cmd_fund import person_fields, seal_keys
from client.importing import (
    CERT_COLUMNS_HELP,
    FLOW_COLUMNS_HELP,
    CertRow,
    CsvError,
    FlowRow,
    Rejected,
    RowError,
    Table,
    default_serial,
    parse_cert_rows,
    parse_flow_rows,
    read_table,
)
from client.sdk import Client, NodeError, Unreachable
from ledger.codec import Value
from ledger.crypto import PrivateKey, Suite
from ledger.crypto.base import write_file_atomic

IN_FLIGHT_DEFAULT: Final = 100
IN_FLIGHT_MAX: Final = 400  # the nodes' default per-sender burst
VALID_MS: Final = 300_000  # a transaction not committed by then never will be
POLL_S: Final = 0.1
BLOCKS_PER_READ: Final = 100  # the node's largest range (ledger.api.BLOCKS_PER_REQUEST)
BACKOFF_MAX_S: Final = 2.0
BUSY_RETRIES_MAX: Final = 60
RECORDED_SHOWN: Final = 20  # rows listed as already recorded in the human report
ONE_DAY: Final = timedelta(days=1)
PENDING_DIR: Final = "pending"  # under --out-dir: documents sent, not yet seen committed

CERTS_EXAMPLE = ("Example: govledger import certs examples/data/certs.csv --key "
                 "govledger-demo/keys/scjgj.pem --out-dir issued/")
FLOWS_EXAMPLE = ("Example: govledger import flows examples/data/flows.csv --key "
                 "govledger-demo/keys/czj.pem --dry-run")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="bulk-load certificates or fund flows from a CSV file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=f"{CERTS_EXAMPLE}\n{FLOWS_EXAMPLE}")
    isub = p.add_subparsers(dest="import_cmd", metavar="WHAT", required=True)
    q = isub.add_parser("certs", help="issue certificates, one per row",
                        description=CERT_COLUMNS_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=CERTS_EXAMPLE)
    _common(q, "issuer private key (PEM): every row is issued by its organisation")
    q.add_argument("--out-dir", metavar="DIR", help="folder for the signed documents "
                                                    "(default: ./<FILE stem>-documents)")
    q.set_defaults(handler=run_certs)
    q = isub.add_parser("flows", help="record appropriations, allocations, payments, returns",
                        description=FLOW_COLUMNS_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=FLOWS_EXAMPLE)
    _common(q, "finance officer key (PEM) of the organisation holding the funds")
    q.set_defaults(handler=run_flows)


def _common(q: argparse.ArgumentParser, key_help: str) -> None:
    q.add_argument("file", metavar="FILE.csv")
    q.add_argument("--key", required=True, help=key_help)
    q.add_argument("--dry-run", action="store_true",
                   help="validate every row; sign and send nothing")
    q.add_argument("--encoding", default="auto",
                   help="the file's encoding (default: UTF-8, with or without BOM, or UTF-16 "
                        "with BOM; e.g. gbk for Excel's CSV on Chinese Windows)")
    q.add_argument("--in-flight", type=int, default=IN_FLIGHT_DEFAULT, metavar="N",
                   help=f"transactions awaiting their block at once (1-{IN_FLIGHT_MAX}, "
                        f"default {IN_FLIGHT_DEFAULT})")
    q.add_argument("--consortium-key", help="for citizen-ID holders or payees (default: "
                                            "consortium.key beside --key)")
    q.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable output")


# -- the report ---------------------------------------------------------------------------------


@dataclass
class Report:
    """What happened to every row; printed at the end, also after a lost connection."""

    kind: str  # "certs" or "flows"
    file: str
    dry_run: bool
    rows: int
    valid: int = 0
    submitted: int = 0
    committed: list[dict[str, Value]] = field(default_factory=list)
    recorded: list[dict[str, Value]] = field(default_factory=list)  # by an earlier import
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def alerts(self) -> int:
        """Red-flag alerts the committed flows raised."""
        return sum(a for e in self.committed if isinstance(a := e.get("alerts"), int))

    @property
    def ok(self) -> bool:
        if self.dry_run:
            return not self.rejected
        return len(self.committed) + len(self.recorded) == self.rows

    def to_json(self) -> dict[str, Value]:
        rejected = sorted(self.rejected, key=lambda r: r.line)
        return {"import": self.kind, "file": self.file, "dry_run": self.dry_run,
                "rows": self.rows, "valid": self.valid, "submitted": self.submitted,
                "committed": len(self.committed), "rejected": len(self.rejected),
                "recorded": len(self.recorded),
                "rejected_rows": [r.to_json() for r in rejected],
                "committed_rows": list[Value](self.committed),
                "recorded_rows": list[Value](self.recorded),
                "warnings": list[Value](self.warnings), **self.extra,
                **({"alerts": self.alerts} if self.kind == "flows" else {})}

    def show(self, ctx: Context) -> None:
        if ctx.json:
            ctx.emit(self.to_json())
            return
        name = Path(self.file).name
        if self.dry_run:
            head = (f"{name}: {self.valid} of {self.rows} rows valid, {len(self.rejected)} "
                    "invalid (dry run: nothing signed or sent)")
        else:
            head = (f"{name}: {self.rows} rows — {self.submitted} submitted, "
                    f"{len(self.committed)} committed, {len(self.rejected)} rejected")
            if self.recorded:
                head += f", {len(self.recorded)} already recorded"
        mark = "[green]✔[/green]" if self.ok else "[red]✘[/red]"
        ctx.console.print(f"{mark} {escape(head)}", soft_wrap=True)
        for text in self.warnings:
            ctx.console.print(f"  [yellow]note:[/yellow] {escape(text)}", soft_wrap=True)
        for k, v in self.extra.items():
            ctx.console.print(f"  {k.replace('_', ' ')}: {v}", soft_wrap=True, markup=False)
        if self.alerts:
            ctx.console.print(f"  red-flag alerts raised: {self.alerts} (govledger audit "
                              "alerts --key AUDITOR.pem)", soft_wrap=True, markup=False)
        if self.recorded:
            ctx.console.print("already on the ledger (not recorded again):", style="bold")
            recorded = sorted(self.recorded, key=lambda e: int(str(e["line"])))
            for e in recorded[:RECORDED_SHOWN]:
                ctx.console.print(_recorded_text(e), soft_wrap=True, markup=False,
                                  highlight=False)
            if len(recorded) > RECORDED_SHOWN:
                ctx.console.print(f"… and {len(recorded) - RECORDED_SHOWN} more (--json lists "
                                  "every row)", markup=False, highlight=False)
        if self.rejected:
            ctx.console.print("rejected rows:", style="bold")
            for r in sorted(self.rejected, key=lambda r: r.line):
                ctx.console.print(r.text(), soft_wrap=True, markup=False, highlight=False)


def _recorded_text(entry: dict[str, Value]) -> str:
    e = {k: str(v) for k, v in entry.items()}
    if "voucher" in e:
        return (f"line {e['line']}: voucher {e['voucher']} — flow {e['flow_id']} at height "
                f"{e['height']}")
    return (f"line {e['line']}: certificate {e['cert_id']} — issued at height {e['height']}; "
            f"document {e['document']}")


# -- submitting ---------------------------------------------------------------------------------


@dataclass
class Job:
    """One validated row to sign and submit."""

    line: int
    what: str
    tx_type: str
    payload: dict[str, Value]
    source: str | None = None  # the fund the money leaves (flows)
    fills: Callable[[str], bool] | None = None  # may create or fill that fund (flows)
    on_commit: Callable[[dict[str, Any]], dict[str, Value]] | None = None
    # Asked when the node or the ledger refuses the row: its report entry if an earlier
    # run put it on the ledger, a reason if something else holds its place, else None.
    already: Callable[[], dict[str, Value] | str | None] | None = None
    before_submit: Callable[[], None] | None = None
    on_reject: Callable[[], None] | None = None  # refused, and not on the ledger


@dataclass
class _Sent:
    job: Job
    tx_id: str
    deadline: float


class Pipeline:
    """Submit jobs in order with at most ``in_flight`` awaiting their block; collect results.

    A job waits while an earlier job still in flight ``fills`` its ``source``. Results
    are read a range of blocks at a time (``GET /v1/blocks?from=&count=``, a signed read
    while fund flows are in flight: their results are private), each block settling
    every transaction of ours it holds. Rate limiting (429) and a busy node (503) back off and
    retry. A connection lost for good raises :class:`Unreachable` after the report has
    recorded what is unconfirmed.
    """

    def __init__(self, client: Client, report: Report, in_flight: int,
                 on_done: Callable[[], None]) -> None:
        assert client.key is not None
        self.client, self.key, self.report = client, client.key, report
        self.in_flight, self.on_done = in_flight, on_done
        self.sent: OrderedDict[str, _Sent] = OrderedDict()
        self.backoff_until = 0.0
        self.busy = 0
        self.seen = 0  # the last block height read

    def run(self, jobs: list[Job]) -> None:
        pending = deque(jobs)
        try:
            self.seen = int(self.client.status()["height"])
            while pending or self.sent:
                while pending and len(self.sent) < self.in_flight and (
                        time.monotonic() >= self.backoff_until):
                    job = pending[0]
                    if self._blocked(job) or not self._submit(job):
                        break
                    pending.popleft()
                if self.sent:
                    if not self._poll():
                        time.sleep(POLL_S)
                elif pending:
                    time.sleep(max(0.0, self.backoff_until - time.monotonic()))
        except Unreachable:
            for sent in self.sent.values():
                self.report.rejected.append(Rejected(
                    sent.job.line, "unconfirmed", sent.job.what,
                    f"submitted as transaction {sent.tx_id} but no node answered to confirm "
                    f"it; check with GET /v1/tx/{sent.tx_id}"))
            for job in pending:
                self.report.rejected.append(Rejected(job.line, "not submitted", job.what,
                                                     "the connection was lost first"))
            raise

    def _blocked(self, job: Job) -> bool:
        source = job.source
        return source is not None and any(
            s.job.fills is not None and s.job.fills(source) for s in self.sent.values())

    def _submit(self, job: Job) -> bool:
        """Submit ``job``; False if the node asks us to slow down (try again later)."""
        tx = self.client.make(job.tx_type, job.payload, valid_ms=VALID_MS)
        tx_id = tx.tx_id(self.key.suite).hex()
        if job.before_submit is not None:
            job.before_submit()
        try:
            self.client.submit_tx(tx, wait=False)
        except NodeError as exc:
            if exc.status == 429 or (exc.status == 503 and exc.code == "busy"):
                self.busy += 1
                if self.busy > BUSY_RETRIES_MAX:
                    self._reject(job, "admission", f"{exc.code}: {exc.detail}")
                    return True
                self.backoff_until = time.monotonic() + min(BACKOFF_MAX_S, 0.05 * self.busy)
                return False
            if exc.status == 403 and self._recorded(job, "admission"):
                return True
            if not (exc.status == 409 and exc.code == "duplicate"):  # 409: a retry got there
                self._reject(job, "admission", f"refused by the node ({exc.status} "
                                               f"{exc.code}): {exc.detail}")
                return True
        self.busy = 0
        self.report.submitted += 1
        self.sent[tx_id] = _Sent(job, tx_id, time.monotonic() + VALID_MS / 1000 + 5)
        return True

    def _poll(self) -> bool:
        """Read the blocks appended since the last look and settle the transactions in
        flight that they hold (one request per block, not per transaction); reject those
        whose validity has run out. False if nothing was settled."""
        progressed = False
        head = int(self.client.status()["height"])
        while self.seen < head and self.sent:
            # Fund flows are private (ledger.api): their results come whole only to a
            # signed read by their organisation's finance officer — one per range read.
            signed = any(sent.job.tx_type.startswith("fiscal.") for sent in self.sent.values())
            blocks = self.client.get("/v1/blocks", {"from": str(self.seen + 1),
                                                    "count": str(BLOCKS_PER_READ)},
                                     signed=signed)["blocks"]
            if not blocks:
                break  # a node behind the one that gave the head
            for block in blocks:
                self.seen = int(block["height"])
                for tx, result in zip(block["txs"], block["results"], strict=True):
                    sent = self.sent.pop(tx["tx_id"], None)
                    if sent is not None:
                        self._committed(sent.job, sent.tx_id, {"height": self.seen,
                                                               "result": result})
                        progressed = True
        now = time.monotonic()
        for tx_id in [t for t, s in self.sent.items() if now > s.deadline]:
            self._reject(self.sent.pop(tx_id).job, "ledger", f"transaction {tx_id} was not "
                         "committed before it expired", final=False)
            progressed = True
        return progressed

    def _committed(self, job: Job, tx_id: str, reply: dict[str, Any]) -> None:
        result = reply.get("result") or {}
        if not result.get("ok") and self._recorded(job, "ledger"):
            return
        if not result.get("ok"):
            self._reject(job, "ledger", str(result.get("reason") or result.get("code")))
            return
        entry: dict[str, Value] = {"line": job.line, "tx_id": tx_id,
                                   "height": reply.get("height")}
        if job.on_commit is not None:
            entry.update(job.on_commit(result.get("data") or {}))
        self.report.committed.append(entry)
        self.on_done()

    def _recorded(self, job: Job, stage: str) -> bool:
        """Whether the row the node or the ledger refused is on the ledger already (its
        voucher, its certificate): reported as recorded, or rejected with the reason
        :attr:`Job.already` gives when something else holds its place."""
        found = job.already() if job.already is not None else None
        if found is None:
            return False
        if isinstance(found, str):
            self._reject(job, stage, found)
        else:
            self.report.recorded.append(found)
            self.on_done()
        return True

    def _reject(self, job: Job, stage: str, reason: str, final: bool = True) -> None:
        """Report ``job`` rejected; ``final``: its transaction is known never to commit."""
        if final and job.on_reject is not None:
            job.on_reject()
        self.report.rejected.append(Rejected(job.line, stage, job.what, reason))
        self.on_done()


def _submit_all(ctx: Context, client: Client, report: Report, jobs: list[Job],
                in_flight: int) -> int:
    """Run the pipeline under a progress bar (stderr, interactive only); print the report."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=ctx.err, transient=True,
                  disable=ctx.json or not ctx.err.is_terminal) as progress:
        task = progress.add_task(f"importing {len(jobs)} rows", total=len(jobs))

        def done() -> None:
            progress.update(task, advance=1, description=(
                f"{len(report.committed)} committed, {len(report.rejected)} rejected"))

        try:
            Pipeline(client, report, in_flight, done).run(jobs)
        except Unreachable as exc:
            report.warnings.append(f"connection lost: {exc}")
            lost = True
        else:
            lost = False
    report.show(ctx)
    if lost:
        return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_REJECTED


# -- shared steps -------------------------------------------------------------------------------


def found(client: Client, path: str, query: dict[str, str] | None = None
          ) -> dict[str, Any] | None:
    """``GET path`` from the node, or None if it has no such thing (404)."""
    try:
        value: dict[str, Any] = client.get(path, query)
    except NodeError as exc:
        if exc.status != 404:
            raise
        return None
    return value


def _load(args: argparse.Namespace) -> Table:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return read_table(data, str(path), args.encoding)
    except CsvError as exc:
        raise UsageError(str(exc)) from None


def _today() -> str:
    return cst_date(int(time.time() * 1000)).isoformat()


def _check_in_flight(args: argparse.Namespace) -> None:
    if not 1 <= args.in_flight <= IN_FLIGHT_MAX:
        raise UsageError(f"--in-flight must be from 1 to {IN_FLIGHT_MAX}")


# -- certificates -------------------------------------------------------------------------------


class _Types:
    """Certificate type views from the ledger, fetched once each (None: not registered)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.views: dict[str, dict[str, Any] | None] = {}

    def get(self, code: str) -> dict[str, Any] | None:
        if code not in self.views:
            self.views[code] = found(self.client, f"/v1/certs/types/{code}")
        return self.views[code]


def prepare_cert(row: CertRow, key: PrivateKey, issuer: Issuer, view: dict[str, Any] | None,
                 serial: str, consortium: bytes | None) -> tuple[Document, dict[str, Value]]:
    """The signed document and the issue payload of a row; RowError if the ledger's schema
    for the type or the issuer's authorisation rules it out."""
    doc = sign_row(row, key, issuer, view, serial)
    return doc, issue_payload(key.suite, doc, consortium)


def sign_row(row: CertRow, key: PrivateKey, issuer: Issuer, view: dict[str, Any] | None,
             serial: str) -> Document:
    """The signed document of a row (see :func:`prepare_cert`)."""
    if view is None:
        raise RowError(f"certificate type {row.type_code} is not registered on this network")
    if not any(i["uscc"] == issuer.uscc and i["current"] for i in view.get("issuers", [])):
        raise RowError(f"{issuer.name} ({issuer.uscc}) is not authorised to issue "
                       f"{view['name']} ({row.type_code})")
    try:
        doc = new_document(key, cert_type_from_view(view), issuer, serial=serial,
                           holder_name=row.holder_name, holder_code=row.holder_code,
                           holder_code_type=row.holder_code_type, valid_from=row.valid_from,
                           valid_until=row.valid_until, issue_date=row.issue_date,
                           extra=row.extra, number=row.number)
    except (DocumentError, IdentifierError) as exc:
        raise RowError(str(exc)) from None
    return doc


def _cert_jobs(args: argparse.Namespace, client: Client, rows: list[CertRow], report: Report,
               out_dir: Path) -> list[Job]:
    key = client.key
    assert key is not None
    issuer, types = issuer_for(client), _Types(client)
    consortium = None
    if any(r.holder_code_type == NATURAL_PERSON for r in rows):
        consortium = consortium_key(args.consortium_key, args.key,
                                    "rows with a citizen ID holder need the consortium key "
                                    "(the ledger stores the HMAC of the number)")
    jobs = []
    for row in rows:
        serial = row.serial or default_serial(row, issuer.uscc)
        try:
            doc, payload = prepare_cert(row, key, issuer, types.get(row.type_code), serial,
                                        consortium)
        except RowError as exc:
            report.rejected.append(Rejected(row.line, "validation", row.what, str(exc)))
            continue
        files = DocumentFiles(out_dir, doc.cert_id, key.suite, doc)
        kept = files.kept(row.issue_date_given)
        if kept is not None:  # signed by an earlier run, which may have sent it
            files.doc, payload = kept, issue_payload(key.suite, kept, consortium)
        if not row.issue_date_given:
            files.dated = partial(_dated, row, key, issuer, types.get(row.type_code), serial)
        jobs.append(Job(row.line, f"{doc.certificate['name']} {doc.cert_id} for "
                                  f"{row.holder_name}", ISSUE_TX, payload,
                        on_commit=files.committed,
                        already=partial(files.already, client, row.line),
                        before_submit=files.pending, on_reject=files.drop_pending))
    return jobs


def _dated(row: CertRow, key: PrivateKey, issuer: Issuer, view: dict[str, Any] | None,
           serial: str, issue_date: str) -> Document:
    return sign_row(replace(row, issue_date=issue_date), key, issuer, view, serial)


class DocumentFiles:
    """Where one certificate's signed document lives in --out-dir while it is imported:
    ``pending/CERT_ID.json`` from just before its transaction is sent until the
    certificate is seen on the ledger, then ``CERT_ID.json``."""

    def __init__(self, out_dir: Path, cert_id: str, suite: Suite, doc: Document) -> None:
        self.final = out_dir / f"{cert_id}.json"
        self.pending_path = out_dir / PENDING_DIR / f"{cert_id}.json"
        self.cert_id, self.suite, self.doc = cert_id, suite, doc
        # The row's document signed with another issue date (rows that leave it to default).
        self.dated: Callable[[str], Document] | None = None

    def kept(self, issue_date_given: bool) -> Document | None:
        """The document an earlier run signed for the same certificate as this one — alike
        in every field (the issue date aside, unless the row gives it) and signed by the
        same key — from --out-dir or its pending folder; None if there is none."""
        for path in (self.final, self.pending_path):
            try:
                old = parse_document(path.read_bytes())
            except (OSError, DocumentError):
                continue
            fresh = self.doc
            a, b = dict(old.certificate), dict(fresh.certificate)
            if not issue_date_given:
                a.pop("issue_date", None)
                b.pop("issue_date", None)
            if (a == b and old.extra == fresh.extra and old.signer == fresh.signer
                    and old.suite == fresh.suite and old.signature_ok(self.suite)):
                return old
        return None

    def _write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(path, self.doc.to_json().encode("utf-8") + b"\n", 0o644)

    def pending(self) -> None:
        """Before the transaction is sent: a run cut short from here on keeps the document."""
        if not self.final.exists():
            self._write(self.pending_path)

    def drop_pending(self) -> None:
        """Its fate is known: the pending copy goes (and the pending folder once empty)."""
        self.pending_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: other documents still wait there
            self.pending_path.parent.rmdir()

    def committed(self, _: dict[str, Any] | None = None) -> dict[str, Value]:
        self._write(self.final)
        self.drop_pending()
        return {"cert_id": self.cert_id, "document": str(self.final)}

    def already(self, client: Client, line: int) -> dict[str, Value] | str | None:
        """The certificate on the ledger: this row's (an earlier run issued it — its report
        entry), one with other contents (the reason), or none (None).

        The ledger anchors the digest of the document's contents, not of its signature, so
        when the earlier run's document is gone the row's document is signed again: with
        the issue date the row gives, or else with the day the ledger issued it or the
        day before (a document is signed before it is sent).
        """
        record = found(client, f"/v1/certs/{self.cert_id}")
        if record is None:
            return None
        digest = str(record.get("digest", "")).lower()
        docs = [self.doc]
        if self.dated is not None and isinstance(record.get("issued_time"), int):
            day = cst_date(record["issued_time"])
            for d in (day, day - ONE_DAY):
                with contextlib.suppress(RowError):
                    docs.append(self.dated(d.isoformat()))
        for doc in docs:
            if doc.digest(self.suite).hex() == digest:
                self.doc = doc
                return {"line": line, **self.committed(), "height": record.get("issued_height")}
        return (f"certificate {self.cert_id} is already on the ledger, for a document whose "
                f"contents differ from this row's (was the row changed after it was "
                f"issued? its signed document may be in the --out-dir of that import)")


def run_certs(args: argparse.Namespace, ctx: Context) -> int:
    _check_in_flight(args)
    table = _load(args)
    try:
        rows, bad = parse_cert_rows(table, _today(), args.file)
    except CsvError as exc:
        raise UsageError(str(exc)) from None
    report = Report("certs", args.file, args.dry_run, len(table.rows), rejected=bad)
    out_dir = Path(args.out_dir or f"{Path(args.file).stem}-documents")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is not a folder")
    client = ctx.client(need_key=True)
    try:
        jobs = _cert_jobs(args, client, rows, report, out_dir)
    except Unreachable:
        if not args.dry_run:
            raise
        report.valid = len(rows)
        report.warnings.append("no node answered, so each row's format was checked but not "
                               "the type's schema nor the issuer's authorisation")
        report.show(ctx)
        return EXIT_OK if report.ok else EXIT_REJECTED
    report.valid = len(jobs)
    if args.dry_run:
        note_issued(client, jobs, report)
        report.show(ctx)
        return EXIT_OK if report.ok else EXIT_REJECTED
    out_dir.mkdir(parents=True, exist_ok=True)
    report.extra["documents"] = str(out_dir)
    return _submit_all(ctx, client, report, jobs, args.in_flight)


def note_issued(client: Client, jobs: list[Job], report: Report) -> None:
    """Dry run: say which valid rows name a certificate the ledger holds already (each row
    names the same identifier in every run), which a real run would not issue again."""
    issued = [job.line for job in jobs
              if found(client, f"/v1/certs/{job.payload['id']!s}") is not None]
    if issued:
        lines = ", ".join(map(str, issued[:RECORDED_SHOWN]))
        more = f" and {len(issued) - RECORDED_SHOWN} more" if len(issued) > RECORDED_SHOWN else ""
        report.warnings.append(f"{len(issued)} of the valid rows name certificates already on "
                               f"the ledger (line {lines}{more}): a real run reports them as "
                               "already recorded and issues nothing for them")


# -- fund flows ---------------------------------------------------------------------------------


def _flow_result(row: FlowRow) -> Callable[[dict[str, Any]], dict[str, Value]]:
    def result(data: dict[str, Any]) -> dict[str, Value]:
        out: dict[str, Value] = {"kind": row.kind, "amount": row.amount}
        for name in ("flow_id", "tag", "child_tag", "payment_id", "to", "balance"):
            if data.get(name) is not None:
                out[name] = data[name]
        out["alerts"] = len(data.get("alerts") or [])
        return out

    return result


def lookup_voucher(client: Client, org: str, voucher: str) -> dict[str, Any] | None:
    """The flow that recorded ``voucher`` of ``org`` (``GET /v1/fiscal/vouchers``), or None."""
    return found(client, "/v1/fiscal/vouchers", {"org": org, "voucher": voucher})


def voucher_recorded(client: Client, org: str, row: FlowRow
                     ) -> Callable[[], dict[str, Value] | None] | None:
    """For :attr:`Job.already`: the report entry of the flow holding ``row``'s voucher."""
    voucher = row.voucher
    if voucher is None or not org:
        return None

    def already() -> dict[str, Value] | None:
        flow = lookup_voucher(client, org, voucher)
        if flow is None:
            return None
        return {"line": row.line, "voucher": flow["voucher"], "flow_id": flow["flow_id"],
                "kind": flow["kind"], "amount": flow["amount"], "height": flow["height"]}

    return already


def _flow_jobs(args: argparse.Namespace, client: Client, rows: list[FlowRow], report: Report,
               org: str) -> list[Job]:
    key = client.key
    assert key is not None
    people = [r for r in rows if r.person is not None]
    consortium, auditors = b"", list[bytes]()
    if people:
        consortium = consortium_key(args.consortium_key, args.key,
                                    "payments to a person need the consortium key (the "
                                    "ledger records the HMAC of the ID number)")
        auditors = [] if args.dry_run else seal_keys(client)
    jobs = []
    for row in rows:
        payload = dict(row.payload)
        if row.person is not None and not args.dry_run:
            id_number, name, account = row.person
            try:
                payload.update(person_fields(key, consortium, auditors, id_number, name,
                                             account))
            except UsageError as exc:
                report.rejected.append(Rejected(row.line, "validation", row.what, str(exc)))
                continue
        jobs.append(Job(row.line, row.what, row.tx_type, payload, source=row.source,
                        fills=row.fills, on_commit=_flow_result(row),
                        already=voucher_recorded(client, org, row)))
    return jobs


def _finance_officer(client: Client) -> str:
    """The organisation of --key; UsageError unless it is an active account with the
    finance role."""
    key = client.key
    assert key is not None
    account = found(client, f"/v1/accounts/{key.public_key().raw.hex()}")
    if account is None:
        raise UsageError("the --key account is not registered on this network")
    if account.get("revoked_at") is not None:
        raise UsageError(f"the --key account ({account.get('name')}) is revoked")
    if "finance" not in (account.get("roles") or []):
        raise UsageError(f"the --key account ({account.get('name')}) has no finance role, so "
                         "it cannot move funds")
    return str(account.get("org") or "")


def run_flows(args: argparse.Namespace, ctx: Context) -> int:
    _check_in_flight(args)
    table = _load(args)
    try:
        rows, bad = parse_flow_rows(table, _today(), args.file)
    except CsvError as exc:
        raise UsageError(str(exc)) from None
    report = Report("flows", args.file, args.dry_run, len(table.rows), rejected=bad)
    client = ctx.client(need_key=True)
    org = "" if args.dry_run else _finance_officer(client)
    jobs = _flow_jobs(args, client, rows, report, org)
    report.valid = len(jobs)
    if args.dry_run:
        report.show(ctx)
        return EXIT_OK if report.ok else EXIT_REJECTED
    return _submit_all(ctx, client, report, jobs, args.in_flight)
