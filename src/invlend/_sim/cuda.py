"""The ``cuda`` backend: the CPU kernels' own code, compiled for an NVIDIA GPU by numba-cuda.

Overview
--------
There is one copy of the model. :func:`invlend._kernels._simulate_firms` and
:func:`~invlend._kernels._evaluate_structure` are written as a parallel loop,
``for i in prange(n)``, whose body handles one firm (one portfolio). This module compiles the
same Python code objects a second time, for the GPU, with a few of the names they read from
their module replaced (:func:`_retarget`):

* ``prange`` becomes a grid-stride range, so each GPU thread runs the loop body for the firms
  (portfolios) ``cuda.grid(1), cuda.grid(1) + cuda.gridsize(1), ...``: one thread per firm
  for the simulation, one per portfolio for the evaluation, which adds up each portfolio's sums
  in firm order exactly as the CPU kernel does;
* the helpers the kernels call that are compiled for the CPU (``@jit``) become device copies
  of themselves, and ``np.exp`` / ``np.log`` of a scalar in the ziggurat's rare slow path
  (:func:`invlend.rng._normal_bits`) become ``math.exp`` / ``math.log``, which numba-cuda
  compiles (its NumPy support has no ``np.exp``); numba compiles both to the C library's
  ``exp`` and ``log`` on the CPU, so this changes nothing there.

Everything else -- the counter-based draws of :mod:`invlend.rng`, the ziggurat tables (numba
places module-level arrays in the GPU's constant memory), the event test on integer bits --
is the CPU code itself. The portfolio IRR is the one exception: the CPU kernel solves four
rows side by side in scratch arrays it allocates, which device code cannot, so
:func:`_irr_row` solves one row per thread by the same steps; a test pins it to the CPU kernel
bit for bit. The market shocks and the funding regimes of each chunk are drawn on the device
too, by the same functions of their keys.

Agreement with ``cpu``: on a GPU, ``exp``, ``log`` and ``expm1`` come from libdevice (within
an ulp or two of the C library's) and NVVM fuses multiply-adds (numba-cuda offers no switch to
stop it), so values differ from the ``cpu`` backend in their last bits. Events, steps, stages
and regimes are the same unless such a difference decides a comparison: an event threshold or
an event's choice (about 1e-15 per firm-path), or, with a default barrier, a log value within
rounding of the barrier (about 1e-12 per firm-path). The tests and ``benchmarks/bench_gpu.py``
check events for equality and values to :data:`RTOL` of each array's scale.

This module imports ``numba.cuda``; :mod:`invlend.engine` imports it only for
``backend="cuda"``.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
from numba import cuda
from numba.core.registry import CPUDispatcher
from numba.extending import register_jitable

from invlend import _kernels as K
from invlend import rng

__all__ = ["RTOL", "device_name", "run_range"]

#: Relative tolerance of values (log values accumulate one rounding difference per step, ~1e-15
#: over a horizon, which ``exp`` turns into a relative difference; NPVs and IRRs are sums and a
#: root of such values). Absolute differences are judged against the scale of each array.
RTOL = 1e-12

THREADS_FIRMS = 128  # threads per block of the firm simulation (about 100 registers a thread)
THREADS_PORTFOLIOS = 64  # threads per block of the per-portfolio kernels


def _retarget(fn, **replace):
    """A copy of the Python function behind ``fn`` whose module globals ``replace`` overrides.

    The copy shares ``fn``'s code object, so it runs the same statements; only the names in
    ``replace`` resolve to other objects. Raises if the code calls a function compiled for the
    CPU that is not replaced, so that no CPU-only helper reaches the GPU by accident.
    """
    py = getattr(fn, "py_func", fn)
    glb = dict(py.__globals__)
    glb.update(replace)
    for name in py.__code__.co_names:
        if isinstance(glb.get(name), CPUDispatcher):
            raise TypeError(f"{py.__qualname__} calls the CPU function {name}; retarget it too")
    return types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)


# ``np`` for the slow path of the ziggurat: scalar exp and log that numba-cuda compiles.
_NP_SCALAR = types.ModuleType("invlend._cuda.np_scalar")
_NP_SCALAR.exp = math.exp
_NP_SCALAR.log = math.log


@cuda.jit(device=True)
def _grid_stride(n):
    """The calling thread's share of ``range(n)``: ``prange(n)`` inside the GPU kernels."""
    return range(cuda.grid(1), n, cuda.gridsize(1))


_device = cuda.jit(device=True)
_normal_bits = _device(_retarget(rng._normal_bits, np=_NP_SCALAR))
_normal = _device(_retarget(K._normal, _normal_bits=_normal_bits))
_unit_threshold = _device(_retarget(K._unit_threshold))
_stage_params = _device(_retarget(K._stage_params, _unit_threshold=_unit_threshold))

#: :func:`invlend._kernels._simulate_firms` on the GPU: one thread per firm, same arguments.
simulate_firms = cuda.jit(
    _retarget(K._simulate_firms, prange=_grid_stride, _normal=_normal, _stage_params=_stage_params)
)
#: :func:`invlend._kernels._evaluate_structure` on the GPU: one thread per portfolio.
evaluate_structure = cuda.jit(_retarget(K._evaluate_structure, prange=_grid_stride))


@register_jitable(error_model="numpy")
def _pv_row(cf, p, top, y):
    """PV and d PV / dy of row ``p`` of ``cf`` at ``y``.

    The Horner scheme of :func:`invlend._kernels._pv_lanes` for one lane; steps above ``top``
    hold no cash flow.
    """
    a = 0.0
    s = 0.0
    for k in range(top, -1, -1):
        s = s * y + a
        a = a * y + cf[p, k]
    return a, s


@register_jitable(error_model="numpy")
def _irr_row(cf, p, dt, y_lo, y_hi):
    """IRR of row ``p`` of ``cf``: :func:`invlend._kernels._portfolio_irr` for a single row.

    Each lane of the CPU kernel goes through exactly these steps for its row: the PV at the
    bracket's ends ``y_lo = exp(-8 dt)`` and ``y_hi = exp(8 dt)`` (passed in, computed on the
    host), then at most 200 safeguarded Newton steps from ``y = 1``. Evaluating the polynomial
    from the row's own last cash flow instead of the lanes' common one adds only zeros first,
    which leaves every sum unchanged, so on the CPU the result is the same bit for bit.
    """
    n_k = cf.shape[1]
    inflow = 0.0
    outflow = 0.0
    top = 0
    for k in range(n_k):
        c = cf[p, k]
        if c > 0.0:
            inflow += c
        else:
            outflow -= c
        if c != 0.0:
            top = k
    if outflow == 0.0:
        return np.nan
    if inflow == 0.0:
        return -1.0
    f_a, _ = _pv_row(cf, p, top, y_lo)
    f_b, _ = _pv_row(cf, p, top, y_hi)
    if f_a * f_b > 0.0:
        return np.nan
    a = y_lo
    b = y_hi
    y = 1.0
    for _ in range(200):
        f, d = _pv_row(cf, p, top, y)
        if f == 0.0:
            break
        y_old = y
        if (f > 0.0) == (f_a > 0.0):
            a = y_old
            f_a = f
        else:
            b = y_old
        y_new = y_old - f / d if d != 0.0 else 0.5 * (a + b)
        if not (a < y_new < b):
            y_new = 0.5 * (a + b)
        y = y_new
        if abs(y_new - y_old) <= 1e-15 * y_old:
            break
    return math.expm1(-math.log(y) / dt)


@cuda.jit
def _portfolio_irr(cf, dt, y_lo, y_hi, out):
    """IRR of each row of ``cf`` (n_port, n_steps + 1) into ``out``: one thread per row."""
    for p in _grid_stride(cf.shape[0]):
        out[p] = _irr_row(cf, p, dt, y_lo, y_hi)


_P_MARKET = int(rng.Purpose.MARKET)
_P_REGIME = int(rng.Purpose.REGIME)


@cuda.jit
def _market_shocks(pkeys, ctr, out):
    """:func:`invlend.rng.market_shocks` of the portfolios ``pkeys`` into ``out``.

    ``out`` is (n_port, n_steps); one thread per draw, the same normal of the same key.
    """
    n_steps = out.shape[1]
    for t in _grid_stride(out.shape[0] * n_steps):
        p = t // n_steps
        j = t - p * n_steps
        mkey = rng.mix64(pkeys[p] ^ rng.MARKET_SALT)
        out[p, j] = _normal_bits(rng.mix64(mkey ^ ctr[_P_MARKET, j]))


@cuda.jit
def _regime_paths(pkeys, ctr, has_cycle, p_cold0, p_hc, p_ch, out, out_cold_share):
    """:func:`invlend.rng.regime_paths` into ``out`` and the share of cold steps.

    ``out`` is (n_port, n_steps), all 0 without a cycle; ``out_cold_share`` gets
    ``regime.mean(axis=1)``. One thread per portfolio, stepping its chain.
    """
    n_steps = out.shape[1]
    for p in _grid_stride(out.shape[0]):
        key = rng.mix64(pkeys[p] ^ rng.REGIME_SALT)
        cold = False
        n_cold = 0
        for j in range(n_steps):
            if has_cycle:
                u = rng.to_unit(rng.mix64(key ^ ctr[_P_REGIME, j]))
                if j == 0:
                    cold = u < p_cold0
                elif cold:
                    cold = not (u < p_ch)
                else:
                    cold = u < p_hc
            out[p, j] = 1 if cold else 0
            n_cold += 1 if cold else 0
        out_cold_share[p] = n_cold / n_steps


def _blocks(n: int, threads: int) -> int:
    """Blocks for ``n`` work items at ``threads`` per block: one item per thread."""
    return max(1, min(-(-n // threads), 2**31 - 1))


def _to_device(values):
    """Arrays of a lowered tuple on the device; scalars as they are."""
    return tuple(cuda.to_device(v) if isinstance(v, np.ndarray) else v for v in values)


def device_name() -> str:
    """Name of the current CUDA device (``"simulator"`` under numba's CUDA simulator)."""
    from numba.core import config

    if config.ENABLE_CUDASIM:
        return "simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


# Per-firm outputs of the simulation, in the kernel's order, and of an evaluation.
_OUTCOMES = ("event", "step", "value", "stage0", "stage", "rounds", "dilution", "v0",
             "quality", "signal", "regime")  # fmt: skip
_FIRM = ("npv", "principal", "default", "loss", "upside")


def run_range(spec, p0: int, p1: int, out: dict, outcome_dtypes: dict, firm_dtypes: dict):
    """Simulate and evaluate portfolios ``[p0, p1)`` on the GPU into what ``out`` holds.

    ``spec`` is the engine's ``_Spec``; ``out`` is filled as the CPU path of
    :mod:`invlend.engine` fills it.

    Inputs go to the device once; the per-firm outcomes of each dynamics group stay there for
    the evaluations of its structures, and only the arrays ``out`` keeps come back: per-firm
    ones when ``spec.keep_firms``, else the per-portfolio totals, IRRs, pool tables and paths.
    """
    with warnings.catch_warnings():
        # A small run launches few blocks, which numba-cuda warns about; nothing to act on.
        warnings.filterwarnings("ignore", message="Grid size .* low occupancy")
        _run_range(spec, p0, p1, out, outcome_dtypes, firm_dtypes)


def _run_range(spec, p0, p1, out, outcome_dtypes, firm_dtypes):
    size = spec.portfolio_size
    n_port = p1 - p0
    n = n_port * size
    n_steps = spec.n_steps
    pkeys = cuda.to_device(rng.portfolio_keys(np.uint64(spec.seed_key), np.arange(p0, p1)))
    ctr = cuda.to_device(rng.counter_table(n_steps))
    blocks_p = _blocks(n_port, THREADS_PORTFOLIOS)
    market = cuda.device_array((n_port, n_steps))
    _market_shocks[_blocks(n_port * n_steps, THREADS_PORTFOLIOS), THREADS_PORTFOLIOS](
        pkeys, ctr, market
    )
    regime = cuda.device_array((n_port, n_steps), np.int8)
    cold_share = cuda.device_array(n_port)
    has_cycle = spec.regime is not None
    p_cold0, p_hc, p_ch = spec.regime if has_cycle else (0.0, 0.0, 0.0)
    _regime_paths[blocks_p, THREADS_PORTFOLIOS](
        pkeys, ctr, has_cycle, p_cold0, p_hc, p_ch, regime, cold_share
    )
    cold_share.copy_to_host(out["cold_share"])
    y_lo = math.exp(-8.0 * spec.dt)  # the CPU kernel's bracket, from the same exp
    y_hi = math.exp(8.0 * spec.dt)
    for g, dyn in enumerate(spec.dynamics):
        o = {name: cuda.device_array(n, outcome_dtypes[name]) for name in _OUTCOMES}
        chk = cuda.device_array((n, spec.n_checkpoints))
        host_paths = out[f"g{g}.paths"]
        n_paths = host_paths.shape[0]
        paths = cuda.device_array(host_paths.shape)
        simulate_firms[_blocks(n, THREADS_FIRMS), THREADS_FIRMS](
            ctr, pkeys, market, regime, size, p0 * size, *_to_device(dyn),
            *(o[name] for name in _OUTCOMES), chk, paths,
        )  # fmt: skip
        if spec.keep_firms:
            for name in _OUTCOMES:
                o[name].copy_to_host(out[f"g{g}.{name}"].reshape(n))
            chk.copy_to_host(out[f"g{g}.chk"].reshape(n, spec.n_checkpoints))
        lo, hi = min(p0 * size, n_paths), min(p1 * size, n_paths)
        if hi > lo:  # rows of the sample paths that firms of this range fill
            host_paths[lo:hi] = paths[lo:hi].copy_to_host()
        for s, terms in enumerate(spec.terms):
            if spec.group_of[s] != g:
                continue
            f = {name: cuda.device_array(n, firm_dtypes[name]) for name in _FIRM}
            agg = cuda.device_array((n_port, K.N_AGG))
            claims = cuda.device_array((n_port, spec.n_years))
            paid = cuda.device_array((n_port, spec.n_years))
            cf = cuda.device_array((n_port, n_steps + 1))
            work = cuda.device_array((n_port, n_steps + 2))
            evaluate_structure[blocks_p, THREADS_PORTFOLIOS](
                o["event"], o["step"], o["value"], o["v0"], o["quality"], o["signal"],
                o["dilution"], o["regime"], chk, size, *_to_device(terms),
                *(f[name] for name in _FIRM), agg, claims, paid, cf, work,
            )  # fmt: skip
            irr = cuda.device_array(n_port)
            _portfolio_irr[blocks_p, THREADS_PORTFOLIOS](cf, spec.dt, y_lo, y_hi, irr)
            if spec.keep_firms:
                for name in _FIRM:
                    f[name].copy_to_host(out[f"s{s}.{name}"].reshape(n))
            agg.copy_to_host(out[f"s{s}.agg"])
            claims.copy_to_host(out[f"s{s}.pool_claims"])
            paid.copy_to_host(out[f"s{s}.pool_paid"])
            irr.copy_to_host(out[f"s{s}.irr"])
            # Screening cost alone is not an investment: no loan, no IRR.
            out[f"s{s}.irr"][out[f"s{s}.agg"][:, K.AGG_ACCEPTED] == 0] = np.nan
