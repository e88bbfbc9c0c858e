"""govledger Python SDK and command-line tool.

The SDK's public surface (theory of operation in :mod:`client.sdk`)::

    from client import Client, AsyncClient, verify_bundle, verify_evidence

- :class:`Client` / :class:`AsyncClient` — talk to a network (retries, failover,
  typed results, local verification of proofs);
- :func:`verify_bundle` / :func:`verify_evidence` — verdicts with no network, from
  the genesis file;
- errors: :class:`NodeError` (a node's refusal), :class:`Unreachable`,
  :class:`TxFailed`, :class:`BadReply`, all :class:`SdkError`;
- results: :mod:`client.results` (NodeStatus, TxReceipt, Certificate, Fund, …) and
  :class:`certs.verify.Verdict`.

The command-line tool is :mod:`client.cli` (``govledger``, ``python -m client``).
"""

from certs.verify import Check, Verdict
from client.aio import AsyncClient
from client.core import Backoff, BadReply, NodeError, SdkError, TxFailed, Unreachable
from client.offline import verify_bundle, verify_evidence
from client.results import (
    BalanceRow,
    CertEvent,
    Certificate,
    EvidenceVerdict,
    Fund,
    FundBalance,
    FundTrail,
    IssuedCertificate,
    NodeStatus,
    TrailEdge,
    TrailPayee,
    TrailStep,
    TrailTotals,
    TxReceipt,
    TxResult,
)
from client.sdk import Client

__all__ = [
    "AsyncClient", "Backoff", "BadReply", "BalanceRow", "CertEvent", "Certificate", "Check",
    "Client", "EvidenceVerdict", "Fund", "FundBalance", "FundTrail", "IssuedCertificate",
    "NodeError", "NodeStatus", "SdkError", "TrailEdge", "TrailPayee", "TrailStep",
    "TrailTotals", "TxFailed", "TxReceipt", "TxResult", "Unreachable", "Verdict",
    "verify_bundle", "verify_evidence",
]
