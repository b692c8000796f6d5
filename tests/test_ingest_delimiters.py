"""Delimited text other than comma CSV: Excel's "Unicode 文本" (UTF-16, tab) and "文本文件(制表符
分隔)" saved as .txt, semicolon CSV from a European-locale Excel, and the ``delimiter`` key of
sources.yaml. The same rows must give the same canonical tables whatever the separator."""

from __future__ import annotations

import pandas as pd
import pytest
from _ingest_fixtures import (
    STUDENT_HEADER,
    STUDENT_ROWS,
    ctx,
    make_root,
    minimal_schools,
    write_csv,
)

from pipeline import ingest
from pipeline.errors import EqmError

pytestmark = pytest.mark.usefixtures("ingest_salt")


def _ingest(tmp_path, name, sub, **write):
    root = make_root(tmp_path / sub)
    write_csv(root / "data/raw/students" / name, STUDENT_HEADER, STUDENT_ROWS, **write)
    minimal_schools(root)
    return ingest.run(ctx(root))


def _canonical(res, table):
    return res.tables[table].drop(columns="source_file").reset_index(drop=True)


@pytest.fixture
def comma(tmp_path):
    return _ingest(tmp_path, "s.csv", "comma", encoding="gbk")


@pytest.mark.parametrize(
    ("name", "write", "encoding", "delimiter"),
    [
        # Excel 另存为「Unicode 文本」: UTF-16 LE with BOM, tab-separated, CRLF, a title line
        ("s.txt", dict(encoding="utf-16", delimiter="\t", lineterminator="\r\n",
                       title="2020年学生名单"), "utf-16", "tab"),
        # Excel 另存为「文本文件(制表符分隔)」on a Chinese Windows: GBK, tab
        ("s.tsv", dict(encoding="gbk", delimiter="\t"), "gbk", "tab"),
        # Excel with a European list separator: semicolon
        ("s.csv", dict(encoding="utf-8", delimiter=";"), "utf-8", "semicolon"),
        ("s.csv", dict(encoding="utf-8", delimiter="|"), "utf-8", "pipe"),
    ],
)  # fmt: skip
def test_same_rows_same_tables_whatever_the_separator(tmp_path, comma, name, write, encoding,
                                                       delimiter):  # fmt: skip
    res = _ingest(tmp_path, name, "other", **write)
    shift = 1 if "title" in write else 0  # the title line moves every row down by one
    for table in ("students", "scores"):
        got, want = _canonical(res, table), _canonical(comma, table)
        assert (got["source_row"] == want["source_row"] + shift).all()  # rows traced to the file
        pd.testing.assert_frame_equal(
            got.drop(columns="source_row"), want.drop(columns="source_row")
        )
    info = res.manifest["files"][f"students/{name}"]
    assert (info["format"], info["encoding"], info["delimiter"]) == ("csv", encoding, delimiter)
    assert info["header_row"] == 1 + shift
    assert comma.manifest["files"]["students/s.csv"]["delimiter"] == "comma"


def test_separator_inside_values_does_not_fool_detection():
    # a comma file whose remarks hold semicolons and pipes in some lines only
    text = "学校编号,学校名称,备注\n1,一小,甲;乙;丙\n2,二小,a|b\n3,三小,无\n"
    assert ingest.detect_delimiter(text, 20) == ","
    # a semicolon file whose names hold commas
    text = "学校编号;学校名称\n1;一小,分校\n2;二小\n3;三小\n"
    assert ingest.detect_delimiter(text, 20) == ";"


def test_detection_ignores_title_lines_and_defaults_to_comma():
    text = "2022年南宁市义务教育质量监测学生名单\n\n年份\t学校\t分数\n2022\t一小\t500\n"
    assert ingest.detect_delimiter(text, 20) == "\t"
    assert ingest.detect_delimiter("分数\n500\n510\n", 20) == ","  # one column: nothing to split
    assert ingest.detect_delimiter("a,b;c\n", 20) == ","  # tie (2 fields each way): comma first


def test_sources_yaml_delimiter_is_used_and_checked(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS)
    minimal_schools(root)
    sources = root / "data/raw/sources.yaml"
    sources.write_text("files:\n  students/s.csv: {delimiter: comma}\n", encoding="utf-8")
    assert len(ingest.run(ctx(root)).tables["students"]) == 3
    # forcing the wrong separator shows the override is used: no header can be found
    sources.write_text("files:\n  students/s.csv: {delimiter: tab}\n", encoding="utf-8")
    with pytest.raises(EqmError) as err:
        ingest.run(ctx(root))
    assert err.value.file == "students/s.csv"
    sources.write_text("files:\n  students/s.csv: {delimiter: space}\n", encoding="utf-8")
    with pytest.raises(EqmError, match="delimiter「space」") as err:
        ingest.run(ctx(root))
    assert "tab（制表符）" in str(err.value)


def test_extra_field_error_names_the_separator_and_line(tmp_path):
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS]
    rows[1] = [*rows[1], "多出的值"]  # line 3 of the file
    write_csv(root / "data/raw/students/s.txt", STUDENT_HEADER, rows, delimiter="\t")
    minimal_schools(root)
    with pytest.raises(EqmError, match="制表符") as err:
        ingest.run(ctx(root))
    assert (err.value.file, err.value.row) == ("students/s.txt", 3)


def test_decimal_commas_in_a_semicolon_file(tmp_path):
    # Excel in a decimal-comma locale writes 12,5 for 12.5 and separates fields with ';'
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS]
    w, sleep, score = (
        STUDENT_HEADER.index(c) for c in ("学生权重", "每天睡眠时间(小时)", "数学成绩")
    )
    rows[0][w], rows[0][sleep], rows[0][score] = "12,5", "9,5", "512,3"
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, rows, delimiter=";")
    minimal_schools(root)
    res = ingest.run(ctx(root))
    first = res.tables["students"].set_index("source_row").loc[2]
    assert (first["weight"], first["sleep_hours"]) == (12.5, 9.5)
    sc = res.tables["scores"]
    assert 512.3 in sc["scale_score"].tolist()
    assert res.quarantine.empty


def test_commas_in_numbers_of_a_comma_file(tmp_path):
    # "1,200" (a quoted thousands grouping) is 1200; "12,5" is not a number here and is set aside
    # with its reason instead of being read as 125
    got, fail = ingest._to_number(pd.Series(["1,200", "12,345.5", "12,5", "1,2,3", "7"]))
    assert got.tolist()[:2] == [1200.0, 12345.5] and got.tolist()[4] == 7.0
    assert fail.tolist() == [False, False, True, True, False]
    # semicolon file (decimal-comma locale): the comma is the decimal mark
    got, fail = ingest._to_number(
        pd.Series(["12,5", "1,200", ",5", "1.5", "1.200", "1.200,5", "-3.000"]), decimal_comma=True
    )
    assert got.tolist() == [12.5, 1.2, 0.5, 1.5, 1200.0, 1200.5, -3000.0] and not fail.any()
    # an Excel TRUE in a numeric column is not the number 1 (review): set aside
    got, fail = ingest._to_number(pd.Series([True, 3.5, "4"], dtype=object))
    assert fail.tolist() == [True, False, False] and got.tolist()[1:] == [3.5, 4.0]


def test_commas_in_title_lines_above_a_tab_table():
    # review case: three comma-holding title lines above a three-line tab table (comma used to win
    # the tie: 3 lines each way); the tab table has more columns in as many lines
    text = (
        "南宁市,2022年,学生名单\n填报单位：教育局,审核：张三\n说明,见附件,第1页\n"
        "年份\t学校\t学段\t分数\n2022\t一小\t小学\t500\n2022\t二小\t小学\t510\n"
    )
    assert ingest.detect_delimiter(text, 20) == "\t"
