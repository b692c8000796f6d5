"""``eqm check``: the sender's HTML summary in Chinese (``pipeline/templates/check.html.j2``).

jinja2 is imported inside :func:`summary_html`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline.schemas as schemas
from pipeline.collect.check.rules import Problem, Scope, _column_label, fix_for

if TYPE_CHECKING:
    from pipeline.collect.check import FileReport

TEMPLATE = Path(__file__).parents[2] / "templates" / "check.html.j2"


def summary_html(report: FileReport, max_rows: int) -> str:
    """The sender's summary in Chinese (template ``pipeline/templates/check.html.j2``)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(**_summary_context(report, max_rows))


def _summary_context(report: FileReport, max_rows: int) -> dict[str, Any]:
    v = report.verdict
    tbl = schemas.INPUT_TABLES.get(v.table or "")
    m = v.manifest
    heads = m.get("columns") or {}
    by_rule: dict[str, list[Problem]] = {}
    for p in v.problems:
        by_rule.setdefault(p.rule, []).append(p)
    rules = [
        {"rule": r, "label": schemas.rule_label(r), "n": len(ps), "fix": fix_for(r),
         "rows": ps[:max_rows], "more": max(0, len(ps) - max_rows)}
        for r, ps in sorted(by_rule.items(), key=lambda kv: (kv[1][0].source_row, kv[0]))
    ]  # fmt: skip
    scope = v.scope or Scope({}, {}, {})
    missing = []
    if tbl is not None and v.error is None:
        have = set(heads.values())
        missing = [
            c.label for c in tbl.columns
            if c.name not in have and not c.pii and c.name != "source_stage"
            and not (c.name == "county_code" and "county_name" in have)
            and not (c.name == "county_name" and "county_code" in have)
        ]  # fmt: skip
    return {
        "file": report.path.name,
        "source": v.source,
        "passed": v.passed,
        "table": v.table,
        "table_label": tbl.label if tbl is not None else None,
        "table_by": report.table_by,
        "table_scores": [
            {"label": schemas.INPUT_TABLES[t].label, "name": t, "n": n}
            for t, n in sorted(report.table_scores.items(), key=lambda kv: -kv[1])
            if n
        ],  # fmt: skip
        "error": None if v.error is None else str(v.error),
        "meta": m,
        "recognised": [
            {"header": h, "label": _column_label(v.table or "", c), "name": c}
            for h, c in sorted(heads.items(), key=lambda kv: kv[1])
        ],
        "ignored": list(m.get("ignored_columns") or []),
        "suspect": [
            {"header": h, "label": _column_label(v.table or "", c)}
            for h, c in sorted((m.get("suspect_columns") or {}).items())
        ],
        "missing": missing,
        "missing_indicators": [
            _column_label("schools", c) for c in m.get("missing_indicator_columns") or []
        ],
        "n_pii": int(m.get("dropped_pii_columns") or 0),
        "rules": rules,
        "n_problems": len(v.problems),
        "n_errors": sum(f["severity"] == "error" for f in v.findings),
        "findings": v.findings,
        "skipped": sorted(scope.skipped.items()),
        "within": sorted(scope.within.items()),
        "round_wide": sorted(scope.round_wide.items()),
        "workbook": report.workbook.name if report.workbook else None,
        "labels": schemas.rule_label,
    }
