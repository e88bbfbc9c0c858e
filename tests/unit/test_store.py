"""Store contract, run against both implementations (memory and LevelDB)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from ledger import evidence
from ledger import store as store_module
from ledger.block import BlockHeader
from ledger.chain import Chain
from ledger.codec import decode, encode, encode_value
from ledger.devnet import Devnet
from ledger.errors import CorruptionError, InputError
from ledger.state import verify_state_proof
from ledger.store import (
    BlockCommit,
    LevelDBStore,
    MemoryStore,
    Store,
    height_key,
    older_store_format,
)
from ledger.tx import make_tx
from tests.conftest import ledger_registry

T0 = 1_767_225_600_000


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, devnet: Devnet) -> Iterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore(devnet.genesis.crypto)
    else:
        s = LevelDBStore(str(tmp_path / "db"), devnet.genesis.crypto)
    yield s
    s.close()


def grow(devnet: Devnet, chain: Chain, blocks: int, per_block: int = 2) -> list[bytes]:
    ids = []
    key = devnet.account_keys["市场监督管理局"]
    for b in range(blocks):
        txs = [make_tx(key, devnet.genesis.chain_id, evidence.TX_TYPE,
                       {"digest": hashlib.sha256(f"{chain.height}-{i}".encode()).digest(),
                        "label": f"doc {b}.{i}"}, b * 100 + i, T0 + 10**9)
               for i in range(per_block)]
        proposer = devnet.validator_keys[0].public_key().raw
        pending = chain.propose(txs, T0 + chain.height + 1, 0, proposer)
        devnet.commit(chain, pending)
        ids += [tx.tx_id(chain.suite) for tx in txs]
    return ids


def test_blocks_results_and_index_read_back(store: Store, devnet: Devnet) -> None:
    """Goal: everything appended is readable through the Store interface.
    Method: grow a chain of 3 blocks and read headers, blocks, certs, results, tx locations."""
    chain = Chain(store, devnet.genesis, ledger_registry())
    ids = grow(devnet, chain, 3)
    assert store.head_height() == 3
    for h in range(1, 4):
        header, block, cert = store.get_header(h), store.get_block(h), store.get_certificate(h)
        assert header is not None and block is not None and cert is not None
        assert block.header == header and cert.block_hash == header.block_hash(chain.suite)
        assert [r.ok for r in store.get_results(h) or []] == [True, True]
    assert store.get_certificate(0) is None and store.get_header(4) is None
    assert store.get_tx_location(ids[3]) == (2, 1)
    assert store.get_tx_location(b"\x00" * 32) is None
    assert len(list(store.iter_state(b"evidence/"))) == 6


def test_index_scans_respect_prefix_start_and_order(store: Store, devnet: Devnet) -> None:
    """Goal: applications can page through their indexes and state. Method: write index and
    state keys through a handler, then scan with a prefix, a start key and in reverse."""
    registry = ledger_registry()

    def put(ctx):  # type: ignore[no-untyped-def]
        for k in ctx.tx.payload["keys"]:
            ctx.index.put(k, b"v" + k)
            ctx.state.put(b"test/" + k, b"s" + k)

    registry.register("test.index", put)
    chain = Chain(store, devnet.genesis, registry)
    keys = [b"a/1", b"a/2", b"a/3", b"a\xff", b"b/1"]
    tx = make_tx(devnet.account_keys["市场监督管理局"], devnet.genesis.chain_id, "test.index",
                 {"keys": keys}, 1, T0 + 10**9)  # type: ignore[dict-item]
    devnet.commit(chain, chain.propose([tx], T0 + 1, 0, b"p" * 32))
    assert [k for k, _ in store.iter_index(b"a/")] == [b"a/1", b"a/2", b"a/3"]
    assert [k for k, _ in store.iter_index(b"a/", start=b"a/2")] == [b"a/2", b"a/3"]
    assert [k for k, _ in store.iter_index(b"a/", reverse=True)] == [b"a/3", b"a/2", b"a/1"]
    assert [k for k, _ in store.iter_index(b"a/", start=b"a/2", reverse=True)] == [b"a/2", b"a/1"]
    assert store.get_index(b"b/1") == b"vb/1"
    assert [k for k, _ in store.iter_state(b"test/a/", start=b"test/a/2")] == [
        b"test/a/2", b"test/a/3"]
    assert [k for k, _ in store.iter_state(b"test/a/", start=b"test/a/9")] == []


def test_append_must_extend_the_head(store: Store, devnet: Devnet) -> None:
    """Goal: a block that skips a height or forks is refused as a caller bug.
    Method: append height 1 twice."""
    chain = Chain(store, devnet.genesis, ledger_registry())
    pending = chain.propose([], T0 + 1, 0, b"p" * 32)
    devnet.commit(chain, pending)
    again = BlockCommit(pending.block, devnet.certify(pending.header), [], {}, {}, {})
    with pytest.raises(ValueError, match="append of height 1 onto head 1"):
        store.append(again)
    assert store.head_height() == 1


def test_consensus_state_round_trip(store: Store) -> None:
    """Goal: the consensus core's persisted votes are stored and deletable."""
    store.put_consensus({b"view": b"\x07", b"vote/5": b"d"})
    store.put_consensus({b"vote/5": None})
    assert store.get_consensus(b"view") == b"\x07" and store.get_consensus(b"vote/5") is None


def test_leveldb_reopens_and_refuses_another_genesis(tmp_path: Path, devnet: Devnet,
                                                     devnet_intl: Devnet) -> None:
    """Goal: a node restarts on its data; a data directory of another network is refused.
    Method: write, close, reopen with the same and with a different genesis."""
    path = str(tmp_path / "db")
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    grow(devnet, chain, 2)
    head = chain.head()
    chain.store.close()
    again = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    assert again.head() == head
    again.store.close()
    other = devnet.genesis.__class__(**{**{f: getattr(devnet.genesis, f) for f in
                                          ("chain_id", "suite", "time", "validators",
                                           "accounts", "config")}, "time": 1})
    with pytest.raises(CorruptionError, match="different genesis"):
        Chain(LevelDBStore(path, devnet.genesis.crypto), other, ledger_registry())


def test_leveldb_in_use_by_another_process_is_an_operator_error(tmp_path: Path,
                                                                 devnet: Devnet) -> None:
    """Goal: a second node started on a data folder another one holds is told so, as the
    operator's mistake (exit 2), not as corruption (exit 1); the store it could not open is
    unharmed. Method: hold the store open in a child process, open it here, then again after
    the child has let go."""
    path = str(tmp_path / "db")
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    grow(devnet, chain, 2)
    head = chain.head()
    chain.store.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import plyvel, sys; db = plyvel.DB(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(InputError, match="in use by another process") as info:
            LevelDBStore(path, devnet.genesis.crypto)
        assert not isinstance(info.value, CorruptionError)
    finally:
        holder.communicate("", timeout=30)
    again = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    assert again.head() == head
    again.store.close()


def test_leveldb_keeps_reading_a_store_written_with_compressed_tables(
        tmp_path: Path, devnet: Devnet) -> None:
    """Goal: a node upgraded to uncompressed tables (session 9) reads the store an older
    version wrote with snappy compression, and goes on writing to it — nothing committed
    is lost, whichever tables it is in.
    Method: grow a chain with compression="snappy" and force its tables to disk
    (compact); reopen with the default, check the head, every transaction, and every
    tree node and state value; grow it further, compact again (merging old and new
    tables), reopen, check."""
    path = str(tmp_path / "db")
    snappy = LevelDBStore(path, devnet.genesis.crypto, compression="snappy")
    chain = Chain(snappy, devnet.genesis, ledger_registry())
    ids = grow(devnet, chain, 3, per_block=20)
    snappy.db.compact_range()
    head = chain.head()
    snappy.close()
    assert store_module.COMPRESSION == "none"

    def check(chain: Chain, ids: list[bytes]) -> None:
        for tx_id in ids:
            assert chain.store.get_tx_location(tx_id) is not None
        head = chain.head()
        items = list(chain.tree().items(head.state_root, head.height))  # every tree node
        assert len(items) > len(ids)
        assert all(chain.store.get_state(k) == v for k, v in items)

    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    assert chain.head() == head
    check(chain, ids)
    ids += grow(devnet, chain, 2, per_block=20)
    assert isinstance(chain.store, LevelDBStore)
    chain.store.db.compact_range()
    head = chain.head()
    chain.store.close()
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    assert chain.head() == head
    check(chain, ids)
    chain.store.close()


def test_leveldb_nodes_are_written_in_height_order(tmp_path: Path, devnet: Devnet) -> None:
    """Goal: a block's state-tree nodes are stored under its height (so LevelDB inserts
    them in key order instead of all over its key space), and every state of every block
    reads back and proves against its root after a reopen.
    Method: grow a chain, check every node key carries a block height; reopen, grow on
    top, reopen again, and check every key of every block's state by get, prove and
    items."""
    path = str(tmp_path / "db")
    store = LevelDBStore(path, devnet.genesis.crypto)
    chain = Chain(store, devnet.genesis, ledger_registry())
    grow(devnet, chain, 4, per_block=5)
    heights = set()
    for key in store.db.iterator(prefix=b"n:", include_value=False):
        assert len(key) == 2 + 8 + 32, key
        heights.add(int.from_bytes(key[2:10], "big"))
    assert heights == set(range(5))  # every block wrote at least its root
    store.close()

    def check(chain: Chain) -> None:
        tree = chain.tree()
        for h in range(chain.height + 1):
            header = chain.store.get_header(h)
            assert header is not None
            items = dict(tree.items(header.state_root, h))
            assert items, h
            for k, v in items.items():
                assert tree.get(header.state_root, k, h) == v
                verify_state_proof(chain.suite.hash, header.state_root, k, v,
                                   tree.prove(header.state_root, k, h))
        head = chain.head()
        assert all(chain.store.get_state(k) == v
                   for k, v in chain.tree().items(head.state_root, head.height))

    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    check(chain)
    grow(devnet, chain, 3, per_block=5)
    chain.store.close()
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    assert chain.height == 7
    check(chain)
    chain.store.close()


@pytest.mark.parametrize("mark", [None, 1, 2])
def test_leveldb_refuses_a_store_whose_certificates_do_not_name_their_view(
        tmp_path: Path, devnet: Devnet, mark: int | None) -> None:
    """Goal: a store written before commit certificates named their view (formats 1 and 2;
    format 1 had no format mark) is refused on open with an error that says why and what
    to do — never served, since its certificates are the unsafe kind — and is left as it
    was. Method: grow a chain, mark the store as the older format wrote it, reopen."""
    path = str(tmp_path / "db")
    store = LevelDBStore(path, devnet.genesis.crypto)
    chain = Chain(store, devnet.genesis, ledger_registry())
    grow(devnet, chain, 2, per_block=2)
    if mark is None:
        store.db.delete(b"m:format")
    else:
        store.db.put(b"m:format", encode_value({"version": mark}))
    before = list(store.db.iterator())
    store.close()
    assert older_store_format(path) == (mark or 1)  # what `node.py demo` checks first
    with pytest.raises(CorruptionError, match=rf"store format {mark or 1} was written by an "
                       r"older govledger: its commit certificates do not name the PBFT view"
                       r".*start the network again from its genesis"):
        LevelDBStore(path, devnet.genesis.crypto)
    reopened = plyvel.DB(path)
    try:
        assert list(reopened.iterator()) == before
    finally:
        reopened.close()


def test_leveldb_compression_is_the_callers_choice(tmp_path: Path, devnet: Devnet) -> None:
    """Goal: a node that asks for snappy (``[storage] compression``) gets compressed
    tables, and the default writes them uncompressed (less CPU, more disk).
    Method: the same chain appended to a default store and to a snappy one, both compacted
    to disk: the snappy tables are smaller, and both stores hold the whole chain."""
    sizes = {}
    for name, kwargs in (("none", {}), ("snappy", {"compression": "snappy"})):
        path = tmp_path / name
        store = LevelDBStore(str(path), devnet.genesis.crypto, **kwargs)  # type: ignore[arg-type]
        chain = Chain(store, devnet.genesis, ledger_registry())
        grow(devnet, chain, 4, per_block=40)
        store.db.compact_range()
        sizes[name] = (sum(f.stat().st_size for f in path.glob("*.ldb")), chain.height)
        store.close()
    assert sizes["none"][1] == sizes["snappy"][1] == 4
    assert sizes["snappy"][0] < 0.9 * sizes["none"][0], sizes


def test_leveldb_keeps_open_what_the_open_files_limit_allows() -> None:
    """Goal: LevelDB's open tables never use up the node's file descriptors (with the
    common soft limit of 1,024 its own default of 1,000 tables would, once a store grows
    past them, leave none for connections), and a higher limit lets a big store keep
    its tables open.
    Method: the budget for a range of limits; then, in a child process whose soft limit
    is lowered to 256 first, ``raise_open_files_limit`` raises it to what it asks for
    (capped by the hard limit) and never lowers a higher one."""
    assert store_module.tables_open_budget(1024) == 512
    assert store_module.tables_open_budget(65_536) == 20_000
    assert store_module.tables_open_budget(100) == 64
    assert store_module.tables_open_budget(resource.RLIM_INFINITY) == 20_000
    script = (
        "import resource\n"
        "from ledger.store import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "got = raise_open_files_limit(4096)\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)\n"
        "assert got == now == want, (got, now, want)\n"
        "assert raise_open_files_limit(300) == want  # never lowered\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(
    ("prefix", "damage", "message"),
    [
        (b"h:", "flip", "does not decode|head pointer does not match|disagree"),
        (b"c:", "delete", "certificate missing"),
        (b"r:", "delete", "missing"),
        (b"h:", "prev", "prev_hash"),
    ],
)
def test_leveldb_refuses_a_corrupted_head(tmp_path: Path, devnet: Devnet, prefix: bytes,
                                          damage: str, message: str) -> None:
    """Goal: on open, a damaged head stops the node with the height and the problem named.
    Method: damage one record of the head block with plyvel directly, then reopen."""
    import plyvel

    path = str(tmp_path / "db")
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    grow(devnet, chain, 2)
    chain.store.close()
    db = plyvel.DB(path)
    key = prefix + height_key(2)
    if damage == "delete":
        db.delete(key)
    elif damage == "flip":
        raw = bytearray(db.get(key))
        raw[-3] ^= 0x01
        db.put(key, bytes(raw))
    else:  # make height 1's header differ so the head no longer links to it
        h1 = decode(db.get(b"h:" + height_key(1)), BlockHeader)
        db.put(b"h:" + height_key(1), encode(dataclasses.replace(h1, time=h1.time + 1)))
    db.close()
    with pytest.raises(CorruptionError, match=message) as info:
        LevelDBStore(path, devnet.genesis.crypto)
    assert "height" in str(info.value)


@pytest.mark.parametrize(
    ("prefix", "height", "mutate", "message"),
    [
        (b"r:", 2, "results", "stored results differ"),
        (b"c:", 1, "cert", "commit signature|signatures"),
        (b"s:", None, "state", "stored state differs"),
    ],
)
def test_verify_chain_reports_the_first_broken_height(tmp_path: Path, devnet: Devnet,
                                                      prefix: bytes, height: int | None,
                                                      mutate: str, message: str) -> None:
    """Goal: an auditor running verify_chain on a copy of a data directory learns the first
    height that does not check out and why. Method: build 4 blocks in LevelDB, then rewrite one
    record below the head (results of block 2, a signature of block 1's certificate, or a
    latest-state value) with plyvel and run verify_chain."""
    import plyvel

    from ledger.block import CommitCertificate, CommitSignature, TxResult
    from ledger.chain import verify_chain
    from ledger.codec import decode_value, encode_value, from_value, to_value

    path = str(tmp_path / "db")
    chain = Chain(LevelDBStore(path, devnet.genesis.crypto), devnet.genesis, ledger_registry())
    grow(devnet, chain, 4)
    chain.store.close()
    db = plyvel.DB(path)
    if mutate == "results":
        key = prefix + height_key(2)
        stored = decode_value(db.get(key))
        assert isinstance(stored, dict) and isinstance(stored["results"], list)
        results = [from_value(TxResult, r) for r in stored["results"]]
        results[0] = dataclasses.replace(results[0], reason="edited")
        db.put(key, encode_value({"results": [to_value(r) for r in results]}))
    elif mutate == "cert":
        key = prefix + height_key(1)
        cert = decode(db.get(key), CommitCertificate)
        sigs = list(cert.signatures)
        sigs[0] = CommitSignature(sigs[0].validator, sigs[1].sig)
        db.put(key, encode(dataclasses.replace(cert, signatures=sigs)))
    else:
        key, _ = next(iter(db.iterator(prefix=b"s:evidence/")))
        db.put(key, b"forged")
    db.close()
    store = LevelDBStore(path, devnet.genesis.crypto)
    try:
        report = verify_chain(store, devnet.genesis, ledger_registry)
    finally:
        store.close()
    assert not report.ok
    assert report.broken_height == (height if height is not None else 4)
    assert re.search(message, report.reason), report.reason


def test_leveldb_refuses_a_store_format_it_does_not_know(tmp_path: Path, devnet: Devnet) -> None:
    """Goal: a store written by a newer version (an unknown format) is refused with a
    clear error, never read as if it were ours. Method: mark a store format 4; reopen."""
    path = str(tmp_path / "db")
    store = LevelDBStore(path, devnet.genesis.crypto)
    store.db.put(b"m:format", encode_value({"version": 4}))
    store.close()
    with pytest.raises(CorruptionError, match=r"unknown store format .* reads format 3"):
        LevelDBStore(path, devnet.genesis.crypto)
