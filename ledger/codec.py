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

Speed matters here: every transaction and consensus message passes through this
module several times on every node. The hot paths therefore make one pass
without building error paths (:func:`_canon`, :func:`_plain_ok`, per-type
converters compiled once by :func:`_converter`); only when that pass finds a
problem is the value walked again by the path-naming checks, so errors stay as
precise as before. Keys are sorted as Python strings, which is the same order
as their UTF-8 bytes (UTF-8 preserves code-point order). Three shortcuts build
on memoised encodings: a class may name an ``__codec_intern__`` field to get
back the instance decoded before from an equal value (transactions arrive by
gossip and again in the proposal); a class with ``__codec_decoded__`` is handed
the plain value it was decoded from when that value came from canonical bytes,
and may keep :func:`repack` of it as its own encoding (no second walk); and
:func:`spliced_map`/:func:`spliced_array` assemble canonical bytes from parts
already encoded (a block from its transactions' bytes).

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
from collections import OrderedDict
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


class _Bad(Exception):
    """Raised by the fast passes; the caller re-walks the value to name the problem."""


_SCALARS = frozenset({type(None), bool, str, bytes})


def _canon(value: object, depth: int, objects: bool) -> object:
    """A copy of ``value`` with maps in canonical key order: the fast path of encoding.

    With ``objects``, dataclass instances become maps of their codec fields and tuples
    become arrays (what :func:`encode` accepts); without, only plain values pass (what
    :func:`encode_value` accepts). Raises :class:`_Bad`, without saying where, if the
    value has no canonical form.
    """
    t = type(value)
    if t in _SCALARS:
        return value
    if t is int:
        if INT_MIN <= value <= INT_MAX:  # type: ignore[operator]
            return value
        raise _Bad
    depth += 1
    if t is dict:
        if depth > MAX_DEPTH and value:
            raise _Bad
        try:
            keys = sorted(value)  # type: ignore[call-overload]
        except TypeError:
            raise _Bad from None
        out = {}
        for k in keys:
            if type(k) is not str:
                raise _Bad
            v = value[k]  # type: ignore[index]
            # Scalars inline (most values are): a call per scalar was half of the walk.
            out[k] = v if type(v) in _SCALARS else _canon(v, depth, objects)
        return out
    if t is list or (objects and t is tuple):
        if depth > MAX_DEPTH and value:
            raise _Bad
        return [v if type(v) in _SCALARS else _canon(v, depth, objects)
                for v in value]  # type: ignore[attr-defined]
    if objects:
        names = _codec_names(typing.cast(Any, t))
        if names is not None:
            if depth > MAX_DEPTH:
                raise _Bad
            out = {}
            for n in names:
                v = getattr(value, n)
                out[n] = v if type(v) in _SCALARS else _canon(v, depth, objects)
            return out
    raise _Bad


def _pack(value: object) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    except UnicodeEncodeError as exc:
        raise DecodeError(f"string is not valid UTF-8: {exc.reason}") from None


def encode_value(value: Value) -> bytes:
    """Canonical bytes of a plain value. Raises DecodeError if it has no canonical form."""
    try:
        return _pack(_canon(value, 0, False))
    except _Bad:
        _check_plain(value, "$", 0)  # names the problem
        raise DecodeError("value has no canonical encoding") from None


def spliced_map(entries: dict[str, bytes]) -> bytes:
    """The canonical bytes of a map whose values are already canonical bytes (e.g. memoised
    encodings): its header, then each key and value in key order — no walk of the values."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join((packer.pack_map_header(len(entries)),
                     *(packer.pack(k) + entries[k] for k in sorted(entries))))


def spliced_array(items: list[bytes]) -> bytes:
    """The canonical bytes of an array whose items are already canonical bytes."""
    header: bytes = msgpack.Packer(use_bin_type=True).pack_array_header(len(items))
    return header + b"".join(items)


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
    # Canonical input has its keys in order already, so it re-packs as is; anything else
    # (unsorted or duplicate keys, a longer integer form) re-packs to different bytes.
    if not _plain_ok(value, 0, True):
        _check_plain(value, "$", 0)  # names the problem when it is a type or depth
        raise DecodeError("not the canonical encoding (key order, duplicate keys or integer form)")
    if _pack(value) != data:
        raise DecodeError("not the canonical encoding (key order, duplicate keys or integer form)")
    return value  # type: ignore[no-any-return]


def _plain_ok(value: object, depth: int, ordered: bool) -> bool:
    """Is ``value`` a plain value within the limits (and, with ``ordered``, are its maps'
    keys in canonical order)? The fast, pathless twin of :func:`_check_plain`."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t is int:
        return INT_MIN <= value <= INT_MAX  # type: ignore[operator]
    depth += 1
    if t is dict:
        if depth > MAX_DEPTH and value:
            return False
        prev = None
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                return False
            if ordered:
                if prev is not None and not prev < k:
                    return False
                prev = k
            if type(v) not in _SCALARS and not _plain_ok(v, depth, ordered):
                return False
        return True
    if t is list:
        if depth > MAX_DEPTH and value:
            return False
        for v in value:  # type: ignore[attr-defined]
            if type(v) not in _SCALARS and not _plain_ok(v, depth, ordered):
                return False
        return True
    return False


# --- dataclasses <-> plain values --------------------------------------------------------


def to_value(obj: object) -> Value:
    """Plain value of a dataclass instance (recursively) or of a plain value."""
    t = type(obj)
    if t in _SCALARS or t is int:
        return obj  # type: ignore[return-value]
    names = _field_names(typing.cast(Any, t))
    if names is not None:
        return {n: to_value(getattr(obj, n)) for n in names}
    if isinstance(obj, (list, tuple)):
        return [to_value(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_value(v) for k, v in obj.items()}
    return obj  # type: ignore[return-value]


def encode(obj: object) -> bytes:
    """Canonical bytes of a dataclass instance or plain value."""
    try:
        return _pack(_canon(obj, 0, True))
    except _Bad:
        return encode_value(to_value(obj))  # raises, naming the problem


def encoded_once(obj: Any) -> bytes:
    """``encode(obj)``, memoised in ``obj._encoded`` (a frozen dataclass's non-codec field,
    ``metadata={"codec": False}``): transactions and results are encoded for their
    Merkle roots, for blocks, for the wire and for the store."""
    data: bytes | None = obj._encoded
    if data is None:
        data = encode(obj)
        object.__setattr__(obj, "_encoded", data)
    return data


def decode(data: bytes, cls: type[T], max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Decode canonical bytes into an instance of dataclass ``cls`` (strictly typed)."""
    return from_value(cls, decode_value(data, max_size), canonical=True)


def repack(value: Value) -> bytes:
    """The canonical bytes of a value :func:`decode_value` returned, or of any part of one,
    without the canonical walk: such a value is in canonical order already. Never pass
    a value built any other way (its maps' key order is not checked)."""
    return _pack(value)


# How a converter treats its input: plain values from anywhere, JSON (bytes may be hex
# strings), or values decode_value returned (canonical: classes may memoise their bytes).
_PLAIN, _JSON, _CANONICAL = 0, 1, 2


def from_value(cls: type[T], value: object, path: str = "$", hex_bytes: bool = False,
               canonical: bool = False) -> T:
    """Convert a plain value to ``cls`` following its type hints.

    With ``hex_bytes`` (JSON input) a field typed ``bytes`` also accepts a hex string.
    ``canonical`` says ``value`` came from :func:`decode_value`: a class with a
    ``__codec_decoded__(self, value)`` method then gets the plain value it was built
    from, to memoise its canonical bytes with :func:`repack`.
    """
    mode = _JSON if hex_bytes else _CANONICAL if canonical else _PLAIN
    try:
        return typing.cast(T, _converter(typing.cast(Any, cls))(value, mode))
    except _Fail as exc:
        raise DecodeError(path + exc.text) from None


class _Fail(Exception):
    """A typed-conversion failure; ``text`` is the path below the failing converter's
    caller followed by ``: reason``. Each enclosing converter prepends its own step."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _add_step(exc: _Fail, step: str) -> _Fail:
    exc.text = step + exc.text
    return exc


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """The fields the codec carries: all but those marked ``metadata={"codec": False}``
    (caches such as a transaction's memoised body bytes)."""
    return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("codec", True))


@functools.cache
def _field_names(t: type) -> tuple[str, ...] | None:
    """A dataclass's codec field names in declaration order, or None for other types."""
    if not dataclasses.is_dataclass(t):
        return None
    return tuple(f.name for f in _fields(t))


@functools.cache
def _codec_names(t: type) -> tuple[str, ...] | None:
    """A dataclass's codec field names in canonical order, or None for other types."""
    if not dataclasses.is_dataclass(t):
        return None
    return tuple(sorted(f.name for f in _fields(t)))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(v: object) -> str:
    return "nil" if v is None else type(v).__name__


Converter = Callable[[object, int], object]


@functools.cache
def _converter(tp: Any) -> Converter:
    """The function converting a plain value to type ``tp`` (built once per type)."""
    if tp is Any or tp == Value:
        return _convert_any
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_converter(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if bool in args and str in args and bytes in args:  # the `Value` alias, as resolved
            return _convert_any
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"codec supports only `X | None` unions, not {tp!r}")
        return _optional_converter(rest[0], type(None) in args)
    if origin is list or origin is tuple:
        args = get_args(tp)
        return _list_converter(args[0] if args else Any, origin is tuple)
    if origin is dict:
        return _dict_converter(get_args(tp)[1])
    if origin is typing.Literal:
        return _literal_converter(get_args(tp))
    return _scalar_converter(tp)


def _convert_any(v: object, mode: int) -> object:
    if mode == _JSON or _plain_ok(v, 0, False):
        return v
    try:
        _check_plain(v, "", 0)
    except DecodeError as exc:
        raise _Fail(str(exc)) from None
    return v


def _optional_converter(inner: Any, nil_ok: bool) -> Converter:
    # Inner converters are looked up on first use, so a class may refer to itself.
    item: Converter | None = None

    def convert(v: object, mode: int) -> object:
        nonlocal item
        if v is None:
            if nil_ok:
                return None
            raise _Fail(": must not be nil")
        if item is None:
            item = _converter(inner)
        return item(v, mode)

    return convert


def _list_converter(item_tp: Any, as_tuple: bool) -> Converter:
    item: Converter | None = None

    def convert(v: object, mode: int) -> object:
        nonlocal item
        if type(v) is not list:
            raise _Fail(f": expected a list, got {_type_name(v)}")
        if item is None:
            item = _converter(item_tp)
        items = []
        for i, x in enumerate(v):
            try:
                items.append(item(x, mode))
            except _Fail as exc:
                raise _add_step(exc, f"[{i}]") from None
        return tuple(items) if as_tuple else items

    return convert


def _dict_converter(val_tp: Any) -> Converter:
    item: Converter | None = None

    def convert(v: object, mode: int) -> object:
        nonlocal item
        if type(v) is not dict:
            raise _Fail(f": expected a map, got {_type_name(v)}")
        if item is None:
            item = _converter(val_tp)
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise _Fail(f": map key {k!r} is not a string")
            try:
                out[k] = item(x, mode)
            except _Fail as exc:
                raise _add_step(exc, f".{k}") from None
        return out

    return convert


def _literal_converter(allowed: tuple[Any, ...]) -> Converter:
    def convert(v: object, mode: int) -> object:
        if v not in allowed or type(v) is bool:
            raise _Fail(f": {v!r} is not one of {', '.join(repr(a) for a in allowed)}")
        return v

    return convert


def _scalar_converter(tp: Any) -> Converter:
    if tp is int:
        def convert_int(v: object, mode: int) -> object:
            if type(v) is not int:
                raise _Fail(f": expected int, got {_type_name(v)}")
            if not INT_MIN <= v <= INT_MAX:
                raise _Fail(f": integer {v} outside the 64-bit range")
            return v

        return convert_int
    if tp is bytes:
        def convert_bytes(v: object, mode: int) -> object:
            if type(v) is bytes:
                return v
            if mode == _JSON and type(v) is str:
                try:
                    return bytes.fromhex(v)
                except ValueError:
                    raise _Fail(": expected hex-encoded bytes") from None
            raise _Fail(f": expected bytes, got {_type_name(v)}")

        return convert_bytes
    if tp is str or tp is bool:
        def convert_exact(v: object, mode: int) -> object:
            if type(v) is not tp:
                raise _Fail(f": expected {tp.__name__}, got {_type_name(v)}")
            return v

        return convert_exact
    if tp is type(None):
        def convert_nil(v: object, mode: int) -> object:
            if v is not None:
                raise _Fail(f": expected nil, got {_type_name(v)}")
            return None

        return convert_nil
    raise TypeError(f"codec cannot convert to {tp!r}")  # a bug in a dataclass definition


INTERN_MAX = 8192


def _strict_equal(a: object, b: object) -> bool:
    """Equal values of equal types all the way down (``==`` alone takes True for 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and _strict_equal(x, b[k]) for k, x in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _interned_equal(hit: list[object], v: object, mode: int) -> bool:
    """Whether ``v`` strictly equals the value ``hit`` was decoded from. Two values that
    decode_value returned are in canonical order, and msgpack tells every type apart
    (bool from int, str from bytes), so they are strictly equal iff they pack to the same
    bytes: one pack in C instead of a walk in Python (a ``cert.issue`` transaction is a
    few dozen values; the walk was ~4 % of a node's event loop). A value that was not in
    canonical order at first packs differently and is simply converted again."""
    if mode == _CANONICAL:
        packed = hit[2]
        if packed is None:
            packed = hit[2] = _pack(hit[0])
        return _pack(v) == packed
    return _strict_equal(hit[0], v)


def _dataclass_converter(cls: type) -> Converter:
    names = tuple(f.name for f in _fields(cls))
    known = frozenset(names)
    validate = getattr(cls, "validate", None)
    decoded = getattr(cls, "__codec_decoded__", None)
    convs: tuple[tuple[str, Converter], ...] | None = None
    # A class naming a field in ``__codec_intern__`` (Transaction: its signature) gets back
    # the instance already decoded from an *equal* value: a node decodes each transaction
    # twice (gossip, then the proposal), and the second time skips conversion and
    # validation and keeps the first copy's memoised id.
    intern: str | None = getattr(cls, "__codec_intern__", None)
    # key -> [the plain value, the instance, the value's packed bytes once asked for]
    interned: OrderedDict[bytes, list[object]] = OrderedDict()

    def convert(v: object, mode: int) -> object:
        nonlocal convs
        if type(v) is not dict:
            raise _Fail(f": expected a map for {cls.__name__}, got {_type_name(v)}")
        key = v.get(intern) if intern is not None and mode != _JSON else None
        if type(key) is bytes and key:
            hit = interned.get(key)
            if hit is not None and _interned_equal(hit, v, mode):
                return hit[1]
        else:
            key = None
        if len(v) != len(names) or not known.issuperset(v):
            unknown = sorted(set(v) - known, key=str)
            if unknown:
                raise _Fail(f": unknown field(s) {', '.join(map(str, unknown))}")
            missing = next(n for n in names if n not in v)
            raise _Fail(f": missing field {missing!r}")
        if convs is None:  # resolved on first use, so classes may refer to later ones
            hints = _hints(cls)
            convs = tuple((name, _converter(hints[name])) for name in names)
        kwargs = {}
        for name, conv in convs:
            try:
                kwargs[name] = conv(v[name], mode)
            except _Fail as exc:
                raise _add_step(exc, f".{name}") from None
        obj = cls(**kwargs)
        if decoded is not None and mode == _CANONICAL:
            decoded(obj, v)
        if validate is not None:
            obj.validate()
        if key is not None:
            interned[key] = [v, obj, None]
            if len(interned) > INTERN_MAX:
                interned.popitem(last=False)
        return obj

    return convert


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
