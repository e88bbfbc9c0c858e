"""Issue an e-certificate with the SDK: sign a business licence and anchor it on the ledger.

Run against the demo network (``python node.py demo``)::

    python examples/issue_certificate.py --node http://127.0.0.1:7700 --dir govledger-demo

The issuing department's key comes from ``DIR/keys/orgs.json`` (by default the
first organisation with the issuer role, 市场监督管理局 in the demo); the holder
is a sample enterprise. The signed document is written to ``--out`` — it is
what the holder keeps; the ledger records only its digest. Exit code 0 once
the certificate is committed, 1 if the network refused it, 2 on a usage or
connection error.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from client import Client, NodeError, TxFailed, Unreachable
from ledger.crypto import load_private_key_file
from ledger.errors import GovledgerError
from ledger.genesis import load_genesis
from ledger.network import load_orgs

# Values for the demo types' fields; any other required field gets a placeholder text.
SAMPLE_FIELDS = {
    "entity_type": "有限责任公司", "legal_representative": "林示例",
    "registered_capital": "300万元人民币", "established": "2024-05-20",
    "address": "福建省福州市鼓楼区示例路8号", "business_scope": "软件开发；数据处理服务",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="http://127.0.0.1:7700",
                        help="node URL(s), comma-separated for failover")
    parser.add_argument("--dir", default="govledger-demo", help="the network folder")
    parser.add_argument("--issuer", help="issuing organisation's slug in orgs.json")
    parser.add_argument("--holder", help="holder enterprise's slug in orgs.json")
    parser.add_argument("--type", dest="type_code",
                        help="certificate type code (default: the issuer's first type)")
    parser.add_argument("--out", help="document file to write (default DIR/certs/sdk-….json)")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    try:
        orgs = load_orgs(directory)
        suite = load_genesis(directory / "genesis.json").suite
        issuer = next(o for o in orgs if (o["slug"] == args.issuer if args.issuer
                                          else "issuer" in o["roles"] and o["cert_types"]))
        holder = next(o for o in orgs if (o["slug"] == args.holder if args.holder
                                          else "enterprise" in o["roles"]))
        key = load_private_key_file(directory / issuer["key"], suite)
    except (GovledgerError, StopIteration) as exc:
        print(f"error: {exc or 'no such organisation in orgs.json'}", file=sys.stderr)
        return 2
    type_code = args.type_code or next(iter(issuer["cert_types"]), None)
    if type_code is None:
        print(f"error: {issuer['name']} issues no certificate type; give --type",
              file=sys.stderr)
        return 2
    client = Client(args.node.split(","), key=key)
    try:
        schema = client.get(f"/v1/certs/types/{type_code}")
        extra = {f["name"]: SAMPLE_FIELDS.get(f["name"], "示例") for f in schema["fields"]
                 if f["required"] or f["name"] in SAMPLE_FIELDS}
        issued = client.issue_certificate(
            type_code, holder_name=holder["name"], holder_code=holder["uscc"],
            holder_code_type="001", valid_from="2026-01-01", valid_until="长期", extra=extra,
            serial=f"SDK{secrets.token_hex(4).upper()}")
    except TxFailed as exc:  # executed, and failed
        print(f"refused by the network: {exc.code}: {exc.reason}")
        return 1
    except NodeError as exc:  # refused before ordering, e.g. 403 for an unauthorised issuer
        print(f"refused by the network: {exc.code}: {exc.detail}")
        return 1
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else directory / "certs" / f"sdk-{issued.cert_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(issued.document.to_json() + "\n", encoding="utf-8")
    receipt = issued.receipt
    print(f"issued {issued.cert_id} ({schema['name']})")
    print(f"  issuer   {issuer['name']} ({issuer['uscc']})")
    print(f"  holder   {holder['name']} ({holder['uscc']})")
    print(f"  on the ledger at height {receipt.height} (transaction "
          f"{receipt.tx_id.hex()[:16]}…)")
    print(f"  document written to {out}")
    print(f"verify it: python examples/verify_certificate.py {out} --dir {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
