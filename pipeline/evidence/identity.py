"""Problem identity: one id per problem, a function of its rule and object, never of the round.

``ICC-450107-G8-math``                    校际差异率 of a county x grade x subject
``ACH-450181-G8-chinese``                 学业表现 (level, mean, 中等及以上 merged) of the same
``GAP-450181-G4-moral-gender-female-male`` a subgroup gap
``HOMEWORK-450181-G8``                    burden and health (HOMEWORK SLEEP MYOPIA FITNESS)
``RES-450125-primary-L6``                 a resource indicator's 差异系数 in one stage
``SCH-450107-2145010761``                 one school (a 一贯制 school's sections are one problem)

A key part with characters outside ``[A-Za-z0-9_.:-]`` is replaced by ``h`` + the first 8 hex
digits of its SHA-1, so ids stay ASCII and stable. The same function names the items of a
hand-entered previous list (its own numbers are kept as ``previous_problem_id``).
"""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from pipeline.evidence.params import ACH_MEASURES, BURDEN_RULES, PROBLEM_RULE_ORDER, EvidenceParams
from pipeline.evidence.rules import KEYS, RESOURCE_INDICATORS

_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
# indicator -> problem rule, for items of a hand-entered list under a rule id eqm does not know
_INDICATOR_RULE = {
    "school_difference_rate": "ICC", "achievement_level": "ACH", "mean_score": "ACH",
    "pct_medium_or_above": "ACH", "pct_good_or_above": "ACH", "gap_mean_score": "GAP",
    "school_compliance": "SCHOOL", **dict.fromkeys(RESOURCE_INDICATORS, "RES"),
}  # fmt: skip


def _part(x: object) -> str:
    x = str(x)
    if _SAFE.match(x):
        return x
    return "h" + hashlib.sha1(x.encode("utf-8")).hexdigest()[:8]


def problem_rule(rule_id: str, indicator: str, params: EvidenceParams) -> str:
    """The problem rule of a candidate or a listed item (LEVEL / MEAN / MEDIUM → ACH); an unknown
    rule id is resolved from the indicator; ``""`` when neither is known."""
    if rule_id in ACH_MEASURES or rule_id == "ACH":
        return "ACH"
    if rule_id in PROBLEM_RULE_ORDER:
        return rule_id
    by_indicator = {**_INDICATOR_RULE, **{params.rules[r].indicator: r for r in BURDEN_RULES}}
    return by_indicator.get(indicator, "")


def object_id(rule: str, county: str, grade, subject: str, gv: str, gval: str, ind: str) -> str:
    """The id of the object ``rule`` judges (see the module docstring); ``rule`` is a problem rule."""
    if rule == "RES":
        bits = ["RES", county, gval, ind]
    elif rule == "SCHOOL":
        bits = ["SCH", county, str(gval).split("/", 1)[-1]]
    else:
        bits = [rule, county]
        if pd.notna(grade) and str(grade) != "":
            bits.append(f"G{int(grade)}")
        if rule in ("ICC", "ACH", "GAP") and subject:
            bits.append(subject)
        if rule == "GAP" and gv:
            bits += [gv, gval]
    return "-".join(_part(b) for b in bits if str(b) != "")


def problem_ids(df: pd.DataFrame, params: EvidenceParams) -> tuple[pd.Series, pd.Series]:
    """``(problem_rule, problem_id)`` of every row of ``df`` (candidates or a previous list with
    ``rule_id`` and the key columns). Rows whose rule cannot be resolved get rule ``""`` and id
    ``""``."""
    rules, ids = [], []
    for r in df[["rule_id", *KEYS]].astype(object).itertuples(index=False):
        rule_id, county, grade, subject, indicator, gv, gval = r
        rule = problem_rule(str(rule_id), str(indicator), params)
        rules.append(rule)
        ids.append(
            object_id(rule, county, grade, subject or "", gv or "", gval or "", indicator)
            if rule
            else ""
        )
    return (
        pd.Series(rules, index=df.index, dtype=object),
        pd.Series(ids, index=df.index, dtype=object),
    )
