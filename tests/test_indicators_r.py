"""JKn estimates against R's survey package (expected values in tests/fixtures/r/jkn_expected.csv).

Expected numbers: ``tests/fixtures/r/make_jkn_fixture.R`` (R survey 4.1.1,
``as.svrepdesign(svydesign(ids=~school_id, strata=~county_code, weights=~weight), type="JKn",
mse=TRUE)``; svyby / svymean / svycontrast; Rubin via mitools::MIcombine). The suite does not
need R: the CSVs are committed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import MonitoringParams, Scale
from pipeline.indicators import IndicatorsParams, compute
from pipeline.indicators.scores import groupings, make_design
from pipeline.indicators.survey import ratio_replicates

FIX = Path(__file__).parent / "fixtures" / "r"
RTOL = 1e-9


def monitoring() -> MonitoringParams:
    return MonitoringParams(
        counties={}, county_aliases={}, city_code="450100", city_name="南宁市", rotation={},
        default_scale=Scale(cut_scores=(380.0, 480.0, 580.0), plausible_range=(100.0, 900.0)),
    )  # fmt: skip


def empty_schools() -> pd.DataFrame:
    return pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(FIX / "jkn_students.csv", dtype={"county_code": str, "school_id": str})


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    e = pd.read_csv(FIX / "jkn_expected.csv", dtype={"county_code": str}, keep_default_na=False)
    for c in ("estimate", "se", "se_nomse"):
        e[c] = pd.to_numeric(e[c], errors="coerce")
    return e


def frames(d: pd.DataFrame, with_pv: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    st = d.assign(year=2022, grade=4)[
        ["year", "student_id", "county_code", "school_id", "grade", "gender", "weight"]
    ]
    sc = d.assign(year=2022, subject="math", level=pd.NA).rename(columns={"score": "scale_score"})
    cols = ["year", "student_id", "subject", "scale_score", "level"]
    if with_pv:
        cols += [f"pv{m}" for m in range(1, 6)]
    return st, sc[cols]


@pytest.fixture(scope="module")
def ours(data) -> pd.DataFrame:
    st, sc = frames(data, with_pv=False)
    ind, *_ = compute(st, sc, empty_schools(), None, monitoring(), IndicatorsParams())
    return ind


def close(a, b, rtol=RTOL, atol=1e-10):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def test_every_r_estimate_and_se_matches(ours, expected):
    exp = expected.loc[expected["indicator"] != "mean_score_pv"]
    got = exp.merge(
        ours, on=["county_code", "indicator", "group_var", "group_value"], how="left",
        suffixes=("_r", ""), validate="1:1",
    )  # fmt: skip
    assert got["estimate"].notna().all(), got.loc[got["estimate"].isna()]
    # means, 4 levels, 2 cumulative shares, gender means and gaps, score SDs
    assert len(got) == 44
    close(got["estimate"], got["estimate_r"])
    # SEs to 1e-9 relative; R's 1e-14 noise on an SE that is exactly 0 needs the absolute tolerance
    close(got["se"], got["se_r"], atol=1e-12)


def test_gap_se_is_not_the_independent_groups_formula(ours, expected):
    g = ours.set_index(["county_code", "indicator", "group_var", "group_value"])
    gap = g.loc[("450100", "gap_mean_score", "gender", "female-male"), "se"]
    f = g.loc[("450100", "mean_score", "gender", "female"), "se"]
    m = g.loc[("450100", "mean_score", "gender", "male"), "se"]
    # R svycontrast: 32.9114289584745 (replicate-based); sqrt(f² + m²) = 33.29… would be wrong
    close(gap, 32.9114289584745)
    assert abs(gap - np.hypot(f, m)) > 0.1


def test_plausible_values_rubin(data, expected):
    st, sc = frames(data, with_pv=True)
    ind, *_ = compute(st, sc, empty_schools(), None, monitoring(), IndicatorsParams())
    mine = ind.loc[(ind["indicator"] == "mean_score") & (ind["group_var"] == "")]
    exp = expected.loc[expected["indicator"] == "mean_score_pv"]
    got = exp.merge(mine, on="county_code", suffixes=("_r", ""), validate="1:1")
    assert len(got) == 4
    close(got["estimate"], got["estimate_r"])
    close(got["se"], got["se_r"])
    assert got["method"].str.contains("Rubin's rules over 5 plausible values").all()


def test_mse_centring_matches_r_and_differs_from_replicate_mean(data, expected):
    """mse=TRUE (full-sample centring) vs mse=FALSE (replicate-mean centring), both against R."""
    d = data.loc[data["score"].notna()]
    design, psu, labels = make_design(
        d["county_code"].to_numpy(object), d["school_id"].to_numpy(object)
    )
    w = d["weight"].to_numpy(float)
    num = np.bincount(psu, weights=w * d["score"].to_numpy(float), minlength=design.S)[:, None]
    den = np.bincount(psu, weights=w, minlength=design.S)[:, None]
    rep = ratio_replicates(design, num, den)
    var_c, var_p = rep.variance()
    alt_c, alt_p = rep.variance_replicate_mean()
    e = expected.loc[(expected["indicator"] == "mean_score") & (expected["group_var"] == "")]
    e = e.set_index("county_code").loc[[*labels, "450100"]]
    close(np.sqrt(np.append(var_c[:, 0], var_p[0])), e["se"])
    close(np.sqrt(np.append(alt_c[:, 0], alt_p[0])), e["se_nomse"])
    # the two centrings really differ here (county 450125: 9.779 vs 9.695)
    assert abs(np.sqrt(var_c[2, 0]) - np.sqrt(alt_c[2, 0])) > 0.05


def test_missing_gender_rows_are_in_total_but_in_no_gender_domain(data, ours):
    g = groupings(data.assign(ses_q=-1))[1]
    assert (g.codes == -1).sum() == 2
    n = ours.set_index(["county_code", "indicator", "group_var", "group_value"])["n_students"]
    total = n[("450100", "mean_score", "", "")]
    by_gender = (
        n[("450100", "mean_score", "gender", "female")]
        + n[("450100", "mean_score", "gender", "male")]
    )
    assert total == 113 and by_gender == 111  # 115 students, 2 without a score, 2 without gender
