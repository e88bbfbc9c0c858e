"""`govledger cert verify --offline`, `cert export --openssl`, and where `cert issue` keeps the
signed document, with no network.

Documents, bundles and the genesis file come from an in-process chain and are written to
files; the CLI is run in-process (client.cli.main) and its --json output parsed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from certs.bundle import encode_bundle
from certs.document import parse_document
from client.cli import Context, main
from client.cmd_cert import _send_document
from client.sdk import NodeError, Unreachable
from tests.unit.certs_harness import CertNet

SWJ = "11350100MB1F00049U"


def _openssl3() -> str | None:
    path = shutil.which("openssl")
    if path is None:
        return None
    out = subprocess.run([path, "version"], capture_output=True, text=True).stdout
    match = re.match(r"OpenSSL (\d+)\.", out)
    return path if match and int(match.group(1)) >= 3 else None


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """genesis.json, a licence document, its bundle (with 税务局's recognition) on disk."""
    folder = tmp_path_factory.mktemp("cli")
    net = CertNet()
    doc, result = net.issue()
    assert result.ok
    paths = {"genesis": folder / "genesis.json", "doc": folder / "licence.json",
             "bundle": folder / "licence.bundle", "dir": folder}
    paths["genesis"].write_text(net.genesis.to_json(), encoding="utf-8")
    paths["doc"].write_text(doc.to_json(), encoding="utf-8")
    paths["bundle"].write_bytes(encode_bundle(net.bundle(doc.cert_id, SWJ)))
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["--node", "http://127.0.0.1:9", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith("{") else {"text": out})


def test_offline_verify_valid(files: dict[str, Path], capsys: pytest.CaptureFixture[str]
                              ) -> None:
    """Goal: `cert verify DOC --bundle F --genesis G --offline --as-agency USCC --json` gives
    VALID (exit 0) with a `checks` list of {name, ok, detail}, using no network (the node
    URL points nowhere). Method: run the CLI in-process."""
    code, out = run(capsys, "--json", "cert", "verify", str(files["doc"]), "--bundle",
                    str(files["bundle"]), "--genesis", str(files["genesis"]), "--offline",
                    "--as-agency", SWJ)
    assert code == 0 and out["verdict"] == "VALID", out
    checks = out["checks"]
    assert isinstance(checks, list) and all(set(c) == {"name", "ok", "detail"} for c in checks)
    assert out["agreement"] == "R1"


def test_offline_verify_json_flag_after_the_verb(files: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: --json also works after the sub-command. Method: place it at the end."""
    code, out = run(capsys, "cert", "verify", str(files["doc"]), "--bundle",
                    str(files["bundle"]), "--genesis", str(files["genesis"]), "--offline",
                    "--json")
    assert code == 0 and out["verdict"] == "VALID"


def test_offline_verify_tampered_inputs(files: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    """Goal: a tampered document or bundle gives INVALID (exit 1) naming the failing check;
    a date before the validity window gives INVALID on validity. Method: edit a copy of
    each file; run verify --offline."""
    doc = json.loads(files["doc"].read_text(encoding="utf-8"))
    doc["certificate"]["holder_name"] = "冒名公司"
    (tmp_path / "doc.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    bundle = bytearray(files["bundle"].read_bytes())
    bundle[len(bundle) // 2] ^= 0x40
    (tmp_path / "b.bundle").write_bytes(bytes(bundle))
    base = ["--json", "cert", "verify"]
    offline = ["--genesis", str(files["genesis"]), "--offline"]
    code, out = run(capsys, *base, str(tmp_path / "doc.json"), "--bundle",
                    str(files["bundle"]), *offline)
    failed = {c["name"] for c in out["checks"] if not c["ok"]}  # type: ignore[attr-defined]
    assert code == 1 and out["verdict"] == "INVALID" and {"signature", "anchored"} <= failed
    code, out = run(capsys, *base, str(files["doc"]), "--bundle", str(tmp_path / "b.bundle"),
                    *offline)
    failed = {c["name"] for c in out["checks"] if not c["ok"]}  # type: ignore[attr-defined]
    assert code == 1 and "proofs" in failed
    code, out = run(capsys, *base, str(files["doc"]), "--bundle", str(files["bundle"]),
                    *offline, "--at", "2024-12-31")
    failed = {c["name"] for c in out["checks"] if not c["ok"]}  # type: ignore[attr-defined]
    assert code == 1 and "validity" in failed


def test_offline_verify_usage_errors(files: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: missing trust root or bundle, or an argument that is neither a file nor an
    identifier, is a usage error (exit 2). Method: three runs."""
    assert main(["cert", "verify", str(files["doc"]), "--bundle", str(files["bundle"]),
                 "--offline"]) == 2
    assert main(["cert", "verify", str(files["doc"]), "--genesis", str(files["genesis"]),
                 "--offline"]) == 2
    assert main(["cert", "verify", "no-such-file.json", "--offline"]) == 2
    capsys.readouterr()


@pytest.mark.skipif(_openssl3() is None, reason="no OpenSSL >= 3 command found")
def test_export_for_openssl(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                            tmp_path: Path) -> None:
    """Goal: `cert export DOC --openssl DIR` writes doc.bin (the exact signed bytes, domain
    tag included), sig.der and issuer.pem, and stock OpenSSL 3 prints "Verified OK"; a
    changed doc.bin fails. Method: export with --offline (key from the document), run
    `openssl dgst -sm3 -verify ... -sigopt distid:1234567812345678`."""
    out_dir = tmp_path / "ossl"
    code, out = run(capsys, "--json", "cert", "export", str(files["doc"]), "--openssl",
                    str(out_dir), "--offline")
    assert code == 0 and out["files"] == ["doc.bin", "sig.der", "issuer.pem"]
    assert (out_dir / "doc.bin").read_bytes().startswith(b"govledger/cert/v1\x00")
    command = ["openssl", "dgst", "-sm3", "-verify", f"{out_dir}/issuer.pem", "-sigopt",
               "distid:1234567812345678", "-signature", f"{out_dir}/sig.der",
               f"{out_dir}/doc.bin"]
    assert str(out["command"]).split() == command
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr
    data = bytearray((out_dir / "doc.bin").read_bytes())
    data[-1] ^= 1
    (out_dir / "doc.bin").write_bytes(bytes(data))
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


class _Answers:
    """A client whose submissions get ``answer``: a reply, or an exception raised."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def submit(self, tx_type: str, payload: object) -> object:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_an_issued_document_is_kept_until_its_fate_is_known(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: `cert issue` writes the signed document to --out once its certificate is
    committed; when the command stops waiting, or loses its connection, before it knows,
    the document waits in OUT.pending and the user is told where (the certificate may
    still commit, and nobody could sign that document again); a refusal or a rejection
    leaves no file; interrupted (Ctrl-C) while waiting, it keeps the document and says so.
    Method: _send_document against a client that answers each way."""
    doc, _ = CertNet().issue()
    ctx = Context(argparse.Namespace(json=False))
    committed = {"tx_id": "ab" * 32, "status": "committed", "height": 9,
                 "result": {"ok": True, "data": {}}}
    rejected = {**committed, "result": {"ok": False, "reason": "already issued"}}
    waiting = {"tx_id": "ab" * 32, "status": "pending", "detail": "not committed within 30 s"}
    cases: list[tuple[object, set[str], int | type[BaseException]]] = [
        (committed, {"c.json"}, 0), (rejected, set(), 1), (waiting, {"c.json.pending"}, 1),
        (Unreachable("connection reset"), {"c.json.pending"}, Unreachable),
        (KeyboardInterrupt(), {"c.json.pending"}, KeyboardInterrupt),
        (NodeError(403, "forbidden", "not authorised"), set(), NodeError)]
    for n, (answer, files, outcome) in enumerate(cases):
        folder = tmp_path / str(n)
        folder.mkdir()
        client = _Answers(answer)
        if isinstance(outcome, int):
            assert _send_document(client, ctx, "cert.issue", {}, "issued",  # type: ignore[arg-type]
                                  doc, folder / "c.json") == outcome
        else:
            with pytest.raises(outcome) as caught:
                _send_document(client, ctx, "cert.issue", {}, "issued",  # type: ignore[arg-type]
                               doc, folder / "c.json")
            if outcome is Unreachable:
                assert f"kept in {folder / 'c.json.pending'}" in str(caught.value)
        assert {p.name for p in folder.iterdir()} == files, answer
        for name in files:
            assert parse_document((folder / name).read_bytes()) == doc
    assert capsys.readouterr().err.count("the signed document is kept in") == 2  # wait, ^C
