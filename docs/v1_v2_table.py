"""The before/after table of docs/defaults.md: model version 1 against version 2.

Run it once in each tree, ``python docs/v1_v2_table.py run OUT.json`` (with that tree's
``src`` first on ``sys.path``), then ``python docs/v1_v2_table.py table V1.json V2.json`` to
print the markdown. The same seed and sizes in both: the built-in scenario and the three
default structures of each version, at its own factor loading (0.35) and at 0 and 0.6.
Value capital of version 1 is computed from its aggregates by version 2's definition (the
99.9% shortfall of portfolio value per unit lent below its mean); version 1's own
"economic capital" is its credit capital.
"""

from __future__ import annotations

import json
import sys

import numpy as np

N_PORT, SIZE, SEED = 20_000, 100, 20261202
LOADINGS = (0.35, 0.0, 0.6)
METRICS = ("pd", "lgd", "expected_loss", "loss_var_99", "loss_var_999", "credit_capital",
           "value_capital", "raroc")  # fmt: skip


def _lower_quantile(x: np.ndarray, alpha: float) -> float:
    xs = np.sort(x)
    i = min(int(np.ceil(alpha * xs.size - 1e-12)) - 1, xs.size - 1)
    return float(xs[max(i, 0)])


def run(out: str) -> None:
    import invlend as il
    from invlend._sim import layout as L

    base = il.Scenario.default()
    rows = {}
    for a in LOADINGS:
        sc = base.model_copy(update={"market": base.market.model_copy(update={"factor_loading": a})})
        res = il.simulate(sc, il.default_structures(), n_portfolios=N_PORT, portfolio_size=SIZE,
                          seed=SEED, keep="aggregates")  # fmt: skip
        s = res.summary(n_boot=0)
        for name, r in res.items():
            agg = r.aggregates
            lent = agg[:, L.AGG_PRINCIPAL]
            value = np.divide(agg[:, L.AGG_NPV], lent, out=np.zeros_like(lent), where=lent > 0)
            value_cap = float(value.mean() - _lower_quantile(value, 0.001))
            e = s[name]
            credit = e["credit_capital"].estimate if "credit_capital" in e else (
                e["economic_capital"].estimate)
            raroc = e["raroc"].estimate
            rows[f"{a}|{name}"] = dict(
                pd=e["pd"].estimate, lgd=e["lgd"].estimate,
                expected_loss=e["expected_loss"].estimate,
                loss_var_99=e["loss_var_99"].estimate, loss_var_999=e["loss_var_999"].estimate,
                credit_capital=credit, value_capital=value_cap, raroc=raroc,
            )  # fmt: skip
    with open(out, "w") as fh:
        json.dump(rows, fh, indent=1)


def table(v1: str, v2: str) -> str:
    a, b = json.load(open(v1)), json.load(open(v2))
    head = ["loading", "structure", "version", "PD", "LGD", "EL", "VaR 99%", "VaR 99.9%",
            "credit capital", "value capital", "RAROC"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---|" + "---:|" * 8]
    for key in a:
        loading, name = key.split("|")
        for ver, d in (("v1", a[key]), ("v2", b[key])):
            cells = [f"{100 * d[m]:.1f}%" for m in METRICS]
            lines.append(f"| {loading} | {name} | {ver} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        print(table(sys.argv[2], sys.argv[3]))
