"""A real 4-node network: commits, crash recovery with kill -9, quorum loss, bad input.

Each test starts ``python node.py run`` processes on free 127.0.0.1 ports with
their own temporary LevelDB directories (tests/e2e/netharness.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import child_pids
from client.sdk import NodeError, request
from ledger.tx import make_tx
from tests.e2e.netharness import LocalNet

pytestmark = pytest.mark.slow
KILL_CYCLES = int(os.environ.get("GOVLEDGER_KILL_CYCLES", "20"))


@pytest.fixture
def net(tmp_path: Path) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path / "net")
    network.start_all()
    try:
        yield network
    finally:
        network.stop_all()


def heads_agree(net: LocalNet, nodes: list[int]) -> int:
    """Wait until the given nodes report the same head; return that height."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [net.status(i) for i in nodes]
        if len({(s["height"], s["head_hash"]) for s in statuses}) == 1:
            return int(statuses[0]["height"])
        time.sleep(0.3)
    raise AssertionError(f"heads differ: {[(s['height'], s['head_hash'][:8]) for s in statuses]}")


def test_transactions_commit_on_every_node(net: LocalNet) -> None:
    """Goal: a transaction submitted to any node commits, and every node reports the same
    growing height and head. Method: submit to each node in turn with ?wait=commit."""
    key = net.org_key()
    for i in range(8):
        reply = net.submit(i % 4, net.anchor_tx(key, f"doc {i}"))
        assert reply["status"] == "committed", reply
    height = heads_agree(net, [0, 1, 2, 3])
    assert height >= 1
    found = request(f"{net.url(2)}/v1/tx/{reply['tx_id']}")
    assert found["status"] == "committed" and found["result"]["ok"]
    assert len(found["certificate"]["signatures"]) >= 3


def test_a_node_raises_its_open_files_limit(net: LocalNet) -> None:
    """Goal: a running node has room for LevelDB's open tables and its connections: it
    raised its soft limit on open files towards the hard one before opening its store.
    Method: read the limit of each node process from /proc/PID/limits."""
    for proc in net.procs.values():
        line = next(line for line in Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        wanted = 65_536 if hard == "unlimited" else min(65_536, int(hard))
        assert soft == "unlimited" or int(soft) >= wanted, line


def test_a_killed_signature_worker_is_replaced(net: LocalNet) -> None:
    """Goal: when a node's signature-check worker process dies (OOM killer, an operator's
    kill), the node keeps admitting transactions — checking signatures itself until a new
    worker is up — rather than refusing them as badly signed, and starts a new worker.
    Method: SIGKILL node 1's worker, then submit to node 1 with ?wait=commit."""
    def workers() -> list[int]:
        found = []
        for pid in child_pids(net.procs[1].pid):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    found.append(pid)
        return found

    key = net.org_key()
    assert net.submit(1, net.anchor_tx(key, "before"))["status"] == "committed"
    (worker,) = workers()
    os.kill(worker, signal.SIGKILL)
    _gone_within([worker], 10.0)
    for i in range(3):
        reply = net.submit(1, net.anchor_tx(key, f"after {i}"))
        assert reply["status"] == "committed", reply
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    while not [p for p in workers() if p != worker] and time.monotonic() < deadline:
        net.submit(1, net.anchor_tx(key, "again"))
        time.sleep(1.0)
    assert [p for p in workers() if p != worker], "no new signature worker"
    assert "starting a new signature worker" in net.tail(1, 200)


def test_kill_backup_then_primary_and_recover(net: LocalNet) -> None:
    """Goal: the network keeps committing with one node down — after a view change when the
    primary dies — and a restarted node catches up to the same head. Method: kill -9 node 3,
    commit; kill -9 the primary (node 0), commit (view change); restart both; compare heads."""
    key = net.org_key()
    net.submit(0, net.anchor_tx(key, "before"))
    net.kill(3)
    assert net.submit(1, net.anchor_tx(key, "backup down"))["status"] == "committed"
    net.start(3)
    net.wait_up(3)
    heads_agree(net, [0, 1, 2, 3])
    primary = net.status(1)["primary"]
    victim = int(primary.removeprefix("node"))
    net.kill(victim)
    survivors = [i for i in range(4) if i != victim]
    reply = net.submit(survivors[0], net.anchor_tx(key, "primary down"))
    if reply["status"] != "committed":  # the view change may take longer than one wait
        net.wait_height(survivors, net.status(survivors[0])["height"] + 1, timeout_s=60)
    assert net.status(survivors[0])["view"] >= 1
    net.start(victim)
    net.wait_up(victim)
    assert net.submit(survivors[1], net.anchor_tx(key, "all back"))["status"] == "committed"
    heads_agree(net, [0, 1, 2, 3])


def test_two_of_four_down_stops_then_resumes(net: LocalNet) -> None:
    """Goal: without a quorum nothing commits (no safety loss), and committing resumes when a
    node returns. Method: stop nodes 2 and 3, submit without waiting, check the height stays,
    restart node 2, wait for the transaction to commit."""
    key = net.org_key()
    net.submit(0, net.anchor_tx(key, "warm up"))
    height = heads_agree(net, [0, 1, 2, 3])
    net.stop(2)
    net.stop(3)
    tx = net.anchor_tx(key, "no quorum")
    assert net.submit(0, tx, wait=False)["status"] == "pending"
    time.sleep(6)
    assert net.status(0)["height"] == height and net.status(1)["height"] == height
    net.start(2)
    net.wait_up(2)
    tx_id = tx.tx_id(net.genesis.crypto).hex()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if request(f"{net.url(0)}/v1/tx/{tx_id}")["status"] == "committed":
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the transaction did not commit after node 2 returned")
    net.start(3)
    net.wait_up(3)
    heads_agree(net, [0, 1, 2, 3])


def test_whole_network_power_cut_past_the_first_window(net: LocalNet) -> None:
    """Goal: after every node dies at once (kill -9: a power cut), the restarted network
    commits again — also once the chain has outgrown the first watermark window (64
    heights with the default checkpoint interval of 16), where it used to stall for good
    (no replica remembered a stable checkpoint). Method: commit 70 one-transaction blocks,
    kill all four nodes, start them, submit with ?wait=commit on two nodes."""
    key = net.org_key()
    for i in range(70):
        assert net.submit(i % 4, net.anchor_tx(key, f"before {i}"))["status"] == "committed"
    height = heads_agree(net, [0, 1, 2, 3])
    assert height > 64
    for i in range(4):
        net.kill(i)
    net.start_all()
    for i in (1, 3):
        reply = net.submit(i, net.anchor_tx(key, f"after {i}"))
        assert reply["status"] == "committed", reply
        assert reply["height"] > height
    heads_agree(net, [0, 1, 2, 3])


def test_kill_loop_under_load(net: LocalNet) -> None:
    """Goal: repeated kill -9 at random moments under load never loses an acknowledged
    commit, never leaves a node on a forked or broken chain, and never leaves the killed
    node's signature workers behind as orphans. Method: a client thread keeps submitting
    with ?wait=commit and records every acknowledged id; for GOVLEDGER_KILL_CYCLES cycles
    (default 20) kill a random node at a random moment and restart it; its worker
    processes must be gone within seconds; after each restart its chain must be a prefix of
    a live node's; at the end every acknowledged id is committed on every node."""
    key = net.org_key()
    acked: list[str] = []
    down: set[int] = set()
    stop = threading.Event()
    rng = random.Random(1127)

    def load() -> None:
        n = 0
        while not stop.is_set():
            target = rng.choice([i for i in range(4) if i not in down] or [0])
            try:
                reply = net.submit(target, net.anchor_tx(key, f"load {n}"))
                if reply["status"] == "committed":
                    acked.append(reply["tx_id"])
            except (NodeError, OSError):
                pass
            n += 1

    client = threading.Thread(target=load, daemon=True)
    client.start()
    try:
        for _cycle in range(KILL_CYCLES):
            victim = rng.randrange(4)
            time.sleep(rng.uniform(0.2, 1.5))
            down.add(victim)
            workers = child_pids(net.procs[victim].pid)
            net.kill(victim)
            _gone_within(workers, 10.0)
            time.sleep(rng.uniform(0.0, 1.0))
            net.start(victim)
            net.wait_up(victim)
            down.discard(victim)
            other = (victim + 1) % 4
            mine = net.status(victim)["height"]
            for h in sorted({mine, max(1, mine // 2)}):
                if h >= 1 and net.status(other)["height"] >= h:
                    assert net.block_hash(victim, h) == net.block_hash(other, h)
    finally:
        stop.set()
        client.join(timeout=60)
    assert len(acked) >= KILL_CYCLES
    heads_agree(net, [0, 1, 2, 3])
    for i in range(4):
        for tx_id in acked:
            assert request(f"{net.url(i)}/v1/tx/{tx_id}")["status"] == "committed", (i, tx_id)


def _gone_within(pids: list[int], seconds: float) -> None:
    """Each of ``pids`` has exited (zombies count as exited) within ``seconds``."""
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _running(p)]
    assert not alive, f"processes outlived their killed node: {alive}"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _post(net: LocalNet, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{net.url(1)}/v1/tx?wait=commit", data=body, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=40) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_input_gets_4xx_with_reasons_and_changes_nothing(net: LocalNet) -> None:
    """Goal: malformed, oversized, unsigned, wrongly signed, replayed, expired, foreign and
    unauthorised requests each get a 4xx naming the reason; garbage on the peer endpoint is
    dropped; none of it yields a 500 or stops the node. Method: send each and check the status
    code and error code, then check the chain did not move and still commits."""
    key = net.org_key()
    stranger = net.genesis.crypto.generate_key()
    good = net.anchor_tx(key, "good")
    height = net.status(1)["height"]
    hexed = lambda tx: json.dumps({"tx": tx.encoded().hex()}).encode()  # noqa: E731
    expired = make_tx(key, net.genesis.chain_id, "evidence.anchor",
                      {"digest": b"\x01" * 32, "label": "old"}, 1, int(time.time() * 1000) - 1)
    cases = [
        (b"{not json", "application/json", 400, "bad_encoding"),
        (b'{"tx": "zz"}', "application/json", 400, "bad_encoding"),
        (b"\xc1\x00", "application/msgpack", 400, "bad_encoding"),
        (b"x" * 300_000, "application/msgpack", 413, "too_large"),
        (hexed(dataclasses.replace(good, sig=b"")), "application/json", 401, "bad_signature"),
        (hexed(dataclasses.replace(good, nonce=good.nonce + 1)), "application/json", 401,
         "bad_signature"),
        (hexed(expired), "application/json", 400, "expired"),
        (hexed(dataclasses.replace(good, chain_id="other-chain")), "application/json", 400,
         "wrong_chain"),
        (hexed(net.anchor_tx(stranger, "who")), "application/json", 403, "forbidden"),
        (hexed(make_tx(key, net.genesis.chain_id, "no.such_type", {}, 1,
                       int(time.time() * 1000) + 60_000)), "application/json", 400,
         "unknown_type"),
    ]
    for body, content_type, status, code in cases:
        got_status, payload = _post(net, body, content_type)
        assert (got_status, payload.get("error")) == (status, code), (code, payload)
        assert payload["detail"]
    assert net.status(1)["height"] == height
    assert _post(net, hexed(good))[0] == 200
    status, payload = _post(net, hexed(good))
    assert (status, payload["error"]) == (409, "duplicate")
    for path, status in [("/v1/tx/zz", 400), ("/v1/tx/" + "00" * 32, 404),
                         ("/v1/blocks/abc", 400), ("/v1/blocks/99999999", 404),
                         ("/v1/evidence/00", 400), ("/nope", 404)]:
        try:
            request(net.url(1) + path)
            raise AssertionError(f"{path} should fail")
        except NodeError as exc:
            assert exc.status == status, (path, exc)
    # Garbage on the peer endpoint: a plain request and raw bytes on a socket.
    with pytest.raises(NodeError) as info:
        request(net.url(1) + "/v1/peer")
    assert info.value.status == 426
    with socket.create_connection(("127.0.0.1", net.base_port + 1), timeout=5) as s:
        s.sendall(os.urandom(4096))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert net.submit(2, net.anchor_tx(key, "still fine"))["status"] == "committed"
    metrics = _get_text(f"{net.url(1)}/metrics")
    assert 'govledger_rejected_requests_total{reason="bad_signature"}' in metrics
    openapi = request(f"{net.url(1)}/v1/openapi.json")
    assert {"/v1/tx", "/v1/status", "/v1/blocks/{height}"} <= set(openapi["paths"])


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
        return text


def test_sigterm_shuts_down_cleanly(net: LocalNet) -> None:
    """Goal: SIGTERM drains and closes the store; the node restarts on its data. Method: stop
    node 2 with SIGTERM, check exit code 0 and the log line, restart, compare heads."""
    net.submit(0, net.anchor_tx(net.org_key(), "x"))
    assert net.stop(2) == 0
    assert "stopped cleanly" in net.tail(2)
    net.start(2)
    net.wait_up(2)
    heads_agree(net, [0, 1, 2, 3])
