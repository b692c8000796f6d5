"""``eqm check``: what ingest and validate make of one file (the pure core of the verdict).

The rules' scope for one file (:class:`Scope`: skipped, checked within the file, round-wide), what
the sender does about each row rule (:data:`FIXES`), the results (:class:`Problem`,
:class:`Verdict`) and the core :func:`check_raw`: ingest's :func:`normalise_file`, then
validate's row and table rules on the file's tables (:func:`validate_file`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.config import RAW_TABLES, MonitoringParams
from pipeline.errors import EqmError
from pipeline.ingest import assemble
from pipeline.ingest.headers import Lookups, header_target
from pipeline.ingest.normalise import normalise_file
from pipeline.ingest.readers import RawFile
from pipeline.ingest.sources import IngestParams
from pipeline.validate import _prepare, _row_failures, duplicates_and_cascade
from pipeline.validate.accounting import _conform_quarantine, _quarantine_rows
from pipeline.validate.params import DUPLICATE_RULES, TABLES, ValidateParams
from pipeline.validate.rules import _student_lookup
from pipeline.validate.tables import _table_findings

HIDDEN_ID = "{label}见原文件本行"  # shown instead of a (pseudonymised) student or teacher id
ID_COLUMNS = {  # canonical name -> the text shown instead of its value
    c.name: HIDDEN_ID.format(label=c.label)
    for t in schemas.INPUT_TABLES.values()
    for c in t.columns
    if c.pseudonymised
}

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
# Teacher and principal questionnaires, whose schools are in the students and schools files:
QUESTIONNAIRE_ALONE: Mapping[str, str] = {
    "unlinked_questionnaire": "问卷的学校要在学生数据和学校办学条件文件中查找（同一年份、学校编号），"
    "本文件中没有",
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
    if present & {"teachers", "principals"}:
        skipped.update(QUESTIONNAIRE_ALONE)
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
    "ingest.bad_teacher_id": "按文本重新填写或导出教师编号（不要让 Excel 转成数字）；编号只含字母、数字、短横线和下划线。",
    "ingest.bad_answer": "问卷题目只填 1–4 的整数或问卷上的作答文字（如 非常同意、经常）；未作答的留空。",
    "ingest.county_mismatch": "核对该行属于哪个区县，使区县代码与区县名称一致。",
    "ingest.id_number_in_field": "把身份证号从该单元格删去，填入该列应有的内容（如学校标识码）；身份证号不需要报送。",
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
    "duplicate_teacher": "同一教师每个年份只能有一行：核对这些行，删除错误的一行或改正教师编号。",
    "duplicate_principal": "每所学校每年只能有一份校长问卷：删除重复或错误的一行，或改正学校编号。",
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
    fails, dup_findings = duplicates_and_cascade(frames, first, iq, params)
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
    hidden_text = fails["column"].map(ID_COLUMNS)
    hidden = hidden_text.notna() & fails["detail"].isna()
    fails = fails.assign(detail=fails["detail"].astype("object").mask(hidden, hidden_text))
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
