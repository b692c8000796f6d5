"""The evidence workbook ``evidence/<year>/rectification_evidence.xlsx``: a summary sheet and one
sheet per county. Problems and close-outs (建议销号) are counted apart."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.evidence.params import EvidenceParams
from pipeline.evidence.text import evidence_text

PROBLEM_COLS = schemas.PROBLEMS.names
PREVIOUS_STATUS_LABELS = schemas.PREVIOUS_STATUS_LABELS
XLSX_COLUMNS = [c for c in PROBLEM_COLS if c != "evidence"]
FIXED_TIME = datetime(2000, 1, 1)  # workbook metadata date: fixed so the file is byte-stable
NUMBER_FORMATS = {"score": "0.0", "rate": "0.000", "count": "0", "p": "0.0000"}
RATE_INDICATORS = {"school_difference_rate", "eta_squared", "school_mean_cv"}


def _value_kind(rule_id: str, indicator: str) -> str:
    """Display format of a problem's value / benchmark / gap / SE (report decimals, issue 6)."""
    if rule_id == "RES" or indicator in RATE_INDICATORS:
        return "rate"  # 差异系数 and 校际差异率: 3 decimals
    if rule_id in {"SCHOOL", "LEVEL"} or indicator == "achievement_level":
        return "count"  # indicators met / level code
    return "score"  # scores, score gaps, percentages: 1 decimal


def _width(values: list[str], header: str) -> float:
    def w(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)

    longest = max([w(header), *(w(v) for v in values[:500])]) if values else w(header)
    return float(min(max(longest + 2, 8), 60))


def evidence_workbooks(
    problems: pd.DataFrame,
    school_compliance: pd.DataFrame,
    params: EvidenceParams,
    county_names: Mapping[str, str],
    city_code: str,
) -> dict[int, bytes]:
    """One xlsx per year: a summary sheet and one sheet per county (Chinese headers from
    :data:`schemas.PROBLEMS`, frozen header, readable widths). Every text cell is written as a
    string (``write_string``, formulas/URLs/numbers never inferred), so data beginning with ``=``,
    ``+``, ``-`` or ``@`` cannot become a formula. Failing schools are listed by school id, not ranked.
    """
    import xlsxwriter

    years = sorted(set(problems["year"].astype(int)) | set(school_compliance["year"].astype(int)))
    label = {c.name: c.label for c in schemas.PROBLEMS.columns}
    out: dict[int, bytes] = {}
    for year in years:
        p = problems[problems["year"] == year]
        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(
            buf,
            {
                "in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                "strings_to_urls": False, "nan_inf_to_errors": False,
            },
        )  # fmt: skip
        wb.set_properties({"title": f"{year}年问题清单与证据", "created": FIXED_TIME})
        head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        # Display formats only (the cell keeps full precision): scores and percentages 1 decimal,
        # rates 3 decimals, p/q 4 decimals, counts and levels whole numbers.
        num = {
            k: wb.add_format({"valign": "top", "num_format": f}) for k, f in NUMBER_FORMATS.items()
        }

        # summary sheet
        ws = wb.add_worksheet("汇总")
        hdr = ["区县代码", "区县", "问题数", "高", "中", "低",
               *(PREVIOUS_STATUS_LABELS[s] for s in PREVIOUS_STATUS_LABELS if s != "resolved"),
               "建议销号", "资源配置未达标学校数"]  # fmt: skip
        counties = sorted(
            set(p["county_code"])
            | set(
                school_compliance.loc[school_compliance["year"] == year, "county_code"].astype(str)
            )
        )
        counties = [c for c in counties if c != str(city_code)]
        rows = []
        for cc in counties:
            q = p[p["county_code"] == cc]
            open_ = q["status"].isin(schemas.PROBLEM_OPEN_STATUSES)
            n_fail = int(((q["rule_id"] == "SCHOOL") & open_).sum())
            rows.append([
                cc, county_names.get(cc, cc), int(open_.sum()),
                *((q.loc[open_, "severity"] == s).sum() for s in schemas.SEVERITIES),
                *((q.loc[open_, "previous_status"] == s).sum()
                  for s in PREVIOUS_STATUS_LABELS if s != "resolved"),
                int((q["status"] == schemas.STATUS_CLOSABLE).sum()), n_fail,
            ])  # fmt: skip
        _write_table(ws, hdr, rows, head, top, wrap_cols=set())
        ws.write_string(len(rows) + 2, 0, "说明：", top)
        ws.write_string(
            len(rows) + 2, 1,
            f"显著性：BH 校正后 q < {params.alpha:g} 判定；官方报告未给出标准误的数值按差值是否超过"
            f"判定差值判定（不作检验）；资源配置类问题依据普查数据按标准判定。"
            f"学校名单按学校编号排列，不作排名。责任单位与整改时限为建议，请在整改方案中确认。",
            top,
        )  # fmt: skip

        # one sheet per county
        used: set[str] = {"汇总"}
        for cc in counties:
            q = p[p["county_code"] == cc]
            name = _sheet_name(f"{county_names.get(cc, cc)}_{cc}", used)
            ws = wb.add_worksheet(name)
            hdr = [label[c] for c in XLSX_COLUMNS] + ["证据说明", "原因提示", "证据（JSON）"]
            data, fmts = [], []
            for r in q.to_dict("records"):
                ev = json.loads(r["evidence"])
                row = []
                for c in XLSX_COLUMNS:
                    v = r[c]
                    if c == "grade":
                        v = schemas.GRADE_LABELS.get(int(v), str(v)) if pd.notna(v) else ""
                    elif c == "subject":
                        v = schemas.SUBJECT_LABELS.get(v, v)
                    elif c == "indicator":
                        v = schemas.INDICATOR_LABELS.get(v, schemas.RESOURCE_INDICATORS.get(v, v))
                    elif c == "previous_status":
                        v = PREVIOUS_STATUS_LABELS.get(v, v)
                    row.append(v)
                row += [evidence_text(r["evidence"]), ev.get("cause_hint") or "", r["evidence"]]
                data.append(row)
                kind = _value_kind(r["rule_id"], r["indicator"])
                fmts.append(
                    {XLSX_COLUMNS.index(c): num[kind] for c in ("value", "benchmark", "gap", "se")}
                    | {XLSX_COLUMNS.index(c): num["p"] for c in ("p_value", "q_value")}
                )
            wrap_cols = {hdr.index("证据说明"), hdr.index("问题"), hdr.index("证据（JSON）")}
            _write_table(ws, hdr, data, head, top, wrap, wrap_cols, fmts)
            # failing schools by name, ordered by school id (never ranked)
            fs = q[(q["rule_id"] == "SCHOOL") & q["status"].isin(schemas.PROBLEM_OPEN_STATUSES)]
            start = len(data) + 3
            ws.write_string(start, 0, "资源配置未达标学校名单（按学校编号排列，不排名）", head)
            sub_hdr = ["学校编号", "学校名称", "学段", "达标项数", "未达标项最低达成率"]
            for j, h in enumerate(sub_hdr):
                ws.write_string(start + 1, j, h, head)
            recs = [x for e in fs["evidence"] for x in json.loads(e)["rows"] if "n_met" in x]
            recs.sort(key=lambda x: (str(x.get("school_id")), str(x.get("stage"))))
            for i, x in enumerate(recs, start=start + 2):
                vals = [str(x.get("school_id") or ""), str(x.get("school_name") or ""),
                        schemas.STAGE_LABELS.get(x.get("stage"), str(x.get("stage"))),
                        x.get("n_met"), x.get("min_ratio_unmet")]  # fmt: skip
                for j, v in enumerate(vals):
                    _cell(ws, i, j, v, num["rate"] if j == 4 else num["count"] if j == 3 else top)
        wb.close()
        out[int(year)] = buf.getvalue()
    return out


def _sheet_name(name: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\]", "_", name)[:31]
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base[:28]}_{k}"
    used.add(name)
    return name


def _cell(ws, i: int, j: int, v: Any, fmt) -> None:
    if v is None or v is pd.NA or v == "" or (isinstance(v, float) and not math.isfinite(v)):
        ws.write_blank(i, j, None, fmt)
    elif isinstance(v, bool | np.bool_):
        ws.write_string(i, j, "是" if v else "否", fmt)
    elif isinstance(v, int | float | np.integer | np.floating):
        ws.write_number(i, j, float(v), fmt)
    else:
        ws.write_string(i, j, str(v), fmt)


def _write_table(ws, hdr, rows, head, top, wrap=None, wrap_cols=frozenset(), fmts=None) -> None:
    for j, h in enumerate(hdr):
        ws.write_string(0, j, h, head)
    for i, row in enumerate(rows, start=1):
        row_fmts = fmts[i - 1] if fmts else {}
        for j, v in enumerate(row):
            fmt = row_fmts.get(j) or (wrap if j in wrap_cols and wrap is not None else top)
            _cell(ws, i, j, v, fmt)
    for j, h in enumerate(hdr):
        col = [str(r[j]) for r in rows if r[j] is not None]
        width = 60.0 if j in wrap_cols else _width(col, h)
        ws.set_column(j, j, width)
    ws.freeze_panes(1, 0)
    if rows:
        ws.autofilter(0, 0, len(rows), len(hdr) - 1)
