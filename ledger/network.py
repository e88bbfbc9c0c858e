"""Creating a local network: keys, the genesis file and one config file per node.

This is the logic behind ``python node.py init --nodes N --dir DIR``. It
writes, under ``DIR``:

``genesis.json``
    :meth:`ledger.genesis.Genesis.to_json`: chain id, crypto suite, genesis
    time, the validators (name, raw public key hex, ``127.0.0.1:<port>``), the
    initial accounts with their roles and the initial on-chain configuration
    (:data:`ledger.genesis.DEFAULT_CONFIG` merged with what the caller gives).
    It is the *trust root*: every node starts from it and every offline
    verifier checks proofs against it, so it is the one file to hand to every
    department, byte for byte.
``node<i>/node.toml``
    The node's local, non-consensus settings (TOML, read with
    :func:`load_node_config`): its name, the genesis and key files and data
    folder (paths relative to the ``node.toml`` itself), the HTTP address,
    admission limits and the log level. Node ``i`` serves HTTP, and its peer
    WebSocket ``/v1/peer``, on ``127.0.0.1:<base_port + i>``.
``node<i>/node.pem``
    The node's private key (PKCS#8 PEM, mode 0600), used for consensus votes
    and the peer handshake. Encrypted with ``$GOVLEDGER_KEY_PASSPHRASE`` when
    that is set. Key custody: each node's key lives only in its own folder,
    so each department can take its folder to its own server; no file other
    than that one holds the secret.
``keys/`` (only with ``with_sample_orgs``)
    Demo keys of sample 福州市 (region 350100) departments and enterprises, which
    sign *transactions* (a department's officers are not its node):
    ``<slug>.pem`` per organisation, ``orgs.json`` (a list of ``{"name",
    "slug", "uscc", "roles", "key", "public_key", "cert_types"}``, ``key``
    relative to ``DIR``, ``cert_types`` a list of type codes the organisation
    issues; read it with :func:`load_orgs`), ``cert_types.json`` (``[{"code",
    "name", "issuers": [uscc, ...]}]``) and a ``README.md`` saying who is who.

``<name>/`` (``python node.py join --dir DIR --name NAME``, :func:`join_network`)
    A node folder like ``node<i>/`` for a node that is not a validator yet: a
    fresh key, a ``node.toml`` pointing at the existing genesis and a copy of
    the consortium key. The committee makes it a validator with an
    ``add_validator`` proposal naming its public key and address.

Accounts: with sample orgs the five departments form the committee and hold
their application roles (:data:`SAMPLE_ORGS`); the node keys are validators
only. Without sample orgs each node key is also a committee member, so that
governance (adding issuers, granting roles) is possible at all on a fresh
network.

Safety: every argument is checked before anything is written; the files are
written into a temporary folder inside ``DIR`` and moved into place at the
end, ``genesis.json`` last. An existing network (``genesis.json``, any
``node<i>/``, or a ``keys/`` folder written by this module) is never
replaced unless ``force=True``, and then only those entries are removed.

Size: ``nodes = 4`` (n = 3f + 1 with f = 1) is the smallest network that keeps
working with one node down or malicious; 1 is allowed for development.
Nothing here reads the clock: the caller passes the genesis time.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger.acl import ROLES
from ledger.block import Validator, ValidatorSet
from ledger.codec import Value, encode_value
from ledger.crypto import ENV_PASSPHRASE, SUITE_NAMES, PrivateKey, get_suite
from ledger.crypto.base import write_file_atomic
from ledger.errors import DecodeError, InputError
from ledger.genesis import DEFAULT_CONFIG, Account, Genesis, Org, load_genesis
from ledger.ids import make_uscc, validate_uscc
from ledger.privacy import (
    CONSORTIUM_KEY_FILE,
    load_consortium_key,
    new_consortium_key,
    save_consortium_key,
)
from ledger.state import CACHE_BYTES_DEFAULT
from ledger.store import COMPRESSION, COMPRESSIONS, WRITE_BUFFER_BYTES
from ledger.tx import CHAIN_ID_RE

DEFAULT_CHAIN_ID: Final = "govledger-local"
DEFAULT_BASE_PORT: Final = 7700
LOCAL_HOST: Final = "127.0.0.1"
NODES_MAX: Final = 100
GENESIS_FILE: Final = "genesis.json"
NODE_CONFIG_FILE: Final = "node.toml"
NODE_KEY_FILE: Final = "node.pem"
KEYS_DIR: Final = "keys"
ORGS_FILE: Final = "orgs.json"
CERT_TYPES_FILE: Final = "cert_types.json"
NODE_DIR_RE: Final = re.compile(r"node[0-9]+")
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
NODE_TOML_BYTES_MAX: Final = 64 * 1024
STATE_CACHE_MB: Final = CACHE_BYTES_DEFAULT >> 20  # [storage] state_cache_mb's default
WRITE_BUFFER_MB: Final = WRITE_BUFFER_BYTES >> 20  # [storage] write_buffer_mb's default
# [consensus] pipeline_depth's ceiling: consensus.newview.PREPARED_MAX (a test checks).
PIPELINE_DEPTH_MAX: Final = 8

# --- Sample organisations (synthetic, 福州市) ------------------------------------------

SAMPLE_REGION: Final = "350100"


@dataclass(frozen=True, slots=True)
class CertType:
    code: str  # 21 characters: the defining department's USCC + 3 digits
    name: str


@dataclass(frozen=True, slots=True)
class SampleOrg:
    slug: str  # ASCII; the key file is keys/<slug>.pem
    name: str
    uscc: str
    roles: tuple[str, ...]
    cert_types: tuple[str, ...] = ()  # type codes this organisation issues


BUSINESS_LICENCE: Final = CertType("11100000MB1F000067001", "营业执照")
HR_SERVICE_PERMIT: Final = CertType("11100000MB1F000067002", "人力资源服务许可证")
SAMPLE_CERT_TYPES: Final = (BUSINESS_LICENCE, HR_SERVICE_PERMIT)

SAMPLE_ORGS: Final[tuple[SampleOrg, ...]] = (
    SampleOrg("scjgj", "福州市市场监督管理局", "11350100MB1F000149",
              ("committee", "issuer"), (BUSINESS_LICENCE.code,)),
    SampleOrg("rsj", "福州市人力资源和社会保障局", "11350100MB1F00057N",
              ("committee", "issuer"), (HR_SERVICE_PERMIT.code,)),
    SampleOrg("czj", "福州市财政局", "11350100MB1F000224", ("committee", "finance")),
    SampleOrg("sjj", "福州市审计局", "11350100MB1F00030Y", ("committee", "auditor")),
    SampleOrg("swj", "国家税务总局福州市税务局", "11350100MB1F00049U", ("committee", "verifier")),
    # Enterprises: USCCs computed (both check characters) rather than typed in.
    SampleOrg("slkj", "福州示例科技有限公司",
              make_uscc("9", "1", SAMPLE_REGION, "MA2Y0001"), ("enterprise",)),
    SampleOrg("mjjs", "福州闽江示例建设工程有限公司",
              make_uscc("9", "1", SAMPLE_REGION, "MA2Y0002"), ("enterprise",)),
    SampleOrg("rcwl", "福州榕城示例物流有限公司",
              make_uscc("9", "1", SAMPLE_REGION, "MA2Y0003"), ("enterprise",)),
)


def _check_sample_orgs() -> None:
    """Our own table must be right; a failure here is a bug, not bad input."""
    codes = {t.code for t in SAMPLE_CERT_TYPES}
    assert len({o.slug for o in SAMPLE_ORGS}) == len(SAMPLE_ORGS)
    assert len({o.uscc for o in SAMPLE_ORGS}) == len(SAMPLE_ORGS)
    for org in SAMPLE_ORGS:
        assert re.fullmatch(r"[a-z][a-z0-9-]*", org.slug), org.slug
        assert validate_uscc(org.uscc) == org.uscc, org.uscc
        assert set(org.roles) <= set(ROLES), org.roles
        assert set(org.cert_types) <= codes, org.cert_types
        assert bool(org.cert_types) == ("issuer" in org.roles), org.slug
    for cert_type in SAMPLE_CERT_TYPES:
        validate_uscc(cert_type.code[:18])


# --- Node configuration ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One node's ``node.toml``, checked, with every path absolute."""

    path: Path  # the node.toml itself
    name: str
    genesis: Path
    key: Path
    data_dir: Path
    host: str
    port: int
    tx_bytes_max: int
    sender_rate_per_s: int
    sender_burst: int
    mempool_max: int
    log_level: str
    consortium_key: Path | None = None  # for HMAC lookups of personal identifiers
    compression: str = COMPRESSION  # LevelDB tables, one of ledger.store.COMPRESSIONS
    state_cache_mb: int = STATE_CACHE_MB  # the state tree's node cache (ledger.state)
    write_buffer_mb: int = WRITE_BUFFER_MB  # LevelDB's write buffer (ledger.store)
    pipeline_depth: int = 1  # heights in flight at once (consensus.replica.ReplicaConfig)
    reads_per_s: int = 0  # queries per client address and second (ledger.api.ReadLimit)
    read_burst: int = 0  # queries a client address may make at once (0: reads_per_s × 2)


@dataclass(frozen=True, slots=True)
class _Key:
    kind: type  # str or int
    default: str | int | None = None  # None: required
    low: int = 0
    high: int = 0


_SCHEMA: Final[dict[str, dict[str, _Key]]] = {
    "node": {
        "name": _Key(str),
        "genesis": _Key(str),
        "key": _Key(str),
        "data_dir": _Key(str, "data"),
        "consortium_key": _Key(str, ""),
    },
    "http": {
        "host": _Key(str, LOCAL_HOST),
        "port": _Key(int, None, 1, 65535),
    },
    "limits": {
        "tx_bytes_max": _Key(int, 65536, 1024, 16 * 1024 * 1024),
        "sender_rate_per_s": _Key(int, 200, 1, 1_000_000),
        "sender_burst": _Key(int, 400, 1, 10_000_000),
        "mempool_max": _Key(int, 10_000, 2, 10_000_000),
        "reads_per_s": _Key(int, 0, 0, 1_000_000),
        "read_burst": _Key(int, 0, 0, 10_000_000),
    },
    "log": {
        "level": _Key(str, "INFO"),
    },
    "storage": {
        "compression": _Key(str, "none"),
        "state_cache_mb": _Key(int, STATE_CACHE_MB, 0, 1 << 20),
        "write_buffer_mb": _Key(int, WRITE_BUFFER_MB, 4, 4096),
    },
    "consensus": {
        "pipeline_depth": _Key(int, 1, 1, PIPELINE_DEPTH_MAX),
    },
}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = file.read(NODE_TOML_BYTES_MAX + 1)
    except FileNotFoundError:
        raise InputError(f"node config file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read node config file {path}: {exc.strerror}") from None
    if len(data) > NODE_TOML_BYTES_MAX:
        raise InputError(f"{path}: larger than {NODE_TOML_BYTES_MAX} bytes; not a node config")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text, so not valid TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def _typed(path: Path, dotted: str, spec: _Key, value: object) -> str | int:
    if spec.kind is int:
        if type(value) is not int:
            raise InputError(f"{path}: {dotted}: expected an integer, got {_describe(value)}")
        if not spec.low <= value <= spec.high:
            raise InputError(
                f"{path}: {dotted} = {value} is out of range ({spec.low}..{spec.high})"
            )
        return value
    if type(value) is not str:
        raise InputError(f"{path}: {dotted}: expected a string, got {_describe(value)}")
    if not value.strip():
        raise InputError(f"{path}: {dotted}: must not be empty")
    return value


def _describe(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _values(path: Path, doc: dict[str, Any]) -> dict[str, str | int]:
    """Flatten ``doc`` to ``{"section.key": value}`` with defaults, rejecting anything unknown."""
    expected = ", ".join(f"[{s}]" for s in _SCHEMA)
    for section, value in doc.items():
        if section not in _SCHEMA and not isinstance(value, dict):
            raise InputError(
                f"{path}: unknown key {section} before the first section; keys belong in"
                f" {expected}"
            )
        if section not in _SCHEMA:
            raise InputError(
                f"{path}: unknown section [{section}]{_suggest(section, list(_SCHEMA))};"
                f" expected {expected}"
            )
        if not isinstance(value, dict):
            raise InputError(f"{path}: {section} must be a section [{section}], not a value")
    out: dict[str, str | int] = {}
    for section, keys in _SCHEMA.items():
        table: dict[str, Any] = doc.get(section, {})
        for key in table:
            if key not in keys:
                raise InputError(
                    f"{path}: unknown key {section}.{key}{_suggest(key, list(keys))};"
                    f" [{section}] takes {', '.join(keys)}"
                )
        for key, spec in keys.items():
            dotted = f"{section}.{key}"
            if key in table:
                out[dotted] = _typed(path, dotted, spec, table[key])
            elif spec.default is None:
                raise InputError(f"{path}: {dotted} is missing (required in [{section}])")
            else:
                out[dotted] = spec.default
    return out


def _str(values: dict[str, str | int], dotted: str) -> str:
    value = values[dotted]
    assert isinstance(value, str)
    return value


def _int(values: dict[str, str | int], dotted: str) -> int:
    value = values[dotted]
    assert isinstance(value, int)
    return value


def load_node_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read and check a ``node.toml``; paths in it are relative to the file.

    Raises InputError naming the file, the key and what is wrong: missing or
    unreadable file, invalid TOML, unknown section or key, wrong type, value
    out of range, genesis or key file missing, data folder not a folder.
    """
    path = Path(path).expanduser().absolute()
    values = _values(path, _read_toml(path))
    base = path.parent

    def resolve(dotted: str) -> Path:
        return (base / Path(_str(values, dotted)).expanduser()).resolve()

    name = _str(values, "node.name")
    if not NAME_RE.fullmatch(name):
        raise InputError(
            f"{path}: node.name = {name!r}: use 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric"
        )
    genesis, key, data_dir = resolve("node.genesis"), resolve("node.key"), resolve("node.data_dir")
    if not genesis.is_file():
        raise InputError(f"{path}: node.genesis: genesis file {genesis} does not exist")
    if not key.is_file():
        raise InputError(f"{path}: node.key: key file {key} does not exist")
    if data_dir.exists() and not data_dir.is_dir():
        raise InputError(f"{path}: node.data_dir: {data_dir} exists and is not a folder")
    consortium_key = resolve("node.consortium_key") if _str(values, "node.consortium_key") else None
    if consortium_key is not None and not consortium_key.is_file():
        raise InputError(f"{path}: node.consortium_key: {consortium_key} does not exist")
    host = _str(values, "http.host")
    if any(c.isspace() for c in host):
        raise InputError(f"{path}: http.host = {host!r} must not contain spaces")
    level = _str(values, "log.level").upper()
    if level not in LOG_LEVELS:
        raise InputError(
            f"{path}: log.level = {_str(values, 'log.level')!r}: expected one of"
            f" {', '.join(LOG_LEVELS)}"
        )
    compression = _str(values, "storage.compression").lower()
    if compression not in COMPRESSIONS:
        raise InputError(
            f"{path}: storage.compression = {_str(values, 'storage.compression')!r}: expected"
            f" one of {', '.join(COMPRESSIONS)}"
        )
    return NodeConfig(
        path=path,
        name=name,
        genesis=genesis,
        key=key,
        data_dir=data_dir,
        host=host,
        port=_int(values, "http.port"),
        tx_bytes_max=_int(values, "limits.tx_bytes_max"),
        sender_rate_per_s=_int(values, "limits.sender_rate_per_s"),
        sender_burst=_int(values, "limits.sender_burst"),
        mempool_max=_int(values, "limits.mempool_max"),
        reads_per_s=_int(values, "limits.reads_per_s"),
        read_burst=_int(values, "limits.read_burst"),
        log_level=level,
        consortium_key=consortium_key,
        compression=compression,
        state_cache_mb=_int(values, "storage.state_cache_mb"),
        write_buffer_mb=_int(values, "storage.write_buffer_mb"),
        pipeline_depth=_int(values, "consensus.pipeline_depth"),
    )


def _node_toml(name: str, chain_id: str, port: int, host: str = LOCAL_HOST,
               consortium: bool = True) -> str:
    limits = _SCHEMA["limits"]
    secret = (f'consortium_key = "{CONSORTIUM_KEY_FILE}"  # HMAC key for personal identifiers '
              "(keep it secret)" if consortium else "# consortium_key: none was found")
    return f"""\
# govledger node configuration — {name} of chain {chain_id}
[node]
name = {json.dumps(name)}
genesis = "../{GENESIS_FILE}"   # paths are relative to this file
key = "{NODE_KEY_FILE}"
data_dir = "data"
{secret}

[http]
host = {json.dumps(host)}
port = {port}  # HTTP API and the peer WebSocket /v1/peer

[limits]
tx_bytes_max = {limits["tx_bytes_max"].default}
sender_rate_per_s = {limits["sender_rate_per_s"].default}  # admission token bucket per sender key
sender_burst = {limits["sender_burst"].default}
# The pool of transactions waiting to be ordered. This node refuses new ones (503 busy,
# Retry-After) while two blocks' worth wait (at most half of this), before checking their
# signatures: an overload is shed, not verified.
mempool_max = {limits["mempool_max"].default}
# Queries (everything but transactions and the peer link) per client address and second;
# beyond it a 429 with Retry-After. 0: no limit. For a node that many systems query, so
# that one of them cannot take the event loop from consensus.
reads_per_s = {limits["reads_per_s"].default}
read_burst = {limits["read_burst"].default}  # 0: twice reads_per_s

[log]
level = "INFO"

[storage]
compression = "none"  # or "snappy": ~1.7 - 3.3x less disk, more CPU in LevelDB's merges
state_cache_mb = {STATE_CACHE_MB}  # MiB of state-tree nodes; ~1.3 KB per state key holds it all
write_buffer_mb = {WRITE_BUFFER_MB}  # MiB of LevelDB write buffer (up to 2 held): less merging CPU

[consensus]
# Blocks in flight at once (1..{PIPELINE_DEPTH_MAX}): 2 proposes the next block once this one is
# prepared, for nodes on machines of their own (on shared cores it bought no latency).
pipeline_depth = 1
"""


# --- init ------------------------------------------------------------------------


@dataclass
class NetworkLayout:
    directory: Path
    genesis_path: Path
    node_configs: list[Path]
    orgs: list[dict[str, Any]]  # the content of keys/orgs.json ([] without sample orgs)
    genesis: Genesis


def _check_arguments(
    nodes: int, suite: str, base_port: int, chain_id: str, time_ms: int
) -> None:
    if type(nodes) is not int or not 1 <= nodes <= NODES_MAX:
        raise InputError(
            f"--nodes must be an integer from 1 to {NODES_MAX}, got {nodes!r}"
            " (4 = 3f+1 with f=1 is the smallest fault-tolerant network)"
        )
    if suite not in SUITE_NAMES:
        raise InputError(
            f"unknown crypto suite {suite!r}; valid suites: {', '.join(map(repr, SUITE_NAMES))}"
        )
    if type(base_port) is not int or not 1 <= base_port <= 65535:
        raise InputError(f"--base-port must be an integer from 1 to 65535, got {base_port!r}")
    if base_port + nodes - 1 > 65535:
        raise InputError(
            f"ports {base_port}..{base_port + nodes - 1} for {nodes} nodes do not fit in"
            f" 1..65535; use --base-port {65536 - nodes} or lower"
        )
    if type(chain_id) is not str or not CHAIN_ID_RE.fullmatch(chain_id):
        raise InputError(
            f"chain id {chain_id!r} is not valid: 1-64 characters of A-Z a-z 0-9 . _ -,"
            " starting with a letter or digit"
        )
    if type(time_ms) is not int or time_ms < 0:
        raise InputError(f"genesis time must be integer milliseconds since 1970, got {time_ms!r}")


def _merged_config(config: dict[str, Value] | None) -> dict[str, Value]:
    extra: dict[str, Value] = dict(config or {})
    try:
        encode_value(extra)  # string keys, no floats, canonical-encodable values
    except DecodeError as exc:
        raise InputError(f"initial configuration: {exc}") from None
    for name, value in extra.items():
        if name in DEFAULT_CONFIG and (type(value) is not int or value <= 0):
            raise InputError(
                f"initial configuration: {name} must be a positive integer, got {value!r}"
            )
    return {**DEFAULT_CONFIG, **extra}


def _existing(directory: Path, with_sample_orgs: bool) -> list[Path]:
    """The entries of a previous network in ``directory`` that this call would replace."""
    if not directory.is_dir():
        return []
    found: list[Path] = []
    for entry in sorted(directory.iterdir()):
        ours = (
            entry.name == GENESIS_FILE
            or (NODE_DIR_RE.fullmatch(entry.name) is not None and entry.is_dir())
            or (entry.name == KEYS_DIR and (with_sample_orgs or (entry / ORGS_FILE).exists()))
        )
        if ours:
            found.append(entry)
    return found


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def _sorted_roles(roles: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(set(roles), key=ROLES.index)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: object) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2) + "\n"
    write_file_atomic(path, text.encode("utf-8"), 0o644)


def init_network(
    directory: str | os.PathLike[str],
    nodes: int,
    suite: str = "sm",
    base_port: int = DEFAULT_BASE_PORT,
    with_sample_orgs: bool = False,
    force: bool = False,
    chain_id: str = DEFAULT_CHAIN_ID,
    *,
    time_ms: int,
    config: dict[str, Value] | None = None,
) -> NetworkLayout:
    """Create a network of ``nodes`` validators in ``directory`` (see the module docstring).

    ``time_ms`` is the genesis time (the CLI passes ``int(time.time() * 1000)``);
    ``config`` is merged over DEFAULT_CONFIG. Node i listens on
    ``127.0.0.1:base_port + i``. Without ``with_sample_orgs`` every node key is
    also a committee member, so governance works from the start. ``nodes = 4``
    (3f+1, f=1) is the smallest fault-tolerant size; 1 is for development.

    Raises InputError, before writing anything, for a bad argument or an
    existing network (unless ``force``; then only the previous genesis.json,
    node<i>/ folders — including their data — and keys/ are removed).
    """
    _check_arguments(nodes, suite, base_port, chain_id, time_ms)
    merged = _merged_config(config)
    directory = Path(directory).expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a folder")
    existing = _existing(directory, with_sample_orgs)
    if existing and not force:
        names = ", ".join(e.name + ("/" if e.is_dir() else "") for e in existing)
        raise InputError(
            f"{directory} already holds a network ({names}); pass --force (force=True) to"
            " replace it — this deletes those entries, node data included, and nothing else"
        )
    if with_sample_orgs:
        _check_sample_orgs()
    crypto = get_suite(suite)
    node_keys = [crypto.generate_key() for _ in range(nodes)]
    org_keys = [crypto.generate_key() for _ in SAMPLE_ORGS] if with_sample_orgs else []
    genesis = _build_genesis(chain_id, suite, time_ms, base_port, merged, node_keys, org_keys)
    genesis.validate()
    env = os.environ.get(ENV_PASSPHRASE)
    passphrase = env.encode("utf-8") if env else None

    try:
        orgs = _install(directory, existing, genesis, base_port, node_keys, org_keys, passphrase)
    except OSError as exc:
        raise InputError(f"cannot write the network into {directory}: {exc}") from None

    node_configs = [directory / f"node{i}" / NODE_CONFIG_FILE for i in range(nodes)]
    for path in node_configs:
        load_node_config(path)  # what we wrote must read back
    return NetworkLayout(
        directory=directory,
        genesis_path=directory / GENESIS_FILE,
        node_configs=node_configs,
        orgs=orgs,
        genesis=genesis,
    )


def _install(
    directory: Path,
    existing: list[Path],
    genesis: Genesis,
    base_port: int,
    node_keys: list[PrivateKey],
    org_keys: list[PrivateKey],
    passphrase: bytes | None,
) -> list[dict[str, Any]]:
    """Write everything into a staging folder inside ``directory``, then move it into place
    (after removing ``existing``), genesis.json last. Returns the orgs.json entries.
    """
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".govledger-init-", dir=directory))
    try:
        consortium_key = new_consortium_key()
        for i, key in enumerate(node_keys):
            node_dir = staging / f"node{i}"
            node_dir.mkdir()
            key.save(node_dir / NODE_KEY_FILE, passphrase)
            save_consortium_key(node_dir / CONSORTIUM_KEY_FILE, consortium_key)
            text = _node_toml(f"node{i}", genesis.chain_id, base_port + i)
            write_file_atomic(node_dir / NODE_CONFIG_FILE, text.encode("utf-8"), 0o644)
        orgs: list[dict[str, Any]] = []
        if org_keys:
            orgs = _write_sample_orgs(staging / KEYS_DIR, directory, org_keys, passphrase)
            # The departments hold the consortium key too (holders' ID numbers are HMACed
            # client-side before a transaction is signed).
            save_consortium_key(staging / KEYS_DIR / CONSORTIUM_KEY_FILE, consortium_key)
        genesis_json = genesis.to_json().encode("utf-8") + b"\n"
        write_file_atomic(staging / GENESIS_FILE, genesis_json, 0o644)
        assert load_genesis(staging / GENESIS_FILE) == genesis
        for entry in existing:
            _remove(entry)
        # genesis.json last: a folder with it is a complete network.
        for entry in sorted(staging.iterdir(), key=lambda e: e.name == GENESIS_FILE):
            os.replace(entry, directory / entry.name)
        _fsync_dir(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return orgs


def _build_genesis(
    chain_id: str,
    suite: str,
    time_ms: int,
    base_port: int,
    config: dict[str, Value],
    node_keys: list[PrivateKey],
    org_keys: list[PrivateKey],
) -> Genesis:
    validators = ValidatorSet([
        Validator(name=f"node{i}", public_key=k.public_key().raw,
                  address=f"{LOCAL_HOST}:{base_port + i}")
        for i, k in enumerate(node_keys)
    ])
    if org_keys:
        accounts = [
            Account(name=org.name, org=org.uscc, public_key=key.public_key().raw,
                    roles=_sorted_roles(org.roles))
            for org, key in zip(SAMPLE_ORGS, org_keys, strict=True)
        ]
    else:
        # No departments yet: the node keys govern, or no proposal could ever pass.
        accounts = [
            Account(name=v.name, org="", public_key=v.public_key, roles=["committee"])
            for v in validators.validators
        ]
    orgs = [Org(name=org.name, uscc=org.uscc,
                kind="enterprise" if "enterprise" in org.roles else "department",
                region=SAMPLE_REGION) for org in SAMPLE_ORGS] if org_keys else []
    apps: dict[str, Value] = {"certs": _sample_certs_data()} if org_keys else {}
    return Genesis(chain_id=chain_id, suite=suite, time=time_ms, validators=validators,
                   accounts=accounts, config=config, orgs=orgs, apps=apps)


# Type-specific fields of the sample certificate types (name, label, required).
_SAMPLE_TYPE_FIELDS: Final[dict[str, tuple[tuple[str, str, bool], ...]]] = {
    BUSINESS_LICENCE.code: (
        ("entity_type", "类型", True), ("legal_representative", "法定代表人", True),
        ("registered_capital", "注册资本", False), ("established", "成立日期", True),
        ("address", "住所", True), ("business_scope", "经营范围", False)),
    HR_SERVICE_PERMIT.code: (
        ("service_scope", "服务范围", True), ("address", "服务场所", True),
        ("person_in_charge", "负责人", False)),
}


def _sample_certs_data() -> Value:
    """Initial data of the certificates application (``genesis.apps["certs"]``, applied by
    ``certs.kinds``): the sample types with their schemas and issuers, and one
    mutual-recognition agreement — 税务局 accepts 营业执照 from 市场监督管理局."""
    types: list[Value] = [
        {"code": t.code, "name": t.name, "holder_code_types": ["001"],
         "fields": [{"name": n, "label": label, "required": req}
                    for n, label, req in _SAMPLE_TYPE_FIELDS[t.code]]}
        for t in SAMPLE_CERT_TYPES
    ]
    issuers: list[Value] = [{"type": code, "issuer": o.uscc}
                            for o in SAMPLE_ORGS for code in o.cert_types]
    by_slug = {o.slug: o for o in SAMPLE_ORGS}
    recognitions: list[Value] = [
        {"agency": by_slug["swj"].uscc, "type": BUSINESS_LICENCE.code,
         "issuers": [by_slug["scjgj"].uscc], "note": "税务登记 accepts 营业执照 (sample)"},
    ]
    return {"types": types, "issuers": issuers, "recognitions": recognitions}


def _write_sample_orgs(
    keys_dir: Path, directory: Path, org_keys: list[PrivateKey], passphrase: bytes | None
) -> list[dict[str, Any]]:
    keys_dir.mkdir()
    orgs: list[dict[str, Any]] = []
    for org, key in zip(SAMPLE_ORGS, org_keys, strict=True):
        key.save(keys_dir / f"{org.slug}.pem", passphrase)
        orgs.append({
            "name": org.name,
            "slug": org.slug,
            "uscc": org.uscc,
            "roles": _sorted_roles(org.roles),
            "key": f"{KEYS_DIR}/{org.slug}.pem",
            "public_key": key.public_key().raw.hex(),
            "cert_types": list(org.cert_types),
        })
    cert_types = [
        {"code": t.code, "name": t.name,
         "issuers": [o.uscc for o in SAMPLE_ORGS if t.code in o.cert_types]}
        for t in SAMPLE_CERT_TYPES
    ]
    _write_json(keys_dir / ORGS_FILE, orgs)
    _write_json(keys_dir / CERT_TYPES_FILE, cert_types)
    readme = _keys_readme(directory, encrypted=passphrase is not None)
    write_file_atomic(keys_dir / "README.md", readme.encode("utf-8"), 0o644)
    return orgs


def _keys_readme(directory: Path, encrypted: bool) -> str:
    type_names = {t.code: t.name for t in SAMPLE_CERT_TYPES}
    rows = "\n".join(
        f"| {o.name} | `{o.uscc}` | {', '.join(_sorted_roles(o.roles))} | "
        f"{'<br>'.join(f'{type_names[c]} `{c}`' for c in o.cert_types) or '—'} | "
        f"`keys/{o.slug}.pem` |"
        for o in SAMPLE_ORGS
    )
    types = "\n".join(
        f"| `{t.code}` | {t.name} | "
        f"{', '.join(o.name for o in SAMPLE_ORGS if t.code in o.cert_types)} |"
        for t in SAMPLE_CERT_TYPES
    )
    protection = (
        f"encrypted with the passphrase that was in `${ENV_PASSPHRASE}`; set it again to use them"
        if encrypted else f"not encrypted (`${ENV_PASSPHRASE}` was not set)"
    )
    return f"""\
# Sample organisations of this network (福州市, region {SAMPLE_REGION})

> **Demo keys — never use them for real data.** They were generated by
> `python node.py init --with-sample-orgs` and sit next to each other in one
> folder; in a real deployment each department generates and keeps its own
> key and only its public key goes into the genesis file. These files are
> PKCS#8 PEM, mode 0600, {protection}.

Each key below is an account in `genesis.json` with exactly the roles listed.
The five departments form the consortium committee (governance needs ≥ 2/3
of them). The USCCs are synthetic but valid (GB 32100 check characters).

| organisation | USCC | roles | certificate types issued | key file |
|---|---|---|---|---|
{rows}

Certificate types (type code = defining department's USCC + 3 digits):

| type code | name | issuers |
|---|---|---|
{types}

## Using the keys with the `govledger` CLI

Sign a request as a department by giving its key file, e.g. as 市场监督管理局
(issuer of 营业执照):

    govledger --key {directory}/keys/scjgj.pem cert issue ...
    govledger --key {directory}/keys/sjj.pem audit alerts
    govledger --key {directory}/keys/czj.pem fund appropriate ...

Add `--node http://{LOCAL_HOST}:{DEFAULT_BASE_PORT}` (any node of the network) to pick
the node; `govledger --help` lists the commands and where `--key` goes.

Machine-readable: `orgs.json` (`name`, `slug`, `uscc`, `roles`, `key` relative
to the network folder, `public_key` hex, `cert_types` as type codes) and
`cert_types.json` (`code`, `name`, `issuers` by USCC).
"""


# --- join: a node that is not a validator yet ------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinLayout:
    """What :func:`join_network` made, and what the committee needs to add the node."""

    config_path: Path  # DIR/<name>/node.toml
    public_key: bytes
    address: str  # host:port it serves on; the add_validator proposal names it
    genesis: Genesis
    node_url: str  # a validator to send the proposal to
    committee_key: Path | None  # a committee member's key file in DIR, if one is there


def join_network(
    directory: str | os.PathLike[str], name: str, port: int | None = None,
    host: str = LOCAL_HOST,
) -> JoinLayout:
    """Create ``DIR/<name>/`` for a new node of the network whose genesis.json is in DIR.

    The folder holds a fresh key (``node.pem``, encrypted with
    ``$GOVLEDGER_KEY_PASSPHRASE`` when set), a ``node.toml`` pointing at the
    existing ``../genesis.json`` and a copy of the consortium key (from
    ``keys/`` or another node's folder, when there is one). The node is not a
    validator: it becomes one when the committee passes ``add_validator`` with
    its public key and address. ``port`` defaults to one above the highest
    port of the network on ``host``. InputError, before anything is written,
    if DIR has no genesis, the name is bad or taken, or the address is in use.
    """
    directory = Path(directory).expanduser().absolute()
    genesis = load_genesis(directory / GENESIS_FILE)
    if type(name) is not str or not NAME_RE.fullmatch(name):
        raise InputError(f"--name {name!r}: use 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric")
    node_dir = directory / name
    if node_dir.exists() or name in {v.name for v in genesis.validators.validators}:
        raise InputError(f"a node named {name!r} already exists in {directory}; pick another")
    if not host or any(c.isspace() or c == ":" for c in host):
        raise InputError(f"--host {host!r} must be a host name or IPv4 address")
    used = _network_addresses(directory, genesis)
    if port is None:
        port = 1 + max([p for h, p in used if h == host] or [DEFAULT_BASE_PORT - 1])
    if type(port) is not int or not 1 <= port <= 65535:
        raise InputError(f"--port must be an integer from 1 to 65535, got {port!r}")
    if (host, port) in used:
        raise InputError(f"{host}:{port} is already used by a node of this network")
    secret = _find_consortium_key(directory)
    key = genesis.crypto.generate_key()
    env = os.environ.get(ENV_PASSPHRASE)
    staging = Path(tempfile.mkdtemp(prefix=".govledger-join-", dir=directory))
    try:
        key.save(staging / NODE_KEY_FILE, env.encode("utf-8") if env else None)
        if secret is not None:
            save_consortium_key(staging / CONSORTIUM_KEY_FILE, load_consortium_key(secret))
        text = _node_toml(name, genesis.chain_id, port, host, consortium=secret is not None)
        write_file_atomic(staging / NODE_CONFIG_FILE, text.encode("utf-8"), 0o644)
        os.replace(staging, node_dir)
        _fsync_dir(directory)
    except OSError as exc:
        raise InputError(f"cannot write {node_dir}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    config = load_node_config(node_dir / NODE_CONFIG_FILE)
    first = genesis.validators.validators[0].address
    return JoinLayout(config_path=config.path, public_key=key.public_key().raw,
                      address=f"{host}:{port}", genesis=genesis, node_url=f"http://{first}",
                      committee_key=_committee_key(directory, genesis))


def _network_addresses(directory: Path, genesis: Genesis) -> set[tuple[str, int]]:
    """(host, port) of every validator in genesis and every node folder in ``directory``."""
    used: set[tuple[str, int]] = set()
    for v in genesis.validators.validators:
        host, _, port = v.address.rpartition(":")
        if port.isascii() and port.isdigit():
            used.add((host, int(port)))
    for path in directory.glob(f"*/{NODE_CONFIG_FILE}"):
        try:
            config = load_node_config(path)
        except InputError:
            continue
        used.add((config.host, config.port))
    return used


def _find_consortium_key(directory: Path) -> Path | None:
    candidates = [directory / KEYS_DIR / CONSORTIUM_KEY_FILE,
                  *sorted(directory.glob(f"*/{CONSORTIUM_KEY_FILE}"))]
    return next((c for c in candidates if c.is_file()), None)


def _committee_key(directory: Path, genesis: Genesis) -> Path | None:
    """A committee member's key file in DIR (sample departments, else a node key)."""
    if (directory / KEYS_DIR / ORGS_FILE).exists():
        try:
            orgs = load_orgs(directory)
        except InputError:
            orgs = []
        for org in orgs:
            if "committee" in org["roles"]:
                return directory / str(org["key"])
    members = {a.public_key for a in genesis.accounts if "committee" in a.roles}
    for v in genesis.validators.validators:
        path = directory / v.name / NODE_KEY_FILE
        if v.public_key in members and path.is_file():
            return path
    return None


# --- Reading orgs.json back -------------------------------------------------------


def load_orgs(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of ``DIR/keys/orgs.json``, checked; InputError says what is wrong.

    Each entry has ``name``, ``uscc`` (valid), ``roles`` (within ROLES), ``key``
    (relative to ``directory``; the file must exist) and ``cert_types`` (type
    codes). A network made without sample orgs has no orgs.json: that is an
    InputError too, saying so.
    """
    directory = Path(directory).expanduser().absolute()
    path = directory / KEYS_DIR / ORGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{path} does not exist: create the network with --with-sample-orgs"
            " (node.py init --with-sample-orgs) to get sample organisations"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    try:
        orgs = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(orgs, list):
        raise InputError(f"{path}: expected a list of organisations")
    for i, org in enumerate(orgs):
        _check_org(path, directory, i, org)
    return orgs


def _check_org(path: Path, directory: Path, i: int, org: object) -> None:
    where = f"{path}: entry {i}"
    if not isinstance(org, dict):
        raise InputError(f"{where}: expected an object")
    for field, kind in (("name", str), ("uscc", str), ("roles", list), ("key", str),
                        ("cert_types", list)):
        if not isinstance(org.get(field), kind):
            raise InputError(f"{where}: {field!r} is missing or not a {kind.__name__}")
    try:
        validate_uscc(org["uscc"])
    except InputError as exc:
        raise InputError(f"{where} ({org['name']}): {exc}") from None
    for role in org["roles"]:
        if role not in ROLES:
            raise InputError(f"{where} ({org['name']}): unknown role {role!r}")
    if not all(isinstance(code, str) for code in org["cert_types"]):
        raise InputError(f"{where} ({org['name']}): cert_types must be type-code strings")
    if not (directory / org["key"]).is_file():
        raise InputError(f"{where} ({org['name']}): key file {directory / org['key']} is missing")
