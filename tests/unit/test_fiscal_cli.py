"""``govledger audit verify-chain`` and the fund commands' argument checks (no network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import plyvel
import pytest

from client.cli import main as govledger
from fiscal.model import PAY_TX
from ledger.block import Block
from ledger.codec import decode, encode
from ledger.store import height_key
from tests.fiscal_harness import FiscalChain, payment, tree


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = govledger(["--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_verify_chain_reports_the_first_broken_height(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: verify-chain replays a node's LevelDB folder from the genesis file with the
    node's own handlers and names the first broken height. Method: a chain of fiscal
    blocks on LevelDB; verify (intact, exit 0); change one payment's amount inside block 5
    (block body only) and verify again (exit 1, height 5)."""
    fc = FiscalChain(store_dir=tmp_path / "data" / "ledger")
    tags = tree(fc)
    fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_000))
    fc.close()
    genesis = tmp_path / "genesis.json"
    genesis.write_text(fc.net.genesis.to_json(), encoding="utf-8")
    code, out = run(capsys, "audit", "verify-chain", "--data", str(tmp_path),
                    "--genesis", str(genesis))
    assert (code, out["ok"], out["head"], out["broken_height"]) == (0, True, 5, None)
    db = plyvel.DB(str(tmp_path / "data" / "ledger"))
    try:
        key = b"b:" + height_key(5)
        block = decode(db.get(key), Block)
        tx = block.txs[0]
        forged = dataclasses.replace(tx, payload={**tx.payload, "amount": 999_999})
        db.put(key, encode(Block(block.header, [forged])))
    finally:
        db.close()
    code, out = run(capsys, "audit", "verify-chain", "--data", str(tmp_path / "data"),
                    "--genesis", str(genesis))
    assert (code, out["ok"], out["broken_height"], out["checked_height"]) == (1, False, 5, 4)
    assert "tx_root" in str(out["reason"])


@pytest.mark.parametrize("args", [
    ["fund", "pay", "--from", "T", "--payee-uscc", "X", "--payee-id", "Y", "--amount", "1",
     "--purpose", "p", "--function-code", "2050202", "--value-date", "2026-01-01",
     "--key", "k.pem"],
    ["fund", "allocate", "--from", "T", "--to-org", "X", "--region", "350100",
     "--amount", "1.50", "--key", "k.pem"],
    ["fund", "appropriate", "--tag", "T", "--amount", "-5", "--year", "2026", "--doc-no", "d",
     "--function-code", "2050202", "--project", "p", "--project-end", "2026-12-31",
     "--key", "k.pem"],
    ["fund", "trail", "T", "--format", "svg", "--key", "k.pem"],
    ["audit", "alerts", "--rule", "nonsense", "--key", "k.pem"],
])
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    """Goal: malformed arguments (two payees, fractional or negative fen, unknown format or
    rule) exit with status 2 before anything is sent. Method: argparse's exit code."""
    with pytest.raises(SystemExit) as exc:
        govledger(args)
    assert exc.value.code == 2


@pytest.mark.parametrize(("args", "message"), [
    (["fund", "balance", "a/b"], "'a/b' is not a fund tag"),
    (["fund", "show", "a b"], "'a b' is not a fund tag"),
    (["fund", "trail", "../x", "--key", "k.pem"], "'../x' is not a fund tag"),
    (["fund", "return", "--from", "T#1", "--amount", "1", "--key", "k.pem"],
     "'T#1' is not a fund tag"),
    (["fund", "trail", "T", "--backward", "xyz", "--key", "k.pem"], "64 hex digits"),
])
def test_tags_and_payment_ids_are_checked_before_they_go_into_a_url(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: a fund tag or payment id that is not one is a usage error naming the value
    (a tag with '/' once reached the node as another path and came back as a bare "Not
    Found"; one with a space failed as "no node answered"). Method: argparse's exit code
    and message, with no node to ask."""
    with pytest.raises(SystemExit) as exc:
        govledger(["--node", "http://127.0.0.1:9", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unreachable_node_is_a_connection_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: no node answering is exit 2. Method: a public query against a closed port."""
    code = govledger(["--node", "http://127.0.0.1:9", "fund", "balance", "T"])
    assert code == 2
