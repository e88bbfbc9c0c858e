"""A node (``node.py run``) whose disk fails: the synced write of the consensus core's votes
raises LevelDB's IOError ("No space left on device") once ``FAIL_AFTER`` of them succeeded.

Usage: python -m tests.e2e.failing_disk_child CONFIG FAIL_AFTER
"""

from __future__ import annotations

import sys
from typing import Any

import plyvel

from ledger import store


def main(config: str, fail_after: int) -> int:
    original = store.LevelDBStore.put_consensus
    calls = 0

    def failing(self: store.LevelDBStore, changes: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > fail_after:
            raise plyvel.IOError("IO error: /data/ledger/000005.log: No space left on device")
        original(self, changes)

    store.LevelDBStore.put_consensus = failing  # type: ignore[method-assign]
    import node

    return node.main(["run", "--config", config, "--verify-workers", "0"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
