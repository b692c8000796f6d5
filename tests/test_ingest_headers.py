"""Two-line headers as 教育事业统计 tables and Excel merged cells give them: a group line (教师数,
教学仪器设备值) over a detail line (高于规定学历教师数 …, (万元)), with the single-line titles
(学校名称 …) merged down both lines, so Excel stores them in the upper line only."""

from __future__ import annotations

import openpyxl
import pytest
from _ingest_fixtures import LOOKUPS, RESOURCE_HEADER, ctx, make_root, write_csv

from pipeline import ingest
from pipeline.errors import EqmError

# columns 10–13: the other 4 resource columns on one line (a schools file gives all 7 or none)
UPPER = ["年份", "区县代码", "学校编号", "学校名称", "学段", "在校生数", "教师数", None,
         "教学仪器设备值", *RESOURCE_HEADER[2:], "学生", "教师"]  # fmt: skip
LOWER = [None, None, None, None, None, None, "高于规定学历教师数", "县级及以上骨干教师数",
         "(万元)", None, None, None, None, "合计", "合计"]  # fmt: skip
DATA = [
    [2022, "450107", "4501070001", "一小", "小学", 600, 30, 5, 120, 4, 2700, 4500, 14, 600, 30],
    [2022, "450107", "4501070002", "二中", "初中", 900, 50, 8, 250.5, 6, 5200, 9100, 22, 900, 50],
]


pytestmark = pytest.mark.usefixtures("ingest_salt")


def _book(path, lines, merges=()):
    """An xlsx sheet of ``lines`` with the given merged ranges (Excel keeps the top-left text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    for line in lines:
        wb.active.append(line)
    for m in merges:
        wb.active.merge_cells(m)
    wb.save(path)


def _xlsx(path):
    # title merged across; single-line titles merged down both header lines; 教师数 over two
    merges = ["A1:O1", *(f"{c}2:{c}3" for c in "ABCDEFJKLM"), "G2:H2"]
    _book(path, [["2022年义务教育学校办学条件统计表"], UPPER, LOWER, *DATA], merges)


def _check(res, name):
    sch = res.tables["schools"].set_index("school_id")
    assert sch.loc["4501070001", "school_name"] == "一小"
    assert sch.loc["4501070001", "teachers_above_degree"] == 30
    assert sch.loc["4501070002", "backbone_teachers"] == 8
    # 教学仪器设备值 over (万元): the 万元 column, × 10,000 (hand: 250.5 万元 = 2,505,000 元)
    assert sch.loc["4501070002", "equipment_value_yuan"] == 2_505_000
    assert sch.loc["4501070001", "enrollment"] == 600
    # rows are numbered as the user sees them: title line 1, header lines 2–3, data from line 4
    assert sorted(sch["source_row"]) == [4, 5]
    info = res.manifest["files"][name]
    assert (info["header_row"], info["header_rows"]) == (2, 2)
    assert res.quarantine.empty


def test_two_line_excel_header_with_merged_cells(tmp_path):
    root = make_root(tmp_path)
    _xlsx(root / "data/raw/schools/办学条件.xlsx")
    _check(ingest.run(ctx(root)), "schools/办学条件.xlsx")


def test_two_line_csv_header(tmp_path):
    # the same table saved as CSV from Excel: merged cells become empty fields
    root = make_root(tmp_path)
    write_csv(root / "data/raw/schools/办学条件.csv", UPPER, [LOWER, *DATA], encoding="gbk",
              title="2022年义务教育学校办学条件统计表")  # fmt: skip
    _check(ingest.run(ctx(root)), "schools/办学条件.csv")


def test_repeated_detail_titles_stay_distinct():
    cells = ingest._merge_header_rows(UPPER, LOWER, "schools", LOOKUPS, {})
    assert cells[-2:] == ["学生合计", "教师合计"]  # unknown columns, named by group + detail
    assert cells[6:9] == ["高于规定学历教师数", "县级及以上骨干教师数", "教学仪器设备值(万元)"]
    assert cells[:2] == ["年份", "区县代码"]


def test_one_line_header_is_not_merged_with_the_first_data_row():
    header = ["学校编号", "学校名称", "学段", "学校类别"]
    text_row = ["甲校", "一小", "小学", "完全小学"]  # a first data row without any number
    number_row = ["4501070001", "一小", "小学", "完全小学"]
    for rows in ([header, text_row], [header, number_row], [["统计表"], header, number_row]):
        idx = ingest.find_header_row(rows, "schools", LOOKUPS, {}, "s.csv", 10)
        cells, top, low = ingest.header_block(rows, idx, "schools", LOOKUPS, {})
        assert (top, low) == (idx, idx) and cells == header


def test_sources_header_row_means_one_line(tmp_path):
    # an explicit header_row is taken as given: the line below is data, even if text-only
    root = make_root(tmp_path)
    _xlsx(root / "data/raw/schools/办学条件.xlsx")
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  schools/办学条件.xlsx: {header_row: 2}\n", encoding="utf-8"
    )
    # line 2 alone lacks the two teacher columns of line 3: had line 3 been joined, they would be
    # known; as given, the file misses exactly those two resource columns (an error naming them)
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    msg = str(info.value)
    assert (
        "缺少指标列" in msg
        and "「高于规定学历教师数」" in msg
        and "「县级及以上骨干教师数」" in msg
    )
    assert "「网络多媒体教室数」" not in msg.split("文件中的列")[0]


SCHOOL_HEAD = ["年份", "区县代码", "学校编号", "学校名称", "学段", "在校生数", "教学仪器设备值",
               *RESOURCE_HEADER]  # fmt: skip
SCHOOL_ROW = ["2022", "450107", "4501070001", "一小", "小学", "600", "120"]  # resources left empty


def test_units_line_under_the_header_is_joined_csv(tmp_path):
    # review repro: a units line (（人）, （万元）) under a one-line header; 120 万元 = 1,200,000 元
    root = make_root(tmp_path)
    units = ["", "", "", "", "", "（人）", "（万元）"]
    write_csv(root / "data/raw/schools/s.csv", SCHOOL_HEAD, [units, SCHOOL_ROW])
    res = ingest.run(ctx(root))
    sch = res.tables["schools"]
    assert sch["equipment_value_yuan"].tolist() == [1_200_000.0]
    assert sch["enrollment"].tolist() == [600.0] and sch["source_row"].tolist() == [3]
    assert res.manifest["files"]["schools/s.csv"]["header_rows"] == 2
    assert res.quarantine.empty


def test_units_line_under_the_header_is_joined_xlsx(tmp_path):
    # two title rows, the header on row 3, (万元) alone on row 4 under 教学仪器设备值
    root = make_root(tmp_path)
    lines = [["2022年办学条件"], ["填报单位：西乡塘区教育局"], SCHOOL_HEAD, [None] * 6 + ["(万元)"],
             [2022, "450107", "4501070001", "一小", "小学", 600, 120]]  # fmt: skip
    _book(root / "data/raw/schools/s.xlsx", lines)
    res = ingest.run(ctx(root))
    assert res.tables["schools"]["equipment_value_yuan"].tolist() == [1_200_000.0]
    assert res.tables["schools"]["source_row"].tolist() == [5]
    info = res.manifest["files"]["schools/s.xlsx"]
    assert (info["header_row"], info["header_rows"]) == (3, 2)


def test_units_line_detection():
    assert ingest._is_units_line(["", "（人）", "(万元)", None, "单位：元"])
    assert not ingest._is_units_line(["", "", None])  # nothing: not a units line
    assert not ingest._is_units_line(["（人）", "一小"])  # a data value among them


def test_score_group_over_subject_columns(tmp_path):
    # 成绩 merged over 数学 | 科学: the subject columns are 数学成绩, 科学成绩 (lower + upper)
    root = make_root(tmp_path)
    lines = [["监测年份", "学生编号", "区县", "学校编号", "年级", "学生权重", "成绩", None],
             [None] * 6 + ["数学", "科学"],
             [2020, "S1", "西乡塘区", "4501070001", 4, 12.5, 512.3, 498],
             [2020, "S2", "武鸣区", "4501100003", 4, 20, 401, 455.5]]  # fmt: skip
    _book(root / "data/raw/students/s.xlsx", lines, [*(f"{c}1:{c}2" for c in "ABCDEF"), "G1:H1"])
    (root / "data/raw/schools").mkdir(parents=True)
    write_csv(root / "data/raw/schools/s.csv", SCHOOL_HEAD, [SCHOOL_ROW])
    res = ingest.run(ctx(root))
    sc = res.tables["scores"]
    assert sorted(sc["subject"]) == ["math", "math", "science", "science"]
    assert sorted(sc["scale_score"]) == [401.0, 455.5, 498.0, 512.3]


def test_units_line_with_a_label_and_bare_units(tmp_path):
    # review repro: 单位 in the first column and bare unit words; 120 万元 = 1,200,000 元
    root = make_root(tmp_path)
    units = ["单位", "", "", "", "", "人", "万元"]
    write_csv(root / "data/raw/schools/s.csv", SCHOOL_HEAD, [units, SCHOOL_ROW])
    res = ingest.run(ctx(root))
    assert res.tables["schools"]["equipment_value_yuan"].tolist() == [1_200_000.0]
    assert res.quarantine.empty and res.manifest["files"]["schools/s.csv"]["header_rows"] == 2


def test_units_line_after_a_two_line_header(tmp_path):
    # review repro: title / group line / detail line / units line / data
    root = make_root(tmp_path)
    units = [None] * 5 + ["（人）", None, None, "（万元）"] + [None] * 6
    lines = [["办学条件统计表"], UPPER, LOWER, units, *DATA]
    merges = [*(f"{c}2:{c}3" for c in "ABCDEFJKLM"), "G2:H2"]
    _book(root / "data/raw/schools/s.xlsx", lines, merges)
    res = ingest.run(ctx(root))
    sch = res.tables["schools"].set_index("school_id")
    assert sch.loc["4501070002", "equipment_value_yuan"] == 2_505_000
    assert sorted(sch["source_row"]) == [5, 6]
    info = res.manifest["files"]["schools/s.xlsx"]
    assert (info["header_row"], info["header_rows"]) == (2, 3)
    assert res.quarantine.empty


def test_a_first_data_row_in_brackets_is_not_a_units_line():
    # a remark （无） or an accounting negative (1200) is data, not units
    assert not ingest._is_units_line(["（无）"])
    assert not ingest._is_units_line(["(1200)", "（人）"])
    assert ingest._is_units_line(["计量单位", "(㎡)", "％"])
