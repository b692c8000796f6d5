"""``eqm templates``: one Excel fill-in workbook per raw table, for the counties' clerks.

Each workbook has the data sheet first (so ingest reads it with no ``sources.yaml`` entry): row 1
holds the canonical Chinese column names (:func:`pipeline.collect.guide.form_columns`), frozen, with
column widths, number formats (学生编号 and codes as text, counts as whole numbers) and Excel data
validation on every cell below the header — drop-down lists for coded columns (年级, 性别, 城乡类型,
学科, 学段, 区县 …, from :mod:`pipeline.schemas` and the round's ``monitoring.counties``), whole /
decimal checks with the schema's ranges for numeric columns. A second sheet 「填写说明」 says what
each column means, its unit and allowed values. No column asks for 姓名 or 身份证号.

openpyxl is imported inside the functions (``eqm --help`` and the other commands do not pay for it).
Files are written through :func:`pipeline.io.outputs` (all or nothing), never under ``data/raw/``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pipeline.schemas as schemas
from pipeline.collect.guide import (
    PRIVACY_NOTES,
    TABLE_ROWS,
    FormColumn,
    allowed_text,
    form_columns,
    required_note,
)
from pipeline.config import RAW_TABLES, MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.io import outputs

if TYPE_CHECKING:
    from openpyxl import Workbook

log = logging.getLogger(__name__)

TEMPLATES_DIR = "templates"  # default output folder, under the project root
GUIDE_SHEET = "填写说明"
LISTS_SHEET = "代码表"  # hidden; holds drop-down lists too long to write inline
LAST_ROW = 1_048_576  # Excel's last row: checks apply to every row below the header
INLINE_LIST_MAX = 255  # Excel's limit on an inline list formula ("a,b,c")
NUMBER_FORMATS = {"text": "@", "code": "@", "whole": "0", "decimal": "0.0###"}
NUMBER_BOUND = 1e15  # a numeric column without schema bounds still only takes numbers
HEADER_FILL = "DDEBF7"  # optional columns
REQUIRED_FILL = "FCE4D6"  # required (or one-of-two) columns


def template_name(table: str) -> str:
    return f"{table}_{schemas.INPUT_TABLES[table].label}.xlsx"


def score_range(mon: MonitoringParams) -> tuple[float, float]:
    """The widest plausible 量尺分数 range of params.yaml (default scale and every override)."""
    ranges = [mon.default_scale.plausible_range, *(s.plausible_range for s in mon.scales.values())]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _validation(col: FormColumn, ref: str, list_formula: str | None):
    from openpyxl.worksheet.datavalidation import DataValidation

    common = {
        "allow_blank": True,
        "showErrorMessage": True,
        "showInputMessage": True,
        "promptTitle": _clip(col.header, 32),
        "prompt": _clip(col.meaning, 255),
        "errorTitle": _clip(f"「{col.header}」取值无效", 32),
    }
    if col.choices or col.suggested:
        values = col.choices or col.suggested
        dv = DataValidation(
            type="list",
            formula1=list_formula,
            error=_clip(
                ("请从下拉列表中选择：" if col.choices else "不是常用的取值，确认无误可保留：")
                + "、".join(values),
                255,
            ),
            errorStyle="stop" if col.choices else "warning",
            **common,
        )
    elif col.kind in ("whole", "decimal"):
        low = -NUMBER_BOUND if col.low is None else col.low
        high = NUMBER_BOUND if col.high is None else col.high
        between = {"operator": "between", "formula1": _bound(low), "formula2": _bound(high)}
        if col.low_open:  # Excel has no half-open "between": > low (validate checks the cap)
            between = {"operator": "greaterThan", "formula1": _bound(low)}
        dv = DataValidation(
            type=col.kind,
            **between,
            error=_clip(f"请填写{allowed_text(col)}。", 255),
            errorStyle="stop",
            **common,
        )
    else:
        return None
    dv.add(ref)
    return dv


def template_workbook(
    table: str, county_names: Mapping[str, str], scores: tuple[float, float]
) -> Workbook:
    """The fill-in workbook of ``table`` (pure: builds it in memory)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    tbl = schemas.INPUT_TABLES[table]
    cols = form_columns(table, county_names, scores)
    wb = Workbook()
    ws = wb.active
    ws.title = tbl.label
    lists, n_lists = None, 0
    for j, col in enumerate(cols, start=1):
        letter = get_column_letter(j)
        cell = ws.cell(row=1, column=j, value=col.header)
        needed = required_note(table, col) != "选填"
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor=REQUIRED_FILL if needed else HEADER_FILL)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        dim = ws.column_dimensions[letter]
        dim.width = max(10, 2 * len(col.header) + 4, 22 if col.kind == "text" else 0)
        dim.number_format = NUMBER_FORMATS[col.kind]
        values = col.choices or col.suggested
        formula = None
        if values:
            inline = '"' + ",".join(values) + '"'
            if len(inline) <= INLINE_LIST_MAX and not any("," in v for v in values):
                formula = inline
            else:
                if lists is None:
                    lists = wb.create_sheet(LISTS_SHEET)
                    lists.sheet_state = "hidden"
                n_lists += 1
                k = n_lists
                lists.cell(row=1, column=k, value=col.header)
                for i, v in enumerate(values, start=2):
                    lists.cell(row=i, column=k, value=v)
                kl = get_column_letter(k)
                formula = f"'{LISTS_SHEET}'!${kl}$2:${kl}${len(values) + 1}"
        dv = _validation(col, f"{letter}2:{letter}{LAST_ROW}", formula)
        if dv is not None:
            ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 30
    _guide_sheet(wb.create_sheet(GUIDE_SHEET, index=1), table, cols)
    wb.active = 0
    return wb


def _guide_sheet(ws, table: str, cols: list[FormColumn]) -> None:
    from openpyxl.styles import Alignment, Font

    tbl = schemas.INPUT_TABLES[table]
    notes = [
        TABLE_ROWS[table],
        f"在第一个工作表「{tbl.label}」中从第 2 行起填写，一行一条；第 1 行是列名，请勿修改或调换，"
        "不用的选填列留空即可。",
        "橙色表头的列必填（「二选一」的至少填一列），蓝色表头的列选填。有下拉箭头的列请从列表中"
        "选择；数字列只能填数字，超出范围时 Excel 会提示。请只填数值，不要写公式或单位。",
        f"填好后保持 .xlsx 格式交回，放入项目目录的 data/raw/{table}/ 文件夹，文件名不限；一个文件"
        "可含多个区县和年份。",
    ]
    if table in PRIVACY_NOTES:
        notes.append(PRIVACY_NOTES[table])
    ws["A1"] = f"{tbl.label}（{table}）填写说明"
    ws["A1"].font = Font(bold=True, size=14)
    row = 2
    for text in notes:
        ws.cell(row=row, column=1, value=f"· {text}")
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=6)
        ws.cell(row=row, column=1).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row].height = 32
        row += 1
    row += 1
    heads = ("列名", "填写", "含义", "单位", "可填写的值", "示例")
    for j, h in enumerate(heads, start=1):
        ws.cell(row=row, column=j, value=h).font = Font(bold=True)
    for col in cols:
        row += 1
        values = (
            col.header,
            required_note(table, col),
            col.meaning,
            col.column.unit or "",
            allowed_text(col),
            col.example,
        )
        for j, v in enumerate(values, start=1):
            c = ws.cell(row=row, column=j, value=v)
            c.alignment = Alignment(wrap_text=True, vertical="top")
    codes = {
        "county_reports": (
            ("指标代码", schemas.INDICATOR_LABELS),
            ("分组变量代码", schemas.GROUP_VAR_LABELS),
        ),
        "previous_problems": (("规则代码", schemas.PROBLEM_RULES),),
    }
    for title, table_codes in codes.get(table, ()):
        row += 2
        ws.cell(row=row, column=1, value=title).font = Font(bold=True)
        for code, label in table_codes.items():
            row += 1
            ws.cell(row=row, column=1, value=code)
            ws.cell(row=row, column=3, value=label)
    for letter, width in zip("ABCDEF", (22, 9, 60, 10, 40, 24), strict=True):
        ws.column_dimensions[letter].width = width


def write_templates(ctx: RunContext, out_dir: Path | None = None) -> list[Path]:
    """``eqm templates``: write every table's workbook into ``out_dir`` (default ``templates/``)."""
    target = Path(out_dir) if out_dir is not None else ctx.root / TEMPLATES_DIR
    raw = ctx.paths.raw.resolve()
    if target.resolve() == raw or raw in target.resolve().parents:
        raise EqmError(
            f"模板不能写到原始数据目录 {raw} 中（导入环节会把它们当作数据读取）。",
            hint="请用 --out 指定 data/raw 以外的文件夹，或不加 --out（默认写到项目目录的 templates/）。",
        )
    mon = ctx.monitoring
    counties = {str(k): str(v) for k, v in mon.counties.items()}
    written = []
    with outputs() as out:
        for table in RAW_TABLES:
            path = target / template_name(table)
            template_workbook(table, counties, score_range(mon)).save(out.path(path))
            written.append(path)
    log.info(
        "已生成 %d 个填写模板（%s）：%s", len(written), target, "、".join(p.name for p in written)
    )
    return written
