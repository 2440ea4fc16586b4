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
interval (0, 1) is ``((bits >> 11) + 0.5) * 2**-53``; normals come in Box-Muller pairs from
the uniforms at counters ``2k`` and ``2k + 1`` of the same purpose, and both members of a pair
are used (``z[2k] = r cos(theta)``, ``z[2k+1] = r sin(theta)``).

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
from numba.extending import register_jitable

__all__ = [
    "STREAM_VERSION",
    "Purpose",
    "counter_table",
    "firm_keys",
    "market_keys",
    "normal_pair",
    "portfolio_keys",
    "root_key",
    "uniform",
]

#: Version of the stream definition; it changes only when draws change on purpose.
STREAM_VERSION = 1

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
SEED_SALT = np.uint64(0x5EED1A7E0B1E5D01)
FIRM_SALT = np.uint64(0xF1A3C0DE2468ACE1)
MARKET_SALT = np.uint64(0x3A2B7E7C11D4F00D)
_TWO_M53 = 2.0**-53
_TWO_PI = 2.0 * np.pi


class Purpose(IntEnum):
    """What a draw is for; part of the key, so streams for different purposes never overlap."""

    STAGE = 0  #: uniform picking the starting stage
    VALUE = 1  #: normal for the initial value's dispersion
    QUALITY = 2  #: normal latent quality q
    SIGNAL = 3  #: normal noise e of the lender's quality signal
    GROWTH = 4  #: normal idiosyncratic growth shock, counter = step - 1
    EVENT = 5  #: uniform deciding the competing event, counter = step - 1
    JUMP_COUNT = 6  #: uniform for the number of jumps, counter = step - 1
    JUMP_SIZE = 7  #: normal for the total log jump size, counter = step - 1
    MARKET = 8  #: normal market shock of the portfolio (market key), counter = step - 1


N_PURPOSES = len(Purpose)


@register_jitable
def mix64(z):
    """SplitMix64's finaliser: a bijective 64-bit mixer (scalars or uint64 arrays)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@register_jitable
def to_unit(bits):
    """Map 64 random bits to a uniform on the open interval (0, 1) with 53-bit resolution."""
    return ((bits >> _S11) + 0.5) * _TWO_M53


@register_jitable
def uniform(key, ctr):
    """Uniform draw for ``key`` at the counter word ``ctr`` (from :func:`counter_table`)."""
    return to_unit(mix64(key ^ ctr))


@register_jitable
def normal_pair(key, ctr_even, ctr_odd):
    """Box-Muller pair of independent standard normals from two counter words."""
    u1 = to_unit(mix64(key ^ ctr_even))
    u2 = to_unit(mix64(key ^ ctr_odd))
    r = np.sqrt(-2.0 * np.log(u1))
    theta = _TWO_PI * u2
    return r * np.cos(theta), r * np.sin(theta)


@register_jitable
def firm_key(pkey, firm):
    """Key of firm ``firm`` (int, 0-based within its portfolio) of the portfolio ``pkey``."""
    return mix64(pkey ^ mix64(np.uint64(firm) * GAMMA + FIRM_SALT))


@register_jitable
def market_key(pkey):
    """Key of the market-factor stream of the portfolio ``pkey``."""
    return mix64(pkey ^ MARKET_SALT)


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
    """Counter words ``ctr[purpose, counter]``, shape ``(N_PURPOSES, n_counters)``, uint64.

    ``n_counters`` is rounded up to an even number so normal pairs are always complete.
    """
    n = int(n_counters) + (int(n_counters) & 1)
    c = np.arange(n, dtype=np.uint64)[None, :] * np.uint64(16)
    p = np.arange(N_PURPOSES, dtype=np.uint64)[:, None]
    return np.ascontiguousarray(mix64((c + p + np.uint64(1)) * GAMMA))


def market_shocks(mkeys: np.ndarray, ctr: np.ndarray, n_steps: int) -> np.ndarray:
    """Market normals ``m[portfolio, step - 1]``, shape ``(len(mkeys), n_steps)``."""
    row = ctr[Purpose.MARKET]
    n_pairs = (n_steps + 1) // 2
    z0, z1 = normal_pair(mkeys[:, None], row[0 : 2 * n_pairs : 2], row[1 : 2 * n_pairs : 2])
    out = np.empty((len(mkeys), 2 * n_pairs))
    out[:, 0::2] = z0
    out[:, 1::2] = z1
    return np.ascontiguousarray(out[:, :n_steps])
