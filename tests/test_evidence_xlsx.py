"""The evidence stage shell and its workbooks: no formula injection from the data, schools listed by
id (not ranked), byte-stable outputs, and a clear error when an input is missing. (The ledger's
columns, print set-up and round trip are tested in test_ledger.py.)"""

from __future__ import annotations

import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
from test_evidence import CITY, NAMES, _mixed_inputs, cr, frame, ind, problems, school
from test_ledger import STANDARDS

from pipeline import evidence, schemas
from pipeline.config import make_context
from pipeline.errors import EqmError
from pipeline.generations import stamp_existing


def _inputs():
    d = _mixed_inputs()
    d["sc_rows"] = [
        *d["sc_rows"],
        school(school_id="S05", school_name="@丙校", n_met=3, min_ratio_unmet=0.2),
        school(school_id="S03", school_name="-丁校", n_met=7),  # passes
    ]
    d["ind_rows"] = [
        *d["ind_rows"],
        ind(indicator="gap_mean_score", group_var="gender", group_value="-male", estimate=30.0,
            se=5.0),
    ]  # fmt: skip
    return d


def _books(d=None):
    d = d or _inputs()
    out = problems(**d)
    sc = frame(d["sc_rows"], schemas.SCHOOL_COMPLIANCE)
    entries = pd.DataFrame(columns=["problem_id"])
    return out, evidence.ledger_books(out, sc, entries, None, NAMES, CITY, STANDARDS)


def test_no_formula_injection():
    _, books = _books()
    seen = set()
    for data in books.values():
        wb = openpyxl.load_workbook(io.BytesIO(data))
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    assert c.data_type != "f", (ws.title, c.coordinate, c.value)
                    if isinstance(c.value, str) and c.value[:1] in "=+-@":
                        assert c.data_type == "s"
                        seen.add(c.value)
    # school names from the data come back as the same text, never as formulas
    assert {"=1+1", "+乙校", "@丙校", "-丁校"} <= seen


def test_schools_listed_by_id_not_ranked():
    _, books = _books()
    ws = openpyxl.load_workbook(io.BytesIO(books[(2022, "450107")]))["学校名单"]
    ids = [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert ids == sorted(ids)  # by school id, whatever their results


def test_problem_titles_of_schools_name_their_unmet_indicators_not_a_rank():
    out, _ = _books()
    sch = out[out["rule_id"] == "SCHOOL"]
    assert len(sch) and sch["title"].str.contains("项未达标|无数据", regex=True).all()


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
              value=470.0, se=np.nan, status="整改中", title="西乡塘区四年级语文平均成绩偏低")]
    )  # fmt: skip
    prev.to_parquet(p.validated("previous_problems"))
    stamp_existing(root, "indicators")  # as if eqm ingest … eqm indicators had just written them
    return p


def test_run_writes_outputs_byte_stable(project_root):
    d = _inputs()
    d["cr_rows"] = [*d["cr_rows"], cr(indicator="pct_sleep_sufficient", subject="", value=85.0)]
    p = _write_inputs(project_root, d)
    evidence.run(make_context(project_root, quiet=True))
    ledger = p.evidence_dir / "2022" / "ledger" / "450107.xlsx"
    first = (p.problems.read_bytes(), p.comparisons.read_bytes(), ledger.read_bytes())
    out = pd.read_parquet(p.problems)
    assert list(out.columns) == schemas.PROBLEMS.names
    assert list(pd.read_parquet(p.comparisons).columns) == schemas.COMPARISONS.names
    old = out[out["previous_problem_id"] == "OLD-7"]
    assert list(old["previous_status"]) == ["not re-measured"]  # OLD-7 stays in the list
    evidence.run(make_context(project_root, quiet=True))
    assert (p.problems.read_bytes(), p.comparisons.read_bytes(), ledger.read_bytes()) == first


def test_run_missing_input_is_a_clear_error(project_root):
    with pytest.raises(EqmError, match="indicators"):
        evidence.run(make_context(project_root, quiet=True))
    p = make_context(project_root).paths
    assert not p.problems.exists()
