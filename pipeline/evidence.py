"""Stage ``evidence``: the rectification problem list (问题清单) and the re-check of last round's list.

Reads ``indicators.parquet``, ``resource_balance.parquet``, ``school_compliance.parquet`` and the
validated ``county_reports`` (province / nation benchmarks; county-scope official values when there
is no student-level estimate) and ``previous_problems``; writes ``problems.parquet`` (columns of
:data:`pipeline.schemas.PROBLEMS`) and ``evidence/<year>/rectification_evidence.xlsx``.

Rules (ids, Chinese title templates, domains, units and thresholds in ``params.yaml`` ``evidence:``)
------------------------------------------------------------------------------------------------
========  ===================================================  ====================================
rule      fires when                                            test
========  ===================================================  ====================================
ICC       校际差异率 (ICC(1)) >= ``icc_threshold`` (0.15)       regulatory threshold on the value;
                                                                severity 高 when the whole 95% CI
                                                                is at or above the threshold (or
                                                                q < alpha if
                                                                ``icc_requires_significance``)
LEVEL     county achievement level below Ⅲ (estimate < 3)       regulatory threshold, no test
MEAN      county mean score significantly below the benchmark  one-sided z, fires on q < alpha
MEDIUM    中等及以上比例 significantly below the benchmark       one-sided z, fires on q < alpha
GAP       subgroup gap |g| significantly larger than the        one-sided z on |g| - |b|; without a
          national |b| (groupings ``gap_vars``)                 benchmark on |g| - 0.2 SD (minimum-
                                                                effect test)
HOMEWORK  书面作业超时比例 significantly above benchmark/ceiling one-sided z, fires on q < alpha
SLEEP     睡眠达标比例 significantly below benchmark/floor      one-sided z
MYOPIA    视力不良比例 significantly above benchmark/ceiling     one-sided z
FITNESS   体质健康达标比例 significantly below benchmark/floor   one-sided z
RES       a resource indicator's 差异系数 > 0.50 / 0.45         indicators' verdict
                                                                (``resource_balance.passes``)
SCHOOL    a school meets < 6 of 7 or an unmet one < 85%         indicators' verdict
                                                                (``school_compliance.passes``)
========  ===================================================  ====================================

Statistics
----------
* Estimates and their SEs come from ``indicators.parquet`` (stratified delete-one-PSU jackknife,
  Rubin's rules over plausible values). Where a county has no student-level estimate, the
  county-scope value printed in its official report is used (``source = official``) and the
  evidence says so. For ``school_difference_rate`` and ``achievement_level`` an official value wins
  over a computed one (domain notes).
* No SE (county reports often print none): such a row cannot be tested, so MEAN / GAP fire when
  the difference in the bad direction is at least ``effect_size_sd`` x SD (GAP without benchmark:
  ``|g| >= effect_size_sd x SD``) and the percent rules (MEDIUM, burden/health) when it is at least
  ``no_se_margin_pct_points``; p and q stay NaN, the row is not in the BH family, and the evidence
  note and title say "官方报告未给出标准误，按差值是否超过 … 判定". The ICC rule with
  ``icc_requires_significance`` falls back to the value rule for such rows.
* Regulatory thresholds of the resource rules are read from one place only: the indicators
  stage's ``resource_balance.threshold`` / ``passes`` and ``school_compliance.passes``
  (``indicators.cv_thresholds``, ``school_min_met``, ``school_min_ratio_unmet``). The ICC rule's
  ``EvidenceParams.icc_threshold`` is the one standard ``monitoring.icc_threshold`` (handed in by
  :func:`run`; the indicators and report stages read the same key).
* Benchmark: the national value if the county report prints one, else the provincial value, else
  (burden/health rules only) the configured ceiling or floor. The benchmark is treated as an
  independent population, so the SE of the difference is ``sqrt(se**2 + se_bench**2)`` (a missing
  benchmark SE counts as 0; a configured ceiling has SE 0). The county is part of the province and
  nation sample; ignoring that positive covariance over-states the SE, i.e. the test is conservative.
* Direction: the rules ask "is the county *worse*", so the tests are one-sided,
  ``z = (value - benchmark) / se_diff`` with ``p = Phi(z)`` when lower is worse and ``p = 1 - Phi(z)``
  when higher is worse. The GAP rule without a benchmark asks "is the gap larger than the smallest
  gap worth acting on" (``delta`` = 0.2 SD): ``z = (|g| - delta) / se``, one-sided. The ICC
  rule's test is one-sided towards "above 0.15".
* Reference distribution (``p_reference``, default ``t_design_df``): the statistic is referred to
  Student's t with the design degrees of freedom, ``df = #PSU - #strata``. A county estimate is one
  stratum whose PSUs are its sampled schools, so ``df = n_schools - 1`` (8–12 schools per grade:
  df 7–11); a pooled city row (``monitoring.city_code``, never a problem itself) would have
  ``df = sum_h n_h - H``. This is the design-based convention of R ``survey``: ``degf(design)`` is
  the number of PSUs minus the number of strata and is what ``confint(..., df = degf(design))`` and
  ``svyglm`` use (Lumley, *Complex Surveys*, 2010, §2.3; Korn & Graubard, *Analysis of Health
  Surveys*, 1999, §5.2). With so few PSUs the normal reference is anti-conservative (t_7 one-sided
  0.05 point is 1.895 against 1.645). A row without a school count (official values of a county
  report, or an indicators row lacking ``n_schools``) falls back to the normal reference;
  ``p_reference: normal`` uses the normal reference everywhere. The previous-round change tests
  (difference of two rounds) keep the normal reference.
* Effect size: a gap is standardised by the county SD of the score when the indicators table
  provides it (indicator ``sd_indicator``, default ``sd_score``), else by the configured NAEQ scale
  SD (``scale_sd`` = 100, the scale's base-year SD).
* Multiplicity: Benjamini–Hochberg q-values across every test of a round (one family per year;
  every rule row with a p-value, the ICC rule's informative test included),
  ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` (Benjamini & Hochberg 1995, JRSS B 57:289–300).
  A significance rule fires on ``q < alpha``. The previous-round change tests form their own family.
* Previous round: each problem of ``previous_problems`` (the latest year before the round) is
  matched on (county, grade, subject, indicator, group) to this round's value and tested:
  ``z = d (v_now - v_prev) / sqrt(se_now**2 + se_prev**2 + linking_error**2)`` (``se_now`` the
  indicator's own SE, not the SE of its difference from the benchmark) with ``d = +1`` when
  higher is worse (gaps compared in absolute value), two-sided, BH within the round's change tests;
  ``worse`` / ``improved`` when ``q < alpha``, else ``unchanged``. A previous SE that is not given
  is taken from the previous year's indicators row, else assumed equal to the current SE (same
  design and sample size). Census quantities (resource CVs, school compliance) have no SE: a
  change larger than ``census_change_tolerance`` in the bad direction is ``worse``, a rule no
  longer firing or such a change in the good direction is ``improved``. Problems with no data this round stay in the list as
  ``not re-measured`` with their status carried, so the 销号 (close-out) tracking is complete.

Keys of non-score problems: RES uses ``indicator = L1..L7, group_var = "stage", group_value =
primary|junior``; SCHOOL uses ``indicator = "school_compliance", group_var = "school",
group_value = "<stage>/<school_id>"``. Suppressed cells (fewer than 10 students / 3 schools) and the
pooled city rows (``monitoring.city_code``) never produce a problem. School names appear in the
evidence workbook ordered by school id, never ranked.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import pipeline.schemas as schemas
from pipeline.config import RunContext
from pipeline.errors import EqmError
from pipeline.io import outputs, read_parquet

log = logging.getLogger(__name__)

KEYS = ["county_code", "grade", "subject", "indicator", "group_var", "group_value"]
OBS_COLS = [
    "year", *KEYS, "estimate", "se", "ci_low", "ci_high", "n_students", "n_schools", "method",
    "source", "source_page",
]  # fmt: skip
BENCH_COLS = ["scope", "value", "se", "n", "source_page", "county_code"]
PROBLEM_COLS = schemas.PROBLEMS.names
SCOPE_LABELS = schemas.SCOPE_LABELS
OFFICIAL_FIRST = ("school_difference_rate", "achievement_level")
RESOURCE_INDICATORS = tuple(schemas.RESOURCE_INDICATORS)
PREVIOUS_STATUS_LABELS = {
    "new": "新问题", "improved": "改善", "unchanged": "无显著变化", "worse": "恶化",
    "not re-measured": "本轮未复测",
}  # fmt: skip
# Which direction of an indicator is the bad one (+1: higher is worse, -1: lower is worse).
BAD_DIRECTION = {
    "school_difference_rate": 1, "achievement_level": -1, "mean_score": -1,
    "pct_medium_or_above": -1, "pct_good_or_above": -1, "gap_mean_score": 1,
    "pct_homework_over_limit": 1, "pct_sleep_sufficient": -1, "pct_myopia": 1,
    "pct_fitness_pass": -1, "school_compliance": -1, **dict.fromkeys(RESOURCE_INDICATORS, 1),
}  # fmt: skip
BURDEN_RULES = ("HOMEWORK", "SLEEP", "MYOPIA", "FITNESS")
RULE_ORDER = ("ICC", "LEVEL", "MEAN", "MEDIUM", "GAP", *BURDEN_RULES, "RES", "SCHOOL")


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Units:
    lead: str
    support: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One rule: its Chinese title template, domain and responsible units."""

    title: str  # str.format template; fields listed in params.yaml
    domain: str
    units: Units
    units_by_indicator: Mapping[str, Units] = field(default_factory=dict)
    indicator: str = ""  # the indicator the rule tests (burden rules)
    title_missing: str = ""  # RES / SCHOOL: title when the census data are incomplete


@dataclass(frozen=True)
class Severity:
    effect_sd_high: float  # |gap| / SD at or above -> 高
    effect_sd_medium: float  # -> 中, else 低
    pct_points_high: float  # percent-point gap at or above -> 高
    pct_points_medium: float
    res_cv_excess_high: float  # CV - threshold at or above -> 高, else 中
    school_n_met_high: int  # a school meeting at most this many of 7 -> 高, else 中


@dataclass(frozen=True)
class EvidenceParams:
    alpha: float
    icc_threshold: float
    icc_requires_significance: bool
    level_min: float
    benchmark_scopes: tuple[str, ...]
    scale_sd: float
    sd_indicator: str
    effect_size_sd: float
    gap_vars: tuple[str, ...]
    ci_z: float
    burden_limits: Mapping[str, Mapping[int, float]]  # indicator -> grade -> ceiling / floor (%)
    severity: Severity
    rules: Mapping[str, Rule]
    cause_links: Mapping[str, tuple[str, ...]]  # rule -> rules whose firing hints at a cause
    linking_error: Mapping[str, float]  # indicator -> linking error (indicator units), default 0
    census_change_tolerance: float  # census values (no SE): smaller changes count as unchanged
    deadline_placeholder: str
    status_new: str
    status_open: str
    status_closable: str
    status_recheck: str
    previous_title_suffix: str
    # reference distribution of the rule tests: Student t with the design df, or normal
    p_reference: str = "t_design_df"
    # a percent indicator with no SE (official county-report value) is a problem when it is at
    # least this many percentage points worse than its benchmark
    no_se_margin_pct_points: float = 5.0

    def __post_init__(self) -> None:
        if self.p_reference not in ("t_design_df", "normal"):
            raise EqmError(
                f"参数 evidence.p_reference 应为 t_design_df 或 normal，而不是 {self.p_reference}。",
                file="params.yaml",
            )
        if not 0 < self.alpha < 1:
            raise EqmError("参数 evidence.alpha 应在 0 与 1 之间。", file="params.yaml")
        missing = [r for r in RULE_ORDER if r not in self.rules]
        if missing:
            raise EqmError(
                f"参数 evidence.rules 缺少规则：{', '.join(missing)}。", file="params.yaml"
            )
        unknown = sorted(set(self.rules) - set(RULE_ORDER))
        if unknown:
            raise EqmError(
                f"参数 evidence.rules 含未知规则：{', '.join(unknown)}（允许：{', '.join(RULE_ORDER)}）。",
                file="params.yaml",
            )
        for r in BURDEN_RULES:
            if self.rules[r].indicator not in BAD_DIRECTION:
                raise EqmError(f"参数 evidence.rules.{r}.indicator 未知。", file="params.yaml")


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------


def bh_qvalues(p: np.ndarray | pd.Series) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values).

    Method: sort the m finite p-values ascending, ``q_(i) = min_{j >= i} min(1, m p_(j) / j)``, and
    return them in the input order; NaN p-values stay NaN and do not count in m.
    Reference: Benjamini, Y. & Hochberg, Y. (1995), Controlling the false discovery rate, JRSS B
    57(1):289–300; equal to ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``.
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return q
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    pv = p[ok]
    m = pv.size
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = adj
    q[ok] = out
    return q


def z_test(
    value: pd.Series,
    bench: pd.Series,
    se_diff: pd.Series,
    bad_dir: int | pd.Series,
    two_sided=False,
    df: pd.Series | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Test of ``value`` against ``bench`` with a normal or Student t reference.

    ``z = (value - bench) / se_diff``. One-sided towards the bad direction (``bad_dir = +1``: the
    alternative is value > bench, ``p = 1 - F(z)``; ``-1``: value < bench, ``p = F(z)``);
    two-sided ``p = 2 (1 - F(|z|))``. ``F`` is Student's t with ``df`` degrees of freedom where
    ``df`` is given, finite and positive, else the standard normal Phi. A non-positive or missing
    ``se_diff`` gives NaN (no test).
    """
    se = se_diff.where(se_diff > 0)
    z = (value - bench) / se
    stat = np.abs(z) if two_sided else z * bad_dir
    p = stats.norm.sf(stat)
    if df is not None:
        d = pd.to_numeric(df, errors="coerce").reindex(value.index).to_numpy(float)
        use_t = np.isfinite(d) & (d > 0)
        if use_t.any():
            p = np.asarray(p, float).copy()
            p[use_t] = stats.t.sf(np.asarray(stat, float)[use_t], d[use_t])
    if two_sided:
        p = 2 * np.asarray(p, float)
    return z, pd.Series(p, index=value.index).where(z.notna())


def design_df(d: pd.DataFrame, p_reference: str) -> pd.Series | None:
    """Design degrees of freedom of county estimates: ``n_schools - 1`` (one stratum, PSU = school;
    R ``survey::degf``), NaN (normal fallback) where the school count is missing or below 2.
    ``None`` when ``p_reference`` is ``normal``."""
    if p_reference == "normal":
        return None
    n = pd.to_numeric(d["n_schools"], errors="coerce").astype(float)
    return (n - 1).where(n >= 2)


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _require(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise EqmError(
            f"{what}缺少列：{', '.join(missing)}。",
            hint="请重新运行前面的环节（eqm run），或按数据约定补齐这些列。",
        )


def _norm_keys(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["county_code"] = out["county_code"].astype("string").fillna("").astype(str)
    out["grade"] = pd.to_numeric(out["grade"], errors="coerce").astype("Int64")
    for c in ("subject", "indicator", "group_var", "group_value"):
        out[c] = out[c].astype("string").fillna("").astype(str) if c in out else ""
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("int64")
    return out


def observations(
    indicators: pd.DataFrame, county_reports: pd.DataFrame, city_code: str
) -> pd.DataFrame:
    """One row per (year, county, grade, subject, indicator, group) to test, with its provenance.

    Computed estimates win, then official rows of the indicators table, then county-scope values of
    the county reports; for ``school_difference_rate`` and ``achievement_level`` official wins.
    Suppressed rows and the pooled city rows are dropped.
    """
    _require(indicators, schemas.INDICATORS.names, "指标表 indicators.parquet ")
    ind = _norm_keys(indicators)
    ind = ind[~ind["suppressed"].fillna(False).astype(bool)].assign(source_page="")
    ind["source"] = ind["source"].astype(str)
    cr = _norm_keys(county_reports)
    cr = cr[cr["scope"].astype(str) == "county"]
    cr = cr.assign(
        estimate=cr["value"].astype(float),
        se=cr["se"].astype(float) if "se" in cr else np.nan,
        n_students=cr.get("n", np.nan),
        n_schools=np.nan,
        method="county_report",
        source="official",
        source_page=cr["source_page"].astype("string").fillna("").astype(str)
        if "source_page" in cr
        else "",
    )
    cr = cr.assign(
        ci_low=cr["estimate"] - 1.96 * cr["se"], ci_high=cr["estimate"] + 1.96 * cr["se"]
    )
    obs = pd.concat([ind[OBS_COLS].assign(_src=0), cr[OBS_COLS].assign(_src=1)], ignore_index=True)
    obs = obs[(obs["county_code"] != str(city_code)) & obs["estimate"].notna()]
    official = obs["source"] == "official"
    off_first = obs["indicator"].isin(OFFICIAL_FIRST)
    obs["_prio"] = np.where(official == off_first, 0, 2) + obs["_src"]
    obs = obs.sort_values(["year", *KEYS, "_prio"], kind="mergesort", na_position="first")
    obs = obs.drop_duplicates(["year", *KEYS], keep="first")
    for c in ("estimate", "se", "ci_low", "ci_high", "n_students", "n_schools"):
        obs[c] = pd.to_numeric(obs[c], errors="coerce").astype(float)
    return obs.drop(columns=["_src", "_prio"]).reset_index(drop=True)


def attach_benchmark(obs: pd.DataFrame, county_reports: pd.DataFrame, scopes) -> pd.DataFrame:
    """Add ``bench_*`` columns: the first of ``scopes`` printed for the same year and keys.

    A benchmark printed in the county's own report wins over the same benchmark printed in
    another county's report (they normally agree). No match leaves the columns NaN/empty.
    """
    k = ["year", "grade", "subject", "indicator", "group_var", "group_value"]
    cr = _norm_keys(county_reports)
    cr = cr[cr["scope"].astype(str).isin(scopes) & cr["value"].notna()]
    bench = cr.assign(
        se=cr["se"].astype(float) if "se" in cr else np.nan,
        n=cr["n"].astype(float) if "n" in cr else np.nan,
        source_page=cr["source_page"].astype("string").fillna("").astype(str)
        if "source_page" in cr
        else "",
        scope=cr["scope"].astype(str),
        value=cr["value"].astype(float),
    )[k + BENCH_COLS].rename(columns={c: f"bench_{c}" for c in BENCH_COLS})
    if obs.empty:
        num = ("value", "se", "n")
        return obs.assign(
            **{f"bench_{c}": pd.Series(dtype=float if c in num else object) for c in BENCH_COLS}
        )
    m = obs.reset_index().merge(bench, on=k, how="left", validate="m:m")
    rank = {s: i for i, s in enumerate(scopes)}
    m["_r"] = m["bench_scope"].map(rank).fillna(99) * 2 + (
        m["bench_county_code"] != m["county_code"]
    ).astype(int)
    m = m.sort_values(["index", "_r", "bench_county_code"], kind="mergesort")
    m = m.drop_duplicates("index", keep="first").set_index("index").sort_index()
    m.index.name = None
    return m.drop(columns=["_r"])


# ------------------------------------------------------------------------------------------------
# Rules: each returns candidates (every testable row, fired or not)
# ------------------------------------------------------------------------------------------------

CAND_COLS = [
    "year", *KEYS, "rule_id", "value", "benchmark", "bench_label", "gap", "se", "z", "p_value",
    "by_threshold", "fires_threshold", "extra_ok", "severity", "rows", "bench_rows", "note",
    "threshold", "school_name", "own_se", "margin", "data_missing",
]  # fmt: skip
NO_SE_NOTE = "官方报告未给出标准误，按差值是否超过{}判定（未作显著性检验，不计入 BH 校正）"


def _records(df: pd.DataFrame, cols: list[str]) -> list[list[dict]]:
    """Each row as a one-element list of JSON-ready dicts (NaN -> None)."""
    return [[{k: _scalar(v) for k, v in r.items()}] for r in df[cols].to_dict("records")]


def _scalar(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _bench_records(df: pd.DataFrame) -> list[list[dict]]:
    cols = ["year", "grade", "subject", "indicator", "group_var", "group_value"]
    bc = [f"bench_{c}" for c in BENCH_COLS]
    sub = df[cols + bc].rename(columns={f"bench_{c}": c for c in BENCH_COLS})
    recs = _records(sub, cols + BENCH_COLS)
    has = df["bench_value"].notna().to_numpy()
    return [r if h else [] for r, h in zip(recs, has, strict=True)]


def _base(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    n = len(df)
    cols = {c: df[c].to_numpy() for c in ("year", *KEYS)}
    cols.update(
        rule_id=rule, value=df["estimate"].to_numpy(), se=df["se"].to_numpy(),
        rows=_records(df, OBS_COLS), bench_rows=[[] for _ in range(n)],
        note=np.where(
            df["source"].to_numpy() == "official",
            "数值取自区县官方监测报告（无学生层面数据或以官方值为准）",
            "数值由学生层面数据计算（分层逐校刀切法标准误）",
        ),
        benchmark=np.nan, bench_label="", gap=np.nan, z=np.nan, p_value=np.nan,
        by_threshold=True, fires_threshold=False, extra_ok=True, severity="", threshold=np.nan,
        school_name="", own_se=df["se"].to_numpy(), margin=np.nan, data_missing=False,
    )  # fmt: skip
    return pd.DataFrame(cols, index=df.index)


def _margin_decision(
    out: pd.DataFrame,
    no_se: pd.Series,
    worse_by: pd.Series,
    margin: pd.Series | float,
    margin_text: pd.Series | str,
) -> pd.DataFrame:
    """Rows without a usable SE (official county-report values often print none): decide by a
    configured margin instead of a test — fire when the difference in the bad direction
    ``worse_by`` is at least ``margin``; p and q stay NaN (so the row is outside the BH family)
    and the note says so. Rows with an SE are returned unchanged."""
    margin = pd.Series(margin, index=out.index, dtype=float)
    text = pd.Series(margin_text, index=out.index, dtype=object)
    no_se = no_se.reindex(out.index).fillna(False).astype(bool)
    note = (
        out["note"]
        .astype(str)
        .where(~no_se, out["note"].astype(str) + "；" + text.map(NO_SE_NOTE.format))
    )
    return out.assign(
        by_threshold=out["by_threshold"].astype(bool) | no_se,
        fires_threshold=out["fires_threshold"].astype(bool) | (no_se & (worse_by >= margin)),
        p_value=out["p_value"].where(~no_se), z=out["z"].where(~no_se),
        margin=margin.where(no_se), note=note,
    )  # fmt: skip


def rule_icc(obs: pd.DataFrame, p: EvidenceParams) -> pd.DataFrame:
    """ICC: 校际差异率 >= threshold (优质均衡: must be strictly below 0.15).

    Fires on the value (the regulation's rule) unless ``icc_requires_significance``, then on the
    BH q of the one-sided test of H1: ICC > threshold, ``z = (icc - threshold) / se_test``.

    ``se_test``: the indicators stage builds the ICC's interval on Fisher's z scale (``method``
    says so), asymmetric around the estimate. The test that agrees with that interval takes its
    SE from the interval's lower half-width, ``se_test = (icc − ci_low) / q`` with ``q`` the
    quantile of this test's reference distribution (t with the design df, or normal) at the level
    of ``ci_z``; then ``p < 1 − Φ(ci_z)`` (0.025) exactly when ``ci_low > threshold``, so the
    p-value, the severity (高 when the whole interval is at or above the threshold) and the
    report's wording never contradict each other. A symmetric (Wald) interval or a row without
    one uses the jackknife SE itself."""
    d = obs[obs["indicator"] == "school_difference_rate"]
    out = _base(d, "ICC")
    thr = p.icc_threshold
    ci_low = d["ci_low"].fillna(d["estimate"] - p.ci_z * d["se"])
    df = design_df(d, p.p_reference)
    level = stats.norm.cdf(p.ci_z)
    dfa = (
        pd.to_numeric(df, errors="coerce").to_numpy(float)
        if df is not None
        else np.full(len(d), np.nan)
    )
    q = np.where(
        np.isfinite(dfa) & (dfa > 0),
        stats.t.ppf(level, np.where(np.isfinite(dfa) & (dfa > 0), dfa, 1.0)),
        p.ci_z,
    )
    half = d["estimate"] - d["ci_low"]
    fisher = d["method"].astype(str).str.contains("Fisher's z", regex=False)
    se_test = (half / q).where(fisher & (half > 0), d["se"])
    z, pv = z_test(d["estimate"], pd.Series(thr, index=d.index), se_test, 1, df=df)
    out = out.assign(
        benchmark=thr, bench_label="优质均衡标准", gap=d["estimate"] - thr, z=z, p_value=pv,
        threshold=thr, fires_threshold=d["estimate"] >= thr,
        by_threshold=not p.icc_requires_significance,
        severity=np.where(ci_low >= thr, "高", "中"),
    )  # fmt: skip
    if p.icc_requires_significance:  # no SE: the regulation's rule on the value
        no_se = ~(d["se"] > 0)
        out = _margin_decision(out, no_se, out["gap"], 0.0, f"标准{thr:g}")
    return out


def rule_level(obs: pd.DataFrame, p: EvidenceParams) -> pd.DataFrame:
    """LEVEL: county achievement level (1..4 for Ⅰ..Ⅳ) below ``level_min`` (Ⅲ = 3)."""
    d = obs[obs["indicator"] == "achievement_level"]
    out = _base(d, "LEVEL")
    return out.assign(
        benchmark=p.level_min, bench_label="水平Ⅲ", gap=d["estimate"] - p.level_min,
        threshold=p.level_min, fires_threshold=d["estimate"] < p.level_min,
        severity=np.where(d["estimate"] < p.level_min - 1, "高", "中"),
    )  # fmt: skip


def _severity_effect(gap_abs: pd.Series, sd: pd.Series | float, sev: Severity) -> np.ndarray:
    e = gap_abs / sd
    return np.select([e >= sev.effect_sd_high, e >= sev.effect_sd_medium], ["高", "中"], "低")


def _severity_pct(gap_abs: pd.Series, sev: Severity) -> np.ndarray:
    return np.select(
        [gap_abs >= sev.pct_points_high, gap_abs >= sev.pct_points_medium], ["高", "中"], "低"
    )


def _bench_test(
    d: pd.DataFrame,
    rule: str,
    bad_dir: int,
    p_reference: str,
    margin: pd.Series | float,
    margin_text: pd.Series | str,
) -> pd.DataFrame:
    """One-sided test of the value against its benchmark; rows without an SE of their own are
    decided by ``margin`` (:func:`_margin_decision`)."""
    out = _base(d, rule)
    se_diff = np.sqrt(d["se"] ** 2 + d["bench_se"].fillna(0.0) ** 2)
    z, pv = z_test(d["estimate"], d["bench_value"], se_diff, bad_dir, df=design_df(d, p_reference))
    out = out.assign(
        benchmark=d["bench_value"], bench_label=d["bench_scope"].map(SCOPE_LABELS).fillna(""),
        gap=d["estimate"] - d["bench_value"], se=se_diff.where(d["bench_value"].notna(), d["se"]),
        z=z, p_value=pv, by_threshold=False, bench_rows=_bench_records(d),
    )  # fmt: skip
    no_se = d["bench_value"].notna() & ~(d["se"] > 0)
    return _margin_decision(out, no_se, out["gap"] * bad_dir, margin, margin_text)


def _pct_margin(p: EvidenceParams) -> tuple[float, str]:
    return p.no_se_margin_pct_points, f"{p.no_se_margin_pct_points:g}个百分点"


def _sd_margin(sd: pd.Series, p: EvidenceParams) -> tuple[pd.Series, pd.Series]:
    m = sd * p.effect_size_sd
    return m, m.map(lambda x: f"{p.effect_size_sd:g}个标准差（{x:.1f}分）")


def _score_sd(obs: pd.DataFrame, d: pd.DataFrame, p: EvidenceParams) -> pd.Series:
    """County SD of the score (``sd_indicator``) for the rows of ``d``, else the scale SD."""
    k = ["year", "county_code", "grade", "subject"]
    sd = obs[(obs["indicator"] == p.sd_indicator) & (obs["group_var"] == "")][k + ["estimate"]]
    sd = sd.drop_duplicates(k).rename(columns={"estimate": "_sd"})
    got = d[k].merge(sd, on=k, how="left", validate="m:1")["_sd"].to_numpy()
    return pd.Series(np.where(np.isfinite(got) & (got > 0), got, p.scale_sd), index=d.index)


def rule_mean(obs: pd.DataFrame, p: EvidenceParams) -> pd.DataFrame:
    """MEAN: mean score significantly below the benchmark (one-sided)."""
    d = obs[(obs["indicator"] == "mean_score") & (obs["group_var"] == "")]
    sd = _score_sd(obs, d, p)
    out = _bench_test(d, "MEAN", -1, p.p_reference, *_sd_margin(sd, p))
    return out.assign(severity=_severity_effect(out["gap"].abs(), sd, p.severity))


def rule_medium(obs: pd.DataFrame, p: EvidenceParams) -> pd.DataFrame:
    """MEDIUM: percent at level Ⅱ or above significantly below the benchmark (one-sided)."""
    d = obs[(obs["indicator"] == "pct_medium_or_above") & (obs["group_var"] == "")]
    out = _bench_test(d, "MEDIUM", -1, p.p_reference, *_pct_margin(p))
    return out.assign(severity=_severity_pct(out["gap"].abs(), p.severity))


def rule_gap(obs: pd.DataFrame, p: EvidenceParams) -> pd.DataFrame:
    """GAP: |gap| significantly larger than the benchmark |gap| (one-sided,
    ``z = (|g| - |b|) / sqrt(se**2 + se_b**2)``); without a benchmark, |gap| significantly larger
    than the smallest gap worth acting on, ``delta = effect_size_sd x SD`` (a minimum-effect test,
    ``z = (|g| - delta) / se``; Murphy & Myors 1999), so a real but negligible gap does not fire.
    Only the ``gap_vars`` groupings are tested. Comparing absolute values assumes the gap and its
    benchmark are not near zero with opposite signs."""
    d = obs[(obs["indicator"] == "gap_mean_score") & obs["group_var"].isin(p.gap_vars)]
    out = _base(d, "GAP")
    delta = _score_sd(obs, d, p) * p.effect_size_sd
    has_b = d["bench_value"].notna()
    g = d["estimate"].abs()
    b = d["bench_value"].abs().where(has_b, delta)
    se = np.sqrt(d["se"] ** 2 + d["bench_se"].fillna(0.0).where(has_b, 0.0) ** 2)
    z, pv = z_test(g, b, se, 1, df=design_df(d, p.p_reference))
    out = out.assign(
        benchmark=d["bench_value"].where(has_b, delta), gap=g - b, se=se, z=z, p_value=pv,
        by_threshold=False,
        bench_label=d["bench_scope"].map(SCOPE_LABELS).fillna("")
        .where(has_b, f"{p.effect_size_sd:g}个标准差"),
        severity=_severity_effect(g - d["bench_value"].abs().fillna(0.0), delta / p.effect_size_sd,
                                  p.severity),
        bench_rows=_bench_records(d), threshold=delta.where(~has_b),
    )  # fmt: skip
    # no SE: |g| - |b| >= delta with a benchmark, |g| >= delta without one
    no_se = ~(d["se"] > 0)
    margin, text = _sd_margin(delta / p.effect_size_sd, p)
    return _margin_decision(out, no_se, g - b, margin.where(has_b, 0.0), text)


def rule_burden(obs: pd.DataFrame, p: EvidenceParams, rule: str) -> pd.DataFrame:
    """Burden/health: worse than the national (or provincial) figure, else than the configured
    ceiling/floor for the grade (one-sided)."""
    ind = p.rules[rule].indicator
    bad = BAD_DIRECTION[ind]
    d = obs[(obs["indicator"] == ind) & (obs["group_var"] == "")].copy()
    limits = p.burden_limits.get(ind, {})
    lim = d["grade"].map(lambda g: limits.get(int(g), np.nan) if pd.notna(g) else np.nan)
    lim = lim.astype(float)
    use_lim = d["bench_value"].isna() & lim.notna()
    d["bench_value"] = d["bench_value"].where(~use_lim, lim)
    d["bench_se"] = d["bench_se"].where(~use_lim, 0.0)
    out = _bench_test(d, rule, bad, p.p_reference, *_pct_margin(p))
    label = "限值" if bad > 0 else "目标值"
    return out.assign(
        bench_label=out["bench_label"].where(~use_lim, f"配置{label}"),
        bench_rows=[[] if u else r for u, r in zip(use_lim, out["bench_rows"], strict=True)],
        threshold=lim, severity=_severity_pct(out["gap"].abs(), p.severity),
    )  # fmt: skip


def _passes_false(x: pd.Series) -> pd.Series:
    """``passes == False`` (a missing verdict is not a failure)."""
    return x.astype("boolean").eq(False).fillna(False).astype(bool)


def rule_resource(rb: pd.DataFrame, p: EvidenceParams, city_code: str) -> pd.DataFrame:
    """RES: an indicator's 差异系数 fails the stage standard (≤ 0.50 / 0.45 passes).

    The verdict and the threshold are the indicators stage's (``resource_balance.passes`` and
    ``.threshold``, from ``indicators.cv_thresholds``): one source for the regulation's numbers.
    Fires on ``passes == False``; a missing 差异系数 (which fails there) gets the
    ``title_missing`` title."""
    _require(rb, schemas.RESOURCE_BALANCE.names, "资源配置均衡表 resource_balance.parquet ")
    d = rb.assign(
        grade=pd.NA, subject="", group_var="stage", group_value=rb["stage"].astype(str),
        county_code=rb["county_code"].astype(str),
    )  # fmt: skip
    d = _norm_keys(d)
    d = d[d["county_code"] != str(city_code)]
    thr = pd.to_numeric(d["threshold"], errors="coerce").astype(float)
    out = d[["year", *KEYS]].assign(rule_id="RES", value=d["cv"].astype(float), se=np.nan)
    rec = d[["year", "county_code", "stage", "indicator", "county_value", "cv", "threshold",
             "passes", "n_schools"]]  # fmt: skip
    out["rows"] = _records(rec, list(rec.columns))
    excess = d["cv"] - thr
    return out.assign(
        benchmark=thr, bench_label="差异系数标准", gap=excess, z=np.nan, p_value=np.nan,
        by_threshold=True, fires_threshold=_passes_false(d["passes"]), extra_ok=True,
        severity=np.where(excess >= p.severity.res_cv_excess_high, "高", "中"),
        bench_rows=[[] for _ in range(len(d))], note="学校办学条件统计（全县普查数据，无抽样误差）",
        threshold=thr, school_name="", own_se=np.nan, margin=np.nan,
        data_missing=d["cv"].isna().to_numpy(),
    )  # fmt: skip


def rule_school(sc: pd.DataFrame, p: EvidenceParams, city_code: str) -> pd.DataFrame:
    """SCHOOL: a school failing the 6-of-7 + 85% rule, as judged by the indicators stage
    (``school_compliance.passes``, from ``indicators.school_min_met`` / ``school_min_ratio_unmet``).

    Fires on ``passes == False``. A failing school with a missing quantity (any of L1–L7 NaN:
    indicators fails it because it cannot be judged) gets the ``title_missing`` title."""
    cols = ["year", "county_code", "school_id", "stage", *RESOURCE_INDICATORS, "n_met",
            "min_ratio_unmet", "passes"]  # fmt: skip
    _require(sc, cols, "学校资源配置达标表 school_compliance.parquet ")
    name = sc["school_name"] if "school_name" in sc else sc["school_id"]
    d = sc.assign(
        grade=pd.NA, subject="", indicator="school_compliance", group_var="school",
        group_value=sc["stage"].astype(str) + "/" + sc["school_id"].astype(str),
        school_name=name.astype("string").fillna("").astype(str),
    )  # fmt: skip
    d = _norm_keys(d)
    d = d[d["county_code"] != str(city_code)]
    fails = _passes_false(d["passes"])
    out = d[["year", *KEYS]].assign(rule_id="SCHOOL", value=d["n_met"].astype(float), se=np.nan)
    rec = d[[*cols[:3], "school_name", *cols[3:]]]
    out["rows"] = _records(rec, list(rec.columns))
    incomplete = d[list(RESOURCE_INDICATORS)].isna().any(axis=1)
    note = "学校办学条件统计（普查数据，按学校编号排列，不排名）"
    return out.assign(
        benchmark=np.nan, bench_label="", gap=np.nan, z=np.nan, p_value=np.nan, by_threshold=True,
        fires_threshold=fails, extra_ok=True,
        severity=np.where(d["n_met"] <= p.severity.school_n_met_high, "高", "中"),
        bench_rows=[[] for _ in range(len(d))],
        note=np.where(incomplete, note + "；有资源配置指标数据缺失，无法判定是否达标", note),
        threshold=np.nan, school_name=d["school_name"], own_se=np.nan, margin=np.nan,
        data_missing=incomplete.to_numpy(),
    )  # fmt: skip


def candidates(
    indicators: pd.DataFrame,
    resource_balance: pd.DataFrame,
    school_compliance: pd.DataFrame,
    county_reports: pd.DataFrame,
    params: EvidenceParams,
    city_code: str,
) -> pd.DataFrame:
    """Every testable row of every rule, with value, benchmark, test, BH q and ``fires``."""
    obs = observations(indicators, county_reports, city_code)
    obs = attach_benchmark(obs, county_reports, params.benchmark_scopes)
    parts = [
        rule_icc(obs, params), rule_level(obs, params), rule_mean(obs, params),
        rule_medium(obs, params), rule_gap(obs, params),
        *(rule_burden(obs, params, r) for r in BURDEN_RULES),
        rule_resource(resource_balance, params, city_code),
        rule_school(school_compliance, params, city_code),
    ]  # fmt: skip
    parts = [x[CAND_COLS] for x in parts if len(x)]
    c = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if c.empty:
        return pd.DataFrame(columns=[*CAND_COLS, "q_value", "fires"])
    c["grade"] = c["grade"].astype("Int64")
    for col in ("value", "benchmark", "gap", "se", "z", "p_value", "threshold", "own_se", "margin"):
        c[col] = c[col].astype(float)
    c["data_missing"] = c["data_missing"].fillna(False).astype(bool)
    c["q_value"] = c.groupby("year")["p_value"].transform(lambda s: bh_qvalues(s.to_numpy()))
    sig = (c["q_value"] < params.alpha) & c["extra_ok"].astype(bool)
    c["fires"] = np.where(c["by_threshold"].astype(bool), c["fires_threshold"].astype(bool), sig)
    c["fires"] = c["fires"].astype(bool)
    return c


# ------------------------------------------------------------------------------------------------
# Ids, titles, units, cause hints
# ------------------------------------------------------------------------------------------------

_SAFE = re.compile(r"^[A-Za-z0-9_.:]+$")


def _id_part(x: str) -> str:
    x = str(x)
    if _SAFE.match(x):
        return x
    if re.fullmatch(r"[A-Za-z0-9_.:\-]+", x):
        return x
    return "h" + hashlib.sha1(x.encode("utf-8")).hexdigest()[:8]


def problem_ids(df: pd.DataFrame) -> pd.Series:
    """Deterministic, readable id from the rule and the keys (no year: stable across rounds).

    ``ICC-450107-G8-math``, ``GAP-450107-G8-math-urban_rural-urban-rural``, ``SLEEP-450107-G4``,
    ``RES-450107-primary-L5``, ``SCH-450107-junior-<school_id>``. A key part with characters
    outside ``[A-Za-z0-9_.:-]`` is replaced by ``h`` + the first 8 hex digits of its SHA-1.
    """
    parts = []
    for r in df[["rule_id", *KEYS]].astype(object).itertuples(index=False):
        rule, county, grade, subject, indicator, gv, gval = r
        if rule == "RES":
            bits = ["RES", county, gval, indicator]
        elif rule == "SCHOOL":
            bits = ["SCH", county, *str(gval).split("/", 1)]
        else:
            bits = [rule, county]
            if pd.notna(grade):
                bits.append(f"G{int(grade)}")
            bits += [s for s in (subject,) if s]
            if rule not in RULE_ORDER:
                bits.append(indicator)
            if gv:
                bits += [gv, gval]
        parts.append("-".join(_id_part(b) for b in bits if str(b) != ""))
    return pd.Series(parts, index=df.index, dtype=object)


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "—"
    return f"{float(x):.{nd}f}"


def _group_label(gv: str, gval: str) -> str:
    if not gv:
        return ""
    labels = {
        **schemas.GENDER_LABELS, **schemas.URBAN_RURAL_LABELS, "left_behind": "留守",
        "not_left_behind": "非留守", "migrant": "随迁", "not_migrant": "非随迁",
        "non_migrant": "非随迁", "top": "最高四分位", "bottom": "最低四分位",
        "Q1": "最低四分位", "Q2": "第二四分位", "Q3": "第三四分位", "Q4": "最高四分位",
    }  # fmt: skip
    sides = [labels.get(s, s) for s in str(gval).split("-")]
    return f"{schemas.GROUP_VAR_LABELS.get(gv, gv)}（{'与'.join(sides)}）"


def render_titles(c: pd.DataFrame, params: EvidenceParams, county_names: Mapping[str, str]):
    """Chinese one-sentence titles from each rule's template (``str.format`` fields:
    county, grade, subject, indicator, group, stage, school, value, benchmark, bench_label, gap,
    threshold, comparison)."""
    titles = []
    for r in c.to_dict("records"):
        rule = r["rule_id"]
        bad = BAD_DIRECTION.get(r["indicator"], 1)
        pct = str(r["indicator"]).startswith("pct_")
        nd = 3 if rule in ("ICC", "RES") else (0 if rule in ("LEVEL", "SCHOOL") else 1)
        unit = "%" if pct else ("分" if rule == "GAP" else "")
        word = "高于" if bad > 0 else "低于"
        if rule == "GAP":
            word = "大于"
        comparison = f"显著{word}{r['bench_label']}（{_fmt(r['benchmark'], nd)}{unit}）"
        margin = r.get("margin")
        if margin is not None and pd.notna(margin):  # no SE: decided by a margin, not a test
            comparison = f"{word}{r['bench_label']}（{_fmt(r['benchmark'], nd)}{unit}）"
            if margin > 0:
                m_unit = "个百分点" if pct else "分"
                comparison += (
                    f"，差距达到判定差值{_fmt(margin, nd)}{m_unit}（官方报告未给出标准误）"
                )
            else:
                comparison += "（官方报告未给出标准误）"
        stage = ""
        if rule == "RES":
            stage = schemas.STAGE_LABELS.get(r["group_value"], r["group_value"])
        elif rule == "SCHOOL":
            stage = schemas.STAGE_LABELS.get(str(r["group_value"]).split("/")[0], "")
        level = {1: "水平Ⅰ", 2: "水平Ⅱ", 3: "水平Ⅲ", 4: "水平Ⅳ"}
        value = _fmt(r["value"], nd)
        if rule == "LEVEL" and pd.notna(r["value"]):
            value = level.get(int(round(r["value"])), value)
        fields = {
            "county": county_names.get(r["county_code"], r["county_code"]),
            "grade": schemas.GRADE_LABELS.get(r["grade"], "") if pd.notna(r["grade"]) else "",
            "subject": schemas.SUBJECT_LABELS.get(r["subject"], r["subject"]),
            "indicator": schemas.INDICATOR_LABELS.get(
                r["indicator"], schemas.RESOURCE_INDICATORS.get(r["indicator"], r["indicator"])
            ),
            "group": _group_label(r["group_var"], r["group_value"]) if rule == "GAP" else "",
            "stage": stage,
            "school": r.get("school_name") or "",
            "value": value,
            "benchmark": _fmt(r["benchmark"], nd),
            "bench_label": r["bench_label"],
            "gap": _fmt(r["gap"], nd),
            "threshold": _fmt(r["threshold"], 2 if rule != "SCHOOL" else 2),
            "comparison": comparison,
        }
        spec = params.rules[rule]
        title = spec.title_missing if r.get("data_missing") and spec.title_missing else spec.title
        titles.append(title.format_map(fields))
    return titles


def responsible_units(c: pd.DataFrame, params: EvidenceParams) -> list[str]:
    out = []
    for rule, ind in zip(c["rule_id"], c["indicator"], strict=True):
        spec = params.rules.get(rule)
        if spec is None:
            out.append("")
            continue
        u = spec.units_by_indicator.get(ind, spec.units)
        out.append(f"牵头：{u.lead}" + (f"；配合：{'、'.join(u.support)}" if u.support else ""))
    return out


def cause_hints(fired: pd.DataFrame, params: EvidenceParams, titles: pd.Series) -> pd.Series:
    """One sentence naming a linked problem of the same county and year (same grade where both
    have one; grade 4 is primary, grade 8 junior), e.g. a sleep problem in a county also over
    the homework limit."""
    links = pd.DataFrame(
        [(a, b) for a, bs in params.cause_links.items() for b in bs], columns=["rule_id", "other"]
    )
    stage = fired["grade"].map(schemas.GRADE_STAGE).astype(object)
    census = fired["rule_id"].isin(["RES", "SCHOOL"])
    stage = stage.where(~census, fired["group_value"].str.split("/").str[0])
    base = fired[["year", "county_code", "rule_id"]].assign(_i=fired.index, stage=stage)
    if links.empty or base.empty:
        return pd.Series("", index=fired.index)
    other = base.rename(columns={"rule_id": "other", "stage": "o_stage", "_i": "_o"})
    m = base.merge(links, on="rule_id").merge(other, on=["year", "county_code", "other"])
    same = m["stage"].isna() | m["o_stage"].isna() | (m["stage"] == m["o_stage"])
    m = m[same.astype(bool)].sort_values(["_i", "_o"]).drop_duplicates("_i")
    hint = "可能相关：同一区县同一学段同时存在问题「" + titles.loc[m["_o"]].to_numpy() + "」。"
    return pd.Series(dict(zip(m["_i"], hint, strict=True)), index=fired.index).fillna("")


# ------------------------------------------------------------------------------------------------
# Previous round
# ------------------------------------------------------------------------------------------------


def compare_previous(
    prev: pd.DataFrame,
    cand: pd.DataFrame,
    indicators: pd.DataFrame,
    params: EvidenceParams,
) -> pd.DataFrame:
    """Match last round's problems to this round's candidates and test the change.

    Returns one row per previous problem of the round with ``year`` (this round), its keys, the
    previous row (``prev_*``), the matched candidate index ``cand_idx`` (NaN when not re-measured),
    ``change_z``, ``change_p``, ``change_q`` and ``previous_status``.
    """
    rows = []
    for year in sorted(cand["year"].unique()) if len(cand) else []:
        earlier = prev[prev["year"] < year]
        if earlier.empty:
            continue
        py = int(earlier["year"].max())
        rows.append(earlier[earlier["year"] == py].assign(round_year=int(year)))
    if not rows:
        return pd.DataFrame()
    pp = pd.concat(rows, ignore_index=True)
    dup = pp.duplicated(["round_year", *KEYS], keep="first")
    if dup.any():
        log.warning(
            "上一轮问题清单中有 %d 条问题的区县/年级/学科/指标/分组重复，仅保留第一条", dup.sum()
        )
        pp = pp[~dup]
    cur = cand.reset_index(names="cand_idx").rename(columns={"year": "round_year"})
    m = pp.merge(
        cur[["round_year", *KEYS, "cand_idx", "value", "own_se", "fires"]].rename(
            columns={"value": "now_value", "own_se": "now_se"}
        ),
        on=["round_year", *KEYS],
        how="left",
        validate="1:1",
    )
    # previous SE: given, else the previous year's indicators row, else the current SE
    ind = _norm_keys(indicators)
    ind = ind[ind["source"].astype(str) == "computed"][["year", *KEYS, "se"]]
    ind = ind.drop_duplicates(["year", *KEYS]).rename(columns={"se": "_ind_se"})
    m = m.merge(ind, on=["year", *KEYS], how="left", validate="m:1")
    now_se = pd.to_numeric(m["now_se"], errors="coerce").astype(float)
    m["now_value"] = pd.to_numeric(m["now_value"], errors="coerce").astype(float)
    prev_se = m["se"].astype(float).fillna(pd.to_numeric(m["_ind_se"]).astype(float))
    assumed = prev_se.isna() & now_se.notna()
    prev_se = prev_se.fillna(now_se)
    bad = m["indicator"].map(BAD_DIRECTION)
    absval = m["indicator"] == "gap_mean_score"
    v_now = m["now_value"].where(~absval, m["now_value"].abs())
    v_prev = m["value"].astype(float).where(~absval, m["value"].astype(float).abs())
    link = m["indicator"].map(lambda i: params.linking_error.get(i, 0.0)).astype(float)
    se_d = np.sqrt(now_se**2 + prev_se**2 + link**2)
    z, p2 = z_test(v_now * bad.fillna(1), v_prev * bad.fillna(1), se_d, 1, two_sided=True)
    q = pd.Series(np.nan, index=m.index)
    for _, idx in m.groupby("round_year").groups.items():
        q.loc[idx] = bh_qvalues(p2.loc[idx].to_numpy())
    measured = m["cand_idx"].notna() & m["now_value"].notna()
    tested = q.notna()
    delta = (v_now - v_prev) * bad
    status = np.select(
        [
            ~measured,
            tested & (q < params.alpha) & (z > 0),
            tested & (q < params.alpha) & (z < 0),
            tested,
            ~m["fires"].fillna(False).astype(bool) & bad.notna(),
            delta > params.census_change_tolerance,
            delta < -params.census_change_tolerance,
        ],
        ["not re-measured", "worse", "improved", "unchanged", "improved", "worse", "improved"],
        "unchanged",
    )
    return m.assign(
        change_z=z, change_p=p2, change_q=q, previous_status=status, prev_se_used=prev_se,
        prev_se_assumed=assumed, prev_year=m["year"], year=m["round_year"],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------------------------


def _json(obj: Any) -> str:
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if o is None or o is pd.NA:
            return None
        if isinstance(o, np.bool_ | bool):
            return bool(o)
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, float | np.floating):
            return float(o) if math.isfinite(o) else None
        return o

    return json.dumps(clean(obj), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def build_problems(
    indicators: pd.DataFrame,
    resource_balance: pd.DataFrame,
    school_compliance: pd.DataFrame,
    county_reports: pd.DataFrame,
    previous_problems: pd.DataFrame,
    params: EvidenceParams,
    county_names: Mapping[str, str],
    city_code: str,
) -> pd.DataFrame:
    """The 问题清单 of every round in the inputs (pure: no file access, inputs untouched).

    Rows: every firing rule (previous_status ``new`` or the change status when last round listed
    the same problem), plus every problem of last round's list that no longer fires
    (improved / unchanged / worse) or has no data this round (``not re-measured``). Columns exactly
    :data:`pipeline.schemas.PROBLEMS`, sorted by year, county, rule order and problem id.
    """
    c = candidates(
        indicators, resource_balance, school_compliance, county_reports, params, city_code
    )
    if c.empty:
        return _empty()
    c["problem_id"] = problem_ids(c)
    c["title"] = render_titles(c, params, county_names)
    prev = _norm_previous(previous_problems)
    cmp_ = compare_previous(prev, c, indicators, params) if len(prev) else pd.DataFrame()
    fired = c[c["fires"]].copy()
    fired["cause_hint"] = cause_hints(fired, params, c["title"])
    fired["previous_status"] = "new"
    fired["status"] = params.status_new
    fired["previous"] = None
    keep_prev = []
    if len(cmp_):
        cmp_ = cmp_.assign(cand_idx=cmp_["cand_idx"].astype("Int64"))
        hit = cmp_[cmp_["cand_idx"].notna()]
        prev_info = {
            int(r["cand_idx"]): r for r in hit.to_dict("records")
        }  # cand index -> previous match
        # matched and still firing: take the change status and keep the previous id
        for i in fired.index.intersection(list(prev_info)):
            r = prev_info[i]
            fired.loc[i, "previous_status"] = r["previous_status"]
            fired.loc[i, "status"] = params.status_open
            fired.loc[i, "problem_id"] = r["problem_id"]
        fired["previous"] = [_prev_summary(prev_info.get(i)) for i in fired.index]
        # matched but no longer firing
        gone = [i for i in prev_info if not bool(c.loc[i, "fires"])]
        g = c.loc[gone].copy()
        if len(g):
            g["problem_id"] = [prev_info[i]["problem_id"] for i in gone]
            g["previous_status"] = [prev_info[i]["previous_status"] for i in gone]
            g["status"] = [
                params.status_closable if s == "improved" else params.status_recheck
                for s in g["previous_status"]
            ]
            g["severity"] = "低"
            g["cause_hint"] = ""
            g["previous"] = [_prev_summary(prev_info[i]) for i in gone]
            keep_prev.append(g)
        nm = cmp_[cmp_["cand_idx"].isna()]
        if len(nm):
            keep_prev.append(_not_remeasured(nm, params))
    allp = pd.concat([fired, *keep_prev], ignore_index=True)
    allp["evidence"] = [_evidence(r) for r in allp.to_dict("records")]
    # a previous problem under a rule id this version does not know (e.g. a hand-entered list) gets
    # the units and domain of the rule testing the same indicator, else keeps its own
    own_rule = allp["rule_id"].where(
        allp["rule_id"].isin(list(params.rules)), allp["indicator"].map(_indicator_rules(params))
    )
    allp["responsible_unit"] = responsible_units(allp.assign(rule_id=own_rule), params)
    allp["domain"] = [params.rules[r].domain if r in params.rules else "" for r in own_rule]
    if "prev_unit" in allp:
        empty = allp["responsible_unit"] == ""
        allp.loc[empty, "responsible_unit"] = allp.loc[empty, "prev_unit"].fillna("")
        empty = allp["domain"] == ""
        allp.loc[empty, "domain"] = allp.loc[empty, "prev_domain"].fillna("")
    allp["deadline"] = params.deadline_placeholder
    order = {r: i for i, r in enumerate(RULE_ORDER)}
    allp["_o"] = allp["rule_id"].map(order).fillna(len(order))
    allp = allp.sort_values(["year", "county_code", "_o", "problem_id"], kind="mergesort")
    dup = allp.duplicated(["year", "problem_id"])
    if dup.any():
        raise EqmError(
            f"问题编号重复：{', '.join(allp.loc[dup, 'problem_id'].astype(str).unique()[:5])}。",
            hint="上一轮问题清单中可能有编号重复或同一问题出现两次，请检查 previous_problems。",
        )
    out = allp[PROBLEM_COLS].reset_index(drop=True)
    return _typed(out)


def _indicator_rules(params: EvidenceParams) -> dict[str, str]:
    """indicator -> the rule that tests it (for previous problems under unknown rule ids)."""
    out = {
        "school_difference_rate": "ICC", "achievement_level": "LEVEL", "mean_score": "MEAN",
        "pct_medium_or_above": "MEDIUM", "gap_mean_score": "GAP",
        "school_compliance": "SCHOOL", **dict.fromkeys(RESOURCE_INDICATORS, "RES"),
    }  # fmt: skip
    out.update({params.rules[r].indicator: r for r in BURDEN_RULES})
    return out


def _empty() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in PROBLEM_COLS}))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in schemas.PROBLEMS.columns:
        if col.dtype == "int" and col.name == "year":
            out[col.name] = out[col.name].astype("int64")
        elif col.dtype == "int":
            out[col.name] = pd.to_numeric(out[col.name]).astype("Int64")
        elif col.dtype == "float":
            out[col.name] = pd.to_numeric(out[col.name]).astype("float64")
        else:
            out[col.name] = out[col.name].astype(object).where(out[col.name].notna(), "")
            out[col.name] = out[col.name].astype(str)
    return out


def _norm_previous(prev: pd.DataFrame) -> pd.DataFrame:
    if prev is None or prev.empty:
        return pd.DataFrame()
    req = ["problem_id", "year", "county_code", "rule_id", "indicator"]
    _require(prev, req, "上一轮问题清单 previous_problems ")
    out = prev.copy()
    for c in ("grade", "subject", "group_var", "group_value", "value", "se", "title", "status",
              "severity", "domain", "responsible_unit", "deadline"):  # fmt: skip
        if c not in out:
            out[c] = np.nan if c in ("grade", "value", "se") else ""
    out = _norm_keys(out)
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    out["se"] = pd.to_numeric(out["se"], errors="coerce").astype(float)
    out["problem_id"] = out["problem_id"].astype(str)
    for c in ("rule_id", "title", "status", "severity", "domain", "responsible_unit", "deadline"):
        out[c] = out[c].astype("string").fillna("").astype(str)
    keep = ["problem_id", "year", *KEYS, "rule_id", "value", "se", "title", "status", "severity",
            "domain", "responsible_unit", "deadline"]  # fmt: skip
    return out[keep]


def _prev_summary(r: Mapping | None) -> dict | None:
    if r is None:
        return None
    return {
        "problem_id": r["problem_id"], "year": r["prev_year"], "value": r["value"],
        "se": r["prev_se_used"], "se_assumed_equal_to_current": bool(r["prev_se_assumed"]),
        "title": r["title"], "status": r["status"], "change_z": r["change_z"],
        "change_p": r["change_p"], "change_q": r["change_q"],
        "test": "两侧 z 检验（z > 0 表示向不利方向变化），se = sqrt(本轮se² + 上轮se² + 链接误差²)，BH 校正",
    }  # fmt: skip


def _not_remeasured(nm: pd.DataFrame, params: EvidenceParams) -> pd.DataFrame:
    suffix = params.previous_title_suffix
    return pd.DataFrame(
        {
            "year": nm["year"].astype("int64"), **{k: nm[k] for k in KEYS},
            "rule_id": nm["rule_id"], "problem_id": nm["problem_id"],
            "title": nm["title"].where(nm["title"] != "", nm["problem_id"]) + suffix,
            "value": np.nan, "benchmark": np.nan, "gap": np.nan, "se": np.nan,
            "p_value": np.nan, "q_value": np.nan, "severity": nm["severity"],
            "previous_status": "not re-measured",
            "status": nm["status"].where(nm["status"] != "", params.status_open),
            "rows": [[] for _ in range(len(nm))], "bench_rows": [[] for _ in range(len(nm))],
            "note": "本轮没有与该问题对应的数据，状态沿用上一轮", "cause_hint": "",
            "previous": [_prev_summary(r) for r in nm.to_dict("records")], "bench_label": "",
            "z": np.nan, "school_name": "", "prev_unit": nm["responsible_unit"],
            "prev_domain": nm["domain"],
        }
    )  # fmt: skip


def _evidence(r: Mapping) -> str:
    return _json(
        {
            "rule_id": r["rule_id"], "note": r.get("note", ""), "rows": r.get("rows") or [],
            "benchmark_rows": r.get("bench_rows") or [], "benchmark_label": r.get("bench_label", ""),
            "benchmark": r.get("benchmark"), "p_value": r.get("p_value"), "q_value": r.get("q_value"),
            "z": r.get("z"), "cause_hint": r.get("cause_hint", ""), "previous": r.get("previous"),
        }
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Workbook
# ------------------------------------------------------------------------------------------------

XLSX_COLUMNS = [c for c in PROBLEM_COLS if c != "evidence"]
FIXED_TIME = datetime(2000, 1, 1)  # workbook metadata date: fixed so the file is byte-stable
NUMBER_FORMATS = {"score": "0.0", "rate": "0.000", "count": "0", "p": "0.0000"}
RATE_INDICATORS = {"school_difference_rate", "eta_squared", "school_mean_cv"}


def _value_kind(rule_id: str, indicator: str) -> str:
    """Display format of a problem's value / benchmark / gap / SE (report decimals, issue 6)."""
    if rule_id == "RES" or indicator in RATE_INDICATORS:
        return "rate"  # 差异系数 and 校际差异率: 3 decimals
    if rule_id in {"SCHOOL", "LEVEL"} or indicator == "achievement_level":
        return "count"  # indicators met / level code
    return "score"  # scores, score gaps, percentages: 1 decimal


def evidence_text(ev_json: str) -> str:
    """A readable Chinese rendering of the evidence JSON (each number with its source)."""
    ev = json.loads(ev_json)
    parts = [ev.get("note") or ""]
    for row in ev.get("rows", []):
        if "estimate" in row:
            parts.append(
                f"本区县 {schemas.INDICATOR_LABELS.get(row['indicator'], row['indicator'])} = "
                f"{_fmt(row.get('estimate'), 3)}（标准误 {_fmt(row.get('se'), 3)}，"
                f"学生 {_fmt(row.get('n_students'), 0)} 人，学校 {_fmt(row.get('n_schools'), 0)} 所，"
                f"方法 {row.get('method') or '—'}，来源 {row.get('source') or '—'}"
                + _page(row.get("source_page"))
                + "）"
            )
        elif "cv" in row:
            parts.append(
                f"差异系数 = {_fmt(row.get('cv'), 3)}（县域均值 {_fmt(row.get('county_value'), 2)}，"
                f"标准 {_fmt(row.get('threshold'), 2)}，学校 {_fmt(row.get('n_schools'), 0)} 所）"
            )
        elif "n_met" in row:
            parts.append(
                f"学校 {row.get('school_name')}（{row.get('school_id')}）达标 {_fmt(row.get('n_met'), 0)} 项，"
                f"未达标项最低达成率 {_fmt(row.get('min_ratio_unmet'), 3)}"
            )
    if (
        not ev.get("benchmark_rows")
        and ev.get("benchmark") is not None
        and ev.get("rule_id") != "GAP"
    ):
        parts.append(f"参照 {ev.get('benchmark_label') or '标准'} = {_fmt(ev['benchmark'], 3)}")
    for b in ev.get("benchmark_rows", []):
        parts.append(
            f"参照 {SCOPE_LABELS.get(b.get('scope'), b.get('scope'))} = {_fmt(b.get('value'), 3)}"
            f"（标准误 {_fmt(b.get('se'), 3)}" + _page(b.get("source_page")) + "）"
        )
    if ev.get("z") is not None:
        parts.append(
            f"z = {ev['z']:.2f}，p = {_fmt(ev.get('p_value'), 4)}，q = {_fmt(ev.get('q_value'), 4)}"
        )
    pv = ev.get("previous")
    if pv:
        parts.append(
            f"上一轮（{pv.get('year')}）{pv.get('problem_id')}：数值 {_fmt(pv.get('value'), 3)}，"
            f"变化检验 z = {_fmt(pv.get('change_z'), 2)}，q = {_fmt(pv.get('change_q'), 4)}"
        )
    return "；".join(p for p in parts if p)


def _page(page: Any) -> str:
    if not page:
        return ""
    page = str(page)
    return f"，报告{page}" if "页" in page else f"，报告第 {page} 页"


def _width(values: list[str], header: str) -> float:
    def w(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)

    longest = max([w(header), *(w(v) for v in values[:500])]) if values else w(header)
    return float(min(max(longest + 2, 8), 60))


def evidence_workbooks(
    problems: pd.DataFrame,
    school_compliance: pd.DataFrame,
    params: EvidenceParams,
    county_names: Mapping[str, str],
    city_code: str,
) -> dict[int, bytes]:
    """One xlsx per year: a summary sheet and one sheet per county (Chinese headers from
    :data:`schemas.PROBLEMS`, frozen header, readable widths). Every text cell is written as a
    string (``write_string``, formulas/URLs/numbers never inferred), so data beginning with ``=``,
    ``+``, ``-`` or ``@`` cannot become a formula. Failing schools are listed by school id, not ranked.
    """
    import xlsxwriter

    years = sorted(set(problems["year"].astype(int)) | set(school_compliance["year"].astype(int)))
    label = {c.name: c.label for c in schemas.PROBLEMS.columns}
    out: dict[int, bytes] = {}
    for year in years:
        p = problems[problems["year"] == year]
        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(
            buf,
            {
                "in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                "strings_to_urls": False, "nan_inf_to_errors": False,
            },
        )  # fmt: skip
        wb.set_properties({"title": f"{year}年问题清单与证据", "created": FIXED_TIME})
        head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        # Display formats only (the cell keeps full precision): scores and percentages 1 decimal,
        # rates 3 decimals, p/q 4 decimals, counts and levels whole numbers.
        num = {
            k: wb.add_format({"valign": "top", "num_format": f}) for k, f in NUMBER_FORMATS.items()
        }

        # summary sheet
        ws = wb.add_worksheet("汇总")
        hdr = ["区县代码", "区县", "问题数", "高", "中", "低", "新问题", "改善", "无显著变化", "恶化",
               "本轮未复测", "资源配置未达标学校数"]  # fmt: skip
        counties = sorted(
            set(p["county_code"])
            | set(
                school_compliance.loc[school_compliance["year"] == year, "county_code"].astype(str)
            )
        )
        counties = [c for c in counties if c != str(city_code)]
        rows = []
        for cc in counties:
            q = p[p["county_code"] == cc]
            open_ = q["status"].isin([params.status_new, params.status_open])
            n_fail = int(((q["rule_id"] == "SCHOOL") & open_).sum())
            rows.append([
                cc, county_names.get(cc, cc), len(q),
                *((q["severity"] == s).sum() for s in ("高", "中", "低")),
                *((q["previous_status"] == s).sum() for s in PREVIOUS_STATUS_LABELS),
                n_fail,
            ])  # fmt: skip
        _write_table(ws, hdr, rows, head, top, wrap_cols=set())
        ws.write_string(len(rows) + 2, 0, "说明：", top)
        ws.write_string(
            len(rows) + 2, 1,
            f"显著性：BH 校正后 q < {params.alpha:g} 判定；官方报告未给出标准误的数值按差值是否超过"
            f"判定差值判定（不作检验）；资源配置类问题依据普查数据按标准判定。"
            f"学校名单按学校编号排列，不作排名。责任单位与整改时限为建议，请在整改方案中确认。",
            top,
        )  # fmt: skip

        # one sheet per county
        used: set[str] = {"汇总"}
        for cc in counties:
            q = p[p["county_code"] == cc]
            name = _sheet_name(f"{county_names.get(cc, cc)}_{cc}", used)
            ws = wb.add_worksheet(name)
            hdr = [label[c] for c in XLSX_COLUMNS] + ["证据说明", "原因提示", "证据（JSON）"]
            data, fmts = [], []
            for r in q.to_dict("records"):
                ev = json.loads(r["evidence"])
                row = []
                for c in XLSX_COLUMNS:
                    v = r[c]
                    if c == "grade":
                        v = schemas.GRADE_LABELS.get(int(v), str(v)) if pd.notna(v) else ""
                    elif c == "subject":
                        v = schemas.SUBJECT_LABELS.get(v, v)
                    elif c == "indicator":
                        v = schemas.INDICATOR_LABELS.get(v, schemas.RESOURCE_INDICATORS.get(v, v))
                    elif c == "previous_status":
                        v = PREVIOUS_STATUS_LABELS.get(v, v)
                    row.append(v)
                row += [evidence_text(r["evidence"]), ev.get("cause_hint") or "", r["evidence"]]
                data.append(row)
                kind = _value_kind(r["rule_id"], r["indicator"])
                fmts.append(
                    {XLSX_COLUMNS.index(c): num[kind] for c in ("value", "benchmark", "gap", "se")}
                    | {XLSX_COLUMNS.index(c): num["p"] for c in ("p_value", "q_value")}
                )
            wrap_cols = {hdr.index("证据说明"), hdr.index("问题"), hdr.index("证据（JSON）")}
            _write_table(ws, hdr, data, head, top, wrap, wrap_cols, fmts)
            # failing schools by name, ordered by school id (never ranked)
            fs = q[
                (q["rule_id"] == "SCHOOL")
                & q["status"].isin([params.status_new, params.status_open])
            ]
            start = len(data) + 3
            ws.write_string(start, 0, "资源配置未达标学校名单（按学校编号排列，不排名）", head)
            sub_hdr = ["学校编号", "学校名称", "学段", "达标项数", "未达标项最低达成率"]
            for j, h in enumerate(sub_hdr):
                ws.write_string(start + 1, j, h, head)
            recs = [json.loads(e)["rows"][0] for e in fs["evidence"]]
            recs.sort(key=lambda x: (str(x.get("school_id")), str(x.get("stage"))))
            for i, x in enumerate(recs, start=start + 2):
                vals = [str(x.get("school_id") or ""), str(x.get("school_name") or ""),
                        schemas.STAGE_LABELS.get(x.get("stage"), str(x.get("stage"))),
                        x.get("n_met"), x.get("min_ratio_unmet")]  # fmt: skip
                for j, v in enumerate(vals):
                    _cell(ws, i, j, v, num["rate"] if j == 4 else num["count"] if j == 3 else top)
        wb.close()
        out[int(year)] = buf.getvalue()
    return out


def _sheet_name(name: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\]", "_", name)[:31]
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base[:28]}_{k}"
    used.add(name)
    return name


def _cell(ws, i: int, j: int, v: Any, fmt) -> None:
    if v is None or v is pd.NA or v == "" or (isinstance(v, float) and not math.isfinite(v)):
        ws.write_blank(i, j, None, fmt)
    elif isinstance(v, bool | np.bool_):
        ws.write_string(i, j, "是" if v else "否", fmt)
    elif isinstance(v, int | float | np.integer | np.floating):
        ws.write_number(i, j, float(v), fmt)
    else:
        ws.write_string(i, j, str(v), fmt)


def _write_table(ws, hdr, rows, head, top, wrap=None, wrap_cols=frozenset(), fmts=None) -> None:
    for j, h in enumerate(hdr):
        ws.write_string(0, j, h, head)
    for i, row in enumerate(rows, start=1):
        row_fmts = fmts[i - 1] if fmts else {}
        for j, v in enumerate(row):
            fmt = row_fmts.get(j) or (wrap if j in wrap_cols and wrap is not None else top)
            _cell(ws, i, j, v, fmt)
    for j, h in enumerate(hdr):
        col = [str(r[j]) for r in rows if r[j] is not None]
        width = 60.0 if j in wrap_cols else _width(col, h)
        ws.set_column(j, j, width)
    ws.freeze_panes(1, 0)
    if rows:
        ws.autofilter(0, 0, len(rows), len(hdr) - 1)


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


def _read_optional(path, what: str) -> pd.DataFrame:
    if not path.is_file():
        log.info("未找到%s（%s），视为空表", what, path)
        return pd.DataFrame()
    return pd.read_parquet(path)


def stage_params(ctx: RunContext) -> EvidenceParams:
    """``evidence:`` of params.yaml plus the 校际差异率 standard ``monitoring.icc_threshold``."""
    return ctx.section(EvidenceParams, "evidence", icc_threshold=ctx.monitoring.icc_threshold)


def run(ctx: RunContext) -> None:
    mon = ctx.monitoring
    params = stage_params(ctx)
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
    problems = build_problems(
        indicators, rb, sc, cr, prev, params, dict(mon.counties), str(mon.city_code)
    )
    books = evidence_workbooks(problems, sc, params, dict(mon.counties), str(mon.city_code))
    with outputs() as out:
        out.parquet(problems, paths.problems)
        folder = out.directory(paths.evidence_dir)
        with ctx.step("写出问题清单工作簿", len(books)) as advance:
            for year, data in books.items():
                (folder / str(year)).mkdir(parents=True, exist_ok=True)
                (folder / str(year) / "rectification_evidence.xlsx").write_bytes(data)
                advance(1)
    for year, g in problems.groupby("year"):
        log.info(
            "%d 年：问题 %d 条（新 %d，改善 %d，无显著变化 %d，恶化 %d，未复测 %d）",
            year, len(g), *((g["previous_status"] == s).sum() for s in PREVIOUS_STATUS_LABELS),
        )  # fmt: skip
