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
)
#: (figure, label, decimals) printed under the table: what the machine was doing meanwhile.
CONDITION_KEYS = (
    ("server_cpu_pct", "server CPU %", 0),
    ("client_cpu_pct", "clients CPU %", 0),
    ("other_cpu_pct", "others CPU %", 0),
    ("envelopes_per_frame", "envelopes per frame", 1),
)


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "lost"
    if unit == "ms":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def ratio(mine: Any, other: Any) -> float | None:
    if not isinstance(mine, int | float) or not isinstance(other, int | float) or other == 0:
        return None
    return round(mine / other, 3)


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
            line += f"{(f'{r:.2f}x' if r is not None else '-'):>18}"
        lines.append(line + f"{('higher' if row.higher_is_better else 'lower'):>8}")
    lines.append("")
    lines.append(f"{'conditions':28}" + "".join(f"{titles[s]:>17}" for s in servers))
    for wl in sorted(ran):
        for key, label, digits in CONDITION_KEYS:
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
        for wl, fig in entry["workloads"].items():
            out.extend(f"{title} {wl}: {msg}" for msg in _problems(fig))
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
            found.append(f"{fig[key]:,} deliveries not received within the drain time")
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
    if len(runs) > 1:
        combined["rounds"] = runs
    return combined


def median_figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure across rounds; None (lost) ranks above any number."""
    out: dict[str, Any] = {}
    for wl in rounds[0]:
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
