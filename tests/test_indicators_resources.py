"""优质均衡 resource balance: per-school 6-of-7 + 85% rule, county 差异系数, scope.

Expected numbers are hand calculations written next to each assertion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.indicators.params import IndicatorsParams
from pipeline.indicators.resources import (
    RESOURCE_FORMULAS,
    in_scope,
    resource_balance,
    school_compliance,
)

P = IndicatorsParams()
PRIMARY = dict(P.resource_thresholds["primary"])  # L1 4.2 … L6 2000, L7 2.3 (2017 办法)


def school(sid: str, values: dict[str, float], enrollment: float = 1000.0, stage: str = "primary",
           county: str = "450107", **extra) -> dict:  # fmt: skip
    """A school row whose L-values are exactly ``values`` (quantities back-computed)."""
    row = {"year": 2022, "county_code": county, "school_id": sid, "school_name": f"学校{sid}",
           "stage": stage, "school_type": "regular", "enrollment": enrollment,
           "is_teaching_point": False, "source_stage": stage}  # fmt: skip
    for key, (qty, mult) in RESOURCE_FORMULAS.items():
        row[qty] = values[key] * enrollment / mult
    row.update(extra)
    return row


def at_threshold(stage: str = "primary", **override) -> dict[str, float]:
    v = dict(P.resource_thresholds[stage])
    v.update(override)
    return v


def test_school_rule_boundaries():
    rows = [
        school("a", at_threshold()),  # all exactly at threshold: >= is met -> 7 met, passes
        school("b", at_threshold(L6=1700.0)),  # 6 met, L6 at exactly 85% (1700/2000) -> passes
        school("c", at_threshold(L6=1699.0)),  # 6 met, L6 at 84.95% -> fails
        school("d", at_threshold(L6=1990.0, L7=2.29)),  # only 5 met, both unmet ≥ 99% -> fails
        school("e", at_threshold(L1=4.19)),  # 6 met, L1 at 99.76% -> passes
    ]
    out = school_compliance(pd.DataFrame(rows), P).set_index("school_id")
    assert out["n_met"].to_dict() == {"a": 7, "b": 6, "c": 6, "d": 5, "e": 6}
    assert out["passes"].to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": True}
    assert np.isnan(out.loc["a", "min_ratio_unmet"])
    assert out.loc["b", "min_ratio_unmet"] == pytest.approx(0.85, abs=1e-12)
    assert out.loc["c", "min_ratio_unmet"] == pytest.approx(1699 / 2000, rel=1e-12)
    assert out.loc["d", "min_ratio_unmet"] == pytest.approx(
        1990 / 2000, rel=1e-12
    )  # min(0.995, 0.9957)
    assert out.loc["a", "L1"] == pytest.approx(4.2, rel=1e-12)


def test_junior_thresholds_apply_to_junior_sections():
    # 5.0 teachers / 100 students meets primary L1 (4.2) but not junior L1 (5.3)
    rows = [school("p", at_threshold("primary", L1=5.0)),
            school("j", at_threshold("junior", L1=5.0), stage="junior")]  # fmt: skip
    out = school_compliance(pd.DataFrame(rows), P).set_index("school_id")
    assert out.loc["p", "n_met"] == 7 and out.loc["j", "n_met"] == 6
    assert out.loc["j", "min_ratio_unmet"] == pytest.approx(5.0 / 5.3, rel=1e-12)


def test_missing_quantity_is_no_data_never_unmet():
    """A missing quantity is 「无数据」: the verdict is missing unless the known values decide it
    (issue 15). Hand cases against the 6-of-7 + 85% rule (教督〔2017〕6号):"""

    def gap(sid: str, values: dict, *missing: str) -> dict:
        row = school(sid, values)
        for key in missing:
            row[RESOURCE_FORMULAS[key][0]] = np.nan
        return row

    rows = [
        gap("m", at_threshold(), "L5"),  # 6 met + 1 missing: L5 decides -> undetermined
        gap("u", at_threshold(L6=1800.0), "L5"),  # 5 met, L6 90%, L5 missing -> undetermined
        gap("f", at_threshold(L6=1600.0), "L5"),  # L6 at 80% < 85% is known -> fails anyway
        gap(
            "g", at_threshold(), "L4", "L5"
        ),  # 5 met + 2 missing: can still reach 6 -> undetermined
        gap("h", at_threshold(L6=1990.0, L7=2.29), "L5"),  # 4 met + 1 missing = 5 < 6 -> fails
        school("k", at_threshold()),  # all known, all met -> passes
    ]
    out = school_compliance(pd.DataFrame(rows), P).set_index("school_id")
    assert out["n_met"].to_dict() == {"m": 6, "u": 5, "f": 5, "g": 5, "h": 4, "k": 7}
    verdict = {k: (None if pd.isna(v) else bool(v)) for k, v in out["passes"].items()}
    assert verdict == {"m": None, "u": None, "f": False, "g": None, "h": False, "k": True}


def test_cv_without_value_has_no_verdict():
    # no school with a sports-area value: no 差异系数, so no pass/fail (never read as a failure)
    rows = [school("a", at_threshold()), school("b", at_threshold(), enrollment=500.0)]
    for r in rows:
        r["sports_area_m2"] = np.nan
    rb = resource_balance(pd.DataFrame(rows), P)
    assert "L5" not in set(rb["indicator"])  # no value at all: no row
    rows[0]["sports_area_m2"] = 0.0
    rows[1]["sports_area_m2"] = 0.0  # X̄ = 0: CV undefined
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert np.isnan(rb.loc["L5", "cv"]) and pd.isna(rb.loc["L5", "passes"])
    assert bool(rb.loc["L1", "passes"])  # equal values: CV 0 <= 0.50


def test_scope_exclusions():
    base = at_threshold()
    rows = [
        school("reg", base),
        school("spe", base, school_type="special"),
        school("voc", base, school_type="vocational"),
        school("tp49", base, enrollment=49.0, is_teaching_point=True),
        school("tp50", base, enrollment=50.0, is_teaching_point=True),  # 50 is not "under 50"
        school("small", base, enrollment=30.0),  # a small regular school (not a 教学点) stays in
        school("zero", base, enrollment=0.0),
    ]
    df = pd.DataFrame(rows)
    assert in_scope(df, P).tolist() == [True, False, False, False, True, True, False]
    assert sorted(school_compliance(df, P)["school_id"]) == ["reg", "small", "tp50"]
    rb = resource_balance(df, P)
    assert (rb["n_schools"] == 3).all()


def test_county_cv_is_enrolment_weighted_population_form():
    # two schools, P = 100 and 300, L1 = 2 and 6 (per 100 students):
    # X̄ = (100·2 + 300·6)/400 = 5; S = √(0.25·9 + 0.75·1) = √3; CV = √3/5 = 0.346410 (hand)
    # unweighted population: mean 4, SD 2 -> 0.5; unweighted n−1: SD 2.828 -> 0.7071;
    # weighted with an n−1 style divisor (Σ P_i (x−X̄)² / (P−1)) also differs: 0.3468.
    rows = [school("x", at_threshold(L1=2.0), enrollment=100.0),
            school("y", at_threshold(L1=6.0), enrollment=300.0)]  # fmt: skip
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert rb.loc["L1", "county_value"] == pytest.approx(5.0, rel=1e-12)
    assert rb.loc["L1", "cv"] == pytest.approx(np.sqrt(3) / 5, rel=1e-12)
    assert rb.loc["L1", "cv"] == pytest.approx(0.346410, abs=1e-6)
    assert abs(rb.loc["L1", "cv"] - 0.5) > 0.1 and abs(rb.loc["L1", "cv"] - np.sqrt(8) / 4) > 0.1
    assert abs(rb.loc["L1", "cv"] - np.sqrt(1200 / 399) / 5) > 1e-4
    assert rb.loc["L1", "passes"]  # 0.346 <= 0.50
    # identical schools elsewhere: CV 0
    assert rb.loc["L2", "cv"] == pytest.approx(0.0, abs=1e-12)


def test_each_cv_not_mean_of_cvs():
    # L1 spread: P = 100, 100; L1 = 1.6 and 6.4 -> X̄ = 4, S = 2.4, CV = 0.6 > 0.5 (fails);
    # the six others are equal (CV 0) so the mean of the seven CVs, 0.086, would wrongly pass.
    rows = [school("x", at_threshold(L1=1.6), enrollment=100.0),
            school("y", at_threshold(L1=6.4), enrollment=100.0)]  # fmt: skip
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert rb.loc["L1", "cv"] == pytest.approx(0.6, rel=1e-12)
    assert rb["cv"].mean() < 0.5
    assert not rb.loc["L1", "passes"]
    assert rb.drop("L1")["passes"].all()


def test_junior_cv_threshold_boundary():
    # junior threshold 0.45 inclusive: CV exactly 0.45 passes. P equal, L4 = 5.5 and 14.5:
    # X̄ = 10, S = 4.5, CV = 0.45 (hand)
    rows = [school("x", at_threshold("junior", L4=5.5), stage="junior"),
            school("y", at_threshold("junior", L4=14.5), stage="junior")]  # fmt: skip
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert rb.loc["L4", "threshold"] == 0.45
    assert rb.loc["L4", "cv"] == pytest.approx(0.45, rel=1e-12)
    assert rb.loc["L4", "passes"] == (rb.loc["L4", "cv"] <= 0.45)


def test_split_sections_are_separate_rows():
    # a 九年一贯制 school arrives from ingest as two sections with the same school_id
    rows = [school("n9", at_threshold(), stage="primary", source_stage="nine_year"),
            school("n9", at_threshold("junior"), stage="junior", source_stage="nine_year")]  # fmt: skip
    out = school_compliance(pd.DataFrame(rows), P)
    assert out["stage"].tolist() == ["junior", "primary"] and out["passes"].all()
    rb = resource_balance(pd.DataFrame(rows), P)
    assert set(rb["stage"]) == {"primary", "junior"} and len(rb) == 14


def test_cv_over_too_few_of_the_schools_has_no_verdict():
    """The 差异系数 is a census figure: with 8 of 10 schools reporting L7 (80% < cv_min_coverage
    0.9) it is computed on the 8 but not judged; with 9 of 10 (90%) it is judged (>=)."""
    rows = [school(f"s{i}", at_threshold(), enrollment=100.0 + i) for i in range(10)]
    for r in rows[:2]:
        r["multimedia_classrooms"] = np.nan
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert rb.loc["L7", "n_schools"] == 8 and rb.loc["L7", "cv"] == pytest.approx(0.0, abs=1e-12)
    assert pd.isna(rb.loc["L7", "passes"]) and bool(rb.loc["L1", "passes"])
    rows[1]["multimedia_classrooms"] = rows[2]["multimedia_classrooms"]
    rb = resource_balance(pd.DataFrame(rows), P).set_index("indicator")
    assert rb.loc["L7", "n_schools"] == 9 and bool(rb.loc["L7", "passes"])
