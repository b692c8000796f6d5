"""Tests of the evidence stage (问题清单): rules at their thresholds, BH, ids, previous-round tracking.

Frames are built from the data contract (schemas.INDICATORS / COUNTY_REPORTS / RESOURCE_BALANCE /
SCHOOL_COMPLIANCE / PREVIOUS_PROBLEMS), not from other stages' outputs. The rule tests use Student t
with the design df = n_schools − 1 (the ``ind()`` rows have 20 schools: df 19); expected t tail
areas are from R 4.x ``pt()``: pt(−1.80, 19) = 0.04388, pt(−1.70, 19) = 0.05272,
pt(−3.10, 19) = 0.00295, pt(−1.70, 7) = 0.06646. Normal tail areas (the ``normal`` reference and
the change tests) from R ``pnorm()`` / any normal table: Φ(−1.70) = 0.04457, Φ(−1.60) = 0.05480,
2Φ(−2) = 0.04550. Expected thresholds are the regulation's numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.config import build_params
from pipeline.errors import EqmError
from pipeline.evidence import (
    EvidenceParams,
    bh_qvalues,
    build_problems,
    candidates,
    evidence_text,
)

_RAW = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
# the evidence section plus the standards that run() hands in from monitoring and indicators
# (declared once there)
EVIDENCE_RAW = {
    **_RAW["evidence"],
    "icc_threshold": _RAW["monitoring"]["icc_threshold"],
    "resource_thresholds": _RAW["indicators"]["resource_thresholds"],
    "school_min_ratio_unmet": _RAW["indicators"]["school_min_ratio_unmet"],
}
PARAMS = build_params(EvidenceParams, EVIDENCE_RAW, "evidence")
NAMES = {"450107": "西乡塘区", "450110": "武鸣区"}
CITY = "450100"


def ind(**kw) -> dict:
    d = dict(
        year=2022, county_code="450107", grade=8, subject="math", indicator="mean_score",
        group_var="", group_value="", estimate=500.0, se=5.0, n_students=600, n_schools=20,
        method="JKn jackknife", source="computed", suppressed=False,
    )  # fmt: skip
    d.update(kw)
    d.setdefault("ci_low", d["estimate"] - 1.96 * d["se"])
    d.setdefault("ci_high", d["estimate"] + 1.96 * d["se"])
    return d


def cr(**kw) -> dict:
    d = dict(
        year=2022, county_code="450107", grade=8, subject="math", indicator="mean_score",
        group_var="", group_value="", scope="nation", value=500.0, se=0.0, n=np.nan,
        source_page="12",
    )  # fmt: skip
    d.update(kw)
    return d


def frame(rows, table) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=table.names) if rows else pd.DataFrame(columns=table.names)


def rb(**kw) -> dict:
    """A resource_balance row; ``passes`` defaults to the indicators stage's verdict cv <= threshold."""
    d = dict(year=2022, county_code="450107", stage="primary", indicator="L1", county_value=4.0,
             cv=0.3, threshold=0.5, n_schools=12)  # fmt: skip
    d.update(kw)
    d.setdefault("passes", bool(d["cv"] <= d["threshold"]))
    return d


def school(**kw) -> dict:
    d = dict(year=2022, county_code="450107", school_id="S01", school_name="第一小学",
             stage="primary", **{f"L{i}": 1.0 for i in range(1, 8)}, n_met=7,
             min_ratio_unmet=np.nan)  # fmt: skip
    d.update(kw)
    # default verdict as the indicators stage computes it: >= 6 of 7 met, every unmet one >= 85%
    r = d["min_ratio_unmet"]
    d.setdefault("passes", bool(d["n_met"] >= 6 and (pd.isna(r) or r >= 0.85)))
    return d


def problems(ind_rows=(), cr_rows=(), rb_rows=(), sc_rows=(), prev_rows=(), params=PARAMS):
    return build_problems(
        frame(list(ind_rows), schemas.INDICATORS),
        frame(list(rb_rows), schemas.RESOURCE_BALANCE),
        frame(list(sc_rows), schemas.SCHOOL_COMPLIANCE),
        frame(list(cr_rows), schemas.COUNTY_REPORTS),
        pd.DataFrame(list(prev_rows)),
        params,
        NAMES,
        CITY,
    )


def fired(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """New problems of ``rule``; an achievement measure (LEVEL, MEAN, MEDIUM) is a failing measure
    of a merged ACH problem."""
    new = df[df["previous_status"] == "new"]
    if rule in ("LEVEL", "MEAN", "MEDIUM"):
        has = new["evidence"].map(
            lambda e: any(m["rule_id"] == rule and m["fires"] for m in json.loads(e)["measures"])
        )
        return new[(new["rule_id"] == "ACH") & has.astype(bool)]
    return new[new["rule_id"] == rule]


# ------------------------------------------------------------------------------------------------
# Benjamini–Hochberg
# ------------------------------------------------------------------------------------------------


def test_bh_hand_worked_example():
    # Hand calculation, m = 5: sorted p 0.005, 0.01, 0.03, 0.04, 0.20 -> m·p/i = 0.025, 0.025,
    # 0.05, 0.05, 0.20 -> running minimum from the top: 0.025, 0.025, 0.05, 0.05, 0.20.
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.20])
    np.testing.assert_allclose(bh_qvalues(p), [0.025, 0.05, 0.05, 0.025, 0.20])


def test_bh_ignores_nan_and_caps_at_one():
    # m = 2 finite values: 0.6·2/1 = 1.2 -> running min with 0.9·2/2 = 0.9 gives 0.9 for both.
    q = bh_qvalues(np.array([np.nan, 0.9, 0.6]))
    assert np.isnan(q[0])
    np.testing.assert_allclose(q[1:], [0.9, 0.9])
    np.testing.assert_allclose(bh_qvalues(np.array([0.7])), [0.7])
    with pytest.raises(ValueError):
        bh_qvalues(np.array([1.5]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40))
def test_bh_matches_statsmodels(ps):
    from statsmodels.stats.multitest import multipletests

    p = np.array(ps)
    np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1], atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Each rule fires just past its threshold and not just before
# ------------------------------------------------------------------------------------------------


def test_icc_threshold_inclusive_and_severity():
    out = problems([
        ind(indicator="school_difference_rate", estimate=0.15, se=0.05),
        ind(indicator="school_difference_rate", estimate=0.1499, se=0.05, subject="science"),
        ind(indicator="school_difference_rate", estimate=0.30, se=0.05, subject="chinese"),
        # the severity boundary: a CI whose lower end is exactly 0.15 is "wholly at or above"
        ind(indicator="school_difference_rate", estimate=0.25, se=0.05, subject="arts",
            ci_low=0.15, ci_high=0.35),
        ind(indicator="school_difference_rate", estimate=0.25, se=0.05, subject="english",
            ci_low=0.1499, ci_high=0.35),
    ])  # fmt: skip
    f = fired(out, "ICC").set_index("subject")
    assert (f.loc["arts", "severity"], f.loc["english", "severity"]) == ("高", "中")
    assert set(f.index) == {"math", "chinese", "arts", "english"}  # 0.15 is not "below 0.15"
    assert f.loc["math", "severity"] == "中"  # CI 0.052..0.248 straddles 0.15
    assert f.loc["chinese", "severity"] == "高"  # CI 0.202..0.398 wholly above 0.15
    assert f.loc["math", "problem_id"] == "ICC-450107-G8-math"
    assert f.loc["math", "title"].startswith("西乡塘区八年级数学校际差异率为0.150")


def test_icc_significance_option():
    raw = dict(EVIDENCE_RAW)
    strict = build_params(EvidenceParams, {**raw, "icc_requires_significance": True}, "evidence")
    rows = [
        ind(indicator="school_difference_rate", estimate=0.15 + 1.80 * 0.05, se=0.05),
        ind(indicator="school_difference_rate", estimate=0.15 + 1.70 * 0.05, se=0.05, grade=4),
    ]  # one-sided t19 p 0.0439 (fires alone) and 0.0527; BH with m = 2: q = 0.0527 for both -> none
    assert len(fired(problems(rows, params=strict), "ICC")) == 0
    assert len(fired(problems(rows[:1], params=strict), "ICC")) == 1
    assert len(fired(problems(rows), "ICC")) == 2  # default: the value decides


def test_t_reference_uses_design_df_and_falls_back_to_normal():
    # t = −1.70 against the nation: 8 schools -> df 7, p = pt(−1.70, 7) = 0.06646 (R); no school
    # count -> normal, p = Φ(−1.70) = 0.04457 (R pnorm); p_reference normal -> 0.04457 everywhere.
    raw = dict(EVIDENCE_RAW)
    normal = build_params(EvidenceParams, {**raw, "p_reference": "normal"}, "evidence")
    rows = [ind(estimate=483.0, se=10.0, n_schools=8),
            ind(estimate=483.0, se=10.0, n_schools=np.nan, subject="science")]  # fmt: skip
    bench = [cr(), cr(subject="science")]
    c = candidates(frame(rows, schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
                   frame([], schemas.SCHOOL_COMPLIANCE), frame(bench, schemas.COUNTY_REPORTS),
                   PARAMS, CITY).set_index("subject")  # fmt: skip
    assert c.loc["math", "p_value"] == pytest.approx(0.06646, abs=1e-5)
    assert c.loc["science", "p_value"] == pytest.approx(0.04457, abs=1e-5)
    c = candidates(frame(rows, schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
                   frame([], schemas.SCHOOL_COMPLIANCE), frame(bench, schemas.COUNTY_REPORTS),
                   normal, CITY).set_index("subject")  # fmt: skip
    assert c["p_value"].to_numpy() == pytest.approx([0.04457, 0.04457], abs=1e-5)
    assert len(fired(problems(rows[:1], bench[:1]), "MEAN")) == 0  # t7: not significant
    assert len(fired(problems(rows[:1], bench[:1], params=normal), "MEAN")) == 1  # normal: fires
    with pytest.raises(EqmError):
        build_params(EvidenceParams, {**raw, "p_reference": "z"}, "evidence")


def test_official_icc_wins_and_county_report_fills_in():
    out = problems(
        [
            ind(indicator="school_difference_rate", estimate=0.10, se=0.03),
            ind(indicator="school_difference_rate", estimate=0.20, se=np.nan, source="official",
                method="official"),
        ],
        [cr(scope="county", indicator="school_difference_rate", subject="science", value=0.18,
            se=np.nan, source_page="7")],
    )  # fmt: skip
    f = fired(out, "ICC").set_index("subject")
    assert f.loc["math", "value"] == 0.20  # official beats the computed 0.10
    ev = json.loads(f.loc["science", "evidence"])
    assert ev["rows"][0]["source"] == "official" and ev["rows"][0]["source_page"] == "7"
    assert "官方" in ev["note"] and "官方" in evidence_text(f.loc["science", "evidence"])


def test_level_below_three():
    out = problems([
        ind(indicator="achievement_level", estimate=2.0, se=np.nan),
        ind(indicator="achievement_level", estimate=3.0, se=np.nan, grade=4),
    ])  # fmt: skip
    f = fired(out, "LEVEL")
    assert list(f["grade"]) == [8]
    assert "水平Ⅱ" in f["title"].iloc[0]


@pytest.mark.parametrize(
    ("z", "fires"), [(-1.80, True), (-1.70, False)]
)  # one-sided t, df 19 (R): pt(−1.80, 19) = 0.04388 < 0.05, pt(−1.70, 19) = 0.05272 > 0.05
def test_mean_below_nation(z, fires):
    # se_diff = sqrt(8² + 6²) = 10 (independent benchmark), so estimate = 500 + 10 z.
    out = problems([ind(estimate=500 + 10 * z, se=8.0)], [cr(value=500.0, se=6.0)])
    f = fired(out, "MEAN")
    assert len(f) == int(fires)
    if fires:
        r = f.iloc[0]
        assert r["se"] == pytest.approx(10.0)
        assert r["p_value"] == pytest.approx(0.04388, abs=1e-5)  # R: pt(-1.80, 19)
        assert r["q_value"] == pytest.approx(r["p_value"])  # one test in the round
        assert r["gap"] == pytest.approx(-18.0)


def test_mean_above_benchmark_never_fires_and_province_is_fallback():
    out = problems(
        [ind(estimate=530.0, se=2.0), ind(estimate=480.0, se=2.0, subject="science")],
        [cr(value=500.0), cr(subject="science", scope="province", value=490.0, se=1.0)],
    )
    f = fired(out, "MEAN")
    assert list(f["subject"]) == ["science"]
    ev = json.loads(f["evidence"].iloc[0])
    assert ev["benchmark_rows"][0]["scope"] == "province" and "全省" in f["title"].iloc[0]


@pytest.mark.parametrize(("z", "fires"), [(-1.80, True), (-1.70, False)])  # t19, see above
def test_medium_below_nation(z, fires):
    out = problems(
        [ind(indicator="pct_medium_or_above", estimate=80 + 2 * z, se=2.0)],
        [cr(indicator="pct_medium_or_above", value=80.0, se=0.0)],
    )
    assert len(fired(out, "MEDIUM")) == int(fires)


@pytest.mark.parametrize(("z", "fires"), [(1.80, True), (1.70, False)])  # t19, see above
def test_gap_larger_than_nation(z, fires):
    # urban-rural is written advantaged first: H1 g > b, one-sided; g − b = z · sqrt(4² + 3²) = 5 z.
    g = 10 + 5 * z
    out = problems(
        [ind(indicator="gap_mean_score", group_var="urban_rural", group_value="urban-rural",
             estimate=g, se=4.0)],
        [cr(indicator="gap_mean_score", group_var="urban_rural", group_value="urban-rural",
            value=10.0, se=3.0)],
    )  # fmt: skip
    f = fired(out, "GAP")
    assert len(f) == int(fires)
    if fires:
        assert f["problem_id"].iloc[0] == "GAP-450107-G8-math-urban_rural-urban-rural"
    # the same distance in favour of the rural (disadvantaged) side is not a problem
    out = problems(
        [ind(indicator="gap_mean_score", group_var="urban_rural", group_value="urban-rural",
             estimate=10 - 5 * z, se=4.0)],
        [cr(indicator="gap_mean_score", group_var="urban_rural", group_value="urban-rural",
            value=10.0, se=3.0)],
    )  # fmt: skip
    assert len(fired(out, "GAP")) == 0


@pytest.mark.parametrize(
    ("g", "fires", "kind"),
    [
        # national 女−男 +20 (se 0), county se 10, t19 two-sided (R 2*pt(-|t|, 19)):
        (
            -18.0,
            True,
            "reversed",
        ),  # t = −3.8, p = 0.0012: girls behind where the nation has them ahead
        (45.0, True, "excess"),  # t = 2.5, p = 0.0217: a larger gap on the national side
        (5.0, False, ""),  # t = −1.5, between 0 and +20: smaller than the nation's, not a problem
        # −12 differs from +20 (t = −3.2) but is not itself below 0 (one-sided t19 p = 0.12):
        # not a reversal, treated like a smaller gap (review finding: no jump at 0)
        (-12.0, False, ""),
        (-1.0, False, ""),
        (0.0, False, ""),  # t = −2.0, p = 0.0600 (R 2*pt(-2, 19)): not significant
    ],
)
def test_gender_gap_is_tested_with_its_sign(g, fires, kind):
    out = problems(
        [ind(indicator="gap_mean_score", group_var="gender", group_value="female-male",
             estimate=g, se=10.0)],
        [cr(indicator="gap_mean_score", group_var="gender", group_value="female-male",
            value=20.0, se=0.0)],
    )  # fmt: skip
    f = fired(out, "GAP")
    assert len(f) == int(fires)
    if kind == "reversed":
        assert "方向相反" in f["title"].iloc[0]
    if g == -18.0:
        assert f["p_value"].iloc[0] == pytest.approx(0.001209773, abs=1e-8)  # R: 2*pt(-3.8, 19)
    if kind == "excess":
        assert "显著大于全国（20.0分）" in f["title"].iloc[0]
        assert f["p_value"].iloc[0] == pytest.approx(0.02174041, abs=1e-8)  # R: 2*pt(-2.5, 19)


@pytest.mark.parametrize(
    ("estimate", "se", "fires"),
    [
        (38.0, 10.0, True),  # (|g| − 0.2·100) / se = 1.80: one-sided t19 p = 0.04388 (R pt)
        (-38.0, 10.0, True),  # the sign of the gap does not matter
        (37.0, 10.0, False),  # t = 1.70: p = 0.05272 (R pt(-1.70, 19))
        (19.0, 5.0, False),  # clearly non-zero (z = 3.8 against 0) but below 0.2 SD
    ],
)
def test_gap_without_benchmark_is_a_minimum_effect_test(estimate, se, fires):
    out = problems(
        [ind(indicator="gap_mean_score", group_var="gender", group_value="female-male",
             estimate=estimate, se=se)]
    )  # fmt: skip
    f = fired(out, "GAP")
    assert len(f) == int(fires)
    if fires:
        assert f["benchmark"].iloc[0] == pytest.approx(20.0)
        assert "0.2个标准差" in f["title"].iloc[0]


def test_gap_effect_size_uses_county_sd_when_given():
    # county SD 80: delta = 16, (25 − 16) / 5 = 1.80 fires (t19 p 0.0439); with the scale SD 100,
    # delta = 20 and t = 1.0 does not.
    rows = [
        ind(indicator="gap_mean_score", group_var="gender", group_value="female-male",
            estimate=25.0, se=5.0),
        ind(indicator="sd_score", estimate=80.0, se=1.0),
    ]  # fmt: skip
    assert len(fired(problems(rows), "GAP")) == 1
    assert len(fired(problems(rows[:1]), "GAP")) == 0


def test_gap_only_configured_groupings():
    rows = [ind(indicator="gap_mean_score", group_var="migrant", group_value="non_migrant-migrant",
                estimate=80.0, se=5.0)]  # fmt: skip
    assert "migrant" not in PARAMS.gap_vars
    assert fired(problems(rows), "GAP").empty


@pytest.mark.parametrize(
    ("rule", "indicator", "limit", "sign"),
    [
        ("HOMEWORK", "pct_homework_over_limit", 10.0, 1),
        ("SLEEP", "pct_sleep_sufficient", 80.0, -1),
        ("FITNESS", "pct_fitness_pass", 90.0, -1),
    ],
)
@pytest.mark.parametrize(("z", "fires"), [(1.80, True), (1.70, False)])  # t19, see above
def test_burden_against_configured_limit(rule, indicator, limit, sign, z, fires):
    out = problems([ind(indicator=indicator, subject="", grade=4, estimate=limit + sign * 2 * z,
                        se=2.0)])  # fmt: skip
    f = fired(out, rule)
    assert len(f) == int(fires)
    if fires:
        assert f["problem_id"].iloc[0] == f"{rule}-450107-G4"
        assert f["benchmark"].iloc[0] == limit


def test_burden_prefers_national_figure():
    # national 20% with SE 0: 25.0 is z = 2.5 above it (p = 0.0062, BH q = 0.0124 with m = 2);
    # 22.0 (z = 1.0) is far above the 10% ceiling but not significantly above the nation.
    out = problems(
        [ind(indicator="pct_homework_over_limit", subject="", estimate=25.0, se=2.0),
         ind(indicator="pct_homework_over_limit", subject="", grade=4, estimate=22.0, se=2.0)],
        [cr(indicator="pct_homework_over_limit", subject="", value=20.0, se=0.0),
         cr(indicator="pct_homework_over_limit", subject="", grade=4, value=20.0, se=0.0)],
    )  # fmt: skip
    f = fired(out, "HOMEWORK")
    assert list(f["grade"]) == [8] and f["benchmark"].iloc[0] == 20.0


@pytest.mark.parametrize(
    ("stage", "cv", "fires"),
    [("primary", 0.5001, True), ("primary", 0.50, False), ("junior", 0.4501, True),
     ("junior", 0.45, False)],
)  # fmt: skip
def test_resource_cv(stage, cv, fires):
    # rows as the indicators stage writes them: passes = cv <= threshold (教督〔2017〕6号)
    thr = {"primary": 0.50, "junior": 0.45}[stage]
    out = problems(
        rb_rows=[rb(stage=stage, indicator="L5", cv=cv, threshold=thr, passes=cv <= thr)]
    )
    f = fired(out, "RES")
    assert len(f) == int(fires)
    if fires:
        assert f["problem_id"].iloc[0] == f"RES-450107-{stage}-L5"
        assert f["responsible_unit"].iloc[0].startswith("牵头：计财科")


@pytest.mark.parametrize(
    ("n_met", "ratio", "fires"),
    [(7, np.nan, False), (6, 0.85, False), (6, 0.8499, True), (5, 0.95, True)],
)
def test_school_rule(n_met, ratio, fires):
    # passes as the indicators stage computes it: >= 6 of 7 met and every unmet one >= 85%
    passes = n_met >= 6 and (np.isnan(ratio) or ratio >= 0.85)
    out = problems(sc_rows=[school(n_met=n_met, min_ratio_unmet=ratio, passes=passes)])
    f = fired(out, "SCHOOL")
    assert len(f) == int(fires)
    if fires:
        assert f["problem_id"].iloc[0] == "SCH-450107-S01"
        assert "第一小学" in f["title"].iloc[0]


def test_suppressed_and_city_rows_never_fire():
    out = problems(
        [ind(indicator="school_difference_rate", estimate=0.4, se=0.01, suppressed=True),
         ind(indicator="school_difference_rate", estimate=0.4, se=0.01, county_code=CITY)],
        rb_rows=[rb(county_code=CITY, cv=0.9)],
    )  # fmt: skip
    assert out.empty


def test_bh_family_is_the_round():
    # Two tests in 2022 with t19 p 0.04388 and 0.00295 (R pt): BH q of the first = 0.04388 (rank 2
    # of 2); add a third null test (p = 0.5) and the first becomes 0.04388·3/2 = 0.0658 > 0.05 -> no
    # longer fires. A test in another year does not count.
    base = [ind(estimate=482.0, se=10.0), ind(estimate=469.0, se=10.0, subject="science")]
    bench = [cr(), cr(subject="science")]
    other_year = [ind(year=2020, estimate=500.0, se=10.0, subject="chinese"),
                  cr(year=2020, subject="chinese")]  # fmt: skip
    out = problems(base + other_year[:1], bench + other_year[1:])
    assert set(fired(out, "MEAN")["subject"]) == {"math", "science"}
    out = problems(base + [ind(estimate=500.0, se=10.0, subject="chinese")],
                   bench + [cr(subject="chinese")])  # fmt: skip
    c = fired(out, "MEAN")
    assert set(c["subject"]) == {"science"}
    # a rule that fires on its value (ICC) does not dilute the family: two ICC rows with p ≈ 0.8
    # leave the MEAN q at 0.04388·2/2 (review finding H1)
    icc = [ind(indicator="school_difference_rate", estimate=0.10, se=0.05, subject=s)
           for s in ("arts", "english")]  # fmt: skip
    out = problems(base + icc, bench)
    assert set(fired(out, "MEAN")["subject"]) == {"math", "science"}


# ------------------------------------------------------------------------------------------------
# Ids, output shape, stability
# ------------------------------------------------------------------------------------------------


def _mixed_inputs(year=2022):
    return dict(
        ind_rows=[
            ind(year=year, indicator="school_difference_rate", estimate=0.2, se=0.02),
            ind(year=year, estimate=470.0, se=5.0),
            ind(year=year, indicator="pct_sleep_sufficient", subject="", estimate=50.0, se=2.0),
            ind(year=year, county_code="450110", indicator="gap_mean_score", group_var="gender",
                group_value="female-male", estimate=30.0, se=5.0),
        ],
        cr_rows=[cr(year=year)],
        rb_rows=[rb(year=year, cv=0.7), rb(year=year, county_code="450110", stage="junior",
                                           indicator="L6", cv=0.45)],
        sc_rows=[school(year=year, school_id="S09", school_name="=1+1", n_met=4,
                        min_ratio_unmet=0.5),
                 school(year=year, school_id="S02", school_name="+乙校", n_met=6,
                        min_ratio_unmet=0.7)],
    )  # fmt: skip


def test_columns_order_types_and_sorting():
    out = problems(**_mixed_inputs())
    assert list(out.columns) == schemas.PROBLEMS.names
    assert out["year"].dtype == "int64" and str(out["grade"].dtype) == "Int64"
    assert set(out["severity"]) <= {"高", "中", "低"}
    assert out["deadline"].eq(PARAMS.deadline_placeholder).all()
    assert (out["previous_status"] == "new").all()
    keys = list(zip(out["year"], out["county_code"], strict=True))
    assert keys == sorted(keys)
    assert out["problem_id"].is_unique
    # every problem's evidence names rows whose numbers are the problem's numbers
    for r in out.itertuples():
        ev = json.loads(r.evidence)
        assert ev["rows"], r.problem_id
        row = ev["rows"][0]
        assert row.get("estimate", row.get("cv", row.get("n_met"))) == pytest.approx(r.value)


def test_ids_stable_across_reruns_and_rounds():
    a = problems(**_mixed_inputs(2020))
    b = problems(**_mixed_inputs(2022))
    c = problems(**_mixed_inputs(2022))
    pd.testing.assert_frame_equal(b, c)
    assert list(a["problem_id"]) == list(b["problem_id"])
    assert all("2020" not in pid and "2022" not in pid for pid in b["problem_id"])


def test_candidates_cover_every_rule_row():
    c = candidates(
        frame(_mixed_inputs()["ind_rows"], schemas.INDICATORS),
        frame(_mixed_inputs()["rb_rows"], schemas.RESOURCE_BALANCE),
        frame(_mixed_inputs()["sc_rows"], schemas.SCHOOL_COMPLIANCE),
        frame(_mixed_inputs()["cr_rows"], schemas.COUNTY_REPORTS),
        PARAMS,
        CITY,
    )
    # 4 indicator rows + 2 resource rows + 2 schools; all fire except junior L6 (0.45 ≤ 0.45)
    assert len(c) == 8 and c["fires"].sum() == 7
    assert not c.loc[c["indicator"] == "L6", "fires"].any()


# ------------------------------------------------------------------------------------------------
# Previous round
# ------------------------------------------------------------------------------------------------


def prev(**kw) -> dict:
    d = dict(problem_id="X", year=2020, county_code="450107", rule_id="MEAN", grade=8,
             subject="math", indicator="mean_score", group_var="", group_value="", value=480.0,
             se=5.0, status="整改中", title="上一轮问题")  # fmt: skip
    d.update(kw)
    return d


def test_previous_statuses_on_crafted_pairs():
    """A hand-entered 2020 list re-checked in 2022: each item is named by eqm's identity, keeps its
    own number as previous_problem_id, and gets exactly one status."""
    out = problems(
        [
            ind(estimate=470.0, se=5.0),  # was 490 -> z = −20/7.07 = −2.83: worse
            ind(estimate=470.0, se=5.0, subject="science"),  # was 450: improved but still below
            ind(estimate=470.0, se=5.0, subject="chinese"),  # was 472: unchanged
            ind(estimate=499.0, se=5.0, grade=4),  # was 470: meets the rule now -> resolved
        ],
        [cr(), cr(subject="science"), cr(subject="chinese"), cr(grade=4)],
        prev_rows=[
            prev(problem_id="P1", value=490.0),
            prev(problem_id="P2", subject="science", value=450.0),
            prev(problem_id="P3", subject="chinese", value=472.0),
            prev(problem_id="P4", grade=4, value=470.0),
            prev(problem_id="P5", subject="english", value=470.0, status="整改中"),
            prev(problem_id="P6", rule_id="旧规则", subject="labor", value=470.0),
            prev(problem_id="P7", rule_id="X", indicator="teacher_ratio", value=1.0,
                 responsible_unit="人事科", domain="师资"),
        ],
    )  # fmt: skip
    s = out.set_index("previous_problem_id")
    assert s.loc["P1", "problem_id"] == "ACH-450107-G8-math"  # the identity, not the list's number
    assert s.loc["P1", "previous_status"] == "worse"
    assert s.loc["P2", "previous_status"] == "improved"
    assert s.loc["P3", "previous_status"] == "unchanged"
    assert s.loc["P4", "previous_status"] == "resolved"
    assert s.loc["P4", "status"] == schemas.STATUS_CLOSABLE and s.loc["P4", "severity"] == ""
    assert s.loc["P1", "status"] == schemas.STATUS_OPEN
    assert s.loc["P5", "previous_status"] == "not re-measured"
    assert s.loc["P5", "status"] == "整改中" and np.isnan(s.loc["P5", "value"])
    assert s.loc["P5", "previous_value"] == 470.0 and s.loc["P5", "previous_year"] == 2020
    assert s.loc["P5", "year"] == 2022
    assert s.loc["P5", "lead_unit"] == "教研室"  # units of the achievement rule
    assert s.loc["P6", "lead_unit"] == "教研室"  # unknown rule, known indicator
    assert (s.loc["P7", "lead_unit"], s.loc["P7", "domain"]) == ("人事科", "师资")
    assert s.loc["P7", "problem_id"] == "P7"  # nothing to match: kept under its own number ...
    assert json.loads(s.loc["P7", "evidence"])["unmatched"]  # ... and reported as unmatched
    assert len(out) == 7  # every previous problem once, nothing listed twice
    ev = json.loads(s.loc["P1", "evidence"])["previous"]
    assert ev["change_z"] == pytest.approx(20 / np.sqrt(50))  # z > 0: change in the bad direction


def _round_pair():
    """eqm's own rounds: 2020 and 2022 from the same project, no hand-entered list."""
    y20 = [
        ind(year=2020, estimate=470.0),  # math G8: problem in 2020
        ind(year=2020, estimate=470.0, grade=4),  # math G4: problem, resolved in 2022
        ind(year=2020, estimate=470.0, subject="science"),  # not measured in 2022 (rotation)
        ind(year=2020, estimate=470.0, subject="chinese"),  # problem both years, unchanged
        ind(year=2020, estimate=500.0, subject="arts"),  # fine in 2020, problem in 2022: new
    ]
    y22 = [
        ind(year=2022, estimate=450.0),  # 470 -> 450: z = −20/7.07, worse
        ind(year=2022, estimate=499.0, grade=4),
        ind(year=2022, estimate=471.0, subject="chinese"),
        ind(year=2022, estimate=470.0, subject="arts"),
    ]
    subjects = [("math", 8), ("math", 4), ("science", 8), ("chinese", 8), ("arts", 8)]
    bench = [cr(year=y, subject=s, grade=g) for y in (2020, 2022) for s, g in subjects]
    return y20 + y22, bench


def test_rounds_are_linked_by_identity():
    out = problems(*_round_pair())
    y22 = out[out["year"] == 2022].set_index("problem_id")
    assert not (y22["previous_status"] == "new").drop("ACH-450107-G8-arts").any()
    assert y22.loc["ACH-450107-G8-arts", "previous_status"] == "new"
    assert y22.loc["ACH-450107-G8-math", "previous_status"] == "worse"
    assert y22.loc["ACH-450107-G8-chinese", "previous_status"] == "unchanged"
    assert y22.loc["ACH-450107-G4-math", "previous_status"] == "resolved"
    assert y22.loc["ACH-450107-G8-science", "previous_status"] == "not re-measured"
    # every 2020 problem has a 2022 row
    assert set(out.loc[out["year"] == 2020, "problem_id"]) <= set(y22.index)
    # counts: 4 problems + 1 close-out
    assert (y22["status"] != schemas.STATUS_CLOSABLE).sum() == 4


def test_not_remeasured_problem_is_rechecked_when_its_subject_returns():
    rows, bench = _round_pair()
    rows.append(ind(year=2023, estimate=490.0, subject="science"))  # science returns
    bench.append(cr(year=2023, subject="science"))
    out = problems(rows, bench)
    y23 = out[out["year"] == 2023].set_index("problem_id")
    r = y23.loc["ACH-450107-G8-science"]
    # the previous value is the 2020 one carried through 2022; 470 -> 490 = improved; 490 vs 500
    # (t19 = −2, one-sided p = 0.030, the only rule test of 2023) still fires
    assert (r["previous_year"], r["previous_value"]) == (2020, 470.0)
    assert r["previous_status"] == "improved"


def test_change_tests_are_bh_adjusted_within_the_round():
    # three previous problems; changes of z = −2.2 (p 0.0278), −2.4 (p 0.0164), −0.2 (p 0.8415)
    # (R 2*pnorm(-c(2.2, 2.4, 0.2))). BH: q = 0.0417, 0.0417, 0.8415 -> improved, improved,
    # unchanged. Raising the third to z = −0.0 keeps it; a fourth null test (p 1) makes
    # m = 4: q(0.0278) = min(4·0.0278/2, 4·0.0164/1...) -> both 0.0556 > 0.05: unchanged.
    se = 5.0
    sd = se * np.sqrt(2)
    subjects = ["math", "science", "chinese", "arts"]
    now = [ind(estimate=470.0, se=se, subject=s) for s in subjects]
    bench = [cr(subject=s) for s in subjects]
    zs = [2.2, 2.4, 0.2, 0.0]
    pr = [prev(problem_id=f"P{i}", subject=s, value=470.0 - z * sd, se=se)
          for i, (s, z) in enumerate(zip(subjects, zs, strict=True))]  # fmt: skip
    three = problems(now[:3], bench[:3], prev_rows=pr[:3]).set_index("previous_problem_id")
    assert list(three.loc[["P0", "P1", "P2"], "previous_status"]) == [
        "improved",
        "improved",
        "unchanged",
    ]  # the previous values were lower: 470 now is a change for the better
    assert three.loc["P0", "change_q"] == pytest.approx(0.0278 * 3 / 2, abs=2e-4)
    four = problems(now, bench, prev_rows=pr).set_index("previous_problem_id")
    assert list(four.loc[["P0", "P1"], "previous_status"]) == ["unchanged", "unchanged"]
    assert four.loc["P0", "change_p"] == pytest.approx(0.02780690, abs=1e-7)  # R 2*pnorm(-2.2)


def test_previous_gap_compared_in_absolute_value_and_linking_error():
    rows = [ind(indicator="gap_mean_score", group_var="gender", group_value="female-male",
                estimate=-30.0, se=3.0)]  # fmt: skip
    pr = [prev(rule_id="GAP", indicator="gap_mean_score", group_var="gender",
               group_value="female-male", value=-20.0, se=3.0)]  # fmt: skip
    out = problems(rows, prev_rows=pr)
    assert out["previous_status"].iloc[0] == "worse"  # |−30| > |−20|, z = 10/4.24 = 2.36
    # a linking error of 10 points on the math scale: z = 10 / sqrt(9 + 9 + 100) = 0.92
    p2 = build_params(
        EvidenceParams,
        {**dict(EVIDENCE_RAW), "linking_error": {"math": {"gap_mean_score": 10.0}}},
        "evidence",
    )  # fmt: skip
    assert problems(rows, prev_rows=pr, params=p2)["previous_status"].iloc[0] == "unchanged"


def test_linking_error_is_refused_for_scale_free_statistics():
    with pytest.raises(EqmError, match="校际差异率"):
        build_params(
            EvidenceParams,
            {**dict(EVIDENCE_RAW), "linking_error": {"math": {"school_difference_rate": 0.01}}},
            "evidence",
        )  # fmt: skip


def test_trend_against_the_previous_cycle_includes_the_linking_error():
    # 语文 2019 (official county report, 480 ± 4) -> 2022 (470 ± 3), linking error 12 points:
    # change −10, SE = sqrt(3² + 4² + 12²) = 13 (hand), z = 10/13 = 0.769 in the bad direction,
    # p = 2Φ(−0.7692) = 0.44175633 (R 2*pnorm(-10/13)).
    p2 = build_params(
        EvidenceParams,
        {**dict(EVIDENCE_RAW), "linking_error": {"chinese": {"mean_score": 12.0}}},
        "evidence",
    )  # fmt: skip
    out = problems(
        [ind(estimate=470.0, se=3.0, subject="chinese")],
        [cr(subject="chinese"), cr(year=2019, subject="chinese", scope="county", value=480.0,
                                   se=4.0)],
        params=p2,
    )  # fmt: skip
    tr = json.loads(out["evidence"].iloc[0])["trend"]
    assert (tr["year"], tr["previous_value"], tr["change"]) == (2019, 480.0, -10.0)
    assert tr["se_change"] == pytest.approx(13.0)
    assert tr["p_value"] == pytest.approx(0.44175633, abs=1e-8)
    assert "链接误差" in evidence_text(out["evidence"].iloc[0])


def test_previous_census_problems():
    out = problems(
        rb_rows=[rb(cv=0.6, passes=False), rb(indicator="L2", cv=0.4),
                 rb(indicator="L3", cv=0.555, passes=False)],
        sc_rows=[school(n_met=7)],
        prev_rows=[
            prev(problem_id="R1", rule_id="RES", grade=None, subject="", indicator="L1",
                 group_var="stage", group_value="primary", value=0.55, se=None),
            prev(problem_id="R2", rule_id="RES", grade=None, subject="", indicator="L2",
                 group_var="stage", group_value="primary", value=0.55, se=None),
            prev(problem_id="R3", rule_id="RES", grade=None, subject="", indicator="L3",
                 group_var="stage", group_value="primary", value=0.55, se=None),
            prev(problem_id="S1", rule_id="SCHOOL", grade=None, subject="",
                 indicator="school_compliance", group_var="school", group_value="primary/S01",
                 value=5.0, se=None),
        ],
    )  # fmt: skip
    s = out.set_index("previous_problem_id")
    assert s.loc["R1", "problem_id"] == "RES-450107-primary-L1"
    assert s.loc["R1", "previous_status"] == "worse"  # 0.55 -> 0.60, still above 0.50
    assert s.loc["R2", "previous_status"] == "resolved"  # 0.55 -> 0.40, passes now
    assert s.loc["R3", "previous_status"] == "unchanged"  # 0.55 -> 0.555: within the 0.01 tolerance
    assert s.loc["S1", "previous_status"] == "resolved"
    assert s.loc["S1", "status"] == schemas.STATUS_CLOSABLE and s.loc["S1", "severity"] == ""
    assert "已达到优质均衡标准" in s.loc["R2", "title"]  # a close-out never reads as a violation


def test_previous_census_problem_without_a_verdict_now_is_not_closed():
    """Issue 15: a 差异系数 or a school with no verdict this round (数据不全，无法判定: passes
    missing) judges nothing — the earlier problem is carried as not re-measured, never proposed
    for close-out on incomplete data."""
    out = problems(
        rb_rows=[rb(cv=0.40, passes=pd.NA)],
        sc_rows=[school(n_met=6, passes=pd.NA)],
        prev_rows=[
            prev(problem_id="R1", rule_id="RES", grade=None, subject="", indicator="L1",
                 group_var="stage", group_value="primary", value=0.55, se=None),
            prev(problem_id="S1", rule_id="SCHOOL", grade=None, subject="",
                 indicator="school_compliance", group_var="school", group_value="primary/S01",
                 value=5.0, se=None),
        ],
    )  # fmt: skip
    s = out.set_index("previous_problem_id")
    assert s.loc["R1", "previous_status"] == "not re-measured"
    assert s.loc["S1", "previous_status"] == "not re-measured"
    assert (out["status"] != schemas.STATUS_CLOSABLE).all()


def test_achievement_measures_merge_into_one_problem():
    rows = [ind(estimate=450.0), ind(indicator="pct_medium_or_above", estimate=70.0, se=3.0),
            ind(indicator="achievement_level", estimate=2.0, se=np.nan)]  # fmt: skip
    bench = [cr(), cr(indicator="pct_medium_or_above", value=85.0)]
    out = problems(rows, bench)
    assert list(out["problem_id"]) == ["ACH-450107-G8-math"]
    ev = json.loads(out["evidence"].iloc[0])
    assert {m["rule_id"] for m in ev["measures"] if m["fires"]} == {"LEVEL", "MEAN", "MEDIUM"}
    t = out["title"].iloc[0]
    assert "平均成绩450.0分，显著低于全国（500.0分）" in t and "水平Ⅱ" in t and "70.0%" in t
    assert out["severity"].iloc[0] == "高"  # the worst failing measure (50 points = 0.5 SD)


def test_nine_year_school_is_one_problem_naming_each_unmet_indicator():
    std = {
        "primary": {"L1": 4.2, "L2": 1.0, "L3": 0.9, "L4": 4.5, "L5": 7.5, "L6": 2000, "L7": 2.3},
        "junior": {"L1": 5.3, "L2": 1.0, "L3": 0.9, "L4": 5.8, "L5": 10.2, "L6": 2500, "L7": 2.4},
    }
    p2 = build_params(
        EvidenceParams, {**dict(EVIDENCE_RAW), "resource_thresholds": std}, "evidence"
    )
    ok = {"L1": 5.5, "L2": 1.2, "L3": 1.0, "L4": 6.0, "L5": 11.0, "L6": 3000.0, "L7": 2.5}
    out = problems(
        sc_rows=[
            # primary: L6 at 14% of 2000 (280 yuan) -> fails; 6 of 7 met but below 85%
            school(school_id="S9", school_name="某九年一贯制学校", **{**ok, "L6": 280.0},
                   n_met=6, min_ratio_unmet=0.14, passes=False),
            # junior: L2 0.9 (90%) and L7 2.2 (92%) -> fails by the count only
            school(school_id="S9", school_name="某九年一贯制学校", stage="junior",
                   **{**ok, "L2": 0.9, "L7": 2.2}, n_met=5, min_ratio_unmet=0.9, passes=False),
        ],
        params=p2,
    )  # fmt: skip
    assert list(out["problem_id"]) == ["SCH-450107-S9"]  # one school, one problem
    t = out["title"].iloc[0]
    assert (
        "小学部7项中1项未达标" in t
        and "生均教学仪器设备值280元/生（标准2000元/生，为标准的14%）" in t
    )
    assert "初中部7项中2项未达标" in t
    assert "6项达标，未达到" not in t  # the old self-contradicting wording
    assert out["severity"].iloc[0] == "高"  # 14% of the standard is deep (< 60%)


@pytest.mark.parametrize(
    ("ratio", "n_unmet", "severity"),
    [(0.59, 1, "高"), (0.60, 1, "中"), (0.84, 1, "中"), (0.86, 2, "低"), (0.86, 3, "高")],
)
def test_school_severity_from_depth(ratio, n_unmet, severity):
    std = {"primary": dict.fromkeys([f"L{i}" for i in range(1, 8)], 1.0)}
    p2 = build_params(
        EvidenceParams, {**dict(EVIDENCE_RAW), "resource_thresholds": std}, "evidence"
    )
    vals = {f"L{i}": (ratio if i <= n_unmet else 1.0) for i in range(1, 8)}
    out = problems(sc_rows=[school(**vals, n_met=7 - n_unmet, min_ratio_unmet=ratio,
                                   passes=False)], params=p2)  # fmt: skip
    assert out["severity"].iloc[0] == severity


def test_negative_icc_is_not_a_problem_and_official_icc_wins():
    out = problems([ind(indicator="school_difference_rate", estimate=-0.01, se=0.02)])
    assert out.empty
    off = problems(
        [ind(indicator="school_difference_rate", estimate=0.10, se=0.03),
         ind(indicator="school_difference_rate", estimate=0.20, se=np.nan, source="official")]
    )  # fmt: skip
    assert list(off["value"]) == [0.20]  # the official value decides
    rows = json.loads(off["evidence"].iloc[0])["rows"]
    assert [r["source"] for r in rows] == ["official", "computed"]  # the local estimate stays


def test_comparisons_label_only_tested_differences():
    # t19 against 500 (se 5): 520 has one-sided p_better = pt(-4, 19) = 0.00038 -> better (BH q
    # 0.0011 over the three mirrored tests); 505: pt(-1, 19) = 0.1649 -> no difference; 480 fires.
    # 510 (pt(-2, 19) = 0.0300) would be better alone but not after BH with m = 3 (q = 0.090).
    from pipeline.evidence import comparisons

    rows = [ind(estimate=520.0), ind(estimate=505.0, subject="science"),
            ind(estimate=480.0, subject="chinese")]  # fmt: skip
    bench = [cr(), cr(subject="science"), cr(subject="chinese")]
    c = candidates(frame(rows, schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
                   frame([], schemas.SCHOOL_COMPLIANCE), frame(bench, schemas.COUNTY_REPORTS),
                   PARAMS, CITY)  # fmt: skip
    c["problem_rule"], c["problem_id"] = "ACH", ""
    v = comparisons(c, 0.05).set_index("subject")["verdict"]
    assert v.to_dict() == {"chinese": "worse", "math": "better", "science": "no_difference"}


# ------------------------------------------------------------------------------------------------
# Negative
# ------------------------------------------------------------------------------------------------


def test_missing_indicator_column_is_a_clear_error():
    bad = frame([ind()], schemas.INDICATORS).drop(columns=["se"])
    with pytest.raises(EqmError, match="缺少列：se"):
        build_problems(
            bad, frame([], schemas.RESOURCE_BALANCE), frame([], schemas.SCHOOL_COMPLIANCE),
            frame([], schemas.COUNTY_REPORTS), pd.DataFrame(), PARAMS, NAMES, CITY,
        )  # fmt: skip


def test_resource_table_without_verdict_is_a_clear_error():
    bad = frame([rb()], schemas.RESOURCE_BALANCE).drop(columns=["passes"])
    with pytest.raises(EqmError, match="缺少列：passes"):
        build_problems(
            frame([], schemas.INDICATORS), bad, frame([], schemas.SCHOOL_COMPLIANCE),
            frame([], schemas.COUNTY_REPORTS), pd.DataFrame(), PARAMS, NAMES, CITY,
        )  # fmt: skip


def test_params_reject_unknown_rule():
    raw = dict(EVIDENCE_RAW)
    raw = {**raw, "rules": {**raw["rules"], "FOO": raw["rules"]["ICC"]}}
    with pytest.raises(EqmError, match="FOO"):
        build_params(EvidenceParams, raw, "evidence")
    with pytest.raises(EqmError, match="alpha"):
        build_params(EvidenceParams, {**raw, "alpha": 1.5}, "evidence")


def test_icc_test_agrees_with_the_fisher_interval():
    """With the asymmetric Fisher-z interval the ICC test takes its SE from the lower half-width,
    so p < 0.025 exactly when the interval's lower bound is above 0.15 (8 schools: t with 7 df).
    Review case: ICC 0.467, SE 0.143, CI 0.179–0.766 (wholly above) used to get a Wald p >= 0.025."""
    method = (
        "ICC(1) one-way ANOVA (unweighted); JKn jackknife SE; CI on Fisher's z scale (1/2 ln F)"
    )
    rows = [
        ind(indicator="school_difference_rate", estimate=0.467, se=0.143, ci_low=0.179,
            ci_high=0.766, n_schools=8, method=method),
        ind(indicator="school_difference_rate", estimate=0.30, se=0.10, ci_low=0.1501,
            ci_high=0.55, n_schools=8, method=method, subject="chinese"),
        ind(indicator="school_difference_rate", estimate=0.30, se=0.10, ci_low=0.1499,
            ci_high=0.55, n_schools=8, method=method, subject="science"),
    ]  # fmt: skip
    c = candidates(frame(rows, schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
                   frame([], schemas.SCHOOL_COMPLIANCE), frame([], schemas.COUNTY_REPORTS),
                   PARAMS, CITY)  # fmt: skip
    c = c[c["rule_id"] == "ICC"].set_index("subject")
    # R: q = qt(pnorm(1.96), 7) = 2.364681; se = (0.467 - 0.179)/q = 0.1217923;
    # t = (0.467 - 0.15)/se = 2.602792; p = pt(-2.602792, 7) = 0.01764075
    assert c.loc["math", "p_value"] == pytest.approx(0.01764075, abs=1e-7)
    assert c.loc["math", "severity"] == "高"
    # the boundary: 1 - pnorm(1.96) = 0.02499790 (R)
    assert c.loc["chinese", "p_value"] < 0.0249979 < c.loc["science", "p_value"]
    assert c.loc["chinese", "p_value"] == pytest.approx(0.0249979, abs=2e-4)
    # a symmetric (Wald) interval keeps the jackknife SE: (0.30 - 0.15)/0.10 = 1.5,
    # R pt(-1.5, 7) = 0.08864924
    wald = ind(indicator="school_difference_rate", estimate=0.30, se=0.10, n_schools=8)
    w = candidates(frame([wald], schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
                   frame([], schemas.SCHOOL_COMPLIANCE), frame([], schemas.COUNTY_REPORTS),
                   PARAMS, CITY)  # fmt: skip
    assert w.loc[w["rule_id"] == "ICC", "p_value"].iloc[0] == pytest.approx(0.08864924, abs=1e-7)


def test_targets_and_suggestions_are_filled_with_the_numbers():
    out = problems(
        [ind(estimate=450.0), ind(indicator="pct_homework_over_limit", subject="", grade=4,
                                  estimate=40.0, se=2.0)],
        [cr(), cr(indicator="pct_homework_over_limit", subject="", grade=4, value=20.0)],
        rb_rows=[rb(cv=0.6, passes=False)],
    )  # fmt: skip
    s = out.set_index("rule_id")
    for col in ("target", "suggestion"):
        assert not out[col].str.contains("[{}]", regex=True).any()  # no placeholder left
        assert (out[col].str.len() > 10).all()
    assert s.loc["RES", "target"] == "小学每百名学生拥有高于规定学历教师数差异系数 ≤ 0.50"
    assert "40.0%" in s.loc["HOMEWORK", "suggestion"] and "20.0%" in s.loc["HOMEWORK", "suggestion"]


# ------------------------------------------------------------------------------------------------
# Review findings: nothing open vanishes, nothing is closed on what was not judged
# ------------------------------------------------------------------------------------------------


def test_no_benchmark_this_round_is_not_a_close_out():
    # 2020: 450 against the nation 500 (a problem); 2022: 440 but no national figure printed,
    # so nothing was judged: not re-measured, carrying 450 (never 建议销号)
    out = problems(
        [ind(year=2020, estimate=450.0), ind(year=2022, estimate=440.0)], [cr(year=2020)]
    )
    r = out[out["year"] == 2022].iloc[0]
    assert (r["previous_status"], r["status"], r["previous_value"]) == (
        "not re-measured",
        schemas.STATUS_OPEN,
        450.0,
    )


def test_change_is_never_tested_across_two_indicators():
    # 2020 fired on the level only (Ⅱ); 2022 has only a mean: the level was not re-measured
    rows = [ind(year=2020, indicator="achievement_level", estimate=2.0, se=np.nan),
            ind(year=2022, estimate=450.0, se=5.0)]  # fmt: skip
    out = problems(rows, [cr(year=2022)])
    r = out[out["year"] == 2022].iloc[0]
    assert r["previous_status"] == "not re-measured" and r["previous_value"] == 2.0


@pytest.mark.parametrize(
    ("list_year", "expected"),
    [(2021, "worse"), (2020, "worse"), (2019, "worse")],
)
def test_hand_lists_between_rounds_keep_eqm_problems(list_year, expected):
    # eqm's 2020 math problem (470) and a hand list dated 2019, 2020 or 2021 with its own item:
    # 2022 re-checks both (the 2020 problem: 470 -> 450 worse; the list's chinese item is not
    # re-measured), whatever the list's year
    rows = [ind(year=2020, estimate=470.0), ind(year=2022, estimate=450.0)]
    bench = [cr(year=2020), cr(year=2022)]
    out = problems(rows, bench, prev_rows=[prev(problem_id="NN-1", year=list_year,
                                                subject="chinese")])  # fmt: skip
    y22 = out[out["year"] == 2022].set_index("problem_id")
    assert y22.loc["ACH-450107-G8-math", "previous_status"] == expected
    assert y22.loc["ACH-450107-G8-chinese", "previous_problem_id"] == "NN-1"
    assert y22.loc["ACH-450107-G8-chinese", "previous_status"] == "not re-measured"


def test_two_hand_lists_before_the_only_computed_round_both_reach_it():
    out = problems(
        [ind(estimate=450.0)], [cr()],
        prev_rows=[prev(problem_id="NN19", year=2019, subject="science"),
                   prev(problem_id="NN20", year=2020, subject="chinese")],
    )  # fmt: skip
    assert set(out["previous_problem_id"]) >= {"NN19", "NN20"}


def test_hand_list_written_differently_names_the_same_object():
    # 小学 for primary, a school id read as a float: the same identity as eqm's own
    out = problems(
        rb_rows=[rb(cv=0.6, passes=False)],
        prev_rows=[prev(problem_id="R1", rule_id="RES", grade=None, subject="", indicator="L1",
                        group_var="stage", group_value="小学", value=0.55, se=None)],
    )  # fmt: skip
    assert list(out["problem_id"]) == ["RES-450107-primary-L1"]
    assert list(out["previous_problem_id"]) == ["R1"]


def test_hand_list_with_a_bad_year_is_a_clear_error():
    with pytest.raises(EqmError, match="不是年份"):
        problems([ind()], [cr()], prev_rows=[prev(year="2020年")])


def test_school_problem_goes_to_the_unit_of_its_deepest_unmet_indicator():
    # L2 骨干教师 at 50% and L6 仪器设备 at 90%: 人事科 leads (units_by_indicator of L2), the
    # equipment centre and the school rule's units support
    ok = {"L1": 5.0, "L2": 1.2, "L3": 1.0, "L4": 5.0, "L5": 8.0, "L6": 2500.0, "L7": 2.5}
    out = problems(sc_rows=[school(**{**ok, "L2": 0.5, "L6": 1800.0}, n_met=5,
                                   min_ratio_unmet=0.5, passes=False)])  # fmt: skip
    assert out["lead_unit"].iloc[0] == "人事科"
    assert out["support_units"].iloc[0].split("、")[:2] == ["装备中心", "计财科"]
