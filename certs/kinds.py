"""Committee decisions owned by the certificates application, and its genesis data.

Theory of operation
-------------------
The consortium committee (:mod:`ledger.governance`) decides, with ≥ 2/3 of
its votes, which certificate types exist, who may issue them and which
agency recognises which issuers' certificates. Each decision is a
:class:`~ledger.execution.ProposalKind`: ``check`` validates and normalises
the parameters when the proposal is made, ``apply`` writes the state in the
block where the proposal passes (re-checking what may have changed since).

Kinds (parameters):

- ``register_cert_type`` — ``code`` (definer's USCC + 3 digits), ``name``,
  ``holder_code_types`` (``["001"]``, ``["111"]`` or both), ``fields``: a
  list of ``{"name", "label", "required"}`` for the type-specific fields;
- ``authorise_issuer`` / ``deauthorise_issuer`` — ``type``, ``issuer``
  (USCC of a registered organisation); effective from the next block;
- ``record_recognition`` — ``agency`` (USCC of a registered organisation),
  ``type``, ``issuers`` (USCCs), optional ``note``: agency accepts type from
  those issuers. A new agreement for the same agency and type replaces the
  old one (with a new number);
- ``withdraw_recognition`` — ``agency``, ``type``.

Genesis: ``genesis.apps["certs"] = {"types": [register_cert_type params],
"issuers": [{"type", "issuer"}], "recognitions": [record_recognition
params]}`` is applied at height 0 through the same checks.
"""

from __future__ import annotations

import re
from typing import Any, Final

from certs.document import FIELDS as CORE_FIELDS
from certs.ids import IdentifierError, validate_type_code, validate_uscc
from certs.records import (
    FIELD_NAME_RE,
    HOLDER_CODE_TYPES,
    RECOGNITION_NEXT_KEY,
    AuthPeriod,
    CertType,
    FieldSpec,
    IssuerAuth,
    Recognition,
    encode_record,
    get_issuer_auth,
    get_recognition,
    get_type,
    issuer_key,
    recognition_key,
    type_key,
)
from ledger import acl
from ledger.codec import Value, decode_value, encode_value
from ledger.errors import DecodeError, InputError, TxRejected
from ledger.execution import ExecContext, ProposalKind, Registry, StateGet, StateView
from ledger.genesis import initial_state

FIELDS_MAX: Final = 32
ISSUERS_MAX: Final = 200
NAME_CHARS_MAX: Final = 100
NOTE_CHARS_MAX: Final = 200
_NAME_RE: Final = re.compile(FIELD_NAME_RE)


def register(registry: Registry) -> None:
    for kind in KINDS:
        registry.register_kind(kind)
    registry.on_genesis(genesis_writes)


# -- parameter helpers -------------------------------------------------------------------------


def _text(p: dict[str, Value], name: str, most: int, required: bool = True) -> str:
    value = p.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > most:
        raise TxRejected(f"params.{name} must be a {'non-empty ' if required else ''}string of "
                         f"at most {most} characters")
    if any(ord(c) < 0x20 for c in value):
        raise TxRejected(f"params.{name} must not contain control characters")
    return value.strip()


def _uscc(p: dict[str, Value], name: str) -> str:
    value = p.get(name)
    if not isinstance(value, str):
        raise TxRejected(f"params.{name} must be a USCC")
    try:
        return validate_uscc(value)
    except IdentifierError as exc:
        raise TxRejected(f"params.{name}: {exc}") from None


def _registered_org(state_get: StateGet, p: dict[str, Value], name: str) -> str:
    uscc = _uscc(p, name)
    if acl.get_org(state_get, uscc) is None:
        raise TxRejected(f"params.{name}: no organisation {uscc} is registered")
    return uscc


def _registered_type(state_get: StateGet, p: dict[str, Value]) -> CertType:
    code = p.get("type")
    if not isinstance(code, str):
        raise TxRejected("params.type must be a certificate type code")
    try:
        code = validate_type_code(code)
    except IdentifierError as exc:
        raise TxRejected(f"params.type: {exc}") from None
    cert_type = get_type(state_get, code)
    if cert_type is None:
        raise TxRejected(f"certificate type {code} is not registered")
    return cert_type


def _only(p: dict[str, Value], allowed: set[str]) -> None:
    unknown = sorted(set(p) - allowed)
    if unknown:
        raise TxRejected(f"unknown parameter(s): {', '.join(unknown)}; expected "
                         f"{', '.join(sorted(allowed))}")


# -- register_cert_type ----------------------------------------------------------------------


def check_register_type(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    _only(p, {"code", "name", "holder_code_types", "fields"})
    code = p.get("code")
    if not isinstance(code, str):
        raise TxRejected("params.code must be a type code (definer's USCC + 3 digits)")
    try:
        code = validate_type_code(code)
    except IdentifierError as exc:
        raise TxRejected(f"params.code: {exc}") from None
    if get_type(state_get, code) is not None:
        raise TxRejected(f"certificate type {code} is already registered")
    kinds = p.get("holder_code_types", ["001"])
    if (not isinstance(kinds, list) or not kinds or len(set(map(str, kinds))) != len(kinds)
            or not all(k in HOLDER_CODE_TYPES for k in kinds)):
        raise TxRejected("params.holder_code_types must be a list of distinct holder code "
                         "types, 001 (USCC) and/or 111 (citizen ID)")
    fields = p.get("fields", [])
    if not isinstance(fields, list) or len(fields) > FIELDS_MAX:
        raise TxRejected(f"params.fields must be a list of at most {FIELDS_MAX} fields")
    out_fields: list[Value] = []
    seen: set[str] = set()
    for i, spec in enumerate(fields):
        if not isinstance(spec, dict):
            raise TxRejected(f"params.fields[{i}] must be {{name, label, required}}")
        _only(spec, {"name", "label", "required"})
        name, label, required = spec.get("name"), spec.get("label", ""), spec.get(
            "required", False)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise TxRejected(f"params.fields[{i}].name must match {FIELD_NAME_RE}")
        if name in seen or name in CORE_FIELDS or name == "extra":
            raise TxRejected(f"params.fields[{i}].name {name!r} is repeated or a core field")
        if not isinstance(label, str) or len(label) > NAME_CHARS_MAX:
            raise TxRejected(f"params.fields[{i}].label must be a string")
        if not isinstance(required, bool):
            raise TxRejected(f"params.fields[{i}].required must be true or false")
        seen.add(name)
        out_fields.append({"name": name, "label": label, "required": required})
    return {"code": code, "name": _text(p, "name", NAME_CHARS_MAX),
            "holder_code_types": sorted(str(k) for k in kinds),  # type: ignore[dict-item]
            "fields": out_fields}


def apply_register_type(state: StateView, height: int, p: dict[str, Value]) -> None:
    code, name, kinds, fields = p["code"], p["name"], p["holder_code_types"], p["fields"]
    assert isinstance(code, str) and isinstance(name, str)
    assert isinstance(kinds, list) and isinstance(fields, list)
    if get_type(state.get, code) is not None:
        raise TxRejected(f"certificate type {code} is already registered")
    specs = []
    for f in fields:
        assert isinstance(f, dict)
        specs.append(FieldSpec(str(f["name"]), str(f["label"]), bool(f["required"])))
    state.put(type_key(code), encode_record(CertType(code, name, [str(k) for k in kinds], specs,
                                                     height)))


# -- authorise / deauthorise -------------------------------------------------------------------


def check_authorise(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    _only(p, {"type", "issuer"})
    cert_type = _registered_type(state_get, p)
    issuer = _registered_org(state_get, p, "issuer")
    auth = get_issuer_auth(state_get, cert_type.code, issuer)
    if auth is not None and auth.current:
        raise TxRejected(f"{issuer} is already authorised to issue {cert_type.name}")
    return {"type": cert_type.code, "issuer": issuer}


def apply_authorise(state: StateView, height: int, p: dict[str, Value]) -> None:
    code, issuer = str(p["type"]), str(p["issuer"])
    auth = get_issuer_auth(state.get, code, issuer)
    if auth is not None and auth.current:
        raise TxRejected(f"{issuer} is already authorised for type {code}")
    periods = [*(auth.periods if auth else []), AuthPeriod(height + 1, None)]
    state.put(issuer_key(code, issuer), encode_record(IssuerAuth(code, issuer, periods)))


def check_deauthorise(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    _only(p, {"type", "issuer"})
    cert_type = _registered_type(state_get, p)
    issuer = _uscc(p, "issuer")
    auth = get_issuer_auth(state_get, cert_type.code, issuer)
    if auth is None or not auth.current:
        raise TxRejected(f"{issuer} is not authorised to issue {cert_type.name}")
    return {"type": cert_type.code, "issuer": issuer}


def apply_deauthorise(state: StateView, height: int, p: dict[str, Value]) -> None:
    code, issuer = str(p["type"]), str(p["issuer"])
    auth = get_issuer_auth(state.get, code, issuer)
    if auth is None or not auth.current:
        raise TxRejected(f"{issuer} is no longer authorised for type {code}")
    last = auth.periods[-1]
    periods = [*auth.periods[:-1], AuthPeriod(last.from_height, height + 1)]
    state.put(issuer_key(code, issuer), encode_record(IssuerAuth(code, issuer, periods)))


# -- recognition --------------------------------------------------------------------------------


def check_recognition(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    _only(p, {"agency", "type", "issuers", "note"})
    agency = _registered_org(state_get, p, "agency")
    cert_type = _registered_type(state_get, p)
    issuers = p.get("issuers")
    if not isinstance(issuers, list) or not 1 <= len(issuers) <= ISSUERS_MAX:
        raise TxRejected(f"params.issuers must be a list of 1 to {ISSUERS_MAX} issuer USCCs")
    normalised = sorted({_registered_org(state_get, {"issuer": i}, "issuer") for i in issuers})
    return {"agency": agency, "type": cert_type.code, "issuers": normalised,  # type: ignore[dict-item]
            "note": _text(p, "note", NOTE_CHARS_MAX, required=False)}


def apply_recognition(state: StateView, height: int, p: dict[str, Value]) -> None:
    agency, code, issuers, note = p["agency"], p["type"], p["issuers"], p["note"]
    assert isinstance(agency, str) and isinstance(code, str) and isinstance(issuers, list)
    raw = state.get(RECOGNITION_NEXT_KEY)
    number = decode_value(raw) if raw is not None else 1
    assert isinstance(number, int)
    state.put(RECOGNITION_NEXT_KEY, encode_value(number + 1))
    record = Recognition(number=number, agency=agency, type=code,
                         issuers=[str(i) for i in issuers], note=str(note),
                         recorded_height=height, withdrawn_height=None)
    state.put(recognition_key(code, agency), encode_record(record))


def check_withdraw(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    _only(p, {"agency", "type"})
    agency = _uscc(p, "agency")
    cert_type = _registered_type(state_get, p)
    current = get_recognition(state_get, cert_type.code, agency)
    if current is None or current.withdrawn_height is not None:
        raise TxRejected(f"{agency} has no recognition agreement for {cert_type.name}")
    return {"agency": agency, "type": cert_type.code}


def apply_withdraw(state: StateView, height: int, p: dict[str, Value]) -> None:
    agency, code = str(p["agency"]), str(p["type"])
    current = get_recognition(state.get, code, agency)
    if current is None or current.withdrawn_height is not None:
        raise TxRejected(f"{agency} has no recognition agreement for type {code}")
    state.put(recognition_key(code, agency), encode_record(Recognition(
        current.number, current.agency, current.type, current.issuers, current.note,
        current.recorded_height, height)))


def _kind(name: str, summary: str, check: Any, apply: Any) -> ProposalKind:
    def apply_ctx(ctx: ExecContext, p: dict[str, Value]) -> None:
        apply(ctx.state, ctx.height, p)

    return ProposalKind(name, summary, check, apply_ctx)


KINDS: Final = (
    _kind("register_cert_type", "register a certificate type (code, name, holder_code_types, "
          "fields: [{name, label, required}])", check_register_type, apply_register_type),
    _kind("authorise_issuer", "authorise an organisation to issue a type (type, issuer)",
          check_authorise, apply_authorise),
    _kind("deauthorise_issuer", "end an issuer's authorisation for a type (type, issuer)",
          check_deauthorise, apply_deauthorise),
    _kind("record_recognition", "record a mutual-recognition agreement: agency accepts type "
          "from issuers (agency, type, issuers[, note])", check_recognition, apply_recognition),
    _kind("withdraw_recognition", "withdraw a recognition agreement (agency, type)",
          check_withdraw, apply_withdraw),
)


# -- genesis ------------------------------------------------------------------------------------


def genesis_writes(genesis: Any) -> dict[bytes, bytes | None]:
    """State of block 0 from ``genesis.apps["certs"]`` (see the module docstring)."""
    section = genesis.apps.get("certs") if isinstance(genesis.apps, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict) or set(section) - {"types", "issuers", "recognitions"}:
        raise DecodeError('genesis.apps.certs must be {"types", "issuers", "recognitions"}')
    base = initial_state(genesis, None)
    state = StateView(lambda key: base.get(key))
    steps = ((check_register_type, apply_register_type, "types"),
             (check_authorise, apply_authorise, "issuers"),
             (check_recognition, apply_recognition, "recognitions"))
    for check, apply, name in steps:
        items = section.get(name, [])
        if not isinstance(items, list):
            raise DecodeError(f"genesis.apps.certs.{name} must be a list")
        for i, params in enumerate(items):
            if not isinstance(params, dict):
                raise DecodeError(f"genesis.apps.certs.{name}[{i}] must be a map")
            try:
                apply(state, 0, check(state.get, params))
            except InputError as exc:
                raise DecodeError(f"genesis.apps.certs.{name}[{i}]: {exc}") from None
    return dict(state.writes)
