"""The 「相关因素」 chapter of a county report (NAEQ county reports: 学业表现, 相关因素, 均衡状况).

One view model for the HTML and the PDF, read from ``data/processed/factors.parquet``
(:data:`pipeline.schemas.FACTORS`, written by ``eqm indicators``) with the factor catalogue
(:mod:`pipeline.catalogue`: labels, units, direction, regression term units). Nothing is computed:
every number printed is one row's ``estimate`` / ``national`` / ``se`` formatted once by
:class:`pipeline.report.formats.Fmt`; the only decisions are comparisons of a row's two-sided
``p_value`` with ``evidence.alpha`` (significance words and marks).

Per grade of the round (only the county's rows; a row flagged ``suppressed`` — or below the report's
minimum students / schools — prints 「—」):

* a table 因素 | 本县 | 全国 | 差异（显著性） | 关联单位 | one column per subject: the county value
  of each factor, the national figure, 显著高于 / 显著低于 / 与全国无显著差异 (from the ``value``
  row's p) with 较好 / 较差 by :attr:`catalogue.Factor.higher_is_worse`, and the SES-adjusted
  regression coefficient (``coef`` / ``adjusted``) in score points with * / ** or 「无显著关联」;
  rows grouped 学生 / 教师 / 学校 in catalogue order;
* a two-level summary per subject: 校间差异占比 (``two_level`` / ``icc``) with its SE, and the
  school factors whose random-intercept coefficient is significant, with the share of the
  between-school variance they explain (``between_explained``);
* a dot chart of the share factors, 本县 (filled black) against 全国 (open black), readable in grey.

Schools are never named or ranked here. A county without factor rows gets one sentence
(:data:`NOT_COLLECTED`) instead of empty tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline import catalogue, schemas
from pipeline.report.formats import (
    MISSING,
    SUPPRESSED,
    Fmt,
    ViewRules,
    _flag,
    _num,
    _table,
    _txt,
)

NOT_COLLECTED = "本轮未收集相关因素问卷数据"
LEVEL_LABELS = {"student": "学生", "teacher": "教师", "principal": "学校"}
ESTIMAND = (
    "教师、校长问卷因素作为学生所在学校的属性计算，按学生加权：本县值指本县该年级学生中，所在学校"
    "（或其任课教师）具备该条件的学生比例，或学生所在学校的平均值；全国的教师数值可能按教师加权，"
    "比较时请注意口径不同。"
)
METHOD = (
    "估计方法：本县值与回归系数均使用学生最终权重，标准误采用与学业成绩相同的刀切法（JKn）复制权重，"
    "提供可能值时按 Rubin 规则合并。两水平模型为学生嵌套于学校的随机截距模型：校间差异占比 = "
    "校间方差 ÷（校间方差 + 校内方差）；某一学校因素可解释校间差异的比例 = 1 − 加入该因素后的校间方差 ÷ "
    "不含任何因素时的校间方差。第六部分问题清单中的「原因分析线索」更严格：只列出经本轮多重比较校正"
    "（Benjamini–Hochberg）后仍显著、且本县显著差于全国的因素，因此可能少于本章标为显著的因素。"
)
NOT_SIGNIFICANT = "无显著关联"
# an estimate without a standard error: the factor hardly varies among the sampled schools (e.g.
# one school of twelve differs), so every replicate without that school is singular
UNTESTABLE = "无法检验"
CHART_XLABEL = "学生比例（%）"


def _marks(alpha: float) -> tuple[tuple[float, str], ...]:
    """Significance marks, strictest first: ** p < 0.01 (when below alpha), * p < alpha."""
    return ((0.01, "**"), (alpha, "*")) if alpha > 0.01 else ((alpha, "*"),)


def sig_mark(p: Any, alpha: float) -> str | None:
    """The mark of a two-sided p-value (``**`` / ``*``), "" when not significant, None when absent."""
    f = _num(p)
    if f is None:
        return None
    return next((m for cut, m in _marks(alpha) if f < cut), "")


def marks_legend(alpha: float) -> str:
    return "，".join(f"{m} p<{cut:g}" for cut, m in reversed(_marks(alpha)))


def difference_words(row: Mapping | None, factor: catalogue.Factor, alpha: float) -> str:
    """差异（显著性） of a county value against the national one, from the row's two-sided p:
    显著高于 / 显著低于全国 with （较好） / （较差） by the factor's direction, or 与全国无显著差异."""
    if row is None:
        return MISSING
    if _hidden(row):
        return SUPPRESSED
    est, nat, p = _num(row.get("estimate")), _num(row.get("national")), _num(row.get("p_value"))
    if nat is None:
        return "无全国数据"
    if est is None or p is None:
        return "未检验"
    if p >= alpha or est == nat:
        return "与全国无显著差异"
    higher = est > nat
    worse = higher == factor.higher_is_worse
    return f"显著{'高于' if higher else '低于'}全国（{'较差' if worse else '较好'}）"


def _hidden(row: Mapping, rules: ViewRules | None = None) -> bool:
    """Suppressed by the indicators stage, or (safety net, as in the other chapters) below the
    report's minimum students / schools."""
    if _flag(row.get("suppressed")):
        return True
    if rules is None:
        return False
    n_st, n_sc = _num(row.get("n_students")), _num(row.get("n_schools"))
    return (n_st is not None and n_st < rules.min_students) or (
        n_sc is not None and n_sc < rules.min_schools
    )


def _subjects(rows: Sequence[Mapping]) -> list[str]:
    found = {r["subject"] for r in rows if r["subject"]}
    order = list(schemas.SUBJECT_LABELS)
    return sorted(found, key=lambda s: (order.index(s) if s in order else len(order), s))


def _label(factor: catalogue.Factor) -> str:
    """The factor's name, with its unit when the value is a mean in hours, lessons …"""
    if factor.measure == "mean" and not factor.index and factor.unit:
        return f"{factor.label}（{factor.unit}）"
    return factor.label


class _Rows:
    """The county's rows of one grade, by (kind, statistic, subject, factor)."""

    def __init__(self, rows: Sequence[Mapping], rules: ViewRules):
        self.rules = rules
        self.by_key = {
            (r["kind"], r["statistic"], r["subject"], r["factor"]): {
                **r,
                "suppressed": _hidden(r, rules),
            }
            for r in rows
        }

    def get(self, kind: str, statistic: str, subject: str, factor: str) -> dict | None:
        return self.by_key.get((kind, statistic, subject, factor))


def _coef_cell(f: Fmt, row: Mapping | None, alpha: float) -> str:
    if row is None:
        return MISSING
    if row["suppressed"]:
        return SUPPRESSED
    if _num(row.get("estimate")) is None:
        return MISSING
    mark = sig_mark(row.get("p_value"), alpha)
    if mark is None:
        return UNTESTABLE
    return f"{f.points(row.get('estimate'))}{mark}" if mark else NOT_SIGNIFICANT


def _grade_table(f: Fmt, rows: _Rows, factors: list[str], subjects: list[str], alpha: float):
    body: list[list[str]] = []
    standardised: list[str] = []
    last_level = None
    for fid in factors:
        fac = catalogue.FACTORS[fid]
        value = rows.get("value", "", "", fid)
        level = LEVEL_LABELS[fac.level]
        if value is None:
            county = national = MISSING
        else:
            county = (
                SUPPRESSED
                if value["suppressed"]
                else f.factor(value.get("estimate"), fac.measure, fac.index)
            )
            national = f.factor(value.get("national"), fac.measure, fac.index)
            if fac.index and "standardised" in _txt(value.get("method")):
                standardised.append(fac.label)
        body.append([
            level if level != last_level else "",
            _label(fac),
            county,
            national,
            difference_words(value, fac, alpha),
            fac.term_unit,
            *[_coef_cell(f, rows.get("coef", "adjusted", s, fid), alpha) for s in subjects],
        ])  # fmt: skip
        last_level = level
    columns = ["类别", "因素", "本县", "全国", "差异（显著性）", "关联单位"]
    columns += [schemas.SUBJECT_LABELS.get(s, s) for s in subjects]
    note = (
        f"差异：本县与全国比较的双侧检验，p<{alpha:g} 为显著（未作多重比较校正）；“较差”“较好”按该因素"
        "的方向判断。各学科一栏为与成绩的关联：控制家庭社会经济文化地位后，因素按“关联单位”变化时该学科"
        f"成绩相差的分数（量尺分数）；{marks_legend(alpha)}；不显著的写“{NOT_SIGNIFICANT}”；"
        f"“{UNTESTABLE}”：该因素在样本学校间几乎没有差别（如只有一所学校不同），刀切法无法估计标准误；"
        "“未检验”：本县样本中全部学生（或学校）情况相同（如比例为 100%），标准误为 0，不与全国作检验。"
        "指数为 1–4 分（各题平均）"
    )
    if standardised:
        note += (
            f"，其中{'、'.join(standardised)}已按区县报告给出的全国均值和标准差标准化（全国为 0），"
            "其“指数每高1”即每高 1 个全国标准差"
        )
    note += "。"
    n_subj = max(len(subjects), 1)
    widths = [5, 23, 7, 7, 17, 13] if n_subj <= 2 else [5, 20, 7, 7, 16, 12]
    widths += [(100 - sum(widths)) // n_subj] * len(subjects)
    align = ["t", "t", "n", "n", "t wrap", "t wrap", *["n"] * len(subjects)]  # wrap: no nowrap
    return _table(columns, body, note=note, align=align, widths=widths if subjects else None)


def _two_level(f: Fmt, rows: _Rows, subjects: list[str], alpha: float) -> dict:
    body = []
    for s in subjects:
        icc = rows.get("two_level", "icc", s, "")
        if icc is None:
            continue
        hidden = icc["suppressed"]
        named = []
        # no between-school variance (the estimate at its boundary 0): nothing for a school factor
        # to explain, whatever its coefficient says about the students' scores
        none_between = not (_num(icc.get("estimate")) or 0.0) > 0
        for fid in () if none_between else catalogue.SCHOOL_FACTORS:
            coef = rows.get("two_level", "coef", s, fid)
            if coef is None or coef["suppressed"] or not sig_mark(coef.get("p_value"), alpha):
                continue
            share = rows.get("two_level", "between_explained", s, fid)
            x = None if share is None or share["suppressed"] else _num(share.get("estimate"))
            fac = catalogue.FACTORS[fid]
            b = _num(coef.get("estimate"))
            what = (
                f"{fac.term_phrase}，学校平均成绩{'高' if b > 0 else '低'}"
                f"{f.num(abs(b), 'score')}分{sig_mark(coef.get('p_value'), alpha)}"
            )
            if x is None:
                named.append(f"{fac.label}（{what}）")
            elif x <= 0:
                named.append(f"{fac.label}（{what}；未能解释校间差异）")
            else:
                named.append(f"{fac.label}（{what}；可解释校间差异的 {f.proportion(x)}）")
        body.append([
            schemas.SUBJECT_LABELS.get(s, s),
            SUPPRESSED if hidden else f.proportion(icc.get("estimate")),
            SUPPRESSED if hidden else f.proportion_se(icc.get("se")),
            SUPPRESSED if hidden else (
                "校间差异为0，无可解释" if none_between else ("；".join(named) or "无")
            ),
        ])  # fmt: skip
    return _table(
        ["学科", "校间差异占比", "标准误", f"与校间差异显著关联的学校因素（p<{alpha:g}）"],
        body,
        note="校间差异占比：两水平模型中学生成绩差异由学校之间差异造成的比例（与第四部分按方差分析"
        "估计的校际差异率口径不同，数值不必相同）。每个学校因素单独放入模型（未控制家庭社会经济文化"
        "地位），系数为该因素按其单位变化时学校平均成绩相差的分数；各因素可解释的比例来自各自的模型，"
        "不能相加。",
        align=["t", "n", "n", "wrap"],
        widths=[12, 16, 16, 56],
    )


def _chart_rows(rows: _Rows, factors: list[str]) -> list:
    """Dot-chart rows of the share factors: county (None when hidden) and national percentages."""
    out = []
    for fid in factors:
        fac = catalogue.FACTORS[fid]
        value = rows.get("value", "", "", fid)
        if fac.measure != "share" or value is None:
            continue
        est, nat = _num(value.get("estimate")), _num(value.get("national"))
        county = None if value["suppressed"] or est is None else (est, None, None)
        nation = None if nat is None else (nat, None, None)
        out.append((fac.label, {"county": county, "nation": nation}))
    return out


def chart_key(grade: int) -> str:
    return f"factors_{grade}"


def factors_view(
    factors: pd.DataFrame | None, year: int, county: str, rules: ViewRules, first_figure: int
) -> dict:
    """The chapter's view model; its charts are numbered from ``first_figure`` on.

    ``n_figures`` is the number of charts the chapter draws (a grade without a drawable point has
    none), so the later chapters number theirs after it.
    """
    f, alpha = Fmt(rules), rules.alpha
    mine: list[dict] = []
    if factors is not None and not factors.empty:
        sel = factors[
            (factors["year"] == year) & (factors["county_code"].astype(str) == str(county))
        ]
        mine = [
            {**r, **{c: _txt(r.get(c)) for c in ("kind", "statistic", "subject", "factor")}}
            for r in sel.to_dict("records")
            if _num(r.get("grade")) is not None
        ]
    grades = []
    n_fig = 0
    for grade in sorted({int(r["grade"]) for r in mine}):
        rows_g = [r for r in mine if int(r["grade"]) == grade]
        rows = _Rows(rows_g, rules)
        present = {r["factor"] for r in rows_g}
        factors_g = [fid for fid in catalogue.FACTORS if fid in present]
        subjects = _subjects(rows_g)
        chart = _chart_rows(rows, factors_g)
        drawn = any(p is not None for _, pts in chart for p in pts.values())
        label = schemas.GRADE_LABELS.get(grade, f"{grade}年级")
        grades.append({
            "grade": grade,
            "label": label,
            "table": _grade_table(f, rows, factors_g, subjects, alpha),
            "two_level": _two_level(f, rows, subjects, alpha),
            "chart": chart_key(grade),
            "chart_rows": chart,
            "figure": first_figure + n_fig,
            "caption": f"{label}比例类相关因素：本县与全国（● 本县，◇ 全国）",
        })  # fmt: skip
        n_fig += drawn
    return {
        "has_data": bool(grades),
        "not_collected": NOT_COLLECTED,
        "caveat": catalogue.CAUSALITY_CAVEAT,
        "estimand": ESTIMAND,
        "method": METHOD,
        "grades": grades,
        "n_figures": n_fig,
    }


def summary_note(factors: pd.DataFrame | None, year: int) -> str:
    """The city summary's one-line pointer to the county chapters ("" when no county has rows)."""
    if factors is None or factors.empty or not (factors["year"] == year).any():
        return ""
    return (
        "各区县学生、教师和校长问卷的相关因素（与全国的比较、与学业成绩的关联）见各区县报告第三部分"
        "“相关因素”；相关不等于因果。"
    )
