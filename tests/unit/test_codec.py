"""Canonical codec: exact bytes, strict decoding, typed conversion, JSON view."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import pytest

from ledger.codec import (
    MAX_DEPTH,
    Value,
    decode,
    decode_value,
    encode,
    encode_value,
    from_json,
    from_value,
    to_json,
)
from ledger.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Inner:
    name: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class Outer:
    amount: int
    inner: Inner
    items: list[int]
    note: str | None
    extra: dict[str, Value]
    flag: bool = False


def sample() -> Outer:
    return Outer(amount=1_000_000, inner=Inner("市场监督管理局", b"\x00\xff"), items=[1, 2, 3],
                  note=None, extra={"b": 1, "a": [b"x", None]}, flag=True)


def test_map_keys_are_sorted_and_bytes_are_exact() -> None:
    """Goal: one value has one encoding. Method: compare with hand-written msgpack bytes."""
    assert encode_value({"b": 1, "a": 2}) == b"\x82\xa1a\x02\xa1b\x01"
    assert encode_value(b"\x01") == b"\xc4\x01\x01"  # bin, not str
    assert encode_value("é") == b"\xa2\xc3\xa9"


def test_dataclass_round_trip() -> None:
    """Goal: typed objects survive encode/decode. Method: round trip a nested dataclass."""
    obj = sample()
    assert decode(encode(obj), Outer) == obj


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x82\xa1b\x01\xa1a\x02", "canonical"),  # unsorted keys
        (b"\x82\xa1a\x01\xa1a\x02", "canonical"),  # duplicate key
        (b"\xcc\x05", "canonical"),  # 5 as uint8 instead of fixint
        (b"\x01\x02", "trailing"),
        (b"\xcb" + b"\x00" * 8, "float"),
        (b"\xd4\x01\x00", "extension"),
        (b"\x81\x01\x02", "key"),  # integer map key
        (b"\xa2\xff\xfe", "UTF-8"),
        (b"\x92\x01", "msgpack"),  # truncated array
        (b"", "empty"),
    ],
)
def test_non_canonical_and_malformed_input_is_rejected(data: bytes, why: str) -> None:
    """Goal: decoding rejects every alternative or broken spelling with a clear reason.
    Method: feed known-bad byte strings and check the message names the problem."""
    with pytest.raises(DecodeError, match=why):
        decode_value(data)


def test_size_and_depth_limits() -> None:
    """Goal: oversized or deeply nested input is refused before it costs much.
    Method: a message one byte over the limit, and nesting one past MAX_DEPTH."""
    blob = encode_value(b"x" * 100)
    with pytest.raises(DecodeError, match="exceeds"):
        decode_value(blob, max_size=len(blob) - 1)
    deep: Value = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    raw = msgpack.packb(deep)
    with pytest.raises(DecodeError, match="deeper"):
        decode_value(raw)


def test_integers_are_bounded_and_floats_refused_on_encode() -> None:
    """Goal: only 64-bit integers, never floats, can be encoded. Method: boundary values."""
    assert decode_value(encode_value(2**64 - 1)) == 2**64 - 1
    assert decode_value(encode_value(-(2**63))) == -(2**63)
    with pytest.raises(DecodeError, match="64-bit"):
        encode_value(2**64)
    with pytest.raises(DecodeError, match="float"):
        encode_value({"amount": 1.5})  # type: ignore[dict-item]


def test_typed_decode_names_the_bad_field() -> None:
    """Goal: a client learns which field is wrong. Method: wrong type, missing, unknown field."""
    good = {"amount": 1, "inner": {"name": "n", "blob": b""}, "items": [], "note": None,
            "extra": {}, "flag": False}
    bad_type = dict(good, amount="1")
    with pytest.raises(DecodeError, match=r"\$\.amount: expected int, got str"):
        decode(encode_value(bad_type), Outer)  # type: ignore[arg-type]
    missing = {k: v for k, v in good.items() if k != "items"}
    with pytest.raises(DecodeError, match="missing field 'items'"):
        decode(encode_value(missing), Outer)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="unknown field"):
        decode(encode_value(dict(good, zzz=1)), Outer)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match=r"\$\.inner\.blob: expected bytes"):
        decode(encode_value(dict(good, inner={"name": "n", "blob": "x"})), Outer)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="expected bool"):
        decode(encode_value(dict(good, flag=1)), Outer)  # type: ignore[arg-type]


def test_json_view_round_trips_with_hex_bytes() -> None:
    """Goal: JSON is a faithful view for typed objects. Method: to_json then from_json."""
    obj = Outer(amount=5, inner=Inner("a", b"\xde\xad"), items=[1], note="x", extra={"k": "v"})
    text = to_json(obj)
    assert '"dead"' in text
    assert from_json(Outer, text) == obj
    with pytest.raises(DecodeError, match="float"):
        from_json(Outer, text.replace('"amount": 5', '"amount": 5.5'))
    with pytest.raises(DecodeError, match="not valid JSON"):
        from_json(Outer, "{")
    with pytest.raises(DecodeError, match="hex"):
        from_json(Outer, text.replace('"dead"', '"zz"'))


# --- the fast paths agree with the plain definition of the encoding --------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


def reference_encoding(value: object) -> bytes:
    """SPEC's definition, written the slow, obvious way: maps sorted by UTF-8 key bytes."""
    def canon(v: object) -> object:
        if isinstance(v, dict):
            return {k: canon(v[k]) for k in sorted(v, key=lambda s: s.encode("utf-8"))}
        if isinstance(v, list):
            return [canon(x) for x in v]
        return v

    return msgpack.packb(canon(value), use_bin_type=True)


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_encoding_matches_the_reference_and_round_trips(value: object) -> None:
    """Goal: the optimised encoder writes exactly the specified bytes (keys in UTF-8 byte
    order, including non-ASCII keys) and the decoder accepts them back unchanged.
    Method: hypothesis values against a slow reference encoder."""
    data = encode_value(value)  # type: ignore[arg-type]
    assert data == reference_encoding(value)
    assert decode_value(data) == value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 9), min_size=2, max_size=5))
def test_any_other_key_order_is_rejected(value: dict[str, int]) -> None:
    """Goal: decoding rejects every spelling but the canonical one. Method: pack the map's
    keys in reverse canonical order (always different for ≥ 2 keys) and decode."""
    keys = sorted(value, key=lambda s: s.encode("utf-8"), reverse=True)
    data = msgpack.packb({k: value[k] for k in keys}, use_bin_type=True)
    with pytest.raises(DecodeError, match="canonical"):
        decode_value(data)


def test_errors_name_the_path_through_nested_types() -> None:
    """Goal: a bad item deep inside a typed value is named by its full path, whatever
    shortcut the decoder takes. Method: break a list item, a map value and a nested field."""
    good = {"amount": 1, "inner": {"name": "n", "blob": b""}, "items": [1, 2], "note": None,
            "extra": {}, "flag": False}
    with pytest.raises(DecodeError, match=r"^\$\.items\[1\]: expected int, got str$"):
        decode(encode_value({**good, "items": [1, "2"]}), Outer)
    with pytest.raises(DecodeError, match=r"^\$\.inner\.blob: expected bytes, got str$"):
        decode(encode_value({**good, "inner": {"name": "n", "blob": "x"}}), Outer)
    with pytest.raises(DecodeError, match=r"^\$\.inner: missing field 'blob'$"):
        decode(encode_value({**good, "inner": {"name": "n"}}), Outer)
    with pytest.raises(DecodeError, match=r"^\$\.note: expected str, got int$"):
        decode(encode_value({**good, "note": 5}), Outer)
    with pytest.raises(DecodeError, match=r"^\$: unknown field\(s\) zz$"):
        decode(encode_value({**good, "zz": 1}), Outer)
    with pytest.raises(DecodeError, match=r"^\$\.extra\.k\[0\]: floats are not allowed"):
        from_value(Outer, {**good, "extra": {"k": [1.5]}})
    with pytest.raises(DecodeError, match=r"^\$\.extra\.k: floats are not allowed"):
        encode(Outer(1, Inner("n", b""), [], None, {"k": 1.5}))  # type: ignore[dict-item]


def test_a_transaction_decoded_twice_is_the_same_object_only_when_equal() -> None:
    """Goal: the second decode of a transaction (gossip, then the proposal) reuses the first
    object — with its memoised id — but never for a value that differs in anything,
    including True versus 1, which Python's == confuses. Method: decode one signed
    transaction's bytes twice; then variants with the same signature: payload 1 → True,
    and another payload value."""
    from ledger.crypto import get_suite
    from ledger.tx import Transaction, make_tx

    suite = get_suite("intl")
    key = suite.generate_key()
    tx = make_tx(key, "govledger-test", "evidence.anchor", {"n": 1, "label": "a"}, 7, 10**12)
    data = tx.encoded()
    first = decode(data, Transaction)
    tx_id = first.tx_id(suite)
    second = decode(data, Transaction)
    assert second is first and second.tx_id(suite) == tx_id
    value = decode_value(data)
    assert isinstance(value, dict) and isinstance(value["payload"], dict)
    as_bool = encode_value({**value, "payload": {**value["payload"], "n": True}})
    other = decode(as_bool, Transaction)
    assert other is not first and other.payload["n"] is True
    assert other.tx_id(suite) != tx_id and not other.signature_ok(suite)
    changed = decode(encode_value({**value, "payload": {**value["payload"], "label": "b"}}),
                     Transaction)
    assert changed is not first and changed.payload["label"] == "b"


@pytest.mark.parametrize("count", [0, 1, 15, 16, 70])
def test_a_block_spliced_from_memoised_transactions_is_its_canonical_encoding(count: int
                                                                              ) -> None:
    """Goal: the block bytes the store writes (built from each transaction's memoised
    encoding) are exactly the canonical encoding. Method: blocks of 0, 1, 15, 16 and 70
    transactions (both msgpack array header forms), compared with encode(block)."""
    from ledger.block import Block, BlockHeader
    from ledger.crypto import get_suite
    from ledger.tx import make_tx

    key = get_suite("intl").generate_key()
    txs = [make_tx(key, "govledger-test", "evidence.anchor", {"n": n, "label": "é" * n}, n,
                   10**12) for n in range(count)]
    header = BlockHeader(height=3, prev_hash=b"\x01" * 32, tx_root=b"\x02" * 32,
                         result_root=b"\x03" * 32, state_root=b"\x04" * 32, time=5, view=0,
                         proposer=key.public_key().raw, validator_set_hash=b"\x05" * 32)
    block = Block(header, txs)
    assert block.encoded() == encode(block)
    assert decode(block.encoded(), Block) == block
