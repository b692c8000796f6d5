"""Related factors per county (pipeline.indicators.factor_estimates, factor_fits) on small frames.

Expected numbers are computed here independently of the pipeline's estimators: weighted means and
percentages by hand, JKn standard errors from explicit replicate weights (drop school s of the
county, multiply the other schools' weights by n/(n − 1), V = (n − 1)/n · Σ (θ_s − θ)²), weighted
quartiles by their definition, t p-values by scipy.stats. The regression and two-level rows are
checked against the public, R-checked functions of pipeline.indicators.factors (tests/
test_factors_r.py) called directly.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline import schemas
from pipeline.catalogue import FACTORS
from pipeline.config import MonitoringParams, Scale, make_context
from pipeline.generations import stamp_existing
from pipeline.indicators import IndicatorsParams, factor_fits, run
from pipeline.indicators.factor_estimates import (
    factor_estimates,
    national_values,
    school_attributes,
    student_factors,
)
from pipeline.indicators.factor_fits import association_batch, county_rows, two_level_batch
from pipeline.indicators.factors import (
    factor_association,
    replicate_regression,
    two_level_decomposition,
)

ROOT = Path(__file__).resolve().parents[1]
MON = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380.0, 480.0, 580.0), (100.0, 900.0)))
P = IndicatorsParams()
C1, C2, C3 = "450107", "450110", "450125"  # 4, 4 and 2 schools (C3: below 3 schools, suppressed)
SCHOOLS = {C1: 4, C2: 4, C3: 2}

# teachers of grade 4 in county C1, by hand: (school, subject, major_match, education)
C1_TEACHERS = [
    ("07-0", "math", True, "bachelor"), ("07-0", "math", True, "college"),
    ("07-0", "math", False, "bachelor"),                              # math and grade: 2/3
    ("07-1", "math", True, "postgraduate"), ("07-1", "chinese", False, "college"),  # grade 1/2
    ("07-2", "math", False, "college"), ("07-2", "math", False, "secondary"),       # 0
    ("07-3", "math", True, "bachelor"), ("07-3", "math", False, "bachelor"),
    ("07-3", "chinese", True, "bachelor"), ("07-3", "chinese", True, "college"),    # grade 3/4
]  # fmt: skip
C1_GRADE_SHARE = {"07-0": 2 / 3, "07-1": 1 / 2, "07-2": 0.0, "07-3": 3 / 4}
C1_MATH_SHARE = {"07-0": 2 / 3, "07-1": 1.0, "07-2": 0.0, "07-3": 1 / 2}
CURRICULUM = {"07-0": True, "07-1": False, "07-2": True, "07-3": False, "25-0": True, "25-1": False}


def make_round(seed: int = 11, m: int = 14):
    """Students (grade 4, 2022) with questionnaire factors, math and chinese scores, teachers,
    principals and national values."""
    rng = np.random.default_rng(seed)
    st, sc, te, pr = [], [], [], []
    k = 0
    for c, ns in SCHOOLS.items():
        for j in range(ns):
            sid = f"{c[-2:]}-{j}"
            school_effect = 25.0 * (j - (ns - 1) / 2)  # clear between-school differences
            for _ in range(m):
                k += 1
                items = rng.integers(1, 5, 3).astype(float)
                if rng.random() < 0.15:
                    items[rng.integers(3)] = np.nan
                if rng.random() < 0.05:
                    items[:] = np.nan
                conf = rng.integers(1, 5, 3).astype(float)
                tut = rng.random() < 0.35
                ses = rng.normal()
                st.append({
                    "year": 2022, "student_id": f"s{k:04d}", "county_code": c, "school_id": sid,
                    "grade": 4, "weight": rng.uniform(5, 20), "ses": ses if rng.random() > 0.05 else np.nan,
                    "tutoring": pd.NA if rng.random() < 0.08 else bool(tut),
                    "tutoring_hours": rng.uniform(1, 6) if tut else 0.0,
                    "exercise_minutes": rng.uniform(10, 120), "interest_1": items[0],
                    "interest_2": items[1], "interest_3": items[2], "confidence_1": conf[0],
                    "confidence_2": conf[1], "confidence_3": conf[2],
                })  # fmt: skip
                mean_items = np.nanmean(items) if np.isfinite(items).any() else 2.5
                for subject in ("math", "chinese"):
                    sc.append({"year": 2022, "student_id": f"s{k:04d}", "subject": subject,
                               "scale_score": 500 + 15 * ses + 10 * mean_items + 8 * tut
                               + school_effect + rng.normal(0, 40)})  # fmt: skip
            if c != C1:
                for subject, n_t in (("math", 2), ("chinese", 1)):
                    for _ in range(n_t):
                        te.append((sid, subject, bool(rng.random() < 0.6),
                                   str(rng.choice(["bachelor", "college"]))))  # fmt: skip
            pr.append({
                "year": 2022, "county_code": c, "school_id": sid,
                "curriculum_complete": CURRICULUM.get(sid, True),  # constant True in C2
                "facility_use_1": float(rng.integers(1, 5)), "facility_use_2": float(rng.integers(1, 5)),
                "facility_use_3": float(rng.integers(1, 5)),
            })  # fmt: skip
    students = pd.DataFrame(st).astype({"tutoring": "boolean"})
    teachers = pd.DataFrame(
        [
            {"year": 2022, "teacher_id": f"t{i:03d}", "county_code": sid[:2], "school_id": sid,
             "grade": 4, "subject": subj, "major_match": mm, "education": edu,
             "training_hours": 40.0 + 10 * i % 70}
            for i, (sid, subj, mm, edu) in enumerate(C1_TEACHERS + te)
        ]
    ).astype({"major_match": "boolean"})  # fmt: skip
    return students, pd.DataFrame(sc), teachers, pd.DataFrame(pr)


def nation(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"year": 2022, "county_code": C1, "county_name": "西乡塘区", "grade": 4, "subject": pd.NA,
             "indicator": ind, "group_var": pd.NA, "group_value": pd.NA, "scope": "nation",
             "value": v, "se": se, "n": np.nan, "source_page": "5"}
            for ind, v, se in rows
        ]
    )  # fmt: skip


REPORTS = nation(
    [("factor_interest", 2.5, 0.04), ("factor_interest_sd", 0.8, np.nan),
     ("factor_tutoring", 30.0, 1.0), ("factor_confidence", 2.9, np.nan),
     ("factor_t_major", 80.0, np.nan)]
)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return make_round()


@pytest.fixture(scope="module")
def out(data):
    students, scores, teachers, principals = data
    return factor_estimates(students, scores, teachers, principals, REPORTS, MON, P)


def row(out: pd.DataFrame, **key) -> pd.Series:
    sel = np.ones(len(out), dtype=bool)
    for k, v in key.items():
        sel &= (out[k] == v).to_numpy()
    assert sel.sum() == 1, (key, int(sel.sum()))
    return out.loc[sel].iloc[0]


def jkn_by_hand(school: np.ndarray, w: np.ndarray, stat) -> tuple[float, float]:
    """``stat(weights)`` and its JKn SE from explicit replicate weights over the schools."""
    schools = np.unique(school)
    n = len(schools)
    full = stat(w)
    reps = np.array([stat(np.where(school == s, 0.0, w * n / (n - 1))) for s in schools])
    return full, float(np.sqrt((n - 1) / n * np.sum((reps - full) ** 2)))


def wmean(y: np.ndarray):
    ok = np.isfinite(y)
    return lambda w: float(np.sum(w[ok] * y[ok]) / np.sum(w[ok]))


def interest_index(frame: pd.DataFrame) -> np.ndarray:
    """Mean of the answered items when at least 2 of 3 are answered (ceil(0.5 · 3))."""
    items = frame[["interest_1", "interest_2", "interest_3"]].to_numpy(float)
    answered = np.isfinite(items).sum(axis=1)
    total = np.nansum(items, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(answered >= 2, total / answered, np.nan)


# ------------------------------------------------------------------------------------------------
# value
# ------------------------------------------------------------------------------------------------


def test_value_rows_are_weighted_percentages_and_means_with_jkn_se_by_hand(data, out):
    students = data[0]
    c = students.loc[students["county_code"] == C1]
    school, w = c["school_id"].to_numpy(), c["weight"].to_numpy()
    tut = c["tutoring"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    cases = {
        "tutoring": 100.0 * tut,  # share: 0/100
        "exercise": np.where(c["exercise_minutes"] >= 60, 100.0, 0.0),  # threshold 60 minutes
        "tutoring_hours": c["tutoring_hours"].to_numpy(),  # mean
    }
    for fid, y in cases.items():
        est, se = jkn_by_hand(school, w, wmean(y))
        r = row(out, county_code=C1, factor=fid, kind="value")
        assert r["estimate"] == pytest.approx(est, rel=1e-12)
        assert r["se"] == pytest.approx(se, rel=1e-10)
        assert (r["n_students"], r["n_schools"], r["df"]) == (np.isfinite(y).sum(), 4, 3.0)
        assert r["subject"] == "" and r["statistic"] == "" and r["level"] == "student"
        assert not r["suppressed"]
    # national 30 with SE 1: t = (est − 30)/√(se² + 1²) on df = 3 (scipy)
    r = row(out, county_code=C1, factor="tutoring", kind="value")
    t = (r["estimate"] - 30.0) / np.hypot(r["se"], 1.0)
    assert r["national"] == 30.0 and r["national_se"] == 1.0
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 3), rel=1e-10)
    # no national value: NaN national and p-value
    r = row(out, county_code=C1, factor="exercise", kind="value")
    assert np.isnan(r["national"]) and np.isnan(r["p_value"])


def test_index_is_standardised_to_the_national_metric_when_mean_and_sd_are_given(data, out):
    students = data[0]
    c = students.loc[students["county_code"] == C1]
    z = (interest_index(c) - 2.5) / 0.8  # national mean 2.5, SD 0.8 (REPORTS)
    est, se = jkn_by_hand(c["school_id"].to_numpy(), c["weight"].to_numpy(), wmean(z))
    r = row(out, county_code=C1, factor="interest", kind="value")
    assert r["estimate"] == pytest.approx(est, rel=1e-12)
    assert r["se"] == pytest.approx(se, rel=1e-10)
    assert r["national"] == 0.0 and r["national_se"] == pytest.approx(0.04 / 0.8)
    assert "standardised" in r["method"]
    t = r["estimate"] / np.hypot(r["se"], 0.05)
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 3), rel=1e-10)
    # confidence: a national mean but no SD -> stays on the 1–4 item metric (item 3 reversed)
    items = c[["confidence_1", "confidence_2", "confidence_3"]].to_numpy(float)
    conf = (items[:, 0] + items[:, 1] + (5 - items[:, 2])) / 3
    r = row(out, county_code=C1, factor="confidence", kind="value")
    assert r["estimate"] == pytest.approx(wmean(conf)(c["weight"].to_numpy()), rel=1e-12)
    assert r["national"] == 2.9 and "standardised" not in r["method"]
    # the coefficient is per national SD: the term is the standardised index
    terms = student_factors(students, county_reports=REPORTS)
    np.testing.assert_allclose(
        terms.loc[students["county_code"] == C1, "interest"].to_numpy(), z, rtol=1e-12
    )


def test_national_values_take_the_first_report_and_pair_mean_with_sd():
    two = pd.concat(
        [REPORTS, nation([("factor_tutoring", 30.0, 1.0)]).assign(county_code=C2)],
        ignore_index=True,
    )
    nat = national_values(two).set_index("factor")
    assert nat.loc["interest", ["national", "national_se", "national_sd"]].tolist() == [
        2.5,
        0.04,
        0.8,
    ]
    assert nat.loc["tutoring", "national"] == 30.0 and np.isnan(nat.loc["tutoring", "national_sd"])
    assert national_values(None).empty


# ------------------------------------------------------------------------------------------------
# school attributes
# ------------------------------------------------------------------------------------------------


def test_teacher_share_is_a_school_attribute_copied_onto_its_students(data, out):
    students, scores, teachers, principals = data
    attrs = school_attributes(teachers, [FACTORS["t_major"]], ("year", "school_id", "grade"), P)
    got = attrs.set_index("school_id")["u_t_major"]
    for sid, share in C1_GRADE_SHARE.items():
        assert got[sid] == pytest.approx(share)
    frame = student_factors(students, teachers, principals)
    c1 = frame["county_code"] == C1
    by_school = frame.loc[c1].groupby("school_id")["t_major__value"].agg(["min", "max"])
    for sid, share in C1_GRADE_SHARE.items():  # every student of the school carries the share
        assert by_school.loc[sid, "min"] == by_school.loc[sid, "max"] == pytest.approx(share)
    np.testing.assert_allclose(frame.loc[c1, "t_major"], 10 * frame.loc[c1, "t_major__value"])
    math = student_factors(students, teachers, principals, subject="math")
    assert math.loc[math["school_id"] == "07-1", "t_major__value"].eq(1.0).all()
    # county value: student-weighted mean of the schools' shares, in percent
    c = students.loc[students["county_code"] == C1]
    y = 100.0 * c["school_id"].map(C1_GRADE_SHARE).to_numpy()
    est, se = jkn_by_hand(c["school_id"].to_numpy(), c["weight"].to_numpy(), wmean(y))
    r = row(out, county_code=C1, factor="t_major", kind="value")
    assert r["estimate"] == pytest.approx(est) and r["se"] == pytest.approx(se)
    assert r["level"] == "teacher" and r["national"] == 80.0 and "student-weighted" in r["method"]


def test_principal_answer_is_copied_and_constant_factor_is_skipped_with_a_log_line(data, caplog):
    students, scores, teachers, principals = data
    with caplog.at_level(logging.DEBUG, logger="pipeline.indicators.factor_estimates"):
        got = factor_estimates(students, scores, teachers, principals, REPORTS, MON, P)
    c = students.loc[students["county_code"] == C1]
    y = 100.0 * c["school_id"].map(CURRICULUM).astype(float).to_numpy()
    r = row(got, county_code=C1, factor="p_curriculum", kind="value")
    assert r["estimate"] == pytest.approx(wmean(y)(c["weight"].to_numpy()))
    # C2: every school has curriculum_complete = True: no regression, a Chinese log line, no error
    assert row(got, county_code=C2, factor="p_curriculum", kind="value")[
        "estimate"
    ] == pytest.approx(100)
    fits = got.loc[(got["county_code"] == C2) & (got["factor"] == "p_curriculum")]
    assert set(fits["kind"]) == {"value"}
    assert any(
        "所在学校国家课程开齐开足的学生比例" in m and "无法估计" in m for m in caplog.messages
    )


# ------------------------------------------------------------------------------------------------
# gap, coef, two_level
# ------------------------------------------------------------------------------------------------


def county_subject(data, county: str, subject: str) -> pd.DataFrame:
    students, scores = data[0], data[1]
    s = scores.loc[scores["subject"] == subject]
    return s.merge(students, on=["year", "student_id"], validate="1:1").loc[
        lambda d: d["county_code"] == county
    ]


def test_gap_is_the_difference_of_weighted_group_means_with_jkn_se(data, out):
    d = county_subject(data, C1, "math")
    tut = d["tutoring"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    y, school, w = d["scale_score"].to_numpy(), d["school_id"].to_numpy(), d["weight"].to_numpy()

    def gap(wt):
        hi, lo = tut == 1.0, tut == 0.0
        return np.sum(wt[hi] * y[hi]) / np.sum(wt[hi]) - np.sum(wt[lo] * y[lo]) / np.sum(wt[lo])

    est, se = jkn_by_hand(school, w, gap)
    r = row(out, county_code=C1, subject="math", factor="tutoring", kind="gap")
    assert r["estimate"] == pytest.approx(est, rel=1e-12)
    assert r["se"] == pytest.approx(se, rel=1e-10)
    assert (r["group_high"], r["group_low"]) == ("参加", "未参加")
    assert r["df"] == 3.0 and r["n_students"] == np.isfinite(tut).sum()
    # the same as the regression of the score on a 0/1 indicator fitted on the two groups
    fit = replicate_regression(d.assign(ind=tut), "scale_score", ["ind"])
    b = fit.table.set_index("term").loc["ind"]
    assert (b["estimate"], b["se"], b["df"]) == pytest.approx((est, se, 3.0), rel=1e-9)


def test_quartile_gap_compares_the_top_and_bottom_weighted_quartiles(data, out):
    d = county_subject(data, C1, "math")
    x = (interest_index(d) - 2.5) / 0.8
    w, y = d["weight"].to_numpy(), d["scale_score"].to_numpy()
    ok = np.isfinite(x)
    # weighted quartile by its definition: F = weight share strictly below x; q = min(3, ⌊4F⌋)
    below = np.array([w[ok][x[ok] < v].sum() for v in x]) / w[ok].sum()
    q = np.where(ok, np.minimum(np.floor(4 * below), 3), -1)

    def gap(wt):
        hi, lo = q == 3, q == 0
        return np.sum(wt[hi] * y[hi]) / np.sum(wt[hi]) - np.sum(wt[lo] * y[lo]) / np.sum(wt[lo])

    est, se = jkn_by_hand(d["school_id"].to_numpy(), w, gap)
    r = row(out, county_code=C1, subject="math", factor="interest", kind="gap")
    assert r["estimate"] == pytest.approx(est, rel=1e-12) and r["se"] == pytest.approx(se)
    assert (r["group_high"], r["group_low"]) == FACTORS["interest"].group_labels


def test_coef_rows_equal_factor_association(data, out):
    d = county_subject(data, C1, "math")
    d = d.assign(term=d["exercise_minutes"] / 60.0)  # exercise: per hour of daily exercise
    ref = factor_association(d, "scale_score", ["term"], ["ses"])
    ref = ref.loc[ref["term"] == "term"].set_index("model")
    for model in ("unadjusted", "adjusted"):
        r = row(
            out, county_code=C1, subject="math", factor="exercise", kind="coef", statistic=model
        )
        e = ref.loc[model]
        for col in ("estimate", "se", "df", "p_value", "r_squared", "r_squared_se"):
            assert r[col] == pytest.approx(e[col], rel=1e-9), (model, col)
        assert (r["n_students"], r["n_schools"]) == (e["n_obs"], e["n_schools"])
    # a teacher factor uses the teachers of the subject: 10 × the math teachers' share
    d = d.assign(term=10.0 * d["school_id"].map(C1_MATH_SHARE))
    ref = factor_association(d, "scale_score", ["term"], ["ses"])
    e = ref.loc[(ref["term"] == "term") & (ref["model"] == "adjusted")].iloc[0]
    r = row(
        out, county_code=C1, subject="math", factor="t_major", kind="coef", statistic="adjusted"
    )
    assert (r["estimate"], r["se"]) == pytest.approx((e["estimate"], e["se"]), rel=1e-9)


def test_two_level_rows_equal_two_level_decomposition(data, out):
    d = county_subject(data, C1, "math")
    null = two_level_decomposition(d, "scale_score").table.set_index("statistic")
    for stat in ("icc", "tau2", "sigma2"):
        r = row(out, county_code=C1, subject="math", factor="", kind="two_level", statistic=stat)
        assert (r["estimate"], r["se"]) == pytest.approx(
            (null.loc[stat, "estimate"], null.loc[stat, "se"]), rel=1e-7
        )
        assert r["level"] == "" and r["n_schools"] == 4
    d = d.assign(term=1.0 * d["school_id"].map(CURRICULUM))
    fit = two_level_decomposition(d, "scale_score", ["term"]).table
    fit = fit.loc[fit["model"] == "conditional"].set_index("statistic")
    for stat, name in (("coef", "term"), ("between_explained", "between_explained")):
        r = row(out, county_code=C1, subject="math", factor="p_curriculum", kind="two_level",
                statistic=stat)  # fmt: skip
        assert (r["estimate"], r["se"]) == pytest.approx(
            (fit.loc[name, "estimate"], fit.loc[name, "se"]), rel=1e-7
        )
    assert null.loc["tau2", "estimate"] > 0 and np.isfinite(r["estimate"])
    # t_major on chinese: only the 2 schools with chinese teachers -> fitted, suppressed
    few = out.loc[(out["county_code"] == C1) & (out["subject"] == "chinese")
                  & (out["factor"] == "t_major") & out["kind"].isin(["coef", "two_level"])]  # fmt: skip
    assert len(few) == 4 and few["suppressed"].all() and (few["n_schools"] == 2).all()


@pytest.mark.parametrize("cells", [factor_fits.MAX_STACK_CELLS, 1])  # 1: one block per call
def test_batched_fits_equal_the_public_functions_with_pvs_missing_values_and_singular_replicates(
    cells, monkeypatch
):
    monkeypatch.setattr(factor_fits, "MAX_STACK_CELLS", cells)
    rng = np.random.default_rng(5)
    rows = []
    for s in range(7):
        u, zs, only = rng.normal(0, 20), rng.normal(), float(s == 2)  # `only`: 1 in one school
        for _ in range(15):
            x, ses = rng.normal(), rng.normal()
            rows.append({"school": s, "w": rng.uniform(1, 5), "x": x if rng.random() > 0.1 else np.nan,
                         "z": zs, "b": only, "ses": ses if rng.random() > 0.1 else np.nan,
                         **{f"pv{k}": 500 + 10 * x + 8 * ses + 15 * zs + u + rng.normal(0, 50)
                            for k in range(3)}})  # fmt: skip
    df = pd.DataFrame(rows).assign(county="c")
    df.loc[[3, 40], ["pv0", "pv1", "pv2"]] = np.nan
    pvs = ["pv0", "pv1", "pv2"]
    cr = county_rows(df["school"].to_numpy(), df["w"].to_numpy(), df[pvs].to_numpy().T)
    design = {"strata": "county", "psu": "school", "weight": "w"}
    table, skipped = association_batch(cr, df[["x", "z", "b"]].to_numpy(), df["ses"].to_numpy())
    assert not skipped
    for k, name in enumerate(["x", "z", "b"]):
        ref = factor_association(df, pvs, [name], ["ses"], **design)
        ref = ref.loc[ref["term"] == name].reset_index(drop=True)
        got = table.loc[table["k"] == k].reset_index(drop=True)
        for col in ("estimate", "se", "df", "p_value", "r_squared", "r_squared_se", "n_obs"):
            np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float),
                                       rtol=1e-8, equal_nan=True, err_msg=f"{name} {col}")  # fmt: skip
    assert np.isnan(table.loc[table["k"] == 2, "se"]).all()  # dropping school 2 leaves b constant
    # two counties in one call (their null models share one fit call): the second is the first
    # with the terms reordered, so both must give the public function's numbers
    (null, per, skipped), (null2, per2, _) = two_level_batch(
        [(cr, df[["z", "b", "x"]].to_numpy()), (cr, df[["x", "z"]].to_numpy())]
    )
    pd.testing.assert_frame_equal(null, null2)
    np.testing.assert_allclose(
        per2.loc[per2["k"] == 0, "estimate"], per.loc[per["k"] == 2, "estimate"], rtol=1e-9
    )
    ref = two_level_decomposition(df, pvs, **design).table.set_index("statistic")
    np.testing.assert_allclose(null["estimate"], ref.loc[null["statistic"], "estimate"], rtol=1e-7)
    np.testing.assert_allclose(null["se"], ref.loc[null["statistic"], "se"], rtol=1e-7)
    for k, name in enumerate(["z", "b", "x"]):
        ref = two_level_decomposition(df, pvs, [name], **design).table
        ref = ref.loc[ref["model"] == "conditional"].set_index("statistic")
        for stat, ref_name in (("coef", name), ("between_explained", "between_explained")):
            got = per.loc[(per["k"] == k) & (per["statistic"] == stat)].iloc[0]
            e = ref.loc[ref_name]
            np.testing.assert_allclose([got["estimate"], got["se"], got["p_value"]],
                                       [e["estimate"], e["se"], e["p_value"]], rtol=1e-6,
                                       equal_nan=True, err_msg=f"{name} {stat}")  # fmt: skip
    # a constant term cannot be fitted: skipped with a reason, no exception
    _, skipped = association_batch(cr, np.ones((len(df), 1)), df["ses"].to_numpy())
    assert "共线" in skipped[0]


# ------------------------------------------------------------------------------------------------
# availability, suppression, the stage
# ------------------------------------------------------------------------------------------------


def test_factors_without_a_source_are_not_estimated(data):
    students, scores, teachers, principals = data
    fewer = students.drop(columns=["interest_1", "interest_2", "interest_3", "tutoring"])
    got = factor_estimates(fewer, scores, None, principals, REPORTS, MON, P)
    present = set(got["factor"]) - {""}
    assert {"interest", "tutoring"}.isdisjoint(present)
    assert not any(FACTORS[f].level == "teacher" for f in present)
    assert {"confidence", "exercise", "p_curriculum", "p_facility"} <= present
    # teacher factors whose column is absent (weekly_lessons, method_*) are skipped too
    full = factor_estimates(students, scores, teachers, principals, REPORTS, MON, P)
    assert {"t_lessons", "t_method", "t_workload", "p_home_school"}.isdisjoint(set(full["factor"]))
    assert factor_estimates(students[["year", "student_id", "county_code", "school_id", "grade",
                                      "weight"]], scores, None, None, None, MON, P).empty  # fmt: skip


def test_county_with_two_schools_is_suppressed_but_kept(out):
    c3 = out.loc[out["county_code"] == C3]
    assert len(c3.loc[c3["kind"] == "value"]) > 0
    assert c3["suppressed"].all()
    assert np.isfinite(c3.loc[c3["kind"] == "value", "estimate"]).all()
    c1 = out.loc[(out["county_code"] == C1) & (out["kind"] == "value")]
    assert not c1["suppressed"].any()


def test_rows_have_the_contract_columns_and_unique_keys(out):
    assert list(out.columns) == schemas.FACTORS.names
    assert not out.duplicated(list(schemas.FACTORS.key)).any()
    assert set(out["kind"]) == {"value", "gap", "coef", "two_level"}
    assert (out.loc[out["kind"] == "value", "subject"] == "").all()


@pytest.mark.slow
def test_stage_writes_factors_parquet(tmp_path, data):
    students, scores, teachers, principals = data
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    vdir = tmp_path / "data" / "processed" / "validated"
    vdir.mkdir(parents=True)
    schools = pd.DataFrame(
        {"year": 2022, "county_code": students["county_code"], "school_id": students["school_id"],
         "stage": "primary", "enrollment": 300.0}
    ).drop_duplicates()  # fmt: skip
    for name, frame in {"students": students, "scores": scores, "schools": schools,
                        "county_reports": REPORTS, "teachers": teachers,
                        "principals": principals}.items():  # fmt: skip
        frame.to_parquet(vdir / f"{name}.parquet")
    stamp_existing(tmp_path, "validate")
    ctx = make_context(tmp_path, quiet=True)
    run(ctx)
    got = pd.read_parquet(ctx.paths.factors)
    assert list(got.columns) == schemas.FACTORS.names
    kinds = {"int": "i", "float": "f", "bool": "b"}
    for col in schemas.FACTORS.columns:
        if col.dtype in kinds:
            assert got[col.name].dtype.kind == kinds[col.dtype], col.name
        else:
            assert pd.api.types.is_string_dtype(got[col.name]), col.name
    summary = json.loads(ctx.paths.indicators_summary.read_text(encoding="utf-8"))["factors"]
    assert summary["rows"] == len(got) and summary["rows_suppressed"] == int(
        got["suppressed"].sum()
    )
    assert summary["rows_by_kind"] == got["kind"].value_counts().sort_index().to_dict()
    first = ctx.paths.factors.read_bytes()
    run(ctx)
    assert ctx.paths.factors.read_bytes() == first  # byte-stable


def test_a_county_value_without_variation_is_not_tested_against_national(data):
    # every sampled school of C2 has 课程开齐开足 (100 %): its JKn SE is 0, and a t test on it would
    # call any national value "significantly" different; C1 varies and is tested
    students, scores, teachers, principals = data
    reports = pd.concat([REPORTS, nation([("factor_p_curriculum", 80.0, np.nan)])])
    got = factor_estimates(students, scores, teachers, principals, reports, MON, P)
    c2 = row(got, county_code=C2, kind="value", factor="p_curriculum")
    assert np.isclose(c2["estimate"], 100.0) and c2["se"] < 1e-9 and np.isnan(c2["p_value"])
    c1 = row(got, county_code=C1, kind="value", factor="p_curriculum")
    assert c1["se"] > 0 and np.isfinite(c1["p_value"])
