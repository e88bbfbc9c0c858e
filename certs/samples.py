"""Sample certificates for the demo network (``python node.py demo``), loaded once over HTTP.

市场监督管理局 issues business licences (营业执照) to the sample enterprises
and 人社局 issues human-resources service permits; one licence is renewed
(its first version reports SUPERSEDED), one is revoked, one permit is
suspended and one has expired. The signed documents are written to
``DIR/certs/<name>.json`` so they can be verified with ``govledger cert
verify``. This module does IO through the node clients it is given.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certs.document import Document
from certs.handlers import ISSUE_TX, RENEW_TX, REVOKE_TX, SUSPEND_TX
from certs.issuing import (
    Issuer,
    cert_type_from_view,
    issue_payload,
    new_document,
    renew_payload,
    renewed_document,
)
from certs.records import LEGAL_PERSON, LONG_TERM, cst_date
from ledger.crypto.base import write_file_atomic
from ledger.network import BUSINESS_LICENCE, HR_SERVICE_PERMIT, load_orgs

# (file name, issuer slug, type code, holder slug, valid_from, valid_until, extra fields)
_SAMPLES: list[tuple[str, str, str, str, str, str, dict[str, str]]] = [
    ("licence-slkj", "scjgj", BUSINESS_LICENCE.code, "slkj", "2023-03-15", LONG_TERM,
     {"entity_type": "有限责任公司(自然人投资或控股)", "legal_representative": "林示例",
      "registered_capital": "500万元人民币", "established": "2023-03-15",
      "address": "福建省福州市鼓楼区示例路1号", "business_scope": "软件开发；信息技术咨询服务"}),
    ("licence-mjjs", "scjgj", BUSINESS_LICENCE.code, "mjjs", "2022-06-01", "2042-05-31",
     {"entity_type": "有限责任公司", "legal_representative": "陈示例",
      "registered_capital": "5000万元人民币", "established": "2022-06-01",
      "address": "福建省福州市台江区示例街8号", "business_scope": "房屋建筑工程施工"}),
    ("licence-rcwl", "scjgj", BUSINESS_LICENCE.code, "rcwl", "2021-09-10", LONG_TERM,
     {"entity_type": "有限责任公司", "legal_representative": "黄示例",
      "established": "2021-09-10", "address": "福建省福州市仓山区示例大道66号"}),
    ("permit-rcwl", "rsj", HR_SERVICE_PERMIT.code, "rcwl", "2021-01-01", "2024-12-31",
     {"service_scope": "职业中介；人力资源供求信息的收集和发布",
      "address": "福建省福州市仓山区示例大道66号"}),
    ("permit-slkj", "rsj", HR_SERVICE_PERMIT.code, "slkj", "2025-01-01", "2029-12-31",
     {"service_scope": "人力资源管理咨询", "address": "福建省福州市鼓楼区示例路1号"}),
]


def load_samples(directory: Path, client_for: Callable[[str], Any]) -> str:
    orgs = {str(o["slug"]): o for o in load_orgs(directory)}
    out_dir = directory / "certs"
    out_dir.mkdir(exist_ok=True)
    today = cst_date(int(time.time() * 1000)).isoformat()
    docs: dict[str, Document] = {}
    issued = 0
    for name, issuer_slug, code, holder_slug, valid_from, valid_until, extra in _SAMPLES:
        client = client_for(issuer_slug)
        cert_type = cert_type_from_view(client.get(f"/v1/certs/types/{code}"))
        issuer = _issuer(client, orgs[issuer_slug])
        holder = orgs[holder_slug]
        doc = new_document(client.key, cert_type, issuer,
                           serial=f"DEMO{secrets.token_hex(4).upper()}",
                           holder_name=str(holder["name"]), holder_code=str(holder["uscc"]),
                           holder_code_type=LEGAL_PERSON, valid_from=valid_from,
                           valid_until=valid_until, issue_date=today, extra=extra)
        if _ok(client.submit(ISSUE_TX, issue_payload(client.key.suite, doc, None))):
            docs[name] = doc
            issued += 1
            write_file_atomic(out_dir / f"{name}.json", doc.to_json().encode() + b"\n", 0o644)
    events = _lifecycle(directory, client_for, orgs, docs, today)
    return (f"issued {issued} sample certificates (营业执照, 人力资源服务许可证): "
            f"{', '.join(events) or 'no lifecycle events'}; documents in {out_dir}")


def _issuer(client: Any, org: dict[str, Any]) -> Issuer:
    record = client.get(f"/v1/orgs/{org['uscc']}")
    return Issuer(uscc=str(org["uscc"]), name=str(org["name"]), area_code=str(record["region"]))


def _ok(reply: dict[str, Any]) -> bool:
    return reply.get("status") == "committed" and bool((reply.get("result") or {}).get("ok"))


def _lifecycle(directory: Path, client_for: Callable[[str], Any], orgs: dict[str, Any],
               docs: dict[str, Document], today: str) -> list[str]:
    events = []
    if "licence-slkj" in docs:  # renewal: registered capital increased
        client = client_for("scjgj")
        old = docs["licence-slkj"]
        cert_type = cert_type_from_view(client.get(f"/v1/certs/types/{BUSINESS_LICENCE.code}"))
        new = renewed_document(client.key, old, cert_type, _issuer(client, orgs["scjgj"]),
                               valid_from=old.certificate["valid_from"], valid_until=LONG_TERM,
                               issue_date=today, extra={"registered_capital": "1000万元人民币"})
        if _ok(client.submit(RENEW_TX, renew_payload(client.key.suite, new))):
            write_file_atomic(directory / "certs" / "licence-slkj-v2.json",
                              new.to_json().encode() + b"\n", 0o644)
            events.append("1 renewed (its first version is SUPERSEDED)")
    if "licence-rcwl" in docs and _ok(client_for("scjgj").submit(REVOKE_TX, {
            "id": docs["licence-rcwl"].cert_id, "reason": "吊销：未按规定公示年度报告"})):
        events.append("1 revoked")
    if "permit-slkj" in docs and _ok(client_for("rsj").submit(SUSPEND_TX, {
            "id": docs["permit-slkj"].cert_id, "reason": "暂停：整改期间"})):
        events.append("1 suspended")
    if "permit-rcwl" in docs:
        events.append("1 expired (valid until 2024-12-31)")
    return events
