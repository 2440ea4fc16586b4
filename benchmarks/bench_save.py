"""Saving a result against writing its bytes: is ``res.save`` at disk speed?

``python benchmarks/bench_save.py [--portfolios N]`` simulates the default structures at
``N`` portfolios of 100 firms (per-firm arrays kept), then times, best of ``--repeat``:
``res.save`` (arrays stored, the default), ``save(compress=True)``, ``il.load``, and the floor,
the same bytes written with ``ndarray.tofile`` into one file and synced. It prints one line per
figure; docs/performance.md records a run.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import invlend as il
from invlend import store


def _best(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _raw_write(arrays, path: Path) -> None:
    with open(path, "wb") as fh:
        for a in arrays.values():
            a.tofile(fh)
        fh.flush()
        os.fsync(fh.fileno())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portfolios", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    res = il.simulate(il.Scenario.default(), n_portfolios=args.portfolios, portfolio_size=100,
                      seed=1)  # fmt: skip
    mb = sum(a.nbytes for a in res.arrays.values()) / 1e6
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        run, packed, raw = (Path(tmp) / n for n in ("run.npz", "packed.npz", "raw.bin"))
        t_raw = _best(lambda: _raw_write(res.arrays, raw), args.repeat)
        t_save = _best(lambda: res.save(run), args.repeat)
        t_packed = _best(lambda: store.save(res, packed, compress=True), 1)
        t_load = _best(lambda: il.load(run), args.repeat)
        sizes = run.stat().st_size / 1e6, packed.stat().st_size / 1e6
    print(f"{args.portfolios} portfolios x 100 firms: {mb:.0f} MB of arrays")
    print(f"raw write + fsync: {t_raw:.2f} s ({mb / t_raw:.0f} MB/s)")
    print(f"res.save: {t_save:.2f} s ({mb / t_save:.0f} MB/s, {t_save / t_raw:.2f}x the raw "
          f"write), file {sizes[0]:.0f} MB")  # fmt: skip
    print(f"save(compress=True): {t_packed:.2f} s, file {sizes[1]:.0f} MB")
    print(f"il.load (checks and checksum): {t_load:.2f} s")


if __name__ == "__main__":
    main()
