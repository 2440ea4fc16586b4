"""Interface tier: the report's Excel workbook holds the tables as numbers, sheet by sheet."""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from invlend import _workbook as W

openpyxl = pytest.importorskip("openpyxl")


@pytest.fixture(scope="module")
def res():
    return il.simulate(il.Scenario.default(), n_portfolios=12, portfolio_size=5, seed=3)


def test_sheets_hold_numbers_text_and_blank_non_finite(tmp_path):
    records = [{"a": 1.5, "b": "x", "c": math.nan}, {"a": np.float64(2.0), "b": None, "c": 3}]
    path = tmp_path / "t.xlsx"
    left_out = W.write_workbook(path, [W.Sheet("table", records, ["a", "b", "c"])])
    assert left_out == []
    ws = openpyxl.load_workbook(path)["table"]
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    assert rows == [["a", "b", "c"], [1.5, "x", None], [2.0, None, 3]]
    assert ws.freeze_panes == "A2" and ws["A1"].font.bold


def test_portfolio_sheet_matches_the_result(res, tmp_path):
    sheet = W.portfolio_sheet(res)
    path = tmp_path / "p.xlsx"
    W.write_workbook(path, [sheet])
    ws = openpyxl.load_workbook(path)["portfolios"]
    header = [c.value for c in ws[1]]
    assert header == ["portfolio"] + [f"{n} {q}" for n in res for q in ("npv", "loss_rate")]
    got = np.array([[c.value for c in r] for r in ws.iter_rows(min_row=2)], dtype=float)
    assert got.shape == (12, 1 + 2 * len(res))
    # A cell holds 15 significant digits (Excel's precision), not the last bits of a double.
    for k, name in enumerate(res):
        np.testing.assert_allclose(got[:, 1 + 2 * k], res[name].portfolio_npv, rtol=1e-14)
        np.testing.assert_allclose(got[:, 2 + 2 * k], res[name].portfolio_loss_rate, rtol=1e-14)


def test_a_sheet_too_long_for_excel_is_left_out_and_named(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "EXCEL_MAX_ROWS", 3)
    short = W.Sheet("short", [{"a": 1}], ["a"])
    long = W.Sheet("long", [{"a": k} for k in range(3)], ["a"])
    path = tmp_path / "t.xlsx"
    assert W.write_workbook(path, [short, long]) == ["long"]
    assert openpyxl.load_workbook(path).sheetnames == ["short"]


def test_report_writes_the_workbook_beside_the_csvs(res, tmp_path):
    import csv

    written = il.write_report(res, tmp_path / "rep", n_boot=20)
    names = {p.name for p in written}
    assert {"report.xlsx", "portfolios.csv", "summary.csv"} <= names
    book = openpyxl.load_workbook(tmp_path / "rep" / "report.xlsx")
    assert book.sheetnames == ["summary", "comparison", "decomposition", "portfolios"]
    with open(tmp_path / "rep" / "summary.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    sheet = [[c.value for c in r] for r in book["summary"].iter_rows()]
    assert sheet[0] == table[0] and len(sheet) == len(table)
    for row_x, row_c in zip(sheet[1:], table[1:], strict=True):
        for x, c in zip(row_x, row_c, strict=True):
            if isinstance(x, int | float) and not isinstance(x, bool):  # to Excel's 15 digits
                assert x == pytest.approx(float(c), rel=1e-14)
            elif x is None:  # empty in Excel: an empty or NaN cell of the CSV
                assert c in ("", "nan")
            else:
                assert str(x) == c
