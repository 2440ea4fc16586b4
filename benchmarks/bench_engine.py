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
from numba import prange

import invlend as il
from invlend import _kernels as K
from invlend import _numpy_backend as NB
from invlend._lowering import lower_dynamics, lower_structure
from invlend.rng import (
    Purpose,
    counter_table,
    firm_key,
    market_keys,
    market_shocks,
    normal,
    portfolio_keys,
    root_key,
    uniform,
)

SIZE = 100
PAGE = """# Performance

This page is written by `make bench` (`python benchmarks/bench_engine.py --out
docs/performance.md`); rerun it after a change to the kernels. Figures from a shared virtual
machine vary by 10-30% between runs; the ratios are measured in one run with the backends
interleaved, so they hold better than the absolute rates.

A *live firm-step* is one time step of a firm that has not yet had its event (the sum of the
firms' event steps), so each engine is charged only for the work the model needs. *Simulate*
times the firm simulation alone; *evaluate* times the cash flows, aggregates and IRR of the three
default structures on those outcomes. The *RNG bound* draws exactly the random numbers the engine
draws per live firm-step (one ziggurat normal and one uniform from the counter hash) and does
nothing else: no engine built on these streams can beat it.

{table}
Targets on the 2-core development machine: at least 50M live firm-steps/s and at least 4x the
`numpy` backend for firm simulation on the default scenario.
"""
_GROWTH = int(Purpose.GROWTH)
_EVENT = int(Purpose.EVENT)


@numba.njit(parallel=True, cache=True)
def _rng_bound(ctr, pkeys, size, steps, out):
    """Draw exactly the per-step numbers the engine draws (one normal, one uniform) and no more."""
    for i in prange(pkeys.shape[0] * size):
        p = i // size
        fk = firm_key(pkeys[p], i - p * size)
        acc = 0.0
        for j in range(steps[i]):
            acc += normal(fk, ctr[_GROWTH, j]) + uniform(fk, ctr[_EVENT, j])
        out[i] = acc


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


class Case:
    """One backend on one workload, with its inputs and outputs allocated once."""

    def __init__(self, scenario, structures, n_firms, backend):
        self.backend = backend
        self.scenario = scenario
        n_port, dyn, terms, pkeys, ctr, market = _inputs(scenario, structures, n_firms)
        self.n_port, self.dyn, self.terms = n_port, dyn, terms
        self.pkeys, self.ctr, self.market = pkeys, ctr, market
        self.n = n = n_port * SIZE
        self.o = _outcome_arrays(n, dyn.checkpoints.size, scenario.n_steps)
        self.f = [np.empty(n), np.empty(n), np.empty(n, np.int8), np.empty(n), np.empty(n)]
        self.agg = np.empty((n_port, K.N_AGG))
        self.cf = np.empty((n_port, scenario.n_steps + 1))
        self.work = np.empty((n_port, scenario.n_steps + 2))
        self.irr = np.empty(n_port)
        cpu = backend == "cpu"
        self._sim = K._simulate_firms if cpu else NB.simulate_firms
        self._ev = K._evaluate_structure if cpu else NB.evaluate_structure
        self._irr = K._portfolio_irr if cpu else NB.portfolio_irr
        self.best = {"simulate": float("inf"), "evaluate": float("inf")}

    def simulate(self):
        self._sim(self.ctr, self.pkeys, self.market, SIZE, 0, *self.dyn, *self.o.values())

    def evaluate(self):
        o = self.o
        for t in self.terms:
            self._ev(o["event"], o["step"], o["value"], o["v0"], o["quality"], o["signal"],
                     o["dilution"], o["chk"], SIZE, *t, *self.f, self.agg, self.cf,
                     self.work)  # fmt: skip
            self._irr(self.cf, self.scenario.dt, self.irr)

    def time_once(self):
        t0 = time.perf_counter()
        self.simulate()
        t1 = time.perf_counter()
        self.evaluate()
        t2 = time.perf_counter()
        self.best["simulate"] = min(self.best["simulate"], t1 - t0)
        self.best["evaluate"] = min(self.best["evaluate"], t2 - t1)

    @property
    def live(self):
        return int(self.o["step"].astype(np.int64).sum())


class RngBound:
    """The RNG bound on a cpu case's live firm-steps, timed like the engines."""

    def __init__(self, case):
        self.case = case
        self.steps = case.o["step"].astype(np.int64)
        self.out = np.empty(case.n)
        self.best = float("inf")

    def time_once(self):
        c = self.case
        t0 = time.perf_counter()
        _rng_bound(c.ctr, c.pkeys, SIZE, self.steps, self.out)
        self.best = min(self.best, time.perf_counter() - t0)


def measure(name, scenario, structures, firms, numpy_firms, repeat):
    """Time cpu, numpy and the RNG bound on one scenario; repeats interleave the backends."""
    for backend in ("cpu", "numpy"):  # compile or load the cached kernels
        Case(scenario, structures, 2000, backend).time_once()
    cases = [
        Case(scenario, structures, firms, "cpu"),
        Case(scenario, structures, numpy_firms, "numpy"),
    ]
    cases[0].time_once()  # the bound needs the engine's live steps
    bound = RngBound(cases[0])
    for _ in range(repeat):
        for c in (*cases, bound):
            c.time_once()
    cpu = cases[0]
    t_rng = bound.best
    rows = []
    for c in cases:
        rate = c.live / c.best["simulate"]
        rows.append(dict(scenario=name, what=c.backend, firms=c.n, live=c.live,
                         seconds=c.best["simulate"], rate=rate,
                         eval_share=c.best["evaluate"] / c.best["simulate"]))  # fmt: skip
    rows.append(dict(scenario=name, what="rng bound", firms=cpu.n, live=cpu.live, seconds=t_rng,
                     rate=cpu.live / t_rng, eval_share=float("nan")))  # fmt: skip
    ratios = {
        "cpu / numpy": rows[0]["rate"] / rows[1]["rate"],
        "cpu / rng bound": rows[0]["rate"] / rows[2]["rate"],
    }
    return rows, ratios


def monthly_ten_year():
    """The default stages on a monthly grid over ten years."""
    return il.Scenario.default().model_copy(update={"horizon_years": 10.0})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--numpy-firms", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = ap.parse_args()
    structures = il.default_structures()
    workloads = [
        ("default (5 stages, monthly, 5 y)", il.Scenario.default()),
        ("five-stage monthly 10 y", monthly_ten_year()),
    ]
    lines = [
        "| scenario | engine | firm-paths | live firm-steps | simulate (s) | live firm-steps/s "
        "| evaluate 3 structures / simulate |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for name, sc in workloads:
        rows, ratios = measure(name, sc, structures, args.firms, args.numpy_firms, args.repeat)
        for r in rows:
            share = "" if r["what"] == "rng bound" else f"{100 * r['eval_share']:.0f}%"
            lines.append(
                f"| {r['scenario']} | {r['what']} | {r['firms']:,} | {r['live']:,} | "
                f"{r['seconds']:.3f} | {r['rate'] / 1e6:.1f}M | {share} |"
            )
            print(
                f"{name:34s} {r['what']:9s} {r['rate'] / 1e6:8.1f}M live firm-steps/s", flush=True
            )
        summary.append(f"- {name}: " + ", ".join(f"{k} = **{v:.2f}x**" for k, v in ratios.items()))
        print("  " + summary[-1][2:], flush=True)
    lines += ["", *summary, ""]
    lines.append(
        f"Threads: {numba.get_num_threads()}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores; numba {numba.__version__}, numpy {np.__version__}; "
        f"best of {args.repeat} interleaved repeats (cpu, numpy, RNG bound)."
    )
    text = "\n".join(lines)
    print()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(PAGE.format(table=text))


if __name__ == "__main__":
    main()
