"""Issue 15, validate: crafted bad inputs, each with its outcome (a finding with its severity, or a
quarantine row with rule, column, file, row and a Chinese message), and the reconciliation: every
row in is passed on or set aside, and nothing leaves the count unreported.

The frames come from ``test_validate.make_tables`` (a clean 2022 round of 西乡塘区 450107: 5 primary
+ 5 junior schools, 3 students each, weight 10, chinese + arts 500 / level III). Expected counts are
hand-derived from those frames; the comment beside each says how.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from test_validate import MON, PARAMS, make_tables, q_of, run_core

from pipeline import validate as v
from pipeline.config import Scale

OTHER = "450110"  # 武鸣区, registered in params.yaml


def findings(res, rule):
    return res.findings[res.findings["rule"] == rule]


def assert_reconciled(res, tables):
    """Rows in = passed on + set aside, per table and per source file; no row twice."""
    q = q_of_all(res)
    for t, df in tables.items():
        n = 0 if df is None else len(df)
        qt = q[q["table"] == t]
        assert len(res.validated[t]) + len(qt) == n, t
        if n:
            assert not qt.duplicated(["source_file", "source_row"]).any() or t == "scores"
    assert res.summary["reconciled"] is True
    for f in res.summary["files"].values():
        for counts in f["tables"].values():
            assert counts["rows_in"] == counts["passed"] + counts["quarantined"]


def q_of_all(res):
    return res.quarantine[res.quarantine["stage"] == "validate"]


def _append(tables, table, rows: pd.DataFrame):
    tables[table] = pd.concat([tables[table], rows], ignore_index=True)


def _students_of_school(tables, school, county, n, start_row, grade=4, prefix=None, **extra):
    """n new students (and their chinese + arts scores) of ``school`` in ``county``."""
    base = tables["students"].iloc[[0]]
    prefix = prefix or f"{school}-"
    rows = pd.concat([base] * n, ignore_index=True).assign(
        student_id=[f"{prefix}{i}" for i in range(n)], school_id=school, county_code=county,
        grade=grade, source_row=np.arange(start_row, start_row + n), **extra,
    )  # fmt: skip
    _append(tables, "students", rows)
    sc = pd.concat(
        [
            rows[["year", "student_id"]].assign(subject=s, scale_score=500.0, level="III")
            for s in ("chinese", "arts")
        ],
        ignore_index=True,
    ).assign(source_file="scores/scores.xlsx")
    sc["source_row"] = np.arange(start_row + 1000, start_row + 1000 + len(sc))
    _append(tables, "scores", sc)
    return rows


# ------------------------------------------------------------------------------------------------
# 1. Nothing leaves the count
# ------------------------------------------------------------------------------------------------


def test_an_empty_file_is_a_warning_and_shows_on_the_page():
    tables = make_tables()
    manifest = {
        "files": {
            "students/round.csv": {"table": "students", "rows_read": 30, "rows_kept": 30,
                                   "rows_quarantined": 0, "data_rows": 30},
            # the new flag, and an older manifest without it (data_rows 0), both read as empty
            "students/补报.csv": {"table": "students", "rows_read": 0, "rows_kept": 0,
                                 "rows_quarantined": 0, "data_rows": 0, "empty": True},
            "students/空表.csv": {"rows_read": 0, "rows_kept": 0, "rows_quarantined": 0, "data_rows": 0},
        }
    }  # fmt: skip
    res = run_core(tables, manifest=manifest)
    f = findings(res, "empty_file")
    assert sorted(f["severity"]) == ["warn", "warn"]
    assert any("students/补报.csv" in m for m in f["message"])
    assert any("students/空表.csv" in m and "没有数据行" in m for m in f["message"])
    assert not res.has_errors
    assert_reconciled(res, tables)
    html = v.render_pages(res, MON, manifest, 200)["validation_2022.html"]
    assert "students/补报.csv" in html and "空文件，没有数据行" in html
    assert "文件 students/空表.csv 没有数据行" in html  # the finding itself


def test_an_empty_file_that_leaves_its_table_empty_is_an_error():
    tables = make_tables()
    tables["county_reports"] = None  # the only county-report file had a header and no row
    manifest = {"files": {"county_reports/2022报告.xlsx": {"table": "county_reports", "rows_read": 0,
                                                        "rows_kept": 0, "rows_quarantined": 0,
                                                        "data_rows": 0, "empty": True}}}  # fmt: skip
    res = run_core(tables, manifest=manifest)
    f = findings(res, "empty_table")
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and res.has_errors
    assert "county_reports/2022报告.xlsx" in f["message"].iloc[0]
    assert "「区县监测报告汇总数据」没有任何数据行" in f["message"].iloc[0]
    assert findings(res, "empty_file").empty
    assert_reconciled(res, tables)


def test_a_county_not_in_params_that_vanishes_is_an_error_naming_the_key():
    tables = make_tables()
    # 10 grade-4 students of a county whose code params.yaml does not list: validate sets them aside
    # (county_unknown) and their 20 scores with them (cascade): 30 rows, all of the county (30 =
    # validate.stray_county_max_rows: not a stray typo)
    _students_of_school(tables, "X1", "450199", 10, start_row=100)
    res = run_core(tables)
    f = findings(res, "county_lost")
    assert len(f) == 1
    row = f.iloc[0]
    assert row["severity"] == "error" and row["county_code"] == "450199" and row["count"] == 30
    assert "450199" in row["message"] and "monitoring.counties" in row["message"]
    assert "学生数据 10 行" in row["message"]
    assert res.has_errors and res.summary["findings"]["error"] >= 1  # never「严重问题 0 项」
    # 450107 keeps all its rows: no finding on it, and the year is not lost
    assert findings(res, "year_lost").empty
    assert_reconciled(res, tables)
    html = v.render_pages(res, MON, None, 200)["validation_2022.html"]
    assert "区县代码 450199（params.yaml 未登记）的数据全部被隔离" in html
    assert "严重（须先处理）" in html


def test_a_county_name_ingest_could_not_resolve_is_counted_and_named():
    # ingest set aside 30 student rows whose county name it could not map (ingest.unknown_county);
    # their county_code is empty, the name sits in raw_values under the file's own header
    iq = pd.DataFrame(
        {
            "table": "students", "source_file": "students/横洲.csv", "source_row": np.arange(2, 32),
            "column": "所属区县", "rule": "ingest.unknown_county",
            "message": "区县横洲市无法对应到区县代码", "stage": "ingest", "county_code": None,
            "year": 2022,
            "raw_values": [json.dumps({"所属区县": "横洲市", "年级": "4"}, ensure_ascii=False)] * 30,
        }
    )  # fmt: skip
    manifest = {"files": {"students/横洲.csv": {"table": "students", "rows_read": 30, "rows_kept": 0,
                                               "rows_quarantined": 30, "data_rows": 30,
                                               "columns": {"所属区县": "county_name"}}}}  # fmt: skip
    res = run_core(make_tables(), iq=iq, manifest=manifest)
    f = findings(res, "county_lost")
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and f["count"].iloc[0] == 30
    msg = f["message"].iloc[0]
    assert "横洲市" in msg and "monitoring.county_aliases" in msg and "共 30 行" in msg
    assert res.has_errors


def test_a_few_rows_under_an_unknown_county_are_a_typo_not_a_lost_county():
    """2 students (6 rows with their scores) under 450199, fewer than
    validate.stray_county_max_rows (30): set aside and shown as a warning, the run goes on (found
    by review: 1–3 typo rows stopped the whole round)."""
    tables = make_tables()
    _students_of_school(tables, "X1", "450199", 2, start_row=100)
    res = run_core(tables)
    assert findings(res, "county_lost").empty and not res.has_errors
    f = findings(res, "stray_county_rows")
    assert len(f) == 1 and f["severity"].iloc[0] == "warn" and f["count"].iloc[0] == 6
    assert "450199" in f["message"].iloc[0] and "monitoring.counties" in f["message"].iloc[0]
    assert len(q_of(res, "students")) == 2  # the rows themselves are set aside, with reasons
    assert_reconciled(res, tables)


def test_a_county_that_loses_most_of_its_rows_is_an_error():
    tables = make_tables()
    for i in range(18):  # 18 students (weight -1) + their 36 scores = 54 of the county's 104 rows
        tables["students"].loc[i, "weight"] = -1.0
    res = run_core(tables)
    f = findings(res, "rows_mostly_lost")
    county = f[f["county_code"] == "450107"]
    assert len(county) == 1 and county["severity"].iloc[0] == "error"
    assert county["count"].iloc[0] == 54 and "validate.lost_share" in county["message"].iloc[0]
    # one tier per county x year: not also a quarantine_share finding
    assert findings(res, "quarantine_share").empty
    # per table x year: students 18/30 and scores 36/60 are both >= 50%
    per_table = f[f["county_code"].isna()]
    assert sorted(per_table["table"]) == ["scores", "students"]
    assert_reconciled(res, tables)


def test_a_year_whose_scores_are_all_set_aside_is_an_error():
    tables = make_tables()
    tables["scores"] = tables["scores"].assign(scale_score=9999.0)  # 60 rows out of range
    res = run_core(tables)
    f = findings(res, "year_lost")
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and f["year"].iloc[0] == 2022
    assert f["count"].iloc[0] == 60 and "学业成绩" in f["message"].iloc[0]
    assert "量尺分数超出" in f["message"].iloc[0]  # the cause, in Chinese
    assert_reconciled(res, tables)


# ------------------------------------------------------------------------------------------------
# 2. Implausible weights
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "caught"),
    [
        (505.0, True),  # 50.5 x the median 10 (weight_ratio_max 50)
        (500.0, False),  # exactly 50 x: "exceeds" is strict
        (0.19, True),  # 1 / 52.6 of the median: the symmetric bound (my choice)
        (0.2, False),  # exactly 1/50
    ],
)
def test_a_weight_far_from_its_median_is_set_aside(weight, caught):
    tables = make_tables()
    tables["students"].loc[0, "weight"] = weight
    res = run_core(tables)
    q = q_of(res, "students")
    if not caught:
        assert q.empty
        return
    assert len(q) == 1
    row = q.iloc[0]
    assert row["rule"] == "weight_implausible" and row["column"] == "weight"
    assert row["source_file"] == "students/round.csv" and row["source_row"] == 2
    assert f"{weight:g}" in row["message"] and "validate.weight_ratio_max" in row["message"]
    assert "中位数 10" in row["message"]  # the 15 grade-4 weights of 450107, median 10
    # the student's two scores go with him; no weight left can make a sum infinite
    assert set(q_of(res, "scores")["rule"]) == {"student_quarantined"}
    assert np.isfinite(res.validated["students"]["weight"].sum())
    assert_reconciled(res, tables)


@pytest.mark.parametrize("n_huge", [1, 15])
def test_an_impossible_weight_is_invalid_even_when_every_weight_is_it(n_huge):
    """1e308 is finite and > 0, but no student stands for more than 2e8 students (schemas: the
    weight column's max): set aside as weight_invalid, even when all 15 weights of a county ×
    grade are 1e308 and the median comparison sees a ratio of 1 (found by review)."""
    tables = make_tables()
    st = tables["students"]
    huge = st.index[(st["county_code"] == "450107") & (st["grade"] == 4)][:n_huge]
    assert len(huge) == n_huge
    st.loc[huge, "weight"] = 1e308
    res = run_core(tables)
    q = q_of(res, "students")
    assert sorted(q["source_row"]) == sorted(st.loc[huge, "source_row"])
    assert set(q["rule"]) == {"weight_invalid"} and set(q["column"]) == {"weight"}
    assert np.isfinite(res.validated["students"]["weight"].sum())
    assert_reconciled(res, tables)


def test_a_tiny_group_is_compared_with_the_year_and_grade_median():
    # 2 grade-4 students of 武鸣区 (weights 10 and 1e6): a median of 2 is no reference, so both
    # are compared with the 2022 grade-4 median over counties (17 weights, median 10)
    tables = make_tables()
    _students_of_school(tables, "W1", OTHER, 2, start_row=100)
    tables["students"].loc[tables["students"]["source_row"] == 101, "weight"] = 1e6
    res = run_core(tables)
    q = q_of(res, "students")
    assert list(q["source_row"]) == [101] and q["rule"].iloc[0] == "weight_implausible"
    assert "各区县合计" in q["message"].iloc[0]


# ------------------------------------------------------------------------------------------------
# 3. School vs county
# ------------------------------------------------------------------------------------------------


def test_a_student_whose_county_differs_from_his_school_is_set_aside():
    tables = make_tables()
    tables["students"].loc[0, "county_code"] = OTHER  # school P1 is 450107 in the schools table
    res = run_core(tables)
    q = q_of(res, "students")
    assert len(q) == 1
    row = q.iloc[0]
    assert row["rule"] == "school_county_mismatch" and row["column"] == "county_code"
    assert row["source_row"] == 2 and row["source_file"] == "students/round.csv"
    assert "P1" in row["message"] and "西乡塘区（450107）" in row["message"]
    assert OTHER in row["message"]
    assert set(q_of(res, "scores")["rule"]) == {"student_quarantined"}
    assert findings(res, "school_county_conflict").empty
    assert_reconciled(res, tables)


def test_a_whole_school_against_the_schools_table_is_a_finding_not_a_quarantine():
    tables = make_tables()
    st = tables["students"]
    tables["students"] = st.assign(
        county_code=np.where(st["school_id"] == "P2", OTHER, st["county_code"])
    )
    res = run_core(tables)
    f = findings(res, "school_county_conflict")
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and f["count"].iloc[0] == 3
    assert "P2" in f["message"].iloc[0] and "武鸣区（450110）" in f["message"].iloc[0]
    assert "school_county_mismatch" not in set(q_of(res, "students")["rule"])
    assert_reconciled(res, tables)


def test_a_school_under_two_counties_in_the_schools_table_is_a_finding():
    tables = make_tables()
    sch = tables["schools"]
    extra = sch.iloc[[2]].assign(stage="junior", county_code=OTHER, source_row=99)  # P3
    tables["schools"] = pd.concat([sch, extra], ignore_index=True)
    res = run_core(tables)
    f = findings(res, "school_county_conflict")
    assert len(f) == 1 and f["table"].iloc[0] == "schools" and f["severity"].iloc[0] == "error"
    assert "P3" in f["message"].iloc[0] and "第 99 行" in f["message"].iloc[0]
    assert_reconciled(res, tables)


def test_students_of_a_school_missing_from_the_schools_table_follow_their_majority():
    tables = make_tables()
    _students_of_school(tables, "Z1", "450107", 3, start_row=100, prefix="Za")
    _students_of_school(tables, "Z1", OTHER, 1, start_row=200, prefix="Zb")
    _students_of_school(tables, "Z2", "450107", 1, start_row=300, prefix="Zc")
    _students_of_school(tables, "Z2", OTHER, 1, start_row=400, prefix="Zd")
    res = run_core(tables)
    q = q_of(res, "students")
    assert list(q["source_row"]) == [200] and q["rule"].iloc[0] == "school_county_mismatch"
    assert "同校 3 名学生属于 西乡塘区（450107）" in q["message"].iloc[0]
    f = findings(res, "school_county_conflict")  # Z2: 1 vs 1, no majority
    assert len(f) == 1 and "Z2" in f["message"].iloc[0] and f["count"].iloc[0] == 2
    assert_reconciled(res, tables)


# ------------------------------------------------------------------------------------------------
# 4. Duplicates after the row rules
# ------------------------------------------------------------------------------------------------


def test_of_two_score_copies_the_valid_one_goes_on():
    tables = make_tables()
    sc = tables["scores"]
    bad = sc.iloc[[3]].assign(scale_score=9999.0, level=None, source_row=500)
    tables["scores"] = pd.concat([sc, bad], ignore_index=True)
    res = run_core(tables)
    q = q_of(res, "scores")
    assert list(q["source_row"]) == [500] and q["rule"].iloc[0] == "score_out_of_range"
    assert 5 in set(res.validated["scores"]["source_row"])  # the valid copy (row 5)
    assert_reconciled(res, tables)


def test_an_invalid_student_copy_does_not_take_the_valid_one_or_his_scores_down():
    tables = make_tables()
    st = tables["students"]
    tables["students"] = pd.concat(
        [st, st.iloc[[0]].assign(weight=-1.0, source_row=999)], ignore_index=True
    )
    res = run_core(tables)
    q = q_of(res, "students")
    assert list(q["source_row"]) == [999] and q["rule"].iloc[0] == "weight_invalid"
    assert q_of(res, "scores").empty  # a passing copy remains: no cascade
    assert_reconciled(res, tables)


def test_identical_copies_keep_one_and_warn():
    tables = make_tables()
    st = tables["students"]
    copies = pd.concat(
        [
            st.iloc[[4]].assign(source_row=999),  # same file, later row
            st.iloc[[4]].assign(source_file="students/补报.csv", source_row=7),  # another file
        ],
        ignore_index=True,
    )
    tables["students"] = pd.concat([st, copies], ignore_index=True)
    res = run_core(tables)
    q = q_of(res, "students").sort_values(["source_file", "source_row"])
    assert len(q) == 2 and set(q["rule"]) == {"duplicate_identical"}
    # the first in (file, row) order is kept: students/round.csv row 6
    assert 6 in set(res.validated["students"]["source_row"])
    assert all("已保留与本行完全相同的 students/round.csv 第 6 行" in m for m in q["message"])
    assert set(q["column"]) == {"year,student_id"}
    f = findings(res, "duplicate_identical")
    assert len(f) == 1 and f["severity"].iloc[0] == "warn" and f["count"].iloc[0] == 2
    assert q_of(res, "scores").empty  # the student is still there
    assert not res.has_errors
    assert_reconciled(res, tables)


def test_copies_that_differ_are_all_set_aside_even_when_two_agree():
    tables = make_tables()
    st = tables["students"]
    copies = pd.concat(
        [st.iloc[[4]].assign(source_row=998), st.iloc[[4]].assign(source_row=999, weight=12.0)],
        ignore_index=True,
    )
    tables["students"] = pd.concat([st, copies], ignore_index=True)
    res = run_core(tables)
    q = q_of(res, "students")
    assert sorted(q["source_row"]) == [6, 998, 999] and set(q["rule"]) == {"duplicate_student"}
    assert all("第 6 行、" in m and "第 999 行" in m for m in q["message"])
    assert findings(res, "duplicate_identical").empty
    assert set(q_of(res, "scores")["rule"]) == {"student_quarantined"}
    assert_reconciled(res, tables)


# ------------------------------------------------------------------------------------------------
# 5. Configuration vs data: 水平 against the cut scores
# ------------------------------------------------------------------------------------------------

# 25 grade-4 chinese rows whose levels follow cut scores 400 / 500 / 600 while params.yaml says
# 380 / 480 / 580: 8 rows at 390-397 marked I (config: II), 8 at 490-497 marked II (config: III),
# 8 at 590-597 marked III (config: IV), 1 at 650 marked IV (agrees): 24 of 25 disagree (96%)
SHIFTED = (
    [(390.0 + i, "I") for i in range(8)]
    + [(490.0 + i, "II") for i in range(8)]
    + [(590.0 + i, "III") for i in range(8)]
    + [(650.0, "IV")]
)


def _chinese_g4(tables, values):
    sc = tables["scores"]
    st = tables["students"]
    g4 = set(st.loc[st["grade"] == 4, "student_id"])
    idx = sc.index[(sc["subject"] == "chinese") & sc["student_id"].isin(g4)]
    assert len(idx) == len(values)
    sc = sc.copy()
    sc.loc[idx, "scale_score"] = [s for s, _ in values]
    sc.loc[idx, "level"] = [lv for _, lv in values]
    tables["scores"] = sc
    return idx


def test_levels_that_follow_other_cut_scores_give_one_error_not_hundreds_of_rows():
    tables = make_tables(n_per_school=5)  # 25 grade-4 students
    _chinese_g4(tables, SHIFTED)
    res = run_core(tables)
    f = findings(res, "cut_scores_mismatch")
    assert len(f) == 1
    row = f.iloc[0]
    assert row["severity"] == "error" and row["year"] == 2022 and row["grade"] == 4
    assert row["count"] == 24 and "96%" in row["message"]
    msg = row["message"]
    assert "monitoring.default_scale.cut_scores" in msg and '"2022/chinese/4"' in msg
    # the implied cut points: highest of the lower level, lowest of the upper level
    assert "Ⅰ级最高 397、Ⅱ级最低 490（现设 380）" in msg
    assert "Ⅱ级最高 497、Ⅲ级最低 590（现设 480）" in msg
    assert "Ⅲ级最高 597、Ⅳ级最低 650（现设 580）" in msg
    assert "scores/scores.xlsx" in msg
    assert q_of(res, "scores").empty  # not one row set aside for it
    assert res.has_errors
    assert_reconciled(res, tables)


def test_the_message_names_the_scale_override_when_there_is_one():
    mon = dataclasses.replace(
        MON, scales={"2022/chinese/4": Scale((380.0, 480.0, 580.0), (100.0, 900.0))}
    )
    tables = make_tables(n_per_school=5)
    _chinese_g4(tables, SHIFTED)
    res = v.validate_tables(tables, None, None, PARAMS, mon)
    msg = findings(res, "cut_scores_mismatch")["message"].iloc[0]
    assert 'monitoring.scales 下 "2022/chinese/4" 的 cut_scores' in msg


def test_a_few_wrong_levels_are_still_set_aside_row_by_row():
    tables = make_tables(n_per_school=5)
    values = [(500.0, "III")] * 20 + [(500.0, "IV")] * 5  # 5 of 25 = 20% disagree: typos
    idx = _chinese_g4(tables, values)
    res = run_core(tables)
    assert findings(res, "cut_scores_mismatch").empty
    q = q_of(res, "scores")
    wrong = set(tables["scores"].loc[idx[-5:], "source_row"])
    assert set(q["source_row"]) == wrong and set(q["rule"]) == {"level_inconsistent"}
    assert_reconciled(res, tables)


def test_a_small_group_is_never_judged_a_configuration_error():
    # 15 rows with a level (< cut_scores_min_rows 20), all shifted: still row by row
    tables = make_tables()
    _chinese_g4(tables, SHIFTED[:15])
    res = run_core(tables)
    assert findings(res, "cut_scores_mismatch").empty
    assert set(q_of(res, "scores")["rule"]) == {"level_inconsistent"}
