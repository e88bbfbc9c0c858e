"""Authenticated key-value state: a compact sparse Merkle tree (SPEC.md §4).

Theory of operation
-------------------
The state is a binary trie over 256-bit paths. A key's path is the bits of
``key_hash = H(key)``, most significant bit first (bit 0 is the top bit of byte
0; 0 goes left, 1 goes right). The tree is *compact* (Diem/Aptos style): an
empty subtree is the constant ``EMPTY``, a subtree holding exactly one leaf is
that leaf itself, and only a subtree with two or more leaves is an internal
node. So a leaf sits at the shallowest depth where its path prefix is unique,
and the root is a function of the set of (key, value) pairs alone, never of the
order of the updates that produced it. Depths run from 0 (the root) to 256.

The tree does no IO. It reads nodes through an injected :class:`NodeReader`
(keyed by node hash) and :meth:`SparseMerkleTree.update` returns the nodes it
created; the caller persists them in the same atomic batch as the block. The
tree never deletes a node, so every past root stays readable and provable.

Hash and record formats (``H`` is the suite hash, 32-byte output: SM3)
----------------------------------------------------------------------
- ``EMPTY = 0x00 * 32`` is the hash of an empty subtree and the empty state's
  root. It is never stored.
- ``value_hash = H(value)``; ``leaf_hash = H(0x00 || key_hash || value_hash)``.
- ``internal_hash = H(0x01 || left_hash || right_hash)``. An internal node
  never has two EMPTY children, nor one EMPTY child and one leaf child.
- Node records: internal = ``0x01 || left || right || u64be(left_at) ||
  u64be(right_at)`` (81 bytes: the hash preimage, then where each child is stored;
  ``2**64 - 1`` for EMPTY or not known); leaf = ``0x00 || u32be(len(key)) || key ||
  value`` (the full key and value, so any past state can be read).
- Keys are 1..1024 bytes, values 0..1 MiB.

Where nodes are stored
----------------------
A node is stored at the height of the block whose update made it, and read by (hash,
height): the store keys it by height first, so a block's nodes go into LevelDB in key
order, next to each other, instead of at random places all over the key space. Random
keys cost twice: inserting ~14 of them per ``cert.issue`` into a memtable of a million
entries took 2 - 4 us each (cache misses; 0.6 us into an empty one), and compaction
rewrote the whole key space as it grew (bench/RESULTS.md, session 14). A parent's record
says where each child is; a block's root is always stored at the block's own height (an
update returns the root's record even when the block changed nothing), so the root of
any block's state is found from the block's height. Stores written before this kept
their nodes keyed by hash, with 65-byte internal records (the bare preimage, no
locations): such a child's location is "not known" and the store reads it by hash.
(Since store format 3 those stores are refused on open — their commit certificates do
not name a view, see ``ledger.store`` — so that path no longer meets such records; an
EMPTY child's location is still "not known".)

Nodes are content-addressed, so the same node may be stored at two heights; each copy's
record points at children that exist where it says. The cache is keyed by hash and holds
only records read from the store or persisted by the caller, never a pending block's
(which may point at nodes only that block made, and it may never be appended).

Proof format (:class:`StateProof`) and verification
----------------------------------------------------
A proof describes the walk from the root along ``H(key)``'s path until it
meets a leaf or EMPTY at ``depth``. For each depth ``i < depth`` the walk
passed an internal node whose other child is the *sibling at depth i*.
``bitmap`` (32 bytes, bit ``i`` = bit ``7 - i % 8`` of byte ``i // 8``) has
bit ``i`` set iff that sibling is not EMPTY; ``siblings`` lists exactly the
non-EMPTY ones, root first. ``leaf_key_hash``/``leaf_value_hash`` describe the
terminal leaf, or are both None if the terminal is EMPTY. A verifier:

1. checks shapes: root, every sibling, ``leaf_*`` are 32-byte ``bytes``; no
   sibling equals EMPTY; ``bitmap`` is 32 bytes; ``depth`` is an int in
   0..256; no bitmap bit is set at or after ``depth``; popcount(bitmap) ==
   len(siblings);
2. checks the claim: membership of ``value`` needs a leaf with
   ``leaf_key_hash == H(key)`` and ``leaf_value_hash == H(value)``; absence
   needs EMPTY, or a leaf whose key hash differs from ``H(key)`` but shares its
   first ``depth`` bits;
3. checks compactness: for ``depth >= 1`` the sibling at ``depth - 1`` is not
   EMPTY (else that internal node would have had fewer than two leaves), and
   the terminal at depth 256 is a leaf;
4. folds: ``cur`` = EMPTY or the leaf hash; for ``i = depth-1 .. 0``,
   ``s`` = next sibling from the end of the list (EMPTY where bit ``i`` is
   clear), ``cur = H(0x01||cur||s)`` if bit ``i`` of ``H(key)`` is 0 else
   ``H(0x01||s||cur)``; accept iff ``cur == root``.

Why this is sufficient. Let ``root`` be the root of a real tree (it is
certified by 2f+1 replicas), assume ``H`` is collision resistant and nobody
knows a preimage of EMPTY, and let ``c_i`` be the fold value at depth ``i``
(``c_0 == root`` after step 4). Induction down the key's path: if the real
node at depth ``i`` is internal and the proof goes deeper, ``c_i`` and the
real hash are both ``H(0x01||..)``, so ``c_{i+1}`` and the sibling are the real
children. The proof cannot go on below a real leaf or EMPTY, nor stop at a real
internal node, nor swap a leaf for EMPTY: each would need an internal preimage
equal to a leaf preimage (domain bytes 0x01 vs 0x00), or a preimage of EMPTY.
So the accepted ``depth`` and terminal are the real ones, and since the fold
uses the bits of ``H(key)``, that position is on the key's own path. A leaf
there is the only key under that prefix, so: ``leaf_key_hash == H(key)`` with
``leaf_value_hash == H(value)`` proves the value; EMPTY, or a leaf of another
key, proves absence. What a malicious prover can still try, and what stops it:
another key's leaf from elsewhere (the fold uses our bits; step 2 checks its
prefix); claims of the wrong kind (step 2); re-encodings of an honest proof --
EMPTY siblings written out, unused siblings behind bitmap bits past ``depth``
(step 1: an accepted proof's bitmap and list are then forced, so each (root,
key) has exactly one accepted proof); and shapes no compact tree has -- a leaf
that should have been hoisted, EMPTY beside an EMPTY sibling, EMPTY at depth
256 (step 3). Steps 1 and 3 are not needed for soundness against a real root;
they make the accepted encoding canonical and as strict as the format, so a
faulty prover or a non-compact tree is caught at once, and any single-bit
change to a valid proof fails.

Cost
----
For n keys with random hashes a path is about log2(n) + 1.3 deep. ``get`` and
``prove`` read one path: O(log n) reads, at most 257. ``update`` of k changes
sorts them by key hash and descends once along the union of their paths: the
top log2(k) levels are shared, so it reads about k·(log2(n/k) + 2) nodes and
hashes about k·(log2(n/k) + 5) times (one per new internal node, three per new
leaf), never O(n) (measured: 3,000 changes in 100,000 keys, 22.5k reads and
31k hashes). With ``verify_nodes`` (the default) each node read from the store
is checked against its hash: one more hash per internal node, three per leaf.
A bounded cache keeps decoded, verified nodes, so hot nodes are neither
re-read nor re-verified (:class:`_NodeCache`: two generations of plain dicts, an
approximate LRU that costs one dict lookup per hit); the nodes an update
supersedes leave it when the caller remembers the update, so while the live tree
fits half the budget no internal node is read from the store twice. Keys whose hashes share a
b-bit prefix (which costs an attacker about 2**(b/2) work to find) lengthen
their paths to b + 1, never beyond 256.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from ledger.errors import CorruptionError, ProofError

HashFn = Callable[[bytes], bytes]

HASH_BYTES = 32
PATH_BITS = 256
EMPTY_ROOT = bytes(HASH_BYTES)
KEY_BYTES_MAX = 1024
VALUE_BYTES_MAX = 1 << 20

_LEAF_TAG = b"\x00"
_INTERNAL_TAG = b"\x01"
_LEAF_HEADER = struct.Struct(">I")

# Kinds of a subtree result during an update. UNKNOWN marks an untouched child
# whose kind is only looked up if a deletion leaves it without a sibling.
_EMPTY, _LEAF, _INTERNAL, _UNKNOWN = range(4)

# Rough per-entry overhead of a cached node, in bytes, for the cache budget.
_CACHE_ENTRY_OVERHEAD_BYTES = 200
# The node cache's default budget. A live tree of n keys has about n internal nodes
# (~265 bytes each, counted) plus the leaves read; while it fits in half the budget an
# update reads no internal node from the store. 256 MiB keeps ~200k keys' trees whole;
# nodes set it in node.toml ([storage] state_cache_mb).
CACHE_BYTES_DEFAULT = 256 << 20


class NodeReader(Protocol):
    """Read access to the node store. ``get_node`` returns None if absent.

    ``height`` is where the node was written (see "Where nodes are stored" above), or
    None for a node of a store written before nodes had locations."""

    def get_node(self, node_hash: bytes, height: int | None) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class StateProof:
    """A membership or non-membership proof; the format is in the module docstring."""

    siblings: list[bytes]
    bitmap: bytes
    depth: int
    leaf_key_hash: bytes | None
    leaf_value_hash: bytes | None


def _cached_size(entry: bytes | _Leaf) -> int:
    """What a cache entry counts against the budget: its record's length plus overhead."""
    if type(entry) is bytes:
        return len(entry) + _CACHE_ENTRY_OVERHEAD_BYTES
    assert isinstance(entry, _Leaf)
    return 1 + _LEAF_HEADER.size + len(entry.key) + len(entry.value) + _CACHE_ENTRY_OVERHEAD_BYTES


class _Internal:
    """A decoded internal node. A plain slotted class: one is made per cache hit, and a
    frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs twice as much.
    Nobody changes one after it is made."""

    __slots__ = ("left", "left_at", "right", "right_at")

    def __init__(self, record: bytes) -> None:
        self.left = record[1:33]
        self.right = record[33:65]
        if len(record) == _INTERNAL_BYTES:
            left_at, right_at = _LOCATIONS.unpack_from(record, _PREIMAGE_BYTES)
            self.left_at = None if left_at == _NOWHERE else left_at
            self.right_at = None if right_at == _NOWHERE else right_at
        else:  # a bare preimage: a node of a store written before nodes had locations
            self.left_at = self.right_at = None


_PREIMAGE_BYTES = 1 + 2 * HASH_BYTES  # an internal node's hash preimage: 0x01||left||right
_LOCATIONS = struct.Struct(">QQ")  # where the left and the right child are stored
_INTERNAL_BYTES = _PREIMAGE_BYTES + _LOCATIONS.size
_INTERNAL_ENTRY_BYTES = _INTERNAL_BYTES + _CACHE_ENTRY_OVERHEAD_BYTES
# A stored height meaning "not known": the child of a node from a store written before nodes
# had locations (its record is the bare preimage), or an EMPTY child.
_NOWHERE = (1 << 64) - 1


def _locations(left_at: int | None, right_at: int | None) -> bytes:
    """The tail of an internal record: where its children are stored."""
    return _LOCATIONS.pack(_NOWHERE if left_at is None else left_at,
                           _NOWHERE if right_at is None else right_at)


class _NodeCache:
    """Node hash -> internal record (bytes) or decoded leaf, within a byte budget.

    An approximate LRU in two generations: new and re-used entries go into
    ``young``; when the next would take ``young`` past half the budget, ``young``
    becomes ``old`` and the previous ``old`` is dropped; a hit in ``old`` moves the
    entry back to ``young``. So whatever was used since the last turnover survives
    the next, and the whole holds at most the budget. A hit in ``young`` (the hot
    top of the tree, every block) is one dict lookup, where an ``OrderedDict`` LRU
    paid a ``move_to_end`` on every hit, and a size computation and a ``popitem``
    per eviction. Remembering a block's new internal nodes is one dict update.
    Session 9 measured tree updates 27 - 31 % faster with it and the nodes' event
    loops 7 - 9 % lighter at full load (bench/RESULTS.md). Since it may hold as
    little as half its budget of recently used entries (just after a turnover), the
    tree's default budget is twice what the LRU had.
    """

    __slots__ = ("entry_max", "half", "old", "old_bytes", "young", "young_bytes")

    def __init__(self, bytes_max: int) -> None:
        self.young: dict[bytes, bytes | _Leaf] = {}
        self.old: dict[bytes, bytes | _Leaf] = {}
        self.young_bytes = self.old_bytes = 0
        self.half = bytes_max // 2
        self.entry_max = bytes_max // 8  # an entry larger than this is never cached

    @property
    def size(self) -> int:
        """The bytes held, as counted against the budget."""
        return self.young_bytes + self.old_bytes

    def values(self) -> list[bytes | _Leaf]:
        return [*self.young.values(), *self.old.values()]

    def get(self, node_hash: bytes) -> bytes | _Leaf | None:
        hit = self.young.get(node_hash)
        if hit is None:
            hit = self.old.pop(node_hash, None)
            if hit is not None:
                size = _cached_size(hit)
                self.old_bytes -= size
                self._admit(node_hash, hit, size)
        return hit

    def put(self, node_hash: bytes, entry: bytes | _Leaf) -> None:
        if node_hash in self.young:
            return
        size = _cached_size(entry)
        if size > self.entry_max:
            return
        old = self.old.pop(node_hash, None)
        if old is not None:
            self.old_bytes -= _cached_size(old)
        self._admit(node_hash, entry, size)

    def put_internals(self, nodes: Mapping[bytes, bytes]) -> None:
        """Cache the internal records among ``nodes`` (fixed size; leaves are skipped)."""
        if self.entry_max < _INTERNAL_ENTRY_BYTES:
            return
        internals = {node_hash: record for node_hash, record in nodes.items()
                     if len(record) == _INTERNAL_BYTES and record[0] == 1}
        for node_hash in internals.keys() & self.old.keys():
            self.old_bytes -= _cached_size(self.old.pop(node_hash))
        known = internals.keys() & self.young.keys()
        added = (len(internals) - len(known)) * _INTERNAL_ENTRY_BYTES
        if self.young_bytes + added <= self.half:  # the usual case: all fit
            self.young.update(internals)
            self.young_bytes += added
            return
        for node_hash, record in internals.items():  # a turnover falls in this block
            if node_hash not in known:
                self._admit(node_hash, record, _INTERNAL_ENTRY_BYTES)

    def forget(self, hashes: Iterable[bytes]) -> None:
        """Drop these entries (nodes an update superseded): the budget then holds the live
        tree, and a turnover no longer pushes live nodes out to make room for dead ones."""
        young, old = self.young, self.old
        for node_hash in hashes:
            entry = young.pop(node_hash, None)
            if entry is not None:
                self.young_bytes -= _cached_size(entry)
                continue
            entry = old.pop(node_hash, None)
            if entry is not None:
                self.old_bytes -= _cached_size(entry)

    def _admit(self, node_hash: bytes, entry: bytes | _Leaf, size: int) -> None:
        if self.young_bytes + size > self.half:
            self._turn_over()
        self.young[node_hash] = entry
        self.young_bytes += size

    def _turn_over(self) -> None:
        self.old, self.old_bytes = self.young, self.young_bytes
        self.young, self.young_bytes = {}, 0


@dataclass(frozen=True, slots=True)
class _Leaf:
    key: bytes
    value: bytes
    key_hash: bytes
    value_hash: bytes | None  # None if it has not been computed yet (verify_nodes off)


_Node = _Internal | _Leaf
# A pending change: (path as int, key hash, key, new value or None to delete).
_Change = tuple[int, bytes, bytes, bytes | None]
# A leaf being placed by _build: (path as int, leaf hash, height it is stored at).
_LeafRef = tuple[int, bytes, int | None]
# A subtree an update made or kept: (hash, kind, height its top node is stored at).
_Subtree = tuple[bytes, int, int | None]


def _bit(path: int, depth: int) -> int:
    return (path >> (PATH_BITS - 1 - depth)) & 1


def _right_half(path: int, depth: int) -> int:
    """The smallest path with ``path``'s first ``depth`` bits and bit ``depth`` set: in a
    list sorted by path whose items share those bits, the items with bit ``depth`` set
    start at ``bisect_left(items, (_right_half(path, depth),))`` (a 1-tuple sorts before
    every longer tuple with the same first item; no key function, so bisect stays in C)."""
    shift = PATH_BITS - 1 - depth
    return ((path >> shift) | 1) << shift


def _shares_prefix(a: int, b: int, depth: int) -> bool:
    """True iff paths ``a`` and ``b`` agree on their first ``depth`` bits."""
    return (a ^ b) >> (PATH_BITS - depth) == 0


def _check_hash_arg(name: str, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_BYTES:
        raise ValueError(f"{name} must be {HASH_BYTES} bytes, not {len(value)}")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"state key must be bytes, not {type(key).__name__}")
    if not 1 <= len(key) <= KEY_BYTES_MAX:
        raise ValueError(f"state key must be 1..{KEY_BYTES_MAX} bytes, not {len(key)}")


def _check_value(value: bytes | None) -> None:
    if value is None:
        return
    if not isinstance(value, bytes):
        raise TypeError(f"state value must be bytes or None, not {type(value).__name__}")
    if len(value) > VALUE_BYTES_MAX:
        raise ValueError(f"state value must be at most {VALUE_BYTES_MAX} bytes, not {len(value)}")


class SparseMerkleTree:
    """Reads, updates and proves states stored as compact sparse Merkle trees.

    One instance serves any number of roots. Errors: ``TypeError``/``ValueError``
    for misuse (bad key, value or root argument); :class:`CorruptionError` when a
    node the walk needs is missing from the store, malformed, does not hash to
    its key (if ``verify_nodes``), or breaks the compact-tree shape.

    The cache holds only nodes decoded from the store (after verification) or
    handed back by :meth:`remember_persisted` once written, never nodes made by
    :meth:`update` that the caller may not have persisted, and
    never a failed or missing read, so it cannot hide corruption it has not yet
    seen. Nodes are content-addressed and never change, so a cached node stays
    correct for as long as the store keeps it (a future pruner must clear the
    cache).
    """

    def __init__(
        self,
        h: HashFn,
        nodes: NodeReader,
        *,
        verify_nodes: bool = True,
        cache_bytes_max: int = CACHE_BYTES_DEFAULT,
    ) -> None:
        if len(h(b"")) != HASH_BYTES:
            raise ValueError(f"the hash function must return {HASH_BYTES} bytes")
        if cache_bytes_max < 0:
            raise ValueError("cache_bytes_max must be >= 0")
        self._h = h
        self._nodes = nodes
        # A reader that overlays pending blocks' nodes says which those are (not cached).
        self._is_pending: Callable[[bytes], bool] | None = getattr(nodes, "is_pending", None)
        self._verify_nodes = verify_nodes
        # Internal nodes are cached as their record bytes (decoding is two slices) and
        # leaves as decoded objects. Held as a node object and a tuple each, ~100k cached
        # nodes took 40 % more memory and gave every full garbage collection 2 objects per
        # node to walk; bytes are not tracked by the collector.
        self._cache = _NodeCache(cache_bytes_max)
        self._superseded: set[bytes] | None = None  # collects for update() while it runs
        self._height = 0  # the height update() stores the nodes it makes at

    # -- node store access ------------------------------------------------

    def _load(self, node_hash: bytes, at: int | None) -> _Node:
        """The node ``node_hash``, stored at height ``at`` (None: a node of an older store)."""
        assert node_hash != EMPTY_ROOT, "EMPTY is never loaded"
        hit = self._cache.get(node_hash)
        if hit is not None:
            if type(hit) is bytes:
                return _Internal(hit)
            return hit  # type: ignore[return-value]
        record = self._nodes.get_node(node_hash, at)
        if record is None:
            where = "(an older store's)" if at is None else f"stored at height {at}"
            raise CorruptionError(f"state node {node_hash.hex()} {where} is missing from the "
                                  f"store")
        if not isinstance(record, bytes):
            raise CorruptionError(f"state node {node_hash.hex()} is not bytes")
        node = self._decode(node_hash, record)
        # Only persisted records are cached: their children's locations hold for ever, on
        # whatever path the same node appears. A pending block's record may point at
        # nodes that block alone made, at its height, and it may never be appended.
        if self._is_pending is None or not self._is_pending(node_hash):
            self._cache.put(node_hash, record if isinstance(node, _Internal) else node)
        return node

    def remember_persisted(
        self, nodes: Mapping[bytes, bytes], superseded: Iterable[bytes] = ()
    ) -> None:
        """Cache the internal nodes of an update once the caller has persisted them, and
        drop from the cache the ``superseded`` nodes that update replaced.

        The next block's update walks down through exactly these nodes; without this
        each would be read back from the store and re-hashed. Only internal records are
        taken (decoding them is slicing); they were made by :meth:`update`, so their
        hashes are right by construction. A superseded node is still in the store (it
        belongs to the older states) but no longer on any path of the new state, so
        holding it would only crowd live nodes out of the budget: with them dropped, a
        chain whose live tree fits half the budget reads no internal node from the store
        again (leaves that new keys split are still read once each).
        """
        self._cache.forget(superseded)
        self._cache.put_internals(nodes)

    def _decode(self, node_hash: bytes, record: bytes) -> _Node:
        where = f"state node {node_hash.hex()}"
        if record[:1] == _INTERNAL_TAG:
            if len(record) not in (_PREIMAGE_BYTES, _INTERNAL_BYTES):
                raise CorruptionError(f"{where}: internal record of {len(record)} bytes")
            node = _Internal(record)
            if node.left == EMPTY_ROOT and node.right == EMPTY_ROOT:
                raise CorruptionError(f"{where}: internal node with two EMPTY children")
            if self._verify_nodes and self._h(record[:_PREIMAGE_BYTES]) != node_hash:
                raise CorruptionError(f"{where}: record does not hash to its key")
            return node
        if record[:1] == _LEAF_TAG and len(record) >= 1 + _LEAF_HEADER.size:
            (key_len,) = _LEAF_HEADER.unpack_from(record, 1)
            start = 1 + _LEAF_HEADER.size
            key, value = record[start : start + key_len], record[start + key_len :]
            if not 1 <= key_len <= KEY_BYTES_MAX or len(key) != key_len:
                raise CorruptionError(f"{where}: leaf with bad key length {key_len}")
            if len(value) > VALUE_BYTES_MAX:
                raise CorruptionError(f"{where}: leaf value of {len(value)} bytes")
            key_hash = self._h(key)
            if not self._verify_nodes:
                return _Leaf(key, value, key_hash, None)
            value_hash = self._h(value)
            if self._h(_LEAF_TAG + key_hash + value_hash) != node_hash:
                raise CorruptionError(f"{where}: record does not hash to its key")
            return _Leaf(key, value, key_hash, value_hash)
        raise CorruptionError(f"{where}: unknown record type {record[:1].hex() or 'empty'}")

    def _load_child(self, node_hash: bytes, at: int | None, sibling: bytes, path: int,
                    depth: int) -> _Node:
        """Load the node at ``depth`` on ``path`` and check it fits the compact shape."""
        node = self._load(node_hash, at)
        if isinstance(node, _Leaf):
            if depth > 0 and sibling == EMPTY_ROOT:
                raise CorruptionError(f"state node {node_hash.hex()}: leaf beside EMPTY")
            if not _shares_prefix(int.from_bytes(node.key_hash), path, depth):
                raise CorruptionError(f"state node {node_hash.hex()}: leaf off its path")
        elif depth >= PATH_BITS:
            raise CorruptionError(f"state node {node_hash.hex()}: internal node at depth 256")
        return node

    # -- reads --------------------------------------------------------------

    def _walk(self, root: bytes, key: bytes, height: int | None
              ) -> tuple[bytes, int, list[bytes], _Leaf | None]:
        """Follow ``key``'s path from ``root``: (key_hash, depth, siblings, terminal leaf)."""
        _check_hash_arg("root", root)
        _check_key(key)
        key_hash = self._h(key)
        path = int.from_bytes(key_hash)
        siblings: list[bytes] = []
        node_hash, at, sibling = root, height, EMPTY_ROOT
        for depth in range(PATH_BITS + 1):
            if node_hash == EMPTY_ROOT:
                return key_hash, depth, siblings, None
            node = self._load_child(node_hash, at, sibling, path, depth)
            if isinstance(node, _Leaf):
                if node.key_hash == key_hash and node.key != key:
                    raise CorruptionError(f"leaf {node_hash.hex()}: key hash collision")
                return key_hash, depth, siblings, node
            if _bit(path, depth):
                node_hash, at, sibling = node.right, node.right_at, node.left
            else:
                node_hash, at, sibling = node.left, node.left_at, node.right
            siblings.append(sibling)
        raise AssertionError("unreachable: _load_child refuses internal nodes at depth 256")

    def get(self, root: bytes, key: bytes, height: int | None = None) -> bytes | None:
        """The value of ``key`` in the state ``root`` of block ``height``, or None if absent.

        ``height`` is where the root is stored: the block whose state it is (an update at
        height h stores its root there, changed or not). None: a root of an older store."""
        key_hash, _, _, leaf = self._walk(root, key, height)
        if leaf is None or leaf.key_hash != key_hash:
            return None
        return leaf.value

    def prove(self, root: bytes, key: bytes, height: int | None = None) -> StateProof:
        """A proof of ``key``'s value (or absence) in ``root`` (of block ``height``, as for
        :meth:`get`); see :func:`verify_state_proof`."""
        _, depth, siblings, leaf = self._walk(root, key, height)
        bitmap = 0
        present: list[bytes] = []
        for i, sibling in enumerate(siblings):
            if sibling != EMPTY_ROOT:
                bitmap |= 1 << (PATH_BITS - 1 - i)
                present.append(sibling)
        if leaf is None:
            return StateProof(present, bitmap.to_bytes(32), depth, None, None)
        value_hash = leaf.value_hash if leaf.value_hash is not None else self._h(leaf.value)
        return StateProof(present, bitmap.to_bytes(32), depth, leaf.key_hash, value_hash)

    def items(self, root: bytes, height: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the state ``root`` (of block ``height``, as for :meth:`get`),
        in key-hash order (for audits)."""
        _check_hash_arg("root", root)
        # Depth-first, left before right. The stack holds at most one pending
        # right sibling per depth, so it never exceeds 257 entries.
        stack: list[tuple[bytes, int | None, bytes, int, int]] = [
            (root, height, EMPTY_ROOT, 0, 0)]
        while stack:
            node_hash, at, sibling, depth, path = stack.pop()
            if node_hash == EMPTY_ROOT:
                continue
            node = self._load_child(node_hash, at, sibling, path, depth)
            if isinstance(node, _Leaf):
                yield node.key, node.value
                continue
            right_path = path | (1 << (PATH_BITS - 1 - depth))
            stack.append((node.right, node.right_at, node.left, depth + 1, right_path))
            stack.append((node.left, node.left_at, node.right, depth + 1, path))

    # -- updates ------------------------------------------------------------

    def update(
        self,
        root: bytes,
        changes: Mapping[bytes, bytes | None],
        superseded: set[bytes] | None = None,
        *,
        height: int = 0,
        root_height: int | None = None,
    ) -> tuple[bytes, dict[bytes, bytes]]:
        """Apply ``changes`` (None deletes) to ``root`` at once, as block ``height``.

        ``root`` is stored at ``root_height`` (the parent block's height; None: a root of
        an older store). Returns the new root and the nodes to persist at ``height``
        (hash -> record): every node this update created, except where a change left a
        position as it was (an overwrite with the same value, deleting an absent key) —
        and the new root in any case, so that the root of block h is always found at h,
        even when the block changed nothing. A returned node may already be in the store
        at another height; each copy's record is right where it is. If ``superseded`` is
        given, the hashes of the nodes of ``root``'s tree that the new tree no longer
        holds (internal nodes on changed paths, leaves of changed keys) are added to it,
        for :meth:`remember_persisted`. Raises TypeError/ValueError for a bad root, key or
        value before reading anything, and CorruptionError as described on the class.
        """
        _check_hash_arg("root", root)
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height < _NOWHERE:
            raise ValueError("height must be a non-negative int")
        batch: list[_Change] = []
        for key, value in changes.items():
            _check_key(key)
            _check_value(value)
            key_hash = self._h(key)
            batch.append((int.from_bytes(key_hash), key_hash, key, value))
        batch.sort(key=lambda change: change[0])
        for a, b in pairwise(batch):
            if a[0] == b[0]:
                raise ValueError(f"keys {a[2]!r} and {b[2]!r} have the same key hash")
        out: dict[bytes, bytes] = {}
        new_root, at = root, root_height
        if batch:
            self._superseded, self._height = superseded, height
            try:
                new_root, _, at = self._update(root, root_height, EMPTY_ROOT, 0, batch, 0,
                                               len(batch), out)
            finally:
                self._superseded = None
        if new_root != EMPTY_ROOT and new_root not in out:
            out[new_root] = self._record(self._load(new_root, at))
        return new_root, out

    def _record(self, node: _Node) -> bytes:
        """The record that stores ``node`` (with its children's locations) anew."""
        if isinstance(node, _Leaf):
            return _LEAF_TAG + _LEAF_HEADER.pack(len(node.key)) + node.key + node.value
        return _INTERNAL_TAG + node.left + node.right + _locations(node.left_at, node.right_at)

    def _update(
        self,
        node_hash: bytes,
        at: int | None,
        sibling: bytes,
        depth: int,
        batch: list[_Change],
        lo: int,
        hi: int,
        out: dict[bytes, bytes],
    ) -> _Subtree:
        """Apply ``batch[lo:hi]`` (non-empty, all under this position) to a subtree stored
        at ``at``."""
        if node_hash == EMPTY_ROOT:
            return self._build(depth, self._new_leaves(batch, lo, hi, None, out), out)
        path = batch[lo][0]
        record = self._cache.young.get(node_hash)
        if type(record) is bytes and depth < PATH_BITS:
            # The common case, inline: an internal node in the cache's young generation
            # (every block walks the same top of the tree), decoded into locals (what
            # _Internal does, without the object). _load_child does the same through three
            # more calls.
            left_hash, right_hash = record[1:33], record[33:65]
            if len(record) == _INTERNAL_BYTES:
                left_at, right_at = _LOCATIONS.unpack_from(record, _PREIMAGE_BYTES)
                if left_at == _NOWHERE:
                    left_at = None
                if right_at == _NOWHERE:
                    right_at = None
            else:  # a bare preimage (see _Internal)
                left_at = right_at = None
        else:
            node = self._load_child(node_hash, at, sibling, path, depth)
            if isinstance(node, _Leaf):
                return self._build(
                    depth, self._new_leaves(batch, lo, hi, (node_hash, node, at), out), out)
            left_hash, left_at, right_hash, right_at = (node.left, node.left_at, node.right,
                                                        node.right_at)
        shift = PATH_BITS - 1 - depth  # bisect as _right_half says, inline
        mid = bisect_left(batch, ((((path >> shift) | 1) << shift),), lo, hi)
        left: _Subtree = (left_hash, _UNKNOWN, left_at)
        right: _Subtree = (right_hash, _UNKNOWN, right_at)
        if lo < mid:
            left = self._update(left_hash, left_at, right_hash, depth + 1, batch, lo, mid, out)
        if mid < hi:
            right = self._update(right_hash, right_at, left_hash, depth + 1, batch, mid, hi,
                                 out)
        new_left, new_right = left[0], right[0]
        if new_left == left_hash and new_right == right_hash:
            return node_hash, _INTERNAL, at
        if self._superseded is not None:
            # A child changed, so this node's hash is gone from the new tree: no node can
            # sit at two positions, since every leaf below one commits to its own path.
            self._superseded.add(node_hash)
        if new_left != EMPTY_ROOT and new_right != EMPTY_ROOT:
            # Two children: a new internal node (what _join and _internal do, inline —
            # the step every changed level takes).
            preimage = _INTERNAL_TAG + new_left + new_right
            new_hash = self._h(preimage)
            new_left_at, new_right_at = left[2], right[2]
            out[new_hash] = preimage + _LOCATIONS.pack(
                _NOWHERE if new_left_at is None else new_left_at,
                _NOWHERE if new_right_at is None else new_right_at)
            return new_hash, _INTERNAL, self._height
        return self._join(left, right, out)

    def _join(self, left: _Subtree, right: _Subtree, out: dict[bytes, bytes]) -> _Subtree:
        """The subtree made of two child subtrees, hoisting a lone leaf."""
        if left[0] == EMPTY_ROOT or right[0] == EMPTY_ROOT:
            other_hash, kind, other_at = right if left[0] == EMPTY_ROOT else left
            if other_hash == EMPTY_ROOT:
                return EMPTY_ROOT, _EMPTY, None
            if kind == _UNKNOWN:
                kind = _LEAF if isinstance(self._load(other_hash, other_at), _Leaf) else _INTERNAL
            if kind == _LEAF:
                return other_hash, _LEAF, other_at
        return self._internal(left[0], left[2], right[0], right[2], out), _INTERNAL, self._height

    def _internal(self, left: bytes, left_at: int | None, right: bytes, right_at: int | None,
                  out: dict[bytes, bytes]) -> bytes:
        preimage = _INTERNAL_TAG + left + right
        node_hash = self._h(preimage)
        out[node_hash] = preimage + _locations(left_at, right_at)
        return node_hash

    def _new_leaves(
        self,
        batch: list[_Change],
        lo: int,
        hi: int,
        existing: tuple[bytes, _Leaf, int | None] | None,
        out: dict[bytes, bytes],
    ) -> list[_LeafRef]:
        """The leaves under a position that held EMPTY or the ``existing`` leaf (stored at
        the height it names).

        The existing leaf keeps its hash (and place) unless a change names its key. The
        result is sorted by path because ``batch`` is.
        """
        old_hash, old_path, old_key, old_at = b"", -1, b"", None
        if existing is not None:
            old_hash, old_leaf, old_at = existing
            old_path, old_key = int.from_bytes(old_leaf.key_hash), old_leaf.key
        leaves: list[_LeafRef] = []
        for path, key_hash, key, value in batch[lo:hi]:
            if old_path != -1 and old_path < path:
                leaves.append((old_path, old_hash, old_at))
                old_path = -1
            replaces = path == old_path
            if replaces:
                if key != old_key:
                    raise ValueError(f"keys {key!r} and {old_key!r} have the same key hash")
                old_path = -1
            if value is None:
                if replaces and self._superseded is not None:
                    self._superseded.add(old_hash)
                continue
            record = _LEAF_TAG + _LEAF_HEADER.pack(len(key)) + key + value
            leaf_hash = self._h(_LEAF_TAG + key_hash + self._h(value))
            if leaf_hash == old_hash:  # the same value again: the leaf stays where it is
                leaves.append((path, leaf_hash, old_at))
                continue
            out[leaf_hash] = record
            if replaces and self._superseded is not None:
                self._superseded.add(old_hash)
            leaves.append((path, leaf_hash, self._height))
        if old_path != -1:
            leaves.append((old_path, old_hash, old_at))
        return leaves

    def _build(self, depth: int, leaves: list[_LeafRef], out: dict[bytes, bytes]) -> _Subtree:
        """The compact subtree at ``depth`` holding exactly ``leaves`` (sorted by path)."""
        if not leaves:
            return EMPTY_ROOT, _EMPTY, None
        if len(leaves) == 1:
            return leaves[0][1], _LEAF, leaves[0][2]
        first, last = leaves[0][0], leaves[-1][0]
        split = PATH_BITS - (first ^ last).bit_length()  # first bit where the leaves differ
        assert depth <= split < PATH_BITS
        mid = bisect_left(leaves, (_right_half(first, split),))
        left, _, left_at = self._build(split + 1, leaves[:mid], out)
        right, _, right_at = self._build(split + 1, leaves[mid:], out)
        node_hash = self._internal(left, left_at, right, right_at, out)
        # All leaves share the bits from depth to split - 1: one internal node
        # per shared bit, each with an EMPTY sibling.
        here = self._height
        for d in range(split - 1, depth - 1, -1):
            if _bit(first, d):
                node_hash = self._internal(EMPTY_ROOT, None, node_hash, here, out)
            else:
                node_hash = self._internal(node_hash, here, EMPTY_ROOT, None, out)
        return node_hash, _INTERNAL, here


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_BYTES


def _check_proof_shape(proof: StateProof) -> tuple[list[bytes], int, int]:
    """Step 1 of the module docstring: (siblings, bitmap as int, depth) or ProofError."""
    siblings, bitmap, depth = proof.siblings, proof.bitmap, proof.depth
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= PATH_BITS:
        raise ProofError(f"proof depth must be an int in 0..{PATH_BITS}")
    if not isinstance(bitmap, bytes) or len(bitmap) != HASH_BYTES:
        raise ProofError(f"proof bitmap must be {HASH_BYTES} bytes")
    if not isinstance(siblings, list | tuple) or len(siblings) > depth:
        raise ProofError("proof siblings must be a list of at most `depth` hashes")
    for i, sibling in enumerate(siblings):
        if not _is_hash(sibling):
            raise ProofError(f"proof sibling {i} is not a {HASH_BYTES}-byte hash")
        if sibling == EMPTY_ROOT:
            raise ProofError(f"proof sibling {i} is EMPTY; EMPTY siblings are bitmap zeros")
    bits = int.from_bytes(bitmap)
    if bits & ((1 << (PATH_BITS - depth)) - 1):
        raise ProofError("proof bitmap has bits set at or after the proof depth")
    if bits.bit_count() != len(siblings):
        raise ProofError(
            f"proof bitmap marks {bits.bit_count()} siblings but {len(siblings)} are given"
        )
    return list(siblings), bits, depth


def verify_state_proof(
    h: HashFn, root: bytes, key: bytes, value: bytes | None, proof: StateProof
) -> None:
    """Check that ``key`` holds ``value`` (None: is absent) in the state ``root``.

    Pure; needs no database. Raises :class:`ProofError` saying what is wrong if
    the proof is malformed or does not verify (the steps, and why they are
    sufficient, are in the module docstring). ``h`` must be the chain's suite
    hash. ``key`` is the caller's own (a non-bytes key is a TypeError); ``value``
    often comes from the same untrusted answer as the proof, so a non-bytes
    value is a ProofError. Neither is size-checked.
    """
    if not _is_hash(root):
        raise ProofError(f"state root must be a {HASH_BYTES}-byte hash")
    if not isinstance(proof, StateProof):
        raise ProofError("not a StateProof")
    if value is not None and not isinstance(value, bytes):
        raise ProofError("the claimed value must be bytes or None")
    siblings, bits, depth = _check_proof_shape(proof)
    leaf_key_hash, leaf_value_hash = proof.leaf_key_hash, proof.leaf_value_hash
    is_leaf = leaf_key_hash is not None or leaf_value_hash is not None
    if is_leaf and not (_is_hash(leaf_key_hash) and _is_hash(leaf_value_hash)):
        raise ProofError("proof leaf hashes must both be 32-byte hashes or both be None")
    key_hash = h(key)
    path = int.from_bytes(key_hash)
    if value is not None:
        if not is_leaf:
            raise ProofError("proof shows the key is absent, but a value is claimed")
        if leaf_key_hash != key_hash:
            raise ProofError("proof leaf is for another key")
        if leaf_value_hash != h(value):
            raise ProofError("proof leaf holds a different value")
    elif is_leaf:
        assert leaf_key_hash is not None
        if leaf_key_hash == key_hash:
            raise ProofError("proof shows the key is present, but absence is claimed")
        if not _shares_prefix(int.from_bytes(leaf_key_hash), path, depth):
            raise ProofError("proof leaf is not on the key's path")
    if depth > 0 and not _bit(bits, depth - 1):
        raise ProofError("proof terminal has an EMPTY sibling; a compact tree has no such node")
    if depth == PATH_BITS and not is_leaf:
        raise ProofError("proof ends in EMPTY at depth 256; a compact tree has no such node")
    if is_leaf:
        assert leaf_key_hash is not None and leaf_value_hash is not None
        current = h(_LEAF_TAG + leaf_key_hash + leaf_value_hash)
    else:
        current = EMPTY_ROOT
    for d in range(depth - 1, -1, -1):
        sibling = siblings.pop() if _bit(bits, d) else EMPTY_ROOT
        if _bit(path, d):
            current = h(_INTERNAL_TAG + sibling + current)
        else:
            current = h(_INTERNAL_TAG + current + sibling)
    if current != root:
        raise ProofError("proof does not lead to the state root")
