"""The ``indicators`` stage: design-based estimates, 校际差异率 and 优质均衡 resource balance.

Reads ``data/processed/validated/{students,scores,schools,county_reports}.parquet`` and writes

* ``indicators.parquet`` — one long table (columns and order: ``schemas.INDICATORS``), sorted by
  its key ``year, county_code, grade, subject, indicator, group_var, group_value, source``;
* ``resource_balance.parquet`` and ``school_compliance.parquet`` (``schemas.RESOURCE_BALANCE``,
  ``schemas.SCHOOL_COMPLIANCE``);
* ``factors.parquet`` — related factors (相关因素, ``schemas.FACTORS``) per county × grade (and
  subject), from the student questionnaire and, when present, ``validated/teachers.parquet`` and
  ``validated/principals.parquet`` (:mod:`pipeline.indicators.factor_estimates`);
* ``indicators_summary.json`` — headline counts (a DVC metric).

Conventions of ``indicators.parquet`` that the evidence and report stages rely on:

* ``county_code == monitoring.city_code`` (450100) marks estimates pooled over every county present
  (all counties' jackknife replicates together).
* ``group_var`` and ``group_value`` are the empty string (never NA) for whole-population rows;
  ``subject`` is the empty string for questionnaire indicators (``pct_homework_over_limit``,
  ``pct_sleep_sufficient``, ``pct_myopia``, ``pct_fitness_pass``, ``mean_homework_minutes``,
  ``mean_sleep_hours``). Subgroup rows use ``group_var`` ∈ gender, urban_rural, left_behind,
  migrant, ses_quartile with values female/male, urban/town/rural, left_behind/not_left_behind,
  migrant/non_migrant, Q1..Q4; ``gap_mean_score`` rows carry ``group_value`` like ``female-male``
  (first minus second; for migrants ``non_migrant-migrant``).
* ``sd_score`` is the weighted population SD of the score (per domain; evidence uses it for effect
  sizes). Percentages are 0–100. ``achievement_level`` is coded 1 = Ⅰ … 4 = Ⅳ, ``se`` NaN, and its CI
  bounds are the levels of the underlying estimate's CI bounds.
* ``ci_low/ci_high = estimate ± q·se`` for means, SDs, gaps, η² and the CV; for percentages
  (``pct_*``) the logit-scale interval of :func:`pipeline.indicators.scores.add_ci`; for
  校际差异率 the Fisher-z interval of :func:`pipeline.indicators.balance.icc_interval`
  (asymmetric, always t with the design df; ``indicators.icc_ci``). ``q`` follows
  ``indicators.ci_reference``: ``t_design_df`` (default) Student t at the level of ``ci_z`` with
  the row's design degrees of freedom (:func:`pipeline.indicators.survey.design_df`: a county
  row's schools with data − 1, the city row's schools − counties; the reference the evidence
  stage tests with), the normal ``ci_z`` where that df is below 1; ``normal``: ``ci_z``. Official
  rows have no school count and keep ``estimate ± ci_z·se``. The ``method`` text ends with the
  form and reference of the row's interval, e.g. ``CI estimate +/- q*SE with q from t(df =
  schools - strata = 9)``. A gap's two-sided p-value that agrees with its interval is
  :func:`pipeline.indicators.survey.t_p_value` with the same df (county rows: ``n_schools − 1``);
  :func:`~pipeline.indicators.survey.normal_p_value` is the normal one. The 校际差异率 verdict
  (below 0.15 with confidence / above with confidence / unsure) is
  :func:`pipeline.schemas.icc_verdict` of ``ci_low, ci_high``. Neither the p-value nor the df is
  a column: the contract's columns are fixed.
* ``method`` names the estimator (e.g. ``JKn jackknife ...; weighted mean``, ``ICC(1) one-way
  ANOVA (unweighted) ...``, ``eta squared ...``, ``student-weighted CV of school means ...``).
* ``suppressed`` is true when the estimate rests on fewer than 10 students or 3 schools (gaps:
  either group); such estimates are computed but must not be shown to people.
* ``source == 'official'`` rows carry a county report's printed ``school_difference_rate`` or
  ``achievement_level`` (scope county); they sit beside the computed row with the same key.

The related factors use the estimators of :mod:`pipeline.indicators.factors` (JKn replicate
regression with and without SES, two-level variance decomposition) through the batched fits of
:mod:`pipeline.indicators.factor_fits`, on the same design and plausible values.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.generations import require_upstream, stamped
from pipeline.indicators.balance import balance_estimates
from pipeline.indicators.factor_estimates import factor_estimates
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.resources import resource_balance, school_compliance
from pipeline.indicators.scores import (
    Prepared,
    prepare,
    questionnaire_estimates,
    score_estimates,
)
from pipeline.io import outputs, read_parquet

log = logging.getLogger(__name__)

__all__ = ["IndicatorsParams", "compute", "run", "stage_params"]

OFFICIAL_INDICATORS = ("school_difference_rate", "achievement_level")
STUDENT_COLUMNS = ("year", "student_id", "county_code", "school_id", "grade", "weight")
SCORE_COLUMNS = ("year", "student_id", "subject")
SCHOOL_COLUMNS = ("year", "county_code", "school_id", "stage", "enrollment")


def _require(frame: pd.DataFrame, cols: tuple[str, ...], table: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise EqmError(
            f"{table} 表缺少列：{', '.join(missing)}",
            file=f"data/processed/validated/{table}.parquet",
            hint="请重新运行 eqm ingest 和 eqm validate。",
        )


# 2e8: see the column's note in pipeline/schemas/inputs.py
MAX_WEIGHT = schemas.STUDENTS["weight"].max


def _require_positive_weights(students: pd.DataFrame) -> None:
    """Precondition: every student weight is a finite number above 0 and at most ``MAX_WEIGHT``.

    The design weights a student's answers by ``weight``; a weight that is missing, 0, negative or
    infinite cannot be one (a negative weight subtracts the student from the county's totals). The
    validate stage sets such rows aside (rule ``weight_invalid``), so one reaching this stage
    means the validated tables did not come from ``eqm validate``: refused, never left out
    silently. A weight above ``MAX_WEIGHT`` (one student standing for more students than China's
    whole compulsory-education population) is refused too: 1e308 is finite, but its sums overflow
    to ±inf estimates (validate sets such rows aside by their ratio to the median weight).
    """
    w = pd.to_numeric(students["weight"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~(np.isfinite(w) & (w > 0) & (w <= MAX_WEIGHT))
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    first = students.iloc[i]
    where = ""
    if "source_file" in students and pd.notna(first.get("source_file")):
        where = f"，来源 {first['source_file']}"
        if "source_row" in students and pd.notna(first.get("source_row")):
            where += f" 第 {int(first['source_row'])} 行"
    label = schemas.STUDENTS["weight"].display
    raise EqmError(
        f"学生数据中有 {int(bad.sum())} 人的{label}缺失、不大于 0、不是有限数或大得不合理（大于 2 亿）"
        f"（例如第 {i + 1} 条记录{where}：{students['weight'].iloc[i]}），不能作为抽样权重。",
        file="data/processed/validated/students.parquet",
        column="weight",
        hint="请运行 eqm validate（它会剔除这些学生并在校验页列出原因）；"
        "若权重确实有误，请改正原始数据后重新运行 eqm ingest 和 eqm validate。",
    )


def official_rows(county_reports: pd.DataFrame, z: float) -> pd.DataFrame:
    """Official county values (school_difference_rate, achievement_level) as ``source='official'``."""
    if county_reports is None or county_reports.empty:
        return pd.DataFrame()
    cr = county_reports.loc[
        county_reports["indicator"].isin(OFFICIAL_INDICATORS)
        & (county_reports["scope"] == "county")
        & county_reports["value"].notna()
    ]
    if cr.empty:
        return pd.DataFrame()

    def text(col: str) -> pd.Series:
        if col not in cr:
            return pd.Series("", index=cr.index)
        return cr[col].astype("string").fillna("").astype(str)

    se = (
        pd.to_numeric(cr["se"], errors="coerce")
        if "se" in cr
        else pd.Series(np.nan, index=cr.index)
    )
    n = pd.to_numeric(cr["n"], errors="coerce") if "n" in cr else pd.Series(np.nan, index=cr.index)
    page = text("source_page")
    est = cr["value"].astype(float)
    return pd.DataFrame(
        {
            "year": cr["year"].astype("int64"),
            "county_code": text("county_code"),
            "grade": cr["grade"].astype("int64"),
            "subject": text("subject"),
            "indicator": text("indicator"),
            "group_var": text("group_var"),
            "group_value": text("group_value"),
            "estimate": est,
            "se": se,
            "ci_low": est - z * se,
            "ci_high": est + z * se,
            "n_students": n.round().astype("Int64"),
            "n_schools": pd.array([pd.NA] * len(cr), dtype="Int64"),
            "method": ("official county report" + np.where(page != "", " p. " + page, "")),
            "source": "official",
            "suppressed": False,
        }
    ).reset_index(drop=True)


def finalize_indicators(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract columns, dtypes and order; rows sorted by the table key."""
    cols = schemas.INDICATORS.names
    if frame.empty:
        frame = pd.DataFrame({c: [] for c in cols})
    out = pd.DataFrame(
        {
            "year": frame["year"].astype("int64"),
            "county_code": frame["county_code"].astype(str),
            "grade": frame["grade"].astype("int64"),
            "subject": frame["subject"].astype(str),
            "indicator": frame["indicator"].astype(str),
            "group_var": frame["group_var"].astype(str),
            "group_value": frame["group_value"].astype(str),
            "estimate": frame["estimate"].astype(float),
            "se": frame["se"].astype(float),
            "ci_low": frame["ci_low"].astype(float),
            "ci_high": frame["ci_high"].astype(float),
            "n_students": pd.array(frame["n_students"], dtype="Int64"),
            "n_schools": pd.array(frame["n_schools"], dtype="Int64"),
            "method": frame["method"].astype(str),
            "source": frame["source"].astype(str),
            "suppressed": frame["suppressed"].astype(bool),
        }
    )[cols]
    dup = out.duplicated(list(schemas.INDICATORS.key), keep=False)
    if dup.any():
        first = out.loc[dup].iloc[0]
        if not (out.loc[dup, "source"] == "official").all():
            raise RuntimeError(f"duplicate computed indicator key: {first.to_dict()}")
        raise EqmError(
            f"区县监测报告中同一指标出现多次：{first['year']} 年 {first['county_code']} "
            f"{first['grade']} 年级 {first['subject']} {first['indicator']}",
            file="data/processed/validated/county_reports.parquet",
            hint="同一区县、年级、学科、指标的官方数值只能出现一次，请检查区县监测报告数据。",
        )
    return out.sort_values(list(schemas.INDICATORS.key), kind="stable").reset_index(drop=True)


def compute(
    students: pd.DataFrame,
    scores: pd.DataFrame,
    schools: pd.DataFrame,
    county_reports: pd.DataFrame | None,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
    prepared: Prepared | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Pure core: ``(indicators, resource_balance, school_compliance, summary)``.

    Preconditions (:class:`EqmError` otherwise): the required columns are present, every student
    weight is a finite number above 0, and no student carries the city code as its county.
    ``prepared``: :func:`scores.prepare` of the same students and scores, when the caller has it
    (the stage shares it with the related factors); made here otherwise.
    """
    _require(students, STUDENT_COLUMNS, "students")
    _require(scores, SCORE_COLUMNS, "scores")
    _require(schools, SCHOOL_COLUMNS, "schools")
    _require_positive_weights(students)
    if (students["county_code"].astype(str) == monitoring.city_code).any():
        raise EqmError(
            f"学生数据的区县代码中出现了全市代码 {monitoring.city_code}，它专用于全市汇总估计。",
            file="data/processed/validated/students.parquet",
            column="county_code",
            hint="请把这些学生改为其所在区县的代码，或在 params.yaml 的 monitoring.city_code 中核对全市代码。",
        )
    pr = prepared if prepared is not None else prepare(students, scores)
    enc, counties, merged, pv_cols, subjects = (
        pr.enc,
        pr.counties,
        pr.merged,
        pr.pv_cols,
        pr.subjects,
    )
    parts = [
        score_estimates(merged, pv_cols, counties, subjects, monitoring, params),
        balance_estimates(merged, pv_cols, counties, subjects, monitoring, params),
        questionnaire_estimates(enc, counties, monitoring, params),
    ]
    parts = [p for p in parts if not p.empty]
    computed = (
        pd.concat(parts, ignore_index=True).assign(source="computed") if parts else pd.DataFrame()
    )
    if computed.empty:
        log.warning("没有可用于估计的学生数据（有效权重、学校、区县和年级），只计算了资源配置指标")
    official = official_rows(county_reports, params.ci_z)
    ind = finalize_indicators(
        pd.concat([p for p in (computed, official) if not p.empty], ignore_index=True)
        if not (computed.empty and official.empty)
        else pd.DataFrame()
    )
    rb = resource_balance(schools, params)
    sc = school_compliance(schools, params)
    summary = make_summary(ind, rb, sc, monitoring, params)
    return ind, rb, sc, summary


def make_summary(
    ind: pd.DataFrame,
    rb: pd.DataFrame,
    sc: pd.DataFrame,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> dict:
    icc = ind.loc[
        (ind["indicator"] == "school_difference_rate")
        & (ind["source"] == "computed")
        & (ind["county_code"] != monitoring.city_code)
        & ~ind["suppressed"]  # cells that cannot be shown are not counted either
    ]
    verdict = pd.Series(schemas.icc_verdict(icc["ci_low"], icc["ci_high"], params.icc_threshold))
    return {
        "indicator_rows": len(ind),
        "indicator_rows_computed": int((ind["source"] == "computed").sum()),
        "indicator_rows_official": int((ind["source"] == "official").sum()),
        "indicator_rows_suppressed": int(ind["suppressed"].sum()),
        "icc_cells": len(icc),
        "icc_cells_at_or_above_threshold": int((icc["estimate"] >= params.icc_threshold).sum()),
        "icc_verdicts": {k: int((verdict == k).sum()) for k in ("below", "above", "unsure")},
        "icc_threshold": params.icc_threshold,
        "resource_balance_rows": len(rb),
        "resource_indicators_failing": int(rb["passes"].astype("boolean").eq(False).sum()),
        "resource_indicators_undetermined": int(rb["passes"].isna().sum()),
        "schools_in_scope": len(sc),
        "schools_failing": int(sc["passes"].astype("boolean").eq(False).sum()),
        "schools_undetermined": int(sc["passes"].isna().sum()),
    }


def lonely_strata(students: pd.DataFrame) -> list[tuple[int, int, str]]:
    """(year, grade, county) design strata with a single sampled school ("lonely PSU").

    The stratified jackknife cannot estimate a stratum's variance from one PSU, so such a stratum
    adds nothing to the variance of a pooled estimate (R survey stops with an error unless
    ``options(survey.lonely.psu=...)`` is set; Lumley 2010 §2.2). The run warns about each one.
    """
    if students.empty:
        return []
    n = (
        students.dropna(subset=["school_id"])
        .groupby(["year", "grade", "county_code"])["school_id"]
        .nunique()
    )
    return [(int(y), int(g), str(c)) for (y, g, c), k in n.items() if k == 1]


def _empty_reports() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in schemas.COUNTY_REPORTS.names})


def stage_params(ctx: RunContext) -> IndicatorsParams:
    """``indicators:`` of params.yaml plus the 校际差异率 standard ``monitoring.icc_threshold``."""
    return ctx.section(IndicatorsParams, "indicators", icc_threshold=ctx.monitoring.icc_threshold)


def factor_summary(factors: pd.DataFrame) -> dict:
    """Counts of ``factors.parquet`` for the stage summary."""
    return {
        "rows": len(factors),
        "rows_suppressed": int(factors["suppressed"].sum()),
        "factors_estimated": int(factors.loc[factors["factor"] != "", "factor"].nunique()),
        "rows_by_kind": {k: int(v) for k, v in factors["kind"].value_counts().sort_index().items()},
    }


def _optional(path) -> pd.DataFrame | None:
    return read_parquet(path) if path.is_file() else None


@stamped("indicators")
def run(ctx: RunContext) -> None:
    """Read validated tables, compute, write the five outputs all-or-nothing."""
    paths = ctx.paths
    monitoring = ctx.monitoring
    params = stage_params(ctx)
    require_upstream(ctx, "indicators")
    with ctx.step("读取校验后的数据", 6) as advance:
        students = read_parquet(paths.validated("students"), "校验后的学生数据")
        advance(1)
        scores = read_parquet(paths.validated("scores"), "校验后的成绩数据")
        advance(1)
        schools = read_parquet(paths.validated("schools"), "校验后的学校数据")
        advance(1)
        reports_path = paths.validated("county_reports")
        reports = read_parquet(reports_path) if reports_path.is_file() else _empty_reports()
        advance(1)
        teachers = _optional(paths.validated("teachers"))
        advance(1)
        principals = _optional(paths.validated("principals"))
        advance(1)
    log.info(
        "读入学生 %d 人、成绩 %d 条、学校 %d 个、区县报告数值 %d 条",
        len(students), len(scores), len(schools), len(reports),
    )  # fmt: skip
    for year, grade, county in lonely_strata(students):
        log.warning(
            "%d 年%s %s 只有 1 所样本学校：该县抽样误差无法估计（其县级结果按抑制规则不显示），"
            "全市合计（%s）的标准误不含该县的抽样误差，可能偏小。",
            year, schemas.GRADE_LABELS.get(grade, grade), monitoring.county_name(county),
            monitoring.city_code,
        )  # fmt: skip
    prepared = prepare(students, scores)
    ind, rb, sc, summary = compute(students, scores, schools, reports, monitoring, params, prepared)
    factors = factor_estimates(
        students, scores, teachers, principals, reports, monitoring, params, prepared
    )
    summary = {**summary, "factors": factor_summary(factors)}
    with outputs() as out:
        out.parquet(ind, paths.indicators)
        out.parquet(rb, paths.resource_balance)
        out.parquet(sc, paths.school_compliance)
        out.parquet(factors, paths.factors)
        out.json(summary, paths.indicators_summary)
    log.info(
        "指标 %d 行（抑制 %d 行）；校际差异率 ≥ %.2f 的格子 %d 个；资源均衡未达标指标 %d 项",
        summary["indicator_rows"], summary["indicator_rows_suppressed"], params.icc_threshold,
        summary["icc_cells_at_or_above_threshold"], summary["resource_indicators_failing"],
    )  # fmt: skip
    log.info(
        "相关因素 %d 行（抑制 %d 行），涉及 %d 个因素",
        summary["factors"]["rows"], summary["factors"]["rows_suppressed"],
        summary["factors"]["factors_estimated"],
    )  # fmt: skip
