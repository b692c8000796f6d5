"""``eqm check``: which table a file is — its folder, else its header (ingest's scoring).

:func:`placement` (under ``data/raw/<table>/``, with its ``sources.yaml`` entry, or not),
:func:`head_rows` (the first rows as ingest's reader sees them), :func:`header_scores` (per raw
table, the known columns ingest finds in the header) and :func:`choose_table` (the best score).
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from pipeline.config import RAW_TABLES
from pipeline.errors import EqmError
from pipeline.ingest.headers import Lookups, _score_header_row, locate_header
from pipeline.ingest.readers import _decode_csv, detect_delimiter
from pipeline.ingest.sources import FileHint, IngestParams, Sources


@dataclass(frozen=True)
class Placement:
    table: str | None  # from the folder data/raw/<table>/
    source: str  # the name in messages: the path under data/raw, else the file's name
    hint: FileHint


def placement(path: Path, raw_dir: Path, sources: Sources) -> Placement:
    """Where the file sits: under ``data/raw/<table>/`` (its sources.yaml entry applies) or not."""
    for a, b in ((Path(os.path.abspath(path)), Path(os.path.abspath(raw_dir))),
                 (path.resolve(), raw_dir.resolve())):  # fmt: skip
        try:
            rel = a.relative_to(b)
        except ValueError:
            continue
        table = rel.parts[0] if len(rel.parts) >= 2 and rel.parts[0] in RAW_TABLES else None
        return Placement(table, rel.as_posix(), sources.files.get(rel.as_posix(), FileHint()))
    return Placement(None, path.name, FileHint())


def _scan(params: IngestParams, hint: FileHint) -> int:
    return max(params.header_scan_rows, hint.header_row or 0)


def head_rows(
    path: Path, fmt: str, source: str, hint: FileHint, params: IngestParams,
    sheet: str | None = None, delimiter: str | None = None,
) -> list[list[Any]]:  # fmt: skip
    """The first rows of a csv/xlsx file as ingest's reader sees them when it locates the header
    (csv: ``header_scan_rows`` records; xlsx: two more rows, for the lines below the header)."""
    scan = _scan(params, hint)
    if fmt == "csv":
        text, _ = _decode_csv(path.read_bytes(), source, hint, params.encodings)
        if not text.strip():  # as ingest's reader says it
            raise EqmError(
                "文件是空的。", file=source, hint="请放入含表头和数据的文件，或删除该空文件。"
            )
        sep = delimiter or hint.delimiter or detect_delimiter(text, scan)
        rows: list[list[Any]] = []
        try:
            for r in islice(csv.reader(io.StringIO(text), delimiter=sep), scan):
                rows.append(list(r))
        except csv.Error:
            pass
        return rows
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise EqmError(
            f"无法打开 Excel 文件（{type(exc).__name__}），文件可能已损坏或并非 .xlsx 格式。",
            file=source,
            hint="请用 Excel 打开该文件确认能正常显示，再「另存为」Excel 工作簿（.xlsx）。",
        ) from None
    try:
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(max_row=scan + 2, values_only=True)]
    finally:
        wb.close()


def header_scores(path: Path, fmt: str, lookups: Lookups, params: IngestParams) -> dict[str, int]:
    """Per raw table, how many known columns ingest finds in the file's header."""
    hint = FileHint()
    if fmt in ("csv", "xlsx"):
        rows = head_rows(path, fmt, path.name, hint, params)
        out = {}
        for t in RAW_TABLES:
            try:
                cells, _, _ = locate_header(rows, t, lookups, hint, params, path.name, "")
            except EqmError:
                out[t] = 0
                continue
            out[t] = _score_header_row(cells, t, lookups, {})
        return out
    names = _column_names(path, fmt)
    return {t: _score_header_row(names, t, lookups, {}) for t in RAW_TABLES}


def _column_names(path: Path, fmt: str) -> list[str]:
    """Column names (and SPSS variable labels) of a .sav or .parquet file."""
    try:
        if fmt == "sav":
            import pyreadstat

            _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
            return [*meta.column_names, *(lb for lb in (meta.column_labels or []) if lb)]
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyreadstat and pyarrow raise many types
        raise EqmError(
            f"无法读取文件（{type(exc).__name__}），文件可能已损坏。",
            file=path.name,
            hint="请重新导出该文件，或另存为 .xlsx / .csv。",
        ) from None


def choose_table(scores: Mapping[str, int], source: str) -> str:
    best = max(scores.values(), default=0)
    if best == 0:
        raise EqmError(
            "无法从表头判断这是哪张表：前几行中没有任何一列能对应到已知的列名。",
            file=source,
            hint="请把文件放到项目目录的 data/raw/<表名>/ 文件夹中再检查（students、scores、schools、"
            "county_reports、previous_problems、teachers、principals），或核对表头是否用了模板中的列名。",
        )
    return next(t for t in RAW_TABLES if scores[t] == best)
