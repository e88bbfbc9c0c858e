"""Personal data in fiscal flows: HMAC and masking only on the ledger, clear values sealed to
the audit office, and no clear ID number or bank account anywhere in a node's store."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from fiscal import handlers, queries
from fiscal.model import PAY_TX
from fiscal.payee import identifier_problem, is_masked_name, open_payee, person_payee
from ledger.crypto.sealing import seal
from ledger.errors import CryptoError
from ledger.ids import IdentifierError
from ledger.privacy import holder_hash
from tests.fiscal_harness import CITIZEN_ID, CONSORTIUM_KEY, FiscalChain, payment, tree

NAME = "王小明"
ACCOUNT = "6222 0202 0011 2233 445"


def person(fc: FiscalChain, tag: str, amount: int = 250_000, **extra: object
           ) -> dict[str, object]:
    fields = person_payee(fc.suite, CONSORTIUM_KEY, CITIZEN_ID, NAME, [fc.key("auditor")],
                          ACCOUNT)
    payload = {k: v for k, v in payment(tag, amount).items() if k != "payee_uscc"}
    payload.update(fields)
    payload["purpose"] = "家庭经济困难学生生活补助"
    payload.update(extra)
    return payload


def test_person_payee_fields_hold_no_clear_values() -> None:
    """Goal: the payload fields for a person carry the HMAC of the ID number and of the
    account, the masked name and ID, and boxes only auditors open. Method: build them and
    inspect; a bad ID number is refused with the failing part named."""
    fc = FiscalChain()
    fields = person_payee(fc.suite, CONSORTIUM_KEY, CITIZEN_ID, NAME, [fc.key("auditor")],
                          ACCOUNT)
    assert fields["payee_hash"] == holder_hash(fc.suite, CONSORTIUM_KEY, CITIZEN_ID)
    assert fields["payee_name"] == "王**" and is_masked_name("王**")
    assert fields["payee_id_masked"] == CITIZEN_ID[:4] + "*" * 10 + CITIZEN_ID[-4:]
    assert fields["account_hash"] != fields["payee_hash"]
    flat = repr(fields).encode()
    for secret in (CITIZEN_ID, NAME, ACCOUNT.replace(" ", "")):
        assert secret.encode() not in flat and secret not in repr(fields)
    sealed = fields["sealed"]
    assert isinstance(sealed, list)
    clear = open_payee(fc.net.account_keys["auditor"], sealed)  # type: ignore[arg-type]
    assert clear == {"id_number": CITIZEN_ID, "name": NAME,
                     "bank_account": ACCOUNT.replace(" ", "")}
    with pytest.raises(CryptoError):
        open_payee(fc.net.account_keys["city"], sealed)  # type: ignore[arg-type]
    with pytest.raises(IdentifierError, match="check character"):
        person_payee(fc.suite, CONSORTIUM_KEY, CITIZEN_ID[:-1] + "9", NAME, [])


def test_payments_to_a_person_are_recorded_masked(tmp_path: Path) -> None:
    """Goal: a payment to a person commits; trails and payee lookups show only the masked
    name and ID; the auditor finds all payments to the person by the HMAC. Method: pay twice
    from two districts; read the trail and payments_to."""
    fc = FiscalChain()
    tags = tree(fc)
    first = fc.ok("district_a", PAY_TX, person(fc, tags["district_a"]))
    fc.ok("district_b", PAY_TX, person(fc, tags["district_b"], 100_000))
    trail = queries.forward_trail(fc.store, tags["province"])
    assert trail is not None
    (payee,) = trail["payees"]
    assert payee["name"] == "王**" and payee["id_masked"].startswith(CITIZEN_ID[:4] + "*")
    assert payee["amount"] == 350_000 and payee["count"] == 2
    found = queries.payments_to(
        fc.store, "H" + holder_hash(fc.suite, CONSORTIUM_KEY, CITIZEN_ID).hex())
    assert found["count"] == 2 and found["amount"] == 350_000
    record = queries.flow(fc.store, first["payment_id"])  # type: ignore[arg-type]
    assert record is not None and len(record["sealed"]) == 1  # type: ignore[arg-type]
    assert all("sealed" not in f for f in trail["flows"])


@pytest.mark.parametrize("change, reason", [
    ({"payee_name": NAME}, "must be masked"),
    ({"purpose": f"补助 {CITIZEN_ID}"}, "payload.purpose contains a run of 18 digits"),
    ({"memo": "账号 6222020200112233445"}, "payload.memo contains a run of 19 digits"),
    ({"payee_id_masked": CITIZEN_ID}, "payload.payee_id_masked contains a run"),
    ({"payee_hash": b"short"}, "32-byte HMAC"),
])
def test_clear_personal_data_is_refused_early_and_at_execution(change: dict[str, object],
                                                               reason: str) -> None:
    """Goal: a payload with a clear name, ID number or account is refused by admission's
    precheck (so it never reaches a block) and again by execution. Method: one bad field
    each; precheck, then execute anyway."""
    fc = FiscalChain()
    tags = tree(fc)
    tx = fc.tx("district_a", PAY_TX, person(fc, tags["district_a"], **change))
    if "payee_hash" not in change:
        assert reason in (handlers.precheck(fc.chain.state_get, tx) or "")
    (result,) = fc.block([tx])
    assert not result.ok and reason in result.reason, result.reason


def test_boxes_must_be_sealed_to_auditors() -> None:
    """Goal: sealed payee data may be addressed only to auditor keys. Method: a box for the
    city's finance officer."""
    fc = FiscalChain()
    tags = tree(fc)
    box = seal(fc.suite, fc.key("city"), b"x")
    result = fc.do("district_a", PAY_TX, person(fc, tags["district_a"],
                                                sealed=[{"to": fc.key("city"), "box": box}]))
    assert not result.ok and "must be the key of an auditor" in result.reason


def test_identifier_scan() -> None:
    """Goal: runs of 15+ digits are found anywhere in a payload except exempt fields.
    Method: nested values; a USCC field is exempt; short numbers pass."""
    assert identifier_problem({"a": ["x", {"b": "110101199003070016"}]}) is not None
    assert identifier_problem({"payee_uscc": "913501001234567890"},
                              exempt=frozenset({"payee_uscc"})) is None
    assert identifier_problem({"doc_no": "闽财预〔2026〕15号", "n": 12345678901234}) is None


def test_no_clear_identifier_anywhere_in_the_leveldb_files(tmp_path: Path) -> None:
    """Goal: after payments to a person, neither the ID number, nor the name, nor the bank
    account appears in any file of the node's LevelDB store — raw files or decoded keys and
    values. Method: a LevelDB-backed chain; a marker in a payment's purpose proves the
    search can see transaction text (positive control); grep every file and every entry."""
    fc = FiscalChain(store_dir=tmp_path / "ledger")
    tags = tree(fc)
    marker = "GREP-CONTROL-MARKER-支付"
    for i in range(3):
        fc.ok("district_a", PAY_TX, person(fc, tags["district_a"], 1_000 + i,
                                           memo=f"{marker}-{i}"))
    fc.close()
    secrets = [CITIZEN_ID.encode(), NAME.encode(), ACCOUNT.replace(" ", "").encode()]
    raw = b"".join(p.read_bytes() for p in (tmp_path / "ledger").iterdir() if p.is_file())
    db = plyvel.DB(str(tmp_path / "ledger"))
    try:
        entries = b"".join(k + b"\0" + v for k, v in db.iterator())
    finally:
        db.close()
    # Positive control: the search does see transaction text, in the files and the entries.
    assert marker.encode() in raw and marker.encode() in entries
    for blob in (raw, entries):
        for secret in secrets:
            assert secret not in blob
