"""The ``cuda`` backend: the CPU kernels' own code, compiled for an NVIDIA GPU by numba-cuda.

Overview
--------
There is one copy of the model. :func:`invlend._sim.cpu._simulate_firms` and
:func:`~invlend._sim.cpu._evaluate_structure` are written as a parallel loop,
``for i in prange(n)``, whose body handles one firm (one portfolio). This module compiles the
same Python code objects a second time, for the GPU, with a few of the names they read from
their module replaced (:func:`_retarget`):

* ``prange`` becomes a grid-stride range, so each GPU thread runs the loop body for the firms
  (portfolios) ``cuda.grid(1), cuda.grid(1) + cuda.gridsize(1), ...``: one thread per firm
  for the simulation, one per portfolio for the evaluation, which adds up each portfolio's sums
  in firm order exactly as the CPU kernel does;
* the helpers the kernels call that are compiled for the CPU (``@jit``) become device copies
  of themselves, and ``np.exp`` / ``np.log`` of a scalar in the ziggurat's rare slow path
  (:func:`invlend.rng.normal_bits`) become ``math.exp`` / ``math.log``, which numba-cuda
  compiles (its NumPy support has no ``np.exp``); numba compiles both to the C library's
  ``exp`` and ``log`` on the CPU, so this changes nothing there.

Everything else -- the counter-based draws of :mod:`invlend.rng`, the ziggurat tables (numba
places module-level arrays in the GPU's constant memory), the event clock --
is the CPU code itself. The portfolio IRR takes the steps of :mod:`invlend._sim.irr`, as the
CPU kernel does: that kernel solves four rows side by side in scratch arrays it allocates, which
device code cannot, so here :func:`invlend._sim.irr.irr_row` solves one row per thread; a test
pins the two to each other bit for bit. The market shocks and the funding regimes of each chunk
are drawn on the device too, by the same functions of their keys.

The loop over linkage groups and structures is the engine's (:mod:`invlend.engine`); the
:class:`CUDA` backend gives it device memory (:meth:`CUDA.buffer`), moves the lowered inputs
once per range (:meth:`CUDA.inputs`) and copies back only what the result keeps
(:meth:`CUDA.fetch`): the per-firm outcomes of each linkage group stay on the device for the
evaluations of its structures.

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

import contextlib
import math
import types
import warnings

import numpy as np
from numba import cuda
from numba.core.registry import CPUDispatcher

from invlend import rng
from invlend._sim import cpu as K
from invlend._sim import irr as I
from invlend._sim.backend import Backend, Draws

__all__ = ["BACKEND", "RTOL", "device_name"]

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
_normal_bits = _device(_retarget(rng.normal_bits, np=_NP_SCALAR))
_normal = _device(_retarget(K.PORTABLE["_normal"], _normal_bits=_normal_bits))
_exponential = _device(_retarget(K.PORTABLE["_exponential"]))
_compensator = _device(_retarget(K.PORTABLE["_compensator"]))
_stage_params = _device(_retarget(K.PORTABLE["_stage_params"], _compensator=_compensator))

#: :func:`invlend._sim.cpu._simulate_firms` on the GPU: one thread per firm, same arguments.
simulate_firms = cuda.jit(
    _retarget(
        K.PORTABLE["_simulate_firms"],
        prange=_grid_stride,
        _normal=_normal,
        _exponential=_exponential,
        _stage_params=_stage_params,
    )
)
#: :func:`invlend._sim.cpu._evaluate_structure` on the GPU: one thread per portfolio.
_recovery = _device(_retarget(K.PORTABLE["_recovery"]))
_expected_call = _device(_retarget(K.PORTABLE["_expected_call"]))
_continuation = _device(_retarget(K.PORTABLE["_continuation"], _expected_call=_expected_call))
evaluate_structure = cuda.jit(
    _retarget(
        K.PORTABLE["_evaluate_structure"],
        prange=_grid_stride,
        _recovery=_recovery,
        _continuation=_continuation,
    )
)


@cuda.jit
def _portfolio_irr(cf, dt, y_lo, y_hi, out):
    """IRR of each row of ``cf`` (n_port, n_steps + 1) into ``out``: one thread per row."""
    for p in _grid_stride(cf.shape[0]):
        out[p] = I.irr_row(cf, p, dt, y_lo, y_hi)


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


def device_name() -> str:
    """Name of the current CUDA device (``"simulator"`` under numba's CUDA simulator)."""
    from numba.core import config

    if config.ENABLE_CUDASIM:
        return "simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


class CUDA(Backend):
    """The kernels on an NVIDIA GPU: buffers in device memory, results copied back."""

    @contextlib.contextmanager
    def running(self):
        """Silence numba-cuda's low-occupancy warning: a small run launches few blocks."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Grid size .* low occupancy")
            yield

    def draws(self, seed_key, p0, p1, n_steps, regime, portfolio_size=1, tilt=None):
        n_port = p1 - p0
        if tilt is not None:
            # Tilted draws are made on the host (one pass over the portfolios' steps, small
            # next to the firms' paths) by the same function as the other backends'.
            d, cold_share, log_w = super().draws(seed_key, p0, p1, n_steps, regime,
                                                 portfolio_size, tilt)  # fmt: skip
            moved = Draws(*(cuda.to_device(np.ascontiguousarray(a)) for a in d))
            return moved, cuda.to_device(cold_share), log_w
        pkeys = cuda.to_device(rng.portfolio_keys(np.uint64(seed_key), np.arange(p0, p1)))
        ctr = cuda.to_device(rng.counter_table(n_steps))
        market = cuda.device_array((n_port, n_steps))
        _market_shocks[_blocks(n_port * n_steps, THREADS_PORTFOLIOS), THREADS_PORTFOLIOS](
            pkeys, ctr, market
        )
        paths = cuda.device_array((n_port, n_steps), np.int8)
        cold_share = cuda.device_array(n_port)
        has_cycle = regime is not None
        p_cold0, p_hc, p_ch = regime if has_cycle else (0.0, 0.0, 0.0)
        _regime_paths[_blocks(n_port, THREADS_PORTFOLIOS), THREADS_PORTFOLIOS](
            pkeys, ctr, has_cycle, p_cold0, p_hc, p_ch, paths, cold_share
        )
        shift = cuda.to_device(np.zeros(n_port))
        return Draws(ctr, pkeys, market, paths, shift), cold_share, np.zeros(n_port)

    def synchronize(self):
        """Wait for the GPU (for timing: a copy to the host waits anyway)."""
        cuda.synchronize()

    def buffer(self, shape, dtype, host=None):
        return cuda.device_array(shape, dtype)

    def inputs(self, lowered):
        """The tuple with its arrays on the device (scalars as they are), of the same type."""
        moved = (cuda.to_device(v) if isinstance(v, np.ndarray) else v for v in lowered)
        return type(lowered)(*moved)

    def fetch(self, array, host, rows=None):
        if host is None:
            return
        if rows is None:
            array.copy_to_host(host)
        elif rows.stop > rows.start:
            host[rows] = array[rows].copy_to_host()

    def simulate_firms(self, draws, portfolio_size, path_start, dyn, outcomes, chk, paths):
        n = outcomes[0].shape[0]
        simulate_firms[_blocks(n, THREADS_FIRMS), THREADS_FIRMS](
            draws, portfolio_size, path_start, dyn, *outcomes, chk, paths
        )

    def evaluate_structure(self, firms, chk, portfolio_size, terms, per_firm, agg, claims, paid,
                           cf, work):  # fmt: skip
        blocks = _blocks(agg.shape[0], THREADS_PORTFOLIOS)
        evaluate_structure[blocks, THREADS_PORTFOLIOS](
            firms, chk, portfolio_size, terms, *per_firm, agg, claims, paid, cf, work
        )

    def portfolio_irr(self, cf, dt, out):
        # The CPU kernel's bracket, from the same exp on the host.
        y_lo = math.exp(-I.BRACKET * dt)
        y_hi = math.exp(I.BRACKET * dt)
        blocks = _blocks(cf.shape[0], THREADS_PORTFOLIOS)
        _portfolio_irr[blocks, THREADS_PORTFOLIOS](cf, dt, y_lo, y_hi, out)


BACKEND = CUDA("cuda")
