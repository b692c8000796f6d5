"""Cause hints (原因分析线索): the related factors behind an achievement or 校际差异率 problem.

A hint lists the related factors (:mod:`pipeline.catalogue`; estimates in ``factors.parquet`` of
the indicators stage) that are, in the problem's own county, grade and round, both

1. **significantly associated with the problem's outcome** — for an ACH problem (one county × grade
   × subject), the subject's score regressed on the factor with SES as a control (``kind = coef``,
   ``statistic = adjusted``); for an ICC problem (校际差异率 too high), the school-level factor in the
   two-level model of that subject (``kind = two_level``, ``statistic = coef``: the association
   with the schools' mean scores, the between-school part 校际差异率 measures) — and
2. **significantly worse than national** (``kind = value``: one-sided test in the direction the
   catalogue calls worse), and
3. for ACH, **coherent**: the county's deviation from the nation goes with lower scores (the sign
   of the coefficient times the sign of county − national is negative). A factor the county is
   "worse" on that goes with *higher* scores cannot help explain low achievement and is not listed.
   (Not for ICC: a school factor that goes with the schools' means accounts for part of the
   between-school variance whichever side of the national value the county lies.)

Significance: Benjamini–Hochberg q < ``evidence.alpha`` within three families per round — the
value tests, the adjusted regression tests and the two-level tests (Benjamini & Hochberg 1995;
each family is all such tests of the round over every county, grade, subject and factor, so a
round with many factors does not produce hints by chance). The one-sided p of a value test is
derived from its two-sided t test (``p/2`` in the tested direction, ``1 − p/2`` against it).
Suppressed estimates never give a hint. Other rules get no hint (their outcomes are not scores).

Wording is association, never cause: 「以下相关因素与该问题显著相关（相关不等于因果）：…」, each factor with its county
and national values and the coefficient with its unit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.catalogue import FACTORS, Factor
from pipeline.evidence.inference import bh_qvalues

HINT_RULES = ("ACH", "ICC")
MAX_FACTORS = 3  # factors named per hint (smallest association q first)
PREFIX = "以下相关因素与该问题显著相关（相关不等于因果）："
_KEY = ["year", "county_code", "grade"]


def factor_tests(factors: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The round's factor tests with BH q-values: ``values`` (one row per year × county × grade ×
    factor: ``estimate, national, q_worse``) and ``assoc`` (one row per year × county × grade ×
    subject × factor × kind: ``kind`` ``coef`` or ``two_level``, ``estimate, p_value, q``)."""
    empty = pd.DataFrame(columns=[*_KEY, "factor", "estimate", "national", "q_worse"])
    if factors is None or factors.empty:
        return empty, pd.DataFrame(columns=[*_KEY, "subject", "factor", "kind", "estimate", "q"])
    f = factors[~factors["suppressed"].astype(bool) & factors["factor"].isin(list(FACTORS))]
    v = f[(f["kind"] == "value") & f["national"].notna() & f["p_value"].notna()].copy()
    worse_dir = np.where(v["factor"].map(lambda k: FACTORS[k].higher_is_worse), 1.0, -1.0)
    diff = v["estimate"].to_numpy(float) - v["national"].to_numpy(float)
    p2 = v["p_value"].to_numpy(float)
    v["p_worse"] = np.where(np.sign(diff) == worse_dir, p2 / 2, 1 - p2 / 2)
    v["q_worse"] = np.nan
    for _, idx in v.groupby("year").groups.items():
        v.loc[idx, "q_worse"] = bh_qvalues(v.loc[idx, "p_worse"])
    a = f[
        ((f["kind"] == "coef") & (f["statistic"] == "adjusted"))
        | ((f["kind"] == "two_level") & (f["statistic"] == "coef"))
    ].copy()
    a = a[a["p_value"].notna()]
    a["q"] = np.nan
    for _, idx in a.groupby(["year", "kind"]).groups.items():
        a.loc[idx, "q"] = bh_qvalues(a.loc[idx, "p_value"])
    return v, a


def cause_hints(rows: pd.DataFrame, factors: pd.DataFrame | None, alpha: float) -> list[str]:
    """One hint per problem row (``""`` when none): see the module docstring for the rule."""
    out = [""] * len(rows)
    values, assoc = factor_tests(factors)
    if values.empty or assoc.empty or rows.empty:
        return out
    worse = values[values["q_worse"] < alpha]
    sig = assoc[assoc["q"] < alpha]
    value_at = {
        (int(r["year"]), str(r["county_code"]), int(r["grade"]), r["factor"]): r
        for r in worse.to_dict("records")
    }
    by_outcome: dict[tuple, list[Mapping]] = {}
    for r in sig.to_dict("records"):
        key = (int(r["year"]), str(r["county_code"]), int(r["grade"]), r["subject"], r["kind"])
        by_outcome.setdefault(key, []).append(r)
    for i, r in enumerate(rows.to_dict("records")):
        if r["rule_id"] not in HINT_RULES or r["status"] == schemas.STATUS_CLOSABLE:
            continue
        if pd.isna(r.get("grade")) or not r.get("subject"):
            continue
        kind = "coef" if r["rule_id"] == "ACH" else "two_level"
        key = (int(r["year"]), str(r["county_code"]), int(r["grade"]), r["subject"], kind)
        found = []
        for a in sorted(by_outcome.get(key, []), key=lambda a: (a["q"], a["factor"])):
            v = value_at.get((*key[:3], a["factor"]))
            if v is None:
                continue
            coherent = np.sign(a["estimate"]) * np.sign(v["estimate"] - v["national"]) < 0
            if kind == "coef" and not coherent:
                continue
            found.append(_phrase(FACTORS[a["factor"]], v, a, r))
        if found:
            out[i] = PREFIX + "；".join(found[:MAX_FACTORS]) + "。"
    return out


def value_text(f: Factor, x: float) -> str:
    """A factor value as the report's 相关因素 chapter prints it (``report.Fmt.factor`` with the
    default decimals; tested equal): percent with one decimal, an index or any other mean (hours,
    lessons) with two; a real minus sign."""
    d = 1 if f.measure == "share" else 2
    text = f"{x:.{d}f}"
    if text.startswith("-"):
        text = "−" + text[1:]
        if set(text[1:]) <= {"0", "."}:
            text = text[1:]
    return text + ("%" if f.measure == "share" else "")


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _phrase(f: Factor, v: Mapping, a: Mapping, problem: Mapping) -> str:
    side = "高" if v["estimate"] > v["national"] else "低"
    b = float(a["estimate"])
    grade = schemas.GRADE_LABELS.get(int(problem["grade"]), f"{int(problem['grade'])}年级")
    subject = schemas.SUBJECT_LABELS.get(problem["subject"], problem["subject"])
    head = (
        f"{f.label}本县为{value_text(f, v['estimate'])}，"
        f"显著{side}于全国（{value_text(f, v['national'])}）"
    )
    change = f"{'高' if b > 0 else '低'}{abs(b):.1f}分（{p_text(a['p_value'])}）"
    if a["kind"] == "coef":
        return (
            f"{head}；控制家庭社会经济文化地位后，{f.term_phrase}，{grade}{subject}成绩平均{change}"
        )
    return f"{head}；分析{grade}{subject}校际差异的两水平模型显示，{f.term_phrase}，学校平均成绩{change}"
