"""Tests of consensus/transport.py: real aiohttp servers and sockets on 127.0.0.1.

Every scenario runs under ``asyncio.run`` with an overall timeout; ports come from
the OS (sockets bound to port 0); every wait is bounded. Nodes are stopped at the
end of each scenario, so nothing outlives its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from consensus import transport as tp
from consensus.transport import PeerTransport
from ledger.codec import decode_value, encode_value
from ledger.crypto import PrivateKey, Suite, get_suite

CHAIN = "govledger-test"
SCENARIO_TIMEOUT_S = 20.0


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))


def listen(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


class Node:
    """One transport on its own aiohttp server, recording what it receives."""

    def __init__(self, suite: Suite, key: PrivateKey | None = None, port: int = 0) -> None:
        self.suite = suite
        self.key = key or suite.generate_key()
        self.pub = self.key.public_key().raw
        self.sock = listen(port)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.inbox: list[tuple[bytes, bytes]] = []
        self.transport: PeerTransport
        self.runner: web.AppRunner | None = None

    def on_message(self, peer: bytes, payload: bytes) -> None:
        self.inbox.append((peer, payload))

    def received(self, peer: bytes) -> list[bytes]:
        return [payload for sender, payload in self.inbox if sender == peer]

    async def start(
        self,
        peers: dict[bytes, str],
        allowed: Callable[[bytes], bool] | None = None,
        chain_id: str = CHAIN,
        **options: Any,
    ) -> PeerTransport:
        self.transport = PeerTransport(
            self.suite, self.key, chain_id, peers, self.on_message, allowed,
            rng=random.Random(self.port), **options,
        )  # fmt: skip
        app = web.Application()
        self.transport.add_routes(app)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        await self.transport.start()
        return self.transport

    async def stop(self) -> None:
        if hasattr(self, "transport"):
            await self.transport.stop()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.sock.close()  # already closed by the server if it ran; a no-op then


@contextlib.asynccontextmanager
async def mesh(suite_name: str, count: int, **options: Any) -> AsyncIterator[list[Node]]:
    """``count`` nodes that all know each other, started, and stopped on exit."""
    suite = get_suite(suite_name)
    nodes = [Node(suite) for _ in range(count)]
    try:
        for node in nodes:
            await node.start({n.pub: n.address for n in nodes}, **options)  # own key ignored
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


def settled(nodes: list[Node]) -> bool:
    """Every pair has exactly one connection, the same one seen from both sides."""
    for a in nodes:
        for b in nodes:
            if a is b:
                continue
            conn_ab = a.transport._peers[b.pub].conn
            conn_ba = b.transport._peers[a.pub].conn
            if conn_ab is None or conn_ba is None:
                return False
            if conn_ab.session.initiator != conn_ba.session.initiator:
                return False
    return True


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


@pytest.mark.parametrize("suite_name", ["sm", "intl"])
def test_three_nodes_deliver_in_order_and_broadcast(
    suite_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Goal: three nodes connect by themselves and deliver every message, in order, both ways.

    Method: start a 3-node mesh (everyone dials everyone, so simultaneous dials happen)
    and at once send 20 messages on every pair, which must all arrive although
    duplicate connections get retired meanwhile (order across connections is not
    promised); wait until each pair has settled on one connection that both sides
    agree on, send 100 numbered messages on every pair and broadcast one from node 0;
    check that each receiver saw each sender's messages complete and in order.
    """

    async def scenario() -> None:
        async with mesh(suite_name, 3) as nodes:
            for sender in nodes:  # before the connections settle: nothing may be lost
                for receiver in nodes:
                    if sender is not receiver:
                        for seq in range(20):
                            assert sender.transport.send(receiver.pub, b"early%d" % seq)
            await wait_until(lambda: settled(nodes), "one agreed connection per pair")
            for sender in nodes:
                for receiver in nodes:
                    if sender is not receiver:
                        for seq in range(100):
                            assert sender.transport.send(receiver.pub, b"m%d" % seq)
            nodes[0].transport.broadcast(b"to everyone")

            def complete() -> bool:
                return all(len(n.inbox) == 240 + (n is not nodes[0]) for n in nodes)

            await wait_until(complete, "all messages delivered")
            early = [b"early%d" % seq for seq in range(20)]
            expected = [b"m%d" % seq for seq in range(100)]
            for receiver in nodes:
                for sender in nodes:
                    if sender is not receiver:
                        got = receiver.received(sender.pub)
                        assert sorted(p for p in got if p.startswith(b"early")) == sorted(early)
                        assert [p for p in got if p.startswith(b"m")] == expected
            for receiver in nodes[1:]:
                assert receiver.received(nodes[0].pub)[-1] == b"to everyone"
            for node in nodes:
                assert sorted(node.transport.connected()) == sorted(
                    n.pub for n in nodes if n is not node
                )
                assert node.transport.stats["bad_frames"] == 0
                assert node.transport.stats["handshake_failures"] == 0

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


class Proxy:
    """A TCP relay that records both directions and can stop reading from the client."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.client_to_server = bytearray()
        self.server_to_client = bytearray()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for task in (
            self._pipe(reader, up_writer, self.client_to_server, pausable=True),
            self._pipe(up_reader, writer, self.server_to_client, pausable=False),
        ):
            t = asyncio.create_task(task)
            self._tasks.add(t)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: bytearray,
        pausable: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                if pausable:
                    await self.flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                record += data
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def websocket_payloads(stream: bytes) -> list[bytes]:
    """The (unmasked) payloads of the WebSocket frames after the HTTP upgrade, as an
    observer of the TCP stream would read them."""
    index = stream.index(b"\r\n\r\n") + 4
    payloads = []
    while index + 2 <= len(stream):
        second = stream[index + 1]
        length, index = second & 0x7F, index + 2
        if length == 126:
            (length,), index = struct.unpack(">H", stream[index : index + 2]), index + 2
        elif length == 127:
            (length,), index = struct.unpack(">Q", stream[index : index + 8]), index + 8
        mask = b""
        if second & 0x80:
            mask, index = stream[index : index + 4], index + 4
        data = stream[index : index + length]
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        payloads.append(data)
        index += length
    return payloads


def test_wire_shows_no_plaintext(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a network observer sees no payload; frames are sealed with the suite's AEAD.

    Method: node A dials node B through a recording TCP proxy (B only accepts A and
    does not dial), they exchange payloads holding a marker both ways, then the
    captured byte streams are parsed into WebSocket frames (unmasked, as any
    observer can) and searched for the marker. As a check on the parser, the
    public HELLO fields (chain_id) are found in the capture.
    """
    marker = b"SECRET-MARKER-\xe8\xb4\xa2\xe6\x94\xbf-0123456789"

    async def scenario() -> None:
        suite = get_suite("sm")
        a, b = Node(suite), Node(suite)
        proxy = Proxy(b.port)
        proxy_address = await proxy.start()
        await b.start({}, allowed=lambda key: key == a.pub)
        await a.start({b.pub: proxy_address})
        try:
            await wait_until(lambda: a.pub in b.transport.connected(), "A connected to B")
            for i in range(20):
                assert a.transport.send(b.pub, marker * (i + 1))
                assert b.transport.send(a.pub, marker + bytes([i]))
            await wait_until(lambda: len(a.inbox) == 20 and len(b.inbox) == 20, "delivery")
        finally:
            await a.stop()
            await b.stop()
            await proxy.close()
        for stream in (bytes(proxy.client_to_server), bytes(proxy.server_to_client)):
            assert marker not in stream
            frames = websocket_payloads(stream)
            assert any(CHAIN.encode() in frame for frame in frames)  # the HELLO, in clear
            assert not any(marker in frame for frame in frames)
            assert not any(marker[:8] in frame for frame in frames)
        sealed_sizes = {len(f) for f in websocket_payloads(bytes(proxy.client_to_server))}
        assert 1 + len(marker) * 20 + tp.TAG_BYTES in sealed_sizes  # kind, payload, tag

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_refuses_outsider_wrong_key_and_wrong_chain(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: only allowed keys, on the right chain, presenting the dialled key, get in.

    Method: A and B form a network. An outsider O (key unknown to A) dials A; node W
    dials A's address believing it belongs to some other key X; node C, whose key A
    allows, dials A on another chain_id. Each attempt must be refused with the
    reason logged, none may appear in ``connected()``, and A and B keep exchanging.
    """

    async def scenario() -> None:
        suite = get_suite("sm")
        a, b, outsider, wrong, other_chain = (Node(suite) for _ in range(5))
        stranger = suite.generate_key().public_key().raw
        a_allows = {b.pub, other_chain.pub, wrong.pub}
        await a.start(
            {b.pub: b.address, other_chain.pub: other_chain.address}, allowed=a_allows.__contains__
        )
        await b.start({a.pub: a.address})
        await outsider.start({a.pub: a.address})
        await wrong.start({stranger: a.address}, allowed=lambda key: True)
        await other_chain.start({a.pub: a.address}, chain_id="another-chain")
        nodes = [a, b, outsider, wrong, other_chain]
        try:
            await wait_until(
                lambda: (
                    outsider.transport.stats["handshake_failures"] >= 2
                    and wrong.transport.stats["handshake_failures"] >= 2
                    and other_chain.transport.stats["handshake_failures"] >= 2
                ),
                "refused handshakes",
            )
            assert a.transport.connected() == [b.pub]
            for node in (outsider, wrong, other_chain):
                assert node.transport.connected() == []
            assert a.transport.send(b.pub, b"still fine")
            await wait_until(lambda: b.received(a.pub) == [b"still fine"], "A to B")
            assert not a.inbox or all(sender == b.pub for sender, _ in a.inbox)
        finally:
            for node in nodes:
                await node.stop()
        text = caplog.text
        assert "is not allowed" in text
        assert "we dialled" in text
        assert "chain_id mismatch" in text

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_garbage_closes_the_connection_and_the_node_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Goal: garbage on /v1/peer never crashes a node, never changes its state, and never
    yields a 500; each bad connection is closed and counted; good peers keep talking.

    Method: A and B run; a rogue holds the private key of R, a configured peer of A
    (so it can pass the handshake). It sends a plain HTTP GET and a HEAD; as HELLO,
    random bytes, canonical msgpack of the wrong shape, an oversize one and a text
    frame; then, after real handshakes, a tampered frame, a replayed frame, two
    frames in swapped order, a text frame, a frame over ``frame_bytes_max``, one of
    an unknown kind and data after FIN.
    After each, A must close the socket; at the end A and B still exchange
    messages and A's inbox holds only what the genuine frames carried.
    """

    async def scenario() -> None:
        suite = get_suite("sm")
        a, b = Node(suite), Node(suite)
        rogue_key = suite.generate_key()
        rogue = rogue_key.public_key().raw
        silent = listen()  # R's address: bound, never listening
        await a.start(
            {b.pub: b.address, rogue: f"127.0.0.1:{silent.getsockname()[1]}"},
            frame_bytes_max=64 << 10,
        )
        await b.start({a.pub: a.address})
        url = f"http://{a.address}/v1/peer"
        try:
            await wait_until(lambda: a.transport.connected() == [b.pub], "A-B connected")
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as response:
                    assert response.status == 426
                    assert (await response.json())["error"] == "not_websocket"
                async with http.head(url) as response:
                    assert response.status == 405

                async def closed_by_a(ws: aiohttp.ClientWebSocketResponse[Any]) -> int | None:
                    msg = await ws.receive(timeout=3)
                    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                    return ws.close_code

                junk_hellos = (os.urandom(200), encode_value({"version": 1}), b"\x80" * 2000)
                for junk in junk_hellos:
                    async with http.ws_connect(url) as ws:
                        await ws.send_bytes(junk)
                        assert await closed_by_a(ws) == 1008
                async with http.ws_connect(url) as ws:
                    await ws.send_str("hello")
                    assert await closed_by_a(ws) == 1008

                async def rogue_session() -> tuple[Any, tp.Session]:
                    ws = await http.ws_connect(url)
                    session = await tp.handshake(
                        ws, suite, rogue_key, CHAIN, dialled=a.pub, allowed=lambda key: True
                    )
                    await wait_until(lambda: rogue in a.transport.connected(), "rogue attached")
                    return ws, session

                ws, session = await rogue_session()
                sealed = bytearray(session.sealer.seal(b"tampered"))
                sealed[3] ^= 0x01
                await ws.send_bytes(bytes(sealed))
                assert await closed_by_a(ws) == 1002

                ws, session = await rogue_session()
                frame = session.sealer.seal(tp.DATA + b"genuine")
                await ws.send_bytes(frame)
                await ws.send_bytes(frame)
                assert await closed_by_a(ws) == 1002

                ws, session = await rogue_session()
                first = session.sealer.seal(tp.DATA + b"first")
                second = session.sealer.seal(tp.DATA + b"second")
                await ws.send_bytes(second)
                await ws.send_bytes(first)
                assert await closed_by_a(ws) == 1002

                ws, session = await rogue_session()
                await ws.send_str("a text frame")
                assert await closed_by_a(ws) == 1002

                ws, session = await rogue_session()
                await ws.send_bytes(session.sealer.seal(tp.DATA + os.urandom((64 << 10) + 1)))
                assert await closed_by_a(ws) == 1009  # over frame_bytes_max + kind + tag

                ws, session = await rogue_session()
                await ws.send_bytes(session.sealer.seal(b"\x07unknown kind"))
                assert await closed_by_a(ws) == 1002

                ws, session = await rogue_session()
                await ws.send_bytes(session.sealer.seal(tp.FIN))
                await ws.send_bytes(session.sealer.seal(tp.DATA + b"after FIN"))
                assert await closed_by_a(ws) == 1002
                await ws.close()

            await wait_until(lambda: rogue not in a.transport.connected(), "rogue detached")
            assert a.received(rogue) == [b"genuine"]
            stats = a.transport.stats
            assert stats["rejected_requests"] == 1
            assert stats["handshake_failures"] == 4
            assert stats["bad_frames"] == 7
            assert a.transport.send(b.pub, b"after the garbage")
            assert b.transport.send(a.pub, b"back")
            await wait_until(lambda: b.received(a.pub) == [b"after the garbage"], "A to B")
            await wait_until(lambda: a.received(b.pub) == [b"back"], "B to A")
            assert a.transport.connected() == [b.pub]
        finally:
            await a.stop()
            await b.stop()
            silent.close()
        assert "text frame instead of HELLO" in caplog.text
        assert "fails authentication" in caplog.text

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_restarted_node_is_reconnected(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: when a node restarts on the same port, the others reconnect by themselves.

    Method: a 3-node mesh settles; node 1 stops (transport and server); the others
    see it disconnected; a new transport with the same key starts on the same port;
    within a bounded time both others are connected to it again and messages flow.
    Also checks that ``stop()`` is idempotent.
    """

    async def scenario() -> None:
        async with mesh("sm", 3) as nodes:
            first, middle, last = nodes
            await wait_until(lambda: settled(nodes), "settled")
            await middle.stop()
            await middle.transport.stop()  # idempotent
            await wait_until(
                lambda: (
                    middle.pub not in first.transport.connected()
                    and middle.pub not in last.transport.connected()
                ),
                "the others notice",
            )
            started = time.monotonic()
            restarted = Node(middle.suite, middle.key, port=middle.port)
            nodes[1] = restarted
            await restarted.start({n.pub: n.address for n in nodes})
            await wait_until(lambda: settled(nodes), "reconnected", timeout_s=8.0)
            print(f"reconnected in {time.monotonic() - started:.2f} s")
            assert first.transport.send(restarted.pub, b"welcome back")
            await wait_until(lambda: restarted.received(first.pub) == [b"welcome back"], "msg")

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_slow_and_dead_peers_never_block_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: ``send`` never blocks and queues stay bounded, whatever a peer does.

    Method: A talks to B through a proxy that stops reading from A (a peer that never
    reads), to D whose address has no listener (a dead peer), and directly to C.
    A sends 300 frames of 256 KiB to B and to D with a 20-frame queue: every call
    returns at once, the queues never exceed 20 frames, drops are counted, and 200
    frames A sends to C meanwhile all arrive, in order.
    """

    async def scenario() -> None:
        suite = get_suite("intl")
        a, b, c = Node(suite), Node(suite), Node(suite)
        dead_socket = listen()  # bound, never listening: connections are refused
        dead = suite.generate_key().public_key().raw
        proxy = Proxy(b.port)
        proxy_address = await proxy.start()
        await b.start({}, allowed=lambda key: key == a.pub)
        await c.start({a.pub: a.address})
        dead_address = f"127.0.0.1:{dead_socket.getsockname()[1]}"
        await a.start(
            {b.pub: proxy_address, c.pub: c.address, dead: dead_address}, queue_frames_max=20
        )
        try:
            await wait_until(
                lambda: sorted(a.transport.connected()) == sorted([b.pub, c.pub]), "up"
            )
            proxy.flowing.clear()
            big = os.urandom(256 << 10)
            slowest = 0.0
            for i in range(300):
                for target in (b.pub, dead):
                    t0 = time.perf_counter()
                    a.transport.send(target, big)
                    slowest = max(slowest, time.perf_counter() - t0)
                    assert a.transport.queued(target) <= 20
                if i < 200:
                    a.transport.send(c.pub, b"c%d" % i)
                if i % 10 == 0:
                    await asyncio.sleep(0.01)  # let the writers run
            assert slowest < 0.05, slowest
            await wait_until(lambda: len(c.received(a.pub)) == 200, "A to C unaffected")
            assert c.received(a.pub) == [b"c%d" % i for i in range(200)]
            assert a.transport.queued(dead) == 20
            assert a.transport.stats["dropped_queue_full"] >= 2 * 300 - 2 * 20 - 100
            assert a.transport.stats["dial_failures"] >= 1
        finally:
            proxy.flowing.set()
            await a.stop()
            await b.stop()
            await c.stop()
            await proxy.close()
            dead_socket.close()

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_session_frame_limit_forces_a_fresh_handshake(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Goal: a session is closed before its nonce counter runs out, and nothing is lost.

    Method: lower SESSION_FRAMES_MAX to 8 (AUTH, 6 payloads and FIN per direction);
    A (the only dialler) sends 20 frames to B; they all arrive, in order, over 4
    sessions, each with fresh keys from a new handshake.
    """
    monkeypatch.setattr(tp, "SESSION_FRAMES_MAX", 8)

    async def scenario() -> None:
        suite = get_suite("intl")
        a, b = Node(suite), Node(suite)
        await b.start({}, allowed=lambda key: key == a.pub)
        await a.start({b.pub: b.address})
        try:
            for i in range(20):
                assert a.transport.send(b.pub, b"f%d" % i)
            await wait_until(lambda: len(b.inbox) == 20, "all frames", timeout_s=8.0)
            assert b.received(a.pub) == [b"f%d" % i for i in range(20)]
            assert a.transport.stats["handshakes_ok"] == 4
            assert b.transport.stats["bad_frames"] == 0
        finally:
            await a.stop()
            await b.stop()

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_set_peers_connects_new_and_drops_removed(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a validator set change connects to added peers and drops removed ones.

    Method: A starts knowing only B; set_peers({C}) makes A connect to C and drop B
    (whose queue is gone: send returns False); unknown keys and oversize payloads are
    refused by ``send`` and counted.
    """

    async def scenario() -> None:
        suite = get_suite("intl")
        a, b, c = Node(suite), Node(suite), Node(suite)
        await b.start({a.pub: a.address})
        await c.start({a.pub: a.address})
        await a.start({b.pub: b.address}, frame_bytes_max=1024, queue_bytes_max=4096)
        try:
            await wait_until(lambda: a.transport.connected() == [b.pub], "A-B")
            a.transport.set_peers({c.pub: c.address, a.pub: a.address})
            await wait_until(lambda: a.transport.connected() == [c.pub], "A-C only")
            assert not a.transport.send(b.pub, b"gone")
            assert not a.transport.send(c.pub, b"x" * 1025)
            assert a.transport.send(c.pub, b"x" * 1024)
            await wait_until(lambda: c.received(a.pub) == [b"x" * 1024], "A to C")
            assert a.transport.stats["dropped_unknown_peer"] == 1
            assert a.transport.stats["dropped_too_large"] == 1
            with pytest.raises(ValueError):
                a.transport.set_peers({b.pub: "no-port"})
        finally:
            for node in (a, b, c):
                await node.stop()

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_handshake_as_documented_interoperates(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: the module docstring specifies the protocol well enough to reimplement it.

    Method: an initiator written here from the docstring alone (suite primitives and
    the codec, none of the transport's code) handshakes with a node, sends it frame 1,
    opens the node's reply, then retires the connection with FIN: the node answers
    FIN and closes with 1000.
    """

    async def scenario() -> None:
        suite = get_suite("sm")
        node = Node(suite)
        key = suite.generate_key()
        ours = key.public_key().raw
        silent = listen()
        await node.start({ours: f"127.0.0.1:{silent.getsockname()[1]}"})
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"http://{node.address}/v1/peer")
                ephemeral, ephemeral_raw = suite.generate_ephemeral()
                hello_i = encode_value(
                    {"version": 1, "suite": "sm", "chain_id": CHAIN, "static": ours,
                     "ephemeral": ephemeral_raw, "nonce": os.urandom(32)}
                )  # fmt: skip
                await ws.send_bytes(hello_i)
                hello_r = (await ws.receive(timeout=3)).data
                fields = decode_value(hello_r)
                assert isinstance(fields, dict) and fields["static"] == node.pub
                assert isinstance(fields["ephemeral"], bytes)
                secret = suite.agree(ephemeral, fields["ephemeral"])
                th = suite.hash(encode_value(["govledger/peer/v1", hello_i, hello_r]))
                size = suite.aead_key_size
                k_i2r = suite.kdf(secret, b"govledger/peer/v1 initiator->responder\0" + th, size)
                k_r2i = suite.kdf(secret, b"govledger/peer/v1 responder->initiator\0" + th, size)

                def nonce(n: int) -> bytes:
                    return n.to_bytes(12, "big")

                sig = key.sign("peer", encode_value({"role": "initiator", "transcript": th}))
                await ws.send_bytes(suite.aead_seal(k_i2r, nonce(0), encode_value({"sig": sig})))
                sealed = (await ws.receive(timeout=3)).data
                auth = decode_value(suite.aead_open(k_r2i, nonce(0), sealed))
                assert isinstance(auth, dict) and isinstance(auth["sig"], bytes)
                signed = encode_value({"role": "responder", "transcript": th})
                assert suite.verify(node.pub, "peer", signed, auth["sig"])

                await ws.send_bytes(suite.aead_seal(k_i2r, nonce(1), b"\x00from the spec"))
                await wait_until(lambda: node.received(ours) == [b"from the spec"], "delivery")
                assert node.transport.send(ours, b"reply")
                reply = await ws.receive(timeout=3)
                assert suite.aead_open(k_r2i, nonce(1), reply.data) == b"\x00reply"
                await ws.send_bytes(suite.aead_seal(k_i2r, nonce(2), b"\x01"))  # FIN
                fin = await ws.receive(timeout=3)
                assert suite.aead_open(k_r2i, nonce(2), fin.data) == b"\x01"
                closing = await ws.receive(timeout=3)
                assert closing.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1000
        finally:
            await node.stop()
            silent.close()

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_silent_sockets_are_bounded_and_timed_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Goal: unauthenticated sockets that say nothing cannot pile up or stay forever.

    Method: with the inbound handshake limit lowered to 3 and a 0.5 s handshake
    timeout, open 3 WebSockets that never send a HELLO: a 4th upgrade gets HTTP 503;
    the 3 are closed (1008) once the timeout passes; then a real peer gets in.
    """
    monkeypatch.setattr(tp, "HANDSHAKES_INBOUND_MAX", 3)

    async def scenario() -> None:
        suite = get_suite("intl")
        a, b = Node(suite), Node(suite)
        await a.start({b.pub: b.address}, handshake_timeout_s=0.5)
        url = f"http://{a.address}/v1/peer"
        try:
            async with aiohttp.ClientSession() as http:
                silent = [await http.ws_connect(url) for _ in range(3)]
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url)
                assert refused.value.status == 503
                for ws in silent:
                    await ws.receive(timeout=3)
                    assert ws.close_code == 1008
            await b.start({a.pub: a.address})
            await wait_until(lambda: a.transport.connected() == [b.pub], "a real peer gets in")
            assert a.transport.stats["handshake_failures"] == 3
            assert a.transport.stats["rejected_requests"] == 1
        finally:
            await a.stop()
            await b.stop()
        assert "handshake timed out" in caplog.text

    caplog.set_level(logging.WARNING)
    run(scenario())
    no_errors(caplog)


def test_on_message_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a bug in the caller's ``on_message`` is logged and counted, and neither
    kills the connection nor loses the following messages.

    Method: B's callback raises on one payload; A sends it and then another; B gets
    the other, counts one callback error, and the connection stays up.
    """

    async def scenario() -> None:
        suite = get_suite("intl")
        a, b = Node(suite), Node(suite)

        def explode(peer: bytes, payload: bytes) -> None:
            if payload == b"boom":
                raise RuntimeError("a consensus bug")
            b.inbox.append((peer, payload))

        b.on_message = explode  # type: ignore[method-assign]
        await b.start({a.pub: a.address})
        await a.start({b.pub: b.address})
        try:
            assert a.transport.send(b.pub, b"boom")
            assert a.transport.send(b.pub, b"after")
            await wait_until(lambda: b.received(a.pub) == [b"after"], "the next message")
            assert b.transport.stats["callback_errors"] == 1
            assert a.transport.connected() == [b.pub]
        finally:
            await a.stop()
            await b.stop()

    caplog.set_level(logging.WARNING)
    run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].getMessage().startswith("on_message raised peer=")
    assert errors[0].exc_info is not None and "a consensus bug" in str(errors[0].exc_info[1])
