"""Confidence intervals: Wald for means and gaps, logit-scale for percentages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.indicators.scores import add_ci


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


@pytest.mark.parametrize("p", [0.0, 100.0])
def test_percentages_at_the_bounds_stay_inside_0_100(p):
    got = add_ci(_frame(["pct_level_IV"], [p], [0.0]), 1.96)
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
