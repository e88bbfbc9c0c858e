"""Property tests of the consensus core's pure parts (hypothesis).

- :func:`consensus.newview.select` is a function of a *set* of VIEW-CHANGEs and picks,
  height by height above the highest committed one, the highest-view prepared
  certificate while those link into a chain;
- the quorum arithmetic agrees with a deliberately naive version (raft
  ``quorum/quick_test.go`` style);
- the consensus message codec round-trips, rejects garbage only with DecodeError, and
  signs kinds apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.messages import (
    KINDS,
    Blocks,
    CertifiedBlock,
    Checkpoint,
    Commit,
    FetchBlocks,
    Message,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Status,
    TxGossip,
    ViewChange,
    decode_message,
    encode_message,
    encode_spliced,
    kind_of,
    signed_bytes,
    signing_bytes,
)
from consensus.newview import Selection, select
from ledger.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    Validator,
    ValidatorSet,
    commit_message,
    max_faulty,
    quorum_size,
)
from ledger.codec import INT_MAX, decode, decode_value, encode, encode_value, to_value
from ledger.errors import DecodeError
from ledger.tx import Transaction

# -- select: order independence and the highest-view rule --------------------------------------


def digest_of(block: Block) -> bytes:
    return hashlib.sha256(encode(block.header)).digest()


def committed_hash(height: int) -> bytes:
    """The block hash the generated commit certificate at ``height`` names."""
    return bytes([height]) * 32


def block_at(height: int, variant: int, txs: list[Transaction] | None = None,
             prev: bytes | None = None) -> Block:
    """A block per (height, variant, parent): distinct variants have distinct digests."""
    fill = bytes([variant]) * 32
    header = BlockHeader(height, fill if prev is None else prev, fill, fill, fill,
                         1000 + height, 0, b"p", fill)
    return Block(header, txs or [])


def pre_prepare(view: int, height: int, variant: int, prev: bytes | None = None) -> PrePrepare:
    # One pre-prepare per (view, height, digest), as an honest primary sends it.
    return PrePrepare(view, height, block_at(height, variant, prev=prev), b"p%d" % (view % 4),
                      b"s")


@st.composite
def view_change_sets(draw: st.DrawFn) -> list[ViewChange]:
    """Random VIEW-CHANGE sets: executed heights via last_cert, and runs of prepared
    certificates right above them (random views and variants; each block's parent mostly
    the block below it in the run — or the committed one — sometimes another, so runs
    that do not link occur too)."""
    count = draw(st.integers(min_value=1, max_value=7))
    executed = [draw(st.integers(min_value=0, max_value=5)) for _ in range(count)]
    out = []
    for sender, height in enumerate(executed):
        last_cert = (CommitCertificate(height, 0, committed_hash(height), [])
                     if height > 0 or draw(st.booleans()) else None)
        prepared = []
        prev = committed_hash(height)
        for at in range(height + 1, height + 1 + draw(st.integers(min_value=0, max_value=3))):
            if not draw(st.integers(min_value=0, max_value=5)):
                prev = committed_hash(draw(st.integers(min_value=0, max_value=7)))
            pp = pre_prepare(draw(st.integers(min_value=0, max_value=5)), at,
                             draw(st.integers(min_value=0, max_value=2)), prev)
            prepared.append(PreparedCert(pp, []))
            prev = digest_of(pp.block)
        stable = draw(st.integers(min_value=0, max_value=height))
        out.append(ViewChange(9, stable, [], last_cert, prepared, b"r%d" % sender, b""))
    return out


@given(st.data())
def test_select_does_not_depend_on_order(data: st.DataObject) -> None:
    """Goal: NEW-VIEW's content is a function of the set of VIEW-CHANGEs.
    Method: random sets (executed heights via last_cert, runs of prepared certificates
    with random views, digests and parents; unsigned), a random permutation; same
    Selection."""
    vcs = data.draw(view_change_sets())
    shuffled = data.draw(st.permutations(vcs))
    assert select(shuffled, digest_of) == select(vcs, digest_of)


@given(view_change_sets())
def test_select_picks_the_highest_view_certificates_above_the_committed_height(
        vcs: list[ViewChange]) -> None:
    """Goal: select follows the rule of PBFT.md / newview.py. Method: recompute it naively:
    committed = the highest last_cert height, stable = the highest stable height; then
    height by height from committed + 1 the certificate with the highest view (ties: the
    higher digest), for as long as there is one and its block's parent is the block chosen
    below it (the committed block's hash first)."""
    sel = select(vcs, digest_of)
    committed = max((vc.last_cert.height for vc in vcs if vc.last_cert is not None), default=0)
    assert sel.committed == committed
    assert sel.min_stable == max(vc.stable_height for vc in vcs)
    has_cert = any(vc.last_cert is not None and vc.last_cert.height == committed for vc in vcs)
    prev = committed_hash(committed) if has_cert else None
    expected: list[bytes] = []
    height = committed + 1
    while True:
        candidates = [c.pre_prepare for vc in vcs for c in vc.prepared
                      if c.pre_prepare.height == height]
        if not candidates:
            break
        top = max(pp.view for pp in candidates)
        best = max(digest_of(pp.block) for pp in candidates if pp.view == top)
        chosen = next(pp for pp in candidates if digest_of(pp.block) == best)
        if prev is not None and chosen.block.header.prev_hash != prev:
            break
        expected.append(best)
        prev = best
        height += 1
    assert list(sel.digests) == expected
    assert [digest_of(pp.block) for pp in sel.reproposals] == expected
    assert [pp.height for pp in sel.reproposals] == list(
        range(committed + 1, committed + 1 + len(expected)))
    if expected:
        assert sel.reproposal == sel.reproposals[0]
    else:
        assert sel == Selection(sel.min_stable, committed, (), ())


@given(view_change_sets())
def test_select_does_not_depend_on_order_when_certificates_tie(vcs: list[ViewChange]) -> None:
    """Goal: order independence also holds when two certificates agree on (view, digest) —
    what a Byzantine ex-primary can produce by signing a second pre-prepare for the same
    header with other transactions. Method: add two such certificates above everything
    else at committed + 1 and compare select on the list and on its reverse."""
    committed = max((vc.last_cert.height for vc in vcs if vc.last_cert is not None), default=0)
    tx = Transaction("unit", "evidence.anchor", {}, b"k", 0, 0, b"")
    genuine = PrePrepare(8, committed + 1, block_at(committed + 1, 0, [tx]), b"p0", b"s")
    hollow = PrePrepare(8, committed + 1, block_at(committed + 1, 0, []), b"p0", b"s")
    assert digest_of(genuine.block) == digest_of(hollow.block)
    twins = [ViewChange(9, 0, [], None, [PreparedCert(pp, [])], b"t%d" % i, b"")
             for i, pp in enumerate((genuine, hollow))]
    both_orders = [*vcs, *twins]
    assert select(both_orders, digest_of) == select(both_orders[::-1], digest_of)


# -- quorum arithmetic ------------------------------------------------------------------------


def naive_f(n: int) -> int:
    return max(f for f in range(n) if 3 * f + 1 <= n)


def naive_quorum(n: int) -> int:
    f = naive_f(n)
    # Two q-subsets of n members share at least 2q - n of them (and exactly that many at worst).
    return min(q for q in range(1, n + 1) if 2 * q - n >= f + 1)


def test_quorum_arithmetic_agrees_with_a_naive_version() -> None:
    """Goal: quorum_size/max_faulty are right for every set size a network could have.
    Method: exhaustively for n in 1..200 against the definitions: f = largest f with
    3f + 1 <= n; q = smallest q with any two q-subsets intersecting in >= f + 1; plus
    q <= n - f (the honest alone form a quorum) and q = 2f + 1 when n = 3f + 1."""
    for n in range(1, 201):
        f, q = naive_f(n), naive_quorum(n)
        assert max_faulty(n) == f, n
        assert quorum_size(n) == q, n
        assert q <= n - f, n
        if n == 3 * f + 1:
            assert q == 2 * f + 1, n
        vs = ValidatorSet([Validator(f"v{i}", i.to_bytes(2, "big"), "") for i in range(n)])
        assert (vs.f, vs.quorum) == (f, q), n


# -- message codec ------------------------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=INT_MAX)
u63 = st.integers(min_value=0, max_value=2**63 - 1)
h32 = st.binary(min_size=32, max_size=32)
keys = st.binary(min_size=1, max_size=40)
sigs = st.binary(max_size=72)
plain = st.none() | st.booleans() | u63 | st.text(max_size=8) | st.binary(max_size=8)

transactions = st.builds(
    Transaction,
    chain_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,15}\Z"),
    type=st.sampled_from(["evidence.anchor", "fiscal.pay_out", "sim.validators"]),
    payload=st.dictionaries(st.text(max_size=6), plain, max_size=3),
    sender=keys,
    nonce=u64,
    valid_until=u63,
    sig=sigs,
)
headers = st.builds(BlockHeader, height=u63, prev_hash=h32, tx_root=h32, result_root=h32,
                    state_root=h32, time=u63, view=u63, proposer=keys, validator_set_hash=h32)
blocks = st.builds(Block, header=headers, txs=st.lists(transactions, max_size=2))
certificates = st.builds(CommitCertificate, height=u63, view=u63, block_hash=h32,
                         signatures=st.lists(st.builds(CommitSignature, keys, sigs), max_size=3))
pre_prepares = st.builds(PrePrepare, view=u64, height=u64, block=blocks, sender=keys, sig=sigs)
prepares = st.builds(Prepare, view=u64, height=u64, digest=h32, sender=keys, sig=sigs)
commits = st.builds(Commit, view=u64, height=u64, digest=h32, sender=keys, sig=sigs)
checkpoints = st.builds(Checkpoint, height=u64, state_root=h32, digest=h32, sender=keys,
                        sig=sigs)
prepared_certs = st.builds(PreparedCert, pre_prepare=pre_prepares,
                           prepares=st.lists(prepares, max_size=2))
view_changes = st.builds(ViewChange, new_view=u64, stable_height=u64,
                         checkpoint_proof=st.lists(checkpoints, max_size=2),
                         last_cert=st.none() | certificates,
                         prepared=st.lists(prepared_certs, max_size=2),
                         sender=keys, sig=sigs)
messages: st.SearchStrategy[Message] = st.one_of(
    pre_prepares,
    prepares,
    commits,
    checkpoints,
    view_changes,
    st.builds(NewView, view=u64, view_changes=st.lists(view_changes, max_size=2),
              pre_prepares=st.lists(pre_prepares, max_size=2), sender=keys, sig=sigs),
    st.builds(Status, height=u64, view=u64, stable=u64, sender=keys, sig=sigs),
    st.builds(FetchBlocks, from_height=u64, to_height=u64, sender=keys, sig=sigs),
    st.builds(Blocks, blocks=st.lists(st.builds(CertifiedBlock, blocks, certificates),
                                      max_size=2), sender=keys, sig=sigs),
    st.builds(TxGossip, txs=st.lists(transactions, max_size=3), sender=keys, sig=sigs),
)


def test_every_message_kind_has_a_strategy() -> None:
    """Goal: the round-trip property below covers every kind. Method: compare the kinds."""
    assert set(KINDS) == {"pre_prepare", "prepare", "commit", "checkpoint", "view_change",
                          "new_view", "status", "fetch_blocks", "blocks", "tx_gossip"}


@settings(max_examples=300)
@given(messages)
def test_messages_round_trip_exactly(msg: Message) -> None:
    """Goal: decode(encode(m)) == m for every kind, and the bytes are canonical.
    Method: random instances of each message kind with small blocks."""
    data = encode_message(msg)
    back = decode_message(data)
    assert type(back) is type(msg) and back == msg
    assert encode_message(back) == data


@settings(max_examples=300)
@given(messages)
def test_spliced_message_encoding_equals_the_full_walk(msg: Message) -> None:
    """Goal: proposals, gossip and state-transfer answers, put together from their
    transactions' memoised bytes, encode to exactly the canonical bytes of the whole
    message (a node that spliced differently would sign and send other bytes).
    Method: compare encode_message with encode_value of the message's plain value, for
    random instances of every kind — once fresh and once decoded (memos filled)."""
    reference = encode_value({"kind": kind_of(msg), "msg": to_value(msg)})
    assert encode_message(msg) == reference
    assert encode_message(decode_message(reference)) == reference


@settings(max_examples=200)
@given(st.one_of(messages, prepared_certs))
def test_spliced_encoding_of_any_part_equals_encode(value: object) -> None:
    """Goal: what a replica persists (a proposal, its prepared certificate, a NEW-VIEW),
    assembled from memoised bytes, is exactly ``encode`` of it — a restarted replica
    decodes these records, and a different byte would change a digest.
    Method: encode_spliced against encode for random messages and prepared certificates,
    fresh and after a decode (memos filled from the received bytes)."""
    reference = encode(value)
    assert encode_spliced(value) == reference
    assert encode_spliced(decode(reference, type(value))) == reference


@settings(max_examples=200)
@given(st.lists(transactions, min_size=1, max_size=3))
def test_decoded_transactions_memoise_their_exact_bytes(txs: list[Transaction]) -> None:
    """Goal: a transaction decoded from the wire memoises the bytes it arrived as, and its
    body's bytes (what its id hashes and its signature covers) — a wrong memo would give
    it another id on this node than on the others.
    Method: decode random transactions alone and inside gossip; compare the memos with
    fresh encodings of equal, never-decoded transactions."""
    for tx in txs:
        fresh = Transaction(tx.chain_id, tx.type, tx.payload, tx.sender, tx.nonce,
                            tx.valid_until, tx.sig)
        back = decode(encode(fresh), Transaction)
        assert back.encoded() == encode(fresh)
        assert back.body_bytes() == encode_value(fresh.body())
    gossip = decode_message(encode_message(TxGossip(txs, b"relay")))
    assert isinstance(gossip, TxGossip)
    for tx, back in zip(txs, gossip.txs, strict=True):
        assert back.body_bytes() == encode_value(tx.body())
        assert back.encoded() == encode(tx)


def _decode_or_decode_error(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    assert encode_message(msg) == data


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    """Goal: arbitrary bytes from a peer never raise anything but DecodeError.
    Method: random byte strings."""
    _decode_or_decode_error(data)


values = st.recursive(plain, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=12)


@st.composite
def near_messages(draw: st.DrawFn) -> bytes:
    """Canonical maps that look like messages: a real or bogus kind, fields of a real kind
    with one field replaced, removed or added."""
    msg = draw(messages)
    fields_ = to_value(msg)
    assert isinstance(fields_, dict)
    name = draw(st.sampled_from(sorted(fields_)))
    action = draw(st.sampled_from(["replace", "remove", "add", "kind"]))
    kind = kind_of(msg)
    if action == "replace":
        fields_[name] = draw(values)
    elif action == "remove":
        del fields_[name]
    elif action == "add":
        fields_[draw(st.text(min_size=1, max_size=6))] = draw(values)
    else:
        kind = draw(st.sampled_from(sorted(KINDS)) | st.text(max_size=6))
    return encode_value({"kind": kind, "msg": fields_})


@settings(max_examples=300)
@given(near_messages())
def test_malformed_messages_raise_only_decode_error(data: bytes) -> None:
    """Goal: well-formed msgpack that is not a valid message (wrong kind, missing, extra or
    mistyped field) raises only DecodeError. Method: mutate the value of a real message."""
    _decode_or_decode_error(data)


@settings(max_examples=200)
@given(messages, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_corrupted_encodings_raise_only_decode_error(msg: Message, pos: int, byte: int) -> None:
    """Goal: a message corrupted in transit gives DecodeError or another canonical message.
    Method: overwrite one byte of a valid encoding."""
    data = bytearray(encode_message(msg))
    data[pos % len(data)] = byte
    _decode_or_decode_error(bytes(data))


@given(u64, u64, h32, keys)
def test_signing_bytes_separate_kinds(view: int, height: int, digest: bytes,
                                      sender: bytes) -> None:
    """Goal: a signature for one kind never verifies as another (the kind is signed).
    Method: messages of several kinds built from the same values have distinct signing
    bytes; and the exact field map of each, tagged with any other kind, gives other bytes."""
    msgs: list[Message] = [
        Prepare(view, height, digest, sender),
        Checkpoint(height, digest, digest, sender),
        Status(height, view, view, sender),
        FetchBlocks(view, height, sender),
        Blocks([], sender),
        TxGossip([], sender),
        NewView(view, [], [], sender),
    ]
    signed = [signing_bytes(m) for m in msgs]
    assert len(set(signed)) == len(signed)
    # A COMMIT signs its commit-certificate bytes under another domain tag than all of these.
    commit = Commit(view, height, digest, sender)
    assert signed_bytes(commit, "c") == ("commit", commit_message("c", view, height, digest))
    assert all(signed_bytes(m, "c") == ("pbft", signing_bytes(m)) for m in msgs)
    for m, sb in zip(msgs, signed, strict=True):
        body = decode_value(sb)
        assert isinstance(body, dict) and body["kind"] == kind_of(m)
        same_fields = {f.name: to_value(getattr(m, f.name)) for f in fields(m) if f.name != "sig"}
        for other in KINDS:
            if other != kind_of(m):
                assert encode_value({"kind": other, **same_fields}) != sb
