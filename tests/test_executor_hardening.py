"""simulate() with executors that misbehave: every part is checked before it is merged.

The output buffers are allocated uninitialised, so a part that lacks a key, or holds an array
of another shape, would leave garbage in the result. A fake executor runs each task here and
hands back a crafted part; each case names the message it must raise. The last tests check
that no path's result depends on what the buffers held before the kernels wrote them.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

import invlend as il
from invlend import engine
from invlend._sim.layout import N_AGG

# Ranges of 2 portfolios: [0, 2), [2, 4), [4, 6) and the short [6, 7); the 12 sample paths
# are the firms of portfolios 0, 1 and 2 (two of them in the range [2, 4)).
KW = dict(n_portfolios=7, portfolio_size=5, seed=3, chunk_firms=10, sample_paths=12)
N_STEPS = il.Scenario.default().n_steps


class _Crafted:
    """An executor that runs each task here and returns ``craft(spec, p0, p1, fn)``."""

    def __init__(self, craft):
        self.craft = craft

    def submit(self, fn, spec, p0, p1):
        fut = Future()
        fut.set_result(self.craft(spec, p0, p1, fn))
        return fut


def _at_range_4(damage):
    """A craft that returns the true part, with ``damage`` applied to that of range [4, 6)."""

    def craft(spec, p0, p1, fn):
        part = fn(spec, p0, p1)
        return damage(part) if p0 == 4 else part

    return craft


def _without(*keys):
    return _at_range_4(lambda part: {k: v for k, v in part.items() if k not in keys})


def _with(key, change):
    return _at_range_4(lambda part: part | {key: change(part[key])})


def _part_of_range_0(spec, p0, p1, fn):
    return fn(spec, 0, 2)


def _part_with_firms(spec, p0, p1, fn):
    return fn(spec._replace(keep_firms=True), p0, p1)


MISBEHAVING = [
    ("one key missing", "firms", _without("s0.agg"),
     "executor: the part for portfolios [4, 6) is missing keys ['s0.agg']"),
    ("two keys missing, aggregates", "aggregates", _without("s1.pool_paid", "cold_share"),
     "executor: the part for portfolios [4, 6) is missing keys ['cold_share', 's1.pool_paid']"),
    ("empty dict", "firms", _at_range_4(lambda part: {}),
     "executor: the part for portfolios [4, 6) is missing keys "
     "['cold_share', 'g0.appraisal', 'g0.chk', "),
    ("None", "firms", _at_range_4(lambda part: None),
     "executor: the future for portfolios [4, 6) returned None, expected a dict of arrays"),
    ("a list", "firms", _at_range_4(lambda part: list(part.values())),
     "executor: the future for portfolios [4, 6) returned a list, expected a dict of arrays"),
    ("an extra key", "firms", _at_range_4(lambda part: part | {"extra": part["s0.irr"]}),
     "executor: the part for portfolios [4, 6) has unexpected keys ['extra']"),
    ("per-firm arrays kept for aggregates", "aggregates", _part_with_firms,
     "executor: the part for portfolios [0, 2) has unexpected keys ['g0.appraisal', 'g0.chk', "),
    ("wrong shape", "firms", _with("s0.npv", lambda v: v[:1]),
     "executor: the part for portfolios [4, 6) has s0.npv of shape (1, 5), expected (2, 5)"),
    ("transposed", "aggregates", _with("s2.agg", lambda v: v.T),
     f"has s2.agg of shape ({N_AGG}, 2), expected (2, {N_AGG})"),
    ("paths too short", "firms", _with("g1.paths", lambda v: v[:, :-1]),
     f"has g1.paths of shape (12, {N_STEPS}), expected (12, {N_STEPS + 1})"),
    ("wrong dtype", "firms", _with("g0.event", lambda v: v.astype(np.int64)),
     "executor: the part for portfolios [4, 6) has g0.event of dtype int64, expected int8"),
    ("float32", "aggregates", _with("cold_share", lambda v: v.astype(np.float32)),
     "has cold_share of dtype float32, expected float64"),
    ("not an array", "firms", _with("s1.irr", lambda v: v.tolist()),
     "executor: the part for portfolios [4, 6) has s1.irr of type list, expected a numpy array"),
    ("a part of another range", "firms", _part_of_range_0,
     "executor: the part for portfolios [6, 7) has g0.event of shape (2, 5), expected (1, 5)"),
]  # fmt: skip


@pytest.mark.parametrize(("keep", "craft", "fragment"), [c[1:] for c in MISBEHAVING],
                         ids=[c[0] for c in MISBEHAVING])  # fmt: skip
def test_a_bad_part_is_refused_with_its_range(keep, craft, fragment):
    with pytest.raises(ValueError) as info:
        il.simulate(il.Scenario.default(), executor=_Crafted(craft), keep=keep, **KW)
    assert fragment in str(info.value)


def test_the_true_parts_pass_the_checks():
    """The fake executor itself is sound: with nothing crafted the result is the usual one."""
    alone = il.simulate(il.Scenario.default(), **KW)
    res = il.simulate(il.Scenario.default(), executor=_Crafted(_at_range_4(dict)), **KW)
    assert set(res.arrays) == set(alone.arrays)
    for k, v in alone.arrays.items():
        np.testing.assert_array_equal(res.arrays[k], v, err_msg=k)


# --------------------------------------------------------------------- refused before any work


class _SubmitIsNotCallable:
    submit = None


NOT_EXECUTORS = [
    ("a string", "threads",
     "executor: expected a concurrent.futures.Executor or a dask.distributed.Client, got the "
     "string 'threads'; for threads pass e.g. concurrent.futures.ThreadPoolExecutor()"),
    ("an int", 4, "got int, which has no submit method"),
    ("an object", object(), "got object, which has no submit method"),
    ("submit not callable", _SubmitIsNotCallable(),
     "got _SubmitIsNotCallable, whose submit is not callable"),
    ("the class", ThreadPoolExecutor,
     "got the class ThreadPoolExecutor; pass an instance, e.g. ThreadPoolExecutor()"),
]  # fmt: skip


@pytest.mark.parametrize(("executor", "fragment"), [c[1:] for c in NOT_EXECUTORS],
                         ids=[c[0] for c in NOT_EXECUTORS])  # fmt: skip
def test_an_object_that_is_not_an_executor_is_refused_before_any_work(executor, fragment,
                                                                      monkeypatch):  # fmt: skip
    def never(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(engine, "_allocate", never)
    monkeypatch.setattr(engine, "_run_range", never)
    with pytest.raises(ValueError) as info:
        il.simulate(il.Scenario.default(), executor=executor, **KW)
    assert str(info.value).startswith("executor: ")
    assert fragment in str(info.value)


# ------------------------------------------------------------------------- submit and futures


class _SubmitRaises:
    def submit(self, fn, *args):
        raise OSError("no workers")


class _SubmitReturnsTheResult:
    """A common slip: an executor that runs the task and returns its value, not a future."""

    def submit(self, fn, *args):
        return fn(*args)


def test_submit_that_raises_names_the_range_and_the_cause():
    with pytest.raises(RuntimeError) as info:
        il.simulate(il.Scenario.default(), executor=_SubmitRaises(), **KW)
    assert str(info.value) == ("executor: submit failed for portfolios [0, 2): OSError: no workers")
    assert isinstance(info.value.__cause__, OSError)


def test_an_executor_already_shut_down_is_a_clear_error():
    ex = ThreadPoolExecutor(1)
    ex.shutdown()
    with pytest.raises(RuntimeError) as info:
        il.simulate(il.Scenario.default(), executor=ex, **KW)
    assert str(info.value).startswith("executor: submit failed for portfolios [0, 2): ")
    assert "cannot schedule new futures after shutdown" in str(info.value)


def test_submit_must_return_a_future():
    with pytest.raises(RuntimeError) as info:
        il.simulate(il.Scenario.default(), executor=_SubmitReturnsTheResult(), **KW)
    assert str(info.value) == (
        "executor: submit returned a dict for portfolios [0, 2), expected a future with a "
        "result() method"
    )


class _Stalling:
    """Hands out futures that never finish, and refuses the third submission."""

    def __init__(self):
        self.futures = []

    def submit(self, fn, *args):
        if len(self.futures) == 2:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.futures.append(Future())
        return self.futures[-1]


def test_futures_already_submitted_are_cancelled_when_a_submit_fails():
    ex = _Stalling()
    with pytest.raises(RuntimeError, match=r"executor: submit failed for portfolios \[4, 6\)"):
        il.simulate(il.Scenario.default(), executor=ex, **KW)
    assert len(ex.futures) == 2 and all(f.cancelled() for f in ex.futures)


def test_futures_still_pending_are_cancelled_when_a_part_is_refused():
    futures = []

    class Executor:
        def submit(self, fn, *args):
            futures.append(Future())
            if len(futures) == 1:
                futures[0].set_result(None)
            return futures[-1]

    with pytest.raises(ValueError, match="returned None"):
        il.simulate(il.Scenario.default(), executor=Executor(), **KW)
    assert len(futures) == 4 and all(f.cancelled() for f in futures[1:])


def test_an_error_in_the_task_keeps_its_type_and_gets_a_note_of_its_range():
    def craft(spec, p0, p1, fn):
        if p0 == 6:
            raise ArithmeticError("injected failure")
        return fn(spec, p0, p1)

    class Executor:
        def submit(self, fn, *args):
            fut = Future()
            try:
                fut.set_result(craft(*args, fn))
            except Exception as exc:
                fut.set_exception(exc)
            return fut

    with pytest.raises(ArithmeticError, match="injected failure") as info:
        il.simulate(il.Scenario.default(), executor=Executor(), **KW)
    assert info.value.__notes__ == ["invlend: raised while simulating portfolios [6, 7)"]


# ------------------------------------------------------------------ no uninitialised memory


def _filled_with(byte):
    """``engine._allocate``, with every buffer's bytes set to ``byte`` instead of left as is."""
    allocate = engine._allocate

    def filled(*args, **kwargs):
        out = allocate(*args, **kwargs)
        for v in out.values():
            v.view(np.uint8)[...] = byte
        return out

    return filled


@pytest.mark.parametrize("keep", ["firms", "aggregates"])
@pytest.mark.parametrize(("backend", "threads"), [("cpu", False), ("numpy", False),
                                                  ("cpu", True)])  # fmt: skip
def test_no_result_depends_on_what_the_buffers_held(backend, threads, keep, monkeypatch):
    """Buffers of zero bytes and of 0xFF bytes give the same bytes: every element is written."""
    runs = []
    for byte in (0x00, 0xFF):
        monkeypatch.setattr(engine, "_allocate", _filled_with(byte))
        kw = KW | dict(backend=backend, keep=keep)
        if threads:
            with ThreadPoolExecutor(2) as ex:
                runs.append(il.simulate(il.Scenario.default(), executor=ex, **kw).arrays)
        else:
            runs.append(il.simulate(il.Scenario.default(), **kw).arrays)
    zeros, ones = runs
    assert set(zeros) == set(ones)
    for k in zeros:
        assert zeros[k].tobytes() == ones[k].tobytes(), k
