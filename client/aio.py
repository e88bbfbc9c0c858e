"""The asynchronous client (aiohttp): the same operations as :class:`client.sdk.Client`.

Every method here drives the generator of :mod:`client.ops` that the
synchronous client drives too; only sending differs (one shared
``aiohttp.ClientSession``, ``await asyncio.sleep`` between retry rounds).
aiohttp is imported when the first request is sent, so ``import client``
stays light for command-line use.

Example::

    import asyncio
    from client import AsyncClient

    async def main() -> None:
        async with AsyncClient(["http://127.0.0.1:7700", "http://127.0.0.1:7701"]) as c:
            status = await c.node_status()
            funds = await asyncio.gather(c.fund("FJ2026-ZD-0001"), c.fund("FZ2025-SZ-0107"))
            print(status.height, [f.balance for f in funds])

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from certs.verify import Verdict
from client.core import Attempts, Backoff, Call, NodeError, UrlPool, decode_reply
from client.ops import Op, Operations
from client.results import (
    Certificate,
    EvidenceVerdict,
    Fund,
    FundBalance,
    FundTrail,
    IssuedCertificate,
    NodeStatus,
    TxReceipt,
)
from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.genesis import Genesis
from ledger.tx import Transaction

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")


async def drive_async(op: Op[T], send: Callable[[Call], Awaitable[Any]]) -> T:
    """The ``async`` twin of :func:`client.ops.drive_sync`."""
    try:
        call = next(op)
        while True:
            try:
                reply = await send(call)
            except NodeError as exc:
                call = op.throw(exc)
            else:
                call = op.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


class AsyncClient(Operations):
    """An asynchronous client; arguments as :class:`client.sdk.Client` (``sleep`` is a
    coroutine function). Use it as ``async with AsyncClient(urls) as c:`` or call
    :meth:`close` when done. Every method is the ``async`` form of the
    :class:`~client.sdk.Client` method of the same name; ``chain_id`` is
    :meth:`get_chain_id`.
    """

    def __init__(self, urls: str | Sequence[str] = "http://127.0.0.1:7700",
                 key: PrivateKey | None = None, timeout: float = 40, retries: int = 3, *,
                 backoff: Backoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], int] | None = None) -> None:
        super().__init__(key, clock)
        self.pool = UrlPool(urls)
        self.timeout, self.retries = timeout, retries
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    @property
    def urls(self) -> list[str]:
        return self.pool.urls

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ---------------------------------------------------------------------------

    async def _send_once(self, url: str, call: Call) -> tuple[int, bytes, str | None]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(
                call.method, url + call.target, data=call.body, headers=dict(call.headers),
                timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            return resp.status, await resp.read(), resp.headers.get("Retry-After")

    async def _send(self, call: Call) -> Any:
        import aiohttp

        attempts = Attempts(self.pool, self.retries, self.backoff)
        for n, attempt in enumerate(attempts):
            if attempt.delay_s > 0:
                await self.sleep(attempt.delay_s)
            try:
                code, body, retry_after = await self._send_once(attempt.url,
                                                                call.for_attempt(n))
                value = decode_reply(call, code, body, retry_after)
            except NodeError as exc:
                if not attempts.retryable(exc):
                    raise
                attempts.failed(exc)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                attempts.failed(exc)
            else:
                attempts.succeeded(attempt)
                return value
        raise attempts.error()

    async def _run(self, op: Op[T]) -> T:
        return await drive_async(op, self._send)

    # -- generic -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._run(self.op_status())

    async def get_chain_id(self) -> str:
        return await self._run(self.op_chain_id())

    async def get(self, path: str, query: dict[str, str] | None = None,
                  signed: bool = False) -> Any:
        return await self._run(self.op_get(path, query, signed))

    async def get_bytes(self, path: str, query: dict[str, str] | None = None,
                        signed: bool = False) -> bytes:
        return await self._run(self.op_get_bytes(path, query, signed))

    async def post(self, path: str, body: Any, signed: bool = False) -> Any:
        return await self._run(self.op_post(path, body, signed))

    async def make(self, tx_type: str, payload: dict[str, Value], valid_ms: int = 600_000
                   ) -> Transaction:
        return await self._run(self.op_make(tx_type, payload, valid_ms))

    async def submit_tx(self, tx: Transaction, wait: bool = True) -> dict[str, Any]:
        return await self._run(self.op_submit_tx(tx, wait))

    async def submit(self, tx_type: str, payload: dict[str, Value], wait: bool = True
                     ) -> dict[str, Any]:
        return await self._run(self.op_submit(tx_type, payload, wait))

    # -- typed -------------------------------------------------------------------------------

    async def node_status(self) -> NodeStatus:
        return await self._run(self.op_node_status())

    async def transact(self, tx_type: str, payload: dict[str, Value], wait: bool = True,
                       check: bool = False) -> TxReceipt:
        return await self._run(self.op_transact(tx_type, payload, wait, check))

    async def transaction(self, tx_id: bytes | str) -> TxReceipt:
        return await self._run(self.op_transaction(tx_id))

    async def certificate(self, cert_id: str) -> Certificate:
        return await self._run(self.op_certificate(cert_id))

    async def certificate_bundle(self, cert_id: str, agency: str | None = None) -> bytes:
        return await self._run(self.op_certificate_bundle(cert_id, agency))

    async def verify_certificate(self, genesis: Genesis | str | Path, document: Any = None,
                                 cert_id: str | None = None, agency: str | None = None,
                                 as_of: int | str | None = None) -> Verdict:
        """Fetch the proof bundle, judge it here from ``genesis`` (see the sync form)."""
        return await self._run(self.op_verify_certificate(genesis, document, cert_id,
                                                          agency, as_of))

    async def node_verdict(self, document: Any = None, cert_id: str | None = None,
                           agency: str | None = None, as_of: int | str | None = None
                           ) -> Verdict:
        return await self._run(self.op_node_verdict(document, cert_id, agency, as_of))

    async def issue_certificate(self, type_code: str, *, holder_name: str, holder_code: str,
                                holder_code_type: str, valid_from: str, valid_until: str,
                                extra: dict[str, str], serial: str | None = None,
                                issue_date: str | None = None, number: str | None = None,
                                consortium_key: bytes | None = None) -> IssuedCertificate:
        return await self._run(self.op_issue_certificate(
            type_code, holder_name=holder_name, holder_code=holder_code,
            holder_code_type=holder_code_type, valid_from=valid_from, valid_until=valid_until,
            extra=extra, serial=serial, issue_date=issue_date, number=number,
            consortium_key=consortium_key))

    async def suspend_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        return await self._run(self.op_certificate_event("suspend", cert_id, reason))

    async def reinstate_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        return await self._run(self.op_certificate_event("reinstate", cert_id, reason))

    async def revoke_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        return await self._run(self.op_certificate_event("revoke", cert_id, reason))

    async def anchor(self, digest: bytes, label: str = "") -> TxReceipt:
        return await self._run(self.op_anchor(digest, label))

    async def evidence_proof(self, digest: bytes) -> bytes | None:
        return await self._run(self.op_evidence_proof(digest))

    async def verify_evidence(self, genesis: Genesis | str | Path, digest: bytes
                              ) -> EvidenceVerdict:
        return await self._run(self.op_verify_evidence(genesis, digest))

    async def funds(self, limit: int = 50) -> list[Fund]:
        return await self._run(self.op_funds(limit))

    async def fund(self, tag: str) -> Fund:
        return await self._run(self.op_fund(tag))

    async def fund_balance(self, tag: str) -> FundBalance:
        return await self._run(self.op_fund_balance(tag))

    async def fund_trail(self, tag: str, direction: str = "forward",
                         payment_id: bytes | str | None = None) -> FundTrail:
        return await self._run(self.op_fund_trail(tag, direction, payment_id))
