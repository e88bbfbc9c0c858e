"""E-certificates on a real 4-node network, driven through the `govledger cert` CLI.

Issue 5's "Done when": issue -> verify VALID online and offline -> suspend -> INVALID
(status) -> reinstate -> VALID -> revoke -> INVALID; renew -> old SUPERSEDED, new VALID;
an unauthorised issuer is rejected; a tampered document and a tampered bundle are
INVALID; `openssl dgst -sm3 -verify` prints Verified OK; a bundle produced before a
validator-set change still verifies after it. The nodes are real `node.py run`
processes (tests/e2e/netharness.py); the CLI runs in-process (client.cli.main).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import main as cli
from client.sdk import Client
from ledger.chain import effective_height
from ledger.crypto import load_private_key_file
from ledger.governance import PROPOSE_TX, VOTE_TX
from tests.e2e.netharness import LocalNet

pytestmark = pytest.mark.slow
LICENCE = "11100000MB1F000067001"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path_factory.mktemp("certs") / "net")
    network.start_all()
    try:
        yield network
    finally:
        network.stop_all()


class Cli:
    """Runs `govledger --json --node URL ...` in-process and parses its JSON output."""

    def __init__(self, net: LocalNet, capsys: pytest.CaptureFixture[str], tmp: Path) -> None:
        self.net, self.capsys, self.tmp = net, capsys, tmp
        self.orgs = {o["slug"]: o for o in net.orgs}

    def key(self, slug: str) -> str:
        return str(self.net.dir / self.orgs[slug]["key"])

    def uscc(self, slug: str) -> str:
        return str(self.orgs[slug]["uscc"])

    def __call__(self, *args: str) -> tuple[int, dict[str, Any]]:
        self.capsys.readouterr()
        code = cli(["--json", "--node", self.net.url(0), *args])
        out = self.capsys.readouterr().out.strip()
        return code, (json.loads(out.splitlines()[-1]) if out else {})

    def issue(self, holder: str, issuer: str = "scjgj", out: str = "doc.json"
              ) -> tuple[int, dict[str, Any], Path]:
        path = self.tmp / out
        code, value = self(
            "cert", "issue", "--type", LICENCE, "--holder-name", self.orgs[holder]["name"],
            "--holder-code", self.uscc(holder), "--holder-code-type", "001",
            "--valid-from", "2025-01-01", "--long-term",
            "--field", "entity_type=有限责任公司", "--field", "legal_representative=林示例",
            "--field", "established=2023-03-15", "--field", "address=福州市鼓楼区示例路1号",
            "--key", self.key(issuer), "--out", str(path))
        return code, value, path

    def verify(self, target: str, *extra: str) -> dict[str, Any]:
        code, value = self("cert", "verify", target, *extra)
        assert code == (0 if value.get("verdict") == "VALID" else 1), (code, value)
        return value

    def offline(self, target: str, bundle: Path, *extra: str) -> dict[str, Any]:
        return self.verify(target, "--bundle", str(bundle), "--genesis",
                           str(self.net.dir / "genesis.json"), "--offline", *extra)

    def proof(self, cert_id: str, name: str, agency: str | None = None) -> Path:
        path = self.tmp / name
        args = ["cert", "proof", cert_id, "-o", str(path)]
        if agency:
            args += ["--agency", agency]
        code, value = self(*args)
        assert code == 0 and path.exists(), value
        return path


def failed(verdict: dict[str, Any]) -> set[str]:
    return {c["name"] for c in verdict["checks"] if not c["ok"]}


@pytest.fixture
def run(net: LocalNet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(net, capsys, tmp_path)


def test_lifecycle_online_and_offline(run: Cli) -> None:
    """Goal: the lifecycle through the CLI with verdicts online (node's and local from a
    node's bundle) and offline (bundle + genesis only): issue VALID, suspend INVALID on
    status, reinstate VALID, revoke INVALID; renew: old SUPERSEDED, new VALID. Method: each
    step is a CLI command with --json; offline checks use freshly saved bundles."""
    swj = run.uscc("swj")
    code, issued, doc = run.issue("slkj")
    assert code == 0 and issued["cert_id"] and issued["height"] >= 1, issued
    cert_id = issued["cert_id"]
    genesis = str(run.net.dir / "genesis.json")
    assert run.verify(str(doc), "--as-agency", swj)["verdict"] == "VALID"
    local = run.verify(str(doc), "--genesis", genesis, "--as-agency", swj)
    assert local["verdict"] == "VALID" and local["agreement"] == "R1"
    bundle = run.proof(cert_id, "issued.bundle", swj)
    assert run.offline(str(doc), bundle, "--as-agency", swj)["verdict"] == "VALID"

    code, value = run("cert", "suspend", cert_id, "--reason", "整改", "--key", run.key("scjgj"))
    assert code == 0 and value["new_status"] == "SUSPENDED", value
    suspended = run.verify(str(doc))
    assert suspended["verdict"] == "INVALID" and failed(suspended) == {"status"}
    assert "SUSPENDED" in next(c["detail"] for c in suspended["checks"]
                               if c["name"] == "status")
    offline = run.offline(str(doc), run.proof(cert_id, "suspended.bundle"))
    assert offline["verdict"] == "INVALID" and failed(offline) == {"status"}

    assert run("cert", "reinstate", cert_id, "--reason", "整改完成",
               "--key", run.key("scjgj"))[0] == 0
    assert run.verify(cert_id)["verdict"] == "VALID"
    assert run.offline(str(doc), run.proof(cert_id, "reinstated.bundle"))["verdict"] == "VALID"

    assert run("cert", "revoke", cert_id, "--reason", "吊销", "--key", run.key("scjgj"))[0] == 0
    revoked = run.verify(str(doc), "--genesis", genesis)
    assert revoked["verdict"] == "INVALID" and failed(revoked) == {"status"}
    code, shown = run("cert", "show", cert_id)
    assert code == 0 and [e["event"] for e in shown["history"]] == [
        "issue", "suspend", "reinstate", "revoke"]

    code, first, doc1 = run.issue("mjjs", out="v1.json")
    assert code == 0
    new_doc = run.tmp / "v2.json"
    code, renewed = run("cert", "renew", first["cert_id"], "--doc", str(doc1), "--valid-from",
                        "2026-01-01", "--valid-until", "2046-12-31", "--key", run.key("scjgj"),
                        "--out", str(new_doc))
    assert code == 0 and renewed["cert_id"].split(".")[-2] == "002", renewed
    old = run.verify(str(doc1))
    assert old["verdict"] == "INVALID" and old["status"] == "SUPERSEDED"
    assert renewed["cert_id"] in next(c["detail"] for c in old["checks"] if c["name"] == "status")
    assert run.verify(str(new_doc), "--genesis", genesis)["verdict"] == "VALID"
    code, held = run("cert", "holder", run.uscc("mjjs"), "--all")
    assert [(c["cert_id"], c["status"]) for c in held["certs"]] == [
        (renewed["cert_id"], "VALID"), (first["cert_id"], "SUPERSEDED")]


def test_unauthorised_tampered_and_openssl(run: Cli) -> None:
    """Goal: an issuer not authorised for the type is rejected (exit 1, with the reason); a
    tampered document and a tampered bundle are INVALID offline; the exported signature
    verifies with stock OpenSSL (`Verified OK`). Method: 人社局 tries to issue a licence;
    edit a document field and a bundle byte; run `cert export --openssl` and openssl."""
    code, value, _ = run.issue("rcwl", issuer="rsj", out="forged.json")
    assert code == 1 and "not authorised" in value.get("detail", "") + str(value.get("reason"))
    assert not (run.tmp / "forged.json").exists()

    code, issued, doc = run.issue("rcwl")
    assert code == 0
    bundle = run.proof(issued["cert_id"], "b.bundle")
    data = json.loads(doc.read_text(encoding="utf-8"))
    data["certificate"]["valid_until"] = "2099-12-31"
    tampered_doc = run.tmp / "tampered.json"
    tampered_doc.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    verdict = run.offline(str(tampered_doc), bundle)
    assert verdict["verdict"] == "INVALID" and {"signature", "anchored"} <= failed(verdict)
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 3] ^= 0x08
    tampered_bundle = run.tmp / "tampered.bundle"
    tampered_bundle.write_bytes(bytes(raw))
    verdict = run.offline(str(doc), tampered_bundle)
    assert verdict["verdict"] == "INVALID" and "proofs" in failed(verdict)

    out_dir = run.tmp / "openssl"
    code, exported = run("cert", "export", issued["cert_id"], "--doc", str(doc),
                         "--openssl", str(out_dir))
    assert code == 0 and exported["key_from"] == "ledger", exported
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command")
    result = subprocess.run(
        [openssl, "dgst", "-sm3", "-verify", f"{out_dir}/issuer.pem", "-sigopt",
         "distid:1234567812345678", "-signature", f"{out_dir}/sig.der", f"{out_dir}/doc.bin"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


def test_bundle_from_before_a_validator_set_change(run: Cli) -> None:
    """Goal: a bundle produced before the committee changes the validator set still
    verifies offline after the change, and a new bundle walks the change from genesis.
    Method: issue and save a bundle; the committee (4 of 5 departments) adds a 5th
    validator whose node is not running (4 of 5 still commit); anchor documents until the
    effective height has passed; verify the old bundle and a new one offline."""
    net = run.net
    code, issued, doc = run.issue("slkj", out="before.json")
    assert code == 0
    before = run.proof(issued["cert_id"], "before.bundle")

    clients = {slug: Client(net.url(0), key=load_private_key_file(run.key(slug)))
               for slug in ("scjgj", "rsj", "czj", "sjj")}
    new_key = net.genesis.crypto.generate_key()
    reply = clients["scjgj"].submit(PROPOSE_TX, {"kind": "add_validator", "params": {
        "public_key": new_key.public_key().raw.hex(), "name": "node-extra",
        "address": f"127.0.0.1:{net.base_port + net.n}"}})
    assert reply["result"]["ok"], reply
    number = reply["result"]["data"]["proposal_id"]
    for slug in ("rsj", "czj", "sjj"):
        reply = clients[slug].submit(VOTE_TX, {"proposal_id": number, "approve": True})
        assert reply["result"]["ok"], reply
    assert reply["result"]["data"]["status"] == "passed", reply
    target = effective_height(reply["height"], 16)
    key = net.org_key("issuer")
    deadline = time.monotonic() + 90
    while net.status(0)["height"] <= target:
        assert time.monotonic() < deadline, "the chain did not pass the effective height"
        assert net.submit(0, net.anchor_tx(key, "advance"))["status"] == "committed"
    assert len(net.status(0)["validators"]) == 5

    verdict = run.offline(str(doc), before)
    assert verdict["verdict"] == "VALID", verdict
    assert "through" not in next(c["detail"] for c in verdict["checks"] if c["name"] == "proofs")
    after = run.proof(issued["cert_id"], "after.bundle")
    verdict = run.offline(str(doc), after)
    assert verdict["verdict"] == "VALID", verdict
    assert "through 1 validator-set change" in next(
        c["detail"] for c in verdict["checks"] if c["name"] == "proofs")

