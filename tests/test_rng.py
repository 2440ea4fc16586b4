"""Counter-based random streams: exact definition, distribution, purity and independence."""

from __future__ import annotations

import hashlib
import math

import numba
import numpy as np
import pytest
from scipy import stats

from conftest import assert_mc_close, binomial_se
from invlend import rng
from invlend.rng import Purpose

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
ZIGGURAT_R = 3.6541528853610088
N_NORMAL = 2_000_000
N_UNIFORM = 1_000_000


def _mix64_int(z: int) -> int:
    """SplitMix64's finaliser on Python ints: the independent oracle of rng.mix64."""
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _keys(n_portfolios: int, n_firms: int, seed: int = 20260501) -> np.ndarray:
    pk = rng.portfolio_keys(rng.root_key(seed), np.arange(n_portfolios))
    return rng.firm_keys(pk, np.arange(n_firms))


@pytest.fixture(scope="module")
def ctr():
    return rng.counter_table(8)


@pytest.fixture(scope="module")
def normals(ctr):
    keys = _keys(2000, N_NORMAL // 2000).ravel()
    return rng.normal_array(keys, ctr[Purpose.GROWTH, 3])


@pytest.fixture(scope="module")
def uniforms(ctr):
    keys = _keys(1000, N_UNIFORM // 1000).ravel()
    return rng.uniform(keys, ctr[Purpose.EVENT, 2])


# --------------------------------------------------------------------- exact definition


def test_mix64_known_answers():
    # SplitMix64 seeded with 0 outputs mix64(k * GAMMA) for k = 1, 2, 3 (Steele et al. 2014).
    z = (np.arange(1, 4, dtype=np.uint64) * np.uint64(GAMMA)).astype(np.uint64)
    out = rng.mix64(z)
    assert [int(x) for x in out] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_key_derivation_matches_the_documented_formulas():
    root = 0x0123456789ABCDEF
    seed_key = rng.root_key(root)
    assert int(seed_key) == _mix64_int(root ^ 0x5EED1A7E0B1E5D01)
    pk = rng.portfolio_keys(seed_key, np.arange(5))
    for p in range(5):
        assert int(pk[p]) == _mix64_int(int(seed_key) + (p + 1) * GAMMA)
    fk = rng.firm_keys(pk, np.arange(4))
    assert fk.shape == (5, 4) and fk.dtype == np.uint64
    for p in range(5):
        for f in range(4):
            want = _mix64_int(int(pk[p]) ^ _mix64_int(f * GAMMA + 0xF1A3C0DE2468ACE1))
            assert int(fk[p, f]) == want
    mk = rng.market_keys(pk)
    assert [int(x) for x in mk] == [_mix64_int(int(k) ^ 0x3A2B7E7C11D4F00D) for k in pk]
    table = rng.counter_table(6)
    assert table.shape == (len(Purpose), 6) and table.dtype == np.uint64
    for purpose in Purpose:
        for c in range(6):
            assert int(table[purpose, c]) == _mix64_int((c * 16 + int(purpose) + 1) * GAMMA)
    u = rng.uniform(fk, table[Purpose.EVENT, 3])
    for p in range(5):
        for f in range(4):
            bits = _mix64_int(int(fk[p, f]) ^ int(table[Purpose.EVENT, 3]))
            assert u[p, f] == ((bits >> 12) + 0.5) * 2.0**-52


def test_counter_table_extends():
    small, big = rng.counter_table(5), rng.counter_table(40)
    assert np.array_equal(big[:, :5], small)
    assert len(np.unique(big)) == big.size  # no two (purpose, counter) words coincide


def _inverse_mix64(z: int) -> int:
    """Inverse of SplitMix64's finaliser (a bijection): finds the key behind given bits."""

    def unshift(y: int, s: int) -> int:
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x & MASK

    z = unshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & MASK
    z = unshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & MASK
    return unshift(z, 30)


def test_uniform_lowest_word_is_positive():
    u = rng.to_unit(np.array([0, (1 << 12) - 1, 1 << 63], dtype=np.uint64))
    assert u[0] == 2.0**-53 and u[1] == 2.0**-53 and u[2] == 0.5 + 2.0**-53


def test_uniform_highest_word_is_below_one():
    assert rng.to_unit(np.array([MASK], dtype=np.uint64))[0] == 1.0 - 2.0**-53


def _key_hashing_to_all_ones(word: np.uint64) -> np.ndarray:
    """The key whose draw at counter word ``word`` hashes to the all-ones 64-bit word."""
    return np.array([_inverse_mix64(MASK) ^ int(word)], dtype=np.uint64)


def test_inverse_mix64_oracle():
    z = np.array([0, 1, GAMMA, MASK, 0x0123456789ABCDEF], dtype=np.uint64)
    assert [_inverse_mix64(int(x)) for x in rng.mix64(z)] == [int(x) for x in z]
    word = rng.counter_table(1)[Purpose.EVENT, 0]
    assert int(rng.mix64(_key_hashing_to_all_ones(word) ^ word)[0]) == MASK


def test_uniform_of_a_real_key_can_be_one():
    word = rng.counter_table(1)[Purpose.EVENT, 0]
    assert rng.uniform(_key_hashing_to_all_ones(word), word)[0] < 1.0


def test_uniform_range(uniforms):
    assert uniforms.dtype == np.float64
    assert uniforms.min() > 0.0 and uniforms.max() < 1.0


# --------------------------------------------------------------------- distribution


def test_uniform_moments(uniforms):
    n = uniforms.size
    assert_mc_close(uniforms.mean(), 0.5, math.sqrt(1 / 12 / n), label="uniform mean")
    # Var of the sample variance: (mu4 - sigma^4) / n with mu4 = 1/80, sigma^4 = 1/144.
    se_var = math.sqrt((1 / 80 - 1 / 144) / n)
    assert_mc_close(uniforms.var(ddof=1), 1 / 12, se_var, label="uniform variance")


def test_uniform_ks(uniforms):
    d = stats.kstest(uniforms, "uniform").statistic
    critical = 1.9495 / math.sqrt(uniforms.size)  # 0.1% critical value of the KS statistic
    assert d < critical, f"KS D={d:.3g} >= {critical:.3g}"


def test_normal_moments(normals):
    n = normals.size
    assert np.all(np.isfinite(normals))
    assert_mc_close(normals.mean(), 0.0, 1 / math.sqrt(n), label="normal mean")
    assert_mc_close(normals.var(ddof=1), 1.0, math.sqrt(2 / n), label="normal variance")
    assert_mc_close(stats.skew(normals), 0.0, math.sqrt(6 / n), label="normal skewness")
    assert_mc_close(stats.kurtosis(normals), 0.0, math.sqrt(24 / n), label="normal excess kurtosis")


def test_normal_ks_and_chi_square(normals):
    n = normals.size
    d = stats.kstest(normals, "norm").statistic
    critical = 1.9495 / math.sqrt(n)
    assert d < critical, f"KS D={d:.3g} >= {critical:.3g}"
    # 200 equiprobable bins: sensitive to a wrong layer of the ziggurat.
    edges = stats.norm.ppf(np.linspace(0.0, 1.0, 201))
    counts = np.histogram(normals, bins=edges)[0]
    expected = n / 200
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    chi2_critical = stats.chi2.ppf(0.999, df=199)
    assert chi2 < chi2_critical, f"chi2={chi2:.1f} >= {chi2_critical:.1f} (199 df, 0.1%)"


def test_normal_ziggurat_tail(normals):
    n = normals.size
    assert n >= 2_000_000
    p_ref = 2.0 * stats.norm.sf(ZIGGURAT_R)
    p_est = np.mean(np.abs(normals) > ZIGGURAT_R)
    assert_mc_close(p_est, p_ref, binomial_se(p_ref, n), label="normal P(|Z| > ziggurat R)")
    # Deeper in the tail, where only the exponential tail method produces draws.
    p_ref5 = 2.0 * stats.norm.sf(4.2)
    p_est5 = np.mean(np.abs(normals) > 4.2)
    assert_mc_close(p_est5, p_ref5, binomial_se(p_ref5, n), label="normal P(|Z| > 4.2)")
    # Both signs of the tail.
    pos = np.mean(normals > ZIGGURAT_R)
    assert_mc_close(pos, p_ref / 2, binomial_se(p_ref / 2, n), label="normal P(Z > R)")


# --------------------------------------------------------------------- scalar (jitted) draws


@numba.njit(cache=False)
def _scalar_draws(keys, ctr_word):
    u = np.empty(keys.size)
    z = np.empty(keys.size)
    for i in range(keys.size):
        u[i] = rng.uniform(keys[i], ctr_word)
        z[i] = rng.normal(keys[i], ctr_word)
    return u, z


@numba.njit(cache=False)
def _scalar_firm_keys(pkeys, n_firms):
    out = np.empty((pkeys.size, n_firms), np.uint64)
    for p in range(pkeys.size):
        for f in range(n_firms):
            out[p, f] = rng.firm_key(pkeys[p], f)
    return out


def test_jitted_scalar_draws_equal_array_draws_bit_for_bit(ctr):
    keys = _keys(500, 400, seed=7)
    word = ctr[Purpose.JUMP_SIZE, 5]
    u, z = _scalar_draws(keys.ravel(), word)
    u_arr = rng.uniform(keys, word).ravel()
    z_arr = rng.normal_array(keys, word).ravel()
    assert np.array_equal(u, u_arr)
    assert np.array_equal(z, z_arr)
    # The sample exercises every branch: rectangles, wedges and the tail beyond R.
    assert np.sum(np.abs(z) > ZIGGURAT_R) >= 10
    assert np.array_equal(_scalar_firm_keys(keys[:, 0], 7), rng.firm_keys(keys[:, 0], np.arange(7)))


def test_normal_array_keeps_shape_and_broadcasts(ctr):
    keys = _keys(3, 5)
    z = rng.normal_array(keys, ctr[Purpose.VALUE, 0])
    assert z.shape == (3, 5)
    row = rng.normal_array(keys[:, :1], ctr[Purpose.GROWTH, :4][None, :])
    assert row.shape == (3, 4)
    assert np.array_equal(row[:, 2], rng.normal_array(keys[:, 0], ctr[Purpose.GROWTH, 2]))


# --------------------------------------------------------------------- purity


def test_draws_are_pure_functions_of_the_key(ctr):
    keys = _keys(50, 20)
    word = ctr[Purpose.QUALITY, 0]
    assert np.array_equal(rng.normal_array(keys, word), rng.normal_array(keys.copy(), word))
    assert np.array_equal(rng.uniform(keys, word), rng.uniform(keys, word))
    # The same key in another position (or alone) gives the same draw.
    single = rng.normal_array(keys[7:8, 3:4], word)
    assert single[0, 0] == rng.normal_array(keys, word)[7, 3]
    assert np.array_equal(_keys(50, 20), keys)


def test_growing_ranges_extend_the_streams():
    root = rng.root_key(99)
    assert np.array_equal(
        rng.portfolio_keys(root, np.arange(10)), rng.portfolio_keys(root, np.arange(20))[:10]
    )
    assert np.array_equal(
        rng.portfolio_keys(root, np.arange(5, 9)), rng.portfolio_keys(root, np.arange(20))[5:9]
    )
    pk = rng.portfolio_keys(root, np.arange(4))
    assert np.array_equal(rng.firm_keys(pk, np.arange(3)), rng.firm_keys(pk, np.arange(10))[:, :3])


def test_keys_are_distinct():
    keys = _keys(300, 300)
    root = rng.root_key(20260501)
    pk = rng.portfolio_keys(root, np.arange(300))
    every = np.concatenate([keys.ravel(), pk, rng.market_keys(pk)])
    assert np.unique(every).size == every.size


def test_different_seeds_give_different_keys():
    a = rng.portfolio_keys(rng.root_key(1), np.arange(100))
    b = rng.portfolio_keys(rng.root_key(2), np.arange(100))
    assert not np.any(a == b)


# --------------------------------------------------------------------- independence

N_PAIRS = 250_000


def _assert_uncorrelated(x: np.ndarray, y: np.ndarray, label: str) -> None:
    r = np.corrcoef(x.ravel(), y.ravel())[0, 1]
    assert_mc_close(r, 0.0, 1.0 / math.sqrt(x.size), label=f"corr {label}")


@pytest.fixture(scope="module")
def pair_keys():
    return _keys(500, N_PAIRS // 500)


def test_streams_of_different_purposes_are_uncorrelated(pair_keys, ctr):
    base = rng.normal_array(pair_keys, ctr[Purpose.GROWTH, 0])
    for purpose in (Purpose.VALUE, Purpose.QUALITY, Purpose.SIGNAL, Purpose.JUMP_SIZE):
        other = rng.normal_array(pair_keys, ctr[purpose, 0])
        _assert_uncorrelated(base, other, f"GROWTH vs {purpose.name}")
    u_event = rng.uniform(pair_keys, ctr[Purpose.EVENT, 0])
    u_jump = rng.uniform(pair_keys, ctr[Purpose.JUMP_COUNT, 0])
    _assert_uncorrelated(u_event, u_jump, "EVENT vs JUMP_COUNT uniforms")
    _assert_uncorrelated(base, u_event, "GROWTH normal vs EVENT uniform")


def test_streams_of_consecutive_steps_are_uncorrelated(pair_keys, ctr):
    z0 = rng.normal_array(pair_keys, ctr[Purpose.GROWTH, 0])
    z1 = rng.normal_array(pair_keys, ctr[Purpose.GROWTH, 1])
    _assert_uncorrelated(z0, z1, "GROWTH step 1 vs step 2")
    u0 = rng.uniform(pair_keys, ctr[Purpose.EVENT, 0])
    u1 = rng.uniform(pair_keys, ctr[Purpose.EVENT, 1])
    _assert_uncorrelated(u0, u1, "EVENT step 1 vs step 2")


def test_streams_of_neighbouring_firms_and_portfolios_are_uncorrelated(pair_keys, ctr):
    word = ctr[Purpose.GROWTH, 0]
    z = rng.normal_array(pair_keys, word)
    _assert_uncorrelated(z[:, :-1:2], z[:, 1::2], "firm f vs firm f+1")
    _assert_uncorrelated(z[:-1:2], z[1::2], "portfolio p vs portfolio p+1")
    root = rng.root_key(20260501)
    pk = rng.portfolio_keys(root, np.arange(N_PAIRS))
    m = rng.normal_array(rng.market_keys(pk), ctr[Purpose.MARKET, 0])
    f0 = rng.normal_array(rng.firm_keys(pk, np.arange(1))[:, 0], ctr[Purpose.MARKET, 0])
    _assert_uncorrelated(m, f0, "market stream vs firm 0 stream")


def test_streams_of_different_seeds_are_uncorrelated(ctr):
    word = ctr[Purpose.GROWTH, 0]
    a = rng.normal_array(_keys(500, N_PAIRS // 500, seed=1), word)
    b = rng.normal_array(_keys(500, N_PAIRS // 500, seed=2), word)
    _assert_uncorrelated(a, b, "seed 1 vs seed 2")


def test_ziggurat_tables_are_the_frozen_definition():
    # Computed on a CPU, the tables follow its exp and log, and the recurrence from layer to
    # layer compounds an ulp a step: baseline SIMD without FMA puts the top layers 7e-14 apart
    # (532 ulps). The package reads them as constants (tests/make_ziggurat.py wrote them), the
    # same bits on every machine; a digest pins those bits.
    x, _, f = rng._ziggurat_tables()
    np.testing.assert_allclose(rng.ZIGGURAT_X, x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(rng.ZIGGURAT_F, f, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(rng.ZIGGURAT_RATIO, rng.ZIGGURAT_X[1:] / rng.ZIGGURAT_X[:-1])
    assert rng.ZIGGURAT_X[1] == ZIGGURAT_R and rng.ZIGGURAT_X[-1] == 0.0 and rng.ZIGGURAT_F[-1] == 1
    frozen = rng.ZIGGURAT_X.tobytes() + rng.ZIGGURAT_F.tobytes()
    assert hashlib.sha256(frozen).hexdigest()[:16] == "28c43a037a0aaf1c"
