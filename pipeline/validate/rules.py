"""Row-level rules: the Great Expectations suite built from :mod:`pipeline.schemas`, the
vectorised pandas checks GX expresses awkwardly, and the cascade from students to scores.

Each check returns failing rows as ``table, pos, rule, column[, detail]`` (``pos`` = row
position). Checks that compare a row with other rows or with the configuration (duplicates,
weights against their median, school against county, level against cut scores) live in
:mod:`pipeline.validate.consistency`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams
from pipeline.validate.params import ValidateParams


@dataclass(frozen=True)
class _Spec:
    """One GX column expectation and the quarantine rule a failing row gets."""

    rule: str
    column: str
    kind: str  # not_null | between | in_set
    kwargs: tuple[tuple[str, Any], ...] = ()


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
            specs.append(_between("weight_invalid", "weight", 0, c.max, strict_min=True))
        elif c.name in questionnaire:
            rule, (lo, hi) = questionnaire[c.name]
            specs.append(_between(rule, c.name, lo, hi))
        elif c.answers is not None:
            # a questionnaire item (31 of them): checked in _pandas_row_checks, not by GX, whose
            # expectations cost ~10 ms each
            continue
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
        "education": ("invalid_code", sorted(schemas.EDUCATION_LABELS)),
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
    # the table key is checked after these rules, on the rows that pass them
    # (pipeline.validate.consistency.duplicate_failures), so an invalid copy never hides a valid one
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
    cols = sorted({s.column for s in specs})
    return pd.DataFrame(
        {
            c: df[c].astype("category") if df[c].dtype == "str" or df[c].dtype == object else df[c]
            for c in cols
        }
    )


def _empty_failures() -> pd.DataFrame:
    """Failing rows: ``table, pos, rule, column`` and an optional ``detail`` (the text shown in
    the message's brackets instead of the column's value; NA = the value)."""
    return pd.DataFrame(
        {
            "table": pd.Series(dtype="str"),
            "pos": pd.Series(dtype="int64"),
            "rule": pd.Series(dtype="str"),
            "column": pd.Series(dtype="str"),
            "detail": pd.Series(dtype="object"),
        }
    )


def _mask_failures(
    table: str,
    mask: pd.Series | np.ndarray,
    rule: str,
    column: str,
    detail: pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Failures at the rows where ``mask`` holds; ``detail`` (aligned with the table) optional."""
    m = np.asarray(mask, dtype=bool)
    pos = np.flatnonzero(m)
    det = None if detail is None else np.asarray(detail, dtype=object)[m]
    return pd.DataFrame(
        {
            "table": table,
            "pos": pos.astype("int64"),
            "rule": rule,
            "column": column,
            "detail": pd.Series(det, dtype="object") if det is not None else None,
        }
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


def score_context(
    scores: pd.DataFrame, lookup: pd.DataFrame | None, mon: MonitoringParams
) -> tuple[pd.Series, pd.DataFrame] | None:
    """Per score row: the student's grade (NA when unknown) and the scale of its year × subject ×
    grade (:func:`_scales_for`); ``None`` without scores or students."""
    if scores.empty or lookup is None:
        return None
    keys = pd.MultiIndex.from_arrays([scores["year"], scores["student_id"]])
    grade = pd.Series(lookup["grade"].reindex(keys).to_numpy(), index=scores.index)
    return grade, _scales_for(scores, grade, mon)


def _pandas_row_checks(
    frames: Mapping[str, pd.DataFrame],
    lookup: pd.DataFrame | None,
    score_ctx: tuple[pd.Series, pd.DataFrame] | None,
) -> list[pd.DataFrame]:
    out: list[pd.DataFrame] = []
    for t in ("students", "schools", "teachers", "principals"):
        df = frames[t]
        if len(df) and "school_id" in df:
            # blank or whitespace-only text counts as missing (NA itself is a GX not-null rule)
            blank = df["school_id"].astype("str").str.strip().eq("").fillna(False)
            out.append(_mask_failures(t, blank, "missing_school_id", "school_id"))
    for t in ("students", "teachers", "principals"):
        df = frames[t]
        for c in schemas.INPUT_TABLES[t].columns:
            if c.answers is None or c.name not in df or not len(df):
                continue
            v = df[c.name].to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isnan(v) & ~np.isin(v, (1.0, 2.0, 3.0, 4.0))  # the 4-point codes only
            out.append(_mask_failures(t, bad, "out_of_range", c.name))
    st = frames["students"]
    if "weight" in st and len(st):
        w = st["weight"].to_numpy(dtype=float, na_value=np.nan)
        over = np.isinf(w) | (w > schemas.STUDENTS["weight"].max)  # GX's between misses inf
        out.append(_mask_failures("students", over, "weight_invalid", "weight"))

    sc = frames["scores"]
    if len(sc) and lookup is not None and score_ctx is not None:
        keys = pd.MultiIndex.from_arrays([sc["year"], sc["student_id"]])
        known = keys.isin(lookup.index)
        out.append(_mask_failures("scores", ~known, "student_unknown", "student_id"))
        _, scales = score_ctx
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
        # level vs cut scores: pipeline.validate.consistency.level_failures (config vs data)

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
    """Scores whose student row was set aside (here or at ingest) → ``student_quarantined``.

    A student is set aside when no row of his (year, student_id) passes: an invalid or identical
    extra copy next to a passing copy leaves his scores in place."""
    if scores.empty:
        return _empty_failures()
    failed = np.zeros(len(students), dtype=bool)
    failed[np.asarray(student_failures, dtype="int64")] = True
    bad = students.loc[failed, ["year", "student_id"]]
    ing = _ingest_quarantined_students(ingest_quarantine)
    keys = pd.concat([bad, ing], ignore_index=True).dropna().drop_duplicates()
    if keys.empty:
        return _empty_failures()
    keys = keys.astype({"year": "int64", "student_id": "str"})
    passing = students.loc[~failed, ["year", "student_id"]].dropna()
    if len(passing):
        alive = pd.MultiIndex.from_frame(passing.astype({"year": "int64", "student_id": "str"}))
        keys = keys[~pd.MultiIndex.from_frame(keys).isin(alive)]
        if keys.empty:
            return _empty_failures()
    idx = pd.MultiIndex.from_frame(keys)
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
