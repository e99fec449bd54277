"""Text cells a spreadsheet would run as formulas: quoted in CSV, typed as text in XLSX.

A CSV cell has no type, so one that starts a formula is prefixed with a single
quote (``escape_formula``). An XLSX cell has one: text is stored as a string
cell (openpyxl ``data_type`` "s"), which no spreadsheet runs, so it keeps its
characters as they are (no visible quote). The import refuses such cells.
"""

from typing import Any

import tablib
from import_export.formats import base_formats
from openpyxl.cell import Cell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet
from tablib.formats._xlsx import XLSXFormat

# A cell starting with one of these is run as a formula (or DDE) by Excel,
# LibreOffice or Google Sheets; the OWASP "CSV injection" list.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# openpyxl's type of a text cell; it infers "f" (formula) for "=…" and "e" for "#N/A".
TEXT_CELL = "s"


def looks_like_formula(value: str) -> bool:
    """Return True when a spreadsheet would treat the text as a formula."""
    return bool(value) and value[0] in FORMULA_TRIGGERS


def escape_formula(value: str) -> str:
    """Prefix a text cell that a spreadsheet would treat as a formula with a single quote."""
    if looks_like_formula(value):
        return "'" + value
    return value


def xlsx_text(value: str) -> str:
    """The text as an XLSX cell can hold it: control characters (e.g. Word's \\x0b) as U+FFFD."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


def typed_as_text(value: str) -> bool:
    """True when openpyxl stores the str as a text cell by itself (not "=…" or "#N/A")."""
    return value[:1] not in ("=", "#")


def keep_as_text(cell: Cell) -> Cell:
    """Store a cell holding a str as a text cell, whatever openpyxl inferred from it."""
    if isinstance(cell.value, str):
        cell.data_type = TEXT_CELL
    return cell


class _TextCellSheet(XLSXFormat):
    """tablib's XLSX sheet with every str cell stored as text (never a formula or an error)."""

    @classmethod
    def dset_sheet(cls, dataset: tablib.Dataset, ws: Worksheet, **kwargs: Any) -> None:
        """Fill the sheet as tablib does, then type its text cells as text."""
        super().dset_sheet(dataset, ws, **kwargs)
        for row in ws.iter_rows():
            for cell in row:
                keep_as_text(cell)


class TextCellXLSX(base_formats.XLSX):
    """import-export's XLSX format whose text cells stay text ("=1+1" is not run)."""

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> bytes:
        """The workbook's bytes, written by tablib with text cells kept as text."""
        return _TextCellSheet.export_set(dataset, **kwargs)
