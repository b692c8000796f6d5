"""Pure core of the report stage: processed tables in, display-ready view models out.

Nothing here computes a statistic. Every number shown is a value of one row of
``indicators.parquet``, ``resource_balance.parquet``, ``county_reports.parquet`` (province / nation
benchmarks), ``problems.parquet``, ``comparisons.parquet`` or the validation outputs, formatted with
the decimals of ``params.yaml`` (scores 1, percentages 1, rates 3). The only derived figures are
*counts of rows* (schools passing the 6-of-7 rule, problems per severity, rows set aside per rule)
and comparisons of a shown value with a regulatory threshold (the 优质均衡 quality item: level ≥ Ⅲ
and 校际差异率 < 0.15, :mod:`pipeline.report.verdicts`). Every 「显著差于 / 显著优于 / 无显著差异」
label is the verdict of a row of ``comparisons.parquet``; without a row the page says 未检验.

Suppression: a row flagged ``suppressed`` (fewer than 10 students or 3 schools, decided by the
indicators stage) is shown as "—" with a footnote and is never drawn in a chart. As a safety net the
same rule is re-applied here from ``n_students`` / ``n_schools`` (params ``min_students`` /
``min_schools``), so a row that slipped through unflagged is still hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams
from pipeline.report import city, provenance
from pipeline.report.factors import factors_view, summary_note
from pipeline.report.formats import (
    MISSING,
    SUPPRESSED,
    Fmt,
    ViewRules,
    _flag,
    _isnum,
    _key_part,
    _n,
    _num,
    _point,
    _table,
    _txt,
    cell_label,
    group_label,
    kind_of,
    light,
    method_label,
)
from pipeline.report.problems import (
    CLOSEOUT_TITLE,
    FIRST_ROUND_TEXT,
    PROBLEM_PREVIOUS,
    SEVERITY_ORDER,
    closeout_table,
    open_by_id,
    open_by_indicator,
    previous_label,
    problem_section,
    problems_for,
    split,
)
from pipeline.report.provenance import data_quality, source_files
from pipeline.report.verdicts import (
    BURDEN_RULES,
    FOUR_DOMAINS_NOTE,
    NONPOS_NOTE,
    OFFICIAL_BASIS_NOTE,
    POOLED_NAME,
    POOLED_NOTE,
    UNSURE_MARK,
    UNTESTED,
    Comparisons,
    bench_name,
    bench_text,
    comparison_light,
    quality_item,
    quality_overall,
    sdr_cell,
    sdr_ci_verdict,
    verdict_label,
)

OFFICIAL_NOTE = "标 * 的数值取自官方区县监测报告。"
POOLED_SHORT_NOTE = f"{POOLED_NAME}：各样本县学生合并计算，不代表全市。"

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
STAGE_ORDER = ("primary", "junior")

KEY = ("year", "county_code", "grade", "subject", "indicator", "group_var", "group_value")


# ------------------------------------------------------------------------------------------------
# Preparing the input tables
# ------------------------------------------------------------------------------------------------


def prepare_indicators(ind: pd.DataFrame, rules: ViewRules) -> pd.DataFrame:
    """Normalise keys, apply the suppression safety net, keep one row per key and source.

    Where a county report printed a value (``source = official``) beside the computed one, both
    rows stay: :class:`Lookup` shows the official one first (domain rule: "an official value from
    a county report wins") and the 校际差异率 tables show the two side by side.
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
        .drop_duplicates([*KEY, "source_rank"], keep="first")
        .reset_index(drop=True)
    )


def _records_by(df: pd.DataFrame, key: Sequence[str]) -> dict[tuple, dict]:
    recs = df.to_dict("records")
    return {tuple(_key_part(r[k]) for k in key): r for r in recs}


class Lookup:
    """Fast access to indicator rows (official first, or either source) and province / nation
    benchmark rows."""

    def __init__(self, ind: pd.DataFrame, bench: pd.DataFrame):
        self.rows: dict[tuple, dict] = {}
        self._official: dict[tuple, dict] = {}
        self._local: dict[tuple, dict] = {}
        if not ind.empty:
            official = ind["source"].astype(str) == "official"
            first = ind.sort_values([*KEY, "source_rank"], kind="stable").drop_duplicates(
                list(KEY), keep="first"
            )
            self.rows = _records_by(first, KEY)
            self._official = _records_by(ind[official].drop_duplicates(list(KEY)), KEY)
            self._local = _records_by(ind[~official].drop_duplicates(list(KEY)), KEY)
        self.bench: dict[tuple, dict] = {}
        self.bench_any: dict[tuple, dict] = {}
        self._county: list[dict] = []  # the county's own values printed in its county report
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
            own = b[b["scope"] == "county"].sort_values(list(KEY), kind="stable")
            self._county = [{k: _key_part(v) for k, v in r.items()} for r in own.to_dict("records")]
            b = b[b["scope"].isin(["province", "nation"])].sort_values(
                [*KEY, "scope"], kind="stable"
            )
            self.bench = _records_by(b, (*KEY, "scope"))
            no_county = [k for k in KEY if k != "county_code"]
            self.bench_any = _records_by(
                b.drop_duplicates([*no_county, "scope"]), (*no_county, "scope")
            )

    @staticmethod
    def _key(year, county, grade, subject, indicator, gv, gval) -> tuple:
        return (year, county, _key_part(grade), subject, indicator, gv, gval)

    def get(self, year, county, grade, subject, indicator, gv="", gval="") -> dict | None:
        """The row shown for a key: the official one when there is one."""
        return self.rows.get(self._key(year, county, grade, subject, indicator, gv, gval))

    def official(self, year, county, grade, subject, indicator, gv="", gval="") -> dict | None:
        return self._official.get(self._key(year, county, grade, subject, indicator, gv, gval))

    def local(self, year, county, grade, subject, indicator, gv="", gval="") -> dict | None:
        """The row computed from student data (never the official one)."""
        return self._local.get(self._key(year, county, grade, subject, indicator, gv, gval))

    def county_values(self, year, county) -> list[dict]:
        """The county's own values printed in its county report (``scope = county``), key order."""
        return [r for r in self._county if r["year"] == year and str(r["county_code"]) == county]

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


def lk_rows(lk: Lookup, year, county, indicator) -> list[dict]:
    """All rows of one indicator for a county-year, in key order."""
    out = [r for k, r in lk.rows.items() if k[0] == year and k[1] == county and k[4] == indicator]
    return sorted(
        out,
        key=lambda r: (_key_part(r["grade"]) or 0, r["subject"], r["group_var"], r["group_value"]),
    )


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
    # the evidence stage's tests of every county value (None: an older run without the file)
    comparisons: pd.DataFrame | None = None
    # rows that passed validation per table, year, county and file (provenance.row_counts; None:
    # no validated tables, data-quality counts then come from the pooled validation summary)
    row_counts: pd.DataFrame | None = None
    # the indicators stage's 相关因素 estimates (schemas.FACTORS; None: no factors.parquet)
    factors: pd.DataFrame | None = None


def is_first_round(inp: Inputs, year: int) -> bool:
    """True when the data holds no previous round for ``year``.

    A previous round exists when ``previous_problems`` has a row of an earlier year (the evidence
    stage compares against the latest such year) or when any row of ``year`` carries a re-check
    status other than 'new' (so a report without the previous list still shows them).
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
    cmp = Comparisons(inp.comparisons)
    name = monitoring.county_name(county)
    cells = subject_cells(inp.indicators, year, county, monitoring)
    q_grades = questionnaire_grades(inp.indicators, year, county)
    probs = problems_for(inp.problems, year, county)
    open_, _ = split(probs)

    achievement = _achievement(f, lk, year, county, cells)
    balance = _balance(f, lk, cmp, year, county, cells, rules)
    resources = _resources(f, inp, year, county, rules)
    burden = _burden(f, lk, cmp, year, county, q_grades, open_, rules)
    first = is_first_round(inp, year)
    problems = problem_section(f, probs, first_round=first)
    quality = [quality_item(f, lk, year, county, g, s, rules) for g, s in cells]
    overall = quality_overall(quality)
    findings = _findings(
        f, lk, cmp, year, county, cells, q_grades, resources, problems, overall, rules
    )
    return {
        "kind": "county",
        "year": year,
        "county_code": county,
        "county_name": name,
        "title": f"{name}{year}年义务教育质量监测结果报告",
        "cells": [cell_label(g, s) for g, s in cells],
        "findings": findings,
        "quality": quality,
        "quality_overall": overall,
        "quality_note": NONPOS_NOTE
        if any(q["sdr_cell"]["nonpos"] and q["sdr_cell"]["basis"] == "local" for q in quality)
        else "",
        "four_domains": FOUR_DOMAINS_NOTE.format(thr=f"{rules.quality_sdr_max:g}"),
        "achievement": achievement,
        # after the achievement chapter's two figures
        "factors": factors_view(inp.factors, year, county, rules, first_figure=3),
        "balance": balance,
        "resources": resources,
        "burden": burden,
        "problems": problems,
        "methods": _methods(f, inp, lk, year, county, cells, q_grades, rules),
        "scope": provenance.scope(rules.quality_sdr_max),
        "date": provenance.report_date(year),
        "internal_mark": provenance.INTERNAL_MARK,
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


def _sdr_note(cells: Sequence[Mapping], extra: str = "") -> str | None:
    parts = []
    if any(c["official"] is not None for c in cells):
        parts.append(OFFICIAL_BASIS_NOTE)
    if any(c["nonpos"] for c in cells):
        parts.append(NONPOS_NOTE)
    if extra:
        parts.append(extra)
    return " ".join(parts) or None


def _sdr_table(
    columns: list[str],
    rows: list[list[str]],
    cells: Sequence[Mapping],
    *,
    official_col: int,
    note: str | None,
    not_suppressed: Sequence[tuple[int, int]] = (),
) -> dict:
    """A 校际差异率 table; its 官方值 column only when some row has an official value."""
    if not any(c["official"] is not None for c in cells):
        j = official_col
        columns = columns[:j] + columns[j + 1 :]
        rows = [r[:j] + r[j + 1 :] for r in rows]
        not_suppressed = [(i, k - (k > j)) for i, k in not_suppressed]
    return _table(columns, rows, note=note, not_suppressed=not_suppressed)


def _balance(f: Fmt, lk: Lookup, cmp: Comparisons, year, county, cells, rules: ViewRules) -> dict:
    thr = rules.quality_sdr_max
    sdr_rows, sdr_chart, sdr_cells, gap_rows, gap_chart = [], [], [], [], []
    for g, s in cells:
        label = cell_label(g, s)
        c = sdr_cell(f, lk, year, county, g, s, thr)
        sdr_cells.append(c)
        sdr_rows.append([
            label, c["official_text"], c["local_text"], c["ci"],
            f.est(lk.local(year, county, g, s, "eta_squared"), "rate"),
            f.est(lk.local(year, county, g, s, "school_mean_cv"), "rate"),
            _n(c["local"] if c["local"] is not None else c["official"], "n_schools"),
            c["light"]["text"],
        ])  # fmt: skip
        sdr_chart.append((label, {"county": c["point"], "official": c["official_point"]}))
    has_standard = False
    for r in lk_rows(lk, year, county, "gap_mean_score"):
        label = cell_label(r["grade"], r["subject"])
        gv, gval = r["group_var"], r["group_value"]
        gl = f"{schemas.GROUP_VAR_LABELS.get(gv, gv)}：{group_label(gv, gval)}"
        nat = lk.benchmark("nation", year, county, r["grade"], r["subject"], "gap_mean_score", gv, gval)  # fmt: skip
        test = cmp.get(year, county, r["grade"], r["subject"], "gap_mean_score", "GAP", gv, gval)
        shown = not r.get("suppressed")
        verdict = verdict_label(test) if shown else SUPPRESSED
        has_standard |= shown and test is not None and _txt(test.get("bench_scope")) == "standard"
        gap_rows.append([
            label, gl, f.est(r, "score"), f.ci(r, "score"), f.est(nat, "score"), verdict,
            _n(r, "n_students"),
        ])  # fmt: skip
        gap_chart.append(
            (f"{label} {gl}", {"county": _point(r), "nation": _point(nat) if shown else None})
        )
    gap_note = (
        "检验结论与问题清单的检验相同：本县差距与全国差距比较；无全国参照值时，“标准”指问题清单规则"
        "所设的最小需关注差距。"
        if has_standard
        else "检验结论与问题清单的检验相同：本县差距与全国差距比较。"
    )
    if not cmp.available:
        gap_note = "本轮没有比较检验结果（comparisons.parquet），检验结论一栏均为“未检验”。"
    return {
        "sdr": _sdr_table(
            [
                "年级学科",
                "官方值",
                "本地估计",
                "本地估计 95%置信区间",
                "η²",
                "校均分差异系数",
                "学校数",
                f"是否低于 {thr:g}",
            ],
            sdr_rows,
            sdr_cells,
            official_col=1,
            note=_sdr_note(sdr_cells),
        ),  # fmt: skip
        "has_official": any(c["official"] is not None for c in sdr_cells),
        "sdr_chart_rows": sdr_chart,
        "gaps": _table(
            [
                "年级学科",
                "群体差异",
                "平均成绩差",
                "95%置信区间",
                "全国差距",
                "检验结论",
                "学生数",
            ],
            gap_rows,
            note=gap_note if gap_rows else None,
        ),  # fmt: skip
        "gap_chart_rows": gap_chart,
    }


def _sdr_findings(f: Fmt, lk: Lookup, year, county, cells, rules: ViewRules) -> list[str]:
    """Headline sentences on 校际差异率 (official value when there is one, else the local
    estimate): the subjects at or above the standard, and how many of the verdicts the 95%
    intervals bear out (wholly above / wholly below) or leave open (interval contains the
    standard: within sampling error with 8–12 schools)."""
    thr = rules.quality_sdr_max
    bad, n_good = [], 0
    bad_v: list[str | None] = []
    good_v: list[str | None] = []
    for g, s in cells:
        c = sdr_cell(f, lk, year, county, g, s, thr)
        state = c["light"]["state"]
        basis = c["official"] if c["basis"] == "official" else c["local"]
        if state == "fail":
            where = "（官方值）" if c["basis"] == "official" else ""
            bad.append(f"{cell_label(g, s)} {c['shown']}{where}")
            bad_v.append(sdr_ci_verdict(basis, thr))
        elif state == "pass":
            n_good += 1
            good_v.append(sdr_ci_verdict(basis, thr))
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
            verdict = sub["passes"].astype("boolean")
            n_pass = int(verdict.fillna(False).sum())  # counts of rows
            n_na = int(verdict.isna().sum())  # 数据不全，无法判定: neither passing nor failing
            counts.append({"stage": schemas.STAGE_LABELS.get(st, st), "n": n_all, "n_pass": n_pass,
                           "n_na": n_na})  # fmt: skip
        # Never ranked: failing schools listed in school-id order only.
        bad = sc[sc["passes"].astype("boolean").eq(False).fillna(False).astype(bool)].sort_values(
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


def _burden_standard(rules: ViewRules, indicator: str, grade: int, test: Mapping | None) -> str:
    """The regulation's standard in words (params ``report.burden_standards``); 视力不良 has none:
    it is compared with the national (or the tested benchmark's) 视力不良 figure."""
    if indicator == "pct_myopia":
        name = bench_name(test) if test is not None else schemas.SCOPE_LABELS["nation"]
        return f"无统一标准，与{name}视力不良比例比较"
    return _txt((rules.burden_standards.get(indicator) or {}).get(grade))


def _burden(
    f: Fmt,
    lk: Lookup,
    cmp: Comparisons,
    year,
    county,
    grades,
    open_: pd.DataFrame,
    rules: ViewRules,
) -> dict:
    rows, lights, panels = [], [], []
    by_id, by_indicator = open_by_id(open_), open_by_indicator(open_)
    for g in grades:
        cats, vals = [], {"county": [], "province": [], "nation": []}
        for ind in (*BURDEN_INDICATORS, *BURDEN_MEANS):
            row = lk.get(year, county, g, "", ind)
            if row is None:
                continue
            prov = lk.benchmark("province", year, county, g, "", ind)
            nat = lk.benchmark("nation", year, county, g, "", ind)
            kind = kind_of(ind)
            lt, test = None, None
            if ind in BURDEN_INDICATORS:
                test = cmp.get(year, county, g, "", ind, BURDEN_RULES[ind])
                problem = _burden_problem(test, g, ind, by_id, by_indicator)
                lt = burden_conclusion(f, ind, row, test, problem)
            rows.append([
                schemas.GRADE_LABELS.get(g, str(g)), schemas.INDICATOR_LABELS.get(ind, ind),
                f.est(row, kind), f.ci(row, kind), f.est(prov, kind), f.est(nat, kind), _n(row, "n_students"),
                lt["text"] if lt else "",
            ])  # fmt: skip
            if lt is not None:
                reference = bench_text(f, test, kind) or (
                    f"{schemas.SCOPE_LABELS['nation']} {f.est(nat, kind)}" if nat else ""
                )
                lights.append(
                    {
                        "label": f"{schemas.GRADE_LABELS.get(g, g)} {schemas.INDICATOR_LABELS.get(ind, ind)}",
                        "value": f.est(row, kind),
                        "standard": _burden_standard(rules, ind, g, test),
                        "reference": reference,
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
            ["年级", "指标", "本县", "95%置信区间", "全省", "全国", "学生数", "检验结论"], rows
        ),
        "lights": lights,
        "panels": [p for p in panels if p[1]],
        "tested": cmp.available,
    }


def _burden_problem(
    test: Mapping | None, grade, indicator: str, by_id: Mapping, by_indicator: Mapping
) -> dict | None:
    """The open problem a burden / health comparison belongs to: the one its ``problem_id``
    names when it fires; without a comparison (an older run) the most severe open problem
    measured this round on the same grade and indicator."""
    if test is not None:
        if not (_flag(test.get("fires")) or _txt(test.get("verdict")) == "worse"):
            return None
        hit = by_id.get(_txt(test.get("problem_id")))
        if hit is not None:
            return hit
    return by_indicator.get((grade, indicator)) or by_indicator.get((None, indicator))


def burden_conclusion(
    f: Fmt,
    indicator: str,
    row: Mapping | None,
    test: Mapping | None,
    problem: Mapping | None = None,
) -> dict:
    """The conclusion of a burden / health item, in words a reader acts on.

    Significance is never decided here: the evidence stage tested every burden / health item
    against its benchmark (one-sided, BH-corrected) and wrote the verdict to ``comparisons``. So

    * a comparison row → its label (显著差于全国 / 显著优于全国 / 与全国无显著差异 / 未检验), with
      「已列入问题清单，高」 when it is worse and belongs to an open problem;
    * no comparison row (an older run) → 「已列入问题清单（高）」 when an open problem on the item
      exists, else 未检验 — never a label no test produced.
    """
    if row is None or row.get("suppressed") or _num(row.get("estimate")) is None:
        return light("na")
    sev = _txt((problem or {}).get("severity"))
    if test is None:
        if sev:
            out = light("fail" if sev == "高" else "warn", f"已列入问题清单（{sev}）")
            return {**out, "short": f"已列入问题清单，{sev}"}
        return {**light("na", UNTESTED), "short": UNTESTED}
    return comparison_light(test, sev)


def _findings(
    f: Fmt,
    lk: Lookup,
    cmp: Comparisons,
    year,
    county,
    cells,
    q_grades,
    resources,
    problems,
    overall,
    rules: ViewRules,
) -> list[str]:
    """Key findings as short sentences, every number taken from a row shown elsewhere in the report."""
    need = schemas.LEVEL_LABELS.get(rules.quality_min_level, rules.quality_min_level).split()[0]
    out = []
    if cells:
        out.append(
            f"优质均衡质量指标（各年级学科学业水平达到{need}级以上且校际差异率低于 "
            f"{rules.quality_sdr_max:g}）：{overall['text']}。"
        )
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
        test = cmp.get(year, county, g, s, "mean_score", "MEAN")
        if test is not None:
            text += f"，{verdict_label(test)}"
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
            test = cmp.get(year, county, g, "", "pct_homework_over_limit", "HOMEWORK")
            extra = [f"全国 {f.est(nat, 'percent')}"] if nat else []
            if test is not None:
                extra.append(verdict_label(test))
            text = f"{schemas.GRADE_LABELS.get(g, g)}学生书面作业超时比例 {f.est(row, 'percent')}"
            out.append(text + (f"（{'，'.join(extra)}）。" if extra else "。"))
    closeouts = (
        f"上一轮问题中 {problems['n_closeouts']} 项已达标，建议销号（不计入问题数）"
        if problems["n_closeouts"]
        else ""
    )
    if problems["n"]:
        sev = "、".join(f"{s} {n} 项" for s, n in problems["severity_counts"])
        text = f"本轮问题清单共 {problems['n']} 项" + (f"（严重程度：{sev}）" if sev else "")
        prev = [(lab, n) for lab, n in problems["previous_counts"] if "建议销号" not in lab]
        if prev:  # the parts add up to the total: new ones first, then last round's
            n_new = problems["n"] - sum(n for _, n in prev)
            parts = [(previous_label("new"), n_new), *prev] if n_new else prev
            text += "；与上一轮相比：" + "、".join(f"{lab} {n} 项" for lab, n in parts)
        out.append(text + (f"；另有{closeouts}" if closeouts else "") + "。")
    else:
        out.append(
            "本轮未发现需列入问题清单的问题" + (f"；{closeouts}" if closeouts else "") + "。"
        )
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
    n_out = provenance.set_aside(inp.quarantine, year, county)
    return {
        "samples": _table(["项目", "学生数", "学校数", "方法", "来源"], rows),
        "quality": data_quality(
            inp.quarantine,
            inp.validation_summary,
            year,
            county,
            inp.row_counts,
            inp.previous_problems,
        ),
        "sources": source_files(
            inp.manifest, inp.row_counts, inp.quarantine, year, county, inp.previous_problems
        ),
        "reconciliation": provenance.reconciliation(f, lk, year, county, n_out),
    }


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
    """Everything the city summary shows for one round: the counties side by side (code order,
    never ranked) and the pooled row of all sample counties (样本县合计)."""
    f = Fmt(rules)
    city = monitoring.city_code
    thr = rules.quality_sdr_max
    cells = _summary_cells(inp.indicators, year, [*counties, city], monitoring)
    units = [(c, monitoring.county_name(c)) for c in counties]
    has_city = not inp.indicators[
        (inp.indicators["year"] == year) & (inp.indicators["county_code"] == city)
    ].empty
    if has_city:
        units.append((city, POOLED_NAME))
    ach_tables, mean_chart = _summary_achievement(f, lk, year, cells, units, counties, city)
    sdr_table, sdr_chart = _summary_sdr(f, lk, year, cells, units, city, thr)
    grades = sorted({g for c, _ in units for g in questionnaire_grades(inp.indicators, year, c)})
    first = is_first_round(inp, year)
    names = {c: monitoring.county_name(c) for c in counties}
    return {
        "overview": _summary_overview(
            f, inp, lk, year, counties, cells, grades, rules, monitoring, first
        ),
        "kind": "summary",
        "year": year,
        "title": f"{monitoring.city_name}{year}年义务教育质量监测结果汇总报告",
        "counties": [{"code": c, "name": monitoring.county_name(c)} for c in counties],
        "achievement": ach_tables,
        "mean_chart_rows": mean_chart,
        "sdr_chart_rows": sdr_chart,
        "sdr": sdr_table,
        "resources": _summary_resources(f, inp, year, names, rules),
        "burden": _summary_burden(f, lk, year, grades, units, counties, city, has_city),
        **_summary_problems(f, inp.problems, year, counties, names, first),
        "first_round": first,
        "first_round_text": FIRST_ROUND_TEXT,
        "factors_note": summary_note(inp.factors, year),
        "quality": data_quality(
            inp.quarantine,
            inp.validation_summary,
            year,
            None,
            inp.row_counts,
            inp.previous_problems,
        ),
        "sources": source_files(
            inp.manifest, inp.row_counts, inp.quarantine, year, None, inp.previous_problems
        ),
        "four_domains": FOUR_DOMAINS_NOTE.format(thr=f"{thr:g}"),
        "scope": provenance.scope(thr),
        "date": provenance.report_date(year),
        "internal_mark": provenance.INTERNAL_MARK,
        **_leadership(f, inp, lk, year, counties, cells, grades, names, rules, first),
    }


def _leadership(
    f: Fmt,
    inp: Inputs,
    lk: Lookup,
    year: int,
    counties: Sequence[str],
    cells,
    grades,
    names: Mapping[str, str],
    rules: ViewRules,
    first: bool,
) -> dict:
    """The summary's first pages: conclusions in sentences, the 整改任务分解 with the city-wide
    common problems, and the facts per county for a 监测结果运用实验区 application
    (:mod:`pipeline.report.city`; every part a row shown elsewhere or a count of rows)."""
    thr = rules.quality_sdr_max
    cmp = Comparisons(inp.comparisons)
    need = schemas.LEVEL_LABELS.get(rules.quality_min_level, rules.quality_min_level).split()[0]
    quality, failing, schools, worse, per_county = {}, {}, {}, {}, {}
    for c in counties:
        items = [quality_item(f, lk, year, c, g, s, rules) for g, s in cells
                 if _has_cell(lk, year, c, g, s)]  # fmt: skip
        quality[c] = (quality_overall(items), items)
        res = _resources(f, inp, year, c, rules)
        schools[c] = res["school_counts"]
        failing[c] = _resource_failures(f, inp.resource_balance, year, c)
        worse[c] = [
            text
            for g in grades
            for ind in BURDEN_INDICATORS
            if (test := cmp.get(year, c, g, "", ind, BURDEN_RULES[ind])) is not None
            and lk.get(year, c, g, "", ind) is not None
            and (text := city.burden_worse_text(f, test, g, ind, bench_name(test)))
        ]
        per_county[c] = problems_for(inp.problems, year, c)
    probs = (
        pd.concat(per_county.values())
        if per_county
        else pd.DataFrame(columns=schemas.PROBLEMS.names)
    )
    open_, _ = split(probs)
    items = city.task_items(open_, thr)
    conclusions = [
        city.quality_sentence(names, quality, thr, need),
        city.resource_sentence(names, failing),
        city.school_sentence(names, schools),
        city.burden_sentence(names, worse, cmp.available),
        *city.problem_sentences(f, probs, counties, names, first, FIRST_ROUND_TEXT),
    ]
    # the rounds a pilot application looks at: this one and the one before it in the data
    rounds = sorted({int(y) for y in inp.indicators["year"] if int(y) <= year})[-2:]
    facts, reconciled = [], {}
    for c in counties:
        n_out = provenance.set_aside(inp.quarantine, year, c)
        reconciled[c] = provenance.reconciliation(f, lk, year, c, n_out)
        facts.append(city.pilot_facts(
            names.get(c, c), per_county[c], first=first,
            student_years=_student_years(inp.indicators, c), years_in_data=rounds,
            n_set_aside=n_out, n_students=provenance.passed_rows(inp.row_counts, "students", year, c),
            reconciled=reconciled[c],
        ))  # fmt: skip
    tmap = city.task_map(items, counties, names, rules.common_share)
    common = tmap["common"]
    return {
        "conclusions": [x for x in conclusions if x],
        "task_map": tmap,
        "task_notes": city.task_notes(items, open_, names),
        "common": city.common_lines(common, names),
        "n_common": len(common["types"]),
        "common_rule": (
            f"在半数及以上（{len(counties)} 个区县中至少 {common['min_counties']} 个）区县出现的问题类型"
        ),
        "common_mark": city.COMMON_MARK,
        "pilot": facts,
        "reconciled": "、".join(
            f"{names.get(c, c)} {r['n_differ']} 项" for c, r in reconciled.items() if r["n_checked"]
        ),
    }


def _resource_failures(f: Fmt, rb: pd.DataFrame | None, year, county) -> list[str]:
    """「小学 L2 骨干教师 0.710」 per resource CV above its standard (rows with passes false)."""
    if rb is None or rb.empty:
        return []
    sub = rb[(rb["year"] == year) & (rb["county_code"].astype(str) == county)]
    out = []
    for st in [*STAGE_ORDER, *sorted(set(sub["stage"]) - set(STAGE_ORDER))]:
        for r in sub[sub["stage"] == st].sort_values("indicator").to_dict("records"):
            if _isnum(r.get("passes")) and not bool(r["passes"]):
                label = city.resource_label(st, _txt(r.get("indicator")))
                out.append(f"{label} {f.num(r.get('cv'), 'rate')}")
    return out


def _student_years(ind: pd.DataFrame, county: str) -> list[int]:
    """Years with estimates computed from student-level data for the county (not official)."""
    mine = ind[(ind["county_code"] == county) & (ind["source"].astype(str) != "official")]
    n = pd.to_numeric(mine["n_students"], errors="coerce")
    return sorted({int(y) for y in mine.loc[n > 0, "year"]})


def _summary_cells(ind: pd.DataFrame, year, codes, monitoring: MonitoringParams) -> list:
    """(grade, subject) pairs of any county (or the pooled row), in the rotation's order."""
    cells: list[tuple[int, str]] = []
    for c in codes:
        for cell in subject_cells(ind, year, c, monitoring):
            if cell not in cells:
                cells.append(cell)
    rotation = monitoring.rotation.get(year, {})
    return sorted(
        cells,
        key=lambda p: (
            p[0],
            list(rotation.get(p[0], ())).index(p[1]) if p[1] in rotation.get(p[0], ()) else 99,
            p[1],
        ),
    )


def _summary_achievement(f: Fmt, lk: Lookup, year, cells, units, counties, city):
    """One table per grade × subject (counties, 样本县合计, province, nation) and the mean chart."""
    tables, chart = [], []
    ref_county = counties[0] if counties else city
    for g, s in cells:
        label = cell_label(g, s)
        rows = []
        for code, name in units:
            mean = lk.get(year, code, g, s, "mean_score")
            rows.append([
                name, f.est(mean, "score"), f.ci(mean, "score"),
                f.est(lk.get(year, code, g, s, "pct_medium_or_above"), "percent"),
                f.est(lk.get(year, code, g, s, "pct_good_or_above"), "percent"),
                f.est(lk.get(year, code, g, s, "achievement_level"), "level"),
                _n(mean, "n_students"), _n(mean, "n_schools"),
            ])  # fmt: skip
            nat = lk.benchmark("nation", year, code, g, s, "mean_score")
            chart.append((f"{label}·{name}", {"county": _point(mean), "nation": _point(nat)}))
        for scope, scope_label in (("province", "全省"), ("nation", "全国")):
            b = lk.benchmark(scope, year, ref_county, g, s, "mean_score")
            if b is not None:
                med = lk.benchmark(scope, year, ref_county, g, s, "pct_medium_or_above")
                rows.append([scope_label, f.est(b, "score"), "", f.est(med, "percent"), "", "", "", ""])  # fmt: skip
        columns = ["区县", "平均成绩", "95%置信区间", "中等及以上", "良好及以上", "学业水平",
                   "学生数", "学校数"]  # fmt: skip
        pooled = any(code == city for code, _ in units)
        tables.append(
            {"label": label, "table": _table(columns, rows, note=POOLED_SHORT_NOTE if pooled else None)}
        )  # fmt: skip
    return tables, chart


def _summary_sdr(f: Fmt, lk: Lookup, year, cells, units, city, thr: float):
    """校际差异率 of every county (official and local side by side, with the verdict) and of the
    pooled row (the number only: its verdict is "—", explained in the note)."""
    rows, shown, pooled_cells, chart = [], [], [], []
    for g, s in cells:
        label = cell_label(g, s)
        first = True
        for code, name in units:
            pooled = code == city
            c = sdr_cell(f, lk, year, code, g, s, thr, pooled=pooled)
            if c["official"] is None and c["local"] is None:
                continue
            if pooled:
                pooled_cells.append((len(rows), 6))  # its verdict column
            else:
                chart.append((f"{label}·{name}", {"county": c["point"]}))
            shown.append(c)
            rows.append([
                label if first else "", name, c["official_text"], c["local_text"], c["ci"],
                _n(c["local"] if c["local"] is not None else c["official"], "n_schools"),
                c["light"]["text"],
            ])  # fmt: skip
            first = False
    table = _sdr_table(
        ["年级学科", "区县", "官方值", "本地估计", "本地估计 95%置信区间", "学校数",
         f"是否低于 {thr:g}"],
        rows,
        shown,
        official_col=2,
        note=_sdr_note(shown, POOLED_NOTE if pooled_cells else ""),
        not_suppressed=pooled_cells,
    )  # fmt: skip
    return table, chart


def _summary_resources(f: Fmt, inp: Inputs, year, names: Mapping, rules: ViewRules) -> dict:
    rows = []
    for code, name in names.items():
        r = _resources(f, inp, year, code, rules)
        cvs = [f"{schemas.STAGE_LABELS.get(st, st)} {n_pass}/{n_all}"
               for st, (n_pass, n_all) in r["n_pass_by_stage"].items()]  # fmt: skip
        schools = [f"{c['stage']} {c['n_pass']}/{c['n']}" for c in r["school_counts"]]
        rows.append([
            name, "；".join(cvs) or MISSING, "；".join(schools) or MISSING
        ])  # fmt: skip
    return _table(["区县", "差异系数达标指标数（达标/总数）", "达标学校数（达标/总数）"], rows)


def _summary_burden(f: Fmt, lk: Lookup, year, grades, units, counties, city, has_city) -> dict:
    rows = []
    nat_ref = counties[0] if counties else city
    for g in grades:
        grade = schemas.GRADE_LABELS.get(g, str(g))
        for code, name in units:
            rows.append(
                [grade, name, *[f.est(lk.get(year, code, g, "", i)) for i in BURDEN_INDICATORS]]
            )
        nat = [lk.benchmark("nation", year, nat_ref, g, "", i) for i in BURDEN_INDICATORS]
        if any(n is not None for n in nat):
            rows.append([grade, "全国", *[f.est(n, "percent") for n in nat]])
    return _table(
        ["年级", "区县", *[schemas.INDICATOR_LABELS[i] for i in BURDEN_INDICATORS]],
        rows,
        note=POOLED_SHORT_NOTE if has_city and rows else None,
    )


def _summary_problems(f: Fmt, problems, year, counties, names: Mapping, first: bool) -> dict:
    """问题数 per county (problems only: 待整改 / 整改中) by severity and 与上一轮相比, the
    close-outs (建议销号) counted in their own column and listed in their own table; closed
    school items are only counted here (their names are in the county reports)."""
    prev_codes = [] if first else list(PROBLEM_PREVIOUS)
    rows, closeouts = [], []
    for code in counties:
        open_, closed = split(problems_for(problems, year, code))
        closeouts.append(closed)
        sev = open_["severity"].fillna("").value_counts()  # counts of rows
        prev = open_["previous_status"].fillna("").value_counts()
        rows.append([
            names.get(code, code), str(len(open_)), *[str(int(sev.get(s, 0))) for s in SEVERITY_ORDER],
            *[str(int(prev.get(k, 0))) for k in prev_codes], *([] if first else [str(len(closed))]),
        ])  # fmt: skip
    closed = pd.concat(closeouts) if closeouts else pd.DataFrame(columns=["rule_id"])
    school = closed["rule_id"].astype(str).eq("SCHOOL")
    school_counts = [
        f"{names.get(c, c)} {n} 所"
        for c, n in closed[school].groupby("county_code", sort=True).size().items()
    ]
    columns = ["区县", "问题数", "高", "中", "低", *[previous_label(k) for k in prev_codes],
               *([] if first else ["建议销号"])]  # fmt: skip
    return {
        "problems": _table(columns, rows),
        "closeouts": closeout_table(f, closed[~school], names) if (~school).any() else None,
        "school_closeouts": "、".join(school_counts),
        "closeout_title": CLOSEOUT_TITLE,
    }


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

    Every cell is a value of an indicator / resource / problem / comparison row, a count of rows,
    or the 优质均衡 quality verdict of :mod:`pipeline.report.verdicts`.
    """
    counties = sorted(counties)
    thr = rules.quality_sdr_max
    cmp = Comparisons(inp.comparisons)
    rows: list[list[str]] = []
    any_unsure = any_nonpos = False
    items = {
        c: [quality_item(f, lk, year, c, g, s, rules) for g, s in cells if _has_cell(lk, year, c, g, s)]
        for c in counties
    }  # fmt: skip
    need = schemas.LEVEL_LABELS.get(rules.quality_min_level, rules.quality_min_level).split()[0]
    rows.append(
        [
            "优质均衡质量指标\n（各年级学科均须达标）",
            *[quality_overall(items[c])["text"] for c in counties],
        ]
    )
    for g, s in cells:
        label = cell_label(g, s)
        levels = [f.est(lk.get(year, c, g, s, "achievement_level"), "level") for c in counties]
        cells_sdr = []
        for c in counties:
            sc = sdr_cell(f, lk, year, c, g, s, thr)
            st = sc["light"]["state"]
            word = {"pass": "（达标）", "fail": "（未达标）"}.get(st, "")
            if word and sc["unsure"]:
                word = word[:-1] + UNSURE_MARK + "）"
                any_unsure = True
            any_nonpos |= sc["nonpos"] and sc["basis"] == "local"
            where = "官方 " if sc["basis"] == "official" else ""
            cells_sdr.append(where + sc["shown"] + word)
        # one row per grade × subject: the level above the 校际差异率 (the two parts of the item)
        rows.append(
            [
                f"{label}\n学业水平；校际差异率（< {thr:g}）",
                *[f"{lv}\n{sd}" for lv, sd in zip(levels, cells_sdr, strict=True)],
            ]
        )
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
    opened = {c: split(problems_for(inp.problems, year, c)) for c in counties}
    for g in grades:
        for ind in BURDEN_INDICATORS:
            vals = []
            for c in counties:
                row = lk.get(year, c, g, "", ind)
                if row is None:
                    vals.append(MISSING)
                    continue
                open_ = opened[c][0]
                test = cmp.get(year, c, g, "", ind, BURDEN_RULES[ind])
                problem = _burden_problem(test, g, ind, open_by_id(open_), open_by_indicator(open_))
                lt = burden_conclusion(f, ind, row, test, problem)
                extra = f"（{lt['short']}）" if lt.get("short") else ""
                vals.append(f.est(row, "percent") + extra)
            if any(v != MISSING for v in vals):
                nat = lk.benchmark("nation", year, counties[0], g, "", ind) if counties else None
                lab = f"{schemas.GRADE_LABELS.get(g, g)}{schemas.INDICATOR_LABELS[ind]}"
                rows.append([lab + (f"（全国 {f.est(nat, 'percent')}）" if nat else ""), *vals])
    later = list(PROBLEM_PREVIOUS[1:])
    sev_row = ["问题数（高 / 中 / 低；不含建议销号）"]
    prev_row = ["上一轮问题：" + " / ".join(previous_label(k) for k in later)]
    close_row = ["上一轮问题已达标（建议销号）"]
    for c in counties:
        open_, closed = opened[c]
        sev = open_["severity"].fillna("").value_counts()  # counts of rows
        prev = open_["previous_status"].fillna("").value_counts()
        sev_row.append(
            f"{len(open_)}（" + "/".join(str(int(sev.get(x, 0))) for x in SEVERITY_ORDER) + "）"
        )
        prev_row.append("/".join(str(int(prev.get(k, 0))) for k in later))
        close_row.append(f"{len(closed)} 项")
    rows.append(sev_row)
    if not first_round:
        rows.append(prev_row)
        rows.append(close_row)
    notes = [
        f"优质均衡质量指标：每个年级学科均须学业水平{need}级以上且校际差异率 < {thr:g}。",
        FOUR_DOMAINS_NOTE.format(thr=f"{thr:g}"),
    ]
    if any_unsure:
        notes.append(f"{UNSURE_MARK} 95% 置信区间包含 {thr:g}，达标与否尚难定论。")
    if any_nonpos:
        notes.append(NONPOS_NOTE)
    if any(r[1:] and any(x.startswith("官方 ") for x in r[1:]) for r in rows):
        notes.append("“官方”表示取自区县国家义务教育质量监测报告的数值，以其判定。")
    if first_round:
        notes.append(f"上一轮问题：{FIRST_ROUND_TEXT}。")
    # one row per item, one column per county: the county cells are centred so levels, rates with
    # their verdict and counts line up the same way in every column
    return {
        "table": _table(
            ["项目", *[monitoring.county_name(c) for c in counties]],
            rows,
            note=" ".join(notes),
            align=["t wrap lines", *["c wrap lines"] * len(counties)],
            widths=[20, *[80 // max(len(counties), 1)] * len(counties)],
        ),
        "codes": counties,
    }


def _has_cell(lk: Lookup, year, county, grade, subject) -> bool:
    """The county has any achievement row for the grade × subject (a summary cell may come from
    another county)."""
    return any(
        lk.get(year, county, grade, subject, ind) is not None
        for ind in ("achievement_level", "school_difference_rate", "mean_score")
    )
