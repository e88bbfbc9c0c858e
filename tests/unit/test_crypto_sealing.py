"""Sealing to a signing key (ledger.crypto.sealing): round trip, tampering, wrong key."""

from __future__ import annotations

import pytest

from ledger.crypto import PrivateKey, get_suite
from ledger.crypto.sealing import open_sealed, seal
from ledger.errors import CryptoError, KeyFileError

pytestmark = pytest.mark.crypto

SUITES = ["sm", "intl"]
SECRET = "350102199003070016 张三 6222020200112233445".encode()


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[PrivateKey, PrivateKey]]:
    """A recipient and a bystander per suite (SM2 key generation is slow under gmssl)."""
    return {n: (get_suite(n).generate_key(), get_suite(n).generate_key()) for n in SUITES}


@pytest.mark.parametrize("name", SUITES)
def test_round_trip(name: str, keys: dict[str, tuple[PrivateKey, PrivateKey]]) -> None:
    """Goal: the holder of the private key opens what was sealed to its public key.
    Method: seal with the suite and the raw public key, open with the private key; two
    boxes of the same plaintext differ (fresh ephemeral key and nonce); empty plaintext."""
    suite, (recipient, _) = get_suite(name), keys[name]
    box = seal(suite, recipient.public_key().raw, SECRET, b"fiscal/payee")
    assert SECRET not in box
    assert open_sealed(recipient, box, b"fiscal/payee") == SECRET
    assert seal(suite, recipient.public_key().raw, SECRET) != seal(
        suite, recipient.public_key().raw, SECRET)
    assert open_sealed(recipient, seal(suite, recipient.public_key().raw, b"")) == b""


@pytest.mark.parametrize("name", SUITES)
def test_tampered_box_is_refused(name: str, keys: dict[str, tuple[PrivateKey, PrivateKey]]
                                 ) -> None:
    """Goal: any altered byte, truncation, other context or unknown version gives
    CryptoError and nothing else. Method: flip each byte of a box in turn; cut it short;
    open with another context."""
    suite, (recipient, _) = get_suite(name), keys[name]
    box = seal(suite, recipient.public_key().raw, SECRET, b"ctx")
    for i in range(len(box)):
        altered = box[:i] + bytes([box[i] ^ 0x01]) + box[i + 1:]
        with pytest.raises(CryptoError):
            open_sealed(recipient, altered, b"ctx")
    for cut in (0, 1, 2, 10, len(box) - 1):
        with pytest.raises(CryptoError):
            open_sealed(recipient, box[:cut], b"ctx")
    with pytest.raises(CryptoError):
        open_sealed(recipient, box, b"other")


@pytest.mark.parametrize("name", SUITES)
def test_wrong_key_is_refused(name: str, keys: dict[str, tuple[PrivateKey, PrivateKey]]) -> None:
    """Goal: a box sealed to one key cannot be opened with another key of the same suite.
    Method: seal to the recipient, open with the bystander's private key."""
    suite, (recipient, bystander) = get_suite(name), keys[name]
    box = seal(suite, recipient.public_key().raw, SECRET)
    with pytest.raises(CryptoError):
        open_sealed(bystander, box)


@pytest.mark.parametrize("name", SUITES)
def test_static_agreement_matches_ephemeral_side(
        name: str, keys: dict[str, tuple[PrivateKey, PrivateKey]]) -> None:
    """Goal: ``agree_static`` on the recipient's side equals ``agree`` on the sender's side.
    Method: compute both shared secrets directly; a bad recipient key is a KeyFileError."""
    suite, (recipient, _) = get_suite(name), keys[name]
    ephemeral, ephemeral_public = suite.generate_ephemeral()
    sender_side = suite.agree(ephemeral, suite.agreement_public(recipient.public_key().raw))
    assert suite.agree_static(recipient, ephemeral_public) == sender_side
    with pytest.raises(KeyFileError):
        seal(suite, b"\x04" + bytes(64), SECRET)
