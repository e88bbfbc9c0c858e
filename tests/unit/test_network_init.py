"""ledger.network: ``node.py init`` — keys, genesis, node.toml files, sample organisations.

Every test builds a network in ``tmp_path`` with :func:`init_network` and reads
it back the way a node, an operator script or the certificates part would:
``load_genesis``, ``load_node_config``, ``load_private_key_file``, ``load_orgs``.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from certs.ids import format_cert_id, validate_uscc
from consensus.newview import PREPARED_MAX
from consensus.replica import ReplicaConfig
from ledger.acl import ROLES, get_account
from ledger.codec import Value
from ledger.crypto import ENV_PASSPHRASE, load_private_key_file
from ledger.errors import InputError, KeyFileError
from ledger.genesis import DEFAULT_CONFIG, initial_state, load_genesis
from ledger.network import (
    PIPELINE_DEPTH_MAX,
    SAMPLE_ORGS,
    NetworkLayout,
    init_network,
    join_network,
    load_node_config,
    load_orgs,
)

TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def _no_env_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _init(directory: Path, nodes: int = 4, **kwargs: object) -> NetworkLayout:
    return init_network(directory, nodes, time_ms=TIME_MS, **kwargs)  # type: ignore[arg-type]


# --- The network -------------------------------------------------------------------


@pytest.mark.parametrize(("suite", "nodes", "base_port"), [("sm", 4, 17700), ("intl", 1, 7700)])
def test_network_files_agree(suite: str, nodes: int, base_port: int, tmp_path: Path) -> None:
    """Goal: genesis, node.toml files and node keys form one consistent network.
    Method: init (4-node sm on a custom base port, 1-node intl on the default), then
    load genesis.json (validates), every node.toml and every key; check ports P+i,
    addresses, mode 0600, key i == validator i, the merged config and the accounts
    (node keys are committee members when there are no sample orgs).
    """
    directory = tmp_path / "net"
    layout = _init(directory, nodes, suite=suite, base_port=base_port,
                   config={"checkpoint_interval": 32, "alert_split_threshold_fen": 5_000_000})

    genesis = load_genesis(directory / "genesis.json")
    genesis.validate()
    assert genesis == layout.genesis
    assert layout.genesis_path == directory / "genesis.json"
    assert (genesis.chain_id, genesis.suite, genesis.time) == ("govledger-local", suite, TIME_MS)
    assert genesis.config == {**DEFAULT_CONFIG, "checkpoint_interval": 32,
                              "alert_split_threshold_fen": 5_000_000}
    assert [v.name for v in genesis.validators.validators] == [f"node{i}" for i in range(nodes)]
    assert [v.address for v in genesis.validators.validators] == [
        f"127.0.0.1:{base_port + i}" for i in range(nodes)
    ]
    assert layout.orgs == []
    assert not (directory / "keys").exists()
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []  # no staging

    assert layout.node_configs == [directory / f"node{i}" / "node.toml" for i in range(nodes)]
    for i, path in enumerate(layout.node_configs):
        config = load_node_config(path)
        assert config.name == f"node{i}"
        assert (config.host, config.port) == ("127.0.0.1", base_port + i)
        assert config.genesis == (directory / "genesis.json").resolve()
        assert config.key == (directory / f"node{i}" / "node.pem").resolve()
        assert config.data_dir == (directory / f"node{i}" / "data").resolve()
        assert (config.tx_bytes_max, config.sender_rate_per_s, config.sender_burst,
                config.mempool_max, config.log_level) == (65536, 200, 400, 10_000, "INFO")
        assert _mode(config.key) == 0o600
        assert "PRIVATE KEY" in config.key.read_text()
        assert "ENCRYPTED" not in config.key.read_text()
        key = load_private_key_file(config.key, suite)
        assert key.public_key().raw == genesis.validators.validators[i].public_key

    state = initial_state(genesis)
    for v in genesis.validators.validators:
        account = get_account(state.get, v.public_key)
        assert account is not None
        assert sorted(account.roles) == ["committee", "validator"]


def test_node_toml_text_is_the_documented_format(tmp_path: Path) -> None:
    """Goal: node.toml is the commented, human-editable format of the issue.
    Method: init one node; compare the text line by line, ignoring comments' spacing.
    """
    layout = _init(tmp_path, 1, chain_id="fz-test.1")
    text = layout.node_configs[0].read_text(encoding="utf-8")
    assert text.startswith("# govledger node configuration — node0 of chain fz-test.1\n")
    body = [re.sub(r"\s*#.*", "", line) for line in text.splitlines()]
    assert [line for line in body if line] == [
        "[node]", 'name = "node0"', 'genesis = "../genesis.json"', 'key = "node.pem"',
        'data_dir = "data"', 'consortium_key = "consortium.key"', "[http]",
        'host = "127.0.0.1"', "port = 7700", "[limits]",
        "tx_bytes_max = 65536", "sender_rate_per_s = 200", "sender_burst = 400",
        "mempool_max = 10000", "reads_per_s = 0", "read_burst = 0", "[log]",
        'level = "INFO"', "[storage]",
        'compression = "none"', "state_cache_mb = 256", "write_buffer_mb = 128", "[consensus]",
        "pipeline_depth = 1",
    ]


def test_consortium_key_is_shared_secret(tmp_path: Path) -> None:
    """Goal: every node and the sample departments hold the same consortium HMAC key, in
    files only their owner can read, and node.toml points at it. Method: init with sample
    orgs, load each node config and compare the keys and file modes."""
    from ledger.privacy import load_consortium_key

    directory = tmp_path / "net"
    layout = _init(directory, 4, with_sample_orgs=True)
    keys = set()
    for path in layout.node_configs:
        config = load_node_config(path)
        assert config.consortium_key is not None
        assert config.consortium_key.stat().st_mode & 0o777 == 0o600
        keys.add(load_consortium_key(config.consortium_key))
    keys.add(load_consortium_key(directory / "keys" / "consortium.key"))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert "consortium" not in (directory / "genesis.json").read_text()


def test_sample_orgs(tmp_path: Path) -> None:
    """Goal: --with-sample-orgs gives valid, usable department and enterprise accounts.
    Method: init with sample orgs; for every orgs.json entry check the USCC, the roles,
    the key file (mode 0600, loads) and that its public key is a genesis account with
    exactly those roles; check committee membership, cert_types.json, the README,
    and that load_orgs returns the same entries.
    """
    directory = tmp_path / "net"
    layout = _init(directory, 4, with_sample_orgs=True)
    genesis = load_genesis(directory / "genesis.json")
    accounts = {a.public_key: a for a in genesis.accounts}
    orgs = load_orgs(directory)
    assert orgs == layout.orgs == json.loads((directory / "keys/orgs.json").read_text())
    assert len(orgs) == len(SAMPLE_ORGS)

    for org in orgs:
        assert validate_uscc(org["uscc"]) == org["uscc"]
        assert org["roles"] and set(org["roles"]) <= set(ROLES)
        key_path = directory / org["key"]
        assert key_path.parent == directory / "keys" and _mode(key_path) == 0o600
        public = load_private_key_file(key_path, "sm").public_key().raw
        assert org["public_key"] == public.hex()
        account = accounts.pop(public)
        assert (account.name, account.org, account.roles) == (
            org["name"], org["uscc"], org["roles"])
        assert bool(org["cert_types"]) == ("issuer" in org["roles"])
    assert accounts == {}  # node keys are validators only: no extra accounts

    by_name = {o["name"]: o for o in orgs}
    assert by_name["福州市市场监督管理局"]["roles"] == ["committee", "issuer"]
    assert by_name["福州市市场监督管理局"]["cert_types"] == ["11100000MB1F000067001"]
    assert by_name["福州市财政局"]["roles"] == ["committee", "finance"]
    assert by_name["福州市审计局"]["roles"] == ["committee", "auditor"]
    assert by_name["国家税务总局福州市税务局"]["roles"] == ["committee", "verifier"]
    assert "issuer" in by_name["福州市人力资源和社会保障局"]["roles"]
    assert sum("committee" in o["roles"] for o in orgs) == 5
    enterprises = [o for o in orgs if o["roles"] == ["enterprise"]]
    assert len(enterprises) >= 2 and all(o["uscc"].startswith("91350100") for o in enterprises)

    cert_types = json.loads((directory / "keys/cert_types.json").read_text())
    assert {t["name"] for t in cert_types} >= {"营业执照"}
    for t in cert_types:
        assert t["issuers"] == [o["uscc"] for o in orgs if t["code"] in o["cert_types"]]

    readme = (directory / "keys/README.md").read_text(encoding="utf-8")
    for org in orgs:
        assert org["name"] in readme and org["uscc"] in readme and org["key"] in readme
    assert "--key" in readme and "demo" in readme.lower()


def test_sample_org_table_is_valid() -> None:
    """Goal: the SAMPLE_ORGS data table itself is valid, independent of any network.
    Method: validate every USCC, role and slug; build a certificate identifier for each
    (issuer, type) pair so the type codes are usable with certs.ids.
    """
    assert len({o.slug for o in SAMPLE_ORGS}) == len({o.uscc for o in SAMPLE_ORGS}) == len(
        SAMPLE_ORGS)
    for org in SAMPLE_ORGS:
        assert validate_uscc(org.uscc) == org.uscc
        assert re.fullmatch(r"[a-z][a-z0-9-]*", org.slug)
        assert set(org.roles) <= set(ROLES)
        for code in org.cert_types:
            assert format_cert_id(code, org.uscc, "1", 1).startswith("1.2.156.3005.2.")
    assert {o.uscc for o in SAMPLE_ORGS} >= {
        "11350100MB1F000149", "11350100MB1F000224", "11350100MB1F00030Y",
        "11350100MB1F00049U", "11350100MB1F00057N"}


# --- Existing networks -----------------------------------------------------------


def test_refuses_existing_network_and_force_replaces_only_its_files(tmp_path: Path) -> None:
    """Goal: init never silently replaces a network; force replaces only what init writes.
    Method: init 4 nodes with sample orgs and add node data and unrelated files; init
    again without force (InputError telling how to force, nothing changed), then with
    force and 2 nodes: new keys, old node2/node3 and keys/ gone, unrelated files intact.
    """
    first = _init(tmp_path, 4, with_sample_orgs=True)
    (tmp_path / "node0" / "data").mkdir()
    (tmp_path / "node0" / "data" / "CURRENT").write_text("old ledger")
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "nodes-backup").mkdir()
    (tmp_path / "nodes-backup" / "x").write_text("keep me too")
    before = (tmp_path / "genesis.json").read_bytes()

    with pytest.raises(InputError, match=r"already holds a network") as info:
        _init(tmp_path, 4)
    assert "--force" in str(info.value) and "genesis.json" in str(info.value)
    assert (tmp_path / "genesis.json").read_bytes() == before

    second = _init(tmp_path, 2, force=True)
    assert second.genesis.validators.public_keys() != first.genesis.validators.public_keys()
    assert load_genesis(tmp_path / "genesis.json") == second.genesis
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "genesis.json", "node0", "node1", "nodes-backup", "notes.txt"]
    assert not (tmp_path / "node0" / "data").exists()
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "nodes-backup" / "x").read_text() == "keep me too"


def test_refuses_partial_network_and_a_file_as_directory(tmp_path: Path) -> None:
    """Goal: a leftover node folder counts as a network; a file is not a network folder.
    Method: create only DIR/node3/, then use a plain file as DIR and as DIR's parent;
    expect clear InputErrors (an OSError is reported as one too).
    An unrelated keys/ folder without orgs.json does not block a network without orgs.
    """
    (tmp_path / "node3").mkdir()
    (tmp_path / "keys").mkdir()
    with pytest.raises(InputError, match=r"node3/.*--force"):
        _init(tmp_path, 1)
    (tmp_path / "node3").rmdir()
    _init(tmp_path, 1)
    assert (tmp_path / "keys").is_dir() and list((tmp_path / "keys").iterdir()) == []

    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(InputError, match=r"not a folder"):
        _init(plain, 1)
    with pytest.raises(InputError, match=r"cannot write the network into .*plain/net"):
        _init(plain / "net", 1)


def test_passphrase_encrypts_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: with GOVLEDGER_KEY_PASSPHRASE set, every private key is written encrypted.
    Method: set the variable, init 2 nodes; the PEMs are ENCRYPTED PRIVATE KEY, load with
    the variable set and fail with a KeyFileError without it.
    """
    monkeypatch.setenv(ENV_PASSPHRASE, "演示口令 correct horse")
    layout = _init(tmp_path, 2)
    for i, path in enumerate(layout.node_configs):
        key_path = path.parent / "node.pem"
        assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_path.read_text()
        assert _mode(key_path) == 0o600
        key = load_private_key_file(key_path)
        assert key.public_key().raw == layout.genesis.validators.validators[i].public_key
    monkeypatch.delenv(ENV_PASSPHRASE)
    with pytest.raises(KeyFileError):
        load_private_key_file(tmp_path / "node0" / "node.pem")


# --- Bad arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, r"--nodes must be an integer from 1 to \d+, got 0"),
        ({"nodes": -3}, r"--nodes .* got -3"),
        ({"nodes": True}, r"--nodes .* got True"),
        ({"suite": "rsa"}, r"unknown crypto suite 'rsa'; valid suites: 'sm', 'intl'"),
        ({"chain_id": "bad id!"}, r"chain id 'bad id!' is not valid"),
        ({"chain_id": ""}, r"chain id '' is not valid"),
        ({"chain_id": "ok\n"}, r"chain id 'ok\\n' is not valid"),
        ({"nodes": 4, "base_port": 65533}, r"ports 65533\.\.65536 .* --base-port 65532"),
        ({"base_port": 0}, r"--base-port must be an integer from 1 to 65535, got 0"),
        ({"time_ms": -1}, r"genesis time"),
        ({"config": {"batch_timeout_ms": 0.5}}, r"initial configuration: .*float"),
        ({"config": {"checkpoint_interval": "16"}}, r"checkpoint_interval must be a positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    """Goal: bad arguments are InputErrors that say what is wrong, and nothing is written.
    Method: call init_network with one bad argument each; match the message; the target
    folder must not have been created.
    """
    args: dict[str, object] = {"nodes": 1, "time_ms": TIME_MS, **kwargs}
    with pytest.raises(InputError, match=message):
        init_network(tmp_path / "net", **args)  # type: ignore[arg-type]
    assert not (tmp_path / "net").exists()


# --- load_node_config errors -------------------------------------------------------

GOOD_TOML = """\
[node]
name = "node0"
genesis = "../genesis.json"
key = "node.pem"
data_dir = "data"
[http]
host = "127.0.0.1"
port = 7700
[limits]
tx_bytes_max = 65536
sender_rate_per_s = 200
sender_burst = 400
mempool_max = 100000
[log]
level = "INFO"
[storage]
compression = "none"
state_cache_mb = 256
write_buffer_mb = 128
[consensus]
pipeline_depth = 1
"""


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """A node folder with a genesis file beside it and a key file in it (contents unused)."""
    (tmp_path / "genesis.json").write_text("{}")
    node = tmp_path / "node0"
    node.mkdir()
    (node / "node.pem").write_text("")
    return node


def test_minimal_node_toml_uses_defaults_and_paths_relative_to_file(
    node_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Goal: optional keys take their defaults; relative paths resolve against the file.
    Method: write a node.toml with only the required keys and load it from another cwd.
    """
    path = node_dir / "node.toml"
    path.write_text('[node]\nname = "n-1"\ngenesis = "../genesis.json"\nkey = "node.pem"\n'
                    "[http]\nport = 9000\n[log]\nlevel = 'debug'\n")
    monkeypatch.chdir(tmp_path.parent)
    config = load_node_config(path)
    assert config.path == path
    assert config.genesis == (tmp_path / "genesis.json").resolve()
    assert config.key == (node_dir / "node.pem").resolve()
    assert config.data_dir == (node_dir / "data").resolve()
    assert (config.host, config.port, config.log_level) == ("127.0.0.1", 9000, "DEBUG")
    assert (config.tx_bytes_max, config.sender_rate_per_s, config.sender_burst,
            config.mempool_max) == (65536, 200, 400, 10_000)
    assert (config.compression, config.state_cache_mb, config.write_buffer_mb,
            config.pipeline_depth) == ("none", 256, 128, 1)
    path.write_text(path.read_text() + '[storage]\ncompression = "Snappy"\nstate_cache_mb = 0\n'
                    "write_buffer_mb = 16\n[consensus]\npipeline_depth = 2\n")
    changed = load_node_config(path)
    assert (changed.compression, changed.state_cache_mb, changed.write_buffer_mb,
            changed.pipeline_depth) == ("snappy", 0, 16, 2)


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("[node]", "[node", ["not valid TOML"]),
        ("port = 7700", "port = 7700\nprot = 1", ["http.prot", "did you mean 'port'"]),
        ("[log]", "[logging]", ["[logging]", "did you mean 'log'"]),
        ("port = 7700", 'port = "7700"', ["http.port", "expected an integer, got a string"]),
        ("port = 7700", "port = 70000", ["http.port", "out of range (1..65535)"]),
        ("port = 7700", "port = 0", ["http.port", "out of range"]),
        ("port = 7700", "port = 7700.0", ["http.port", "got a float"]),
        ("sender_burst = 400", "sender_burst = true", ["limits.sender_burst", "boolean"]),
        ("mempool_max = 100000", "mempool_max = -1", ["limits.mempool_max", "out of range"]),
        ('name = "node0"', "name = 5", ["node.name", "expected a string"]),
        ('name = "node0"', 'name = "node 0"', ["node.name"]),
        ('name = "node0"\n', "", ["node.name", "missing"]),
        ('genesis = "../genesis.json"', 'genesis = "../nope.json"',
         ["node.genesis", "nope.json", "does not exist"]),
        ('key = "node.pem"', 'key = "other.pem"', ["node.key", "other.pem", "does not exist"]),
        ('host = "127.0.0.1"', 'host = ""', ["http.host", "empty"]),
        ('level = "INFO"', 'level = "LOUD"', ["log.level", "LOUD", "INFO"]),
        ('compression = "none"', 'compression = "zstd"',
         ["storage.compression", "zstd", "none, snappy"]),
        ("state_cache_mb = 256", "state_cache_mb = -1", ["storage.state_cache_mb", "out of range"]),
        ("state_cache_mb = 256", 'state_cache_mb = "1G"',
         ["storage.state_cache_mb", "expected an integer"]),
        ("write_buffer_mb = 128", "write_buffer_mb = 2",
         ["storage.write_buffer_mb", "out of range (4..4096)"]),
        ("pipeline_depth = 1", "pipeline_depth = 0", ["consensus.pipeline_depth", "out of range"]),
        ("pipeline_depth = 1", "pipeline_depth = 9", ["consensus.pipeline_depth", "(1..8)"]),
    ],
)
def test_node_config_errors_name_file_and_key(
    old: str, new: str, names: list[str], node_dir: Path
) -> None:
    """Goal: every node.toml mistake is an InputError naming the file, the key and the fault.
    Method: change one thing in a good node.toml; load; check the message's parts.
    """
    assert old in GOOD_TOML
    path = node_dir / "node.toml"
    path.write_text(GOOD_TOML.replace(old, new, 1))
    with pytest.raises(InputError) as info:
        load_node_config(path)
    message = str(info.value)
    assert str(path) in message
    for name in names:
        assert name in message


def test_node_config_values_outside_sections(node_dir: Path) -> None:
    """Goal: a value where a section belongs, or before any section, is named clearly.
    Method: replace [log] by a top-level ``log = "INFO"``; then add a stray top-level key.
    """
    path = node_dir / "node.toml"
    body = GOOD_TOML.replace('[log]\nlevel = "INFO"\n', "")
    path.write_text('log = "INFO"\n' + body)
    with pytest.raises(InputError, match=r"node\.toml: log must be a section \[log\]"):
        load_node_config(path)
    path.write_text('port = 7700\n' + GOOD_TOML)
    with pytest.raises(InputError, match=r"node\.toml: unknown key port before the first section"):
        load_node_config(path)


def test_node_config_missing_file(tmp_path: Path) -> None:
    """Goal: a missing node.toml is a clear InputError naming the path.
    Method: load a path that does not exist.
    """
    path = tmp_path / "node9" / "node.toml"
    with pytest.raises(InputError, match=r"node config file .*node9/node\.toml does not exist"):
        load_node_config(path)


def test_load_orgs_errors(tmp_path: Path) -> None:
    """Goal: load_orgs explains a network without sample orgs and a damaged orgs.json.
    Method: a 1-node network without orgs; then orgs.json with a bad USCC and a bad role.
    """
    _init(tmp_path, 1)
    with pytest.raises(InputError, match=r"orgs\.json does not exist.*--with-sample-orgs"):
        load_orgs(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k.pem").write_text("")
    entry: dict[str, Value] = {"name": "x", "uscc": "11350100MB1F000148", "roles": [],
                               "key": "keys/k.pem", "cert_types": []}
    (tmp_path / "keys" / "orgs.json").write_text(json.dumps([entry]))
    with pytest.raises(InputError, match=r"orgs\.json: entry 0 \(x\): USCC .*check character"):
        load_orgs(tmp_path)
    entry.update(uscc="11350100MB1F000149", roles=["mayor"])
    (tmp_path / "keys" / "orgs.json").write_text(json.dumps([entry]))
    with pytest.raises(InputError, match=r"unknown role 'mayor'"):
        load_orgs(tmp_path)


# --- join: a node that is not a validator yet ---------------------------------------------


def test_join_creates_a_node_folder_outside_the_validator_set(tmp_path: Path) -> None:
    """Goal: ``node.py join`` makes DIR/<name>/ with a fresh key, a node.toml on the existing
    genesis and a copy of the consortium key, on the next free port; the genesis is untouched
    and the node is not a validator. Method: init 4 nodes with sample orgs, join node4, read
    everything back; the committee key hint is a committee department's key."""
    layout = _init(tmp_path, 4, with_sample_orgs=True, base_port=17700)
    genesis_bytes = layout.genesis_path.read_bytes()
    joined = join_network(tmp_path, "node4")
    config = load_node_config(tmp_path / "node4" / "node.toml")
    assert joined.config_path == config.path and config.name == "node4"
    assert config.genesis == layout.genesis_path and (config.host, config.port) == (
        "127.0.0.1", 17704)
    assert joined.address == "127.0.0.1:17704" and joined.node_url == "http://127.0.0.1:17700"
    key = load_private_key_file(config.key, "sm")
    assert key.public_key().raw == joined.public_key
    assert joined.public_key not in layout.genesis.validators.public_keys()
    assert _mode(config.key) == 0o600
    assert config.consortium_key is not None
    assert config.consortium_key.read_bytes() == (tmp_path / "node0" / "consortium.key"
                                                  ).read_bytes()
    assert layout.genesis_path.read_bytes() == genesis_bytes
    assert joined.committee_key == tmp_path / "keys" / "scjgj.pem"
    second = join_network(tmp_path, "node5", port=18000)
    assert second.address == "127.0.0.1:18000"
    assert join_network(tmp_path, "node6").address == "127.0.0.1:18001"
    assert not list(tmp_path.glob(".govledger-join-*"))


def test_join_without_sample_orgs_suggests_a_node_key(tmp_path: Path) -> None:
    """Goal: without sample orgs the node keys form the committee; join points at one.
    Method: init 1 node without orgs, join."""
    _init(tmp_path, 1)
    assert join_network(tmp_path, "node1").committee_key == tmp_path / "node0" / "node.pem"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "node0"}, "a node named 'node0' already exists"),
    ({"name": "bad name"}, "--name 'bad name'"),
    ({"name": "node9", "port": 17701}, "127.0.0.1:17701 is already used"),
    ({"name": "node9", "port": 70000}, "--port must be an integer from 1 to 65535"),
    ({"name": "node9", "host": "a b"}, "--host 'a b'"),
])
def test_join_refusals(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    """Goal: join refuses a taken name or address and bad arguments, writing nothing.
    Method: each bad call on a 4-node network; the folder listing is unchanged."""
    _init(tmp_path, 4, base_port=17700)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=re.escape(message)):
        join_network(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_join_needs_a_network(tmp_path: Path) -> None:
    """Goal: join in a folder without genesis.json says so. Method: join in an empty folder."""
    with pytest.raises(InputError, match="genesis"):
        join_network(tmp_path, "node4")


def test_join_command_prints_the_proposal(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: ``python node.py join`` prints the new node's public key and address and the
    exact ``govledger gov propose add_validator`` command, which the CLI parses. Method: run
    node.main(["join", ...]) and parse the printed command with the govledger parser."""
    import shlex

    import node
    from client.cli import build_parser

    _init(tmp_path, 4, with_sample_orgs=True, base_port=17700)
    assert node.main(["join", "--dir", str(tmp_path), "--name", "node4", "--port", "17790"]) == 0
    out = capsys.readouterr().out
    key = load_private_key_file(tmp_path / "node4" / "node.pem", "sm").public_key().raw.hex()
    assert f"public key: {key}" in out and "address:    127.0.0.1:17790" in out
    command = next(line.strip() for line in out.splitlines() if "gov propose" in line)
    assert command == (f"govledger --node http://127.0.0.1:17700 gov propose add_validator "
                       f"name=node4 public_key={key} address=127.0.0.1:17790 "
                       f"--key {tmp_path / 'keys' / 'scjgj.pem'}")
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.kind, args.params) == ("add_validator", [
        "name=node4", f"public_key={key}", "address=127.0.0.1:17790"])


@pytest.mark.parametrize(("nodes", "said"), [
    (1, "a single node: for development"),
    (3, "note: 3 nodes keep working only while all of them are up and honest"),
    (4, "it keeps working with up to 1 node down or malicious"),
    (7, "it keeps working with up to 2 nodes down or malicious"),
])
def test_init_says_how_many_faults_the_network_survives(
        nodes: int, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: an operator who asks for 3 nodes (enough for one failure in a Raft cluster) is
    told that a PBFT network of 3 survives none; every network states its f. Method:
    node.main(["init", ...]) for 1, 3, 4 and 7 nodes."""
    import node

    assert node.main(["init", "--nodes", str(nodes), "--dir", str(tmp_path / "net")]) == 0
    assert said in capsys.readouterr().out


def test_pipeline_depth_ceiling_is_what_a_view_change_can_carry() -> None:
    """Goal: node.toml cannot ask for more blocks in flight than a VIEW-CHANGE may carry
    prepared certificates for (a replica must be able to report every one). Method: the
    two constants, and the replica's own check of its configuration."""
    assert PIPELINE_DEPTH_MAX == PREPARED_MAX
    ReplicaConfig(pipeline_depth=PREPARED_MAX)
    with pytest.raises(ValueError, match="pipeline_depth"):
        ReplicaConfig(pipeline_depth=PREPARED_MAX + 1)


def test_demo_on_a_folder_of_an_older_version_says_to_start_afresh(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: ``python node.py demo`` run on a demo folder an older govledger made — whose
    stores this version refuses (their commit certificates do not name a view) — says so
    and what to do, starts no node and touches nothing, instead of four nodes failing.
    Method: init a network, give node2 a store marked format 2, run node.main(["demo"])."""
    import node
    from ledger.codec import encode_value
    from ledger.crypto import get_suite
    from ledger.store import LevelDBStore, older_store_format

    _init(tmp_path, 4, base_port=17700)
    data = tmp_path / "node2" / "data" / "ledger"
    assert older_store_format(data) is None  # no store yet
    store = LevelDBStore(str(data), get_suite("sm"))
    store.close()
    assert older_store_format(data) is None  # this version's
    store = LevelDBStore(str(data), get_suite("sm"))
    store.db.put(b"m:format", encode_value({"version": 2}))
    store.close()
    assert older_store_format(data) == 2
    assert node.main(["demo", "--dir", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "was made by an older govledger" in err and "node2" in err
    assert f"rm -r {tmp_path}" in err
    assert older_store_format(data) == 2
    assert not (tmp_path / "node0" / "data" / "ledger").exists()


def test_the_listening_socket_follows_the_host_and_names_a_bad_one() -> None:
    """Goal: [http] host may be an IPv4 or IPv6 address or a name, as aiohttp allowed before
    the node bound its socket itself; one that does not resolve is an InputError naming it.
    Method: node.listen_socket on 127.0.0.1, ::1 (where the machine has IPv6) and a name
    under .invalid."""
    import socket

    import node

    with node.listen_socket("127.0.0.1", 0) as s4:
        assert s4.family == socket.AF_INET
    if socket.has_ipv6:
        try:
            s6 = node.listen_socket("::1", 0)
        except InputError:
            pass  # IPv6 built in but no ::1 configured here
        else:
            with s6:
                assert s6.family == socket.AF_INET6
    with pytest.raises(InputError, match=r"cannot listen on no-such-host\.invalid:0: "):
        node.listen_socket("no-such-host.invalid", 0)
