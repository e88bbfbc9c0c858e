"""Property tests for ledger.merkle against a naive reference written from RFC 9162 §2.1.

The reference below is deliberately simple and slow: recursion straight from
the RFC's definitions of MTH, PATH and PROOF, with no bit tricks. PATH and
PROOF are written over node ranges ``(lo, hi)``, meaning MTH(D[lo:hi]), so the
same definitions give both the proofs and a reference verifier: a proof
names the nodes PATH / PROOF would contain, and the reference verifier
recomputes the roots from those nodes by the definition of MTH.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.merkle import (
    TREE_SIZE_MAX,
    MerkleTree,
    _consistency_proof_len,
    _inclusion_proof_len,
    leaf_hash,
    root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SIZE_MAX = 70
Node = tuple[int, int]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- The naive reference ----------------------------------------------------


def ref_split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]), RFC 9162 §2.1.1."""
    if not entries:
        return sha256(b"")
    if len(entries) == 1:
        return sha256(b"\x00" + entries[0])
    k = ref_split(len(entries))
    return sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path_nodes(m: int, lo: int, hi: int) -> list[Node]:
    """The nodes of PATH(m, D[lo:hi]) (m counted from lo), RFC 9162 §2.1.3.1."""
    if hi - lo == 1:
        return []
    k = ref_split(hi - lo)
    if m < k:
        return [*ref_path_nodes(m, lo, lo + k), (lo + k, hi)]
    return [*ref_path_nodes(m - k, lo + k, hi), (lo, lo + k)]


def ref_subproof_nodes(m: int, lo: int, hi: int, b: bool) -> list[Node]:
    """The nodes of SUBPROOF(m, D[lo:hi], b) (m counted from lo), RFC 9162 §2.1.4.1."""
    if m == hi - lo:
        return [] if b else [(lo, hi)]
    k = ref_split(hi - lo)
    if m <= k:
        return [*ref_subproof_nodes(m, lo, lo + k, b), (lo + k, hi)]
    return [*ref_subproof_nodes(m - k, lo + k, hi, False), (lo, lo + k)]


def ref_proof_nodes(m: int, n: int) -> list[Node]:
    """The nodes of PROOF(m, D[0:n])."""
    return ref_subproof_nodes(m, 0, n, True)


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    return [ref_mth(entries[a:b]) for a, b in ref_path_nodes(m, 0, len(entries))]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    return [ref_mth(entries[a:b]) for a, b in ref_proof_nodes(m, len(entries))]


def ref_mth_from(known: dict[Node, bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the definition, taking the hash of any node in ``known`` as given."""
    if (lo, hi) in known:
        return known[(lo, hi)]
    assert hi - lo > 1, f"the proof's nodes do not cover leaf {lo}"
    k = ref_split(hi - lo)
    return sha256(b"\x01" + ref_mth_from(known, lo, lo + k) + ref_mth_from(known, lo + k, hi))


def ref_inclusion_ok(index: int, size: int, leaf: bytes, proof: list[bytes], rt: bytes) -> bool:
    """Does ``proof`` show ``leaf`` at ``index`` in the tree of ``size`` with root ``rt``?"""
    if not 0 <= index < size:
        return False
    nodes = ref_path_nodes(index, 0, size)
    if len(nodes) != len(proof):
        return False
    known = dict(zip(nodes, proof, strict=True))
    known[(index, index + 1)] = leaf
    return ref_mth_from(known, 0, size) == rt


def ref_consistency_ok(m: int, n: int, root1: bytes, root2: bytes, proof: list[bytes]) -> bool:
    """Does ``proof`` show that the tree (n, root2) extends the tree (m, root1)?"""
    if m == n:
        return not proof and root1 == root2 and (n > 0 or root1 == sha256(b""))
    if not 0 < m < n:
        return False
    nodes = ref_proof_nodes(m, n)
    if len(nodes) != len(proof):
        return False
    known = dict(zip(nodes, proof, strict=True))
    old_known = dict(known)
    if sum(b - a for a, b in nodes) < n:  # PROOF left out MTH(D[0:m]): it is root1.
        known[(0, m)] = old_known[(0, m)] = root1
    return ref_mth_from(old_known, 0, m) == root1 and ref_mth_from(known, 0, n) == root2


# --- Strategies and helpers -------------------------------------------------

entry_lists = st.lists(st.binary(max_size=6), max_size=SIZE_MAX)
unique_entry_lists = st.lists(st.binary(max_size=6), min_size=2, max_size=SIZE_MAX, unique=True)


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def leaves_of(entries: list[bytes]) -> list[bytes]:
    return [leaf_hash(sha256, e) for e in entries]


def inclusion_verdict(index: int, size: int, leaf: bytes, proof: list[bytes], rt: bytes) -> bool:
    try:
        verify_inclusion(sha256, index, size, leaf, proof, rt)
    except ProofError:
        return False
    return True


def consistency_verdict(m: int, n: int, root1: bytes, root2: bytes, proof: list[bytes]) -> bool:
    try:
        verify_consistency(sha256, m, n, root1, root2, proof)
    except ProofError:
        return False
    return True


# --- Exhaustive over small sizes --------------------------------------------

FIXED_ENTRIES = [i.to_bytes(2, "big") for i in range(SIZE_MAX + 1)]


@pytest.mark.parametrize("size", range(SIZE_MAX + 1))
def test_every_proof_of_every_small_tree_matches_reference(size: int) -> None:
    """Goal: for every size 0..70, the root and every proof equal the reference and verify.

    Method: build the tree over fixed distinct entries; compare the root, each
    PATH(m) and each PROOF(m) with the naive reference, check the length
    formulas against the reference's node counts, and verify every proof.
    """
    entries = FIXED_ENTRIES[:size]
    tree = MerkleTree(sha256, leaves_of(entries))
    assert tree.size == size
    assert tree.root == ref_mth(entries) == root(sha256, entries)
    for m in range(size):
        path = tree.inclusion_proof(m)
        assert path == ref_path(m, entries)
        assert len(path) == _inclusion_proof_len(m, size)
        verify_inclusion(sha256, m, size, leaf_hash(sha256, entries[m]), path, tree.root)
    for m in range(1, size + 1):
        proof = tree.consistency_proof(m)
        assert proof == ref_proof(m, entries)
        if m < size:
            assert len(proof) == _consistency_proof_len(m, size)
        verify_consistency(sha256, m, size, ref_mth(entries[:m]), tree.root, proof)


# --- Random trees -----------------------------------------------------------


@settings(deadline=None)
@given(entries=entry_lists)
def test_root_matches_reference(entries: list[bytes]) -> None:
    """Goal: the three ways to compute a root agree with the reference MTH.

    Method: random entry lists of 0..70 entries (duplicates and empty entries allowed).
    """
    want = ref_mth(entries)
    leaves = leaves_of(entries)
    assert root(sha256, entries) == want
    assert root_from_leaf_hashes(sha256, leaves) == want
    assert MerkleTree(sha256, leaves).root == want


@settings(deadline=None)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_inclusion_proof_matches_reference_and_verifies(
    entries: list[bytes], data: st.DataObject
) -> None:
    """Goal: a random leaf's inclusion proof equals PATH and verifies.

    Method: random entries, random index; compare with the reference, then verify.
    """
    index = data.draw(st.integers(0, len(entries) - 1), label="index")
    tree = MerkleTree(sha256, leaves_of(entries))
    proof = tree.inclusion_proof(index)
    assert proof == ref_path(index, entries)
    verify_inclusion(
        sha256, index, len(entries), leaf_hash(sha256, entries[index]), proof, tree.root
    )


@settings(deadline=None)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_consistency_proof_matches_reference_and_verifies(
    entries: list[bytes], data: st.DataObject
) -> None:
    """Goal: a random consistency proof equals PROOF and verifies.

    Method: random entries, random old size in 1..n; compare with the reference,
    then verify against the old tree's root computed by the reference.
    """
    n = len(entries)
    m = data.draw(st.integers(1, n), label="old size")
    tree = MerkleTree(sha256, leaves_of(entries))
    proof = tree.consistency_proof(m)
    assert proof == ref_proof(m, entries)
    verify_consistency(sha256, m, n, ref_mth(entries[:m]), tree.root, proof)


# --- Tampering --------------------------------------------------------------


@settings(deadline=None)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_any_bit_flip_breaks_an_inclusion_proof(entries: list[bytes], data: st.DataObject) -> None:
    """Goal: flipping any one bit of a proof hash, the leaf hash or the root is caught.

    Method: random tree and leaf; pick a target (one proof hash, the leaf hash
    or the root) and a bit in it; flip it and expect ProofError.
    """
    n = len(entries)
    index = data.draw(st.integers(0, n - 1), label="index")
    tree = MerkleTree(sha256, leaves_of(entries))
    proof = tree.inclusion_proof(index)
    leaf = leaf_hash(sha256, entries[index])
    rt = tree.root
    target = data.draw(st.sampled_from(["leaf", "root", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    event(f"target {'proof' if isinstance(target, int) else target}")
    if target == "leaf":
        leaf = flip(leaf, bit)
    elif target == "root":
        rt = flip(rt, bit)
    else:
        assert isinstance(target, int)
        proof[target] = flip(proof[target], bit)
    with pytest.raises(ProofError):
        verify_inclusion(sha256, index, n, leaf, proof, rt)


@settings(deadline=None)
@given(entries=entry_lists, data=st.data())
def test_any_bit_flip_breaks_a_consistency_proof(entries: list[bytes], data: st.DataObject) -> None:
    """Goal: flipping any one bit of a proof hash or of either root is caught.

    Method: random tree of 0..70 entries and old size (0 only with an empty
    tree, where the proof is the trivial equal-sizes one); pick a target and a
    bit; flip it and expect ProofError.
    """
    n = len(entries)
    m = data.draw(st.integers(min(1, n), n), label="old size")
    tree = MerkleTree(sha256, leaves_of(entries))
    proof = tree.consistency_proof(m) if m else []
    root1, root2 = ref_mth(entries[:m]), tree.root
    target = data.draw(st.sampled_from(["root1", "root2", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == "root1":
        root1 = flip(root1, bit)
    elif target == "root2":
        root2 = flip(root2, bit)
    else:
        assert isinstance(target, int)
        proof[target] = flip(proof[target], bit)
    with pytest.raises(ProofError):
        verify_consistency(sha256, m, n, root1, root2, proof)


@settings(deadline=None)
@given(entries=unique_entry_lists, data=st.data())
def test_wrong_index_breaks_an_inclusion_proof(entries: list[bytes], data: st.DataObject) -> None:
    """Goal: a proof for leaf i never passes as a proof for another index.

    Method: distinct entries (with duplicates, another index can hold the same
    leaf and the proof is then rightly valid for it); verify leaf i's proof
    with a different index, in or out of range, and expect ProofError.
    """
    n = len(entries)
    index = data.draw(st.integers(0, n - 1), label="index")
    wrong = data.draw(st.integers(-3, n + 3).filter(lambda j: j != index), label="wrong index")
    tree = MerkleTree(sha256, leaves_of(entries))
    leaf = leaf_hash(sha256, entries[index])
    with pytest.raises(ProofError):
        verify_inclusion(sha256, wrong, n, leaf, tree.inclusion_proof(index), tree.root)


@settings(deadline=None)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_wrong_tree_size_in_inclusion_agrees_with_reference(
    entries: list[bytes], data: st.DataObject
) -> None:
    """Goal: a proof checked with a wrong tree size is rejected exactly when RFC 9162 rejects it.

    Method: verify leaf i's proof under a different size. A different size
    usually changes the proof's shape and must fail; but when PATH(i) has the
    same shape under both sizes (e.g. leaf 0 of 4 and of 3) the proof is
    equally valid for the other size by the RFC's definitions, because
    proof hashes do not say whether they are leaves or inner nodes. So the
    verdict must equal the reference verifier's, and any rejection is a ProofError.
    """
    n = len(entries)
    index = data.draw(st.integers(0, n - 1), label="index")
    wrong = data.draw(st.integers(-2, 2 * n + 2).filter(lambda s: s != n), label="wrong size")
    tree = MerkleTree(sha256, leaves_of(entries))
    leaf = leaf_hash(sha256, entries[index])
    proof = tree.inclusion_proof(index)
    verdict = inclusion_verdict(index, wrong, leaf, proof, tree.root)
    event(f"wrong size accepted: {verdict}")
    assert verdict == ref_inclusion_ok(index, wrong, leaf, proof, tree.root)


@settings(deadline=None)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_wrong_sizes_in_consistency_agree_with_reference(
    entries: list[bytes], data: st.DataObject
) -> None:
    """Goal: a consistency proof checked with wrong sizes is rejected exactly when RFC 9162 is.

    Method: take PROOF(m, D[n]) and the true roots, change one or both sizes
    (including to 0, negative, or m > n) and compare the verdict with the
    reference verifier; as with inclusion, a different size pair with the
    same proof shape is accepted by the definitions themselves.
    """
    n = len(entries)
    m = data.draw(st.integers(1, n), label="old size")
    tree = MerkleTree(sha256, leaves_of(entries))
    proof = tree.consistency_proof(m)
    root1, root2 = ref_mth(entries[:m]), tree.root
    sizes = st.integers(-2, 2 * n + 2)
    m2, n2 = data.draw(st.tuples(sizes, sizes).filter(lambda p: p != (m, n)), label="sizes")
    verdict = consistency_verdict(m2, n2, root1, root2, proof)
    event(f"wrong sizes accepted: {verdict}")
    assert verdict == ref_consistency_ok(m2, n2, root1, root2, proof)


# --- Length bounds ----------------------------------------------------------


@given(data=st.data())
def test_proof_lengths_never_exceed_the_cap(data: st.DataObject) -> None:
    """Goal: for every allowed size, the exact proof length is within PROOF_LEN_MAX.

    Method: random sizes up to 2^63 - 1, biased to the top of the range; the
    inclusion length must be at most 63 and the consistency length at most 64.
    """
    n = data.draw(st.integers(2, TREE_SIZE_MAX) | st.integers(TREE_SIZE_MAX - 2**20, TREE_SIZE_MAX))
    index = data.draw(st.integers(0, n - 1) | st.integers(0, 2**10).map(lambda i: min(i, n - 1)))
    m = data.draw(st.integers(1, n - 1) | st.integers(1, 2**10).map(lambda i: min(i, n - 1)))
    assert _inclusion_proof_len(index, n) <= 63
    assert _consistency_proof_len(m, n) <= 64
