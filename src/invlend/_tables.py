"""One writer for every table the package prints or exports: text, CSV, JSON and pandas.

Overview
--------
A summary-like object (a simulation summary, a sweep, a calibration report) is a list of
records, one dict per row. This module turns such records into the four forms a user asks
for, the same way everywhere:

* :func:`text_table` -- aligned plain text: a header line, a line of dashes, one line per
  row; the first ``left`` columns are left-aligned and the rest right-aligned (numbers);
* :func:`html_table` -- the same rows as a small self-contained HTML table (inline style, no
  external CSS or JavaScript, every text escaped), for the ``_repr_html_`` of notebooks;
* :func:`format_estimate` -- ``value ± se`` with the standard error to two significant digits
  and the value to the same decimal place, the one form of an estimate in text and HTML;
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
import html
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
    "Printed",
    "Rows",
    "estimate_columns",
    "estimate_fields",
    "format_difference",
    "format_estimate",
    "format_metric",
    "html_table",
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


def _plain(x: float, decimals: int, sign: bool) -> str:
    """``x`` rounded to ``decimals`` places (tens, hundreds, ... when negative), no ``-0``."""
    if decimals < 0:
        x, decimals = round(x, decimals), 0
    text = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if float(text) == 0.0:  # -0.00 -> 0.00 (+0.00 with a sign)
        text = ("+" if sign else "") + text.lstrip("+-")
    return text


def format_estimate(value: float, se: float, *, percent: bool = False, sign: bool = False) -> str:
    """``value ± se`` as every table prints an estimate.

    The standard error is rounded to two significant digits and the value to the same decimal
    place (``0.00347 ± 0.00095``, ``1235 ± 57``, ``12.35% ± 0.10%``), so that the digits shown
    are the ones the Monte Carlo error leaves meaningful.

    Parameters
    ----------
    value, se : float
        The estimate and its standard error.
    percent : bool
        Print both as percentages (``100 x`` and a ``%`` sign): for rates
        (:func:`invlend.metrics.is_rate`).
    sign : bool
        Give the value a sign, ``+`` or ``-`` (parts of a decomposition).

    Returns
    -------
    str
        ``n/a`` for a NaN or infinite part. Where the standard error is 0 or undefined (or so
        small that its decimal place says nothing), the value takes the form of
        :func:`format_metric`: three decimals of a percentage, else four significant digits.
    """
    scale, unit = (100.0, "%") if percent else (1.0, "")
    v, s = scale * float(value), scale * float(se)
    finite_v, finite_s = math.isfinite(v), math.isfinite(s)
    if finite_v and finite_s and s > 0:
        s = float(f"{s:.2g}")  # 2 significant digits, after which 0.0995 -> 0.1 counts once
        decimals = 1 - math.floor(math.log10(s))
        if decimals <= 12:
            return f"{_plain(v, decimals, sign)}{unit} ± {_plain(s, decimals, False)}{unit}"

    def alone(x: float, signed: bool) -> str:
        if not math.isfinite(x):
            return "n/a"
        text = f"{x:.3f}" if percent else f"{x:.4g}"
        if float(text) == 0:  # a difference of 1e-19 is 0 as printed, not "-0.000"
            text = text.lstrip("-")
        text = ("+" if signed and not text.startswith("-") else "") + text
        return text + unit

    if finite_s and s > 0 and not finite_v:  # the value undefined, its SE not
        return f"n/a ± {s:.2g}{unit}"
    return f"{alone(v, sign)} ± {alone(s, False)}"


def format_metric(metric: str, x: float) -> str:
    """``x`` as a table prints it: a rate (:func:`invlend.metrics.is_rate`) as a percentage.

    ``n/a`` for NaN or an infinity; a rate with three decimals (``12.345%``), any other
    metric of :mod:`invlend.metrics` or name with four significant digits.
    """
    if not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.3f}%" if metric in M.METRICS and M.is_rate(metric) else f"{x:.4g}"


def format_difference(metric: str, x: float, se: float) -> str:
    """A paired difference ``x ± se`` of ``metric``: signed, a rate's in percentage points."""
    if metric in M.METRICS and M.is_rate(metric):
        return format_estimate(100 * x, 100 * se, sign=True) + " pp"
    return format_estimate(x, se, sign=True)


class Footnotes:
    """Numbered reasons for the NaNs of a table: ``cell()`` marks them, ``lines()`` lists them.

    Every ``n/a`` a table prints carries a marker such as ``[1]``, and the footer says what it
    means (``[1] nobody was accepted``); the same reason shares one number.

    Parameters
    ----------
    fmt : callable, optional
        ``fmt(metric, x) -> str`` for each number of :meth:`cell` (the estimate and its
        standard error alike); default: :func:`format_estimate` of the pair, a rate of
        :mod:`invlend.metrics` as a percentage.
    difference : bool
        The cells are paired differences (:func:`format_difference`: signed, rates in
        percentage points); used where ``fmt`` is not given.
    """

    def __init__(
        self, fmt: Callable[[str, float], str] | None = None, *, difference: bool = False
    ) -> None:
        self._numbers: dict[str, int] = {}
        self._fmt = fmt
        self._difference = difference

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
        if self._fmt is None and self._difference:
            text = format_difference(metric, est.estimate, est.se)
        elif self._fmt is None:
            percent = metric in M.METRICS and M.is_rate(metric)
            text = format_estimate(est.estimate, est.se, percent=percent)
        else:
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


# ------------------------------------------------------------------------------ HTML tables

_TABLE_STYLE = "border-collapse:collapse;font-size:0.9em;margin:0.2em 0"
_CAPTION_STYLE = "caption-side:top;text-align:left;font-weight:bold;padding:0.2em 0"
_CELL_STYLE = "padding:0.15em 0.6em;border-bottom:1px solid #ccc;white-space:nowrap;"
_NOTE_STYLE = "font-size:0.8em;margin:0.2em 0;color:#555"


def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    notes: Sequence[str] = (),
    left: int = 1,
) -> str:
    """Rows of strings as a small self-contained HTML table (a notebook's ``_repr_html_``).

    The HTML counterpart of :func:`text_table`: the first ``left`` columns left-aligned, the
    others right-aligned with figures of one width; ``title`` as the caption and ``notes``
    (footnotes, remarks) as lines under the table. Every text is HTML-escaped; the style is
    inline (no stylesheet, no script), so the fragment renders alike in any notebook.

    Returns
    -------
    str
        One ``<div>`` holding the ``<table>`` and the notes.
    """
    esc = html.escape

    def cells(tag: str, values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            align = "left" if i < left else "right"
            figures = "" if i < left else "font-variant-numeric:tabular-nums;"
            out.append(f'<{tag} style="{_CELL_STYLE}text-align:{align};{figures}">{esc(str(v))}'
                       f"</{tag}>")  # fmt: skip
        return "<tr>" + "".join(out) + "</tr>"

    parts = ['<div class="invlend-table">', f'<table style="{_TABLE_STYLE}">']
    if title:
        parts.append(f'<caption style="{_CAPTION_STYLE}">{esc(title)}</caption>')
    parts.append("<thead>" + cells("th", header) + "</thead>")
    parts.append("<tbody>" + "".join(cells("td", r) for r in rows) + "</tbody>")
    parts.append("</table>")
    if notes:
        parts.append(f'<p style="{_NOTE_STYLE}">' + "<br>".join(esc(n) for n in notes) + "</p>")
    parts.append("</div>")
    return "".join(parts)


# --------------------------------------------------------------------------------- exports


def pandas(what: str = "to_frame()"):
    """pandas, imported on demand: it is optional.

    Raises ``ImportError`` "``what`` needs pandas: pip install pandas" without it.
    """
    return optional("pandas", what)


def optional(module: str, what: str):
    """The optional package ``module``, imported on demand for ``what``.

    Raises ``ImportError`` "``what`` needs ``module``: pip install ``module``" without it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs {module}: pip install {module}") from None


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


def estimate_columns(name: str, e: Any) -> dict[str, Any]:
    """An estimate (or a paired difference) as the columns of a record.

    ``name``, ``name_se``, ``name_ci_low``, ``name_ci_high``, ``name_z`` (a difference only)
    and ``name_note``.
    """
    cols = {name: e.estimate, f"{name}_se": e.se, f"{name}_ci_low": e.ci_low,
            f"{name}_ci_high": e.ci_high}  # fmt: skip
    if hasattr(e, "z"):
        cols[f"{name}_z"] = e.z
    cols[f"{name}_note"] = e.note
    return cols


def estimate_fields(name: str, z: bool = False) -> list[str]:
    """The columns :func:`estimate_columns` writes for ``name`` (``z``: for a difference)."""
    return [name, f"{name}_se", f"{name}_ci_low", f"{name}_ci_high",
            *([f"{name}_z"] if z else []), f"{name}_note"]  # fmt: skip


class Printed:
    """Text, ``repr`` and HTML of a table object from one ``_parts()``.

    A subclass defines ``_parts()``, returning the title, the header, the rows and the lines
    under the table; ``_left`` is the number of left-aligned (label) columns.
    """

    _left = 1

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        raise NotImplementedError

    def __str__(self) -> str:
        title, header, rows, notes = self._parts()
        table = text_table(header, rows, left=self._left)
        return f"{title}\n{table}" + "".join(f"\n{x}" for x in notes)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        title, header, rows, notes = self._parts()
        return html_table(header, rows, title=title, notes=notes, left=self._left)


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
