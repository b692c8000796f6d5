"""校际差异率 (between-school difference rate): ICC(1), η² and the CV of school means.

Per ``year × county × grade × subject`` and pooled over the counties present (city code), from
the unweighted one-way ANOVA of scale scores on school (domain.md; Shrout & Fleiss 1979, ICC(1);
Snijders & Bosker 2012, *Multilevel Analysis*, §3.3). With school j holding ``n_j`` scores,
``N = Σ n_j``, ``k`` schools::

    MSB = Σ n_j (ȳ_j − ȳ)² / (k − 1)          MSW = Σ Σ (y_ij − ȳ_j)² / (N − k)
    n₀  = (N − Σ n_j² / N) / (k − 1)
    ICC(1) = (MSB − MSW) / (MSB + (n₀ − 1)·MSW)          (method 'ICC(1) one-way ANOVA (unweighted)')
    η²     = SS_between / SS_total                       (method 'eta squared')
    CV     = √(Σ (n_j/N)(ȳ_j − X̄)²) / X̄,  X̄ = Σ (n_j/N) ȳ_j   ('student-weighted CV of school means')

All three depend on the data only through per-school ``n_j, Σy, Σy²``, so the delete-one-school
jackknife (same JKn design and centring as :mod:`pipeline.indicators.survey`; the statistics are
unweighted, so a replicate is the statistic without school j) is computed from leave-one-out sums
without refitting. Scores are centred on the design's grand mean before summing squares (the
ANOVA is shift-invariant; this avoids cancellation). Plausible values: per PV, then Rubin.

Confidence interval of ICC(1) (``indicators.icc_ci``, default ``fisher_z``): built on Fisher's z
scale for the intraclass correlation and transformed back (Fisher 1925, *Statistical Methods for
Research Workers*, §40; Donner 1986, Int. Statist. Rev. 54:67–82, §4)::

    z(ρ) = ½·ln((1 + (n₀ − 1)ρ) / (1 − ρ)) = ½·ln(MSB / MSW) = ½·ln F
    z ± t_{df}·SE_JK(z)   →   ρ = 1 − n₀ / (exp(2z) + n₀ − 1)

``SE_JK(z)`` is the JKn jackknife SE of ½·ln F itself (the replicate values of ½·ln F, not the
delta method), ``n₀`` the full sample's, and the quantile is Student's t at the level of
``ci_z`` (1.96 → 95%) with the design degrees of freedom ``df = schools − strata`` (a county:
its schools with scores − 1; the pooled city row: all those schools − the counties with any;
R survey ``degf``), because with 8–12 schools the jackknife variance itself rests on 7–11
degrees of freedom. This interval uses t whatever ``indicators.ci_reference`` says, and is NaN
where df < 1. The interval is asymmetric, lies inside ``(−1/(n₀ − 1), 1)`` and always contains
the estimate. Reason: ICC(1) from 8–12 schools is skewed and bounded, and the Wald interval
``ICC ± 1.96·SE`` covered the demo generator's true ICC in only 0.878 of 720 county cells (seeds
1–20), missing almost always above (the true value over the upper bound: 0.119); this interval
covered 0.960 (0.003 below, 0.038 above), see ``tests/test_demo_recovery.py``. ``icc_ci = wald``
gives the symmetric ``estimate ± q·se``. ``se`` is the jackknife SE of the ICC itself in both
cases. With plausible values, z and its variance are combined over PVs by Rubin's rules and the
design df is kept (no Barnard–Rubin adjustment).
When F is 0 or infinite (all school means equal; no within-school spread) z is undefined and the
interval is NaN. η² and the CV keep the Wald interval ``estimate ± q·se``.

``q`` of the Wald intervals follows ``indicators.ci_reference`` (as the other indicators do,
:func:`pipeline.indicators.scores.add_ci`): ``t_design_df`` (default) Student's t with the same
design df, normal ``ci_z`` where df < 1; ``normal`` the normal ``ci_z``. The ``method`` text of
every row ends with the form and reference of its interval (:func:`~pipeline.indicators.scores.
ci_method`).

Verdict against the 优质均衡 rule (校际差异率 strictly below 0.15) is derived, not stored: see
:func:`pipeline.schemas.icc_verdict` — 'below' when ``ci_high < 0.15``, 'above' when
``ci_low >= 0.15``, else 'unsure'. An ICC can be negative (MSB < MSW); it is reported as computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import MonitoringParams
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.scores import ci_method, make_design, score_designs, score_values
from pipeline.indicators.survey import JKnDesign, Replicates, ci_quantile, design_df, rubin

BALANCE_INDICATORS = ("school_difference_rate", "eta_squared", "school_mean_cv")
BALANCE_METHODS = {
    "school_difference_rate": "ICC(1) one-way ANOVA (unweighted); JKn jackknife SE",
    "eta_squared": "eta squared (SS_between/SS_total, unweighted); JKn jackknife SE",
    "school_mean_cv": "student-weighted CV of school means (population form); JKn jackknife SE",
}


def anova_from_sums(
    n: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
    k: np.ndarray,
    shift,
) -> tuple[np.ndarray, ...]:
    """ICC(1), η², school-mean CV, Fisher's z = ½·ln(MSB/MSW) and n₀ from pooled sums over schools.

    ``n = Σ n_j``, ``s1 = Σ Σ y``, ``s2 = Σ Σ y²``, ``d = Σ (Σ_i y_ij)² / n_j``, ``e = Σ n_j²``,
    ``k`` = schools, all on scores centred by ``shift`` (added back for the CV's mean).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        sst = s2 - s1**2 / n
        ssb = d - s1**2 / n
        ssw = s2 - d
        msb = ssb / (k - 1)
        msw = ssw / (n - k)
        n0 = (n - e / n) / (k - 1)
        icc = (msb - msw) / (msb + (n0 - 1.0) * msw)
        eta = ssb / sst
        mean = s1 / n + shift
        cv = np.sqrt(np.maximum(d / n - (s1 / n) ** 2, 0.0)) / mean
        fz = 0.5 * np.log(msb / msw)
    bad = (k < 2) | (n - k < 1)
    icc = np.where(bad, np.nan, icc)
    eta = np.where(bad, np.nan, eta)
    fz = np.where(bad | ~np.isfinite(fz), np.nan, fz)
    return icc, eta, cv, fz, n0


def school_balance(
    county: np.ndarray,
    school: np.ndarray,
    y: np.ndarray,
    city_code: str,
    county_labels: np.ndarray | None = None,
) -> tuple[pd.DataFrame, Replicates]:
    """ICC(1), η², CV with JKn replicates for one variable of one design (NaN scores ignored).

    Returns per-level (counties then pooled) ``county_code, n_students, n_schools, df`` (design
    degrees of freedom: schools with scores minus strata with any) and the :class:`Replicates` of
    ICC(1), η², CV, Fisher's z and n₀ (the last has no use as a replicate statistic; its
    full-sample value back-transforms z).
    """
    design, psu, labels = make_design(county, school, county_labels)
    ok = ~np.isnan(y)
    shift = float(np.mean(y[ok])) if ok.any() else 0.0
    yc = y[ok] - shift
    p = psu[ok]
    nj = np.bincount(p, minlength=design.S).astype(float)
    s1j = np.bincount(p, weights=yc, minlength=design.S)
    s2j = np.bincount(p, weights=yc * yc, minlength=design.S)
    with np.errstate(invalid="ignore", divide="ignore"):
        dj = np.where(nj > 0, s1j**2 / np.where(nj > 0, nj, 1.0), 0.0)
    ej = nj**2
    kj = (nj > 0).astype(float)
    terms = np.stack([nj, s1j, s2j, dj, ej, kj], axis=1)  # (S, 6), additive over schools
    tot_c = design.stratum_sum(terms)  # (H, 6)
    tot_p = tot_c.sum(axis=0)

    def stats(t: np.ndarray) -> np.ndarray:
        return np.stack(anova_from_sums(*(t[..., i] for i in range(6)), shift=shift), axis=-1)

    # The statistics are over the schools with scores: a sampled school without any (a subject
    # not tested there) is left out of the jackknife, so the factor (k_h − 1)/k_h counts the
    # same k_h schools as the ICC's df. A county with no scores at all keeps one PSU (its
    # estimates are NaN and its rows are dropped) so the design keeps every stratum.
    stratum = design.stratum
    first = np.r_[True, stratum[1:] != stratum[:-1]]
    keep = (nj > 0) | (first & (tot_c[stratum, 5] == 0))
    design = JKnDesign.from_strata(stratum[keep], design.H)
    terms = terms[keep]
    theta_c = stats(tot_c)
    rep_c = stats(tot_c[design.stratum] - terms)
    theta_p = stats(tot_p)
    rep_p = stats(tot_p[None, :] - terms)
    single = design.n_h[design.stratum] == 1
    rep_c[single] = theta_c[design.stratum[single]]
    rep_p[single] = theta_p
    rep = Replicates(design, theta_c, rep_c, theta_p, rep_p)
    sizes = pd.DataFrame(
        {
            "county_code": np.append(labels, city_code),
            "n_students": np.append(tot_c[:, 0], tot_p[0]).astype(np.int64),
            "n_schools": np.append(tot_c[:, 5], tot_p[5]).astype(np.int64),
        }
    )
    sizes["df"] = design_df(tot_c[:, 5])  # counties: k_h − 1; pooled: Σ k_h − H (R degf)
    return sizes, rep


def balance_estimates(
    merged: pd.DataFrame,
    pv_cols: list[str],
    county_labels: np.ndarray,
    subject_labels: np.ndarray,
    monitoring: MonitoringParams,
    params: IndicatorsParams,
) -> pd.DataFrame:
    """校际差异率 rows per year × grade × subject × county (and pooled), whole population."""
    parts = []
    for year, grade, subject, d, _cuts in score_designs(merged, subject_labels, monitoring):
        scores = score_values(d, pv_cols)[0]  # (M, N); partial PVs are logged by score_estimates
        county = d["c_idx"].to_numpy()
        school = d["s_idx"].to_numpy()
        thetas, variances, sizes = [], [], None
        for m in range(scores.shape[0]):
            sz, rep = school_balance(county, school, scores[m], monitoring.city_code, county_labels)
            sizes = sz if sizes is None else sizes
            var_c, var_p = rep.variance()
            thetas.append(np.vstack([rep.theta_c, rep.theta_p[None, :]]))
            variances.append(np.vstack([var_c, var_p[None, :]]))
        theta, var = rubin(np.stack(thetas), np.stack(variances))
        pv = (
            f"; Rubin's rules over {scores.shape[0]} plausible values"
            if scores.shape[0] > 1
            else ""
        )
        df = sizes["df"].to_numpy(dtype=float)
        wald_df = df if params.ci_reference == "t_design_df" else None
        q = ci_quantile(params.ci_z, wald_df)
        for i, ind in enumerate(BALANCE_INDICATORS):
            est, se = theta[:, i], np.sqrt(var[:, i])
            if ind == "school_difference_rate" and params.icc_ci == "fisher_z":
                lo, hi = icc_interval(theta[:, 3], np.sqrt(var[:, 3]), theta[:, 4], df, params.ci_z)
                ci_text = ci_method("fisher", df, len(df))
            else:
                lo, hi = est - q * se, est + q * se
                ci_text = ci_method("wald", wald_df, len(df))
            parts.append(
                sizes.drop(columns="df").assign(
                    year=year,
                    grade=grade,
                    subject=subject,
                    indicator=ind,
                    group_var="",
                    group_value="",
                    estimate=est,
                    se=se,
                    ci_low=lo,
                    ci_high=hi,
                    method=BALANCE_METHODS[ind] + pv + "; " + ci_text,
                )
            )
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out = out.loc[out["n_students"] > 0]
    return out.assign(
        suppressed=(out["n_students"] < params.suppress_min_students)
        | (out["n_schools"] < params.suppress_min_schools),
    )


def icc_interval(
    fz: np.ndarray, se_fz: np.ndarray, n0: np.ndarray, df: np.ndarray, ci_z: float
) -> tuple[np.ndarray, np.ndarray]:
    """ICC(1) interval from Fisher's z = ½·ln F, its jackknife SE, n₀ and the design df.

    ``z ± q·se_z`` with ``q`` the Student t quantile (``df``) at the two-sided level of the normal
    ``ci_z`` (1.96 → 0.975), mapped back by ``ρ = 1 − n₀ / (exp(2z) + n₀ − 1)`` (the inverse of
    ``z = ½·ln((1 + (n₀ − 1)ρ)/(1 − ρ))``; monotone, so the bounds map to bounds). NaN where z, its
    SE or ``df ≥ 1`` is missing. See the module docstring for the method and its references.
    """
    fz, se_fz = np.asarray(fz, dtype=float), np.asarray(se_fz, dtype=float)
    n0, df = np.asarray(n0, dtype=float), np.asarray(df, dtype=float)
    ok = np.isfinite(fz) & np.isfinite(se_fz) & (df >= 1) & (n0 > 1)
    q = np.where(ok, ci_quantile(ci_z, np.where(ok, df, 1.0)), np.nan)

    def back(z: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 - n0 / (np.exp(2.0 * z) + n0 - 1.0)

    lo, hi = back(fz - q * se_fz), back(fz + q * se_fz)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
