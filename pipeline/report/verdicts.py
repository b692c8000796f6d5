"""Verdicts the reports print, each read from a row or a rule, never guessed.

* 「显著差于 / 显著优于 / 与…无显著差异 / 未检验」: the ``verdict`` of a row of
  ``comparisons.parquet`` (evidence stage, the same tests as the problem rules), named with
  :data:`pipeline.schemas.VERDICT_LABELS` and the benchmark's name. No row, no label.
* 校际差异率 against ``monitoring.icc_threshold`` (0.15, strictly below): the official value of the
  county report when there is one, else the local ICC(1) estimate, with what its 95% interval says.
  A local estimate ≤ 0 (one-way ANOVA: MSB ≤ MSW) is shown as 0 with a footnote. The pooled row of
  all sample counties (``monitoring.city_code``) gets no verdict: pooling counties mixes the
  differences between counties into a within-county statistic.
* The 优质均衡 quality item of a grade × subject: level Ⅲ or above AND 校际差异率 < 0.15; met, not
  met, or cannot be judged (with the reason). The county's quality item is met only when every
  grade × subject item is met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.report.formats import (
    MISSING,
    ROMAN,
    SUPPRESSED,
    Fmt,
    ViewRules,
    _key_part,
    _num,
    _txt,
    cell_label,
    level_code,
    light,
)

# ------------------------------------------------------------------------------------------------
# Comparisons with a benchmark
# ------------------------------------------------------------------------------------------------

# bench_scope of comparisons.parquet -> the benchmark's name in a label ("显著差于全国")
BENCH_NAMES = {
    "nation": schemas.SCOPE_LABELS["nation"],
    "province": schemas.SCOPE_LABELS["province"],
    "standard": "标准",
    "configured": "本地设定值",
}
UNTESTED = schemas.VERDICT_LABELS["untested"]
# burden / health indicator -> the candidate rule that tests it
BURDEN_RULES = {
    "pct_homework_over_limit": "HOMEWORK",
    "pct_sleep_sufficient": "SLEEP",
    "pct_myopia": "MYOPIA",
    "pct_fitness_pass": "FITNESS",
}
CMP_KEY = ("year", "county_code", "grade", "subject", "indicator", "group_var", "group_value")


def _norm(v: Any) -> Any:
    """A key part: NaN / NA / None → None, whole floats → int, text as text."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return _key_part(v)


class Comparisons:
    """``comparisons.parquet`` by key and rule. ``available`` is False for a run without the file
    (then every label is 未检验)."""

    def __init__(self, df: pd.DataFrame | None):
        self.available = df is not None
        self.rows: dict[tuple, dict] = {}
        if df is None or df.empty:
            return
        for r in df.to_dict("records"):
            key = (
                _norm(r.get("year")),
                _txt(r.get("county_code")),
                _norm(r.get("grade")),
                _txt(r.get("subject")),
                _txt(r.get("indicator")),
                _txt(r.get("group_var")),
                _txt(r.get("group_value")),
                _txt(r.get("rule_id")),
            )
            self.rows.setdefault(key, r)

    def get(self, year, county, grade, subject, indicator, rule, gv="", gval="") -> dict | None:
        key = (_norm(year), str(county), _norm(grade), subject or "", indicator, gv, gval, rule)
        return self.rows.get(key)


def bench_name(row: Mapping | None) -> str:
    return BENCH_NAMES.get(_txt((row or {}).get("bench_scope")), "参照值")


def verdict_label(row: Mapping | None) -> str:
    """「显著差于全国」「显著优于全国」「与全国无显著差异」 or 「未检验」 (no row, or untested)."""
    if row is None:
        return UNTESTED
    v = _txt(row.get("verdict"))
    label = schemas.VERDICT_LABELS.get(v)
    if label is None or v == "untested":
        return UNTESTED
    name = bench_name(row)
    return label.format(bench=name) if "{bench}" in label else label + name


def bench_text(f: Fmt, row: Mapping | None, kind: str) -> str:
    """The benchmark a comparison used, named: 「全国 18.0%」."""
    if row is None or _num(row.get("benchmark")) is None:
        return ""
    return f"{bench_name(row)} {f.num(row.get('benchmark'), kind)}"


def comparison_light(row: Mapping | None, severity: str = "") -> dict:
    """A light for a comparison: worse → fail (高) / warn, better or no difference → pass,
    untested → na. ``severity`` is that of the open problem the row belongs to, if any."""
    label = verdict_label(row)
    v = _txt((row or {}).get("verdict"))
    listed = f"（已列入问题清单，{severity}）" if severity else ""
    if v == "worse":
        return {**light("fail" if severity == "高" else "warn", label + listed),
                "short": f"{label}，{severity}" if severity else label}  # fmt: skip
    if v in ("better", "no_difference"):
        return {**light("pass", label + listed), "short": label}
    return {**light("na", label), "short": label}


# ------------------------------------------------------------------------------------------------
# 校际差异率
# ------------------------------------------------------------------------------------------------

NONPOS_MARK = "‡"
NONPOS_NOTE = f"{NONPOS_MARK} 方差分析估计值小于等于 0，记为 0：未检出校间差异。"
POOLED_NAME = "样本县合计"
POOLED_NOTE = (
    f"{POOLED_NAME}：各样本县学生合并计算，不代表全市。合并各县后，校际差异率中混入了县与县之间的"
    "差异，不是县域内的校际差异，不能与优质均衡标准对照，因此不作判定（“—”）。"
)
OFFICIAL_BASIS_NOTE = (
    "官方值取自区县国家义务教育质量监测报告；有官方值时以官方值判定，否则以本地估计判定。"
)
UNSURE_MARK = "†"  # a 校际差异率 verdict whose 95% interval contains the standard


def _usable(row: Mapping | None) -> bool:
    return row is not None and not row.get("suppressed") and _num(row.get("estimate")) is not None


def sdr_ci_verdict(row: Mapping, thr: float) -> str | None:
    """'below' / 'above' / 'unsure' (:func:`pipeline.schemas.icc_verdict`); None without a CI."""
    lo, hi = _num(row.get("ci_low")), _num(row.get("ci_high"))
    if lo is None or hi is None:
        return None
    return str(schemas.icc_verdict(lo, hi, thr))


def sdr_row_light(row: Mapping | None, thr: float, prefix: str = "") -> dict:
    """Pass/fail of one 校际差异率 row on its value (the regulation's rule: strictly below
    ``thr``); the text adds what its 95% CI says (wholly below, wholly above, or containing the
    threshold); nothing is added for a row without an interval (an official value without SE)."""
    if not _usable(row):
        return light("na")
    verdict = sdr_ci_verdict(row, thr)
    ci = ""
    if verdict is not None:
        ci = {
            "below": f"；置信区间整体低于 {thr:g}",
            "above": f"；置信区间整体高于 {thr:g}",
            "unsure": f"；置信区间含 {thr:g}，尚难定论",
        }[verdict]
    return (
        light("pass", f"是（{prefix}< {thr:g}{ci}）")
        if _num(row["estimate"]) < thr
        else light("fail", f"否（{prefix}≥ {thr:g}{ci}）")
    )


def sdr_value_text(f: Fmt, row: Mapping | None, thr: float) -> str:
    """A 校际差异率 as printed: "…" absent, "—" suppressed, "0 ‡" for a value ≤ 0, else the value
    (with a decimal more where it would print as the threshold)."""
    if row is None:
        return MISSING
    if row.get("suppressed"):
        return SUPPRESSED
    v = _num(row.get("estimate"))
    if v is None:
        return MISSING
    if v <= 0:
        return f"0 {NONPOS_MARK}"
    return f.num_against(v, "rate", thr)


def sdr_cell(
    f: Fmt, lk, year: int, county: str, grade: int, subject: str, thr: float, pooled: bool = False
) -> dict:
    """The 校际差异率 of one county × grade × subject, official and local side by side.

    ``lk`` is a :class:`pipeline.report.views.Lookup`. Keys: ``official`` / ``local`` (rows or
    None), their printed texts, ``ci`` (the local estimate's interval), ``shown`` (the value the
    verdict rests on), ``basis`` ('official' | 'local' | None), ``light`` (the verdict; for the
    pooled row a '—' without a state), ``unsure`` (the basis' interval contains ``thr``),
    ``nonpos`` (a local estimate ≤ 0 is printed) and ``point`` / ``official_point`` for charts.
    """
    off = lk.official(year, county, grade, subject, "school_difference_rate")
    loc = lk.local(year, county, grade, subject, "school_difference_rate")
    basis_row, basis = (
        (off, "official") if _usable(off) else (loc, "local") if _usable(loc) else (None, None)
    )
    if pooled:
        verdict = {"state": "", "text": SUPPRESSED}
    elif basis_row is None:
        hidden = any(r is not None and r.get("suppressed") for r in (off, loc))
        verdict = light("na", "无法判定（样本不足，不予显示）" if hidden else "无法判定（无数据）")
    else:
        verdict = sdr_row_light(basis_row, thr, "官方值 " if basis == "official" else "")
    local_text = sdr_value_text(f, loc, thr)
    point = None
    if _usable(loc):
        v = max(_num(loc["estimate"]), 0.0)
        point = (v, _num(loc.get("ci_low")), _num(loc.get("ci_high")))
    return {
        "official": off,
        "local": loc,
        "official_text": sdr_value_text(f, off, thr),
        "local_text": local_text,
        "ci": f.ci_against(loc, "rate", thr),
        "shown": sdr_value_text(f, basis_row, thr) if basis_row is not None else local_text,
        "basis": basis,
        "light": verdict,
        "unsure": basis_row is not None
        and not pooled
        and sdr_ci_verdict(basis_row, thr) == "unsure",
        "nonpos": NONPOS_MARK in local_text,
        "point": point,
        "official_point": (_num(off["estimate"]), None, None) if _usable(off) else None,
    }


# ------------------------------------------------------------------------------------------------
# 优质均衡 quality item
# ------------------------------------------------------------------------------------------------

FOUR_DOMAINS_NOTE = (
    "优质均衡督导评估有资源配置、政府保障程度、教育质量、社会认可度四个方面；本报告只涉及资源配置和"
    "教育质量中“学业水平Ⅲ级以上且校际差异率低于 {thr}”一项，不涉及政府保障程度和社会认可度，"
    "结论不等于优质均衡督导评估的结论。"
)


def quality_item(f: Fmt, lk, year: int, county: str, grade: int, subject: str, rules: ViewRules):
    """The 优质均衡 quality item of one grade × subject.

    达标 when the level is at least ``rules.quality_min_level`` (Ⅲ) AND the 校际差异率 (official
    when the county report gives one, else the local estimate) is strictly below
    ``rules.quality_sdr_max``; 未达标 when either part is known to fail; 无法判定 when no part fails
    but one cannot be judged (suppressed or missing), with the reason.
    """
    thr = rules.quality_sdr_max
    need = rules.quality_min_level
    need_roman = ROMAN.get(need, need)
    lvl = lk.get(year, county, grade, subject, "achievement_level")
    sdr = sdr_cell(f, lk, year, county, grade, subject, thr)
    fails, unknown = [], []
    code = level_code(lvl.get("estimate")) if _usable(lvl) else None
    if code is None:
        unknown.append(
            "学业水平样本不足" if lvl is not None and lvl.get("suppressed") else "无学业水平数据"
        )
    elif schemas.LEVELS.index(code) < schemas.LEVELS.index(need):
        fails.append(f"学业水平{ROMAN[code]}，未达到{need_roman}")
    state = sdr["light"]["state"]
    where = "官方值" if sdr["basis"] == "official" else ""
    if state == "fail":
        fails.append(f"校际差异率{where} {sdr['shown']} ≥ {thr:g}")
    elif state == "na":
        reason = sdr["light"]["text"].removeprefix("无法判定（").removesuffix("）")
        unknown.append(f"校际差异率{reason}")
    if fails:
        verdict = light("fail", "未达标：" + "；".join(fails))
    elif unknown:
        verdict = light("na", "无法判定：" + "；".join(unknown))
    else:
        verdict = light("pass", "达标")
    level_text = f.est(lvl, "level") if lvl is not None else MISSING
    return {
        "label": cell_label(grade, subject),
        "level": level_text,
        "sdr": sdr["shown"] + ("（官方）" if sdr["basis"] == "official" else ""),
        "sdr_cell": sdr,
        "light": verdict,
        "level_fails": code is not None and schemas.LEVELS.index(code) < schemas.LEVELS.index(need),
        "sdr_fails": state == "fail",
    }


def quality_overall(items: Sequence[Mapping]) -> dict:
    """The county's 优质均衡 quality item: 达标 only if every grade × subject item is 达标."""
    if not items:
        return light("na", "无法判定：无学业数据")
    states = [it["light"]["state"] for it in items]
    n = len(items)
    if all(s == "pass" for s in states):
        return light("pass", f"达标（{n} 个年级学科均达标）")
    n_fail, n_na = states.count("fail"), states.count("na")
    if n_fail:
        text = f"未达标（{n} 个年级学科中 {n_fail} 个未达标"
        text += f"，{n_na} 个无法判定）" if n_na else "）"
        return light("fail", text)
    return light("na", f"无法判定（{n} 个年级学科中 {n_na} 个无法判定，其余达标）")
