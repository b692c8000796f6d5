"""``eqm check FILE…``: what the round will make of a file, the moment it arrives.

The city office learns what is wrong with a county's or a school's file without running the round.
For each file ``check`` says:

1. **Which table** it is: from its folder when it sits in ``data/raw/<table>/`` (that file's
   ``sources.yaml`` entry applies, as in the round), else from its header — ingest's own header
   scoring (:func:`pipeline.ingest.headers.locate_header`, ``_score_header_row``) tried for every
   table, the table with the most known columns wins (a tie is said in the summary).
2. **What ingest makes of it**: the real reader and :func:`pipeline.ingest.normalise_file` —
   encoding, separator, sheet, header row, columns recognised / ignored / suspect / missing, cells
   and rows set aside with ingest's rule and message. An :class:`EqmError` ingest would stop the
   round with (a missing required column, a whole column unreadable …) is the file's verdict.
3. **What validate makes of it**: the file's canonical tables go through validate's real row
   core :func:`pipeline.validate._row_failures` (the GX suite, the pandas checks, weights, levels
   vs cut scores, school vs county, duplicates, the student → score cascade) and its table rules
   (:func:`pipeline.validate.tables._table_findings`). Rules that need another file of the round
   are **skipped** (:data:`SCORES_ALONE`, :data:`STUDENTS_NEED_SCHOOLS`,
   :data:`QUESTIONNAIRE_ALONE`; e.g. a score whose student is in the students file); the rows they
   would set aside are not held against the file, and the duplicate pass and the cascade are
   re-run without them (:func:`validate_file`), so that a skipped rule never
   hides a duplicate the round would find. Rules that compare rows with one another are checked
   among this file's rows (:data:`WITHIN_FILE`); findings about the whole round (rows lost per
   county, tables without data) are not made (:data:`ROUND_WIDE`). The summary lists all three.

A file **passes** (exit 0) when ingest reads it, it has data rows, no row of it is set aside and no
table-level finding is an error; warnings do not fail it. Hence the guarantee, tested on every
demo file in ``tests/test_check.py``: the same functions on the same rows give the same verdict,
so a file that passes check has, in the round, no row set aside and no error finding by any rule
check ran; only the skipped and within-file rules listed in its summary can still act on it there.

What it writes (``<root>/checks/<file stem>/`` or ``--out``, never under ``data/raw/``), for the
sender: the sender's own workbook with every problem cell filled and commented (rule, message,
what to do) — for ``.xlsx`` a copy opened with openpyxl and saved, values untouched; for text
files an ``.xlsx`` of the file's cells as text, same rows and columns; for ``.sav``/``.parquet``
an ``.xlsx`` of the values read (header in row 1) — and an HTML summary in Chinese. Row and column
come from ingest: ``source_row`` (the sheet row / CSV line) and the header's position. No PDF: the
summary is read on screen, beside the returned workbook. The summary never shows a name, ID number or student id: name and ID number
columns are dropped unread by ingest, ingest's messages never echo a student id, and validate's
messages on the student id column name the row instead of the value. Student ids are
pseudonymised with a random salt of this process, so no project salt file is read or created.

The package: :mod:`~pipeline.collect.check.identify` (which table a file is),
:mod:`~pipeline.collect.check.rules` (what ingest and validate make of it: the pure core
:func:`check_raw`), :mod:`~pipeline.collect.check.workbook` (the returned workbook),
:mod:`~pipeline.collect.check.summary` (the HTML summary); the shell (:func:`check_files`,
:func:`run`) is here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pipeline.schemas as schemas
from pipeline.collect.check.identify import (
    Placement,
    choose_table,
    header_scores,
    placement,
)
from pipeline.collect.check.rules import (
    FIXES,
    QUESTIONNAIRE_ALONE,
    ROUND_WIDE,
    SCORES_ALONE,
    STUDENTS_NEED_SCHOOLS,
    WITHIN_FILE,
    Verdict,
    check_raw,
    validate_file,
)
from pipeline.collect.check.summary import summary_html
from pipeline.collect.check.workbook import PROBLEM_FILL, _workbook
from pipeline.config import RunContext
from pipeline.errors import EqmError
from pipeline.ingest.headers import build_lookups
from pipeline.ingest.readers import FORMATS, READERS, RawFile
from pipeline.ingest.sources import IngestParams, load_sources
from pipeline.io import outputs
from pipeline.validate.params import ValidateParams

__all__ = [
    "CHECKS_DIR",
    "FIXES",
    "PROBLEM_FILL",
    "QUESTIONNAIRE_ALONE",
    "ROUND_WIDE",
    "SCORES_ALONE",
    "STUDENTS_NEED_SCHOOLS",
    "WITHIN_FILE",
    "FileReport",
    "Verdict",
    "check_files",
    "check_raw",
    "run",
    "validate_file",
]

log = logging.getLogger(__name__)

CHECKS_DIR = "checks"  # default output folder, under the project root


@dataclass
class FileReport:
    path: Path
    verdict: Verdict
    table_by: str  # folder | header
    table_scores: dict[str, int]
    folder: Path  # where the workbook and the summary are
    workbook: Path | None
    summary: Path

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def _read(path: Path, fmt: str, place: Placement, table: str, params, lookups) -> RawFile:
    try:
        return READERS[fmt](path, place.source, table, place.hint, params, lookups)
    except PermissionError:
        raise EqmError(
            "没有读取该文件的权限。",
            file=place.source,
            hint="请检查文件权限，或关闭正在占用它的程序。",
        ) from None


def _folder_names(files: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for f in files:
        name, k = f.stem, 1
        while name in names:
            k += 1
            name = f"{f.stem}-{k}"
        names.append(name)
    return names


def _inputs(files: Sequence[Path]) -> list[Path]:
    out = []
    for f in map(Path, files):
        if not f.is_file():
            raise EqmError(
                f"找不到要检查的文件 {f}。", hint="请核对文件路径（可以一次检查多个文件）。"
            )
        if f.suffix.lower() not in FORMATS:
            raise EqmError(
                f"不支持的文件格式「{f.suffix or '（无扩展名）'}」。可接受的格式：{'、'.join(FORMATS)}。",
                file=str(f),
                hint="请另存为 .xlsx 或 CSV（UTF-8）后再检查。",
            )
        out.append(f)
    if not out:
        raise EqmError(
            "没有指定要检查的文件。", hint="用法：eqm check 文件1 [文件2 …] --root 项目目录"
        )
    return out


def check_files(
    ctx: RunContext, files: Sequence[Path], out_dir: Path | None = None
) -> list[FileReport]:
    """``eqm check``: check each file and write its workbook and summary (module docstring)."""
    paths = ctx.paths
    target = Path(out_dir) if out_dir is not None else ctx.root / CHECKS_DIR
    raw_dir = paths.raw.resolve()
    if target.resolve() == raw_dir or raw_dir in target.resolve().parents:
        raise EqmError(
            f"检查结果不能写到原始数据目录 {raw_dir} 中（导入环节会把它们当作数据读取）。",
            hint="请用 --out 指定 data/raw 以外的文件夹，或不加 --out（默认写到项目目录的 checks/）。",
        )
    inputs = _inputs(files)
    ip = ctx.section(IngestParams, "ingest")
    vp = ctx.section(ValidateParams, "validate")
    mon = ctx.monitoring
    sources = load_sources(paths.sources_file, ip.sources_max_bytes)
    lookups = build_lookups(mon, sources.aliases)
    salt = secrets.token_hex(32)  # this process only: no pseudonym leaves it
    reports = []
    for path, name in zip(inputs, _folder_names(inputs), strict=True):
        report = _check_one(path, target / name, paths.raw, sources, lookups, ip, vp, mon, salt)
        reports.append(report)
        v = report.verdict
        log.info(
            "%s：%s（%s）；%s。结果：%s",
            v.source,
            schemas.INPUT_TABLES[v.table].label if v.table else "无法判断是哪张表",
            "按文件夹" if report.table_by == "folder" else "按表头",
            "通过"
            if v.passed
            else f"未通过（{len(v.problems)} 行问题，"
            f"{sum(f['severity'] == 'error' for f in v.findings)} 项严重的表级问题"
            f"{'，无法导入' if v.error else ''}）",
            report.summary,
        )
    return reports


def _check_one(path, folder, raw_dir, sources, lookups, ip, vp, mon, salt) -> FileReport:
    place = placement(path, raw_dir, sources)
    fmt = FORMATS[path.suffix.lower()]
    table, scores, raw = place.table, {}, None
    try:
        if table is None:
            scores = header_scores(path, fmt, lookups, ip)
            table = choose_table(scores, place.source)
        raw = _read(path, fmt, place, table, ip, lookups)
    except EqmError as exc:
        verdict = Verdict(table, place.source, error=exc)
    else:
        verdict = check_raw(raw, lookups, ip, vp, mon, salt)
    wb = _workbook(path, fmt, place, raw, verdict, ip, lookups)
    report = FileReport(
        path, verdict, "folder" if place.table else "header", scores, folder,
        folder / f"{path.stem}_检查结果.xlsx" if wb is not None else None,
        folder / f"{path.stem}_检查摘要.html",
    )  # fmt: skip
    with outputs() as out:
        tmp = out.directory(folder)
        if wb is not None:
            wb.save(tmp / report.workbook.name)
        (tmp / report.summary.name).write_text(
            summary_html(report, vp.page_max_rows_per_rule), encoding="utf-8"
        )
    return report


def run(ctx: RunContext, files: Sequence[Path], out_dir: Path | None = None) -> list[FileReport]:
    """Check the files; an :class:`EqmError` (exit 1) when any would not pass the round."""
    reports = check_files(ctx, files, out_dir)
    failed = [r for r in reports if not r.passed]
    if failed:
        listing = "；".join(f"{r.verdict.source}（见 {r.summary}）" for r in failed)
        raise EqmError(
            f"{len(failed)} 个文件未通过检查：{listing}。",
            hint="请打开检查摘要和标注了问题单元格的工作簿，把问题告知报送单位，改正后重新检查。",
        )
    return reports
