"""Python SDK for a govledger network (synchronous; standard library HTTP only).

Example::

    from client.sdk import Client
    from ledger.crypto import load_private_key_file

    key = load_private_key_file("govledger-demo/keys/scjgj.pem")
    c = Client(["http://127.0.0.1:7700", "http://127.0.0.1:7701"], key=key)
    print(c.status()["height"])
    result = c.submit("evidence.anchor", {"digest": b"\\x01" * 32, "label": "合同"})
    print(result["status"], result["height"])

Requests go to the first node that answers; on a connection error the client
retries with backoff on the next URL (failover). A node's refusal raises
:class:`NodeError` carrying its status, error code and reason; when no node
can be reached :class:`Unreachable` is raised.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.reads import HEADER, make_read
from ledger.tx import Transaction, make_tx

DEFAULT_URL = "http://127.0.0.1:7700"


class NodeError(Exception):
    """The node refused a request; ``status``, ``code`` and ``detail`` say why."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class Unreachable(Exception):
    """No node answered."""


def request(url: str, method: str = "GET", body: Any = None, timeout: float = 40,
            raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """One HTTP request to one URL; JSON in and out (``raw`` sends msgpack)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = dict(headers or {})
    if data is not None:
        all_headers["Content-Type"] = ("application/msgpack" if raw is not None
                                       else "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
            code, detail = payload.get("error", "?"), payload.get("detail", "")
        except (ValueError, AttributeError):
            code, detail = "http_error", str(exc)
        raise NodeError(exc.code, code, detail) from None


def submit(node_url: str, tx: Transaction, wait: bool = True) -> Any:
    """POST a signed transaction; with ``wait`` the answer comes once it is committed."""
    suffix = "?wait=commit" if wait else ""
    return request(f"{node_url.rstrip('/')}/v1/tx{suffix}", "POST", raw=tx.encoded())


def status(node_url: str) -> Any:
    return request(f"{node_url.rstrip('/')}/v1/status", timeout=5)


class Client:
    def __init__(self, urls: str | Sequence[str] = DEFAULT_URL, key: PrivateKey | None = None,
                 timeout: float = 40, retries: int = 3) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("at least one node URL is needed")
        self.key, self.timeout, self.retries = key, timeout, retries
        self._chain_id: str | None = None

    # -- transport ------------------------------------------------------------------------

    def _call(self, method: str, path: str, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries):
            for url in self.urls:
                try:
                    return request(url.rstrip("/") + path, method, raw=raw, headers=headers,
                                   timeout=self.timeout)
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                    last = exc
            time.sleep(min(2.0, 0.2 * 2**attempt))
        raise Unreachable(f"no node answered ({', '.join(self.urls)}): {last}")

    # -- reading ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        value: dict[str, Any] = self._call("GET", "/v1/status")
        self._chain_id = value["chain_id"]
        return value

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self.status()
        assert self._chain_id is not None
        return self._chain_id

    def get(self, path: str, query: dict[str, str] | None = None, signed: bool = False) -> Any:
        """GET ``path``; ``signed`` attaches a signed read (for queries that need a role)."""
        query = {k: str(v) for k, v in (query or {}).items()}
        full = path + ("?" + urllib.parse.urlencode(sorted(query.items())) if query else "")
        headers = {}
        if signed:
            read = make_read(self._need_key(), self.chain_id, "GET", path, query,
                             int(time.time() * 1000), secrets.randbits(63))
            headers[HEADER] = read.encoded().hex()
        return self._call("GET", full, headers=headers)

    # -- writing ----------------------------------------------------------------------------

    def _need_key(self) -> PrivateKey:
        if self.key is None:
            raise ValueError("this needs a key: Client(..., key=load_private_key_file(...))")
        return self.key

    def make(self, tx_type: str, payload: dict[str, Value], valid_ms: int = 600_000
             ) -> Transaction:
        """Build and sign a transaction for this chain."""
        return make_tx(self._need_key(), self.chain_id, tx_type, payload, secrets.randbits(63),
                       int(time.time() * 1000) + valid_ms)

    def submit_tx(self, tx: Transaction, wait: bool = True) -> dict[str, Any]:
        suffix = "?wait=commit" if wait else ""
        value: dict[str, Any] = self._call("POST", f"/v1/tx{suffix}", raw=tx.encoded())
        return value

    def submit(self, tx_type: str, payload: dict[str, Value], wait: bool = True
               ) -> dict[str, Any]:
        """Sign and submit; with ``wait`` returns once committed (``status``, ``height``,
        ``result``). A failed transaction is reported in ``result`` (``ok`` False)."""
        return self.submit_tx(self.make(tx_type, payload), wait)
