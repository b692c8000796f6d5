"""The HTML validation pages (template: ``pipeline/templates/validation.html.j2``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams
from pipeline.validate.accounting import ValidationResult, _display
from pipeline.validate.params import FINDING_RULES, STAGE_LABELS, TABLES

# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------

TEMPLATE = Path(__file__).parent.parent / "templates" / "validation.html.j2"


def _columns_label(table: str, columns) -> str:
    """``weight;homework_minutes`` → ``学生权重（weight）、每天书面作业时间（homework_minutes）``."""
    if columns is None or pd.isna(columns):
        return "—"
    names = [c for part in str(columns).split(";") for c in part.split(",")]
    return "、".join(dict.fromkeys(_display(table, c) for c in names))


_rule_label = schemas.rule_label


def render_pages(
    result: ValidationResult,
    mon: MonitoringParams,
    manifest: Mapping[str, Any] | None,
    max_rows: int,
) -> dict[str, str]:
    """HTML pages: ``validation_<year>.html`` per year and ``validation_all.html`` (all years).

    A year page shows that year's rows plus the set-aside rows whose year could not be read.
    """
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    dataset = dict((manifest or {}).get("dataset") or {})
    pages = {}
    for year in [*result.summary["years"], None]:
        name = "validation_all.html" if year is None else f"validation_{year}.html"
        pages[name] = template.render(**_page_context(result, mon, dataset, year, max_rows))
    return pages


def _page_context(result, mon, dataset, year, max_rows) -> dict:
    q, f, b = result.quarantine, result.findings, result.balance
    if year is not None:
        q = q[q["year"].isna() | (q["year"] == year)]
        f = f[f["year"].isna() | (f["year"] == year)]
        b = b[b["year"].isna() | (b["year"] == year)]

    def county(c):
        if c is None or pd.isna(c):
            return "—"
        c = str(c)
        return f"{mon.county_name(c)}（{c}）" if c in mon.counties else f"{c}（未登记）"

    tables = []
    for t in TABLES:
        bt = b[b["table"] == t]
        iq_n = int(((q["table"] == t) & (q["stage"] == "ingest")).sum())
        tables.append({
            "label": schemas.INPUT_TABLES[t].label, "name": t, "rows_in": int(bt["rows_in"].sum()),
            "passed": int(bt["passed"].sum()), "quarantined": int(bt["quarantined"].sum()),
            "ingest_quarantined": iq_n,
        })  # fmt: skip
    files = []
    iq_files = q[q["stage"] == "ingest"].groupby("source_file").size()
    for r in (
        b.groupby(["source_file", "table"])[["rows_in", "passed", "quarantined"]].sum().itertuples()
    ):
        files.append({
            "file": r.Index[0], "table": schemas.INPUT_TABLES[r.Index[1]].label, "rows_in": int(r.rows_in),
            "passed": int(r.passed), "quarantined": int(r.quarantined),
            "ok": int(r.rows_in) == int(r.passed) + int(r.quarantined),
        })  # fmt: skip
    for fname in iq_files.index:
        if fname not in set(b["source_file"]):
            files.append({"file": fname, "table": "（导入时全部隔离）", "rows_in": 0, "passed": 0,
                          "quarantined": 0, "ok": True})  # fmt: skip
    listed = {d["file"] for d in files}
    for fname, entry in result.summary["files"].items():  # files without a data row
        m = entry.get("ingest") or {}
        if m.get("empty") and fname not in listed:
            t = m.get("table")
            label = schemas.INPUT_TABLES[t].label if t in schemas.INPUT_TABLES else "—"
            files.append({"file": fname, "table": f"{label}（空文件，没有数据行）", "rows_in": 0,
                          "passed": 0, "quarantined": 0, "ok": True})  # fmt: skip
    files.sort(key=lambda d: (d["file"], d["table"]))
    findings = [
        {
            "severity": r.severity,
            "severity_label": "严重（须先处理）" if r.severity == "error" else "提示",
            "rule": FINDING_RULES.get(r.rule, r.rule),
            "county": county(r.county_code),
            "year": "—" if pd.isna(r.year) else int(r.year),
            "grade": "—" if pd.isna(r.grade) else schemas.GRADE_LABELS.get(int(r.grade), r.grade),
            "message": r.message,
            "count": int(r.count),
        }
        for r in f.itertuples(index=False)
    ]
    groups = []
    if len(q):
        for (stage, t, rule), g in q.groupby(["stage", "table", "rule"], sort=True):
            rows = [
                {
                    "file": r.source_file, "row": "—" if pd.isna(r.source_row) else int(r.source_row),
                    "column": _columns_label(t, r.column), "message": r.message, "county": county(r.county_code),
                    "raw": "" if pd.isna(r.raw_values) else str(r.raw_values)[:300],
                }
                for r in g.head(max_rows).itertuples(index=False)
            ]  # fmt: skip
            groups.append({
                "stage": STAGE_LABELS.get(stage, stage),
                "table": schemas.INPUT_TABLES[t].label if t in schemas.INPUT_TABLES else t,
                "rule": rule, "label": _rule_label(rule), "count": len(g), "rows": rows,
                "hidden": max(len(g) - max_rows, 0),
            })  # fmt: skip
    s = result.summary
    return {
        "year": year,
        "dataset_label": dataset.get("label") or "",
        "synthetic": bool(dataset.get("synthetic")),
        "status_error": bool((f["severity"] == "error").any()),
        "n_errors": int((f["severity"] == "error").sum()),
        "n_warn": int((f["severity"] == "warn").sum()),
        "reconciled": bool(s["reconciled"]),
        "ingest_reconciled": bool(s["ingest_reconciled"]),
        "tables": tables,
        "files": files,
        "findings": findings,
        "groups": groups,
        "n_quarantined": len(q),
        "max_rows": max_rows,
    }
