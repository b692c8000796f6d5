"""Confidence intervals: Wald for means and gaps, logit-scale for percentages; the quantile is
Student t with the design df (indicators.ci_reference = t_design_df) or the normal ci_z."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.indicators.scores import add_ci
from pipeline.indicators.survey import ci_quantile, design_df, normal_p_value, t_p_value


def _frame(indicator, estimate, se):
    return pd.DataFrame({"indicator": indicator, "estimate": estimate, "se": se})


def test_percentages_get_the_logit_interval():
    got = add_ci(_frame(["pct_medium_or_above", "pct_myopia"], [90.0, 5.0], [3.0, 2.0]), 1.96)
    # R 4.x: 100*plogis(qlogis(0.9) + c(-1,1)*1.96*0.03/(0.9*0.1)) -> 82.4029685768 94.5347514732
    #        100*plogis(qlogis(0.05) + c(-1,1)*1.96*0.02/(0.05*0.95)) -> 2.25392007968 10.72469559775
    np.testing.assert_allclose(got["ci_low"], [82.4029685768, 2.25392007968], rtol=1e-10)
    np.testing.assert_allclose(got["ci_high"], [94.5347514732, 10.72469559775], rtol=1e-10)


def test_means_and_gaps_keep_the_wald_interval():
    got = add_ci(_frame(["mean_score", "gap_mean_score"], [512.3, -8.0], [4.0, 2.5]), 1.96)
    # hand: 512.3 ± 1.96·4 = [504.46, 520.14]; −8 ± 1.96·2.5 = [−12.9, −3.1]
    np.testing.assert_allclose(got["ci_low"], [504.46, -12.9])
    np.testing.assert_allclose(got["ci_high"], [520.14, -3.1])


@pytest.mark.parametrize("se", [0.0, 1e-14, 0.5])
@pytest.mark.parametrize("p", [0.0, 100.0])
def test_percentages_at_the_bounds_stay_inside_0_100(p, se):
    # exactly 0 % or 100 %: the interval is the point whatever the SE (R's jackknife leaves an SE
    # of 1e-14 on a share of 100 %, jkn_expected.csv 450125 pct_medium_or_above)
    got = add_ci(_frame(["pct_level_IV"], [p], [se]), 1.96, df=np.array([7.0]))
    assert got["ci_low"].iloc[0] == p and got["ci_high"].iloc[0] == p


def test_logit_interval_never_leaves_0_100_where_wald_would():
    got = add_ci(_frame(["pct_sleep_sufficient"], [98.0], [2.0]), 1.96)
    assert 0 < got["ci_low"].iloc[0] < 98.0 < got["ci_high"].iloc[0] < 100.0  # Wald: 101.9


def test_wald_is_available_for_percentages_and_unknown_methods_are_rejected():
    got = add_ci(_frame(["pct_myopia"], [5.0], [2.0]), 1.96, "wald")
    # hand: 5 ± 1.96·2 = [1.08, 8.92]
    np.testing.assert_allclose([got["ci_low"].iloc[0], got["ci_high"].iloc[0]], [1.08, 8.92])
    with pytest.raises(ValueError):
        add_ci(_frame(["pct_myopia"], [5.0], [2.0]), 1.96, "exact")


def test_missing_se_or_estimate_gives_missing_bounds_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or invalid-value warning would reach users
        got = add_ci(_frame(["pct_myopia", "pct_myopia", "mean_score"], [99.9999, np.nan, 500.0],
                            [np.nan, 1.0, np.nan]), 1.96)  # fmt: skip
    assert got[["ci_low", "ci_high"]].isna().all().all()


def test_t_quantile_at_the_level_of_ci_z_and_normal_fallback():
    # R: qt(pnorm(1.96), c(1, 7, 9, 1000)) -> 12.70727902556373 2.36468149159362
    #    2.26220867650261 1.96237520926503
    np.testing.assert_allclose(
        ci_quantile(1.96, np.array([1.0, 7.0, 9.0, 1000.0])),
        [12.70727902556373, 2.36468149159362, 2.26220867650261, 1.96237520926503],
        rtol=1e-12,
    )
    # missing df, df 0 (one school) or below 1: the normal quantile itself
    assert ci_quantile(1.96, np.array([np.nan, 0.0, 0.5])).tolist() == [1.96, 1.96, 1.96]
    assert float(ci_quantile(1.96, None)) == 1.96


def test_design_df_counties_and_pooled():
    # counties with 5, 4, 1 and 0 schools: df 4, 3, 0, 0; pooled = (5 − 1) + (4 − 1) + 0 = 7,
    # i.e. 10 schools − 3 counties with schools (a county without schools is no stratum)
    got = design_df(np.array([[5, 2], [4, 0], [1, 1], [0, 0]]))
    assert got[:, 0].tolist() == [4, 3, 0, 0, 7]
    assert got[:, 1].tolist() == [1, 0, 0, 0, 1]


def test_add_ci_with_design_df():
    f = _frame(["mean_score", "pct_medium_or_above", "gap_mean_score", "mean_score"],
               [512.3, 90.0, -8.0, 500.0], [4.0, 3.0, 2.5, 10.0]).assign(method="m")  # fmt: skip
    got = add_ci(f, 1.96, df=np.array([9.0, 9.0, 7.0, 0.0]))
    q9, q7 = 2.26220867650261, 2.36468149159362  # R qt(pnorm(1.96), 9 / 7), above
    # hand: 512.3 ± q9·4; −8 ± q7·2.5; df 0 falls back to 500 ± 1.96·10
    np.testing.assert_allclose(got["ci_low"], [512.3 - 4 * q9, 80.8942748714081, -8 - 2.5 * q7, 480.4],
                               rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(got["ci_high"], [512.3 + 4 * q9, 95.0324617300305, -8 + 2.5 * q7, 519.6],
                               rtol=1e-12)  # fmt: skip
    # R (logit row): 100*plogis(qlogis(0.9) + c(-1,1)*qt(pnorm(1.96), 9)*0.03/(0.9*0.1))
    assert got["method"].tolist() == [
        "m; CI estimate +/- q*SE with q from t(df = schools - strata = 9)",
        "m; CI on the logit scale (delta-method SE) with q from t(df = schools - strata = 9)",
        "m; CI estimate +/- q*SE with q from t(df = schools - strata = 7)",
        "m; CI estimate +/- q*SE with q = ci_z (normal; df = schools - strata < 1)",
    ]


def test_t_p_value_agrees_with_the_t_interval():
    # R: 2*pt(-2.1, 7) = 0.0738711962129226: |t| = 2.1 is "significant" by the normal
    # reference (p = 0.0357) but inside the t(7) interval (q 2.3647) — the two must agree
    np.testing.assert_allclose(t_p_value([2.1], [1.0], [7.0]), [0.0738711962129226], rtol=1e-10)
    np.testing.assert_allclose(t_p_value([2.1], [1.0], [np.nan]), normal_p_value([2.1], [1.0]))
    rng = np.random.default_rng(4)
    est, se, df = rng.normal(0, 3, 500), rng.uniform(0.5, 2, 500), rng.integers(0, 12, 500)
    p = t_p_value(est, se, df.astype(float))
    excludes_zero = np.abs(est) > ci_quantile(1.96, df.astype(float)) * se
    # 1.96 -> the two-sided level 2·(1 − Φ(1.96)) = 0.0499958
    assert ((p < 2 * (1 - 0.9750021048517795)) == excludes_zero).all()


def test_lonely_strata_are_found():
    from pipeline.indicators import lonely_strata

    students = pd.DataFrame(
        {
            "year": [2022] * 5,
            "grade": [4, 4, 4, 8, 8],
            "county_code": ["450107", "450110", "450110", "450107", "450107"],
            "school_id": ["A", "B", "C", "D", "D"],
        }
    )
    # hand: 450107 grade 4 has one school (A); grade 8 has one school (D, twice); 450110 has two
    assert lonely_strata(students) == [(2022, 4, "450107"), (2022, 8, "450107")]
