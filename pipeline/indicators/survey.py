"""Design-based estimation core: stratified delete-one-PSU jackknife (JKn) on per-school sums.

Design
------
Strata = county, PSU = school, final student weight ``w``. Replicate ``(h, j)`` drops school ``j``
of county ``h`` and multiplies the weights of the other schools of county ``h`` by
``n_h / (n_h - 1)``; every other county is unchanged. The variance is centred on the full-sample
estimate (``mse = TRUE``)::

    V(θ) = Σ_h (n_h − 1)/n_h · Σ_j (θ_(hj) − θ)²

This is R survey's ``as.svrepdesign(svydesign(ids=~school, strata=~county, weights=~w),
type = "JKn", mse = TRUE)`` (Lumley 2010, *Complex Surveys*, §2.8; Wolter 2007, *Introduction to
Variance Estimation*, ch. 4). A stratum with a single PSU cannot be jackknifed: it contributes zero
variance (its estimates are flagged as suppressed anyway, fewer than 3 schools).

Every estimator here is a weighted ratio ``θ = Σ w·y / Σ w`` over a domain (a mean; a share when
``y`` is a 0/100 indicator). It depends on the data only through per-school sums
``Y_s = Σ_{i∈s} w_i y_i`` and ``W_s = Σ_{i∈s} w_i``, so each replicate estimate has a closed form and
all replicates are computed at once, with no refit and no loop over replicates:

* county ``h`` estimate, replicate dropping school ``s ∈ h`` (the factor cancels):
  ``θ_(hs) = (Y_h − Y_s) / (W_h − W_s)``; replicates of other counties leave it unchanged;
* pooled estimate over all counties (``T`` = grand totals):
  ``θ_(hs) = (T_Y − Y_h + c_h (Y_h − Y_s)) / (T_W − W_h + c_h (W_h − W_s))``, ``c_h = n_h/(n_h−1)``.

Differences of domain estimates (gaps) take their variance from the differences of the replicate
estimates, never from √(SE₁² + SE₂²). Plausible values are combined with Rubin's rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JKnDesign:
    """PSUs of one design, sorted by stratum.

    Attributes
    ----------
    stratum:
        ``(S,)`` stratum index (0..H−1, non-decreasing) of each PSU.
    n_h:
        ``(H,)`` number of PSUs per stratum (every stratum has at least one).
    """

    stratum: np.ndarray
    n_h: np.ndarray

    def __post_init__(self) -> None:
        if self.stratum.ndim != 1 or np.any(np.diff(self.stratum) < 0):
            raise ValueError("PSUs must be sorted by stratum")
        if len(self.n_h) and (self.n_h.min() < 1 or self.n_h.sum() != len(self.stratum)):
            raise ValueError("n_h does not match the PSU strata")

    @classmethod
    def from_strata(cls, stratum: np.ndarray, n_strata: int | None = None) -> JKnDesign:
        stratum = np.asarray(stratum, dtype=np.int64)
        h = int(stratum.max()) + 1 if n_strata is None else n_strata
        return cls(stratum=stratum, n_h=np.bincount(stratum, minlength=h))

    @property
    def S(self) -> int:  # noqa: N802 - survey notation
        return len(self.stratum)

    @property
    def H(self) -> int:  # noqa: N802
        return len(self.n_h)

    @property
    def starts(self) -> np.ndarray:
        """Index of the first PSU of each stratum (for ``np.add.reduceat``)."""
        return np.concatenate([[0], np.cumsum(self.n_h)[:-1]]).astype(np.int64)

    @property
    def rscale(self) -> np.ndarray:
        """``(n_h − 1)/n_h`` per PSU (0 for a single-PSU stratum)."""
        n = self.n_h[self.stratum].astype(float)
        return (n - 1.0) / n

    @property
    def factor(self) -> np.ndarray:
        """``n_h/(n_h − 1)`` per PSU: weight multiplier of the kept schools (1 if n_h = 1)."""
        n = self.n_h[self.stratum].astype(float)
        return np.where(n > 1, n / np.maximum(n - 1.0, 1.0), 1.0)

    def stratum_sum(self, a: np.ndarray) -> np.ndarray:
        """Sum the rows of ``a`` (S, ...) within strata → (H, ...)."""
        if self.S == 0:
            return np.zeros((0, *a.shape[1:]))
        return np.add.reduceat(a, self.starts, axis=0)


@dataclass(frozen=True)
class Replicates:
    """Full-sample and replicate estimates of K statistics.

    ``theta_c`` (H, K): county estimates; ``rep_c`` (S, K): estimate of the PSU's own county when
    that PSU is dropped. ``theta_p`` (K,) and ``rep_p`` (S, K): the same for the pooled estimate.
    """

    design: JKnDesign
    theta_c: np.ndarray
    rep_c: np.ndarray
    theta_p: np.ndarray
    rep_p: np.ndarray

    def take(self, idx: np.ndarray) -> Replicates:
        return Replicates(
            self.design,
            self.theta_c[:, idx],
            self.rep_c[:, idx],
            self.theta_p[idx],
            self.rep_p[:, idx],
        )

    def minus(self, other: Replicates) -> Replicates:
        """Replicate-wise difference (the gap θ_A − θ_B with its replicates)."""
        return Replicates(
            self.design,
            self.theta_c - other.theta_c,
            self.rep_c - other.rep_c,
            self.theta_p - other.theta_p,
            self.rep_p - other.rep_p,
        )

    def concat(self, other: Replicates) -> Replicates:
        return Replicates(
            self.design,
            np.concatenate([self.theta_c, other.theta_c], axis=1),
            np.concatenate([self.rep_c, other.rep_c], axis=1),
            np.concatenate([self.theta_p, other.theta_p]),
            np.concatenate([self.rep_p, other.rep_p], axis=1),
        )

    def variance(self) -> tuple[np.ndarray, np.ndarray]:
        """JKn variance centred on the full-sample estimate (mse = TRUE).

        Returns ``(var_c (H, K), var_p (K,))``.
        """
        d = self.design
        f = d.rscale[:, None]
        dev = np.subtract(self.rep_c, self.theta_c[d.stratum])  # f·(θ_(hs) − θ)², in place
        np.square(dev, out=dev)
        np.multiply(f, dev, out=dev)
        var_c = d.stratum_sum(dev)
        np.subtract(self.rep_p, self.theta_p[None, :], out=dev)
        np.square(dev, out=dev)
        np.multiply(f, dev, out=dev)
        var_p = dev.sum(axis=0)
        return var_c, var_p

    def variance_replicate_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """JKn variance centred on the mean of the replicates (R survey's ``mse = FALSE``).

        R's ``svrVar`` centres on the mean over all replicates with a non-zero scale. For a county
        estimate, the replicates of other counties equal the full-sample estimate. Not used for
        estimates; kept so tests can show the two centrings differ.
        """
        d = self.design
        f = d.rscale[:, None]
        use = (f > 0).astype(float)
        n_rep = use.sum()
        # county h: full replicate vector = rep_c for its own PSUs, theta_c[h] for all the others
        own_sum = d.stratum_sum(use * self.rep_c)
        own_n = d.stratum_sum(use)
        mean_c = (own_sum + (n_rep - own_n) * self.theta_c) / n_rep
        others_f = f.sum() - d.stratum_sum(f)  # total scale of the other counties' replicates
        var_c = (
            d.stratum_sum(f * (self.rep_c - mean_c[d.stratum]) ** 2)
            + others_f * (self.theta_c - mean_c) ** 2
        )
        mean_p = (use * self.rep_p).sum(axis=0) / n_rep
        var_p = (f * (self.rep_p - mean_p) ** 2).sum(axis=0)
        return var_c, var_p


def ratio_replicates(design: JKnDesign, num: np.ndarray, den: np.ndarray) -> Replicates:
    """Weighted ratio estimates ``Σ Y / Σ W`` and all JKn replicates, from per-PSU sums.

    Parameters
    ----------
    design:
        The PSUs (rows of ``num``/``den``) and their strata.
    num, den:
        ``(S, K)`` per-PSU weighted sums ``Σ w·y`` and ``Σ w`` of K domain statistics (zero where
        the PSU has no observation in the domain).

    Returns
    -------
    Replicates
        County and pooled estimates with their replicate estimates (formulas in the module
        docstring). 0/0 gives NaN (an empty domain, or a replicate that removes all of it).
    """
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    if num.shape != den.shape or num.shape[0] != design.S:
        raise ValueError("num and den must be (S, K) arrays matching the design")
    st = design.stratum
    with np.errstate(invalid="ignore", divide="ignore"):
        yc = design.stratum_sum(num)
        wc = design.stratum_sum(den)
        theta_c = yc / wc
        ty, tw = yc.sum(axis=0), wc.sum(axis=0)
        theta_p = ty / tw
        c = design.factor[:, None]
        # (S, K) work arrays updated in place (a province design has ~10⁴ PSUs × ~10² columns):
        # rep_c = (Y_h − Y_s)/(W_h − W_s); rep_p = (T_Y − Y_h + c·(Y_h − Y_s))/(T_W − W_h + c·(W_h − W_s))
        y_h, w_h = yc[st], wc[st]
        dy, dw = y_h - num, w_h - den
        rep_c = dy / dw
        np.subtract(ty, y_h, out=y_h)
        np.subtract(tw, w_h, out=w_h)
        np.multiply(c, dy, out=dy)
        np.multiply(c, dw, out=dw)
        y_h += dy
        w_h += dw
        rep_p = np.divide(y_h, w_h, out=y_h)
    # a single-PSU stratum: no replicate (zero variance contribution)
    single = design.n_h[st] == 1
    if single.any():
        rep_c[single] = theta_c[st[single]]
        rep_p[single] = theta_p
    return Replicates(design, theta_c, rep_c, theta_p, rep_p)


def rubin(theta: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Combine M plausible-value analyses with Rubin's rules.

    ``θ = mean_m θ_m``; ``V = mean_m V_m + (1 + 1/M) · B``, ``B = Σ (θ_m − θ)² / (M − 1)``
    (Rubin 1987, *Multiple Imputation for Nonresponse in Surveys*; OECD PISA Data Analysis Manual,
    ch. 8). ``theta``/``var`` have the PV axis first. With M = 1 the input is returned.
    """
    theta = np.asarray(theta, dtype=float)
    var = np.asarray(var, dtype=float)
    m = theta.shape[0]
    if m == 1:
        return theta[0], var[0]
    est = theta.mean(axis=0)
    between = theta.var(axis=0, ddof=1)
    return est, var.mean(axis=0) + (1.0 + 1.0 / m) * between


def design_df(psu_counts: np.ndarray) -> np.ndarray:
    """Design degrees of freedom ``#PSU − #strata`` of the county rows and the pooled row.

    ``psu_counts`` is ``(H, ...)``: the schools (PSUs) of each county (stratum) that hold data of
    the statistic. Returns ``(H + 1, ...)``: county ``h`` is one stratum, ``df = n_h − 1``; the
    pooled row (all counties as strata) has ``df = Σ_h (n_h − 1)``, i.e. total schools minus the
    counties with any. A county without schools counts neither a school nor a stratum (its
    ``n_h − 1`` is clipped to 0). This is R survey's ``degf(design)`` of the (sub)design: the number
    of PSUs minus the number of strata (for a JKn replicate design, the rank of the replicate
    weights minus one), the df that ``confint(..., df = degf(design))`` and ``svyciprop`` use
    (Lumley 2010, *Complex Surveys*, §2.3; Korn & Graubard 1999, *Analysis of Health Surveys*,
    §5.2).
    """
    per = np.maximum(np.asarray(psu_counts, dtype=float) - 1.0, 0.0)
    return np.concatenate([per, per.sum(axis=0, keepdims=True)], axis=0)


def ci_quantile(ci_z: float, df: np.ndarray | float | None = None) -> np.ndarray:
    """Quantile ``q`` of the two-sided interval ``estimate ± q·SE`` at the level of ``ci_z``.

    The level is the normal one of ``ci_z`` (``Φ(1.96) = 0.975002`` per side, "95%"). With design
    degrees of freedom ``df`` the quantile is Student's ``t_df⁻¹(Φ(ci_z))`` (2.262 for df = 9);
    where ``df`` is missing (None, NaN) or below 1 it is ``ci_z`` itself (the normal reference).
    Equal to R's ``qt(pnorm(ci_z), df)``; R survey's ``confint(stat, level = 2*pnorm(1.96) - 1,
    df = degf(design))`` uses the same quantile.
    """
    from scipy.special import ndtr, stdtrit  # imported here: scipy costs ~0.5 s of CLI start-up

    if df is None:
        return np.asarray(ci_z, dtype=float)
    df = np.asarray(df, dtype=float)
    use_t = np.isfinite(df) & (df >= 1)
    with np.errstate(invalid="ignore"):
        q = stdtrit(np.where(use_t, df, 1.0), ndtr(ci_z))
    return np.where(use_t, q, ci_z)


def t_p_value(estimate: np.ndarray, se: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """Two-sided p-value of H0: θ = 0 that agrees with the printed interval.

    ``2·P(T_df > |θ/SE|)`` with Student's t on the design degrees of freedom where ``df ≥ 1``
    (:func:`design_df`), else the normal ``2·Φ(−|θ/SE|)`` of :func:`normal_p_value`; so
    ``p < 2·(1 − Φ(ci_z))`` exactly when the interval ``estimate ± ci_quantile(ci_z, df)·se``
    excludes 0 (R: ``2*pt(-abs(t), df)``).
    """
    from scipy.special import stdtr

    p = normal_p_value(estimate, se)
    if df is None:
        return p
    df = np.broadcast_to(np.asarray(df, dtype=float), p.shape)
    use_t = np.isfinite(df) & (df >= 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(np.asarray(estimate, dtype=float) / np.asarray(se, dtype=float))
        pt = 2.0 * stdtr(np.where(use_t, df, 1.0), -z)
    return np.where(use_t, pt, p)


def normal_p_value(estimate: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided p-value of H0: θ = 0 with a normal reference, ``2·Φ(−|θ/SE|)``.

    The p-value of a gap row of ``indicators.parquet`` is not stored (the table's columns are
    fixed by the data contract). This normal one agrees with the row's interval only under
    ``indicators.ci_reference: normal``; under the default ``t_design_df`` use
    :func:`t_p_value` with the row's design df.
    """
    from scipy.special import ndtr  # imported here: scipy costs ~0.5 s of CLI start-up

    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(np.asarray(estimate, dtype=float) / np.asarray(se, dtype=float))
    return 2.0 * ndtr(-z)
