"""A real ``node.Node`` serving HTTP in process, for tests that need the whole node.

The node — the same class ``node.py run`` uses, with LevelDB, the replica, admission
and the HTTP API — serves on a free 127.0.0.1 port from an event loop in a daemon
thread; tests talk to it over HTTP, or run coroutines on its loop with :meth:`call`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ledger.network import init_network, load_node_config

T = TypeVar("T")


class NodeThread:
    """A node.Node serving HTTP from its own event loop in a daemon thread."""

    def __init__(self, config_path: Path) -> None:
        self.config = load_node_config(config_path)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.node: Any = None
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None

    def start(self) -> None:
        self.thread.start()
        self.call(self._start(), 60)

    async def _start(self) -> None:
        import node

        self.node = node.Node(self.config, verify_workers=0)
        self.app = self.node.build_app()
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.config.host, self.config.port).start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        """Run ``coro`` on the node's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        if self.runner is not None:
            self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def one_node_network(directory: Path, chain_id: str, time_ms: int
                     ) -> Iterator[tuple[str, NodeThread]]:
    """A one-validator network with the sample organisations in ``directory``, its node
    serving: (its URL, the running node); stopped on exit."""
    port = free_port()
    init_network(directory, 1, with_sample_orgs=True, base_port=port, time_ms=time_ms,
                 chain_id=chain_id)
    runner = NodeThread(directory / "node0" / "node.toml")
    runner.start()
    try:
        yield f"http://127.0.0.1:{port}", runner
    finally:
        runner.stop()


@contextmanager
def sample_network(directory: Path, chain_id: str, time_ms: int) -> Iterator[tuple[Path, str]]:
    """:func:`one_node_network` loaded with the demo's sample data (certificates, budget
    flows, governance): (its folder, its URL)."""
    from ledger.samples import load_samples

    with one_node_network(directory, chain_id, time_ms) as (url, _):
        load_samples(directory, [url])
        yield directory, url
