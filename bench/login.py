"""Login timing: an unknown username against a wrong password, with a large directory.

    python -m bench.login [--users 20000] [--rounds 30] [--root PATH]

Starts ``liaison serve`` (embedded mode) on a fresh data directory, adds
``--users`` users straight into its ``directory.db`` (all with the demo
password's hash), restarts it, and times failed logins over real HTTP on
loopback, the two kinds interleaved. ``--root`` runs the server from another
checkout (an older commit, for a before/after figure); throttling is raised
out of the way through its settings (older servers ignore them).

A login must cost the same whether the username exists or not: a difference
tells an attacker which usernames exist, and a costly miss (the directory
re-read) is a denial of service anyone can send.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from bench.servers import REPO, free_port, python_executable

LOGIN = "/api/v1/auth/login"


def start(root: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LIAISON_LOG_LEVEL": "WARNING",
        "LIAISON_ADMIN_PASSWORD": "bench-admin-password",
        "LIAISON_LOGIN_MAX_FAILURES": "1000000",
        "LIAISON_LOGIN_ADDRESS_MAX_FAILURES": "1000000",
    }
    argv = [python_executable(), "-m", "server.cli", "serve", "--demo"]
    argv += ["--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def add_users(data_dir: Path, count: int) -> None:
    with sqlite3.connect(data_dir / "directory.db") as db:
        org, stored = db.execute(
            "SELECT org_id, password_hash FROM users WHERE username = 'dispatch'"
        ).fetchone()
        now = int(time.time() * 1000)
        db.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, 'responder', ?, 0, ?)",
            (
                (f"bench-{n}", f"bench-user-{n}", org, f"Bench {n}", stored, now)
                for n in range(count)
            ),
        )


def login_ms(port: int, username: str) -> float:
    body = orjson.dumps({"username": username, "password": "not-the-password"})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{LOGIN}", body, {"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    try:
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
    except urllib.error.HTTPError as refused:
        refused.close()
        if refused.code != 401:
            raise
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--root", type=Path, default=REPO)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="liaison-bench-login-") as tmp:
        data_dir, port = Path(tmp), free_port()
        stop(start(args.root, data_dir, port))
        add_users(data_dir, args.users)
        proc = start(args.root, data_dir, port)
        try:
            login_ms(port, "dispatch")  # warm-up
            times: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
            for n in range(args.rounds):
                times["unknown user"].append(login_ms(port, f"nobody-{n}"))
                times["wrong password"].append(login_ms(port, "dispatch"))
        finally:
            stop(proc)
    print(f"{args.users} users, {args.rounds} logins each, server at {args.root}")
    for kind, values in times.items():
        print(
            f"  {kind:15} median {statistics.median(values):7.1f} ms"
            f"  mean {statistics.fmean(values):7.1f} ms  max {max(values):7.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
