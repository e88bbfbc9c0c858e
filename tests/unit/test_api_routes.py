"""The node's own HTTP routes (ledger.api, ledger.api_gov, fiscal.routes and the dashboard's
files) answer bad input with a 4xx JSON error that names what is wrong, never a 500.

A one-validator network with the sample organisations (``init_network``) is served by a
real ``node.Node`` in process (:mod:`tests.unit.node_harness`); requests go over HTTP as
sent, percent-encoding included. The cases are the ones ``tests/property/test_api_fuzz.py``
found.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.network import init_network
from tests.unit.node_harness import one_node_network

TIME_MS = 1_767_225_600_000
AUDIT = "11350100MB1F00030Y"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with one_node_network(tmp_path_factory.mktemp("net"), "govledger-routes", TIME_MS) as (
            url, _):
        yield url


def call(url: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


# "²" (%C2%B2) is a digit to str.isdigit() but not to int(); "١" (%D9%A1) is one to both.
@pytest.mark.parametrize(("path", "detail"), [
    ("/v1/blocks/%C2%B2", "height must be a non-negative integer"),
    ("/v1/blocks/%D9%A1", "height must be a non-negative integer"),
    ("/v1/gov/proposals?limit=%C2%B2", "limit must be an integer between 1 and 500"),
    ("/v1/gov/proposals/%C2%B2", "proposal id must be a positive integer"),
    ("/v1/funds?limit=%C2%B2", "limit must be an integer between 1 and 500"),
    ("/v1/alerts?before=%C2%B2", "before must be an integer between 1 and"),
    (f"/v1/payees/{AUDIT}/payments?limit=%C2%B2", "limit must be an integer between 1 and"),
    ("/v1/fiscal/totals?by=region&prefix=%C2%B2", "prefix must be up to 9 digits"),
    ("/v1/orgs/" + "%C3%9F" * 9, "a USCC has 18 letters and digits"),  # "ß".upper() == "SS"
])
def test_digits_of_other_scripts_are_not_numbers(url: str, path: str, detail: str) -> None:
    """Goal: a number in a path or query is ASCII digits; a digit of another script is a
    400 naming the parameter (it was a 500: str.isdigit() accepts "²", which int() refuses,
    and "١" was read as 1). Method: one request per parameter."""
    status, content_type, body = call(url, "GET", path)
    assert status == 400 and content_type.startswith("application/json"), body
    answer = json.loads(body)
    assert answer["error"] == "bad_request" and answer["detail"].startswith(detail), answer


def test_a_body_not_in_its_content_encoding_is_a_400(url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a transaction whose body does not decode as its Content-Encoding says gets a
    400 saying so (it was a 500: the body could not be read), and leaves no error in the
    node's log (aiohttp logged the same decoding error again as an unhandled exception with
    a traceback). Method: POST /v1/tx with Content-Encoding: gzip and bytes that are not
    gzip, short and long; the log records of that request."""
    for junk in (b"\x00\x00", b"\x00" * 300_000):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, _, body = call(url, "POST", "/v1/tx", junk, {
                "Content-Encoding": "gzip", "Content-Type": "application/msgpack"})
            deadline = time.monotonic() + 5  # aiohttp drains the body after the answer
            while (time.monotonic() < deadline
                   and not any("aiohttp" in r.name for r in caplog.records)):
                time.sleep(0.05)
        assert status == 400, body
        assert json.loads(body) == {
            "error": "bad_request",
            "detail": "the request body does not decode as its Content-Encoding (gzip) says; "
                      "send it encoded so, or without Content-Encoding"}
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert any(r.getMessage().startswith("dropped the rest of a request body")
                   and r.exc_info is None for r in caplog.records), caplog.records


@pytest.mark.parametrize(("raw", "said"), [
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
     "Got more than"),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "Invalid header token"),
    (b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
     "Invalid character in Content-Length"),
])
def test_a_request_the_http_parser_refuses_is_one_info_line(
        url: str, raw: bytes, said: str, caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a request aiohttp's parser refuses (a header line too long, a bad header, a bad
    Content-Length) is answered 400 and leaves one INFO line naming the client, not an
    ERROR with a traceback per request (which a port scanner could fill the log with).
    Method: raw bytes over a socket; the log records."""
    host, port = url.removeprefix("http://").split(":")
    with caplog.at_level(logging.INFO), socket.create_connection((host, int(port)), 10) as s:
        s.sendall(raw)
        answer = s.recv(65536)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("aiohttp" in r.name
                                                      for r in caplog.records):
            time.sleep(0.05)
    assert answer.startswith(b"HTTP/1.0 400 ") and said.encode() in answer, answer[:200]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1 and lines[0].startswith("refused a malformed HTTP request from "
                                                   "127.0.0.1: ") and said in lines[0], lines


@pytest.mark.parametrize("name", ["nope.js", "a" * 300, "vendor", "..%2Fnode.py"])
def test_a_file_the_dashboard_does_not_have_is_a_json_404(url: str, name: str) -> None:
    """Goal: /static/ serves the dashboard's files; any other name is a JSON 404 (a missing
    file was an empty 404, and a name longer than the file system allows a 500). Method:
    fetch one file that exists and names that do not."""
    status, content_type, body = call(url, "GET", "/static/app.js")
    assert status == 200 and content_type == "application/javascript"
    status, content_type, body = call(url, "GET", f"/static/{name}")
    assert status == 404 and content_type.startswith("application/json"), body
    assert json.loads(body)["detail"].startswith("the dashboard has no file ")


@pytest.mark.parametrize(("chars", "detail"), [
    (9_000, "X-Govledger-Read does not decode"),
    (16_400, "X-Govledger-Read is longer than 16384"),
])
def test_a_signed_read_header_of_any_allowed_length_reaches_the_node(
        url: str, chars: int, detail: str) -> None:
    """Goal: a signed read may be as long as ledger.reads allows (16,384 hex characters);
    the node judges it and answers in JSON (aiohttp refused any header over 8,190 bytes
    with a plain-text 400 first, so a large legitimate read could never be made). Method: a
    header of 9,000 characters that does not decode, and one just over the limit."""
    status, content_type, body = call(url, "GET", f"/v1/payees/{AUDIT}/payments",
                                      headers={"X-Govledger-Read": "0" * chars})
    assert status == 400 and content_type.startswith("application/json"), body
    assert json.loads(body)["detail"].startswith(detail), body


def test_status_names_the_release_the_node_runs(url: str) -> None:
    """Goal: /v1/status says which govledger release the node runs (departments upgrade
    their nodes one by one; the operator must see which run what). Method: GET it and
    compare with pyproject.toml."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    release = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    status, _, body = call(url, "GET", "/v1/status")
    assert status == 200 and json.loads(body)["version"] == release


def test_a_client_over_its_read_budget_waits_and_others_do_not(tmp_path: Path) -> None:
    """Goal: with ``[limits] reads_per_s`` set, a client address that queries faster gets a
    429 rate_limited with Retry-After, another address is not affected, the dashboard's
    files are not counted, and the SDK waits and retries until it is answered (a flood of
    proof queries at one node had tripled the network's commit latency). Method: a node
    with reads_per_s = 2, read_burst = 5; requests from 127.0.0.1 and 127.0.0.2."""
    import http.client

    from client import Backoff, Client
    from tests.unit.node_harness import NodeThread, free_port

    port = free_port()
    init_network(tmp_path, 1, with_sample_orgs=True, base_port=port, time_ms=TIME_MS,
                 chain_id="govledger-reads")
    toml = tmp_path / "node0" / "node.toml"
    text = toml.read_text()
    toml.write_text(text.replace("reads_per_s = 0", "reads_per_s = 2").replace(
        "read_burst = 0", "read_burst = 5"))
    runner = NodeThread(toml)
    runner.start()

    def get(path: str, source: str = "127.0.0.1") -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                          source_address=(source, 0))
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.headers.get("Retry-After", ""), resp.read()
        finally:
            conn.close()

    try:
        assert [get("/v1/status")[0] for _ in range(5)] == [200] * 5
        status, retry, body = get("/v1/status")
        assert (status, retry) == (429, "1")
        answer = json.loads(body)
        assert answer["error"] == "rate_limited" and "127.0.0.1" in answer["detail"]
        assert get("/static/app.js")[0] == 200 and get("/")[0] == 200
        assert get("/v1/status", "127.0.0.2")[0] == 200
        client = Client(f"http://127.0.0.1:{port}", retries=6, backoff=Backoff(0.3, 1.5, 1))
        assert client.status()["node"] == "node0"
    finally:
        runner.stop()


LONG = "1" * 4301  # more digits than Python's int() converts (it raises ValueError)


@pytest.mark.parametrize(("path", "detail"), [
    (f"/v1/certs?limit={LONG}", "limit must be an integer between 1 and"),
    (f"/v1/gov/proposals?limit={LONG}", "limit must be an integer between 1 and 500"),
    (f"/v1/access-log?limit={LONG}", "limit must be an integer between 1 and 500"),
    (f"/v1/funds?limit={LONG}", "limit must be an integer between 1 and 500"),
    (f"/v1/alerts?limit={LONG}", "limit must be an integer between 1 and 1000"),
    (f"/v1/alerts?before={LONG}", "before must be an integer between 1 and"),
    (f"/v1/payees/{AUDIT}/payments?limit={LONG}", "limit must be an integer between 1 and"),
    (f"/v1/funds?limit=000{'0' * 4300}7", ""),  # leading zeros: still the number 7
])
def test_numbers_of_any_length_are_judged_not_converted_blindly(url: str, path: str,
                                                               detail: str) -> None:
    """Goal: a query number of thousands of digits is a 400 naming the parameter (it was a
    500: int() refuses strings over 4,300 digits, and the routes converted before checking
    the range); zeros in front do not make a small number large. Method: one request per
    parameter the fuzzing helper found."""
    status, content_type, body = call(url, "GET", path)
    if not detail:
        assert status == 200, body
        return
    assert status == 400 and content_type.startswith("application/json"), body
    assert json.loads(body)["detail"].startswith(detail), body


@pytest.mark.parametrize("at", ["0001-01-01", "9999-12-31T23:59:59-14:00", "999999999999999999",
                                999999999999999999])
def test_an_as_of_time_no_verdict_can_show_is_a_400(url: str, at: object) -> None:
    """Goal: POST /v1/certs/verify with an "at" before 1970 or after 9999 is a 400 saying so
    (it was a 500 when the verdict's dates were written). Method: one request each."""
    body = json.dumps({"id": "1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149."
                             "DEMOF45817B7.002.5", "at": at}).encode()
    status, content_type, answer = call(url, "POST", "/v1/certs/verify", body,
                                        {"Content-Type": "application/json"})
    assert status == 400 and content_type.startswith("application/json"), answer
    assert "out of range (1970 to 9999)" in json.loads(answer)["detail"], answer


def test_status_in_msgpack_once_the_node_has_measured_commit_latency(
        tmp_path: Path) -> None:
    """Goal: /v1/status answers in msgpack when asked, also once it reports commit latency
    (it was a 400 blaming the client: the latency figures were floats, which the canonical
    encoding refuses). Method: a node that has timed two commits; GET with Accept msgpack."""
    from ledger.codec import decode_value

    with one_node_network(tmp_path, "govledger-status", TIME_MS) as (url, runner):
        runner.node.recent_latency.extend([12.34, 56.78])
        status, content_type, body = call(url, "GET", "/v1/status",
                                          headers={"Accept": "application/msgpack"})
        assert status == 200 and content_type == "application/msgpack", body
        latency = decode_value(body)["commit_latency_ms"]  # type: ignore[index]
        assert latency == {"p50": 57, "p90": 57, "samples": 2}


def test_a_method_the_path_does_not_take_is_a_405_naming_those_it_does(url: str) -> None:
    """Goal: a 405 carries Allow (RFC 9110), so a client learns the methods the path takes;
    the JSON error replaced aiohttp's answer and dropped it. Method: PUT /v1/status."""
    req = urllib.request.Request(url + "/v1/status", data=b"", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(req, timeout=30)
    assert raised.value.code == 405 and "GET" in raised.value.headers.get("Allow", "")
    assert json.loads(raised.value.read())["error"] == "method_not_allowed"


def test_a_client_gone_before_its_body_arrived_leaves_no_error_in_the_log(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a client that closes its connection halfway through a request body is not the
    node's fault: no ERROR and no traceback in the node's log (any client could fill the
    log so). Method: announce 100 bytes of transaction, send one, close; then the node
    still answers."""
    host, port = url.removeprefix("http://").split(":")
    with caplog.at_level(logging.INFO):
        for path in ("/v1/tx", "/v1/certs/verify"):
            with socket.create_connection((host, int(port)), 10) as s:
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                          f"msgpack\r\nContent-Length: 100\r\n\r\n\x80".encode())
                time.sleep(0.2)
        time.sleep(0.5)
        assert call(url, "GET", "/v1/status")[0] == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_node_with_a_full_queue_refuses_transactions_before_checking_them(
        tmp_path: Path) -> None:
    """Goal: when two blocks' worth of transactions wait to be ordered, a node answers new
    ones 503 busy with Retry-After before checking their signatures (the check is what an
    overloaded network can least spare: taking everything until the pool was full left
    nodes verifying instead of ordering, 900 offered and 8 - 30 committed per second);
    the waiting ones stay. Method: a 4-validator network of which only node1 (a backup,
    so it proposes nothing) runs, so nothing commits; batch_tx_max 2: the queue holds 4.
    Four submissions are accepted, each checked once; the fifth is refused unchecked,
    naming the queue."""
    from ledger.codec import encode
    from ledger.crypto import load_private_key_file
    from ledger.tx import make_tx
    from tests.unit.node_harness import NodeThread, free_port

    init_network(tmp_path, 4, with_sample_orgs=True, base_port=free_port(), time_ms=TIME_MS,
                 chain_id="govledger-busy", config={"batch_tx_max": 2})
    runner = NodeThread(tmp_path / "node1" / "node.toml")
    runner.start()
    try:
        node, url = runner.node, f"http://127.0.0.1:{runner.config.port}"
        checked: list[bytes] = []
        real = node._signature_ok

        async def counted(tx: object) -> bool:
            checked.append(tx.sig)  # type: ignore[attr-defined]
            return bool(await real(tx))

        node._signature_ok = counted
        key = load_private_key_file(tmp_path / "keys" / "scjgj.pem", "sm")
        until = int(time.time() * 1000) + 3_600_000
        answers = []
        for n in range(5):
            tx = make_tx(key, "govledger-busy", "evidence.anchor",
                         {"digest": bytes([n]) * 32, "label": "busy"}, n + 1, until)
            answers.append(call(url, "POST", "/v1/tx", encode(tx),
                                {"Content-Type": "application/msgpack"}))
        assert [status for status, _, _ in answers] == [202, 202, 202, 202, 503], answers
        refused = json.loads(answers[4][2])
        assert refused["error"] == "busy" and refused["detail"].startswith(
            "4 transactions are waiting to be ordered here"), refused
        assert len(checked) == 4 and len(node.replica.mempool) == 4
    finally:
        runner.stop()


def test_a_malformed_payload_is_refused_at_admission_and_never_pooled(tmp_path: Path) -> None:
    """Goal: a transaction whose payload its type can never take (a field missing, of the
    wrong type or form) is a 400 naming the field when submitted, not an accepted
    transaction that then sits on the ledger for good as a failed one. Method: a
    certificate issue with the digest as text, a payment with the amount as text, a
    suspension without a reason and an anchor of a 5-byte digest, signed by keys that
    may send them; the node's pool afterwards."""
    from ledger.codec import encode
    from ledger.crypto import load_private_key_file
    from ledger.tx import make_tx

    with one_node_network(tmp_path, "govledger-shape", TIME_MS) as (url, runner):
        until = int(time.time() * 1000) + 3_600_000
        cases = [
            ("scjgj", "cert.issue", {
                "id": "1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149.T1.001.I",
                "digest": "ab" * 32, "valid_from": "2026-01-01", "valid_until": "长期",
                "holder": "91350100MA2Y0001X9", "holder_code_type": "001"},
             "payload.digest must be the 32-byte hash of the document"),
            ("czj", "fiscal.pay", {"from": "FJ2026-ZD-0001", "amount": "100", "purpose": "x",
                                  "function_code": "2080299", "value_date": "2026-01-01",
                                  "payee_uscc": "91350100MA2Y0001X9"},
             "amount"),
            ("scjgj", "cert.suspend", {"id": "x"}, "payload lacks reason"),
            ("slkj", "evidence.anchor", {"digest": b"short"}, "payload.digest must be 16..64"),
        ]
        for n, (who, tx_type, payload, says) in enumerate(cases):
            key = load_private_key_file(tmp_path / "keys" / f"{who}.pem", "sm")
            tx = make_tx(key, "govledger-shape", tx_type, payload, n + 1, until)  # type: ignore[arg-type]
            status, _, body = call(url, "POST", "/v1/tx", encode(tx),
                                   {"Content-Type": "application/msgpack"})
            answer = json.loads(body)
            assert (status, answer["error"]) == (400, "bad_payload"), (tx_type, answer)
            assert says in answer["detail"], answer
        assert len(runner.node.replica.mempool) == 0
