"""Tests behind the problem list: one-sided and two-sided z / t tests, the design degrees of freedom,
Benjamini–Hochberg q-values and the test of a change between two rounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, stdtr


def _sf(stat: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """Upper tail ``P(T > stat)``: Student t with ``df`` where ``df`` is finite and positive,
    else the standard normal."""
    stat = np.asarray(stat, float)
    p = ndtr(-stat)
    if df is not None:
        d = np.asarray(df, float)
        use_t = np.isfinite(d) & (d > 0) & np.isfinite(stat)
        if use_t.any():
            p = p.copy()
            p[use_t] = stdtr(d[use_t], -stat[use_t])
    return p


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
    d = None
    if df is not None:
        d = pd.to_numeric(df, errors="coerce").reindex(value.index).to_numpy(float)
    p = _sf(np.asarray(stat, float), d)
    if two_sided:
        p = 2 * p
    return z, pd.Series(p, index=value.index).where(z.notna())


def tail(stat: pd.Series, df: pd.Series | None) -> pd.Series:
    """``P(T > stat)`` row by row (t with ``df`` where usable, else normal); NaN stays NaN."""
    d = None if df is None else pd.to_numeric(df, errors="coerce").to_numpy(float)
    p = _sf(stat.to_numpy(float), d)
    return pd.Series(p, index=stat.index).where(stat.notna())


def design_df(d: pd.DataFrame, p_reference: str) -> pd.Series | None:
    """Design degrees of freedom of county estimates: ``n_schools - 1`` (one stratum, PSU = school;
    R ``survey::degf``), NaN (normal fallback) where the school count is missing or below 2.
    ``None`` when ``p_reference`` is ``normal``."""
    if p_reference == "normal":
        return None
    n = pd.to_numeric(d["n_schools"], errors="coerce").astype(float)
    return (n - 1).where(n >= 2)


def change_test(
    v_now: pd.Series,
    se_now: pd.Series,
    v_prev: pd.Series,
    se_prev: pd.Series,
    linking_error: pd.Series,
    bad_dir: pd.Series,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Test of the change of one indicator between two rounds.

    ``d = bad_dir · (v_now − v_prev)`` (positive = a change in the bad direction),
    ``SE(d) = sqrt(se_now² + se_prev² + LE²)`` with ``LE`` the linking error of the subject's scale
    (0 until configured; never for scale-free statistics such as 校际差异率 or 差异系数), because the
    two rounds are independent samples and the scale link adds its own error (NAEQ/PISA practice:
    OECD, PISA 2018 Technical Report, ch. 12). ``z = d / SE(d)``, two-sided normal p (the rounds
    have different designs, so no single design df applies). Returns ``(se_d, z, p)``; NaN where
    an SE is missing or zero.
    """
    se_d = np.sqrt(se_now**2 + se_prev**2 + linking_error**2)
    z, p = z_test(v_now * bad_dir, v_prev * bad_dir, se_d, 1, two_sided=True)
    return se_d, z, p
