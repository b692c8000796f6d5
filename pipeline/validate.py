"""Stage 2 — validate: the data-quality gate between ingest and every statistic.

What it does
------------
Ingest quarantines rows it cannot *parse*; this stage checks rows that parse but break a rule, and
checks each table as a whole. It decides, row by row and table by table, what may go on:

* **Row-level rules** (a failing row is set aside in the quarantine with the rule, the column and a
  Chinese message naming the source file and row, and never reaches a statistic):

  - column rules run as a Great Expectations (1.x) suite built in code from
    :mod:`pipeline.schemas` (required → not null, ``min``/``max`` → between, code lists → in set,
    table key → compound unique); GX runs in an ephemeral context, nothing is written to disk;
  - rules GX expresses awkwardly run as vectorised pandas checks: weight finite, score within the
    plausible range of its year × subject × grade, level consistent with the score and cut scores,
    a score row whose student does not exist, enrolment > 0 for a school in balance scope,
    percentages of county reports within 0–100;
  - **duplicates**: every copy of a duplicated key is set aside (not "keep first": which copy is
    right cannot be known);
  - **cascade**: a score row whose student was set aside (by ingest or here) is set aside too, with
    its own rule ``student_quarantined``, so no statistic uses scores of a student whose background
    row is unusable.

  A row that breaks several rules gives **one** quarantine row; its ``rule`` and ``column`` fields
  list every broken rule / column joined by ``;`` (sorted by rule id) and ``message`` joins the
  messages with ``；``. Counts per rule in ``summary.json`` therefore add up to at least the number
  of quarantined rows (a row counts once under each rule it breaks).

* **Table-level rules** give findings with a severity (``error`` / ``warn``, set per rule in
  ``params.yaml``): too few sampled schools per county × grade, schools with too many sampled
  students, grade-4 students in a junior-only school or the reverse, subjects outside the year's
  national rotation, a county's share of set-aside rows, school weight sums that differ wildly in a
  county, county-report level percentages that do not add up to 100 ± tolerance.

Nothing is lost: for every table × source file, rows in = rows passed on + rows set aside; the
stage asserts it (an internal error otherwise) and writes the balance to ``summary.json``. The
unit is the canonical row: after the 一贯制 split or the melt of wide score columns one source row
may give several canonical rows, each accounted for.

If any finding is an ``error``, the stage still writes the quarantine, findings, summary and pages
(so the analyst can read what is wrong), removes any stale ``validated/`` tables, and then stops
with an :class:`EqmError` pointing at the page. Otherwise it writes ``validated/<table>.parquet``.

Missing inputs: ``students`` and ``schools`` must exist (ingest always writes them, possibly empty);
``scores``, ``county_reports`` and ``previous_problems`` may be missing and are then treated as
empty (a county that only receives aggregate reports has no student-level scores).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.io import outputs, read_json

log = logging.getLogger(__name__)

TABLES = ("students", "scores", "schools", "county_reports", "previous_problems")
REQUIRED_INPUTS = ("students", "schools")
TRACE = ("source_file", "source_row")
PCT_LEVEL_INDICATORS = tuple(f"pct_level_{lv}" for lv in schemas.LEVELS)
Severity = Literal["error", "warn"]

# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateParams:
    """The ``validate:`` section of ``params.yaml`` (each value's reason is commented there)."""

    min_schools_per_county_grade: int
    max_students_per_school: int
    quarantine_share_warn: float
    quarantine_share_error: float
    max_weight_sum_ratio: float
    level_pct_tolerance: float
    homework_minutes_range: tuple[float, float]
    sleep_hours_range: tuple[float, float]
    fitness_score_range: tuple[float, float]
    severity: Mapping[str, Severity] = field(default_factory=dict)
    page_max_rows_per_rule: int = 200


DEFAULT_SEVERITY: dict[str, Severity] = {
    "few_schools": "warn",
    "too_many_students": "warn",
    "grade_stage_mismatch": "warn",
    "subject_not_in_rotation": "warn",
    "rotation_year_unknown": "warn",
    "quarantine_share": "warn",  # above quarantine_share_error it is always an error
    "weight_sum_ratio": "warn",
    "level_pct_sum": "error",
    "no_achievement_data": "error",
    "no_school_data": "warn",
    "no_scores": "warn",
    "ingest_counts_mismatch": "warn",
}

# ------------------------------------------------------------------------------------------------
# Rule catalogue: id -> what it means, in plain Chinese (shown on the page and in messages)
# ------------------------------------------------------------------------------------------------

ROW_RULES: dict[str, str] = schemas.VALIDATION_ROW_RULES
FINDING_RULES: dict[str, str] = schemas.VALIDATION_FINDING_RULES

STAGE_LABELS = {"ingest": "导入", "validate": "校验"}


@dataclass(frozen=True)
class _Spec:
    """One GX column expectation and the quarantine rule a failing row gets."""

    rule: str
    column: str
    kind: str  # not_null | between | in_set | unique
    kwargs: tuple[tuple[str, Any], ...] = ()
    columns: tuple[str, ...] = ()  # for compound unique


def _between(
    rule: str, col: str, lo: float | None, hi: float | None, strict_min: bool = False
) -> _Spec:
    kw: list[tuple[str, Any]] = [("min_value", lo), ("max_value", hi)]
    if strict_min:
        kw.append(("strict_min", True))
    return _Spec(rule, col, "between", tuple(kw))


def _row_specs(
    table: str, columns: set[str], params: ValidateParams, mon: MonitoringParams
) -> list[_Spec]:
    """GX expectations for one table, from the column metadata in :mod:`pipeline.schemas`."""
    meta = schemas.INPUT_TABLES[table]
    specs: list[_Spec] = []
    special = {
        "student_id": "missing_student_id",
        "school_id": "missing_school_id",
        "weight": "weight_invalid",
    }
    questionnaire = {
        "homework_minutes": ("homework_out_of_range", params.homework_minutes_range),
        "sleep_hours": ("sleep_out_of_range", params.sleep_hours_range),
        "fitness_score": ("fitness_out_of_range", params.fitness_score_range),
    }
    for c in meta.columns:
        if c.name not in columns:
            continue
        if c.required:
            specs.append(_Spec(special.get(c.name, "missing_value"), c.name, "not_null"))
        if c.name == "weight":
            specs.append(_between("weight_invalid", "weight", 0, None, strict_min=True))
        elif c.name in questionnaire:
            rule, (lo, hi) = questionnaire[c.name]
            specs.append(_between(rule, c.name, lo, hi))
        elif c.name in schemas.RESOURCE_QUANTITIES or c.name.startswith("enrollment"):
            specs.append(_between("resource_negative", c.name, c.min, c.max))
        elif c.min is not None or c.max is not None:
            specs.append(_between("out_of_range", c.name, c.min, c.max))
    codes: dict[str, tuple[str, list]] = {
        "grade": ("grade_invalid", sorted(schemas.GRADE_LABELS)),
        "gender": ("invalid_code", sorted(schemas.GENDER_LABELS)),
        "urban_rural": ("invalid_code", sorted(schemas.URBAN_RURAL_LABELS)),
        "subject": ("invalid_code", sorted(schemas.SUBJECT_LABELS)),
        "level": ("invalid_code", list(schemas.LEVELS)),
        "stage": ("invalid_code", sorted(schemas.STAGE_LABELS)),
        "school_type": ("invalid_code", sorted(schemas.SCHOOL_TYPE_LABELS)),
        "scope": ("invalid_code", sorted(schemas.SCOPE_LABELS)),
    }
    for col, (rule, values) in codes.items():
        if col in columns:
            specs.append(_Spec(rule, col, "in_set", (("value_set", values),)))
    if "county_code" in columns:
        known = sorted(mon.counties)
        if table in ("county_reports", "previous_problems"):
            known = sorted({*known, mon.city_code})
        # students and schools must name their county; the other tables may leave it empty
        if table in ("students", "schools"):
            specs.append(_Spec("county_unknown", "county_code", "not_null"))
        specs.append(_Spec("county_unknown", "county_code", "in_set", (("value_set", known),)))
    dup_rule = {
        "students": "duplicate_student",
        "scores": "duplicate_score",
        "schools": "duplicate_school",
        "county_reports": "duplicate_report_row",
        "previous_problems": "duplicate_problem",
    }[table]
    key = tuple(k for k in meta.key if k in columns)
    if key:
        specs.append(_Spec(dup_rule, ",".join(key), "unique", columns=key))
    return specs


def _gx_failures(
    frames: Mapping[str, pd.DataFrame], specs: Mapping[str, list[_Spec]]
) -> pd.DataFrame:
    """Run the GX suites; return failing rows as ``table, pos, rule, column`` (pos = row position).

    GX is imported here only (its import costs seconds). Each expectation carries its rule in
    ``meta`` because GX does not return results in suite order.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    kinds = {
        "not_null": gxe.ExpectColumnValuesToNotBeNull,
        "between": gxe.ExpectColumnValuesToBeBetween,
        "in_set": gxe.ExpectColumnValuesToBeInSet,
    }
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    source = context.data_sources.add_pandas("eqm")
    parts: list[pd.DataFrame] = []
    for table, df in frames.items():
        table_specs = specs.get(table, [])
        if df.empty or not table_specs:
            continue
        suite = gx.ExpectationSuite(name=f"eqm_{table}")
        for i, s in enumerate(table_specs):
            meta = {"rule": s.rule, "column": s.column, "spec": i}
            if s.kind == "unique" and len(s.columns) == 1:
                exp = gxe.ExpectColumnValuesToBeUnique(column=s.columns[0], meta=meta)
            elif s.kind == "unique":
                exp = gxe.ExpectCompoundColumnsToBeUnique(column_list=list(s.columns), meta=meta)
            else:
                exp = kinds[s.kind](column=s.column, meta=meta, **dict(s.kwargs))
            suite.add_expectation(exp)
        suite = context.suites.add(suite)
        batch = (
            source.add_dataframe_asset(table)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": _gx_frame(df, table_specs)})
        )
        result = batch.validate(suite, result_format="COMPLETE")
        for r in result.results:
            info = r.exception_info or {}
            raised = info.get("raised_exception") or any(
                isinstance(v, dict) and v.get("raised_exception") for v in info.values()
            )
            if raised:
                raise RuntimeError(f"GX expectation failed to run on {table}: {info}")
            meta = r.expectation_config.meta
            idx = r.result.get("unexpected_index_list") or []
            if idx:
                parts.append(
                    pd.DataFrame(
                        {
                            "table": table,
                            "pos": np.asarray(idx, dtype="int64"),
                            "rule": meta["rule"],
                            "column": meta["column"],
                        }
                    )
                )
    if not parts:
        return _empty_failures()
    return pd.concat(parts, ignore_index=True)


def _gx_frame(df: pd.DataFrame, specs: list[_Spec]) -> pd.DataFrame:
    """The columns GX checks, text as ``category``: same values and positions, ~2x faster in GX.

    GX hashes the whole frame and filters it row-wise for each expectation; on Arrow-backed text
    columns of a million rows that dominates, on categorical codes it is cheap.
    """
    cols = sorted({c for s in specs for c in (s.columns or (s.column,))})
    return pd.DataFrame(
        {
            c: df[c].astype("category") if df[c].dtype == "str" or df[c].dtype == object else df[c]
            for c in cols
        }
    )


def _empty_failures() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.Series(dtype="str"),
            "pos": pd.Series(dtype="int64"),
            "rule": pd.Series(dtype="str"),
            "column": pd.Series(dtype="str"),
        }
    )


def _mask_failures(
    table: str, mask: pd.Series | np.ndarray, rule: str, column: str
) -> pd.DataFrame:
    pos = np.flatnonzero(np.asarray(mask, dtype=bool))
    return pd.DataFrame(
        {"table": table, "pos": pos.astype("int64"), "rule": rule, "column": column}
    )


# ------------------------------------------------------------------------------------------------
# Vectorised pandas checks (where GX is awkward)
# ------------------------------------------------------------------------------------------------


def _score_columns(scores: pd.DataFrame) -> list[str]:
    pvs = sorted(
        (c for c in scores.columns if c.startswith(schemas.PV_PREFIX) and c[2:].isdigit()),
        key=lambda c: int(c[2:]),
    )
    return (["scale_score"] if "scale_score" in scores.columns else []) + pvs


def _student_lookup(students: pd.DataFrame) -> pd.DataFrame:
    """(year, student_id) -> grade, county_code, school_id; first copy of a duplicated key."""
    cols = [c for c in ("year", "student_id", "grade", "county_code", "school_id") if c in students]
    return (
        students[cols].dropna(subset=["student_id"]).drop_duplicates(["year", "student_id"])
    ).set_index(["year", "student_id"])


def _scales_for(scores: pd.DataFrame, grade: pd.Series, mon: MonitoringParams) -> pd.DataFrame:
    """Plausible range and cut scores per score row (the year × subject × grade scale, else default)."""
    d = mon.default_scale
    n = len(scores)
    out = pd.DataFrame(
        {
            "lo": np.full(n, d.plausible_range[0], dtype=float),
            "hi": np.full(n, d.plausible_range[1], dtype=float),
            "c1": np.full(n, d.cut_scores[0], dtype=float),
            "c2": np.full(n, d.cut_scores[1], dtype=float),
            "c3": np.full(n, d.cut_scores[2], dtype=float),
        }
    )
    if mon.scales and n:
        key = (
            scores["year"].astype("str")
            + "/"
            + scores["subject"].astype("str")
            + "/"
            + grade.astype("Int64").astype("str")
        ).to_numpy()
        for k, s in mon.scales.items():
            hit = key == k
            if hit.any():
                out.loc[hit, ["lo", "hi"]] = s.plausible_range
                out.loc[hit, ["c1", "c2", "c3"]] = s.cut_scores
    return out


def _expected_level(score: pd.Series, sc: pd.DataFrame) -> pd.Series:
    """Level from cut scores (lower bounds of II, III, IV): s < c1 → I, c1 ≤ s < c2 → II, …"""
    s = score.to_numpy(dtype=float, na_value=np.nan)
    lv = np.select(
        [
            s < sc["c1"].to_numpy(),
            s < sc["c2"].to_numpy(),
            s < sc["c3"].to_numpy(),
            s >= sc["c3"].to_numpy(),
        ],
        list(schemas.LEVELS),
        default="",
    )
    return pd.Series(lv, index=score.index).replace("", pd.NA)


def _pandas_row_checks(
    frames: Mapping[str, pd.DataFrame], mon: MonitoringParams, lookup: pd.DataFrame | None
) -> list[pd.DataFrame]:
    out: list[pd.DataFrame] = []
    for t in ("students", "schools"):
        df = frames[t]
        if len(df) and "school_id" in df:
            # blank or whitespace-only text counts as missing (NA itself is a GX not-null rule)
            blank = df["school_id"].astype("str").str.strip().eq("").fillna(False)
            out.append(_mask_failures(t, blank, "missing_school_id", "school_id"))
    st = frames["students"]
    if "weight" in st and len(st):
        w = st["weight"].to_numpy(dtype=float, na_value=np.nan)
        out.append(_mask_failures("students", np.isinf(w), "weight_invalid", "weight"))

    sc = frames["scores"]
    if len(sc) and lookup is not None:
        keys = pd.MultiIndex.from_arrays([sc["year"], sc["student_id"]])
        known = keys.isin(lookup.index)
        out.append(_mask_failures("scores", ~known, "student_unknown", "student_id"))
        grade = pd.Series(lookup["grade"].reindex(keys).to_numpy(), index=sc.index)
        scales = _scales_for(sc, grade, mon)
        score_cols = _score_columns(sc)
        for col in score_cols:
            v = sc[col].to_numpy(dtype=float, na_value=np.nan)
            bad = (v < scales["lo"].to_numpy()) | (v > scales["hi"].to_numpy()) | np.isinf(v)
            out.append(_mask_failures("scores", bad, "score_out_of_range", col))
        has_any = np.zeros(len(sc), dtype=bool)
        for col in [*score_cols, "level"]:
            if col in sc:
                has_any |= sc[col].notna().to_numpy()
        out.append(_mask_failures("scores", ~has_any, "score_missing", "scale_score"))
        if "scale_score" in sc and "level" in sc:
            expected = _expected_level(sc["scale_score"], scales)
            both = sc["scale_score"].notna() & sc["level"].notna() & expected.notna()
            in_range = (sc["scale_score"] >= scales["lo"].to_numpy()) & (
                sc["scale_score"] <= scales["hi"].to_numpy()
            )
            bad = both & in_range & (sc["level"].astype("str") != expected.astype("str"))
            out.append(_mask_failures("scores", bad.fillna(False), "level_inconsistent", "level"))

    sch = frames["schools"]
    if len(sch) and "enrollment" in sch:
        in_scope = ~sch["school_type"].isin(["special", "vocational"]).fillna(False).to_numpy(bool)
        positive = (sch["enrollment"] > 0).fillna(False).to_numpy(bool)
        out.append(
            _mask_failures("schools", in_scope & ~positive, "enrollment_not_positive", "enrollment")
        )

    cr = frames["county_reports"]
    if len(cr) and {"indicator", "value"} <= set(cr.columns):
        pct = cr["indicator"].astype("str").str.startswith("pct_").fillna(False)
        bad = pct & ((cr["value"] < 0) | (cr["value"] > 100)).fillna(False)
        out.append(_mask_failures("county_reports", bad, "pct_out_of_range", "value"))
    return out


def _cascade(
    scores: pd.DataFrame,
    students: pd.DataFrame,
    student_failures: np.ndarray,
    ingest_quarantine: pd.DataFrame,
) -> pd.DataFrame:
    """Scores whose student row was set aside (here or at ingest) → ``student_quarantined``."""
    if scores.empty:
        return _empty_failures()
    bad = students.iloc[np.unique(student_failures)][["year", "student_id"]]
    ing = _ingest_quarantined_students(ingest_quarantine)
    keys = pd.concat([bad, ing], ignore_index=True).dropna().drop_duplicates()
    if keys.empty:
        return _empty_failures()
    idx = pd.MultiIndex.from_frame(keys.astype({"year": "int64", "student_id": "str"}))
    hit = pd.MultiIndex.from_arrays([scores["year"], scores["student_id"]]).isin(idx)
    return _mask_failures("scores", hit, "student_quarantined", "student_id")


def _ingest_quarantined_students(q: pd.DataFrame) -> pd.DataFrame:
    """(year, student_id) of student rows ingest set aside, when it could read both.

    Ingest keeps the pseudonymised id in ``raw_values`` under the source header (学籍号, 考号 …),
    so the id is looked up under the canonical name and every alias of ``student_id``.
    """
    empty = pd.DataFrame({"year": pd.Series(dtype="int64"), "student_id": pd.Series(dtype="str")})
    if q.empty:
        return empty
    rows = q[q["table"].eq("students").fillna(False) & q["year"].notna() & q["raw_values"].notna()]
    if rows.empty:
        return empty
    names = ("student_id", *schemas.STUDENTS["student_id"].aliases)
    ids = [
        next((d[k] for k in names if d.get(k) not in (None, "")), None)
        for d in map(_loads, rows["raw_values"])
    ]
    found = pd.DataFrame({"year": rows["year"].to_numpy(), "student_id": ids}).dropna()
    return found.astype({"year": "int64", "student_id": "str"})


def _loads(s: str) -> dict:
    try:
        v = json.loads(s)
    except (TypeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


# ------------------------------------------------------------------------------------------------
# Quarantine rows
# ------------------------------------------------------------------------------------------------


def _display(table: str, column: str) -> str:
    try:
        return schemas.INPUT_TABLES[table][column].display
    except KeyError:
        return column


def _value_text(v: pd.Series) -> pd.Series:
    return v.astype("object").where(v.notna(), None).map(lambda x: "空" if x is None else str(x))


def _quarantine_rows(
    table: str, df: pd.DataFrame, fails: pd.DataFrame, county: pd.Series, stage: str = "validate"
) -> pd.DataFrame:
    """One quarantine row per failing canonical row, all its rules joined (sorted by rule id)."""
    if fails.empty:
        return _empty_quarantine()
    f = fails.drop_duplicates(["pos", "rule", "column"]).sort_values(["pos", "rule", "column"])
    # message per violation: "<rule text>（<column label>：<value>）"
    msgs = []
    for column, grp in f.groupby("column", sort=True):
        if column in df.columns:
            vals = _value_text(df[column].iloc[grp["pos"].to_numpy()]).to_numpy()
            text = "（" + _display(table, column) + "：" + pd.Series(vals, index=grp.index) + "）"
        else:  # compound key: name the key columns
            cols = [_display(table, c) for c in column.split(",")]
            text = pd.Series("（" + "、".join(cols) + "）", index=grp.index)
        msgs.append(grp["rule"].map(ROW_RULES) + text)
    f = f.assign(message=pd.concat(msgs).reindex(f.index))
    agg = f.groupby("pos", sort=True).agg(
        rule=("rule", ";".join), column=("column", ";".join), message=("message", "；".join)
    )
    pos = agg.index.to_numpy()
    rows = df.iloc[pos]
    payload = rows.drop(columns=[c for c in TRACE if c in rows.columns])
    raw = payload.to_json(orient="records", lines=True, force_ascii=False)
    raw_lines = raw.splitlines() if len(payload) else []
    return pd.DataFrame(
        {
            "table": table,
            "source_file": rows["source_file"].astype("str").to_numpy(),
            "source_row": rows["source_row"].astype("int64").to_numpy(),
            "column": agg["column"].to_numpy(),
            "rule": agg["rule"].to_numpy(),
            "message": agg["message"].to_numpy(),
            "raw_values": raw_lines,
            "stage": stage,
            "county_code": county.iloc[pos].astype("str").to_numpy(),
            "year": rows["year"].astype("Int64").to_numpy(),
        }
    ).astype({"county_code": "str"})


QUARANTINE_COLUMNS = schemas.QUARANTINE.names


def _empty_quarantine() -> pd.DataFrame:
    return _conform_quarantine(pd.DataFrame({c: [] for c in QUARANTINE_COLUMNS}))


def _conform_quarantine(q: pd.DataFrame) -> pd.DataFrame:
    q = q.reindex(columns=QUARANTINE_COLUMNS)
    out = {}
    for c in QUARANTINE_COLUMNS:
        if c in ("source_row", "year"):
            num = pd.to_numeric(q[c], errors="coerce").astype("Int64")
            # source_row as ingest writes it (int64); year may be unknown (Int64)
            out[c] = num.astype("int64") if c == "source_row" and num.notna().all() else num
        else:
            s = q[c].astype("object")
            out[c] = s.where(s.notna(), None).astype("str")
            out[c] = out[c].where(s.notna(), pd.NA)
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------
# Table-level findings
# ------------------------------------------------------------------------------------------------

FINDING_COLUMNS = ("rule", "severity", "table", "county_code", "year", "grade", "message", "count")


def _finding(rule, table, county, year, grade, message, count, params, severity=None) -> dict:
    sev = severity or params.severity.get(rule, DEFAULT_SEVERITY[rule])
    return {
        "rule": rule,
        "severity": sev,
        "table": table,
        "county_code": county,
        "year": year,
        "grade": grade,
        "message": message,
        "count": int(count),
    }


def _clip_list(items, n: int = 10) -> str:
    items = [str(i) for i in items]
    more = f" 等 {len(items)} 个" if len(items) > n else ""
    return "、".join(items[:n]) + more


def _table_findings(
    passed: Mapping[str, pd.DataFrame],
    frames: Mapping[str, pd.DataFrame],
    quarantine: pd.DataFrame,
    county_of: Mapping[str, pd.Series],
    params: ValidateParams,
    mon: MonitoringParams,
    lookup: pd.DataFrame | None,
) -> list[dict]:
    out: list[dict] = []
    st = passed["students"]
    name = mon.county_name
    if len(st):
        # schools and students per county x grade, per school
        per_school = (
            st.groupby(["year", "county_code", "grade", "school_id"], sort=True)
            .agg(n=("student_id", "size"), w=("weight", "sum"))
            .reset_index()
        )
        grp = per_school.groupby(["year", "county_code", "grade"], sort=True)
        summary = grp.agg(
            n_schools=("school_id", "size"), w_min=("w", "min"), w_max=("w", "max")
        ).reset_index()
        for r in summary.itertuples(index=False):
            if r.n_schools < params.min_schools_per_county_grade:
                out.append(_finding(
                    "few_schools", "students", r.county_code, r.year, r.grade,
                    f"{r.year} 年{name(r.county_code)}{schemas.GRADE_LABELS.get(r.grade, r.grade)}只有 "
                    f"{r.n_schools} 所样本学校（少于 {params.min_schools_per_county_grade} 所），"
                    "校际差异率等学校间统计量不可靠。", r.n_schools, params))  # fmt: skip
            ratio = r.w_max / r.w_min if r.w_min > 0 else np.inf
            if r.n_schools >= 2 and ratio > params.max_weight_sum_ratio:
                out.append(_finding(
                    "weight_sum_ratio", "students", r.county_code, r.year, r.grade,
                    f"{r.year} 年{name(r.county_code)}{schemas.GRADE_LABELS.get(r.grade, r.grade)}各样本学校"
                    f"学生权重之和最大为最小的 {ratio:.1f} 倍（超过 {params.max_weight_sum_ratio:g} 倍），"
                    "请核对权重是否按同一抽样设计计算。", r.n_schools, params))  # fmt: skip
        big = per_school[per_school["n"] > params.max_students_per_school]
        for (year, county, grade), g in big.groupby(["year", "county_code", "grade"], sort=True):
            out.append(_finding(
                "too_many_students", "students", county, year, grade,
                f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}有 {len(g)} 所学校样本学生"
                f"超过 {params.max_students_per_school} 人（学校编号：{_clip_list(g['school_id'])}），"
                "可能是学校编号合并错误或重复上报。", len(g), params))  # fmt: skip
        # grade vs school stage
        sch = passed["schools"]
        if len(sch):
            stages = (
                sch.assign(p=sch["stage"].eq("primary"), j=sch["stage"].eq("junior"))
                .groupby(["year", "school_id"])[["p", "j"]]
                .any()
            )
            m = st[["year", "county_code", "grade", "school_id"]].join(
                stages, on=["year", "school_id"]
            )
            bad = ((m["grade"] == 4) & m["j"].eq(True) & m["p"].eq(False)) | (
                (m["grade"] == 8) & m["p"].eq(True) & m["j"].eq(False)
            )
            for (year, county, grade), g in m[bad].groupby(
                ["year", "county_code", "grade"], sort=True
            ):
                kind = "只有初中学段的学校" if grade == 4 else "只有小学学段的学校"
                out.append(_finding(
                    "grade_stage_mismatch", "students", county, year, grade,
                    f"{year} 年{name(county)}有 {len(g)} 名{schemas.GRADE_LABELS.get(grade, grade)}学生属于{kind}"
                    f"（学校编号：{_clip_list(sorted(g['school_id'].unique()))}），请核对年级或学校编号。",
                    len(g), params))  # fmt: skip
    # subjects outside the rotation (scores via the student's grade, and county reports)
    rot = mon.rotation
    seen_years = set()
    sc = passed["scores"]
    subj_frames = []
    if len(sc) and len(st):
        lk = _student_lookup(st)
        g = sc[["year", "student_id", "subject"]].join(
            lk[["grade", "county_code"]], on=["year", "student_id"]
        )
        subj_frames.append(("scores", g[["year", "county_code", "grade", "subject"]]))
    cr = passed["county_reports"]
    if len(cr):
        subj_frames.append(
            ("county_reports", cr[["year", "county_code", "grade", "subject"]].dropna())
        )
    for table, g in subj_frames:
        g = g.dropna()
        counts = g.groupby(["year", "county_code", "grade", "subject"], sort=True).size()
        for (year, county, grade, subject), n in counts.items():
            year, grade = int(year), int(grade)
            if year not in rot:
                if year not in seen_years:
                    seen_years.add(year)
                    out.append(_finding(
                        "rotation_year_unknown", table, None, year, None,
                        f"params.yaml 的 monitoring.rotation 没有 {year} 年，无法核对学科轮次。", 0, params))  # fmt: skip
                continue
            if subject not in rot[year].get(grade, ()):
                out.append(_finding(
                    "subject_not_in_rotation", table, county, year, grade,
                    f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}有「"
                    f"{schemas.SUBJECT_LABELS.get(subject, subject)}」的数据 {n} 行，该学科不在当年国家监测"
                    "轮次中（可能是本地加测，也可能是年份或学科填错）。", n, params))  # fmt: skip
    # county share of set-aside rows (ingest + validate), per year x county, known counties only
    parts = []
    for t, df in frames.items():
        if len(df):
            parts.append(
                pd.DataFrame(
                    {"year": df["year"].to_numpy(), "county_code": county_of[t].to_numpy()}
                )
            )
    ing = quarantine[quarantine["stage"] == "ingest"]
    if len(ing):
        parts.append(ing[["year", "county_code"]])
    if parts:
        total = (
            pd.concat(parts, ignore_index=True)
            .dropna()
            .astype({"year": "int64", "county_code": "str"})
        )
        total = total.groupby(["year", "county_code"]).size()
        bad = (
            quarantine[["year", "county_code"]]
            .dropna()
            .astype({"year": "int64", "county_code": "str"})
        )
        bad = bad.groupby(["year", "county_code"]).size().reindex(total.index, fill_value=0)
        share = bad / total
        for (year, county), s in share.items():
            if county not in mon.counties or s <= params.quarantine_share_warn:
                continue
            sev = "error" if s > params.quarantine_share_error else None
            out.append(_finding(
                "quarantine_share", None, county, year, None,
                f"{year} 年{name(county)}共 {total[(year, county)]} 行数据中有 {bad[(year, county)]} 行被隔离"
                f"（{s:.1%}，{'超过' if sev else '高于'}"
                f"{params.quarantine_share_error if sev else params.quarantine_share_warn:.0%}），"
                "请先核对该区县的原始数据。", bad[(year, county)], params, severity=sev))  # fmt: skip
    # county reports: level percentages must add up to 100 +- tolerance
    if len(cr):
        lv = cr[cr["indicator"].isin(PCT_LEVEL_INDICATORS)]
        keys = ["year", "county_code", "grade", "subject", "group_var", "group_value", "scope"]
        keys = [k for k in keys if k in lv.columns]
        if len(lv):
            agg = (
                lv.groupby(keys, dropna=False, sort=True)
                .agg(n=("indicator", "nunique"), total=("value", "sum"))
                .reset_index()
            )
            agg = agg[(agg["n"] == len(PCT_LEVEL_INDICATORS))]
            agg = agg[(agg["total"] - 100).abs() > params.level_pct_tolerance]
            for (year, county, grade), g in agg.groupby(
                ["year", "county_code", "grade"], sort=True
            ):
                where = "；".join(
                    f"{schemas.SUBJECT_LABELS.get(r.subject, r.subject)}"
                    f"{'' if pd.isna(getattr(r, 'group_value', None)) else '（' + str(r.group_value) + '）'}"
                    f"{schemas.SCOPE_LABELS.get(r.scope, r.scope)}合计 {r.total:g}"
                    for r in g.head(5).itertuples(index=False)
                )
                out.append(_finding(
                    "level_pct_sum", "county_reports", county, year, grade,
                    f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}区县报告中有 {len(g)} 组"
                    f"水平Ⅰ–Ⅳ百分比之和不在 100±{params.level_pct_tolerance:g} 内：{where}。"
                    "请对照报告原文核对录入。", len(g), params))  # fmt: skip
    # whole-table availability
    if passed["students"].empty and passed["county_reports"].empty:
        out.append(_finding(
            "no_achievement_data", "students", None, None, None,
            "校验后既没有学生数据，也没有区县报告汇总数据，无法计算任何监测指标。", 0, params))  # fmt: skip
    if passed["schools"].empty:
        out.append(_finding(
            "no_school_data", "schools", None, None, None,
            "校验后没有学校办学条件数据，将无法计算资源配置均衡指标。", 0, params))  # fmt: skip
    if len(passed["students"]) and passed["scores"].empty:
        out.append(_finding(
            "no_scores", "scores", None, None, None,
            "有学生数据但没有成绩数据，将无法计算学业成绩指标。", 0, params))  # fmt: skip
    return out


def _findings_frame(rows: list[dict]) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    f = f.astype(
        {
            "rule": "str",
            "severity": "str",
            "table": "object",
            "county_code": "object",
            "year": "Int64",
            "grade": "Int64",
            "message": "str",
            "count": "int64",
        }
    )
    for c in ("table", "county_code"):
        f[c] = f[c].astype("str").where(f[c].notna(), pd.NA)
    sev = f["severity"].map({"error": 0, "warn": 1})
    return (
        f.assign(_s=sev)
        .sort_values(["_s", "year", "county_code", "grade", "rule", "message"], na_position="first")
        .drop(columns="_s")
        .reset_index(drop=True)
    )


# ------------------------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    validated: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame  # ingest's rows + this stage's
    findings: pd.DataFrame
    summary: dict
    balance: pd.DataFrame  # table, source_file, year, rows_in, passed, quarantined

    @property
    def has_errors(self) -> bool:
        return bool((self.findings["severity"] == "error").any())


def _prepare(table: str, df: pd.DataFrame | None) -> pd.DataFrame:
    meta = schemas.INPUT_TABLES[table]
    if df is None:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in [*meta.names, *TRACE]})
        df = df.drop(columns=[c.name for c in meta.columns if c.pii and c.name != "student_id"])
        df = df.astype({"year": "int64", "source_row": "int64", "source_file": "str"})
    missing = [c for c in ("year", *TRACE, *(c.name for c in meta.required)) if c not in df.columns]
    if missing:
        raise EqmError(
            f"导入后的「{meta.label}」缺少列：{', '.join(missing)}。",
            file=f"data/processed/{table}.parquet",
            hint="请重新运行导入环节（eqm ingest）；若仍缺少，请检查原始文件的表头。",
        )
    return df.reset_index(drop=True)


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

    specs = {t: _row_specs(t, set(df.columns), params, mon) for t, df in frames.items()}
    # (year, student_id) -> grade, county, school: only scores need it (costly on 1M students)
    lookup = _student_lookup(frames["students"]) if len(frames["scores"]) else None
    fails = pd.concat(
        [_gx_failures(frames, specs), *_pandas_row_checks(frames, mon, lookup)], ignore_index=True
    )
    st_fail = fails.loc[fails["table"] == "students", "pos"].to_numpy()
    cascade = _cascade(frames["scores"], frames["students"], st_fail, iq)
    # a score whose student ingest set aside is a cascade, not an unknown student
    unknown_too = (
        fails["table"].eq("scores")
        & fails["rule"].eq("student_unknown")
        & fails["pos"].isin(cascade["pos"])
    )
    fails = pd.concat([fails[~unknown_too], cascade], ignore_index=True)

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

    vq_parts, validated, balance_parts = [], {}, []
    for t, df in frames.items():
        tf = fails[fails["table"] == t]
        bad = np.zeros(len(df), dtype=bool)
        bad[tf["pos"].to_numpy()] = True
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
    finding_rows = _table_findings(validated, frames, quarantine, county_of, params, mon, lookup)
    for f in ingest_check["mismatched"]:
        finding_rows.append(_finding(
            "ingest_counts_mismatch", None, None, None, None,
            f"导入清单中文件 {f} 的读入行数不等于保留行数与隔离行数之和，或与隔离记录条数不符。", 0, params))  # fmt: skip
    findings = _findings_frame(finding_rows)
    summary = _summary(
        frames, validated, quarantine, findings, balance, ingest_check, county_of, fails
    )
    return ValidationResult(validated, quarantine, findings, summary, balance)


def _sort_quarantine(q: pd.DataFrame) -> pd.DataFrame:
    order = q["stage"].map({"ingest": 0, "validate": 1}).fillna(2)
    return (
        q.assign(_o=order)
        .sort_values(
            ["_o", "table", "source_file", "source_row", "rule", "column", "raw_values"],
            na_position="last",
            kind="mergesort",
        )
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def _manifest_files(manifest: Mapping[str, Any] | None) -> dict[str, dict]:
    files = (manifest or {}).get("files") or {}
    if isinstance(files, Mapping):
        return {str(k): dict(v) for k, v in files.items()}
    out = {}
    for item in files:
        key = item.get("source_file") or item.get("path") or item.get("file")
        if key is not None:
            out[str(key)] = dict(item)
    return out


def _ingest_check(manifest: Mapping[str, Any] | None, iq: pd.DataFrame) -> dict:
    files = _manifest_files(manifest)
    per_file = iq.groupby("source_file").size() if len(iq) else pd.Series(dtype="int64")
    mismatched = []
    out = {}
    for f, m in sorted(files.items()):
        read, kept, qn = (m.get(k) for k in ("rows_read", "rows_kept", "rows_quarantined"))
        ok = None
        if None not in (read, kept, qn):
            ok = int(read) == int(kept) + int(qn) and int(qn) == int(per_file.get(f, 0))
            if not ok:
                mismatched.append(f)
        out[f] = {"rows_read": read, "rows_kept": kept, "rows_quarantined": qn, "consistent": ok}
    return {"files": out, "mismatched": mismatched}


def _counts(s: pd.Series) -> dict:
    return {str(k): int(v) for k, v in s.items()}


def _summary(
    frames, validated, quarantine, findings, balance, ingest_check, county_of, fails
) -> dict:
    vq = quarantine[quarantine["stage"] == "validate"]
    iq = quarantine[quarantine["stage"] == "ingest"]
    # rule counts: a row counts once under each rule it breaks
    long = fails.drop_duplicates(["table", "pos", "rule"])
    tables = {}
    for t in TABLES:
        tl = long[long["table"] == t]
        tables[t] = {
            "rows_in": len(frames[t]),
            "passed": len(validated[t]),
            "quarantined": int((vq["table"] == t).sum()),
            "ingest_quarantined": int((iq["table"] == t).sum()),
            "rules": _counts(tl.groupby("rule").size()),
        }
    # per county: table -> rule -> rows
    with_county = []
    for t in TABLES:
        tl = long[long["table"] == t]
        if len(tl):
            c = county_of[t].iloc[tl["pos"].to_numpy()].astype("object").fillna("unknown")
            with_county.append(
                pd.DataFrame(
                    {
                        "county": c.astype("str").to_numpy(),
                        "table": t,
                        "rule": tl["rule"].to_numpy(),
                    }
                )
            )
    counties: dict[str, dict] = {}
    if with_county:
        wc = pd.concat(with_county, ignore_index=True)
        for (county, t, rule), n in wc.groupby(["county", "table", "rule"]).size().items():
            counties.setdefault(county, {}).setdefault(t, {})[rule] = int(n)
    ing_rules = iq.groupby(["table", "rule"]).size() if len(iq) else pd.Series(dtype="int64")
    files: dict[str, dict] = {}
    for r in (
        balance.groupby(["source_file", "table"])[["rows_in", "passed", "quarantined"]]
        .sum()
        .itertuples()
    ):
        f, t = r.Index
        entry = files.setdefault(f, {"tables": {}, "ingest": ingest_check["files"].get(f)})
        entry["tables"][t] = {
            "rows_in": int(r.rows_in),
            "passed": int(r.passed),
            "quarantined": int(r.quarantined),
            "reconciled": int(r.rows_in) == int(r.passed) + int(r.quarantined),
        }
    for f, m in ingest_check["files"].items():
        files.setdefault(f, {"tables": {}, "ingest": m})
    reconciled = all(v["reconciled"] for e in files.values() for v in e["tables"].values())
    years = sorted({int(y) for df in frames.values() for y in df["year"].dropna().unique()}
                   | {int(y) for y in quarantine["year"].dropna().unique()})  # fmt: skip
    n_err = int((findings["severity"] == "error").sum())
    return {
        "status": "failed" if n_err else "passed",
        "years": years,
        "reconciled": bool(reconciled),
        "ingest_reconciled": not ingest_check["mismatched"],
        "tables": tables,
        "rules": _counts(long.groupby("rule").size()),
        "ingest_rules": {f"{t}/{r}": int(n) for (t, r), n in ing_rules.items()},
        "counties": counties,
        "files": files,
        "quarantine_rows": {"ingest": len(iq), "validate": len(vq)},
        "findings": {"error": n_err, "warn": int((findings["severity"] == "warn").sum())},
    }


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------

TEMPLATE = Path(__file__).parent / "templates" / "validation.html.j2"


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
        return "—" if c is None or pd.isna(c) else f"{mon.county_name(c)}（{c}）"

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


def run(ctx: RunContext) -> ValidationResult:
    """Read the ingested tables, validate, write outputs; stop with EqmError on an error finding."""
    params = ctx.section(ValidateParams, "validate")
    mon = ctx.monitoring
    paths = ctx.paths
    tables = {t: _read_table(paths.ingested(t), t) for t in TABLES}
    iq = pd.read_parquet(paths.ingest_quarantine) if paths.ingest_quarantine.is_file() else None
    manifest = (
        read_json(paths.ingest_manifest, "导入清单") if paths.ingest_manifest.is_file() else None
    )
    with ctx.step("数据质量校验", 1) as advance:
        result = validate_tables(tables, iq, manifest, params, mon)
        advance(1)
    pages = render_pages(result, mon, manifest, params.page_max_rows_per_rule)

    with outputs() as out:  # diagnostics first: committed even when the gate then stops the run
        out.parquet(result.quarantine, paths.validation_quarantine)
        out.parquet(result.findings, paths.validation_findings)
        out.json(result.summary, paths.validation_summary)
        pages_dir = out.directory(paths.validation_pages)
        for name, html in pages.items():
            (pages_dir / name).write_text(html, encoding="utf-8")
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
            hint=f"请打开 {page} 查看全部问题及其所在文件和行号，修正原始数据后重新运行。",
        )
    with outputs() as out:
        for t, df in result.validated.items():
            out.parquet(df, paths.validated(t))
    return result
