"""Property tests of the JKn core: closed-form replicates = explicit replicate weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.indicators.survey import JKnDesign, ratio_replicates, rubin


def explicit_jkn(stratum: np.ndarray, y: np.ndarray, w: np.ndarray, psu: np.ndarray):
    """Textbook JKn with an explicit (students x replicates) weight matrix, as R builds it."""
    n_h = np.bincount(stratum)
    n_psu = len(stratum)
    rw = np.repeat(w[:, None], n_psu, axis=1)
    for r in range(n_psu):
        h = stratum[r]
        in_h = stratum[psu] == h
        rw[in_h, r] *= n_h[h] / (n_h[h] - 1)
        rw[psu == r, r] = 0.0
    theta = (w * y).sum() / w.sum()
    reps = (rw * y[:, None]).sum(0) / rw.sum(0)
    f = (n_h[stratum] - 1) / n_h[stratum]
    return theta, (f * (reps - theta) ** 2).sum()


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 5), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
)
def test_closed_form_replicates_equal_explicit_replicate_weights(sizes, seed):
    rng = np.random.default_rng(seed)
    stratum = np.repeat(np.arange(len(sizes)), sizes)  # PSUs sorted by stratum
    m = rng.integers(1, 6, size=len(stratum))  # students per PSU
    psu = np.repeat(np.arange(len(stratum)), m)
    y = rng.normal(500, 100, size=len(psu))
    w = rng.uniform(1, 50, size=len(psu))
    design = JKnDesign.from_strata(stratum)
    num = np.bincount(psu, weights=w * y)[:, None]
    den = np.bincount(psu, weights=w)[:, None]
    rep = ratio_replicates(design, num, den)
    var_c, var_p = rep.variance()
    theta, var = explicit_jkn(stratum, y, w, psu)
    assert rep.theta_p[0] == pytest.approx(theta, rel=1e-12)
    assert var_p[0] == pytest.approx(var, rel=1e-8, abs=1e-9)
    for h in range(len(sizes)):
        sel = stratum[psu] == h
        local = np.searchsorted(np.flatnonzero(stratum == h), psu[sel])
        t_h, v_h = explicit_jkn(np.zeros(sizes[h], dtype=int), y[sel], w[sel], local)
        assert rep.theta_c[h, 0] == pytest.approx(t_h, rel=1e-12)
        assert var_c[h, 0] == pytest.approx(v_h, rel=1e-8, abs=1e-9)


def test_single_psu_stratum_contributes_no_variance():
    design = JKnDesign.from_strata(np.array([0, 0, 0, 1]))
    num = np.array([[10.0], [20.0], [30.0], [40.0]])
    den = np.array([[1.0], [1.0], [1.0], [1.0]])
    rep = ratio_replicates(design, num, den)
    var_c, _ = rep.variance()
    assert var_c[1, 0] == 0.0 and var_c[0, 0] > 0


def test_design_rejects_unsorted_psus():
    with pytest.raises(ValueError):
        JKnDesign(stratum=np.array([1, 0]), n_h=np.array([1, 1]))


def test_rubin_by_hand():
    # M = 3: estimates 10, 12, 14 -> mean 12, B = 4; within = mean(1, 2, 3) = 2;
    # T = 2 + (1 + 1/3)·4 = 7.3333 (Rubin 1987, eq. 3.1.7)
    est, var = rubin(np.array([10.0, 12.0, 14.0]), np.array([1.0, 2.0, 3.0]))
    assert est == 12.0 and var == pytest.approx(2 + 4 / 3 * 4, rel=1e-12)
