"""Time to a trusted tail figure: plain sampling against importance sampling, and summary cost.

``python benchmarks/bench_tail.py [--out docs/performance.md] [--quick]`` runs, on this
machine and within one process (so the ratios compare like with like):

1. **Economic capital to 2% relative SE** of the three default structures on the built-in
   scenario: ``simulate(..., tolerance={"economic_capital": 0.02})`` with plain sampling and
   with ``tail="auto"`` (the cross-entropy pilot included in the time and the firm-paths);
2. **99.9% loss VaR to 2%** on the built-in scenario with factor loading 0.6 (funding cycle
   on, as in the built-in scenario);
3. **Estimation cost**: ``summary()`` (400 bootstrap replicates) against the simulation it
   summarises, 20,000 portfolios x 100 firms, ``keep="aggregates"``.

Every run simulates the real-world measure alone (the tail figures need no fair values) with
100 firms per portfolio and starts from 2,000 portfolios; a run to a tolerance extends itself
in batches until the target is met. With ``--out`` the section between the markers
``<!-- bench_tail -->`` and ``<!-- /bench_tail -->`` of that page is replaced by the tables.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import invlend as il

SIZE = 100
START = "<!-- bench_tail -->"
END = "<!-- /bench_tail -->"


def _to_target(scenario, metric: str, target: float, tail, seed: int, first: int, budget: int):
    """Wall time, firm-paths (pilot included), the result and its precision."""
    t0 = time.perf_counter()
    pilot_paths = 0
    if tail == "auto":
        tilt = il.find_tilt(scenario, portfolio_size=SIZE, seed=seed)
        p = tilt.pilot
        pilot_paths = len(p["rounds"]) * p["pilot_portfolios"] * SIZE
        tail = tilt
    res = il.simulate(scenario, n_portfolios=first, portfolio_size=SIZE, seed=seed,
                      keep="aggregates", measures="real_world", tail=tail,
                      tolerance={metric: target}, max_portfolios=budget)  # fmt: skip
    wall = time.perf_counter() - t0
    return wall, res.n_portfolios * SIZE + pilot_paths, pilot_paths, res


def _case(title: str, scenario, metric: str, target: float, args) -> tuple[str, dict]:
    print(f"{title}: plain ...", flush=True)
    plain = _to_target(scenario, metric, target, None, 1, args.first, args.budget)
    print(f"{title}: importance sampling ...", flush=True)
    tilted = _to_target(scenario, metric, target, "auto", 2, args.first, args.budget)
    rows = []
    for name, (wall, paths, pilot, res) in (("plain", plain), ("importance sampling", tilted)):
        stop = res.stopping
        worst = stop["precision"][metric]
        s = res.summary()
        cells = ", ".join(f"{n} {100 * s[n][metric].estimate:.2f}%" for n in res)
        rows.append(
            f"| {name} | {res.n_portfolios:,} | {paths / 1e6:.2f} M"
            f"{f' ({pilot / 1e6:.2f} M pilot)' if pilot else ''} | {wall:.1f} s | "
            f"{100 * worst:.2f}% | {'yes' if stop['reached'] else 'no'} | {cells} |"
        )
    paths_ratio = plain[1] / tilted[1]
    wall_ratio = plain[0] / tilted[0]
    tilt = tilted[3].tilt
    text = "\n".join(
        [
            f"**{title}** ({metric} of every default structure to {100 * target:g}% relative "
            "standard error):",
            "",
            "| sampling | portfolios | firm-paths | wall | worst rel. SE | met | estimates |",
            "|---|---:|---:|---:|---:|:-:|---|",
            *rows,
            "",
            f"Importance sampling needed {paths_ratio:.1f}x fewer firm-paths and "
            f"{wall_ratio:.1f}x less wall time. The tilt found: {tilt}.",
        ]
    )
    return text, {"paths": paths_ratio, "wall": wall_ratio, "is_wall": tilted[0]}


def _summary_cost(args) -> tuple[str, float]:
    sc = il.Scenario.default()
    il.simulate(sc, n_portfolios=20, portfolio_size=SIZE, seed=1, keep="aggregates").summary()
    n = args.summary_portfolios
    best_sim = best_sum = math.inf
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = il.simulate(sc, n_portfolios=n, portfolio_size=SIZE, seed=1, keep="aggregates")
        t1 = time.perf_counter()
        res.summary()
        t2 = time.perf_counter()
        best_sim, best_sum = min(best_sim, t1 - t0), min(best_sum, t2 - t1)
    share = best_sum / best_sim
    text = (
        f"**Estimation cost.** `summary()` with 400 bootstrap replicates of {n:,} portfolios x "
        f'{SIZE} firms (`keep="aggregates"`, both measures, three structures): '
        f"{best_sum:.2f} s against {best_sim:.2f} s for the simulation, {100 * share:.0f}% "
        f"(target at most 25%; best of {args.repeat})."
    )
    return text, share


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=2000, help="first batch of portfolios")
    ap.add_argument("--budget", type=int, default=400_000, help="most portfolios per run")
    ap.add_argument("--summary-portfolios", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a 5% target and small runs")
    ap.add_argument("--out", type=Path, default=None, help="update this page's section")
    args = ap.parse_args()
    target = 0.05 if args.quick else 0.02
    if args.quick:
        args.summary_portfolios, args.repeat = 4000, 1
    default = il.Scenario.default()
    loaded = default.replace(market=default.market.replace(factor_loading=0.6))
    t0 = time.perf_counter()
    ec, r_ec = _case("Built-in scenario", default, "economic_capital", target, args)
    var, r_var = _case("Factor loading 0.6, funding cycle on", loaded, "loss_var_999", target,
                       args)  # fmt: skip
    cost, share = _summary_cost(args)
    verdicts = []
    for name, r in (("economic capital", r_ec), ("VaR 99.9%", r_var)):
        ok = r["paths"] >= 10 and r["wall"] >= 5 and r["is_wall"] < 5
        verdicts.append(
            f"- {name}: {r['paths']:.1f}x fewer firm-paths (target >= 10x), {r['wall']:.1f}x "
            f"less wall time (>= 5x), {r['is_wall']:.1f} s with importance sampling (< 5 s): "
            f"{'met' if ok else 'not met'}."
        )
    verdicts.append(f"- summary cost {100 * share:.0f}% of the simulation (<= 25%): "
                    f"{'met' if share <= 0.25 else 'not met'}.")  # fmt: skip
    section = "\n\n".join(
        [
            f"Measured by `python benchmarks/bench_tail.py` on {time.strftime('%Y-%m-%d')} "
            f"({time.perf_counter() - t0:.0f} s in all); each run starts from {args.first:,} "
            f"portfolios of {SIZE} firms and extends itself to the target.",
            ec,
            var,
            cost,
            "Against the targets of issue 19:\n\n" + "\n".join(verdicts),
        ]
    )
    print()
    print(section)
    if args.out:
        page = args.out.read_text()
        if START not in page or END not in page:
            raise SystemExit(f"{args.out}: no {START} ... {END} section to replace")
        head, rest = page.split(START, 1)
        _, tail = rest.split(END, 1)
        args.out.write_text(f"{head}{START}\n{section}\n{END}{tail}")


if __name__ == "__main__":
    main()
