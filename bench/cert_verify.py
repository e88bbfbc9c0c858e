"""Benchmark: offline verification of one certificate proof bundle, on one core.

Builds an in-process chain (4 validators, suite ``sm`` or ``intl``) with a
registered certificate type, an authorised issuer and a recognition
agreement, issues one certificate, and saves its proof bundle (canonical
msgpack, with the verifying agency's recognition proof). Then times
:func:`certs.verify.verify_certificate` on (document, bundle bytes, genesis,
agency) — exactly what ``govledger cert verify --offline`` does after reading
the files — and, for scale, the signature checks it cannot avoid (a quorum
of commit signatures plus the issuer's signature on the document).

    .venv/bin/python bench/cert_verify.py [--suite sm] [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from typing import Any

from certs import app as certs_app
from certs.bundle import build_bundle, encode_bundle
from certs.issuing import Issuer, issue_payload, new_document
from certs.records import LONG_TERM, get_type
from certs.verify import verify_certificate
from ledger import evidence, governance
from ledger.crypto import sm2_backend_name
from ledger.devnet import make_devnet
from ledger.execution import Registry
from ledger.genesis import Org
from ledger.ids import make_uscc
from ledger.tx import make_tx

TYPE = "11100000MB1F000067001"
ISSUER = ("福州市市场监督管理局", "11350100MB1F000149")
AGENCY = ("国家税务总局福州市税务局", "11350100MB1F00049U")
HOLDER = ("福州示例科技有限公司", make_uscc("9", "1", "350100", "MA2Y0001"))
T0 = 1_767_225_600_000


def setup(suite: str) -> tuple[Any, Any, bytes]:
    """(genesis, document, bundle bytes) of one issued certificate."""
    base = make_devnet(suite, 4, accounts=[("issuer", ISSUER[1], ["issuer"])], time_ms=T0)
    genesis = dataclasses.replace(base.genesis, orgs=[
        Org(ISSUER[0], ISSUER[1], "department", "350100"),
        Org(AGENCY[0], AGENCY[1], "department", "350100")], apps={"certs": {
            "types": [{"code": TYPE, "name": "营业执照", "holder_code_types": ["001"],
                       "fields": [{"name": "address", "label": "住所", "required": True}]}],
            "issuers": [{"type": TYPE, "issuer": ISSUER[1]}],
            "recognitions": [{"agency": AGENCY[1], "type": TYPE, "issuers": [ISSUER[1]]}]}})
    registry = Registry()
    evidence.register(registry)
    governance.register(registry)
    certs_app.register(registry)
    net = dataclasses.replace(base, genesis=genesis)
    chain = net.open_chain(registry)
    key = net.account_keys["issuer"]
    cert_type = get_type(chain.state_get, TYPE)
    assert cert_type is not None
    doc = new_document(key, cert_type, Issuer(ISSUER[1], ISSUER[0], "350100"),
                       serial="BENCH0001", holder_name=HOLDER[0], holder_code=HOLDER[1],
                       holder_code_type="001", valid_from="2025-01-01", valid_until=LONG_TERM,
                       issue_date="2026-01-01", extra={"address": "福州市鼓楼区示例路1号"})
    tx = make_tx(key, genesis.chain_id, "cert.issue", issue_payload(key.suite, doc, None), 1,
                 T0 + 3_600_000)
    pending = chain.propose([tx], T0 + 1000, 0, net.validator_keys[0].public_key().raw)
    assert pending.execution.results[0].ok, pending.execution.results[0].reason
    net.commit(chain, pending)
    return genesis, doc, encode_bundle(build_bundle(chain, doc.cert_id, AGENCY[1]))


def timed(fn: Any, seconds: float) -> list[float]:
    """Per-call times (s) of ``fn`` over about ``seconds``, after a short warm-up."""
    for _ in range(20):
        fn()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("sm", "intl"), default="sm")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    genesis, doc, bundle = setup(args.suite)
    as_of = T0 + 2000
    verdict = verify_certificate(genesis, bundle, as_of_ms=as_of, document=doc,
                                 agency=AGENCY[1])
    assert verdict.valid, verdict.failed()
    suite = genesis.crypto
    quorum = genesis.validators.quorum

    def one() -> None:
        verify_certificate(genesis, bundle, as_of_ms=as_of, document=doc, agency=AGENCY[1])

    def signatures() -> None:
        for _ in range(quorum + 1):
            doc.signature_ok(suite)

    full = timed(one, args.seconds)
    sigs = timed(signatures, max(1.0, args.seconds / 3))
    result = {
        "suite": args.suite, "sm2_backend": sm2_backend_name() if args.suite == "sm" else None,
        "bundle_bytes": len(bundle), "signatures_per_verification": quorum + 1,
        "verifications": len(full),
        "ms_per_verification_median": round(statistics.median(full) * 1000, 3),
        "ms_per_verification_p95": round(sorted(full)[int(len(full) * 0.95)] * 1000, 3),
        "verifications_per_s": round(len(full) / sum(full), 1),
        "ms_signatures_only_median": round(statistics.median(sigs) * 1000, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        backend = f" ({result['sm2_backend']})" if result["sm2_backend"] else ""
        print(f"offline certificate verification, suite {args.suite}{backend}, one core")
        print(f"  bundle: {len(bundle)} bytes (header + {quorum} commit signatures + 5 state "
              f"proofs), document signature: 1")
        print(f"  {result['ms_per_verification_median']} ms per verification (median; p95 "
              f"{result['ms_per_verification_p95']} ms) = {result['verifications_per_s']} "
              f"verifications/s over {len(full)} runs")
        print(f"  of which the {quorum + 1} signature checks alone: "
              f"{result['ms_signatures_only_median']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
