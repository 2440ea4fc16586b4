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

from invlend import _kernels as K
from invlend import _numpy_backend as NB
from invlend._sim.lowering import Dynamics, Terms, linkage_key, lower_dynamics, lower_structure
from invlend._version import __version__
from invlend.config import Scenario, Structure, check_run
from invlend.rng import (
    STREAM_VERSION,
    counter_table,
    market_keys,
    market_shocks,
    portfolio_keys,
    regime_paths,
)
from invlend.rng import root_key as _root_key

__all__ = ["BACKENDS", "resolve_seed", "simulate"]

BACKENDS = ("cpu", "numpy", "cuda", "auto")
_DEFAULT_CHUNK_FIRMS = 1 << 18
# A GPU wants millions of firms per launch; the device memory this takes, about 100 bytes per
# firm for the outcomes of one linkage and one structure's per-firm results, is far below a
# data-centre GPU's.
_CUDA_CHUNK_FIRMS = 1 << 24
_CUDA_INSTALL = 'pip install "invlend[cuda]"'
# numba's workqueue threading layer (used where neither OpenMP nor TBB is installed) must not
# run parallel kernels from two Python threads at once; each kernel uses every core anyway.
_KERNEL_LOCK = threading.Lock()
_MAX_FIRMS = 2_000_000_000  # per-firm arrays beyond this would not fit any single machine


class _Spec(NamedTuple):
    """Everything a range of portfolios needs: plain arrays and scalars (cheap to pickle)."""

    seed_key: int
    portfolio_size: int
    n_steps: int
    dt: float
    backend: str
    dynamics: tuple[Dynamics, ...]
    terms: tuple[Terms, ...]
    group_of: tuple[int, ...]  # dynamics group of each structure
    n_checkpoints: int
    sample_paths: int
    keep_firms: bool
    n_years: int  # years of the horizon, counting a last short one: rows of the pool tables
    regime: tuple[float, float, float] | None  # (P(start cold), P(hot->cold), P(cold->hot))


def resolve_seed(seed: int | np.random.SeedSequence | None) -> tuple[int, Any, tuple]:
    """Return ``(root, entropy, spawn_key)``: the 64-bit root of the streams and how to replay it.

    ``seed`` may be a non-negative int, a :class:`numpy.random.SeedSequence` (a spawned child
    included) or ``None`` (fresh entropy from the operating system). The run is replayed by
    ``SeedSequence(entropy, spawn_key=spawn_key)``, or by the int itself when the spawn key is
    empty.
    """
    if isinstance(seed, np.random.SeedSequence):
        ss = seed
    elif seed is None:
        ss = np.random.SeedSequence()
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed}")
        ss = np.random.SeedSequence(int(seed))
    else:
        raise ValueError(
            f"seed: expected an int, a numpy SeedSequence or None, got {type(seed).__name__}"
        )
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
        from invlend import _cuda

        try:
            out["numba-cuda"] = md.version("numba-cuda")
        except md.PackageNotFoundError:
            out["numba-cuda"] = "missing (numba's built-in numba.cuda)"
        out["cuda_device"] = _cuda.device_name()
    return out


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")
    return int(value)


def _available_bytes() -> int | None:
    """Memory available to new allocations (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def result_bytes(n_portfolios: int, portfolio_size: int, n_groups: int, n_structures: int,
                 n_checkpoints: int, firms: bool = True, n_years: int = 0) -> int:  # fmt: skip
    """Bytes of the per-firm (when ``firms``) and per-portfolio arrays a result holds."""
    per_group = sum(np.dtype(t).itemsize for t in _OUTCOME_FIELDS.values()) + 8 * n_checkpoints
    per_structure = sum(np.dtype(t).itemsize for t in _FIRM_FIELDS.values())
    per_portfolio = n_structures * 8 * (K.N_AGG + 1 + 2 * n_years) + 8
    firm_bytes = (
        n_portfolios * portfolio_size * (n_groups * per_group + n_structures * per_structure)
    )
    return (firm_bytes if firms else 0) + n_portfolios * per_portfolio


def _check_memory(n_port: int, size: int, n_groups: int, n_struct: int, n_chk: int,
                  firms: bool, n_years: int) -> None:  # fmt: skip
    need = result_bytes(n_port, size, n_groups, n_struct, n_chk, firms, n_years)
    have = _available_bytes()
    if have is not None and need > 0.8 * have:
        aggregates = result_bytes(n_port, size, n_groups, n_struct, n_chk, False, n_years)
        hint = (
            f"; keep='aggregates' keeps only per-portfolio totals ({aggregates / 2**30:.2f} GiB)"
            if firms and aggregates <= 0.8 * have
            else "; lower n_portfolios"
        )
        raise ValueError(
            f"n_portfolios: {n_port} portfolios x {size} firms need {need / 2**30:.1f} GiB for "
            f"the results but only {have / 2**30:.1f} GiB of memory is available{hint}"
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


def _as_structures(structures: Structure | Sequence[Structure] | None) -> list[Structure]:
    if structures is None:
        from invlend.structures import default_structures

        return default_structures()
    if isinstance(structures, Structure):
        return [structures]
    out = list(structures)
    for i, s in enumerate(out):
        if not isinstance(s, Structure):
            raise TypeError(f"structures[{i}]: expected an invlend.Structure, got {type(s)!r}")
    return out


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
        Print a progress bar on standard error.
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

    Returns
    -------
    SimulationResult
        A mapping from structure name to :class:`~invlend.results.StructureResult`.
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario)!r}")
    structs = _as_structures(structures)
    check_run(scenario, structs)
    n_portfolios = _check_count("n_portfolios", n_portfolios)
    portfolio_size = _check_count("portfolio_size", portfolio_size)
    sample_paths = _check_count("sample_paths", sample_paths, low=0)
    backend = _check_backend(backend)
    if chunk_firms is None:
        chunk_firms = _CUDA_CHUNK_FIRMS if backend == "cuda" else _DEFAULT_CHUNK_FIRMS
    chunk_firms = _check_count("chunk_firms", chunk_firms)
    n_firms = n_portfolios * portfolio_size
    if n_firms > _MAX_FIRMS and keep == "firms":
        raise ValueError(
            f"n_portfolios * portfolio_size = {n_firms} firms exceeds the limit of {_MAX_FIRMS} "
            "for per-firm results; keep='aggregates' has no such limit"
        )
    if sample_paths > min(n_firms, 100_000):
        raise ValueError(
            f"sample_paths: at most min(firms, 100000) = {min(n_firms, 100_000)}, "
            f"got {sample_paths}"
        )
    if keep not in ("firms", "aggregates"):
        raise ValueError(f"keep: unknown {keep!r}; choices are ['firms', 'aggregates']")
    _check_executor(executor)
    _check_memory(n_portfolios, portfolio_size, len(set(linkage_key(s.linkage) for s in structs)),
                  len(structs), len({s.loan.maturity_years for s in structs}),
                  keep == "firms", scenario.n_years)  # fmt: skip
    root, entropy, spawn_key = resolve_seed(seed)

    groups: dict[tuple[float, float], int] = {}
    group_of = []
    links = []
    for s in structs:
        key = linkage_key(s.linkage)
        if key not in groups:
            groups[key] = len(groups)
            links.append(s.linkage)
        group_of.append(groups[key])
    dt = scenario.dt
    checkpoints = np.unique([round(s.loan.maturity_years / dt) for s in structs]).astype(np.int64)
    spec = _Spec(
        seed_key=int(_root_key(root)),
        portfolio_size=portfolio_size,
        n_steps=scenario.n_steps,
        dt=dt,
        backend=backend,
        dynamics=tuple(lower_dynamics(scenario, lk, checkpoints) for lk in links),
        terms=tuple(lower_structure(scenario, s, checkpoints) for s in structs),
        group_of=tuple(group_of),
        n_checkpoints=len(checkpoints),
        sample_paths=sample_paths,
        keep_firms=keep == "firms",
        n_years=scenario.n_years,
        regime=None
        if scenario.cycle is None
        else (scenario.cycle.initial_cold, *scenario.cycle.transition(dt)),
    )
    out = _allocate(spec, n_portfolios, firms=spec.keep_firms)
    chunk = max(1, chunk_firms // portfolio_size)
    ranges = [(p0, min(p0 + chunk, n_portfolios)) for p0 in range(0, n_portfolios, chunk)]
    bar = _Progress(len(ranges)) if progress else None
    if executor is None:
        for p0, p1 in ranges:
            _run_range(spec, p0, p1, _views(out, p0, p1))
            if bar:
                bar.update()
    else:
        futures = []
        try:
            for p0, p1 in ranges:
                futures.append((p0, p1, _submit(executor, spec, p0, p1)))
            for p0, p1, fut in futures:
                _merge(out, _result(fut, p0, p1), p0, p1, portfolio_size)
                if bar:
                    bar.update()
        except BaseException:
            _cancel(fut for _, _, fut in futures)  # no work left running for a failed call
            raise
    if bar:
        bar.close()

    from invlend.results import SimulationResult

    return SimulationResult._build(
        scenario=scenario,
        structures=structs,
        group_of=group_of,
        arrays=out,
        n_portfolios=n_portfolios,
        portfolio_size=portfolio_size,
        seed=entropy,
        seed_spawn_key=spawn_key,
        backend=backend,
        keep=keep,
        versions=_versions(backend),
    )


# Output layout: per dynamics group "g{i}.<name>", per structure "s{i}.<name>"; the funding
# regime is the same for every group: "cold_share" is each portfolio's share of steps in the
# cold state.
_OUTCOME_FIELDS = {
    "event": np.int8,
    "step": np.int32,
    "value": np.float64,
    "stage0": np.int8,
    "stage": np.int8,
    "rounds": np.int16,
    "dilution": np.float64,
    "v0": np.float64,
    "quality": np.float64,
    "signal": np.float64,
    "regime": np.int8,
}
_FIRM_FIELDS = {
    "npv": np.float64,
    "principal": np.float64,
    "default": np.int8,
    "loss": np.float64,
    "upside": np.float64,
}


# What keep="aggregates" keeps: arrays per portfolio (and the sample paths).
_PORTFOLIO_SUFFIXES = (".agg", ".irr", ".pool_claims", ".pool_paid", ".paths")
_PORTFOLIO_KEYS = ("cold_share",)


class Layout(NamedTuple):
    """The sizes that fix a result's arrays (see :func:`layout`)."""

    n_groups: int
    n_structures: int
    portfolio_size: int
    n_checkpoints: int
    n_steps: int
    n_years: int
    sample_paths: int | None  # None: not known (a saved file does not record it)


def layout(sizes: Layout, n_port: int, firms: bool = True) -> dict[str, tuple[tuple, np.dtype]]:
    """Name -> (shape, dtype) of every output array for ``n_port`` portfolios.

    Per-firm arrays only when ``firms``. The one description of a result's arrays: the engine
    allocates from it and :func:`invlend.store.load` checks a saved file against it.
    """
    size, f8 = sizes.portfolio_size, np.dtype(np.float64)
    out: dict[str, tuple[tuple, np.dtype]] = {}
    for g in range(sizes.n_groups):
        if firms:
            for name, dtype in _OUTCOME_FIELDS.items():
                out[f"g{g}.{name}"] = ((n_port, size), np.dtype(dtype))
            out[f"g{g}.chk"] = ((n_port, size, sizes.n_checkpoints), f8)
        out[f"g{g}.paths"] = ((sizes.sample_paths, sizes.n_steps + 1), f8)
    for s in range(sizes.n_structures):
        if firms:
            for name, dtype in _FIRM_FIELDS.items():
                out[f"s{s}.{name}"] = ((n_port, size), np.dtype(dtype))
        out[f"s{s}.agg"] = ((n_port, K.N_AGG), f8)
        out[f"s{s}.irr"] = ((n_port,), f8)
        out[f"s{s}.pool_claims"] = ((n_port, sizes.n_years), f8)
        out[f"s{s}.pool_paid"] = ((n_port, sizes.n_years), f8)
    out["cold_share"] = ((n_port,), f8)
    return out


def _allocate(spec: _Spec, n_port: int, firms: bool = True) -> dict[str, np.ndarray]:
    """Output arrays for ``n_port`` portfolios; per-firm ones only when ``firms``."""
    sizes = Layout(len(spec.dynamics), len(spec.terms), spec.portfolio_size, spec.n_checkpoints,
                   spec.n_steps, spec.n_years, spec.sample_paths)  # fmt: skip
    return {k: np.empty(shape, dtype) for k, (shape, dtype) in layout(sizes, n_port, firms).items()}


def _views(out: dict[str, np.ndarray], p0: int, p1: int) -> dict[str, np.ndarray]:
    return {k: (v if k.endswith(".paths") else v[p0:p1]) for k, v in out.items()}


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
        shape = buffer.shape if k.endswith(".paths") else (p1 - p0, *buffer.shape[1:])
        if v.shape != shape:
            raise ValueError(f"{where} has {k} of shape {v.shape}, expected {shape}")


def _merge(out: dict[str, np.ndarray], part: Any, p0: int, p1: int, size: int) -> None:
    """Copy a part returned by an executor into ``out``, after :func:`_check_part`."""
    _check_part(out, part, p0, p1)
    for k, v in part.items():
        if k.endswith(".paths"):
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
        return _run_range_locked(spec, p0, p1, out)


def _run_range_locked(
    spec: _Spec, p0: int, p1: int, out: dict[str, np.ndarray] | None
) -> dict[str, np.ndarray] | None:
    ret = out is None
    if out is None:
        out = _views(_allocate(spec, p1 - p0, firms=spec.keep_firms), 0, p1 - p0)
    if spec.backend == "cuda":  # per-firm arrays live on the device
        from invlend import _cuda

        _cuda.run_range(spec, p0, p1, out, _OUTCOME_FIELDS, _FIRM_FIELDS)
        return out if ret else None
    if not spec.keep_firms:  # per-firm arrays live only while this range is computed
        out = {**_allocate(spec, p1 - p0), **out}
    size = spec.portfolio_size
    n = (p1 - p0) * size
    pkeys = portfolio_keys(np.uint64(spec.seed_key), np.arange(p0, p1))
    ctr = counter_table(spec.n_steps)
    market = market_shocks(market_keys(pkeys), ctr, spec.n_steps)
    if spec.regime is None:
        regime = np.zeros((p1 - p0, spec.n_steps), np.int8)
    else:
        regime = regime_paths(pkeys, ctr, spec.n_steps, *spec.regime)
    out["cold_share"][:] = regime.mean(axis=1)
    numpy_backend = spec.backend == "numpy"
    simulate_firms = NB.simulate_firms if numpy_backend else K._simulate_firms
    evaluate = NB.evaluate_structure if numpy_backend else K._evaluate_structure
    irr = NB.portfolio_irr if numpy_backend else K._portfolio_irr
    for g, dyn in enumerate(spec.dynamics):
        o = {name: out[f"g{g}.{name}"].reshape(n) for name in _OUTCOME_FIELDS}
        chk = out[f"g{g}.chk"].reshape(n, spec.n_checkpoints)
        simulate_firms(
            ctr, pkeys, market, regime, size, p0 * size, *dyn,
            o["event"], o["step"], o["value"], o["stage0"], o["stage"], o["rounds"],
            o["dilution"], o["v0"], o["quality"], o["signal"], o["regime"], chk,
            out[f"g{g}.paths"],
        )  # fmt: skip
        for s, terms in enumerate(spec.terms):
            if spec.group_of[s] != g:
                continue
            f = {name: out[f"s{s}.{name}"].reshape(n) for name in _FIRM_FIELDS}
            cf = np.empty((p1 - p0, spec.n_steps + 1))
            work = np.empty((p1 - p0, spec.n_steps + 2))
            evaluate(
                o["event"], o["step"], o["value"], o["v0"], o["quality"], o["signal"],
                o["dilution"], o["regime"], chk, size, *terms,
                f["npv"], f["principal"], f["default"], f["loss"], f["upside"],
                out[f"s{s}.agg"], out[f"s{s}.pool_claims"], out[f"s{s}.pool_paid"], cf, work,
            )  # fmt: skip
            irr(cf, spec.dt, out[f"s{s}.irr"])
            # Screening cost alone is not an investment: no loan, no IRR.
            out[f"s{s}.irr"][out[f"s{s}.agg"][:, K.AGG_ACCEPTED] == 0] = np.nan
    if not ret:
        return None
    if spec.keep_firms:
        return out
    return {k: v for k, v in out.items() if k in _PORTFOLIO_KEYS or k.endswith(_PORTFOLIO_SUFFIXES)}


class _Progress:
    """A minimal progress bar on standard error."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.update(0)

    def update(self, n: int = 1) -> None:
        self.done += n
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(
            f"\rsimulating [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
