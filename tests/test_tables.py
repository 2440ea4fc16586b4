"""The one table writer: text alignment, footnotes, CSV, JSON and pandas, exactly."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import pytest

from invlend import _tables as T
from invlend import metrics as M
from invlend.results import Difference


def test_text_table_aligns_labels_left_and_numbers_right():
    text = T.text_table(["metric", "a", "bb"], [["pd", "1.0%", "12.5%"], ["npv_x", "3", ""]])
    assert text.split("\n") == [
        "metric     a     bb",
        "-------------------",
        "pd      1.0%  12.5%",
        "npv_x      3       ",
    ]


def test_text_table_left_columns_min_widths_and_no_rule():
    rows = [["s", "x", "0.5"], ["long", "yy", "10.25"]]
    assert T.text_table(["a", "b", "c"], rows, left=2).split("\n") == [
        "a     b       c",
        "---------------",
        "s     x     0.5",
        "long  yy  10.25",
    ]
    assert T.text_table(["a", "b"], [["s", "1"]], min_widths=(3, 4), rule=False) == (
        "a       b\ns       1"
    )


def test_text_table_min_widths_never_narrow_a_column():
    assert T.text_table(["stage", "x"], [["early", "1"]], min_widths=(2,)) == (
        "stage  x\n--------\nearly  1"
    )


def test_text_table_of_a_header_only():
    assert T.text_table(["metric", "value"], []) == "metric  value\n-------------"


@pytest.mark.parametrize(
    ("metric", "x", "text"),
    [
        ("pd", 0.1234567, "12.346%"),
        ("npv_per_loan", 1234.5678, "1235"),
        ("npv_per_loan", -0.000123456, "-0.0001235"),
        ("not_a_metric", 0.5, "0.5"),
        ("pd", math.nan, "n/a"),
        ("npv_per_loan", math.inf, "n/a"),
    ],
)
def test_format_metric(metric, x, text):
    assert M.is_rate("pd") and not M.is_rate("npv_per_loan")
    assert T.format_metric(metric, x) == text


def test_footnotes_number_each_reason_once_in_first_use():
    marks = T.Footnotes()
    nan = math.nan
    assert marks.cell("pd", M.Estimate(0.1, 0.01, 0.08, 0.12)) == "10.0% ± 1.0%"
    assert marks.cell("pd", M.Estimate(nan, nan, nan, nan, "nobody")) == "n/a ± n/a [1]"
    assert marks.cell("irr", M.Estimate(0.05, nan, nan, nan, "few")) == "5.000% ± n/a [2]"
    assert marks.cell("lgd", M.Estimate(nan, nan, nan, nan, "nobody")) == "n/a ± n/a [1]"
    assert marks.mark("") == ""
    assert marks.mark("few") == " [2]"
    assert marks.lines() == ["[1] nobody", "[2] few"]


def test_footnotes_show_the_z_of_a_difference():
    marks = T.Footnotes()
    d = Difference(-0.02, 0.004, -0.028, -0.012, -5.0)
    assert marks.cell("pd", d) == "-2.00% ± 0.40% z=-5.0"
    undefined = Difference(1.5, math.nan, math.nan, math.nan, math.nan, "one portfolio")
    assert marks.cell("npv_per_loan", undefined) == "1.5 ± n/a z=n/a [1]"
    assert marks.lines() == ["[1] one portfolio"]


def test_footnotes_take_another_formatter():
    marks = T.Footnotes(lambda metric, x: f"<{metric}:{x:g}>")
    assert marks.cell("pd", M.Estimate(1.0, 2.0, 0.0, 0.0, "r")) == "<pd:1> ± <pd:2> [1]"


def _estimate(note: str = "") -> M.Estimate:
    return M.Estimate(0.5, 0.1, 0.3, 0.7, note)


def test_metric_rows_leave_out_a_metric_not_applicable_everywhere():
    na = M.NOT_APPLICABLE
    table = {
        "a": {m: _estimate(na if m == "pool_shortfall" else "") for m in M.METRICS},
        "b": {m: _estimate(na if m in ("pool_shortfall", "pd") else "") for m in M.METRICS},
    }
    shown = T.shown_metrics(table)
    assert "pool_shortfall" not in shown and "pd" in shown
    assert shown == [m for m in M.METRICS if m != "pool_shortfall"]
    marks = T.Footnotes()
    rows = T.metric_rows(table, marks)
    assert [r[0] for r in rows] == shown
    pd_row = rows[shown.index("pd")]
    assert pd_row == ["pd", "50% ± 10%", "50% ± 10% [1]"]
    assert marks.lines() == [f"[1] {na}"]
    assert T.shown_metrics({}) == list(M.METRICS)


def test_write_csv_has_a_header_and_the_fields_in_order(tmp_path):
    path = tmp_path / "t.csv"
    T.write_csv(path, [{"b": 2, "a": "x"}, {"a": "y", "b": math.nan}], ["a", "b"])
    assert path.read_bytes() == b"a,b\r\nx,2\r\ny,nan\r\n"
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == [{"a": "x", "b": "2"}, {"a": "y", "b": "nan"}]


def test_json_ready_writes_nan_and_infinities_as_null():
    value = {"a": math.nan, "b": [1.0, -math.inf, (math.inf, "s")], "c": {"d": 2}, "e": None}
    clean = T.json_ready(value)
    assert clean == {"a": None, "b": [1.0, None, [None, "s"]], "c": {"d": 2}, "e": None}
    text = '{"a": null, "b": [1.0, null, [null, "s"]], "c": {"d": 2}, "e": null}'
    assert json.dumps(clean) == text
    assert T.json_ready(3) == 3 and T.json_ready("nan") == "nan"


@dataclass(frozen=True)
class _Tiny(T.Rows, T.Document):
    rows: tuple

    def records(self):
        return [{"name": n, "value": v} for n, v in self.rows]

    def fields(self):
        return ["name", "value"]

    def to_dict(self):
        return {"rows": T.json_ready(self.records())}


def test_rows_and_document_exports(tmp_path):
    pd = pytest.importorskip("pandas")
    t = _Tiny((("a", 1.5), ("b", math.nan)))
    frame = t.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["name", "value"]
    assert frame["name"].tolist() == ["a", "b"]
    assert frame["value"].iloc[0] == 1.5 and math.isnan(frame["value"].iloc[1])
    t.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == b"name,value\r\na,1.5\r\nb,nan\r\n"
    text = t.to_json(tmp_path / "t.json")
    assert text == (
        '{\n  "rows": [\n    {\n      "name": "a",\n      "value": 1.5\n    },\n'
        '    {\n      "name": "b",\n      "value": null\n    }\n  ]\n}'
    )
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == text
    assert t.to_json() == text


def test_pandas_is_imported_on_demand():
    pd = pytest.importorskip("pandas")
    assert T.pandas() is pd
