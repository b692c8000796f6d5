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
   are **skipped** (:data:`SCORES_ALONE`, :data:`STUDENTS_NEED_SCHOOLS`; e.g. a score whose
   student is in the students file); the rows they would set aside are not held against the file, and the duplicate pass
   and the cascade are re-run without them (:func:`validate_file`), so that a skipped rule never
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
summary is read on screen and WeasyPrint's import and CJK font subsetting would cost the check
seconds per file. The summary never shows a name, ID number or student id: name and ID number
columns are dropped unread by ingest, ingest's messages never echo a student id, and validate's
messages on the student id column name the row instead of the value. Student ids are
pseudonymised with a random salt of this process, so no project salt file is read or created.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import secrets
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.config import RAW_TABLES, MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.ingest import assemble
from pipeline.ingest.headers import (
    Lookups,
    _score_header_row,
    build_lookups,
    header_target,
    locate_header,
)
from pipeline.ingest.normalise import normalise_file
from pipeline.ingest.readers import (
    FORMATS,
    READERS,
    RawFile,
    _decode_csv,
    _record_lines,
    _unique_headers,
    detect_delimiter,
)
from pipeline.ingest.sources import DELIMITER_NAMES, FileHint, IngestParams, Sources, load_sources
from pipeline.io import outputs
from pipeline.validate import _prepare, _row_failures
from pipeline.validate.accounting import _conform_quarantine, _quarantine_rows
from pipeline.validate.consistency import duplicate_failures
from pipeline.validate.params import DUPLICATE_RULES, TABLES, ValidateParams
from pipeline.validate.rules import _cascade, _student_lookup
from pipeline.validate.tables import _table_findings

log = logging.getLogger(__name__)

CHECKS_DIR = "checks"  # default output folder, under the project root
TEMPLATE = Path(__file__).parent.parent / "templates" / "check.html.j2"
PROBLEM_FILL = "FFC7CE"  # a cell whose row the round sets aside (Excel's light red)
NOTE_FILL = "FFEB9C"  # a header worth a look: ignored but resembling a known column (light yellow)
COMMENT_AUTHOR = "eqm check"
HIDDEN_ID = "学生编号见原文件本行"  # shown instead of a student id value

# ------------------------------------------------------------------------------------------------
# What one file can decide
# ------------------------------------------------------------------------------------------------

# Rules that need another file of the round: skipped. Scores whose students are not in the file:
SCORES_ALONE: Mapping[str, str] = {
    "student_unknown": "成绩对应的学生要在学生数据文件中查找（同一年份、学生编号），本文件中没有学生数据",
    "student_quarantined": "学生数据行是否被隔离要看学生数据文件，本文件中没有学生数据",
    "subject_not_in_rotation": "学科轮次按年级核对，年级在学生数据文件中，本文件中没有",
}
# Students, whose schools are in the schools file:
STUDENTS_NEED_SCHOOLS: Mapping[str, str] = {
    "school_county_mismatch": "学生的区县要与学校办学条件文件中该校的区县核对",
    "school_county_conflict": "学生与学校的区县不一致时，以学校办学条件文件为准来判断",
    "grade_stage_mismatch": "年级与学校学段的核对需要学校办学条件文件中的学段",
}
_OTHER_FILES = "只与本文件中的行比较；全轮运行时还会与其他文件中的行比较"
# Rules that compare rows with other rows: checked among this file's rows only (rule -> tables
# of the file it concerns, how it is limited).
WITHIN_FILE: Mapping[str, tuple[frozenset[str], str]] = {
    **{r: (frozenset({t}), _OTHER_FILES) for t, r in DUPLICATE_RULES.items()},
    "duplicate_identical": (frozenset(RAW_TABLES), _OTHER_FILES),
    "weight_implausible": (
        frozenset({"students"}),
        "与本文件中同一年份、区县、年级的权重中位数比较（全轮按全部文件计算中位数）",
    ),
    "few_schools": (frozenset({"students"}), "按本文件中的学校计数（全轮按全部文件计数）"),
    "too_many_students": (frozenset({"students"}), "按本文件中的学生计数（全轮按全部文件计数）"),
    "weight_sum_ratio": (frozenset({"students"}), "按本文件中的学校计算（全轮按全部文件计算）"),
    "school_county_conflict": (
        frozenset({"schools"}),
        "只看本文件中同一学校是否写了不同区县；全轮运行时还会与其他文件比较",
    ),
    "level_pct_sum": (frozenset({"county_reports"}), "按本文件中的行合计（全轮按全部文件合计）"),
}
# Findings about the round as a whole: not made for one file.
ROUND_WIDE: Mapping[str, str] = {
    "quarantine_share": "按区县统计全轮被隔离的比例",
    "rows_mostly_lost": "按区县、年份统计全轮被隔离的比例",
    "county_lost": "按区县统计全轮数据",
    "year_lost": "按年份统计全轮数据",
    "no_achievement_data": "看全轮是否有学生或区县报告数据",
    "no_school_data": "看全轮是否有学校办学条件数据",
    "no_scores": "看全轮是否有成绩数据",
    "empty_table": "看全轮该表是否有数据（本文件没有数据行时，本检查按未通过处理）",
    "ingest_counts_mismatch": "核对全轮的导入清单",
}


@dataclass(frozen=True)
class Scope:
    """Which rules check skipped (they need another file), which it ran among this file's rows
    only, and which findings it does not make (about the whole round); rule -> why."""

    skipped: Mapping[str, str]
    within: Mapping[str, str]
    round_wide: Mapping[str, str]


def rule_scope(present: set[str], mon: MonitoringParams) -> Scope:
    """The scope of the rules for a file whose canonical tables with rows are ``present``."""
    skipped: dict[str, str] = {}
    within = {r: why for r, (ts, why) in WITHIN_FILE.items() if ts & present}
    scores_alone = "scores" in present and "students" not in present
    if scores_alone:
        skipped.update(SCORES_ALONE)
        grade = "年级在学生数据文件中，本文件只能按未知年级核对"
        if mon.scales:  # a per-grade scale may apply: the range and cut scores are unknown
            why = f"量尺分数的合理范围和划界分数按年级设置（params.yaml 的 monitoring.scales），{grade}"
            skipped.update(
                dict.fromkeys(
                    ("score_out_of_range", "level_inconsistent", "cut_scores_mismatch"), why
                )
            )
        else:
            within.update(dict.fromkeys(("level_inconsistent", "cut_scores_mismatch"),
                "不分年级统计本文件的成绩行（全轮按年级统计后决定逐行隔离还是给出划界分数问题）"))  # fmt: skip
    elif {"scores", "students"} <= present:
        within["student_quarantined"] = (
            "按本文件中的学生行判断（全轮运行时，其他文件中同一学生的有效行也算）"
        )
    if "students" in present:
        skipped.update(STUDENTS_NEED_SCHOOLS)
        within.pop("school_county_conflict", None)
    return Scope(skipped, within, dict(ROUND_WIDE))


# What the sender does about each row rule (the comment on the cell says it).
FIXES: Mapping[str, str] = {
    "ingest.bad_year": "填写四位数字的年份（如 2022）；单元格格式设为「常规」或「数值」。",
    "ingest.missing_value": "补填该必填项。",
    "ingest.not_a_number": "只填数字，不要带单位、文字或空格；没有数据的留空。",
    "ingest.split_enrollment": "一贯制学校请填写各学段的在校生数（如小学在校生数、初中在校生数），不能全为 0。",
    "ingest.unknown_code": "按填写说明改为可识别的取值（如性别 男/女，年级 四年级/八年级，水平 Ⅰ–Ⅳ）。",
    "ingest.unknown_county": "改为正确的区县名称或 6 位区县代码；如果是本轮区县的另一种写法，请市里在 params.yaml 的 monitoring.county_aliases 中登记。",
    "ingest.error_value": "改正公式或引用，使单元格显示正常的数值，或直接填入数值。",
    "ingest.formula_no_value": "在 Excel 中打开文件，确认公式算出结果后保存再发送，或把公式改为数值。",
    "ingest.bad_student_id": "从原系统按文本重新导出学生编号（不要让 Excel 转成数字）；编号只含字母、数字、短横线和下划线。",
    "ingest.county_mismatch": "核对该行属于哪个区县，使区县代码与区县名称一致。",
    "missing_value": "补填该必填项。",
    "out_of_range": "核对数值，改为允许范围内的值。",
    "invalid_code": "改为填写说明中允许的取值。",
    "missing_student_id": "补填学生编号。",
    "duplicate_student": "同一学生每个年份只能有一行：核对这些行，删除错误的一行或改正学生编号。",
    "grade_invalid": "年级只能是 4 或 8（四年级、八年级）。",
    "weight_invalid": "填写大于 0 的学生权重（抽样设计给出的最终权重）。",
    "county_unknown": "核对区县代码；如果确是本轮监测的区县，请市里在 params.yaml 的 monitoring.counties 中登记。",
    "missing_school_id": "补填学校编号（学校标识码）。",
    "homework_out_of_range": "核对每天书面作业时间（分钟）。",
    "sleep_out_of_range": "核对每天睡眠时间（小时），应在 0–24 之间。",
    "fitness_out_of_range": "核对体质健康总分，应在 0–120 之间。",
    "duplicate_score": "同一学生同一学科每年只能有一行成绩：删除重复或错误的一行。",
    "score_out_of_range": "核对量尺分数；缺考、作废等情况不要用 9999 之类的代码，请留空。",
    "score_missing": "填写量尺分数或水平，没有成绩的行请删除。",
    "level_inconsistent": "核对水平与量尺分数：按划界分数，该分数属于另一个水平。",
    "student_unknown": "核对学生编号和年份，使之与学生数据中的写法一致。",
    "student_quarantined": "先改正这名学生在学生数据中的那一行，成绩随之恢复。",
    "duplicate_school": "同一学校同一学段每年只能有一行：删除重复或错误的一行。",
    "resource_negative": "办学条件数值不能为负数，请核对。",
    "enrollment_not_positive": "填写该校（学段）大于 0 的在校生数。",
    "duplicate_report_row": "同一指标同一组别只能有一行：对照报告原文删除重复或错误的一行。",
    "pct_out_of_range": "百分比应在 0–100 之间，请对照报告原文核对。",
    "duplicate_problem": "每个问题编号只能有一行：删除重复或错误的一行。",
    "duplicate_identical": "这一行与另一行完全相同（行号见说明）：删除重复的一行。",
    "weight_implausible": "核对学生权重的数值和单位（是否多写或少写了位数）。",
    "school_county_mismatch": "核对该行的区县代码或学校编号。",
}


def fix_for(rule: str) -> str:
    return FIXES.get(rule, "请按说明改正。")


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One row of the file that the round would set aside for one rule."""

    stage: str  # ingest | validate
    table: str  # canonical table of the row (wide scores of a students file: scores)
    source_row: int  # the row the user sees (sheet row, CSV line, case number)
    rule: str
    column: str  # canonical column(s) (validate) or the header (ingest), as the stage names it
    headers: tuple[str, ...]  # the sender's header(s) of the cell(s); () when none applies
    message: str  # the stage's message, never showing a student id

    @property
    def fix(self) -> str:
        return fix_for(self.rule)

    @property
    def where(self) -> str:
        if self.headers:
            return "、".join(self.headers)
        return "、".join(_column_label(self.table, c) for c in re.split(r"[;,]", self.column) if c)


@dataclass
class Verdict:
    """What the round would make of one file."""

    table: str | None
    source: str
    problems: list[Problem] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  # rule, severity, message
    manifest: dict[str, Any] = field(default_factory=dict)  # ingest's entry for the file
    scope: Scope | None = None
    error: EqmError | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and not self.problems
            and not any(f["severity"] == "error" for f in self.findings)
        )


def _column_label(table: str, column: str) -> str:
    try:
        return schemas.INPUT_TABLES[table][column].label
    except KeyError:
        return column


# ------------------------------------------------------------------------------------------------
# Core (pure): one raw file -> verdict
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headers:
    """What each header of the file means (ingest's :func:`header_target`)."""

    cols: Mapping[str, str]  # canonical column -> header
    wide: Mapping[tuple[str, str], str]  # (subject, field) -> header (wide score columns)
    pvs: Mapping[str, str]  # pvK -> header (long scores)
    pii: tuple[str, ...]  # dropped unread
    long_scores: bool  # scores rows come from a subject column, not from wide columns


def header_meanings(raw: RawFile, lookups: Lookups) -> Headers:
    cols: dict[str, str] = {}
    wide: dict[tuple[str, str], str] = {}
    pvs: dict[str, str] = {}
    pii = []
    for h in map(str, raw.data.columns):
        t = header_target(raw.table, h, lookups, raw.hint.aliases)
        if t is None:
            continue
        if t.kind == "pii":
            pii.append(h)
        elif t.kind == "col":
            cols.setdefault(t.column, h)
        elif t.kind == "wide":
            wide.setdefault((str(t.subject), t.column), h)
        else:
            pvs.setdefault(t.column, h)
    long_scores = raw.table == "scores" and "subject" in cols
    return Headers(cols, {} if long_scores else wide, pvs, tuple(pii), long_scores)


def validate_file(
    tables: Mapping[str, pd.DataFrame],
    ingest_quarantine: pd.DataFrame,
    params: ValidateParams,
    mon: MonitoringParams,
    skipped: frozenset[str],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, list[dict]]:
    """Validate's cores on one file's tables: the frames, the failing rows (``table, pos, rule,
    column, detail``) and the findings, without the ``skipped`` rules.

    The row rules of :func:`pipeline.validate._row_failures` run as in the round. Its second and
    third passes (duplicates among the rows that passed the row rules; the cascade from students
    to their scores) are then re-run on the row failures *without* the skipped rules: a skipped
    rule (e.g. ``student_unknown``, which every score of a scores file breaks while the students
    file is absent) must not take rows out of the duplicate check the round makes."""
    frames = {t: _prepare(t, tables.get(t)) for t in TABLES}
    iq = _conform_quarantine(ingest_quarantine)
    iq = iq.assign(stage=iq["stage"].fillna("ingest"))
    lookup = _student_lookup(frames["students"]) if len(frames["scores"]) else None
    fails, row_findings = _row_failures(frames, iq, lookup, params, mon)
    later = {*DUPLICATE_RULES.values(), "duplicate_identical", "student_quarantined"}
    first = fails[~fails["rule"].isin(later | skipped)]
    dups, dup_findings = duplicate_failures(frames, first, params)
    both = pd.concat([first, dups], ignore_index=True)
    st_fail = both.loc[both["table"] == "students", "pos"].to_numpy()
    cascade = _cascade(frames["scores"], frames["students"], st_fail, iq)
    unknown_too = (
        both["table"].eq("scores")
        & both["rule"].eq("student_unknown")
        & both["pos"].isin(cascade["pos"])
    )
    fails = pd.concat([both[~unknown_too], cascade], ignore_index=True)
    fails = fails[~fails["rule"].isin(skipped)].reset_index(drop=True)
    validated = {}
    for t, df in frames.items():
        bad = np.zeros(len(df), dtype=bool)
        bad[fails.loc[fails["table"] == t, "pos"].to_numpy(dtype="int64")] = True
        validated[t] = df.loc[~bad].reset_index(drop=True)
    dropped = skipped | set(ROUND_WIDE)
    findings = [f for f in row_findings if f["rule"] != "duplicate_identical"] + dup_findings
    findings += _table_findings(validated, params, mon)
    return frames, fails, [f for f in findings if f["rule"] not in dropped]


def _ingest_problems(q: pd.DataFrame, headers: set[str]) -> list[Problem]:
    return [
        Problem("ingest", str(r.table), int(r.source_row), str(r.rule), str(r.column),
                (str(r.column),) if str(r.column) in headers else (), str(r.message))
        for r in q.itertuples(index=False)
    ]  # fmt: skip


def _validate_problems(
    frames: Mapping[str, pd.DataFrame], fails: pd.DataFrame, heads: Headers
) -> list[Problem]:
    """One problem per failing row and rule, with validate's own message (the round's page's)."""
    out: list[Problem] = []
    if "detail" not in fails:
        fails = fails.assign(detail=None)
    hidden = fails["column"].eq("student_id") & fails["detail"].isna()
    fails = fails.assign(detail=fails["detail"].astype("object").mask(hidden, HIDDEN_ID))
    for (t, rule), tf in fails.groupby(["table", "rule"], sort=True):
        df = frames[t]
        county = pd.Series([pd.NA] * len(df), dtype="object")
        q = _quarantine_rows(t, df, tf, county)
        positions = np.sort(tf["pos"].unique())
        for pos, r in zip(positions, q.itertuples(index=False), strict=True):
            subject = str(df["subject"].iloc[pos]) if t == "scores" else None
            cols = [c for c in re.split(r"[;,]", str(r.column)) if c]
            out.append(
                Problem("validate", t, int(r.source_row), rule, str(r.column),
                        _cell_headers(t, cols, subject, heads), str(r.message))
            )  # fmt: skip
    return out


def _cell_headers(
    table: str, columns: Sequence[str], subject: str | None, heads: Headers
) -> tuple[str, ...]:
    """The sender's headers of canonical ``columns`` of a row.

    A score row melted from wide columns lives in its subject's cells (科学成绩, 科学水平 …): the
    named score field's cell, else every cell of that subject (a duplicate, a cascade)."""
    if table == "scores" and not heads.long_scores:
        own = [h for (s, _), h in heads.wide.items() if s == subject]
        named = [heads.wide.get((str(subject), c)) for c in columns]
        return tuple(dict.fromkeys(h for h in named if h)) or tuple(own)
    out = []
    for c in columns:
        h = heads.pvs.get(c) if table == "scores" else None
        h = h or heads.cols.get(c)
        if h is None and c == "county_code":
            h = heads.cols.get("county_name")
        if h is not None:
            out.append(h)
    return tuple(dict.fromkeys(out))


def check_raw(
    raw: RawFile,
    lookups: Lookups,
    ingest_params: IngestParams,
    params: ValidateParams,
    mon: MonitoringParams,
    salt: str,
) -> Verdict:
    """The verdict on one raw file (pure: no file access)."""
    verdict = Verdict(raw.table, raw.source, manifest=dict(raw.meta))
    try:
        result = normalise_file(raw, lookups, ingest_params, salt)
    except EqmError as exc:
        verdict.error = exc
        return verdict
    verdict.manifest = dict(result.manifest)
    heads = header_meanings(raw, lookups)
    verdict.problems = _ingest_problems(result.quarantine, {str(c) for c in raw.data.columns})
    if result.manifest["data_rows"] == 0:
        verdict.findings.append({
            "rule": "empty_file", "severity": "error", "count": 0,
            "message": "文件没有数据行（只有表头或为空），可能是误发的空白模板；请换成填好的文件。"
            "（全轮运行时空文件会被跳过并给出提示，本检查按未通过处理。）",
        })  # fmt: skip
    tables = assemble([result], {}).tables
    present = {t for t, df in tables.items() if len(df)}
    verdict.scope = rule_scope(present or {raw.table}, mon)
    frames, fails, findings = validate_file(
        tables, result.quarantine, params, mon, frozenset(verdict.scope.skipped)
    )
    verdict.problems += _validate_problems(frames, fails, heads)
    verdict.problems.sort(key=lambda p: (p.source_row, p.stage, p.table, p.rule))
    verdict.findings += findings
    return verdict


# ------------------------------------------------------------------------------------------------
# Which table: the folder, else the header (ingest's scoring)
# ------------------------------------------------------------------------------------------------


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
            "county_reports、previous_problems），或核对表头是否用了模板中的列名。",
        )
    return next(t for t in RAW_TABLES if scores[t] == best)


# ------------------------------------------------------------------------------------------------
# Cells: where each problem sits in the sender's sheet
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


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


def summary_html(report: FileReport, max_rows: int) -> str:
    """The sender's summary in Chinese (template ``pipeline/templates/check.html.j2``)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(**_summary_context(report, max_rows))


def _summary_context(report: FileReport, max_rows: int) -> dict[str, Any]:
    v = report.verdict
    tbl = schemas.INPUT_TABLES.get(v.table or "")
    m = v.manifest
    heads = m.get("columns") or {}
    by_rule: dict[str, list[Problem]] = {}
    for p in v.problems:
        by_rule.setdefault(p.rule, []).append(p)
    rules = [
        {"rule": r, "label": schemas.rule_label(r), "n": len(ps), "fix": fix_for(r),
         "rows": ps[:max_rows], "more": max(0, len(ps) - max_rows)}
        for r, ps in sorted(by_rule.items(), key=lambda kv: (kv[1][0].source_row, kv[0]))
    ]  # fmt: skip
    scope = v.scope or Scope({}, {}, {})
    missing = []
    if tbl is not None and v.error is None:
        have = set(heads.values())
        missing = [
            c.label for c in tbl.columns
            if c.name not in have and not c.pii and c.name != "source_stage"
            and not (c.name == "county_code" and "county_name" in have)
            and not (c.name == "county_name" and "county_code" in have)
        ]  # fmt: skip
    return {
        "file": report.path.name,
        "source": v.source,
        "passed": v.passed,
        "table": v.table,
        "table_label": tbl.label if tbl is not None else None,
        "table_by": report.table_by,
        "table_scores": [
            {"label": schemas.INPUT_TABLES[t].label, "name": t, "n": n}
            for t, n in sorted(report.table_scores.items(), key=lambda kv: -kv[1])
            if n
        ],  # fmt: skip
        "error": None if v.error is None else str(v.error),
        "meta": m,
        "recognised": [
            {"header": h, "label": _column_label(v.table or "", c), "name": c}
            for h, c in sorted(heads.items(), key=lambda kv: kv[1])
        ],
        "ignored": list(m.get("ignored_columns") or []),
        "suspect": [
            {"header": h, "label": _column_label(v.table or "", c)}
            for h, c in sorted((m.get("suspect_columns") or {}).items())
        ],
        "missing": missing,
        "missing_indicators": [
            _column_label("schools", c) for c in m.get("missing_indicator_columns") or []
        ],
        "n_pii": int(m.get("dropped_pii_columns") or 0),
        "rules": rules,
        "n_problems": len(v.problems),
        "n_errors": sum(f["severity"] == "error" for f in v.findings),
        "findings": v.findings,
        "skipped": sorted(scope.skipped.items()),
        "within": sorted(scope.within.items()),
        "round_wide": sorted(scope.round_wide.items()),
        "workbook": report.workbook.name if report.workbook else None,
        "labels": schemas.rule_label,
    }


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
