"""Report folders: tables, figures and a self-contained HTML page for a simulation.

Overview
--------
:func:`write_report` writes ``summary.csv``, ``summary.json`` (with the seed, the full inputs
and the versions), ``comparison.csv``, ``decomposition.csv`` (each structure's value per unit
lent, part by part: fair value when the run has the risk-neutral measure), one PNG per figure
and ``report.html``, which embeds the figures so that the single file opens anywhere.
Everything is written to a temporary folder next to the target and moved in only when
complete, so an error never leaves a partial report behind.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import tempfile
from pathlib import Path

from invlend import metrics as M
from invlend._tables import Footnotes, metric_rows, write_csv
from invlend.estimation import shown_parts

__all__ = ["write_report"]

_FIGURES = {
    "npv_distribution.png": "Distribution of each loan's NPV per unit of principal",
    "loss_distribution.png": "Portfolio loss rate with VaR and ES",
    "risk_return.png": "Risk and return of each structure",
    "decomposition.png": "Fair value per unit lent, part by part",
    "cumulative_incidence.png": "Cumulative incidence of default, IPO and M&A by starting stage",
    "value_fan.png": "Firm value paths relative to entry",
}


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
        "loss_distribution.png": render(lambda ax: P.plot_loss_distribution(result, ax=ax)),
        "risk_return.png": render(lambda ax: P.plot_risk_return(result, ax=ax, summary=summary)),
        "decomposition.png": render(
            lambda ax: P.plot_decomposition(
                result, ax=ax, measure=first_part.measure, decompositions=decomps
            ),
            size=(8, 5.5),
        ),
    }
    if result.keep == "firms":  # these need per-firm arrays
        out["npv_distribution.png"] = render(lambda ax: P.plot_npv_distribution(result, ax=ax))
        out["cumulative_incidence.png"] = render(incidence, size=(18, 5), ncols=3)
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
        "<h2>Value part by part</h2>",
        f"<p>{lead}</p>",
        _html_table(rows, ["part", *names]),
    ]


def _html_table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _structures_json(result) -> str:
    dumped = [s.model_dump(mode="json", exclude_none=True) for s in result.structures]
    return json.dumps(dumped, indent=2, ensure_ascii=False)


def _page(result, summary, comparison, decomps, figures: dict[str, bytes]) -> str:
    names = list(summary)
    marks = Footnotes()
    rows = metric_rows(summary, marks)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>invlend report</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee}"
        "pre{background:#f7f7f7;padding:1em;overflow-x:auto}.note{color:#8a5a00}",
        "</style></head><body>",
        "<h1>invlend report</h1>",
        f"<p>{result.n_portfolios:,} portfolios of {result.portfolio_size:,} applicant firms, "
        f"seed {html.escape(str(result.seed))}, backend {html.escape(result.backend)}; "
        f"invlend {html.escape(result.versions['invlend'])}. Every estimate is shown with "
        "its Monte Carlo standard error, clustered by portfolio.</p>",
        "<p>Values (fair value, RAROC and EVA numerators) come from the risk-neutral measure: "
        "what the positions are worth. Risk (PD, losses, VaR, capital, provisions) comes from "
        "the real-world measure. The real-world NPV is expected cash at the discount rate, not "
        "a price.</p>",
        "<h2>Summary</h2>",
        _html_table(rows, ["metric", *names]),
    ]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in marks.lines()]
    parts += [f"<p class='note'>Note: {html.escape(n)}</p>" for n in summary.notes]
    parts.append(
        "<details><summary>What each metric means</summary><dl>"
        + "".join(
            f"<dt><code>{m}</code></dt><dd>{html.escape(M.DESCRIPTIONS[m])}</dd>" for m in M.METRICS
        )
        + "</dl></details>"
    )
    parts += _decomposition_section(decomps)
    if comparison is not None and len(comparison):
        base = comparison.meta["baseline"]
        cnames = list(comparison)
        cmarks = Footnotes()
        crow = metric_rows(comparison, cmarks)
        parts += [
            f"<h2>Paired differences against {html.escape(base)}</h2>",
            "<p>Both structures are evaluated on the same simulated firms, so the standard "
            "error of a difference is much smaller than those of the two estimates.</p>",
            _html_table(crow, ["metric", *(f"{n} − {base}" for n in cnames)]),
        ]
        parts += [f"<p class='note'>{html.escape(line)}</p>" for line in cmarks.lines()]
    parts.append("<h2>Figures</h2>")
    for name, caption in _FIGURES.items():
        if name in figures:
            data = base64.b64encode(figures[name]).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts += [
        "<h2>Inputs</h2><p>The scenario (TOML, as <code>invlend compare</code> reads it):</p>",
        f"<pre>{html.escape(result.scenario.to_toml())}</pre>",
        "<p>Structures:</p><pre>" + html.escape(_structures_json(result)) + "</pre>",
        f"<p>Versions: {html.escape(json.dumps(result.versions))}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    result, out: str | Path, *, baseline: str | None = None, n_boot: int = 400
) -> list[Path]:
    """Write the report folder ``out`` for ``result``; return the paths written.

    Files already in ``out`` with other names are left alone; files with these names are
    replaced, all at the end, so an error leaves ``out`` as it was.
    """
    out = Path(out)
    summary = result.summary(n_boot=n_boot)
    comparison = None
    if len(result) > 1:
        comparison = result.compare(baseline=baseline or next(iter(result)), n_boot=n_boot)
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
        write_csv(tmp / "decomposition.csv", [r for d in decomps.values() for r in d.records()],
                  first.fields())  # fmt: skip
        for name, data in figures.items():
            (tmp / name).write_bytes(data)
        (tmp / "report.html").write_text(
            _page(result, summary, comparison, decomps, figures), encoding="utf-8"
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
