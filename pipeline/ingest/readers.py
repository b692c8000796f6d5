"""Readers (file access): raw cells + row numbers + manifest facts, per format; file discovery."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.errors import EqmError
from pipeline.ingest.formulas import sheet_xml, unsaved_formula_cells
from pipeline.ingest.headers import Lookups, header_target, locate_header
from pipeline.ingest.sources import (
    _SOURCES_HINT,
    DELIMITER_LABELS,
    DELIMITERS,
    FileHint,
    IngestParams,
    Sources,
)
from pipeline.ingest.values import FORMULA_NO_VALUE, _cell_text, as_text, shown_text

log = logging.getLogger(__name__)

# .txt / .tsv: delimited text as Excel's "文本文件(制表符分隔)" / "Unicode 文本" (UTF-16, tab) save it
FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".sav": "sav",
    ".parquet": "parquet",
}
ACCEPTED_FORMATS = "、".join(FORMATS)


@dataclass(frozen=True)
class RawFile:
    """One source file as read: raw headers/values, the row number the user sees for each row."""

    table: str
    source: str  # path relative to data/raw, posix
    data: pd.DataFrame
    rows: np.ndarray  # int64, same length as data
    hint: FileHint = FileHint()
    meta: Mapping[str, Any] = field(default_factory=dict)


def _unique_headers(cells: list[Any]) -> list[str]:
    out, seen = [], {}
    for j, c in enumerate(cells):
        name = _cell_text(c) or f"第{j + 1}列"
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}#{n + 1}")
    return out


def _drop_duplicate_headers(
    frame: pd.DataFrame,
    cells: list[Any],
    numbers: np.ndarray,
    source: str,
    fmt: str,
    table: str,
    lookups: Lookups,
    hint: FileHint,
) -> pd.DataFrame:
    """A known header given twice: drop the later copy when it repeats the first (or is empty).

    Copies that differ anywhere are an error naming both positions (Excel letters for xlsx,
    1-based column numbers for csv), since either could be the right one.
    """
    names = _unique_headers(cells)
    first: dict[str, int] = {}
    drop = []
    for j, name in enumerate(names):
        base = _cell_text(cells[j]) if j < len(cells) else None
        if base is None or name == base:
            first.setdefault(name, j)
            continue
        if name not in frame.columns or base not in frame.columns:
            continue
        target = header_target(table, base, lookups, hint.aliases)
        if target is None:
            continue
        if target.kind == "pii":  # name / ID number: every copy is dropped unread anyway
            drop.append(name)
            continue
        a, b = as_text(frame[base]), as_text(frame[name])
        differ = (b.notna() & (a.isna() | (a != b))).to_numpy(dtype=bool)
        j0 = first[base]
        if fmt == "xlsx":
            from openpyxl.utils import get_column_letter

            pos = f"第 {get_column_letter(j0 + 1)} 列和第 {get_column_letter(j + 1)} 列"
        else:
            pos = f"第 {j0 + 1} 列和第 {j + 1} 列"
        if differ.any():
            i = int(np.argmax(differ))
            if schemas.INPUT_TABLES[table][target.column].pii:  # never echo a raw id
                example = "（该列含个人信息，不显示内容）"
            else:
                pair = shown_text(pd.Series([a.iloc[i] or "", b.iloc[i]], dtype=object))
                example = f"「{pair[0]}」与「{pair[1]}」"
            raise EqmError(
                f"表头「{base}」出现了两次（{pos}），两列的内容不一致，例如第 {numbers[i]} 行："
                f"{example}。无法确定使用哪一列。",
                file=source,
                row=int(numbers[i]),
                column=base,
                hint="请核对这两列：删除错误或多余的一列；如果它们其实是不同的内容，请把其中一列改成"
                "正确的列名后重新运行。",
            )
        log.info("%s：表头「%s」出现了两次（%s），内容相同，已忽略后一列。", source, base, pos)
        drop.append(name)
    return frame.drop(columns=drop) if drop else frame


def _frame_from_rows(
    rows: list[tuple], header_idx: int, first_row_number: int, cells: list[Any] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows below the header (last header line ``header_idx``; its ``cells`` when given, e.g. of a
    two-line header) → DataFrame (object) and their row numbers; blank rows dropped."""
    cells = list(rows[header_idx]) if cells is None else cells
    header = _unique_headers(cells)
    width = len(header)
    body = rows[header_idx + 1 :]
    frame = pd.DataFrame.from_records(
        [tuple(r[:width]) + (None,) * (width - len(r)) for r in body] if body else [],
        columns=range(width),
    ).astype(object)
    frame.columns = header
    numbers = np.arange(len(body), dtype=np.int64) + first_row_number
    empty = frame.apply(lambda c: as_text(c).isna()) if len(frame) else frame.isna()
    blank = empty.all(axis=1).to_numpy() if width else np.ones(len(body), dtype=bool)
    # columns without a header and without any value (Excel's formatted-but-empty columns)
    unnamed_empty = [
        c for j, c in enumerate(header) if _cell_text(cells[j]) is None and empty[c].all()
    ]
    frame = frame.loc[~blank, [c for c in header if c not in unnamed_empty]].reset_index(drop=True)
    return frame, numbers[~blank]


def _decode_csv(
    data: bytes, source: str, hint: FileHint, encodings: tuple[str, ...]
) -> tuple[str, str]:
    if hint.encoding:
        try:
            return data.decode(hint.encoding), hint.encoding
        except UnicodeDecodeError as exc:
            raise EqmError(
                f"无法按 sources.yaml 指定的编码「{hint.encoding}」读取（第 {exc.start} 字节处出错）。",
                file=source,
                hint="请删除 sources.yaml 中该文件的 encoding 让程序自动识别，或改为正确的编码（如 gbk、utf-8）。",
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:8192]:
        raise EqmError(
            "文件含二进制内容，不是文本 CSV，可能已损坏或扩展名有误。",
            file=source,
            hint="请用 Excel 打开确认内容，另存为「CSV UTF-8」或 .xlsx 后重新放入。",
        )
    for enc in encodings:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        name = codecs.lookup(enc).name
        if name == "utf-8-sig":
            return text, "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
        if name == "gb18030":
            try:
                data.decode("gbk")
                return text, "gbk"
            except UnicodeDecodeError:
                return text, "gb18030"
        return text, name
    raise EqmError(
        f"无法识别文件编码（已尝试 {'、'.join(encodings)}）。",
        file=source,
        hint="请用 Excel 或记事本另存为「UTF-8」编码，或在 data/raw/sources.yaml 中为该文件设置 encoding。",
    )


def detect_delimiter(text: str, scan_rows: int) -> str:
    """The field separator of a delimited text file: the candidate of :data:`DELIMITERS` under
    which the first ``scan_rows`` non-blank lines form the largest consistent table, scored as
    (lines split into the modal number ≥ 2 of fields) × (that number of fields).

    Title lines above the header split into one field under most candidates; a separator that also
    occurs inside values (a ``;`` in a remark of a comma file, commas in a title above a tab table)
    splits only a few lines, or into few fields, and loses to the one that splits every row into
    the table's columns. Ties go to the earlier candidate (comma first). A single-column file is
    read as comma-separated.
    """
    lines = [ln for ln in islice(io.StringIO(text), scan_rows * 4) if ln.strip()][:scan_rows]
    best, best_score = ",", 0
    for d in DELIMITERS:
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=d)]
        except csv.Error:
            continue
        multi = [w for w in widths if w >= 2]
        if not multi:
            continue
        modal = max(set(multi), key=lambda w: (multi.count(w) * w, w))
        score = multi.count(modal) * modal
        if score > best_score:
            best, best_score = d, score
    return best


def _parse_csv_body(
    text: str, idx: int, source: str, sep: str = ",", header_lines: int = 1
) -> pd.DataFrame:
    """All cells as text from the header line (0-based ``idx``) on; blank lines kept for numbering.

    Rows longer than the header (e.g. trailing commas) are accepted when the extra fields are
    empty; a value in a column without a header is an error naming the line.
    """
    opts = {"header": None, "skiprows": idx, "dtype": str, "keep_default_na": False, "sep": sep}
    try:
        return pd.read_csv(io.StringIO(text), skip_blank_lines=False, **opts)
    except (pd.errors.ParserError, ValueError):
        pass
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    width = max((len(r) for r in islice(rows, idx, None)), default=0)
    frame = pd.read_csv(io.StringIO(text), skip_blank_lines=False, names=range(width), **opts)
    n_header = max(
        (
            int(frame.iloc[i].replace("", np.nan).last_valid_index() or 0) + 1
            for i in range(min(header_lines, len(frame)))
        ),
        default=0,
    )
    extra = frame.iloc[header_lines:, n_header:]
    filled = extra.apply(lambda c: as_text(c).notna()).any(axis=1).to_numpy() if extra.size else []
    if len(filled) and filled.any():
        name = DELIMITERS[sep]
        raise EqmError(
            f"文本格式错误：该行的字段数比表头多（可能有未加引号的{name}），多出的值没有对应的列名。",
            file=source,
            row=idx + header_lines + 1 + int(np.argmax(filled)),
            hint=f"请用 Excel 打开检查该行（含{name}的内容需用英文双引号括起来）后另存为 CSV。",
        )
    return frame.iloc[:, :n_header]


def _unclosed_quote(source: str, line: int) -> EqmError:
    return EqmError(
        'CSV 格式错误：该行有一个没有配对的英文双引号（"），从这里起的内容都被当成了同一个单元格，'
        "无法分出后面的行。",
        file=source,
        row=line,
        hint="请用 Excel 或记事本打开该文件，删除该行多余的引号或补上配对的引号（单元格内容中的引号"
        '要写成两个 ""），保存为 CSV 后重新运行。',
    )


def _record_lines(text: str, sep: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Physical line (1-based) where each record of a delimited text starts and ends.

    A quoted value may hold line breaks, so a record can span lines. A value swallowing more than
    the csv module's field limit (128 K characters) can only come from an unmatched quote: an
    error naming the line where that record starts."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    starts: list[int] = []
    ends: list[int] = []
    start = 1
    try:
        for _ in reader:
            starts.append(start)
            ends.append(reader.line_num)
            start = reader.line_num + 1
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise _unclosed_quote(source, start) from None
        raise EqmError(
            f"CSV 格式错误（{exc}）。", file=source, row=start,
            hint="请用 Excel 打开检查该行后另存为 CSV。",
        ) from None  # fmt: skip
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _physical_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def read_csv(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    data = path.read_bytes()
    text, encoding = _decode_csv(data, source, hint, params.encodings)
    if not text.strip():
        raise EqmError(
            "文件是空的。", file=source, hint="请放入含表头和数据的文件，或删除该空文件。"
        )
    scan = max(params.header_scan_rows, hint.header_row or 0)
    sep = hint.delimiter or detect_delimiter(text, scan)
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        head = list(islice(reader, scan))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise _unclosed_quote(source, _record_lines(text, sep, source)[0][-1]) from None
        raise EqmError(
            f"CSV 格式错误：{exc}", file=source, hint="请用 Excel 打开检查后另存为 CSV。"
        ) from None
    cells, top, low = locate_header(head, table, lookups, hint, params, source, "文件的行数")
    lines = low - top + 1
    try:
        frame = _parse_csv_body(text, top, source, sep, lines)
    except pd.errors.ParserError as exc:
        if "EOF inside string" not in str(exc):
            raise
        raise _unclosed_quote(source, int(_record_lines(text, sep, source)[0][-1])) from None
    width = frame.shape[1]
    cells = (list(cells) + [None] * width)[:width]
    header = _unique_headers(cells) if len(frame) else []
    body = frame.iloc[lines:].reset_index(drop=True)
    body.columns = header
    numbers = np.arange(len(body), dtype=np.int64) + low + 2
    spans: list[list[int]] = []
    if '"' in text and len(frame) != _physical_lines(text) - top:
        # a quoted value holds a line break: number each row by the line where it starts
        starts, ends = _record_lines(text, sep, source)
        starts, ends = starts[top + lines :], ends[top + lines :]
        if len(starts) == len(body):
            numbers = starts
            spans = [[int(s), int(e)] for s, e in zip(starts, ends, strict=True) if e > s]
    if spans:
        shown = "、".join(f"{s}–{e}" for s, e in spans[:5]) + ("…" if len(spans) > 5 else "")
        log.warning(
            "%s：第 %s 行各被读成一行数据（英文双引号中的内容含换行）；如果这不是单元格内的换行，"
            "请检查该处开头的引号是否多余。",
            source,
            shown,
        )
    if len(body):
        blank = body.apply(lambda c: as_text(c).isna()).all(axis=1).to_numpy()
        body = body.loc[~blank].reset_index(drop=True)
        numbers = numbers[~blank]
    if len(frame):
        body = _drop_duplicate_headers(body, cells, numbers, source, "csv", table, lookups, hint)
    meta = {
        "format": "csv",
        "encoding": encoding,
        "delimiter": DELIMITER_LABELS[sep],
        "header_row": top + 1,
        "header_rows": lines,
        "sheet": None,
    }
    if spans:
        meta["multiline_records"] = spans
    return RawFile(table, source, body, numbers, hint, meta)


def read_xlsx(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        OSError,
        ValueError,
        TypeError,
    ) as exc:
        raise EqmError(
            f"无法打开 Excel 文件（{type(exc).__name__}），文件可能已损坏或并非 .xlsx 格式。",
            file=source,
            hint="请用 Excel 打开该文件确认能正常显示，再「另存为」Excel 工作簿（.xlsx）后重新放入；"
            ".xls 旧格式也需要另存为 .xlsx。",
        ) from None
    try:
        names = wb.sheetnames
        if hint.sheet is None:
            sheet = names[0]
        elif isinstance(hint.sheet, int):
            if not 1 <= hint.sheet <= len(names):
                raise EqmError(
                    f"sources.yaml 指定第 {hint.sheet} 个工作表，但文件只有 {len(names)} 个：{'、'.join(names)}。",
                    file=source,
                    hint=_SOURCES_HINT,
                )
            sheet = names[hint.sheet - 1]
        else:
            if hint.sheet not in names:
                raise EqmError(
                    f"找不到 sources.yaml 指定的工作表「{hint.sheet}」；文件中的工作表：{'、'.join(names)}。",
                    file=source,
                    hint="请修改 sources.yaml 中该文件的 sheet。",
                )
            sheet = hint.sheet
        rows = [tuple(r) for r in wb[sheet].iter_rows(values_only=True)]
        member = getattr(wb[sheet], "_worksheet_path", None)
        rows = _mark_unsaved_formulas(rows, sheet_xml(path, member), source)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise EqmError(
            f"读取 Excel 工作表时出错（{type(exc).__name__}），文件可能已损坏。",
            file=source,
            hint="请用 Excel 打开后另存为 .xlsx 再试。",
        ) from None
    finally:
        wb.close()
    if not rows:
        raise EqmError(
            f"工作表「{sheet}」是空的。",
            file=source,
            hint="请确认数据在第一个工作表，或在 sources.yaml 中指定 sheet。",
        )
    cells, top, low = locate_header(
        [list(r) for r in rows], table, lookups, hint, params, source, f"工作表的行数 {len(rows)}"
    )
    frame, numbers = _frame_from_rows(rows, low, low + 2, cells)
    frame = _drop_duplicate_headers(frame, cells, numbers, source, "xlsx", table, lookups, hint)
    meta = {
        "format": "xlsx",
        "encoding": None,
        "delimiter": None,
        "header_row": top + 1,
        "header_rows": low - top + 1,
        "sheet": sheet,
    }
    return RawFile(table, source, frame, numbers, hint, meta)


def _mark_unsaved_formulas(rows: list[tuple], xml: bytes | None, source: str) -> list[tuple]:
    """``rows`` with :data:`FORMULA_NO_VALUE` in each formula cell that has no saved result
    (openpyxl reads it as empty), so normalisation sets it aside instead of reading a blank."""
    if xml is None:
        return rows
    cells, unplaced = unsaved_formula_cells(xml)
    if unplaced:
        log.warning(
            "%s：有 %d 个公式单元格没有保存计算结果且无法定位，读作空白；请在 Excel 中打开并保存后再发送。",
            source,
            unplaced,
        )
    if not cells:
        return rows
    rows = list(rows)
    for r, c in cells:
        if r < len(rows) and rows[r] is not None:
            row = list(rows[r]) + [None] * max(0, c + 1 - len(rows[r]))
            if row[c] is None:
                row[c] = FORMULA_NO_VALUE
            rows[r] = tuple(row)
    return rows


def _named_by_label(
    frame: pd.DataFrame, labels: list[str | None], table: str, lookups: Lookups, hint: FileHint
) -> pd.DataFrame:
    """SPSS/parquet: a column whose name is unknown but whose variable label is known takes the label."""
    rename = {}
    for col, label in zip(frame.columns, labels, strict=False):
        if (
            label
            and header_target(table, col, lookups, hint.aliases) is None
            and header_target(table, label, lookups, hint.aliases) is not None
        ):
            rename[col] = label
    return frame.rename(columns=rename)


def read_sav(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    import pyreadstat

    try:
        frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
    except Exception as exc:  # noqa: BLE001 - pyreadstat raises several private types
        raise EqmError(
            f"无法读取 SPSS 文件（{type(exc).__name__}），文件可能已损坏或不是 .sav 格式。",
            file=source,
            hint="请在 SPSS 中打开该文件确认无误后重新保存为 .sav；或导出为 .xlsx / .csv 后放入。",
        ) from None
    frame = frame.astype(
        {c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    )
    frame = _named_by_label(frame, list(meta.column_labels or []), table, lookups, hint)
    numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    info = {
        "format": "sav",
        "encoding": meta.file_encoding,
        "delimiter": None,
        "header_row": None,
        "header_rows": None,
        "sheet": None,
    }
    return RawFile(table, source, frame.reset_index(drop=True), numbers, hint, info)


def read_parquet_raw(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise EqmError(
            f"无法读取 parquet 文件（{type(exc).__name__}），文件可能已损坏。",
            file=source,
            hint="请重新导出该文件，或改用 .xlsx / .csv。",
        ) from None
    frame = frame.reset_index(drop=True)
    frame.columns = _unique_headers(list(frame.columns))
    numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    info = {
        "format": "parquet",
        "encoding": None,
        "delimiter": None,
        "header_row": None,
        "header_rows": None,
        "sheet": None,
    }
    return RawFile(table, source, frame, numbers, hint, info)


READERS = {"csv": read_csv, "xlsx": read_xlsx, "sav": read_sav, "parquet": read_parquet_raw}


def read_raw_file(
    table: str, path: Path, raw_dir: Path, sources: Sources, params: IngestParams, lookups: Lookups
) -> RawFile:
    rel = path.relative_to(raw_dir).as_posix()
    hint = sources.files.get(rel, FileHint())
    fmt = FORMATS[path.suffix.lower()]
    try:
        raw = READERS[fmt](path, rel, table, hint, params, lookups)
    except PermissionError:
        raise EqmError(
            "没有读取该文件的权限。", file=rel, hint="请检查文件权限，或关闭正在占用它的程序。"
        ) from None
    meta = dict(raw.meta)
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return RawFile(raw.table, raw.source, raw.data, raw.rows, raw.hint, meta)
