r"""The tail metrics and their bootstrap, in one numba kernel.

Overview
--------
A structure's tail metrics (in :data:`COLUMNS` order: ``loss_var_99``, ``loss_var_999``,
``loss_es_99``, ``loss_es_999``, ``economic_capital``, ``credit_capital``, ``raroc``,
``eva``) are functions of its per-portfolio loss rate :math:`l_p`, value rate
:math:`v_p`, principal :math:`P_p`, exposure years :math:`E_p` and fair value :math:`F_p`
(:func:`invlend.metrics.loss_rate`, :func:`invlend.metrics.value_rate`, the aggregates).
Each is computed under portfolio weights :math:`W_p = c_p w_p`: the resampling count
:math:`c_p` of a bootstrap replicate (1 for the point estimate) times the importance-sampling
weight :math:`w_p` of the run (1 for a plain run). With :math:`N = \sum_p c_p` (the number of
portfolios drawn, not :math:`\sum_p W_p`) the estimators are the unbiased, non-self-normalised
importance-sampling forms, which reduce to the plain empirical ones when :math:`w = 1`:

* **loss VaR and ES at** :math:`\alpha` (0.99, 0.999): with the loss rates sorted
  ascending and :math:`A_i = \sum_{j > i} W_j` the weight above the :math:`i`-th,
  :math:`\mathrm{cw}_i = (N - A_i)/N` and :math:`i^*` the first :math:`i` with
  :math:`\mathrm{cw}_i \ge \alpha - 10^{-12}` (the guard absorbs rounding; for integer
  counts and :math:`w = 1` it is the rule of :func:`invlend.metrics.value_at_risk` bit for bit),
  :math:`\mathrm{VaR} = l_{(i^*)}` and
  :math:`\mathrm{ES} = \big(\sum_{j > i^*} W_j l_{(j)}/N +
  \mathrm{VaR}\,(\mathrm{cw}_{i^*} - \alpha)\big)/(1 - \alpha)`;
  the walk starts at the top, so it costs the tail's length, not :math:`n`;
* **value quantile at 0.001**: with the value rates sorted ascending,
  :math:`q = v_{(i^*)}`, :math:`i^*` the first :math:`i` with
  :math:`\sum_{j \le i} W_j / N \ge 0.001 - 10^{-12}` (the last point if none), walked
  from the bottom;
* **means**: :math:`\mathrm{EL} = \sum W l / N`, :math:`\bar v = \sum W v / N`,
  :math:`\mathrm{years} = \sum W E / \sum W P`, :math:`\mathrm{fv} = \sum W F / \sum W P`
  (NaN without fair values);
* ``economic_capital`` :math:`\mathrm{EC} = \bar v - q`, ``credit_capital``
  :math:`\mathrm{VaR}_{0.999} - \mathrm{EL}`, ``raroc`` :math:`\mathrm{fv} /
  (\mathrm{EC}\cdot\mathrm{years})` (NaN unless EC > 0) and ``eva`` :math:`\mathrm{fv} /
  \mathrm{years} - h\,\mathrm{EC}` at the hurdle rate :math:`h`.

The sort orders are computed once per structure; a replicate then costs one pass over the
portfolios per structure for the sums, plus the two tail walks.

**Poisson bootstrap.** Replicate :math:`b` draws the count of portfolio :math:`i` as a
Poisson(1) variable, a pure function of the run's bootstrap key (:func:`boot_key`),
:math:`b` and :math:`i` through :func:`invlend.rng.mix64`:

.. code-block:: text

    rkey = mix64(key + (b + 1) * GAMMA)
    bits = mix64(rkey ^ mix64(i * GAMMA + BOOT_SALT))
    c    = min{k : u <= F(k)},  u = to_unit(bits),  F the Poisson(1) distribution function

(the Poisson bootstrap of Hanley and MacGibbon 2006, the large-:math:`n` limit of the
multinomial one). Replicates therefore do not depend on threads, batches or how many are
asked for, and replicate :math:`b` uses the same counts for every structure, so paired
differences between structures are bootstrapped on common resamples. Each replicate sums
over the portfolios sequentially in a fixed order: results are bit-identical whatever the
thread count.

Example
-------
>>> import numpy as np
>>> from invlend import _boot
>>> from invlend._sim import layout as L
>>> agg = np.zeros((1000, L.N_AGG))
>>> agg[:, L.AGG_PRINCIPAL] = 1.0
>>> agg[:, L.AGG_LOSS_NET] = np.linspace(0.0, 0.999, 1000)
>>> est, reps = _boot.tail_estimates([agg], [None], None, 0.1, 20, _boot.boot_key(1, ()))
>>> est.shape, reps.shape
((1, 8), (20, 1, 8))
>>> float(est[0, 0])  # 99% VaR of the loss rates 0, 0.001, ..., 0.999
0.989
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

from invlend import _progress, rng
from invlend import metrics as M
from invlend._numba import jit, pjit, prange
from invlend._sim import layout as L

from numba import get_num_threads  # isort: skip  (numba is imported by invlend._numba first)

__all__ = ["COLUMNS", "N_TAIL", "boot_counts", "boot_key", "tail_counts", "tail_estimates"]

#: The tail metrics in the order of the outputs' last axis (the order :func:`_replicate`
#: writes them): the summaries' :data:`invlend.metrics.TAIL_METRICS`.
COLUMNS = M.TAIL_METRICS
#: Number of tail metrics per structure.
N_TAIL = len(COLUMNS)
#: Salt of the portfolio words of the bootstrap stream (apart from every simulation salt).
BOOT_SALT = np.uint64(0xB0075EA7C0DE5A17)
#: Largest count a portfolio can draw: P(Poisson(1) > 20) is below 1e-20, far under the
#: resolution of the uniforms (2**-53), so the truncation never shows.
MAX_COUNT = 20
_GUARD = 1e-12
#: Table entries the count compares with unconditionally: P(Poisson(1) >= 8) is 1e-5.
_BRANCH_FREE = 8
_GAMMA = rng.GAMMA


def _poisson_cdf(kmax: int) -> np.ndarray:
    """``F(k) = exp(-1) sum_{j <= k} 1/j!`` for ``k = 0..kmax``, correctly rounded.

    Computed in 40-digit decimal arithmetic, so the table (and with it every count) does not
    follow the platform's ``exp``; the last entry is 1 so the inverse search always stops.
    """
    with localcontext() as ctx:
        ctx.prec = 40
        term = Decimal(-1).exp()
        acc = Decimal(0)
        out = np.empty(kmax + 1)
        for k in range(kmax + 1):
            if k:
                term /= k
            acc += term
            out[k] = float(acc)
    out[-1] = 1.0
    return out


POISSON_CDF = _poisson_cdf(MAX_COUNT)


def boot_key(seed_entropy, spawn_key=()) -> np.uint64:
    """The bootstrap key of a run: 64 bits of ``SeedSequence(seed, spawn_key + (0xB007,))``.

    ``seed_entropy`` and ``spawn_key`` are the run's (``RunInfo.seed``,
    ``RunInfo.seed_spawn_key``): the replicates follow from the seed, apart from the
    simulation's own streams.
    """
    ss = np.random.SeedSequence(seed_entropy, spawn_key=(*spawn_key, 0xB007))
    return ss.generate_state(1, np.uint64)[0]


def _portfolio_words(n: int) -> np.ndarray:
    """``mix64(i * GAMMA + BOOT_SALT)`` for portfolios ``i = 0..n-1`` (uint64)."""
    return rng.mix64(np.arange(n, dtype=np.uint64) * _GAMMA + BOOT_SALT)


@jit
def _fill_counts(key, b, words, cdf, c):
    """Write replicate ``b``'s Poisson(1) counts of the portfolios into ``c`` (float64).

    The count ``min{k : u <= F(k)}`` is the number of table entries below ``u``: summed
    branch-free over the first ``_BRANCH_FREE`` entries (a search loop mispredicts about
    once a draw), the search going on only past them (probability 1e-5).
    """
    rkey = rng.mix64(key + np.uint64(b + 1) * _GAMMA)
    for i in range(words.size):
        u = rng.to_unit(rng.mix64(rkey ^ words[i]))
        k = 0
        for j in range(_BRANCH_FREE):
            k += u > cdf[j]
        if k == _BRANCH_FREE:
            while u > cdf[k]:
                k += 1
        c[i] = k


@jit
def _upper_tail(x_sorted, order, c, w, total, alpha):
    """VaR and ES at ``alpha`` of the loss rates, walked from the top (module docs)."""
    i = x_sorted.size - 1
    above = 0.0
    above_x = 0.0
    while i > 0:
        p = order[i]
        wi = c[p] * w[p]
        if (total - (above + wi)) / total < alpha - _GUARD:  # point i - 1 falls short: i is i*
            break
        above += wi
        above_x += wi * x_sorted[i]
        i -= 1
    var = x_sorted[i]
    cw = (total - above) / total
    return var, (above_x / total + var * (cw - alpha)) / (1.0 - alpha)


@jit
def _lower_quantile(x_sorted, order, c, w, total, alpha):
    """Lower ``alpha``-quantile of the value rates, walked from the bottom (module docs)."""
    acc = 0.0
    for i in range(x_sorted.size):
        p = order[i]
        acc += c[p] * w[p]
        if acc / total >= alpha - _GUARD:
            return x_sorted[i]
    return x_sorted[x_sorted.size - 1]


@jit
def _replicate(c, w, lr_sorted, lr_order, v_sorted, v_order, sums, hurdle, out):  # fmt: skip
    """The tail metrics of every structure under counts ``c``: ``out`` (S, N_TAIL).

    The one per-replicate function: the point estimate, the keyed bootstrap and explicit
    counts all come through here. Per-structure arrays are (S, n), portfolios in run order
    except the ``*_sorted`` values and their ``*_order`` (argsort) indices.
    """
    n = c.size
    total = 0.0
    for i in range(n):
        total += c[i]
    for s in range(sums.shape[1]):
        s_l = 0.0
        s_v = 0.0
        s_p = 0.0
        s_e = 0.0
        s_f = 0.0
        for i in range(n):
            ci = c[i]
            s_l += ci * sums[0, s, i]
            s_v += ci * sums[1, s, i]
            s_p += ci * sums[2, s, i]
            s_e += ci * sums[3, s, i]
            s_f += ci * sums[4, s, i]
        var99, es99 = _upper_tail(lr_sorted[s], lr_order[s], c, w, total, 0.99)
        var999, es999 = _upper_tail(lr_sorted[s], lr_order[s], c, w, total, 0.999)
        q = _lower_quantile(v_sorted[s], v_order[s], c, w, total, 0.001)
        years = s_e / s_p
        fv = s_f / s_p
        ec = s_v / total - q
        out[s, 0] = var99
        out[s, 1] = var999
        out[s, 2] = es99
        out[s, 3] = es999
        out[s, 4] = ec
        out[s, 5] = var999 - s_l / total
        out[s, 6] = fv / (ec * years) if ec > 0.0 else np.nan
        out[s, 7] = fv / years - hurdle * ec


@pjit
def _tails_keyed(key, b0, b1, n_chunks, words, cdf, w, lr_sorted, lr_order,
                 v_sorted, v_order, sums, hurdle, out):  # fmt: skip
    """Replicates ``b0 <= b < b1`` of the Poisson bootstrap into ``out`` (b1 - b0, S, N_TAIL).

    Chunk ``t`` (one per thread) takes every ``n_chunks``-th replicate from ``b0 + t`` with
    its own counts buffer; a replicate depends only on ``(key, b)``, never on its chunk.
    """
    for t in prange(n_chunks):
        c = np.empty(words.size)
        for b in range(b0 + t, b1, n_chunks):
            _fill_counts(key, b, words, cdf, c)
            _replicate(c, w, lr_sorted, lr_order, v_sorted, v_order, sums, hurdle,
                       out[b - b0])  # fmt: skip


@pjit
def _tails_counts(counts, w, lr_sorted, lr_order, v_sorted, v_order, sums, hurdle,
                  out):  # fmt: skip
    """The tail metrics under each row of explicit ``counts`` (B, n): ``out`` (B, S, N_TAIL)."""
    for b in prange(counts.shape[0]):
        _replicate(counts[b], w, lr_sorted, lr_order, v_sorted, v_order, sums, hurdle,
                   out[b])  # fmt: skip


@jit
def _fill_count_rows(key, b0, words, cdf, out):
    """Replicates ``b0, b0 + 1, ...``'s counts into the rows of ``out`` (for inspection)."""
    for r in range(out.shape[0]):
        _fill_counts(key, b0 + r, words, cdf, out[r])


def _inputs(aggs, fairs, w, control: bool = False) -> tuple:
    """The kernels' arrays from aggregates: the weights, the sorted tails and the sums.

    ``sums`` (5, S, n) holds each portfolio's contribution to the five sums of a replicate
    (loss rate, value rate, principal, exposure years, fair value): ``w x``, or with
    ``control`` the control-variate form ``w x - beta (w - 1)`` of
    :func:`invlend.metrics.controlled` (``beta`` fixed at the run's estimate).
    """
    if len(aggs) != len(fairs):
        raise ValueError(f"{len(aggs)} aggregates but {len(fairs)} fair aggregates")
    n = aggs[0].shape[0] if aggs else 0
    if any(a.shape[0] != n for a in aggs):
        raise ValueError("every structure needs the same number of portfolios")
    w = np.ones(n) if w is None else np.ascontiguousarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"importance weights of shape {w.shape}, expected ({n},)")
    lr = np.array([M.loss_rate(a) for a in aggs]).reshape(len(aggs), n)
    value = np.array([M.value_rate(a) for a in aggs]).reshape(len(aggs), n)
    lr_order = np.argsort(lr, axis=1, kind="stable")
    v_order = np.argsort(value, axis=1, kind="stable")
    fair_npv = np.array(
        [np.full(n, np.nan) if f is None else f[:, L.AGG_NPV] for f in fairs], dtype=np.float64
    ).reshape(len(aggs), n)
    per = [lr, value, *(np.array([a[:, col] for a in aggs], dtype=np.float64).reshape(len(aggs), n)
                        for col in (L.AGG_PRINCIPAL, L.AGG_EXPOSURE)), fair_npv]  # fmt: skip
    weigh = M.controlled if control else (lambda x, w: w * x)
    sums = np.array([[weigh(x[s], w) for s in range(len(aggs))] for x in per]).reshape(5, -1, n)
    return (w, np.take_along_axis(lr, lr_order, 1), lr_order,
            np.take_along_axis(value, v_order, 1), v_order, np.ascontiguousarray(sums))  # fmt: skip


def _under_counts(args: tuple, counts: np.ndarray, hurdle: float) -> np.ndarray:
    """:func:`tail_counts` on the prepared arrays ``args`` of :func:`_inputs`."""
    n_struct, n = args[1].shape
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"counts of shape {counts.shape} for {n} portfolios")
    out = np.full((counts.shape[0], n_struct, N_TAIL), np.nan)
    if counts.shape[0] and n_struct and n:
        _tails_counts(counts, *args, float(hurdle), out)
    return out


def tail_counts(aggs: list[np.ndarray], fairs: list[np.ndarray | None], w: np.ndarray | None,
                hurdle: float, counts: np.ndarray,
                control: bool = False) -> np.ndarray:  # fmt: skip
    """The tail metrics under explicit resampling ``counts`` (B, n): shape (B, S, N_TAIL).

    The same per-replicate code as :func:`tail_estimates`; ``counts`` may be any
    non-negative weights (multinomial counts, ones, ...). ``w`` are the importance weights
    (n,), ``None`` for ones; ``control`` uses them as a control variate in the sums (see
    :func:`tail_estimates`). NaN throughout when there are no portfolios.
    """
    return _under_counts(_inputs(aggs, fairs, w, control), counts, hurdle)


def boot_counts(key: np.uint64, b0: int, b1: int, n: int) -> np.ndarray:
    """The Poisson(1) counts (b1 - b0, n) of replicates ``b0 <= b < b1`` (float64).

    The counts :func:`tail_estimates` draws inside its kernel, materialised for inspection
    and tests.
    """
    out = np.empty((b1 - b0, n))
    _fill_count_rows(np.uint64(key), b0, _portfolio_words(n), POISSON_CDF, out)
    return out


def tail_estimates(aggs: list[np.ndarray], fairs: list[np.ndarray | None], w: np.ndarray | None,
                   hurdle: float, n_boot: int, key: np.uint64, progress: bool = False,
                   control: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Point estimates and Poisson-bootstrap replicates of the tail metrics.

    Parameters
    ----------
    aggs : list of ndarray (n, N_AGG)
        Each structure's per-portfolio aggregates (columns of :mod:`invlend._sim.layout`).
    fairs : list of ndarray (n, N_AGG) or None
        Each structure's risk-neutral aggregates (``None``: fair values NaN).
    w : ndarray (n,) or None
        Importance-sampling weight of each portfolio, shared by the structures (``None``: 1).
    hurdle : float
        Annual hurdle rate of ``eva``.
    n_boot : int
        Number of bootstrap replicates.
    key : uint64
        The run's bootstrap key (:func:`boot_key`).
    progress : bool
        Show a bar over the replicates (they then run in about ten batches).
    control : bool
        Use the weights as a control variate in the means (``E[w] = 1``): each sum's
        contribution becomes ``w x - beta (w - 1)`` (:func:`invlend.metrics.controlled`),
        which removes the noise the weights of the body add to the mean value in
        ``economic_capital`` and to ``expected_loss`` in ``credit_capital``; the quantiles are
        untouched. Without weights it changes nothing.

    Returns
    -------
    est : ndarray (S, N_TAIL)
        The metrics with every count 1, columns in :data:`COLUMNS` order.
    reps : ndarray (n_boot, S, N_TAIL)
        The metrics of each replicate.
    """
    args = _inputs(aggs, fairs, w, control)
    n = args[1].shape[1]
    est = _under_counts(args, np.ones((1, n)), hurdle)[0]
    reps = np.full((n_boot, len(aggs), N_TAIL), np.nan)
    if n_boot == 0 or n == 0 or not aggs:
        return est, reps
    words, key = _portfolio_words(n), np.uint64(key)
    step = -(-n_boot // 10) if progress else n_boot
    bar = _progress.bar(n_boot, "bootstrap", "replicates", progress)
    try:
        for b0 in range(0, n_boot, step):
            b1 = min(b0 + step, n_boot)
            n_chunks = min(get_num_threads(), b1 - b0)
            _tails_keyed(
                key, b0, b1, n_chunks, words, POISSON_CDF, *args, float(hurdle), reps[b0:b1]
            )
            bar.update(b1 - b0)
    finally:
        bar.close()
    return est, reps
