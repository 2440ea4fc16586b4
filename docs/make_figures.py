"""Draw the figures the README and the guide show: ``python docs/make_figures.py``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import invlend as il

IMG = Path(__file__).with_name("img")


def main() -> None:
    """Draw docs/img/risk_return.png, docs/img/sweep_rate.png and docs/img/cycle.png."""
    IMG.mkdir(exist_ok=True)
    res = il.simulate(il.Scenario.default(), n_portfolios=10_000, portfolio_size=100, seed=1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    res.plot_risk_return(ax=ax)
    fig.tight_layout()
    fig.savefig(IMG / "risk_return.png", dpi=110)
    plt.close(fig)
    sw = il.sweep(il.Scenario.default(), il.default_structures(), "loan.rate",
                  [0.03, 0.04, 0.05, 0.06], n_portfolios=2000, portfolio_size=100, seed=1,
                  n_boot=0)  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sw.plot("fair_value_per_principal", ax=ax)
    fig.tight_layout()
    fig.savefig(IMG / "sweep_rate.png", dpi=110)
    plt.close(fig)
    # docs/cycle.md: losses by funding regime and the risk pool's cap.
    sc = il.Scenario.default()  # the funding cycle is on in the built-in scenario
    pooled = il.pure_loan(name="pooled", risk_pool=il.RiskPool())
    res = il.simulate(sc, [*il.default_structures(), pooled], n_portfolios=3000,
                      portfolio_size=100, seed=1)  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    res.plot_loss_by_regime(ax=axes[0], structures=["pure_loan", "vc_linked", "pooled"])
    res.plot_pool(ax=axes[1])
    fig.tight_layout()
    fig.savefig(IMG / "cycle.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
