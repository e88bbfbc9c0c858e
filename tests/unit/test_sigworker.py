"""The signature-check worker process and the node's batching in front of it.

Real worker processes (``spawn``) with the SM suite; each test stops what it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from consensus.messages import Blocks
from ledger.crypto import get_suite
from ledger.sigworker import SigWorker
from ledger.tx import TX_PURPOSE
from node import BatchVerifier, Cluster, Node, colocated_verify_workers

SUITE = get_suite("sm")
KEY = SUITE.generate_key()


def item(message: bytes, good: bool = True) -> tuple[bytes, str, bytes, bytes]:
    sig = KEY.sign(TX_PURPOSE, message)
    return KEY.public_key().raw, TX_PURPOSE, message if good else message + b"!", sig


def test_batches_are_answered_in_order_with_each_verdict() -> None:
    """Goal: every signature gets its own verdict, and batches sent back to back are
    answered in the order sent. Method: two batches mixing good and tampered messages
    (and an empty one) written before the worker has even started."""
    async def main() -> None:
        worker = SigWorker("sm")
        try:
            first = worker.check([item(b"a"), item(b"b", good=False), item(b"c")])
            empty = worker.check([])
            second = worker.check([item(b"d", good=False), item(b"e")])
            assert await first == [True, False, True]
            assert await empty == []
            assert await second == [False, True]
        finally:
            await worker.close()
        assert not worker._process.is_alive()

    asyncio.run(main())


def test_a_dead_worker_answers_not_checked_and_is_replaced() -> None:
    """Goal: when the worker process dies, batches it had not answered resolve None ("not
    checked": the caller checks them itself) — never True, never a hang — and so do later
    ones, while a BatchVerifier starts a new worker in its place and gets verdicts again.
    Method: SIGKILL the worker of a BatchVerifier during a large batch."""
    async def main() -> None:
        verifier = BatchVerifier("sm", workers=1, linger_s=0.0)
        verifier.RESPAWN_S = 0.0
        try:
            worker = verifier.workers[0]
            assert await verifier.verify_sig(*item(b"warm")) is True
            futures = [verifier.verify_sig(*item(b"%d" % i)) for i in range(400)]
            await asyncio.sleep(0.01)
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGKILL)
            verdicts = await asyncio.wait_for(asyncio.gather(*futures), 30)
            assert None in verdicts and False not in verdicts
            assert worker.dead and await worker.check([item(b"late")]) is None
            again = await asyncio.wait_for(verifier.verify_sig(*item(b"after")), 30)
            assert again is True and verifier.workers[0] is not worker
        finally:
            await verifier.close()

    asyncio.run(main())


def test_without_workers_checks_run_in_process() -> None:
    """Goal: a node run with --verify-workers 0 still gets verdicts. Method: no workers."""
    async def main() -> None:
        verifier = BatchVerifier("sm")
        assert verifier.workers == []
        assert await verifier.verify_sig(*item(b"x")) is True
        assert await verifier.verify_sig(*item(b"y", good=False)) is False
        await verifier.close()

    asyncio.run(main())


@pytest.mark.parametrize("frame", [b"\x00\x00\x00\x05ab", b"\xff\xff\xff\xff"])
def test_the_worker_leaves_on_a_torn_or_oversized_frame(frame: bytes) -> None:
    """Goal: a frame cut short (the node died mid-write) or absurdly large ends the worker
    instead of leaving it blocked or allocating gigabytes. Method: write it raw."""
    async def main() -> None:
        worker = SigWorker("sm")
        assert await worker.check([]) == []
        assert worker._writer is not None
        worker._writer.write(frame)
        worker._writer.write_eof()
        await asyncio.to_thread(worker._process.join, 30)
        assert not worker._process.is_alive()
        await worker.close()

    asyncio.run(main())


def test_batches_spread_over_several_workers_keep_each_verdict() -> None:
    """Goal: with --verify-workers 2 the batches alternate between the workers and every
    signature still gets its own verdict. Method: 40 one-signature batches, every third
    tampered, over two workers."""
    async def main() -> None:
        verifier = BatchVerifier("sm", workers=2, batch_max=1)
        try:
            futures = [verifier.verify_sig(*item(b"%d" % i, good=i % 3 != 0))
                       for i in range(40)]
            verdicts = await asyncio.wait_for(asyncio.gather(*futures), 60)
            assert verdicts == [i % 3 != 0 for i in range(40)]
            assert all(not w.dead for w in verifier.workers)
            assert len({w.pid for w in verifier.workers}) == 2
        finally:
            await verifier.close()
        assert all(not w._process.is_alive() for w in verifier.workers)

    asyncio.run(main())


def test_checks_leave_at_once_when_idle_and_together_while_a_batch_is_out() -> None:
    """Goal: a check asked for while no batch is out at the worker leaves in the same turn
    of the event loop, not after the linger (which cost every check at moderate load its
    full wait); checks asked for while a batch is out wait for its answer and then leave
    as one batch. Method: a 30 s linger; 200 checks, then 5 more once the first batch is
    out; all answered well within the linger, in exactly two batches."""
    async def main() -> None:
        verifier = BatchVerifier("sm", workers=1, linger_s=30.0)
        worker = verifier.workers[0]
        sizes: list[int] = []
        check = worker.check

        def spy(items: list[tuple[bytes, str, bytes, bytes]]) -> asyncio.Future[list[bool] | None]:
            sizes.append(len(items))
            return check(items)

        worker.check = spy  # type: ignore[method-assign]
        first_items = [item(b"first %d" % i) for i in range(200)]
        later_items = [item(b"later %d" % i, good=i != 2) for i in range(5)]
        try:
            first = [verifier.verify_sig(*it) for it in first_items]
            while not sizes:
                await asyncio.sleep(0)
            later = [verifier.verify_sig(*it) for it in later_items]
            await asyncio.sleep(0)
            assert sizes == [200], "checks asked for while a batch is out wait for its answer"
            verdicts = await asyncio.wait_for(asyncio.gather(*first, *later), 20)
            assert verdicts == [True] * 200 + [True, True, False, True, True]
            assert sizes == [200, 5]
        finally:
            await verifier.close()

    asyncio.run(main())


def test_a_local_network_runs_its_checks_in_the_event_loops_when_nodes_fill_the_cores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: validators started together on one machine get a signature worker each only
    when there are cores to spare (a worker per node on a full machine costs more CPU per
    transaction than it saves: bench/RESULTS.md, session 15). Method: the rule at the
    boundaries, then the command lines ``node.py up`` starts four nodes with, on two
    cores and on eight (processes replaced by a recorder)."""
    assert colocated_verify_workers(4, cores=2) == 0
    assert colocated_verify_workers(2, cores=2) == 0
    assert colocated_verify_workers(1, cores=2) == 1
    assert colocated_verify_workers(4, cores=8) == 1
    for i in range(4):
        (tmp_path / f"node{i}").mkdir()
        (tmp_path / f"node{i}" / "node.toml").write_text("")
    started: list[list[str]] = []

    class Recorder:
        stdout = None

        def __init__(self, cmd: list[str], **_: object) -> None:
            started.append(cmd)

    monkeypatch.setattr("node.subprocess.Popen", Recorder)
    monkeypatch.setattr("node.threading.Thread.start", lambda self: None)
    for cores, workers in ((2, "0"), (8, "1")):
        started.clear()
        monkeypatch.setattr("node.os.cpu_count", lambda cores=cores: cores)
        Cluster(tmp_path).start()
        assert len(started) == 4
        for cmd in started:
            assert cmd[cmd.index("--verify-workers") + 1] == workers


def test_a_node_checking_in_its_loop_takes_a_worker_for_a_long_catch_up() -> None:
    """Goal: a node run with no signature worker (as on a machine its network fills) still
    checks a long state transfer's blocks in a worker process — while it catches up the
    other nodes mostly wait — and drops back to its loop near the head. Method: the
    verifier choice for a BLOCKS answer on a node with an in-loop verifier, far behind and
    close; the worker it takes answers a check."""
    async def main() -> None:
        replica = SimpleNamespace(catchup_target=1000, executed=0,
                                  config=SimpleNamespace(fetch_blocks_max=64))
        inline = BatchVerifier("sm", workers=0)
        node = SimpleNamespace(replica=replica, verifier=inline, catchup_verifier=None,
                               genesis=SimpleNamespace(suite="sm"))
        blocks = Blocks([], b"\x01" * 33)
        chosen = Node._verifiers_for(node, blocks)  # type: ignore[arg-type]
        try:
            assert chosen == [node.catchup_verifier] and len(chosen[0].workers) == 1
            assert await chosen[0].verify_sig(*item(b"fetched")) is True
            assert chosen[0].workers[0].pid != os.getpid()
            replica.executed = 990  # within two fetch ranges of the target
            assert Node._verifiers_for(node, blocks) == [inline]  # type: ignore[arg-type]
        finally:
            await chosen[0].close()

    asyncio.run(main())
