"""Invariance of simulate(): backends, chunking, executors, threads, sizes, structure lists."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import invlend as il

N_PORT = 24
SIZE = 40
SEED = 20260501

OUTCOME_FIELDS = tuple(
    "event step value initial_stage stage n_rounds dilution initial_value quality signal_error"
    " checkpoint_values paths".split()
)
RESULT_FIELDS = tuple(
    "npv principal loan_default credit_loss upside portfolio_irr aggregates".split()
)


def _structures() -> list[il.Structure]:
    """Presets (two linkages) plus structures with a third linkage and other maturities."""
    return [
        *il.default_structures(),
        il.Structure(
            name="short_rs_equity",
            loan=il.Loan(
                loan_to_value=0.3,
                rate=0.06,
                maturity_years=2.0,
                interest_only_years=1.0,
                upfront_fee=0.02,
                recovery_rate=0.1,
                collateral=0.2,
            ),
            warrant=il.Warrant(coverage=0.2, share_of_gain=0.5, expiry_years=1.5),
            equity=il.Equity(equity_to_value=0.05),
            linkage=il.Linkage(default_hazard_multiplier=1.3, exit_hazard_multiplier=0.8),
            risk_share=il.RiskShare(covered_fraction=0.6, premium=0.015),
        ),
        il.Structure(
            name="long_screened",
            loan=il.Loan(loan_to_value=0.15, maturity_years=5.0),
            screening=il.Screening(signal_noise=0.3, acceptance_rate=0.4, cost=0.005),
        ),
    ]


def _jump_barrier_scenario() -> il.Scenario:
    data = il.Scenario.default().model_dump()
    data["market"]["jump_rate"] = 2.0
    return il.Scenario.model_validate({**data, "default_barrier": 0.3})


SCENARIOS = {"default": il.Scenario.default, "jumps_barrier": _jump_barrier_scenario}


def _run(scenario="default", structures=None, **kw):
    args = dict(n_portfolios=N_PORT, portfolio_size=SIZE, seed=SEED)
    args.update(kw)
    return il.simulate(SCENARIOS[scenario](), structures or _structures(), **args)


def _assert_identical(a, b, names=None, firms=slice(None), portfolios=slice(None)):
    """Arrays of the structures ``names`` (default: all of ``b``) are equal bit for bit."""
    for name in names or list(b):
        ra, rb = a[name], b[name]
        for f in OUTCOME_FIELDS:
            if f in ("paths", "checkpoint_values"):
                continue
            x = getattr(ra.outcomes, f)[portfolios, firms]
            y = getattr(rb.outcomes, f)[portfolios, firms]
            assert np.array_equal(x, y, equal_nan=True), f"{name}.outcomes.{f}"
        # Checkpoints are the maturities and expiries of the run's structures: compare the
        # common ones.
        oa, ob = ra.outcomes, rb.outcomes
        sa = list(zip(oa.checkpoint_steps, oa.checkpoint_diluted, strict=True))
        sb = list(zip(ob.checkpoint_steps, ob.checkpoint_diluted, strict=True))
        for c in set(sa) & set(sb):
            x = ra.outcomes.checkpoint_values[portfolios, firms, sa.index(c)]
            y = rb.outcomes.checkpoint_values[portfolios, firms, sb.index(c)]
            assert np.array_equal(x, y, equal_nan=True), f"{name} checkpoint {c}"
        for f in RESULT_FIELDS:
            x, y = getattr(ra, f), getattr(rb, f)
            if f in ("portfolio_irr", "aggregates"):
                if firms != slice(None):
                    continue  # per-portfolio totals change when the portfolio grows
                x, y = x[portfolios], y[portfolios]
            else:
                x, y = x[portfolios, firms], y[portfolios, firms]
            assert np.array_equal(x, y, equal_nan=True), f"{name}.{f}"


@pytest.fixture(scope="module")
def base():
    return {name: _run(name, sample_paths=100) for name in SCENARIOS}


# ------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_numpy_backend_matches_numba(base, scenario):
    a = base[scenario]
    b = _run(scenario, backend="numpy", sample_paths=100)
    assert b.backend == "numpy"
    for name in a:
        oa, ob = a[name].outcomes, b[name].outcomes
        for f in ("event", "step", "initial_stage", "stage", "n_rounds"):
            assert np.array_equal(getattr(oa, f), getattr(ob, f)), f"{name}.{f}"
        for f in ("value", "initial_value", "dilution", "quality", "signal_error"):
            np.testing.assert_allclose(getattr(oa, f), getattr(ob, f), rtol=1e-9, err_msg=f)
        np.testing.assert_allclose(oa.checkpoint_values, ob.checkpoint_values, rtol=1e-9)
        ra, rb = a[name], b[name]
        assert np.array_equal(ra.accepted, rb.accepted)
        assert np.array_equal(ra.loan_default, rb.loan_default)
        scale = np.where(ra.principal > 0, ra.principal, 1.0)
        acc = ra.accepted
        assert np.max(np.abs(ra.npv[acc] - rb.npv[acc]) / scale[acc]) <= 1e-9, name
        for f in ("principal", "credit_loss", "upside"):
            assert np.max(np.abs(getattr(ra, f) - getattr(rb, f)) / scale) <= 1e-9, f
        np.testing.assert_allclose(ra.aggregates, rb.aggregates, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ra.portfolio_irr, rb.portfolio_irr, rtol=0, atol=1e-9)
    # The scenario exercises every event, rounds and (for jumps_barrier) the barrier.
    o = a["pure_loan"].outcomes
    assert set(np.unique(o.event)) == {0, 1, 2, 3}
    assert o.n_rounds.max() >= 1


def test_numpy_backend_paths_match_before_the_last_step(base):
    a = base["jumps_barrier"]
    b = _run("jumps_barrier", backend="numpy", sample_paths=100)
    o = a["pure_loan"].outcomes
    n_steps = a.scenario.n_steps
    ok = (o.step.ravel()[:100] < n_steps) | (o.event.ravel()[:100] == 0)
    pa, pb = o.paths[ok], b["pure_loan"].outcomes.paths[ok]
    np.testing.assert_allclose(pa, pb, rtol=1e-9)


def test_numpy_backend_paths_of_an_event_in_the_last_step():
    stage = il.Stage(name="only", default_hazard=1000.0)
    sc = il.Scenario(stages=[stage], horizon_years=1 / 12, steps_per_year=12)
    loan = il.pure_loan(maturity_years=1 / 12)
    res = il.simulate(
        sc, loan, n_portfolios=1, portfolio_size=50, seed=1, sample_paths=50, backend="numpy"
    )
    o = res["pure_loan"].outcomes
    assert np.all(o.step == 1)
    np.testing.assert_array_equal(o.paths[:, 1], o.value.ravel())


# ------------------------------------------------------------------------------ chunks, executors


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_chunking_does_not_change_results(base, scenario):
    for chunk in (SIZE, 100, 10_000):  # 1 portfolio per chunk, 2 per chunk, all at once
        res = _run(scenario, chunk_firms=chunk, sample_paths=100)
        _assert_identical(base[scenario], res)
        for name in res:
            assert np.array_equal(
                res[name].outcomes.paths, base[scenario][name].outcomes.paths, equal_nan=True
            )


def test_thread_pool_executor_gives_identical_results(base):
    with ThreadPoolExecutor(2) as ex:
        res = _run("jumps_barrier", executor=ex, chunk_firms=5 * SIZE, sample_paths=100)
    _assert_identical(base["jumps_barrier"], res)
    for name in res:
        assert np.array_equal(
            res[name].outcomes.paths, base["jumps_barrier"][name].outcomes.paths, equal_nan=True
        )


def test_executor_errors_name_the_portfolio_range():
    class Failing:
        def submit(self, fn, *args):
            raise_later = RuntimeError("worker lost")

            class Future:
                def result(self):
                    raise raise_later

            return Future()

    with pytest.raises(RuntimeError, match="worker lost") as info:
        _run(executor=Failing(), n_portfolios=2)
    assert any("[0, 2)" in note for note in getattr(info.value, "__notes__", []))


_THREAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numba
    import numpy as np
    import invlend as il
    assert numba.get_num_threads() == int(sys.argv[2]), numba.get_num_threads()
    sc = il.Scenario.default()
    res = il.simulate(sc, n_portfolios={n_port}, portfolio_size={size}, seed={seed})
    arrays = {{}}
    for name, r in res.items():
        arrays[name + ".event"] = r.outcomes.event
        arrays[name + ".step"] = r.outcomes.step
        arrays[name + ".value"] = r.outcomes.value
        arrays[name + ".npv"] = r.npv
        arrays[name + ".irr"] = r.portfolio_irr
        arrays[name + ".agg"] = r.aggregates
    np.savez(sys.argv[1], **arrays)
    """
)


def test_thread_count_does_not_change_results(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_THREAD_SCRIPT.format(n_port=N_PORT, size=SIZE, seed=SEED), encoding="utf-8")
    saved = {}
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}.npz"
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        proc = subprocess.run(
            [sys.executable, str(script), str(out), str(threads)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        saved[threads] = dict(np.load(out))
    here = il.simulate(il.Scenario.default(), n_portfolios=N_PORT, portfolio_size=SIZE, seed=SEED)
    for key, arr in saved[1].items():
        assert np.array_equal(arr, saved[2][key], equal_nan=True), key
        name, field = key.split(".")
        r = here[name]
        mine = {
            "event": r.outcomes.event,
            "step": r.outcomes.step,
            "value": r.outcomes.value,
            "npv": r.npv,
            "irr": r.portfolio_irr,
            "agg": r.aggregates,
        }[field]
        assert np.array_equal(arr, mine, equal_nan=True), key


# ------------------------------------------------------------------------------ sizes, lists, seeds


def test_growing_n_portfolios_extends(base):
    big = _run(n_portfolios=N_PORT + 13)
    _assert_identical(base["default"], big, portfolios=slice(0, N_PORT))
    small = _run(n_portfolios=5)
    _assert_identical(small, base["default"], portfolios=slice(0, 5))


def test_growing_portfolio_size_extends(base):
    big = _run(portfolio_size=SIZE + 25)
    _assert_identical(base["default"], big, firms=slice(0, SIZE))
    # whole portfolios are different draws when they have different firms: their totals differ
    assert not np.array_equal(big["pure_loan"].aggregates, base["default"]["pure_loan"].aggregates)


def test_growing_the_horizon_extends_every_path():
    short = il.Scenario.default()
    long = short.model_copy(update={"horizon_years": 2 * short.horizon_years})
    kw = dict(n_portfolios=6, portfolio_size=30, seed=SEED, sample_paths=180)
    a = il.simulate(short, il.pure_loan(), **kw)["pure_loan"].outcomes
    b = il.simulate(long, il.pure_loan(), **kw)["pure_loan"].outcomes
    ended = a.event != il.Event.NONE  # events before the old horizon are unchanged
    np.testing.assert_array_equal(a.event[ended], b.event[ended])
    np.testing.assert_array_equal(a.step[ended], b.step[ended])
    np.testing.assert_array_equal(a.value[ended], b.value[ended])
    assert np.all(b.step[~ended] > short.n_steps)  # survivors go on past it
    np.testing.assert_array_equal(a.paths, b.paths[:, : short.n_steps + 1])


def test_structure_list_order_and_subset_do_not_matter(base):
    structs = _structures()
    rev = _run(structures=structs[::-1])
    _assert_identical(base["default"], rev)
    for keep in ([structs[2]], [structs[3], structs[0]], [structs[4]]):
        sub = _run(structures=keep)
        assert list(sub) == [s.name for s in keep]
        _assert_identical(base["default"], sub)


def test_same_seed_reproduces_and_other_seeds_differ(base):
    again = _run(sample_paths=100)
    _assert_identical(base["default"], again)
    other = _run(seed=SEED + 1)
    o1, o2 = base["default"]["pure_loan"].outcomes, other["pure_loan"].outcomes
    assert not np.array_equal(o1.value, o2.value)
    assert np.mean(o1.initial_value == o2.initial_value) < 0.01


def test_seed_none_is_recorded_and_replays():
    res = _run(seed=None, n_portfolios=4)
    assert isinstance(res.seed, int)
    _assert_identical(res, _run(seed=res.seed, n_portfolios=4))
    _assert_identical(res, _run(seed=np.random.SeedSequence(res.seed), n_portfolios=4))


def test_single_structure_argument():
    res = il.simulate(
        il.Scenario.default(), il.pure_loan(), n_portfolios=3, portfolio_size=5, seed=1
    )
    assert list(res) == ["pure_loan"]
    assert sorted(il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=3, seed=1)) == [
        "pure_loan",
        "vc_linked",
        "warrant_loan",
    ]


# ------------------------------------------------------------------------------ outcomes


def test_shared_outcomes_for_the_same_linkage(base):
    res = base["default"]
    assert res["pure_loan"].outcomes is res["warrant_loan"].outcomes
    assert res["pure_loan"].outcomes is res["long_screened"].outcomes
    assert res["vc_linked"].outcomes is not res["pure_loan"].outcomes
    assert res["short_rs_equity"].outcomes is not res["pure_loan"].outcomes
    # a different linkage changes events but not the firms drawn at entry
    a, b = res["pure_loan"].outcomes, res["vc_linked"].outcomes
    assert np.array_equal(a.initial_value, b.initial_value)
    assert np.array_equal(a.quality, b.quality)
    assert not np.array_equal(a.event, b.event)


def test_outcome_shapes_and_dtypes(base):
    res = base["default"]
    sc = res.scenario
    o = res["pure_loan"].outcomes
    assert o.event.shape == (N_PORT, SIZE) and o.event.dtype == np.int8
    assert o.step.dtype == np.int32
    # maturities of 2, 3 and 5 years, and the expiry of the 1.5-year warrant (an entry share)
    assert o.checkpoint_values.shape == (N_PORT, SIZE, 4)
    assert list(o.checkpoint_steps) == [18, 24, 36, 60]
    assert list(o.checkpoint_diluted) == [True, False, False, False]
    assert o.paths.shape == (100, sc.n_steps + 1)
    np.testing.assert_array_equal(o.time, o.step * sc.dt)
    assert np.all((o.step >= 1) & (o.step <= sc.n_steps))
    assert np.all(o.step[o.event == 0] == sc.n_steps)
    assert np.all(o.n_rounds == o.stage - o.initial_stage)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sample_paths_agree_with_outcomes(base, scenario):
    res = base[scenario]
    o = res["pure_loan"].outcomes
    n_steps = res.scenario.n_steps
    flat = {
        f: getattr(o, f).reshape(N_PORT * SIZE, *getattr(o, f).shape[2:])
        for f in ("event", "step", "value", "initial_value", "checkpoint_values", "n_rounds")
    }
    paths = o.paths
    np.testing.assert_array_equal(paths[:, 0], flat["initial_value"][:100])
    for i in range(100):
        k = flat["step"][i]
        assert paths[i, k] == flat["value"][i], i
        assert np.all(np.isfinite(paths[i, : k + 1])), i
        assert np.all(np.isnan(paths[i, k + 1 :])), i
        for j, c in enumerate(o.checkpoint_steps):
            if o.checkpoint_diluted[j] and (c < k or (c == k and flat["event"][i] == 0)):
                # An entry share: the firm value times the dilution of the rounds so far.
                assert flat["checkpoint_values"][i, j] <= paths[i, c] * (1 + 1e-12), (i, c)
                if flat["n_rounds"][i] == 0:
                    assert flat["checkpoint_values"][i, j] == pytest.approx(paths[i, c]), (i, c)
            elif c < k or (c == k and flat["event"][i] == 0):
                assert flat["checkpoint_values"][i, j] == paths[i, c], (i, c)
            else:
                assert np.isnan(flat["checkpoint_values"][i, j]), (i, c)
    assert np.any(flat["step"][:100] < n_steps)


def test_spawned_seed_sequence_replays():
    child = np.random.SeedSequence(77).spawn(3)[2]
    res = _run(seed=child, n_portfolios=4)
    assert res.seed_spawn_key == (2,)
    replay = np.random.SeedSequence(res.seed, spawn_key=res.seed_spawn_key)
    _assert_identical(res, _run(seed=replay, n_portfolios=4))
    assert not np.array_equal(
        res["pure_loan"].outcomes.value, _run(seed=77, n_portfolios=4)["pure_loan"].outcomes.value
    )


def test_process_pool_executor_gives_identical_results(base):
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        res = _run("jumps_barrier", executor=ex, chunk_firms=7 * SIZE, sample_paths=100)
    _assert_identical(base["jumps_barrier"], res)
    for name in res:
        assert np.array_equal(
            res[name].outcomes.paths, base["jumps_barrier"][name].outcomes.paths, equal_nan=True
        )


def test_progress_bar_does_not_change_results(base, capfd):
    res = _run(progress=True, chunk_firms=5 * SIZE, sample_paths=100)
    err = capfd.readouterr().err
    assert "simulating" in err and f"{N_PORT}/{N_PORT} [" in err and "portfolios/s" in err
    _assert_identical(base["default"], res)


def test_smallest_chunks_and_sizes():
    one = _run(chunk_firms=1, n_portfolios=3, portfolio_size=2)
    whole = _run(n_portfolios=3, portfolio_size=2)
    _assert_identical(one, whole)
    single = _run(n_portfolios=1, portfolio_size=1)
    _assert_identical(single, whole, portfolios=slice(0, 1), firms=slice(0, 1))


def test_runs_too_big_for_memory_are_refused_before_any_work(monkeypatch):
    from invlend._sim import layout

    # Pretend 1 MiB is free: a 2000 x 100 run (about 80 MB of results) is refused.
    monkeypatch.setattr(layout, "available_bytes", lambda: 2**20)
    with pytest.raises(ValueError, match="n_portfolios") as info:
        _run(n_portfolios=2000, portfolio_size=100)
    assert "GiB" in str(info.value)
    with pytest.raises(ValueError, match="limit"):
        _run(n_portfolios=100_000_000, portfolio_size=100)
