"""The rectification ledger (整改台账): the workbook a county fills in, and the round trip.

Each test writes ledgers from crafted problem lists (the test_evidence builders), fills cells as a
county clerk would with openpyxl, reads them back and checks what is carried, flagged or refused.
"""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from test_evidence import _RAW, CITY, NAMES, cr, frame, ind, prev, problems, school

from pipeline import schemas
from pipeline.errors import EqmError
from pipeline.evidence.ledger import (
    COLUMNS,
    GONE,
    INPUTS,
    OVERDUE,
    SCHOOL_SHEET,
    SHEET,
    ledger_books,
    read_entries,
)

STANDARDS = _RAW["indicators"]["resource_thresholds"]  # the school standards of params.yaml


def _two_rounds():
    rows = [ind(year=2020, estimate=470.0), ind(year=2022, estimate=460.0),
            ind(year=2022, estimate=460.0, subject="chinese", county_code="450110")]  # fmt: skip
    bench = [cr(year=2020), cr(year=2022), cr(year=2022, subject="chinese", county_code="450110")]
    sc = [school(year=2022), school(year=2022, school_id="S02", school_name="第二小学", n_met=5,
                                    min_ratio_unmet=0.9, passes=False)]  # fmt: skip
    return problems(rows, bench, sc_rows=sc), frame(sc, schemas.SCHOOL_COMPLIANCE)


def _books(p, sc, entries=None, as_of=None):
    import pandas as pd

    entries = entries if entries is not None else pd.DataFrame(columns=["problem_id", *INPUTS])
    return ledger_books(p, sc, entries, as_of, NAMES, CITY, STANDARDS)


def _sheet(data: bytes, name: str = SHEET):
    return openpyxl.load_workbook(io.BytesIO(data))[name]


def _rows(ws) -> list[dict]:
    hdr = [c.value for c in ws[1]]
    return [dict(zip(hdr, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]


def test_one_workbook_per_county_with_its_own_rows_and_the_columns():
    p, sc = _two_rounds()
    books = _books(p, sc)
    assert set(books) == {(2020, "city"), (2020, "450107"), (2022, "city"), (2022, "450107"),
                          (2022, "450110")}  # fmt: skip
    ws = _sheet(books[(2022, "450107")])
    hdr = [c.value for c in ws[1]]
    assert hdr == [c for c in COLUMNS if c != "区县"]  # each column its own header
    assert {r["问题编号"][:10] for r in _rows(ws)} == {"ACH-450107", "SCH-450107"}
    city = _rows(_sheet(books[(2022, "city")]))
    assert {r["区县"] for r in city} == {"西乡塘区", "武鸣区"}


def test_no_rule_code_json_or_formula_in_visible_cells_and_print_setup():
    p, sc = _two_rounds()
    wb = openpyxl.load_workbook(io.BytesIO(_books(p, sc)[(2022, "450107")]))
    ws = wb[SHEET]
    for row in ws.iter_rows(min_row=1):
        for c in row:
            if c.value is None or ws.column_dimensions[c.column_letter].hidden:
                continue
            v = str(c.value)
            assert not v.startswith("="), c.coordinate  # no formula anywhere
            assert "{" not in v and "rule_id" not in v, c.coordinate  # no JSON
            assert v not in ("ACH", "MEAN", "RES", "SCHOOL", "LEVEL"), c.coordinate
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    # fit to one page wide (fitToWidth absent = its default 1), any number of pages down
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth in (None, 1)
    assert ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$1:$1" and ws.freeze_panes == "B2"
    assert ws.protection.sheet
    lists = {
        str(dv.sqref).split(":")[0][0]: dv.formula1 for dv in ws.data_validations.dataValidation
    }
    hdr = [c.value for c in ws[1]]
    col = {h: openpyxl.utils.get_column_letter(hdr.index(h) + 1) for h in ("进展", "销号审核")}
    assert lists[col["进展"]] == '"未启动,整改中,已完成"'
    assert lists[col["销号审核"]] == '"待审核,同意销号,不同意销号"'
    # input cells unlocked, computed cells locked
    r2 = {h: ws.cell(2, hdr.index(h) + 1) for h in hdr}
    assert not r2["整改措施"].protection.locked and r2["问题"].protection.locked


def test_values_carry_units_and_levels_read_as_text():
    p, sc = _two_rounds()
    ws = _sheet(_books(p, sc)[(2022, "450107")])
    hdr = [c.value for c in ws[1]]
    ach = next(i for i, r in enumerate(_rows(ws), start=2) if r["问题编号"].startswith("ACH"))
    assert ws.cell(ach, hdr.index("数值") + 1).number_format == '0.0"分"'
    assert ws.cell(ach, hdr.index("数值") + 1).value == 460.0  # a number, not text


def test_school_sheet_lists_every_school_by_id_with_values_and_flags():
    p, sc = _two_rounds()
    rows = _rows(_sheet(_books(p, sc)[(2022, "450107")], SCHOOL_SHEET))
    assert [r["学校编号"] for r in rows] == ["S01", "S02"]  # by id, never ranked
    assert rows[0]["L1 达标"] == "否"  # 1.0 against the primary standard 4.2
    assert rows[1]["达到学校要求"] == "否"


def _fill(data: bytes, pid: str, **values) -> openpyxl.Workbook:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[SHEET]
    hdr = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        if row[0].value == pid:
            for k, v in values.items():
                row[hdr.index(k)].value = v
    return wb


def test_round_trip_carries_entries_to_this_and_the_next_round(tmp_path):
    p, sc = _two_rounds()
    books = _books(p, sc)
    raw = tmp_path / "data/raw/ledger"
    raw.mkdir(parents=True)
    wb = _fill(books[(2020, "450107")], "ACH-450107-G8-math", 整改措施="开展教研视导",
               完成时限=dt.datetime(2021, 6, 30), 进展="整改中", 责任人="李四")  # fmt: skip
    wb.save(raw / "西乡塘区2020台账.xlsx")
    entries, as_of = read_entries(sorted(raw.glob("*.xlsx")), tmp_path)
    assert list(entries["problem_id"]) == ["ACH-450107-G8-math"]
    again = _books(p, sc, entries, as_of)
    for year in (2020, 2022):
        for name in ("450107", "city"):
            r = next(x for x in _rows(_sheet(again[(year, name)]))
                     if x["问题编号"] == "ACH-450107-G8-math")  # fmt: skip
            assert (r["整改措施"], r["责任人"], r["进展"]) == ("开展教研视导", "李四", "整改中")
            assert r["完成时限"] == dt.datetime(2021, 6, 30)
            assert r["核对提示"].startswith(OVERDUE)  # past the deadline, not 已完成
    # a rerun on the regenerated ledger keeps the entry (nothing typed is lost)
    (raw / "西乡塘区2020台账.xlsx").write_bytes(again[(2022, "450107")])
    entries2, _ = read_entries(sorted(raw.glob("*.xlsx")), tmp_path)
    keep = ["problem_id", "county_code", *INPUTS]
    assert entries2[keep].equals(entries[keep])
    assert list(entries2["year"]) == [2022]  # the newest ledger holding the entry


def test_done_deadline_is_not_overdue_and_a_vanished_problem_is_kept(tmp_path):
    p, sc = _two_rounds()
    books = _books(p, sc)
    raw = tmp_path / "ledger"
    raw.mkdir()
    wb = _fill(books[(2022, "450107")], "ACH-450107-G8-math", 完成时限="2021年6月30日",
               进展="已完成")  # fmt: skip
    wb.save(raw / "a.xlsx")
    entries, as_of = read_entries([raw / "a.xlsx"], tmp_path)
    # the next run no longer has the problem (e.g. data withdrawn): the entry is kept and marked
    p2 = p[p["problem_id"] != "ACH-450107-G8-math"]
    rows = _rows(_sheet(_books(p2, sc, entries, as_of)[(2022, "450107")]))
    kept = [r for r in rows if r["问题编号"] == "ACH-450107-G8-math"]
    assert len(kept) == 1 and kept[0]["核对提示"] == GONE and kept[0]["进展"] == "已完成"
    on = _rows(_sheet(_books(p, sc, entries, as_of)[(2022, "450107")]))
    r = next(x for x in on if x["问题编号"] == "ACH-450107-G8-math")
    assert OVERDUE not in (r["核对提示"] or "")  # 已完成: not overdue


def test_edited_id_bad_date_and_wrong_sheet_are_clear_errors(tmp_path):
    p, sc = _two_rounds()
    data = _books(p, sc)[(2022, "450107")]
    f = tmp_path / "x.xlsx"
    wb = _fill(data, "ACH-450107-G8-math", 问题编号="ACH-450107-G8-maths", 整改措施="x")
    wb.save(f)
    with pytest.raises(EqmError, match="校验码不符") as e:
        read_entries([f], tmp_path)
    assert e.value.row == 2 and e.value.column == "问题编号" and e.value.file == "x.xlsx"
    _fill(data, "ACH-450107-G8-math", 完成时限="下个月").save(f)
    with pytest.raises(EqmError, match="不是有效日期") as e:
        read_entries([f], tmp_path)
    assert e.value.column == "完成时限" and e.value.row == 2
    _fill(data, "ACH-450107-G8-math", 进展="快完成了").save(f)
    with pytest.raises(EqmError, match="不是可选值"):
        read_entries([f], tmp_path)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    wb[SHEET].title = "Sheet1"
    wb.save(f)
    with pytest.raises(EqmError, match="找不到工作表「整改台账」"):
        read_entries([f], tmp_path)


def test_two_ledgers_that_disagree_are_an_error(tmp_path):
    p, sc = _two_rounds()
    data = _books(p, sc)[(2022, "450107")]
    _fill(data, "ACH-450107-G8-math", 责任人="甲").save(tmp_path / "a.xlsx")
    _fill(data, "ACH-450107-G8-math", 责任人="乙").save(tmp_path / "b.xlsx")
    with pytest.raises(EqmError, match="两份台账中填写不同"):
        read_entries([tmp_path / "a.xlsx", tmp_path / "b.xlsx"], tmp_path)


def test_ledgers_are_byte_stable():
    import zipfile

    p, sc = _two_rounds()
    books = _books(p, sc)
    assert books == _books(p, sc)
    # no clock in the file: the metadata dates are fixed, so a rerun another day is identical
    core = zipfile.ZipFile(io.BytesIO(books[(2022, "450107")])).read("docProps/core.xml")
    assert b"2000-01-01T00:00:00Z" in core and b"2026" not in core


def test_previous_list_number_shows_in_the_ledger():
    out = problems([ind(estimate=470.0)], [cr()], prev_rows=[prev(problem_id="NN2020-001")])
    sc = frame([], schemas.SCHOOL_COMPLIANCE)
    rows = _rows(_sheet(_books(out, sc)[(2022, "450107")]))
    # 480 (se 5) -> 470 (se 5): z = 1.41, not significant
    assert rows[0]["上一轮编号"] == "NN2020-001" and rows[0]["与上一轮相比"] == "无显著变化"


def test_city_ledger_is_recognised_by_its_columns_and_owns_the_review(tmp_path):
    # the county fills its measure in its own ledger, the office its review in the city ledger
    # (saved under another name): both are kept, each from its owner
    p, sc = _two_rounds()
    books = _books(p, sc)
    _fill(books[(2022, "450107")], "ACH-450107-G8-math", 整改措施="县：教研视导",
          销号审核="待审核").save(tmp_path / "县.xlsx")  # fmt: skip
    _fill(books[(2022, "city")], "ACH-450107-G8-math", 整改措施="市里改写的措施",
          销号审核="不同意销号").save(tmp_path / "2022全市台账.xlsx")  # fmt: skip
    e, _ = read_entries(sorted(tmp_path.glob("*.xlsx")), tmp_path)
    r = e.set_index("problem_id").loc["ACH-450107-G8-math"]
    assert (r["整改措施"], r["销号审核"]) == ("县：教研视导", "不同意销号")


def test_entries_are_carried_forward_only(tmp_path):
    # an entry typed in the 2022 ledger does not appear on the 2020 ledger
    p, sc = _two_rounds()
    books = _books(p, sc)
    _fill(books[(2022, "450107")], "ACH-450107-G8-math", 进展="已完成").save(tmp_path / "a.xlsx")
    e, as_of = read_entries([tmp_path / "a.xlsx"], tmp_path)
    again = _books(p, sc, e, as_of)
    r20 = next(x for x in _rows(_sheet(again[(2020, "450107")])) if x["问题编号"].startswith("ACH"))
    r22 = next(x for x in _rows(_sheet(again[(2022, "450107")])) if x["问题编号"].startswith("ACH"))
    assert r20["进展"] is None and r22["进展"] == "已完成"


def test_excel_serial_date_and_a_time_part_are_dates(tmp_path):
    p, sc = _two_rounds()
    data = _books(p, sc)[(2022, "450107")]
    _fill(data, "ACH-450107-G8-math", 完成时限=45107).save(tmp_path / "a.xlsx")  # 2023-06-30
    e, _ = read_entries([tmp_path / "a.xlsx"], tmp_path)
    assert e["完成时限"].iloc[0] == dt.date(2023, 6, 30)
    _fill(data, "ACH-450107-G8-math", 完成时限="2023-06-30 00:00:00").save(tmp_path / "a.xlsx")
    e, _ = read_entries([tmp_path / "a.xlsx"], tmp_path)
    assert e["完成时限"].iloc[0] == dt.date(2023, 6, 30)


def test_vanished_problem_keeps_its_county(tmp_path):
    out = problems([ind(estimate=470.0)], [cr()], prev_rows=[prev(problem_id="NN2020-001")])
    sc = frame([], schemas.SCHOOL_COMPLIANCE)
    _fill(_books(out, sc)[(2022, "450107")], "ACH-450107-G8-math", 整改措施="x").save(
        tmp_path / "a.xlsx"
    )
    e, as_of = read_entries([tmp_path / "a.xlsx"], tmp_path)
    # the next run has only another county's problem: the entry is kept in its own county's book
    other = problems([ind(estimate=470.0, county_code="450110")], [cr(county_code="450110")])
    books = _books(other, sc, e, as_of)
    rows = _rows(_sheet(books[(2022, "450107")]))  # filed under the entry's county
    assert [r["核对提示"] for r in rows] == [GONE] and rows[0]["整改措施"] == "x"


def test_the_cause_hint_reaches_the_ledger():
    import json

    p, sc = _two_rounds()
    ach = (p["year"] == 2022) & (p["problem_id"] == "ACH-450107-G8-math")
    ev = json.loads(p.loc[ach, "evidence"].iloc[0])
    ev["cause_hint"] = "以下相关因素与该问题显著相关（相关不等于因果）：学习兴趣指数本县为2.65"
    p.loc[ach, "evidence"] = json.dumps(ev, ensure_ascii=False)
    rows = {r["问题编号"]: r for r in _rows(_sheet(_books(p, sc)[(2022, "450107")]))}
    assert rows["ACH-450107-G8-math"]["原因分析线索"] == ev["cause_hint"]
    assert not rows["SCH-450107-S02"]["原因分析线索"]  # no hint: an empty cell
