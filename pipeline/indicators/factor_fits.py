"""Each county's factor regressions and two-level models, many factors at once.

The per-county rows of ``factors.parquet`` fit, for each of ~20 factors, the same score on one
term (with and without SES) and, for each school-level factor, a random-intercept model — about a
thousand small fits on the demo round. :func:`pipeline.indicators.factors.factor_association` and
:func:`~pipeline.indicators.factors.two_level_decomposition` would give the same numbers one fit
at a time, but each call spends most of its time preparing a DataFrame. This module takes one
county's rows of one design as arrays (school, weight, outcomes, SES, one column per factor term)
and fits every factor with shared arrays:

* :func:`association_batch` — for factor ``k`` the weighted least squares of the outcomes on
  ``[1, x_k]`` (``unadjusted``) and ``[1, x_k, ses]`` (``adjusted``) on the rows where the
  outcomes, ``x_k`` and SES are all present: the algebra of
  :func:`~pipeline.indicators.factors.replicate_regression` (centred per-school cross-products,
  replicate ``(h, s)`` cross-products ``c_h (T − A_s)`` in a one-county design, all replicates
  solved as one stack; JKn variance with ``mse = TRUE``; Rubin's rules over plausible values;
  weighted R² and its JKn SE), evaluated for all factors in one stack of systems. The per-school
  cross-products of every factor come from one matrix product (school indicator × row products).
* :func:`two_level_batch` — per county, the null model on the rows with outcomes, and per factor
  the null and the conditional model (term ``x_k``) on the rows with outcomes and ``x_k``, by the
  profiled pseudo-ML of :func:`pipeline.indicators.factors._fit_random_intercept` itself: the
  per-school sufficient statistics of each sample (``factors._school_stats``) are stacked as
  separate blocks of schools, and the fits as rows whose school weights are zero outside their
  block, so every sample's likelihood is its own and one call evaluates many (all the null
  models of a design's counties, then all their conditional models, in calls of bounded size).
  A factor whose rows are those of the null model (no missing values) reuses its null fit.

Both give the numbers of the public functions (``tests/test_factor_estimates.py`` compares them
to 1e-6 or better on data with plausible values, missing values and a singular replicate; on the
demo round the stage's rows agree with one-call-per-fit to 1e-12). A factor whose fit cannot be made (too
few rows or schools, a constant or collinear term in the full sample) is returned as skipped with
the reason, in Chinese; a replicate whose matrix is singular gives NaN SEs, as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.indicators.factors import (
    _fit_random_intercept,
    _jkn_var,
    _Sample,
    _school_stats,
    _SchoolStats,
    _singular,
)
from pipeline.indicators.scores import make_design
from pipeline.indicators.survey import JKnDesign, design_df, rubin, t_p_value

__all__ = ["CountyRows", "association_batch", "county_rows", "two_level_batch"]


@dataclass(frozen=True)
class CountyRows:
    """One county's rows of one design: PSU (school) index per row, weights, outcomes (n, M)."""

    design: JKnDesign
    psu: np.ndarray
    w: np.ndarray
    y: np.ndarray

    @property
    def onehot(self) -> np.ndarray:
        """``(S, n)`` school indicator of each row."""
        out = np.zeros((self.design.S, len(self.psu)))
        out[self.psu, np.arange(len(self.psu))] = 1.0
        return out


def county_rows(school: np.ndarray, w: np.ndarray, y: np.ndarray) -> CountyRows:
    """The one-stratum design (PSU = school) of one county's rows; ``y`` is (M, n) or (n,)."""
    design, psu, _ = make_design(np.zeros(len(school), dtype=np.int64), np.asarray(school))
    y = np.asarray(y, dtype=float)
    y = y[:, None] if y.ndim == 1 else y.T
    return CountyRows(design, psu, np.asarray(w, dtype=float), y)


def _too_few(n_rows: int, n_schools: int, p: int) -> str:
    return (
        f"有效样本不足（{n_rows} 名学生、{n_schools} 所学校的结果变量与因素均不缺失），"
        f"无法估计 {p} 个系数"
    )


COLLINEAR = "因素没有变化，或与其他变量完全共线，无法估计系数"


def association_batch(
    rows: CountyRows, terms: np.ndarray, ses: np.ndarray | None
) -> tuple[pd.DataFrame, dict[int, str]]:
    """``factor_association(y, [x_k], ["ses"])`` (or the unadjusted model alone without SES) for
    every column ``k`` of ``terms`` (n, K).

    Returns a table with one row per fitted factor and model: ``k, model, estimate, se, df,
    p_value, r_squared, r_squared_se, n_obs, n_schools`` (the term's coefficient), and the
    skipped factors ``{k: reason}``.
    """
    d, n_m = rows.design, rows.y.shape[1]
    n_k = terms.shape[1]
    cols = [np.ones((n_k, len(rows.w))), terms.T]
    if ses is not None:
        cols.append(np.broadcast_to(ses, (n_k, len(ses))))
    x = np.stack(cols, axis=-1)  # (K, n, P)
    n_p = x.shape[-1]
    z = np.concatenate([x, np.broadcast_to(rows.y, (n_k, *rows.y.shape))], axis=-1)  # (K, n, q)
    complete = np.isfinite(z).all(axis=-1)  # (K, n)
    wk = np.where(complete, rows.w, 0.0)
    z = np.where(complete[..., None], z, 0.0)
    wsum = wk.sum(axis=1)
    n_obs = complete.sum(axis=1)
    has = (rows.onehot @ complete.T.astype(float)) > 0  # (S, K)
    n_sch = has.sum(axis=0)
    skipped: dict[int, str] = {}
    for k in range(n_k):
        if n_obs[k] <= n_p or n_sch[k] < 2:
            skipped[k] = _too_few(int(n_obs[k]), int(n_sch[k]), n_p)
    ok = np.array([k for k in range(n_k) if k not in skipped], dtype=np.int64)
    if not len(ok):
        return pd.DataFrame(), skipped
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.einsum("ki,kiq->kq", wk, z) / wsum[:, None]
    shift[:, 0] = 0.0
    zc = np.where(complete[..., None], z - shift[:, None, :], 0.0)[ok]
    wz = wk[ok][..., None] * zc
    q = zc.shape[-1]
    prods = np.einsum("kia,kib->ikab", wz, zc).reshape(len(rows.w), -1)
    crs = (rows.onehot @ prods).reshape(d.S, len(ok), q, q).transpose(1, 0, 2, 3)  # (K, S, q, q)
    total = crs.sum(axis=1)
    reps = d.factor[None, :, None, None] * (
        total[:, None] - crs
    )  # T − A_h + c_h (A_h − A_s), A_h = T
    reps[:, d.n_h[d.stratum] == 1] = total[:, None]  # a lone school: no replicate
    all_ = np.concatenate([total[:, None], reps], axis=1)  # (K, 1 + S, q, q)
    models = [("unadjusted", [0, 1])] + ([("adjusted", [0, 1, 2])] if ses is not None else [])
    ycols = list(range(n_p, q))
    fits = {}
    for name, idx in models:
        sub = all_[:, :, idx + ycols][:, :, :, idx + ycols]
        fits[name] = _wls(sub, len(idx), d, n_m)
    bad_full = np.zeros(len(ok), dtype=bool)
    for fit in fits.values():
        bad_full |= fit["bad"][:, 0]
    out = []
    for j, k in enumerate(ok):
        if bad_full[j]:
            skipped[int(k)] = COLLINEAR
            continue
        df = float(design_df(np.array([n_sch[k]]))[-1])
        for name, fit in fits.items():
            out.append(
                {"k": int(k), "model": name, "estimate": fit["est"][j], "se": fit["se"][j],
                 "df": df, "p_value": float(t_p_value(fit["est"][j], fit["se"][j], df)),
                 "r_squared": fit["r2"][j], "r_squared_se": fit["r2_se"][j],
                 "n_obs": int(n_obs[k]), "n_schools": int(n_sch[k])}
            )  # fmt: skip
    return pd.DataFrame(out), skipped


def _wls(all_: np.ndarray, p: int, d: JKnDesign, n_m: int) -> dict[str, np.ndarray]:
    """Coefficient of term 1 (SE by JKn and Rubin) and R² of stacked centred cross-products
    ``(K, 1 + S, q, q)`` (the first ``p`` columns X, then the M outcomes): replicate_regression's
    algebra, per factor."""
    a, b = all_[..., :p, :p], all_[..., :p, p:]
    bad = _singular(a)  # (K, 1 + S)
    a = np.where(bad[..., None, None], a[:, :1], a)
    a = np.where(bad[:, :1, None, None], np.eye(p), a)  # a singular full sample: skipped anyway
    coef = np.linalg.solve(a, b)  # (K, 1 + S, p, M)
    syy = np.diagonal(all_[..., p:, p:], axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sst = syy - all_[..., 0, p:] ** 2 / all_[..., 0, 0, None]
        r2 = 1.0 - (syy - np.einsum("krpm,krpm->krm", b, coef)) / sst  # (K, 1 + S, M)
    beta = np.where(bad[..., None], np.nan, coef[..., 1, :])  # (K, 1 + S, M)
    r2 = np.where(bad[..., None], np.nan, r2)
    dev = beta[:, 1:] - beta[:, :1]
    var_m = np.einsum("s,ksm->km", d.rscale, dev**2)  # (K, M)
    est_m = beta[:, 0]  # (K, M)
    est = est_m.mean(axis=1)
    var = var_m.mean(axis=1)
    if n_m > 1:
        var = var + (1.0 + 1.0 / n_m) * est_m.var(axis=1, ddof=1)
    var_r2 = np.stack([_jkn_var(d, r2[k, 0], r2[k, 1:]) for k in range(len(r2))])
    r2_est, r2_var = rubin(r2[:, 0].T, var_r2.T)
    return {"est": est, "se": np.sqrt(var), "r2": r2_est, "r2_se": np.sqrt(r2_var), "bad": bad}


# ------------------------------------------------------------------------------------------------
# Two-level
# ------------------------------------------------------------------------------------------------


def _stack(stats: list[_SchoolStats]) -> tuple[_SchoolStats, np.ndarray]:
    """Blocks of schools, one per sample; fit rows see only their own block's schools.

    Returns the stacked statistics and the first fit row of each block (and the end)."""
    rows = np.cumsum([0] + [st.weights.shape[0] for st in stats])
    cols = np.cumsum([0] + [st.weights.shape[1] for st in stats])
    weights = np.zeros((rows[-1], cols[-1]))
    for b, st in enumerate(stats):
        weights[rows[b] : rows[b + 1], cols[b] : cols[b + 1]] = st.weights
    stacked = _SchoolStats(
        n=np.concatenate([st.n for st in stats]),
        n_safe=np.concatenate([st.n_safe for st in stats]),
        weights=weights,
        zbar=np.concatenate([st.zbar for st in stats]),
        within=np.concatenate([st.within for st in stats]),
        shift=stats[0].shift,
    )
    return stacked, rows


# Fit rows × schools of one stacked call (its dense weights matrix); on the demo round the CPU time
# is flat from 1e4 to 1e5 and grows beyond.
MAX_STACK_CELLS = 50_000


def _fit_blocks(stats: list[_SchoolStats], idx: list[int]) -> list[dict[str, np.ndarray]]:
    """``_fit_random_intercept`` of every block (its full-sample fit must not be singular, which
    the callers check); one result per block.

    Blocks are stacked into as few calls as keep the dense fit-rows × schools weights matrix under
    ``MAX_STACK_CELLS`` (a call costs ~130 evaluations of the profile likelihood whatever its
    size, until the matrix grows: it is quadratic in the number of blocks)."""
    out: list[dict[str, np.ndarray]] = []
    start = 0
    while start < len(stats):
        end, n_r, n_s = start, 0, 0
        while end < len(stats):
            r, c = stats[end].weights.shape
            if end > start and (n_r + r) * (n_s + c) > MAX_STACK_CELLS:
                break
            n_r, n_s, end = n_r + r, n_s + c, end + 1
        stacked, rows = _stack(stats[start:end])
        fit = _fit_random_intercept(stacked, idx, 2)
        if fit is None:  # not expected: the callers drop singular full-sample fits
            raise RuntimeError("singular full-sample two-level fit in a stacked call")
        out.extend(
            {k: v[rows[b] : rows[b + 1]] for k, v in fit.items()} for b in range(end - start)
        )
        start = end
    return out


def _full_singular(st: _SchoolStats, idx: list[int]) -> bool:
    """The full-sample GLS matrix test of ``_fit_random_intercept`` (its row 0)."""
    ia = np.asarray(idx)
    xb = st.zbar[:, ia]
    a = st.weights[0] @ st.within[:, ia][:, :, ia].reshape(len(st.n), -1)
    a = a + (st.weights[0] / (1.0 + 1.0 / st.n_safe)) @ (xb[:, :, None] * xb[:, None]).reshape(
        len(st.n), -1
    )
    return bool(_singular(a.reshape(1, len(ia), len(ia)))[0])


@dataclass
class _TwoLevelSamples:
    """One county's samples: distinct null samples (the first on every row with outcomes), the
    fitted factors with their sample and the index of their null sample, and the skipped ones."""

    design: JKnDesign
    nulls: list[tuple[_Sample, _SchoolStats]]
    factors: list[tuple[int, _Sample, _SchoolStats, int]]
    skipped: dict[int, str]


def _two_level_samples(rows: CountyRows, terms: np.ndarray) -> _TwoLevelSamples:
    d = rows.design
    has_y = np.isfinite(rows.y).all(axis=1)
    out = _TwoLevelSamples(d, [], [], {})
    masks: dict[bytes, int] = {}
    for k in [-1, *range(terms.shape[1])]:  # -1: the null model on every row with outcomes
        x = np.zeros(len(rows.w)) if k < 0 else terms[:, k]
        c = has_y & np.isfinite(x)
        n_sch = int((np.bincount(rows.psu[c], minlength=d.S) > 0).sum())
        p = 1 if k < 0 else 2
        if c.sum() <= p or n_sch < 2:
            if k < 0:
                return out  # no null model: no factor either (their rows are a subset)
            out.skipped[k] = _too_few(int(c.sum()), n_sch, p)
            continue
        s = _Sample(
            design=d, psu=rows.psu[c], w=rows.w[c],
            x=np.column_stack([np.ones(int(c.sum())), x[c]]), y=rows.y[c],
            terms=("Intercept", "x"), outcomes=tuple(map(str, range(rows.y.shape[1]))),
            n_schools=n_sch, n_strata=1, df=float(n_sch - 1),
        )  # fmt: skip
        st = _school_stats(s)
        if k >= 0 and _full_singular(st, [0, 1]):
            out.skipped[k] = COLLINEAR
            continue
        key = c.tobytes()
        if key not in masks:  # the null model of this sample (the x column is not used)
            masks[key] = len(out.nulls)
            out.nulls.append((s, st))
        if k >= 0:
            out.factors.append((k, s, st, masks[key]))
    return out


def two_level_batch(
    counties: list[tuple[CountyRows, np.ndarray]],
) -> list[tuple[pd.DataFrame | None, pd.DataFrame, dict[int, str]]]:
    """For each county's rows and terms (n, K): ``two_level_decomposition(y)`` (the null model)
    and, per column ``k``, ``two_level_decomposition(y, [x_k])``'s conditional ``x_k`` and
    ``between_explained``. The null models of all counties are stacked into as few calls of the
    fit as :func:`_fit_blocks` allows, and so are the conditional models.

    Returns per county ``(null, per_factor, skipped)``: ``null`` (None when it cannot be fitted)
    with rows ``statistic`` (``icc``, ``tau2``, ``sigma2``), ``estimate, se, df, n_obs,
    n_schools``; ``per_factor`` with ``k, statistic`` (``coef``, ``between_explained``),
    ``estimate, se, df, p_value, n_obs, n_schools``; ``skipped`` ``{k: reason}``.
    """
    prepared = [_two_level_samples(rows, terms) for rows, terms in counties]
    null_stats = [st for p in prepared for _, st in p.nulls]
    null_fits = iter(_fit_blocks(null_stats, [0]) if null_stats else [])
    cond_stats = [st for p in prepared for _, _, st, _ in p.factors]
    cond_fits = iter(_fit_blocks(cond_stats, [0, 1]) if cond_stats else [])
    results = []
    for p in prepared:
        fits0 = [next(null_fits) for _ in p.nulls]
        if not p.nulls:
            results.append((None, pd.DataFrame(), p.skipped))
            continue
        null = _null_rows(p.nulls[0][0], fits0[0])
        out = []
        cond = [next(cond_fits) for _ in p.factors]
        for (k, s, _, b), c in zip(p.factors, cond, strict=True):
            n0 = fits0[b]
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(n0["tau2"] > 0, 1.0 - c["tau2"] / n0["tau2"], np.nan)
            coef = np.where(c["bad"][:, None], np.nan, c["beta"][..., 1])
            share = np.where(c["bad"][:, None] | n0["bad"][:, None], np.nan, share)
            for name, arr in (("coef", coef), ("between_explained", share)):
                est, se = _combine(p.design, arr)
                out.append(
                    {"k": k, "statistic": name, "estimate": est, "se": se, "df": s.df,
                     "p_value": float(t_p_value(est, se, s.df)) if name == "coef" else np.nan,
                     "n_obs": len(s.w), "n_schools": s.n_schools}
                )  # fmt: skip
        results.append((null, pd.DataFrame(out), p.skipped))
    return results


def _combine(d: JKnDesign, arr: np.ndarray) -> tuple[float, float]:
    """JKn (mse) variance per PV of ``arr`` (1 + S, M), Rubin-combined: estimate and SE."""
    est, var = rubin(arr[0], _jkn_var(d, arr[0], arr[1:]))
    return float(est), float(np.sqrt(var))


def _null_rows(s: _Sample, fit: dict) -> pd.DataFrame:
    tau2, sigma2 = fit["tau2"], fit["sigma2"]
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = {"icc": tau2 / (tau2 + sigma2), "tau2": tau2, "sigma2": sigma2}
    out = []
    for name, arr in stats.items():
        est, se = _combine(s.design, np.where(fit["bad"][:, None], np.nan, arr))
        out.append({"statistic": name, "estimate": est, "se": se, "df": s.df,
                    "n_obs": len(s.w), "n_schools": s.n_schools})  # fmt: skip
    return pd.DataFrame(out)
