"""Issue 15 (ingest): hostile and careless files. Nothing leaves the count silently, every refusal
names the file, row and column in Chinese without a traceback, and no message shows a student id,
a name or an ID number.

Each test builds its bad input in tmp_path and checks (where it applies) the exit code or result,
where the message points, the reconciliation rows_read = rows_kept + rows_quarantined per file (with
rows_quarantined = that file's quarantine records, by hand count), and the absence of personal data
in every message, log line and quarantine record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from _ingest_fixtures import (
    ID_NUMBERS,
    NAMES,
    RAW_IDS,
    STUDENT_HEADER,
    STUDENT_ROWS,
    ctx,
    h,
    make_root,
    minimal_schools,
    write_csv,
)
from typer.testing import CliRunner

from pipeline import ingest
from pipeline.cli import app
from pipeline.errors import EqmError
from pipeline.ingest.formulas import unsaved_formula_cells
from pipeline.ingest.sources import load_sources

pytestmark = pytest.mark.usefixtures("ingest_salt")

PII = [*RAW_IDS, *NAMES, *ID_NUMBERS]
COL = {name: i for i, name in enumerate(STUDENT_HEADER)}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def assert_no_pii(*texts: str) -> None:
    for text in texts:
        for secret in PII:
            assert secret not in text, f"personal data {secret!r} shown in: {text[:200]}"
        # no 18-digit ID number of any kind (the fixtures' and those planted by a test)
        assert not re.search(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text), text[:200]


def reconcile(res) -> None:
    """Per file: rows_read = rows_kept + rows_quarantined = kept + this file's quarantine records."""
    q = res.quarantine
    for src, m in res.manifest["files"].items():
        records = int((q["source_file"] == src).sum())
        assert m["rows_read"] == m["rows_kept"] + m["rows_quarantined"], src
        assert m["rows_quarantined"] == records, (src, m["rows_quarantined"], records)


def everything_shown(res, caplog) -> str:
    """Every text a person may read from the run: log lines, quarantine messages and raw values,
    the manifest."""
    logs = "\n".join(r.getMessage() for r in caplog.records)
    q = res.quarantine
    return "\n".join(
        [logs, *q["message"], *q["raw_values"], json.dumps(res.manifest, ensure_ascii=False)]
    )


def run_error(root: Path) -> EqmError:
    with pytest.raises(EqmError) as info:
        ingest.run(ctx(root))
    assert "Traceback" not in str(info.value)
    return info.value


def cli(root: Path):
    result = CliRunner().invoke(app, ["ingest", "--root", str(root), "--quiet"])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in out
    return result.exit_code, out


def students_csv(root: Path, rows, name: str = "students/s.csv", **kw) -> Path:
    return write_csv(root / "data/raw" / name, STUDENT_HEADER, rows, **kw)


def students_xlsx(root: Path, rows, name: str = "students/s.xlsx") -> Path:
    path = root / "data/raw" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    wb.active.append(STUDENT_HEADER)
    for r in rows:
        wb.active.append(list(r))
    wb.save(path)
    return path


def xlsx_rows() -> list[list]:
    """STUDENT_ROWS as an office would type them into Excel: numbers as numbers."""
    out = []
    for r in STUDENT_ROWS:
        r = list(r)
        for k in ("监测年份", "学生权重", "数学成绩", "科学成绩"):
            v = r[COL[k]]
            r[COL[k]] = float(v) if v not in ("", None) else None
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------------
# 1. silent loss
# ------------------------------------------------------------------------------------------------


def test_header_only_csv_is_recorded_empty_with_a_warning(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    students_csv(root, [])  # the header line only: an empty template sent by mistake
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    m = res.manifest["files"]["students/s.csv"]
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"], m["empty"]) == (0, 0, 0, True)
    assert res.manifest["files"]["schools/schools.csv"]["empty"] is False
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("students/s.csv" in w and "没有任何数据行" in w for w in warned), warned
    reconcile(res)
    assert cli(root)[0] == 0  # recorded and warned, not a stop


def test_xlsx_with_title_and_header_but_only_blank_rows_is_empty(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    path = root / "data/raw/students/s.xlsx"
    path.parent.mkdir(parents=True)
    wb = openpyxl.Workbook()
    wb.active.append(["2020年学生数据"])
    wb.active.append(STUDENT_HEADER)
    wb.active.append([None] * len(STUDENT_HEADER))  # formatted but blank rows
    wb.active.append(["", " ", None])
    wb.save(path)
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    m = res.manifest["files"]["students/s.xlsx"]
    assert (m["rows_read"], m["empty"], m["header_row"]) == (0, True, 2)
    assert any("students/s.xlsx" in r.getMessage() for r in caplog.records)
    reconcile(res)


ERROR_VALUES = ["#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!"]


@pytest.mark.parametrize("err", ERROR_VALUES)
def test_each_excel_error_text_in_a_csv_score_column_sets_the_score_aside(tmp_path, err):
    root = make_root(tmp_path)
    minimal_schools(root)
    rows = [list(r) for r in STUDENT_ROWS]
    rows[1][COL["数学成绩"]] = err  # line 3: 李华华's math score
    students_csv(root, rows)
    res = ingest.run(ctx(root))
    q = res.quarantine
    assert len(q) == 1
    r = q.iloc[0]
    assert (r["table"], r["source_file"], r["source_row"], r["column"], r["rule"]) == (
        "scores", "students/s.csv", 3, "数学成绩", "ingest.error_value",
    )  # fmt: skip
    assert f"单元格为 Excel 错误值 {err}" in r["message"]
    # the student row is kept; only that score is set aside (never a silent NaN score)
    assert len(res.tables["students"]) == 3
    mine = res.tables["scores"][res.tables["scores"]["student_id"] == h(RAW_IDS[1])]
    assert mine["subject"].tolist() == []  # math set aside, no science score on that row
    m = res.manifest["files"]["students/s.csv"]
    # hand count: 3 data rows kept + 1 score cell = 4 records
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (4, 3, 1)
    assert m["error_value_cells"] == {"数学成绩": 1}
    reconcile(res)
    assert_no_pii(r["message"], r["raw_values"])


def test_excel_error_cells_in_xlsx_value_columns(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    rows = xlsx_rows()
    rows[0][COL["学生权重"]] = "#DIV/0!"  # Excel row 2: a required number → the row
    rows[1][COL["学校编号"]] = "#REF!"  # Excel row 3: a text column (was kept as text "#REF!")
    rows[2][COL["科学成绩"]] = "#N/A"  # Excel row 4: a wide score → that score only
    rows[2][COL["性别"]] = "#n/a"  # …and an optional code column of the same row → the row
    students_xlsx(root, rows)
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    q = res.quarantine.set_index("source_row")
    assert sorted(q.index) == [2, 3, 4]
    assert (q.loc[2, "column"], q.loc[2, "rule"]) == ("学生权重", "ingest.error_value")
    assert "学生权重：单元格为 Excel 错误值 #DIV/0!" in q.loc[2, "message"]
    assert (q.loc[3, "column"], q.loc[3, "rule"]) == ("学校编号", "ingest.error_value")
    # row 4 set aside for 性别; its bad science cell is reported with the row
    assert (q.loc[4, "table"], q.loc[4, "column"]) == ("students", "性别")
    assert "#N/A" in q.loc[4, "message"] and "科学成绩" in q.loc[4, "message"]
    assert res.tables["students"].empty
    m = res.manifest["files"]["students/s.xlsx"]
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (3, 0, 3)
    assert m["error_value_cells"] == {"学生权重": 1, "学校编号": 1, "性别": 1, "科学成绩": 1}
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "列「学校编号」有 1 个单元格为 Excel 错误值" in warned
    reconcile(res)
    assert_no_pii(everything_shown(res, caplog))


def _formula_book(path: Path, saved: dict[str, str] | None = None) -> Path:
    """Students sheet whose 科学成绩 column (H) and one weight are formulas written by a script
    (no saved result); ``saved`` puts a saved result into the given cells, as Excel would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "监测年份",
        "学生编号",
        "区县",
        "学校编号",
        "年级",
        "学生权重",
        "数学成绩",
        "科学成绩",
    ]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for i, sid in enumerate(RAW_IDS[:3]):
        row = i + 2
        weight = "=10+2.5" if row == 3 else 12.5
        ws.append([2020, sid, "西乡塘区", "4501070001", 4, weight, 500 + i, f"=G{row}-2"])
    wb.save(path)
    if saved:
        with zipfile.ZipFile(path) as z:
            items = {n: z.read(n) for n in z.namelist()}
        xml = items["xl/worksheets/sheet1.xml"].decode()
        for ref, value in saved.items():
            xml, k = re.subn(
                rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)<v\s*/>', rf"\1\2<v>{value}</v>", xml
            )
            assert k == 1, ref
        items["xl/worksheets/sheet1.xml"] = xml.encode()
        with zipfile.ZipFile(path, "w") as z:
            for n, b in items.items():
                z.writestr(n, b)
    return path


def test_formulas_without_saved_results_are_set_aside(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    # H2 got its result saved (as after opening in Excel); H3, H4 and the weight F3 did not
    _formula_book(root / "data/raw/students/s.xlsx", saved={"H2": "498"})
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    q = res.quarantine.sort_values(["source_row", "table"]).reset_index(drop=True)
    reason = "公式没有保存计算结果（请在 Excel 中打开并保存后再发送）"
    # row 3: the weight formula sets the student row aside (its science formula reported with it)
    # row 4: only the science score is set aside, the student row is kept
    assert q[["table", "source_row", "column", "rule"]].values.tolist() == [
        ["students", 3, "学生权重", "ingest.formula_no_value"],
        ["scores", 4, "科学成绩", "ingest.formula_no_value"],
    ]
    assert all(reason in msg for msg in q["message"])
    assert "科学成绩" in q.loc[0, "message"]
    sc = res.tables["scores"].set_index(["student_id", "subject"])["scale_score"]
    assert sc[(h(RAW_IDS[0]), "science")] == 498.0  # the saved result is read
    assert (h(RAW_IDS[2]), "science") not in sc.index and sc[(h(RAW_IDS[2]), "math")] == 502.0
    m = res.manifest["files"]["students/s.xlsx"]
    assert m["formula_cells_without_value"] == {"学生权重": 1, "科学成绩": 2}
    # hand count: 3 data rows, row 3 set aside, 2 kept + 1 science cell alone = 4 records
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (4, 2, 2)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("students/s.xlsx" in w and "列「科学成绩」有 2 个单元格" in w for w in warned)
    assert any("列「学生权重」有 1 个单元格" in w for w in warned)
    reconcile(res)
    assert_no_pii(everything_shown(res, caplog))


def test_unsaved_formula_scan_on_sheet_xml_variants():
    xml = (
        b'<sheetData><row r="1">'
        b'<c r="A1"><f>1+1</f><v>2</v></c>'  # saved result
        b'<c r="B1"><f>1+1</f><v/></c>'  # no result (self-closing)
        b'<c r="C1" t="str"><f>IF(1,"","x")</f><v></v></c>'  # a saved empty text
        b'<c r="D1"><f>1+1</f></c>'  # no <v> at all
        b'<x:c r="AA7" s="1"><x:f t="shared" si="0"/><x:v /></x:c>'  # prefixed, shared formula
        b'<c r="E1" t="n"><v>5</v></c>'  # a plain number
        b'<c r="F1"/>'  # an empty cell
        b"</row></sheetData>"
    )
    cells, unplaced = unsaved_formula_cells(xml)
    # hand: B1 → (0, 1), D1 → (0, 3), AA7 → (6, 26)
    assert sorted(cells) == [(0, 1), (0, 3), (6, 26)] and unplaced == 0
    assert unsaved_formula_cells(b'<c r="A1"><v>1</v></c>') == ([], 0)


# ------------------------------------------------------------------------------------------------
# 2. hostile or careless files
# ------------------------------------------------------------------------------------------------


def _text_with_stray_quote(rows=5) -> str:
    lines = [",".join(STUDENT_HEADER[:8])]
    for i in range(rows):
        county = '"西乡塘区' if i == 2 else "西乡塘区"  # the quote opens on line 4
        lines.append(f"2020,S{i:03d},张三,,{county},4501070001,4,男")
    return "\n".join(lines) + "\n"


def test_unmatched_quote_names_the_file_and_line(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    path = root / "data/raw/students/s.csv"
    path.parent.mkdir(parents=True)
    path.write_text(_text_with_stray_quote(), encoding="utf-8")
    err = run_error(root)
    assert (err.file, err.row) == ("students/s.csv", 4)
    assert "没有配对的英文双引号" in str(err) and "第 4 行" in str(err)
    code, out = cli(root)
    assert code == 1 and "students/s.csv" in out and "第 4 行" in out
    assert_no_pii(str(err))


def test_unmatched_quote_swallowing_more_than_the_csv_field_limit(tmp_path):
    # the quote opens within the header scan and swallows > 128 K characters (csv's field limit)
    root = make_root(tmp_path)
    minimal_schools(root)
    text = _text_with_stray_quote(rows=6000)
    path = root / "data/raw/students/big.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    err = run_error(root)
    assert (err.file, err.row) == ("students/big.csv", 4)


def test_two_stray_quotes_merge_lines_with_a_warning_and_true_row_numbers(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    header = ",".join(["监测年份", "学生编号", "姓名", "区县", "学校编号", "年级", "学生权重"])
    text = "\n".join(
        [
            header,
            "2020,S001,张三,西乡塘区,4501070001,4,12",
            '2020,S002,李四,"西乡塘区,4501070001,4,12',  # line 3: a quote opens …
            "2020,S003,王五,西乡塘区,4501070001,4,12",
            '2020,S004,赵六,西乡塘区",4501070001,4,12',  # … and a stray one closes it on line 5
            "2020,S005,钱七,西乡塘区,4501070001,4,12",
        ]
    )
    path = root / "data/raw/students/s.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    m = res.manifest["files"]["students/s.csv"]
    assert m["multiline_records"] == [[3, 5]]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("students/s.csv" in w and "3–5" in w for w in warned)
    # the last row is numbered by its physical line (6), not by its record number (4)
    st = res.tables["students"]
    assert st.loc[st["student_id"] == h("S005"), "source_row"].tolist() == [6]
    assert res.quarantine["source_row"].tolist() == [3]  # the merged record: county unknown
    # its 区县 runs over three lines (other students' ids and names): never shown
    shown = everything_shown(res, caplog)
    assert "含换行或过长的内容" in res.quarantine.loc[0, "message"]
    assert not any(s in shown for s in ("S002", "S003", "S004", "王五", "赵六"))
    reconcile(res)


def test_quoted_line_break_in_a_remark_keeps_row_numbers(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    header = ",".join(["监测年份", "学生编号", "区县", "学校编号", "年级", "学生权重", "备注"])
    text = "\n".join(
        [
            header,
            '2020,S001,西乡塘区,4501070001,4,12,"第一行\n第二行"',  # lines 2–3
            "2020,S002,西乡塘区,4501070001,4,x,",  # line 4: a bad weight
        ]
    )
    path = root / "data/raw/students/s.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text + "\n", encoding="utf-8")
    res = ingest.run(ctx(root))
    assert res.quarantine["source_row"].tolist() == [4]
    assert res.manifest["files"]["students/s.csv"]["multiline_records"] == [[2, 3]]
    reconcile(res)


def test_sources_yaml_alias_bomb_is_refused(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    bomb = ["dataset:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in "bcdefghi":
        prev = chr(ord(k) - 1)
        bomb.append(
            f"  {k}: &{k} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    (root / "data/raw/sources.yaml").write_text("\n".join(bomb) + "\n", encoding="utf-8")
    err = run_error(root)
    assert (err.file, err.row) == ("data/raw/sources.yaml", 2)
    assert "锚点或别名" in str(err)
    code, out = cli(root)
    assert code == 1 and "sources.yaml" in out


def test_sources_yaml_merge_key_alias_is_refused(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "files:\n  students/a.csv: {year: 2020}\n  students/b.csv:\n    <<: {year: 2020}\n"
        "  students/c.csv: &c {year: 2021}\n",
        encoding="utf-8",
    )
    with pytest.raises(EqmError) as info:
        load_sources(path)
    assert info.value.row == 5  # the anchor &c


def test_sources_yaml_over_the_size_limit_is_refused(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    text = "dataset:\n  label: 演示\n" + "# 注释\n" * 200_000  # ≈ 2 MB of comments
    (root / "data/raw/sources.yaml").write_text(text, encoding="utf-8")
    err = run_error(root)
    assert err.file == "data/raw/sources.yaml" and "超过 1024 KB" in str(err)
    # the limit is ingest.sources_max_bytes: a small file under a small limit is refused too
    small = tmp_path / "s.yaml"
    small.write_text("dataset:\n  label: 演示数据集\n", encoding="utf-8")
    with pytest.raises(EqmError):
        load_sources(small, max_bytes=10)
    assert load_sources(small, max_bytes=1000).dataset == {"label": "演示数据集"}


def _outside_students(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "elsewhere" / "other_round.csv", STUDENT_HEADER, STUDENT_ROWS)


def test_symlinks_pointing_outside_raw_are_skipped_and_recorded(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    outside = _outside_students(tmp_path)
    students = root / "data/raw/students"
    students.mkdir(parents=True)
    (students / "linked.csv").symlink_to(outside)  # a file outside data/raw
    (students / "folder").symlink_to(outside.parent, target_is_directory=True)
    (students / "gone.csv").symlink_to(tmp_path / "no_such.csv")  # broken
    inside = write_csv(root / "data/raw/students/real/s.csv", STUDENT_HEADER, STUDENT_ROWS[:1])
    (students / "alias.csv").symlink_to(inside)  # inside data/raw: read
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    assert sorted(res.manifest["files"]) == [
        "schools/schools.csv", "students/alias.csv", "students/real/s.csv",
    ]  # fmt: skip
    skipped = {s["path"]: s for s in res.manifest["skipped_links"]}
    assert sorted(skipped) == ["students/folder", "students/gone.csv", "students/linked.csv"]
    assert skipped["students/linked.csv"]["target"] == str(outside.resolve())
    assert skipped["students/linked.csv"]["reason"] == "链接指向 data/raw 以外"
    assert skipped["students/folder"]["target"] == str(outside.parent.resolve())
    assert skipped["students/gone.csv"]["reason"] == "链接的目标不存在"
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "data/raw/students/linked.csv" in warned and "已跳过" in warned
    # the data outside never reached the outputs: only the one inside row (twice: file + link)
    assert res.tables["students"]["student_id"].tolist() == [h(RAW_IDS[0])] * 2
    reconcile(res)


def test_symlinked_table_folder_outside_raw_and_dvc_cache_links(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    outside = _outside_students(tmp_path)
    (root / "data/raw/students").symlink_to(outside.parent, target_is_directory=True)
    cached = write_csv(root / ".dvc/cache/files/md5/ab/cdef", STUDENT_HEADER, STUDENT_ROWS[:2])
    (root / "data/raw/scores").mkdir()
    (root / "data/raw/scores/dvc.csv").symlink_to(cached)  # a DVC symlink cache: trusted
    res = ingest.run(ctx(root))
    assert [s["path"] for s in res.manifest["skipped_links"]] == ["students"]
    assert "scores/dvc.csv" in res.manifest["files"]


def test_student_ids_excel_made_into_numbers_are_refused(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    rows = [list(r) for r in STUDENT_ROWS] + [list(STUDENT_ROWS[0]) for _ in range(3)]
    rows[0][COL["学生编号"]] = "1.23457E+17"  # CSV text of a number shown by Excel
    rows[1][COL["学生编号"]] = "2020000101.5"
    rows[2][COL["学生编号"]] = "S 0001"  # a space: not in the pattern
    rows[3][COL["学生编号"]] = "2020000101"  # digits only: fine
    rows[4][COL["学生编号"]] = "G450107201001011234"  # 学籍号 = G + ID number: fine, hashed
    rows[5][COL["学生编号"]] = "L-2020_07"
    students_csv(root, rows)
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    q = res.quarantine.set_index("source_row")
    assert sorted(q.index) == [2, 3, 4]
    assert set(q["rule"]) == {"ingest.bad_student_id"} and set(q["column"]) == {"学生编号"}
    assert "科学计数法" in q.loc[2, "message"] and "小数点" in q.loc[3, "message"]
    assert "ingest.student_id_pattern" in q.loc[4, "message"]
    for raw in ("1.23457E+17", "2020000101.5", "S 0001"):
        assert raw not in everything_shown(res, caplog)
    assert json.loads(q.loc[2, "raw_values"])["学生编号"] == h("1.23457E+17")  # the pseudonym
    kept = set(res.tables["students"]["student_id"])
    assert kept == {h("2020000101"), h("G450107201001011234"), h("L-2020_07")}
    m = res.manifest["files"]["students/s.csv"]
    assert (m["rows_read"], m["rows_kept"], m["rows_quarantined"]) == (6, 3, 3)  # hand count
    reconcile(res)
    assert_no_pii(everything_shown(res, caplog))


def test_student_ids_read_from_xlsx_numbers(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    rows = xlsx_rows()
    rows[0][COL["学生编号"]] = 2020000101  # an integer cell: exact
    rows[1][COL["学生编号"]] = 2020000102.0  # a float cell holding an integer: exact
    # 18 digits typed into Excel become the double 1.23456789012346E+17 (an xlsx number cell is
    # always a double, so its last digits are gone): refused
    rows[2][COL["学生编号"]] = float(123456789012345678)
    rows.append(list(rows[0]))
    rows[3][COL["学生编号"]] = 123456789012345  # 15 digits: below 2**53, exact as a double: fine
    students_xlsx(root, rows)
    res = ingest.run(ctx(root))
    kept = [h("2020000101"), h("2020000102"), h("123456789012345")]
    assert sorted(res.tables["students"]["student_id"]) == sorted(kept)
    q = res.quarantine
    assert q[["source_row", "rule"]].values.tolist() == [[4, "ingest.bad_student_id"]]
    assert "科学计数法" in q.loc[0, "message"]
    reconcile(res)


def test_student_id_pattern_from_params(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    params = (root / "params.yaml").read_text(encoding="utf-8")
    pattern = 'student_id_pattern: "[0-9A-Za-z][0-9A-Za-z_-]{0,63}"'
    assert pattern in params
    (root / "params.yaml").write_text(
        params.replace(pattern, 'student_id_pattern: "S[0-9]{10}"'), encoding="utf-8"
    )
    rows = [list(r) for r in STUDENT_ROWS]
    rows[2][COL["学生编号"]] = "2020000103"  # fine by the default, not by S + 10 digits
    students_csv(root, rows)
    res = ingest.run(ctx(root))
    assert res.quarantine[["source_row", "rule"]].values.tolist() == [[4, "ingest.bad_student_id"]]
    (root / "params.yaml").write_text(
        params.replace(pattern, 'student_id_pattern: "[0-9"'), encoding="utf-8"
    )
    err = run_error(root)
    assert err.file == "params.yaml" and "student_id_pattern" in str(err)


def test_no_message_echoes_personal_data(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    rows = [list(r) for r in STUDENT_ROWS]
    planted = "45010319991231002X"  # an ID number typed into a number column
    rows[0][COL["学生权重"]] = planted
    rows[1][COL["性别"]] = ID_NUMBERS[1]  # and into a code column
    rows[2][COL["年级"]] = "G" + ID_NUMBERS[2]  # a 学籍号 where the grade belongs
    students_csv(root, rows)
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    q = res.quarantine.set_index("source_row")
    assert sorted(q.index) == [2, 3, 4]
    assert "学生权重「（疑似身份证号，已隐去）」不是数字" in q.loc[2, "message"]
    assert "疑似身份证号" in q.loc[4, "message"]
    shown = everything_shown(res, caplog)
    assert planted not in shown
    assert_no_pii(shown)
    reconcile(res)


@pytest.mark.parametrize("column", ["姓名", "学生编号"])
def test_duplicate_personal_column_error_shows_no_values(tmp_path, column):
    root = make_root(tmp_path)
    minimal_schools(root)
    header = [*STUDENT_HEADER, column]
    rows = [[*r, "张冒名" if column == "姓名" else "S9999999999"] for r in STUDENT_ROWS]
    write_csv(root / "data/raw/students/s.csv", header, rows)
    if column == "姓名":  # a PII column is dropped unread, copies and all
        res = ingest.run(ctx(root))
        assert "张冒名" not in json.dumps(res.manifest, ensure_ascii=False)
        return
    err = run_error(root)
    assert err.column == column and "出现了两次" in str(err)
    assert "S9999999999" not in str(err)
    assert_no_pii(str(err))


def test_county_code_contradicting_county_name_is_set_aside(tmp_path):
    root = make_root(tmp_path)
    minimal_schools(root)
    header = ["监测年份", "学生编号", "区县代码", "区县", "学校编号", "年级", "学生权重"]
    rows = [
        ["2020", "S001", "450107", "西乡塘区", "4501070001", "4", "12"],  # agree
        ["2020", "S002", "450107", "武鸣区", "4501070001", "4", "12"],  # 武鸣区 is 450110
        ["2020", "S003", "450181", "横县", "4501810001", "4", "12"],  # 横县 = 横州市's old name
        ["2020", "S004", "450107", "", "4501070001", "4", "12"],  # code only
    ]
    write_csv(root / "data/raw/students/s.csv", header, rows)
    res = ingest.run(ctx(root))
    q = res.quarantine
    assert q[["source_row", "column", "rule"]].values.tolist() == [
        [3, "区县代码", "ingest.county_mismatch"]
    ]
    msg = q.loc[0, "message"]
    assert "「450107」" in msg and "「武鸣区」" in msg and "450110" in msg
    assert q.loc[0, "county_code"] == "450107"  # recorded under the code, not moved unflagged
    st = res.tables["students"].set_index("source_row")
    assert st["county_code"].to_dict() == {2: "450107", 4: "450181", 5: "450107"}
    reconcile(res)


# ------------------------------------------------------------------------------------------------
# 3. unrecognised headers
# ------------------------------------------------------------------------------------------------

VARIANT_HEADER = [
    "年份", "区县代码", "学校编号", "学段", "在校生数（人）",
    "专任教师中高于规定学历的教师数", "县级以上骨干教师数", "体育、艺术（美术、音乐）专任教师数(人)",
    "教学及辅助用房建筑面积【平方米】", "体育运动场馆面积（㎡）", "教学仪器设备资产值 (万元)",
    "网络多媒体教室数(间)", "专任教师中具有高级职称的教师数",
]  # fmt: skip


def test_resource_columns_under_common_variant_names(tmp_path, caplog):
    root = make_root(tmp_path)
    row = ["2022", "450107", "A", "小学", "600", "30", "6", "5", "2700", "4500", "120.5", "14", "9"]
    write_csv(root / "data/raw/schools/s.csv", VARIANT_HEADER, [row])
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    sch = res.tables["schools"].iloc[0]
    expected = {
        "enrollment": 600, "teachers_above_degree": 30, "backbone_teachers": 6,
        "pe_art_teachers": 5, "teaching_aux_area_m2": 2700, "sports_area_m2": 4500,
        "equipment_value_yuan": 1_205_000,  # 120.5 万元 × 10,000 (hand)
        "multimedia_classrooms": 14,
    }  # fmt: skip
    assert {k: sch[k] for k in expected} == pytest.approx(expected)
    m = res.manifest["files"]["schools/s.csv"]
    # 高级职称 is not 高于规定学历 (a title, not a degree): ignored, and it looks like nothing
    assert m["ignored_columns"] == ["专任教师中具有高级职称的教师数"]
    assert m["suspect_columns"] == {} and m["missing_indicator_columns"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_missing_indicator_column_is_an_error_naming_the_accepted_names(tmp_path):
    root = make_root(tmp_path)
    header = [c for c in VARIANT_HEADER if c != "网络多媒体教室数(间)"]
    write_csv(root / "data/raw/schools/s.csv", header, [["2022", "450107", "A", "小学", "600"]])
    err = run_error(root)
    assert (err.file, err.column) == ("schools/s.csv", "网络多媒体教室数")
    assert "缺少指标列" in str(err)
    assert "网络多媒体教室数、网络多媒体教室、多媒体教室数、multimedia_classrooms" in str(err)
    assert "「高于规定学历教师数」" not in str(err).split("文件中的列")[0]  # the others are there
    code, out = cli(root)
    assert code == 1 and "网络多媒体教室数" in out


def test_lookalike_header_is_named_in_the_error_and_the_warning(tmp_path, caplog):
    root = make_root(tmp_path)
    header = [*VARIANT_HEADER[:11], "多媒体教室(个)"]  # not a known wording of L7
    write_csv(root / "data/raw/schools/s.csv", header, [["2022", "450107", "A", "小学", "600"]])
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        err = run_error(root)
    assert "列「多媒体教室(个)」像是「网络多媒体教室数」" in str(err)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("「多媒体教室(个)」像是「网络多媒体教室数」" in w and "aliases" in w for w in warned)


def test_school_list_without_any_resource_column_is_read_with_a_warning(tmp_path, caplog):
    root = make_root(tmp_path)
    header = ["年份", "区县代码", "学校编号", "学校名称", "学段", "在校生数", "是否教学点"]
    write_csv(root / "data/raw/schools/s.csv", header, [["2022", "450107", "A", "一小", "小学", "40", "是"]])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    m = res.manifest["files"]["schools/s.csv"]
    assert m["missing_indicator_columns"] == [
        "teachers_above_degree", "backbone_teachers", "pe_art_teachers", "teaching_aux_area_m2",
        "sports_area_m2", "equipment_value_yuan", "multimedia_classrooms",
    ]  # fmt: skip
    assert any("按学校名单读入" in r.getMessage() for r in caplog.records)
    assert res.tables["schools"]["multimedia_classrooms"].isna().all()
    reconcile(res)


def test_ignored_column_that_looks_like_a_known_one_is_a_warning(tmp_path, caplog):
    root = make_root(tmp_path)
    minimal_schools(root)
    header = [*STUDENT_HEADER, "学生编号(旧)", "每天作业时间"]
    header[COL["每天书面作业时间（分钟）"]] = "兴趣爱好"  # the file has no known homework column
    write_csv(root / "data/raw/students/a.csv", header, [[*r, "x", "30"] for r in STUDENT_ROWS])
    plain = [*STUDENT_HEADER, "兴趣爱好"]
    write_csv(root / "data/raw/students/b.csv", plain, [[*r, "读书"] for r in STUDENT_ROWS])
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    # 学生编号(旧) resembles student_id, which the file has: not suspect; 每天作业时间 is
    assert res.manifest["files"]["students/a.csv"]["suspect_columns"] == {
        "每天作业时间": "homework_minutes"
    }
    ignored = {
        r.getMessage().split("：")[0]: r.levelno
        for r in caplog.records
        if "已忽略" in r.getMessage()
    }
    assert ignored == {"students/a.csv": logging.WARNING, "students/b.csv": logging.INFO}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("「每天作业时间」像是「每天书面作业时间」（homework_minutes）" in w for w in warned)


def test_every_read_file_reconciles_on_a_mixed_bad_round(tmp_path, caplog):
    """All the careless inputs at once (one file each): the counts add up for every file."""
    root = make_root(tmp_path)
    minimal_schools(root)
    students_csv(root, [], name="students/empty.csv")
    rows = [list(r) for r in STUDENT_ROWS]
    rows[0][COL["数学成绩"]] = "#VALUE!"
    rows[1][COL["学生编号"]] = "1.2E+17"
    rows[2][COL["区县"]] = "火星区"
    students_csv(root, rows, name="students/bad.csv")
    _formula_book(root / "data/raw/students/f.xlsx")
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    files = res.manifest["files"]
    assert sorted(files) == [
        "schools/schools.csv", "students/bad.csv", "students/empty.csv", "students/f.xlsx",
    ]  # fmt: skip
    # hand counts: bad.csv 3 rows, row 3 and 4 set aside, 1 score cell of row 2 → 4 read
    assert [files["students/bad.csv"][k] for k in ("rows_read", "rows_kept", "rows_quarantined")] == [4, 1, 3]  # fmt: skip
    reconcile(res)
    assert_no_pii(everything_shown(res, caplog))
    assert np.all(res.quarantine["stage"] == "ingest")
    assert pd.api.types.is_integer_dtype(res.quarantine["source_row"])
    assert os.path.isfile(root / "data/processed/ingest_manifest.json")


def test_an_id_number_in_a_kept_column_never_reaches_an_output(tmp_path, caplog):
    """A 身份证号 typed into 学校标识码 (a column ingest keeps) would be copied verbatim into
    students.parquet (found by review): the row is set aside, the value masked everywhere, and an
    ID number used as a header is masked in the log and the manifest. 11010519491231002X is the
    worked example of GB 11643-1999 (check character X); 110105194912310021 has a wrong one."""
    from pipeline.ingest.values import is_id_number

    assert is_id_number("11010519491231002X") and is_id_number(" 11010519491231002x ")
    assert not is_id_number("110105194912310021")  # check character wrong
    assert not is_id_number("110105194913310028")  # month 13
    assert not is_id_number("4501071001")  # a 10-digit 学校标识码
    assert not is_id_number("12450100MB1234567X")  # a 统一社会信用代码 (letters inside)

    root = make_root(tmp_path)
    minimal_schools(root)
    planted_header = "11010519491231002X"
    header = [*STUDENT_HEADER, planted_header]
    rows = [[*r, ""] for r in STUDENT_ROWS]
    rows[0][COL["学校编号"]] = "11010519491231002X"
    write_csv(root / "data/raw/students/s.csv", header, rows)
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        res = ingest.run(ctx(root))
    q = res.quarantine.set_index("source_row")
    assert list(q.index) == [2]
    assert q.loc[2, "rule"] == "ingest.id_number_in_field" and q.loc[2, "column"] == "学校编号"
    assert "身份证号（已隐去）" in q.loc[2, "message"]
    written = pd.read_parquet(root / "data/processed/students.parquet")
    assert len(written) == len(STUDENT_ROWS) - 1
    assert not written.astype(str).apply(lambda c: c.str.contains("1949123")).any().any()
    shown = "\n".join([everything_shown(res, caplog)])
    assert "11010519491231002X" not in shown and "（疑似身份证号，已隐去）" in shown
    assert_no_pii(shown)
    reconcile(res)
