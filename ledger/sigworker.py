"""A signature-check worker process, spoken to over a socket pair (an IO module).

Theory of operation
-------------------
A node checks the SM2 signatures of submitted and gossiped transactions — and
of the commit certificates of fetched blocks — in another process, so its
event loop stays free and the check runs on the other core.
:class:`SigWorker` is that process: started with ``multiprocessing``'s
``spawn`` (a fresh interpreter, no copy of the node's memory), it reads
length-prefixed msgpack frames — a batch of ``(public key, purpose, message,
signature)`` — from its end of a ``socket.socketpair``, checks them with
:func:`ledger.admission.verify_batch`, and writes back one frame of booleans
per batch, in order. The node's end is an asyncio stream: :meth:`check`
writes a frame and returns a future that the reading task resolves when the
answer arrives; batches are answered first in, first out.

Why not ``concurrent.futures.ProcessPoolExecutor``: each of its round trips
crosses two bookkeeping threads in the node (the executor's manager and the
call queue's feeder) as well as the worker. On the shared two-core machine a
thread wake-up is dear; measured with one-signature batches, a round trip
cost the node 0.9 – 1.1 ms of CPU and 2.4 – 2.7 ms of wall time through the
pool against 0.22 – 0.24 ms and 1.6 – 1.7 ms here (``bench/RESULTS.md``). At
light load, when batches hold one or two signatures, that difference is
most of the worker's cost.

If the process dies (killed, out of memory), every batch it had not answered
resolves to ``None`` — "not checked": callers check such signatures
themselves — and so does every later batch; :attr:`dead` tells the owner to
start another. The worker exits when the node closes its end, and when the
node dies (``verify_worker_init``), so it never outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import struct
from collections import deque
from typing import Final

import msgpack

from ledger.admission import verify_batch, verify_worker_init

log = logging.getLogger("govledger.node")

Item = tuple[bytes, str, bytes, bytes]  # public key, purpose, message, signature
_HEAD: Final = struct.Struct(">I")
FRAME_MAX: Final = 1 << 30  # a batch is at most a few MB; anything larger is a bug


class SigWorker:
    """One worker process and the node's end of its socket (see the module docstring)."""

    def __init__(self, suite_name: str) -> None:
        self.suite_name = suite_name
        self._pending: deque[asyncio.Future[list[bool] | None]] = deque()
        self._early: list[bytes] = []  # frames written before the stream is open
        self._writer: asyncio.StreamWriter | None = None
        self.dead = False
        ours, theirs = socket.socketpair()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, suite_name), name="govledger-sigworker", daemon=True)
        try:
            self._process.start()
        finally:
            theirs.close()
        self._task = asyncio.get_running_loop().create_task(self._read(ours))

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def check(self, items: list[Item]) -> asyncio.Future[list[bool] | None]:
        """The verdicts on ``items``, in order, or None if the worker could not give them."""
        fut: asyncio.Future[list[bool] | None] = asyncio.get_running_loop().create_future()
        if self.dead:
            fut.set_result(None)
            return fut
        body = msgpack.packb(items, use_bin_type=True)
        frame = _HEAD.pack(len(body)) + body
        if self._writer is None:
            self._early.append(frame)
        else:
            self._writer.write(frame)
        self._pending.append(fut)
        return fut

    async def _read(self, sock: socket.socket) -> None:
        try:
            reader, self._writer = await asyncio.open_connection(sock=sock)
            for frame in self._early:
                self._writer.write(frame)
            self._early.clear()
            while True:
                (size,) = _HEAD.unpack(await reader.readexactly(_HEAD.size))
                verdicts = msgpack.unpackb(await reader.readexactly(size))
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result([v is True for v in verdicts])
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError,
                IndexError, msgpack.UnpackException) as exc:
            if self._pending:
                log.error("signature worker (pid %s) is gone with %d batches unanswered: %s",
                          self.pid, len(self._pending), exc or type(exc).__name__)
        finally:
            self.dead = True
            while self._pending:
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(None)
            if self._writer is not None:
                self._writer.close()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let the worker finish what it holds, then stop it (kill it after ``timeout_s``)."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.write_eof()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        self._task.cancel()
        await asyncio.to_thread(self._process.join, timeout_s)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, timeout_s)


def _serve(sock: socket.socket, suite_name: str) -> None:
    """The worker process: answer batches until the node closes its end."""
    verify_worker_init()
    stream = sock.makefile("rb")
    while True:
        head = stream.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return
        (size,) = _HEAD.unpack(head)
        if size > FRAME_MAX:
            return
        body = stream.read(size)
        if len(body) < size:
            return
        # Arrays of [bytes, str, bytes, bytes]: what verify_batch unpacks.
        body = msgpack.packb(verify_batch(suite_name, msgpack.unpackb(body)))
        sock.sendall(_HEAD.pack(len(body)) + body)
