"""Scaling and memory of ``invlend.simulate`` end to end, one fresh process per run.

Usage: ``python benchmarks/bench_scaling.py [--max-firms 10000000]`` prints the table;
``bench_engine.py`` calls :func:`run` and :func:`plot` for ``docs/performance.md``.

Each measurement is a child process (``--child``) with ``NUMBA_NUM_THREADS`` set, so that the
thread count is fixed before numba starts and the child's peak resident set (``VmHWM``)
belongs to that run alone. The child loads the kernels with a small call, notes its resident
set, then times ``simulate`` on the built-in scenario with the three default structures (two
linkages, so the firms are simulated twice and evaluated three times), 100 firms per
portfolio: a first call, whose result arrays come from memory the process never touched, and
repeated calls, which find memory that the previous call freed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = (10_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
THREADS = (1, 2)
PORTFOLIO_SIZE = 100


def _status_bytes(field: str) -> int:
    """A memory figure of this process from ``/proc/self/status`` (Linux), in bytes."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(firms: int, keep: str, repeat: int) -> dict:
    """One measurement, in this process: best wall time and peak resident set."""
    import invlend as il

    sc = il.Scenario.default()
    st = il.default_structures()
    il.simulate(sc, st, n_portfolios=4, portfolio_size=PORTFOLIO_SIZE, seed=1, keep=keep)
    gc.collect()
    base = _status_bytes("VmRSS")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = il.simulate(sc, st, n_portfolios=firms // PORTFOLIO_SIZE,
                          portfolio_size=PORTFOLIO_SIZE, seed=1, keep=keep)  # fmt: skip
        times.append(time.perf_counter() - t0)
        del res
        gc.collect()
    # VmHWM, the high-water mark of this process's resident set. (ru_maxrss would not do: a
    # child inherits its parent's at fork, and the parent holds the throughput arrays.)
    peak = _status_bytes("VmHWM")
    return dict(firms=firms, keep=keep, first=times[0], seconds=min(times[1:] or times),
                base_rss=base, peak_rss=peak, structures=len(st))  # fmt: skip


def _spawn(firms: int, threads: int, keep: str, repeat: int) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", "--firms", str(firms), "--keep", keep,
           "--repeat", str(repeat)]  # fmt: skip
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["threads"] = threads
    return row


def _repeat_for(firms: int) -> int:
    """Calls per process: the first, then repeated calls (fewer on large runs, to save time)."""
    return 2 if firms >= 3_000_000 else (3 if firms >= 1_000_000 else 6)


def run(max_firms: int = 10_000_000, verbose: bool = True) -> dict:
    """All scaling runs (``keep="firms"``) and the memory runs with ``keep="aggregates"``.

    For each size the 1- and 2-thread processes alternate, twice below 10 million firm-paths,
    and the best of each kind of call is kept: other load on the machine hits both alike.
    """
    sizes = [n for n in SIZES if n <= max_firms]
    best = {}
    for n in sizes:
        for _ in range(1 if n >= 10_000_000 else 2):
            for threads in THREADS:
                r = _spawn(n, threads, "firms", _repeat_for(n))
                b = best.setdefault((threads, n), r)
                for k in ("first", "seconds"):
                    b[k] = min(b[k], r[k])
                b["peak_rss"] = max(b["peak_rss"], r["peak_rss"])
        if verbose:
            for threads in THREADS:
                r = best[(threads, n)]
                first, again = 1e9 * r["first"] / n, 1e9 * r["seconds"] / n
                print(f"threads {threads} firm-paths {n:>10,}: {first:6.0f} ns/firm-path first "
                      f"call, {again:6.0f} repeated; peak RSS {r['peak_rss'] / 2**20:6.0f} MiB",
                      flush=True)  # fmt: skip
    rows = [best[(t, n)] for t in THREADS for n in sizes]
    aggregates = []
    for n in [n for n in sizes if n >= 100_000]:
        aggregates.append(_spawn(n, max(THREADS), "aggregates", _repeat_for(n)))
        if verbose:
            r = aggregates[-1]
            print(f"keep=aggregates firm-paths {n:>10,}: {1e9 * r['first'] / n:6.0f} ns/firm-path "
                  f"first call; peak RSS {r['peak_rss'] / 2**20:6.0f} MiB", flush=True)  # fmt: skip
    return dict(rows=rows, aggregates=aggregates, sizes=sizes)


def memory_slope(rows: list[dict]) -> tuple[float, float]:
    """Least-squares line of peak resident set on firm-paths: (bytes per firm-path, intercept)."""
    import numpy as np

    x = np.array([r["firms"] for r in rows], float)
    y = np.array([r["peak_rss"] for r in rows], float)
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def plot(data: dict, path: Path) -> None:
    """Cost per firm-path and peak memory against firm-paths, as a two-panel PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for threads, marker, color in zip(THREADS, "os", ("C0", "C1"), strict=False):
        rs = [r for r in data["rows"] if r["threads"] == threads]
        x = [r["firms"] for r in rs]
        name = f"{threads} thread{'s' if threads > 1 else ''}"
        ax1.plot(x, [1e9 * r["seconds"] / r["firms"] for r in rs], marker=marker, color=color,
                 label=f"{name}, repeated call")  # fmt: skip
        ax1.plot(x, [1e9 * r["first"] / r["firms"] for r in rs], marker=marker, color=color,
                 ls="--", mfc="none", label=f"{name}, first call in the process")  # fmt: skip
    ax1.set_xscale("log")
    ax1.set_ylim(bottom=0)
    ax1.set_xlabel("firm-paths per run (100 firms per portfolio)")
    ax1.set_ylabel("wall time per firm-path (ns)")
    ax1.set_title("simulate(), 3 default structures: cost per firm-path")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    rs = [r for r in data["rows"] if r["threads"] == max(THREADS)]
    mib = 2.0**20
    ax2.plot([r["firms"] for r in rs], [r["peak_rss"] / mib for r in rs], marker="o",
             label='keep="firms" (per-firm arrays kept)')  # fmt: skip
    ag = data["aggregates"]
    if ag:
        ax2.plot([r["firms"] for r in ag], [r["peak_rss"] / mib for r in ag], marker="s",
                 label='keep="aggregates"')  # fmt: skip
    x = [r["firms"] for r in rs]
    base = rs[0]["base_rss"] / mib
    ax2.plot(x, [base + 100 * 3 * n / mib for n in x], "k--", lw=1,
             label="target: start + 100 B per firm-path per structure")  # fmt: skip
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("firm-paths per run")
    ax2.set_ylabel("peak resident set (MiB)")
    ax2.set_title("peak memory")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--keep", default="firms")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--max-firms", type=int, default=10_000_000)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.firms, args.keep, args.repeat)))
        return
    data = run(args.max_firms)
    slope, _ = memory_slope([r for r in data["rows"] if r["threads"] == max(THREADS)])
    print(f"peak memory: {slope:.0f} bytes per firm-path ({slope / 3:.0f} per structure kept)")


if __name__ == "__main__":
    main()
