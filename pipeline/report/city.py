"""The city summary's pages for leadership: conclusions in sentences, the 整改任务分解 (task map),
the city-wide common problems and the facts bearing on a 监测结果运用实验区 application.

Renders only. Every number is a value of a row (problems, resource_balance, comparisons,
indicators) or a count of rows; every verdict is one the report prints elsewhere
(:mod:`pipeline.report.verdicts`, ``comparisons.parquet``). Counties are listed in code order and
never ranked; schools are counted, never named or ranked.

**Task map.** The open problems (待整改 / 整改中) grouped by problem type × lead unit, with one
column per county: how many, and the severity mix. A type is the rule plus what it is about:
the grade for 学业表现 / 校际差异率 / 群体差异, the section and item (L1–L7) for the resource rules.
A school problem counts once under every item the school does not meet (``measures[].details[]``
of its evidence with ``met`` false), so a school with two unmet items is counted under both.
**Common problems**: types found in at least ``common_share`` (half) of the counties.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.report.formats import Fmt, _flag, _isnum, _key_part, _txt, cell_label
from pipeline.report.problems import (
    PROBLEM_PREVIOUS,
    SEVERITY_ORDER,
    parse_evidence,
    previous_label,
    split,
    value_kind,
)

RULE_ORDER = ("ACH", "ICC", "GAP", "HOMEWORK", "SLEEP", "MYOPIA", "FITNESS", "RES", "SCHOOL")
STAGE_ORDER = ("primary", "junior")
# what a burden / health problem is about, as a task
BURDEN_TYPES = {
    "HOMEWORK": "书面作业超时", "SLEEP": "睡眠不足", "MYOPIA": "视力不良", "FITNESS": "体质健康达标偏低",
}  # fmt: skip
COMMON_MARK = "★"
ITEM_COLUMNS = [
    "county_code", "problem_id", "rule_id", "type_key", "type", "unit", "lead_unit",
    "support_units", "severity", "previous_status",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Problem types
# ------------------------------------------------------------------------------------------------


def _grade(r: Mapping) -> int | None:
    g = r.get("grade")
    return int(_key_part(g)) if _isnum(g) and _txt(g) != "" else None


def _stage_of(r: Mapping, ev: Mapping) -> str:
    """A RES problem's section: its evidence row's ``stage``, else the part of its number."""
    for row in ev["rows"]:
        if _txt(row.get("stage")):
            return _txt(row["stage"])
    parts = _txt(r.get("problem_id")).split("-")
    return next((p for p in parts if p in STAGE_ORDER), "")


def resource_label(stage: str, item: str) -> str:
    short = schemas.RESOURCE_INDICATOR_SHORT.get(item, schemas.RESOURCE_INDICATORS.get(item, item))
    return f"{schemas.STAGE_LABELS.get(stage, stage)} {item} {short}".strip()


def _resource_key(stage: str, item: str, kind: int) -> tuple:
    st = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else 9
    return (RULE_ORDER.index("RES"), st, item, kind)


def unmet_items(ev: Mapping) -> list[tuple[str, str]]:
    """(section, item) pairs a school does not meet, from its evidence (``measures[].details[]``,
    else ``rows[].details[]``), in section and item order, each once."""
    found: list[tuple[str, str]] = []
    for src in (ev["measures"], ev["rows"]):
        for m in src:
            stage = _txt(m.get("stage"))
            details = m.get("details")
            if not isinstance(details, list):
                continue
            for d in details:
                if isinstance(d, Mapping) and d.get("met") is False and _txt(d.get("indicator")):
                    pair = (stage, _txt(d["indicator"]))
                    if pair not in found:
                        found.append(pair)
        if found:
            break
    return sorted(found, key=lambda p: (STAGE_ORDER.index(p[0]) if p[0] in STAGE_ORDER else 9, p))


def _item_units(r: Mapping) -> dict[tuple, tuple[str, str]]:
    """A school problem's unmet items → (lead, supporting units) of each item, as the evidence
    stage names them (``details[].lead_unit``): the 骨干教师 task goes to 人事科 whichever item
    leads the school's problem."""
    ev = parse_evidence(r.get("evidence"))
    out: dict[tuple, tuple[str, str]] = {}
    for src in (ev["measures"], ev["rows"]):
        for m in src:
            stage = _txt(m.get("stage"))
            for d in m.get("details") or []:
                if isinstance(d, Mapping) and d.get("met") is False and d.get("lead_unit"):
                    key = _resource_key(stage, _txt(d.get("indicator")), 1)
                    out.setdefault(key, (_txt(d["lead_unit"]), _txt(d.get("support_units"))))
    return out


def problem_types(r: Mapping, thr: float) -> list[tuple[tuple, str, str]]:
    """(sort key, type label, counting unit) of one problem; a school gives one per unmet item."""
    rule = _txt(r.get("rule_id"))
    order = RULE_ORDER.index(rule) if rule in RULE_ORDER else len(RULE_ORDER)
    g = _grade(r)
    grade = schemas.GRADE_LABELS.get(g, f"{g}年级") if g is not None else ""
    if rule == "ACH":
        return [((order, g or 0, ""), f"{grade}学业表现未达要求", "个学科")]
    if rule == "ICC":
        return [((order, g or 0, ""), f"{grade}校际差异率未低于 {thr:g}", "个学科")]
    if rule == "GAP":
        gv = _txt(r.get("group_var"))
        what = schemas.GROUP_VAR_LABELS.get(gv, gv)
        return [
            (
                (order, g or 0, gv),
                f"{grade}群体差异（{what}）" if what else f"{grade}群体差异",
                "项",
            )
        ]
    if rule in BURDEN_TYPES:
        return [((order, 0, ""), BURDEN_TYPES[rule], "个年级")]
    ev = parse_evidence(r.get("evidence"))
    if rule == "RES":
        stage, item = _stage_of(r, ev), _txt(r.get("indicator"))
        return [(_resource_key(stage, item, 0), f"{resource_label(stage, item)}差异系数超标", "项")]
    if rule == "SCHOOL":
        pairs = unmet_items(ev)
        if not pairs:
            return [((order, 9, ""), "学校资源配置未达标（未达标项目不详）", "所")]
        return [(_resource_key(st, it, 1), f"{resource_label(st, it)}未达标学校", "所")
                for st, it in pairs]  # fmt: skip
    label = schemas.PROBLEM_RULES.get(rule, rule) or schemas.INDICATOR_LABELS.get(
        _txt(r.get("indicator")), "其他问题"
    )
    return [((order, g or 0, ""), f"{grade}{label}", "项")]


def task_items(open_: pd.DataFrame, thr: float) -> pd.DataFrame:
    """One row per open problem and type (a school: per unmet item), with its county, lead and
    supporting units, severity and 与上一轮相比."""
    rows = []
    for r in open_.sort_values(["county_code", "problem_id"], kind="stable").to_dict("records"):
        base = {
            "county_code": _txt(r.get("county_code")),
            "problem_id": _txt(r.get("problem_id")),
            "rule_id": _txt(r.get("rule_id")),
            "lead_unit": _txt(r.get("lead_unit")) or _txt(r.get("responsible_unit")) or "未指定",
            "support_units": _txt(r.get("support_units")),
            "severity": _txt(r.get("severity")),
            "previous_status": _txt(r.get("previous_status")),
        }
        units = _item_units(r) if base["rule_id"] == "SCHOOL" else {}
        for key, label, unit in problem_types(r, thr):
            lead, support = units.get(key, (base["lead_unit"], base["support_units"]))
            rows.append({**base, "type_key": key, "type": label, "unit": unit,
                         "lead_unit": lead or base["lead_unit"], "support_units": support})  # fmt: skip
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


def _severity_mix(sev: pd.Series) -> list[str]:
    """「高 4」「中 8」: problems per severity, most severe first (counts of rows)."""
    vc = sev.value_counts()
    return [f"{s} {int(vc[s])}" for s in SEVERITY_ORDER if s in vc.index]


def _support(items: pd.DataFrame) -> str:
    """The supporting units of a group of problems, each once, in the order they first appear."""
    support: dict[str, None] = {}
    for s in items["support_units"]:
        for u in str(s).split("、"):
            if u.strip():
                support[u.strip()] = None
    return "、".join(support)


def _ranked(items: pd.DataFrame) -> pd.DataFrame:
    """``items`` with ``_rank``: the position of its type key (rule, grade or section, item)."""
    keys = sorted(set(items["type_key"]))
    return items.assign(_rank=items["type_key"].map({k: i for i, k in enumerate(keys)}))


def common_types(items: pd.DataFrame, counties: Sequence[str], share: float) -> dict:
    """Types found in at least ``share`` of the counties (and at least 2): ``types`` (type →
    counties in code order, in type order), ``keys`` (type → its sort key), ``min_counties``."""
    n = len(counties)
    need = max(2, math.ceil(share * n))
    out: dict[str, list[str]] = {}
    keys: dict[str, tuple] = {}
    if n < 2 or items.empty:
        return {"types": out, "keys": keys, "min_counties": need}
    for (_, label), sub in _ranked(items).groupby(["_rank", "type"], sort=True):
        where = [c for c in counties if c in set(sub["county_code"])]
        if len(where) >= need:
            out[label] = where
            keys[label] = sub["type_key"].iloc[0]
    return {"types": out, "keys": keys, "min_counties": need}


def common_lines(common: Mapping, names: Mapping[str, str]) -> list[str]:
    """The common types in words, one line each; the school items of one section share a line
    (「小学未达标学校的共同短板：L1 高学历教师（西乡塘区、武鸣区）；…」)."""
    lines: list[str] = []
    school: dict[int, list[str]] = {}
    res = RULE_ORDER.index("RES")
    for label, where in common["types"].items():
        key = common["keys"][label]
        counties = "、".join(names.get(c, c) for c in where)
        if key[0] == res and len(key) == 4 and key[3] == 1:  # schools short of one item
            item = _txt(key[2])
            short = schemas.RESOURCE_INDICATOR_SHORT.get(item, item)
            school.setdefault(key[1], []).append(f"{item} {short}（{counties}）")
            continue
        lines.append(f"{label}：{counties}")
    for st, parts in sorted(school.items()):
        stage = schemas.STAGE_LABELS.get(STAGE_ORDER[st], "") if st < len(STAGE_ORDER) else ""
        lines.append(f"{stage}学校资源配置未达标的共同项目：{'；'.join(parts)}")
    return lines


def task_map(
    items: pd.DataFrame, counties: Sequence[str], names: Mapping[str, str], share: float
) -> dict:
    """「整改任务分解」: one row per problem type and lead unit, one cell per county (code order)
    with the number and the severity mix, and the total; common types are marked.

    Returns ``columns`` (county names), ``rows`` (``type``, ``common``, ``lead``, ``support``,
    ``cells``: per county None or ``{"n", "unit", "severity": [「高 4」, …]}``, ``total``),
    ``widths`` (percent per column) and ``common`` (:func:`common_types`).
    """
    common = common_types(items, counties, share)
    rows = []
    if not items.empty:
        for (_, label, unit, lead), sub in _ranked(items).groupby(
            ["_rank", "type", "unit", "lead_unit"], sort=True
        ):
            cells = []
            for c in counties:
                mine = sub[sub["county_code"] == c]
                cells.append(
                    {"n": len(mine), "unit": unit, "severity": _severity_mix(mine["severity"])}
                    if len(mine)
                    else None
                )
            rows.append({
                "type": label, "common": label in common["types"], "lead": lead,
                "support": _support(sub), "cells": cells,
                "total": {"n": len(sub), "unit": unit, "severity": _severity_mix(sub["severity"])},
            })  # fmt: skip
    n = max(len(counties), 1)
    width = max(7, min(12, 44 // n))
    widths = [22, 20, *[width] * len(counties), 13]
    return {
        "columns": [names.get(c, c) for c in counties],
        "rows": rows,
        "widths": [round(w * 100 / sum(widths)) for w in widths],
        "common": common,
    }


def task_notes(items: pd.DataFrame, open_: pd.DataFrame, names: Mapping[str, str]) -> list[str]:
    """What the task map counts, in words, with the numbers a reader needs to check it."""
    notes = [
        "只含待整改、整改中的问题，建议销号的上一轮问题不列入；格中为问题数及其严重程度（高、中、低各几项）。"
    ]
    school = open_[open_["rule_id"].astype(str) == "SCHOOL"]
    if len(school):
        per = [
            f"{names.get(c, c)} {len(s)} 所" for c, s in school.groupby("county_code", sort=True)
        ]
        notes.append(
            "学校问题按未达标项目计数：一所学校有两项未达标时，在两类中各计一次，严重程度取该校的严重"
            f"程度；各类学校数相加会多于未达标学校数（未达标学校：{'、'.join(per)}）。"
        )
    carried = open_["previous_status"].astype(str).eq("not re-measured").sum()
    if carried:
        notes.append(
            f"含本轮未复测、沿用上一轮状态的问题 {int(carried)} 项（国家监测学科轮换，本轮没有相应数据）。"
        )
    return notes


# ------------------------------------------------------------------------------------------------
# Conclusions
# ------------------------------------------------------------------------------------------------


def _join(parts: Sequence[str], sep: str = "；") -> str:
    return sep.join(p for p in parts if p)


def quality_sentence(
    names: Mapping[str, str], quality: Mapping[str, tuple[Mapping, Sequence[Mapping]]], thr: float,
    need: str,
) -> str:  # fmt: skip
    """Which counties meet the 优质均衡 quality item and, for the others, which part fails in how
    many grade × subjects (``quality``: county → (overall light, items of verdicts.quality_item))."""
    met, parts = [], []
    for c, (overall, items) in quality.items():
        name = names.get(c, c)
        state = overall["state"]
        if state == "pass":
            met.append(name)
            continue
        n_level = sum(1 for it in items if it.get("level_fails"))
        n_sdr = sum(1 for it in items if it.get("sdr_fails"))
        n_open = sum(1 for it in items if it.get("sdr_fails") and it["sdr_cell"]["unsure"])
        n_na = sum(1 for it in items if it["light"]["state"] == "na")
        why = []
        if n_level:
            why.append(f"{n_level} 个年级学科学业水平未达到{need}级")
        if n_sdr:
            text = f"{n_sdr} 个年级学科校际差异率未低于 {thr:g}"
            if n_open:
                text += f"（其中 {n_open} 个的 95% 置信区间包含 {thr:g}，尚难定论）"
            why.append(text)
        if n_na:
            why.append(f"{n_na} 个年级学科无法判定")
        word = "未达标" if state == "fail" else "无法判定"
        parts.append(f"{name}{word}，{'，'.join(why) or overall['text']}")
    head = f"优质均衡质量指标（各年级学科学业水平{need}级以上且校际差异率低于 {thr:g}）："
    body = _join([f"{'、'.join(met)}达标" if met else "", *parts])
    return head + (body or "各区县均无学业数据，无法判定") + "。"


def resource_sentence(names: Mapping[str, str], failing: Mapping[str, list[str]]) -> str:
    """Resource CVs above the standard per county (``failing``: county → 「小学 L2 骨干教师
    0.710」 texts); counties with none are named as meeting every item."""
    bad = [f"{names.get(c, c)}{'、'.join(v)}" for c, v in failing.items() if v]
    ok = [names.get(c, c) for c, v in failing.items() if not v]
    text = "资源配置差异系数（每项均须达标：小学 ≤ 0.50，初中 ≤ 0.45）"
    if not bad and not ok:
        return text + "：无资源配置数据。"
    if not bad:
        return text + "：各区县各项均达标。"
    return text + "超过标准的：" + _join([*bad, f"{'、'.join(ok)}各项均达标" if ok else ""]) + "。"


def school_sentence(names: Mapping[str, str], counts: Mapping[str, list[Mapping]]) -> str:
    """Schools not meeting the school rule per county and section (counts of rows)."""
    parts = []
    for c, rows in counts.items():
        per = [f"{r['stage']} {r['n'] - r['n_pass']} / {r['n']} 所" for r in rows]
        if per:
            parts.append(f"{names.get(c, c)}{'、'.join(per)}")
    if not parts:
        return ""
    return (
        "未达到优质均衡学校要求（至少 6 项达标、其余不低于标准的 85%）的学校："
        + _join(parts)
        + "。"
    )


def burden_sentence(names: Mapping[str, str], worse: Mapping[str, list[str]], tested: bool) -> str:
    """Burden / health items whose comparison says 显著差于 (the evidence stage's tests); without
    the tests (an older run) nothing is said about them."""
    if not tested:
        return "负担与健康：本轮没有问题清单环节的比较检验结果，不作判断（数值见第七部分）。"
    bad = [f"{names.get(c, c)}{'、'.join(v)}" for c, v in worse.items() if v]
    ok = [names.get(c, c) for c, v in worse.items() if not v]
    if not bad:
        return "负担与健康：各区县没有显著差于参照值的项目。"
    text = "负担与健康显著差于参照值的项目：" + _join(bad)
    if ok:
        text += f"；{'、'.join(ok)}没有显著差于参照值的项目"
    return text + "。"


def _short(r: Mapping) -> str:
    """A problem named in a few words: 「四年级艺术校际差异率」「小学 L2 骨干教师差异系数」."""
    rule = _txt(r.get("rule_id"))
    ind = _txt(r.get("indicator"))
    g = _grade(r)
    if rule == "RES":
        ev = parse_evidence(r.get("evidence"))
        return f"{resource_label(_stage_of(r, ev), ind)}差异系数"
    if rule in ("ACH", "ICC", "GAP"):
        what = {"ACH": "学业表现", "ICC": "校际差异率", "GAP": "群体差异"}[rule]
        if rule == "GAP":
            gv = _txt(r.get("group_var"))
            what += f"（{schemas.GROUP_VAR_LABELS.get(gv, gv)}）" if gv else ""
        return cell_label(g, _txt(r.get("subject"))) + what if g is not None else what
    grade = schemas.GRADE_LABELS.get(g, "") if g is not None else ""
    return grade + schemas.INDICATOR_LABELS.get(ind, schemas.PROBLEM_RULES.get(rule, rule))


def _by_rule(rows: pd.DataFrame) -> str:
    """「校际差异率 5 项、学校资源配置 6 所」: problems counted per rule (counts of rows)."""
    vc = rows["rule_id"].astype(str).value_counts()
    order = [r for r in RULE_ORDER if r in vc.index] + sorted(set(vc.index) - set(RULE_ORDER))
    return "、".join(
        f"{schemas.PROBLEM_RULES.get(r, r)} {int(vc[r])} {'所' if r == 'SCHOOL' else '项'}"
        for r in order
    )


def _named(f: Fmt, rows: pd.DataFrame, names: Mapping[str, str]) -> str:
    """County-level problems named with their county and previous → current value
    (「横州市四年级书面作业超时比例（55.4% → 39.7%）」), in county and number order."""
    out = []
    for r in rows.sort_values(["county_code", "problem_id"]).to_dict("records"):
        text = names.get(_txt(r.get("county_code")), _txt(r.get("county_code"))) + _short(r)
        if _isnum(r.get("previous_value")) and _isnum(r.get("value")):
            kind = value_kind(r)
            text += f"（{f.num(r['previous_value'], kind)} → {f.num(r['value'], kind)}）"
        out.append(text)
    return "、".join(out)


def problem_sentences(
    f: Fmt, probs: pd.DataFrame, counties: Sequence[str], names: Mapping[str, str], first: bool,
    first_text: str,
) -> list[str]:  # fmt: skip
    """The problem list in sentences: totals per county, what is new, how the previous round's
    county-level problems moved (named, with their values) and how its schools moved (counted)."""
    open_, closed = split(probs)
    sev = open_["severity"].fillna("").value_counts()
    sev_text = "、".join(f"{s} {int(sev[s])}" for s in SEVERITY_ORDER if s in sev.index)
    per = "、".join(
        f"{names.get(c, c)} {int((open_['county_code'] == c).sum())} 项" for c in counties
    )
    head = f"本轮问题清单共 {len(open_)} 项" + (f"（{sev_text}）" if sev_text else "")
    head += f"：{per}" if per else ""
    if len(closed):
        head += f"；另有 {len(closed)} 项上一轮问题已达标，建议销号（不计入问题数）"
    out = [head + "。"]
    if first:
        out.append(f"上一轮问题：{first_text}。")
        return out
    status = open_["previous_status"].astype(str)
    new = open_[status == "new"]
    parts = [
        f"{names.get(c, c)}{_by_rule(new[new['county_code'] == c])}"
        for c in counties
        if (new["county_code"] == c).any()
    ]
    out.append(f"新列入的问题 {len(new)} 项" + (f"：{_join(parts)}。" if parts else "。"))
    school_open = open_["rule_id"].astype(str) == "SCHOOL"
    school_closed = closed["rule_id"].astype(str) == "SCHOOL"
    moves = []
    for code, word in (("improved", "显著改善"), ("worse", "恶化")):
        rows = open_[(status == code) & ~school_open]
        if len(rows):
            moves.append(f"{word}的有{_named(f, rows, names)}")
    if (~school_closed).any():
        moves.append(f"已达标、建议核实后销号的有{_named(f, closed[~school_closed], names)}")
    carried = open_[(status != "new") & ~school_open]
    if len(carried) or (~school_closed).any():
        text = "上一轮县域层面问题："
        text += "；".join(moves) if moves else "均无显著变化或本轮未复测"
        out.append(text + "。")
    sch = status[school_open].value_counts()
    if school_open.any() or school_closed.any():
        counts = [
            f"{previous_label(k)} {int(sch[k])} 所" for k in PROBLEM_PREVIOUS if k in sch.index
        ]
        text = "资源配置未达标的学校与上一轮相比：" + "、".join(counts)
        if school_closed.any():
            text += f"；另有 {int(school_closed.sum())} 所已达到学校要求，建议销号"
        out.append(text + "。")
    return out


# ------------------------------------------------------------------------------------------------
# 监测结果运用实验区: facts per county
# ------------------------------------------------------------------------------------------------


def pilot_facts(
    name: str,
    probs: pd.DataFrame,
    *,
    first: bool,
    student_years: Sequence[int],
    years_in_data: Sequence[int],
    n_set_aside: int,
    n_students: int | None,
    reconciled: Mapping | None,
) -> str:
    """One county's facts bearing on a 监测结果运用实验区 application, as one sentence: its open
    problems, how its previous problems stand, its data (student-level rounds, rows set aside) and
    the official values checked. No ranking: the facts of every county, in code order."""
    open_, closed = split(probs)
    sev = open_["severity"].fillna("").value_counts()
    sev_text = "、".join(f"{s} {int(sev[s])}" for s in SEVERITY_ORDER if s in sev.index)
    parts = [f"本轮问题 {len(open_)} 项" + (f"（{sev_text}）" if sev_text else "")]
    if first:
        parts.append("首轮监测，无上一轮问题可复查")
    else:
        prev = open_["previous_status"].astype(str).value_counts()
        n_prev = int(sum(prev.get(k, 0) for k in PROBLEM_PREVIOUS[1:])) + len(closed)
        if n_prev:
            detail = [f"已达标（建议销号）{len(closed)} 项"] * bool(len(closed)) + [
                f"{previous_label(k)} {int(prev[k])} 项"
                for k in PROBLEM_PREVIOUS[1:]
                if prev.get(k, 0)
            ]
            parts.append(f"上一轮问题 {n_prev} 项中{'、'.join(detail)}")
        else:
            parts.append("上一轮问题清单中没有本县的问题")
    yrs = [y for y in years_in_data if y in student_years]
    if len(years_in_data) > 1 and len(yrs) == len(years_in_data):
        parts.append(f"{'、'.join(f'{y} 年' for y in yrs)}两轮均有学生层面数据")
    elif yrs:
        missing = [y for y in years_in_data if y not in yrs]
        text = f"有学生层面数据的轮次：{'、'.join(f'{y} 年' for y in yrs)}"
        if missing:
            text += f"（{'、'.join(f'{y} 年' for y in missing)}没有）"
        parts.append(text)
    else:
        parts.append("没有学生层面数据（只有区县监测报告的汇总值）")
    data = f"本年度数据校验剔除 {n_set_aside} 行"
    if n_students is not None:
        data = f"本年度 {n_students} 名学生的数据通过校验，剔除 {n_set_aside} 行"
    parts.append(data)
    if reconciled and reconciled.get("n_checked"):
        parts.append(
            f"区县监测报告中的本县数值 {reconciled['n_checked']} 项已与计算值对照"
            f"（显示不一致 {reconciled['n_differ']} 项）"
        )
    return f"{name}：{'；'.join(parts)}。"


def burden_worse_text(f: Fmt, test: Mapping, grade: Any, indicator: str, label: str) -> str | None:
    """「四年级书面作业超时比例 39.7%（全国 20.0%）」 for a comparison whose verdict is worse."""
    if _txt(test.get("verdict")) != "worse" and not _flag(test.get("fires")):
        return None
    g = schemas.GRADE_LABELS.get(_key_part(grade), "") if _isnum(grade) else ""
    text = f"{g}{schemas.INDICATOR_LABELS.get(indicator, indicator)} {f.num(test.get('value'), 'percent')}"
    if _isnum(test.get("benchmark")):
        text += f"（{label} {f.num(test.get('benchmark'), 'percent')}）"
    return text
