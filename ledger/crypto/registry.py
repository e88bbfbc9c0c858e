"""Suites by name, and loading a private key file whose suite the key itself tells."""

from __future__ import annotations

import functools
import os

from ledger.crypto import pkcs8, sm2
from ledger.crypto.base import PrivateKey, Suite
from ledger.crypto.intl import IntlSuite
from ledger.crypto.sm import SMSuite
from ledger.errors import InputError, KeyFileError

SUITE_NAMES = ("sm", "intl")
ENV_PASSPHRASE = "GOVLEDGER_KEY_PASSPHRASE"
KEY_FILE_BYTES_MAX = pkcs8.PEM_BYTES_MAX


@functools.cache
def _suite(name: str) -> Suite:
    return SMSuite() if name == "sm" else IntlSuite()


# Suites registered at run time by the consensus simulator (fast, HMAC-based keys).
# Never part of SUITE_NAMES, so no genesis file can name one.
_TEST_SUITES: dict[str, Suite] = {}


def register_test_suite(name: str, suite: Suite) -> None:
    assert name not in SUITE_NAMES and name.startswith("sim")
    _TEST_SUITES[name] = suite


def get_suite(name: str = "sm") -> Suite:
    """The suite called ``name`` ("sm" or "intl"); InputError for any other name."""
    if name in _TEST_SUITES:
        return _TEST_SUITES[name]
    if name not in SUITE_NAMES:
        raise InputError(
            f"unknown crypto suite {name!r}; valid suites: {', '.join(map(repr, SUITE_NAMES))}"
        )
    return _suite(name)


def sm2_backend_name() -> str:
    """The SM2 backend this process uses for suite "sm": "tongsuopy" or "gmssl"."""
    return sm2.default_backend().name


def load_private_key_file(
    path: str | os.PathLike[str],
    suite_name: str | None = None,
    passphrase: bytes | None = None,
) -> PrivateKey:
    """Loads a PEM private key file.

    ``passphrase`` defaults to ``$GOVLEDGER_KEY_PASSPHRASE`` (UTF-8) when None.
    The suite is the key's own (SM2 → "sm", Ed25519 → "intl") when
    ``suite_name`` is None; otherwise the key must belong to that suite.
    Every problem is a KeyFileError naming the file and saying what is wrong.
    """
    if suite_name is not None:
        get_suite(suite_name)  # InputError for a bad name, before touching the file
    if passphrase is None and os.environ.get(ENV_PASSPHRASE):
        passphrase = os.environ[ENV_PASSPHRASE].encode("utf-8")
    try:
        with open(path, "rb") as file:
            data = file.read(KEY_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror}") from None
    try:
        info = pkcs8.decode_private_pem(data, passphrase)
        detected = pkcs8.SUITE_OF_KIND.get(info.kind)
        wanted = suite_name or detected
        if wanted is None:
            raise KeyFileError(f"this is {info.kind}; govledger keys are SM2 or Ed25519")
        return get_suite(wanted).private_key_from_info(info)
    except KeyFileError as exc:
        raise KeyFileError(f"key file {os.fspath(path)!r}: {exc}") from None
