"""The rectification ledger (整改台账): workbooks a county fills in, read back on the next run.

Written per round: ``ledger/<county_code>.xlsx`` (that county's rows only) and ``ledger/city.xlsx``
(every county). Sheets: 整改台账 (one row per problem and close-out; the county fills 整改措施,
责任人, 完成时限, 进展, 佐证材料 and the office 销号审核), 学校名单 (every school section's seven values
with standards, shares of the standard and 达标 flags, by school id, never ranked) and 说明.
Print-ready (landscape A4, fit to page width, header row repeated, frozen panes), drop-down lists
for 进展 and 销号审核, computed cells locked, input cells unlocked, no formula anywhere.

Round trip: filled ledgers placed under ``data/raw/ledger/`` (any file name, ``.xlsx``) are read by
the next run (:func:`read_entries`): what a clerk typed is carried onto the same problem's row of
every regenerated ledger, of this round and the next, so a rerun never loses an entry. A row whose
problem is no longer in the list is kept and marked; a deadline in the past without 已完成 is
flagged 已逾期. The workbook read back is validated like a raw file: a missing sheet or header, an
edited 问题编号 (each row carries a check code in a hidden column) or a bad date is an error naming
the file, sheet, row and column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import pipeline.schemas as schemas
from pipeline.errors import EqmError
from pipeline.evidence.text import LEVEL_NAMES

SHEET = "整改台账"
SCHOOL_SHEET = "学校名单"
NOTE_SHEET = "说明"
FIXED_TIME = dt.datetime(2000, 1, 1)  # workbook metadata: fixed so a rerun is byte-identical
# the county's input columns (carried across reruns and rounds)
INPUTS = ("整改措施", "责任人", "完成时限", "进展", "佐证材料", "销号审核")
PROGRESS = ("未启动", "整改中", "已完成")
REVIEW = ("待审核", "同意销号", "不同意销号")
COLUMNS = (
    "问题编号", "上一轮编号", "区县", "领域", "问题", "数值", "参照", "差距", "标准误", "q 值",
    "严重程度", "与上一轮相比", "整改状态", "牵头单位", "配合单位", "整改目标", "原因分析线索", *INPUTS,
    "核对提示",
    "校验码", "年份", "区县代码",
)  # fmt: skip
WIDTHS = {
    "问题编号": 24, "上一轮编号": 11, "区县": 9, "领域": 12, "问题": 48, "数值": 10, "参照": 10,
    "差距": 10, "标准误": 9, "q 值": 8, "严重程度": 8, "与上一轮相比": 11, "整改状态": 9,
    "牵头单位": 10, "配合单位": 16, "整改目标": 30, "原因分析线索": 36, "整改措施": 30, "责任人": 10, "完成时限": 12,
    "进展": 9, "佐证材料": 20, "销号审核": 11, "核对提示": 18, "校验码": 10, "年份": 6,
    "区县代码": 8,
}  # fmt: skip
OVERDUE = "已逾期"
GONE = "该问题本轮已不在清单中，保留填报内容"


def check_code(problem_id: str) -> str:
    """Check code of a row's 问题编号 (hidden column): an edited id no longer matches it."""
    return hashlib.sha1(str(problem_id).encode("utf-8")).hexdigest()[:8]


# ------------------------------------------------------------------------------------------------
# Value display: units in the number format, levels as text
# ------------------------------------------------------------------------------------------------


def _unit_format(rule: str, indicator: str, kind: str) -> str:
    """Excel number format of 数值 / 参照 / 差距 / 标准误 with the unit (numbers stay numbers)."""
    if rule in ("ICC", "RES") or indicator in ("school_difference_rate", "eta_squared"):
        return "0.000"
    if str(indicator).startswith("pct_"):
        return '0.0"个百分点"' if kind in ("gap", "se") else '0.0"%"'
    if indicator in ("mean_score", "gap_mean_score"):
        return '0.0"分"'
    if rule == "SCHOOL":
        return '0"项"'
    return "0.0"


def _display_value(rule: str, indicator: str, v: Any) -> Any:
    if indicator == "achievement_level" and pd.notna(v):
        return LEVEL_NAMES.get(int(round(v)), v)
    return v


# ------------------------------------------------------------------------------------------------
# Read back
# ------------------------------------------------------------------------------------------------


def _err(file: str, msg: str, row: int | None = None, column: str | None = None, hint=""):
    return EqmError(msg, file=file, row=row, column=column, hint=hint)


def _parse_date(v: Any, file: str, row: int, col: str) -> dt.date | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, int | float) and 36526 <= v <= 73051:  # an Excel serial date, 2000–2099
        from openpyxl.utils.datetime import from_excel

        return from_excel(v).date()
    s = str(v).strip()
    m = re.fullmatch(
        r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?",
        s,
    )
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    raise _err(
        file, f"完成时限「{s}」不是有效日期。", row=row, column=col,
        hint="请填写日期，例如 2023-06-30 或 2023年6月30日（单元格格式可设为日期）。",
    )  # fmt: skip


# which kind of ledger wins a field when a county ledger and the city ledger both fill it: the
# county writes its measures and progress, the supervision office reviews the close-out
FIELD_OWNER = {**dict.fromkeys(INPUTS, "county"), "销号审核": "city"}
HIDDEN = ("校验码", "年份", "区县代码")


def read_entries(files: list[Path], root: Path) -> tuple[pd.DataFrame, dt.date | None]:
    """The entries typed into filled ledgers: one row per problem id with the six input columns,
    the round (``year``) and county of the newest ledger holding it, ``source`` (file and row),
    and the as-of date (the latest date a ledger was saved, from its file properties, so a rerun
    on the same files gives the same flags).

    Per field the newest round wins; within a round the county ledger wins the county's fields
    and the city ledger (recognised by its 区县 column, whatever its file name) wins 销号审核; two
    ledgers of the same kind and round that disagree are an error naming both cells."""
    import openpyxl

    recs: list[dict] = []
    as_of: dt.date | None = None
    for path in sorted(files):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            wb = openpyxl.load_workbook(path, data_only=True)
        except Exception as exc:  # corrupt or not an xlsx
            raise _err(rel, f"无法打开整改台账工作簿（{type(exc).__name__}）。",
                       hint="请用 Excel 或 WPS 另存为 .xlsx 后再放入 data/raw/ledger/。") from exc  # fmt: skip
        if SHEET not in wb.sheetnames:
            raise _err(
                rel, f"找不到工作表「{SHEET}」（现有：{'、'.join(wb.sheetnames)}）。",
                hint="请放回 eqm 生成的整改台账，不要改动工作表名称。",
            )  # fmt: skip
        saved = wb.properties.modified or wb.properties.created
        if saved and saved.year > 2000:
            as_of = max(as_of, saved.date()) if as_of else saved.date()
        ws = wb[SHEET]
        header = [str(c.value).strip() if c.value is not None else "" for c in ws[1]]
        need = ["问题编号", *HIDDEN, *INPUTS]
        missing = [h for h in need if h not in header]
        if missing:
            raise _err(rel, f"工作表「{SHEET}」第 1 行缺少列：{'、'.join(missing)}。", row=1,
                       hint="请不要改动表头；可从本轮生成的台账中复制填报内容。")  # fmt: skip
        col = {h: header.index(h) for h in need}
        kind = "city" if "区县" in header else "county"
        for i, cells in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2):
            recs += _entry(cells, col, kind, rel, i)
    return _resolve(recs), as_of


def _entry(cells, col: dict, kind: str, rel: str, i: int) -> list[dict]:
    pid = cells[col["问题编号"]]
    if pid is None or str(pid).strip() == "":
        if any(cells[col[h]] not in (None, "") for h in INPUTS):
            raise _err(rel, "这一行填写了整改内容，但问题编号为空。", row=i,
                       column="问题编号", hint="请恢复该行的问题编号。")  # fmt: skip
        return []
    pid = str(pid).strip()
    if str(cells[col["校验码"]] or "").strip() != check_code(pid):
        raise _err(
            rel, f"问题编号「{pid}」与该行的校验码不符：编号被修改过。", row=i, column="问题编号",
            hint="问题编号由 eqm 生成，请恢复原编号；新增的整改内容请填在对应问题的行中。",
        )  # fmt: skip
    try:
        year = int(cells[col["年份"]])
    except (TypeError, ValueError):
        raise _err(rel, "该行的隐藏列「年份」被改动或清空。", row=i, column="年份",
                   hint="请使用 eqm 生成的台账，不要改动隐藏列。") from None  # fmt: skip
    entry = {
        "problem_id": pid, "year": year, "county_code": str(cells[col["区县代码"]] or ""),
        "_kind": kind, "_where": f"{rel} 第 {i} 行",
    }  # fmt: skip
    for h in INPUTS:
        v = cells[col[h]]
        if h == "完成时限":
            v = _parse_date(v, rel, i, h)
        elif v is not None:
            v = str(v).strip() or None
        entry[h] = v
    for h, allowed in (("进展", PROGRESS), ("销号审核", REVIEW)):
        if entry[h] is not None and entry[h] not in allowed:
            raise _err(rel, f"{h}「{entry[h]}」不是可选值（{'、'.join(allowed)}）。",
                       row=i, column=h, hint="请从下拉列表中选择。")  # fmt: skip
    return [entry] if any(entry[h] is not None for h in INPUTS) else []


def _resolve(recs: list[dict]) -> pd.DataFrame:
    cols = ["problem_id", "year", "county_code", *INPUTS, "source"]
    by: dict[str, list[dict]] = {}
    for r in recs:
        by.setdefault(r["problem_id"], []).append(r)
    out = []
    for pid in sorted(by):
        g = by[pid]
        newest = max(r["year"] for r in g)
        merged = {"problem_id": pid, "year": newest, "source": ""}
        merged["county_code"] = next((r["county_code"] for r in g if r["county_code"]), "")
        for h in INPUTS:
            owner = FIELD_OWNER[h]
            order = sorted(g, key=lambda r: (-r["year"], r["_kind"] != owner))
            filled = [r for r in order if r[h] is not None]
            if not filled:
                merged[h] = None
                continue
            top = filled[0]
            for other in filled[1:]:
                same = (other["year"], other["_kind"]) == (top["year"], top["_kind"])
                if same and other[h] != top[h]:
                    raise EqmError(
                        f"问题 {pid} 的「{h}」在两份台账中填写不同：{top['_where']} 与 "
                        f"{other['_where']}。",
                        file=top["_where"].split(" 第 ")[0],
                        column=h,
                        hint="同一问题只保留一份填报（删除或改正其中一份后重新运行）。",
                    )
            merged[h] = top[h]
            merged["source"] = merged["source"] or top["_where"]
        out.append(merged)
    return pd.DataFrame(out, columns=cols)


# ------------------------------------------------------------------------------------------------
# Write
# ------------------------------------------------------------------------------------------------


def ledger_rows(
    problems: pd.DataFrame, entries: pd.DataFrame, as_of: dt.date | None,
    county_names: Mapping[str, str], known: set[str] | None = None, keep_gone: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """One ledger row per problem of ``problems`` (one round) with the carried entries, plus (when
    ``keep_gone``) a kept row for every entry whose problem is in no round's list (``known``:
    every problem id of every round), marked. Columns :data:`COLUMNS` plus ``county_code``,
    ``year``, ``_rule``, ``_indicator``."""
    ent = {r["problem_id"]: r for r in entries.to_dict("records")}
    rows = []
    labels = schemas.PREVIOUS_STATUS_LABELS
    for r in problems.to_dict("records"):
        e = ent.get(r["problem_id"], {})
        # an entry is carried to its own round and later ones, not back to earlier rounds, and not
        # onto a later, new occurrence of the problem (a recurrence starts a new ledger line)
        if e and (e["year"] > int(r["year"])
                  or (e["year"] < int(r["year"]) and r["previous_status"] == "new")):  # fmt: skip
            e = {}
        row = {
            "year": int(r["year"]), "county_code": r["county_code"], "_rule": r["rule_id"],
            "_indicator": r["indicator"], "问题编号": r["problem_id"],
            "上一轮编号": r["previous_problem_id"], "区县": county_names.get(r["county_code"], r["county_code"]),
            "领域": r["domain"], "问题": r["title"],
            "数值": _display_value(r["rule_id"], r["indicator"], r["value"]),
            "参照": _display_value(r["rule_id"], r["indicator"], r["benchmark"]),
            "差距": r["gap"], "标准误": r["se"], "q 值": r["q_value"], "严重程度": r["severity"],
            "与上一轮相比": labels.get(r["previous_status"], r["previous_status"]),
            "整改状态": r["status"], "牵头单位": r["lead_unit"], "配合单位": r["support_units"],
            "整改目标": r["target"], "原因分析线索": _cause_hint(r.get("evidence")),
            **{h: e.get(h) for h in INPUTS},
            "核对提示": "", "校验码": check_code(r["problem_id"]), "年份": int(r["year"]),
            "区县代码": r["county_code"],
        }  # fmt: skip
        row["核对提示"] = _flag(row, as_of)
        rows.append(row)
    known = set(problems["problem_id"]) | (known or set())
    for pid, e in ent.items():
        if pid in known or not keep_gone:
            continue
        cc = str(e.get("county_code") or "")
        year = int(problems["year"].max()) if len(problems) else int(e["year"])
        rows.append({
            "year": year, "county_code": cc, "年份": year, "区县代码": cc,
            "_rule": "", "_indicator": "", "问题编号": pid, "上一轮编号": "",
            "区县": county_names.get(cc, cc), "领域": "", "问题": f"（{GONE}：{e['source']}）",
            "数值": None, "参照": None, "差距": None, "标准误": None, "q 值": None, "严重程度": "",
            "与上一轮相比": "", "整改状态": "", "牵头单位": "", "配合单位": "", "整改目标": "",
            "原因分析线索": "", **{h: e.get(h) for h in INPUTS}, "核对提示": GONE,
            "校验码": check_code(pid),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _cause_hint(evidence: str | None) -> str:
    """The problem's 原因分析线索 (pipeline/evidence/causes.py), from its evidence JSON."""
    if not evidence:
        return ""
    return str(json.loads(evidence).get("cause_hint") or "")


def _flag(row: Mapping, as_of: dt.date | None) -> str:
    flags = []
    due = row.get("完成时限")
    if due is not None and as_of is not None and due < as_of and row.get("进展") != "已完成":
        flags.append(f"{OVERDUE}（截至 {as_of.isoformat()}）")
    if row.get("整改状态") == schemas.STATUS_CLOSABLE:
        flags.append("本轮已达标，请审核销号")
    return "；".join(flags)


def ledger_workbook(
    rows: pd.DataFrame, schools: pd.DataFrame, title: str, with_county: bool
) -> bytes:
    """One ledger workbook (see the module docstring)."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {
        "in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
        "strings_to_urls": False, "nan_inf_to_errors": False,
    })  # fmt: skip
    wb.set_properties({"title": title, "created": FIXED_TIME, "comments": "eqm 生成，内部资料"})
    base = {"valign": "top", "text_wrap": True, "border": 1, "font_size": 10}
    head = wb.add_format({**base, "bold": True, "bg_color": "#DDEBF7", "align": "center",
                          "locked": True})  # fmt: skip
    locked = wb.add_format(base)
    editable = wb.add_format({**base, "locked": False, "bg_color": "#FFF9E5"})
    date_in = wb.add_format({**base, "locked": False, "bg_color": "#FFF9E5",
                             "num_format": "yyyy-mm-dd"})  # fmt: skip
    fmts: dict[str, Any] = {}

    def numfmt(f: str):
        if f not in fmts:
            fmts[f] = wb.add_format({**base, "num_format": f})
        return fmts[f]

    ws = wb.add_worksheet(SHEET)
    cols = [c for c in COLUMNS if with_county or c != "区县"]
    for j, h in enumerate(cols):
        ws.write_string(0, j, h, head)
        ws.set_column(j, j, WIDTHS.get(h, 10))
    for h in HIDDEN:  # machine columns: the read-back checks them
        ws.set_column(cols.index(h), cols.index(h), WIDTHS[h], None, {"hidden": True})
    for i, r in enumerate(rows.to_dict("records"), start=1):
        for j, h in enumerate(cols):
            v = r.get(h)
            kind = {"数值": "value", "参照": "value", "差距": "gap", "标准误": "se"}.get(h)
            if h == "完成时限":
                if isinstance(v, dt.date):
                    ws.write_datetime(i, j, dt.datetime(v.year, v.month, v.day), date_in)
                else:
                    ws.write_blank(i, j, None, date_in)
                continue
            fmt = editable if h in INPUTS else locked
            if kind and isinstance(v, int | float) and not pd.isna(v):
                fmt = numfmt(_unit_format(r["_rule"], r["_indicator"], kind))
            elif h == "q 值" and isinstance(v, float) and not pd.isna(v):
                fmt = numfmt("0.0000")
            _cell(ws, i, j, v, fmt)
    n = len(rows)
    last = max(n, 200)  # room for the drop-downs below the rows, never a formula
    for h, allowed in (("进展", PROGRESS), ("销号审核", REVIEW)):
        j = cols.index(h)
        ws.data_validation(1, j, last, j, {"validate": "list", "source": list(allowed)})
    j = cols.index("完成时限")
    ws.data_validation(1, j, last, j, {
        "validate": "date", "criteria": ">=", "value": dt.datetime(2015, 1, 1),
        "error_message": "请填写日期，例如 2023-06-30",
    })  # fmt: skip
    _print_setup(ws, len(cols), title)
    ws.freeze_panes(1, 1)
    if n:
        ws.autofilter(0, 0, n, len(cols) - 1)
    ws.protect("", {"autofilter": True, "sort": True, "format_columns": True,
                    "format_rows": True})  # fmt: skip
    _school_sheet(wb, schools, base, head, title, with_county)
    _note_sheet(wb, head, locked)
    wb.close()
    return buf.getvalue()


def _print_setup(ws, ncols: int, title: str) -> None:
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)  # fit to page width, as many pages down as needed
    ws.repeat_rows(0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_header(f"&L{title}&R内部资料")
    ws.set_footer("&C第 &P 页，共 &N 页")


def _cell(ws, i: int, j: int, v: Any, fmt) -> None:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) or v == "":
        ws.write_blank(i, j, None, fmt)
    elif isinstance(v, bool):
        ws.write_string(i, j, "是" if v else "否", fmt)
    elif isinstance(v, int | float):
        ws.write_number(i, j, float(v), fmt)
    else:
        ws.write_string(i, j, str(v), fmt)


def _school_sheet(wb, sc: pd.DataFrame, base: dict, head, title: str, with_county: bool) -> None:
    """Every school section's seven values, standards, shares and 达标 flags, by school id."""
    ws = wb.add_worksheet(SCHOOL_SHEET)
    text = wb.add_format({**base, "num_format": "@"})
    pct = wb.add_format({**base, "num_format": '0"%"'})
    count = wb.add_format({**base, "num_format": "0"})
    hdr = [*(["区县"] if with_county else []), "学校编号", "学校名称", "学段"]
    for ind in schemas.RESOURCE_INDICATORS:
        u = schemas.RESOURCE_UNITS[ind]
        hdr += [f"{ind} {schemas.RESOURCE_INDICATORS[ind]}（{u}）", f"{ind} 标准", f"{ind} 为标准的",
                f"{ind} 达标"]  # fmt: skip
    hdr += ["达标项数", "达到学校要求"]
    for j, h in enumerate(hdr):
        ws.write_string(0, j, h, head)
        ws.set_column(j, j, 16 if j < len(hdr) - 2 else 10)
    vfmt = {ind: wb.add_format({**base, "num_format": "0." + "0" * d if d else "0"})
            for ind, d in schemas.RESOURCE_DECIMALS.items()}  # fmt: skip
    for i, r in enumerate(sc.to_dict("records"), start=1):
        j = 0
        if with_county:
            ws.write_string(i, j, str(r.get("_county_name", "")), text)
            j += 1
        for v in (r["school_id"], r.get("school_name") or "",
                  schemas.STAGE_LABELS.get(r["stage"], r["stage"])):  # fmt: skip
            ws.write_string(i, j, str(v), text)
            j += 1
        for ind in schemas.RESOURCE_INDICATORS:
            v, thr = r.get(ind), r.get(f"_std_{ind}")
            _cell(ws, i, j, v, vfmt[ind])
            _cell(ws, i, j + 1, thr, vfmt[ind])
            share = v / thr * 100 if v is not None and pd.notna(v) and thr else None
            _cell(ws, i, j + 2, share, pct)
            flag = "无数据" if v is None or pd.isna(v) else ("是" if thr and v >= thr else "否")
            ws.write_string(i, j + 3, flag if thr else "—", text)
            j += 4
        _cell(ws, i, j, r.get("n_met"), count)
        ws.write_string(i, j + 1, {True: "是", False: "否"}.get(r.get("passes"), "无法判定"), text)
    _print_setup(ws, len(hdr), title)
    ws.freeze_panes(1, 4 if with_county else 3)
    ws.protect("", {"autofilter": True, "sort": True, "format_columns": True})


def _note_sheet(wb, head, locked) -> None:
    ws = wb.add_worksheet(NOTE_SHEET)
    lines = [
        "本台账由 eqm 根据监测数据生成，内部资料，不对学校排名。",
        "黄色单元格由区县填写：整改措施、责任人、完成时限（日期）、进展（下拉选择）、佐证材料；"
        "销号审核由督导室填写。其余单元格为计算结果，已锁定。",
        "填好后请将工作簿放回项目的 data/raw/ledger/ 文件夹（文件名不限），重新运行 eqm run："
        "填写的内容会带入本轮和下一轮新生成的台账中对应问题的行，不会丢失。",
        "请勿修改问题编号、表头和工作表名称（每行有隐藏的校验码，编号被改动会提示错误）。",
        "完成时限已过且进展不是「已完成」的行，在「核对提示」中标为「已逾期」；"
        "本轮已不在清单中的问题保留填报内容并注明。",
        "整改状态：待整改（本轮新发现）、整改中（上一轮已有）、建议销号（上一轮问题本轮已达标，"
        "不计入问题数）。",
        "原因分析线索：本县与该问题的成绩显著相关、且显著差于全国的相关因素（学生、教师、校长问卷），"
        "只说明相关，不能据此推断因果；整改措施请结合学校实际调研确定。",
    ]
    ws.write_string(0, 0, "填写说明", head)
    ws.set_column(0, 0, 110)
    wrap = locked
    for i, t in enumerate(lines, start=1):
        ws.write_string(i, 0, t, wrap)


def ledger_books(
    problems: pd.DataFrame, school_compliance: pd.DataFrame, entries: pd.DataFrame,
    as_of: dt.date | None, county_names: Mapping[str, str], city_code: str,
    resource_thresholds: Mapping[str, Mapping[str, float]],
) -> dict[tuple[int, str], bytes]:  # fmt: skip
    """``{(year, "city" | county_code): xlsx bytes}`` for every round."""
    out = {}
    sc = school_compliance.copy()
    sc["county_code"] = sc["county_code"].astype(str)
    for ind in schemas.RESOURCE_INDICATORS:
        sc[f"_std_{ind}"] = sc["stage"].map(
            lambda s, ind=ind: resource_thresholds.get(str(s), {}).get(ind)
        )
    sc["_county_name"] = sc["county_code"].map(lambda c: county_names.get(c, c))
    sc = sc[sc["county_code"] != str(city_code)].sort_values(
        ["county_code", "school_id", "stage"], kind="mergesort"
    )
    years = sorted(set(problems["year"].astype(int)) | set(sc["year"].astype(int)))
    known = set(problems["problem_id"])
    for year in years:
        rows = ledger_rows(
            problems[problems["year"] == year], entries, as_of, county_names, known,
            keep_gone=year == years[-1],
        )  # fmt: skip
        s_year = sc[sc["year"].astype(int) == year]
        name = f"{year}年整改台账"
        out[(year, "city")] = ledger_workbook(rows, s_year, f"{name}（全市）", True)
        counties = sorted(
            set(rows.get("county_code", pd.Series(dtype=str))) | set(s_year["county_code"])
        )
        for cc in counties:
            if cc == str(city_code) or not cc:
                continue
            out[(year, cc)] = ledger_workbook(
                rows[rows["county_code"] == cc] if len(rows) else rows,
                s_year[s_year["county_code"] == cc],
                f"{name}（{county_names.get(cc, cc)}）", False,
            )  # fmt: skip
    return out
