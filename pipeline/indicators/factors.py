"""Related factors (相关因素): achievement and questionnaire factors on the JKn replicate design.

Two estimators, both design-based on the replicate design of :mod:`pipeline.indicators.survey`
(strata = county, PSU = school, final student weight ``w``; replicate ``(h, s)`` drops school ``s``
of county ``h`` and multiplies the weights of the other schools of ``h`` by ``c_h = n_h/(n_h − 1)``;
``V = Σ_h (n_h − 1)/n_h · Σ_s (θ_(hs) − θ)²``, centred on the full-sample estimate, R survey's
``as.svrepdesign(type = "JKn", mse = TRUE)``), each fitted once per plausible value and combined
with Rubin's rules:

* :func:`replicate_regression` — weighted least squares of a score on factors (R ``svyglm``), with
  :func:`factor_association` running it with and without SES controls on one sample;
* :func:`two_level_decomposition` — students in schools: between- and within-school variance, the
  share between (ICC) and a random-intercept regression on school factors, by pseudo-ML.

Inputs are student rows (one per student, ``weight > 0``); a row with a missing outcome or term is
left out of the fit, but its school stays a PSU of the design (R drops rows, never replicates: a
school whose rows are all incomplete still has its replicate, where the other schools of its
county are reweighted). Terms are numeric columns (a binary factor coded 0/1); an intercept is
always added and named ``Intercept``. The design df is that of :func:`survey.design_df`: schools
with a complete row minus the counties with one (R's ``degf`` counts every school of the design).

Coefficients describe associations (how scores differ with a factor, other terms fixed), never
effects. A teacher or principal questionnaire enters as a school attribute copied onto the school's
students: the estimand is then "students in schools with this attribute", not a teacher sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import EqmError
from pipeline.indicators.scores import make_design
from pipeline.indicators.survey import JKnDesign, design_df, rubin, t_p_value

log = logging.getLogger(__name__)

__all__ = [
    "RegressionFit",
    "TwoLevelFit",
    "factor_association",
    "replicate_regression",
    "two_level_decomposition",
]

INTERCEPT = "Intercept"
MAX_CONDITION = 1e10  # X'WX (scaled to unit diagonal) above this is treated as singular
GAMMA_GRID = np.concatenate([[0.0], np.geomspace(1e-6, 1e4, 36)])  # τ²/σ², ICC 0 … 0.9999
ROOT_STEPS = 24  # Illinois steps in the bracket (superlinear: ~1e-15 of γ well before the last)


# ------------------------------------------------------------------------------------------------
# Shared preparation
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    """Complete rows of one analysis, with the design of all rows (PSUs sorted by stratum)."""

    design: JKnDesign
    psu: np.ndarray  # (n,) PSU of each complete row
    w: np.ndarray  # (n,) final student weight
    x: np.ndarray  # (n, p) intercept first, then the terms
    y: np.ndarray  # (n, M) outcomes (plausible values)
    terms: tuple[str, ...]  # (Intercept, *terms)
    outcomes: tuple[str, ...]
    n_schools: int
    n_strata: int
    df: float


def _prepare(
    df: pd.DataFrame,
    outcomes: str | Sequence[str],
    terms: Sequence[str],
    strata: str,
    psu: str,
    weight: str,
    what: str,
) -> _Sample:
    outcomes = (outcomes,) if isinstance(outcomes, str) else tuple(outcomes)
    terms = tuple(terms)
    if not outcomes:
        raise ValueError("at least one outcome column is required")
    names = [*outcomes, *terms]
    if len(set(names)) != len(names) or INTERCEPT in terms:
        raise ValueError("outcomes and terms must be distinct columns (the intercept is implicit)")
    missing = [c for c in dict.fromkeys([strata, psu, weight, *names]) if c not in df.columns]
    if missing:
        raise EqmError(
            f"{what}缺少列：{'、'.join(missing)}。", hint="请检查列名，或先运行 eqm validate。"
        )
    for col in (strata, psu):
        if df[col].isna().any():
            raise EqmError(
                f"{what}：{int(df[col].isna().sum())} 行的「{col}」为空，无法确定区县或学校。",
                column=col,
                hint="请先运行 eqm validate，剔除这些行。",
            )
    w = pd.to_numeric(df[weight], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        raise EqmError(
            f"{what}：{int(bad.sum())} 行的学生权重不是大于 0 的数。",
            column=weight,
            hint="请先运行 eqm validate（规则 weight_invalid 会剔除这些行）。",
        )
    for col in names:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            raise EqmError(
                f"{what}：列「{col}」不是数值列。",
                column=col,
                hint="因素须为数值；二分类因素（如是否参加校外培训）请编码为 0/1。",
            )
    values = df[names].to_numpy(dtype=float, na_value=np.nan)
    complete = np.isfinite(values).all(axis=1)
    design, psu_all, _ = make_design(df[strata].to_numpy(object), df[psu].to_numpy(object))
    rows = psu_all[complete]
    has_data = np.bincount(rows, minlength=design.S) > 0
    per_stratum = np.bincount(design.stratum, weights=has_data, minlength=design.H)
    p = 1 + len(terms)
    if complete.sum() <= p or has_data.sum() < 2:
        raise EqmError(
            f"{what}：有效样本不足（{int(complete.sum())} 名学生、{int(has_data.sum())} 所学校的"
            f"结果变量与因素均不缺失），无法估计 {p} 个系数。",
            hint="请减少因素个数或合并更多学校的数据。",
        )
    y = values[complete, : len(outcomes)]
    x = np.column_stack([np.ones(int(complete.sum())), values[complete, len(outcomes) :]])
    return _Sample(
        design=design,
        psu=rows,
        w=w[complete],
        x=x,
        y=y,
        terms=(INTERCEPT, *terms),
        outcomes=outcomes,
        n_schools=int(has_data.sum()),
        n_strata=int((per_stratum > 0).sum()),
        df=float(design_df(per_stratum)[-1]),
    )


def _school_sums(z: np.ndarray, w: np.ndarray, psu: np.ndarray, n_psu: int) -> np.ndarray:
    """``(S, q, q)`` per-school weighted cross-products ``Σ_{i∈s} w_i z_i z_i'``."""
    q = z.shape[1]
    out = np.empty((n_psu, q, q))
    for a, b in zip(*np.triu_indices(q), strict=True):
        out[:, a, b] = out[:, b, a] = np.bincount(
            psu, weights=w * z[:, a] * z[:, b], minlength=n_psu
        )
    return out


def _singular(a: np.ndarray) -> np.ndarray:
    """True where a stacked symmetric PSD matrix ``(..., p, p)`` is numerically singular."""
    d = np.sqrt(np.clip(np.diagonal(a, axis1=-2, axis2=-1), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = a / (d[..., :, None] * d[..., None, :])
    ok = np.isfinite(scaled).all(axis=(-2, -1)) & (d > 0).all(axis=-1)
    cond = np.full(ok.shape, np.inf)
    if ok.any():
        cond[ok] = np.linalg.cond(scaled[ok])
    return ~(cond < MAX_CONDITION)


def _collinear(sample: _Sample, what: str) -> EqmError:
    return EqmError(
        f"{what}：因素 {'、'.join(sample.terms[1:]) or '（无）'} 之中有的没有变化，或与其他因素"
        "完全共线，无法估计系数。",
        hint="请去掉取值全相同的因素或重复的因素。",
    )


def _jkn_var(design: JKnDesign, full: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """JKn variance (mse = TRUE) of statistics ``full (...)`` from replicates ``reps (S, ...)``."""
    dev = reps - full[None]
    scale = design.rscale.reshape((-1,) + (1,) * (dev.ndim - 1))
    return (scale * dev**2).sum(axis=0)


def _warn_singular(bad: np.ndarray, what: str) -> None:
    if bad.any():
        log.warning(
            "%s: %d jackknife replicate(s) have a singular design matrix; SEs set to NaN",
            what,
            int(bad.sum()),
        )


# ------------------------------------------------------------------------------------------------
# Single-level regression
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionFit:
    """Result of :func:`replicate_regression`.

    ``table``: one row per coefficient (``Intercept`` first, then the terms in the order given):
    ``term, estimate, se, df, t_value, p_value`` (Rubin-combined; t on the design df).
    ``vcov``: the combined covariance matrix (terms × terms). ``r_squared``/``r_squared_se``: mean
    over PVs of the full-sample weighted R², and its JKn + Rubin SE. ``per_pv``: ``outcome, term,
    estimate, se`` per plausible value (terms and ``r_squared``).
    """

    table: pd.DataFrame
    vcov: pd.DataFrame
    r_squared: float
    r_squared_se: float
    per_pv: pd.DataFrame
    n_obs: int
    n_schools: int
    n_strata: int
    df: float


def replicate_regression(
    df: pd.DataFrame,
    outcomes: str | Sequence[str],
    terms: Sequence[str],
    *,
    strata: str = "county_code",
    psu: str = "school_id",
    weight: str = "weight",
) -> RegressionFit:
    """Weighted least squares of achievement on factors, JKn replicate SEs, PVs by Rubin's rules.

    Method
    ------
    Per plausible value ``m``, ``β̂_m = (X'WX)⁻¹ X'W y_m`` with ``W = diag(w)`` (an intercept plus
    ``terms``); units: score points per unit of each term. The cross-products are sums over
    schools, ``X'WX = Σ_s A_s`` and ``X'Wy = Σ_s b_s``, so replicate ``(h, s)`` needs no refit
    from rows: ``A_(hs) = T − A_h + c_h (A_h − A_s)`` (``T`` the total, ``A_h`` county ``h``'s sum,
    likewise ``b``), all replicates solved at once as a stack of ``p × p`` systems. (X and y are
    centred on their full-sample weighted means first, for conditioning; the intercept is mapped
    back exactly.) ``V_m = Σ_(hs) (n_h − 1)/n_h (β̂_(hs) − β̂_m)(β̂_(hs) − β̂_m)'`` (mse = TRUE);
    a county with one school contributes no replicate. PVs: ``β̂ = mean β̂_m``, ``V = mean V_m +
    (1 + 1/M) B`` with ``B`` the between-PV covariance (Rubin 1987, *Multiple Imputation for
    Nonresponse in Surveys*; ``mitools::MIcombine``). df = the design df (schools with data −
    counties with data), t tests on it. A replicate whose ``X'WX`` is singular (e.g. a 0/1
    factor present in one school only, which that replicate drops) gives NaN SEs, with a warning.

    R² (share of variance explained): per PV the weighted R² of the full-sample fit,
    ``1 − Σ w e² / Σ w (y − ȳ_w)²``; reported as the mean over PVs, with SE from the same
    replicates (each replicate's own fit and weighted mean) and Rubin's rules.

    Same numbers as R ``svyglm(pv ~ terms, as.svrepdesign(svydesign(ids = ~school,
    strata = ~county, weights = ~w), type = "JKn", mse = TRUE))`` per PV, combined with
    ``MIcombine`` (``tests/fixtures/r/make_factors_fixture.R``). Reference: Lumley 2010, *Complex
    Surveys*, §2.8 (replicate weights) and ch. 5 (regression); Wolter 2007, ch. 4.

    ``outcomes``: one score column or the PV columns. Rows missing any outcome or term are left out
    (their schools stay in the design). Raises :class:`EqmError` for missing columns, weights not
    above 0, non-numeric terms, too few rows, or terms that are constant or collinear.
    """
    what = "因素回归"
    s = _prepare(df, outcomes, terms, strata, psu, weight, what)
    d = s.design
    p, m = s.x.shape[1], s.y.shape[1]
    wsum = s.w.sum()
    shift_x = np.concatenate([[0.0], (s.w @ s.x[:, 1:]) / wsum])
    shift_y = (s.w @ s.y) / wsum
    crs = _school_sums(np.hstack([s.x - shift_x, s.y - shift_y]), s.w, s.psu, d.S)
    total = crs.sum(axis=0)
    own = d.stratum_sum(crs)[d.stratum]
    reps = total - own + d.factor[:, None, None] * (own - crs)
    reps[d.n_h[d.stratum] == 1] = total  # a lone school: no replicate
    all_ = np.concatenate([total[None], reps])  # (1 + S, q, q): full sample first
    a, b = all_[:, :p, :p], all_[:, :p, p:]
    bad = _singular(a)
    if bad[0]:
        raise _collinear(s, what)
    _warn_singular(bad, what)
    a = np.where(bad[:, None, None], all_[0, :p, :p], a)
    coef = np.linalg.solve(a, b)  # (1 + S, p, M), centred
    syy = np.diagonal(all_[:, p:, p:], axis1=1, axis2=2)
    sst = syy - all_[:, 0, p:] ** 2 / all_[:, 0, 0, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - (syy - np.einsum("rpm,rpm->rm", b, coef)) / sst  # (1 + S, M)
    coef[:, 0, :] += shift_y - np.einsum("a,ram->rm", shift_x[1:], coef[:, 1:, :])
    coef[bad] = np.nan
    r2[bad] = np.nan
    dev = coef[1:] - coef[0][None]  # (S, p, M)
    vcov_m = np.einsum("s,sam,sbm->mab", d.rscale, dev, dev)  # (M, p, p)
    var_r2 = _jkn_var(d, r2[0], r2[1:])
    est_m = coef[0].T  # (M, p)
    est = est_m.mean(axis=0)
    vcov = vcov_m.mean(axis=0)
    if m > 1:
        vcov = vcov + (1.0 + 1.0 / m) * np.cov(est_m, rowvar=False, ddof=1).reshape(p, p)
    r2_est, r2_var = rubin(r2[0], var_r2)
    se = np.sqrt(np.diagonal(vcov))
    with np.errstate(invalid="ignore", divide="ignore"):
        t_value = est / se
    table = pd.DataFrame(
        {
            "term": list(s.terms),
            "estimate": est,
            "se": se,
            "df": s.df,
            "t_value": t_value,
            "p_value": t_p_value(est, se, np.full(p, s.df)),
        }
    )
    se_m = np.sqrt(np.diagonal(vcov_m, axis1=1, axis2=2))  # (M, p)
    per_pv = pd.DataFrame(
        {
            "outcome": np.repeat(s.outcomes, p + 1),
            "term": list(s.terms + ("r_squared",)) * m,
            "estimate": np.column_stack([est_m, r2[0]]).ravel(),
            "se": np.column_stack([se_m, np.sqrt(var_r2)]).ravel(),
        }
    )
    return RegressionFit(
        table=table,
        vcov=pd.DataFrame(vcov, index=list(s.terms), columns=list(s.terms)),
        r_squared=float(r2_est),
        r_squared_se=float(np.sqrt(r2_var)),
        per_pv=per_pv,
        n_obs=len(s.w),
        n_schools=s.n_schools,
        n_strata=s.n_strata,
        df=s.df,
    )


def factor_association(
    df: pd.DataFrame,
    outcomes: str | Sequence[str],
    factors: Sequence[str],
    controls: Sequence[str] = ("ses",),
    *,
    strata: str = "county_code",
    psu: str = "school_id",
    weight: str = "weight",
) -> pd.DataFrame:
    """:func:`replicate_regression` of achievement on ``factors`` without and with ``controls``.

    Both models are fitted on the same students: those with every outcome, factor and control
    present (so a change in a coefficient reflects the adjustment, not a change of sample).
    Returns one long table: ``model`` (``unadjusted``, ``adjusted``), then the columns of
    :attr:`RegressionFit.table`, and ``r_squared, r_squared_se, n_obs, n_schools`` of the model;
    rows in that model order, terms in fit order.
    """
    factors, controls = list(factors), list(controls)
    if not factors or not controls:
        raise ValueError("factor_association needs at least one factor and one control")
    missing = [c for c in [*factors, *controls] if c not in df.columns]
    if missing:
        raise EqmError(f"因素回归缺少列：{'、'.join(missing)}。", hint="请检查列名。")
    keep = df[[*factors, *controls]].notna().all(axis=1)
    # the rows left out stay in the design (their schools keep their replicates): blank a factor
    first = df[factors[0]]
    if pd.api.types.is_bool_dtype(first):
        first = first.astype(float)
    data = df.assign(**{factors[0]: first.where(keep)})
    out = []
    for model, used in (("unadjusted", factors), ("adjusted", [*factors, *controls])):
        fit = replicate_regression(data, outcomes, used, strata=strata, psu=psu, weight=weight)
        out.append(
            fit.table.assign(
                model=model,
                r_squared=fit.r_squared,
                r_squared_se=fit.r_squared_se,
                n_obs=fit.n_obs,
                n_schools=fit.n_schools,
            )
        )
    table = pd.concat(out, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]]


# ------------------------------------------------------------------------------------------------
# Two-level (random intercept) model
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoLevelFit:
    """Result of :func:`two_level_decomposition`.

    ``table``: ``model, statistic, estimate, se, df, p_value``. Model ``null`` (intercept only):
    ``tau2`` (between-school variance), ``sigma2`` (within-school variance), ``icc``
    (τ²/(τ² + σ²), the share between), ``Intercept``. Model ``conditional`` (when terms are
    given): the same (τ² now the residual between-school variance) plus one row per term and
    ``between_explained`` = 1 − τ²_conditional/τ²_null (share of the between-school variance
    accounted for by the terms; NaN when τ²_null is 0, its SE NaN when τ²_null is 0 in a
    replicate; negative when student-level terms raise τ²). ``p_value`` (t on the design df) only for the fixed effects.
    ``per_pv``: ``model, outcome, statistic, estimate, se`` per plausible value.
    """

    table: pd.DataFrame
    per_pv: pd.DataFrame
    n_obs: int
    n_schools: int
    n_strata: int
    df: float


def two_level_decomposition(
    df: pd.DataFrame,
    outcomes: str | Sequence[str],
    terms: Sequence[str] = (),
    *,
    strata: str = "county_code",
    psu: str = "school_id",
    weight: str = "weight",
) -> TwoLevelFit:
    """Between/within-school variance of achievement and a random-intercept regression, by school.

    Model
    -----
    ``y_ij = x_ij'β + u_j + e_ij``, ``u_j ~ N(0, τ²)`` (school ``j``), ``e_ij ~ N(0, σ²)``; the
    null model has ``x_ij = 1``, the conditional model adds ``terms`` (meant for school-level
    factors, e.g. a principal-questionnaire index copied to the school's students; student-level
    terms are allowed). Estimated by maximum likelihood (ML, not REML: lme4's
    ``lmer(y ~ x + (1 | school), REML = FALSE)``), as pseudo-ML under the weights below.

    How the weights enter (Pfeffermann et al. 1998, *JRSS B* 60(1): 23–40; Rabe-Hesketh &
    Skrondal 2006, *JRSS A* 169(4): 805–827, "method 2"): the final weight is split as
    ``w_ij = a_j · w_i|j`` with school weight ``a_j = W_j / n_j`` (the mean final weight of the
    school's ``n_j`` sampled students) and level-1 weights scaled to the cluster size,
    ``λ_ij = n_j w_ij / W_j`` (``Σ_i λ_ij = n_j``; all 1 when weights are equal within the school).
    The pseudo-log-likelihood ``Σ_j a_j log ∫ Π_i f(y_ij | u)^λ_ij φ(u; 0, τ²) du`` has the closed
    form (``r = y − x'β``, ``r̄_j``/``Q_j`` the λ-weighted mean and sum of squares about it,
    ``d_j = γ + 1/n_j``, ``γ = τ²/σ²``, ``N = Σ a_j n_j``)
    ``ℓ = −N/2 log σ² − ½ Σ a_j log d_j − Σ a_j (Q_j + r̄_j²/d_j) / (2σ²)``.
    Given γ, β is generalised least squares and ``σ² = S/N`` (``S`` the minimised sum), so
    ``ℓ`` is profiled to one parameter (as in lme4: Bates et al. 2015, *J. Stat. Softw.* 67(1));
    it is maximised on a grid over γ ∈ {0} ∪ [1e-6, 1e4], then the root of its derivative
    ``dℓ/dγ = N/(2S) Σ a_j r̄_j²/d_j² − ½ Σ a_j/d_j`` (envelope theorem) is found by regula falsi (Illinois steps) in the best
    grid bracket (γ = 0 when the slope is ≤ 0 there), for every replicate and PV at once. With
    equal weights this is ordinary ML.

    Estimand: each school's likelihood counts with the total weight ``W_j`` of its students, so
    schools count in proportion to the students they represent and τ² is the variance of school
    means as a student meets it (student-weighted) — the between-school share of a student's score
    variance that 校际差异率 is about. It is not the ANOVA ICC(1) that 校际差异率 reports: ML
    shrinks τ² (by about (J−1)/J in balanced data) and the schools are weighted. Pseudo-ML is
    consistent as schools and their samples grow; with ~30 students per school and scaled weights
    its small-cluster bias is small (Rabe-Hesketh & Skrondal 2006, §5).

    Variance: the model is refitted on every JKn replicate (replicate ``(h, s)``: ``a_s = 0``,
    ``a_j ·= c_h`` for the other schools of county ``h``; λ unchanged) and for every PV; the JKn
    variance (mse = TRUE) of each statistic per PV is combined with Rubin's rules, df = the design
    df. All replicates use per-school sufficient statistics (λ-weighted means and within-school
    cross-products), never the rows.
    """
    what = "两层模型"
    s = _prepare(df, outcomes, terms, strata, psu, weight, what)
    st = _school_stats(s)
    p = s.x.shape[1]
    cols = {"null": [0], "conditional": list(range(p))} if p > 1 else {"null": [0]}
    fits = {}
    for name, idx in cols.items():
        fit = _fit_random_intercept(st, idx, p)
        if fit is None:
            raise _collinear(s, what)
        _warn_singular(fit["bad"], what)
        fits[name] = fit
    rows, pv_rows = [], []
    for name, idx in cols.items():
        arr, names = _two_level_statistics(s, st, fits, name, idx)
        var = _jkn_var(s.design, arr[0], arr[1:])  # (M, K)
        est, v = rubin(arr[0], var)
        se = np.sqrt(v)
        fixed = np.isin(names, s.terms)
        pval = np.where(fixed, t_p_value(est, se, np.full(len(names), s.df)), np.nan)
        rows.append(
            pd.DataFrame(
                {"model": name, "statistic": names, "estimate": est, "se": se, "df": s.df,
                 "p_value": pval}
            )
        )  # fmt: skip
        pv_rows.append(
            pd.DataFrame(
                {
                    "model": name,
                    "outcome": np.repeat(s.outcomes, len(names)),
                    "statistic": names * len(s.outcomes),
                    "estimate": arr[0].ravel(),
                    "se": np.sqrt(var).ravel(),
                }
            )
        )
    return TwoLevelFit(
        table=pd.concat(rows, ignore_index=True),
        per_pv=pd.concat(pv_rows, ignore_index=True),
        n_obs=len(s.w),
        n_schools=s.n_schools,
        n_strata=s.n_strata,
        df=s.df,
    )


@dataclass(frozen=True)
class _SchoolStats:
    """Per-school sufficient statistics of the two-level model (S schools of the design).

    ``n`` sampled students with complete rows (``n_safe`` = max(n, 1)); ``weights`` (1 + S, S)
    school weights ``a_j`` of the full sample (row 0) and of each JKn replicate; ``zbar`` (S, q)
    and ``within`` (S, q, q) the λ-weighted means and within-school cross-products of the centred
    ``[X, Y]``; ``shift`` the weighted means subtracted from X's terms and Y (for the intercept).
    """

    n: np.ndarray
    n_safe: np.ndarray
    weights: np.ndarray
    zbar: np.ndarray
    within: np.ndarray
    shift: np.ndarray


def _school_stats(s: _Sample) -> _SchoolStats:
    d = s.design
    n_j = np.bincount(s.psu, minlength=d.S).astype(float)
    w_j = np.bincount(s.psu, weights=s.w, minlength=d.S)
    n_safe = np.maximum(n_j, 1.0)
    a_j = np.where(n_j > 0, w_j / n_safe, 0.0)  # school weight: mean final weight
    lam = n_j[s.psu] * s.w / w_j[s.psu]  # level-1 weight scaled to the cluster size
    raw = np.hstack([s.x, s.y])
    shift = (s.w @ raw[:, 1:]) / s.w.sum()
    z = raw - np.concatenate([[0.0], shift])  # centred (not the intercept)
    zbar = (
        np.column_stack(
            [np.bincount(s.psu, weights=lam * z[:, k], minlength=d.S) for k in range(z.shape[1])]
        )
        / n_safe[:, None]
    )
    return _SchoolStats(
        n=n_j,
        n_safe=n_safe,
        weights=np.vstack([a_j[None], a_j[None] * _replicate_factors(d)]),
        zbar=zbar,
        within=_school_sums(z - zbar[s.psu], lam, s.psu, d.S),
        shift=shift,
    )


def _two_level_statistics(
    s: _Sample, st: _SchoolStats, fits: dict, name: str, idx: list[int]
) -> tuple[np.ndarray, list[str]]:
    """``(1 + S, M, K)`` statistics of model ``name`` per fit (full, replicates) and PV."""
    fit, p = fits[name], s.x.shape[1]
    beta = fit["beta"]  # (1 + S, M, k), centred: map the intercept back
    beta[..., 0] += st.shift[p - 1 :] - np.einsum(
        "a,rma->rm", st.shift[np.asarray(idx[1:], dtype=int) - 1], beta[..., 1:]
    )
    stats = {"tau2": fit["tau2"], "sigma2": fit["sigma2"]}
    with np.errstate(invalid="ignore", divide="ignore"):
        stats["icc"] = fit["tau2"] / (fit["tau2"] + fit["sigma2"])
        for k, i in enumerate(idx):
            stats[s.terms[i]] = beta[..., k]
        if name == "conditional":
            tau2_null = fits["null"]["tau2"]
            share = 1.0 - fit["tau2"] / tau2_null
            stats["between_explained"] = np.where(tau2_null > 0, share, np.nan)
    names = list(stats)
    arr = np.stack([stats[k] for k in names], axis=-1)
    arr[fit["bad"]] = np.nan
    if name == "conditional":
        arr[fits["null"]["bad"], :, -1] = np.nan
    return arr, names


def _replicate_factors(d: JKnDesign) -> np.ndarray:
    """``(S, S)`` school-weight multipliers of each replicate (row) for each school (column)."""
    same = d.stratum[:, None] == d.stratum[None, :]
    f = np.where(same, d.factor[:, None], 1.0)
    np.fill_diagonal(f, 0.0)
    f[d.n_h[d.stratum] == 1] = 1.0  # a lone school: no replicate (the full sample again)
    return f


def _slope_root(slope, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The maximum of the profile in the grid bracket ``[lo, hi]`` (R, M): the root of its slope.

    Illinois (modified regula falsi: Dowell & Jarratt 1971, *BIT* 11: 168–174), vectorised over
    fits and PVs, ``ROOT_STEPS`` steps: the bracket always holds the root and convergence is
    superlinear. Where the slope is ≤ 0 already at ``lo`` the maximum is ``lo`` (γ = 0 at the
    boundary when ``lo`` is 0); where it is still ≥ 0 at ``hi`` (the top of the grid) it is ``hi``.
    """
    a, b = lo.astype(float), hi.astype(float)
    fa, fb = slope(a), slope(b)
    at_a = ~(fa > 0)  # also NaN: the grid point stands
    at_b = ~at_a & ~(fb < 0)
    live = ~at_a & ~at_b
    side = np.zeros(a.shape)
    c = a.copy()
    for _ in range(ROOT_STEPS):
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(live, b - fb * (b - a) / (fb - fa), a)
        c = np.where(live & (c > a) & (c < b), c, 0.5 * (a + b))  # rounding: bisect instead
        fc = slope(c)
        up = fc > 0  # still climbing at c: the root lies above it
        fb = np.where(up & (side == 1), 0.5 * fb, fb)  # a replaced twice in a row: Illinois
        fa = np.where(~up & (side == -1), 0.5 * fa, fa)
        a, fa = np.where(up, c, a), np.where(up, fc, fa)
        b, fb = np.where(up, b, c), np.where(up, fb, fc)
        side = np.where(up, 1.0, -1.0)
    return np.where(at_a, lo, np.where(at_b, hi, c))


def _fit_random_intercept(st: _SchoolStats, idx: list[int], p: int) -> dict[str, np.ndarray] | None:
    """Profiled pseudo-ML of the random-intercept model for every fit (row of weights) and PV.

    One fit per row of ``st.weights`` (R = 1 + S: full sample, then the replicates); ``[X, Y]``
    has the outcomes from column ``p``; ``idx``: the columns of X in the model.
    Returns per fit and PV: ``beta`` (R, M, k) on the centred scale, ``tau2``, ``sigma2`` (R, M),
    and ``bad`` (R,) for fits whose GLS matrix is singular; None when the full-sample one is.

    ``d_j = γ + 1/n_j`` depends on the school only through ``n_j``, so the between-school sums are
    pre-summed by distinct school size (U of them, ~10 when ~30 students are sampled per school)
    and each evaluation of the profile costs O(R·M·U·k²), not O(R·M·S·k²).
    """
    school_w, n_j, n_safe, zbar, within = st.weights, st.n, st.n_safe, st.zbar, st.within
    idx_a = np.asarray(idx)
    xb, yb = zbar[:, idx_a], zbar[:, p:]  # (S, k), (S, M)
    sxx = within[:, idx_a][:, :, idx_a]
    sxy, syy = within[:, idx_a, p:], np.diagonal(within[:, p:, p:], axis1=1, axis2=2)
    sizes, group = np.unique(n_safe, return_inverse=True)
    onehot = np.zeros((len(n_safe), len(sizes)))
    onehot[np.arange(len(n_safe)), group] = 1.0
    xx = xb[:, :, None] * xb[:, None]
    bad = _singular(  # the GLS matrix at γ = 1 (its rank does not depend on γ)
        np.einsum("rj,jab->rab", school_w, sxx)
        + np.einsum("rj,jab->rab", school_w / (1.0 + 1.0 / n_safe), xx)
    )
    if bad[0]:
        return None
    sw = np.where(bad[:, None], school_w[0][None], school_w)
    a0 = np.einsum("rj,jab->rab", sw, sxx)
    b0 = np.einsum("rj,jam->rma", sw, sxy)
    c0 = sw @ syy  # (R, M)
    n_w = sw @ n_j  # (R,)
    swu = sw @ onehot  # (R, U): school weight per size
    xxu = np.einsum("rj,ju,ja,jb->ruab", sw, onehot, xb, xb)
    xyu = np.einsum("rj,ju,ja,jm->ruam", sw, onehot, xb, yb)
    yyu = np.einsum("rj,ju,jm->rum", sw, onehot, yb**2)
    r, m = sw.shape[0], yb.shape[1]

    def profile(gamma: np.ndarray) -> tuple[np.ndarray, ...]:
        """Profiled log-likelihood, its slope in γ, β and S at ``gamma`` (R, M)."""
        du = gamma[..., None] + 1.0 / sizes  # (R, M, U)
        inv = 1.0 / du
        a = a0[:, None] + np.einsum("rmu,ruab->rmab", inv, xxu)
        b = b0 + np.einsum("rmu,ruam->rma", inv, xyu)
        c = c0 + np.einsum("rmu,rum->rm", inv, yyu)
        beta = np.linalg.solve(a, b[..., None])[..., 0]
        ss = c - np.einsum("rma,rma->rm", b, beta)
        logdet = np.einsum("ru,rmu->rm", swu, np.log(du))
        rbar2 = (  # Σ_{j of size u} a_j r̄_j² at β
            yyu.transpose(0, 2, 1)
            - 2.0 * np.einsum("rma,ruam->rmu", beta, xyu)
            + np.einsum("rma,ruab,rmb->rmu", beta, xxu, beta)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            ll = -0.5 * n_w[:, None] * np.log(ss / n_w[:, None]) - 0.5 * logdet
            slope = 0.5 * n_w[:, None] / ss * (rbar2 * inv**2).sum(-1) - 0.5 * (
                swu[:, None] * inv
            ).sum(-1)
        return np.where(np.isfinite(ll), ll, -np.inf), slope, beta, ss

    ones = np.ones((r, m))
    grid = np.stack([profile(g * ones)[0] for g in GAMMA_GRID])  # (G, R, M)
    k = grid.argmax(axis=0)
    lo = GAMMA_GRID[np.maximum(k - 1, 0)]
    hi = GAMMA_GRID[np.minimum(k + 1, len(GAMMA_GRID) - 1)]
    gamma = _slope_root(lambda g: profile(g)[1], lo, hi)
    ll, _, beta, ss = profile(gamma)
    best = grid.max(axis=0)
    if np.any(best > ll + 1e-9 * np.abs(ll)):  # a bracket without the maximum (not expected)
        gamma = np.where(best > ll + 1e-9 * np.abs(ll), GAMMA_GRID[k], gamma)
        _, _, beta, ss = profile(gamma)
    sigma2 = ss / n_w[:, None]
    return {"beta": beta, "tau2": gamma * sigma2, "sigma2": sigma2, "bad": bad}
