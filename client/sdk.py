"""A minimal synchronous client for the node HTTP API (the full SDK arrives with the client issue).

Uses only the standard library so scripts and tests can talk to a node with
nothing but govledger installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ledger.tx import Transaction


class NodeError(Exception):
    """The node refused a request; ``status``, ``code`` and ``detail`` say why."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def request(url: str, method: str = "GET", body: Any = None, timeout: float = 40,
            raw: bytes | None = None) -> Any:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/msgpack" if raw is not None else "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
            code, detail = payload.get("error", "?"), payload.get("detail", "")
            raise NodeError(exc.code, code, detail) from None
        except (ValueError, AttributeError):
            raise NodeError(exc.code, "http_error", str(exc)) from None


def submit(node_url: str, tx: Transaction, wait: bool = True) -> Any:
    """POST a signed transaction; with ``wait`` the answer comes once it is committed."""
    suffix = "?wait=commit" if wait else ""
    return request(f"{node_url.rstrip('/')}/v1/tx{suffix}", "POST", raw=tx.encoded())


def status(node_url: str) -> Any:
    return request(f"{node_url.rstrip('/')}/v1/status", timeout=5)
