"""Validate stage: every defect of issue 3 is caught with its rule; clean data passes untouched.

Expected values are hand-derived from the tiny frames built here (comments say how); nothing
depends on the demo generator.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import validate as v
from pipeline.config import MonitoringParams, Scale, build_params, make_context
from pipeline.errors import EqmError
from pipeline.generations import stamp_existing

REPO = Path(__file__).resolve().parents[1]
_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
MON = build_params(MonitoringParams, _PARAMS["monitoring"], "monitoring")
PARAMS = build_params(v.ValidateParams, _PARAMS["validate"], "validate")
COUNTY = "450107"


def make_tables(n_per_school: int = 3) -> dict[str, pd.DataFrame]:
    """A clean 2022 round: 5 primary + 5 junior schools, n students each, chinese + arts scores."""
    rows = []
    for grade, prefix in ((4, "P"), (8, "J")):
        for s in range(1, 6):
            for k in range(n_per_school):
                rows.append(
                    {"year": 2022, "student_id": f"{prefix}{s}-{k}", "county_code": COUNTY,
                     "county_name": "西乡塘区", "school_id": f"{prefix}{s}", "grade": grade,
                     "gender": "female" if k % 2 else "male", "urban_rural": "urban",
                     "weight": 10.0, "homework_minutes": 60.0, "sleep_hours": 9.5,
                     "fitness_score": 85.0}
                )  # fmt: skip
    students = pd.DataFrame(rows)
    students = students.assign(
        left_behind=pd.array([False] * len(students), dtype="boolean"),
        source_file="students/round.csv",
        source_row=np.arange(2, len(students) + 2, dtype="int64"),
    )
    scores = pd.concat(
        [
            students[["year", "student_id"]].assign(subject=subj, scale_score=500.0, level="III")
            for subj in ("chinese", "arts")
        ],
        ignore_index=True,
    )
    scores = scores.assign(
        source_file="scores/scores.xlsx", source_row=np.arange(2, len(scores) + 2, dtype="int64")
    )
    schools = pd.DataFrame(
        [
            {"year": 2022, "county_code": COUNTY, "school_id": f"{p}{s}", "school_name": f"学校{p}{s}",
             "stage": stage, "school_type": "regular", "enrollment": 300.0,
             **{q: 10.0 for q in v.schemas.RESOURCE_QUANTITIES}}
            for stage, p in (("primary", "P"), ("junior", "J")) for s in range(1, 6)
        ]
    ).assign(source_file="schools/stats.xlsx", source_row=np.arange(3, 13, dtype="int64"))  # fmt: skip
    reports = pd.DataFrame(
        {
            "year": 2022, "county_code": COUNTY, "grade": 4, "subject": "chinese",
            "indicator": list(v.PCT_LEVEL_INDICATORS), "group_var": None, "group_value": None,
            "scope": "county", "value": [10.0, 30.0, 40.0, 20.0],
            "source_file": "county_reports/r.csv", "source_row": [2, 3, 4, 5],
        }
    )  # fmt: skip
    problems = pd.DataFrame(
        {
            "problem_id": ["P-1"], "year": [2020], "county_code": [COUNTY], "rule_id": ["R1"],
            "indicator": ["mean_score"], "status": ["open"],
            "source_file": ["previous_problems/p.xlsx"], "source_row": [2],
        }
    )  # fmt: skip
    return {
        "students": students,
        "scores": scores,
        "schools": schools,
        "county_reports": reports,
        "previous_problems": problems,
    }


def run_core(tables, params=PARAMS, iq=None, manifest=None):
    return v.validate_tables(tables, iq, manifest, params, MON)


def q_of(res, table):
    q = res.quarantine
    return q[(q["table"] == table) & (q["stage"] == "validate")]


def rules_at(res, table, source_row) -> set[str]:
    q = q_of(res, table)
    hit = q[q["source_row"] == source_row]
    assert len(hit) == 1, (
        f"expected one quarantine row for {table} row {source_row}, got {len(hit)}"
    )
    return set(hit["rule"].iloc[0].split(";"))


# ------------------------------------------------------------------------------------------------


def test_clean_data_passes_untouched():
    tables = make_tables()
    before = {t: df.copy() for t, df in tables.items()}
    res = run_core(tables)
    assert res.quarantine.empty
    assert res.findings.empty, res.findings.to_dict("records")
    for t, df in tables.items():
        pd.testing.assert_frame_equal(res.validated[t], df)
        pd.testing.assert_frame_equal(df, before[t])  # input not mutated
    assert res.summary["status"] == "passed" and res.summary["reconciled"] is True


def _set(tables, table, row, **values):
    df = tables[table].copy()
    for col, val in values.items():
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype="object")
        df[col] = df[col].astype("object")
        df.loc[row, col] = val
        df[col] = df[col].infer_objects()
    tables[table] = df
    return int(df.loc[row, "source_row"])


# (table, row to break, new values, rule expected). All defects are planted in ONE round at
# distinct rows (scores of students 20-29, whose student rows stay clean) so the GX suite runs once.
ROW_DEFECTS = [
    ("students", 0, {"weight": -1.5}, "weight_invalid"),  # the demo's negative weight
    ("students", 1, {"weight": 0.0}, "weight_invalid"),  # weight must be > 0, strictly
    ("students", 2, {"weight": np.inf}, "weight_invalid"),
    ("students", 3, {"weight": np.nan}, "weight_invalid"),
    ("students", 4, {"school_id": None}, "missing_school_id"),  # the demo's student without school
    ("students", 5, {"school_id": "  "}, "missing_school_id"),
    ("students", 6, {"student_id": None}, "missing_student_id"),
    ("students", 7, {"grade": 5}, "grade_invalid"),
    ("students", 8, {"county_code": "450199"}, "county_unknown"),
    ("students", 9, {"county_code": None}, "county_unknown"),
    ("students", 10, {"homework_minutes": 600.5}, "homework_out_of_range"),  # range 0-600
    ("students", 11, {"homework_minutes": -1.0}, "homework_out_of_range"),
    ("students", 12, {"sleep_hours": 24.5}, "sleep_out_of_range"),  # range 0-24
    ("students", 13, {"fitness_score": 120.5}, "fitness_out_of_range"),  # range 0-120
    ("students", 14, {"year": 2014}, "out_of_range"),  # schema: 2015-2100
    ("students", 15, {"gender": "x"}, "invalid_code"),
    ("scores", 20, {"scale_score": 9999.0}, "score_out_of_range"),  # the demo's 9999
    ("scores", 21, {"scale_score": 99.0}, "score_out_of_range"),  # default plausible range 100-900
    ("scores", 22, {"scale_score": np.nan, "level": None}, "score_missing"),
    ("scores", 23, {"level": "IV"}, "level_inconsistent"),  # 500 lies in [480, 580) -> III, not IV
    ("scores", 24, {"level": "V"}, "invalid_code"),
    ("scores", 25, {"student_id": "nobody"}, "student_unknown"),
    ("scores", 26, {"subject": "physics"}, "invalid_code"),
    ("scores", 27, {"pv2": 9999.0}, "score_out_of_range"),  # plausible values are checked too
    ("schools", 0, {"sports_area_m2": -5.0}, "resource_negative"),
    ("schools", 1, {"enrollment": 0.0}, "enrollment_not_positive"),
    ("schools", 2, {"enrollment": np.nan}, "enrollment_not_positive"),
    ("schools", 3, {"stage": "nine_year"}, "invalid_code"),  # must have been split at ingest
    ("county_reports", 0, {"value": 120.0}, "pct_out_of_range"),
    ("county_reports", 1, {"scope": "planet"}, "invalid_code"),
    ("previous_problems", 0, {"problem_id": None}, "missing_value"),
]


@pytest.fixture(scope="module")
def defect_round():
    tables = make_tables()
    src = {}
    for table, row, values, _rule in ROW_DEFECTS:
        src[(table, row)] = _set(tables, table, row, **values)
    return tables, src, run_core(tables)


@pytest.mark.parametrize(("table", "row", "values", "rule"), ROW_DEFECTS)
def test_each_row_defect_is_caught_with_its_rule(defect_round, table, row, values, rule):
    tables, src, res = defect_round
    assert rule in rules_at(res, table, src[(table, row)])
    assert src[(table, row)] not in set(res.validated[table]["source_row"])


def test_defect_round_sets_aside_exactly_the_broken_rows(defect_round):
    tables, src, res = defect_round
    for table, df in tables.items():
        broken = {s for (t, _), s in src.items() if t == table}
        if table == "scores":
            # plus the cascade: 2 scores of each of the 16 broken students (rows 0-15), except the
            # student whose id was blanked (row 6): his scores become student_unknown instead
            sids = set(tables["students"].loc[0:15, "student_id"].dropna())
            cascade = set(df.loc[df["student_id"].isin(sids), "source_row"])
            unknown = set(df.loc[df["student_id"].eq("P3-0"), "source_row"])  # row 6 = P3-0
            broken |= cascade | unknown
            assert len(broken) == 8 + 2 * 16  # 8 planted + 2 x 16 students
        assert set(q_of(res, table)["source_row"]) == broken, table
        assert len(res.validated[table]) + len(q_of(res, table)) == len(df)


def test_level_boundaries_follow_the_cut_scores():
    # cut scores 380/480/580 are lower bounds of II/III/IV (params.yaml default_scale):
    # 480 -> III, 479.9 -> II, 580 -> IV, 379.9 -> I: all consistent, nothing set aside
    tables = make_tables()
    for i, (s, lv) in enumerate([(480.0, "III"), (479.9, "II"), (580.0, "IV"), (379.9, "I")]):
        _set(tables, "scores", i, scale_score=s, level=lv)
    assert q_of(run_core(tables), "scores").empty


def test_special_school_may_have_zero_enrollment():
    tables = make_tables()
    _set(tables, "schools", 0, school_type="special", enrollment=0.0)
    assert q_of(run_core(tables), "schools").empty


def test_duplicated_student_sets_aside_all_copies_and_cascades_to_scores():
    # two valid copies that differ (weight 10 vs 11): which is right cannot be known
    # (identical copies keep one: tests/test_bad_inputs_validate.py)
    tables = make_tables()
    st = tables["students"]
    dup = st.iloc[[0]].assign(source_row=999, weight=11.0)
    tables["students"] = pd.concat([st, dup], ignore_index=True)
    res = run_core(tables)
    qs = q_of(res, "students")
    assert sorted(qs["source_row"]) == [2, 999]  # both copies, not "keep first"
    assert set(qs["rule"]) == {"duplicate_student"}
    # the student had 2 scores (chinese, arts): both set aside by the cascade rule
    qsc = q_of(res, "scores")
    assert len(qsc) == 2 and set(qsc["rule"]) == {"student_quarantined"}
    assert len(res.validated["students"]) == 30 - 1  # 30 clean + 1 copy - 2 set aside


def test_cascade_from_an_invalid_student_row():
    tables = make_tables()
    _set(tables, "students", 4, weight=-3.0)
    res = run_core(tables)
    sid = tables["students"].loc[4, "student_id"]
    qsc = q_of(res, "scores")
    assert len(qsc) == 2 and set(qsc["rule"]) == {"student_quarantined"}
    assert sid not in set(res.validated["scores"]["student_id"])


def test_duplicate_score_sets_aside_all_copies():
    tables = make_tables()
    sc = tables["scores"]
    # a conflicting valid copy (510 vs 500, both level III)
    tables["scores"] = pd.concat(
        [sc, sc.iloc[[3]].assign(source_row=500, scale_score=510.0)], ignore_index=True
    )
    res = run_core(tables)
    q = q_of(res, "scores")
    assert sorted(q["source_row"]) == [5, 500] and set(q["rule"]) == {"duplicate_score"}


def test_a_row_breaking_several_rules_gives_one_quarantine_row_with_all_rules():
    tables = make_tables()
    src = _set(tables, "students", 2, weight=-1.0, homework_minutes=700.0, sleep_hours=30.0)
    res = run_core(tables)
    q = q_of(res, "students")
    assert len(q) == 1
    row = q.iloc[0]
    assert row["rule"] == "homework_out_of_range;sleep_out_of_range;weight_invalid"
    assert row["column"] == "homework_minutes;sleep_hours;weight"
    assert row["message"].count("；") == 2 and int(row["source_row"]) == src
    assert row["source_file"] == "students/round.csv" and row["stage"] == "validate"
    assert json.loads(row["raw_values"])["weight"] == -1.0
    # each rule counted once in the summary; one row quarantined
    s = res.summary["tables"]["students"]
    assert s["quarantined"] == 1
    assert s["rules"] == {"homework_out_of_range": 1, "sleep_out_of_range": 1, "weight_invalid": 1}
    assert res.summary["counties"][COUNTY]["students"]["weight_invalid"] == 1


def test_scale_override_per_year_subject_grade():
    mon = dataclasses.replace(
        MON, scales={"2022/chinese/4": Scale((200.0, 300.0, 400.0), (0.0, 450.0))}
    )
    tables = make_tables()
    res = v.validate_tables(tables, None, None, PARAMS, mon)
    # grade-4 chinese scores of 500 exceed the overridden range 0-450: 15 students x 1 subject
    q = q_of(res, "scores")
    assert len(q) == 15 and set(q["rule"]) == {"score_out_of_range"}


# ------------------------------------------------------------------------------------------------
# Table-level findings
# ------------------------------------------------------------------------------------------------


def findings(res, rule):
    return res.findings[res.findings["rule"] == rule]


def test_few_schools_warns():
    tables = make_tables()
    st = tables["students"]
    tables["students"] = st[st["school_id"] != "P5"].reset_index(drop=True)
    tables["scores"] = tables["scores"][
        tables["scores"]["student_id"].isin(tables["students"]["student_id"])
    ]
    f = findings(run_core(tables), "few_schools")
    assert len(f) == 1 and f["grade"].iloc[0] == 4 and f["count"].iloc[0] == 4
    assert f["severity"].iloc[0] == "warn"


def test_too_many_students_per_school():
    params = dataclasses.replace(PARAMS, max_students_per_school=2)  # 3 students per school
    f = findings(run_core(make_tables(), params), "too_many_students")
    assert sorted(f["count"]) == [5, 5]  # 5 schools in each grade
    # "more than": exactly the maximum is fine
    params = dataclasses.replace(PARAMS, max_students_per_school=3)
    assert findings(run_core(make_tables(), params), "too_many_students").empty


def test_grade_stage_mismatch():
    tables = make_tables()
    _set(tables, "students", 0, school_id="J1")  # a grade-4 student in a junior-only school
    f = findings(run_core(tables), "grade_stage_mismatch")
    assert len(f) == 1 and f["count"].iloc[0] == 1 and "J1" in f["message"].iloc[0]


def test_subject_outside_rotation():
    tables = make_tables()
    _set(tables, "scores", 0, subject="math")  # 2022 rotation: chinese, arts (+ english in grade 8)
    f = findings(run_core(tables), "subject_not_in_rotation")
    assert len(f) == 1 and f["count"].iloc[0] == 1 and "数学" in f["message"].iloc[0]


def test_quarantine_share_error_stops():
    tables = make_tables()
    for i in range(8):
        _set(tables, "students", i, weight=-1.0)
    res = run_core(tables)
    f = findings(res, "quarantine_share")
    # 2022 rows of the county: 30 students + 60 scores + 10 schools + 4 report rows = 104;
    # 8 students + their 16 scores set aside: 24 / 104 = 23.1% > 10%
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and f["count"].iloc[0] == 24
    assert res.has_errors and res.summary["status"] == "failed"


def test_quarantine_share_warn_between_thresholds():
    tables = make_tables()
    _set(
        tables, "students", 0, weight=-1.0
    )  # 1 student + 2 scores = 3 / 104 = 2.9%: between 2% and 10%, warn
    f = findings(run_core(tables), "quarantine_share")
    assert len(f) == 1 and f["severity"].iloc[0] == "warn"


def test_weight_sum_ratio():
    tables = make_tables()
    st = tables["students"]
    tables["students"] = st.assign(weight=np.where(st["school_id"] == "P1", 210.0, st["weight"]))
    # P1 weight sum 630 vs 30 elsewhere: ratio 21 > 20
    f = findings(run_core(tables), "weight_sum_ratio")
    assert len(f) == 1 and f["grade"].iloc[0] == 4


def test_level_percentages_must_sum_to_100():
    tables = make_tables()
    _set(tables, "county_reports", 3, value=21.0)  # 10 + 30 + 40 + 21 = 101: within 100 +- 1
    assert findings(run_core(tables), "level_pct_sum").empty
    _set(tables, "county_reports", 3, value=21.5)  # 101.5: outside
    res = run_core(tables)
    f = findings(res, "level_pct_sum")
    assert len(f) == 1 and f["severity"].iloc[0] == "error" and res.has_errors


def test_no_data_at_all_is_an_error():
    tables = {t: df.iloc[0:0] for t, df in make_tables().items()}
    res = run_core(tables)
    assert set(findings(res, "no_achievement_data")["severity"]) == {"error"}


def test_optional_tables_may_be_absent():
    tables = make_tables()
    tables["county_reports"] = None
    tables["previous_problems"] = None
    res = run_core(tables)
    assert res.validated["county_reports"].empty and res.quarantine.empty


def test_missing_required_column_is_a_user_error():
    tables = make_tables()
    tables["students"] = tables["students"].drop(columns="weight")
    with pytest.raises(EqmError, match="weight"):
        run_core(tables)


def test_ingest_quarantine_is_carried_and_counted():
    # ingest set aside student P9-9 (grade unreadable); it keeps the hashed id under the source
    # header (学籍号). His score row must be set aside as a cascade, not as an unknown student.
    iq = pd.DataFrame(
        {
            "table": ["students"], "source_file": ["students/round.csv"], "source_row": [40],
            "column": ["grade"], "rule": ["unparseable"], "message": ["年级无法识别"],
            "raw_values": [json.dumps({"学籍号": "P9-9", "年级": "九"}, ensure_ascii=False)],
            "stage": ["ingest"], "county_code": [COUNTY], "year": [2022],
        }
    )  # fmt: skip
    tables = make_tables()
    sc = tables["scores"]
    tables["scores"] = pd.concat(
        [sc, sc.iloc[[0]].assign(student_id="P9-9", source_row=777)], ignore_index=True
    )
    manifest = {
        "files": {"students/round.csv": {"rows_read": 31, "rows_kept": 30, "rows_quarantined": 1}}
    }
    res = run_core(tables, iq=iq, manifest=manifest)
    assert (res.quarantine["stage"] == "ingest").sum() == 1
    assert rules_at(res, "scores", 777) == {"student_quarantined"}
    assert res.summary["ingest_reconciled"] is True
    assert findings(res, "ingest_counts_mismatch").empty
    bad = {
        "files": {"students/round.csv": {"rows_read": 32, "rows_kept": 30, "rows_quarantined": 1}}
    }
    assert (
        len(findings(run_core(make_tables(), iq=iq, manifest=bad), "ingest_counts_mismatch")) == 1
    )


# ------------------------------------------------------------------------------------------------
# The shell: files, pages, error stop, byte-stable reruns
# ------------------------------------------------------------------------------------------------


def _write_round(root: Path, tables, iq=None) -> None:
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    ctx = make_context(root)
    ctx.paths.processed.mkdir(parents=True)
    for t, df in tables.items():
        df.to_parquet(ctx.paths.ingested(t), index=False)
    if iq is not None:
        iq.to_parquet(ctx.paths.ingest_quarantine, index=False)
    manifest = {"dataset": {"synthetic": True, "label": "演示<数据>"}, "files": {}}
    ctx.paths.ingest_manifest.write_text(json.dumps(manifest), encoding="utf-8")
    stamp_existing(root, "ingest")  # as if eqm ingest had just written them


def _outputs(root: Path) -> dict[str, bytes]:
    base = root / "data" / "processed"
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and ("validat" in str(p.relative_to(base)))
    }


def test_run_writes_everything_and_is_byte_stable(tmp_path: Path):
    tables = make_tables()
    _set(tables, "students", 0, weight=-1.0, school_id="<script>alert(1)</script>")
    _write_round(tmp_path, tables)
    ctx = make_context(tmp_path)
    v.run(ctx)
    first = _outputs(tmp_path)
    assert {"validated/students.parquet", "validation/summary.json", "validation/findings.parquet",
            "validation/quarantine.parquet", "validation/pages/validation_2022.html",
            "validation/pages/validation_2020.html", "validation/pages/validation_all.html"} <= set(first)  # fmt: skip
    html = first["validation/pages/validation_2022.html"].decode("utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;" in html  # data is escaped
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "students/round.csv" in html and "学生权重" in html and "合成演示数据" in html
    assert "演示&lt;数据&gt;" in html
    v.run(make_context(tmp_path))
    assert _outputs(tmp_path) == first  # byte-identical rerun


def test_error_finding_writes_diagnostics_then_stops(tmp_path: Path):
    tables = make_tables()
    _write_round(tmp_path, tables)
    ctx = make_context(tmp_path)
    v.run(ctx)  # a clean run leaves validated tables behind
    assert ctx.paths.validated("students").is_file()
    bad = make_tables()
    _set(bad, "county_reports", 3, value=50.0)  # level percentages sum to 130
    bad["county_reports"].to_parquet(ctx.paths.ingested("county_reports"), index=False)
    stamp_existing(tmp_path, "ingest")
    with pytest.raises(EqmError, match="validation_all.html") as exc:
        v.run(make_context(tmp_path))
    assert "严重问题" in str(exc.value)
    assert not ctx.paths.validated_dir.exists()  # no stale tables for downstream
    f = pd.read_parquet(ctx.paths.validation_findings)
    assert "level_pct_sum" in set(f["rule"])
    summary = json.loads(ctx.paths.validation_summary.read_text(encoding="utf-8"))
    assert summary["status"] == "failed"
    assert "130" in (ctx.paths.validation_pages / "validation_2022.html").read_text(
        encoding="utf-8"
    )
