"""Plots of simulation results, sweeps and sensitivities.

Overview
--------
Each function draws one picture on a matplotlib ``Axes`` and returns it:
``plot_x(result, *, ax=None, **kw) -> Axes``. With ``ax=None`` it draws on the current axes
(``plt.gca()``). Result objects delegate (``res.plot_npv_distribution()``). matplotlib is
imported only when a plot is drawn.

Example
-------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import invlend as il
>>> res = il.simulate(il.Scenario.default(), n_portfolios=30, portfolio_size=20, seed=1)
>>> ax = il.plotting.plot_npv_distribution(res)
>>> ax.get_xlabel()
'NPV per unit of principal (symmetric-log scale, linear within ±5%)'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from invlend import _checks
from invlend import metrics as M
from invlend._sim import layout as L
from invlend.estimation import shown_parts
from invlend.tail import upper_tail

__all__ = [
    "plot_competition_curve",
    "plot_cumulative_incidence",
    "plot_decomposition",
    "plot_incentives",
    "plot_loss_by_regime",
    "plot_loss_distribution",
    "plot_menu",
    "plot_npv_distribution",
    "plot_pool",
    "plot_risk_return",
    "plot_sweep",
    "plot_tornado",
    "plot_value_fan",
]

_EVENT_NAMES = {e.name: int(e) for e in L.Event if e != L.Event.NONE}
_EVENT_LABEL = {"DEFAULT": "default", "IPO": "IPO", "MA": "M&A"}
#: The x label of :func:`plot_npv_distribution`.
NPV_AXIS_LABEL = "NPV per unit of principal (symmetric-log scale, linear within ±5%)"


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def _names(result, structures) -> list[str]:
    names = list(result) if structures is None else list(structures)
    for n in names:
        result[n]  # raises KeyError naming the structures
    return names


def _percent(ax, axis: str = "x") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(PercentFormatter(1.0))


def plot_npv_distribution(
    result, *, ax=None, structures=None, clip: float = 0.995, summary=None, **kw: Any
):
    """Cumulative distribution of each accepted loan's NPV per unit of principal.

    One step curve per structure, on a symmetric-log x axis (linear within +-5%): loan NPVs
    cluster near zero with a default tail towards -100%, while warrant and equity upside
    reaches several times the principal. The axis ends at the ``clip`` quantile of all
    values. The dashed line and the legend give the structure's ``npv_per_principal`` as the
    summary table has it (``summary``, or ``result.summary(n_boot=0)``): all cash flows over
    all principal lent, the screening cost of rejected applicants included -- a ratio of
    sums, not the plain mean of the loans drawn.
    """
    from matplotlib.ticker import NullLocator

    from invlend._tables import Footnotes

    result.require_firms()
    ax = _axes(ax)
    table = summary if summary is not None else result.summary(n_boot=0)
    pooled = []
    for i, n in enumerate(_names(result, structures)):
        r = result[n]
        ok = r.accepted & (r.principal > 0)
        if not ok.any():  # nothing to draw; the legend says why
            ax.plot([], [], color=f"C{i}", label=f"{n}: no loans (nobody accepted)")
            continue
        x = r.npv[ok] / r.principal[ok]
        order = np.argsort(x, kind="stable")
        fw = _firm_weights(result)[ok][order]  # importance weights; all 1 for plain sampling
        x = x[order]
        y = np.cumsum(fw) / fw.sum()
        style = {"color": f"C{i}"} | kw
        cell = table[n]["npv_per_principal"]
        est = cell.estimate
        text = Footnotes().cell("npv_per_principal", cell._replace(note=""))
        (line,) = ax.step(x, y, where="post", label=f"{n} ({text})", **style)
        if np.isfinite(est):
            ax.axvline(est, color=line.get_color(), linestyle="--", linewidth=1)
        pooled.append(x)
    if not pooled:
        ax.text(0.5, 0.5, "no loans: nobody was accepted", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_title("Distribution of each loan's NPV")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper left")
        return ax
    allx = np.concatenate(pooled)
    lo, hi = min(allx.min(), -0.05), max(np.quantile(allx, clip), 0.05)
    ax.set_xscale("symlog", linthresh=0.05, linscale=0.5)
    ax.set_xlim(lo * 1.05, hi * 1.05)
    ax.set_xticks([t for t in (-5, -1, -0.2, 0, 0.2, 1, 5, 20) if lo * 1.05 <= t <= hi * 1.05])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(NPV_AXIS_LABEL)
    ax.set_ylabel("share of loans with a lower NPV")
    ax.set_title(
        "Distribution of each loan's NPV\n(dashed, legend: NPV per principal of the summary "
        "table, all flows incl. screening)",
        fontsize="medium",
    )
    _percent(ax)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", title="structure (NPV per principal)")
    return ax


#: Line style of each tail mark of :func:`plot_loss_distribution`.
_LOSS_MARKS = {
    ("VaR", 0.99): (0, (5, 2)),
    ("VaR", 0.999): "-.",
    ("ES", 0.99): ":",
    ("ES", 0.999): (0, (3, 1, 1, 1, 1, 1)),
}


def plot_loss_distribution(
    result, *, ax=None, structures=None, bins: int = 50, levels=(0.99, 0.999), **kw: Any
):
    """Histogram of the portfolio loss rate per structure, with EL, VaR and ES marked.

    Vertical lines in the structure's colour: the expected loss (mean loss rate, solid), and
    VaR and ES at each of ``levels``; the legend names each line style.
    """
    from matplotlib.lines import Line2D

    ax = _axes(ax)
    names = _names(result, structures)
    losses = {n: result[n].portfolio_loss_rate for n in names}
    hi = max(float(x.max()) for x in losses.values())
    edges = np.linspace(0.0, hi if hi > 0 else 1e-3, bins + 1)
    styles = {("EL", None): "-"}
    for a in levels:
        for what in ("VaR", "ES"):
            styles[(what, a)] = _LOSS_MARKS.get((what, a), "--" if what == "VaR" else ":")
    handles = []
    # Under importance sampling the bars and lines are the real world's: weighted counts and
    # the weighted estimators of the summary (invlend.tail.upper_tail).
    w = np.asarray(result.weights)
    for n, x in losses.items():
        line = ax.stairs(*np.histogram(x, edges, weights=w), label=n, **kw)
        handles.append(line)
        color = line.get_edgecolor()
        el = float(np.mean(M.controlled(x, w)))  # the summary's expected loss
        ax.axvline(el, color=color, linestyle="-", linewidth=1.2)
        for a in levels:
            var, es = upper_tail(x, w, a)
            ax.axvline(var, color=color, linestyle=styles[("VaR", a)], linewidth=1)
            ax.axvline(es, color=color, linestyle=styles[("ES", a)], linewidth=1)
    for (what, a), ls in styles.items():
        label = "EL (mean loss)" if a is None else f"{what} {100 * a:g}%"
        handles.append(Line2D([], [], color="0.25", linestyle=ls, linewidth=1.2, label=label))
    ax.set_yscale("log")
    ax.set_xlabel("portfolio loss rate (credit loss after risk sharing / principal)")
    tilted = result.run.tail is not None
    ax.set_ylabel("portfolios, real-world weighted (log scale)" if tilted else
                  "portfolios (log scale)")  # fmt: skip
    lv = " and ".join(f"{100 * a:g}%" for a in levels)
    ax.set_title(f"Portfolio losses with EL, VaR and ES at {lv}")
    _percent(ax)
    ax.legend(handles=handles, fontsize="small", ncols=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.14))  # fmt: skip
    return ax


def plot_cumulative_incidence(
    result, *, ax=None, structure: str | None = None, event: str = "DEFAULT", **kw: Any
):
    """Share of firms that had ``event`` by each time, one line per starting stage.

    The firms are every applicant of the run (accepted or not) under the firm dynamics of
    ``structure`` (default: the first), which the structures of its linkage share; the title
    says whose. There is no censoring before the horizon, so the empirical share is the
    cumulative incidence of the competing event.
    """
    if event not in _EVENT_NAMES:
        raise ValueError(f"event: choose from {list(_EVENT_NAMES)}, got {event!r}")
    result.require_firms()
    ax = _axes(ax)
    name = structure or next(iter(result))
    o = result[name].outcomes
    sc = result.scenario
    times = np.arange(sc.n_steps + 1) * sc.dt
    code = _EVENT_NAMES[event]
    fw = _firm_weights(result)
    for s, stage in enumerate(sc.stages):
        start = o.initial_stage == s
        n = int(start.sum())
        if n == 0:
            continue
        hit = start & (o.event == code)
        counts = np.bincount(o.step[hit], weights=fw[hit], minlength=sc.n_steps + 1)
        cum = np.cumsum(counts) / fw[start].sum()
        ax.step(times, cum, where="post", label=f"{stage.name} (n={n:,})", **kw)
    ax.set_xlabel("years")
    ax.set_ylabel(f"share of firms with {_EVENT_LABEL[event]}")
    ax.set_title(f"Cumulative incidence of {_EVENT_LABEL[event]}\n{_whose_firms(result, name)}",
                 fontsize="medium")  # fmt: skip
    _percent(ax, "y")
    ax.set_xlim(0, times[-1])
    ax.set_ylim(bottom=0)
    ax.legend(title="starting stage")
    return ax


def _firm_weights(result) -> np.ndarray:
    """Each firm's importance weight, its portfolio's, in the flat firm order (1 if plain)."""
    return np.repeat(np.asarray(result.weights), result.portfolio_size).reshape(
        result.n_portfolios, result.portfolio_size
    )


def _whose_firms(result, name: str) -> str:
    """Whose firms an outcome plot counts: every applicant, under ``name``'s firm dynamics."""
    names = list(result)
    groups = getattr(result, "group_of", None)
    if groups is not None and len(groups) == len(names):
        g = groups[names.index(name)]
        shared = [n for n, k in zip(names, groups, strict=True) if k == g]
    else:
        shared = [name]
    n_firms = result.n_portfolios * result.portfolio_size
    who = ", ".join(shared)
    return f"all {n_firms:,} applicant firms (accepted or not)\nsimulated for {who}"


def plot_value_fan(result, *, ax=None, structure: str | None = None, n_lines: int = 15, **kw: Any):
    """Fan chart of firm value relative to entry over time, for firms still alive.

    Bands are the 5-95% and 25-75% ranges and the median among sampled firms alive at each
    step (under importance sampling, quantiles weighted by each firm's portfolio weight); thin
    lines are individual paths (ending at their event). Needs ``simulate(...,
    sample_paths=n)``.
    """
    ax = _axes(ax)
    name = structure or next(iter(result))
    paths = result[name].outcomes.paths
    if paths.shape[0] == 0:
        raise ValueError("sample_paths: run simulate(..., sample_paths=1000) to plot value paths")
    rel = paths / paths[:, :1]
    sc = result.scenario
    t = np.arange(sc.n_steps + 1) * sc.dt
    alive = np.isfinite(rel)
    enough = alive.sum(axis=0) >= 5
    # A sampled path is flat firm i, of portfolio i // size: under importance sampling its
    # weight is that portfolio's, and the bands are weighted quantiles.
    w = np.asarray(result.weights)[np.arange(paths.shape[0]) // result.portfolio_size]
    probs = [0.05, 0.25, 0.5, 0.75, 0.95]
    with np.errstate(all="ignore"):
        q = np.full((5, t.size), np.nan)
        for j in np.flatnonzero(enough):
            x, wx = rel[alive[:, j], j], w[alive[:, j]]
            if result.run.tail is None:
                q[:, j] = np.quantile(x, probs)
            else:
                order = np.argsort(x, kind="stable")
                cum = np.cumsum(wx[order]) / wx.sum()
                q[:, j] = x[order][np.minimum(np.searchsorted(cum, probs), x.size - 1)]
    ax.fill_between(t, q[0], q[4], alpha=0.2, color="C0", label="5-95% of firms alive")
    ax.fill_between(t, q[1], q[3], alpha=0.35, color="C0", label="25-75%")
    ax.plot(t, q[2], color="C0", linewidth=2, label="median")
    for row in rel[:n_lines]:
        ax.plot(t, row, color="0.4", linewidth=0.6, alpha=0.7, **kw)
    ax.set_yscale("log")
    ax.set_xlabel("years")
    ax.set_ylabel("firm value / value at entry (log scale)")
    shared = _whose_firms(result, name).split("simulated for ")[-1]
    ax.set_title(f"Firm value paths ({paths.shape[0]:,} sampled applicant firms)\n"
                 f"simulated for {shared}", fontsize="medium")  # fmt: skip
    ax.set_xlim(0, t[-1])
    ax.legend(loc="upper left")
    return ax


def plot_risk_return(
    result,
    *,
    ax=None,
    risk: str = "economic_capital",
    ret: str = "fair_value_per_principal",
    summary=None,
    **kw: Any,
):
    """Each structure as a point (risk, return) with 95% intervals on both axes."""
    for m in (risk, ret):
        if m not in M.METRICS:
            raise ValueError(f"metric: unknown {m!r}; choose from {list(M.METRICS)}")
    ax = _axes(ax)
    s = summary if summary is not None else result.summary()
    for i, n in enumerate(s):
        x, y = s[n][risk], s[n][ret]
        ax.errorbar(x.estimate, y.estimate, xerr=1.96 * x.se if np.isfinite(x.se) else None,
                    yerr=1.96 * y.se if np.isfinite(y.se) else None, fmt="o", capsize=4,
                    color=f"C{i}", label=n, **kw)  # fmt: skip
        ax.annotate(n, (x.estimate, y.estimate), textcoords="offset points", xytext=(6, 6))
    ax.margins(0.15)  # room for the names next to the points
    ax.set_xlabel(M.axis_label(risk) + (" (share of principal)" if M.is_rate(risk) else ""))
    ax.set_ylabel(M.axis_label(ret) + (" (share of principal)" if M.is_rate(ret) else ""))
    ax.set_title("Risk and return of each structure (bars: 95% intervals)")
    if M.is_rate(risk):
        _percent(ax, "x")
    if M.is_rate(ret):
        _percent(ax, "y")
    ax.legend()
    return ax


def plot_decomposition(
    result,
    *,
    ax=None,
    measure: str = "risk_neutral",
    structures=None,
    decompositions=None,
    **kw: Any,
):
    """Each structure's value per unit lent, part by part: one group of bars per part.

    The parts are those of :meth:`invlend.SimulationResult.decompose` (interest, principal,
    fees, ..., and their total); parts that are zero in every structure drawn are left out.
    Bars are the estimates, whiskers their 95% intervals. ``measure="risk_neutral"`` draws
    the fair value, ``"real_world"`` the real-world NPV (expected cash at the discount rate).
    ``decompositions`` (name -> :class:`~invlend.estimation.Decomposition`, in the measure
    given) reuses ones already computed.
    """
    names = _names(result, structures)
    if decompositions is None:  # decompose validates the measure
        decompositions = {n: result.decompose(n, measure) for n in names}
    parts = {n: decompositions[n] for n in names}
    ax = _axes(ax)
    keys = shown_parts(parts)
    y = np.arange(len(keys))
    height = 0.8 / len(names)
    for i, n in enumerate(names):
        est = np.array([parts[n][k].estimate for k in keys])
        se = np.array([parts[n][k].se for k in keys])
        ax.barh(y + (i - (len(names) - 1) / 2) * height, est, height,
                xerr=np.where(np.isfinite(se), 1.96 * se, 0.0), capsize=2,
                color=f"C{i}", label=n, **kw)  # fmt: skip
    ax.set_yticks(y, [k.replace("_", " ") for k in keys])
    ax.invert_yaxis()  # the parts in the decomposition's order, the total last
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.axhline(len(keys) - 1.5, color="0.7", lw=0.8, ls=":")  # the total below the parts
    what = "Fair value" if measure == "risk_neutral" else "Real-world NPV (not a price)"
    ax.set_xlabel(f"{what} per unit lent (present value at the discount rate)")
    ax.set_title(f"{what} part by part (whiskers: 95% intervals)")
    _percent(ax, "x")
    ax.legend(loc="lower left")
    return ax


def plot_sweep(
    sweep_result,
    *,
    ax=None,
    metric: str = "fair_value_per_principal",
    structures=None,
    **fixed: float,
):
    """The metric against the swept parameter, one line per structure with a 95% band.

    For a two-parameter sweep, fix the second parameter: ``plot_sweep(sw, **{"p2": 0.1})``,
    or draw one line per value of it for one structure (``structures=["name"]``; by default
    the first structure that the first parameter moves).
    """
    _checks.metric("metric", metric, M.METRICS)
    ax = _axes(ax)
    names = sweep_result.structures if structures is None else list(structures)
    second = sweep_result.params[1:]
    if second and not fixed:
        # One structure, one line per value of the second parameter: by default the first
        # structure the first parameter moves (a warrant coverage does not move a pure loan).
        def moves(n: str) -> bool:
            y = sweep_result.curve(n, metric, **{second[0]: sweep_result.values(second[0])[0]})[1]
            return bool(np.ptp(y) > 0)

        name = next((n for n in names if moves(n)), names[0])
        for i, v in enumerate(sweep_result.values(second[0])):
            x, y, se = sweep_result.curve(name, metric, **{second[0]: v})
            ax.plot(x, y, marker="o", color=f"C{i}", label=f"{second[0]} = {v:g}")
            ax.fill_between(x, y - 1.96 * se, y + 1.96 * se, color=f"C{i}", alpha=0.2)
        title = f"{metric.replace('_', ' ')} of {name}"
    else:
        for i, n in enumerate(names):
            x, y, se = sweep_result.curve(n, metric, **fixed)
            ax.plot(x, y, marker="o", color=f"C{i}", label=n)
            ax.fill_between(x, y - 1.96 * se, y + 1.96 * se, color=f"C{i}", alpha=0.2)
        title = f"{metric.replace('_', ' ')} by {sweep_result.params[0]}"
    ax.set_xlabel(sweep_result.params[0])
    ax.set_ylabel(M.axis_label(metric))
    ax.set_title(title + " (bands: 95% intervals)")
    if M.is_rate(metric):
        _percent(ax, "y")
    ax.legend()
    return ax


def plot_loss_by_regime(result, *, ax=None, structures=None, bins: int = 5, **kw: Any):
    """Mean portfolio loss rate against the portfolio's share of time in a cold market.

    Portfolios are grouped into ``bins`` equal bins of their cold share (0 to 1); each point is
    a bin's mean loss rate with a 95% interval, at the bin's mean cold share. Needs a scenario
    with a funding cycle (``Scenario.cycle``).
    """
    if result.scenario.cycle is None:
        raise ValueError("scenario.cycle: the result has no funding cycle to plot losses by")
    ax = _axes(ax)
    share = np.asarray(result.cold_share)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(share, edges[1:-1]), 0, bins - 1)
    w = np.asarray(result.weights)  # a bin's mean is the ratio of its weighted sums
    for n in _names(result, structures):
        loss = result[n].portfolio_loss_rate
        x, y, err = [], [], []
        for b in range(bins):
            sel = which == b
            if sel.sum() < 2:
                continue
            mean, u = M.ratio(w[sel] * loss[sel], w[sel])
            x.append(float(np.sum(w[sel] * share[sel]) / np.sum(w[sel])))
            y.append(mean)
            err.append(M.Z95 * M.influence_se(u))
        ax.errorbar(np.array(x), np.array(y), yerr=np.array(err), marker="o", capsize=3,
                    label=n, **kw)  # fmt: skip
    ax.set_xlabel("share of the horizon in a cold funding market")
    ax.set_ylabel("mean portfolio loss rate")
    _percent(ax, "x")
    _percent(ax, "y")
    ax.set_title("Portfolio loss by funding regime (95% intervals)")
    ax.legend()
    return ax


def plot_pool(result, *, ax=None, structure: str | None = None, **kw: Any):
    """Claims on a risk pool against what it paid, per portfolio and year, per unit lent.

    Points on the diagonal were paid in full; points on the horizontal line at the annual cap
    are the bad years in which the cap bound. The title gives the share of portfolio-years in
    which it did and the share of all claims left unpaid.
    """
    ax = _axes(ax)
    name = structure or next((n for n in result if result[n].structure.risk_pool), None)
    if name is None or result[name].structure.risk_pool is None:
        raise ValueError("structure: give a structure with a risk_pool")
    r = result[name]
    lent = r.aggregates[:, L.AGG_PRINCIPAL][:, None]
    ok = (lent[:, 0] > 0) & (r.pool_claims.sum(axis=1) > 0)
    claims = (r.pool_claims[ok] / lent[ok]).ravel()
    paid = (r.pool_paid[ok] / lent[ok]).ravel()
    some = claims > 0
    cap = r.structure.risk_pool.annual_cap
    binds = float(np.mean(paid[some] < claims[some] * (1 - 1e-12))) if some.any() else 0.0
    unpaid = 1.0 - r.pool_paid.sum() / max(r.pool_claims.sum(), 1e-300)
    ax.scatter(claims[some], paid[some], s=6, alpha=0.4, label="portfolio-years", **kw)
    top = float(claims.max()) if some.any() else cap
    ax.plot([0, top], [0, top], color="0.5", linewidth=1, label="paid in full")
    ax.axhline(cap, color="C3", linestyle="--", label=f"annual cap {cap:.1%} of principal")
    ax.set_xlabel("claims on the pool in the year, per unit lent")
    ax.set_ylabel("paid by the pool, per unit lent")
    _percent(ax, "x")
    _percent(ax, "y")
    ax.set_title(
        f"{name}: cap binds in {binds:.1%} of portfolio-years with claims; "
        f"{unpaid:.1%} of claims unpaid",
        fontsize="medium",
    )
    ax.legend()
    return ax


def plot_tornado(sens: dict[str, dict[str, float]], *, ax=None, metric: str = "", **kw: Any):
    """Tornado chart of :func:`invlend.sensitivity` output: bars from low to high per parameter.

    Parameters are sorted by the width of their swing, widest on top.
    """
    ax = _axes(ax)
    if not sens:
        raise ValueError("sens: no parameters to draw")
    items = sorted(sens.items(), key=lambda kv: abs(kv[1]["high"] - kv[1]["low"]))
    base = next(iter(sens.values()))["base"]
    for i, (_p, row) in enumerate(items):
        ax.barh(i, row["low"] - base, left=base, color="C3", alpha=0.8,
                label="parameter -" if i == 0 else None, **kw)  # fmt: skip
        ax.barh(i, row["high"] - base, left=base, color="C0", alpha=0.8,
                label="parameter +" if i == 0 else None, **kw)  # fmt: skip
    labels = [f"{p}\n({r['low_value']:.4g} / {r['high_value']:.4g})" for p, r in items]
    ax.set_yticks(range(len(items)), labels)
    ax.axvline(base, color="k", linewidth=1)
    ax.set_xlabel(M.axis_label(metric) if metric else "metric")
    if metric and M.is_rate(metric):
        _percent(ax, "x")
    ax.set_title("Sensitivity to each parameter")
    ax.legend(loc="lower right")
    return ax


def plot_menu(menu, *, ax=None, stages=None, **kw: Any):
    """Each candidate's objective by starting stage with its 95% interval; offers filled in.

    One group of points per stage (``stages``: default all of the menu's), one colour per
    candidate that is offered or tied somewhere (the legend lists those); the offer is a filled
    marker, tied candidates hollow ones, worse candidates small grey points and infeasible ones
    grey crosses; a dashed line is what declining is worth. Values per applicant grow with the
    firm's size, so stages of very different sizes read best one per panel
    (``stages=[stage]``).
    """
    ax = _axes(ax)
    names = list(menu.stages) if stages is None else list(stages)
    objective = menu.meta["objective"]
    structures = list(menu.structures)
    rows = {stage: menu.candidates(stage) for stage in names}
    shown = [n for n in structures
             if any(r["structure"] == n and r["status"] in ("offer", "tied")
                    for rs in rows.values() for r in rs)]  # fmt: skip
    colour = {n: f"C{i % 10}" for i, n in enumerate(shown)}
    width = 0.8 / max(len(structures), 1)
    labelled: set[str] = set()
    for j, stage in enumerate(names):
        for i, r in enumerate(rows[stage]):
            e, status, name = r[objective], r["status"], r["structure"]
            x = j - 0.4 + (i + 0.5) * width
            err = 1.96 * e.se if math.isfinite(e.se) else None
            if status in ("offer", "tied"):
                c = colour[name]
                label = None if name in labelled else name
                labelled.add(name)
                ax.errorbar(x, e.estimate, yerr=err, fmt="o", color=c, ms=8, label=label,
                            mfc=c if status == "offer" else "none", **kw)  # fmt: skip
            elif status == "worse":
                ax.errorbar(x, e.estimate, yerr=err, fmt="o", color="0.6", ms=3, **kw)
            else:
                ax.plot(x, e.estimate, "x", color="0.75", ms=4)
    ax.axhline(menu.meta["zero"], color="0.3", ls="--", lw=1, label="decline")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("starting stage")
    ax.set_ylabel(M.axis_label(objective))
    ax.set_title(f"product menu by {objective.replace('_', ' ')}: filled = offer, "
                 "hollow = tied, grey = worse, x = infeasible (95% intervals)",
                 fontsize="medium")  # fmt: skip
    if M.is_rate(objective):
        _percent(ax, "y")
    ax.legend(fontsize="small")
    return ax


def plot_competition_curve(curve, *, ax=None, capital: str = "irb_capital", **kw: Any):
    """Fair value and capital per unit lent against the number of banks, with 95% bars.

    ``curve`` is an :class:`invlend.CompetitionCurve`. Both are fractions of principal, so
    they share one axis. ``capital`` is one of ``"irb_capital"`` (the default) and
    ``"economic_capital"``; ``kw`` goes to each ``errorbar`` call.
    """
    if not callable(getattr(curve, "curve", None)) or not hasattr(curve, "meta"):
        raise TypeError(f"curve: expected a CompetitionCurve, got {type(curve).__name__}")
    capital = _checks.metric("capital", capital, ("irb_capital", "economic_capital"))
    ax = _axes(ax)
    for i, metric in enumerate(("fair_value_per_principal", capital)):
        x, y, se = curve.curve(metric)
        ax.errorbar(x, y, yerr=M.Z95 * np.nan_to_num(se), marker="o", capsize=3,
                    color=f"C{i}", label=M.axis_label(metric), **kw)  # fmt: skip
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("banks courting the firm")
    ax.set_ylabel("per unit of principal")
    _percent(ax, "y")
    m = curve.meta
    ax.set_title(f"{m['structure']} on {m['stage']} firms (bars: 95% intervals)")
    ax.legend()
    return ax


def plot_incentives(view, *, ax=None, **kw: Any):
    """Each class and product of an incentives view: first-year profit against fair value.

    ``view`` is an :class:`invlend.IncentiveView`; both axes are per unit of principal, colour
    by starting stage, marker by product. A point right of 0 and below 0 is a loan the
    first-year branch makes and the lifetime branch would not: value destroyed; left of 0 and
    above, value forgone. ``kw`` goes to ``ax.scatter``. With ``ax=None`` it opens a figure of
    its own (7 x 5 inches).
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 5))
    stages = list(dict.fromkeys(c["stage"] for c in view.classes))
    markers = "os^Dvp*hX"
    for j, p in enumerate(view.products):
        for s_i, stage in enumerate(stages):
            idx = [i for i, c in enumerate(view.classes) if c["stage"] == stage]
            x = [100 * view.cells[i][p].first_year_pp.estimate for i in idx]
            y = [100 * view.cells[i][p].fair_value_pp.estimate for i in idx]
            ax.scatter(x, y, color=f"C{s_i}", marker=markers[j % len(markers)],
                       label=f"{stage}, {p}", **kw)  # fmt: skip
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axvline(0.0, color="0.4", lw=0.8)
    ax.set_xlabel("expected first-year profit, % of principal")
    ax.set_ylabel("fair value, % of principal")
    ax.set_title("each applicant class (stage x signal bin) and product")
    ax.legend(fontsize="x-small", ncol=2)
    return ax
