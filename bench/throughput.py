"""Throughput and latency of a real 4-validator network on this machine.

    python -m bench throughput [--seconds 20] [--clients 64] [--verify-workers N] [--quick]
                               [--json]
    python -m bench throughput --rate R [--seconds 20] [--verify-workers N] [--json]

1. Starts ``--nodes`` validators as separate ``node.py run`` processes on
   127.0.0.1 (SM2 suite by default), with admission rate limits raised so the
   load generator, not a limit, is the bottleneck; each with ``--verify-workers``
   signature worker processes — by default as ``node.py up`` runs a local network
   (``node.colocated_verify_workers``): none, checks in the event loop, when the nodes
   are at least as many as the cores, else one.
2. Pre-signs the transactions in worker processes (signing is the clients'
   cost, not the network's): SM2-signed ``cert.issue`` transactions of business
   licences by default, or ``evidence.anchor`` (``--workload anchor``).
3. Closed loop: ``--clients`` concurrent clients submit with ``?wait=commit``
   for ``--seconds``. Committed tx/s is counted from the blocks appended in
   that window (block time), not from acknowledgements.
4. Open loop at 10 %, 50 % and 80 % of that peak: requests at a fixed rate,
   each timed from submit to its commit acknowledgement; p50 / p99, with the
   blocks made per second, the cores each kind of process used, and the nodes'
   CPU per block.
5. Online proof queries: 16 closed-loop clients fetch certificate proof bundles
   (``GET /v1/certs/{id}/proof``) of the certificates just issued from one node.
6. Peak RSS of each node process, and its own (anonymous) memory at the end: RSS
   also counts the pages of the store's table files LevelDB maps.

With ``--rate R`` it runs one open-loop point instead of steps 3 - 5: R tx/s offered to
a fresh network for ``--seconds`` (after 3 s of warm-up at that rate), with the same
figures as a point of step 4 and the nodes' CPU per transaction. A fixed rate on a
fresh network is the steadier yardstick for a change to a block's fixed cost: the
points of step 4 follow the peak the closed loop found and the store it grew.

The machine's limit line (cores × SM2 verifies/s ÷ nodes) is printed beside
the figures, measured before the run (the ratio's denominator) and again after
the open-loop points (``limit_tps_after``): a shared machine's speed drifts, and
the two readings say how much it did during the run. The load generator runs on
the same cores as the nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cpu_snapshot, limit_line, percentile, write_result
from bench.httpload import HttpError, Pool, post_request

MSGPACK = "application/msgpack"
SUBMIT = "/v1/tx?wait=commit"
REQUEST_TIMEOUT_S = 120  # an open-loop request not answered by then did not commit
# The disjoint kinds of process in cpu_snapshot (node_event_loops is part of nodes).
PROCESS_KINDS = ("nodes", "verifier_workers", "load_generator")
BUSINESS_LICENCE_CODE = "11100000MB1F000067001"  # the sample 营业执照 type (ledger.network)


def _sign_batch(args: tuple[str, str, str, str, str, int, int, int]) -> list[bytes]:
    """Sign ``count`` transactions of ``workload`` with one key (runs in a worker process).

    ``cert``: the issuer signs a business licence (营业执照) document, as an issuing
    department would, and a ``cert.issue`` transaction anchoring its digest — the
    document signature is the client's cost, so it is paid here, before the clock starts.
    ``anchor``: an ``evidence.anchor`` of a random digest.
    """
    workload, key_path, issuer_json, suite_name, chain_id, first, count, valid_until = args
    from ledger import evidence
    from ledger.crypto import load_private_key_file
    from ledger.tx import make_tx

    key = load_private_key_file(key_path, suite_name)
    out = []
    if workload == "anchor":
        for n in range(first, first + count):
            digest = n.to_bytes(8, "big") + os.urandom(24)
            out.append(make_tx(key, chain_id, evidence.TX_TYPE,
                               {"digest": digest, "label": "b"}, n, valid_until).encoded())
        return out
    from certs.handlers import ISSUE_TX
    from certs.issuing import Issuer, cert_type_from_view, issue_payload, new_document
    from certs.records import LEGAL_PERSON, LONG_TERM

    issuer_org, holder, type_view = json.loads(issuer_json)
    cert_type = cert_type_from_view(type_view)
    issuer = Issuer(uscc=issuer_org["uscc"], name=issuer_org["name"],
                    area_code=issuer_org["uscc"][2:8])
    from ledger.ids import make_uscc

    for n in range(first, first + count):
        # A new enterprise per licence (a holder may hold at most 100 of one type).
        doc = new_document(key, cert_type, issuer, serial=f"B{n:011d}",
                           holder_name=f"{holder['name']}{n}",
                           holder_code=make_uscc("9", "1", "350100", f"B{n:07d}"),
                           holder_code_type=LEGAL_PERSON, valid_from="2026-01-01",
                           valid_until=LONG_TERM, issue_date="2026-01-01",
                           extra={"entity_type": "有限责任公司", "legal_representative": "林示例",
                                  "established": "2026-01-01",
                                  "address": "福建省福州市鼓楼区示例路1号"})
        out.append(make_tx(key, chain_id, ISSUE_TX, issue_payload(key.suite, doc, None), n,
                           valid_until).encoded())
    return out


def presign(net: Any, count: int, workload: str = "cert") -> list[bytes]:
    """``count`` signed transactions, made on every core before the measurement starts."""
    valid_until = int(time.time() * 1000) + 3_600_000
    if workload == "cert":
        issuer = next(o for o in net.orgs if BUSINESS_LICENCE_CODE in o.get("cert_types", []))
        holder = next(o for o in net.orgs if o["uscc"].startswith("91"))
        genesis = json.loads((net.dir / "genesis.json").read_text())
        type_view = next(t for t in genesis["apps"]["certs"]["types"]
                         if t["code"] == BUSINESS_LICENCE_CODE)
        info = json.dumps([{"uscc": issuer["uscc"], "name": issuer["name"]},
                           {"uscc": holder["uscc"], "name": holder["name"]}, type_view])
        keys = [str(net.dir / issuer["key"])]
        # One issuer signs them all; split its nonces over the workers.
        chunks = max(1, os.cpu_count() or 1)
        per = -(-count // chunks)
        jobs = [("cert", keys[0], info, net.genesis.suite, net.genesis.chain_id, i * per, per,
                 valid_until) for i in range(chunks)]
    else:
        keys = [str(net.dir / o["key"]) for o in net.orgs]
        per = -(-count // len(keys))
        jobs = [("anchor", k, "", net.genesis.suite, net.genesis.chain_id, i * 10_000_000, per,
                 valid_until) for i, k in enumerate(keys)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        batches = list(pool.map(_sign_batch, jobs))
    # Interleave the batches so no single sender (or nonce range) is hammered in turn.
    out = [tx for group in zip(*batches, strict=False) for tx in group]
    return out[:count]


def raise_limits(directory: Path, pipeline_depth: int | None = None) -> None:
    """Lift the per-sender admission limits (the load comes from one client key) and, if
    given, set every node's [consensus] pipeline_depth."""
    for toml in directory.glob("node*/node.toml"):
        text = toml.read_text()
        text = re.sub(r"sender_rate_per_s = \d+", "sender_rate_per_s = 1000000", text)
        text = re.sub(r"sender_burst = \d+", "sender_burst = 10000000", text)
        if pipeline_depth is not None:
            text = re.sub(r"(?m)^pipeline_depth = \d+", f"pipeline_depth = {pipeline_depth}",
                          text)
        toml.write_text(text)


async def closed_loop(urls: list[str], txs: list[bytes], clients: int, seconds: float
                      ) -> tuple[list[float], float, float]:
    """``clients`` concurrent clients, each on its own connection to one node, submitting
    with ``?wait=commit`` for ``seconds``: (latencies of the committed, start, end)."""
    latencies: list[float] = []
    it = iter(txs)
    start = time.monotonic()
    stop_at = start + seconds
    pool = Pool()

    async def client(url: str) -> None:
        while time.monotonic() < stop_at:
            try:
                body = next(it)
            except StopIteration:
                return
            t = time.monotonic()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    _, data = await pool.post_json(url, post_request(url, SUBMIT, body,
                                                                     MSGPACK))
            except (HttpError, OSError, TimeoutError):
                continue  # not committed; the next request opens a new connection
            if isinstance(data, dict) and data.get("status") == "committed":
                latencies.append((time.monotonic() - t) * 1000)

    try:
        await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(clients)))
    finally:
        pool.close()
    return latencies, start, time.monotonic()


async def open_loop(urls: list[str], txs: list[bytes], rate: float, seconds: float
                    ) -> tuple[list[float], int, float]:
    """Requests at ``rate``/s for ``seconds``, each timed to its commit acknowledgement.

    Returns (latencies of the committed, how many did not commit — an error, a refusal,
    no answer within the client's timeout — and the seconds from the first request to the
    last answer). A request that did not commit has no latency; counting it keeps the
    p99 of an overloaded point from looking better than it is.
    """
    latencies: list[float] = []
    failed = 0
    count = min(len(txs), int(rate * seconds))
    pool = Pool()

    async def one(i: int, body: bytes) -> None:
        nonlocal failed
        url = urls[i % len(urls)]
        t = time.monotonic()
        try:
            _, data = await pool.post_json(url, post_request(url, SUBMIT, body, MSGPACK))
        except (HttpError, OSError):
            failed += 1
            return
        if isinstance(data, dict) and data.get("status") == "committed":
            latencies.append((time.monotonic() - t) * 1000)
        else:
            failed += 1

    try:
        tasks = []
        start = time.monotonic()
        sent = 0
        while sent < count:  # every request that is due, then sleep until the next one
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            for i in range(sent, due):
                tasks.append(asyncio.create_task(one(i, txs[i])))
            sent = due
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        # One deadline for the stragglers (not a timer per request: the generator's CPU
        # is taken from the nodes it measures).
        _, late = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S)
        for task in late:
            task.cancel()
        failed += len(late)
        took = time.monotonic() - start
    finally:
        pool.close()
    return latencies, failed, took


async def proof_queries(url: str, cert_ids: list[str], clients: int, seconds: float
                        ) -> tuple[int, list[float]]:
    """Closed-loop ``GET /v1/certs/{id}/proof`` against one node: (answers, latencies ms)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        i = k
        while time.monotonic() < stop_at:
            t = time.monotonic()
            async with session.get(f"{url}/v1/certs/{cert_ids[i % len(cert_ids)]}/proof") as r:
                await r.read()
                if r.status == 200:
                    latencies.append((time.monotonic() - t) * 1000)
            i += clients

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session, k) for k in range(clients)))
    return len(latencies), latencies


def issued_ids(url: str, from_height: int, to_height: int, limit: int = 200) -> list[str]:
    """Identifiers of certificates issued in blocks (from_height, to_height]."""
    from client.sdk import request

    ids: list[str] = []
    for h in range(from_height + 1, to_height + 1):
        block = request(f"{url}/v1/blocks/{h}", timeout=30)
        for r in block["results"]:
            cert_id = (r.get("data") or {}).get("cert_id") if r["ok"] else None
            if cert_id:
                ids.append(cert_id)
        if len(ids) >= limit:
            break
    return ids[:limit]


def committed_between(url: str, t0_ms: int, t1_ms: int, from_height: int, to_height: int) -> int:
    from client.sdk import request

    total = 0
    for h in range(from_height + 1, to_height + 1):
        block = request(f"{url}/v1/blocks/{h}", timeout=30)
        if t0_ms <= block["header"]["time"] <= t1_ms:
            total += sum(1 for r in block["results"] if r["ok"])
    return total


def _status_mb(pid: int, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM): its own memory and the pages of files it
    maps — LevelDB maps its table files, so this grows with the store read, as page cache
    the kernel can take back (see ``anon_mb``)."""
    return _status_mb(pid, "VmHWM")


def anon_mb(pid: int) -> float | None:
    """The process's own resident memory now (RssAnon): the heap, caches and buffers, not
    the mapped table files that RSS also counts."""
    return _status_mb(pid, "RssAnon")


def _network(nodes: int, suite: str, pipeline_depth: int, verify_workers: int | None
             ) -> tuple[Path, Any, int]:
    """A local network in a new temporary folder, not started yet, as step 1 describes:
    (the folder, the network, the signature workers each node runs)."""
    from tests.e2e.netharness import LocalNet

    workdir = Path(tempfile.mkdtemp(prefix="govledger-bench-"))
    net = LocalNet(workdir / "net", nodes=nodes, suite=suite)
    raise_limits(net.dir, pipeline_depth)
    if verify_workers is None:
        from node import colocated_verify_workers

        verify_workers = colocated_verify_workers(nodes)
    net.run_args = ["--verify-workers", str(verify_workers)]
    return workdir, net, verify_workers


def run(seconds: float, clients: int, nodes: int, quick: bool, suite: str,
        workload: str = "cert", pipeline_depth: int = 1, verify_workers: int | None = None
        ) -> dict[str, Any]:
    limit = limit_line(nodes, suite)
    workdir, net, verify_workers = _network(nodes, suite, pipeline_depth, verify_workers)
    try:
        net.start_all()
        urls = [net.url(i) for i in range(nodes)]
        budget = int(max(limit["limit_tps"], 500) * seconds * 1.6) + 2000
        txs = presign(net, budget if not quick else min(budget, 6000), workload)
        h0 = net.status(0)["height"]
        pids = [p.pid for p in net.procs.values()]
        cpu0 = cpu_snapshot(pids)
        latencies, start, end = asyncio.run(closed_loop(urls, txs, clients, seconds))
        cpu1 = cpu_snapshot(pids)
        used = len(latencies)
        time.sleep(1.0)
        h1 = net.status(0)["height"]
        # Block times are in ms since the epoch; map the monotonic window onto wall time.
        wall_end = time.time() - (time.monotonic() - end)
        t0_ms, t1_ms = int((wall_end - (end - start)) * 1000), int(wall_end * 1000)
        committed = committed_between(urls[0], t0_ms, t1_ms, h0, h1)
        tps = committed / (end - start)
        figures: dict[str, Any] = {
            **limit, "committed_tps": round(tps, 1),
            "ratio_to_limit": round(tps / limit["limit_tps"], 3) if limit["limit_tps"] else None,
            "closed_loop_p50_ms": round(percentile(latencies, 50), 1),
            "closed_loop_p99_ms": round(percentile(latencies, 99), 1),
            "blocks": h1 - h0, "verify_workers": verify_workers,
        }
        # Where the two cores went during the closed loop: CPU ms per committed transaction.
        if committed:
            figures["cpu_ms_per_tx"] = {k: round((cpu1[k] - cpu0[k]) * 1000 / committed, 2)
                                        for k in cpu0}
            figures["cpu_busy_fraction"] = round(
                sum(cpu1[k] - cpu0[k] for k in PROCESS_KINDS)
                / ((end - start) * (os.cpu_count() or 1)), 2)
        remaining = txs[used + 100:]
        points = [0.5] if quick else [0.1, 0.5, 0.8]
        for fraction in points:
            rate = max(1.0, tps * fraction)
            window = min(seconds, 5.0) if quick else seconds
            point = open_loop_point(net, urls, pids, remaining, rate, window)
            remaining = remaining[int(rate * window) + 10:]
            tag = f"{int(fraction * 100)}pct"
            figures.update({f"{k}_{tag}": v for k, v in point.items()
                            if k not in ("node_cpu_ms_per_tx",)})
        # The machine's speed drifts (the same SM2 loop has read 3,800 - 4,400 verifies/s
        # within an hour here): the limit line again, with the network idle, says whether
        # the ratio above was taken in a steady phase.
        after = limit_line(nodes, suite)
        figures["limit_tps_after"] = after["limit_tps"]
        figures["verifies_per_s_per_core_after"] = after["verifies_per_s_per_core"]
        if workload == "cert":
            ids = issued_ids(urls[0], h0, h1)
            if ids:
                window = 2.0 if quick else 5.0
                answered, lat = asyncio.run(proof_queries(urls[0], ids, 16, window))
                figures["proof_queries_per_s"] = round(answered / window, 1)
                figures["proof_query_p50_ms"] = round(percentile(lat, 50), 1)
                figures["proof_query_p99_ms"] = round(percentile(lat, 99), 1)
        figures["p50_ms"] = figures["p50_ms_50pct"]
        figures["p99_ms"] = figures.get("p99_ms_80pct", figures["p99_ms_50pct"])
        figures["peak_rss_mb"] = [peak_rss_mb(p.pid) for p in net.procs.values()]
        figures["anon_mb_end"] = [anon_mb(p.pid) for p in net.procs.values()]
        return figures
    finally:
        net.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def open_loop_point(net: Any, urls: list[str], pids: list[int], txs: list[bytes],
                    rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` tx/s offered for ``seconds`` from ``txs``: latency, whether the network kept
    up, the cores each kind of process used and the nodes' CPU per block and per tx."""
    height, cpu, began = net.status(0)["height"], cpu_snapshot(pids), time.monotonic()
    views = view_changes(net, len(urls))
    lat, failed, span = asyncio.run(open_loop(urls, txs, rate, seconds))
    cpu_end, took = cpu_snapshot(pids), time.monotonic() - began
    blocks = net.status(0)["height"] - height
    node_ms = (cpu_end["nodes"] - cpu["nodes"]) * 1000
    point: dict[str, Any] = {
        "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
        "rate": round(rate, 1),
        # Whether the network kept up: committed per second from the first request to
        # the last answer. Below the offered rate, the queue grew all through the
        # window and the latencies above grow with its length, not with the load alone.
        "achieved_tps": round(len(lat) / span, 1) if span else 0.0,
        "not_committed": failed,
        # How busy the cores were at this rate, and how the nodes' CPU splits per block:
        # at moderate rates the network makes many small blocks, each with a fixed cost.
        "cores": {k: round((cpu_end[k] - cpu[k]) / took, 2) for k in cpu},
        "blocks_per_s": round(blocks / took, 1),
        # View changes the nodes started during the point (summed over nodes): none is
        # expected, a primary is never faulty here; load alone must not cause them.
        "view_changes": view_changes(net, len(urls)) - views,
    }
    if blocks:
        point["node_cpu_ms_per_block"] = round(node_ms / blocks, 1)
    if lat:
        point["node_cpu_ms_per_tx"] = round(node_ms / len(lat), 2)
    return point


def view_changes(net: Any, nodes: int) -> int:
    """View changes started so far, summed over the nodes."""
    return sum(int(net.status(i)["view_changes"]) for i in range(nodes))


def run_fixed(rate: float, seconds: float, nodes: int, suite: str, workload: str = "cert",
              pipeline_depth: int = 1, verify_workers: int | None = None) -> dict[str, Any]:
    """One open-loop point at ``rate`` on a fresh network (the module docstring, --rate)."""
    limit = limit_line(nodes, suite)
    workdir, net, verify_workers = _network(nodes, suite, pipeline_depth, verify_workers)
    try:
        net.start_all()
        urls = [net.url(i) for i in range(nodes)]
        warm = int(rate * 3)
        txs = presign(net, warm + int(rate * seconds) + 100, workload)
        asyncio.run(open_loop(urls, txs[:warm], rate, 3.0))
        pids = [p.pid for p in net.procs.values()]
        point = open_loop_point(net, urls, pids, txs[warm:], rate, seconds)
        # "cores" is the machine's (the limit line's); the point's is what the run used.
        point["cores_used"] = point.pop("cores")
        return {**limit, **point, "committed_tps": point["achieved_tps"],
                "verify_workers": verify_workers,
                "limit_tps_after": limit_line(nodes, suite)["limit_tps"]}
    finally:
        net.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def _parameters(args: Any, **mode: Any) -> dict[str, Any]:
    """The run's parameters for its JSON result: the network's, and ``mode``'s."""
    return {**mode, "nodes": args.nodes, "suite": args.suite,
            "pipeline_depth": args.pipeline_depth, "verify_workers": args.verify_workers,
            "workload": {"cert": "cert.issue", "anchor": "evidence.anchor"}[args.workload]}


def main_fixed(args: Any) -> int:
    figures = run_fixed(args.rate, args.seconds, args.nodes, args.suite, args.workload,
                        args.pipeline_depth, args.verify_workers)
    params = _parameters(args, rate=args.rate, seconds=args.seconds)
    path = write_result("throughput-fixed", params, figures)
    if not args.json:
        print(f"limit line: {figures['limit_tps']} tx/s before, {figures['limit_tps_after']} "
              f"after ({figures['verifies_per_s_per_core']} SM2 verifies/s per core before)")
        print(f"{figures['rate']} tx/s offered to a fresh network for {args.seconds} s: "
              f"{figures['achieved_tps']} committed/s, {figures['not_committed']} not "
              f"committed; p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; "
              f"{figures['blocks_per_s']} blocks/s; nodes' CPU per block "
              f"{figures.get('node_cpu_ms_per_block', '-')} ms, per tx "
              f"{figures.get('node_cpu_ms_per_tx', '-')} ms; cores used {figures['cores_used']}; "
              f"view changes {figures['view_changes']}")
        print(f"result written to {path}")
    print(json.dumps(figures))
    return 0


def main(args: Any) -> int:
    if args.rate is not None:
        return main_fixed(args)
    seconds = 5.0 if args.quick else args.seconds
    figures = run(seconds, args.clients, args.nodes, args.quick, args.suite, args.workload,
                  args.pipeline_depth, args.verify_workers)
    params = _parameters(args, seconds=seconds, clients=args.clients, quick=args.quick)
    path = write_result("throughput", params, figures)
    if not args.json:
        print(f"limit line: {figures['cores']} cores × {figures['verifies_per_s_per_core']} "
              f"SM2 verifies/s ÷ {figures['nodes']} nodes = {figures['limit_tps']} tx/s "
              f"(after the run: {figures['limit_tps_after']} tx/s)")
        print(f"committed: {figures['committed_tps']} tx/s "
              f"({figures['ratio_to_limit']} of the limit) in {figures['blocks']} blocks "
              f"(signature workers per node: {figures['verify_workers']})")
        if "cpu_ms_per_tx" in figures:
            print(f"CPU ms per committed tx: {figures['cpu_ms_per_tx']} "
                  f"(cores {int(figures['cpu_busy_fraction'] * 100)} % busy)")
        for key in sorted(k for k in figures if k.startswith("p50_ms_")):
            tag = key.removeprefix("p50_ms_")
            print(f"latency at {tag} of peak ({figures['rate_' + tag]} tx/s offered, "
                  f"{figures['achieved_tps_' + tag]} committed/s, "
                  f"{figures['not_committed_' + tag]} not committed): "
                  f"p50 {figures[key]} ms, p99 {figures['p99_ms_' + tag]} ms; "
                  f"{figures['blocks_per_s_' + tag]} blocks/s, cores used "
                  f"{figures['cores_' + tag]}, CPU per block of the {figures['nodes']} nodes "
                  f"{figures.get('node_cpu_ms_per_block_' + tag, '-')} ms; view changes "
                  f"{figures['view_changes_' + tag]}")
        if "proof_queries_per_s" in figures:
            print(f"online proof queries (one node, 16 clients): "
                  f"{figures['proof_queries_per_s']}/s, p50 {figures['proof_query_p50_ms']} ms, "
                  f"p99 {figures['proof_query_p99_ms']} ms")
        print(f"peak RSS per node (MB): {figures['peak_rss_mb']}; of it, the nodes' own "
              f"memory at the end (MB, the rest mapped store files): {figures['anon_mb_end']}")
        print(f"result written to {path}")
    print(json.dumps(figures))
    return 0
