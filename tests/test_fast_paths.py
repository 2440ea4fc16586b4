"""Exact tier: the kernels' fast paths give the same numbers bit for bit as the plain ones.

``_sim.cpu._normal`` inlines the ziggurat's fast path of :func:`invlend.rng.normal`,
and ``_sim.cpu._portfolio_irr`` solves several rows side by side. Each must be a pure speed-up:
the same bits as the definition, whatever the inputs and the company a row keeps.
:func:`_cash_flow_rows` is shared with ``test_cuda.py``.
"""

from __future__ import annotations

import numba
import numpy as np

from invlend import rng
from invlend._sim import cpu as K


@numba.njit
def _kernel_normals(keys, ctr):
    out = np.empty(keys.shape[0])
    for i in range(keys.shape[0]):
        out[i] = K._normal(keys[i], ctr)
    return out


def test_inlined_normal_is_rng_normal_bit_for_bit():
    keys = rng.firm_keys(rng.portfolio_keys(rng.root_key(3), np.arange(400)), np.arange(500))
    keys = keys.ravel()
    ctr = rng.counter_table(2)[rng.Purpose.GROWTH, 1]
    got = _kernel_normals(keys, ctr)
    want = rng.normal_array(keys, ctr)
    bits = rng.mix64(keys ^ ctr)
    layer = (bits & np.uint64(0xFF)).astype(np.intp)
    u = 2.0 * rng.to_unit(bits) - 1.0
    slow = ~(np.abs(u) < rng.ZIGGURAT_RATIO[layer])
    # The fast path is exact arithmetic on the bits: equal bit for bit on every machine.
    np.testing.assert_array_equal(got[~slow], want[~slow])
    # The slow paths (wedge rejections and the tail beyond R) call exp and log, which numba
    # (the C maths library) and numpy (its own SIMD code on some CPUs) may round differently
    # in the last place; on this machine they usually agree exactly.
    np.testing.assert_array_max_ulp(got[slow], want[slow], maxulp=4)
    # The sample reaches the slow paths.
    assert slow.sum() > 100
    assert (slow & (layer == 0)).sum() > 5


def _cash_flow_rows(n=203, n_k=61, seed=5):
    gen = np.random.default_rng(seed)
    rows = np.zeros((n, n_k))
    rows[:, 0] = -gen.uniform(50, 150, n)
    last = gen.integers(1, n_k, n)  # rows end at different steps
    for i in range(n):
        rows[i, 1 : last[i] + 1] = gen.uniform(0, 8, last[i]) * (gen.uniform(size=last[i]) < 0.7)
    rows[3] = 0.0  # nothing lent: NaN
    rows[7, 1:] = 0.0  # nothing back: -1
    rows[11, 1] = 1e6  # root beyond the bracket: NaN
    rows[13] = 0.0
    rows[13, 0], rows[13, 12] = -100.0, 100.0  # IRR exactly 0
    rows[17, 5] = 300.0  # a root the Newton steps bisect towards
    return rows


def test_irr_of_a_row_does_not_depend_on_the_rows_solved_with_it():
    rows = _cash_flow_rows()
    together = np.empty(len(rows))
    K._portfolio_irr(rows, 1.0 / 12.0, together)
    alone = np.empty(len(rows))
    for i in range(len(rows)):
        out = np.empty(1)
        K._portfolio_irr(rows[i : i + 1], 1.0 / 12.0, out)
        alone[i] = out[0]
    np.testing.assert_array_equal(together, alone)
    perm = np.random.default_rng(0).permutation(len(rows))
    shuffled = np.empty(len(rows))
    K._portfolio_irr(np.ascontiguousarray(rows[perm]), 1.0 / 12.0, shuffled)
    np.testing.assert_array_equal(shuffled, together[perm])
    assert np.isnan(together[3]) and together[7] == -1.0 and np.isnan(together[11])
    assert abs(together[13]) < 1e-12
    assert np.isfinite(together).mean() > 0.8  # most rows go through the Newton steps
