"""RFC 9162 (Certificate Transparency v2) §2.1 Merkle trees over an injected hash.

Theory of operation
===================

A list of ``n`` entries ``D[0:n]`` (transactions of a block, execution
results, ...) has one root hash, the Merkle Tree Hash (RFC 9162 §2.1.1)::

    MTH({})      = H(b"")                                    the empty tree
    MTH({d})     = H(0x00 || d)                              a leaf hash
    MTH(D[0:n])  = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))    n > 1, where k is
                                                             the largest power
                                                             of two < n

``H`` is injected (``HashFn``): SM3 for the default suite, SHA-256 for the
"intl" suite. It must return ``HASH_SIZE`` (32) bytes. The 0x00 / 0x01
prefixes keep a leaf from being passed off as an inner node.

The split rule makes the tree left-balanced: every node either covers a
perfect subtree (2^l leaves starting at a multiple of 2^l) or lies on the
right border (the path to the last leaf). Either way a node covering
``D[a:b]`` starts at a multiple of 2^l with ``l = ceil(log2(b - a))``.
Build the levels bottom up, hashing neighbours in pairs and carrying an
unpaired last node up unchanged, and entry ``a >> l`` of level ``l`` is exactly
that node. :class:`MerkleTree` keeps those levels (fewer than 2n hashes,
n - 1 hash calls to build); afterwards the root and every element of every
proof is one list lookup, so a proof costs O(log n) and no hashing.

The verifiers follow the RFC's iterative algorithms (§2.1.3.2, §2.1.4.2). They
first check bounds, hash lengths and the exact proof length, so anything
malformed or wrong from outside ends in a :class:`ProofError` whose message
says what is wrong, never in an ``IndexError`` or a silent success.

Proof formats
=============

A proof is an ordered list of hashes, each exactly 32 bytes, and nothing
else; the index, sizes and roots travel beside it (the codec encodes them).
Tree sizes are integers in ``0 .. TREE_SIZE_MAX`` (2^63 - 1, an int64), which
keeps every valid proof at most ``PROOF_LEN_MAX`` (64) hashes long; longer
lists are rejected before any work. ``A : B`` below appends.

Inclusion proof of leaf ``m`` in a tree of size ``n`` (``0 <= m < n``),
``PATH(m, D[0:n])``, RFC 9162 §2.1.3.1::

    PATH(0, {d})     = []
    PATH(m, D[0:n])  = PATH(m, D[0:k]) : MTH(D[k:n])         if m < k
                     = PATH(m - k, D[k:n]) : MTH(D[0:k])     if m >= k

The sibling next to the leaf comes first, the root's other child last. Its
length is ``inner + popcount(m >> inner)`` with
``inner = bit_length(m XOR (n - 1))``. To verify (leaf hash ``r``): set
``fn = m``, ``sn = n - 1``; for each proof hash ``p``: if ``fn`` is odd or
``fn == sn``, set ``r = H(0x01 || p || r)`` and, if ``fn`` is even, shift
``fn`` and ``sn`` right together until ``fn`` is odd or 0; otherwise set
``r = H(0x01 || r || p)``; then shift ``fn`` and ``sn`` right once. Accept iff
``sn == 0`` and ``r`` equals the root.

Consistency proof from size ``m`` to size ``n`` (``0 < m < n``),
``PROOF(m, D[0:n])``, RFC 9162 §2.1.4.1::

    PROOF(m, D[0:n])            = SUBPROOF(m, D[0:n], true)
    SUBPROOF(m, D[0:m], true)   = []
    SUBPROOF(m, D[0:m], false)  = [MTH(D[0:m])]
    SUBPROOF(m, D[0:n], b)      = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])          if m <= k
                                = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  if m > k

Its length is ``s + (inner - t) + popcount((m - 1) >> inner)`` with
``inner = bit_length((m - 1) XOR (n - 1))``, ``t`` the number of trailing
zero bits of ``m``, and ``s = 0`` if ``m`` is a power of two (the old root is
then a node of the new tree and is left out), else 1. To verify: if ``m`` is
a power of two, put the old root in front of the proof; set ``fn = m - 1``,
``sn = n - 1``; while ``fn`` is odd shift both right; set ``fr = sr =`` the
first hash; for each further hash ``c``: if ``fn`` is odd or ``fn == sn``,
set ``fr = H(0x01 || c || fr)``, ``sr = H(0x01 || c || sr)`` and, if ``fn`` is
even, shift both right until ``fn`` is odd or 0; otherwise set
``sr = H(0x01 || sr || c)``; then shift both right once. Accept iff
``sn == 0``, ``fr`` equals the old root and ``sr`` the new root.

Cases the RFC leaves open, decided here:

- ``m == n``: the proof must be empty and the two roots equal; for
  ``n == 0`` both must be ``H(b"")``.
- ``m == 0 < n``: rejected. Every tree extends the empty tree, so such a
  proof would say nothing; a caller holding no old tree has nothing to check.
- ``m > n``: rejected.

Equal sizes compare the roots as given, whatever their length: a root that
must be recomputed from a proof can only match a 32-byte value anyway.

A proof binds the index and sizes only through its shape, the sequence of
left/right steps: proof hashes do not say whether they are leaves or inner
nodes. The proof of leaf 0 in a 4-leaf tree also verifies as leaf 0 of a
3-leaf tree, and leaf 2 of 3 as leaf 1 of 2, against the same root; with
equal sizes any size passes. So the sizes must come from the same trusted
(signed) record as the roots, never from the prover alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from ledger.errors import ProofError

__all__ = [
    "HASH_SIZE",
    "PROOF_LEN_MAX",
    "TREE_SIZE_MAX",
    "HashFn",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HashFn: TypeAlias = Callable[[bytes], bytes]
"""A hash function returning ``HASH_SIZE`` bytes (SM3 or SHA-256)."""

HASH_SIZE = 32
TREE_SIZE_MAX = 2**63 - 1
# With sizes <= 2^63 - 1 a leaf is at most 63 levels deep, so an inclusion
# proof has at most 63 hashes and a consistency proof at most 63 + 1.
PROOF_LEN_MAX = 64

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(h: HashFn, entry: bytes) -> bytes:
    """MTH of the one-entry list ``[entry]``: ``H(0x00 || entry)``."""
    return h(_LEAF_PREFIX + entry)


def node_hash(h: HashFn, left: bytes, right: bytes) -> bytes:
    """Hash of an inner node: ``H(0x01 || left || right)``."""
    return h(_NODE_PREFIX + left + right)


def root_from_leaf_hashes(h: HashFn, leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the entries whose leaf hashes are given, in order (n - 1 hash calls)."""
    _check_leaf_hashes(leaf_hashes)
    if not leaf_hashes:
        return h(b"")
    level = list(leaf_hashes)
    while len(level) > 1:  # Halves every round: at most 63 rounds.
        level = _next_level(h, level)
    return level[0]


def root(h: HashFn, entries: Sequence[bytes]) -> bytes:
    """MTH of ``entries`` (RFC 9162 §2.1.1)."""
    return root_from_leaf_hashes(h, [leaf_hash(h, e) for e in entries])


class MerkleTree:
    """A tree built once over leaf hashes, serving its root and proofs without hashing.

    ``inclusion_proof`` and ``consistency_proof`` take indices and sizes that
    may come from a client's query, so out-of-range values raise
    :class:`ProofError`. Leaf hashes of the wrong length are our own bug and
    raise ``ValueError``.
    """

    __slots__ = ("_levels", "_root")

    def __init__(self, h: HashFn, leaf_hashes: Sequence[bytes]) -> None:
        _check_leaf_hashes(leaf_hashes)
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:  # Halves every round: at most 63 rounds.
            levels.append(_next_level(h, levels[-1]))
        self._levels = levels
        self._root = levels[-1][0] if leaf_hashes else h(b"")

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """MTH of all leaves; ``H(b"")`` for the empty tree."""
        return self._root

    def inclusion_proof(self, index: int) -> list[bytes]:
        """``PATH(index, D[0:size])``: the proof that leaf ``index`` is in this tree."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} is outside a tree of size {self.size}")
        path: list[bytes] = []
        lo, hi = 0, self.size
        while hi - lo > 1:  # Descends one level per round: at most 63 rounds.
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._node(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._node(lo, lo + k))
                lo += k
        path.reverse()  # Collected from the root down; the format is leaf first.
        return path

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """``PROOF(old_size, D[0:size])``: the proof that this tree extends its first
        ``old_size`` leaves. ``old_size == size`` gives ``[]``."""
        if not 1 <= old_size <= self.size:
            raise ProofError(
                f"old size {old_size} is outside 1..{self.size}: a consistency proof "
                f"goes from a non-empty tree to this one of size {self.size}"
            )
        proof: list[bytes] = []
        lo, hi, m = 0, self.size, old_size  # m counts the old leaves from lo.
        complete = True  # SUBPROOF's b: the subtree D[lo:lo+m] is the whole old tree.
        while m != hi - lo:  # Descends one level per round: at most 63 rounds.
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._node(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._node(lo, lo + k))
                lo += k
                m -= k
                complete = False
        if not complete:
            proof.append(self._node(lo, hi))
        proof.reverse()  # Collected from the root down; SUBPROOF puts the deepest first.
        return proof

    def _node(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a node of this tree, by lookup (see the module docstring)."""
        level = (end - start - 1).bit_length()
        assert start % (1 << level) == 0 and end == min(start + (1 << level), self.size)
        return self._levels[level][start >> level]


def verify_inclusion(
    h: HashFn, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with
    ``root`` (RFC 9162 §2.1.3.2). Raises :class:`ProofError` saying what is wrong."""
    _check_size("tree size", size)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes; a hash is {HASH_SIZE} bytes")
    _check_proof(proof)
    want = _inclusion_proof_len(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof has {_hashes(len(proof))}; leaf {index} of a tree of size {size} "
            f"needs exactly {want}"
        )
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        assert sn != 0  # The length check above rules out a proof that is too long.
        if fn & 1 or fn == sn:
            r = node_hash(h, p, r)
            while fn & 1 == 0 and fn != 0:  # At most 63 shifts.
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(h, r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0  # The length check above rules out a proof that is too short.
    if r != root:
        raise ProofError(f"inclusion proof does not lead to the root: {_mismatch(r, root)}")


def verify_consistency(
    h: HashFn, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the tree of
    ``size1`` leaves with ``root1`` (RFC 9162 §2.1.4.2). Raises :class:`ProofError`
    saying what is wrong."""
    _check_size("old size", size1)
    _check_size("new size", size2)
    if size1 > size2:
        raise ProofError(f"old size {size1} is larger than new size {size2}")
    _check_proof(proof)
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) but the proof is not empty")
        if size1 == 0 and root1 != h(b""):
            raise ProofError(
                f"sizes are 0 but root {_show(root1)} is not the empty-tree root {_show(h(b''))}"
            )
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        return
    if size1 == 0:
        raise ProofError(
            "old size is 0: every tree extends the empty tree, so a consistency proof "
            "from it proves nothing"
        )
    want = _consistency_proof_len(size1, size2)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof has {_hashes(len(proof))}; sizes {size1} -> {size2} "
            f"need exactly {want}"
        )
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # A power of two: the old root is a node of the new tree.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # At most 63 shifts.
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        assert sn != 0  # The length check above rules out a proof that is too long.
        if fn & 1 or fn == sn:
            fr = node_hash(h, c, fr)
            sr = node_hash(h, c, sr)
            while fn & 1 == 0 and fn != 0:  # At most 63 shifts.
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(h, sr, c)
        fn >>= 1
        sn >>= 1
    assert sn == 0  # The length check above rules out a proof that is too short.
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the old root: {_mismatch(fr, root1)}")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to the new root: {_mismatch(sr, root2)}")


def _next_level(h: HashFn, level: list[bytes]) -> list[bytes]:
    """Hash neighbours in pairs; an unpaired last node moves up unchanged."""
    up = [node_hash(h, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        up.append(level[-1])
    return up


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_proof_len(index: int, size: int) -> int:
    """Length of PATH(index, D[0:size]) for 0 <= index < size.

    Below the level where the paths to ``index`` and to the last leaf part, the
    path has one sibling per level (``inner``); above it, on the right border,
    only the levels where ``index`` has a left sibling count.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_len(size1: int, size2: int) -> int:
    """Length of PROOF(size1, D[0:size2]) for 0 < size1 < size2.

    The proof is the inclusion path of leaf ``size1 - 1`` cut at the level of the
    largest perfect subtree ending at ``size1`` (``shift``), plus that subtree's
    hash unless it is the whole old tree.
    """
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner - shift + border


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if len(leaf_hashes) > TREE_SIZE_MAX:
        raise ValueError(f"{len(leaf_hashes)} leaves exceed TREE_SIZE_MAX")
    for i, lh in enumerate(leaf_hashes):
        if len(lh) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} is {len(lh)} bytes; a hash is {HASH_SIZE} bytes")


def _check_size(name: str, size: int) -> None:
    if size < 0:
        raise ProofError(f"{name} is {size}; a tree size cannot be negative")
    if size > TREE_SIZE_MAX:
        raise ProofError(f"{name} is {size}; the largest tree size is 2**63 - 1")


def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > PROOF_LEN_MAX:
        raise ProofError(
            f"proof has {_hashes(len(proof))}; no valid proof has more than {PROOF_LEN_MAX}"
        )
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(p)} bytes; a hash is {HASH_SIZE} bytes")


def _hashes(count: int) -> str:
    return "1 hash" if count == 1 else f"{count} hashes"


def _mismatch(computed: bytes, expected: bytes) -> str:
    return f"computed {_show(computed)}, expected {_show(expected)}"


def _show(value: bytes) -> str:
    text = value[:8].hex() + ("..." if len(value) > 8 else "")
    return text if len(value) == HASH_SIZE else f"{text} ({len(value)} bytes)"
