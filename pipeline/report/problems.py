"""The problem list as the reports show it: problems apart from close-outs, in one vocabulary.

A row of ``problems.parquet`` is a *problem* when its ``status`` is 待整改 or 整改中
(:data:`pipeline.schemas.PROBLEM_OPEN_STATUSES`) and a *close-out* when it is 建议销号
(:data:`pipeline.schemas.STATUS_CLOSABLE`): an earlier round's problem that now meets its standard.
Close-outs are never counted in 问题数; they are listed in their own short table
「上一轮问题已达标（建议销号）」. Any other status (an older run's 待复核) is shown as a problem with
its own word, so nothing is hidden. Status words and 与上一轮相比 labels are those of
:mod:`pipeline.schemas` (``PREVIOUS_STATUS_LABELS``), the same in PDF, HTML and workbook.

The evidence JSON belongs to the evidence stage and is read defensively: keys may be absent, and
an older run's shape (``benchmark_label`` at the top, no ``measures``) still renders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.report.formats import (
    MISSING,
    SUPPRESSED,
    Fmt,
    _flag,
    _isnum,
    _key_part,
    _n,
    _num,
    _table,
    _txt,
    cell_label,
    group_label,
    kind_of,
)

SEVERITY_ORDER = schemas.SEVERITIES
FIRST_ROUND_TEXT = "首轮监测，无上一轮问题清单可对照"
CLOSEOUT_TITLE = "上一轮问题已达标（建议销号）"
CLOSEOUT_COLUMNS = ["编号", "问题", "上一轮数值 → 本轮数值", "标准/参照", "检验"]
# 与上一轮相比 of a problem (a close-out's is "resolved")
PROBLEM_PREVIOUS = tuple(s for s in schemas.PROBLEM_STATUSES if s != "resolved")
CENSUS_RULES = ("RES", "SCHOOL")  # census values: no sampling error, judged against the standard
SCHOOL_STANDARD = "至少 6 项达标、其余不低于标准的 85%"  # the SCHOOL rule's standard in words
CENSUS_TEST = "普查数据"
CENSUS_NOTE = "“普查数据”：学校办学条件为全县普查，没有抽样误差，直接与标准比较。"
NO_DEADLINE = "未定"  # a problem whose 整改时限 the county has not set yet
UNMATCHED_NOTE = "上一轮清单中的这一问题无法与本轮数据逐项对应，请人工核对。"
DOMAIN_LABELS = {
    "achievement": "学业表现", "academic": "学业表现", "balance": "均衡状况", "equity": "均衡状况",
    "resource": "资源配置", "resources": "资源配置", "burden": "课业负担", "health": "身心健康",
    "burden_health": "负担与健康", "data": "数据质量",
}  # fmt: skip


def value_kind(r: Mapping) -> str:
    """How a problem's value prints: a school's count of indicators met, else by indicator."""
    ind = _txt(r.get("indicator"))
    if _txt(r.get("rule_id")) == "SCHOOL" or ind in ("n_met", "school_compliance"):
        return "count"
    return kind_of(ind)


def previous_label(code: Any) -> str:
    code = _txt(code)
    return schemas.PREVIOUS_STATUS_LABELS.get(code, code or MISSING)


def is_closeout(df: pd.DataFrame) -> pd.Series:
    if df is None or df.empty or "status" not in df:
        return pd.Series(False, index=getattr(df, "index", None), dtype=bool)
    return df["status"].fillna("").astype(str).str.strip().eq(schemas.STATUS_CLOSABLE)


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(problems, close-outs) of a problems table."""
    c = is_closeout(df)
    return df[~c], df[c]


def problems_for(problems: pd.DataFrame | None, year: int, county: str) -> pd.DataFrame:
    """Rows of one county and round, most severe first, then by number."""
    if problems is None or problems.empty:
        return pd.DataFrame(columns=schemas.PROBLEMS.names)
    p = problems[(problems["year"] == year) & (problems["county_code"].astype(str) == county)]
    sev = p["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}).fillna(9)
    return (
        p.assign(_sev=sev).sort_values(["_sev", "problem_id"], kind="stable").drop(columns="_sev")
    )


def severity_counts(open_: pd.DataFrame) -> list[tuple[str, int]]:
    """Problems per severity (counts of rows)."""
    if open_.empty:
        return []
    vc = open_["severity"].fillna("").value_counts()
    return [(s, int(vc[s])) for s in SEVERITY_ORDER if s in vc.index]


def previous_counts(open_: pd.DataFrame, closeouts: pd.DataFrame) -> list[tuple[str, int]]:
    """Earlier rounds' problems by how they stand now: the re-checked problems per
    与上一轮相比 (new ones left out) and the close-outs (counts of rows)."""
    out = []
    if not open_.empty and "previous_status" in open_:
        vc = open_["previous_status"].fillna("").value_counts()
        out = [(previous_label(k), int(vc[k])) for k in PROBLEM_PREVIOUS[1:] if k in vc.index]
    if len(closeouts):
        out.append((f"{previous_label('resolved')}（建议销号）", len(closeouts)))
    return out


def units_sentence(r: Mapping) -> str:
    """「牵头单位 基教科；配合单位 教研室、人事科」, else :func:`units_text`."""
    lead, support = _txt(r.get("lead_unit")), _txt(r.get("support_units"))
    if lead:
        return f"牵头单位 {lead}" + (f"；配合单位 {support}" if support else "")
    return f"责任单位 {units_text(r)}"


def units_text(r: Mapping) -> str:
    """责任单位: ``responsible_unit``, else 牵头 / 配合 from ``lead_unit`` / ``support_units``."""
    text = _txt(r.get("responsible_unit"))
    if text:
        return text
    lead, support = _txt(r.get("lead_unit")), _txt(r.get("support_units"))
    parts = ([f"牵头：{lead}"] if lead else []) + ([f"配合：{support}"] if support else [])
    return "；".join(parts) or MISSING


# ------------------------------------------------------------------------------------------------
# Evidence JSON
# ------------------------------------------------------------------------------------------------


def parse_evidence(text: Any) -> dict:
    """The evidence JSON of a problem (shape owned by the evidence stage), read defensively.

    Returns ``rows``, ``benchmark_rows``, ``measures`` (lists of dicts), ``note``, ``cause_hint``,
    ``bench_label`` (text), ``previous`` (dict or None), ``trend`` (as stored, or None) and
    ``unmatched`` (bool); a bare list is taken as the rows.
    """
    empty = {
        "rows": [], "benchmark_rows": [], "measures": [], "note": "", "cause_hint": "",
        "bench_label": "", "previous": None, "trend": None, "unmatched": False, "rule_id": "",
    }  # fmt: skip
    if not isinstance(text, str) or not text.strip():
        return empty
    try:
        obj = json.loads(text)
    except ValueError:
        return empty
    if isinstance(obj, list):
        return {**empty, "rows": [r for r in obj if isinstance(r, dict)]}
    if not isinstance(obj, dict):
        return empty

    def dicts(key: str) -> list[dict]:
        v = obj.get(key)
        return [r for r in v if isinstance(r, dict)] if isinstance(v, list) else []

    measures = dicts("measures")
    bench_label = _txt(obj.get("benchmark_label")) or next(
        (_txt(m.get("bench_label")) for m in measures if _txt(m.get("bench_label"))), ""
    )
    return {
        "rows": dicts("rows"),
        "benchmark_rows": dicts("benchmark_rows"),
        "measures": measures,
        "note": _txt(obj.get("note")),
        "cause_hint": _txt(obj.get("cause_hint")),
        "bench_label": bench_label,
        "previous": obj.get("previous") if isinstance(obj.get("previous"), dict) else None,
        "trend": obj.get("trend"),
        "unmatched": obj.get("unmatched") is True,
        "rule_id": _txt(obj.get("rule_id")),
    }


def _first(r: Mapping, col: str, ev_prev: Mapping | None, key: str) -> Any:
    """A column of the problem row, else the same fact from the evidence's ``previous``."""
    v = r.get(col)
    if _isnum(v) and _txt(v) != "":
        return v
    return (ev_prev or {}).get(key)


def previous_text(f: Fmt, r: Mapping, ev: Mapping, kind: str) -> str:
    """「上一轮（2020 年，编号 NN2020-001）数值 0.200，变化检验 q = 0.030」, from the row's previous_*
    columns, else from the evidence's ``previous``; empty when there is no earlier value."""
    pv = ev.get("previous")
    value = _first(r, "previous_value", pv, "value")
    year = _key_part(_first(r, "previous_year", pv, "year"))
    pid = _txt(_first(r, "previous_problem_id", pv, "problem_id"))
    if pid == _txt(r.get("problem_id")):
        pid = ""  # the same number in every round: no need to repeat it
    if _num(value) is None and not pid:
        return ""
    where = "，".join(x for x in (f"{_txt(year)} 年" if _txt(year) else "", f"编号 {pid}" if pid else "") if x)  # fmt: skip
    text = f"上一轮（{where}）" if where else "上一轮"
    if _num(value) is not None:
        text += f"数值 {f.num(value, kind)}"
    q = _first(r, "change_q", pv, "change_q")
    if _num(q) is not None:
        text += f"，变化检验 q = {f.p(q)}"
    return text


def trend_text(f: Fmt, trend: Any, kind: str) -> str:
    """The evidence's ``trend`` in words: a sentence as stored, or ``[{year, value}, …]`` as
    「2019 年 0.200 → 2022 年 0.150」; anything else is not shown."""
    if isinstance(trend, str):
        return trend.strip()
    if isinstance(trend, dict):
        return _txt(trend.get("text") or trend.get("note"))
    if isinstance(trend, list):
        pts = [
            f"{_txt(_key_part(t.get('year')))} 年 {f.num(t.get('value'), kind)}"
            for t in trend
            if isinstance(t, dict) and _num(t.get("value")) is not None
        ]
        return " → ".join(pts) if len(pts) > 1 else ""
    return ""


def evidence_row(f: Fmt, e: Mapping, default_indicator: str) -> list[str]:
    """One evidence row: an indicator row, a resource CV row, a school row or a benchmark row."""
    hidden = _flag(e.get("suppressed"))
    ind = _txt(e.get("indicator")) or default_indicator
    gv = _txt(e.get("group_var"))
    what = schemas.INDICATOR_LABELS.get(ind, schemas.RESOURCE_INDICATORS.get(ind, ind))
    if gv:
        what += f"（{schemas.GROUP_VAR_LABELS.get(gv, gv)}：{group_label(gv, _txt(e.get('group_value')))}）"
    scope = schemas.SCOPE_LABELS.get(_txt(e.get("scope")), _txt(e.get("scope"))) or "本县"
    if "n_met" in e:  # a school of school_compliance
        obj = f"{_txt(e.get('school_name'))}（{_txt(e.get('school_id'))}）"
        return [_txt(e.get("year")), obj, "资源配置达标项数", scope, f"{_n(e, 'n_met')} 项",
                MISSING, MISSING, MISSING]  # fmt: skip
    if "cv" in e:  # a resource_balance row
        stage = schemas.STAGE_LABELS.get(_txt(e.get("stage")), _txt(e.get("stage")))
        return [_txt(e.get("year")), stage, f"{ind} 差异系数", scope, f.num(e.get("cv"), "rate"),
                MISSING, MISSING, _n(e, "n_schools")]  # fmt: skip
    kind = kind_of(ind)
    obj = cell_label(e.get("grade"), _txt(e.get("subject"))) if _isnum(e.get("grade")) else ""
    value = e.get("estimate", e.get("value"))
    return [
        _txt(e.get("year")), obj, what, scope,
        SUPPRESSED if hidden else f.num(value, kind),
        SUPPRESSED if hidden else f.spread(e.get("se"), kind),
        _n(e, "n_students") if "n_students" in e else MISSING,
        _n(e, "n_schools") if "n_schools" in e else MISSING,
    ]  # fmt: skip


def measures_table(f: Fmt, measures: list[dict], default_indicator: str) -> dict:
    """The tests a merged problem rests on (ACH: level, mean, 中等及以上), one row each."""
    rows = []
    for m in measures:
        ind = _txt(m.get("indicator")) or default_indicator
        kind = kind_of(ind)
        name = schemas.INDICATOR_LABELS.get(ind, schemas.RESOURCE_INDICATORS.get(ind, ind))
        bench = f.num(m.get("benchmark"), kind)
        label = _txt(m.get("bench_label"))
        if label and bench != MISSING and kind != "level":  # a level names itself (Ⅲ 良好)
            bench = f"{label} {bench}"
        rows.append([
            name, f.num(m.get("value"), kind), bench,
            f.spread(m.get("gap"), kind), f.spread(m.get("se"), kind),
            f.p(m.get("p_value")), f.p(m.get("q_value")),
            "是" if _flag(m.get("fires")) else "否",
        ])  # fmt: skip
    return _table(["检验项目", "数值", "参照", "差距", "标准误", "p 值", "q 值", "列为问题"], rows)


# ------------------------------------------------------------------------------------------------
# Close-outs
# ------------------------------------------------------------------------------------------------


def closeout_row(f: Fmt, r: Mapping) -> list[str]:
    """编号, 问题, 上一轮数值 → 本轮数值, 标准/参照, 检验 of one close-out."""
    ev = parse_evidence(r.get("evidence"))
    ind = _txt(r.get("indicator"))
    kind = value_kind(r)
    prev = _first(r, "previous_value", ev["previous"], "value")
    change = f"{f.num(prev, kind)} → {f.num(r.get('value'), kind)}"
    bench = r.get("benchmark")
    if _num(bench) is None and ev["measures"]:
        bench = ev["measures"][0].get("benchmark")
    label = ev["bench_label"] or "参照值"
    rule = _txt(r.get("rule_id"))
    if _num(bench) is not None:
        reference = f"{label} {f.num(bench, kind)}"
    else:
        reference = SCHOOL_STANDARD if rule == "SCHOOL" else MISSING
    q = _first(r, "change_q", ev["previous"], "change_q")
    census = rule in CENSUS_RULES or (ev["previous"] or {}).get("census") is True
    if _num(q) is not None:
        test = f"变化检验 q = {f.p(q)}"
    elif census:
        test = CENSUS_TEST
    else:
        test = MISSING
    title = _txt(r.get("title")) or schemas.INDICATOR_LABELS.get(ind, ind)
    return [_txt(r.get("problem_id")), title, change, reference, test]


def closeout_table(f: Fmt, closeouts: pd.DataFrame, county_names: Mapping | None = None) -> dict:
    """「上一轮问题已达标（建议销号）」: one short row per close-out; with ``county_names`` (the
    summary) a 区县 column first."""
    rows, cols = [], list(CLOSEOUT_COLUMNS)
    for r in closeouts.to_dict("records"):
        row = closeout_row(f, r)
        if county_names is not None:
            code = _txt(r.get("county_code"))
            row = [county_names.get(code, code), *row]
        rows.append(row)
    if county_names is not None:
        cols = ["区县", *cols]
    align = ["t id" if c == "编号" else "t wrap" for c in cols]
    census = any(r[-1] == CENSUS_TEST for r in rows)
    # fixed widths: an id such as SCH-450125-2145012501 cannot break before its digits
    widths = [25, 35, 14, 15, 11] if county_names is None else [8, 24, 30, 13, 14, 11]
    return _table(cols, rows, align=align, note=CENSUS_NOTE if census else None, widths=widths)


# ------------------------------------------------------------------------------------------------
# Links from other sections to the problems
# ------------------------------------------------------------------------------------------------


def open_by_id(open_: pd.DataFrame) -> dict[str, dict]:
    """problem_id → {"severity"} of the open problems."""
    return {
        _txt(r.get("problem_id")): {"severity": _txt(r.get("severity"))}
        for r in open_.to_dict("records")
    }


def open_by_indicator(open_: pd.DataFrame) -> dict[tuple, dict]:
    """(grade, indicator) → {"severity"} of the most severe open problem measured this round
    (a problem carried over untested says nothing about this round's value)."""
    out: dict[tuple, dict] = {}
    for r in open_.to_dict("records"):
        if _txt(r.get("previous_status")) == "not re-measured" or _num(r.get("value")) is None:
            continue
        g = _key_part(r.get("grade")) if _isnum(r.get("grade")) else None
        sev = _txt(r.get("severity"))
        sev = sev if sev in SEVERITY_ORDER else "中"
        key = (g, _txt(r.get("indicator")))
        old = out.get(key)
        if old is None or SEVERITY_ORDER.index(sev) < SEVERITY_ORDER.index(old["severity"]):
            out[key] = {"severity": sev}
    return out


# ------------------------------------------------------------------------------------------------
# The county report's problem section
# ------------------------------------------------------------------------------------------------


def _detail(f: Fmt, r: Mapping, ev: Mapping, prev: str) -> dict:
    ind = _txt(r.get("indicator"))
    kind = value_kind(r)
    title = _txt(r.get("title")) or schemas.INDICATOR_LABELS.get(ind, ind)
    ev_rows = [evidence_row(f, e, ind) for e in ev["rows"]]
    ev_rows += [
        evidence_row(f, {**b, "indicator": b.get("indicator") or ind}, ind)
        for b in ev["benchmark_rows"]
    ]
    facts = []
    if len(ev["measures"]) <= 1:  # several measures: their own table says it
        facts = [
            ("数值", f.num(r.get("value"), kind)),
            ("参照值", f.num(r.get("benchmark"), kind)),
            ("差距", f.spread(r.get("gap"), kind)),
            ("标准误", f.spread(r.get("se"), kind)),
            ("p 值", f.p(r.get("p_value"))),
            ("q 值（BH 校正）", f.p(r.get("q_value"))),
        ]
    return {
        "id": _txt(r.get("problem_id")),
        "title": title,
        "domain": DOMAIN_LABELS.get(_txt(r.get("domain")), _txt(r.get("domain"))) or MISSING,
        "severity": _txt(r.get("severity")) or MISSING,
        "facts": facts,
        "measures": measures_table(f, ev["measures"], ind) if len(ev["measures"]) > 1 else None,
        "evidence": _table(
            ["年份", "对象", "指标", "范围", "数值", "标准误", "学生数", "学校数"], ev_rows
        ),
        "note": ev["note"],
        "cause": ev["cause_hint"],
        "previous_text": previous_text(f, r, ev, kind),
        "trend": trend_text(f, ev["trend"], kind),
        "unmatched": UNMATCHED_NOTE if ev["unmatched"] else "",
        "unit": units_sentence(r),
        "target": _txt(r.get("target")),
        "suggestion": _txt(r.get("suggestion")),
        "deadline": deadline_text(r),
        "previous": prev,
    }


def deadline_text(r: Mapping) -> str:
    """A problem's 整改时限 when one is set (a date: it names a year), else empty: the evidence
    stage writes a reminder text until the county fills the ledger's 完成时限, and a reminder is not
    printed as a deadline."""
    text = _txt(r.get("deadline")).strip()
    return text if re.search(r"(19|20)\d\d", text) else ""


def _aligned(columns: list[str]) -> list[str]:
    wrap = ("问题", "责任单位", "整改建议")
    return ["t id" if c == "编号" else "t wrap" if c in wrap else "t" for c in columns]


def problem_section(f: Fmt, probs: pd.DataFrame, first_round: bool = False) -> dict:
    """The problem list of one county and round (rows of :func:`problems_for`).

    Problems (待整改 / 整改中) are listed, counted and detailed; close-outs (建议销号) only in their
    own table. In a first round the 较上轮 column says 首轮 (nothing to compare with).
    """
    open_, closeouts = split(probs)
    overview, details, is_school = [], [], []
    school_level = 0
    records = open_.to_dict("records")
    for r in records:
        ind = _txt(r.get("indicator"))
        title = _txt(r.get("title")) or schemas.INDICATOR_LABELS.get(ind, ind)
        prev = "首轮" if first_round else previous_label(r.get("previous_status"))
        overview.append([
            _txt(r.get("problem_id")), title, _txt(r.get("severity")) or MISSING,
            units_text(r), prev, _txt(r.get("status")) or MISSING,
        ])  # fmt: skip
        ev = parse_evidence(r.get("evidence"))
        school = _txt(r.get("rule_id")) == "SCHOOL" or (
            bool(ev["rows"]) and all("n_met" in e for e in ev["rows"])
        )
        is_school.append(school)
        if school:
            # listed in the overview and in 均衡状况's failing-school table; its evidence lives in
            # the workbook, so the page is not filled with one block per school
            school_level += 1
            continue
        details.append(_detail(f, r, ev, prev))
    deadlines = sorted({deadline_text(r) for r in records})
    one_deadline = deadlines[0] if len(deadlines) == 1 else None
    main = [row for row, sch in zip(overview, is_school, strict=True) if not sch]
    cols_main = ["编号", "问题", "程度", "责任单位", "较上轮", "状态"]
    if one_deadline is None and records:  # deadlines differ: one column each
        main = [
            [*row, deadline_text(r) or NO_DEADLINE]
            for row, r, sch in zip(overview, records, is_school, strict=True)
            if not sch
        ]
        cols_main = [*cols_main, "整改时限"]
    school_rows = [
        (row, r) for row, r, sch in zip(overview, records, is_school, strict=True) if sch
    ]
    school_units = sorted({row[3] for row, _ in school_rows})
    one_unit = len(school_units) == 1  # one unit for every school: said once, not per row
    schools = [
        [*row[:3], *([] if one_unit else [row[3]]), row[4], _txt(r.get("suggestion"))]
        for row, r in school_rows
    ]
    cols_school = [
        "编号",
        "问题",
        "程度",
        *([] if one_unit else ["责任单位"]),
        "较上轮",
        "整改建议",
    ]
    widths_school = [21, 37, 6, 10, 26] if one_unit else [20, 30, 6, 14, 9, 21]
    return {
        "overview": _table(cols_main, main, align=_aligned(cols_main)),
        "school_overview": _table(
            cols_school, schools, align=_aligned(cols_school), widths=widths_school
        ),
        "school_unit": school_units[0] if one_unit else "",
        "deadline": one_deadline or "",
        "deadline_unset": bool(records) and not any(deadlines),
        "details": details,
        "n_school_level": school_level,
        "n": len(records),
        "n_closeouts": len(closeouts),
        "closeouts": closeout_table(f, closeouts),
        "closeout_title": CLOSEOUT_TITLE,
        "severity_counts": severity_counts(open_),
        "previous_counts": [] if first_round else previous_counts(open_, closeouts),
        "first_round": first_round,
        "first_round_text": FIRST_ROUND_TEXT,
    }
