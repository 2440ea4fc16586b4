"""Firm-paths through a dask LocalCluster against the same run in one process.

Usage: ``python benchmarks/bench_dask.py [--firms 100000000] [--workers 2]``. Both runs keep
only per-portfolio aggregates (``keep="aggregates"``), so memory grows with portfolios; the
script checks that the two summaries are identical and prints the rates and peak memory of
the client process (workers report theirs through dask).
"""

from __future__ import annotations

import argparse
import resource
import time

import numba

import invlend as il


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--firms", type=int, default=100_000_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=1 << 21, help="firm-paths per task")
    args = ap.parse_args()
    import distributed

    sc = il.Scenario.default()
    st = il.default_structures()
    n_port = args.firms // args.size
    kw = dict(n_portfolios=n_port, portfolio_size=args.size, seed=1, keep="aggregates",
              chunk_firms=args.chunk)  # fmt: skip
    il.simulate(sc, st, n_portfolios=4, portfolio_size=10, seed=1)  # load the kernels
    t0 = time.perf_counter()
    alone = il.simulate(sc, st, **kw)
    t_alone = time.perf_counter() - t0
    with (
        distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                 dashboard_address=None,
                                 env={"NUMBA_NUM_THREADS": "1"}) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        client.run(lambda: il.simulate(sc, st, n_portfolios=4, portfolio_size=10, seed=1)
                   and None)  # fmt: skip
        t0 = time.perf_counter()
        spread = il.simulate(sc, st, executor=client, **kw)
        t_dask = time.perf_counter() - t0
        worker_mem = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    same = str(alone.summary(n_boot=100)) == str(spread.summary(n_boot=100))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = n_port * args.size
    tasks = -(-n_port // max(1, args.chunk // args.size))
    print(f"{n:,} firm-paths in {n_port:,} portfolios of {args.size}; {tasks} tasks")
    print(f"one process ({numba.get_num_threads()} numba threads): {t_alone:.1f} s, "
          f"{n / t_alone / 1e6:.2f}M firm-paths/s")  # fmt: skip
    print(f"LocalCluster ({args.workers} workers x 1 thread): {t_dask:.1f} s, "
          f"{n / t_dask / 1e6:.2f}M firm-paths/s")  # fmt: skip
    print(
        f"summaries identical: {same}; client peak RSS {rss:.0f} MiB; worker peak RSS "
        + ", ".join(f"{v / 1024:.0f} MiB" for v in worker_mem.values())
    )


if __name__ == "__main__":
    main()
