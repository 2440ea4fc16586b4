"""Report folders: tables, figures and a self-contained HTML page for a simulation.

Overview
--------
:func:`write_report` writes ``summary.csv``, ``summary.json`` (with the seed, the full inputs
and the versions), ``comparison.csv``, ``decomposition.csv`` (each structure's value per unit
lent, part by part: fair value when the run has the risk-neutral measure),
``portfolios.csv`` (each portfolio's NPV and loss rate per structure), ``report.xlsx`` (the
same four tables as Excel sheets, numbers as numbers; the portfolio sheet is left out beyond
Excel's 1,048,575 rows), one PNG per figure and ``report.html``, which embeds the figures so
that the single file opens anywhere.

The page opens with a bottom line for a credit committee: the best structure on value (fair
value per unit lent, or the real-world NPV without the risk-neutral measure) and on RAROC,
its lead over the runner-up with the paired standard error and ``z``, what drives the lead in
value (the Shapley attribution of :func:`invlend.attribute_run` when its replay is cheap,
else the paired difference part by part) and the caveats of the run (the summary's notes,
the scenario's inputs that are still the project's estimates [E]). Every metric has a label,
a unit and a one-line meaning; the structures are printed as TOML that ``--structures``
reads back. An ``@media print`` stylesheet makes the page print to a clean PDF.
Everything is written to a temporary folder next to the target and moved in only when
complete, so an error never leaves a partial report behind.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tomli_w

from invlend import _workbook as W
from invlend import capital as C
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._tables import Footnotes, format_difference, shown_metrics, write_csv
from invlend.estimation import shown_parts

__all__ = ["structures_toml", "write_report"]

_FIGURES = {
    "npv_distribution.png": "Distribution of each accepted loan's real-world NPV per unit of "
    "principal (symmetric-log axis). The dashed lines and the legend are the summary table's "
    "NPV per principal: all cash flows over all principal lent, the screening cost of rejected "
    "applicants included (a ratio of sums, so not the plain mean of the loans drawn).",
    "loss_distribution.png": "Portfolio loss rate (log count of portfolios), with the expected "
    "loss, VaR and ES at 99% and 99.9% of the summary table marked in each structure's colour.",
    "risk_return.png": "Risk and return of each structure: economic capital against fair value "
    "per unit lent, with 95% intervals (the summary table's estimates).",
    "decomposition.png": "Value per unit lent, part by part (the table 'Value part by part').",
    "cumulative_incidence.png": "Cumulative incidence of default, IPO and M&A by starting "
    "stage, among all applicant firms (accepted or not) under the first structure's firm "
    "dynamics; the titles name the structures that share them.",
    "value_fan.png": "Firm value paths relative to entry (log scale), sampled firms.",
}

#: Readable name of each metric.
LABELS = {
    "fair_value_per_principal": "Fair value per unit lent",
    "fair_value_per_applicant": "Fair value per applicant",
    "npv_per_principal": "Real-world NPV per unit lent",
    "npv_per_loan": "Real-world NPV per loan",
    "npv_per_applicant": "Real-world NPV per applicant",
    "irr": "Portfolio IRR",
    "acceptance_rate": "Acceptance rate",
    "accepted_quality": "Quality of accepted firms",
    "pd": "Probability of default (life of loan)",
    "annual_pd": "Annual probability of default",
    "lgd": "Loss given default",
    "collateral_share": "Collateral share of recoveries",
    "expected_loss": "Expected loss",
    "ecl_12m": "IFRS 9 12-month ECL",
    "ecl_lifetime": "IFRS 9 lifetime ECL",
    "stage2_share": "Share of loans in IFRS 9 stage 2",
    "loss_var_99": "Loss VaR 99%",
    "loss_var_999": "Loss VaR 99.9%",
    "loss_es_99": "Loss expected shortfall 99%",
    "loss_es_999": "Loss expected shortfall 99.9%",
    "economic_capital": "Economic capital",
    "credit_capital": "Credit capital",
    "irb_capital": "Basel IRB capital",
    "raroc": "RAROC (economic capital)",
    "raroc_irb": "RAROC (IRB capital)",
    "eva": "EVA (economic capital)",
    "eva_irb": "EVA (IRB capital)",
    "prob_negative_npv": "Share of loans with NPV < 0",
    "pool_shortfall": "Risk pool shortfall",
}

#: What a rate metric is a share of ("%" or "pp" goes in front); other metrics' units whole.
_RATE_OF = {
    "fair_value_per_principal": "of principal",
    "npv_per_principal": "of principal",
    "irr": "per year",
    "acceptance_rate": "of applicants",
    "pd": "of loans",
    "annual_pd": "per year",
    "lgd": "of exposure at default",
    "collateral_share": "of recoveries",
    "expected_loss": "of principal",
    "ecl_12m": "of principal",
    "ecl_lifetime": "of principal",
    "stage2_share": "of loans",
    "loss_var_99": "of principal",
    "loss_var_999": "of principal",
    "loss_es_99": "of principal",
    "loss_es_999": "of principal",
    "economic_capital": "of principal",
    "credit_capital": "of principal",
    "irb_capital": "of exposure",
    "raroc": "per year, of capital",
    "raroc_irb": "per year, of capital",
    "eva": "of principal per year",
    "eva_irb": "of principal per year",
    "prob_negative_npv": "of loans",
    "pool_shortfall": "of claims on the pool",
}
_PER = {
    "fair_value_per_applicant": "per applicant",
    "npv_per_loan": "per loan",
    "npv_per_applicant": "per applicant",
}

#: Replays of :func:`invlend.attribute_run` at most this many firm-structure evaluations
#: (hybrids x portfolios x applicants) count as cheap enough for the bottom line.
ATTRIBUTION_BUDGET = 10_000_000


def currency_name(scenario) -> str:
    """The scenario's currency (``scenario.currency`` if it has one), else "currency units"."""
    cur = getattr(scenario, "currency", None)
    return str(cur) if cur else "currency units"


def unit(metric: str, *, difference: bool = False, currency: str = "currency units") -> str:
    """The unit of ``metric`` as the report prints it.

    Rates are per cent (``"% of principal"``), their differences percentage points
    (``"pp of principal"``); NPVs per loan or applicant are in ``currency``; the quality of
    accepted firms in standard deviations.
    """
    if metric in _RATE_OF:
        return f"{'pp' if difference else '%'} {_RATE_OF[metric]}"
    if metric in _PER:
        return f"{currency} {_PER[metric]}"
    if metric == "accepted_quality":
        return "standard deviations of quality"
    return "pp" if difference else "%"


def meaning(metric: str, *, hurdle: float, discount_rate: float) -> str:
    """One line on what ``metric`` means, with the hurdle or discount rate where it is used."""
    text = M.DESCRIPTIONS[metric]
    if metric.startswith(("fair_value", "npv")):
        text += f"; discounted at {discount_rate:.2%} a year"
    elif metric in ("eva", "eva_irb"):
        text += f"; hurdle {hurdle:.1%} a year"
    elif metric in ("raroc", "raroc_irb"):
        text += f"; compare with the hurdle {hurdle:.1%}; values discounted at {discount_rate:.2%}"
    return text


def _figures(result, summary, decomps) -> dict[str, bytes]:
    """Render every figure to PNG bytes (Agg canvas: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from invlend import plotting as P

    def render(draw, size=(8, 5), ncols=1) -> bytes:
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, ncols)
        draw(axes)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        return buf.getvalue()

    def incidence(axes):
        for ax, event in zip(axes, ("DEFAULT", "IPO", "MA"), strict=True):
            P.plot_cumulative_incidence(result, ax=ax, event=event)

    first_part = next(iter(decomps.values()))
    out = {
        "loss_distribution.png": render(
            lambda ax: P.plot_loss_distribution(result, ax=ax), size=(8, 5.5)
        ),
        "risk_return.png": render(lambda ax: P.plot_risk_return(result, ax=ax, summary=summary)),
        "decomposition.png": render(
            lambda ax: P.plot_decomposition(
                result, ax=ax, measure=first_part.measure, decompositions=decomps
            ),
            size=(8, 5.5),
        ),
    }
    if result.keep == "firms":  # these need per-firm arrays
        out["npv_distribution.png"] = render(
            lambda ax: P.plot_npv_distribution(result, ax=ax, summary=summary), size=(8, 5.5)
        )
        out["cumulative_incidence.png"] = render(incidence, size=(18, 5.5), ncols=3)
    first = next(iter(result))
    if result[first].outcomes.paths.shape[0] > 0:
        out["value_fan.png"] = render(lambda ax: P.plot_value_fan(result, ax=ax))
    return out


def _decompositions(result) -> dict:
    """Each structure's value part by part.

    The fair value where the run has the risk-neutral measure, the real-world NPV otherwise.
    """
    measure = "risk_neutral" if "risk_neutral" in result.run.measures else "real_world"
    return {n: result.decompose(n, measure) for n in result}


def _decomposition_section(decomps: dict) -> list[str]:
    names = list(decomps)
    first = decomps[names[0]]
    keys = shown_parts(decomps)
    rows = [
        [k.replace("_", " ")]
        + [f"{100 * decomps[n][k].estimate:+.2f}% ± {100 * decomps[n][k].se:.2f}%" for n in names]
        for k in keys
    ]
    if first.measure == "risk_neutral":
        lead = (
            "Present values under the risk-neutral measure, per unit lent: what each part of "
            "the structure is worth. The parts add up to the fair value (total); parts that are "
            "zero for every structure are left out. <code>principal</code> is what is repaid "
            "minus what is lent, <code>recoveries</code> what defaults recover: together they "
            "are the time value of the principal and the credit loss."
        )
    else:
        lead = (
            "This run has no risk-neutral measure (a value barrier, or "
            "<code>measures='real_world'</code>), so the parts are real-world expected cash "
            "at the discount rate, per unit lent: not prices."
        )
    return [
        "<h2 id='parts'>Value part by part</h2>",
        f"<p>{lead}</p>",
        _html_table(rows, ["part", *names]),
    ]


def _html_table(rows: list[list[str]], head: list[str], cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    attr = f" class='{cls}'" if cls else ""
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _metric_table(table, marks: Footnotes, *, difference: bool, currency: str, hurdle: float,
                  discount_rate: float) -> str:  # fmt: skip
    """Every metric shown: label (and name), unit, one cell per column, meaning."""
    cols = list(table)
    head = "<th>metric</th><th class='l'>unit</th>" + "".join(
        f"<th>{html.escape(c)}</th>" for c in (
            [f"{n} − {table.meta['baseline']}" for n in cols] if difference else cols)
    ) + "<th class='l'>meaning</th>"  # fmt: skip
    body = []
    for m in shown_metrics({c: table[c] for c in cols}):
        cells = "".join(f"<td>{html.escape(marks.cell(m, table[c][m]))}</td>" for c in cols)
        body.append(
            f"<tr data-metric='{m}'><td>{html.escape(LABELS[m])}<br><code>{m}</code></td>"
            f"<td class='unit'>{html.escape(unit(m, difference=difference, currency=currency))}"
            f"</td>{cells}<td class='meaning'>"
            f"{html.escape(meaning(m, hurdle=hurdle, discount_rate=discount_rate))}</td></tr>"
        )
    return (f"<table class='metrics'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
            "</tbody></table>")  # fmt: skip


def structures_toml(structures) -> str:
    """The structures as TOML that ``invlend compare --structures`` reads back."""
    dumped = [s.model_dump(mode="json", exclude_none=True) for s in structures]
    return tomli_w.dumps({"structure": dumped})


# ------------------------------------------------------------------------- bottom line


def _ranked(summary, metric: str) -> list[str]:
    """Structures with a finite ``metric``, best (highest) first."""
    vals = {n: summary[n][metric].estimate for n in summary}
    return sorted((n for n, v in vals.items() if math.isfinite(v)), key=lambda n: -vals[n])


def _lead(result, summary, metric: str, n_boot: int, hurdle: float, currency: str) -> dict:
    """The best structure on ``metric``, its runner-up and the paired difference."""
    ranked = _ranked(summary, metric)
    out = {"metric": metric, "best": ranked[0] if ranked else None, "runner_up": None}
    if len(ranked) >= 2:
        best, second = ranked[:2]
        diff = result.compare(baseline=second, n_boot=n_boot, hurdle=hurdle)[best][metric]
        out.update(runner_up=second, diff=diff)
    return out


def _cell(metric: str, est) -> str:
    """``estimate ± se`` exactly as the summary table prints it (without a footnote mark)."""
    return Footnotes().cell(metric, est._replace(note=""))


def _lead_html(lead: dict, summary, what: str, currency: str) -> str:
    m, best = lead["metric"], lead["best"]
    if best is None:
        why = next((summary[n][m].note for n in summary if summary[n][m].note), "")
        why = f" ({html.escape(why)})" if why else ""
        return f"<li><b>{what}</b>: undefined for every structure in this run{why}.</li>"
    est = _cell(m, summary[best][m])
    u = unit(m, currency=currency)
    if lead["runner_up"] is None:
        return (
            f"<li><b>{what}</b>: <b>{html.escape(best)}</b> at {est} ({html.escape(u)}), the "
            "only structure with a value: nothing to compare it with.</li>"
        )
    text = f"<b>{what}</b>: <b>{html.escape(best)}</b> is best at {est} ({html.escape(u)})"
    d, second = lead["diff"], lead["runner_up"]
    ud = unit(m, difference=True, currency=currency)
    z = d.z
    if math.isfinite(z):
        verdict = (
            "significant (|z| > 2)" if abs(z) > 2 else
            "not significant (|z| ≤ 2): at this run size the two cannot be told apart"
        )  # fmt: skip
        zs = f"z = {z:+.1f}, {verdict}"
    else:
        zs = f"z undefined ({html.escape(d.note or 'no standard error')})"
    return (
        f"<li>{text}; ahead of <b>{html.escape(second)}</b> "
        f"({_cell(m, summary[second][m])}) by {format_difference(m, d.estimate, d.se)} "
        f"({html.escape(ud)}; ± the paired standard error), {zs}.</li>"
    )


def _attribution_cost(result, best: str, second: str) -> tuple[int, int]:
    from invlend.attribution import differing_terms

    n = len(differing_terms(result[best].structure, result[second].structure))
    return n, 2**n * result.n_portfolios * result.portfolio_size


def _drivers(result, best: str, second: str, metric: str, hurdle: float,
             attribution: bool | None) -> tuple[str, list[tuple[str, float, float]]]:  # fmt: skip
    """What makes ``best - second`` in ``metric``: ``(how, [(part, estimate, se), ...])``.

    The Shapley parts of :func:`invlend.attribute_run` (a replay of the run with the hybrids)
    when ``attribution`` is true, or when it is ``None`` and the replay costs at most
    :data:`ATTRIBUTION_BUDGET`; otherwise the paired difference of the decomposition, part
    by part (no replay).
    """
    from invlend.attribution import MAX_TERMS, attribute_run

    n_terms, cost = _attribution_cost(result, best, second)
    cheap = 0 < n_terms <= MAX_TERMS and cost <= ATTRIBUTION_BUDGET
    if attribution or (attribution is None and cheap):
        try:
            a = attribute_run(result, second, structures=[best], metrics=metric,
                              hurdle=hurdle)[best][metric]  # fmt: skip
            return "shapley", [(t, e.estimate, e.se) for t, e in a.items()]
        except (ValueError, RuntimeError, ImportError):  # an invalid hybrid, a backend gone
            pass
    measure = "risk_neutral" if metric.startswith("fair_value") else "real_world"
    ra, rb = result[best], result[second]
    agg_a = ra.fair_aggregates if measure == "risk_neutral" else ra.aggregates
    agg_b = rb.fair_aggregates if measure == "risk_neutral" else rb.aggregates
    w = np.asarray(result.weights)  # importance weights (all 1 for plain sampling)
    parts, ua_t, ub_t = [], 0.0, 0.0
    for part in L.COMPONENTS:
        ea, ua = M.ratio(w * agg_a[:, L.AGG_PV[part]], w * ra.aggregates[:, L.AGG_PRINCIPAL])
        eb, ub = M.ratio(w * agg_b[:, L.AGG_PV[part]], w * rb.aggregates[:, L.AGG_PRINCIPAL])
        ua_t, ub_t = ua_t + ua, ub_t + ub
        if ea != 0 or eb != 0:
            parts.append((part, ea - eb, M.influence_se(ua - ub)))
    total = sum(p[1] for p in parts)
    parts.append(("total", total, M.influence_se(np.asarray(ua_t) - np.asarray(ub_t))))
    return "parts", parts


def _drivers_html(how: str, parts, best: str, second: str, metric: str) -> str:
    label = LABELS[metric][0].lower() + LABELS[metric][1:]
    *terms, (_, total, total_se) = parts
    terms = sorted(terms, key=lambda t: -abs(t[1]))
    cells = "; ".join(
        f"<code>{html.escape(t)}</code> {format_difference(metric, e, se)}" for t, e, se in terms
    )
    lead_text = format_difference(metric, total, total_se)
    if how == "shapley":
        lead = (
            f"Shapley attribution of the lead in {label} ({lead_text}) to the terms in which "
            f"{html.escape(best)} differs from {html.escape(second)} (a replay of this run's "
            "firms with every mix of the two; each part with its paired standard error)"
        )
    else:
        lead = (
            f"The lead in {label} ({lead_text}) "
            "part by part (the difference of the two decompositions, paired standard errors; "
            "a term-by-term attribution was not run: too costly for this run's size, or the "
            "terms do not mix)"
        )
    return f"<li><b>What drives it</b>: {lead}: {cells}.</li>"


def _estimate_marks() -> list[tuple[str, ...]]:
    """Paths of the built-in scenario's inputs marked ``[E]`` on their own line."""
    from invlend.config import default_scenario_toml

    paths, section, index = [], (), {}
    for line in default_scenario_toml().splitlines():
        head = re.match(r"^\s*(\[\[?)([\w.]+)\]\]?", line)
        if head:
            name = head.group(2)
            if head.group(1) == "[[":
                index[name] = index.get(name, -1) + 1
                section = (name, index[name])
            else:
                section = tuple(name.split("."))
            continue
        m = re.match(r"^\s*(\w+)\s*=\s*([^#]*)#(.*)$", line)
        if m and "[E]" in m.group(3):
            paths.append((*section, m.group(1)))
    return paths


def _get(obj, path):
    for k in path:
        if obj is None:
            return None
        obj = obj[k] if isinstance(k, int) else getattr(obj, k, None)
    return obj


def _estimates_in(scenario) -> list[str]:
    """The inputs of ``scenario`` that are still the built-in scenario's estimates [E]."""
    from invlend.config import Scenario

    default = Scenario.default()
    by_stage: dict[str, list[str]] = {}
    out = []
    for path in _estimate_marks():
        if path[0] == "stages":
            i, key = path[1], path[2]
            name = default.stages[i].name
            mine = next((st for st in scenario.stages if st.name == name), None)
            if mine is not None and getattr(mine, key, None) == getattr(default.stages[i], key):
                by_stage.setdefault(key, []).append(name)
            continue
        value = _get(scenario, path)
        if value is not None and value == _get(default, path):
            out.append(".".join(map(str, path)))
    n_stages = len(default.stages)
    for key, names in by_stage.items():
        which = "all stages" if len(names) == n_stages else ", ".join(names)
        out.append(f"stages.{key} ({which})")
    return out


def _caveats(result, summary) -> list[str]:
    notes = list(summary.notes)
    estimates = _estimates_in(result.scenario)
    if estimates:
        notes.append(
            f"{len(estimates)} inputs of this scenario are still the project's estimates, "
            "marked [E] in the built-in scenario (a modelling judgement, not a published "
            "number; docs/sources.md): " + ", ".join(estimates)
        )
    return notes


def _bottom_line(result, summary, n_boot, hurdle, currency, attribution) -> list[str]:
    value = ("fair_value_per_principal" if "risk_neutral" in result.run.measures
             else "npv_per_principal")  # fmt: skip
    v = _lead(result, summary, value, n_boot, hurdle, currency)
    r = _lead(result, summary, "raroc", n_boot, hurdle, currency)
    what = "Fair value" if value.startswith("fair") else "Real-world NPV (no fair values)"
    items = [_lead_html(v, summary, f"{what} per unit lent", currency)]
    if v.get("runner_up"):
        how, parts = _drivers(result, v["best"], v["runner_up"], value, hurdle, attribution)
        items.append(_drivers_html(how, parts, v["best"], v["runner_up"], value))
    items.append(_lead_html(r, summary, f"RAROC (hurdle {hurdle:.1%})", currency))
    if r["best"] is not None:
        row = summary[r["best"]]
        fv, ec, ra = row["fair_value_per_principal"], row["economic_capital"], row["raroc"]
        side = "above" if ra.estimate > hurdle else "below"
        items.append(
            f"<li>RAROC of {html.escape(r['best'])} is fair value "
            f"{_cell('fair_value_per_principal', fv)} of principal on economic capital "
            f"{_cell('economic_capital', ec)} of principal, per year outstanding: {side} "
            f"the hurdle of {hurdle:.1%}.</li>"
        )
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in _caveats(result, summary))
    return [
        "<section id='bottom-line' class='bottom'><h2>Bottom line</h2>",
        f"<ul>{''.join(items)}</ul>",
        f"<h3>Caveats of this run</h3><ul class='caveats'>{caveats or '<li>none</li>'}</ul>",
        "</section>",
    ]


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
    "padding:4px 10px;text-align:right;vertical-align:top}td:first-child,th:first-child{"
    "text-align:left}th{background:#f2f2f2}td.unit,td.meaning{text-align:left;color:#555}"
    "td.meaning{font-size:90%;max-width:28em}th.l{text-align:left}"
    "table.metrics td{white-space:nowrap}table.metrics td.unit,table.metrics td.meaning,"
    "table.metrics td:first-child{white-space:normal}"
    "img{max-width:100%;height:auto;border:1px solid "
    "#eee}pre{background:#f7f7f7;padding:1em;overflow-x:auto}.note{color:#8a5a00}"
    "section.bottom{border:2px solid #2a6;padding:0 1em;background:#f5fbf7}"
    "nav{margin:1em 0;font-size:95%}nav a{margin-right:1em}"
    "@media print{nav,.noprint{display:none}body{max-width:none;margin:0;padding:0;"
    "font-size:10pt}table{font-size:8pt;width:100%}table.metrics td{white-space:normal}"
    "td.meaning{max-width:none}tr,td,th,figure,img,pre,section.bottom"
    "{break-inside:avoid;page-break-inside:avoid}thead{display:table-header-group}"
    "h2,h3{break-after:avoid;page-break-after:avoid}img{max-width:100%!important;"
    "height:auto;border:none}figure{margin:1em 0}pre{white-space:pre-wrap;"
    "word-break:break-word;font-size:8pt;overflow:visible}"
    "a{color:inherit;text-decoration:none}@page{margin:15mm}}"
)


def _page(result, summary, comparison, decomps, figures: dict[str, bytes], *,
          hurdle: float = C.DEFAULT_HURDLE, n_boot: int = 400,
          attribution: bool | None = None) -> str:  # fmt: skip
    currency = currency_name(result.scenario)
    dr = result.scenario.market.discount_rate
    marks = Footnotes()
    table = _metric_table(summary, marks, difference=False, currency=currency, hurdle=hurdle,
                          discount_rate=dr)  # fmt: skip
    sections = [("bottom-line", "Bottom line"), ("summary", "Summary"),
                ("parts", "Value part by part")]  # fmt: skip
    if comparison is not None and len(comparison):
        sections.append(("differences", "Paired differences"))
    sections += [("figures", "Figures"), ("inputs", "Inputs")]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>invlend report</title><style>{_CSS}</style></head><body>",
        "<h1>invlend report</h1>",
        f"<p>{result.n_portfolios:,} portfolios of {result.portfolio_size:,} applicant firms, "
        f"seed {html.escape(str(result.seed))}, backend {html.escape(result.backend)}; "
        f"invlend {html.escape(result.versions['invlend'])}. Every estimate is shown with "
        "its Monte Carlo standard error, clustered by portfolio. Discount rate "
        f"{dr:.2%} a year; hurdle rate {hurdle:.1%} a year (EVA, RAROC). Money is in "
        f"{html.escape(currency)}.</p>",
        *(
            []
            if result.tilt is None
            else [
                f"<p><b>Importance sampling</b> ({html.escape(str(result.tilt))}): portfolios were "
                "drawn with the market, the funding cycle and their quality tilted toward the loss "
                "tail, and every estimate, figure and standard error uses their likelihood-ratio "
                "weights (docs/tail.md).</p>"
            ]
        ),
        *(
            []
            if result.stopping is None
            else [
                f"<p>The run extended itself to {result.n_portfolios:,} portfolios in batches "
                f"{', '.join(f'{b:,}' for b in result.stopping['batches'])} "
                f"({html.escape(result.stopping['reason'])}) toward the relative standard errors "
                + ", ".join(
                    f"{html.escape(m)} {t:.1%}" for m, t in result.stopping["tolerance"].items()
                )
                + ".</p>"
            ]
        ),
        "<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in sections) + "</nav>",
    ]
    parts += _bottom_line(result, summary, n_boot, hurdle, currency, attribution)
    parts += [
        "<h2 id='summary'>Summary</h2>",
        "<p>Values (fair value, RAROC and EVA numerators) come from the risk-neutral measure: "
        "what the positions are worth. Risk (PD, losses, VaR, capital, provisions) comes from "
        "the real-world measure. The real-world NPV is expected cash at the discount rate, not "
        "a price. Cells are estimate ± standard error; rates in per cent (%).</p>",
        table,
    ]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in marks.lines()]
    parts += [f"<p class='note'>Note: {html.escape(n)}</p>" for n in summary.notes]
    parts += _decomposition_section(decomps)
    if comparison is not None and len(comparison):
        base = comparison.meta["baseline"]
        cmarks = Footnotes(difference=True)
        parts += [
            f"<h2 id='differences'>Paired differences against {html.escape(base)}</h2>",
            "<p>Both structures are evaluated on the same simulated firms, so the standard "
            "error of a difference is much smaller than those of the two estimates. "
            "Differences of rates are in percentage points (pp); z is the difference over its "
            "standard error (|z| &gt; 2: significant).</p>",
            _metric_table(
                comparison,
                cmarks,
                difference=True,
                currency=currency,
                hurdle=hurdle,
                discount_rate=dr,
            ),
        ]
        parts += [f"<p class='note'>{html.escape(line)}</p>" for line in cmarks.lines()]
    parts.append("<h2 id='figures'>Figures</h2>")
    for name, caption in _FIGURES.items():
        if name in figures:
            data = base64.b64encode(figures[name]).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts += [
        "<h2 id='inputs'>Inputs</h2><p>The scenario (TOML, as <code>invlend compare</code> "
        "reads it):</p>",
        f"<pre>{html.escape(result.scenario.to_toml())}</pre>",
        "<p>The structures, as TOML that <code>invlend compare --structures FILE</code> reads "
        "back (save it to a file):</p>",
        f"<pre id='structures-toml'>{html.escape(structures_toml(result.structures))}</pre>",
        f"<p>Versions: {html.escape(json.dumps(result.versions))}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    result,
    out: str | Path,
    *,
    baseline: str | None = None,
    n_boot: int = 400,
    hurdle: float = C.DEFAULT_HURDLE,
    attribution: bool | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write the report folder ``out`` for ``result``; return the paths written.

    ``progress`` shows a bar over the summary's bootstrap replicates.
    ``hurdle`` is the annual hurdle rate of EVA (as in :meth:`~invlend.SimulationResult.summary`).
    ``attribution``: whether the bottom line splits the lead in value term by term
    (:func:`invlend.attribute_run`, a replay of the run); ``None`` (default) does so when the
    replay is cheap (:data:`ATTRIBUTION_BUDGET`), and otherwise shows the lead part by part.
    Files already in ``out`` with other names are left alone; files with these names are
    replaced, all at the end, so an error leaves ``out`` as it was.
    """
    out = Path(out)
    summary = result.summary(n_boot=n_boot, hurdle=hurdle, progress=progress)
    comparison = None
    if len(result) > 1:
        comparison = result.compare(baseline=baseline or next(iter(result)), n_boot=n_boot,
                                    hurdle=hurdle)  # fmt: skip
    decomps = _decompositions(result)
    figures = _figures(result, summary, decomps)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        summary.to_csv(tmp / "summary.csv")
        doc = summary.to_dict()
        doc["meta"] = result.meta | {"n_boot": n_boot}
        (tmp / "summary.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        if comparison is not None:
            comparison.to_csv(tmp / "comparison.csv")
        first = next(iter(decomps.values()))
        parts = [r for d in decomps.values() for r in d.records()]
        write_csv(tmp / "decomposition.csv", parts, first.fields())
        portfolios = W.portfolio_sheet(result)
        write_csv(tmp / "portfolios.csv", portfolios.records, portfolios.fields)
        sheets = [W.Sheet("summary", summary.records(), summary.fields())]
        if comparison is not None:
            sheets.append(W.Sheet("comparison", comparison.records(), comparison.fields()))
        sheets += [W.Sheet("decomposition", parts, first.fields()), portfolios]
        W.write_workbook(tmp / "report.xlsx", sheets)
        for name, data in figures.items():
            (tmp / name).write_bytes(data)
        (tmp / "report.html").write_text(
            _page(
                result,
                summary,
                comparison,
                decomps,
                figures,
                hurdle=hurdle,
                n_boot=n_boot,
                attribution=attribution,
            ),
            encoding="utf-8",
        )
        out.mkdir(exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            target = out / f.name
            f.replace(target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
