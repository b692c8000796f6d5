"""Stage 2 — validate: the data-quality gate between ingest and every statistic.

What it does
------------
Ingest quarantines rows it cannot *parse*; this stage checks rows that parse but break a rule, and
checks each table as a whole. It decides, row by row and table by table, what may go on. The
package follows the work: :mod:`.rules` (GX suite, pandas row checks, cascade),
:mod:`.consistency` (a row against other rows or the configuration), :mod:`.tables` (table-level
findings), :mod:`.accounting` (quarantine rows, ledger, summary), :mod:`.pages` (HTML).

* **Row-level rules** (a failing row is set aside in the quarantine with the rule, the column and a
  Chinese message; the row keeps its source file and row; it never reaches a statistic), in
  three passes:

  1. column rules as a Great Expectations (1.x) suite built in code from :mod:`pipeline.schemas`
     (required → not null, ``min``/``max`` → between, code lists → in set; GX runs in an
     ephemeral context, nothing is written to disk); vectorised pandas checks where GX is
     awkward (weight finite, score within the plausible range of its year × subject × grade, a
     score whose student does not exist, enrolment > 0 in balance scope, county-report
     percentages within 0–100); and the cross-row checks of :mod:`.consistency`: a weight far
     from its county × grade median (``weight_implausible``), a level that disagrees with the cut
     scores (``level_inconsistent``, or one ``cut_scores_mismatch`` finding when most rows of a
     year × subject × grade disagree: the configuration is suspect, not the rows), a student whose
     county is not his school's (``school_county_mismatch``);
  2. **duplicates** of the table key among the rows that passed 1 — so of a valid and an invalid
     copy the valid one goes on; identical copies keep the first (file, row order) and set the
     others aside as ``duplicate_identical`` with a warning; copies that differ are all set aside
     (which one is right cannot be known);
  3. **cascade**: a score row whose student has no passing row (set aside by ingest or here) is
     set aside too, with its own rule ``student_quarantined``.

  A row that breaks several rules gives **one** quarantine row; its ``rule`` and ``column`` fields
  list every broken rule / column joined by ``;`` (sorted by rule id) and ``message`` joins the
  messages with ``；``. Counts per rule in ``summary.json`` therefore add up to at least the number
  of quarantined rows (a row counts once under each rule it breaks).

* **Table-level rules** give findings with a severity (``error`` / ``warn``, set per rule in
  ``params.yaml``): too few sampled schools per county × grade, schools with too many sampled
  students, grade-4 students in a junior-only school or the reverse, subjects outside the year's
  national rotation, school weight sums that differ wildly in a county, county-report level
  percentages that do not add up to 100 ± tolerance, a school under two counties that cannot be
  settled row by row, identical duplicates kept once, teacher or principal questionnaires whose
  school (year × school_id) is in neither the students nor the schools table
  (``unlinked_questionnaire``: kept, they simply never link).

* **Nothing leaves the count**: every row in (ingest's set-aside rows included, counties params.yaml
  does not know included, placed by their raw code or name) is counted per year × county and per
  year × table. A share set aside above ``quarantine_share_warn`` / ``_error`` is a
  ``quarantine_share`` finding, at least ``lost_share`` is ``rows_mostly_lost``, all of it is
  ``county_lost`` / ``year_lost`` (errors by default, naming the params.yaml key to fix when the
  county is not registered). A file without data rows is ``empty_file``, or ``empty_table`` when
  its table has no row at all.

Rows in = rows passed on + rows set aside, for every table × source file; the stage asserts it (an
internal error otherwise) and writes the balance to ``summary.json``. The unit is the canonical
row: after the 一贯制 split or the melt of wide score columns one source row may give several
canonical rows, each accounted for.

If any finding is an ``error``, the stage still writes the quarantine, findings, summary and pages
(so the analyst can read what is wrong), removes any stale ``validated/`` tables, and then stops
with an :class:`EqmError` pointing at the page. Otherwise it writes ``validated/<table>.parquet``.

Missing inputs: ``students`` and ``schools`` must exist (ingest always writes them, possibly empty);
``scores``, ``county_reports``, ``previous_problems``, ``teachers`` and ``principals`` may be
missing and are then treated as empty (a county that only receives aggregate reports has no
student-level scores; a round without questionnaires has no related factors). Every table's
``validated/<table>.parquet`` is written, empty when it has no rows.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.generations import require_upstream, stamped
from pipeline.io import outputs, read_json, write_parquet
from pipeline.validate.accounting import (
    ValidationResult,
    _conform_quarantine,
    _empty_quarantine,
    _ingest_check,
    _quarantine_rows,
    _sort_quarantine,
    _summary,
    row_ledger,
)
from pipeline.validate.consistency import (
    duplicate_failures,
    level_failures,
    school_county_failures,
    weight_failures,
)
from pipeline.validate.pages import render_pages
from pipeline.validate.params import (
    PCT_LEVEL_INDICATORS,
    REQUIRED_INPUTS,
    TABLES,
    TRACE,
    ValidateParams,
)
from pipeline.validate.rules import (
    _cascade,
    _gx_failures,
    _pandas_row_checks,
    _row_specs,
    _student_lookup,
    score_context,
)
from pipeline.validate.tables import (
    _finding,
    _findings_frame,
    _table_findings,
    empty_file_findings,
    loss_findings,
)

__all__ = [
    "PCT_LEVEL_INDICATORS",
    "ValidateParams",
    "ValidationResult",
    "_gx_failures",
    "_ingest_check",
    "render_pages",
    "run",
    "schemas",
    "validate_tables",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------------------------


def _prepare(table: str, df: pd.DataFrame | None) -> pd.DataFrame:
    meta = schemas.INPUT_TABLES[table]
    if df is None:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in [*meta.names, *TRACE]})
        df = df.drop(columns=[c.name for c in meta.columns if c.dropped])
        df = df.astype({"year": "int64", "source_row": "int64", "source_file": "str"})
    missing = [c for c in ("year", *TRACE, *(c.name for c in meta.required)) if c not in df.columns]
    if missing:
        raise EqmError(
            f"导入后的「{meta.label}」缺少列：{', '.join(missing)}。",
            file=f"data/processed/{table}.parquet",
            hint="请重新运行导入环节（eqm ingest）；若仍缺少，请检查原始文件的表头。",
        )
    return df.reset_index(drop=True)


def _row_failures(
    frames: Mapping[str, pd.DataFrame],
    iq: pd.DataFrame,
    lookup: pd.DataFrame | None,
    params: ValidateParams,
    mon: MonitoringParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Every failing row (``table, pos, rule, column, detail``), in three passes, and the
    findings the checks raise instead of setting rows aside.

    1. row rules: the GX suite, the pandas checks, implausible weights, level vs cut scores
       (row by row, or one finding when the cut scores themselves look wrong), school vs county;
    2. duplicates among the rows that passed 1 (an invalid copy never hides a valid one);
    3. the cascade: scores of a student none of whose rows passed.
    """
    specs = {t: _row_specs(t, set(df.columns), params, mon) for t, df in frames.items()}
    score_ctx = score_context(frames["scores"], lookup, mon)
    level_fails, level_findings = level_failures(frames["scores"], score_ctx, params, mon)
    school_fails, school_findings = school_county_failures(
        frames["students"], frames["schools"], params, mon
    )
    fails = pd.concat(
        [
            _gx_failures(frames, specs),
            *_pandas_row_checks(frames, lookup, score_ctx),
            weight_failures(frames["students"], params),
            level_fails,
            school_fails,
        ],
        ignore_index=True,
    )
    fails, dup_findings = duplicates_and_cascade(frames, fails, iq, params)
    return fails, [*level_findings, *school_findings, *dup_findings]


def duplicates_and_cascade(
    frames: Mapping[str, pd.DataFrame],
    fails: pd.DataFrame,
    iq: pd.DataFrame,
    params: ValidateParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Passes 2 and 3 of :func:`_row_failures` on the row-rule failures ``fails``: duplicates
    among the rows that passed, then the cascade; returns all failures and the duplicate findings."""
    dup_fails, dup_findings = duplicate_failures(frames, fails, params)
    fails = pd.concat([fails, dup_fails], ignore_index=True)
    st_fail = fails.loc[fails["table"] == "students", "pos"].to_numpy()
    cascade = _cascade(frames["scores"], frames["students"], st_fail, iq)
    # a score whose student ingest set aside is a cascade, not an unknown student
    unknown_too = (
        fails["table"].eq("scores")
        & fails["rule"].eq("student_unknown")
        & fails["pos"].isin(cascade["pos"])
    )
    return pd.concat([fails[~unknown_too], cascade], ignore_index=True), dup_findings


def validate_tables(
    tables: Mapping[str, pd.DataFrame | None],
    ingest_quarantine: pd.DataFrame | None,
    manifest: Mapping[str, Any] | None,
    params: ValidateParams,
    mon: MonitoringParams,
) -> ValidationResult:
    """Check the ingested tables; return validated tables, quarantine, findings and a summary.

    Pure: no file access, inputs are not modified. ``tables`` maps table name → ingested frame
    (``None`` = absent). Every ingested row ends up in exactly one of ``validated[table]`` and the
    validate part of ``quarantine``.
    """
    frames = {t: _prepare(t, tables.get(t)) for t in TABLES}
    iq = (
        _empty_quarantine() if ingest_quarantine is None else _conform_quarantine(ingest_quarantine)
    )
    iq = iq.assign(stage=iq["stage"].fillna("ingest"))

    # (year, student_id) -> grade, county, school: only scores need it (costly on 1M students)
    lookup = _student_lookup(frames["students"]) if len(frames["scores"]) else None
    fails, check_findings = _row_failures(frames, iq, lookup, params, mon)

    # county of every row (scores: via their student)
    county_of: dict[str, pd.Series] = {}
    for t, df in frames.items():
        if "county_code" in df.columns:
            county_of[t] = df["county_code"].astype("object")
        elif t == "scores" and lookup is not None:
            keys = pd.MultiIndex.from_arrays([df["year"], df["student_id"]])
            county_of[t] = pd.Series(lookup["county_code"].reindex(keys).to_numpy(), dtype="object")
        else:
            county_of[t] = pd.Series([pd.NA] * len(df), dtype="object")

    vq_parts, validated, balance_parts, bad_of = [], {}, [], {}
    for t, df in frames.items():
        tf = fails[fails["table"] == t]
        bad = np.zeros(len(df), dtype=bool)
        bad[tf["pos"].to_numpy()] = True
        bad_of[t] = bad
        vq_parts.append(_quarantine_rows(t, df, tf, county_of[t]))
        validated[t] = df.loc[~bad].reset_index(drop=True)
        if len(df):
            b = (
                pd.DataFrame(
                    {
                        "source_file": df["source_file"].astype("str"),
                        "year": df["year"].astype("Int64"),
                        "passed": ~bad,
                        "quarantined": bad,
                    }
                )
                .groupby(["source_file", "year"], sort=True, dropna=False)
                .agg(
                    rows_in=("passed", "size"),
                    passed=("passed", "sum"),
                    quarantined=("quarantined", "sum"),
                )
                .reset_index()
                .assign(table=t)
            )
            balance_parts.append(b)
    vq = _conform_quarantine(pd.concat([q for q in vq_parts if len(q)] or [_empty_quarantine()]))
    quarantine = _sort_quarantine(pd.concat([iq, vq], ignore_index=True))
    balance = (
        pd.concat(balance_parts, ignore_index=True)
        if balance_parts
        else pd.DataFrame(
            columns=["source_file", "year", "rows_in", "passed", "quarantined", "table"]
        )
    )
    balance = balance[["table", "source_file", "year", "rows_in", "passed", "quarantined"]].astype(
        {"rows_in": "int64", "passed": "int64", "quarantined": "int64"}
    )
    # nothing created or lost: asserted here, per table x source file
    per_file = vq.groupby(["table", "source_file"]).size()
    for r in (
        balance.groupby(["table", "source_file"])[["rows_in", "passed", "quarantined"]]
        .sum()
        .itertuples()
    ):
        (t, f), rows_in, passed, qn = r.Index, r.rows_in, r.passed, r.quarantined
        if rows_in != passed + qn or qn != per_file.get((t, f), 0):
            raise RuntimeError(f"validate lost rows: {t} {f}: {rows_in} != {passed} + {qn}")
    for t in TABLES:
        if len(frames[t]) != len(validated[t]) + int((vq["table"] == t).sum()):
            raise RuntimeError(f"validate lost rows in {t}")

    ingest_check = _ingest_check(manifest, iq)
    ledger = row_ledger(frames, bad_of, county_of, quarantine, manifest)
    finding_rows = _table_findings(validated, params, mon)
    finding_rows += check_findings + loss_findings(ledger, params, mon)
    finding_rows += empty_file_findings(manifest, ledger, params)
    for f in ingest_check["mismatched"]:
        finding_rows.append(_finding(
            "ingest_counts_mismatch", None, None, None, None,
            f"导入清单中文件 {f} 的读入行数不等于保留行数与隔离行数之和，或与隔离记录条数不符。", 0, params))  # fmt: skip
    findings = _findings_frame(finding_rows)
    summary = _summary(
        frames, validated, quarantine, findings, balance, ingest_check, county_of, fails
    )
    return ValidationResult(validated, quarantine, findings, summary, balance)


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


def _read_table(path: Path, table: str) -> pd.DataFrame | None:
    if path.is_file():
        return pd.read_parquet(path)
    if table in REQUIRED_INPUTS:
        raise EqmError(
            f"找不到导入环节的输出：{path}",
            hint="请先运行导入环节（eqm ingest，或 eqm run 按顺序运行全部环节）。",
        )
    log.info("未找到 %s，按空表处理", path)
    return None


@stamped("validate")  # the gate's stop after the diagnostics are committed: stamp "failed"
def run(ctx: RunContext) -> ValidationResult:
    """Read the ingested tables, validate, write outputs; stop with EqmError on an error finding."""
    params = ctx.section(ValidateParams, "validate")
    mon = ctx.monitoring
    paths = ctx.paths
    require_upstream(ctx, "validate")
    tables = {t: _read_table(paths.ingested(t), t) for t in TABLES}
    iq = pd.read_parquet(paths.ingest_quarantine) if paths.ingest_quarantine.is_file() else None
    manifest = (
        read_json(paths.ingest_manifest, "导入清单") if paths.ingest_manifest.is_file() else None
    )
    with ctx.step("数据质量校验", 1) as advance:
        result = validate_tables(tables, iq, manifest, params, mon)
        advance(1)
    pages = render_pages(result, mon, manifest, params.page_max_rows_per_rule)

    # One commit: diagnostics always, the validated tables (a folder replaced whole, so no table of
    # an earlier run survives beside the new ones) only when the gate passes. A failed gate leaves
    # no validated tables for downstream (and the stage's stamp says failed).
    with outputs() as out:
        out.parquet(result.quarantine, paths.validation_quarantine)
        out.parquet(result.findings, paths.validation_findings)
        out.json(result.summary, paths.validation_summary)
        pages_dir = out.directory(paths.validation_pages)
        for name, html in pages.items():
            (pages_dir / name).write_text(html, encoding="utf-8")
        if not result.has_errors:
            validated_dir = out.directory(paths.validated_dir)
            for t, df in result.validated.items():
                write_parquet(df, validated_dir / paths.validated(t).name)
    s = result.summary
    log.info(
        "校验：%s；隔离 %d 行（导入 %d，校验 %d）；严重问题 %d 项，提示 %d 项",
        "，".join(f"{t} {v['rows_in']}→{v['passed']}" for t, v in s["tables"].items()),
        len(result.quarantine), s["quarantine_rows"]["ingest"], s["quarantine_rows"]["validate"],
        s["findings"]["error"], s["findings"]["warn"],
    )  # fmt: skip
    if result.has_errors:
        if paths.validated_dir.exists():  # never leave stale validated tables for downstream
            shutil.rmtree(paths.validated_dir)
        first = result.findings[result.findings["severity"] == "error"]["message"].iloc[0]
        page = paths.validation_pages / "validation_all.html"
        raise EqmError(
            f"数据质量校验发现 {s['findings']['error']} 项严重问题，后续环节未运行。第一项：{first}",
            file=str(page),
            hint=f"请打开 {page} 查看全部问题及其所在文件和行号，按每项问题的说明修正原始数据"
            "（或其中指出的 params.yaml 参数）后重新运行。",
        )
    return result
