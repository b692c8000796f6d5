"""Exploration helpers for the analysts' notebooks (``notebooks/*.ipynb``).

The notebooks read only what the pipeline wrote under ``data/processed/`` — the validated tables
(``validated/<table>.parquet``) and the indicator tables (``indicators.parquet``,
``resource_balance.parquet``, ``school_compliance.parquet``) — and keep their cells short by calling
the functions here. The official estimates (design-based, jackknife SEs) live in
``indicators.parquet``; the helpers below are for *exploration*: quick school means with a simple SE,
a one-way ANOVA decomposition, weighted regressions with cluster-robust SEs. Where a notebook shows
a number that also exists in ``indicators.parquet`` it reads it from there.

Privacy and NAEQ rules are built in: :func:`student_scores` drops the (hashed) student id and the
trace columns, every table of schools is sorted by ``school_id`` (never by a result), and groups with
fewer than 10 students or 3 schools are flagged ``suppressed``.

This module must not import :mod:`pipeline.report` (that would add the report stage's code to the
notebooks' dependencies); it keeps its own small font helper, :func:`use_chinese_font`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import PARAMS_FILE, MonitoringParams, Paths, build_params, load_params
from pipeline.errors import EqmError

log = logging.getLogger(__name__)

ROOT_ENV = "EQM_ROOT"
RUN_FIRST = "请先运行 make demo 或 eqm run"
VALIDATED_TABLES = (
    "students", "scores", "schools", "county_reports", "previous_problems", "teachers", "principals",
)  # fmt: skip
PROCESSED_TABLES = ("indicators", "resource_balance", "school_compliance", "factors")
GROUP_KEYS = ("year", "county_code", "grade", "subject")
MIN_STUDENTS = 10  # suppression rule of the data contract: fewer than 10 students ...
MIN_SCHOOLS = 3  # ... or fewer than 3 schools are never shown
FONT_FILE = "NotoSansCJKsc-Regular.otf"  # shipped by mplfonts (SIL OFL)
FONT_NAME = "Noto Sans CJK SC"


# ------------------------------------------------------------------------------------------------
# Where the round lives and reading its processed tables
# ------------------------------------------------------------------------------------------------


def project_root(start: Path | str | None = None) -> Path:
    """The project root: ``$EQM_ROOT`` if set, else the nearest folder holding ``params.yaml``.

    The search walks up from ``start`` (default: the current directory), so a notebook run from
    ``notebooks/`` finds the repository root.
    """
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / PARAMS_FILE).is_file():
            raise EqmError(
                f"环境变量 {ROOT_ENV} 指向的目录 {root} 中没有 {PARAMS_FILE}。",
                hint=f"请把 {ROOT_ENV} 设为项目根目录（含 params.yaml 的目录），或删除该环境变量。",
            )
        return root
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE).is_file():
            return folder
    raise EqmError(
        f"从 {here} 向上找不到含 {PARAMS_FILE} 的项目根目录。",
        hint=f"请在项目目录内打开笔记本，或设置环境变量 {ROOT_ENV}。",
    )


def _root(root: Path | str | None) -> Path:
    return Path(root).resolve() if root is not None else project_root()


def load(table: str, root: Path | str | None = None) -> pd.DataFrame:
    """Read one processed table: a validated input table or one of the indicator tables.

    ``table`` is one of ``students, scores, schools, county_reports, previous_problems`` (read from
    ``data/processed/validated/``) or ``indicators, resource_balance, school_compliance``.
    """
    paths = Paths(_root(root))
    if table in VALIDATED_TABLES:
        path = paths.validated(table)
    elif table in PROCESSED_TABLES:
        path = getattr(paths, table)
    else:
        raise EqmError(
            f"未知的数据表「{table}」；可读取：{', '.join(VALIDATED_TABLES + PROCESSED_TABLES)}。"
        )
    if not paths.processed.is_dir():
        raise EqmError(f"找不到处理后的数据目录 {paths.processed}：{RUN_FIRST}。")
    if not path.is_file():
        raise EqmError(f"找不到 {path}：{RUN_FIRST}（或运行缺失的环节）。")
    return pd.read_parquet(path)


def monitoring(root: Path | str | None = None) -> MonitoringParams:
    """The ``monitoring`` section of the round's ``params.yaml`` (county names, cut scores)."""
    params = load_params(_root(root))
    return build_params(MonitoringParams, params["monitoring"], "monitoring")


def section(name: str, root: Path | str | None = None) -> Mapping[str, Any]:
    """One raw section of ``params.yaml`` (e.g. ``"indicators"``), for showing thresholds."""
    return load_params(_root(root))[name]


def student_scores(year: int | None = None, root: Path | str | None = None) -> pd.DataFrame:
    """Validated scores joined to their students (many scores : one student), ids removed.

    Adds ``score``: the scale score, or where only plausible values are given the mean of
    ``pv1..pvM`` (fine for exploring means; it understates spread — the official estimates in
    ``indicators.parquet`` combine plausible values properly). The hashed ``student_id`` and the
    trace columns ``source_file``/``source_row`` are dropped so no notebook can show them.
    """
    students = load("students", root)
    scores = load("scores", root)
    if year is not None:
        students = students[students["year"] == year]
        scores = scores[scores["year"] == year]
        if students.empty:
            raise EqmError(f"已校验的学生数据中没有 {year} 年的记录。")
    trace = ["source_file", "source_row"]
    try:
        merged = scores.drop(columns=trace, errors="ignore").merge(
            students.drop(columns=trace, errors="ignore"),
            on=["year", "student_id"],
            how="inner",
            validate="m:1",
        )
    except pd.errors.MergeError:
        raise EqmError(
            "已校验的学生数据中同一年份有重复的学生编号，无法与成绩一一对应。",
            hint="请重新运行 eqm validate（或 eqm run），校验会剔除重复记录。",
        ) from None
    log.info("student_scores: %d score rows, %d joined to students", len(scores), len(merged))
    k = len(schemas.PV_PREFIX)
    pvs = sorted(
        (c for c in merged.columns if c.startswith(schemas.PV_PREFIX) and c[k:].isdigit()),
        key=lambda c: int(c[k:]),
    )
    score = merged["scale_score"] if "scale_score" in merged else pd.Series(np.nan, merged.index)
    if pvs:
        score = score.fillna(merged[pvs].mean(axis=1))
    return merged.drop(columns="student_id").assign(score=score.astype("float64"))


def with_labels(df: pd.DataFrame, root: Path | str | None = None) -> pd.DataFrame:
    """Add Chinese labels beside codes: ``county_name``, ``subject_label``, ``grade_label``,
    ``stage_label`` (for the columns present). The pooled code (450100) is labelled with the city."""
    out = df.copy()
    if "county_code" in out:
        mon = monitoring(root)
        names = {**dict(mon.counties), mon.city_code: f"{mon.city_name}（合计）"}
        out["county_name"] = out["county_code"].map(lambda c: names.get(str(c), str(c)))
    if "subject" in out:
        out["subject_label"] = out["subject"].map(lambda s: schemas.SUBJECT_LABELS.get(s, s))
    if "grade" in out:
        out["grade_label"] = out["grade"].map(lambda g: schemas.GRADE_LABELS.get(g, g))
    if "stage" in out:
        out["stage_label"] = out["stage"].map(lambda s: schemas.STAGE_LABELS.get(s, s))
    return out


def official_first(indicators: pd.DataFrame) -> pd.DataFrame:
    """One row per indicator key: the official value where a county report gives one, else computed.

    The domain rule "an official value from a county report wins" applied to ``indicators.parquet``
    (key: year, county, grade, subject, indicator, group). Sorted by key.
    """
    key = [c for c in schemas.INDICATORS.key if c != "source"]
    _check_columns(indicators, [*key, "source"], "指标表")
    rank = (indicators["source"] != "official").astype(int)  # official first
    out = indicators.assign(_r=rank).sort_values([*key, "_r"], kind="stable")
    return out.drop_duplicates(subset=key).drop(columns="_r").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# Descriptive summaries
# ------------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EqmError(f"{what}需要的列不存在：{', '.join(missing)}。")


def _weighted_mean_transform(
    d: pd.DataFrame, keys: list[str], value: str, weight: str
) -> pd.Series:
    """Each row's group weighted mean Σw·y / Σw (aligned to ``d``'s index)."""
    wy = (d[weight] * d[value]).groupby([d[k] for k in keys], observed=True).transform("sum")
    return wy / d.groupby(keys, observed=True)[weight].transform("sum")


def describe_scores(
    df: pd.DataFrame,
    by: Sequence[str] = GROUP_KEYS,
    value: str = "score",
    weight: str = "weight",
    school: str = "school_id",
) -> pd.DataFrame:
    """Weighted mean and SD of ``value`` per group, with counts and the suppression flag.

    mean = Σ wᵢyᵢ / Σ wᵢ; SD = √(Σ wᵢ(yᵢ − mean)² / Σ wᵢ) (population form with normalised weights);
    min / max unweighted. Rows with a missing value or weight are left out. ``suppressed`` marks
    groups with fewer than 10 students or 3 schools (data-contract rule).
    """
    by = list(by)
    _check_columns(df, [*by, value, weight, school], "描述统计")
    d = df.loc[df[value].notna() & df[weight].notna(), [*by, school, value, weight]]
    mean_i = _weighted_mean_transform(d, by, value, weight)
    d = d.assign(_wy=d[weight] * d[value], _wd2=d[weight] * (d[value] - mean_i) ** 2)
    out = d.groupby(by, sort=True, observed=True).agg(
        n_students=(value, "size"),
        n_schools=(school, "nunique"),
        sum_weight=(weight, "sum"),
        _swy=("_wy", "sum"),
        _swd2=("_wd2", "sum"),
        min=(value, "min"),
        max=(value, "max"),
    )
    out["mean"] = out["_swy"] / out["sum_weight"]
    out["sd"] = np.sqrt(out["_swd2"] / out["sum_weight"])
    out["suppressed"] = (out["n_students"] < MIN_STUDENTS) | (out["n_schools"] < MIN_SCHOOLS)
    cols = ["n_students", "n_schools", "mean", "sd", "min", "max", "suppressed"]
    return out[cols].reset_index()


def weight_summary(
    df: pd.DataFrame, by: Sequence[str] = ("year", "county_code", "grade"), weight: str = "weight"
) -> pd.DataFrame:
    """Sampling weights per group: count, total (estimated population), spread and Kish's effect.

    n_eff = (Σw)² / Σw² (Kish's effective sample size); deff_w = n / n_eff = n·Σw² / (Σw)² =
    1 + CV²(w) with the population CV (Kish 1965, *Survey Sampling*, §11.7). A weighting design
    effect far above 1 means a few students carry much of the estimate.
    """
    by = list(by)
    _check_columns(df, [*by, weight], "权重汇总")
    d = df.loc[df[weight].notna(), [*by, weight]]
    d = d.assign(_w2=d[weight] ** 2)
    out = d.groupby(by, sort=True, observed=True).agg(
        n_students=(weight, "size"),
        sum_weight=(weight, "sum"),
        min_weight=(weight, "min"),
        max_weight=(weight, "max"),
        _sw2=("_w2", "sum"),
    )
    out["n_eff"] = out["sum_weight"] ** 2 / out["_sw2"]
    out["deff_weighting"] = out["n_students"] / out["n_eff"]
    return out.drop(columns="_sw2").reset_index()


# ------------------------------------------------------------------------------------------------
# Between-school differences
# ------------------------------------------------------------------------------------------------


def school_means(
    df: pd.DataFrame,
    by: Sequence[str] = GROUP_KEYS,
    value: str = "score",
    weight: str = "weight",
    school: str = "school_id",
    z: float = 1.96,
) -> pd.DataFrame:
    """Weighted mean of ``value`` per school within each group, with a simple SE and CI.

    Method: the weighted (Hájek) mean ȳ_w = Σ wᵢyᵢ / Σ wᵢ over the school's students, with the
    Taylor-linearised with-replacement variance
    v(ȳ_w) = n/(n − 1) · Σ wᵢ²(yᵢ − ȳ_w)² / (Σ wᵢ)²
    (Särndal, Swensson & Wretman 1992, §5.7; R ``survey::svymean`` with ``ids = ~1``). It treats the
    school's students as a simple sample — a *simple* SE for exploring, not the design-based SE.
    CI = ȳ_w ± z·SE. Schools are sorted by ``school_id`` (never by result); ``suppressed`` marks
    schools with fewer than 10 students, whose means must not be shown.
    """
    by = list(by)
    keys = [*by, school]
    _check_columns(df, [*keys, value, weight], "校均分")
    d = df.loc[df[value].notna() & df[weight].notna(), [*keys, value, weight]]
    if (d[weight] <= 0).any():
        raise EqmError("学生权重必须大于 0。", column=weight)
    mean_i = _weighted_mean_transform(d, keys, value, weight)
    d = d.assign(_wy=d[weight] * d[value], _e2=(d[weight] * (d[value] - mean_i)) ** 2)
    out = d.groupby(keys, sort=True, observed=True).agg(
        n_students=(value, "size"), sum_weight=(weight, "sum"), _swy=("_wy", "sum"), _se2=("_e2", "sum")
    )  # fmt: skip
    n = out["n_students"]
    out["mean"] = out["_swy"] / out["sum_weight"]
    var = (n / (n - 1)).where(n > 1) * out["_se2"] / out["sum_weight"] ** 2
    out["se"] = np.sqrt(var)
    out["ci_low"] = out["mean"] - z * out["se"]
    out["ci_high"] = out["mean"] + z * out["se"]
    out["suppressed"] = n < MIN_STUDENTS
    cols = ["n_students", "sum_weight", "mean", "se", "ci_low", "ci_high", "suppressed"]
    return out[cols].reset_index()


def variance_decomposition(
    df: pd.DataFrame,
    by: Sequence[str] = GROUP_KEYS,
    value: str = "score",
    school: str = "school_id",
) -> pd.DataFrame:
    """One-way ANOVA of ``value`` on school within each group (unweighted), three 校际差异率 readings.

    With k schools, nⱼ students in school j, N = Σ nⱼ, school means ȳⱼ and grand mean ȳ:
    MSB = Σ nⱼ(ȳⱼ − ȳ)² / (k − 1), MSW = Σⱼ Σᵢ (yᵢⱼ − ȳⱼ)² / (N − k),
    n₀ = (N − Σ nⱼ² / N) / (k − 1),
    ICC(1) = (MSB − MSW) / (MSB + (n₀ − 1)·MSW)   (Shrout & Fleiss 1979; Bliese 2000),
    η² = SS_between / SS_total,
    CV of school means = √(Σ (nⱼ/N)(ȳⱼ − ȳ)²) / ȳ (student-weighted, population form).
    ICC(1) is the project's default 校际差异率 (domain notes); the official value per county is the
    ``school_difference_rate`` row of ``indicators.parquet``. Example: A = [1, 2, 3], B = [4, 5, 6]
    gives η² = 0.7714, ICC(1) = 0.8065. Undefined quantities (k < 2, N = k, zero variance) are NaN.
    """
    by = list(by)
    keys = [*by, school]
    _check_columns(df, [*keys, value], "方差分解")
    d = df.loc[df[value].notna(), keys + [value]]
    s = d.groupby(keys, sort=True, observed=True)[value].agg(n="size", mean="mean", var="var")
    s["ssw"] = s["var"].fillna(0.0) * (s["n"] - 1)
    s["sum"] = s["n"] * s["mean"]
    g = s.groupby(level=by, sort=True, observed=True)
    out = g.agg(
        n_schools=("n", "size"), n_students=("n", "sum"), ssw=("ssw", "sum"), tot=("sum", "sum")
    )
    grand = out["tot"] / out["n_students"]
    s = s.join(grand.rename("grand"), on=by)
    s["ssb"] = s["n"] * (s["mean"] - s["grand"]) ** 2
    s["n2"] = s["n"] ** 2
    out = out.join(s.groupby(level=by, observed=True)[["ssb", "n2"]].sum())
    k, n_tot = out["n_schools"].astype(float), out["n_students"].astype(float)
    msb = out["ssb"] / (k - 1).where(k > 1)
    msw = out["ssw"] / (n_tot - k).where(n_tot > k)
    n0 = (n_tot - out["n2"] / n_tot) / (k - 1).where(k > 1)
    denom = msb + (n0 - 1) * msw
    sst = out["ssb"] + out["ssw"]
    result = pd.DataFrame(
        {
            "n_schools": out["n_schools"],
            "n_students": out["n_students"],
            "grand_mean": grand,
            "msb": msb,
            "msw": msw,
            "n0": n0,
            "icc1": (msb - msw) / denom.where(denom != 0),
            "eta_squared": out["ssb"] / sst.where(sst > 0),
            "school_mean_cv": np.sqrt(out["ssb"] / n_tot) / grand.where(grand != 0),
            "suppressed": (out["n_schools"] < MIN_SCHOOLS) | (out["n_students"] < MIN_STUDENTS),
        }
    )
    return result.reset_index()


BALANCE_INDICATORS = {
    "icc1": "school_difference_rate",
    "eta_squared": "eta_squared",
    "school_mean_cv": "school_mean_cv",
}  # variance_decomposition column -> indicators.parquet indicator id


def balance_side_by_side(decomposition: pd.DataFrame, indicators: pd.DataFrame) -> pd.DataFrame:
    """The three 校际差异率 readings of :func:`variance_decomposition` beside the stage's values.

    For each group not suppressed: ``icc1``, ``eta_squared``, ``school_mean_cv`` as recomputed here
    and ``indicator_<id>`` from ``indicators.parquet`` (whole-population rows, official value first,
    suppressed rows left out). Equal definitions give equal numbers; a difference means another
    definition or an official value.
    """
    keys = [k for k in GROUP_KEYS if k in decomposition.columns]
    mine = decomposition.loc[~decomposition["suppressed"].astype(bool)].set_index(keys)
    ind = official_first(indicators)
    ind = ind.loc[
        ind["indicator"].isin(BALANCE_INDICATORS.values())
        & (ind["group_var"] == "")
        & ~ind["suppressed"].astype(bool)
    ]
    theirs = ind.pivot_table(index=keys, columns="indicator", values="estimate", sort=True)
    theirs = theirs.reindex(columns=list(BALANCE_INDICATORS.values())).add_prefix("indicator_")
    return mine[list(BALANCE_INDICATORS)].join(theirs, how="left").sort_index()


# ------------------------------------------------------------------------------------------------
# Factors that go with scores
# ------------------------------------------------------------------------------------------------


TERM_LABELS = {
    "ses": "家庭社会经济文化地位（每 1 个标准差）",
    "I(homework_minutes / 10)": "每天书面作业时间（每 10 分钟）",
    "sleep_hours": "每天睡眠时间（每 1 小时）",
    "left_behind": "留守儿童",
    "migrant": "随迁子女",
    "myopia": "视力不良",
    "I(fitness_score / 10)": "体质健康总分（每 10 分）",
    "C(gender, Treatment('male'))[T.female]": "女生（相对男生）",
    "C(urban_rural, Treatment('urban'))[T.town]": "镇区（相对城区）",
    "C(urban_rural, Treatment('urban'))[T.rural]": "乡村（相对城区）",
}  # Chinese labels of the factor terms the notebooks use (statsmodels term names as keys)


@dataclass(frozen=True)
class RegressionResult:
    """A weighted regression with cluster-robust SEs: tidy coefficient table plus fit facts."""

    table: pd.DataFrame  # term, estimate, se, ci_low, ci_high, p_value
    n_obs: int
    n_clusters: int
    r_squared: float
    result: Any  # the statsmodels results object, for anything else


def _model_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes for the formula engine: nullable booleans/numbers → float with NaN,
    strings → object with None (patsy rejects pandas' extension dtypes)."""
    out = {}
    for name, col in df.items():
        if isinstance(col.dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(col.dtype):
            out[name] = col.astype("Float64").astype("float64")
        elif pd.api.types.is_numeric_dtype(col.dtype):
            out[name] = col.astype("float64")
        else:
            out[name] = col.astype(object).where(col.notna(), None)
    return pd.DataFrame(out, index=df.index)


def factor_regression(
    df: pd.DataFrame,
    formula: str,
    weight: str = "weight",
    cluster: str = "school_id",
    alpha: float = 0.05,
) -> RegressionResult:
    """Weighted least squares of a score on questionnaire factors, SEs robust to school clustering.

    Method: β̂ = (X'WX)⁻¹X'Wy with W = diag(student weights) (statsmodels ``WLS``); covariance the
    cluster-robust sandwich (CRV1) with schools as clusters,
    V = c · (X'WX)⁻¹ [Σ_g (X_g'W_g e_g)(X_g'W_g e_g)'] (X'WX)⁻¹, c = G/(G − 1) · (N − 1)/(N − K),
    and t inference on G − 1 degrees of freedom (Cameron & Miller 2015, *J. Human Resources* 50(2)).
    N counts the students and G the schools left after dropping rows with a missing value in any
    formula variable, the weight or the cluster; K is the number of coefficients.
    Same numbers as R ``lm(formula, weights = w)`` with
    ``sandwich::vcovCL(fit, cluster = ~school, type = "HC1")`` and
    ``lmtest::coeftest(fit, vcov. = V, df = G - 1)`` (Stata ``regress [pw = w], vce(cluster)``);
    checked in ``tests/fixtures/r/make_explore_fixture.R``. It is *not* R ``survey::svyglm`` with
    ``svydesign(ids = ~school, weights = ~w)``: the coefficients agree, but svyglm's SEs lack the
    factor (N − 1)/(N − K) (they are smaller by √((N − K)/(N − 1))) and its t tests use G − K df.
    Neither accounts for the county strata; the official design-based (JKn) estimates are those
    of ``indicators.parquet``.
    Associations, not effects: a coefficient says how scores differ with the factor, other terms
    held fixed.
    """
    import statsmodels.formula.api as smf  # heavy import, only when regressing

    _check_columns(df, [weight, cluster], "回归")
    d = _model_frame(df[df[weight].notna() & df[cluster].notna()])
    if (d[weight] <= 0).any():
        raise EqmError("学生权重必须大于 0。", column=weight)
    try:
        model = smf.wls(formula, data=d, weights=d[weight], missing="drop")
    except Exception as exc:  # patsy/formulaic raise many types for a bad formula
        raise EqmError(
            f"回归公式「{formula}」无法解析：{exc}", hint="请检查变量名与公式写法。"
        ) from None
    rows = model.data.row_labels
    groups = pd.factorize(d.loc[rows, cluster])[0]
    n_clusters = int(groups.max()) + 1 if len(groups) else 0
    if n_clusters < 2 or len(rows) <= len(model.exog_names):
        raise EqmError(
            f"回归「{formula}」的有效样本不足（{len(rows)} 名学生，{n_clusters} 所学校）。",
            hint="请放宽筛选条件或减少自变量。",
        )
    res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    ci = res.conf_int(alpha=alpha)
    table = pd.DataFrame(
        {
            "term": res.params.index,
            "estimate": res.params.to_numpy(),
            "se": res.bse.to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
            "p_value": res.pvalues.to_numpy(),
        }
    )
    return RegressionResult(table, int(res.nobs), n_clusters, float(res.rsquared), res)


def factor_regressions(
    df: pd.DataFrame,
    formula: str,
    by: Sequence[str] = ("year", "grade", "subject"),
    min_schools: int = 10,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`factor_regression` per group, in one long table with Benjamini–Hochberg q-values.

    Groups with fewer than ``min_schools`` schools are skipped (cluster-robust SEs need many
    clusters). ``q_value`` controls the false discovery rate over every non-intercept coefficient
    of the table (Benjamini & Hochberg 1995; statsmodels ``multipletests(method="fdr_bh")``).
    """
    from statsmodels.stats.multitest import multipletests

    by = list(by)
    cluster = kwargs.get("cluster", "school_id")
    _check_columns(df, [*by, cluster], "分组回归")
    parts = []
    for key, part in df.groupby(by, sort=True, observed=True):
        if part[cluster].nunique() < min_schools:
            log.warning("skipping %s: fewer than %d schools", key, min_schools)
            continue
        fit = factor_regression(part, formula, **kwargs)
        t = fit.table.assign(n_obs=fit.n_obs, n_clusters=fit.n_clusters, r_squared=fit.r_squared)
        parts.append(t.assign(**dict(zip(by, key, strict=True))))
    if not parts:
        raise EqmError(f"没有任何分组有至少 {min_schools} 所学校，无法做分组回归。")
    out = pd.concat(parts, ignore_index=True)
    out = out[by + [c for c in out.columns if c not in by]]
    slope = out["term"] != "Intercept"
    out["q_value"] = np.nan
    if slope.any():
        out.loc[slope, "q_value"] = multipletests(out.loc[slope, "p_value"], method="fdr_bh")[1]
    return out


def factor_table(fits: pd.DataFrame, labels: Mapping[str, str] = TERM_LABELS) -> pd.DataFrame:
    """The factor rows of a :func:`factor_regressions` table, for reading: only terms with a
    label (intercept and fixed effects dropped), a ``factor`` column with the Chinese label, rows
    in group order then in the order of ``labels``."""
    order = {term: i for i, term in enumerate(labels)}
    keys = [c for c in fits.columns if c in ("year", "county_code", "grade", "subject")]
    out = fits.loc[fits["term"].isin(labels)].assign(
        factor=lambda x: x["term"].map(labels), _o=lambda x: x["term"].map(order)
    )
    return out.sort_values([*keys, "_o"]).drop(columns="_o").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# Resource indicators per school
# ------------------------------------------------------------------------------------------------


def resource_thresholds(root: Path | str | None = None) -> pd.DataFrame:
    """Per-school thresholds of L1…L7 by stage from ``params.yaml`` (``indicators.resource_thresholds``,
    2017 优质均衡 办法), as columns stage, indicator, threshold."""
    table = section("indicators", root).get("resource_thresholds")
    if not isinstance(table, Mapping) or not table:
        raise EqmError(
            "params.yaml 的 indicators.resource_thresholds 缺失：找不到 L1–L7 的学校达标标准。",
            file=PARAMS_FILE,
            hint="请对照仓库中的 params.yaml 补上资源配置指标的标准值。",
        )
    rows = [
        {"stage": str(stage), "indicator": str(ind), "threshold": float(value)}
        for stage, per in table.items()
        for ind, value in per.items()
    ]
    return pd.DataFrame(rows).sort_values(["stage", "indicator"], ignore_index=True)


def school_resources(compliance: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """School compliance in long form (one row per school × indicator) with its threshold.

    ratio = value / threshold; ``met`` = value ≥ threshold (inclusive, 2017 办法). Sorted by
    year, county, stage, school_id, indicator — never by result.
    """
    inds = [i for i in schemas.RESOURCE_INDICATORS if i in compliance.columns]
    ids = [
        c for c in ("year", "county_code", "school_id", "school_name", "stage") if c in compliance
    ]
    long = compliance.melt(id_vars=ids, value_vars=inds, var_name="indicator", value_name="value")
    long = long.merge(thresholds, on=["stage", "indicator"], how="left", validate="m:1")
    long["ratio"] = long["value"] / long["threshold"]
    long["met"] = long["value"] >= long["threshold"]
    keys = [c for c in ("year", "county_code", "stage", "school_id", "indicator") if c in long]
    return long.sort_values(keys, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Charts
# ------------------------------------------------------------------------------------------------


def use_chinese_font() -> str:
    """Register Noto Sans CJK SC (shipped by ``mplfonts``) with matplotlib and make it the default.

    Uses ``fontManager.addfont`` only: it never runs ``mplfonts init`` (which rewrites matplotlib's
    files) and never uses mplfonts' bundled SimHei (not freely licensed). Returns the font name.
    """
    import matplotlib as mpl
    import mplfonts
    from matplotlib import font_manager

    path = Path(mplfonts.__file__).parent / "fonts" / FONT_FILE
    if not path.is_file():
        raise EqmError(f"找不到中文字体文件 {path}。", hint="请重新运行 make install。")
    font_manager.fontManager.addfont(str(path))
    name = font_manager.FontProperties(fname=str(path)).get_name()
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = [name, *mpl.rcParams["font.sans-serif"]]
    mpl.rcParams["axes.unicode_minus"] = False
    return name


def plot_boxes(df: pd.DataFrame, by: str, value: str = "score", ax=None, title: str | None = None):
    """Unweighted box plots of ``value`` per value of ``by`` (e.g. county name or school id).

    Boxes appear in the sorted order of ``by`` — never ordered by result — and groups with fewer
    than 10 students are left out (suppression rule).
    """
    import matplotlib.pyplot as plt

    d = df.loc[df[value].notna(), [by, value]]
    sizes = d.groupby(by, sort=True, observed=True).size()
    keep = sizes.index[sizes >= MIN_STUDENTS]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(keep) + 1.5), 3.2))
    data = [d.loc[d[by] == k, value].to_numpy() for k in keep]
    if data:
        ax.boxplot(data, tick_labels=[str(k) for k in keep], showfliers=False)
    ax.tick_params(axis="x", labelrotation=90 if len(keep) > 8 else 0, labelsize=8)
    ax.set_ylabel("成绩（未加权）")
    if title:
        ax.set_title(title)
    return ax


def plot_school_means(means: pd.DataFrame, ax=None, title: str | None = None, school="school_id"):
    """School means with their CIs in ``school_id`` order (not a caterpillar plot, which ranks).

    Suppressed schools (fewer than 10 students) are left out; a dashed line marks the
    student-weighted mean of the schools shown. ``means`` is one group of :func:`school_means`.
    """
    import matplotlib.pyplot as plt

    shown = means.loc[~means["suppressed"]].sort_values(school)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(shown) + 1.5), 3.2))
    x = np.arange(len(shown))
    ax.errorbar(
        x,
        shown["mean"],
        yerr=[shown["mean"] - shown["ci_low"], shown["ci_high"] - shown["mean"]],
        fmt="o",
        ms=4,
        capsize=2,
    )
    if len(shown):
        overall = np.average(shown["mean"], weights=shown["sum_weight"])
        ax.axhline(overall, ls="--", lw=1, color="grey")
    ax.set_xticks(x, shown[school].astype(str), rotation=90, fontsize=7)
    ax.set_xlabel("学校编号（按编号排列，不排名）")
    ax.set_ylabel("校均分及 95% 置信区间")
    if title:
        ax.set_title(title)
    return ax


def plot_resource_ratios(
    resources: pd.DataFrame, min_ratio: float, by: str = "county_name", title: str | None = None
):
    """One panel per indicator L1…L7: each school's value ÷ threshold, one column of dots per
    ``by`` value (sorted), a solid line at 1 (met) and a dashed line at ``min_ratio`` (the 85 %
    floor for unmet indicators). Dots are not ordered by result. Returns the figure."""
    import matplotlib.pyplot as plt

    inds = sorted(resources["indicator"].unique())
    fig, axes = plt.subplots(
        1, len(inds), figsize=(2.6 * len(inds), 3.2), sharey=True, squeeze=False
    )
    for ax, ind in zip(axes[0], inds, strict=True):
        part = resources.loc[resources["indicator"] == ind]
        cats = sorted(part[by].astype(str).unique())
        x = part[by].astype(str).map({c: i for i, c in enumerate(cats)})
        ax.plot(x, part["ratio"], "o", ms=3, alpha=0.6)
        ax.axhline(1.0, color="green", lw=1)
        ax.axhline(min_ratio, color="red", ls="--", lw=1)
        ax.set_xticks(range(len(cats)), cats, rotation=90, fontsize=8)
        ax.set_xlim(-0.5, len(cats) - 0.5)
        ax.set_title(ind)
    axes[0][0].set_ylabel("指标值 ÷ 标准值")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_coefficients(table: pd.DataFrame, ax=None, title: str | None = None, labels=None):
    """Forest plot of regression coefficients with CIs (intercept left out), in table order."""
    import matplotlib.pyplot as plt

    t = table.loc[table["term"] != "Intercept"]
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 0.4 * len(t) + 1.2))
    y = np.arange(len(t))[::-1]
    ax.errorbar(
        t["estimate"],
        y,
        xerr=[t["estimate"] - t["ci_low"], t["ci_high"] - t["estimate"]],
        fmt="o",
        ms=4,
        capsize=2,
    )
    ax.axvline(0, ls="--", lw=1, color="grey")
    names = [(labels or {}).get(term, term) for term in t["term"]]
    ax.set_yticks(y, names)
    ax.set_xlabel("系数及 95% 置信区间（分）")
    if title:
        ax.set_title(title)
    return ax


def plot_levels(levels: pd.DataFrame, label: str, ax=None, title: str | None = None):
    """Stacked horizontal bars of the level shares (percent) from ``indicators.parquet``.

    ``levels`` holds the ``pct_level_I`` … ``pct_level_IV`` rows (columns ``indicator``,
    ``estimate`` and ``label``, the row label, e.g. a county name); suppressed rows are dropped.
    """
    import matplotlib.pyplot as plt

    d = levels.loc[~levels["suppressed"].astype(bool)]
    wide = d.pivot_table(index=label, columns="indicator", values="estimate", sort=True)
    cols = [f"pct_level_{lv}" for lv in schemas.LEVELS if f"pct_level_{lv}" in wide]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.45 * len(wide) + 1.3))
    left = np.zeros(len(wide))
    for col in cols:
        lv = col.removeprefix("pct_level_")
        ax.barh(wide.index.astype(str), wide[col], left=left, label=schemas.LEVEL_LABELS[lv])
        left += wide[col].fillna(0).to_numpy()
    ax.set_xlabel("学生比例（%）")
    ax.set_xlim(0, 100)
    ax.legend(ncols=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    if title:
        ax.set_title(title)
    return ax
