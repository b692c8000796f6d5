"""The evidence workbook and the stage shell: sheets, Chinese headers, no formula injection, schools
listed by id (not ranked), byte-stable outputs, and a clear error when an input is missing."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
from test_evidence import CITY, NAMES, PARAMS, _mixed_inputs, cr, frame, ind, problems, school

from pipeline import evidence, schemas
from pipeline.config import make_context
from pipeline.errors import EqmError


def _inputs():
    d = _mixed_inputs()
    d["sc_rows"] = [
        *d["sc_rows"],
        school(school_id="S05", school_name="@丙校", n_met=3, min_ratio_unmet=0.2),
        school(school_id="S03", school_name="-丁校", n_met=7),  # passes: not listed
    ]
    d["ind_rows"] = [
        *d["ind_rows"],
        ind(indicator="gap_mean_score", group_var="gender", group_value="-male", estimate=30.0,
            se=5.0),
    ]  # fmt: skip
    return d


def _book(d=None):
    d = d or _inputs()
    out = problems(**d)
    sc = frame(d["sc_rows"], schemas.SCHOOL_COMPLIANCE)
    books = evidence.evidence_workbooks(out, sc, PARAMS, NAMES, CITY)
    return out, books


def test_workbook_sheets_headers_frozen_widths():
    out, books = _book()
    assert list(books) == [2022]
    wb = openpyxl.load_workbook(io.BytesIO(books[2022]))
    assert wb.sheetnames == ["汇总", "西乡塘区_450107", "武鸣区_450110"]
    ws = wb["西乡塘区_450107"]
    header = [c.value for c in ws[1]]
    labels = [c.label for c in schemas.PROBLEMS.columns if c.name != "evidence"]
    assert header[: len(labels)] == labels
    assert {"证据说明", "原因提示", "证据（JSON）"} <= set(header)
    assert ws.freeze_panes == "A2"
    for col in ("A", "F"):
        assert ws.column_dimensions[col].width >= 10
    # one row per problem of the county, then the failing-school list
    n = int((out["county_code"] == "450107").sum())
    assert ws.cell(n + 1, 1).value and ws.cell(n + 2, 1).value is None
    summary = wb["汇总"]
    assert summary.freeze_panes == "A2"
    assert [c.value for c in summary[2]][:3] == ["450107", "西乡塘区", n]


def test_evidence_is_readable_text():
    _, books = _book()
    ws = openpyxl.load_workbook(io.BytesIO(books[2022]))["西乡塘区_450107"]
    header = [c.value for c in ws[1]]
    col = header.index("证据说明") + 1
    texts = [ws.cell(r, col).value for r in range(2, 6)]
    assert any("参照 全国 = 500.000" in t for t in texts)
    assert all(t and not t.startswith("{") for t in texts)


def test_no_formula_injection():
    _, books = _book()
    wb = openpyxl.load_workbook(io.BytesIO(books[2022]))
    seen = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", (ws.title, c.coordinate, c.value)
                if isinstance(c.value, str) and c.value[:1] in "=+-@":
                    assert c.data_type == "s"
                    seen.add(c.value)
    # the school names and the group value from the data come back as the same text
    assert {"=1+1", "+乙校", "@丙校", "-male"} <= seen


def test_failing_schools_listed_by_id_not_ranked():
    _, books = _book()
    ws = openpyxl.load_workbook(io.BytesIO(books[2022]))["西乡塘区_450107"]
    col_a = [c.value for c in ws["A"]]
    start = col_a.index("资源配置未达标学校名单（按学校编号排列，不排名）")
    assert col_a[start + 1] == "学校编号"
    listed = [v for v in col_a[start + 2 :] if v]
    # S02 meets 6, S05 meets 3, S09 meets 4: ordered by id, not by how badly they do; S03 passes
    assert listed == ["S02", "S05", "S09"]
    names = [ws.cell(start + 3 + i, 2).value for i in range(3)]
    assert names == ["+乙校", "@丙校", "=1+1"]


def test_workbook_is_byte_stable():
    _, a = _book()
    _, b = _book()
    assert hashlib.sha256(a[2022]).hexdigest() == hashlib.sha256(b[2022]).hexdigest()


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


def _write_inputs(root, d):
    p = make_context(root).paths
    p.processed.mkdir(parents=True, exist_ok=True)
    p.validated_dir.mkdir(parents=True, exist_ok=True)
    frame(d["ind_rows"], schemas.INDICATORS).to_parquet(p.indicators)
    frame(d["rb_rows"], schemas.RESOURCE_BALANCE).to_parquet(p.resource_balance)
    frame(d["sc_rows"], schemas.SCHOOL_COMPLIANCE).to_parquet(p.school_compliance)
    frame(d["cr_rows"], schemas.COUNTY_REPORTS).to_parquet(p.validated("county_reports"))
    prev = pd.DataFrame(
        [dict(problem_id="OLD-7", year=2020, county_code="450107", rule_id="MEAN", grade=4,
              subject="chinese", indicator="mean_score", group_var="", group_value="",
              value=470.0, se=np.nan, status="整改中", title="武鸣区四年级语文平均成绩偏低")]
    )  # fmt: skip
    prev.to_parquet(p.validated("previous_problems"))
    return p


def test_run_writes_outputs_byte_stable(project_root):
    d = _inputs()
    d["cr_rows"] = [*d["cr_rows"], cr(indicator="pct_sleep_sufficient", subject="", value=85.0)]
    p = _write_inputs(project_root, d)
    evidence.run(make_context(project_root, quiet=True))
    xlsx = p.evidence_dir / "2022" / "rectification_evidence.xlsx"
    first = (p.problems.read_bytes(), xlsx.read_bytes())
    out = pd.read_parquet(p.problems)
    assert list(out.columns) == schemas.PROBLEMS.names
    assert "not re-measured" in set(out["previous_status"])  # OLD-7 stays in the list
    evidence.run(make_context(project_root, quiet=True))
    assert (p.problems.read_bytes(), xlsx.read_bytes()) == first


def test_run_missing_input_is_a_clear_error(project_root):
    with pytest.raises(EqmError, match="indicators"):
        evidence.run(make_context(project_root, quiet=True))
    p = make_context(project_root).paths
    assert not p.problems.exists()


def test_numbers_keep_full_precision_but_display_with_report_decimals():
    """Issue 6 decimals in the workbook too: scores/percentages 0.0, rates 0.000, p and q 0.0000."""
    out, books = _book()
    ws = openpyxl.load_workbook(io.BytesIO(books[2022]))["西乡塘区_450107"]
    header = [c.value for c in ws[1]]
    col = {
        name: header.index(name) + 1 for name in ("规则", "数值", "标准误", "p值", "q值（BH校正）")
    }
    seen = set()
    for r in range(2, ws.max_row + 1):
        rule = ws.cell(r, col["规则"]).value
        value = ws.cell(r, col["数值"])
        if rule is None or value.value is None:
            continue
        expected = {"ICC": "0.000", "RES": "0.000", "SCHOOL": "0", "LEVEL": "0"}.get(rule, "0.0")
        assert value.number_format == expected, (rule, value.number_format)
        assert isinstance(value.value, int | float)  # stored as a number, not as rounded text
        if ws.cell(r, col["p值"]).value is not None:
            assert ws.cell(r, col["p值"]).number_format == "0.0000"
        seen.add(rule)
    assert {"ICC", "ACH"} <= seen, seen
