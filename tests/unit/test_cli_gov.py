"""The ``govledger gov | org | keys`` commands against a real node.

A one-validator network with the sample organisations (the five departments are the
committee: 4 approvals pass) is made with ``init_network``; its ``Node`` — the same class
``node.py run`` uses, with LevelDB, the replica, admission and the HTTP API — serves on a
free 127.0.0.1 port from an event loop in a background thread. Commands run through
``client.cli.main`` exactly as from a shell; output is captured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import UsageError, main
from client.cmd_gov import parse_params
from client.sdk import Client, NodeError, request
from ledger.crypto import get_suite, load_private_key_file
from ledger.ids import make_uscc
from ledger.network import SAMPLE_ORGS
from ledger.reads import HEADER, make_read
from tests.unit.node_harness import NodeThread, one_node_network

TIME_MS = 1_767_225_600_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, NodeThread]]:
    directory = tmp_path_factory.mktemp("net")
    with one_node_network(directory, "govledger-cli", TIME_MS) as (url, runner):
        yield directory, url, runner


def key_of(directory: Path, slug: str) -> str:
    return str(directory / "keys" / f"{slug}.pem")


COMMITTEE = [o.slug for o in SAMPLE_ORGS if "committee" in o.roles]


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--node", url, *argv])
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())  # rich wraps lines


def run_json(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, Any]:
    code = main(["--node", url, "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_parse_params() -> None:
    """Goal: name=value gives strings, name:=json typed values, dotted names nest, and
    --params-json is the base; mistakes are usage errors naming the argument. Method: pure
    calls of parse_params."""
    assert parse_params(["name=node4", "region=350100", "keys:=[\"ab\"]",
                         "changes.batch_tx_max:=500", "changes.batch_timeout_ms=20"],
                        '{"kind": "department"}') == {
        "kind": "department", "name": "node4", "region": "350100", "keys": ["ab"],
        "changes": {"batch_tx_max": 500, "batch_timeout_ms": "20"}}
    for pairs, message in [(["novalue"], "is not name=value"), (["a:=1.5"], "not an integer"),
                           (["a:={"], "not valid JSON"), (["a=1", "a=2"], "given twice"),
                           (["a=1", "a.b=2"], "which is a value"), ([".a=1"], "empty part")]:
        with pytest.raises(UsageError, match=message):
            parse_params(pairs)
    with pytest.raises(UsageError, match="must be a JSON object"):
        parse_params([], "[1]")


def test_kinds_listed_in_help_and_command(net: tuple[Path, str, NodeThread],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: the kinds come from GET /v1/gov/kinds: in `gov kinds` (table and --json) and in
    the epilog of `gov propose --help`. Method: run the three."""
    _, url, _ = net
    code, kinds = run_json(capsys, url, "gov", "kinds")
    assert code == 0
    assert {"add_validator", "set_config", "rotate_org_key"} <= {k["name"] for k in
                                                                 kinds["kinds"]}
    code, out, _ = run(capsys, url, "gov", "kinds")
    assert code == 0 and "add_validator" in out
    with pytest.raises(SystemExit) as info:
        main(["--node", url, "gov", "propose", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert f"proposal kinds (from {url})" in help_text, help_text
    assert "remove_validator" in help_text and "name:=json" in help_text


def test_propose_vote_show_until_passed(net: tuple[Path, str, NodeThread], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: the committee grants a role to a new key with the CLI: propose (exit 0, open),
    votes until 4 of 5 approve (passed), show in JSON and as tables; the key then has the
    role. Method: `keys new` makes the key; each member votes with its own key file."""
    directory, url, _ = net
    code, made = run_json(capsys, url, "keys", "new", "clerk", "--dir", str(tmp_path))
    assert code == 0 and (tmp_path / "clerk.pem").exists()
    clerk = made["public_key"]
    code, proposal = run_json(capsys, url, "gov", "propose", "grant_role",
                              f"public_key={clerk}", "role=auditor", "name=审计局-张三",
                              "org=11350100MB1F00030Y", "--key", key_of(directory, "sjj"))
    assert code == 0 and proposal["ok"] and proposal["proposal_status"] == "open"
    number = proposal["proposal_id"]
    statuses = []
    for slug in COMMITTEE[:4]:
        if slug == "sjj":
            continue
        code, vote = run_json(capsys, url, "gov", "vote", str(number), "approve", "--key",
                              key_of(directory, slug))
        assert code == 0, vote
        statuses.append(vote["proposal_status"])
    assert statuses[-1] == "passed" and set(statuses[:-1]) == {"open"}
    code, shown = run_json(capsys, url, "gov", "show", str(number))
    assert code == 0 and shown["status"] == "passed" and shown["approvals"] == 4
    assert shown["needed"] == 4 and shown["committee_size"] == 5
    code, out, _ = run(capsys, url, "gov", "show", str(number))
    assert code == 0 and "passed" in out and "approve" in out and "grant_role" in out
    code, listing = run_json(capsys, url, "gov", "show")
    assert code == 0 and listing["proposals"][0]["id"] == number
    code, out, _ = run(capsys, url, "gov", "show")
    assert code == 0 and "grant_role" in out
    code, account = run_json(capsys, url, "org", "show", "11350100MB1F00030Y")
    assert code == 0
    assert any(a["public_key"] == clerk and a["roles"] == ["auditor"]
               for a in account["accounts"])


def test_a_validator_is_named_by_its_node_name(net: tuple[Path, str, NodeThread],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: remove_validator and rotate_validator_key take name=<node name> as well as the
    key (an operator knows "node0", not its 130 hex digits); the CLI sends the key the node's
    status lists for that name, and an unknown name is a usage error listing the names.
    Method: propose both by name on this one-validator network: the removal reaches the
    rule that keeps the last validator, the rotation opens with the right old key."""
    directory, url, _ = net
    node0 = request(url + "/v1/status")["validator_keys"]["node0"]
    code, made = run_json(capsys, url, "gov", "propose", "remove_validator", "name=node0",
                          "--key", key_of(directory, "sjj"))
    assert code == 1 and made["reason"] == "remove_validator: the last validator cannot be " \
                                           "removed", made
    new_key = get_suite("sm").generate_key().public_key().raw.hex()
    code, made = run_json(capsys, url, "gov", "propose", "rotate_validator_key", "name=node0",
                          f"new_key={new_key}", "--key", key_of(directory, "sjj"))
    assert code == 0 and made["proposal_status"] == "open", made
    code, shown = run_json(capsys, url, "gov", "show", str(made["proposal_id"]))
    assert shown["params"] == {"old_key": node0, "new_key": new_key}, shown
    code, _, err = run(capsys, url, "gov", "propose", "remove_validator", "name=node9",
                       "--key", key_of(directory, "sjj"))
    assert code == 2 and "no validator named 'node9'; the validators are node0" in err


def test_set_config_reaches_the_running_replica(net: tuple[Path, str, NodeThread],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: a set_config decision made with the CLI (dotted parameter, --key after the verb
    or before it) changes the running node's replica configuration. Method: propose
    changes.batch_tx_max=1500, four approvals, then read the live replica's config."""
    directory, url, runner = net
    code, proposal = run_json(capsys, url, "--key", key_of(directory, "czj"), "gov", "propose",
                              "set_config", "changes.batch_tx_max=1500")
    assert code == 0, proposal
    for slug in ("scjgj", "rsj", "swj"):
        code, vote = run_json(capsys, url, "gov", "vote", str(proposal["proposal_id"]),
                              "approve", "--key", key_of(directory, slug))
        assert code == 0
    assert vote["proposal_status"] == "passed"
    assert runner.node.replica.config.batch_tx_max == 1500


def test_refusals_and_exit_codes(net: tuple[Path, str, NodeThread],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: each refusal exits non-zero with the reason: a non-member is refused by
    admission (403, exit 1), a double vote and bad parameters are failed transactions
    (exit 1), bad arguments and an unknown organisation are usage errors (exit 2). Method:
    run each; check exit code and the reason in --json and human output."""
    directory, url, _ = net
    enterprise = key_of(directory, "slkj")
    code, refused = run_json(capsys, url, "gov", "vote", "1", "approve", "--key", enterprise)
    assert code == 1 and refused == {"error": "forbidden", "status": 403,
                                     "detail": "sender is not a member of the committee"}
    code, _, err = run(capsys, url, "gov", "propose", "set_config", "changes.batch_tx_max=5",
                       "--key", enterprise)
    assert code == 1 and "not a member of the committee" in err
    member = key_of(directory, "scjgj")
    code, made = run_json(capsys, url, "gov", "propose", "set_config",
                          "changes.batch_timeout_ms=30", "--key", member)
    assert code == 0
    code, again = run_json(capsys, url, "gov", "vote", str(made["proposal_id"]), "approve",
                           "--key", member)
    assert code == 1 and not again["ok"]
    assert again["reason"] == f"sender already voted on proposal {made['proposal_id']}"
    code, out, _ = run(capsys, url, "gov", "propose", "add_validator", "name=x",
                       "public_key=zz", "address=h:1", "--key", member)
    assert code == 1 and "rejected" in out and "params.public_key must be a public key" in out
    code, _, err = run(capsys, url, "gov", "propose", "set_config", "oops", "--key", member)
    assert code == 2 and "is not name=value" in err
    code, _, err = run(capsys, url, "gov", "vote", "1", "approve")
    assert code == 2 and "--key" in err
    code, _, err = run(capsys, url, "org", "show", make_uscc("9", "1", "350100", "MA2Y0099"))
    assert code == 2 and "no organisation" in err
    code, _, err = run(capsys, url, "org", "show", "91350100MA2Y0001X0")  # checked first
    assert code == 2 and "check character is '0', expected '9'" in err


def test_org_list(net: tuple[Path, str, NodeThread], capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: `org list` shows every sample organisation with kind, region and roles.
    Method: --json and the table."""
    _, url, _ = net
    code, orgs = run_json(capsys, url, "org", "list")
    assert code == 0
    by_uscc = {o["uscc"]: o for o in orgs["orgs"]}
    assert set(by_uscc) == {o.uscc for o in SAMPLE_ORGS}
    audit = by_uscc["11350100MB1F00030Y"]
    assert audit["kind"] == "department" and audit["region"] == "350100"
    code, out, _ = run(capsys, url, "org", "list")
    assert code == 0 and "organisations (8)" in out


def test_signed_reads_at_the_node(net: tuple[Path, str, NodeThread]) -> None:
    """Goal: the node authorises signed reads with ledger.reads and logs them on the ledger:
    an auditor's read of the access log is answered, replaying its header is refused (409),
    an enterprise key is refused (403), no header is 401, and the served read itself shows
    up in the log. Method: SDK Client.get(signed=True) and raw requests against the node."""
    directory, url, _ = net
    auditor = load_private_key_file(key_of(directory, "sjj"), "sm")
    client = Client(url, key=auditor)
    assert "entries" in client.get("/v1/access-log", {"limit": "5"}, signed=True)
    read = make_read(auditor, client.chain_id, "GET", "/v1/access-log", {"limit": "7"},
                     int(time.time() * 1000), 4242)
    headers = {HEADER: read.encoded().hex()}
    assert "entries" in request(f"{url}/v1/access-log?limit=7", headers=headers)
    with pytest.raises(NodeError) as replay:
        request(f"{url}/v1/access-log?limit=7", headers=headers)
    assert (replay.value.status, replay.value.code) == (409, "replayed")
    enterprise = Client(url, key=load_private_key_file(key_of(directory, "slkj"), "sm"))
    with pytest.raises(NodeError) as refused:
        enterprise.get("/v1/access-log", signed=True)
    assert refused.value.status == 403
    assert refused.value.detail == "reader (福州示例科技有限公司) does not have the auditor role"
    with pytest.raises(NodeError) as unsigned:
        request(f"{url}/v1/access-log")
    assert (unsigned.value.status, unsigned.value.code) == (401, "signature_required")
    deadline = time.monotonic() + 20
    while True:  # the reads are committed in the next blocks
        entries = client.get("/v1/access-log", {"limit": "50"}, signed=True)["entries"]
        if any(e["query"] == {"limit": "7"} for e in entries):
            break
        assert time.monotonic() < deadline, entries
        time.sleep(0.2)


def test_the_whole_access_log_can_be_paged_through(net: tuple[Path, str, NodeThread],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: an auditor reaches every entry of the access log, not only the newest 500: a
    page's ``next`` cursor gives the entries older than it, no entry twice or missed, even
    as the paging reads themselves are logged on top; a block height pages from there;
    a malformed cursor is a usage error that says what a cursor is. Method: make reads
    until the log holds at least 7 entries; page through it 2 at a time with the CLI;
    compare with one page of all of it taken before."""
    directory, url, _ = net
    auditor = key_of(directory, "sjj")
    client = Client(url, key=load_private_key_file(auditor, "sm"))
    deadline = time.monotonic() + 30
    while len(client.get("/v1/access-log", {"limit": "500"}, signed=True)["entries"]) < 8:
        assert time.monotonic() < deadline, "signed reads were not logged"
        time.sleep(0.2)
    everything = client.get("/v1/access-log", {"limit": "500"}, signed=True)
    assert everything["next"] is None
    paged: list[Any] = []
    code, page = run_json(capsys, url, "audit", "access-log", "--limit", "2", "--key", auditor)
    newest = everything["entries"][0]
    while True:
        assert code == 0 and len(page["entries"]) <= 2
        paged += page["entries"]
        if page["next"] is None:
            break
        code, page = run_json(capsys, url, "audit", "access-log", "--limit", "2",
                              "--before", page["next"], "--key", auditor)
    # The first page began above the reads logged since; from `newest` down, the same log.
    start = [e["tx_id"] for e in paged].index(newest["tx_id"])
    assert [e["tx_id"] for e in paged[start:]] == [e["tx_id"] for e in everything["entries"]]
    height = everything["entries"][2]["height"]
    code, older = run_json(capsys, url, "audit", "access-log", "--before", str(height),
                           "--limit", "500", "--key", auditor)
    assert code == 0 and older["entries"] and all(e["height"] < height
                                                  for e in older["entries"])
    assert older["entries"] == [e for e in everything["entries"] if e["height"] < height]
    code, out, _ = run(capsys, url, "audit", "access-log", "--limit", "1", "--key", auditor)
    assert code == 0 and "older entries: --before " in out
    code, _, err = run(capsys, url, "audit", "access-log", "--before", "12-abc",
                       "--key", auditor)
    assert code == 2 and "before must be a block height, or the next cursor" in err
