"""``govledger import certs|flows``: reading CSV, row validation with line numbers, dry runs,
and the submission pipeline (against an in-process fake ledger; no network)."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from certs.document import parse_document
from certs.issuing import Issuer
from certs.records import LONG_TERM
from client.cli import Context
from client.cli import main as govledger
from client.cmd_import import (
    PENDING_DIR,
    Job,
    Pipeline,
    Report,
    _cert_jobs,
    prepare_cert,
    voucher_recorded,
)
from client.importing import (
    CertRow,
    CsvError,
    RowError,
    default_serial,
    parse_cert_rows,
    parse_flow_rows,
    parse_table,
    read_table,
)
from client.sdk import NodeError, Unreachable
from fiscal import payloads
from fiscal.model import APPROPRIATE_TX, PAY_TX
from ledger.crypto import get_suite
from ledger.ids import make_citizen_id, make_uscc
from ledger.network import BUSINESS_LICENCE, SAMPLE_ORGS
from ledger.privacy import CONSORTIUM_KEY_FILE, new_consortium_key, save_consortium_key

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
ORG = make_uscc("1", "1", "350100", "MB2F0024")  # the importing finance officer's
TODAY = "2026-11-27"
LICENCE = BUSINESS_LICENCE.code
GOOD_USCC = make_uscc("9", "1", "350100", "MA2Y0004")
SCJGJ = next(o for o in SAMPLE_ORGS if o.slug == "scjgj")
CERT_HEADER = ("type,holder_name,holder_code,holder_code_type,valid_from,valid_until,serial,"
               "entity_type,legal_representative,established,address")
FLOW_HEADER = ("kind,amount_fen,amount_yuan,tag,year,doc_no,function_code,project,project_end,"
               "from,to_org,region,purpose,payee_uscc,payee_id,payee_name,value_date,memo")


def certs(text: str) -> tuple[list[CertRow], dict[int, str]]:
    good, bad = parse_cert_rows(parse_table(text), TODAY)
    return good, {r.line: r.reason for r in bad}


def flows(text: str) -> tuple[list[Any], dict[int, str]]:
    good, bad = parse_flow_rows(parse_table(text), TODAY)
    return good, {r.line: r.reason for r in bad}


def flow_line(**cells: str) -> str:
    return ",".join(cells.get(c, "") for c in FLOW_HEADER.split(","))


# -- the sample files ---------------------------------------------------------------------------


def test_sample_files_are_valid() -> None:
    """Goal: the shipped examples validate as documented: certs.csv and flows.csv entirely,
    certs_with_errors.csv with exactly its one bad row (line 3), flows_with_errors.csv
    entirely (its bad row fails only on the ledger). Method: parse each file."""
    table = read_table((DATA / "certs.csv").read_bytes(), "certs.csv")
    good, bad = parse_cert_rows(table, TODAY)
    assert (len(good), bad) == (4, [])
    assert {r.holder_code_type for r in good} == {"001"}  # inferred where the cell is empty
    assert good[0].valid_until == LONG_TERM and good[2].valid_until == "2042-06-30"
    assert good[0].extra["legal_representative"] == "郑示例"
    good, bad = parse_cert_rows(read_table((DATA / "certs_with_errors.csv").read_bytes(),
                                           "x"), TODAY)
    assert len(good) == 1 and [(r.line, r.stage) for r in bad] == [(3, "validation")]
    assert "check character is 'D', expected '7'" in bad[0].reason
    good, bad = parse_flow_rows(read_table((DATA / "flows.csv").read_bytes(), "f"), TODAY)
    assert bad == [] and [r.kind for r in good] == [
        "APPROPRIATION", "APPROPRIATION", "ALLOCATION", "PAYMENT", "PAYMENT", "PAYMENT",
        "PAYMENT"]
    assert good[0].amount == 500_000_000 and good[4].amount == 92_500_050
    assert good[4].payload["value_date"] == TODAY  # empty value_date: today
    person = good[6]
    assert person.person is not None and person.person[1] == "王小明"
    assert "payee_uscc" not in person.payload and "王小明" not in json.dumps(
        person.payload, ensure_ascii=False)
    good, bad = parse_flow_rows(read_table((DATA / "flows_with_errors.csv").read_bytes(), "f"),
                                TODAY)
    assert (len(good), bad) == (3, [])


# -- certificates: rows ---------------------------------------------------------------------


def test_cert_rows_rejected_with_their_line_numbers() -> None:
    """Goal: each kind of bad certificate row is reported with its physical line and a
    reason naming the column; good rows around them still pass; a quoted cell spanning two
    lines shifts the numbers as in a text editor. Method: one CSV with a bad row of each
    kind."""
    bad_check = GOOD_USCC[:-1] + ("0" if GOOD_USCC[-1] != "0" else "1")
    fields = "有限责任公司,林示例,2024-01-01,福州市示例路1号"
    text = "\n".join([
        CERT_HEADER,
        f"{LICENCE},甲公司,{GOOD_USCC},001,2024-01-01,长期,,{fields}",        # 2 good
        f"{LICENCE},乙公司,{bad_check},001,2024-01-01,长期,,{fields}",        # 3 USCC check
        f"11100000MB1F00006700,丙公司,{GOOD_USCC},,2024-01-01,长期,,{fields}",  # 4 type code
        f"{LICENCE},丁公司,{GOOD_USCC},,2024-05-01,2024-04-30,,{fields}",     # 5 dates
        f"{LICENCE},戊公司,{GOOD_USCC},,2024-01-01,长期,,有限责任公司,林示例",   # 6 short row
        f"{LICENCE},己公司,3.50102E+17,,2024-01-01,长期,,{fields}",           # 7 Excel number
        f"{LICENCE},庚公司,{GOOD_USCC},1,2024-01-01,long-term,A1,{fields}",  # 8 good, "1"=001
        f"{LICENCE},辛公司,{GOOD_USCC},,2024-01-01,长期,a1,{fields}",          # 9 serial again
        f'{LICENCE},"壬公司\n(分公司)",{GOOD_USCC},,2024-01-01,长期,,{fields}',  # 10-11 good
        f"{LICENCE},癸公司,{GOOD_USCC},002,2024-01-01,长期,,{fields}",        # 12 code type
        f"{LICENCE},,{GOOD_USCC},,2024/1/1,长期,,{fields}",                  # 13 no name
        f"{LICENCE},子公司,{GOOD_USCC},,2024-02-30,长期,,{fields}",            # 14 no such day
    ])
    good, bad = certs(text)
    assert [r.line for r in good] == [2, 8, 10]
    assert good[1].holder_code_type == "001" and good[1].serial == "A1"
    assert good[2].holder_name == "壬公司\n(分公司)"
    assert sorted(bad) == [3, 4, 5, 6, 7, 9, 12, 13, 14]
    assert "holder_code" in bad[3] and "check character" in bad[3]
    assert bad[4].startswith("type:")
    assert "valid_until 2024-04-30 is before valid_from 2024-05-01" in bad[5]
    assert "has 9 cells but the header has 11" in bad[6] and "'established'" in bad[6]
    assert "spreadsheet" in bad[7] and "text" in bad[7]
    assert "serial A1 is already used on line 8" in bad[9]
    assert "holder_code_type '002'" in bad[12]
    assert bad[13] == "holder_name is empty"
    assert "not a calendar date" in bad[14]


def test_holder_code_type_is_inferred() -> None:
    """Goal: an empty holder_code_type is 001 for a USCC and 111 for a citizen ID number;
    a code that is neither says both reasons. Method: three rows."""
    person = make_citizen_id("350102", date(1990, 1, 2), "123")
    text = "\n".join([
        "type,holder_name,holder_code,valid_from,valid_until",
        f"{LICENCE},甲,{GOOD_USCC},2024-01-01,长期",
        f"{LICENCE},乙,{person.lower()},2024-01-01,长期",
        f"{LICENCE},丙,12345,2024-01-01,长期"])
    good, bad = certs(text)
    assert [(r.holder_code_type, r.holder_code) for r in good] == [("001", GOOD_USCC),
                                                                   ("111", person)]
    assert "neither a USCC" in bad[4] and "citizen ID number" in bad[4]


def test_cert_header_problems_are_usage_errors() -> None:
    """Goal: a header without a column every row needs, an invalid column name, a repeated
    column or no header at all is a file-level error. Method: parse each."""
    with pytest.raises(CsvError, match=r"lacks column.*holder_code"):
        certs("type,holder_name,valid_from,valid_until\n")
    with pytest.raises(CsvError, match="neither a certificate column"):
        certs(CERT_HEADER + ",注册资本\n")
    with pytest.raises(CsvError, match="appears twice"):
        certs(CERT_HEADER + ",type\n")
    with pytest.raises(CsvError, match="empty"):
        certs("\n\n# only a comment\n")


def _view(holder_code_types: list[str] | None = None, issuer: str = SCJGJ.uscc
          ) -> dict[str, Any]:
    fields = [{"name": n, "label": "", "required": r} for n, r in (
        ("entity_type", True), ("legal_representative", True), ("established", True),
        ("address", True), ("registered_capital", False))]
    return {"code": LICENCE, "name": "营业执照", "holder_code_types": holder_code_types or ["001"],
            "fields": fields, "registered_height": 0,
            "issuers": [{"uscc": issuer, "name": "", "current": True}]}


def test_prepare_cert_checks_the_ledger_schema_and_issuer() -> None:
    """Goal: with the type as registered on the ledger, a good row becomes a signed document
    and the issue payload `cert issue` sends; an unregistered type, an issuer not
    authorised, a field outside the schema, a missing required field and a holder code type
    the type does not take are row errors. Method: prepare_cert with a generated key."""
    key = get_suite("sm").generate_key()
    issuer = Issuer(SCJGJ.uscc, SCJGJ.name, "350100")
    text = "\n".join([
        "type,holder_name,holder_code,valid_from,valid_until,entity_type,legal_representative,"
        "established,address,colour",
        f"{LICENCE},甲,{GOOD_USCC},2024-01-01,长期,有限责任公司,林,2024-01-01,福州,",
        f"{LICENCE},乙,{GOOD_USCC},2024-01-01,长期,有限责任公司,林,2024-01-01,福州,红",
        f"{LICENCE},丙,{GOOD_USCC},2024-01-01,长期,有限责任公司,,2024-01-01,福州,"])
    (first, second, third), bad = certs(text)
    assert bad == {}
    doc, payload = prepare_cert(first, key, issuer, _view(), "S1", None)
    assert doc.cert_id == payload["id"] and payload["holder"] == GOOD_USCC
    assert doc.certificate["valid_until"] == LONG_TERM and doc.extra["legal_representative"] == "林"
    with pytest.raises(RowError, match="not in the schema"):
        prepare_cert(second, key, issuer, _view(), "S2", None)
    with pytest.raises(RowError, match=r"legal_representative .*missing"):
        prepare_cert(third, key, issuer, _view(), "S3", None)
    with pytest.raises(RowError, match="not registered"):
        prepare_cert(first, key, issuer, None, "S4", None)
    with pytest.raises(RowError, match="not authorised"):
        prepare_cert(first, key, issuer, _view(issuer=GOOD_USCC), "S5", None)
    with pytest.raises(RowError, match="not issued to holders of code type 001"):
        prepare_cert(first, key, issuer, _view(["111"]), "S6", None)


def test_a_row_names_the_same_certificate_in_every_run() -> None:
    """Goal: a row without a serial gets one derived from its cells, so importing the file
    again — on another day, with the issue date left to default — names the same
    certificate identifier, while a row that differs in any cell, or the same row from
    another issuer, names another; the same row twice in one file is refused on its
    second line. Method: rows parsed on two different days; one cell changed at a time."""
    base = (f"{LICENCE},甲,{GOOD_USCC},001,2024-01-01,长期,,有限责任公司,林,2024-01-01,福州")
    (row,), _ = certs(CERT_HEADER + "\n" + base)
    again = parse_cert_rows(parse_table(CERT_HEADER + "\n" + base), "2027-03-01")[0][0]
    assert row.issue_date != again.issue_date
    serial = default_serial(row, SCJGJ.uscc)
    assert serial == default_serial(again, SCJGJ.uscc)
    assert serial.startswith("20240101") and len(serial) == 20
    assert default_serial(row, GOOD_USCC) != serial
    for changed in (base.replace("甲", "乙"), base.replace(",长期,", ",2030-01-01,"),
                    base.replace("福州", "厦门"), base.replace(",林,", ",陈,")):
        (other,), _ = certs(CERT_HEADER + "\n" + changed)
        assert default_serial(other, SCJGJ.uscc) != serial, changed
    dated = parse_cert_rows(parse_table(CERT_HEADER + ",issue_date\n" + base + ",2024-01-02"),
                            TODAY)[0][0]
    assert dated.issue_date_given and default_serial(dated, SCJGJ.uscc) != serial
    good, bad = certs("\n".join([CERT_HEADER, base, base.replace("甲", "乙"), base]))
    assert len(good) == 2
    assert bad == {4: "the same certificate as line 2 (every cell alike); give each a serial "
                      "if both are meant"}


ISSUED_MS = 1_795_786_400_000  # 2026-11-27 (China Standard Time): TODAY


class FakeCertNode:
    """A client for ``import certs``: the ledger's issuer, type and certificate records, and
    a node that commits what was submitted whenever the head is asked for — or, with
    ``lose_after`` set, loses the connection after that many submissions."""

    def __init__(self, key: Any, lose_after: int | None = None) -> None:
        self.key = key
        self.certs: dict[str, dict[str, Any]] = {}
        self.mempool: list[FakeTx] = []
        self.blocks: list[list[tuple[str, dict[str, Any]]]] = []
        self.lose_after, self.sent, self.n = lose_after, 0, 0
        self.now_ms = ISSUED_MS

    def make(self, tx_type: str, payload: dict[str, Any], valid_ms: int) -> FakeTx:
        self.n += 1
        return FakeTx(tx_type, payload, self.n)

    def submit_tx(self, tx: FakeTx, wait: bool = True) -> dict[str, Any]:
        if self.lose_after is not None and self.sent >= self.lose_after:
            raise Unreachable("connection refused")
        if tx.payload["id"] in self.certs:
            raise NodeError(403, "forbidden", f"certificate {tx.payload['id']} was already "
                                              "issued")
        self.sent += 1
        self.mempool.append(tx)
        return {"tx_id": tx.tx_id(None).hex(), "status": "pending"}

    def commit(self) -> None:
        block = []
        for tx in self.mempool:
            cert_id = tx.payload["id"]
            if cert_id in self.certs:
                result = {"ok": False, "code": "rejected",
                          "reason": f"certificate {cert_id} was already issued"}
            else:
                self.certs[cert_id] = {"cert_id": cert_id, "digest": tx.payload["digest"].hex(),
                                       "issued_height": len(self.blocks) + 1,
                                       "issued_time": self.now_ms}
                result = {"ok": True, "data": {"cert_id": cert_id}}
            block.append((tx.tx_id(None).hex(), result))
        self.blocks.append(block)
        self.mempool = []

    def status(self) -> dict[str, Any]:
        if self.lose_after is not None and self.sent >= self.lose_after:
            raise Unreachable("connection refused")
        if self.mempool:
            self.commit()
        return {"height": len(self.blocks)}

    def get(self, path: str, query: dict[str, str] | None = None, signed: bool = False
            ) -> dict[str, Any]:
        if path == "/v1/blocks":
            assert query is not None and not signed  # certificates are not private
            first = int(query["from"])
            return {"blocks": [
                {"height": h, "txs": [{"tx_id": t} for t, _ in self.blocks[h - 1]],
                 "results": [r for _, r in self.blocks[h - 1]]}
                for h in range(first, min(first + int(query["count"]), len(self.blocks) + 1))]}
        if path.startswith("/v1/accounts/"):
            return {"org": SCJGJ.uscc}
        if path.startswith("/v1/orgs/"):
            return {"uscc": SCJGJ.uscc, "name": SCJGJ.name, "region": "350100"}
        if path.startswith("/v1/certs/types/"):
            return _view(["001", "111"])
        if path.startswith("/v1/certs/"):
            found = self.certs.get(path.removeprefix("/v1/certs/"))
            if found is None:
                raise NodeError(404, "not_found", "no such certificate")
            return found
        raise AssertionError(f"unexpected GET {path}")


def _import_certs(node: FakeCertNode, text: str, out_dir: Path, today: str = TODAY,
                  consortium: Path | None = None) -> Report:
    rows, bad = parse_cert_rows(parse_table(text), today)
    assert bad == []
    report = Report("certs", "c.csv", False, len(rows))
    args = argparse.Namespace(consortium_key=consortium and str(consortium), key="k.pem")
    jobs = _cert_jobs(args, node, rows, report, out_dir)  # type: ignore[arg-type]
    with contextlib.suppress(Unreachable):
        Pipeline(node, report, 2, lambda: None).run(jobs)  # type: ignore[arg-type]
    return report


def test_importing_certs_again_issues_each_once_and_keeps_its_document(tmp_path: Path) -> None:
    """Goal: an import cut short after sending some rows, then the whole file again, then
    again, issues each certificate once, and every certificate on the ledger ends with the
    signed document whose digest the ledger anchors in --out-dir — including those whose
    commit the first run never saw, and those whose document was lost (signed again, on
    another day too); a row changed after its certificate was issued under an explicit
    serial is rejected with the reason, not reported as issued. Method: a fake node that
    loses the connection after three submissions (the third commits after all), then
    answers again; the documents on disk are checked against the ledger's digests."""
    key = get_suite("sm").generate_key()
    rows = [f"{LICENCE},企业{n},{GOOD_USCC},001,2024-01-0{n},长期,,有限责任公司,林,2024-01-01,"
            "福州" for n in range(1, 6)]
    text = "\n".join([CERT_HEADER, *rows])
    out = tmp_path / "docs"
    node = FakeCertNode(key, lose_after=3)  # two commit; the third is sent, then silence
    first = _import_certs(node, text, out)
    assert (first.submitted, len(first.committed)) == (3, 2)  # the third was in flight
    assert [r.stage for r in first.rejected] == ["unconfirmed", "not submitted",
                                                 "not submitted"]
    # Kept: the third's (sent, fate unknown) and the fourth's (its request failed mid-way).
    assert len(list((out / PENDING_DIR).glob("*.json"))) == 2
    node.commit()  # the node committed them after all
    node.lose_after = None

    node.now_ms += 86_400_000
    second = _import_certs(node, text, out, today="2026-11-28")  # the next day
    assert sorted(e["line"] for e in second.recorded) == [2, 3, 4]
    assert sorted(e["line"] for e in second.committed) == [5, 6]  # its pending document
    assert second.rejected == [] and second.ok
    assert not (out / PENDING_DIR).exists()  # emptied, then removed
    assert len(node.certs) == 5
    for cert_id, record in node.certs.items():
        doc = parse_document((out / f"{cert_id}.json").read_bytes())
        assert doc.digest(key.suite).hex() == record["digest"] and doc.signature_ok(key.suite)

    third = _import_certs(node, text, out)
    assert (third.submitted, len(third.recorded), len(node.certs)) == (0, 5, 5)
    recorded = {e["line"]: e for e in third.recorded}
    assert recorded[2]["document"] == str(out / f"{recorded[2]['cert_id']}.json")

    # Documents lost (another folder), on a later day: signed again with the issue date.
    lost = _import_certs(node, text, tmp_path / "other", today="2026-12-05")
    assert (lost.submitted, len(lost.recorded), lost.rejected) == (0, 5, [])
    for cert_id, record in node.certs.items():
        doc = parse_document((tmp_path / "other" / f"{cert_id}.json").read_bytes())
        assert doc.digest(key.suite).hex() == record["digest"]
        assert doc.certificate == parse_document((out / f"{cert_id}.json").read_bytes(
        )).certificate  # the issue date of the first signing, not of this run

    changed = CERT_HEADER + "\n" + rows[0].replace(",,", ",S1,")
    _import_certs(node, changed, tmp_path / "s")
    edited = _import_certs(node, changed.replace("福州", "厦门"), tmp_path / "s")
    assert [(r.line, r.stage) for r in edited.rejected] == [(2, "admission")]
    assert "already on the ledger, for a document whose contents differ" in (
        edited.rejected[0].reason)
    assert parse_document(next((tmp_path / "s").glob("*.json")).read_bytes()).extra[
        "address"] == "福州"  # the issued document is not overwritten


# -- flows: rows --------------------------------------------------------------------------------


def test_amount_parsing_uses_no_floats() -> None:
    """Goal: fen are whole numbers; yuan have at most two decimals; both become exact fen.
    Method: boundary values, including ones a float would round wrongly."""
    assert payloads.parse_yuan("1,200.50") == 120_050
    assert payloads.parse_yuan("¥0.01") == 1
    assert payloads.parse_yuan("0.1") == 10
    assert payloads.parse_yuan("1234567890123.45") == 123_456_789_012_345  # float: …344.99
    assert payloads.parse_fen(" 42 ") == 42
    for text in ("0", "0.00", "-1", "1.234", "1e3", "nan", "12,34.5.6", ""):
        with pytest.raises(ValueError):
            payloads.parse_yuan(text)
    for text in ("0", "1.5", "1e5", "-3", "100000000000000000"):
        with pytest.raises(ValueError):
            payloads.parse_fen(text)


def test_flow_rows_rejected_with_their_line_numbers() -> None:
    """Goal: each kind of bad flow row is reported with its line and reason — bad amounts
    (a float-like fen value, 3 decimals of yuan, both or neither amount column), an unknown
    kind, a bad USCC, a column the kind does not use, a column the header lacks, a repeated
    appropriation tag, an ID number in clear in a memo, a malformed function code — and the
    good rows pass. Method: one CSV, then a second with a narrower header."""
    pay = {"kind": "PAYMENT", "from": "T1", "purpose": "采购", "function_code": "2050202",
           "payee_uscc": GOOD_USCC}
    clear_id = make_citizen_id("350102", date(1980, 3, 4), "011")
    text = "\n".join([
        FLOW_HEADER,
        flow_line(kind="appropriation", amount_yuan="1000000", tag="T1", year="2026",
                  doc_no="榕财〔2026〕1号", function_code="2050202", project="项目",
                  project_end="2027-06-30"),                                        # 2
        flow_line(**pay, amount_fen="1.5"),                                          # 3
        flow_line(**pay, amount_yuan="12.345"),                                      # 4
        flow_line(**pay, amount_fen="100", amount_yuan="1.00"),                      # 5
        flow_line(**pay),                                                            # 6
        flow_line(**{**pay, "kind": "TRANSFER"}, amount_fen="100"),                  # 7
        flow_line(**{**pay, "payee_uscc": GOOD_USCC[:-1] + "0"}, amount_fen="100"),  # 8
        flow_line(**pay, amount_fen="100", tag="T9"),                                # 9
        flow_line(kind="APPROPRIATION", amount_fen="5", tag="T1", year="2026",
                  doc_no="d", function_code="2050202", project="p",
                  project_end="2027-01-01"),                                         # 10
        flow_line(**pay, amount_fen="100", memo=f"身份证 {clear_id}"),               # 11
        flow_line(**{**pay, "function_code": "1050202"}, amount_fen="100"),          # 12
        flow_line(kind="RETURN", amount_yuan='"¥2,000.00"', **{"from": "T1.1"}),      # 13 good
        flow_line(**pay, amount_yuan="99.9", value_date="2026/3/2"),                 # 14 good
        flow_line(kind="PAYMENT", amount_fen="100", payee_id=clear_id, payee_name="张三",
                  **{"from": "T1", "purpose": "补助", "function_code": "2080299"}),  # 15 good
        flow_line(kind="ALLOCATION", amount_fen="100", to_org=GOOD_USCC, region="3501",
                  **{"from": "T1"}),                                                 # 16
    ])
    good, bad = flows(text)
    assert [r.line for r in good] == [2, 13, 14, 15]
    assert good[0].amount == 100_000_000 and good[1].amount == 200_000
    assert good[2].payload["value_date"] == "2026-03-02" and good[2].amount == 9_990
    assert good[3].person == (clear_id, "张三", "")
    assert sorted(bad) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16]
    assert "'1.5' is not a positive whole number of fen" in bad[3]
    assert "'12.345' is not yuan with at most 2 decimals" in bad[4]
    assert "exactly one of amount_fen and amount_yuan" in bad[5]
    assert "amount is empty" in bad[6]
    assert "kind 'TRANSFER' is not one of" in bad[7]
    assert bad[8].startswith("payee_uscc: ") and "check character" in bad[8]
    assert "tag are not used by PAYMENT rows" in bad[9]
    assert "fund tag T1 is appropriated on line 2 already" in bad[10]
    assert "memo" in bad[11] and "ID number" in bad[11]
    assert "function_code" in bad[12]
    assert "region must be a 9-digit fiscal region code" in bad[16]
    narrow = "kind,amount_fen,from\nALLOCATION,100,T1\nRETURN,100,T1.1\n"
    good, bad = flows(narrow)
    assert [r.line for r in good] == [3]
    assert bad[2] == "ALLOCATION needs column(s) to_org, region, which the header lacks"


def test_flow_report_names_the_row() -> None:
    """Goal: a rejected row says what it asked for, so the report reads like "line 3:
    PAYMENT of ¥500.00 from T1: …". Method: a row the local checks reject."""
    text = FLOW_HEADER + "\n" + flow_line(kind="PAYMENT", amount_yuan="500", purpose="x",
                                          function_code="2050202", payee_uscc="bad",
                                          **{"from": "T1"})
    _, bad = parse_flow_rows(parse_table(text), TODAY)
    assert bad[0].text().startswith("line 2: PAYMENT of ¥500.00 from T1: payee_uscc")


def test_flow_header_problems_are_usage_errors() -> None:
    """Goal: no kind column, no amount column, or an unknown column (a typo) refuses the
    file. Method: parse each header."""
    for header, match in (("amount_fen,from", "kind"), ("kind,from", "amount"),
                          ("kind,amount_fen,form", "unknown column.*form")):
        with pytest.raises(CsvError, match=match):
            flows(header + "\n")


# -- encodings and dialects ---------------------------------------------------------------


def test_excel_utf8_bom_and_utf16_are_read() -> None:
    """Goal: Excel's "CSV UTF-8" (a BOM before the header) and "Unicode text" (UTF-16 with
    BOM, tab-separated) read like plain UTF-8. Method: re-encode certs.csv both ways."""
    plain = (DATA / "certs.csv").read_text(encoding="utf-8")
    expected = parse_cert_rows(parse_table(plain), TODAY)[0]
    table = read_table(codecs.BOM_UTF8 + plain.encode("utf-8"), "bom.csv")
    assert table.columns[0] == "type" and table.encoding == "utf-8-sig"
    assert parse_cert_rows(table, TODAY)[0] == expected
    tabbed = plain.replace(",", "\t").replace("\n", "\r\n")
    table = read_table(tabbed.encode("utf-16"), "u16.txt")
    assert table.delimiter == "\t" and parse_cert_rows(table, TODAY)[0] == expected


def test_gbk_file_gets_a_clear_error_or_is_read_when_named() -> None:
    """Goal: a GBK file (Excel "CSV" on Chinese Windows) is not guessed at: the error says
    it looks like GBK and how to proceed; with --encoding gbk it reads exactly like the
    UTF-8 file. A file that is no text at all gets no GBK hint. Method: encode flows.csv."""
    plain = (DATA / "flows.csv").read_text(encoding="utf-8")
    data = plain.encode("gbk")
    with pytest.raises(CsvError, match=r"not UTF-8 .*GBK.*--encoding gbk"):
        read_table(data, "gbk.csv")
    table = read_table(data, "gbk.csv", "gbk")
    assert parse_flow_rows(table, TODAY) == parse_flow_rows(parse_table(plain), TODAY)
    with pytest.raises(CsvError) as exc:
        read_table(b"kind,amount\n\xff\x80\xff", "junk.csv")
    assert "GBK" not in str(exc.value)
    with pytest.raises(CsvError, match="unknown encoding"):
        read_table(data, "x.csv", "klingon")


# -- the command, dry run -----------------------------------------------------------------------


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    get_suite("sm").generate_key().save(tmp_path / "officer.pem")
    save_consortium_key(tmp_path / CONSORTIUM_KEY_FILE, new_consortium_key())
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = govledger(["--node", "http://127.0.0.1:9", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


def test_dry_run_flows(key_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                       ) -> None:
    """Goal: `import flows --dry-run` checks every row and sends nothing (the node URL
    points nowhere): exit 0 and the counts when all rows are valid, exit 1 with the
    line-numbered rejected rows otherwise; the human report prints "line N: …". Method:
    the sample file, then a copy with a bad amount on line 3."""
    key = str(key_dir / "officer.pem")
    code, out = run(capsys, "import", "flows", str(DATA / "flows.csv"), "--key", key,
                    "--dry-run", "--json")
    assert code == 0, out
    assert (out["rows"], out["valid"], out["submitted"], out["rejected"]) == (7, 7, 0, 0)
    lines = (DATA / "flows.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("800000.00", "800000.001")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out = run(capsys, "--json", "import", "flows", str(bad), "--key", key, "--dry-run")
    assert code == 1 and out["valid"] == 6
    assert out["rejected_rows"] == [{"line": 3, "stage": "validation",
                                     "what": "APPROPRIATION into FZ2026-IMP-0002",
                                     "reason": "amount '800000.001' is not yuan with at most 2 "
                                               "decimals (e.g. 1200.50)"}]
    code, text = run(capsys, "import", "flows", str(bad), "--key", key, "--dry-run")
    assert code == 1 and "line 3: APPROPRIATION into FZ2026-IMP-0002: amount" in text


def test_dry_run_certs_without_a_node(key_dir: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    """Goal: `import certs --dry-run` still checks every row's format when no node answers,
    and says that the schema was not checked. Method: certs_with_errors.csv against a
    closed port."""
    code, out = run(capsys, "--json", "import", "certs", str(DATA / "certs_with_errors.csv"),
                    "--key", str(key_dir / "officer.pem"), "--dry-run")
    assert code == 1 and (out["rows"], out["valid"], out["rejected"]) == (2, 1, 1)
    assert out["rejected_rows"][0]["line"] == 3 and "no node answered" in out["warnings"][0]


def test_import_usage_errors(key_dir: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: an unreadable file, a GBK file without --encoding, a header without required
    columns, a bad --in-flight, and a person payment without the consortium key are usage
    errors (exit 2) before anything is sent. Method: run each."""
    key = str(key_dir / "officer.pem")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes((DATA / "flows.csv").read_text(encoding="utf-8").encode("gbk"))
    assert run(capsys, "import", "flows", str(tmp_path / "none.csv"), "--key", key,
               "--dry-run")[0] == 2
    assert run(capsys, "import", "flows", str(gbk), "--key", key, "--dry-run")[0] == 2
    assert run(capsys, "import", "flows", str(gbk), "--key", key, "--dry-run",
               "--encoding", "gbk")[0] == 0
    headless = tmp_path / "h.csv"
    headless.write_text("type,holder_name\n", encoding="utf-8")
    assert run(capsys, "import", "certs", str(headless), "--key", key, "--dry-run")[0] == 2
    assert run(capsys, "import", "flows", str(DATA / "flows.csv"), "--key", key, "--dry-run",
               "--in-flight", "0")[0] == 2
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "k.pem").write_bytes((key_dir / "officer.pem").read_bytes())
    assert run(capsys, "import", "flows", str(DATA / "flows.csv"), "--key",
               str(other / "k.pem"), "--dry-run")[0] == 2


# -- the pipeline -------------------------------------------------------------------------------


@dataclass
class FakeTx:
    tx_type: str
    payload: dict[str, Any]
    n: int

    def tx_id(self, suite: object) -> bytes:
        return self.n.to_bytes(32, "big")


class FakeLedger:
    """A client whose node orders what was submitted into one block whenever the head is
    asked for, and executes appropriations and payments against balances."""

    def __init__(self, busy: int = 0) -> None:
        self.key = get_suite("sm").generate_key()
        self.mempool: list[FakeTx] = []
        self.funds: dict[str, int] = {}
        self.start = 40  # the chain's height before the import
        self.blocks: list[list[tuple[str, dict[str, Any]]]] = []
        self.fetched: list[int] = []
        self.most_in_flight = 0
        self.early: list[int] = []  # payments submitted before their fund existed
        self.busy = busy
        self.n = 0
        self.vouchers: dict[str, dict[str, Any]] = {}  # the officer's organisation's

    def make(self, tx_type: str, payload: dict[str, Any], valid_ms: int) -> FakeTx:
        self.n += 1
        return FakeTx(tx_type, payload, self.n)

    def submit_tx(self, tx: FakeTx, wait: bool = True) -> dict[str, Any]:
        assert not wait
        if self.busy:
            self.busy -= 1
            raise NodeError(429, "rate_limited", "slow down")
        if tx.tx_type == PAY_TX and tx.payload["from"] not in self.funds:
            self.early.append(tx.n)
        self.mempool.append(tx)
        self.most_in_flight = max(self.most_in_flight, len(self.mempool))
        return {"tx_id": tx.tx_id(None).hex(), "status": "pending"}

    def status(self) -> dict[str, Any]:
        """Each look at the head finds what was submitted since ordered into a new block."""
        if self.mempool:
            self.blocks.append([(tx.tx_id(None).hex(), self._execute(tx))
                                for tx in self.mempool])
            self.mempool = []
        return {"height": self.start + len(self.blocks)}

    def get(self, path: str, query: dict[str, str] | None = None, signed: bool = False
            ) -> dict[str, Any]:
        if path == "/v1/fiscal/vouchers":
            assert query is not None and query["org"] == ORG
            if query["voucher"] not in self.vouchers:
                raise NodeError(404, "not_found", "no flow under that voucher")
            return self.vouchers[query["voucher"]]
        assert path == "/v1/blocks" and query is not None, path
        assert signed  # fund flows are private: their results need the officer's signed read
        first, head = int(query["from"]), self.start + len(self.blocks)
        heights = range(first, min(first + int(query["count"]), head + 1))
        self.fetched += heights
        return {"blocks": [
            {"height": h, "txs": [{"tx_id": t} for t, _ in self.blocks[h - self.start - 1]],
             "results": [r for _, r in self.blocks[h - self.start - 1]]} for h in heights]}

    def _execute(self, tx: FakeTx) -> dict[str, Any]:
        voucher = tx.payload.get("voucher")
        if voucher in self.vouchers:
            return {"ok": False, "code": "voucher_recorded",
                    "reason": f"voucher {voucher} of {ORG} is already recorded"}
        result = self._move(tx)
        if result["ok"] and voucher is not None:
            self.vouchers[voucher] = {"voucher": voucher, "flow_id": tx.tx_id(None).hex(),
                                      "kind": tx.tx_type, "amount": tx.payload["amount"],
                                      "height": self.start + len(self.blocks) + 1}
        return result

    def _move(self, tx: FakeTx) -> dict[str, Any]:
        p = tx.payload
        if tx.tx_type == APPROPRIATE_TX:
            self.funds[p["tag"]] = p["amount"]
            return {"ok": True, "data": {"tag": p["tag"], "balance": p["amount"]}}
        balance = self.funds.get(p["from"], 0)
        if p["amount"] > balance:
            return {"ok": False, "code": "rejected",
                    "reason": f"insufficient balance: fund {p['from']} has {balance} fen"}
        self.funds[p["from"]] = balance - p["amount"]
        return {"ok": True, "data": {"payment_id": tx.tx_id(None).hex(), "alerts": []}}


def _flow_jobs(text: str, ledger: FakeLedger | None = None) -> list[Job]:
    rows, bad = parse_flow_rows(parse_table(text), TODAY)
    assert bad == []
    return [Job(r.line, r.what, r.tx_type, r.payload, source=r.source, fills=r.fills,
                already=ledger and voucher_recorded(ledger, ORG, r))  # type: ignore[arg-type]
            for r in rows]


def _pay(tag: str, yuan: str) -> str:
    return flow_line(kind="PAYMENT", amount_yuan=yuan, purpose="采购", function_code="2050202",
                     payee_uscc=GOOD_USCC, **{"from": tag})


def _appropriate(tag: str, yuan: str) -> str:
    return flow_line(kind="APPROPRIATION", amount_yuan=yuan, tag=tag, year="2026", doc_no="d",
                     function_code="2050202", project="p", project_end="2027-01-01")


def test_pipeline_is_bounded_ordered_and_reports_ledger_failures() -> None:
    """Goal: rows go out in file order with at most --in-flight awaiting a block, so 30 rows
    take a handful of blocks rather than 30; a payment never leaves before the row that
    creates its fund is committed; a payment above the balance is reported with its line
    and the ledger's reason. Method: a fake node that commits its mempool as one block at
    each poll and tracks balances."""
    lines = [FLOW_HEADER, _appropriate("T1", "1000.00")]
    lines += [_pay("T1", "10.00") for _ in range(28)]
    lines.append(_pay("T1", "900.00"))  # line 31: 280 paid, 720 left
    ledger = FakeLedger()
    report = Report("flows", "f.csv", False, 30)
    done: list[int] = []
    Pipeline(ledger, report, 8, lambda: done.append(1)).run(  # type: ignore[arg-type]
        _flow_jobs("\n".join(lines)))
    assert ledger.early == [] and ledger.most_in_flight == 8
    assert len(ledger.blocks) <= 6  # 1 for the appropriation, then ceil(29 / 8) = 4
    assert ledger.fetched == list(range(41, 41 + len(ledger.blocks)))  # each block read once
    assert (report.submitted, len(report.committed), len(done)) == (30, 29, 30)
    assert [r.text() for r in report.rejected] == [
        "line 31: PAYMENT of ¥900.00 from T1: insufficient balance: fund T1 has 72000 fen"]
    assert [e["line"] for e in report.committed] == list(range(2, 31))


def test_pipeline_backs_off_when_rate_limited() -> None:
    """Goal: a 429 from the node delays the row instead of rejecting it. Method: the fake
    node refuses the first three submissions."""
    ledger = FakeLedger(busy=3)
    report = Report("flows", "f.csv", False, 2)
    Pipeline(ledger, report, 4, lambda: None).run(  # type: ignore[arg-type]
        _flow_jobs("\n".join([FLOW_HEADER, _appropriate("T2", "5"), _pay("T2", "5")])))
    assert (len(report.committed), report.rejected, ledger.busy) == (2, [], 0)


def test_pipeline_reports_a_voucher_recorded_meanwhile_as_recorded() -> None:
    """Goal: a row whose voucher another run recorded after this one looked (the ledger
    refuses it with code voucher_recorded) is reported as already recorded, with the flow
    that holds the voucher — not as a failure — while a row the ledger refuses for another
    reason is still rejected. Method: the fake node holds voucher 记-1 already; the
    pipeline sends a payment under it, one under 记-2, and one too large for the fund."""
    ledger = FakeLedger()
    ledger.funds["T3"] = 1000
    ledger.vouchers["记-1"] = {"voucher": "记-1", "flow_id": "ab" * 32, "kind": PAY_TX,
                               "amount": 500, "height": 7}
    jobs = _flow_jobs("\n".join([FLOW_HEADER + ",voucher", _pay("T3", "5") + ",记-1",
                                 _pay("T3", "6") + ",记-2", _pay("T3", "20") + ",记-3"]),
                      ledger)
    assert [j.payload["voucher"] for j in jobs] == ["记-1", "记-2", "记-3"]
    report = Report("flows", "f.csv", False, 3)
    Pipeline(ledger, report, 4, lambda: None).run(jobs)  # type: ignore[arg-type]
    assert report.recorded == [{"line": 2, "voucher": "记-1", "flow_id": "ab" * 32,
                                "kind": PAY_TX, "amount": 500, "height": 7}]
    assert [e["line"] for e in report.committed] == [3]
    assert [(r.line, r.stage) for r in report.rejected] == [(4, "ledger")]
    assert not report.ok and "记-3" not in ledger.vouchers  # a rejected flow books nothing


def test_vouchers_are_folded_and_unique_in_the_file() -> None:
    """Goal: a voucher typed with full-width characters or spaces reaches the ledger in its
    one spelling, a voucher used twice in the file is refused on its second line (a voucher
    books one flow), and a malformed one is refused with the ledger's rule. Method: three
    payments with vouchers ＡＢ－１, AB-1 (the same after folding) and 记 1."""
    header = FLOW_HEADER + ",voucher"
    good, bad = flows("\n".join([header, _pay("T1", "1") + ",　ＡＢ－１ ",
                                 _pay("T1", "1") + ",AB-1", _pay("T1", "1") + ",记 1"]))
    assert [r.payload["voucher"] for r in good] == ["AB-1"]
    assert bad[3] == "voucher AB-1 is on line 2 already; a voucher books one flow"
    assert bad[4].startswith("payload.voucher must be an accounting voucher number")


def test_the_report_lists_recorded_rows_briefly(capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: a re-run of a large file says how many rows were on the ledger already and
    lists only the first of them (JSON lists all), so the rows that need attention are
    not buried. Method: a report with 25 recorded rows, printed both ways."""
    report = Report("flows", "big.csv", False, 25)
    report.recorded = [{"line": n, "voucher": f"记-{n}", "flow_id": "ab" * 32, "kind": PAY_TX,
                        "amount": 100, "height": 3} for n in range(2, 27)]
    Report.show(report, Context(argparse.Namespace(json=False)))
    text = capsys.readouterr().out
    assert "25 rows — 0 submitted, 0 committed, 0 rejected, 25 already recorded" in text
    assert "line 21: voucher 记-21" in text and "line 22:" not in text
    assert "… and 5 more (--json lists every row)" in text
    Report.show(report, Context(argparse.Namespace(json=True)))
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] == 25 and len(out["recorded_rows"]) == 25


def test_a_citizens_certificate_whose_document_was_lost_is_signed_again(tmp_path: Path) -> None:
    """Goal: a certificate for a person (the ledger holds the HMAC of the ID number) whose
    signed document is gone is found on a later day's import and its document signed
    again with the first issue date — not reported as a conflict, and no traceback.
    Method: import one citizen-ID row, then again into another folder a week later."""
    key = get_suite("sm").generate_key()
    consortium = tmp_path / CONSORTIUM_KEY_FILE
    save_consortium_key(consortium, new_consortium_key())
    person = make_citizen_id("350102", date(1990, 1, 2), "123")
    text = "\n".join([CERT_HEADER, f"{LICENCE},张三,{person},111,2024-01-01,长期,,个体工商户,"
                                    "张三,2024-01-01,福州"])
    node = FakeCertNode(key)
    first = _import_certs(node, text, tmp_path / "a", consortium=consortium)
    assert len(first.committed) == 1 and first.rejected == []
    later = _import_certs(node, text, tmp_path / "b", today="2026-12-04", consortium=consortium)
    assert (later.submitted, len(later.recorded), later.rejected) == (0, 1, [])
    cert_id = str(later.recorded[0]["cert_id"])
    again = parse_document((tmp_path / "b" / f"{cert_id}.json").read_bytes())
    assert again.certificate == parse_document(
        (tmp_path / "a" / f"{cert_id}.json").read_bytes()).certificate
