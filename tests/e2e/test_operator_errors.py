"""An operator's mistakes when starting nodes get one clear line, not a traceback.

`python node.py run` on a port another program holds, and `python node.py up` when one of
the network's nodes cannot start: each says what is wrong and which node, and exits (or
keeps the others running) as the operator would expect.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.sdk import NodeError, request
from tests.e2e.netharness import LocalNet, free_base_port

ROOT = Path(__file__).resolve().parents[2]
NODE = [sys.executable, str(ROOT / "node.py")]


def init(directory: Path, nodes: int) -> int:
    port = free_base_port(nodes)
    subprocess.run([*NODE, "init", "--nodes", str(nodes), "--dir", str(directory),
                    "--base-port", str(port)], check=True, capture_output=True, timeout=120)
    return port


def test_run_on_a_port_in_use_says_so_and_opens_nothing(tmp_path: Path) -> None:
    """Goal: a node whose port is taken exits with status 2 and one line naming the address,
    before it opens its store or dials a peer (it once logged "serving on" the port, dialled
    its peers, then died with a traceback). Method: hold the port, run the node."""
    port = init(tmp_path / "net", 1)
    with socket.create_server(("127.0.0.1", port)):
        run = subprocess.run([*NODE, "run", "--config", str(tmp_path / "net/node0/node.toml")],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in run.stderr
    assert "Traceback" not in run.stderr and "serving on" not in run.stderr
    assert not (tmp_path / "net/node0/data").exists()


@pytest.mark.slow
def test_up_names_the_node_that_could_not_start(tmp_path: Path) -> None:
    """Goal: `node.py up` reports which nodes are up and which exited, and why, instead of
    listing every address as started; the others keep running (three of four are a quorum)
    and Ctrl-C stops them. Method: hold node2's port, run `up`, read its report, interrupt."""
    port = init(tmp_path / "net", 4)
    with socket.create_server(("127.0.0.1", port + 2)):
        up = subprocess.Popen([*NODE, "up", "--dir", str(tmp_path / "net"), "--log-level",
                               "WARNING"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        lines: list[str] = []
        try:
            assert up.stdout is not None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                line = up.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if "press Ctrl-C" in line:
                    break
            up.send_signal(signal.SIGINT)
            rest, _ = up.communicate(timeout=60)
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
    out = "".join(lines)
    assert up.returncode == 0, out + rest
    assert (f"[node2] error: cannot listen on 127.0.0.1:{port + 2}: Address already in use"
            in out)
    assert (f"3 of 4 nodes are up: http://127.0.0.1:{port}  http://127.0.0.1:{port + 1}  "
            f"http://127.0.0.1:{port + 3}; node2 exited with status 2") in out, out
    assert "Traceback" not in out + rest


@pytest.mark.slow
def test_a_failing_disk_stops_the_node_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Goal: when a synced write fails (a full disk), the node stops with exit status 1 and
    a CRITICAL line naming the error — it once kept serving HTTP with its consensus task
    dead, looking healthy to a supervisor — and once restarted on the same store it holds
    every transaction it acknowledged as committed. Method: a one-validator network whose
    node runs with votes' synced writes failing after 12; submit with ?wait=commit until it
    exits; restart it normally and look each acknowledged transaction up."""
    net = LocalNet(tmp_path / "net", nodes=1)
    log = tmp_path / "failing.log"
    with open(log, "wb") as out:
        failing = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.failing_disk_child",
             str(tmp_path / "net" / "node0" / "node.toml"), "12"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    acknowledged: list[str] = []
    try:
        key = net.org_key()
        deadline = time.monotonic() + 90
        while failing.poll() is None and time.monotonic() < deadline:
            try:
                reply = net.submit(0, net.anchor_tx(key, "disk"))
            except (OSError, NodeError):
                time.sleep(0.2)  # not up yet, or stopping
                continue
            if reply.get("status") == "committed":
                acknowledged.append(reply["tx_id"])
        assert failing.wait(timeout=60) == 1, log.read_text()[-3000:]
    finally:
        if failing.poll() is None:
            failing.kill()
            failing.wait()
    text = log.read_text()
    assert "CRITICAL" in text and "the consensus loop failed; stopping the node" in text
    assert "No space left on device" in text
    assert acknowledged, text[-3000:]
    net.start_all()
    try:
        for tx_id in acknowledged:
            assert request(f"{net.url(0)}/v1/tx/{tx_id}")["status"] == "committed"
    finally:
        net.stop_all()
