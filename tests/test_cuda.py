"""The ``cuda`` backend: the ``cpu`` backend's events, its values to rounding, clear errors.

The GPU kernels run here through numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which
executes the code of every GPU thread in Python. numba reads that variable when ``numba.cuda``
is first imported, so the simulated runs happen in one subprocess (:func:`cuda_results`),
which saves each result; this process runs the ``cpu`` backend on the same inputs and
compares. Sizes are tiny because the simulator runs some 10^4 firm-steps a second.

Integer outcomes (events, steps, stages, rounds, regimes, defaults) must be equal. Floating
values must agree to ``invlend._sim.cuda.RTOL`` (1e-12) relative to each array's scale: on a GPU,
libdevice's ``exp``/``log``/``expm1`` and fused multiply-adds move the last bits; under the
simulator, which runs the C library's functions, they usually agree bit for bit.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import invlend as il
from invlend._sim import cpu as K
from invlend._sim import layout as L
from test_fast_paths import _cash_flow_rows

SEED = 20261201
TESTS = Path(__file__).resolve().parent


def _jumps_barrier() -> il.Scenario:
    data = il.Scenario.default().model_dump()
    data["market"].update(jump_rate=2.0, jump_mean=-0.05, jump_vol=0.3)
    return il.Scenario.model_validate({**data, "default_barrier": 0.4})


def _cycle() -> il.Scenario:
    # Fast switching, so that firms change regime within their lives.
    cycle = il.FundingCycle(hot_to_cold=2.0, cold_to_hot=2.0)
    return il.Scenario.default().model_copy(update={"cycle": cycle})


def _pool_and_screening() -> list[il.Structure]:
    return [
        il.Structure(
            name="pooled",
            loan=il.Loan(loan_to_value=0.4, maturity_years=3.0, recovery_rate=0.05),
            # A low cap, so that some years' claims exceed it.
            risk_pool=il.RiskPool(covered_fraction=0.6, annual_cap=0.02),
            risk_share=il.RiskShare(covered_fraction=0.3, premium=0.01),
        ),
        il.Structure(
            name="screened",
            loan=il.Loan(loan_to_value=0.2, maturity_years=5.0, interest_only_years=2.0),
            warrant=il.Warrant(coverage=0.3, share_of_gain=0.5, expiry_years=4.0),
            equity=il.Equity(equity_to_value=0.05),
            screening=il.Screening(signal_noise=0.3, acceptance_rate=0.4, cost=0.01),
            linkage=il.Linkage(default_hazard_multiplier=0.7, exit_hazard_multiplier=1.2),
        ),
    ]


#: name -> (scenario, structures, keyword arguments of simulate); each is run on both backends.
CASES = {
    "default": (il.Scenario.default, il.default_structures,
                dict(n_portfolios=3, portfolio_size=16, sample_paths=20)),
    "cycle": (_cycle, il.default_structures, dict(n_portfolios=4, portfolio_size=12)),
    "pool_screening": (il.Scenario.default, _pool_and_screening,
                       dict(n_portfolios=3, portfolio_size=16)),
    "jumps_barrier": (_jumps_barrier, _pool_and_screening,
                      dict(n_portfolios=3, portfolio_size=16, sample_paths=10)),
    # Several ranges of portfolios (chunks) and only the per-portfolio totals kept.
    "aggregates_chunked": (_cycle, _pool_and_screening,
                           dict(n_portfolios=5, portfolio_size=8, chunk_firms=16,
                                keep="aggregates", sample_paths=12)),
    # Importance sampling: the tilted draws are made on the host and moved to the device.
    "tilted": (_cycle, il.default_structures,
               dict(n_portfolios=6, portfolio_size=8, chunk_firms=24,
                    tail=il.Tilt(market=-0.4, quality=-0.2, regime=(0.7, 0.3, 0.2)))),
}  # fmt: skip


def _case_kwargs(name: str) -> tuple[il.Scenario, list[il.Structure], dict]:
    scenario, structures, kw = CASES[name]
    return scenario(), structures(), dict(kw, seed=SEED)


def run_simulated_cases(out: str) -> None:
    """Run in the subprocess: every case on the simulated GPU, saved to ``out``/<case>.npz."""
    import warnings

    from numba import config

    assert config.ENABLE_CUDASIM, "run me under NUMBA_ENABLE_CUDASIM=1"
    # The simulator runs the kernels' uint64 hashing on numpy scalars, which warn when they
    # wrap around (wrapping is the hash's arithmetic).
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    for name in CASES:
        scenario, structures, kw = _case_kwargs(name)
        il.simulate(scenario, structures, backend="cuda", **kw).save(Path(out) / f"{name}.npz")
    auto = il.simulate(il.Scenario.default(), n_portfolios=1, portfolio_size=2, backend="auto")
    Path(out, "auto.txt").write_text(auto.backend)


def _run_simulator(code: str, tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cuda_results(tmp_path_factory) -> Path:
    """Folder with the simulated GPU's result of every case (one subprocess for all)."""
    out = tmp_path_factory.mktemp("cuda")
    proc = _run_simulator(f"import test_cuda; test_cuda.run_simulated_cases({str(out)!r})", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def assert_backends_agree(cpu, gpu) -> int:
    """Integer arrays equal, float arrays within RTOL; returns how many arrays are identical."""
    from invlend._sim.cuda import RTOL

    assert gpu.backend == "cuda" and cpu.backend == "cpu"
    assert sorted(cpu.arrays) == sorted(gpu.arrays)
    identical = 0
    for key, want in cpu.arrays.items():
        got = gpu.arrays[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=key)
            scale = float(np.nanmax(np.abs(want), initial=0.0))
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=key)
        identical += np.array_equal(got, want, equal_nan=True)
    return identical


@pytest.mark.parametrize("case", list(CASES))
def test_cuda_equals_cpu_under_the_simulator(cuda_results, case):
    scenario, structures, kw = _case_kwargs(case)
    cpu = il.simulate(scenario, structures, backend="cpu", **kw)
    gpu = il.load(cuda_results / f"{case}.npz")
    identical = assert_backends_agree(cpu, gpu)
    print(f"{case}: {identical}/{len(cpu.arrays)} arrays bit-identical")
    assert gpu.versions["cuda_device"] == "simulator"
    # The cases exercise what they are named for.
    first = cpu[structures[0].name]
    if case == "cycle":
        assert 0.0 < np.mean(cpu.arrays["cold_share"]) < 1.0
    if case == "pool_screening":
        agg = cpu.arrays["s0.agg"]
        assert (agg[:, L.AGG_POOL_PAID] < agg[:, L.AGG_POOL_CLAIMS]).any()  # the cap binds
        assert np.isnan(cpu["screened"].npv).any()  # rejected applicants
    if case == "jumps_barrier":
        steps = first.outcomes.time  # defaults before the horizon, barrier or hazard
        assert (first.outcomes.event == il.Event.DEFAULT).sum() > 0 and steps.min() < 5.0
    if "sample_paths" in kw:
        assert np.isfinite(cpu.arrays["g0.paths"][:, 0]).all()
    if case == "tilted":
        assert gpu.tilt == kw["tail"] and np.array_equal(gpu.log_weights, cpu.log_weights)
        assert len(set(np.round(cpu.log_weights, 12))) > 1


def test_auto_picks_cpu_under_the_simulator(cuda_results):
    # The simulator is for tests: "auto" never takes it for a GPU.
    assert (cuda_results / "auto.txt").read_text() == "cpu"


def test_gpu_kernels_run_the_cpu_kernels_code():
    # One copy of the model: the GPU kernels are the CPU kernels' code objects.
    from invlend._sim import cuda as _cuda

    assert _cuda.simulate_firms.py_func.__code__ is K._simulate_firms.py_func.__code__
    assert _cuda.evaluate_structure.py_func.__code__ is K._evaluate_structure.py_func.__code__
    assert _cuda._normal.py_func.__code__ is K._normal.py_func.__code__


def test_retarget_refuses_an_unreplaced_cpu_helper():
    from invlend._sim import cuda as _cuda

    with pytest.raises(TypeError, match="_stage_params"):
        _cuda._retarget(K._simulate_firms, prange=_cuda._grid_stride, _normal=_cuda._normal)


def _engine_cash_flows(n_port=400, size=25):
    """Portfolio cash flows of the default structures, as the engine hands them to the IRR."""
    from invlend._sim.lowering import checkpoint_steps, lower_dynamics, lower_structure
    from invlend.rng import root_key

    sc = il.Scenario.default()
    structures = il.default_structures()
    chk = checkpoint_steps(sc, structures)
    be = K.BACKEND
    draws, _, _ = be.draws(int(root_key(SEED)), 0, n_port, sc.n_steps, None)
    n = n_port * size
    firms = L.FirmOutcomes(*(np.empty(n, f.dtype) for f in L.OUTCOMES))
    values = np.empty((n, chk.size))
    be.simulate_firms(draws, size, 0, lower_dynamics(sc, il.Linkage(), chk), firms, values,
                      np.empty((0, sc.n_steps + 1)))  # fmt: skip
    for s in structures:
        cf = np.empty((n_port, sc.n_steps + 1))
        per_firm = [np.empty(n, f.dtype) for f in L.PER_FIRM]
        pools = [np.empty((n_port, sc.n_years)) for _ in range(2)]
        be.evaluate_structure(firms, values, size, lower_structure(sc, s, chk), per_firm,
                              np.empty((n_port, L.N_AGG)), *pools, cf,
                              np.empty((n_port, sc.n_steps + 2)))  # fmt: skip
        yield sc.dt, cf


def test_one_row_irr_is_the_cpu_kernel_bit_for_bit():
    # The GPU solves one row per thread by irr_row; on the CPU it must give the lanes' bits.
    from invlend._sim.irr import irr_row

    @numba.njit
    def solve(cf, dt, out):
        y_lo = math.exp(-8.0 * dt)
        y_hi = math.exp(8.0 * dt)
        for p in range(cf.shape[0]):
            out[p] = irr_row(cf, p, dt, y_lo, y_hi)

    cases = [(1.0 / 12.0, _cash_flow_rows()), (0.25, _cash_flow_rows(n=50, n_k=21))]
    for dt, rows in [*cases, *_engine_cash_flows()]:
        want = np.empty(len(rows))
        K._portfolio_irr(rows, dt, want)
        got = np.empty(len(rows))
        solve(rows, dt, got)
        np.testing.assert_array_equal(got, want)
        assert np.isfinite(want).mean() > 0.8  # most rows go through the Newton steps


def _gpu_here() -> bool:
    from invlend.engine import _cuda_problem

    return _cuda_problem()[0] is None


def test_cuda_without_a_gpu_is_a_clear_error_before_any_work():
    if _gpu_here():
        pytest.skip("a CUDA GPU (or the simulator) is available in this process")
    with pytest.raises(ValueError, match="backend") as info:
        # Far too large to run: the error must come before any work (or memory check).
        il.simulate(il.Scenario.default(), n_portfolios=10**7, portfolio_size=1000,
                    backend="cuda")  # fmt: skip
    msg = str(info.value)
    assert "'cuda' cannot run here" in msg and "GPU" in msg
    assert 'pip install "invlend[cuda]"' in msg
    assert "'cpu'" in msg and "'numpy'" in msg


def test_auto_without_a_gpu_runs_cpu():
    if _gpu_here():
        pytest.skip("a CUDA GPU (or the simulator) is available in this process")
    kw = dict(n_portfolios=4, portfolio_size=10, seed=SEED)
    auto = il.simulate(il.Scenario.default(), backend="auto", **kw)
    cpu = il.simulate(il.Scenario.default(), backend="cpu", **kw)
    assert auto.backend == "cpu"
    for key, want in cpu.arrays.items():
        np.testing.assert_array_equal(auto.arrays[key], want, err_msg=key)


def test_importing_invlend_does_not_import_numba_cuda(tmp_path):
    code = """
        import sys
        import invlend as il
        il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=3, seed=1)
        il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=3, backend="numpy")
        print(sorted(m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda"))))
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _bench_gpu():
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    return bench_gpu


def test_benchmark_vectorised_twin_has_the_kernels_events():
    # The GPU benchmark's baseline is the same model: with NumPy as its array module, its
    # events and steps equal the cpu kernel's, and its values agree to rounding.
    # Its market and funding regimes are the ones the engine's backend draws for the kernel.
    bench = _bench_gpu()
    inp = bench.Inputs(20_000)
    cpu = bench.CpuKernels(inp)
    cpu.simulate(0)
    market, regime = bench.shared_draws(np, inp)
    np.testing.assert_array_equal(market, cpu.draws.market)
    np.testing.assert_array_equal(regime, cpu.draws.regime)
    assert 0.0 < regime.mean() < 1.0  # the default scenario's cycle, in both regimes
    event, step, value = bench.vectorised_simulate(np, inp, market, regime)
    np.testing.assert_array_equal(event, cpu.host(0, "event"))
    np.testing.assert_array_equal(step, cpu.host(0, "step"))
    # to rounding: exp/log of numpy's SIMD code and of the C maths library differ in the last
    # bit on some CPUs, compounded over the path (1.06e-14 seen on baseline SIMD without FMA)
    np.testing.assert_allclose(value, cpu.host(0, "value"), rtol=1e-12)
    assert (event == il.Event.DEFAULT).any() and (event == il.Event.IPO).any()


def test_benchmark_runs_under_the_simulator(tmp_path):
    # The one command of benchmarks/bench_gpu.py, on tiny sizes: check, kernels, end to end.
    out = tmp_path / "gpu.md"
    code = f"""
        import sys, warnings
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        sys.path.insert(0, {str(TESTS.parent / "benchmarks")!r})
        import bench_gpu
        bench_gpu.main(["--sizes", "200", "--cpu-sizes", "200", "--repeat", "1",
                        "--check-portfolios", "1", "--out", {str(out)!r}])
    """
    proc = _run_simulator(code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = out.read_text()
    assert "| gpu | simulator |" in page
    assert "events, steps, stages and regimes identical" in page
    assert "| cuda | 200 | " in page and "| cpu | 200 | " in page
