"""``python -m bench``: every server, every workload, one table, one JSON file.

Servers run one after the other (never side by side), each started fresh on a
free loopback port, so each gets the same machine. On a machine with two or
more CPUs the server is pinned to one CPU and the load process to another:
the server under test has a core of its own and the clients' CPU is measured
apart (see bench/README.md for why that matters on a 2-core machine).

Workload E needs a cluster instead of one server: after a server's single-node
workloads (A-D) the benchmark starts a private redis-server and two nodes of
that server on it (Liaison in Redis mode, or python-socketio on
``AsyncRedisManager``), runs E against them, and stops all three by pid.
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
from bench.report import (
    combine_rounds,
    cross_table,
    cross_vs_single,
    notes,
    ratios,
    table,
    write_json,
)
from bench.servers import (
    BENCH_DIR,
    REPO,
    Processes,
    ServerSpec,
    baseline_redis_spec,
    baseline_spec,
    free_port,
    liaison_spec,
    node_spec,
    prepare_node,
    proto_spec,
    python_executable,
    redis_argv,
    replica_argv,
    wait_ready,
    wait_redis,
    wait_replica_synced,
)

RESULTS = BENCH_DIR / "results" / "latest.json"
SERVERS = ("baseline", "liaison", "node")
#: Not in a default run: Liaison on the bench-only prototype transport (issue 8).
EXTRA_SERVERS = ("proto",)
SINGLE_NODE_WORKLOADS = ("A", "B", "C", "D")
CROSS_NODE_WORKLOADS = ("E",)
#: Why a server has no E column: only these have a multi-node mode here.
NO_CLUSTER = {
    "proto": "the bench-only prototype transport is measured on one node only",
}
#: Upper bound for one load run; a healthy one takes about 30 s (A-D) or 20 s (E).
LOAD_TIMEOUT_S = 100.0
#: E's roles: node A takes the publishers (and the REST calls), node B the subscribers.
NODE_ROLES = ("node_a", "node_b")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list of %(default)s")
    p.add_argument("--workloads", default="A,B,C,D,E", help="comma list of %(default)s")
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
    p.add_argument(
        "--e-layout",
        choices=("shared", "split"),
        default="shared",
        help="E pinning: shared = Redis and both nodes on the server CPU (default); "
        "split = Redis and node A on the server CPU, node B on the clients' CPU",
    )
    p.add_argument(
        "--redis-durable",
        action="store_true",
        help="E with a Redis replica and LIAISON_REDIS_MIN_REPLICAS=1 (ack after WAIT)",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON file (%(default)s)")
    args = p.parse_args(argv)
    known = SINGLE_NODE_WORKLOADS + CROSS_NODE_WORKLOADS
    unknown = [w for w in args.workloads.split(",") if w.strip() and w.strip().upper() not in known]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose among {','.join(known)}")
    return args


def cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, load CPU), or (None, None) when pinning is off or impossible."""
    available = sorted(os.sched_getaffinity(0))
    if no_pin or len(available) < 2:
        return None, None
    return available[0], available[1]


def e_cpus(args: argparse.Namespace) -> dict[str, int | None]:
    """E's pinning by role (``redis``, ``node_a``, ``node_b``, ``load``); see bench/README.md."""
    server_cpu, load_cpu = cpus(args.no_pin)
    node_b = load_cpu if args.e_layout == "split" else server_cpu
    return {"redis": server_cpu, "node_a": server_cpu, "node_b": node_b, "load": load_cpu}


def selected(args: argparse.Namespace, among: tuple[str, ...]) -> tuple[str, ...]:
    """The workloads asked for with ``--workloads`` that are in ``among``, in order."""
    asked = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    return tuple(w for w in asked if w in among)


def load_config(
    args: argparse.Namespace,
    spec: ServerSpec,
    port: int,
    pids: dict[str, int],
    workloads: tuple[str, ...],
    sub_port: int = 0,
) -> LoadConfig:
    return LoadConfig(
        kind=spec.kind,
        host="127.0.0.1",
        port=port,
        server_pids=pids,
        sub_port=sub_port,
        run_id=secrets.token_hex(4),
        workloads=workloads,
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
    if name == "proto":
        return proto_spec(port, data_root / "proto-data")
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
    procs: Processes,
    spec: ServerSpec,
    port: int,
    args: argparse.Namespace,
    tmp: Path,
    workloads: tuple[str, ...],
) -> dict[str, Any]:
    """Start one server, run the single-node workloads against it, stop it; figures or error."""
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
            cfg = load_config(args, spec, port, {"server": server.pid}, workloads)
            figures = run_load(procs, cfg, load_cpu, LOAD_TIMEOUT_S)
            print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
            procs.stop(server)  # before reading its log: it may log on the way out
            found = {"server": problems} if (problems := log_problems(log_path)) else {}
            return {
                "title": spec.title,
                "pid": server.pid,
                "workloads": figures,
                **({"log_problems": found} if found else {}),
            }
        except Exception as exc:  # one server failing must not hide the others' figures
            tail = log_path.read_text(errors="replace")[-1500:]
            print(f"   FAILED: {exc}\n{tail}", flush=True)
            return {"title": spec.title, "error": str(exc), "log_tail": tail}
        finally:
            procs.stop(server)


#: Words that mark a server log line as a problem worth a note (Liaison logs at WARNING).
LOG_PROBLEMS = ("Traceback", "ERROR", "WARNING", "Error", "Exception")


def log_problems(path: Path) -> list[str]:
    """Lines of a server's log that look like warnings or errors (first 5)."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [line.strip()[:200] for line in lines if any(w in line for w in LOG_PROBLEMS)][:5]


def cluster_spec(
    name: str, port: int, redis_url: str, role: str, root: Path, durable: bool = False
) -> ServerSpec:
    """One node of ``name`` on the shared Redis (``durable``: acks after WAIT, Liaison only)."""
    if name == "liaison":
        node = role.replace("_", "-")
        return liaison_spec(port, root / f"{role}-data", redis_url, node, durable)
    if name == "node":
        return node_spec(port, redis_url)
    return baseline_redis_spec(port, redis_url)


def bench_cluster(
    procs: Processes, name: str, args: argparse.Namespace, tmp: Path, workloads: tuple[str, ...]
) -> dict[str, Any]:
    """Redis plus node A and node B of ``name`` on it, the cross-node workloads, all stopped.

    Everything started here is stopped by pid in ``finally`` (nodes first, so
    they do not see Redis vanish under them), also when a start or the load
    run fails; ``Processes`` is the second net for Ctrl-C and SIGTERM.
    """
    pin = e_cpus(args)
    root = tmp / f"{name}-cluster"
    (root / "redis").mkdir(parents=True, exist_ok=True)
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    started: list[subprocess.Popen[bytes]] = []
    #: stdout+stderr of each process; Redis also writes its own log (--logfile).
    logs = {role: root / f"{role}.log" for role in ("redis", *NODE_ROLES)}
    redis_log = root / "redis" / "redis.log"
    title = spec_for(name, 0, tmp).title
    durable = " + a replica, acks after WAIT 1" if args.redis_durable else ""
    print(f"-- {title} x2 on Redis 127.0.0.1:{redis_port}{durable} (workload E)", flush=True)
    begun = time.monotonic()
    try:
        with logs["redis"].open("wb") as log:
            redis = procs.start(
                redis_argv(redis_port, root / "redis"),
                cwd=root,
                env={},
                cpu=pin["redis"],
                stdout=log,
                stderr=log,
            )
        started.append(redis)
        wait_redis(redis, redis_port)
        if args.redis_durable:  # a replica on the server CPU too, synced before the nodes
            replica_port = free_port()
            (root / "replica").mkdir(exist_ok=True)
            with (root / "replica.log").open("wb") as log:
                replica = procs.start(
                    replica_argv(replica_port, root / "replica", redis_port),
                    cwd=root,
                    env={},
                    cpu=pin["redis"],
                    stdout=log,
                    stderr=log,
                )
            started.append(replica)
            wait_redis(replica, replica_port)
            wait_replica_synced(replica_port)
        pids, ports = {}, {}
        for role in NODE_ROLES:  # one after another: each seeds the demo data in turn
            ports[role] = free_port()
            spec = cluster_spec(name, ports[role], redis_url, role, root, args.redis_durable)
            with logs[role].open("wb") as log:
                node = procs.start(
                    spec.argv, cwd=spec.cwd, env=spec.env, cpu=pin[role], stdout=log, stderr=log
                )
            started.append(node)
            wait_ready(node, ports[role])
            pids[role] = node.pid
        pids["redis"] = redis.pid
        cfg = load_config(args, spec, ports["node_a"], pids, workloads, ports["node_b"])
        figures = run_load(procs, cfg, pin["load"], LOAD_TIMEOUT_S)
        print(f"   done in {time.monotonic() - begun:.0f} s", flush=True)
        for proc in reversed(started):  # before reading their logs
            procs.stop(proc)
        found = {role: lines for role in NODE_ROLES if (lines := log_problems(logs[role]))}
        return {
            "cluster_pids": pids,
            "workloads": figures,
            **({"log_problems": found} if found else {}),
        }
    except Exception as exc:  # E failing must not hide the single-node figures
        tails = {
            role: tail
            for role, path in (*logs.items(), ("redis log", redis_log))
            if path.exists() and (tail := path.read_text(errors="replace")[-800:].strip())
        }
        shown = "\n".join(f"[{role}] {tail}" for role, tail in tails.items())
        print(f"   FAILED: {exc}\n{shown}", flush=True)
        return {"error": f"E: {exc}", "log_tail": tails}
    finally:
        for proc in reversed(started):  # node B, node A, then Redis
            procs.stop(proc)


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
        "e_cpus": e_cpus(args),
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
            entries[name].append(
                bench_one(procs, name, spec, port, args, tmp / f"round-{round_no}")
            )
    return entries, titles


def bench_one(
    procs: Processes,
    name: str,
    spec: ServerSpec,
    port: int,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    """One server's entry for one round: single-node workloads, then E on two nodes.

    ``workloads`` merges both parts; ``error`` says what failed (either part);
    ``skipped`` says why a selected workload was not run for this server.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"title": spec.title}
    figures: dict[str, Any] = {}
    errors: list[str] = []
    problems: dict[str, list[str]] = {}
    single = selected(args, SINGLE_NODE_WORKLOADS)
    if single:
        part = bench_server(procs, spec, port, args, tmp, single)
        figures |= part.get("workloads", {})
        entry |= {k: v for k, v in part.items() if k not in ("workloads", "error")}
        errors += [part["error"]] if "error" in part else []
        problems |= part.get("log_problems", {})
    cross = selected(args, CROSS_NODE_WORKLOADS)
    if cross and name in NO_CLUSTER:
        entry["skipped"] = {w: NO_CLUSTER[name] for w in cross}
    elif cross:
        part = bench_cluster(procs, name, args, tmp, cross)
        figures |= part.get("workloads", {})
        if "error" in part:
            errors.append(part["error"])
            entry["cluster_log_tail"] = part["log_tail"]
        else:
            entry["cluster_pids"] = part["cluster_pids"]
            problems |= {f"E {role}": lines for role, lines in part.get("log_problems", {}).items()}
    if problems:
        entry["log_problems"] = problems
    if figures:
        entry["workloads"] = figures
    if errors:
        entry["error"] = "; ".join(errors)
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so ``Processes`` still stops every child by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n.strip() for n in args.servers.split(",") if n.strip() in SERVERS + EXTRA_SERVERS]
    info = meta(args)
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="liaison-bench-") as tmp_dir:
        entries, titles = run_rounds(procs, names, args, Path(tmp_dir))
    results = {name: combine_rounds(runs) for name, runs in entries.items()}
    rats = ratios(results)
    cvs = cross_vs_single(results)
    print()
    print(_header(info, args))
    print(table(results, titles, rats))
    if cvs:
        print()
        print(cross_table(cvs, titles))
    for line in notes(results, titles):
        print("  note: " + line)
    write_json(
        args.output,
        {"meta": info, "servers": results, "ratios": rats, "cross_vs_single": cvs},
    )
    print(f"\nfigures written to {args.output}")
    return 0 if "workloads" in results.get("liaison", {"workloads": True}) else 1


def _header(info: dict[str, Any], args: argparse.Namespace) -> str:
    pinning = (
        f"server pinned to cpu{info['server_cpu']}, clients to cpu{info['load_cpu']}"
        if info["server_cpu"] is not None
        else "no CPU pinning"
    )
    a = args
    shapes = {
        "A": f"  A fan-out: {a.subscribers} subscribers of 1 incident, "
        f"{a.publishers} publishers x {a.window} unacked posts",
        "B": f"  B latency: {a.b_rate:g} posts/s from {a.b_publishers} publishers "
        f"to {a.subscribers} subscribers",
        "C": f"  C small incidents: {a.c_rate:g} posts/s over {a.c_incidents} incidents "
        f"x {a.c_members} members (each follows and posts)",
        "D": f"  D one connection: 1 publisher x {a.window} unacked posts, 1 subscriber",
        "E": "  E cross-node: A's and B's shapes, publishers on node A, subscribers on node B,"
        f" one Redis (AOF, fsync always); {_e_pinning(info)}",
    }
    first = (
        f"Liaison benchmark, {info['cpus']} CPUs, {pinning}; "
        f"{a.duration:g} s measured after {a.warmup:g} s warm-up per workload"
        + (f"; medians of {a.rounds} rounds" if a.rounds > 1 else "")
    )
    asked = selected(args, SINGLE_NODE_WORKLOADS + CROSS_NODE_WORKLOADS)
    return "\n".join((first, *(shapes[w] for w in asked), ""))


def _e_pinning(info: dict[str, Any]) -> str:
    pin = info["e_cpus"]
    if pin["redis"] is None:
        return "no CPU pinning"
    on: dict[int, list[str]] = {}
    names = {"redis": "Redis", "node_a": "node A", "node_b": "node B", "load": "clients"}
    for role, cpu in pin.items():
        on.setdefault(cpu, []).append(names[role])
    return ", ".join(f"{' + '.join(who)} on cpu{cpu}" for cpu, who in sorted(on.items()))


if __name__ == "__main__":
    sys.exit(main())
