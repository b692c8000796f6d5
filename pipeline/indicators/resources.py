"""优质均衡 resource balance: per-school L1–L7 compliance and the county 差异系数 per indicator.

Rules (县域义务教育优质均衡发展督导评估办法, 教督〔2017〕6号, 资源配置 and its 差异系数 formula):

* Per school section (primary / junior), from the raw quantities and the section's enrolment P:
  L1 teachers above the required degree, L2 county-level-or-above backbone teachers, L3 PE + arts
  teachers, L7 networked multimedia classrooms — per 100 students (``100·Q/P``); L4 teaching and
  auxiliary floor area, L5 sports area (m² per student), L6 equipment value (yuan per student).
* A school passes when at least ``school_min_met`` (6) of the 7 reach their threshold (``>=``)
  and every unmet one reaches ``school_min_ratio_unmet`` (85%) of its threshold. A missing
  quantity is 「无数据」, never unmet: the verdict is ``False`` only when the known values already
  fail (a known unmet value below 85%, or too few met even if every missing one were met),
  ``True`` only when every value is known and the rule holds, and missing (``<NA>``) otherwise —
  the school cannot be judged. ``min_ratio_unmet`` is the lowest ``value/threshold`` over the
  unmet indicators with a value (NaN when all are met).
* County × stage × indicator: the enrolment-weighted population 差异系数
  ``CV = S / X̄``, ``X̄ = Σ (P_i/P) X_i``, ``S = √(Σ (P_i/P)(X_i − X̄)²)`` over the schools in scope
  with a value; EACH indicator must satisfy ``CV <= 0.50`` (primary) / ``<= 0.45`` (junior) —
  not the mean of the seven (that was the 2012 基本均衡 composite). ``county_value`` is ``X̄``.
  A 差异系数 that cannot be computed (no school with a value, or X̄ = 0), or that covers fewer than
  ``cv_min_coverage`` (0.9) of the county × stage's schools in scope, has no verdict (``<NA>``):
  the 差异系数 is a census figure, and the schools that reported are not the county.
* Scope: special-education and vocational schools and teaching points with fewer than 50 students
  are excluded; sections without a positive enrolment cannot be evaluated and are excluded (logged).
  九年一贯制 / 完全中学 rows arrive split into sections by ingest (``source_stage`` keeps the origin).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.indicators.params import RESOURCE_KEYS, IndicatorsParams
from pipeline.schemas import SCHOOL_COMPLIANCE

log = logging.getLogger(__name__)

# indicator -> (raw quantity, multiplier)
RESOURCE_FORMULAS = {
    "L1": ("teachers_above_degree", 100.0),
    "L2": ("backbone_teachers", 100.0),
    "L3": ("pe_art_teachers", 100.0),
    "L4": ("teaching_aux_area_m2", 1.0),
    "L5": ("sports_area_m2", 1.0),
    "L6": ("equipment_value_yuan", 1.0),
    "L7": ("multimedia_classrooms", 100.0),
}
STAGES = ("primary", "junior")


def in_scope(schools: pd.DataFrame, params: IndicatorsParams) -> pd.Series:
    """Boolean mask of school sections inside the balance scope (see module docstring)."""
    stype = schools.get("school_type", pd.Series("regular", index=schools.index)).fillna("regular")
    enrol = pd.to_numeric(schools["enrollment"], errors="coerce")
    tp = schools.get("is_teaching_point", pd.Series(False, index=schools.index))
    tp = tp.astype("boolean").fillna(False).astype(bool)
    small_tp = tp & (enrol < params.teaching_point_min_enrollment).fillna(True)
    stage_ok = schools["stage"].isin(STAGES)
    no_enrol = ~(enrol > 0).fillna(False)
    scope = ~stype.isin(["special", "vocational"]) & ~small_tp & stage_ok & ~no_enrol
    n_bad = int((no_enrol & stage_ok & ~stype.isin(["special", "vocational"])).sum())
    if n_bad:
        log.warning("%d 个学校（学段）在校生数缺失或为 0，无法计算生均指标，未纳入均衡统计", n_bad)
    return scope


def school_indicators(schools: pd.DataFrame) -> pd.DataFrame:
    """L1–L7 per school section (no scope filter)."""
    enrol = pd.to_numeric(schools["enrollment"], errors="coerce").to_numpy(dtype=float)
    cols = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for key, (qty, mult) in RESOURCE_FORMULAS.items():
            q = (
                pd.to_numeric(schools[qty], errors="coerce").to_numpy(dtype=float)
                if qty in schools
                else np.full(len(schools), np.nan)
            )
            cols[key] = mult * q / enrol
    return pd.DataFrame(cols, index=schools.index)


def school_compliance(schools: pd.DataFrame, params: IndicatorsParams) -> pd.DataFrame:
    """``school_compliance`` rows for the schools in scope."""
    sc = schools.loc[in_scope(schools, params)]
    vals = school_indicators(sc)
    primary = (sc["stage"] == "primary").to_numpy(dtype=bool)
    thr = np.stack(
        [
            np.where(
                primary,
                params.resource_thresholds["primary"][k],
                params.resource_thresholds["junior"][k],
            )
            for k in RESOURCE_KEYS
        ],
        axis=1,
    )
    x = vals[list(RESOURCE_KEYS)].to_numpy(dtype=float)
    known = ~np.isnan(x)
    met = known & (x >= thr)
    ratio = np.where(known & ~met, x / thr, np.nan)
    min_ratio = np.min(np.where(np.isnan(ratio), np.inf, ratio), axis=1, initial=np.inf)
    min_ratio = np.where(np.isinf(min_ratio), np.nan, min_ratio)
    n_met = met.sum(axis=1)
    rest_ok = np.isnan(min_ratio) | (min_ratio >= params.school_min_ratio_unmet)
    n_missing = (~known).sum(axis=1)
    fails = ~rest_ok | (n_met + n_missing < params.school_min_met)
    judged = known.all(axis=1) | fails
    passes = pd.array(np.where(fails, False, n_met >= params.school_min_met), dtype="boolean")
    passes[~judged] = pd.NA
    out = pd.DataFrame(
        {
            "year": sc["year"].astype("int64").to_numpy(),
            "county_code": sc["county_code"].astype(str).to_numpy(),
            "school_id": sc["school_id"].astype(str).to_numpy(),
            "school_name": (
                sc["school_name"].astype("string").to_numpy(dtype=object, na_value="")
                if "school_name" in sc
                else ""
            ),
            "stage": sc["stage"].astype(str).to_numpy(),
            **{k: x[:, i] for i, k in enumerate(RESOURCE_KEYS)},
            "n_met": n_met.astype("int64"),
            "min_ratio_unmet": min_ratio,
            "passes": passes,
        }
    )
    return (
        out[SCHOOL_COMPLIANCE.names]
        .sort_values(["year", "county_code", "school_id", "stage"], kind="stable")
        .reset_index(drop=True)
    )


def weighted_cv(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Enrolment-weighted population mean and 差异系数 ``(X̄, S/X̄)`` (module docstring)."""
    p = weights / weights.sum()
    mean = float((p * values).sum())
    sd = float(np.sqrt((p * (values - mean) ** 2).sum()))
    return mean, (sd / mean if mean > 0 else np.nan)


def resource_balance(schools: pd.DataFrame, params: IndicatorsParams) -> pd.DataFrame:
    """``resource_balance`` rows: per year × county × stage × indicator (vectorised over groups)."""
    sc = schools.loc[in_scope(schools, params)]
    vals = school_indicators(sc)
    long = pd.DataFrame(
        {
            "year": sc["year"].astype("int64").to_numpy(),
            "county_code": sc["county_code"].astype(str).to_numpy(),
            "stage": sc["stage"].astype(str).to_numpy(),
            "P": pd.to_numeric(sc["enrollment"], errors="coerce").to_numpy(dtype=float),
            **{k: vals[k].to_numpy() for k in RESOURCE_KEYS},
        }
    ).melt(id_vars=["year", "county_code", "stage", "P"], var_name="indicator", value_name="x")
    keys = ["year", "county_code", "stage", "indicator"]
    in_scope_n = long.groupby(["year", "county_code", "stage", "indicator"]).size()
    long = long.dropna(subset=["x"])
    long = long.assign(px=long["P"] * long["x"], px2=long["P"] * long["x"] ** 2)
    g = long.groupby(keys, sort=True).agg(
        P=("P", "sum"), px=("px", "sum"), px2=("px2", "sum"), n_schools=("x", "size")
    )
    mean = g["px"] / g["P"]
    # two-pass variance for accuracy: Σ P_i (x_i − X̄)² / P
    long = long.join(mean.rename("mean"), on=keys)
    ss = (long["P"] * (long["x"] - long["mean"]) ** 2).groupby([long[k] for k in keys]).sum()
    ss = ss.reindex(g.index)
    sd = np.sqrt(ss / g["P"])
    cv = (sd / mean).where(mean > 0)
    out = g.reset_index()[keys].assign(
        county_value=mean.to_numpy(),
        cv=cv.to_numpy(),
        threshold=[params.cv_thresholds[s] for s in g.reset_index()["stage"]],
        n_schools=g["n_schools"].to_numpy().astype("int64"),
    )
    coverage = (g["n_schools"] / in_scope_n.reindex(g.index)).to_numpy()
    thin = coverage < params.cv_min_coverage
    verdict = pd.array(out["cv"] <= out["threshold"], dtype="boolean")
    verdict[out["cv"].isna().to_numpy() | thin] = pd.NA
    for r in out[thin].itertuples():
        log.warning(
            "%s 年 %s %s %s：只有 %d 所学校有数据（范围内 %d 所，不足 %.0f%%），差异系数不作达标判定",
            r.year, r.county_code, r.stage, r.indicator, r.n_schools,
            int(in_scope_n[(r.year, r.county_code, r.stage, r.indicator)]),
            100 * params.cv_min_coverage,
        )  # fmt: skip
    out = out.assign(passes=verdict)
    return out[
        [
            "year",
            "county_code",
            "stage",
            "indicator",
            "county_value",
            "cv",
            "threshold",
            "passes",
            "n_schools",
        ]
    ].reset_index(drop=True)
