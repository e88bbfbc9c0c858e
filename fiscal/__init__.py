"""govledger fiscal oversight: conserved fund flows, indexed trails, red flags, personal data.

Layout (each module opens with its theory of operation):

- :mod:`fiscal.model` — funds and flows: records, state and index keys, validation;
- :mod:`fiscal.handlers` — APPROPRIATION / ALLOCATION / PAYMENT / RETURN transactions,
  conservation, who may move a fund;
- :mod:`fiscal.rules` — red-flag rules and their on-chain thresholds; stored alerts;
- :mod:`fiscal.licences` — the read interface to the certificates app (business licences);
- :mod:`fiscal.payee` — personal data of payees: HMAC, masking, sealing to the audit office;
- :mod:`fiscal.queries` — trails forward and backward, balance sheets, payees, totals, DOT;
- :mod:`fiscal.routes`, :mod:`fiscal.app`, :mod:`fiscal.samples` — HTTP routes, the node
  plug-in and the demo's budget tree (these do IO).

This package's public surface below needs no network and no aiohttp. See
``fiscal/README.md`` for the data model, rules, routes and commands.
"""

from fiscal.handlers import precheck, register
from fiscal.model import TX_TYPES, Fund, get_fund, yuan
from fiscal.payee import open_payee, person_payee
from fiscal.queries import (
    alerts,
    backward_trail,
    balance_sheet,
    forward_trail,
    payments_to,
    to_dot,
    totals,
)
from fiscal.rules import CONFIG_DEFAULTS, RULES

__all__ = [
    "CONFIG_DEFAULTS",
    "RULES",
    "TX_TYPES",
    "Fund",
    "alerts",
    "backward_trail",
    "balance_sheet",
    "forward_trail",
    "get_fund",
    "open_payee",
    "payments_to",
    "person_payee",
    "precheck",
    "register",
    "to_dot",
    "totals",
    "yuan",
]
