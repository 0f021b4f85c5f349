"""``python -m bench``: every server, every workload, one table, one JSON file.

Servers run one after the other (never side by side), each started fresh on a
free loopback port, so each gets the same machine. On a machine with two or
more CPUs the server is pinned to one CPU and the load process to another:
the server under test has a core of its own and the clients' CPU is measured
apart (see bench/README.md for why that matters on a 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.load import LoadConfig
from bench.report import combine_rounds, notes, ratios, table, write_json
from bench.servers import (
    BENCH_DIR,
    REPO,
    Processes,
    ServerSpec,
    baseline_spec,
    free_port,
    liaison_spec,
    node_spec,
    prepare_node,
    python_executable,
    wait_ready,
)

RESULTS = BENCH_DIR / "results" / "latest.json"
SERVERS = ("baseline", "liaison", "node")
#: Upper bound for one server's load run; a healthy one takes about 30 s.
LOAD_TIMEOUT_S = 100.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list of %(default)s")
    p.add_argument("--workloads", default="A,B,C,D", help="comma list of A,B,C,D")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per workload")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--subscribers", type=int, default=100, help="followers in A and B")
    p.add_argument("--publishers", type=int, default=8, help="closed-loop publishers in A")
    p.add_argument("--window", type=int, default=8, help="unacked posts per publisher in A")
    p.add_argument("--b-rate", type=float, default=200.0, help="posts/s in B")
    p.add_argument("--b-publishers", type=int, default=10, help="connections sharing B's rate")
    p.add_argument("--c-rate", type=float, default=3000.0, help="aggregate posts/s in C")
    p.add_argument("--c-incidents", type=int, default=100, help="incidents in C")
    p.add_argument("--c-members", type=int, default=3, help="members (follow+post) per incident")
    p.add_argument("--rounds", type=int, default=1, help="repeat, report medians")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and clients to CPUs")
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON file (%(default)s)")
    return p.parse_args(argv)


def cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, load CPU), or (None, None) when pinning is off or impossible."""
    available = sorted(os.sched_getaffinity(0))
    if no_pin or len(available) < 2:
        return None, None
    return available[0], available[1]


def load_config(args: argparse.Namespace, spec: ServerSpec, port: int, pid: int) -> LoadConfig:
    return LoadConfig(
        kind=spec.kind,
        host="127.0.0.1",
        port=port,
        server_pid=pid,
        run_id=secrets.token_hex(4),
        workloads=tuple(w.strip().upper() for w in args.workloads.split(",") if w.strip()),
        warmup_s=args.warmup,
        duration_s=args.duration,
        subscribers=args.subscribers,
        publishers=args.publishers,
        window=args.window,
        b_rate=args.b_rate,
        b_publishers=args.b_publishers,
        c_rate=args.c_rate,
        c_incidents=args.c_incidents,
        c_members=args.c_members,
    )


def spec_for(name: str, port: int, data_root: Path) -> ServerSpec:
    if name == "baseline":
        return baseline_spec(port)
    if name == "liaison":
        return liaison_spec(port, data_root / "liaison-data")
    return node_spec(port)


def run_load(
    procs: Processes, cfg: LoadConfig, cpu: int | None, timeout_s: float
) -> dict[str, Any]:
    """Run the load process; its last stdout line is the figures as JSON."""
    argv = [python_executable(), "-m", "bench.load", cfg.to_json()]
    proc = procs.start(argv, cwd=REPO, env={}, cpu=cpu, stdout=subprocess.PIPE, stderr=None)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"load run did not finish within {timeout_s:.0f} s") from None
    finally:
        procs.stop(proc)  # first, also on Ctrl-C: the server then shuts down at once
    if proc.returncode != 0:
        raise RuntimeError(f"load process failed with code {proc.returncode}")
    figures: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    return figures


def bench_server(
    procs: Processes, spec: ServerSpec, port: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    """Start one server, run every workload against it, stop it; figures or the error."""
    server_cpu, load_cpu = cpus(args.no_pin)
    log_path = tmp / f"{spec.name}.log"
    print(f"-- {spec.title}: starting on 127.0.0.1:{port}", flush=True)
    with log_path.open("wb") as log:
        server = procs.start(
            spec.argv, cwd=spec.cwd, env=spec.env, cpu=server_cpu, stdout=log, stderr=log
        )
        started = time.monotonic()
        try:
            wait_ready(server, port)
            cfg = load_config(args, spec, port, server.pid)
            workloads = run_load(procs, cfg, load_cpu, LOAD_TIMEOUT_S)
            print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
            return {"title": spec.title, "pid": server.pid, "workloads": workloads}
        except Exception as exc:  # one server failing must not hide the others' figures
            tail = log_path.read_text(errors="replace")[-1500:]
            print(f"   FAILED: {exc}\n{tail}", flush=True)
            return {"title": spec.title, "error": str(exc), "log_tail": tail}
        finally:
            procs.stop(server)


def meta(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = cpus(args.no_pin)
    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
        if node
        else ""
    )
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "node": node_version.strip() or None,
        "server_cpu": server_cpu,
        "load_cpu": load_cpu,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def run_rounds(
    procs: Processes, names: list[str], args: argparse.Namespace, tmp: Path
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Every server once per round, interleaved, so slow drifts in noise hit them alike."""
    entries: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    titles: dict[str, str] = {}
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"== round {round_no} of {args.rounds}", flush=True)
        for name in names:
            port = free_port()
            spec = spec_for(name, port, tmp / f"round-{round_no}")
            titles[name] = spec.title
            note = prepare_node() if name == "node" else None
            if note is not None:
                print(f"-- {spec.title}: skipped ({note})", flush=True)
                entries[name].append({"title": spec.title, "note": note})
                continue
            entries[name].append(bench_server(procs, spec, port, args, tmp))
    return entries, titles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so ``Processes`` still stops every child by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n.strip() for n in args.servers.split(",") if n.strip() in SERVERS]
    info = meta(args)
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="liaison-bench-") as tmp_dir:
        entries, titles = run_rounds(procs, names, args, Path(tmp_dir))
    results = {name: combine_rounds(runs) for name, runs in entries.items()}
    rats = ratios(results)
    print()
    print(_header(info, args))
    print(table(results, titles, rats))
    for line in notes(results, titles):
        print("  note: " + line)
    write_json(args.output, {"meta": info, "servers": results, "ratios": rats})
    print(f"\nfigures written to {args.output}")
    return 0 if "workloads" in results.get("liaison", {"workloads": True}) else 1


def _header(info: dict[str, Any], args: argparse.Namespace) -> str:
    pinning = (
        f"server pinned to cpu{info['server_cpu']}, clients to cpu{info['load_cpu']}"
        if info["server_cpu"] is not None
        else "no CPU pinning"
    )
    a = args
    return "\n".join(
        (
            f"Liaison benchmark, {info['cpus']} CPUs, {pinning}; "
            f"{a.duration:g} s measured after {a.warmup:g} s warm-up per workload"
            + (f"; medians of {a.rounds} rounds" if a.rounds > 1 else ""),
            f"  A fan-out: {a.subscribers} subscribers of 1 incident, "
            f"{a.publishers} publishers x {a.window} unacked posts",
            f"  B latency: {a.b_rate:g} posts/s from {a.b_publishers} publishers "
            f"to {a.subscribers} subscribers",
            f"  C small incidents: {a.c_rate:g} posts/s over {a.c_incidents} incidents "
            f"x {a.c_members} members (each follows and posts)",
            f"  D one connection: 1 publisher x {a.window} unacked posts, 1 subscriber",
            "",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
