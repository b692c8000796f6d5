"""`eqm check FILE…` (issue 16, parts 3 and 4): one file's verdict without running the round.

One demo round (default seed, planted defects) is built once for the module with the stages'
``run()`` functions (demo-data, ingest, validate) and every demo raw file is checked once. The
round's own quarantine is the reference: on every demo file check names exactly the rows and rules
the round sets aside, apart from the rules its summary lists as skipped. Which files pass comes
from the generator's truth (``demo_truth.json`` → ``defects``): a file passes iff no defect was
planted in it. The other tests use small files written here, their expected rows worked out by
hand from the rules (stated beside them).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import demo, ingest, schemas, validate
from pipeline.cli import app
from pipeline.collect import check
from pipeline.config import make_context

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
# what validate calls each planted defect (issue 3; test_demo_findings checks the round does)
DEFECT_RULES = {
    "duplicate_student": "duplicate_identical",  # the planted copy is identical: the 2nd is set aside
    "missing_school_id": "missing_school_id",
    "negative_weight": "weight_invalid",
    "score_9999": "score_out_of_range",
}


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (
        result.stderr if result.stderr_bytes is not None else ""
    )


@pytest.fixture(scope="module")
def round_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("check_demo")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQM_SALT", "check-test")
        ctx = make_context(root, quiet=True)
        for stage in (demo, ingest, validate):
            stage.run(ctx)
    return root


@pytest.fixture(scope="module")
def checked(round_dir: Path) -> dict[str, check.FileReport]:
    """Every demo raw file checked in place (data/raw/<table>/), by source name."""
    files = [p for _, p in ingest.discover(round_dir / "data/raw")]
    reports = check.check_files(make_context(round_dir, quiet=True), files)
    return {r.verdict.source: r for r in reports}


@pytest.fixture(scope="module")
def truth(round_dir: Path) -> dict:
    return json.loads((round_dir / "data/raw/demo_truth.json").read_text(encoding="utf-8"))


def _round_rows(round_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(round_dir / "data/processed/validation/quarantine.parquet")


# ------------------------------------------------------------------------------------------------
# The guarantee on the demo round
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_check_sets_aside_what_the_round_sets_aside_on_every_demo_file(round_dir, checked, truth):
    """Same rows, same rules as the round (minus the rules the summary lists as skipped); a file
    passes iff the generator planted no defect in it, and a passing file loses no row in the round."""
    q = _round_rows(round_dir)
    assert len(checked) == 11  # 7 + the teacher and principal questionnaires of both rounds
    for source, report in checked.items():
        v = report.verdict
        assert v.error is None and report.table_by == "folder", source
        rows = q[q["source_file"] == source]
        in_round = {
            (r.table, int(r.source_row), rule)
            for r in rows.itertuples()
            for rule in r.rule.split(";")
            if rule not in v.scope.skipped
        }
        assert {(p.table, p.source_row, p.rule) for p in v.problems} == in_round, source
        if report.passed:
            assert rows.empty, source  # not even a rule check skipped acts on it in the round
    defective = {d["file"] for d in truth["defects"]}
    assert {s for s, r in checked.items() if not r.passed} == defective
    # the cross-file rule of the demo: the scores of the student with the negative weight
    scores = checked["scores/2022年学业成绩_合成演示.csv"].verdict
    assert "student_quarantined" in scores.scope.skipped
    assert (q["rule"] == "student_quarantined").any()


@pytest.mark.slow
def test_each_planted_defect_is_named_and_its_cell_highlighted(checked, truth):
    for d in truth["defects"]:
        report = checked[d["file"]]
        row = d["source_rows"][-1]
        hits = [
            p for p in report.verdict.problems if p.source_row == row and d["column"] in p.headers
        ]
        assert [p.rule for p in hits if p.table == d["table"]] == [DEFECT_RULES[d["kind"]]], d
        ws = openpyxl.load_workbook(report.workbook).worksheets[0]
        header_row = report.verdict.manifest["header_row"]
        col = [c.value for c in ws[header_row]].index(d["column"]) + 1
        cell = ws.cell(row=row, column=col)
        assert cell.fill.fgColor.rgb.endswith(check.PROBLEM_FILL), d
        assert schemas.rule_label(DEFECT_RULES[d["kind"]]) in cell.comment.text
        assert "处理办法" in cell.comment.text
        if len(d["source_rows"]) > 1:  # the kept copy of the duplicate is not marked
            assert ws.cell(row=d["source_rows"][0], column=col).comment is None
        summary = report.summary.read_text(encoding="utf-8")
        assert f">{row}</td>" in summary and d["column"] in summary


@pytest.mark.slow
def test_returned_xlsx_keeps_every_value_of_the_senders_workbook(round_dir, checked):
    xlsx = [r for r in checked.values() if r.path.suffix == ".xlsx"]
    assert len(xlsx) == 5  # students, schools, previous problems, teachers, principals
    for report in xlsx:
        before = openpyxl.load_workbook(report.path)
        after = openpyxl.load_workbook(report.workbook)
        assert after.sheetnames == before.sheetnames
        for ws in before.worksheets:
            a = [list(r) for r in after[ws.title].iter_rows(values_only=True)]
            assert a == [list(r) for r in ws.iter_rows(values_only=True)], report.path.name


@pytest.mark.slow
def test_returned_workbook_of_a_text_file_holds_its_cells_as_text(checked):
    csvs = [r for r in checked.values() if r.path.suffix == ".csv"]
    assert len(csvs) == 4  # students, scores, county reports, teachers
    for report in csvs:
        encoding = report.verdict.manifest["encoding"]
        records = list(csv.reader(io.StringIO(report.path.read_bytes().decode(encoding))))
        ws = openpyxl.load_workbook(report.workbook).worksheets[0]
        assert ws.max_row == len(records)
        assert ws.max_column == max(map(len, records))
        for i, rec in enumerate(records, start=1):
            cells = [ws.cell(row=i, column=j) for j in range(1, len(rec) + 1)]
            assert [c.value or "" for c in cells] == rec
            assert all(c.data_type == "s" for c in cells if c.value is not None)


@pytest.mark.slow
def test_spss_file_gets_a_workbook_of_its_values_with_the_header_in_row_1(round_dir, checked):
    import pyreadstat

    report = checked["schools/2022年学校办学条件_合成演示.sav"]
    data, _ = pyreadstat.read_sav(str(report.path), apply_value_formats=True)
    ws = openpyxl.load_workbook(report.workbook).worksheets[0]
    assert ws.max_row == len(data) + 1 and ws.max_column == data.shape[1]


@pytest.mark.slow
def test_summaries_show_no_name_id_number_or_student_id(round_dir, checked):
    raw = round_dir / "data/raw/students"
    old = pd.read_csv(raw / "2020年学生数据_合成演示.csv", encoding="gbk", dtype=str)
    new = pd.read_excel(raw / "2022年学生数据_合成演示.xlsx", header=1, dtype=str)
    personal = set()
    for df in (old, new):
        for col in ("姓名", "身份证号", "身份证件号", "学籍号"):
            if col in df:
                personal |= set(df[col].dropna())
    assert len(personal) > 4000
    for report in checked.values():
        html = report.summary.read_text(encoding="utf-8")
        assert not [v for v in personal if v in html], report.path.name
        assert re.search(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", html) is None  # no pseudonym


@pytest.mark.slow
def test_summary_says_what_ingest_made_of_the_file(checked):
    html = checked["students/2020年学生数据_合成演示.csv"].summary.read_text(encoding="utf-8")
    for text in ("「学生数据」（students）", "按所在文件夹", "编码 gbk", "第 1 行", "2422 行",
                 "学籍号", "学生编号（student_id）", "2 列（姓名、身份证号等）", "没有检查",
                 "school_county_mismatch", "只在本文件范围内检查"):  # fmt: skip
        assert text in html, text


@pytest.mark.slow
def test_fixing_the_flagged_cell_passes_check_and_then_the_round(round_dir, checked, tmp_path):
    """The negative weight fixed in the sender's workbook (outside data/raw: the table is read from
    the header): check exits 0, and a round with the fixed file sets aside none of its rows."""
    name = "2022年学生数据_合成演示.xlsx"
    report = checked[f"students/{name}"]
    problem = report.verdict.problems[0]
    wb = openpyxl.load_workbook(report.path)
    ws = wb.worksheets[0]
    col = [c.value for c in ws[report.verdict.manifest["header_row"]]].index(problem.headers[0]) + 1
    cell = ws.cell(row=problem.source_row, column=col)
    cell.value = -cell.value
    fixed = tmp_path / name
    wb.save(fixed)
    out_dir = tmp_path / "checks"
    code, out = _invoke("check", str(fixed), "--root", str(round_dir), "--out", str(out_dir))
    assert code == 0, out
    html = out_dir / "2022年学生数据_合成演示/2022年学生数据_合成演示_检查摘要.html"
    assert "按表头判断" in html.read_text(encoding="utf-8")

    again = tmp_path / "round"
    shutil.copytree(round_dir / "data/raw", again / "data/raw")
    shutil.copy(round_dir / "params.yaml", again / "params.yaml")
    shutil.copy(fixed, again / "data/raw/students" / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQM_SALT", "check-test")
        ctx = make_context(again, quiet=True)
        ingest.run(ctx)
        validate.run(ctx)
    q = _round_rows(again)
    assert not (q["source_file"] == f"students/{name}").any()
    # the weight row and the 3 scores (语文, 艺术, 英语 in grade 8, 2022) that followed it
    assert len(q) == len(_round_rows(round_dir)) - 4


# ------------------------------------------------------------------------------------------------
# Small files
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def project(project_root: Path) -> Path:
    (project_root / "data/raw/scores").mkdir(parents=True)
    return project_root


def _problems(report: check.FileReport) -> set[tuple[int, str]]:
    return {(p.source_row, p.rule) for p in report.verdict.problems}


def test_scores_file_alone_skips_the_student_rules_and_still_finds_its_duplicates(project: Path):
    path = project / "data/raw/scores/成绩.csv"
    path.write_text(
        "监测年份,学籍号,学科,量尺分数,水平\n"
        "2022,S001,语文,500,Ⅲ\n"  # line 2
        "2022,S001,语文,500,Ⅲ\n"  # 3: identical to line 2 -> duplicate_identical (2 kept)
        "2022,S002,语文,450,Ⅱ\n"  # 4 and 5: same key, other content -> duplicate_score, both
        "2022,S002,语文,460,Ⅱ\n"
        "2022,S003,语文,9999,\n"  # 6: outside the default plausible range [100, 900]
        "2022,S004,语文,abc,Ⅱ\n",  # 7: not a number -> ingest sets the row aside
        encoding="utf-8",
    )
    (report,) = check.check_files(make_context(project, quiet=True), [path])
    assert _problems(report) == {
        (3, "duplicate_identical"), (4, "duplicate_score"), (5, "duplicate_score"),
        (6, "score_out_of_range"), (7, "ingest.not_a_number"),
    }  # fmt: skip
    assert {"student_unknown", "student_quarantined"} <= set(report.verdict.scope.skipped)
    assert not report.passed
    html = report.summary.read_text(encoding="utf-8")
    assert "学生数据中没有这名学生" in html and "没有检查" in html
    assert "S00" not in html
    ws = openpyxl.load_workbook(report.workbook).worksheets[0]
    assert ws["D6"].comment is not None and ws["B6"].comment is None  # 9999 sits in 量尺分数 (D)
    assert ws["B3"].comment is not None and ws["B2"].comment is None  # the duplicate's 学籍号


def test_file_outside_the_round_is_read_by_its_header_and_ingest_errors_are_its_verdict(
    project: Path, tmp_path: Path
):
    """A long scores file without a year column: in data/raw/scores/ sources.yaml may give the
    year; received elsewhere it has none, and ingest would stop the round on it."""
    path = tmp_path / "收到的成绩.csv"
    path.write_text("学籍号,学科,量尺分数\nS001,语文,500\n", encoding="utf-8")
    code, out = _invoke("check", str(path), "--root", str(project))
    assert code == 1 and "Traceback" not in out and "未通过" in out
    folder = project / "checks/收到的成绩"
    html = (folder / "收到的成绩_检查摘要.html").read_text(encoding="utf-8")
    assert "按表头判断" in html and "「学业成绩」（scores）" in html
    assert "无法导入" in html and "监测年份" in html and "sources.yaml" in html
    ws = openpyxl.load_workbook(folder / "收到的成绩_检查结果.xlsx").worksheets[0]
    assert "缺少必需的列「监测年份」" in ws["A1"].comment.text
    assert [c.value for c in ws[2]] == ["S001", "语文", "500"]  # values as text, unchanged


def test_xlsx_formulas_text_and_the_senders_comments_are_kept(project: Path):
    from openpyxl.comments import Comment

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2022年成绩（县教育局报送）"])  # a title row above the header
    ws.append(["监测年份", "学籍号", "学科", "量尺分数", "水平", "备注"])
    ws.append([2022, "S001", "语文", 9999, "Ⅲ", "=1+1"])
    ws.append([2022, "S002", "语文", 500, "Ⅲ", None])
    ws["F4"].value = "=不是公式"
    ws["F4"].data_type = "s"
    ws["D3"].comment = Comment("县里的批注", "县教育局")
    path = project / "data/raw/scores/成绩.xlsx"
    wb.save(path)
    (report,) = check.check_files(make_context(project, quiet=True), [path])
    assert _problems(report) == {(3, "score_out_of_range")}  # row 3 of the sheet, column D
    after = openpyxl.load_workbook(report.workbook).active
    assert [list(r) for r in after.iter_rows(values_only=True)] == [
        ["2022年成绩（县教育局报送）", None, None, None, None, None],
        ["监测年份", "学籍号", "学科", "量尺分数", "水平", "备注"],
        [2022, "S001", "语文", 9999, "Ⅲ", "=1+1"],
        [2022, "S002", "语文", 500, "Ⅲ", "=不是公式"],
    ]
    assert after["F4"].data_type == "s"
    assert after["D3"].comment.text.startswith("县里的批注")
    assert "量尺分数超出" in after["D3"].comment.text


def test_a_file_without_data_rows_does_not_pass(project: Path):
    """An empty template sent back: the round skips it with a warning; check fails it."""
    path = project / "data/raw/scores/空白.csv"
    path.write_text("监测年份,学籍号,学科,量尺分数\n", encoding="utf-8")
    (report,) = check.check_files(make_context(project, quiet=True), [path])
    assert [(f["rule"], f["severity"]) for f in report.verdict.findings] == [
        ("empty_file", "error")
    ]
    assert not report.passed and report.verdict.problems == []


def test_out_folder_inside_raw_data_is_refused(project: Path):
    path = project / "data/raw/scores/x.csv"
    path.write_text("监测年份,学籍号,学科,量尺分数\n2022,S1,语文,500\n", encoding="utf-8")
    out_dir = project / "data/raw/scores/结果"
    code, out = _invoke("check", str(path), "--root", str(project), "--out", str(out_dir))
    assert code == 1 and "data/raw" in out and "Traceback" not in out
    assert not out_dir.exists() and not (project / "checks").exists()


def test_missing_file_and_unknown_format_are_user_errors(project: Path, tmp_path: Path):
    code, out = _invoke("check", str(tmp_path / "没有.xlsx"), "--root", str(project))
    assert code == 1 and "找不到要检查的文件" in out
    (tmp_path / "a.xls").write_bytes(b"old excel")
    code, out = _invoke("check", str(tmp_path / "a.xls"), "--root", str(project))
    assert code == 1 and "不支持的文件格式" in out and "Traceback" not in out


def test_every_row_rule_has_a_fix_for_the_sender():
    rules = set(schemas.INGEST_RULES) | set(schemas.VALIDATION_ROW_RULES)
    assert sorted(rules - set(check.FIXES)) == []


def test_check_imports_no_excel_or_validation_library():
    code = (
        "import sys, pipeline.collect.check; "
        "print([m for m in ('openpyxl', 'great_expectations', 'typst', 'pyreadstat') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_readme_command_checks_a_filled_template(tmp_path: Path, monkeypatch):
    """The chapter 「放入一轮真实数据」: init, templates, then `eqm check` on a county's filled form."""
    (tmp_path / "工作目录").mkdir()
    monkeypatch.chdir(tmp_path / "工作目录")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = "eqm check 西乡塘区_学生数据.xlsx --root ../监测2025"
    assert command in readme
    for step in ("eqm init ../监测2025 --year 2025 --counties 450107,450110,450125,450181",
                 "eqm templates --root ../监测2025"):  # fmt: skip
        assert _invoke(*step.split()[1:], "--quiet")[0] == 0
    wb = openpyxl.load_workbook(tmp_path / "监测2025/templates/students_学生数据.xlsx")
    ws = wb.worksheets[0]
    headers = [c.value for c in ws[1]]
    for i in range(3):
        row = {"监测年份": 2025, "学生编号": f"G45010720150{i}", "区县代码": "450107",
               "学校编号": "2145010701", "年级": "四年级", "性别": "女", "学生权重": 25.5}  # fmt: skip
        ws.append([row.get(h) for h in headers])
    wb.save("西乡塘区_学生数据.xlsx")
    code, out = _invoke(*command.split()[1:])
    assert code == 0, out
    folder = tmp_path / "监测2025/checks/西乡塘区_学生数据"
    html = (folder / "西乡塘区_学生数据_检查摘要.html").read_text(encoding="utf-8")
    assert "通过" in html and "样本学校过少" in html  # one school: a warning, not a failure
    assert (folder / "西乡塘区_学生数据_检查结果.xlsx").is_file()
