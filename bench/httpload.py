"""A lean HTTP/1.1 client for the load generator: pre-built requests on keep-alive sockets.

The load generator runs on the same two cores as the four nodes it measures, so every
millisecond it spends per transaction is taken from them. aiohttp's client cost it about
0.4 ms of CPU per ``POST /v1/tx?wait=commit`` (bench/RESULTS.md); this one writes the
request's bytes, built once, to a plain asyncio transport and reads the answer by its
``Content-Length`` — all a load generator needs from HTTP, since the node it talks to
answers every request with a complete JSON body.

One :class:`Connection` carries one request at a time (a ``?wait=commit`` request holds
its connection until the block commits; pipelining a second one behind it would only
add that wait to its latency). :class:`Pool` keeps the idle ones per node.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

HEAD_MAX = 16 * 1024  # bytes of status line and headers an answer may have


class HttpError(Exception):
    """The connection failed or the answer was not HTTP this client understands."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a node; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            answer = self._answer()
        except HttpError as exc:
            self._fail(exc)
            return
        if answer is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)

    def _fail(self, exc: HttpError) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection closed ({exc or 'by the node'})"))

    def _answer(self) -> tuple[int, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > HEAD_MAX:
                raise HttpError("no end of headers")
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
            length = next(int(line.split(":", 1)[1]) for line in head[1:]
                          if line[:15].lower() == "content-length:")
        except (IndexError, ValueError, StopIteration):
            raise HttpError(f"cannot read the answer's head: {head[:3]}") from None
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        return status, body

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request's bytes; its (status, body)."""
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def post_request(url: str, path: str, body: bytes, content_type: str) -> bytes:
    """The bytes of ``POST path`` with ``body`` to the node at ``url``."""
    host = urlsplit(url).netloc
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("ascii") + body


class Pool:
    """Idle connections per node URL; a request takes one (or opens one) and gives it
    back when its answer is in."""

    def __init__(self) -> None:
        self.idle: dict[str, list[Connection]] = {}
        self.all: list[Connection] = []

    async def _take(self, url: str) -> Connection:
        idle = self.idle.setdefault(url, [])
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise HttpError(f"{url}: expected http://host:port")
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, parts.hostname, parts.port)
        self.all.append(conn)
        return conn

    async def post_json(self, url: str, data: bytes) -> tuple[int, Any]:
        """Send ``data`` (from :func:`post_request`) to ``url``: (status, decoded JSON)."""
        conn = await self._take(url)
        status, body = await conn.request(data)
        self.idle[url].append(conn)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            raise HttpError(f"the answer ({status}) is not JSON: {body[:80]!r}") from None

    def close(self) -> None:
        for conn in self.all:
            conn.close()
