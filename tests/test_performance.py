"""Interface tier: the benchmark suite of ``benchmarks/`` runs on tiny inputs and fills its page.

This keeps ``make bench`` working. The exactness of the kernels' fast paths (inlined normal,
IRR lanes) is tested in ``test_fast_paths.py``.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

# Re-exported for test_cuda.py, which imports it from here; its home is test_fast_paths.py.

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_benchmark_suite_runs_and_fills_the_page(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_engine
    import bench_scaling
    import report

    args = Namespace(firms=3000, numpy_firms=1000, repeat=1)
    text, ratios, splits = bench_engine.throughput(args)
    assert set(ratios) == {report.DEFAULT, report.LONG}
    assert all(v > 0 for r in ratios.values() for v in r.values())
    measures = bench_engine.measures_cost(args)
    assert all(v > 0 for v in measures.values())  # timings are judged by make bench, not here
    sizes = [10_000, 100_000, 1_000_000]
    rows = [
        dict(firms=n, threads=t, first=2e-6 * n / t, seconds=1e-6 * n / t, base_rss=2e8,
             peak_rss=2e8 + 216 * n, structures=3, keep="firms")
        for t in bench_scaling.THREADS
        for n in sizes
    ]  # fmt: skip
    agg = [dict(r, keep="aggregates", peak_rss=2e8 + 9 * r["firms"]) for r in rows[1:3]]
    scaling = dict(rows=rows, aggregates=agg, sizes=sizes)
    bench_scaling.plot(scaling, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    startup = dict(import_s=0.5, import_top=[("numba", 0.2)], demo_s=3.0,
                   first=dict(cold=10.0, warm=0.3, run=0.01, compile=10.0, load=0.3))  # fmt: skip
    page = report.page(text, ratios, splits, measures, scaling, startup, "test machine", args)
    assert "{" not in page and "}" not in page
    assert "| peak memory linear in firm-paths" in page and "72 bytes" in page
    assert "| both measures (fair value and risk) <= 2x" in page
    sys.modules.pop("report", None)  # the name is generic: do not leave it to other tests
