"""From candidates to objects: one row per problem identity and round.

* The achievement measures of one county x grade x subject (LEVEL, MEAN, MEDIUM) are one deficit:
  one ACH object whose evidence lists each measure and whether it fails; its headline (value,
  benchmark, test) is the first failing measure in the order MEAN, MEDIUM, LEVEL (the mean is the
  most precise and carries an SE), its severity the highest of the failing measures.
* The sections of a 一贯制 school are one SCHOOL object naming each unmet indicator with its value,
  standard and share of the standard; severity from depth (``evidence.severity``).
* Every other rule judges one object with one candidate.

An object *is a problem* in a round when any of its candidates fires; an object measured but not
firing is what a previous problem becomes when it is resolved (建议销号).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline.evidence.params import EvidenceParams
from pipeline.evidence.rules import KEYS
from pipeline.evidence.text import (
    fields,
    met_fragment,
    school_targets_text,
    school_unmet_text,
)

ACH_HEADLINE = ("MEAN", "MEDIUM", "LEVEL")
SEVERITY_RANK = {"高": 0, "中": 1, "低": 2, "": 3}
OBJECT_COLS = [
    "year", "problem_id", "rule_id", *KEYS, "value", "benchmark", "bench_label", "gap", "se",
    "z", "p_value", "q_value", "own_se", "df", "severity", "is_problem", "title", "measures",
    "rows", "bench_rows", "note", "school_name", "data_missing", "headline_rule", "target",
    "suggestion",
]  # fmt: skip


def _worst(sevs: list[str]) -> str:
    sevs = [s for s in sevs if s]
    return min(sevs, key=lambda s: SEVERITY_RANK.get(s, 3)) if sevs else ""


def _school_severity(sections: list[dict], p: EvidenceParams) -> str:
    """高: an unmet indicator below ``school_ratio_high`` of its standard, or at least
    ``school_unmet_high`` unmet in a section; 中: an unmet one below the regulation's share
    (``school_min_ratio_unmet``, 85%) or data missing; 低: the school fails only by the count."""
    ratios = [d["ratio"] for s in sections for d in s["details"] if d["met"] is False]
    ratios = [r for r in ratios if r is not None]
    # unmet indicators of the whole school (a 一贯制 school's sections together)
    n_unmet = sum(d["met"] is False for s in sections for d in s["details"])
    lowest = min(ratios) if ratios else None
    sev = p.severity
    if (lowest is not None and lowest < sev.school_ratio_high) or n_unmet >= sev.school_unmet_high:
        return "高"
    missing = any(d["value"] is None for s in sections for d in s["details"])
    if (lowest is not None and lowest < p.school_min_ratio_unmet) or missing:
        return "中"
    return "低"


def merge_objects(
    c: pd.DataFrame, params: EvidenceParams, names: Mapping[str, str]
) -> pd.DataFrame:
    """One row per (year, problem_id) of the candidates ``c`` (which carry ``problem_rule`` and
    ``problem_id``), columns :data:`OBJECT_COLS`."""
    if c.empty:
        return pd.DataFrame(columns=OBJECT_COLS)
    recs = c.to_dict("records")
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((int(r["year"]), r["problem_id"]), []).append(r)
    out = []
    for (year, pid), g in groups.items():
        rule = g[0]["problem_rule"]
        fired = [r for r in g if r["fires"]]
        if rule == "ACH":
            out.append(_ach(year, pid, g, fired, params, names))
        elif rule == "SCHOOL":
            out.append(_school(year, pid, g, fired, params, names))
        else:
            out.append(_single(year, pid, rule, g[0], params, names))
    df = pd.DataFrame(out, columns=OBJECT_COLS)
    df["grade"] = df["grade"].astype("Int64")
    return df


def _base(year: int, pid: str, rule: str, head: dict) -> dict:
    row = {k: head.get(k) for k in OBJECT_COLS if k in head}
    row.update(
        year=year, problem_id=pid, rule_id=rule, headline_rule=head["rule_id"],
        measures=[], school_name=head.get("school_name") or "",
    )  # fmt: skip
    return row


def _single(year, pid, rule, r, params: EvidenceParams, names) -> dict:
    row = _base(year, pid, rule, r)
    spec = params.rules[rule]
    f = fields(r, names)
    is_problem = bool(r["fires"])
    if is_problem:
        tmpl = spec.title
        if r.get("data_missing") and spec.title_missing:
            tmpl = spec.title_missing
        elif r.get("reversed") and spec.title_reversed:
            tmpl = spec.title_reversed
        title = tmpl.format_map(f)
    else:
        title = (spec.resolved or spec.title).format_map(f)
    row.update(
        is_problem=is_problem, title=title, severity=r["severity"] if is_problem else "",
        target=spec.target.format_map(f), suggestion=spec.suggestion.format_map(f),
    )  # fmt: skip
    return row


def _ach(year, pid, g, fired, params: EvidenceParams, names) -> dict:
    by_rule = {r["rule_id"]: r for r in g}
    pool = fired or g
    head = next(by_rule[m] for m in ACH_HEADLINE if m in {r["rule_id"] for r in pool})
    row = _base(year, pid, "ACH", head)
    spec = params.rules["ACH"]
    measures = []
    for m in ACH_HEADLINE:
        r = by_rule.get(m)
        if r is None:
            continue
        text = (
            spec.measures[m].format_map(fields(r, names)) if r["fires"] else met_fragment(r, names)
        )
        measures.append({
            "rule_id": m, "indicator": r["indicator"], "value": r["value"],
            "benchmark": r["benchmark"], "bench_label": r["bench_label"], "gap": r["gap"],
            "se": r["se"], "p_value": r["p_value"], "q_value": r["q_value"],
            "fires": bool(r["fires"]), "severity": r["severity"] if r["fires"] else "",
            "text": text,
        })  # fmt: skip
    f = fields(head, names)
    if fired:
        f["measures"] = "；".join(m["text"] for m in measures if m["fires"])
        title = spec.title.format_map(f)
    else:
        f["measures"] = "；".join(m["text"] for m in measures)
        title = spec.resolved.format_map(f)
    rows = [x for r in g for x in (r["rows"] or [])]
    bench_rows = [x for r in g for x in (r["bench_rows"] or [])]
    notes = sorted({r["note"] for r in g if r.get("note")})
    row.update(
        target=spec.target.format_map(f), suggestion=spec.suggestion.format_map(f),
        is_problem=bool(fired), title=title, measures=measures, rows=rows, bench_rows=bench_rows,
        note="；".join(notes), severity=_worst([r["severity"] for r in fired]),
        indicator=head["indicator"],
    )  # fmt: skip
    return row


def _school(year, pid, g, fired, params: EvidenceParams, names) -> dict:
    pool = fired or g
    head = min(pool, key=lambda r: r["value"] if pd.notna(r["value"]) else np.inf)
    row = _base(year, pid, "SCHOOL", head)
    spec = params.rules["SCHOOL"]
    sections = [
        {"stage": r["rows"][0]["stage"], "details": r["rows"][0]["details"]}
        for r in sorted(pool, key=lambda r: str(r["rows"][0]["stage"]) != "primary")
    ]
    f = fields(head, names)
    f["unmet"] = school_unmet_text(sections)
    f["targets"] = school_targets_text(sections)
    missing_only = fired and all(not any(d["met"] is False for d in s["details"]) for s in sections)
    if fired:
        tmpl = spec.title_missing if missing_only and spec.title_missing else spec.title
        title = tmpl.format_map(f)
    else:
        title = spec.resolved.format_map(f)
    school_id = str(head["group_value"]).split("/", 1)[-1]
    row.update(
        target=spec.target.format_map(f), suggestion=spec.suggestion.format_map(f),
        is_problem=bool(fired), title=title, group_value=school_id,
        rows=[x for r in g for x in (r["rows"] or [])], bench_rows=[],
        severity=_school_severity(sections, params) if fired else "",
        data_missing=any(r["data_missing"] for r in pool),
        measures=[{"rule_id": "SCHOOL", "stage": s["stage"], "details": s["details"]}
                  for s in sections],
    )  # fmt: skip
    return row
