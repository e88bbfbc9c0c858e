"""``govledger audit verify-chain`` without ``--data``: the whole chain as a node serves it,
verified from the genesis file alone.

A one-validator network with the demo's sample data (certificates, budget flows,
governance) is served by a real ``node.Node`` in process; a proxy in front of it serves
what a lying node would — one block's transaction, header or commit certificate changed —
and the auditor's command must name that height.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from client.cli import main as govledger
from client.sdk import request
from ledger.block import BlockHeader, CommitCertificate
from ledger.codec import decode_value, encode_value, from_value, to_value
from tests.unit.node_harness import sample_network

TIME_MS = 1_767_225_600_000
MSGPACK = "application/msgpack"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    with sample_network(tmp_path_factory.mktemp("net"), "govledger-audit", TIME_MS) as served:
        yield served


def verify(capsys: pytest.CaptureFixture[str], url: str, directory: Path, key: str = "sjj"
           ) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = govledger(["--node", url, "--json", "audit", "verify-chain", "--genesis",
                      str(directory / "genesis.json"),
                      "--key", str(directory / "keys" / f"{key}.pem")])
    return code, json.loads(capsys.readouterr().out)


class LyingNode:
    """A proxy to the real node that changes what it serves for one height."""

    def __init__(self, upstream: str, height: int,
                 change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.upstream, self.height, self.change = upstream, height, change
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _status(self, _: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(request,
                                                         self.upstream + "/v1/status"))

    async def _blocks(self, req: web.Request) -> web.Response:
        headers = {"Accept": MSGPACK, **{k: v for k, v in req.headers.items()
                                         if k.lower() == "x-govledger-read"}}
        raw = await asyncio.to_thread(
            request, f"{self.upstream}/v1/blocks?{req.query_string}", headers=headers,
            raw_response=True)
        value = decode_value(raw)
        assert isinstance(value, dict) and isinstance(value["blocks"], list)
        value["blocks"] = [self.change(b) if b["height"] == self.height else b  # type: ignore
                           for b in value["blocks"]]
        return web.Response(body=encode_value(to_value(value)), content_type=MSGPACK)

    def __enter__(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/blocks", self._blocks)
        self.runner = web.AppRunner(app)
        self.thread.start()

        async def start() -> int:
            assert self.runner is not None
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", 0).start()
            return int(self.runner.addresses[0][1])

        port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_the_chain_a_node_serves_verifies_from_genesis(
        node: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: an auditor who runs no node re-verifies the whole ledger from any node with
    the genesis file alone: every block's link, roots, commit certificate and replayed
    state. Method: the command against the real node, JSON and human output."""
    directory, url = node
    head = request(url + "/v1/status")["height"]
    code, report = verify(capsys, url, directory)
    assert (code, report["ok"], report["head"], report["broken_height"]) == (0, True, head, None)
    assert head > 20  # the samples made real blocks: certificates, funds, governance
    code = govledger(["--node", url, "--key", str(directory / "keys" / "sjj.pem"), "audit",
                      "verify-chain", "--genesis", str(directory / "genesis.json")])
    out = " ".join(capsys.readouterr().out.split())
    # Its signed reads are logged on the ledger, so the chain may have grown since.
    intact = re.search(r"chain intact: (\d+) blocks re-verified", out)
    assert code == 0 and intact and int(intact.group(1)) >= head, out


def test_private_transactions_need_an_auditor_and_cost_one_logged_read_a_range(
        node: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: fund flows and signed reads are served in full only to an auditor: without a
    key the command stops at the first block holding one and says to give an auditor's key
    (exit 2); an enterprise's key is refused (403, exit 1); an auditor's verification is
    logged once per 100 blocks, not once per block. Method: the command three ways; the
    access log before and after."""
    directory, url = node
    capsys.readouterr()
    code = govledger(["--node", url, "audit", "verify-chain", "--genesis",
                      str(directory / "genesis.json")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "private transactions" in err and "--key" in err, err
    code, _ = verify(capsys, url, directory, key="slkj")
    assert code == 1
    auditor = str(directory / "keys" / "sjj.pem")

    def logged_block_reads() -> int:
        capsys.readouterr()
        govledger(["--node", url, "--json", "audit", "access-log", "--limit", "500",
                   "--key", auditor])
        entries = json.loads(capsys.readouterr().out)["entries"]
        return sum(1 for e in entries if e["path"] == "/v1/blocks")

    before = logged_block_reads()
    head = request(url + "/v1/status")["height"]
    code, report = verify(capsys, url, directory)
    assert code == 0 and report["ok"], report
    deadline = time.monotonic() + 20
    while logged_block_reads() < before + 1:
        assert time.monotonic() < deadline, "the auditor's block reads were not logged"
        time.sleep(0.2)
    assert logged_block_reads() - before <= head // 100 + 1


def _payload_changed(value: dict[str, Any]) -> dict[str, Any]:
    tx = value["txs"][0]
    payload = dict(tx["payload"])
    key = sorted(payload)[0]
    payload[key] = "forged" if isinstance(payload[key], str) else 1
    return {**value, "txs": [{**tx, "payload": payload}, *value["txs"][1:]]}


def _state_root_changed(value: dict[str, Any]) -> dict[str, Any]:
    header = from_value(BlockHeader, value["header"])
    forged = dataclasses.replace(header, state_root=bytes(32))
    return {**value, "header": to_value(forged)}


def _certificate_cut(value: dict[str, Any]) -> dict[str, Any]:
    cert = from_value(CommitCertificate, value["certificate"])
    return {**value, "certificate": to_value(dataclasses.replace(cert, signatures=[]))}


@pytest.mark.parametrize(("change", "reason"), [
    (_payload_changed, "tx_root"),
    (_state_root_changed, "certificate is for a different block"),
    (_certificate_cut, "0 valid commit signatures, 1 needed"),
])
def test_a_lying_node_is_caught_at_the_height_it_changed(
        node: tuple[Path, str], capsys: pytest.CaptureFixture[str],
        change: Callable[[dict[str, Any]], dict[str, Any]], reason: str) -> None:
    """Goal: whatever a node changes in what it serves — a transaction, a header's state
    root, a commit certificate's signatures — the command reports that height as the first
    broken one (exit 1). Method: a proxy that changes block 5 only."""
    directory, url = node
    with LyingNode(url, 5, change) as liar:
        code, report = verify(capsys, liar, directory)
    assert (code, report["ok"], report["broken_height"]) == (1, False, 5), report
    assert report["checked_height"] == 4 and reason in report["reason"], report["reason"]

