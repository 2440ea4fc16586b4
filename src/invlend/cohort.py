r"""Exact cohort analytics: the lifecycle as an absorbing Markov chain, without simulation.

Overview
--------
When a firm's default intensity depends on its stage (and quality and funding regime) alone
-- no value barrier, ``hazard_value_elasticity`` 0 and no runway effect
(``runway_hazard_multiplier`` 1, or no stage with ``runway_years``), version 1's model -- a
firm's events do not depend on its value, and its stage moves as a
continuous-time Markov chain with transient states ``0 .. n-1`` (the stages) and three
absorbing states (default, IPO, M&A). In stage ``s`` a firm of quality ``q`` leaves at the
annual rates

.. math::

    \lambda^D_s e^{-\gamma q},\quad \lambda^I_s,\quad \lambda^M_s \quad\text{(absorbing)},
    \qquad \lambda^A_s \quad (s \to s+1),

so the generator is ``Q = [[Q_TT, R], [0, 0]]`` with ``Q_TT`` (n, n) bidiagonal and ``R``
(n, 3) the absorption rates. For a start distribution ``p0`` over the stages:

* eventual outcomes ``p0 N R`` and expected time to absorption ``p0 N 1``, with the
  fundamental matrix ``N = (-Q_TT)^{-1}`` (``N[i, j]`` = expected years in ``j`` from ``i``);
* the probability of ever being in stage ``j`` from the embedded jump chain (hitting
  probabilities of the stage's states);
* at a horizon ``T``: ``p0 e^{Q_TT T}`` (alive, by stage) and
  ``p0 \int_0^T e^{Q_TT s} ds`` (expected years in each stage before ``T``), from one
  ``expm`` of the block matrix ``[[Q_TT, I], [0, 0]] T``; events by ``T`` are the
  latter times ``R``;
* quality ``q ~ N(0, 1)`` is integrated out with Gauss-Hermite quadrature (probabilists'
  weight), doubling the nodes until nothing moves by more than 1e-12.

``grid=True`` gives instead the law of the engine's time grid, which lets at most one event
happen per step (probability ``1 - exp(-L dt)``, split in proportion to the rates): the same
formulas with the one-step matrix ``P`` in place of ``expm(Q dt)``. This is what
:func:`invlend.simulate` draws, exactly, so simulations are tested against it with no bias.

Everything is built from per-stage hazard arrays by :func:`_generator`; the chain solver
(:func:`_chain_law`) works on any generator whose transient states carry a stage label. A
scenario with a funding cycle (``Scenario.cycle``) gives the joint (regime, stage) chain
(:func:`_with_regimes`): states ``k * n + s``, ``K = blockdiag(Q_hot, Q_cold) + kron(G, I_n)``
with ``G`` the regime generator and ``Q_k`` the stage chain under regime ``k``'s
multipliers, ``R = vstack(R_hot, R_cold)``, ``label = tile(arange(n), 2)`` and
``p0 = kron(regime start, stage start)``: labels still stay or rise by one along every
transition, which is all the solver assumes. Exit multiples do not enter the chain.

Where the chain is not the model
--------------------------------
Version 2's value factor ``(V / V_ref) ** -hazard_value_elasticity`` and runway multiplier
make the default intensity depend on the firm's path, not only its stage, and the chain is
then not exact: :func:`cohort` refuses such a scenario with a ``ValueError`` that names the
field, unless ``approximate=True``. That simulates the cohort once and measures, for each
stage ``s``, the ratio ``m_s`` with which the grid chain meets the simulated probability of
defaulting in ``s`` by the horizon (:func:`effective_ratios`): the chain with default hazards
``m_s * default_hazard`` then has the simulation's per-stage defaults (within Monte Carlo
error), and every other number is an approximation (exits and reach depend on the timing of
defaults within a stage, which one constant per stage does not hold).
:func:`invlend.calibrate` builds its simulation method on the same measurement.

Example
-------
>>> import invlend as il
>>> v1 = il.Scenario.default().replace(hazard_value_elasticity=0.0,
...                                    runway_hazard_multiplier=1.0, cycle=None)
>>> c = il.cohort(v1, "early")
>>> round(c.reach["mature"], 3), round(c.ipo + c.ma, 3)
(0.268, 0.829)
>>> a = il.cohort(il.Scenario.default(), "early", horizon_years=1.0, approximate=True,
...               n_firms=20_000)
>>> a.approximate, round(a.default_hazard_ratio["early"], 1)
(True, 4.1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from numpy.polynomial import hermite_e
from pydantic import ValidationError
from scipy.optimize import brentq

from invlend import _checks
from invlend._sim.layout import Event
from invlend._sim.lowering import lower_dynamics
from invlend._tables import html_table, text_table
from invlend.config import FundingCycle, Linkage, Scenario
from invlend.engine import simulate
from invlend.results import Outcomes
from invlend.structures import pure_loan

__all__ = ["Cohort", "cohort"]

#: The absorbing states, in the order of the columns of ``R``.
OUTCOMES = ("default", "ipo", "ma")

#: Quality quadrature (see :func:`_quality_rule`): Gauss-Hermite up to |quality_hazard| = 1,
#: the trapezoidal rule beyond; points are doubled from the start until no quantity moves by
#: more than the tolerance.
_GH_MAX_GAMMA = 1.0
_NODES_START = {"gauss-hermite": 24, "trapezoid": 64}
_NODES_MAX = {"gauss-hermite": 192, "trapezoid": 4096}
_NODES_TOL = 1e-12
#: Trapezoid range in q (the normal density is 8e-23 at 10) and the cap on a firm's hazard
#: scale (a firm that defaults at 1e12 a year has defaulted; the weight of such firms is tiny).
_Q_RANGE = 10.0
_LOG_SCALE_CAP = 27.6


# ----------------------------------------------------------------------------- the chain


def _generator(
    default: np.ndarray, ipo: np.ndarray, ma: np.ndarray, advance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Generator of the stage chain from per-stage annual hazards.

    Parameters
    ----------
    default, ipo, ma, advance : ndarray, (..., n_stages)
        Hazards of each stage; leading axes (e.g. quadrature nodes) are batch axes. The last
        stage's ``advance`` is ignored (there is no next stage).

    Returns
    -------
    q_tt : ndarray, (..., n_stages, n_stages)
        Transient block: ``advance[s]`` at ``(s, s+1)``, minus the total rate on the diagonal.
    r : ndarray, (..., n_stages, 3)
        Absorption rates into (default, IPO, M&A).
    """
    default, ipo, ma, advance = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (default, ipo, ma, advance))
    )
    n = default.shape[-1]
    r = np.stack([default, ipo, ma], axis=-1)
    up = advance.copy()
    up[..., -1] = 0.0  # the last stage has no next stage
    q_tt = np.zeros((*default.shape, n))
    i = np.arange(n)
    q_tt[..., i[:-1], i[1:]] = up[..., :-1]
    q_tt[..., i, i] = -(r.sum(axis=-1) + up)
    return q_tt, r


def _grid_generator(q_tt: np.ndarray, r: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """The engine's one-event-per-step chain, written as rates ``K = (P - I) / dt``.

    In a step a state with total rate ``L`` has an event with probability ``1 - e^{-L dt}``,
    split in proportion to the rates, so ``P_ij = (q_ij / L)(1 - e^{-L dt})``. Writing the
    step matrix as ``I + K dt`` lets every eventual formula use ``K`` as it uses ``Q``.
    """
    total = -np.diagonal(q_tt, axis1=-2, axis2=-1)
    safe = np.where(total > 0, total, 1.0)
    scale = np.where(total > 0, -np.expm1(-total * dt) / (safe * dt), 0.0)  # p / (L dt)
    return q_tt * scale[..., :, None], r * scale[..., :, None]


#: Pade [9/9] coefficients of exp (Higham 2005, Table 2.3): with the 1-norm scaled to <= 1,
#: below theta_9 = 2.098, the approximant is exact to double precision.
_PADE9 = (17643225600.0, 8821612800.0, 2075673600.0, 302702400.0, 30270240.0,
          2162160.0, 110880.0, 3960.0, 90.0, 1.0)  # fmt: skip


def _expm_batched(a: np.ndarray) -> np.ndarray:
    """``expm`` of a stack of generator-like matrices (leading axes are batch axes).

    Scaling and squaring (Higham 2005) done for the whole stack at once: each matrix ``A_i``
    is scaled by ``2^{s_i}`` to 1-norm <= 1, exponentiated with the [9/9] Pade approximant
    (batched matrix products and one batched solve), and squared ``s_i`` times. The
    exponentials of (augmented) generators are non-negative, so squaring them is stable.
    ``scipy.linalg.expm`` gives the same to rounding (tested) but calls BLAS matrix by matrix,
    which costs up to 100x more on these small matrices when BLAS threads compete for cores.
    """
    shape = a.shape
    x = a.reshape(-1, *shape[-2:])
    n = shape[-1]
    norm = np.abs(x).sum(axis=-2).max(axis=-1)
    s = np.where(norm > 1.0, np.ceil(np.log2(np.maximum(norm, 1.0))), 0.0).astype(int)
    x = x / np.exp2(s)[:, None, None]
    b = _PADE9
    eye = np.eye(n)
    x2 = x @ x
    x4 = x2 @ x2
    x6 = x4 @ x2
    x8 = x4 @ x4
    u = x @ (b[9] * x8 + b[7] * x6 + b[5] * x4 + b[3] * x2 + b[1] * eye)
    v = b[8] * x8 + b[6] * x6 + b[4] * x4 + b[2] * x2 + b[0] * eye
    e = np.linalg.solve(v - u, v + u)
    for k in range(int(s.max(initial=0))):
        todo = s > k
        e[todo] = e[todo] @ e[todo]
    return e.reshape(shape)


def _propagate(k: np.ndarray, b: np.ndarray, t: float, dt: float | None):
    r"""``(E, S B)`` with ``E`` the law after ``t`` and ``S`` the occupancy integral.

    Continuous time (``dt is None``): ``E = e^{K t}``, ``S = \int_0^t e^{K s} ds``, both read
    from ``expm([[K, B], [0, 0]] t)`` (Van Loan). On the grid: ``E = P^m``,
    ``S = dt \sum_{k<m} P^k`` with ``P = I + K dt`` and ``m = t / dt`` steps, both read from
    ``[[P, B dt], [0, I]]^m``.
    """
    n, c = k.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(k.shape[:-2], b.shape[:-2])
    big = np.zeros((*batch, n + c, n + c))
    if dt is None:
        big[..., :n, :n] = k
        big[..., :n, n:] = b
        out = _expm_batched(big * t)
    else:
        m = round(t / dt)
        big[..., :n, :n] = np.eye(n) + k * dt
        big[..., :n, n:] = b * dt
        big[..., n:, n:] = np.eye(c)
        out = np.linalg.matrix_power(big, m)
    return out[..., :n, :n], out[..., :n, n:]


class _Law(NamedTuple):
    """Cohort quantities per quadrature node ``m`` and start distribution ``k``."""

    reach: np.ndarray  # (m, k, n_stages)
    absorbed: np.ndarray  # (m, k, 3)
    alive_in: np.ndarray  # (m, k, n_stages)
    years_in: np.ndarray  # (m, k, n_stages)
    absorbed_in: np.ndarray | None = None  # (m, k, n_stages, 3): absorbed from each stage


def _chain_law(
    k_tt: np.ndarray,
    r: np.ndarray,
    p0: np.ndarray,
    label: np.ndarray,
    n_stages: int,
    horizon: float | None,
    dt: float | None,
    by_stage: bool = False,
) -> _Law:
    """Reach, absorption and occupancy of a chain whose transient states carry stage labels.

    Parameters
    ----------
    k_tt : ndarray, (m, n_states, n_states)
        Transient generator (or grid rates ``K``), one per quadrature node.
    r : ndarray, (m, n_states, 3)
        Absorption rates into (default, IPO, M&A).
    p0 : ndarray, (k, n_states)
        Start distributions (one row per cohort; they share the matrix work).
    label : ndarray of int, (n_states,)
        Stage of each transient state (``arange(n_stages)`` for the plain stage chain). Along
        every transition the label stays or rises by one (a round), so a firm is ever in
        stage ``j`` exactly when it starts at or below ``j`` and its last state is at or above.
    horizon : float or None
        Years; ``None`` for eventual quantities.
    dt : float or None
        Step of the engine's grid; ``None`` for continuous time.
    by_stage : bool
        Also return ``absorbed_in``: absorption split by the stage it happens from.
    """
    m, n = k_tt.shape[0], k_tt.shape[-1]
    total = -np.diagonal(k_tt, axis1=-2, axis2=-1)  # (m, n)
    stage = np.arange(n_stages)
    if horizon is None:
        # Hitting probabilities of each stage from the embedded jump chain; states with no
        # rate out stay put and hit nothing.
        safe = np.where(total > 0, total, 1.0)[..., None]
        jump = np.where(total[..., None] > 0, k_tt / safe, 0.0)
        jump[..., np.arange(n), np.arange(n)] = 0.0
        reach = np.zeros((m, p0.shape[0], n_stages))
        for j in stage:
            a, b = label == j, label != j
            hit = np.zeros((m, n))
            hit[:, a] = 1.0
            if b.any():
                pbb = jump[:, b][:, :, b]
                pba1 = jump[:, b][:, :, a].sum(axis=-1, keepdims=True)
                hit[:, b] = np.linalg.solve(np.eye(int(b.sum())) - pbb, pba1)[..., 0]
            reach[:, :, j] = hit @ p0.T
        for i in np.flatnonzero((total <= 0).any(axis=0)):
            if reach[..., label[i]].max() > 0:
                raise _StuckStage(int(label[i]))
        # Expected years in each state: p0 N with N = (-K)^{-1}, the fundamental matrix.
        rhs = np.broadcast_to(p0.T, (m, n, p0.shape[0]))
        years = np.swapaxes(np.linalg.solve(np.swapaxes(-k_tt, -1, -2), rhs), -1, -2)
        alive = np.zeros_like(years)
    else:
        e, s = _propagate(k_tt, np.broadcast_to(np.eye(n), k_tt.shape), horizon, dt)
        alive = np.einsum("ai,mij->maj", p0, e)
        years = np.einsum("ai,mij->maj", p0, s)
        # last[m, i, l]: from state i, the firm's last state by T is l (alive there at T, or
        # absorbed from it before T).
        last = e + s * r.sum(axis=-1)[:, None, :]
        below = (label[:, None] <= stage).astype(float)  # (n, n_stages): label_i <= j
        above = (label[:, None] >= stage).astype(float)  # label_l >= j
        reach = np.einsum("ai,ij,mil,lj->maj", p0, below, last, above)
    absorbed = np.einsum("mai,mic->mac", years, r)
    onehot = (label[:, None] == stage).astype(float)
    absorbed_in = np.einsum("mai,mic,ij->majc", years, r, onehot) if by_stage else None
    return _Law(reach, absorbed, alive @ onehot, years @ onehot, absorbed_in)


class _StuckStage(Exception):
    def __init__(self, stage: int):
        self.stage = stage


def _quality_method(gamma: float) -> str:
    return "gauss-hermite" if abs(gamma) <= _GH_MAX_GAMMA else "trapezoid"


def _quality_rule(gamma: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) for averaging over quality ``q ~ N(0, 1)``.

    Up to ``|gamma| = 1``: Gauss-Hermite with ``n`` nodes (probabilists' weight
    ``exp(-q^2/2)``). Beyond, the integrand ``F(exp(-gamma q))`` turns over on a scale of
    ``1/|gamma|`` in ``q``, which a global polynomial rule resolves only with more nodes than
    ``hermegauss`` can compute (it overflows above about 350), so the trapezoidal rule on
    ``n`` equally spaced points of ``[-10, 10]`` is used: for an integrand analytic in a strip
    it converges exponentially in ``n`` as well, and has no such limit.
    """
    if gamma == 0.0:
        return np.zeros(1), np.ones(1)
    if _quality_method(gamma) == "gauss-hermite":
        x, w = hermite_e.hermegauss(n)
    else:
        x = np.linspace(-_Q_RANGE, _Q_RANGE, n)
        w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


@dataclass(frozen=True)
class Hazards:
    """Per-stage hazard arrays (linkage already applied) and what the chain needs besides."""

    default: np.ndarray
    ipo: np.ndarray
    ma: np.ndarray
    advance: np.ndarray
    quality_hazard: float
    cycle: FundingCycle | None = None


def _with_regimes(
    hz: Hazards, scale: np.ndarray, dt: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Transient rates, absorption rates, stage labels and the regime start law.

    Without a cycle: the stage chain (on the grid: its one-step rates). With a cycle: the
    joint (regime, stage) chain, state ``k * n + s`` for regime ``k`` (0 hot, 1 cold). In
    continuous time ``K = blockdiag(Q_hot, Q_cold) + kron(G, I)`` with ``G`` the regime
    generator. On the grid the engine holds a step's regime through the step and then moves
    it with the exact two-state transition ``T``, so the one-step matrix is
    ``P[(k, s), (k', s')] = P_k[s, s'] T[k, k']`` and a firm is absorbed by its regime's
    ``P_k`` alone.
    """
    n = hz.default.size
    if hz.cycle is None:
        q_tt, r = _generator(hz.default * scale, hz.ipo, hz.ma, hz.advance)
        r = np.broadcast_to(r, (*q_tt.shape[:-1], 3))
        if dt is not None:
            q_tt, r = _grid_generator(q_tt, r, dt)
        return q_tt, r, np.arange(n), np.ones(1)
    c = hz.cycle
    blocks = []
    for reg in (c.hot, c.cold):
        q_k, r_k = _generator(hz.default * scale * reg.default, hz.ipo * reg.exit,
                              hz.ma * reg.exit, hz.advance * reg.advance)  # fmt: skip
        r_k = np.broadcast_to(r_k, (*q_k.shape[:-1], 3))
        if dt is not None:
            q_k, r_k = _grid_generator(q_k, r_k, dt)
        blocks.append((q_k, r_k))
    m = blocks[0][0].shape[0]
    k_tt = np.zeros((m, 2 * n, 2 * n))
    eye = np.eye(n)
    if dt is None:
        g = np.array([[-c.hot_to_cold, c.hot_to_cold], [c.cold_to_hot, -c.cold_to_hot]])
        for a in range(2):
            k_tt[:, a * n : (a + 1) * n, a * n : (a + 1) * n] = blocks[a][0]
        k_tt += np.kron(g, eye)[None]
    else:
        p_hc, p_ch = c.transition(dt)
        t = np.array([[1.0 - p_hc, p_hc], [p_ch, 1.0 - p_ch]])
        for a in range(2):
            step = eye + blocks[a][0] * dt  # the regime's one-step matrix P_a
            for b in range(2):
                k_tt[:, a * n : (a + 1) * n, b * n : (b + 1) * n] = step * t[a, b]
        k_tt = (k_tt - np.eye(2 * n)) / dt
    r = np.concatenate([blocks[0][1], blocks[1][1]], axis=-2)
    start = np.array([1.0 - c.initial_cold, c.initial_cold])
    return k_tt, np.ascontiguousarray(r), np.tile(np.arange(n), 2), start


def law_averaged(
    hz: Hazards,
    p0: np.ndarray,
    horizon: float | None,
    dt: float | None,
    nodes: int | None,
    by_stage: bool = False,
) -> tuple[dict[str, Any], int]:
    """Cohort quantities averaged over quality, and the number of nodes used.

    ``p0`` is (k, n_stages), one start distribution per row; each returned array has the
    start axis first. ``by_stage`` adds ``absorbed_in`` (k, n_stages, 3): the probability of
    each absorption from each stage.
    """
    n = hz.default.size

    def at(n_nodes: int) -> dict[str, Any]:
        x, w = _quality_rule(hz.quality_hazard, n_nodes)
        log_scale = np.clip(-hz.quality_hazard * x, -_LOG_SCALE_CAP, _LOG_SCALE_CAP)
        scale = np.exp(log_scale)[:, None]
        k_tt, r, label, start = _with_regimes(hz, scale, dt)
        k_tt = np.ascontiguousarray(k_tt)
        r = np.ascontiguousarray(r)
        p_states = np.kron(start[None, :], p0)  # (k, n_regimes * n): regime-major states
        law = _chain_law(k_tt, r, p_states, label, n, horizon, dt, by_stage)
        return {
            f: np.tensordot(w, getattr(law, f), axes=(0, 0))
            for f in _Law._fields
            if getattr(law, f) is not None
        }

    if hz.quality_hazard == 0.0:
        return at(1), 1
    if nodes is not None:
        return at(nodes), nodes
    method = _quality_method(hz.quality_hazard)
    n_nodes = _NODES_START[method]
    prev = at(n_nodes)
    while True:
        cur = at(2 * n_nodes)
        change = max(float(np.max(np.abs(cur[f] - prev[f]))) for f in cur)
        n_nodes *= 2
        if change <= _NODES_TOL:
            return cur, n_nodes
        if n_nodes >= _NODES_MAX[method]:
            raise RuntimeError(  # pragma: no cover - not reached for |quality_hazard| <= 5
                f"quality_hazard: the average over quality did not converge with {n_nodes} "
                f"points (last change {change:.2g}); pass nodes= to choose the rule's size"
            )
        prev = cur


# ------------------------------------------------------------------------- public result


def _frozen(names: tuple[str, ...], values: np.ndarray) -> Mapping[str, float]:
    return MappingProxyType({k: float(v) for k, v in zip(names, values, strict=True)})


@dataclass(frozen=True)
class Cohort:
    """Lifecycle outcomes of a cohort of firms (see :func:`cohort`): exact unless ``approximate``.

    Attributes
    ----------
    stages : tuple of str
        Stage names in order.
    start : str
        The start stage, or ``"mix"`` for the scenario's starting weights.
    start_weights : Mapping[str, float]
        Probability of starting in each stage.
    horizon_years : float or None
        ``None``: eventual outcomes; otherwise every quantity is by this horizon.
    grid : bool
        True for the law of the engine's time grid (one event per step).
    steps_per_year : int
        The grid used when ``grid`` is true (the scenario's).
    reach : Mapping[str, float]
        Probability of ever being in each stage (by the horizon); 1 for the start stage.
    default, ipo, ma : float
        Probability of ending in each absorbing state (by the horizon).
    alive : float
        Probability of no event by the horizon (0 for eventual outcomes).
    alive_in : Mapping[str, float]
        Probability of being alive in each stage at the horizon (0 for eventual outcomes).
    years_in : Mapping[str, float]
        Expected years spent in each stage (before the horizon).
    expected_years : float
        Expected years to absorption, ``E[tau]``, or ``E[min(tau, T)]`` with a horizon.
    nodes : int
        Gauss-Hermite nodes used for the quality average (1 when ``quality_hazard`` is 0).
    default_hazard_multiplier, exit_hazard_multiplier : float
        The linkage the hazards were scaled by.
    approximate : bool
        True when the scenario's default intensity depends on the firm's path (value or
        runway factor) and the numbers are those of the chain with each stage's default hazard
        times ``default_hazard_ratio``, measured by simulation: an approximation. False: exact.
    default_hazard_ratio : Mapping[str, float] or None
        The measured ratio ``m_s`` of each stage (``approximate`` only).
    simulated_firms : int
        Firms simulated to measure the ratios (0 when exact).
    simulation_years : float or None
        Years over which the ratios were measured (``None`` when exact).
    seed, seed_spawn_key
        Entropy and spawn key of that simulation's root ``SeedSequence`` (``None`` and ``()``
        when exact): ``SeedSequence(seed, spawn_key=seed_spawn_key)`` replays it.
    """

    stages: tuple[str, ...]
    start: str
    start_weights: Mapping[str, float]
    horizon_years: float | None
    grid: bool
    steps_per_year: int
    reach: Mapping[str, float]
    default: float
    ipo: float
    ma: float
    alive: float
    alive_in: Mapping[str, float]
    years_in: Mapping[str, float]
    expected_years: float
    nodes: int
    default_hazard_multiplier: float = 1.0
    exit_hazard_multiplier: float = 1.0
    approximate: bool = False
    default_hazard_ratio: Mapping[str, float] | None = None
    simulated_firms: int = 0
    simulation_years: float | None = None
    seed: Any = None
    seed_spawn_key: tuple[int, ...] = ()

    @property
    def exit(self) -> float:
        """Probability of an exit, IPO or M&A (by the horizon)."""
        return self.ipo + self.ma

    @property
    def ended(self) -> float:
        """Probability of any event (by the horizon): ``1 - alive``."""
        return self.default + self.ipo + self.ma

    def probability(self, outcome: str) -> float:
        """Probability of ``outcome``: default, ipo, ma, exit, ended or alive."""
        try:
            return {
                "default": self.default,
                "ipo": self.ipo,
                "ma": self.ma,
                "exit": self.exit,
                "ended": self.ended,
                "alive": self.alive,
            }[outcome]
        except KeyError:
            raise ValueError(
                f"outcome: {outcome!r} is not one of default, ipo, ma, exit, ended, alive"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every quantity (and, when approximate, how it was measured)."""
        out = {
            "stages": list(self.stages),
            "start": self.start,
            "start_weights": dict(self.start_weights),
            "horizon_years": self.horizon_years,
            "grid": self.grid,
            "steps_per_year": self.steps_per_year if self.grid else None,
            "reach": dict(self.reach),
            "default": self.default,
            "ipo": self.ipo,
            "ma": self.ma,
            "alive": self.alive,
            "alive_in": dict(self.alive_in),
            "years_in": dict(self.years_in),
            "expected_years": self.expected_years,
            "nodes": self.nodes,
            "default_hazard_multiplier": self.default_hazard_multiplier,
            "exit_hazard_multiplier": self.exit_hazard_multiplier,
        }
        if self.approximate:
            out.update(
                approximate=True,
                default_hazard_ratio=dict(self.default_hazard_ratio or {}),
                simulated_firms=self.simulated_firms,
                simulation_years=self.simulation_years,
                seed=self.seed,
                seed_spawn_key=list(self.seed_spawn_key),
            )
        return out

    def __str__(self) -> str:
        start = "the scenario's stage mix" if self.start == "mix" else self.start
        when = "eventual" if self.horizon_years is None else f"by {self.horizon_years:g} y"
        clock = f"engine grid, {self.steps_per_year} steps/y" if self.grid else "continuous time"
        linkage = ""
        if (self.default_hazard_multiplier, self.exit_hazard_multiplier) != (1.0, 1.0):
            linkage = (
                f"; linkage x{self.default_hazard_multiplier:g} default, "
                f"x{self.exit_hazard_multiplier:g} exits"
            )
        head, rows = self._stage_table()
        lines = [
            f"Cohort from {start}, {when} ({clock}; quality over {self.nodes} "
            f"node{'s' if self.nodes > 1 else ''}{linkage})",
            # Least widths: short stage names and numbers still get the roomy layout the docs show.
            text_table(head, rows, min_widths=(9, 6, 6, 8, 8), rule=False),
        ]
        lines.append(
            f"outcome: default {self.default:.4f}  IPO {self.ipo:.4f}  M&A {self.ma:.4f}"
            + ("" if self.horizon_years is None else f"  alive {self.alive:.4f}")
        )
        what = "E[min(tau, T)]" if self.horizon_years is not None else "E[tau]"
        lines.append(f"expected years to absorption {what} = {self.expected_years:.4f}")
        if self.approximate:
            ratios = "  ".join(f"{k} {v:.3f}" for k, v in (self.default_hazard_ratio or {}).items())
            lines.append(
                f"APPROXIMATE: the default intensity depends on the firm's path; the chain's "
                f"default hazards are x ratios measured by simulating {self.simulated_firms} "
                f"firms over {self.simulation_years:g} y: {ratios}"
            )
        return "\n".join(lines)

    __repr__ = __str__

    def _stage_table(self) -> tuple[list[str], list[list[str]]]:
        """The header and rows of the per-stage table (start, reach, years in, alive in)."""
        columns = [self.start_weights, self.reach, self.years_in]
        head = ["stage", "start", "reach", "years in"]
        if self.horizon_years is not None:
            columns.append(self.alive_in)
            head.append("alive in")
        return head, [[s, *(f"{c[s]:.3f}" for c in columns)] for s in self.stages]

    def _repr_html_(self) -> str:
        text = str(self).split("\n")
        head, rows = self._stage_table()
        # the title line, then (after the stage table) the outcome lines of the text
        return html_table(head, rows, title=text[0], notes=text[2 + len(self.stages) :])


# ---------------------------------------------------------------------------- entry point


def start_weights(scenario: Scenario, start_stage: str | None) -> np.ndarray:
    """Probability of starting in each stage, (n_stages,).

    All of it in ``start_stage``, or the scenario's stage weights when that is ``None``.
    """
    n = len(scenario.stages)
    if start_stage is None:
        w = np.array([s.weight for s in scenario.stages])
        return w / w.sum()
    if not isinstance(start_stage, str):
        raise TypeError(f"start_stage: give a stage name or None, not {type(start_stage)}")
    try:
        j = scenario.stage_index(start_stage)
    except KeyError as exc:
        raise ValueError(f"start_stage: {exc.args[0]}") from None
    p0 = np.zeros(n)
    p0[j] = 1.0
    return p0


def _hazards(scenario: Scenario, linkage: Linkage | None) -> Hazards:
    """Per-stage hazards with the linkage applied by the engine's own lowering."""
    dyn = lower_dynamics(scenario, linkage if linkage is not None else Linkage())
    return Hazards(
        default=np.array(dyn.default_hazard, float),
        ipo=np.array(dyn.ipo_hazard, float),
        ma=np.array(dyn.ma_hazard, float),
        advance=np.array(dyn.advance_hazard, float),
        quality_hazard=float(dyn.quality_hazard),
        cycle=scenario.cycle,
    )


def check_barrier(scenario: Scenario, ignore_barrier: bool) -> None:
    """Refuse a scenario with a value barrier, which the chain leaves out, unless told to."""
    if scenario.default_barrier > 0 and not ignore_barrier:
        raise ValueError(
            f"default_barrier: the scenario has a structural default barrier "
            f"({scenario.default_barrier:g} x V0), which depends on firm value and is outside "
            "the stage chain; the chain analytics exclude it. Pass ignore_barrier=True to get "
            "the hazard-only chain, or set default_barrier = 0"
        )


def _check_horizon(horizon_years: Any, grid: bool, scenario: Scenario) -> float | None:
    """``horizon_years`` as a float (``None`` stays ``None``), checked against the grid."""
    if horizon_years is None:
        return None
    horizon_years = _checks.number("horizon_years", horizon_years, low=0.0, high=1000.0)
    if grid:
        steps = horizon_years * scenario.steps_per_year
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(
                f"horizon_years: {horizon_years:g} y is not a whole number of steps of the "
                f"scenario's grid (steps_per_year={scenario.steps_per_year})"
            )
    return horizon_years


# ---------------------------------------------------------- where the chain is exact


def path_dependence(scenario: Scenario) -> list[tuple[str, str]]:
    """Why the scenario's default intensity depends on more than a firm's stage.

    Returns ``(field, reason)`` pairs; empty exactly when the chain is the model:
    ``hazard_value_elasticity`` 0, and no runway effect (``runway_hazard_multiplier`` 1 or no
    stage with ``runway_years``).
    """
    found = []
    beta = scenario.hazard_value_elasticity
    if beta != 0.0:
        found.append((
            "hazard_value_elasticity",
            f"the default intensity scales with firm value as (V / V_ref) ** -{beta:g}, so it "
            "depends on each firm's value path",
        ))  # fmt: skip
    runway = [(i, s) for i, s in enumerate(scenario.stages) if s.runway_years is not None]
    if scenario.runway_hazard_multiplier != 1.0 and runway:
        where = ", ".join(f"stages[{i}] ({s.name!r}).runway_years = {s.runway_years:g}"
                          for i, s in runway)  # fmt: skip
        found.append((
            "runway_hazard_multiplier",
            f"the default intensity is multiplied by {scenario.runway_hazard_multiplier:g} "
            f"once the time since a firm's last funding round passes its stage's runway "
            f"({where}), so it depends on the firm's path (the time since its last round), not "
            "only on its stage",
        ))  # fmt: skip
    return found


def check_exact(scenario: Scenario, remedy: str) -> None:
    """Refuse a scenario on which the stage chain is not exact, saying why and ``remedy``."""
    found = path_dependence(scenario)
    if found:
        fields = " and ".join(f for f, _ in found)
        why = "; ".join(r for _, r in found)
        raise ValueError(
            f"{fields}: {why}. The stage chain is exact only when the default intensity "
            f"depends on the stage alone. {remedy}"
        )


# ------------------------------------------------ effective default hazards, by simulation

#: The hazard fields of a Stage, in the row order of every (4, n_stages) hazard array.
HAZARD_FIELDS = ("default_hazard", "ipo_hazard", "ma_hazard", "advance_hazard")
#: Firms per simulated portfolio when effective hazards are measured. Firms of a portfolio
#: share a market-factor (and funding-regime) path, so standard errors are clustered by
#: portfolio; small portfolios give many clusters.
SIMULATION_PORTFOLIO_SIZE = 50
#: Eventual outcomes are measured over the first whole year at which the chain, at the
#: starting hazards, leaves at most this share of the cohort alive (at most the cap, years).
EVENTUAL_ALIVE = 0.01
EVENTUAL_MAX_YEARS = 50
#: Effective-hazard ratios are looked for in this range (and clipped to it).
_RATIO_RANGE = (1e-4, 1e4)


class StageDefaults(NamedTuple):
    """Simulated probability of defaulting in each stage by a horizon, from one start law."""

    value: np.ndarray  # (n_stages,)
    se: np.ndarray  # (n_stages,) standard error, clustered by portfolio
    count: np.ndarray  # (n_stages,) simulated defaults behind each value


def simulation_seed(seed: Any) -> np.random.SeedSequence:
    """The one root of a measurement's simulations (``None``: fresh entropy, drawn once).

    Every iteration of a measurement simulates from this root, so all of them share their
    random numbers (common random numbers): only the hazards differ between them.
    """
    seed = _checks.seed("seed", seed)
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def check_stream(root: np.random.SeedSequence) -> np.random.SeedSequence:
    """An independent stream for checking what was fitted on ``root``: its child ``1``."""
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 1))


def simulation_scenario(
    scenario: Scenario, hazards: np.ndarray, weights: np.ndarray, years: float
) -> Scenario:
    """What a measurement simulates: ``scenario`` with other hazards, start law and horizon.

    ``hazards`` (4, n_stages) are before any linkage, in the order of ``HAZARD_FIELDS``;
    ``weights`` become the stages' start weights and ``years`` the horizon. The barrier is off:
    it is outside the chain (see :func:`check_barrier`).
    """
    stages = []
    for j, s in enumerate(scenario.stages):
        fields = s.model_dump()
        fields.update({f: float(hazards[r, j]) for r, f in enumerate(HAZARD_FIELDS)})
        fields["weight"] = float(weights[j])
        stages.append(fields)
    data = {**scenario.model_dump(), "stages": stages, "horizon_years": float(years),
            "default_barrier": 0.0}  # fmt: skip
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(
            f"simulation_years: the scenario cannot be simulated for {years:g} y ({msg}); give "
            "a shorter simulation_years"
        ) from None


def simulate_outcomes(
    scenario: Scenario, linkage: Linkage | None, n_firms: int, seed: np.random.SeedSequence
) -> Outcomes:
    """Per-firm outcomes of ``n_firms`` (rounded up to whole portfolios) under ``linkage``."""
    size = SIMULATION_PORTFOLIO_SIZE
    loan = pure_loan(maturity_years=scenario.horizon_years,
                     linkage=linkage if linkage is not None else Linkage())  # fmt: skip
    res = simulate(scenario, [loan], n_portfolios=-(-n_firms // size), portfolio_size=size,
                   seed=seed)  # fmt: skip
    return res[loan.name].outcomes


def mix_share(
    hit: np.ndarray, initial: np.ndarray, start: np.ndarray, names: tuple[str, ...]
) -> tuple[float, np.ndarray]:
    r"""Probability of ``hit`` for a cohort whose start law is ``start``, from firms of any start.

    The start stage is drawn first and independently of everything else, so the firms that
    start in ``j`` are a sample of the cohort from ``j``, and the estimate is
    :math:`\sum_j \pi_j A_j / N_j` (hits and firms from ``j``). Returns it with its influence per
    portfolio :math:`\psi_p = \sum_j \pi_j (a_{pj} - \hat p_j n_{pj}) / N_j`, from which
    :func:`clustered_se` gives the standard error with portfolios as the unit.

    Parameters
    ----------
    hit : ndarray of bool, (n_portfolios, portfolio_size)
    initial : ndarray of int, (n_portfolios, portfolio_size)
        Start stage of each firm.
    start : ndarray, (n_stages,)
        The cohort's start law.
    """
    value = 0.0
    psi = np.zeros(hit.shape[0])
    for j in np.flatnonzero(start > 0):
        at = initial == j
        n_p = at.sum(axis=1)
        total = int(n_p.sum())
        if total == 0:
            raise ValueError(
                f"n_firms: no simulated firm starts in stage {names[j]!r}, which the cohort "
                "starts in; raise n_firms"
            )
        a_p = (hit & at).sum(axis=1)
        p = a_p.sum() / total
        value += start[j] * p
        psi += start[j] * (a_p - p * n_p) / total
    return float(value), psi


def clustered_se(psi: np.ndarray) -> float:
    """Standard error from influence values per portfolio: ``sqrt(P / (P - 1) sum psi^2)``."""
    n = psi.size
    return math.sqrt(n / (n - 1) * float(np.sum(psi * psi))) if n > 1 else math.nan


def stage_defaults(
    outcomes: Outcomes, steps: int, start: np.ndarray, names: tuple[str, ...]
) -> StageDefaults:
    """Simulated probability of defaulting in each stage by step ``steps``, from ``start``.

    See :func:`mix_share` for how the start law is met by firms of every start.
    """
    n = len(names)
    initial = np.asarray(outcomes.initial_stage)
    failed = (np.asarray(outcomes.event) == int(Event.DEFAULT)) & (
        np.asarray(outcomes.step) <= steps
    )
    in_cohort = start[initial] > 0
    value, se, count = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    for s in range(n):
        hit = failed & (np.asarray(outcomes.stage) == s)
        value[s], psi = mix_share(hit, initial, start, names)
        se[s] = clustered_se(psi)
        count[s] = int(np.count_nonzero(hit & in_cohort))
    return StageDefaults(value, se, count)


def effective_ratios(
    hz: Hazards,
    start: np.ndarray,
    horizon: float,
    dt: float,
    simulated: StageDefaults,
    nodes: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Ratios ``m_s`` with which the grid chain meets the simulated defaults of each stage.

    Solves, stage by stage, :math:`D^{chain}_s(d \cdot m) = D^{sim}_s`, with :math:`D_s` the
    probability of defaulting in stage ``s`` by ``horizon`` from ``start``. Both sides are on
    the engine's grid (``dt``), so the ratios hold the value and runway factors alone and are 1
    in law where the chain is exact. :math:`D^{chain}_s` depends on the stages up to ``s``
    only (a firm never goes back) and rises with ``m_s``, so each equation is one root of a
    monotone function, found after the stages before it. :math:`D^{chain}_s = d_s m_s
    E^{chain}_s` (years in ``s``, when ``quality_hazard`` is 0): ``m_s`` is the simulated
    defaults of stage ``s`` per year the effective chain spends there, over the chain's rate.

    Returns the ratios (1 where stage ``s`` has no default hazard or no simulated default)
    and the standard errors of their logs (delta method; NaN where not measured).
    """
    n = hz.default.size
    ratio = np.ones(n)
    se_log = np.full(n, math.nan)
    lo, hi = (math.log(x) for x in _RATIO_RANGE)

    def gap(x: float, s: int) -> float:
        m = ratio.copy()
        m[s] = math.exp(x)
        law, _ = law_averaged(replace(hz, default=hz.default * m), start[None, :], horizon, dt,
                              nodes, by_stage=True)  # fmt: skip
        return float(law["absorbed_in"][0, s, 0]) - float(simulated.value[s])

    for s in range(n):
        if hz.default[s] <= 0.0 or simulated.value[s] <= 0.0:
            continue
        # bracket the root from [-1/2, 1/2] outwards (the ratios are usually near 1)
        a, b = -0.5, 0.5
        fa, fb = gap(a, s), gap(b, s)
        while fa > 0.0 and a > lo:
            a, b, fb = max(2.0 * a, lo), a, fa
            fa = gap(a, s)
        while fb < 0.0 and b < hi:
            a, b, fa = b, min(2.0 * b, hi), fb
            fb = gap(b, s)
        if fa >= 0.0:  # at or below the bracket's low end (clipped there)
            x = a
        elif fb <= 0.0:  # at or above its high end
            x = b
        else:
            x = brentq(gap, a, b, args=(s,), xtol=1e-10)
        ratio[s] = math.exp(x)
        slope = (gap(x + 1e-4, s) - gap(x - 1e-4, s)) / 2e-4  # d D_s / d log m_s
        se_log[s] = float(simulated.se[s]) / slope if slope > 0.0 else math.nan
    return ratio, se_log


def eventual_years(hz: Hazards, starts: np.ndarray, floor_years: float) -> float:
    """Years over which eventual outcomes are measured by simulation.

    The first whole year, from ``floor_years`` up, at which the chain leaves at most
    ``EVENTUAL_ALIVE`` of every start law in ``starts`` (k, n_stages) alive; at most
    ``EVENTUAL_MAX_YEARS``.
    """

    def alive(years: int) -> float:
        law, _ = law_averaged(hz, starts, float(years), None, None)
        return float(law["alive_in"].sum(axis=-1).max())

    lo, hi = max(1, math.ceil(floor_years - 1e-9)), EVENTUAL_MAX_YEARS
    if lo >= hi or alive(lo) <= EVENTUAL_ALIVE:
        return float(lo)
    if alive(hi) > EVENTUAL_ALIVE:
        return float(hi)
    while hi - lo > 1:  # alive(lo) > EVENTUAL_ALIVE >= alive(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if alive(mid) > EVENTUAL_ALIVE else (lo, mid)
    return float(hi)


def check_steps(years: float, scenario: Scenario, name: str) -> int:
    """``years`` as a whole number of the scenario's steps, or a ``ValueError`` naming ``name``."""
    steps = years * scenario.steps_per_year
    if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
        raise ValueError(
            f"{name}: {years:g} y is not a whole number of steps of the scenario's grid "
            f"(steps_per_year={scenario.steps_per_year}), on which the engine simulates"
        )
    return round(steps)


def cohort(
    scenario: Scenario,
    start_stage: str | None = None,
    *,
    linkage: Linkage | None = None,
    horizon_years: float | None = None,
    grid: bool = False,
    nodes: int | None = None,
    ignore_barrier: bool = False,
    approximate: bool = False,
    n_firms: int = 100_000,
    seed: int | np.random.SeedSequence | None = 0,
    simulation_years: float | None = None,
) -> Cohort:
    r"""Lifecycle outcomes of a cohort from the stage chain: reach, default, IPO, M&A, timing.

    Solves the absorbing stage chain of the scenario (see the module guide); no simulation.
    The chain is **exact** when a firm's default intensity depends on its stage (and quality
    and funding regime) alone: ``hazard_value_elasticity`` 0 and no runway effect
    (``runway_hazard_multiplier`` 1, or no stage with ``runway_years``), version 1's model.
    Then, in continuous time, it is the model's law, and with ``grid=True`` it is the law of
    :func:`invlend.simulate` itself. Otherwise the intensity depends on the firm's value path
    or on the time since its last round, the chain does not apply, and this raises
    ``ValueError`` naming the field, unless ``approximate=True``.

    Parameters
    ----------
    scenario : Scenario
        Stages and their hazards; ``quality_hazard`` sets the spread of default hazards.
        Firm values, drifts and volatilities do not enter (events do not depend on value
        unless there is a barrier, a value factor or a runway; see above).
    start_stage : str or None
        Name of the stage every firm starts in, or ``None`` for the scenario's mix of
        starting stages (stage ``weight``).
    linkage : Linkage, optional
        Multiplies every default hazard by ``default_hazard_multiplier`` and every IPO and
        M&A hazard by ``exit_hazard_multiplier``, as :func:`invlend.simulate` does for a
        structure with this linkage.
    horizon_years : float, optional
        ``None`` (default): eventual outcomes, ``E[tau]``. A number ``T``: every quantity is by
        ``T``; ``alive`` is ``P(tau > T)`` and ``expected_years`` is ``E[min(tau, T)]``.
    grid : bool
        False (default): continuous-time hazards, the model. True: the law of the engine's
        grid of ``scenario.steps_per_year`` steps, which lets at most one event happen per step;
        this is what :func:`invlend.simulate` samples, exactly. Its distance from the
        continuous chain is O(dt).
    nodes : int, optional
        Gauss-Hermite nodes for the average over quality. By default nodes are doubled from
        24 until no quantity moves by more than 1e-12.
    ignore_barrier : bool
        The structural barrier (``default_barrier > 0``) depends on firm value and is not in
        the chain; such a scenario raises ``ValueError`` unless this is True, in which case
        the result is for the hazards alone.
    approximate : bool
        For a scenario with a value or runway factor: instead of raising, simulate
        ``n_firms`` firms from the cohort's start law (by the horizon, or over
        ``simulation_years`` for eventual outcomes), measure for each stage ``s`` the ratio
        ``m_s`` with which the grid chain meets the simulated probability of defaulting in
        ``s`` (:func:`effective_ratios`), and solve the chain with default hazards
        ``m_s * default_hazard``. The result says ``approximate=True`` and holds the ratios;
        its per-stage defaults by the measured horizon match the simulation's (within
        Monte Carlo error), every other number is approximate. Where the chain is exact this
        changes nothing (no simulation is run).
    n_firms : int
        Firms simulated when ``approximate`` (rounded up to portfolios of 50).
    seed : int, numpy.random.SeedSequence or None
        Seed of that simulation (default 0: the approximation is reproducible).
    simulation_years : float, optional
        Years simulated for eventual outcomes when ``approximate``: by default the first whole
        year at which the chain leaves at most 1% of the cohort alive (at most 50). With a
        horizon the simulation runs to the horizon.

    Returns
    -------
    Cohort
        Frozen result; ``print`` it for a table, ``to_dict()`` for JSON.

    Notes
    -----
    A firm of quality ``q`` has default hazard ``default_hazard * exp(-quality_hazard * q)``;
    every quantity is the ``N(0, 1)`` average over ``q`` of the chain's value at that ``q``
    (all are linear in the chain's law, so averaging them is exact).
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario).__name__}")
    if linkage is not None and not isinstance(linkage, Linkage):
        raise TypeError(f"linkage: expected an invlend.Linkage, got {type(linkage).__name__}")
    if nodes is not None:
        # hermegauss overflows above about 350 nodes; the trapezoid rule's cost and memory
        # grow with its nodes, and the automatic choice never needs more than its cap.
        most = {"gauss-hermite": 300, "trapezoid": _NODES_MAX["trapezoid"]}
        method = _quality_method(scenario.quality_hazard)
        nodes = _checks.count(f"nodes ({method} rule)", nodes, low=1, high=most[method])
    check_barrier(scenario, ignore_barrier)
    if not isinstance(approximate, bool | np.bool_):
        raise TypeError(f"approximate: expected True or False, got {type(approximate).__name__}")
    horizon = _check_horizon(horizon_years, grid, scenario)
    p0 = start_weights(scenario, start_stage)
    if not approximate:
        check_exact(scenario, _COHORT_REMEDY)
    hz = _hazards(scenario, linkage)
    dt = scenario.dt if grid else None
    names = tuple(s.name for s in scenario.stages)
    measured: dict[str, Any] = {}
    if approximate and path_dependence(scenario):
        hz, measured = _approximate_hazards(scenario, hz, p0, horizon, linkage, names, n_firms,
                                            seed, simulation_years)  # fmt: skip
    try:
        rows, n_nodes = law_averaged(hz, p0[None, :], horizon, dt, nodes)
        law = {f: v[0] for f, v in rows.items()}
    except _StuckStage as exc:
        raise ValueError(
            f"stages[{exc.stage}] ({names[exc.stage]!r}) has no hazards: a firm that reaches "
            "it never leaves, so eventual outcomes are not defined; give horizon_years"
        ) from None
    lk = linkage if linkage is not None else Linkage()
    return Cohort(
        stages=names,
        start="mix" if start_stage is None else start_stage,
        start_weights=_frozen(names, p0),
        horizon_years=horizon,
        grid=grid,
        steps_per_year=scenario.steps_per_year,
        reach=_frozen(names, law["reach"]),
        default=float(law["absorbed"][0]),
        ipo=float(law["absorbed"][1]),
        ma=float(law["absorbed"][2]),
        alive=float(law["alive_in"].sum()),
        alive_in=_frozen(names, law["alive_in"]),
        years_in=_frozen(names, law["years_in"]),
        expected_years=float(law["years_in"].sum()),
        nodes=n_nodes,
        default_hazard_multiplier=lk.default_hazard_multiplier,
        exit_hazard_multiplier=lk.exit_hazard_multiplier,
        **measured,
    )


_COHORT_REMEDY = (
    "Simulate the scenario (il.simulate), pass approximate=True for the chain with each "
    "stage's default hazard rescaled by a simulation (an approximation), or, to fit hazards "
    "to targets, use calibrate(..., method='simulation')."
)


def _approximate_hazards(
    scenario: Scenario,
    hz: Hazards,
    p0: np.ndarray,
    horizon: float | None,
    linkage: Linkage | None,
    names: tuple[str, ...],
    n_firms: Any,
    seed: Any,
    simulation_years: Any,
) -> tuple[Hazards, dict[str, Any]]:
    """The chain's hazards with the default hazards times simulated ratios, and the record."""
    n_firms = _checks.count("n_firms", n_firms, low=2 * SIMULATION_PORTFOLIO_SIZE,
                            high=100_000_000)  # fmt: skip
    root = simulation_seed(seed)
    if horizon is not None:
        years = horizon
        check_steps(years, scenario, "horizon_years")
    elif simulation_years is not None:
        years = _checks.number("simulation_years", simulation_years, low=0.0, high=100.0,
                               low_open=True)  # fmt: skip
        check_steps(years, scenario, "simulation_years")
    else:
        years = eventual_years(hz, p0[None, :], 1.0)
    base = np.array([[getattr(s, f) for s in scenario.stages] for f in HAZARD_FIELDS])
    outcomes = simulate_outcomes(simulation_scenario(scenario, base, p0, years), linkage,
                                 n_firms, root)  # fmt: skip
    steps = round(years * scenario.steps_per_year)
    simulated = stage_defaults(outcomes, steps, p0, names)
    _, grid_nodes = law_averaged(hz, p0[None, :], years, scenario.dt, None)
    ratio, _ = effective_ratios(hz, p0, years, scenario.dt, simulated, grid_nodes)
    record = {
        "approximate": True,
        "default_hazard_ratio": _frozen(names, ratio),
        "simulated_firms": int(outcomes.event.size),
        "simulation_years": float(years),
        "seed": root.entropy,
        "seed_spawn_key": tuple(int(k) for k in root.spawn_key),
    }
    return replace(hz, default=hz.default * ratio), record
