"""``govledger cert``: issue and manage e-certificates, fetch proofs, verify (also offline).

Verbs: ``issue``, ``suspend``, ``reinstate``, ``revoke``, ``renew``, ``show``,
``proof``, ``verify``, ``export``, plus ``types`` and ``holder`` for lookups.
Exit codes: 0 success / VALID, 1 INVALID or rejected, 2 usage or connection.

``verify`` decides where the verdict is reached, always with
:func:`certs.verify.verify_certificate`:

- ``--offline --bundle F --genesis G``: here, with no network at all;
- ``--genesis G`` (online): the bundle comes from a node, the verdict is
  reached here, trusting only the genesis file;
- neither: the node's verdict (``POST /v1/certs/verify``).
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from pathlib import Path
from typing import Any

from certs.bundle import decode_bundle
from certs.document import Document, DocumentError, parse_document
from certs.handlers import ISSUE_TX, REINSTATE_TX, RENEW_TX, REVOKE_TX, SUSPEND_TX
from certs.ids import IdentifierError, parse_cert_id, validate_uscc
from certs.issuing import (
    Issuer,
    cert_type_from_view,
    issue_payload,
    new_document,
    renew_payload,
    renewed_document,
    validate_holder_code,
)
from certs.records import HOLDER_CODE_TYPES, LONG_TERM, NATURAL_PERSON, CertType, cst_date
from certs.verify import parse_as_of, verify_certificate
from client.cli import EXIT_OK, EXIT_REJECTED, Context, UsageError, consortium_key, tx_outcome
from client.sdk import Client, NodeError, Unreachable
from ledger.codec import Value
from ledger.crypto import get_suite
from ledger.crypto.base import write_file_atomic
from ledger.errors import InputError
from ledger.genesis import Genesis, load_genesis
from ledger.privacy import CONSORTIUM_KEY_FILE

DISTID = "1234567812345678"
_EVENTS = {"suspend": SUSPEND_TX, "reinstate": REINSTATE_TX, "revoke": REVOKE_TX}


def _json_flag(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the verb it sets --json; absent, it leaves the global flag alone.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable output")


def _key_flag(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--key", required=required, help="issuer private key (PEM)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cert", help="e-certificates: issue, lifecycle, proofs, verification",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Examples:\n  govledger cert types\n"
                              "  govledger cert verify licence.json --as-agency "
                              "11350100MB1F00049U")
    cs = p.add_subparsers(dest="cert_cmd", metavar="COMMAND", required=True)
    _add_issue(cs)
    for event, what in (("suspend", "suspend a VALID certificate"),
                        ("reinstate", "reinstate a SUSPENDED certificate"),
                        ("revoke", "revoke a certificate (final)")):
        q = cs.add_parser(event, help=what,
                          epilog=f"Example: govledger cert {event} ID --reason 整改 "
                                 "--key keys/scjgj.pem")
        q.add_argument("cert_id", metavar="ID")
        q.add_argument("--reason", required=True)
        _key_flag(q)
        _json_flag(q)
        q.set_defaults(handler=run_transition, event=event)
    _add_renew(cs)
    q = cs.add_parser("show", help="a certificate's record and status on the ledger",
                      epilog="Example: govledger cert show 1.2.156.3005.2.11100000MB1F000067001."
                             "11350100MB1F000149.2026031512AB34CD.001.W")
    q.add_argument("cert_id", metavar="ID")
    _json_flag(q)
    q.set_defaults(handler=run_show)
    q = cs.add_parser("proof", help="save the proof bundle for offline verification",
                      epilog="Example: govledger cert proof ID --agency USCC -o cert.bundle")
    q.add_argument("cert_id", metavar="ID")
    q.add_argument("-o", "--out", required=True, help="bundle file to write (msgpack)")
    q.add_argument("--agency", help="include the recognition proof for this agency (USCC)")
    _json_flag(q)
    q.set_defaults(handler=run_proof)
    _add_verify(cs)
    q = cs.add_parser("export", help="write doc.bin, sig.der and issuer.pem for openssl",
                      epilog="Example: govledger cert export DOC.json --openssl out/ && openssl "
                             "dgst -sm3 -verify out/issuer.pem -sigopt distid:1234567812345678 "
                             "-signature out/sig.der out/doc.bin")
    q.add_argument("target", metavar="ID|DOC.json")
    q.add_argument("--doc", help="the document, when ID is given")
    q.add_argument("--openssl", required=True, metavar="DIR", help="folder to write into")
    q.add_argument("--offline", action="store_true",
                   help="take the issuer key from the document instead of the ledger")
    _json_flag(q)
    q.set_defaults(handler=run_export)
    q = cs.add_parser("types", help="certificate types, their fields and issuers",
                      epilog="Example: govledger cert types --json")
    _json_flag(q)
    q.set_defaults(handler=run_types)
    q = cs.add_parser("holder", help="a holder's certificates: by USCC, or by citizen ID number "
                                     "(signed read; the number is sent only in the body)",
                      epilog="Examples: govledger cert holder 91350100MA2Y00044Y --all\n"
                             "  govledger cert holder --id-number 350104201209010368 --key "
                             "keys/rsj.pem")
    q.add_argument("uscc", nargs="?", help="a legal person's USCC")
    q.add_argument("--id-number", help="a natural person's ID number (needs --key)")
    q.add_argument("--all", action="store_true", help="include superseded versions")
    _key_flag(q, required=False)
    _json_flag(q)
    q.set_defaults(handler=run_holder)


def _add_issue(cs: Any) -> None:
    q = cs.add_parser(
        "issue", help="issue a certificate: sign the document, anchor its digest",
        epilog="Example: govledger cert issue --type 11100000MB1F000067001 --holder-name "
               "福州示例科技有限公司 --holder-code 91350100MA2Y0001X9 --holder-code-type 001 "
               "--valid-from 2026-01-01 --long-term --field entity_type=有限责任公司 "
               "--key keys/scjgj.pem --out licence.json")
    q.add_argument("--type", required=True, dest="type_code", help="type code (21 characters)")
    q.add_argument("--holder-name", required=True)
    q.add_argument("--holder-code", required=True, help="USCC (001) or citizen ID number (111)")
    q.add_argument("--holder-code-type", required=True, choices=HOLDER_CODE_TYPES)
    _validity_flags(q, required=True)
    q.add_argument("--field", action="append", default=[], metavar="K=V",
                   help="a type-specific field (repeatable)")
    q.add_argument("--number", help="证照编号 printed on the certificate (default: the serial)")
    q.add_argument("--serial", help="identifier serial (default: date + random)")
    q.add_argument("--issue-date", help="YYYY-MM-DD (default: today, China Standard Time)")
    q.add_argument("--consortium-key", help=f"for 111 holders (default: {CONSORTIUM_KEY_FILE} "
                                            "beside --key)")
    _key_flag(q)
    q.add_argument("--out", required=True, help="where to write the signed document (JSON)")
    _json_flag(q)
    q.set_defaults(handler=run_issue)


def _add_renew(cs: Any) -> None:
    q = cs.add_parser("renew", help="issue the next version; the old one becomes SUPERSEDED",
                      epilog="Example: govledger cert renew ID --doc old.json --valid-from "
                             "2026-06-01 --long-term --key keys/scjgj.pem --out new.json")
    q.add_argument("cert_id", metavar="ID")
    q.add_argument("--doc", required=True, help="the current version's document (JSON)")
    _validity_flags(q, required=False)
    q.add_argument("--field", action="append", default=[], metavar="K=V",
                   help="change a type-specific field (repeatable)")
    q.add_argument("--issue-date", help="YYYY-MM-DD (default: today)")
    _key_flag(q)
    q.add_argument("--out", required=True, help="where to write the new document (JSON)")
    _json_flag(q)
    q.set_defaults(handler=run_renew)


def _add_verify(cs: Any) -> None:
    q = cs.add_parser(
        "verify", help="verdict VALID / INVALID with one line per check",
        epilog="Examples: govledger cert verify licence.json --as-agency 11350100MB1F00049U\n"
               "  govledger cert verify licence.json --bundle cert.bundle --genesis "
               "genesis.json --offline")
    q.add_argument("target", metavar="DOC.json|ID")
    q.add_argument("--bundle", help="proof bundle file (from `cert proof`)")
    q.add_argument("--genesis", help="the network's genesis.json: the trust root")
    q.add_argument("--offline", action="store_true", help="use no network at all")
    q.add_argument("--as-agency", dest="agency", help="the verifying agency's USCC")
    q.add_argument("--at", help="as-of: YYYY-MM-DD, ISO date-time, or ms (default: now)")
    _json_flag(q)
    q.set_defaults(handler=run_verify)


def _validity_flags(q: argparse.ArgumentParser, required: bool) -> None:
    q.add_argument("--valid-from", required=required, help="YYYY-MM-DD")
    until = q.add_mutually_exclusive_group(required=required)
    until.add_argument("--valid-until", help="YYYY-MM-DD (inclusive)")
    until.add_argument("--long-term", action="store_true", help=f"no end date ({LONG_TERM})")


# -- helpers -----------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _today() -> str:
    return cst_date(_now_ms()).isoformat()


def _cert_id(text: str) -> str:
    try:
        return str(parse_cert_id(text))
    except IdentifierError as exc:
        raise UsageError(str(exc)) from None


def _fields(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--field {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _read_document(path: str) -> Document:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read document {path}: {exc.strerror}") from None
    try:
        return parse_document(text)
    except DocumentError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _check_out(path: str) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist (for --out {path})")
    return out


def issuer_for(client: Client) -> Issuer:
    """The issuing organisation of the client's key, from the ledger; UsageError if none."""
    key = client.key
    assert key is not None
    account = client.get(f"/v1/accounts/{key.public_key().raw.hex()}")
    if not account.get("org"):
        raise UsageError("the --key account belongs to no organisation, so it cannot issue")
    org = client.get(f"/v1/orgs/{account['org']}")
    return Issuer(uscc=str(org["uscc"]), name=str(org["name"]), area_code=str(org["region"]))


def cert_type_for(client: Client, code: str) -> CertType:
    """A registered type with its schema (NodeError 404 if there is none)."""
    return cert_type_from_view(client.get(f"/v1/certs/types/{code}"))


def new_serial() -> str:
    """An identifier serial: today's date (CST) and 8 random hex digits."""
    return f"{_today().replace('-', '')}{secrets.token_hex(4).upper()}"


def _consortium_key(args: argparse.Namespace) -> bytes:
    return consortium_key(args.consortium_key, args.key, "a natural person's holder code is "
                          "stored as its HMAC under the consortium key")


def _valid_until(args: argparse.Namespace, default: str | None = None) -> str:
    if args.long_term:
        return LONG_TERM
    value = args.valid_until or default
    if value is None:
        raise UsageError("give --valid-until DATE or --long-term")
    return str(value)


def _send_document(client: Client, ctx: Context, tx_type: str, payload: dict[str, Value],
                   what: str, doc: Document, out: Path) -> int:
    """Submit the transaction anchoring ``doc`` and write the document to ``out`` once it is
    committed. From just before the transaction is sent until its fate is known the
    document waits in ``OUT.pending``: a certificate that commits after the command gave
    up waiting (or lost its connection) still has its signed document, which the holder
    needs and which nobody could sign again with the same identifier."""
    pending = out.with_name(out.name + ".pending")
    write_file_atomic(pending, doc.to_json().encode("utf-8") + b"\n", 0o644)
    try:
        reply = client.submit(tx_type, payload)
    except NodeError:
        pending.unlink(missing_ok=True)  # refused at admission: nothing was sent on
        raise
    except Unreachable as exc:
        raise Unreachable(f"{exc}; {_kept(doc, pending)}") from None
    except BaseException:  # anything else (a bad answer, Ctrl-C): the fate is unknown
        ctx.err.print(_kept(doc, pending), soft_wrap=True, markup=False, highlight=False)
        raise
    status, ok = reply.get("status"), bool((reply.get("result") or {}).get("ok"))
    if status == "committed" and ok:
        pending.replace(out)
    elif status == "committed":
        pending.unlink(missing_ok=True)
    code = tx_outcome(ctx, reply, what, extra=lambda _: {"cert_id": doc.cert_id,
                                                         "out": str(out)})
    if status != "committed":
        ctx.err.print(_kept(doc, pending), soft_wrap=True, markup=False, highlight=False)
    return code


def _kept(doc: Document, pending: Path) -> str:
    return (f"the signed document is kept in {pending}: once `govledger cert show "
            f"{doc.cert_id}` finds the certificate, rename the file to drop .pending; if the "
            "transaction expires uncommitted, delete it")


# -- commands --------------------------------------------------------------------------------


def run_issue(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client(need_key=True)
    key = client.key
    assert key is not None
    out = _check_out(args.out)
    try:
        holder_code = validate_holder_code(args.holder_code, args.holder_code_type)
    except IdentifierError as exc:
        raise UsageError(f"--holder-code: {exc}") from None
    consortium = _consortium_key(args) if args.holder_code_type == NATURAL_PERSON else None
    cert_type = cert_type_for(client, args.type_code)
    try:
        doc = new_document(key, cert_type, issuer_for(client), serial=args.serial or new_serial(),
                           holder_name=args.holder_name, holder_code=holder_code,
                           holder_code_type=args.holder_code_type, valid_from=args.valid_from,
                           valid_until=_valid_until(args), issue_date=args.issue_date or _today(),
                           extra=_fields(args.field), number=args.number)
    except (DocumentError, IdentifierError) as exc:
        raise UsageError(str(exc)) from None
    return _send_document(client, ctx, ISSUE_TX, issue_payload(key.suite, doc, consortium),
                          f"issued {doc.cert_id}", doc, out)


def run_renew(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client(need_key=True)
    key = client.key
    assert key is not None
    out = _check_out(args.out)
    old = _read_document(args.doc)
    if old.cert_id != _cert_id(args.cert_id):
        raise UsageError(f"--doc is {old.cert_id}, not {args.cert_id}")
    cert_type = cert_type_for(client, old.certificate["type_code"])
    try:
        doc = renewed_document(
            key, old, cert_type, issuer_for(client),
            valid_from=args.valid_from or _today(),
            valid_until=_valid_until(args, old.certificate["valid_until"]),
            issue_date=args.issue_date or _today(), extra=_fields(args.field))
    except (DocumentError, IdentifierError) as exc:
        raise UsageError(str(exc)) from None
    return _send_document(client, ctx, RENEW_TX, renew_payload(key.suite, doc),
                          f"renewed {old.cert_id} as {doc.cert_id}", doc, out)


def run_transition(args: argparse.Namespace, ctx: Context) -> int:
    cert_id = _cert_id(args.cert_id)
    payload: dict[str, Value] = {"id": cert_id, "reason": args.reason}
    reply = ctx.client(need_key=True).submit(_EVENTS[args.event], payload)
    return tx_outcome(ctx, reply, f"{args.event} {cert_id}",
                      extra=lambda data: {"cert_id": cert_id, "new_status": data.get("status")})


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    view = ctx.client().get(f"/v1/certs/{_cert_id(args.cert_id)}")

    def human() -> None:
        ctx.fields(f"certificate {view['cert_id']}", [
            (k, view.get(k)) for k in ("status", "type_name", "type", "issuer_name", "issuer",
                                       "version", "valid_from", "valid_until",
                                       "holder_code_type", "holder", "issued_height",
                                       "supersedes", "superseded_by", "digest")])
        ctx.table("status history", ["event", "status", "height", "reason"],
                  [(e["event"], e["status"], e["height"], e["reason"])
                   for e in view["history"]])

    ctx.emit(view, human)
    return EXIT_OK


def run_proof(args: argparse.Namespace, ctx: Context) -> int:
    cert_id = _cert_id(args.cert_id)
    query = {"agency": validate_uscc(args.agency)} if args.agency else {}
    data = ctx.client().get_bytes(f"/v1/certs/{cert_id}/proof", query)
    bundle = decode_bundle(data)
    write_file_atomic(args.out, data, 0o644)
    info = {"cert_id": cert_id, "out": args.out, "bytes": len(data),
            "height": bundle.header.header.height,
            "validator_links": len(bundle.header.links)}
    ctx.emit(info, lambda: ctx.ok(f"proof bundle of {cert_id} at block {info['height']} "
                                  f"written to {args.out} ({len(data)} bytes)"))
    return EXIT_OK


def _target(text: str) -> tuple[str | None, str | None]:
    """(document JSON text, identifier) from a verify/export argument."""
    path = Path(text)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {text}: {exc}") from None
    try:
        return None, str(parse_cert_id(text))
    except IdentifierError as exc:
        raise UsageError(f"{text!r} is neither a document file nor a certificate identifier "
                         f"({exc})") from None


def _genesis(path: str | None) -> Genesis | None:
    return load_genesis(path) if path else None


def run_verify(args: argparse.Namespace, ctx: Context) -> int:
    doc_text, cert_id = _target(args.target)
    as_of = parse_as_of(args.at) if args.at else _now_ms()
    genesis = _genesis(args.genesis)
    if (args.offline or args.bundle) and genesis is None:
        raise UsageError("verifying a bundle needs the trust root: --genesis genesis.json")
    if args.offline and not args.bundle:
        raise UsageError("--offline needs --bundle FILE (from `govledger cert proof`)")
    if args.bundle:
        assert genesis is not None
        try:
            data = Path(args.bundle).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read bundle {args.bundle}: {exc.strerror}") from None
        verdict = verify_certificate(genesis, data, as_of_ms=as_of, document=doc_text,
                                     cert_id=cert_id, agency=args.agency)
        where = "offline, from the bundle and the genesis file"
    elif genesis is not None:
        document = None
        if doc_text is not None:
            try:
                document = parse_document(doc_text)
            except DocumentError:
                document = None
        if document is None and cert_id is None:  # malformed document: let the verdict say
            verdict = verify_certificate(genesis, None, as_of_ms=as_of, document=doc_text,
                                         agency=args.agency)
        else:
            verdict = ctx.client().verify_certificate(genesis, document=document,
                                                      cert_id=cert_id, agency=args.agency,
                                                      as_of_ms=as_of)
        where = "here, from a node's proof bundle and the genesis file"
    else:
        body: dict[str, Any] = {"agency": args.agency, "at": as_of}
        if doc_text is not None:
            try:
                body["document"] = json.loads(doc_text)
            except ValueError as exc:
                raise UsageError(f"{args.target} is not JSON: {exc}") from None
        else:
            body["id"] = cert_id
        value = ctx.client().post("/v1/certs/verify", body)
        return _report(ctx, value, "by the node (give --genesis to check its proofs here)")
    return _report(ctx, verdict.to_json_value(), where)


def _report(ctx: Context, value: dict[str, Any], where: str) -> int:
    valid = value.get("verdict") == "VALID"

    def human() -> None:
        headline = f"{value.get('verdict')}: {value.get('cert_id') or '?'}"
        (ctx.ok if valid else ctx.fail)(f"{headline}  (status {value.get('status')}; "
                                        f"verified {where})")
        ctx.table(None, ["check", "ok", "detail"],
                  [(c["name"], "✔" if c["ok"] else "✘", c["detail"]) for c in value["checks"]])

    ctx.emit(value, human)
    return EXIT_OK if valid else EXIT_REJECTED


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    doc_text, cert_id = _target(args.target)
    if doc_text is None:
        if not args.doc:
            raise UsageError("the ledger holds only the document's digest: give the document "
                             "with --doc DOC.json (or pass DOC.json instead of the ID)")
        doc = _read_document(args.doc)
        if doc.cert_id != cert_id:
            raise UsageError(f"--doc is {doc.cert_id}, not {cert_id}")
    else:
        try:
            doc = parse_document(doc_text)
        except DocumentError as exc:
            raise UsageError(f"{args.target}: {exc}") from None
    signer = doc.signer
    if not args.offline:
        record = ctx.client().get(f"/v1/certs/{doc.cert_id}")
        if bytes.fromhex(record["signer"]) != doc.signer:
            ctx.fail("the document is signed by a key other than the issuing key on the ledger")
            return EXIT_REJECTED
    try:
        public = get_suite(doc.suite).public_key(signer)
    except InputError as exc:
        raise UsageError(f"the document's signer key: {exc}") from None
    folder = Path(args.openssl)
    folder.mkdir(parents=True, exist_ok=True)
    write_file_atomic(folder / "doc.bin", doc.signed_bytes(), 0o644)
    write_file_atomic(folder / "sig.der", doc.signature, 0o644)
    write_file_atomic(folder / "issuer.pem", public.public_pem(), 0o644)
    command = (f"openssl dgst -sm3 -verify {folder}/issuer.pem -sigopt distid:{DISTID} "
               f"-signature {folder}/sig.der {folder}/doc.bin")
    info = {"cert_id": doc.cert_id, "dir": str(folder),
            "files": ["doc.bin", "sig.der", "issuer.pem"],
            "key_from": "document" if args.offline else "ledger",
            "command": command if doc.suite == "sm" else ""}
    ctx.emit(info, lambda: ctx.ok(f"wrote doc.bin, sig.der, issuer.pem to {folder}; check "
                                  f"with:\n  {command}"))
    return EXIT_OK


def run_types(args: argparse.Namespace, ctx: Context) -> int:
    types = ctx.client().get("/v1/certs/types")["types"]
    ctx.emit({"types": types}, lambda: ctx.table("certificate types", [
        "code", "name", "holders", "issuers", "fields"], [
        (t["code"], t["name"], ",".join(t["holder_code_types"]),
         ", ".join(i["name"] or i["uscc"] for i in t["issuers"] if i["current"]),
         ", ".join(f["name"] + ("*" if f["required"] else "") for f in t["fields"]))
        for t in types]))
    return EXIT_OK


def run_holder(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.uscc) == bool(args.id_number):
        raise UsageError("give a USCC or --id-number (not both)")
    if args.uscc:
        query = "?all=1" if args.all else ""
        value = ctx.client().get(f"/v1/certs/holders/{validate_uscc(args.uscc)}{query}")
    else:
        value = ctx.client(need_key=True).post("/v1/certs/holders/lookup",
                                               {"id_number": args.id_number}, signed=True)
    certs = value["certs"]
    ctx.emit(value, lambda: ctx.table(f"certificates of {args.uscc or 'the person'}", [
        "identifier", "type", "status", "valid until", "issuer"], [
        (c["cert_id"], c["type_name"], c["status"], c["valid_until"], c["issuer_name"])
        for c in certs]))
    return EXIT_OK
