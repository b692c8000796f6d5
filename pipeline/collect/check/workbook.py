"""``eqm check``: the workbook returned to the sender, problem cells filled and commented.

Where each problem sits in the sender's sheet (:class:`Layout`, :func:`cell_notes`) and the
workbook itself (:func:`_workbook`): for ``.xlsx`` a copy of the sender's file
(:func:`xlsx_copy`), for text files the file's cells as text (:func:`text_workbook`), for
``.sav``/``.parquet`` the values read (:func:`frame_workbook`). openpyxl is imported inside the
functions that use it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.collect.check.identify import Placement, _scan, head_rows
from pipeline.collect.check.rules import Verdict
from pipeline.errors import EqmError
from pipeline.ingest.headers import Lookups, locate_header
from pipeline.ingest.readers import (
    RawFile,
    _decode_csv,
    _record_lines,
    _unique_headers,
    detect_delimiter,
)
from pipeline.ingest.sources import DELIMITER_NAMES, IngestParams

PROBLEM_FILL = "FFC7CE"  # a cell whose row the round sets aside (Excel's light red)
NOTE_FILL = "FFEB9C"  # a header worth a look: ignored but resembling a known column (light yellow)
COMMENT_AUTHOR = "eqm check"


@dataclass(frozen=True)
class Layout:
    """Where the file's rows and headers are in the returned workbook (1-based)."""

    header_row: int  # the (first) header line
    columns: Mapping[str, int]  # header as ingest names it -> column
    rows: Mapping[int, int] | None = None  # source_row -> sheet row when they differ
    offset: int = 0  # sheet row = source_row + offset (when ``rows`` is None)

    def row(self, source_row: int) -> int | None:
        if self.rows is None:
            return source_row + self.offset
        return self.rows.get(source_row)


def header_positions(cells: Sequence[Any]) -> dict[str, int]:
    """Header name (as the reader names it: :func:`_unique_headers`) -> 1-based column."""
    return {name: j + 1 for j, name in enumerate(_unique_headers(list(cells)))}


def cell_notes(verdict: Verdict, layout: Layout) -> dict[tuple[int, int], tuple[str, list[str]]]:
    """(row, column) -> (fill colour, comment lines) for every problem and suspect header."""
    notes: dict[tuple[int, int], tuple[str, list[str]]] = {}

    def add(row: int | None, col: int | None, fill: str, text: str) -> None:
        if row is None or col is None:
            return
        old_fill, lines = notes.get((row, col), (fill, []))
        notes[(row, col)] = (
            PROBLEM_FILL if PROBLEM_FILL in (old_fill, fill) else fill,
            lines if text in lines else [*lines, text],
        )

    tbl = schemas.INPUT_TABLES.get(verdict.table or "")
    for h, like in sorted((verdict.manifest.get("suspect_columns") or {}).items()):
        label = tbl[like].label if tbl is not None and like in tbl.names else like
        add(layout.header_row, layout.columns.get(h), NOTE_FILL,
            f"【列名未识别】此列不是已知的列，导入时会被忽略；它像是「{label}」。\n"
            f"处理办法：如果是同一列，请把表头改为「{label}」。")  # fmt: skip
    for p in verdict.problems:
        row = layout.row(p.source_row)
        text = f"【{schemas.rule_label(p.rule)}】{p.message}\n处理办法：{p.fix}"
        cols = [layout.columns.get(h) for h in p.headers]
        cols = [c for c in cols if c is not None]
        if not cols:  # no header of the file holds the column (e.g. a year from sources.yaml)
            cols, text = [1], f"（列：{p.where}）{text}"
        for c in cols:
            add(row, c, PROBLEM_FILL, text)
    if verdict.error is not None:
        e = verdict.error
        col = layout.columns.get(e.column or "", 1)
        row = layout.row(e.row) if e.row is not None else layout.header_row
        add(
            row,
            col,
            PROBLEM_FILL,
            f"【无法导入】{e.message}" + (f"\n处理办法：{e.hint}" if e.hint else ""),
        )
    return notes


def _annotate(ws, notes: Mapping[tuple[int, int], tuple[str, list[str]]]) -> None:
    from openpyxl.comments import Comment
    from openpyxl.styles import PatternFill

    for (row, col), (fill, lines) in sorted(notes.items()):
        cell = ws.cell(row=row, column=col)
        cell.fill = PatternFill("solid", fgColor=fill)
        text = "\n\n".join(lines)
        if cell.comment is not None and cell.comment.text:
            text = f"{cell.comment.text}\n\n{text}"  # the sender's own note is kept
        comment = Comment(text[:30_000], COMMENT_AUTHOR)
        comment.width, comment.height = 320, min(600, 90 + 45 * len(lines))
        cell.comment = comment


def xlsx_copy(path: Path, sheet: str | None, notes) -> Any:
    """The sender's workbook opened with openpyxl (formulas kept as written), the notes added."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path)
    except Exception:  # noqa: BLE001 - a broken file: the summary says why (ingest's message)
        return None
    _annotate(wb[sheet] if sheet in wb.sheetnames else wb.worksheets[0], notes)
    return wb


def _put(ws, row: int, col: int, value: Any) -> None:
    """Write a value as it is: text stays text (never a formula), characters Excel cannot hold
    are replaced by U+FFFD."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None or value == "":
        return
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
        cell.data_type = "s"  # as written: never a formula, a number or a date
        cell.number_format = "@"
    else:
        cell.value = value


def text_workbook(records: Sequence[Sequence[str]], notes) -> Any:
    """An .xlsx holding ``records`` as text cells, one per row and column as in the file."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "数据"
    for i, rec in enumerate(records, start=1):
        for j, v in enumerate(rec, start=1):
            _put(ws, i, j, v)
    _annotate(ws, notes)
    return wb


def frame_workbook(frame: pd.DataFrame, notes) -> Any:
    """An .xlsx of the values read from a .sav/.parquet file: header in row 1, case k in row k+1."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "数据"
    for j, c in enumerate(frame.columns, start=1):
        _put(ws, 1, j, str(c))
    for i, rec in enumerate(frame.itertuples(index=False), start=2):
        for j, v in enumerate(rec, start=1):
            _put(ws, i, j, _plain(v))
    _annotate(ws, notes)
    return wb


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, int | float | bool) else str(v)


def _workbook(path: Path, fmt: str, place: Placement, raw: RawFile | None, verdict: Verdict,
              params: IngestParams, lookups: Lookups):  # fmt: skip
    """The returned workbook, or None when the file cannot be opened at all."""
    table = verdict.table
    try:
        if fmt == "xlsx":
            sheet = raw.meta.get("sheet") if raw is not None else None
            layout = Layout(1, {})
            if raw is not None and table is not None:
                rows = head_rows(path, fmt, place.source, place.hint, params, sheet=sheet)
                cells, top, _ = locate_header(
                    rows, table, lookups, place.hint, params, place.source, ""
                )
                layout = Layout(top + 1, header_positions(cells))
            return xlsx_copy(path, sheet, cell_notes(verdict, layout))
        if fmt == "csv":
            return _csv_workbook(path, place, raw, verdict, params, lookups)
        if raw is None:
            return None
        cols = {str(c): j + 1 for j, c in enumerate(raw.data.columns)}
        return frame_workbook(raw.data, cell_notes(verdict, Layout(1, cols, offset=1)))
    except EqmError:
        return None


def _csv_workbook(path, place, raw, verdict, params, lookups):
    text, _ = _decode_csv(path.read_bytes(), place.source, place.hint, params.encodings)
    label = (raw.meta.get("delimiter") if raw is not None else None) or ""
    sep = (
        DELIMITER_NAMES.get(label)
        or place.hint.delimiter
        or detect_delimiter(text, _scan(params, place.hint))
    )
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=sep))
    except csv.Error:
        return None
    layout = Layout(1, {})
    if raw is not None and verdict.table is not None:
        head = records[: _scan(params, place.hint)]
        cells, top, _ = locate_header(
            head, verdict.table, lookups, place.hint, params, place.source, ""
        )
        rows = None
        if raw.meta.get("multiline_records"):  # a quoted value holds a line break
            starts, _ = _record_lines(text, sep, place.source)
            rows = {int(s): i + 1 for i, s in enumerate(starts)}
        layout = Layout(top + 1, header_positions(cells), rows)
    return text_workbook(records, cell_notes(verdict, layout))
