"""Property tests for the crypto suites (hypothesis).

SM2 under the pure-Python gmssl backend does ~70 verifies/s, so examples that sign or
verify SM2 are few (``SM2_EXAMPLES``); properties that fail before any curve arithmetic
(malformed keys, signatures, PEM) run many examples.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.crypto import PrivateKey, get_suite, pkcs8, tagged
from ledger.errors import CryptoError, KeyFileError

pytestmark = pytest.mark.crypto

SUITES = ["sm", "intl"]
SM2_EXAMPLES = 30
purposes = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
messages = st.binary(max_size=300)
slow = settings(max_examples=SM2_EXAMPLES, deadline=None)
fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _key(name: str) -> PrivateKey:
    return get_suite(name).generate_key()


@functools.cache
def _signed(name: str) -> tuple[bytes, bytes]:
    """(raw public key, signature of b"fixed message" for purpose "tx")."""
    return _key(name).public_key().raw, _key(name).sign("tx", b"fixed message")


def _flip(data: bytes, bit: int) -> bytes:
    bit %= 8 * len(data)
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("name", SUITES)
@slow
@given(purpose=purposes, message=messages)
def test_sign_verify_round_trip(name: str, purpose: str, message: bytes) -> None:
    """Goal: whatever is signed verifies, under its purpose only. Method: sign random
    (purpose, message) pairs; verify via the suite and via the key object."""
    key = _key(name)
    signature = key.sign(purpose, message)
    assert get_suite(name).verify(key.public_key().raw, purpose, message, signature)
    assert key.public_key().verify(purpose, message, signature)
    other = "x" + purpose[1:] if purpose[0] != "x" else "y" + purpose[1:]
    assert not key.public_key().verify(other, message, signature)


@pytest.mark.parametrize("name", SUITES)
@slow
@given(message=messages.filter(bool), bit=st.integers(min_value=0))
def test_message_bit_flip_fails(name: str, message: bytes, bit: int) -> None:
    """Goal: any single-bit change of the message breaks the signature. Method: sign,
    flip one random bit of the message, verify is False (and does not raise)."""
    key = _key(name)
    signature = key.sign("tx", message)
    assert (
        get_suite(name).verify(key.public_key().raw, "tx", _flip(message, bit), signature) is False
    )


@pytest.mark.parametrize("name", SUITES)
@slow
@given(bit=st.integers(min_value=0))
def test_signature_and_public_key_bit_flips_fail(name: str, bit: int) -> None:
    """Goal: any single-bit change of the signature or of the public key makes verify
    return False, never raise. Method: flip one random bit of each of a fixed valid
    (key, signature) pair."""
    raw, signature = _signed(name)
    suite = get_suite(name)
    assert suite.verify(_flip(raw, bit), "tx", b"fixed message", signature) is False
    assert suite.verify(raw, "tx", b"fixed message", _flip(signature, bit)) is False


@pytest.mark.parametrize("name", SUITES)
@fast
@given(junk=st.binary(max_size=100))
def test_arbitrary_bytes_as_signature_or_key_are_false(name: str, junk: bytes) -> None:
    """Goal: random bytes never verify and never raise, as a signature or as a public key.
    Method: feed random bytes in each position next to a valid counterpart."""
    raw, signature = _signed(name)
    suite = get_suite(name)
    assert suite.verify(raw, "tx", b"fixed message", junk) is False
    assert suite.verify(junk, "tx", b"fixed message", signature) is False


@pytest.mark.parametrize("name", SUITES)
@fast
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.builds(
            pkcs8.pem_encode,
            st.sampled_from(["PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"]),
            st.binary(max_size=300),
        ),
    ),
    passphrase=st.one_of(st.none(), st.just(b"pw")),
)
def test_arbitrary_pem_is_key_file_error_only(
    name: str, data: bytes, passphrase: bytes | None
) -> None:
    """Goal: any bytes given as a private key end in KeyFileError, nothing else. Method:
    random bytes, and random DER armoured under each accepted PEM label."""
    with pytest.raises(KeyFileError):
        get_suite(name).load_private_pem(data, passphrase)


@pytest.mark.parametrize("name", SUITES)
@fast
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(pkcs8.pem_encode, st.just("PUBLIC KEY"), st.binary(max_size=200)),
    )
)
def test_arbitrary_public_pem_is_key_file_error_only(name: str, data: bytes) -> None:
    """Goal: any bytes given as a public key PEM end in KeyFileError. Method: random bytes
    and random DER armoured as PUBLIC KEY."""
    with pytest.raises(KeyFileError):
        get_suite(name).load_public_pem(data)


@functools.cache
def _key_file_der(name: str, encrypted: bool) -> bytes:
    """A valid key file's DER; encrypted ones use few PBKDF2 rounds so mutants stay fast."""
    saved = pkcs8.PBKDF2_ITERATIONS
    pkcs8.PBKDF2_ITERATIONS = 1000
    try:
        pem = _key(name).private_pem(b"pw" if encrypted else None)
    finally:
        pkcs8.PBKDF2_ITERATIONS = saved
    return pkcs8.pem_decode(pem, frozenset({"PRIVATE KEY", "ENCRYPTED PRIVATE KEY"}), "key")[1]


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@settings(max_examples=60, deadline=None)
@given(bits=st.lists(st.integers(min_value=0), min_size=1, max_size=3), cut=st.integers(0, 8))
def test_mutated_key_files_load_or_raise_key_file_error(
    name: str, encrypted: bool, bits: list[int], cut: int
) -> None:
    """Goal: a damaged key file either still decodes to some valid key of the suite or
    gives KeyFileError, never another exception. Method: flip 1–3 random bits of a valid
    file's DER and drop up to 8 trailing bytes, re-armour, load."""
    der_bytes = _key_file_der(name, encrypted)
    for bit in bits:
        der_bytes = _flip(der_bytes, bit)
    der_bytes = der_bytes[: len(der_bytes) - cut]
    label = "ENCRYPTED PRIVATE KEY" if encrypted else "PRIVATE KEY"
    try:
        key = get_suite(name).load_private_pem(pkcs8.pem_encode(label, der_bytes), b"pw")
    except KeyFileError:
        return
    assert key.suite is get_suite(name)


@pytest.mark.parametrize("name", SUITES)
@fast
@given(
    plaintext=st.binary(max_size=200),
    aad=st.binary(max_size=50),
    nonce=st.binary(min_size=12, max_size=12),
)
def test_aead_round_trip(name: str, plaintext: bytes, aad: bytes, nonce: bytes) -> None:
    """Goal: aead_open inverts aead_seal. Method: random plaintext, aad and nonce."""
    suite = get_suite(name)
    key = b"k" * suite.aead_key_size
    assert (
        suite.aead_open(key, nonce, suite.aead_seal(key, nonce, plaintext, aad), aad) == plaintext
    )


@pytest.mark.parametrize("name", SUITES)
@fast
@given(
    plaintext=st.binary(max_size=100),
    aad=st.binary(min_size=1, max_size=30),
    where=st.sampled_from(["sealed", "aad", "nonce"]),
    bit=st.integers(min_value=0),
)
def test_aead_bit_flip_is_crypto_error(
    name: str, plaintext: bytes, aad: bytes, where: str, bit: int
) -> None:
    """Goal: any single-bit change of ciphertext, tag, aad or nonce is detected. Method:
    seal, flip one random bit in the chosen input, opening raises CryptoError."""
    suite = get_suite(name)
    key, nonce = b"k" * suite.aead_key_size, b"n" * 12
    parts = {"sealed": suite.aead_seal(key, nonce, plaintext, aad), "aad": aad, "nonce": nonce}
    parts[where] = _flip(parts[where], bit)
    with pytest.raises(CryptoError):
        suite.aead_open(key, parts["nonce"], parts["sealed"], parts["aad"])


@settings(max_examples=300)
@given(a=st.tuples(purposes, messages), b=st.tuples(purposes, messages))
def test_tagged_is_injective(a: tuple[str, bytes], b: tuple[str, bytes]) -> None:
    """Goal: distinct (purpose, message) pairs are signed as distinct bytes, so no
    signature serves two purposes. Method: random pairs; equal tagged bytes imply equal
    pairs."""
    assert (tagged(*a) == tagged(*b)) == (a == b)
