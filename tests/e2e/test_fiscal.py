"""Fiscal oversight end to end on a real 4-node network, driven through the ``govledger`` CLI.

The issue's "Done when": appropriate ¥1,000,000 → allocate to two sub-units → pay
enterprises and a citizen → an over-allocation is rejected with the balance in the
message → forward and backward trails are complete and exact → a payment to an
enterprise whose licence was revoked raises the licence alert → a split payment pattern
raises the split alert → a non-auditor is refused the trail and the auditor's query
appears in the access log → no clear ID number appears anywhere in the LevelDB files.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from client import cmd_fund
from client.cli import main as govledger
from client.sdk import Client, NodeError, request
from fiscal.samples import CANGSHAN, COMMITTEE, GULOU, enrol
from ledger.crypto import load_private_key_file
from ledger.ids import make_citizen_id
from tests.e2e.netharness import LocalNet

pytestmark = pytest.mark.slow

CITIZEN = make_citizen_id("350102", date(1988, 11, 23), "047")
CITIZEN_NAME = "陈美玲"
CITIZEN_ACCOUNT = "6217001830012345678"
MARKER = "E2E-MARKER-城乡居民补助"
TAG = "E2E-2026-001"
LICENCE = "11100000MB1F000067001"
CERTS = importlib.util.find_spec("certs.app") is not None


class Cli:
    """Runs ``govledger --json …`` in this process and returns (exit code, JSON)."""

    def __init__(self, net: LocalNet, capsys: pytest.CaptureFixture[str]) -> None:
        self.node = ",".join(net.url(i) for i in range(net.n))
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, Any]:
        self.capsys.readouterr()
        code = govledger(["--node", self.node, "--json", *args])
        out = self.capsys.readouterr().out.strip()
        return code, json.loads(out) if out else None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path_factory.mktemp("fiscal") / "net")
    network.start_all()
    try:
        yield network
    finally:
        network.stop_all()


def org(net: LocalNet, slug: str) -> dict[str, Any]:
    return next(o for o in net.orgs if o["slug"] == slug)


def key_path(net: LocalNet, slug: str) -> str:
    return str(net.dir / org(net, slug)["key"])


def test_fiscal_oversight_end_to_end(net: LocalNet, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: the issue's whole "Done when" scenario on real node processes.
    Method: the committee enrols two district finance bureaus; every money movement and
    query then goes through the govledger CLI with --json, checking exit codes, exact
    amounts, alerts and the access log; finally the nodes are stopped and every LevelDB
    file is searched for the citizen's ID number, name and bank account, with a marker
    from the same payment as positive control."""
    cli = Cli(net, capsys)
    urls = [net.url(i) for i in range(net.n)]
    suite = net.genesis.suite
    committee = [Client(urls, key=load_private_key_file(key_path(net, s), suite))
                 for s in COMMITTEE]
    unit_keys: dict[str, str] = {}
    for unit in (GULOU, CANGSHAN):
        key = net.genesis.crypto.generate_key()
        path = net.dir / "keys" / f"{unit.slug}.pem"
        key.save(path)
        enrol(committee, unit, key)
        unit_keys[unit.slug] = str(path)
    city, auditor = key_path(net, "czj"), key_path(net, "sjj")
    gulou, cangshan = unit_keys["glqczj"], unit_keys["csqczj"]
    today = net.status(0)["head_time"]
    value_date = (date(1970, 1, 1) + timedelta(milliseconds=today + 8 * 3600_000)).isoformat()

    # Appropriate ¥1,000,000, allocate to two sub-units.
    code, out = cli("fund", "appropriate", "--tag", TAG, "--amount", "100000000", "--year",
                    "2026", "--doc-no", "榕财预〔2026〕88号", "--function-code", "2080299",
                    "--project", "城乡困难群众救助", "--project-end", "2026-12-31", "--key", city)
    assert code == 0 and out["tag"] == TAG and out["balance"] == 100_000_000, out
    code, out = cli("fund", "allocate", "--from", TAG, "--to-org", GULOU.uscc, "--region",
                    "350102", "--amount", "60000000", "--key", city)
    assert code == 0, out
    gulou_tag = out["child_tag"]
    code, out = cli("fund", "allocate", "--from", TAG, "--to-org", CANGSHAN.uscc, "--region",
                    "350104000", "--amount", "30000000", "--key", city)
    assert code == 0, out
    cangshan_tag = out["child_tag"]
    assert (gulou_tag, cangshan_tag) == (f"{TAG}.1", f"{TAG}.2")

    # Pay enterprises (licensed by 市场监督管理局, when the certificates app is there) and a
    # citizen.
    slkj, mjjs, rcwl = (org(net, s)["uscc"] for s in ("slkj", "mjjs", "rcwl"))
    if CERTS:
        for slug in ("slkj", "mjjs"):
            issue_licence(net, cli, slug)
    paid: dict[str, str] = {}
    for payee, amount, voucher in ((slkj, "20000000", "付-2026-0001"),
                                   (mjjs, "15000000", "付-2026-0002")):
        code, out = cli("fund", "pay", "--from", gulou_tag, "--payee-uscc", payee, "--amount",
                        amount, "--purpose", "困难群众救助服务采购", "--function-code", "2080299",
                        "--value-date", value_date, "--voucher", voucher, "--key", gulou)
        assert code == 0 and len(out["payment_id"]) == 64, out
        paid[payee] = out["payment_id"]
    # The same voucher again (an officer retrying): refused, naming the first payment —
    # written with full-width characters, it is still the same voucher.
    code, out = cli("fund", "pay", "--from", gulou_tag, "--payee-uscc", slkj, "--amount",
                    "20000000", "--purpose", "困难群众救助服务采购", "--function-code", "2080299",
                    "--value-date", value_date, "--voucher", "付－２０２６－０００１",
                    "--key", gulou)
    assert code == 1 and paid[slkj] in json.dumps(out, ensure_ascii=False), out
    assert "付-2026-0001" in json.dumps(out, ensure_ascii=False), out
    code, out = cli("fund", "pay", "--from", gulou_tag, "--payee-id", CITIZEN, "--payee-name",
                    CITIZEN_NAME, "--payee-account", CITIZEN_ACCOUNT, "--amount", "500000",
                    "--purpose", MARKER, "--function-code", "2080299", "--value-date",
                    value_date, "--consortium-key", str(net.dir / "keys" / "consortium.key"),
                    "--key", gulou)
    assert code == 0, out
    citizen_payment = out["payment_id"]

    # Over-allocation: rejected, with the balance and the amount in the reason.
    code, out = cli("fund", "allocate", "--from", TAG, "--to-org", GULOU.uscc, "--region",
                    "350102000", "--amount", "20000000", "--key", city)
    assert code == 1 and out["ok"] is False, out
    assert out["reason"] == ("insufficient balance: fund E2E-2026-001 has 10000000 fen "
                             "(¥100,000.00) available; allocation of 20000000 fen "
                             "(¥200,000.00) asked")

    # Forward trail, complete and exact; backward trail up to the appropriation.
    code, trail = cli("fund", "trail", TAG, "--key", auditor)
    assert code == 0, trail
    edges = {(e["from"], e["to"], e["kind"]): e["amount"] for e in trail["edges"]}
    citizen_key = next(p["key"] for p in trail["payees"] if p["kind"] == "person")
    assert edges == {
        ("budget:榕财预〔2026〕88号", TAG, "APPROPRIATION"): 100_000_000,
        (TAG, gulou_tag, "ALLOCATION"): 60_000_000,
        (TAG, cangshan_tag, "ALLOCATION"): 30_000_000,
        (gulou_tag, "U" + slkj, "PAYMENT"): 20_000_000,
        (gulou_tag, "U" + mjjs, "PAYMENT"): 15_000_000,
        (gulou_tag, citizen_key, "PAYMENT"): 500_000,
    }
    person = next(p for p in trail["payees"] if p["kind"] == "person")
    assert person["name"] == "陈**" and person["id_masked"] == CITIZEN[:4] + "*" * 10 + CITIZEN[-4:]
    code, back = cli("fund", "trail", TAG, "--backward", citizen_payment, "--key", auditor)
    assert code == 0, back
    assert back["payment"]["amount"] == 500_000
    assert [(s["fund"]["tag"], [(f["kind"], f["amount"]) for f in s["inflows"]])
            for s in back["path"]] == [(gulou_tag, [("ALLOCATION", 60_000_000)]),
                                       (TAG, [("APPROPRIATION", 100_000_000)])]
    code, sheet = cli("fund", "balance", TAG)
    assert code == 0
    assert [(r["tag"], r["balance"], r["progress_bp"]) for r in sheet["rows"]] == [
        (TAG, 10_000_000, 3550), (gulou_tag, 24_500_000, 5916), (cangshan_tag, 30_000_000, 0)]
    # The same sheet computed here from proven fund records, trusting the genesis file only.
    code, proven = cli("fund", "balance", TAG, "--genesis", str(net.dir / "genesis.json"))
    assert code == 0 and proven["rows"] == sheet["rows"] and proven["verified_height"] >= 1
    code, revealed = cli("audit", "reveal", citizen_payment, "--key", auditor)
    assert code == 0 and revealed["payee"]["id_number"] == CITIZEN
    code, found = cli("fund", "payments", "--payee-id", CITIZEN, "--consortium-key",
                      str(net.dir / "keys" / "consortium.key"), "--key", auditor)
    assert code == 0 and [p["flow_id"] for p in found["payments"]] == [citizen_payment]
    code, totals = cli("fund", "totals", "--by", "region", "--prefix", "3501")
    assert code == 0 and totals["amount"] == 35_500_000
    _http_surface(net, gulou_tag)

    # Split payments: three payments below ¥100,000 to one enterprise, ¥120,000 together.
    for _ in range(3):
        code, out = cli("fund", "pay", "--from", cangshan_tag, "--payee-uscc", mjjs, "--amount",
                        "4000000", "--purpose", "社区救助物资配送", "--function-code", "2080299",
                        "--value-date", value_date, "--key", cangshan)
        assert code == 0, out
    assert out["rules"] == ["split_payment"]
    code, alerts = cli("audit", "alerts", "--rule", "split_payment", "--key", auditor)
    assert code == 0 and alerts["alerts"][0]["details"]["total_fen"] == 12_000_000
    assert len(alerts["alerts"][0]["flows"]) == 3
    # All of one payee's payments and their whole total, however many pages they take.
    monkeypatch.setattr(cmd_fund, "PAYMENTS_PAGE", 3)
    code, found = cli("fund", "payments", "--payee-uscc", mjjs, "--key", auditor)
    assert code == 0 and (found["count"], found["amount"]) == (4, 27_000_000), found
    assert len({p["flow_id"] for p in found["payments"]}) == 4 and found["next"] is None
    page = Client(urls[1], key=load_private_key_file(auditor, suite)).get(
        f"/v1/payees/{mjjs}/payments", {"limit": "3"}, signed=True)
    assert page["count"] == 3 and page["truncated"] and page["next"] is not None

    # A non-auditor is refused the trail; the auditor's queries are in the access log.
    code, out = cli("fund", "trail", gulou_tag, "--key", cangshan)
    assert code == 1 and out["status"] == 403 and "auditor role" in out["detail"], out
    code, out = cli("fund", "trail", TAG, "--key", key_path(net, "slkj"))
    assert code == 1 and out["status"] == 403, out
    code, log = cli("audit", "access-log", "--limit", "200", "--key", auditor)
    assert code == 0
    reads = {(e["name"], e["path"], json.dumps(e["query"], sort_keys=True))
             for e in log["entries"]}
    assert ("福州市审计局", f"/v1/funds/{TAG}/trail", "{}") in reads
    assert ("福州市审计局", f"/v1/funds/{TAG}/trail",
            json.dumps({"backward": citizen_payment})) in reads
    assert any(name == CANGSHAN.name and path == f"/v1/funds/{gulou_tag}/trail"
               for name, path, _ in reads)  # refused reads are logged too

    # The licence alert (cross-link to certs): licence issued, revoked, then paid.
    if CERTS:
        _licence_revoked_then_paid(net, cli, cangshan_tag, cangshan, auditor, rcwl, value_date)

    # No clear ID number, name or account in any node's LevelDB files.
    net.stop_all()
    secrets = [CITIZEN.encode(), CITIZEN_NAME.encode(), CITIZEN_ACCOUNT.encode()]
    seen_marker = False
    for i in range(net.n):
        for path in (net.dir / f"node{i}" / "data").rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                seen_marker = seen_marker or MARKER.encode() in blob
                for secret in secrets:
                    assert secret not in blob, (path, secret)
    assert seen_marker  # positive control: the payment's own text is findable
    if not CERTS:
        pytest.skip("everything passed except the licence red flag, which needs the "
                    "certificates app (certs/, issue 5) and was not checked")


def _http_surface(net: LocalNet, tag: str) -> None:
    """Public DOT output, OpenAPI paths, 4xx for bad input and 401 for an unsigned trail."""
    with urllib.request.urlopen(f"{net.url(1)}/v1/funds/{tag}/balance?format=dot") as resp:
        assert resp.headers["Content-Type"].startswith("text/vnd.graphviz")
        assert resp.read().decode().startswith('digraph "balance sheet"')
    paths = request(f"{net.url(2)}/v1/openapi.json")["paths"]
    assert {"/v1/funds/{tag}/trail", "/v1/alerts", "/v1/fiscal/totals",
            "/v1/fiscal/vouchers"} <= set(paths)
    vouchers = f"/v1/fiscal/vouchers?org={GULOU.uscc}&voucher="
    for path, status in (("/v1/funds/bad%20tag", 400), (f"/v1/funds/{tag}/balance?format=x", 400),
                         ("/v1/funds/NOPE", 404), ("/v1/fiscal/totals?by=year", 400),
                         (f"/v1/funds/{tag}/trail", 401), ("/v1/payees/123/payments", 400),
                         ("/v1/alerts?rule=nope", 400), ("/v1/fiscal/vouchers", 400),
                         (vouchers + "%E8%AE%B0%201", 400), (vouchers + "NONE-1", 404),
                         ("/v1/fiscal/vouchers?org=123&voucher=A1", 400)):
        with pytest.raises(NodeError) as exc:
            request(net.url(0) + path)
        assert exc.value.status == status, (path, exc.value)


def issue_licence(net: LocalNet, cli: Cli, slug: str) -> str:
    """A business licence (营业执照) for a sample enterprise, issued by 市场监督管理局."""
    holder = org(net, slug)
    code, out = cli("cert", "issue", "--type", LICENCE, "--holder-name", holder["name"],
                    "--holder-code", holder["uscc"], "--holder-code-type", "001",
                    "--valid-from", "2021-09-10", "--long-term",
                    "--field", "entity_type=有限责任公司", "--field", "legal_representative=黄示例",
                    "--field", "established=2021-09-10", "--field", "address=福建省福州市示例路1号",
                    "--key", key_path(net, "scjgj"), "--out", str(net.dir / f"{slug}.json"))
    assert code == 0, out
    return str(out["cert_id"])


def _licence_revoked_then_paid(net: LocalNet, cli: Cli, source: str, payer_key: str,
                               auditor: str, payee: str, value_date: str) -> None:
    cert_id = issue_licence(net, cli, "rcwl")
    code, out = cli("cert", "revoke", cert_id, "--reason", "吊销：未按规定公示年度报告",
                    "--key", key_path(net, "scjgj"))
    assert code == 0, out
    code, out = cli("fund", "pay", "--from", source, "--payee-uscc", payee, "--amount",
                    "12000000", "--purpose", "救助物资仓储服务", "--function-code", "2080299",
                    "--value-date", value_date, "--key", payer_key)
    assert code == 0 and out["rules"] == ["licence"], out
    code, alerts = cli("audit", "alerts", "--rule", "licence", "--key", auditor)
    assert code == 0
    (alert,) = alerts["alerts"]
    assert alert["details"]["status"] == "REVOKED" and alert["flows"] == [out["payment_id"]]
