"""Stage ``evidence``: the rectification problem list (问题清单), linked across rounds.

Reads ``indicators.parquet``, ``resource_balance.parquet``, ``school_compliance.parquet``, the
validated ``county_reports`` (province / nation benchmarks; county-scope official values where there
is no student-level estimate) and ``previous_problems`` (a hand-entered list); writes
``problems.parquet`` (:data:`pipeline.schemas.PROBLEMS`), ``comparisons.parquet``
(:data:`pipeline.schemas.COMPARISONS`: every tested value against its benchmark, the source of every
优于 / 差于 / 无显著差异 label of the reports) and the 整改台账 ``evidence/<year>/ledger/<county>.xlsx``
and ``city.xlsx`` (:mod:`.ledger`; filled ledgers under ``data/raw/ledger/`` are read back).

Modules: :mod:`.rules` (candidate rules and their tests), :mod:`.identity` (problem ids),
:mod:`.merge` (one object per problem), :mod:`.tracking` (rounds linked, statuses, close-outs,
trend), :mod:`.text` (Chinese wording), :mod:`.ledger` (整改台账 and its round trip),
:mod:`.inference` (tests, BH).

Rules (ids, Chinese title templates, domains, units and thresholds in ``params.yaml`` ``evidence:``)
------------------------------------------------------------------------------------------------
========  ===================================================  ====================================
problem   fires when                                            test
========  ===================================================  ====================================
ICC       校际差异率 (ICC(1)) >= ``icc_threshold`` (0.15)       regulatory threshold on the value
                                                                (official value first); severity 高
                                                                when the whole 95% CI is at or
                                                                above it
ACH       one of: level below Ⅲ (LEVEL); mean significantly    LEVEL: threshold; MEAN, MEDIUM:
          below the benchmark (MEAN); 中等及以上比例             one-sided t on the design df, fires
          significantly below (MEDIUM). One problem per         on BH q < alpha
          county x grade x subject listing each measure
GAP       county gap differs significantly from the national   two-sided t on g − b; fires unless
          gap and is larger on the same side or reversed;      the county gap lies between 0 and
          without a benchmark, |g| significantly above 0.2 SD  b; minimum-effect test without b
HOMEWORK  书面作业超时比例 significantly above benchmark/ceiling one-sided t
SLEEP     睡眠达标比例 significantly below benchmark/floor      one-sided t
MYOPIA    视力不良比例 significantly above the national 视力不良 one-sided t (no configured ceiling:
                                                                the 2030 targets are 近视率, another
                                                                measure)
FITNESS   体质健康达标比例 significantly below benchmark/floor   one-sided t
RES       a resource indicator's 差异系数 > 0.50 / 0.45         indicators' verdict
SCHOOL    a school (all its sections) fails 6-of-7 + 85%        indicators' verdict; one problem per
                                                                school naming each unmet indicator
========  ===================================================  ====================================

Statistics
----------
* Estimates and SEs come from ``indicators.parquet`` (stratified delete-one-PSU jackknife, Rubin's
  rules over plausible values). Where a county has no student-level estimate, its official
  county-report value is used (``source = official``); for 校际差异率 and the achievement level an
  official value wins over a computed one (domain notes), and the computed one stays in the
  evidence rows beside it.
* Benchmark: national, else provincial (``benchmark_scopes``), else (burden and health only) the
  configured ceiling or floor. The SE of a difference is ``sqrt(se² + se_bench²)`` (the county is
  part of the national sample; ignoring that positive covariance makes the test conservative).
* Reference distribution (``p_reference``): Student t with the design df, ``n_schools − 1`` for a
  county (R ``survey::degf``; Lumley 2010 §2.3; Korn & Graubard 1999 §5.2), normal where the school
  count is unknown (official values). The indicators stage builds the printed CIs with the same
  reference, so a CI and a decision never disagree.
* No SE (county reports often print none): decided by a margin (``effect_size_sd`` x SD for scores
  and gaps, ``no_se_margin_pct_points`` for percentages); p and q stay NaN (outside BH) and the
  title says so.
* Multiplicity: Benjamini–Hochberg across the rule tests that decide a round (Benjamini &
  Hochberg 1995); a rule that fires on its value (ICC, LEVEL, RES, SCHOOL) reports its p but is not
  in the family, so it cannot dilute the others; the mirrored tests behind 优于 labels form their
  own family; the change tests of a round (the re-check of the previous round's list) a third.
* Rounds: see :mod:`.tracking` (statuses, close-outs, not re-measured subjects, the change test
  ``SE = sqrt(se_now² + se_prev² + LE²)`` with the linking error ``evidence.linking_error`` per
  subject and indicator, none for scale-free statistics).

Suppressed cells (fewer than 10 students / 3 schools) and the pooled city rows never produce a
problem. School names appear ordered by school id, never ranked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.config import RunContext
from pipeline.errors import EqmError
from pipeline.evidence.causes import cause_hints
from pipeline.evidence.identity import problem_ids
from pipeline.evidence.inference import bh_qvalues, design_df, z_test
from pipeline.evidence.ledger import ledger_books, read_entries
from pipeline.evidence.merge import merge_objects
from pipeline.evidence.params import (
    PROBLEM_RULE_ORDER,
    EvidenceParams,
    Rule,
    Severity,
    Units,
)
from pipeline.evidence.rules import (
    KEYS,
    _norm_keys,
    _require,
    candidates,
    observations,
)
from pipeline.evidence.text import evidence_text, responsible, to_json
from pipeline.evidence.tracking import History, link_rounds
from pipeline.generations import require_upstream, stamped
from pipeline.io import outputs, read_parquet

__all__ = [
    "EvidenceParams", "Rule", "Severity", "Units", "bh_qvalues", "build_problems", "candidates",
    "comparisons", "design_df", "evidence_text", "ledger_books", "run", "stage_params",
    "z_test",
]  # fmt: skip

log = logging.getLogger(__name__)

PROBLEM_COLS = schemas.PROBLEMS.names
TEST_RULES = ("MEAN", "MEDIUM", "GAP", "HOMEWORK", "SLEEP", "MYOPIA", "FITNESS")


def build_problems(
    indicators: pd.DataFrame,
    resource_balance: pd.DataFrame,
    school_compliance: pd.DataFrame,
    county_reports: pd.DataFrame,
    previous_problems: pd.DataFrame,
    params: EvidenceParams,
    county_names: Mapping[str, str],
    city_code: str,
    factors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The 问题清单 of every round in the inputs (pure: no file access, inputs untouched).

    Per round: one row per problem (status 待整改 when new, 整改中 when the previous round had it),
    one row per previous problem that now meets its standard (建议销号, no severity) and one per
    previous problem with no data this round (本轮未复测). Columns exactly
    :data:`pipeline.schemas.PROBLEMS`, sorted by year, county, problems before close-outs, rule
    order and id. ``factors`` (the indicators stage's ``factors.parquet``) gives the cause hints
    of ACH and ICC problems (:mod:`.causes`); without it no problem has a hint.
    """
    return _problems_and_comparisons(
        indicators, resource_balance, school_compliance, county_reports, previous_problems,
        params, county_names, city_code, factors,
    )[0]  # fmt: skip


def _problems_and_comparisons(
    indicators, resource_balance, school_compliance, county_reports, previous_problems,
    params: EvidenceParams, county_names, city_code, factors=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    c = candidates(
        indicators, resource_balance, school_compliance, county_reports, params, city_code
    )
    hand = _norm_previous(previous_problems, params)
    if c.empty and hand.empty:
        return _empty(), comparisons(c, params.alpha)
    if len(c):
        c["problem_rule"], c["problem_id"] = problem_ids(c, params)
    # only what a round judged makes an object of that round (a value with no benchmark and no
    # SE judges nothing: its previous problem is not re-measured, never resolved)
    judged = c[c["decided"]] if len(c) else c
    objects = merge_objects(judged, params, county_names)
    measures = {
        (int(r["year"]), r["problem_id"], r["indicator"]): (r["value"], r["own_se"])
        for r in judged.to_dict("records")
        if r["rule_id"] != "SCHOOL"
    }
    for r in objects[objects["rule_id"] == "SCHOOL"].to_dict("records"):
        measures[(int(r["year"]), r["problem_id"], "school_compliance")] = (r["value"], np.nan)
    history = History(observations(indicators, county_reports, city_code))
    rounds = sorted(set(c["year"].astype(int))) if len(c) else []
    rows = link_rounds(objects, measures, hand, history, params, rounds)
    if rows.empty:
        return _empty(), comparisons(c, params.alpha)
    out = _finish(rows, params, factors)
    return out, comparisons(c, params.alpha)


def _finish(
    rows: pd.DataFrame, params: EvidenceParams, factors: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Units, domain, cause hints, evidence JSON, column order and sort."""
    rows = rows.copy()
    units = [
        _school_units(m, params) if r == "SCHOOL" else responsible(r, i, params)
        for r, i, m in zip(rows["rule_id"], rows["indicator"], rows["measures"], strict=True)
    ]
    rows["lead_unit"] = [u[0] for u in units]
    rows["support_units"] = [u[1] for u in units]
    if "_unit" in rows:  # an unmatched hand-entered item keeps its own units and domain
        own = rows["lead_unit"].eq("") & rows["_unit"].fillna("").ne("")
        rows.loc[own, "lead_unit"] = rows.loc[own, "_unit"]
    rows["responsible_unit"] = [
        (f"牵头：{lead}" + (f"；配合：{sup}" if sup else "")) if lead else ""
        for lead, sup in zip(rows["lead_unit"], rows["support_units"], strict=True)
    ]
    rows["domain"] = [params.rules[r].domain if r in params.rules else "" for r in rows["rule_id"]]
    if "_domain" in rows:
        own = rows["domain"].eq("") & rows["_domain"].fillna("").ne("")
        rows.loc[own, "domain"] = rows.loc[own, "_domain"]
    rows["cause_hint"] = cause_hints(rows, factors, params.alpha)
    rows["evidence"] = [_evidence(r) for r in rows.to_dict("records")]
    rows["deadline"] = params.deadline_placeholder
    rows["target"] = rows["target"].fillna("").astype(str)
    blank = rows["target"].eq("")
    rows.loc[blank, "target"] = "达到该项规定的标准（见问题描述）"
    rows["suggestion"] = rows["suggestion"].fillna("").astype(str)
    closed = rows["status"] == schemas.STATUS_CLOSABLE
    rows.loc[closed, "suggestion"] = params.closeout_suggestion
    order = {r: i for i, r in enumerate(PROBLEM_RULE_ORDER)}
    rows["_o"] = rows["rule_id"].map(order).fillna(len(order))
    rows["_c"] = (rows["status"] == schemas.STATUS_CLOSABLE).astype(int)
    rows = rows.sort_values(["year", "county_code", "_c", "_o", "problem_id"], kind="mergesort")
    dup = rows.duplicated(["year", "problem_id"])
    if dup.any():
        raise EqmError(
            f"问题编号重复：{', '.join(rows.loc[dup, 'problem_id'].astype(str).unique()[:5])}。",
            hint="上一轮问题清单中可能有编号重复或同一问题出现两次，请检查 previous_problems。",
        )
    return _typed(rows[PROBLEM_COLS].reset_index(drop=True))


def _school_units(measures, params: EvidenceParams) -> tuple[str, str]:
    """A school problem goes to the unit responsible for its deepest unmet indicator (the lowest
    share of its standard; RES ``units_by_indicator``: 骨干教师 → 人事科, 仪器设备 → 装备中心 …),
    supported by the school rule's units and the other unmet indicators' leads."""
    lead, support = responsible("SCHOOL", "school_compliance", params)
    unmet = [d for sec in (measures or []) for d in sec.get("details", []) if d.get("met") is False]
    unmet.sort(key=lambda d: (d["ratio"] if d.get("ratio") is not None else 9.0, d["indicator"]))
    by_ind = params.rules["RES"].units_by_indicator
    leads = [by_ind[d["indicator"]].lead for d in unmet if d["indicator"] in by_ind]
    if not leads:
        return lead, support
    others = [*leads[1:], lead, *support.split("、")]
    seen: list[str] = []
    for u in others:
        if u and u != leads[0] and u not in seen:
            seen.append(u)
    return leads[0], "、".join(seen)


def _evidence(r: Mapping) -> str:
    return to_json(
        {
            "rule_id": r["rule_id"], "headline_rule": r.get("headline_rule") or "",
            "note": r.get("note", ""), "measures": r.get("measures") or [],
            "rows": r.get("rows") or [], "benchmark_rows": r.get("bench_rows") or [],
            "benchmark_label": r.get("bench_label", ""), "benchmark": r.get("benchmark"),
            "p_value": r.get("p_value"), "q_value": r.get("q_value"), "z": r.get("z"),
            "df": r.get("df"), "cause_hint": r.get("cause_hint", ""),
            "previous": r.get("previous"), "trend": r.get("trend"),
            "unmatched": bool(r.get("_unmatched")),
        }
    )  # fmt: skip


def comparisons(c: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Every benchmark test of the candidates as a labelled comparison (schemas.COMPARISONS).

    ``verdict``: ``worse`` when the rule fires (its own one-sided test, BH q < alpha, or the
    no-SE margin); ``better`` when the mirrored one-sided test is significant (BH within its own
    family, q_better < alpha); ``no_difference`` when tested and neither; ``untested`` without a
    test (no SE and the margin not reached, or no benchmark)."""
    cols = schemas.COMPARISONS.names
    if c.empty:
        return _typed_table(pd.DataFrame(columns=cols), schemas.COMPARISONS)
    d = c[c["rule_id"].isin(TEST_RULES) & c["benchmark"].notna()].copy()
    tested = d["p_value"].notna()
    better = d["q_better"].lt(alpha) & ~d["fires"]
    d["verdict"] = np.select(
        [d["fires"], better, tested], ["worse", "better", "no_difference"], "untested"
    )
    d["problem_id"] = d["problem_id"].where(d["fires"], "")
    d["df"] = d["df"].astype(float)
    return _typed_table(d[cols].sort_values(["year", *KEYS, "rule_id"]), schemas.COMPARISONS)


def _empty() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in PROBLEM_COLS}))


def _typed_table(df: pd.DataFrame, table: schemas.Table) -> pd.DataFrame:
    out = df.copy()
    for col in table.columns:
        if col.dtype == "int" and col.name == "year":
            out[col.name] = out[col.name].astype("int64")
        elif col.dtype == "int":
            out[col.name] = pd.to_numeric(out[col.name]).astype("Int64")
        elif col.dtype == "float":
            out[col.name] = pd.to_numeric(out[col.name]).astype("float64")
        elif col.dtype == "bool":
            out[col.name] = out[col.name].fillna(False).astype(bool)
        else:
            out[col.name] = out[col.name].astype(object).where(out[col.name].notna(), "")
            out[col.name] = out[col.name].astype(str)
    return out.reset_index(drop=True)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    return _typed_table(df, schemas.PROBLEMS)


def _norm_previous(prev: pd.DataFrame, params: EvidenceParams) -> pd.DataFrame:
    """A hand-entered previous list with its identity: ``listed_id`` (its own number),
    ``problem_rule`` and ``problem_id`` (eqm's id of the same object, ``""`` when unresolvable)."""
    cols = ["listed_id", "problem_rule", "problem_id", "year", *KEYS, "rule_id", "value", "se",
            "title", "status", "severity", "domain", "responsible_unit"]  # fmt: skip
    if prev is None or prev.empty:
        return pd.DataFrame(columns=cols)
    _require(prev, ["problem_id", "year", "county_code", "rule_id", "indicator"],
             "上一轮问题清单 previous_problems ")  # fmt: skip
    out = prev.copy()
    for c in ("grade", "subject", "group_var", "group_value", "value", "se", "title", "status",
              "severity", "domain", "responsible_unit"):  # fmt: skip
        if c not in out:
            out[c] = np.nan if c in ("grade", "value", "se") else ""
    years = pd.to_numeric(out["year"], errors="coerce")
    if years.isna().any():
        i = int(years.isna().to_numpy().argmax())
        raise EqmError(
            f"上一轮问题清单第 {i + 1} 条的监测年份「{out['year'].iloc[i]}」不是年份。",
            column="year", hint="请填写四位数年份，例如 2020。",
        )  # fmt: skip
    out = _norm_keys(out.assign(year=years))
    # the same object written differently by hand: 小学 / primary, 2145010761.0 / 2145010761
    gv = out["group_value"].str.strip()
    stage = gv.map(lambda v: schemas.STAGE_CODES.get(v, v))
    out["group_value"] = gv.where(out["group_var"] != "stage", stage).str.replace(
        r"(?<=\d)\.0$", "", regex=True
    )
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    out["se"] = pd.to_numeric(out["se"], errors="coerce").astype(float)
    out["listed_id"] = out["problem_id"].astype(str)
    for c in ("rule_id", "title", "status", "severity", "domain", "responsible_unit"):
        out[c] = out[c].astype("string").fillna("").astype(str)
    out["problem_rule"], out["problem_id"] = problem_ids(out, params)
    dup = out.duplicated(["year", "problem_id"]) & out["problem_id"].ne("")
    if dup.any():
        log.warning(
            "上一轮问题清单中有 %d 条问题指向同一对象（同一规则、区县、年级、学科、分组），仅保留第一条",
            int(dup.sum()),
        )
        out = out[~dup]
    return out[cols]


def stage_params(ctx: RunContext) -> EvidenceParams:
    """``evidence:`` of params.yaml plus the standards declared elsewhere: the 校际差异率 standard
    ``monitoring.icc_threshold`` and the school standards of ``indicators``."""
    ind = ctx.params["indicators"]
    return ctx.section(
        EvidenceParams, "evidence", icc_threshold=ctx.monitoring.icc_threshold,
        resource_thresholds=ind["resource_thresholds"],
        school_min_ratio_unmet=ind["school_min_ratio_unmet"],
    )  # fmt: skip


def _read_optional(path, what: str) -> pd.DataFrame:
    if not path.is_file():
        log.info("未找到%s（%s），视为空表", what, path)
        return pd.DataFrame()
    return pd.read_parquet(path)


@stamped("evidence")
def run(ctx: RunContext) -> None:
    mon = ctx.monitoring
    params = stage_params(ctx)
    require_upstream(ctx, "evidence")
    paths = ctx.paths
    indicators = read_parquet(paths.indicators, "指标表（请先运行 eqm indicators）")
    rb = read_parquet(paths.resource_balance, "资源配置均衡表（请先运行 eqm indicators）")
    sc = read_parquet(paths.school_compliance, "学校资源配置达标表（请先运行 eqm indicators）")
    cr = read_parquet(
        paths.validated("county_reports"), "校验后的区县监测报告数据（请先运行 eqm validate）"
    )
    prev = _read_optional(paths.validated("previous_problems"), "上一轮问题清单")
    log.info(
        "读入：指标 %d 行，资源均衡 %d 行，学校达标 %d 行，区县报告 %d 行，上一轮问题 %d 条",
        len(indicators), len(rb), len(sc), len(cr), len(prev),
    )  # fmt: skip
    if cr.empty:
        cr = pd.DataFrame(columns=schemas.COUNTY_REPORTS.names)
    factors = _read_optional(paths.factors, "相关因素表")
    problems, comps = _problems_and_comparisons(
        indicators, rb, sc, cr, prev, params, dict(mon.counties), str(mon.city_code), factors
    )
    filled = sorted(paths.raw_ledger.glob("*.xlsx")) if paths.raw_ledger.is_dir() else []
    filled = [f for f in filled if not f.name.startswith("~$")]  # Excel's lock files
    entries, as_of = read_entries(filled, ctx.root)
    if filled:
        log.info("读入填报的整改台账 %d 份，带入填报内容 %d 条", len(filled), len(entries))
    ledgers = ledger_books(
        problems, sc, entries, as_of, dict(mon.counties), str(mon.city_code),
        params.resource_thresholds,
    )  # fmt: skip
    with outputs() as out:
        out.parquet(problems, paths.problems)
        out.parquet(comps, paths.comparisons)
        folder = out.directory(paths.evidence_dir)
        with ctx.step("写出整改台账", len(ledgers)) as advance:
            for (year, name), data in ledgers.items():
                (folder / str(year) / "ledger").mkdir(parents=True, exist_ok=True)
                (folder / str(year) / "ledger" / f"{name}.xlsx").write_bytes(data)
                advance(1)
    labels = schemas.PREVIOUS_STATUS_LABELS
    for year, g in problems.groupby("year"):
        open_ = g["status"].isin(schemas.PROBLEM_OPEN_STATUSES)
        counts = "，".join(f"{labels[s]} {(g['previous_status'] == s).sum()}" for s in labels)
        log.info(
            "%d 年：问题 %d 条，建议销号 %d 条（%s）", year, int(open_.sum()),
            int((~open_).sum()), counts,
        )  # fmt: skip
