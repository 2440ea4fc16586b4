"""The report's Excel workbook: the CSV tables, one sheet each, as numbers a spreadsheet sorts.

A bank analyst takes the figures next into Excel; the CSVs are there for scripts. Each sheet
has a bold, frozen header row and columns wide enough for their header; numbers stay numbers
(NaN and infinities become empty cells, which Excel cannot hold otherwise) and text stays
text. Written with :mod:`openpyxl`, without pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["EXCEL_MAX_ROWS", "Sheet", "portfolio_sheet", "write_workbook"]

EXCEL_MAX_ROWS = 1_048_576  # rows in one worksheet, the header included
_MAX_TITLE = 31  # characters in a worksheet's name


class Sheet(NamedTuple):
    """One worksheet: its name, its rows (dicts keyed by ``fields``) and the column order."""

    title: str
    records: list[dict[str, Any]]
    fields: Sequence[str]


def _cell(value: Any) -> Any:
    """A value Excel can hold: finite numbers as they are, NaN/inf as empty, the rest text."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    try:
        number = float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def portfolio_sheet(result) -> Sheet:
    """Per-portfolio NPV and loss rate (per unit of principal lent) of every structure."""
    fields = ["portfolio"]
    columns = []
    for name, s in result.items():
        fields += [f"{name} npv", f"{name} loss_rate"]
        columns += [s.portfolio_npv, s.portfolio_loss_rate]
    n = len(columns[0]) if columns else 0
    records = [
        {"portfolio": i, **{f: float(c[i]) for f, c in zip(fields[1:], columns, strict=True)}}
        for i in range(n)
    ]
    return Sheet("portfolios", records, fields)


def write_workbook(path: str | Path, sheets: Sequence[Sheet]) -> list[str]:
    """Write ``sheets`` to the ``.xlsx`` file ``path``, one worksheet each, in order.

    A sheet with more rows than a worksheet holds (:data:`EXCEL_MAX_ROWS`) is left out; the
    titles of those left out are returned, for the caller to say so.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    left_out = []
    for sheet in sheets:
        if len(sheet.records) + 1 > EXCEL_MAX_ROWS:
            left_out.append(sheet.title)
            continue
        ws = book.create_sheet(sheet.title[:_MAX_TITLE])
        ws.append(list(sheet.fields))
        for c in ws[1]:
            c.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for r in sheet.records:
            ws.append([_cell(r.get(f)) for f in sheet.fields])
        for k, f in enumerate(sheet.fields, start=1):
            ws.column_dimensions[get_column_letter(k)].width = max(10, min(48, len(str(f)) + 2))
    book.save(path)
    return left_out
