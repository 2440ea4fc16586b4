"""The backend interface: the few calls the engine's loop makes, and the draws they share.

Overview
--------
:func:`invlend.engine` runs every range of portfolios through one loop (over linkage groups,
then their structures) and asks a :class:`Backend` for three computations --
:meth:`~Backend.simulate_firms`, :meth:`~Backend.evaluate_structure`,
:meth:`~Backend.portfolio_irr` -- and for the memory they work in: :meth:`~Backend.buffer`
gives an array to write into (a view of the result itself where the backend writes in host
memory), :meth:`~Backend.inputs` moves a lowered tuple where the kernels read it, and
:meth:`~Backend.fetch` brings an array back into the result. This base class works in host
memory; the ``cpu`` (:mod:`invlend._sim.cpu`) and ``numpy``
(:mod:`invlend._sim.numpy_backend`) backends are instances of it with their three kernels, and
the ``cuda`` backend (:mod:`invlend._sim.cuda`) overrides the launches and the memory calls.

Inputs travel as named tuples (:class:`Draws`, the lowering's ``Dynamics`` and ``Terms``, the
layout's ``FirmOutcomes``); outputs as one array per argument, in the layout's order.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

from invlend import tail as T

__all__ = ["Backend", "Draws"]


class Draws(NamedTuple):
    """The draws every firm of a range of portfolios shares, and the counter words."""

    ctr: np.ndarray  # (n_purposes, max(n_steps, 2)) uint64 counter words, rng.counter_table
    pkeys: np.ndarray  # (n_port,) uint64 portfolio keys
    market: np.ndarray  # (n_port, n_steps) market-factor normals
    regime: np.ndarray  # (n_port, n_steps) int8 funding regime (0 hot, 1 cold), all 0 if none
    quality_shift: np.ndarray  # (n_port,) mean of the firms' quality normals (importance sampling)


class Backend:
    """A backend in host memory, from its three kernels; the cuda backend overrides the rest.

    ``simulate_firms``, ``evaluate_structure`` and ``portfolio_irr`` are kernels with the
    signatures of :mod:`invlend._sim.cpu`: inputs as named tuples, outputs one array per
    argument in the layout's order.
    """

    def __init__(self, name: str, simulate_firms=None, evaluate_structure=None,
                 portfolio_irr=None) -> None:  # fmt: skip
        self.name = name
        self._kernels = (simulate_firms, evaluate_structure, portfolio_irr)

    def running(self):
        """A context manager around the work of one range of portfolios."""
        return contextlib.nullcontext()

    def draws(
        self,
        seed_key: int,
        p0: int,
        p1: int,
        n_steps: int,
        regime: tuple | None,
        portfolio_size: int = 1,
        tilt=None,
    ) -> tuple[Draws, np.ndarray, np.ndarray]:
        """The :class:`Draws` of portfolios ``[p0, p1)``, cold shares and log weights.

        Returns the draws, each portfolio's share of cold steps and its log importance weight
        (0 without a tilt).
        ``regime`` is ``(P(start cold), P(hot -> cold), P(cold -> hot))`` per step, or None
        without a funding cycle; ``tilt`` an :class:`invlend.tail.Tilt` or None
        (:func:`invlend.tail.sample`).
        """
        s = T.sample(seed_key, p0, p1, n_steps, portfolio_size, regime, tilt)
        draws = Draws(s.ctr, s.pkeys, s.market, s.regime, s.quality_shift)
        return draws, s.cold_share, s.log_weight

    def buffer(self, shape: tuple, dtype, host: np.ndarray | None = None):
        """An array of ``shape`` to write into: ``host`` itself where given."""
        return host if host is not None else np.empty(shape, dtype)

    def inputs(self, lowered: tuple) -> tuple:
        """``lowered`` where the kernels read it (host memory: as it is)."""
        return lowered

    def fetch(self, array, host: np.ndarray | None, rows: slice | None = None) -> None:
        """Copy ``array`` (its ``rows``) into ``host``: nothing to do when it is ``host``."""
        if host is not None and array is not host:
            sel = slice(None) if rows is None else rows
            host[sel] = array[sel]

    def synchronize(self) -> None:
        """Wait until the work handed to the device is done (host memory: nothing to wait for)."""

    def simulate_firms(self, draws, portfolio_size, path_start, dyn, outcomes, chk, paths):
        """Simulate the firms of ``draws``' portfolios into ``outcomes`` (layout order)."""
        self._kernels[0](draws, portfolio_size, path_start, dyn, *outcomes, chk, paths)

    def evaluate_structure(self, firms, chk, portfolio_size, terms, per_firm, agg, claims, paid,
                           cf, work):  # fmt: skip
        """Evaluate one structure's ``terms`` on ``firms`` into ``per_firm`` and the rest."""
        self._kernels[1](firms, chk, portfolio_size, terms, *per_firm, agg, claims, paid, cf,
                         work)  # fmt: skip

    def portfolio_irr(self, cf, dt, out):
        """The annual IRR of each row of ``cf`` into ``out``."""
        self._kernels[2](cf, dt, out)
