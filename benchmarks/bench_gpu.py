"""GPU benchmark of the ``cuda`` backend: live firm-steps per second, one command.

Usage on a machine with an NVIDIA GPU and ``invlend[cuda]`` (or numba-cuda) installed::

    python benchmarks/bench_gpu.py --out docs/performance_gpu.md   # about 3 minutes on an H200
    python benchmarks/bench_gpu.py --quick                         # about 1 minute

What it does, in order, on the built-in scenario (five stages, monthly, five years) with the
three default structures, 100 firms per portfolio:

1. **Check.** Runs ``invlend.simulate`` with ``backend="cuda"`` and ``backend="cpu"`` on a
   sample (the default scenario, and one with jumps, a barrier, a funding cycle, a risk pool
   and screening) and stops unless events, steps, stages and regimes are identical and every
   value agrees to ``invlend._sim.cuda.RTOL``: a benchmark never reports a wrong kernel's speed.
2. **GPU, kernel only.** For 1M, 4M, 16M and 64M firm-paths: the firm-simulation kernel
   alone on inputs already on the device (best of ``--repeat``), and the evaluation of the
   three structures with their portfolio IRRs.
3. **GPU, end to end.** ``invlend.simulate(..., backend="cuda", keep="aggregates")``: lowering,
   drawing the market on the device, simulating both linkages, evaluating, copying back.
4. **cpu on the same machine.** The same two measurements with the ``cpu`` backend (numba on
   every core) at smaller sizes; rates are per second, so they compare across sizes.
5. **Vectorised CuPy twin**, where CuPy is installed: the same model written as plain array
   code over all firms each step (a mask marks the live ones), with the same counter-based
   hash, ziggurat, cumulative-hazard event clock and funding regimes, so its events are
   checked against the kernel's too.

A *live firm-step* is one time step of a firm that has not yet had its event: every rate
divides the same model's work by the time taken. Targets (issue 8, H100/H200): >= 30G live
firm-steps/s for the kernel, and >= 2x the vectorised version.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
try:
    import invlend as il
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))
    import invlend as il

from invlend import rng  # noqa: E402
from invlend._sim import layout as L  # noqa: E402
from invlend._sim.lowering import checkpoint_table, lower_dynamics, lower_structure  # noqa: E402
from invlend.engine import resolve_seed  # noqa: E402

SIZE = 100  # firms per portfolio
SEED = 1
SIZES = (1 << 20, 1 << 22, 1 << 24, 1 << 26)  # 1M, 4M, 16M, 64M firm-paths
QUICK_SIZES = (1 << 20, 1 << 22)
TARGET_RATE = 30e9
TARGET_VS_VECTORISED = 2.0


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _firms(n: int) -> str:
    return f"{n / 2**20:.0f}M" if n >= 2**20 else f"{n:,}"


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def machine_info(cuda) -> dict:
    """GPU model, driver and CUDA versions, package versions."""
    from invlend._sim import cuda as _cuda

    info = {
        "gpu": _cuda.device_name(),
        "numba": _version("numba"),
        "numba-cuda": _version("numba-cuda"),
        "numba.cuda": getattr(cuda, "implementation", "?"),
        "numpy": _version("numpy"),
        "cupy": _version("cupy") if _version("cupy") != "not installed" else "",
        "python": platform.python_version(),
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores",
    }
    if not cuda.is_available() or info["gpu"] == "simulator":
        return info
    try:
        drv = cuda.cudadrv.driver.driver.get_version()
        info["driver CUDA version"] = ".".join(map(str, drv))
        info["runtime CUDA version"] = ".".join(map(str, cuda.runtime.get_version()))
    except Exception as exc:  # pragma: no cover - depends on the bindings
        info["driver CUDA version"] = f"unknown ({exc})"
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        info["nvidia-smi"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return info


# --- 1. the check ------------------------------------------------------------------------


def _check_scenarios():
    sc = il.Scenario.default()
    data = sc.model_dump()
    data["market"].update(jump_rate=1.0, jump_mean=-0.05, jump_vol=0.3)
    busy = il.Scenario.model_validate(
        {**data, "default_barrier": 0.4, "cycle": il.FundingCycle(hot_to_cold=1.0).model_dump()}
    )
    extra = il.Structure(
        name="pooled_screened",
        loan=il.Loan(loan_to_value=0.4, maturity_years=3.0),
        risk_pool=il.RiskPool(covered_fraction=0.6, annual_cap=0.02),
        screening=il.Screening(signal_noise=0.3, acceptance_rate=0.4, cost=0.01),
    )
    return [
        ("default", sc, il.default_structures()),
        ("jumps, barrier, cycle, pool, screening", busy, [*il.default_structures(), extra]),
    ]


def check(n_portfolios: int) -> list[str]:
    """cuda against cpu on samples; raises SystemExit on any disagreement."""
    from invlend._sim.cuda import RTOL

    lines = []
    for name, sc, structures in _check_scenarios():
        kw = dict(n_portfolios=n_portfolios, portfolio_size=SIZE, seed=SEED, sample_paths=50)
        cpu = il.simulate(sc, structures, backend="cpu", **kw)
        gpu = il.simulate(sc, structures, backend="cuda", **kw)
        worst = 0.0
        identical = 0
        for key, want in cpu.arrays.items():
            got = gpu.arrays[key]
            if want.dtype.kind in "iub":
                if not np.array_equal(got, want):
                    bad = int((got != want).sum())
                    raise SystemExit(f"check failed: {name}: {key} differs in {bad} places")
            else:
                if not np.array_equal(np.isnan(got), np.isnan(want)):
                    raise SystemExit(f"check failed: {name}: {key} has NaN in other places")
                scale = float(np.nanmax(np.abs(want), initial=0.0)) or 1.0
                err = float(np.nanmax(np.abs(got - want), initial=0.0)) / scale
                worst = max(worst, err)
                if not np.allclose(got, want, rtol=RTOL, atol=RTOL * scale, equal_nan=True):
                    raise SystemExit(f"check failed: {name}: {key} differs by {err:.2e} relative")
            identical += np.array_equal(got, want, equal_nan=True)
        n = n_portfolios * SIZE
        lines.append(
            f"- {name}: {n:,} firm-paths, {len(structures)} structures: events, steps, "
            f"stages and regimes identical; {identical}/{len(cpu.arrays)} arrays bit-identical, "
            f"largest difference {worst:.1e} of an array's scale (tolerance {RTOL:g})"
        )
        print(lines[-1], flush=True)
    return lines


# --- 2. kernels alone ----------------------------------------------------------------------


class Inputs:
    """Lowered inputs of ``n`` firms of the default scenario, as ``simulate(seed=SEED)`` has."""

    def __init__(self, n: int):
        self.sc = sc = il.Scenario.default()
        self.structures = il.default_structures()
        self.n_port = n // SIZE
        self.n = self.n_port * SIZE
        dt = sc.dt
        self.chk = checkpoint_table(sc, self.structures)
        links = [il.Linkage(), self.structures[2].linkage]  # pure/warrant, then vc_linked
        self.dyn = [lower_dynamics(sc, lk, self.chk) for lk in links]
        self.group_of = [0, 0, 1]
        self.terms = [lower_structure(sc, s, self.chk) for s in self.structures]
        seed_key = rng.root_key(resolve_seed(SEED)[0])
        self.pkeys = rng.portfolio_keys(seed_key, np.arange(self.n_port))
        self.ctr = rng.counter_table(sc.n_steps)
        self.n_years = sc.n_years
        cycle = sc.cycle  # (P(start cold), P(hot -> cold), P(cold -> hot)), as the engine's
        self.regime = None if cycle is None else (cycle.initial_cold, *cycle.transition(dt))


class Kernels:
    """One backend's kernels on inputs of one size, through the engine's backend interface."""

    def __init__(self, inp: Inputs, backend):
        self.inp, self.backend = inp, backend
        n, n_port, n_steps = inp.n, inp.n_port, inp.sc.n_steps
        seed_key = int(rng.root_key(resolve_seed(SEED)[0]))
        self.draws, _, _ = backend.draws(seed_key, 0, n_port, n_steps, inp.regime)
        self.market = self.draws.market
        self.paths = backend.buffer((0, n_steps + 1), np.float64)
        self.dyn = [backend.inputs(d) for d in inp.dyn]
        self.terms = [backend.inputs(t) for t in inp.terms]

        def alloc(shape, dtype=np.float64):
            return backend.buffer(shape, dtype)

        self.out = [L.FirmOutcomes(*(alloc(n, f.dtype) for f in L.OUTCOMES)) for _ in inp.dyn]
        self.chk = [alloc((n, inp.chk[0].size)) for _ in inp.dyn]
        self.f = [alloc(n, f.dtype) for f in L.PER_FIRM]
        self.agg = alloc((n_port, L.N_AGG))
        self.pool = [alloc((n_port, inp.n_years)) for _ in range(2)]
        self.cf = alloc((n_port, n_steps + 1))
        self.work = alloc((n_port, n_steps + 2))
        self.irr = alloc(n_port)

    def simulate(self, g: int = 0):
        self.backend.simulate_firms(self.draws, SIZE, 0, self.dyn[g], self.out[g], self.chk[g],
                                    self.paths)  # fmt: skip
        self.backend.synchronize()

    def evaluate(self):
        inp = self.inp
        for s, terms in enumerate(self.terms):
            g = inp.group_of[s]
            self.backend.evaluate_structure(self.out[g], self.chk[g], SIZE, terms, self.f,
                                            self.agg, *self.pool, self.cf, self.work)  # fmt: skip
            self.backend.portfolio_irr(self.cf, inp.sc.dt, self.irr)
        self.backend.synchronize()

    def host(self, g: int, field: str) -> np.ndarray:
        array = getattr(self.out[g], field)
        return array if isinstance(array, np.ndarray) else array.copy_to_host()


def GpuKernels(inp: Inputs) -> Kernels:
    """The cuda kernels on device-resident inputs of one size."""
    from invlend._sim import cuda

    return Kernels(inp, cuda.BACKEND)


def CpuKernels(inp: Inputs) -> Kernels:
    """The cpu kernels on host inputs of one size (the same firms as :func:`GpuKernels`)."""
    from invlend._sim import cpu

    return Kernels(inp, cpu.BACKEND)


def _best(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def kernels(engine_cls, n: int, repeat: int) -> dict:
    """Best times of the simulation (default linkage) and of evaluating the 3 structures."""
    inp = Inputs(n)
    k = engine_cls(inp)
    k.simulate(1)  # the VC partner's linkage: its outcomes for vc_linked, and its live steps
    k.simulate(0)  # warm-up (compiles or loads the kernel at the first size)
    t_sim = _best(k.simulate, repeat)
    k.evaluate()
    t_eval = _best(k.evaluate, repeat)
    live = [int(k.host(g, "step").astype(np.int64).sum()) for g in (0, 1)]
    events = k.host(0, "event")[: min(n, 1 << 20)].copy()
    del k
    return dict(firms=inp.n, live=live[0], live_both=sum(live), t_sim=t_sim, t_eval=t_eval,
                rate=live[0] / t_sim, events=events)  # fmt: skip


def end_to_end(backend: str, n: int, repeat: int, live_both: int) -> dict:
    """``invlend.simulate`` with the default structures, per-portfolio results kept."""
    kw = dict(n_portfolios=n // SIZE, portfolio_size=SIZE, seed=SEED, keep="aggregates")

    def run():
        il.simulate(il.Scenario.default(), backend=backend, **kw)

    t = _best(run, repeat)
    return dict(firms=n, t=t, paths_rate=n / t, rate=live_both / t)


# --- 5. the vectorised twin ------------------------------------------------------------------


def _mix64(xp, z):
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(0x94D049BB133111EB)
    return z ^ (z >> xp.uint64(31))


def _to_unit(xp, b):
    return ((b >> xp.uint64(12)).astype(xp.float64) + 0.5) * 2.0**-52


def _normal_bits(xp, b, zx, zr, zf):
    """``rng.normal_bits_array`` written for any array module ``xp`` (NumPy or CuPy)."""
    gamma = xp.uint64(int(rng.GAMMA))
    i = (b & xp.uint64(0xFF)).astype(xp.int64)
    u = 2.0 * _to_unit(xp, b) - 1.0
    out = u * zx[i]
    slow = xp.flatnonzero(~(xp.abs(u) < zr[i]))
    if slow.size == 0:
        return out
    bs = _mix64(xp, b[slow] + gamma)
    tail = i[slow] == 0
    t = slow[tail]
    if t.size:
        bt = bs[tail]
        res = xp.empty(t.size)
        pend = xp.arange(t.size)
        while pend.size:
            xx = -xp.log(_to_unit(xp, bt[pend])) / rng.ZIGGURAT_R
            b2 = _mix64(xp, bt[pend] + gamma)
            yy = -xp.log(_to_unit(xp, b2))
            bt[pend] = _mix64(xp, b2 + gamma)
            ok = 2.0 * yy >= xx * xx
            acc = pend[ok]
            res[acc] = xp.where(
                u[t[acc]] > 0.0, rng.ZIGGURAT_R + xx[ok], -(rng.ZIGGURAT_R + xx[ok])
            )
            pend = pend[~ok]
        out[t] = res
    w = slow[~tail]
    if w.size:
        bw = bs[~tail]
        iw = i[w]
        xw = out[w]
        ok = zf[iw + 1] + _to_unit(xp, bw) * (zf[iw] - zf[iw + 1]) < xp.exp(-0.5 * xw * xw)
        rej = ~ok
        if bool(rej.any()):
            out[w[rej]] = _normal_bits(xp, _mix64(xp, bw[rej] + gamma), zx, zr, zf)
    return out


def shared_draws(xp, inp: Inputs):
    """The market normals and funding regimes of ``inp``'s portfolios, as the engine draws them.

    Returns ``(market, regime)``, each (n_port, n_steps) on ``xp``: float64 normals and int8
    regimes (0 hot, 1 cold; all 0 without a cycle), from :mod:`invlend.rng` on the host.
    """
    n_steps = inp.sc.n_steps
    market = rng.market_shocks(rng.market_keys(inp.pkeys), inp.ctr, n_steps)
    if inp.regime is None:
        regime = np.zeros((inp.n_port, n_steps), np.int8)
    else:
        regime = rng.regime_paths(inp.pkeys, inp.ctr, n_steps, *inp.regime)
    return xp.asarray(market), xp.asarray(regime)


def vectorised_simulate(xp, inp: Inputs, market, regime):
    """The firm simulation of the default scenario as plain array code over all firms.

    ``market`` and ``regime`` are (n_port, n_steps) on ``xp``, as :func:`shared_draws` gives
    them. Each step draws the growth of every firm and updates the live ones through masks;
    the steps with an event (a slot's cumulative hazard past its unit exponential clock), the
    funding rounds and the regime changes are handled on the few firms they concern, whose
    stage constants are recomputed. Same hash, ziggurat, event clock and order of
    floating-point operations as :func:`invlend._sim.cpu._simulate_firms`, so the events are
    the kernel's; it keeps what the kernel keeps (stage, rounds, dilution, regime, appraisal,
    the IFRS 9 stage-2 flag, the values at the loan maturities). Only the features of the
    default scenario (value-dependent default, runways, funding cycle; no jumps or barrier).
    Returns (event, step, value), each (n_firms,).
    """
    d = inp.dyn[0]
    if d.jump_rate > 0 or d.log_barrier > -math.inf:
        raise ValueError("the vectorised twin covers the default scenario only")
    u8 = xp.uint64
    zx, zr, zf = (xp.asarray(a) for a in (rng.ZIGGURAT_X, rng.ZIGGURAT_RATIO, rng.ZIGGURAT_F))
    ctr = inp.ctr  # host words, passed as scalars
    n, size, n_steps, dt = inp.n, SIZE, d.n_steps, d.dt
    pk = xp.asarray(inp.pkeys)
    salt = _mix64(xp, xp.arange(size, dtype=u8) * u8(int(rng.GAMMA)) + u8(int(rng.FIRM_SALT)))
    fk = _mix64(xp, pk[:, None] ^ salt[None, :]).ravel()
    pidx = xp.repeat(xp.arange(inp.n_port), size)

    def bits(keys, purpose, j):
        return _mix64(xp, keys ^ u8(int(ctr[purpose, j])))

    def normal(purpose, j):
        return _normal_bits(xp, bits(fk, purpose, j), zx, zr, zf)

    def exponential(keys, j):  # _sim.cpu._exponential
        return -xp.log(_to_unit(xp, bits(keys, rng.Purpose.CLOCK, j)))

    u_stage = _to_unit(xp, bits(fk, rng.Purpose.STAGE, 0))
    s = xp.searchsorted(xp.asarray(d.weight_cdf[:-1]), u_stage, side="right")
    z_value = normal(rng.Purpose.VALUE, 0)
    q = normal(rng.Purpose.QUALITY, 0)
    signal = normal(rng.Purpose.SIGNAL, 0)
    logv = xp.asarray(d.log_value)[s] + d.value_dispersion * z_value
    v0 = xp.exp(logv)
    appraisal = normal(rng.Purpose.APPRAISAL, 0)
    hazard_scale = xp.exp(-d.quality_hazard * q)
    drift, vol, hd, hi, hm, ha, log_round, dilution, runway_steps, scale = (
        xp.asarray(a) for a in (d.drift, d.volatility, d.default_hazard, d.ipo_hazard,
                                d.ma_hazard, d.advance_hazard, d.log_round, d.dilution,
                                d.runway_steps, d.regime_scale)
    )  # fmt: skip
    sq_dt = math.sqrt(dt)

    def stage_params(f, s, r):
        """_sim.cpu._stage_params for the firms ``f`` in stages ``s`` and regimes ``r``."""
        sig = vol[s]
        mu_dt = (drift[s] + d.quality_drift * q[f] - 0.5 * sig * sig - d.jump_compensator) * dt
        ld = hd[s] * hazard_scale[f] * scale[r, 0]
        li, lm, la = hi[s] * scale[r, 1], hm[s] * scale[r, 1], ha[s] * scale[r, 2]
        last = xp.where(la > 0, 4, xp.where(lm > 0, 3, xp.where(li > 0, 2, 1)))
        return mu_dt, sig * sq_dt, ld, li, lm, li + lm + la, last

    def restage(f):  # new stage constants for the firms f, in place
        for arr, new in zip(params, stage_params(f, s[f], cur[f]), strict=True):
            arr[f] = new

    has_cycle = d.regime_scale.shape[0] > 1
    cur = regime[pidx, 0].astype(xp.int64) if has_cycle else xp.zeros(n, xp.int64)
    params = list(stage_params(xp.arange(n), s, cur))  # mu_dt, sig_sqdt, ld, li, lm, other, last
    ld_origin = params[2].copy()
    beta, mult = d.value_elasticity, d.runway_multiplier
    log_ref = logv.copy()  # log value just after the last round (entry before any)
    k_round = xp.zeros(n, xp.int64)  # step of the last round (0: entry)
    runway = runway_steps[s]
    clock = exponential(fk, 0)
    hazard = xp.zeros(n)  # each slot's cumulative hazard
    idio = math.sqrt(1.0 - d.factor_loading**2)
    alive = xp.ones(n, bool)
    event = xp.zeros(n, xp.int8)
    step = xp.full(n, n_steps, xp.int32)
    rounds = xp.zeros(n, xp.int16)
    dil = xp.ones(n)
    stage2 = xp.zeros(n, xp.int8)
    chk_steps = [int(c) for c in d.checkpoints]
    chk = xp.full((n, len(chk_steps)), xp.nan)
    for k in range(1, n_steps + 1):
        j = k - 1
        if has_cycle:
            now = regime[pidx, j]
            moved = xp.flatnonzero(alive & (now != cur))
            if moved.size:
                cur[moved] = now[moved]
                restage(moved)
        mu_dt, sig_sqdt, ld, li, lm, other, last = params
        # The step's intensities at its start (as the kernels read them), then its growth.
        ldk = ld
        if beta != 0.0:
            ldk = ld * xp.exp(xp.minimum(beta * (log_ref - logv), 50.0))
        aged = (k - 1 - k_round) >= runway
        if mult != 1.0:
            ldk = xp.where(aged, ldk * mult, ldk)
        total = ldk + other
        z = normal(rng.Purpose.GROWTH, j)
        growth = mu_dt + sig_sqdt * (d.factor_loading * market[pidx, j] + idio * z)
        logv = xp.where(alive, logv + growth, logv)
        hazard += total * dt
        occurs = alive & (hazard > clock)
        b = xp.flatnonzero(occurs)
        if b.size:
            x = _to_unit(xp, bits(fk[b], rng.Purpose.EVENT, j)) * total[b]
            lb, lib = ldk[b], li[b]
            chosen = xp.where(x < lb, 1, xp.where(x < lb + lib, 2,
                              xp.where(x < lb + lib + lm[b], 3, last[b])))  # fmt: skip
            ends = chosen != 4
            e = b[ends]
            event[e] = chosen[ends]
            step[e] = k
            alive[e] = False
            adv = b[~ends]
            if adv.size:
                logv[adv] += log_round[s[adv]]
                dil[adv] *= dilution[s[adv]]
                s[adv] += 1
                rounds[adv] += 1
                restage(adv)
                log_ref[adv] = logv[adv]
                k_round[adv] = k
                runway[adv] = runway_steps[s[adv]]
                hazard[adv] = 0.0
                if k < n_steps:
                    clock[adv] = exponential(fk[adv], k)
        if k == d.sicr_step:  # IFRS 9 staging, where the step had no event
            worse = (ldk >= d.sicr_ratio * ld_origin) & (ldk > 0.0)
            if mult != 1.0:
                worse |= aged
            stage2[alive & ~occurs & worse] = 1
        if k in chk_steps:
            c = chk_steps.index(k)
            chk[:, c] = xp.where(alive, xp.exp(logv), chk[:, c])
    # kept as the kernel keeps them; not compared here
    del v0, signal, appraisal, rounds, dil, stage2
    return event, step, xp.exp(logv)


def vectorised(xp, n: int, repeat: int, sync) -> dict:
    inp = Inputs(n)
    market, regime = shared_draws(xp, inp)

    def run():
        out = vectorised_simulate(xp, inp, market, regime)
        sync()
        return out

    event, step, _ = run()  # warm-up: CuPy compiles its kernels on first use
    t = _best(run, repeat)
    step_h = step.get() if hasattr(step, "get") else step
    event_h = event.get() if hasattr(event, "get") else event
    live = int(step_h.astype(np.int64).sum())
    return dict(firms=inp.n, live=live, t=t, rate=live / t, events=event_h[: min(n, 1 << 20)])


def _cupy():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --- the report ------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M and 4M firm-paths, ~1 minute")
    ap.add_argument("--sizes", type=int, nargs="+", help="GPU firm-paths (default 1M..64M)")
    ap.add_argument("--cpu-sizes", type=int, nargs="+", help="cpu firm-paths (default 1M, 4M)")
    ap.add_argument("--vector-sizes", type=int, nargs="+", help="CuPy twin firm-paths")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    ap.add_argument("--check-portfolios", type=int, default=200, help="portfolios checked")
    ap.add_argument("--out", type=Path, help="write the markdown here")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    cpu_sizes = args.cpu_sizes or (sizes[:1] if args.quick else [s for s in sizes if s <= 1 << 22])
    vector_sizes = args.vector_sizes or sizes
    repeat = 3 if args.quick else args.repeat
    e2e_repeat = 2

    try:
        from numba import config, cuda
    except Exception as exc:
        raise SystemExit(f"numba.cuda cannot be imported: {exc}") from None
    if not (cuda.is_available() or config.ENABLE_CUDASIM):
        raise SystemExit('no CUDA GPU here (numba.cuda.is_available() is False); this '
                         'benchmark needs one and pip install "invlend[cuda]"')  # fmt: skip
    info = machine_info(cuda)
    print("\n".join(f"{k}: {v}" for k, v in info.items() if v), flush=True)

    print("\n1. check: cuda against cpu", flush=True)
    check_lines = check(args.check_portfolios)

    rows, gpu, cpu = [], {}, {}
    print("\n2.-4. kernels and end to end", flush=True)
    for backend, cls, these in (("cuda", GpuKernels, sizes), ("cpu", CpuKernels, cpu_sizes)):
        for n in these:
            r = kernels(cls, n, repeat)
            e = end_to_end(backend, n, e2e_repeat, r["live_both"])
            (gpu if backend == "cuda" else cpu)[n] = r
            rows.append((backend, r, e))
            print(f"{backend:5s} {_firms(n):>5s} firm-paths: kernel {_fmt(r['rate'])} live "
                  f"firm-steps/s ({r['t_sim'] * 1e3:.1f} ms), evaluate 3 structures "
                  f"{r['t_eval'] * 1e3:.1f} ms; end to end {e['t']:.3f} s = "
                  f"{_fmt(e['paths_rate'])} firm-paths/s", flush=True)  # fmt: skip

    print("\n5. vectorised CuPy twin", flush=True)
    cp = _cupy()
    vec = {}
    if isinstance(cp, str):
        vec_note = f"not measured: CuPy is not usable here ({cp})"
        print(vec_note, flush=True)
    else:
        vec_note = ""
        for n in vector_sizes:
            v = vectorised(cp, n, max(2, repeat // 2), cp.cuda.Device().synchronize)
            if n in gpu and not np.array_equal(v["events"], gpu[n]["events"]):
                vec_note = "**its events differ from the kernel's: the comparison is void**"
            if n in gpu and v["live"] != gpu[n]["live"]:
                vec_note = "**its live firm-steps differ from the kernel's: comparison void**"
            vec[n] = v
            ratio = gpu[n]["rate"] / v["rate"] if n in gpu else float("nan")
            print(f"cupy  {_firms(n):>5s} firm-paths: {_fmt(v['rate'])} live firm-steps/s "
                  f"({v['t'] * 1e3:.1f} ms); kernel / vectorised = {ratio:.1f}x",
                  flush=True)  # fmt: skip

    page = report(info, check_lines, rows, gpu, cpu, vec, vec_note, args, t_start)
    print("\n" + page)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page)
    return page


def report(info, check_lines, rows, gpu, cpu, vec, vec_note, args, t_start) -> str:
    top = max(gpu)
    rate = gpu[top]["rate"]
    common = [n for n in vec if n in gpu]
    ratio = gpu[max(common)]["rate"] / vec[max(common)]["rate"] if common else None
    best_cpu = max((r["rate"] for r in cpu.values()), default=float("nan"))
    lines = [
        "# GPU benchmark of the cuda backend",
        "",
        f"Written by `python benchmarks/bench_gpu.py{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')} in {time.perf_counter() - t_start:.0f} s.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items() if v],
        "",
        "## Check: cuda against cpu",
        "",
        *check_lines,
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| firm simulation >= 30G live firm-steps/s (default scenario, {_firms(top)} "
        f"firm-paths) | {_fmt(rate)}/s | {'**met**' if rate >= TARGET_RATE else '**missed**'} |",
        "| firm simulation >= 2x the vectorised CuPy version | "
        + (
            f"{ratio:.1f}x at {_firms(max(common))} firm-paths | "
            + ("**met**" if ratio >= TARGET_VS_VECTORISED and not vec_note else "**missed**")
            if ratio is not None
            else f"{vec_note} | not measured"
        )
        + " |",
        "",
        f"At {_firms(top)} firm-paths the cuda kernel runs {rate / best_cpu:.3g}x the cpu "
        f"backend's best kernel rate on this machine ({_fmt(best_cpu)} live firm-steps/s).",
        "",
        "## Live firm-steps per second",
        "",
        "*Kernel*: the firm-simulation kernel alone, inputs on the device, best of "
        f"{3 if args.quick else args.repeat}; *evaluate*: the three default structures' cash "
        "flows, aggregates and IRRs on those outcomes. *End to end*: `invlend.simulate` with "
        'the three default structures, `keep="aggregates"` (two linkages, so the firms are '
        "simulated twice; its rate counts both simulations' live steps), best of 2.",
        "",
        "| backend | firm-paths | live firm-steps | kernel (ms) | kernel live firm-steps/s "
        "| evaluate 3 structures (ms) | end to end (s) | end to end firm-paths/s "
        "| end to end live firm-steps/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r, e in rows:
        lines.append(
            f"| {backend} | {r['firms']:,} | {r['live']:,} | {r['t_sim'] * 1e3:.1f} | "
            f"{_fmt(r['rate'])} | {r['t_eval'] * 1e3:.1f} | {e['t']:.3f} | "
            f"{_fmt(e['paths_rate'])} | {_fmt(e['rate'])} |"
        )
    lines += ["", "## Vectorised CuPy twin", ""]
    if vec:
        lines += [
            "The same model as array code over all firms each step (`vectorised_simulate` in "
            "`benchmarks/bench_gpu.py`): same hash, ziggurat, event clock and funding "
            "regimes, so its events and live steps equal the kernel's"
            + (f" -- {vec_note}" if vec_note else "")
            + ".",
            "",
            "| firm-paths | time (ms) | live firm-steps/s | kernel / vectorised |",
            "|---:|---:|---:|---:|",
        ]
        for n, v in vec.items():
            ratio_n = f"{gpu[n]['rate'] / v['rate']:.1f}x" if n in gpu else ""
            lines.append(f"| {n:,} | {v['t'] * 1e3:.1f} | {_fmt(v['rate'])} | {ratio_n} |")
    else:
        lines.append(vec_note + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
