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
import functools
import importlib.metadata as md
import importlib.util
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from invlend import _checks, _progress
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

__all__ = ["BACKENDS", "resolve_seed", "simulate"]

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
    root, entropy, spawn_key = resolve_seed(seed)
    spec = _spec(scenario, structs, int(root_key(root)), portfolio_size, backend, sample_paths,
                 keep == "firms", measures)  # fmt: skip
    _check_memory(spec.sizes, n_portfolios, spec.keep_firms)

    out = _allocate(spec, n_portfolios)
    chunk = max(1, chunk_firms // portfolio_size)
    ranges = [(p0, min(p0 + chunk, n_portfolios)) for p0 in range(0, n_portfolios, chunk)]
    bar = _progress.bar(n_portfolios, "simulating", "portfolios", progress)
    try:
        if executor is None:
            for p0, p1 in ranges:
                _run_range(spec, p0, p1, _views(out, p0, p1))
                bar.update(p1 - p0)
        else:
            _run_distributed(executor, spec, ranges, out, portfolio_size, bar)
    finally:
        bar.close()
    run = L.RunInfo(n_portfolios, portfolio_size, entropy, spawn_key, backend, keep,
                    _versions(backend), measures)  # fmt: skip
    return SimulationResult.from_arrays(scenario, structs, spec.group_of, out, run)


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


def _spec(scenario: Scenario, structures: list[Structure], seed_key: int, portfolio_size: int,
          backend: str, sample_paths: int, keep_firms: bool,
          measures: tuple[str, ...] = MEASURES[:1]) -> _Spec:  # fmt: skip
    """Lower the run once: every measure's and linkage group's dynamics, every structure's terms."""
    group_of = linkage_groups(structures)
    linkage: dict[int, Linkage] = {}  # each group's linkage: its first structure's
    for s, g in zip(structures, group_of, strict=True):
        linkage.setdefault(g, s.linkage)
    checkpoints = checkpoint_table(scenario, structures)
    cycle = scenario.cycle
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
        regime=None if cycle is None else (cycle.initial_cold, *cycle.transition(scenario.dt)),
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

    draws, cold_share = backend.draws(spec.seed_key, p0, p1, sizes.n_steps, spec.regime)
    backend.fetch(cold_share, out["cold_share"])
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
