"""Start-up costs: ``import invlend``, the first call with a cold and a warm numba cache, the demo.

Usage: ``python benchmarks/bench_startup.py``; ``bench_engine.py`` calls :func:`run`.

Every figure comes from a fresh process, as a user meets it:

* *import*: ``import invlend`` (best of five), and the modules that take the most of it
  (``python -X importtime``);
* *first call*: ``invlend.simulate`` on 1,000 firm-paths right after the import, once with an
  empty numba cache directory (every kernel compiled) and once more with that directory filled
  (kernels loaded from disk); the same call in a warm process is subtracted to leave the
  compile or load time;
* *demo*: ``invlend compare --out DIR``, the command ``make demo`` runs once the virtual
  environment exists, with the kernels' cache warm (best of two).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_IMPORT = "import time; t = time.perf_counter(); import invlend; print(time.perf_counter() - t)"
_FIRST_CALL = """
import json, time
t0 = time.perf_counter()
import invlend as il
t1 = time.perf_counter()
kw = dict(n_portfolios=10, portfolio_size=100, seed=1)
il.simulate(il.Scenario.default(), **kw)
t2 = time.perf_counter()
il.simulate(il.Scenario.default(), **kw)
t3 = time.perf_counter()
print(json.dumps(dict(imp=t1 - t0, first=t2 - t1, again=t3 - t2)))
"""


def _python(code: str, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                         check=True, capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def import_time(repeat: int = 5) -> float:
    return min(float(_python(_IMPORT)) for _ in range(repeat))


_HEAVY = ("numpy", "numba", "scipy.special", "scipy.optimize", "pydantic", "matplotlib")


def import_breakdown() -> list[tuple[str, float]]:
    """Cumulative import time (s) of the heavy dependencies that ``import invlend`` pulls in."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", "import invlend"],
                         check=True, capture_output=True, text=True)  # fmt: skip
    found = {}
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)$", line)
        if m and m.group(2) in _HEAVY:
            found[m.group(2)] = int(m.group(1)) / 1e6
    return sorted(found.items(), key=lambda kv: -kv[1])


def first_call() -> dict:
    """First ``simulate`` call in a fresh process, with a cold then a warm numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = json.loads(_python(_FIRST_CALL, env))
        warm = json.loads(_python(_FIRST_CALL, env))
    return dict(
        cold=cold["first"],
        warm=warm["first"],
        run=min(cold["again"], warm["again"]),
        compile=cold["first"] - cold["again"],
        load=warm["first"] - warm["again"],
    )


def demo(repeat: int = 2) -> float | None:
    """Wall time of ``invlend compare --out DIR`` (what ``make demo`` runs); None if it fails."""
    exe = Path(sys.executable).with_name("invlend")
    best = None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            res = subprocess.run([str(exe), "compare", "--out", out], capture_output=True)
            t = time.perf_counter() - t0
        if res.returncode != 0:
            return None
        best = t if best is None else min(best, t)
    return best


def run(verbose: bool = True) -> dict:
    out = dict(import_s=import_time(), import_top=import_breakdown(), first=first_call(),
               demo_s=demo())  # fmt: skip
    if verbose:
        print(f"import invlend: {out['import_s']:.2f} s; top: {out['import_top'][:3]}")
        f = out["first"]
        print(f"first call: cold cache {f['cold']:.1f} s, warm cache {f['warm']:.2f} s "
              f"(the call itself {f['run']:.2f} s)")  # fmt: skip
        print(f"demo: {out['demo_s']} s", flush=True)
    return out


if __name__ == "__main__":
    run()
