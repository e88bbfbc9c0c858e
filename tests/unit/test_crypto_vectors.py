"""Known-answer tests for the crypto suites' primitives, tags and suite lookup."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm3 as gmssl_sm3

from ledger.crypto import get_suite, sm2, tagged
from ledger.crypto.hashing import SHA256_IMPLEMENTATION, SM3_IMPLEMENTATION
from ledger.errors import InputError

pytestmark = pytest.mark.crypto

SM = get_suite("sm")
INTL = get_suite("intl")


def _gmssl_sm3(data: bytes) -> bytes:
    """SM3 by gmssl's pure-Python code: an implementation independent of OpenSSL."""
    return bytes.fromhex(gmssl_sm3.sm3_hash(list(data)))


def test_sm3_known_answers() -> None:
    """Goal: suite "sm" hashes with SM3. Method: GB/T 32905 examples "abc" and "abcd"×16."""
    assert SM.hash(b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert SM.hash(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )
    assert SM.hash_name == "sm3" and SM3_IMPLEMENTATION in ("hashlib", "cryptography")


def test_sm3_agrees_with_pure_python_reference_at_block_boundaries() -> None:
    """Goal: the fast SM3 is right for every padding case, and its shared hashlib object
    is not disturbed between calls. Method: compare with gmssl's pure-Python SM3 on
    lengths 0..130 (around the 55/56/64-byte padding boundaries), hashing each twice."""
    for length in range(131):
        data = bytes(range(length))
        assert SM.hash(data) == _gmssl_sm3(data) == SM.hash(data)


def test_sha256_known_answer() -> None:
    """Goal: suite "intl" hashes with SHA-256. Method: FIPS 180-2 example "abc"."""
    assert INTL.hash(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert INTL.hash(b"") == hashlib.sha256(b"").digest()
    assert INTL.hash_name == "sha256" and SHA256_IMPLEMENTATION in ("hashlib", "cryptography")


def test_sm4_block_known_answer() -> None:
    """Goal: the SM4 we build SM4-GCM on is SM4. Method: GB/T 32907 example, one ECB block
    with key = plaintext = 0123456789abcdeffedcba9876543210."""
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (encryptor.update(key) + encryptor.finalize()).hex() == (
        "681edf34d206965e86b3e94f536e4246"
    )


def test_sm4_gcm_known_answer() -> None:
    """Goal: suite "sm" AEAD is standard SM4-GCM. Method: RFC 8998 Appendix A.1 vector
    through aead_seal and aead_open."""
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    expected = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    assert SM.aead_seal(key, nonce, plaintext, aad) == expected
    assert SM.aead_open(key, nonce, expected, aad) == plaintext


def test_aes256_gcm_known_answers() -> None:
    """Goal: suite "intl" AEAD is standard AES-256-GCM. Method: McGrew–Viega GCM spec
    test cases 14 (zero key, one zero block) and 16 (with AAD), as used in NIST CAVP."""
    sealed14 = INTL.aead_seal(bytes(32), bytes(12), bytes(16))
    assert sealed14.hex() == "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    nonce = bytes.fromhex("cafebabefacedbaddecaf888")
    plaintext = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    expected = bytes.fromhex(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"
    )
    assert INTL.aead_seal(key, nonce, plaintext, aad) == expected
    assert INTL.aead_open(key, nonce, expected, aad) == plaintext


def test_hmac_sha256_known_answer() -> None:
    """Goal: suite "intl" HMAC is HMAC-SHA256. Method: RFC 4231 test case 2."""
    assert INTL.hmac(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_hmac_sm3_matches_rfc2104_over_pure_python_sm3() -> None:
    """Goal: suite "sm" HMAC is HMAC-SM3. Method: build RFC 2104 HMAC by hand over gmssl's
    pure-Python SM3 (no OpenSSL involved) and compare, for short, block-size and long keys."""
    for key in (b"", b"key", b"k" * 64, b"long key " * 20):
        block = _gmssl_sm3(key) if len(key) > 64 else key
        block = block.ljust(64, b"\x00")
        inner = _gmssl_sm3(bytes(b ^ 0x36 for b in block) + b"message")
        expected = _gmssl_sm3(bytes(b ^ 0x5C for b in block) + inner)
        assert SM.hmac(key, b"message") == expected


def test_hkdf_sha256_known_answer() -> None:
    """Goal: suite "intl" kdf is HKDF-SHA256 without salt. Method: RFC 5869 test case 3
    (empty salt and info, which equals no salt)."""
    okm = INTL.kdf(bytes([0x0B] * 22), b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_hkdf_sm3_matches_rfc5869_by_hand() -> None:
    """Goal: suite "sm" kdf is HKDF with SM3. Method: compute RFC 5869 extract-and-expand
    by hand with Python's hmac over hashlib SM3 and compare (two output blocks)."""
    secret, info = b"shared secret", b"govledger transport v1"

    prk = hmac.new(bytes(32), secret, "sm3").digest()
    t1 = hmac.new(prk, info + b"\x01", "sm3").digest()
    t2 = hmac.new(prk, t1 + info + b"\x02", "sm3").digest()
    assert SM.kdf(secret, info, 48) == (t1 + t2)[:48]
    assert isinstance(SM._kdf_hash(), hashes.SM3)


def test_tagged_layout() -> None:
    """Goal: the signed bytes are exactly as specified. Method: compare with the literal."""
    assert tagged("tx", b"\x01\x02") == b"govledger/tx/v1\x00\x01\x02"
    assert tagged("view-change", b"") == b"govledger/view-change/v1\x00"
    assert tagged("a" * 32, b"m").startswith(b"govledger/" + b"a" * 32)


@pytest.mark.parametrize("purpose", ["", "Tx", "-tx", "tx/v2", "a" * 33, "tx\x00", "交易"])
def test_tagged_rejects_bad_purposes(purpose: str) -> None:
    """Goal: a malformed purpose is a programming error, reported as ValueError.
    Method: empty, upper case, leading dash, slash, too long, NUL, non-ASCII."""
    with pytest.raises(ValueError, match="purpose"):
        tagged(purpose, b"message")


def test_get_suite() -> None:
    """Goal: suites come by name as singletons, "sm" by default, and an unknown name is an
    InputError listing the valid ones. Method: look up names and compare identities."""
    assert get_suite() is get_suite("sm") is SM
    assert get_suite("intl") is INTL
    assert (SM.name, SM.aead_key_size, INTL.name, INTL.aead_key_size) == ("sm", 16, "intl", 32)
    with pytest.raises(InputError, match=r"unknown crypto suite 'rsa'.*'sm', 'intl'"):
        get_suite("rsa")


def test_sm2_gbt32918_example_verifies_in_each_backend() -> None:
    """Goal: both SM2 backends implement GB/T 32918 with the default ID. Method: the
    standard's worked example (private key, public key, signature on "message digest")
    is reproduced and verified by each installed backend; a changed message fails."""
    private = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
    backends: list[sm2.Backend] = [sm2.GmsslBackend()]
    with contextlib.suppress(ImportError):
        backends.append(sm2.TongsuoBackend())
    for backend in backends:
        assert backend.public_raw(private) == sm2._KAT_PUBLIC
        assert backend.self_test(), backend.name
