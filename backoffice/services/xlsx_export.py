"""XLSX exports of any size with flat memory: openpyxl's write-only mode, rows read in chunks.

``write_xlsx`` writes the cells the admin's in-memory XLSX export writes for
the same Resource (tablib's sheet: a bold header frozen in place, amounts as
numbers, dates as real dates, text in text cells, never run as formulas), but
streams each row to the file as it is read instead of building the workbook
in memory. A sheet holds at most ``SHEET_MAX_ROWS`` data rows (Excel's limit
is 1,048,576 rows with the header); beyond that the rows go on in a new sheet
with the header again.
"""

from collections.abc import Iterable
from typing import Any, BinaryIO

from django.db import models
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from backoffice.exports import LedgerResource
from backoffice.services.exports import CHUNK_ROWS
from backoffice.spreadsheet import keep_as_text, typed_as_text

#: Data rows per sheet: Excel's 1,048,576 rows less the header.
SHEET_MAX_ROWS = 1_048_575
BOLD = Font(bold=True)
WRAP = Alignment(wrap_text=True)


def write_xlsx(
    resource: LedgerResource,
    queryset: models.QuerySet,
    target: BinaryIO,
    *,
    selected_fields: list[str] | None = None,
    title: str = "Export",
    chunk_rows: int = CHUNK_ROWS,
    sheet_max_rows: int = SHEET_MAX_ROWS,
) -> int:
    """Write the XLSX export of ``queryset`` to ``target``; return its number of data rows."""
    header = [column.column_name for column in resource.export_columns(selected_fields)]
    workbook = Workbook(write_only=True)
    sheet = _new_sheet(workbook, title, header)
    rows = in_sheet = 0
    for instance in resource.export_rows(resource.prepare_export_queryset(queryset), chunk_rows):
        if in_sheet >= sheet_max_rows:
            sheet = _new_sheet(workbook, f"{title} ({len(workbook.worksheets) + 1})", header)
            in_sheet = 0
        cells = resource.export_resource(
            instance, selected_fields=selected_fields, force_native_type=True
        )
        sheet.append(_row(sheet, cells))
        rows += 1
        in_sheet += 1
    workbook.save(target)
    return rows


def _new_sheet(workbook: Workbook, title: str, header: list[str]) -> WriteOnlyWorksheet:
    """A sheet with the bold header row, frozen above the data like tablib's."""
    sheet = workbook.create_sheet(title=title[:31])
    sheet.freeze_panes = "A2"
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = BOLD
        cells.append(cell)
    sheet.append(cells)
    return sheet


def _row(sheet: WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    """The row's cells: text always a text cell, multi-line text wrapped (as tablib does)."""
    row: list[Any] = []
    for value in values:
        wrap = isinstance(value, str) and "\n" in value
        if wrap or (isinstance(value, str) and not typed_as_text(value)):
            cell = keep_as_text(WriteOnlyCell(sheet, value=value))
            if wrap:
                cell.alignment = WRAP
            row.append(cell)
        else:
            row.append(value)
    return row
