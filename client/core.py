"""The transport-independent half of the SDK: requests, replies, errors, retries.

Theory of operation
-------------------
Nothing here does IO. A request is a :class:`Call` (method, path with its
query, headers, body, whether the reply is wanted as bytes). A transport —
``urllib`` in :class:`client.sdk.Client`, aiohttp in
:class:`client.aio.AsyncClient` — sends it to one node and hands back the
status, content type and body; :func:`decode_reply` turns that into a value
or a :class:`NodeError` carrying the node's ``{"error", "detail"}``.

Which node, and when to wait, is decided by :class:`Attempts`, a small state
machine the transport iterates: every URL in turn starting with the one that
answered last (failover), then a pause of :meth:`Backoff.delay_s` before the
next round, for ``rounds`` rounds. A connection error, a timeout or a reply
with a status in :data:`RETRY_STATUSES` (503: busy, shutting down, not a
validator) moves on to the next attempt; any other reply — success or a 4xx
refusal — ends the loop. When every attempt failed, the last node refusal is
raised if some node answered, else :class:`Unreachable`.

Retrying a ``POST`` is safe here: a transaction is identified by its signed
bytes, so the ledger executes it at most once (a resubmission is a 409
``duplicate``, which :mod:`client.ops` turns back into the transaction's
receipt). A signed read is refused when replayed, so each retry of one carries
a freshly signed read (:meth:`Call.for_attempt`).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

MSGPACK: Final = "application/msgpack"
JSON: Final = "application/json"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_AFTER_MAX_S: Final = 30.0  # the longest pause a node's Retry-After can ask for
DETAIL_CHARS_MAX: Final = 500
# Characters left as they are in a request's path: RFC 3986's reserved and unreserved ones
# and '%' (a path that is already percent-encoded stays so).
PATH_SAFE: Final = "/?[]@!$&'()*+,;=:%-._~"


class SdkError(Exception):
    """Base of the SDK's own errors."""


class NodeError(SdkError):
    """The node refused a request; ``status``, ``code`` and ``detail`` say why.

    Example::

        try:
            client.certificate("bogus")
        except NodeError as exc:
            print(exc.status, exc.code, exc.detail)   # 400 bad_request identifier ...
    """

    def __init__(self, status: int, code: str, detail: str,
                 retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail
        self.retry_after_s = retry_after_s  # the node's Retry-After, in seconds


class BadReply(NodeError):
    """A node answered with something that is not the documented reply (its fault)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, "bad_reply", detail)


class Unreachable(SdkError, ConnectionError):
    """No node answered (connection refused or reset, timeout) after every retry.

    It is a :class:`ConnectionError` too, so code that catches ``OSError`` around
    :func:`client.sdk.request` keeps working.
    """


class TxFailed(SdkError):
    """A transaction was not committed with success; ``receipt`` says what happened.

    ``code`` and ``reason`` are the executor's (e.g. ``rejected``, "not authorised
    ...") or ``pending`` when it was not committed within the node's wait.
    """

    def __init__(self, receipt: Any) -> None:
        self.receipt = receipt
        self.code: str = receipt.code
        self.reason: str = receipt.reason
        super().__init__(f"transaction {receipt.tx_id.hex()[:16]}… {receipt.status}: "
                         f"{self.code}: {self.reason}")


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request, before a transport sends it to some node."""

    method: str
    target: str  # path and query string, e.g. "/v1/certs?limit=5"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    raw_response: bool = False  # the reply's bytes instead of parsed JSON
    # Fresh headers for a retry: a signed read is signed anew (new nonce) for every
    # attempt, because the node that took the first one may have logged it already and
    # would refuse the same signed read as replayed.
    resign: Callable[[], Mapping[str, str]] | None = field(default=None, compare=False)

    def for_attempt(self, n: int) -> Call:
        """The request to send as attempt ``n`` (0 first)."""
        if n == 0 or self.resign is None:
            return self
        return replace(self, headers={**self.headers, **self.resign()})


def target(path: str, query: Mapping[str, object] | None = None) -> str:
    """``path`` with ``query`` as a sorted, URL-encoded query string (what signed reads
    cover, so the order must be the one :mod:`ledger.reads` expects)."""
    items = sorted((k, str(v)) for k, v in (query or {}).items())
    # What a URL cannot carry as typed (a space, a control or non-ASCII character) is
    # percent-encoded, so the node decodes exactly ``path`` — and answers it, rather than
    # the request failing as if the node could not be reached.
    path = urllib.parse.quote(path, safe=PATH_SAFE)
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


def build_call(method: str, path: str, query: Mapping[str, object] | None = None, *,
               body: Any = None, raw: bytes | None = None,
               headers: Mapping[str, str] | None = None, raw_response: bool = False,
               resign: Callable[[], Mapping[str, str]] | None = None) -> Call:
    """A :class:`Call`: ``body`` is sent as JSON, ``raw`` as canonical msgpack."""
    all_headers = dict(headers or {})
    data: bytes | None = None
    if raw is not None:
        data, all_headers["Content-Type"] = raw, MSGPACK
    elif body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        all_headers["Content-Type"] = JSON
    if raw_response:
        all_headers.setdefault("Accept", MSGPACK)
    return Call(method, target(path, query), all_headers, data, raw_response, resign)


def decode_reply(call: Call, status: int, body: bytes, retry_after: str | None = None) -> Any:
    """The value of a reply: JSON, or the bytes for ``raw_response``; NodeError for a
    status of 400 or more (with the node's error code and detail when it sent them, and
    its ``Retry-After`` header)."""
    if status >= 400:
        raise node_error(status, body, retry_after)
    if call.raw_response:
        return body
    try:
        return json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise BadReply(status, f"the reply to {call.method} {call.target} is not JSON: "
                               f"{exc}") from None


def node_error(status: int, body: bytes, retry_after: str | None = None) -> NodeError:
    try:
        payload = json.loads(body)
        code, detail = str(payload["error"]), str(payload.get("detail", ""))
    except (ValueError, TypeError, KeyError, RecursionError):
        text = body[:DETAIL_CHARS_MAX].decode("utf-8", errors="replace").strip()
        code, detail = "http_error", text or f"HTTP status {status}"
    wait = retry_after.strip() if retry_after else ""
    # Seconds only (the HTTP-date form is not used by nodes); at most RETRY_AFTER_MAX_S.
    seconds = (min(float(wait), RETRY_AFTER_MAX_S)
               if wait.isascii() and wait.isdigit() and len(wait) <= 6 else None)
    return NodeError(status, code, detail, seconds)


# -- retries and failover ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential pauses between rounds: ``base_s * factor**round``, at most ``max_s``.

    Example: ``Client(urls, backoff=Backoff(base_s=0.05, max_s=0.5))``; tests pass
    ``Backoff(0, 0, 0)`` or a recording ``sleep`` to run without waiting.
    """

    base_s: float = 0.2
    factor: float = 2.0
    max_s: float = 2.0

    def delay_s(self, round_index: int) -> float:
        return min(self.max_s, self.base_s * self.factor ** round_index)


@dataclass(frozen=True, slots=True)
class Attempt:
    url: str
    delay_s: float  # pause before this attempt


class Attempts:
    """The attempts for one call (see the module docstring); the transport iterates
    it and reports each failure with :meth:`failed`, each success with :meth:`succeeded`."""

    def __init__(self, pool: UrlPool, rounds: int, backoff: Backoff) -> None:
        self.pool, self.rounds, self.backoff = pool, max(1, rounds), backoff
        self.last_refusal: NodeError | None = None
        self.last_problem: BaseException | None = None
        self._tried: list[str] = []
        self._asked_s = 0.0  # the longest Retry-After of this round's refusals

    def __iter__(self) -> Iterator[Attempt]:
        order = self.pool.order()
        for round_index in range(self.rounds):
            for i, url in enumerate(order):
                delay = 0.0
                if i == 0 and round_index:  # a pause between rounds, as long as nodes asked
                    delay = max(self.backoff.delay_s(round_index - 1), self._asked_s)
                    self._asked_s = 0.0
                self._tried.append(url)
                yield Attempt(url, delay)

    def retryable(self, exc: NodeError) -> bool:
        return exc.status in RETRY_STATUSES

    def failed(self, problem: BaseException) -> None:
        if isinstance(problem, NodeError):
            self.last_refusal = problem
            if problem.retry_after_s is not None:
                self._asked_s = max(self._asked_s, problem.retry_after_s)
        self.last_problem = problem

    def succeeded(self, attempt: Attempt) -> None:
        self.pool.prefer(attempt.url)

    def error(self) -> SdkError:
        """What to raise once every attempt failed."""
        if self.last_refusal is not None:
            return self.last_refusal
        urls = ", ".join(dict.fromkeys(self._tried))
        return Unreachable(f"no node answered ({urls}) after {self.rounds} round(s): "
                           f"{self.last_problem}")


class UrlPool:
    """The node URLs, with the one that answered last tried first (sticky failover)."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        raw = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [u.strip().rstrip("/") for u in raw if u.strip()]
        if not self.urls:
            raise ValueError("at least one node URL is needed")
        self._first = 0

    def order(self) -> list[str]:
        return self.urls[self._first:] + self.urls[:self._first]

    def prefer(self, url: str) -> None:
        if url in self.urls:
            self._first = self.urls.index(url)
