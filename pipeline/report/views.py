"""Pure core of the report stage: processed tables in, display-ready view models out.

Nothing here computes a statistic. Every number shown is a value of one row of
``indicators.parquet``, ``resource_balance.parquet``, ``county_reports.parquet`` (province / nation
benchmarks), ``problems.parquet`` or the validation outputs, formatted with the decimals of
``params.yaml`` (scores 1, percentages 1, rates 3). The only derived figures are *counts of rows*
(schools passing the 6-of-7 rule, problems per severity, rows set aside per rule) and comparisons of
a shown value with a regulatory threshold (the 优质均衡 quality item: level ≥ Ⅲ and 校际差异率 < 0.15).

Suppression: a row flagged ``suppressed`` (fewer than 10 students or 3 schools, decided by the
indicators stage) is shown as "—" with a footnote and is never drawn in a chart. As a safety net the
same rule is re-applied here from ``n_students`` / ``n_schools`` (params ``min_students`` /
``min_schools``), so a row that slipped through unflagged is still hidden.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams

SUPPRESSED = "—"
OFFICIAL_NOTE = "标 * 的数值取自官方区县监测报告。"
MISSING = "…"

SCORE_INDICATORS = {"mean_score", "gap_mean_score", "mean_homework_minutes", "mean_sleep_hours"}
RATE_INDICATORS = {"school_difference_rate", "eta_squared", "school_mean_cv"}
BURDEN_INDICATORS = (
    "pct_homework_over_limit",
    "pct_sleep_sufficient",
    "pct_myopia",
    "pct_fitness_pass",
)
BURDEN_MEANS = ("mean_homework_minutes", "mean_sleep_hours")
BURDEN_SHORT = {
    "pct_homework_over_limit": "作业超时",
    "pct_sleep_sufficient": "睡眠达标",
    "pct_myopia": "视力不良",
    "pct_fitness_pass": "体质达标",
}
LEVEL_PCT = tuple(f"pct_level_{lv}" for lv in schemas.LEVELS)
SEVERITY_ORDER = ("高", "中", "低")
STAGE_ORDER = ("primary", "junior")

PREVIOUS_STATUS_LABELS = {
    "new": "新发现",
    "improved": "已改善",
    "unchanged": "无显著变化",
    "worse": "恶化",
    "not re-measured": "本轮未监测",
}
# Which side of a benchmark is the bad one for the burden / health items (+1: higher is worse).
# The evidence stage tests exactly this one-sided direction; the report only names it.
BURDEN_BAD_SIDE = {
    "pct_homework_over_limit": 1,
    "pct_sleep_sufficient": -1,
    "pct_myopia": 1,
    "pct_fitness_pass": -1,
}
STATUS_LABELS = {
    "open": "待整改", "new": "待整改", "in_progress": "整改中", "ongoing": "整改中",
    "closed": "已销号", "done": "已销号", "resolved": "已销号",
}  # fmt: skip
DOMAIN_LABELS = {
    "achievement": "学业表现", "academic": "学业表现", "balance": "均衡状况", "equity": "均衡状况",
    "resource": "资源配置", "resources": "资源配置", "burden": "课业负担", "health": "身心健康",
    "burden_health": "负担与健康", "data": "数据质量",
}  # fmt: skip
GROUP_VALUE_LABELS = {
    "gender": schemas.GENDER_LABELS,
    "urban_rural": schemas.URBAN_RURAL_LABELS,
    "left_behind": {"left_behind": "留守", "not_left_behind": "非留守", "true": "留守", "false": "非留守", "1": "留守", "0": "非留守", "yes": "留守", "no": "非留守"},
    "migrant": {"migrant": "随迁", "non_migrant": "非随迁", "true": "随迁", "false": "非随迁", "1": "随迁", "0": "非随迁", "yes": "随迁", "no": "非随迁"},
    "ses_quartile": {
        "q1": "最低25%", "q2": "第二个25%", "q3": "第三个25%", "q4": "最高25%",
        "1": "最低25%", "2": "第二个25%", "3": "第三个25%", "4": "最高25%",
        "low": "最低25%", "high": "最高25%",
    },
}  # fmt: skip
TABLE_LABELS = {
    t: tbl.label for t, tbl in {**schemas.INPUT_TABLES, **schemas.OUTPUT_TABLES}.items()
}

KEY = ("year", "county_code", "grade", "subject", "indicator", "group_var", "group_value")


# ------------------------------------------------------------------------------------------------
# Parameters the views need (a slice of ReportParams, so this module has no config dependency)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewRules:
    score_decimals: int
    percent_decimals: int
    rate_decimals: int
    resource_decimals: Mapping[str, int]  # L1..L7 -> decimals of the county value
    min_students: int
    min_schools: int
    quality_sdr_max: float
    quality_min_level: str
    # indicator -> grade -> the regulation's standard in words (e.g. "书面作业每天 ≤ 60 分钟")
    burden_standards: Mapping[str, Mapping[int, str]] = dataclasses.field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------


def _isnum(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def _flag(v: Any) -> bool:
    """A boolean cell that may be NA or a numpy bool."""
    return (
        v is not None
        and v is not pd.NA
        and not (isinstance(v, float) and math.isnan(v))
        and bool(v)
    )


def _num(v: Any) -> float | None:
    if not _isnum(v):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def kind_of(indicator: str) -> str:
    ind = str(indicator or "")
    if ind == "achievement_level":
        return "level"
    if ind in ("n_met", "n_schools", "n_students"):
        return "count"
    if ind.startswith("pct_"):
        return "percent"
    if ind in SCORE_INDICATORS:
        return "score"
    if ind in RATE_INDICATORS or "cv" in ind or "rate" in ind or (len(ind) == 2 and ind[0] == "L"):
        return "rate"
    return "score"


@dataclass(frozen=True)
class Fmt:
    rules: ViewRules

    def decimals(self, kind: str) -> int:
        return {
            "percent": self.rules.percent_decimals,
            "rate": self.rules.rate_decimals,
            "count": 0,
        }.get(kind, self.rules.score_decimals)

    def num(self, v: Any, kind: str = "score", decimals: int | None = None) -> str:
        f = _num(v)
        if f is None:
            return MISSING
        if kind == "level":
            return level_label(f)
        d = self.decimals(kind) if decimals is None else decimals
        text = f"{f:.{d}f}"
        if text.startswith("-"):
            text = "−" + text[1:]  # a real minus sign
            if set(text[1:]) <= {"0", "."}:
                text = text[1:]
        return text + ("%" if kind == "percent" else "")

    def spread(self, v: Any, kind: str) -> str:
        """An SE or a difference: of a percentage in percentage points (个百分点), never "%";
        of a level (coded 1–4) in levels (级)."""
        if kind == "percent":
            text = self.num(v, "score", self.rules.percent_decimals)
            return text if text == MISSING else f"{text} 个百分点"
        if kind == "level":
            text = self.num(v, "count")
            return text if text == MISSING else f"{text} 级"
        return self.num(v, kind)

    def ci(self, row: Mapping | None, kind: str) -> str:
        if row is None or row.get("suppressed"):
            return SUPPRESSED if row is not None else MISSING
        lo, hi = _num(row.get("ci_low")), _num(row.get("ci_high"))
        if lo is None or hi is None:
            return MISSING
        return f"{self.num(lo, kind)}～{self.num(hi, kind)}"

    def est(self, row: Mapping | None, kind: str | None = None) -> str:
        """The estimate of an indicator row: "—" when suppressed, "…" when absent."""
        if row is None:
            return MISSING
        if row.get("suppressed"):
            return SUPPRESSED
        return self.num(row.get("estimate"), kind or kind_of(row.get("indicator", "")))

    def p(self, v: Any) -> str:
        """A p-value to 3 decimals; one more where rounding would carry it across 0.05."""
        f = _num(v)
        if f is None:
            return MISSING
        if f < 0.001:
            return "<0.001"
        for text in (f"{f:.3f}", f"{f:.4f}"):
            if (float(text) < 0.05) == (f < 0.05):
                return text
        return "<0.05"

    def num_against(self, v: Any, kind: str, threshold: float) -> str:
        """:meth:`num`, with one more decimal where the value would print as the threshold it
        is not (0.1497 → "0.1497", not "0.150" next to "below 0.15")."""
        f, d = _num(v), self.decimals(kind)
        if f is None or f == threshold:
            return self.num(v, kind)
        for extra in (0, 1, 2):
            if round(f, d + extra) != round(threshold, d + extra):
                return self.num(f, kind, d + extra)
        step = 10.0 ** -(d + 2)  # closer still: round away from the threshold, keeping the side
        return self.num((math.floor if f < threshold else math.ceil)(f / step) * step, kind, d + 2)

    def ci_against(self, row: Mapping | None, kind: str, threshold: float) -> str:
        """:meth:`ci` with :meth:`num_against` bounds."""
        text = self.ci(row, kind)
        if row is None or text in (MISSING, SUPPRESSED):
            return text
        lo, hi = row.get("ci_low"), row.get("ci_high")
        return f"{self.num_against(lo, kind, threshold)}～{self.num_against(hi, kind, threshold)}"


def level_label(v: Any) -> str:
    """Label of a county achievement level coded 1–4 (Ⅰ…Ⅳ) or 'I'…'IV'."""
    code = level_code(v)
    return schemas.LEVEL_LABELS[code] if code else MISSING


def level_code(v: Any) -> str | None:
    if isinstance(v, str):
        return schemas.LEVEL_CODES.get(v.strip().lower(), v if v in schemas.LEVELS else None)
    f = _num(v)
    if f is None:
        return None
    k = int(round(f))
    return schemas.LEVELS[k - 1] if 1 <= k <= 4 else None


def group_label(group_var: str, group_value: str) -> str:
    """``female-male`` → ``女 − 男``; a plain value → its label; unknown codes shown as they are."""
    labels = GROUP_VALUE_LABELS.get(group_var, {})
    parts = [p for p in str(group_value).split("-")] if group_value else []
    shown = [labels.get(p.strip().lower(), p) for p in parts]
    return " − ".join(shown)


def method_label(method: Any) -> str:
    """A short Chinese description of the ``method`` column (written in English by indicators)."""
    m = _txt(method)
    if not m:
        return MISSING
    if m.startswith("official"):
        page = re.search(r"p\.\s*(\S+)", m)
        number = page.group(1).strip("第页") if page else ""
        return "官方区县监测报告" + (f"（第 {number} 页）" if number else "")
    parts = []
    for key, label in (
        ("ICC(1)", "ICC(1) 单因素方差分析"), ("eta squared", "η² 方差分解"), ("CV of school means", "校均分差异系数"),
        ("difference of weighted means", "加权均值差"), ("weighted mean", "加权平均"),
        ("weighted percentage", "加权百分比"), ("weighted SD", "加权标准差"), ("cut scores", "均值对照分数线"),
        ("highest level", "达到比例规则"),
    ):  # fmt: skip
        if key in m:
            parts.append(label)
            break
    if "JKn" in m or "jackknife" in m.lower():
        parts.append("刀切法（JKn）标准误")
    pv = re.search(r"(\d+) plausible values", m)
    if pv:
        parts.append(f"{pv.group(1)} 个可能值按 Rubin 规则合并")
    return "，".join(parts) or m


def cell_label(grade: Any, subject: str) -> str:
    g = schemas.GRADE_LABELS.get(int(grade), f"{grade}年级") if _isnum(grade) else ""
    return f"{g}{schemas.SUBJECT_LABELS.get(subject, subject)}"


# ------------------------------------------------------------------------------------------------
# Preparing the input tables
# ------------------------------------------------------------------------------------------------


def prepare_indicators(ind: pd.DataFrame, rules: ViewRules) -> pd.DataFrame:
    """Normalise keys, apply the suppression safety net, and keep one row per key.

    When a county report printed a value (``source = official``) it wins over the computed one
    (domain rule: "an official value from a county report wins").
    """
    if ind.empty:
        return ind.assign(source_rank=pd.Series(dtype="int64"))
    n_st = pd.to_numeric(ind["n_students"], errors="coerce")
    n_sc = pd.to_numeric(ind["n_schools"], errors="coerce")
    flagged = ind["suppressed"].astype("boolean").fillna(False).astype(bool)
    small = (n_st < rules.min_students).fillna(False) | (n_sc < rules.min_schools).fillna(False)
    out = ind.assign(
        county_code=ind["county_code"].astype(str),
        subject=ind["subject"].fillna("").astype(str),
        group_var=ind["group_var"].fillna("").astype(str),
        group_value=ind["group_value"].fillna("").astype(str),
        suppressed=(flagged | small.astype(bool)),
        source_rank=(ind["source"] != "official").astype("int64"),
    )
    return (
        out.sort_values([*KEY, "source_rank"], kind="stable")
        .drop_duplicates(list(KEY), keep="first")
        .reset_index(drop=True)
    )


def _records_by(df: pd.DataFrame, key: Sequence[str]) -> dict[tuple, dict]:
    recs = df.to_dict("records")
    return {tuple(_key_part(r[k]) for k in key): r for r in recs}


def _key_part(v: Any) -> Any:
    if isinstance(v, float) and not math.isnan(v) and v.is_integer():
        return int(v)
    if hasattr(v, "item"):
        return v.item()
    return v


class Lookup:
    """Fast access to indicator rows and province / nation benchmark rows."""

    def __init__(self, ind: pd.DataFrame, bench: pd.DataFrame):
        self.rows = _records_by(ind, KEY) if not ind.empty else {}
        self.bench: dict[tuple, dict] = {}
        self.bench_any: dict[tuple, dict] = {}
        if bench is not None and not bench.empty:
            b = bench.assign(
                county_code=bench["county_code"].astype(str),
                subject=bench["subject"].fillna("").astype(str),
                group_var=bench.get("group_var", pd.Series("", index=bench.index))
                .fillna("")
                .astype(str),
                group_value=bench.get("group_value", pd.Series("", index=bench.index))
                .fillna("")
                .astype(str),
            )
            b = b[b["scope"].isin(["province", "nation"])].sort_values(
                [*KEY, "scope"], kind="stable"
            )
            self.bench = _records_by(b, (*KEY, "scope"))
            no_county = [k for k in KEY if k != "county_code"]
            self.bench_any = _records_by(
                b.drop_duplicates([*no_county, "scope"]), (*no_county, "scope")
            )

    def get(self, year, county, grade, subject, indicator, gv="", gval="") -> dict | None:
        return self.rows.get((year, county, _key_part(grade), subject, indicator, gv, gval))

    def benchmark(
        self, scope, year, county, grade, subject, indicator, gv="", gval=""
    ) -> dict | None:
        g = _key_part(grade)
        hit = self.bench.get((year, county, g, subject, indicator, gv, gval, scope))
        if hit is None:
            hit = self.bench_any.get((year, g, subject, indicator, gv, gval, scope))
        if hit is None:
            return None
        # A benchmark row reads like an indicator row: its printed value, never suppressed.
        return {
            "estimate": hit.get("value"),
            "se": hit.get("se"),
            "indicator": indicator,
            "suppressed": False,
        }


def subject_cells(
    ind: pd.DataFrame, year: int, county: str, monitoring: MonitoringParams
) -> list[tuple[int, str]]:
    """(grade, subject) pairs with achievement rows, in the NAEQ rotation's order."""
    sel = ind[(ind["year"] == year) & (ind["county_code"] == county) & (ind["subject"] != "")]
    pairs = sorted(
        {(int(g), s) for g, s in zip(sel["grade"], sel["subject"], strict=True) if _isnum(g)}
    )
    order = list(schemas.SUBJECT_LABELS)
    rotation = monitoring.rotation.get(year, {})

    def rank(p):
        g, s = p
        rot = list(rotation.get(g, ()))
        return (
            g,
            rot.index(s) if s in rot else len(rot) + (order.index(s) if s in order else 99),
            s,
        )

    return sorted(pairs, key=rank)


def questionnaire_grades(ind: pd.DataFrame, year: int, county: str) -> list[int]:
    sel = ind[(ind["year"] == year) & (ind["county_code"] == county) & (ind["subject"] == "")]
    return sorted({int(g) for g in sel["grade"] if _isnum(g)})


# ------------------------------------------------------------------------------------------------
# Shared pieces
# ------------------------------------------------------------------------------------------------


_NUMERIC = re.compile(r"^[\s0-9.,%/*+<>≤≥～〜−\-—…·项所人（）()]*$")
_PLACEHOLDERS = {"", SUPPRESSED, MISSING}


def _column_align(cells: Sequence[str]) -> str:
    """One alignment for a whole column: right ('n') when every real value in it is a number
    (placeholders — and … do not count), otherwise left ('t'), so a column never mixes the two."""
    real = [c for c in cells if c.strip() not in _PLACEHOLDERS]
    return "n" if real and all(_NUMERIC.match(c) for c in real) else "t"


def _table(
    columns: Sequence[str],
    rows: list[list[str]],
    note: str | None = None,
    align: Sequence[str] | None = None,
) -> dict:
    """A table for the ``table`` macro.

    ``align`` gives each column's CSS classes ('t' left, 'n' right, 'c' centred, 'id' an identifier
    that breaks only at its hyphens, 'wrap' never kept on one line); without it each column gets
    :func:`_column_align`'s guess. Cells of up to 14 characters do not wrap.
    """
    rows = [[str(c) for c in r] for r in rows]
    width = max([len(columns), *[len(r) for r in rows]])
    cols = [[r[i] for r in rows if i < len(r)] for i in range(width)]
    col_cls = list(align) if align is not None else [_column_align(c) for c in cols]
    classes = [
        [col_cls[i] + (" nw" if len(c) <= 14 and "wrap" not in col_cls[i] else "")
         for i, c in enumerate(r)]
        for r in rows
    ]  # fmt: skip
    has_sup = any(SUPPRESSED in str(c) for r in rows for c in r)
    has_missing = any(MISSING in str(c) for r in rows for c in r)
    return {
        "columns": list(columns),
        "rows": rows,
        "classes": classes,
        "has_suppressed": has_sup,
        "has_missing": has_missing,
        "note": note,
    }


def _point(row: Mapping | None) -> tuple[float, float | None, float | None] | None:
    if row is None or row.get("suppressed"):
        return None
    est = _num(row.get("estimate"))
    if est is None:
        return None
    return (est, _num(row.get("ci_low")), _num(row.get("ci_high")))


def light(state: str, text: str | None = None) -> dict:
    """A traffic-light cell: state ∈ pass | warn | fail | na; text says it in words (grey print)."""
    words = {"pass": "达标", "warn": "需关注", "fail": "未达标", "na": "无法判定"}
    return {"state": state, "text": text or words[state]}


def parse_evidence(text: Any) -> dict:
    """The evidence JSON of a problem (shape owned by the evidence stage), read defensively.

    Returns ``{"rows": [...], "benchmark_rows": [...], "note", "cause_hint", "previous"}``; a bare
    list is taken as the rows.
    """
    empty = {"rows": [], "benchmark_rows": [], "note": "", "cause_hint": "", "previous": None}
    if not isinstance(text, str) or not text.strip():
        return empty
    try:
        obj = json.loads(text)
    except ValueError:
        return empty
    if isinstance(obj, list):
        return {**empty, "rows": [r for r in obj if isinstance(r, dict)]}
    if not isinstance(obj, dict):
        return empty
    rows = obj.get("rows") if isinstance(obj.get("rows"), list) else []
    bench = obj.get("benchmark_rows") if isinstance(obj.get("benchmark_rows"), list) else []
    prev = obj.get("previous") if isinstance(obj.get("previous"), dict) else None
    return {
        "rows": [r for r in rows if isinstance(r, dict)],
        "benchmark_rows": [r for r in bench if isinstance(r, dict)],
        "note": _txt(obj.get("note")),
        "cause_hint": _txt(obj.get("cause_hint")),
        "previous": prev,
    }


def _problems_for(problems: pd.DataFrame, year: int, county: str) -> pd.DataFrame:
    if problems is None or problems.empty:
        return pd.DataFrame(columns=schemas.PROBLEMS.names)
    p = problems[(problems["year"] == year) & (problems["county_code"].astype(str) == county)]
    sev = p["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}).fillna(9)
    return (
        p.assign(_sev=sev).sort_values(["_sev", "problem_id"], kind="stable").drop(columns="_sev")
    )


def _txt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)


# ------------------------------------------------------------------------------------------------
# County report
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    indicators: pd.DataFrame  # prepared (prepare_indicators)
    benchmarks: pd.DataFrame
    resource_balance: pd.DataFrame
    school_compliance: pd.DataFrame
    problems: pd.DataFrame
    quarantine: pd.DataFrame | None
    validation_summary: Any
    manifest: Mapping | None
    previous_problems: pd.DataFrame | None = None  # validated previous_problems (optional input)


FIRST_ROUND_TEXT = "首轮监测，无上一轮问题清单可对照"


def is_first_round(inp: Inputs, year: int) -> bool:
    """True when the data holds no previous round for ``year``.

    A previous round exists when ``previous_problems`` has a row of an earlier year (the evidence
    stage compares against the latest such year) or when any problem of ``year`` carries a
    re-check status other than 'new' (so a report without the previous list still shows them).
    """
    prev = inp.previous_problems
    earlier = (
        prev is not None
        and not prev.empty
        and "year" in prev
        and bool((pd.to_numeric(prev["year"], errors="coerce") < year).any())
    )
    if earlier:
        return False
    p = inp.problems
    if p is None or p.empty or "previous_status" not in p:
        return True
    st = p.loc[p["year"] == year, "previous_status"].fillna("").astype(str)
    return bool(st.isin(["", "new"]).all())


def county_view(
    inp: Inputs, lk: Lookup, year: int, county: str, monitoring: MonitoringParams, rules: ViewRules
) -> dict:
    """Everything the county template shows for one county and round."""
    f = Fmt(rules)
    name = monitoring.county_name(county)
    cells = subject_cells(inp.indicators, year, county, monitoring)
    q_grades = questionnaire_grades(inp.indicators, year, county)
    probs = _problems_for(inp.problems, year, county)

    achievement = _achievement(f, lk, year, county, cells)
    balance = _balance(f, lk, year, county, cells, rules)
    resources = _resources(f, inp, year, county, rules)
    burden = _burden(f, lk, year, county, q_grades, probs, rules)
    first = is_first_round(inp, year)
    problems = _problem_section(f, probs, first_round=first)
    quality = _quality_items(f, lk, year, county, cells, rules)
    findings = _findings(f, lk, year, county, cells, q_grades, resources, problems, rules)
    return {
        "kind": "county",
        "year": year,
        "county_code": county,
        "county_name": name,
        "title": f"{name}{year}年义务教育质量监测结果报告",
        "cells": [cell_label(g, s) for g, s in cells],
        "findings": findings,
        "quality": quality,
        "achievement": achievement,
        "balance": balance,
        "resources": resources,
        "burden": burden,
        "problems": problems,
        "methods": _methods(f, inp, lk, year, county, cells, q_grades, rules),
    }


def _achievement(f: Fmt, lk: Lookup, year, county, cells) -> dict:
    rows, level_rows, chart_rows, level_chart = [], [], [], []
    for g, s in cells:
        label = cell_label(g, s)
        mean = lk.get(year, county, g, s, "mean_score")
        prov = lk.benchmark("province", year, county, g, s, "mean_score")
        nat = lk.benchmark("nation", year, county, g, s, "mean_score")
        med = lk.get(year, county, g, s, "pct_medium_or_above")
        good = lk.get(year, county, g, s, "pct_good_or_above")
        lvl = lk.get(year, county, g, s, "achievement_level")
        rows.append([
            label,
            f.est(mean, "score") + (" *" if mean and mean.get("source") == "official" else ""),
            f.ci(mean, "score"),
            f.est(prov, "score"),
            f.est(nat, "score"),
            f.est(med, "percent"),
            f.est(lk.benchmark("nation", year, county, g, s, "pct_medium_or_above"), "percent"),
            f.est(good, "percent"),
            f.est(lvl, "level"),
        ])  # fmt: skip
        chart_rows.append(
            (label, {"county": _point(mean), "province": _point(prov), "nation": _point(nat)})
        )
        for scope, scope_label in (("county", "本县"), ("province", "全省"), ("nation", "全国")):
            lv = [
                lk.get(year, county, g, s, ind)
                if scope == "county"
                else lk.benchmark(scope, year, county, g, s, ind)
                for ind in LEVEL_PCT
            ]
            shown = [f.est(r, "percent") for r in lv]
            if scope == "county" or any(r is not None for r in lv):
                level_rows.append([label if scope == "county" else "", scope_label, *shown])
            pts = [_point(r) for r in lv]
            if all(p is not None for p in pts):
                level_chart.append((f"{label}·{scope_label}", [p[0] for p in pts]))
    return {
        "table": _table(
            [
                "年级学科",
                "本县均值",
                "95%置信区间",
                "全省均值",
                "全国均值",
                "中等及以上",
                "全国中等及以上",
                "良好及以上",
                "学业水平",
            ],
            rows,
            note=OFFICIAL_NOTE if any("*" in r[1] for r in rows) else None,
        ),
        "levels": _table(
            ["年级学科", "范围", *[schemas.LEVEL_LABELS[lv] for lv in schemas.LEVELS]], level_rows
        ),
        "chart_rows": chart_rows,
        "level_chart_rows": level_chart,
    }


def _balance(f: Fmt, lk: Lookup, year, county, cells, rules: ViewRules) -> dict:
    sdr_rows, sdr_chart, gap_rows, gap_chart = [], [], [], []
    for g, s in cells:
        label = cell_label(g, s)
        sdr = lk.get(year, county, g, s, "school_difference_rate")
        sdr_rows.append([
            label,
            (
                f.num_against(sdr["estimate"], "rate", rules.quality_sdr_max)
                if sdr and not sdr.get("suppressed")
                else f.est(sdr, "rate")
            )
            + (" *" if sdr and sdr.get("source") == "official" else ""),
            f.ci_against(sdr, "rate", rules.quality_sdr_max),
            f.est(lk.get(year, county, g, s, "eta_squared"), "rate"),
            f.est(lk.get(year, county, g, s, "school_mean_cv"), "rate"),
            _n(sdr, "n_schools"),
            _quality_sdr_light(sdr, rules)["text"],
        ])  # fmt: skip
        sdr_chart.append((label, {"county": _point(sdr)}))
    gaps = lk_rows(lk, year, county, "gap_mean_score")
    for r in gaps:
        label = cell_label(r["grade"], r["subject"])
        gl = f"{schemas.GROUP_VAR_LABELS.get(r['group_var'], r['group_var'])}：{group_label(r['group_var'], r['group_value'])}"
        gap_rows.append(
            [label, gl, f.est(r, "score"), f.ci(r, "score"), _gap_p(f, r), _n(r, "n_students")]
        )
        gap_chart.append((f"{label} {gl}", {"county": _point(r)}))
    return {
        "sdr": _table(
            [
                "年级学科",
                "校际差异率",
                "95%置信区间",
                "η²",
                "校均分差异系数",
                "学校数",
                "是否低于标准",
            ],
            sdr_rows,
            note=OFFICIAL_NOTE if any("*" in r[1] for r in sdr_rows) else None,
        ),
        "sdr_chart_rows": sdr_chart,
        "gaps": _table(
            ["年级学科", "群体差异", "平均成绩差", "95%置信区间", "p 值", "学生数"], gap_rows
        ),
        "gap_chart_rows": gap_chart,
    }


def _gap_p(f: Fmt, row: Mapping) -> str:
    """Two-sided p-value of a gap against no difference, ``2·Φ(−|estimate/se|) = erfc(|z|/√2)``.

    The indicators stage's definition (``pipeline.indicators.survey.normal_p_value``, normal
    reference, jackknife SE of the difference); hidden like the estimate when suppressed.
    """
    if row.get("suppressed"):
        return SUPPRESSED
    est, se = _num(row.get("estimate")), _num(row.get("se"))
    if est is None or se is None or se <= 0:
        return MISSING
    return f.p(math.erfc(abs(est / se) / math.sqrt(2.0)))


def lk_rows(lk: Lookup, year, county, indicator) -> list[dict]:
    """All rows of one indicator for a county-year, in key order."""
    out = [r for k, r in lk.rows.items() if k[0] == year and k[1] == county and k[4] == indicator]
    return sorted(
        out,
        key=lambda r: (_key_part(r["grade"]) or 0, r["subject"], r["group_var"], r["group_value"]),
    )


def _n(row: Mapping | None, col: str) -> str:
    """A sample size; hidden like the estimate when the row is suppressed."""
    if row is None:
        return MISSING
    if _flag(row.get("suppressed")):
        return SUPPRESSED
    v = _num(row.get(col))
    return MISSING if v is None else f"{int(v)}"


UNSURE_MARK = "†"  # a 校际差异率 verdict whose 95% interval contains the standard


def _sdr_verdict(sdr: Mapping, thr: float) -> str | None:
    """'below' / 'above' / 'unsure' (:func:`pipeline.schemas.icc_verdict`); None without a CI."""
    lo, hi = _num(sdr.get("ci_low")), _num(sdr.get("ci_high"))
    if lo is None or hi is None:
        return None
    return str(schemas.icc_verdict(lo, hi, thr))


def _quality_sdr_light(sdr: Mapping | None, rules: ViewRules) -> dict:
    """Pass/fail on the value (the regulation's rule); the text adds what the 95% CI says.

    The CI part is :func:`pipeline.schemas.icc_verdict` of the row's interval: wholly below the
    threshold, wholly above it, or containing it; nothing is added for a row without an
    interval (an official value printed without SE).
    """
    if sdr is None or sdr.get("suppressed") or _num(sdr.get("estimate")) is None:
        return light("na")
    thr = rules.quality_sdr_max
    verdict = _sdr_verdict(sdr, thr)
    ci = ""
    if verdict is not None:
        ci = {
            "below": f"；置信区间整体低于 {thr:g}",
            "above": f"；置信区间整体高于 {thr:g}",
            "unsure": f"；置信区间含 {thr:g}，尚难定论",
        }[verdict]
    return (
        light("pass", f"是（< {thr:g}{ci}）")
        if _num(sdr["estimate"]) < thr
        else light("fail", f"否（≥ {thr:g}{ci}）")
    )


def _sdr_findings(f: Fmt, lk: Lookup, year, county, cells, rules: ViewRules) -> list[str]:
    """Headline sentences on 校际差异率: the subjects at or above the standard, and how many of the
    verdicts the 95% intervals bear out (wholly above / wholly below) or leave open (interval
    contains the standard: within sampling error with 8–12 schools)."""
    thr = rules.quality_sdr_max
    bad, n_good = [], 0
    bad_v: list[str | None] = []
    good_v: list[str | None] = []
    for g, s in cells:
        sdr = lk.get(year, county, g, s, "school_difference_rate")
        state = _quality_sdr_light(sdr, rules)["state"]
        if state == "fail":
            bad.append(f"{cell_label(g, s)} {f.num_against(sdr['estimate'], 'rate', thr)}")
            bad_v.append(_sdr_verdict(sdr, thr))
        elif state == "pass":
            n_good += 1
            good_v.append(_sdr_verdict(sdr, thr))
    out = []
    if bad:
        text = f"校际差异率未低于 {thr:g} 的学科：{'、'.join(bad)}"
        n_sure, n_open = bad_v.count("above"), bad_v.count("unsure")
        if n_sure == len(bad):
            text += f"，95% 置信区间均整体高于 {thr:g}"
        elif n_open == len(bad):
            text += f"；各项的 95% 置信区间均包含 {thr:g}，尚难定论"
        else:
            parts = []
            if n_sure:
                parts.append(f"{n_sure} 项的 95% 置信区间整体高于 {thr:g}")
            if n_open:
                parts.append(f"{n_open} 项的区间包含 {thr:g}，尚难定论")
            if parts:  # a value without an interval (an official one) is not described
                text += "；其中 " + "，".join(parts)
        out.append(text + "。")
    n_hidden = len(cells) - len(bad) - n_good
    if n_good and not bad:
        text = f"{'已显示的' if n_hidden else ''}各学科校际差异率均低于 {thr:g}"
        if good_v.count("unsure"):
            text += f"，但其中 {good_v.count('unsure')} 项的 95% 置信区间包含 {thr:g}，尚难定论"
        out.append(text + "。")
    if n_hidden and (bad or n_good):
        out.append(f"另有 {n_hidden} 个学科的校际差异率因样本不足未予显示。")
    elif n_hidden:
        out.append("校际差异率因样本不足未予显示。")
    return out


def _quality_items(f: Fmt, lk: Lookup, year, county, cells, rules: ViewRules) -> list[dict]:
    """The 优质均衡 quality item per grade × subject: level ≥ Ⅲ and 校际差异率 < 0.15."""
    out = []
    need = schemas.LEVELS.index(rules.quality_min_level)
    for g, s in cells:
        lvl = lk.get(year, county, g, s, "achievement_level")
        sdr = lk.get(year, county, g, s, "school_difference_rate")
        code = None if lvl is None or lvl.get("suppressed") else level_code(lvl.get("estimate"))
        sdr_ok = _quality_sdr_light(sdr, rules)["state"]
        if code is None or sdr_ok == "na":
            state = light("na")
        else:
            lvl_ok = schemas.LEVELS.index(code) >= need
            n_ok = int(lvl_ok) + int(sdr_ok == "pass")
            state = light(
                {2: "pass", 1: "warn", 0: "fail"}[n_ok],
                {2: "达标", 1: "部分达标", 0: "未达标"}[n_ok],
            )
        out.append(
            {
                "label": cell_label(g, s),
                "level": f.est(lvl, "level"),
                "sdr": f.est(sdr, "rate"),
                "light": state,
            }
        )
    return out


def _resources(f: Fmt, inp: Inputs, year, county, rules: ViewRules) -> dict:
    rb = inp.resource_balance
    rb = (
        rb[(rb["year"] == year) & (rb["county_code"].astype(str) == county)]
        if rb is not None and not rb.empty
        else rb
    )
    rows, lights, panels, stage_lights = [], [], [], []
    stages = []
    if rb is not None and not rb.empty:
        stages = [s for s in STAGE_ORDER if s in set(rb["stage"])] + sorted(
            set(rb["stage"]) - set(STAGE_ORDER)
        )
        for st in stages:
            sub = rb[rb["stage"] == st].sort_values("indicator")
            cats, cvs = [], []
            for r in sub.to_dict("records"):
                ind = r["indicator"]
                passes = r.get("passes")
                lt = (
                    light("na") if not _isnum(passes) else light("pass" if bool(passes) else "fail")
                )
                rows.append([
                    schemas.STAGE_LABELS.get(st, st), f"{ind} {schemas.RESOURCE_INDICATORS.get(ind, '')}",
                    f.num(r.get("county_value"), "score", rules.resource_decimals.get(ind, 2)),
                    f.num(r.get("cv"), "rate"), f"≤ {f.num(r.get('threshold'), 'rate')}",
                    _n(r, "n_schools"), lt["text"],
                ])  # fmt: skip
                lights.append(
                    {
                        "label": f"{schemas.STAGE_LABELS.get(st, st)} {ind} 差异系数",
                        "value": f.num(r.get("cv"), "rate"),
                        "light": lt,
                    }
                )
                cats.append(ind)
                cvs.append(_num(r.get("cv")))
            n_ok = sum(
                1 for r in sub.to_dict("records") if _isnum(r.get("passes")) and bool(r["passes"])
            )
            bad = [f"{r['indicator']} {f.num(r.get('cv'), 'rate')}" for r in sub.to_dict("records")
                   if _isnum(r.get("passes")) and not bool(r["passes"])]  # fmt: skip
            stage_lights.append({
                "label": f"{schemas.STAGE_LABELS.get(st, st)}资源配置差异系数",
                "value": f"{n_ok} / {len(sub)} 项达标" + (f"（未达标：{'、'.join(bad)}）" if bad else ""),
                "standard": f"每项 ≤ {f.num(sub['threshold'].iloc[0], 'rate')}" if len(sub) else "",
                "light": light("fail" if bad else "pass"),
            })  # fmt: skip
            ref = _num(sub["threshold"].iloc[0]) if len(sub) else None
            panels.append((schemas.STAGE_LABELS.get(st, st), cats, {"cv": cvs}, ref))
    sc = inp.school_compliance
    sc = (
        sc[(sc["year"] == year) & (sc["county_code"].astype(str) == county)]
        if sc is not None and not sc.empty
        else sc
    )
    counts, failing = [], []
    if sc is not None and not sc.empty:
        sc_stages = [s for s in STAGE_ORDER if s in set(sc["stage"])] + sorted(
            set(sc["stage"]) - set(STAGE_ORDER)
        )
        for st in sc_stages:
            sub = sc[sc["stage"] == st]
            n_all = len(sub)
            n_pass = int(sub["passes"].astype("boolean").fillna(False).sum())  # a count of rows
            counts.append({"stage": schemas.STAGE_LABELS.get(st, st), "n": n_all, "n_pass": n_pass})
        # Never ranked: failing schools listed in school-id order only.
        bad = sc[~sc["passes"].astype("boolean").fillna(False).astype(bool)].sort_values(
            ["school_id", "stage"]
        )
        for r in bad.to_dict("records"):
            failing.append([
                _txt(r.get("school_id")), _txt(r.get("school_name")) or MISSING,
                schemas.STAGE_LABELS.get(r.get("stage"), _txt(r.get("stage"))),
                _n(r, "n_met") + " / 7",
                _ratio(f, r.get("min_ratio_unmet")),
            ])  # fmt: skip
    return {
        "table": _table(["学段", "指标", "县域均值", "差异系数", "标准", "学校数", "结论"], rows),
        "lights": lights,
        "stage_lights": stage_lights,
        "panels": panels,
        "school_counts": counts,
        "failing": _table(
            ["学校编号", "学校名称", "学段", "达标项数", "未达标项最低达成率"], failing
        ),
        "stages": [schemas.STAGE_LABELS.get(s, s) for s in stages],
        "n_pass_by_stage": _pass_counts(rb, stages),
    }


def _ratio(f: Fmt, v: Any) -> str:
    """未达标项最低达成率 (value / threshold, as a rate: 0.850 = 85 % of the threshold)."""
    return f.num(v, "rate")


def _pass_counts(rb: pd.DataFrame | None, stages: list[str]) -> dict[str, tuple[int, int]]:
    if rb is None or rb.empty:
        return {}
    out = {}
    for st in stages:
        sub = rb[rb["stage"] == st]
        out[st] = (
            int(sub["passes"].astype("boolean").fillna(False).sum()),
            len(sub),
        )  # counts of rows
    return out


def _burden(
    f: Fmt, lk: Lookup, year, county, grades, probs: pd.DataFrame, rules: ViewRules
) -> dict:
    rows, lights, panels = [], [], []
    flagged = _flagged_indicators(probs)
    for g in grades:
        cats, vals = [], {"county": [], "province": [], "nation": []}
        for ind in (*BURDEN_INDICATORS, *BURDEN_MEANS):
            row = lk.get(year, county, g, "", ind)
            if row is None:
                continue
            prov = lk.benchmark("province", year, county, g, "", ind)
            nat = lk.benchmark("nation", year, county, g, "", ind)
            kind = kind_of(ind)
            flag = flagged.get((g, ind)) or flagged.get((None, ind))
            lt = burden_conclusion(f, ind, row, nat, flag) if ind in BURDEN_INDICATORS else None
            rows.append([
                schemas.GRADE_LABELS.get(g, str(g)), schemas.INDICATOR_LABELS.get(ind, ind),
                f.est(row, kind), f.ci(row, kind), f.est(prov, kind), f.est(nat, kind), _n(row, "n_students"),
                lt["text"] if lt else "",
            ])  # fmt: skip
            if lt is not None:
                lights.append(
                    {
                        "label": f"{schemas.GRADE_LABELS.get(g, g)} {schemas.INDICATOR_LABELS.get(ind, ind)}",
                        "value": f.est(row, kind),
                        "standard": _txt((rules.burden_standards.get(ind) or {}).get(g)),
                        "nation": f.est(nat, kind),
                        "light": lt,
                    }
                )
                cats.append(BURDEN_SHORT[ind])
                for key, r in (("county", row), ("province", prov), ("nation", nat)):
                    p = _point(r)
                    vals[key].append(p[0] if p else None)
        panels.append((schemas.GRADE_LABELS.get(g, str(g)), cats, vals, None))
    return {
        "table": _table(
            ["年级", "指标", "本县", "95%置信区间", "全省", "全国", "学生数", "结论"], rows
        ),
        "lights": lights,
        "panels": [p for p in panels if p[1]],
    }


def burden_conclusion(
    f: Fmt, indicator: str, row: Mapping | None, nation: Mapping | None, flag: Mapping | None
) -> dict:
    """The conclusion of a burden / health item, in words a reader acts on.

    Significance is never decided here: the evidence stage tested every burden / health item
    (one-sided, BH-corrected) and listed the significant ones in ``problems.parquet``. So

    * listed → "显著高于/低于全国（已列入问题清单，高）" (the side is the indicator's bad side, the
      reference is the one the problem names);
    * not listed, county value on the bad side of the national figure (or equal) → "与全国无显著差异";
    * not listed, county value on the good side (the shown values differ) → "优于全国";
    * not listed and no national figure → "未列入问题清单".
    """
    if row is None or row.get("suppressed") or _num(row.get("estimate")) is None:
        return light("na")
    bad = BURDEN_BAD_SIDE.get(indicator, 1)
    if flag:
        side = "高于" if bad > 0 else "低于"
        ref = flag.get("reference") or "全国"
        sev = flag["severity"]
        out = light("fail" if sev == "高" else "warn", f"显著{side}{ref}（已列入问题清单，{sev}）")
        return {**out, "short": f"显著{side}{ref}，{sev}"}
    if nation is None or _num(nation.get("estimate")) is None:
        return light("pass", "未列入问题清单")
    kind = kind_of(indicator)
    shown, ref = f.est(row, kind), f.est(nation, kind)
    if shown != ref and (_num(row["estimate"]) - _num(nation["estimate"])) * bad < 0:
        return light("pass", "优于全国")
    return light("pass", "与全国无显著差异")


def _flagged_indicators(probs: pd.DataFrame) -> dict[tuple, dict]:
    """(grade, indicator) → {"severity", "reference"} of this county's most severe problem on it.

    ``reference`` is the benchmark the problem was tested against (evidence's ``benchmark_label``,
    e.g. 全国 / 全省 / 标准), so the conclusion names what the test compared with.
    """
    out: dict[tuple, dict] = {}
    for r in probs.to_dict("records"):
        if _txt(r.get("previous_status")) == "not re-measured" or _num(r.get("value")) is None:
            continue  # a previous problem carried over untested: it says nothing about this round
        g = _key_part(r.get("grade")) if _isnum(r.get("grade")) else None
        key = (g, r.get("indicator"))
        sev = _txt(r.get("severity"))
        sev = sev if sev in SEVERITY_ORDER else "中"
        ref = _benchmark_label(r.get("evidence"))
        old = out.get(key)
        if old is None or SEVERITY_ORDER.index(sev) < SEVERITY_ORDER.index(old["severity"]):
            out[key] = {"severity": sev, "reference": ref}
    return out


def _benchmark_label(evidence: Any) -> str:
    try:
        obj = json.loads(evidence) if isinstance(evidence, str) else None
    except ValueError:
        return ""
    label = _txt(obj.get("benchmark_label")) if isinstance(obj, dict) else ""
    if label in ("全国", "全省", "全省（区）"):
        return label.replace("（区）", "")
    if label.startswith("配置"):  # the configured ceiling / target when no benchmark is printed
        return label[2:]
    return label


def _problem_section(f: Fmt, probs: pd.DataFrame, first_round: bool = False) -> dict:
    """The problem list; in a first round the 较上轮 column says 首轮 (nothing to compare with)."""
    overview, details, is_school = [], [], []
    school_level = 0
    for r in probs.to_dict("records"):
        ind = _txt(r.get("indicator"))
        kind = kind_of(ind)
        title = _txt(r.get("title")) or schemas.INDICATOR_LABELS.get(ind, ind)
        prev = PREVIOUS_STATUS_LABELS.get(
            _txt(r.get("previous_status")), _txt(r.get("previous_status")) or MISSING
        )
        if first_round:
            prev = "首轮"
        overview.append([
            _txt(r.get("problem_id")), title, _txt(r.get("severity")) or MISSING,
            _txt(r.get("responsible_unit")) or MISSING, prev,
            STATUS_LABELS.get(_txt(r.get("status")).lower(), _txt(r.get("status")) or MISSING),
        ])  # fmt: skip
        ev = parse_evidence(r.get("evidence"))
        is_school.append(bool(ev["rows"]) and all("n_met" in e for e in ev["rows"]))
        if is_school[-1]:
            # a school-level problem: listed in the overview and in 均衡状况's failing-school table;
            # its evidence lives in the workbook, so the page is not filled with one block per school
            school_level += 1
            continue
        ev_rows = [_evidence_row(f, e, ind) for e in ev["rows"]]
        ev_rows += [
            _evidence_row(f, {**b, "indicator": b.get("indicator") or ind}, ind)
            for b in ev["benchmark_rows"]
        ]
        prev_text = ""
        pv = ev["previous"]
        if pv:
            prev_text = f"上一轮（{_txt(pv.get('year'))}年，{_txt(pv.get('problem_id'))}）数值 {f.num(pv.get('value'), kind)}"
            if _num(pv.get("change_q")) is not None:
                prev_text += f"，变化检验 q = {f.p(pv.get('change_q'))}"
        details.append(
            {
                "id": _txt(r.get("problem_id")),
                "title": title,
                "domain": DOMAIN_LABELS.get(_txt(r.get("domain")), _txt(r.get("domain"))),
                "severity": _txt(r.get("severity")) or MISSING,
                "facts": [
                    ("数值", f.num(r.get("value"), kind)),
                    ("参照值", f.num(r.get("benchmark"), kind)),
                    ("差距", f.spread(r.get("gap"), kind)),
                    ("标准误", f.spread(r.get("se"), kind)),
                    ("p 值", f.p(r.get("p_value"))),
                    ("q 值（BH 校正）", f.p(r.get("q_value"))),
                ],
                "evidence": _table(
                    ["年份", "对象", "指标", "范围", "数值", "标准误", "学生数", "学校数"], ev_rows
                ),
                "note": ev["note"],
                "cause": ev["cause_hint"],
                "previous_text": prev_text,
                "unit": _txt(r.get("responsible_unit")) or MISSING,
                "deadline": _txt(r.get("deadline")) or MISSING,
                "previous": prev,
            }
        )
    prev_counts = []
    if not first_round and not probs.empty and "previous_status" in probs:
        vc = probs["previous_status"].fillna("").value_counts()  # a count of rows
        for code, label in PREVIOUS_STATUS_LABELS.items():
            if code in vc.index:
                prev_counts.append((label, int(vc[code])))
    sev_counts = []
    if not probs.empty:
        vc = probs["severity"].fillna("").value_counts()
        sev_counts = [(s, int(vc[s])) for s in SEVERITY_ORDER if s in vc.index]
    rechecked = [
        row
        for row, r in zip(overview, probs.to_dict("records"), strict=True)
        if _txt(r.get("previous_status")) not in ("", "new")
    ]
    deadlines = sorted({_txt(r.get("deadline")) or MISSING for r in probs.to_dict("records")})
    one_deadline = deadlines[0] if len(deadlines) == 1 else None
    main = [row for row, sch in zip(overview, is_school, strict=True) if not sch]
    schools = [row for row, sch in zip(overview, is_school, strict=True) if sch]
    school_units = sorted({row[3] for row in schools})
    cols = ["编号", "问题", "程度", "责任单位", "较上轮", "状态"]
    if one_deadline is None:  # deadlines differ: one column each
        deadline_of = [_txt(r.get("deadline")) or MISSING for r in probs.to_dict("records")]
        main = [
            [*row, d]
            for row, d, sch in zip(overview, deadline_of, is_school, strict=True)
            if not sch
        ]
        cols_main = [*cols, "整改时限"]
    else:
        cols_main = cols
    if len(school_units) == 1:  # one unit for every school: said once, not per row
        schools = [[*row[:3], *row[4:]] for row in schools]
        cols_school = ["编号", "问题", "程度", "较上轮", "状态"]
    else:
        cols_school = cols

    def aligned(columns: list[str]) -> list[str]:
        return [
            "t id" if c == "编号" else "t wrap" if c in ("问题", "责任单位") else "t"
            for c in columns
        ]

    return {
        "overview": _table(cols_main, main, align=aligned(cols_main)),
        "school_overview": _table(cols_school, schools, align=aligned(cols_school)),
        "school_unit": school_units[0] if len(school_units) == 1 else "",
        "deadline": one_deadline or "",
        "details": details,
        "n_school_level": school_level,
        "n": len(overview),
        "severity_counts": sev_counts,
        "previous_counts": prev_counts,
        "first_round": first_round,
        "first_round_text": FIRST_ROUND_TEXT,
        "rechecked": _table(cols, rechecked, align=aligned(cols)),
    }


def _evidence_row(f: Fmt, e: Mapping, default_indicator: str) -> list[str]:
    """One evidence row: an indicator row, a resource CV row, a school row or a benchmark row."""
    hidden = _flag(e.get("suppressed"))
    ind = _txt(e.get("indicator")) or default_indicator
    gv = _txt(e.get("group_var"))
    what = schemas.INDICATOR_LABELS.get(ind, schemas.RESOURCE_INDICATORS.get(ind, ind))
    if gv:
        what += f"（{schemas.GROUP_VAR_LABELS.get(gv, gv)}：{group_label(gv, _txt(e.get('group_value')))}）"
    scope = schemas.SCOPE_LABELS.get(_txt(e.get("scope")), _txt(e.get("scope"))) or "本县"
    if "n_met" in e:  # a school of school_compliance
        obj = f"{_txt(e.get('school_name'))}（{_txt(e.get('school_id'))}）"
        return [
            _txt(e.get("year")),
            obj,
            "资源配置达标项数",
            scope,
            f"{_n(e, 'n_met')} 项",
            MISSING,
            MISSING,
            MISSING,
        ]
    if "cv" in e:  # a resource_balance row
        stage = schemas.STAGE_LABELS.get(_txt(e.get("stage")), _txt(e.get("stage")))
        return [
            _txt(e.get("year")),
            stage,
            f"{ind} 差异系数",
            scope,
            f.num(e.get("cv"), "rate"),
            MISSING,
            MISSING,
            _n(e, "n_schools"),
        ]
    kind = kind_of(ind)
    obj = cell_label(e.get("grade"), _txt(e.get("subject"))) if _isnum(e.get("grade")) else ""
    value = e.get("estimate", e.get("value"))
    return [
        _txt(e.get("year")), obj, what, scope,
        SUPPRESSED if hidden else f.num(value, kind),
        SUPPRESSED if hidden else f.spread(e.get("se"), kind),
        _n(e, "n_students") if "n_students" in e else MISSING,
        _n(e, "n_schools") if "n_schools" in e else MISSING,
    ]  # fmt: skip


def _findings(
    f: Fmt, lk: Lookup, year, county, cells, q_grades, resources, problems, rules: ViewRules
) -> list[str]:
    """Key findings as short sentences, every number taken from a row shown elsewhere in the report."""
    out = []
    for g, s in cells:
        label = cell_label(g, s)
        mean = lk.get(year, county, g, s, "mean_score")
        if mean is None or mean.get("suppressed"):
            continue
        nat = lk.benchmark("nation", year, county, g, s, "mean_score")
        med = lk.get(year, county, g, s, "pct_medium_or_above")
        text = f"{label}平均成绩 {f.est(mean, 'score')}（95%置信区间 {f.ci(mean, 'score')}）"
        if nat is not None:
            text += f"，全国 {f.est(nat, 'score')}"
        if med is not None and not med.get("suppressed"):
            text += f"；中等及以上比例 {f.est(med, 'percent')}"
        out.append(text + "。")
    out.extend(_sdr_findings(f, lk, year, county, cells, rules))
    for st, (n_pass, n_all) in resources["n_pass_by_stage"].items():
        stage = schemas.STAGE_LABELS.get(st, st)
        text = f"{stage} {n_all} 项资源配置指标中 {n_pass} 项差异系数达标"
        cnt = next((c for c in resources["school_counts"] if c["stage"] == stage), None)
        if cnt:
            text += f"；{cnt['n']} 所{stage}中 {cnt['n_pass']} 所达到“至少 6 项达标、其余不低于 85%”的要求"
        out.append(text + "。")
    for g in q_grades:
        row = lk.get(year, county, g, "", "pct_homework_over_limit")
        if row is not None and not row.get("suppressed"):
            nat = lk.benchmark("nation", year, county, g, "", "pct_homework_over_limit")
            text = f"{schemas.GRADE_LABELS.get(g, g)}学生书面作业超时比例 {f.est(row, 'percent')}"
            out.append(text + (f"（全国 {f.est(nat, 'percent')}）。" if nat else "。"))
    if problems["n"]:
        sev = "、".join(f"{s} {n} 项" for s, n in problems["severity_counts"])
        text = f"本轮问题清单共 {problems['n']} 项" + (f"（严重程度：{sev}）" if sev else "")
        prev = [
            (lab, n)
            for lab, n in problems["previous_counts"]
            if lab != PREVIOUS_STATUS_LABELS["new"]
        ]
        if prev:
            text += "；与上一轮相比：" + "、".join(f"{lab} {n} 项" for lab, n in prev)
        out.append(text + "。")
    else:
        out.append("本轮未发现需列入问题清单的问题。")
    return out


def _methods(
    f: Fmt, inp: Inputs, lk: Lookup, year, county, cells, q_grades, rules: ViewRules
) -> dict:
    rows = []
    for g, s in cells:
        r = lk.get(year, county, g, s, "mean_score")
        rows.append(
            [
                cell_label(g, s),
                _n(r, "n_students"),
                _n(r, "n_schools"),
                method_label(r.get("method")) if r else MISSING,
                "官方报告" if r and r.get("source") == "official" else "本流程计算",
            ]
        )
    for g in q_grades:
        for ind in BURDEN_INDICATORS:
            r = lk.get(year, county, g, "", ind)
            if r is not None:
                rows.append(
                    [
                        f"{schemas.GRADE_LABELS.get(g, g)}问卷（{schemas.INDICATOR_LABELS[ind]}）",
                        _n(r, "n_students"),
                        _n(r, "n_schools"),
                        method_label(r.get("method")),
                        "本流程计算" if r.get("source") != "official" else "官方报告",
                    ]
                )
                break
    return {
        "samples": _table(["项目", "学生数", "学校数", "方法", "来源"], rows),
        "quality": data_quality(inp.quarantine, inp.validation_summary, year, county),
        "sources": source_files(inp.manifest),
    }


def data_quality(
    quarantine: pd.DataFrame | None, summary: Any, year: int | None, county: str | None
) -> dict:
    """Rows set aside by the quality gate, per table and rule (counts of quarantine rows)."""
    rows: list[list[str]] = []
    scope_note = ""
    if quarantine is not None and not quarantine.empty:
        q = quarantine
        if year is not None and "year" in q:
            yr = pd.to_numeric(q["year"], errors="coerce")
            q = q[(yr == year) | yr.isna()]
        if county is not None and "county_code" in q:
            cc = q["county_code"].astype("string")
            q = q[(cc == county) | cc.isna() | (cc == "")]
            scope_note = "含本县的记录及无法确定区县的记录。"
        if not q.empty:
            q = q.assign(
                table=q.get("table", pd.Series("", index=q.index)).fillna("").astype(str),
                rule=q.get("rule", pd.Series("", index=q.index)).fillna("").astype(str),
                message=q.get("message", pd.Series("", index=q.index)).fillna("").astype(str),
            )
            grouped = q.groupby(["table", "rule"], sort=True).agg(
                n=("rule", "size"), message=("message", "first")
            )
            for (table, rule), r in grouped.iterrows():
                rows.append([
                    TABLE_LABELS.get(table, table), schemas.rule_label(rule), f"{int(r['n'])}", r["message"],
                ])  # fmt: skip
        return {
            "table": _table(["数据表", "规则", "剔除行数", "示例说明"], rows),
            "note": scope_note,
            "raw": [],
            "tables": table_counts(summary),
        }
    counts = table_counts(summary)
    return {
        "table": _table(["数据表", "规则", "剔除行数", "示例说明"], rows),
        "note": "",
        "raw": [] if counts["rows"] else _flatten_counts(summary),
        "tables": counts,
    }


def table_counts(summary: Any) -> dict:
    """Rows in / passed / set aside per table, from the validation summary when it carries them."""
    rows = []
    tables = summary.get("tables") if isinstance(summary, Mapping) else None
    if isinstance(tables, Mapping):
        for name in sorted(tables, key=str):
            t = tables[name]
            if not isinstance(t, Mapping):
                continue
            rows.append([
                TABLE_LABELS.get(str(name), str(name)),
                *(_txt(t.get(k)) or MISSING for k in ("rows_in", "passed", "quarantined", "ingest_quarantined")),
            ])  # fmt: skip
    return _table(["数据表", "进入校验行数", "通过行数", "校验剔除行数", "导入时隔离行数"], rows)


def _flatten_counts(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Numeric leaves of the validation summary (its shape belongs to the validate stage)."""
    out: list[tuple[str, str]] = []
    if depth > 3:
        return out
    if isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            out += _flatten_counts(obj[k], f"{prefix} / {k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, bool):
        out.append((prefix, "是" if obj else "否"))
    elif isinstance(obj, int | float):
        out.append((prefix, f"{obj:g}"))
    return out[:40]


def source_files(manifest: Mapping | None) -> dict:
    rows = []
    files = (manifest or {}).get("files") or {}
    if isinstance(files, Mapping):
        items = sorted(files.items(), key=lambda kv: str(kv[0]))
    else:
        named = [
            (_txt(x.get("path") or x.get("file") or x.get("source_file")), x)
            for x in files
            if isinstance(x, Mapping)
        ]
        items = sorted(named, key=lambda kv: kv[0])
    for path, info in items:
        info = info if isinstance(info, Mapping) else {}
        fmt = _txt(info.get("format"))
        sep = _txt(info.get("delimiter"))
        if sep in schemas.TEXT_DELIMITERS and sep != "comma":
            fmt += f"（{schemas.TEXT_DELIMITERS[sep][1]}分隔）"
        rows.append([
            str(path), fmt, _txt(info.get("encoding")), _header_lines(info),
            _txt(info.get("rows_read")), _txt(info.get("rows_kept")), _txt(info.get("rows_quarantined")),
        ])  # fmt: skip
    return _table(["文件", "格式", "编码", "表头所在行", "读取行数", "保留行数", "隔离行数"], rows)


def _header_lines(info: Mapping) -> str:
    """The header's row(s) as ingest found them: "3", or "3–4" for a two-line header."""
    first = _num(info.get("header_row"))
    if first is None:
        return ""
    n = _num(info.get("header_rows")) or 1
    return f"{int(first)}" if n <= 1 else f"{int(first)}–{int(first + n - 1)}"


def dataset_info(manifest: Mapping | None) -> dict:
    ds = (manifest or {}).get("dataset") or {}
    synthetic = bool(ds.get("synthetic", False)) if isinstance(ds, Mapping) else False
    label = _txt(ds.get("label")) if isinstance(ds, Mapping) else ""
    return {"synthetic": synthetic, "label": label or ("合成演示数据" if synthetic else "")}


# ------------------------------------------------------------------------------------------------
# City summary
# ------------------------------------------------------------------------------------------------


def summary_view(
    inp: Inputs,
    lk: Lookup,
    year: int,
    counties: Sequence[str],
    monitoring: MonitoringParams,
    rules: ViewRules,
) -> dict:
    f = Fmt(rules)
    city = monitoring.city_code
    cells_all: list[tuple[int, str]] = []
    for c in [*counties, city]:
        for cell in subject_cells(inp.indicators, year, c, monitoring):
            if cell not in cells_all:
                cells_all.append(cell)
    cells_all.sort(
        key=lambda p: (
            p[0],
            list(monitoring.rotation.get(year, {}).get(p[0], ())).index(p[1])
            if p[1] in monitoring.rotation.get(year, {}).get(p[0], ())
            else 99,
            p[1],
        )
    )
    units = [(c, monitoring.county_name(c)) for c in counties]
    has_city = not inp.indicators[
        (inp.indicators["year"] == year) & (inp.indicators["county_code"] == city)
    ].empty
    if has_city:
        units.append((city, "全市（合并）"))

    ach_tables, mean_chart, sdr_chart = [], [], []
    for g, s in cells_all:
        label = cell_label(g, s)
        rows = []
        for code, name in units:
            mean = lk.get(year, code, g, s, "mean_score")
            sdr = lk.get(year, code, g, s, "school_difference_rate")
            rows.append([
                name, f.est(mean, "score"), f.ci(mean, "score"),
                f.est(lk.get(year, code, g, s, "pct_medium_or_above"), "percent"),
                f.est(lk.get(year, code, g, s, "pct_good_or_above"), "percent"),
                f.est(lk.get(year, code, g, s, "achievement_level"), "level"),
                f.est(sdr, "rate"), _n(mean, "n_students"), _n(mean, "n_schools"),
            ])  # fmt: skip
            mean_chart.append(
                (
                    f"{label}·{name}",
                    {
                        "county": _point(mean),
                        "nation": _point(lk.benchmark("nation", year, code, g, s, "mean_score")),
                    },
                )
            )
            if code != city:
                sdr_chart.append((f"{label}·{name}", {"county": _point(sdr)}))
        for scope, scope_label in (("province", "全省"), ("nation", "全国")):
            ref_county = counties[0] if counties else city
            b = lk.benchmark(scope, year, ref_county, g, s, "mean_score")
            if b is not None:
                rows.append(
                    [
                        scope_label,
                        f.est(b, "score"),
                        "",
                        f.est(
                            lk.benchmark(scope, year, ref_county, g, s, "pct_medium_or_above"),
                            "percent",
                        ),
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
        ach_tables.append(
            {
                "label": label,
                "table": _table(
                    [
                        "区县",
                        "平均成绩",
                        "95%置信区间",
                        "中等及以上",
                        "良好及以上",
                        "学业水平",
                        "校际差异率",
                        "学生数",
                        "学校数",
                    ],
                    rows,
                ),
            }
        )

    res_rows = []
    for code, name in units:
        if code == city:
            continue
        r = _resources(f, inp, year, code, rules)
        parts = []
        for st, (n_pass, n_all) in r["n_pass_by_stage"].items():
            parts.append(f"{schemas.STAGE_LABELS.get(st, st)} {n_pass}/{n_all}")
        schools = [f"{c['stage']} {c['n_pass']}/{c['n']}" for c in r["school_counts"]]
        res_rows.append([name, "；".join(parts) or MISSING, "；".join(schools) or MISSING])

    burden_rows = []
    grades = sorted({g for c, _ in units for g in questionnaire_grades(inp.indicators, year, c)})
    for g in grades:
        for code, name in units:
            burden_rows.append(
                [
                    schemas.GRADE_LABELS.get(g, str(g)),
                    name,
                    *[f.est(lk.get(year, code, g, "", ind)) for ind in BURDEN_INDICATORS],
                ]
            )
        nat_ref = counties[0] if counties else city
        nat = [lk.benchmark("nation", year, nat_ref, g, "", ind) for ind in BURDEN_INDICATORS]
        if any(n is not None for n in nat):
            burden_rows.append(
                [schemas.GRADE_LABELS.get(g, str(g)), "全国", *[f.est(n, "percent") for n in nat]]
            )

    first = is_first_round(inp, year)
    prev_codes = [] if first else list(PREVIOUS_STATUS_LABELS)
    prob_rows = []
    for code, name in units:
        if code == city:
            continue
        p = _problems_for(inp.problems, year, code)
        sev = p["severity"].fillna("").value_counts() if not p.empty else pd.Series(dtype="int64")
        prev = (
            p["previous_status"].fillna("").value_counts()
            if not p.empty
            else pd.Series(dtype="int64")
        )
        prob_rows.append([
            name, str(len(p)), *[str(int(sev.get(s, 0))) for s in SEVERITY_ORDER],
            *[str(int(prev.get(k, 0))) for k in prev_codes],
        ])  # fmt: skip
    return {
        "overview": _summary_overview(
            f, inp, lk, year, counties, cells_all, grades, rules, monitoring, first
        ),
        "kind": "summary",
        "year": year,
        "title": f"{monitoring.city_name}{year}年义务教育质量监测结果汇总报告",
        "counties": [{"code": c, "name": monitoring.county_name(c)} for c in counties],
        "achievement": ach_tables,
        "mean_chart_rows": mean_chart,
        "sdr_chart_rows": sdr_chart,
        "resources": _table(
            ["区县", "差异系数达标指标数（达标/总数）", "达标学校数（达标/总数）"], res_rows
        ),
        "burden": _table(
            ["年级", "区县", *[schemas.INDICATOR_LABELS[i] for i in BURDEN_INDICATORS]], burden_rows
        ),
        "problems": _table(
            ["区县", "问题数", "高", "中", "低", *[PREVIOUS_STATUS_LABELS[k] for k in prev_codes]],
            prob_rows,
        ),
        "first_round": first,
        "first_round_text": FIRST_ROUND_TEXT,
        "quality": data_quality(inp.quarantine, inp.validation_summary, year, None),
    }


_SHORT_CONCLUSION = {"na": "", "pass": "", "warn": "列入问题清单", "fail": "列入问题清单"}


def _summary_overview(
    f: Fmt,
    inp: Inputs,
    lk: Lookup,
    year,
    counties,
    cells,
    grades,
    rules: ViewRules,
    monitoring: MonitoringParams,
    first_round: bool = False,
) -> dict:
    """The summary's 摘要: one column per county (administrative-code order, never ranked).

    Every cell is a value of an indicator / resource / problem row or a count of rows.
    """
    counties = sorted(counties)
    rows: list[list[str]] = []
    any_unsure = False
    for g, s in cells:
        label = cell_label(g, s)
        rows.append(
            [
                f"{label} 学业水平",
                *[f.est(lk.get(year, c, g, s, "achievement_level"), "level") for c in counties],
            ]
        )
        cells_sdr = []
        for c in counties:
            sdr = lk.get(year, c, g, s, "school_difference_rate")
            st = _quality_sdr_light(sdr, rules)["state"]
            word = {"pass": "（达标）", "fail": "（未达标）"}.get(st, "")
            if word and _sdr_verdict(sdr, rules.quality_sdr_max) == "unsure":
                word = word[:-1] + UNSURE_MARK + "）"
                any_unsure = True
            shown = (
                f.num_against(sdr["estimate"], "rate", rules.quality_sdr_max)
                if word
                else f.est(sdr, "rate")
            )
            cells_sdr.append(shown + word)
        rows.append([f"{label} 校际差异率（< {rules.quality_sdr_max:g}）", *cells_sdr])
    res = {c: _resources(f, inp, year, c, rules) for c in counties}
    stages = [st for st in STAGE_ORDER if any(st in res[c]["n_pass_by_stage"] for c in counties)]
    for st in stages:
        lab = schemas.STAGE_LABELS.get(st, st)
        rows.append([
            f"{lab}资源配置差异系数达标项",
            *[("{} / {} 项".format(*res[c]["n_pass_by_stage"][st]) if st in res[c]["n_pass_by_stage"] else MISSING) for c in counties],
        ])  # fmt: skip
        rows.append([
            f"{lab}达标学校（6 项及以上）",
            *[next((f"{x['n_pass']} / {x['n']} 所" for x in res[c]["school_counts"] if x["stage"] == lab), MISSING) for c in counties],
        ])  # fmt: skip
    for g in grades:
        for ind in BURDEN_INDICATORS:
            vals = []
            for c in counties:
                row = lk.get(year, c, g, "", ind)
                if row is None:
                    vals.append(MISSING)
                    continue
                flag = _flagged_indicators(_problems_for(inp.problems, year, c))
                lt = burden_conclusion(
                    f, ind, row, lk.benchmark("nation", year, c, g, "", ind),
                    flag.get((g, ind)) or flag.get((None, ind)),
                )  # fmt: skip
                extra = f"（{lt['short']}）" if lt.get("short") else ""
                vals.append(f.est(row, "percent") + extra)
            if any(v != MISSING for v in vals):
                nat = lk.benchmark("nation", year, counties[0], g, "", ind) if counties else None
                lab = f"{schemas.GRADE_LABELS.get(g, g)}{schemas.INDICATOR_LABELS[ind]}"
                rows.append([lab + (f"（全国 {f.est(nat, 'percent')}）" if nat else ""), *vals])
    sev_row, prev_row = (
        ["问题数（高 / 中 / 低）"],
        ["上一轮问题：" + " / ".join(list(PREVIOUS_STATUS_LABELS.values())[1:])],
    )
    for c in counties:
        p = _problems_for(inp.problems, year, c)
        sev = p["severity"].fillna("").value_counts()  # counts of rows
        prev = p["previous_status"].fillna("").value_counts()
        sev_row.append(
            f"{len(p)}（" + "/".join(str(int(sev.get(x, 0))) for x in SEVERITY_ORDER) + "）"
        )
        prev_row.append(
            "/".join(str(int(prev.get(k, 0))) for k in list(PREVIOUS_STATUS_LABELS)[1:])
        )
    rows.append(sev_row)
    if not first_round:
        rows.append(prev_row)
    # one row per item, one column per county: the county cells are centred so levels, rates with
    # their verdict and counts line up the same way in every column
    return {
        "table": _table(
            ["项目", *[monitoring.county_name(c) for c in counties]],
            rows,
            note="".join(
                [
                    f"{UNSURE_MARK} 95% 置信区间包含 {rules.quality_sdr_max:g}，达标与否尚难定论。"
                    if any_unsure
                    else "",
                    f"上一轮问题：{FIRST_ROUND_TEXT}。" if first_round else "",
                ]
            )
            or None,
            align=["t", *["c"] * len(counties)],
        ),
        "codes": counties,
    }
