"""Property tests for ledger/state.py against a deliberately naive reference.

Every property runs with two hash functions: SHA-256, and a "deep" hash whose
outputs all share their first 160 bits, so that every key path runs down long
chains of internal nodes with EMPTY siblings and leaves sit below depth 160.
(It keeps 96 random bits: enough that these tests never meet a collision.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.state import EMPTY_ROOT, SparseMerkleTree, StateProof, verify_state_proof

HashFn = Callable[[bytes], bytes]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def deep(data: bytes) -> bytes:
    return b"\x5a" * 20 + hashlib.sha256(data).digest()[:12]


HASHES = pytest.mark.parametrize("h", [sha256, deep], ids=["sha256", "deep"])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.binary(min_size=1, max_size=3)
values = st.binary(max_size=8)
states = st.dictionaries(keys, values, max_size=40)
ops = st.lists(st.tuples(keys, st.none() | values), max_size=60)


def naive_root(h: HashFn, state: Mapping[bytes, bytes]) -> bytes:
    """The compact SMT root straight from its definition, one bit at a time."""
    leaves = [
        (format(int.from_bytes(h(k), "big"), "0256b"), h(b"\x00" + h(k) + h(v)))
        for k, v in state.items()
    ]

    def subtree(depth: int, items: list[tuple[str, bytes]]) -> bytes:
        if not items:
            return EMPTY_ROOT
        if len(items) == 1:
            return items[0][1]
        left = [item for item in items if item[0][depth] == "0"]
        right = [item for item in items if item[0][depth] == "1"]
        return h(b"\x01" + subtree(depth + 1, left) + subtree(depth + 1, right))

    return subtree(0, leaves)


class DictStore:
    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, node_hash: bytes, height: int | None = None) -> bytes | None:
        return self.nodes.get(node_hash)


def apply(
    tree: SparseMerkleTree, store: DictStore, root: bytes, changes: Mapping[bytes, bytes | None]
) -> bytes:
    new_root, nodes = tree.update(root, changes)
    store.nodes.update(nodes)
    return new_root


def build(h: HashFn, state: Mapping[bytes, bytes]) -> tuple[SparseMerkleTree, bytes]:
    store = DictStore()
    tree = SparseMerkleTree(h, store)
    return tree, apply(tree, store, EMPTY_ROOT, state)


def final_state(operations: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in operations:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


@HASHES
@SETTINGS
@given(state=states)
def test_root_matches_naive_reference(h: HashFn, state: dict[bytes, bytes]) -> None:
    """Goal: the batch algorithm computes the compact SMT defined in the docstring.
    Method: build the state in one update and compare with naive_root; also
    get/items must give back the state."""
    tree, root = build(h, state)
    assert root == naive_root(h, state)
    assert dict(tree.items(root)) == state
    for key, value in state.items():
        assert tree.get(root, key) == value


@HASHES
@SETTINGS
@given(operations=ops, cuts=st.lists(st.integers(0, 60), max_size=8), extra=states)
def test_root_is_independent_of_history(
    h: HashFn,
    operations: list[tuple[bytes, bytes | None]],
    cuts: list[int],
    extra: dict[bytes, bytes],
) -> None:
    """Goal: the root depends only on the final set of pairs.
    Method: reach the same final state by one batch, by single updates, by
    the operations cut into random batches, by inserting unrelated keys and
    deleting them again, and by inserting in reverse order; all roots must
    equal the naive root of the final state."""
    want = final_state(operations)
    expected = naive_root(h, want)
    store = DictStore()
    tree = SparseMerkleTree(h, store)

    assert apply(tree, store, EMPTY_ROOT, want) == expected

    root = EMPTY_ROOT
    for key, value in operations:
        root = apply(tree, store, root, {key: value})
    assert root == expected

    root = EMPTY_ROOT
    bounds = sorted({0, len(operations), *(c for c in cuts if c < len(operations))})
    for lo, hi in itertools.pairwise(bounds):
        batch: dict[bytes, bytes | None] = {}
        for key, value in operations[lo:hi]:
            batch[key] = value  # the last operation on a key wins, as in sequence
        root = apply(tree, store, root, batch)
    assert root == expected

    junk = {k: v for k, v in extra.items() if k not in want}
    root = apply(tree, store, EMPTY_ROOT, {**want, **junk})
    root = apply(tree, store, root, dict.fromkeys(junk))
    assert root == expected

    root = EMPTY_ROOT
    for key in reversed(list(want)):
        root = apply(tree, store, root, {key: want[key]})
    assert root == expected
    assert apply(tree, store, root, dict.fromkeys(want)) == EMPTY_ROOT


@HASHES
@SETTINGS
@given(state=states, probes=st.lists(keys, max_size=10), other=values)
def test_proofs_verify_exactly_the_truth(
    h: HashFn, state: dict[bytes, bytes], probes: list[bytes], other: bytes
) -> None:
    """Goal: a proof verifies the true claim and no false one.
    Method: for every present key, verify with its value, fail with another
    value and with absence; for absent probes, verify absence and fail with
    any value."""
    tree, root = build(h, state)
    for key, value in state.items():
        proof = tree.prove(root, key)
        verify_state_proof(h, root, key, value, proof)
        with pytest.raises(ProofError):
            verify_state_proof(h, root, key, None, proof)
        wrong = other if other != value else value + b"!"
        with pytest.raises(ProofError):
            verify_state_proof(h, root, key, wrong, proof)
    for key in probes:
        if key in state:
            continue
        proof = tree.prove(root, key)
        verify_state_proof(h, root, key, None, proof)
        with pytest.raises(ProofError):
            verify_state_proof(h, root, key, other, proof)


def flip(data: bytes, bit: int) -> bytes:
    return (int.from_bytes(data, "big") ^ (1 << bit)).to_bytes(len(data), "big")


def single_bit_flips(proof: StateProof) -> list[StateProof]:
    """Every proof that differs from ``proof`` in exactly one bit of one field."""
    out: list[StateProof] = []
    for i, sibling in enumerate(proof.siblings):
        for bit in range(256):
            siblings = list(proof.siblings)
            siblings[i] = flip(sibling, bit)
            out.append(dataclasses.replace(proof, siblings=siblings))
    out += [dataclasses.replace(proof, bitmap=flip(proof.bitmap, bit)) for bit in range(256)]
    out += [dataclasses.replace(proof, depth=proof.depth ^ (1 << bit)) for bit in range(12)]
    for field in ("leaf_key_hash", "leaf_value_hash"):
        value = getattr(proof, field)
        if value is not None:
            out += [
                dataclasses.replace(proof, **{field: flip(value, bit)})  # type: ignore[arg-type]
                for bit in range(256)
            ]
    return out


@HASHES
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states.filter(bool), probe=keys, use_present=st.booleans())
def test_every_single_bit_flip_is_rejected(
    h: HashFn, state: dict[bytes, bytes], probe: bytes, use_present: bool
) -> None:
    """Goal: no single-bit change to a valid proof still verifies, and each
    failure is a ProofError (never another exception).
    Method: take a membership proof (a present key) or a non-membership proof
    (the probe, if absent) and flip every bit of every field in turn."""
    tree, root = build(h, state)
    key = next(iter(state)) if use_present or probe in state else probe
    value = state.get(key)
    proof = tree.prove(root, key)
    verify_state_proof(h, root, key, value, proof)
    for bad in single_bit_flips(proof):
        with pytest.raises(ProofError):
            verify_state_proof(h, root, key, value, bad)


hashes32 = st.binary(min_size=32, max_size=32)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.builds(bytearray, st.binary(max_size=40)),
    st.lists(st.binary(max_size=33), max_size=4),
    st.tuples(),
)


@HASHES
@SETTINGS
@given(state=states.filter(bool), probe=keys, data=st.data())
def test_garbage_proofs_raise_only_proof_error(
    h: HashFn, state: dict[bytes, bytes], probe: bytes, data: st.DataObject
) -> None:
    """Goal: any StateProof at all yields ProofError or, if accepted, is the
    honest proof (so proofs cannot be forged or re-encoded).
    Method: each field is drawn from the honest value, a well-typed
    mutation of it (a subset or reordering of siblings, other bitmaps,
    depths, hashes) or junk of any type; the claimed value is the true one or
    not."""
    tree, root = build(h, state)
    key = data.draw(st.sampled_from([probe, *state]))
    honest = tree.prove(root, key)
    siblings = data.draw(
        st.one_of(
            st.just(honest.siblings),
            st.permutations(honest.siblings),
            st.lists(st.sampled_from([*honest.siblings, EMPTY_ROOT, h(b"x")]), max_size=6),
            st.lists(hashes32, max_size=4),
            junk,
        )
    )
    bitmap = data.draw(
        st.one_of(
            st.just(honest.bitmap),
            st.integers(0, 2**256 - 1).map(lambda b: b.to_bytes(32, "big")),
            hashes32,
            junk,
        )
    )
    depth = data.draw(
        st.one_of(st.just(honest.depth), st.integers(0, 256), st.integers(-3, 300), junk)
    )
    leaf_hashes = st.one_of(
        st.just(honest.leaf_key_hash),
        st.just(honest.leaf_value_hash),
        st.just(h(key)),
        st.none(),
        hashes32,
        junk,
    )
    proof = StateProof(siblings, bitmap, depth, data.draw(leaf_hashes), data.draw(leaf_hashes))
    value = data.draw(st.sampled_from([state.get(key), None, b"", b"other"]))
    try:
        verify_state_proof(h, root, key, value, proof)
    except ProofError:
        return
    assert value == state.get(key)
    assert list(proof.siblings) == honest.siblings
    assert (proof.bitmap, proof.depth) == (honest.bitmap, honest.depth)
    assert (proof.leaf_key_hash, proof.leaf_value_hash) == (
        honest.leaf_key_hash,
        honest.leaf_value_hash,
    )
