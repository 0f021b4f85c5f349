"""The printed table and bench/results/latest.json.

Ratios are always Liaison divided by the other server, whatever the metric:
above 1 is better for throughput, below 1 is better for latency. The
"better" column says which, so nobody has to remember.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

#: Client CPU (percent of one core) above which the clients, not the server, may be the limit.
CLIENT_SATURATED_PCT = 90.0
#: CPU used by everything else on the machine (percent of one core) above which a window is noisy.
NOISY_OTHERS_PCT = 20.0


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    key: str
    label: str
    higher_is_better: bool
    unit: str  # "n" (count/rate) or "ms"


ROWS = (
    Row("A", "deliveries_per_s", "A fan-out deliveries/s", True, "n"),
    Row("A", "posts_per_s", "A posts/s acked", True, "n"),
    Row("B", "p50_ms", "B latency p50 ms", False, "ms"),
    Row("B", "p99_ms", "B latency p99 ms", False, "ms"),
    Row("B", "max_ms", "B latency max ms", False, "ms"),
    Row("C", "posts_per_s", "C posts/s acked", True, "n"),
    Row("C", "p50_ms", "C latency p50 ms", False, "ms"),
    Row("C", "p99_ms", "C latency p99 ms", False, "ms"),
    Row("D", "posts_per_s", "D one connection posts/s", True, "n"),
    Row("E", "deliveries_per_s", "E cross-node deliveries/s", True, "n"),
    Row("E", "posts_per_s", "E cross-node posts/s acked", True, "n"),
    Row("E-lat", "p50_ms", "E cross-node p50 ms", False, "ms"),
    Row("E-lat", "p99_ms", "E cross-node p99 ms", False, "ms"),
    Row("E-lat", "max_ms", "E cross-node max ms", False, "ms"),
)
#: Cross-node figure over its single-node counterpart, same server, same run:
#: (label, cross-node row, single-node row). Deliveries: 1.00x = nothing lost by
#: going through Redis; latency: how many times longer the trip through Redis is.
CROSS_VS_SINGLE = (
    ("deliveries/s  E / A", Row("E", "deliveries_per_s", "", True, "n"),
     Row("A", "deliveries_per_s", "", True, "n")),
    ("latency p50   E / B", Row("E-lat", "p50_ms", "", False, "ms"),
     Row("B", "p50_ms", "", False, "ms")),
    ("latency p99   E / B", Row("E-lat", "p99_ms", "", False, "ms"),
     Row("B", "p99_ms", "", False, "ms")),
)  # fmt: skip
#: (figure, label, decimals) printed under the table: what the machine was doing meanwhile.
CONDITION_KEYS = (
    ("server_cpu_pct", "server CPU %", 0),
    ("client_cpu_pct", "clients CPU %", 0),
    ("other_cpu_pct", "others CPU %", 0),
    ("envelopes_per_frame", "envelopes per frame", 1),
)
#: E only: the server CPU above split by process (100 % = one core each).
CLUSTER_CONDITION_KEYS = (
    ("node_a_cpu_pct", "  node A CPU %", 0),
    ("node_b_cpu_pct", "  node B CPU %", 0),
    ("redis_cpu_pct", "  Redis CPU %", 0),
)


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "lost"
    if unit == "ms":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def ratio(mine: Any, other: Any) -> float | None:
    """``mine / other`` to 4 significant digits; None if either is missing or lost."""
    if not isinstance(mine, int | float) or not isinstance(other, int | float) or other == 0:
        return None
    return float(f"{mine / other:.4g}")


def fmt_ratio(r: float | None) -> str:
    """``1.23x``; two significant digits below 0.1 (``0.0015x``), so small is not ``0.00x``."""
    if r is None:
        return "-"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def value_of(results: dict[str, Any], server: str, row: Row) -> Any:
    return results.get(server, {}).get("workloads", {}).get(row.workload, {}).get(row.key)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{"liaison/baseline": {"A.deliveries_per_s": 1.5, ...}, "liaison/node": {...}}``."""
    out: dict[str, dict[str, float | None]] = {}
    for other in ("baseline", "node"):
        if "workloads" not in results.get(other, {}):
            continue
        out[f"liaison/{other}"] = {
            f"{row.workload}.{row.key}": ratio(
                value_of(results, "liaison", row), value_of(results, other, row)
            )
            for row in ROWS
        }
    return out


def cross_vs_single(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per server: E over A (deliveries/s) and E-lat over B (p50, p99), same server."""
    out: dict[str, dict[str, float | None]] = {}
    for server, entry in results.items():
        wls = entry.get("workloads", {})
        if not any(cross.workload in wls for _, cross, _ in CROSS_VS_SINGLE):
            continue
        out[server] = {
            f"{cross.workload}.{cross.key}/{single.workload}.{single.key}": ratio(
                value_of(results, server, cross), value_of(results, server, single)
            )
            for _, cross, single in CROSS_VS_SINGLE
        }
    return out


def cross_table(cvs: dict[str, dict[str, float | None]], titles: dict[str, str]) -> str:
    """Cross-node over single-node, one column per server that ran E."""
    servers = [s for s in titles if s in cvs]
    if not servers:
        return ""
    head = f"{'cross-node / single-node':28}" + "".join(f"{titles[s]:>17}" for s in servers)
    lines = [head, "-" * len(head)]
    for label, cross, single in CROSS_VS_SINGLE:
        key = f"{cross.workload}.{cross.key}/{single.workload}.{single.key}"
        cells = [cvs[s].get(key) for s in servers]
        lines.append(f"{label:28}" + "".join(f"{fmt_ratio(c):>17}" for c in cells))
    return "\n".join(lines)


def _cell(results: dict[str, Any], server: str, row: Row) -> str:
    if "workloads" not in results.get(server, {}):
        return "-"
    wl = results[server]["workloads"].get(row.workload)
    if wl is None:
        return "-"
    text = fmt(wl.get(row.key), row.unit)
    return text + ("*" if wl.get("client_cpu_pct", 0) >= CLIENT_SATURATED_PCT else "")


def table(results: dict[str, Any], titles: dict[str, str], rats: dict[str, Any]) -> str:
    """The comparison table, one row per figure, one column per server, then ratios."""
    servers = list(titles)
    ran = {wl for s in servers for wl in results.get(s, {}).get("workloads", {})}
    ratio_cols = [name for name in ("liaison/baseline", "liaison/node") if name in rats]
    head = f"{'':28}" + "".join(f"{titles[s]:>17}" for s in servers)
    head += "".join(f"{name:>18}" for name in ratio_cols) + f"{'better':>8}"
    lines = [head, "-" * len(head)]
    for row in (r for r in ROWS if r.workload in ran):
        line = f"{row.label:28}" + "".join(f"{_cell(results, s, row):>17}" for s in servers)
        for name in ratio_cols:
            r = rats[name].get(f"{row.workload}.{row.key}")
            line += f"{fmt_ratio(r):>18}"
        lines.append(line + f"{('higher' if row.higher_is_better else 'lower'):>8}")
    lines.append("")
    lines.append(f"{'conditions':28}" + "".join(f"{titles[s]:>17}" for s in servers))
    for wl in sorted(ran):
        cluster = any(
            "node_a_cpu_pct" in results.get(s, {}).get("workloads", {}).get(wl, {}) for s in servers
        )
        for key, label, digits in CONDITION_KEYS + (CLUSTER_CONDITION_KEYS if cluster else ()):
            cells = []
            for s in servers:
                v = results.get(s, {}).get("workloads", {}).get(wl, {}).get(key)
                cells.append(f"{v:.{digits}f}" if isinstance(v, int | float) else "-")
            lines.append(f"{f'{wl} {label}':28}" + "".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)


def notes(results: dict[str, Any], titles: dict[str, str]) -> list[str]:
    """Everything that makes a figure suspect: saturated clients, losses, errors, skips."""
    out: list[str] = []
    for server, title in titles.items():
        entry = results.get(server, {})
        if "workloads" not in entry:
            out.append(f"{title}: not measured ({entry.get('note') or entry.get('error')})")
            continue
        if entry.get("error"):
            out.append(f"{title}: failed in part ({entry['error']})")
        for wl, why in entry.get("skipped", {}).items():
            out.append(f"{title} {wl}: not measured ({why})")
        for proc, lines in entry.get("log_problems", {}).items():
            out.append(f"{title} {proc} logged {len(lines)}+ warnings/errors, first: {lines[0]}")
        for wl, fig in entry["workloads"].items():
            out.extend(f"{title} {wl}: {msg}" for msg in _problems(fig))
        noisy = [
            f"{wl} {fig['other_cpu_pct']:.0f}%"
            for wl, fig in entry["workloads"].items()
            if fig.get("other_cpu_pct", 0) > NOISY_OTHERS_PCT
        ]
        if noisy:
            out.append(
                f"{title}: noisy windows, other processes used CPU (100% = one core): "
                + ", ".join(noisy)
            )
    if any("*" in line for line in out) or _any_saturated(results):
        out.append(
            f"* clients used >= {CLIENT_SATURATED_PCT:.0f}% of their core: that figure is "
            "a lower bound for the server"
        )
    return out


def _problems(fig: dict[str, Any]) -> list[str]:
    found = []
    for key in ("missing_deliveries", "missing_samples"):
        if fig.get(key):
            found.append(f"{fig[key]:,.0f} deliveries not received within the drain time")
    for key in ("ack_errors", "lost_connections", "notices"):
        if fig.get(key):
            found.append(f"{key.replace('_', ' ')}: {fig[key]}")
    if fig.get("first_error"):
        found.append(f"first error ack: {fig['first_error'][:160]}")
    if fig.get("pacer_max_lag_ms", 0) > 50:
        found.append(f"publisher fell {fig['pacer_max_lag_ms']:.0f} ms behind its schedule")
    if fig.get("settle_after_s", 0) > 1:
        found.append(f"server still busy {fig['settle_after_s']:.1f} s after the clients left")
    return found


def _any_saturated(results: dict[str, Any]) -> bool:
    return any(
        fig.get("client_cpu_pct", 0) >= CLIENT_SATURATED_PCT
        for entry in results.values()
        for fig in entry.get("workloads", {}).values()
    )


def combine_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's entry: the per-figure median of its successful rounds (all rounds kept)."""
    ok = [run["workloads"] for run in runs if "workloads" in run]
    if not ok:
        return runs[-1]
    combined: dict[str, Any] = {"title": runs[-1]["title"], "workloads": median_figures(ok)}
    for key in ("pid", "cluster_pids", "skipped", "log_problems"):
        found = [run[key] for run in runs if key in run]
        if found:
            combined[key] = found[-1]
    errors = [run["error"] for run in runs if run.get("error")]
    if errors:
        combined["error"] = "; ".join(errors)
    if len(runs) > 1:
        combined["rounds"] = runs
    return combined


def median_figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure across rounds; None (lost) ranks above any number."""
    out: dict[str, Any] = {}
    for wl in dict.fromkeys(wl for r in rounds for wl in r):  # every workload any round ran
        figs = [r[wl] for r in rounds if wl in r]
        out[wl] = {key: _median([f.get(key) for f in figs]) for key in figs[0]}
    return out


def _median(values: list[Any]) -> Any:
    """Median; None (a lost latency) ranks above every number; text: the first one."""
    present = [v for v in values if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in present):
        return present[0]
    ranked: list[Any] = sorted(present) + [None] * (len(values) - len(present))
    if not ranked:
        return None
    low, high = ranked[(len(ranked) - 1) // 2], ranked[len(ranked) // 2]
    if low is None or high is None:
        return None
    return low if low == high else round((low + high) / 2, 3)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
