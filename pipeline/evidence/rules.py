"""Rules of the problem list: every testable county value of every candidate rule, with its test.

Each ``rule_*`` returns *candidates*: every row the rule can judge, fired or not, so that the
close-outs (a previous problem that now meets its standard) and the comparison labels of the
reports (优于 / 差于 / 无显著差异) come from the same tests as the problems. See the package
docstring for the rules and their tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, stdtrit

import pipeline.schemas as schemas
from pipeline.errors import EqmError
from pipeline.evidence.inference import bh_qvalues, design_df, tail, z_test
from pipeline.evidence.params import BURDEN_RULES, EvidenceParams, Severity

KEYS = ["county_code", "grade", "subject", "indicator", "group_var", "group_value"]
OBS_COLS = [
    "year", *KEYS, "estimate", "se", "ci_low", "ci_high", "n_students", "n_schools", "method",
    "source", "source_page",
]  # fmt: skip
BENCH_COLS = ["scope", "value", "se", "n", "source_page", "county_code"]
SCOPE_LABELS = schemas.SCOPE_LABELS
OFFICIAL_FIRST = ("school_difference_rate", "achievement_level")
RESOURCE_INDICATORS = tuple(schemas.RESOURCE_INDICATORS)
# Which direction of an indicator is the bad one (+1: higher is worse, -1: lower is worse).
BAD_DIRECTION = {
    "school_difference_rate": 1, "achievement_level": -1, "mean_score": -1,
    "pct_medium_or_above": -1, "pct_good_or_above": -1, "gap_mean_score": 1,
    "pct_homework_over_limit": 1, "pct_sleep_sufficient": -1, "pct_myopia": 1,
    "pct_fitness_pass": -1, "school_compliance": -1, **dict.fromkeys(RESOURCE_INDICATORS, 1),
}  # fmt: skip


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
    for c in ("estimate", "se", "ci_low", "ci_high", "n_students", "n_schools"):
        obs[c] = pd.to_numeric(obs[c], errors="coerce").astype(float)
    # the local estimate beside an official value that wins (校际差异率, level): kept as evidence
    first = obs["indicator"].isin(OFFICIAL_FIRST)
    lost = obs.duplicated(["year", *KEYS], keep="first") & first & (obs["source"] != "official")
    alt = {
        tuple(r[k] for k in ["year", *KEYS]): r
        for r in (rec[0] for rec in _records(obs[lost], OBS_COLS))
    }
    obs = obs.drop_duplicates(["year", *KEYS], keep="first")
    obs["_alt"] = [
        [alt[k]] if k in alt else []
        for k in obs[["year", *KEYS]].itertuples(index=False, name=None)
    ]
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
    "year", *KEYS, "rule_id", "value", "benchmark", "bench_label", "bench_scope", "gap", "se",
    "z", "p_value", "p_better", "df", "by_threshold", "fires_threshold", "extra_ok", "severity",
    "rows", "bench_rows", "note", "threshold", "school_name", "own_se", "margin", "data_missing",
    "reversed",
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
        rows=[r + list(a) for r, a in zip(_records(df, OBS_COLS), df["_alt"], strict=True)]
        if "_alt" in df
        else _records(df, OBS_COLS),
        bench_rows=[[] for _ in range(n)],
        note=np.where(
            df["source"].to_numpy() == "official",
            "数值取自区县官方监测报告（无学生层面数据或以官方值为准）",
            "数值由学生层面数据计算（分层逐校刀切法标准误）",
        ),
        benchmark=np.nan, bench_label="", bench_scope="", gap=np.nan, z=np.nan, p_value=np.nan,
        p_better=np.nan, df=np.nan, by_threshold=True, fires_threshold=False, extra_ok=True,
        severity="", threshold=np.nan, school_name="", own_se=df["se"].to_numpy(), margin=np.nan,
        data_missing=False, reversed=False,
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
        p_better=out["p_better"].where(~no_se),
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
    level = ndtr(p.ci_z)  # Φ(ci_z)
    dfa = (
        pd.to_numeric(df, errors="coerce").to_numpy(float)
        if df is not None
        else np.full(len(d), np.nan)
    )
    usable = np.isfinite(dfa) & (dfa > 0)
    q = np.where(usable, stdtrit(np.where(usable, dfa, 1.0), level), ndtri(level))
    half = d["estimate"] - d["ci_low"]
    fisher = d["method"].astype(str).str.contains("Fisher's z", regex=False)
    se_test = (half / q).where(fisher & (half > 0), d["se"])
    z, pv = z_test(d["estimate"], pd.Series(thr, index=d.index), se_test, 1, df=df)
    out = out.assign(
        benchmark=thr, bench_label="优质均衡标准", bench_scope="standard",
        gap=d["estimate"] - thr, z=z, p_value=pv, df=df if df is not None else np.nan,
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
        benchmark=p.level_min, bench_label="水平Ⅲ", bench_scope="standard",
        gap=d["estimate"] - p.level_min,
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
    df = design_df(d, p_reference)
    z, pv = z_test(d["estimate"], d["bench_value"], se_diff, bad_dir, df=df)
    out = out.assign(
        benchmark=d["bench_value"], bench_label=d["bench_scope"].map(SCOPE_LABELS).fillna(""),
        bench_scope=d["bench_scope"].fillna("").astype(str),
        gap=d["estimate"] - d["bench_value"], se=se_diff.where(d["bench_value"].notna(), d["se"]),
        z=z, p_value=pv, p_better=tail(-z * bad_dir, df), df=df if df is not None else np.nan,
        by_threshold=False, bench_rows=_bench_records(d),
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
    """GAP: a subgroup gap ``g`` (e.g. 女 − 男) against the national gap ``b``, with its sign.

    ``z = (g − b) / sqrt(se² + se_b²)`` with t on the design df. Two kinds of grouping:

    * groupings with an advantaged and a disadvantaged side, written advantaged first
      (``urban-rural``, ``not_left_behind-left_behind``, ``Q4-Q1``, ``non_migrant-migrant``): a gap
      larger than the nation's is worse, one-sided ``H1: g > b``; a gap in favour of the
      disadvantaged group is not a problem;
    * groupings without one (``gap_reversal_vars``, default gender): two-sided; the rule fires on
      ``q < alpha`` unless the county gap lies between 0 and ``b`` (a smaller gap on the national
      side). A significant difference is *excess* when the county gap is farther from 0 than
      ``b`` on the same side (or ``b = 0``) and a *reversal* when it has the opposite sign (女 − 男
      = −18 where the nation has +20: girls are behind in this county where the nation has them
      ahead), which the old ``|g|`` comparison missed.

    Without a benchmark: a minimum-effect test that the gap (``|g|`` for two-sided groupings)
    exceeds the smallest gap worth acting on, ``delta = effect_size_sd x SD``, one-sided (Murphy &
    Myors 1999), so a real but negligible gap does not fire. Only ``gap_vars`` groupings are
    tested. Severity from the effect size ``|g − b| / SD`` (gap / SD without a benchmark)."""
    d = obs[(obs["indicator"] == "gap_mean_score") & obs["group_var"].isin(p.gap_vars)]
    out = _base(d, "GAP")
    sd = _score_sd(obs, d, p)
    delta = sd * p.effect_size_sd
    has_b = d["bench_value"].notna()
    g = d["estimate"]
    b = d["bench_value"]
    # two-sided groupings (gender): the national side; one-sided ones (advantaged − disadvantaged
    # first, e.g. urban-rural, Q4-Q1): a larger gap is worse whatever the nation's sign
    two = d["group_var"].isin(p.gap_reversal_vars)
    s_b = pd.Series(np.where(two, np.sign(b.fillna(0.0)), 1.0), index=d.index)
    df = design_df(d, p.p_reference)
    se_b = np.sqrt(d["se"] ** 2 + d["bench_se"].fillna(0.0) ** 2)
    z_b, p_two = z_test(g, b, se_b, 1, two_sided=True, df=df)
    p_one = tail(z_b, df)  # H1: g > b (one-sided groupings)
    size = g.abs().where(two, g)  # the gap measured in its worse direction
    z_n, p_n = z_test(size, delta, d["se"], 1, df=df)
    # a reversal needs the county gap itself on the other side of 0 (one-sided t at alpha on the
    # county's own SE); a gap near 0 on the other side is "between 0 and b", not a finding
    opposite = tail(-(g * s_b) / d["se"].where(d["se"] > 0), df) < p.alpha
    rev = has_b & two & (s_b != 0) & (g * s_b < 0) & opposite
    between = has_b & two & (s_b != 0) & ~rev & (g * s_b <= b.abs())
    p_rule = p_two.where(two, p_one).where(has_b, p_n)
    # mirrored test for the report's label: the county gap significantly closer to equality
    p_better = tail(-(z_b * s_b), df).where(has_b & ~rev & ((s_b != 0) | ~two))
    sev_gap = (g - b).abs().where(has_b, size)
    out = out.assign(
        benchmark=b.where(has_b, delta), gap=(g - b).where(has_b, size - delta),
        se=se_b.where(has_b, d["se"]), z=z_b.where(has_b, z_n), p_value=p_rule,
        p_better=p_better, df=df if df is not None else np.nan, by_threshold=False,
        extra_ok=~between, reversed=rev.to_numpy(),
        bench_label=d["bench_scope"].map(SCOPE_LABELS).fillna("")
        .where(has_b, f"{p.effect_size_sd:g}个标准差"),
        bench_scope=d["bench_scope"].fillna("").astype(str).where(has_b, "standard"),
        severity=_severity_effect(sev_gap, sd, p.severity),
        bench_rows=_bench_records(d), threshold=delta.where(~has_b),
    )  # fmt: skip
    # no SE: |g − b| >= delta (not between 0 and b) with a benchmark, |g| >= delta without one
    no_se = ~(d["se"] > 0)
    margin, text = _sd_margin(sd, p)
    excess = (g - b).abs().where(two, g - b).where(~between, -np.inf)
    worse_by = excess.where(has_b, size)
    return _margin_decision(out, no_se, worse_by, margin, text)


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
        bench_scope=out["bench_scope"].where(~use_lim, "configured"),
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
    Fires on ``passes == False`` only: a 差异系数 with no verdict there (not computable, or over
    too few of the schools in scope: 数据不全，无法判定) is never a problem."""
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
        benchmark=thr, bench_label="差异系数标准", bench_scope="standard", gap=excess, z=np.nan,
        p_value=np.nan, p_better=np.nan, df=np.nan, reversed=False,
        # judged only where the indicators stage gave a verdict: an earlier RES problem whose
        # 差异系数 has none this round is "not re-measured", never proposed for close-out
        by_threshold=d["passes"].notna().to_numpy(dtype=bool),
        fires_threshold=_passes_false(d["passes"]), extra_ok=True,
        severity=np.where(excess >= p.severity.res_cv_excess_high, "高", "中"),
        bench_rows=[[] for _ in range(len(d))], note="学校办学条件统计（全县普查数据，无抽样误差）",
        threshold=thr, school_name="", own_se=np.nan, margin=np.nan,
        data_missing=d["cv"].isna().to_numpy(),
    )  # fmt: skip


def school_details(row: dict, p: EvidenceParams) -> list[dict]:
    """Each of the seven indicators of one school section: value, standard, share of the standard
    and whether it is met (``value >= standard``, inclusive, as the indicators stage judges)."""
    std = p.resource_thresholds.get(str(row["stage"]), {})
    units = p.rules["RES"].units_by_indicator if "RES" in p.rules else {}
    out = []
    for ind in RESOURCE_INDICATORS:
        v = _scalar(row.get(ind))
        thr = std.get(ind)
        ratio = v / thr if v is not None and thr else None
        u = units.get(ind)
        out.append({
            "indicator": ind, "value": v, "standard": thr, "ratio": ratio,
            "met": None if v is None or thr is None else bool(v >= thr),
            # the unit responsible for this item (a school's task is split per unmet item)
            "lead_unit": u.lead if u else "", "support_units": "、".join(u.support) if u else "",
        })  # fmt: skip
    return out


def rule_school(sc: pd.DataFrame, p: EvidenceParams, city_code: str) -> pd.DataFrame:
    """SCHOOL: a school section failing the 6-of-7 + 85% rule, as judged by the indicators stage
    (``school_compliance.passes``, from ``indicators.school_min_met`` / ``school_min_ratio_unmet``).

    One candidate per school *section*; the sections of a 一贯制 school are merged into one problem
    per school later (:mod:`pipeline.evidence.merge`). Fires on ``passes == False``. Each row's
    record lists the seven values with their standards (``indicators.resource_thresholds``) and
    shares of the standard; a missing value is 无数据, never read as unmet."""
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
    recs = _records(rec, list(rec.columns))
    for r in recs:
        r[0]["details"] = school_details(r[0], p)
    out["rows"] = recs
    incomplete = d[list(RESOURCE_INDICATORS)].isna().any(axis=1)
    note = "学校办学条件统计（普查数据，按学校编号排列，不排名）"
    return out.assign(
        benchmark=np.nan, bench_label="", bench_scope="standard", gap=np.nan, z=np.nan,
        p_value=np.nan, p_better=np.nan, df=np.nan, reversed=False,
        by_threshold=d["passes"].notna().to_numpy(dtype=bool),  # 无法判定: judges nothing
        fires_threshold=fails, extra_ok=True, severity="",
        bench_rows=[[] for _ in range(len(d))],
        note=np.where(incomplete, note + "；有资源配置指标无数据", note),
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
    """Every testable row of every candidate rule, with value, benchmark, test, BH q and ``fires``.

    BH families (one per round): ``q_value`` over every rule test's ``p_value`` (the rules fire on
    it); ``q_better`` over the mirrored one-sided tests ``p_better`` (the reports' 优于 labels)."""
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
        return pd.DataFrame(columns=[*CAND_COLS, "q_value", "q_better", "fires", "decided"])
    c["grade"] = c["grade"].astype("Int64")
    for col in ("value", "benchmark", "gap", "se", "z", "p_value", "p_better", "df", "threshold",
                "own_se", "margin"):  # fmt: skip
        c[col] = pd.to_numeric(c[col], errors="coerce").astype(float)
    for col in ("data_missing", "reversed"):
        c[col] = c[col].fillna(False).astype(bool)
    # BH family: the tests that decide (a rule firing on its value, e.g. ICC, reports its p but
    # stays out of the family, so it cannot dilute the q of the tests that do decide)
    decides = ~c["by_threshold"].astype(bool)
    c["q_value"] = (
        c["p_value"].where(decides).groupby(c["year"]).transform(lambda s: bh_qvalues(s.to_numpy()))
    )
    c["q_better"] = c.groupby("year")["p_better"].transform(lambda s: bh_qvalues(s.to_numpy()))
    sig = (c["q_value"] < params.alpha) & c["extra_ok"].astype(bool)
    c["fires"] = np.where(c["by_threshold"].astype(bool), c["fires_threshold"].astype(bool), sig)
    c["fires"] = c["fires"].astype(bool)
    # judged this round: a rule on the value, a test, or a no-SE margin; a row with no benchmark
    # and no SE judges nothing (its object is not re-measured, never "resolved")
    c["decided"] = c["by_threshold"].astype(bool) | c["p_value"].notna()
    return c
