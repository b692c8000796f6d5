"""JKn estimates against R's survey package (expected values in tests/fixtures/r/jkn_expected.csv).

Expected numbers: ``tests/fixtures/r/make_jkn_fixture.R`` (R survey 4.1.1,
``as.svrepdesign(svydesign(ids=~school_id, strata=~county_code, weights=~weight), type="JKn",
mse=TRUE)``; svyby / svymean / svycontrast; Rubin via mitools::MIcombine). Confidence intervals
with Student t on the design df: ``tests/fixtures/r/make_ci_fixture.R`` → ``jkn_ci_expected.csv``
(R 4.2.2, survey 4.1.1: ``confint(..., level = 2*pnorm(1.96) - 1, df = degf(design))`` and
``svyciprop(method = "xlogit")`` with its default ``df = degf(design)``). The suite does not need
R: the CSVs are committed.
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


# --- confidence intervals: Student t with the design df (indicators.ci_reference) ---------------


@pytest.fixture(scope="module")
def r_ci() -> pd.DataFrame:
    e = pd.read_csv(FIX / "jkn_ci_expected.csv", dtype={"county_code": str}, keep_default_na=False)
    for c in ("estimate", "se", "df", "ci_low", "ci_high"):
        e[c] = pd.to_numeric(e[c], errors="coerce")
    return e


def test_t_design_df_intervals_match_r(ours, r_ci):
    """Mean, two percentages and the female − male gap, per county and pooled (450100), against
    R survey (make_ci_fixture.R): confint(svymean / svycontrast, df = degf(design)) and
    svyciprop(method = "xlogit") (default df = degf(design)), level 2·pnorm(1.96) − 1. Design df
    (R degf): 450107 5 schools → 4, 450110 4 → 3, 450125 2 → 1, pooled 11 − 3 counties = 8.
    E.g. the pooled mean: R [493.625944088023, 568.244194618332]; 450107's share at Ⅲ+: R
    [37.3967918079686, 69.6006226535529] %; 450125's gap: R [-496.101254117674, 456.004610561593].
    """
    exp = r_ci.loc[r_ci["r_method"] != "svyciprop logit"]
    got = exp.merge(
        ours, on=["county_code", "indicator", "group_var", "group_value"], how="left",
        suffixes=("_r", ""), validate="1:1",
    )  # fmt: skip
    assert len(got) == 16 and got["ci_low"].notna().all()
    assert dict(zip(got["county_code"], got["df"], strict=False)) == {
        "450107": 4, "450110": 3, "450125": 1, "450100": 8,
    }  # fmt: skip
    close(got["estimate"], got["estimate_r"])
    close(got["se"], got["se_r"], atol=1e-12)
    close(got["ci_low"], got["ci_low_r"])
    close(got["ci_high"], got["ci_high_r"])
    # the county rows' df is their schools − 1 (what the evidence stage tests with)
    county = got["county_code"] != "450100"
    assert (got.loc[county, "n_schools"] - 1 == got.loc[county, "df"]).all()
    # the method text names the reference and R's df
    for _, row in got.iterrows():
        assert row["method"].endswith(f"with q from t(df = schools - strata = {int(row['df'])})")
    pct = got["indicator"].str.startswith("pct_")
    assert (
        got.loc[pct, "method"]
        .str.contains("CI on the logit scale (delta-method SE)", regex=False)
        .all()
    )


def test_sd_rows_use_the_design_df_of_their_mean(ours, expected):
    """sd_score: estimate ± q·se with the df of the mean's domain. R estimate and SE from
    make_jkn_fixture.R (section 5); q = qt(pnorm(1.96), c(4, 3, 1, 8)) = 2.77652739163883,
    3.18255597264438, 12.70727902556373, 2.30605807219185 (R 4.2.2) for 450107, 450110, 450125
    and the pooled row (df as in the test above)."""
    q = {"450107": 2.77652739163883, "450110": 3.18255597264438, "450125": 12.70727902556373,
         "450100": 2.30605807219185}  # fmt: skip
    r = expected.loc[expected["indicator"] == "sd_score"].set_index("county_code")
    g = ours.loc[(ours["indicator"] == "sd_score") & (ours["group_var"] == "")]
    g = g.set_index("county_code").loc[list(q)]
    want_lo = [r.loc[c, "estimate"] - q[c] * r.loc[c, "se"] for c in q]
    want_hi = [r.loc[c, "estimate"] + q[c] * r.loc[c, "se"] for c in q]
    close(g["ci_low"], want_lo)
    close(g["ci_high"], want_hi)


def test_xlogit_not_svyglm_logit(ours, r_ci):
    """The percentage interval is svyciprop's "xlogit" (delta-method SE of logit(p), from the
    jackknife variance of the mean), not "logit" (svyglm refitted on every replicate). The fixture
    tells the two apart, so the 1e-9 match above identifies the method: R "logit" differs by up to
    3.06 percentage points (450110 Ⅱ upper bound: logit 54.628 vs xlogit 51.568) and has no upper
    bound for 450125, whose jackknife replicate reaches 100 % (R gives [0, NA])."""
    lg = r_ci.loc[r_ci["r_method"] == "svyciprop logit"].merge(
        ours, on=["county_code", "indicator", "group_var", "group_value"], suffixes=("_r", "")
    )
    ok = lg["df"] >= 3
    diff = np.abs(lg.loc[ok, ["ci_low", "ci_high"]].to_numpy()
                  - lg.loc[ok, ["ci_low_r", "ci_high_r"]].to_numpy())  # fmt: skip
    assert diff.max() == pytest.approx(54.6281220552383 - 51.5683821210089, rel=1e-8)
    assert lg.loc[~ok, "ci_high_r"].isna().all() and lg.loc[~ok, "ci_high"].notna().all()


def test_achievement_level_interval_follows_the_t_interval(ours, r_ci):
    """The county level's bounds are the levels of the mean's bounds. 450125 (2 schools, df 1):
    R's t interval of the mean [449.440101882662, 697.978277816639] spans cuts 480 and 580 →
    levels Ⅱ..Ⅳ; the normal one, 573.709 ± 1.96·9.779 = [554.54, 592.88] (hand), would give Ⅲ..Ⅳ."""
    lvl = ours.loc[ours["indicator"] == "achievement_level"].set_index("county_code")
    assert lvl.loc["450125", ["estimate", "ci_low", "ci_high"]].tolist() == [3.0, 2.0, 4.0]
    assert lvl.loc["450125", "method"].endswith(
        "; mean's CI estimate +/- q*SE with q from t(df = schools - strata = 1)"
    )
    normal = compute(
        *frames(pd.read_csv(FIX / "jkn_students.csv", dtype={"county_code": str}), False),
        empty_schools(), None, monitoring(), IndicatorsParams(ci_reference="normal"),
    )[0]  # fmt: skip
    n_lvl = normal.loc[normal["indicator"] == "achievement_level"].set_index("county_code")
    assert n_lvl.loc["450125", ["ci_low", "ci_high"]].tolist() == [3.0, 4.0]


def test_normal_reference_keeps_the_z_interval(data):
    """ci_reference = normal: estimate ± 1.96·SE and the logit interval with 1.96 (the behaviour
    before t was the default), on the R-checked estimates and SEs."""
    st, sc = frames(data, with_pv=False)
    ind, *_ = compute(
        st, sc, empty_schools(), None, monitoring(), IndicatorsParams(ci_reference="normal")
    )
    key = ["county_code", "indicator", "group_var", "group_value"]
    g = ind.set_index(key)
    m = g.loc[("450100", "mean_score", "", "")]
    # hand: 530.935069353178 ± 1.96·16.1787448959135 (R estimate and SE, jkn_expected.csv)
    close([m["ci_low"], m["ci_high"]], [530.935069353178 - 1.96 * 16.1787448959135,
                                        530.935069353178 + 1.96 * 16.1787448959135])  # fmt: skip
    assert m["method"].endswith("CI estimate +/- q*SE with q = ci_z (normal)")
    p = g.loc[("450107", "pct_good_or_above", "", "")]
    # R: 100*plogis(qlogis(0.539060221522558) + c(-1,1)*1.96*0.060119313689369/(p*(1-p)))
    x, s_ = 0.539060221522558, 0.060119313689369
    half = 1.96 * s_ / (x * (1 - x))
    lo = 100 / (1 + np.exp(-(np.log(x / (1 - x)) - half)))
    hi = 100 / (1 + np.exp(-(np.log(x / (1 - x)) + half)))
    close([p["ci_low"], p["ci_high"]], [lo, hi])
    assert p["method"].endswith("CI on the logit scale (delta-method SE) with q = ci_z (normal)")
