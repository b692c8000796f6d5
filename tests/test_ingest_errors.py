"""Ingest: every bad input of the issue gets a Chinese EqmError naming the file (never a traceback),
unparseable values go to the quarantine, and a failed run leaves the previous outputs untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _ingest_fixtures import (
    LOOKUPS,
    PARAMS,
    RAW_IDS,
    SALT,
    STUDENT_HEADER,
    STUDENT_ROWS,
    ctx,
    h,
    make_root,
    minimal_schools,
    write_csv,
    write_xlsx,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import ingest
from pipeline.errors import EqmError
from pipeline.ingest import FileHint, RawFile

pytestmark = pytest.mark.usefixtures("ingest_salt")


def run_error(root: Path) -> EqmError:
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    text = str(info.value)
    assert "Traceback" not in text
    return info.value


# ------------------------------------------------------------------------------------------------
# folder-level problems
# ------------------------------------------------------------------------------------------------


def test_missing_raw_dir(tmp_path):
    root = make_root(tmp_path)
    (root / "data" / "raw").rmdir()
    err = run_error(root)
    assert "找不到原始数据目录" in str(err) and "eqm demo-data" in str(err)


def test_empty_raw_dir(tmp_path):
    root = make_root(tmp_path)
    (root / "data/raw/students").mkdir()
    (root / "data/raw/README.txt").write_text("说明", encoding="utf-8")
    err = run_error(root)
    assert "没有任何数据文件" in str(err)


def test_no_students_schools_or_reports(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/scores/s.csv",
        ["年份", "学生编号", "学科", "成绩"],
        [["2020", "a", "数学", "1"]],
    )
    err = run_error(root)
    assert "students/" in str(err) and "schools/" in str(err)


@pytest.mark.parametrize("name", ["students/2020.xls", "students/notes.docx", "schools/data"])
def test_unknown_format(tmp_path, name):
    root = make_root(tmp_path)
    minimal_schools(root)
    p = root / "data/raw" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"whatever")
    err = run_error(root)
    assert err.file == name
    assert (
        ".csv" in str(err) and ".xlsx" in str(err) and ".sav" in str(err) and ".parquet" in str(err)
    )
    assert f"文件 {name}" in str(err)


def test_readme_hidden_and_lock_files_are_ignored(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    for name in (
        "schools/README.md",
        "schools/.DS_Store",
        "schools/~$s.xlsx",
        ".hidden/x.bin",
        "README.txt",
    ):
        p = root / "data/raw" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x00junk")
    res = ingest.run(ctx(root))
    assert list(res.manifest["files"]) == ["schools/schools.csv"]


# ------------------------------------------------------------------------------------------------
# unreadable / corrupt files
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("schools/bad.xlsx", b"PK\x03\x04 this is not really a zip", "Excel"),
        ("schools/bad.xlsx", b"", "Excel"),
        ("schools/bad.sav", b"$FL2 broken spss header", "SPSS"),
        ("schools/bad.parquet", b"PAR1 broken", "parquet"),
        ("schools/bad.csv", b"\x00\x01\x02\x03binary\x00", "二进制"),
        ("schools/bad.csv", b"", "空"),
        ("schools/bad.csv", "年份,学段\n".encode() + b"\xff\xfe\xfa\xfb\x81\x30" * 3, "编码"),
    ],
)
def test_corrupt_file(tmp_path, name, content, needle):
    root = make_root(tmp_path)
    p = root / "data/raw" / name
    p.parent.mkdir(parents=True)
    p.write_bytes(content)
    err = run_error(root)
    assert err.file == name and needle in str(err)
    assert err.hint  # says what to do


def test_wrong_encoding_in_sources_yaml(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS, encoding="gbk")
    minimal_schools(root)
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  students/s.csv: {encoding: utf-8}\n", encoding="utf-8"
    )
    err = run_error(root)
    assert err.file == "students/s.csv" and "utf-8" in str(err) and "encoding" in str(err)


def test_no_header_found(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/schools/s.csv", ["甲", "乙"], [["1", "2"]])
    err = run_error(root)
    assert err.file == "schools/s.csv" and "表头" in str(err) and "header_row" in str(err)


def test_unknown_sheet(tmp_path):
    root = make_root(tmp_path)
    write_xlsx(
        root / "data/raw/schools/s.xlsx",
        ["年份", "区县代码", "学校编号", "学段"],
        [[2020, "450107", "A", "小学"]],
    )
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  schools/s.xlsx: {sheet: 数据}\n", encoding="utf-8"
    )
    err = run_error(root)
    assert err.file == "schools/s.xlsx" and "「数据」" in str(err) and "Sheet1" in str(err)


def test_header_row_beyond_file(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root, "schools/s.csv")
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  schools/s.csv: {header_row: 40}\n", encoding="utf-8"
    )
    err = run_error(root)
    assert err.file == "schools/s.csv" and "40" in str(err)


# ------------------------------------------------------------------------------------------------
# sources.yaml shape
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("datasets: {}\n", "datasets"),
        ("- a\n- b\n", "顶层"),
        ("dataset: [1]\n", "dataset"),
        ("aliases: {学号: student_no}\n", "student_no"),
        ("files:\n  schools/s.csv: {header_row: 0}\n", "header_row"),
        ("files:\n  schools/s.csv: {header_row: '3'}\n", "header_row"),
        ("files:\n  schools/s.csv: {county_code: 4501}\n", "county_code"),
        ("files:\n  schools/s.csv: {encoding: big-five-ish}\n", "encoding"),
        ("files:\n  schools/s.csv: {year: 二〇二〇}\n", "year"),
        ("files:\n  schools/s.csv: {headerrow: 2}\n", "headerrow"),
        ("files:\n  schools/s.csv: {aliases: [a]}\n", "aliases"),
        ("files: [a]\n", "files"),
        ("files: {a: : b\n", "YAML"),
    ],
)
def test_sources_yaml_shape_errors(tmp_path, text, needle):
    root = make_root(tmp_path)
    minimal_schools(root, "schools/s.csv")
    (root / "data/raw/sources.yaml").write_text(text, encoding="utf-8")
    err = run_error(root)
    assert err.file == "data/raw/sources.yaml" and needle in str(err)


# ------------------------------------------------------------------------------------------------
# columns and values
# ------------------------------------------------------------------------------------------------


def test_missing_required_column_names_it_with_aliases(tmp_path):
    root = make_root(tmp_path)
    header = [c for c in STUDENT_HEADER if c != "学生权重"]
    rows = [
        [v for c, v in zip(STUDENT_HEADER, r, strict=True) if c != "学生权重"] for r in STUDENT_ROWS
    ]
    write_csv(root / "data/raw/students/s.csv", header, rows, encoding="gbk")
    minimal_schools(root)
    err = run_error(root)
    text = str(err)
    assert err.file == "students/s.csv" and err.column == "学生权重"
    assert (
        "「学生权重」（weight）" in text
        and "最终权重" in text
        and "权重" in text
        and "sources.yaml" in text
    )


def test_missing_county_column(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/schools/s.csv", ["年份", "学校编号", "学段"], [["2020", "A", "小学"]]
    )
    err = run_error(root)
    assert err.file == "schools/s.csv" and "区县代码" in str(err) and "county_name" in str(err)


def test_duplicate_column_meaning(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/schools/s.csv", ["年份", "区县代码", "学校编号", "学段", "学校代码"],
              [["2020", "450107", "A", "小学", "B"]])  # fmt: skip
    err = run_error(root)
    assert err.file == "schools/s.csv" and "学校编号" in str(err) and "学校代码" in str(err)


BAD_ROWS = [
    # (column, raw value, rule, message fragment) — each planted in its own row
    ("学生权重", "1,5x", "ingest.not_a_number", "不是数字"),
    ("性别", "未知", "ingest.unknown_code", "性别「未知」无法识别"),
    ("区县", "火星区", "ingest.unknown_county", "区县「火星区」无法对应到区县代码"),
    ("年级", "九年级", "ingest.unknown_code", "年级「九年级」无法识别"),
    ("数学水平", "Ⅴ", "ingest.unknown_code", "无法识别"),
    ("监测年份", "去年", "ingest.bad_year", "不是四位年份"),
]


def test_unparseable_values_are_quarantined(tmp_path):
    root = make_root(tmp_path)
    rows = [list(STUDENT_ROWS[0])]
    for i, (col, value, _, _) in enumerate(BAD_ROWS):
        r = list(STUDENT_ROWS[0])
        r[1] = f"Q{i}"
        r[STUDENT_HEADER.index(col)] = value
        rows.append(r)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, rows, encoding="gbk")
    minimal_schools(root)
    res = ingest.run(ctx(root))
    q = res.quarantine.set_index("source_row")
    assert len(q) == len(BAD_ROWS)
    for i, (col, value, rule, fragment) in enumerate(BAD_ROWS):
        row = 3 + i  # header line 1, good row line 2, bad rows from line 3 (hand count)
        assert (q.loc[row, "column"], q.loc[row, "rule"]) == (col, rule)
        assert fragment in q.loc[row, "message"] and value in q.loc[row, "message"]
        raw_values = json.loads(q.loc[row, "raw_values"])
        assert raw_values[col] == value and raw_values["学生编号"] == h(f"Q{i}")
        # a bad wide score cell sets aside only that score; the student row is kept
        table = "scores" if col == "数学水平" else "students"
        assert q.loc[row, "stage"] == "ingest" and q.loc[row, "table"] == table
    assert q.loc[3, "county_code"] == "450107" and q.loc[3, "year"] == 2020
    m = res.manifest["files"]["students/s.csv"]
    # hand count: 7 data rows, 5 set aside; 1 score cell set aside on its own → read 7 + 1
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (8, 2, 6)
    assert (m["data_rows"], m["data_rows_quarantined"], m["score_cells_quarantined"]) == (7, 5, 1)
    assert res.tables["students"]["student_id"].tolist() == [h(RAW_IDS[0]), h("Q4")]
    # quarantined students' wide scores do not leak into the scores table; Q4 keeps 科学 only
    sc = res.tables["scores"]
    assert set(sc["student_id"]) == {h(RAW_IDS[0]), h("Q4")}
    assert sc.loc[sc["student_id"] == h("Q4"), "subject"].tolist() == ["science"]


def test_unknown_subject_in_long_scores_quarantined(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/scores/s.csv", ["年份", "学生编号", "学科", "成绩"],
              [["2022", "A", "数学", "500"], ["2022", "A", "物理", "480"]])  # fmt: skip
    minimal_schools(root)
    res = ingest.run(ctx(root))
    q = res.quarantine
    assert q[["source_row", "column", "rule"]].values.tolist() == [
        [3, "学科", "ingest.unknown_code"]
    ]
    assert "学科「物理」无法识别" in q.loc[0, "message"]


def test_several_failures_in_one_row(tmp_path):
    root = make_root(tmp_path)
    r = list(STUDENT_ROWS[0])
    r[STUDENT_HEADER.index("性别")] = "X"
    r[STUDENT_HEADER.index("学生权重")] = "heavy"
    write_csv(
        root / "data/raw/students/s.csv", STUDENT_HEADER, [list(STUDENT_ROWS[1]), r], encoding="gbk"
    )
    minimal_schools(root)
    q = ingest.run(ctx(root)).quarantine
    assert len(q) == 1 and q.loc[0, "column"] == "性别"  # first failing column in schema order
    assert "性别「X」" in q.loc[0, "message"] and "学生权重「heavy」" in q.loc[0, "message"]


def test_whole_file_unknown_county_is_an_error(tmp_path):
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS]
    for r in rows:
        r[STUDENT_HEADER.index("区县")] = "某某县"
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, rows, encoding="gbk")
    minimal_schools(root)
    err = run_error(root)
    assert err.file == "students/s.csv" and err.column == "区县"
    assert "全部 3 行" in str(err) and "某某县" in str(err) and "county_aliases" in str(err)


def test_failed_run_leaves_previous_outputs_untouched(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS, encoding="gbk")
    minimal_schools(root)
    ingest.run(ctx(root))
    processed = root / "data/processed"
    # every file below data/processed/ (outputs and the generation stamp under .stamps/)
    before = {p.relative_to(processed): p.read_bytes() for p in processed.rglob("*") if p.is_file()}
    # a second good file is added (it would change the outputs) plus a bad one that fails the run
    write_csv(
        root / "data/raw/schools/more.csv",
        ["年份", "区县代码", "学校编号", "学段"],
        [["2021", "450110", "Z", "初中"]],
    )
    (root / "data/raw/schools/zz_broken.xlsx").write_bytes(b"not an xlsx")
    run_error(root)
    after = {p.relative_to(processed): p.read_bytes() for p in processed.rglob("*") if p.is_file()}
    assert after == before  # same files, same bytes, no temporary leftovers


# ------------------------------------------------------------------------------------------------
# property: rows_read = rows_kept + rows_quarantined for any mix of good and bad cells
# ------------------------------------------------------------------------------------------------

CELLS = {
    "年份": st.sampled_from(["2020", "2022", "2020年", "", "二〇二〇", "20x"]),
    "学生编号": st.text(alphabet="AB12", min_size=0, max_size=3),
    "区县": st.sampled_from(["西乡塘区", "横县", "武鸣", "", "火星区", "450107"]),
    "学校编号": st.sampled_from(["1", "2", ""]),
    "年级": st.sampled_from(["4", "八年级", "九年级", "", "4.0"]),
    "性别": st.sampled_from(["男", "2", "F", "?", ""]),
    "学生权重": st.sampled_from(["1.5", "0", "-2", "x", "", "1,000"]),
    "数学成绩": st.sampled_from(["500", "", "缺考", "9999"]),
    "数学水平": st.sampled_from(["Ⅰ", "良好", "V", ""]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(CELLS), min_size=1, max_size=25))
def test_property_rows_read_equals_kept_plus_quarantined(rows):
    df = pd.DataFrame(rows, dtype=object)
    raw = RawFile(
        "students",
        "students/p.csv",
        df,
        np.arange(2, len(df) + 2),
        FileHint(year=None),
        {"format": "csv"},
    )
    try:
        res = ingest.ingest_frames([raw], LOOKUPS, PARAMS, SALT)
    except EqmError as exc:
        # allowed only when every row fails, for a single reason, and the message names the file
        assert exc.file == "students/p.csv" and "全部" in str(exc)
        return
    m = res.manifest["files"]["students/p.csv"]
    assert m["rows_read"] == m["rows_kept"] + m["rows_quarantined"]
    assert m["rows_read"] == len(df) + m["score_cells_quarantined"]
    assert len(res.tables["students"]) == m["rows_kept"]
    assert len(res.quarantine) == m["rows_quarantined"]  # what validate reconciles per file
    q = res.quarantine
    row_q, cell_q = q[q["table"] == "students"], q[q["table"] == "scores"]
    assert len(cell_q) == m["score_cells_quarantined"]
    kept_rows = set(res.tables["students"]["source_row"])
    q_rows = set(row_q["source_row"])
    assert kept_rows.isdisjoint(q_rows) and kept_rows | q_rows == set(range(2, len(df) + 2))
    assert set(cell_q["source_row"]) <= kept_rows  # score cells only of kept students
    assert set(res.tables["scores"]["source_row"]) <= kept_rows
    # a set-aside score never reaches the scores table
    sc = res.tables["scores"]
    assert set(zip(cell_q["source_row"], ["math"] * len(cell_q), strict=True)).isdisjoint(
        zip(sc["source_row"], sc["subject"], strict=True)
    )


def test_csv_trailing_commas_are_accepted(tmp_path):
    root = make_root(tmp_path)
    p = root / "data/raw/schools/s.csv"
    p.parent.mkdir(parents=True)
    p.write_text(
        "年份,区县代码,学校编号,学段\n2020,450107,A,小学,,\n2020,450107,B,初中,\n", encoding="utf-8"
    )
    res = ingest.run(ctx(root))
    assert res.tables["schools"]["school_id"].tolist() == ["A", "B"]


def test_csv_value_without_header_names_the_line(tmp_path):
    root = make_root(tmp_path)
    p = root / "data/raw/schools/s.csv"
    p.parent.mkdir(parents=True)
    p.write_text(
        "2020年学校统计\n年份,区县代码,学校编号,学段\n2020,450107,A,小学\n2020,450107,B,初中,多余\n",
        encoding="utf-8",
    )
    err = run_error(root)
    assert err.file == "schools/s.csv" and err.row == 4 and "字段数" in str(err)
