"""The indicators stage as a whole: contract, conventions, hand-checked small cases, negatives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import schemas
from pipeline.config import MonitoringParams, Scale, build_params, make_context
from pipeline.errors import EqmError
from pipeline.generations import stamp_existing
from pipeline.indicators import IndicatorsParams, compute, official_rows, run, stage_params
from pipeline.indicators.resources import RESOURCE_FORMULAS
from pipeline.indicators.scores import achievement_levels, questionnaire_matrix, ses_quartiles
from pipeline.indicators.survey import normal_p_value

ROOT = Path(__file__).resolve().parents[1]
MON = MonitoringParams({}, {}, "450100", "南宁市", {}, Scale((380.0, 480.0, 580.0), (100.0, 900.0)))
P = IndicatorsParams()


def make_data(seed: int = 3, counties=("450107", "450110"), n_sch=(4, 2), m=12):
    rng = np.random.default_rng(seed)
    st, sc, schools = [], [], []
    k = 0
    for c, ns in zip(counties, n_sch, strict=True):
        for grade in (4, 8):
            for j in range(ns):
                sid = f"{c[-2:]}{grade}{j}"
                for _ in range(m):
                    k += 1
                    st.append({
                        "year": 2022, "student_id": f"h{k:05d}", "county_code": c, "school_id": sid,
                        "grade": grade, "gender": rng.choice(["female", "male"]),
                        "urban_rural": rng.choice(["urban", "town", "rural"]),
                        "left_behind": bool(rng.random() < 0.3), "migrant": bool(rng.random() < 0.2),
                        "ses": rng.normal(), "weight": rng.uniform(5, 20),
                        "homework_minutes": rng.choice([30.0, 60.0, 61.0, 90.0, 120.0, np.nan]),
                        "sleep_hours": rng.choice([8.0, 9.0, 10.0, 11.0]), "myopia": bool(rng.random() < 0.5),
                        "fitness_score": rng.uniform(40, 100), "source_file": "x.csv", "source_row": k + 1,
                    })  # fmt: skip
                    sc.append({"year": 2022, "student_id": f"h{k:05d}", "subject": "math",
                               "scale_score": rng.normal(500, 100), "level": pd.NA})  # fmt: skip
            stage = "primary" if grade == 4 else "junior"
            for j in range(ns):
                row = {"year": 2022, "county_code": c, "school_id": f"{c[-2:]}{grade}{j}",
                       "school_name": f"学校{j}", "stage": stage, "school_type": "regular",
                       "enrollment": float(rng.integers(100, 900)), "is_teaching_point": False,
                       "source_stage": stage}  # fmt: skip
                for key, (qty, mult) in RESOURCE_FORMULAS.items():
                    row[qty] = (
                        P.resource_thresholds[stage][key]
                        * rng.uniform(0.7, 1.6)
                        * row["enrollment"]
                        / mult
                    )
                schools.append(row)
    students = pd.DataFrame(st).astype(
        {"left_behind": "boolean", "migrant": "boolean", "myopia": "boolean"}
    )
    return students, pd.DataFrame(sc), pd.DataFrame(schools)


REPORTS = pd.DataFrame(
    {"year": [2022, 2022], "county_code": ["450107", "450107"], "county_name": ["西乡塘区"] * 2,
     "grade": [4, 4], "subject": ["math", "math"],
     "indicator": ["school_difference_rate", "mean_score"], "group_var": [pd.NA, pd.NA],
     "group_value": [pd.NA, pd.NA], "scope": ["county", "nation"], "value": [0.21, 503.0],
     "se": [np.nan, 1.2], "n": [600.0, np.nan], "source_page": ["12", "3"]}
)  # fmt: skip


@pytest.fixture(scope="module")
def result():
    students, scores, schools = make_data()
    return compute(students, scores, schools, REPORTS, MON, P)


def test_contract_columns_order_and_sort(result):
    ind, rb, sc, summary = result
    assert list(ind.columns) == schemas.INDICATORS.names
    assert list(rb.columns) == schemas.RESOURCE_BALANCE.names
    assert list(sc.columns) == schemas.SCHOOL_COMPLIANCE.names
    key = list(schemas.INDICATORS.key)
    assert ind.equals(ind.sort_values(key, kind="stable").reset_index(drop=True))
    assert not ind.duplicated(key).any()
    assert ind["n_students"].dtype == "Int64" and ind["suppressed"].dtype == bool


def test_empty_string_conventions_and_pooled_code(result):
    ind = result[0]
    for col in ("subject", "group_var", "group_value"):
        assert ind[col].notna().all()
    q = ind.loc[ind["indicator"].isin(["pct_homework_over_limit", "pct_sleep_sufficient"])]
    assert len(q) and (q["subject"] == "").all()
    whole = ind.loc[(ind["indicator"] == "mean_score") & (ind["group_var"] == "")]
    assert (whole["group_value"] == "").all()
    assert set(whole["county_code"]) == {"450100", "450107", "450110"}
    pooled = whole.loc[whole["county_code"] == "450100"]
    parts = whole.loc[whole["county_code"] != "450100"]
    for grade in (4, 8):
        assert (
            pooled.loc[pooled["grade"] == grade, "n_students"].item()
            == parts.loc[parts["grade"] == grade, "n_students"].sum()
        )
    gaps = ind.loc[ind["indicator"] == "gap_mean_score", "group_value"]
    assert set(gaps) == {"female-male", "urban-rural", "town-rural", "not_left_behind-left_behind",
                         "non_migrant-migrant", "Q4-Q1"}  # fmt: skip


def test_suppression_rule(result):
    ind = result[0]
    comp = ind.loc[ind["source"] == "computed"]
    small = (comp["n_students"] < 10) | (comp["n_schools"] < 3)
    gaps = comp["indicator"] == "gap_mean_score"
    assert (comp.loc[~gaps, "suppressed"] == small[~gaps]).all()
    # county 450110 has 2 schools per grade: everything there is suppressed
    assert comp.loc[comp["county_code"] == "450110", "suppressed"].all()
    assert not comp.loc[(comp["county_code"] == "450107") & (comp["group_var"] == "") & (comp["indicator"] == "mean_score"), "suppressed"].any()  # fmt: skip


def test_official_rows_sit_beside_computed(result):
    ind = result[0]
    sdr = ind.loc[(ind["indicator"] == "school_difference_rate") & (ind["county_code"] == "450107")
                  & (ind["grade"] == 4)]  # fmt: skip
    assert sorted(sdr["source"]) == ["computed", "official"]
    off = sdr.loc[sdr["source"] == "official"].iloc[0]
    assert off["estimate"] == 0.21 and off["group_var"] == "" and off["method"].endswith("p. 12")
    assert off["n_students"] == 600 and pd.isna(off["n_schools"]) and not off["suppressed"]
    # nation-scope benchmarks are not carried (evidence reads county_reports itself)
    assert (ind.loc[ind["source"] == "official", "indicator"] != "mean_score").all()


def test_duplicate_official_value_is_a_user_error():
    students, scores, schools = make_data()
    dup = pd.concat([REPORTS, REPORTS.iloc[[0]]], ignore_index=True)
    with pytest.raises(EqmError, match="出现多次"):
        compute(students, scores, schools, dup, MON, P)


def test_missing_column_is_a_user_error():
    students, scores, schools = make_data()
    with pytest.raises(EqmError, match="weight"):
        compute(students.drop(columns="weight"), scores, schools, None, MON, P)


def test_params_rejects_unknown_method_and_bad_values():
    with pytest.raises(EqmError):
        build_params(IndicatorsParams, {"icc_method": "icc2"}, "indicators")
    with pytest.raises(EqmError):
        build_params(IndicatorsParams, {"ci_z": -1}, "indicators")
    with pytest.raises(EqmError):
        build_params(IndicatorsParams, {"cv_thresholds": {"primary": 0.5}}, "indicators")
    params = stage_params(make_context(ROOT))
    assert params == IndicatorsParams()  # params.yaml holds the documented defaults


def test_ses_quartiles_weighted_with_ties():
    # one cell, weights 1,1,1,1,4 on ses 1..5: weight share below = 0, .125, .25, .375, .5
    # -> quartiles (0-based) 0, 0, 1, 1, 2 (hand); unweighted quintile-ish split would differ.
    # ses ties (two students at 2.0) share a quartile; NaN -> -1.
    f = pd.DataFrame({"year": 2022, "county_code": "450107", "grade": 4,
                      "ses": [1.0, 2.0, 3.0, 4.0, 5.0, 2.0, np.nan],
                      "weight": [1.0, 1.0, 1.0, 1.0, 4.0, 0.0, 1.0]})  # fmt: skip
    # the zero-weight row is not in the design
    assert ses_quartiles(f).tolist() == [0, 0, 1, 1, 2, -1, -1]
    g = f.iloc[:5].assign(weight=[1.0, 1.0, 1.0, 1.0, 4.0], ses=[1.0, 2.0, 2.0, 4.0, 5.0])
    assert ses_quartiles(g).tolist() == [0, 0, 0, 1, 2]


def test_questionnaire_thresholds():
    f = pd.DataFrame({"homework_minutes": [60.0, 61.0, 90.0, 91.0, np.nan],
                      "sleep_hours": [10.0, 9.99, 9.0, 8.5, 11.0],
                      "myopia": pd.array([True, False, None, True, False], dtype="boolean"),
                      "fitness_score": [60.0, 59.9, 120.0, np.nan, 0.0]})  # fmt: skip
    g4 = questionnaire_matrix(f, 4, P)[0]
    np.testing.assert_array_equal(g4[:, 0], [0, 100, 100, 100, np.nan])  # > 60 min (strict)
    np.testing.assert_array_equal(g4[:, 1], [100, 0, 0, 0, 100])  # >= 10 h
    np.testing.assert_array_equal(g4[:, 2], [100, 0, np.nan, 100, 0])
    np.testing.assert_array_equal(g4[:, 3], [100, 0, 100, np.nan, 0])  # >= 60
    g8 = questionnaire_matrix(f, 8, P)[0]
    np.testing.assert_array_equal(g8[:, 0], [0, 0, 0, 100, np.nan])  # > 90 min
    np.testing.assert_array_equal(g8[:, 1], [100, 100, 100, 0, 100])  # >= 9 h


def test_questionnaire_weighted_share_by_hand():
    # one county, 3 schools; grade 4 homework: weights 1,3 | 2,2 | 4 and minutes 70,30 | 61,60 | 90
    # over 60: weights 1 + 2 + 4 = 7 of 12 -> 58.3333 % (hand)
    st = pd.DataFrame({"year": 2022, "student_id": list("abcde"), "county_code": "450107",
                       "school_id": ["s1", "s1", "s2", "s2", "s3"], "grade": 4,
                       "weight": [1.0, 3.0, 2.0, 2.0, 4.0],
                       "homework_minutes": [70.0, 30.0, 61.0, 60.0, 90.0]})  # fmt: skip
    sc = pd.DataFrame({"year": 2022, "student_id": list("abcde"), "subject": "math",
                       "scale_score": [400.0, 500.0, 600.0, 450.0, 550.0]})  # fmt: skip
    empty = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    ind = compute(st, sc, empty, None, MON, P)[0].set_index(
        ["county_code", "indicator", "group_var"]
    )
    row = ind.loc[("450107", "pct_homework_over_limit", "")]
    assert row["estimate"] == pytest.approx(700 / 12, rel=1e-12)
    assert row["subject"] == "" and row["suppressed"]  # 5 students < 10
    # mean score: (400 + 1500 + 1200 + 900 + 2200)/12 = 516.6667 (hand)
    assert ind.loc[("450107", "mean_score", ""), "estimate"] == pytest.approx(6200 / 12, rel=1e-12)
    # jackknife by hand (school totals Y = 1900, 2100, 2200; W = 4 each): drop s1 -> 4300/8 = 537.5;
    # drop s2 -> 4100/8 = 512.5; drop s3 -> 4000/8 = 500;
    # V = 2/3·(20.8333² + 4.1667² + 16.6667²) = 486.111 -> SE = 22.0479
    se = np.sqrt(
        2 / 3 * ((537.5 - 6200 / 12) ** 2 + (512.5 - 6200 / 12) ** 2 + (500 - 6200 / 12) ** 2)
    )
    assert se == pytest.approx(22.0479, abs=1e-4)
    assert ind.loc[("450107", "mean_score", ""), "se"] == pytest.approx(se, rel=1e-12)


def test_given_level_wins_over_derived():
    st, sc, schools = make_data(n_sch=(3, 3))
    sc2 = sc.assign(level="IV")  # every student given level IV whatever the score
    ind = compute(st, sc2, schools, None, MON, P)[0]
    whole = ind.loc[(ind["group_var"] == "") & (ind["county_code"] == "450100")].set_index(
        ["grade", "indicator"]
    )
    assert whole.loc[(4, "pct_level_IV"), "estimate"] == pytest.approx(100.0)
    assert whole.loc[(4, "pct_level_I"), "estimate"] == pytest.approx(0.0)


def test_achievement_level_rules():
    est = pd.DataFrame({
        "county_code": ["a", "a", "a", "a", "b", "b", "b", "b"], "group_var": "",
        "indicator": ["mean_score", "pct_medium_or_above", "pct_good_or_above", "pct_level_IV"] * 2,
        "estimate": [480.0, 90.0, 50.0, 10.0, 479.99, 80.0, 49.9, 5.0],
        "ci_low": [470.0, 85.0, 45.0, 8.0, 375.0, 75.0, 45.0, 4.0],
        "ci_high": [590.0, 95.0, 55.0, 12.0, 481.0, 85.0, 55.0, 6.0],
    })  # fmt: skip
    cuts = (380.0, 480.0, 580.0)
    by_mean = achievement_levels(est, cuts, P).set_index("county_code")
    # mean exactly on the Ⅲ cut (480) is Ⅲ; 479.99 is Ⅱ; CI bounds map through the cuts
    assert by_mean["estimate"].to_dict() == {"a": 3.0, "b": 2.0}
    assert by_mean.loc["a", ["ci_low", "ci_high"]].tolist() == [2.0, 4.0]
    assert by_mean.loc["b", ["ci_low", "ci_high"]].tolist() == [1.0, 3.0]
    assert by_mean["se"].isna().all()
    share = IndicatorsParams(achievement_rule="share_good_or_above")
    by_share = achievement_levels(est, cuts, share).set_index("county_code")
    # a: 50% at Ⅲ+ (>= 50) -> Ⅲ; b: 49.9% at Ⅲ+ -> Ⅱ (80% at Ⅱ+)
    assert by_share["estimate"].to_dict() == {"a": 3.0, "b": 2.0}
    assert by_share.loc["b", ["ci_low", "ci_high"]].tolist() == [2.0, 3.0]


def test_p_value():
    # 1.96 SE from zero -> p = 0.049996, 3 SE -> 0.0026998 (normal table, R: 2*pnorm(-x)); 0 -> 1
    np.testing.assert_allclose(
        normal_p_value([1.96, 0.0, -3.0], [1.0, 1.0, 1.0]),
        [0.04999579029644087, 1.0, 0.0026997960632601866],
        rtol=1e-9,
    )


def test_official_rows_empty_input():
    assert official_rows(pd.DataFrame(columns=REPORTS.columns), 1.96).empty


@pytest.mark.slow
def test_run_writes_byte_stable_outputs(tmp_path):
    students, scores, schools = make_data()
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    vdir = tmp_path / "data" / "processed" / "validated"
    vdir.mkdir(parents=True)
    students.to_parquet(vdir / "students.parquet")
    scores.to_parquet(vdir / "scores.parquet")
    schools.to_parquet(vdir / "schools.parquet")
    REPORTS.to_parquet(vdir / "county_reports.parquet")
    stamp_existing(tmp_path, "validate")  # as if eqm ingest and eqm validate had written them
    ctx = make_context(tmp_path, quiet=True)
    outs = [ctx.paths.indicators, ctx.paths.resource_balance, ctx.paths.school_compliance,
            ctx.paths.indicators_summary]  # fmt: skip
    run(ctx)
    first = [p.read_bytes() for p in outs]
    run(ctx)
    assert [p.read_bytes() for p in outs] == first
    summary = json.loads(ctx.paths.indicators_summary.read_text(encoding="utf-8"))
    ind = pd.read_parquet(ctx.paths.indicators)
    assert summary["indicator_rows"] == len(ind)
    assert summary["indicator_rows_suppressed"] == int(ind["suppressed"].sum())
    assert summary["indicator_rows_official"] == 1
    rb = pd.read_parquet(ctx.paths.resource_balance)
    assert summary["resource_indicators_failing"] == int((~rb["passes"]).sum())


def test_run_without_inputs_names_the_missing_file(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(EqmError, match="students"):
        run(make_context(tmp_path, quiet=True))


def test_county_code_equal_to_city_code_is_rejected():
    students, scores, schools = make_data()
    with pytest.raises(EqmError, match="450100"):
        compute(students.assign(county_code="450100"), scores, schools, None, MON, P)


def test_no_scores_still_gives_questionnaire_and_resources():
    students, scores, schools = make_data()
    ind, rb, sc, summary = compute(students, scores.iloc[:0], schools, None, MON, P)
    assert set(ind["subject"]) == {""} and len(rb) and len(sc)
    assert summary["icc_cells"] == 0


def test_sd_score_rows():
    students, scores, schools = make_data(n_sch=(3, 3), m=20)
    ind = compute(students, scores, schools, None, MON, P)[0]
    sd = ind.loc[(ind["indicator"] == "sd_score") & (ind["group_var"] == "")]
    assert len(sd) == 2 * 3  # 2 grades x (2 counties + pooled)
    assert sd["method"].str.contains("weighted SD").all()
    # the generator draws scores with SD 100
    assert sd["estimate"].between(70, 130).all()


def test_no_usable_students_gives_empty_contract_table():
    students, scores, schools = make_data()
    ind, rb, _, summary = compute(students.assign(school_id=None), scores, schools, None, MON, P)
    assert ind.empty and list(ind.columns) == schemas.INDICATORS.names and len(rb) == 28
    assert summary["indicator_rows"] == 0


@pytest.mark.parametrize("bad", [0.0, -3.5, np.nan, np.inf, 1e308])
def test_weights_not_above_zero_are_refused(bad):
    """Validate sets aside a weight that is missing, <= 0 or not finite (rule weight_invalid);
    one reaching the core is refused, naming the column, instead of being left out (as 0 and NaN
    used to be) or entering the totals (as a negative or infinite one would)."""
    students, scores, schools = make_data()
    students.loc[5, "weight"] = bad
    with pytest.raises(EqmError, match=r"学生权重（weight）") as err:
        compute(students, scores, schools, None, MON, P)
    assert err.value.column == "weight" and "validated/students.parquet" in err.value.file
    assert "1 人" in err.value.message and "x.csv 第 7 行" in err.value.message  # source_row k + 1


def test_domain_estimates_rejects_non_positive_weights():
    from pipeline.indicators.scores import Grouping, domain_estimates

    g = [Grouping("", np.zeros(4, dtype=np.int64), ("",))]
    y = np.array([500.0, 510.0, 490.0, 505.0])[None, :, None]
    args = (np.array(["a"] * 4, object), np.array(["s1", "s1", "s2", "s3"], object))
    with pytest.raises(ValueError, match="weights > 0"):
        domain_estimates(*args, np.array([1.0, 2.0, -1.0, 1.0]), y, ("mean_score",), g, (),
                         "450100", P)  # fmt: skip


def test_a_score_on_a_cut_belongs_to_the_higher_level():
    """Cut scores 380/480/580 are the lower bounds of Ⅱ, Ⅲ, Ⅳ: a score equal to a cut is in the
    higher level. R: findInterval(c(379.99, 380, 479.99, 480, 579.99, 580, 900),
    c(380, 480, 580)) + 1 -> 1 2 2 3 3 4 4."""
    from pipeline.indicators.scores import score_matrix

    scores = [379.99, 380.0, 479.99, 480.0, 579.99, 580.0, 900.0]
    f = pd.DataFrame({"scale_score": scores, "lev": -1})
    out = score_matrix(f, [], (380.0, 480.0, 580.0))[0]
    level = out[:, 1:5].argmax(axis=1) + 1
    assert level.tolist() == [1, 2, 2, 3, 3, 4, 4]
    assert (out[:, 1:5].sum(axis=1) == 100.0).all()  # one level each, in percent
    np.testing.assert_array_equal(out[:, 5], [0, 100, 100, 100, 100, 100, 100])  # Ⅱ+
    np.testing.assert_array_equal(out[:, 6], [0, 0, 0, 100, 100, 100, 100])  # Ⅲ+
    # the same through the stage: one school per student level, weights 1 -> each level's share
    # by hand: Ⅰ 1/7, Ⅱ 2/7, Ⅲ 2/7, Ⅳ 2/7 (a ">" instead of ">=" would move 3 students down)
    st = pd.DataFrame({"year": 2022, "student_id": [f"c{i}" for i in range(7)],
                       "county_code": "450107", "school_id": [f"s{i % 3}" for i in range(7)],
                       "grade": 4, "weight": 1.0})  # fmt: skip
    sc = pd.DataFrame({"year": 2022, "student_id": st["student_id"], "subject": "math",
                       "scale_score": scores})  # fmt: skip
    empty = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    ind = compute(st, sc, empty, None, MON, P)[0].set_index(
        ["county_code", "indicator", "group_var"]
    )
    got = [ind.loc[("450107", f"pct_level_{k}", ""), "estimate"] for k in ("I", "II", "III", "IV")]
    np.testing.assert_allclose(got, [100 / 7, 200 / 7, 200 / 7, 200 / 7], rtol=1e-12)


def test_county_level_of_a_mean_on_each_cut():
    # mean_vs_cuts: a weighted mean of exactly 380 / 480 / 580 is level Ⅱ / Ⅲ / Ⅳ (lower bounds),
    # and CI bounds exactly on a cut map the same way (hand)
    est = pd.DataFrame({"county_code": ["a", "b", "c"], "group_var": "", "indicator": "mean_score",
                        "estimate": [380.0, 480.0, 580.0], "ci_low": [379.99, 380.0, 480.0],
                        "ci_high": [480.0, 579.99, 580.0]})  # fmt: skip
    got = achievement_levels(est, (380.0, 480.0, 580.0), P).set_index("county_code")
    assert got["estimate"].tolist() == [2.0, 3.0, 4.0]
    assert got["ci_low"].tolist() == [1.0, 2.0, 3.0]
    assert got["ci_high"].tolist() == [3.0, 3.0, 4.0]


def _one_county(rows: list[tuple[str, str, float]], **extra) -> pd.DataFrame:
    """Indicator rows of one county from (school, gender, score) triples, weights 1."""
    st = pd.DataFrame({"year": 2022, "student_id": [f"g{i}" for i in range(len(rows))],
                       "county_code": "450107", "school_id": [r[0] for r in rows],
                       "gender": [r[1] for r in rows], "grade": 4, "weight": 1.0})  # fmt: skip
    sc = pd.DataFrame({"year": 2022, "student_id": st["student_id"], "subject": "math",
                       "scale_score": [r[2] for r in rows]})  # fmt: skip
    empty = pd.DataFrame(
        {c: [] for c in ("year", "county_code", "school_id", "stage", "enrollment")}
    )
    return compute(st, sc, empty, None, MON, IndicatorsParams(**extra))[0]


def test_gap_is_suppressed_when_either_group_is_small():
    # 4 schools x 5 girls (20 students, 4 schools: shown) and 2 boys in each of 2 schools
    # (4 students, 2 schools: suppressed) -> the female − male gap is suppressed although the two
    # groups together hold 24 students in 4 schools
    rows = [(f"s{j}", "female", 500.0 + 7 * i + j) for j in range(4) for i in range(5)]
    rows += [(f"s{j}", "male", 480.0 + 9 * i) for j in range(2) for i in range(2)]
    ind = _one_county(rows).set_index(["county_code", "indicator", "group_var", "group_value"])
    assert not ind.loc[("450107", "mean_score", "gender", "female"), "suppressed"]
    assert ind.loc[("450107", "mean_score", "gender", "male"), "suppressed"]
    gap = ind.loc[("450107", "gap_mean_score", "gender", "female-male")]
    assert gap["suppressed"] and gap["n_students"] == 24 and gap["n_schools"] == 4


def test_gap_df_counts_the_schools_of_either_group():
    # girls in s0–s2, boys in s2–s4 (12 each per school): the gap's design df is the schools of
    # either group − 1 = 5 − 1 = 4 (R: degf of the county's students with a gender), not the
    # girls' 3 − 1; hand check of the interval with R's qt(pnorm(1.96), 4) = 2.77652739163883
    rng = np.random.default_rng(9)
    rows = [(f"s{j}", "female", float(rng.normal(520, 80))) for j in range(3) for _ in range(12)]
    rows += [(f"s{j}", "male", float(rng.normal(500, 80))) for j in range(2, 5) for _ in range(12)]
    ind = _one_county(rows).set_index(["county_code", "indicator", "group_var", "group_value"])
    gap = ind.loc[("450107", "gap_mean_score", "gender", "female-male")]
    assert gap["n_schools"] == 5
    assert gap["method"].endswith("with q from t(df = schools - strata = 4)")
    np.testing.assert_allclose(
        [gap["ci_low"], gap["ci_high"]],
        [
            gap["estimate"] - 2.77652739163883 * gap["se"],
            gap["estimate"] + 2.77652739163883 * gap["se"],
        ],
        rtol=1e-12,
    )
    girls = ind.loc[("450107", "mean_score", "gender", "female")]
    assert girls["method"].endswith("with q from t(df = schools - strata = 2)")


def test_a_given_level_one_is_kept():
    # a given level Ⅰ (code 0) wins over the level its score would give (600 -> Ⅳ)
    from pipeline.indicators.scores import score_matrix

    f = pd.DataFrame({"scale_score": [600.0, 600.0], "lev": [0, -1]})
    out = score_matrix(f, [], (380.0, 480.0, 580.0))[0]
    assert out[:, 1:5].argmax(axis=1).tolist() == [0, 3]


def test_summary_counts_shown_county_cells_at_or_above_the_threshold():
    from pipeline.indicators import make_summary

    ind = pd.DataFrame({
        "indicator": "school_difference_rate", "source": "computed",
        "county_code": ["450107", "450110", "450125", "450100"],
        "estimate": [0.15, 0.149, 0.30, 0.20], "ci_low": [0.16, 0.10, 0.2, 0.16],
        "ci_high": [0.20, 0.149, 0.4, 0.25], "suppressed": [False, False, True, False],
    })  # fmt: skip
    rb = pd.DataFrame({"passes": [True, False]})
    sc = pd.DataFrame({"passes": [True]})
    s = make_summary(ind, rb, sc, MON, P)
    # hand: the pooled row and the suppressed cell are not counted; 0.15 is "at or above"
    assert s["icc_cells"] == 2 and s["icc_cells_at_or_above_threshold"] == 1
    assert s["icc_verdicts"] == {"below": 1, "above": 1, "unsure": 0}


def test_official_rows_only_county_scope_and_their_normal_interval():
    reports = pd.concat(
        [REPORTS.assign(se=[0.02, 1.2]),
         REPORTS.iloc[[0]].assign(scope="nation", county_code=pd.NA, value=0.12)],
        ignore_index=True,
    )  # fmt: skip
    off = official_rows(reports, 1.96)
    assert off["indicator"].tolist() == ["school_difference_rate"]  # county scope only
    # no school count -> no design df: the normal 0.21 ± 1.96·0.02 = [0.1708, 0.2492] (hand)
    np.testing.assert_allclose([off["ci_low"].iloc[0], off["ci_high"].iloc[0]], [0.1708, 0.2492])
