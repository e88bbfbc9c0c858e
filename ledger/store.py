"""Block storage: one interface, a LevelDB implementation and an in-memory one.

Theory of operation
-------------------
A :class:`Store` holds the chain (headers, blocks, results, commit
certificates), the transaction index, the authenticated state (the latest
value of every key plus the sparse-Merkle nodes of every root), derived
application indexes, and the consensus core's persisted votes.

``append(commit)`` adds one block and everything it changed in ONE atomic
write; for LevelDB that is a single ``write_batch(transaction=True,
sync=True)``. After a crash at any moment the store holds exactly the blocks
whose ``append`` returned — never half a block — because every key of a
block, including the new head pointer, is in that one batch.

LevelDB layout (all keys are ``prefix + suffix``; heights are 8-byte
big-endian so keys sort by height; values are canonical msgpack unless
noted):

==========  =================  ==============================================
prefix      suffix             value
==========  =================  ==============================================
``m:head``  —                  ``{"height", "block_hash"}``
``m:format`` —                 ``{"version": 3}`` (older formats are refused on open)
``h:``      height             :class:`~ledger.block.BlockHeader`
``b:``      height             :class:`~ledger.block.Block`
``c:``      height             :class:`~ledger.block.CommitCertificate` (none at 0)
``r:``      height             ``{"results": [TxResult, ...]}``
``t:``      tx id (32 bytes)   ``{"height", "index"}``
``s:``      state key          latest state value (raw bytes)
``n:``      height, node hash  sparse-Merkle node record (see ``ledger.state``; format 1:
                               node hash alone)
``x:``      index key          application index value (raw bytes)
``k:``      consensus key      consensus core's persisted state (raw bytes)
==========  =================  ==============================================

On open the LevelDB store checks its head: the head header's hash equals the
head pointer, its certificate names that hash, it links to the header below,
its ``tx_root`` and ``result_root`` match the stored transactions and
results, and the root node of its ``state_root`` exists. On any mismatch it
raises :class:`~ledger.errors.CorruptionError` naming the height and what is
wrong; the node refuses to start rather than serve from it.

LevelDB runs with a 128 MiB write buffer instead of its 4 MiB default
(``WRITE_BUFFER_BYTES``; a node sets it with ``[storage] write_buffer_mb``).
Many keys written here are hashes spread over the whole key space (tx ids,
and until format 2 the state-tree nodes, now kept in height order), so every
level-0 file overlaps all of level 1 and each flush makes LevelDB merge that
level again; a larger buffer flushes and merges less often.
Measured (bench/RESULTS.md): 4 → 32 MiB took LevelDB's CPU for 100k
transactions' writes from 25 to 14 s and the nodes' CPU per committed
transaction down 25 % (session 6); 32 → 128 MiB halved the compaction threads'
CPU over 200 s of full load (~130k certificates) and raised the throughput the
grown network sustains by ~10 % (session 13). The cost is up to two buffers of
memory per node (the active one and the one being flushed) and a longer log to
replay on open.
Tables carry bloom filters (``BLOOM_BITS_PER_KEY``, ~1 % false positives): a
point read — a flow by id, a tree node, the "already committed?" check of a new
transaction id — then skips the levels that do not hold its key instead of
reading a block of each, which is what made such reads slower as the store
grew (tables written before keep working without filters until compacted).
Tables are not compressed by default (``COMPRESSION``; LevelDB's own default is
snappy, which a node may still choose: ``[storage] compression`` in node.toml). Half
of what is written is hashes and signatures, which do not compress, and every
merge decompressed and recompressed all of it: at full load the nodes'
compaction threads took half as much CPU without it (0.10 - 0.12 instead of
0.21 - 0.24 of a core at half the peak load, bench/RESULTS.md, session 9), and
commit latency fell with it. The cost is disk: a store takes ~1.7x the space
(measured: 39 instead of 23 MB for 11k certificate issues; 1.1 GB instead of
336 MB for the trail bench's 1M flows, whose index records repeat field names).
Tables written compressed stay readable; LevelDB marks each block. Table files
are 8 MiB (``TABLE_FILE_BYTES``) instead of 2: LevelDB keeps a bounded number of
tables open (below), and a point read in a table it must open first pays for the open
and for reading that table's index and bloom filter. Uncompressed, a 1M-flow
store was 533 tables and the first queries after opening it hit such opens
(backward trail p99 at 1M 0.22 - 0.79 ms over a series of runs); at 8 MiB it is
142 (p99 0.23 - 0.25 ms from the first run on).

How many tables LevelDB keeps open is sized from the process's limit on open
files (:func:`tables_open_budget`: half of it, up to ``TABLES_OPEN_MAX``), not
left at LevelDB's fixed 1,000: with the usual soft limit of 1,024 those 1,000
tables and a few hundred client connections would run out of descriptors (a
failed read, a refused connection) once a store passed 1,000 tables, and with a
higher limit a larger store need not reopen tables on every read. ``node.py
run`` first raises its soft limit towards the hard one
(:func:`raise_open_files_limit`), as database servers do.

Errors: readers return ``None`` for absent data; a stored value that fails
to decode raises CorruptionError. ``append`` of a block that does not extend
the head is a caller bug (``ValueError``).
"""

from __future__ import annotations

import bisect
import os
import resource
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from ledger.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    TxResult,
    result_root,
    tx_root,
)
from ledger.codec import (
    decode,
    decode_value,
    encode,
    encode_value,
    from_value,
    spliced_array,
    spliced_map,
)
from ledger.crypto import Suite
from ledger.errors import CorruptionError, DecodeError, InputError
from ledger.state import EMPTY_ROOT

T = TypeVar("T")
# 2: state-tree nodes keyed by height and hash (ledger.state, "Where nodes are stored").
# 3: commit certificates name the view their signatures were made in (ledger.block). The
# certificates of a format 1 or 2 store do not, and cannot be re-signed: such a store is
# refused (OLD_FORMAT_HELP) rather than served, since a verifier of this version would reject
# every proof from it and a node of this version must not pass them on.
FORMAT_VERSION = 3
OLDER_FORMATS = (1, 2)
OLD_FORMAT_HELP = (
    "its commit certificates do not name the PBFT view they were signed in, which lets a "
    "faulty validator assemble a false certificate from honest votes of different views; "
    "this version neither serves nor accepts them. Keep this directory as the record of the "
    "old chain, and start the network again from its genesis with empty data directories")
WRITE_BUFFER_BYTES = 128 << 20  # see the module docstring
BLOOM_BITS_PER_KEY = 10  # see the module docstring
COMPRESSIONS: Final = ("none", "snappy")  # node.toml [storage] compression
COMPRESSION = "none"  # see the module docstring: not snappy
TABLE_FILE_BYTES = 8 << 20  # see the module docstring
TABLES_OPEN_MAX = 20_000  # 160 GB of 8 MiB tables
OPEN_FILES_WANTED = 65_536  # the soft limit node.py asks for
_VALUE_MAX = 64 * 1024 * 1024


def tables_open_budget(open_files_limit: int | None = None) -> int:
    """How many table files LevelDB may keep open: half the process's soft limit on open
    files (the other half for sockets, logs and the rest), 64 to ``TABLES_OPEN_MAX``."""
    if open_files_limit is None:
        open_files_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files_limit == resource.RLIM_INFINITY:
        return TABLES_OPEN_MAX
    return max(64, min(TABLES_OPEN_MAX, open_files_limit // 2))


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise this process's soft limit on open files to ``wanted`` (at most the hard
    limit; never lower it); return the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def height_key(height: int) -> bytes:
    return struct.pack(">Q", height)


@dataclass
class BlockCommit:
    """Everything one block changes, appended atomically."""

    block: Block
    certificate: CommitCertificate | None  # None only for the genesis block
    results: list[TxResult]
    executed: dict[bytes, int]  # tx id -> position in the block
    state_changes: dict[bytes, bytes | None]
    state_nodes: dict[bytes, bytes]
    index_changes: dict[bytes, bytes | None] = field(default_factory=dict)


class Store(Protocol):
    """Storage of one node. See the module docstring for the contract."""

    def head_height(self) -> int:
        """Height of the last appended block, or -1 for an empty store."""
        ...

    def get_header(self, height: int) -> BlockHeader | None: ...
    def get_block(self, height: int) -> Block | None: ...
    def get_certificate(self, height: int) -> CommitCertificate | None: ...
    def get_results(self, height: int) -> list[TxResult] | None: ...
    def get_tx_location(self, tx_id: bytes) -> tuple[int, int] | None: ...
    def get_state(self, key: bytes) -> bytes | None: ...
    def get_node(self, node_hash: bytes, height: int | None) -> bytes | None:
        """The state-tree node ``node_hash`` as written by block ``height`` (None: by a
        store from before nodes were kept by height), or None if it is not there."""
        ...
    def get_index(self, key: bytes) -> bytes | None: ...

    def iter_index(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Index entries whose key starts with ``prefix``, in key order (from ``start``)."""
        ...

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]:
        """Latest state entries whose key starts with ``prefix``, in key order (from
        ``start``)."""
        ...

    def append(self, commit: BlockCommit) -> None:
        """Atomically and durably add one block; see the module docstring."""
        ...

    def append_many(self, commits: list[BlockCommit]) -> None:
        """Atomically and durably add consecutive blocks (all or none)."""
        ...

    def get_consensus(self, key: bytes) -> bytes | None: ...

    def put_consensus(self, changes: dict[bytes, bytes | None]) -> None:
        """Durably (synced) write the consensus core's state before it sends what depends on it."""
        ...

    def close(self) -> None: ...


def _format_of(db: Any) -> object:
    """The store's format version (its ``m:format`` mark; format 1 had none, so a store with
    a head and no mark is 1), or None for a new, empty store. Anything unexpected is
    returned as it is, for the caller to refuse."""
    raw = db.get(b"m:format")
    if raw is None:
        return 1 if db.get(b"m:head") is not None else None
    try:
        mark = decode_value(raw)
    except DecodeError:
        return raw
    if isinstance(mark, dict) and set(mark) == {"version"}:
        return mark["version"]
    return mark


def older_store_format(path: str | os.PathLike[str]) -> int | None:
    """The format of the LevelDB store at ``path`` if this version refuses it as older
    (OLDER_FORMATS), else None — no store there, or one it reads. Creates nothing; the
    store must not be open (a node using it holds its lock)."""
    import plyvel

    try:
        db = plyvel.DB(os.fspath(path), create_if_missing=False)
    except plyvel.Error:
        return None
    try:
        fmt = _format_of(db)
    finally:
        db.close()
    return fmt if isinstance(fmt, int) and fmt in OLDER_FORMATS else None


def _decode_stored(data: bytes, cls: type[T], height: int) -> T:
    try:
        return decode(data, cls, max_size=_VALUE_MAX)
    except DecodeError as exc:
        raise CorruptionError(
            f"height {height}: stored {cls.__name__} does not decode: {exc}"
        ) from None


def _decode_results(data: bytes, height: int) -> list[TxResult]:
    try:
        value = decode_value(data, max_size=_VALUE_MAX)
        assert isinstance(value, dict)
        return [from_value(TxResult, r) for r in value["results"]]  # type: ignore[union-attr]
    except (DecodeError, AssertionError, KeyError, TypeError) as exc:
        raise CorruptionError(f"height {height}: stored results do not decode: {exc}") from None


def _check_extends(head: int, prev_header: BlockHeader | None, commit: BlockCommit,
                   suite: Suite) -> None:
    header = commit.block.header
    if header.height != head + 1:
        raise ValueError(f"append of height {header.height} onto head {head}")
    if prev_header is not None and header.prev_hash != prev_header.block_hash(suite):
        raise ValueError(f"block {header.height} does not link to the head")
    if (commit.certificate is None) != (header.height == 0):
        raise ValueError("only the genesis block has no commit certificate")
    if len(commit.results) != len(commit.block.txs):
        raise ValueError("one result per transaction is required")


class MemoryStore:
    """Dict-backed store for tests and the simulator. ``append`` is atomic."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.headers: list[BlockHeader] = []
        self.blocks: list[Block] = []
        self.certs: list[CommitCertificate | None] = []
        self.results: list[list[TxResult]] = []
        self.txs: dict[bytes, tuple[int, int]] = {}
        self.state: dict[bytes, bytes] = {}
        self.nodes: dict[tuple[int | None, bytes], bytes] = {}  # (height, hash) -> record
        self.index: dict[bytes, bytes] = {}
        self.consensus: dict[bytes, bytes] = {}
        self._index_keys: list[bytes] = []  # sorted, for prefix scans
        self._state_keys: list[bytes] = []

    def head_height(self) -> int:
        return len(self.headers) - 1

    def get_header(self, height: int) -> BlockHeader | None:
        return self.headers[height] if 0 <= height < len(self.headers) else None

    def get_block(self, height: int) -> Block | None:
        return self.blocks[height] if 0 <= height < len(self.blocks) else None

    def get_certificate(self, height: int) -> CommitCertificate | None:
        return self.certs[height] if 0 <= height < len(self.certs) else None

    def get_results(self, height: int) -> list[TxResult] | None:
        return list(self.results[height]) if 0 <= height < len(self.results) else None

    def get_tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        return self.txs.get(tx_id)

    def get_state(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def get_node(self, node_hash: bytes, height: int | None) -> bytes | None:
        # Strict: only where the node was written, so tests and the simulator catch a
        # location the tree got wrong (LevelDBStore also reads its older stores' nodes).
        return self.nodes.get((height, node_hash))

    def get_index(self, key: bytes) -> bytes | None:
        return self.index.get(key)

    def iter_index(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        yield from _scan(self._index_keys, self.index, prefix, start, reverse)

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]:
        yield from _scan(self._state_keys, self.state, prefix, start, False)

    def append_many(self, commits: list[BlockCommit]) -> None:
        prev = self.headers[-1] if self.headers else None
        head = self.head_height()
        for commit in commits:  # check all first: all or none
            _check_extends(head, prev, commit, self.suite)
            prev, head = commit.block.header, commit.block.header.height
        for commit in commits:
            self.append(commit)

    def append(self, commit: BlockCommit) -> None:
        prev = self.headers[-1] if self.headers else None
        _check_extends(self.head_height(), prev, commit, self.suite)
        height = commit.block.header.height
        self.headers.append(commit.block.header)
        self.blocks.append(commit.block)
        self.certs.append(commit.certificate)
        self.results.append(list(commit.results))
        for tx_id, position in commit.executed.items():
            self.txs[tx_id] = (height, position)
        self.nodes.update({(height, h): r for h, r in commit.state_nodes.items()})
        _apply(self.state, self._state_keys, commit.state_changes)
        _apply(self.index, self._index_keys, commit.index_changes)

    def get_consensus(self, key: bytes) -> bytes | None:
        return self.consensus.get(key)

    def put_consensus(self, changes: dict[bytes, bytes | None]) -> None:
        for k, v in changes.items():
            if v is None:
                self.consensus.pop(k, None)
            else:
                self.consensus[k] = v

    def close(self) -> None:
        pass


def _apply(
    table: dict[bytes, bytes], keys: list[bytes], changes: dict[bytes, bytes | None]
) -> None:
    for k, v in changes.items():
        if v is None:
            if table.pop(k, None) is not None:
                keys.pop(bisect.bisect_left(keys, k))
        else:
            if k not in table:
                bisect.insort(keys, k)
            table[k] = v


def _scan(keys: list[bytes], table: dict[bytes, bytes], prefix: bytes, start: bytes | None,
          reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    lo = bisect.bisect_left(keys, prefix)
    hi = bisect.bisect_left(keys, _prefix_end(prefix)) if _prefix_end(prefix) else len(keys)
    selected = keys[lo:hi]  # a snapshot: the caller may append while iterating
    if reverse:
        selected.reverse()
    for k in selected:
        if start is not None and ((k < start) if not reverse else (k > start)):
            continue
        yield k, table[k]


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (b"" if none)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b""
    p[-1] += 1
    return bytes(p)


class LevelDBStore:
    """The durable store: one LevelDB database per node (see the module docstring)."""

    def __init__(self, path: str, suite: Suite, check: bool = True,
                 compression: str = COMPRESSION,
                 write_buffer_bytes: int = WRITE_BUFFER_BYTES) -> None:
        """``compression``: one of ``COMPRESSIONS``, for the tables written from now on (see
        the module docstring); a store's tables are readable whichever wrote them.
        ``write_buffer_bytes``: LevelDB's write buffer (see the module docstring)."""
        import plyvel

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")

        self.suite = suite
        self.path = path
        os.makedirs(path, exist_ok=True)
        try:
            self.db = plyvel.DB(path, create_if_missing=True, paranoid_checks=True,
                                write_buffer_size=write_buffer_bytes,
                                bloom_filter_bits=BLOOM_BITS_PER_KEY,
                                compression=None if compression == "none" else compression,
                                max_file_size=TABLE_FILE_BYTES,
                                max_open_files=tables_open_budget())
        except plyvel.IOError as exc:
            if "/LOCK:" in str(exc):  # held by another process: an operator's mistake, no damage
                raise InputError(f"the store {path} is in use by another process (is a node "
                                 "with this data folder already running?)") from None
            raise CorruptionError(f"cannot open LevelDB at {path}: {exc}") from None
        except plyvel.Error as exc:
            raise CorruptionError(f"cannot open LevelDB at {path}: {exc}") from None
        fmt = _format_of(self.db)
        if fmt in OLDER_FORMATS:
            self.db.close()
            raise CorruptionError(f"{path}: store format {fmt} was written by an older "
                                  f"govledger: {OLD_FORMAT_HELP}")
        if fmt is not None and fmt != FORMAT_VERSION:
            self.db.close()
            raise CorruptionError(f"{path}: unknown store format {fmt!r} (this version "
                                  f"reads format {FORMAT_VERSION})")
        if fmt is None:
            self.db.put(b"m:format", encode_value({"version": FORMAT_VERSION}), sync=True)
        self._head = self._read_head()
        # The head's header, decoded once: the replica reads it for every block it takes
        # (its parent's time and hash) and every append checks the link to it.
        self._head_header: BlockHeader | None = None
        if check:
            self.check_head()

    # -- reading ------------------------------------------------------------------------

    def _read_head(self) -> int:
        raw = self.db.get(b"m:head")
        if raw is None:
            return -1
        try:
            value = decode_value(raw)
            assert isinstance(value, dict) and isinstance(value["height"], int)
            return value["height"]
        except (DecodeError, AssertionError, KeyError) as exc:
            raise CorruptionError(f"{self.path}: head pointer is unreadable: {exc}") from None

    def head_height(self) -> int:
        return self._head

    def get_header(self, height: int) -> BlockHeader | None:
        if height == self._head and self._head_header is not None:
            return self._head_header
        raw = self.db.get(b"h:" + height_key(height)) if height >= 0 else None
        header = None if raw is None else _decode_stored(raw, BlockHeader, height)
        if height == self._head:
            self._head_header = header
        return header

    def get_block(self, height: int) -> Block | None:
        raw = self.db.get(b"b:" + height_key(height)) if height >= 0 else None
        return None if raw is None else _decode_stored(raw, Block, height)

    def get_certificate(self, height: int) -> CommitCertificate | None:
        raw = self.db.get(b"c:" + height_key(height)) if height >= 0 else None
        if raw is None:
            return None
        return _decode_stored(raw, CommitCertificate, height)

    def get_results(self, height: int) -> list[TxResult] | None:
        raw = self.db.get(b"r:" + height_key(height)) if height >= 0 else None
        return None if raw is None else _decode_results(raw, height)

    def get_tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        raw = self.db.get(b"t:" + tx_id)
        if raw is None:
            return None
        value = decode_value(raw)
        assert isinstance(value, dict)
        return value["height"], value["index"]  # type: ignore[return-value]

    def get_state(self, key: bytes) -> bytes | None:
        return self.db.get(b"s:" + key)  # type: ignore[no-any-return]

    def get_node(self, node_hash: bytes, height: int | None) -> bytes | None:
        if height is not None:
            record = self.db.get(b"n:" + height_key(height) + node_hash)
            if record is not None:
                return record  # type: ignore[no-any-return]
        # A store written before nodes were kept by height: its nodes, and the roots of its
        # blocks (which later nodes' records point at as "no height"), are keyed by hash.
        return self.db.get(b"n:" + node_hash)  # type: ignore[no-any-return]

    def get_index(self, key: bytes) -> bytes | None:
        return self.db.get(b"x:" + key)  # type: ignore[no-any-return]

    def iter_index(
        self, prefix: bytes, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        yield from self._iter(b"x:", prefix, start, reverse)

    def iter_state(self, prefix: bytes, start: bytes | None = None
                   ) -> Iterator[tuple[bytes, bytes]]:
        yield from self._iter(b"s:", prefix, start, False)

    def _iter(self, space: bytes, prefix: bytes, start: bytes | None,
              reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        full = space + prefix
        kwargs: dict[str, object] = {"prefix": full, "reverse": reverse}
        if start is not None:
            kwargs.pop("prefix")
            if reverse:
                kwargs["start"], kwargs["stop"] = full, space + start + b"\x00"
            else:
                kwargs["start"] = space + start
                end = _prefix_end(full)
                if end:
                    kwargs["stop"] = end
        with self.db.iterator(**kwargs) as it:
            for k, v in it:
                if not k.startswith(full):
                    break
                yield k[len(space):], v

    def get_consensus(self, key: bytes) -> bytes | None:
        return self.db.get(b"k:" + key)  # type: ignore[no-any-return]

    def put_consensus(self, changes: dict[bytes, bytes | None]) -> None:
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for k, v in changes.items():
                if v is None:
                    wb.delete(b"k:" + k)
                else:
                    wb.put(b"k:" + k, v)

    # -- writing ------------------------------------------------------------------------

    def append(self, commit: BlockCommit) -> None:
        self.append_many([commit])

    def append_many(self, commits: list[BlockCommit]) -> None:
        """Append consecutive blocks in one atomic, synced write (state transfer applies
        dozens per step: one fsync for all of them instead of one each)."""
        if not commits:
            return
        head = self._head
        prev = self.get_header(head) if head >= 0 else None
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for commit in commits:
                _check_extends(head, prev, commit, self.suite)
                self._put_block(wb, commit)
                prev, head = commit.block.header, commit.block.header.height
            header = commits[-1].block.header
            wb.put(b"m:head", encode_value({
                "height": header.height, "block_hash": header.block_hash(self.suite)}))
        self._head, self._head_header = head, commits[-1].block.header

    def _put_block(self, wb: Any, commit: BlockCommit) -> None:
        header = commit.block.header
        hk = height_key(header.height)
        wb.put(b"h:" + hk, encode(header))
        wb.put(b"b:" + hk, commit.block.encoded())
        if commit.certificate is not None:
            wb.put(b"c:" + hk, encode(commit.certificate))
        wb.put(b"r:" + hk, spliced_map({"results": spliced_array([r.encoded()
                                                                 for r in commit.results])}))
        for tx_id, position in commit.executed.items():
            wb.put(b"t:" + tx_id, encode_value({"height": header.height, "index": position}))
        for node_hash, record in commit.state_nodes.items():
            wb.put(b"n:" + hk + node_hash, record)  # in height order: see the module docstring
        for k, v in commit.state_changes.items():
            if v is None:
                wb.delete(b"s:" + k)
            else:
                wb.put(b"s:" + k, v)
        for k, v in commit.index_changes.items():
            if v is None:
                wb.delete(b"x:" + k)
            else:
                wb.put(b"x:" + k, v)

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    # -- integrity ----------------------------------------------------------------------

    def check_head(self) -> None:
        """Refuse a store whose head is inconsistent (see the module docstring)."""
        h = self._head
        if h < 0:
            return
        raw_head = decode_value(self.db.get(b"m:head"))
        header = self.get_header(h)
        block = self.get_block(h)
        results = self.get_results(h)
        if header is None or block is None or results is None:
            raise CorruptionError(f"height {h}: head block, header or results are missing")
        block_hash = header.block_hash(self.suite)
        if not isinstance(raw_head, dict) or raw_head.get("block_hash") != block_hash:
            raise CorruptionError(f"height {h}: head pointer does not match the head header")
        if block.header != header:
            raise CorruptionError(f"height {h}: stored block and header disagree")
        if h > 0:
            cert = self.get_certificate(h)
            if cert is None or cert.block_hash != block_hash:
                raise CorruptionError(
                    f"height {h}: commit certificate missing or for another block"
                )
            prev = self.get_header(h - 1)
            if prev is None or prev.block_hash(self.suite) != header.prev_hash:
                raise CorruptionError(f"height {h}: prev_hash does not link to height {h - 1}")
        if tx_root(self.suite, block.txs) != header.tx_root:
            raise CorruptionError(f"height {h}: transactions do not match tx_root")
        if result_root(self.suite, results) != header.result_root:
            raise CorruptionError(f"height {h}: results do not match result_root")
        if header.state_root != EMPTY_ROOT and self.get_node(header.state_root, h) is None:
            raise CorruptionError(f"height {h}: state root node is missing")
