"""校际差异率 (ICC(1), η², CV of school means), its jackknife, and CI coverage over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import f_oneway

from pipeline.indicators.balance import (
    anova_from_sums,
    icc_interval,
    school_balance,
)
from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.scores import Grouping, domain_estimates
from pipeline.schemas import icc_verdict


def one_county(groups: list[list[float]], county: str = "450107"):
    y = np.concatenate([np.asarray(g, float) for g in groups])
    school = np.concatenate([[f"s{j}"] * len(g) for j, g in enumerate(groups)]).astype(object)
    return np.full(len(y), county, dtype=object), school, y


def direct_anova(groups: list[list[float]]) -> tuple[float, float, float]:
    """Textbook one-way ANOVA written out independently of the sums-based code."""
    ys = [np.asarray(g, float) for g in groups]
    allv = np.concatenate(ys)
    n_tot, k = len(allv), len(ys)
    grand = allv.mean()
    ssb = sum(len(g) * (g.mean() - grand) ** 2 for g in ys)
    ssw = sum(((g - g.mean()) ** 2).sum() for g in ys)
    msb, msw = ssb / (k - 1), ssw / (n_tot - k)
    n0 = (n_tot - sum(len(g) ** 2 for g in ys) / n_tot) / (k - 1)
    icc = (msb - msw) / (msb + (n0 - 1) * msw)
    means = np.array([g.mean() for g in ys])
    p = np.array([len(g) for g in ys]) / n_tot
    xbar = (p * means).sum()
    cv = np.sqrt((p * (means - xbar) ** 2).sum()) / xbar
    return icc, ssb / (ssb + ssw), cv


def test_domain_md_example():
    # domain.md: schools A = [1, 2, 3], B = [4, 5, 6] -> η² = 0.7714, ICC(1) = 0.8065
    # by hand: SSB = 13.5, SSW = 4, MSB = 13.5, MSW = 1, n0 = 3 -> ICC = 12.5/15.5 = 0.806452;
    # η² = 13.5/17.5 = 0.771429; school means 2 and 5, X̄ = 3.5, S = 1.5 -> CV = 0.428571
    sizes, rep = school_balance(*one_county([[1, 2, 3], [4, 5, 6]]), city_code="450100")
    icc, eta, cv = rep.theta_c[0][:3]
    assert icc == pytest.approx(12.5 / 15.5, rel=1e-12)
    assert round(icc, 4) == 0.8065
    assert eta == pytest.approx(13.5 / 17.5, rel=1e-12)
    assert round(eta, 4) == 0.7714
    assert cv == pytest.approx(1.5 / 3.5, rel=1e-12)
    assert sizes["n_students"].tolist() == [6, 6] and sizes["n_schools"].tolist() == [2, 2]


def test_unequal_school_sizes_use_n0():
    # by hand: A = [1, 2], B = [4, 5, 6]: N = 5, grand 3.6, SSB = 14.7, SSW = 2.5, MSW = 2.5/3,
    # n0 = (5 - 13/5)/1 = 2.4 -> ICC = (14.7 - 0.8333)/(14.7 + 1.4·0.8333) = 0.873950;
    # η² = 14.7/17.2 = 0.854651. Using the mean school size (2.5) instead of n0 gives 0.8739… ≠.
    _, rep = school_balance(*one_county([[1, 2], [4, 5, 6]]), city_code="450100")
    icc, eta, _ = rep.theta_c[0][:3]
    assert icc == pytest.approx((14.7 - 2.5 / 3) / (14.7 + 1.4 * 2.5 / 3), rel=1e-12)
    assert icc == pytest.approx(0.873950, abs=1e-6)
    assert eta == pytest.approx(14.7 / 17.2, rel=1e-12)
    wrong_n0 = (14.7 - 2.5 / 3) / (14.7 + 1.5 * 2.5 / 3)
    assert abs(icc - wrong_n0) > 1e-3


def test_jackknife_equals_brute_force_leave_one_school_out():
    rng = np.random.default_rng(7)
    groups = [
        list(rng.normal(500 + 40 * rng.normal(), 80, size=rng.integers(5, 15))) for _ in range(6)
    ]
    _, rep = school_balance(*one_county(groups), city_code="450100")
    full = np.array(direct_anova(groups))
    loo = np.array([direct_anova(groups[:j] + groups[j + 1 :]) for j in range(6)])
    np.testing.assert_allclose(rep.theta_c[0][:3], full, rtol=1e-10)
    np.testing.assert_allclose(rep.rep_c[:, :3], loo, rtol=1e-9)
    # Fisher's z = ½·ln F, F from scipy's one-way ANOVA (independent of the sums-based code)
    half_log_f = 0.5 * np.log(f_oneway(*groups).statistic)
    loo_z = [0.5 * np.log(f_oneway(*(groups[:j] + groups[j + 1 :])).statistic) for j in range(6)]
    assert rep.theta_c[0, 3] == pytest.approx(half_log_f, rel=1e-10)
    np.testing.assert_allclose(rep.rep_c[:, 3], loo_z, rtol=1e-9)
    var_c, var_p = rep.variance()
    np.testing.assert_allclose(var_c[0, :3], 5 / 6 * ((loo - full) ** 2).sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(var_p, var_c[0], rtol=1e-9)  # one county: pooled = county


def test_pooled_icc_uses_all_schools_and_stratum_factors():
    g1 = [[1, 2, 3], [4, 5, 6], [2, 2, 3]]
    g2 = [[7, 8], [5, 9, 9], [6, 6, 7], [8, 8, 8]]
    c1, s1, y1 = one_county(g1, "450107")
    c2, s2, y2 = one_county(g2, "450110")
    s2 = np.array([f"t{x}" for x in s2], dtype=object)
    _, rep = school_balance(np.r_[c1, c2], np.r_[s1, s2], np.r_[y1, y2], city_code="450100")
    np.testing.assert_allclose(rep.theta_p[:3], direct_anova(g1 + g2), rtol=1e-10)
    allg = g1 + g2
    loo = np.array([direct_anova(allg[:j] + allg[j + 1 :]) for j in range(7)])
    f = np.array([2 / 3] * 3 + [3 / 4] * 4)[:, None]
    _, var_p = rep.variance()
    np.testing.assert_allclose(
        var_p[:3], (f * (loo - direct_anova(allg)) ** 2).sum(axis=0), rtol=1e-9
    )


def test_shift_invariance_and_large_scores():
    groups = [[501.0, 502.0, 503.0], [504.0, 505.0, 506.0]]
    _, rep = school_balance(*one_county(groups), city_code="450100")
    assert rep.theta_c[0, 0] == pytest.approx(12.5 / 15.5, rel=1e-10)
    assert rep.theta_c[0, 2] == pytest.approx(1.5 / 503.5, rel=1e-10)  # CV is not shift-invariant


def test_degenerate_inputs_give_nan_not_errors():
    icc, eta, *_ = anova_from_sums(
        *(np.array([3.0]),) * 3, np.array([3.0]), np.array([9.0]), np.array([1.0]), 0.0
    )
    assert np.isnan(icc) and np.isnan(eta)  # one school: no between-school variance defined


def test_verdict():
    lo = np.array([0.02, 0.16, 0.10, 0.15, np.nan])
    hi = np.array([0.149, 0.30, 0.20, 0.25, np.nan])
    assert icc_verdict(lo, hi).tolist() == ["below", "above", "unsure", "above", "unsure"]
    assert icc_verdict([0.1], [0.15]).tolist() == ["unsure"]  # 0.15 is not strictly below


def _simulate(seed: int, n_h: int = 20, m: int = 20, tau: float = 30.0, sigma: float = 90.0):
    """Two-level model y = 500 + u_j + e_ij, u ~ N(0, τ²), e ~ N(0, σ²); 3 counties × n_h schools."""
    rng = np.random.default_rng(seed)
    s_n = 3 * n_h
    county = np.repeat(np.array(["450107", "450110", "450125"], dtype=object), n_h * m)
    school = np.repeat(np.array([f"s{s:03d}" for s in range(s_n)], dtype=object), m)
    y = 500.0 + np.repeat(rng.normal(0, tau, s_n), m) + rng.normal(0, sigma, s_n * m)
    w = np.repeat(rng.uniform(10, 30, s_n), m)  # unequal weights, unrelated to y
    return county, school, w, y


def test_ci_coverage_over_seeds():
    """95% CIs of the mean (per county and pooled) and of the pooled ICC cover the truth ~95%.

    The ICC interval here is the stage's (Fisher z, t with df = 60 schools − 3 strata = 57); the
    truth is the generator's superpopulation τ²/(τ² + σ²), with fresh school effects per seed."""
    truth_icc = 30.0**2 / (30.0**2 + 90.0**2)  # 0.1 (generator's τ², σ²)
    params = IndicatorsParams()
    hits_mean, hits_icc, n_rep = [], [], 150
    for seed in range(n_rep):
        county, school, w, y = _simulate(seed)
        g = [Grouping("", np.zeros(len(y), dtype=np.int64), ("",))]
        est = domain_estimates(
            county, school, w, y[None, :, None], ("mean_score",), g, (), "450100", params
        )
        hits_mean.extend(np.abs(est["estimate"] - 500.0) <= 1.96 * est["se"])
        sizes, rep = school_balance(county, school, y, "450100")
        _, var_p = rep.variance()
        lo, hi = icc_interval(
            rep.theta_p[3], np.sqrt(var_p[3]), rep.theta_p[4], sizes["df"].iloc[-1], 1.96
        )
        hits_icc.append(lo <= truth_icc <= hi)
    cover_mean, cover_icc = np.mean(hits_mean), np.mean(hits_icc)
    # binomial SD at 0.95: ~0.009 (600 intervals) and ~0.018 (150): ±3 SD windows
    assert 0.91 <= cover_mean <= 0.98, cover_mean
    assert 0.89 <= cover_icc <= 0.995, cover_icc


def test_balance_rows_in_stage_output_are_labelled():
    from pipeline.config import MonitoringParams, Scale
    from pipeline.indicators import compute

    county, school, w, y = _simulate(1, n_h=4, m=8)
    ids = [f"x{i}" for i in range(len(y))]
    students = pd.DataFrame({"year": 2022, "student_id": ids, "county_code": county, "school_id": school,
                             "grade": 4, "weight": w})  # fmt: skip
    scores = pd.DataFrame({"year": 2022, "student_id": ids, "subject": "math", "scale_score": y})
    schools = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    mon = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380, 480, 580), (100, 900)))
    ind = compute(students, scores, schools, None, mon, IndicatorsParams())[0]
    out = ind.loc[
        ind["indicator"].isin(["school_difference_rate", "eta_squared", "school_mean_cv"])
    ]
    assert len(out) == 3 * 4 and (out["group_var"] == "").all() and (out["subject"] == "math").all()
    icc = out.loc[out["indicator"] == "school_difference_rate"]
    assert icc["method"].str.startswith("ICC(1) one-way ANOVA (unweighted)").all()
    # the county values equal the direct ANOVA on that county's schools
    c = county == "450107"
    groups = [list(y[c & (school == s)]) for s in pd.unique(school[c])]
    assert icc.set_index("county_code").loc["450107", "estimate"] == pytest.approx(
        direct_anova(groups)[0], rel=1e-10
    )


# --- the ICC's confidence interval (indicators.icc_ci = fisher_z) -------------------------------

# Four schools of unequal size; expected values from R 4.x (Debian r-base-core), written without
# any of this code: anova(lm(y ~ school)) for MSB, MSW and F, n0 = (N − Σn²/N)/(k − 1), the
# leave-one-school-out ½·log F refitted with lm() per school, se = sqrt((k−1)/k·Σ(z_j − z)²),
# q = qt(pnorm(1.96), k − 1), bounds 1 − n0/(exp(2(z ∓ q·se)) + n0 − 1):
# n0 3.688888888889, ICC 0.617315573770, z 0.969415236734, se 0.527637148872,
# q 3.182555972644, CI [-0.258709954251, 0.981781961824].
R_GROUPS = [[1, 2, 3, 4], [4, 5, 6], [2, 3, 3, 5, 6], [6, 7, 8]]
R_CI = (-0.258709954251, 0.981781961824)


def test_icc_interval_hand_example():
    # R: q7 <- qt(pnorm(1.96), 7); z <- 0.5*log(4); 1 - 10/(exp(2*(z -/+ q7*0.2)) + 9)
    # -> q7 = 2.364681491594, [0.052434685852, 0.481871662160]; the point: (4 − 1)/(4 + 9) = 0.2308
    lo, hi = icc_interval(np.array([0.5 * np.log(4.0)]), np.array([0.2]), np.array([10.0]),
                          np.array([7]), 1.96)  # fmt: skip
    np.testing.assert_allclose([lo[0], hi[0]], [0.052434685852, 0.481871662160], rtol=1e-10)
    # asymmetric around the estimate 3/13, unlike estimate ± 1.96·se
    assert hi[0] - 3 / 13 > 3 / 13 - lo[0]


def test_icc_interval_matches_r_on_four_schools():
    sizes, rep = school_balance(*one_county(R_GROUPS), city_code="450100")
    var_c, _ = rep.variance()
    assert rep.theta_c[0, 0] == pytest.approx(0.617315573770, rel=1e-10)
    assert rep.theta_c[0, 3] == pytest.approx(0.969415236734, rel=1e-10)
    assert rep.theta_c[0, 4] == pytest.approx(3.688888888889, rel=1e-10)
    assert np.sqrt(var_c[0, 3]) == pytest.approx(0.527637148872, rel=1e-10)
    assert sizes["df"].tolist() == [3, 3]  # county: 4 schools − 1; pooled over one county: same
    lo, hi = icc_interval(rep.theta_c[:, 3], np.sqrt(var_c[:, 3]), rep.theta_c[:, 4],
                          sizes["df"].to_numpy()[:1], 1.96)  # fmt: skip
    np.testing.assert_allclose([lo[0], hi[0]], R_CI, rtol=1e-9)


def _stage_icc(groups, **params):
    from pipeline.config import MonitoringParams, Scale
    from pipeline.indicators import compute

    county, school, y = one_county(groups)
    ids = [f"x{i}" for i in range(len(y))]
    students = pd.DataFrame({"year": 2022, "student_id": ids, "county_code": county, "school_id": school,
                             "grade": 4, "weight": 1.0})  # fmt: skip
    scores = pd.DataFrame({"year": 2022, "student_id": ids, "subject": "math", "scale_score": y})
    schools = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    mon = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380, 480, 580), (100, 900)))
    ind = compute(students, scores, schools, None, mon, IndicatorsParams(**params))[0]
    return ind.loc[ind["indicator"] == "school_difference_rate"].set_index("county_code")


def test_stage_writes_the_fisher_z_interval():
    row = _stage_icc(R_GROUPS).loc["450107"]
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], R_CI, rtol=1e-9)
    # se stays the jackknife SE of the ICC itself (brute force over the four schools)
    loo = [direct_anova(R_GROUPS[:j] + R_GROUPS[j + 1 :])[0] for j in range(4)]
    icc = direct_anova(R_GROUPS)[0]
    assert row["se"] == pytest.approx(np.sqrt(3 / 4 * sum((v - icc) ** 2 for v in loo)), rel=1e-9)
    assert "Fisher's z" in row["method"] and "t(df = schools - strata = 3)" in row["method"]
    # icc_ci = wald: the symmetric interval estimate ± q·se (the jackknife SE of the ICC), with
    # q = qt(pnorm(1.96), 3) = 3.182555972644 (R, above) under the default ci_reference
    wald = _stage_icc(R_GROUPS, icc_ci="wald").loc["450107"]
    assert wald["estimate"] == row["estimate"] and wald["se"] == row["se"]
    np.testing.assert_allclose(
        [wald["ci_low"], wald["ci_high"]],
        [
            row["estimate"] - 3.182555972644 * row["se"],
            row["estimate"] + 3.182555972644 * row["se"],
        ],
        rtol=1e-11,
    )
    assert wald["method"].endswith("CI estimate +/- q*SE with q from t(df = schools - strata = 3)")
    # ci_reference = normal: today's estimate ± 1.96·se; the Fisher-z interval keeps its t
    normal = _stage_icc(R_GROUPS, icc_ci="wald", ci_reference="normal").loc["450107"]
    np.testing.assert_allclose(
        [normal["ci_low"], normal["ci_high"]],
        [row["estimate"] - 1.96 * row["se"], row["estimate"] + 1.96 * row["se"]],
        rtol=1e-12,
    )
    assert normal["method"].endswith("CI estimate +/- q*SE with q = ci_z (normal)")
    fisher = _stage_icc(R_GROUPS, ci_reference="normal").loc["450107"]
    np.testing.assert_allclose([fisher["ci_low"], fisher["ci_high"]], R_CI, rtol=1e-9)


# Two counties of 4 and 3 schools, pooled (city row). R 4.2.2, written without this code:
# A <- list(c(1,2,3,4), c(4,5,6), c(2,3,3,5,6), c(6,7,8)); B <- list(c(3,5,4), c(8,9,7,9),
# c(2,4,4,3)); z = ½·log F of anova(lm(y ~ school)) over all 7 schools; leave-one-school-out z by
# refitting; v = 3/4·Σ_A (z_j − z)² + 2/3·Σ_B (z_j − z)² (JKn, (n_h − 1)/n_h); bounds
# 1 − n0/(exp(2(z ∓ q·√v)) + n0 − 1) with q = qt(pnorm(1.96), df):
# ICC 0.741261180620915, n0 3.69230769230769, z 1.22455756682354, se 0.367090727791929;
# df = 7 schools − 2 counties = 5: q 2.57065121936392, CI [0.169543457954048, 0.953337074262957];
# (df = 7 − 1 = 6 would give q 2.44697384524753, CI [0.199555331757576, 0.949066407312294]).
POOLED_A = [[1, 2, 3, 4], [4, 5, 6], [2, 3, 3, 5, 6], [6, 7, 8]]
POOLED_B = [[3, 5, 4], [8, 9, 7, 9], [2, 4, 4, 3]]


def test_pooled_icc_interval_uses_schools_minus_counties_df():
    ca, sa, ya = one_county(POOLED_A, "450107")
    cb, sb, yb = one_county(POOLED_B, "450110")
    sb = np.array([f"t{x}" for x in sb], dtype=object)
    county, school, y = np.r_[ca, cb], np.r_[sa, sb], np.r_[ya, yb]
    sizes, rep = school_balance(county, school, y, city_code="450100")
    assert sizes["df"].tolist() == [3, 2, 5]  # county: schools − 1; pooled: 7 schools − 2 counties
    _, var_p = rep.variance()
    assert rep.theta_p[0] == pytest.approx(0.741261180620915, rel=1e-10)
    assert rep.theta_p[3] == pytest.approx(1.22455756682354, rel=1e-10)
    assert np.sqrt(var_p[3]) == pytest.approx(0.367090727791929, rel=1e-10)
    # the stage's pooled row carries the df-5 interval (R above), not the df-6 one
    from pipeline.config import MonitoringParams, Scale
    from pipeline.indicators import compute

    ids = [f"x{i}" for i in range(len(y))]
    students = pd.DataFrame({"year": 2022, "student_id": ids, "county_code": county,
                             "school_id": school, "grade": 4, "weight": 1.0})  # fmt: skip
    scores = pd.DataFrame({"year": 2022, "student_id": ids, "subject": "math", "scale_score": y})
    schools = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    mon = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380, 480, 580), (-100, 900)))
    ind = compute(students, scores, schools, None, mon, IndicatorsParams())[0]
    row = ind.loc[(ind["indicator"] == "school_difference_rate")
                  & (ind["county_code"] == "450100")].iloc[0]  # fmt: skip
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]],
                               [0.169543457954048, 0.953337074262957], rtol=1e-9)  # fmt: skip
    assert row["n_schools"] == 7
    assert row["method"].endswith("with q from t(df = schools - strata = 5)")
    # η² and the CV of school means: estimate ± q·se with the same df 5 (q from R above)
    for name in ("eta_squared", "school_mean_cv"):
        r = ind.loc[(ind["indicator"] == name) & (ind["county_code"] == "450100")].iloc[0]
        np.testing.assert_allclose(
            [r["ci_low"], r["ci_high"]],
            [
                r["estimate"] - 2.57065121936392 * r["se"],
                r["estimate"] + 2.57065121936392 * r["se"],
            ],
            rtol=1e-11,
        )


def test_icc_interval_contains_estimate_and_stays_in_range():
    rng = np.random.default_rng(11)
    for _ in range(200):
        k = int(rng.integers(3, 12))
        groups = [list(rng.normal(rng.normal(0, rng.uniform(0, 2)), 1, int(rng.integers(2, 20))))
                  for _ in range(k)]  # fmt: skip
        sizes, rep = school_balance(*one_county(groups), city_code="450100")
        var_c, _ = rep.variance()
        icc, n0 = rep.theta_c[0, 0], rep.theta_c[0, 4]
        lo, hi = icc_interval(rep.theta_c[:, 3], np.sqrt(var_c[:, 3]), rep.theta_c[:, 4],
                              sizes["df"].to_numpy()[:1], 1.96)  # fmt: skip
        assert -1 / (n0 - 1) <= lo[0] <= icc <= hi[0] <= 1, (lo, icc, hi)


def test_icc_interval_undefined_below_one_df():
    # df 0 (every county a single school: the jackknife has no replicate) -> no interval, not a
    # normal-quantile one; the same z and SE with df 1 give one (R: qt(pnorm(1.96), 1) = 12.707)
    args = (np.array([0.5 * np.log(4.0)] * 2), np.array([0.2] * 2), np.array([10.0] * 2))
    lo, hi = icc_interval(*args, np.array([0.0, 1.0]), 1.96)
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and np.isfinite(lo[1]) and np.isfinite(hi[1])


def test_one_student_per_school_has_no_within_school_variance():
    # N − k = 0: MSW undefined, so ICC(1) and η² (trivially 1) are NaN rather than numbers
    sizes, rep = school_balance(*one_county([[1.0], [2.0], [4.0]]), city_code="450100")
    assert np.isnan(rep.theta_c[0, 0]) and np.isnan(rep.theta_c[0, 1])


@pytest.mark.parametrize(
    ("groups", "suppressed"),
    [
        ([[1, 2, 3, 4], [4, 5, 6], [2, 3, 3]], False),  # 10 students, 3 schools: shown
        ([[1, 2, 3], [4, 5, 6], [2, 3, 3]], True),  # 9 students (< 10)
        ([[1, 2, 3, 4, 5], [4, 5, 6, 7, 8]], True),  # 2 schools (< 3)
    ],
)
def test_balance_suppression_boundaries(groups, suppressed):
    # NAEQ publication rule (params indicators.suppress_min_students 10 / _schools 3): a cell with
    # fewer than 10 students or 3 schools is suppressed; exactly 10 and 3 are shown
    sdr = _stage_icc(groups)
    assert sdr.loc["450107", "suppressed"] == suppressed


def test_icc_interval_undefined_when_f_is_zero():
    # equal school means: MSB = 0, F = 0, ½·ln F = −inf -> no interval (verdict 'unsure')
    sizes, rep = school_balance(*one_county([[1, 3], [2, 2], [0, 4]]), city_code="450100")
    var_c, _ = rep.variance()
    lo, hi = icc_interval(rep.theta_c[:, 3], np.sqrt(var_c[:, 3]), rep.theta_c[:, 4],
                          sizes["df"].to_numpy()[:1], 1.96)  # fmt: skip
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert icc_verdict(lo, hi).tolist() == ["unsure"]


def test_plausible_values_combine_fisher_z_by_rubin():
    """With pv1, pv2 the ICC interval is built from Rubin's combination of ½·ln F over the PVs
    (mean z; mean jackknife variance + (1 + 1/2)·between-PV variance), written out here from two
    single-PV fits of the R-checked four-school data."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    from pipeline.config import MonitoringParams, Scale
    from pipeline.indicators import compute

    county, school, y1 = one_county(R_GROUPS)
    y2 = y1 + np.array(
        [0.5, -0.3, 0.2, 0.0, 0.4, -0.6, 0.1, 0.3, -0.2, 0.0, 0.5, -0.4, 0.2, 0.1, 0.0]
    )
    ids = [f"x{i}" for i in range(len(y1))]
    students = pd.DataFrame({"year": 2022, "student_id": ids, "county_code": county,
                             "school_id": school, "grade": 4, "weight": 1.0})  # fmt: skip
    scores = pd.DataFrame({"year": 2022, "student_id": ids, "subject": "math",
                           "scale_score": np.nan, "pv1": y1, "pv2": y2})  # fmt: skip
    schools = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    mon = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380, 480, 580), (-100, 900)))
    ind = compute(students, scores, schools, None, mon, IndicatorsParams())[0]
    row = ind.loc[
        (ind["indicator"] == "school_difference_rate") & (ind["county_code"] == "450107")
    ].iloc[0]
    zs, vs, iccs, n0 = [], [], [], None
    for y in (y1, y2):
        groups = [list(y[school == s]) for s in pd.unique(school)]
        z = 0.5 * np.log(f_oneway(*groups).statistic)
        loo = [0.5 * np.log(f_oneway(*(groups[:j] + groups[j + 1 :])).statistic) for j in range(4)]
        zs.append(z)
        vs.append(3 / 4 * sum((v - z) ** 2 for v in loo))
        iccs.append(direct_anova(groups)[0])
        n_j = np.array([len(g) for g in groups])
        n0 = (n_j.sum() - (n_j**2).sum() / n_j.sum()) / 3
    z_bar = np.mean(zs)
    se = np.sqrt(np.mean(vs) + 1.5 * np.var(zs, ddof=1))
    q = student_t.ppf(norm.cdf(1.96), 3)
    want = [1 - n0 / (np.exp(2 * (z_bar + s * q * se)) + n0 - 1) for s in (-1, 1)]
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], want, rtol=1e-9)
    assert row["estimate"] == pytest.approx(np.mean(iccs), rel=1e-10)
    assert "Rubin" in row["method"]


def test_a_sampled_school_without_scores_changes_nothing():
    """A school of the design whose scores are all missing is outside the ICC's jackknife: the
    same estimates, SEs and df as without that school (review: its (n_h − 1)/n_h factor used to
    count it, raising SE(z) by ~2%)."""
    county, school, y = one_county(R_GROUPS)
    sz0, rep0 = school_balance(county, school, y, city_code="450100")
    county2 = np.r_[county, ["450107"] * 3].astype(object)
    school2 = np.r_[school, ["sX"] * 3].astype(object)
    sz1, rep1 = school_balance(county2, school2, np.r_[y, [np.nan] * 3], city_code="450100")
    np.testing.assert_allclose(rep1.theta_c, rep0.theta_c, rtol=1e-12)
    np.testing.assert_allclose(rep1.variance()[0], rep0.variance()[0], rtol=1e-12)
    assert sz1["df"].tolist() == sz0["df"].tolist() == [3, 3]
    # a county whose schools have no scores at all: NaN there, the other county unaffected
    county3 = np.r_[county, ["450110"] * 2].astype(object)
    school3 = np.r_[school, ["t1", "t2"]].astype(object)
    sz3, rep3 = school_balance(county3, school3, np.r_[y, [np.nan] * 2], city_code="450100")
    assert sz3["n_students"].tolist() == [15, 0, 15]
    np.testing.assert_allclose(rep3.theta_c[0], rep0.theta_c[0], rtol=1e-12)
    np.testing.assert_allclose(rep3.variance()[0][0], rep0.variance()[0][0], rtol=1e-12)
    np.testing.assert_allclose(rep3.variance()[1], rep0.variance()[1], rtol=1e-12)  # pooled


def test_rows_missing_some_plausible_values_are_left_out_of_every_pv(caplog):
    """Review repro: county 450110 has pv1, pv2 but no pv3. Rubin must combine analyses of the same
    students, so those rows are left out of every PV (warned): the pooled row then equals the one
    computed without them, instead of mixing PV3 without 450110 into the pooled ICC."""
    from pipeline.config import MonitoringParams, Scale
    from pipeline.indicators import compute

    rng = np.random.default_rng(5)
    county, school, y = [], [], []
    for c in ("450107", "450110"):
        for j in range(6):
            u = rng.normal(0, 30)
            for _ in range(20):
                county.append(c), school.append(f"{c}-{j}"), y.append(500 + u + rng.normal(0, 80))
    county, school, y = np.array(county, object), np.array(school, object), np.array(y)
    ids = [f"x{i}" for i in range(len(y))]
    students = pd.DataFrame({"year": 2022, "student_id": ids, "county_code": county,
                             "school_id": school, "grade": 4, "weight": 1.0})  # fmt: skip
    pv = {f"pv{m}": y + rng.normal(0, 10, len(y)) for m in (1, 2, 3)}
    pv["pv3"] = np.where(county == "450110", np.nan, pv["pv3"])
    scores = pd.DataFrame({"year": 2022, "student_id": ids, "subject": "math",
                           "scale_score": np.nan, **pv})  # fmt: skip
    schools = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    mon = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380, 480, 580), (100, 900)))
    with caplog.at_level("WARNING"):
        ind = compute(students, scores, schools, None, mon, IndicatorsParams())[0]
    assert "120 条成绩只有部分似真值" in caplog.text
    keep = county == "450107"
    ind0 = compute(students[keep], scores[keep], schools, None, mon, IndicatorsParams())[0]
    key = ["county_code", "indicator", "group_var", "group_value"]
    for name in ("school_difference_rate", "mean_score", "pct_medium_or_above"):
        a = ind[(ind["indicator"] == name) & (ind["county_code"] == "450100")].set_index(key)
        b = ind0[(ind0["indicator"] == name) & (ind0["county_code"] == "450100")].set_index(key)
        pd.testing.assert_frame_equal(a[["estimate", "se", "n_students", "n_schools"]],
                                      b[["estimate", "se", "n_students", "n_schools"]])  # fmt: skip
    assert (
        not (ind["county_code"] == "450110").any()
        or ind.loc[ind["county_code"] == "450110", "n_students"].eq(0).all()
    )
