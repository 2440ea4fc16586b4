"""Simulation driver: validate, lower, simulate firms once per dynamics, evaluate structures.

Overview
--------
:func:`simulate` is the one entry point. It checks every argument before any work, lowers
the scenario and structures to arrays (:mod:`invlend._sim.lowering`), groups the structures by
linkage (structures with the same linkage share one firm simulation: common random numbers),
and processes ranges of portfolios independently -- in this process, or on any
``concurrent.futures.Executor`` or ``dask.distributed.Client`` passed as ``executor``. Because
every draw is keyed by (seed, portfolio, firm, purpose, step), the result does not depend on
the chunking, the executor, the thread count or the backend.

Example
-------
>>> import invlend as il
>>> res = il.simulate(il.Scenario.default(), n_portfolios=20, portfolio_size=50, seed=1)
>>> sorted(res)
['pure_loan', 'vc_linked', 'warrant_loan']
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.metadata as md
import importlib.util
import math
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from invlend import _checks, _progress
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._sim.backend import Backend
from invlend._sim.lowering import (
    MEASURES,
    Dynamics,
    Terms,
    checkpoint_table,
    linkage_groups,
    lower_dynamics,
    lower_structure,
    run_sizes,
)
from invlend._version import __version__
from invlend.config import Linkage, Scenario, Structure, check_run
from invlend.results import SimulationResult
from invlend.rng import STREAM_VERSION, root_key
from invlend.structures import structure_list
from invlend.tail import (
    PILOT_KEY,
    Tilt,
    check_tilt,
    choose_scale,
    cross_entropy_update,
    sample,
    scaled,
    tail_points,
    tail_statistic,
)

__all__ = ["BACKENDS", "find_tilt", "resolve_seed", "simulate"]

BACKENDS = (*L.BACKENDS, "auto")
_DEFAULT_CHUNK_FIRMS = 1 << 18
# A GPU wants millions of firms per launch; the device memory this takes, about 100 bytes per
# firm for the outcomes of one linkage and one structure's per-firm results, is far below a
# data-centre GPU's.
_CUDA_CHUNK_FIRMS = 1 << 24
_CUDA_INSTALL = 'pip install "invlend[cuda]"'
# numba's workqueue threading layer (used where neither OpenMP nor TBB is installed) must not
# run parallel kernels from two Python threads at once; each kernel uses every core anyway.
_KERNEL_LOCK = threading.Lock()


def resolve_seed(seed: int | np.random.SeedSequence | None) -> tuple[int, Any, tuple]:
    """Return ``(root, entropy, spawn_key)``: the 64-bit root of the streams and how to replay it.

    ``seed`` may be a non-negative int, a :class:`numpy.random.SeedSequence` (a spawned child
    included) or ``None`` (fresh entropy from the operating system). The run is replayed by
    ``SeedSequence(entropy, spawn_key=spawn_key)``, or by the int itself when the spawn key is
    empty.
    """
    seed = _checks.seed("seed", seed)
    if isinstance(seed, np.random.SeedSequence):
        ss = seed
    else:
        ss = np.random.SeedSequence(seed)
    root = int(ss.generate_state(1, np.uint64)[0])
    entropy = int(ss.entropy) if isinstance(ss.entropy, (int, np.integer)) else ss.entropy
    return root, entropy, tuple(int(k) for k in ss.spawn_key)


def _versions(backend: str = "cpu") -> dict[str, str]:
    out = {"invlend": __version__, "python": sys.version.split()[0]}
    for pkg in ("numpy", "scipy", "numba", "pydantic"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[pkg] = "missing"
    out["stream"] = str(STREAM_VERSION)
    if backend == "cuda":
        from invlend._sim import cuda

        try:
            out["numba-cuda"] = md.version("numba-cuda")
        except md.PackageNotFoundError:
            out["numba-cuda"] = "missing (numba's built-in numba.cuda)"
        out["cuda_device"] = cuda.device_name()
    return out


def _check_memory(sizes: L.Sizes, n_port: int, firms: bool) -> None:
    need = L.result_bytes(sizes, n_port, firms)
    have = L.available_bytes()
    if have is not None and need > 0.8 * have:
        aggregates = L.result_bytes(sizes, n_port, False)
        hint = (
            f"; keep='aggregates' keeps only per-portfolio totals ({aggregates / 2**30:.2f} GiB)"
            if firms and aggregates <= 0.8 * have
            else "; lower n_portfolios"
        )
        raise ValueError(
            f"n_portfolios: {n_port} portfolios x {sizes.portfolio_size} firms need "
            f"{need / 2**30:.1f} GiB for the results but only {have / 2**30:.1f} GiB of memory "
            f"is available{hint}"
        )


@functools.cache
def _cuda_problem() -> tuple[str | None, bool]:
    """Why ``backend="cuda"`` cannot run here (None if it can), and whether it is simulated.

    The second value says whether numba's CUDA simulator stands in for a GPU
    (``NUMBA_ENABLE_CUDASIM=1``).

    Imports ``numba.cuda`` (and starts the CUDA driver), so it is called only when the cuda or
    the auto backend is asked for; the answer is kept for the process.
    """
    try:
        from numba import config, cuda
    except Exception as exc:  # pragma: no cover - numba without its cuda package
        return f"numba.cuda cannot be imported ({exc})", False
    if config.ENABLE_CUDASIM:
        return None, True
    if not cuda.is_available():
        if importlib.util.find_spec("numba_cuda") is None:
            return "no CUDA GPU was found, and the numba-cuda package is not installed", False
        return "no CUDA GPU was found (numba.cuda.is_available() is False)", False
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:
        return f"a CUDA GPU is here but the NVVM compiler library is not ({exc})", False
    return None, False


def _check_backend(backend: str) -> str:
    """The backend that runs: ``backend``, or for ``"auto"`` ``"cuda"`` or ``"cpu"``.

    ``"auto"`` takes ``"cuda"`` where a CUDA GPU is ready (never numba's simulator).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; choices are {list(BACKENDS)}")
    if backend == "auto":
        problem, simulated = _cuda_problem()
        return "cuda" if problem is None and not simulated else "cpu"
    if backend == "cuda":
        problem, _ = _cuda_problem()
        if problem is not None:
            raise ValueError(
                f"backend: 'cuda' cannot run here: {problem}; on a machine with an NVIDIA GPU, "
                f"install the GPU extra with {_CUDA_INSTALL}; choices that run here are "
                "['cpu', 'numpy']"
            )
    return backend


def simulate(
    scenario: Scenario,
    structures: Structure | Sequence[Structure] | None = None,
    *,
    n_portfolios: int = 1000,
    portfolio_size: int = 100,
    seed: int | np.random.SeedSequence | None = None,
    backend: str = "cpu",
    executor: Any = None,
    progress: bool = False,
    sample_paths: int = 0,
    chunk_firms: int | None = None,
    keep: str = "firms",
    measures: str | Sequence[str] | None = None,
    tail: Any = None,
    tolerance: Mapping[str, float] | None = None,
    max_portfolios: int | None = None,
):
    """Simulate portfolios of applicant firms and evaluate every structure on the same paths.

    Parameters
    ----------
    scenario : Scenario
        Firms and market.
    structures : Structure or sequence of Structure, optional
        Structures to evaluate (default: :func:`invlend.default_structures`).
    n_portfolios : int
        Independent draws of the economy; firms in a portfolio share one market-factor path.
        Standard errors are clustered by portfolio.
    portfolio_size : int
        Applicant firms per portfolio.
    seed : int, numpy.random.SeedSequence or None
        Root of every random stream; ``None`` draws fresh entropy, recorded on the result.
    backend : {"cpu", "numpy", "cuda", "auto"}
        ``"cpu"``: numba kernels on all cores; ``"numpy"``: the vectorised NumPy oracle;
        ``"cuda"``: the same kernels on an NVIDIA GPU (``pip install "invlend[cuda]"``; events
        equal the ``cpu`` backend's, values agree to rounding); ``"auto"``: ``"cuda"`` where a
        CUDA GPU is ready, else ``"cpu"``. The result records the backend that ran.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Runs ranges of portfolios as separate tasks; the merged result is identical. Every
        part it returns is checked (keys, dtypes, shapes) before it is merged.
    progress : bool
        Show a progress bar on standard error (portfolios done, rate, time left).
    sample_paths : int
        Record the value paths of the first ``sample_paths`` firms (flat order) for plotting;
        ``NaN`` after a firm's event.
    chunk_firms : int, optional
        Firms per range of portfolios processed at once (memory of the temporaries); by
        default 262,144 (``cpu``, ``numpy``) or 16,777,216 (``cuda``: firms per GPU launch).
    keep : {"firms", "aggregates"}
        ``"firms"`` keeps every per-firm array; ``"aggregates"`` keeps only the per-portfolio
        totals and IRRs that ``summary()`` and ``compare()`` need, so memory grows with
        portfolios, not firms (per-firm attributes are then ``None``).
    measures : str or sequence of str, optional
        ``("real_world", "risk_neutral")`` simulates both measures on the same keyed
        streams: the real world for every risk figure, the risk-neutral measure for the fair
        values (``fair_value_per_principal``, :meth:`SimulationResult.decompose`), paired
        with them. ``"real_world"`` alone skips the fair values (about half the work). The
        default is both, except for a scenario with a value barrier (``default_barrier >
        0``), which has no exact risk-neutral measure on the grid: the real world alone, and
        the fair values are NaN with that reason.
    tail : None, "auto" or Tilt
        Importance sampling of the systematic drivers (:mod:`invlend.tail`): ``"auto"`` finds
        a tilt toward the 99.9% loss quantile by the cross-entropy method on pilot runs
        (:func:`invlend.find_tilt`, seeded by children of ``seed``); an
        :class:`invlend.Tilt` fixes it. Every estimate then uses the portfolios' importance
        weights (``result.weights``). ``None`` (default): plain sampling.
    tolerance : mapping of metric name to float, optional
        Relative standard errors to reach, e.g. ``{"economic_capital": 0.02}``: the run
        simulates ``n_portfolios`` first and extends itself in batches (growing the run, never
        reshuffling it) until every named metric of every structure is that precise or
        ``max_portfolios`` are spent. A tail metric counts as precise only once at least
        ``MIN_TAIL_POINTS`` (50) sampled portfolios lie at or beyond its quantile: a
        bootstrap of fewer understates the spread. ``result.stopping`` records how it stopped.
    max_portfolios : int, optional
        The budget of a run with a ``tolerance`` (default ``100 * n_portfolios``, at most
        1,000,000 more than ``n_portfolios``).

    Returns
    -------
    SimulationResult
        A mapping from structure name to :class:`~invlend.results.StructureResult`.
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario)!r}")
    structs = structure_list(structures)
    check_run(scenario, structs)
    n_portfolios = _checks.count("n_portfolios", n_portfolios)
    portfolio_size = _checks.count("portfolio_size", portfolio_size)
    sample_paths = _checks.count("sample_paths", sample_paths, low=0)
    backend = _check_backend(backend)
    if chunk_firms is None:
        chunk_firms = _CUDA_CHUNK_FIRMS if backend == "cuda" else _DEFAULT_CHUNK_FIRMS
    chunk_firms = _checks.count("chunk_firms", chunk_firms)
    n_firms = n_portfolios * portfolio_size
    if n_firms > L.MAX_FIRMS and keep == "firms":
        raise ValueError(
            f"n_portfolios * portfolio_size = {n_firms} firms exceeds the limit of {L.MAX_FIRMS} "
            "for per-firm results; keep='aggregates' has no such limit"
        )
    most_paths = min(n_firms, L.MAX_SAMPLE_PATHS)
    if sample_paths > most_paths:
        raise ValueError(
            f"sample_paths: at most min(firms, {L.MAX_SAMPLE_PATHS}) = {most_paths}, "
            f"got {sample_paths}"
        )
    if keep not in ("firms", "aggregates"):
        raise ValueError(f"keep: unknown {keep!r}; choices are ['firms', 'aggregates']")
    measures = _check_measures(measures, scenario)
    _check_executor(executor)
    regime = _regime(scenario)
    if not (isinstance(tail, str) and tail == "auto"):
        tail = check_tilt(tail, scenario.n_steps, regime)
    tolerance, budget = _check_tolerance(tolerance, max_portfolios, n_portfolios)
    if tolerance and keep == "firms" and budget * portfolio_size > L.MAX_FIRMS:
        raise ValueError(
            f"max_portfolios: {budget} x {portfolio_size} firms exceeds the limit of "
            f"{L.MAX_FIRMS} for per-firm results; keep='aggregates' has no such limit"
        )
    root, entropy, spawn_key = resolve_seed(seed)
    if isinstance(tail, str):
        tail = find_tilt(scenario, structs, portfolio_size=portfolio_size, backend=backend,
                         seed=np.random.SeedSequence(entropy, spawn_key=spawn_key))  # fmt: skip
    spec = _spec(scenario, structs, int(root_key(root)), portfolio_size, backend, sample_paths,
                 keep == "firms", measures, tail)  # fmt: skip
    _check_memory(spec.sizes, n_portfolios if not tolerance else budget, spec.keep_firms)

    def run_info(n: int, stopping=None) -> L.RunInfo:
        return L.RunInfo(n, portfolio_size, entropy, spawn_key, backend, keep, _versions(backend),
                         measures, None if tail is None else tail.as_dict(),
                         stopping)  # fmt: skip

    out = _allocate(spec, n_portfolios)
    bar = _progress.bar(n_portfolios, "simulating", "portfolios", progress)
    try:
        _run_portfolios(spec, out, 0, n_portfolios, chunk_firms, executor, bar)
        if not tolerance:
            return SimulationResult.from_arrays(scenario, structs, spec.group_of, out,
                                                run_info(n_portfolios))  # fmt: skip
        n, batches = n_portfolios, [n_portfolios]
        while True:
            res = SimulationResult.from_arrays(scenario, structs, spec.group_of, out,
                                               run_info(n))  # fmt: skip
            factor, precision, points = _precision(res, tolerance)
            met = all(p is not None and p <= tolerance[m] for m, p in precision.items()) and all(
                k is None or k >= MIN_TAIL_POINTS for k in points.values()
            )
            _show_precision(bar, precision)
            if met or n >= budget:
                break
            # Portfolios needed (square-root law, tail points), 10% spare, at most 4x, the budget.
            need = math.ceil(n * factor * 1.1) if math.isfinite(factor) else 4 * n
            n_new = min(budget, max(n + max(1, n // 10), min(need, 4 * n)))
            out = _extend(spec, out, n, n_new)
            bar.total = n_new
            _run_portfolios(spec, out, n, n_new, chunk_firms, executor, bar)
            n = n_new
            batches.append(n)
    finally:
        bar.close()
    stopping = {"tolerance": dict(tolerance), "reached": met, "precision": precision,
                "tail_points": points, "min_tail_points": MIN_TAIL_POINTS,
                "batches": batches, "max_portfolios": budget,
                "reason": "every target met" if met else "max_portfolios spent"}  # fmt: skip
    return SimulationResult.from_arrays(scenario, structs, spec.group_of, out,
                                        run_info(n, stopping))  # fmt: skip


def _regime(scenario: Scenario) -> tuple[float, float, float] | None:
    """The funding cycle's per-step (P(start cold), P(hot -> cold), P(cold -> hot)), or None."""
    cycle = scenario.cycle
    return None if cycle is None else (cycle.initial_cold, *cycle.transition(scenario.dt))


def _run_portfolios(spec: _Spec, out: dict, p0: int, p1: int, chunk_firms: int, executor,
                    bar) -> None:  # fmt: skip
    """Simulate portfolios ``[p0, p1)`` into their rows of ``out``, range by range."""
    chunk = max(1, chunk_firms // spec.sizes.portfolio_size)
    ranges = [(a, min(a + chunk, p1)) for a in range(p0, p1, chunk)]
    if executor is None:
        for a, b in ranges:
            _run_range(spec, a, b, _views(out, a, b))
            bar.update(b - a)
    else:
        _run_distributed(executor, spec, ranges, out, spec.sizes.portfolio_size, bar)


def _extend(spec: _Spec, out: dict, n: int, n_new: int) -> dict:
    """The arrays of ``out`` grown from ``n`` to ``n_new`` portfolios, the first ``n`` kept."""
    grown = _allocate(spec, n_new)
    for k, v in out.items():
        if L.is_paths(k):
            grown[k] = v  # sample paths belong to the first firms, already simulated
        else:
            grown[k][:n] = v
    return grown


#: Budget of a run with a tolerance, beyond its first batch, at most.
MAX_EXTRA_PORTFOLIOS = 1_000_000


def _check_tolerance(tolerance: Any, max_portfolios: Any,
                     n_portfolios: int) -> tuple[dict[str, float], int]:  # fmt: skip
    """The tolerance as {metric: relative SE} and the run's budget, refused before any work."""
    if tolerance is None:
        if max_portfolios is not None:
            raise ValueError("max_portfolios: only a run with a tolerance has a budget")
        return {}, n_portfolios
    if not isinstance(tolerance, Mapping) or not tolerance:
        raise ValueError(
            "tolerance: expected a mapping of metric name to relative standard error, e.g. "
            f"{{'economic_capital': 0.02}}, got {_described(tolerance)}"
        )
    out = {}
    for metric, value in tolerance.items():
        if metric not in M.METRICS:
            close = difflib.get_close_matches(str(metric), M.METRICS, n=1)
            hint = f" — did you mean {close[0]}?" if close else f"; choose from {list(M.METRICS)}"
            raise ValueError(f"tolerance: unknown metric {metric!r}{hint}")
        out[metric] = _checks.number(f"tolerance[{metric!r}]", value, low=1e-4, high=1.0)
    default = n_portfolios + min(99 * n_portfolios, MAX_EXTRA_PORTFOLIOS)
    budget = default if max_portfolios is None else _checks.count("max_portfolios",
                                                                   max_portfolios)  # fmt: skip
    if budget < n_portfolios:
        raise ValueError(
            f"max_portfolios: the budget ({budget}) must be at least n_portfolios "
            f"({n_portfolios}), the first batch"
        )
    return out, budget


#: A tail metric's standard error is trusted only with this many sampled portfolios at or
#: beyond its quantile: a bootstrap of an extreme quantile from a handful of points
#: understates its spread (at 8 points it was half the replicated one on the built-in scenario).
MIN_TAIL_POINTS = 50


def _precision(res: SimulationResult, tolerance: dict[str, float]) -> tuple[float, dict, dict]:
    """How far the run is from its targets, and where it stands.

    Returns the factor of portfolios it still needs (the square-root law's, or what the tail
    points need), each metric's worst relative SE over the structures (None if undefined) and
    its fewest tail points (None for a metric that is not a tail metric).
    """
    s = res.summary()
    precision, points = {}, {}
    factor = 0.0
    for metric in tolerance:
        worst = 0.0
        for name in res:
            e = s[name][metric]
            rel = abs(e.se / e.estimate) if e.estimate != 0 else math.inf
            worst = max(worst, rel if math.isfinite(rel) else math.inf)
        precision[metric] = worst if math.isfinite(worst) else None  # JSON has no infinity
        points[metric] = tail_points(res, metric)
        factor = max(factor, (worst / tolerance[metric]) ** 2)
        if points[metric] is not None and points[metric] < MIN_TAIL_POINTS:
            factor = max(factor, MIN_TAIL_POINTS / max(points[metric], 1))
    return factor, precision, points


def _show_precision(bar, precision: dict) -> None:
    """Show the current relative SEs on the progress bar (a disabled bar has no postfix)."""
    post = getattr(bar, "set_postfix_str", None)
    if post is not None:
        shown = (f"{m} rel SE {'undefined' if p is None else f'{p:.2%}'}"
                 for m, p in precision.items())  # fmt: skip
        post(", ".join(shown), refresh=True)


def _run_distributed(executor, spec: _Spec, ranges, out, portfolio_size: int, bar) -> None:
    """Submit every range to ``executor`` and merge the parts in order, checked."""
    futures = []
    try:
        for p0, p1 in ranges:
            futures.append((p0, p1, _submit(executor, spec, p0, p1)))
        for p0, p1, fut in futures:
            _merge(out, _result(fut, p0, p1), p0, p1, portfolio_size)
            bar.update(p1 - p0)
    except BaseException:
        _cancel(fut for _, _, fut in futures)  # no work left running for a failed call
        raise


def _check_measures(measures: Any, scenario: Scenario) -> tuple[str, ...]:
    """The measures to simulate, real world first; refused before any work, naming the field."""
    if measures is None:
        return MEASURES if scenario.default_barrier == 0.0 else MEASURES[:1]
    given = (measures,) if isinstance(measures, str) else measures
    try:
        given = tuple(given)
    except TypeError:
        raise ValueError(
            f"measures: expected a measure name or a sequence of them, got {_described(measures)}"
        ) from None
    unknown = [m for m in given if not isinstance(m, str) or m not in MEASURES]
    if unknown:
        raise ValueError(f"measures: unknown {unknown[0]!r}; choices are {list(MEASURES)}")
    if "real_world" not in given:
        raise ValueError(
            "measures: the real-world measure is always simulated (every risk figure comes "
            f"from it); give {MEASURES[:1]} or {MEASURES}"
        )
    if "risk_neutral" in given and scenario.default_barrier > 0.0:
        raise ValueError(
            "measures: the risk-neutral measure needs default_barrier = 0 (a value barrier "
            "on the grid has no exact compensator); set scenario default_barrier to 0 or "
            f"measures={MEASURES[:1]}"
        )
    return tuple(m for m in MEASURES if m in given)


class _Spec(NamedTuple):
    """Everything a range of portfolios needs: plain arrays and scalars (cheap to pickle)."""

    seed_key: int
    backend: str
    sizes: L.Sizes
    dt: float
    measures: tuple[str, ...]  # real world first
    dynamics: tuple[tuple[Dynamics, ...], ...]  # per measure, one per linkage group
    terms: tuple[Terms, ...]  # one per structure
    group_of: tuple[int, ...]  # linkage group of each structure
    keep_firms: bool
    regime: tuple[float, float, float] | None  # (P(start cold), P(hot->cold), P(cold->hot))
    tilt: Tilt | None = None  # importance sampling of the systematic draws


def _spec(scenario: Scenario, structures: list[Structure], seed_key: int, portfolio_size: int,
          backend: str, sample_paths: int, keep_firms: bool,
          measures: tuple[str, ...] = MEASURES[:1], tilt: Tilt | None = None) -> _Spec:  # fmt: skip
    """Lower the run once: every measure's and linkage group's dynamics, every structure's terms."""
    group_of = linkage_groups(structures)
    linkage: dict[int, Linkage] = {}  # each group's linkage: its first structure's
    for s, g in zip(structures, group_of, strict=True):
        linkage.setdefault(g, s.linkage)
    checkpoints = checkpoint_table(scenario, structures)
    return _Spec(
        seed_key=seed_key,
        backend=backend,
        sizes=run_sizes(scenario, structures, portfolio_size, sample_paths, measures),
        dt=scenario.dt,
        measures=measures,
        dynamics=tuple(
            tuple(lower_dynamics(scenario, lk, checkpoints, m) for lk in linkage.values())
            for m in measures
        ),
        terms=tuple(lower_structure(scenario, s, checkpoints) for s in structures),
        group_of=group_of,
        keep_firms=keep_firms,
        regime=_regime(scenario),
        tilt=tilt,
    )


def _allocate(spec: _Spec, n_port: int) -> dict[str, np.ndarray]:
    """Output arrays for ``n_port`` portfolios (per-firm ones only when the run keeps them)."""
    layout = L.arrays(spec.sizes, n_port, spec.keep_firms)
    return {k: np.empty(shape, dtype) for k, (shape, dtype) in layout.items()}


def _views(out: dict[str, np.ndarray], p0: int, p1: int) -> dict[str, np.ndarray]:
    return {k: (v if L.is_paths(k) else v[p0:p1]) for k, v in out.items()}


def _check_executor(executor: Any) -> None:
    """Refuse, before any work, an ``executor`` that has no ``submit`` to call."""
    submit = getattr(executor, "submit", None)
    if executor is None or (callable(submit) and not isinstance(executor, type)):
        return
    if isinstance(executor, type):
        got = f"the class {executor.__name__}"
        if callable(submit):
            got += f"; pass an instance, e.g. {executor.__name__}()"
    elif isinstance(executor, str):
        got = (
            f"the string {executor!r}; for threads pass e.g. "
            "concurrent.futures.ThreadPoolExecutor()"
        )
    elif not hasattr(executor, "submit"):
        got = f"{type(executor).__name__}, which has no submit method"
    else:
        got = f"{type(executor).__name__}, whose submit is not callable"
    raise ValueError(
        f"executor: expected a concurrent.futures.Executor or a dask.distributed.Client, got {got}"
    )


def _submit(executor: Any, spec: _Spec, p0: int, p1: int) -> Any:
    """``executor.submit`` of the range ``[p0, p1)``; a failure or a non-future is refused."""
    try:
        fut = executor.submit(_run_range, spec, p0, p1)
    except Exception as exc:
        raise RuntimeError(
            f"executor: submit failed for portfolios [{p0}, {p1}): {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(getattr(fut, "result", None)):
        raise RuntimeError(
            f"executor: submit returned {_described(fut)} for portfolios [{p0}, {p1}), "
            "expected a future with a result() method"
        )
    return fut


def _result(fut: Any, p0: int, p1: int) -> Any:
    """The future's value; an exception of the task keeps its type and gets the range noted."""
    try:
        return fut.result()
    except Exception as exc:
        exc.add_note(f"invlend: raised while simulating portfolios [{p0}, {p1})")
        raise


def _cancel(futures: Iterable[Any]) -> None:
    for fut in futures:
        with contextlib.suppress(Exception):  # the error being raised matters more
            fut.cancel()


def _described(value: Any) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


def _listed(keys: list[str], most: int = 6) -> str:
    shown = ", ".join(repr(k) for k in keys[:most])
    return f"[{shown}, ... {len(keys)} in all]" if len(keys) > most else f"[{shown}]"


def _check_part(out: dict[str, np.ndarray], part: Any, p0: int, p1: int) -> None:
    """Refuse a part that would not write every element of ``out`` for portfolios [p0, p1).

    The output buffers are uninitialised, so the part must hold exactly the keys of ``out``
    (those :func:`_run_range` returns for this spec), each an array of the buffer's dtype, with
    ``p1 - p0`` rows (``.paths``: the buffer's whole shape).
    """
    if not isinstance(part, dict):
        raise ValueError(
            f"executor: the future for portfolios [{p0}, {p1}) returned {_described(part)}, "
            "expected a dict of arrays"
        )
    where = f"executor: the part for portfolios [{p0}, {p1})"
    missing = sorted(set(out) - set(part))
    if missing:
        raise ValueError(f"{where} is missing keys {_listed(missing)}")
    unexpected = sorted(set(part) - set(out), key=str)
    if unexpected:
        raise ValueError(f"{where} has unexpected keys {_listed(unexpected)}")
    for k, buffer in out.items():
        v = part[k]
        if not isinstance(v, np.ndarray):
            raise ValueError(f"{where} has {k} of type {type(v).__name__}, expected a numpy array")
        if v.dtype != buffer.dtype:
            raise ValueError(f"{where} has {k} of dtype {v.dtype}, expected {buffer.dtype}")
        shape = buffer.shape if L.is_paths(k) else (p1 - p0, *buffer.shape[1:])
        if v.shape != shape:
            raise ValueError(f"{where} has {k} of shape {v.shape}, expected {shape}")


def _merge(out: dict[str, np.ndarray], part: Any, p0: int, p1: int, size: int) -> None:
    """Copy a part returned by an executor into ``out``, after :func:`_check_part`."""
    _check_part(out, part, p0, p1)
    for k, v in part.items():
        if L.is_paths(k):
            # Rows of firms outside the part's range were never written there.
            n = v.shape[0]
            lo, hi = min(p0 * size, n), min(p1 * size, n)
            out[k][lo:hi] = v[lo:hi]
        else:
            out[k][p0:p1] = v


def _run_range(
    spec: _Spec, p0: int, p1: int, out: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray] | None:
    """Simulate and evaluate portfolios ``[p0, p1)``; write into ``out`` or return new arrays."""
    with _KERNEL_LOCK:
        ret = out is None
        if out is None:
            out = _allocate(spec, p1 - p0)
        backend = _backend(spec.backend)
        with backend.running():
            _run_range_on(backend, spec, p0, p1, out)
        return out if ret else None


def _backend(name: str) -> Backend:
    """The backend called ``name``; the cuda one is imported only when asked for."""
    if name == "cuda":
        from invlend._sim import cuda

        return cuda.BACKEND
    if name == "numpy":
        from invlend._sim import numpy_backend

        return numpy_backend.BACKEND
    from invlend._sim import cpu

    return cpu.BACKEND


def _run_range_on(backend: Backend, spec: _Spec, p0: int, p1: int, out: dict) -> None:
    """The one loop: each linkage group's firms once, then each of its structures on them.

    ``out`` holds the range's rows of every array the run keeps. The backend writes into views
    of them where it works in host memory, and into its own buffers otherwise (then
    :meth:`~invlend._sim.backend.Backend.fetch` copies back what ``out`` holds); per-firm
    arrays that the run does not keep live only while their group is computed.
    """
    sizes = spec.sizes
    size = sizes.portfolio_size
    n_port = p1 - p0
    n = n_port * size
    n_chk, n_k = sizes.n_checkpoints, sizes.n_steps + 1

    def buffer(key: str, shape: tuple, dtype) -> tuple[Any, np.ndarray | None]:
        host = out.get(key)
        host = None if host is None else host.reshape(shape)
        return backend.buffer(shape, dtype, host), host

    draws, cold_share, log_weight = backend.draws(spec.seed_key, p0, p1, sizes.n_steps,
                                                  spec.regime, size, spec.tilt)  # fmt: skip
    backend.fetch(cold_share, out["cold_share"])
    out["log_weight"][:] = log_weight
    for measure, dynamics in zip(spec.measures, spec.dynamics, strict=True):
        real = measure == "real_world"

        def key(k: str, measure=measure) -> str:
            return L.measure_key(measure, k)

        for g, dyn in enumerate(dynamics):
            outcomes = [buffer(key(L.group_key(g, f.key)), (n,), f.dtype) for f in L.OUTCOMES]
            chk, chk_host = buffer(key(L.group_key(g, "chk")), (n, n_chk), np.float64)
            # Sample paths are the real world's (the risk-neutral run records none).
            paths = out[L.group_key(g, "paths")] if real else np.empty((0, n_k))
            paths_buf = backend.buffer(paths.shape, paths.dtype, paths)
            firms = L.FirmOutcomes(*(b for b, _ in outcomes))
            backend.simulate_firms(draws, size, p0 * size, backend.inputs(dyn), firms, chk,
                                   paths_buf)  # fmt: skip
            for b, host in [*outcomes, (chk, chk_host)]:
                backend.fetch(b, host)
            if real:  # rows of the sample paths that firms of this range fill
                rows = slice(min(p0 * size, paths.shape[0]), min(p1 * size, paths.shape[0]))
                backend.fetch(paths_buf, paths, rows)
            for s, terms in enumerate(spec.terms):
                if spec.group_of[s] != g:
                    continue
                per_firm = [
                    buffer(key(L.structure_key(s, f.key)), (n,), f.dtype) for f in L.PER_FIRM
                ]
                # Per-portfolio arrays of the real world are always kept (their shapes are
                # the result's); the risk-neutral run keeps its aggregates.
                shapes = {"agg": (n_port, L.N_AGG), "pool_claims": (n_port, sizes.n_years),
                          "pool_paid": (n_port, sizes.n_years), "irr": (n_port,)}  # fmt: skip
                portfolio = [
                    buffer(key(L.structure_key(s, k)), shape, np.float64)
                    for k, shape in shapes.items()
                ]
                agg, claims, paid, irr = (b for b, _ in portfolio)
                cf = backend.buffer((n_port, n_k), np.float64)
                work = backend.buffer((n_port, n_k + 1), np.float64)
                backend.evaluate_structure(firms, chk, size, backend.inputs(terms),
                                           [b for b, _ in per_firm], agg, claims, paid, cf,
                                           work)  # fmt: skip
                if real:
                    backend.portfolio_irr(cf, spec.dt, irr)
                for b, host in [*per_firm, *portfolio]:
                    backend.fetch(b, host)
                if real:
                    # Screening cost alone is not an investment: no loan, no IRR.
                    k_irr = L.structure_key(s, "irr")
                    out[k_irr][out[L.structure_key(s, "agg")][:, L.AGG_ACCEPTED] == 0] = np.nan


def find_tilt(
    scenario: Scenario,
    structures: Structure | Sequence[Structure] | None = None,
    *,
    level: float = 0.999,
    portfolio_size: int = 100,
    pilot_portfolios: int = 1000,
    elite: float = 0.1,
    rounds: int = 8,
    mixture: float = 0.25,
    quality: bool = True,
    seed: int | np.random.SeedSequence | None = 0,
    backend: str = "cpu",
) -> Tilt:
    r"""Find a tilt toward the ``level`` loss quantile by the cross-entropy method.

    Parameters
    ----------
    scenario, structures
        As for :func:`invlend.simulate`; the tail statistic is each portfolio's loss rate
        averaged over the structures.
    level : float
        Quantile the tilt aims at (0.999: the economic-capital and VaR level).
    portfolio_size : int
        Firms per portfolio, as in the run the tilt is for.
    pilot_portfolios : int
        Portfolios per round (the real world's measure alone is simulated).
    elite : float
        Share of a round's portfolios whose draws set the next tilt, until the elite reaches
        the ``level`` quantile.
    rounds : int
        Most rounds; the search stops one round after the elite reaches the level.
    mixture : float
        The defensive mixture of the returned tilt (:class:`Tilt`).
    quality : bool
        Tilt the firms' latent quality as well as the market (and the regime, with a cycle).
    seed : int, SeedSequence or None
        Root of the pilot runs' seeds (round ``k`` uses the child ``spawn_key=(.., PILOT_KEY,
        k)``).
    backend : str
        Backend of the pilot runs.

    Returns
    -------
    Tilt
        The tilt, with ``pilot`` recording the rounds: the elite threshold and the estimated
        ``level`` quantile of each.

    Notes
    -----
    Market shifts are estimated per year of the grid (one number for the steps of each year):
    a per-step mean from a few hundred elite portfolios would be mostly noise, and noise in a
    shift adds variance to every weight.
    """
    for name, value, lo, hi in (("level", level, 0.5, 1.0), ("elite", elite, 0.0, 0.5)):
        if not (isinstance(value, (int, float)) and lo < value < hi):
            raise ValueError(f"{name}: expected a number in ({lo:g}, {hi:g}), got {value!r}")
    mixture = Tilt(mixture=mixture).mixture  # the Tilt's own bounds, [0, 1)
    rounds = _checks.count("rounds", rounds)
    pilot_portfolios = _checks.count("pilot_portfolios", pilot_portfolios, low=100)
    portfolio_size = _checks.count("portfolio_size", portfolio_size)
    structs = structure_list(structures)
    check_run(scenario, structs)
    _, entropy, spawn_key = resolve_seed(seed)
    regime = _regime(scenario)
    current = Tilt(market=0.0, quality=0.0, regime=None, mixture=0.0)
    history, reached, pilots = [], False, []
    for k in range(rounds):
        ss = np.random.SeedSequence(entropy, spawn_key=(*spawn_key, PILOT_KEY, k))
        res = simulate(scenario, structs, n_portfolios=pilot_portfolios,
                       portfolio_size=portfolio_size, seed=ss, tail=current, keep="aggregates",
                       measures="real_world", backend=backend)  # fmt: skip
        # The round's systematic draws again (simulate keeps none; a pass over portfolios' steps,
        # cheap next to their firms), with each portfolio's mean quality for the update.
        draws = sample(int(root_key(resolve_seed(ss)[0])), 0, pilot_portfolios,
                       scenario.n_steps, portfolio_size, regime, current,
                       quality_mean=quality)  # fmt: skip
        w = np.asarray(res.weights)
        pilots.append((draws, w, np.array([M.loss_rate(r.aggregates) for r in res.values()]),
                       np.array([M.value_rate(r.aggregates) for r in res.values()])))  # fmt: skip
        new, entry = cross_entropy_update(tail_statistic(res), w, draws,
                                          level=level, elite=elite,
                                          steps_per_year=scenario.steps_per_year, regime=regime,
                                          quality=quality)  # fmt: skip
        history.append({"round": k, **entry})
        if new is None:
            break
        current = new
        if reached:  # one round past the level: the elite are the tail itself
            break
        reached = entry["reached"]
    direction = current.replace(mixture=mixture)
    scale, criterion = choose_scale(direction, pilots, regime, portfolio_size, level)
    pilot = {"method": "cross_entropy", "level": level, "pilot_portfolios": pilot_portfolios,
             "portfolio_size": portfolio_size, "elite": elite, "rounds": history,
             "reached_level": reached, "scale": scale,
             "criterion": {str(t): c for t, c in criterion.items()}, "seed": entropy,
             "seed_spawn_key": list(spawn_key)}  # fmt: skip
    return scaled(direction, scale, regime).replace(pilot=pilot)
