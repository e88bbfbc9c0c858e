"""``govledger import`` end to end: the sample CSV files into a real 4-node network.

The nodes are real ``node.py run`` processes (tests/e2e/netharness.py) with the sample
organisations; the CLI runs as ``python -m client`` in its own process, as a user would
run it, so its exit codes and printed report are what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.sdk import request
from tests.e2e.netharness import ROOT, LocalNet

pytestmark = pytest.mark.slow
DATA = ROOT / "examples" / "data"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path_factory.mktemp("import") / "net")
    network.start_all()
    try:
        yield network
    finally:
        network.stop_all()


def govledger(net: LocalNet, *args: str) -> tuple[int, str]:
    """Run ``python -m client --node URL …`` as a subprocess: (exit code, stdout)."""
    done = subprocess.run([sys.executable, "-m", "client", "--node", net.url(0), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.returncode, done.stdout + done.stderr


def as_json(net: LocalNet, *args: str) -> tuple[int, dict[str, Any]]:
    code, out = govledger(net, "--json", *args)
    return code, json.loads(out.strip().splitlines()[-1])


def key(net: LocalNet, slug: str) -> str:
    return str(net.dir / next(o for o in net.orgs if o["slug"] == slug)["key"])


def test_import_samples_then_bad_rows(net: LocalNet, tmp_path: Path) -> None:
    """Goal: examples/data/certs.csv and flows.csv import cleanly (exit 0, every row
    committed, no red-flag alert — the payees' licences come from certs.csv), with
    documents written and balances exact; importing certs.csv again issues nothing (each
    row names the same certificate) and leaves the documents as they were; importing
    flows.csv again — after a run cut short, and after a complete one — records each
    flow once (the rows' vouchers); the
    files with bad rows exit 1 and report each
    bad row by line number and reason, whether it failed validation here, was refused by
    the node, or failed on the ledger. Method: run the CLI as a subprocess against a fresh
    4-node network, then read the ledger over HTTP."""
    docs = tmp_path / "docs"
    code, out = as_json(net, "import", "certs", str(DATA / "certs.csv"), "--key",
                        key(net, "scjgj"), "--out-dir", str(docs))
    assert code == 0, out
    assert (out["rows"], out["submitted"], out["committed"], out["rejected"]) == (4, 4, 4, 0)
    cert_ids = [row["cert_id"] for row in out["committed_rows"]]
    assert sorted(p.stem for p in docs.glob("*.json")) == sorted(cert_ids)
    record = request(f"{net.url(1)}/v1/certs/{cert_ids[0]}")
    assert record["status"] == "VALID" and record["holder"] == "91350100MA2Y00044Y"
    # The same file again: each row names the same certificate, which is there already.
    written = {p.name: p.read_bytes() for p in docs.glob("*.json")}
    code, text = govledger(net, "import", "certs", str(DATA / "certs.csv"), "--key",
                           key(net, "scjgj"), "--out-dir", str(docs))
    assert code == 0, text
    assert "4 rows — 0 submitted, 0 committed, 0 rejected, 4 already recorded" in text
    assert f"line 2: certificate {cert_ids[0]} — issued at height" in text
    assert {p.name: p.read_bytes() for p in docs.glob("*.json")} == written
    code, text = govledger(net, "import", "certs", str(DATA / "certs.csv"), "--key",
                           key(net, "scjgj"), "--dry-run")
    assert code == 0, text
    assert ("4 of the valid rows name certificates already on the ledger (line 2, 3, 4, 5)"
            in " ".join(text.split())), text
    assert len(request(f"{net.url(2)}/v1/certs/holders/91350100MA2Y00044Y")["certs"]) == 1

    # An import cut short after its first four rows, then the whole file, then the whole
    # file again: the rows' vouchers make the re-runs record each flow once.
    lines = (DATA / "flows.csv").read_text(encoding="utf-8").splitlines()
    partial = tmp_path / "flows_first_rows.csv"
    partial.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    code, out = as_json(net, "import", "flows", str(partial), "--key", key(net, "czj"))
    assert code == 0 and (out["committed"], out["recorded"]) == (4, 0), out
    child = next(r for r in out["committed_rows"] if r["kind"] == "ALLOCATION")["child_tag"]
    assert child == "FZ2026-IMP-0002.1"
    first = {r["line"]: r["flow_id"] for r in out["committed_rows"]}
    code, out = as_json(net, "import", "flows", str(DATA / "flows.csv"), "--key",
                        key(net, "czj"))
    assert code == 0, out
    assert (out["rows"], out["submitted"], out["committed"], out["rejected"]) == (7, 3, 3, 0)
    assert {r["line"]: r["flow_id"] for r in out["recorded_rows"]} == first
    assert out["alerts"] == 0, out["committed_rows"]
    code, text = govledger(net, "import", "flows", str(DATA / "flows.csv"), "--key",
                           key(net, "czj"))
    assert code == 0, text
    assert "7 rows — 0 submitted, 0 committed, 0 rejected, 7 already recorded" in text
    assert f"line 2: voucher 记-2026-0101 — flow {first[2]} at height" in text
    fund = request(f"{net.url(2)}/v1/funds/FZ2026-IMP-0001")
    assert fund["paid"] == 186_000_000 + 92_500_050 + 300_000
    assert fund["balance"] == 500_000_000 - fund["paid"]
    found = request(f"{net.url(3)}/v1/fiscal/vouchers?org={fund['holder']}&voucher="
                    "%E8%AE%B0-2026-0104")  # 记-2026-0104: the first payment
    assert found["kind"] == "PAYMENT" and found["amount"] == 186_000_000

    code, out = as_json(net, "import", "certs", str(DATA / "certs_with_errors.csv"), "--key",
                        key(net, "scjgj"), "--out-dir", str(docs))
    assert code == 1 and (out["committed"], out["rejected"]) == (1, 1)
    assert [(r["line"], r["stage"]) for r in out["rejected_rows"]] == [(3, "validation")]

    code, text = govledger(net, "import", "flows", str(DATA / "flows_with_errors.csv"),
                           "--key", key(net, "czj"))
    assert code == 1, text
    assert "3 rows — 3 submitted, 2 committed, 1 rejected" in text
    assert ("line 4: PAYMENT of ¥500,000.00 from FZ2026-IMP-0003: insufficient balance: fund "
            "FZ2026-IMP-0003 has 18000000 fen (¥180,000.00) available; payment of 50000000 "
            "fen (¥500,000.00) asked") in text

    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join([
        "kind,amount_fen,from,purpose,function_code,payee_uscc",
        "PAYMENT,12000000,FZ2026-IMP-0001,设备维护,2050202,91350100MA2Y00044Y",
        "PAYMENT,12.5,FZ2026-IMP-0001,设备维护,2050202,91350100MA2Y00044Y",
        "RETURN,100,FZ2026-IMP-0001,,,",
        "PAYMENT,100,FZ2026-IMP-0002.1,抽检,2013816,91350100MA2Y00060L",
    ]) + "\n", encoding="utf-8")
    code, out = as_json(net, "import", "flows", str(mixed), "--key", key(net, "czj"))
    assert code == 1 and (out["rows"], out["committed"], out["rejected"]) == (4, 1, 3)
    rejected = {r["line"]: r for r in out["rejected_rows"]}
    assert rejected[3]["stage"] == "validation" and "'12.5'" in rejected[3]["reason"]
    assert rejected[4]["stage"] == "ledger" and "no parent fund" in rejected[4]["reason"]
    assert rejected[5]["stage"] == "admission" and "held by" in rejected[5]["reason"]
