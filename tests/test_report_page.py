"""The report page: a bottom line first, units on every metric, figures that match the tables,
structures as TOML that reads back, and a print stylesheet."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re
import tomllib
from html import unescape

import matplotlib.pyplot as plt
import pytest

import invlend as il
from invlend import metrics as M
from invlend import plotting as P
from invlend import report as R
from invlend._tables import Footnotes


@pytest.fixture(scope="module")
def res():
    return il.simulate(il.Scenario.default(), n_portfolios=60, portfolio_size=20, seed=5)


@pytest.fixture(scope="module")
def page(res, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "rep"
    R.write_report(res, out, n_boot=20)
    return (out / "report.html").read_text(encoding="utf-8")


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end, page.index(start))]


def test_bottom_line_comes_first_and_names_the_best(res, page):
    s = res.summary(n_boot=20)
    fair = {n: s[n]["fair_value_per_principal"].estimate for n in res}
    best = max(fair, key=fair.get)
    runner = sorted(fair, key=fair.get)[-2]
    assert page.index("Bottom line") < page.index("id='summary'")
    bottom = unescape(_section(page, "id='bottom-line'", "</section>"))
    assert f"<b>{best}</b> is best" in bottom and f"ahead of <b>{runner}</b>" in bottom
    d = res.compare(baseline=runner, n_boot=20)[best]["fair_value_per_principal"]
    assert f"z = {d.z:+.1f}" in bottom and "paired standard error" in bottom
    assert "RAROC" in bottom and "What drives it" in bottom
    assert "Caveats of this run" in bottom
    for note in s.notes:  # the summary's notes: here the thin tail
        assert note in bottom
    assert "[E]" in bottom and "market.discount_rate" in bottom


def test_attribution_drives_the_bottom_line_and_adds_up(res):
    s = res.summary(n_boot=0)
    ranked = R._ranked(s, "fair_value_per_principal")
    best, second = ranked[:2]
    how, parts = R._drivers(res, best, second, "fair_value_per_principal", 0.12, None)
    assert how == "shapley"  # cheap at this size
    *terms, (name, total, _) = parts
    assert name == "total" and sum(t[1] for t in terms) == pytest.approx(total, abs=1e-12)
    d = res.compare(baseline=second, n_boot=0)[best]["fair_value_per_principal"]
    assert total == pytest.approx(d.estimate, abs=1e-12)
    how, parts = R._drivers(res, best, second, "fair_value_per_principal", 0.12, False)
    assert how == "parts" and parts[-1][1] == pytest.approx(d.estimate, abs=1e-12)
    assert parts[-1][2] == pytest.approx(d.se, rel=1e-9)  # paired, as the comparison's


def test_every_metric_row_has_a_label_unit_and_meaning(res, page):
    rows = re.findall(r"<tr data-metric='(\w+)'>(.*?)</tr>", page, flags=re.S)
    assert rows
    for metric, row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        assert unescape(cells[0]).startswith(R.LABELS[metric])
        assert cells[1].strip(), metric  # a unit
        assert cells[-1].strip(), metric  # a meaning
    for m in M.METRICS:
        assert R.unit(m) and R.LABELS[m]
    assert R.unit("fair_value_per_principal") == "% of principal"
    assert R.unit("fair_value_per_principal", difference=True) == "pp of principal"
    assert R.unit("npv_per_loan", currency="CNY million") == "CNY million per loan"
    summary = _section(page, "id='summary'", "id='parts'")
    assert "hurdle 12.0%" in summary and "discounted at 2.00%" in summary
    diffs = _section(page, "id='differences'", "id='figures'")
    assert "pp of principal" in diffs and re.search(r"[+-][0-9.]+ ± [0-9.]+ pp", diffs)


def test_npv_legend_numbers_are_the_table_s(res, page):
    s = res.summary(n_boot=20)
    fig, ax = plt.subplots()
    try:
        P.plot_npv_distribution(res, ax=ax, summary=s)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        dashed = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_linestyle() == "--")
    finally:
        plt.close(fig)
    summary = unescape(_section(page, "id='summary'", "id='parts'"))
    row = re.search(r"<tr data-metric='npv_per_principal'>(.*?)</tr>", summary, flags=re.S)
    for n, text in zip(res, legend, strict=True):
        cell = Footnotes().cell("npv_per_principal", s[n]["npv_per_principal"])
        assert text == f"{n} ({cell})" and cell in row.group(1)
    assert dashed == pytest.approx(sorted(s[n]["npv_per_principal"].estimate for n in res))


def test_structures_toml_reads_back(res, page, tmp_path):
    block = re.search(r"<pre id='structures-toml'>(.*?)</pre>", page, flags=re.S)
    text = unescape(block.group(1))
    data = tomllib.loads(text)
    back = [il.Structure.model_validate(x) for x in data["structure"]]
    assert back == list(res.structures)
    f = tmp_path / "s.toml"
    f.write_text(text, encoding="utf-8")
    assert il.Structure.from_toml(f) == list(res.structures)  # what --structures reads


def test_page_prints_cleanly(page):
    css = page[page.index("<style>") : page.index("</style>")]
    printed = css[css.index("@media print") :]
    assert "nav" in printed and "display:none" in printed
    assert "break-inside:avoid" in printed and "tr" in printed
    assert "img{max-width:100%" in printed
    assert "<nav>" in page


def test_incidence_titles_say_whose_firms(res):
    fig, ax = plt.subplots()
    try:
        P.plot_cumulative_incidence(res, ax=ax, event="DEFAULT")
        title = ax.get_title()
    finally:
        plt.close(fig)
    assert "applicant firms (accepted or not)" in title and "pure_loan" in title
