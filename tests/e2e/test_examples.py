"""The SDK examples (examples/*.py) against a real 4-node network loaded with the demo data.

The network is a :class:`~tests.e2e.netharness.LocalNet` with the sample organisations,
loaded with the same sample data as ``python node.py demo`` (:mod:`ledger.samples`); each
example runs as its own process, as a user would run it, with ``--node`` and ``--dir``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.samples import load_samples
from tests.e2e.netharness import LocalNet, free_base_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path_factory.mktemp("examples") / "net")
    network.start_all()
    try:
        started = time.monotonic()
        load_samples(network.dir, [network.url(i) for i in range(network.n)])
        print(f"samples loaded in {time.monotonic() - started:.1f} s")
        yield network
    finally:
        network.stop_all()


def example(net: LocalNet, name: str, *args: str, node: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    urls = node or ",".join(net.url(i) for i in range(net.n))
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--node", urls, "--dir", str(net.dir),
         *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_verify_certificate_example(net: LocalNet) -> None:
    """Goal: verify_certificate.py prints VALID with every check line for a valid demo
    licence (exit 0), INVALID naming the revocation for a revoked one (exit 1), and a
    connection error (exit 2) when no node answers. Method: run it on the demo documents
    written by the samples; the first node URL given is dead, so failover is exercised."""
    dead = f"http://127.0.0.1:{free_base_port(1)}"
    good = example(net, "verify_certificate.py", "--agency", "swj",
                   node=f"{dead},{net.url(1)}")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("VALID: ") and "agreement R1" in good.stdout, good.stdout
    for check in ("document", "signature", "anchored", "status", "validity",
                  "issuer_authorised", "recognised", "proofs"):
        assert f"✔ {check}" in good.stdout, good.stdout
    assert "verdict reached here from" in good.stdout

    revoked = example(net, "verify_certificate.py", str(net.dir / "certs" / "licence-rcwl.json"))
    assert revoked.returncode == 1, revoked.stdout + revoked.stderr
    assert revoked.stdout.startswith("INVALID: ") and "✘ status" in revoked.stdout
    assert "REVOKED" in revoked.stdout

    down = example(net, "verify_certificate.py", node=dead)
    assert down.returncode == 2 and "no node answered" in down.stderr, down.stderr


def test_issue_certificate_example(net: LocalNet, tmp_path: Path) -> None:
    """Goal: issue_certificate.py signs and anchors a licence (exit 0) and writes a document
    that then verifies VALID; an issuer not authorised for the type is refused with the
    executor's reason (exit 1) and nothing is written. Method: run it, then
    verify_certificate.py on the written document; run it again as 人社局 (which issues only
    permits) asking for a business licence."""
    out = tmp_path / "issued.json"
    issued = example(net, "issue_certificate.py", "--out", str(out))
    assert issued.returncode == 0, issued.stdout + issued.stderr
    assert issued.stdout.startswith("issued ") and "(营业执照)" in issued.stdout
    assert "on the ledger at height" in issued.stdout and out.exists()
    cert_id = issued.stdout.split()[1]
    check = example(net, "verify_certificate.py", str(out))
    assert check.returncode == 0 and check.stdout.startswith(f"VALID: {cert_id}"), check.stdout

    forged = tmp_path / "forged.json"
    refused = example(net, "issue_certificate.py", "--issuer", "rsj", "--type",
                      "11100000MB1F000067001", "--out", str(forged))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith("refused by the network: ") and "not authorised" in (
        refused.stdout), refused.stdout
    assert not forged.exists()


def test_trace_fund_example(net: LocalNet) -> None:
    """Goal: trace_fund.py prints the demo appropriation's balance sheet and forward trail
    with exact amounts in yuan (exit 0) as the auditor's signed read. Method: run it with
    no --tag (the oldest appropriation: the demo's FJ2026-ZD-0001) and check the lines
    against the sample flows of fiscal/samples.py."""
    run = example(net, "trace_fund.py")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.startswith("fund FJ2026-ZD-0001: 义务教育薄弱环节改善与能力提升"), out
    assert "received ¥20,000,000.00" in out
    assert "allocation    FJ2026-ZD-0001 → FJ2026-ZD-0001.1: ¥12,000,000.00" in out
    assert "福州闽江示例建设工程有限公司" in out and "¥2,350,000.00 in 1 payment(s)" in out, out
    assert "¥116,500.00 in 3 payment(s)" in out, out  # the split payments to the logistics firm
    assert "¥3,479,000.00 paid to 4 payee(s)" in out, out
    assert "signed read by the auditor" in out
