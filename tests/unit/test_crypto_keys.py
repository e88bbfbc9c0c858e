"""Key files: PEM round trips, passphrases, file modes, clear errors, OpenSSL/Tongsuo interop."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ledger.crypto import (
    ENV_PASSPHRASE,
    PrivateKey,
    get_suite,
    load_private_key_file,
    pkcs8,
    sm2,
)
from ledger.crypto import der as d
from ledger.errors import InputError, KeyFileError

pytestmark = pytest.mark.crypto

SUITES = ["sm", "intl"]


def _openssl3() -> str | None:
    path = shutil.which("openssl")
    if path is None:
        return None
    version = subprocess.run([path, "version"], capture_output=True, text=True).stdout
    match = re.match(r"OpenSSL (\d+)\.", version)
    return path if match and int(match.group(1)) >= 3 else None


OPENSSL = _openssl3()
needs_openssl3 = pytest.mark.skipif(OPENSSL is None, reason="no OpenSSL >= 3 command found")


def _openssl(*args: str | Path, cwd: Path) -> str:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    """One generated key per suite, shared by this module's tests (SM2 may be slow)."""
    return {name: get_suite(name).generate_key() for name in SUITES}


@pytest.fixture(autouse=True)
def _no_env_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", SUITES)
def test_round_trip_plain_and_encrypted(
    name: str, keys: dict[str, PrivateKey], tmp_path: Path
) -> None:
    """Goal: keys survive save/load, with and without a passphrase, via both loaders.
    Method: save, reload with the suite and with autodetection; compare public keys and
    check that the reloaded key's signature verifies under the original public key."""
    suite, key = get_suite(name), keys[name]
    key.save(tmp_path / "plain.pem")
    key.save(tmp_path / "secret.pem", passphrase=b"correct horse")
    assert (tmp_path / "plain.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert (tmp_path / "secret.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE")
    plain = load_private_key_file(tmp_path / "plain.pem")
    secret = load_private_key_file(tmp_path / "secret.pem", name, b"correct horse")
    via_suite = suite.load_private_pem((tmp_path / "secret.pem").read_bytes(), b"correct horse")
    for loaded in (plain, secret, via_suite):
        assert loaded.suite is suite and loaded.public_key() == key.public_key()
    assert key.public_key().verify("tx", b"m", secret.sign("tx", b"m"))
    key.public_key().save(tmp_path / "pub.pem")
    assert suite.load_public_pem((tmp_path / "pub.pem").read_bytes()) == key.public_key()


@pytest.mark.parametrize("name", SUITES)
def test_private_key_files_are_0600_and_written_atomically(
    name: str, keys: dict[str, PrivateKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Goal: a private key file is never readable by others, even briefly, and a save
    replaces the old file atomically. Method: with umask 0, record the os.open calls
    save makes (the file must be created 0600 with O_EXCL), check the final mode, that an
    existing 0644 file ends 0600, and that no temporary files are left."""
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, **kwargs)

    target = tmp_path / "node.key"
    target.write_text("old")
    target.chmod(0o644)
    old_umask = os.umask(0)
    try:
        monkeypatch.setattr(os, "open", recording_open)
        keys[name].save(target)
    finally:
        os.umask(old_umask)
    created = [call for call in calls if call[1] & os.O_CREAT]
    assert len(created) == 1 and created[0][2] == 0o600 and created[0][1] & os.O_EXCL
    assert _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]
    keys[name].public_key().save(tmp_path / "node.pub")
    assert _mode(tmp_path / "node.pub") == 0o644


@pytest.mark.parametrize("name", SUITES)
def test_passphrase_errors_are_clear(
    name: str, keys: dict[str, PrivateKey], tmp_path: Path
) -> None:
    """Goal: wrong or missing passphrases give KeyFileError saying so, naming the file.
    Method: load an encrypted file with a wrong passphrase and with none."""
    path = tmp_path / "k.pem"
    keys[name].save(path, passphrase=b"right")
    with pytest.raises(KeyFileError, match=r"k\.pem.*wrong passphrase"):
        load_private_key_file(path, passphrase=b"wrong")
    with pytest.raises(KeyFileError, match="encrypted: a passphrase is needed"):
        load_private_key_file(path)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        get_suite(name).load_private_pem(path.read_bytes(), b"")


@pytest.mark.parametrize("name", SUITES)
def test_env_passphrase(
    name: str, keys: dict[str, PrivateKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Goal: GOVLEDGER_KEY_PASSPHRASE (UTF-8) unlocks key files when no passphrase is
    passed, and an explicit passphrase wins. Method: set the variable, load."""
    path = tmp_path / "k.pem"
    keys[name].save(path, passphrase="口令-secret".encode())
    monkeypatch.setenv(ENV_PASSPHRASE, "口令-secret")
    assert load_private_key_file(path).public_key() == keys[name].public_key()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key_file(path, passphrase=b"other")


def test_key_of_the_other_suite_is_refused(keys: dict[str, PrivateKey], tmp_path: Path) -> None:
    """Goal: using an SM2 key where Ed25519 is expected (or vice versa) fails clearly.
    Method: cross-load private and public PEMs and ask load_private_key_file for the
    wrong suite."""
    sm, intl = get_suite("sm"), get_suite("intl")
    with pytest.raises(KeyFileError, match=r"Ed25519 key \(suite 'intl'\).*'sm' needs an SM2"):
        sm.load_private_pem(keys["intl"].private_pem())
    with pytest.raises(KeyFileError, match=r"SM2 key \(suite 'sm'\).*'intl' needs an Ed25519"):
        intl.load_public_pem(keys["sm"].public_key().public_pem())
    keys["sm"].save(tmp_path / "sm.pem", passphrase=b"pw")
    with pytest.raises(KeyFileError, match=r"sm\.pem.*needs an Ed25519 key"):
        load_private_key_file(tmp_path / "sm.pem", "intl", b"pw")
    with pytest.raises(InputError, match="unknown crypto suite"):
        load_private_key_file(tmp_path / "sm.pem", "ecdsa", b"pw")


def _foreign_pems() -> dict[str, tuple[bytes, str]]:
    nist = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pkcs8_format = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)
    plain = serialization.NoEncryption()
    return {
        "P-256": (nist.private_bytes(*pkcs8_format, plain), "EC key on curve prime256v1"),
        "RSA": (rsa_key.private_bytes(*pkcs8_format, plain), "an RSA key"),
    }


@pytest.mark.parametrize("name", SUITES)
def test_garbage_and_foreign_keys_give_clear_key_file_errors(
    name: str, keys: dict[str, PrivateKey]
) -> None:
    """Goal: anything that is not a usable key ends in KeyFileError with a message saying
    what it is. Method: a table of bad inputs and the words the message must contain."""
    suite = get_suite(name)
    private_pem = keys[name].private_pem()
    public_pem = keys[name].public_key().public_pem()
    body = b"".join(private_pem.splitlines()[1:-1])
    cases: dict[str, tuple[bytes, str]] = {
        "empty": (b"", "not a PEM file"),
        "text": (b"hello world", "not a PEM file"),
        "DER": (b"\x30\x03\x02\x01\x00", "looks like DER"),
        "public given": (public_pem, r"no private key in this PEM \(it holds: PUBLIC KEY\)"),
        "bad base64": (private_pem.replace(body[10:14], b"!!!!"), "not valid base64"),
        "truncated": (pkcs8.pem_encode("PRIVATE KEY", pkcs8.pem_decode(
            private_pem, frozenset({"PRIVATE KEY"}), "x")[1][:-5]), "malformed"),
        "legacy encrypted": (
            b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00"
            b"\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "legacy OpenSSL-encrypted PEM",
        ),
        **_foreign_pems(),
    }  # fmt: skip
    for data, message in cases.values():
        with pytest.raises(KeyFileError, match=message):
            suite.load_private_pem(data)
    with pytest.raises(KeyFileError, match="no public key in this PEM"):
        suite.load_public_pem(private_pem)


@pytest.mark.parametrize("name", SUITES)
def test_hostile_der_is_key_file_error(name: str) -> None:
    """Goal: crafted DER meant to exhaust or confuse the parser ends in KeyFileError, never
    another exception (e.g. Python's int-to-str digit limit). Method: huge OID arcs and
    INTEGERs, BER indefinite and non-minimal lengths, lengths past the end, under each
    private key label and as a public key."""
    algorithm = pkcs8.algorithm_identifier(pkcs8.ED25519)
    huge_oid = d.tlv(d.OID, b"\x81" * 5000 + b"\x01")
    cases = [
        d.sequence(d.integer(0), d.sequence(huge_oid), d.octets(b"x")),
        d.sequence(d.tlv(d.INTEGER, b"\x01" * 5000), algorithm, d.octets(b"x")),
        b"\x30\x80" + d.integer(0) + b"\x00\x00",
        b"\x30\x82\x00\x03" + d.integer(0),
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x05" + d.integer(0),
        b"\x3f\x01\x00",
    ]
    suite = get_suite(name)
    for case in cases:
        for label in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"):
            with pytest.raises(KeyFileError, match="malformed"):
                suite.load_private_pem(pkcs8.pem_encode(label, case), b"pw")
        with pytest.raises(KeyFileError, match="malformed"):
            suite.load_public_pem(pkcs8.pem_encode("PUBLIC KEY", case))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    """Goal: file system problems are KeyFileErrors naming the file. Method: a missing
    path and a directory."""
    with pytest.raises(KeyFileError, match=r"cannot read key file '.*nope\.pem'"):
        load_private_key_file(tmp_path / "nope.pem")
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_private_key_file(tmp_path)


def _sm2_pkcs8(d_value: int, public: bytes | None) -> bytes:
    fields = [d.integer(1), d.octets(d_value.to_bytes(32, "big"))]
    if public is not None:
        fields.append(d.tlv(d.CONTEXT_1, d.bit_string(public)))
    algorithm = pkcs8.algorithm_identifier(pkcs8.ID_EC_PUBLIC_KEY, pkcs8.SM2_CURVE)
    return pkcs8.pem_encode("PRIVATE KEY", pkcs8.private_key_info(algorithm, d.sequence(*fields)))


def test_sm2_private_scalar_and_public_point_are_checked(keys: dict[str, PrivateKey]) -> None:
    """Goal: SM2 key files with an out-of-range scalar (tongsuopy would accept d >= n) or a
    public key not matching the scalar are refused. Method: hand-built PKCS#8 files;
    a file without the optional public key still loads."""
    suite = get_suite("sm")
    for bad in (0, sm2.N - 1, sm2.N, sm2.N + 5):
        with pytest.raises(KeyFileError, match=r"out of range \[1, n-2\]"):
            suite.load_private_pem(_sm2_pkcs8(bad, None))
    other = keys["sm"].public_key().raw
    with pytest.raises(KeyFileError, match="does not match the private key"):
        suite.load_private_pem(_sm2_pkcs8(12345, other))
    key = suite.load_private_pem(_sm2_pkcs8(12345, None))
    assert suite.load_private_pem(_sm2_pkcs8(12345, key.public_key().raw)).public_key() == (
        key.public_key()
    )


def test_sm2_legacy_sec1_and_compressed_public_keys_load(keys: dict[str, PrivateKey]) -> None:
    """Goal: older SM2 encodings other tools write are read: SEC1 'EC PRIVATE KEY' with
    the curve inside, and SPKI with a compressed point. Method: build them by hand."""
    suite = get_suite("sm")
    raw = keys["sm"].public_key().raw
    sec1 = d.sequence(
        d.integer(1),
        d.octets((777).to_bytes(32, "big")),
        d.tlv(d.CONTEXT_0, d.oid(pkcs8.SM2_CURVE)),
    )
    key = suite.load_private_pem(pkcs8.pem_encode("EC PRIVATE KEY", sec1))
    assert key.public_key().raw == suite.backend.public_raw(777)  # type: ignore[attr-defined]
    compressed = bytes([2 + (raw[-1] & 1)]) + raw[1:33]
    algorithm = pkcs8.algorithm_identifier(pkcs8.ID_EC_PUBLIC_KEY, pkcs8.SM2_CURVE)
    pem = pkcs8.encode_public_pem(pkcs8.public_key_info(algorithm, compressed))
    assert suite.load_public_pem(pem).raw == raw


def test_public_key_from_raw_validates() -> None:
    """Goal: Suite.public_key(raw) accepts only valid keys, with a reason otherwise.
    Method: bad lengths and off-curve / invalid points for both suites."""
    sm, intl = get_suite("sm"), get_suite("intl")
    with pytest.raises(KeyFileError, match="65 bytes"):
        sm.public_key(b"\x04" + bytes(63))
    with pytest.raises(KeyFileError, match="not a point on the SM2 curve"):
        sm.public_key(b"\x04" + bytes(64))
    with pytest.raises(KeyFileError, match="32 bytes, not 31"):
        intl.public_key(bytes(31))
    with pytest.raises(KeyFileError, match="not a valid Ed25519 public key"):
        intl.public_key(bytes(32))  # the identity: small order


@needs_openssl3
@pytest.mark.parametrize("name", SUITES)
def test_openssl_reads_our_encrypted_key_files(
    name: str, keys: dict[str, PrivateKey], tmp_path: Path
) -> None:
    """Goal: our encrypted PKCS#8 (PBES2, SM4-CBC or AES-256-CBC) is standard. Method:
    `openssl pkey -in ours.pem -passin pass:X -pubout` gives our public key PEM."""
    keys[name].save(tmp_path / "k.pem", passphrase=b"X")
    public = _openssl("pkey", "-in", "k.pem", "-passin", "pass:X", "-pubout", cwd=tmp_path)
    assert public.encode() == keys[name].public_key().public_pem()
    structure = _openssl("asn1parse", "-in", "k.pem", cwd=tmp_path)
    assert ("sm4-cbc" if name == "sm" else "aes-256-cbc") in structure
    assert "hmacWithSHA256" in structure and ":030D40" in structure  # 200,000 rounds


@needs_openssl3
@pytest.mark.parametrize(
    "options",
    [[], ["-aes-256-cbc", "-pass", "pass:X"], ["-sm4-cbc", "-pass", "pass:X"]],
    ids=["plain", "aes-256-cbc", "sm4-cbc"],
)
def test_openssl_sm2_keys_load(options: list[str], tmp_path: Path) -> None:
    """Goal: SM2 keys made by `openssl genpkey -algorithm SM2` (plain and encrypted) load,
    as the same key. Method: generate, load with passphrase X, compare the public key
    with `openssl pkey -pubout`."""
    _openssl("genpkey", "-algorithm", "SM2", *options, "-out", "k.pem", cwd=tmp_path)
    public = _openssl("pkey", "-in", "k.pem", "-passin", "pass:X", "-pubout", cwd=tmp_path)
    key = load_private_key_file(tmp_path / "k.pem", passphrase=b"X")
    assert key.suite.name == "sm"
    assert key.public_key() == get_suite("sm").load_public_pem(public.encode())


@needs_openssl3
def test_openssl_ecparam_and_ed25519_keys_load(tmp_path: Path) -> None:
    """Goal: other OpenSSL outputs load: `ecparam -name SM2 -genkey` (a parameters block
    before the key) and an AES-encrypted Ed25519 key. Method: generate and load both."""
    _openssl("ecparam", "-name", "SM2", "-genkey", "-out", "sm2.pem", cwd=tmp_path)
    assert load_private_key_file(tmp_path / "sm2.pem").suite.name == "sm"
    _openssl(
        "genpkey", "-algorithm", "ED25519", "-aes-256-cbc", "-pass", "pass:X",
        "-out", "ed.pem", cwd=tmp_path,
    )  # fmt: skip
    public = _openssl("pkey", "-in", "ed.pem", "-passin", "pass:X", "-pubout", cwd=tmp_path)
    key = load_private_key_file(tmp_path / "ed.pem", passphrase=b"X")
    assert key.suite.name == "intl" and key.public_key().public_pem() == public.encode()


def _tongsuopy_serialization() -> tuple[Any, Any]:
    try:
        from tongsuopy.crypto import serialization as tongsuopy_serialization
        from tongsuopy.crypto.asymciphers import ec as tongsuopy_ec
    except ImportError:
        pytest.skip("tongsuopy is not installed")
    return tongsuopy_ec, tongsuopy_serialization


def test_tongsuopy_written_keys_load_and_ours_load_in_tongsuopy() -> None:
    """Goal: key files are byte-compatible with Tongsuo. Method: tongsuopy writes a plain
    and an encrypted PKCS#8 key (its default: PBES2 with SM4-CBC) which we load; tongsuopy
    loads our encrypted file and its signature verifies with our public key."""
    tec, ts = _tongsuopy_serialization()
    from tongsuopy.crypto import hashes as thashes

    theirs = tec.generate_private_key(tec.SM2())
    pkcs8_pem = (ts.Encoding.PEM, ts.PrivateFormat.PKCS8)
    plain = theirs.private_bytes(*pkcs8_pem, ts.NoEncryption())
    encrypted = theirs.private_bytes(*pkcs8_pem, ts.BestAvailableEncryption(b"X"))
    suite = get_suite("sm")
    public = suite.load_public_pem(
        theirs.public_key().public_bytes(ts.Encoding.PEM, ts.PublicFormat.SubjectPublicKeyInfo)
    )
    assert suite.load_private_pem(plain).public_key() == public
    assert suite.load_private_pem(encrypted, b"X").public_key() == public
    ours = suite.generate_key()
    loaded = ts.load_pem_private_key(ours.private_pem(b"Y"), b"Y")
    signature = loaded.sign(b"govledger/tx/v1\x00m", tec.ECDSA(thashes.SM3()))
    assert ours.public_key().verify("tx", b"m", signature)


def test_cryptography_written_ed25519_keys_load_and_ours_load_in_cryptography() -> None:
    """Goal: Ed25519 files interoperate with `cryptography`. Method: cryptography writes
    an encrypted key (BestAvailableEncryption) we load; it loads our encrypted file."""
    theirs = ed25519.Ed25519PrivateKey.generate()
    pem = theirs.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"X"),
    )
    raw = theirs.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert get_suite("intl").load_private_pem(pem, b"X").public_key().raw == raw
    ours = get_suite("intl").generate_key()
    loaded = serialization.load_pem_private_key(ours.private_pem(b"Y"), b"Y")
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert ours.public_key().verify("tx", b"m", loaded.sign(b"govledger/tx/v1\x00m"))


@pytest.mark.parametrize("name", SUITES)
def test_repr_and_errors_never_show_secrets(name: str, keys: dict[str, PrivateKey]) -> None:
    """Goal: private material never leaks into logs. Method: the private key's repr and
    str contain no part of the PEM body or the scalar."""
    text = repr(keys[name]) + str(keys[name])
    body = b"".join(keys[name].private_pem().splitlines()[1:-1]).decode()
    assert all(body[i : i + 12] not in text for i in range(0, len(body) - 12, 6))
    assert "public=" in text
