"""Chinese wording of the problem list: titles from the rule templates, measure fragments of a
merged achievement problem, the unmet indicators of a school, units, and the evidence JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.evidence.params import EvidenceParams
from pipeline.evidence.rules import BAD_DIRECTION, SCOPE_LABELS

LEVEL_NAMES = {1: "水平Ⅰ", 2: "水平Ⅱ", 3: "水平Ⅲ", 4: "水平Ⅳ"}
# name of what a candidate rule measures (resolved wording of merged and single problems)
MEASURE_NAMES = {
    "LEVEL": "学业水平", "MEAN": "平均成绩", "MEDIUM": "中等及以上学生比例",
    "HOMEWORK": "书面作业超时比例", "SLEEP": "睡眠达标比例", "MYOPIA": "视力不良比例",
    "FITNESS": "体质健康达标比例", "ICC": "校际差异率", "GAP": "平均成绩差",
}  # fmt: skip


def fmt(x: Any, nd: int = 1) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{float(x):.{nd}f}"


def decimals(rule: str) -> int:
    return 3 if rule in ("ICC", "RES") else (0 if rule in ("LEVEL", "SCHOOL") else 1)


def group_label(gv: str, gval: str) -> str:
    if not gv:
        return ""
    labels = {
        **schemas.GENDER_LABELS, **schemas.URBAN_RURAL_LABELS, "left_behind": "留守",
        "not_left_behind": "非留守", "migrant": "随迁", "not_migrant": "非随迁",
        "non_migrant": "非随迁", "top": "最高四分位", "bottom": "最低四分位",
        "Q1": "最低四分位", "Q2": "第二四分位", "Q3": "第三四分位", "Q4": "最高四分位",
    }  # fmt: skip
    sides = [labels.get(s, s) for s in str(gval).split("-")]
    return f"{schemas.GROUP_VAR_LABELS.get(gv, gv)}（{'与'.join(sides)}）"


def _indicator_label(ind: str) -> str:
    return schemas.INDICATOR_LABELS.get(ind, schemas.RESOURCE_INDICATORS.get(ind, ind))


def fields(r: Mapping, names: Mapping[str, str]) -> dict[str, str]:
    """``str.format`` fields of a title template for one candidate row ``r``."""
    rule = r["rule_id"]
    nd = decimals(rule)
    ind = str(r["indicator"])
    unit = (
        "%" if ind.startswith("pct_") else ("分" if ind in ("mean_score", "gap_mean_score") else "")
    )
    bad = BAD_DIRECTION.get(ind, 1)
    word = "大于" if rule == "GAP" else ("高于" if bad > 0 else "低于")
    bench_v = abs(r["benchmark"]) if rule == "GAP" and pd.notna(r["benchmark"]) else r["benchmark"]
    bench = f"{r['bench_label']}（{fmt(bench_v, nd)}{unit}）"
    comparison = f"差距显著大于{bench}" if rule == "GAP" else f"显著{word}{bench}"
    margin = r.get("margin")
    if margin is not None and pd.notna(margin):  # no SE: decided by a margin, not a test
        comparison = f"差距大于{bench}" if rule == "GAP" else f"{word}{bench}"
        if margin > 0:
            m_unit = "个百分点" if unit == "%" else "分"
            comparison += f"，差距达到判定差值{fmt(margin, nd)}{m_unit}（官方报告未给出标准误）"
        else:
            comparison += "（官方报告未给出标准误）"
    stage = ""
    if rule == "RES":
        stage = schemas.STAGE_LABELS.get(r["group_value"], r["group_value"])
    value = fmt(r["value"], nd)
    if rule == "LEVEL" and pd.notna(r["value"]):
        value = LEVEL_NAMES.get(int(round(r["value"])), value)
    grade = r["grade"]
    return {
        "county": names.get(r["county_code"], r["county_code"]),
        "grade": schemas.GRADE_LABELS.get(int(grade), "") if pd.notna(grade) else "",
        "subject": schemas.SUBJECT_LABELS.get(r["subject"], r["subject"]),
        "indicator": _indicator_label(ind),
        "group": group_label(r["group_var"], r["group_value"]) if rule == "GAP" else "",
        "stage": stage,
        "school": r.get("school_name") or "",
        "value": value,
        "benchmark": fmt(r["benchmark"], nd),
        "bench_abs": fmt(bench_v, nd),
        "bench_label": r["bench_label"],
        "gap": fmt(r["gap"], nd),
        "threshold": fmt(r["threshold"], 2),
        "comparison": comparison,
        "measures": "",
        "unmet": "",
        "targets": "",
    }


def met_fragment(r: Mapping, names: Mapping[str, str]) -> str:
    """A measure that does not fail, in words: 「平均成绩502.1分，未显著低于全国（500.0分）」."""
    f = fields(r, names)
    rule = r["rule_id"]
    if rule == "LEVEL":
        return f"学业水平为{f['value']}"
    if rule == "ICC":
        return f"校际差异率为{f['value']}，低于{f['threshold']}"
    ind = str(r["indicator"])
    unit = "%" if ind.startswith("pct_") else "分"
    word = "高于" if BAD_DIRECTION.get(ind, 1) > 0 else "低于"
    if rule == "GAP":
        word = "大于"
    name = MEASURE_NAMES.get(rule, f["indicator"])
    if pd.isna(r.get("benchmark")):
        return f"{name}{f['value']}{unit}"
    how = "未" if pd.notna(r.get("margin")) else "未显著"
    return f"{name}{f['value']}{unit}，{how}{word}{f['bench_label']}（{f['benchmark']}{unit}）"


def school_unmet_text(sections: list[dict]) -> str:
    """The unmet (and 无数据) indicators of a school's failing sections, e.g.
    「7项中2项未达标：生均教学仪器设备值280元/生（标准2000元/生，为标准的14%）；…」; a 一贯制
    school names each section (「小学部…；初中部…」)."""
    parts = []
    for sec in sections:
        unmet = [d for d in sec["details"] if d["met"] is False]
        nodata = [d for d in sec["details"] if d["value"] is None]
        items = []
        for d in unmet:
            ind = d["indicator"]
            u = schemas.RESOURCE_UNITS.get(ind, "")
            nd = schemas.RESOURCE_DECIMALS.get(ind, 2)
            pct = f"{d['ratio'] * 100:.0f}" if d["ratio"] is not None else "—"
            items.append(
                f"{schemas.RESOURCE_INDICATORS[ind]}{fmt(d['value'], nd)}{u}"
                f"（标准{fmt(d['standard'], nd)}{u}，为标准的{pct}%）"
            )
        items += [f"{schemas.RESOURCE_INDICATORS[d['indicator']]}无数据" for d in nodata]
        head = f"7项中{len(unmet)}项未达标" if unmet else "逐项数值未见未达标项（请核对学校达标表）"
        if nodata:
            head += f"、{len(nodata)}项无数据"
        prefix = (
            schemas.STAGE_LABELS.get(sec["stage"], sec["stage"]) + "部" if len(sections) > 1 else ""
        )
        parts.append(f"{prefix}{head}：{'；'.join(items)}")
    return "；".join(parts)


def school_targets_text(sections: list[dict]) -> str:
    """The standard each unmet indicator must reach: 「生均教学仪器设备值 ≥ 2000元/生」."""
    parts = []
    for sec in sections:
        stage = schemas.STAGE_LABELS.get(sec["stage"], sec["stage"]) if len(sections) > 1 else ""
        for d in sec["details"]:
            if d["met"] is False or d["value"] is None:
                ind = d["indicator"]
                nd = schemas.RESOURCE_DECIMALS.get(ind, 2)
                parts.append(
                    f"{stage}{schemas.RESOURCE_INDICATORS[ind]} ≥ {fmt(d['standard'], nd)}"
                    f"{schemas.RESOURCE_UNITS.get(ind, '')}"
                )
    return "，".join(parts)


def to_json(obj: Any) -> str:
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if o is None or o is pd.NA:
            return None
        if isinstance(o, np.bool_ | bool):
            return bool(o)
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, float | np.floating):
            return float(o) if math.isfinite(o) else None
        return o

    return json.dumps(clean(obj), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def responsible(rule: str, indicator: str, params: EvidenceParams) -> tuple[str, str]:
    """``(lead, supporting units joined by 、)`` of a problem rule (``units_by_indicator`` first)."""
    spec = params.rules.get(rule)
    if spec is None:
        return "", ""
    u = spec.units_by_indicator.get(indicator, spec.units)
    return u.lead, "、".join(u.support)


def evidence_text(ev_json: str) -> str:
    """A readable Chinese rendering of the evidence JSON (each number with its source)."""
    ev = json.loads(ev_json)
    parts = [ev.get("note") or ""]
    for m in ev.get("measures") or []:
        if m.get("text"):
            parts.append(("【未达要求】" if m.get("fires") else "【达到要求】") + m["text"])
    for row in ev.get("rows", []):
        if "estimate" in row:
            parts.append(
                f"本区县 {_indicator_label(row['indicator'])} = "
                f"{fmt(row.get('estimate'), 3)}（标准误 {fmt(row.get('se'), 3)}，"
                f"学生 {fmt(row.get('n_students'), 0)} 人，学校 {fmt(row.get('n_schools'), 0)} 所，"
                f"方法 {row.get('method') or '—'}，来源 {row.get('source') or '—'}"
                + _page(row.get("source_page"))
                + "）"
            )
        elif "cv" in row:
            parts.append(
                f"差异系数 = {fmt(row.get('cv'), 3)}（县域均值 {fmt(row.get('county_value'), 2)}，"
                f"标准 {fmt(row.get('threshold'), 2)}，学校 {fmt(row.get('n_schools'), 0)} 所）"
            )
        elif "n_met" in row:
            parts.append(
                f"学校 {row.get('school_name')}（{row.get('school_id')}，"
                f"{schemas.STAGE_LABELS.get(row.get('stage'), row.get('stage'))}）"
                f"达标 {fmt(row.get('n_met'), 0)} 项"
            )
    for b in ev.get("benchmark_rows", []):
        parts.append(
            f"参照 {SCOPE_LABELS.get(b.get('scope'), b.get('scope'))} = {fmt(b.get('value'), 3)}"
            f"（标准误 {fmt(b.get('se'), 3)}" + _page(b.get("source_page")) + "）"
        )
    if ev.get("z") is not None:
        parts.append(
            f"检验 z = {ev['z']:.2f}，p = {fmt(ev.get('p_value'), 4)}，"
            f"q = {fmt(ev.get('q_value'), 4)}"
        )
    pv = ev.get("previous")
    if pv:
        own = f"（上一轮清单编号 {pv['listed_id']}）" if pv.get("listed_id") else ""
        parts.append(
            f"上一轮（{pv.get('year')}）{own}数值 {fmt(pv.get('value'), 3)}，"
            f"变化检验 z = {fmt(pv.get('change_z'), 2)}，p = {fmt(pv.get('change_p'), 4)}，"
            f"q = {fmt(pv.get('change_q'), 4)}"
        )
    tr = ev.get("trend")
    if tr:
        parts.append(
            f"与上一周期（{tr.get('year')}年）同学科相比：{fmt(tr.get('previous_value'), 1)} → "
            f"{fmt(tr.get('value'), 1)}，变化 {fmt(tr.get('change'), 1)}（标准误 "
            f"{fmt(tr.get('se_change'), 2)}，含链接误差 {fmt(tr.get('linking_error'), 2)}），"
            f"p = {fmt(tr.get('p_value'), 4)}"
        )
    if ev.get("unmatched"):
        parts.append("上一轮清单中的该问题未能与 eqm 计算的对象对应，按原样保留")
    return "；".join(p for p in parts if p)


def _page(page: Any) -> str:
    if not page:
        return ""
    page = str(page)
    return f"，报告{page}" if "页" in page else f"，报告第 {page} 页"
