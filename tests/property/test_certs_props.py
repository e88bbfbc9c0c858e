"""Property tests of the certificates app: documents, the status machine, authorisation periods.

Each property is checked against a deliberately simple model.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certs.document import parse_document, sign_document
from certs.records import (
    LONG_TERM,
    AuthPeriod,
    IssuerAuth,
    cst_date,
    cst_midnight_ms,
    date_status,
    get_cert,
)
from tests.unit.certs_harness import CertNet

# Printable text without control characters (what a document field may hold).
TEXT = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holder_name=TEXT.filter(lambda s: s.strip() != ""),
       extra=st.dictionaries(st.sampled_from(["entity_type", "legal_representative",
                                              "established", "address", "registered_capital"]),
                             TEXT, max_size=5),
       number=TEXT.filter(lambda s: s.strip() != ""))
def test_document_json_reproduces_the_signed_bytes(holder_name: str, extra: dict[str, str],
                                                   number: str) -> None:
    """Goal: the canonical signed bytes are reproducible from the holder's JSON for any
    field text (Chinese, symbols, quotes): parse(to_json(doc)) has the same canonical bytes
    and its signature verifies. Method: sign random field values, round-trip the JSON."""
    net = _net()
    doc = net.document()
    certificate = {**doc.certificate, "holder_name": holder_name, "number": number}
    signed = sign_document(net.devnet.account_keys["scjgj"], certificate, extra)
    again = parse_document(json.loads(json.dumps(json.loads(signed.to_json()))))
    assert again.canonical_bytes() == signed.canonical_bytes()
    assert again.signature_ok(net.suite)
    assert again.digest(net.suite) == signed.digest(net.suite)


_NETS: list[CertNet] = []


def _net() -> CertNet:
    if not _NETS:
        _NETS.append(CertNet())
    return _NETS[0]


# The status machine as a table: (status, event) -> new status; absent: refused.
MODEL = {("VALID", "suspend"): "SUSPENDED", ("SUSPENDED", "reinstate"): "VALID",
         ("VALID", "revoke"): "REVOKED", ("SUSPENDED", "revoke"): "REVOKED",
         ("VALID", "renew"): "SUPERSEDED", ("SUSPENDED", "renew"): "SUPERSEDED"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["suspend", "reinstate", "revoke", "renew"]), max_size=8))
def test_lifecycle_agrees_with_the_model(events: list[str]) -> None:
    """Goal: any sequence of lifecycle transactions leaves the record in the state the
    transition table predicts, refusing exactly the transitions the table lacks, and the
    proven history answers "status at time t" like the model's timeline. Method: run the
    events one block each on a fresh chain; compare after each; then replay the timeline."""
    net = CertNet()
    doc, result = net.issue()
    assert result.ok
    status, timeline = "VALID", [(net.time, "VALID")]
    for event in events:
        if event == "renew":
            _, result = net.renew(doc)
        else:
            result = net.act(event, doc.cert_id)
        expected = MODEL.get((status, event))
        assert result.ok is (expected is not None), (status, event, result.reason)
        if expected is not None:
            status = expected
            timeline.append((net.time, status))
        record = get_cert(net.chain.state_get, doc.cert_id)
        assert record is not None and record.status == status
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None
    for (t, s), nxt in zip(timeline, [*timeline[1:], (None, None)], strict=True):
        assert record.status_at(t) == s
        if nxt[0] is not None:
            assert record.status_at(nxt[0] - 1) == s
    assert record.status_at(timeline[0][0] - 1) is None


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8, unique=True),
       st.integers(min_value=0, max_value=220))
def test_authorisation_periods_agree_with_a_set(toggles: list[int], height: int) -> None:
    """Goal: authorised_at(h) of alternating authorise/deauthorise decisions (each effective
    from the next block) is membership in the set of covered heights. Method: build the
    periods from sorted toggle heights; compare with a brute-force set."""
    toggles.sort()
    periods, covered, start = [], set(), None
    for i, h in enumerate(toggles):
        if i % 2 == 0:
            start = h + 1
        else:
            assert start is not None
            periods.append(AuthPeriod(start, h + 1))
            covered |= set(range(start, h + 1))
            start = None
    if start is not None:
        periods.append(AuthPeriod(start, None))
        covered |= set(range(start, 1000))
    auth = IssuerAuth("t", "i", periods)
    assert auth.authorised_at(height) is (height in covered)
    assert auth.current is (start is not None)


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_cst_dates(time_ms: int) -> None:
    """Goal: the China Standard Time date of an instant and that date's midnight agree:
    midnight <= t < next midnight. Method: random instants."""
    day = cst_date(time_ms)
    assert cst_midnight_ms(day) <= time_ms < cst_midnight_ms(day + timedelta(days=1))


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
       st.integers(min_value=0, max_value=3000), st.integers(min_value=-10, max_value=4000),
       st.booleans())
def test_validity_window_is_an_interval(start: date, length: int, offset: int,
                                        long_term: bool) -> None:
    """Goal: date_status is VALID exactly on valid_from..valid_until (inclusive; no end for
    long-term), NOT_YET_VALID before and EXPIRED after. Method: random windows and days."""
    end = start + timedelta(days=length)
    day = start + timedelta(days=offset)
    until = LONG_TERM if long_term else end.isoformat()
    status = date_status(start.isoformat(), until, cst_midnight_ms(day) + 12 * 3600 * 1000)
    if day < start:
        assert status == "NOT_YET_VALID"
    elif long_term or day <= end:
        assert status == "VALID"
    else:
        assert status == "EXPIRED"
