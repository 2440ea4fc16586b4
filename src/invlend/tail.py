r"""Importance sampling of the systematic drivers: the tilt, its weights and how it is found.

Overview
--------
A portfolio's loss tail comes from two places: bad draws of what its firms share (the market
factor's path, the funding regime's path) and bad luck among its own firms. Plain Monte Carlo
waits for both; :class:`Tilt` makes the first common. Under the *sampling law* ``Q`` of a
tilted portfolio

* each step's market normal has mean ``m_j`` instead of 0 (``market``, one number per step),
* each firm's latent quality normal has mean ``delta`` instead of 0 (``quality``), which moves
  the portfolio's average quality, a direction along which many of its firms fail together,
* the funding regime follows a chain with the probabilities ``regime`` (start cold, hot to
  cold, cold to hot per step) instead of the scenario's ``(p_0, p_hc, p_ch)``.

Every other draw (stage, value, growth, events, appraisal) keeps its law and its keyed stream.
With ``x`` the sampled market normals, ``q`` the sampled qualities of the portfolio's ``N``
firms and ``c`` the sampled regime path, the log density ratio of the tilted law to the real
world is

.. math::

    \ell = \sum_j \bigl(m_j x_j - \tfrac12 m_j^2\bigr)
         + \sum_{i=1}^{N} \bigl(\delta q_i - \tfrac12 \delta^2\bigr)
         + \log\frac{Q(c_0)}{P(c_0)}
         + \sum_{j \ge 1} \log\frac{Q(c_j \mid c_{j-1})}{P(c_j \mid c_{j-1})}.

**Defensive mixture** (Hesterberg 1995). A share ``mixture`` of the portfolios, chosen by a
keyed uniform, is drawn from the real world itself; the weight of every portfolio is the
likelihood ratio to the mixture,

.. math::

    w = \frac{dP}{d(\lambda P + (1-\lambda) Q)} = \frac{1}{\lambda + (1 - \lambda)\, e^{\ell}}
    \le \frac{1}{\lambda},

so no estimate (a mean included) can have more than ``1/lambda`` times the variance of plain
sampling with the same number of portfolios, while the tail is sampled ``(1 - lambda)`` times
as often as under ``Q``. ``E[w] = 1``: means stay unbiased. :mod:`invlend.estimation` uses the
weights in every estimator (ratios of weighted sums, the non-self-normalised tail estimators of
Glasserman 2004 §9.1), and the bootstrap resamples (weight, outcome) pairs.

**Finding the tilt** (:func:`find_tilt`): the cross-entropy method (Rubinstein 1999; de Boer,
Kroese, Mannor & Rubinstein 2005) on pilot runs. Each round simulates ``pilot_portfolios``
under the current tilt, ranks them by the *tail statistic* (the portfolio's loss rate averaged
over the structures), takes the elite (the top ``elite`` share, or the portfolios beyond the
estimated ``level`` quantile once the elite reaches it) and sets each parameter to its weighted
maximum-likelihood value on the elite: the market shift of each year to the elite's weighted
mean market normal in that year, ``delta`` to its weighted mean quality, the regime
probabilities to its weighted transition frequencies. The pilot runs use their own seeds
(children of the run's), so they never share a draw with the run.

Keyed streams stay keyed: the shifted normals are the same keyed draws plus a constant, the
tilted regime chain compares the same keyed uniforms with other probabilities, and the mixture
choice is a keyed uniform. The same seed and tilt give the same run on any chunking, executor
and backend.

Example
-------
>>> import invlend as il
>>> t = il.Tilt(market=-0.3, quality=-0.05)
>>> t.mixture
0.25
"""

from __future__ import annotations

import math
from typing import Annotated, Any, NamedTuple

import numpy as np
from pydantic import Field, field_validator

from invlend import metrics as M
from invlend import rng
from invlend.config import Fraction, InputModel, Number
from invlend.rng import Purpose

__all__ = ["Tilt", "cross_entropy_update", "sample", "upper_tail"]

#: Salt of the keyed uniform that puts a portfolio in the real-world share of the mixture.
MIXTURE_SALT = np.uint64(0x7A11D15C0DE5A17E)
#: Spawn-key word of the pilot runs' seeds (children of the run's seed, one per round).
PILOT_KEY = 0x7117
#: Tilted regime probabilities are kept this far inside (0, 1): a chain that can never leave a
#: state would give the paths that do leave it no weight to be estimated from.
_PROB_FLOOR = 1e-4


class Tilt(InputModel):
    """The sampling law of importance sampling: shifts of the systematic draws.

    Parameters
    ----------
    market : float or sequence of float
        Mean of each step's market normal under the sampling law (one number for every step,
        or one per step of the scenario's grid). Negative values sample bad markets.
    quality : float
        Mean of every firm's latent quality normal under the sampling law (negative: worse
        firms, more defaults in the same portfolio).
    regime : (float, float, float), optional
        ``(P(start cold), P(hot -> cold), P(cold -> hot))`` per step under the sampling law;
        only for a scenario with a funding cycle. ``None`` keeps the scenario's chain.
    mixture : float
        Share of portfolios drawn from the real world (the defensive mixture): weights are at
        most ``1 / mixture``. Default 0.25, a compromise measured in docs/tail.md (0 is pure
        importance sampling).
    pilot : dict, optional
        How :func:`find_tilt` found the tilt (method, rounds, pilot portfolios, thresholds);
        recorded on the result. ``None`` for a tilt given by hand.
    """

    market: float | tuple[Number, ...] = 0.0
    quality: Annotated[Number, Field(ge=-3.0, le=3.0)] = 0.0
    regime: tuple[Fraction, Fraction, Fraction] | None = None
    mixture: Annotated[Number, Field(ge=0.0, lt=1.0)] = 0.25
    pilot: dict[str, Any] | None = None

    @field_validator("market")
    @classmethod
    def _market_bounded(cls, v):
        values = (v,) if isinstance(v, (int, float)) else v
        if not values:
            raise ValueError("give at least one shift")
        for x in values:
            if not (math.isfinite(x) and abs(x) <= 3.0):
                raise ValueError(f"each shift must be finite and within [-3, 3], got {x!r}")
        return float(v) if isinstance(v, (int, float)) else tuple(float(x) for x in v)

    def shifts(self, n_steps: int) -> np.ndarray:
        """The market shift of every step, shape ``(n_steps,)``."""
        if isinstance(self.market, float):
            return np.full(n_steps, self.market)
        if len(self.market) != n_steps:
            raise ValueError(
                f"tail: market: one shift per step needs {n_steps} values (the scenario's "
                f"grid), got {len(self.market)}; or give one number for every step"
            )
        return np.asarray(self.market, float)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what a result records and a saved file keeps)."""
        return self.model_dump(mode="json")

    def __str__(self) -> str:
        m = self.shifts(1) if isinstance(self.market, float) else np.asarray(self.market)
        how = "given" if self.pilot is None else self.pilot.get("method", "found")
        regime = (
            "" if self.regime is None else ", regime " + "/".join(f"{p:.3g}" for p in self.regime)
        )
        return (
            f"Tilt({how}: market shift {m.min():+.3g}..{m.max():+.3g} per step, quality "
            f"{self.quality:+.3g}{regime}, mixture {self.mixture:g})"
        )


def check_tilt(tilt: Any, n_steps: int, regime: tuple | None) -> Tilt | None:
    """The tilt of a run, checked against the scenario before any work (``None``: plain)."""
    if tilt is None:
        return None
    if not isinstance(tilt, Tilt):
        raise ValueError(
            f"tail: expected None, 'auto' or an invlend.Tilt, got {type(tilt).__name__}"
        )
    tilt.shifts(n_steps)
    if tilt.regime is not None:
        if regime is None:
            raise ValueError(
                "tail: regime: the scenario has no funding cycle to tilt; leave regime=None"
            )
        names = ("P(start cold)", "P(hot -> cold)", "P(cold -> hot)")
        for name, q, p in zip(names, tilt.regime, regime, strict=True):
            # The sampling law must reach every path the real world can take, and no other.
            certain = p in (0.0, 1.0)
            if (certain and q != p) or (not certain and not 0.0 < q < 1.0):
                need = f"equal to {p:g}" if certain else "strictly between 0 and 1"
                raise ValueError(
                    f"tail: regime: {name} must be {need} (the scenario's is {p:g}), got {q:g}"
                )
    return tilt


class Sample(NamedTuple):
    """The systematic draws of a range of portfolios under a tilt, and their log weights."""

    ctr: np.ndarray  # (n_purposes, max(n_steps, 2)) counter words
    pkeys: np.ndarray  # (n_port,) portfolio keys
    market: np.ndarray  # (n_port, n_steps) sampled market normals
    regime: np.ndarray  # (n_port, n_steps) int8 sampled regime path
    quality_shift: np.ndarray  # (n_port,) mean of the firms' quality normals
    cold_share: np.ndarray  # (n_port,) share of cold steps
    log_weight: np.ndarray  # (n_port,) log dP / d(mixture)
    quality_mean: np.ndarray | None  # (n_port,) mean sampled quality (only when asked for)


def _log_ratio(q: float, p: float) -> float:
    """``log(q / p)`` of two probabilities, 0 when they are equal (0/0 included)."""
    return 0.0 if q == p else math.log(q) - math.log(p)


def sample(seed_key: int, p0: int, p1: int, n_steps: int, portfolio_size: int,
           regime: tuple | None, tilt: Tilt | None,
           quality_mean: bool = False) -> Sample:  # fmt: skip
    """The systematic draws of portfolios ``[p0, p1)``, tilted by ``tilt`` (or not).

    Sums run in a fixed order, element by element over the portfolios, so the log weights are
    the same numbers on every machine to the last bit of ``exp``/``log`` of the mixture.
    """
    pkeys = rng.portfolio_keys(np.uint64(seed_key), np.arange(p0, p1))
    ctr = rng.counter_table(n_steps)
    n_port = p1 - p0
    z = rng.market_shocks(rng.market_keys(pkeys), ctr, n_steps)
    plain_paths = (
        np.zeros((n_port, n_steps), np.int8)
        if regime is None
        else rng.regime_paths(pkeys, ctr, n_steps, *regime)
    )
    if tilt is None:
        return Sample(ctr, pkeys, z, plain_paths, np.zeros(n_port),
                      plain_paths.mean(axis=1) if n_steps else np.zeros(n_port), np.zeros(n_port),
                      None)  # fmt: skip
    lam = tilt.mixture
    tilted = rng.to_unit(rng.mix64(pkeys ^ MIXTURE_SALT)) >= lam
    t = tilted.astype(float)
    m = tilt.shifts(n_steps)
    market = np.empty_like(z)
    for j in range(n_steps):
        market[:, j] = z[:, j] + m[j] * t
    paths = plain_paths
    if tilt.regime is not None and regime is not None and n_steps:
        q_paths = rng.regime_paths(pkeys, ctr, n_steps, *tilt.regime)
        paths = np.where(tilted[:, None], q_paths, plain_paths).astype(np.int8)
    delta = tilt.quality
    qsum = None
    if delta != 0.0 or quality_mean:
        fk = rng.firm_keys(pkeys, np.arange(portfolio_size))
        zq = rng.normal_array(fk, ctr[Purpose.QUALITY, 0])
        qsum = np.zeros(n_port)
        for i in range(portfolio_size):
            qsum += zq[:, i] + delta * t
    ell = log_ratio(tilt, market, paths, qsum, regime, portfolio_size)
    cold_share = paths.mean(axis=1) if n_steps else np.zeros(n_port)
    qmean = None if not quality_mean else qsum / portfolio_size
    return Sample(ctr, pkeys, market, paths, delta * t, cold_share,
                  mixture_log_weight(ell, lam), qmean)  # fmt: skip


def log_ratio(tilt: Tilt, market: np.ndarray, paths: np.ndarray, qsum: np.ndarray | None,
              regime: tuple | None, portfolio_size: int) -> np.ndarray:  # fmt: skip
    r"""``\ell``: the log density ratio of ``tilt``'s law to the real world at sampled draws.

    ``market`` (n_port, n_steps) are the sampled market normals, ``paths`` the regime paths,
    ``qsum`` each portfolio's sum of sampled qualities (needed when ``tilt.quality`` is not 0).
    Any draws can be scored under any tilt: the pilot scores its draws under candidate tilts.
    """
    n_port, n_steps = market.shape
    m = tilt.shifts(n_steps)
    ell = np.zeros(n_port)
    for j in range(n_steps):
        ell += m[j] * market[:, j] - 0.5 * m[j] * m[j]
    if tilt.regime is not None and regime is not None and n_steps:
        (p_c0, p_hc, p_ch), (q_c0, q_hc, q_ch) = regime, tilt.regime
        cold = paths.astype(bool)
        ell += np.where(cold[:, 0], _log_ratio(q_c0, p_c0), _log_ratio(1 - q_c0, 1 - p_c0))
        hot_stay, hot_go = _log_ratio(1 - q_hc, 1 - p_hc), _log_ratio(q_hc, p_hc)
        cold_stay, cold_go = _log_ratio(1 - q_ch, 1 - p_ch), _log_ratio(q_ch, p_ch)
        for j in range(1, n_steps):
            was, now = cold[:, j - 1], cold[:, j]
            ell += np.where(was, np.where(now, cold_stay, cold_go),
                            np.where(now, hot_go, hot_stay))  # fmt: skip
    delta = tilt.quality
    if delta != 0.0:
        ell += delta * qsum - portfolio_size * 0.5 * delta * delta
    return ell


def mixture_log_weight(ell: np.ndarray, mixture: float) -> np.ndarray:
    """``log w = -log(lambda + (1 - lambda) exp(ell))``: the weight to the defensive mixture."""
    if mixture == 0.0:
        return -ell
    return -np.logaddexp(math.log(mixture), math.log1p(-mixture) + ell)


def scaled(tilt: Tilt, t: float, regime: tuple | None) -> Tilt:
    """The tilt ``t`` of the way from the real world to ``tilt`` (``t = 1``: ``tilt`` itself).

    Shifts scale linearly; regime probabilities move on the logit scale, so they stay inside
    (0, 1) for any ``t``.
    """
    m = tilt.shifts(1) if isinstance(tilt.market, float) else np.asarray(tilt.market)
    market = float(t * m[0]) if isinstance(tilt.market, float) else tuple(t * m)
    moved = None
    if tilt.regime is not None and regime is not None:

        def logit(p: float) -> float:
            return math.log(p) - math.log1p(-p)

        moved = tuple(
            p
            if p in (0.0, 1.0)
            else 1.0 / (1.0 + math.exp(-(logit(p) + t * (logit(q) - logit(p)))))
            for p, q in zip(regime, tilt.regime, strict=True)
        )
    return tilt.replace(market=market, quality=t * tilt.quality, regime=moved)


#: Scales of the cross-entropy tilt the pilot scores (0: plain sampling).
SCALES = tuple(round(0.1 * k, 1) for k in range(16))


def choose_scale(tilt: Tilt, rounds: list, regime: tuple | None, portfolio_size: int,
                 level: float) -> tuple[float, dict[float, float]]:  # fmt: skip
    r"""The scale of ``tilt`` with the least estimated variance of the tail estimates.

    ``rounds`` holds each pilot round's ``(draws, weights, losses, values)``, losses and values
    (S, n) per structure. For each structure's loss tail ``{l > VaR}`` and value tail
    ``{v < q}`` at ``level`` (estimated on all rounds pooled), the second moment under the
    tilt at scale ``t`` is estimated from the pilot draws as
    :math:`\hat M_2(t) = \overline{1_A\, w_k\, w_t}` (``w_k`` the weight the round drew
    under, ``w_t`` the weight the scaled tilt would give the same draws), and the criterion is
    :math:`\sum \hat M_2(t) / \hat P(A)^2`, the relative second moments summed (the
    variance minimisation method: the tilt's scale chosen for the estimates it serves, where
    the cross-entropy solution gives only its direction). Returns the scale and the criterion
    at every scale of :data:`SCALES`.
    """
    w_k = np.concatenate([w for _, w, _, _ in rounds])
    loss = np.concatenate([lo for _, _, lo, _ in rounds], axis=1)
    value = np.concatenate([v for _, _, _, v in rounds], axis=1)
    events = []
    for s in range(loss.shape[0]):
        var = upper_quantile(loss[s], w_k, level)
        q = -upper_quantile(-value[s], w_k, level)
        events += [loss[s] > var, value[s] < q]
    criterion = {}
    for t in SCALES:
        cand = scaled(tilt, t, regime)
        w_t = np.concatenate([
            np.exp(mixture_log_weight(log_ratio(cand, d.market, d.regime,
                                                d.quality_mean * portfolio_size, regime,
                                                portfolio_size), tilt.mixture))
            for d, _, _, _ in rounds
        ])  # fmt: skip
        total = 0.0
        for a in events:
            p = float(np.mean(a * w_k))
            if p > 0.0:
                total += float(np.mean(a * w_k * w_t)) / (p * p)
        criterion[t] = total
    best = min(criterion, key=criterion.get)
    return best, criterion


#: The tail each tail metric rests on: (loss or value, level).
TAIL_OF = {"loss_var_99": ("loss", 0.99), "loss_es_99": ("loss", 0.99),
           "loss_var_999": ("loss", 0.999), "loss_es_999": ("loss", 0.999),
           "credit_capital": ("loss", 0.999), "economic_capital": ("value", 0.999),
           "raroc": ("value", 0.999), "eva": ("value", 0.999)}  # fmt: skip


def tail_points(res, metric: str) -> int | None:
    """Fewest sampled portfolios at or beyond the metric's quantile over the structures."""
    if metric not in TAIL_OF:
        return None
    which, level = TAIL_OF[metric]
    w = np.asarray(res.weights)
    fewest = None
    for r in res.values():
        x = M.loss_rate(r.aggregates) if which == "loss" else -M.value_rate(r.aggregates)
        count = int(np.sum(x >= upper_quantile(x, w, level)))
        fewest = count if fewest is None else min(fewest, count)
    return fewest


def tail_statistic(result) -> np.ndarray:
    """Per portfolio, the loss rate averaged over the result's structures (the tilt's target)."""
    return np.mean([M.loss_rate(r.aggregates) for r in result.values()], axis=0)


def upper_quantile(x: np.ndarray, w: np.ndarray, level: float) -> float:
    """``inf{t : sum(w[x > t]) / n <= 1 - level}``: the weighted (unnormalised) upper quantile."""
    return upper_tail(x, w, level)[0]


def upper_tail(x: np.ndarray, w: np.ndarray, level: float) -> tuple[float, float]:
    r"""VaR and expected shortfall at ``level`` of the sample ``x`` with importance weights ``w``.

    ``VaR = inf{t : sum(w[x > t]) / n <= 1 - level}`` and ``ES = VaR + sum(w (x - VaR)^+) /
    (n (1 - level))``: the unnormalised estimators, which use only the tail's weights (the
    weights of the body are the noisy ones under a tilt). With unit weights they are the
    empirical quantile and shortfall (:func:`invlend.metrics.value_at_risk`).
    """
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")[::-1]
    xs, tail = x[order], np.cumsum(np.asarray(w, float)[order]) / x.size
    k = min(int(np.searchsorted(tail, (1.0 - level) * (1.0 + 1e-12), side="right")), x.size - 1)
    var = float(xs[k])
    es = var + float(np.sum(w * np.maximum(x - var, 0.0))) / (x.size * (1.0 - level))
    return var, es


def cross_entropy_update(stat: np.ndarray, w: np.ndarray, draws: Sample, *, level: float,
                         elite: float, steps_per_year: int, regime: tuple | None,
                         quality: bool) -> tuple[Tilt | None, dict[str, Any]]:  # fmt: skip
    """One round of the cross-entropy method: the next tilt from a pilot run's portfolios.

    ``stat`` is each pilot portfolio's tail statistic (:func:`tail_statistic`), ``w`` its
    importance weight and ``draws`` its systematic draws (:func:`sample` with
    ``quality_mean=True``). The elite are the portfolios at or above ``min(estimated level
    quantile, top elite share)``; each parameter becomes its weighted maximum-likelihood value
    on them. Returns the tilt (``None`` when the elite carry no weight) and the round's record.
    """
    target = upper_quantile(stat, w, level)
    top = float(np.quantile(stat, 1.0 - elite, method="lower"))
    threshold = min(target, top)
    chosen = stat >= threshold
    entry = {"threshold": threshold, "quantile": target, "elite": int(chosen.sum()),
             "reached": threshold >= target}  # fmt: skip
    we = w[chosen]
    if not we.sum() > 0.0:
        return None, entry
    we = we / we.sum()
    n_steps = draws.market.shape[1]
    x = draws.market[chosen]
    shift = np.zeros(n_steps)
    for b0 in range(0, n_steps, steps_per_year):
        block = slice(b0, min(b0 + steps_per_year, n_steps))
        shift[block] = float(we @ x[:, block].mean(axis=1))
    delta = float(we @ draws.quality_mean[chosen]) if quality else 0.0
    tilted = None if regime is None else _regime_update(draws.regime[chosen], we, regime)
    tilt = Tilt(market=tuple(np.clip(shift, -3.0, 3.0)), quality=max(-3.0, min(3.0, delta)),
                regime=tilted, mixture=0.0)  # fmt: skip
    return tilt, entry


def _regime_update(paths: np.ndarray, w: np.ndarray, regime: tuple) -> tuple[float, float, float]:
    """Weighted maximum-likelihood chain probabilities of the elite's regime paths."""
    cold = paths.astype(bool)
    was, now = cold[:, :-1], cold[:, 1:]
    start = float(w @ cold[:, 0])
    hot_steps, cold_steps = w @ (~was).sum(axis=1), w @ was.sum(axis=1)
    to_cold, to_hot = w @ (~was & now).sum(axis=1), w @ (was & ~now).sum(axis=1)
    p_hc = to_cold / hot_steps if hot_steps > 0 else regime[1]
    p_ch = to_hot / cold_steps if cold_steps > 0 else regime[2]

    def inside(p: float, real: float) -> float:
        if real in (0.0, 1.0):
            return real  # a certain start stays certain: its ratio is then 1
        return min(max(float(p), _PROB_FLOOR), 1.0 - _PROB_FLOOR)

    return inside(start, regime[0]), inside(p_hc, regime[1]), inside(p_ch, regime[2])
