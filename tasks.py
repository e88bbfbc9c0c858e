#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python >= 3.11 and pip.

    python3 tasks.py demo     # create/update .venv, then run the demo
    python3 tasks.py test     # create/update .venv, then lint + type-check + the whole test suite

Each command creates the local virtualenv ``.venv`` if it is missing and
(re)installs the project into it whenever ``pyproject.toml`` changed, so the
same two commands work on a fresh clone and on a long-lived checkout.

Extra arguments after ``test`` go to pytest (e.g. ``python3 tasks.py test -k merkle``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".govledger-install-stamp"
# Packages checked by ruff and `mypy --strict`.
TYPED_PACKAGES = ["ledger", "consensus", "certs", "fiscal", "client", "node.py", "bench"]


def say(msg: str) -> None:
    print(f"[tasks] {msg}", flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None) -> int:
    say(" ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too (same process group): let it shut down cleanly
            # and report its exit status, rather than dying here with a traceback.
            proc.send_signal(signal.SIGINT)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - users may run an older python3
        sys.exit(f"govledger needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        say(f"creating virtualenv {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say("installing govledger and its test tools into .venv")
    rc = run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    if rc == 0:
        rc = run([str(PY), "-m", "pip", "install", "--quiet", "-e", ".[test]"])
    if rc != 0:
        sys.exit(f"installation failed (exit {rc})")
    STAMP.write_text(wanted)


def pytest(args: list[str], env: dict[str, str] | None = None) -> int:
    rc = run([str(PY), "-m", "pytest", *args], env=env)
    if rc == 5:
        # pytest's "no tests collected": a suite that ran nothing is a failure.
        say("pytest collected no tests: treating that as a failure")
        return 1
    return rc


def task_test(extra: list[str]) -> int:
    ensure_venv()
    if extra:
        return pytest(extra)
    steps: list[tuple[str, int]] = []
    steps.append(("ruff", run([str(PY), "-m", "ruff", "check", "."])))
    steps.append(("mypy", run([str(PY), "-m", "mypy", "--strict", *TYPED_PACKAGES])))
    steps.append(("pytest", pytest(["tests"])))
    # The SM2 fallback backend (pure-Python gmssl) must pass the crypto tests too.
    env = dict(os.environ, GOVLEDGER_SM2_BACKEND="gmssl")
    steps.append(("pytest (SM2 backend gmssl)", pytest(["-m", "crypto", "tests"], env=env)))
    failed = [name for name, rc in steps if rc != 0]
    for name, rc in steps:
        say(f"{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'}")
    return 1 if failed else 0


def task_demo(extra: list[str]) -> int:
    ensure_venv()
    return run([str(PY), str(ROOT / "node.py"), "demo", *extra])


TASKS = {"test": task_test, "demo": task_demo}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    return TASKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
