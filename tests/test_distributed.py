"""Scale-out on dask.distributed: identical results, worker faults, task errors.

A LocalCluster with two worker processes is started once for the module.
"""

from __future__ import annotations

import os
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import invlend as il

distributed = pytest.importorskip("distributed")

KW = dict(n_portfolios=40, portfolio_size=30, seed=77, chunk_firms=150)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def alone():
    return il.simulate(il.Scenario.default(), **KW)


def _same(a, b):
    assert set(a.arrays) == set(b.arrays)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k], err_msg=k)


def test_dask_result_is_bit_for_bit_the_single_process_one(client, alone):
    _same(alone, il.simulate(il.Scenario.default(), executor=client, **KW))
    # another split of the same portfolios
    other = il.simulate(il.Scenario.default(), executor=client, **(KW | {"chunk_firms": 600}))
    _same(alone, other)


def test_aggregates_only_run_equals_the_full_summary(client, alone):
    agg = il.simulate(il.Scenario.default(), executor=client, keep="aggregates", **KW)
    assert agg["pure_loan"].npv is None
    for n in alone:
        np.testing.assert_array_equal(agg[n].aggregates, alone[n].aggregates)
    assert str(agg.summary(n_boot=50)) == str(alone.summary(n_boot=50))
    assert str(agg.compare(n_boot=50)) == str(alone.compare(n_boot=50))


class _Injecting:
    """An executor that runs each task through ``wrapper`` on the dask cluster."""

    def __init__(self, client, wrapper, *wrapper_args):
        self.client, self.wrapper, self.args = client, wrapper, wrapper_args

    def submit(self, fn, *args):
        return self.client.submit(self.wrapper, *self.args, fn, *args, pure=False)


def _die_once(marker_dir, fn, spec, p0, p1):
    """Kill the worker process the first time the range starting at portfolio 0 runs."""
    marker = Path(marker_dir) / f"range-{p0}"
    if p0 == 0 and not marker.exists():
        marker.touch()
        os._exit(1)
    return fn(spec, p0, p1)


def _fail_range(bad_p0, fn, spec, p0, p1):
    if p0 == bad_p0:
        raise ArithmeticError("injected failure")
    return fn(spec, p0, p1)


# The helpers above live in a test module the workers cannot import: ship them by value.
cloudpickle.register_pickle_by_value(__import__(__name__))


def test_a_worker_killed_mid_run_does_not_change_the_result(client, alone, tmp_path):
    res = il.simulate(il.Scenario.default(), executor=_Injecting(client, _die_once,
                      str(tmp_path)), **KW)  # fmt: skip
    assert (tmp_path / "range-0").exists(), "the fault was injected"
    _same(alone, res)


def test_task_error_is_the_original_exception_with_its_range(client):
    with pytest.raises(ArithmeticError, match="injected failure") as info:
        il.simulate(il.Scenario.default(), executor=_Injecting(client, _fail_range, 5), **KW)
    assert any("portfolios [5, 10)" in note for note in info.value.__notes__)
