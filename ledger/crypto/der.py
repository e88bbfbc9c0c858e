"""A small strict DER reader and writer for key files.

Key files come from outside (an operator's disk, another tool), so reading
them must end in :class:`~ledger.errors.KeyFileError` and nothing else, with
a message that says which structure was wrong. The reader accepts only DER:
definite, minimal lengths, minimal INTEGERs, one-byte tags, no trailing
bytes. That is what OpenSSL, Tongsuo, ``cryptography`` and this module
write, and strictness means there is exactly one byte string per key.

Only the handful of types PKCS#8, SubjectPublicKeyInfo, SEC1 and PBES2
need are here: SEQUENCE, INTEGER, OCTET STRING, BIT STRING, NULL, OBJECT
IDENTIFIER and context-specific tags ``[0]``/``[1]``.
"""

from __future__ import annotations

from ledger.errors import KeyFileError

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30
CONTEXT_0 = 0xA0
CONTEXT_1 = 0xA1

_TAG_NAMES = {
    INTEGER: "INTEGER",
    BIT_STRING: "BIT STRING",
    OCTET_STRING: "OCTET STRING",
    NULL: "NULL",
    OID: "OBJECT IDENTIFIER",
    SEQUENCE: "SEQUENCE",
    CONTEXT_0: "[0]",
    CONTEXT_1: "[1]",
}

_LENGTH_BYTES_MAX = 3  # 16 MiB; key files are a few hundred bytes
# Key files hold small INTEGERs (versions, iteration counts) and short OIDs; the
# bounds also keep int-to-text conversion in error messages within Python's limit.
_INTEGER_BYTES_MAX = 64
_OID_BYTES_MAX = 64


def _tag_name(tag: int) -> str:
    return _TAG_NAMES.get(tag, f"tag 0x{tag:02x}")


class DerReader:
    """Reads the elements of one DER encoded value (or of a SEQUENCE's contents) in order."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _fail(self, problem: str) -> KeyFileError:
        return KeyFileError(f"malformed {self._what}: {problem}")

    def _header(self) -> tuple[int, int, int]:
        """Returns (tag, start of value, end of value) of the next element without consuming it."""
        data, pos = self._data, self._pos
        if pos + 2 > len(data):
            raise self._fail("truncated (expected another element)")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise self._fail("multi-byte tags are not used in key files")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise self._fail("indefinite length (BER) is not DER")
        else:
            count = first & 0x7F
            if count > _LENGTH_BYTES_MAX or pos + count > len(data):
                raise self._fail("length field too long or truncated")
            length = int.from_bytes(data[pos : pos + count], "big")
            if length < 0x80 or data[pos] == 0:
                raise self._fail("length is not minimally encoded")
            pos += count
        if pos + length > len(data):
            raise self._fail(f"{_tag_name(tag)} runs past the end of the data")
        return tag, pos, pos + length

    def peek(self) -> int | None:
        """The tag of the next element, or None at the end."""
        if self._pos >= len(self._data):
            return None
        return self._data[self._pos]

    def read(self, tag: int) -> bytes:
        """The contents of the next element, which must have ``tag``."""
        found, start, end = self._header()
        if found != tag:
            raise self._fail(f"expected {_tag_name(tag)}, found {_tag_name(found)}")
        self._pos = end
        return self._data[start:end]

    def read_element(self) -> bytes:
        """The whole next element (tag, length and contents), whatever its tag."""
        _, _, end = self._header()
        element = self._data[self._pos : end]
        self._pos = end
        return element

    def optional(self, tag: int) -> bytes | None:
        """The contents of the next element if it has ``tag``, else None (nothing consumed)."""
        if self.peek() != tag:
            return None
        return self.read(tag)

    def sequence(self, what: str | None = None) -> DerReader:
        """A reader over the contents of the next element, a SEQUENCE."""
        return DerReader(self.read(SEQUENCE), what or self._what)

    def integer(self) -> int:
        value = self.read(INTEGER)
        if not value or len(value) > _INTEGER_BYTES_MAX:
            raise self._fail("INTEGER is empty or too large")
        if len(value) > 1 and (
            (value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)
        ):
            raise self._fail("INTEGER is not minimally encoded")
        return int.from_bytes(value, "big", signed=True)

    def octets(self) -> bytes:
        return self.read(OCTET_STRING)

    def bit_string(self) -> bytes:
        value = self.read(BIT_STRING)
        if not value or value[0] != 0:
            raise self._fail("BIT STRING must be whole bytes")
        return value[1:]

    def null(self) -> None:
        if self.read(NULL):
            raise self._fail("NULL with contents")

    def oid(self) -> str:
        return decode_oid(self.read(OID), self._what)

    def end(self) -> None:
        """Asserts that every byte has been read."""
        if self._pos != len(self._data):
            raise self._fail("unexpected data after the last element")


def decode_oid(value: bytes, what: str) -> str:
    """The dotted form of an OBJECT IDENTIFIER's contents."""
    if not value or value[-1] & 0x80 or len(value) > _OID_BYTES_MAX:
        raise KeyFileError(f"malformed {what}: bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    current = 0
    for i, byte in enumerate(value):
        if byte == 0x80 and (i == 0 or not value[i - 1] & 0x80):
            raise KeyFileError(f"malformed {what}: OBJECT IDENTIFIER arc is not minimal")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


# -- writing -----------------------------------------------------------------


def tlv(tag: int, contents: bytes) -> bytes:
    length = len(contents)
    if length < 0x80:
        return bytes((tag, length)) + contents
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + contents


def sequence(*elements: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(elements))


def integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1  # room for the sign bit
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    return tlv(BIT_STRING, b"\x00" + value)


def null() -> bytes:
    return tlv(NULL, b"")


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    assert len(arcs) >= 2 and arcs[0] <= 2, dotted
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))
