"""The dashboard in a real browser (Debian's chromium driven by Playwright).

Starts a 4-node network with the demo's sample data, opens the dashboard
served by node 0 and walks its pages as an auditor or a verifying agency
would. Screenshots go to the test's output folder (and to
``$GOVLEDGER_SCREENSHOTS`` when set, which is how the README's pictures are
made). Without /usr/bin/chromium the test is skipped — unless
``GOVLEDGER_REQUIRE_BROWSER=1`` (set by .ci/run, which installs chromium),
then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.offline import verify_bundle
from client.sdk import request
from ledger.samples import load_samples
from tests.e2e.netharness import LocalNet

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("GOVLEDGER_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (install Debian's chromium package)")
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    net = LocalNet(tmp_path_factory.mktemp("dashboard") / "net")
    net.start_all()
    try:
        load_samples(net.dir, [net.url(i) for i in range(net.n)])
        yield net
    finally:
        net.stop_all()


@pytest.fixture
def page(demo: LocalNet, tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        pg = context.new_page()
        external: list[str] = []
        pg.on("request", lambda r: external.append(r.url)
              if not r.url.startswith(demo.url(0)) and not r.url.startswith("data:") else None)
        pg.shots = tmp_path / "screenshots"  # type: ignore[attr-defined]
        yield pg
        assert not external, f"the dashboard made external requests: {external}"
        browser.close()


def shot(page: Any, name: str) -> None:
    page.shots.mkdir(exist_ok=True)
    path = page.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("GOVLEDGER_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


def test_explorer_shows_blocks_and_signers(demo: LocalNet, page: Any) -> None:
    """Goal: the explorer shows the network's status and its latest blocks with proposer and
    commit-certificate signers; a block opens with its transactions, a payment among them
    marked restricted (its content is for auditors). Method: load the page, read the
    table, click the newest block; toggle English; open a block with a payment."""
    page.goto(demo.url(0) + "/#/explorer")
    page.wait_for_selector("#blocks tbody tr")
    height = demo.status(0)["height"]
    first = page.locator("#blocks tbody tr").first
    assert int(first.get_attribute("data-height")) >= height - 1
    assert "node" in first.inner_text()  # proposer and signer names
    shot(page, "explorer")
    first.click()
    page.wait_for_selector("h1:has-text('区块')")
    assert page.locator("table").count() >= 1
    page.click("#lang")
    page.wait_for_selector("h1:has-text('Block')")
    page.click("#lang")
    # A block with a payment: its type and sender shown, its content marked restricted.
    paid = next(h for h in range(1, height + 1)
                if any(tx["type"] == "fiscal.pay"
                       for tx in request(f"{demo.url(0)}/v1/blocks/{h}")["txs"]))
    page.goto(demo.url(0) + f"/#/block/{paid}")
    row = page.locator("tr[data-type='fiscal.pay']").first
    row.wait_for()
    assert "内容受限" in row.inner_text()


def test_verify_valid_and_revoked_certificates(demo: LocalNet, page: Any) -> None:
    """Goal: an agency verifies a valid certificate by identifier and a revoked one by
    uploading its document; the page shows VALID / INVALID with each check and the status
    history. Method: read the demo's documents, use the verify page for each."""
    valid = json.loads((demo.dir / "certs" / "licence-mjjs.json").read_text())
    revoked_file = demo.dir / "certs" / "licence-rcwl.json"
    page.goto(demo.url(0) + "/#/verify")
    page.fill("#cert-id", valid["certificate"]["identifier"])
    page.fill("#cert-agency", _org(demo, "verifier")["uscc"])
    page.click("#verify-go")
    panel = page.wait_for_selector("#verdict-panel")
    assert panel.get_attribute("data-verdict") == "VALID"
    assert page.locator("#checks tr").count() >= 6
    page.wait_for_selector(".timeline li")
    shot(page, "verify-valid")
    # The bundle it offers is the one a verdict from the genesis file alone needs.
    with page.expect_download() as download:
        page.click("#bundle-download")
    cert_id = valid["certificate"]["identifier"]
    assert download.value.suggested_filename == f"{cert_id}.bundle"
    bundle = Path(download.value.path()).read_bytes()
    offline = verify_bundle(demo.dir / "genesis.json", bundle, cert_id=cert_id,
                            agency=_org(demo, "verifier")["uscc"])
    assert offline.verdict == "VALID", offline
    assert (f"--offline --bundle {cert_id}.bundle --genesis genesis.json --as-agency "
            f"{_org(demo, 'verifier')['uscc']}") in page.inner_text("#bundle-row")
    page.goto(demo.url(0) + "/#/verify")
    page.set_input_files("#cert-doc", str(revoked_file))
    page.click("#verify-go")
    panel = page.wait_for_selector("#verdict-panel")
    assert panel.get_attribute("data-verdict") == "INVALID"
    assert "REVOKED" in page.inner_text("#checks")
    page.wait_for_selector(".timeline li:nth-child(2)")
    shot(page, "verify-revoked")


def test_fund_trail_shows_the_payees(demo: LocalNet, page: Any) -> None:
    """Goal: an auditor picks a fund tag and sees the trail down to the payees, amounts and
    alerts, and the balance sheet, and traces a payment back to its budget; the signed reads
    happen in the browser with the auditor's key. Method: load the 审计局 key file, trace
    FJ2026-ZD-0001, check the graph's payees and the balance rows; trace the first payment
    back (payment, the funds above it, the appropriation); then open the alerts page."""
    auditor = _org(demo, "auditor")
    page.goto(demo.url(0) + "/#/funds")
    page.set_input_files("#auditor-key", str(demo.dir / auditor["key"]))
    page.wait_for_function("document.querySelector('#key-state').textContent.includes('审计')")
    page.fill("#fund-tag-text", "FJ2026-ZD-0001")
    page.click("#fund-go")
    page.wait_for_selector("#trail-chart canvas")
    names = page.evaluate("""() => {
        const chart = echarts.getInstanceByDom(document.querySelector('#trail-chart'));
        const out = [];
        const walk = n => { out.push(n.name); (n.children || []).forEach(walk); };
        chart.getOption().series[0].data.forEach(walk);
        return out.join('|');
    }""")
    for slug in ("mjjs", "slkj", "rcwl"):
        assert next(o for o in demo.orgs if o["slug"] == slug)["name"] in names
    assert "林**" in names  # the pupil, masked
    assert page.locator("#balance tbody tr").count() >= 4
    shot(page, "fund-trail")
    # Any payment of the trail traced back, step by step, up to its appropriation.
    page.click("#back-go")
    page.wait_for_selector("#back-path li[data-kind='APPROPRIATION']")
    kinds = [page.locator("#back-path li").nth(i).get_attribute("data-kind")
             for i in range(page.locator("#back-path li").count())]
    assert kinds[0] == "PAYMENT" and kinds[-1] == "APPROPRIATION" and len(kinds) >= 3, kinds
    assert "FJ2026-ZD-0001" in page.inner_text("#back-path li:last-child")
    shot(page, "fund-trail-backward")
    page.goto(demo.url(0) + "/#/alerts")
    page.wait_for_selector("#alerts tbody tr")
    rules = {page.locator("#alerts tbody tr").nth(i).get_attribute("data-rule")
             for i in range(page.locator("#alerts tbody tr").count())}
    assert {"split_payment", "licence"} <= rules
    shot(page, "alerts")


def _org(demo: LocalNet, role: str) -> dict[str, Any]:
    return next(o for o in demo.orgs if role in o["roles"])


def test_a_passphrase_protected_key_signs_in_the_browser(demo: LocalNet, page: Any,
                                                         tmp_path: Path) -> None:
    """Goal: an auditor whose key file is passphrase-protected (SPEC §3) signs reads in the
    dashboard too: the file as govledger writes it (PBES2, PBKDF2-HMAC-SHA256, SM4-CBC)
    and as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it, opened in the browser with the
    passphrase typed; without one, or with a wrong one, the page says so. Method: encrypt
    the 审计局 key both ways; load each on the alerts page; the alerts then load."""
    import subprocess

    from ledger.crypto import load_private_key_file

    plain = demo.dir / _org(demo, "auditor")["key"]
    passphrase = "审计 口令 2026"
    sm4_file = tmp_path / "sjj-sm4.pem"
    load_private_key_file(plain, "sm").save(sm4_file, passphrase.encode())
    assert b"ENCRYPTED PRIVATE KEY" in sm4_file.read_bytes()
    aes_file = tmp_path / "sjj-aes.pem"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(plain),
                    "-out", str(aes_file), "-passout", f"pass:{passphrase}"], check=True)
    page.goto(demo.url(0) + "/#/alerts")
    page.set_input_files("#auditor-key", str(sm4_file))
    state = "document.querySelector('#key-state').textContent"
    page.wait_for_function(f"{state}.includes('passphrase')")
    page.fill("#key-pass", "not it")
    page.set_input_files("#auditor-key", str(aes_file))
    page.wait_for_function(f"{state}.includes('wrong passphrase')")
    for protected in (sm4_file, aes_file):
        page.fill("#key-pass", passphrase)
        page.set_input_files("#auditor-key", str(protected))
        page.wait_for_function(f"{state}.includes('审计')")
        assert page.input_value("#key-pass") == ""  # not kept in the page
        page.select_option("#alert-rule", "split_payment")
        page.wait_for_selector("#alerts tbody tr[data-rule='split_payment']")
        page.select_option("#alert-rule", "")
        page.goto(demo.url(0) + "/#/explorer")
        page.goto(demo.url(0) + "/#/alerts")
