"""Benchmark suite of the engine; ``make bench`` runs it and writes ``docs/performance.md``.

Usage: ``python benchmarks/bench_engine.py [--out docs/performance.md] [--quick]``.

Sections, each measured in this one run so that ratios hold on a noisy machine:

1. *Throughput* (this file): live firm-steps per second of the ``cpu`` backend, the ``numpy``
   backend and the RNG bound on two workloads, with interleaved repeats; the time of evaluating
   the three default structures against simulating the firms; each engine's cost split into a
   fixed cost per firm and a cost per live step; the cost of running both measures against the
   real-world one alone, end to end and per kernel.
2. *Scaling and memory* (:mod:`bench_scaling`): ``invlend.simulate`` end to end from 1e4 to 1e7
   firm-paths with 1 and 2 threads, each size in a fresh process that reports its peak resident
   set; a table and ``docs/img/scaling.png``.
3. *Start-up* (:mod:`bench_startup`): ``import invlend``, the first call with a cold and with a
   warm numba cache, and the command ``make demo`` runs.

A *live firm-step* is one time step of a firm that has not yet had its event (the sum of the
firms' event steps), so each engine is charged only for the work the model needs. Each figure
is the best of ``--repeat`` runs after a warm-up that compiles (or loads) the kernels.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np
from numba import prange

import invlend as il
from invlend._sim import cpu as K
from invlend._sim import layout as L
from invlend._sim import numpy_backend as NB
from invlend._sim.backend import Draws
from invlend._sim.lowering import checkpoint_table, lower_dynamics, lower_structure
from invlend.rng import (
    Purpose,
    counter_table,
    firm_key,
    market_keys,
    market_shocks,
    portfolio_keys,
    regime_paths,
    root_key,
    uniform,
)
from report import BETA0

SIZE = 100
ROOT = Path(__file__).resolve().parent.parent

_STAGE = int(Purpose.STAGE)
_VALUE = int(Purpose.VALUE)
_QUALITY = int(Purpose.QUALITY)
_SIGNAL = int(Purpose.SIGNAL)
_GROWTH = int(Purpose.GROWTH)
_CLOCK = int(Purpose.CLOCK)
_APPRAISAL = int(Purpose.APPRAISAL)


# Not cached: numba's cache is keyed on this file alone, and the bound inlines the kernels' draw
# functions, which may change under it.
@numba.njit(parallel=True)
def _rng_bound(ctr, pkeys, size, steps, out):
    """Draw exactly the random numbers the engine draws for these firms, and nothing else.

    Per firm the stage uniform, four normals (value, quality, signal, appraisal) and the event
    clock's uniform; per live step one normal; with the engine's own draw functions. (The
    event uniforms, one per event, are left out.) No engine built on these streams can be
    faster.
    """
    for i in prange(pkeys.shape[0] * size):
        p = i // size
        fk = firm_key(pkeys[p], i - p * size)
        acc = uniform(fk, ctr[_STAGE, 0]) + K._normal(fk, ctr[_VALUE, 0])
        acc += K._normal(fk, ctr[_QUALITY, 0]) + K._normal(fk, ctr[_SIGNAL, 0])
        acc += K._normal(fk, ctr[_APPRAISAL, 0]) + uniform(fk, ctr[_CLOCK, 0])
        for j in range(steps[i]):
            acc += K._normal(fk, ctr[_GROWTH, j])
        out[i] = acc


def _inputs(scenario, structures, n_firms, seed=1):
    n_port = n_firms // SIZE
    chk = checkpoint_table(scenario, structures)
    dyn = lower_dynamics(scenario, il.Linkage(), chk)
    terms = [lower_structure(scenario, s, chk) for s in structures]
    pkeys = portfolio_keys(root_key(seed), np.arange(n_port))
    ctr = counter_table(scenario.n_steps)
    market = market_shocks(market_keys(pkeys), ctr, scenario.n_steps)
    c = scenario.cycle
    if c is None:
        regime = np.zeros((n_port, scenario.n_steps), np.int8)
    else:  # the engine's regime paths (the funding cycle of the built-in scenario)
        odds = (c.initial_cold, *c.transition(scenario.dt))
        regime = regime_paths(pkeys, ctr, scenario.n_steps, *odds)
    return n_port, dyn, terms, pkeys, ctr, market, regime


def _outcome_arrays(n, n_chk, n_steps):
    """The outcome buffers of ``n`` firms, keyed and ordered as the layout's outputs."""
    return {
        **{f.key: np.empty(n, f.dtype) for f in L.OUTCOMES},
        "chk": np.empty((n, n_chk)),
        "paths": np.empty((0, n_steps + 1)),
    }


class Timer:
    """Best wall and process-CPU time of repeated runs of ``fn``."""

    def __init__(self, fn):
        self.fn = fn
        self.wall = float("inf")
        self.cpu = float("inf")

    def __call__(self):
        t0, c0 = time.perf_counter(), time.process_time()
        self.fn()
        self.wall = min(self.wall, time.perf_counter() - t0)
        self.cpu = min(self.cpu, time.process_time() - c0)


class Case:
    """One backend on one workload, with its inputs and outputs allocated once."""

    def __init__(self, scenario, structures, n_firms, backend, n_steps=None):
        self.backend = backend
        self.scenario = scenario
        n_port, dyn, terms, pkeys, ctr, market, regime = _inputs(scenario, structures, n_firms)
        if n_steps is not None:  # the same firms over fewer steps
            dyn = dyn._replace(n_steps=n_steps)
        self.n_port, self.dyn, self.terms = n_port, dyn, terms
        self.pkeys, self.ctr, self.market = pkeys, ctr, market
        self.n = n = n_port * SIZE
        self.o = _outcome_arrays(n, dyn.checkpoints.size, scenario.n_steps)
        self.firms = L.FirmOutcomes(*(self.o[f.key] for f in L.OUTCOMES))
        self.f = [np.empty(n, f.dtype) for f in L.PER_FIRM]
        self.agg = np.empty((n_port, L.N_AGG))
        n_years = scenario.n_years
        self.pool = [np.empty((n_port, n_years)), np.empty((n_port, n_years))]
        self.draws = Draws(ctr, pkeys, market, regime, np.zeros(n_port))
        self.cf = np.empty((n_port, scenario.n_steps + 1))
        self.work = np.empty((n_port, scenario.n_steps + 2))
        self.irr = np.empty(n_port)
        self.be = K.BACKEND if backend == "cpu" else NB.BACKEND
        self.t_sim = Timer(self.simulate)
        self.t_eval = Timer(self.evaluate)

    def simulate(self):
        self.be.simulate_firms(self.draws, SIZE, 0, self.dyn, self.firms, self.o["chk"],
                               self.o["paths"])  # fmt: skip

    def evaluate(self):
        for t in self.terms:
            self.be.evaluate_structure(self.firms, self.o["chk"], SIZE, t, self.f, self.agg,
                                       *self.pool, self.cf, self.work)  # fmt: skip
            self.be.portfolio_irr(self.cf, self.scenario.dt, self.irr)

    def time_once(self):
        self.t_sim()
        self.t_eval()

    @property
    def live(self):
        return int(self.o["step"].astype(np.int64).sum())


class RngBound:
    """The RNG bound on a cpu case's firms and live firm-steps, timed like the engines."""

    def __init__(self, case, steps=None):
        self.case = case
        self.steps = case.o["step"].astype(np.int64) if steps is None else steps
        self.out = np.empty(case.n)
        self.timer = Timer(self.run)

    def run(self):
        c = self.case
        _rng_bound(c.ctr, c.pkeys, SIZE, self.steps, self.out)

    def time_once(self):
        self.timer()


def measure(name, scenario, structures, firms, numpy_firms, repeat, twin=None):
    """Time cpu, numpy and the RNG bound on one scenario; repeats interleave them.

    The same cpu firms are also run over a single step, and the bound with no step, to split
    each cost into a fixed part per firm and a part per live step. ``twin`` is
    ``(label, scenario)``: the cpu engine on a variant of the scenario, interleaved with the
    rest, whose rate the scenario's is compared with.
    """
    for backend in ("cpu", "numpy"):  # compile or load the cached kernels
        Case(scenario, structures, 2000, backend).time_once()
    twin_case = None if twin is None else Case(twin[1], structures, firms, "cpu")
    cpu = Case(scenario, structures, firms, "cpu")
    numpy = Case(scenario, structures, numpy_firms, "numpy")
    cpu.time_once()  # the bound needs the engine's live steps
    bound = RngBound(cpu)
    one_step = Case(scenario, structures, firms, "cpu", n_steps=1)
    one_step.simulate()
    bound_fixed = RngBound(cpu, steps=np.zeros(cpu.n, np.int64))
    bound_fixed.run()
    cases = [cpu, numpy, bound, one_step, bound_fixed]
    if twin_case is not None:
        twin_case.time_once()
        cases.append(twin_case)
    for _ in range(repeat):
        for c in cases:
            c.time_once()
    rows = []
    for c in (cpu, numpy):
        rows.append(dict(scenario=name, what=c.backend, firms=c.n, live=c.live,
                         seconds=c.t_sim.wall, cpu_seconds=c.t_sim.cpu,
                         rate=c.live / c.t_sim.wall,
                         eval_seconds=c.t_eval.wall,
                         eval_share=c.t_eval.wall / c.t_sim.wall))  # fmt: skip
    rows.append(dict(scenario=name, what="RNG bound", firms=cpu.n, live=cpu.live,
                     seconds=bound.timer.wall, cpu_seconds=bound.timer.cpu,
                     rate=cpu.live / bound.timer.wall, eval_seconds=float("nan"),
                     eval_share=float("nan")))  # fmt: skip
    # Fixed cost per firm and cost per live step, in ns of wall time (both threads at work).
    live_one = int(one_step.o["step"].astype(np.int64).sum())
    per_step_cpu = (cpu.t_sim.wall - one_step.t_sim.wall) / (cpu.live - live_one)
    fixed_cpu = (one_step.t_sim.wall - live_one * per_step_cpu) / cpu.n
    per_step_bound = (bound.timer.wall - bound_fixed.timer.wall) / cpu.live
    split = dict(
        scenario=name,
        cpu_fixed_ns=1e9 * fixed_cpu,
        cpu_step_ns=1e9 * per_step_cpu,
        bound_fixed_ns=1e9 * bound_fixed.timer.wall / cpu.n,
        bound_step_ns=1e9 * per_step_bound,
        steps_per_firm=cpu.live / cpu.n,
    )
    ratios = {
        "cpu / numpy": rows[0]["rate"] / rows[1]["rate"],
        "cpu / RNG bound": rows[0]["rate"] / rows[2]["rate"],
        "cpu / RNG bound (CPU time)": bound.timer.cpu / cpu.t_sim.cpu,
        "evaluate / simulate": rows[0]["eval_share"],
    }
    if twin_case is not None:
        rate = twin_case.live / twin_case.t_sim.wall
        rows.append(dict(scenario=name, what=f"cpu, {twin[0]}", firms=twin_case.n,
                         live=twin_case.live, seconds=twin_case.t_sim.wall,
                         cpu_seconds=twin_case.t_sim.cpu, rate=rate,
                         eval_seconds=twin_case.t_eval.wall,
                         eval_share=twin_case.t_eval.wall / twin_case.t_sim.wall))  # fmt: skip
        ratios[f"cpu / cpu {twin[0]}"] = rows[0]["rate"] / rate
    return rows, ratios, split


def monthly_ten_year():
    """The default stages on a monthly grid over ten years."""
    return il.Scenario.default().model_copy(update={"horizon_years": 10.0})


def value_blind(scenario):
    """The scenario with version 1's value-blind intensity: beta 0, no runway multiplier."""
    return scenario.model_copy(
        update={"hazard_value_elasticity": 0.0, "runway_hazard_multiplier": 1.0}
    )


def throughput(args):
    """Section 1: the markdown tables, and the ratios and cost splits of each workload."""
    structures = il.default_structures()
    workloads = [
        ("default (5 stages, monthly, 5 y)", il.Scenario.default()),
        ("five-stage monthly 10 y", monthly_ten_year()),
    ]
    table = [
        "| scenario | engine | firm-paths | live firm-steps | simulate (s) | live firm-steps/s "
        "| evaluate 3 structures (s) | evaluate / simulate |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    split_table = [
        "| scenario | live steps per firm | cpu: fixed ns per firm | cpu: ns per live step "
        "| RNG bound: fixed ns per firm | RNG bound: ns per live step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    all_ratios, splits = {}, {}
    for name, sc in workloads:
        rows, ratios, split = measure(name, sc, structures, args.firms, args.numpy_firms,
                                      args.repeat, twin=(BETA0, value_blind(sc)))  # fmt: skip
        all_ratios[name] = ratios
        splits[name] = split
        for r in rows:
            ev = "" if r["what"] == "RNG bound" else f"{r['eval_seconds']:.3f}"
            share = "" if r["what"] == "RNG bound" else f"{100 * r['eval_share']:.0f}%"
            table.append(
                f"| {r['scenario']} | {r['what']} | {r['firms']:,} | {r['live']:,} | "
                f"{r['seconds']:.3f} | {r['rate'] / 1e6:.1f}M | {ev} | {share} |"
            )
            rate = r["rate"] / 1e6
            print(f"{name:34s} {r['what']:9s} {rate:8.1f}M live firm-steps/s", flush=True)
        split_table.append(
            f"| {name} | {split['steps_per_firm']:.1f} | {split['cpu_fixed_ns']:.0f} | "
            f"{split['cpu_step_ns']:.2f} | {split['bound_fixed_ns']:.0f} | "
            f"{split['bound_step_ns']:.2f} |"
        )
        print("  " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()), flush=True)
    ratio_lines = [
        f"- {name}: " + ", ".join(f"{k} = **{v:.2f}**" for k, v in r.items())
        for name, r in all_ratios.items()
    ]
    text = "\n".join([*table, "", *ratio_lines, "", *split_table])
    return text, all_ratios, splits


def measures_cost(args):
    """Section 1b: the cost of the risk-neutral measure beside the real-world one.

    End to end: ``invlend.simulate`` with the default structures and ``keep="aggregates"``,
    the real-world measure alone against both (the default), interleaved, best of
    ``--repeat``. Per kernel: the firm simulation of one linkage under each measure, at the
    default value elasticity and at beta 0, on the same firms.
    """
    sc, structures = il.Scenario.default(), il.default_structures()
    n_port = max(args.firms // SIZE // 2, 100)
    kw = dict(n_portfolios=n_port, portfolio_size=SIZE, seed=1, keep="aggregates")
    runs = {"real world": ("real_world",), "both": None}
    for m in runs.values():  # compile or load the cached kernels
        il.simulate(sc, structures, **{**kw, "n_portfolios": 100}, measures=m)
    e2e = {k: math.inf for k in runs}
    for _ in range(args.repeat):
        for k, m in runs.items():
            t0 = time.perf_counter()
            il.simulate(sc, structures, **kw, measures=m)
            e2e[k] = min(e2e[k], time.perf_counter() - t0)
    chk = checkpoint_table(sc, structures)
    cases = {}
    for label, scenario in (("beta 3", sc), (BETA0, value_blind(sc))):
        for measure in ("real_world", "risk_neutral"):
            case = Case(scenario, structures, n_port * SIZE, "cpu")
            case.dyn = lower_dynamics(scenario, il.Linkage(), chk, measure=measure)
            cases[(label, measure)] = case
    for _ in range(args.repeat):
        for case in cases.values():
            case.t_sim()
    ns = {k: 1e9 * c.t_sim.wall / c.live for k, c in cases.items()}
    out = {
        "n_portfolios": n_port,
        "real_world_s": e2e["real world"],
        "both_s": e2e["both"],
        "ratio": e2e["both"] / e2e["real world"],
        **{f"ns {label} {m}": v for (label, m), v in ns.items()},
    }
    print("  measures: " + ", ".join(f"{k} = {v:.3f}" for k, v in out.items()), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=1_000_000)
    ap.add_argument("--numpy-firms", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--max-firms", type=int, default=10_000_000, help="largest scaling run")
    ap.add_argument("--quick", action="store_true", help="smaller runs, to try the suite out")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown page here")
    args = ap.parse_args()
    if args.quick:
        args.firms, args.numpy_firms, args.repeat, args.max_firms = 200_000, 50_000, 3, 1_000_000
    import bench_scaling
    import bench_startup
    import report

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    tp_text, ratios, splits = throughput(args)
    measures = measures_cost(args)
    scaling = bench_scaling.run(max_firms=args.max_firms)
    img = ROOT / "docs" / "img" / "scaling.png"
    bench_scaling.plot(scaling, img)
    startup = bench_startup.run()
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
        f"numba {numba.__version__} ({numba.config.THREADING_LAYER} threading layer requested), "
        f"numpy {np.__version__}, Python {platform.python_version()}; default "
        f"{numba.get_num_threads()} threads; suite ran in {time.perf_counter() - t0:.0f} s, "
        f"load average {load0:.1f} at its start and {os.getloadavg()[0]:.1f} at its end"
    )
    page = report.page(tp_text, ratios, splits, measures, scaling, startup, machine, args)
    print()
    print(page)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page)


if __name__ == "__main__":
    main()
