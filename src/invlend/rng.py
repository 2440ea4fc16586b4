r"""Counter-based random streams: every draw is a pure function of its key.

Overview
--------
invlend never holds a random-number *state*. Each draw is computed from the key
``(seed, portfolio, firm, purpose, counter)`` by the **SplitMix64 counter hash** (invlend
stream version 1), built from the 64-bit finaliser of Steele, Lea and Flood's SplitMix64
(the "variant 13" mixer ``mix64``, a bijection of 64-bit words with full avalanche):

.. code-block:: text

    seed_key = mix64(root ^ SEED_SALT)               root: 64 bits from SeedSequence(seed)
    pkey     = mix64(seed_key + (portfolio + 1) * GAMMA)
    fkey     = mix64(pkey ^ mix64(firm * GAMMA + FIRM_SALT))        (firm-level streams)
    mkey     = mix64(pkey ^ MARKET_SALT)                            (the portfolio's market)
    ctr[purpose, counter] = mix64((counter * 16 + purpose + 1) * GAMMA)
    bits     = mix64(key ^ ctr[purpose, counter])

with ``GAMMA = 0x9E3779B97F4A7C15`` (the golden-ratio increment). A uniform on the open
interval (0, 1) is ``((bits >> 12) + 0.5) * 2**-52``. A normal comes from the same 64 bits by
the 256-layer **ziggurat** of Marsaglia and Tsang (2000), in Doornik's (2005) form that takes
the layer index (low 8 bits) and the uniform (high 52 bits) from disjoint bits: about 99% of
draws cost one hash, one table look-up and one multiply. The rare rejections draw further
words by ``bits <- mix64(bits + GAMMA)``, so a normal is still a pure function of its key.

Consequences, each tested:

* results do not depend on chunking, thread count, executor, backend or the list of
  structures, because no draw depends on the order in which draws are made;
* growing ``n_portfolios`` or ``portfolio_size`` extends a run and never reshuffles it;
* a kernel is a deterministic function of its inputs, so it can be tested exactly.

The same Python functions run on numpy ``uint64`` arrays (the ``numpy`` backend, which wraps
silently on overflow) and, compiled into the callers through numba's ``register_jitable``, on
scalars inside the kernels. (numba's on-disk cache of a kernel is keyed on the kernel's own
file: after editing this module, clear the ``__pycache__`` ``*.nbi``/``*.nbc`` files.)

Example
-------
>>> import numpy as np
>>> from invlend import rng
>>> key = rng.root_key(42)
>>> ctr = rng.counter_table(4)
>>> fk = rng.firm_keys(rng.portfolio_keys(key, np.arange(2)), np.arange(3))
>>> u = rng.uniform(fk, ctr[rng.Purpose.EVENT, 0])
>>> u.shape
(2, 3)
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from invlend import _ziggurat
from invlend._numba import register_jitable

__all__ = [
    "STREAM_VERSION",
    "Purpose",
    "counter_table",
    "firm_keys",
    "market_keys",
    "normal",
    "normal_array",
    "portfolio_keys",
    "root_key",
    "uniform",
]

#: Version of the stream definition; it changes only when draws change on purpose.
STREAM_VERSION = 2

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
UNIT_SHIFT = np.uint64(12)
SEED_SALT = np.uint64(0x5EED1A7E0B1E5D01)
FIRM_SALT = np.uint64(0xF1A3C0DE2468ACE1)
MARKET_SALT = np.uint64(0x3A2B7E7C11D4F00D)
REGIME_SALT = np.uint64(0xC7C1E5A1D00DFEED)
_TWO_M52 = 2.0**-52
LAYER_MASK = np.uint64(0xFF)


def _ziggurat_tables(n: int = 256, r: float = 3.6541528853610088, v: float = 0.00492867323399):
    """Layer edges of the 256-layer normal ziggurat (Marsaglia & Tsang 2000, r and v there).

    ``x[0] = v / f(r)`` is the width of the base strip (rectangle plus tail), ``x[1] = r``,
    ``x[i + 1] = sqrt(-2 log(v / x[i] + f(x[i])))`` and ``x[n] = 0``, with ``f(x) =
    exp(-x**2 / 2)``. Returns ``x``, the ratios ``x[i + 1] / x[i]`` and ``f(x)``.

    The definition of the tables; the package reads them as constants from
    :mod:`invlend._ziggurat` (written from this function by ``tests/make_ziggurat.py``), whose
    last bits do not follow the CPU's ``exp`` and ``log``.
    """
    x = np.empty(n + 1)
    x[0] = v / np.exp(-0.5 * r * r)
    x[1] = r
    for i in range(1, n - 1):
        x[i + 1] = np.sqrt(-2.0 * np.log(v / x[i] + np.exp(-0.5 * x[i] * x[i])))
    x[n] = 0.0
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


ZIGGURAT_R = 3.6541528853610088
# The tables as constants (invlend._ziggurat, written from _ziggurat_tables): computed here,
# their last bits would follow the CPU's exp and log. The ratios are a division, exact to the
# same rounding on every machine.
ZIGGURAT_X, ZIGGURAT_F = _ziggurat.X, _ziggurat.F
ZIGGURAT_RATIO = ZIGGURAT_X[1:] / ZIGGURAT_X[:-1]


class Purpose(IntEnum):
    """What a draw is for; part of the key, so streams for different purposes never overlap."""

    STAGE = 0  #: uniform picking the starting stage
    VALUE = 1  #: normal for the initial value's dispersion
    QUALITY = 2  #: normal latent quality q
    SIGNAL = 3  #: normal noise e of the lender's quality signal
    GROWTH = 4  #: normal idiosyncratic growth shock, counter = step - 1
    EVENT = 5  #: uniform choosing which event happens in a step that has one, counter = step - 1
    JUMP_COUNT = 6  #: uniform for the number of jumps, counter = step - 1
    JUMP_SIZE = 7  #: normal for the total log jump size, counter = step - 1
    MARKET = 8  #: normal market shock of the portfolio (market key), counter = step - 1
    REGIME = 9  #: uniform moving the portfolio's funding regime (regime key), counter = step - 1
    CLOCK = 10  #: uniform of the event clock's unit exponential, counter = step its slot starts
    APPRAISAL = 11  #: normal error of a pledge's appraisal, counter 0


N_PURPOSES = len(Purpose)


@register_jitable
def mix64(z):
    """SplitMix64's finaliser: a bijective 64-bit mixer (scalars or uint64 arrays)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@register_jitable
def to_unit(bits):
    """Map 64 random bits to a uniform on the open interval (0, 1).

    The top 52 bits ``m`` give ``(m + 0.5) * 2**-52``: every value is exact in float64, the
    smallest is ``2**-53`` and the largest ``1 - 2**-53``, so 0 and 1 never occur.
    """
    return ((bits >> UNIT_SHIFT) + 0.5) * _TWO_M52


@register_jitable
def uniform(key, ctr):
    """Uniform draw for ``key`` at the counter word ``ctr`` (from :func:`counter_table`)."""
    return to_unit(mix64(key ^ ctr))


@register_jitable
def normal(key, ctr):
    """Standard normal for ``key`` at the counter word ``ctr`` (ziggurat, see module docs)."""
    return normal_bits(mix64(key ^ ctr))


@register_jitable
def normal_bits(b):
    """Scalar ziggurat from the 64-bit word ``b``; rejections re-hash ``b`` (rarely)."""
    while True:
        i = int(b & LAYER_MASK)
        u = 2.0 * to_unit(b) - 1.0
        x = u * ZIGGURAT_X[i]
        if abs(u) < ZIGGURAT_RATIO[i]:
            return x
        b = mix64(b + GAMMA)
        if i == 0:  # the tail beyond R, by Marsaglia's exponential method
            while True:
                xx = -np.log(to_unit(b)) / ZIGGURAT_R
                b = mix64(b + GAMMA)
                yy = -np.log(to_unit(b))
                b = mix64(b + GAMMA)
                if 2.0 * yy >= xx * xx:
                    return ZIGGURAT_R + xx if u > 0.0 else -(ZIGGURAT_R + xx)
        if ZIGGURAT_F[i + 1] + to_unit(b) * (ZIGGURAT_F[i] - ZIGGURAT_F[i + 1]) < np.exp(
            -0.5 * x * x
        ):
            return x
        b = mix64(b + GAMMA)


def normal_array(key, ctr):
    """Vectorised :func:`normal` for uint64 arrays (the same draws, element by element)."""
    bits = mix64(np.asarray(key) ^ ctr)
    return normal_bits_array(bits.ravel()).reshape(bits.shape)


def normal_bits_array(b: np.ndarray) -> np.ndarray:
    i = (b & LAYER_MASK).astype(np.intp)
    u = 2.0 * to_unit(b) - 1.0
    out = u * ZIGGURAT_X[i]
    slow = np.flatnonzero(~(np.abs(u) < ZIGGURAT_RATIO[i]))
    if slow.size == 0:
        return out
    bs = mix64(b[slow] + GAMMA)
    tail = i[slow] == 0
    t = slow[tail]
    if t.size:
        bt = bs[tail]
        res = np.empty(t.size)
        pend = np.arange(t.size)
        while pend.size:
            xx = -np.log(to_unit(bt[pend])) / ZIGGURAT_R
            b2 = mix64(bt[pend] + GAMMA)
            yy = -np.log(to_unit(b2))
            bt[pend] = mix64(b2 + GAMMA)
            ok = 2.0 * yy >= xx * xx
            acc = pend[ok]
            res[acc] = np.where(u[t[acc]] > 0.0, ZIGGURAT_R + xx[ok], -(ZIGGURAT_R + xx[ok]))
            pend = pend[~ok]
        out[t] = res
    w = slow[~tail]
    if w.size:
        bw = bs[~tail]
        iw = i[w]
        xw = out[w]
        ok = ZIGGURAT_F[iw + 1] + to_unit(bw) * (ZIGGURAT_F[iw] - ZIGGURAT_F[iw + 1]) < np.exp(
            -0.5 * xw * xw
        )
        rej = ~ok
        if rej.any():
            out[w[rej]] = normal_bits_array(mix64(bw[rej] + GAMMA))
    return out


@register_jitable
def firm_key(pkey, firm):
    """Key of firm ``firm`` (int, 0-based within its portfolio) of the portfolio ``pkey``."""
    return mix64(pkey ^ mix64(np.uint64(firm) * GAMMA + FIRM_SALT))


def root_key(seed: int) -> np.uint64:
    """Mix a 64-bit root seed (see :func:`invlend.engine.resolve_seed`) into the seed key."""
    # One-element arrays: numpy wraps uint64 overflow silently for arrays, warns for scalars.
    return mix64(np.array([seed], dtype=np.uint64) ^ SEED_SALT)[0]


def portfolio_keys(seed_key: np.uint64, portfolios: np.ndarray) -> np.ndarray:
    """Keys of the given portfolio indices (global, 0-based) as a uint64 array."""
    p = np.asarray(portfolios, dtype=np.uint64)
    return mix64(seed_key + (p + np.uint64(1)) * GAMMA)


def firm_keys(pkeys: np.ndarray, firms: np.ndarray) -> np.ndarray:
    """Firm keys, shape ``(len(pkeys), len(firms))``."""
    f = np.asarray(firms, dtype=np.uint64)
    return mix64(pkeys[:, None] ^ mix64(f * GAMMA + FIRM_SALT)[None, :])


def market_keys(pkeys: np.ndarray) -> np.ndarray:
    """Market-stream keys of the portfolios ``pkeys``."""
    return mix64(pkeys ^ MARKET_SALT)


def counter_table(n_counters: int) -> np.ndarray:
    """Counter words ``ctr[purpose, counter]``, shape ``(N_PURPOSES, n_counters)``, uint64."""
    n = max(int(n_counters), 2)
    c = np.arange(n, dtype=np.uint64)[None, :] * np.uint64(16)
    p = np.arange(N_PURPOSES, dtype=np.uint64)[:, None]
    return np.ascontiguousarray(mix64((c + p + np.uint64(1)) * GAMMA))


def market_shocks(mkeys: np.ndarray, ctr: np.ndarray, n_steps: int) -> np.ndarray:
    """Market normals ``m[portfolio, step - 1]``, shape ``(len(mkeys), n_steps)``."""
    row = ctr[Purpose.MARKET, :n_steps]
    return np.ascontiguousarray(normal_array(mkeys[:, None], row[None, :]))


def regime_paths(
    pkeys: np.ndarray, ctr: np.ndarray, n_steps: int, p_cold0: float, p_hc: float, p_ch: float
) -> np.ndarray:
    """Funding regimes ``r[portfolio, step - 1]`` (0 hot, 1 cold) of the portfolios ``pkeys``.

    A two-state Markov chain on the time grid: the regime of the first step is cold with
    probability ``p_cold0``; each later step switches hot to cold with probability ``p_hc``
    and cold to hot with ``p_ch``, deciding by the uniform at the step's counter.
    """
    keys = mix64(np.asarray(pkeys, dtype=np.uint64) ^ REGIME_SALT)
    u = to_unit(mix64(keys[:, None] ^ ctr[Purpose.REGIME, :n_steps][None, :]))
    out = np.empty((keys.shape[0], n_steps), np.int8)
    if n_steps == 0:
        return out
    cold = u[:, 0] < p_cold0
    out[:, 0] = cold
    for j in range(1, n_steps):
        cold = np.where(cold, ~(u[:, j] < p_ch), u[:, j] < p_hc)
        out[:, j] = cold
    return out
