"""The fiscal oversight application's plug-in, loaded by ``node.py`` as ``fiscal.app``.

- :func:`register` — the four flow transactions, the idle-balance begin-block
  hook, the ``set_fiscal_prohibited_codes`` proposal kind and the red-flag
  thresholds as committee-changeable settings (:mod:`fiscal.handlers`);
- :func:`add_routes` and :data:`OPENAPI` — the HTTP API (:mod:`fiscal.routes`);
- :func:`load_samples` — the demo's budget tree (:mod:`fiscal.samples`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fiscal.handlers import register
from fiscal.routes import OPENAPI, add_routes


def load_samples(directory: Path, client_for: Callable[[str], Any]) -> str:
    from client.sdk import NodeError, Unreachable
    from fiscal import samples

    try:
        return samples.load_samples(directory, client_for)
    except (samples.SampleError, NodeError, Unreachable) as exc:
        return f"fiscal samples stopped: {exc}"


__all__ = ["OPENAPI", "add_routes", "load_samples", "register"]
