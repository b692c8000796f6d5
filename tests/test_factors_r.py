"""Related-factor estimators (pipeline.indicators.factors) against R and against hand calculation.

Expected numbers:

* ``tests/fixtures/r/make_factors_fixture.R`` (R 4.2.2, survey 4.1.1, mitools 2.4, lme4 1.1.31)
  writes ``factors_regression_expected.csv`` — ``svyglm`` on ``as.svrepdesign(svydesign(
  ids = ~school_id, strata = ~county_code, weights = ~weight), type = "JKn", mse = TRUE)`` per
  plausible value, combined by ``mitools::MIcombine``; weighted R² with ``withReplicates`` — from
  ``factors_regression.csv``, and ``factors_twolevel_expected.csv`` — lme4
  ``lmer(pv ~ ... + (1 | school_id), REML = FALSE)`` (ML), with JKn SEs from leave-one-school-out
  refits (one county, equal weights) — from ``factors_twolevel.csv``. The CSVs are committed:
  the suite does not need R.
* Weighted two-level cases: worked by hand in closed form (docstrings below), and a brute-force
  pseudo-likelihood (numerical integration over the school effect, scipy) for unequal
  within-school weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import EqmError
from pipeline.indicators.factors import (
    factor_association,
    replicate_regression,
    two_level_decomposition,
)

FIX = Path(__file__).parent / "fixtures" / "r"
PVS = ["pv1", "pv2", "pv3", "pv4"]
CASES = {  # case of factors_regression_expected.csv -> (county filter, terms)
    "pooled_unadjusted": (None, ["x", "b"]),
    "pooled_adjusted": (None, ["x", "b", "ses"]),
    "county_450107_adjusted": ("450107", ["x", "b", "ses"]),
}
TWO_LEVEL_CASES = {"null": [], "school": ["z"], "school_ses": ["z", "ses"]}
IDS = {"county_code": str, "school_id": str}


@pytest.fixture(scope="module")
def reg_data() -> pd.DataFrame:
    return pd.read_csv(FIX / "factors_regression.csv", dtype=IDS)


@pytest.fixture(scope="module")
def reg_expected() -> pd.DataFrame:
    return pd.read_csv(FIX / "factors_regression_expected.csv")


@pytest.fixture(scope="module")
def two_data() -> pd.DataFrame:
    return pd.read_csv(FIX / "factors_twolevel.csv", dtype=IDS)


@pytest.fixture(scope="module")
def two_expected() -> pd.DataFrame:
    # keep_default_na: the case "null" is a name, not a missing value
    return pd.read_csv(FIX / "factors_twolevel_expected.csv", keep_default_na=False)


def fit_case(data: pd.DataFrame, case: str):
    county, terms = CASES[case]
    d = data if county is None else data.loc[data["county_code"] == county]
    return replicate_regression(d, PVS, terms)


def close(a, b, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------------
# replicate_regression against R svyglm (JKn, mse = TRUE) and MIcombine
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_regression_matches_svyglm_per_plausible_value(reg_data, reg_expected, case):
    fit = fit_case(reg_data, case)
    exp = reg_expected.loc[(reg_expected["case"] == case) & (reg_expected["pv"] != "combined")]
    got = exp.merge(
        fit.per_pv, left_on=["pv", "term"], right_on=["outcome", "term"], suffixes=("_r", ""),
        validate="1:1",
    )  # fmt: skip
    assert len(got) == len(exp) == 4 * len(CASES[case][1]) + 4
    close(got["estimate"], got["estimate_r"], rtol=1e-6)
    close(got["se"], got["se_r"], rtol=1e-4)
    r2 = fit.per_pv.loc[fit.per_pv["term"] == "r_squared"].set_index("outcome")
    r2_r = exp.groupby("pv")[["r_squared", "r_squared_se"]].first()
    close(r2.loc[r2_r.index, "estimate"], r2_r["r_squared"], rtol=1e-6)
    close(r2.loc[r2_r.index, "se"], r2_r["r_squared_se"], rtol=1e-4)


@pytest.mark.parametrize("case", list(CASES))
def test_regression_rubin_combination_matches_micombine(reg_data, reg_expected, case):
    fit = fit_case(reg_data, case)
    exp = reg_expected.loc[(reg_expected["case"] == case) & (reg_expected["pv"] == "combined")]
    got = exp.merge(fit.table, on="term", suffixes=("_r", ""), validate="1:1")
    assert list(got["term"]) == ["Intercept", *CASES[case][1]]
    close(got["estimate"], got["estimate_r"], rtol=1e-6)
    close(got["se"], got["se_r"], rtol=1e-4)
    close(np.sqrt(np.diag(fit.vcov.to_numpy())), got["se"], rtol=1e-12)
    close(fit.r_squared, exp["r_squared"].iloc[0], rtol=1e-6)
    close(fit.r_squared_se, exp["r_squared_se"].iloc[0], rtol=1e-4)


def test_design_df_counts_schools_with_data(reg_data, reg_expected):
    """df = schools with a complete row − counties with one (survey.design_df).

    Unadjusted: 9 schools in 2 counties → 7, R's degf too. Adjusted: school S2504 has no row with
    ses, so 8 − 2 = 6, while R's degf (of the whole design) stays 7.
    """
    unadj = fit_case(reg_data, "pooled_unadjusted")
    adj = fit_case(reg_data, "pooled_adjusted")
    degf = reg_expected.groupby("case")["degf"].first()
    assert unadj.df == degf["pooled_unadjusted"] == 7
    assert (adj.df, adj.n_schools, adj.n_strata) == (6.0, 8, 2)
    assert degf["pooled_adjusted"] == 7
    assert (adj.table["df"] == 6).all()
    assert fit_case(reg_data, "county_450107_adjusted").df == degf["county_450107_adjusted"] == 4


def test_school_without_complete_rows_keeps_its_replicate(reg_data, reg_expected):
    """R drops incomplete rows but keeps S2504's replicate (its county's other schools reweighted
    by 4/3). Removing S2504 from the input instead gives other SEs, which R does not match."""
    exp = reg_expected.loc[
        (reg_expected["case"] == "pooled_adjusted") & (reg_expected["pv"] == "combined")
    ]
    without = replicate_regression(
        reg_data.loc[reg_data["school_id"] != "S2504"], PVS, ["x", "b", "ses"]
    )
    close(without.table["estimate"], exp["estimate"], rtol=1e-9)  # same rows, same fit
    assert np.max(np.abs(without.table["se"].to_numpy() / exp["se"].to_numpy() - 1)) > 1e-2


def brute_force_jkn(d: pd.DataFrame, y: str, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Replicate by replicate from the rows: JKn weights, WLS via lstsq, mse-centred variance."""
    d = d.dropna(subset=[y, *terms])
    x = np.column_stack([np.ones(len(d)), d[terms].to_numpy(float)])
    yy = d[y].to_numpy(float)

    def wls(w):
        sw = np.sqrt(w)
        return np.linalg.lstsq(x * sw[:, None], yy * sw, rcond=None)[0]

    w = d["weight"].to_numpy(float)
    full = wls(w)
    var = np.zeros(len(full))
    county, school = d["county_code"].to_numpy(), d["school_id"].to_numpy()
    for h in np.unique(county):
        names = np.unique(school[county == h])
        n = len(names)
        if n == 1:
            continue
        for s in names:
            wr = np.where(county == h, w * n / (n - 1), w)
            wr = np.where(school == s, 0.0, wr)
            var += (n - 1) / n * (wls(wr) - full) ** 2
    return full, np.sqrt(var)


def test_vectorised_replicates_equal_refits_from_rows():
    """Totals-minus-school algebra = refitting every replicate on the rows (3 counties, one with a
    single school, which contributes no replicate: a term that only that school identifies keeps
    a finite SE)."""
    rng = np.random.default_rng(7)
    parts = []
    for county, n_schools in (("A", 4), ("B", 3), ("C", 1)):
        for j in range(n_schools):
            n = int(rng.integers(4, 9))
            parts.append(
                pd.DataFrame(
                    {
                        "county_code": county, "school_id": f"{county}{j}",
                        "weight": rng.uniform(1, 30, n), "f": rng.normal(size=n),
                        "g": rng.integers(0, 2, n).astype(float),
                        "y": rng.normal(500, 80, n),
                    }
                )
            )  # fmt: skip
    d = pd.concat(parts, ignore_index=True)
    d["lone"] = (d["county_code"] == "C").astype(float)  # estimable only with the lone school
    fit = replicate_regression(d, "y", ["f", "g", "lone"])
    est, se = brute_force_jkn(d, "y", ["f", "g", "lone"])
    close(fit.table["estimate"], est, rtol=1e-10)
    close(fit.table["se"], se, rtol=1e-8)
    assert np.isfinite(fit.table["se"]).all()
    assert fit.df == (4 - 1) + (3 - 1) + 0


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.01, 1000), shift=st.floats(-500, 500))
def test_regression_invariant_to_weight_scale_and_score_shift(reg_data, scale, shift):
    """Weights enter only as ratios; adding a constant to every PV moves only the intercept."""
    base = fit_case(reg_data, "pooled_adjusted")
    moved = reg_data.assign(
        weight=reg_data["weight"] * scale, **{v: reg_data[v] + shift for v in PVS}
    )
    fit = replicate_regression(moved, PVS, ["x", "b", "ses"])
    close(
        fit.table["estimate"], base.table["estimate"] + np.r_[shift, 0, 0, 0], rtol=1e-8, atol=1e-7
    )
    close(fit.table["se"], base.table["se"], rtol=1e-7)
    close(fit.r_squared, base.r_squared, rtol=1e-8)


def test_replicate_with_singular_design_gives_nan_se(caplog):
    """A 0/1 factor that is 1 in one school only: the replicate dropping it cannot estimate it."""
    d = pd.DataFrame(
        {
            "county_code": ["A"] * 9,
            "school_id": ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3,
            "weight": [1.0, 2, 3, 1, 2, 3, 1, 2, 3],
            "g": [1.0, 0, 1, 0, 0, 0, 0, 0, 0],
            "y": [5.0, 3, 6, 2, 4, 3, 1, 2, 2],
        }
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.indicators.factors"):
        fit = replicate_regression(d, "y", ["g"])
    assert np.isfinite(fit.table["estimate"]).all()
    assert fit.table["se"].isna().all()
    assert "singular" in caplog.text
    two = two_level_decomposition(d, "y", ["g"]).table.set_index(["model", "statistic"])
    assert np.isnan(two.loc[("conditional", "g"), "se"])
    assert np.isfinite(two.loc[("conditional", "g"), "estimate"])
    assert np.isfinite(two.loc["null", "se"]).all()  # the null model has no g


def test_factor_association_fits_both_models_on_one_sample(reg_data):
    """ses is missing in 3 rows: the unadjusted model leaves them out too (same n_obs), which
    equals replicate_regression on the data with those rows' factor blanked (design kept)."""
    t = factor_association(reg_data, PVS, ["x", "b"], ["ses"])
    assert list(t["model"].unique()) == ["unadjusted", "adjusted"]
    assert t.groupby("model")["n_obs"].first().nunique() == 1
    blank = reg_data.assign(x=reg_data["x"].where(reg_data["ses"].notna()))
    ref = replicate_regression(blank, PVS, ["x", "b"])
    got = t.loc[t["model"] == "unadjusted"]
    close(got["estimate"], ref.table["estimate"], rtol=1e-12)
    close(got["se"], ref.table["se"], rtol=1e-12)
    adj = fit_case(reg_data, "pooled_adjusted")
    close(t.loc[t["model"] == "adjusted", "se"], adj.table["se"], rtol=1e-12)
    assert t["r_squared"].iloc[-1] > t["r_squared"].iloc[0]  # SES adds explained variance


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.drop(columns="ses"), "ses"),
        (lambda d: d.assign(weight=d["weight"].where(d.index != 3, 0.0)), "权重"),
        (lambda d: d.assign(ses=d["ses"].astype(str)), "ses"),
        (lambda d: d.assign(ses=2.0 * d["x"]), "共线"),
        (lambda d: d.assign(ses=1.0), "共线"),
        (lambda d: d.assign(school_id=d["school_id"].where(d.index != 5)), "school_id"),
    ],
    ids=["missing-column", "zero-weight", "text-term", "collinear", "constant", "no-school"],
)
def test_bad_inputs_raise_eqm_error(reg_data, change, needle):
    with pytest.raises(EqmError, match=needle):
        replicate_regression(change(reg_data), PVS, ["x", "b", "ses"])
    with pytest.raises(EqmError, match=needle):
        two_level_decomposition(change(reg_data), PVS, ["x", "b", "ses"])


def test_too_few_schools_raise(reg_data):
    one = reg_data.loc[reg_data["school_id"] == "S0701"]
    with pytest.raises(EqmError, match="有效样本不足"):
        replicate_regression(one, PVS, ["x"])


# ------------------------------------------------------------------------------------------------
# two_level_decomposition against lme4 (unweighted) and by hand (weighted)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(TWO_LEVEL_CASES))
def test_two_level_matches_lme4_ml(two_data, two_expected, case):
    """Per PV: lme4 ML fits; SEs: leave-one-school-out lme4 refits (= the JKn replicates of one
    county with equal weights); combined: Rubin. Variance components, ICC and fixed effects to
    1e-5 relative; between_explained (a difference near 0) to 1e-6 absolute."""
    fit = two_level_decomposition(two_data, ["pv1", "pv2"], TWO_LEVEL_CASES[case])
    model = "null" if case == "null" else "conditional"
    exp = two_expected.loc[two_expected["case"] == case]
    per_pv = fit.per_pv.loc[fit.per_pv["model"] == model]
    got = pd.concat(
        [
            exp.loc[exp["pv"] != "combined"].merge(
                per_pv, left_on=["pv", "statistic"], right_on=["outcome", "statistic"],
                suffixes=("_r", ""), validate="1:1",
            ),
            exp.loc[exp["pv"] == "combined"].merge(
                fit.table.loc[fit.table["model"] == model], on="statistic", suffixes=("_r", ""),
                validate="1:1",
            ),
        ]
    )  # fmt: skip
    assert len(got) == len(exp) == 3 * (4 + len(TWO_LEVEL_CASES[case]) + (case != "null"))
    share = got["statistic"] == "between_explained"
    close(got.loc[~share, "estimate"], got.loc[~share, "estimate_r"], rtol=1e-5)
    close(got.loc[share, "estimate"], got.loc[share, "estimate_r"], rtol=0, atol=1e-6)
    close(got["se"], got["se_r"], rtol=1e-4)
    assert fit.df == 11 and fit.n_schools == 12


HAND = pd.DataFrame(
    {
        "county_code": ["450107"] * 4 + ["450125"] * 4,
        "school_id": ["A", "A", "B", "B", "C", "C", "D", "D"],
        "weight": [10.0] * 4 + [20.0] * 4,
        "z": [0.0, 0, 1, 1, 0, 0, 1, 1],
        "y": [0.0, 2, 4, 6, 6, 8, 10, 12],
    }
)


def closed_form(school_y: dict[str, list[float]], a: dict[str, float], z: dict[str, float] | None):
    """Pseudo-ML of a balanced random-intercept model with school weights ``a`` and equal weights
    within schools (λ = 1), n students per school:
    σ² = Σ a_j SSW_j / (Σ a_j (n − 1)); β = WLS of school means on (1, z) with weights a;
    τ² = Σ a_j r̄_j² / Σ a_j − σ²/n, or at the boundary τ² = 0 with σ² = Σ a_j (SSW_j + n r̄_j²) /
    (n Σ a_j). Returns (τ², σ², β)."""
    keys = [k for k in school_y if a[k] > 0]
    n = len(school_y[keys[0]])
    ybar = np.array([np.mean(school_y[k]) for k in keys])
    ssw = np.array([np.sum((np.asarray(school_y[k]) - np.mean(school_y[k])) ** 2) for k in keys])
    w = np.array([a[k] for k in keys])
    x = (
        np.ones((len(keys), 1))
        if z is None
        else np.column_stack([np.ones(len(keys)), [z[k] for k in keys]])
    )
    beta = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * ybar))
    r = ybar - x @ beta
    sigma2 = (w * ssw).sum() / (w.sum() * (n - 1))
    tau2 = (w * r**2).sum() / w.sum() - sigma2 / n
    if tau2 < 0:
        return 0.0, (w * (ssw + n * r**2)).sum() / (n * w.sum()), beta
    return tau2, sigma2, beta


def test_two_level_weighted_by_hand():
    """Four schools of two students, y = school mean ± 1 (SSW_j = 2), weights equal within
    schools (λ = 1) so the school weights are a = (10, 10, 20, 20) for A, B, C, D with means
    1, 5, 7, 11. Closed-form pseudo-ML (balanced):
      σ² = Σ a·SSW / Σ a(n − 1) = 60·2/60 = 2;
      μ = Σ a ȳ / Σ a = (10 + 50 + 140 + 220)/60 = 7;
      Σ a (ȳ − μ)²/Σ a = (360 + 40 + 0 + 320)/60 = 12 → τ² = 12 − σ²/n = 11, ICC = 11/13.
    With z = (0, 1, 0, 1): β = WLS of school means on z with weights a: z = 0 → (10 + 140)/30 = 5,
    z = 1 → (50 + 220)/30 = 9, so β = (5, 4); residuals (−4, −4, 2, 2) → Σ a r²/Σ a = 480/60 = 8,
    τ² = 8 − 1 = 7, σ² = 2; between_explained = 1 − 7/11 = 4/11.
    Unweighted (lme4's answer) would be μ = 6, τ² = (25 + 1 + 1 + 25)/4 − 1 = 12."""
    fit = two_level_decomposition(HAND, "y", ["z"])
    t = fit.table.set_index(["model", "statistic"])["estimate"]
    close(t["null"][["tau2", "sigma2", "icc", "Intercept"]], [11, 2, 11 / 13, 7], rtol=1e-7)
    close(
        t["conditional"][["tau2", "sigma2", "Intercept", "z", "between_explained"]],
        [7, 2, 5, 4, 4 / 11], rtol=1e-7,
    )  # fmt: skip
    flat = two_level_decomposition(HAND.assign(weight=1.0), "y")
    close(
        flat.table.set_index("statistic").loc[["tau2", "Intercept"], "estimate"], [12, 6], rtol=1e-7
    )


def test_two_level_weighted_replicate_ses_by_hand():
    """Each JKn replicate of the hand data is again balanced with school weights only (dropped
    school 0, the other school of its county × 2), so its estimates have the closed form of
    ``closed_form``; V = Σ (n_h − 1)/n_h (θ_(hs) − θ)² with n_h = 2."""
    y = {k: list(g["y"]) for k, g in HAND.groupby("school_id")}
    z = {k: g["z"].iloc[0] for k, g in HAND.groupby("school_id")}
    a = {"A": 10.0, "B": 10.0, "C": 20.0, "D": 20.0}
    county = {"A": 1, "B": 1, "C": 2, "D": 2}

    def stats(aw):
        t0, s0, b0 = closed_form(y, aw, None)
        t1, s1, b1 = closed_form(y, aw, z)
        return np.array([t0, s0, t0 / (t0 + s0), b0[0], t1, s1, b1[0], b1[1], 1 - t1 / t0])

    full = stats(a)
    var = np.zeros_like(full)
    for drop in a:
        aw = {k: 0.0 if k == drop else a[k] * (2 if county[k] == county[drop] else 1) for k in a}
        var += 0.5 * (stats(aw) - full) ** 2
    fit = two_level_decomposition(HAND, "y", ["z"])
    t = fit.table.set_index(["model", "statistic"])
    keys = [("null", s) for s in ("tau2", "sigma2", "icc", "Intercept")] + [
        ("conditional", s) for s in ("tau2", "sigma2", "Intercept", "z", "between_explained")
    ]
    close(t.loc[keys, "estimate"], full, rtol=1e-7)
    close(t.loc[keys, "se"], np.sqrt(var), rtol=1e-6, atol=1e-12)  # σ² is 2 in every replicate
    assert fit.df == 2.0


def test_two_level_boundary_gives_zero_between_variance():
    """School means 4, 5, 4 with SSW_j = 8 (n = 2, equal weights): σ² within = 8 and
    Σ(ȳ_j − ȳ)²/J = 2/9 < σ²/n = 4, so the ML estimate is on the boundary: τ² = 0 exactly, ICC = 0,
    and the model is y = μ + e: μ = ȳ = 13/3, σ² = Σ(y − ȳ)²/N."""
    d = pd.DataFrame(
        {
            "county_code": "A", "school_id": ["s1", "s1", "s2", "s2", "s3", "s3"],
            "weight": 1.0, "y": [2.0, 6, 3, 7, 2, 6],
        }
    )  # fmt: skip
    t = two_level_decomposition(d, "y").table.set_index("statistic")["estimate"]
    ybar = d["y"].mean()
    assert t["tau2"] == 0.0 and t["icc"] == 0.0
    close(t["sigma2"], ((d["y"] - ybar) ** 2).mean(), rtol=1e-12)
    close(t["Intercept"], ybar, rtol=1e-12)


def test_two_level_method2_matches_brute_force_pseudo_likelihood():
    """Unequal weights within schools: our profiled closed form vs the definition
    Σ_j a_j log ∫ Π_i N(y_ij; μ + u, σ²)^λ_ij N(u; 0, τ²) du (Rabe-Hesketh & Skrondal 2006,
    method 2: λ_ij = n_j w_ij / Σ_i w_ij, a_j = Σ_i w_ij / n_j), integrated numerically
    (Gauss–Hermite) and maximised with Nelder–Mead from a generic start."""
    from scipy import optimize
    from scipy.special import logsumexp

    rng = np.random.default_rng(3)
    groups = []
    for j, n in enumerate((3, 4, 5, 3, 6)):
        u = rng.normal(0, 2)
        groups.append(
            pd.DataFrame(
                {"county_code": "A", "school_id": f"s{j}", "weight": rng.uniform(1, 9, n),
                 "y": np.round(5 + u + rng.normal(0, 1.5, n), 2)}
            )
        )  # fmt: skip
    d = pd.concat(groups, ignore_index=True)

    nodes, gh_w = np.polynomial.hermite.hermgauss(120)

    def neg_pll(theta):
        """−Σ_j a_j log ∫ …, the integral by 120-node Gauss–Hermite over u = √2·τ·t."""
        mu, log_s2, log_t2 = theta
        s2, t = np.exp(log_s2), np.exp(0.5 * log_t2)
        total = 0.0
        for _, g in d.groupby("school_id"):
            w, y = g["weight"].to_numpy(), g["y"].to_numpy()
            lam = len(w) * w / w.sum()
            u = np.sqrt(2.0) * t * nodes  # (K,)
            logf = -0.5 * np.log(2 * np.pi * s2) - (y[None] - mu - u[:, None]) ** 2 / (2 * s2)
            log_int = logsumexp((lam[None] * logf).sum(axis=1), b=gh_w / np.sqrt(np.pi))
            total += w.mean() * log_int
        return -total

    start = [d["y"].mean(), np.log(2.0), np.log(3.0)]
    opt = optimize.minimize(neg_pll, start, method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 5000})  # fmt: skip
    mu, s2, t2 = opt.x[0], np.exp(opt.x[1]), np.exp(opt.x[2])
    t = two_level_decomposition(d, "y").table.set_index("statistic")["estimate"]
    close([t["Intercept"], t["sigma2"], t["tau2"]], [mu, s2, t2], rtol=1e-4)
    # the split matters: treating the weights as school-constant gives another answer
    flat = d.assign(weight=d.groupby("school_id")["weight"].transform("mean"))
    t_flat = two_level_decomposition(flat, "y").table.set_index("statistic")["estimate"]
    assert abs(t_flat["sigma2"] / t["sigma2"] - 1) > 1e-3


def test_two_level_missing_rows_keep_schools_and_scale_invariance(reg_data):
    """Same school in or out of the design as the regression; weights enter only as ratios."""
    fit = two_level_decomposition(reg_data, PVS, ["x", "ses"])
    assert (fit.n_schools, fit.df) == (8, 6.0)
    t = fit.table.set_index(["model", "statistic"])["estimate"]
    # every PV's null τ² is on the boundary 0 here: the explained share is undefined, not ±inf
    assert t[("null", "tau2")] == 0.0 and np.isnan(t[("conditional", "between_explained")])
    scaled = two_level_decomposition(
        reg_data.assign(weight=reg_data["weight"] * 37.5), PVS, ["x", "ses"]
    )
    close(scaled.table["estimate"], fit.table["estimate"], rtol=1e-7)
    close(scaled.table["se"], fit.table["se"], rtol=1e-6)
    assert list(fit.table["statistic"]) == [
        "tau2", "sigma2", "icc", "Intercept",
        "tau2", "sigma2", "icc", "Intercept", "x", "ses", "between_explained",
    ]  # fmt: skip
