"""Related factors (相关因素) per county: the rows of ``factors.parquet`` (``schemas.FACTORS``).

What each factor is — its source column or questionnaire index, its unit value, the direction that
is worse, its regression term and its comparison groups — is declared in :mod:`pipeline.catalogue`.
This module estimates, per ``year × county × grade`` (and subject), on the JKn design of
:mod:`pipeline.indicators.survey` (strata = county, PSU = school, the student's final weight;
each county its own design, so a county's estimate and SE use only its own schools):

``value``
    The county value of every factor: the weighted percentage (0–100) of students meeting a share
    factor's condition, or the weighted mean of a mean factor / index, with the JKn SE of
    :func:`pipeline.indicators.scores.domain_estimates` (the stage's estimator of every weighted
    mean and percentage), over the grade's students with a value. ``national`` is the county
    report's ``factor_<id>`` at scope 全国 for that year × grade (``national_se`` its ``se``);
    ``p_value`` is the two-sided Student t test of ``estimate − national`` with
    ``t = (estimate − national)/√(se² + national_se²)`` (national treated as fixed when it has no
    SE) on the row's design df (schools with data − 1), :func:`survey.t_p_value`; not tested
    (p missing) when the county's SE is 0, i.e. every sampled student or school has the same value.
``gap``
    Per subject: the weighted mean score of ``group_high`` minus that of ``group_low``
    (:attr:`Factor.groups`): ``bool`` — students whose unit value is 1 (meets the condition; school
    factors: in a school that does) vs 0; ``quartiles`` — the top vs the bottom weighted quartile
    of the unit value (:func:`scores.weighted_quartiles`) among the county's students tested in
    the subject (year × county × grade × subject). Estimated by ``domain_estimates`` with the two
    groups as one subgrouping and their contrast: the SE comes from the replicate-wise differences
    of the two group means, and the row is suppressed when either group is small. This equals the
    slope of :func:`factors.replicate_regression` of the score on a 0/1 indicator (1 = high group)
    fitted on the two groups (rows outside them left out, their schools kept in the design): with
    one 0/1 term, WLS gives ``β = ȳ_w(high) − ȳ_w(low)`` in the full sample and in every replicate,
    so the estimate, the JKn SE and the df agree (checked in ``tests/test_factor_estimates.py``).
``coef``
    Per subject: :func:`factors.factor_association` of the score (or its plausible values) on the
    factor's term (``Factor.term``/``term_scale``: score points per ``term_unit``), ``unadjusted``
    and ``adjusted`` for SES (``ses``), both on the students with score, term and SES present;
    ``r_squared``/``r_squared_se`` of that model. Without an ``ses`` column only ``unadjusted``.
``two_level``
    Per subject: :func:`factors.two_level_decomposition` — the null model (``factor`` empty):
    ``icc``, ``tau2``, ``sigma2``; per school-level factor (teacher, principal) the random-intercept
    model with the school attribute as its only term: ``coef`` and ``between_explained``.

The ``coef`` and ``two_level`` rows are computed for all factors and counties of a design at once
by :mod:`pipeline.indicators.factor_fits`, which gives these functions' numbers (tested).

Unit values and terms
---------------------
A student factor's unit value comes from the student's row (:func:`catalogue.raw_values`). A
teacher factor is a school attribute: the mean over the school's responding teachers of the
grade (value rows) — of the subject, for the per-subject rows (``gap``, ``coef``, ``two_level``;
a school without a responding teacher of the subject has no value there) — of each teacher's unit
value (1/0, a number or an index), i.e. the share (0–1) of the teachers meeting the condition or
their mean. A principal factor is the principal's answer for the school (year × school). School
attributes are copied onto the school's sampled students: the county value is then the
student-weighted mean of the attribute, "the county's grade-g students whose school (whose
teachers) …", not a teacher or school sample; ``method`` says so.

Index standardisation: when ``county_reports`` gives both ``factor_<id>`` and ``factor_<id>_sd``
(scope 全国, that year × grade, SD > 0) for an index factor, its unit value is ``(x − mean)/sd``
before every estimate: the value row's ``national`` is then 0 (``national_se`` = se/sd), a
coefficient is score points per national SD, and ``method`` says "standardised". Otherwise the
index stays on the 1–4 item metric. The national value of a year × grade is read from the first
county report (by county code) that prints it; reports of one round print the same national value.

Failures and suppression
------------------------
A factor whose source columns (or whose questionnaire table) are absent is not estimated (one log
line). A fit that cannot be made — a constant factor, too few students or schools, a collinear
design — is skipped, never stops the stage, and is logged (one line each at debug level, one
summary line with the count and an example at info level). Every row carries ``suppressed``
(``indicators.suppress_min_students`` students or ``suppress_min_schools`` schools not reached; a
gap: either group): the estimate is kept, the report shows 「—」.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pipeline import catalogue, schemas
from pipeline.catalogue import FACTORS, Factor
from pipeline.config import MonitoringParams
from pipeline.indicators.factor_fits import (
    association_batch,
    county_rows,
    two_level_batch,
)
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.scores import (
    Grouping,
    Prepared,
    design_slices,
    domain_estimates,
    prepare,
    score_values,
    weighted_quartiles,
)
from pipeline.indicators.survey import t_p_value

log = logging.getLogger(__name__)

__all__ = [
    "available_factors",
    "factor_estimates",
    "finalize_factors",
    "national_values",
    "school_attributes",
    "student_factors",
]

JKN = "JKn jackknife (strata=county, PSU=school, mse)"
RUBIN = "; Rubin's rules over {m} plausible values"
SCHOOL_NOTE = {
    "teacher": "; school attribute: mean over the school's responding teachers{of}, "
    "copied to its students (student-weighted)",
    "principal": "; school attribute: the principal's answer, copied to its students "
    "(student-weighted)",
}
STANDARDISED = "; index standardised to the national mean and SD"
TEACHER_KEYS = ("year", "school_id", "grade")
PRINCIPAL_KEYS = ("year", "school_id")


# ------------------------------------------------------------------------------------------------
# Inputs: which factors, national values, school attributes
# ------------------------------------------------------------------------------------------------


def _has_source(f: Factor, frame: pd.DataFrame | None) -> bool:
    if frame is None or frame.empty:
        return False
    if f.index:
        return any(c in frame.columns for c in catalogue.INDICES[f.source].items)
    return f.source in frame.columns


def available_factors(
    students: pd.DataFrame, teachers: pd.DataFrame | None, principals: pd.DataFrame | None
) -> list[Factor]:
    """The catalogue's factors whose source is in the data, in catalogue order (others logged)."""
    tables = {"student": students, "teacher": teachers, "principal": principals}
    out, missing = [], []
    for f in FACTORS.values():
        (out if _has_source(f, tables[f.level]) else missing).append(f)
    if missing:
        log.info(
            "以下相关因素缺少数据（问卷表或列），未估计：%s", "、".join(f.label for f in missing)
        )
    return out


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series("", index=frame.index)
    return frame[col].astype("string").fillna("").astype(str)


def national_values(county_reports: pd.DataFrame | None) -> pd.DataFrame:
    """National factor values per ``year, grade, factor``: ``national, national_se, national_sd``.

    From ``county_reports`` rows at scope ``nation`` without a subgroup, indicators
    ``factor_<id>`` (value and ``se``) and ``factor_<id>_sd``. Rows without a subject come first,
    then by county code; the first row of each year × grade × indicator is used (a round's county
    reports print one national value; a disagreement is logged).
    """
    cols = ["year", "grade", "factor", "national", "national_se", "national_sd"]
    if county_reports is None or county_reports.empty:
        return pd.DataFrame({c: [] for c in cols})
    cr = county_reports
    keep = (
        (_text(cr, "scope") == "nation")
        & (_text(cr, "group_var") == "")
        & _text(cr, "indicator").str.startswith("factor_")
        & pd.to_numeric(cr["value"], errors="coerce").notna()
    )
    cr = cr.loc[keep]
    if cr.empty:
        return pd.DataFrame({c: [] for c in cols})
    rows = pd.DataFrame(
        {
            "year": cr["year"].astype("int64"),
            "grade": cr["grade"].astype("int64"),
            "indicator": _text(cr, "indicator"),
            "value": pd.to_numeric(cr["value"], errors="coerce").astype(float),
            "se": pd.to_numeric(cr["se"], errors="coerce").astype(float) if "se" in cr else np.nan,
            "has_subject": _text(cr, "subject") != "",
            "county_code": _text(cr, "county_code"),
        }
    ).sort_values(["has_subject", "county_code"], kind="stable")
    spread = rows.groupby(["year", "grade", "indicator"])["value"].agg(["min", "max"])
    for (year, grade, ind), r in spread.loc[spread["max"] > spread["min"]].iterrows():
        log.warning(
            "%d 年%s的区县报告中，全国数值 %s 不一致（%g 至 %g），使用第一份报告的数值",
            year, schemas.GRADE_LABELS.get(grade, grade), ind, r["min"], r["max"],
        )  # fmt: skip
    first = rows.drop_duplicates(["year", "grade", "indicator"], keep="first")
    given = {
        (int(r.year), int(r.grade), r.indicator): (float(r.value), float(r.se))
        for r in first.itertuples()
    }
    out = []
    for year, grade in sorted({(y, g) for y, g, _ in given}):
        for f in FACTORS.values():
            mean = given.get((year, grade, catalogue.national_key(f.id)))
            sd = given.get((year, grade, catalogue.national_key(f.id, sd=True)))
            if mean is not None or sd is not None:
                value, se = mean if mean is not None else (np.nan, np.nan)
                out.append((year, grade, f.id, value, se, sd[0] if sd is not None else np.nan))
    return pd.DataFrame(out, columns=cols).astype({"year": "int64", "grade": "int64"})


def _standardisers(national: pd.DataFrame) -> dict[tuple[int, int, str], tuple[float, float]]:
    """``(year, grade, factor) -> (mean, sd)`` of the index factors the national metric applies to."""
    ok = national.loc[
        national["factor"].map(lambda i: FACTORS[i].index)
        & national["national"].notna()
        & (national["national_sd"] > 0)
    ]
    return {
        (int(r.year), int(r.grade), r.factor): (float(r.national), float(r.national_sd))
        for r in ok.itertuples()
    }


def school_attributes(
    table: pd.DataFrame, factors: Iterable[Factor], keys: Iterable[str], params: IndicatorsParams
) -> pd.DataFrame:
    """Per ``keys`` (e.g. year, school_id, grade): the mean over the rows (teachers) with a value of
    each factor's unit value (``u_<id>``: a share 0–1 of rows meeting the condition, or a mean)
    and, for a factor whose term is its source, of the source (``s_<id>``)."""
    keys = list(keys)
    frame = pd.DataFrame(
        {
            "year": table["year"].astype("int64").to_numpy(),
            "school_id": table["school_id"].astype(str).to_numpy(),
        }
    )
    if "grade" in keys:
        frame["grade"] = table["grade"].astype("int64").to_numpy()
    if "subject" in keys:
        frame["subject"] = table["subject"].astype(str).to_numpy()
    for f in factors:
        frame[f"u_{f.id}"] = catalogue.raw_values(
            f, table, params.factor_standards, params.factor_index_min_items_share
        )
        if f.term == "source":
            frame[f"s_{f.id}"] = pd.to_numeric(table[f.source], errors="coerce").to_numpy(float)
    return frame.groupby(keys, sort=True).mean().reset_index()


def _attribute_columns(factors: list[Factor]) -> list[str]:
    return [
        c for f in factors for c in (f"u_{f.id}", f"s_{f.id}") if c[0] == "u" or f.term == "source"
    ]


def _lookup(keys: pd.DataFrame, attrs: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The attribute columns of each row of ``keys`` (m:1 on the key columns; NaN where none)."""
    on = list(keys.columns)
    return keys.merge(attrs[[*on, *cols]], on=on, how="left", validate="m:1")[cols]


def _standardise(
    u: np.ndarray, f: Factor, year: np.ndarray, grade: np.ndarray, metric: dict
) -> np.ndarray:
    """``(u − mean)/sd`` on the rows of each year × grade with a national metric for ``f``."""
    if not f.index:
        return u
    u = u.copy()
    for (y, g, fid), (mean, sd) in metric.items():
        if fid == f.id:
            rows = (year == y) & (grade == g)
            u[rows] = (u[rows] - mean) / sd
    return u


# ------------------------------------------------------------------------------------------------
# Per-student values and per-design terms
# ------------------------------------------------------------------------------------------------


def _student_values(
    st: pd.DataFrame,
    factors: list[Factor],
    teachers: pd.DataFrame | None,
    principals: pd.DataFrame | None,
    metric: dict,
    params: IndicatorsParams,
    subject: str | None = None,
) -> pd.DataFrame:
    """Per row of the students ``st``: ``u_<id>`` (unit value) and ``s_<id>`` (source, for a term
    built from it), ``school_id`` and ``ses``. Teacher factors: the school's teachers of the grade,
    or of ``subject`` when given."""
    year, grade = st["year"].to_numpy(dtype=np.int64), st["grade"].to_numpy(dtype=np.int64)
    keys = pd.DataFrame({"year": year, "school_id": st["school_id"].astype(str), "grade": grade})
    out = {"school_id": keys["school_id"].to_numpy()}
    by_level = {lv: [f for f in factors if f.level == lv] for lv in ("teacher", "principal")}
    looked = {}
    if by_level["teacher"]:
        by = (*TEACHER_KEYS, "subject") if subject is not None else TEACHER_KEYS
        attrs = school_attributes(teachers, by_level["teacher"], by, params)
        on = keys.assign(subject=subject) if subject is not None else keys
        looked["teacher"] = _lookup(on, attrs, _attribute_columns(by_level["teacher"]))
    if by_level["principal"]:
        attrs = school_attributes(principals, by_level["principal"], PRINCIPAL_KEYS, params)
        cols = _attribute_columns(by_level["principal"])
        looked["principal"] = _lookup(keys[list(PRINCIPAL_KEYS)], attrs, cols)
    for f in factors:
        if f.level == "student":
            u = catalogue.raw_values(
                f, st, params.factor_standards, params.factor_index_min_items_share
            )
            if f.term == "source":
                out[f"s_{f.id}"] = pd.to_numeric(st[f.source], errors="coerce").to_numpy(float)
        else:
            u = looked[f.level][f"u_{f.id}"].to_numpy(dtype=float)
            if f.term == "source":
                out[f"s_{f.id}"] = looked[f.level][f"s_{f.id}"].to_numpy(dtype=float)
        out[f"u_{f.id}"] = _standardise(u, f, year, grade, metric)
    out["ses"] = (
        pd.to_numeric(st["ses"], errors="coerce").to_numpy(float)
        if "ses" in st
        else np.full(len(st), np.nan)
    )
    return pd.DataFrame(out)


def _term(f: Factor, unit: np.ndarray, source: np.ndarray | None) -> np.ndarray:
    """The regression term: ``term_scale ×`` the unit value, or the source (``Factor.term``)."""
    return f.term_scale * (source if f.term == "source" else unit)


def student_factors(
    students: pd.DataFrame,
    teachers: pd.DataFrame | None = None,
    principals: pd.DataFrame | None = None,
    county_reports: pd.DataFrame | None = None,
    params: IndicatorsParams | None = None,
    subject: str | None = None,
) -> pd.DataFrame:
    """Each student's factors as the stage uses them, for analyses of one's own (notebooks).

    One row per row of ``students`` (same order): ``year, student_id, county_code, school_id,
    grade, weight, ses`` (those present), then per available factor ``<id>`` its regression term
    (score points per ``Factor.term_unit`` when used as a regressor) and ``<id>__value`` its unit
    value (1/0 or a share 0–1, or the mean / index; standardised when the national metric is
    given). Teacher factors come from the school's teachers of the grade, or of ``subject``.
    """
    params = params or IndicatorsParams()
    factors = available_factors(students, teachers, principals)
    metric = _standardisers(national_values(county_reports))
    st = students.reset_index(drop=True)
    values = _student_values(st, factors, teachers, principals, metric, params, subject)
    keep = ["year", "student_id", "county_code", "school_id", "grade", "weight", "ses"]
    out = st[[c for c in keep if c in st.columns]].copy()
    for f in factors:
        u = values[f"u_{f.id}"].to_numpy()
        out[f.id] = _term(f, u, values[f"s_{f.id}"].to_numpy() if f.term == "source" else None)
        out[f"{f.id}__value"] = u
    return out


def _design_values(
    d: pd.DataFrame,
    values: pd.DataFrame,
    factors: list[Factor],
    subject_teachers: pd.DataFrame | None,
    subject: str,
    metric: dict,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Unit values and terms of each factor for the score rows ``d`` of one design.

    Student and principal factors: the student's own values; teacher factors: the attribute of
    the school's teachers of ``subject`` (NaN where it has none)."""
    pos = d["pos"].to_numpy()
    year, grade = d["year"].to_numpy(), d["grade"].to_numpy()
    teach = [f for f in factors if f.level == "teacher"]
    per_subject = None
    if teach:
        keys = pd.DataFrame(
            {"year": year, "school_id": values["school_id"].to_numpy()[pos], "grade": grade,
             "subject": subject}
        )  # fmt: skip
        per_subject = _lookup(keys, subject_teachers, _attribute_columns(teach))
    units, terms = {}, {}
    for f in factors:
        source = None
        if f.level == "teacher":
            u = _standardise(per_subject[f"u_{f.id}"].to_numpy(float), f, year, grade, metric)
            if f.term == "source":
                source = per_subject[f"s_{f.id}"].to_numpy(float)
        else:
            u = values[f"u_{f.id}"].to_numpy()[pos]
            if f.term == "source":
                source = values[f"s_{f.id}"].to_numpy()[pos]
        units[f.id] = u
        terms[f.id] = _term(f, u, source)
    return units, terms


# ------------------------------------------------------------------------------------------------
# The four kinds
# ------------------------------------------------------------------------------------------------


def _value_rows(
    enc: pd.DataFrame,
    values: pd.DataFrame,
    factors: list[Factor],
    counties: np.ndarray,
    national: pd.DataFrame,
    metric: dict,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> list[pd.DataFrame]:
    """County value of every factor per year × grade (one ``domain_estimates`` call per design)."""
    out = []
    for (year, grade), rows in design_slices(enc, ["year", "grade"]):
        d = enc.iloc[rows]
        mat = np.column_stack(
            [
                (100.0 if f.measure == "share" else 1.0) * values[f"u_{f.id}"].to_numpy()[rows]
                for f in factors
            ]
        )
        if not np.isfinite(mat).any():
            continue
        est = domain_estimates(
            d["c_idx"].to_numpy(),
            d["s_idx"].to_numpy(),
            d["weight"].to_numpy(dtype=float),
            mat[None, :, :],
            tuple(f.id for f in factors),
            [Grouping("", np.zeros(len(d), dtype=np.int64), ("",))],
            (),
            monitoring.city_code,
            params,
            counties,
        )
        est = est.loc[est["county_code"] != monitoring.city_code].rename(
            columns={"indicator": "factor"}
        )
        nat = national.loc[(national["year"] == year) & (national["grade"] == grade)]
        est = est.merge(nat[["factor", "national", "national_se", "national_sd"]], on="factor",
                        how="left", validate="m:1")  # fmt: skip
        std = np.array([(year, grade, fid) in metric for fid in est["factor"]], dtype=bool)
        if std.any():  # national value on the standardised metric: 0, SE / SD
            est.loc[std, "national_se"] = est.loc[std, "national_se"] / est.loc[std, "national_sd"]
            est.loc[std, "national"] = 0.0
        diff = est["estimate"] - est["national"]
        se = np.sqrt(est["se"] ** 2 + est["national_se"].fillna(0.0) ** 2)
        method = [_value_method(FACTORS[fid], s) for fid, s in zip(est["factor"], std, strict=True)]
        out.append(
            est.assign(
                year=year,
                grade=grade,
                subject="",
                level=[FACTORS[fid].level for fid in est["factor"]],
                kind="value",
                statistic="",
                p_value=np.where(
                    _varies(est["estimate"], est["se"]),
                    t_p_value(diff.to_numpy(float), se.to_numpy(float), est["df"].to_numpy()),
                    np.nan,
                ),
                method=method,
            )
        )
    return out


def _varies(estimate: pd.Series, se: pd.Series) -> np.ndarray:
    """False where the county's JKn SE is 0 (to rounding): every sampled student or school has the
    same value (a share of 0 or 100 %), so dropping a school never moves the estimate. That is no
    evidence of a precise estimate, and a test against the national value on it would call any
    difference significant: such a row is not tested (p missing; the report says 未检验)."""
    e, v = estimate.to_numpy(float), se.to_numpy(float)
    return v > 1e-9 * np.maximum(1.0, np.abs(e))


def _value_method(f: Factor, standardised: bool) -> str:
    text = f"{JKN}; weighted {'percentage' if f.measure == 'share' else 'mean'}"
    if f.is_school:
        text += SCHOOL_NOTE[f.level].format(of=" of the grade")
    if standardised:
        text += STANDARDISED
    return text + "; p: two-sided t(df) of estimate - national (national SE in quadrature)"


def _gap_groups(f: Factor, unit: np.ndarray, cell: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Code 0 = ``group_high``, 1 = ``group_low``, −1 = neither (or missing)."""
    if f.groups == "bool":
        return np.where(unit == 1.0, 0, np.where(unit == 0.0, 1, -1))
    q = weighted_quartiles(cell, unit, w)
    return np.where(q == 3, 0, np.where(q == 0, 1, -1))


def _gap_rows(
    d: pd.DataFrame,
    y: np.ndarray,
    units: dict[str, np.ndarray],
    factors: list[Factor],
    counties: np.ndarray,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> pd.DataFrame:
    """Score gap high − low of every factor for one design (all counties; one estimator call)."""
    cell, w = d["c_idx"].to_numpy(), d["weight"].to_numpy(dtype=float)
    groups = []
    for f in factors:
        codes = _gap_groups(f, units[f.id], cell, w)
        if (codes == 0).any() and (codes == 1).any():
            groups.append(Grouping(f.id, codes, ("high", "low"), (("high-low", 0, 1),)))
    if not groups:
        return pd.DataFrame()
    est = domain_estimates(
        cell, d["s_idx"].to_numpy(), w, y[:, :, None], ("score",), groups, ("score",),
        monitoring.city_code, params, counties,
    )  # fmt: skip
    est = est.loc[(est["indicator"] == "gap_score") & (est["county_code"] != monitoring.city_code)]
    m = y.shape[0]
    return est.assign(
        factor=est["group_var"],
        level=[FACTORS[fid].level for fid in est["group_var"]],
        kind="gap",
        statistic="",
        p_value=t_p_value(est["estimate"].to_numpy(), est["se"].to_numpy(), est["df"].to_numpy()),
        group_high=[FACTORS[fid].group_labels[0] for fid in est["group_var"]],
        group_low=[FACTORS[fid].group_labels[1] for fid in est["group_var"]],
        method=[_gap_method(FACTORS[fid], m) for fid in est["group_var"]],
    )


def _gap_method(f: Factor, m: int) -> str:
    rule = (
        "students meeting the condition minus those not meeting it"
        if f.groups == "bool"
        else "top minus bottom weighted quartile of the factor (county x grade x subject)"
    )
    text = f"{JKN}; difference of weighted mean scores, {rule}"
    if f.is_school:
        text += SCHOOL_NOTE[f.level].format(of=" of the subject")
    return text + (RUBIN.format(m=m) if m > 1 else "")


COEF_METHOD = (
    "JKn replicate WLS (strata=county, PSU=school, mse); score points per term unit ({unit})"
)
TWO_LEVEL_METHOD = (
    "random-intercept model, pseudo-ML with school and scaled student weights (Rabe-Hesketh & "
    "Skrondal 2006); JKn replicates (strata=county, PSU=school, mse)"
)


def _fit_rows(
    d: pd.DataFrame,
    y: np.ndarray,
    terms: dict[str, np.ndarray],
    ses: np.ndarray | None,
    factors: list[Factor],
    counties: np.ndarray,
    where: Callable[[str], str],
    skipped: list[str],
) -> list[pd.DataFrame]:
    """``coef`` and ``two_level`` rows of every county of one design (:mod:`.factor_fits`); the
    fits that cannot be made are appended to ``skipped`` (Chinese, one line each)."""
    pv = RUBIN.format(m=len(y)) if len(y) > 1 else ""
    school_idx, weight = d["s_idx"].to_numpy(), d["weight"].to_numpy(float)
    per_county, two_level_inputs = [], []
    for (c_idx,), crow in design_slices(d, ["c_idx"]):
        county = str(counties[c_idx])
        rows = county_rows(school_idx[crow], weight[crow], y[:, crow])
        used = [f for f in factors if np.isfinite(terms[f.id][crow]).any()]
        school = [f for f in used if f.is_school]
        out: list[dict] = []
        if used:
            term_matrix = np.column_stack([terms[f.id][crow] for f in used])
            table, fails = association_batch(rows, term_matrix, None if ses is None else ses[crow])
            _skip(skipped, fails, used, where(county), "与成绩的回归")
            for r in table.itertuples():
                f = used[r.k]
                adjusted = "; adjusted for SES" if r.model == "adjusted" else ""
                same = "; same sample as the SES-adjusted model" if ses is not None else ""
                out.append(
                    {"factor": f.id, "level": f.level, "kind": "coef", "statistic": r.model,
                     "estimate": r.estimate, "se": r.se, "df": r.df, "p_value": r.p_value,
                     "n_students": r.n_obs, "n_schools": r.n_schools, "r_squared": r.r_squared,
                     "r_squared_se": r.r_squared_se,
                     "method": COEF_METHOD.format(unit=f.term_unit) + adjusted + same + pv}
                )  # fmt: skip
        cols = [terms[f.id][crow] for f in school]
        two_level_inputs.append((rows, np.column_stack(cols) if cols else np.empty((len(crow), 0))))
        per_county.append((county, school, out))
    frames = []
    for (county, school, out), (null, table, fails) in zip(
        per_county, two_level_batch(two_level_inputs), strict=True
    ):
        here = where(county)
        if null is None:
            skipped.append(f"{here}的两层模型（有成绩的学生或学校太少）")
        else:
            for r in null.itertuples():
                out.append(
                    {"factor": "", "level": "", "kind": "two_level", "statistic": r.statistic,
                     "estimate": r.estimate, "se": r.se, "df": r.df, "p_value": np.nan,
                     "n_students": r.n_obs, "n_schools": r.n_schools,
                     "method": TWO_LEVEL_METHOD + "; null model" + pv}
                )  # fmt: skip
        _skip(skipped, fails, school, here, "的两层模型")
        for r in table.itertuples():
            f = school[r.k]
            out.append(
                {"factor": f.id, "level": f.level, "kind": "two_level", "statistic": r.statistic,
                 "estimate": r.estimate, "se": r.se, "df": r.df, "p_value": r.p_value,
                 "n_students": r.n_obs, "n_schools": r.n_schools,
                 "method": TWO_LEVEL_METHOD + "; the school attribute as the term, per term "
                           f"unit ({f.term_unit})" + pv}
            )  # fmt: skip
        if out:
            frames.append(pd.DataFrame(out).assign(county_code=county))
    return frames


def _skip(
    skipped: list[str], fails: dict[int, str], factors: list[Factor], where: str, what: str
) -> None:
    for k, reason in sorted(fails.items()):
        skipped.append(f"{where}「{factors[k].label}」{what}（{reason}）")


# ------------------------------------------------------------------------------------------------
# The core
# ------------------------------------------------------------------------------------------------


def factor_estimates(
    students: pd.DataFrame,
    scores: pd.DataFrame,
    teachers: pd.DataFrame | None,
    principals: pd.DataFrame | None,
    county_reports: pd.DataFrame | None,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
    prepared: Prepared | None = None,
) -> pd.DataFrame:
    """Pure core: every ``value``, ``gap``, ``coef`` and ``two_level`` row (``schemas.FACTORS``).

    ``students``/``scores``: the validated tables (weights checked by the stage); ``teachers`` and
    ``principals``: the validated questionnaires or None (their factors are then not estimated);
    ``county_reports``: national values (``factor_<id>``, ``factor_<id>_sd``) or None. Methods:
    the module docstring. Rows sorted by the table key. ``prepared``: :func:`scores.prepare` of
    the same students and scores when the caller has it (the stage), made here otherwise.
    """
    factors = available_factors(students, teachers, principals)
    if not factors:
        return finalize_factors(pd.DataFrame(), params)
    national = national_values(county_reports)
    metric = _standardisers(national)
    pr = prepared if prepared is not None else prepare(students, scores)
    enc, counties, merged, pv_cols, subjects = (
        pr.enc,
        pr.counties,
        pr.merged,
        pr.pv_cols,
        pr.subjects,
    )
    st = students.iloc[enc["row"].to_numpy()].reset_index(drop=True)
    values = _student_values(st, factors, teachers, principals, metric, params)
    parts = _value_rows(enc, values, factors, counties, national, metric, monitoring, params)
    teach = [f for f in factors if f.level == "teacher"]
    subject_teachers = (
        school_attributes(teachers, teach, (*TEACHER_KEYS, "subject"), params) if teach else None
    )
    has_ses = "ses" in students.columns
    if not has_ses:
        log.info("学生数据没有家庭社会经济文化地位（ses）列，相关因素回归只估计未控制的系数")
    skipped: list[str] = []
    for (year, grade, subj), rows in design_slices(merged, ["year", "grade", "subj"]):
        subject = str(subjects[subj])
        d = merged.iloc[rows]
        y, _, _ = score_values(d, pv_cols)
        units, terms = _design_values(d, values, factors, subject_teachers, subject, metric)
        gap = _gap_rows(d, y, units, factors, counties, monitoring, params)
        if not gap.empty:
            parts.append(gap.assign(year=year, grade=grade, subject=subject))
        ses = values["ses"].to_numpy()[d["pos"].to_numpy()] if has_ses else None
        cell = f"{schemas.GRADE_LABELS.get(grade, grade)}{schemas.SUBJECT_LABELS.get(subject, subject)}"

        def where(county: str, year=year, cell=cell) -> str:
            return f"{year} 年{monitoring.county_name(county)}{cell}"

        fits = _fit_rows(d, y, terms, ses, factors, counties, where, skipped)
        parts.extend(f.assign(year=year, grade=grade, subject=subject) for f in fits)
    for line in skipped:
        log.debug("相关因素：无法估计，已跳过：%s", line)
    if skipped:
        log.info(
            "相关因素：%d 项回归或两层模型无法估计，已跳过（该县该因素没有变化、与其他变量共线，或有效"
            "学生、学校太少），例如 %s",
            len(skipped), skipped[0],
        )  # fmt: skip
    parts = [p for p in parts if not p.empty]
    out = finalize_factors(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(), params)
    no_se = int((out["se"].isna() & out["estimate"].notna()).sum())
    if no_se:
        log.info(
            "相关因素：%d 项估计没有标准误（剔除某所学校后该因素在县内没有变化，刀切法无法计算），"
            "其 p 值为空，不作显著性判断",
            no_se,
        )
    return out


def finalize_factors(frame: pd.DataFrame, params: IndicatorsParams | None = None) -> pd.DataFrame:
    """``schemas.FACTORS`` columns, dtypes and order; rows sorted by the table key.

    Rows without their own ``suppressed`` flag (coef, two_level) are suppressed below
    ``suppress_min_students`` students or ``suppress_min_schools`` schools.
    """
    params = params or IndicatorsParams()
    cols = schemas.FACTORS.names
    if frame.empty:
        frame = pd.DataFrame({c: [] for c in cols})
    n = len(frame)

    def col(name: str, default) -> pd.Series:
        if name in frame:
            return frame[name]
        return pd.Series([default] * n, index=frame.index, dtype=object)

    n_st = pd.array(col("n_students", pd.NA), dtype="Int64")
    n_sch = pd.array(col("n_schools", pd.NA), dtype="Int64")
    small = ((n_st < params.suppress_min_students) | (n_sch < params.suppress_min_schools)).fillna(
        True
    )
    given = pd.array(col("suppressed", pd.NA), dtype="boolean")
    out = pd.DataFrame(
        {
            "year": frame["year"].astype("int64"),
            "county_code": frame["county_code"].astype(str),
            "grade": frame["grade"].astype("int64"),
            "subject": frame["subject"].astype(str),
            "factor": frame["factor"].astype(str),
            "level": frame["level"].astype(str),
            "kind": frame["kind"].astype(str),
            "statistic": frame["statistic"].astype(str),
            **{c: pd.to_numeric(col(c, np.nan), errors="coerce").astype(float)
               for c in ("estimate", "se", "df", "p_value", "national", "national_se")},
            "n_students": n_st,
            "n_schools": n_sch,
            "group_high": col("group_high", "").fillna("").astype(str),
            "group_low": col("group_low", "").fillna("").astype(str),
            **{c: pd.to_numeric(col(c, np.nan), errors="coerce").astype(float)
               for c in ("r_squared", "r_squared_se")},
            "method": frame["method"].astype(str),
            "suppressed": np.where(pd.isna(given), np.asarray(small), given.fillna(False)),
        }
    )[cols]  # fmt: skip
    return out.sort_values(list(schemas.FACTORS.key), kind="stable").reset_index(drop=True)
