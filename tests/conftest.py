"""Shared fixtures: small in-process networks built with ledger.devnet."""

from __future__ import annotations

import pytest

from ledger import evidence
from ledger.devnet import Devnet, make_devnet
from ledger.execution import Registry

ORG_USCC = "91350100M000100Y43"


def ledger_registry() -> Registry:
    registry = Registry()
    evidence.register(registry)
    return registry


@pytest.fixture(scope="session")
def devnet() -> Devnet:
    """A 4-validator SM network with one registered department account and one stranger."""
    net = make_devnet("sm", 4, accounts=[("市场监督管理局", ORG_USCC, ["issuer"])])
    net.account_keys["stranger"] = net.genesis.crypto.generate_key()
    return net


@pytest.fixture(scope="session")
def devnet_intl() -> Devnet:
    return make_devnet("intl", 4, accounts=[("dept", ORG_USCC, ["issuer"])])
