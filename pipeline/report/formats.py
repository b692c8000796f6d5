"""Display primitives of the report stage: number formats, labels, table and traffic-light cells.

Nothing here chooses what to show; :mod:`pipeline.report.views`, :mod:`~pipeline.report.verdicts`
and :mod:`~pipeline.report.problems` do, with the decimals of ``params.yaml`` (scores 1,
percentages 1, rates 3, questionnaire indices 2). The 相关因素 chapter's numbers are formatted here
too (:meth:`Fmt.factor`, :meth:`Fmt.points`, :meth:`Fmt.proportion`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import schemas

SUPPRESSED = "—"
MISSING = "…"

SCORE_INDICATORS = {"mean_score", "gap_mean_score", "mean_homework_minutes", "mean_sleep_hours"}
RATE_INDICATORS = {"school_difference_rate", "eta_squared", "school_mean_cv"}
ROMAN = {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ"}

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


# ------------------------------------------------------------------------------------------------
# Parameters the views need (a slice of ReportParams, so these modules have no config dependency)
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
    # a problem type found in at least this share of the counties is a city-wide common problem
    common_share: float = 0.5
    index_decimals: int = 2  # questionnaire indices (相关因素: 学习兴趣指数 …)
    alpha: float = 0.05  # evidence.alpha: the 相关因素 chapter's significance level (two-sided p)


# ------------------------------------------------------------------------------------------------
# Cells
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


def _txt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)


def _key_part(v: Any) -> Any:
    if isinstance(v, float) and not math.isnan(v) and v.is_integer():
        return int(v)
    if hasattr(v, "item"):
        return v.item()
    return v


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

    def factor(self, v: Any, measure: str, index: bool) -> str:
        """A related factor's value (相关因素; county or national): a share in percent, an index or
        any other mean (hours, lessons: 0.23 vs 0.38 hours must not both print 0.2 / 0.4) with
        ``index_decimals``."""
        if measure == "share":
            return self.num(v, "percent")
        return self.num(v, "score", self.rules.index_decimals)

    def points(self, v: Any) -> str:
        """Score points (a regression coefficient of the 相关因素 chapter): "12.3 分"."""
        text = self.num(v, "score")
        return text if text == MISSING else f"{text} 分"

    def proportion(self, v: Any) -> str:
        """A proportion 0–1 (校间差异占比, 可解释校间差异的比例) printed as a percentage."""
        f = _num(v)
        return self.num(None if f is None else 100.0 * f, "percent")

    def proportion_se(self, v: Any) -> str:
        """The SE of :meth:`proportion`, in percentage points."""
        f = _num(v)
        return self.spread(None if f is None else 100.0 * f, "percent")

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


def _n(row: Mapping | None, col: str) -> str:
    """A sample size; hidden like the estimate when the row is suppressed."""
    if row is None:
        return MISSING
    if _flag(row.get("suppressed")):
        return SUPPRESSED
    v = _num(row.get(col))
    return MISSING if v is None else f"{int(v)}"


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


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


_NUMERIC = re.compile(r"^[\s0-9.,%/*+<>≤≥～〜−\-—…·项所人（）()‡→]*$")
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
    not_suppressed: Sequence[tuple[int, int]] = (),
    widths: Sequence[int] | None = None,
) -> dict:
    """A table for the ``table`` macro.

    ``align`` gives each column's CSS classes ('t' left, 'n' right, 'c' centred, 'id' an identifier
    that breaks only at its hyphens, 'wrap' never kept on one line); without it each column gets
    :func:`_column_align`'s guess. Cells of up to 14 characters do not wrap. ``not_suppressed``
    lists (row, column) cells whose "—" means something else (explained in ``note``), so they do
    not bring in the suppression footnote. ``widths`` (percent per column) fixes the layout, for
    tables whose every column may wrap.
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
    exempt = set(not_suppressed)
    has_sup = any(
        SUPPRESSED in c for i, r in enumerate(rows) for j, c in enumerate(r) if (i, j) not in exempt
    )
    has_missing = any(MISSING in str(c) for r in rows for c in r)
    return {
        "columns": list(columns),
        "rows": rows,
        "classes": classes,
        "has_suppressed": has_sup,
        "has_missing": has_missing,
        "note": note,
        "widths": list(widths) if widths else [],
    }
