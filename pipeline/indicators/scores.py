"""Student-level estimates: achievement (mean, level shares, county level), gaps, questionnaire.

Designs
-------
* Achievement indicators: one design per ``year × grade × subject`` — the students with a row for
  that subject in ``scores`` (NAEQ samples grade 4 and grade 8 separately, and a subject's design is
  the students tested in it). Strata = county, PSU = school (``n_h`` = schools of county ``h`` in
  that design).
* Questionnaire indicators: one design per ``year × grade`` over all students of that grade.

Every estimate is a weighted ratio computed by :mod:`pipeline.indicators.survey` with JKn
replicates. Domains (subgroups) are estimated with the full design's replicates (as ``svyby``
does); a student with a missing value of the analysed variable is outside the domain
(``na.rm = TRUE``). Rows are produced per county and pooled over every county present
(``county_code = monitoring.city_code``) for the whole population and for each value of
``gender`` (female/male), ``urban_rural`` (urban/town/rural), ``left_behind`` (left_behind /
not_left_behind), ``migrant`` (migrant / non_migrant) and ``ses_quartile`` (Q1..Q4, weighted
quartiles within year × county × grade; the pooled rows pool each county's own quartiles).

Gaps (``gap_mean_score``): ``female-male``, ``urban-rural``, ``town-rural``,
``not_left_behind-left_behind``, ``non_migrant-migrant`` (positive = migrant children behind) and
``Q4-Q1``; SE from the replicate-wise differences. A gap row's ``n_students`` / ``n_schools``
count both groups; it is suppressed when either group alone is below the minimum.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import MonitoringParams
from pipeline.errors import EqmError
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.survey import (
    JKnDesign,
    Replicates,
    ci_quantile,
    design_df,
    ratio_replicates,
    rubin,
)

log = logging.getLogger(__name__)

LEVEL_INDEX = {"I": 0, "II": 1, "III": 2, "IV": 3}
SCORE_VARIABLES = (
    "mean_score",
    "pct_level_I",
    "pct_level_II",
    "pct_level_III",
    "pct_level_IV",
    "pct_medium_or_above",
    "pct_good_or_above",
)
QUESTIONNAIRE_VARIABLES = (
    "pct_homework_over_limit",
    "pct_sleep_sufficient",
    "pct_myopia",
    "pct_fitness_pass",
    "mean_homework_minutes",
    "mean_sleep_hours",
)
METHOD_MEAN = "JKn jackknife (strata=county, PSU=school, mse); weighted mean"
METHOD_PCT = "JKn jackknife (strata=county, PSU=school, mse); weighted percentage"
METHOD_GAP = "JKn jackknife (strata=county, PSU=school, mse); difference of weighted means"
METHOD_SD = "JKn jackknife (strata=county, PSU=school, mse); weighted SD (population form)"
RUBIN = "; Rubin's rules over {m} plausible values"


@dataclass(frozen=True)
class Grouping:
    """A subgroup variable: per-row codes (−1 = missing), value labels, and gap contrasts."""

    name: str
    codes: np.ndarray
    labels: tuple[str, ...]
    contrasts: tuple[tuple[str, int, int], ...] = ()


def weighted_quartiles(cell: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted quartile (0..3, −1 where ``x`` is NaN or ``w <= 0``) of ``x`` within each ``cell``.

    With ``F_i`` the weight share of the cell's rows whose value is strictly below row ``i``'s,
    the quartile is ``min(3, ⌊4·F_i⌋)``: ties share a quartile and each quartile holds about a
    quarter of the weighted population.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    out = np.full(len(x), -1, dtype=np.int64)
    ok = ~np.isnan(x) & (w > 0)
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    order = np.lexsort((x[rows], cell[rows]))
    rows = rows[order]
    c, v, wt = cell[rows], x[rows], w[rows]
    n = len(rows)
    new_cell = np.r_[True, c[1:] != c[:-1]]
    run = np.cumsum(new_cell) - 1
    cw = np.cumsum(wt)
    starts = np.flatnonzero(new_cell)
    before = cw - wt - (cw - wt)[starts][run]
    new_tie = new_cell | np.r_[True, v[1:] != v[:-1]]
    tie_start = np.maximum.accumulate(np.where(new_tie, np.arange(n), 0))
    total = np.add.reduceat(wt, starts)[run]
    out[rows] = np.minimum(np.floor(4.0 * before[tie_start] / total), 3).astype(np.int64)
    return out


def ses_quartiles(frame: pd.DataFrame) -> np.ndarray:
    """Weighted SES quartile within ``year × county_code × grade`` (:func:`weighted_quartiles`)."""
    cell = frame.groupby(["year", "county_code", "grade"], sort=False).ngroup().to_numpy()
    return weighted_quartiles(
        cell,
        frame["ses"].to_numpy(dtype=float, na_value=np.nan),
        frame["weight"].to_numpy(dtype=float),
    )


# (group_var, source column, raw value -> code, labels, contrasts)
GROUP_SPECS = (
    ("gender", "gender", {"female": 0, "male": 1}, ("female", "male"), (("female-male", 0, 1),)),
    ("urban_rural", "urban_rural", {"urban": 0, "town": 1, "rural": 2}, ("urban", "town", "rural"),
     (("urban-rural", 0, 2), ("town-rural", 1, 2))),
    ("left_behind", "left_behind", {True: 0, False: 1}, ("left_behind", "not_left_behind"),
     (("not_left_behind-left_behind", 1, 0),)),
    ("migrant", "migrant", {True: 0, False: 1}, ("migrant", "non_migrant"),
     (("non_migrant-migrant", 1, 0),)),
    ("ses_quartile", "ses_q", None, ("Q1", "Q2", "Q3", "Q4"), (("Q4-Q1", 3, 0),)),
)  # fmt: skip


def _code(series: pd.Series, mapping: dict) -> np.ndarray:
    """Vectorised code lookup (−1 for NA or a value outside ``mapping``)."""
    out = np.full(len(series), -1, dtype=np.int64)
    if isinstance(next(iter(mapping)), bool):
        b = series.astype("boolean")
        for value, code in mapping.items():
            out[(b == value).to_numpy(dtype=bool, na_value=False)] = code
        return out
    for value, code in mapping.items():
        out[(series == value).to_numpy(dtype=bool, na_value=False)] = code
    return out


def group_code_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """``g_<group_var>`` integer code columns for the subgroup variables present in ``frame``."""
    out = {}
    for name, col, mapping, _labels, _contrasts in GROUP_SPECS:
        if col not in frame:
            out[f"g_{name}"] = np.full(len(frame), -1, dtype=np.int64)
        elif mapping is None:
            out[f"g_{name}"] = frame[col].to_numpy(dtype=np.int64)
        else:
            out[f"g_{name}"] = _code(frame[col], mapping)
    return out


def groupings(frame: pd.DataFrame) -> list[Grouping]:
    """The whole population and the five subgroup variables for the rows of ``frame``.

    Uses the ``g_<group_var>`` code columns when present (see :func:`group_code_columns`), else
    codes the raw columns.
    """
    n = len(frame)
    codes = (
        {f"g_{spec[0]}": frame[f"g_{spec[0]}"].to_numpy(dtype=np.int64) for spec in GROUP_SPECS}
        if all(f"g_{spec[0]}" in frame for spec in GROUP_SPECS)
        else group_code_columns(frame)
    )
    return [Grouping("", np.zeros(n, dtype=np.int64), ("",))] + [
        Grouping(name, codes[f"g_{name}"], labels, contrasts)
        for name, _col, _map, labels, contrasts in GROUP_SPECS
    ]


def make_design(
    county: np.ndarray, school: np.ndarray, county_labels: np.ndarray | None = None
) -> tuple[JKnDesign, np.ndarray, np.ndarray]:
    """PSU index per row (PSUs sorted by county then school), the design, and its county labels.

    ``county``/``school`` are integer codes (with ``county_labels[county]`` the county code, in
    sorted order) or, when ``county_labels`` is None, raw labels that are coded here.
    """
    if county_labels is None:
        county, county_labels = pd.factorize(np.asarray(county, dtype=object), sort=True)
        school, _ = pd.factorize(np.asarray(school, dtype=object))
    county = np.asarray(county, dtype=np.int64)
    school = np.asarray(school, dtype=np.int64)
    span = int(school.max()) + 1 if len(school) else 1
    key = county * span + school
    top = int(key.max()) + 1 if len(key) else 0
    if top <= 4 * len(key) + 1024:  # dense relabel, O(N), no sort
        seen = np.zeros(top, dtype=bool)
        seen[key] = True
        keys = np.flatnonzero(seen)
        psu = (np.cumsum(seen) - 1)[key]
    else:
        keys, psu = np.unique(key, return_inverse=True)
    present, stratum = np.unique(keys // span, return_inverse=True)
    labels = np.asarray(county_labels, dtype=object)[present]
    return JKnDesign.from_strata(stratum, len(present)), psu.ravel(), labels


def domain_estimates(
    county: np.ndarray,
    school: np.ndarray,
    weight: np.ndarray,
    values: np.ndarray,
    variables: tuple[str, ...],
    groups: list[Grouping],
    contrast_vars: tuple[str, ...],
    city_code: str,
    params: IndicatorsParams,
    county_labels: np.ndarray | None = None,
    sd_vars: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Weighted means/percentages of every variable × domain, per county and pooled, with JKn SEs.

    Parameters
    ----------
    county, school, weight:
        ``(N,)`` per-row design variables of one design (weight > 0); county and school as
        integer codes with ``county_labels``, or as raw labels (see :func:`make_design`).
    values:
        ``(M, N, V)`` the V analysed variables, NaN where missing; M plausible values (M = 1
        without PVs). Estimates over PVs are combined with Rubin's rules.
    variables:
        The V indicator ids.
    groups:
        Domain definitions (the first is normally the whole population).
    contrast_vars:
        Variables for which each grouping's contrasts give ``gap_<var>`` rows.
    sd_vars:
        ``{variable: indicator}``: also the weighted population SD
        ``√(Σw(y−ȳ)²/Σw)`` of these variables, as ``indicator`` rows. It is a smooth function of
        two ratios (the means of ``y − c`` and ``(y − c)²``, ``c`` a constant for accuracy), so
        its replicates are that function of their replicates.

    Returns
    -------
    DataFrame with ``county_code, group_var, group_value, indicator, estimate, se, n_students,
    n_schools, df, suppressed, method``; empty domains are dropped. ``df`` is the design degrees
    of freedom of the row (:func:`pipeline.indicators.survey.design_df`): a county row's schools
    with data in the domain − 1, the pooled row's Σ_h (n_h − 1) (a gap: the schools of either
    group; with plausible values the design df is kept, no Barnard–Rubin adjustment). It is not a
    column of ``indicators.parquet``; :func:`add_ci` uses it.
    """
    sd_vars = dict(sd_vars or {})
    m_pv, n_obs, n_given = values.shape
    # rows[m, v] is variable v of PV m as one contiguous (N,) row, so that every bincount below
    # reads its weights contiguously (a copy without a transpose when ``values`` comes from
    # score_matrix / questionnaire_matrix, which build the (M, N, V) array as a view of (M, V, N))
    rows = np.empty((m_pv, n_given + len(sd_vars), n_obs))
    rows[:, :n_given, :] = values.transpose(0, 2, 1)
    shifts = {}
    for j, v in enumerate(sd_vars):  # hidden (y − c)² variables for the SDs
        y = values[:, :, variables.index(v)]
        shifts[v] = float(np.nanmean(y)) if np.isfinite(y).any() else 0.0
        rows[:, n_given + j, :] = (y - shifts[v]) ** 2
    variables = (*variables, *(f"_sq_{v}" for v in sd_vars))
    n_var = len(variables)
    weight = np.asarray(weight, dtype=float)
    if not (np.isfinite(weight) & (weight > 0)).all():
        raise ValueError("domain_estimates needs finite weights > 0 (compute() checks the data)")
    design, psu, county_labels = make_design(county, school, county_labels)
    s_n = design.S

    meta: list[tuple[str, str, str]] = []
    where: dict[tuple[str, int, str], int] = {}
    for g in groups:
        for v in variables:
            for code, label in enumerate(g.labels):
                where[(g.name, code, v)] = len(meta)
                meta.append((g.name, label, v))
    gap_a, gap_b, gap_meta = [], [], []
    for g in groups:
        for label, a, b in g.contrasts:
            for v in contrast_vars:
                gap_a.append(where[(g.name, a, v)])
                gap_b.append(where[(g.name, b, v)])
                gap_meta.append((g.name, label, f"gap_{v}"))
    gap_a_idx, gap_b_idx = np.array(gap_a, dtype=np.int64), np.array(gap_b, dtype=np.int64)
    sd_mean, sd_sq, sd_shift, sd_meta = [], [], [], []
    for g in groups:
        for v, name in sd_vars.items():
            for code, label in enumerate(g.labels):
                sd_mean.append(where[(g.name, code, v)])
                sd_sq.append(where[(g.name, code, f"_sq_{v}")])
                sd_shift.append(shifts[v])
                sd_meta.append((g.name, label, name))
    sd_mean_idx, sd_sq_idx = np.array(sd_mean, dtype=np.int64), np.array(sd_sq, dtype=np.int64)
    sd_c = np.array(sd_shift, dtype=float)

    def sd_of(mean: np.ndarray, sq: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(sq - (mean - sd_c) ** 2, 0.0))

    # bin of each row per grouping: psu·G + code, or the overflow bin S·G for a missing code
    bins = [
        np.where(g.codes >= 0, psu * len(g.labels) + g.codes, s_n * len(g.labels)) for g in groups
    ]
    thetas, variances, cnt = [], [], None
    for m in range(m_pv):
        valid = ~np.isnan(rows[m])  # (V, N)
        wy = np.where(valid, rows[m] * weight, 0.0)
        # variables with the same missing-value pattern share their denominators and counts
        same_as = [
            next(u for u in range(v + 1) if np.array_equal(valid[u], valid[v]))
            for v in range(n_var)
        ]
        wv = {u: np.where(valid[u], weight, 0.0) for u in set(same_as)}
        nums, dens, cnts = [], [], []
        for g, idx in zip(groups, bins, strict=True):
            n_g = len(g.labels)
            size = s_n * n_g + 1
            den_v: dict[int, np.ndarray] = {}
            cnt_v: dict[int, np.ndarray] = {}
            for v in range(n_var):
                u = same_as[v]
                if u not in den_v:
                    den_v[u] = np.bincount(idx, weights=wv[u], minlength=size)[:-1].reshape(
                        s_n, n_g
                    )
                    if m == 0:
                        c = np.bincount(idx, weights=valid[u], minlength=size)[:-1]
                        cnt_v[u] = np.rint(c).astype(np.int64).reshape(s_n, n_g)
                nums.append(np.bincount(idx, weights=wy[v], minlength=size)[:-1].reshape(s_n, n_g))
                dens.append(den_v[u])
                if m == 0:
                    cnts.append(cnt_v[u])
        if m == 0:
            cnt = np.concatenate(cnts, axis=1)
        rep = ratio_replicates(design, np.concatenate(nums, axis=1), np.concatenate(dens, axis=1))
        parts = [rep]
        if len(gap_a):
            parts.append(rep.take(gap_a_idx).minus(rep.take(gap_b_idx)))
        if len(sd_mean):
            a, b = rep.take(sd_mean_idx), rep.take(sd_sq_idx)
            parts.append(
                Replicates(
                    design,
                    sd_of(a.theta_c, b.theta_c),
                    sd_of(a.rep_c, b.rep_c),
                    sd_of(a.theta_p, b.theta_p),
                    sd_of(a.rep_p, b.rep_p),
                )
            )
        for extra in parts[1:]:
            rep = rep.concat(extra)
        var_c, var_p = rep.variance()
        thetas.append(np.vstack([rep.theta_c, rep.theta_p[None, :]]))
        variances.append(np.vstack([var_c, var_p[None, :]]))
    theta, var = rubin(np.stack(thetas), np.stack(variances))

    # sample sizes (first PV) and suppression
    n_c = design.stratum_sum(cnt)
    sch_c = design.stratum_sum((cnt > 0).astype(np.int64))
    n_all = np.vstack([n_c, n_c.sum(axis=0, keepdims=True)])
    sch_all = np.vstack([sch_c, sch_c.sum(axis=0, keepdims=True)])
    small = (n_all < params.suppress_min_students) | (sch_all < params.suppress_min_schools)
    empty = n_all == 0
    if len(gap_a):
        union = (cnt[:, gap_a_idx] + cnt[:, gap_b_idx]) > 0
        sch_u = design.stratum_sum(union.astype(np.int64))
        n_all = np.hstack([n_all, n_all[:, gap_a_idx] + n_all[:, gap_b_idx]])
        sch_all = np.hstack([sch_all, np.vstack([sch_u, sch_u.sum(axis=0, keepdims=True)])])
        small = np.hstack([small, small[:, gap_a_idx] | small[:, gap_b_idx]])
        empty = np.hstack([empty, empty[:, gap_a_idx] | empty[:, gap_b_idx]])
        sch_c = np.hstack([sch_c, sch_u])
    if len(sd_mean):
        n_all = np.hstack([n_all, n_all[:, sd_mean_idx]])
        sch_all = np.hstack([sch_all, sch_all[:, sd_mean_idx]])
        small = np.hstack([small, small[:, sd_mean_idx]])
        empty = np.hstack([empty, empty[:, sd_mean_idx]])
        sch_c = np.hstack([sch_c, sch_c[:, sd_mean_idx]])
    df_all = design_df(sch_c)  # schools with data of the row minus its strata (R degf)
    meta = meta + gap_meta + sd_meta
    hidden = np.array([m[2].startswith("_") for m in meta])
    empty = empty | hidden[None, :]

    n_levels, n_cols = theta.shape
    codes = np.append(county_labels, city_code)
    cols = np.array(meta, dtype=object).reshape(-1, 3)
    se = np.sqrt(var)
    out = pd.DataFrame(
        {
            "county_code": np.repeat(codes, n_cols),
            "group_var": np.tile(cols[:, 0], n_levels),
            "group_value": np.tile(cols[:, 1], n_levels),
            "indicator": np.tile(cols[:, 2], n_levels),
            "estimate": theta.ravel(),
            "se": se.ravel(),
            "n_students": n_all.ravel(),
            "n_schools": sch_all.ravel(),
            "df": df_all.ravel(),
            "suppressed": small.ravel(),
        }
    )
    out = out.loc[~empty.ravel()].reset_index(drop=True)
    pv = RUBIN.format(m=m_pv) if m_pv > 1 else ""
    ind = out["indicator"]
    method = np.select(
        [ind.str.startswith("gap_"), ind.str.startswith("pct_"), ind.isin(list(sd_vars.values()))],
        [METHOD_GAP, METHOD_PCT, METHOD_SD],
        METHOD_MEAN,
    )
    return out.assign(method=pd.Series(method, index=out.index) + pv)


# ------------------------------------------------------------------------------------------------
# Achievement
# ------------------------------------------------------------------------------------------------


QUESTIONNAIRE_SOURCES = ("homework_minutes", "sleep_hours", "myopia", "fitness_score")


def encode_students(students: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Usable students as an all-numeric frame, plus the sorted county labels.

    Columns: ``year, grade, c_idx`` (index into the labels), ``s_idx`` (school code), ``weight``,
    ``g_<group_var>`` subgroup codes (−1 = missing; SES quartiles computed here), the questionnaire
    variables as floats, and ``row`` (position in ``students``). Students without a positive
    weight, a school, a county or a grade cannot enter a design and are left out (logged; validate
    reports them; :func:`pipeline.indicators.compute` refuses weights that are not finite and
    above 0 before this point).
    """
    ok = (
        students["weight"].gt(0).fillna(False)
        & students["school_id"].notna()
        & students["county_code"].notna()
        & students["grade"].notna()
    ).to_numpy(dtype=bool)
    if (~ok).any():
        log.warning(
            "学生数据中有 %d 人缺少有效权重、学校、区县或年级，未参与估计", int((~ok).sum())
        )
    rows = np.flatnonzero(ok)
    everyone = len(rows) == len(students)

    def column(name: str) -> pd.Series:
        col = students[name]
        return col if everyone else col.iloc[rows]

    c_idx, labels = pd.factorize(column("county_code").astype(str), sort=True)
    s_idx, _ = pd.factorize(column("school_id").astype(str))
    year = column("year").to_numpy(dtype=np.int64)
    grade = column("grade").to_numpy(dtype=np.int64)
    weight = column("weight").to_numpy(dtype=float)
    cols = {
        "year": year,
        "grade": grade,
        "c_idx": c_idx,
        "s_idx": s_idx,
        "weight": weight,
        "row": rows,
    }
    present = [spec[1] for spec in GROUP_SPECS if spec[1] in students and spec[1] != "ses_q"]
    codes = group_code_columns(
        pd.DataFrame(
            {c: column(c).reset_index(drop=True) for c in present}, index=pd.RangeIndex(len(rows))
        )
    )
    if "ses" in students:
        cell = (year * (len(labels) + 1) + c_idx) * 100 + grade
        codes["g_ses_quartile"] = weighted_quartiles(
            cell, column("ses").to_numpy(dtype=float, na_value=np.nan), weight
        )
    cols.update(codes)
    for c in QUESTIONNAIRE_SOURCES:
        cols[c] = _num(students, c)[rows] if c in students else np.full(len(rows), np.nan)
    return pd.DataFrame(cols), np.asarray(labels, dtype=object)


def prepare_scores(
    enc: pd.DataFrame, students: pd.DataFrame, scores: pd.DataFrame
) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """Attach each score row to its student's design variables (m:1 on year, student_id).

    Returns the numeric frame (``enc`` columns + ``subj`` code, ``scale_score``, ``pv*``, ``lev``
    0..3 / −1), the plausible-value columns and the subject labels. Scores without a usable
    student are left out and counted in the log.
    """
    pv_cols = sorted(
        (c for c in scores.columns if c.startswith("pv") and c[2:].isdigit()),
        key=lambda c: int(c[2:]),
    )
    st_ids = students["student_id"].astype(str).iloc[enc["row"].to_numpy()].reset_index(drop=True)
    sc_ids = scores["student_id"].astype(str).reset_index(drop=True)
    pos = np.full(len(scores), -1, dtype=np.int64)
    sc_year = scores["year"].to_numpy(dtype=np.int64)
    enc_year = enc["year"].to_numpy()
    for year in np.unique(sc_year):
        in_st = np.flatnonzero(enc_year == year)
        in_sc = np.flatnonzero(sc_year == year)
        a = st_ids if len(in_st) == len(st_ids) else st_ids.iloc[in_st]
        b = sc_ids if len(in_sc) == len(sc_ids) else sc_ids.iloc[in_sc]
        # one hash pass over both id lists (arrow strings); codes of the students must be unique
        codes, uniques = pd.factorize(pd.concat([a, b], ignore_index=True))
        cs, cc = codes[: len(in_st)], codes[len(in_st) :]
        times = np.bincount(cs, minlength=len(uniques))
        if len(times) and times.max() > 1:
            raise EqmError(
                f"{year} 年的学生数据中学生编号重复（例如 {uniques[int(times.argmax())]}），无法对应成绩。",
                file="data/processed/validated/students.parquet",
                column="student_id",
                hint="请重新运行 eqm validate（它会隔离重复的学生记录）。",
            )
        lookup = np.full(len(uniques), -1, dtype=np.int64)
        lookup[cs] = in_st
        pos[in_sc] = lookup[cc]
    found = pos >= 0
    if (~found).any():
        log.warning("成绩记录中有 %d 条无法对应到有效学生，未参与估计", int((~found).sum()))
    subj, subj_labels = pd.factorize(scores["subject"].astype(str), sort=True)
    lev = (
        _code(scores["level"], LEVEL_INDEX)
        if "level" in scores
        else np.full(len(scores), -1, dtype=np.int64)
    )
    # one take, ordered so that the rows of one design (year, grade, subject) are contiguous
    sel = np.flatnonzero(found)
    p = pos[sel]
    base = enc.drop(columns=[*QUESTIONNAIRE_SOURCES, "row"])
    order = np.lexsort((subj[sel], base["grade"].to_numpy()[p], base["year"].to_numpy()[p]))
    sel, p = sel[order], p[order]
    merged = pd.DataFrame({c: base[c].to_numpy()[p] for c in base.columns})
    merged["subj"] = subj[sel]
    for c in ["scale_score", *pv_cols]:
        merged[c] = _num(scores, c)[sel] if c in scores else np.nan
    merged["lev"] = lev[sel]
    return merged, pv_cols, np.asarray(subj_labels, dtype=object)


@dataclass(frozen=True)
class Prepared:
    """Students encoded and scores matched to them, once per stage run: the input of both
    :func:`pipeline.indicators.compute` and the related factors
    (:func:`pipeline.indicators.factor_estimates.factor_estimates`). ``enc`` carries ``pos``,
    each encoded student's position, which ``merged`` keeps."""

    enc: pd.DataFrame
    counties: np.ndarray
    merged: pd.DataFrame
    pv_cols: list[str]
    subjects: np.ndarray


def prepare(students: pd.DataFrame, scores: pd.DataFrame) -> Prepared:
    """:func:`encode_students` and :func:`prepare_scores` (their warnings logged once)."""
    enc, counties = encode_students(students)
    enc = enc.assign(pos=np.arange(len(enc)))
    merged, pv_cols, subjects = prepare_scores(enc, students, scores)
    return Prepared(enc, counties, merged, pv_cols, subjects)


def score_values(
    frame: pd.DataFrame, pv_cols: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(M, N)`` scores of the rows of one design, the rows left out, and the PV columns used.

    The score is ``scale_score`` or, when the design has plausible values, each ``pv_m``. Rubin's
    rules need every PV analysis over the same students: a row missing some of its plausible
    values (but not all) is left out of every PV (its scores are NaN; the mask is returned so the
    caller can log it), so no PV's estimate, and no pooled row, mixes a different set of students
    and schools.
    """
    pvs = [c for c in pv_cols if frame[c].notna().any()]
    score_cols = pvs if pvs else ["scale_score"]
    partial = np.zeros(len(frame), dtype=bool)
    if len(pvs) > 1:
        present = frame[pvs].notna().to_numpy()
        partial = present.any(axis=1) & ~present.all(axis=1)
    y = np.empty((len(score_cols), len(frame)))
    for m, col in enumerate(score_cols):
        y[m] = (
            frame[col].to_numpy(dtype=float, na_value=np.nan)
            if col in frame
            else np.full(len(frame), np.nan)
        )
        y[m, partial] = np.nan
    return y, partial, pvs


def score_matrix(
    frame: pd.DataFrame, pv_cols: list[str], cuts: tuple[float, float, float]
) -> np.ndarray:
    """``(M, N, 7)`` values of :data:`SCORE_VARIABLES` for the rows of one design.

    The scores are those of :func:`score_values` (``scale_score`` or each ``pv_m``; a row missing
    some of its plausible values is left out of every PV, logged here). The level is the given
    level (``lev`` code 0..3) when present, else derived from the score (per PV) with the cut
    scores (lower bounds of Ⅱ, Ⅲ, Ⅳ; a score equal to a cut belongs to the higher level).

    The array is a ``(M, N, 7)`` view of a C-ordered ``(M, 7, N)`` one: each variable is one
    contiguous row, as :func:`domain_estimates` reads it.
    """
    scores, partial, pvs = score_values(frame, pv_cols)
    if partial.any():
        log.warning(
            "%d 条成绩只有部分似真值（%s），这些成绩不参与估计；请在数据中补齐或删除",
            int(partial.sum()),
            "、".join(pvs),
        )
    given = (
        frame["lev"].to_numpy(dtype=np.int64)
        if "lev" in frame
        else np.full(len(frame), -1, dtype=np.int64)
    )
    out = np.empty((len(scores), len(SCORE_VARIABLES), len(frame))).transpose(0, 2, 1)
    cut = np.asarray(cuts, dtype=float)
    for m, y in enumerate(scores):
        derived = np.where(np.isnan(y), -1, np.searchsorted(cut, y, side="right"))
        lev = np.where(partial, -1, np.where(given >= 0, given, derived))
        has = lev >= 0
        out[m, :, 0] = y
        for k in range(4):
            out[m, :, 1 + k] = np.where(has, 100.0 * (lev == k), np.nan)
        out[m, :, 5] = np.where(has, 100.0 * (lev >= 1), np.nan)
        out[m, :, 6] = np.where(has, 100.0 * (lev >= 2), np.nan)
    return out


def achievement_levels(
    est: pd.DataFrame, cuts: tuple[float, float, float], params: IndicatorsParams
) -> pd.DataFrame:
    """County achievement level rows (estimate 1 = Ⅰ … 4 = Ⅳ) from one design's estimates.

    ``mean_vs_cuts``: the level whose score band holds the weighted mean (CI bounds: the levels of
    the mean's CI bounds). ``share_good_or_above``: the highest level L such that the share of
    students at L or above is at least ``achievement_share_pct`` (with 50 the weighted median
    level, so Ⅲ means at least half the students at Ⅲ+); CI bounds from the shares' CI bounds.
    The level is a classification: ``se`` is NaN. Its ``method`` names the reference of the
    underlying interval (the ``ci_method`` of :func:`add_ci`, when present).
    """
    whole = est.loc[est["group_var"] == ""]
    if params.achievement_rule == "mean_vs_cuts":
        base = whole.loc[whole["indicator"] == "mean_score"].reset_index(drop=True)
        cut = np.asarray(cuts, dtype=float)

        def level(x: pd.Series) -> np.ndarray:
            v = x.to_numpy(dtype=float)
            return np.where(np.isnan(v), np.nan, 1.0 + np.searchsorted(cut, v, side="right"))

        lo, mid, hi = level(base["ci_low"]), level(base["estimate"]), level(base["ci_high"])
        method = "county level: weighted mean vs cut scores (CI from the mean's CI)"
        of = "; mean's "
    else:
        cum = ["pct_medium_or_above", "pct_good_or_above", "pct_level_IV"]
        wide = whole.loc[whole["indicator"].isin(cum)].pivot(
            index="county_code", columns="indicator", values=["estimate", "ci_low", "ci_high"]
        )
        base = (
            whole.loc[whole["indicator"] == "pct_good_or_above"]
            .set_index("county_code")
            .loc[wide.index]
            .reset_index()
        )
        share = params.achievement_share_pct

        def level(kind: str) -> np.ndarray:
            m = wide[kind][cum].to_numpy(dtype=float)
            return 1.0 + (m >= share).sum(axis=1)  # cumulative shares decrease with the level

        lo, mid, hi = level("ci_low"), level("estimate"), level("ci_high")
        method = f"county level: highest level reached by >= {share:g}% of students (weighted)"
        of = "; shares' "
    if "ci_method" in base:  # the reference of the underlying interval (add_ci)
        method = method + of + base["ci_method"].astype(str)
    return base.assign(
        indicator="achievement_level",
        estimate=mid,
        se=np.nan,
        ci_low=lo,
        ci_high=hi,
        method=method,
    )


CI_FORMS = {  # how an interval is built; completed by its quantile in :func:`ci_method`
    "wald": "CI estimate +/- q*SE",
    "logit": "CI on the logit scale (delta-method SE)",
    "fisher": "CI on Fisher's z scale (1/2 ln F)",
}


def ci_method(form: str, df: np.ndarray | None, n: int) -> np.ndarray:
    """``(n,)`` texts naming how each row's interval was built and its reference distribution.

    ``form`` is a key of :data:`CI_FORMS`; ``df`` the rows' design degrees of freedom, or None
    for the normal reference (``indicators.ci_reference: normal``). E.g. ``CI estimate +/- q*SE
    with q from t(df = schools - strata = 9)``; ``... with q = ci_z (normal)``; a row whose df is
    below 1 says ``q = ci_z (normal; df = schools - strata < 1)`` (:func:`~pipeline.indicators.
    survey.ci_quantile` falls back to the normal quantile there).
    """
    head = CI_FORMS[form]
    if df is None:
        return np.full(n, f"{head} with q = ci_z (normal)", dtype=object)
    df = np.broadcast_to(np.asarray(df, dtype=float), (n,))
    finite = np.isfinite(df)
    num = pd.Series(np.where(finite, df, 0.0).astype(np.int64).astype(str))
    t_text = (head + " with q from t(df = schools - strata = " + num + ")").to_numpy(dtype=object)
    use_t = finite & (df >= 1)
    if form == "fisher":  # no normal fallback: the interval is undefined below df 1
        return t_text
    return np.where(
        use_t, t_text, f"{head} with q = ci_z (normal; df = schools - strata < 1)"
    ).astype(object)


def add_ci(
    frame: pd.DataFrame, z: float, percent_ci: str = "logit", df: np.ndarray | None = None
) -> pd.DataFrame:
    """Confidence intervals at the level of ``z`` (1.96 → 95%): Wald for means, SDs and gaps,
    logit-scale for percentages; Student t with the design df or the normal quantile.

    Quantile ``q`` (:func:`pipeline.indicators.survey.ci_quantile`): with ``df`` (the rows' design
    degrees of freedom, ``indicators.ci_reference: t_design_df``; a county row's schools − 1, the
    pooled row's schools − counties) Student's ``t_df⁻¹(Φ(z))``, the reference the evidence stage
    tests with, as R survey's ``confint(stat, df = degf(design))`` does — 2.262 for a county with
    10 schools against 1.96; the normal ``z`` where ``df`` is None (``ci_reference: normal``),
    missing or below 1.

    Means, SDs and gaps: ``estimate ± q·se``. Percentages (indicators ``pct_*``, 0–100) with
    ``percent_ci = "logit"`` (the default, ``indicators.percent_ci``): the interval is built on the
    logit scale and transformed back, ``expit(logit(p) ± q·se_p / (p(1 − p)))`` with ``p`` and
    ``se_p`` as fractions (delta method), so it stays inside 0–100 and keeps its coverage near 0 %
    and 100 %, where the Wald interval undercovers (Brown, Cai & DasGupta 2001, Statist. Sci.
    16:101–133; Lumley 2010 §2.3.1). This is R survey's ``svyciprop(method = "xlogit", df =
    degf(design))`` (logit of the mean, delta-method SE from the jackknife variance of the mean);
    ``method = "logit"`` refits ``svyglm`` on every replicate: on the R fixture it differs by up to
    3 percentage points in a county of 4 schools, and it breaks down (bounds 0 and NA) when a
    jackknife replicate's share is 0 or 100 % (``tests/fixtures/r/make_ci_fixture.R``).
    At exactly 0 % or 100 % the interval is the point. ``percent_ci = "wald"`` gives
    ``estimate ± q·se`` for all. The SE itself is the jackknife SE in every case.

    Adds ``ci_low``, ``ci_high`` and ``ci_method`` (:func:`ci_method`: the form and the reference
    of each row's interval); when ``frame`` has a ``method`` column, ``"; " + ci_method`` is
    appended to it.
    """
    from scipy.special import expit  # here, not at the top: eqm demo-data imports this package

    if percent_ci not in ("logit", "wald"):
        raise ValueError(f"unknown percent_ci {percent_ci!r}")
    est = frame["estimate"].to_numpy(dtype=float)
    se = frame["se"].to_numpy(dtype=float)
    q = np.broadcast_to(ci_quantile(z, df), est.shape)
    lo, hi = est - q * se, est + q * se
    is_pct = np.zeros(len(frame), dtype=bool)
    if percent_ci == "logit":
        is_pct = frame["indicator"].astype(str).str.startswith("pct_").to_numpy()
        p = est / 100.0
        inside = is_pct & (p > 0) & (p < 1) & np.isfinite(se)
        pi, si = p[inside], se[inside] / 100.0
        logit = np.log(pi / (1 - pi))
        half = q[inside] * si / (pi * (1 - pi))
        lo[inside] = 100.0 * expit(logit - half)
        hi[inside] = 100.0 * expit(logit + half)
        edge = is_pct & ~inside & np.isfinite(est) & ((p <= 0) | (p >= 1))
        lo[edge] = est[edge]
        hi[edge] = est[edge]
    n = len(frame)
    text = np.where(is_pct, ci_method("logit", df, n), ci_method("wald", df, n))
    out = frame.assign(ci_low=lo, ci_high=hi, ci_method=text)
    if "method" in frame:
        out["method"] = frame["method"].astype(str).to_numpy(dtype=object) + "; " + text
    return out


def add_design_ci(frame: pd.DataFrame, params: IndicatorsParams) -> pd.DataFrame:
    """:func:`add_ci` with the stage's parameters: ``ci_z``, ``percent_ci`` and ``ci_reference``
    (``t_design_df``: the ``df`` column of :func:`domain_estimates`; ``normal``: no df)."""
    df = frame["df"].to_numpy(dtype=float) if params.ci_reference == "t_design_df" else None
    return add_ci(frame, params.ci_z, params.percent_ci, df)


def design_slices(frame: pd.DataFrame, keys: list[str]) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Row positions of each design (``keys`` are integer columns), in sorted key order."""
    k = frame[keys].to_numpy(dtype=np.int64)
    if len(k) and (k == k[0]).all():
        return [(tuple(int(v) for v in k[0]), np.arange(len(k)))]
    idx = frame.groupby(keys, sort=True).indices
    return [
        (tuple(int(v) for v in (key if isinstance(key, tuple) else (key,))), rows)
        for key, rows in idx.items()
    ]


def _rows(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[rows]``, as a cheap slice when the rows are contiguous."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return frame.iloc[rows[0] : rows[-1] + 1]
    return frame.iloc[rows]


def score_designs(
    merged: pd.DataFrame, subject_labels: np.ndarray, monitoring: MonitoringParams
) -> Iterator[tuple[int, int, str, pd.DataFrame, tuple[float, float, float]]]:
    """``year, grade, subject, rows, cut scores`` of each achievement design (year × grade ×
    subject), in key order: what the score and the 校际差异率 estimates loop over."""
    for (year, grade, subj), rows in design_slices(merged, ["year", "grade", "subj"]):
        subject = str(subject_labels[subj])
        cuts = monitoring.scale(year, subject, grade).cut_scores
        yield year, grade, subject, _rows(merged, rows), cuts


def score_estimates(
    merged: pd.DataFrame,
    pv_cols: list[str],
    county_labels: np.ndarray,
    subject_labels: np.ndarray,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> pd.DataFrame:
    """All achievement rows (means, level shares, county level, gaps) per year × grade × subject."""
    parts = []
    for year, grade, subject, d, cuts in score_designs(merged, subject_labels, monitoring):
        est = domain_estimates(
            d["c_idx"].to_numpy(),
            d["s_idx"].to_numpy(),
            d["weight"].to_numpy(dtype=float),
            score_matrix(d, pv_cols, cuts),
            SCORE_VARIABLES,
            groupings(d),
            ("mean_score",),
            monitoring.city_code,
            params,
            county_labels,
            sd_vars={"mean_score": "sd_score"},
        )
        est = add_design_ci(est, params)
        est = pd.concat([est, achievement_levels(est, cuts, params)], ignore_index=True)
        parts.append(est.assign(year=year, grade=grade, subject=subject))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# ------------------------------------------------------------------------------------------------
# Questionnaire
# ------------------------------------------------------------------------------------------------


def _num(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame:
        return np.full(len(frame), np.nan)
    s = frame[col]
    if isinstance(s.dtype, pd.BooleanDtype) or s.dtype == bool:
        s = s.astype("Float64")
    return s.to_numpy(dtype=float, na_value=np.nan)


def questionnaire_matrix(frame: pd.DataFrame, grade: int, params: IndicatorsParams) -> np.ndarray:
    """``(1, N, 6)`` values of :data:`QUESTIONNAIRE_VARIABLES` for one year × grade design.

    Homework over the limit: minutes strictly above the grade's limit (双减: ≤ 60 min grades 3–6,
    ≤ 90 min junior); sleep sufficient: hours ≥ the grade's minimum (10 h primary, 9 h junior);
    fitness pass: total score ≥ 60 (国家学生体质健康标准 及格).
    """
    hw = _num(frame, "homework_minutes")
    sleep = _num(frame, "sleep_hours")
    myopia = _num(frame, "myopia")
    fit = _num(frame, "fitness_score")
    limit = params.homework_limit_minutes.get(grade, np.nan)
    need = params.sleep_min_hours.get(grade, np.nan)

    def pct(cond: np.ndarray, src: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(src), np.nan, 100.0 * cond)

    with np.errstate(invalid="ignore"):
        cols = [
            pct(hw > limit, hw + limit),
            pct(sleep >= need, sleep + need),
            pct(myopia == 1.0, myopia),
            pct(fit >= params.fitness_pass_score, fit),
            hw,
            sleep,
        ]
    return np.stack(cols)[None, :, :].transpose(0, 2, 1)  # (1, N, 6), rows contiguous


def questionnaire_estimates(
    enc: pd.DataFrame,
    county_labels: np.ndarray,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> pd.DataFrame:
    """Questionnaire rows per year × grade (``subject`` empty) from :func:`encode_students`."""
    parts = []
    for (year, grade), rows in design_slices(enc, ["year", "grade"]):
        if grade not in params.homework_limit_minutes or grade not in params.sleep_min_hours:
            log.warning(
                "年级 %s 没有作业时长或睡眠标准（params.yaml indicators），相关指标未计算", grade
            )
        d = _rows(enc, rows)
        est = domain_estimates(
            d["c_idx"].to_numpy(),
            d["s_idx"].to_numpy(),
            d["weight"].to_numpy(dtype=float),
            questionnaire_matrix(d, grade, params),
            QUESTIONNAIRE_VARIABLES,
            groupings(d),
            (),
            monitoring.city_code,
            params,
            county_labels,
        )
        parts.append(add_design_ci(est, params).assign(year=year, grade=grade, subject=""))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
