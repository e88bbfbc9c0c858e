"""Verify an e-certificate with the SDK, trusting only the network's genesis file.

Run against the demo network (``python node.py demo``)::

    python examples/verify_certificate.py govledger-demo/certs/licence-mjjs.json \\
        --node http://127.0.0.1:7700 --dir govledger-demo --agency swj

The node only supplies the certificate's proof bundle; the verdict is
reached here by :func:`certs.verify.verify_certificate` from
``DIR/genesis.json``, so a node that lies can make verification fail but
never make a forged or revoked certificate VALID. Exit code 0 for VALID,
1 for INVALID, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client import Client, NodeError, Unreachable
from ledger.errors import GovledgerError
from ledger.genesis import load_genesis
from ledger.network import load_orgs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", metavar="DOC.json|ID",
                        help="the holder's document, or only an identifier "
                             "(default DIR/certs/licence-mjjs.json from the demo)")
    parser.add_argument("--node", default="http://127.0.0.1:7700",
                        help="node URL(s), comma-separated for failover")
    parser.add_argument("--dir", default="govledger-demo", help="the network folder")
    parser.add_argument("--agency", help="verifying agency: a USCC or a slug in orgs.json")
    parser.add_argument("--at", help="as-of date (YYYY-MM-DD) or ISO date-time; default now")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    target = args.target or str(directory / "certs" / "licence-mjjs.json")
    try:
        genesis = load_genesis(directory / "genesis.json")
        agency = args.agency
        if agency and (directory / "keys" / "orgs.json").exists():  # a slug: its USCC
            agency = next((o["uscc"] for o in load_orgs(directory) if o["slug"] == agency),
                          agency)
        document = Path(target).read_text(encoding="utf-8") if Path(target).is_file() else None
    except (GovledgerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = Client(args.node.split(","))
    try:
        verdict = client.verify_certificate(
            genesis, document=document, cert_id=None if document else target,
            agency=agency, as_of=args.at)
    except (NodeError, Unreachable, GovledgerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{verdict.verdict}: {verdict.cert_id or target}  (status {verdict.status}"
          f"{', agreement ' + verdict.agreement if verdict.agreement else ''})")
    for check in verdict.checks:
        print(f"  {'✔' if check.ok else '✘'} {check.name:<18} {check.detail}")
    print(f"verdict reached here from {directory / 'genesis.json'} (chain {genesis.chain_id}); "
          f"the node supplied only the proof bundle")
    return 0 if verdict.valid else 1


if __name__ == "__main__":
    sys.exit(main())
