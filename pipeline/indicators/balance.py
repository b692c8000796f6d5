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

Verdict against the 优质均衡 rule (校际差异率 strictly below 0.15) is derived, not stored: see
:func:`icc_verdict` — 'below' when ``ci_high < 0.15``, 'above' when ``ci_low >= 0.15``, else
'unsure'. An ICC can be negative (MSB < MSW); it is reported as computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import MonitoringParams
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.scores import design_slices, make_design, score_matrix
from pipeline.indicators.survey import Replicates, rubin

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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICC(1), η² and school-mean CV from pooled sums over schools.

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
    bad = (k < 2) | (n - k < 1)
    icc = np.where(bad, np.nan, icc)
    eta = np.where(bad, np.nan, eta)
    return icc, eta, cv


def school_balance(
    county: np.ndarray,
    school: np.ndarray,
    y: np.ndarray,
    city_code: str,
    county_labels: np.ndarray | None = None,
) -> tuple[pd.DataFrame, Replicates]:
    """ICC(1), η², CV with JKn replicates for one variable of one design (NaN scores ignored).

    Returns per-level (counties then pooled) ``county_code, n_students, n_schools`` and the
    :class:`Replicates` of the 3 statistics.
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

    theta_c = stats(tot_c)
    rep_c = stats(tot_c[design.stratum] - terms)
    theta_p = stats(tot_p)
    rep_p = stats(tot_p[None, :] - terms)
    empty = nj == 0  # a school without scores: its replicate equals the full estimate
    rep_c[empty] = theta_c[design.stratum[empty]]
    rep_p[empty] = theta_p
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
    for (year, grade, subj), rows in design_slices(merged, ["year", "grade", "subj"]):
        subject = str(subject_labels[subj])
        d = merged.iloc[rows]
        cuts = monitoring.scale(year, subject, grade).cut_scores
        scores = score_matrix(d, pv_cols, cuts)[:, :, 0]  # (M, N)
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
        for i, ind in enumerate(BALANCE_INDICATORS):
            parts.append(
                sizes.assign(
                    year=year,
                    grade=grade,
                    subject=subject,
                    indicator=ind,
                    group_var="",
                    group_value="",
                    estimate=theta[:, i],
                    se=np.sqrt(var[:, i]),
                    method=BALANCE_METHODS[ind] + pv,
                )
            )
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out = out.loc[out["n_students"] > 0]
    return out.assign(
        ci_low=out["estimate"] - params.ci_z * out["se"],
        ci_high=out["estimate"] + params.ci_z * out["se"],
        suppressed=(out["n_students"] < params.suppress_min_students)
        | (out["n_schools"] < params.suppress_min_schools),
    )


def icc_verdict(ci_low, ci_high, threshold: float = 0.15) -> np.ndarray:
    """'below' (ci_high < threshold), 'above' (ci_low >= threshold) or 'unsure' (else / NaN).

    The 优质均衡 requirement is 校际差异率 strictly below 0.15; 'below' means it is met with 95%
    confidence, 'above' that it is missed with confidence.
    """
    lo = np.asarray(ci_low, dtype=float)
    hi = np.asarray(ci_high, dtype=float)
    return np.where(hi < threshold, "below", np.where(lo >= threshold, "above", "unsure"))
