"""Regenerate the golden arrays of tests/test_golden.py, on purpose only.

Run ``python tests/make_golden.py`` after a deliberate change of the random streams or the
model (and bump ``invlend.rng.STREAM_VERSION`` when the streams change); commit the new file
with a message that says why the numbers moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import invlend as il
from invlend import rng

PATH = Path(__file__).with_name("golden") / "default_small.npz"
SEED = 20261128


def golden_run(backend: str = "cpu"):
    """The small seeded run the golden file freezes: built-in scenario and presets."""
    return il.simulate(
        il.Scenario.default(),
        il.default_structures(),
        n_portfolios=6,
        portfolio_size=8,
        seed=SEED,
        backend=backend,
    )


def arrays(res) -> dict[str, np.ndarray]:
    """The frozen arrays: outcomes of the first structure's dynamics and every structure's."""
    out = {}
    for name, r in res.items():
        o = r.outcomes
        out |= {
            f"{name}.event": o.event,
            f"{name}.step": o.step,
            f"{name}.stage": o.stage,
            f"{name}.n_rounds": o.n_rounds,
            f"{name}.value": o.value,
            f"{name}.initial_value": o.initial_value,
            f"{name}.dilution": o.dilution,
            f"{name}.quality": o.quality,
            f"{name}.npv": r.npv,
            f"{name}.portfolio_irr": r.portfolio_irr,
            f"{name}.fair_value": r.fair_value,
        }
    return out


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    np.savez(PATH, stream_version=rng.STREAM_VERSION, **arrays(golden_run()))
    print(f"wrote {PATH}")
