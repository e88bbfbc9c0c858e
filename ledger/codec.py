"""Canonical msgpack encoding: the only module that calls msgpack.

Theory of operation
-------------------
Everything that is hashed or signed in govledger is encoded here, and hashes
and signatures cover exactly these bytes. The encoding is msgpack with three
extra rules that make it *canonical* (one value, one byte string):

1. Maps have string keys, written in ascending order of their UTF-8 bytes.
   A frozen dataclass is written as the map of its field names to values.
2. Only nil, booleans, integers in [-2**63, 2**64), UTF-8 strings, binary
   strings (bytes), arrays and maps occur. No floats (money is integer fen,
   times are integer milliseconds), no extension types, no timestamps.
3. Every item uses msgpack's shortest form (what msgpack-python writes).

Decoding is strict: the input must be at most ``max_size`` bytes and nested
at most :data:`MAX_DEPTH` levels, and must re-encode to exactly the same
bytes — which rejects unsorted or duplicate keys, over-long integer forms,
trailing bytes and every other alternative spelling. Typed decoding
(:func:`decode`) then checks the value against a dataclass's type hints
(missing or unknown fields, wrong types) and calls the class's optional
``validate()`` hook. Any failure raises :class:`~ledger.errors.DecodeError`
with the path of the offending item, e.g. ``tx.payload.amount: expected
int, got str``.

For JSON (the HTTP API's default), :func:`to_json` writes the same values
with bytes as lowercase hex strings, and :func:`from_json` reads them back
through the same typed conversion, so JSON is a view of the canonical value,
never a second source of truth.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin

import msgpack

from ledger.errors import DecodeError

# The JSON-like values the canonical encoding can carry.
Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
MAX_DEPTH = 32
DEFAULT_MAX_SIZE = 4 * 1024 * 1024

T = TypeVar("T")


def _reject_ext(code: int, data: bytes) -> None:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


def _check_plain(value: object, path: str, depth: int) -> None:
    """Raise DecodeError unless ``value`` is a canonical-encodable plain value."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    t = type(value)
    if value is None or t is bool or t is str or t is bytes:
        return
    if t is int and isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError(f"{path}: integer {value} outside the 64-bit range")
        return
    if t is list and isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{path}[{i}]", depth + 1)
        return
    if t is dict and isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                raise DecodeError(f"{path}: map key {key!r} is not a string")
            _check_plain(item, f"{path}.{key}", depth + 1)
        return
    if t is float:
        raise DecodeError(f"{path}: floats are not allowed (use integers: fen, milliseconds)")
    raise DecodeError(f"{path}: {t.__name__} cannot be encoded")


def _sorted(value: Value) -> Value:
    """Rebuild maps with keys in canonical (UTF-8 byte) order."""
    if type(value) is dict:
        return {k: _sorted(value[k]) for k in sorted(value, key=_utf8)}
    if type(value) is list:
        return [_sorted(v) for v in value]
    return value


def _utf8(s: str) -> bytes:
    return s.encode("utf-8")


def encode_value(value: Value) -> bytes:
    """Canonical bytes of a plain value. Raises DecodeError if it has no canonical form."""
    _check_plain(value, "$", 0)
    try:
        return msgpack.packb(_sorted(value), use_bin_type=True)  # type: ignore[no-any-return]
    except UnicodeEncodeError as exc:
        raise DecodeError(f"string is not valid UTF-8: {exc.reason}") from None


def decode_value(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Parse canonical bytes into a plain value; reject anything non-canonical."""
    if type(data) is not bytes:
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError("empty message")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
        )
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the encoded value") from None
    except UnicodeDecodeError:
        raise DecodeError("string is not valid UTF-8") from None
    except ValueError as exc:  # msgpack's FormatError, StackError, OutOfData, ...
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}: {exc}") from None
    _check_plain(value, "$", 0)
    if encode_value(value) != data:
        raise DecodeError("not the canonical encoding (key order, duplicate keys or integer form)")
    return value  # type: ignore[no-any-return]


# --- dataclasses <-> plain values --------------------------------------------------------


def to_value(obj: object) -> Value:
    """Plain value of a dataclass instance (recursively) or of a plain value."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_value(getattr(obj, f.name)) for f in _fields(type(obj))}
    if isinstance(obj, (list, tuple)):
        return [to_value(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_value(v) for k, v in obj.items()}
    return obj  # type: ignore[return-value]


def encode(obj: object) -> bytes:
    """Canonical bytes of a dataclass instance or plain value."""
    return encode_value(to_value(obj))


def decode(data: bytes, cls: type[T], max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Decode canonical bytes into an instance of dataclass ``cls`` (strictly typed)."""
    return from_value(cls, decode_value(data, max_size))


def from_value(cls: type[T], value: object, path: str = "$", hex_bytes: bool = False) -> T:
    """Convert a plain value to ``cls`` following its type hints.

    With ``hex_bytes`` (JSON input) a field typed ``bytes`` also accepts a hex string.
    """
    return typing.cast(T, _convert(cls, value, path, hex_bytes))


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(v: object) -> str:
    return "nil" if v is None else type(v).__name__


def _convert(tp: Any, v: object, path: str, hex_bytes: bool) -> object:
    if tp is Any or tp == Value:
        if hex_bytes:
            return v
        _check_plain(v, path, 0)
        return v
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, v, path, hex_bytes)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, v, path, hex_bytes)
    if origin is list or origin is tuple:
        if type(v) is not list:
            raise DecodeError(f"{path}: expected a list, got {_type_name(v)}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, x, f"{path}[{i}]", hex_bytes) for i, x in enumerate(v)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if type(v) is not dict:
            raise DecodeError(f"{path}: expected a map, got {_type_name(v)}")
        _, val_tp = get_args(tp)
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise DecodeError(f"{path}: map key {k!r} is not a string")
            out[k] = _convert(val_tp, x, f"{path}.{k}", hex_bytes)
        return out
    if origin is typing.Literal:
        if v not in get_args(tp) or type(v) is bool:
            allowed = ", ".join(repr(a) for a in get_args(tp))
            raise DecodeError(f"{path}: {v!r} is not one of {allowed}")
        return v
    return _convert_scalar(tp, v, path, hex_bytes)


def _convert_scalar(tp: Any, v: object, path: str, hex_bytes: bool) -> object:
    if tp is int:
        if type(v) is not int:
            raise DecodeError(f"{path}: expected int, got {_type_name(v)}")
        if not INT_MIN <= v <= INT_MAX:
            raise DecodeError(f"{path}: integer {v} outside the 64-bit range")
        return v
    if tp is bytes:
        if type(v) is bytes:
            return v
        if hex_bytes and type(v) is str:
            try:
                return bytes.fromhex(v)
            except ValueError:
                raise DecodeError(f"{path}: expected hex-encoded bytes") from None
        raise DecodeError(f"{path}: expected bytes, got {_type_name(v)}")
    if tp is str or tp is bool:
        if type(v) is not tp:
            raise DecodeError(f"{path}: expected {tp.__name__}, got {_type_name(v)}")
        return v
    if tp is type(None):
        if v is not None:
            raise DecodeError(f"{path}: expected nil, got {_type_name(v)}")
        return None
    raise TypeError(f"codec cannot convert to {tp!r}")  # a bug in a dataclass definition


def _convert_union(tp: Any, v: object, path: str, hex_bytes: bool) -> object:
    args = get_args(tp)
    if bool in args and str in args and bytes in args:  # the `Value` alias, as resolved
        return _convert(Any, v, path, hex_bytes)
    if v is None:
        if type(None) in args:
            return None
        raise DecodeError(f"{path}: must not be nil")
    rest = [a for a in args if a is not type(None)]
    if len(rest) != 1:
        raise TypeError(f"codec supports only `X | None` unions, not {tp!r}")
    return _convert(rest[0], v, path, hex_bytes)


def _convert_dataclass(cls: type, v: object, path: str, hex_bytes: bool) -> object:
    if type(v) is not dict:
        raise DecodeError(f"{path}: expected a map for {cls.__name__}, got {_type_name(v)}")
    hints = _hints(cls)
    names = [f.name for f in _fields(cls)]
    unknown = sorted(set(v) - set(names))
    if unknown:
        raise DecodeError(f"{path}: unknown field(s) {', '.join(map(str, unknown))}")
    kwargs = {}
    for name in names:
        if name not in v:
            raise DecodeError(f"{path}: missing field {name!r}")
        kwargs[name] = _convert(hints[name], v[name], f"{path}.{name}", hex_bytes)
    obj = cls(**kwargs)
    validate: Callable[[], None] | None = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


# --- JSON view ---------------------------------------------------------------------------


def to_json_value(obj: object) -> Any:
    """A JSON-ready view of ``obj``: like :func:`to_value`, with bytes as hex strings."""
    return _hexify(to_value(obj))


def _hexify(v: Any) -> Any:
    if type(v) is bytes:
        return v.hex()
    if type(v) is list:
        return [_hexify(x) for x in v]
    if type(v) is dict:
        return {k: _hexify(x) for k, x in v.items()}
    return v


def to_json(obj: object) -> str:
    return json.dumps(to_json_value(obj), ensure_ascii=False, sort_keys=True)


def from_json(cls: type[T], text: str | bytes, max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Parse JSON text into ``cls`` (bytes fields as hex). Raises DecodeError."""
    if len(text) > max_size:
        raise DecodeError(f"JSON document of {len(text)} bytes exceeds the limit of {max_size}")
    try:
        value = json.loads(text, parse_float=_reject_float, parse_constant=_reject_float)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    return from_value(cls, value, hex_bytes=True)


def _reject_float(text: str) -> None:
    raise DecodeError(f"floats are not allowed in JSON input ({text}); use integers")
