"""Property tests of the canonical codec (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import INT_MAX, INT_MIN, decode_value, encode_value
from ledger.errors import DecodeError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_decode_after_encode_is_identity(value: object) -> None:
    """Goal: decode∘encode = id on every encodable value. Method: random nested values."""
    assert decode_value(encode_value(value)) == value  # type: ignore[arg-type]


@given(values)
def test_encode_after_decode_is_identity(value: object) -> None:
    """Goal: encode∘decode = id on canonical bytes. Method: encode, decode, re-encode."""
    data = encode_value(value)  # type: ignore[arg-type]
    assert encode_value(decode_value(data)) == data


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_decode_canonically_or_raise_decode_error(data: bytes) -> None:
    """Goal: arbitrary input never crashes the decoder with a foreign exception.
    Method: random byte strings; either a canonical decode (re-encodes to the same
    bytes) or DecodeError."""
    try:
        value = decode_value(data)
    except DecodeError:
        return
    assert encode_value(value) == data


@given(values, st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_mutated_encodings_never_raise_foreign_errors(value: object, pos: int, byte: int) -> None:
    """Goal: corrupting one byte of a valid message gives DecodeError or another canonical
    value, never a crash. Method: overwrite one byte of an encoding."""
    data = bytearray(encode_value(value))  # type: ignore[arg-type]
    data[pos % len(data)] = byte
    try:
        out = decode_value(bytes(data))
    except DecodeError:
        return
    assert encode_value(out) == bytes(data)
