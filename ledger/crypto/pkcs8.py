"""PEM key files: PKCS#8 private keys (plain or PBES2-encrypted) and SubjectPublicKeyInfo.

Theory of operation
-------------------
Both suites read key files through this one module, so an operator gets the
same clear :class:`~ledger.errors.KeyFileError` whatever went wrong ("not a
PEM file", "a passphrase is needed", "wrong passphrase", "an Ed25519 key,
but suite 'sm' needs SM2", ...) and :func:`load_private_key_file` can tell
the suite from the key's algorithm before it knows which suite to ask.

Reading accepts what OpenSSL 3, Tongsuo, ``cryptography`` and govledger
write: ``PRIVATE KEY`` (PKCS#8 v1/v2), ``ENCRYPTED PRIVATE KEY`` (PKCS#5
PBES2 with PBKDF2-HMAC-SHA1/SHA-2 and AES-128/192/256-CBC or SM4-CBC),
the legacy unencrypted ``EC PRIVATE KEY`` (SEC1) and ``PUBLIC KEY`` (SPKI).

Writing uses PBES2 with PBKDF2-HMAC-SHA256 at :data:`PBKDF2_ITERATIONS` and
a 16-byte salt; the cipher is SM4-CBC for SM2 keys (what Tongsuo writes) and
AES-256-CBC for Ed25519 keys. ``cryptography``'s ``BestAvailableEncryption``
cannot be used for this because it fixes PBKDF2 at 2,048 iterations.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ledger.crypto import der
from ledger.errors import KeyFileError

ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SM2_CURVE = "1.2.156.10197.1.301"
ED25519 = "1.3.101.112"
_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_HMAC_SHA256 = "1.2.840.113549.2.9"

PBKDF2_ITERATIONS = 200_000
"""PBKDF2 rounds used when writing (OpenSSL and Tongsuo default to 2,048)."""
PBKDF2_ITERATIONS_MAX = 10_000_000
"""Files asking for more rounds are refused rather than tying up the CPU."""
PEM_BYTES_MAX = 64 * 1024

_ALGORITHM_NAMES = {
    "1.2.840.113549.1.1.1": "an RSA key",
    "1.2.840.10040.4.1": "a DSA key",
    "1.3.101.110": "an X25519 key",
    "1.3.101.111": "an X448 key",
    "1.3.101.113": "an Ed448 key",
}
_CURVE_NAMES = {
    "1.2.840.10045.3.1.7": "prime256v1 (NIST P-256)",
    "1.3.132.0.34": "secp384r1 (NIST P-384)",
    "1.3.132.0.35": "secp521r1 (NIST P-521)",
    "1.3.132.0.10": "secp256k1",
}
SUITE_OF_KIND = {"sm2": "sm", "ed25519": "intl"}
KIND_NAMES = {"sm2": "an SM2 key", "ed25519": "an Ed25519 key"}


@dataclass(frozen=True, slots=True)
class _BlockCipher:
    oid: str
    key_size: int
    algorithm: Callable[[bytes], BlockCipherAlgorithm]


_CIPHERS = {
    "sm4-cbc": _BlockCipher("1.2.156.10197.1.104.2", 16, algorithms.SM4),
    "aes-128-cbc": _BlockCipher("2.16.840.1.101.3.4.1.2", 16, algorithms.AES),
    "aes-192-cbc": _BlockCipher("2.16.840.1.101.3.4.1.22", 24, algorithms.AES),
    "aes-256-cbc": _BlockCipher("2.16.840.1.101.3.4.1.42", 32, algorithms.AES),
}
_CIPHER_BY_OID = {cipher.oid: cipher for cipher in _CIPHERS.values()}
_PRFS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.8": hashes.SHA224,
    _HMAC_SHA256: hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class PrivateKeyInfo:
    """The parts of a decoded private key that the suites need."""

    algorithm: str  # OID of the key algorithm
    parameters: str | None  # named-curve OID, "explicit", or None
    private_key: bytes  # contents of the privateKey OCTET STRING (SEC1 for EC keys)
    public_key: bytes | None  # PKCS#8 v2 publicKey, if present

    @property
    def kind(self) -> str:
        return key_kind(self.algorithm, self.parameters)


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    algorithm: str
    parameters: str | None
    key: bytes  # contents of subjectPublicKey

    @property
    def kind(self) -> str:
        return key_kind(self.algorithm, self.parameters)


def key_kind(algorithm: str, parameters: str | None) -> str:
    """``"sm2"`` or ``"ed25519"`` for keys govledger uses; otherwise a description for messages."""
    if algorithm == SM2_CURVE or (algorithm == ID_EC_PUBLIC_KEY and parameters == SM2_CURVE):
        return "sm2"
    if algorithm == ED25519:
        return "ed25519"
    if algorithm == ID_EC_PUBLIC_KEY:
        if parameters == "explicit" or parameters is None:
            return "an EC key with explicit (unnamed) curve parameters"
        return f"an EC key on curve {_CURVE_NAMES.get(parameters, parameters)}"
    return _ALGORITHM_NAMES.get(algorithm, f"a key of unknown algorithm {algorithm}")


def wrong_kind(found: str, suite_name: str, wanted: str) -> KeyFileError:
    """The error for a key that is fine but belongs to another suite or to no suite."""
    name = KIND_NAMES.get(found, found)
    if found in SUITE_OF_KIND:
        name += f" (suite '{SUITE_OF_KIND[found]}')"
    return KeyFileError(f"this is {name}, but suite '{suite_name}' needs {KIND_NAMES[wanted]}")


# -- PEM ---------------------------------------------------------------------

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")


def pem_encode(label: str, der_bytes: bytes) -> bytes:
    body = base64.b64encode(der_bytes)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    head = f"-----BEGIN {label}-----\n".encode()
    tail = f"-----END {label}-----\n".encode()
    return head + b"\n".join(lines) + b"\n" + tail


def pem_decode(data: bytes, labels: frozenset[str], what: str) -> tuple[str, bytes]:
    """The label and DER of the first PEM block in ``data`` whose label is one of ``labels``."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"PEM data must be bytes, not {type(data).__name__}")
    if len(data) > PEM_BYTES_MAX:
        raise KeyFileError(f"not a {what}: {len(data)} bytes is too large for a PEM key")
    data = bytes(data)
    found: list[str] = []
    position = 0
    # Each BEGIN is matched with the next END of its label by find(), not a regex, so
    # scanning stays linear even on hostile input.
    while begin := _PEM_BEGIN.search(data, position):
        label = begin.group(1).decode("ascii")
        end = data.find(b"-----END " + begin.group(1) + b"-----", begin.end())
        if end < 0:
            raise KeyFileError(f"PEM block {label} has no END line")
        position = end
        if label not in labels:
            found.append(label)
            continue
        body = data[begin.end() : end]
        if b":" in body:
            raise KeyFileError(
                "legacy OpenSSL-encrypted PEM (Proc-Type/DEK-Info headers) is not supported;"
                " convert it with: openssl pkcs8 -topk8 -in old.pem -out new.pem"
            )
        try:
            return label, base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{label} PEM block is not valid base64") from None
    if found:
        labels_found = ", ".join(list(dict.fromkeys(found))[:5])
        raise KeyFileError(f"no {what} in this PEM (it holds: {labels_found})")
    if data[:1] == b"\x30":
        raise KeyFileError(f"not a PEM file (looks like DER); expected a {what} in PEM form")
    raise KeyFileError(f"not a PEM file: no '-----BEGIN ...-----' line (expected a {what})")


# -- reading -----------------------------------------------------------------

_PRIVATE_LABELS = frozenset({"PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"})
_PUBLIC_LABELS = frozenset({"PUBLIC KEY"})


def decode_private_pem(data: bytes, passphrase: bytes | None) -> PrivateKeyInfo:
    """Decodes (decrypting if needed) a private key PEM; a passphrase for a plain key is ignored."""
    label, der_bytes = pem_decode(data, _PRIVATE_LABELS, "private key")
    if label == "EC PRIVATE KEY":
        return _decode_sec1(der_bytes)
    if label == "PRIVATE KEY":
        return _decode_private_key_info(der_bytes)
    if passphrase is None:
        raise KeyFileError(
            "the private key is encrypted: a passphrase is needed"
            " (set GOVLEDGER_KEY_PASSPHRASE or pass one)"
        )
    plain = _pbes2_decrypt(der_bytes, passphrase)
    try:
        return _decode_private_key_info(plain)
    except KeyFileError:
        raise KeyFileError("wrong passphrase, or the key file is corrupted") from None


def decode_public_pem(data: bytes) -> PublicKeyInfo:
    _, der_bytes = pem_decode(data, _PUBLIC_LABELS, "public key")
    outer = der.DerReader(der_bytes, "SubjectPublicKeyInfo")
    spki = outer.sequence()
    outer.end()
    algorithm, parameters = _algorithm_identifier(spki)
    key = spki.bit_string()
    spki.end()
    return PublicKeyInfo(algorithm, parameters, key)


def _algorithm_identifier(parent: der.DerReader) -> tuple[str, str | None]:
    reader = parent.sequence("key algorithm identifier")
    algorithm = reader.oid()
    parameters: str | None = None
    tag = reader.peek()
    if tag == der.OID:
        parameters = reader.oid()
    elif tag == der.NULL:
        reader.null()
    elif tag is not None:
        reader.read_element()
        parameters = "explicit"
    reader.end()
    return algorithm, parameters


def _decode_private_key_info(der_bytes: bytes) -> PrivateKeyInfo:
    outer = der.DerReader(der_bytes, "PKCS#8 private key")
    reader = outer.sequence()
    outer.end()
    version = reader.integer()
    if version not in (0, 1):
        raise KeyFileError(f"unsupported PKCS#8 version {version}")
    algorithm, parameters = _algorithm_identifier(reader)
    private_key = reader.octets()
    reader.optional(der.CONTEXT_0)  # attributes: nothing govledger needs
    public_key = reader.optional(0x81)  # [1] IMPLICIT BIT STRING (PKCS#8 v2)
    reader.end()
    if public_key is not None:
        if not public_key or public_key[0] != 0:
            raise KeyFileError("malformed PKCS#8 private key: bad publicKey")
        public_key = public_key[1:]
    return PrivateKeyInfo(algorithm, parameters, private_key, public_key)


def _decode_sec1(der_bytes: bytes) -> PrivateKeyInfo:
    """A legacy 'EC PRIVATE KEY' (SEC1) file: the curve is inside the structure."""
    outer = der.DerReader(der_bytes, "SEC1 EC private key")
    reader = outer.sequence()
    outer.end()
    reader.integer()
    reader.octets()
    parameters = reader.optional(der.CONTEXT_0)
    if parameters is None:
        raise KeyFileError("EC PRIVATE KEY without a named curve")
    inner = der.DerReader(parameters, "SEC1 curve parameters")
    curve = inner.oid() if inner.peek() == der.OID else "explicit"
    return PrivateKeyInfo(ID_EC_PUBLIC_KEY, curve, der_bytes, None)


def _pbes2_decrypt(der_bytes: bytes, passphrase: bytes) -> bytes:
    what = "encrypted private key"
    outer = der.DerReader(der_bytes, what)
    reader = outer.sequence()
    outer.end()
    scheme = reader.sequence()
    if (scheme_oid := scheme.oid()) != _PBES2:
        raise KeyFileError(f"unsupported key encryption scheme {scheme_oid} (only PBES2)")
    params = scheme.sequence()
    scheme.end()
    kdf = params.sequence()
    if (kdf_oid := kdf.oid()) != _PBKDF2:
        raise KeyFileError(f"unsupported key derivation {kdf_oid} (only PBKDF2)")
    kdf_params = kdf.sequence()
    kdf.end()
    salt = kdf_params.octets()
    iterations = kdf_params.integer()
    key_size = kdf_params.integer() if kdf_params.peek() == der.INTEGER else None
    prf_oid = "1.2.840.113549.2.7"  # hmacWithSHA1 is the PKCS#5 default
    if kdf_params.peek() is not None:
        prf = kdf_params.sequence()
        prf_oid = prf.oid()
        if prf.peek() == der.NULL:
            prf.null()
        prf.end()
    kdf_params.end()
    cipher_id = params.sequence()
    params.end()
    cipher_oid = cipher_id.oid()
    iv = cipher_id.octets()
    cipher_id.end()
    ciphertext = reader.octets()
    reader.end()

    cipher = _CIPHER_BY_OID.get(cipher_oid)
    if cipher is None:
        raise KeyFileError(f"unsupported key encryption cipher {cipher_oid}")
    if prf_oid not in _PRFS:
        raise KeyFileError(f"unsupported PBKDF2 pseudo-random function {prf_oid}")
    if not 1 <= iterations <= PBKDF2_ITERATIONS_MAX:
        raise KeyFileError(f"PBKDF2 iteration count {iterations} is out of range")
    if not 1 <= len(salt) <= 64 or len(iv) != 16 or key_size not in (None, cipher.key_size):
        raise KeyFileError("malformed encrypted private key: bad salt, IV or key length")
    if not ciphertext or len(ciphertext) % 16:
        raise KeyFileError("malformed encrypted private key: ciphertext is not whole blocks")
    key = PBKDF2HMAC(_PRFS[prf_oid](), cipher.key_size, salt, iterations).derive(passphrase)
    decryptor = Cipher(cipher.algorithm(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 16 or padded[-pad:] != bytes((pad,)) * pad:
        raise KeyFileError("wrong passphrase, or the key file is corrupted")
    return padded[:-pad]


# -- writing -----------------------------------------------------------------


def algorithm_identifier(algorithm: str, curve: str | None = None) -> bytes:
    return der.sequence(der.oid(algorithm), *([der.oid(curve)] if curve else []))


def private_key_info(algorithm_id: bytes, private_key: bytes) -> bytes:
    return der.sequence(der.integer(0), algorithm_id, der.octets(private_key))


def public_key_info(algorithm_id: bytes, key: bytes) -> bytes:
    return der.sequence(algorithm_id, der.bit_string(key))


def encode_private_pem(pkcs8: bytes, passphrase: bytes | None, cipher_name: str) -> bytes:
    """PEM of a PKCS#8 private key; encrypted with PBES2 when a passphrase is given."""
    if passphrase is None:
        return pem_encode("PRIVATE KEY", pkcs8)
    if not isinstance(passphrase, bytes) or not passphrase:
        raise ValueError("a passphrase must be non-empty bytes")
    cipher = _CIPHERS[cipher_name]
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    key = PBKDF2HMAC(hashes.SHA256(), cipher.key_size, salt, PBKDF2_ITERATIONS).derive(passphrase)
    pad = 16 - len(pkcs8) % 16
    encryptor = Cipher(cipher.algorithm(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(pkcs8 + bytes((pad,)) * pad) + encryptor.finalize()
    kdf = der.sequence(
        der.oid(_PBKDF2),
        der.sequence(
            der.octets(salt),
            der.integer(PBKDF2_ITERATIONS),
            der.sequence(der.oid(_HMAC_SHA256), der.null()),
        ),
    )
    scheme = der.sequence(
        der.oid(_PBES2),
        der.sequence(kdf, der.sequence(der.oid(cipher.oid), der.octets(iv))),
    )
    return pem_encode("ENCRYPTED PRIVATE KEY", der.sequence(scheme, der.octets(ciphertext)))


def encode_public_pem(spki: bytes) -> bytes:
    return pem_encode("PUBLIC KEY", spki)
