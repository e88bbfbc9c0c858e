"""Admission's stateless payload checks (ledger.execution.PayloadCheck) judge any payload a
client can sign — every type, every field of any value the codec carries — with a
sentence or None, and never raise: an exception there would be an HTTP 500 at admission.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certs.handlers import PAYLOAD_FIELDS as CERT_FIELDS
from certs.handlers import payload_problem as cert_problem
from fiscal.payloads import FIELDS as FLOW_FIELDS
from fiscal.payloads import payload_problem as flow_problem
from ledger.codec import INT_MAX, INT_MIN
from ledger.evidence import payload_problem as anchor_problem

# Values of every kind, and some of the right form so that checks past the first pass.
LEAVES = (st.none() | st.booleans() | st.integers(min_value=INT_MIN, max_value=INT_MAX)
          | st.text(max_size=30) | st.binary(max_size=40)
          | st.sampled_from(["长期", "2026-01-01", "2026-13-01", "91350100MA2Y0001X9",
                             "1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149.T1.001.I",
                             "ab" * 32, "FJ2026-ZD-0001", "350102000", "2050202"]))
VALUES = st.recursive(LEAVES, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=4)


def _payloads() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    kinds = [st.tuples(st.just(t), st.fixed_dictionaries({k: VALUES for k in f}))
             for t, f in CERT_FIELDS.items()]
    kinds += [st.tuples(st.just(t), st.fixed_dictionaries(
        {k: VALUES for k in required}, optional={k: VALUES for k in optional}))
        for t, (required, optional) in FLOW_FIELDS.items()]
    kinds.append(st.tuples(st.just("evidence.anchor"), st.fixed_dictionaries(
        {"digest": VALUES}, optional={"label": VALUES, "extra": VALUES})))
    return st.one_of(kinds)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(_payloads())
def test_a_payload_check_answers_every_payload_without_raising(
        case: tuple[str, dict[str, Any]]) -> None:
    tx_type, payload = case
    if tx_type in CERT_FIELDS:
        problem = cert_problem(tx_type, payload)
    elif tx_type in FLOW_FIELDS:
        problem = flow_problem(tx_type, payload)
    else:
        problem = anchor_problem(payload)
    assert problem is None or (isinstance(problem, str) and problem)
