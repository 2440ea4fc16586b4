"""One writer for every table the package prints or exports: text, CSV, JSON and pandas.

Overview
--------
A summary-like object (a simulation summary, a sweep, a calibration report) is a list of
records, one dict per row. This module turns such records into the four forms a user asks
for, the same way everywhere:

* :func:`text_table` -- aligned plain text: a header line, a line of dashes, one line per
  row; the first ``left`` columns are left-aligned and the rest right-aligned (numbers);
* :class:`Footnotes` -- numbered reasons for the ``n/a`` cells of a text table;
* :func:`write_csv` -- a CSV file with a header;
* :func:`json_ready` -- NaN and infinities as ``None``, so that the JSON is valid (``null``);
* :func:`pandas` -- pandas, imported on demand (it is optional).

The mixins :class:`Rows` (``to_frame``, ``to_csv`` from ``records()`` and ``fields()``) and
:class:`Document` (``to_json`` from ``to_dict()``) give a table object its exports.

Example
-------
>>> from invlend._tables import text_table
>>> print(text_table(["metric", "a", "b"], [["pd", "1.0%", "12.5%"], ["npv", "3", "4"]]))
metric     a      b
-------------------
pd      1.0%  12.5%
npv        3      4
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from invlend import metrics as M

__all__ = [
    "Document",
    "Footnotes",
    "Keyed",
    "Rows",
    "format_metric",
    "json_ready",
    "metric_rows",
    "pandas",
    "shown_metrics",
    "text_table",
    "write_csv",
]


# ------------------------------------------------------------------------------ text tables


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left: int = 1,
    min_widths: Sequence[int] = (),
    rule: bool = True,
) -> str:
    """Rows of strings as an aligned text table (no trailing newline).

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequences of str
        Cells, as many per row as ``header`` has titles.
    left : int
        The first ``left`` columns are left-aligned (labels), the others right-aligned
        (numbers).
    min_widths : sequence of int
        Least width of the first columns (a column is otherwise as wide as its widest cell).
    rule : bool
        Put a line of dashes, as long as the header line, under the header.

    Returns
    -------
    str
        Columns separated by two spaces. Lines are padded to their column widths, so a last
        column that is left-aligned leaves trailing spaces.
    """
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths = [max(w, m) for w, m in zip(widths, min_widths, strict=False)] + widths[
        len(min_widths) :
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    head = line(header)
    out = [head, "-" * len(head)] if rule else [head]
    out += [line(r) for r in rows]
    return "\n".join(out)


def format_metric(metric: str, x: float) -> str:
    """``x`` as a table prints it: a rate (:func:`invlend.metrics.is_rate`) as a percentage.

    ``n/a`` for NaN or an infinity; a rate with three decimals (``12.345%``), any other
    metric of :mod:`invlend.metrics` or name with four significant digits.
    """
    if not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.3f}%" if metric in M.METRICS and M.is_rate(metric) else f"{x:.4g}"


class Footnotes:
    """Numbered reasons for the NaNs of a table: ``cell()`` marks them, ``lines()`` lists them.

    Every ``n/a`` a table prints carries a marker such as ``[1]``, and the footer says what it
    means (``[1] nobody was accepted``); the same reason shares one number.

    Parameters
    ----------
    fmt : callable, optional
        ``fmt(metric, x) -> str`` for the numbers of :meth:`cell`; default
        :func:`format_metric`.
    """

    def __init__(self, fmt: Callable[[str, float], str] = format_metric) -> None:
        self._numbers: dict[str, int] = {}
        self._fmt = fmt

    def mark(self, note: str) -> str:
        """The marker of ``note`` (``""`` for no note): ``" [k]"``, k from 1 in first use."""
        if not note:
            return ""
        k = self._numbers.setdefault(note, len(self._numbers) + 1)
        return f" [{k}]"

    def cell(self, metric: str, est: Any) -> str:
        """``estimate ± se`` of an estimate, marked where it has a note.

        ``est`` has ``estimate``, ``se`` and ``note`` (an :class:`invlend.metrics.Estimate`);
        one that also has ``z`` (a paired :class:`invlend.results.Difference`) shows it as
        ``z=+1.2`` (``z=n/a`` when undefined).
        """
        text = f"{self._fmt(metric, est.estimate)} ± {self._fmt(metric, est.se)}"
        z = getattr(est, "z", None)
        if z is not None:
            text += f" z={z:+.1f}" if math.isfinite(z) else " z=n/a"
        return text + self.mark(est.note)

    def lines(self) -> list[str]:
        """``[k] reason`` for every reason marked, in order."""
        return [f"[{k}] {note}" for note, k in self._numbers.items()]


def shown_metrics(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The metrics of :mod:`invlend.metrics` that a text table of ``table`` prints, in order.

    ``table[column][metric]`` is an estimate with a ``note``. A metric that is not applicable
    in every column (``pool_shortfall`` without a risk pool) is left out; it stays in the
    data and in exports. An empty table shows every metric.
    """
    rows = [table[c] for c in table]
    return [m for m in M.METRICS if not rows or any(r[m].note not in M.OMITTED for r in rows)]


def metric_rows(table: Mapping[str, Mapping[str, Any]], marks: Footnotes) -> list[list[str]]:
    """``[metric, cell of each column]`` for every metric shown (:func:`shown_metrics`).

    Cells are :meth:`Footnotes.cell` of ``table[column][metric]``, columns in the order of
    ``table``; ``marks`` numbers the reasons of their NaNs.
    """
    rows = {c: table[c] for c in table}
    return [[m, *(marks.cell(m, r[m]) for r in rows.values())] for m in shown_metrics(rows)]


# --------------------------------------------------------------------------------- exports


def pandas(what: str = "to_frame()"):
    """pandas, imported on demand: it is optional.

    Raises ``ImportError`` "``what`` needs pandas: pip install pandas" without it.
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs pandas: pip install pandas") from None
    return pd


def write_csv(path: str | Path, records: list[dict[str, Any]], fields: Sequence[str]) -> None:
    """Write ``records`` (dicts with the keys ``fields``) as a CSV file with a header."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        w.writerows(records)


def json_ready(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``).

    Dicts, lists and tuples are cleaned through (a tuple becomes a list); everything else is
    returned as it is.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


class Rows:
    """Exports of a table object whose rows are :meth:`records`: a DataFrame and a CSV file.

    A subclass defines :meth:`records` (one dict per row, in display order) and
    :meth:`fields` (the CSV columns, in order).
    """

    def records(self) -> list[dict[str, Any]]:
        """One dict per row, in display order."""
        raise NotImplementedError

    def fields(self) -> list[str]:
        """The columns of :meth:`records`, in the order of the CSV file."""
        raise NotImplementedError

    def to_frame(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        return pandas().DataFrame.from_records(self.records())

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`records` as CSV, with a header."""
        write_csv(path, self.records(), self.fields())


class Keyed(Mapping):
    """A read-only mapping over ``self._data``, for the table objects.

    ``table[key]`` is ``self._data[key]`` (a copy where it is a dict, so the table cannot be
    changed through it); a missing key raises ``KeyError`` with ``_missing`` (a format string
    of ``key``) and the keys there are.
    """

    _data: dict
    _missing = "no key {key!r}"

    def __getitem__(self, key: str) -> Any:
        try:
            row = self._data[key]
        except KeyError:
            raise KeyError(f"{self._missing.format(key=key)}; have {list(self._data)}") from None
        return dict(row) if isinstance(row, dict) else row

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Document:
    """``to_json`` of an object with a JSON-ready ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        raise NotImplementedError

    def to_json(self, path: str | Path | None = None) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (if given) and return the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text
