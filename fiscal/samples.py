"""Sample budget tree for the demo network (``python node.py demo``), loaded once over HTTP.

Province → city → district → payees, as 福建省 → 福州市 → 鼓楼区 / 仓山区:

1. The committee (the five sample departments) registers 福建省财政厅 and the
   鼓楼区 and 仓山区 finance bureaus as organisations and grants each one
   finance-officer key; the keys are written to ``DIR/keys/fiscal/<slug>.pem``.
2. 福建省财政厅 appropriates a direct fund (直达资金) for compulsory education
   and allocates it down to 福州市财政局 and on to the two districts, which pay
   enterprises and a pupil's family (a person: HMAC'd ID number, masked name,
   clear values sealed to the audit office); 仓山区 returns an unused part.
3. 福州市财政局 pays out of a 2025 project fund whose project has ended.

It trips these rules on purpose: ``split_payment`` (three payments to the
logistics firm below the threshold), ``prohibited_function`` (the direct fund
paying administrative running costs), ``circular_flow`` (鼓楼区 allocating back
to the city), ``payment_date`` (after the project end), and — with the
certificates samples, which revoke that logistics firm's licence — ``licence``.
This module does IO through the node clients it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fiscal.model import ALLOCATE_TX, APPROPRIATE_TX, PAY_TX, RETURN_TX, block_day, date_of_day
from fiscal.payee import person_payee
from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.crypto.base import write_file_atomic
from ledger.governance import PROPOSE_TX, VOTE_TX
from ledger.ids import make_citizen_id, make_uscc
from ledger.network import load_orgs
from ledger.privacy import CONSORTIUM_KEY_FILE, load_consortium_key


@dataclass(frozen=True)
class Unit:
    """A budget unit to enrol: an organisation with one finance officer key."""

    slug: str
    name: str
    uscc: str
    region: str  # 6-digit administrative division code


PROVINCE = Unit("fjczt", "福建省财政厅", make_uscc("1", "1", "350000", "MB2F0001"), "350000")
GULOU = Unit("glqczj", "福州市鼓楼区财政局", make_uscc("1", "1", "350102", "MB2F0003"), "350102")
CANGSHAN = Unit("csqczj", "福州市仓山区财政局", make_uscc("1", "1", "350104", "MB2F0004"),
                "350104")
COMMITTEE = ("czj", "scjgj", "rsj", "sjj", "swj")


class SampleError(Exception):
    """A sample step was refused; the message says which and why."""


def ok(reply: dict[str, Any], what: str) -> dict[str, Any]:
    result = reply.get("result") or {}
    if reply.get("status") != "committed" or not result.get("ok"):
        raise SampleError(f"{what}: {result.get('reason') or reply.get('detail') or reply}")
    data: dict[str, Any] = result.get("data") or {}
    return data


def decide(committee: list[Any], kind: str, params: dict[str, Value]) -> None:
    """Propose with the first member, then vote with the others until the proposal passes."""
    data = ok(committee[0].submit(PROPOSE_TX, {"kind": kind, "params": params}),
              f"proposal {kind}")
    number, status = data["proposal_id"], data["status"]
    for member in committee[1:]:
        if status != "open":
            break
        status = ok(member.submit(VOTE_TX, {"proposal_id": number, "approve": True}),
                    f"vote on proposal {number}")["status"]
    if status != "passed":
        raise SampleError(f"proposal {number} ({kind}) ended {status}")


def enrol(committee: list[Any], unit: Unit, key: PrivateKey) -> None:
    """Register ``unit`` and make ``key`` its finance officer (two committee decisions)."""
    public = key.public_key().raw
    decide(committee, "register_org", {"uscc": unit.uscc, "name": unit.name,
                                       "kind": "department", "region": unit.region,
                                       "keys": [public]})
    decide(committee, "grant_role", {"public_key": public, "role": "finance"})


def load_samples(directory: Path, client_for: Callable[[str], Any]) -> str:
    from client.sdk import Client

    orgs = {str(o["slug"]): o for o in load_orgs(directory)}
    czj = client_for("czj")
    suite = czj.key.suite
    key_dir = directory / "keys" / "fiscal"
    key_dir.mkdir(parents=True, exist_ok=True)
    committee = [client_for(slug) for slug in COMMITTEE]
    clients: dict[str, Any] = {"czj": czj}
    for unit in (PROVINCE, GULOU, CANGSHAN):
        key = suite.generate_key()
        key.save(key_dir / f"{unit.slug}.pem")
        enrol(committee, unit, key)
        clients[unit.slug] = Client(czj.urls, key=key)
    write_file_atomic(key_dir / "README.md", _readme().encode(), 0o644)
    today = block_day(int(time.time() * 1000))
    alerts = _tree(clients, orgs, date_of_day(today), directory)
    return (f"loaded a sample budget tree (福建省 → 福州市 → 鼓楼区/仓山区 → payees) with "
            f"{alerts} red-flag alerts; finance keys of the new units in {key_dir}")


def _readme() -> str:
    lines = ["# Sample finance-officer keys (fiscal demo)", "",
             "| organisation | USCC | region | key |", "|---|---|---|---|"]
    for unit in (PROVINCE, GULOU, CANGSHAN):
        lines.append(f"| {unit.name} | {unit.uscc} | {unit.region} | "
                     f"`keys/fiscal/{unit.slug}.pem` |")
    lines += ["", "福州市财政局 uses `keys/czj.pem`; the audit office `keys/sjj.pem`.", ""]
    return "\n".join(lines)


def _tree(c: dict[str, Any], orgs: dict[str, Any], today: str, directory: Path) -> int:
    """The flows; returns how many alerts they raised."""
    tag = "FJ2026-ZD-0001"
    raised = 0

    def send(who: str, tx_type: str, payload: dict[str, Value], what: str) -> dict[str, Any]:
        nonlocal raised
        data = ok(c[who].submit(tx_type, payload), what)
        raised += len(data.get("alerts") or [])
        return data

    def pay(who: str, source: str, payee: str, amount: int, purpose: str,
            function_code: str = "2050202", value_date: str = today) -> None:
        send(who, PAY_TX, {"from": source, "payee_uscc": orgs[payee]["uscc"], "amount": amount,
                           "purpose": purpose, "function_code": function_code,
                           "value_date": value_date}, f"payment to {payee}")

    send("fjczt", APPROPRIATE_TX, {
        "tag": tag, "amount": 2_000_000_000, "year": 2026, "doc_no": "闽财教〔2026〕3号",
        "function_code": "2050202", "project": "义务教育薄弱环节改善与能力提升",
        "project_end": "2026-12-31", "direct": True}, "appropriation")
    city = send("fjczt", ALLOCATE_TX, {"from": tag, "to_org": orgs["czj"]["uscc"],
                                       "region": "350100000", "amount": 1_200_000_000},
                "allocation to 福州市")["child_tag"]
    gulou = send("czj", ALLOCATE_TX, {"from": city, "to_org": GULOU.uscc, "region": "350102000",
                                      "amount": 600_000_000}, "allocation to 鼓楼区")["child_tag"]
    cangshan = send("czj", ALLOCATE_TX, {"from": city, "to_org": CANGSHAN.uscc,
                                         "region": "350104000", "amount": 400_000_000},
                    "allocation to 仓山区")["child_tag"]
    pay("glqczj", gulou, "mjjs", 235_000_000, "校舍维修改造工程进度款")
    pay("glqczj", gulou, "slkj", 86_000_000, "教学信息化设备采购")
    # A pupil's family (synthetic identity): the ID number never leaves this process in clear.
    consortium = load_consortium_key(directory / "keys" / CONSORTIUM_KEY_FILE)
    auditors = [bytes.fromhex(a["public_key"]) for a in
                c["czj"].get("/v1/fiscal/seal-keys")["keys"]]
    pupil = person_payee(c["glqczj"].key.suite, consortium,
                         make_citizen_id("350102", date(1984, 5, 6), "023"), "林小梅", auditors)
    send("glqczj", PAY_TX, {"from": gulou, "amount": 250_000, "purpose": "家庭经济困难学生生活补助",
                            "function_code": "2050202", "value_date": today, **pupil},
         "payment to a person")
    for amount in (3_800_000, 4_200_000, 3_650_000):  # split: together above ¥100,000
        pay("csqczj", cangshan, "rcwl", amount, "校园物资配送服务")
    pay("csqczj", cangshan, "slkj", 15_000_000, "机关办公设备及运行经费", function_code="2050101")
    send("glqczj", ALLOCATE_TX, {"from": gulou, "to_org": orgs["czj"]["uscc"],
                                 "region": "350100000", "amount": 30_000_000},
         "allocation back to the city")
    send("csqczj", RETURN_TX, {"from": cangshan, "amount": 20_000_000, "memo": "结余资金收回"},
         "return to the city")
    ended = (date.fromisoformat(today) - timedelta(days=40)).isoformat()
    send("czj", APPROPRIATE_TX, {
        "tag": "FZ2025-SZ-0107", "amount": 300_000_000, "year": 2025,
        "doc_no": "榕财建〔2025〕41号", "function_code": "2120501",
        "project": "城区道路保洁提升", "project_end": ended}, "city appropriation")
    pay("czj", "FZ2025-SZ-0107", "rcwl", 45_000_000, "道路保洁服务费", function_code="2120501")
    return raised
