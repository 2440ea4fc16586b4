"""The tail-metric bootstrap against the simulation it summarises: kernel, numpy, ratio.

``python benchmarks/bench_summary.py [--portfolios N] [--boot B] [--out docs/performance.md]``
simulates the default structures at ``N`` portfolios of 100 firms (aggregates kept), then
times, best of ``--repeat``: the point estimates and ``B`` Poisson-bootstrap replicates of
the tail metrics of the three structures by :func:`invlend._boot.tail_estimates` (one numba
kernel), and the same ``B`` replicates by the dense numpy path it replaced
(:func:`invlend.metrics.bootstrap_weights` counts through :func:`invlend.metrics.tail_metrics`).
It prints one line per figure; with ``--out`` it also writes them as the section "Summary:
the tail bootstrap" of that markdown page (replaced if there, else appended).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import invlend as il
from bench_save import _best  # the timer the benchmarks share
from invlend import _boot
from invlend import metrics as M

HURDLE = 0.1
SECTION = "## Summary: the tail bootstrap"


def _numpy_bootstrap(res, n_boot: int) -> None:
    """The replicates as the summaries computed them before the kernel (multinomial counts)."""
    for w in M.bootstrap_weights(
        res.run.n_portfolios, n_boot, res.run.seed, res.run.seed_spawn_key
    ):
        for r in res.values():
            M.tail_metrics(r.aggregates, w, HURDLE, r.fair_aggregates)


def _write_section(path: Path, lines: list[str]) -> None:
    """Replace the section :data:`SECTION` of ``path`` (up to the next ``## ``) or append it."""
    text = path.read_text() if path.exists() else ""
    body = f"{SECTION}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    head, found, rest = text.partition(SECTION + "\n")
    if found:
        tail = rest.split("\n## ", 1)
        text = head + body + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + body
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portfolios", type=int, default=20_000)
    ap.add_argument("--boot", type=int, default=400, help="bootstrap replicates")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-numpy", action="store_true", help="do not time the numpy path")
    ap.add_argument("--out", type=Path, default=None, help="markdown page to write the section")
    args = ap.parse_args()
    kw = dict(n_portfolios=args.portfolios, portfolio_size=100, keep="aggregates", seed=1)
    il.simulate(il.Scenario.default(), n_portfolios=100, portfolio_size=10)  # compile, warm
    t_sim = _best(lambda: il.simulate(il.Scenario.default(), **kw), args.repeat)
    res = il.simulate(il.Scenario.default(), **kw)
    aggs = [r.aggregates for r in res.values()]
    fairs = [r.fair_aggregates for r in res.values()]
    key = _boot.boot_key(res.run.seed, res.run.seed_spawn_key)

    def kernel():
        return _boot.tail_estimates(aggs, fairs, None, HURDLE, args.boot, key)

    kernel()  # compile or load the kernel before timing it
    t_kernel = _best(kernel, args.repeat)
    shape = f"{args.boot} replicates x {args.portfolios} portfolios x {len(aggs)} structures"
    lines = [
        f"simulate, {args.portfolios} portfolios x 100 firms (aggregates kept): {t_sim:.2f} s",
        f"tail_estimates (numba), {shape}: {t_kernel:.3f} s, "
        f"{100 * t_kernel / t_sim:.1f}% of the simulation",
    ]
    if not args.skip_numpy:
        t_numpy = _best(lambda: _numpy_bootstrap(res, args.boot), 1)
        lines.append(
            f"numpy bootstrap (dense multinomial counts), the same shape: {t_numpy:.2f} s, "
            f"{t_numpy / t_kernel:.0f}x the kernel's time"
        )
    for line in lines:
        print(line)
    if args.out:
        _write_section(args.out, lines)


if __name__ == "__main__":
    main()
