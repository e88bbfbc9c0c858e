"""An in-process certificates network for the certs tests (ledger.devnet underneath).

Five departments form the committee (so a decision needs ceil(2*5/3) = 4
votes): 市场监督管理局 issues 营业执照, 人社局 issues a permit and a citizen
certificate type, 税务局 is a verifier with a recognition agreement for
营业执照; plus an enterprise, a district office that has the issuer role
but no authorisation, and keys with no account at all.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from certs import app as certs_app
from certs.bundle import CertBundle, build_bundle
from certs.document import Document
from certs.issuing import Issuer, issue_payload, new_document, renew_payload, renewed_document
from certs.records import LEGAL_PERSON, LONG_TERM, NATURAL_PERSON, get_type
from certs.verify import Verdict, verify_certificate
from ledger import evidence, governance, reads
from ledger.block import TxResult
from ledger.chain import Chain
from ledger.codec import Value
from ledger.devnet import Devnet, make_devnet
from ledger.execution import Registry
from ledger.genesis import Org
from ledger.ids import make_citizen_id, make_uscc
from ledger.tx import Transaction, make_tx

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z = 08:00 CST
DAY = 24 * 3600 * 1000
BLOCK_MS = 60_000
LICENCE = "11100000MB1F000067001"
PERMIT = "11100000MB1F000067002"
SKILL = "11100000MB1F000067003"  # a certificate for natural persons
REGION = "350100"

ORGS = {  # slug: (name, uscc, kind, roles)
    "scjgj": ("福州市市场监督管理局", "11350100MB1F000149", "department", ["committee", "issuer"]),
    "rsj": ("福州市人力资源和社会保障局", "11350100MB1F00057N", "department",
            ["committee", "issuer"]),
    "czj": ("福州市财政局", "11350100MB1F000224", "department", ["committee", "finance"]),
    "sjj": ("福州市审计局", "11350100MB1F00030Y", "department", ["committee", "auditor"]),
    "swj": ("国家税务总局福州市税务局", "11350100MB1F00049U", "department",
            ["committee", "verifier"]),
    "district": ("福州市鼓楼区市场监督管理局", make_uscc("1", "1", "350102", "MB1F0101"),
                 "department", ["issuer"]),
    "slkj": ("福州示例科技有限公司", make_uscc("9", "1", REGION, "MA2Y0001"), "enterprise",
             ["enterprise"]),
    "mjjs": ("福州闽江示例建设工程有限公司", make_uscc("9", "1", REGION, "MA2Y0002"), "enterprise",
             ["enterprise"]),
}
COMMITTEE = ["scjgj", "rsj", "czj", "sjj", "swj"]
CITIZEN = make_citizen_id("350102", __import__("datetime").date(1990, 5, 17), "123")
LICENCE_EXTRA = {"entity_type": "有限责任公司", "legal_representative": "林示例",
                 "established": "2023-03-15", "address": "福州市鼓楼区示例路1号"}
PERMIT_EXTRA = {"service_scope": "职业中介", "address": "福州市鼓楼区示例路1号"}


def uscc(slug: str) -> str:
    return ORGS[slug][1]


def certs_genesis_data() -> dict[str, Value]:
    def fields(*names: str) -> list[Value]:
        return [{"name": n, "label": n, "required": True} for n in names]

    return {
        "types": [
            {"code": LICENCE, "name": "营业执照", "holder_code_types": ["001"],
             "fields": [*fields("entity_type", "legal_representative", "established",
                                "address"),
                        {"name": "registered_capital", "label": "注册资本", "required": False}]},
            {"code": PERMIT, "name": "人力资源服务许可证", "holder_code_types": ["001"],
             "fields": fields("service_scope", "address")},
            {"code": SKILL, "name": "职业技能等级证书", "holder_code_types": ["111"],
             "fields": fields("occupation", "level")},
        ],
        "issuers": [{"type": LICENCE, "issuer": uscc("scjgj")},
                    {"type": PERMIT, "issuer": uscc("rsj")},
                    {"type": SKILL, "issuer": uscc("rsj")}],
        "recognitions": [{"agency": uscc("swj"), "type": LICENCE,
                          "issuers": [uscc("scjgj")], "note": "test agreement"}],
    }


def certs_registry() -> Registry:
    registry = Registry()
    evidence.register(registry)
    governance.register(registry)
    reads.register(registry)
    certs_app.register(registry)
    return registry


CONSORTIUM_KEY = bytes(range(32))


class CertNet:
    """One chain, its keys, and helpers that run one block per call."""

    def __init__(self, suite: str = "sm", validators: int = 4) -> None:
        base = make_devnet(suite, validators, accounts=[
            (slug, ORGS[slug][1], ORGS[slug][3]) for slug in ORGS], time_ms=T0)
        orgs = [Org(name=name, uscc=code, kind=kind, region=REGION)
                for name, code, kind, _ in ORGS.values()]
        genesis = dataclasses.replace(base.genesis, orgs=orgs,
                                      apps={"certs": certs_genesis_data()})
        genesis.validate()
        self.devnet = Devnet(genesis, base.validator_keys, dict(base.account_keys))
        self.devnet.account_keys["stranger"] = genesis.crypto.generate_key()
        self.genesis = genesis
        self.suite = genesis.crypto
        self.chain: Chain = self.devnet.open_chain(certs_registry())
        self.validator_keys = {k.public_key().raw: k for k in base.validator_keys}
        self.time = T0
        self._nonce = itertools.count(1)
        self._serial = itertools.count(1)

    # -- blocks ---------------------------------------------------------------------------

    def tx(self, who: str, tx_type: str, payload: dict[str, Value]) -> Transaction:
        return make_tx(self.devnet.account_keys[who], self.genesis.chain_id, tx_type, payload,
                       next(self._nonce), T0 + 3650 * DAY)

    def run(self, txs: list[Transaction], advance_ms: int = BLOCK_MS) -> list[TxResult]:
        """One block with ``txs``, certified by a quorum of the set for its height."""
        self.time += advance_ms
        height = self.chain.height + 1
        validators = self.chain.validators_for(height)
        signers = [self.validator_keys[k] for k in validators.public_keys()
                   if k in self.validator_keys][:validators.quorum]
        pending = self.chain.propose(txs, self.time, 0, signers[0].public_key().raw)
        self.chain.append(pending, self.devnet.certify(pending.header, signers))
        return pending.execution.results

    def send(self, who: str, tx_type: str, payload: dict[str, Value],
             advance_ms: int = BLOCK_MS) -> TxResult:
        (result,) = self.run([self.tx(who, tx_type, payload)], advance_ms)
        return result

    # -- governance -------------------------------------------------------------------------

    def propose(self, kind: str, params: dict[str, Value], who: str = "scjgj") -> TxResult:
        return self.send(who, governance.PROPOSE_TX, {"kind": kind, "params": params})

    def vote(self, number: int, who: str, approve: bool = True) -> TxResult:
        return self.send(who, governance.VOTE_TX, {"proposal_id": number, "approve": approve})

    def decide(self, kind: str, params: dict[str, Value], votes: int = 4) -> dict[str, Value]:
        """Propose and approve with ``votes`` members in total; the proposal afterwards."""
        result = self.propose(kind, params, COMMITTEE[0])
        assert result.ok, result.reason
        number = result.data["proposal_id"]
        assert isinstance(number, int)
        for who in COMMITTEE[1:votes]:
            r = self.vote(number, who)
            assert r.ok, r.reason
        proposal = governance.get_proposal(self.chain.state_get, number)
        assert proposal is not None
        return proposal

    # -- certificates -------------------------------------------------------------------------

    def issuer(self, slug: str) -> Issuer:
        name, code, _, _ = ORGS[slug]
        return Issuer(code, name, REGION)

    def document(self, who: str = "scjgj", type_code: str = LICENCE, holder: str = "slkj",
                 valid_from: str = "2025-01-01", valid_until: str = LONG_TERM,
                 extra: dict[str, str] | None = None, issuer_slug: str | None = None
                 ) -> Document:
        cert_type = get_type(self.chain.state_get, type_code)
        assert cert_type is not None
        if type_code == SKILL:
            holder_name, code, code_type = "张示例", CITIZEN, NATURAL_PERSON
            extra = extra or {"occupation": "电工", "level": "三级"}
        else:
            holder_name, code, code_type = ORGS[holder][0], uscc(holder), LEGAL_PERSON
            extra = extra or (LICENCE_EXTRA if type_code == LICENCE else PERMIT_EXTRA)
        return new_document(
            self.devnet.account_keys[who], cert_type, self.issuer(issuer_slug or who),
            serial=f"T{next(self._serial):06d}", holder_name=holder_name, holder_code=code,
            holder_code_type=code_type, valid_from=valid_from, valid_until=valid_until,
            issue_date="2026-01-01", extra=extra)

    def issue(self, who: str = "scjgj", **kw: Any) -> tuple[Document, TxResult]:
        doc = self.document(who, **kw)
        result = self.send(who, "cert.issue", issue_payload(self.suite, doc, CONSORTIUM_KEY))
        return doc, result

    def renew(self, old: Document, who: str = "scjgj", valid_from: str = "2026-01-01",
              valid_until: str = LONG_TERM) -> tuple[Document, TxResult]:
        cert_type = get_type(self.chain.state_get, old.certificate["type_code"])
        assert cert_type is not None
        doc = renewed_document(self.devnet.account_keys[who], old, cert_type, self.issuer(who),
                               valid_from=valid_from, valid_until=valid_until,
                               issue_date="2026-01-02")
        return doc, self.send(who, "cert.renew", renew_payload(self.suite, doc))

    def act(self, event: str, cert_id: str, who: str = "scjgj", reason: str = "test"
            ) -> TxResult:
        return self.send(who, f"cert.{event}", {"id": cert_id, "reason": reason})

    def bundle(self, cert_id: str, agency: str | None = None) -> CertBundle:
        return build_bundle(self.chain, cert_id, agency)

    def verify(self, doc: Document | None = None, cert_id: str | None = None,
               agency: str | None = None, as_of_ms: int | None = None,
               bundle: CertBundle | bytes | None = None) -> Verdict:
        target = cert_id or (doc.cert_id if doc else None)
        assert target is not None
        if bundle is None:
            bundle = self.bundle(target, agency)
        return verify_certificate(self.genesis, bundle, as_of_ms=as_of_ms or self.time,
                                  document=doc, cert_id=cert_id, agency=agency)


def check(verdict: Verdict, name: str) -> Any:
    """The named check line of a verdict."""
    return next(c for c in verdict.checks if c.name == name)
