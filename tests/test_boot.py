"""The tail-metric kernel and its Poisson bootstrap (exact, statistical and invariance tiers).

The kernel (:mod:`invlend._boot`) is checked against the dense numpy formulas it replaced
(copied here as the oracle), against a plain numpy reading of the importance-sampling
definitions, and against :func:`invlend.metrics.tail_metrics`; its keyed counts against the
Poisson(1) law and for invariance to threads and to the number of replicates asked.
"""

from __future__ import annotations

import doctest
import math

import numba
import numpy as np
import pytest

from conftest import assert_mc_close
from invlend import _boot
from invlend import metrics as M
from invlend._sim import layout as L

HURDLE = 0.1
ALPHAS = (0.99, 0.999)


def _aggregates(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic aggregates and fair aggregates; about 5% of portfolios lend nothing."""
    rng = np.random.default_rng(seed)
    agg = np.zeros((n, L.N_AGG))
    principal = rng.uniform(50.0, 150.0, n) * (rng.random(n) > 0.05)
    loss = principal * rng.beta(0.3, 8.0, n)
    if ties:  # few distinct loss rates: long runs of equal values at every quantile
        loss = principal * np.round(loss / np.maximum(principal, 1.0), 2)
    agg[:, L.AGG_PRINCIPAL] = principal
    agg[:, L.AGG_LOSS_NET] = loss
    agg[:, L.AGG_NPV] = 0.06 * principal - loss + principal * rng.normal(0.0, 0.05, n)
    agg[:, L.AGG_EXPOSURE] = rng.uniform(1.5, 3.0, n) * principal
    fair = agg.copy()
    fair[:, L.AGG_NPV] = 0.5 * agg[:, L.AGG_NPV] + 0.01 * principal
    return agg, fair


def _structures(n: int, seed: int):
    """Three structures on the same portfolios: tied losses, plain, and one without fair."""
    a, fa = _aggregates(n, seed, ties=True)
    b, fb = _aggregates(n, seed + 1)
    c, _ = _aggregates(n, seed + 2)
    return [a, b, c], [fa, fb, None]


# --------------------------------------------------------------------------------------------
# The oracle: the numpy formulas of the multinomial bootstrap this kernel replaced
# --------------------------------------------------------------------------------------------


def _old_weighted_tail(sorted_x, w, alpha):
    total = w.sum(axis=-1, keepdims=True)
    cw = np.cumsum(w, axis=-1) / total
    i = np.minimum((cw < alpha - 1e-12).sum(axis=-1), sorted_x.size - 1)
    var = sorted_x[i]
    above = np.where(np.arange(sorted_x.size) > i[..., None], w * sorted_x, 0.0).sum(axis=-1)
    cw_i = np.take_along_axis(cw, i[..., None], axis=-1)[..., 0]
    es = (above / total[..., 0] + var * (cw_i - alpha)) / (1.0 - alpha)
    return var, es


def _old_tail_metrics(agg, weights, hurdle, fair):
    lr = M.loss_rate(agg)
    order = np.argsort(lr, kind="stable")
    var99, es99 = _old_weighted_tail(lr[order], weights[:, order], 0.99)
    var999, es999 = _old_weighted_tail(lr[order], weights[:, order], 0.999)
    value = M.value_rate(agg)
    order = np.argsort(value, kind="stable")
    value_q001 = _old_weighted_tail(value[order], weights[:, order], 0.001)[0]
    total = weights.sum(axis=1)
    el = weights @ lr / total
    principal = weights @ agg[:, L.AGG_PRINCIPAL]
    with np.errstate(divide="ignore", invalid="ignore"):
        if fair is None:
            fv_pp = np.full(weights.shape[0], np.nan)
        else:
            fv_pp = (weights @ fair[:, L.AGG_NPV]) / principal
        years = (weights @ agg[:, L.AGG_EXPOSURE]) / principal
        ec = weights @ value / total - value_q001
        raroc = np.where(ec > 0, fv_pp / (ec * years), np.nan)
        eva = fv_pp / years - hurdle * ec
    return np.stack([var99, var999, es99, es999, ec, var999 - el, raroc, eva], axis=-1)


def _multinomial(n: int, b: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=b)]).astype(float)


def test_unit_weights_reproduce_the_old_numpy_bootstrap():
    aggs, fairs = _structures(3000, seed=3)
    counts = _multinomial(3000, 12, seed=4)
    got = _boot.tail_counts(aggs, fairs, None, HURDLE, counts)
    for s, (agg, fair) in enumerate(zip(aggs, fairs, strict=True)):
        want = _old_tail_metrics(agg, counts, HURDLE, fair)
        # the quantiles are the same points of the sample, picked by the same rule
        np.testing.assert_array_equal(got[:, s, :2], want[:, :2])
        np.testing.assert_allclose(got[:, s], want, rtol=1e-12, atol=0.0)
        # the numpy form (tail_metrics) is still the old one, bit for bit
        new = M.tail_metrics(agg, counts, HURDLE, fair)
        np.testing.assert_array_equal(np.stack([new[k] for k in _boot.COLUMNS], axis=-1), want)
    assert np.isnan(got[:, 2, 6:]).all()  # no fair values: raroc and eva undefined


def test_point_estimate_is_the_kernel_with_every_count_one():
    aggs, fairs = _structures(2000, seed=5)
    est, reps = _boot.tail_estimates(aggs, fairs, None, HURDLE, 0, np.uint64(1))
    assert reps.shape == (0, 3, _boot.N_TAIL)
    for s, (agg, fair) in enumerate(zip(aggs, fairs, strict=True)):
        want = _old_tail_metrics(agg, np.ones((1, 2000)), HURDLE, fair)[0]
        np.testing.assert_allclose(est[s], want, rtol=1e-12, atol=0.0)
        assert est[s, 1] == M.value_at_risk(M.loss_rate(agg), 0.999)


def test_columns_are_the_summaries_tail_metrics():
    assert _boot.COLUMNS == M.TAIL_METRICS
    assert set(_boot.COLUMNS) == {m for m in M.METRICS if M.is_tail(m)}


def test_module_example_runs():
    assert doctest.testmod(_boot, raise_on_error=True).attempted > 0


# --------------------------------------------------------------------------------------------
# Importance-sampling weights: the definitions read literally
# --------------------------------------------------------------------------------------------


def _reference(agg, fair, c, w, hurdle):
    """The importance-sampling tail metrics of one structure under counts ``c``, by definition."""
    lr, v = M.loss_rate(agg), M.value_rate(agg)
    big_w, n_drawn = c * w, c.sum()
    out = []
    o = np.argsort(lr, kind="stable")
    xs, ws = lr[o], big_w[o]
    above = np.append(np.cumsum(ws[::-1])[::-1][1:], 0.0)  # weight strictly above each point
    for alpha in ALPHAS:
        i = np.flatnonzero(above <= (1.0 - alpha + 1e-12) * n_drawn)[0]
        cw = 1.0 - above[i] / n_drawn
        es = ((ws[i + 1 :] * xs[i + 1 :]).sum() / n_drawn + xs[i] * (cw - alpha)) / (1 - alpha)
        out += [(xs[i], es)]
    (var99, es99), (var999, es999) = out
    o = np.argsort(v, kind="stable")
    below = np.cumsum(big_w[o]) / n_drawn
    q = v[o][min(np.flatnonzero(below >= 0.001 - 1e-12)[0], v.size - 1)]
    principal = (big_w * agg[:, L.AGG_PRINCIPAL]).sum()
    years = (big_w * agg[:, L.AGG_EXPOSURE]).sum() / principal
    fv = math.nan if fair is None else (big_w * fair[:, L.AGG_NPV]).sum() / principal
    ec = (big_w * v).sum() / n_drawn - q
    raroc = fv / (ec * years) if ec > 0 else math.nan
    el = (big_w * lr).sum() / n_drawn
    return [var99, var999, es99, es999, ec, var999 - el, raroc, fv / years - hurdle * ec]


def test_importance_weights_follow_the_definitions():
    n = 2500
    aggs, fairs = _structures(n, seed=6)
    rng = np.random.default_rng(7)
    # a tilt that puts more weight on low-loss portfolios and less on the tail; mean 1
    w = np.exp(0.4 * rng.normal(size=n) - 0.08)
    counts = _multinomial(n, 6, seed=8)
    counts[-1] = rng.poisson(1.0, n)  # a Poisson row: N differs from n
    got = _boot.tail_counts(aggs, fairs, w, HURDLE, counts)
    for s, (agg, fair) in enumerate(zip(aggs, fairs, strict=True)):
        want = np.array([_reference(agg, fair, c, w, HURDLE) for c in counts])
        np.testing.assert_allclose(got[:, s], want, rtol=1e-12, atol=0.0)
        numpy_form = M.tail_metrics(agg, counts, HURDLE, fair, importance=w)
        np.testing.assert_allclose(
            np.stack([numpy_form[k] for k in _boot.COLUMNS], axis=-1), want, rtol=1e-12, atol=0.0
        )
    # w = 1 is the plain estimator
    np.testing.assert_array_equal(
        _boot.tail_counts(aggs, fairs, np.ones(n), HURDLE, counts),
        _boot.tail_counts(aggs, fairs, None, HURDLE, counts),
    )


# --------------------------------------------------------------------------------------------
# Keyed Poisson counts
# --------------------------------------------------------------------------------------------

KEY = _boot.boot_key(2024, (3,))


def test_counts_are_poisson_one():
    c = _boot.boot_counts(KEY, 0, 100, 10_000).ravel()
    m = c.size
    assert c.min() >= 0 and np.all(c == np.round(c))
    assert_mc_close(c.mean(), 1.0, math.sqrt(1.0 / m), label="Poisson counts: mean")
    # var of the sample variance of Poisson(1): (mu4 - sigma^4)/m = (4 - 1)/m
    assert_mc_close(c.var(), 1.0, math.sqrt(3.0 / m), label="Poisson counts: variance")
    p0 = math.exp(-1.0)
    se0 = math.sqrt(p0 * (1.0 - p0) / m)
    assert_mc_close((c == 0).mean(), p0, se0, label="Poisson counts: P(0)")


def test_boot_key_follows_the_seed():
    assert _boot.boot_key(2024, (3,)) == KEY
    assert _boot.boot_key(2024, (4,)) != KEY
    assert _boot.boot_key(2025, (3,)) != KEY
    assert isinstance(KEY, np.uint64)


def test_a_replicate_uses_the_same_counts_for_every_structure():
    aggs, fairs = _structures(1500, seed=9)
    aggs, fairs = [*aggs, aggs[0]], [*fairs, fairs[0]]
    _, reps = _boot.tail_estimates(aggs, fairs, None, HURDLE, 30, KEY)
    np.testing.assert_array_equal(reps[:, 3], reps[:, 0])
    # the keyed kernel is the explicit-count kernel on the keyed counts, bit for bit
    counts = _boot.boot_counts(KEY, 0, 30, 1500)
    np.testing.assert_array_equal(reps, _boot.tail_counts(aggs, fairs, None, HURDLE, counts))
    one = _boot.tail_estimates(aggs[1:2], fairs[1:2], None, HURDLE, 30, KEY)[1]
    np.testing.assert_array_equal(one[:, 0], reps[:, 1])  # nor on the other structures


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_replicates_do_not_depend_on_threads_batches_or_their_number():
    aggs, fairs = _structures(1500, seed=10)
    w = np.exp(0.3 * np.random.default_rng(11).normal(size=1500) - 0.045)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        est1, one = _boot.tail_estimates(aggs, fairs, w, HURDLE, 24, KEY)
        numba.set_num_threads(2)
        est2, two = _boot.tail_estimates(aggs, fairs, w, HURDLE, 24, KEY)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(est1, est2)
    longer = _boot.tail_estimates(aggs, fairs, w, HURDLE, 48, KEY)[1]
    np.testing.assert_array_equal(longer[:24], one)
    batched = _boot.tail_estimates(aggs, fairs, w, HURDLE, 24, KEY, progress=True)[1]
    np.testing.assert_array_equal(batched, one)


def test_bootstrap_se_of_a_quantile_is_the_asymptotic_one():
    # Loss rates Exp(1): the 99% quantile ln(100) has density 0.01 there, so its asymptotic
    # SE is sqrt(alpha (1 - alpha) / n) / f(q) (the bootstrap SE of a quantile converges
    # slowly, at n^(-1/4): the tolerance is wide).
    n, alpha = 20_000, 0.99
    agg = np.zeros((n, L.N_AGG))
    agg[:, L.AGG_PRINCIPAL] = 1.0
    agg[:, L.AGG_LOSS_NET] = np.random.default_rng(12).exponential(size=n)
    agg[:, L.AGG_EXPOSURE] = 1.0
    _, reps = _boot.tail_estimates([agg], [None], None, HURDLE, 400, KEY)
    se = reps[:, 0, 0].std(ddof=1)
    want = math.sqrt(alpha * (1.0 - alpha) / n) / (1.0 - alpha)
    print(f"bootstrap SE of the 99% VaR {se:.4g}, asymptotic {want:.4g}, ratio {se / want:.3f}")
    assert 0.75 < se / want < 1.33
