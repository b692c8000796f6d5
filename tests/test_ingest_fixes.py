"""Ingest review fixes: a bad wide score cell sets aside only that score, full-width digits,
date-formatted year cells in Excel, 学校类型 = school_type, and duplicated headers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math

import openpyxl
import pytest
from _ingest_fixtures import (
    RAW_IDS,
    STUDENT_HEADER,
    STUDENT_ROWS,
    ctx,
    h,
    make_root,
    minimal_schools,
    write_csv,
)

from pipeline import ingest, schemas, validate
from pipeline.errors import EqmError

pytestmark = pytest.mark.usefixtures("ingest_salt")


def _students(root, rows, name="students/s.csv"):
    write_csv(root / "data/raw" / name, STUDENT_HEADER, rows, encoding="gbk")
    minimal_schools(root)
    return ingest.run(ctx(root))


# ------------------------------------------------------------------------------------------------
# 1. one bad wide score cell
# ------------------------------------------------------------------------------------------------


def test_bad_wide_score_cell_keeps_the_student_row(tmp_path):
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS]
    rows[0][STUDENT_HEADER.index("数学成绩")] = "abc"  # line 2 (header is line 1)
    res = _students(root, rows)
    st = res.tables["students"]
    assert sorted(st["student_id"]) == sorted(h(i) for i in RAW_IDS[:3])  # nobody lost
    first = st.set_index("source_row").loc[2]
    assert first["gender"] == "male" and first["weight"] == 12.5  # questionnaire data kept
    assert first["homework_minutes"] == 45
    sc = res.tables["scores"]
    mine = sc[sc["student_id"] == h(RAW_IDS[0])]
    assert mine["subject"].tolist() == ["science"]  # math set aside, science (498) kept
    assert mine["scale_score"].tolist() == [498.0]
    q = res.quarantine
    assert len(q) == 1
    r = q.iloc[0]
    assert (r["table"], r["source_file"], r["source_row"], r["column"], r["rule"]) == (
        "scores",
        "students/s.csv",
        2,
        "数学成绩",
        "ingest.not_a_number",
    )
    assert "「abc」" in r["message"] and r["stage"] == "ingest"
    assert (r["year"], r["county_code"]) == (2020, "450107")
    raw = json.loads(r["raw_values"])
    assert raw["数学成绩"] == "abc" and raw["学生编号"] == h(RAW_IDS[0])  # pseudonym, not raw id
    assert RAW_IDS[0] not in r["raw_values"]
    m = res.manifest["files"]["students/s.csv"]
    # hand count: 3 data rows all kept + 1 score cell set aside = 4 records read
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (4, 3, 1)
    assert (m["data_rows"], m["score_cells_quarantined"]) == (3, 1)
    # validate's reading of the manifest: read = kept + quarantined = this file's records
    check = validate._ingest_check(res.manifest, res.quarantine)
    assert check["mismatched"] == []
    assert check["files"]["students/s.csv"]["consistent"] is True


def test_bad_score_cell_of_a_quarantined_row_is_reported_with_the_row(tmp_path):
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS]
    rows[0][STUDENT_HEADER.index("数学成绩")] = "abc"
    rows[0][STUDENT_HEADER.index("性别")] = "未知"
    res = _students(root, rows)
    q = res.quarantine
    assert len(q) == 1 and q.iloc[0]["table"] == "students" and q.iloc[0]["column"] == "性别"
    assert "「未知」" in q.iloc[0]["message"] and "「abc」" in q.iloc[0]["message"]
    m = res.manifest["files"]["students/s.csv"]
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (3, 2, 1)
    assert validate._ingest_check(res.manifest, res.quarantine)["mismatched"] == []


# ------------------------------------------------------------------------------------------------
# 2. full-width digits
# ------------------------------------------------------------------------------------------------


def test_full_width_digits_in_numbers_years_and_codes(tmp_path):
    root = make_root(tmp_path)
    row = list(STUDENT_ROWS[0])
    row[STUDENT_HEADER.index("监测年份")] = "２０２２"
    row[STUDENT_HEADER.index("区县")] = "４５０１０７"
    row[STUDENT_HEADER.index("学生权重")] = "２６.５"
    row[STUDENT_HEADER.index("每天睡眠时间(小时)")] = "９．５"
    row[STUDENT_HEADER.index("年级")] = "４"
    res = _students(root, [row])
    assert len(res.quarantine) == 0
    s = res.tables["students"].iloc[0]
    assert (s["year"], s["county_code"], s["grade"]) == (2022, "450107", 4)
    assert (s["weight"], s["sleep_hours"]) == (26.5, 9.5)


# ------------------------------------------------------------------------------------------------
# 3. Excel date-formatted year cells
# ------------------------------------------------------------------------------------------------


def _schools_xlsx(root, years):
    path = root / "data/raw/schools/s.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["年份", "区县代码", "学校编号", "学段"])
    for i, (value, fmt) in enumerate(years):
        ws.append([value, "450107", f"S{i}", "小学"])
        if fmt:
            ws.cell(row=i + 2, column=1).number_format = fmt
    wb.save(path)
    return ingest.run(ctx(root))


def test_excel_date_year_cells(tmp_path):
    root = make_root(tmp_path)
    res = _schools_xlsx(
        root,
        [
            (dt.datetime(2022, 1, 1), "yyyy-mm-dd"),  # 1 January 2022 → 2022
            (2022, "yyyy-mm-dd"),  # number 2022 shown as a date: 1905-07-14 → serial 2022
            (2020, "yyyy/m/d"),  # 1905-07-12 → 2020
            (dt.datetime(2022, 3, 5), "yyyy-mm-dd"),  # a real date: cannot tell the year
        ],
    )
    sc = res.tables["schools"].sort_values("school_id")
    assert sc["year"].tolist() == [2022, 2022, 2020]
    q = res.quarantine
    assert len(q) == 1
    r = q.iloc[0]
    assert (r["source_row"], r["column"], r["rule"]) == (5, "年份", "ingest.bad_year")
    assert "日期格式" in r["message"] and "常规" in r["message"]


def test_date_year_helper_edges():
    # serial = days since 1899-12-30 (Excel's day 0): 2015 → 1905-07-07, 2100 → 1905-09-30
    assert ingest._date_year(dt.datetime(1905, 7, 7)) == 2015
    assert ingest._date_year(dt.datetime(1905, 9, 30)) == 2100
    assert math.isnan(ingest._date_year(dt.datetime(1905, 10, 1)))  # serial 2101: out of range
    assert ingest._date_year(dt.date(2020, 1, 1)) == 2020
    assert ingest._date_year(dt.datetime(2020, 1, 1, 8, 30)) != 2020  # a time of day: not a year


# ------------------------------------------------------------------------------------------------
# 4. 学校类型 is the school type (普通/特殊教育), not the stage
# ------------------------------------------------------------------------------------------------


def test_xuexiaoleixing_is_school_type():
    assert "学校类型" in schemas.SCHOOLS["school_type"].aliases
    assert "学校类型" not in schemas.SCHOOLS["stage"].aliases


def test_xuexiaoleixing_values_map_to_school_type(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/schools/s.csv",
        ["年份", "区县代码", "学校编号", "学段", "学校类型"],
        [
            ["2020", "450107", "A", "小学", "普通"],
            ["2020", "450107", "B", "初中", "特殊教育"],
            ["2020", "450107", "C", "小学", "特殊教育学校"],
            ["2020", "450107", "D", "小学", ""],  # blank → 普通 (regular) by default
        ],
    )
    res = ingest.run(ctx(root))
    sc = res.tables["schools"].sort_values("school_id")
    assert sc["stage"].tolist() == ["primary", "junior", "primary", "primary"]
    assert sc["school_type"].tolist() == ["regular", "special", "special", "regular"]


def test_xuexiaoleixing_alone_is_not_a_stage(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/schools/s.csv",
        ["年份", "区县代码", "学校编号", "学校类型"],
        [["2020", "450107", "A", "普通"]],
    )
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    assert info.value.file == "schools/s.csv" and "缺少必需的列「学段」" in str(info.value)


# ------------------------------------------------------------------------------------------------
# 5. duplicated headers
# ------------------------------------------------------------------------------------------------

DUP_HEADER = ["年份", "区县代码", "学校编号", "学段", "学校名称", "学段"]


@pytest.mark.parametrize("second", ["same", "empty"])
def test_duplicate_header_with_same_or_empty_values_is_ignored(tmp_path, caplog, second):
    root = make_root(tmp_path)
    rows = [["2020", "450107", "A", "小学", "一小"], ["2020", "450107", "B", "初中", "二中"]]
    rows = [r + ([r[3]] if second == "same" else [""]) for r in rows]
    write_csv(root / "data/raw/schools/s.csv", DUP_HEADER, rows)
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    assert res.tables["schools"]["stage"].tolist() == ["primary", "junior"]
    assert any("学段" in m and "两次" in m and "第 4 列和第 6 列" in m for m in caplog.messages)


def test_duplicate_header_with_different_values_csv(tmp_path):
    root = make_root(tmp_path)
    rows = [
        ["2020", "450107", "A", "小学", "一小", "小学"],
        ["2020", "450107", "B", "初中", "二中", "小学"],  # line 3 differs
    ]
    write_csv(root / "data/raw/schools/s.csv", DUP_HEADER, rows)
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    err = info.value
    assert err.file == "schools/s.csv" and err.row == 3 and err.column == "学段"
    assert "第 4 列和第 6 列" in str(err) and "「初中」与「小学」" in str(err)
    assert "删除" in (err.hint or "")


def test_duplicate_header_with_different_values_xlsx(tmp_path):
    root = make_root(tmp_path)
    path = root / "data/raw/students/s.xlsx"
    path.parent.mkdir(parents=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2020年学生数据"])
    ws.append([*STUDENT_HEADER, "性别"])  # 20 columns + a second 性别 in column U
    ws.append([*STUDENT_ROWS[0], "女"])  # Excel row 3: 男 vs 女
    wb.save(path)
    minimal_schools(root)
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    err = info.value
    # 性别 is the 8th header → column H; the copy is the 21st → column U (hand count)
    assert err.file == "students/s.xlsx" and err.row == 3
    assert "第 H 列和第 U 列" in str(err)
