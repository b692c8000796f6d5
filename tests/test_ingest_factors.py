"""Related factors (issue 14), data contract: the teacher and principal questionnaires and the new
student questionnaire columns flow through ingest, validate and `eqm check` like the other tables.

Every office form below is written here as an office would send it (GBK CSV with Chinese headers
and answer words, an xlsx with a title row, SPSS with value labels). Expected values are read off
the cells by hand with the answer codes of the spec (非常不同意/完全不同意 1, 不同意/比较不同意 2,
同意/比较同意 3, 非常同意/完全同意 4; 从不/从未 1, 偶尔/很少 2, 有时 3, 经常/总是 4) and noted beside
them; pseudonyms are recomputed with hashlib (``_ingest_fixtures.h``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from _ingest_fixtures import (
    ID_NUMBERS,
    REPO,
    all_output_bytes,
    ctx,
    h,
    make_root,
    write_csv,
    write_xlsx,
)

from pipeline import ingest, schemas, validate
from pipeline.collect import check
from pipeline.config import MonitoringParams, build_params, load_params
from pipeline.errors import EqmError

_P = load_params(REPO)
MON = build_params(MonitoringParams, _P["monitoring"], "monitoring")
PARAMS = build_params(validate.ValidateParams, _P["validate"], "validate")

pytestmark = pytest.mark.usefixtures("ingest_salt")

SCHOOL_A, SCHOOL_B = "4501070011", "4501070012"  # the students' schools
NOWHERE_T, NOWHERE_P = "4501079999", "4501078888"  # schools no student or school row names

# --- student questionnaire (UTF-8 CSV): 10 grade-4 students, 5 per school ------------------------
STUDENT_HEADER = [
    "监测年份", "学生编号", "姓名", "区县", "学校编号", "年级", "学生权重", "是否参加学科类校外培训",
    "每周校外培训时间（小时）", "每天体育锻炼时间(分钟)", "课外阅读时间", "学习兴趣1", "学习兴趣_2",
    "学习兴趣第3题", "学习自信心1", "学习自信心2", "学习自信心3", "师生关系1", "校园欺凌1", "心理健康4",
]  # fmt: skip
STUDENT_ROWS = [
    ["2022", f"XS{k:04d}", f"学生{k}", "西乡塘区", SCHOOL_A if k < 5 else SCHOOL_B, "四年级", "10",
     "是" if k % 2 else "否", "3" if k % 2 else "0", "60", "30",
     "同意", "4", "非常不同意", "2", "比较同意", "", "完全同意", "从不", "经常"]
    for k in range(10)
]  # fmt: skip

# --- teacher questionnaire (GBK CSV, answer words) -------------------------------------------------
TEACHER_NAMES = ["黄丽娟", "韦志强", "陆敏华", "蒙飞燕", "农红梅"]
TEACHER_IDS = ["JS-0101", "JS-0102", "JS-0103", "JS-0201", "JS-0202"]
TEACHER_HEADER = [
    "监测年份", "教师编号", "教师姓名", "身份证号", "区县", "学校编号", "任教年级", "任教学科", "最高学历",
    "专业对口", "教龄（年）", "培训学时", "周课时数", "教学方式1", "教学方式2", "教学方式3", "工作负担1",
    "工作负担2", "工作负担3",
]  # fmt: skip
TEACHER_ROWS = [  # CSV lines 2, 3, 4 (the header is line 1)
    ["2022", TEACHER_IDS[0], TEACHER_NAMES[0], ID_NUMBERS[0], "西乡塘区", SCHOOL_A, "四年级", "数学",
     "大学本科", "是", "12", "80", "14", "经常", "有时", "4", "同意", "非常不同意", "2"],
    ["2022", TEACHER_IDS[1], TEACHER_NAMES[1], ID_NUMBERS[1], "西乡塘区", SCHOOL_A, "四年级", "语文",
     "硕士", "否", "3", "40", "16", "偶尔", "从不", "", "不同意", "很喜欢", "3"],  # 很喜欢: no answer
    ["2022", TEACHER_IDS[2], TEACHER_NAMES[2], ID_NUMBERS[2], "西乡塘区", NOWHERE_T, "四年级", "数学",
     "大专", "是", "25", "100", "12", "总是", "很少", "3", "完全同意", "比较同意", "1"],
]  # fmt: skip

# --- principal questionnaire (xlsx under a title row) --------------------------------------------
PRINCIPAL_NAMES = ["李校长", "谢校长", "覃校长"]
PRINCIPAL_HEADER = [
    "监测年份", "区县", "学校编号", "校长姓名", "身份证号", "课程开齐开足", "音体美教师是否配齐",
    "设施使用1", "功能室使用2", "设施使用_3", "家校合作1", "家校合作2", "家校合作3", "课后服务天数",
]  # fmt: skip
PRINCIPAL_ROWS = [  # Excel rows 3, 4, 5 (title in row 1, header in row 2)
    [2022, "西乡塘区", SCHOOL_A, PRINCIPAL_NAMES[0], ID_NUMBERS[3], "是", "否", "经常", "有时", 2,
     "偶尔", "从不", 4, 5],
    [2022, "西乡塘区", SCHOOL_B, PRINCIPAL_NAMES[1], ID_NUMBERS[0], "否", "是", 1, "从未", "总是",
     3, "有时", "很少", 3],
    [2022, "西乡塘区", NOWHERE_P, PRINCIPAL_NAMES[2], ID_NUMBERS[1], "是", "是", 4, 4, 4, 4, 4, 4, 7],
]  # fmt: skip


def _write_teachers_sav(path) -> None:
    """SPSS teacher file: short variable names, Chinese variable labels, value labels."""
    df = pd.DataFrame(
        {
            "year": [2022.0, 2022.0], "tid": TEACHER_IDS[3:], "xm": TEACHER_NAMES[3:],
            "sch": [SCHOOL_B, SCHOOL_B], "nj": [4.0, 4.0], "xk": [1.0, 2.0], "xl": [1.0, 2.0],
            "fs1": [2.0, 4.0], "fs2": [np.nan, 1.0], "gz1": [3.0, 4.0],
        }
    )  # fmt: skip
    often = {1.0: "从不", 2.0: "偶尔", 3.0: "有时", 4.0: "经常"}
    labels = "监测年份 教师编号 教师姓名 学校编号 任教年级 任教学科 最高学历 教学方式1 教学方式2 工作负担1"
    path.parent.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_sav(
        df,
        str(path),
        column_labels=labels.split(),
        variable_value_labels={
            "nj": {4.0: "四年级", 8.0: "八年级"},
            "xk": {1.0: "数学", 2.0: "语文"},
            "xl": {1.0: "研究生", 2.0: "本科", 3.0: "专科"},
            "fs1": often,
            "fs2": often,
        },
    )


def write_round(tmp_path, bad_answer: bool = True):
    root = make_root(tmp_path)
    raw = root / "data/raw"
    write_csv(raw / "students/学生问卷.csv", STUDENT_HEADER, STUDENT_ROWS)
    rows = [list(r) for r in TEACHER_ROWS]
    if not bad_answer:
        rows[1][17] = "同意"
    write_csv(raw / "teachers/教师问卷.csv", TEACHER_HEADER, rows, encoding="gbk")
    _write_teachers_sav(raw / "teachers/教师问卷2.sav")
    write_xlsx(
        raw / "principals/校长问卷.xlsx",
        PRINCIPAL_HEADER,
        PRINCIPAL_ROWS,
        titles=["2022年义务教育质量监测校长问卷汇总表"],
    )
    return root


@pytest.fixture
def ingested(tmp_path):
    root = write_round(tmp_path)
    return root, ingest.run(ctx(root))


# ------------------------------------------------------------------------------------------------
# Ingest
# ------------------------------------------------------------------------------------------------


def test_gbk_teacher_csv_with_answer_words(ingested):
    root, res = ingested
    m = res.manifest["files"]["teachers/教师问卷.csv"]
    counts = (m["rows_read"], m["rows_kept"], m["rows_quarantined"])
    assert m["encoding"] == "gbk" and counts == (3, 2, 1)
    t = res.tables["teachers"].set_index("source_file").loc["teachers/教师问卷.csv"]
    t = t.set_index("source_row")
    # line 2: 大学本科 -> bachelor, 是 -> True; 经常 4, 有时 3, "4"; 同意 3, 非常不同意 1, "2"
    r = t.loc[2]
    assert r["teacher_id"] == h(TEACHER_IDS[0])
    assert (r["county_code"], r["school_id"], r["grade"], r["subject"]) == (
        "450107", SCHOOL_A, 4, "math",
    )  # fmt: skip
    assert (r["education"], r["major_match"]) == ("bachelor", True)
    assert (r["years_teaching"], r["training_hours"], r["weekly_lessons"]) == (12.0, 80.0, 14.0)
    assert [r[f"method_{k}"] for k in (1, 2, 3)] == [4.0, 3.0, 4.0]
    assert [r[f"workload_{k}"] for k in (1, 2, 3)] == [3.0, 1.0, 2.0]
    # line 4: 大专 -> college; 总是 4, 很少 2, "3"; 完全同意 4, 比较同意 3, "1"
    r = t.loc[4]
    assert (r["education"], r["school_id"]) == ("college", NOWHERE_T)
    assert [r[f"method_{k}"] for k in (1, 2, 3)] == [4.0, 2.0, 3.0]
    assert [r[f"workload_{k}"] for k in (1, 2, 3)] == [4.0, 3.0, 1.0]
    assert str(t["method_1"].dtype) == "float64" and str(t["major_match"].dtype) == "boolean"
    assert "name" not in t.columns and "id_number" not in t.columns


def test_bad_answer_word_sets_the_row_aside_with_file_row_column_and_reason(ingested):
    _, res = ingested
    q = res.quarantine
    assert len(q) == 1
    r = q.iloc[0]
    assert (r["table"], r["source_file"], r["source_row"]) == (
        "teachers", "teachers/教师问卷.csv", 3,
    )  # fmt: skip
    assert (r["column"], r["rule"], r["stage"]) == ("工作负担2", "ingest.bad_answer", "ingest")
    # what is wrong (the cell and what is accepted) and what to do
    assert "工作负担2「很喜欢」不是可识别的作答" in r["message"]
    assert "1–4 的整数" in r["message"] and "非常不同意/不同意/同意/非常同意" in r["message"]
    assert "请按问卷的编码改正" in r["message"]
    raw = json.loads(r["raw_values"])
    assert raw["教师编号"] == h(TEACHER_IDS[1]) and raw["工作负担2"] == "很喜欢"
    assert not {"教师姓名", "身份证号"} & set(raw)
    assert r["rule"] in schemas.INGEST_RULES and r["rule"] in check.FIXES


def test_spss_teacher_file_with_value_labels(ingested):
    _, res = ingested
    m = res.manifest["files"]["teachers/教师问卷2.sav"]
    assert (m["format"], m["rows_read"], m["rows_kept"]) == ("sav", 2, 2)
    t = res.tables["teachers"]
    t = t[t["source_file"] == "teachers/教师问卷2.sav"].set_index("teacher_id")
    # case 1: 研究生 (1) -> postgraduate, 数学; 偶尔 (2), missing, 3 (no value label)
    r = t.loc[h(TEACHER_IDS[3])]
    assert (r["source_row"], r["school_id"], r["grade"], r["subject"]) == (1, SCHOOL_B, 4, "math")
    assert r["education"] == "postgraduate"
    assert (r["method_1"], r["workload_1"]) == (2.0, 3.0) and np.isnan(r["method_2"])
    assert pd.isna(r["county_code"])  # the file gives no county: it links through its school
    # case 2: 本科 (2) -> bachelor, 语文; 经常 (4), 从不 (1), 4
    r = t.loc[h(TEACHER_IDS[4])]
    assert (r["subject"], r["education"]) == ("chinese", "bachelor")
    assert (r["method_1"], r["method_2"], r["workload_1"]) == (4.0, 1.0, 4.0)


def test_principal_xlsx_under_a_title_row(ingested):
    _, res = ingested
    m = res.manifest["files"]["principals/校长问卷.xlsx"]
    assert (m["header_row"], m["rows_read"], m["rows_kept"]) == (2, 3, 3)
    p = res.tables["principals"].set_index("source_row")
    assert p.index.tolist() == [3, 4, 5]  # Excel row numbers
    # row 3: 是/否; 经常 4, 有时 3, 2; 偶尔 2, 从不 1, 4; 5 days
    r = p.loc[3]
    assert r["school_id"] == SCHOOL_A
    assert (r["curriculum_complete"], r["pe_art_staffed"]) == (True, False)
    assert [r[f"facility_use_{k}"] for k in (1, 2, 3)] == [4.0, 3.0, 2.0]
    assert [r[f"home_school_{k}"] for k in (1, 2, 3)] == [2.0, 1.0, 4.0]
    assert r["after_school_days"] == 5.0
    # row 4: 否/是; 1, 从未 1, 总是 4; 3, 有时 3, 很少 2; 3 days
    r = p.loc[4]
    assert (r["curriculum_complete"], r["pe_art_staffed"]) == (False, True)
    assert [r[f"facility_use_{k}"] for k in (1, 2, 3)] == [1.0, 1.0, 4.0]
    assert [r[f"home_school_{k}"] for k in (1, 2, 3)] == [3.0, 3.0, 2.0]
    assert list(res.tables["principals"].columns)[:4] == [
        "year", "county_code", "county_name", "school_id",
    ]  # fmt: skip


def test_student_questionnaire_columns(ingested):
    _, res = ingested
    st = res.tables["students"].set_index("source_row")
    assert len(st) == 10
    # line 3 = student 1 (odd): 是, 3 hours; 60 and 30 minutes; 同意 3, "4", 非常不同意 1;
    # 2, 比较同意 3, blank; 完全同意 4; 从不 1; 经常 4
    r = st.loc[3]
    assert (r["tutoring"], r["tutoring_hours"]) == (True, 3.0)
    assert (r["exercise_minutes"], r["reading_minutes"]) == (60.0, 30.0)
    assert [r[f"interest_{k}"] for k in (1, 2, 3)] == [3.0, 4.0, 1.0]
    assert [r["confidence_1"], r["confidence_2"]] == [2.0, 3.0] and np.isnan(r["confidence_3"])
    assert (r["relation_1"], r["bullying_1"], r["wellbeing_4"]) == (4.0, 1.0, 4.0)
    assert np.isnan(r["wellbeing_1"])  # a column the file does not have
    assert (st.loc[2, "tutoring"], st.loc[2, "tutoring_hours"]) == (False, 0.0)


def test_teacher_ids_are_hashed_with_the_rounds_salt(ingested):
    """Teacher and student ids: sha256(salt + 0x1F + id)[:16] with the one salt of the round."""
    _, res = ingested
    assert set(res.tables["teachers"]["teacher_id"]) == {
        h(i) for i in (TEACHER_IDS[0], TEACHER_IDS[2], TEACHER_IDS[3], TEACHER_IDS[4])
    }
    assert set(res.tables["students"]["student_id"]) == {h(f"XS{k:04d}") for k in range(10)}


def test_no_teacher_or_principal_pii_in_any_output(tmp_path):
    root = write_round(tmp_path)
    ingest.run(ctx(root))
    validate.run(ctx(root))  # writes the validated tables, quarantine, findings and pages
    blob = all_output_bytes(root)
    assert (root / "data/processed/validation/pages").is_dir()
    for secret in [*TEACHER_IDS, *TEACHER_NAMES, *PRINCIPAL_NAMES, *ID_NUMBERS[:4]]:
        assert secret.encode("utf-8") not in blob, secret
    manifest = (root / "data/processed/ingest_manifest.json").read_text(encoding="utf-8")
    assert "教师姓名" not in manifest and "校长姓名" not in manifest  # not even as a header


def test_teacher_id_like_a_number_is_set_aside_as_the_student_id_would_be(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS[:1])
    rows = [list(TEACHER_ROWS[0]), list(TEACHER_ROWS[2])]
    rows[1][1] = "4.50107E+17"  # Excel turned the id into a number: its last digits are lost
    write_csv(root / "data/raw/teachers/t.csv", TEACHER_HEADER, rows)
    res = ingest.run(ctx(root))
    q = res.quarantine
    assert q[["source_row", "column", "rule"]].values.tolist() == [
        [3, "教师编号", "ingest.bad_teacher_id"]
    ]
    msg = q.loc[0, "message"]
    assert "教师编号是科学计数法形式" in msg and "4.50107E+17" not in msg
    assert res.tables["teachers"]["teacher_id"].tolist() == [h(TEACHER_IDS[0])]


def test_questionnaires_alone_are_not_enough_to_run(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/teachers/t.csv", TEACHER_HEADER, TEACHER_ROWS[:1])
    with pytest.raises(EqmError, match="既没有学生数据"):
        ingest.run(ctx(root))


# ------------------------------------------------------------------------------------------------
# Validate
# ------------------------------------------------------------------------------------------------


def test_validate_keeps_unlinked_questionnaires_and_warns(tmp_path):
    root = write_round(tmp_path)
    c = ctx(root)
    ingest.run(c)
    result = validate.run(c)
    f = result.findings
    un = f[f["rule"] == "unlinked_questionnaire"].set_index("table")
    assert sorted(un.index) == ["principals", "teachers"]
    assert set(un["severity"]) == {"warn"}  # params.yaml validate.severity
    # one teacher (CSV line 4, school 4501079999) and one principal (row 5, 4501078888)
    assert un.loc["teachers", "count"] == 1 and un.loc["principals", "count"] == 1
    assert NOWHERE_T in un.loc["teachers", "message"]
    assert "teachers/教师问卷.csv 第 4 行" in un.loc["teachers", "message"]
    assert "principals/校长问卷.xlsx 第 5 行" in un.loc["principals", "message"]
    # kept: every ingested teacher and principal row is validated, the unlinked ones too
    vt = pd.read_parquet(c.paths.validated("teachers"))
    vp = pd.read_parquet(c.paths.validated("principals"))
    assert len(vt) == 4 and NOWHERE_T in set(vt["school_id"])
    assert len(vp) == 3 and NOWHERE_P in set(vp["school_id"])
    assert h(TEACHER_IDS[1]) not in set(vt["teacher_id"])  # set aside at ingest


def test_accounting_counts_the_questionnaires(tmp_path):
    root = write_round(tmp_path)
    c = ctx(root)
    res = ingest.run(c)
    for src, m in res.manifest["files"].items():
        assert m["rows_read"] == m["rows_kept"] + m["rows_quarantined"], src
    assert res.manifest["tables"]["teachers"] == 4 and res.manifest["tables"]["principals"] == 3
    s = validate.run(c).summary
    # teachers: 3 CSV + 2 SPSS rows read; 1 set aside at ingest, 4 in, 4 passed
    assert s["tables"]["teachers"] == {
        "rows_in": 4, "passed": 4, "quarantined": 0, "ingest_quarantined": 1, "rules": {},
    }  # fmt: skip
    assert s["tables"]["principals"]["rows_in"] == 3 and s["tables"]["principals"]["passed"] == 3
    assert s["reconciled"] and s["ingest_reconciled"]
    assert s["files"]["teachers/教师问卷.csv"]["ingest"]["table"] == "teachers"
    assert s["files"]["teachers/教师问卷.csv"]["tables"]["teachers"]["rows_in"] == 2
    assert s["files"]["principals/校长问卷.xlsx"]["tables"]["principals"]["reconciled"]


def _frames() -> dict[str, pd.DataFrame]:
    students = pd.DataFrame(
        {"year": [2022], "student_id": ["s1"], "county_code": ["450107"], "school_id": ["A"],
         "grade": [4], "weight": [10.0], "source_file": ["students/s.csv"], "source_row": [2]}
    )  # fmt: skip
    teachers = pd.DataFrame(
        {"year": 2022, "teacher_id": ["t1", "t1", "t2", "t3"], "school_id": ["A", "A", "A", " "],
         "grade": [4, 4, 4, 4], "subject": ["math", "chinese", "math", "math"],
         "method_1": [4.0, 4.0, 3.0, 2.0], "source_file": "teachers/t.csv",
         "source_row": [2, 3, 4, 5]}
    )  # fmt: skip
    principals = pd.DataFrame(
        {"year": 2022, "school_id": ["A", "A"], "after_school_days": [5.0, 5.0],
         "source_file": "principals/p.csv", "source_row": [2, 3]}
    )  # fmt: skip
    return {"students": students, "teachers": teachers, "principals": principals}


def test_questionnaire_duplicates_and_blank_school_go_through_validate_rules():
    res = validate.validate_tables(_frames(), None, None, PARAMS, MON)
    q = res.quarantine.set_index(["table", "source_row"])
    # teachers: t1 twice with different subjects -> both set aside (which is right is unknown);
    # t3's school id is blank -> missing_school_id; t2 goes on
    assert q.loc[("teachers", 2), "rule"] == "duplicate_teacher"
    assert q.loc[("teachers", 3), "rule"] == "duplicate_teacher"
    assert q.loc[("teachers", 5), "rule"] == "missing_school_id"
    assert res.validated["teachers"]["teacher_id"].tolist() == ["t2"]
    # principals: two identical rows for (2022, A) -> the second set aside, one finding
    assert q.loc[("principals", 3), "rule"] == "duplicate_identical"
    assert res.validated["principals"]["source_row"].tolist() == [2]
    dup = res.findings[res.findings["rule"] == "duplicate_identical"]
    assert dup["table"].tolist() == ["principals"]
    assert not (res.findings["rule"] == "unlinked_questionnaire").any()  # school A has students


def test_item_out_of_range_and_unknown_education_are_validate_rules():
    frames = _frames()
    frames["teachers"] = frames["teachers"].iloc[2:3].assign(method_1=[5.0], education=["phd"])
    res = validate.validate_tables(frames, None, None, PARAMS, MON)
    q = res.quarantine[res.quarantine["table"] == "teachers"]
    assert q["rule"].tolist() == ["invalid_code;out_of_range"]  # schema range 1–4, EDUCATION_LABELS
    assert set(q["column"].iloc[0].split(";")) == {"education", "method_1"}


# ------------------------------------------------------------------------------------------------
# eqm check, eqm templates
# ------------------------------------------------------------------------------------------------


def test_check_recognises_a_teacher_file_by_its_header(tmp_path):
    root = make_root(tmp_path)
    path = tmp_path / "西乡塘区教师问卷.csv"
    write_csv(path, TEACHER_HEADER, TEACHER_ROWS, encoding="gbk")
    (report,) = check.check_files(ctx(root), [path], out_dir=tmp_path / "checks")
    v = report.verdict
    assert (report.table_by, v.table) == ("header", "teachers")
    assert [(p.source_row, p.rule, p.headers) for p in v.problems] == [
        (3, "ingest.bad_answer", ("工作负担2",))
    ]
    assert "unlinked_questionnaire" in v.scope.skipped  # its schools are in other files
    assert not any(f["rule"] == "unlinked_questionnaire" for f in v.findings)
    summary = report.summary.read_text(encoding="utf-8")
    for secret in [*TEACHER_IDS[:3], *TEACHER_NAMES[:3], *ID_NUMBERS[:3]]:
        assert secret not in summary


def test_template_of_the_teacher_form_reads_back(tmp_path):
    from pipeline.collect import guide, workbooks

    wb = workbooks.template_workbook("teachers", {"450107": "西乡塘区"}, (100.0, 900.0))
    headers = [c.value for c in wb.worksheets[0][1]]
    assert headers[:3] == ["监测年份", "教师编号", "区县代码"] and "教学方式1" in headers
    assert not {"姓名", "教师姓名", "身份证号"} & set(headers)
    items = {c.header: c for c in guide.form_columns("teachers") if c.column.answers}
    item = items["工作负担2"]
    assert (item.kind, item.low, item.high) == ("whole", 1, 4)
    # one row typed into the template is read by ingest with no alias
    ws = wb.worksheets[0]
    row = {"监测年份": 2022, "教师编号": "JS-9", "学校编号": SCHOOL_A, "任教年级": "八年级",
           "任教学科": "英语", "最高学历": "研究生", "教学方式1": 2, "工作负担2": 4}  # fmt: skip
    ws.append([row.get(hd) for hd in headers])
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS[:1])
    path = root / "data/raw/teachers/template.xlsx"
    path.parent.mkdir(parents=True)
    wb.save(path)
    t = ingest.run(ctx(root)).tables["teachers"]
    assert t.loc[0, ["teacher_id", "grade", "subject", "education"]].tolist() == [
        h("JS-9"), 8, "english", "postgraduate",
    ]  # fmt: skip
    assert (t.loc[0, "method_1"], t.loc[0, "workload_2"]) == (2.0, 4.0)
