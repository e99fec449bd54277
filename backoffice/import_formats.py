"""The import's file formats (CSV, XLSX), read row by row and only up to the row limit.

The library's formats parse the whole file into a dataset before anything
counts its rows; these stop at ``BACKOFFICE_IMPORT_MAX_ROWS`` and refuse the
file with a sentence, so an oversized file never holds a worker. Ragged rows
are padded to the header's width; blank rows are skipped.
"""

import csv
import io
from collections.abc import Iterable, Sequence

import openpyxl
import tablib
from import_export.formats import base_formats

from backoffice.services import order_import

# Cells read per XLSX row: a sheet claiming millions of columns is not read in full.
MAX_COLUMNS = 64


def is_blank(row: Sequence[object]) -> bool:
    """Return True for a row whose every cell is empty."""
    return all(value is None or str(value).strip() == "" for value in row)


def bounded_dataset(rows: Iterable[Sequence[object]]) -> tablib.Dataset:
    """A dataset of the rows under the first non-blank row (the header), up to the row limit."""
    rows = (row for row in rows if not is_blank(row))
    header = next(rows, None)
    if header is None:
        raise order_import.refuse_empty_file()
    headers = ["" if value is None else str(value) for value in header]
    width = len(headers)
    limit = order_import.max_rows()
    dataset = tablib.Dataset(headers=headers)
    for row in rows:
        if dataset.height >= limit:
            raise order_import.refuse_too_many_rows()
        values = list(row[:width])
        values.extend([""] * (width - len(values)))
        dataset.append(values)
    if not dataset.height:
        raise order_import.refuse_empty_file()
    return dataset


class BoundedCSV(base_formats.CSV):
    """CSV (UTF-8, with or without a byte-order mark), read up to the row limit."""

    def create_dataset(self, in_stream: bytes | str | None, **kwargs: object) -> tablib.Dataset:
        """Decode the file, then read its rows one by one."""
        if in_stream is None:  # the temporary storage no longer holds the upload
            raise order_import.refuse_missing_upload()
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode(self.encoding or "utf-8-sig")
        return bounded_dataset(csv.reader(io.StringIO(in_stream, newline="")))


class BoundedXLSX(base_formats.XLSX):
    """XLSX (first sheet, cell values not formulas), read up to the row limit."""

    def create_dataset(self, in_stream: bytes | None, **kwargs: object) -> tablib.Dataset:
        """Open the workbook read-only, then read the first sheet's rows one by one."""
        if in_stream is None:
            raise order_import.refuse_missing_upload()
        workbook = openpyxl.load_workbook(io.BytesIO(in_stream), read_only=True, data_only=True)
        try:
            sheet = workbook.active
            return bounded_dataset(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS))
        finally:
            workbook.close()
