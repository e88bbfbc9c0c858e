"""Bulk import, the local half: read a CSV file and validate its rows, with line numbers.

Theory of operation
-------------------
``govledger import certs|flows FILE.csv`` first reads the whole file here
and turns every row into either a prepared row (:class:`CertRow`,
:class:`FlowRow`) or a :class:`Rejected` naming its line and what is wrong,
before anything is signed or sent (:mod:`client.cmd_import` does that).
A problem with the file as a whole — not text, an unknown encoding, no
header, a column every row needs missing from it, too many rows — raises
:class:`CsvError` (a usage error: nothing is imported).

Files come from spreadsheets, so: a UTF-8 byte-order mark (Excel's "CSV
UTF-8") is dropped; UTF-16 with a byte-order mark (Excel's "Unicode text")
is read; a file that is not UTF-8 is refused with a hint when it decodes as
GBK/GB18030 (Excel's "CSV" on Chinese Windows) — give ``--encoding gbk`` —
rather than guessed at. The delimiter is the comma, or ``;`` or a tab when
the header uses that instead. Header names are case-insensitive, and spaces
and hyphens in them read as ``_``. Rows whose cells are all empty and rows
whose first cell starts with ``#`` are skipped (comments). Line numbers are
the file's physical lines, the header being line 1.

The checks reuse the applications' own validators (:mod:`certs.ids`,
:mod:`certs.records`, :mod:`fiscal.payloads`, :mod:`fiscal.payee`), so a row
is refused here for the reason the ledger would give. What needs the
ledger's state (a registered type, a fund's balance) is decided there.
Pure functions: no network, no clock (callers pass ``today``).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from dataclasses import dataclass, field
from typing import Final

from certs.ids import (
    CERT_ID_ALPHABET,
    SERIAL_LENGTH_MAX,
    IdentifierError,
    validate_citizen_id,
    validate_type_code,
    validate_uscc,
)
from certs.issuing import validate_holder_code
from certs.records import (
    FIELD_NAME_RE,
    HOLDER_CODE_TYPES,
    LONG_TERM,
    check_validity_dates,
)
from fiscal import payloads
from fiscal.handlers import EXEMPT_FROM_SCAN
from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX, PAY_TX, RETURN_TX, parent_of, yuan
from fiscal.payee import identifier_problem
from ledger.codec import Value
from ledger.crypto.hashing import sm3
from ledger.errors import DecodeError

FILE_BYTES_MAX: Final = 64 * 1024 * 1024
ROWS_MAX: Final = 100_000
DELIMITERS: Final = (",", ";", "\t")
LONG_TERM_WORDS: Final = frozenset({LONG_TERM, "long-term", "long term", "longterm"})
_SERIAL_RE: Final = re.compile(f"[{CERT_ID_ALPHABET}]{{1,{SERIAL_LENGTH_MAX}}}")
_FIELD_RE: Final = re.compile(FIELD_NAME_RE)
_EXCEL_NUMBER_RE: Final = re.compile(r"[0-9.]+[eE]\+?[0-9]+")

# -- certificates: columns --------------------------------------------------------------------

CERT_REQUIRED: Final = ("type", "holder_name", "holder_code", "valid_from", "valid_until")
CERT_OPTIONAL: Final = ("holder_code_type", "issue_date", "serial", "number")
CERT_COLUMNS_HELP: Final = """\
certs columns (header row required; any order):
  type              certificate type code, 21 characters (govledger cert types)
  holder_name       the holder's name
  holder_code       the holder's USCC, or a citizen ID number
  holder_code_type  001 (USCC) or 111 (citizen ID); optional, inferred from holder_code
  valid_from        YYYY-MM-DD (YYYY/M/D is read too)
  valid_until       YYYY-MM-DD, or 长期 / long-term for no end date
  issue_date        optional, default today (China Standard Time)
  serial            optional identifier serial (0-9, A-Z); by default derived from the
                    row (valid_from + a hash of the issuer and every cell but
                    issue_date), so importing the file again finds the certificates
                    already issued instead of issuing them twice
  number            optional 证照编号 printed on the certificate, default the serial
  any other column  a type-specific field of the type's schema (empty cells are left out),
                    e.g. entity_type, legal_representative, established, address"""

# -- flows: columns ---------------------------------------------------------------------------

KINDS: Final = {"APPROPRIATION": APPROPRIATE_TX, "ALLOCATION": ALLOCATE_TX, "PAYMENT": PAY_TX,
                "RETURN": RETURN_TX}
AMOUNT_COLUMNS: Final = ("amount_fen", "amount_yuan")
# (required, optional) columns of each kind, besides kind and the amount.
FLOW_COLUMNS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "APPROPRIATION": (("tag", "year", "doc_no", "function_code", "project", "project_end"),
                      ("direct", "region", "memo", "voucher")),
    "ALLOCATION": (("from", "to_org", "region"), ("memo", "voucher")),
    "PAYMENT": (("from", "purpose", "function_code"),
                ("payee_uscc", "payee_id", "payee_name", "payee_account", "value_date",
                 "contract_digest", "invoice_digest", "memo", "voucher")),
    "RETURN": (("from",), ("memo", "voucher")),
}
FLOW_ALL_COLUMNS: Final = frozenset(
    {"kind", *AMOUNT_COLUMNS} | {c for req, opt in FLOW_COLUMNS.values() for c in req + opt})
FLOW_COLUMNS_HELP: Final = """\
flows columns (header row required; any order; a row fills only its kind's columns):
  kind           APPROPRIATION, ALLOCATION, PAYMENT or RETURN
  amount_fen     a whole number of fen (¥1.00 = 100) — or instead:
  amount_yuan    yuan with at most 2 decimals (1200.50, "1,200.50"); one of the two per row
  APPROPRIATION  tag, year, doc_no, function_code, project, project_end;
                 optional direct (yes/no, 是/否), region (default the organisation's), memo
  ALLOCATION     from (fund tag), to_org (USCC of a registered department), region; memo
  PAYMENT        from, purpose, function_code, and payee_uscc (optional payee_name) or
                 payee_id + payee_name (a person: sent only as HMAC, masked, sealed to the
                 audit office; optional payee_account); optional value_date (default
                 today), contract_digest, invoice_digest (hex), memo
  RETURN         from (a child fund; the money goes to its parent); optional memo
  voucher        optional, any kind: the organisation's accounting voucher number (凭证号,
                 e.g. 记-2026-0012), unique in the file. The ledger records each voucher
                 once, so importing the file again skips the rows already recorded instead
                 of moving their money twice; rows without one cannot be recognised.
Rows are submitted in file order; a row that moves money out of a fund waits until the
rows before it that create or fill that fund are committed."""


class CsvError(Exception):
    """The file as a whole cannot be imported (a usage error)."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # physical line where the row starts; the header is line 1
    cells: dict[str, str]  # column → value, whitespace stripped ("" when empty)
    width: int  # how many cells the row had


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that was not (or not successfully) imported."""

    line: int
    stage: str  # "validation", "admission" (refused by the node), "ledger", "not submitted"
    what: str  # what the row asked for, e.g. "PAYMENT of ¥500.00 from FZ2026-X"
    reason: str

    def text(self) -> str:
        return f"line {self.line}: {self.what + ': ' if self.what else ''}{self.reason}"

    def to_json(self) -> dict[str, Value]:
        return {"line": self.line, "stage": self.stage, "what": self.what,
                "reason": self.reason}


class RowError(Exception):
    """One row is invalid; the message says why."""


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    rows: list[Row]
    encoding: str
    delimiter: str


# -- reading ------------------------------------------------------------------------------------


def decode_text(data: bytes, name: str, encoding: str = "auto") -> tuple[str, str]:
    """(text, encoding used). ``auto``: UTF-8 with or without BOM, or UTF-16 with a BOM."""
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CsvError(f"unknown encoding {encoding!r} (try utf-8 or gbk)") from None
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except UnicodeDecodeError as exc:
            raise CsvError(f"{name} is not {encoding} text (byte 0x{data[exc.start]:02X} at "
                           f"offset {exc.start})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").removeprefix("\ufeff"), "utf-16"
        except UnicodeDecodeError as exc:
            raise CsvError(f"{name} starts like UTF-16 but is not ({exc.reason})") from None
    try:
        return data.decode("utf-8-sig"), "utf-8-sig" if data.startswith(
            codecs.BOM_UTF8) else "utf-8"
    except UnicodeDecodeError as exc:
        hint = ""
        try:
            data.decode("gb18030")
            hint = (" It reads as GBK/GB18030, which is what Excel saves as \"CSV\" on "
                    "Chinese Windows: give --encoding gbk, or save it as \"CSV UTF-8\".")
        except UnicodeDecodeError:
            pass
        raise CsvError(f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02X} at offset "
                       f"{exc.start}).{hint}") from None


def _column_name(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def parse_table(text: str, name: str = "the file", encoding: str = "utf-8") -> Table:
    """Split CSV text into a header and rows (blank and ``#`` rows skipped)."""
    first = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[Row] = []
    columns: list[str] | None = None
    consumed = 0  # physical lines read so far
    try:
        for cells in reader:
            start, consumed = consumed + 1, reader.line_num
            stripped = [c.strip() for c in cells]
            if not any(stripped) or stripped[0].startswith("#"):
                continue
            if columns is None:
                columns = [_column_name(c) for c in stripped]
                _check_header(columns, name)
                continue
            if len(rows) >= ROWS_MAX:
                raise CsvError(f"{name} has more than {ROWS_MAX} rows; split it")
            rows.append(Row(start, dict(zip(columns, stripped, strict=False)), len(stripped)))
    except csv.Error as exc:
        raise CsvError(f"{name}, line {reader.line_num}: not valid CSV ({exc})") from None
    if columns is None:
        raise CsvError(f"{name} is empty: it needs a header row naming the columns")
    return Table(columns, rows, encoding, delimiter)


def _check_header(columns: list[str], name: str) -> None:
    if any(not c for c in columns):
        raise CsvError(f"{name}: the header has an empty column name (column "
                       f"{columns.index('') + 1})")
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise CsvError(f"{name}: column {c!r} appears twice in the header")
        seen.add(c)


def read_table(data: bytes, name: str, encoding: str = "auto") -> Table:
    if len(data) > FILE_BYTES_MAX:
        raise CsvError(f"{name} is larger than {FILE_BYTES_MAX // 2**20} MiB; split it")
    text, used = decode_text(data, name, encoding)
    return parse_table(text, name, used)


def _width_problem(row: Row, columns: list[str]) -> str | None:
    if row.width < len(columns):
        return (f"has {row.width} cells but the header has {len(columns)} columns (is a cell "
                f"missing? the first one without a value is {columns[row.width]!r})")
    if row.width > len(columns):
        return (f"has {row.width} cells but the header has {len(columns)} columns (an extra "
                "cell, or a comma inside a value that is not quoted?)")
    return None


# -- shared cell checks ---------------------------------------------------------------------


def _need(row: Row, column: str) -> str:
    value = row.cells.get(column, "")
    if not value:
        raise RowError(f"{column} is empty")
    return value


def _date(row: Row, column: str, default: str | None = None) -> str:
    value = row.cells.get(column, "")
    if not value:
        if default is None:
            raise RowError(f"{column} is empty")
        return default
    try:
        return payloads.parse_date(value)
    except ValueError as exc:
        raise RowError(f"{column}: {exc}") from None


def _identifier(column: str, value: str, exc: IdentifierError) -> RowError:
    if _EXCEL_NUMBER_RE.fullmatch(value):
        return RowError(f"{column} {value!r} was turned into a number by a spreadsheet; "
                        "format the column as text and re-enter it")
    return RowError(f"{column}: {exc}")


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertRow:
    line: int
    type_code: str
    holder_name: str
    holder_code: str
    holder_code_type: str
    valid_from: str
    valid_until: str
    issue_date: str
    serial: str | None
    number: str | None
    extra: dict[str, str] = field(default_factory=dict)
    issue_date_given: bool = False  # False: issue_date is the day of the import

    @property
    def what(self) -> str:
        return f"certificate of type {self.type_code} for {self.holder_name}"


def check_cert_header(columns: list[str], name: str = "the file") -> None:
    missing = [c for c in CERT_REQUIRED if c not in columns]
    if missing:
        raise CsvError(f"{name}: the header lacks column(s) {', '.join(missing)}; certs "
                       f"need {', '.join(CERT_REQUIRED)}")
    for c in columns:
        if c not in CERT_REQUIRED and c not in CERT_OPTIONAL and not _FIELD_RE.fullmatch(c):
            raise CsvError(f"{name}: column {c!r} is neither a certificate column nor a "
                           f"type-specific field name ({FIELD_NAME_RE})")


def _holder(row: Row) -> tuple[str, str]:
    code = _need(row, "holder_code")
    given = row.cells.get("holder_code_type", "")
    if given:
        kind = given.zfill(3) if given.isascii() and given.isdigit() else given
        if kind not in HOLDER_CODE_TYPES:
            raise RowError(f"holder_code_type {given!r} is not 001 (USCC) or 111 (citizen ID)")
        try:
            return validate_holder_code(code, kind), kind
        except IdentifierError as exc:
            raise _identifier("holder_code", code, exc) from None
    errors: list[IdentifierError] = []
    found: list[tuple[str, str]] = []
    for kind in HOLDER_CODE_TYPES:
        try:
            found.append((validate_holder_code(code, kind), kind))
        except IdentifierError as exc:
            errors.append(exc)
    if len(found) == 1:
        return found[0]
    if found:
        raise RowError(f"holder_code {code} is both a valid USCC and a valid citizen ID "
                       "number; say which with holder_code_type (001 or 111)")
    if _EXCEL_NUMBER_RE.fullmatch(code):
        raise _identifier("holder_code", code, errors[0])
    raise RowError(f"holder_code is neither a USCC ({errors[0]}) nor a citizen ID number "
                   f"({errors[1]})")


def _valid_until(row: Row) -> str:
    value = _need(row, "valid_until")
    if value.lower() in LONG_TERM_WORDS:
        return LONG_TERM
    return _date(row, "valid_until")


def parse_cert_row(row: Row, columns: list[str], today: str) -> CertRow:
    """A validated certificate row, or RowError."""
    problem = _width_problem(row, columns)
    if problem:
        raise RowError(problem)
    try:
        type_code = validate_type_code(_need(row, "type"))
    except IdentifierError as exc:
        raise RowError(f"type: {exc}") from None
    holder_name = _need(row, "holder_name")
    holder_code, holder_code_type = _holder(row)
    valid_from, valid_until = _date(row, "valid_from"), _valid_until(row)
    try:
        check_validity_dates(valid_from, valid_until)
    except DecodeError as exc:
        raise RowError(str(exc)) from None
    serial = row.cells.get("serial", "").upper() or None
    if serial is not None and not _SERIAL_RE.fullmatch(serial):
        raise RowError(f"serial {serial!r} must be 1 to {SERIAL_LENGTH_MAX} characters "
                       "0-9, A-Z")
    extra = {c: v for c, v in row.cells.items()
             if c not in CERT_REQUIRED and c not in CERT_OPTIONAL and v}
    return CertRow(row.line, type_code, holder_name, holder_code, holder_code_type, valid_from,
                   valid_until, _date(row, "issue_date", today), serial,
                   row.cells.get("number") or None, extra,
                   issue_date_given=bool(row.cells.get("issue_date")))


def default_serial(row: CertRow, issuer_uscc: str) -> str:
    """The serial of a row that names none: ``valid_from`` as YYYYMMDD, then 12 hex digits
    of the SM3 of the issuer and every cell of the row except a defaulted issue date.

    The same row imported again — after a run cut short, or by mistake — gets the same
    certificate identifier, which the ledger issues once; two rows that differ in any
    cell get different ones (48 bits of hash among one issuer's certificates of a type
    with the same start date).
    """
    cells = "\x1f".join((issuer_uscc, *_identity(row)))
    return row.valid_from.replace("-", "") + sm3(cells.encode("utf-8")).hex().upper()[:12]


def _identity(row: CertRow) -> tuple[str, ...]:
    """What makes a row the certificate it is: every cell but a defaulted issue date."""
    return (row.type_code, row.holder_code_type, row.holder_code, row.holder_name,
            row.valid_from, row.valid_until, row.issue_date if row.issue_date_given else "",
            row.number or "", *(f"{k}={v}" for k, v in sorted(row.extra.items())))


def parse_cert_rows(table: Table, today: str, name: str = "the file"
                    ) -> tuple[list[CertRow], list[Rejected]]:
    """Every row checked: (valid rows, rejected rows), in file order."""
    check_cert_header(table.columns, name)
    good: list[CertRow] = []
    bad: list[Rejected] = []
    serials: dict[tuple[str, str], int] = {}
    alike: dict[tuple[str, ...], int] = {}
    for row in table.rows:
        what = f"certificate for {row.cells.get('holder_name') or '?'}"
        try:
            cert = parse_cert_row(row, table.columns, today)
            if cert.serial is not None:
                first = serials.setdefault((cert.type_code, cert.serial), row.line)
                if first != row.line:
                    raise RowError(f"serial {cert.serial} is already used on line {first}")
            else:
                first = alike.setdefault(_identity(cert), row.line)
                if first != row.line:
                    raise RowError(f"the same certificate as line {first} (every cell "
                                   "alike); give each a serial if both are meant")
        except RowError as exc:
            bad.append(Rejected(row.line, "validation", what, str(exc)))
            continue
        good.append(cert)
    return good, bad


# -- fund flows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowRow:
    line: int
    kind: str  # APPROPRIATION, ALLOCATION, PAYMENT, RETURN
    tx_type: str
    payload: dict[str, Value]
    person: tuple[str, str, str] | None = None  # payee ID number, name, bank account

    @property
    def amount(self) -> int:
        amount = self.payload["amount"]
        assert isinstance(amount, int)
        return amount

    @property
    def source(self) -> str | None:
        """The fund the money leaves (None for an appropriation)."""
        value = self.payload.get("from")
        return value if isinstance(value, str) else None

    @property
    def tag(self) -> str:
        """The fund an appropriation creates ("" for the other kinds)."""
        value = self.payload.get("tag", "")
        return value if isinstance(value, str) else ""

    @property
    def voucher(self) -> str | None:
        value = self.payload.get("voucher")
        return value if isinstance(value, str) else None

    @property
    def what(self) -> str:
        if self.kind == "APPROPRIATION":
            return f"APPROPRIATION {self.tag} of {yuan(self.amount)}"
        return f"{self.kind} of {yuan(self.amount)} from {self.source}"

    def fills(self, tag: str) -> bool:
        """Whether committing this row may create ``tag`` or add money to it, so that a
        later row moving money out of ``tag`` has to wait for it."""
        if self.kind == "APPROPRIATION":
            return tag == self.tag or tag.startswith(self.tag + ".")
        source = self.source
        assert source is not None
        if self.kind == "ALLOCATION":  # creates or tops up a child fund (number unknown yet)
            return tag.startswith(source + ".")
        if self.kind == "RETURN":
            return tag == parent_of(source)
        return False


def check_flow_header(columns: list[str], name: str = "the file") -> None:
    if "kind" not in columns:
        raise CsvError(f"{name}: the header lacks the column kind (APPROPRIATION, ALLOCATION, "
                       "PAYMENT or RETURN)")
    if not any(c in columns for c in AMOUNT_COLUMNS):
        raise CsvError(f"{name}: the header lacks an amount column: amount_fen or amount_yuan")
    unknown = [c for c in columns if c not in FLOW_ALL_COLUMNS]
    if unknown:
        raise CsvError(f"{name}: unknown column(s) {', '.join(unknown)}; flows use "
                       f"{', '.join(sorted(FLOW_ALL_COLUMNS))}")


def _amount(row: Row) -> int:
    fen, yuan_text = row.cells.get("amount_fen", ""), row.cells.get("amount_yuan", "")
    if bool(fen) == bool(yuan_text):
        raise RowError("give the amount in exactly one of amount_fen and amount_yuan"
                       if fen else "the amount is empty (amount_fen or amount_yuan)")
    try:
        return payloads.parse_fen(fen) if fen else payloads.parse_yuan(yuan_text)
    except ValueError as exc:
        raise RowError(str(exc)) from None


def _flag(row: Row, column: str) -> bool:
    value = row.cells.get(column, "").lower()
    if value in ("", "no", "n", "false", "0", "否"):
        return False
    if value in ("yes", "y", "true", "1", "是"):
        return True
    raise RowError(f"{column} {value!r} is not yes or no")


def _digest(row: Row, column: str) -> bytes | None:
    value = row.cells.get(column, "")
    try:
        return payloads.parse_digest(value) if value else None
    except ValueError as exc:
        raise RowError(f"{column}: {exc}") from None


def _kind_columns(row: Row, kind: str, columns: list[str]) -> None:
    required, optional = FLOW_COLUMNS[kind]
    absent = [c for c in required if c not in columns]
    if absent:
        raise RowError(f"{kind} needs column(s) {', '.join(absent)}, which the header lacks")
    allowed = {"kind", *AMOUNT_COLUMNS, *required, *optional}
    stray = [c for c in columns if c not in allowed and row.cells.get(c)]
    if stray:
        raise RowError(f"column(s) {', '.join(stray)} are not used by {kind} rows; leave "
                       "them empty")


def parse_flow_row(row: Row, columns: list[str], today: str) -> FlowRow:
    """A validated flow row, or RowError."""
    problem = _width_problem(row, columns)
    if problem:
        raise RowError(problem)
    kind = _need(row, "kind").upper()
    if kind not in KINDS:
        raise RowError(f"kind {row.cells['kind']!r} is not one of {', '.join(KINDS)}")
    _kind_columns(row, kind, columns)
    amount, c = _amount(row), row.cells
    person: tuple[str, str, str] | None = None
    if kind == "APPROPRIATION":
        year = _need(row, "year")
        if not (year.isascii() and year.isdigit()):
            raise RowError(f"year {year!r} is not a year")
        payload = payloads.appropriation(
            tag=_need(row, "tag"), amount=amount, year=int(year), doc_no=_need(row, "doc_no"),
            function_code=_need(row, "function_code"), project=_need(row, "project"),
            project_end=_date(row, "project_end"), direct=_flag(row, "direct"),
            region=c.get("region") or None, memo=c.get("memo", ""),
            voucher=c.get("voucher", ""))
    elif kind == "ALLOCATION":
        payload = payloads.allocation(source=_need(row, "from"), to_org=_need(row, "to_org"),
                                      region=_need(row, "region"), amount=amount,
                                      memo=c.get("memo", ""), voucher=c.get("voucher", ""))
    elif kind == "RETURN":
        payload = payloads.return_flow(source=_need(row, "from"), amount=amount,
                                       memo=c.get("memo", ""), voucher=c.get("voucher", ""))
    else:
        payload, person = _payment(row, amount, today)
    problem = payloads.payload_problem(KINDS[kind], payload)
    if problem is None:
        problem = identifier_problem(payload, exempt=EXEMPT_FROM_SCAN)
    if problem:
        raise RowError(problem)
    return FlowRow(row.line, kind, KINDS[kind], payload, person)


def _payment(row: Row, amount: int, today: str
             ) -> tuple[dict[str, Value], tuple[str, str, str] | None]:
    c = row.cells
    uscc, id_number = c.get("payee_uscc", ""), c.get("payee_id", "")
    if bool(uscc) == bool(id_number):
        raise RowError("a PAYMENT needs exactly one of payee_uscc (an organisation) and "
                       "payee_id (a person)")
    person: tuple[str, str, str] | None = None
    if uscc:
        if c.get("payee_account"):
            raise RowError("payee_account is for payments to a person")
        try:
            uscc = validate_uscc(uscc)
        except IdentifierError as exc:
            raise _identifier("payee_uscc", uscc, exc) from None
    else:
        try:
            id_number = validate_citizen_id(id_number)
        except IdentifierError as exc:
            raise _identifier("payee_id", id_number, exc) from None
        person = (id_number, _need(row, "payee_name"), c.get("payee_account", ""))
    payload = payloads.payment(
        source=_need(row, "from"), amount=amount, purpose=_need(row, "purpose"),
        function_code=_need(row, "function_code"),
        value_date=_date(row, "value_date", today), payee_uscc=uscc or None,
        payee_name=(c.get("payee_name") or None) if uscc else None,
        contract_digest=_digest(row, "contract_digest"),
        invoice_digest=_digest(row, "invoice_digest"), memo=c.get("memo", ""),
        voucher=c.get("voucher", ""))
    return payload, person


def _rough_what(row: Row) -> str:
    """What an invalid row seems to ask for, for the report."""
    what = (row.cells.get("kind") or "row").upper()
    with contextlib.suppress(RowError):
        what += f" of {yuan(_amount(row))}"
    source = row.cells.get("from") or row.cells.get("tag")
    return f"{what} {'from' if row.cells.get('from') else 'into'} {source}" if source else what


def parse_flow_rows(table: Table, today: str, name: str = "the file"
                    ) -> tuple[list[FlowRow], list[Rejected]]:
    """Every row checked: (valid rows, rejected rows), in file order."""
    check_flow_header(table.columns, name)
    good: list[FlowRow] = []
    bad: list[Rejected] = []
    tags: dict[str, int] = {}
    vouchers: dict[str, int] = {}
    for row in table.rows:
        what = _rough_what(row)
        try:
            flow = parse_flow_row(row, table.columns, today)
            if flow.kind == "APPROPRIATION":
                first = tags.setdefault(flow.tag, row.line)
                if first != row.line:
                    raise RowError(f"fund tag {flow.tag} is appropriated on line {first} "
                                   "already")
            if flow.voucher is not None:
                first = vouchers.setdefault(flow.voucher, row.line)
                if first != row.line:
                    raise RowError(f"voucher {flow.voucher} is on line {first} already; a "
                                   "voucher books one flow")
        except RowError as exc:
            bad.append(Rejected(row.line, "validation", what, str(exc)))
            continue
        good.append(flow)
    return good, bad
