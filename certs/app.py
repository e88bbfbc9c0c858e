"""The certificates application's plug-in for the node (``node.APP_MODULES``).

``register`` adds the lifecycle transaction handlers (:mod:`certs.handlers`),
the committee decision kinds and the genesis hook (:mod:`certs.kinds`);
``add_routes`` and ``OPENAPI`` publish :mod:`certs.routes`; ``load_samples``
loads the demo network's sample certificates (:mod:`certs.samples`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from certs import handlers, kinds, routes, samples
from ledger.execution import Registry

OPENAPI: dict[str, Any] = routes.CERTS_OPENAPI


def register(registry: Registry) -> None:
    handlers.register(registry)
    kinds.register(registry)


def add_routes(app: web.Application) -> None:
    routes.add_routes(app)


def load_samples(directory: Path, client_for: Callable[[str], Any]) -> str:
    return samples.load_samples(directory, client_for)
