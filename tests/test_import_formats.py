"""Import file formats: rows read one by one, only up to the row limit."""

import io
from collections.abc import Iterator

import openpyxl
import pytest
from django.core.exceptions import ValidationError

from backoffice.import_formats import MAX_COLUMNS, BoundedCSV, BoundedXLSX, bounded_dataset


def counted(rows: list[list], seen: list[int]) -> Iterator[list]:
    """Yield the rows, counting in ``seen[0]`` how many were read."""
    for row in rows:
        seen[0] += 1
        yield row


def test_bounded_dataset_stops_reading_at_the_row_limit(settings):
    settings.BACKOFFICE_IMPORT_MAX_ROWS = 5
    seen = [0]
    rows = [["Email"]] + [[f"p{n}@example.com"] for n in range(1000)]
    with pytest.raises(ValidationError) as caught:
        bounded_dataset(counted(rows, seen))
    assert caught.value.messages == [
        "This file has more than 5 rows of orders; the limit is 5. Split it into smaller files."
    ]
    assert seen[0] == 7  # the header, five rows, and the one over the limit


def test_bounded_dataset_skips_blank_rows_and_pads_ragged_ones(settings):
    settings.BACKOFFICE_IMPORT_MAX_ROWS = 2
    rows = [
        [],
        ["", None],
        ["Conference", "Email", "Total"],
        [" ", ""],
        ["a"],
        ["b", "c", "d", "e"],
    ]
    dataset = bounded_dataset(iter(rows))
    assert dataset.headers == ["Conference", "Email", "Total"]
    assert [list(row) for row in dataset] == [["a", "", ""], ["b", "c", "d"]]


def test_csv_reads_quoted_newlines_and_a_byte_order_mark(settings):
    data = '\ufeffConference,Attendee\r\npycon-test,"Ada\nLovelace"\r\n'.encode()
    dataset = BoundedCSV(encoding="utf-8-sig").create_dataset(data)
    assert dataset.headers == ["Conference", "Attendee"]
    assert list(dataset[0]) == ["pycon-test", "Ada\nLovelace"]


def test_xlsx_reads_the_first_sheet_up_to_the_column_bound(settings):
    settings.BACKOFFICE_IMPORT_MAX_ROWS = 3
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([f"Column {n}" for n in range(MAX_COLUMNS + 10)])
    sheet.append([12.5] * (MAX_COLUMNS + 10))
    buffer = io.BytesIO()
    workbook.save(buffer)
    dataset = BoundedXLSX().create_dataset(buffer.getvalue())
    assert dataset.width == MAX_COLUMNS
    assert dataset[0][0] == 12.5


@pytest.mark.parametrize("file_format", [BoundedCSV(encoding="utf-8-sig"), BoundedXLSX()])
def test_a_vanished_upload_is_refused_with_a_sentence(file_format):
    with pytest.raises(ValidationError) as caught:
        file_format.create_dataset(None)
    assert caught.value.messages[0].startswith("The uploaded file is no longer waiting")
