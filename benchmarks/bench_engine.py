"""Live firm-steps per second of the ``cpu`` (numba) and ``numpy`` backends, same run.

Usage: ``python benchmarks/bench_engine.py [--firms 1000000] [--out docs/performance.md]``.

A *live firm-step* is one time step of one firm that has not yet had its event; the count
comes from the simulated outcomes (sum of event steps), so both backends are charged only for
the work the model needs. Firm simulation and structure evaluation are timed separately; each
figure is the best of ``--repeat`` runs after a warm-up that compiles (or loads) the kernels.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

import invlend as il
from invlend import _kernels as K
from invlend import _numpy_backend as NB
from invlend._lowering import lower_dynamics, lower_structure
from invlend.rng import counter_table, market_keys, market_shocks, portfolio_keys, root_key

SIZE = 100


def _inputs(scenario, structures, n_firms, seed=1):
    n_port = n_firms // SIZE
    dt = scenario.dt
    chk = np.unique([round(s.loan.maturity_years / dt) for s in structures]).astype(np.int64)
    dyn = lower_dynamics(scenario, il.Linkage(), chk)
    terms = [lower_structure(scenario, s, chk) for s in structures]
    pkeys = portfolio_keys(root_key(seed), np.arange(n_port))
    ctr = counter_table(scenario.n_steps)
    market = market_shocks(market_keys(pkeys), ctr, scenario.n_steps)
    return n_port, dyn, terms, pkeys, ctr, market


def _outcome_arrays(n, n_chk, n_steps):
    return dict(
        event=np.empty(n, np.int8),
        step=np.empty(n, np.int32),
        value=np.empty(n),
        stage0=np.empty(n, np.int8),
        stage=np.empty(n, np.int8),
        rounds=np.empty(n, np.int16),
        dilution=np.empty(n),
        v0=np.empty(n),
        quality=np.empty(n),
        signal=np.empty(n),
        chk=np.empty((n, n_chk)),
        paths=np.empty((0, n_steps + 1)),
    )


def run(scenario, structures, n_firms, backend, repeat):
    n_port, dyn, terms, pkeys, ctr, market = _inputs(scenario, structures, n_firms)
    n = n_port * SIZE
    o = _outcome_arrays(n, dyn.checkpoints.size, scenario.n_steps)
    sim = K._simulate_firms if backend == "cpu" else NB.simulate_firms
    ev = K._evaluate_structure if backend == "cpu" else NB.evaluate_structure
    irr = K._portfolio_irr if backend == "cpu" else NB.portfolio_irr

    def simulate():
        sim(ctr, pkeys, market, SIZE, 0, *dyn, *o.values())

    def evaluate():
        for t in terms:
            f = [np.empty(n), np.empty(n), np.empty(n, np.int8), np.empty(n), np.empty(n)]
            agg = np.empty((n_port, K.N_AGG))
            cf = np.empty((n_port, scenario.n_steps + 1))
            work = np.empty((n_port, scenario.n_steps + 2))
            ev(o["event"], o["step"], o["value"], o["v0"], o["quality"], o["signal"],
               o["dilution"], o["chk"], SIZE, *t, *f, agg, cf, work)  # fmt: skip
            irr(cf, scenario.dt, np.empty(n_port))

    best_sim = best_eval = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        simulate()
        t1 = time.perf_counter()
        evaluate()
        t2 = time.perf_counter()
        best_sim = min(best_sim, t1 - t0)
        best_eval = min(best_eval, t2 - t1)
    live = int(o["step"].astype(np.int64).sum())
    return live, best_sim, best_eval


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--numpy-firms", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = ap.parse_args()
    scenario = il.Scenario.default()
    structures = il.default_structures()
    for backend in ("cpu", "numpy"):  # warm-up: compile or load the cached kernels
        run(scenario, structures, 1000, backend, 1)
    rows = []
    rates = {}
    for backend, n in (("cpu", args.firms), ("numpy", args.numpy_firms)):
        live, t_sim, t_eval = run(scenario, structures, n, backend, args.repeat)
        rate = live / t_sim
        rates[backend] = rate
        rows.append((backend, n, live, t_sim, rate, t_eval, t_eval / t_sim))
        print(
            f"{backend:6s} firms={n:>9,d} live firm-steps={live:>12,d} sim={t_sim:.3f}s "
            f"-> {rate / 1e6:7.1f}M/s; evaluate 3 structures {t_eval:.3f}s "
            f"({100 * t_eval / t_sim:.0f}% of sim)"
        )
    speedup = rates["cpu"] / rates["numpy"]
    print(f"cpu / numpy = {speedup:.1f}x with {numba.get_num_threads()} threads")
    table = [
        "| backend | firm-paths | live firm-steps | simulate (s) | live firm-steps/s | "
        "evaluate 3 structures (s) | evaluate / simulate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b, n, live, ts, r, te, ratio in rows:
        table.append(
            f"| {b} | {n:,} | {live:,} | {ts:.3f} | {r / 1e6:.1f}M | {te:.3f} | "
            f"{100 * ratio:.0f}% |"
        )
    table.append("")
    table.append(
        f"cpu / numpy: **{speedup:.1f}x**; numba threads: {numba.get_num_threads()}; "
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"numba {numba.__version__}, numpy {np.__version__}."
    )
    text = "\n".join(table)
    print()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
