"""Authenticated, encrypted node-to-node transport over aiohttp WebSockets.

Theory of operation
-------------------
Every validator mounts one WebSocket route, ``GET /v1/peer`` (plain HTTP on its
API port, no subprotocol, no compression), and also dials every configured peer.
Payloads are opaque ``bytes`` (canonical msgpack made by the caller); the
transport never looks inside. Every message below is one binary WebSocket message.

Handshake, protocol version 1 (``enc`` is the canonical codec, ``H`` the suite
hash, ``Sign`` a validator's static key with a purpose tag, see ledger.crypto):

1. The initiator (the dialler) sends ``HELLO_i``; the responder checks it and
   answers ``HELLO_r``. ``HELLO = enc({version: 1, suite: "sm"|"intl",
   chain_id: str, static: bin, ephemeral: bin, nonce: bin[32]})``: the raw static
   public key, a fresh key agreement public key (``Suite.generate_ephemeral``:
   ECDH on the SM2 curve for ``sm``, X25519 for ``intl``), 32 random bytes.
   A HELLO is at most 1,024 bytes and must decode canonically.
2. Each side checks the other's HELLO before any expensive work: same
   version, suite and chain_id; static key not its own; for the initiator,
   static key equal to the key it dialled; static key ``allowed`` (a callback;
   by default, a configured peer). The responder does this before it even
   makes its ephemeral key, so an outsider costs it one small decode.
3. ``secret = Suite.agree(own ephemeral, peer ephemeral)``,
   ``th = H(enc(["govledger/peer/v1", HELLO_i, HELLO_r]))`` over the exact bytes
   sent, ``k_i2r = HKDF(secret, info = b"govledger/peer/v1 initiator->responder"
   + 0x00 + th)``, ``k_r2i`` the same with ``responder->initiator``; HKDF with
   the suite hash, no salt, output the AEAD key size (``Suite.kdf``).
4. Each side sends AUTH as frame 0 of its direction (below):
   ``enc({sig: Sign("peer", enc({role, transcript: th}))})`` with its own role,
   ``"initiator"`` or ``"responder"``, and verifies the peer's AUTH under the
   static key of the peer's HELLO and the peer's role. The responder sends AUTH
   right after HELLO_r; the initiator after reading HELLO_r; then each reads the
   other's. The session is up when that signature verifies.

All of it, TCP connect included, must finish within 5 s; at most 16 inbound
handshakes run at once (more get HTTP 503), which bounds what unauthenticated
sockets can take. Signing ``th`` binds both static keys, both ephemeral keys and
both nonces, so an AUTH is useless in any other session or role.

Frames. Frame ``n`` of a direction (n = 0 is AUTH) is ``AEAD_seal(k_dir,
nonce = n as 12 bytes big-endian, plaintext, aad = b"")`` with SM4-GCM or
AES-256-GCM; the counter is never sent. After AUTH a plaintext is either
``0x00 || payload`` (DATA) or the single byte ``0x01`` (FIN: "I send nothing
more here"). A tampered, replayed, reordered or missing frame fails to open
and the connection is closed (code 1002), as it is for a text frame, an
unknown kind or anything after FIN; a frame over ``frame_bytes_max`` + 17
bytes closes it with 1009. All nodes of a network should use the same
``frame_bytes_max``.

Connections. Both sides dial, so two connections may come up at once. When a
second authenticated connection to a peer appears, both sides keep the one
whose initiator has the lower static key (bytewise), or the newer one when both
have the same initiator; each side reaches the same choice on its own, and
``send`` only uses the kept one. The other is *retired*: its writer stops
taking payloads, sends FIN, keeps reading (and delivering) until the peer's
FIN, then closes it (1000); a peer receiving FIN on its current connection
stops using it and sends FIN back. So resolving duplicates loses nothing;
payloads may only be reordered across the switch. The same retirement happens
before a direction's counter reaches 2**32 (a nonce is never reused) and the
dialler then makes a fresh handshake with fresh keys. aiohttp's heartbeat
(a ping every 10 s) closes a connection whose peer stopped answering. Close
codes: 1000 retired / peer removed, 1001 stopping, 1002 bad frame, 1008
handshake refused, 1009 frame too big, 1011 a bug of ours.

Queues. Each configured peer has one FIFO of payloads, bounded by
``queue_frames_max`` and ``queue_bytes_max`` and kept across reconnections,
drained by one writer task per connection; a slow or dead peer only fills its
own queue. ``send`` never blocks: when the queue is full it drops the new
payload, counts it and returns False (consensus retransmits on its timers).
Frames in flight when a connection breaks (not retires) are lost.

Reconnect. One dialler task per configured peer waits while the peer is
connected, otherwise dials, with exponential backoff from 0.1 s to 5 s,
jittered by the injected ``random.Random``, until :meth:`PeerTransport.stop`.
The side with the higher key waits one backoff step before its first dial,
so at start-up the lower key's (winning) connection usually comes alone.

What others can do. A network observer sees the HELLOs (chain_id and the
validators' public keys, which genesis makes public anyway), frame sizes and
timing; never a payload. An outsider whose key is not allowed is refused
after its HELLO. Without a validator's private key no one completes a
handshake as that validator; without the session keys no one can inject,
alter, replay or reorder a frame. An on-path attacker can still cut
connections (WebSocket close and ping frames, like TCP, are not authenticated):
availability is consensus' business. Every refusal closes the connection,
counts in ``stats`` and logs one WARNING line with the reason (at most 20 per
10 s); nothing else changes.

Errors: a peer's misbehaviour is a :class:`PeerError` or another ``InputError``,
caught here and never raised to callers; a bad argument is a ``ValueError``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from ledger.codec import decode, encode, encode_value
from ledger.crypto import EphemeralKey, PrivateKey, Suite
from ledger.errors import CryptoError, DecodeError, InputError

log = logging.getLogger("govledger.transport")

PATH = "/v1/peer"
PROTOCOL_VERSION = 1
LABEL = "govledger/peer/v1"
HANDSHAKE_TIMEOUT_S = 5.0
HANDSHAKE_BYTES_MAX = 1024
HANDSHAKES_INBOUND_MAX = 16  # bounds the CPU and memory unauthenticated sockets can take
NONCE_BYTES = 32
TAG_BYTES = 16
DATA = b"\x00"  # first plaintext byte of a frame carrying a payload
FIN = b"\x01"  # the sender will send nothing more on this connection
RETIRE_TIMEOUT_S = 5.0  # how long a retired connection waits for the peer's FIN
SESSION_FRAMES_MAX = 2**32  # per direction; far below the 2**96 nonce space
HEARTBEAT_S = 10.0
CLOSE_TIMEOUT_S = 1.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
WARNINGS_PER_WINDOW = 20
WARNING_WINDOW_S = 10.0

STAT_NAMES = (
    "frames_sent", "frames_received", "bytes_sent", "bytes_received",
    "dropped_queue_full", "dropped_unknown_peer", "dropped_too_large",
    "handshakes_ok", "handshake_failures", "bad_frames", "rejected_requests",
    "dial_failures", "duplicate_connections", "connections_closed", "callback_errors",
)  # fmt: skip


class PeerError(InputError):
    """A peer broke the protocol or failed authentication; its connection is closed."""


class _PeerGone(PeerError):
    """The peer went away during the handshake (stopping, or the socket closed): no attack."""


class _SessionExhausted(Exception):
    """The frame counter of a direction reached SESSION_FRAMES_MAX."""


class _Socket(Protocol):
    """What the transport uses of aiohttp's client and server WebSockets."""

    @property
    def closed(self) -> bool: ...

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    async def receive(self, timeout: float | None = None) -> Any: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """The first message of each side (see the module docstring)."""

    version: int
    suite: str
    chain_id: str
    static: bytes
    ephemeral: bytes
    nonce: bytes

    def validate(self) -> None:
        if len(self.nonce) != NONCE_BYTES:
            raise DecodeError(f"HELLO nonce must be {NONCE_BYTES} bytes, got {len(self.nonce)}")
        if not 0 < len(self.static) <= 256 or not 0 < len(self.ephemeral) <= 256:
            raise DecodeError("HELLO key of a bad size")


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    """The first sealed frame of each direction: the static key's signature."""

    sig: bytes


class _Cipher:
    """One direction of a session: AEAD under one key, nonces from a counter."""

    __slots__ = ("_key", "_suite", "counter")

    def __init__(self, suite: Suite, key: bytes) -> None:
        self._suite, self._key, self.counter = suite, key, 0

    def _nonce(self) -> bytes:
        if self.counter >= SESSION_FRAMES_MAX:
            raise _SessionExhausted
        self.counter += 1
        return (self.counter - 1).to_bytes(12, "big")

    def seal(self, plaintext: bytes) -> bytes:
        return self._suite.aead_seal(self._key, self._nonce(), plaintext)

    def open(self, sealed: bytes) -> bytes:
        """CryptoError if the frame is not the next one this direction sent."""
        return self._suite.aead_open(self._key, self._nonce(), sealed)


@dataclasses.dataclass(slots=True)
class Session:
    """The result of a handshake: who the peer is and the two directions' ciphers."""

    peer: bytes
    initiator: bytes  # static key of the side that dialled
    sealer: _Cipher
    opener: _Cipher


async def _receive(ws: _Socket, limit: int, what: str) -> bytes:
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.BINARY:
        if len(msg.data) > limit:
            raise PeerError(f"{what} of {len(msg.data)} bytes exceeds {limit}")
        return bytes(msg.data)
    if msg.type is aiohttp.WSMsgType.TEXT:
        raise PeerError(f"text frame instead of {what}")
    if msg.type is aiohttp.WSMsgType.ERROR:
        raise PeerError(f"websocket error before {what}: {msg.data}")
    if msg.type is aiohttp.WSMsgType.CLOSE:
        error = _PeerGone if msg.data == aiohttp.WSCloseCode.GOING_AWAY else PeerError
        raise error(f"peer closed the connection before {what}: {msg.data} {msg.extra}")
    raise _PeerGone(f"connection closed before {what}")


def _check_hello(
    suite: Suite,
    chain_id: str,
    own: bytes,
    data: bytes,
    allowed: Callable[[bytes], bool],
    dialled: bytes | None,
) -> Hello:
    hello = decode(data, Hello, HANDSHAKE_BYTES_MAX)
    if hello.version != PROTOCOL_VERSION:
        raise PeerError(f"unsupported protocol version {hello.version}")
    if hello.suite != suite.name:
        raise PeerError(f"suite mismatch: peer uses {hello.suite[:16]!r}, we use {suite.name!r}")
    if hello.chain_id != chain_id:
        raise PeerError(f"chain_id mismatch: peer is on {hello.chain_id[:64]!r}")
    if hello.static == own:
        raise PeerError("peer presents our own static key")
    if dialled is not None and hello.static != dialled:
        raise PeerError(f"peer presents key {_short(hello.static)}, we dialled {_short(dialled)}")
    if not allowed(hello.static):
        raise PeerError(f"key {_short(hello.static)} is not allowed")
    return hello


async def handshake(
    ws: _Socket,
    suite: Suite,
    key: PrivateKey,
    chain_id: str,
    *,
    dialled: bytes | None,
    allowed: Callable[[bytes], bool],
) -> Session:
    """Runs one side of the handshake; ``dialled`` is the expected peer key when we initiate.

    Raises an InputError (PeerError, DecodeError, CryptoError, KeyFileError) saying
    why the peer was refused. The caller bounds the time and closes ``ws`` on failure.
    """
    own = key.public_key().raw
    initiator = dialled is not None

    def hello() -> tuple[EphemeralKey, bytes]:
        ephemeral, ephemeral_raw = suite.generate_ephemeral()
        nonce = secrets.token_bytes(NONCE_BYTES)
        return ephemeral, encode(
            Hello(PROTOCOL_VERSION, suite.name, chain_id, own, ephemeral_raw, nonce)
        )

    if initiator:
        ephemeral, mine = hello()
        await ws.send_bytes(mine)
        theirs = await _receive(ws, HANDSHAKE_BYTES_MAX, "HELLO")
        peer = _check_hello(suite, chain_id, own, theirs, allowed, dialled)
    else:
        theirs = await _receive(ws, HANDSHAKE_BYTES_MAX, "HELLO")
        peer = _check_hello(suite, chain_id, own, theirs, allowed, None)
        ephemeral, mine = hello()
        await ws.send_bytes(mine)
    secret = suite.agree(ephemeral, peer.ephemeral)
    hello_i, hello_r = (mine, theirs) if initiator else (theirs, mine)
    th = suite.hash(encode_value([LABEL, hello_i, hello_r]))
    size = suite.aead_key_size
    k_i2r = suite.kdf(secret, f"{LABEL} initiator->responder".encode() + b"\0" + th, size)
    k_r2i = suite.kdf(secret, f"{LABEL} responder->initiator".encode() + b"\0" + th, size)
    sealer = _Cipher(suite, k_i2r if initiator else k_r2i)
    opener = _Cipher(suite, k_r2i if initiator else k_i2r)
    role, peer_role = ("initiator", "responder") if initiator else ("responder", "initiator")
    signature = key.sign("peer", encode_value({"role": role, "transcript": th}))
    await ws.send_bytes(sealer.seal(encode(Auth(signature))))
    auth = decode(
        opener.open(await _receive(ws, HANDSHAKE_BYTES_MAX + TAG_BYTES, "AUTH")),
        Auth,
        HANDSHAKE_BYTES_MAX,
    )
    signed = encode_value({"role": peer_role, "transcript": th})
    if not suite.verify(peer.static, "peer", signed, auth.sig):
        raise PeerError("AUTH signature does not verify")
    return Session(peer.static, own if initiator else peer.static, sealer, opener)


def _short(key: bytes) -> str:
    return key.hex()[:16]


def _printable(text: str) -> str:
    """Peer-controlled text made safe for a one-line log: no control characters, bounded."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:300])


def _close_reason(reason: str) -> bytes:
    """At most 120 bytes of valid UTF-8 (a close frame's reason is limited to 123)."""
    return reason.encode()[:120].decode(errors="ignore").encode()


def _check_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"peer address {address!r} is not host:port")
    return address


class _Connection:
    __slots__ = ("fin_received", "remote", "session", "ws")

    def __init__(self, ws: _Socket, session: Session, remote: str) -> None:
        self.ws, self.session, self.remote = ws, session, remote
        self.fin_received = asyncio.Event()


class _Peer:
    """A peer's queue and current connection; ``address`` is None for an inbound-only peer."""

    __slots__ = (
        "address", "announced", "conn", "dialler", "down", "key", "queue", "queued_bytes", "ready",
    )  # fmt: skip

    def __init__(self, key: bytes, address: str | None) -> None:
        self.key, self.address = key, address
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.conn: _Connection | None = None
        self.ready = asyncio.Event()  # set when the queue may be non-empty: wakes the writer
        self.down = asyncio.Event()  # set while there is no connection: wakes the dialler
        self.down.set()
        self.dialler: asyncio.Task[None] | None = None
        self.announced = False  # "peer connected" logged, "peer disconnected" not yet


class PeerTransport:
    """See the module docstring. Use from one event loop; ``send`` is not thread-safe.

    ``peers`` maps each peer's raw static public key to ``"host:port"`` (our own key,
    if present, is ignored). ``on_message(peer_key, payload)`` is called from the
    event loop, in order per connection, only for authenticated peers; if it raises,
    the error is logged and counted and the connection goes on. ``allowed`` may admit
    inbound keys beyond ``peers``: those are never dialled, get a queue only while
    connected, and are not included in :meth:`broadcast`.
    """

    def __init__(
        self,
        suite: Suite,
        key: PrivateKey,
        chain_id: str,
        peers: Mapping[bytes, str],
        on_message: Callable[[bytes, bytes], None],
        allowed: Callable[[bytes], bool] | None = None,
        *,
        frame_bytes_max: int = 16 << 20,
        queue_frames_max: int = 1000,
        queue_bytes_max: int = 64 << 20,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < frame_bytes_max <= queue_bytes_max or queue_frames_max < 1:
            raise ValueError(
                "need 0 < frame_bytes_max <= queue_bytes_max and queue_frames_max >= 1"
            )
        self._suite, self._key, self._chain_id = suite, key, chain_id
        self._own = key.public_key().raw
        self._on_message = on_message
        self._allowed = allowed or self._configured
        self._frame_bytes_max = frame_bytes_max
        self._queue_frames_max, self._queue_bytes_max = queue_frames_max, queue_bytes_max
        self._handshake_timeout_s = handshake_timeout_s
        self._rng = rng or random.Random()
        self._peers: dict[bytes, _Peer] = {}
        self._sockets: set[_Socket] = set()  # every open socket, authenticated or not
        self._tasks: set[asyncio.Task[Any]] = set()  # diallers, inbound handlers, closers
        self._handshaking = 0
        self._session: aiohttp.ClientSession | None = None
        self._started = self._stopped = False
        self._warned, self._suppressed, self._window_end = 0, 0, 0.0
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.set_peers(peers)

    # -- public API --

    def add_routes(self, app: web.Application) -> None:
        """Mounts ``GET /v1/peer`` and stops the transport when ``app`` shuts down."""
        app.router.add_get(PATH, self._handle, allow_head=False)
        app.on_shutdown.append(self._on_shutdown)

    async def start(self) -> None:
        """Begins dialling every configured peer."""
        if self._stopped:
            raise RuntimeError("a stopped PeerTransport cannot start again; make a new one")
        if self._started:
            return
        self._started = True
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for peer in self._peers.values():
            self._start_dialler(peer)

    async def stop(self) -> None:
        """Closes every connection and cancels every task; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for peer in self._peers.values():
            if peer.dialler is not None:
                peer.dialler.cancel()
        closing = [
            self._close(ws, aiohttp.WSCloseCode.GOING_AWAY, "node stopping") for ws in self._sockets
        ]
        await asyncio.gather(*closing)
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2 * CLOSE_TIMEOUT_S)
            for task in pending:
                task.cancel()
        if self._session is not None:
            await self._session.close()
        log.info("transport stopped stats=%s", self.stats)

    def send(self, peer: bytes, payload: bytes) -> bool:
        """Queues ``payload`` for ``peer``; False if dropped (unknown peer, full queue, too big)."""
        target = self._peers.get(peer)
        if target is None or self._stopped:
            self.stats["dropped_unknown_peer"] += 1
            return False
        if len(payload) > self._frame_bytes_max:
            self.stats["dropped_too_large"] += 1
            self._warn(
                "frame dropped peer=%s reason=%d bytes exceed frame_bytes_max=%d",
                _short(peer),
                len(payload),
                self._frame_bytes_max,
            )
            return False
        if (
            len(target.queue) >= self._queue_frames_max
            or target.queued_bytes + len(payload) > self._queue_bytes_max
        ):
            self.stats["dropped_queue_full"] += 1
            return False
        target.queue.append(payload)
        target.queued_bytes += len(payload)
        target.ready.set()
        return True

    def broadcast(self, payload: bytes) -> None:
        """Queues ``payload`` for every configured peer (the same bytes object, not copies)."""
        for key, peer in list(self._peers.items()):
            if peer.address is not None:
                self.send(key, payload)

    def set_peers(self, peers: Mapping[bytes, str]) -> None:
        """Validator set changed: dial new peers, update addresses, drop removed peers."""
        wanted = {bytes(k): _check_address(a) for k, a in peers.items() if k != self._own}
        for key, peer in list(self._peers.items()):
            if peer.address is not None and key not in wanted:
                del self._peers[key]
                if peer.dialler is not None:
                    peer.dialler.cancel()
                if peer.conn is not None:
                    self._spawn(self._close(peer.conn.ws, aiohttp.WSCloseCode.OK, "peer removed"))
        for key, address in wanted.items():
            target = self._peers.get(key)
            if target is None:
                target = self._peers[key] = _Peer(key, address)
            # This promotes an inbound-only peer; a changed address is used on the next dial.
            target.address = address
            if self._started and not self._stopped:
                self._start_dialler(target)

    def connected(self) -> list[bytes]:
        """Keys of the peers with an authenticated connection now."""
        return [key for key, peer in self._peers.items() if peer.conn is not None]

    def queued(self, peer: bytes) -> int:
        """Payloads waiting in ``peer``'s queue (0 for an unknown peer)."""
        target = self._peers.get(peer)
        return 0 if target is None else len(target.queue)

    # -- connections --

    def _configured(self, key: bytes) -> bool:
        peer = self._peers.get(key)
        return peer is not None and peer.address is not None

    def _start_dialler(self, peer: _Peer) -> None:
        if peer.dialler is None or peer.dialler.done():
            peer.dialler = self._spawn(self._dial_loop(peer))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _dial_loop(self, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        # Duplicates resolve to the connection the lower key initiates: when ours is the
        # higher key, give the peer's dial a head start (one backoff step) to avoid them.
        attempt = 0 if self._own < peer.key else 1
        while self._peers.get(peer.key) is peer and peer.address is not None:
            if not peer.down.is_set():
                await peer.down.wait()
                attempt = min(attempt, 1)  # the peer was connected another way: redial soon
            if attempt:
                delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(attempt - 1, 16))
                await asyncio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
                if not peer.down.is_set():
                    continue
            started = loop.time()
            served = await self._dial_once(peer, peer.address)
            long_lived = served and loop.time() - started >= BACKOFF_MAX_S
            attempt = 1 if long_lived else attempt + 1

    async def _dial_once(self, peer: _Peer, address: str) -> bool:
        """Dials, authenticates and serves one connection; False if none was established."""
        assert self._session is not None
        ws: aiohttp.ClientWebSocketResponse[Any] | None = None
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                ws = await self._session.ws_connect(
                    f"http://{address}{PATH}",
                    max_msg_size=self._frame_bytes_max + 1 + TAG_BYTES,
                    heartbeat=HEARTBEAT_S,
                    compress=0,
                )
                self._sockets.add(ws)
                session = await handshake(
                    ws, self._suite, self._key, self._chain_id,
                    dialled=peer.key, allowed=self._allowed,
                )  # fmt: skip
        except (InputError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            if ws is None:  # no WebSocket: the peer is down or unreachable
                self.stats["dial_failures"] += 1
                log.debug(
                    "dial failed peer=%s address=%s reason=%r", _short(peer.key), address, exc
                )
            else:
                await self._refused(ws, f"peer={_short(peer.key)} address={address}", exc)
            return False
        await self._serve(_Connection(ws, session, address))
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /v1/peer`` handler: refuse garbage with 4xx/5xx, else serve a peer."""
        peername = request.transport.get_extra_info("peername") if request.transport else None
        remote = f"{peername[0]}:{peername[1]}" if peername else str(request.remote)
        ws = web.WebSocketResponse(
            max_msg_size=self._frame_bytes_max + 1 + TAG_BYTES,
            heartbeat=HEARTBEAT_S,
            compress=False,
            timeout=CLOSE_TIMEOUT_S,
        )
        if not ws.can_prepare(request).ok:
            return self._refuse(remote, 426, "not_websocket", "GET /v1/peer is a WebSocket")
        if self._stopped:
            return self._refuse(remote, 503, "stopping", "the node is stopping")
        if self._handshaking >= HANDSHAKES_INBOUND_MAX:
            return self._refuse(remote, 503, "busy", "too many handshakes in progress")
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            session = await self._accept(ws, request, remote)
            if session is not None:
                await self._serve(_Connection(ws, session, remote))
        except Exception:  # a bug here must not become a 500 or kill the server
            log.exception("transport bug remote=%s", remote)
            await self._close(ws, aiohttp.WSCloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._tasks.discard(task)
        return ws if ws.prepared else web.Response(status=400)  # the upgrade itself failed

    async def _accept(
        self, ws: web.WebSocketResponse[Any], request: web.Request, remote: str
    ) -> Session | None:
        """Upgrades and authenticates an inbound connection; None (ws closed) if refused."""
        self._handshaking += 1
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                await ws.prepare(request)
                self._sockets.add(ws)
                return await handshake(
                    ws, self._suite, self._key, self._chain_id, dialled=None, allowed=self._allowed
                )
        except (InputError, TimeoutError, ConnectionError) as exc:
            await self._refused(ws, f"remote={remote}", exc)
            return None
        finally:
            self._handshaking -= 1

    async def _refused(self, ws: _Socket, where: str, exc: Exception) -> None:
        """A handshake failed: count it, log why (quietly while stopping), close the socket."""
        if isinstance(exc, TimeoutError):
            reason = "handshake timed out"
        elif isinstance(exc, InputError):
            reason = _printable(str(exc))
        else:
            reason = _printable(f"connection lost: {exc!r}")
        self.stats["handshake_failures"] += 1
        if self._stopped or isinstance(exc, (_PeerGone, ConnectionError)):
            log.debug("handshake abandoned %s reason=%s", where, reason)
        else:
            self._warn("handshake failed %s reason=%s", where, reason)
        await self._close(ws, aiohttp.WSCloseCode.POLICY_VIOLATION, reason)

    def _refuse(self, remote: str, status: int, code: str, detail: str) -> web.Response:
        self.stats["rejected_requests"] += 1
        if self._stopped:  # peers redialling a stopping node: normal, not worth a warning
            log.debug("peer request refused remote=%s status=%d reason=%s", remote, status, detail)
        else:
            self._warn("peer request refused remote=%s status=%d reason=%s", remote, status, detail)
        response = web.json_response({"error": code, "detail": detail}, status=status)
        response.force_close()
        return response

    async def _serve(self, conn: _Connection) -> None:
        """Runs an authenticated connection until it ends: writer task plus reader here."""
        self.stats["handshakes_ok"] += 1
        peer = self._attach(conn)
        if peer is None:
            await self._close(conn.ws, aiohttp.WSCloseCode.POLICY_VIOLATION, "not allowed")
            return
        writer = asyncio.create_task(self._write(peer, conn))
        try:
            await self._read(peer, conn)
        finally:
            writer.cancel()
            await asyncio.wait([writer])
            self._detach(peer, conn)
            code = aiohttp.WSCloseCode.GOING_AWAY if self._stopped else aiohttp.WSCloseCode.OK
            await self._close(conn.ws, code, "node stopping" if self._stopped else "")

    def _attach(self, conn: _Connection) -> _Peer | None:
        """Makes ``conn`` its peer's connection unless the one already there wins; then
        ``conn`` is served retired (FIN at once). None if the peer may not connect now."""
        key = conn.session.peer
        if self._stopped or not self._allowed(key):
            return None
        peer = self._peers.get(key)
        if peer is None:  # an allowed key we do not dial: keep its queue while connected
            peer = self._peers[key] = _Peer(key, None)
        old = peer.conn
        if old is not None:
            self.stats["duplicate_connections"] += 1
            if old.session.initiator == conn.session.initiator:
                keep_old = False  # the initiator evidently thinks the old one is dead
            else:
                keep_old = old.session.initiator < conn.session.initiator
            if keep_old:
                return peer
        peer.conn = conn  # the old one's writer wakes up, sends FIN and retires it
        peer.down.clear()
        peer.ready.set()
        if not peer.announced:
            peer.announced = True
            log.info("peer connected peer=%s remote=%s", _short(key), conn.remote)
        return peer

    def _release(self, peer: _Peer, conn: _Connection) -> None:
        """``conn`` stops being its peer's connection (it retires, or has ended)."""
        if peer.conn is conn:
            peer.conn = None
            peer.down.set()
        peer.ready.set()  # wakes every writer of this peer to re-check its connection

    def _detach(self, peer: _Peer, conn: _Connection) -> None:
        self.stats["connections_closed"] += 1
        self._release(peer, conn)
        if peer.conn is None and peer.announced:
            peer.announced = False
            log.info("peer disconnected peer=%s remote=%s", _short(peer.key), conn.remote)
        if peer.conn is None and peer.address is None and self._peers.get(peer.key) is peer:
            del self._peers[peer.key]

    async def _read(self, peer: _Peer, conn: _Connection) -> None:
        while True:
            msg = await conn.ws.receive()
            if msg.type is not aiohttp.WSMsgType.BINARY:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    reason = "text frame"
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = f"websocket error: {msg.data}"
                else:
                    return  # closed by the peer or by us
                return await self._bad_frame(peer, conn, reason)
            try:
                plaintext = conn.session.opener.open(msg.data)
            except (CryptoError, _SessionExhausted):
                reason = "frame fails authentication (tampered, replayed, reordered or forged)"
                return await self._bad_frame(peer, conn, reason)
            kind = plaintext[:1]
            if conn.fin_received.is_set() or (kind != DATA and plaintext != FIN):
                reason = f"unexpected frame (kind {kind.hex() or 'none'}, after FIN: "
                return await self._bad_frame(peer, conn, f"{reason}{conn.fin_received.is_set()})")
            if plaintext == FIN:  # the peer retires this connection: stop using it too
                conn.fin_received.set()
                self._release(peer, conn)
                continue
            payload = plaintext[1:]
            self.stats["frames_received"] += 1
            self.stats["bytes_received"] += len(payload)
            try:
                self._on_message(peer.key, payload)
            except Exception:  # the caller's bug: log it, keep the connection
                self.stats["callback_errors"] += 1
                log.exception("on_message raised peer=%s", _short(peer.key))

    async def _bad_frame(self, peer: _Peer, conn: _Connection, reason: str) -> None:
        self.stats["bad_frames"] += 1
        self._warn(
            "bad frame peer=%s remote=%s reason=%s",
            _short(peer.key),
            conn.remote,
            _printable(reason),
        )
        await self._close(conn.ws, aiohttp.WSCloseCode.PROTOCOL_ERROR, reason)

    async def _write(self, peer: _Peer, conn: _Connection) -> None:
        """Drains the peer's queue while ``conn`` is its connection, then retires ``conn``:
        FIN, wait for the peer's FIN (everything it sent before is read), close."""
        sealer = conn.session.sealer
        try:
            while peer.conn is conn:
                if not peer.queue:
                    peer.ready.clear()
                    await peer.ready.wait()
                    continue
                if sealer.counter >= SESSION_FRAMES_MAX - 1:  # keep one nonce for FIN
                    self._release(peer, conn)
                    break
                payload = peer.queue.popleft()
                peer.queued_bytes -= len(payload)
                await conn.ws.send_bytes(sealer.seal(DATA + payload))
                self.stats["frames_sent"] += 1
                self.stats["bytes_sent"] += len(payload)
            await conn.ws.send_bytes(sealer.seal(FIN))
            async with asyncio.timeout(RETIRE_TIMEOUT_S):
                await conn.fin_received.wait()
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            log.debug("connection ends uncleanly peer=%s reason=%r", _short(peer.key), exc)
        self._release(peer, conn)
        self._spawn(self._close(conn.ws, aiohttp.WSCloseCode.OK, "retired"))

    async def _close(self, ws: _Socket, code: int, reason: str) -> None:
        """Closes ``ws``, waiting at most CLOSE_TIMEOUT_S (then aiohttp drops the TCP link)."""
        self._sockets.discard(ws)
        if ws.closed:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await ws.close(code=code, message=_close_reason(reason))
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.debug("close did not finish cleanly reason=%r", exc)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.stop()

    def _warn(self, message: str, *args: object) -> None:
        """A WARNING line, at most WARNINGS_PER_WINDOW per window, so garbage cannot flood logs."""
        now = time.monotonic()
        if now >= self._window_end:
            if self._suppressed:
                log.warning("transport warnings suppressed count=%d", self._suppressed)
            self._warned, self._suppressed, self._window_end = 0, 0, now + WARNING_WINDOW_S
        if self._warned < WARNINGS_PER_WINDOW:
            self._warned += 1
            log.warning(message, *args)
        else:
            self._suppressed += 1
