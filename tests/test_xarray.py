"""Interface tier: ``to_xarray`` holds the result's arrays under named dimensions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import invlend as il
from invlend._sim import layout as L

xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def res():
    return il.simulate(il.Scenario.default(), n_portfolios=15, portfolio_size=6, seed=4)


def test_dataset_has_named_dimensions_and_the_same_numbers(res):
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"structure": 3, "portfolio": 15, "aggregate": len(L.AGGREGATES),
                              "firm": 6}  # fmt: skip
    assert list(ds.structure.values) == list(res)
    for name in res:
        r = res[name]
        np.testing.assert_array_equal(ds.npv.sel(structure=name).values, r.npv)
        np.testing.assert_array_equal(ds.event.sel(structure=name).values, r.outcomes.event)
        np.testing.assert_array_equal(ds.aggregates.sel(structure=name).values, r.aggregates)
        np.testing.assert_array_equal(
            ds.fair_aggregates.sel(structure=name, aggregate="npv").values,
            r.fair_aggregates[:, L.AGG_NPV],
        )
        np.testing.assert_array_equal(ds.portfolio_loss_rate.sel(structure=name).values,
                                      r.portfolio_loss_rate)  # fmt: skip
    assert ds.event.attrs["flag_meanings"].split() == [e.name for e in L.Event]
    assert ds.stage.attrs["flag_meanings"].split() == [s.name for s in res.scenario.stages]
    assert ds.attrs["seed"] == res.seed
    assert json.loads(ds.attrs["measures"]) == list(res.run.measures)


def test_aggregates_only_run_has_no_firm_dimension():
    agg = il.simulate(il.Scenario.default(), n_portfolios=10, portfolio_size=4, seed=4,
                      keep="aggregates")  # fmt: skip
    ds = agg.to_xarray()
    assert "firm" not in ds.sizes and "npv" not in ds and "portfolio_npv" in ds
